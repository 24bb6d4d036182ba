//! keyward's schema migrations, tracked apart from the host's.
//!
//! keyward records its migrations in its own table, [`TABLE`]
//! (`keyward_migrations`), never in sqlx's default `_sqlx_migrations`, so
//! it can live in a database that the host application already migrates
//! with sqlx: each migrator sees only its own rows, in either order.
//!
//! The SQL files are `migrations/sqlite/*.sql` and `migrations/postgres/*.sql`
//! in the crate (shipped in the package), embedded into the binary at build
//! time; every file in those directories is a migration, in version order.
//!
//! Three ways to apply them:
//!
//! - let the store do it: `SqliteStore::connect` and `PostgresStore::connect`
//!   migrate on connect (turn that off with `PostgresOptions::migrate(false)`);
//! - call [`SqliteStore::migrate`](super::SqliteStore::migrate) /
//!   [`PostgresStore::migrate`](super::PostgresStore::migrate) on the host's
//!   pool (for example next to the host's own `sqlx::migrate!().run(&pool)`),
//!   then [`SqliteStore::from_pool`](super::SqliteStore::from_pool) /
//!   [`PostgresStore::from_pool`](super::PostgresStore::from_pool);
//! - run the [`Migrator`](sqlx::migrate::Migrator) yourself: [`sqlite()`] and
//!   [`postgres()`] return it, already set to [`TABLE`].
//!
//! A database that an earlier keyward build migrated through
//! `_sqlx_migrations` is adopted on the first migration: keyward's rows
//! (same version and checksum as one of its migrations) move, in one
//! transaction, to [`TABLE`]; the host's rows stay where they are.

/// The table keyward records its applied migrations in (same columns as
/// sqlx's `_sqlx_migrations`), in the store's schema.
pub const TABLE: &str = "keyward_migrations";

/// sqlx's default migration table, which earlier keyward builds used.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
const LEGACY_TABLE: &str = "_sqlx_migrations";

#[cfg(feature = "sqlite")]
static SQLITE: std::sync::LazyLock<sqlx::migrate::Migrator> = std::sync::LazyLock::new(|| {
    let mut m = sqlx::migrate!("migrations/sqlite");
    m.dangerous_set_table_name(TABLE);
    m
});

#[cfg(feature = "postgres")]
static POSTGRES: std::sync::LazyLock<sqlx::migrate::Migrator> = std::sync::LazyLock::new(|| {
    let mut m = sqlx::migrate!("migrations/postgres");
    m.dangerous_set_table_name(TABLE);
    m
});

/// keyward's SQLite migrations, recording into [`TABLE`].
///
/// ```
/// let m = keyward::store::migrations::sqlite();
/// assert!(m.iter().any(|m| m.version == 1));
/// ```
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub fn sqlite() -> &'static sqlx::migrate::Migrator {
    &SQLITE
}

/// keyward's PostgreSQL migrations, recording into [`TABLE`] (in the
/// connection's `search_path`).
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub fn postgres() -> &'static sqlx::migrate::Migrator {
    &POSTGRES
}

/// The latest version this build knows (the highest migration number).
#[cfg(any(feature = "sqlite", feature = "postgres"))]
fn latest(m: &sqlx::migrate::Migrator) -> i64 {
    m.iter().map(|m| m.version).max().unwrap_or(0)
}

#[cfg(any(feature = "sqlite", feature = "postgres"))]
fn migrate_err(e: sqlx::migrate::MigrateError) -> super::StoreError {
    match e {
        sqlx::migrate::MigrateError::Execute(e) => super::sql::map_err(e, "migration"),
        e => super::StoreError::Backend(Box::new(e)),
    }
}

/// The error of a store opened on a pool whose schema is behind this build.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
fn not_migrated(applied: i64, latest: i64, how: &str) -> super::StoreError {
    super::StoreError::Backend(
        format!(
            "keyward's schema is at version {applied}, this build needs {latest}: \
             apply keyward's migrations first ({how})"
        )
        .into(),
    )
}

#[cfg(feature = "sqlite")]
pub(super) mod sqlite_impl {
    //! Migrating and checking a SQLite pool.

    use sqlx::SqlitePool;
    use sqlx::migrate::Migrate;

    use super::{LEGACY_TABLE, SQLITE, TABLE, latest, migrate_err, not_migrated};
    use crate::store::StoreResult;
    use crate::store::sql::map_err;

    async fn table_exists(conn: &mut sqlx::SqliteConnection, name: &str) -> StoreResult<bool> {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?",
        )
        .bind(name)
        .fetch_one(conn)
        .await
        .map_err(|e| map_err(e, "schema"))?;
        Ok(n > 0)
    }

    /// Moves keyward's rows out of `_sqlx_migrations` when [`TABLE`] does
    /// not exist yet (a database migrated by an earlier build).
    async fn adopt_legacy(pool: &SqlitePool) -> StoreResult<()> {
        let mut tx = pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(|e| map_err(e, "begin"))?;
        if table_exists(&mut tx, TABLE).await? || !table_exists(&mut tx, LEGACY_TABLE).await? {
            return Ok(());
        }
        tx.ensure_migrations_table(TABLE)
            .await
            .map_err(migrate_err)?;
        for m in SQLITE.iter() {
            for sql in [
                "INSERT INTO keyward_migrations \
                 (version, description, installed_on, success, checksum, execution_time) \
                 SELECT version, description, installed_on, success, checksum, execution_time \
                 FROM _sqlx_migrations WHERE version = ? AND checksum = ?",
                "DELETE FROM _sqlx_migrations WHERE version = ? AND checksum = ?",
            ] {
                sqlx::query(sql)
                    .bind(m.version)
                    .bind(&*m.checksum)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| map_err(e, "migration"))?;
            }
        }
        tx.commit().await.map_err(|e| map_err(e, "commit"))
    }

    /// Applies keyward's pending migrations to `pool`.
    pub(crate) async fn run(pool: &SqlitePool) -> StoreResult<()> {
        adopt_legacy(pool).await?;
        SQLITE.run(pool).await.map_err(migrate_err)
    }

    /// The latest applied keyward migration (0 when none).
    pub(crate) async fn version(pool: &SqlitePool) -> StoreResult<i64> {
        let mut conn = pool.acquire().await.map_err(|e| map_err(e, "connect"))?;
        if !table_exists(&mut conn, TABLE).await? {
            return Ok(0);
        }
        sqlx::query_scalar("SELECT COALESCE(MAX(version), 0) FROM keyward_migrations WHERE success")
            .fetch_one(&mut *conn)
            .await
            .map_err(|e| map_err(e, "schema"))
    }

    /// Fails unless every migration of this build has been applied.
    pub(crate) async fn check(pool: &SqlitePool) -> StoreResult<()> {
        let (applied, latest) = (version(pool).await?, latest(&SQLITE));
        if applied < latest {
            return Err(not_migrated(
                applied,
                latest,
                "keyward::store::SqliteStore::migrate(&pool)",
            ));
        }
        Ok(())
    }
}

#[cfg(feature = "postgres")]
pub(super) mod postgres_impl {
    //! Migrating and checking a PostgreSQL pool.

    use sqlx::PgPool;
    use sqlx::migrate::Migrate;

    use super::{LEGACY_TABLE, POSTGRES, TABLE, latest, migrate_err, not_migrated};
    use crate::store::StoreResult;
    use crate::store::sql::map_err;

    /// Serializes keyward's adoption of a legacy migration table across
    /// instances starting at once ("keyward" in ASCII).
    const ADOPT_LOCK: i64 = 0x006b_6579_7761_7264;

    async fn table_exists(conn: &mut sqlx::PgConnection, name: &str) -> StoreResult<bool> {
        sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
            .bind(name)
            .fetch_one(conn)
            .await
            .map_err(|e| map_err(e, "schema"))
    }

    async fn adopt_legacy(pool: &PgPool) -> StoreResult<()> {
        let mut tx = pool.begin().await.map_err(|e| map_err(e, "begin"))?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(ADOPT_LOCK)
            .execute(&mut *tx)
            .await
            .map_err(|e| map_err(e, "migration lock"))?;
        if table_exists(&mut tx, TABLE).await? || !table_exists(&mut tx, LEGACY_TABLE).await? {
            return Ok(());
        }
        tx.ensure_migrations_table(TABLE)
            .await
            .map_err(migrate_err)?;
        for m in POSTGRES.iter() {
            for sql in [
                "INSERT INTO keyward_migrations \
                 (version, description, installed_on, success, checksum, execution_time) \
                 SELECT version, description, installed_on, success, checksum, execution_time \
                 FROM _sqlx_migrations WHERE version = $1 AND checksum = $2",
                "DELETE FROM _sqlx_migrations WHERE version = $1 AND checksum = $2",
            ] {
                sqlx::query(sql)
                    .bind(m.version)
                    .bind(&*m.checksum)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| map_err(e, "migration"))?;
            }
        }
        tx.commit().await.map_err(|e| map_err(e, "commit"))
    }

    /// Applies keyward's pending migrations to `pool` (under sqlx's
    /// advisory lock, so several instances may start at once).
    pub(crate) async fn run(pool: &PgPool) -> StoreResult<()> {
        adopt_legacy(pool).await?;
        POSTGRES.run(pool).await.map_err(migrate_err)
    }

    /// The latest applied keyward migration (0 when none).
    pub(crate) async fn version(pool: &PgPool) -> StoreResult<i64> {
        let mut conn = pool.acquire().await.map_err(|e| map_err(e, "connect"))?;
        if !table_exists(&mut conn, TABLE).await? {
            return Ok(0);
        }
        sqlx::query_scalar("SELECT COALESCE(MAX(version), 0) FROM keyward_migrations WHERE success")
            .fetch_one(&mut *conn)
            .await
            .map_err(|e| map_err(e, "schema"))
    }

    /// Fails unless every migration of this build has been applied.
    pub(crate) async fn check(pool: &PgPool) -> StoreResult<()> {
        let (applied, latest) = (version(pool).await?, latest(&POSTGRES));
        if applied < latest {
            return Err(not_migrated(
                applied,
                latest,
                "keyward::store::PostgresStore::migrate(&pool)",
            ));
        }
        Ok(())
    }
}
