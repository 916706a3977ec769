-- Up Migration
-- Decision attempts that broke the rules are audited too (issue 8): an attempt with an action other than approve or
-- reject is stored as `invalid`, with what was sent in raw_action, instead of failing the CHECK and the activity.
-- Gates that judged such an attempt before validation applied it as a rejection: stored as `reject` + raw_action.

ALTER TABLE approval_audit DROP CONSTRAINT approval_audit_action_check;
ALTER TABLE approval_audit ADD CONSTRAINT approval_audit_action_check CHECK (action IN ('approve', 'reject', 'invalid'));
ALTER TABLE approval_audit ADD COLUMN raw_action text CHECK (length(raw_action) <= 64);
-- A refused attempt never counts.
ALTER TABLE approval_audit ADD CONSTRAINT approval_audit_invalid_ignored CHECK (action <> 'invalid' OR outcome = 'ignored');

-- Down Migration
ALTER TABLE approval_audit DROP CONSTRAINT approval_audit_invalid_ignored;
ALTER TABLE approval_audit DROP COLUMN raw_action;
DELETE FROM approval_audit WHERE action = 'invalid';
ALTER TABLE approval_audit DROP CONSTRAINT approval_audit_action_check;
ALTER TABLE approval_audit ADD CONSTRAINT approval_audit_action_check CHECK (action IN ('approve', 'reject'));
