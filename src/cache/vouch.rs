//! What a change feed vouches for: the time up to which it has delivered
//! every change (so entries read before then and not changed since stay
//! trusted), and a count of the changes it applied (so a store read that
//! raced a change is never vouched for).

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// The feed's marks, shared by the caches and the task applying the feed.
#[derive(Debug)]
pub(crate) struct Vouch {
    /// Changes applied to the caches so far (each invalidation counts).
    changes: AtomicU64,
    /// Unix nanoseconds (of the service's clock) before which every change
    /// has been applied; `i64::MIN` while no feed vouches.
    covered_to: AtomicI64,
}

impl Default for Vouch {
    fn default() -> Self {
        Self {
            changes: AtomicU64::new(0),
            covered_to: AtomicI64::new(i64::MIN),
        }
    }
}

impl Vouch {
    /// The number of changes applied so far: taken before a store read,
    /// compared when its entry is stored ([`unchanged_since`](Self::unchanged_since)).
    #[inline]
    pub(crate) fn changes(&self) -> u64 {
        self.changes.load(Ordering::SeqCst)
    }

    /// Whether no change was applied since `changes()` returned `seen`.
    #[inline]
    pub(crate) fn unchanged_since(&self, seen: u64) -> bool {
        self.changes() == seen
    }

    /// Counts a change about to be applied (before the caches drop what
    /// it concerns, so a read racing it sees the count move).
    pub(crate) fn note_change(&self) {
        self.changes.fetch_add(1, Ordering::SeqCst);
    }

    /// The time before which every change has been applied (`i64::MIN`
    /// when no feed vouches). One relaxed load on the hot path.
    #[inline]
    pub(crate) fn covered_to(&self) -> i64 {
        self.covered_to.load(Ordering::Relaxed)
    }

    /// The feed has applied every change made before `at`.
    pub(crate) fn cover(&self, at: i64) {
        self.covered_to.fetch_max(at, Ordering::SeqCst);
    }

    /// The feed may have missed changes: it vouches for nothing until it
    /// covers again.
    pub(crate) fn revoke(&self) {
        self.covered_to.store(i64::MIN, Ordering::SeqCst);
        self.note_change();
    }
}
