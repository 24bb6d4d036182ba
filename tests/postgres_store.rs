//! PostgresStore failure behaviour: database down and back, unreachable
//! server, concurrent migrations. Needs `KEYWARD_TEST_POSTGRES_URL`.

#[path = "store_support/mod.rs"]
mod common;

use std::str::FromStr;
use std::sync::Arc;

use keyward::store::{EventQuery, KeyStore, PostgresStore, StoreError};
use keyward::{Actor, Error, ManualClock, NewKey, VerifyContext};
use sqlx::postgres::PgConnectOptions;

/// The URL with its host:port replaced by a cuttable proxy's.
async fn proxied(url: &str) -> (common::proxy::Proxy, String) {
    let opts = PgConnectOptions::from_str(url).expect("url");
    let target = format!("{}:{}", opts.get_host(), opts.get_port());
    let addr = tokio::net::lookup_host(&target)
        .await
        .expect("resolve")
        .next()
        .expect("address");
    let proxy = common::proxy::Proxy::start(addr).await;
    let proxied = url.replacen(&target, &proxy.addr.to_string(), 1);
    assert_ne!(proxied, url, "the test URL must spell out host:port");
    (proxy, proxied)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_down_then_back() {
    let Some(url) = common::pg_url() else { return };
    let schema = common::schema_name();
    let (proxy, via_proxy) = proxied(&url).await;
    let store = common::pg_store(&via_proxy, &schema, |o| {
        o.acquire_timeout(std::time::Duration::from_millis(500))
    })
    .await;
    let clock = ManualClock::default();
    let kw = common::service(Arc::new(store.clone()), Some(clock.clone()), 30);
    let (account, key) = common::account_and_key(&kw).await;
    let verify = || {
        kw.verify(
            key.key.id.as_str(),
            key.secret.expose(),
            VerifyContext::new(),
        )
    };
    verify().await.expect("verifies while up");

    proxy.down();
    clock.advance(time::Duration::seconds(10));
    verify()
        .await
        .expect("cached < W ago: still verifies while down");
    let r = kw.deactivate_key(Actor::System, &key.key.id).await;
    assert!(matches!(r, Err(Error::Unavailable(_))), "got {r:?}");
    let r = kw
        .issue_key(Actor::System, &account.id, NewKey::new("new"))
        .await;
    assert!(matches!(r, Err(Error::Unavailable(_))), "got {r:?}");
    let r = store.get_key(&key.key.id).await;
    assert!(matches!(r, Err(StoreError::Unavailable(_))), "got {r:?}");
    clock.advance(time::Duration::seconds(21));
    let r = verify().await;
    assert!(
        matches!(r, Err(Error::Unavailable(_))),
        "after W it must fail closed: {r:?}"
    );

    proxy.up();
    verify().await.expect("recovers without restart");
    kw.deactivate_key(Actor::System, &key.key.id)
        .await
        .expect("management works again");
    assert!(matches!(verify().await, Err(Error::KeyInactive)));

    let direct = common::pg_store(&url, &schema, |o| o.feed(false)).await;
    let events = direct
        .list_events(&EventQuery::new(account.id, 100))
        .await
        .expect("events");
    // Same manual-clock instant: ties are ordered by event id, so compare
    // as a set. Nothing was written while the database was down.
    let mut actions: Vec<&str> = events.iter().map(|e| e.action.as_str()).collect();
    actions.sort_unstable();
    assert_eq!(
        actions,
        ["account_created", "key_created", "key_deactivated"]
    );
    drop(kw);
    store.close().await;
    direct.close().await;
    common::drop_schema(&url, &schema).await;
}

#[tokio::test]
async fn unreachable_server_is_unavailable() {
    if common::pg_url().is_none() {
        return;
    }
    let r = PostgresStore::connect_with(
        "postgres://postgres@127.0.0.1:1/test",
        keyward::store::PostgresOptions::new().acquire_timeout(std::time::Duration::from_secs(1)),
    )
    .await;
    assert!(matches!(r, Err(StoreError::Unavailable(_))), "got {r:?}");
    let r = keyward::store::connect("postgres://postgres@127.0.0.1:1/test").await;
    assert!(matches!(r, Err(StoreError::Unavailable(_))), "got {r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_instances_migrate_once() {
    let Some(url) = common::pg_url() else { return };
    let schema = common::schema_name();
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let (url, schema) = (url.clone(), schema.clone());
        tasks.push(tokio::spawn(async move {
            common::pg_store(&url, &schema, |o| o.feed(false)).await
        }));
    }
    let mut stores = Vec::new();
    for t in tasks {
        stores.push(t.await.expect("task"));
    }
    for s in &stores {
        assert_eq!(
            s.schema_version().await.expect("version"),
            common::migration_max_version("postgres")
        );
    }
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM keyward_migrations")
        .fetch_one(stores[0].pool())
        .await
        .expect("count");
    assert_eq!(applied, common::migration_count("postgres"));
    let kw = common::service(Arc::new(stores[0].clone()), None, 30);
    let (_, key) = common::account_and_key(&kw).await;
    let other = common::service(Arc::new(stores[5].clone()), None, 30);
    other
        .verify(
            key.key.id.as_str(),
            key.secret.expose(),
            VerifyContext::new(),
        )
        .await
        .expect("shared schema");
    for s in stores {
        s.close().await;
    }
    common::drop_schema(&url, &schema).await;
}
