//! [`StoredLimits`]: an owner's limits as the store keeps them.

use crate::ratelimit::{LimitOwner, Limits};

/// An owner's limits as stored (migration 0010, table `owner_limits`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoredLimits {
    /// Whose limits.
    pub owner: LimitOwner,
    /// The rate limits and the credits' configuration (their `remaining`
    /// as last set).
    pub limits: Limits,
    /// Credits remaining now (set to `limits.credits.remaining` when the
    /// limits are written; spent and refilled by
    /// [`spend_credits`](super::KeyStore::spend_credits)).
    pub remaining: u64,
    /// The refill period `remaining` belongs to (its start, unix seconds;
    /// 0 before the first refill).
    pub period: i64,
    /// Moves on every write of the limits, so caches see the change.
    pub version: u64,
}

impl StoredLimits {
    /// `limits` for `owner`, as a new write (`version` is the caller's).
    pub fn new(owner: LimitOwner, limits: Limits, version: u64) -> Self {
        let remaining = limits.credits.map_or(0, |c| c.remaining);
        Self {
            owner,
            limits,
            remaining,
            period: 0,
            version,
        }
    }
}

impl StoredLimits {
    /// [`KeyStore::spend_credits`](super::KeyStore::spend_credits) on this
    /// record (the memory store's; the SQL stores do the same in one
    /// `UPDATE`).
    pub(crate) fn spend(&mut self, spent: u64, period: i64) -> Option<u64> {
        let credits = self.limits.credits?;
        if let Some(r) = credits.refill
            && self.period < period
        {
            self.remaining = r.amount;
            self.period = period;
        }
        self.remaining = self.remaining.saturating_sub(spent);
        Some(self.remaining)
    }
}

/// The row form both SQL stores read and write.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) mod row {
    use super::StoredLimits;
    use crate::credits::{Credits, Refill, RefillInterval};
    use crate::ratelimit::{LimitOwner, Limits};
    use crate::store::StoreResult;
    use crate::store::sql::{corrupt, from_json, to_json};

    /// Columns in `SELECT` order.
    pub(crate) const COLUMNS: &str = "owner_kind, owner_id, ratelimits, credits_set, \
         credits_remaining, refill_interval, refill_amount, credits_period, version";

    /// One row's values.
    pub(crate) struct LimitsRow {
        pub(crate) kind: String,
        pub(crate) id: String,
        pub(crate) ratelimits: String,
        pub(crate) credits_set: Option<i64>,
        pub(crate) remaining: Option<i64>,
        pub(crate) interval: Option<String>,
        pub(crate) amount: Option<i64>,
        pub(crate) period: i64,
        pub(crate) version: i64,
    }

    fn unsigned(v: i64) -> StoreResult<u64> {
        u64::try_from(v).map_err(|_| corrupt("owner_limits"))
    }

    fn signed(v: u64) -> StoreResult<i64> {
        i64::try_from(v).map_err(|_| corrupt("owner_limits"))
    }

    impl LimitsRow {
        /// The row for `s`.
        pub(crate) fn of(s: &StoredLimits) -> StoreResult<Self> {
            let c = s.limits.credits;
            Ok(Self {
                kind: s.owner.kind().to_owned(),
                id: s.owner.id().to_owned(),
                ratelimits: to_json(&s.limits.ratelimits)?,
                credits_set: c.map(|c| signed(c.remaining)).transpose()?,
                remaining: c.map(|_| signed(s.remaining)).transpose()?,
                interval: c
                    .and_then(|c| c.refill)
                    .map(|r| r.interval.as_str().to_owned()),
                amount: c
                    .and_then(|c| c.refill)
                    .map(|r| signed(r.amount))
                    .transpose()?,
                period: s.period,
                version: signed(s.version)?,
            })
        }

        /// The stored limits it holds.
        pub(crate) fn stored(self) -> StoreResult<StoredLimits> {
            let owner =
                LimitOwner::parse(&self.kind, &self.id).ok_or_else(|| corrupt("owner_limits"))?;
            let refill = match (self.interval, self.amount) {
                (Some(i), Some(a)) => Some(Refill::new(
                    RefillInterval::parse(&i).ok_or_else(|| corrupt("owner_limits"))?,
                    unsigned(a)?,
                )),
                (None, None) => None,
                _ => return Err(corrupt("owner_limits")),
            };
            let credits = self
                .credits_set
                .map(|set| {
                    Ok::<_, crate::store::StoreError>(Credits {
                        remaining: unsigned(set)?,
                        refill,
                    })
                })
                .transpose()?;
            Ok(StoredLimits {
                owner,
                limits: Limits {
                    ratelimits: from_json(&self.ratelimits, "owner_limits")?,
                    credits,
                },
                remaining: self.remaining.map(unsigned).transpose()?.unwrap_or(0),
                period: self.period,
                version: unsigned(self.version)?,
            })
        }
    }
}
