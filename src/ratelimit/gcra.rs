//! GCRA (the generic cell rate algorithm) on one atomic: the theoretical
//! arrival time (TAT) of the next call. A call at `now` is allowed when
//! `max(TAT, now) + interval - now <= burst × interval`, and then moves the
//! TAT by one interval. Lock-free (one compare-and-swap), fair (calls are
//! spaced evenly, a burst is bounded), and the state is one number per
//! limit, which is why Redis can hold it too.

use std::sync::atomic::{AtomicI64, Ordering};

/// One limit's state.
#[derive(Debug, Default)]
pub(crate) struct Cell {
    tat: AtomicI64,
}

/// What a call against a [`Cell`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Take {
    /// Allowed: calls still allowed now, and nanoseconds until the limit
    /// is fully replenished.
    Allowed { remaining: u32, reset: i64 },
    /// Refused: nanoseconds until one call is allowed again.
    Denied { retry_after: i64 },
    /// A shared limit without a leased call here: lease from Redis, then
    /// decide again.
    #[cfg(feature = "redis")]
    NeedLease,
    /// A shared limit while Redis is down, fail-closed.
    #[cfg(feature = "redis")]
    Unavailable,
}

impl Cell {
    /// A cell carrying over `tat`.
    pub(crate) fn with_tat(tat: i64) -> Self {
        Self {
            tat: AtomicI64::new(tat),
        }
    }

    /// The current TAT.
    #[cfg(test)]
    pub(crate) fn tat(&self) -> i64 {
        self.tat.load(Ordering::Relaxed)
    }

    /// One call at `now` for a limit spacing calls `interval` apart with
    /// `burst` at once.
    #[inline]
    pub(crate) fn take(&self, interval: i64, burst: u32, now: i64) -> Take {
        let capacity = interval.saturating_mul(i64::from(burst));
        let mut tat = self.tat.load(Ordering::Relaxed);
        loop {
            let next = tat.max(now).saturating_add(interval);
            let ahead = next.saturating_sub(now);
            if ahead > capacity {
                return Take::Denied {
                    retry_after: ahead - capacity,
                };
            }
            match self
                .tat
                .compare_exchange_weak(tat, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => {
                    return Take::Allowed {
                        remaining: ((capacity - ahead) / interval).clamp(0, i64::from(u32::MAX))
                            as u32,
                        reset: ahead,
                    };
                }
                Err(seen) => tat = seen,
            }
        }
    }

    /// Gives back one call taken at `now` (another limit refused the
    /// request): the TAT moves back one interval, never before `now`.
    #[cold]
    pub(crate) fn give_back(&self, interval: i64, now: i64) {
        let _ = self
            .tat
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |tat| {
                Some(tat.saturating_sub(interval).max(now))
            });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: i64 = 1_000_000_000;

    #[test]
    fn five_per_minute_allows_five_then_waits_twelve_seconds() {
        let c = Cell::default();
        let interval = 12 * SEC;
        let now = 1_000 * SEC;
        for left in (0..5).rev() {
            assert!(
                matches!(c.take(interval, 5, now), Take::Allowed { remaining, .. } if remaining == left)
            );
        }
        assert_eq!(
            c.take(interval, 5, now),
            Take::Denied {
                retry_after: 12 * SEC
            }
        );
        assert_eq!(
            c.take(interval, 5, now + 11 * SEC),
            Take::Denied { retry_after: SEC }
        );
        assert!(matches!(
            c.take(interval, 5, now + 12 * SEC),
            Take::Allowed { remaining: 0, .. }
        ));
    }

    #[test]
    fn burst_smaller_than_limit_spaces_calls() {
        let c = Cell::default();
        let interval = SEC / 10; // 10 per second
        let now = 50 * SEC;
        assert!(matches!(c.take(interval, 2, now), Take::Allowed { .. }));
        assert!(matches!(c.take(interval, 2, now), Take::Allowed { .. }));
        assert!(matches!(c.take(interval, 2, now), Take::Denied { .. }));
        assert!(matches!(
            c.take(interval, 2, now + interval),
            Take::Allowed { .. }
        ));
    }

    #[test]
    fn given_back_calls_are_allowed_again() {
        let c = Cell::default();
        let now = 10 * SEC;
        assert!(matches!(c.take(SEC, 1, now), Take::Allowed { .. }));
        assert!(matches!(c.take(SEC, 1, now), Take::Denied { .. }));
        c.give_back(SEC, now);
        assert!(matches!(c.take(SEC, 1, now), Take::Allowed { .. }));
    }

    #[test]
    fn concurrent_takes_never_exceed_the_burst() {
        let c = std::sync::Arc::new(Cell::default());
        let allowed = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (c, allowed) = (c.clone(), allowed.clone());
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        if matches!(c.take(SEC, 100, 5 * SEC), Take::Allowed { .. }) {
                            allowed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("thread");
        }
        assert_eq!(allowed.load(Ordering::Relaxed), 100);
    }
}
