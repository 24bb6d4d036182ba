-- One application's keys in list order (GET /apikeys?app_id=): an index
-- range in (created_at, id) order, like the status and label filters.
CREATE INDEX keys_by_app_order ON keys (account_id, app_id, created_at, id)
    WHERE app_id IS NOT NULL;
