//! Cache of accounts, so that effective permissions (key ∩ account) need
//! no extra store read per key refresh.

use std::collections::HashMap;
use std::sync::RwLock;

use crate::account::Account;
use crate::id::AccountId;

const MAX_ENTRIES: usize = 100_000;

/// A cached account: the record, when it was read, and whether a change
/// feed may vouch for it (no change raced its read).
#[derive(Debug, Clone)]
pub(crate) struct CachedAccount {
    pub(crate) account: Account,
    pub(crate) read_at: i64,
    pub(crate) vouchable: bool,
}

/// Accounts read from the store, with the time of the read.
#[derive(Debug, Default)]
pub(crate) struct AccountCache {
    map: RwLock<HashMap<AccountId, CachedAccount, foldhash::fast::RandomState>>,
}

impl AccountCache {
    /// The cached account, if read less than `window` ago.
    pub(crate) fn get_fresh(&self, id: &AccountId, now: i64, window: i64) -> Option<CachedAccount> {
        let g = self.map.read().unwrap_or_else(|e| e.into_inner());
        g.get(id)
            .filter(|c| now >= c.read_at && now.saturating_sub(c.read_at) < window)
            .cloned()
    }

    /// Remembers `account` as read at `at` (not vouchable: a write's
    /// result, which a racing change from elsewhere may already outdate).
    pub(crate) fn insert(&self, account: Account, at: i64) {
        self.put(|| CachedAccount {
            account,
            read_at: at,
            vouchable: false,
        });
    }

    /// Remembers `account` as read from the store at `at`, vouchable when
    /// `unchanged()` says, under the cache's lock, that no change was
    /// applied since the read began (a change's removal takes this lock
    /// after counting, so it either sees this entry or is seen by it).
    /// Returns what it stored.
    pub(crate) fn insert_read(
        &self,
        account: Account,
        at: i64,
        unchanged: impl FnOnce() -> bool,
    ) -> CachedAccount {
        self.put(|| CachedAccount {
            account,
            read_at: at,
            vouchable: unchanged(),
        })
    }

    /// Stores the entry `make` builds under the write lock.
    fn put(&self, make: impl FnOnce() -> CachedAccount) -> CachedAccount {
        let mut g = self.map.write().unwrap_or_else(|e| e.into_inner());
        if g.len() >= MAX_ENTRIES {
            g.clear();
        }
        let entry = make();
        g.insert(entry.account.id, entry.clone());
        entry
    }

    /// Forgets `id`.
    pub(crate) fn remove(&self, id: &AccountId) {
        self.map
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
    }

    /// Forgets everything.
    pub(crate) fn clear(&self) {
        self.map.write().unwrap_or_else(|e| e.into_inner()).clear();
    }
}
