//! The PostgreSQL change feed: LISTEN/NOTIFY for speed, a poll of the
//! `revocations` table as a backstop, and [`Change::Reset`] once listening
//! again after the listener lost its connection (notifications sent
//! meanwhile are gone).

use std::collections::HashSet;
use std::time::Duration;

use sqlx::Row;
use sqlx::postgres::{PgListener, PgPool};
use tokio::sync::{broadcast, watch};

use crate::id::{AccountId, KeyId, SessionId};
use crate::store::Change;

/// Rows newer than this are re-read by every poll, so a change whose
/// transaction committed after a later one (bigserial ids are assigned
/// before commit) is still seen.
const LOOKBACK: &str = "10 seconds";

/// Encodes a change for NOTIFY and the `revocations` table.
pub(super) fn kind_and_ref(change: &Change) -> (&'static str, String) {
    match change {
        Change::Key(id) => ("k", id.as_str().to_owned()),
        Change::Session(id) => ("s", id.as_str().to_owned()),
        Change::Account(id) => ("a", id.as_str().to_owned()),
        _ => ("r", String::new()),
    }
}

fn decode(kind: &str, id: &str) -> Change {
    let parsed = match kind {
        "k" => KeyId::new(id).ok().map(Change::Key),
        "s" => SessionId::new(id).ok().map(Change::Session),
        "a" => AccountId::new(id).ok().map(Change::Account),
        _ => None,
    };
    parsed.unwrap_or(Change::Reset)
}

fn decode_payload(payload: &str) -> Change {
    match payload.split_once(':') {
        Some((kind, id)) => decode(kind, id),
        None => Change::Reset,
    }
}

/// Waits `d`, or returns `false` when the store was dropped meanwhile.
async fn pause(stop: &mut watch::Receiver<()>, d: Duration) -> bool {
    tokio::select! {
        _ = stop.changed() => false,
        () = tokio::time::sleep(d) => true,
    }
}

/// Receives notifications until the store is dropped; after any loss of
/// the listening connection sends [`Change::Reset`] once listening again.
pub(super) async fn listen(
    pool: PgPool,
    channel: String,
    tx: broadcast::Sender<Change>,
    mut stop: watch::Receiver<()>,
) {
    let mut backoff = Duration::from_millis(50);
    let mut first = true;
    loop {
        let mut listener = match PgListener::connect_with(&pool).await {
            Ok(l) => l,
            Err(e) => {
                tracing::debug!(target: "keyward::feed", error = %e, "listener connect failed");
                if !pause(&mut stop, backoff).await {
                    return;
                }
                backoff = (backoff * 2).min(Duration::from_secs(2));
                continue;
            }
        };
        if let Err(e) = listener.listen(&channel).await {
            tracing::debug!(target: "keyward::feed", error = %e, "LISTEN failed");
            if !pause(&mut stop, backoff).await {
                return;
            }
            backoff = (backoff * 2).min(Duration::from_secs(2));
            continue;
        }
        backoff = Duration::from_millis(50);
        if !first {
            // Changes committed while we were not listening were missed.
            let _ = tx.send(Change::Reset);
        }
        first = false;
        loop {
            let next = tokio::select! {
                _ = stop.changed() => return,
                n = listener.try_recv() => n,
            };
            match next {
                Ok(Some(n)) => {
                    let _ = tx.send(decode_payload(n.payload()));
                }
                Ok(None) => {
                    // The connection dropped and was re-established.
                    tracing::debug!(target: "keyward::feed", "listener reconnected");
                    crate::metrics::feed_reconnected();
                    let _ = tx.send(Change::Reset);
                }
                Err(e) => {
                    // No Reset yet: while the database is unreachable no
                    // change can commit, and dropping the caches now would
                    // fail verifications that entries younger than W can
                    // still answer. The Reset follows the re-LISTEN.
                    tracing::debug!(target: "keyward::feed", error = %e, "listener failed");
                    break;
                }
            }
        }
    }
}

/// Polls `revocations` every `every` until the store is dropped, sending
/// the changes not seen yet, and prunes rows older than `prune_after`.
pub(super) async fn poll(
    pool: PgPool,
    every: Duration,
    prune_after: Duration,
    tx: broadcast::Sender<Change>,
    mut stop: watch::Receiver<()>,
) {
    let every = every.max(Duration::from_millis(10));
    let mut last_seen: Option<i64> = None;
    let mut recent: HashSet<i64> = HashSet::new();
    let mut last_prune = tokio::time::Instant::now();
    loop {
        if !pause(&mut stop, every).await {
            return;
        }
        let Some(after) = last_seen else {
            match sqlx::query_scalar::<_, i64>("SELECT COALESCE(MAX(id), 0) FROM revocations")
                .fetch_one(&pool)
                .await
            {
                Ok(max) => last_seen = Some(max),
                Err(e) => tracing::debug!(target: "keyward::feed", error = %e, "poll failed"),
            }
            continue;
        };
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT id, kind, ref_id, EXTRACT(EPOCH FROM clock_timestamp() - at)::float8 AS age \
             FROM revocations \
             WHERE id > $1 OR at > clock_timestamp() - interval '{LOOKBACK}' ORDER BY id"
        )))
        .bind(after)
        .fetch_all(&pool)
        .await;
        let rows = match rows {
            Ok(rows) => rows,
            Err(e) => {
                tracing::debug!(target: "keyward::feed", error = %e, "poll failed");
                continue;
            }
        };
        let mut seen_now = HashSet::with_capacity(rows.len());
        let mut max = after;
        for r in &rows {
            let (Ok(id), Ok(kind), Ok(ref_id)) = (
                r.try_get::<i64, _>("id"),
                r.try_get::<String, _>("kind"),
                r.try_get::<String, _>("ref_id"),
            ) else {
                let _ = tx.send(Change::Reset);
                continue;
            };
            seen_now.insert(id);
            max = max.max(id);
            if !recent.contains(&id) {
                if id > after {
                    crate::metrics::feed_lag(r.try_get::<f64, _>("age").unwrap_or(0.0));
                }
                let _ = tx.send(decode(&kind, &ref_id));
            }
        }
        recent = seen_now;
        last_seen = Some(max);
        if last_prune.elapsed() >= Duration::from_secs(60) {
            last_prune = tokio::time::Instant::now();
            let secs = i64::try_from(prune_after.as_secs()).unwrap_or(i64::MAX);
            if let Err(e) = sqlx::query(
                "DELETE FROM revocations WHERE at < clock_timestamp() - make_interval(secs => $1)",
            )
            .bind(secs as f64)
            .execute(&pool)
            .await
            {
                tracing::debug!(target: "keyward::feed", error = %e, "prune failed");
            }
        }
    }
}
