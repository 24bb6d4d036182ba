-- Management queries at scale: every list filter has an index whose
-- prefix is the filter and whose rest is the keyset order, so a page
-- (first or deep) is an index range; name search is an FTS5 trigram
-- index, not a scan.

-- GET /apikeys?status=
CREATE INDEX keys_by_status ON keys (account_id, status, created_at, id);
-- GET /apikeys?application=
CREATE INDEX keys_by_application ON keys (account_id, application, created_at, id)
    WHERE application IS NOT NULL;
-- One key's events, newest first (account and key both equalities).
CREATE INDEX audit_by_account_key ON audit_events (account_id, key_id, at, id)
    WHERE key_id IS NOT NULL;

-- Name search. The FTS rowid is a stable sequence number of its own
-- (`keys` has no INTEGER PRIMARY KEY, so its rowid may change on VACUUM).
CREATE TABLE key_search (
    seq    INTEGER PRIMARY KEY,
    key_id TEXT NOT NULL UNIQUE
) STRICT;

CREATE VIRTUAL TABLE key_search_fts USING fts5(name, tokenize = 'trigram');

INSERT INTO key_search (key_id) SELECT id FROM keys;
INSERT INTO key_search_fts (rowid, name)
    SELECT s.seq, k.name_lower FROM key_search s JOIN keys k ON k.id = s.key_id;

CREATE TRIGGER keys_search_insert AFTER INSERT ON keys BEGIN
    INSERT INTO key_search (key_id) VALUES (new.id);
    INSERT INTO key_search_fts (rowid, name)
        VALUES ((SELECT seq FROM key_search WHERE key_id = new.id), new.name_lower);
END;

CREATE TRIGGER keys_search_update AFTER UPDATE OF name_lower ON keys
    WHEN old.name_lower IS NOT new.name_lower BEGIN
    UPDATE key_search_fts SET name = new.name_lower
        WHERE rowid = (SELECT seq FROM key_search WHERE key_id = new.id);
END;

CREATE TRIGGER keys_search_delete AFTER DELETE ON keys BEGIN
    DELETE FROM key_search_fts
        WHERE rowid = (SELECT seq FROM key_search WHERE key_id = old.id);
    DELETE FROM key_search WHERE key_id = old.id;
END;
