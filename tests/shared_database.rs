//! keyward in a database the host application also migrates with sqlx:
//! host migrations before and after keyward's, both migrators keep working,
//! `_sqlx_migrations` holds only the host's rows, host pools through
//! `from_pool`, and a database migrated by an earlier keyward build (its
//! rows in `_sqlx_migrations`) is adopted. SQLite always; PostgreSQL with
//! `KEYWARD_TEST_POSTGRES_URL`.
#![cfg(any(feature = "sqlite", feature = "postgres"))]

#[path = "store_support/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use keyward::store::{KeyStore, StoreError};
use keyward::{Actor, VerifyContext};
use sqlx::migrate::Migrator;

const HOST_V1: i64 = 20250101000000;
const HOST_V2: i64 = 20250201000000;

/// A host migrations directory holding its first migration; `second` adds
/// the next one (a host release shipped after keyward was added).
struct HostMigrations {
    dir: tempfile::TempDir,
}

impl HostMigrations {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join(format!("{HOST_V1}_things.sql")),
            "CREATE TABLE host_things (id BIGINT PRIMARY KEY, name TEXT NOT NULL);",
        )
        .expect("write");
        Self { dir }
    }

    fn second(&self) {
        std::fs::write(
            self.dir.path().join(format!("{HOST_V2}_more.sql")),
            "CREATE TABLE host_more (id BIGINT PRIMARY KEY);",
        )
        .expect("write");
    }

    async fn migrator(&self) -> Migrator {
        Migrator::new(self.dir.path()).await.expect("host migrator")
    }
}

/// keyward's own migration files as an earlier build applied them: through
/// sqlx's default table.
async fn legacy_migrator(backend: &str) -> Migrator {
    let dir: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(backend);
    Migrator::new(dir.as_path()).await.expect("legacy migrator")
}

fn keyward_versions(m: &Migrator) -> Vec<i64> {
    m.iter().map(|m| m.version).collect()
}

/// The store serves a full issue/verify round.
async fn works(store: Arc<dyn KeyStore>) {
    let kw = common::service(store, None, 30);
    let (_, key) = common::account_and_key(&kw).await;
    kw.verify(
        key.key.id.as_str(),
        key.secret.expose(),
        VerifyContext::new(),
    )
    .await
    .expect("verifies");
    kw.deactivate_key(Actor::System, &key.key.id)
        .await
        .expect("manages");
}

fn assert_not_migrated(r: Result<impl std::fmt::Debug, StoreError>) {
    match r {
        Err(StoreError::Backend(e)) => {
            let msg = e.to_string();
            assert!(
                msg.contains("schema is at version 0") && msg.contains("migrate(&pool)"),
                "unhelpful message: {msg}"
            );
        }
        other => panic!("expected a not-migrated error, got {other:?}"),
    }
}

#[cfg(feature = "sqlite")]
mod sqlite {
    use super::*;
    use keyward::store::SqliteStore;
    use keyward::store::migrations;
    use sqlx::SqlitePool;
    use sqlx::sqlite::SqliteConnectOptions;

    struct Db {
        _dir: tempfile::TempDir,
        url: String,
        pool: SqlitePool,
    }

    async fn db() -> Db {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("app.db");
        let url = format!("sqlite://{}", path.display());
        let pool = SqlitePool::connect_with(
            SqliteConnectOptions::new()
                .filename(&path)
                .create_if_missing(true)
                .foreign_keys(true),
        )
        .await
        .expect("host pool");
        Db {
            _dir: dir,
            url,
            pool,
        }
    }

    async fn versions(pool: &SqlitePool, table: &str) -> Vec<i64> {
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT version FROM {table} ORDER BY version"
        )))
        .fetch_all(pool)
        .await
        .expect("versions")
    }

    async fn assert_apart(pool: &SqlitePool, host: &[i64]) {
        assert_eq!(versions(pool, "_sqlx_migrations").await, host);
        assert_eq!(
            versions(pool, migrations::TABLE).await,
            keyward_versions(migrations::sqlite())
        );
    }

    #[tokio::test]
    async fn host_migrations_before_and_after_keyward() {
        let db = db().await;
        let host = HostMigrations::new();
        host.migrator().await.run(&db.pool).await.expect("host v1");

        let store = SqliteStore::connect(&db.url)
            .await
            .expect("keyward starts in the host's database");
        assert_apart(&db.pool, &[HOST_V1]).await;
        works(Arc::new(store.clone())).await;

        host.migrator()
            .await
            .run(&db.pool)
            .await
            .expect("host again");
        host.second();
        host.migrator().await.run(&db.pool).await.expect("host v2");
        store.close().await;
        let again = SqliteStore::connect(&db.url).await.expect("restart");
        assert_apart(&db.pool, &[HOST_V1, HOST_V2]).await;
        works(Arc::new(again)).await;
    }

    #[tokio::test]
    async fn keyward_first_then_host() {
        let db = db().await;
        let store = SqliteStore::connect(&db.url).await.expect("keyward");
        let host = HostMigrations::new();
        host.migrator()
            .await
            .run(&db.pool)
            .await
            .expect("the host's migrator ignores keyward's history");
        assert_apart(&db.pool, &[HOST_V1]).await;
        store.close().await;
        SqliteStore::connect(&db.url).await.expect("restart");
        host.migrator()
            .await
            .run(&db.pool)
            .await
            .expect("host again");
        assert_apart(&db.pool, &[HOST_V1]).await;
    }

    #[tokio::test]
    async fn from_pool_needs_migrations_then_shares_the_pool() {
        let db = db().await;
        HostMigrations::new()
            .migrator()
            .await
            .run(&db.pool)
            .await
            .expect("host");
        assert_not_migrated(SqliteStore::from_pool(db.pool.clone()).await);
        let tables: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM sqlite_master WHERE name IN ('keys', 'keyward_migrations')",
        )
        .fetch_one(&db.pool)
        .await
        .expect("count");
        assert_eq!(tables, 0, "from_pool must not migrate");

        SqliteStore::migrate(&db.pool).await.expect("migrate");
        SqliteStore::migrate(&db.pool).await.expect("idempotent");
        let store = SqliteStore::from_pool(db.pool.clone())
            .await
            .expect("from_pool");
        assert_eq!(
            store.schema_version().await.expect("version"),
            *keyward_versions(migrations::sqlite()).last().expect("one")
        );
        assert_apart(&db.pool, &[HOST_V1]).await;
        works(Arc::new(store)).await;
    }

    #[tokio::test]
    async fn the_exported_migrator_records_apart() {
        let db = db().await;
        migrations::sqlite().run(&db.pool).await.expect("run");
        HostMigrations::new()
            .migrator()
            .await
            .run(&db.pool)
            .await
            .expect("host");
        assert_apart(&db.pool, &[HOST_V1]).await;
        works(Arc::new(
            SqliteStore::from_pool(db.pool.clone()).await.expect("pool"),
        ))
        .await;
    }

    #[tokio::test]
    async fn adopts_a_database_migrated_by_an_earlier_build() {
        let db = db().await;
        legacy_migrator("sqlite")
            .await
            .run(&db.pool)
            .await
            .expect("legacy");
        let host = HostMigrations::new();
        let store = SqliteStore::connect(&db.url)
            .await
            .expect("adopts without re-running migrations");
        host.migrator().await.run(&db.pool).await.expect("host");
        assert_apart(&db.pool, &[HOST_V1]).await;
        works(Arc::new(store)).await;
    }
}

#[cfg(feature = "postgres")]
mod postgres {
    use super::*;
    use std::str::FromStr;

    use keyward::store::migrations;
    use keyward::store::{PostgresOptions, PostgresStore};
    use sqlx::PgPool;
    use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

    /// A host pool whose `search_path` is a fresh schema (dropped at the end).
    struct Db {
        url: String,
        schema: String,
        pool: PgPool,
    }

    impl Db {
        async fn new() -> Option<Self> {
            let url = common::pg_url()?;
            let schema = common::schema_name();
            let mut c = sqlx::PgPool::connect(&url).await.expect("connect");
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA \"{schema}\"")))
                .execute(&c)
                .await
                .expect("schema");
            c.close().await;
            c = PgPoolOptions::new()
                .max_connections(3)
                .connect_with(
                    PgConnectOptions::from_str(&url)
                        .expect("url")
                        .options([("search_path", schema.as_str())]),
                )
                .await
                .expect("host pool");
            Some(Self {
                url,
                schema,
                pool: c,
            })
        }

        fn options(&self) -> PostgresOptions {
            PostgresOptions::new()
                .schema(&self.schema)
                .max_connections(3)
                .feed(false)
        }

        async fn drop(self) {
            self.pool.close().await;
            common::drop_schema(&self.url, &self.schema).await;
        }
    }

    async fn versions(pool: &PgPool, table: &str) -> Vec<i64> {
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT version FROM {table} ORDER BY version"
        )))
        .fetch_all(pool)
        .await
        .expect("versions")
    }

    async fn assert_apart(pool: &PgPool, host: &[i64]) {
        assert_eq!(versions(pool, "_sqlx_migrations").await, host);
        assert_eq!(
            versions(pool, migrations::TABLE).await,
            keyward_versions(migrations::postgres())
        );
    }

    #[tokio::test]
    async fn host_migrations_before_and_after_keyward() {
        let Some(db) = Db::new().await else { return };
        let host = HostMigrations::new();
        host.migrator().await.run(&db.pool).await.expect("host v1");
        let store = PostgresStore::connect_with(&db.url, db.options())
            .await
            .expect("keyward starts in the host's database");
        assert_apart(&db.pool, &[HOST_V1]).await;
        works(Arc::new(store.clone())).await;
        host.second();
        host.migrator().await.run(&db.pool).await.expect("host v2");
        store.close().await;
        let again = PostgresStore::connect_with(&db.url, db.options())
            .await
            .expect("restart");
        assert_apart(&db.pool, &[HOST_V1, HOST_V2]).await;
        works(Arc::new(again.clone())).await;
        again.close().await;
        db.drop().await;
    }

    #[tokio::test]
    async fn keyward_first_then_host() {
        let Some(db) = Db::new().await else { return };
        let store = PostgresStore::connect_with(&db.url, db.options())
            .await
            .expect("keyward");
        let host = HostMigrations::new();
        host.migrator().await.run(&db.pool).await.expect("host");
        assert_apart(&db.pool, &[HOST_V1]).await;
        store.close().await;
        let again = PostgresStore::connect_with(&db.url, db.options())
            .await
            .expect("restart");
        host.migrator()
            .await
            .run(&db.pool)
            .await
            .expect("host again");
        assert_apart(&db.pool, &[HOST_V1]).await;
        again.close().await;
        db.drop().await;
    }

    #[tokio::test]
    async fn from_pool_and_migrate_off() {
        let Some(db) = Db::new().await else { return };
        HostMigrations::new()
            .migrator()
            .await
            .run(&db.pool)
            .await
            .expect("host");
        assert_not_migrated(
            PostgresStore::from_pool(db.pool.clone(), PostgresOptions::new()).await,
        );
        assert_not_migrated(
            PostgresStore::connect_with(&db.url, db.options().migrate(false)).await,
        );
        let r = PostgresStore::from_pool(db.pool.clone(), PostgresOptions::new().schema("x")).await;
        assert!(matches!(r, Err(StoreError::Backend(_))), "got {r:?}");
        let keys: bool = sqlx::query_scalar("SELECT to_regclass('keys') IS NOT NULL")
            .fetch_one(&db.pool)
            .await
            .expect("regclass");
        assert!(!keys, "nothing may be migrated");

        PostgresStore::migrate(&db.pool).await.expect("migrate");
        let store = PostgresStore::from_pool(db.pool.clone(), PostgresOptions::new().feed(false))
            .await
            .expect("from_pool");
        assert_apart(&db.pool, &[HOST_V1]).await;
        works(Arc::new(store)).await;
        PostgresStore::connect_with(&db.url, db.options().migrate(false))
            .await
            .expect("migrate off, schema current")
            .close()
            .await;
        db.drop().await;
    }

    #[tokio::test]
    async fn adopts_a_database_migrated_by_an_earlier_build() {
        let Some(db) = Db::new().await else { return };
        legacy_migrator("postgres")
            .await
            .run(&db.pool)
            .await
            .expect("legacy");
        let store = PostgresStore::connect_with(&db.url, db.options())
            .await
            .expect("adopts without re-running migrations");
        HostMigrations::new()
            .migrator()
            .await
            .run(&db.pool)
            .await
            .expect("host");
        assert_apart(&db.pool, &[HOST_V1]).await;
        works(Arc::new(store.clone())).await;
        store.close().await;
        db.drop().await;
    }
}
