-- Rate limits and usage credits of keys, applications and accounts
-- (issue 16): one row per owner that has any. The GCRA state of the rate
-- limits lives in each instance (or Redis), never here; the credits'
-- count is durable: spent in batches, refilled at the period start.
CREATE TABLE owner_limits (
    owner_kind TEXT NOT NULL,          -- 'key', 'app', 'account'
    owner_id TEXT NOT NULL,
    ratelimits TEXT NOT NULL,          -- JSON array of rate limits
    credits_set BIGINT,              -- credits as last set (NULL: none)
    credits_remaining BIGINT,        -- credits left now
    refill_interval TEXT,              -- 'daily', 'monthly' or NULL
    refill_amount BIGINT,
    credits_period BIGINT NOT NULL DEFAULT 0, -- refill period start (unix s)
    version BIGINT NOT NULL,
    PRIMARY KEY (owner_kind, owner_id)
);
