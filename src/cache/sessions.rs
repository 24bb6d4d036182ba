//! Cache of sessions: id → digest of the token's secret part and state.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::RwLock;

use super::Padded;
use crate::id::{KeyId, SessionId};

const SHARDS: usize = 16;

/// A cached session.
#[derive(Debug, Clone)]
pub(crate) struct SessionEntry {
    pub(crate) key_id: KeyId,
    pub(crate) digest: [u8; 32],
    pub(crate) expires_at: i64,
    pub(crate) key_generation: u32,
    pub(crate) fetched_at: i64,
}

type Shard = Padded<RwLock<HashMap<SessionId, SessionEntry, foldhash::fast::RandomState>>>;

/// The sharded session cache.
pub(crate) struct SessionCache {
    shards: Box<[Shard]>,
    hasher: foldhash::fast::RandomState,
    max_per_shard: usize,
}

impl std::fmt::Debug for SessionCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionCache")
    }
}

impl SessionCache {
    /// A cache holding at most about `max_entries` sessions.
    pub(crate) fn new(max_entries: usize) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Padded::default()).collect(),
            hasher: foldhash::fast::RandomState::default(),
            max_per_shard: max_entries.div_ceil(SHARDS).max(1),
        }
    }

    fn shard(&self, id: &SessionId) -> &Shard {
        &self.shards[(self.hasher.hash_one(id) >> 32) as usize % SHARDS]
    }

    /// The fresh entry for `id`, if any.
    pub(crate) fn get_fresh(&self, id: &SessionId, now: i64, window: i64) -> Option<SessionEntry> {
        let g = self.shard(id).read().unwrap_or_else(|e| e.into_inner());
        g.get(id)
            .filter(|e| now >= e.fetched_at && now.saturating_sub(e.fetched_at) < window)
            .cloned()
    }

    /// Inserts or replaces an entry.
    pub(crate) fn insert(&self, id: SessionId, entry: SessionEntry) {
        let mut g = self.shard(&id).write().unwrap_or_else(|e| e.into_inner());
        if g.len() >= self.max_per_shard {
            let now = entry.fetched_at;
            g.retain(|_, e| e.expires_at > now);
            if g.len() >= self.max_per_shard {
                g.clear();
            }
        }
        g.insert(id, entry);
    }

    /// Removes the entry for `id`.
    pub(crate) fn remove(&self, id: &SessionId) {
        self.shard(id)
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
    }

    /// Removes every entry.
    pub(crate) fn clear(&self) {
        for s in self.shards.iter() {
            s.write().unwrap_or_else(|e| e.into_inner()).clear();
        }
    }
}
