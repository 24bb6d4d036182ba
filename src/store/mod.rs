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
use crate::audit::{ActorKind, AuditAction, AuditActor, AuditEvent};
use crate::id::{AccountId, AppId, KeyId, SessionId};
use crate::origin::AllowedOrigin;
use crate::session::Session;

mod connect;
mod limits;
mod memory;
pub mod migrations;
mod rollup;
pub use connect::connect;
pub use limits::StoredLimits;
pub use memory::MemoryStore;
pub(crate) use rollup::ranking as rollup_ranking;

#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod sql;

#[cfg(feature = "sqlite")]
mod sqlite;
#[cfg(feature = "sqlite")]
mod sqlite_limits;
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub use sqlite::SqliteStore;

#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "postgres")]
mod postgres_limits;
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

/// What a cold verification reads about a key
/// ([`KeyStore::get_key_for_verify`]): the key, its application's status
/// and the limits that apply to it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct KeyForVerify {
    /// The key.
    pub stored: StoredKey,
    /// Whether its application exists and is active; `None` for a key in
    /// no application.
    pub app_active: Option<bool>,
    /// The stored limits of the key, its application and its account
    /// ([`limit_owners`]; owners without limits have no entry).
    pub limits: Vec<StoredLimits>,
}

impl KeyForVerify {
    /// The record for `stored`, its application's status and `limits`.
    pub fn new(stored: StoredKey, app_active: Option<bool>, limits: Vec<StoredLimits>) -> Self {
        Self {
            stored,
            app_active,
            limits,
        }
    }
}

/// The owners whose limits apply to `key`, in the order they are metered:
/// the key, its application (if any), its account.
pub fn limit_owners(key: &ApiKey) -> Vec<crate::ratelimit::LimitOwner> {
    use crate::ratelimit::LimitOwner;
    let mut owners = Vec::with_capacity(3);
    owners.push(LimitOwner::Key(key.id));
    if let Some(app) = key.app_id {
        owners.push(LimitOwner::App(app));
    }
    owners.push(LimitOwner::Account(key.account_id));
    owners
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

/// Filters and keyset pagination for [`KeyStore::list_events`] (ordered
/// by `(at, id)` descending, newest first) and
/// [`KeyStore::list_events_since`] (ordered by commit sequence). Every
/// filter is an equality or a range on an indexed column.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct EventQuery {
    /// Events of this account.
    pub account_id: AccountId,
    /// Also the events of `account_id`'s direct children.
    pub children: bool,
    /// Only events about this key.
    pub key_id: Option<KeyId>,
    /// Only events about this application (its own and its keys').
    pub app_id: Option<AppId>,
    /// Only events of this action.
    pub action: Option<AuditAction>,
    /// Only events by this actor.
    pub actor: Option<ActorFilter>,
    /// Only events at or after this instant.
    pub from: Option<OffsetDateTime>,
    /// Only events before this instant.
    pub to: Option<OffsetDateTime>,
    /// Only events before this `(at, id)` position ([`KeyStore::list_events`]).
    pub before: Option<(OffsetDateTime, String)>,
    /// At most this many events.
    pub limit: usize,
}

impl EventQuery {
    /// At most `limit` events of `account`, unfiltered.
    ///
    /// ```
    /// use keyward::{AccountId, store::EventQuery};
    /// let q = EventQuery::new(AccountId::new("acme")?, 50);
    /// assert!(q.key_id.is_none() && !q.children);
    /// # Ok::<_, Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(account_id: AccountId, limit: usize) -> Self {
        Self {
            account_id,
            children: false,
            key_id: None,
            app_id: None,
            action: None,
            actor: None,
            from: None,
            to: None,
            before: None,
            limit,
        }
    }

    /// Whether `e` matches every filter but the position and the limit
    /// (`parent` is the parent of `e`'s account). The reference semantics
    /// the stores implement in SQL.
    pub fn matches(&self, e: &AuditEvent, parent: Option<&AccountId>) -> bool {
        let account =
            e.account_id == self.account_id || (self.children && parent == Some(&self.account_id));
        account
            && self.key_id.is_none_or(|k| e.key_id == Some(k))
            && self.app_id.is_none_or(|a| e.app_id == Some(a))
            && self.action.is_none_or(|a| e.action == a)
            && self.actor.as_ref().is_none_or(|a| a.matches(&e.actor))
            && self.from.is_none_or(|f| e.at >= f)
            && self.to.is_none_or(|t| e.at < t)
    }
}

/// Which actor [`EventQuery::actor`] selects.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ActorFilter {
    /// Every actor of this kind.
    Kind(ActorKind),
    /// This key, directly or through one of its sessions.
    Key(KeyId),
    /// The person with this host id.
    User(String),
}

impl ActorFilter {
    /// Whether `actor` is selected.
    pub fn matches(&self, actor: &AuditActor) -> bool {
        match self {
            Self::Kind(k) => actor.kind == *k,
            Self::Key(k) => actor.key_id == Some(*k),
            Self::User(u) => actor.user_id.as_deref() == Some(u.as_str()),
        }
    }
}

/// An audit event with its commit sequence number: events committed later
/// have higher numbers, so a reader at `seq` has seen every event committed
/// before it (the live stream's position).
#[derive(Debug, Clone, PartialEq)]
pub struct SequencedEvent {
    /// Position in commit order.
    pub seq: u64,
    /// The event.
    pub event: AuditEvent,
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
    /// Requests with a valid credential refused by a rate limit (not
    /// failures, not successes).
    pub rate_limited: u64,
    /// Requests with a valid credential refused because the credits were
    /// spent (not failures, not successes).
    pub usage_exceeded: u64,
    /// Latest successful verification in this batch.
    pub last_used_at: Option<OffsetDateTime>,
}

impl UsageRecord {
    /// Every outcome counted: successes, failures, rate limited, usage
    /// exceeded.
    pub fn volume(&self) -> u64 {
        volume(
            self.successes,
            self.failures,
            self.rate_limited,
            self.usage_exceeded,
        )
    }

    /// Adds `other`'s counts (saturating) and its latest use.
    pub(crate) fn absorb(&mut self, other: &UsageRecord) {
        self.successes = self.successes.saturating_add(other.successes);
        self.failures = self.failures.saturating_add(other.failures);
        self.rate_limited = self.rate_limited.saturating_add(other.rate_limited);
        self.usage_exceeded = self.usage_exceeded.saturating_add(other.usage_exceeded);
        self.last_used_at = self.last_used_at.max(other.last_used_at);
    }
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
    /// Requests refused by a rate limit.
    pub rate_limited: u64,
    /// Requests refused because the credits were spent.
    pub usage_exceeded: u64,
}

impl UsageTotal {
    /// Every outcome counted (successes, failures, rate limited, usage
    /// exceeded): the order of [`KeyStore::usage_totals`].
    pub fn volume(&self) -> u64 {
        volume(
            self.successes,
            self.failures,
            self.rate_limited,
            self.usage_exceeded,
        )
    }
}

/// The volume of a usage count: every outcome counted.
pub(crate) fn volume(successes: u64, failures: u64, rate_limited: u64, usage_exceeded: u64) -> u64 {
    successes
        .saturating_add(failures)
        .saturating_add(rate_limited)
        .saturating_add(usage_exceeded)
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
            rate_limited: 0,
            usage_exceeded: 0,
        });
        t.successes = t.successes.saturating_add(r.successes);
        t.failures = t.failures.saturating_add(r.failures);
        t.rate_limited = t.rate_limited.saturating_add(r.rate_limited);
        t.usage_exceeded = t.usage_exceeded.saturating_add(r.usage_exceeded);
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

/// What a usage group is: the `group_by` of the usage dashboard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum UsageGroupKind {
    /// One key of the account.
    #[default]
    Key,
    /// One application of the account (the key's application when its
    /// usage was flushed).
    App,
    /// The account itself or one of its child accounts.
    Account,
}

impl UsageGroupKind {
    /// `key`, `app` or `account`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Key => "key",
            Self::App => "app",
            Self::Account => "account",
        }
    }
}

/// Which rolled-up usage a rollup query reads: the groups of one kind that
/// one account's dashboard shows, for one origin and one category (every
/// origin or category when `None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RollupScope {
    /// The account whose dashboard shows the groups.
    pub account_id: AccountId,
    /// Keys, applications, or the account and its children.
    pub kind: UsageGroupKind,
    /// Only this origin (all when `None`).
    pub origin: Option<String>,
    /// Only this category (all when `None`).
    pub category: Option<String>,
}

#[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]
impl RollupScope {
    /// The rollup's origin label: `*` for every origin.
    pub(crate) fn origin_label(&self) -> &str {
        self.origin.as_deref().unwrap_or(ROLLUP_ALL)
    }
    /// The rollup's category label: `*` for every category.
    pub(crate) fn category_label(&self) -> &str {
        self.category.as_deref().unwrap_or(ROLLUP_ALL)
    }
}

/// The rollup's label for "every origin" or "every category" (labels never
/// contain `*`).
#[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]
pub(crate) const ROLLUP_ALL: &str = "*";

/// One group's counts in one hour of the rollup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RollupRow {
    /// The key, application or account id.
    pub group: String,
    /// Start of the hour (UTC).
    pub hour: OffsetDateTime,
    /// Successful verifications.
    pub successes: u64,
    /// Failed verifications.
    pub failures: u64,
    /// Requests refused by a rate limit.
    pub rate_limited: u64,
    /// Requests refused because the credits were spent.
    pub usage_exceeded: u64,
}

/// One group's totals (over an hour or a range), ordered by volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupTotal {
    /// The key, application or account id.
    pub group: String,
    /// Successful verifications.
    pub successes: u64,
    /// Failed verifications.
    pub failures: u64,
    /// Requests refused by a rate limit.
    pub rate_limited: u64,
    /// Requests refused because the credits were spent.
    pub usage_exceeded: u64,
}

impl GroupTotal {
    /// Every outcome counted (successes, failures, rate limited, usage
    /// exceeded): the order of the rollup's rankings.
    pub fn volume(&self) -> u64 {
        volume(
            self.successes,
            self.failures,
            self.rate_limited,
            self.usage_exceeded,
        )
    }
    /// Whether `self` comes after the `(volume, group)` position in the
    /// ranking order (volume descending, then group id ascending).
    pub fn is_after(&self, position: &(u64, String)) -> bool {
        let v = self.volume();
        v < position.0 || (v == position.0 && self.group > position.1)
    }
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
    /// The feed has delivered, ahead of this message, every change
    /// committed before this instant since it started or last sent
    /// [`Change::Reset`]. While these keep coming, each less than W after
    /// the one before, an instance keeps trusting cached keys that did not
    /// change (no store re-read); when they stop, it trusts them at most W
    /// past the last one. A feed that cannot promise this never sends it.
    CaughtUp(std::time::Instant),
}

/// What a change to an application was judged on ([`KeyStore::update_app`]):
/// its status and the versions of its keys when the service read them.
/// The store writes the change only while both are unchanged, so a key
/// added, moved in, widened or made protected in between (which the
/// judgement did not see) is never switched off by it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppExpectation {
    /// The application's status as read.
    pub status: AppStatus,
    /// Every key of the application as read, `(id, version)`, sorted by id.
    pub keys: Vec<(KeyId, u64)>,
}

impl AppExpectation {
    /// The expectation of an application read with `status` and `keys`.
    ///
    /// ```
    /// use keyward::{AppStatus, KeyId, store::AppExpectation};
    /// let (a, b) = (KeyId::new("kw_a")?, KeyId::new("kw_b")?);
    /// let e = AppExpectation::new(AppStatus::Active, vec![(b, 2), (a, 1)]);
    /// assert!(e.holds(AppStatus::Active, vec![(a, 1), (b, 2)]));
    /// assert!(!e.holds(AppStatus::Active, vec![(a, 1), (b, 3)]));
    /// assert!(!e.holds(AppStatus::Inactive, vec![(a, 1), (b, 2)]));
    /// # Ok::<_, Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(status: AppStatus, mut keys: Vec<(KeyId, u64)>) -> Self {
        keys.sort_unstable();
        Self { status, keys }
    }

    /// Whether an application now stored with `status` and `keys` (in any
    /// order) is still as expected.
    pub fn holds(&self, status: AppStatus, keys: Vec<(KeyId, u64)>) -> bool {
        status == self.status && Self::new(status, keys).keys == self.keys
    }
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

    /// Writes `account`'s name, permissions, status and `version` (the new
    /// one) and appends `event`, in one transaction, if the stored version
    /// is `expected_version`: the service judged the change on that
    /// version, so a change made in between must be judged again. When it
    /// becomes inactive, the sessions of its keys are deleted.
    /// [`StoreError::NotFound`] if absent, [`StoreError::Conflict`]
    /// (nothing written) if the stored version differs.
    async fn update_account(
        &self,
        _account: &Account,
        _expected_version: u64,
        _event: &AuditEvent,
    ) -> StoreResult<()> {
        Err(unsupported("account updates"))
    }

    /// Inserts a key; [`StoreError::Conflict`] if the id exists.
    async fn insert_key(&self, key: &StoredKey, event: &AuditEvent) -> StoreResult<()>;

    /// The key with this id.
    async fn get_key(&self, id: &KeyId) -> StoreResult<Option<StoredKey>>;

    /// The key with this id, its application's status and the limits of
    /// its owners ([`limit_owners`]): everything a cold verification reads
    /// besides the account (which the service caches across keys). The
    /// default composes [`get_key`](Self::get_key),
    /// [`get_app`](Self::get_app) (only for a key in an application) and
    /// [`get_limits`](Self::get_limits), so a store written before it
    /// exists works unchanged; the SQL stores answer in one query.
    async fn get_key_for_verify(&self, id: &KeyId) -> StoreResult<Option<KeyForVerify>> {
        let Some(stored) = self.get_key(id).await? else {
            return Ok(None);
        };
        let app_active = match stored.key.app_id {
            Some(app) => Some(
                self.get_app(&app)
                    .await?
                    .is_some_and(|a| a.status == AppStatus::Active),
            ),
            None => None,
        };
        let limits = self.get_limits(&limit_owners(&stored.key)).await?;
        Ok(Some(KeyForVerify::new(stored, app_active, limits)))
    }

    /// The keys among `ids` that exist, each exactly as
    /// [`get_key_for_verify`](Self::get_key_for_verify) returns it; absent
    /// ids are left out, and the order is unspecified. `ids` are distinct.
    /// The service's background refresher re-reads the keys due for
    /// refresh in one call. The default calls `get_key_for_verify` for
    /// each id, so a store written before it exists works unchanged; the
    /// SQL stores answer in one query per 500 ids.
    async fn get_keys_for_verify(&self, ids: &[KeyId]) -> StoreResult<Vec<KeyForVerify>> {
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(k) = self.get_key_for_verify(id).await? {
                out.push(k);
            }
        }
        Ok(out)
    }

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

    /// Deletes a key whose stored version is `expected_version`, with its
    /// sessions, and appends `event`: the service judged the deletion on
    /// that version, so a key changed in between (widened, made protected)
    /// is judged again. [`StoreError::NotFound`] if absent,
    /// [`StoreError::Conflict`] (nothing written) if the stored version
    /// differs.
    async fn delete_key(
        &self,
        id: &KeyId,
        expected_version: u64,
        event: &AuditEvent,
    ) -> StoreResult<()>;

    /// Keys of an account matching `query`, ordered by `(created_at, id)`.
    async fn list_keys(&self, account: &AccountId, query: &KeyQuery) -> StoreResult<Vec<ApiKey>>;

    /// [`list_keys`](Self::list_keys) with the stored records (versions
    /// included), which a change judged on these keys expects
    /// ([`update_app`](Self::update_app)). The default reads each key of
    /// [`list_keys`](Self::list_keys)'s page with
    /// [`get_key`](Self::get_key) (skipping keys deleted in between); the
    /// SQL stores read them in one query.
    async fn list_stored_keys(
        &self,
        account: &AccountId,
        query: &KeyQuery,
    ) -> StoreResult<Vec<StoredKey>> {
        let mut out = Vec::new();
        for k in self.list_keys(account, query).await? {
            if let Some(stored) = self.get_key(&k.id).await? {
                out.push(stored);
            }
        }
        Ok(out)
    }

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
    /// appends `event`, in one transaction, if the application is still as
    /// the service judged it: its stored status is `expected.status` and
    /// its keys are exactly `expected.keys` at those versions
    /// ([`AppExpectation::holds`]; compared inside the transaction, with
    /// the application's row and its keys locked where the backend has
    /// row locks). When the status changes, every key of the application
    /// gets a new version (so caches re-read it; the key's own status is
    /// untouched) and, when it becomes inactive, the sessions of those
    /// keys are deleted. Returns the ids of the keys whose version moved
    /// (none when the status did not change). [`StoreError::NotFound`] if
    /// absent, [`StoreError::Conflict`] (nothing written) when it is no
    /// longer as expected.
    async fn update_app(
        &self,
        _app: &App,
        _expected: &AppExpectation,
        _event: &AuditEvent,
    ) -> StoreResult<Vec<KeyId>> {
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

    /// Audit events matching `query` (its `before` ignored) committed after
    /// position `after`, in commit order, at most `query.limit`. The
    /// default fails with [`StoreError::Backend`].
    async fn list_events_since(
        &self,
        _query: &EventQuery,
        _after: u64,
    ) -> StoreResult<Vec<SequencedEvent>> {
        Err(unsupported("event streams"))
    }

    /// The position of the latest committed audit event (0 when none).
    /// The default fails with [`StoreError::Backend`].
    async fn last_event_seq(&self) -> StoreResult<u64> {
        Err(unsupported("event streams"))
    }

    /// Appends aggregated refusal events, each merged with a stored event
    /// of the same id (same key, cause and minute): its `details.count`
    /// adds to the stored one, its `client_ip` and position replace the
    /// stored ones. The default fails with [`StoreError::Backend`].
    async fn record_refusals(&self, _events: &[AuditEvent]) -> StoreResult<()> {
        Err(unsupported("refusal events"))
    }

    /// A signal that audit events may have committed (on this instance, or
    /// on another through the store's change feed); `None` when the store
    /// has none and readers poll. Its value means nothing; only changes do.
    fn event_signal(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        None
    }

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

    /// One hour of the usage rollup: the groups of `scope` with usage in
    /// the hour starting at `hour`, by volume descending then group id,
    /// after the `(volume, group)` position `after`, at most `limit`.
    /// The dashboard's top-consumer reads walk these (an index range in
    /// the SQL stores). The default derives them from
    /// [`usage`](Self::usage) (and the keys and child accounts).
    async fn usage_ranked(
        &self,
        scope: &RollupScope,
        hour: OffsetDateTime,
        after: Option<&(u64, String)>,
        limit: usize,
    ) -> StoreResult<Vec<GroupTotal>> {
        let rows = rollup::derive(self, scope, hour, hour + time::Duration::HOUR).await?;
        Ok(rollup::rank(
            rows.into_iter().map(RollupRow::into_total),
            after,
            limit,
        ))
    }

    /// The rollup rows of `groups` (ids of `scope`'s kind) in `[from, to)`,
    /// ordered by group then hour. The default derives them as
    /// [`usage_ranked`](Self::usage_ranked)'s does.
    async fn usage_rollup(
        &self,
        scope: &RollupScope,
        groups: &[String],
        from: OffsetDateTime,
        to: OffsetDateTime,
    ) -> StoreResult<Vec<RollupRow>> {
        let mut rows = rollup::derive(self, scope, from, to).await?;
        rows.retain(|r| groups.contains(&r.group));
        rows.sort_by(|a, b| a.group.cmp(&b.group).then(a.hour.cmp(&b.hour)));
        Ok(rows)
    }

    /// The totals of `scope`'s groups over `[from, to)`, by volume
    /// descending then group id, after `after`, at most `limit`: the
    /// aggregation of every row of the range (the dashboard uses it for
    /// child accounts, and when the hourly rankings would read more). The
    /// default derives them as [`usage_ranked`](Self::usage_ranked)'s does.
    async fn usage_group_totals(
        &self,
        scope: &RollupScope,
        from: OffsetDateTime,
        to: OffsetDateTime,
        after: Option<&(u64, String)>,
        limit: usize,
    ) -> StoreResult<Vec<GroupTotal>> {
        let rows = rollup::derive(self, scope, from, to).await?;
        Ok(rollup::rank(
            rows.into_iter().map(RollupRow::into_total),
            after,
            limit,
        ))
    }

    /// The display names of these usage groups, for one dashboard page in
    /// one read: key names, application titles or account names, as
    /// `(id, name)` (ids of nothing are left out). The default reads them
    /// one by one.
    async fn group_names(
        &self,
        kind: UsageGroupKind,
        ids: &[String],
    ) -> StoreResult<Vec<(String, String)>> {
        let mut names = Vec::with_capacity(ids.len());
        for id in ids {
            let name = match kind {
                UsageGroupKind::Key => match KeyId::new(id) {
                    Ok(k) => self.get_key(&k).await?.map(|k| k.key.name),
                    Err(_) => None,
                },
                UsageGroupKind::App => match AppId::new(id) {
                    Ok(a) => self.get_app(&a).await?.map(|a| a.title),
                    Err(_) => None,
                },
                UsageGroupKind::Account => match AccountId::new(id) {
                    Ok(a) => self.get_account(&a).await?.map(|a| a.name),
                    Err(_) => None,
                },
            };
            if let Some(name) = name {
                names.push((id.clone(), name));
            }
        }
        Ok(names)
    }

    /// The stored limits of these owners (absent owners have none). The
    /// default has none, so a store written before limits existed serves
    /// keys unlimited.
    async fn get_limits(
        &self,
        _owners: &[crate::ratelimit::LimitOwner],
    ) -> StoreResult<Vec<StoredLimits>> {
        Ok(Vec::new())
    }

    /// Writes an owner's limits (replacing any; empty limits delete the
    /// row), with `remaining` and `period` as given, and appends `event`, in
    /// one transaction. The default fails and writes nothing.
    async fn put_limits(&self, _limits: &StoredLimits, _event: &AuditEvent) -> StoreResult<()> {
        Err(unsupported("limits"))
    }

    /// Spends `spent` credits of `owner` in one atomic step: first, when
    /// its credits refill and their stored period is before `period`, the
    /// count is set to the refill amount and the period to `period`; then
    /// `spent` is subtracted (not below 0). Returns the count after, or
    /// `None` when the owner has no credits. `spent = 0` reads (and
    /// refills). The default fails and writes nothing.
    async fn spend_credits(
        &self,
        _owner: &crate::ratelimit::LimitOwner,
        _spent: u64,
        _period: i64,
    ) -> StoreResult<Option<u64>> {
        Err(unsupported("limits"))
    }

    /// A feed of changes made by other instances, if the store has one.
    /// The default has none: the propagation window alone bounds staleness.
    fn subscribe(&self) -> Option<tokio::sync::broadcast::Receiver<Change>> {
        None
    }
}
