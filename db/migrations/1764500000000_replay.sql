-- Up Migration
-- ROAD-E: candidates (one row per attempt of a follow-up task), replay campaigns and their runs. A run is stored as
-- it finishes, keyed by (campaign, run index), so a crashed worker loses nothing and a restarted campaign reruns
-- nothing that is stored.

CREATE TABLE candidates (
  task_id         text NOT NULL CHECK (task_id ~ '^[A-Za-z0-9._:-]{1,128}$'),
  attempt         integer NOT NULL CHECK (attempt BETWEEN 1 AND 1000),
  source          text NOT NULL CHECK (source IN ('executor', 'manual')),
  status          text NOT NULL CHECK (status IN ('ready', 'out_of_scope', 'no_commit', 'not_on_baseline', 'executor_failed', 'executor_timed_out')),
  baseline_ref    text NOT NULL CHECK (length(baseline_ref) BETWEEN 1 AND 255),
  baseline_sha    text NOT NULL CHECK (baseline_sha ~ '^[0-9a-f]{40}([0-9a-f]{24})?$'),
  treatment_sha   text CHECK (treatment_sha ~ '^[0-9a-f]{40}([0-9a-f]{24})?$'),
  branch          text CHECK (length(branch) BETWEEN 1 AND 255),
  author          text CHECK (length(author) BETWEEN 1 AND 255),
  changed_files   text[] NOT NULL DEFAULT '{}',
  offending_files text[] NOT NULL DEFAULT '{}',
  diff_stat       jsonb CHECK (jsonb_typeof(diff_stat) = 'object'),
  notes           text[] NOT NULL DEFAULT '{}',
  error           text CHECK (length(error) <= 4000),
  recorded_at     timestamptz NOT NULL,
  PRIMARY KEY (task_id, attempt),
  -- Only a candidate that passed every check is recorded on its branch, and it has everything a reviewer sees.
  CHECK ((status = 'ready') = (branch IS NOT NULL)),
  CHECK (status <> 'ready' OR (treatment_sha IS NOT NULL AND author IS NOT NULL AND diff_stat IS NOT NULL)),
  CHECK ((status = 'out_of_scope') = (cardinality(offending_files) > 0)),
  CHECK ((status = 'ready') = (error IS NULL))
);

CREATE TABLE replay_campaigns (
  campaign_id     text PRIMARY KEY CHECK (campaign_id ~ '^[A-Za-z0-9._:@-]{1,200}$'),
  task_id         text NOT NULL CHECK (task_id ~ '^[A-Za-z0-9._:-]{1,128}$'),
  workflow_id     text CHECK (length(workflow_id) BETWEEN 1 AND 512),
  baseline_ref    text CHECK (length(baseline_ref) BETWEEN 1 AND 255),
  baseline_sha    text NOT NULL CHECK (baseline_sha ~ '^[0-9a-f]{40}([0-9a-f]{24})?$'),
  treatment_sha   text NOT NULL CHECK (treatment_sha ~ '^[0-9a-f]{40}([0-9a-f]{24})?$'),
  -- What the campaign was asked to do (cases, repeats, concurrency, decision mode…): the report is read against it.
  settings        jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(settings) = 'object' AND octet_length(settings::text) <= 262144),
  runs_planned    integer CHECK (runs_planned BETWEEN 0 AND 100000),
  status          text NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'completed', 'failed', 'cancelled')),
  verdict         text CHECK (verdict IN ('PROMOTE', 'REJECT', 'INCONCLUSIVE')),
  report          jsonb CHECK (jsonb_typeof(report) = 'object'),
  report_markdown text CHECK (length(report_markdown) <= 1048576),
  error           text CHECK (length(error) <= 4000),
  created_at      timestamptz NOT NULL,
  finished_at     timestamptz,
  CHECK (baseline_sha <> treatment_sha),
  CHECK ((status = 'running') = (finished_at IS NULL)),
  CHECK ((status = 'completed') = (report IS NOT NULL)),
  CHECK ((report IS NULL) = (report_markdown IS NULL)),
  CHECK (verdict IS NULL OR report IS NOT NULL),
  CHECK (finished_at IS NULL OR finished_at >= created_at)
);

CREATE INDEX replay_campaigns_by_task ON replay_campaigns (task_id, created_at DESC);

CREATE TABLE replay_runs (
  campaign_id text NOT NULL REFERENCES replay_campaigns (campaign_id) ON DELETE CASCADE,
  run_index   integer NOT NULL CHECK (run_index BETWEEN 0 AND 99999),
  case_id     text NOT NULL CHECK (length(case_id) BETWEEN 1 AND 255),
  phase_id    text CHECK (length(phase_id) BETWEEN 1 AND 255),
  variant     text NOT NULL CHECK (variant IN ('baseline', 'treatment')),
  ref         text NOT NULL CHECK (ref ~ '^[0-9a-f]{40}([0-9a-f]{24})?$'),
  repeat      integer NOT NULL CHECK (repeat BETWEEN 0 AND 999),
  outcome     phase_outcome NOT NULL,
  tokens      bigint CHECK (tokens >= 0),
  duration_ms bigint NOT NULL CHECK (duration_ms >= 0),
  stop_reason text CHECK (octet_length(stop_reason) <= 255),
  retries     bigint CHECK (retries >= 0),
  exit_code   integer,
  started_at  timestamptz NOT NULL,
  finished_at timestamptz NOT NULL CHECK (finished_at >= started_at),
  -- Which worker ran it (host:pid): replay workers scale out on other machines.
  worker      text NOT NULL CHECK (length(worker) BETWEEN 1 AND 255),
  PRIMARY KEY (campaign_id, run_index),
  -- One run per case, arm and repeat: a second run index for the same slot would count it twice.
  UNIQUE (campaign_id, case_id, variant, repeat)
);

-- Down Migration
DROP TABLE replay_runs;
DROP TABLE replay_campaigns;
DROP TABLE candidates;
