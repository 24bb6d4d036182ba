//! [`Meter`]: one owner's live limits (GCRA cells and credits), and the
//! admission check run after every accepted verification.
//!
//! The warm path touches only what the key's cache entry already points to
//! (its grant holds the meters of the key, its application and its
//! account): no lookup, no lock, no allocation — one compare-and-swap per
//! applied limit and one per owner with credits.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use super::gcra::{Cell, Take};
use super::owner::LimitOwner;
use super::policy::RateLimit;
use crate::context::Label;
use crate::credits::{Credits, Refill};

/// Most limits one request can be checked against: 16 per owner, three
/// owners.
const MAX_APPLIED: usize = 48;

/// Where a request stands against the limit closest to refusing it, for the
/// `RateLimit-Policy` / `RateLimit` response headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct LimitStatus {
    /// The limit's name.
    pub name: Label,
    /// Calls per window.
    pub limit: u32,
    /// The window (milliseconds).
    pub duration_ms: u64,
    /// Calls still allowed now.
    pub remaining: u32,
    /// Milliseconds until the limit is fully replenished (refused: until
    /// the next call is allowed).
    pub reset_ms: u64,
}

/// Which applied limit was closest to refusing an admitted request, and
/// where it stood: small and `Copy`, kept in the principal (the full
/// [`LimitStatus`] is built from the grant's meters when asked).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Applied {
    /// One more than the meter's index: never zero, so `Option<Applied>`
    /// needs no tag of its own (it is kept in every principal).
    meter: std::num::NonZeroU8,
    limit: u8,
    remaining: u32,
    /// Windows are at most 31 days (2.7e9 ms): a `u32` holds any reset,
    /// and keeps the principal small (see `principal::layout`).
    reset_ms: u32,
}

impl Applied {
    /// `meter` as stored for the meter at `index` (a grant has at most
    /// three: key, application, account).
    fn meter_at(index: usize) -> std::num::NonZeroU8 {
        std::num::NonZeroU8::MIN.saturating_add(index as u8)
    }

    /// The index of the meter in the grant's meters.
    fn meter(self) -> usize {
        usize::from(self.meter.get() - 1)
    }
}

/// Why an accepted credential's request is refused.
// `UsageExceeded` names the error code it becomes, not the enum.
#[allow(clippy::enum_variant_names)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Exceeded {
    /// A rate limit: which, and when to retry (milliseconds).
    RateLimited {
        status: LimitStatus,
        retry_after_ms: u64,
    },
    /// An owner's credits are spent.
    UsageExceeded,
    /// A shared limit has no leased call on this instance: the
    /// verification leases from Redis and decides again.
    #[cfg(feature = "redis")]
    NeedLease,
    /// A shared limit while Redis is down, fail-closed.
    #[cfg(feature = "redis")]
    Unavailable,
}

impl Exceeded {
    /// The error a caller sees.
    #[cold]
    pub(crate) fn error(self) -> crate::error::Error {
        match self {
            Exceeded::RateLimited {
                status,
                retry_after_ms,
            } => crate::error::Error::RateLimited {
                status,
                retry_after_ms,
            },
            Exceeded::UsageExceeded => crate::error::Error::UsageExceeded,
            // Fail-closed while Redis is down (a missing lease is resolved
            // by the verification's lease step before this is reached).
            #[cfg(feature = "redis")]
            Exceeded::NeedLease | Exceeded::Unavailable => crate::error::Error::LimitsUnavailable,
        }
    }
}

/// One rate limit with its state.
#[derive(Debug)]
struct Live {
    spec: RateLimit,
    interval: i64,
    cell: Arc<Cell>,
    /// Shared through Redis (the cell is then unused).
    #[cfg(feature = "redis")]
    shared: Option<Arc<crate::ratelimit::shared::lease::SharedCell>>,
}

impl Live {
    /// One call at `now`.
    #[inline]
    fn take(&self, now: i64) -> Take {
        #[cfg(feature = "redis")]
        if let Some(s) = &self.shared {
            return s.take(now);
        }
        self.cell.take(self.interval, self.spec.burst, now)
    }

    /// Gives back one call taken at `now`.
    #[cold]
    fn give_back(&self, now: i64) {
        #[cfg(feature = "redis")]
        if let Some(s) = &self.shared {
            return s.give_back(now);
        }
        self.cell.give_back(self.interval, now);
    }
}

/// An owner's credits as this instance sees them.
#[derive(Debug)]
pub(crate) struct LiveCredits {
    /// The configuration they were set with.
    pub(crate) config: Credits,
    /// What this instance may still spend (the stored count at the last
    /// flush, less what was spent here since).
    remaining: AtomicI64,
    /// Spent here and not yet written.
    spent: AtomicU64,
    /// When the next refill starts (unix nanoseconds; `i64::MAX` none).
    next_refill: AtomicI64,
}

impl LiveCredits {
    /// Credits with `remaining` as stored, at `now`.
    pub(crate) fn new(config: Credits, remaining: u64, now: i64) -> Self {
        Self {
            config,
            remaining: AtomicI64::new(i64::try_from(remaining).unwrap_or(i64::MAX)),
            spent: AtomicU64::new(0),
            next_refill: AtomicI64::new(next_refill(config.refill, now)),
        }
    }

    /// Spends `cost`, or `false` when fewer remain.
    #[inline]
    fn spend(&self, cost: u32, now: i64) -> bool {
        if now >= self.next_refill.load(Ordering::Relaxed) {
            self.refill(now);
        }
        let cost = i64::from(cost);
        let ok = self
            .remaining
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |r| {
                (r >= cost).then_some(r - cost)
            })
            .is_ok();
        if ok {
            self.spent.fetch_add(cost as u64, Ordering::Relaxed);
        }
        ok
    }

    /// Gives back `cost` spent by a request another owner refused.
    #[cold]
    fn give_back(&self, cost: u32) {
        self.remaining.fetch_add(i64::from(cost), Ordering::Relaxed);
        self.spent.fetch_sub(u64::from(cost), Ordering::Relaxed);
    }

    /// A refill period began: the local view starts from the refill amount
    /// (the store applies the same refill at the next flush).
    #[cold]
    #[inline(never)]
    fn refill(&self, now: i64) {
        let Some(r) = self.config.refill else {
            return;
        };
        let due = self.next_refill.load(Ordering::Relaxed);
        let next = next_refill(Some(r), now);
        if now >= due
            && self
                .next_refill
                .compare_exchange(due, next, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.remaining.store(
                i64::try_from(r.amount).unwrap_or(i64::MAX),
                Ordering::Relaxed,
            );
        }
    }

    /// Takes what was spent since the last flush (to write it).
    pub(crate) fn take_spent(&self) -> u64 {
        self.spent.swap(0, Ordering::Relaxed)
    }

    /// Puts back what a failed flush did not write.
    pub(crate) fn restore_spent(&self, spent: u64) {
        self.spent.fetch_add(spent, Ordering::Relaxed);
    }

    /// After a flush: the store holds `stored` remaining; what was spent
    /// here since the flush began is still to be subtracted.
    pub(crate) fn synced(&self, stored: u64) {
        let pending = self.spent.load(Ordering::Relaxed);
        let stored = i64::try_from(stored).unwrap_or(i64::MAX);
        self.remaining.store(
            stored
                .saturating_sub(i64::try_from(pending).unwrap_or(i64::MAX))
                .max(0),
            Ordering::Relaxed,
        );
    }
}

/// The start (unix nanoseconds) of the refill after `now`.
fn next_refill(refill: Option<Refill>, now: i64) -> i64 {
    refill.map_or(i64::MAX, |r| {
        r.interval.next_start(now).saturating_mul(1_000_000_000)
    })
}

/// One owner's live limits.
#[derive(Debug)]
pub(crate) struct Meter {
    pub(crate) owner: LimitOwner,
    /// The stored limits' version this was built from.
    pub(crate) version: u64,
    limits: Box<[Live]>,
    pub(crate) credits: Option<Arc<LiveCredits>>,
}

impl Meter {
    /// A meter for `limits`, keeping the state of `previous` (same-named
    /// limits keep their cells; unchanged credits their count).
    #[cfg(test)]
    pub(crate) fn new(
        owner: LimitOwner,
        version: u64,
        ratelimits: &[RateLimit],
        credits: Option<Arc<LiveCredits>>,
        previous: Option<&Meter>,
    ) -> Self {
        Self::with_backend(owner, version, ratelimits, credits, previous, None)
    }

    /// [`new`](Self::new), the limits shared through `backend` when given.
    pub(crate) fn with_backend(
        owner: LimitOwner,
        version: u64,
        ratelimits: &[RateLimit],
        credits: Option<Arc<LiveCredits>>,
        previous: Option<&Meter>,
        backend: Option<&Backend>,
    ) -> Self {
        #[cfg(not(feature = "redis"))]
        let _ = backend;
        let limits = ratelimits
            .iter()
            .map(|spec| {
                let kept = previous.and_then(|p| {
                    p.limits.iter().find(|l| {
                        l.spec.name == spec.name
                            && l.spec.duration_ms == spec.duration_ms
                            && l.spec.limit == spec.limit
                    })
                });
                #[cfg(feature = "redis")]
                let shared = backend.map(|b| {
                    kept.and_then(|l| l.shared.clone())
                        .filter(|_| kept.is_some_and(|l| l.spec.burst == spec.burst))
                        .unwrap_or_else(|| {
                            Arc::new(crate::ratelimit::shared::lease::SharedCell::new(
                                b, &owner, spec,
                            ))
                        })
                });
                Live {
                    spec: spec.clone(),
                    interval: spec.interval_nanos(),
                    cell: kept.map_or_else(|| Arc::new(Cell::with_tat(0)), |l| Arc::clone(&l.cell)),
                    #[cfg(feature = "redis")]
                    shared,
                }
            })
            .collect();
        Self {
            owner,
            version,
            limits,
            credits,
        }
    }

    /// The TAT of limit `name`, for tests.
    #[cfg(test)]
    fn tat(&self, name: &str) -> Option<i64> {
        self.limits
            .iter()
            .find(|l| l.spec.name.as_str() == name)
            .map(|l| l.cell.tat())
    }
}

/// The Redis backend shared limits use (nothing without feature `redis`).
#[cfg(feature = "redis")]
pub(crate) type Backend = Arc<crate::ratelimit::shared::Backend>;
/// The Redis backend shared limits use (nothing without feature `redis`).
#[cfg(not(feature = "redis"))]
pub(crate) type Backend = ();

/// The meters a key's grant holds (its own, its application's, its
/// account's), shared with every principal it hands out. Compared by
/// identity.
#[derive(Debug, Clone, Default)]
pub(crate) struct Meters(pub(crate) Option<Arc<[Arc<Meter>]>>);

impl Meters {
    /// No limits.
    pub(crate) const NONE: Meters = Meters(None);

    /// [`admit`] against these meters (nothing to do without any).
    #[inline]
    pub(crate) fn admit(
        &self,
        route: Option<Label>,
        cost: u32,
        now: i64,
    ) -> Result<Option<Applied>, Exceeded> {
        match &self.0 {
            None => Ok(None),
            Some(m) => admit(m, route, cost, now),
        }
    }

    /// The shared limits `route` applies that hold no leased call at
    /// `now` (for the verification's lease step).
    #[cfg(feature = "redis")]
    pub(crate) fn to_lease(
        &self,
        route: Option<Label>,
        now: i64,
    ) -> Vec<Arc<crate::ratelimit::shared::lease::SharedCell>> {
        let mut out = Vec::new();
        for m in self.0.iter().flat_map(|m| m.iter()) {
            for l in m.limits.iter() {
                if let Some(s) = &l.shared
                    && (l.spec.auto_apply || route == Some(l.spec.name))
                    && s.needs_lease(now)
                {
                    out.push(Arc::clone(s));
                }
            }
        }
        out
    }

    /// Why a request is refused after its lease step ran out of attempts
    /// (concurrent requests spent each leased call first): the first
    /// shared limit still without a call, as rate limited for one interval;
    /// unavailable if none (never waited on).
    #[cfg(feature = "redis")]
    #[cold]
    pub(crate) fn contended(&self, route: Option<Label>, now: i64) -> Exceeded {
        for m in self.0.iter().flat_map(|m| m.iter()) {
            for l in m.limits.iter() {
                if let Some(s) = &l.shared
                    && (l.spec.auto_apply || route == Some(l.spec.name))
                    && s.needs_lease(now)
                {
                    return Exceeded::RateLimited {
                        status: status(&l.spec, 0, l.interval),
                        retry_after_ms: ceil_ms(l.interval),
                    };
                }
            }
        }
        Exceeded::Unavailable
    }

    /// The status `applied` describes.
    pub(crate) fn status(&self, applied: Applied) -> Option<LimitStatus> {
        let l = self
            .0
            .as_ref()?
            .get(applied.meter())?
            .limits
            .get(usize::from(applied.limit))?;
        Some(LimitStatus {
            remaining: applied.remaining,
            reset_ms: u64::from(applied.reset_ms),
            ..status(&l.spec, 0, 0)
        })
    }
}

impl PartialEq for Meters {
    fn eq(&self, other: &Self) -> bool {
        match (&self.0, &other.0) {
            (None, None) => true,
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

impl Eq for Meters {}

impl std::hash::Hash for Meters {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0
            .as_ref()
            .map(|m| Arc::as_ptr(m).cast::<()>() as usize)
            .hash(state);
    }
}

/// Checks one accepted request against `meters` (the key's, its
/// application's and its account's) at `now`: every auto-applied limit and
/// the limit `route` names, one call each; then `cost` credits from every
/// owner that has credits. All or nothing: a refusal gives back what the
/// request took from the others.
///
/// `Ok` carries the applied limit closest to refusing, if any.
#[inline]
pub(crate) fn admit(
    meters: &[Arc<Meter>],
    route: Option<Label>,
    cost: u32,
    now: i64,
) -> Result<Option<Applied>, Exceeded> {
    let mut taken = [(0u8, 0u8); MAX_APPLIED];
    let mut n = 0;
    let mut closest: Option<Applied> = None;
    for (mi, m) in meters.iter().enumerate() {
        for (li, l) in m.limits.iter().enumerate() {
            if !(l.spec.auto_apply || route == Some(l.spec.name)) {
                continue;
            }
            match l.take(now) {
                Take::Allowed { remaining, reset } => {
                    if n < MAX_APPLIED {
                        taken[n] = (mi as u8, li as u8);
                        n += 1;
                    }
                    if closest.is_none_or(|c| remaining < c.remaining) {
                        closest = Some(Applied {
                            meter: Applied::meter_at(mi),
                            limit: li as u8,
                            remaining,
                            reset_ms: u32::try_from(ceil_ms(reset)).unwrap_or(u32::MAX),
                        });
                    }
                }
                Take::Denied { retry_after } => {
                    give_back_limits(meters, &taken[..n], now);
                    return Err(Exceeded::RateLimited {
                        status: status(&l.spec, 0, retry_after),
                        retry_after_ms: ceil_ms(retry_after),
                    });
                }
                #[cfg(feature = "redis")]
                Take::NeedLease => {
                    give_back_limits(meters, &taken[..n], now);
                    return Err(Exceeded::NeedLease);
                }
                #[cfg(feature = "redis")]
                Take::Unavailable => {
                    give_back_limits(meters, &taken[..n], now);
                    return Err(Exceeded::Unavailable);
                }
            }
        }
    }
    for (mi, m) in meters.iter().enumerate() {
        if let Some(c) = &m.credits
            && !c.spend(cost, now)
        {
            for done in &meters[..mi] {
                if let Some(c) = &done.credits {
                    c.give_back(cost);
                }
            }
            give_back_limits(meters, &taken[..n], now);
            return Err(Exceeded::UsageExceeded);
        }
    }
    Ok(closest)
}

#[cold]
fn give_back_limits(meters: &[Arc<Meter>], taken: &[(u8, u8)], now: i64) {
    for &(mi, li) in taken {
        meters[mi as usize].limits[li as usize].give_back(now);
    }
}

fn status(spec: &RateLimit, remaining: u32, reset: i64) -> LimitStatus {
    LimitStatus {
        name: spec.name,
        limit: spec.limit,
        duration_ms: spec.duration_ms,
        remaining,
        reset_ms: ceil_ms(reset),
    }
}

fn ceil_ms(nanos: i64) -> u64 {
    (nanos.max(0) as u64).div_ceil(1_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::{AccountId, KeyId};

    const SEC: i64 = 1_000_000_000;

    fn limit(name: &'static str, n: u32) -> RateLimit {
        RateLimit::new(Label::from_static(name), n, 60_000)
    }

    fn key_owner() -> LimitOwner {
        LimitOwner::Key(KeyId::new("kw_ak_test").expect("id"))
    }

    #[test]
    fn manual_limits_apply_only_where_named() {
        let m = Arc::new(Meter::new(
            key_owner(),
            1,
            &[limit("expensive", 1).manual()],
            None,
            None,
        ));
        let meters = [m];
        for _ in 0..3 {
            assert!(admit(&meters, None, 1, SEC).is_ok());
        }
        let route = Some(Label::from_static("expensive"));
        assert!(admit(&meters, route, 1, SEC).is_ok());
        let refused = admit(&meters, route, 1, SEC).expect_err("limited");
        assert!(
            matches!(refused, Exceeded::RateLimited { retry_after_ms: 60_000, status } if status.name.as_str() == "expensive")
        );
    }

    #[test]
    fn a_refusal_gives_back_what_other_owners_took() {
        let key = Arc::new(Meter::new(
            key_owner(),
            1,
            &[limit("requests", 10)],
            None,
            None,
        ));
        let account = Arc::new(Meter::new(
            LimitOwner::Account(AccountId::new("acc_1").expect("id")),
            1,
            &[limit("requests", 1)],
            None,
            None,
        ));
        let meters = [key.clone(), account];
        assert!(admit(&meters, None, 1, SEC).is_ok());
        let before = key.tat("requests");
        assert!(admit(&meters, None, 1, SEC).is_err());
        assert_eq!(key.tat("requests"), before);
    }

    #[test]
    fn credits_run_out_at_zero_and_refill() {
        use crate::credits::{Credits, Refill, RefillInterval};
        let config = Credits::new(3).refill(Refill::new(RefillInterval::Daily, 2));
        let day = 86_400 * SEC;
        let credits = Arc::new(LiveCredits::new(config, 3, 10 * day + 5));
        let meters = [Arc::new(Meter::new(
            key_owner(),
            1,
            &[],
            Some(credits.clone()),
            None,
        ))];
        assert!(admit(&meters, None, 2, 10 * day + 6).is_ok());
        assert_eq!(
            admit(&meters, None, 2, 10 * day + 7),
            Err(Exceeded::UsageExceeded)
        );
        assert!(admit(&meters, None, 1, 10 * day + 8).is_ok());
        assert_eq!(
            admit(&meters, None, 1, 10 * day + 9),
            Err(Exceeded::UsageExceeded)
        );
        assert_eq!(credits.take_spent(), 3);
        // The next UTC day: refilled to 2.
        assert!(admit(&meters, None, 2, 11 * day).is_ok());
        assert_eq!(
            admit(&meters, None, 1, 11 * day + 1),
            Err(Exceeded::UsageExceeded)
        );
    }

    #[test]
    fn changed_limits_keep_the_state_of_unchanged_ones() {
        let old = Meter::new(key_owner(), 1, &[limit("requests", 1)], None, None);
        let meters = [Arc::new(old)];
        assert!(admit(&meters, None, 1, SEC).is_ok());
        let new = Meter::new(
            key_owner(),
            2,
            &[limit("requests", 1), limit("other", 5)],
            None,
            Some(&meters[0]),
        );
        assert!(admit(&[Arc::new(new)], None, 1, SEC).is_err());
    }
}
