//! The SQLite usage rollup (`usage_rollup`, migration 0009): maintained in
//! the flush's transaction, read as index ranges by the dashboard.

use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Row, Sqlite, SqliteConnection, SqlitePool};
use time::OffsetDateTime;

use super::{USAGE_CHUNK, from_us, us};
use crate::store::rollup::{self, FlushRow};
use crate::store::sql::{self, map_err};
use crate::store::{GroupTotal, RollupRow, RollupScope, StoreResult, UsageRecord};

/// The key, application and account rows of a flush, summed into the rollup,
/// and the applications' and accounts' `last_used_at` advanced.
pub(super) async fn record(conn: &mut SqliteConnection, rows: &[UsageRecord]) -> StoreResult<()> {
    let flush = rollup::flush_rows(rows)?;
    for chunk in flush.chunks(USAGE_CHUNK) {
        let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new(
            "WITH v(key_id, account_id, origin, category, hour, s, f, l, x) AS (",
        );
        qb.push_values(chunk, |mut b, r: &FlushRow| {
            b.push_bind(r.key_id.as_str().to_owned())
                .push_bind(r.account_id.as_str().to_owned())
                .push_bind(r.origin.clone())
                .push_bind(r.category.clone())
                .push_bind(us(r.hour))
                .push_bind(r.successes)
                .push_bind(r.failures)
                .push_bind(r.rate_limited)
                .push_bind(r.usage_exceeded);
        });
        qb.push(
            ") INSERT INTO usage_rollup (account_id, kind, grp_id, origin, category, hour, \
             successes, failures, rate_limited, usage_exceeded) \
             SELECT account_id, kind, grp_id, origin, category, hour, SUM(s), SUM(f), SUM(l), \
               SUM(x) FROM ( \
             SELECT v.account_id AS account_id, 'key' AS kind, v.key_id AS grp_id, \
               v.origin AS origin, v.category AS category, v.hour AS hour, v.s AS s, v.f AS f, \
               v.l AS l, v.x AS x FROM v \
             UNION ALL SELECT v.account_id, 'app', k.app_id, v.origin, v.category, v.hour, v.s, v.f, \
               v.l, v.x FROM v JOIN keys k ON k.id = v.key_id WHERE k.app_id IS NOT NULL \
             UNION ALL SELECT v.account_id, 'account', v.account_id, v.origin, v.category, v.hour, \
               v.s, v.f, v.l, v.x FROM v \
             UNION ALL SELECT a.parent, 'account', v.account_id, v.origin, v.category, v.hour, \
               v.s, v.f, v.l, v.x FROM v JOIN accounts a ON a.id = v.account_id \
               WHERE a.parent IS NOT NULL \
             ) WHERE true GROUP BY account_id, kind, grp_id, origin, category, hour \
             ON CONFLICT (account_id, kind, grp_id, origin, category, hour) DO UPDATE SET \
             successes = successes + excluded.successes, failures = failures + excluded.failures, \
             rate_limited = rate_limited + excluded.rate_limited, \
             usage_exceeded = usage_exceeded + excluded.usage_exceeded",
        );
        qb.build()
            .execute(&mut *conn)
            .await
            .map_err(|e| map_err(e, "usage"))?;
    }
    let keys: Vec<(String, OffsetDateTime)> = sql::last_used(rows)
        .into_iter()
        .map(|(id, t)| (id.as_str().to_owned(), t))
        .collect();
    advance(
        conn,
        &keys,
        "), m AS (SELECT k.app_id AS app_id, MAX(v.t) AS t FROM v JOIN keys k ON k.id = v.id \
         WHERE k.app_id IS NOT NULL GROUP BY k.app_id) \
         UPDATE apps SET last_used_at = CASE WHEN apps.last_used_at IS NULL \
         OR apps.last_used_at < m.t THEN m.t ELSE apps.last_used_at END \
         FROM m WHERE apps.id = m.app_id",
    )
    .await?;
    let accounts: Vec<(String, OffsetDateTime)> = rollup::account_last_used(rows)
        .into_iter()
        .map(|(id, t)| (id.as_str().to_owned(), t))
        .collect();
    advance(
        conn,
        &accounts,
        ") UPDATE accounts SET last_used_at = CASE WHEN accounts.last_used_at IS NULL \
         OR accounts.last_used_at < v.t THEN v.t ELSE accounts.last_used_at END \
         FROM v WHERE accounts.id = v.id",
    )
    .await
}

/// Runs `WITH v(id, t) AS (VALUES …` + `tail` over `times`, a chunk at a
/// time: the `last_used_at` updates of a flush.
async fn advance(
    conn: &mut SqliteConnection,
    times: &[(String, OffsetDateTime)],
    tail: &str,
) -> StoreResult<()> {
    for chunk in times.chunks(USAGE_CHUNK) {
        let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new("WITH v(id, t) AS (");
        qb.push_values(chunk, |mut b, (id, t)| {
            b.push_bind(id.clone()).push_bind(us(*t));
        });
        qb.push(tail);
        qb.build()
            .execute(&mut *conn)
            .await
            .map_err(|e| map_err(e, "usage"))?;
    }
    Ok(())
}

fn scoped(qb: &mut QueryBuilder<Sqlite>, scope: &RollupScope) {
    qb.push(" WHERE account_id = ")
        .push_bind(scope.account_id.as_str().to_owned())
        .push(" AND kind = ")
        .push_bind(scope.kind.as_str())
        .push(" AND origin = ")
        .push_bind(scope.origin_label().to_owned())
        .push(" AND category = ")
        .push_bind(scope.category_label().to_owned());
}

fn total(r: &SqliteRow) -> StoreResult<GroupTotal> {
    let g = |e| map_err(e, "decode");
    Ok(GroupTotal {
        group: r.try_get("grp_id").map_err(g)?,
        successes: sql::to_u64(r.try_get("s").map_err(g)?, "usage_rollup.successes")?,
        failures: sql::to_u64(r.try_get("f").map_err(g)?, "usage_rollup.failures")?,
        rate_limited: sql::to_u64(r.try_get("l").map_err(g)?, "usage_rollup.rate_limited")?,
        usage_exceeded: sql::to_u64(r.try_get("x").map_err(g)?, "usage_rollup.usage_exceeded")?,
    })
}

fn limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// One hour's ranking (see `KeyStore::usage_ranked`): the ranked index's
/// range, in at most two statements (the position's volume, then below).
pub(super) async fn ranked(
    pool: &SqlitePool,
    scope: &RollupScope,
    hour: OffsetDateTime,
    after: Option<&(u64, String)>,
    n: usize,
) -> StoreResult<Vec<GroupTotal>> {
    let select = |qb: &mut QueryBuilder<Sqlite>| {
        scoped(qb, scope);
        qb.push(" AND hour = ").push_bind(us(hour));
    };
    let base = "SELECT grp_id, successes AS s, failures AS f, rate_limited AS l, \
                usage_exceeded AS x FROM usage_rollup";
    let mut out = Vec::new();
    let below = match after {
        Some((volume, group)) => {
            let volume = sql::to_i64(*volume)?;
            let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new(base);
            select(&mut qb);
            qb.push(" AND ")
                .push(sql::VOLUME)
                .push(" = ")
                .push_bind(volume)
                .push(" AND grp_id > ")
                .push_bind(group.clone())
                .push(" ORDER BY grp_id LIMIT ")
                .push_bind(limit(n));
            let rows = qb
                .build()
                .fetch_all(pool)
                .await
                .map_err(|e| map_err(e, "read"))?;
            for r in &rows {
                out.push(total(r)?);
            }
            Some(volume)
        }
        None => None,
    };
    if out.len() < n {
        let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new(base);
        select(&mut qb);
        if let Some(volume) = below {
            qb.push(" AND ")
                .push(sql::VOLUME)
                .push(" < ")
                .push_bind(volume);
        }
        qb.push(" ORDER BY ")
            .push(sql::VOLUME)
            .push(" DESC, grp_id LIMIT ")
            .push_bind(limit(n - out.len()));
        let rows = qb
            .build()
            .fetch_all(pool)
            .await
            .map_err(|e| map_err(e, "read"))?;
        for r in &rows {
            out.push(total(r)?);
        }
    }
    Ok(out)
}

/// Some groups' rows over a range (see `KeyStore::usage_rollup`): primary
/// key ranges.
pub(super) async fn rows(
    pool: &SqlitePool,
    scope: &RollupScope,
    groups: &[String],
    from: OffsetDateTime,
    to: OffsetDateTime,
) -> StoreResult<Vec<RollupRow>> {
    let mut out = Vec::new();
    for chunk in groups.chunks(USAGE_CHUNK) {
        let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new(
            "SELECT grp_id, hour, successes, failures, rate_limited, usage_exceeded \
             FROM usage_rollup",
        );
        scoped(&mut qb, scope);
        qb.push(" AND grp_id IN (");
        let mut sep = qb.separated(", ");
        for g in chunk {
            sep.push_bind(g.clone());
        }
        qb.push(") AND hour >= ")
            .push_bind(us(from))
            .push(" AND hour < ")
            .push_bind(us(to))
            .push(" ORDER BY grp_id, hour");
        let rows = qb
            .build()
            .fetch_all(pool)
            .await
            .map_err(|e| map_err(e, "read"))?;
        for r in &rows {
            let g = |e| map_err(e, "decode");
            out.push(RollupRow {
                group: r.try_get("grp_id").map_err(g)?,
                hour: from_us(r.try_get("hour").map_err(g)?)?,
                successes: sql::to_u64(
                    r.try_get("successes").map_err(g)?,
                    "usage_rollup.successes",
                )?,
                failures: sql::to_u64(r.try_get("failures").map_err(g)?, "usage_rollup.failures")?,
                rate_limited: sql::to_u64(
                    r.try_get("rate_limited").map_err(g)?,
                    "usage_rollup.rate_limited",
                )?,
                usage_exceeded: sql::to_u64(
                    r.try_get("usage_exceeded").map_err(g)?,
                    "usage_rollup.usage_exceeded",
                )?,
            });
        }
    }
    Ok(out)
}

/// Every group's totals over a range, ranked (see
/// `KeyStore::usage_group_totals`): the ranked index's prefix range.
pub(super) async fn totals(
    pool: &SqlitePool,
    scope: &RollupScope,
    from: OffsetDateTime,
    to: OffsetDateTime,
    after: Option<&(u64, String)>,
    n: usize,
) -> StoreResult<Vec<GroupTotal>> {
    let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new(
        "SELECT grp_id, SUM(successes) AS s, SUM(failures) AS f, SUM(rate_limited) AS l, \
         SUM(usage_exceeded) AS x FROM usage_rollup",
    );
    scoped(&mut qb, scope);
    qb.push(" AND hour >= ")
        .push_bind(us(from))
        .push(" AND hour < ")
        .push_bind(us(to))
        .push(" GROUP BY grp_id HAVING ")
        .push(sql::VOLUME_SUM)
        .push(" > 0");
    if let Some((volume, group)) = after {
        let volume = sql::to_i64(*volume)?;
        qb.push(" AND (")
            .push(sql::VOLUME_SUM)
            .push(" < ")
            .push_bind(volume)
            .push(" OR (")
            .push(sql::VOLUME_SUM)
            .push(" = ")
            .push_bind(volume)
            .push(" AND grp_id > ")
            .push_bind(group.clone())
            .push("))");
    }
    qb.push(" ORDER BY ")
        .push(sql::VOLUME_SUM)
        .push(" DESC, grp_id LIMIT ")
        .push_bind(limit(n));
    let rows = qb
        .build()
        .fetch_all(pool)
        .await
        .map_err(|e| map_err(e, "read"))?;
    rows.iter().map(total).collect()
}
