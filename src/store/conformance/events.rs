//! Audit events.

use std::net::IpAddr;

use serde_json::json;

use super::fixtures::{
    at, event, events_of, insert_account, insert_key, plain_key, session, session_id,
};
use crate::audit::{ActorKind, AuditAction, AuditActor};
use crate::store::{EventQuery, KeyStore};

/// Every successful change appends exactly its event; every rejected one
/// appends nothing.
pub async fn events_written_with_each_change(store: &dyn KeyStore) {
    let a = insert_account(store).await;
    let k = plain_key(a.id, "k", at(1, 0));
    insert_key(store, &k).await;
    let mut next = k.clone();
    next.version += 1;
    let upd = event(AuditAction::KeyDeactivated, a.id, Some(k.key.id), at(2, 0));
    store
        .update_key(&next, k.version, &upd)
        .await
        .expect("update");
    let stale = event(AuditAction::KeyUpdated, a.id, Some(k.key.id), at(3, 0));
    assert!(store.update_key(&next, k.version, &stale).await.is_err());
    let s = session(&k, at(3600, 0));
    let login = event(AuditAction::Login, a.id, Some(k.key.id), at(4, 0));
    store.insert_session(&s, &login).await.expect("login");
    let logout = event(AuditAction::Logout, a.id, Some(k.key.id), at(5, 0));
    store.delete_session(&s.id, &logout).await.expect("logout");
    let missing = event(AuditAction::Logout, a.id, Some(k.key.id), at(6, 0));
    assert!(store.delete_session(&session_id(), &missing).await.is_err());
    let del = event(AuditAction::KeyDeleted, a.id, Some(k.key.id), at(7, 0));
    store.delete_key(&k.key.id, &del).await.expect("delete");
    let del2 = event(AuditAction::KeyDeleted, a.id, Some(k.key.id), at(8, 0));
    assert!(store.delete_key(&k.key.id, &del2).await.is_err());

    let ids: Vec<String> = events_of(store, a.id)
        .await
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(ids.len(), 6);
    assert_eq!(
        &ids[..4],
        [&del.id, &logout.id, &login.id, &upd.id].map(String::clone)
    );
    for rejected in [&stale.id, &missing.id, &del2.id] {
        assert!(!ids.contains(rejected), "rejected change wrote its event");
    }
}

/// Newest first by `(at, id)`; `before` continues strictly before a
/// position; `key_id` filters; `limit` bounds; other accounts' events never
/// appear. Events of deleted keys remain.
pub async fn list_events_newest_first_with_cursor_and_key_filter(store: &dyn KeyStore) {
    let a = insert_account(store).await;
    let other = insert_account(store).await;
    let k1 = plain_key(a.id, "one", at(1, 0));
    let k2 = plain_key(a.id, "two", at(1, 1));
    insert_key(store, &k1).await;
    insert_key(store, &k2).await;
    insert_key(store, &plain_key(other.id, "theirs", at(1, 0))).await;
    for i in 0..5u64 {
        // Pairs of events share an instant, so ties are ordered by id.
        let t = at(10 + (i as i64) / 2, 0);
        let v = k1.version + i;
        let mut next = k1.clone();
        next.version = v + 1;
        let e = event(AuditAction::KeyUpdated, a.id, Some(k1.key.id), t);
        store.update_key(&next, v, &e).await.expect("update");
    }
    let del = event(AuditAction::KeyDeleted, a.id, Some(k2.key.id), at(20, 0));
    store.delete_key(&k2.key.id, &del).await.expect("delete");

    let all = events_of(store, a.id).await;
    assert_eq!(all.len(), 1 + 2 + 5 + 1);
    let mut sorted = all.clone();
    sorted.sort_by(|x, y| (y.at, &y.id).cmp(&(x.at, &x.id)));
    assert_eq!(all, sorted, "not newest first by (at, id)");
    assert!(all.iter().all(|e| e.account_id == a.id));

    let mut pages = Vec::new();
    let mut before = None;
    loop {
        let page = store
            .list_events(&{
                let mut q = EventQuery::new(a.id, 2);
                q.before = before.clone();
                q
            })
            .await
            .expect("list_events");
        assert!(page.len() <= 2);
        let Some(last) = page.last() else { break };
        before = Some((last.at, last.id.clone()));
        pages.extend(page);
    }
    assert_eq!(pages, all);

    let q = {
        let mut q = EventQuery::new(a.id, 100);
        q.key_id = Some(k1.key.id);
        q
    };
    let of_k1 = store.list_events(&q).await.expect("list_events");
    assert_eq!(of_k1.len(), 6);
    assert!(of_k1.iter().all(|e| e.key_id == Some(k1.key.id)));
    let q = {
        let mut q = EventQuery::new(a.id, 100);
        q.key_id = Some(k2.key.id);
        q
    };
    let of_k2 = store.list_events(&q).await.expect("list_events");
    assert_eq!(of_k2.len(), 2, "events of a deleted key must remain");
    assert_eq!(of_k2[0], del);
}

/// Every field of an [`AuditEvent`](crate::audit::AuditEvent) survives:
/// actor, session, client address (v4 and v6), details JSON, time to the
/// microsecond.
pub async fn event_round_trips_every_field(store: &dyn KeyStore) {
    let a = insert_account(store).await;
    let k = plain_key(a.id, "k", at(1, 0));
    let mut e = event(
        AuditAction::KeyCreated,
        a.id,
        Some(k.key.id),
        at(3, 999_999),
    );
    e.actor = AuditActor {
        kind: ActorKind::Session,
        key_id: Some(k.key.id),
        session_id: Some(session_id()),
        account_id: Some(a.id),
        user_id: None,
        user_name: None,
    };
    e.session_id = Some(session_id());
    e.client_ip = Some("2001:db8::1".parse::<IpAddr>().expect("ip"));
    e.details = json!({ "name": "k", "permissions": ["readApiKeys"], "grace": 0, "n": null });
    store.insert_key(&k, &e).await.expect("insert_key");
    let s = session(&k, at(3600, 0));
    let mut login = event(AuditAction::Login, a.id, Some(k.key.id), at(4, 1));
    login.client_ip = Some("192.0.2.7".parse::<IpAddr>().expect("ip"));
    login.details = serde_json::Value::Null;
    store
        .insert_session(&s, &login)
        .await
        .expect("insert_session");
    let all = events_of(store, a.id).await;
    assert_eq!(all.len(), 3);
    assert_eq!(all[0], login);
    assert_eq!(all[1], e);
}

/// Every kind of actor reads back as written: the system (explicitly, not
/// as nulls), and a person the host authenticated with their id and name
/// (any Unicode the host allows, quotes included).
pub async fn event_actor_kinds_round_trip(store: &dyn KeyStore) {
    let a = insert_account(store).await;
    let k = plain_key(a.id, "k", at(1, 0));
    let system = event(AuditAction::KeyCreated, a.id, Some(k.key.id), at(2, 0));
    store.insert_key(&k, &system).await.expect("insert_key");
    let mut by_user = event(AuditAction::KeyUpdated, a.id, Some(k.key.id), at(3, 5));
    by_user.actor = AuditActor {
        kind: ActorKind::User,
        key_id: None,
        session_id: None,
        account_id: Some(a.id),
        user_id: Some("u-42".into()),
        user_name: Some("Zoë \"Ops\" O'Neil".into()),
    };
    by_user.client_ip = Some("192.0.2.8".parse::<IpAddr>().expect("ip"));
    let mut changed = k.clone();
    changed.key.name = "k2".into();
    changed.version += 1;
    store
        .update_key(&changed, k.version, &by_user)
        .await
        .expect("update_key");
    let all = events_of(store, a.id).await;
    assert_eq!(all.len(), 3, "{all:?}");
    assert_eq!(all[0], by_user);
    assert_eq!(all[1], system);
    assert_eq!(all[1].actor.kind, ActorKind::System);
    let json = serde_json::to_value(&all[1].actor).expect("json");
    assert_eq!(json["kind"], "system");
}
