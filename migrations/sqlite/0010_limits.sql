-- Rate limits and usage credits of keys, applications and accounts
-- (issue 16): one row per owner that has any. The GCRA state of the rate
-- limits lives in each instance (or Redis), never here; the credits'
-- count is durable: spent in batches, refilled at the period start.
CREATE TABLE owner_limits (
    owner_kind TEXT NOT NULL,          -- 'key', 'app', 'account'
    owner_id TEXT NOT NULL,
    ratelimits TEXT NOT NULL,          -- JSON array of rate limits
    credits_set INTEGER,              -- credits as last set (NULL: none)
    credits_remaining INTEGER,        -- credits left now
    refill_interval TEXT,              -- 'daily', 'monthly' or NULL
    refill_amount INTEGER,
    credits_period INTEGER NOT NULL DEFAULT 0, -- refill period start (unix s)
    version INTEGER NOT NULL,
    PRIMARY KEY (owner_kind, owner_id)
);
