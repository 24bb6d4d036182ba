//! The key cache's index: key-id hash → slab position, one 8-byte slot per
//! bucket holding a 32-bit hash fragment and the position, with linear
//! probing.
//!
//! Why not `hashbrown`: its control bytes and its slots live in separate
//! parts of the allocation, so a lookup among a million keys is two
//! dependent cache misses before the entry itself is reached. Here the
//! fragment and the position share one slot: one miss, then the entry.
//! The caller always confirms a hit against the entry's full key id, so a
//! fragment collision costs one comparison, never a wrong answer.

/// Largest load before the index doubles: 7/8, as hashbrown.
const LOAD_NUM: usize = 7;
const LOAD_DEN: usize = 8;

/// Open-addressing index of slab positions.
#[derive(Debug, Default)]
pub(crate) struct SlotIndex {
    /// `0` is empty; otherwise `fragment << 32 | position`, where the
    /// fragment is odd (so a slot is never zero).
    slots: Box<[u64]>,
    len: usize,
}

/// The fragment of `hash` (its high 32 bits) kept in a slot; it also
/// picks the home bucket, so a slot's home can be recomputed from the slot
/// alone. Callers must not derive anything else from these bits (the key
/// cache picks shards from the low bits).
#[inline]
fn fragment(hash: u64) -> u32 {
    (hash >> 32) as u32 | 1
}

impl SlotIndex {
    #[inline]
    fn mask(&self) -> usize {
        self.slots.len().wrapping_sub(1)
    }

    #[inline]
    fn home(&self, frag: u32) -> usize {
        // Skip the lowest bit, which `fragment` forces to 1.
        (frag >> 1) as usize & self.mask()
    }

    /// Number of positions indexed.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Buckets allocated.
    pub(crate) fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// The position stored for `hash` that `is_match` accepts.
    #[inline]
    pub(crate) fn find(&self, hash: u64, mut is_match: impl FnMut(u32) -> bool) -> Option<u32> {
        if self.slots.is_empty() {
            return None;
        }
        let frag = fragment(hash);
        let mask = self.mask();
        let mut i = self.home(frag);
        loop {
            let s = self.slots[i];
            if s == 0 {
                return None;
            }
            if (s >> 32) as u32 == frag && is_match(s as u32) {
                return Some(s as u32);
            }
            i = (i + 1) & mask;
        }
    }

    /// Adds `position` under `hash` (the caller knows it is not present).
    /// `rehash` gives the hash of any stored position, to grow.
    pub(crate) fn insert(&mut self, hash: u64, position: u32, rehash: impl Fn(u32) -> u64) {
        if (self.len + 1) * LOAD_DEN > self.slots.len() * LOAD_NUM {
            self.grow(&rehash);
        }
        self.place(fragment(hash), position);
        self.len += 1;
    }

    fn place(&mut self, frag: u32, position: u32) {
        let mask = self.mask();
        let mut i = self.home(frag);
        while self.slots[i] != 0 {
            i = (i + 1) & mask;
        }
        self.slots[i] = (u64::from(frag) << 32) | u64::from(position);
    }

    fn grow(&mut self, rehash: &impl Fn(u32) -> u64) {
        let new_len = (self.slots.len() * 2).max(16);
        let old = std::mem::replace(&mut self.slots, vec![0; new_len].into_boxed_slice());
        for s in old.iter().copied().filter(|&s| s != 0) {
            let position = s as u32;
            self.place(fragment(rehash(position)), position);
        }
    }

    /// The bucket holding `position` under `hash`.
    fn bucket_of(&self, hash: u64, position: u32) -> Option<usize> {
        if self.slots.is_empty() {
            return None;
        }
        let frag = fragment(hash);
        let want = (u64::from(frag) << 32) | u64::from(position);
        let mask = self.mask();
        let mut i = self.home(frag);
        loop {
            match self.slots[i] {
                0 => return None,
                s if s == want => return Some(i),
                _ => i = (i + 1) & mask,
            }
        }
    }

    /// Stores `to` instead of `from` under `hash` (an entry moved in the
    /// slab).
    pub(crate) fn relocate(&mut self, hash: u64, from: u32, to: u32) {
        if let Some(i) = self.bucket_of(hash, from) {
            self.slots[i] = (self.slots[i] & !0xFFFF_FFFF) | u64::from(to);
        }
    }

    /// Removes `position` stored under `hash`, shifting later slots of the
    /// probe run back so no tombstones are needed.
    pub(crate) fn remove(&mut self, hash: u64, position: u32) -> bool {
        let Some(mut hole) = self.bucket_of(hash, position) else {
            return false;
        };
        let mask = self.mask();
        let mut j = hole;
        loop {
            j = (j + 1) & mask;
            let s = self.slots[j];
            if s == 0 {
                break;
            }
            let home = self.home((s >> 32) as u32);
            // Move `s` into the hole unless its home lies cyclically in
            // (hole, j]: then it must stay where it can still be found.
            let stays = if hole <= j {
                hole < home && home <= j
            } else {
                hole < home || home <= j
            };
            if !stays {
                self.slots[hole] = s;
                hole = j;
            }
        }
        self.slots[hole] = 0;
        self.len -= 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// A weak hash on purpose: many shared fragments and homes.
    fn h(k: u32) -> u64 {
        u64::from(k % 97).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (u64::from(k) << 40)
    }

    #[test]
    fn agrees_with_a_map_through_inserts_moves_and_removals() {
        let mut index = SlotIndex::default();
        // position -> key, like the slab
        let mut slab: Vec<u32> = Vec::new();
        let mut model: HashMap<u32, u32> = HashMap::new(); // key -> position
        let mut x = 12345u32;
        for step in 0..20_000u32 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let key = x % 3000;
            if let Some(&pos) = model.get(&key) {
                if step % 3 == 0 {
                    // swap_remove, as the cache does
                    assert!(index.remove(h(key), pos));
                    model.remove(&key);
                    let last = slab.len() as u32 - 1;
                    slab.swap_remove(pos as usize);
                    if pos != last {
                        let moved = slab[pos as usize];
                        index.relocate(h(moved), last, pos);
                        model.insert(moved, pos);
                    }
                }
            } else {
                let pos = slab.len() as u32;
                slab.push(key);
                let s = &slab;
                index.insert(h(key), pos, |p| h(s[p as usize]));
                model.insert(key, pos);
            }
            if step % 997 == 0 {
                for k in 0..3000 {
                    let found = index.find(h(k), |p| slab[p as usize] == k);
                    assert_eq!(found, model.get(&k).copied(), "key {k} at step {step}");
                }
            }
        }
        assert_eq!(index.len(), model.len());
        assert!(index.len() * LOAD_DEN <= index.capacity() * LOAD_NUM);
    }
}
