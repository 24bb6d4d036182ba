-- An application's key counts (active, inactive, protected: three
-- subqueries per listed application) read from the index alone: with
-- keys_by_app (app_id) each count read every key's row, about 300 rows per
-- application and 40 ms for a page of 50 at 100 keys each.
CREATE INDEX keys_by_app_status ON keys (app_id, status, protected)
    WHERE app_id IS NOT NULL;
DROP INDEX keys_by_app;
