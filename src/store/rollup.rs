//! The usage rollup: counts per group (key, application, account), hour,
//! origin and category, with `*` rows for "every origin" / "every
//! category". The SQL stores keep it in a table maintained at flush time;
//! the trait's defaults derive it from the per-key usage rows.

use std::collections::{BTreeMap, HashMap};

use time::OffsetDateTime;

use super::{
    AccountQuery, GroupTotal, KeyStore, RollupRow, RollupScope, StoreResult, UsageGroupKind,
    UsageQuery,
};
#[cfg(any(feature = "sqlite", feature = "postgres"))]
use crate::id::AccountId;
use crate::id::KeyId;

/// `scope`'s rollup rows in `[from, to)`, computed from
/// [`KeyStore::usage`] (applications: the keys' current ones; accounts:
/// the account itself and every child). Unordered.
pub(crate) async fn derive<S: KeyStore + ?Sized>(
    store: &S,
    scope: &RollupScope,
    from: OffsetDateTime,
    to: OffsetDateTime,
) -> StoreResult<Vec<RollupRow>> {
    let mut accounts = vec![scope.account_id];
    if scope.kind == UsageGroupKind::Account {
        let mut after = None;
        loop {
            let page = store
                .list_accounts(
                    &scope.account_id,
                    &AccountQuery {
                        after,
                        limit: 500,
                        ..AccountQuery::default()
                    },
                )
                .await?;
            after = page.last().map(|a| (a.created_at, a.id));
            let done = page.len() < 500;
            accounts.extend(page.into_iter().map(|a| a.id));
            if done {
                break;
            }
        }
    }
    let mut sums: BTreeMap<(String, OffsetDateTime), [u64; 4]> = BTreeMap::new();
    let mut apps: HashMap<KeyId, Option<String>> = HashMap::new();
    for account in accounts {
        let rows = store
            .usage(&UsageQuery {
                account_id: account,
                key_id: None,
                origin: scope.origin.clone(),
                from,
                to,
            })
            .await?;
        for r in rows {
            if scope.category.as_ref().is_some_and(|c| *c != r.category) {
                continue;
            }
            let group = match scope.kind {
                UsageGroupKind::Key => r.key_id.as_str().to_owned(),
                UsageGroupKind::Account => account.as_str().to_owned(),
                UsageGroupKind::App => {
                    let app = match apps.get(&r.key_id) {
                        Some(a) => a.clone(),
                        None => {
                            let a = store
                                .get_key(&r.key_id)
                                .await?
                                .and_then(|k| k.key.app_id)
                                .map(|a| a.as_str().to_owned());
                            apps.insert(r.key_id, a.clone());
                            a
                        }
                    };
                    let Some(app) = app else { continue };
                    app
                }
            };
            let e = sums.entry((group, r.hour)).or_default();
            for (sum, n) in
                e.iter_mut()
                    .zip([r.successes, r.failures, r.rate_limited, r.usage_exceeded])
            {
                *sum = sum.saturating_add(n);
            }
        }
    }
    Ok(sums
        .into_iter()
        .filter(|(_, [s, f, l, x])| super::volume(*s, *f, *l, *x) > 0)
        .map(|((group, hour), [s, f, l, x])| RollupRow {
            group,
            hour,
            successes: s,
            failures: f,
            rate_limited: l,
            usage_exceeded: x,
        })
        .collect())
}

impl RollupRow {
    /// The row's counts as a group total (for [`rank`]).
    pub(crate) fn into_total(self) -> GroupTotal {
        GroupTotal {
            group: self.group,
            successes: self.successes,
            failures: self.failures,
            rate_limited: self.rate_limited,
            usage_exceeded: self.usage_exceeded,
        }
    }
}

impl GroupTotal {
    /// Adds `other`'s counts (saturating).
    pub(crate) fn add(&mut self, other: &GroupTotal) {
        self.successes = self.successes.saturating_add(other.successes);
        self.failures = self.failures.saturating_add(other.failures);
        self.rate_limited = self.rate_limited.saturating_add(other.rate_limited);
        self.usage_exceeded = self.usage_exceeded.saturating_add(other.usage_exceeded);
    }
}

/// Sums the counts per group and ranks them: volume descending, then
/// group id; only after `after`; at most `limit`.
pub(crate) fn rank(
    rows: impl IntoIterator<Item = GroupTotal>,
    after: Option<&(u64, String)>,
    limit: usize,
) -> Vec<GroupTotal> {
    let mut by_group: HashMap<String, GroupTotal> = HashMap::new();
    for row in rows {
        match by_group.get_mut(&row.group) {
            Some(t) => t.add(&row),
            None => {
                by_group.insert(row.group.clone(), row);
            }
        }
    }
    let mut out: Vec<GroupTotal> = by_group
        .into_values()
        .filter(|t| t.volume() > 0 && after.is_none_or(|p| t.is_after(p)))
        .collect();
    out.sort_by(ranking);
    out.truncate(limit);
    out
}

/// The rollup's ranking order: volume descending, then group id.
pub(crate) fn ranking(a: &GroupTotal, b: &GroupTotal) -> std::cmp::Ordering {
    b.volume()
        .cmp(&a.volume())
        .then_with(|| a.group.cmp(&b.group))
}

/// One key-level rollup row of a flush: a usage row under its own labels
/// and under `*` for its origin, its category, and both.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
#[derive(Debug, Clone)]
pub(crate) struct FlushRow {
    pub key_id: KeyId,
    pub account_id: AccountId,
    pub origin: String,
    pub category: String,
    pub hour: OffsetDateTime,
    pub successes: i64,
    pub failures: i64,
    pub rate_limited: i64,
    pub usage_exceeded: i64,
}

/// A flush's usage rows as key-level rollup rows (each in its four label
/// variants, duplicates summed), skipping rows that count nothing.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn flush_rows(rows: &[super::UsageRecord]) -> StoreResult<Vec<FlushRow>> {
    use super::ROLLUP_ALL;
    let mut index: HashMap<(KeyId, String, String, OffsetDateTime), usize> = HashMap::new();
    let mut out: Vec<FlushRow> = Vec::with_capacity(rows.len() * 4);
    for r in rows {
        if super::volume(r.successes, r.failures, r.rate_limited, r.usage_exceeded) == 0 {
            continue;
        }
        let s = super::sql::to_i64(r.successes)?;
        let f = super::sql::to_i64(r.failures)?;
        let l = super::sql::to_i64(r.rate_limited)?;
        let x = super::sql::to_i64(r.usage_exceeded)?;
        for (o, c) in [
            (r.origin.as_str(), r.category.as_str()),
            (ROLLUP_ALL, r.category.as_str()),
            (r.origin.as_str(), ROLLUP_ALL),
            (ROLLUP_ALL, ROLLUP_ALL),
        ] {
            let slot = (r.key_id, o.to_owned(), c.to_owned(), r.hour);
            match index.get(&slot) {
                Some(&i) => {
                    out[i].successes = out[i].successes.saturating_add(s);
                    out[i].failures = out[i].failures.saturating_add(f);
                    out[i].rate_limited = out[i].rate_limited.saturating_add(l);
                    out[i].usage_exceeded = out[i].usage_exceeded.saturating_add(x);
                }
                None => {
                    index.insert(slot, out.len());
                    out.push(FlushRow {
                        key_id: r.key_id,
                        account_id: r.account_id,
                        origin: o.to_owned(),
                        category: c.to_owned(),
                        hour: r.hour,
                        successes: s,
                        failures: f,
                        rate_limited: l,
                        usage_exceeded: x,
                    });
                }
            }
        }
    }
    Ok(out)
}

/// The latest use of each account in a flush.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn account_last_used(rows: &[super::UsageRecord]) -> Vec<(AccountId, OffsetDateTime)> {
    super::sql::latest(rows, |r| r.account_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_by_volume_then_id_after_a_position() {
        let t = |g: &str, s, f, l, x| GroupTotal {
            group: g.to_owned(),
            successes: s,
            failures: f,
            rate_limited: l,
            usage_exceeded: x,
        };
        let rows = vec![
            t("b", 2, 1, 0, 0),
            t("a", 3, 0, 0, 0),
            t("c", 0, 0, 1, 0),
            t("b", 0, 0, 0, 1),
            t("z", 0, 0, 0, 0),
        ];
        let all = rank(rows.clone(), None, 10);
        let ids: Vec<&str> = all.iter().map(|t| t.group.as_str()).collect();
        assert_eq!(ids, ["b", "a", "c"]);
        let rest = rank(rows, Some(&(3, "a".to_owned())), 10);
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].group, "c");
    }
}
