//! Audit events.

use std::net::IpAddr;

use serde_json::json;

use super::fixtures::{
    account, at, event, events_of, insert_account, insert_key, plain_key, session, session_id,
};
use crate::audit::{ActorKind, AuditAction, AuditActor};
use crate::store::{ActorFilter, EventQuery, KeyStore};

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
    store
        .delete_key(&k.key.id, next.version, &del)
        .await
        .expect("delete");
    let del2 = event(AuditAction::KeyDeleted, a.id, Some(k.key.id), at(8, 0));
    assert!(
        store
            .delete_key(&k.key.id, next.version, &del2)
            .await
            .is_err()
    );

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
    store
        .delete_key(&k2.key.id, k2.version, &del)
        .await
        .expect("delete");

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

/// `list_events_since` reads forward from a position in commit order:
/// positions strictly increase, every event committed after the position
/// comes once, `last_event_seq` is the latest; filters apply (children by
/// the account's parent), `limit` bounds each read. A signal, when the
/// store has one, changes after a commit.
pub async fn events_since_follow_commit_order(store: &dyn KeyStore) {
    let mut signal = store.event_signal();
    if let Some(s) = signal.as_mut() {
        s.borrow_and_update();
    }
    let start = store.last_event_seq().await.expect("last_event_seq");
    let parent = insert_account(store).await;
    let mut child = account();
    child.parent = Some(parent.id);
    let made = event(AuditAction::AccountCreated, child.id, None, at(1, 0));
    store.insert_account(&child, &made).await.expect("child");
    let stranger = insert_account(store).await;
    for (i, a) in [parent.id, child.id, stranger.id, child.id]
        .into_iter()
        .enumerate()
    {
        // Instants out of order: positions follow commits, not `at`.
        let k = plain_key(a, "k", at(100 - i as i64, 0));
        insert_key(store, &k).await;
    }
    if let Some(s) = signal.as_mut() {
        tokio::time::timeout(std::time::Duration::from_secs(5), s.changed())
            .await
            .expect("signalled within 5 s")
            .expect("signal open");
    }
    let mut q = EventQuery::new(parent.id, 100);
    q.children = true;
    let all = store
        .list_events_since(&q, start)
        .await
        .expect("list_events_since");
    // The parent's creation, the child's, and the three keys of the two.
    assert_eq!(all.len(), 5);
    assert!(all.windows(2).all(|w| w[0].seq < w[1].seq));
    assert!(all[0].seq > start);
    assert_eq!(all[0].event.account_id, parent.id);
    assert_eq!(all[1].event.id, made.id);
    assert!(all.iter().all(|e| e.event.account_id != stranger.id));
    let last = store.last_event_seq().await.expect("last_event_seq");
    assert_eq!(last, start + 7, "every event has its own position");
    q.limit = 2;
    let mut paged = Vec::new();
    let mut after = start;
    loop {
        let batch = store.list_events_since(&q, after).await.expect("since");
        assert!(batch.len() <= 2);
        let Some(l) = batch.last() else { break };
        after = l.seq;
        paged.extend(batch);
    }
    assert_eq!(paged, all);
    let only_child = EventQuery::new(child.id, 100);
    let of_child = store
        .list_events_since(&only_child, start)
        .await
        .expect("since");
    assert_eq!(of_child.len(), 3);
    assert!(
        store
            .list_events_since(&q, last)
            .await
            .expect("since")
            .is_empty()
    );
}

/// `list_events` filters: children (the account's own events and its
/// direct children's), application, action, actor kind, key and person,
/// time range; newest first.
pub async fn list_events_filters_by_every_field(store: &dyn KeyStore) {
    let parent = insert_account(store).await;
    let mut child = account();
    child.parent = Some(parent.id);
    store
        .insert_account(
            &child,
            &event(AuditAction::AccountCreated, child.id, None, at(1, 0)),
        )
        .await
        .expect("child");
    let app = super::fixtures::app_id();
    let k = plain_key(child.id, "k", at(2, 0));
    insert_key(store, &k).await;
    let mut e = event(AuditAction::KeyRotated, child.id, Some(k.key.id), at(10, 0));
    e.app_id = Some(app);
    e.actor = AuditActor {
        kind: ActorKind::User,
        key_id: None,
        session_id: None,
        account_id: Some(parent.id),
        user_id: Some("u_42".into()),
        user_name: Some("Ada".into()),
    };
    let mut next = k.clone();
    next.version += 1;
    store
        .update_key(&next, k.version, &e)
        .await
        .expect("update");

    let ids = |v: Vec<crate::audit::AuditEvent>| v.into_iter().map(|e| e.id).collect::<Vec<_>>();
    let mut q = EventQuery::new(parent.id, 100);
    assert_eq!(
        store.list_events(&q).await.expect("list").len(),
        1,
        "own only"
    );
    q.children = true;
    assert_eq!(store.list_events(&q).await.expect("list").len(), 4);
    let mut by_app = q.clone();
    by_app.app_id = Some(app);
    assert_eq!(
        ids(store.list_events(&by_app).await.expect("list")),
        [e.id.clone()]
    );
    let mut by_action = q.clone();
    by_action.action = Some(AuditAction::KeyRotated);
    assert_eq!(
        ids(store.list_events(&by_action).await.expect("list")),
        [e.id.clone()]
    );
    let mut by_user = q.clone();
    by_user.actor = Some(ActorFilter::User("u_42".into()));
    assert_eq!(
        ids(store.list_events(&by_user).await.expect("list")),
        [e.id.clone()]
    );
    let mut by_kind = q.clone();
    by_kind.actor = Some(ActorFilter::Kind(ActorKind::System));
    assert_eq!(store.list_events(&by_kind).await.expect("list").len(), 3);
    let mut by_key = q.clone();
    by_key.actor = Some(ActorFilter::Key(k.key.id));
    assert!(store.list_events(&by_key).await.expect("list").is_empty());
    let mut range = q.clone();
    range.from = Some(at(1, 0));
    range.to = Some(at(10, 0));
    let r = store.list_events(&range).await.expect("list");
    assert_eq!(r.len(), 2, "from inclusive, to exclusive");
    assert!(r[0].at > r[1].at);
    let mut about_key = q.clone();
    about_key.key_id = Some(k.key.id);
    assert_eq!(store.list_events(&about_key).await.expect("list").len(), 2);
}

/// `record_refusals` merges an event with the stored one of the same id:
/// counts add, the client address and the position are the new ones.
pub async fn refusals_merge_by_id(store: &dyn KeyStore) {
    let a = insert_account(store).await;
    let k = plain_key(a.id, "k", at(1, 0));
    insert_key(store, &k).await;
    let mut e = event(AuditAction::LoginFailed, a.id, Some(k.key.id), at(60, 0));
    e.details = json!({ "cause": "wrong_secret", "count": 2 });
    store
        .record_refusals(std::slice::from_ref(&e))
        .await
        .expect("record");
    let first = store.last_event_seq().await.expect("seq");
    let mut again = e.clone();
    again.details = json!({ "cause": "wrong_secret", "count": 5 });
    again.client_ip = Some("198.51.100.4".parse().expect("ip"));
    store.record_refusals(&[again]).await.expect("record");
    let mut q = EventQuery::new(a.id, 10);
    q.action = Some(AuditAction::LoginFailed);
    let got = store.list_events(&q).await.expect("list");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].details["count"], 7);
    assert_eq!(got[0].at, e.at);
    assert_eq!(got[0].client_ip, Some("198.51.100.4".parse().expect("ip")));
    let tail = store.list_events_since(&q, first).await.expect("since");
    assert_eq!(tail.len(), 1, "moved past its first position");
}
