//! [`SharedCell`]: one shared limit as this instance sees it — the calls
//! it leased from the Redis cell, spent with atomics on the warm path, and
//! the local share used while Redis is down (fail-open).

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU32, Ordering};

use super::{Backend, FailurePolicy, Leased};
use crate::ratelimit::gcra::{Cell, Take};
use crate::ratelimit::{LimitOwner, RateLimit};

/// Share of a limit all instances' leases may hold together: 1/100.
const LEASE_SHARE: u32 = 100;

/// One shared limit on this instance.
#[derive(Debug)]
pub(crate) struct SharedCell {
    backend: Arc<Backend>,
    key: String,
    /// The limit's interval in microseconds (Redis's clock unit).
    interval_us: f64,
    burst: u32,
    /// Calls asked for per lease.
    lease: u32,
    /// How long leased calls are kept before they go back (nanoseconds).
    ttl: i64,
    /// Leased calls not yet spent.
    tokens: AtomicI64,
    /// When the current lease ages out (unix nanoseconds).
    lease_until: AtomicI64,
    /// Redis refused a lease: refused here until then (unix nanoseconds).
    denied_until: AtomicI64,
    /// What Redis said remained after the last lease.
    remaining: AtomicU32,
    /// When Redis said the limit is fully replenished (unix nanoseconds).
    reset_at: AtomicI64,
    /// The local share while Redis is down (fail-open).
    fallback: Cell,
    fallback_interval: i64,
    fallback_burst: u32,
    /// One lease request at a time per limit on this instance.
    fetching: tokio::sync::Mutex<()>,
}

/// The lease size for `spec` over `instances`: one call for small limits,
/// at most 1/100 of the limit over all instances for large ones.
pub(crate) fn lease_size(spec: &RateLimit, instances: u32) -> u32 {
    (spec.limit.min(spec.burst) / LEASE_SHARE.saturating_mul(instances.max(1))).max(1)
}

impl SharedCell {
    /// The shared state of `owner`'s limit `spec`.
    pub(crate) fn new(backend: &Arc<Backend>, owner: &LimitOwner, spec: &RateLimit) -> Self {
        let interval = spec.interval_nanos();
        let instances = backend.instances.max(1);
        let lease = lease_size(spec, instances);
        let ttl = interval
            .saturating_mul(i64::from(lease))
            .saturating_mul(i64::from(instances))
            .clamp(50_000_000, 1_000_000_000);
        Self {
            key: backend.key(owner, spec),
            backend: Arc::clone(backend),
            interval_us: interval as f64 / 1000.0,
            burst: spec.burst,
            lease,
            ttl,
            tokens: AtomicI64::new(0),
            lease_until: AtomicI64::new(i64::MIN),
            denied_until: AtomicI64::new(i64::MIN),
            remaining: AtomicU32::new(0),
            reset_at: AtomicI64::new(0),
            fallback: Cell::default(),
            fallback_interval: interval.saturating_mul(i64::from(instances)),
            fallback_burst: (spec.burst / instances).max(1),
            fetching: tokio::sync::Mutex::new(()),
        }
    }

    /// One call at `now`: a leased token, a local refusal while Redis
    /// refused, the failure policy while Redis is down, else
    /// [`Take::NeedLease`].
    #[inline]
    pub(crate) fn take(&self, now: i64) -> Take {
        let denied = self.denied_until.load(Ordering::Relaxed);
        if now < denied {
            return Take::Denied {
                retry_after: denied - now,
            };
        }
        if now < self.lease_until.load(Ordering::Relaxed) {
            if let Ok(before) =
                self.tokens
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |t| {
                        (t > 0).then_some(t - 1)
                    })
            {
                let left = u32::try_from(before - 1).unwrap_or(0);
                return Take::Allowed {
                    remaining: self.remaining.load(Ordering::Relaxed).saturating_add(left),
                    reset: self
                        .reset_at
                        .load(Ordering::Relaxed)
                        .saturating_sub(now)
                        .max(0),
                };
            }
        } else {
            self.age_out();
        }
        if self.backend.is_down(now) {
            return self.without_redis(now);
        }
        Take::NeedLease
    }

    /// The failure policy while Redis is down.
    #[cold]
    fn without_redis(&self, now: i64) -> Take {
        match self.backend.policy {
            FailurePolicy::Open => {
                self.fallback
                    .take(self.fallback_interval, self.fallback_burst, now)
            }
            FailurePolicy::Closed => Take::Unavailable,
        }
    }

    /// Whether a call at `now` would need a lease (no token, no known
    /// refusal, Redis not down).
    pub(crate) fn needs_lease(&self, now: i64) -> bool {
        !(now < self.denied_until.load(Ordering::Relaxed)
            || self.backend.is_down(now)
            || (now < self.lease_until.load(Ordering::Relaxed)
                && self.tokens.load(Ordering::Relaxed) > 0))
    }

    /// Gives back one call taken at `now` (another limit refused the
    /// request).
    #[cold]
    pub(crate) fn give_back(&self, now: i64) {
        if self.backend.is_down(now) {
            self.fallback.give_back(self.fallback_interval, now);
        } else {
            self.tokens.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Leases calls from Redis for a request that found none (one request
    /// at a time per limit; a request that waited finds the tokens its
    /// predecessor leased, or a known refusal). `clock` reads now.
    pub(crate) async fn fetch(&self, clock: impl Fn() -> i64) {
        let _one = self.fetching.lock().await;
        let now = clock();
        if !self.needs_lease(now) {
            return;
        }
        let leased = self
            .backend
            .take(&self.key, self.interval_us, self.burst, self.lease, now)
            .await;
        let now = clock();
        match leased {
            Some(Leased::Granted {
                granted,
                remaining,
                reset_us,
            }) => {
                self.remaining.store(
                    u32::try_from(remaining.max(0)).unwrap_or(u32::MAX),
                    Ordering::Relaxed,
                );
                self.reset_at.store(
                    now.saturating_add(reset_us.saturating_mul(1000)),
                    Ordering::Relaxed,
                );
                // The lease's end before its tokens: a concurrent take never
                // sees the new tokens under the old lease's end.
                self.lease_until
                    .store(now.saturating_add(self.ttl), Ordering::Relaxed);
                self.tokens.fetch_add(granted, Ordering::Relaxed);
            }
            Some(Leased::Denied { retry_us }) => {
                self.denied_until.store(
                    now.saturating_add(retry_us.saturating_mul(1000)),
                    Ordering::Relaxed,
                );
            }
            None => {}
        }
    }

    /// The lease aged out: its unspent tokens go back to Redis.
    #[cold]
    #[inline(never)]
    fn age_out(&self) {
        if self.tokens.load(Ordering::Relaxed) > 0 {
            let n = self.tokens.swap(0, Ordering::Relaxed);
            self.return_later(n);
        }
    }

    /// Returns `n` unspent tokens in the background (needs a Tokio
    /// runtime; without one they are dropped and the cell replenishes).
    #[cold]
    fn return_later(&self, n: i64) {
        if n <= 0 {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (backend, key, interval_us) = (
            Arc::clone(&self.backend),
            self.key.clone(),
            self.interval_us,
        );
        runtime.spawn(async move { backend.give_back(&key, interval_us, n).await });
    }
}

impl Drop for SharedCell {
    fn drop(&mut self) {
        let n = *self.tokens.get_mut();
        self.return_later(n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::Label;

    #[test]
    fn small_limits_lease_one_call_large_ones_a_bounded_share() {
        let l = |limit, duration| RateLimit::new(Label::from_static("r"), limit, duration);
        assert_eq!(lease_size(&l(5, 60_000), 2), 1);
        assert_eq!(lease_size(&l(100, 1000), 4), 1);
        assert_eq!(lease_size(&l(10_000, 1000), 4), 25);
        // The burst bounds it too.
        assert_eq!(lease_size(&l(10_000, 1000).burst(400), 4), 1);
        // All instances together never hold more than 1% of the limit.
        for limit in [1, 7, 100, 999, 40_000, 1_000_000_000] {
            for n in [1, 2, 4, 16] {
                let lease = lease_size(&l(limit, 1000), n);
                assert!(lease == 1 || u64::from(lease) * u64::from(n) * 100 <= u64::from(limit));
            }
        }
    }
}
