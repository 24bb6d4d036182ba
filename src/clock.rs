//! The [`Clock`] every time reading goes through, so tests control time.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use time::{Duration, OffsetDateTime};

/// A source of the current time.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// The current UTC time.
    fn now(&self) -> OffsetDateTime;

    /// The current time as nanoseconds since the Unix epoch, for the
    /// verification hot path and the caches (it is read on every
    /// verification). Override it when it can be read faster than through
    /// [`now`](Self::now); it must tell the same time.
    fn now_unix_nanos(&self) -> i64 {
        i64::try_from(self.now().unix_timestamp_nanos()).unwrap_or(i64::MAX)
    }
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)]
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }

    #[inline]
    fn now_unix_nanos(&self) -> i64 {
        realtime_nanos()
    }
}

/// `CLOCK_REALTIME` in Unix nanoseconds, read through the vDSO directly:
/// std's `SystemTime::now().duration_since(UNIX_EPOCH)` adds about 17 ns
/// of conversions to every verification (`cargo bench --bench verify --
/// clock`). The kernel's coarse clock (about 3 ns) is not used: it was
/// measured lagging the precise one by more than a tick on a VM, so it
/// cannot bound expiries.
#[cfg(target_os = "linux")]
#[inline]
fn realtime_nanos() -> i64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Realtime);
    t.tv_sec
        .saturating_mul(1_000_000_000)
        .saturating_add(t.tv_nsec)
}

/// `SystemTime::now()` in Unix nanoseconds (0 before 1970).
#[cfg(not(target_os = "linux"))]
#[allow(clippy::disallowed_methods)]
fn realtime_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// A clock that moves only when told to; clones share the same time.
///
/// ```
/// use keyward::{Clock, ManualClock};
/// let clock = ManualClock::new(time::macros::datetime!(2030-01-01 0:00 UTC));
/// clock.advance(time::Duration::seconds(31));
/// assert_eq!(clock.now(), time::macros::datetime!(2030-01-01 0:00:31 UTC));
/// ```
#[derive(Clone)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    /// A clock standing at `start`.
    pub fn new(start: OffsetDateTime) -> Self {
        Self(Arc::new(AtomicI64::new(to_nanos(start))))
    }

    /// Moves the clock forward (or back, for a negative `by`).
    pub fn advance(&self, by: Duration) {
        let by = i64::try_from(by.whole_nanoseconds()).unwrap_or(i64::MAX);
        self.0.fetch_add(by, Ordering::SeqCst);
    }

    /// Sets the clock to `to`.
    pub fn set(&self, to: OffsetDateTime) {
        self.0.store(to_nanos(to), Ordering::SeqCst);
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new(time::macros::datetime!(2030-01-01 0:00 UTC))
    }
}

fn to_nanos(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos()).unwrap_or(i64::MAX)
}

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        let n = self.0.load(Ordering::SeqCst);
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(n))
            .unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }

    fn now_unix_nanos(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

impl fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ManualClock").field(&self.now()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hot path's clock tells the same time as `now`.
    #[test]
    #[allow(clippy::disallowed_methods)]
    fn system_clock_nanos_read_the_realtime_clock() {
        let precise =
            || i64::try_from(OffsetDateTime::now_utc().unix_timestamp_nanos()).unwrap_or(i64::MAX);
        for _ in 0..1_000 {
            let before = precise();
            let nanos = SystemClock.now_unix_nanos();
            let after = precise();
            assert!(
                (before..=after).contains(&nanos),
                "{before} {nanos} {after}"
            );
        }
    }
}
