//! A small, `Copy`, stack-allocated ASCII string used by the id newtypes, so
//! that handing out a verified [`Principal`](crate::Principal) never allocates.

use std::fmt;

/// Up to `N` non-NUL ASCII bytes stored inline, padded with NUL bytes.
///
/// There is no length field: the string ends at the first NUL. Equality
/// and hashing therefore work on the whole fixed-size array, which the
/// compiler turns into a few wide loads and compares (no `memcmp` call on
/// the verification hot path), and byte-wise array order is string order.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct InlineStr<const N: usize> {
    bytes: [u8; N],
}

impl<const N: usize> InlineStr<N> {
    /// Copies `s` inline; `None` when it is longer than `N`, not ASCII or
    /// holds a NUL byte.
    pub(crate) fn new(s: &str) -> Option<Self> {
        Self::from_ascii(s.as_bytes())
    }

    /// Copies `b`; `None` when longer than `N`, not ASCII or holding NUL.
    #[inline]
    pub(crate) fn from_ascii(b: &[u8]) -> Option<Self> {
        // Branch-free check (vectorizes): a NUL or non-ASCII byte fails.
        let bad = b
            .iter()
            .fold(0u8, |acc, &c| acc | u8::from(c.wrapping_sub(1) >= 0x7F));
        if b.len() > N || bad != 0 {
            return None;
        }
        let mut bytes = [0u8; N];
        bytes[..b.len()].copy_from_slice(b);
        Some(Self { bytes })
    }

    /// Copies `b`, which the caller has already checked to be non-NUL
    /// ASCII; `None` when longer than `N`. Copies with two fixed-size
    /// 16-byte moves when it can (the verification hot path).
    #[inline]
    pub(crate) fn from_checked_ascii(b: &[u8]) -> Option<Self> {
        let n = b.len();
        if n > N {
            return None;
        }
        let mut bytes = [0u8; N];
        if n >= 16 {
            bytes[..16].copy_from_slice(&b[..16]);
            bytes[n - 16..n].copy_from_slice(&b[n - 16..]);
        } else {
            bytes[..n].copy_from_slice(b);
        }
        Some(Self { bytes })
    }

    /// The padded array folded into one word: its 8-byte words, each
    /// rotated by its position, xored. The same for the same string, and
    /// no length scan or UTF-8 check (a few instructions on the warm path).
    #[inline]
    pub(crate) fn fold(&self) -> u64 {
        let mut acc = 0u64;
        let mut chunks = self.bytes.chunks_exact(8);
        for (i, c) in (&mut chunks).enumerate() {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            acc ^= u64::from_le_bytes(w).rotate_left(16 * i as u32);
        }
        for (i, &b) in chunks.remainder().iter().enumerate() {
            acc ^= u64::from(b) << (8 * i);
        }
        acc
    }

    /// Length in bytes.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.bytes.iter().position(|&b| b == 0).unwrap_or(N)
    }

    /// The string.
    pub(crate) fn as_str(&self) -> &str {
        // Only ASCII is ever stored (checked in `from_ascii`), so this
        // cannot fail.
        std::str::from_utf8(&self.bytes[..self.len()]).unwrap_or_default()
    }
}

/// Hashes the whole padded array as 8-byte words: one multiply-fold each
/// with foldhash, cheaper than hashing a byte slice of the used length.
/// Agrees with the derived `Eq`, which also compares the whole array.
impl<const N: usize> std::hash::Hash for InlineStr<N> {
    // Always: the key cache hashes an id on every verification, and the
    // call was not inlined there.
    #[inline(always)]
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        let mut chunks = self.bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            state.write_u64(u64::from_le_bytes(w));
        }
        for &b in chunks.remainder() {
            state.write_u8(b);
        }
    }
}

impl<const N: usize> fmt::Debug for InlineStr<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::unwrap_used)]
    fn fold_is_the_same_for_the_same_string_and_spreads_random_tails() {
        let a = InlineStr::<32>::new("kw_aB3dE5gH7jK9mN1pQ").unwrap();
        assert_eq!(
            a.fold(),
            InlineStr::<32>::new("kw_aB3dE5gH7jK9mN1pQ").unwrap().fold()
        );
        // Ids that differ in one character of their random part: the
        // phases taken from the high bits of fold × φ land in all of 16
        // buckets, none with more than twice its share.
        let mut buckets = [0u32; 16];
        for i in 0..4096u32 {
            let id = format!(
                "kw_{:017}",
                u64::from(i).wrapping_mul(2_654_435_761) % 100_000_000_000
            );
            let seed = InlineStr::<32>::new(&id)
                .unwrap()
                .fold()
                .wrapping_mul(0x9E37_79B9_7F4A_7C15);
            buckets[(seed >> 60) as usize] += 1;
        }
        assert!(
            buckets.iter().all(|&n| n > 0 && n < 2 * 4096 / 16),
            "{buckets:?}"
        );
    }

    #[test]
    fn round_trips_and_bounds() {
        let s = InlineStr::<8>::new("kw_abc").expect("fits");
        assert_eq!(s.as_str(), "kw_abc");
        assert!(InlineStr::<4>::new("toolong").is_none());
        assert!(InlineStr::<8>::new("é").is_none());
        assert_eq!(InlineStr::<8>::new("").expect("empty fits").as_str(), "");
        assert_eq!(InlineStr::<4>::new("full").expect("fits").as_str(), "full");
        assert!(InlineStr::<8>::new("a\0b").is_none());
        for s in [
            "",
            "kw_a",
            "kw_0123456789abcd",
            "kw_0123456789abcdefghijklmnopq",
        ] {
            let checked = InlineStr::<32>::from_checked_ascii(s.as_bytes()).expect("fits");
            assert_eq!(checked, InlineStr::<32>::new(s).expect("fits"));
        }
    }

    #[test]
    fn orders_as_strings() {
        let mut v: Vec<InlineStr<8>> = ["kw_b", "kw_ab", "kw_a", "kw_", "kw_aa"]
            .iter()
            .map(|s| InlineStr::new(s).expect("fits"))
            .collect();
        v.sort();
        let sorted: Vec<&str> = v.iter().map(InlineStr::as_str).collect();
        assert_eq!(sorted, ["kw_", "kw_a", "kw_aa", "kw_ab", "kw_b"]);
    }
}
