//! The key verification cache: a sharded, read-mostly table of compact key
//! entries holding, per key, the keyed tag of the secret that last passed
//! argon2 (never the secret), the key's effective grant and its state.
//!
//! Layout: each shard is an `RwLock` over a [`Table`] holding the entries
//! in its own slots, found through one control byte a slot that stays in
//! the CPU's caches (one trip to memory to reach an entry among a million
//! keys), grown by an eighth at a time so it stays at least 80% full. Grants
//! (account + effective permissions) are interned per shard, so two threads
//! verifying keys of the same account in different shards never touch the
//! same reference count.

use std::collections::{HashMap, HashSet};
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};

use ipnet::IpNet;

use super::Vouch;
use super::table::Table;
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

impl Extra {
    /// The previous secret's slot while a grace period is open at `now`.
    #[inline]
    pub(crate) fn previous_at(&self, now: i64) -> Option<&SecretSlot> {
        let (slot, until) = self.previous.as_ref()?;
        (now < *until).then_some(slot)
    }

    /// Whether `ip` may use the key (any, without an allowlist).
    fn ip_allowed(&self, ip: Option<IpAddr>) -> bool {
        self.allowed.is_empty() || ip.is_some_and(|ip| self.allowed.iter().any(|n| n.contains(&ip)))
    }

    /// Whether a request from the browser origin `origin` (`None`: it
    /// sent neither `Origin` nor `Referer`) may use the key.
    fn origin_allowed(&self, origin: Option<&str>) -> bool {
        self.origins.is_empty()
            || origin.is_some_and(|o| {
                self.origins
                    .iter()
                    .any(|p| crate::origin::origin_matches(p, o))
            })
    }

    /// Whether nothing in it is needed any more (then the key drops it).
    fn is_empty(&self) -> bool {
        self.current_hash.is_none()
            && self.previous.is_none()
            && self.allowed.is_empty()
            && self.origins.is_empty()
            && self.session_epoch == 0
    }
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

/// A cached key: 96 bytes, aligned to 32 so that it spans exactly two
/// cache lines (104 bytes at 8-byte alignment spanned 2.5 on average, and
/// a verification among a million keys reads every line of its entry). A
/// table slot is 96 bytes, 8 for its [`Extra`] pointer kept apart and one
/// control byte: a million keys fit the memory budget at the table's
/// 80–90% load.
#[derive(Debug)]
#[repr(align(32))]
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
    pub(crate) generation: u32,
    /// The stored record's version (low 29 bits), whether the key has an
    /// [`Extra`] (bit 2), whether a change feed may vouch for the entry
    /// (bit 1) and the active flag (bit 0). A read of an older version
    /// never replaces a newer one (a slow read racing a change).
    state: u32,
}

const ACTIVE: u32 = 1;
const VOUCHABLE: u32 = 2;
const HAS_EXTRA: u32 = 4;
const VERSION_SHIFT: u32 = 3;

/// A key as read from the store, to be cached: its entry and its extras.
#[derive(Debug)]
pub(crate) struct LoadedKey {
    pub(crate) entry: KeyEntry,
    pub(crate) extra: Option<Box<Extra>>,
}

impl LoadedKey {
    /// A key read from the store at `fetched_at`.
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
        let entry = KeyEntry {
            key_id,
            tag: tag.unwrap_or([0; 16]),
            fetched_at,
            usage: HotUsage::new(),
            grant,
            expires_at,
            generation,
            state: ((version as u32) << VERSION_SHIFT) | u32::from(active),
        };
        Self { entry, extra }
    }

    /// The key as one a change feed may vouch for when `may` (its read
    /// and its account's raced no change): the cache confirms it when
    /// storing it ([`KeyCache::upsert`]).
    pub(crate) fn vouchable_if(mut self, may: bool) -> Self {
        self.entry = self.entry.vouchable_if(may);
        self
    }
}

/// A cached key as found: its entry, and where its [`Extra`] is kept,
/// read only when the entry says it has one (so most verifications never
/// touch that memory).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Cached<'a> {
    entry: &'a KeyEntry,
    extra: &'a Option<Box<Extra>>,
}

impl std::ops::Deref for Cached<'_> {
    type Target = KeyEntry;

    #[inline]
    fn deref(&self) -> &KeyEntry {
        self.entry
    }
}

impl<'a> Cached<'a> {
    /// The key's extras, if it has any.
    #[inline]
    pub(crate) fn extra(&self) -> Option<&'a Extra> {
        if self.entry.state & HAS_EXTRA == 0 {
            return None;
        }
        crate::hint::cold_path();
        self.extra.as_deref()
    }

    /// The key's session epoch.
    #[inline]
    pub(crate) fn session_epoch(&self) -> u32 {
        self.extra().map_or(0, |e| e.session_epoch)
    }

    /// The previous secret's slot while a grace period is open at `now`.
    #[inline]
    pub(crate) fn previous_at(&self, now: i64) -> Option<&'a SecretSlot> {
        self.extra()?.previous_at(now)
    }

    /// The hash of the current secret while no verification has replaced
    /// it by a tag.
    pub(crate) fn current_hash(&self) -> Option<&'a PhcString> {
        self.extra()?.current_hash.as_ref()
    }

    /// Whether `ip` may use the key.
    pub(crate) fn ip_allowed(&self, ip: Option<IpAddr>) -> bool {
        self.extra().is_none_or(|e| e.ip_allowed(ip))
    }

    /// Whether a client at `ip`, from the browser origin `origin`, may use
    /// the key. Inline: for most keys (no `Extra`) it is one test.
    #[inline]
    pub(crate) fn admits(&self, ip: Option<IpAddr>, origin: Option<&str>) -> bool {
        self.extra()
            .is_none_or(|e| e.ip_allowed(ip) && e.origin_allowed(origin))
    }
}

impl KeyEntry {
    /// The entry as one a change feed may vouch for when `may`.
    fn vouchable_if(mut self, may: bool) -> Self {
        self.state = (self.state & !VOUCHABLE) | if may { VOUCHABLE } else { 0 };
        self
    }

    /// Records whether the key has an [`Extra`].
    fn set_has_extra(&mut self, has: bool) {
        self.state = (self.state & !HAS_EXTRA) | if has { HAS_EXTRA } else { 0 };
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

    /// The low 29 bits of the stored record's version.
    fn version(&self) -> u32 {
        self.state >> VERSION_SHIFT
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
}

impl LoadedKey {
    /// Keeps the tags of `old` (with its extras `old_extra`) that still
    /// describe the same secrets.
    fn inherit_tags(&mut self, old: &KeyEntry, old_extra: Option<&Extra>) {
        let same_generation = old.generation == self.entry.generation;
        if same_generation && self.entry.tag().is_none() {
            self.entry.set_tag(old.tag());
            if self.entry.tag().is_some()
                && let Some(extra) = self.extra.as_deref_mut()
            {
                extra.current_hash = None;
            }
        }
        let old_prev = old_extra.and_then(|e| e.previous.as_ref());
        let new_prev = self.extra.as_deref_mut().and_then(|e| e.previous.as_mut());
        if let (Some((old_slot, old_until)), Some((new_slot, new_until))) = (old_prev, new_prev)
            && old_until == new_until
            && same_generation
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
    Entry(Cached<'a>),
    /// The store said, at this time (unix nanoseconds), that no such key
    /// exists.
    Missing(i64),
    /// Nothing is known about the id.
    Absent,
}

/// [`KeyCache::find`] for an id not in the table. Out of line: the warm
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
    entries: Table<KeyEntry, Option<Box<Extra>>>,
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
                    entries: Table::default(),
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
        // The low bits pick the shard; the table uses the others (its
        // home slot and control byte), so slots within a shard are not
        // biased.
        (h, (h as usize) % SHARDS)
    }

    #[inline]
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
        let found = match shard.entries.get(h, |e| e.key_id == *id) {
            Some((entry, extra)) => Found::Entry(Cached { entry, extra }),
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
            for e in shard.entries.iter() {
                self.usage.take_hot(&e.usage, e.key_id, &e.grant.account);
            }
        }
    }

    /// Records that the secret with `tag` passed argon2 for the current
    /// (`previous == false`) or previous secret of generation `generation`.
    pub(crate) fn mark_verified(&self, id: &KeyId, generation: u32, previous: bool, tag: Tag) {
        let (h, s) = self.locate(id);
        let mut shard = self.write(s);
        let Some((e, extra)) = shard.entries.get_mut(h, |e| e.key_id == *id) else {
            return;
        };
        if e.generation != generation {
            return;
        }
        if previous {
            if let Some((slot, _)) = extra.as_deref_mut().and_then(|x| x.previous.as_mut()) {
                slot.tag = Some(tag);
                slot.hash = None;
            }
        } else {
            e.set_tag(Some(tag));
            if let Some(x) = extra.as_deref_mut() {
                x.current_hash = None;
            }
        }
        if extra.as_deref().is_some_and(Extra::is_empty) {
            *extra = None;
            e.set_has_extra(false);
        }
    }

    /// Inserts or replaces the entry for `entry.key_id`, keeping verified
    /// tags that still apply. `grant` is interned per shard. `seen` is
    /// [`Vouch::changes`] taken before the entry's store read: the entry
    /// stays vouchable only if no change was applied since (checked under
    /// the shard's lock, which every invalidation takes after counting).
    pub(crate) fn upsert(&self, mut loaded: LoadedKey, seen: Option<u64>) {
        let (h, s) = self.locate(&loaded.entry.key_id);
        let mut guard = self.write(s);
        let shard = &mut *guard;
        let may =
            loaded.entry.vouchable() && seen.is_some_and(|seen| self.vouch.unchanged_since(seen));
        loaded = loaded.vouchable_if(may);
        loaded.entry.grant = intern(&mut shard.grants, loaded.entry.grant);
        let id = loaded.entry.key_id;
        if !shard.missing.is_empty() {
            shard.missing.remove(&id);
        }
        if let Some((old, old_extra)) = shard.entries.get_mut(h, |e| e.key_id == id) {
            let new = &loaded.entry;
            if (old.version(), old.fetched_at) > (new.version(), new.fetched_at) {
                return; // a newer record or read already landed
            }
            loaded.inherit_tags(old, old_extra.as_deref());
            let LoadedKey { mut entry, extra } = loaded;
            entry.set_has_extra(extra.is_some());
            // The counts move with the key; the new entry's are empty.
            std::mem::swap(&mut entry.usage, &mut old.usage);
            *old = entry;
            *old_extra = extra;
            return;
        }
        let LoadedKey { mut entry, extra } = loaded;
        entry.set_has_extra(extra.is_some());
        if shard.entries.len() >= self.max_per_shard
            && let Some(victim) = shard.entries.first_from((h >> 40) as usize)
        {
            let victim = victim.key_id;
            let vh = self.hasher.hash_one(victim);
            self.remove_from(shard, vh, &victim);
        }
        shard
            .entries
            .insert(h, entry, extra, |e| self.hasher.hash_one(e.key_id));
        if shard.grants.len() > 64 && shard.grants.len() > shard.entries.len() / 4 {
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
        if let Some((e, _)) = shard.entries.get_mut(h, |e| e.key_id == *id) {
            e.make_stale();
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
            shard.entries.iter_mut().for_each(|(e, _)| e.make_stale());
        }
    }

    /// Marks stale every entry whose grant belongs to `account`.
    pub(crate) fn invalidate_account(&self, account: &AccountId) {
        self.vouch.note_change();
        for s in 0..SHARDS {
            self.write(s)
                .entries
                .iter_mut()
                .filter(|(e, _)| e.grant.account == *account)
                .for_each(|(e, _)| e.make_stale());
        }
    }

    /// Number of cached keys.
    pub(crate) fn len(&self) -> usize {
        (0..SHARDS).map(|s| self.read(s).entries.len()).sum()
    }

    /// Bytes held by the cache's tables and entries (not counting shared
    /// grants and rarely present boxed extras).
    pub(crate) fn approx_bytes(&self) -> usize {
        (0..SHARDS)
            .map(|s| {
                let g = self.read(s);
                g.entries.bytes() + g.grants.capacity() * (size_of::<Arc<Grant>>() + 1)
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
        let Some((gone, _)) =
            shard
                .entries
                .remove(h, |e| e.key_id == *id, |e| self.hasher.hash_one(e.key_id))
        else {
            return;
        };
        self.usage
            .take_hot(&gone.usage, gone.key_id, &gone.grant.account);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_stay_compact() {
        // Two cache lines exactly, wherever the entry sits in the table.
        assert_eq!(size_of::<KeyEntry>(), 96);
        assert_eq!(align_of::<KeyEntry>(), 32);
        // A table slot is an `Option<KeyEntry>`: the grant's pointer is its
        // niche, so the option costs nothing.
        assert_eq!(size_of::<Option<KeyEntry>>(), size_of::<KeyEntry>());
    }
}
