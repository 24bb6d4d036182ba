//! Fast digests of secret material: the keyed cache tag and the session
//! token digest.

use crate::credential::SecretMaterial;

/// Length of the keyed tag kept in the verification cache (128 bits).
pub(crate) const TAG_LEN: usize = 16;

/// A keyed tag of a secret that passed argon2; compared in constant time.
pub(crate) type Tag = [u8; TAG_LEN];

/// Compares two tags in constant time (one 128-bit comparison).
#[inline]
pub(crate) fn tags_equal(a: &Tag, b: &Tag) -> bool {
    use subtle::ConstantTimeEq;
    bool::from(u128::from_le_bytes(*a).ct_eq(&u128::from_le_bytes(*b)))
}

/// Keyed BLAKE3 under a per-process random key: the cache keeps these tags,
/// never secrets, and they are useless outside this process.
pub(crate) struct Digester {
    key: [u8; 32],
}

impl Digester {
    /// A digester with a fresh random key from the OS.
    pub(crate) fn new() -> Self {
        Self {
            key: crate::random::bytes::<32>(),
        }
    }

    /// The keyed tag of `m`.
    #[inline]
    pub(crate) fn tag(&self, m: SecretMaterial<'_>) -> Tag {
        let full = blake3::keyed_hash(&self.key, m.0);
        let mut t = [0u8; TAG_LEN];
        t.copy_from_slice(&full.as_bytes()[..TAG_LEN]);
        // All zero marks "no tag" in a cache entry; never produce it (a
        // 2^-128 event, which at worst costs one argon2 run).
        t[0] |= u8::from(t == [0; TAG_LEN]);
        t
    }
}

impl Drop for Digester {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.key);
    }
}

impl std::fmt::Debug for Digester {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Digester([redacted])")
    }
}

/// The stored digest of a session token's secret part: unkeyed (every
/// instance must compute the same value) and safe because the input has 256
/// random bits, so it cannot be brute-forced.
pub(crate) fn session_digest(m: SecretMaterial<'_>) -> [u8; 32] {
    blake3::derive_key("keyward 2026 session token digest v1", m.0)
}
