//! [`Credits`]: a metered allowance of calls, refilled daily or monthly.
//!
//! Each accepted verification spends its cost (1, or what the route says)
//! from every owner of the key that has credits (the key, its application,
//! its account); at zero the owner's calls get
//! [`Error::UsageExceeded`](crate::Error::UsageExceeded) until the refill.
//!
//! Credits are durable in the store. Each instance spends from its own view
//! of the remaining count and writes what it spent in batches (like usage);
//! the flush also re-reads the stored count. How far several instances
//! together can overshoot is bounded by what they spend between two
//! flushes: with N instances each flushing every F, at most
//! `(N - 1) × (what one instance accepts in F)` beyond the stored count,
//! and never more than `(N - 1) × remaining` as last read. One instance
//! never overshoots.

use serde::{Deserialize, Serialize};
use time::{Date, Month, OffsetDateTime, Time};

/// Largest `remaining` and refill `amount`: 2^53 (exact in JSON numbers).
pub const MAX_CREDITS: u64 = 1 << 53;

/// Usage credits: how many remain, and how they refill.
///
/// ```
/// use keyward::{Credits, Refill, RefillInterval};
/// let c: Credits = serde_json::from_str(
///     r#"{"remaining": 1000, "refill": {"interval": "monthly", "amount": 1000}}"#,
/// ).unwrap();
/// assert_eq!(c, Credits::new(1000).refill(Refill::new(RefillInterval::Monthly, 1000)));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Credits {
    /// Credits left (until the next refill, if any).
    pub remaining: u64,
    /// How they refill; none: they run out for good.
    #[serde(default)]
    pub refill: Option<Refill>,
}

impl Credits {
    /// `remaining` credits, never refilled.
    pub fn new(remaining: u64) -> Self {
        Self {
            remaining,
            refill: None,
        }
    }

    /// Refilled like this.
    pub fn refill(mut self, refill: Refill) -> Self {
        self.refill = Some(refill);
        self
    }

    pub(crate) fn check(&self) -> Result<(), (&'static str, &'static str)> {
        if self.remaining > MAX_CREDITS {
            return Err(("remaining", "must be at most 9007199254740992"));
        }
        match self.refill {
            Some(r) if r.amount == 0 || r.amount > MAX_CREDITS => {
                Err(("refill.amount", "must be between 1 and 9007199254740992"))
            }
            _ => Ok(()),
        }
    }
}

/// A refill: `remaining` is set to `amount` at the start of every UTC day
/// or month.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Refill {
    /// Daily or monthly.
    pub interval: RefillInterval,
    /// The count `remaining` is set to.
    pub amount: u64,
}

impl Refill {
    /// Sets `remaining` to `amount` every `interval`.
    pub fn new(interval: RefillInterval, amount: u64) -> Self {
        Self { interval, amount }
    }
}

/// How often credits refill (at 00:00 UTC, monthly on the 1st).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum RefillInterval {
    /// Every day at 00:00 UTC.
    Daily,
    /// The 1st of every month at 00:00 UTC.
    Monthly,
}

impl RefillInterval {
    /// Stored form.
    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            RefillInterval::Daily => "daily",
            RefillInterval::Monthly => "monthly",
        }
    }

    /// From the stored form.
    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    pub(crate) fn parse(s: &str) -> Option<Self> {
        match s {
            "daily" => Some(RefillInterval::Daily),
            "monthly" => Some(RefillInterval::Monthly),
            _ => None,
        }
    }

    /// The start (unix seconds) of the period holding `unix_nanos`.
    pub(crate) fn period_start(self, unix_nanos: i64) -> i64 {
        let secs = unix_nanos.div_euclid(1_000_000_000);
        match self {
            RefillInterval::Daily => secs - secs.rem_euclid(86_400),
            RefillInterval::Monthly => {
                let Ok(t) = OffsetDateTime::from_unix_timestamp(secs) else {
                    return secs - secs.rem_euclid(86_400);
                };
                Date::from_calendar_date(t.year(), t.month(), 1).map_or(secs, |d| {
                    d.with_time(Time::MIDNIGHT).assume_utc().unix_timestamp()
                })
            }
        }
    }

    /// The start (unix seconds) of the period after the one holding
    /// `unix_nanos`.
    pub(crate) fn next_start(self, unix_nanos: i64) -> i64 {
        let start = self.period_start(unix_nanos);
        match self {
            RefillInterval::Daily => start + 86_400,
            RefillInterval::Monthly => {
                let Ok(t) = OffsetDateTime::from_unix_timestamp(start) else {
                    return start + 86_400;
                };
                let (y, m) = match t.month() {
                    Month::December => (t.year() + 1, Month::January),
                    m => (t.year(), m.next()),
                };
                Date::from_calendar_date(y, m, 1).map_or(start + 86_400, |d| {
                    d.with_time(Time::MIDNIGHT).assume_utc().unix_timestamp()
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn nanos(t: OffsetDateTime) -> i64 {
        (t.unix_timestamp_nanos()) as i64
    }

    #[test]
    fn daily_periods_start_at_utc_midnight() {
        let t = nanos(datetime!(2026-03-14 17:30 UTC));
        let d = RefillInterval::Daily;
        assert_eq!(
            d.period_start(t),
            datetime!(2026-03-14 0:00 UTC).unix_timestamp()
        );
        assert_eq!(
            d.next_start(t),
            datetime!(2026-03-15 0:00 UTC).unix_timestamp()
        );
    }

    #[test]
    fn monthly_periods_start_on_the_first_and_wrap_the_year() {
        let m = RefillInterval::Monthly;
        let t = nanos(datetime!(2026-12-31 23:59 UTC));
        assert_eq!(
            m.period_start(t),
            datetime!(2026-12-01 0:00 UTC).unix_timestamp()
        );
        assert_eq!(
            m.next_start(t),
            datetime!(2027-01-01 0:00 UTC).unix_timestamp()
        );
    }

    #[test]
    fn bounds_name_the_field() {
        assert_eq!(
            Credits::new(MAX_CREDITS + 1).check().expect_err("big").0,
            "remaining"
        );
        let zero = Credits::new(1).refill(Refill::new(RefillInterval::Daily, 0));
        assert_eq!(zero.check().expect_err("zero").0, "refill.amount");
        assert!(
            serde_json::from_str::<Credits>(
                r#"{"remaining":1,"refill":{"interval":"weekly","amount":1}}"#
            )
            .is_err()
        );
    }
}
