-- A rare name search reads its trigram matches from key_search in the
-- list's order (account, then created_at and id) and only then the keys
-- of the page: the account and the creation time of each key go next to
-- its search sequence number (neither changes after the key is created).
ALTER TABLE key_search ADD COLUMN account_id TEXT;
ALTER TABLE key_search ADD COLUMN created_at INTEGER;

UPDATE key_search SET
    account_id = (SELECT k.account_id FROM keys k WHERE k.id = key_search.key_id),
    created_at = (SELECT k.created_at FROM keys k WHERE k.id = key_search.key_id);

DROP TRIGGER keys_search_insert;
CREATE TRIGGER keys_search_insert AFTER INSERT ON keys BEGIN
    INSERT INTO key_search (key_id, account_id, created_at)
        VALUES (new.id, new.account_id, new.created_at);
    INSERT INTO key_search_fts (rowid, name)
        VALUES ((SELECT seq FROM key_search WHERE key_id = new.id), new.name_lower);
END;

CREATE TRIGGER keys_search_order_update AFTER UPDATE OF account_id, created_at ON keys
    WHEN old.account_id IS NOT new.account_id OR old.created_at IS NOT new.created_at BEGIN
    UPDATE key_search SET account_id = new.account_id, created_at = new.created_at
        WHERE key_id = new.id;
END;
