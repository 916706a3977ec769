-- Up Migration
-- Governance gate (ROAD-D): approval requests and the audit of every decision attempt.

CREATE TYPE approval_status AS ENUM ('PENDING', 'APPROVED', 'REJECTED', 'EXPIRED', 'SUPERSEDED');

CREATE TABLE approval_requests (
  request_id        text PRIMARY KEY CHECK (length(request_id) BETWEEN 1 AND 512),
  workflow_id       text NOT NULL CHECK (length(workflow_id) BETWEEN 1 AND 512),
  task_id           text NOT NULL CHECK (task_id ~ '^[A-Za-z0-9._:-]{1,128}$'),
  title             text NOT NULL CHECK (length(title) BETWEEN 1 AND 500),
  candidate_ref     text NOT NULL CHECK (length(candidate_ref) BETWEEN 1 AND 255),
  baseline_ref      text CHECK (length(baseline_ref) <= 255),
  diff_stat         jsonb,
  impact            jsonb NOT NULL,
  rollback_plan     text NOT NULL CHECK (length(rollback_plan) BETWEEN 1 AND 4000),
  verdict           text CHECK (verdict IN ('PROMOTE', 'REJECT', 'INCONCLUSIVE')),
  evidence          jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(evidence) = 'object' AND octet_length(evidence::text) <= 70000),
  allowed_reviewers text[] NOT NULL CHECK (cardinality(allowed_reviewers) BETWEEN 1 AND 50),
  author            text NOT NULL CHECK (length(author) BETWEEN 1 AND 255),
  status            approval_status NOT NULL DEFAULT 'PENDING',
  requested_at      timestamptz NOT NULL,
  expires_at        timestamptz NOT NULL CHECK (expires_at > requested_at),
  decided_at        timestamptz,
  decided_by        text,
  decision_note     text,
  can_merge         boolean NOT NULL DEFAULT false,
  CHECK ((status IN ('PENDING', 'SUPERSEDED')) = (decided_at IS NULL)),
  CHECK ((status IN ('APPROVED', 'REJECTED')) = (decided_by IS NOT NULL)),
  CHECK (NOT can_merge OR status = 'APPROVED')
);

-- One open request per task: a newer request for the same task supersedes a stale one.
CREATE UNIQUE INDEX approval_requests_one_pending_per_task ON approval_requests (task_id) WHERE status = 'PENDING';
CREATE INDEX approval_requests_by_status ON approval_requests (status, requested_at DESC);
CREATE INDEX approval_requests_by_task ON approval_requests (task_id, requested_at DESC);

CREATE TABLE approval_audit (
  request_id   text NOT NULL REFERENCES approval_requests (request_id) ON DELETE CASCADE,
  attempt_id   text NOT NULL CHECK (length(attempt_id) BETWEEN 1 AND 128),
  action       text NOT NULL CHECK (action IN ('approve', 'reject')),
  reviewer     text NOT NULL CHECK (length(reviewer) <= 255),
  note         text NOT NULL DEFAULT '' CHECK (length(note) <= 4000),
  outcome      text NOT NULL CHECK (outcome IN ('accepted', 'ignored')),
  reason       text CHECK (length(reason) <= 1000),
  source       text NOT NULL CHECK (source IN ('workflow', 'cli', 'api')),
  attempted_at timestamptz NOT NULL,
  PRIMARY KEY (request_id, attempt_id),
  CHECK ((outcome = 'ignored') = (reason IS NOT NULL))
);

-- The first valid decision wins: at most one accepted attempt per request.
CREATE UNIQUE INDEX approval_audit_one_accepted ON approval_audit (request_id) WHERE outcome = 'accepted';

-- Down Migration
DROP TABLE approval_audit;
DROP TABLE approval_requests;
DROP TYPE approval_status;
