-- The account-wide activity log (GET /events) and its live stream
-- (GET /events/stream).
--
-- app_id: the application the event concerns (its own events, and those
-- of its keys). parent_id: the parent of the event's account at the time
-- (an account's parent never changes), so a parent reads its children's
-- events as one index range. actor_key_id: the key that acted (keys and
-- sessions), as a column one can filter on. seq: the order in which events
-- committed (writers are serialized, so a reader that has seen `seq = n`
-- has seen every event committed before it): the stream's position.
ALTER TABLE audit_events ADD COLUMN app_id TEXT;
ALTER TABLE audit_events ADD COLUMN parent_id TEXT;
ALTER TABLE audit_events ADD COLUMN actor_key_id TEXT;
ALTER TABLE audit_events ADD COLUMN seq INTEGER;

UPDATE audit_events SET
    actor_key_id = json_extract(actor, '$.key_id'),
    app_id = COALESCE(
        json_extract(details, '$.app_id'),
        (SELECT k.app_id FROM keys k WHERE k.id = audit_events.key_id)),
    parent_id = (SELECT a.parent FROM accounts a WHERE a.id = audit_events.account_id);

UPDATE audit_events SET seq = r.n
    FROM (SELECT id, ROW_NUMBER() OVER (ORDER BY at, id) AS n FROM audit_events) AS r
    WHERE audit_events.id = r.id;

-- Every filter of GET /events is an index whose prefix is the filter and
-- whose rest is the keyset order (at, id), newest first.
CREATE UNIQUE INDEX audit_by_seq ON audit_events (seq);
CREATE INDEX audit_by_app ON audit_events (account_id, app_id, at, id)
    WHERE app_id IS NOT NULL;
CREATE INDEX audit_by_parent ON audit_events (parent_id, at, id)
    WHERE parent_id IS NOT NULL;
CREATE INDEX audit_by_action ON audit_events (account_id, action, at, id);
CREATE INDEX audit_by_actor_kind ON audit_events (account_id, actor_kind, at, id);
CREATE INDEX audit_by_actor_key ON audit_events (account_id, actor_key_id, at, id)
    WHERE actor_key_id IS NOT NULL;
