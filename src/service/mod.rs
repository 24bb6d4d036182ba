//! [`Keyward`]: the service façade every adapter and application uses.

mod accounts;
mod actor;
mod allowlist;
mod apps;
mod audit;
mod bootstrap;
mod bounds;
mod builder;
mod dashboard;
mod decide;
mod events;
mod events_refusals;
mod feed;
#[cfg(feature = "import")]
mod import;
mod judged;
mod keys;
#[cfg(feature = "import")]
mod legacy;
mod limits;
mod loader;
mod page;
mod refresher;
mod sessions;
pub(crate) mod validate;
mod verify;

use std::sync::Arc;

use time::{Duration, OffsetDateTime};
use tokio::sync::Semaphore;

pub use accounts::{AccountPage, AccountUpdated, ListAccounts};
pub use actor::{Actor, User};
#[cfg(any(feature = "axum", feature = "actix"))]
pub(crate) use allowlist::SELF_ORIGIN_ID;
pub use apps::{AppDeleted, AppPage, AppUpdated, ListApps};
pub use audit::{EventPage, UsageFilter};
pub(crate) use bounds::holds;
#[cfg(any(feature = "axum", feature = "actix"))]
pub(crate) use bounds::holds_name;
pub use bounds::may_manage;
pub use builder::{BuildError, KeywardBuilder};
pub use dashboard::{Granularity, UsageGroup, UsagePage, UsagePoint, UsageReport};
pub use events::{EventFilter, EventTail};
#[cfg(any(feature = "axum", feature = "actix"))]
pub(crate) use events_refusals::{Refused, cause_of};
#[cfg(feature = "import")]
pub use import::{ImportError, ImportKey, Imported, RowError};
pub use keys::{Deleted, IssuedKey, KeyPage, KeyUpdate, ListKeys, NewKey, Rotated, Updated};
#[cfg(feature = "import")]
pub use legacy::{InvalidLegacyKeys, LegacyKeys, MAX_LEGACY_KEY_LEN};
#[cfg(any(feature = "axum", feature = "actix"))]
pub(crate) use limits::invalid_limits;
pub use sessions::LoginSession;

use crate::cache::{AccountCache, KeyCache, SessionCache};
use crate::clock::Clock;
use crate::credential::Prefix;
use crate::digest::Digester;
use crate::hash::Hasher;
use crate::limiter::AttemptLimiter;
use crate::store::KeyStore;
use crate::usage::UsageAggregator;

/// The keyward service: issue, verify, sessions, management, audit and
/// usage, over any [`KeyStore`]. Cheap to clone (an `Arc`); put one in your
/// web framework's state.
///
/// ```
/// use keyward::{Actor, Keyward, MemoryStore, NewAccount, NewKey, PermissionSet, VerifyContext};
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let kw = Keyward::builder().store(MemoryStore::new()).build()?;
/// let perms = PermissionSet::parse(["readApplications"])?;
/// let account = kw.create_account(Actor::System, NewAccount::new("Acme", perms.clone())).await?;
/// let issued = kw
///     .issue_key(Actor::System, &account.id, NewKey::new("ci").permissions(perms))
///     .await?;
/// let principal = kw
///     .verify(issued.key.id.as_str(), issued.secret.expose(), VerifyContext::new())
///     .await?;
/// assert_eq!(principal.account_id(), &account.id);
/// # Ok::<_, Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct Keyward {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Keyward {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyward")
            .field("store", &self.inner.store)
            .field("prefix", &self.inner.prefix)
            .field("window", &self.inner.window)
            .finish_non_exhaustive()
    }
}

pub(crate) struct Inner {
    pub(crate) store: Arc<dyn KeyStore>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) prefix: Prefix,
    pub(crate) hasher: Hasher,
    pub(crate) digester: Digester,
    pub(crate) window: Duration,
    pub(crate) window_nanos: i64,
    /// When keys in use are refreshed ahead of expiry.
    pub(crate) refresh_slots: decide::RefreshSlots,
    /// The queue of keys due for refresh, and its task.
    pub(crate) refresher: refresher::Refresher,
    pub(crate) session_ttl: Duration,
    pub(crate) max_grace: Duration,
    pub(crate) keys: KeyCache,
    pub(crate) sessions: SessionCache,
    pub(crate) accounts: AccountCache,
    pub(crate) usage: Arc<UsageAggregator>,
    pub(crate) limiter: AttemptLimiter,
    pub(crate) meters: crate::ratelimit::registry::Registry,
    pub(crate) hash_slots: Semaphore,
    /// Refused logins and management calls waiting for the next flush.
    pub(crate) refusals: events_refusals::Refusals,
    /// Old key strings of imported keys, when configured.
    #[cfg(feature = "import")]
    pub(crate) legacy: Option<legacy::Legacy>,
}

impl Keyward {
    /// A builder; only the store is required.
    pub fn builder() -> KeywardBuilder {
        KeywardBuilder::default()
    }

    /// The credential prefix of this deployment.
    pub fn prefix(&self) -> &Prefix {
        &self.inner.prefix
    }

    /// The propagation window W: the longest any instance trusts a cached
    /// entry past the last moment it was known current (its read, or, for
    /// a key, the change feed's last catch-up while the feed vouches).
    pub fn propagation_window(&self) -> Duration {
        self.inner.window
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn KeyStore> {
        &self.inner.store
    }

    /// The current time according to the configured clock, truncated to
    /// microseconds: the precision every store keeps, so a record reads
    /// back exactly as it was returned when it was written.
    pub fn now(&self) -> OffsetDateTime {
        let t = self.inner.clock.now();
        t.replace_nanosecond(t.nanosecond() / 1_000 * 1_000)
            .unwrap_or(t)
    }

    #[inline]
    pub(crate) fn now_nanos(&self) -> i64 {
        self.inner.clock.now_unix_nanos()
    }

    /// When a change made now is effective on every instance.
    pub(crate) fn effective_by(&self, now: OffsetDateTime) -> OffsetDateTime {
        now + self.inner.window
    }

    /// Number of keys in this instance's verification cache, and the bytes
    /// its tables and entries occupy.
    pub fn cache_stats(&self) -> (usize, usize) {
        (self.inner.keys.len(), self.inner.keys.approx_bytes())
    }

    /// Writes the usage counted so far to the store in one batch, and the
    /// refused logins and management calls counted so far as events, and
    /// the credits spent (see [`flush_credits`](Self::flush_credits)). On
    /// failure the counts are kept for the next flush; nothing is lost.
    ///
    /// # Errors
    /// [`Error::Unavailable`](crate::Error::Unavailable) or another store
    /// failure.
    pub async fn flush(&self) -> crate::Result<()> {
        let refusals = self.flush_refusals().await;
        self.flush_usage().await.and(refusals)
    }

    async fn flush_usage(&self) -> crate::Result<()> {
        crate::metrics::cached_keys(self.inner.keys.len());
        self.inner.keys.drain_usage();
        let credits = self.flush_credits().await;
        let batch = self.inner.usage.drain();
        if batch.is_empty() {
            return credits;
        }
        match crate::metrics::usage_flushed(
            batch.len(),
            self.inner.store.record_usage(&batch).await,
        ) {
            Ok(()) => credits,
            Err(e) => {
                self.inner.usage.restore(batch);
                Err(e.into())
            }
        }
    }

    /// Flushes usage; call it on shutdown.
    ///
    /// # Errors
    /// As [`flush`](Self::flush).
    pub async fn shutdown(&self) -> crate::Result<()> {
        self.flush().await
    }
}
