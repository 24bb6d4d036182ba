//! The SQLite store's limits (table `owner_limits`, migration 0010).

use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Row, Sqlite, SqliteConnection, SqlitePool};

use super::limits::row::{COLUMNS, LimitsRow};
use super::sql::map_err;
use super::{StoreResult, StoredLimits};
use crate::ratelimit::LimitOwner;

fn decode(r: &SqliteRow) -> StoreResult<StoredLimits> {
    decode_prefixed(r, "")
}

/// The limits in `r`'s columns named `<prefix><column>`; for a row
/// without limits (a `LEFT JOIN` that found none) `None`.
pub(super) fn joined(r: &SqliteRow, prefix: &str) -> StoreResult<Option<StoredLimits>> {
    let kind: Option<String> = r
        .try_get(format!("{prefix}owner_kind").as_str())
        .map_err(|e| map_err(e, "decode"))?;
    kind.map(|_| decode_prefixed(r, prefix)).transpose()
}

fn decode_prefixed(r: &SqliteRow, prefix: &str) -> StoreResult<StoredLimits> {
    let g = |e| map_err(e, "decode");
    let c = |name: &str| format!("{prefix}{name}");
    LimitsRow {
        kind: r.try_get(c("owner_kind").as_str()).map_err(g)?,
        id: r.try_get(c("owner_id").as_str()).map_err(g)?,
        ratelimits: r.try_get(c("ratelimits").as_str()).map_err(g)?,
        credits_set: r.try_get(c("credits_set").as_str()).map_err(g)?,
        remaining: r.try_get(c("credits_remaining").as_str()).map_err(g)?,
        interval: r.try_get(c("refill_interval").as_str()).map_err(g)?,
        amount: r.try_get(c("refill_amount").as_str()).map_err(g)?,
        period: r.try_get(c("credits_period").as_str()).map_err(g)?,
        version: r.try_get(c("version").as_str()).map_err(g)?,
    }
    .stored()
}

/// [`KeyStore::get_limits`](super::KeyStore::get_limits).
pub(super) async fn get(
    pool: &SqlitePool,
    owners: &[LimitOwner],
) -> StoreResult<Vec<StoredLimits>> {
    if owners.is_empty() {
        return Ok(Vec::new());
    }
    let mut qb: QueryBuilder<Sqlite> =
        QueryBuilder::new(format!("SELECT {COLUMNS} FROM owner_limits WHERE "));
    for (i, o) in owners.iter().enumerate() {
        if i > 0 {
            qb.push(" OR ");
        }
        qb.push("(owner_kind = ")
            .push_bind(o.kind())
            .push(" AND owner_id = ")
            .push_bind(o.id().to_owned())
            .push(")");
    }
    let rows = qb
        .build()
        .fetch_all(pool)
        .await
        .map_err(|e| map_err(e, "read"))?;
    rows.iter().map(decode).collect()
}

/// [`KeyStore::put_limits`](super::KeyStore::put_limits), inside the
/// caller's transaction.
pub(super) async fn put(conn: &mut SqliteConnection, s: &StoredLimits) -> StoreResult<()> {
    if s.limits.is_empty() {
        sqlx::query("DELETE FROM owner_limits WHERE owner_kind = ? AND owner_id = ?")
            .bind(s.owner.kind())
            .bind(s.owner.id())
            .execute(conn)
            .await
            .map_err(|e| map_err(e, "write"))?;
        return Ok(());
    }
    let r = LimitsRow::of(s)?;
    sqlx::query(
        "INSERT INTO owner_limits (owner_kind, owner_id, ratelimits, credits_set, \
         credits_remaining, refill_interval, refill_amount, credits_period, version) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) \
         ON CONFLICT (owner_kind, owner_id) DO UPDATE SET ratelimits = excluded.ratelimits, \
         credits_set = excluded.credits_set, credits_remaining = excluded.credits_remaining, \
         refill_interval = excluded.refill_interval, refill_amount = excluded.refill_amount, \
         credits_period = excluded.credits_period, version = excluded.version",
    )
    .bind(r.kind)
    .bind(r.id)
    .bind(r.ratelimits)
    .bind(r.credits_set)
    .bind(r.remaining)
    .bind(r.interval)
    .bind(r.amount)
    .bind(r.period)
    .bind(r.version)
    .execute(conn)
    .await
    .map_err(|e| map_err(e, "write"))?;
    Ok(())
}

/// [`KeyStore::spend_credits`](super::KeyStore::spend_credits): one
/// `UPDATE` (its `SET` expressions all see the row as it was).
pub(super) async fn spend(
    pool: &SqlitePool,
    owner: &LimitOwner,
    spent: u64,
    period: i64,
) -> StoreResult<Option<u64>> {
    let spent = i64::try_from(spent).unwrap_or(i64::MAX);
    let row: Option<(i64,)> = sqlx::query_as(
        "UPDATE owner_limits SET \
         credits_remaining = MAX(0, (CASE WHEN refill_amount IS NOT NULL AND credits_period < ?1 \
           THEN refill_amount ELSE credits_remaining END) - ?2), \
         credits_period = CASE WHEN refill_amount IS NOT NULL AND credits_period < ?1 \
           THEN ?1 ELSE credits_period END \
         WHERE owner_kind = ?3 AND owner_id = ?4 AND credits_remaining IS NOT NULL \
         RETURNING credits_remaining",
    )
    .bind(period)
    .bind(spent)
    .bind(owner.kind())
    .bind(owner.id())
    .fetch_optional(pool)
    .await
    .map_err(|e| map_err(e, "write"))?;
    Ok(row.map(|(r,)| r.max(0) as u64))
}
