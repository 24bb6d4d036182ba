//! The PostgreSQL usage rollup (`usage_rollup`, migration 0009): maintained
//! in the flush's transaction, read as index ranges by the dashboard.

use sqlx::postgres::PgRow;
use sqlx::{PgConnection, PgPool, Postgres, QueryBuilder, Row};
use time::OffsetDateTime;

use crate::store::rollup;
use crate::store::sql::{self, map_err};
use crate::store::{GroupTotal, RollupRow, RollupScope, StoreResult, UsageRecord};

/// The key, application and account rows of a flush, summed into the rollup,
/// and the applications' and accounts' `last_used_at` advanced.
pub(super) async fn record(conn: &mut PgConnection, rows: &[UsageRecord]) -> StoreResult<()> {
    let flush = rollup::flush_rows(rows)?;
    if !flush.is_empty() {
        let n = flush.len();
        let (mut keys, mut accounts, mut origins, mut categories) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        let (mut hours, mut successes, mut failures, mut limited, mut exceeded) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        for r in flush {
            keys.push(r.key_id.as_str().to_owned());
            accounts.push(r.account_id.as_str().to_owned());
            origins.push(r.origin);
            categories.push(r.category);
            hours.push(r.hour);
            successes.push(r.successes);
            failures.push(r.failures);
            limited.push(r.rate_limited);
            exceeded.push(r.usage_exceeded);
        }
        sqlx::query(
            "WITH v AS (SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], \
             $5::timestamptz[], $6::int8[], $7::int8[], $8::int8[], $9::int8[]) \
             AS v(key_id, account_id, origin, category, hour, s, f, l, x)) \
             INSERT INTO usage_rollup (account_id, kind, grp_id, origin, category, hour, \
             successes, failures, rate_limited, usage_exceeded) \
             SELECT account_id, kind, grp_id, origin, category, hour, SUM(s)::bigint, \
             SUM(f)::bigint, SUM(l)::bigint, SUM(x)::bigint FROM ( \
             SELECT v.account_id, 'key' AS kind, v.key_id AS grp_id, v.origin, v.category, \
               v.hour, v.s, v.f, v.l, v.x FROM v \
             UNION ALL SELECT v.account_id, 'app', k.app_id, v.origin, v.category, v.hour, v.s, v.f, \
               v.l, v.x FROM v JOIN keys k ON k.id = v.key_id WHERE k.app_id IS NOT NULL \
             UNION ALL SELECT v.account_id, 'account', v.account_id, v.origin, v.category, v.hour, \
               v.s, v.f, v.l, v.x FROM v \
             UNION ALL SELECT a.parent, 'account', v.account_id, v.origin, v.category, v.hour, \
               v.s, v.f, v.l, v.x FROM v JOIN accounts a ON a.id = v.account_id \
               WHERE a.parent IS NOT NULL \
             ) u GROUP BY account_id, kind, grp_id, origin, category, hour \
             ON CONFLICT (account_id, kind, grp_id, origin, category, hour) DO UPDATE SET \
             successes = usage_rollup.successes + EXCLUDED.successes, \
             failures = usage_rollup.failures + EXCLUDED.failures, \
             rate_limited = usage_rollup.rate_limited + EXCLUDED.rate_limited, \
             usage_exceeded = usage_rollup.usage_exceeded + EXCLUDED.usage_exceeded",
        )
        .bind(&keys)
        .bind(&accounts)
        .bind(&origins)
        .bind(&categories)
        .bind(&hours)
        .bind(&successes)
        .bind(&failures)
        .bind(&limited)
        .bind(&exceeded)
        .execute(&mut *conn)
        .await
        .map_err(|e| map_err(e, "usage"))?;
    }
    let (ids, times): (Vec<String>, Vec<OffsetDateTime>) = sql::last_used(rows)
        .into_iter()
        .map(|(id, t)| (id.as_str().to_owned(), t))
        .unzip();
    if !ids.is_empty() {
        sqlx::query(
            "UPDATE apps SET last_used_at = GREATEST(apps.last_used_at, m.t) \
             FROM (SELECT k.app_id, MAX(v.t) AS t \
                   FROM UNNEST($1::text[], $2::timestamptz[]) AS v(id, t) \
                   JOIN keys k ON k.id = v.id WHERE k.app_id IS NOT NULL GROUP BY k.app_id) m \
             WHERE apps.id = m.app_id",
        )
        .bind(&ids)
        .bind(&times)
        .execute(&mut *conn)
        .await
        .map_err(|e| map_err(e, "usage"))?;
    }
    let (ids, times): (Vec<String>, Vec<OffsetDateTime>) = rollup::account_last_used(rows)
        .into_iter()
        .map(|(id, t)| (id.as_str().to_owned(), t))
        .unzip();
    if !ids.is_empty() {
        sqlx::query(
            "UPDATE accounts SET last_used_at = GREATEST(accounts.last_used_at, v.t) \
             FROM UNNEST($1::text[], $2::timestamptz[]) AS v(id, t) WHERE accounts.id = v.id",
        )
        .bind(&ids)
        .bind(&times)
        .execute(&mut *conn)
        .await
        .map_err(|e| map_err(e, "usage"))?;
    }
    Ok(())
}

fn scoped(qb: &mut QueryBuilder<Postgres>, scope: &RollupScope) {
    qb.push(" WHERE account_id = ")
        .push_bind(scope.account_id.as_str().to_owned())
        .push(" AND kind = ")
        .push_bind(scope.kind.as_str())
        .push(" AND origin = ")
        .push_bind(scope.origin_label().to_owned())
        .push(" AND category = ")
        .push_bind(scope.category_label().to_owned());
}

fn total(r: &PgRow) -> StoreResult<GroupTotal> {
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
    pool: &PgPool,
    scope: &RollupScope,
    hour: OffsetDateTime,
    after: Option<&(u64, String)>,
    n: usize,
) -> StoreResult<Vec<GroupTotal>> {
    let select = |qb: &mut QueryBuilder<Postgres>| {
        scoped(qb, scope);
        qb.push(" AND hour = ").push_bind(hour);
    };
    let base = "SELECT grp_id, successes AS s, failures AS f, rate_limited AS l, \
                usage_exceeded AS x FROM usage_rollup";
    let mut out = Vec::new();
    let below = match after {
        Some((volume, group)) => {
            let volume = sql::to_i64(*volume)?;
            let mut qb: QueryBuilder<Postgres> = QueryBuilder::new(base);
            select(&mut qb);
            qb.push(" AND ")
                .push(sql::VOLUME)
                .push(" = ")
                .push_bind(volume)
                .push(" AND grp_id > ")
                .push_bind(group.clone())
                .push(" ORDER BY ")
                .push(sql::VOLUME)
                .push(" DESC, grp_id LIMIT ")
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
        let mut qb: QueryBuilder<Postgres> = QueryBuilder::new(base);
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
    pool: &PgPool,
    scope: &RollupScope,
    groups: &[String],
    from: OffsetDateTime,
    to: OffsetDateTime,
) -> StoreResult<Vec<RollupRow>> {
    if groups.is_empty() {
        return Ok(Vec::new());
    }
    let mut qb: QueryBuilder<Postgres> = QueryBuilder::new(
        "SELECT grp_id, hour, successes, failures, rate_limited, usage_exceeded \
         FROM usage_rollup",
    );
    scoped(&mut qb, scope);
    qb.push(" AND grp_id = ANY(")
        .push_bind(groups.to_vec())
        .push(") AND hour >= ")
        .push_bind(from)
        .push(" AND hour < ")
        .push_bind(to)
        .push(" ORDER BY grp_id, hour");
    // Unnamed (planned with the ids at hand): a cached generic plan does
    // not know how few ids the array holds and walks the hour's ranking.
    let rows = qb
        .build()
        .persistent(false)
        .fetch_all(pool)
        .await
        .map_err(|e| map_err(e, "read"))?;
    rows.iter()
        .map(|r| {
            let g = |e| map_err(e, "decode");
            Ok(RollupRow {
                group: r.try_get("grp_id").map_err(g)?,
                hour: r.try_get("hour").map_err(g)?,
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
            })
        })
        .collect()
}

/// Every group's totals over a range, ranked (see
/// `KeyStore::usage_group_totals`): the ranked index's prefix range.
pub(super) async fn totals(
    pool: &PgPool,
    scope: &RollupScope,
    from: OffsetDateTime,
    to: OffsetDateTime,
    after: Option<&(u64, String)>,
    n: usize,
) -> StoreResult<Vec<GroupTotal>> {
    let mut qb: QueryBuilder<Postgres> = QueryBuilder::new(
        "SELECT grp_id, SUM(successes)::bigint AS s, SUM(failures)::bigint AS f, \
         SUM(rate_limited)::bigint AS l, SUM(usage_exceeded)::bigint AS x FROM usage_rollup",
    );
    scoped(&mut qb, scope);
    qb.push(" AND hour >= ")
        .push_bind(from)
        .push(" AND hour < ")
        .push_bind(to)
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
