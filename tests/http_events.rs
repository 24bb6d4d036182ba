//! The activity log over HTTP: `GET /events` with its filters and
//! `GET /events/stream` (Server-Sent Events), byte for byte the same on
//! axum and actix-web; a stream resumed with `Last-Event-ID` misses
//! nothing; refused logins and management calls are recorded once per
//! key, cause and minute, while the refusals themselves stay identical.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "store_support/mod.rs"]
mod common;
#[path = "common/http.rs"]
mod http_client;

use std::sync::Arc;

use axum::Router;
use http_client::{ActixClient, AxumClient, Client, Cred, Req, Resp, issue};
use keyward::http::{HttpConfig, KeywardHttp};
use keyward::store::KeyStore;
use keyward::{
    AccountId, Actor, KeyUpdate, Keyward, ManualClock, NewAccount, NewKey, PermissionSet,
};
use serde_json::Value;
use time::Duration;

fn perms(p: &[&str]) -> PermissionSet {
    PermissionSet::parse(p.iter().copied()).unwrap()
}

/// The peer of this file's requests.
const PEER: &str = "203.0.113.9:40000";

/// Status, keyward's headers and body: what both adapters agree on.
const CONTRACT: &[&str] = &[
    "content-type",
    "www-authenticate",
    "cache-control",
    "x-accel-buffering",
];

fn req(method: &'static str, path: impl Into<String>) -> Req {
    http_client::req(method, path).peer(PEER)
}

fn config() -> HttpConfig {
    HttpConfig::new()
}

fn axum_app(kw: &Keyward) -> Router {
    keyward::http::axum::router().with_state(KeywardHttp::with_config(kw.clone(), config()))
}

macro_rules! actix_app {
    ($kw:expr) => {{
        use actix_web::{App, web};
        App::new()
            .app_data(web::Data::new(KeywardHttp::with_config(
                $kw.clone(),
                config(),
            )))
            .service(keyward::http::actix::scope(""))
    }};
}

/// A service with a 1 s propagation window: every stream ends after 1 s,
/// so a test reads a whole stream.
fn service(store: Arc<dyn KeyStore>, clock: Option<ManualClock>) -> Keyward {
    let b = Keyward::builder()
        .shared_store(store)
        .hash_params(common::FAST_HASH)
        .propagation_window(Duration::seconds(1))
        .flush_interval(None);
    match clock {
        Some(c) => b.clock(c).build().unwrap(),
        None => b.build().unwrap(),
    }
}

struct World {
    kw: Keyward,
    admin: Cred,
    reader: Cred,
    no_read: Cred,
    acme: AccountId,
    child: AccountId,
}

async fn world(store: Arc<dyn KeyStore>, clock: Option<ManualClock>) -> World {
    let kw = service(store, clock);
    let all = perms(&[
        "readApiKeys",
        "writeApiKeys",
        "readAccounts",
        "writeAccounts",
    ]);
    let acme = kw
        .create_account(
            Actor::System,
            NewAccount::new("Acme", all.clone()).id(AccountId::new("acme").unwrap()),
        )
        .await
        .unwrap()
        .id;
    let child = kw
        .create_account(
            Actor::System,
            NewAccount::new("Acme EU", perms(&["readApiKeys", "writeApiKeys"]))
                .id(AccountId::new("acme-eu").unwrap())
                .parent(acme),
        )
        .await
        .unwrap()
        .id;
    let admin = issue(&kw, &acme, NewKey::new("admin").permissions(all)).await;
    let reader = issue(
        &kw,
        &acme,
        NewKey::new("reader").permissions(perms(&["readApiKeys"])),
    )
    .await;
    let no_read = issue(
        &kw,
        &acme,
        NewKey::new("none").permissions(perms(&["writeAccounts"])),
    )
    .await;
    let eu = issue(
        &kw,
        &child,
        NewKey::new("eu").permissions(perms(&["readApiKeys"])),
    )
    .await;
    kw.update_key(
        Actor::System,
        &keyward::KeyId::new(&eu.id).unwrap(),
        KeyUpdate::new().name("eu renamed"),
    )
    .await
    .unwrap();
    World {
        kw,
        admin,
        reader,
        no_read,
        acme,
        child,
    }
}

/// The messages of an event stream: `(id, event)` in order.
fn messages(body: &str) -> Vec<(u64, Value)> {
    let mut out = Vec::new();
    for block in body.split("\n\n") {
        let mut id = None;
        let mut data = None;
        for line in block.lines() {
            if let Some(v) = line.strip_prefix("id: ") {
                id = Some(v.parse::<u64>().unwrap());
            } else if let Some(v) = line.strip_prefix("data: ") {
                data = Some(serde_json::from_str::<Value>(v).unwrap());
            }
        }
        if let (Some(id), Some(data)) = (id, data) {
            out.push((id, data));
        }
    }
    out
}

async fn cases<C: Client>(w: &World, c: &C) -> Vec<(&'static str, Resp)> {
    let mut out = Vec::new();
    let a = &w.admin;
    let eu_key = {
        let page =
            w.kw.events(Actor::System, &w.child, None, 100, None)
                .await
                .unwrap();
        page.items.iter().find_map(|e| e.key_id).unwrap()
    };
    for (name, path) in [
        ("all", "/events".to_owned()),
        ("first page", "/events?limit=2".to_owned()),
        ("key created", "/events?action=key_created".to_owned()),
        ("by the system", "/events?actor=system".to_owned()),
        ("child", "/events?account_id=acme-eu".to_owned()),
        ("children", "/events?children=true".to_owned()),
        (
            "child key",
            format!("/events?children=true&key_id={eu_key}"),
        ),
        (
            "range",
            "/events?from=2000-01-01T00:00:00Z&to=2999-01-01T00:00:00Z".to_owned(),
        ),
        ("bad action", "/events?action=nope".to_owned()),
        ("bad actor", "/events?actor=robot".to_owned()),
        ("bad children", "/events?children=yes".to_owned()),
        ("bad from", "/events?from=yesterday".to_owned()),
        ("unknown parameter", "/events?colour=red".to_owned()),
        (
            "foreign key",
            "/events?key_id=kw_00000000000000000".to_owned(),
        ),
        ("unknown account", "/events?account_id=globex".to_owned()),
        (
            "from after to",
            "/events?from=2030-01-02T00:00:00Z&to=2030-01-01T00:00:00Z".to_owned(),
        ),
    ] {
        out.push((name, c.send(req("GET", path).key(a)).await));
    }
    // The reader lacks readAccounts: its own account only.
    out.push((
        "children without readAccounts",
        c.send(req("GET", "/events?children=true").key(&w.reader))
            .await,
    ));
    out.push(("no credentials", c.send(req("GET", "/events/stream")).await));
    out.push((
        "stream without readApiKeys",
        c.send(req("GET", "/events/stream").key(&w.no_read)).await,
    ));
    out.push((
        "bad Last-Event-ID",
        c.send(
            req("GET", "/events/stream")
                .key(a)
                .header("last-event-id", "x1"),
        )
        .await,
    ));
    out.push((
        "stream bad filter",
        c.send(req("GET", "/events/stream?action=nope").key(a))
            .await,
    ));
    out.push((
        "stream limit is no filter",
        c.send(req("GET", "/events/stream?limit=5").key(a)).await,
    ));
    out.push((
        "stream from the start",
        c.send(
            req("GET", "/events/stream")
                .key(a)
                .header("last-event-id", "0"),
        )
        .await,
    ));
    out.push((
        "stream of the children",
        c.send(
            req("GET", "/events/stream?children=true&action=key_created")
                .key(a)
                .header("last-event-id", "2"),
        )
        .await,
    ));
    out.push((
        "stream head",
        c.send(req("HEAD", "/events/stream").key(a)).await,
    ));
    out
}

/// Both frameworks answer the log and the stream byte for byte alike (one
/// service behind both, so the events are the same ones).
#[actix_web::test]
async fn log_and_stream_answer_alike_on_axum_and_actix() {
    let w = world(Arc::new(keyward::MemoryStore::new()), None).await;
    let axum_rs = cases(&w, &AxumClient(axum_app(&w.kw))).await;
    let svc = actix_web::test::init_service(actix_app!(w.kw)).await;
    let actix_rs = cases(&w, &ActixClient(svc)).await;
    assert_eq!(axum_rs.len(), actix_rs.len());
    for ((name, a), (_, b)) in axum_rs.iter().zip(&actix_rs) {
        assert_eq!(a.contract(CONTRACT), b.contract(CONTRACT), "{name}");
    }
    let get = |n: &str| &axum_rs.iter().find(|(name, _)| *name == n).unwrap().1;
    let all = get("all").json();
    let items = all["items"].as_array().unwrap();
    // Acme and its three keys, newest first (the child's three events
    // are its own).
    assert_eq!(items.len(), 4, "acme's own events: {all}");
    assert!(items.iter().all(|e| e["account_id"] == "acme"));
    assert_eq!(
        get("first page").json()["items"].as_array().unwrap().len(),
        2
    );
    assert!(get("first page").json()["next_cursor"].is_string());
    let created = get("key created").json();
    assert_eq!(created["items"].as_array().unwrap().len(), 3);
    let child = get("child").json();
    assert!(
        child["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["account_id"] == "acme-eu")
    );
    let children = get("children").json();
    assert_eq!(children["items"].as_array().unwrap().len(), 4 + 3);
    let update = child["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "key_updated")
        .unwrap()
        .clone();
    assert_eq!(update["details"]["changed"], serde_json::json!(["name"]));
    assert_eq!(update["details"]["before"]["name"], "eu");
    assert_eq!(update["details"]["after"]["name"], "eu renamed");
    assert_eq!(
        get("child key").json()["items"].as_array().unwrap().len(),
        2
    );
    assert_eq!(get("range").json(), all);
    for (n, status, field) in [
        ("bad action", 422, Some("action")),
        ("bad actor", 422, Some("actor")),
        ("bad children", 422, Some("children")),
        ("bad from", 422, Some("from")),
        ("unknown parameter", 400, None),
        ("foreign key", 404, None),
        ("unknown account", 404, None),
        ("from after to", 422, Some("from")),
        ("children without readAccounts", 403, None),
        ("no credentials", 401, None),
        ("stream without readApiKeys", 403, None),
        ("bad Last-Event-ID", 422, Some("Last-Event-ID")),
        ("stream bad filter", 422, Some("action")),
        ("stream limit is no filter", 400, None),
    ] {
        let r = get(n);
        assert_eq!(r.status, status, "{n}: {}", r.text());
        if let Some(f) = field {
            assert!(r.text().contains(f), "{n}: {}", r.text());
        }
    }
    // The stream: every event of acme from position 0, in commit order,
    // each `id:` its position, then the end of the window.
    let s = get("stream from the start");
    assert_eq!(s.status, 200);
    assert!(
        s.headers
            .iter()
            .any(|(k, v)| k == "content-type" && v == "text/event-stream")
    );
    let body = s.text();
    assert!(body.starts_with("retry: 1000\n\n"), "{body}");
    assert!(body.ends_with(": reconnect\n\n"), "{body}");
    let msgs = messages(&body);
    let ids: Vec<u64> = msgs.iter().map(|(id, _)| *id).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    let mut newest_first: Vec<Value> = items.clone();
    newest_first.reverse();
    let streamed: Vec<Value> = msgs.into_iter().map(|(_, e)| e).collect();
    assert_eq!(
        streamed, newest_first,
        "the stream carries what the log lists"
    );
    // With children, from position 2: key creations in acme and acme-eu.
    let kids = messages(&get("stream of the children").text());
    assert_eq!(kids.len(), 4);
    assert!(
        kids.iter()
            .all(|(id, e)| *id > 2 && e["action"] == "key_created")
    );
    let head = get("stream head");
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
}

/// Streams read one after another, each resumed with the last `id:` the
/// previous one sent, carry every event committed after the first opened,
/// exactly once and in order, whether it committed while a stream was open
/// or between two (SQLite: the store's signal wakes the stream; events in
/// between are read back from the store).
#[tokio::test]
async fn a_resumed_stream_misses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("s.db").display());
    let store = keyward::store::SqliteStore::connect(&url).await.unwrap();
    let w = world(Arc::new(store), None).await;
    let app = AxumClient(axum_app(&w.kw));
    // The position before the first stream (a stream without
    // `Last-Event-ID` starts at whatever committed by the time it opened,
    // which races with the writer below).
    let mut last: Option<u64> = Some(w.kw.store().last_event_seq().await.unwrap());
    let mut seen: Vec<String> = Vec::new();
    let mut made: Vec<String> = Vec::new();
    let start =
        w.kw.events(Actor::System, &w.acme, None, 1, None)
            .await
            .unwrap();
    let before_first = start.items[0].id.clone();
    for round in 0..3 {
        let mut r = req("GET", "/events/stream").key(&w.reader);
        if let Some(l) = last {
            r = r.header("last-event-id", l.to_string());
        }
        let kw = w.kw.clone();
        let acme = w.acme;
        let writer = tokio::spawn(async move {
            for i in 0..4 {
                tokio::time::sleep(std::time::Duration::from_millis(60)).await;
                kw.issue_key(
                    Actor::System,
                    &acme,
                    NewKey::new(format!("live {round} {i}")),
                )
                .await
                .unwrap();
            }
        });
        let res = app.send(r).await;
        writer.await.unwrap();
        assert_eq!(res.status, 200);
        for (id, e) in messages(&res.text()) {
            last = Some(id);
            seen.push(e["id"].as_str().unwrap().to_owned());
        }
        // Committed while no stream is open.
        for i in 0..3 {
            w.kw.issue_key(
                Actor::System,
                &w.acme,
                NewKey::new(format!("gap {round} {i}")),
            )
            .await
            .unwrap();
        }
    }
    // One last stream picks up the final gap.
    let res = app
        .send(
            req("GET", "/events/stream")
                .key(&w.reader)
                .header("last-event-id", last.unwrap().to_string()),
        )
        .await;
    for (_, e) in messages(&res.text()) {
        seen.push(e["id"].as_str().unwrap().to_owned());
    }
    let mut cursor: Option<String> = None;
    loop {
        let page =
            w.kw.events(Actor::System, &w.acme, None, 100, cursor.as_deref())
                .await
                .unwrap();
        for e in &page.items {
            made.push(e.id.clone());
        }
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    made.reverse();
    let after: Vec<String> = made
        .into_iter()
        .skip_while(|id| *id != before_first)
        .skip(1)
        .collect();
    assert_eq!(after.len(), 3 * (4 + 3));
    assert_eq!(seen, after, "every event once, in order");
}

/// A flood of refused logins and management calls with an existing key
/// becomes one event per cause and minute with its count; an unknown key
/// id leaves nothing; the refusals stay byte for byte what they were.
#[tokio::test]
async fn refusals_are_recorded_once_per_key_cause_and_minute() {
    let clock = ManualClock::new(time::macros::datetime!(2031-01-01 10:00:05 UTC));
    let w = world(Arc::new(keyward::MemoryStore::new()), Some(clock.clone())).await;
    let app = AxumClient(axum_app(&w.kw));
    // Well-formed secrets (another key's), wrong for these ids.
    let bad_secret = Cred {
        id: w.reader.id.clone(),
        secret: w.admin.secret.clone(),
    };
    let unknown = Cred {
        id: "kw_Zzzzzzzzzzzzzzzzz".into(),
        secret: w.admin.secret.clone(),
    };
    let wrong = |c: &Cred| {
        req("POST", "/auth/login").json(serde_json::json!({ "key": c.id, "secret": c.secret }))
    };
    let mut refusals = Vec::new();
    for _ in 0..20 {
        refusals.push(app.send(wrong(&bad_secret)).await);
        refusals.push(app.send(req("POST", "/auth/login").key(&bad_secret)).await);
        refusals.push(app.send(req("POST", "/auth/login").key(&unknown)).await);
        refusals.push(app.send(req("GET", "/apikeys").key(&unknown)).await);
    }
    for _ in 0..7 {
        let r = app.send(req("GET", "/apikeys").key(&w.no_read)).await;
        assert_eq!(r.status, 403);
    }
    // Through a session of the same key: recorded under the key too.
    let login = app.send(req("POST", "/auth/login").key(&w.no_read)).await;
    assert_eq!(login.status, 200, "{}", login.text());
    let token = login.json()["token"].as_str().unwrap().to_owned();
    for _ in 0..3 {
        let r = app.send(req("GET", "/apikeys").bearer(&token)).await;
        assert_eq!(r.status, 403);
    }
    // A key that exists and one that does not are refused alike.
    let first = refusals[0].contract(CONTRACT);
    assert!(refusals.iter().all(|r| r.status == 401 || r.status == 429));
    assert_eq!(
        refusals[1].contract(CONTRACT),
        refusals[2].contract(CONTRACT)
    );
    assert_eq!(refusals[0].status, 401, "{}", refusals[0].text());
    assert_eq!(first.0, 401);
    w.kw.flush().await.unwrap();
    // Ten more in the same minute merge into the same events.
    clock.advance(Duration::seconds(30));
    for _ in 0..10 {
        app.send(req("POST", "/auth/login").key(&bad_secret)).await;
    }
    w.kw.flush().await.unwrap();

    let reader_id = keyward::KeyId::new(&w.reader.id).unwrap();
    let of_action = |action| {
        let kw = w.kw.clone();
        let acme = w.acme;
        async move {
            let only = keyward::EventFilter::new().action(action);
            kw.events_matching(Actor::System, &acme, &only, 100, None)
                .await
                .unwrap()
                .items
        }
    };
    let failed = of_action(keyward::AuditAction::LoginFailed).await;
    let total: u64 = failed
        .iter()
        .map(|e| e.details["count"].as_u64().unwrap())
        .sum();
    assert_eq!(total, 20 + 20 + 10, "{failed:?}");
    let mut causes: Vec<&str> = failed
        .iter()
        .map(|e| e.details["cause"].as_str().unwrap())
        .collect();
    let n = causes.len();
    causes.sort_unstable();
    causes.dedup();
    assert_eq!(
        causes.len(),
        n,
        "one event per cause and minute: {failed:?}"
    );
    assert!(failed.iter().all(|e| e.key_id == Some(reader_id)));
    assert!(
        failed
            .iter()
            .all(|e| e.client_ip == Some("203.0.113.9".parse().unwrap()))
    );
    let refused = of_action(keyward::AuditAction::ManagementRefused).await;
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0].details["count"], 7 + 3);
    assert_eq!(refused[0].details["cause"], "insufficient_scope");
    // Nothing secret, nothing about the unknown id.
    let everything = serde_json::to_string(
        &w.kw
            .events(Actor::System, &w.acme, None, 100, None)
            .await
            .unwrap()
            .items,
    )
    .unwrap();
    assert!(!everything.contains(&w.reader.secret));
    assert!(!everything.contains(&w.admin.secret));
    assert!(!everything.contains("kw_Zzzzzzzzzzzzzzzzz"));
}

/// An event committed through one PostgreSQL-backed instance reaches a
/// stream on another instance through the store's change feed. The wait
/// is bounded (5 s); the measured latency is printed, not asserted.
#[cfg(feature = "postgres")]
#[tokio::test]
async fn an_event_committed_on_one_instance_reaches_another_instances_stream() {
    let Some(url) = common::pg_url() else { return };
    let schema = common::schema_name();
    let a_store = common::pg_store(&url, &schema, |o| o).await;
    let b_store = common::pg_store(&url, &schema, |o| o).await;
    let a = service(Arc::new(a_store.clone()), None);
    let b = service(Arc::new(b_store.clone()), None);
    let acct = a
        .create_account(
            Actor::System,
            NewAccount::new("Acme", perms(&["readApiKeys"])),
        )
        .await
        .unwrap();
    let mut tail = b
        .tail_events(Actor::System, &acct.id, &keyward::EventFilter::new(), None)
        .await
        .unwrap();
    // Let the second instance's listener start listening.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let mut latencies = Vec::new();
    for i in 0..5 {
        let started = std::time::Instant::now();
        let issued = a
            .issue_key(Actor::System, &acct.id, NewKey::new(format!("k{i}")))
            .await
            .unwrap();
        let got = tail.next(std::time::Duration::from_secs(5)).await.unwrap();
        let latency = started.elapsed();
        assert_eq!(got.len(), 1, "arrived within 5 s");
        assert_eq!(got[0].event.key_id, Some(issued.key.id));
        latencies.push(latency);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    println!("cross-instance stream latency (commit on A to B's tail): {latencies:?}");
    a_store.close().await;
    b_store.close().await;
    common::drop_schema(&url, &schema).await;
}
