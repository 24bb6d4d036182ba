//! SqliteStore through the service: restart durability, same-instance
//! revocation under concurrent verification, `store::connect`.

#[path = "store_support/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::Instant;

use keyward::store::{KeyStore, SqliteStore};
use keyward::{Actor, Error, VerifyContext};

fn db_url(dir: &tempfile::TempDir) -> String {
    format!("sqlite://{}", dir.path().join("kw.db").display())
}

#[tokio::test]
async fn survives_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = db_url(&dir);
    let (account, kept, deleted, events_before) = {
        let store = SqliteStore::connect(&url).await.expect("connect");
        assert_eq!(
            store.schema_version().await.expect("version"),
            shipped_migrations("sqlite").1
        );
        let kw = common::service(Arc::new(store.clone()), None, 30);
        let (account, kept) = common::account_and_key(&kw).await;
        let deleted = common::issue(&kw, &account.id, "gone").await;
        kw.delete_key(Actor::System, &deleted.key.id)
            .await
            .expect("delete");
        kw.deactivate_key(Actor::System, &kept.key.id)
            .await
            .expect("deactivate");
        kw.activate_key(Actor::System, &kept.key.id)
            .await
            .expect("activate");
        let events = kw
            .events(Actor::System, &account.id, None, 100, None)
            .await
            .expect("events")
            .items;
        drop(kw);
        store.close().await;
        (account, kept, deleted, events)
    };
    assert_eq!(events_before.len(), 6);

    let store: Arc<dyn KeyStore> = keyward::store::connect(&url).await.expect("reopen");
    let kw = common::service(store, None, 30);
    let p = kw
        .verify(
            kept.key.id.as_str(),
            kept.secret.expose(),
            VerifyContext::new(),
        )
        .await
        .expect("key still verifies after restart");
    assert_eq!(p.account_id(), &account.id);
    let r = kw
        .verify(
            deleted.key.id.as_str(),
            deleted.secret.expose(),
            VerifyContext::new(),
        )
        .await;
    assert!(
        matches!(r, Err(Error::Unauthorized)),
        "deleted key came back: {r:?}"
    );
    let events = kw
        .events(Actor::System, &account.id, None, 100, None)
        .await
        .expect("events")
        .items;
    assert_eq!(events, events_before, "audit events lost or changed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_success_after_deactivate_returns() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::connect(&db_url(&dir)).await.expect("connect");
    let kw = common::service(Arc::new(store), None, 30);
    let (_, key) = common::account_and_key(&kw).await;
    let id = key.key.id;
    let secret = key.secret.expose().to_owned();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let (kw, secret, stop) = (kw.clone(), secret.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut successes = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let started = Instant::now();
                if kw
                    .verify(id.as_str(), &secret, VerifyContext::new())
                    .await
                    .is_ok()
                {
                    successes.push(started);
                }
                tokio::task::yield_now().await;
            }
            successes
        }));
    }
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    kw.deactivate_key(Actor::System, &id)
        .await
        .expect("deactivate");
    let returned = Instant::now();
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut total = 0;
    for t in tasks {
        let successes = t.await.expect("task");
        total += successes.len();
        let late = successes.iter().filter(|s| **s > returned).count();
        assert_eq!(
            late, 0,
            "verification started after deactivate returned succeeded"
        );
    }
    assert!(total > 0, "the verifiers never ran before the deactivation");
}

#[tokio::test]
async fn connect_dispatches_on_scheme() {
    assert!(keyward::store::connect("memory:").await.is_ok());
    assert!(keyward::store::connect("sqlite::memory:").await.is_ok());
    let err = keyward::store::connect("mysql://localhost/db")
        .await
        .expect_err("unknown");
    assert!(
        err.to_string().contains("backend")
            || format!("{err:?}").contains("unknown store URL scheme")
    );
    #[cfg(not(feature = "postgres"))]
    {
        let err = keyward::store::connect("postgres://localhost/db")
            .await
            .expect_err("disabled");
        assert!(format!("{err:?}").contains("feature"));
    }
}

#[tokio::test]
async fn unopenable_file_is_an_error_not_a_panic() {
    let r = SqliteStore::connect("sqlite:///nonexistent-dir-kw/x/y.db").await;
    assert!(r.is_err());
}

/// The migrations shipped for `backend`: their number and the latest
/// version (a new migration file needs no test edit).
fn shipped_migrations(backend: &str) -> (i64, i64) {
    let versions: Vec<i64> = std::fs::read_dir(format!("migrations/{backend}"))
        .expect("migrations")
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            name.split('_').next()?.parse().ok()
        })
        .collect();
    (
        versions.len() as i64,
        versions.iter().copied().max().unwrap_or(0),
    )
}
