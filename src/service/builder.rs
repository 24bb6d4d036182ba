//! [`KeywardBuilder`].

use std::sync::{Arc, Weak};

use time::Duration;
use tokio::sync::Semaphore;

use super::{Inner, Keyward};
use crate::cache::{AccountCache, KeyCache, SessionCache};
use crate::clock::{Clock, SystemClock};
use crate::credential::{InvalidPrefix, Prefix};
use crate::digest::Digester;
use crate::hash::{HashParams, Hasher, InvalidHashParams};
use crate::limiter::{AttemptLimit, AttemptLimiter};
use crate::store::KeyStore;
use crate::usage::UsageAggregator;

/// Why [`KeywardBuilder::build`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// No store was given.
    #[error("a store is required: call KeywardBuilder::store")]
    MissingStore,
    /// The prefix is invalid.
    #[error(transparent)]
    Prefix(#[from] InvalidPrefix),
    /// The hashing parameters are invalid or above the ceiling.
    #[error(transparent)]
    HashParams(#[from] InvalidHashParams),
    /// A duration is zero, negative or out of range.
    #[error("invalid {0}: must be positive")]
    Duration(&'static str),
    /// The refresh batch window is W/40 or more: refreshes would start
    /// too late to be done before their entries expire.
    #[error("invalid refresh batch window: must be below W/40")]
    RefreshBatchWindow,
}

/// Configures a [`Keyward`].
#[derive(Debug)]
pub struct KeywardBuilder {
    store: Option<Arc<dyn KeyStore>>,
    clock: Arc<dyn Clock>,
    prefix: String,
    hash: HashParams,
    ceiling: HashParams,
    window: Duration,
    session_ttl: Duration,
    max_grace: Duration,
    attempt_limit: AttemptLimit,
    max_concurrent_hashes: usize,
    max_cached_keys: usize,
    max_cached_sessions: usize,
    flush_interval: Option<std::time::Duration>,
    refresh_batch_window: Option<std::time::Duration>,
    #[cfg(feature = "import")]
    legacy: Option<super::LegacyKeys>,
    #[cfg(feature = "redis")]
    redis_limits: Option<crate::ratelimit::RedisLimits>,
}

impl Default for KeywardBuilder {
    fn default() -> Self {
        Self {
            store: None,
            clock: Arc::new(SystemClock),
            prefix: "kw".into(),
            hash: HashParams::DEFAULT,
            ceiling: HashParams::DEFAULT_CEILING,
            window: Duration::seconds(30),
            session_ttl: Duration::hours(1),
            max_grace: Duration::days(7),
            attempt_limit: AttemptLimit::default(),
            max_concurrent_hashes: std::thread::available_parallelism().map_or(2, |n| n.get()),
            max_cached_keys: 2_000_000,
            max_cached_sessions: 1_000_000,
            flush_interval: Some(std::time::Duration::from_secs(10)),
            refresh_batch_window: None,
            #[cfg(feature = "import")]
            legacy: None,
            #[cfg(feature = "redis")]
            redis_limits: None,
        }
    }
}

impl KeywardBuilder {
    /// The store (required).
    pub fn store(mut self, store: impl KeyStore) -> Self {
        self.store = Some(Arc::new(store));
        self
    }

    /// The store, already shared.
    pub fn shared_store(mut self, store: Arc<dyn KeyStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// The clock (default: the system clock).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// The credential prefix, 1–8 lowercase letters and digits (default
    /// `kw`).
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Argon2id parameters for new hashes (default m = 8 MiB, t = 1, p = 1);
    /// stored hashes with other parameters are upgraded on their next
    /// successful verification.
    pub fn hash_params(mut self, params: HashParams) -> Self {
        self.hash = params;
        self
    }

    /// The most expensive stored hash this instance will evaluate (default
    /// m = 256 MiB, t = 16, p = 8).
    pub fn hash_ceiling(mut self, ceiling: HashParams) -> Self {
        self.ceiling = ceiling;
        self
    }

    /// The propagation window W (default 30 s): no cached entry older than
    /// this is trusted.
    pub fn propagation_window(mut self, w: Duration) -> Self {
        self.window = w;
        self
    }

    /// Session lifetime (default 1 h).
    pub fn session_ttl(mut self, ttl: Duration) -> Self {
        self.session_ttl = ttl;
        self
    }

    /// Longest grace period a rotation may give the old secret (default 7
    /// days).
    pub fn max_grace_period(mut self, max: Duration) -> Self {
        self.max_grace = max;
        self
    }

    /// Failed argon2 verifications allowed per key id and client address
    /// (default 10) and per key id from all addresses (default 50), then one
    /// per 6 s; see [`AttemptLimit`].
    pub fn attempt_limit(mut self, limit: AttemptLimit) -> Self {
        self.attempt_limit = limit;
        self
    }

    /// Concurrent argon2 computations (default: the number of CPUs).
    pub fn max_concurrent_hashes(mut self, n: usize) -> Self {
        self.max_concurrent_hashes = n.max(1);
        self
    }

    /// Cached keys at most (default 2 000 000).
    pub fn max_cached_keys(mut self, n: usize) -> Self {
        self.max_cached_keys = n.max(1);
        self
    }

    /// Cached sessions at most (default 1 000 000).
    pub fn max_cached_sessions(mut self, n: usize) -> Self {
        self.max_cached_sessions = n.max(1);
        self
    }

    /// How often usage is flushed in the background (default 10 s; `None`
    /// for explicit [`Keyward::flush`] only). The task runs when `build` is
    /// called inside a Tokio runtime.
    pub fn flush_interval(mut self, every: Option<std::time::Duration>) -> Self {
        self.flush_interval = every;
        self
    }

    /// How long the background refresher gathers keys due for refresh
    /// before reading them from the store together (default W/100, at
    /// most 250 ms; zero: read what is queued at once). Without a change
    /// feed that vouches for cached keys (SQLite, or a memory store shared
    /// by nobody), every key in use is re-read shortly before it is W old,
    /// in the background; the keys due within one window are read in one
    /// [`KeyStore::get_keys_for_verify`] call, with each of their
    /// accounts read once. A longer window makes fewer, larger reads; it
    /// must stay below W/40, the least time a refresh has before its
    /// entry expires ([`build`](Self::build) fails otherwise).
    ///
    /// ```
    /// use keyward::{Keyward, MemoryStore};
    /// let kw = Keyward::builder()
    ///     .store(MemoryStore::new())
    ///     .refresh_batch_window(std::time::Duration::from_millis(100))
    ///     .build()?;
    /// # let _ = kw;
    /// assert!(
    ///     Keyward::builder()
    ///         .store(MemoryStore::new())
    ///         .propagation_window(time::Duration::seconds(30))
    ///         .refresh_batch_window(std::time::Duration::from_secs(1))
    ///         .build()
    ///         .is_err()
    /// );
    /// # Ok::<_, keyward::BuildError>(())
    /// ```
    pub fn refresh_batch_window(mut self, window: std::time::Duration) -> Self {
        self.refresh_batch_window = Some(window);
        self
    }

    /// Accepts the old key strings of keys imported from another system
    /// ([`Keyward::import_keys`]): which strings they are and how each finds
    /// its key (feature `import`).
    #[cfg(feature = "import")]
    #[cfg_attr(docsrs, doc(cfg(feature = "import")))]
    pub fn legacy_keys(mut self, legacy: super::LegacyKeys) -> Self {
        self.legacy = Some(legacy);
        self
    }

    /// Shares every rate limit with the other instances through Redis
    /// (feature `redis`; default: each instance enforces its limits
    /// in-process). Credits stay in the store.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// use keyward::{Keyward, MemoryStore, RedisLimits};
    /// let kw = Keyward::builder()
    ///     .store(MemoryStore::new())
    ///     .redis_limits(RedisLimits::connect("redis://127.0.0.1:6379").await?.fail_closed())
    ///     .build()?;
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "redis")]
    #[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
    pub fn redis_limits(mut self, limits: crate::ratelimit::RedisLimits) -> Self {
        self.redis_limits = Some(limits);
        self
    }

    /// Builds the service. Inside a Tokio runtime it also starts the usage
    /// flusher and, when the store has a change feed, the task that applies
    /// other instances' changes to the caches; both stop when the last
    /// handle is dropped. The background refresher (see
    /// [`refresh_batch_window`](Self::refresh_batch_window)) starts with
    /// the first refresh made inside a runtime, and stops likewise.
    ///
    /// # Errors
    /// [`BuildError`] for a missing store or invalid settings.
    pub fn build(self) -> Result<Keyward, BuildError> {
        let store = crate::metrics::timed_store(self.store.ok_or(BuildError::MissingStore)?);
        for (name, d) in [
            ("propagation window", self.window),
            ("session ttl", self.session_ttl),
        ] {
            if d <= Duration::ZERO {
                return Err(BuildError::Duration(name));
            }
        }
        if self.max_grace < Duration::ZERO {
            return Err(BuildError::Duration("max grace period"));
        }
        let window_nanos = i64::try_from(self.window.whole_nanoseconds())
            .map_err(|_| BuildError::Duration("propagation window"))?;
        let w = std::time::Duration::from_nanos(window_nanos.unsigned_abs());
        let batch_window = match self.refresh_batch_window {
            Some(b) if b >= w / 40 => return Err(BuildError::RefreshBatchWindow),
            Some(b) => b,
            None => super::refresher::default_batch_window(w),
        };
        let feed = store.subscribe();
        let usage = Arc::new(UsageAggregator::default());
        let kw = Keyward {
            inner: Arc::new(Inner {
                store,
                clock: self.clock,
                prefix: Prefix::new(&self.prefix)?,
                hasher: Hasher::new(self.hash, self.ceiling)?,
                digester: Digester::new(),
                window: self.window,
                window_nanos,
                refresh_slots: super::decide::RefreshSlots::for_window(window_nanos),
                refresher: super::refresher::Refresher::new(batch_window),
                session_ttl: self.session_ttl,
                max_grace: self.max_grace,
                keys: KeyCache::new(self.max_cached_keys, Arc::clone(&usage)),
                sessions: SessionCache::new(self.max_cached_sessions),
                accounts: AccountCache::default(),
                usage,
                limiter: AttemptLimiter::new(self.attempt_limit),
                meters: meters_registry(
                    #[cfg(feature = "redis")]
                    self.redis_limits,
                ),
                hash_slots: Semaphore::new(self.max_concurrent_hashes),
                refusals: Default::default(),
                #[cfg(feature = "import")]
                legacy: self.legacy.map(super::legacy::Legacy::new),
            }),
        };
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            if let Some(every) = self.flush_interval {
                rt.spawn(flush_loop(Arc::downgrade(&kw.inner), every));
            }
            if let Some(feed) = feed {
                rt.spawn(super::feed::apply_feed(Arc::downgrade(&kw.inner), feed));
            }
        }
        Ok(kw)
    }
}

/// The meters' registry: in-process, or shared through Redis.
fn meters_registry(
    #[cfg(feature = "redis")] redis: Option<crate::ratelimit::RedisLimits>,
) -> crate::ratelimit::registry::Registry {
    #[cfg(feature = "redis")]
    if let Some(r) = redis {
        return crate::ratelimit::registry::Registry::shared(r.into_backend());
    }
    crate::ratelimit::registry::Registry::default()
}

async fn flush_loop(inner: Weak<Inner>, every: std::time::Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    let purge_every = (600 / every.as_secs().max(1)).max(1);
    for n in 1u64.. {
        tick.tick().await;
        let Some(inner) = inner.upgrade() else { return };
        let kw = Keyward { inner };
        if let Err(e) = kw.flush().await {
            tracing::warn!(target: "keyward::usage", error = %e, "usage flush failed; counts kept for the next flush");
        }
        // Expired sessions are useless; remove them about every 10 minutes.
        if n % purge_every == 0
            && let Err(e) = kw.inner.store.purge_expired_sessions(kw.now()).await
        {
            tracing::warn!(target: "keyward::sessions", error = %e, "purging expired sessions failed");
        }
    }
}
