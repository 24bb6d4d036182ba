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
        self.load_account_within(id, self.inner.window_nanos).await
    }

    /// The account, from the cache when read less than `max_age` ago.
    async fn load_account_within(
        &self,
        id: &AccountId,
        max_age: i64,
    ) -> Result<Option<(Account, i64)>> {
        let now = self.now_nanos();
        if let Some(hit) = self.inner.accounts.get_fresh(id, now, max_age) {
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

    /// Re-reads `id` ahead of its entry's expiry: the key, and its account
    /// unless read within W/4, so the new entry is trusted for most of W
    /// (its freshness is the older of the two reads).
    pub(crate) async fn refresh_key(&self, id: &KeyId) -> Result<()> {
        let started = self.now_nanos();
        let Some(stored) = self.inner.store.get_key(id).await? else {
            self.inner.keys.mark_missing(id, started);
            return Ok(());
        };
        let account = self
            .load_account_within(&stored.key.account_id, self.inner.window_nanos / 4)
            .await?;
        let switched = self.switched_off(&stored, account.as_ref()).await?;
        let stored = switched.as_ref().unwrap_or(&stored);
        self.inner
            .keys
            .upsert(entry_for(stored, account.as_ref(), started, None));
        Ok(())
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
        let switched = self.switched_off(stored, account.as_ref()).await?;
        let stored = switched.as_ref().unwrap_or(stored);
        self.inner
            .keys
            .upsert(entry_for(stored, account.as_ref(), read_at, tag));
        Ok(())
    }
}

/// The cache entry for `stored` read at `read_at` with its account as
/// cached (and when that was read): trusted from the older of the two
/// reads.
fn entry_for(
    stored: &StoredKey,
    account: Option<&(Account, i64)>,
    read_at: i64,
    tag: Option<Tag>,
) -> KeyEntry {
    match account {
        Some((a, at)) => entry_from(stored, &a.permissions, read_at.min(*at), tag),
        None => entry_from(stored, &PermissionSet::new(), read_at, tag),
    }
}

impl Keyward {
    /// `stored` as inactive when its account or application is inactive
    /// (or its application vanished): such a key is refused like an
    /// inactive key, while its own status stays as stored. `None` when
    /// `stored` stands as it is.
    async fn switched_off(
        &self,
        stored: &StoredKey,
        account: Option<&(Account, i64)>,
    ) -> Result<Option<StoredKey>> {
        let account_off = account.is_some_and(|(a, _)| a.status == AccountStatus::Inactive);
        let off = match stored.key.app_id {
            _ if account_off => true,
            Some(app) => !self.app_is_active(&app).await?,
            None => false,
        };
        Ok(off.then(|| inactive(stored)))
    }

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
    let extra = (current_hash.is_some()
        || previous.is_some()
        || !k.allowed_cidrs.is_empty()
        || !k.allowed_origins.is_empty()
        || stored.session_epoch != 0)
        .then(|| {
            Box::new(Extra {
                current_hash,
                previous,
                allowed: k.allowed_cidrs.clone().into_boxed_slice(),
                origins: k
                    .allowed_origins
                    .iter()
                    .map(|o| o.as_str().into())
                    .collect(),
                session_epoch: stored.session_epoch,
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
