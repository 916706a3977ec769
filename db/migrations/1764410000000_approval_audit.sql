-- Up Migration
-- Approval decisions and requests agree with their rules in domain/approval.ts (issue 8).
--
-- Decision attempts that broke the rules are audited too (issue 8): an attempt with an action other than approve or
-- reject is stored as `invalid`, with what was sent in raw_action, instead of failing the CHECK and the activity.
-- Gates that judged such an attempt before validation applied it as a rejection: stored as `reject` + raw_action.

ALTER TABLE approval_audit DROP CONSTRAINT approval_audit_action_check;
ALTER TABLE approval_audit ADD CONSTRAINT approval_audit_action_check CHECK (action IN ('approve', 'reject', 'invalid'));
ALTER TABLE approval_audit ADD COLUMN raw_action text CHECK (length(raw_action) <= 64);
-- A refused attempt never counts.
ALTER TABLE approval_audit ADD CONSTRAINT approval_audit_invalid_ignored CHECK (action <> 'invalid' OR outcome = 'ignored');

-- Evidence is bounded by its rule in domain/approval.ts: at most 64 KiB as compact JSON. jsonb::text renders it
-- longer (a space after every , and :, and numbers in full), at worst 47 times for an array of 5e-324 (7 bytes each
-- compact as `5e-324,`; 328 rendered as `0.000…5, `; 1e+308 gives 311 for 7): 65,536 × 47 < 4 MiB. The old
-- 70,000-byte cap refused valid evidence (an array of 0/1 flags renders 1.5 times longer), failing the gate.
ALTER TABLE approval_requests DROP CONSTRAINT approval_requests_evidence_check;
ALTER TABLE approval_requests ADD CONSTRAINT approval_requests_evidence_check
  CHECK (jsonb_typeof(evidence) = 'object' AND octet_length(evidence::text) <= 4194304);

-- Down Migration
ALTER TABLE approval_requests DROP CONSTRAINT approval_requests_evidence_check;
ALTER TABLE approval_requests ADD CONSTRAINT approval_requests_evidence_check
  CHECK (jsonb_typeof(evidence) = 'object' AND octet_length(evidence::text) <= 70000) NOT VALID;
ALTER TABLE approval_audit DROP CONSTRAINT approval_audit_invalid_ignored;
ALTER TABLE approval_audit DROP COLUMN raw_action;
DELETE FROM approval_audit WHERE action = 'invalid';
ALTER TABLE approval_audit DROP CONSTRAINT approval_audit_action_check;
ALTER TABLE approval_audit ADD CONSTRAINT approval_audit_action_check CHECK (action IN ('approve', 'reject'));
