//! Sessions.

use super::fixtures::{at, event, events_of, insert_account, insert_key, plain_key, session};
use crate::audit::AuditAction;
use crate::store::{KeyStore, StoreError};

/// A session round-trips (token digest included); a duplicate id is a
/// [`StoreError::Conflict`] that writes nothing.
pub async fn session_round_trips_and_conflicts(store: &dyn KeyStore) {
    let a = insert_account(store).await;
    let k = plain_key(a.id, "k", at(1, 0));
    insert_key(store, &k).await;
    let mut s = session(&k, at(3600, 250));
    s.key_generation = 4;
    store
        .insert_session(
            &s,
            &event(AuditAction::Login, a.id, Some(k.key.id), at(2, 0)),
        )
        .await
        .expect("insert_session");
    let back = store
        .get_session(&s.id)
        .await
        .expect("get")
        .expect("present");
    assert_eq!(back.token_digest, s.token_digest);
    assert_eq!(back, s);
    let mut again = s.clone();
    again.token_digest = [7; 32];
    let r = store
        .insert_session(
            &again,
            &event(AuditAction::Login, a.id, Some(k.key.id), at(3, 0)),
        )
        .await;
    assert!(matches!(r, Err(StoreError::Conflict(_))), "got {r:?}");
    assert_eq!(store.get_session(&s.id).await.expect("get"), Some(s));
    assert_eq!(events_of(store, a.id).await.len(), 3);
}

/// A session for a key that does not exist is [`StoreError::NotFound`].
pub async fn insert_session_for_absent_key_is_not_found(store: &dyn KeyStore) {
    let a = insert_account(store).await;
    let k = plain_key(a.id, "never stored", at(1, 0));
    let s = session(&k, at(3600, 0));
    let r = store
        .insert_session(
            &s,
            &event(AuditAction::Login, a.id, Some(k.key.id), at(2, 0)),
        )
        .await;
    assert!(matches!(r, Err(StoreError::NotFound)), "got {r:?}");
    assert!(store.get_session(&s.id).await.expect("get").is_none());
    assert_eq!(events_of(store, a.id).await.len(), 1);
}

/// A session recording another session epoch than its key's (the key was
/// deactivated since the login read it) is [`StoreError::NotFound`] and
/// writes nothing; the key's epoch round-trips through `update_key`.
pub async fn insert_session_with_a_stale_epoch_is_not_found(store: &dyn KeyStore) {
    let a = insert_account(store).await;
    let mut k = plain_key(a.id, "k", at(1, 0));
    insert_key(store, &k).await;
    let s = session(&k, at(3600, 0));
    k.session_epoch += 1;
    k.version += 1;
    store
        .update_key(
            &k,
            k.version - 1,
            &event(AuditAction::KeyDeactivated, a.id, Some(k.key.id), at(2, 0)),
        )
        .await
        .expect("update_key");
    let back = store
        .get_key(&k.key.id)
        .await
        .expect("get")
        .expect("present");
    assert_eq!(back.session_epoch, k.session_epoch);
    let r = store
        .insert_session(
            &s,
            &event(AuditAction::Login, a.id, Some(k.key.id), at(3, 0)),
        )
        .await;
    assert!(matches!(r, Err(StoreError::NotFound)), "got {r:?}");
    assert!(store.get_session(&s.id).await.expect("get").is_none());
    let mut fresh = session(&k, at(3600, 0));
    fresh.key_epoch = k.session_epoch;
    store
        .insert_session(
            &fresh,
            &event(AuditAction::Login, a.id, Some(k.key.id), at(4, 0)),
        )
        .await
        .expect("the current epoch opens a session");
}

/// `delete_session` removes it and appends the event; a second delete is
/// [`StoreError::NotFound`] and writes nothing.
pub async fn delete_session_then_not_found(store: &dyn KeyStore) {
    let a = insert_account(store).await;
    let k = plain_key(a.id, "k", at(1, 0));
    insert_key(store, &k).await;
    let s = session(&k, at(3600, 0));
    store
        .insert_session(
            &s,
            &event(AuditAction::Login, a.id, Some(k.key.id), at(2, 0)),
        )
        .await
        .expect("insert_session");
    store
        .delete_session(
            &s.id,
            &event(AuditAction::Logout, a.id, Some(k.key.id), at(3, 0)),
        )
        .await
        .expect("delete_session");
    assert!(store.get_session(&s.id).await.expect("get").is_none());
    let r = store
        .delete_session(
            &s.id,
            &event(AuditAction::Logout, a.id, Some(k.key.id), at(4, 0)),
        )
        .await;
    assert!(matches!(r, Err(StoreError::NotFound)), "got {r:?}");
    let events = events_of(store, a.id).await;
    assert_eq!(events.len(), 4);
    assert_eq!(events[0].action, AuditAction::Logout);
}

/// `purge_expired_sessions(now)` deletes sessions whose expiry is at or
/// before `now`, returns how many, and keeps the others.
pub async fn purge_expired_sessions_removes_only_expired(store: &dyn KeyStore) {
    let a = insert_account(store).await;
    let k = plain_key(a.id, "k", at(1, 0));
    insert_key(store, &k).await;
    let expired = session(&k, at(100, 0));
    let exactly_now = session(&k, at(200, 0));
    let alive = session(&k, at(200, 1));
    for s in [&expired, &exactly_now, &alive] {
        store
            .insert_session(
                s,
                &event(AuditAction::Login, a.id, Some(k.key.id), at(2, 0)),
            )
            .await
            .expect("insert_session");
    }
    let n = store
        .purge_expired_sessions(at(200, 0))
        .await
        .expect("purge");
    assert_eq!(n, 2);
    assert!(store.get_session(&expired.id).await.expect("get").is_none());
    assert!(
        store
            .get_session(&exactly_now.id)
            .await
            .expect("get")
            .is_none()
    );
    assert_eq!(
        store.get_session(&alive.id).await.expect("get"),
        Some(alive)
    );
    assert_eq!(
        store
            .purge_expired_sessions(at(200, 0))
            .await
            .expect("purge"),
        0
    );
}
