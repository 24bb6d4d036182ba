-- keyward schema v1 (SQLite). Times are unix microseconds (INTEGER, UTC).
-- JSON values (permissions, networks, metadata, actor, details) are TEXT.
-- Secrets exist only as argon2id PHC strings; session tokens only as digests.

CREATE TABLE accounts (
    id          TEXT PRIMARY KEY NOT NULL,
    name        TEXT NOT NULL,
    parent      TEXT,
    permissions TEXT NOT NULL,
    created_at  INTEGER NOT NULL
) STRICT;

CREATE TABLE keys (
    id                   TEXT PRIMARY KEY NOT NULL,
    account_id           TEXT NOT NULL,
    name                 TEXT NOT NULL,
    name_lower           TEXT NOT NULL,
    description          TEXT NOT NULL,
    application          TEXT,
    permissions          TEXT NOT NULL,
    status               TEXT NOT NULL,
    protected            INTEGER NOT NULL,
    created_at           INTEGER NOT NULL,
    updated_at           INTEGER NOT NULL,
    last_used_at         INTEGER,
    expires_at           INTEGER,
    allowed_cidrs        TEXT NOT NULL,
    metadata             TEXT NOT NULL,
    secret_hash          TEXT NOT NULL,
    generation           INTEGER NOT NULL,
    previous_hash        TEXT,
    previous_valid_until INTEGER,
    version              INTEGER NOT NULL
) STRICT;

CREATE INDEX keys_by_account ON keys (account_id, created_at, id);

CREATE TABLE sessions (
    id             TEXT PRIMARY KEY NOT NULL,
    key_id         TEXT NOT NULL,
    account_id     TEXT NOT NULL,
    created_at     INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL,
    key_generation INTEGER NOT NULL,
    token_digest   BLOB NOT NULL
) STRICT;

CREATE INDEX sessions_by_key ON sessions (key_id);
CREATE INDEX sessions_by_expiry ON sessions (expires_at);

CREATE TABLE audit_events (
    id         TEXT PRIMARY KEY NOT NULL,
    at         INTEGER NOT NULL,
    action     TEXT NOT NULL,
    account_id TEXT NOT NULL,
    key_id     TEXT,
    session_id TEXT,
    actor      TEXT NOT NULL,
    client_ip  TEXT,
    details    TEXT NOT NULL
) STRICT;

CREATE INDEX audit_by_account ON audit_events (account_id, at, id);
CREATE INDEX audit_by_key ON audit_events (key_id, at, id);

CREATE TABLE usage (
    key_id       TEXT NOT NULL,
    origin       TEXT NOT NULL,
    category     TEXT NOT NULL,
    hour         INTEGER NOT NULL,
    account_id   TEXT NOT NULL,
    successes    INTEGER NOT NULL,
    failures     INTEGER NOT NULL,
    last_used_at INTEGER,
    PRIMARY KEY (key_id, origin, category, hour)
) STRICT;

CREATE INDEX usage_by_account ON usage (account_id, hour);
