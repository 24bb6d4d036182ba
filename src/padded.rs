//! Cache-line padding, so that locks of neighbouring shards never share a
//! cache line (two threads verifying keys in different shards then never
//! write to the same line).

use std::ops::Deref;

/// `T` aligned to 128 bytes (two 64-byte lines: adjacent-line prefetchers
/// pair them).
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct Padded<T>(pub(crate) T);

impl<T> Deref for Padded<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}
