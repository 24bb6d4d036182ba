//! Persistence: the [`KeyStore`] trait and its implementations.
//!
//! A store persists records and audit events and answers queries; it holds
//! no policy (whether a key is valid is the service's decision). Every
//! method that changes something takes the [`AuditEvent`] describing it and
//! writes both atomically.

use std::fmt;

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::account::{Account, AccountStatus};
use crate::api_key::{ApiKey, KeyStatus};
use crate::app::{App, AppStatus};
use crate::audit::AuditEvent;
use crate::id::{AccountId, AppId, KeyId, SessionId};
use crate::origin::AllowedOrigin;
use crate::session::Session;

mod connect;
mod memory;
pub mod migrations;
pub use connect::connect;
pub use memory::MemoryStore;

#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod sql;

#[cfg(feature = "sqlite")]
mod sqlite;
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub use sqlite::SqliteStore;

#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub use postgres::{PostgresOptions, PostgresStore};

#[cfg(feature = "test-suite")]
#[cfg_attr(docsrs, doc(cfg(feature = "test-suite")))]
pub mod conformance;

/// Errors a store reports. The service maps them; they never reach an HTTP
/// body.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The backend cannot be reached or did not answer; retrying later may
    /// succeed. Nothing was written.
    #[error("store unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A record with this id already exists, or it changed since it was read
    /// (optimistic concurrency). Nothing was written.
    #[error("conflicting change: {0}")]
    Conflict(&'static str),
    /// The record to change does not exist. Nothing was written.
    #[error("record not found")]
    NotFound,
    /// The backend failed in another way (corrupt row, constraint, bug).
    #[error("store backend error")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Result alias for store operations.
pub type StoreResult<T> = Result<T, StoreError>;

/// A hashed secret: an argon2id PHC string. Never serialized, never shown.
#[derive(Clone, PartialEq, Eq)]
pub struct PhcString(pub String);

impl fmt::Debug for PhcString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PhcString([redacted])")
    }
}

/// The previous secret of a key rotated with a grace period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreviousSecret {
    /// Hash of the previous secret.
    pub hash: PhcString,
    /// The previous secret is accepted until this instant.
    pub valid_until: OffsetDateTime,
}

/// A key as persisted: the public record plus its hashed secret(s).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredKey {
    /// The public record.
    pub key: ApiKey,
    /// Hash of the current secret.
    pub secret_hash: PhcString,
    /// Incremented by every rotation.
    pub generation: u32,
    /// The previous secret during a rotation's grace period.
    pub previous: Option<PreviousSecret>,
    /// Incremented by every update; [`KeyStore::update_key`] refuses a write
    /// whose expected version is stale.
    pub version: u64,
    /// Incremented by every change that ends the key's sessions for good
    /// (deactivation, an expired key's expiry moved): a session is valid
    /// only while the epoch it recorded at login is the key's.
    pub session_epoch: u32,
}

/// A key imported from another system ([`KeyStore::insert_imported_keys`]):
/// the key, the id it had there and the alias its old key string is found
/// by.
#[derive(Debug, Clone)]
pub struct ImportedKey {
    /// The key as it will be stored (its secret hash may be a legacy one:
    /// bcrypt, SHA-256, another argon2 variant, upgraded at the first
    /// successful verification).
    pub stored: StoredKey,
    /// The key's id in the system it came from: importing it again finds
    /// this key instead of creating another.
    pub external_id: String,
    /// What identifies the old key string (see `LegacyKeys`): a public part
    /// of it, or the SHA-256 of all of it. Unique.
    pub alias: String,
    /// The `key_imported` audit event.
    pub event: AuditEvent,
}

/// Filters and keyset pagination for [`KeyStore::list_keys`]. Results are
/// ordered by `(created_at, id)` ascending.
#[derive(Debug, Clone, Default)]
pub struct KeyQuery {
    /// Only keys whose name contains this text (case-insensitive).
    pub name_contains: Option<String>,
    /// Only keys with this status.
    pub status: Option<KeyStatus>,
    /// Only keys with this application label.
    pub application: Option<String>,
    /// Only keys of this application.
    pub app_id: Option<AppId>,
    /// Only keys after this `(created_at, id)` position.
    pub after: Option<(OffsetDateTime, KeyId)>,
    /// At most this many keys.
    pub limit: usize,
}

/// Filters and keyset pagination for [`KeyStore::list_accounts`]. Results
/// are ordered by `(created_at, id)` ascending.
#[derive(Debug, Clone, Default)]
pub struct AccountQuery {
    /// Only accounts whose name contains this text (case-insensitive).
    pub name_contains: Option<String>,
    /// Only accounts with this status.
    pub status: Option<AccountStatus>,
    /// Only accounts after this `(created_at, id)` position.
    pub after: Option<(OffsetDateTime, AccountId)>,
    /// At most this many accounts.
    pub limit: usize,
}

/// Filters and keyset pagination for [`KeyStore::list_apps`]. Results are
/// ordered by `(created_at, id)` ascending.
#[derive(Debug, Clone, Default)]
pub struct AppQuery {
    /// Only applications whose title contains this text (case-insensitive).
    pub title_contains: Option<String>,
    /// Only applications with this status.
    pub status: Option<AppStatus>,
    /// Only applications after this `(created_at, id)` position.
    pub after: Option<(OffsetDateTime, AppId)>,
    /// At most this many applications.
    pub limit: usize,
}

/// Filters and keyset pagination for [`KeyStore::list_events`]. Results are
/// ordered by `(at, id)` descending (newest first).
#[derive(Debug, Clone)]
pub struct EventQuery {
    /// Events of this account.
    pub account_id: AccountId,
    /// Only events about this key.
    pub key_id: Option<KeyId>,
    /// Only events before this `(at, id)` position.
    pub before: Option<(OffsetDateTime, String)>,
    /// At most this many events.
    pub limit: usize,
}

/// Counts for one key, origin, category and hour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageRecord {
    /// The key.
    pub key_id: KeyId,
    /// The key's account.
    pub account_id: AccountId,
    /// Call origin label (`api`, `mcp`, ...).
    pub origin: String,
    /// Usage category label (`default`, `analytics`, `realtime`, ...).
    pub category: String,
    /// Start of the hour (UTC, minutes and seconds zero).
    pub hour: OffsetDateTime,
    /// Successful verifications.
    pub successes: u64,
    /// Failed verifications (wrong secret, inactive, expired, IP not allowed).
    pub failures: u64,
    /// Latest successful verification in this batch.
    pub last_used_at: Option<OffsetDateTime>,
}

/// Which usage [`KeyStore::usage`] returns.
#[derive(Debug, Clone)]
pub struct UsageQuery {
    /// Usage of this account's keys.
    pub account_id: AccountId,
    /// Only this key.
    pub key_id: Option<KeyId>,
    /// Only this origin.
    pub origin: Option<String>,
    /// Hours at or after this instant.
    pub from: OffsetDateTime,
    /// Hours before this instant.
    pub to: OffsetDateTime,
}

/// Which per-key usage totals [`KeyStore::usage_totals`] returns: the keys
/// of one account with any usage in `[from, to)`, by volume (successes plus
/// failures) descending, then key id ascending, from a keyset position.
#[derive(Debug, Clone)]
pub struct UsageTotalsQuery {
    /// Usage of this account's keys.
    pub account_id: AccountId,
    /// Only this origin (all when `None`).
    pub origin: Option<String>,
    /// Only this category (all when `None`).
    pub category: Option<String>,
    /// Hours at or after this instant.
    pub from: OffsetDateTime,
    /// Hours before this instant.
    pub to: OffsetDateTime,
    /// Only keys after this `(volume, key)` position in the order.
    pub after: Option<(u64, KeyId)>,
    /// At most this many keys.
    pub limit: usize,
}

/// One key's usage totals over a [`UsageTotalsQuery`]'s range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageTotal {
    /// The key.
    pub key_id: KeyId,
    /// Successful verifications.
    pub successes: u64,
    /// Failed verifications.
    pub failures: u64,
}

impl UsageTotal {
    /// Successes plus failures: the order of [`KeyStore::usage_totals`].
    pub fn volume(&self) -> u64 {
        self.successes.saturating_add(self.failures)
    }
}

/// [`KeyStore::usage_totals`] computed from [`KeyStore::usage`]'s rows (the
/// default; SQL stores aggregate in the database).
pub(crate) fn totals_of(rows: &[UsageRecord], q: &UsageTotalsQuery) -> Vec<UsageTotal> {
    let mut by_key: std::collections::BTreeMap<KeyId, UsageTotal> = Default::default();
    for r in rows {
        if q.category.as_ref().is_some_and(|c| *c != r.category) {
            continue;
        }
        let t = by_key.entry(r.key_id).or_insert(UsageTotal {
            key_id: r.key_id,
            successes: 0,
            failures: 0,
        });
        t.successes = t.successes.saturating_add(r.successes);
        t.failures = t.failures.saturating_add(r.failures);
    }
    let mut out: Vec<UsageTotal> = by_key.into_values().collect();
    out.sort_by(|a, b| {
        b.volume()
            .cmp(&a.volume())
            .then_with(|| a.key_id.as_str().cmp(b.key_id.as_str()))
    });
    out.into_iter()
        .filter(|t| {
            q.after.as_ref().is_none_or(|(v, k)| {
                t.volume() < *v || (t.volume() == *v && t.key_id.as_str() > k.as_str())
            })
        })
        .take(q.limit)
        .collect()
}

/// A change made elsewhere that cached state must drop, delivered by a
/// store's change feed ([`KeyStore::subscribe`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Change {
    /// A key changed (deactivated, deleted, rotated, permissions, expiry...).
    Key(KeyId),
    /// A session ended.
    Session(SessionId),
    /// An account's permissions changed.
    Account(AccountId),
    /// The feed may have missed changes: drop everything cached.
    Reset,
}

/// The error of the defaults of methods added after the first release.
fn unsupported(what: &str) -> StoreError {
    StoreError::Backend(format!("this store does not implement {what}").into())
}

/// Persistence for keyward. Implement it to bring your own database; run
/// the conformance suite (feature `test-suite`) against your implementation.
///
/// Lookups return `Ok(None)` for an absent record; `Err` means the store
/// failed. Every change is written atomically with its audit event.
#[async_trait]
pub trait KeyStore: Send + Sync + fmt::Debug + 'static {
    /// Inserts an account; [`StoreError::Conflict`] if the id exists.
    async fn insert_account(&self, account: &Account, event: &AuditEvent) -> StoreResult<()>;

    /// The account with this id.
    async fn get_account(&self, id: &AccountId) -> StoreResult<Option<Account>>;

    /// The child accounts of `parent` matching `query`, ordered by
    /// `(created_at, id)`.
    ///
    /// This and [`update_account`](Self::update_account) have defaults that
    /// fail with [`StoreError::Backend`] (as the application methods do).
    async fn list_accounts(
        &self,
        _parent: &AccountId,
        _query: &AccountQuery,
    ) -> StoreResult<Vec<Account>> {
        Err(unsupported("accounts listing"))
    }

    /// Writes `account`'s name, permissions and status and appends `event`,
    /// in one transaction. When it becomes inactive, the sessions of its
    /// keys are deleted. [`StoreError::NotFound`] if absent.
    async fn update_account(&self, _account: &Account, _event: &AuditEvent) -> StoreResult<()> {
        Err(unsupported("account updates"))
    }

    /// Inserts a key; [`StoreError::Conflict`] if the id exists.
    async fn insert_key(&self, key: &StoredKey, event: &AuditEvent) -> StoreResult<()>;

    /// The key with this id.
    async fn get_key(&self, id: &KeyId) -> StoreResult<Option<StoredKey>>;

    /// Replaces a key whose stored version is `expected_version` with `key`
    /// (whose `version` is the new one) and appends `event`. `last_used_at`
    /// never moves back: the later of the stored and the given value is
    /// kept, since a usage flush may have advanced it after the key was read.
    /// [`StoreError::NotFound`] if absent, [`StoreError::Conflict`] if the
    /// stored version differs.
    async fn update_key(
        &self,
        key: &StoredKey,
        expected_version: u64,
        event: &AuditEvent,
    ) -> StoreResult<()>;

    /// Deletes a key and its sessions and appends `event`;
    /// [`StoreError::NotFound`] if absent.
    async fn delete_key(&self, id: &KeyId, event: &AuditEvent) -> StoreResult<()>;

    /// Keys of an account matching `query`, ordered by `(created_at, id)`.
    async fn list_keys(&self, account: &AccountId, query: &KeyQuery) -> StoreResult<Vec<ApiKey>>;

    /// Inserts imported keys with their external ids, aliases and audit
    /// events, all in one transaction: [`StoreError::Conflict`] (nothing
    /// written) when a key id, an external id or an alias is already taken.
    ///
    /// This and the two lookups below have defaults (fail with
    /// [`StoreError::Backend`]; no alias known) for stores written before
    /// imports existed.
    async fn insert_imported_keys(&self, _keys: &[ImportedKey]) -> StoreResult<()> {
        Err(unsupported("key imports"))
    }

    /// The key imported under `external_id`, while that key exists.
    async fn imported_key(&self, _external_id: &str) -> StoreResult<Option<KeyId>> {
        Err(unsupported("key imports"))
    }

    /// The imported key whose old key string has this alias, while that key
    /// exists.
    async fn key_by_alias(&self, _alias: &str) -> StoreResult<Option<KeyId>> {
        Ok(None)
    }

    /// Inserts an application; [`StoreError::Conflict`] if the id exists.
    /// Its key counts are ignored.
    ///
    /// The application methods have defaults that fail with
    /// [`StoreError::Backend`] and write nothing, so a store written before
    /// applications existed still compiles and serves keys without one;
    /// implement all five (and run the conformance suite) to support them.
    async fn insert_app(&self, _app: &App, _event: &AuditEvent) -> StoreResult<()> {
        Err(unsupported("applications"))
    }

    /// The application with this id, with the counts of its active and
    /// inactive keys.
    async fn get_app(&self, _id: &AppId) -> StoreResult<Option<App>> {
        Err(unsupported("applications"))
    }

    /// Applications of an account matching `query`, ordered by
    /// `(created_at, id)`, with their key counts.
    async fn list_apps(&self, _account: &AccountId, _query: &AppQuery) -> StoreResult<Vec<App>> {
        Err(unsupported("applications"))
    }

    /// Writes `app`'s title, description, status and `updated_at`, and
    /// appends `event`, in one transaction. When the status changes, every
    /// key of the application gets a new version (so caches re-read it;
    /// the key's own status is untouched) and, when it becomes inactive,
    /// the sessions of those keys are deleted. Returns the ids of the keys
    /// whose version moved (none when the status did not change).
    /// [`StoreError::NotFound`] if absent.
    async fn update_app(&self, _app: &App, _event: &AuditEvent) -> StoreResult<Vec<KeyId>> {
        Err(unsupported("applications"))
    }

    /// Deletes an application and appends `event`; [`StoreError::NotFound`]
    /// if absent, [`StoreError::Conflict`] while a key still belongs to it
    /// (nothing is written then).
    async fn delete_app(&self, _id: &AppId, _event: &AuditEvent) -> StoreResult<()> {
        Err(unsupported("applications"))
    }

    /// The stored entries of the management API's origin allowlist, in the
    /// order they were added. The default has none.
    async fn list_allowed_origins(&self) -> StoreResult<Vec<AllowedOrigin>> {
        Ok(Vec::new())
    }

    /// Adds an origin and appends `event`; [`StoreError::Conflict`] when the
    /// id or the origin is already listed (nothing written). The default
    /// fails with [`StoreError::Backend`].
    async fn insert_allowed_origin(
        &self,
        _origin: &AllowedOrigin,
        _event: &AuditEvent,
    ) -> StoreResult<()> {
        Err(unsupported("origin allowlists"))
    }

    /// Removes the entry `id` and appends `event`; [`StoreError::NotFound`]
    /// if absent. The default fails with [`StoreError::Backend`].
    async fn delete_allowed_origin(&self, _id: &str, _event: &AuditEvent) -> StoreResult<()> {
        Err(unsupported("origin allowlists"))
    }

    /// Inserts a session; [`StoreError::Conflict`] if the id exists,
    /// [`StoreError::NotFound`] (nothing written) unless the session's key
    /// exists with `session.key_epoch` as its session epoch. Atomic with a
    /// concurrent [`delete_key`](Self::delete_key) or epoch change: a session
    /// is never left behind for a deleted key, nor opened past a
    /// deactivation.
    async fn insert_session(&self, session: &Session, event: &AuditEvent) -> StoreResult<()>;

    /// The session with this id.
    async fn get_session(&self, id: &SessionId) -> StoreResult<Option<Session>>;

    /// Deletes a session and appends `event`; [`StoreError::NotFound`] if
    /// absent.
    async fn delete_session(&self, id: &SessionId, event: &AuditEvent) -> StoreResult<()>;

    /// Deletes sessions that expired before `now`; returns how many.
    async fn purge_expired_sessions(&self, now: OffsetDateTime) -> StoreResult<u64>;

    /// Audit events matching `query`, newest first.
    async fn list_events(&self, query: &EventQuery) -> StoreResult<Vec<AuditEvent>>;

    /// Adds a batch of usage counts (summing with existing rows of the same
    /// key, origin, category and hour) and advances each key's
    /// `last_used_at`, all in one write.
    async fn record_usage(&self, batch: &[UsageRecord]) -> StoreResult<()>;

    /// Usage rows matching `query`, ordered by hour, key, origin, category.
    async fn usage(&self, query: &UsageQuery) -> StoreResult<Vec<UsageRecord>>;

    /// Per-key usage totals matching `query`, by volume descending then key
    /// id. The default aggregates [`usage`](Self::usage)'s rows.
    async fn usage_totals(&self, query: &UsageTotalsQuery) -> StoreResult<Vec<UsageTotal>> {
        let rows = self
            .usage(&UsageQuery {
                account_id: query.account_id,
                key_id: None,
                origin: query.origin.clone(),
                from: query.from,
                to: query.to,
            })
            .await?;
        Ok(totals_of(&rows, query))
    }

    /// A feed of changes made by other instances, if the store has one.
    /// The default has none: the propagation window alone bounds staleness.
    fn subscribe(&self) -> Option<tokio::sync::broadcast::Receiver<Change>> {
        None
    }
}
