//! The failed-attempt budget: bounds the argon2 runs that wrong secrets can
//! cause for one key, without letting anyone else's wrong guesses lock the
//! owner out.
//!
//! - **Reserve before argon2, refund on success.** A verification that
//!   needs argon2 first reserves one attempt; a match gives it back. So N
//!   concurrent wrong secrets run at most the budget's worth of argon2 (the
//!   rest are refused at once), where charging after argon2 let all N run.
//! - **Per key × client address** (`burst`, refilled one per
//!   `refill_secs`): one address guessing wrong exhausts only its own
//!   budget for that key; the owner at another address is unaffected.
//! - **A global cap per key** (`key_burst`, same refill) bounds what many
//!   addresses together can spend on one key. Once it is spent, an address
//!   that has not failed on this key (the owner, typically) is still
//!   served, but one at a time per key (a gate, awaited, never a refusal);
//!   its attempt then counts in its own budget. An address that already
//!   failed is refused while the cap is spent.
//! - **`Retry-After` tells the true wait**: the time until the refusing
//!   budget refills by one.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::Mutex;

use tokio::sync::{Semaphore, SemaphorePermit};

use crate::id::KeyId;

/// Tracked (key, address) budgets at most; older idle ones are dropped
/// first.
const MAX_TRACKED: usize = 100_000;
/// Gates for clean addresses past a key's global cap (keys share a gate by
/// hash).
const GATES: usize = 64;

/// Failed-attempt budget: `burst` failures per key and client address and
/// `key_burst` per key from all addresses together, each refilled one per
/// `refill_secs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttemptLimit {
    /// Failures allowed in a burst per key and client address.
    pub burst: u32,
    /// One more failure is allowed after this many seconds.
    pub refill_secs: u32,
    /// Failures allowed in a burst per key from every address together;
    /// past it only addresses without a failure on the key are served, one
    /// at a time.
    pub key_burst: u32,
}

impl Default for AttemptLimit {
    /// 10 failures per key and address, 50 per key, then one every 6
    /// seconds (10 a minute).
    fn default() -> Self {
        Self {
            burst: 10,
            refill_secs: 6,
            key_burst: 50,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// Attempts reserved or failed, decayed over time.
    used: u32,
    /// The last refill boundary (unix nanoseconds).
    updated: i64,
}

impl Bucket {
    const fn new(now: i64) -> Self {
        Self {
            used: 0,
            updated: now,
        }
    }

    fn decay(&mut self, now: i64, step: i64) {
        let elapsed = now.saturating_sub(self.updated).max(0);
        let refills = u32::try_from(elapsed / step).unwrap_or(u32::MAX);
        if refills > 0 {
            self.used = self.used.saturating_sub(refills);
            self.updated = if self.used == 0 {
                now
            } else {
                self.updated
                    .saturating_add(i64::from(refills).saturating_mul(step))
            };
        }
    }

    /// Whole seconds (rounded up, at least 1) until `used` is below `limit`.
    fn wait_secs(&self, limit: u32, now: i64, step: i64) -> u64 {
        let refills = i64::from(self.used.saturating_sub(limit).saturating_add(1));
        let wait = refills
            .saturating_mul(step)
            .saturating_sub(now.saturating_sub(self.updated).max(0));
        u64::try_from(wait.max(1)).map_or(1, |w| w.div_ceil(1_000_000_000))
    }
}

/// How a reserved attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Settled {
    /// Argon2 refused the secret.
    WrongSecret,
    /// Argon2 accepted it.
    Matched,
    /// It could not be judged.
    Unjudged,
}

/// A reserved attempt: give it to [`AttemptLimiter::settle`] with the
/// outcome. Dropped unsettled (the verification was cancelled), it stays
/// counted as a failure.
#[derive(Debug)]
#[must_use]
pub(crate) struct Reservation {
    key: KeyId,
    ip: Option<IpAddr>,
    /// Whether the key's global cap was charged (not when served past it).
    global: bool,
}

impl Reservation {
    /// Whether this attempt must pass the key's gate (served past the
    /// key's global cap).
    pub(crate) fn gated(&self) -> bool {
        !self.global
    }
}

#[derive(Debug, Default)]
struct Buckets {
    per_address: HashMap<(KeyId, Option<IpAddr>), Bucket, foldhash::fast::RandomState>,
    per_key: HashMap<KeyId, Bucket, foldhash::fast::RandomState>,
}

/// The failure budgets of every key.
#[derive(Debug)]
pub(crate) struct AttemptLimiter {
    limit: AttemptLimit,
    buckets: Mutex<Buckets>,
    gates: Box<[Semaphore]>,
    hasher: foldhash::fast::RandomState,
}

impl AttemptLimiter {
    pub(crate) fn new(limit: AttemptLimit) -> Self {
        Self {
            limit,
            buckets: Mutex::default(),
            gates: (0..GATES).map(|_| Semaphore::new(1)).collect(),
            hasher: foldhash::fast::RandomState::default(),
        }
    }

    fn step(&self) -> i64 {
        i64::from(self.limit.refill_secs.max(1)) * 1_000_000_000
    }

    /// Reserves one argon2 attempt for `key` from `ip` at `now`;
    /// `Err(seconds to wait)` when its budget is spent.
    pub(crate) fn reserve(
        &self,
        key: &KeyId,
        ip: Option<IpAddr>,
        now: i64,
    ) -> Result<Reservation, u64> {
        let step = self.step();
        let mut g = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let Buckets {
            per_address,
            per_key,
        } = &mut *g;
        if per_address.len() >= MAX_TRACKED && !per_address.contains_key(&(*key, ip)) {
            let idle = step.saturating_mul(i64::from(self.limit.burst.max(1)));
            per_address.retain(|_, b| now.saturating_sub(b.updated) < idle);
            per_key.retain(|_, b| now.saturating_sub(b.updated) < idle);
            if per_address.len() >= MAX_TRACKED {
                // Full of budgets still in use: a new address is served
                // like a clean one past the cap (gated, never refused).
                return Ok(Reservation {
                    key: *key,
                    ip,
                    global: false,
                });
            }
        }
        let mine = per_address.entry((*key, ip)).or_insert(Bucket::new(now));
        mine.decay(now, step);
        if mine.used >= self.limit.burst {
            return Err(mine.wait_secs(self.limit.burst, now, step));
        }
        let clean = mine.used == 0;
        let all = per_key.entry(*key).or_insert(Bucket::new(now));
        all.decay(now, step);
        let global = all.used < self.limit.key_burst;
        if !global && !clean {
            return Err(all.wait_secs(self.limit.key_burst, now, step));
        }
        if global {
            all.used += 1;
        }
        mine.used += 1;
        Ok(Reservation {
            key: *key,
            ip,
            global,
        })
    }

    /// The gate a reservation served past its key's global cap passes:
    /// one argon2 run at a time per key.
    pub(crate) async fn gate(&self, r: &Reservation) -> Option<SemaphorePermit<'_>> {
        if !r.gated() {
            return None;
        }
        let gate = &self.gates[(self.hasher.hash_one(r.key) >> 32) as usize % GATES];
        gate.acquire().await.ok()
    }

    /// Settles a reservation: a wrong secret keeps it counted; a match
    /// gives it back and clears the address's failures on the key (only
    /// the holder of the secret can do that); an attempt that could not be
    /// judged (a stored hash unusable, shutting down) only gives it back.
    pub(crate) fn settle(&self, r: Reservation, outcome: Settled) {
        if outcome == Settled::WrongSecret {
            return;
        }
        let mut g = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(b) = g.per_address.get_mut(&(r.key, r.ip)) {
            b.used = b.used.saturating_sub(1);
            if b.used == 0 || outcome == Settled::Matched {
                g.per_address.remove(&(r.key, r.ip));
            }
        }
        if r.global
            && let Some(b) = g.per_key.get_mut(&r.key)
        {
            b.used = b.used.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;

    fn limiter(burst: u32, key_burst: u32) -> AttemptLimiter {
        AttemptLimiter::new(AttemptLimit {
            burst,
            refill_secs: 10,
            key_burst,
        })
    }

    fn ip(n: u8) -> Option<IpAddr> {
        Some(IpAddr::from([192, 0, 2, n]))
    }

    #[test]
    fn reserves_refunds_and_tells_the_true_wait() {
        let l = limiter(2, 100);
        let k = KeyId::new("kw_x").expect("valid");
        let a = l.reserve(&k, ip(1), 0).expect("first");
        let b = l.reserve(&k, ip(1), 0).expect("second");
        // Both in flight: a third is refused before any argon2 runs.
        assert_eq!(l.reserve(&k, ip(1), 3 * S).map(|_| ()), Err(7));
        l.settle(a, Settled::WrongSecret);
        l.settle(b, Settled::Unjudged);
        // One given back: one more attempt now.
        let c = l.reserve(&k, ip(1), 3 * S).expect("refunded");
        l.settle(c, Settled::WrongSecret);
        assert_eq!(l.reserve(&k, ip(1), 4 * S).map(|_| ()), Err(6));
        // Refills one per step.
        l.settle(
            l.reserve(&k, ip(1), 10 * S).expect("refilled"),
            Settled::WrongSecret,
        );
        assert!(l.reserve(&k, ip(1), 10 * S).is_err());
        // A match clears the address's failures.
        let other = KeyId::new("kw_y").expect("valid");
        l.settle(
            l.reserve(&other, ip(1), 0).expect("first"),
            Settled::WrongSecret,
        );
        l.settle(
            l.reserve(&other, ip(1), 0).expect("matched"),
            Settled::Matched,
        );
        l.settle(
            l.reserve(&other, ip(1), 0).expect("cleared"),
            Settled::WrongSecret,
        );
        assert!(l.reserve(&other, ip(1), 0).is_ok());
    }

    #[test]
    fn another_address_is_never_refused_for_someone_elses_failures() {
        let l = limiter(3, 5);
        let k = KeyId::new("kw_x").expect("valid");
        let mut gated = 0;
        for n in 1..=10 {
            while let Ok(r) = l.reserve(&k, ip(n), 0) {
                gated += usize::from(r.gated());
                l.settle(r, Settled::WrongSecret);
            }
        }
        // Five failures charged the cap (three from the first address, two
        // from the second); each of the eight later addresses got one
        // gated attempt, then refusals.
        assert_eq!(gated, 8);
        // The cap is spent, attackers refused; the owner (clean) is served,
        // gated, and a success gives it back.
        assert!(l.reserve(&k, ip(1), 0).is_err());
        let owner = l.reserve(&k, ip(200), 0).expect("owner served");
        assert!(owner.gated());
        l.settle(owner, Settled::Matched);
        assert!(l.reserve(&k, ip(200), 0).is_ok());
    }
}
