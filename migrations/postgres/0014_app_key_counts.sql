-- An application's key counts (active, inactive, protected: three
-- subqueries per listed application) answered by index-only scans: with
-- keys_by_app (app_id) each count read every key's row.
CREATE INDEX keys_by_app_status ON keys (app_id, status, protected)
    WHERE app_id IS NOT NULL;
DROP INDEX keys_by_app;
