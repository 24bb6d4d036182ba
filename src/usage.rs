//! Usage aggregation: per key, origin, category and hour, counted in memory
//! on the verification path (no allocation once a slot exists, no store
//! write) and flushed to the store in batches.

use std::hash::BuildHasher;
use std::sync::Mutex;

use hashbrown::HashTable;
use time::OffsetDateTime;

use crate::cache::Padded;
use crate::context::Label;
use crate::id::{AccountId, KeyId};
use crate::store::UsageRecord;

const SHARDS: usize = 64;
const HOUR_NANOS: i64 = 3_600_000_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Slot {
    key: KeyId,
    origin: Label,
    category: Label,
    hour: i64,
}

#[derive(Debug, Clone, Copy)]
struct Counts {
    account: AccountId,
    successes: u64,
    failures: u64,
    last_used: i64,
}

type Shard = Padded<Mutex<HashTable<(Slot, Counts)>>>;

/// Counts not yet flushed.
pub(crate) struct UsageAggregator {
    shards: Box<[Shard]>,
    hasher: foldhash::fast::RandomState,
}

impl std::fmt::Debug for UsageAggregator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UsageAggregator")
    }
}

impl Default for UsageAggregator {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS)
                .map(|_| Padded(Mutex::new(HashTable::new())))
                .collect(),
            hasher: foldhash::fast::RandomState::default(),
        }
    }
}

impl UsageAggregator {
    /// The slot's hash and shard: one keyed hash of the key id, mixed with
    /// the hour and the labels' fingerprints (cheap on the hot path).
    #[inline]
    fn locate(&self, slot: &Slot) -> (u64, usize) {
        let k = self.hasher.hash_one(slot.key);
        let mixed = (k
            ^ (slot.hour as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
            ^ slot
                .origin
                .fingerprint()
                .wrapping_mul(0xC2B2_AE3D_27D4_EB4F)
            ^ slot.category.fingerprint().rotate_left(29))
        .wrapping_mul(0x1656_67B1_9E37_79F9);
        let h = mixed ^ (mixed >> 29);
        (h, ((k >> 32) as usize) % SHARDS)
    }

    /// Counts one verification of `key` at `now` (unix nanoseconds).
    #[inline]
    pub(crate) fn record(
        &self,
        key: KeyId,
        account: &AccountId,
        origin: Label,
        category: Label,
        now: i64,
        success: bool,
    ) {
        let slot = Slot {
            key,
            origin,
            category,
            hour: now.div_euclid(HOUR_NANOS),
        };
        self.add(
            slot,
            account,
            u64::from(success),
            u64::from(!success),
            if success { now } else { i64::MIN },
        );
    }

    fn add(&self, slot: Slot, account: &AccountId, successes: u64, failures: u64, last_used: i64) {
        let (h, shard) = self.locate(&slot);
        let mut g = self.shards[shard].lock().unwrap_or_else(|e| e.into_inner());
        let entry = g.entry(h, |(s, _)| *s == slot, |(s, _)| self.locate(s).0);
        let (_, c) = entry
            .or_insert_with(|| {
                (
                    slot,
                    Counts {
                        account: *account,
                        successes: 0,
                        failures: 0,
                        last_used: i64::MIN,
                    },
                )
            })
            .into_mut();
        c.successes += successes;
        c.failures += failures;
        c.last_used = c.last_used.max(last_used);
    }

    /// Takes every count, leaving the aggregator empty.
    pub(crate) fn drain(&self) -> Vec<UsageRecord> {
        let mut out = Vec::new();
        for shard in self.shards.iter() {
            let mut g = shard.lock().unwrap_or_else(|e| e.into_inner());
            out.extend(g.drain().map(|(s, c)| {
                UsageRecord {
                    key_id: s.key,
                    account_id: c.account,
                    origin: s.origin.as_str().to_owned(),
                    category: s.category.as_str().to_owned(),
                    hour: nanos_to_time(s.hour * HOUR_NANOS),
                    successes: c.successes,
                    failures: c.failures,
                    last_used_at: (c.last_used != i64::MIN)
                        .then(|| nanos_to_time(c.last_used.div_euclid(1_000) * 1_000)),
                }
            }));
        }
        out
    }

    /// Puts counts back after a failed flush, so nothing is lost.
    pub(crate) fn restore(&self, batch: Vec<UsageRecord>) {
        for r in batch {
            let (Ok(origin), Ok(category)) = (Label::new(&r.origin), Label::new(&r.category))
            else {
                continue;
            };
            let slot = Slot {
                key: r.key_id,
                origin,
                category,
                hour: time_to_nanos(r.hour).div_euclid(HOUR_NANOS),
            };
            let last_used = r.last_used_at.map_or(i64::MIN, time_to_nanos);
            self.add(slot, &r.account_id, r.successes, r.failures, last_used);
        }
    }
}

pub(crate) fn nanos_to_time(n: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(n)).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

pub(crate) fn time_to_nanos(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos()).unwrap_or(if t.year() < 1970 {
        i64::MIN
    } else {
        i64::MAX
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aggregates_drains_and_restores() {
        let agg = UsageAggregator::default();
        let key = KeyId::new("kw_a").expect("valid");
        let acct = AccountId::new("acct_a").expect("valid");
        let t = 10 * HOUR_NANOS + 5_000;
        agg.record(key, &acct, Label::API, Label::DEFAULT, t, true);
        agg.record(key, &acct, Label::API, Label::DEFAULT, t + 1_000, true);
        agg.record(key, &acct, Label::API, Label::DEFAULT, t + 2_000, false);
        agg.record(key, &acct, Label::MCP, Label::DEFAULT, t, true);
        let mut batch = agg.drain();
        batch.sort_by(|a, b| a.origin.cmp(&b.origin));
        assert_eq!(batch.len(), 2);
        assert_eq!((batch[0].successes, batch[0].failures), (2, 1));
        assert_eq!(batch[0].hour, nanos_to_time(10 * HOUR_NANOS));
        assert_eq!(batch[0].last_used_at, Some(nanos_to_time(t + 1_000)));
        assert!(agg.drain().is_empty());
        agg.restore(batch);
        assert_eq!(agg.drain().len(), 2);
    }
}
