-- Up Migration
-- ROAD-F: promoted rules. One row per task fingerprint (the unique key a retried or repeated promotion upserts on);
-- an active rule is served as a prevention prompt to every phase it names, a demoted one keeps its evidence but is
-- no longer served. n, wilson_lower and evidence are NULL only for rules imported from a file that lacked them.

CREATE TABLE promoted_rules (
  rule_id           text PRIMARY KEY CHECK (rule_id ~ '^[A-Za-z0-9._:-]{1,128}$'),
  fingerprint       text NOT NULL UNIQUE CHECK (fingerprint ~ '^[A-Za-z0-9._:-]{1,128}$'),
  -- One prompt line: no line breaks or other control characters, no surrounding blanks.
  mitigation        text NOT NULL CHECK (char_length(mitigation) BETWEEN 1 AND 1000 AND mitigation !~ '[[:cntrl:]]' AND mitigation = btrim(mitigation)),
  success_rate      double precision NOT NULL CHECK (success_rate BETWEEN 0 AND 1),
  n                 integer CHECK (n >= 1),
  wilson_lower      double precision CHECK (wilson_lower BETWEEN 0 AND 1),
  applicable_phases text[] NOT NULL CHECK (
                      cardinality(applicable_phases) BETWEEN 1 AND 50 AND array_position(applicable_phases, NULL) IS NULL AND
                      array_position(applicable_phases, '') IS NULL),
  promoted_at       timestamptz NOT NULL,
  promotion_level   text NOT NULL CHECK (promotion_level IN ('prompt')),
  source_task       text CHECK (source_task ~ '^[A-Za-z0-9._:-]{1,128}$'),
  status            text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'demoted')),
  evidence          jsonb CHECK (jsonb_typeof(evidence) = 'object' AND octet_length(evidence::text) <= 65536),
  demoted_at        timestamptz,
  demotion          jsonb CHECK (jsonb_typeof(demotion) = 'object' AND octet_length(demotion::text) <= 65536),
  updated_at        timestamptz NOT NULL,
  CHECK ((status = 'demoted') = (demoted_at IS NOT NULL)),
  CHECK ((demoted_at IS NULL) = (demotion IS NULL)),
  CHECK (demoted_at IS NULL OR demoted_at >= promoted_at)
);

-- An agent asks for its phase's prompt at the start of every phase: `applicable_phases @> ARRAY[phase]` over the
-- active rules only.
CREATE INDEX promoted_rules_active_phases ON promoted_rules USING gin (applicable_phases) WHERE status = 'active';

-- Down Migration
DROP TABLE promoted_rules;
