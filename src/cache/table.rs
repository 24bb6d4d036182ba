//! The key cache's table: open addressing with linear probing, the entries
//! stored in the table's own slots, and one control byte per slot kept in
//! a separate, small array.
//!
//! Why this shape: among a million keys, a verification mostly waits for
//! memory, and what counts is how many trips to memory depend on each
//! other. The control bytes are one byte a slot (about 1.2 MiB at a million
//! keys), small enough to stay in the CPU's caches, so a lookup goes from
//! them straight to its entry: one trip. The previous shape, an index of
//! 8-byte slots pointing into a dense slab, was 16 MiB of index at a
//! million keys, out of cache: two dependent trips (index, then entry),
//! which made warm verification among a million keys about 1.6× the
//! SHA-256 + `HashMap` design (see BENCHMARKS.md).
//!
//! Memory: the table grows by an eighth, not by doubling, whenever its load
//! would pass 9/10, so it is always at least 80% full once past its first
//! few slots: a slot costs its entry plus one byte, and a key at most 1/0.8
//! of that.
//!
//! Why not `hashbrown`: it doubles its capacity, so at the wrong moment a
//! table of large entries would sit half empty (twice the memory budget);
//! and its `HashTable` gives no way to keep the growth step small.

/// The control byte of an empty slot. A full slot's byte has its high bit
/// set (and 7 bits of the entry's hash), so it is never this.
const EMPTY: u8 = 0;

/// Largest load before the table grows: 9/10.
const LOAD_NUM: usize = 9;
const LOAD_DEN: usize = 10;

/// Smallest capacity once something is stored.
const MIN_CAPACITY: usize = 8;

/// Open-addressing table of `V`, found by a 64-bit hash, with an `S` beside
/// each slot in an array of its own (read only when the caller asks: the
/// key cache keeps its rarely needed extras there, out of the entries'
/// cache lines).
#[derive(Debug)]
pub(crate) struct Table<V, S = ()> {
    /// [`EMPTY`], or `0x80 |` 7 bits of the hash of the entry in the slot
    /// (one byte more, empty, while there are no slots).
    ctrl: Box<[u8]>,
    /// `Some` exactly where `ctrl` is not [`EMPTY`].
    slots: Box<[Option<V>]>,
    /// `S::default()` where the slot is empty.
    side: Box<[S]>,
    len: usize,
}

impl<V, S> Default for Table<V, S> {
    /// An empty table: no slots, and one empty control byte, so a lookup
    /// needs no test for "no slots" (it reads that byte and stops).
    fn default() -> Self {
        Self {
            ctrl: Box::new([EMPTY]),
            slots: Box::default(),
            side: Box::default(),
            len: 0,
        }
    }
}

/// The control byte for `hash`: 7 bits that neither the home slot (the
/// high bits, by [`home`]) nor the key cache's shard (the low 6 bits) use.
#[inline]
fn tag(hash: u64) -> u8 {
    0x80 | ((hash >> 6) as u8 & 0x7F)
}

/// The slot where probing for `hash` starts, among `capacity`: the hash's
/// high bits scaled to the capacity (one multiplication; the capacity need
/// not be a power of two).
#[inline]
fn home(hash: u64, capacity: usize) -> usize {
    ((u128::from(hash) * capacity as u128) >> 64) as usize
}

impl<V, S: Default> Table<V, S> {
    /// Number of entries stored.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Bytes held by the slots, their side values and control bytes.
    pub(crate) fn bytes(&self) -> usize {
        self.slots.len() * (size_of::<Option<V>>() + size_of::<S>()) + self.ctrl.len()
    }

    #[inline]
    fn next(&self, i: usize) -> usize {
        if i + 1 == self.slots.len() { 0 } else { i + 1 }
    }

    /// The slot of the entry under `hash` that `is_match` accepts, and the
    /// entry: the control bytes from the hash's home on, each slot whose
    /// byte is the hash's tag checked, up to the first empty slot (an entry
    /// lies before the first empty slot after its home). Byte by byte: a
    /// probe reads 1 to 4 bytes on average at the table's load, and reading
    /// 8 at a time in a `u64` cost more instructions without a measurable
    /// gain among a million keys (BENCHMARKS.md).
    #[inline]
    fn slot_of(&self, hash: u64, is_match: impl Fn(&V) -> bool) -> Option<(usize, &V)> {
        let want = tag(hash);
        let mut i = home(hash, self.slots.len());
        // Terminates: the load stays below 1, so some slot is empty.
        loop {
            let c = *self.ctrl.get(i)?;
            if c == EMPTY {
                return None;
            }
            if c == want
                && let Some(Some(v)) = self.slots.get(i)
                && is_match(v)
            {
                return Some((i, v));
            }
            i = self.next(i);
        }
    }

    /// The entry under `hash` that `is_match` accepts, and its side value
    /// (a reference: nothing of it is read until the caller does).
    #[inline]
    pub(crate) fn get(&self, hash: u64, is_match: impl Fn(&V) -> bool) -> Option<(&V, &S)> {
        let (i, v) = self.slot_of(hash, is_match)?;
        Some((v, self.side.get(i)?))
    }

    /// [`get`](Self::get), mutably.
    pub(crate) fn get_mut(
        &mut self,
        hash: u64,
        is_match: impl Fn(&V) -> bool,
    ) -> Option<(&mut V, &mut S)> {
        let (i, _) = self.slot_of(hash, is_match)?;
        Some((self.slots.get_mut(i)?.as_mut()?, self.side.get_mut(i)?))
    }

    /// Stores `value` and `side` under `hash` (the caller knows no entry
    /// matches it). `rehash` gives the hash of any stored entry, to grow.
    pub(crate) fn insert(&mut self, hash: u64, value: V, side: S, rehash: impl Fn(&V) -> u64) {
        if (self.len + 1) * LOAD_DEN > self.slots.len() * LOAD_NUM {
            self.grow(&rehash);
        }
        self.place(hash, value, side);
        self.len += 1;
    }

    fn place(&mut self, hash: u64, value: V, side: S) {
        let mut i = home(hash, self.slots.len());
        while self.ctrl[i] != EMPTY {
            i = self.next(i);
        }
        self.ctrl[i] = tag(hash);
        self.slots[i] = Some(value);
        self.side[i] = side;
    }

    fn grow(&mut self, rehash: &impl Fn(&V) -> u64) {
        let old_len = self.slots.len();
        // Always larger: below 8 slots the minimum is 8, from 8 on an
        // eighth is at least one slot.
        let new_len = (old_len + old_len / 8).max(MIN_CAPACITY);
        self.ctrl = vec![EMPTY; new_len].into_boxed_slice();
        let old = std::mem::replace(
            &mut self.slots,
            std::iter::repeat_with(|| None).take(new_len).collect(),
        );
        let old_side = std::mem::replace(
            &mut self.side,
            std::iter::repeat_with(S::default).take(new_len).collect(),
        );
        for (v, s) in old.into_vec().into_iter().zip(old_side.into_vec()) {
            if let Some(v) = v {
                let h = rehash(&v);
                self.place(h, v, s);
            }
        }
    }

    /// Removes and returns the entry under `hash` that `is_match` accepts,
    /// with its side value, shifting later entries of its probe run back so
    /// no tombstones are needed. `rehash` gives the hash of any stored
    /// entry.
    pub(crate) fn remove(
        &mut self,
        hash: u64,
        is_match: impl Fn(&V) -> bool,
        rehash: impl Fn(&V) -> u64,
    ) -> Option<(V, S)> {
        let (mut hole, _) = self.slot_of(hash, is_match)?;
        let removed = self.slots[hole].take()?;
        let removed_side = std::mem::take(&mut self.side[hole]);
        let capacity = self.slots.len();
        let mut j = hole;
        loop {
            j = self.next(j);
            if self.ctrl[j] == EMPTY {
                break;
            }
            let Some(v) = &self.slots[j] else { break };
            let home = home(rehash(v), capacity);
            // The entry at `j` moves into the hole unless its home lies
            // cyclically in (hole, j]: there it must stay to be found.
            let stays = if hole <= j {
                hole < home && home <= j
            } else {
                hole < home || home <= j
            };
            if !stays {
                self.ctrl[hole] = self.ctrl[j];
                self.slots[hole] = self.slots[j].take();
                self.side[hole] = std::mem::take(&mut self.side[j]);
                hole = j;
            }
        }
        self.ctrl[hole] = EMPTY;
        self.len -= 1;
        Some((removed, removed_side))
    }

    /// The first entry at or after slot `start` (modulo the capacity), to
    /// pick an eviction victim from a random start.
    pub(crate) fn first_from(&self, start: usize) -> Option<&V> {
        let capacity = self.slots.len();
        if self.len == 0 {
            return None;
        }
        let start = start % capacity;
        self.slots[start..]
            .iter()
            .chain(&self.slots[..start])
            .find_map(Option::as_ref)
    }

    /// Every entry.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &V> {
        self.slots.iter().filter_map(Option::as_ref)
    }

    /// Every entry with its side value, mutably.
    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = (&mut V, &mut S)> {
        self.slots
            .iter_mut()
            .zip(self.side.iter_mut())
            .filter_map(|(v, s)| Some((v.as_mut()?, s)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::collections::hash_map::Entry;

    /// A weak hash on purpose: many shared tags and homes.
    fn h(k: u32) -> u64 {
        u64::from(k % 97).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (u64::from(k) << 40)
    }

    #[test]
    fn agrees_with_a_map_through_inserts_and_removals() {
        let mut table: Table<u32, u32> = Table::default();
        let mut model: HashMap<u32, u32> = HashMap::new();
        let mut x = 12345u32;
        for step in 0..40_000u32 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let key = x % 3000;
            match model.entry(key) {
                Entry::Occupied(known) if step % 3 == 0 => {
                    let gone = table.remove(h(key), |&v| v == key, |&v| h(v));
                    assert_eq!(gone.map(|(_, s)| s), Some(known.remove()));
                }
                Entry::Occupied(mut known) => {
                    let (_, s) = table.get_mut(h(key), |&v| v == key).expect("stored");
                    *s = step;
                    *known.get_mut() = step;
                }
                Entry::Vacant(new) => {
                    table.insert(h(key), key, step, |&v| h(v));
                    new.insert(step);
                }
            }
            if step % 997 == 0 {
                for k in 0..3000 {
                    let found = table.get(h(k), |&v| v == k).map(|(_, &s)| s);
                    assert_eq!(found, model.get(&k).copied(), "key {k} at step {step}");
                }
                assert_eq!(table.iter().count(), model.len());
            }
        }
        assert_eq!(table.len(), model.len());
        assert!(table.len() * LOAD_DEN <= table.slots.len() * LOAD_NUM);
        for (c, slot) in table.ctrl.iter().zip(table.slots.iter()) {
            assert_eq!(*c != EMPTY, slot.is_some(), "control bytes match the slots");
        }
    }

    #[test]
    fn stays_at_least_four_fifths_full_as_it_grows() {
        let mut table: Table<u64> = Table::default();
        let mix = |k: u64| k.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(17);
        for k in 0..200_000u64 {
            table.insert(mix(k), k, (), |&v| mix(v));
            if k > 1000 {
                let load = table.len() as f64 / table.slots.len() as f64;
                assert!(load >= 0.79, "load {load} at {k}");
            }
        }
        for k in (0..200_000u64).step_by(7) {
            assert_eq!(table.get(mix(k), |&v| v == k).map(|(v, _)| *v), Some(k));
        }
        assert!(table.get(mix(200_001), |&v| v == 200_001).is_none());
    }

    #[test]
    fn finds_a_victim_from_any_start() {
        let mut table: Table<u32> = Table::default();
        assert!(table.first_from(3).is_none());
        table.insert(h(5), 5, (), |&v| h(v));
        for start in 0..20 {
            assert_eq!(table.first_from(start), Some(&5));
        }
    }
}
