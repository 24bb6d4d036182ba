//! Helpers shared by the integration tests.
#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;

use keyward::store::KeyStore;
use keyward::{
    Actor, HashParams, IssuedKey, Keyward, ManualClock, NewAccount, NewKey, PermissionSet,
};

pub mod counting;
pub mod proxy;

/// The test database URL; `None` (after printing why) when unset, unless
/// `CI=true`, where a missing database is a failure.
pub fn pg_url() -> Option<String> {
    match std::env::var("KEYWARD_TEST_POSTGRES_URL") {
        Ok(u) if !u.is_empty() => Some(u),
        _ => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "KEYWARD_TEST_POSTGRES_URL must be set in CI"
            );
            println!("skipped: KEYWARD_TEST_POSTGRES_URL not set");
            None
        }
    }
}

/// A fresh schema name for one test.
pub fn schema_name() -> String {
    let n: u64 = rand::random();
    format!("kw_test_{n:016x}")
}

/// Drops a test schema (best effort).
#[cfg(feature = "postgres")]
pub async fn drop_schema(url: &str, schema: &str) {
    use sqlx::Connection;
    if let Ok(mut c) = sqlx::PgConnection::connect(url).await {
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"
        )))
        .execute(&mut c)
        .await;
        let _ = c.close().await;
    }
}

/// Cheap argon2 parameters so debug-build tests stay fast.
pub const FAST_HASH: HashParams = HashParams {
    memory_kib: 64,
    iterations: 1,
    parallelism: 1,
};

/// A service on `store` with fast hashing, no background flush and `clock`.
pub fn service(store: Arc<dyn KeyStore>, clock: Option<ManualClock>, w_secs: i64) -> Keyward {
    let b = Keyward::builder()
        .shared_store(store)
        .hash_params(FAST_HASH)
        .propagation_window(time::Duration::seconds(w_secs))
        .flush_interval(None);
    match clock {
        // Simulated time: real time barely passes, so the refresher reads
        // what is queued at once (no batch window to wait out).
        Some(c) => b.clock(c).refresh_batch_window(std::time::Duration::ZERO),
        None => b,
    }
    .build()
    .expect("build")
}

pub fn perms() -> PermissionSet {
    PermissionSet::parse(["readApplications", "readApiKeys", "writeApiKeys"]).expect("perms")
}

/// An account and one key on it.
pub async fn account_and_key(kw: &Keyward) -> (keyward::Account, IssuedKey) {
    let account = kw
        .create_account(Actor::System, NewAccount::new("Acme", perms()))
        .await
        .expect("account");
    let key = issue(kw, &account.id, "k").await;
    (account, key)
}

pub async fn issue(kw: &Keyward, account: &keyward::AccountId, name: &str) -> IssuedKey {
    kw.issue_key(
        Actor::System,
        account,
        NewKey::new(name).permissions(PermissionSet::parse(["readApplications"]).expect("p")),
    )
    .await
    .expect("issue")
}

#[cfg(feature = "postgres")]
/// A Postgres store in `schema` with `options` applied on top of the
/// defaults (small pool, fast failure).
pub async fn pg_store(
    url: &str,
    schema: &str,
    tweak: impl FnOnce(keyward::store::PostgresOptions) -> keyward::store::PostgresOptions,
) -> keyward::store::PostgresStore {
    let options = keyward::store::PostgresOptions::new()
        .schema(schema)
        .max_connections(4)
        .acquire_timeout(std::time::Duration::from_secs(2));
    keyward::store::PostgresStore::connect_with(url, tweak(options))
        .await
        .expect("connect")
}

/// Retries `check` (every 2 ms) until it returns true or `limit` passes;
/// returns how long it took, or `None` on timeout.
pub async fn time_until<F, Fut>(
    limit: std::time::Duration,
    mut check: F,
) -> Option<std::time::Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = std::time::Instant::now();
    loop {
        if check().await {
            return Some(start.elapsed());
        }
        if start.elapsed() > limit {
            return None;
        }
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
}

/// How many embedded migrations `dialect` (`sqlite` or `postgres`) has: the
/// schema version a freshly migrated store reports.
#[allow(dead_code)]
pub fn migration_count(dialect: &str) -> i64 {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(dialect);
    std::fs::read_dir(dir)
        .expect("migrations dir")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "sql"))
        })
        .count() as i64
}

/// The highest embedded migration version of `dialect`: the schema version
/// a freshly migrated store reports (versions need not be contiguous while
/// branches add migrations in parallel).
#[allow(dead_code)]
pub fn migration_max_version(dialect: &str) -> i64 {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(dialect);
    std::fs::read_dir(dir)
        .expect("migrations dir")
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            name.strip_suffix(".sql")?
                .split('_')
                .next()?
                .parse::<i64>()
                .ok()
        })
        .max()
        .unwrap_or(0)
}
