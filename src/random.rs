//! Randomness from the operating system's CSPRNG.

use rand::TryRng;
use rand::rngs::SysRng;

/// The base62 alphabet used by every credential (double-click selectable,
/// header and URL safe).
pub(crate) const BASE62: &[u8; 62] =
    b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Fills `out` with OS randomness.
///
/// # Panics
/// When the operating system cannot provide randomness; no credential can
/// be issued safely then, and continuing with weaker randomness is worse.
pub(crate) fn fill(out: &mut [u8]) {
    #[allow(clippy::expect_used)]
    SysRng
        .try_fill_bytes(out)
        .expect("the operating system's random number generator failed");
}

/// Fills `out` with uniformly random base62 characters (rejection sampling,
/// no modulo bias): each character carries log2(62) ≈ 5.95 bits.
pub(crate) fn fill_base62(out: &mut [u8]) {
    let mut pool = [0u8; 64];
    let mut i = 0;
    while i < out.len() {
        fill(&mut pool);
        for &b in &pool {
            // 248 = 62 * 4: values >= 248 would bias the result.
            if b < 248 && i < out.len() {
                out[i] = BASE62[(b % 62) as usize];
                i += 1;
            }
        }
    }
    pool.iter_mut().for_each(|b| *b = 0);
}

/// `n` random bytes.
pub(crate) fn bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    fill(&mut b);
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base62_is_uniformish_and_in_alphabet() {
        let mut out = [0u8; 6200];
        fill_base62(&mut out);
        assert!(out.iter().all(|c| BASE62.contains(c)));
        let distinct: std::collections::HashSet<_> = out.iter().collect();
        assert_eq!(distinct.len(), 62);
    }
}
