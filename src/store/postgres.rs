//! [`PostgresStore`]: the store for many instances (feature `postgres`),
//! with a change feed so revocations reach every instance in milliseconds.
//!
//! Every change and its audit event are written in one transaction; a
//! revoking change (key update, rotation, deletion, session end) also
//! appends a row to `revocations` and `pg_notify`s the channel in that same
//! transaction, so the notification exists if and only if the change
//! committed. Migrations are applied on connect under sqlx's advisory lock,
//! so several instances may start at once, and recorded in
//! `keyward_migrations` (see [`migrations`](super::migrations)); a host's
//! pool is taken as is by [`PostgresStore::from_pool`].

mod feed;
mod options;
mod rollup;

use std::sync::Arc;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions, PgRow};
use sqlx::{ConnectOptions, Connection, Postgres, QueryBuilder, Row};
use time::OffsetDateTime;
use tokio::sync::{broadcast, watch};

pub use options::PostgresOptions;

use super::migrations::postgres_impl as migrations;
use super::sql::{self, AppRow, EventRow, KeyColumns, KeyRow, map_err};
use super::{
    AccountQuery, ActorFilter, AppExpectation, AppQuery, Change, EventQuery, GroupTotal,
    ImportedKey, KeyForVerify, KeyQuery, KeyStore, RollupRow, RollupScope, SequencedEvent,
    StoreError, StoreResult, StoredKey, UsageQuery, UsageRecord, UsageTotal, UsageTotalsQuery,
};
use crate::account::{Account, AccountStatus};
use crate::api_key::ApiKey;
use crate::app::{App, AppStatus};
use crate::audit::AuditEvent;
use crate::id::{AccountId, AppId, KeyId, SessionId};
use crate::origin::AllowedOrigin;
use crate::session::Session;

/// A [`KeyStore`] on PostgreSQL with a LISTEN/NOTIFY change feed. Cheap to
/// clone; the feed's background tasks stop when the last clone is dropped.
///
/// ```no_run
/// # async fn f() -> Result<(), keyward::store::StoreError> {
/// use keyward::store::{PostgresOptions, PostgresStore};
/// let store = PostgresStore::connect_with(
///     "postgres://keyward@db/keyward",
///     PostgresOptions::new().max_connections(20),
/// )
/// .await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct PostgresStore {
    pool: PgPool,
    channel: Arc<str>,
    feed: Option<Arc<Feed>>,
}

struct Feed {
    tx: broadcast::Sender<Change>,
    /// Bumped by the listener on every audit notification (any instance's).
    events: watch::Sender<u64>,
    /// Dropped with the last store clone, which stops the feed tasks.
    _stop: watch::Sender<()>,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("channel", &self.channel)
            .field("feed", &self.feed.is_some())
            .finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Connects with the default [`PostgresOptions`] and applies pending
    /// migrations.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the server cannot be reached,
    /// [`StoreError::Backend`] for a bad URL or a failed migration.
    pub async fn connect(url: &str) -> StoreResult<Self> {
        Self::connect_with(url, PostgresOptions::default()).await
    }

    /// Connects with `options` and applies pending migrations (unless
    /// [`PostgresOptions::migrate`] is off: then the schema must be
    /// current). Inside a Tokio runtime with the feed on, starts the feed's
    /// listener and poller.
    ///
    /// # Errors
    /// As [`connect`](Self::connect); [`StoreError::Backend`] for an
    /// invalid schema or channel name, or (migrations off) a schema behind
    /// this build.
    pub async fn connect_with(url: &str, options: PostgresOptions) -> StoreResult<Self> {
        let mut base: PgConnectOptions = url
            .parse()
            .map_err(|e: sqlx::Error| StoreError::Backend(Box::new(e)))?;
        if !options::plain_identifier(&options.channel) {
            return Err(StoreError::Backend("invalid channel name".into()));
        }
        if let Some(schema) = &options.schema {
            if !options::plain_identifier(schema) {
                return Err(StoreError::Backend("invalid schema name".into()));
            }
            if options.migrate {
                let mut conn = base.connect().await.map_err(|e| map_err(e, "connect"))?;
                let created = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "CREATE SCHEMA IF NOT EXISTS \"{schema}\""
                )))
                .execute(&mut conn)
                .await;
                // Two instances creating the schema at once: one wins.
                match created.map_err(|e| map_err(e, "schema exists")) {
                    Ok(_) | Err(StoreError::Conflict(_)) => {}
                    Err(e) => return Err(e),
                }
                let _ = conn.close().await;
            }
            base = base.options([("search_path", schema.as_str())]);
        }
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections)
            .acquire_timeout(options.acquire_timeout)
            .connect_with(base.clone().application_name(&options.application_name))
            .await
            .map_err(|e| map_err(e, "connect"))?;
        if options.migrate {
            migrations::run(&pool).await?;
        } else {
            migrations::check(&pool).await?;
        }
        let start_after = Self::feed_start(&pool, &options).await;
        Ok(Self::on_pool(pool, base, &options, start_after))
    }

    /// A store on the host application's `pool`, which must already hold
    /// keyward's schema (see [`migrate`](Self::migrate)); migrates nothing.
    /// keyward's tables are those in the pool's `search_path`; its
    /// migration history is its own (`keyward_migrations`). `options` sets
    /// the change feed (whose listener connects with the pool's connect
    /// options); its pool size, timeout and schema do not apply (set them
    /// on the pool; for a schema, `search_path` in its connect options).
    ///
    /// ```no_run
    /// # async fn f() -> Result<(), Box<dyn std::error::Error>> {
    /// use keyward::store::{PostgresOptions, PostgresStore};
    /// let pool = sqlx::PgPool::connect("postgres://app@db/app").await?;
    /// // The host's own migrations, e.g. sqlx::migrate!().run(&pool), go here too.
    /// PostgresStore::migrate(&pool).await?;
    /// let store = PostgresStore::from_pool(pool, PostgresOptions::new()).await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`StoreError::Backend`] for a schema set in `options`, an invalid
    /// channel name, or keyward's migrations not all applied (the message
    /// says how to apply them); as any store operation.
    pub async fn from_pool(pool: PgPool, options: PostgresOptions) -> StoreResult<Self> {
        if options.schema.is_some() {
            return Err(StoreError::Backend(
                "PostgresStore::from_pool: set the schema through the pool's search_path, not PostgresOptions::schema".into(),
            ));
        }
        if !options::plain_identifier(&options.channel) {
            return Err(StoreError::Backend("invalid channel name".into()));
        }
        migrations::check(&pool).await?;
        let base = (*pool.connect_options()).clone();
        let start_after = Self::feed_start(&pool, &options).await;
        Ok(Self::on_pool(pool, base, &options, start_after))
    }

    /// Applies keyward's pending migrations to `pool` (in its
    /// `search_path`), recording them in `keyward_migrations` (never in the
    /// host's `_sqlx_migrations`), under sqlx's advisory lock.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the server cannot be reached,
    /// [`StoreError::Backend`] for a failed migration or a database whose
    /// recorded keyward migrations differ from this build's.
    pub async fn migrate(pool: &PgPool) -> StoreResult<()> {
        migrations::run(pool).await
    }

    /// Where the feed's poll starts: the last revocation now, so that no
    /// change made after the store exists is missed (`None` without a
    /// feed, or when it cannot be read: the poll then starts later, with a
    /// reset).
    async fn feed_start(pool: &PgPool, options: &PostgresOptions) -> Option<i64> {
        match options.feed {
            true => feed::last_id(pool).await,
            false => None,
        }
    }

    /// The store on `pool`, with its feed when `options` turns it on and a
    /// Tokio runtime is running; the feed's poll starts after revocation
    /// `start_after`.
    fn on_pool(
        pool: PgPool,
        base: PgConnectOptions,
        options: &PostgresOptions,
        start_after: Option<i64>,
    ) -> Self {
        let feed = match (options.feed, tokio::runtime::Handle::try_current()) {
            (true, Ok(rt)) => {
                let listener_pool = PgPoolOptions::new()
                    .max_connections(1)
                    .acquire_timeout(options.acquire_timeout)
                    .max_lifetime(None)
                    .idle_timeout(None)
                    .connect_lazy_with(
                        base.application_name(&format!("{}-feed", options.application_name)),
                    );
                let (tx, _) = broadcast::channel(4096);
                let (stop_tx, stop_rx) = watch::channel(());
                let listening = feed::Listening::default();
                let (events, _) = watch::channel(0);
                rt.spawn(feed::listen(
                    listener_pool,
                    options.channel.clone(),
                    tx.clone(),
                    listening.clone(),
                    events.clone(),
                    stop_rx.clone(),
                ));
                let settings = feed::PollSettings {
                    every: options.poll_interval,
                    prune_after: options.prune_after,
                    start_after,
                };
                rt.spawn(feed::poll(
                    pool.clone(),
                    settings,
                    tx.clone(),
                    listening,
                    stop_rx,
                ));
                Some(Arc::new(Feed {
                    tx,
                    events,
                    _stop: stop_tx,
                }))
            }
            _ => None,
        };
        Self {
            pool,
            channel: options.channel.as_str().into(),
            feed,
        }
    }

    /// The schema version (the latest applied keyward migration).
    ///
    /// # Errors
    /// As any store operation.
    pub async fn schema_version(&self) -> StoreResult<i64> {
        migrations::version(&self.pool).await
    }

    /// The connection pool (for health checks and operational queries).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Closes the pool; later operations fail with
    /// [`StoreError::Unavailable`].
    pub async fn close(&self) {
        self.pool.close().await;
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

    async fn begin(&self) -> StoreResult<sqlx::Transaction<'static, sqlx::Postgres>> {
        self.pool.begin().await.map_err(|e| map_err(e, "begin"))
    }

    /// Records `change` in `revocations` and notifies the channel, inside
    /// the caller's transaction.
    async fn announce(&self, conn: &mut PgConnection, change: &Change) -> StoreResult<()> {
        let (kind, id) = feed::kind_and_ref(change);
        sqlx::query(
            "WITH r AS (INSERT INTO revocations (kind, ref_id) VALUES ($2, $3) RETURNING id) \
             SELECT pg_notify($1, $2 || ':' || $3) FROM r",
        )
        .bind(&*self.channel)
        .bind(kind)
        .bind(id)
        .execute(conn)
        .await
        .map_err(|e| map_err(e, "revocation"))?;
        Ok(())
    }
}

/// A LIKE pattern matching text that contains `needle` (`\\` escapes).
fn like_contains(needle: &str) -> String {
    let mut p = String::with_capacity(needle.len() + 2);
    p.push('%');
    for c in needle.chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

const KEY_COLUMNS: &str = "id, account_id, name, description, application, \
     permissions::text AS permissions, status, protected, created_at, updated_at, last_used_at, \
     expires_at, allowed_cidrs::text AS allowed_cidrs, metadata::text AS metadata, secret_hash, \
     generation, previous_hash, previous_valid_until, version, session_epoch, app_id, \
     allowed_origins::text AS allowed_origins";

/// The joined read of keys for verification, `WHERE k.id {condition}`.
/// `apps.id` and `keys.id` are "C", the other ids the default collation:
/// each join compares in the collation of the index it looks up.
fn key_for_verify_query(condition: &str) -> String {
    sql::key_for_verify_query(
        KEY_COLUMNS,
        "a.id = k.app_id COLLATE \"C\"",
        "k.id COLLATE \"default\"",
        condition,
    )
}

/// The keys in rows of [`key_for_verify_query`]: one or more rows per key
/// (one per limits row), in any order.
fn keys_for_verify(rows: &[PgRow]) -> StoreResult<Vec<KeyForVerify>> {
    sql::group_keys_for_verify(
        rows,
        |r| r.try_get("id").map_err(|e| map_err(e, "decode")),
        |r| {
            let app_status = r.try_get("app_status").map_err(|e| map_err(e, "decode"))?;
            Ok((key_row(r)?.into_stored()?, app_status))
        },
        |r| super::postgres_limits::joined(r, "l_"),
    )
}

fn key_row(r: &PgRow) -> StoreResult<KeyRow> {
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
        created_at: r.try_get("created_at").map_err(g)?,
        updated_at: r.try_get("updated_at").map_err(g)?,
        last_used_at: r.try_get("last_used_at").map_err(g)?,
        expires_at: r.try_get("expires_at").map_err(g)?,
        allowed_cidrs: r.try_get("allowed_cidrs").map_err(g)?,
        metadata: r.try_get("metadata").map_err(g)?,
        secret_hash: r.try_get("secret_hash").map_err(g)?,
        generation: r.try_get("generation").map_err(g)?,
        previous_hash: r.try_get("previous_hash").map_err(g)?,
        previous_valid_until: r.try_get("previous_valid_until").map_err(g)?,
        version: r.try_get("version").map_err(g)?,
        session_epoch: r.try_get("session_epoch").map_err(g)?,
        app_id: r.try_get("app_id").map_err(g)?,
        allowed_origins: r.try_get("allowed_origins").map_err(g)?,
    })
}

/// [`sql::APP_COLUMNS`] for PostgreSQL: `apps.id` is `COLLATE "C"` and
/// `keys.app_id` is not, so the key counts compare in the default
/// collation, that of the `keys_by_app_status` index (else each count is a scan
/// of every key).
fn app_columns() -> &'static str {
    static COLUMNS: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        sql::APP_COLUMNS.replace("k.app_id = a.id", "k.app_id = a.id COLLATE \"default\"")
    });
    &COLUMNS
}

const ACCOUNT_COLUMNS: &str =
    "id, name, parent, permissions::text AS permissions, status, created_at, last_used_at, version";

fn account_row(r: &PgRow) -> StoreResult<Account> {
    let g = |e| map_err(e, "decode");
    sql::AccountRow {
        id: r.try_get("id").map_err(g)?,
        name: r.try_get("name").map_err(g)?,
        parent: r.try_get("parent").map_err(g)?,
        permissions: r.try_get("permissions").map_err(g)?,
        status: r.try_get("status").map_err(g)?,
        created_at: r.try_get("created_at").map_err(g)?,
        last_used_at: r.try_get("last_used_at").map_err(g)?,
        version: r.try_get("version").map_err(g)?,
    }
    .into_account()
}

fn app_row(r: &PgRow) -> StoreResult<App> {
    let g = |e| map_err(e, "decode");
    AppRow {
        id: r.try_get("id").map_err(g)?,
        account_id: r.try_get("account_id").map_err(g)?,
        title: r.try_get("title").map_err(g)?,
        description: r.try_get("description").map_err(g)?,
        status: r.try_get("status").map_err(g)?,
        created_at: r.try_get("created_at").map_err(g)?,
        updated_at: r.try_get("updated_at").map_err(g)?,
        active_keys: r.try_get("active_keys").map_err(g)?,
        inactive_keys: r.try_get("inactive_keys").map_err(g)?,
        protected_keys: r.try_get("protected_keys").map_err(g)?,
        last_used_at: r.try_get("last_used_at").map_err(g)?,
    }
    .into_app()
}

fn event_row(r: &PgRow) -> StoreResult<AuditEvent> {
    let g = |e| map_err(e, "decode");
    EventRow {
        id: r.try_get("id").map_err(g)?,
        at: r.try_get("at").map_err(g)?,
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

fn usage_row(r: &PgRow) -> StoreResult<UsageRecord> {
    let g = |e| map_err(e, "decode");
    let key: String = r.try_get("key_id").map_err(g)?;
    let account: String = r.try_get("account_id").map_err(g)?;
    Ok(UsageRecord {
        key_id: sql::id(&key, "usage.key_id")?,
        account_id: sql::id(&account, "usage.account_id")?,
        origin: r.try_get("origin").map_err(g)?,
        category: r.try_get("category").map_err(g)?,
        hour: r.try_get("hour").map_err(g)?,
        successes: sql::to_u64(r.try_get("successes").map_err(g)?, "usage.successes")?,
        failures: sql::to_u64(r.try_get("failures").map_err(g)?, "usage.failures")?,
        rate_limited: sql::to_u64(r.try_get("rate_limited").map_err(g)?, "usage.rate_limited")?,
        usage_exceeded: sql::to_u64(
            r.try_get("usage_exceeded").map_err(g)?,
            "usage.usage_exceeded",
        )?,
        last_used_at: r.try_get("last_used_at").map_err(g)?,
    })
}

/// The columns [`insert_event`] writes, in bind order (`$15` is the feed's
/// channel, notified as `<channel>_events` when the insert commits).
const EVENT_INSERT: &str = "INSERT INTO audit_events (id, at, action, account_id, key_id, \
     session_id, actor, client_ip, details, actor_kind, actor_user_id, actor_user_name, app_id, \
     actor_key_id, parent_id, seq) VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8, $9::jsonb, \
     $10, $11, $12, COALESCE($13, (SELECT app_id FROM keys WHERE id = $5)), $14, \
     (SELECT parent FROM accounts WHERE id = $4), \
     (SELECT COALESCE(MAX(seq), 0) + 1 FROM audit_events))";

/// Serializes audit inserts until their transactions end, so positions
/// (`seq`) follow commit order; keyed by schema, so stores in other
/// schemas do not wait for each other.
const EVENT_LOCK: &str =
    "SELECT pg_advisory_xact_lock(hashtext(current_schema() || '.keyward_audit_seq'))";

/// Binds `e` and `channel` to [`EVENT_INSERT`] (or a statement extending it).
fn bind_event<'q>(
    q: sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments>,
    e: &'q AuditEvent,
    channel: &'q str,
) -> StoreResult<sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments>> {
    Ok(q.bind(&e.id)
        .bind(e.at)
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
        .bind(e.actor.key_id.as_ref().map(KeyId::as_str))
        .bind(channel))
}

/// Appends `e` inside the caller's transaction at the next position, and
/// notifies `<channel>_events` (delivered when it commits). The caller
/// commits right after: the position lock is held to the end of the
/// transaction.
async fn insert_event(conn: &mut PgConnection, e: &AuditEvent, channel: &str) -> StoreResult<()> {
    sqlx::query(EVENT_LOCK)
        .execute(&mut *conn)
        .await
        .map_err(|e| map_err(e, "audit lock"))?;
    let sql = format!(
        "WITH e AS ({EVENT_INSERT} RETURNING 1) SELECT pg_notify($15 || '_events', '') FROM e"
    );
    bind_event(sqlx::query(sqlx::AssertSqlSafe(sql)), e, channel)?
        .execute(conn)
        .await
        .map_err(|e| map_err(e, "audit event id exists"))?;
    Ok(())
}

/// Inserts a key's row inside the caller's transaction;
/// [`StoreError::Conflict`] if the id exists.
/// Holds `key`'s application row `FOR SHARE` until the transaction ends,
/// so a key written into an application (created there, moved there)
/// serializes with that application's switch-off, which locks the row
/// `FOR UPDATE` and then compares the keys it judged: whichever commits
/// second sees the other's write (the switch-off then answers Conflict and
/// is judged again).
async fn lock_app_shared(conn: &mut PgConnection, key: &StoredKey) -> StoreResult<()> {
    if let Some(app) = &key.key.app_id {
        sqlx::query("SELECT 1 FROM apps WHERE id = $1 FOR SHARE")
            .bind(app.as_str())
            .fetch_optional(conn)
            .await
            .map_err(|e| map_err(e, "read"))?;
    }
    Ok(())
}

async fn insert_key_row(conn: &mut PgConnection, key: &StoredKey) -> StoreResult<()> {
    lock_app_shared(&mut *conn, key).await?;
    let c = KeyColumns::of(key)?;
    let k = &key.key;
    let query = sqlx::query(concat!(
        "INSERT INTO keys (",
        sql::key_bind_columns!(),
        ", id) VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8, $9, $10, $11, $12, $13::jsonb, \
         $14::jsonb, $15, $16, $17, $18, $19, $20, $21, $22::jsonb, $23)",
    ));
    sql::bind_key_columns!(query, key, &c, |t: OffsetDateTime| t)
        .bind(k.id.as_str())
        .execute(conn)
        .await
        .map_err(|e| map_err(e, "key id exists"))?;
    Ok(())
}

/// Appends the filters of `q` but the account and the position (each an
/// equality or range on an indexed column; one statement per filter shape).
fn push_event_filters(qb: &mut QueryBuilder<Postgres>, q: &EventQuery) {
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
        qb.push(" AND at >= ").push_bind(from);
    }
    if let Some(to) = q.to {
        qb.push(" AND at < ").push_bind(to);
    }
}

/// The event columns with the JSON ones as text.
const EVENT_COLUMNS: &str = "id, at, action, account_id, key_id, session_id, app_id, \
     actor::text AS actor, client_ip, details::text AS details";

/// One index range of [`KeyStore::list_events`]: the events of `q` whose
/// `account` column (`account_id`, or `parent_id` for the children) is
/// the account, newest first, at most `q.limit`.
fn push_event_page(qb: &mut QueryBuilder<Postgres>, q: &EventQuery, account: &str) {
    qb.push("SELECT ")
        .push(EVENT_COLUMNS)
        .push(" FROM audit_events WHERE ")
        .push(account)
        .push(" = ")
        .push_bind(q.account_id.as_str().to_owned());
    push_event_filters(qb, q);
    if let Some((at, id)) = &q.before {
        qb.push(" AND (at, id) < (")
            .push_bind(*at)
            .push(", ")
            .push_bind(id.clone())
            .push(")");
    }
    qb.push(" ORDER BY at DESC, id DESC LIMIT ")
        .push_bind(i64::try_from(q.limit).unwrap_or(i64::MAX));
}

#[async_trait]
impl KeyStore for PostgresStore {
    async fn insert_account(&self, account: &Account, event: &AuditEvent) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO accounts (id, name, parent, permissions, created_at, status, name_lower, \
             version) VALUES ($1, $2, $3, $4::jsonb, $5, $6, $7, $8)",
        )
        .bind(account.id.as_str())
        .bind(&account.name)
        .bind(account.parent.as_ref().map(AccountId::as_str))
        .bind(sql::to_json(&account.permissions)?)
        .bind(account.created_at)
        .bind(account.status.as_str())
        .bind(account.name.to_lowercase())
        .bind(sql::to_i64(account.version)?)
        .execute(&mut *tx)
        .await
        .map_err(|e| map_err(e, "account id exists"))?;
        insert_event(&mut tx, event, &self.channel).await?;
        tx.commit().await.map_err(|e| map_err(e, "commit"))
    }

    async fn get_account(&self, id: &AccountId) -> StoreResult<Option<Account>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id = $1"
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
        let (after_at, after_id) = match &q.after {
            Some((at, id)) => (Some(*at), Some(id.as_str())),
            None => (None, None),
        };
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE parent = $1 \
             AND ($2::text IS NULL OR strpos(name_lower, $2) > 0) \
             AND ($3::text IS NULL OR status = $3) \
             AND ($4::timestamptz IS NULL OR (created_at, id) > ($4, $5::text)) \
             ORDER BY created_at, id LIMIT $6"
        )))
        .bind(parent.as_str())
        .bind(needle.as_deref())
        .bind(q.status.map(AccountStatus::as_str))
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
        // The row lock makes the version test and the write one step: a
        // concurrent update waits, then sees the version moved.
        let done = sqlx::query(
            "UPDATE accounts SET name = $1, name_lower = $2, permissions = $3::jsonb, \
             status = $4, version = $5 WHERE id = $6 AND version = $7",
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
            let exists = sqlx::query("SELECT 1 FROM accounts WHERE id = $1")
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
            let ended: Vec<String> =
                sqlx::query_scalar("DELETE FROM sessions WHERE account_id = $1 RETURNING id")
                    .bind(account.id.as_str())
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(|e| map_err(e, "delete"))?;
            for sid in &ended {
                let sid: SessionId = sql::id(sid, "sessions.id")?;
                self.announce(&mut tx, &Change::Session(sid)).await?;
            }
        }
        insert_event(&mut tx, event, &self.channel).await?;
        self.announce(&mut tx, &Change::Account(account.id)).await?;
        tx.commit().await.map_err(|e| map_err(e, "commit"))
    }

    async fn insert_key(&self, key: &StoredKey, event: &AuditEvent) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        insert_key_row(&mut tx, key).await?;
        insert_event(&mut tx, event, &self.channel).await?;
        tx.commit().await.map_err(|e| map_err(e, "commit"))
    }

    async fn insert_imported_keys(&self, keys: &[ImportedKey]) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        for k in keys {
            // A row left by a deleted key gives its external id and alias back.
            sqlx::query("DELETE FROM key_imports WHERE (external_id = $1 OR alias = $2) AND NOT EXISTS (SELECT 1 FROM keys WHERE keys.id = key_imports.key_id)")
                .bind(&k.external_id)
                .bind(&k.alias)
                .execute(&mut *tx)
                .await
                .map_err(|e| map_err(e, "import"))?;
            insert_key_row(&mut tx, &k.stored).await?;
            sqlx::query("INSERT INTO key_imports (key_id, external_id, alias) VALUES ($1, $2, $3)")
                .bind(k.stored.key.id.as_str())
                .bind(&k.external_id)
                .bind(&k.alias)
                .execute(&mut *tx)
                .await
                .map_err(|e| map_err(e, "external id or alias already imported"))?;
            insert_event(&mut tx, &k.event, &self.channel).await?;
        }
        tx.commit().await.map_err(|e| map_err(e, "commit"))
    }

    async fn imported_key(&self, external_id: &str) -> StoreResult<Option<KeyId>> {
        self.import_lookup("SELECT i.key_id FROM key_imports i JOIN keys k ON k.id = i.key_id WHERE i.external_id = $1", external_id).await
    }

    async fn key_by_alias(&self, alias: &str) -> StoreResult<Option<KeyId>> {
        self.import_lookup(
            "SELECT i.key_id FROM key_imports i JOIN keys k ON k.id = i.key_id WHERE i.alias = $1",
            alias,
        )
        .await
    }

    async fn get_key(&self, id: &KeyId) -> StoreResult<Option<StoredKey>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {KEY_COLUMNS} FROM keys WHERE id = $1"
        )))
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| map_err(e, "read"))?;
        row.map(|r| key_row(&r)?.into_stored()).transpose()
    }

    async fn get_key_for_verify(&self, id: &KeyId) -> StoreResult<Option<KeyForVerify>> {
        static QUERY: std::sync::LazyLock<String> =
            std::sync::LazyLock::new(|| key_for_verify_query("= $1"));
        let rows = sqlx::query(sqlx::AssertSqlSafe(QUERY.as_str()))
            .bind(id.as_str())
            .fetch_all(&self.pool)
            .await
            .map_err(|e| map_err(e, "read"))?;
        Ok(keys_for_verify(&rows)?.pop())
    }

    async fn get_keys_for_verify(&self, ids: &[KeyId]) -> StoreResult<Vec<KeyForVerify>> {
        static QUERY: std::sync::LazyLock<String> =
            std::sync::LazyLock::new(|| key_for_verify_query("= ANY($1)"));
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(sql::KEYS_PER_READ) {
            let chunk: Vec<&str> = chunk.iter().map(KeyId::as_str).collect();
            let rows = sqlx::query(sqlx::AssertSqlSafe(QUERY.as_str()))
                .bind(&chunk)
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
        lock_app_shared(&mut tx, key).await?;
        let query = sqlx::query(
            "UPDATE keys SET account_id = $1, name = $2, name_lower = $3, description = $4, \
             application = $5, permissions = $6::jsonb, status = $7, protected = $8, \
             created_at = $9, updated_at = $10, \
             last_used_at = GREATEST(last_used_at, $11), expires_at = $12, \
             allowed_cidrs = $13::jsonb, metadata = $14::jsonb, secret_hash = $15, \
             generation = $16, previous_hash = $17, previous_valid_until = $18, version = $19, \
             session_epoch = $20, app_id = $21, allowed_origins = $22::jsonb \
             WHERE id = $23 AND version = $24",
        );
        let done = sql::bind_key_columns!(query, key, &c, |t: OffsetDateTime| t)
            .bind(k.id.as_str())
            .bind(sql::to_i64(expected_version)?)
            .execute(&mut *tx)
            .await
            .map_err(|e| map_err(e, "key update"))?;
        if done.rows_affected() == 0 {
            let exists = sqlx::query("SELECT 1 FROM keys WHERE id = $1")
                .bind(k.id.as_str())
                .fetch_optional(&mut *tx)
                .await
                .map_err(|e| map_err(e, "read"))?;
            return Err(match exists {
                Some(_) => StoreError::Conflict("key changed since it was read"),
                None => StoreError::NotFound,
            });
        }
        insert_event(&mut tx, event, &self.channel).await?;
        self.announce(&mut tx, &Change::Key(k.id)).await?;
        tx.commit().await.map_err(|e| map_err(e, "commit"))
    }

    async fn delete_key(
        &self,
        id: &KeyId,
        expected_version: u64,
        event: &AuditEvent,
    ) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        // A concurrent update of the row makes this wait, then re-test the
        // version on the updated row (and delete nothing).
        let done = sqlx::query("DELETE FROM keys WHERE id = $1 AND version = $2")
            .bind(id.as_str())
            .bind(sql::to_i64(expected_version)?)
            .execute(&mut *tx)
            .await
            .map_err(|e| map_err(e, "delete"))?;
        if done.rows_affected() == 0 {
            let exists = sqlx::query("SELECT 1 FROM keys WHERE id = $1")
                .bind(id.as_str())
                .fetch_optional(&mut *tx)
                .await
                .map_err(|e| map_err(e, "read"))?;
            return Err(match exists {
                Some(_) => StoreError::Conflict("key changed since it was read"),
                None => StoreError::NotFound,
            });
        }
        sqlx::query("DELETE FROM sessions WHERE key_id = $1")
            .bind(id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(|e| map_err(e, "delete"))?;
        insert_event(&mut tx, event, &self.channel).await?;
        self.announce(&mut tx, &Change::Key(*id)).await?;
        tx.commit().await.map_err(|e| map_err(e, "commit"))
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
        // One statement per filter combination, each an index range or the
        // trigram index (the planner picks by the needle's selectivity).
        let mut qb: QueryBuilder<Postgres> = QueryBuilder::new(format!(
            "SELECT {KEY_COLUMNS} FROM keys WHERE account_id = "
        ));
        qb.push_bind(account.as_str().to_owned());
        if let Some(status) = q.status {
            qb.push(" AND status = ").push_bind(sql::status_str(status));
        }
        if let Some(app) = &q.application {
            qb.push(" AND application = ").push_bind(app.clone());
        }
        if let Some(app) = &q.app_id {
            qb.push(" AND app_id = ").push_bind(app.as_str().to_owned());
        }
        if let Some(n) = &q.name_contains {
            qb.push(" AND name_lower LIKE ")
                .push_bind(like_contains(&n.to_lowercase()));
        }
        if let Some((at, id)) = &q.after {
            qb.push(" AND (created_at, id) > (")
                .push_bind(*at)
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
        super::postgres_limits::get(&self.pool, owners).await
    }

    async fn put_limits(
        &self,
        limits: &super::StoredLimits,
        event: &AuditEvent,
    ) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        super::postgres_limits::put(&mut tx, limits).await?;
        insert_event(&mut tx, event, &self.channel).await?;
        tx.commit().await.map_err(|e| map_err(e, "commit"))
    }

    async fn spend_credits(
        &self,
        owner: &crate::ratelimit::LimitOwner,
        spent: u64,
        period: i64,
    ) -> StoreResult<Option<u64>> {
        super::postgres_limits::spend(&self.pool, owner, spent, period).await
    }

    async fn insert_app(&self, app: &App, event: &AuditEvent) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO apps (id, account_id, title, title_lower, description, status, \
             created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(app.id.as_str())
        .bind(app.account_id.as_str())
        .bind(&app.title)
        .bind(app.title.to_lowercase())
        .bind(&app.description)
        .bind(app.status.as_str())
        .bind(app.created_at)
        .bind(app.updated_at)
        .execute(&mut *tx)
        .await
        .map_err(|e| map_err(e, "application id exists"))?;
        insert_event(&mut tx, event, &self.channel).await?;
        tx.commit().await.map_err(|e| map_err(e, "commit"))
    }

    async fn get_app(&self, id: &AppId) -> StoreResult<Option<App>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {} FROM apps a WHERE a.id = $1",
            app_columns()
        )))
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| map_err(e, "read"))?;
        row.map(|r| app_row(&r)).transpose()
    }

    async fn list_apps(&self, account: &AccountId, q: &AppQuery) -> StoreResult<Vec<App>> {
        let needle = q.title_contains.as_ref().map(|s| s.to_lowercase());
        let (after_at, after_id) = match &q.after {
            Some((at, id)) => (Some(*at), Some(id.as_str())),
            None => (None, None),
        };
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {} FROM apps a WHERE a.account_id = $1 \
             AND ($2::text IS NULL OR strpos(a.title_lower, $2) > 0) \
             AND ($3::text IS NULL OR a.status = $3) \
             AND ($4::timestamptz IS NULL OR (a.created_at, a.id) > ($4, $5::text)) \
             ORDER BY a.created_at, a.id LIMIT $6",
            app_columns()
        )))
        .bind(account.as_str())
        .bind(needle.as_deref())
        .bind(q.status.map(AppStatus::as_str))
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
        let mut tx = self.begin().await?;
        let before: Option<String> =
            sqlx::query_scalar("SELECT status FROM apps WHERE id = $1 FOR UPDATE")
                .bind(app.id.as_str())
                .fetch_optional(&mut *tx)
                .await
                .map_err(|e| map_err(e, "read"))?;
        let Some(before) = before else {
            return Err(StoreError::NotFound);
        };
        // Lock the application's keys: none of them changes (nor leaves)
        // between this comparison and the commit.
        let keys: Vec<(String, i64)> =
            sqlx::query_as("SELECT id, version FROM keys WHERE app_id = $1 FOR UPDATE")
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
            "UPDATE apps SET title = $1, title_lower = $2, description = $3, status = $4, \
             updated_at = $5 WHERE id = $6",
        )
        .bind(&app.title)
        .bind(app.title.to_lowercase())
        .bind(&app.description)
        .bind(app.status.as_str())
        .bind(app.updated_at)
        .bind(app.id.as_str())
        .execute(&mut *tx)
        .await
        .map_err(|e| map_err(e, "application update"))?;
        let mut moved: Vec<KeyId> = Vec::new();
        if before != app.status.as_str() {
            let ids: Vec<String> = sqlx::query_scalar(
                "UPDATE keys SET version = version + 1 WHERE app_id = $1 RETURNING id",
            )
            .bind(app.id.as_str())
            .fetch_all(&mut *tx)
            .await
            .map_err(|e| map_err(e, "application update"))?;
            moved = ids
                .iter()
                .map(|i| sql::id(i, "keys.id"))
                .collect::<StoreResult<_>>()?;
            if app.status == AppStatus::Inactive {
                let ended: Vec<String> = sqlx::query_scalar(
                    "DELETE FROM sessions WHERE key_id IN \
                     (SELECT id FROM keys WHERE app_id = $1) RETURNING id",
                )
                .bind(app.id.as_str())
                .fetch_all(&mut *tx)
                .await
                .map_err(|e| map_err(e, "delete"))?;
                for sid in &ended {
                    let sid: SessionId = sql::id(sid, "sessions.id")?;
                    self.announce(&mut tx, &Change::Session(sid)).await?;
                }
            }
            for k in &moved {
                self.announce(&mut tx, &Change::Key(*k)).await?;
            }
        }
        insert_event(&mut tx, event, &self.channel).await?;
        tx.commit().await.map_err(|e| map_err(e, "commit"))?;
        Ok(moved)
    }

    async fn delete_app(&self, id: &AppId, event: &AuditEvent) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        let done = sqlx::query("DELETE FROM apps WHERE id = $1")
            .bind(id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(|e| map_err(e, "delete"))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        let has_keys = sqlx::query("SELECT 1 FROM keys WHERE app_id = $1 LIMIT 1")
            .bind(id.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(|e| map_err(e, "read"))?;
        if has_keys.is_some() {
            return Err(StoreError::Conflict("application has keys"));
        }
        insert_event(&mut tx, event, &self.channel).await?;
        tx.commit().await.map_err(|e| map_err(e, "commit"))
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
                    created_at: r.try_get("created_at").map_err(g)?,
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
        sqlx::query("INSERT INTO allowed_origins (id, origin, created_at) VALUES ($1, $2, $3)")
            .bind(&o.id)
            .bind(&o.origin)
            .bind(o.created_at)
            .execute(&mut *tx)
            .await
            .map_err(|e| map_err(e, "origin already listed"))?;
        insert_event(&mut tx, event, &self.channel).await?;
        tx.commit().await.map_err(|e| map_err(e, "commit"))
    }

    async fn delete_allowed_origin(&self, id: &str, event: &AuditEvent) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        let done = sqlx::query("DELETE FROM allowed_origins WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(|e| map_err(e, "delete"))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        insert_event(&mut tx, event, &self.channel).await?;
        tx.commit().await.map_err(|e| map_err(e, "commit"))
    }

    async fn insert_session(&self, session: &Session, event: &AuditEvent) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        // The key's row is share-locked until commit: a concurrent
        // `delete_key` (which deletes the key before its sessions) waits for
        // this session and then deletes it, or has already committed and
        // the key is gone here; a concurrent epoch bump is re-checked on the
        // newest row version. No session outlives its key, none is opened
        // past a deactivation.
        let epoch: Option<i64> =
            sqlx::query_scalar("SELECT session_epoch FROM keys WHERE id = $1 FOR SHARE")
                .bind(session.key_id.as_str())
                .fetch_optional(&mut *tx)
                .await
                .map_err(|e| map_err(e, "read"))?;
        if epoch != Some(i64::from(session.key_epoch)) {
            return Err(StoreError::NotFound);
        }
        sqlx::query(
            "INSERT INTO sessions (id, key_id, account_id, created_at, expires_at, \
             key_generation, token_digest, key_epoch) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(session.id.as_str())
        .bind(session.key_id.as_str())
        .bind(session.account_id.as_str())
        .bind(session.created_at)
        .bind(session.expires_at)
        .bind(i64::from(session.key_generation))
        .bind(&session.token_digest[..])
        .bind(i64::from(session.key_epoch))
        .execute(&mut *tx)
        .await
        .map_err(|e| map_err(e, "session id exists"))?;
        insert_event(&mut tx, event, &self.channel).await?;
        tx.commit().await.map_err(|e| map_err(e, "commit"))
    }

    async fn get_session(&self, id: &SessionId) -> StoreResult<Option<Session>> {
        let row = sqlx::query(
            "SELECT id, key_id, account_id, created_at, expires_at, key_generation, \
             token_digest, key_epoch FROM sessions WHERE id = $1",
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
            created_at: r.try_get("created_at").map_err(g)?,
            expires_at: r.try_get("expires_at").map_err(g)?,
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
        let done = sqlx::query("DELETE FROM sessions WHERE id = $1")
            .bind(id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(|e| map_err(e, "delete"))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        insert_event(&mut tx, event, &self.channel).await?;
        self.announce(&mut tx, &Change::Session(*id)).await?;
        tx.commit().await.map_err(|e| map_err(e, "commit"))
    }

    async fn purge_expired_sessions(&self, now: OffsetDateTime) -> StoreResult<u64> {
        let done = sqlx::query("DELETE FROM sessions WHERE expires_at <= $1")
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(|e| map_err(e, "delete"))?;
        Ok(done.rows_affected())
    }

    async fn list_events(&self, q: &EventQuery) -> StoreResult<Vec<AuditEvent>> {
        // One statement per filter shape, each an index range walked newest
        // first; with children, two ranges (the account's own events, its
        // children's by `parent_id`) merged.
        let mut qb: QueryBuilder<Postgres> = QueryBuilder::new("");
        if q.children {
            qb.push("SELECT * FROM (");
            push_event_page(&mut qb, q, "account_id");
            qb.push(") AS own UNION ALL SELECT * FROM (");
            push_event_page(&mut qb, q, "parent_id");
            qb.push(") AS children ORDER BY at DESC, id DESC LIMIT ")
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
        // The range of positions after `after` (the seq index), filtered.
        let mut qb: QueryBuilder<Postgres> = QueryBuilder::new("SELECT seq, ");
        qb.push(EVENT_COLUMNS)
            .push(" FROM audit_events WHERE seq > ")
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
        let seq: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0)::bigint FROM audit_events")
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
            "WITH e AS ({EVENT_INSERT} ON CONFLICT (id) DO UPDATE SET \
             details = jsonb_set(audit_events.details, '{{count}}', to_jsonb( \
                 COALESCE((audit_events.details->>'count')::bigint, 1) \
                 + COALESCE((excluded.details->>'count')::bigint, 1))), \
             client_ip = excluded.client_ip, seq = excluded.seq RETURNING 1) \
             SELECT pg_notify($15 || '_events', '') FROM e"
        );
        let mut tx = self.begin().await?;
        sqlx::query(EVENT_LOCK)
            .execute(&mut *tx)
            .await
            .map_err(|e| map_err(e, "audit lock"))?;
        for e in events {
            bind_event(
                sqlx::query(sqlx::AssertSqlSafe(upsert.as_str())),
                e,
                &self.channel,
            )?
            .execute(&mut *tx)
            .await
            .map_err(|e| map_err(e, "refusal"))?;
        }
        tx.commit().await.map_err(|e| map_err(e, "commit"))
    }

    fn event_signal(&self) -> Option<watch::Receiver<u64>> {
        self.feed.as_ref().map(|f| f.events.subscribe())
    }

    async fn record_usage(&self, batch: &[UsageRecord]) -> StoreResult<()> {
        let rows = sql::merge_usage(batch);
        if rows.is_empty() {
            return Ok(());
        }
        let latest = sql::last_used(&rows);
        let mut keys = Vec::with_capacity(rows.len());
        let mut origins = Vec::with_capacity(rows.len());
        let mut categories = Vec::with_capacity(rows.len());
        let mut hours = Vec::with_capacity(rows.len());
        let mut accounts = Vec::with_capacity(rows.len());
        let mut successes = Vec::with_capacity(rows.len());
        let mut failures = Vec::with_capacity(rows.len());
        let mut limited = Vec::with_capacity(rows.len());
        let mut exceeded = Vec::with_capacity(rows.len());
        let mut used = Vec::with_capacity(rows.len());
        for r in &rows {
            keys.push(r.key_id.as_str().to_owned());
            origins.push(r.origin.clone());
            categories.push(r.category.clone());
            hours.push(r.hour);
            accounts.push(r.account_id.as_str().to_owned());
            successes.push(sql::to_i64(r.successes)?);
            failures.push(sql::to_i64(r.failures)?);
            limited.push(sql::to_i64(r.rate_limited)?);
            exceeded.push(sql::to_i64(r.usage_exceeded)?);
            used.push(r.last_used_at);
        }
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO usage (key_id, origin, category, hour, account_id, successes, failures, \
             rate_limited, usage_exceeded, last_used_at) \
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::timestamptz[], \
             $5::text[], $6::int8[], $7::int8[], $8::int8[], $9::int8[], $10::timestamptz[]) \
             ON CONFLICT (key_id, origin, category, hour) DO UPDATE SET \
             successes = usage.successes + EXCLUDED.successes, \
             failures = usage.failures + EXCLUDED.failures, \
             rate_limited = usage.rate_limited + EXCLUDED.rate_limited, \
             usage_exceeded = usage.usage_exceeded + EXCLUDED.usage_exceeded, \
             last_used_at = GREATEST(usage.last_used_at, EXCLUDED.last_used_at)",
        )
        .bind(&keys)
        .bind(&origins)
        .bind(&categories)
        .bind(&hours)
        .bind(&accounts)
        .bind(&successes)
        .bind(&failures)
        .bind(&limited)
        .bind(&exceeded)
        .bind(&used)
        .execute(&mut *tx)
        .await
        .map_err(|e| map_err(e, "usage"))?;
        if !latest.is_empty() {
            let (ids, times): (Vec<String>, Vec<OffsetDateTime>) = latest
                .into_iter()
                .map(|(id, t)| (id.as_str().to_owned(), t))
                .unzip();
            sqlx::query(
                "UPDATE keys SET last_used_at = GREATEST(keys.last_used_at, v.t) \
                 FROM UNNEST($1::text[], $2::timestamptz[]) AS v(id, t) WHERE keys.id = v.id",
            )
            .bind(&ids)
            .bind(&times)
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
        sqlx::query_as::<_, (String, String)>(sqlx::AssertSqlSafe(format!(
            "SELECT id, {column} FROM {table} WHERE id = ANY($1)"
        )))
        .bind(ids)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| map_err(e, "read"))
    }

    async fn usage_totals(&self, q: &UsageTotalsQuery) -> StoreResult<Vec<UsageTotal>> {
        // One statement per filter combination over the (account, hour)
        // index range; grouped and ordered by volume in the database.
        let mut qb: QueryBuilder<Postgres> = QueryBuilder::new(
            "SELECT key_id, SUM(successes)::bigint AS s, SUM(failures)::bigint AS f, \
             SUM(rate_limited)::bigint AS l, SUM(usage_exceeded)::bigint AS x \
             FROM usage WHERE account_id = ",
        );
        qb.push_bind(q.account_id.as_str().to_owned())
            .push(" AND hour >= ")
            .push_bind(q.from)
            .push(" AND hour < ")
            .push_bind(q.to);
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
                .push(" AND key_id COLLATE \"C\" > ")
                .push_bind(key.as_str().to_owned())
                .push("))");
        }
        qb.push(" ORDER BY ")
            .push(sql::VOLUME_SUM)
            .push(" DESC, key_id COLLATE \"C\" LIMIT ")
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
        // (key, origin, category, hour); without, (account, hour).
        let mut qb: QueryBuilder<Postgres> = QueryBuilder::new(
            "SELECT key_id, origin, category, hour, account_id, successes, failures, \
             rate_limited, usage_exceeded, last_used_at FROM usage WHERE account_id = ",
        );
        qb.push_bind(q.account_id.as_str().to_owned());
        if let Some(key) = &q.key_id {
            qb.push(" AND key_id = ").push_bind(key.as_str().to_owned());
        }
        if let Some(origin) = &q.origin {
            qb.push(" AND origin = ").push_bind(origin.clone());
        }
        qb.push(" AND hour >= ")
            .push_bind(q.from)
            .push(" AND hour < ")
            .push_bind(q.to)
            .push(" ORDER BY hour, key_id, origin, category");
        let rows = qb
            .build()
            .fetch_all(&self.pool)
            .await
            .map_err(|e| map_err(e, "read"))?;
        rows.iter().map(usage_row).collect()
    }

    fn subscribe(&self) -> Option<broadcast::Receiver<Change>> {
        self.feed.as_ref().map(|f| f.tx.subscribe())
    }
}
