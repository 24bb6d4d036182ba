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
            common::migration_max_version("sqlite")
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

/// A store written by schema 1 (before the audit actor columns): opening
/// it applies migration 2, which backfills `actor_kind`, and its events
/// read back with the kind they imply (the system's as "system").
#[tokio::test]
async fn schema_1_events_read_back_with_their_actor_kind() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = db_url(&dir);
    let v1 = dir.path().join("v1");
    std::fs::create_dir(&v1).expect("dir");
    std::fs::copy(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/migrations/sqlite/0001_init.sql"
        ),
        v1.join("0001_init.sql"),
    )
    .expect("copy");
    {
        let opts = url
            .parse::<sqlx::sqlite::SqliteConnectOptions>()
            .expect("url")
            .create_if_missing(true);
        let pool = sqlx::SqlitePool::connect_with(opts).await.expect("pool");
        sqlx::migrate::Migrator::new(v1.as_path())
            .await
            .expect("migrator")
            .run(&pool)
            .await
            .expect("schema 1");
        sqlx::query(
            "INSERT INTO accounts (id, name, parent, permissions, created_at) \
             VALUES ('acme', 'Acme', NULL, '[]', 1)",
        )
        .execute(&pool)
        .await
        .expect("account");
        for (id, at, actor) in [
            (
                "evt_1",
                1,
                r#"{"key_id":null,"session_id":null,"account_id":null}"#,
            ),
            (
                "evt_2",
                2,
                r#"{"key_id":"kw_00000000000000000","session_id":null,"account_id":"acme"}"#,
            ),
        ] {
            sqlx::query(
                "INSERT INTO audit_events (id, at, action, account_id, key_id, session_id, \
                 actor, client_ip, details) VALUES (?, ?, 'key_updated', 'acme', NULL, NULL, ?, NULL, '{}')",
            )
            .bind(id)
            .bind(at)
            .bind(actor)
            .execute(&pool)
            .await
            .expect("event");
        }
        pool.close().await;
    }
    let store = SqliteStore::connect(&url).await.expect("connect");
    assert_eq!(
        store.schema_version().await.expect("version"),
        common::migration_max_version("sqlite")
    );
    let reader = sqlx::SqlitePool::connect(&url).await.expect("pool");
    let kinds: Vec<(String, String)> =
        sqlx::query_as("SELECT id, actor_kind FROM audit_events ORDER BY id")
            .fetch_all(&reader)
            .await
            .expect("kinds");
    reader.close().await;
    assert_eq!(
        kinds,
        [
            ("evt_1".to_owned(), "system".to_owned()),
            ("evt_2".to_owned(), "key".to_owned())
        ]
    );
    let kw = common::service(Arc::new(store.clone()), None, 30);
    let events = kw
        .events(
            Actor::System,
            &keyward::AccountId::new("acme").expect("id"),
            None,
            10,
            None,
        )
        .await
        .expect("events")
        .items;
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].actor.kind, keyward::ActorKind::Key);
    assert_eq!(events[1].actor.kind, keyward::ActorKind::System);
    store.close().await;
}

/// Migration 0014 on a database of keys made before it: their search rows
/// get the key's account and creation time, so a name search (which now
/// reads them) still finds every key, in order, and only the account's.
#[tokio::test]
async fn keys_from_before_0014_are_found_by_name_search() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = db_url(&dir);
    let before = dir.path().join("before");
    std::fs::create_dir(&before).expect("dir");
    let all = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/sqlite");
    for entry in std::fs::read_dir(all).expect("migrations") {
        let path = entry.expect("entry").path();
        let name = path
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        if name.as_str() < "0014" && name.ends_with(".sql") {
            std::fs::copy(&path, before.join(&name)).expect("copy");
        }
    }
    {
        let opts = url
            .parse::<sqlx::sqlite::SqliteConnectOptions>()
            .expect("url")
            .create_if_missing(true);
        let pool = sqlx::SqlitePool::connect_with(opts).await.expect("pool");
        sqlx::migrate::Migrator::new(before.as_path())
            .await
            .expect("migrator")
            .run(&pool)
            .await
            .expect("schema 13");
        for (id, account, name, at) in [
            ("kw_00000000000000003", "acme", "Billing export", 3),
            ("kw_00000000000000001", "acme", "nightly billing", 1),
            ("kw_00000000000000002", "globex", "billing", 2),
            ("kw_00000000000000004", "acme", "mobile", 4),
        ] {
            sqlx::query(
                "INSERT INTO keys (id, account_id, name, name_lower, description, application, \
                 permissions, status, protected, created_at, updated_at, allowed_cidrs, metadata, \
                 secret_hash, generation, version) \
                 VALUES (?, ?, ?, ?, '', NULL, '[]', 'active', 0, ?, ?, '[]', '{}', 'x', 0, 1)",
            )
            .bind(id)
            .bind(account)
            .bind(name)
            .bind(name.to_lowercase())
            .bind(at)
            .bind(at)
            .execute(&pool)
            .await
            .expect("key");
        }
        pool.close().await;
    }
    let store = SqliteStore::connect(&url).await.expect("connect");
    let acme = keyward::AccountId::new("acme").expect("id");
    let found = |after| {
        let store = store.clone();
        async move {
            let q = keyward::store::KeyQuery {
                name_contains: Some("BILLING".into()),
                after,
                limit: 10,
                ..Default::default()
            };
            store
                .list_keys(&acme, &q)
                .await
                .expect("search")
                .into_iter()
                .map(|k| k.id.to_string())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        found(None).await,
        ["kw_00000000000000001", "kw_00000000000000003"]
    );
    let first = keyward::KeyId::new("kw_00000000000000001").expect("id");
    let at = time::OffsetDateTime::from_unix_timestamp_nanos(1000).expect("time");
    assert_eq!(found(Some((at, first))).await, ["kw_00000000000000003"]);
}
