//! Freshness vouched for by a change feed, with a feed the test drives
//! (what the PostgreSQL feed sends: changes, catch-ups, resets) and a
//! manual clock: while catch-ups keep coming, unchanged keys are never
//! re-read however old their entries; a change through the feed applies
//! at once; when the feed goes silent, entries are trusted W past its last
//! catch-up at most; a read that raced a change is never vouched for.

#[path = "store_support/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::Instant;

use common::counting::Counting;
use keyward::store::Change;
use keyward::{Actor, Error, IssuedKey, Keyward, ManualClock, MemoryStore, VerifyContext};
use time::Duration;

const W_SECS: i64 = 30;

/// Lets the instance's background tasks (the feed, refreshes) run.
async fn settle() {
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
}

/// An issuing instance on a memory store, `n` keys, and an instance
/// (without caches warmed) on the same store behind a scripted feed.
async fn setup(n: usize) -> (Keyward, Keyward, Arc<Counting>, ManualClock, Vec<IssuedKey>) {
    let clock = ManualClock::default();
    let memory = Arc::new(MemoryStore::new());
    let issuer = common::service(memory.clone(), Some(clock.clone()), W_SECS);
    let (account, first) = common::account_and_key(&issuer).await;
    let mut keys = vec![first];
    for i in 1..n {
        keys.push(common::issue(&issuer, &account.id, &format!("k{i}")).await);
    }
    let store = Counting::scripted(memory);
    let kw = common::service(store.clone(), Some(clock.clone()), W_SECS);
    for k in &keys {
        kw.verify(k.key.id.as_str(), k.secret.expose(), VerifyContext::new())
            .await
            .expect("warm");
    }
    (issuer, kw, store, clock, keys)
}

/// Moves the clock by `by` and has the feed catch up at the new time.
async fn tick(clock: &ManualClock, store: &Counting, by: Duration) {
    clock.advance(by);
    store.send(Change::CaughtUp(Instant::now()));
    settle().await;
}

fn cached(kw: &Keyward, k: &IssuedKey) -> Option<keyward::Result<keyward::Principal>> {
    kw.verify_cached(k.key.id.as_str(), k.secret.expose(), VerifyContext::new())
}

#[tokio::test]
async fn unchanged_keys_are_not_reread_while_the_feed_vouches() {
    let (_issuer, kw, store, clock, keys) = setup(200).await;
    let warmed = store.key_reads();
    // Ten W, in steps of W/4, with a catch-up at each: every request is
    // decided by the cache, and no key is read again (no refresh ahead).
    for step in 0..40 {
        tick(&clock, &store, Duration::seconds(W_SECS) / 4).await;
        for k in &keys {
            assert!(
                matches!(cached(&kw, k), Some(Ok(_))),
                "step {step}: a vouched key needed the store"
            );
        }
        settle().await;
    }
    assert_eq!(store.key_reads(), warmed, "unchanged keys were re-read");
}

#[tokio::test]
async fn a_change_through_the_feed_reaches_vouched_entries_at_once() {
    let (issuer, kw, store, clock, keys) = setup(20).await;
    for _ in 0..8 {
        tick(&clock, &store, Duration::seconds(W_SECS) / 4).await;
    }
    let warmed = store.key_reads();
    let (revoked, rest) = keys.split_first().expect("keys");
    issuer
        .deactivate_key(Actor::System, &revoked.key.id)
        .await
        .expect("deactivate");
    store.send(Change::Key(revoked.key.id));
    settle().await;
    let r = kw
        .verify(
            revoked.key.id.as_str(),
            revoked.secret.expose(),
            VerifyContext::new(),
        )
        .await;
    assert!(matches!(r, Err(Error::KeyInactive)), "{r:?}");
    for k in rest {
        assert!(matches!(cached(&kw, k), Some(Ok(_))));
    }
    assert_eq!(
        store.key_reads(),
        warmed + 1,
        "only the changed key is read"
    );
    // The re-read entry is vouched for too: still no read W later.
    for _ in 0..8 {
        tick(&clock, &store, Duration::seconds(W_SECS) / 4).await;
    }
    let r = cached(&kw, revoked);
    assert!(matches!(r, Some(Err(Error::KeyInactive))), "{r:?}");
    assert_eq!(store.key_reads(), warmed + 1);
}

#[tokio::test]
async fn a_silent_feed_bounds_staleness_to_w() {
    let (issuer, kw, store, clock, keys) = setup(5).await;
    for _ in 0..8 {
        tick(&clock, &store, Duration::seconds(W_SECS) / 4).await;
    }
    // The last catch-up was now; then the feed goes silent, and a change
    // made elsewhere is never announced.
    let k = &keys[0];
    issuer
        .deactivate_key(Actor::System, &k.key.id)
        .await
        .expect("deactivate");
    clock.advance(Duration::seconds(W_SECS) - Duration::milliseconds(1));
    // Within W of the last catch-up the instance may still accept (the
    // contract); at W it must refuse.
    let _ = cached(&kw, k);
    settle().await;
    clock.advance(Duration::milliseconds(1));
    let r = kw
        .verify(k.key.id.as_str(), k.secret.expose(), VerifyContext::new())
        .await;
    assert!(matches!(r, Err(Error::KeyInactive)), "{r:?}");
}

#[tokio::test]
async fn a_reset_drops_what_the_feed_vouched_for() {
    let (_issuer, kw, store, clock, keys) = setup(5).await;
    for _ in 0..8 {
        tick(&clock, &store, Duration::seconds(W_SECS) / 4).await;
    }
    store.send(Change::Reset);
    settle().await;
    for k in &keys {
        assert!(cached(&kw, k).is_none(), "an entry survived a reset");
    }
}

#[tokio::test]
async fn a_read_racing_a_change_is_not_vouched_for() {
    let (_issuer, kw, store, clock, keys) = setup(2).await;
    let (k, other) = (&keys[0], &keys[1]);
    // A change to `k` arrives while its (older) record is being read: the
    // entry from that read is trusted for W from the read, not vouched.
    store.send(Change::Key(k.key.id));
    settle().await;
    store.race_next_read(Change::Key(k.key.id));
    kw.verify(k.key.id.as_str(), k.secret.expose(), VerifyContext::new())
        .await
        .expect("re-read");
    for _ in 0..5 {
        tick(&clock, &store, Duration::seconds(W_SECS) / 4).await;
    }
    assert!(
        matches!(cached(&kw, other), Some(Ok(_))),
        "the other key is vouched for"
    );
    assert!(
        cached(&kw, k).is_none(),
        "a read that raced a change was vouched for"
    );
}
