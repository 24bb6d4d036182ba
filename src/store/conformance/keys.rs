//! Keys: insert, get, update (optimistic concurrency), delete, list.

use super::fixtures::{
    account_id, at, event, events_of, insert_account, insert_key, key, key_id, plain_key, session,
    session_id,
};
use crate::api_key::KeyStatus;
use crate::audit::AuditAction;
use crate::store::{KeyQuery, KeyStore, PreviousSecret, StoreError};

/// Every field of a [`StoredKey`](crate::store::StoredKey) survives the
/// round trip: metadata JSON, networks, browser origins, previous secret and its
/// `valid_until`, generation, version, timestamps to the microsecond.
pub async fn insert_key_round_trips_every_field(store: &dyn KeyStore) {
    let a = insert_account(store).await;
    let full = key(a.id, "Exporter", at(10, 123));
    insert_key(store, &full).await;
    assert_eq!(store.get_key(&full.key.id).await.expect("get"), Some(full));
    let plain = plain_key(a.id, "Plain", at(11, 0));
    insert_key(store, &plain).await;
    assert_eq!(
        store.get_key(&plain.key.id).await.expect("get"),
        Some(plain)
    );
}

/// A second key with the same id is a [`StoreError::Conflict`] and writes
/// nothing.
pub async fn insert_key_conflicts(store: &dyn KeyStore) {
    let a = insert_account(store).await;
    let k = key(a.id, "One", at(10, 0));
    insert_key(store, &k).await;
    let mut again = k.clone();
    again.key.name = "Two".into();
    let r = store
        .insert_key(
            &again,
            &event(AuditAction::KeyCreated, a.id, Some(k.key.id), at(11, 0)),
        )
        .await;
    assert!(matches!(r, Err(StoreError::Conflict(_))), "got {r:?}");
    assert_eq!(store.get_key(&k.key.id).await.expect("get"), Some(k));
    assert_eq!(
        events_of(store, a.id).await.len(),
        2,
        "rejected change wrote an event"
    );
}

/// Lookups of absent records return `Ok(None)`.
pub async fn get_absent_returns_none(store: &dyn KeyStore) {
    assert!(
        store
            .get_account(&account_id())
            .await
            .expect("get")
            .is_none()
    );
    assert!(store.get_key(&key_id()).await.expect("get").is_none());
    assert!(
        store
            .get_session(&session_id())
            .await
            .expect("get")
            .is_none()
    );
}

/// `update_key` replaces every field and the version.
pub async fn update_key_replaces_record(store: &dyn KeyStore) {
    let a = insert_account(store).await;
    let k = plain_key(a.id, "Before", at(10, 0));
    insert_key(store, &k).await;
    let mut next = key(a.id, "After", at(10, 0));
    next.key.id = k.key.id;
    next.key.status = KeyStatus::Inactive;
    next.key.protected = true;
    next.key.updated_at = at(20, 654_321);
    next.generation = 1;
    next.previous = Some(PreviousSecret {
        hash: k.secret_hash.clone(),
        valid_until: at(3600, 1),
    });
    next.version = k.version + 1;
    store
        .update_key(
            &next,
            k.version,
            &event(AuditAction::KeyUpdated, a.id, Some(k.key.id), at(20, 0)),
        )
        .await
        .expect("update_key");
    assert_eq!(
        store.get_key(&k.key.id).await.expect("get"),
        Some(next.clone())
    );
    // And back: clearing optional fields works too.
    let mut cleared = plain_key(a.id, "Cleared", at(10, 0));
    cleared.key.id = k.key.id;
    cleared.key.last_used_at = next.key.last_used_at;
    cleared.version = next.version + 1;
    store
        .update_key(
            &cleared,
            next.version,
            &event(AuditAction::KeyUpdated, a.id, Some(k.key.id), at(21, 0)),
        )
        .await
        .expect("update_key");
    assert_eq!(store.get_key(&k.key.id).await.expect("get"), Some(cleared));
}

/// `update_key` never moves `last_used_at` back: a usage flush may have
/// advanced it since the key was read for the update, so the later of the
/// stored and the given value is kept.
pub async fn update_key_keeps_the_later_last_used_at(store: &dyn KeyStore) {
    let a = insert_account(store).await;
    let mut k = plain_key(a.id, "Used", at(10, 0));
    k.key.last_used_at = Some(at(100, 0));
    insert_key(store, &k).await;
    let mut version = k.version;
    for (given, kept) in [
        (Some(at(50, 0)), at(100, 0)),
        (None, at(100, 0)),
        (Some(at(200, 7)), at(200, 7)),
    ] {
        let mut next = k.clone();
        next.key.last_used_at = given;
        next.version = version + 1;
        store
            .update_key(
                &next,
                version,
                &event(AuditAction::KeyUpdated, a.id, Some(k.key.id), at(30, 0)),
            )
            .await
            .expect("update_key");
        version = next.version;
        let stored = store
            .get_key(&k.key.id)
            .await
            .expect("get")
            .expect("present");
        assert_eq!(stored.key.last_used_at, Some(kept), "given {given:?}");
        assert_eq!(stored.version, version);
    }
}

/// A stale expected version is a [`StoreError::Conflict`]; nothing is
/// written, not even the event.
pub async fn update_key_refuses_stale_version(store: &dyn KeyStore) {
    let a = insert_account(store).await;
    let k = plain_key(a.id, "Key", at(10, 0));
    insert_key(store, &k).await;
    let mut next = k.clone();
    next.key.name = "Renamed".into();
    next.version = k.version + 1;
    let r = store
        .update_key(
            &next,
            k.version + 5,
            &event(AuditAction::KeyUpdated, a.id, Some(k.key.id), at(20, 0)),
        )
        .await;
    assert!(matches!(r, Err(StoreError::Conflict(_))), "got {r:?}");
    assert_eq!(
        store.get_key(&k.key.id).await.expect("get"),
        Some(k.clone())
    );
    assert_eq!(
        events_of(store, a.id).await.len(),
        2,
        "rejected change wrote an event"
    );
    // Two writers read version v; the second loses.
    store
        .update_key(
            &next,
            k.version,
            &event(AuditAction::KeyUpdated, a.id, Some(k.key.id), at(21, 0)),
        )
        .await
        .expect("first writer");
    let r = store
        .update_key(
            &next,
            k.version,
            &event(AuditAction::KeyUpdated, a.id, Some(k.key.id), at(22, 0)),
        )
        .await;
    assert!(matches!(r, Err(StoreError::Conflict(_))), "got {r:?}");
    assert_eq!(events_of(store, a.id).await.len(), 3);
}

/// Updating an absent key is [`StoreError::NotFound`] and writes nothing.
pub async fn update_key_absent_is_not_found(store: &dyn KeyStore) {
    let a = insert_account(store).await;
    let k = plain_key(a.id, "Ghost", at(10, 0));
    let r = store
        .update_key(
            &k,
            k.version,
            &event(AuditAction::KeyUpdated, a.id, Some(k.key.id), at(20, 0)),
        )
        .await;
    assert!(matches!(r, Err(StoreError::NotFound)), "got {r:?}");
    assert!(store.get_key(&k.key.id).await.expect("get").is_none());
    assert_eq!(
        events_of(store, a.id).await.len(),
        1,
        "rejected change wrote an event"
    );
}

/// `delete_key` removes the key and its sessions (not other keys'
/// sessions) and appends its event.
pub async fn delete_key_removes_key_and_sessions(store: &dyn KeyStore) {
    let a = insert_account(store).await;
    let doomed = plain_key(a.id, "Doomed", at(10, 0));
    let kept = plain_key(a.id, "Kept", at(11, 0));
    insert_key(store, &doomed).await;
    insert_key(store, &kept).await;
    let s1 = session(&doomed, at(7200, 0));
    let s2 = session(&doomed, at(7200, 0));
    let s3 = session(&kept, at(7200, 0));
    for s in [&s1, &s2, &s3] {
        store
            .insert_session(
                s,
                &event(AuditAction::Login, a.id, Some(s.key_id), at(12, 0)),
            )
            .await
            .expect("insert_session");
    }
    store
        .delete_key(
            &doomed.key.id,
            doomed.version,
            &event(
                AuditAction::KeyDeleted,
                a.id,
                Some(doomed.key.id),
                at(30, 0),
            ),
        )
        .await
        .expect("delete_key");
    assert!(store.get_key(&doomed.key.id).await.expect("get").is_none());
    assert!(store.get_session(&s1.id).await.expect("get").is_none());
    assert!(store.get_session(&s2.id).await.expect("get").is_none());
    assert_eq!(store.get_session(&s3.id).await.expect("get"), Some(s3));
    assert!(store.get_key(&kept.key.id).await.expect("get").is_some());
    let events = events_of(store, a.id).await;
    assert_eq!(events[0].action, AuditAction::KeyDeleted);
    assert_eq!(events.len(), 7);
}

/// Deleting twice: the second is [`StoreError::NotFound`] and writes no
/// event.
pub async fn delete_key_twice_is_not_found(store: &dyn KeyStore) {
    let a = insert_account(store).await;
    let k = plain_key(a.id, "Once", at(10, 0));
    insert_key(store, &k).await;
    store
        .delete_key(
            &k.key.id,
            k.version,
            &event(AuditAction::KeyDeleted, a.id, Some(k.key.id), at(20, 0)),
        )
        .await
        .expect("delete_key");
    let r = store
        .delete_key(
            &k.key.id,
            k.version,
            &event(AuditAction::KeyDeleted, a.id, Some(k.key.id), at(21, 0)),
        )
        .await;
    assert!(matches!(r, Err(StoreError::NotFound)), "got {r:?}");
    assert_eq!(events_of(store, a.id).await.len(), 3);
}

fn query() -> KeyQuery {
    KeyQuery {
        limit: 100,
        ..KeyQuery::default()
    }
}

/// Filters: name contains (case-insensitive, also for non-ASCII), status,
/// application, and their combination.
pub async fn list_keys_filters(store: &dyn KeyStore) {
    let a = insert_account(store).await;
    let mut k1 = plain_key(a.id, "Billing Export", at(1, 0));
    k1.key.application = Some("billing".into());
    let mut k2 = plain_key(a.id, "billing-sync", at(2, 0));
    k2.key.status = KeyStatus::Inactive;
    k2.key.application = Some("billing".into());
    let k3 = plain_key(a.id, "ÉTÉ Reports", at(3, 0));
    let k4 = plain_key(a.id, "100%_literal", at(4, 0));
    for k in [&k1, &k2, &k3, &k4] {
        insert_key(store, k).await;
    }
    let ids = |v: Vec<crate::api_key::ApiKey>| v.into_iter().map(|k| k.id).collect::<Vec<_>>();
    let list = |q: KeyQuery| async move { store.list_keys(&a.id, &q).await.expect("list_keys") };

    let q = KeyQuery {
        name_contains: Some("BILLING".into()),
        ..query()
    };
    assert_eq!(ids(list(q).await), vec![k1.key.id, k2.key.id]);
    let q = KeyQuery {
        name_contains: Some("été".into()),
        ..query()
    };
    assert_eq!(ids(list(q).await), vec![k3.key.id]);
    // LIKE wildcards are literal text.
    let q = KeyQuery {
        name_contains: Some("%_".into()),
        ..query()
    };
    assert_eq!(ids(list(q).await), vec![k4.key.id]);
    let q = KeyQuery {
        name_contains: Some("_".into()),
        ..query()
    };
    assert_eq!(ids(list(q).await), vec![k4.key.id]);
    let q = KeyQuery {
        status: Some(KeyStatus::Inactive),
        ..query()
    };
    assert_eq!(ids(list(q).await), vec![k2.key.id]);
    let q = KeyQuery {
        status: Some(KeyStatus::Active),
        ..query()
    };
    assert_eq!(ids(list(q).await), vec![k1.key.id, k3.key.id, k4.key.id]);
    let q = KeyQuery {
        application: Some("billing".into()),
        ..query()
    };
    assert_eq!(ids(list(q).await), vec![k1.key.id, k2.key.id]);
    let q = KeyQuery {
        application: Some("billing".into()),
        status: Some(KeyStatus::Active),
        name_contains: Some("export".into()),
        ..query()
    };
    assert_eq!(ids(list(q).await), vec![k1.key.id]);
    let q = KeyQuery {
        name_contains: Some("nothing".into()),
        ..query()
    };
    assert!(list(q).await.is_empty());
}

/// Results are ordered by `(created_at, id)`; `after` continues strictly
/// after a position; `limit` bounds the page. Keys created at the same
/// instant are ordered by id.
pub async fn list_keys_orders_and_paginates(store: &dyn KeyStore) {
    let a = insert_account(store).await;
    let mut keys = Vec::new();
    for i in 0..7 {
        // Three keys share one instant; the rest are apart by microseconds.
        let t = if i < 3 { at(5, 0) } else { at(5, i) };
        keys.push(plain_key(a.id, &format!("k{i}"), t));
    }
    for k in keys.iter().rev() {
        insert_key(store, k).await;
    }
    let mut expected: Vec<_> = keys.iter().map(|k| (k.key.created_at, k.key.id)).collect();
    expected.sort();
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .list_keys(
                &a.id,
                &KeyQuery {
                    after,
                    limit: 3,
                    ..KeyQuery::default()
                },
            )
            .await
            .expect("list_keys");
        assert!(page.len() <= 3);
        if page.is_empty() {
            break;
        }
        after = page.last().map(|k| (k.created_at, k.id));
        seen.extend(page.into_iter().map(|k| (k.created_at, k.id)));
    }
    assert_eq!(seen, expected);
    let all = store.list_keys(&a.id, &query()).await.expect("list_keys");
    assert_eq!(all.len(), 7);
    assert_eq!(all[0], {
        let first = expected[0].1;
        keys.iter()
            .find(|k| k.key.id == first)
            .map(|k| k.key.clone())
            .expect("key")
    });
    let none = store
        .list_keys(
            &a.id,
            &KeyQuery {
                limit: 0,
                ..KeyQuery::default()
            },
        )
        .await
        .expect("list_keys");
    assert!(none.is_empty());
}

/// Only the account's own keys are listed.
pub async fn list_keys_scoped_to_account(store: &dyn KeyStore) {
    let a = insert_account(store).await;
    let b = insert_account(store).await;
    let ka = plain_key(a.id, "mine", at(1, 0));
    let kb = plain_key(b.id, "mine", at(1, 0));
    insert_key(store, &ka).await;
    insert_key(store, &kb).await;
    let list = store.list_keys(&a.id, &query()).await.expect("list_keys");
    assert_eq!(
        list.iter().map(|k| k.id).collect::<Vec<_>>(),
        vec![ka.key.id]
    );
    let none = store
        .list_keys(&account_id(), &query())
        .await
        .expect("list_keys");
    assert!(none.is_empty());
}

/// A deletion judged on a stale version is [`StoreError::Conflict`]: the
/// key and its sessions stay and no event is written; with the current
/// version it is deleted.
pub async fn delete_key_refuses_stale_version(store: &dyn KeyStore) {
    let a = insert_account(store).await;
    let k = plain_key(a.id, "Widened meanwhile", at(10, 0));
    insert_key(store, &k).await;
    let s = session(&k, at(7200, 0));
    store
        .insert_session(
            &s,
            &event(AuditAction::Login, a.id, Some(k.key.id), at(11, 0)),
        )
        .await
        .expect("insert_session");
    let mut next = k.clone();
    next.key.protected = true;
    next.version += 1;
    store
        .update_key(
            &next,
            k.version,
            &event(AuditAction::KeyUpdated, a.id, Some(k.key.id), at(12, 0)),
        )
        .await
        .expect("update_key");
    let before = events_of(store, a.id).await.len();
    let r = store
        .delete_key(
            &k.key.id,
            k.version,
            &event(AuditAction::KeyDeleted, a.id, Some(k.key.id), at(13, 0)),
        )
        .await;
    assert!(matches!(r, Err(StoreError::Conflict(_))), "got {r:?}");
    assert_eq!(
        store.get_key(&k.key.id).await.expect("get"),
        Some(next.clone())
    );
    assert!(store.get_session(&s.id).await.expect("get").is_some());
    assert_eq!(events_of(store, a.id).await.len(), before);
    store
        .delete_key(
            &k.key.id,
            next.version,
            &event(AuditAction::KeyDeleted, a.id, Some(k.key.id), at(14, 0)),
        )
        .await
        .expect("delete_key");
    assert!(store.get_key(&k.key.id).await.expect("get").is_none());
    assert_eq!(events_of(store, a.id).await.len(), before + 1);
}
