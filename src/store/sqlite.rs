//! [`SqliteStore`]: the embedded default store (feature `sqlite`).
//!
//! One file (or `sqlite::memory:`), WAL mode, a busy timeout, migrations
//! embedded in the binary, recorded in `keyward_migrations` (see
//! [`migrations`](super::migrations)) and applied on
//! [`SqliteStore::connect`]; or a host's pool through
//! [`SqliteStore::from_pool`]. Every
//! change and its audit event are written in one `BEGIN IMMEDIATE`
//! transaction; a usage flush is one transaction of multi-row upserts.
//! Times are stored as unix microseconds.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{QueryBuilder, Row, Sqlite, SqliteConnection};
use time::OffsetDateTime;
use tokio::sync::watch;

use super::migrations::sqlite_impl as migrations;
use super::sql::{self, AppRow, EventRow, KeyColumns, KeyRow, map_err};
use super::{
    AccountQuery, ActorFilter, AppExpectation, AppQuery, EventQuery, GroupTotal, ImportedKey,
    KeyForVerify, KeyQuery, KeyStore, RollupRow, RollupScope, SequencedEvent, StoreError,
    StoreResult, StoredKey, UsageQuery, UsageRecord, UsageTotal, UsageTotalsQuery,
};
use crate::account::{Account, AccountStatus};
use crate::api_key::ApiKey;
use crate::app::{App, AppStatus};
use crate::audit::AuditEvent;
use crate::id::{AccountId, AppId, KeyId, SessionId};
use crate::origin::AllowedOrigin;
use crate::session::Session;

/// Usage rows per multi-row statement (8 parameters each, far below
/// SQLite's limit of 32766).
const USAGE_CHUNK: usize = 1000;

mod rollup;
mod write_tx;

use write_tx::{WriteTurns, WriteTx};

/// A [`KeyStore`] on SQLite. Cheap to clone (a connection pool).
///
/// ```no_run
/// # async fn f() -> Result<(), keyward::store::StoreError> {
/// let store = keyward::store::SqliteStore::connect("sqlite://keyward.db").await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// Bumped after every commit that appended events (this process's
    /// streams wake at once; other processes' poll).
    events_signal: Arc<watch::Sender<u64>>,
    /// This store's writers, in turn (see `write_tx`).
    turns: WriteTurns,
}

impl SqliteStore {
    /// Opens (creating if missing) the database at `url` —
    /// `sqlite://path/to/file.db` or `sqlite::memory:` — in WAL mode with a
    /// 5 s busy timeout, and applies pending migrations.
    ///
    /// An in-memory database lives in a single connection kept open for
    /// the life of the store.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the file cannot be opened,
    /// [`StoreError::Backend`] for a bad URL or a failed migration.
    pub async fn connect(url: &str) -> StoreResult<Self> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::Backend(Box::new(e)))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true);
        let memory = url.contains(":memory:") || url.contains("mode=memory");
        let pool = if memory {
            SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
        } else {
            SqlitePoolOptions::new().max_connections(8)
        }
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options)
        .await
        .map_err(|e| map_err(e, "connect"))?;
        migrations::run(&pool).await?;
        Ok(Self::on_pool(pool))
    }

    /// A store on the host application's `pool`, which must already hold
    /// keyward's schema (see [`migrate`](Self::migrate)); migrates nothing.
    /// keyward's tables share the database with the host's; its migration
    /// history is its own (`keyward_migrations`).
    ///
    /// Open the pool with `foreign_keys(true)` and a busy timeout, as
    /// [`connect`](Self::connect) does; keyward's writes use
    /// `BEGIN IMMEDIATE`.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// use keyward::store::SqliteStore;
    /// let pool = sqlx::SqlitePool::connect("sqlite::memory:").await?;
    /// // The host's own migrations, e.g. sqlx::migrate!().run(&pool), go here too.
    /// SqliteStore::migrate(&pool).await?;
    /// let store = SqliteStore::from_pool(pool).await?;
    /// # Ok::<_, Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Errors
    /// [`StoreError::Backend`] when keyward's migrations are not all
    /// applied (the message says how to apply them); as any store operation.
    pub async fn from_pool(pool: SqlitePool) -> StoreResult<Self> {
        migrations::check(&pool).await?;
        Ok(Self::on_pool(pool))
    }

    /// Applies keyward's pending migrations to `pool`, recording them in
    /// `keyward_migrations` (never in the host's `_sqlx_migrations`).
    ///
    /// # Errors
    /// [`StoreError::Backend`] for a failed migration, or a database whose
    /// recorded keyward migrations differ from this build's.
    pub async fn migrate(pool: &SqlitePool) -> StoreResult<()> {
        migrations::run(pool).await
    }

    /// The schema version (the latest applied keyward migration).
    ///
    /// # Errors
    /// As any store operation.
    pub async fn schema_version(&self) -> StoreResult<i64> {
        migrations::version(&self.pool).await
    }

    /// The connection pool (for health checks and operational queries).
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Closes the pool; later operations fail with
    /// [`StoreError::Unavailable`].
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Whether at least [`COMMON_NAME_HITS`] keys (of any account) have a
    /// name containing `needle` (three characters or more): counted on the
    /// trigram index, at most that many rows read.
    async fn common_name(&self, needle: &str) -> StoreResult<bool> {
        let hits: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM (SELECT 1 FROM key_search_fts \
             WHERE key_search_fts MATCH ? LIMIT ?)",
        )
        .bind(fts_phrase(needle))
        .bind(COMMON_NAME_HITS)
        .fetch_one(&self.pool)
        .await
        .map_err(|e| map_err(e, "read"))?;
        Ok(hits >= COMMON_NAME_HITS)
    }

    /// A page of a name search with few matches (fewer than
    /// [`COMMON_NAME_HITS`] in the whole store): the account's matches in
    /// the list's order from the trigram index and `key_search` (no key
    /// read), then the page's keys, a chunk at a time, with the other
    /// filters. Reads about as many keys as the page holds, however deep
    /// the cursor (left to itself, the planner walked the account's keys in
    /// order and probed each against the matches: 40-95 ms at 1,000,000
    /// keys for a 0.1 % needle).
    async fn rare_name_page(
        &self,
        account: &AccountId,
        q: &KeyQuery,
        needle: &str,
    ) -> StoreResult<Vec<StoredKey>> {
        let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new(
            "SELECT s.key_id FROM key_search_fts f JOIN key_search s ON s.seq = f.rowid \
             WHERE key_search_fts MATCH ",
        );
        qb.push_bind(fts_phrase(needle))
            .push(" AND s.account_id = ")
            .push_bind(account.as_str().to_owned());
        if let Some((at, id)) = &q.after {
            qb.push(" AND (s.created_at, s.key_id) > (")
                .push_bind(us(*at))
                .push(", ")
                .push_bind(id.as_str().to_owned())
                .push(")");
        }
        qb.push(" ORDER BY s.created_at, s.key_id");
        let matches: Vec<String> = qb
            .build_query_scalar()
            .fetch_all(&self.pool)
            .await
            .map_err(|e| map_err(e, "read"))?;
        let mut page = Vec::with_capacity(q.limit.min(matches.len()));
        let mut rest = &matches[..];
        while !rest.is_empty() {
            let wanted = q.limit.saturating_sub(page.len());
            if wanted == 0 {
                break;
            }
            // As many keys as the page still needs (most matches pass the
            // other filters), at least a few, at most a chunk.
            let (chunk, after) = rest.split_at(wanted.clamp(16, RARE_NAME_CHUNK).min(rest.len()));
            rest = after;
            // By id (the primary key's index, named by SQLite): left to
            // itself, the planner walks the account's index for the ORDER
            // BY and probes every key against the ids (230 ms for a page
            // deep in a 1,000,000-key account).
            let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new(format!(
                "SELECT {KEY_COLUMNS} FROM keys INDEXED BY sqlite_autoindex_keys_1 WHERE id IN ("
            ));
            let mut ids = qb.separated(", ");
            for id in chunk {
                ids.push_bind(id.clone());
            }
            qb.push(") AND account_id = ")
                .push_bind(account.as_str().to_owned());
            push_key_filters(&mut qb, q, Some(needle));
            qb.push(" ORDER BY created_at, id LIMIT ")
                .push_bind(i64::try_from(wanted).unwrap_or(i64::MAX));
            let rows = qb
                .build()
                .fetch_all(&self.pool)
                .await
                .map_err(|e| map_err(e, "read"))?;
            for r in &rows {
                page.push(key_row(r)?.into_stored()?);
            }
        }
        Ok(page)
    }

    fn on_pool(pool: SqlitePool) -> Self {
        Self {
            pool,
            events_signal: Arc::new(watch::channel(0).0),
            turns: WriteTurns::default(),
        }
    }

    /// Commits a transaction that appended audit events, then wakes this
    /// process's event streams.
    async fn commit_events(&self, tx: WriteTx) -> StoreResult<()> {
        tx.commit().await.map_err(|e| map_err(e, "commit"))?;
        self.events_signal.send_modify(|n| *n = n.wrapping_add(1));
        Ok(())
    }

    /// The existing imported key found by `query` (one bound text).
    async fn import_lookup(&self, query: &'static str, value: &str) -> StoreResult<Option<KeyId>> {
        let row: Option<(String,)> = sqlx::query_as(query)
            .bind(value)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| map_err(e, "read"))?;
        row.map(|(id,)| sql::id(&id, "key_imports.key_id"))
            .transpose()
    }

    async fn begin(&self) -> StoreResult<WriteTx> {
        self.turns.begin(&self.pool).await
    }
}

/// The filters of a key list after its account: status, application
/// label, application, name (`needle`, lowercased).
fn push_key_filters(qb: &mut QueryBuilder<Sqlite>, q: &KeyQuery, needle: Option<&str>) {
    if let Some(status) = q.status {
        qb.push(" AND status = ").push_bind(sql::status_str(status));
    }
    if let Some(app) = &q.application {
        qb.push(" AND application = ").push_bind(app.clone());
    }
    if let Some(app) = &q.app_id {
        qb.push(" AND app_id = ").push_bind(app.as_str().to_owned());
    }
    if let Some(n) = needle {
        qb.push(" AND instr(name_lower, ")
            .push_bind(n.to_owned())
            .push(") > 0");
    }
}

/// Keys read per statement of a rare name search's page.
const RARE_NAME_CHUNK: usize = 200;

/// A name search with at least this many matching keys walks the keyset
/// order (matches are dense, a page comes soon) instead of collecting every
/// match from the trigram index first.
const COMMON_NAME_HITS: i64 = 2000;

/// `needle` as one FTS5 phrase: with the trigram tokenizer, the rows whose
/// text contains it (case-insensitively).
fn fts_phrase(needle: &str) -> String {
    format!("\"{}\"", needle.replace('"', "\"\""))
}

pub(crate) fn us(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos().div_euclid(1000)).unwrap_or(i64::MAX)
}

fn from_us(v: i64) -> StoreResult<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(v) * 1000)
        .map_err(|_| sql::corrupt("timestamp"))
}

fn opt_from_us(v: Option<i64>) -> StoreResult<Option<OffsetDateTime>> {
    v.map(from_us).transpose()
}

const KEY_COLUMNS: &str = "id, account_id, name, description, application, permissions, status, \
     protected, created_at, updated_at, last_used_at, expires_at, allowed_cidrs, metadata, \
     secret_hash, generation, previous_hash, previous_valid_until, version, session_epoch, app_id, \
     allowed_origins";

/// The joined read of keys for verification, `WHERE k.id {condition}`.
fn key_for_verify_query(condition: &str) -> String {
    sql::key_for_verify_query(KEY_COLUMNS, "a.id = k.app_id", "k.id", condition)
}

/// The keys in rows of [`key_for_verify_query`]: one or more rows per key
/// (one per limits row), in any order.
fn keys_for_verify(rows: &[SqliteRow]) -> StoreResult<Vec<KeyForVerify>> {
    sql::group_keys_for_verify(
        rows,
        |r| r.try_get("id").map_err(|e| map_err(e, "decode")),
        |r| {
            let app_status = r.try_get("app_status").map_err(|e| map_err(e, "decode"))?;
            Ok((key_row(r)?.into_stored()?, app_status))
        },
        |r| super::sqlite_limits::joined(r, "l_"),
    )
}

fn key_row(r: &SqliteRow) -> StoreResult<KeyRow> {
    let g = |e| map_err(e, "decode");
    Ok(KeyRow {
        id: r.try_get("id").map_err(g)?,
        account_id: r.try_get("account_id").map_err(g)?,
        name: r.try_get("name").map_err(g)?,
        description: r.try_get("description").map_err(g)?,
        application: r.try_get("application").map_err(g)?,
        permissions: r.try_get("permissions").map_err(g)?,
        status: r.try_get("status").map_err(g)?,
        protected: r.try_get("protected").map_err(g)?,
        created_at: from_us(r.try_get("created_at").map_err(g)?)?,
        updated_at: from_us(r.try_get("updated_at").map_err(g)?)?,
        last_used_at: opt_from_us(r.try_get("last_used_at").map_err(g)?)?,
        expires_at: opt_from_us(r.try_get("expires_at").map_err(g)?)?,
        allowed_cidrs: r.try_get("allowed_cidrs").map_err(g)?,
        metadata: r.try_get("metadata").map_err(g)?,
        secret_hash: r.try_get("secret_hash").map_err(g)?,
        generation: r.try_get("generation").map_err(g)?,
        previous_hash: r.try_get("previous_hash").map_err(g)?,
        previous_valid_until: opt_from_us(r.try_get("previous_valid_until").map_err(g)?)?,
        version: r.try_get("version").map_err(g)?,
        session_epoch: r.try_get("session_epoch").map_err(g)?,
        app_id: r.try_get("app_id").map_err(g)?,
        allowed_origins: r.try_get("allowed_origins").map_err(g)?,
    })
}

const ACCOUNT_COLUMNS: &str =
    "id, name, parent, permissions, status, created_at, last_used_at, version";

fn account_row(r: &SqliteRow) -> StoreResult<Account> {
    let g = |e| map_err(e, "decode");
    sql::AccountRow {
        id: r.try_get("id").map_err(g)?,
        name: r.try_get("name").map_err(g)?,
        parent: r.try_get("parent").map_err(g)?,
        permissions: r.try_get("permissions").map_err(g)?,
        status: r.try_get("status").map_err(g)?,
        created_at: from_us(r.try_get("created_at").map_err(g)?)?,
        last_used_at: opt_from_us(r.try_get("last_used_at").map_err(g)?)?,
        version: r.try_get("version").map_err(g)?,
    }
    .into_account()
}

fn app_row(r: &SqliteRow) -> StoreResult<App> {
    let g = |e| map_err(e, "decode");
    AppRow {
        id: r.try_get("id").map_err(g)?,
        account_id: r.try_get("account_id").map_err(g)?,
        title: r.try_get("title").map_err(g)?,
        description: r.try_get("description").map_err(g)?,
        status: r.try_get("status").map_err(g)?,
        created_at: from_us(r.try_get("created_at").map_err(g)?)?,
        updated_at: from_us(r.try_get("updated_at").map_err(g)?)?,
        active_keys: r.try_get("active_keys").map_err(g)?,
        inactive_keys: r.try_get("inactive_keys").map_err(g)?,
        protected_keys: r.try_get("protected_keys").map_err(g)?,
        last_used_at: opt_from_us(r.try_get("last_used_at").map_err(g)?)?,
    }
    .into_app()
}

fn event_row(r: &SqliteRow) -> StoreResult<AuditEvent> {
    let g = |e| map_err(e, "decode");
    EventRow {
        id: r.try_get("id").map_err(g)?,
        at: from_us(r.try_get("at").map_err(g)?)?,
        action: r.try_get("action").map_err(g)?,
        account_id: r.try_get("account_id").map_err(g)?,
        key_id: r.try_get("key_id").map_err(g)?,
        session_id: r.try_get("session_id").map_err(g)?,
        app_id: r.try_get("app_id").map_err(g)?,
        actor: r.try_get("actor").map_err(g)?,
        client_ip: r.try_get("client_ip").map_err(g)?,
        details: r.try_get("details").map_err(g)?,
    }
    .into_event()
}

fn usage_row(r: &SqliteRow) -> StoreResult<UsageRecord> {
    let g = |e| map_err(e, "decode");
    let key: String = r.try_get("key_id").map_err(g)?;
    let account: String = r.try_get("account_id").map_err(g)?;
    Ok(UsageRecord {
        key_id: sql::id(&key, "usage.key_id")?,
        account_id: sql::id(&account, "usage.account_id")?,
        origin: r.try_get("origin").map_err(g)?,
        category: r.try_get("category").map_err(g)?,
        hour: from_us(r.try_get("hour").map_err(g)?)?,
        successes: sql::to_u64(r.try_get("successes").map_err(g)?, "usage.successes")?,
        failures: sql::to_u64(r.try_get("failures").map_err(g)?, "usage.failures")?,
        rate_limited: sql::to_u64(r.try_get("rate_limited").map_err(g)?, "usage.rate_limited")?,
        usage_exceeded: sql::to_u64(
            r.try_get("usage_exceeded").map_err(g)?,
            "usage.usage_exceeded",
        )?,
        last_used_at: opt_from_us(r.try_get("last_used_at").map_err(g)?)?,
    })
}

/// Inserts a key's row inside the caller's transaction;
/// [`StoreError::Conflict`] if the id exists.
async fn insert_key_row(conn: &mut SqliteConnection, key: &StoredKey) -> StoreResult<()> {
    let c = KeyColumns::of(key)?;
    let k = &key.key;
    let query = sqlx::query(concat!(
        "INSERT INTO keys (",
        sql::key_bind_columns!(),
        ", id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    ));
    sql::bind_key_columns!(query, key, &c, us)
        .bind(k.id.as_str())
        .execute(conn)
        .await
        .map_err(|e| map_err(e, "key id exists"))?;
    Ok(())
}

/// The columns [`insert_event`] writes, in bind order.
const EVENT_INSERT: &str = "INSERT INTO audit_events (id, at, action, account_id, key_id, \
     session_id, actor, client_ip, details, actor_kind, actor_user_id, actor_user_name, app_id, \
     actor_key_id, parent_id, seq) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, \
     COALESCE(?13, (SELECT app_id FROM keys WHERE id = ?5)), ?14, \
     (SELECT parent FROM accounts WHERE id = ?4), \
     (SELECT COALESCE(MAX(seq), 0) + 1 FROM audit_events))";

/// Binds `e` to [`EVENT_INSERT`] (or a statement extending it).
fn bind_event<'q>(
    q: sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments>,
    e: &'q AuditEvent,
) -> StoreResult<sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments>> {
    Ok(q.bind(&e.id)
        .bind(us(e.at))
        .bind(e.action.as_str())
        .bind(e.account_id.as_str())
        .bind(e.key_id.as_ref().map(KeyId::as_str))
        .bind(e.session_id.as_ref().map(SessionId::as_str))
        .bind(sql::to_json(&e.actor)?)
        .bind(e.client_ip.map(|ip| ip.to_string()))
        .bind(sql::to_json(&e.details)?)
        .bind(e.actor.kind.as_str())
        .bind(e.actor.user_id.as_deref())
        .bind(e.actor.user_name.as_deref())
        .bind(e.app_id.as_ref().map(AppId::as_str))
        .bind(e.actor.key_id.as_ref().map(KeyId::as_str)))
}

/// Appends `event` inside the caller's transaction, at the next position
/// (writers are serialized by `BEGIN IMMEDIATE`, so positions follow
/// commit order).
async fn insert_event(conn: &mut SqliteConnection, e: &AuditEvent) -> StoreResult<()> {
    bind_event(sqlx::query(EVENT_INSERT), e)?
        .execute(conn)
        .await
        .map_err(|e| map_err(e, "audit event id exists"))?;
    Ok(())
}

/// Appends the filters of `q` but the account and the position (each an
/// equality or range on an indexed column; one statement per filter shape).
fn push_event_filters(qb: &mut QueryBuilder<Sqlite>, q: &EventQuery) {
    if let Some(key) = &q.key_id {
        qb.push(" AND key_id = ").push_bind(key.as_str().to_owned());
    }
    if let Some(app) = &q.app_id {
        qb.push(" AND app_id = ").push_bind(app.as_str().to_owned());
    }
    if let Some(action) = q.action {
        qb.push(" AND action = ").push_bind(action.as_str());
    }
    match &q.actor {
        None => {}
        Some(ActorFilter::Kind(k)) => {
            qb.push(" AND actor_kind = ").push_bind(k.as_str());
        }
        Some(ActorFilter::Key(k)) => {
            qb.push(" AND actor_key_id = ")
                .push_bind(k.as_str().to_owned());
        }
        Some(ActorFilter::User(u)) => {
            qb.push(" AND actor_user_id = ").push_bind(u.clone());
        }
    }
    if let Some(from) = q.from {
        qb.push(" AND at >= ").push_bind(us(from));
    }
    if let Some(to) = q.to {
        qb.push(" AND at < ").push_bind(us(to));
    }
}

/// One index range of [`KeyStore::list_events`]: the events of `q` whose
/// `account` column (`account_id`, or `parent_id` for the children) is
/// the account, newest first, at most `q.limit`.
fn push_event_page(qb: &mut QueryBuilder<Sqlite>, q: &EventQuery, account: &str) {
    qb.push("SELECT ")
        .push(sql::EVENT_COLUMNS)
        .push(" FROM audit_events WHERE ")
        .push(account)
        .push(" = ")
        .push_bind(q.account_id.as_str().to_owned());
    push_event_filters(qb, q);
    if let Some((at, id)) = &q.before {
        qb.push(" AND (at, id) < (")
            .push_bind(us(*at))
            .push(", ")
            .push_bind(id.clone())
            .push(")");
    }
    qb.push(" ORDER BY at DESC, id DESC LIMIT ")
        .push_bind(i64::try_from(q.limit).unwrap_or(i64::MAX));
}

#[async_trait]
impl KeyStore for SqliteStore {
    async fn insert_account(&self, account: &Account, event: &AuditEvent) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO accounts (id, name, parent, permissions, created_at, status, name_lower, \
             version) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(account.id.as_str())
        .bind(&account.name)
        .bind(account.parent.as_ref().map(AccountId::as_str))
        .bind(sql::to_json(&account.permissions)?)
        .bind(us(account.created_at))
        .bind(account.status.as_str())
        .bind(account.name.to_lowercase())
        .bind(sql::to_i64(account.version)?)
        .execute(&mut *tx)
        .await
        .map_err(|e| map_err(e, "account id exists"))?;
        insert_event(&mut tx, event).await?;
        self.commit_events(tx).await
    }

    async fn get_account(&self, id: &AccountId) -> StoreResult<Option<Account>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id = ?"
        )))
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| map_err(e, "read"))?;
        row.map(|r| account_row(&r)).transpose()
    }

    async fn list_accounts(
        &self,
        parent: &AccountId,
        q: &AccountQuery,
    ) -> StoreResult<Vec<Account>> {
        let needle = q.name_contains.as_ref().map(|s| s.to_lowercase());
        let status = q.status.map(AccountStatus::as_str);
        let (after_at, after_id) = match &q.after {
            Some((at, id)) => (Some(us(*at)), Some(id.as_str())),
            None => (None, None),
        };
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE parent = ? \
             AND (? IS NULL OR instr(name_lower, ?) > 0) \
             AND (? IS NULL OR status = ?) \
             AND (? IS NULL OR (created_at, id) > (?, ?)) \
             ORDER BY created_at, id LIMIT ?"
        )))
        .bind(parent.as_str())
        .bind(needle.as_deref())
        .bind(needle.as_deref())
        .bind(status)
        .bind(status)
        .bind(after_at)
        .bind(after_at)
        .bind(after_id)
        .bind(i64::try_from(q.limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(|e| map_err(e, "read"))?;
        rows.iter().map(account_row).collect()
    }

    async fn update_account(
        &self,
        account: &Account,
        expected_version: u64,
        event: &AuditEvent,
    ) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        let done = sqlx::query(
            "UPDATE accounts SET name = ?, name_lower = ?, permissions = ?, status = ?, \
             version = ? WHERE id = ? AND version = ?",
        )
        .bind(&account.name)
        .bind(account.name.to_lowercase())
        .bind(sql::to_json(&account.permissions)?)
        .bind(account.status.as_str())
        .bind(sql::to_i64(account.version)?)
        .bind(account.id.as_str())
        .bind(sql::to_i64(expected_version)?)
        .execute(&mut *tx)
        .await
        .map_err(|e| map_err(e, "account update"))?;
        if done.rows_affected() == 0 {
            let exists = sqlx::query("SELECT 1 FROM accounts WHERE id = ?")
                .bind(account.id.as_str())
                .fetch_optional(&mut *tx)
                .await
                .map_err(|e| map_err(e, "read"))?;
            return Err(match exists {
                Some(_) => StoreError::Conflict("account changed since it was read"),
                None => StoreError::NotFound,
            });
        }
        if account.status == AccountStatus::Inactive {
            sqlx::query("DELETE FROM sessions WHERE account_id = ?")
                .bind(account.id.as_str())
                .execute(&mut *tx)
                .await
                .map_err(|e| map_err(e, "delete"))?;
        }
        insert_event(&mut tx, event).await?;
        self.commit_events(tx).await
    }

    async fn insert_key(&self, key: &StoredKey, event: &AuditEvent) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        insert_key_row(&mut tx, key).await?;
        insert_event(&mut tx, event).await?;
        self.commit_events(tx).await
    }

    async fn insert_imported_keys(&self, keys: &[ImportedKey]) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        for k in keys {
            // A row left by a deleted key gives its external id and alias back.
            sqlx::query("DELETE FROM key_imports WHERE (external_id = ? OR alias = ?) AND key_id NOT IN (SELECT id FROM keys)")
                .bind(&k.external_id)
                .bind(&k.alias)
                .execute(&mut *tx)
                .await
                .map_err(|e| map_err(e, "import"))?;
            insert_key_row(&mut tx, &k.stored).await?;
            sqlx::query("INSERT INTO key_imports (key_id, external_id, alias) VALUES (?, ?, ?)")
                .bind(k.stored.key.id.as_str())
                .bind(&k.external_id)
                .bind(&k.alias)
                .execute(&mut *tx)
                .await
                .map_err(|e| map_err(e, "external id or alias already imported"))?;
            insert_event(&mut tx, &k.event).await?;
        }
        self.commit_events(tx).await
    }

    async fn imported_key(&self, external_id: &str) -> StoreResult<Option<KeyId>> {
        self.import_lookup("SELECT i.key_id FROM key_imports i JOIN keys k ON k.id = i.key_id WHERE i.external_id = ?", external_id).await
    }

    async fn key_by_alias(&self, alias: &str) -> StoreResult<Option<KeyId>> {
        self.import_lookup(
            "SELECT i.key_id FROM key_imports i JOIN keys k ON k.id = i.key_id WHERE i.alias = ?",
            alias,
        )
        .await
    }

    async fn get_key(&self, id: &KeyId) -> StoreResult<Option<StoredKey>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {KEY_COLUMNS} FROM keys WHERE id = ?"
        )))
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| map_err(e, "read"))?;
        row.map(|r| key_row(&r)?.into_stored()).transpose()
    }

    async fn get_key_for_verify(&self, id: &KeyId) -> StoreResult<Option<KeyForVerify>> {
        static QUERY: std::sync::LazyLock<String> =
            std::sync::LazyLock::new(|| key_for_verify_query("= ?"));
        let rows = sqlx::query(sqlx::AssertSqlSafe(QUERY.as_str()))
            .bind(id.as_str())
            .fetch_all(&self.pool)
            .await
            .map_err(|e| map_err(e, "read"))?;
        Ok(keys_for_verify(&rows)?.pop())
    }

    async fn get_keys_for_verify(&self, ids: &[KeyId]) -> StoreResult<Vec<KeyForVerify>> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(sql::KEYS_PER_READ) {
            let marks = vec!["?"; chunk.len()].join(", ");
            let query = key_for_verify_query(&format!("IN ({marks})"));
            let mut q = sqlx::query(sqlx::AssertSqlSafe(query));
            for id in chunk {
                q = q.bind(id.as_str());
            }
            let rows = q
                .fetch_all(&self.pool)
                .await
                .map_err(|e| map_err(e, "read"))?;
            out.extend(keys_for_verify(&rows)?);
        }
        Ok(out)
    }

    async fn update_key(
        &self,
        key: &StoredKey,
        expected_version: u64,
        event: &AuditEvent,
    ) -> StoreResult<()> {
        let c = KeyColumns::of(key)?;
        let k = &key.key;
        let mut tx = self.begin().await?;
        // Numbered parameters: `?11` (last_used_at) is read twice.
        let query = sqlx::query(
            "UPDATE keys SET account_id = ?1, name = ?2, name_lower = ?3, description = ?4, \
             application = ?5, permissions = ?6, status = ?7, protected = ?8, created_at = ?9, \
             updated_at = ?10, \
             last_used_at = CASE WHEN last_used_at IS NULL OR last_used_at < ?11 THEN ?11 \
                            ELSE last_used_at END, \
             expires_at = ?12, allowed_cidrs = ?13, metadata = ?14, secret_hash = ?15, \
             generation = ?16, previous_hash = ?17, previous_valid_until = ?18, version = ?19, \
             session_epoch = ?20, app_id = ?21, allowed_origins = ?22 \
             WHERE id = ?23 AND version = ?24",
        );
        let done = sql::bind_key_columns!(query, key, &c, us)
            .bind(k.id.as_str())
            .bind(sql::to_i64(expected_version)?)
            .execute(&mut *tx)
            .await
            .map_err(|e| map_err(e, "key update"))?;
        if done.rows_affected() == 0 {
            let exists = sqlx::query("SELECT 1 FROM keys WHERE id = ?")
                .bind(k.id.as_str())
                .fetch_optional(&mut *tx)
                .await
                .map_err(|e| map_err(e, "read"))?;
            return Err(match exists {
                Some(_) => StoreError::Conflict("key changed since it was read"),
                None => StoreError::NotFound,
            });
        }
        insert_event(&mut tx, event).await?;
        self.commit_events(tx).await
    }

    async fn delete_key(
        &self,
        id: &KeyId,
        expected_version: u64,
        event: &AuditEvent,
    ) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        let version: Option<i64> = sqlx::query_scalar("SELECT version FROM keys WHERE id = ?")
            .bind(id.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(|e| map_err(e, "read"))?;
        match version {
            None => return Err(StoreError::NotFound),
            Some(v) if sql::to_u64(v, "keys.version")? != expected_version => {
                return Err(StoreError::Conflict("key changed since it was read"));
            }
            Some(_) => {}
        }
        sqlx::query("DELETE FROM keys WHERE id = ?")
            .bind(id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(|e| map_err(e, "delete"))?;
        sqlx::query("DELETE FROM sessions WHERE key_id = ?")
            .bind(id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(|e| map_err(e, "delete"))?;
        insert_event(&mut tx, event).await?;
        self.commit_events(tx).await
    }

    async fn list_keys(&self, account: &AccountId, q: &KeyQuery) -> StoreResult<Vec<ApiKey>> {
        Ok(self
            .list_stored_keys(account, q)
            .await?
            .into_iter()
            .map(|s| s.key)
            .collect())
    }

    async fn list_stored_keys(
        &self,
        account: &AccountId,
        q: &KeyQuery,
    ) -> StoreResult<Vec<StoredKey>> {
        let needle = q.name_contains.as_ref().map(|s| s.to_lowercase());
        // Search through the trigram index unless the needle is too short
        // for trigrams or so common that walking the keyset order finds a
        // page sooner (the planner's choice, made by counting index hits).
        if let Some(n) = needle.as_deref()
            && n.chars().count() >= 3
            && !self.common_name(n).await?
        {
            return self.rare_name_page(account, q, n).await;
        }
        // One statement per filter combination, each an index range.
        let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new(format!(
            "SELECT {KEY_COLUMNS} FROM keys WHERE account_id = "
        ));
        qb.push_bind(account.as_str().to_owned());
        push_key_filters(&mut qb, q, needle.as_deref());
        if let Some((at, id)) = &q.after {
            qb.push(" AND (created_at, id) > (")
                .push_bind(us(*at))
                .push(", ")
                .push_bind(id.as_str().to_owned())
                .push(")");
        }
        qb.push(" ORDER BY created_at, id LIMIT ")
            .push_bind(i64::try_from(q.limit).unwrap_or(i64::MAX));
        let rows = qb
            .build()
            .fetch_all(&self.pool)
            .await
            .map_err(|e| map_err(e, "read"))?;
        rows.iter().map(|r| key_row(r)?.into_stored()).collect()
    }

    async fn get_limits(
        &self,
        owners: &[crate::ratelimit::LimitOwner],
    ) -> StoreResult<Vec<super::StoredLimits>> {
        super::sqlite_limits::get(&self.pool, owners).await
    }

    async fn put_limits(
        &self,
        limits: &super::StoredLimits,
        event: &AuditEvent,
    ) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        super::sqlite_limits::put(&mut tx, limits).await?;
        insert_event(&mut tx, event).await?;
        tx.commit().await.map_err(|e| map_err(e, "commit"))
    }

    async fn spend_credits(
        &self,
        owner: &crate::ratelimit::LimitOwner,
        spent: u64,
        period: i64,
    ) -> StoreResult<Option<u64>> {
        super::sqlite_limits::spend(&self.pool, owner, spent, period).await
    }

    async fn insert_app(&self, app: &App, event: &AuditEvent) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO apps (id, account_id, title, title_lower, description, status, \
             created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(app.id.as_str())
        .bind(app.account_id.as_str())
        .bind(&app.title)
        .bind(app.title.to_lowercase())
        .bind(&app.description)
        .bind(app.status.as_str())
        .bind(us(app.created_at))
        .bind(us(app.updated_at))
        .execute(&mut *tx)
        .await
        .map_err(|e| map_err(e, "application id exists"))?;
        insert_event(&mut tx, event).await?;
        self.commit_events(tx).await
    }

    async fn get_app(&self, id: &AppId) -> StoreResult<Option<App>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {} FROM apps a WHERE a.id = ?",
            sql::APP_COLUMNS
        )))
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| map_err(e, "read"))?;
        row.map(|r| app_row(&r)).transpose()
    }

    async fn list_apps(&self, account: &AccountId, q: &AppQuery) -> StoreResult<Vec<App>> {
        let needle = q.title_contains.as_ref().map(|s| s.to_lowercase());
        let status = q.status.map(AppStatus::as_str);
        let (after_at, after_id) = match &q.after {
            Some((at, id)) => (Some(us(*at)), Some(id.as_str())),
            None => (None, None),
        };
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {} FROM apps a WHERE a.account_id = ? \
             AND (? IS NULL OR instr(a.title_lower, ?) > 0) \
             AND (? IS NULL OR a.status = ?) \
             AND (? IS NULL OR (a.created_at, a.id) > (?, ?)) \
             ORDER BY a.created_at, a.id LIMIT ?",
            sql::APP_COLUMNS
        )))
        .bind(account.as_str())
        .bind(needle.as_deref())
        .bind(needle.as_deref())
        .bind(status)
        .bind(status)
        .bind(after_at)
        .bind(after_at)
        .bind(after_id)
        .bind(i64::try_from(q.limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(|e| map_err(e, "read"))?;
        rows.iter().map(app_row).collect()
    }

    async fn update_app(
        &self,
        app: &App,
        expected: &AppExpectation,
        event: &AuditEvent,
    ) -> StoreResult<Vec<KeyId>> {
        // `BEGIN IMMEDIATE`: no other writer until this commits, so what is
        // compared here is what is written.
        let mut tx = self.begin().await?;
        let before: Option<String> = sqlx::query_scalar("SELECT status FROM apps WHERE id = ?")
            .bind(app.id.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(|e| map_err(e, "read"))?;
        let Some(before) = before else {
            return Err(StoreError::NotFound);
        };
        let keys: Vec<(String, i64)> =
            sqlx::query_as("SELECT id, version FROM keys WHERE app_id = ?")
                .bind(app.id.as_str())
                .fetch_all(&mut *tx)
                .await
                .map_err(|e| map_err(e, "read"))?;
        let status = AppStatus::parse(&before).ok_or_else(|| sql::corrupt("apps.status"))?;
        if !expected.holds(status, sql::key_versions(&keys)?) {
            return Err(StoreError::Conflict(
                "application changed since it was read",
            ));
        }
        sqlx::query(
            "UPDATE apps SET title = ?, title_lower = ?, description = ?, status = ?, \
             updated_at = ? WHERE id = ?",
        )
        .bind(&app.title)
        .bind(app.title.to_lowercase())
        .bind(&app.description)
        .bind(app.status.as_str())
        .bind(us(app.updated_at))
        .bind(app.id.as_str())
        .execute(&mut *tx)
        .await
        .map_err(|e| map_err(e, "application update"))?;
        let mut moved = Vec::new();
        if before != app.status.as_str() {
            let ids: Vec<String> = sqlx::query_scalar(
                "UPDATE keys SET version = version + 1 WHERE app_id = ? RETURNING id",
            )
            .bind(app.id.as_str())
            .fetch_all(&mut *tx)
            .await
            .map_err(|e| map_err(e, "application update"))?;
            if app.status == AppStatus::Inactive {
                sqlx::query(
                    "DELETE FROM sessions WHERE key_id IN (SELECT id FROM keys WHERE app_id = ?)",
                )
                .bind(app.id.as_str())
                .execute(&mut *tx)
                .await
                .map_err(|e| map_err(e, "delete"))?;
            }
            moved = ids
                .iter()
                .map(|i| sql::id(i, "keys.id"))
                .collect::<StoreResult<_>>()?;
        }
        insert_event(&mut tx, event).await?;
        self.commit_events(tx).await?;
        Ok(moved)
    }

    async fn delete_app(&self, id: &AppId, event: &AuditEvent) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        let has_keys = sqlx::query("SELECT 1 FROM keys WHERE app_id = ? LIMIT 1")
            .bind(id.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(|e| map_err(e, "read"))?;
        let done = sqlx::query("DELETE FROM apps WHERE id = ?")
            .bind(id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(|e| map_err(e, "delete"))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        if has_keys.is_some() {
            return Err(StoreError::Conflict("application has keys"));
        }
        insert_event(&mut tx, event).await?;
        self.commit_events(tx).await
    }

    async fn list_allowed_origins(&self) -> StoreResult<Vec<AllowedOrigin>> {
        let rows = sqlx::query(
            "SELECT id, origin, created_at FROM allowed_origins ORDER BY created_at, id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(|e| map_err(e, "read"))?;
        rows.iter()
            .map(|r| {
                let g = |e| map_err(e, "decode");
                Ok(AllowedOrigin {
                    id: r.try_get("id").map_err(g)?,
                    origin: r.try_get("origin").map_err(g)?,
                    protected: false,
                    created_at: from_us(r.try_get("created_at").map_err(g)?)?,
                })
            })
            .collect()
    }

    async fn insert_allowed_origin(
        &self,
        o: &AllowedOrigin,
        event: &AuditEvent,
    ) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        sqlx::query("INSERT INTO allowed_origins (id, origin, created_at) VALUES (?, ?, ?)")
            .bind(&o.id)
            .bind(&o.origin)
            .bind(us(o.created_at))
            .execute(&mut *tx)
            .await
            .map_err(|e| map_err(e, "origin already listed"))?;
        insert_event(&mut tx, event).await?;
        self.commit_events(tx).await
    }

    async fn delete_allowed_origin(&self, id: &str, event: &AuditEvent) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        let done = sqlx::query("DELETE FROM allowed_origins WHERE id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(|e| map_err(e, "delete"))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        insert_event(&mut tx, event).await?;
        self.commit_events(tx).await
    }

    async fn insert_session(&self, session: &Session, event: &AuditEvent) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        let done = sqlx::query(
            "INSERT INTO sessions (id, key_id, account_id, created_at, expires_at, \
             key_generation, token_digest, key_epoch) \
             SELECT ?, ?, ?, ?, ?, ?, ?, ? \
             WHERE EXISTS (SELECT 1 FROM keys WHERE id = ? AND session_epoch = ?)",
        )
        .bind(session.id.as_str())
        .bind(session.key_id.as_str())
        .bind(session.account_id.as_str())
        .bind(us(session.created_at))
        .bind(us(session.expires_at))
        .bind(i64::from(session.key_generation))
        .bind(&session.token_digest[..])
        .bind(i64::from(session.key_epoch))
        .bind(session.key_id.as_str())
        .bind(i64::from(session.key_epoch))
        .execute(&mut *tx)
        .await
        .map_err(|e| map_err(e, "session id exists"))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        insert_event(&mut tx, event).await?;
        self.commit_events(tx).await
    }

    async fn get_session(&self, id: &SessionId) -> StoreResult<Option<Session>> {
        let row = sqlx::query(
            "SELECT id, key_id, account_id, created_at, expires_at, key_generation, \
             token_digest, key_epoch FROM sessions WHERE id = ?",
        )
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| map_err(e, "read"))?;
        let Some(r) = row else { return Ok(None) };
        let g = |e| map_err(e, "decode");
        let sid: String = r.try_get("id").map_err(g)?;
        let kid: String = r.try_get("key_id").map_err(g)?;
        let aid: String = r.try_get("account_id").map_err(g)?;
        let digest: Vec<u8> = r.try_get("token_digest").map_err(g)?;
        Ok(Some(Session {
            id: sql::id(&sid, "sessions.id")?,
            key_id: sql::id(&kid, "sessions.key_id")?,
            account_id: sql::id(&aid, "sessions.account_id")?,
            created_at: from_us(r.try_get("created_at").map_err(g)?)?,
            expires_at: from_us(r.try_get("expires_at").map_err(g)?)?,
            key_generation: sql::to_u32(
                r.try_get("key_generation").map_err(g)?,
                "sessions.key_generation",
            )?,
            key_epoch: sql::to_u32(r.try_get("key_epoch").map_err(g)?, "sessions.key_epoch")?,
            token_digest: digest
                .try_into()
                .map_err(|_| sql::corrupt("sessions.token_digest"))?,
        }))
    }

    async fn delete_session(&self, id: &SessionId, event: &AuditEvent) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        let done = sqlx::query("DELETE FROM sessions WHERE id = ?")
            .bind(id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(|e| map_err(e, "delete"))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        insert_event(&mut tx, event).await?;
        self.commit_events(tx).await
    }

    async fn purge_expired_sessions(&self, now: OffsetDateTime) -> StoreResult<u64> {
        let done = sqlx::query("DELETE FROM sessions WHERE expires_at <= ?")
            .bind(us(now))
            .execute(&self.pool)
            .await
            .map_err(|e| map_err(e, "delete"))?;
        Ok(done.rows_affected())
    }

    async fn list_events(&self, q: &EventQuery) -> StoreResult<Vec<AuditEvent>> {
        // One statement per filter shape, each an index range walked newest
        // first; with children, two ranges (the account's own events, its
        // children's by `parent_id`) merged.
        let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new("");
        if q.children {
            qb.push("SELECT * FROM (");
            push_event_page(&mut qb, q, "account_id");
            qb.push(") UNION ALL SELECT * FROM (");
            push_event_page(&mut qb, q, "parent_id");
            qb.push(") ORDER BY at DESC, id DESC LIMIT ")
                .push_bind(i64::try_from(q.limit).unwrap_or(i64::MAX));
        } else {
            push_event_page(&mut qb, q, "account_id");
        }
        let rows = qb
            .build()
            .fetch_all(&self.pool)
            .await
            .map_err(|e| map_err(e, "read"))?;
        rows.iter().map(event_row).collect()
    }

    async fn list_events_since(
        &self,
        q: &EventQuery,
        after: u64,
    ) -> StoreResult<Vec<SequencedEvent>> {
        // The range of positions after `after` (the seq index: a tail reads
        // the few newest rows, whatever the account's size), filtered.
        let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new("SELECT seq, ");
        qb.push(sql::EVENT_COLUMNS)
            .push(" FROM audit_events INDEXED BY audit_by_seq WHERE seq > ")
            .push_bind(i64::try_from(after).unwrap_or(i64::MAX))
            .push(" AND (account_id = ")
            .push_bind(q.account_id.as_str().to_owned());
        if q.children {
            qb.push(" OR parent_id = ")
                .push_bind(q.account_id.as_str().to_owned());
        }
        qb.push(")");
        push_event_filters(&mut qb, q);
        qb.push(" ORDER BY seq LIMIT ")
            .push_bind(i64::try_from(q.limit).unwrap_or(i64::MAX));
        let rows = qb
            .build()
            .fetch_all(&self.pool)
            .await
            .map_err(|e| map_err(e, "read"))?;
        rows.iter()
            .map(|r| {
                let seq: i64 = r.try_get("seq").map_err(|e| map_err(e, "decode"))?;
                Ok(SequencedEvent {
                    seq: sql::to_u64(seq, "audit.seq")?,
                    event: event_row(r)?,
                })
            })
            .collect()
    }

    async fn last_event_seq(&self) -> StoreResult<u64> {
        let seq: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM audit_events")
            .fetch_one(&self.pool)
            .await
            .map_err(|e| map_err(e, "read"))?;
        sql::to_u64(seq, "audit.seq")
    }

    async fn record_refusals(&self, events: &[AuditEvent]) -> StoreResult<()> {
        if events.is_empty() {
            return Ok(());
        }
        let upsert = format!(
            "{EVENT_INSERT} ON CONFLICT (id) DO UPDATE SET \
             details = json_set(audit_events.details, '$.count', \
                 COALESCE(json_extract(audit_events.details, '$.count'), 1) \
                 + COALESCE(json_extract(excluded.details, '$.count'), 1)), \
             client_ip = excluded.client_ip, seq = excluded.seq"
        );
        let mut tx = self.begin().await?;
        for e in events {
            bind_event(sqlx::query(sqlx::AssertSqlSafe(upsert.as_str())), e)?
                .execute(&mut *tx)
                .await
                .map_err(|e| map_err(e, "refusal"))?;
        }
        self.commit_events(tx).await
    }

    fn event_signal(&self) -> Option<watch::Receiver<u64>> {
        Some(self.events_signal.subscribe())
    }

    async fn record_usage(&self, batch: &[UsageRecord]) -> StoreResult<()> {
        let rows = sql::merge_usage(batch);
        if rows.is_empty() {
            return Ok(());
        }
        let latest = sql::last_used(&rows);
        let mut tx = self.begin().await?;
        for chunk in rows.chunks(USAGE_CHUNK) {
            let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new(
                "INSERT INTO usage (key_id, origin, category, hour, account_id, successes, \
                 failures, rate_limited, usage_exceeded, last_used_at) ",
            );
            let mut err = None;
            qb.push_values(chunk, |mut b, r| {
                let counts =
                    [r.successes, r.failures, r.rate_limited, r.usage_exceeded].map(sql::to_i64);
                let [s, f, l, x] = counts.map(|c| {
                    c.unwrap_or_else(|e| {
                        err = Some(e);
                        0
                    })
                });
                b.push_bind(r.key_id.as_str().to_owned())
                    .push_bind(r.origin.clone())
                    .push_bind(r.category.clone())
                    .push_bind(us(r.hour))
                    .push_bind(r.account_id.as_str().to_owned())
                    .push_bind(s)
                    .push_bind(f)
                    .push_bind(l)
                    .push_bind(x)
                    .push_bind(r.last_used_at.map(us));
            });
            if let Some(e) = err {
                return Err(e);
            }
            qb.push(
                " ON CONFLICT (key_id, origin, category, hour) DO UPDATE SET \
                 successes = successes + excluded.successes, \
                 failures = failures + excluded.failures, \
                 rate_limited = rate_limited + excluded.rate_limited, \
                 usage_exceeded = usage_exceeded + excluded.usage_exceeded, \
                 last_used_at = CASE WHEN excluded.last_used_at IS NULL THEN last_used_at \
                   WHEN last_used_at IS NULL OR excluded.last_used_at > last_used_at \
                   THEN excluded.last_used_at ELSE last_used_at END",
            );
            qb.build()
                .execute(&mut *tx)
                .await
                .map_err(|e| map_err(e, "usage"))?;
        }
        for chunk in latest.chunks(USAGE_CHUNK) {
            let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new("WITH v(id, t) AS (");
            qb.push_values(chunk, |mut b, (id, t)| {
                b.push_bind(id.as_str().to_owned()).push_bind(us(*t));
            });
            qb.push(
                ") UPDATE keys SET last_used_at = CASE WHEN keys.last_used_at IS NULL \
                 OR keys.last_used_at < v.t THEN v.t ELSE keys.last_used_at END \
                 FROM v WHERE keys.id = v.id",
            );
            qb.build()
                .execute(&mut *tx)
                .await
                .map_err(|e| map_err(e, "usage"))?;
        }
        rollup::record(&mut tx, &rows).await?;
        tx.commit().await.map_err(|e| map_err(e, "commit"))
    }

    async fn usage_ranked(
        &self,
        scope: &RollupScope,
        hour: OffsetDateTime,
        after: Option<&(u64, String)>,
        limit: usize,
    ) -> StoreResult<Vec<GroupTotal>> {
        rollup::ranked(&self.pool, scope, hour, after, limit).await
    }

    async fn usage_rollup(
        &self,
        scope: &RollupScope,
        groups: &[String],
        from: OffsetDateTime,
        to: OffsetDateTime,
    ) -> StoreResult<Vec<RollupRow>> {
        rollup::rows(&self.pool, scope, groups, from, to).await
    }

    async fn usage_group_totals(
        &self,
        scope: &RollupScope,
        from: OffsetDateTime,
        to: OffsetDateTime,
        after: Option<&(u64, String)>,
        limit: usize,
    ) -> StoreResult<Vec<GroupTotal>> {
        rollup::totals(&self.pool, scope, from, to, after, limit).await
    }

    async fn group_names(
        &self,
        kind: super::UsageGroupKind,
        ids: &[String],
    ) -> StoreResult<Vec<(String, String)>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let (table, column) = sql::group_name_column(kind);
        let mut names = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(USAGE_CHUNK) {
            let mut qb: QueryBuilder<Sqlite> =
                QueryBuilder::new(format!("SELECT id, {column} FROM {table} WHERE id IN ("));
            let mut list = qb.separated(", ");
            for id in chunk {
                list.push_bind(id.clone());
            }
            qb.push(")");
            names.extend(
                qb.build_query_as::<(String, String)>()
                    .fetch_all(&self.pool)
                    .await
                    .map_err(|e| map_err(e, "read"))?,
            );
        }
        Ok(names)
    }

    async fn usage_totals(&self, q: &UsageTotalsQuery) -> StoreResult<Vec<UsageTotal>> {
        // One statement per filter combination over the (account, hour)
        // index range; grouped and ordered by volume in the database.
        let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new(
            "SELECT key_id, SUM(successes) AS s, SUM(failures) AS f, SUM(rate_limited) AS l, \
             SUM(usage_exceeded) AS x FROM usage WHERE account_id = ",
        );
        qb.push_bind(q.account_id.as_str().to_owned())
            .push(" AND hour >= ")
            .push_bind(us(q.from))
            .push(" AND hour < ")
            .push_bind(us(q.to));
        if let Some(origin) = &q.origin {
            qb.push(" AND origin = ").push_bind(origin.clone());
        }
        if let Some(category) = &q.category {
            qb.push(" AND category = ").push_bind(category.clone());
        }
        qb.push(" GROUP BY key_id");
        if let Some((volume, key)) = &q.after {
            let volume = sql::to_i64(*volume)?;
            qb.push(" HAVING (")
                .push(sql::VOLUME_SUM)
                .push(" < ")
                .push_bind(volume)
                .push(" OR (")
                .push(sql::VOLUME_SUM)
                .push(" = ")
                .push_bind(volume)
                .push(" AND key_id > ")
                .push_bind(key.as_str().to_owned())
                .push("))");
        }
        qb.push(" ORDER BY ")
            .push(sql::VOLUME_SUM)
            .push(" DESC, key_id LIMIT ")
            .push_bind(i64::try_from(q.limit).unwrap_or(i64::MAX));
        let rows = qb
            .build()
            .fetch_all(&self.pool)
            .await
            .map_err(|e| map_err(e, "read"))?;
        rows.iter()
            .map(|r| {
                let g = |e| map_err(e, "decode");
                let key: String = r.try_get("key_id").map_err(g)?;
                Ok(UsageTotal {
                    key_id: sql::id(&key, "usage.key_id")?,
                    successes: sql::to_u64(r.try_get("s").map_err(g)?, "usage.successes")?,
                    failures: sql::to_u64(r.try_get("f").map_err(g)?, "usage.failures")?,
                    rate_limited: sql::to_u64(r.try_get("l").map_err(g)?, "usage.rate_limited")?,
                    usage_exceeded: sql::to_u64(
                        r.try_get("x").map_err(g)?,
                        "usage.usage_exceeded",
                    )?,
                })
            })
            .collect()
    }

    async fn usage(&self, q: &UsageQuery) -> StoreResult<Vec<UsageRecord>> {
        // One statement per filter: with a key, the primary key's range
        // (key, origin, category, hour); without, (account, hour). With a
        // key the account is compared as `+account_id`, which no index
        // serves: otherwise the planner may pick (account, hour) and read
        // every key's rows of the range (180 ms at 1,000,000 keys).
        let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new(format!(
            "SELECT key_id, origin, category, hour, account_id, successes, failures, \
             rate_limited, usage_exceeded, last_used_at FROM usage WHERE {} = ",
            if q.key_id.is_some() {
                "+account_id"
            } else {
                "account_id"
            }
        ));
        qb.push_bind(q.account_id.as_str().to_owned());
        if let Some(key) = &q.key_id {
            qb.push(" AND key_id = ").push_bind(key.as_str().to_owned());
        }
        if let Some(origin) = &q.origin {
            qb.push(" AND origin = ").push_bind(origin.clone());
        }
        qb.push(" AND hour >= ")
            .push_bind(us(q.from))
            .push(" AND hour < ")
            .push_bind(us(q.to))
            .push(" ORDER BY hour, key_id, origin, category");
        let rows = qb
            .build()
            .fetch_all(&self.pool)
            .await
            .map_err(|e| map_err(e, "read"))?;
        rows.iter().map(usage_row).collect()
    }
}
