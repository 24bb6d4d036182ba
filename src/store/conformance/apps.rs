//! Applications: insert, get with key counts, list, update (status moves
//! its keys' versions and ends their sessions), delete (refused while it
//! has keys).

use super::fixtures::{
    app, app_id, at, event, events_of, insert_account, insert_app, insert_key, perms, plain_key,
    session,
};
use crate::api_key::KeyStatus;
use crate::app::AppStatus;
use crate::audit::AuditAction;
use crate::store::{AppExpectation, AppQuery, KeyQuery, KeyStore, StoreError};

/// Every field of an [`App`](crate::App) survives the round trip (counts
/// zero); a second application with the same id is a
/// [`StoreError::Conflict`] and writes nothing; an absent id is `Ok(None)`.
pub async fn insert_app_round_trips_and_conflicts(store: &dyn KeyStore) {
    let a = insert_account(store).await;
    let x = app(a.id, "Exporter Ünïcode", at(3, 456));
    insert_app(store, &x).await;
    assert_eq!(
        store.get_app(&x.id).await.expect("get_app"),
        Some(x.clone())
    );
    let mut again = x.clone();
    again.title = "Other".into();
    let r = store
        .insert_app(
            &again,
            &event(AuditAction::AppCreated, a.id, None, at(4, 0)),
        )
        .await;
    assert!(matches!(r, Err(StoreError::Conflict(_))), "got {r:?}");
    assert_eq!(store.get_app(&x.id).await.expect("get_app"), Some(x));
    assert_eq!(
        events_of(store, a.id).await.len(),
        2,
        "rejected change wrote an event"
    );
    assert!(store.get_app(&app_id()).await.expect("get_app").is_none());
}

/// An application's record counts its keys by their own status and says
/// whether it holds a protected key; a key's
/// `app_id` round-trips and `KeyQuery::app_id` lists exactly the
/// application's keys.
pub async fn app_counts_and_lists_its_keys(store: &dyn KeyStore) {
    let a = insert_account(store).await;
    let x = app(a.id, "Billing", at(1, 0));
    insert_app(store, &x).await;
    let mut keys = Vec::new();
    for (i, status) in [KeyStatus::Active, KeyStatus::Inactive, KeyStatus::Active]
        .into_iter()
        .enumerate()
    {
        let mut k = plain_key(a.id, &format!("k{i}"), at(2, i as i64));
        k.key.app_id = Some(x.id);
        k.key.status = status;
        insert_key(store, &k).await;
        keys.push(k);
    }
    let outside = plain_key(a.id, "outside", at(2, 9));
    insert_key(store, &outside).await;
    let got = store.get_app(&x.id).await.expect("get_app").expect("app");
    assert_eq!((got.active_keys, got.inactive_keys), (2, 1));
    assert!(!got.protected);
    let mut guard = plain_key(a.id, "guard", at(2, 8));
    guard.key.app_id = Some(x.id);
    guard.key.protected = true;
    insert_key(store, &guard).await;
    let got = store.get_app(&x.id).await.expect("get_app").expect("app");
    assert!(
        got.protected,
        "an application holding a protected key is protected"
    );
    keys.push(guard);
    assert_eq!(
        store.get_key(&keys[1].key.id).await.expect("get_key"),
        Some(keys[1].clone())
    );
    let listed = store
        .list_keys(
            &a.id,
            &KeyQuery {
                app_id: Some(x.id),
                limit: 100,
                ..KeyQuery::default()
            },
        )
        .await
        .expect("list_keys");
    assert_eq!(
        listed.iter().map(|k| k.id).collect::<Vec<_>>(),
        keys.iter().map(|k| k.key.id).collect::<Vec<_>>()
    );
    let inactive = store
        .list_keys(
            &a.id,
            &KeyQuery {
                app_id: Some(x.id),
                status: Some(KeyStatus::Inactive),
                limit: 100,
                ..KeyQuery::default()
            },
        )
        .await
        .expect("list_keys");
    assert_eq!(
        inactive.iter().map(|k| k.id).collect::<Vec<_>>(),
        vec![keys[1].key.id]
    );
}

/// `list_apps` is scoped to the account, filters by title (contains,
/// case-insensitive) and status, orders by `(created_at, id)` and pages
/// with `after` and `limit`.
pub async fn list_apps_filters_orders_and_paginates(store: &dyn KeyStore) {
    let a = insert_account(store).await;
    let b = insert_account(store).await;
    let mut apps = Vec::new();
    for (i, title) in ["Billing export", "Mobile", "billing API", "Web"]
        .into_iter()
        .enumerate()
    {
        // Two share one instant: ordered by id.
        let t = if i < 2 { at(5, 0) } else { at(5, i as i64) };
        let mut x = app(a.id, title, t);
        if i == 3 {
            x.status = AppStatus::Inactive;
        }
        apps.push(x);
    }
    for x in apps.iter().rev() {
        insert_app(store, x).await;
    }
    insert_app(store, &app(b.id, "Billing of b", at(5, 0))).await;
    let list = |q: AppQuery| async move { store.list_apps(&a.id, &q).await.expect("list_apps") };
    let ids = |v: Vec<crate::App>| v.into_iter().map(|x| x.id).collect::<Vec<_>>();
    let mut expected: Vec<_> = apps.iter().map(|x| (x.created_at, x.id)).collect();
    expected.sort();
    let all = list(AppQuery {
        limit: 100,
        ..AppQuery::default()
    })
    .await;
    assert_eq!(
        all.iter().map(|x| (x.created_at, x.id)).collect::<Vec<_>>(),
        expected
    );
    let billing = list(AppQuery {
        title_contains: Some("BILLING".into()),
        limit: 100,
        ..AppQuery::default()
    })
    .await;
    let mut want = vec![
        (apps[0].created_at, apps[0].id),
        (apps[2].created_at, apps[2].id),
    ];
    want.sort();
    assert_eq!(
        ids(billing),
        want.into_iter().map(|(_, id)| id).collect::<Vec<_>>()
    );
    let inactive = list(AppQuery {
        status: Some(AppStatus::Inactive),
        limit: 100,
        ..AppQuery::default()
    })
    .await;
    assert_eq!(ids(inactive), vec![apps[3].id]);
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = list(AppQuery {
            after,
            limit: 3,
            ..AppQuery::default()
        })
        .await;
        assert!(page.len() <= 3);
        if page.is_empty() {
            break;
        }
        after = page.last().map(|x| (x.created_at, x.id));
        seen.extend(page.into_iter().map(|x| (x.created_at, x.id)));
    }
    assert_eq!(seen, expected);
}

/// `update_app` writes title, description, status and `updated_at`. Only a
/// status change gives the application's keys a new version (their own
/// status untouched) and returns their ids; switching off also deletes
/// their sessions, and nothing else's. Absent: [`StoreError::NotFound`].
pub async fn update_app_status_moves_keys_and_ends_sessions(store: &dyn KeyStore) {
    let a = insert_account(store).await;
    let x = app(a.id, "Mobile", at(1, 0));
    insert_app(store, &x).await;
    let mut k = plain_key(a.id, "in app", at(2, 0));
    k.key.app_id = Some(x.id);
    insert_key(store, &k).await;
    let other = plain_key(a.id, "outside", at(2, 1));
    insert_key(store, &other).await;
    let s_in = session(&k, at(3600, 0));
    let s_out = session(&other, at(3600, 0));
    for s in [&s_in, &s_out] {
        store
            .insert_session(
                s,
                &event(AuditAction::Login, a.id, Some(s.key_id), at(3, 0)),
            )
            .await
            .expect("insert_session");
    }
    let ev = |action| event(action, a.id, None, at(4, 0));

    let mut renamed = x.clone();
    renamed.title = "Mobile app".into();
    renamed.description = "iOS and Android".into();
    renamed.updated_at = at(4, 1);
    let moved = store
        .update_app(
            &renamed,
            &AppExpectation::new(AppStatus::Active, vec![(k.key.id, k.version)]),
            &ev(AuditAction::AppUpdated),
        )
        .await
        .expect("update_app");
    assert!(moved.is_empty(), "a rename moved keys: {moved:?}");
    assert_eq!(
        store.get_app(&x.id).await.expect("get"),
        Some({
            let mut r = renamed.clone();
            r.active_keys = 1;
            r
        })
    );
    assert_eq!(
        store
            .get_key(&k.key.id)
            .await
            .expect("get")
            .map(|s| s.version),
        Some(k.version)
    );

    let mut off = renamed.clone();
    off.status = AppStatus::Inactive;
    off.updated_at = at(5, 0);
    let moved = store
        .update_app(
            &off,
            &AppExpectation::new(AppStatus::Active, vec![(k.key.id, k.version)]),
            &ev(AuditAction::AppDeactivated),
        )
        .await
        .expect("update_app");
    assert_eq!(moved, vec![k.key.id]);
    let after = store.get_key(&k.key.id).await.expect("get").expect("key");
    assert_eq!(after.version, k.version + 1);
    assert_eq!(
        after.key.status,
        KeyStatus::Active,
        "the key's own status changed"
    );
    assert!(store.get_session(&s_in.id).await.expect("get").is_none());
    assert!(store.get_session(&s_out.id).await.expect("get").is_some());
    assert_eq!(
        store
            .get_key(&other.key.id)
            .await
            .expect("get")
            .map(|s| s.version),
        Some(other.version)
    );
    let got = store.get_app(&x.id).await.expect("get").expect("app");
    assert_eq!(
        (got.status, got.updated_at),
        (AppStatus::Inactive, at(5, 0))
    );
    let actions: Vec<_> = events_of(store, a.id)
        .await
        .iter()
        .map(|e| e.action)
        .collect();
    assert_eq!(
        actions
            .iter()
            .filter(|a| **a == AuditAction::AppDeactivated)
            .count(),
        1
    );
    assert_eq!(
        actions
            .iter()
            .filter(|a| **a == AuditAction::AppUpdated)
            .count(),
        1
    );

    let mut ghost = app(a.id, "ghost", at(6, 0));
    ghost.status = AppStatus::Inactive;
    let r = store
        .update_app(
            &ghost,
            &AppExpectation::new(AppStatus::Active, Vec::new()),
            &ev(AuditAction::AppUpdated),
        )
        .await;
    assert!(matches!(r, Err(StoreError::NotFound)), "got {r:?}");
}

/// `delete_app` is a [`StoreError::Conflict`] while a key belongs to the
/// application (nothing written); once it has none it is deleted with its
/// event; a second delete is [`StoreError::NotFound`].
pub async fn delete_app_refused_while_it_has_keys(store: &dyn KeyStore) {
    let a = insert_account(store).await;
    let x = app(a.id, "Web", at(1, 0));
    insert_app(store, &x).await;
    let mut k = plain_key(a.id, "in app", at(2, 0));
    k.key.app_id = Some(x.id);
    insert_key(store, &k).await;
    let before = events_of(store, a.id).await.len();
    let ev = || event(AuditAction::AppDeleted, a.id, None, at(3, 0));
    let r = store.delete_app(&x.id, &ev()).await;
    assert!(matches!(r, Err(StoreError::Conflict(_))), "got {r:?}");
    assert!(store.get_app(&x.id).await.expect("get").is_some());
    assert_eq!(events_of(store, a.id).await.len(), before);
    store
        .delete_key(
            &k.key.id,
            k.version,
            &event(AuditAction::KeyDeleted, a.id, Some(k.key.id), at(3, 0)),
        )
        .await
        .expect("delete_key");
    store.delete_app(&x.id, &ev()).await.expect("delete_app");
    assert!(store.get_app(&x.id).await.expect("get").is_none());
    assert_eq!(events_of(store, a.id).await.len(), before + 2);
    let r = store.delete_app(&x.id, &ev()).await;
    assert!(matches!(r, Err(StoreError::NotFound)), "got {r:?}");
}

/// `update_app` writes only while the application is as judged: its status
/// and exactly its keys at their versions. A key whose version moved, a
/// key added to the application or a status changed since: each a
/// [`StoreError::Conflict`] with nothing written (application, keys'
/// versions, sessions, events). `list_stored_keys` lists the keys with
/// their versions, filtered as `list_keys`.
pub async fn update_app_refuses_a_stale_judgement(store: &dyn KeyStore) {
    let a = insert_account(store).await;
    let x = app(a.id, "Web", at(1, 0));
    insert_app(store, &x).await;
    let mut k = plain_key(a.id, "in app", at(2, 0));
    k.key.app_id = Some(x.id);
    insert_key(store, &k).await;
    insert_key(store, &plain_key(a.id, "outside", at(2, 1))).await;
    let s = session(&k, at(3600, 0));
    store
        .insert_session(
            &s,
            &event(AuditAction::Login, a.id, Some(k.key.id), at(3, 0)),
        )
        .await
        .expect("insert_session");
    let listed = store
        .list_stored_keys(
            &a.id,
            &KeyQuery {
                app_id: Some(x.id),
                limit: 10,
                ..KeyQuery::default()
            },
        )
        .await
        .expect("list_stored_keys");
    assert_eq!(listed, vec![k.clone()]);

    // The key moved on (widened) after the application was read.
    let mut widened = k.clone();
    widened.key.permissions = perms(&["writeApiKeys"]);
    widened.version += 1;
    store
        .update_key(
            &widened,
            k.version,
            &event(AuditAction::KeyUpdated, a.id, Some(k.key.id), at(4, 0)),
        )
        .await
        .expect("update_key");
    // A key joined after the application was read.
    let mut joined = plain_key(a.id, "joined", at(5, 0));
    joined.key.app_id = Some(x.id);
    insert_key(store, &joined).await;

    let before = events_of(store, a.id).await.len();
    let mut off = x.clone();
    off.status = AppStatus::Inactive;
    off.updated_at = at(6, 0);
    let ev = || event(AuditAction::AppDeactivated, a.id, None, at(6, 0));
    let now = vec![(k.key.id, widened.version), (joined.key.id, joined.version)];
    for stale in [
        // The key's old version (and the joined key unseen).
        AppExpectation::new(AppStatus::Active, vec![(k.key.id, k.version)]),
        // The joined key unseen.
        AppExpectation::new(AppStatus::Active, vec![(k.key.id, widened.version)]),
        // Every key seen, the old version of one.
        AppExpectation::new(
            AppStatus::Active,
            vec![(k.key.id, k.version), (joined.key.id, joined.version)],
        ),
        // Every key right, the status not.
        AppExpectation::new(AppStatus::Inactive, now.clone()),
    ] {
        let r = store.update_app(&off, &stale, &ev()).await;
        assert!(
            matches!(r, Err(StoreError::Conflict(_))),
            "{stale:?}: {r:?}"
        );
        let got = store.get_app(&x.id).await.expect("get").expect("app");
        assert_eq!(
            (got.status, got.updated_at),
            (AppStatus::Active, x.updated_at)
        );
        let key = store.get_key(&k.key.id).await.expect("get").expect("key");
        assert_eq!(
            key.version, widened.version,
            "a refused switch-off moved a key"
        );
        assert!(store.get_session(&s.id).await.expect("get").is_some());
        assert_eq!(events_of(store, a.id).await.len(), before);
    }
    // Judged on what is stored now (in any order): written.
    let fresh = AppExpectation::new(AppStatus::Active, now.into_iter().rev().collect());
    let mut moved = store
        .update_app(&off, &fresh, &ev())
        .await
        .expect("update_app");
    moved.sort();
    let mut want = vec![k.key.id, joined.key.id];
    want.sort();
    assert_eq!(moved, want);
    assert!(store.get_session(&s.id).await.expect("get").is_none());
    assert_eq!(events_of(store, a.id).await.len(), before + 1);
}
