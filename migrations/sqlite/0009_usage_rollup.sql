-- Usage rollup: the dashboard's reads are index ranges, not scans.
--
-- Maintained by every usage flush in the same transaction as `usage`.
-- Each row counts one group's verifications in one hour, for one origin and
-- category, where `*` stands for "every origin" / "every category" (labels
-- never contain `*`), so each filter of `GET /usage` is an equality:
--   kind 'key':     grp_id a key of account_id;
--   kind 'app':     grp_id an application of account_id (the key's
--                   application when the count was flushed);
--   kind 'account': grp_id account_id itself, or one of its children
--                   (a child's row is kept under its own id and under its
--                   parent's, the account whose dashboard shows it).
CREATE TABLE usage_rollup (
    account_id TEXT NOT NULL,
    kind       TEXT NOT NULL,
    grp_id     TEXT NOT NULL,
    origin     TEXT NOT NULL,
    category   TEXT NOT NULL,
    hour       INTEGER NOT NULL,
    successes  INTEGER NOT NULL,
    failures   INTEGER NOT NULL,
    PRIMARY KEY (account_id, kind, grp_id, origin, category, hour)
) STRICT;

-- Top consumers of one hour: volume order within (account, kind, labels,
-- hour), keyset by (volume, grp_id).
CREATE INDEX usage_rollup_ranked ON usage_rollup
    (account_id, kind, origin, category, hour, (successes + failures) DESC, grp_id);

-- When applications and accounts were last used (a flush advances them).
ALTER TABLE apps ADD COLUMN last_used_at INTEGER;
ALTER TABLE accounts ADD COLUMN last_used_at INTEGER;

-- Existing usage, rolled up.
CREATE TEMP TABLE usage_rollup_seed AS
SELECT u.account_id AS account_id, u.key_id AS key_id, k.app_id AS app_id, a.parent AS parent,
       CASE WHEN w.o = 1 THEN '*' ELSE u.origin END AS origin,
       CASE WHEN w.c = 1 THEN '*' ELSE u.category END AS category,
       u.hour AS hour, u.successes AS successes, u.failures AS failures
FROM usage u
CROSS JOIN (SELECT 0 AS o, 0 AS c UNION ALL SELECT 0, 1 UNION ALL SELECT 1, 0 UNION ALL SELECT 1, 1) w
LEFT JOIN keys k ON k.id = u.key_id
LEFT JOIN accounts a ON a.id = u.account_id;

INSERT INTO usage_rollup
SELECT account_id, kind, grp_id, origin, category, hour, SUM(successes), SUM(failures) FROM (
    SELECT account_id, 'key' AS kind, key_id AS grp_id, origin, category, hour, successes, failures
        FROM usage_rollup_seed
    UNION ALL SELECT account_id, 'app', app_id, origin, category, hour, successes, failures
        FROM usage_rollup_seed WHERE app_id IS NOT NULL
    UNION ALL SELECT account_id, 'account', account_id, origin, category, hour, successes, failures
        FROM usage_rollup_seed
    UNION ALL SELECT parent, 'account', account_id, origin, category, hour, successes, failures
        FROM usage_rollup_seed WHERE parent IS NOT NULL
) GROUP BY account_id, kind, grp_id, origin, category, hour;

UPDATE apps SET last_used_at = (
    SELECT MAX(k.last_used_at) FROM keys k WHERE k.app_id = apps.id
);
UPDATE accounts SET last_used_at = (
    SELECT MAX(k.last_used_at) FROM keys k WHERE k.account_id = accounts.id
);

DROP TABLE usage_rollup_seed;
