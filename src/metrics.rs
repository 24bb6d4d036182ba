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
use crate::error::Error;
use crate::error::Result;

/// Counts verification result `$r` under path `$path` with every label a
/// literal, so each (path, outcome) pair is a static key: counting
/// allocates nothing, also on the warm path.
#[cfg(feature = "metrics")]
macro_rules! count_verification {
    ($path:literal, $r:expr) => {
        count_verification!(@arms $path, $r, [
            Ok(_) => "ok",
            Err(Error::Unauthorized) => "unauthorized",
            Err(Error::Malformed(_)) => "malformed",
            Err(Error::KeyInactive) => "inactive",
            Err(Error::KeyExpired) => "expired",
            Err(Error::ClientNotAllowed) => "client_not_allowed",
            Err(Error::TooManyAttempts { .. }) => "too_many_attempts",
            Err(Error::Unavailable(_)) => "unavailable",
            Err(_) => "error",
        ])
    };
    (@arms $path:literal, $r:expr, [$($pat:pat => $label:literal),* $(,)?]) => {
        match $r {
            $($pat => metrics::counter!(
                "keyward_verifications_total", "path" => $path, "outcome" => $label
            )
            .increment(1),)*
        }
    };
}

/// Counts a verification decided from the caches; returns `r` unchanged.
#[inline(always)]
pub(crate) fn verified_warm<T>(r: Result<T>) -> Result<T> {
    #[cfg(feature = "metrics")]
    count_verification!("warm", &r);
    r
}

/// Counts a verification that needed the store or argon2; returns `r`
/// unchanged.
#[inline(always)]
pub(crate) fn verified_cold<T>(r: Result<T>) -> Result<T> {
    #[cfg(feature = "metrics")]
    count_verification!("cold", &r);
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
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            let _ = verified_warm::<()>(Ok(()));
            let _ = verified_warm::<()>(Err(Error::Unauthorized));
            let _ = verified_cold::<()>(Err(Error::KeyInactive));
            let _ = verified_cold::<()>(Err(Error::KeyExpired));
            let _ = verified_warm::<()>(Err(Error::TooManyAttempts {
                retry_after_secs: 1,
            }));
            let _ = verified_cold::<()>(Err(Error::NotFound("key")));
        });
        let text = handle.render();
        for series in [
            r#"{path="warm",outcome="ok"} 1"#,
            r#"{path="warm",outcome="unauthorized"} 1"#,
            r#"{path="cold",outcome="inactive"} 1"#,
            r#"{path="cold",outcome="expired"} 1"#,
            r#"{path="warm",outcome="too_many_attempts"} 1"#,
            r#"{path="cold",outcome="error"} 1"#,
        ] {
            let line = format!("keyward_verifications_total{series}");
            assert!(text.lines().any(|l| l == line), "no {line} in:\n{text}");
        }
    }
}
