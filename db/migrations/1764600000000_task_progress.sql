-- Up Migration
-- A follow-up task's workflow says why it moved (who approved it, why it failed): `road tasks` shows it.
ALTER TABLE followup_tasks ADD COLUMN status_note text CHECK (octet_length(status_note) <= 8192);

-- Down Migration
ALTER TABLE followup_tasks DROP COLUMN status_note;
