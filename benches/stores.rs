//! Verification through each store: cold (store round trip + argon2id on a
//! fresh instance) and warm (the cache; the same whatever the store), plus
//! the bare `get_key` round trip.
//!
//! ```text
//! KEYWARD_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test \
//!   cargo bench --bench stores --all-features
//! ```
//! Without `KEYWARD_TEST_POSTGRES_URL` the PostgreSQL cases are skipped.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use keyward::store::KeyStore;
use keyward::{Actor, Keyward, MemoryStore, NewAccount, NewKey, PermissionSet, VerifyContext};

fn service(store: &Arc<dyn KeyStore>) -> Keyward {
    Keyward::builder()
        .shared_store(Arc::clone(store))
        .flush_interval(None)
        .build()
        .expect("build")
}

struct Fixture {
    name: &'static str,
    store: Arc<dyn KeyStore>,
    id: String,
    secret: String,
    _guard: Option<Box<dyn std::any::Any>>,
    /// `(url, schema)` to drop when done.
    drop_schema: Option<(String, String)>,
}

async fn fixture(
    name: &'static str,
    store: Arc<dyn KeyStore>,
    guard: Option<Box<dyn std::any::Any>>,
) -> Fixture {
    let kw = service(&store);
    let perms = PermissionSet::parse(["readApplications"]).expect("perms");
    let account = kw
        .create_account(Actor::System, NewAccount::new("bench", perms.clone()))
        .await
        .expect("account");
    let issued = kw
        .issue_key(
            Actor::System,
            &account.id,
            NewKey::new("bench").permissions(perms),
        )
        .await
        .expect("issue");
    Fixture {
        name,
        store,
        id: issued.key.id.as_str().to_owned(),
        secret: issued.secret.expose().to_owned(),
        _guard: guard,
        drop_schema: None,
    }
}

async fn fixtures() -> Vec<Fixture> {
    let mut out = vec![fixture("memory", Arc::new(MemoryStore::new()), None).await];
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let sqlite = keyward::store::SqliteStore::connect(&url)
        .await
        .expect("sqlite");
    out.push(fixture("sqlite", Arc::new(sqlite), Some(Box::new(dir))).await);
    #[cfg(feature = "postgres")]
    match std::env::var("KEYWARD_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => {
            let schema = format!("kw_bench_{:016x}", rand::random::<u64>());
            let pg = keyward::store::PostgresStore::connect_with(
                &url,
                keyward::store::PostgresOptions::new()
                    .schema(&schema)
                    .feed(false),
            )
            .await
            .expect("postgres");
            let mut f = fixture("postgres", Arc::new(pg), None).await;
            f.drop_schema = Some((url, schema));
            out.push(f);
        }
        _ => println!("skipped postgres: KEYWARD_TEST_POSTGRES_URL not set"),
    }
    out
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let fixtures = rt.block_on(fixtures());
    let mut group = c.benchmark_group("verify_cold");
    for f in &fixtures {
        // A fresh instance per iteration: empty caches, so each verify
        // reads key and account from the store and runs argon2id (8 MiB).
        group.bench_function(f.name, |b| {
            b.to_async(&rt).iter_batched(
                || service(&f.store),
                |kw| async move {
                    black_box(
                        kw.verify(&f.id, &f.secret, VerifyContext::new())
                            .await
                            .expect("verify"),
                    );
                },
                BatchSize::SmallInput,
            );
        });
    }
    group.finish();

    let mut group = c.benchmark_group("verify_warm");
    for f in &fixtures {
        let kw = service(&f.store);
        rt.block_on(kw.verify(&f.id, &f.secret, VerifyContext::new()))
            .expect("warm up");
        group.bench_function(f.name, |b| {
            b.to_async(&rt).iter(|| async {
                black_box(
                    kw.verify(&f.id, &f.secret, VerifyContext::new())
                        .await
                        .expect("verify"),
                );
            });
        });
    }
    group.finish();

    let mut group = c.benchmark_group("store_get_key");
    for f in &fixtures {
        let id = keyward::KeyId::new(&f.id).expect("id");
        group.bench_function(f.name, |b| {
            b.to_async(&rt)
                .iter(|| async { black_box(f.store.get_key(&id).await.expect("get")) });
        });
    }
    group.finish();
    rt.block_on(cleanup(fixtures));
}

async fn cleanup(fixtures: Vec<Fixture>) {
    for f in fixtures {
        let Some((_url, _schema)) = f.drop_schema.clone() else {
            continue;
        };
        drop(f);
        #[cfg(feature = "postgres")]
        {
            use sqlx::Connection;
            if let Ok(mut c) = sqlx::PgConnection::connect(&_url).await {
                let sql = format!("DROP SCHEMA IF EXISTS \"{_schema}\" CASCADE");
                let _ = sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut c).await;
            }
        }
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
