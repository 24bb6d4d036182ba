//! The usage dashboard: an account's keys, applications or child accounts
//! by volume (top consumers first), each with its totals and a time
//! series, a keyset page at a time, read from the store's usage rollup.
//!
//! Top consumers over a range of hours are found without aggregating every
//! group of the range: each hour of the rollup is a list ranked by volume
//! (an index range), and the lists are read in rounds (Fagin's threshold
//! algorithm) until no group not yet seen can rank among the page: the
//! page's last group has at least the sum of the volumes last read from
//! the lists (on a tie, an id no later than theirs). Each seen group's
//! exact totals and series come from its own rows. A range of many hours
//! with flat usage, where the rounds would read more than a bound, and
//! child accounts (few groups) are aggregated in the database instead.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use time::{OffsetDateTime, Time};

use super::page::page_limit;
use super::{Actor, Keyward};
use crate::context::Label;
use crate::error::{Error, Result};
use crate::id::{AccountId, AppId, KeyId};
use crate::permission::Permission;
use crate::store::{GroupTotal, KeyStore, RollupRow, RollupScope, UsageGroupKind};

/// The width of a [`UsagePoint`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Granularity {
    /// One point per hour (UTC).
    #[default]
    Hour,
    /// One point per day (UTC).
    Day,
}

/// Which usage [`Keyward::usage_report`] returns.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct UsageReport {
    /// Hours at or after this instant.
    pub from: OffsetDateTime,
    /// Hours before this instant.
    pub to: OffsetDateTime,
    /// Series point width.
    pub granularity: Granularity,
    /// Only this origin (all when `None`).
    pub origin: Option<Label>,
    /// Only this category (all when `None`).
    pub category: Option<Label>,
    /// What the groups are: keys (the default), applications, or the
    /// account and its child accounts.
    pub group_by: UsageGroupKind,
    /// At most this many groups (1–100).
    pub limit: usize,
    /// A `next_cursor` of an earlier page.
    pub cursor: Option<String>,
}

impl UsageReport {
    /// Every origin and category between `from` and `to`, hourly, 50 keys.
    pub fn between(from: OffsetDateTime, to: OffsetDateTime) -> Self {
        Self {
            from,
            to,
            granularity: Granularity::Hour,
            origin: None,
            category: None,
            group_by: UsageGroupKind::Key,
            limit: 50,
            cursor: None,
        }
    }
    /// Series point width.
    pub fn granularity(mut self, g: Granularity) -> Self {
        self.granularity = g;
        self
    }
    /// Only `origin`.
    pub fn origin(mut self, origin: Label) -> Self {
        self.origin = Some(origin);
        self
    }
    /// Only `category`.
    pub fn category(mut self, category: Label) -> Self {
        self.category = Some(category);
        self
    }
    /// Groups of this kind.
    pub fn group_by(mut self, kind: UsageGroupKind) -> Self {
        self.group_by = kind;
        self
    }
    /// At most `limit` groups.
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = limit;
        self
    }
    /// The page after the one that returned `cursor`.
    pub fn cursor(mut self, cursor: impl Into<String>) -> Self {
        self.cursor = Some(cursor.into());
        self
    }
}

/// One point of a [`UsageGroup`]'s series.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsagePoint {
    /// Start of the hour or day (UTC).
    pub at: OffsetDateTime,
    /// Successful verifications.
    pub successes: u64,
    /// Failed verifications.
    pub failures: u64,
    /// Requests with a valid credential refused by a rate limit.
    pub rate_limited: u64,
    /// Requests with a valid credential refused because the credits were
    /// spent.
    pub usage_exceeded: u64,
}

/// One group's usage over a report's range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageGroup {
    /// The key, application or account id.
    pub id: String,
    /// Its display name (key name, application title, account name);
    /// `None` for one deleted since.
    pub name: Option<String>,
    /// Successful verifications in the range.
    pub successes: u64,
    /// Failed verifications in the range.
    pub failures: u64,
    /// Requests refused by a rate limit in the range.
    pub rate_limited: u64,
    /// Requests refused because the credits were spent, in the range.
    pub usage_exceeded: u64,
    /// Points with any usage, oldest first.
    pub series: Vec<UsagePoint>,
}

/// One page of a usage report, most used groups first.
#[derive(Debug, Clone)]
pub struct UsagePage {
    /// The groups.
    pub items: Vec<UsageGroup>,
    /// Cursor for the next page; `None` on the last.
    pub next_cursor: Option<String>,
}

fn encode(kind: UsageGroupKind, volume: u64, group: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}.{volume}.{group}", kind.as_str()))
}

fn decode(c: &str, kind: UsageGroupKind) -> Result<(u64, String)> {
    let bad = || Error::InvalidInput {
        field: "cursor",
        reason: "not a cursor returned by this API for this group_by".into(),
    };
    if c.len() > 200 {
        return Err(bad());
    }
    let raw = URL_SAFE_NO_PAD.decode(c).map_err(|_| bad())?;
    let raw = String::from_utf8(raw).map_err(|_| bad())?;
    let mut parts = raw.splitn(3, '.');
    let (Some(k), Some(volume), Some(group)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad());
    };
    let valid = match kind {
        UsageGroupKind::Key => KeyId::new(group).is_ok(),
        UsageGroupKind::App => AppId::new(group).is_ok(),
        _ => AccountId::new(group).is_ok(),
    };
    if k != kind.as_str() || !valid {
        return Err(bad());
    }
    Ok((volume.parse().map_err(|_| bad())?, group.to_owned()))
}

fn bucket(hour: OffsetDateTime, g: Granularity) -> OffsetDateTime {
    match g {
        Granularity::Hour => hour,
        Granularity::Day => hour.replace_time(Time::MIDNIGHT),
    }
}

/// Hours of rankings the threshold rounds read at most; a longer range
/// with usage in more hours is aggregated.
const MAX_LISTS: usize = 24 * 7;
/// Ranked rows the threshold rounds read at most before the range is
/// aggregated instead.
const MAX_READ: usize = 20_000;

/// One hour's ranking, as read so far.
struct List {
    hour: OffsetDateTime,
    /// The last `(volume, group)` read: where the next round starts.
    last: Option<(u64, String)>,
    done: bool,
}

/// A group with its exact totals and rows over the range.
type Seen = (GroupTotal, Vec<RollupRow>);

/// Attaches each total's rows over `[from, to)`.
async fn with_rows(
    store: &dyn KeyStore,
    scope: &RollupScope,
    totals: Vec<GroupTotal>,
    from: OffsetDateTime,
    to: OffsetDateTime,
) -> Result<Vec<Seen>> {
    let ids: Vec<String> = totals.iter().map(|t| t.group.clone()).collect();
    let rows = store.usage_rollup(scope, &ids, from, to).await?;
    Ok(totals
        .into_iter()
        .map(|t| {
            let mine = rows
                .iter()
                .filter(|r| r.group == t.group)
                .cloned()
                .collect();
            (t, mine)
        })
        .collect())
}

/// The `n` groups of `scope` after `after` in ranking order (volume
/// descending, then id), each with its rows over `[from, to)`.
async fn top(
    store: &dyn KeyStore,
    scope: &RollupScope,
    from: OffsetDateTime,
    to: OffsetDateTime,
    after: Option<&(u64, String)>,
    n: usize,
) -> Result<Vec<Seen>> {
    let aggregate = || async {
        let totals = store.usage_group_totals(scope, from, to, after, n).await?;
        with_rows(store, scope, totals, from, to).await
    };
    if scope.kind == UsageGroupKind::Account {
        return aggregate().await;
    }
    // The hours with any usage of the account under these labels: its own
    // account-level rows.
    let own = RollupScope {
        kind: UsageGroupKind::Account,
        ..scope.clone()
    };
    let mut hours: Vec<OffsetDateTime> = store
        .usage_rollup(&own, &[scope.account_id.as_str().to_owned()], from, to)
        .await?
        .into_iter()
        .filter(|r| {
            crate::store::volume(r.successes, r.failures, r.rate_limited, r.usage_exceeded) > 0
        })
        .map(|r| r.hour)
        .collect();
    hours.sort();
    hours.dedup();
    if hours.len() > MAX_LISTS {
        return aggregate().await;
    }
    let mut lists: Vec<List> = hours
        .into_iter()
        .map(|hour| List {
            hour,
            last: after.cloned(),
            done: false,
        })
        .collect();
    let mut seen: std::collections::HashMap<String, Seen> = Default::default();
    let (mut batch, mut read) = (n.max(16), 0usize);
    loop {
        let mut fresh: Vec<String> = Vec::new();
        for list in lists.iter_mut().filter(|l| !l.done) {
            let rows = store
                .usage_ranked(scope, list.hour, list.last.as_ref(), batch)
                .await?;
            read += rows.len();
            list.done = rows.len() < batch;
            if let Some(last) = rows.last() {
                list.last = Some((last.volume(), last.group.clone()));
            }
            for r in rows {
                if !seen.contains_key(&r.group) && !fresh.contains(&r.group) {
                    fresh.push(r.group);
                }
            }
        }
        if !fresh.is_empty() {
            let rows = store.usage_rollup(scope, &fresh, from, to).await?;
            for group in fresh {
                let mine: Vec<RollupRow> =
                    rows.iter().filter(|r| r.group == group).cloned().collect();
                let mut total = GroupTotal {
                    group: group.clone(),
                    successes: 0,
                    failures: 0,
                    rate_limited: 0,
                    usage_exceeded: 0,
                };
                for r in &mine {
                    total.add(&r.clone().into_total());
                }
                seen.insert(group, (total, mine));
            }
        }
        let mut ranked: Vec<&Seen> = seen
            .values()
            .filter(|(t, _)| t.volume() > 0 && after.is_none_or(|p| t.is_after(p)))
            .collect();
        ranked.sort_by(|a, b| crate::store::rollup_ranking(&a.0, &b.0));
        let open: Vec<&(u64, String)> = lists
            .iter()
            .filter(|l| !l.done)
            .filter_map(|l| l.last.as_ref())
            .collect();
        let threshold = open.iter().fold(0u64, |a, (v, _)| a.saturating_add(*v));
        let first_open = open.iter().map(|(_, g)| g.as_str()).min();
        let final_page = match (ranked.get(n.saturating_sub(1)), first_open) {
            (_, None) => true,
            (Some((t, _)), Some(g)) => {
                t.volume() > threshold || (t.volume() == threshold && t.group.as_str() <= g)
            }
            (None, Some(_)) => false,
        };
        if final_page {
            let ids: Vec<String> = ranked
                .iter()
                .take(n)
                .map(|(t, _)| t.group.clone())
                .collect();
            return Ok(ids.into_iter().filter_map(|id| seen.remove(&id)).collect());
        }
        if read > MAX_READ {
            return aggregate().await;
        }
        batch = batch.saturating_mul(2);
    }
}

impl Keyward {
    /// The groups of `account` (its keys, its applications, or itself and
    /// its child accounts, per [`UsageReport::group_by`]) with usage in the
    /// report's range, most used (every outcome: successes, failures, rate
    /// limited, usage exceeded) first, each with its display name, totals
    /// and series. Pending counts of this instance are flushed first, so
    /// the answer includes every verification it made so far; other
    /// instances' counts arrive with their next flush.
    ///
    /// ```
    /// # async fn f(kw: keyward::Keyward, account: keyward::AccountId) -> keyward::Result<()> {
    /// use keyward::{Actor, UsageReport};
    /// let to = kw.now();
    /// let page = kw
    ///     .usage_report(Actor::System, &account, UsageReport::between(to - time::Duration::DAY, to))
    ///     .await?;
    /// for g in &page.items {
    ///     println!(
    ///         "{} {:?}: {} ok, {} failed, {} rate limited, {} over their credits",
    ///         g.id, g.name, g.successes, g.failures, g.rate_limited, g.usage_exceeded
    ///     );
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for `from` after `to`, a bad limit or
    /// cursor, [`Error::Forbidden`] without `readApiKeys`,
    /// [`Error::NotFound`] for a foreign account, [`Error::Unavailable`].
    pub async fn usage_report(
        &self,
        actor: Actor<'_>,
        account: &AccountId,
        report: UsageReport,
    ) -> Result<UsagePage> {
        if report.from > report.to {
            return Err(Error::InvalidInput {
                field: "from",
                reason: "must not be after `to`".into(),
            });
        }
        let limit = page_limit(report.limit)?;
        let kind = report.group_by;
        let after = report
            .cursor
            .as_deref()
            .map(|c| decode(c, kind))
            .transpose()?;
        actor.authorize(account, &Permission::read_api_keys(), "account")?;
        if let Err(e) = self.flush().await {
            tracing::warn!(target: "keyward::usage", error = %e, "flush before usage report failed");
        }
        let store = &*self.inner.store;
        let scope = RollupScope {
            account_id: *account,
            kind,
            origin: report.origin.as_ref().map(|o| o.as_str().to_owned()),
            category: report.category.as_ref().map(|c| c.as_str().to_owned()),
        };
        let mut groups = top(
            store,
            &scope,
            report.from,
            report.to,
            after.as_ref(),
            limit + 1,
        )
        .await?;
        let more = groups.len() > limit;
        groups.truncate(limit);
        let next_cursor = if more {
            groups
                .last()
                .map(|(t, _)| encode(kind, t.volume(), &t.group))
        } else {
            None
        };
        let ids: Vec<String> = groups.iter().map(|(t, _)| t.group.clone()).collect();
        let mut names: std::collections::HashMap<String, String> =
            store.group_names(kind, &ids).await?.into_iter().collect();
        let mut items = Vec::with_capacity(groups.len());
        for (t, rows) in groups {
            let mut series: Vec<UsagePoint> = Vec::new();
            for r in &rows {
                let at = bucket(r.hour, report.granularity);
                match series.last_mut() {
                    Some(p) if p.at == at => {
                        p.successes = p.successes.saturating_add(r.successes);
                        p.failures = p.failures.saturating_add(r.failures);
                        p.rate_limited = p.rate_limited.saturating_add(r.rate_limited);
                        p.usage_exceeded = p.usage_exceeded.saturating_add(r.usage_exceeded);
                    }
                    _ => series.push(UsagePoint {
                        at,
                        successes: r.successes,
                        failures: r.failures,
                        rate_limited: r.rate_limited,
                        usage_exceeded: r.usage_exceeded,
                    }),
                }
            }
            let name = names.remove(&t.group);
            items.push(UsageGroup {
                id: t.group,
                name,
                successes: t.successes,
                failures: t.failures,
                rate_limited: t.rate_limited,
                usage_exceeded: t.usage_exceeded,
                series,
            });
        }
        Ok(UsagePage { items, next_cursor })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips_and_rejects_garbage() {
        let key = "kw_abc";
        assert_eq!(
            decode(&encode(UsageGroupKind::Key, 42, key), UsageGroupKind::Key).expect("decode"),
            (42, key.to_owned())
        );
        assert!(decode(&encode(UsageGroupKind::Key, 42, key), UsageGroupKind::App).is_err());
        assert!(decode("abc", UsageGroupKind::Key).is_err());
        assert!(decode(&URL_SAFE_NO_PAD.encode("key.x.kw_abc"), UsageGroupKind::Key).is_err());
    }

    #[test]
    fn days_start_at_midnight_utc() {
        let h = time::macros::datetime!(2030-01-02 17:00 UTC);
        assert_eq!(bucket(h, Granularity::Hour), h);
        assert_eq!(
            bucket(h, Granularity::Day),
            time::macros::datetime!(2030-01-02 0:00 UTC)
        );
    }
}
