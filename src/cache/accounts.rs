//! Cache of accounts, so that effective permissions (key ∩ account) need
//! no extra store read per key refresh.

use std::collections::HashMap;
use std::sync::RwLock;

use crate::account::Account;
use crate::id::AccountId;

const MAX_ENTRIES: usize = 100_000;

/// Accounts read from the store, with the time of the read.
#[derive(Debug, Default)]
pub(crate) struct AccountCache {
    map: RwLock<HashMap<AccountId, (Account, i64), foldhash::fast::RandomState>>,
}

impl AccountCache {
    /// The account and when it was read, if read less than `window` ago.
    pub(crate) fn get_fresh(
        &self,
        id: &AccountId,
        now: i64,
        window: i64,
    ) -> Option<(Account, i64)> {
        let g = self.map.read().unwrap_or_else(|e| e.into_inner());
        g.get(id)
            .filter(|(_, at)| now >= *at && now.saturating_sub(*at) < window)
            .cloned()
    }

    /// Remembers `account` as read at `at`.
    pub(crate) fn insert(&self, account: Account, at: i64) {
        let mut g = self.map.write().unwrap_or_else(|e| e.into_inner());
        if g.len() >= MAX_ENTRIES {
            g.clear();
        }
        g.insert(account.id, (account, at));
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
