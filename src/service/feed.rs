//! Applying a store's change feed to this instance's caches: a change
//! drops what it concerns; a catch-up lets the feed vouch for unchanged
//! entries; a reset (or a lagging receiver) drops everything.

use std::sync::Weak;

use tokio::sync::broadcast::{self, error::RecvError};

use super::Inner;
use crate::store::Change;

/// Applies `feed` until the service is dropped or the feed closes.
pub(super) async fn apply_feed(inner: Weak<Inner>, mut feed: broadcast::Receiver<Change>) {
    loop {
        let change = match feed.recv().await {
            Ok(change) => change,
            // Changes were dropped unread: as if the feed had missed them.
            Err(RecvError::Lagged(_)) => Change::Reset,
            Err(RecvError::Closed) => return,
        };
        let Some(inner) = inner.upgrade() else { return };
        apply(&inner, change);
    }
}

/// Applies one change. Every invalidation is counted before it drops
/// anything, so a store read racing it is never vouched for.
fn apply(inner: &Inner, change: Change) {
    let vouch = inner.keys.vouch();
    match change {
        Change::Key(id) => inner.keys.invalidate(&id),
        Change::Session(id) => inner.sessions.remove(&id),
        Change::Account(id) => {
            // Counted before the account leaves the cache (an account read
            // racing this is not vouched for), and again with the keys.
            vouch.note_change();
            inner.accounts.remove(&id);
            inner.keys.invalidate_account(&id);
        }
        Change::CaughtUp(at) => {
            let age = i64::try_from(at.elapsed().as_nanos()).unwrap_or(i64::MAX);
            vouch.cover(inner.clock.now_unix_nanos().saturating_sub(age));
        }
        Change::Reset => {
            vouch.revoke();
            inner.accounts.clear();
            inner.keys.invalidate_all();
            inner.sessions.clear();
        }
    }
}
