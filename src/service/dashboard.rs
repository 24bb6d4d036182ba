//! The usage dashboard: an account's keys by volume (top consumers first),
//! each with its totals and a time series, a keyset page at a time.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use time::{OffsetDateTime, Time};

use super::keys::page_limit;
use super::{Actor, Keyward};
use crate::context::Label;
use crate::error::{Error, Result};
use crate::id::{AccountId, KeyId};
use crate::permission::Permission;
use crate::store::{UsageQuery, UsageTotalsQuery};

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
    /// At most this many keys (1–100).
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
    /// At most `limit` keys.
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
}

/// One key's usage over a report's range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageGroup {
    /// The key.
    pub id: KeyId,
    /// The key's name; `None` for a key deleted since.
    pub name: Option<String>,
    /// Successful verifications in the range.
    pub successes: u64,
    /// Failed verifications in the range.
    pub failures: u64,
    /// Points with any usage, oldest first.
    pub series: Vec<UsagePoint>,
}

/// One page of a usage report, most used keys first.
#[derive(Debug, Clone)]
pub struct UsagePage {
    /// The keys.
    pub items: Vec<UsageGroup>,
    /// Cursor for the next page; `None` on the last.
    pub next_cursor: Option<String>,
}

fn encode(volume: u64, key: &KeyId) -> String {
    URL_SAFE_NO_PAD.encode(format!("{volume}.{key}"))
}

fn decode(c: &str) -> Result<(u64, KeyId)> {
    let bad = || Error::InvalidInput {
        field: "cursor",
        reason: "not a cursor returned by this API".into(),
    };
    if c.len() > 200 {
        return Err(bad());
    }
    let raw = URL_SAFE_NO_PAD.decode(c).map_err(|_| bad())?;
    let raw = String::from_utf8(raw).map_err(|_| bad())?;
    let (volume, key) = raw.split_once('.').ok_or_else(bad)?;
    Ok((
        volume.parse().map_err(|_| bad())?,
        KeyId::new(key).map_err(|_| bad())?,
    ))
}

fn bucket(hour: OffsetDateTime, g: Granularity) -> OffsetDateTime {
    match g {
        Granularity::Hour => hour,
        Granularity::Day => hour.replace_time(Time::MIDNIGHT),
    }
}

impl Keyward {
    /// The keys of `account` with usage in the report's range, most used
    /// (successes plus failures) first, each with its name, totals and
    /// series. Pending counts of this instance are flushed first, so the
    /// answer includes every verification it made so far; other instances'
    /// counts arrive with their next flush.
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
        let after = report.cursor.as_deref().map(decode).transpose()?;
        actor.authorize(account, &Permission::read_api_keys(), "account")?;
        if let Err(e) = self.flush().await {
            tracing::warn!(target: "keyward::usage", error = %e, "flush before usage report failed");
        }
        let store = &self.inner.store;
        let origin = report.origin.as_ref().map(|o| o.as_str().to_owned());
        let category = report.category.as_ref().map(|c| c.as_str().to_owned());
        let mut totals = store
            .usage_totals(&UsageTotalsQuery {
                account_id: *account,
                origin: origin.clone(),
                category: category.clone(),
                from: report.from,
                to: report.to,
                after,
                limit: limit + 1,
            })
            .await?;
        let more = totals.len() > limit;
        totals.truncate(limit);
        let mut items = Vec::with_capacity(totals.len());
        for t in &totals {
            let rows = store
                .usage(&UsageQuery {
                    account_id: *account,
                    key_id: Some(t.key_id),
                    origin: origin.clone(),
                    from: report.from,
                    to: report.to,
                })
                .await?;
            let mut series: Vec<UsagePoint> = Vec::new();
            for r in rows
                .iter()
                .filter(|r| category.as_ref().is_none_or(|c| *c == r.category))
            {
                let at = bucket(r.hour, report.granularity);
                match series.iter_mut().find(|p| p.at == at) {
                    Some(p) => {
                        p.successes = p.successes.saturating_add(r.successes);
                        p.failures = p.failures.saturating_add(r.failures);
                    }
                    None => series.push(UsagePoint {
                        at,
                        successes: r.successes,
                        failures: r.failures,
                    }),
                }
            }
            series.sort_by_key(|p| p.at);
            let name = store.get_key(&t.key_id).await?.map(|k| k.key.name);
            items.push(UsageGroup {
                id: t.key_id,
                name,
                successes: t.successes,
                failures: t.failures,
                series,
            });
        }
        let next_cursor = if more {
            totals.last().map(|t| encode(t.volume(), &t.key_id))
        } else {
            None
        };
        Ok(UsagePage { items, next_cursor })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips_and_rejects_garbage() {
        let key = KeyId::new("kw_abc").expect("id");
        assert_eq!(decode(&encode(42, &key)).expect("decode"), (42, key));
        assert!(decode("abc").is_err());
        assert!(decode(&URL_SAFE_NO_PAD.encode("x.kw_abc")).is_err());
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
