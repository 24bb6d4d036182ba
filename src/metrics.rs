//! Metrics through the [`metrics`](https://docs.rs/metrics) facade
//! (feature `metrics`): install any recorder (for example
//! `metrics-exporter-prometheus`) and keyward reports:
//!
//! | name | kind | labels |
//! |---|---|---|
//! | `keyward_verifications_total` | counter | `path` (`warm`, `cold`), `outcome` |
//! | `keyward_argon2_waiting` | gauge | — (verifications queued for an argon2 slot) |
//! | `keyward_argon2_wait_seconds` | histogram | — (time queued for a slot) |
//! | `keyward_usage_flushes_total` | counter | `result` (`ok`, `error`) |
//! | `keyward_usage_flushed_rows_total` | counter | — |
//! | `keyward_cached_keys` | gauge | — (entries after each flush) |
//! | `keyward_feed_reconnects_total` | counter | — (PostgreSQL change feed) |
//! | `keyward_feed_lag_seconds` | histogram | — (age of a change when the feed's poll of the revocation log found it first) |
//! | `keyward_store_seconds` | histogram | `op` (the [`KeyStore`](crate::store::KeyStore) method: `get_key`, `record_usage`, ...) |
//! | `keyward_store_errors_total` | counter | `op` |
//! | `keyward_limits_backend_errors_total` | counter | — (failed round trips to the Redis of shared rate limits, feature `redis`) |
//! | `keyward_limits_backend_outages_total` | counter | — (times that Redis became unreachable) |
//!
//! `outcome` is one of `ok`, `unauthorized`, `inactive`, `expired`,
//! `client_not_allowed`, `too_many_attempts`, `unavailable`, `error`:
//! never a key id, an account or anything secret, so the label sets stay
//! small. (Malformed credentials, rejected before any lookup, are not
//! counted yet.)
//!
//! Without the feature every function here is an empty `#[inline(always)]`
//! body: the warm path compiles to what it was.

#[cfg(feature = "metrics")]
mod timed;

#[cfg(feature = "metrics")]
use crate::error::Error;
use crate::error::Result;

/// The `outcome` labels, in [`outcome`]'s order (the keys below spell
/// them out; a test checks they agree).
#[cfg(all(test, feature = "metrics"))]
const OUTCOMES: [&str; 8] = [
    "ok",
    "unauthorized",
    "inactive",
    "expired",
    "client_not_allowed",
    "too_many_attempts",
    "unavailable",
    "error",
];

/// The index of a verification result's `outcome` label in the series
/// tables below.
#[cfg(feature = "metrics")]
fn outcome<T>(r: &Result<T>) -> usize {
    match r {
        Ok(_) => 0,
        Err(Error::Unauthorized) => 1,
        Err(Error::KeyInactive) => 2,
        Err(Error::KeyExpired) => 3,
        Err(Error::ClientNotAllowed) => 4,
        Err(Error::TooManyAttempts { .. }) => 5,
        Err(Error::Unavailable(_)) => 6,
        Err(_) => 7,
    }
}

/// The verification counters' keys, built at compile time: counting a
/// warm verification allocates nothing (`metrics::counter!` with a
/// runtime label would build its key on the heap every call).
#[cfg(feature = "metrics")]
mod keys {
    use metrics::{Key, Label, Level, Metadata};

    pub(super) static METADATA: Metadata<'static> =
        Metadata::new("keyward", Level::INFO, Some(module_path!()));

    // One static label pair per series (a `Key` borrows its labels for
    // 'static, and a temporary array cannot be promoted: `Label` has a
    // destructor).
    macro_rules! labels {
        ($name:ident, $path:literal, $outcome:literal) => {
            static $name: [Label; 2] = [
                Label::from_static_parts("path", $path),
                Label::from_static_parts("outcome", $outcome),
            ];
        };
    }
    labels!(WARM_OK, "warm", "ok");
    labels!(WARM_UNAUTHORIZED, "warm", "unauthorized");
    labels!(WARM_INACTIVE, "warm", "inactive");
    labels!(WARM_EXPIRED, "warm", "expired");
    labels!(WARM_CLIENT_NOT_ALLOWED, "warm", "client_not_allowed");
    labels!(WARM_TOO_MANY_ATTEMPTS, "warm", "too_many_attempts");
    labels!(WARM_UNAVAILABLE, "warm", "unavailable");
    labels!(WARM_ERROR, "warm", "error");
    labels!(COLD_OK, "cold", "ok");
    labels!(COLD_UNAUTHORIZED, "cold", "unauthorized");
    labels!(COLD_INACTIVE, "cold", "inactive");
    labels!(COLD_EXPIRED, "cold", "expired");
    labels!(COLD_CLIENT_NOT_ALLOWED, "cold", "client_not_allowed");
    labels!(COLD_TOO_MANY_ATTEMPTS, "cold", "too_many_attempts");
    labels!(COLD_UNAVAILABLE, "cold", "unavailable");
    labels!(COLD_ERROR, "cold", "error");

    const NAME: &str = "keyward_verifications_total";
    pub(super) static WARM: [Key; 8] = [
        Key::from_static_parts(NAME, &WARM_OK),
        Key::from_static_parts(NAME, &WARM_UNAUTHORIZED),
        Key::from_static_parts(NAME, &WARM_INACTIVE),
        Key::from_static_parts(NAME, &WARM_EXPIRED),
        Key::from_static_parts(NAME, &WARM_CLIENT_NOT_ALLOWED),
        Key::from_static_parts(NAME, &WARM_TOO_MANY_ATTEMPTS),
        Key::from_static_parts(NAME, &WARM_UNAVAILABLE),
        Key::from_static_parts(NAME, &WARM_ERROR),
    ];
    pub(super) static COLD: [Key; 8] = [
        Key::from_static_parts(NAME, &COLD_OK),
        Key::from_static_parts(NAME, &COLD_UNAUTHORIZED),
        Key::from_static_parts(NAME, &COLD_INACTIVE),
        Key::from_static_parts(NAME, &COLD_EXPIRED),
        Key::from_static_parts(NAME, &COLD_CLIENT_NOT_ALLOWED),
        Key::from_static_parts(NAME, &COLD_TOO_MANY_ATTEMPTS),
        Key::from_static_parts(NAME, &COLD_UNAVAILABLE),
        Key::from_static_parts(NAME, &COLD_ERROR),
    ];
}

#[cfg(feature = "metrics")]
fn count(key: &'static metrics::Key) {
    metrics::with_recorder(|r| r.register_counter(key, &keys::METADATA).increment(1));
}

/// Counts a verification decided from the caches; returns `r` unchanged.
#[inline(always)]
pub(crate) fn verified_warm<T>(r: Result<T>) -> Result<T> {
    #[cfg(feature = "metrics")]
    count(&keys::WARM[outcome(&r)]);
    r
}

/// Counts a verification that needed the store or argon2; returns `r`
/// unchanged.
#[inline(always)]
pub(crate) fn verified_cold<T>(r: Result<T>) -> Result<T> {
    #[cfg(feature = "metrics")]
    count(&keys::COLD[outcome(&r)]);
    r
}

/// A verification starts waiting for an argon2 slot; pass the result to
/// [`hash_started`] once it has one.
#[inline(always)]
pub(crate) fn hash_queued() -> Queued {
    #[cfg(feature = "metrics")]
    {
        metrics::gauge!("keyward_argon2_waiting").increment(1.0);
        Queued(std::time::Instant::now())
    }
    #[cfg(not(feature = "metrics"))]
    Queued
}

/// The verification queued at `q` got its argon2 slot.
#[inline(always)]
pub(crate) fn hash_started(q: Queued) {
    #[cfg(feature = "metrics")]
    {
        metrics::gauge!("keyward_argon2_waiting").decrement(1.0);
        metrics::histogram!("keyward_argon2_wait_seconds").record(q.0.elapsed().as_secs_f64());
    }
    #[cfg(not(feature = "metrics"))]
    let _ = q;
}

/// When a verification started waiting for an argon2 slot (nothing
/// without the feature).
#[derive(Debug)]
#[cfg(feature = "metrics")]
pub(crate) struct Queued(std::time::Instant);

/// When a verification started waiting for an argon2 slot (nothing
/// without the feature).
#[derive(Debug)]
#[cfg(not(feature = "metrics"))]
pub(crate) struct Queued;

/// A usage flush of `rows` rows finished with `r`; returns `r` unchanged.
#[inline(always)]
pub(crate) fn usage_flushed<T, E>(
    rows: usize,
    r: std::result::Result<T, E>,
) -> std::result::Result<T, E> {
    #[cfg(feature = "metrics")]
    {
        let result = if r.is_ok() { "ok" } else { "error" };
        metrics::counter!("keyward_usage_flushes_total", "result" => result).increment(1);
        if r.is_ok() {
            metrics::counter!("keyward_usage_flushed_rows_total").increment(rows as u64);
        }
    }
    #[cfg(not(feature = "metrics"))]
    let _ = rows;
    r
}

/// This instance caches `keys` key entries.
#[inline(always)]
pub(crate) fn cached_keys(keys: usize) {
    #[cfg(feature = "metrics")]
    metrics::gauge!("keyward_cached_keys").set(keys as f64);
    #[cfg(not(feature = "metrics"))]
    let _ = keys;
}

/// The store the service uses: timed per call with the feature, `store`
/// itself without.
#[inline(always)]
pub(crate) fn timed_store(
    store: std::sync::Arc<dyn crate::store::KeyStore>,
) -> std::sync::Arc<dyn crate::store::KeyStore> {
    #[cfg(feature = "metrics")]
    return std::sync::Arc::new(timed::Timed(store));
    #[cfg(not(feature = "metrics"))]
    store
}

/// The change feed's poll found a change made `seconds` ago that it had
/// not seen yet.
#[cfg(feature = "postgres")]
#[inline(always)]
pub(crate) fn feed_lag(seconds: f64) {
    #[cfg(feature = "metrics")]
    metrics::histogram!("keyward_feed_lag_seconds").record(seconds.max(0.0));
    #[cfg(not(feature = "metrics"))]
    let _ = seconds;
}

/// A round trip to the Redis of shared rate limits failed.
#[cfg(feature = "redis")]
#[inline(always)]
pub(crate) fn limits_backend_error() {
    #[cfg(feature = "metrics")]
    metrics::counter!("keyward_limits_backend_errors_total").increment(1);
}

/// The Redis of shared rate limits became unreachable (an outage began).
#[cfg(feature = "redis")]
#[inline(always)]
pub(crate) fn limits_backend_outage() {
    #[cfg(feature = "metrics")]
    metrics::counter!("keyward_limits_backend_outages_total").increment(1);
}

/// The PostgreSQL change feed's listener reconnected.
#[cfg(feature = "postgres")]
#[inline(always)]
pub(crate) fn feed_reconnected() {
    #[cfg(feature = "metrics")]
    metrics::counter!("keyward_feed_reconnects_total").increment(1);
}

#[cfg(all(test, feature = "metrics"))]
mod tests {
    use super::*;

    #[test]
    fn outcomes_are_the_documented_labels() {
        let label = |r: Result<()>| OUTCOMES[outcome(&r)];
        assert_eq!(label(Ok(())), "ok");
        assert_eq!(label(Err(Error::Unauthorized)), "unauthorized");
        assert_eq!(label(Err(Error::KeyInactive)), "inactive");
        assert_eq!(label(Err(Error::KeyExpired)), "expired");
        assert_eq!(
            label(Err(Error::TooManyAttempts {
                retry_after_secs: 1
            })),
            "too_many_attempts"
        );
        assert_eq!(label(Err(Error::NotFound("key"))), "error");
    }

    #[test]
    fn the_static_keys_carry_the_same_labels() {
        for (i, name) in OUTCOMES.iter().enumerate() {
            for (keys, path) in [(&keys::WARM, "warm"), (&keys::COLD, "cold")] {
                let labels: Vec<(&str, &str)> =
                    keys[i].labels().map(|l| (l.key(), l.value())).collect();
                assert_eq!(labels, [("path", path), ("outcome", *name)]);
            }
        }
    }
}
