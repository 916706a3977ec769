-- Up Migration
-- Follow-up tasks (ROAD-C). One open task per fingerprint across loops: the partial unique index is the guard that
-- holds even when two loops generate tasks at the same moment.

CREATE TYPE task_status AS ENUM ('open', 'needs_scope', 'in_progress', 'awaiting_approval', 'done', 'rejected', 'abandoned');

CREATE SEQUENCE followup_task_generation;

CREATE TABLE followup_tasks (
  task_id        text PRIMARY KEY CHECK (task_id ~ '^(COST-SINK|FAILURE|RETRY|FLAKY)-[0-9]+(\.[0-9]+)?$'),
  fingerprint    text NOT NULL CHECK (char_length(fingerprint) = 32),
  type           text NOT NULL CHECK (type IN ('cost_sink', 'failure_mode', 'retry_pattern', 'flaky_test')),
  rank           integer NOT NULL CHECK (rank >= 1),
  severity       text NOT NULL CHECK (severity IN ('critical', 'high', 'medium')),
  status         task_status NOT NULL,
  title          text NOT NULL CHECK (char_length(title) BETWEEN 1 AND 500),
  description    text NOT NULL,
  phase_ids      text[] NOT NULL,
  evidence       jsonb NOT NULL,
  allowed_files  text[] NOT NULL CHECK (cardinality(allowed_files) <= 3),
  scope          jsonb NOT NULL,
  test_plan      jsonb NOT NULL,
  preflight      jsonb NOT NULL,
  max_attempts   integer NOT NULL CHECK (max_attempts BETWEEN 1 AND 2),
  approval_gate  boolean NOT NULL CHECK (approval_gate),
  generation     bigint NOT NULL,
  created_at     timestamptz NOT NULL DEFAULT now(),
  updated_at     timestamptz NOT NULL DEFAULT now(),
  CHECK (status <> 'needs_scope' OR cardinality(allowed_files) = 0)
);

CREATE UNIQUE INDEX followup_tasks_one_open_per_fingerprint ON followup_tasks (fingerprint)
  WHERE status IN ('open', 'needs_scope', 'in_progress', 'awaiting_approval');

-- Down Migration
DROP TABLE followup_tasks;
DROP SEQUENCE followup_task_generation;
DROP TYPE task_status;
