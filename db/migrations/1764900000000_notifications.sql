-- Up Migration
-- Webhook deliveries (activities/notify.ts): one row per event and receiver, so that an operator sees what was sent,
-- what is still being retried and what failed for good (`road notifications`, the road_notifications metric).
-- The body is stored on the first attempt and every retry resends it unchanged, under the same delivery id.
-- Receivers are named, never stored by URL: a chat webhook's URL is itself a credential.
CREATE TABLE notifications (
  delivery_id      uuid PRIMARY KEY,
  -- What the delivery is about: `<workflow id>/<run id>/<event>` (its delivery id is derived from it and the target).
  source_key       text NOT NULL CHECK (octet_length(source_key) BETWEEN 1 AND 2048),
  target           text NOT NULL CHECK (target ~ '^[A-Za-z0-9._:-]{1,255}$'),
  event            text NOT NULL CHECK (event IN ('approval.requested', 'approval.expiring', 'approval.decided', 'analysis.critical')),
  -- The task of an approval event; NULL for an analysis.
  task_id          text CHECK (task_id ~ '^[A-Za-z0-9._:-]{1,128}$'),
  -- The failure modes an analysis.critical delivery announces (fingerprints): "new" means not announced to this
  -- receiver by a delivery within the analysed window.
  fingerprints     text[] NOT NULL DEFAULT '{}',
  -- json, not jsonb: the text is kept byte for byte, so every attempt sends (and signs) the very same body.
  body             json NOT NULL CHECK (json_typeof(body) = 'object' AND octet_length(body::text) <= 262144),
  status           text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
  attempts         integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
  last_status_code integer CHECK (last_status_code BETWEEN 100 AND 599),
  last_error       text CHECK (octet_length(last_error) <= 4000),
  created_at       timestamptz NOT NULL DEFAULT now(),
  updated_at       timestamptz NOT NULL DEFAULT now(),
  delivered_at     timestamptz,
  UNIQUE (source_key, target),
  CHECK ((status = 'delivered') = (delivered_at IS NOT NULL))
);
CREATE INDEX notifications_recent ON notifications (created_at DESC);
CREATE INDEX notifications_undelivered ON notifications (status, updated_at) WHERE status <> 'delivered';

-- The age of the oldest event waiting to be folded into the analysis rollups (the road_rollup_oldest_pending_age
-- metric): noted when the trigger notes the event. A constant default fills existing rows without rewriting the table.
ALTER TABLE rollup_pending ADD COLUMN noted_at timestamptz NOT NULL DEFAULT now();

-- Down Migration
ALTER TABLE rollup_pending DROP COLUMN noted_at;
DROP TABLE notifications;
