//! A small, `Copy`, stack-allocated ASCII string used by the id newtypes, so
//! that handing out a verified [`Principal`](crate::Principal) never allocates.

use std::fmt;

/// Up to `N` ASCII bytes stored inline.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct InlineStr<const N: usize> {
    len: u8,
    bytes: [u8; N],
}

impl<const N: usize> InlineStr<N> {
    /// Copies `s` inline; `None` when it is longer than `N` or not ASCII.
    pub(crate) fn new(s: &str) -> Option<Self> {
        if s.len() > N || !s.is_ascii() || N > u8::MAX as usize {
            return None;
        }
        let mut bytes = [0u8; N];
        bytes[..s.len()].copy_from_slice(s.as_bytes());
        Some(Self {
            len: s.len() as u8,
            bytes,
        })
    }

    /// Copies bytes known to be ASCII; `None` when longer than `N`.
    #[inline]
    pub(crate) fn from_ascii(b: &[u8]) -> Option<Self> {
        if b.len() > N || !b.is_ascii() {
            return None;
        }
        let mut bytes = [0u8; N];
        bytes[..b.len()].copy_from_slice(b);
        Some(Self {
            len: b.len() as u8,
            bytes,
        })
    }

    /// The string.
    pub(crate) fn as_str(&self) -> &str {
        // Only ASCII is ever stored (checked in `new`), so this cannot fail.
        std::str::from_utf8(&self.bytes[..self.len as usize]).unwrap_or_default()
    }
}

/// Hashes only the used bytes (unused bytes are always zero, so this agrees
/// with the derived `Eq`), which keeps the hot path's hashing short.
impl<const N: usize> std::hash::Hash for InlineStr<N> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write(&self.bytes[..self.len as usize]);
    }
}

impl<const N: usize> fmt::Debug for InlineStr<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

// Ordered as the strings are (byte-wise), not by length first, so ids sort
// the same in memory and in SQL (`ORDER BY id`).
impl<const N: usize> PartialOrd for InlineStr<N> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl<const N: usize> Ord for InlineStr<N> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_bounds() {
        let s = InlineStr::<8>::new("kw_abc").expect("fits");
        assert_eq!(s.as_str(), "kw_abc");
        assert!(InlineStr::<4>::new("toolong").is_none());
        assert!(InlineStr::<8>::new("é").is_none());
        assert_eq!(InlineStr::<8>::new("").expect("empty fits").as_str(), "");
    }
}
