//! The activity log's store queries against a brute-force computation over
//! random data: `list_events` with every filter (child account, parent with
//! children, key, application, action, actor kind / key / person, time
//! range) from any cursor, newest first; `list_events_since` (the live
//! stream's read) from any position, in commit order, with the positions
//! the events were committed at; aggregated refusals merged by id. Memory,
//! SQLite and (with `KEYWARD_TEST_POSTGRES_URL`) PostgreSQL.

#[path = "store_support/mod.rs"]
mod common;

use std::collections::HashMap;
use std::sync::Arc;

use keyward::store::{ActorFilter, EventQuery, KeyStore, PhcString, StoredKey};
use keyward::{
    AccountId, ActorKind, AllowedOrigin, ApiKey, AppId, AuditAction, AuditActor, AuditEvent, KeyId,
    KeyStatus, PermissionSet,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use time::{Duration, OffsetDateTime};

/// Random events besides those of creating the accounts and keys.
const EVENTS: usize = 700;

const ACTIONS: &[AuditAction] = &[
    AuditAction::KeyUpdated,
    AuditAction::KeyRotated,
    AuditAction::Login,
    AuditAction::OriginAllowed,
];

fn t0() -> OffsetDateTime {
    time::macros::datetime!(2031-05-06 07:08:09 UTC)
}

fn rid() -> u64 {
    rand::random::<u64>()
}

/// The accounts: a parent with two children, and a stranger.
struct Data {
    parent: AccountId,
    children: [AccountId; 2],
    stranger: AccountId,
    keys: Vec<KeyId>,
    apps: [AppId; 2],
    /// Every event, in commit order (position = index + 1).
    events: Vec<AuditEvent>,
    parent_of: HashMap<AccountId, AccountId>,
}

fn key(account: AccountId) -> StoredKey {
    StoredKey {
        key: ApiKey {
            id: KeyId::new(&format!("kw_{:020}", rid())).expect("id"),
            account_id: account,
            name: "k".into(),
            description: String::new(),
            application: None,
            app_id: None,
            permissions: PermissionSet::parse(["readApiKeys"]).expect("perms"),
            status: KeyStatus::Active,
            protected: false,
            created_at: t0(),
            updated_at: t0(),
            last_used_at: None,
            expires_at: None,
            allowed_cidrs: Vec::new(),
            allowed_origins: Vec::new(),
            metadata: serde_json::json!({}),
        },
        secret_hash: PhcString("$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaA".into()),
        generation: 0,
        previous: None,
        version: 1,
        session_epoch: 0,
    }
}

fn plain(
    action: AuditAction,
    account: AccountId,
    key: Option<KeyId>,
    at: OffsetDateTime,
) -> AuditEvent {
    AuditEvent {
        id: format!("evt_{:020}", rid()),
        at,
        action,
        account_id: account,
        key_id: key,
        session_id: None,
        app_id: None,
        actor: AuditActor::system(),
        client_ip: None,
        details: serde_json::json!({}),
    }
}

async fn populate(store: &dyn KeyStore) -> Data {
    let mut rng = rand::rng();
    let new_id = || AccountId::new(&format!("acct_{:016x}", rid())).expect("id");
    let (parent, c1, c2, stranger) = (new_id(), new_id(), new_id(), new_id());
    let mut events = Vec::new();
    let mut parent_of = HashMap::new();
    for (a, p) in [
        (parent, None),
        (c1, Some(parent)),
        (c2, Some(parent)),
        (stranger, None),
    ] {
        let acc = keyward::Account {
            id: a,
            name: "t".into(),
            parent: p,
            permissions: PermissionSet::parse(["readApiKeys"]).expect("perms"),
            status: keyward::AccountStatus::Active,
            created_at: t0(),
            last_used_at: None,
            version: 1,
        };
        let e = plain(AuditAction::AccountCreated, a, None, t0());
        store.insert_account(&acc, &e).await.expect("account");
        events.push(e);
        if let Some(p) = p {
            parent_of.insert(a, p);
        }
    }
    let mut keys = Vec::new();
    let mut owner = HashMap::new();
    for a in [parent, parent, c1, c2, stranger] {
        let k = key(a);
        let e = plain(AuditAction::KeyCreated, a, Some(k.key.id), t0());
        store.insert_key(&k, &e).await.expect("key");
        events.push(e);
        owner.insert(k.key.id, a);
        keys.push(k.key.id);
    }
    let apps = [
        AppId::new(&format!("app_{:016x}", rid())).expect("id"),
        AppId::new(&format!("app_{:016x}", rid())).expect("id"),
    ];
    let accounts = [parent, c1, c2, stranger];
    for n in 0..EVENTS {
        let pick =
            |rng: &mut rand::rngs::ThreadRng, len: usize| rand::RngExt::random_range(rng, 0..len);
        // Ties in `at` (about three events a second) exercise the id order.
        let at = t0() + Duration::seconds(i64::try_from(n / 3).unwrap_or(0));
        let with_key = pick(&mut rng, 3) != 0;
        let mut e = if with_key {
            let k = keys[pick(&mut rng, keys.len())];
            let action = ACTIONS[pick(&mut rng, 3)];
            plain(action, owner[&k], Some(k), at)
        } else {
            let a = accounts[pick(&mut rng, accounts.len())];
            plain(AuditAction::OriginAllowed, a, None, at)
        };
        e.app_id = match pick(&mut rng, 3) {
            0 => None,
            i => Some(apps[i - 1]),
        };
        e.actor = match pick(&mut rng, 4) {
            0 => AuditActor::system(),
            1 | 2 => {
                let k = keys[pick(&mut rng, keys.len())];
                AuditActor {
                    kind: if pick(&mut rng, 2) == 0 {
                        ActorKind::Key
                    } else {
                        ActorKind::Session
                    },
                    key_id: Some(k),
                    session_id: None,
                    account_id: Some(owner[&k]),
                    user_id: None,
                    user_name: None,
                }
            }
            _ => AuditActor {
                kind: ActorKind::User,
                key_id: None,
                session_id: None,
                account_id: Some(e.account_id),
                user_id: Some(format!("u{}", pick(&mut rng, 3))),
                user_name: Some("Ada".into()),
            },
        };
        match e.key_id {
            Some(k) => {
                let stored = store.get_key(&k).await.expect("get").expect("present");
                let mut next = stored.clone();
                next.version += 1;
                store
                    .update_key(&next, stored.version, &e)
                    .await
                    .expect("update");
            }
            None => {
                let o = AllowedOrigin {
                    id: format!("orig_{:016x}", rid()),
                    origin: format!("https://o{n}.example.com"),
                    protected: false,
                    created_at: at,
                };
                store.insert_allowed_origin(&o, &e).await.expect("origin");
            }
        }
        events.push(e);
    }
    Data {
        parent,
        children: [c1, c2],
        stranger,
        keys,
        apps,
        events,
        parent_of,
    }
}

#[derive(Debug, Clone)]
struct Case {
    account: usize,
    children: bool,
    key: Option<usize>,
    app: Option<usize>,
    action: Option<usize>,
    actor: Option<(u8, usize)>,
    from_s: Option<i64>,
    to_s: Option<i64>,
    start: Option<usize>,
    limit: usize,
}

fn case() -> impl Strategy<Value = Case> {
    (
        (
            0usize..4,
            any::<bool>(),
            proptest::option::of(0usize..5),
            proptest::option::of(0usize..2),
        ),
        (
            proptest::option::of(0usize..ACTIONS.len()),
            proptest::option::of((0u8..6, 0usize..5)),
            proptest::option::of(0i64..240),
            proptest::option::of(0i64..240),
        ),
        proptest::option::of(0usize..2000),
        1usize..40,
    )
        .prop_map(
            |((account, children, key, app), (action, actor, from_s, to_s), start, limit)| Case {
                account,
                children,
                key,
                app,
                action,
                actor,
                from_s,
                to_s,
                start,
                limit,
            },
        )
}

fn query(data: &Data, c: &Case) -> EventQuery {
    let account = [
        data.parent,
        data.children[0],
        data.stranger,
        data.children[1],
    ][c.account];
    let mut q = EventQuery::new(account, c.limit);
    q.children = c.children;
    q.key_id = c.key.map(|i| data.keys[i]);
    q.app_id = c.app.map(|i| data.apps[i]);
    q.action = c.action.map(|i| ACTIONS[i]);
    q.actor = c.actor.map(|(kind, i)| match kind {
        0 => ActorFilter::Kind(ActorKind::System),
        1 => ActorFilter::Kind(ActorKind::Key),
        2 => ActorFilter::Kind(ActorKind::Session),
        3 => ActorFilter::Kind(ActorKind::User),
        4 => ActorFilter::Key(data.keys[i]),
        _ => ActorFilter::User(format!("u{}", i % 3)),
    });
    q.from = c.from_s.map(|s| t0() + Duration::seconds(s));
    q.to = c.to_s.map(|s| t0() + Duration::seconds(s));
    q
}

/// The filter, written out independently of the stores.
fn brute(data: &Data, q: &EventQuery, e: &AuditEvent) -> bool {
    let account_ok = e.account_id == q.account_id
        || (q.children && data.parent_of.get(&e.account_id) == Some(&q.account_id));
    let actor_ok = match &q.actor {
        None => true,
        Some(ActorFilter::Kind(k)) => e.actor.kind == *k,
        Some(ActorFilter::Key(k)) => e.actor.key_id == Some(*k),
        Some(ActorFilter::User(u)) => e.actor.user_id.as_deref() == Some(u.as_str()),
        Some(_) => unreachable!("no other filter is made"),
    };
    account_ok
        && actor_ok
        && q.key_id.is_none_or(|k| e.key_id == Some(k))
        && q.app_id.is_none_or(|a| e.app_id == Some(a))
        && q.action.is_none_or(|a| e.action == a)
        && q.from.is_none_or(|f| e.at >= f)
        && q.to.is_none_or(|t| e.at < t)
}

/// Three pages newest first from the case's cursor, and three reads in
/// commit order from the case's position, equal brute force.
async fn check(store: &dyn KeyStore, data: &Data, c: &Case) {
    let base = query(data, c);
    let mut newest: Vec<&AuditEvent> = data.events.iter().collect();
    newest.sort_by(|a, b| (b.at, b.id.as_str()).cmp(&(a.at, a.id.as_str())));
    let mut before = c
        .start
        .and_then(|i| newest.get(i % newest.len()))
        .map(|e| (e.at, e.id.clone()));
    let expected: Vec<&str> = newest
        .iter()
        .filter(|e| {
            before
                .as_ref()
                .is_none_or(|(at, id)| (e.at, e.id.as_str()) < (*at, id.as_str()))
        })
        .filter(|e| brute(data, &base, e))
        .take(c.limit * 3)
        .map(|e| e.id.as_str())
        .collect();
    let mut got: Vec<String> = Vec::new();
    for _ in 0..3 {
        let mut q = base.clone();
        q.before = before.clone();
        let page = store.list_events(&q).await.expect("list_events");
        assert!(page.len() <= c.limit);
        let Some(last) = page.last() else { break };
        before = Some((last.at, last.id.clone()));
        got.extend(page.iter().map(|e| e.id.clone()));
    }
    assert_eq!(got, expected, "newest first, case {c:?}");

    let mut after = c.start.map_or(0, |i| (i % (data.events.len() + 1)) as u64);
    let expected: Vec<(u64, &str)> = data
        .events
        .iter()
        .enumerate()
        .map(|(i, e)| (i as u64 + 1, e))
        .filter(|(seq, e)| *seq > after && brute(data, &base, e))
        .take(c.limit * 3)
        .map(|(seq, e)| (seq, e.id.as_str()))
        .collect();
    let mut got: Vec<(u64, String)> = Vec::new();
    for _ in 0..3 {
        let batch = store
            .list_events_since(&base, after)
            .await
            .expect("list_events_since");
        assert!(batch.len() <= c.limit);
        let Some(last) = batch.last() else { break };
        after = last.seq;
        got.extend(batch.iter().map(|s| (s.seq, s.event.id.clone())));
    }
    let got: Vec<(u64, &str)> = got.iter().map(|(s, id)| (*s, id.as_str())).collect();
    assert_eq!(got, expected, "commit order, case {c:?}");
}

/// Refusals with the same id merge: counts add, the position moves to the
/// end (so a stream sees the new count), the instant stays the first.
async fn check_refusals(store: &dyn KeyStore, data: &Data) {
    let k = data.keys[2];
    let mut e = plain(AuditAction::LoginFailed, data.children[0], Some(k), t0());
    e.id = format!("evt_r{:011}_login_wrong_secret_{k}", 1);
    e.details = serde_json::json!({ "cause": "wrong_secret", "count": 3 });
    store
        .record_refusals(std::slice::from_ref(&e))
        .await
        .expect("refusals");
    let first = store.last_event_seq().await.expect("seq");
    assert_eq!(first, data.events.len() as u64 + 1);
    let mut again = e.clone();
    again.details = serde_json::json!({ "cause": "wrong_secret", "count": 4 });
    again.client_ip = Some("192.0.2.7".parse().expect("ip"));
    store.record_refusals(&[again]).await.expect("refusals");
    assert_eq!(store.last_event_seq().await.expect("seq"), first + 1);
    let mut q = EventQuery::new(data.children[0], 10);
    q.action = Some(AuditAction::LoginFailed);
    let listed = store.list_events(&q).await.expect("list");
    assert_eq!(listed.len(), 1, "one event per id");
    assert_eq!(listed[0].details["count"], 7);
    assert_eq!(listed[0].client_ip, Some("192.0.2.7".parse().expect("ip")));
    let tail = store.list_events_since(&q, first).await.expect("since");
    assert_eq!(tail.len(), 1);
    assert_eq!(tail[0].seq, first + 1);
    assert_eq!(tail[0].event.details["count"], 7);
}

fn run(store: Arc<dyn KeyStore>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let data = rt.block_on(populate(&*store));
    assert_eq!(
        rt.block_on(store.last_event_seq()).expect("seq"),
        data.events.len() as u64
    );
    TestRunner::new(Config {
        cases: 160,
        failure_persistence: None,
        ..Config::default()
    })
    .run(&case(), |c| {
        rt.block_on(check(&*store, &data, &c));
        Ok(())
    })
    .expect("events");
    rt.block_on(check_refusals(&*store, &data));
}

#[test]
fn memory_store_event_queries_match_brute_force() {
    run(Arc::new(keyward::store::MemoryStore::new()));
}

#[cfg(feature = "sqlite")]
#[test]
fn sqlite_store_event_queries_match_brute_force() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("e.db").display());
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let store = rt
        .block_on(keyward::store::SqliteStore::connect(&url))
        .expect("connect");
    run(Arc::new(store));
}

#[cfg(feature = "postgres")]
#[test]
fn postgres_store_event_queries_match_brute_force() {
    let Some(url) = common::pg_url() else { return };
    let schema = common::schema_name();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let store = rt.block_on(common::pg_store(&url, &schema, |o| o.feed(false)));
    run(Arc::new(store.clone()));
    rt.block_on(async {
        store.close().await;
        common::drop_schema(&url, &schema).await;
    });
}
