-- Management queries at scale: every list filter has an index whose
-- prefix is the filter and whose rest is the keyset order, so a page
-- (first or deep) is an index range; name search is a pg_trgm GIN index,
-- not a scan.
-- GET /apikeys?q= (LIKE '%needle%' on name_lower): pg_trgm, installed in
-- public unless the database has it already (in whatever schema: the
-- operator class is named with it, since keyward's own schema may be the
-- only one on the search path). Two stores migrating at once may both
-- try to install it; the loser finds it installed.
DO $$
DECLARE
    ext_schema text;
BEGIN
    BEGIN
        CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA public;
    EXCEPTION WHEN unique_violation OR duplicate_object THEN
        NULL;
    END;
    SELECT n.nspname INTO ext_schema
        FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
        WHERE e.extname = 'pg_trgm';
    EXECUTE format(
        'CREATE INDEX keys_name_trgm ON keys USING gin (name_lower %I.gin_trgm_ops)',
        ext_schema);
END
$$;
-- GET /apikeys?status=
CREATE INDEX keys_by_status ON keys (account_id, status, created_at, id);
-- GET /apikeys?application=
CREATE INDEX keys_by_application ON keys (account_id, application, created_at, id)
    WHERE application IS NOT NULL;
-- One key's events, newest first (account and key both equalities).
CREATE INDEX audit_by_account_key ON audit_events (account_id, key_id, at DESC, id DESC)
    WHERE key_id IS NOT NULL;
