//! [`Registry`]: this instance's meters by owner, so every key of an
//! application or account shares one meter (one pool), and a reloaded key
//! keeps its state. Used only when keys are read from the store (the cold
//! path); the warm path holds the meters through the cache entry.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use super::meter::{Backend, LiveCredits, Meter};
use super::owner::LimitOwner;
use crate::store::StoredLimits;

/// Meters by owner (weakly held: a meter lives while a cache entry uses
/// it).
#[derive(Debug, Default)]
pub(crate) struct Registry {
    meters: Mutex<HashMap<LimitOwner, Weak<Meter>>>,
    /// Where limits are shared (Redis), if anywhere.
    backend: Option<Backend>,
}

impl Registry {
    /// A registry whose meters share their limits through `backend`.
    #[cfg(feature = "redis")]
    pub(crate) fn shared(backend: Backend) -> Self {
        Self {
            meters: Mutex::default(),
            backend: Some(backend),
        }
    }

    /// The meter for `stored` read at `now`: the current one when its
    /// version is unchanged, else a new one keeping what it can.
    pub(crate) fn meter(&self, stored: &StoredLimits, now: i64) -> Arc<Meter> {
        let mut map = self.meters.lock().unwrap_or_else(|p| p.into_inner());
        let previous = map.get(&stored.owner).and_then(Weak::upgrade);
        if let Some(p) = &previous
            && p.version == stored.version
        {
            return Arc::clone(p);
        }
        let credits = stored.limits.credits.map(|c| {
            match previous.as_ref().and_then(|p| p.credits.clone()) {
                Some(live) if live.config == c => live,
                _ => Arc::new(LiveCredits::new(c, stored.remaining, now)),
            }
        });
        let meter = Arc::new(Meter::with_backend(
            stored.owner,
            stored.version,
            &stored.limits.ratelimits,
            credits,
            previous.as_deref(),
            self.backend.as_ref(),
        ));
        if map.len() > 1024 && map.len().is_power_of_two() {
            map.retain(|_, w| w.strong_count() > 0);
        }
        map.insert(stored.owner, Arc::downgrade(&meter));
        meter
    }

    /// The live meters that hold credits.
    pub(crate) fn with_credits(&self) -> Vec<Arc<Meter>> {
        let mut map = self.meters.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, w| w.strong_count() > 0);
        map.values()
            .filter_map(Weak::upgrade)
            .filter(|m| m.credits.is_some())
            .collect()
    }

    /// Forgets `owner`'s meter (its limits were changed here: the next
    /// read builds a new one).
    pub(crate) fn forget(&self, owner: &LimitOwner) {
        let mut map = self.meters.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(owner);
    }
}
