//! The key verification cache: a sharded, read-mostly table of compact key
//! entries holding, per key, the keyed tag of the secret that last passed
//! argon2 (never the secret), the key's effective grant and its state.
//!
//! Layout: each shard is an `RwLock` over a slab of entries plus a
//! [`SlotIndex`] of slab positions (8 bytes a bucket: a hash fragment and
//! the position, one cache miss to reach the entry), and the entries are
//! stored once, densely. Grants
//! (account + effective permissions) are interned per shard, so two threads
//! verifying keys of the same account in different shards never touch the
//! same reference count.

use std::collections::{HashMap, HashSet};
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use ipnet::IpNet;

use super::Padded;
use super::index::SlotIndex;
use crate::digest::{Tag, tags_equal};
use crate::id::{AccountId, KeyId};
use crate::principal::Grant;
use crate::store::PhcString;
use crate::usage::{Bucket, HotUsage, UsageAggregator};

const SHARDS: usize = 64;

/// A slot for one accepted secret (current, or previous during a grace
/// period): its tag once verified, its hash until then.
#[derive(Debug, Clone)]
pub(crate) struct SecretSlot {
    pub(crate) tag: Option<Tag>,
    pub(crate) hash: Option<PhcString>,
}

impl SecretSlot {
    pub(crate) fn cold(hash: PhcString) -> Self {
        Self {
            tag: None,
            hash: Some(hash),
        }
    }
}

/// Rarely needed parts of an entry, boxed to keep the common entry small.
#[derive(Debug, Clone, Default)]
pub(crate) struct Extra {
    /// Hash of the current secret, until a verification replaces it by a tag.
    pub(crate) current_hash: Option<PhcString>,
    /// The previous secret during a grace period, and when it stops working.
    pub(crate) previous: Option<(SecretSlot, i64)>,
    /// Allowed client networks (empty: any).
    pub(crate) allowed: Box<[IpNet]>,
}

/// A cached key: 104 bytes, so a million keys fit the memory budget. The
/// fields a verification reads first (id, tag, freshness, usage counter)
/// come first.
#[derive(Debug)]
pub(crate) struct KeyEntry {
    pub(crate) key_id: KeyId,
    /// Keyed tag of the current secret once verified on this instance; all
    /// zero until then (the digester never produces an all-zero tag).
    tag: Tag,
    /// Unix nanoseconds of the store read this entry reflects.
    pub(crate) fetched_at: i64,
    /// Usage counted in place on the hot path.
    pub(crate) usage: HotUsage,
    pub(crate) grant: Arc<Grant>,
    /// Unix nanoseconds; `i64::MAX` when the key never expires.
    pub(crate) expires_at: i64,
    pub(crate) extra: Option<Box<Extra>>,
    pub(crate) generation: u32,
    /// The stored record's version (low 31 bits) and the active flag
    /// (lowest bit). A read of an older version never replaces a newer one
    /// (a slow read racing a change).
    state: u32,
}

impl KeyEntry {
    /// An entry for a key read from the store at `fetched_at`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        key_id: KeyId,
        grant: Arc<Grant>,
        tag: Option<Tag>,
        generation: u32,
        active: bool,
        expires_at: i64,
        fetched_at: i64,
        version: u64,
        extra: Option<Box<Extra>>,
    ) -> Self {
        Self {
            key_id,
            tag: tag.unwrap_or([0; 16]),
            fetched_at,
            usage: HotUsage::new(),
            grant,
            expires_at,
            extra,
            generation,
            state: ((version as u32) << 1) | u32::from(active),
        }
    }

    /// The tag of the current secret, once verified.
    #[inline]
    pub(crate) fn tag(&self) -> Option<Tag> {
        (self.tag != [0; 16]).then_some(self.tag)
    }

    fn set_tag(&mut self, tag: Option<Tag>) {
        self.tag = tag.unwrap_or([0; 16]);
    }

    /// Whether the key is active (not deactivated).
    #[inline]
    pub(crate) fn active(&self) -> bool {
        self.state & 1 == 1
    }

    /// The low 31 bits of the stored record's version.
    fn version(&self) -> u32 {
        self.state >> 1
    }

    fn allowed(&self) -> &[IpNet] {
        self.extra.as_deref().map_or(&[], |e| &e.allowed)
    }

    /// Whether `ip` may use the key.
    pub(crate) fn ip_allowed(&self, ip: Option<IpAddr>) -> bool {
        let allowed = self.allowed();
        allowed.is_empty() || ip.is_some_and(|ip| allowed.iter().any(|n| n.contains(&ip)))
    }

    /// Keeps the tags of `old` that still describe the same secrets.
    fn inherit_tags(&mut self, old: &KeyEntry) {
        if old.generation == self.generation && self.tag().is_none() {
            self.set_tag(old.tag());
            if self.tag().is_some()
                && let Some(extra) = self.extra.as_deref_mut()
            {
                extra.current_hash = None;
            }
        }
        let old_prev = old.extra.as_deref().and_then(|e| e.previous.as_ref());
        let new_prev = self.extra.as_deref_mut().and_then(|e| e.previous.as_mut());
        if let (Some((old_slot, old_until)), Some((new_slot, new_until))) = (old_prev, new_prev)
            && old_until == new_until
            && old.generation == self.generation
            && new_slot.tag.is_none()
            && old_slot.tag.is_some()
        {
            new_slot.tag = old_slot.tag;
            new_slot.hash = None;
        }
    }
}

/// What the cache can say about a presented secret without argon2.
#[derive(Debug)]
pub(crate) enum Warm {
    /// The secret matches a verified tag; the entry's state follows.
    Match {
        grant: Arc<Grant>,
        active: bool,
        expires_at: i64,
        ip_allowed: bool,
        /// Whether the verification was already counted in the entry's
        /// usage counter.
        counted: bool,
    },
    /// Every secret the key accepts has a verified tag and none matches.
    Mismatch {
        account: AccountId,
        /// As for `Match`.
        counted: bool,
    },
    /// A slot is still cold: argon2 must decide. Carries the hashes to try.
    Cold {
        current: Option<PhcString>,
        previous: Option<PhcString>,
        generation: u32,
        account: AccountId,
    },
    /// Absent, or older than the propagation window.
    Stale,
    /// The store said, less than W ago, that no such key exists.
    Missing,
}

/// [`KeyCache::check`] for an id not in the cache: missing (the store
/// said so less than W ago) or stale. Out of line: the warm path's code
/// stays small.
#[cold]
#[inline(never)]
fn absent(shard: &Shard, id: &KeyId, now: i64, window: i64) -> Warm {
    match shard.missing.get(id) {
        Some(&at) if now.saturating_sub(at) < window && now >= at => Warm::Missing,
        _ => Warm::Stale,
    }
}

/// [`KeyCache::check`] when argon2 must decide: the hashes to try.
#[cold]
#[inline(never)]
fn cold(e: &KeyEntry, current_cold: bool, prev: Option<&(SecretSlot, i64)>) -> Warm {
    Warm::Cold {
        current: if current_cold {
            e.extra.as_deref().and_then(|x| x.current_hash.clone())
        } else {
            None
        },
        previous: prev.and_then(|(slot, _)| slot.hash.clone()),
        generation: e.generation,
        account: e.grant.account,
    }
}

struct Shard {
    index: SlotIndex,
    slab: Vec<KeyEntry>,
    grants: HashSet<Arc<Grant>, foldhash::fast::RandomState>,
    /// Ids the store did not know, with the time of that read: a deleted
    /// key still presented by an old client costs no store read per
    /// request. Bounded; cleared when full.
    missing: HashMap<KeyId, i64, foldhash::fast::RandomState>,
}

/// The sharded key cache.
pub(crate) struct KeyCache {
    shards: Box<[Padded<RwLock<Shard>>]>,
    hasher: foldhash::fast::RandomState,
    max_per_shard: usize,
    /// Where in-place usage counts go on a flush or when an entry leaves.
    usage: Arc<UsageAggregator>,
}

impl std::fmt::Debug for KeyCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyCache")
            .field("len", &self.len())
            .finish()
    }
}

impl KeyCache {
    /// A cache holding at most about `max_entries` keys.
    pub(crate) fn new(max_entries: usize, usage: Arc<UsageAggregator>) -> Self {
        let shards = (0..SHARDS)
            .map(|_| {
                Padded(RwLock::new(Shard {
                    index: SlotIndex::default(),
                    slab: Vec::new(),
                    grants: HashSet::default(),
                    missing: HashMap::default(),
                }))
            })
            .collect();
        Self {
            shards,
            hasher: foldhash::fast::RandomState::default(),
            max_per_shard: max_entries.div_ceil(SHARDS).max(1),
            usage,
        }
    }

    #[inline]
    fn locate(&self, id: &KeyId) -> (u64, usize) {
        // Spelled out rather than `hash_one`, which was not inlined here.
        let mut state = self.hasher.build_hasher();
        std::hash::Hash::hash(id, &mut state);
        let h = std::hash::Hasher::finish(&state);
        // The low bits pick the shard; the index uses the high 32 (its
        // fragment and bucket), so buckets within a shard are not biased.
        (h, (h as usize) % SHARDS)
    }

    fn read(&self, shard: usize) -> RwLockReadGuard<'_, Shard> {
        self.shards[shard].read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self, shard: usize) -> RwLockWriteGuard<'_, Shard> {
        self.shards[shard]
            .write()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// The hot path: checks the digest `tag` computes against the entry for
    /// `id` in constant time and, when it decides, counts the outcome in the entry's usage
    /// counter for `bucket`. Allocation-free.
    #[inline]
    pub(crate) fn check(
        &self,
        id: &KeyId,
        tag: impl FnOnce() -> Tag,
        now: i64,
        window: i64,
        ip: Option<IpAddr>,
        bucket: Option<Bucket>,
    ) -> Warm {
        let (h, s) = self.locate(id);
        let shard = self.read(s);
        let Some(i) = shard
            .index
            .find(h, |i| shard.slab[i as usize].key_id == *id)
        else {
            return absent(&shard, id, now, window);
        };
        let e = &shard.slab[i as usize];
        // The digest is computed only now, after the lookup issued its
        // loads: the CPU computes it while the entry is still arriving
        // from memory (the main cost of a verification among many keys).
        let tag = &tag();
        if now.saturating_sub(e.fetched_at) >= window || now < e.fetched_at {
            crate::hint::cold_path();
            return Warm::Stale;
        }
        let current = e.tag().map(|t| tags_equal(&t, tag));
        let prev = match e.extra.as_deref() {
            None => None,
            Some(x) => {
                crate::hint::cold_path();
                x.previous.as_ref().filter(|(_, until)| now < *until)
            }
        };
        let prev_match = prev.and_then(|(slot, _)| slot.tag.map(|t| tags_equal(&t, tag)));
        if current == Some(true) || prev_match == Some(true) {
            let (active, ip_allowed) = (e.active(), e.ip_allowed(ip));
            let success = active && now < e.expires_at && ip_allowed;
            return Warm::Match {
                grant: Arc::clone(&e.grant),
                active,
                expires_at: e.expires_at,
                ip_allowed,
                counted: self.count(e, bucket, success, now),
            };
        }
        crate::hint::cold_path();
        let prev_cold = prev.is_some() && prev_match.is_none();
        if current.is_some() && !prev_cold {
            return Warm::Mismatch {
                account: e.grant.account,
                counted: self.count(e, bucket, false, now),
            };
        }
        cold(e, current.is_none(), prev)
    }

    /// Counts one verification in `e`'s usage counter; `false` when the
    /// caller must count it in the usage table instead.
    #[inline]
    pub(crate) fn count(
        &self,
        e: &KeyEntry,
        bucket: Option<Bucket>,
        success: bool,
        now: i64,
    ) -> bool {
        bucket.is_some_and(|b| {
            self.usage
                .record_hot(&e.usage, e.key_id, &e.grant.account, b, success, now)
        })
    }

    /// Moves every entry's in-place usage counts into the aggregator (a
    /// flush). Takes only read locks: verifications go on meanwhile.
    pub(crate) fn drain_usage(&self) {
        for s in 0..SHARDS {
            let shard = self.read(s);
            for e in &shard.slab {
                self.usage.take_hot(&e.usage, e.key_id, &e.grant.account);
            }
        }
    }

    /// Runs `f` on the fresh entry for `id`, if any.
    pub(crate) fn with_fresh<R>(
        &self,
        id: &KeyId,
        now: i64,
        window: i64,
        f: impl FnOnce(&KeyEntry) -> R,
    ) -> Option<R> {
        let (h, s) = self.locate(id);
        let shard = self.read(s);
        let i = shard
            .index
            .find(h, |i| shard.slab[i as usize].key_id == *id)?;
        let e = &shard.slab[i as usize];
        if now.saturating_sub(e.fetched_at) >= window || now < e.fetched_at {
            return None;
        }
        Some(f(e))
    }

    /// Records that the secret with `tag` passed argon2 for the current
    /// (`previous == false`) or previous secret of generation `generation`.
    pub(crate) fn mark_verified(&self, id: &KeyId, generation: u32, previous: bool, tag: Tag) {
        let (h, s) = self.locate(id);
        let mut shard = self.write(s);
        let Some(i) = shard
            .index
            .find(h, |i| shard.slab[i as usize].key_id == *id)
        else {
            return;
        };
        let e = &mut shard.slab[i as usize];
        if e.generation != generation {
            return;
        }
        if previous {
            if let Some((slot, _)) = e.extra.as_deref_mut().and_then(|x| x.previous.as_mut()) {
                slot.tag = Some(tag);
                slot.hash = None;
            }
        } else {
            e.set_tag(Some(tag));
            if let Some(x) = e.extra.as_deref_mut() {
                x.current_hash = None;
            }
        }
        let empty = e.extra.as_deref().is_some_and(|x| {
            x.current_hash.is_none() && x.previous.is_none() && x.allowed.is_empty()
        });
        if empty {
            e.extra = None;
        }
    }

    /// Inserts or replaces the entry for `entry.key_id`, keeping verified
    /// tags that still apply. `grant` is interned per shard.
    pub(crate) fn upsert(&self, mut entry: KeyEntry) {
        let (h, s) = self.locate(&entry.key_id);
        let mut guard = self.write(s);
        let shard = &mut *guard;
        entry.grant = intern(&mut shard.grants, entry.grant);
        let id = entry.key_id;
        if !shard.missing.is_empty() {
            shard.missing.remove(&id);
        }
        if let Some(i) = shard.index.find(h, |i| shard.slab[i as usize].key_id == id) {
            let old = &mut shard.slab[i as usize];
            if (old.version(), old.fetched_at) > (entry.version(), entry.fetched_at) {
                return; // a newer record or read already landed
            }
            entry.inherit_tags(old);
            // The counts move with the key; the new entry's are empty.
            std::mem::swap(&mut entry.usage, &mut old.usage);
            *old = entry;
            return;
        }
        if shard.slab.len() >= self.max_per_shard {
            let victim = shard.slab[((h >> 40) as usize) % shard.slab.len()].key_id;
            let vh = self.hasher.hash_one(victim);
            self.remove_from(shard, vh, &victim);
        }
        let idx = shard.slab.len() as u32;
        shard.slab.push(entry);
        let (index, slab) = (&mut shard.index, &shard.slab);
        index.insert(h, idx, |i| self.hasher.hash_one(slab[i as usize].key_id));
        if shard.grants.len() > 64 && shard.grants.len() > shard.slab.len() / 4 {
            shard.grants.retain(|g| Arc::strong_count(g) > 1);
        }
    }

    /// Marks the entry for `id` stale: the next use re-reads the store
    /// (verified tags survive if the secret did not change).
    pub(crate) fn invalidate(&self, id: &KeyId) {
        let (h, s) = self.locate(id);
        let mut shard = self.write(s);
        shard.missing.remove(id);
        if let Some(i) = shard
            .index
            .find(h, |i| shard.slab[i as usize].key_id == *id)
        {
            shard.slab[i as usize].fetched_at = i64::MIN;
        }
    }

    /// Removes the entry for `id` and remembers that the store, read at
    /// `read_at`, has no such key (trusted for W like any entry).
    pub(crate) fn mark_missing(&self, id: &KeyId, read_at: i64) {
        let (h, s) = self.locate(id);
        let mut guard = self.write(s);
        let shard = &mut *guard;
        self.remove_from(shard, h, id);
        if shard.missing.len() >= self.max_per_shard.div_ceil(8).max(16) {
            shard.missing.clear();
        }
        shard.missing.insert(*id, read_at);
    }

    /// Marks every entry stale and forgets every missing id.
    pub(crate) fn invalidate_all(&self) {
        for s in 0..SHARDS {
            let mut shard = self.write(s);
            shard.missing.clear();
            shard.slab.iter_mut().for_each(|e| e.fetched_at = i64::MIN);
        }
    }

    /// Marks stale every entry whose grant belongs to `account`.
    pub(crate) fn invalidate_account(&self, account: &AccountId) {
        for s in 0..SHARDS {
            self.write(s)
                .slab
                .iter_mut()
                .filter(|e| e.grant.account == *account)
                .for_each(|e| e.fetched_at = i64::MIN);
        }
    }

    /// Number of cached keys.
    pub(crate) fn len(&self) -> usize {
        (0..SHARDS).map(|s| self.read(s).slab.len()).sum()
    }

    /// Bytes held by the cache's tables and entries (not counting shared
    /// grants and rarely present boxed extras).
    pub(crate) fn approx_bytes(&self) -> usize {
        (0..SHARDS)
            .map(|s| {
                let g = self.read(s);
                g.index.capacity() * size_of::<u64>()
                    + g.slab.capacity() * size_of::<KeyEntry>()
                    + g.grants.capacity() * (size_of::<Arc<Grant>>() + 1)
            })
            .sum()
    }
}

fn intern(
    grants: &mut HashSet<Arc<Grant>, foldhash::fast::RandomState>,
    grant: Arc<Grant>,
) -> Arc<Grant> {
    if let Some(existing) = grants.get(&*grant) {
        return Arc::clone(existing);
    }
    grants.insert(Arc::clone(&grant));
    grant
}

impl KeyCache {
    /// Removes the entry for `id` from `shard`, keeping its usage counts.
    fn remove_from(&self, shard: &mut Shard, h: u64, id: &KeyId) {
        let slab = &shard.slab;
        let Some(found) = shard.index.find(h, |i| slab[i as usize].key_id == *id) else {
            return;
        };
        shard.index.remove(h, found);
        let idx = found as usize;
        let last = shard.slab.len() - 1;
        if idx != last {
            let moved = self.hasher.hash_one(shard.slab[last].key_id);
            shard.index.relocate(moved, last as u32, found);
        }
        let gone = shard.slab.swap_remove(idx);
        self.usage
            .take_hot(&gone.usage, gone.key_id, &gone.grant.account);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_stay_compact() {
        assert!(size_of::<KeyEntry>() <= 104, "{}", size_of::<KeyEntry>());
    }
}
