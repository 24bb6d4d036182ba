-- Usage outcomes: requests with a valid credential refused by a rate limit
-- (`rate_limited`) or because the credits were spent (`usage_exceeded`)
-- are counted apart from successes and failures.
ALTER TABLE usage ADD COLUMN rate_limited BIGINT NOT NULL DEFAULT 0;
ALTER TABLE usage ADD COLUMN usage_exceeded BIGINT NOT NULL DEFAULT 0;
ALTER TABLE usage_rollup ADD COLUMN rate_limited BIGINT NOT NULL DEFAULT 0;
ALTER TABLE usage_rollup ADD COLUMN usage_exceeded BIGINT NOT NULL DEFAULT 0;

-- The ranking's volume counts every outcome, so a consumer refused by its
-- limits still ranks by the calls it makes.
DROP INDEX usage_rollup_ranked;
CREATE INDEX usage_rollup_ranked ON usage_rollup
    (account_id, kind, origin, category, hour,
     (successes + failures + rate_limited + usage_exceeded) DESC, grp_id);
