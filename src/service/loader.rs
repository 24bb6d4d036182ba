//! Reading keys and accounts from the store into the caches.

use std::sync::Arc;

use super::Keyward;
use crate::account::{Account, AccountStatus};
use crate::api_key::KeyStatus;
use crate::cache::{Extra, KeyEntry, SecretSlot};
use crate::digest::Tag;
use crate::error::Result;
use crate::id::{AccountId, KeyId};
use crate::permission::PermissionSet;
use crate::principal::Grant;
use crate::store::StoredKey;
use crate::usage::time_to_nanos;

impl Keyward {
    /// The account, from the cache when read less than W ago, with the time
    /// of the read.
    pub(crate) async fn load_account(&self, id: &AccountId) -> Result<Option<(Account, i64)>> {
        let now = self.now_nanos();
        if let Some(hit) = self
            .inner
            .accounts
            .get_fresh(id, now, self.inner.window_nanos)
        {
            return Ok(Some(hit));
        }
        let account = self.inner.store.get_account(id).await?;
        Ok(account.map(|a| {
            self.inner.accounts.insert(a.clone(), now);
            (a, now)
        }))
    }

    /// Reads `id` from the store into the key cache; `false` when the key
    /// does not exist (any cached entry is dropped, and the id remembered
    /// as missing for W).
    pub(crate) async fn load_key(&self, id: &KeyId) -> Result<bool> {
        let started = self.now_nanos();
        let Some(stored) = self.inner.store.get_key(id).await? else {
            self.inner.keys.mark_missing(id, started);
            return Ok(false);
        };
        self.cache_key(&stored, None, started).await?;
        Ok(true)
    }

    /// Puts `stored` in the key cache as read at `read_at`, with `tag` as
    /// the verified tag of its current secret when known.
    pub(crate) async fn cache_key(
        &self,
        stored: &StoredKey,
        tag: Option<Tag>,
        read_at: i64,
    ) -> Result<()> {
        let account = self.load_account(&stored.key.account_id).await?;
        let (account_perms, fetched_at) = match &account {
            Some((a, at)) => (a.permissions.clone(), read_at.min(*at)),
            None => (PermissionSet::new(), read_at),
        };
        // A key of an inactive account or application (or a vanished one)
        // is refused like an inactive key; its own status stays as stored.
        let account_off = account
            .as_ref()
            .is_some_and(|(a, _)| a.status == AccountStatus::Inactive);
        let switched_off;
        let stored = match stored.key.app_id {
            _ if account_off => {
                switched_off = inactive(stored);
                &switched_off
            }
            Some(app) if !self.app_is_active(&app).await? => {
                switched_off = inactive(stored);
                &switched_off
            }
            _ => stored,
        };
        self.inner
            .keys
            .upsert(entry_from(stored, &account_perms, fetched_at, tag));
        Ok(())
    }
}

impl Keyward {
    /// Whether the application `id` exists and is active, read from the
    /// store (keys are read with their application on every load).
    async fn app_is_active(&self, id: &crate::id::AppId) -> Result<bool> {
        let app = self.inner.store.get_app(id).await?;
        Ok(app.is_some_and(|a| a.status == crate::app::AppStatus::Active))
    }
}

/// `stored` with its status inactive.
fn inactive(stored: &StoredKey) -> StoredKey {
    let mut off = stored.clone();
    off.key.status = KeyStatus::Inactive;
    off
}

/// The cache entry for a stored key.
pub(crate) fn entry_from(
    stored: &StoredKey,
    account_permissions: &PermissionSet,
    fetched_at: i64,
    tag: Option<Tag>,
) -> KeyEntry {
    let k = &stored.key;
    let previous = stored.previous.as_ref().map(|p| {
        (
            SecretSlot::cold(p.hash.clone()),
            time_to_nanos(p.valid_until),
        )
    });
    let current_hash = tag.is_none().then(|| stored.secret_hash.clone());
    let extra =
        (current_hash.is_some() || previous.is_some() || !k.allowed_cidrs.is_empty()).then(|| {
            Box::new(Extra {
                current_hash,
                previous,
                allowed: k.allowed_cidrs.clone().into_boxed_slice(),
            })
        });
    KeyEntry::new(
        k.id,
        Arc::new(Grant {
            account: k.account_id,
            permissions: k.permissions.intersection(account_permissions),
        }),
        tag,
        stored.generation,
        k.status == KeyStatus::Active,
        k.expires_at.map_or(i64::MAX, time_to_nanos),
        fetched_at,
        stored.version,
        extra,
    )
}
