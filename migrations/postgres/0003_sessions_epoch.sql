-- Sessions stay dead: a key's session epoch is bumped by every change that
-- ends its sessions for good (deactivation; an expired key's expiry moved);
-- a session is valid only while its recorded epoch is the key's.
ALTER TABLE keys ADD COLUMN session_epoch BIGINT NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN key_epoch BIGINT NOT NULL DEFAULT 0;
-- Sessions left behind by deletions that raced a login.
DELETE FROM sessions s WHERE NOT EXISTS (SELECT 1 FROM keys k WHERE k.id = s.key_id);
