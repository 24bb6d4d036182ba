-- keyward schema v1 (PostgreSQL). Times are timestamptz (microseconds).
-- Secrets exist only as argon2id PHC strings; session tokens only as digests.

CREATE TABLE accounts (
    id          TEXT COLLATE "C" PRIMARY KEY,
    name        TEXT NOT NULL,
    parent      TEXT,
    permissions JSONB NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL
);

CREATE TABLE keys (
    id                   TEXT COLLATE "C" PRIMARY KEY,
    account_id           TEXT NOT NULL,
    name                 TEXT NOT NULL,
    name_lower           TEXT NOT NULL,
    description          TEXT NOT NULL,
    application          TEXT,
    permissions          JSONB NOT NULL,
    status               TEXT NOT NULL,
    protected            BOOLEAN NOT NULL,
    created_at           TIMESTAMPTZ NOT NULL,
    updated_at           TIMESTAMPTZ NOT NULL,
    last_used_at         TIMESTAMPTZ,
    expires_at           TIMESTAMPTZ,
    allowed_cidrs        JSONB NOT NULL,
    metadata             JSONB NOT NULL,
    secret_hash          TEXT NOT NULL,
    generation           BIGINT NOT NULL,
    previous_hash        TEXT,
    previous_valid_until TIMESTAMPTZ,
    version              BIGINT NOT NULL
);

-- Listing: account + (created_at, id) keyset order.
CREATE INDEX keys_by_account ON keys (account_id, created_at, id);
-- Name search ("contains", case-insensitive) within an account and status.
CREATE INDEX keys_by_account_name ON keys (account_id, name_lower text_pattern_ops);

CREATE TABLE sessions (
    id             TEXT COLLATE "C" PRIMARY KEY,
    key_id         TEXT NOT NULL,
    account_id     TEXT NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL,
    expires_at     TIMESTAMPTZ NOT NULL,
    key_generation BIGINT NOT NULL,
    token_digest   BYTEA NOT NULL
);

CREATE INDEX sessions_by_key ON sessions (key_id);
CREATE INDEX sessions_by_expiry ON sessions (expires_at);

CREATE TABLE audit_events (
    id         TEXT COLLATE "C" PRIMARY KEY,
    at         TIMESTAMPTZ NOT NULL,
    action     TEXT NOT NULL,
    account_id TEXT NOT NULL,
    key_id     TEXT,
    session_id TEXT,
    actor      JSONB NOT NULL,
    client_ip  TEXT,
    details    JSONB NOT NULL
);

CREATE INDEX audit_by_account ON audit_events (account_id, at DESC, id DESC);
CREATE INDEX audit_by_key ON audit_events (key_id, at DESC, id DESC);

CREATE TABLE usage (
    key_id       TEXT COLLATE "C" NOT NULL,
    origin       TEXT COLLATE "C" NOT NULL,
    category     TEXT COLLATE "C" NOT NULL,
    hour         TIMESTAMPTZ NOT NULL,
    account_id   TEXT NOT NULL,
    successes    BIGINT NOT NULL,
    failures     BIGINT NOT NULL,
    last_used_at TIMESTAMPTZ,
    PRIMARY KEY (key_id, origin, category, hour)
);

CREATE INDEX usage_by_account ON usage (account_id, hour);

-- The change feed's durable half: every revoking change appends a row in
-- the same transaction as the change (and pg_notify's it); instances poll
-- `id > last_seen` as a backstop to LISTEN/NOTIFY. Rows are pruned after
-- an hour.
CREATE TABLE revocations (
    id     BIGSERIAL PRIMARY KEY,
    kind   TEXT NOT NULL,
    ref_id TEXT NOT NULL,
    at     TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX revocations_by_time ON revocations (at);
