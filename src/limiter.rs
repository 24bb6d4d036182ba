//! Bounds failed argon2 verifications per key id, so that a flood of wrong
//! secrets for one key cannot monopolise the hashing threads.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::id::KeyId;

const MAX_TRACKED: usize = 100_000;

/// Failed-attempt budget: `burst` failures, refilled at one per
/// `refill_nanos`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttemptLimit {
    /// Failures allowed in a burst.
    pub burst: u32,
    /// One more failure is allowed after this many seconds.
    pub refill_secs: u32,
}

impl Default for AttemptLimit {
    /// 10 failures, then one every 6 seconds (10 a minute).
    fn default() -> Self {
        Self {
            burst: 10,
            refill_secs: 6,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// Failures counted, decayed over time.
    used: u32,
    updated: i64,
}

/// Per-key failure buckets.
#[derive(Debug)]
pub(crate) struct AttemptLimiter {
    limit: AttemptLimit,
    buckets: Mutex<HashMap<KeyId, Bucket, foldhash::fast::RandomState>>,
}

impl AttemptLimiter {
    pub(crate) fn new(limit: AttemptLimit) -> Self {
        Self {
            limit,
            buckets: Mutex::default(),
        }
    }

    fn refill_nanos(&self) -> i64 {
        i64::from(self.limit.refill_secs.max(1)) * 1_000_000_000
    }

    fn decay(&self, b: &mut Bucket, now: i64) {
        let step = self.refill_nanos();
        let elapsed = now.saturating_sub(b.updated).max(0);
        let refills = u32::try_from(elapsed / step).unwrap_or(u32::MAX);
        if refills > 0 {
            b.used = b.used.saturating_sub(refills);
            b.updated = b
                .updated
                .saturating_add(i64::from(refills).saturating_mul(step));
        }
    }

    /// `Err(seconds to wait)` when `key` has no failures left at `now`.
    pub(crate) fn check(&self, key: &KeyId, now: i64) -> Result<(), u64> {
        let mut g = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let Some(b) = g.get_mut(key) else {
            return Ok(());
        };
        self.decay(b, now);
        if b.used < self.limit.burst {
            return Ok(());
        }
        let wait = self.refill_nanos() - now.saturating_sub(b.updated);
        Err(u64::try_from(wait.max(0) / 1_000_000_000 + 1).unwrap_or(1))
    }

    /// Counts a failure for `key`.
    pub(crate) fn failed(&self, key: &KeyId, now: i64) {
        let mut g = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if g.len() >= MAX_TRACKED && !g.contains_key(key) {
            let step = self.refill_nanos() * i64::from(self.limit.burst.max(1));
            g.retain(|_, b| now.saturating_sub(b.updated) < step);
            if g.len() >= MAX_TRACKED {
                return;
            }
        }
        let b = g.entry(*key).or_insert(Bucket {
            used: 0,
            updated: now,
        });
        self.decay(b, now);
        b.used = b.used.saturating_add(1);
    }

    /// Forgets failures of `key` (after a success).
    pub(crate) fn succeeded(&self, key: &KeyId) {
        let mut g = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        g.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_and_refills() {
        let l = AttemptLimiter::new(AttemptLimit {
            burst: 2,
            refill_secs: 10,
        });
        let k = KeyId::new("kw_x").expect("valid");
        let s = 1_000_000_000;
        assert!(l.check(&k, 0).is_ok());
        l.failed(&k, 0);
        l.failed(&k, 0);
        assert_eq!(l.check(&k, s), Err(10));
        assert!(l.check(&k, 10 * s).is_ok());
        l.failed(&k, 10 * s);
        assert!(l.check(&k, 10 * s).is_err());
        l.succeeded(&k);
        assert!(l.check(&k, 10 * s).is_ok());
    }
}
