//! The PostgreSQL change feed: LISTEN/NOTIFY for speed, a poll of the
//! `revocations` table as a backstop, and [`Change::Reset`] once listening
//! again after the listener lost its connection (notifications sent
//! meanwhile are gone).
//!
//! The poll reads every row after the one it saw last, from the store's
//! creation on, so after each successful poll made while the listener
//! listened throughout, the feed has delivered every change committed
//! before that poll began: it then sends [`Change::CaughtUp`], which lets
//! instances keep trusting unchanged keys without re-reading them.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
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

/// Whether the listener listens, and since when: odd while listening,
/// moved on by every loss and every new LISTEN (so a poll can tell that
/// the listener listened throughout it).
#[derive(Debug, Default, Clone)]
pub(super) struct Listening(Arc<AtomicU64>);

impl Listening {
    /// The current state (odd: listening).
    fn now(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }

    /// LISTEN succeeded.
    fn started(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }

    /// The connection was lost.
    fn lost(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }

    /// Whether the listener listened from `before` until now without a
    /// break.
    fn throughout(&self, before: u64) -> bool {
        before % 2 == 1 && self.now() == before
    }
}

/// The highest id in `revocations`: where the poll starts (taken when the
/// store is created, so that no change made after that is missed).
pub(super) async fn last_id(pool: &PgPool) -> Option<i64> {
    let max = sqlx::query_scalar::<_, i64>("SELECT COALESCE(MAX(id), 0) FROM revocations")
        .fetch_one(pool)
        .await;
    match max {
        Ok(max) => Some(max),
        Err(e) => {
            tracing::debug!(target: "keyward::feed", error = %e, "reading the last revocation failed");
            None
        }
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
/// Notifications on `<channel>_events` (an audit event committed) bump
/// `events` instead, and so does every (re)connection.
pub(super) async fn listen(
    pool: PgPool,
    channel: String,
    tx: broadcast::Sender<Change>,
    listening: Listening,
    events: watch::Sender<u64>,
    mut stop: watch::Receiver<()>,
) {
    let events_channel = format!("{channel}_events");
    let bump = || events.send_modify(|n| *n = n.wrapping_add(1));
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
        if let Err(e) = listener
            .listen_all([channel.as_str(), events_channel.as_str()])
            .await
        {
            tracing::debug!(target: "keyward::feed", error = %e, "LISTEN failed");
            if !pause(&mut stop, backoff).await {
                return;
            }
            backoff = (backoff * 2).min(Duration::from_secs(2));
            continue;
        }
        backoff = Duration::from_millis(50);
        listening.started();
        if !first {
            // Changes committed while we were not listening were missed.
            let _ = tx.send(Change::Reset);
        }
        first = false;
        bump();
        loop {
            let next = tokio::select! {
                _ = stop.changed() => return,
                n = listener.try_recv() => n,
            };
            match next {
                Ok(Some(n)) if n.channel() == events_channel => bump(),
                Ok(Some(n)) => {
                    let _ = tx.send(decode_payload(n.payload()));
                }
                Ok(None) => {
                    // The connection dropped and was re-established.
                    listening.lost();
                    listening.started();
                    tracing::debug!(target: "keyward::feed", "listener reconnected");
                    crate::metrics::feed_reconnected();
                    let _ = tx.send(Change::Reset);
                    bump();
                }
                Err(e) => {
                    // No Reset yet: while the database is unreachable no
                    // change can commit, and dropping the caches now would
                    // fail verifications that entries younger than W can
                    // still answer. The Reset follows the re-LISTEN.
                    tracing::debug!(target: "keyward::feed", error = %e, "listener failed");
                    listening.lost();
                    break;
                }
            }
        }
    }
}

/// How the poll runs: its period, how old rows get before it prunes
/// them, and the last revocation id when the store was created.
#[derive(Debug, Clone, Copy)]
pub(super) struct PollSettings {
    pub(super) every: Duration,
    pub(super) prune_after: Duration,
    pub(super) start_after: Option<i64>,
}

/// Polls `revocations` every `every` until the store is dropped, sending
/// the changes not seen yet, then [`Change::CaughtUp`] when the listener
/// listened throughout, and prunes rows older than `prune_after`.
pub(super) async fn poll(
    pool: PgPool,
    settings: PollSettings,
    tx: broadcast::Sender<Change>,
    listening: Listening,
    mut stop: watch::Receiver<()>,
) {
    let PollSettings {
        every,
        prune_after,
        start_after,
    } = settings;
    let every = every.max(Duration::from_millis(10));
    let mut last_seen = start_after;
    let mut recent: HashSet<i64> = HashSet::new();
    let mut last_prune = tokio::time::Instant::now();
    let mut last_success = std::time::Instant::now();
    loop {
        if !pause(&mut stop, every).await {
            return;
        }
        let began = std::time::Instant::now();
        let listened = listening.now();
        let Some(after) = last_seen else {
            // No start was read when the store was created: changes made
            // before now may never be delivered.
            if let Some(max) = last_id(&pool).await {
                last_seen = Some(max);
                last_success = began;
                let _ = tx.send(Change::Reset);
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
        if began.duration_since(last_success) >= prune_after / 2 {
            // Failing for this long, rows this poll needed may have been
            // pruned by another instance.
            let _ = tx.send(Change::Reset);
        }
        last_success = began;
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
        if listening.throughout(listened) {
            let _ = tx.send(Change::CaughtUp(began));
        }
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
