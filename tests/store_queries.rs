//! The list queries of every store against a brute-force computation over
//! random data: name search (trigram index and the keyset walk for common
//! needles, LIKE/FTS metacharacters, Unicode), status and application
//! filters, cursor pages from any position; events by key and account,
//! newest first, from any cursor; per-key usage totals by volume with
//! origin, category, range and cursor. Memory, SQLite and (with
//! `KEYWARD_TEST_POSTGRES_URL`) PostgreSQL.

#[path = "store_support/mod.rs"]
mod common;

use std::sync::Arc;

use keyward::store::{
    EventQuery, KeyQuery, KeyStore, PhcString, StoredKey, UsageRecord, UsageTotal, UsageTotalsQuery,
};
use keyward::{
    AccountId, ApiKey, AuditAction, AuditActor, AuditEvent, KeyId, KeyStatus, PermissionSet,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use time::{Duration, OffsetDateTime};

/// Keys whose name contains "common": more than the SQLite store's
/// threshold (2,000) for walking the keyset order instead of the index.
const COMMON: usize = 2_050;
/// Keys with random names.
const RANDOM: usize = 400;

/// Pieces of random names: LIKE and FTS metacharacters, quotes, case and
/// Unicode that lowercases to something else.
const PIECES: &[&str] = &[
    "ab", "bc", "Ca", "x%", "_y", "\"q", "\\z", "Ünï", "ß", " ", "-", "key", "ABC",
];

fn t0() -> OffsetDateTime {
    time::macros::datetime!(2030-01-02 03:04:05 UTC)
}

struct Data {
    account: AccountId,
    keys: Vec<ApiKey>,
    events: Vec<AuditEvent>,
}

fn new_key(account: AccountId, n: usize, name: String, status: KeyStatus) -> StoredKey {
    // Ties in created_at (every third pair) exercise the id tie-break.
    let created_at = t0() + Duration::seconds(i64::try_from(n / 2).unwrap_or(0));
    StoredKey {
        key: ApiKey {
            id: KeyId::new(&format!("kw_{:020}", rand::random::<u64>())).expect("id"),
            account_id: account,
            name,
            description: String::new(),
            application: (n.is_multiple_of(5)).then(|| format!("app{}", n % 3)),
            app_id: None,
            permissions: PermissionSet::parse(["readApiKeys"]).expect("perms"),
            status,
            protected: false,
            created_at,
            updated_at: created_at,
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

fn event(account: AccountId, key: Option<KeyId>, at: OffsetDateTime) -> AuditEvent {
    AuditEvent {
        id: format!("evt_{:020}", rand::random::<u64>()),
        at,
        action: AuditAction::KeyUpdated,
        account_id: account,
        key_id: key,
        session_id: None,
        app_id: None,
        actor: AuditActor::system(),
        client_ip: None,
        details: serde_json::json!({}),
    }
}

/// Fills `store`: one account with COMMON + RANDOM keys (10 % inactive)
/// and events on a few keys; a second account with look-alike keys that no
/// query of the first may return.
async fn populate(store: &dyn KeyStore) -> Data {
    let mut rng = rand::rng();
    let account = AccountId::new(&format!("acct_{:016x}", rand::random::<u64>())).expect("id");
    let other = AccountId::new(&format!("acct_{:016x}", rand::random::<u64>())).expect("id");
    for a in [account, other] {
        let acc = keyward::Account {
            id: a,
            name: "t".into(),
            parent: None,
            permissions: PermissionSet::parse(["readApiKeys"]).expect("perms"),
            status: keyward::AccountStatus::Active,
            created_at: t0(),
            last_used_at: None,
            version: 1,
        };
        store
            .insert_account(&acc, &event(a, None, t0()))
            .await
            .expect("account");
    }
    let mut keys = Vec::new();
    for n in 0..COMMON + RANDOM {
        let name = if n < COMMON {
            format!("common-{n}")
        } else {
            let parts = rand::RngExt::random_range(&mut rng, 1..5);
            (0..parts)
                .map(|_| PIECES[rand::RngExt::random_range(&mut rng, 0..PIECES.len())])
                .collect()
        };
        let status = if n % 10 == 3 {
            KeyStatus::Inactive
        } else {
            KeyStatus::Active
        };
        let k = new_key(account, n, name, status);
        store
            .insert_key(&k, &event(account, Some(k.key.id), k.key.created_at))
            .await
            .expect("insert_key");
        keys.push(k.key);
        if n.is_multiple_of(50) {
            let o = new_key(other, n, format!("common-{n}"), KeyStatus::Active);
            store
                .insert_key(&o, &event(other, Some(o.key.id), o.key.created_at))
                .await
                .expect("insert_key");
        }
    }
    // Renames a few keys (the name index follows), then more events on
    // three keys, with ties in `at`.
    for k in keys.iter_mut().step_by(97) {
        let mut stored = store.get_key(&k.id).await.expect("get").expect("present");
        stored.key.name = format!("renamed {}", k.name);
        stored.version += 1;
        store
            .update_key(
                &stored,
                stored.version - 1,
                &event(account, Some(k.id), t0()),
            )
            .await
            .expect("update");
        k.name = stored.key.name;
    }
    for n in 0..300 {
        let key = [Some(keys[1].id), Some(keys[2].id), Some(keys[3].id), None][n % 4];
        let at = t0() + Duration::seconds(i64::try_from(n / 3).unwrap_or(0));
        append_event(store, &event(account, key, at)).await;
    }
    let events = store
        .list_events(&EventQuery::new(account, 1_000_000))
        .await
        .expect("events");
    Data {
        account,
        keys,
        events,
    }
}

/// Appends `e` through the store's public surface: with a key, an update
/// that changes nothing but the version; without, a child account's
/// creation.
async fn append_event(store: &dyn KeyStore, e: &AuditEvent) {
    match e.key_id {
        Some(id) => {
            let stored = store.get_key(&id).await.expect("get").expect("present");
            let mut next = stored.clone();
            next.version += 1;
            store
                .update_key(&next, stored.version, e)
                .await
                .expect("update");
        }
        None => {
            let acc = keyward::Account {
                id: AccountId::new(&format!("acct_{:016x}", rand::random::<u64>())).expect("id"),
                name: "child".into(),
                parent: Some(e.account_id),
                permissions: PermissionSet::parse(["readApiKeys"]).expect("perms"),
                status: keyward::AccountStatus::Active,
                created_at: e.at,
                last_used_at: None,
                version: 1,
            };
            store.insert_account(&acc, e).await.expect("account");
        }
    }
}

#[derive(Debug, Clone)]
struct KeysCase {
    needle: Option<String>,
    status: Option<KeyStatus>,
    application: Option<String>,
    start: Option<usize>,
    limit: usize,
}

fn keys_case() -> impl Strategy<Value = KeysCase> {
    let piece = proptest::sample::select(PIECES.to_vec()).prop_map(str::to_owned);
    let needle = prop_oneof![
        Just(None),
        Just(Some("common".to_owned())),
        Just(Some("ommon-1".to_owned())),
        Just(Some("renamed".to_owned())),
        piece.clone().prop_map(Some),
        (piece.clone(), piece).prop_map(|(a, b)| Some(format!("{a}{b}"))),
        "[a-cA-C%_\"ü]{0,4}".prop_map(Some),
    ];
    let status = prop_oneof![
        Just(None),
        Just(Some(KeyStatus::Active)),
        Just(Some(KeyStatus::Inactive))
    ];
    let application = prop_oneof![Just(None), Just(Some("app1".to_owned()))];
    (
        needle,
        status,
        application,
        proptest::option::of(0usize..COMMON + RANDOM),
        1usize..40,
    )
        .prop_map(|(needle, status, application, start, limit)| KeysCase {
            needle,
            status,
            application,
            start,
            limit,
        })
}

/// Three pages from the case's start position equal the brute-force list.
async fn check_keys(store: &dyn KeyStore, data: &Data, c: &KeysCase) {
    let mut all: Vec<&ApiKey> = data.keys.iter().collect();
    all.sort_by(|a, b| (a.created_at, a.id.as_str()).cmp(&(b.created_at, b.id.as_str())));
    let matches = |k: &&&ApiKey| {
        c.needle
            .as_ref()
            .is_none_or(|n| k.name.to_lowercase().contains(&n.to_lowercase()))
            && c.status.is_none_or(|s| k.status == s)
            && c.application
                .as_ref()
                .is_none_or(|a| k.application.as_ref() == Some(a))
    };
    let mut after = c.start.map(|i| (all[i].created_at, all[i].id));
    let expected: Vec<KeyId> = all
        .iter()
        .filter(|k| after.is_none_or(|(at, id)| (k.created_at, k.id.as_str()) > (at, id.as_str())))
        .filter(matches)
        .take(c.limit * 3)
        .map(|k| k.id)
        .collect();
    let mut got = Vec::new();
    for _ in 0..3 {
        // `..default()`: filters other branches add stay unset.
        #[allow(clippy::needless_update)]
        let page = store
            .list_keys(
                &data.account,
                &KeyQuery {
                    name_contains: c.needle.clone(),
                    status: c.status,
                    application: c.application.clone(),
                    after,
                    limit: c.limit,
                    ..KeyQuery::default()
                },
            )
            .await
            .expect("list_keys");
        assert!(page.len() <= c.limit);
        let Some(last) = page.last() else { break };
        after = Some((last.created_at, last.id));
        got.extend(page.iter().map(|k| k.id));
    }
    assert_eq!(got, expected, "case {c:?}");
}

#[derive(Debug, Clone)]
struct EventsCase {
    key: Option<usize>,
    start: Option<usize>,
    limit: usize,
}

async fn check_events(store: &dyn KeyStore, data: &Data, c: &EventsCase) {
    let key = c.key.map(|i| data.keys[i].id);
    let mut all: Vec<&AuditEvent> = data.events.iter().collect();
    all.sort_by(|a, b| (b.at, b.id.as_str()).cmp(&(a.at, a.id.as_str())));
    let mut before = c
        .start
        .and_then(|i| all.get(i % all.len().max(1)))
        .map(|e| (e.at, e.id.clone()));
    let expected: Vec<String> = all
        .iter()
        .filter(|e| {
            before
                .as_ref()
                .is_none_or(|(at, id)| (e.at, e.id.as_str()) < (*at, id.as_str()))
        })
        .filter(|e| key.is_none_or(|k| e.key_id == Some(k)))
        .take(c.limit * 3)
        .map(|e| e.id.clone())
        .collect();
    let mut got = Vec::new();
    for _ in 0..3 {
        let page = store
            .list_events(&{
                let mut q = EventQuery::new(data.account, c.limit);
                q.key_id = key;
                q.before = before.clone();
                q
            })
            .await
            .expect("list_events");
        let Some(last) = page.last() else { break };
        before = Some((last.at, last.id.clone()));
        got.extend(page.iter().map(|e| e.id.clone()));
    }
    assert_eq!(got, expected, "case {c:?}");
}

/// Usage rows on 60 keys of the account (and look-alikes of another
/// account), several hours, origins and categories; ties in volume.
async fn record_usage(store: &dyn KeyStore, data: &Data) -> Vec<UsageRecord> {
    let mut rng = rand::rng();
    let other = AccountId::new("acct_other_usage").expect("id");
    let mut rows = Vec::new();
    for (i, k) in data.keys.iter().take(60).enumerate() {
        for h in 0..4 {
            for (origin, category) in [
                ("api", "realtime"),
                ("mcp", "analytics"),
                ("api", "default"),
            ] {
                if rand::RngExt::random_range(&mut rng, 0..3) == 0 {
                    continue;
                }
                let s = u64::try_from(i % 7).unwrap_or(0) * 3;
                rows.push(UsageRecord {
                    key_id: k.id,
                    account_id: data.account,
                    origin: origin.into(),
                    category: category.into(),
                    hour: t0() + Duration::hours(h),
                    successes: s + rand::RngExt::random_range(&mut rng, 0..2),
                    failures: rand::RngExt::random_range(&mut rng, 0..2),
                    rate_limited: rand::RngExt::random_range(&mut rng, 0..3),
                    usage_exceeded: rand::RngExt::random_range(&mut rng, 0..2),
                    last_used_at: None,
                });
            }
        }
    }
    let mut theirs = rows[0].clone();
    theirs.account_id = other;
    theirs.key_id = KeyId::new("kw_other_account_key").expect("id");
    theirs.successes = 1_000_000;
    store.record_usage(&rows).await.expect("record");
    store.record_usage(&[theirs]).await.expect("record");
    rows
}

#[derive(Debug, Clone)]
struct UsageCase {
    origin: Option<&'static str>,
    category: Option<&'static str>,
    from_h: i64,
    to_h: i64,
    start: Option<usize>,
    limit: usize,
}

/// Three pages of totals from the case's position equal brute force.
async fn check_usage(store: &dyn KeyStore, data: &Data, rows: &[UsageRecord], c: &UsageCase) {
    let (from, to) = (
        t0() + Duration::hours(c.from_h),
        t0() + Duration::hours(c.to_h),
    );
    let mut totals: std::collections::BTreeMap<KeyId, [u64; 4]> = Default::default();
    for r in rows.iter().filter(|r| {
        r.hour >= from
            && r.hour < to
            && c.origin.is_none_or(|o| r.origin == o)
            && c.category.is_none_or(|x| r.category == x)
    }) {
        let t = totals.entry(r.key_id).or_default();
        t[0] += r.successes;
        t[1] += r.failures;
        t[2] += r.rate_limited;
        t[3] += r.usage_exceeded;
    }
    let mut all: Vec<UsageTotal> = totals
        .into_iter()
        .map(|(key_id, [s, f, l, x])| UsageTotal {
            key_id,
            successes: s,
            failures: f,
            rate_limited: l,
            usage_exceeded: x,
        })
        .collect();
    // Volume is every outcome, computed here without `volume()`.
    let volume = |t: &UsageTotal| t.successes + t.failures + t.rate_limited + t.usage_exceeded;
    all.sort_by(|a, b| {
        volume(b)
            .cmp(&volume(a))
            .then(a.key_id.as_str().cmp(b.key_id.as_str()))
    });
    let mut after = c
        .start
        .and_then(|i| all.get(i % all.len().max(1)))
        .map(|t| (t.volume(), t.key_id));
    let skip = match &after {
        Some((_, k)) => all.iter().position(|t| t.key_id == *k).map_or(0, |i| i + 1),
        None => 0,
    };
    let expected: Vec<UsageTotal> = all.iter().skip(skip).take(c.limit * 3).cloned().collect();
    let mut got = Vec::new();
    for _ in 0..3 {
        let page = store
            .usage_totals(&UsageTotalsQuery {
                account_id: data.account,
                origin: c.origin.map(str::to_owned),
                category: c.category.map(str::to_owned),
                from,
                to,
                after,
                limit: c.limit,
            })
            .await
            .expect("usage_totals");
        assert!(page.len() <= c.limit);
        let Some(last) = page.last() else { break };
        after = Some((last.volume(), last.key_id));
        got.extend(page);
    }
    assert_eq!(got, expected, "case {c:?}");
}

fn run(store: Arc<dyn KeyStore>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let data = rt.block_on(populate(&*store));
    let renamed = (COMMON + RANDOM).div_ceil(97);
    assert_eq!(data.events.len(), 1 + COMMON + RANDOM + renamed + 300);
    // A runner per property: one runner counts its cases across runs.
    let runner = || {
        TestRunner::new(Config {
            cases: 96,
            failure_persistence: None,
            ..Config::default()
        })
    };
    runner()
        .run(&keys_case(), |c| {
            rt.block_on(check_keys(&*store, &data, &c));
            Ok(())
        })
        .expect("keys");
    let events_case = (
        proptest::option::of(prop_oneof![Just(1usize), Just(2), Just(3), Just(4)]),
        proptest::option::of(0usize..3000),
        1usize..60,
    )
        .prop_map(|(key, start, limit)| EventsCase { key, start, limit });
    runner()
        .run(&events_case, |c| {
            rt.block_on(check_events(&*store, &data, &c));
            Ok(())
        })
        .expect("events");
    let rows = rt.block_on(record_usage(&*store, &data));
    let usage_case = (
        proptest::option::of(prop_oneof![Just("api"), Just("mcp"), Just("web")]),
        proptest::option::of(prop_oneof![
            Just("realtime"),
            Just("analytics"),
            Just("default")
        ]),
        0i64..3,
        1i64..5,
        proptest::option::of(0usize..60),
        1usize..25,
    )
        .prop_map(|(origin, category, from_h, to_h, start, limit)| UsageCase {
            origin,
            category,
            from_h,
            to_h,
            start,
            limit,
        });
    runner()
        .run(&usage_case, |c| {
            rt.block_on(check_usage(&*store, &data, &rows, &c));
            Ok(())
        })
        .expect("usage");
}

#[test]
fn memory_store_queries_match_brute_force() {
    run(Arc::new(keyward::store::MemoryStore::new()));
}

#[test]
fn sqlite_store_queries_match_brute_force() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("q.db").display());
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let store = rt
        .block_on(keyward::store::SqliteStore::connect(&url))
        .expect("connect");
    run(Arc::new(store));
}

#[cfg(feature = "postgres")]
#[test]
fn postgres_store_queries_match_brute_force() {
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
