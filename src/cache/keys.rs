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
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};

use ipnet::IpNet;

use super::Vouch;
use super::index::SlotIndex;
use crate::digest::Tag;
use crate::id::{AccountId, KeyId};
use crate::padded::Padded;
use crate::principal::Grant;
use crate::store::PhcString;
use crate::usage::{HotUsage, UsageAggregator};

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
    /// Allowed browser origins, normalized patterns (empty: any).
    pub(crate) origins: Box<[Box<str>]>,
    /// The key's session epoch (see `StoredKey::session_epoch`); zero for
    /// most keys, which then need no `Extra` for it.
    pub(crate) session_epoch: u32,
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
    /// The stored record's version (low 30 bits), whether a change feed
    /// may vouch for the entry (bit 1) and the active flag (bit 0). A read
    /// of an older version never replaces a newer one (a slow read racing
    /// a change).
    state: u32,
}

const ACTIVE: u32 = 1;
const VOUCHABLE: u32 = 2;

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
            state: ((version as u32) << 2) | u32::from(active),
        }
    }

    /// The entry as one a change feed may vouch for when `may` (its read
    /// and its account's raced no change): the cache confirms it when
    /// storing it ([`KeyCache::upsert`]).
    pub(crate) fn vouchable_if(mut self, may: bool) -> Self {
        self.state = (self.state & !VOUCHABLE) | if may { VOUCHABLE } else { 0 };
        self
    }

    /// Whether a change feed may vouch for the entry: it was read with
    /// no change racing the read, and no change dropped it since.
    #[inline]
    pub(crate) fn vouchable(&self) -> bool {
        self.state & VOUCHABLE != 0
    }

    /// Since when the entry is known current: its read, or later, up to
    /// `covered_to`, when the feed vouches for it (it has applied every
    /// change made before `covered_to`, and none dropped this entry).
    #[inline]
    pub(crate) fn known_current_at(&self, covered_to: i64) -> i64 {
        if self.vouchable() {
            self.fetched_at.max(covered_to)
        } else {
            self.fetched_at
        }
    }

    /// Marks the entry stale: re-read on its next use.
    fn make_stale(&mut self) {
        self.fetched_at = i64::MIN;
        self.state &= !VOUCHABLE;
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
        self.state & ACTIVE != 0
    }

    /// The low 30 bits of the stored record's version.
    fn version(&self) -> u32 {
        self.state >> 2
    }

    /// A per-key random value that stays the same across re-reads (from
    /// the key's id, whose random part spreads it), for the phase of its
    /// refreshes. Read on most warm verifications: the id's words folded,
    /// no length scan or UTF-8 check (the id as a string cost about 110
    /// instructions here).
    #[inline]
    pub(crate) fn phase_seed(&self) -> u64 {
        self.key_id.fold().wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }

    /// The key's session epoch.
    #[inline]
    pub(crate) fn session_epoch(&self) -> u32 {
        self.extra.as_deref().map_or(0, |e| e.session_epoch)
    }

    /// The previous secret's slot while a grace period is open at `now`.
    #[inline]
    pub(crate) fn previous_at(&self, now: i64) -> Option<&SecretSlot> {
        let (slot, until) = self.extra.as_deref()?.previous.as_ref()?;
        (now < *until).then_some(slot)
    }

    /// The hash of the current secret while no verification has replaced
    /// it by a tag.
    pub(crate) fn current_hash(&self) -> Option<&PhcString> {
        self.extra.as_deref()?.current_hash.as_ref()
    }

    fn allowed(&self) -> &[IpNet] {
        self.extra.as_deref().map_or(&[], |e| &e.allowed)
    }

    /// Whether `ip` may use the key. Inline: for most keys (no `Extra`)
    /// it is one comparison.
    #[inline]
    pub(crate) fn ip_allowed(&self, ip: Option<IpAddr>) -> bool {
        let allowed = self.allowed();
        allowed.is_empty() || ip.is_some_and(|ip| allowed.iter().any(|n| n.contains(&ip)))
    }

    /// Whether a request from the browser origin `origin` (`None`: it
    /// sent neither `Origin` nor `Referer`) may use the key. Inline: for
    /// most keys (no `Extra`) it is one comparison.
    #[inline]
    pub(crate) fn origin_allowed(&self, origin: Option<&str>) -> bool {
        let allowed = self.extra.as_deref().map_or(&[][..], |e| &e.origins);
        allowed.is_empty()
            || origin.is_some_and(|o| allowed.iter().any(|p| crate::origin::origin_matches(p, o)))
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

/// What the cache holds for a key id: the cache only finds and stores;
/// what a finding means is the service's decision.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Found<'a> {
    /// The entry for the id.
    Entry(&'a KeyEntry),
    /// The store said, at this time (unix nanoseconds), that no such key
    /// exists.
    Missing(i64),
    /// Nothing is known about the id.
    Absent,
}

/// [`KeyCache::find`] for an id not in the slab. Out of line: the warm
/// path's code stays small.
#[cold]
#[inline(never)]
fn absent(shard: &Shard, id: &KeyId) -> Found<'static> {
    match shard.missing.get(id) {
        Some(&at) => Found::Missing(at),
        None => Found::Absent,
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
    /// Ids being refreshed ahead of expiry in the background.
    refreshing: Mutex<HashSet<KeyId, foldhash::fast::RandomState>>,
    /// What the change feed vouches for.
    vouch: Vouch,
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
            refreshing: Mutex::default(),
            vouch: Vouch::default(),
        }
    }

    /// What the change feed vouches for (its marks).
    #[inline]
    pub(crate) fn vouch(&self) -> &Vouch {
        &self.vouch
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

    /// The hot path: runs `f` on what the cache holds for `id`, under the
    /// shard's read lock (so `f` can count usage in the entry's counter
    /// without a second lookup). Allocation-free.
    #[inline(always)]
    pub(crate) fn find<R>(&self, id: &KeyId, f: impl FnOnce(Found<'_>) -> R) -> R {
        let (h, s) = self.locate(id);
        let shard = self.read(s);
        // One call of `f`, so that it is inlined here.
        let found = match shard
            .index
            .find(h, |i| shard.slab[i as usize].key_id == *id)
        {
            Some(i) => Found::Entry(&shard.slab[i as usize]),
            None => absent(&shard, id),
        };
        f(found)
    }

    /// Claims the background refresh of `id`: `false` when one is already
    /// queued or under way (or too many are: 65 536, a few batch windows'
    /// worth at a million keys in use and W = 30 s; a key refused a claim
    /// asks again on its next request).
    pub(crate) fn begin_refresh(&self, id: &KeyId) -> bool {
        let mut g = self.refreshing.lock().unwrap_or_else(|e| e.into_inner());
        g.len() < 65_536 && g.insert(*id)
    }

    /// Ends the background refresh of `id`.
    pub(crate) fn end_refresh(&self, id: &KeyId) {
        self.refreshing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
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
            x.current_hash.is_none()
                && x.previous.is_none()
                && x.allowed.is_empty()
                && x.session_epoch == 0
        });
        if empty {
            e.extra = None;
        }
    }

    /// Inserts or replaces the entry for `entry.key_id`, keeping verified
    /// tags that still apply. `grant` is interned per shard. `seen` is
    /// [`Vouch::changes`] taken before the entry's store read: the entry
    /// stays vouchable only if no change was applied since (checked under
    /// the shard's lock, which every invalidation takes after counting).
    pub(crate) fn upsert(&self, mut entry: KeyEntry, seen: Option<u64>) {
        let (h, s) = self.locate(&entry.key_id);
        let mut guard = self.write(s);
        let shard = &mut *guard;
        let may = entry.vouchable() && seen.is_some_and(|seen| self.vouch.unchanged_since(seen));
        entry = entry.vouchable_if(may);
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
        self.vouch.note_change();
        let (h, s) = self.locate(id);
        let mut shard = self.write(s);
        shard.missing.remove(id);
        if let Some(i) = shard
            .index
            .find(h, |i| shard.slab[i as usize].key_id == *id)
        {
            shard.slab[i as usize].make_stale();
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
        self.vouch.note_change();
        for s in 0..SHARDS {
            let mut shard = self.write(s);
            shard.missing.clear();
            shard.slab.iter_mut().for_each(KeyEntry::make_stale);
        }
    }

    /// Marks stale every entry whose grant belongs to `account`.
    pub(crate) fn invalidate_account(&self, account: &AccountId) {
        self.vouch.note_change();
        for s in 0..SHARDS {
            self.write(s)
                .slab
                .iter_mut()
                .filter(|e| e.grant.account == *account)
                .for_each(KeyEntry::make_stale);
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

// A grant's meters change state (atomics) but hash and compare by identity.
#[allow(clippy::mutable_key_type)]
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
