//! Reading keys and accounts from the store into the caches.

use std::sync::Arc;

use super::Keyward;
use crate::account::{Account, AccountStatus};
use crate::api_key::KeyStatus;
use crate::cache::{CachedAccount, Extra, LoadedKey, SecretSlot};
use crate::digest::Tag;
use crate::error::Result;
use crate::id::{AccountId, KeyId};
use crate::permission::PermissionSet;
use crate::principal::Grant;
use crate::ratelimit::meter::Meters;
use crate::store::{KeyForVerify, StoredKey};
use crate::usage::time_to_nanos;

/// The start of a store read: its time, and the change feed's count of
/// applied changes then (an entry whose read raced a change is never
/// vouched for by the feed).
#[derive(Debug, Clone, Copy)]
pub(super) struct ReadStart {
    pub(super) at: i64,
    changes: u64,
}

impl Keyward {
    /// The account, from the cache when read less than W ago, with the time
    /// of the read.
    pub(crate) async fn load_account(&self, id: &AccountId) -> Result<Option<(Account, i64)>> {
        let cached = self.cached_account(id, self.inner.window_nanos).await?;
        Ok(cached.map(|c| (c.account, c.read_at)))
    }

    /// The account, from the cache when read less than `max_age` ago.
    pub(super) async fn cached_account(
        &self,
        id: &AccountId,
        max_age: i64,
    ) -> Result<Option<CachedAccount>> {
        let now = self.now_nanos();
        if let Some(hit) = self.inner.accounts.get_fresh(id, now, max_age) {
            return Ok(Some(hit));
        }
        let vouch = self.inner.keys.vouch();
        let seen = vouch.changes();
        let account = self.inner.store.get_account(id).await?;
        Ok(account.map(|a| {
            self.inner
                .accounts
                .insert_read(a, now, || vouch.unchanged_since(seen))
        }))
    }

    /// Now, for a store read about to start.
    pub(super) fn read_start(&self) -> ReadStart {
        ReadStart {
            changes: self.inner.keys.vouch().changes(),
            at: self.now_nanos(),
        }
    }

    /// Reads `id` from the store into the key cache; `false` when the key
    /// does not exist (any cached entry is dropped, and the id remembered
    /// as missing for W).
    pub(crate) async fn load_key(&self, id: &KeyId) -> Result<bool> {
        let start = self.read_start();
        // One store call for the key, its application's status and its
        // owners' limits; the account comes from its cache (W).
        let Some(loaded) = self.inner.store.get_key_for_verify(id).await? else {
            self.inner.keys.mark_missing(id, start.at);
            return Ok(false);
        };
        let account = self
            .cached_account(&loaded.stored.key.account_id, self.inner.window_nanos)
            .await?;
        self.put_loaded(&loaded, account.as_ref(), start);
        Ok(true)
    }

    /// Puts a key read for verification at `start` in the key cache, with
    /// its account as cached, switched off with its account or
    /// application, metered by the limits read with it.
    pub(super) fn put_loaded(
        &self,
        loaded: &KeyForVerify,
        account: Option<&CachedAccount>,
        start: ReadStart,
    ) {
        let stored = &loaded.stored;
        let off = account_is_off(account) || loaded.app_active == Some(false);
        let switched = off.then(|| inactive(stored));
        let meters = self.meters_of(stored, &loaded.limits);
        let stored = switched.as_ref().unwrap_or(stored);
        self.inner.keys.upsert(
            entry_for(stored, account, start.at, None, meters),
            Some(start.changes),
        );
    }

    /// Puts `stored` in the key cache as read at `read_at`, with `tag` as
    /// the verified tag of its current secret when known. For what a
    /// management call just wrote: trusted for W, never vouched for by the
    /// change feed (a change made elsewhere may race the write; the entry's
    /// next read is vouched for).
    pub(crate) async fn cache_key(
        &self,
        stored: &StoredKey,
        tag: Option<Tag>,
        read_at: i64,
    ) -> Result<()> {
        self.store_entry(stored, tag, read_at, None).await
    }

    /// Puts `stored`, written at `read_at`, in the key cache with its
    /// account's permissions and switched off with its account or
    /// application (read here: the write did not read them).
    async fn store_entry(
        &self,
        stored: &StoredKey,
        tag: Option<Tag>,
        read_at: i64,
        seen: Option<u64>,
    ) -> Result<()> {
        let account = self
            .cached_account(&stored.key.account_id, self.inner.window_nanos)
            .await?;
        let switched = self.switched_off(stored, account.as_ref()).await?;
        let meters = self.load_meters(stored).await?;
        let stored = switched.as_ref().unwrap_or(stored);
        self.inner.keys.upsert(
            entry_for(stored, account.as_ref(), read_at, tag, meters),
            seen,
        );
        Ok(())
    }
}

/// The cache entry for `stored` read at `read_at` with its account as
/// cached: trusted from the older of the two reads, and vouchable by the
/// feed only with a vouchable account entry.
fn entry_for(
    stored: &StoredKey,
    account: Option<&CachedAccount>,
    read_at: i64,
    tag: Option<Tag>,
    meters: Meters,
) -> LoadedKey {
    match account {
        Some(a) => entry_from(
            stored,
            &a.account.permissions,
            read_at.min(a.read_at),
            tag,
            meters,
        )
        .vouchable_if(a.vouchable),
        None => entry_from(stored, &PermissionSet::new(), read_at, tag, meters),
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
        account: Option<&CachedAccount>,
    ) -> Result<Option<StoredKey>> {
        let off = match stored.key.app_id {
            _ if account_is_off(account) => true,
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

/// Whether the cached account is switched off.
fn account_is_off(account: Option<&CachedAccount>) -> bool {
    account.is_some_and(|c| c.account.status == AccountStatus::Inactive)
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
    meters: Meters,
) -> LoadedKey {
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
    LoadedKey::new(
        k.id,
        Arc::new(Grant {
            account: k.account_id,
            permissions: k.permissions.intersection(account_permissions),
            meters,
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
