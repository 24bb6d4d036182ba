//! Rate limits shared by every instance through Redis (feature `redis`):
//! [`RedisLimits`] configures it ([`KeywardBuilder::redis_limits`]).
//!
//! See [`RedisLimits`] for the design, the accuracy bound and outages.
//!
//! [`KeywardBuilder::redis_limits`]: crate::KeywardBuilder::redis_limits

pub(crate) mod lease;
mod scripts;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

/// What applies to shared limits while Redis is unreachable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailurePolicy {
    /// Each instance enforces its share of every limit (`limit /
    /// instances`) in-process (the default).
    Open,
    /// Requests that a shared limit applies to are refused with
    /// [`Error::LimitsUnavailable`](crate::Error::LimitsUnavailable) (503
    /// `limits_unavailable`).
    Closed,
}

/// Why [`RedisLimits::connect`] failed.
#[derive(Debug, thiserror::Error)]
#[error("connecting to Redis for rate limits failed: {0}")]
pub struct RedisLimitsError(#[source] redis::RedisError);

/// Rate limits shared by every instance through one Redis (feature
/// `redis`), for [`KeywardBuilder::redis_limits`].
///
/// Each limit is one GCRA cell in Redis (keyed by owner, limit name and
/// spec), changed only by atomic server-side Lua scripts. An
/// instance does not ask Redis on every call: it *leases* calls — takes
/// `n` at once from the cell — and spends them locally with atomics;
/// a call that finds no leased token makes one round trip
/// (the verification's `NeedLease` step), and unused tokens go back to the
/// cell when the lease ages out or the meter is dropped.
///
/// # Accuracy
///
/// The lease size is `max(1, min(limit, burst) / (100 × instances))`:
/// one call for small limits such as 5 per minute or 100 per second over 4
/// instances, and at most 1% of the limit spread over the expected
/// instances for large ones. Leased calls are already counted in Redis, so
/// the only overshoot is calls taken in one window and spent in the next:
/// at most `instances × lease` in any window beyond what the GCRA cell
/// itself allows (1% of a large limit; one call per instance for small
/// ones, where the request that leased spends the call at once). Measured
/// in BENCHMARKS.md: 4 instances on one 100-per-second limit accept at
/// most 102 calls in any second.
///
/// # Outages
///
/// A failed or timed-out round trip marks Redis down for
/// [`retry_after_failure`](RedisLimits::retry_after_failure) (default 1
/// s); meanwhile no request waits for it, and the configured policy
/// applies: fail-open (the default) to a local share of each limit
/// (`limit / instances`, burst likewise, enforced in-process), or
/// fail-closed ([`Error::LimitsUnavailable`](crate::Error::LimitsUnavailable),
/// 503 `limits_unavailable`). The first request after that period tries
/// Redis again; recovery needs no restart. One warning is logged per
/// outage and one on recovery; with feature `metrics`,
/// `keyward_limits_backend_errors_total` counts failed round trips and
/// `keyward_limits_backend_outages_total` outages.
///
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use keyward::{Keyward, MemoryStore, RedisLimits};
/// let limits = RedisLimits::connect("redis://127.0.0.1:6379")
///     .await?
///     .instances(4) // the expected number of instances (default 2)
///     .fail_closed(); // 503 while Redis is unreachable (default: fail-open)
/// let kw = Keyward::builder()
///     .store(MemoryStore::new())
///     .redis_limits(limits)
///     .build()?;
/// # Ok(()) }
/// ```
///
/// [`KeywardBuilder::redis_limits`]: crate::KeywardBuilder::redis_limits
#[derive(Clone)]
pub struct RedisLimits {
    conn: ConnectionManager,
    prefix: String,
    policy: FailurePolicy,
    instances: u32,
    timeout: Duration,
    retry: Duration,
}

impl std::fmt::Debug for RedisLimits {
    // The connection (and its URL, which may hold a password) is left out.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisLimits")
            .field("prefix", &self.prefix)
            .field("policy", &self.policy)
            .field("instances", &self.instances)
            .field("timeout", &self.timeout)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

/// Default round-trip timeout.
const DEFAULT_TIMEOUT: Duration = Duration::from_millis(250);

impl RedisLimits {
    /// Connects to the Redis at `url` (`redis://[user:password@]host:port[/db]`
    /// or `rediss://` for TLS when the `redis` crate has it). The
    /// connection manager reconnects by itself after an outage.
    ///
    /// # Errors
    /// [`RedisLimitsError`] for an invalid URL or an unreachable server.
    pub async fn connect(url: &str) -> Result<Self, RedisLimitsError> {
        let client = redis::Client::open(url).map_err(RedisLimitsError)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(DEFAULT_TIMEOUT))
            .set_response_timeout(Some(DEFAULT_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(1));
        let conn = ConnectionManager::new_with_config(client, config)
            .await
            .map_err(RedisLimitsError)?;
        Ok(Self {
            conn,
            prefix: "keyward:rl".into(),
            policy: FailurePolicy::Open,
            instances: 2,
            timeout: DEFAULT_TIMEOUT,
            retry: Duration::from_secs(1),
        })
    }

    /// While Redis is unreachable, refuse requests that a shared limit
    /// applies to (503 `limits_unavailable`).
    pub fn fail_closed(mut self) -> Self {
        self.policy = FailurePolicy::Closed;
        self
    }

    /// While Redis is unreachable, enforce each instance's share of every
    /// limit in-process (the default).
    pub fn fail_open(mut self) -> Self {
        self.policy = FailurePolicy::Open;
        self
    }

    /// The expected number of instances (default 2, at least 1): the
    /// fail-open share is `limit / instances`, and leases are sized so
    /// that all instances together hold at most 1% of a limit.
    pub fn instances(mut self, n: u32) -> Self {
        self.instances = n.max(1);
        self
    }

    /// The prefix of the Redis keys (default `keyward:rl`): deployments
    /// sharing one Redis use one each.
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The longest a round trip may take before Redis counts as
    /// unreachable (default 250 ms).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How long after a failed round trip Redis is tried again (default 1
    /// s); meanwhile the failure policy applies without waiting.
    pub fn retry_after_failure(mut self, retry: Duration) -> Self {
        self.retry = retry;
        self
    }

    /// The backend the meters use.
    pub(crate) fn into_backend(self) -> Arc<Backend> {
        Arc::new(Backend {
            conn: self.conn,
            take: redis::Script::new(scripts::TAKE),
            give_back: redis::Script::new(scripts::GIVE_BACK),
            prefix: self.prefix,
            policy: self.policy,
            instances: self.instances,
            timeout: self.timeout,
            retry_nanos: i64::try_from(self.retry.as_nanos()).unwrap_or(i64::MAX),
            down_until: AtomicI64::new(i64::MIN),
            down: AtomicBool::new(false),
        })
    }
}

/// The connection and its health, shared by every shared limit.
pub(crate) struct Backend {
    conn: ConnectionManager,
    take: redis::Script,
    give_back: redis::Script,
    prefix: String,
    pub(crate) policy: FailurePolicy,
    pub(crate) instances: u32,
    timeout: Duration,
    retry_nanos: i64,
    /// Until when Redis counts as down (unix nanoseconds).
    down_until: AtomicI64,
    /// In an outage (for logging its start and end once).
    down: AtomicBool,
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backend")
            .field("prefix", &self.prefix)
            .field("policy", &self.policy)
            .field("down", &self.down)
            .finish_non_exhaustive()
    }
}

/// What a lease request got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Leased {
    /// `granted` calls; `remaining` still allowed in the cell after them;
    /// microseconds until it is fully replenished.
    Granted {
        granted: i64,
        remaining: i64,
        reset_us: i64,
    },
    /// None now; microseconds until one call is allowed.
    Denied { retry_us: i64 },
}

impl Backend {
    /// The Redis key of a limit: owner, name and spec (a changed spec is a
    /// new cell).
    pub(crate) fn key(&self, owner: &super::LimitOwner, spec: &super::RateLimit) -> String {
        format!(
            "{}:{}:{}:{}:{}:{}:{}",
            self.prefix,
            owner.kind(),
            owner.id(),
            spec.name,
            spec.limit,
            spec.duration_ms,
            spec.burst
        )
    }

    /// Whether Redis counts as down at `now`.
    #[inline]
    pub(crate) fn is_down(&self, now: i64) -> bool {
        now < self.down_until.load(Ordering::Relaxed)
    }

    /// Takes up to `want` calls from the cell `key`.
    pub(crate) async fn take(
        &self,
        key: &str,
        interval_us: f64,
        burst: u32,
        want: u32,
        now: i64,
    ) -> Option<Leased> {
        let mut conn = self.conn.clone();
        let mut call = self.take.key(key);
        call.arg(interval_us).arg(burst).arg(want);
        let result = tokio::time::timeout(
            self.timeout,
            call.invoke_async::<(i64, i64, i64)>(&mut conn),
        )
        .await;
        match result {
            Ok(Ok((granted, remaining, reset_us))) => {
                self.reached();
                Some(if granted > 0 {
                    Leased::Granted {
                        granted,
                        remaining,
                        reset_us,
                    }
                } else {
                    Leased::Denied {
                        retry_us: reset_us.max(1),
                    }
                })
            }
            Ok(Err(e)) => {
                self.failed(now, &e);
                None
            }
            Err(_) => {
                self.failed(now, &"timed out");
                None
            }
        }
    }

    /// Gives `n` unused calls back to the cell `key` (best effort: an
    /// unreachable Redis keeps them until the cell replenishes).
    pub(crate) async fn give_back(&self, key: &str, interval_us: f64, n: i64) {
        let mut conn = self.conn.clone();
        let mut call = self.give_back.key(key);
        call.arg(interval_us).arg(n);
        let result = tokio::time::timeout(self.timeout, call.invoke_async::<i64>(&mut conn)).await;
        if !matches!(result, Ok(Ok(_))) {
            tracing::debug!(target: "keyward::limits", "returning unused leased calls to Redis failed; the cell replenishes on its own");
        }
    }

    /// A round trip failed at `now`: down for the retry period; the first
    /// failure of an outage is logged.
    #[cold]
    fn failed(&self, now: i64, error: &dyn std::fmt::Display) {
        self.down_until
            .store(now.saturating_add(self.retry_nanos), Ordering::Relaxed);
        crate::metrics::limits_backend_error();
        if !self.down.swap(true, Ordering::Relaxed) {
            crate::metrics::limits_backend_outage();
            let policy = match self.policy {
                FailurePolicy::Open => {
                    "fail-open: each instance enforces its local share of every shared limit"
                }
                FailurePolicy::Closed => {
                    "fail-closed: requests under shared limits are refused with 503 limits_unavailable"
                }
            };
            tracing::warn!(target: "keyward::limits", error = %error, policy, "Redis for shared rate limits is unreachable");
        }
    }

    /// A round trip succeeded: an outage ends (logged once).
    #[inline]
    fn reached(&self) {
        if self.down.load(Ordering::Relaxed) && self.down.swap(false, Ordering::Relaxed) {
            self.down_until.store(i64::MIN, Ordering::Relaxed);
            tracing::warn!(target: "keyward::limits", "Redis for shared rate limits is reachable again; limits are shared again");
        }
    }
}
