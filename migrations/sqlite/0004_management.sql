-- keyward schema: the management plane (applications, account status).

-- Accounts can be switched off (their keys and sessions stop), and are
-- searched by name.
ALTER TABLE accounts ADD COLUMN status TEXT NOT NULL DEFAULT 'active';
ALTER TABLE accounts ADD COLUMN name_lower TEXT NOT NULL DEFAULT '';
-- (SQLite's lower() folds ASCII only; new rows get full Unicode folding.)
UPDATE accounts SET name_lower = lower(name);
CREATE INDEX accounts_by_parent ON accounts (parent, created_at, id);

-- Applications: a titled group of keys of one account, switched off and on
-- as a whole. A key belongs to at most one (`keys.app_id`).
CREATE TABLE apps (
    id          TEXT PRIMARY KEY NOT NULL,
    account_id  TEXT NOT NULL,
    title       TEXT NOT NULL,
    title_lower TEXT NOT NULL,
    description TEXT NOT NULL,
    status      TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
) STRICT;

CREATE INDEX apps_by_account ON apps (account_id, created_at, id);

ALTER TABLE keys ADD COLUMN app_id TEXT;

CREATE INDEX keys_by_app ON keys (app_id) WHERE app_id IS NOT NULL;

-- Today's free-text `application` labels become applications: one per
-- distinct label and account, created when its first key was, active.
INSERT INTO apps (id, account_id, title, title_lower, description, status, created_at, updated_at)
SELECT 'app_' || lower(hex(randomblob(12))), account_id, application, lower(application), '',
       'active', MIN(created_at), MIN(created_at)
FROM keys WHERE application IS NOT NULL
GROUP BY account_id, application;

UPDATE keys SET app_id = (
    SELECT apps.id FROM apps
    WHERE apps.account_id = keys.account_id AND apps.title = keys.application
) WHERE application IS NOT NULL;

-- The management API's runtime allowlist of browser origins (the server's
-- own origin is a built-in, protected entry and is not stored).
CREATE TABLE allowed_origins (
    id         TEXT PRIMARY KEY NOT NULL,
    origin     TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL
) STRICT;
