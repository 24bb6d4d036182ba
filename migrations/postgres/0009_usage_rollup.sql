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
    account_id TEXT COLLATE "C" NOT NULL,
    kind       TEXT COLLATE "C" NOT NULL,
    grp_id     TEXT COLLATE "C" NOT NULL,
    origin     TEXT COLLATE "C" NOT NULL,
    category   TEXT COLLATE "C" NOT NULL,
    hour       TIMESTAMPTZ NOT NULL,
    successes  BIGINT NOT NULL,
    failures   BIGINT NOT NULL,
    PRIMARY KEY (account_id, kind, grp_id, origin, category, hour)
);

-- Top consumers of one hour: volume order within (account, kind, labels,
-- hour), keyset by (volume, grp_id).
CREATE INDEX usage_rollup_ranked ON usage_rollup
    (account_id, kind, origin, category, hour, (successes + failures) DESC, grp_id);

-- When applications and accounts were last used (a flush advances them).
ALTER TABLE apps ADD COLUMN last_used_at TIMESTAMPTZ;
ALTER TABLE accounts ADD COLUMN last_used_at TIMESTAMPTZ;

-- Existing usage, rolled up.
INSERT INTO usage_rollup
SELECT account_id, kind, grp_id, origin, category, hour, SUM(successes), SUM(failures) FROM (
    WITH seed AS (
        SELECT u.account_id, u.key_id, k.app_id, a.parent,
               CASE WHEN w.o = 1 THEN '*' ELSE u.origin END AS origin,
               CASE WHEN w.c = 1 THEN '*' ELSE u.category END AS category,
               u.hour, u.successes, u.failures
        FROM usage u
        CROSS JOIN (VALUES (0, 0), (0, 1), (1, 0), (1, 1)) AS w(o, c)
        LEFT JOIN keys k ON k.id = u.key_id
        LEFT JOIN accounts a ON a.id = u.account_id
    )
    SELECT account_id, 'key' AS kind, key_id AS grp_id, origin, category, hour, successes, failures
        FROM seed
    UNION ALL SELECT account_id, 'app', app_id, origin, category, hour, successes, failures
        FROM seed WHERE app_id IS NOT NULL
    UNION ALL SELECT account_id, 'account', account_id, origin, category, hour, successes, failures
        FROM seed
    UNION ALL SELECT parent, 'account', account_id, origin, category, hour, successes, failures
        FROM seed WHERE parent IS NOT NULL
) s GROUP BY account_id, kind, grp_id, origin, category, hour;

UPDATE apps SET last_used_at = m.t
FROM (SELECT app_id, MAX(last_used_at) AS t FROM keys WHERE app_id IS NOT NULL GROUP BY app_id) m
WHERE apps.id = m.app_id;
UPDATE accounts SET last_used_at = m.t
FROM (SELECT account_id, MAX(last_used_at) AS t FROM keys GROUP BY account_id) m
WHERE accounts.id = m.account_id;
