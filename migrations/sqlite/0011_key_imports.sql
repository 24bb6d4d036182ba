-- Keys imported from another system (Keyward::import_key): the id each had
-- there (importing it again finds the same key) and the alias its old key
-- string is found by. Lookups join keys, so a row outlives its deleted key
-- only until the next import reuses its external id or alias (no foreign
-- key: a later migration that rebuilds `keys` must not cascade into it).
CREATE TABLE key_imports (
    key_id      TEXT NOT NULL PRIMARY KEY,
    external_id TEXT NOT NULL UNIQUE,
    alias       TEXT NOT NULL UNIQUE
);
