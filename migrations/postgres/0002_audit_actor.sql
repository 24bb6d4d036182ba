-- Who acted, as columns one can query (the `actor` JSON keeps the whole
-- record): the kind of actor (system, key, session, user) and, for a
-- person the host application authenticated, the host's id and name.
ALTER TABLE audit_events ADD COLUMN actor_kind TEXT NOT NULL DEFAULT 'system';
ALTER TABLE audit_events ADD COLUMN actor_user_id TEXT;
ALTER TABLE audit_events ADD COLUMN actor_user_name TEXT;

-- Events written before this migration: the kind follows from the key and
-- session they name.
UPDATE audit_events SET actor_kind = CASE
    WHEN actor->>'session_id' IS NOT NULL THEN 'session'
    WHEN actor->>'key_id' IS NOT NULL THEN 'key'
    ELSE 'system'
END;

CREATE INDEX audit_by_user ON audit_events (account_id, actor_user_id, at DESC, id DESC)
    WHERE actor_user_id IS NOT NULL;
