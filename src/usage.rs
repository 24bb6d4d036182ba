//! Usage aggregation: per key, origin, category and hour, counted in memory
//! on the verification path (no allocation once a slot exists, no store
//! write) and flushed to the store in batches.
//!
//! Two levels: each cached key carries a [`HotUsage`] word counting its
//! current bucket (hour × origin/category pair) in place, with one atomic
//! update on the cache line the verification already touched; everything
//! else (another bucket while the word is busy, a full word, keys not in
//! the cache) goes to a sharded table. A flush moves the words into the
//! table and drains it.
//!
//! Four outcomes are counted apart: successes, failures, and — for a
//! valid credential refused by a rate limit or by spent credits —
//! `rate_limited` and `usage_exceeded`. The hot word holds the first two;
//! refusals by limits go to the table.

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, OnceLock};

use hashbrown::HashTable;
use time::OffsetDateTime;

use crate::context::Label;
use crate::id::{AccountId, KeyId};
use crate::padded::Padded;
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
    rate_limited: u64,
    usage_exceeded: u64,
    last_used: i64,
}

/// How one decided verification counts in usage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Accepted, and admitted by its rate limits and credits.
    Success,
    /// Refused: wrong secret, inactive, expired, client not allowed.
    Failure,
    /// The secret was right; a rate limit refused the request.
    RateLimited,
    /// The secret was right; the owner's credits are spent.
    UsageExceeded,
}

/// Counts of each outcome, added to a table slot.
#[derive(Debug, Clone, Copy, Default)]
struct Adds {
    successes: u64,
    failures: u64,
    rate_limited: u64,
    usage_exceeded: u64,
}

impl Adds {
    fn one(outcome: Outcome) -> Self {
        let mut a = Self::default();
        match outcome {
            Outcome::Success => a.successes = 1,
            Outcome::Failure => a.failures = 1,
            Outcome::RateLimited => a.rate_limited = 1,
            Outcome::UsageExceeded => a.usage_exceeded = 1,
        }
        a
    }
}

type Shard = Padded<Mutex<HashTable<(Slot, Counts)>>>;

/// Low half of a hot word: successes (high 16 bits) and failures.
const COUNTS: u64 = 0xFFFF_FFFF;
const SUCCESS: u64 = 1 << 16;
const HOURS_ENCODABLE: i64 = (1 << 24) - 1;
const PAIR_SLOTS: usize = 256;

/// A usage bucket in hot-word form: `[hour + 1: 24 bits][pair: 8 bits]`
/// in the high half of the word. Never zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Bucket(u64);

/// A request's usage labels, time and hot-word bucket.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tally {
    origin: Label,
    category: Label,
    bucket: Option<Bucket>,
    now: i64,
}

/// Usage counted in place in a key's cache entry: one word holding the
/// bucket and its success and failure counts (16 bits each; a full count
/// moves to the table), and the last successful use.
#[derive(Debug)]
pub(crate) struct HotUsage {
    word: AtomicU64,
    last_used: AtomicI64,
}

impl HotUsage {
    /// Empty.
    pub(crate) fn new() -> Self {
        Self {
            word: AtomicU64::new(0),
            last_used: AtomicI64::new(i64::MIN),
        }
    }
}

/// Counts not yet flushed.
pub(crate) struct UsageAggregator {
    shards: Box<[Shard]>,
    hasher: foldhash::fast::RandomState,
    /// Origin/category pairs with a hot-word number, by label fingerprint.
    pairs: Box<[OnceLock<(Label, Label)>]>,
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
            pairs: (0..PAIR_SLOTS).map(|_| OnceLock::new()).collect(),
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

    /// The hot-word bucket for `origin`/`category` at `now`; `None` when it
    /// has no compact form (the hour is out of range, or another pair took
    /// the pair's number first), and the table must count it.
    #[inline]
    pub(crate) fn bucket(&self, origin: Label, category: Label, now: i64) -> Option<Bucket> {
        let hour = now.div_euclid(HOUR_NANOS);
        if !(0..HOURS_ENCODABLE).contains(&hour) {
            return None;
        }
        let fp = (origin.fingerprint() ^ category.fingerprint().rotate_left(23))
            .wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let pair = (fp >> 56) as usize;
        let (o, c) = self.pairs[pair].get_or_init(|| (origin, category));
        (*o == origin && *c == category)
            .then_some(Bucket((((hour as u64 + 1) << 8) | pair as u64) << 32))
    }

    /// What [`count`](Self::count) needs of a request, computed once
    /// before the cache lookup: its labels, its time and its hot-word
    /// bucket.
    #[inline]
    pub(crate) fn tally(&self, origin: Label, category: Label, now: i64) -> Tally {
        Tally {
            origin,
            category,
            bucket: self.bucket(origin, category, now),
            now,
        }
    }

    /// Counts one decided verification of `key`: in `hot` (the key's
    /// in-place counter) when there is one and it can, otherwise in the
    /// table. Each verification is counted once, after its decision
    /// (including its rate limits and credits). Refusals by a limit or by
    /// spent credits always go to the table (the hot word counts successes
    /// and failures only).
    #[inline]
    pub(crate) fn count(
        &self,
        tally: &Tally,
        hot: Option<&HotUsage>,
        key: KeyId,
        account: &AccountId,
        outcome: Outcome,
    ) {
        let success = match outcome {
            Outcome::Success => Some(true),
            Outcome::Failure => Some(false),
            Outcome::RateLimited | Outcome::UsageExceeded => None,
        };
        if let (Some(hot), Some(bucket), Some(success)) = (hot, tally.bucket, success)
            && self.record_hot(hot, key, account, bucket, success, tally.now)
        {
            return;
        }
        crate::hint::cold_path();
        self.record_outcome(
            key,
            account,
            tally.origin,
            tally.category,
            tally.now,
            outcome,
        );
    }

    /// Counts one verification in `hot` (the key's in-place counter) if it
    /// is free or already counting `bucket`; `false` when the caller must
    /// [`record`](Self::record) it instead. A full count moves to the table.
    #[inline]
    pub(crate) fn record_hot(
        &self,
        hot: &HotUsage,
        key: KeyId,
        account: &AccountId,
        bucket: Bucket,
        success: bool,
        now: i64,
    ) -> bool {
        let inc = if success { SUCCESS } else { 1 };
        let mut cur = hot.word.load(Relaxed);
        loop {
            let (next, spill) = if cur & !COUNTS == bucket.0 {
                let full = if success {
                    cur & 0xFFFF_0000 == 0xFFFF_0000
                } else {
                    cur & 0xFFFF == 0xFFFF
                };
                if full {
                    crate::hint::cold_path();
                    (bucket.0 | inc, Some(cur))
                } else {
                    (cur + inc, None)
                }
            } else if cur & COUNTS == 0 {
                (bucket.0 | inc, None)
            } else {
                crate::hint::cold_path();
                return false;
            };
            match hot.word.compare_exchange_weak(cur, next, Relaxed, Relaxed) {
                Ok(_) => {
                    if let Some(full) = spill {
                        self.absorb(key, account, full, i64::MIN);
                    }
                    break;
                }
                Err(actual) => cur = actual,
            }
        }
        // A plain store, not a read-modify-write: concurrent verifications
        // of one key may order their stores by a few nanoseconds either
        // way, below the microsecond precision kept.
        if success && now > hot.last_used.load(Relaxed) {
            hot.last_used.store(now, Relaxed);
        }
        true
    }

    /// Moves `hot`'s counts into the table (a flush, or the key leaving
    /// the cache).
    pub(crate) fn take_hot(&self, hot: &HotUsage, key: KeyId, account: &AccountId) {
        if hot.word.load(Relaxed) == 0 {
            return;
        }
        let word = hot.word.swap(0, Relaxed);
        let last_used = hot.last_used.swap(i64::MIN, Relaxed);
        self.absorb(key, account, word, last_used);
    }

    /// Adds a hot word's counts to the table.
    fn absorb(&self, key: KeyId, account: &AccountId, word: u64, last_used: i64) {
        let pair = ((word >> 32) & 0xFF) as usize;
        let hour = (word >> 40) as i64 - 1;
        let Some(&(origin, category)) = self.pairs[pair].get() else {
            return; // an empty word: nothing was counted
        };
        if word & COUNTS == 0 || hour < 0 {
            return;
        }
        let slot = Slot {
            key,
            origin,
            category,
            hour,
        };
        let adds = Adds {
            successes: (word >> 16) & 0xFFFF,
            failures: word & 0xFFFF,
            ..Adds::default()
        };
        self.add(slot, account, adds, last_used);
    }

    /// Counts one verification of `key` at `now` (unix nanoseconds), a
    /// success or a failure.
    #[cfg(test)]
    pub(crate) fn record(
        &self,
        key: KeyId,
        account: &AccountId,
        origin: Label,
        category: Label,
        now: i64,
        success: bool,
    ) {
        let outcome = if success {
            Outcome::Success
        } else {
            Outcome::Failure
        };
        self.record_outcome(key, account, origin, category, now, outcome);
    }

    /// Counts one verification of `key` at `now` (unix nanoseconds) with
    /// `outcome`, in the table. Only a success is a use (`last_used_at`).
    #[inline]
    pub(crate) fn record_outcome(
        &self,
        key: KeyId,
        account: &AccountId,
        origin: Label,
        category: Label,
        now: i64,
        outcome: Outcome,
    ) {
        let slot = Slot {
            key,
            origin,
            category,
            hour: now.div_euclid(HOUR_NANOS),
        };
        let last_used = if outcome == Outcome::Success {
            now
        } else {
            i64::MIN
        };
        self.add(slot, account, Adds::one(outcome), last_used);
    }

    fn add(&self, slot: Slot, account: &AccountId, adds: Adds, last_used: i64) {
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
                        rate_limited: 0,
                        usage_exceeded: 0,
                        last_used: i64::MIN,
                    },
                )
            })
            .into_mut();
        c.successes += adds.successes;
        c.failures += adds.failures;
        c.rate_limited += adds.rate_limited;
        c.usage_exceeded += adds.usage_exceeded;
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
                    rate_limited: c.rate_limited,
                    usage_exceeded: c.usage_exceeded,
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
            let adds = Adds {
                successes: r.successes,
                failures: r.failures,
                rate_limited: r.rate_limited,
                usage_exceeded: r.usage_exceeded,
            };
            self.add(slot, &r.account_id, adds, last_used);
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
        let limited = Outcome::RateLimited;
        agg.record_outcome(key, &acct, Label::API, Label::DEFAULT, t + 9_000, limited);
        let spent = Outcome::UsageExceeded;
        agg.record_outcome(key, &acct, Label::API, Label::DEFAULT, t + 9_000, spent);
        agg.record_outcome(key, &acct, Label::API, Label::DEFAULT, t + 9_000, spent);
        let mut batch = agg.drain();
        batch.sort_by(|a, b| a.origin.cmp(&b.origin));
        assert_eq!(batch.len(), 2);
        assert_eq!((batch[0].successes, batch[0].failures), (2, 1));
        assert_eq!((batch[0].rate_limited, batch[0].usage_exceeded), (1, 2));
        // Refusals by limits are no use: last_used_at stays the success's.
        assert_eq!(batch[0].hour, nanos_to_time(10 * HOUR_NANOS));
        assert_eq!(batch[0].last_used_at, Some(nanos_to_time(t + 1_000)));
        assert!(agg.drain().is_empty());
        agg.restore(batch);
        let mut again = agg.drain();
        again.sort_by(|a, b| a.origin.cmp(&b.origin));
        assert_eq!(again.len(), 2);
        assert_eq!((again[0].rate_limited, again[0].usage_exceeded), (1, 2));
    }

    #[test]
    fn hot_words_count_in_place_and_spill_nothing_lost() {
        let agg = UsageAggregator::default();
        let key = KeyId::new("kw_a").expect("valid");
        let acct = AccountId::new("acct_a").expect("valid");
        let hot = HotUsage::new();
        let t = 10 * HOUR_NANOS + 5_000;
        let api = agg
            .bucket(Label::API, Label::DEFAULT, t)
            .expect("encodable");
        let mcp = agg
            .bucket(Label::MCP, Label::DEFAULT, t)
            .expect("encodable");
        assert!(agg.bucket(Label::API, Label::DEFAULT, -1).is_none());
        // The word is claimed by the first bucket; another bucket is refused
        // until a flush empties it.
        assert!(agg.record_hot(&hot, key, &acct, api, true, t));
        assert!(!agg.record_hot(&hot, key, &acct, mcp, true, t));
        // A full success count moves to the table and counting goes on.
        for i in 0..70_000 {
            assert!(agg.record_hot(&hot, key, &acct, api, true, t + i));
        }
        assert!(agg.record_hot(&hot, key, &acct, api, false, t));
        agg.take_hot(&hot, key, &acct);
        assert_eq!(hot.word.load(Relaxed), 0);
        let batch = agg.drain();
        assert_eq!(batch.len(), 1);
        assert_eq!((batch[0].successes, batch[0].failures), (70_001, 1));
        assert_eq!(batch[0].origin, "api");
        assert_eq!(batch[0].hour, nanos_to_time(10 * HOUR_NANOS));
        assert_eq!(
            batch[0].last_used_at,
            Some(nanos_to_time((t + 69_999) / 1_000 * 1_000))
        );
        // Emptied, the word takes the next bucket.
        assert!(agg.record_hot(&hot, key, &acct, mcp, false, t));
        agg.take_hot(&hot, key, &acct);
        let batch = agg.drain();
        assert_eq!((batch[0].origin.as_str(), batch[0].failures), ("mcp", 1));
    }
}
