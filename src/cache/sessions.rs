//! Cache of sessions: id → digest of the token's secret part and state.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::RwLock;

use crate::id::{KeyId, SessionId};
use crate::padded::Padded;

const SHARDS: usize = 16;

/// Which secret of a key a credential proved: its generation (the key's
/// current one, or the one before during a grace period) and the key's
/// session epoch at that moment. A session records it at login.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SecretRef {
    pub(crate) generation: u32,
    pub(crate) epoch: u32,
}

/// A cached session.
#[derive(Debug, Clone)]
pub(crate) struct SessionEntry {
    /// The session's id, shared with the principals it grants.
    pub(crate) id: std::sync::Arc<SessionId>,
    pub(crate) key_id: KeyId,
    pub(crate) digest: [u8; 32],
    pub(crate) expires_at: i64,
    /// The key's secret the session was opened with.
    pub(crate) opened: SecretRef,
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

    /// The entry for `id`, if any (whether it is still fresh is the
    /// decision's to say).
    pub(crate) fn get(&self, id: &SessionId) -> Option<SessionEntry> {
        let g = self.shard(id).read().unwrap_or_else(|e| e.into_inner());
        g.get(id).cloned()
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
