//! Hashes imported from other systems (feature `import`): bcrypt and
//! unsalted SHA-256, checked once at a key's first verification and then
//! replaced by keyward's argon2id (the rehash of [`Checked::Match`]).
//!
//! Argon2 PHC strings of any variant go through the argon2 path of
//! [`Hasher::check`](super::Hasher::check); only the other kinds are here.
//!
//! - **bcrypt** (`$2a$`, `$2b$`, `$2y$`, `$2x$`, 60 characters): checked by
//!   the `bcrypt` crate, which compares in constant time. Its cost is bounded
//!   like argon2's parameters ([`MAX_BCRYPT_COST`]). bcrypt ignores every
//!   byte after the 72nd, so a presented key of 72 bytes or more is refused
//!   rather than matched on its first 72 bytes.
//! - **SHA-256** of the whole key string, stored as `$sha256$<64 hex>`:
//!   the presented string's SHA-256 compared in constant time. Fit only for
//!   random keys (what API keys are): it is what Unkey and many others
//!   store, and it is replaced by argon2id at the first match.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{Checked, StoredHashError};
use crate::credential::SecretMaterial;

/// The highest bcrypt cost accepted (2^15 rounds, about 3 s of one core):
/// a corrupt or hostile stored hash cannot pin a hashing slot for longer.
pub(crate) const MAX_BCRYPT_COST: u32 = 15;

/// The marker of a stored SHA-256 hash.
const SHA256: &str = "$sha256$";

/// bcrypt's input limit: bytes after it do not count.
const BCRYPT_MAX_INPUT: usize = 72;

/// A legacy hash kind, by its stored form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Legacy {
    Bcrypt,
    Sha256,
}

impl Legacy {
    /// The kind of a stored hash, `None` for argon2 (and anything else).
    pub(crate) fn of(stored: &str) -> Option<Self> {
        if stored.starts_with(SHA256) {
            Some(Self::Sha256)
        } else if ["$2a$", "$2b$", "$2y$", "$2x$"]
            .iter()
            .any(|p| stored.starts_with(p))
        {
            Some(Self::Bcrypt)
        } else {
            None
        }
    }

    /// Checks `m` against `stored`; a match always asks for a rehash.
    pub(crate) fn check(
        self,
        stored: &str,
        m: SecretMaterial<'_>,
    ) -> Result<Checked, StoredHashError> {
        let matched = match self {
            Self::Sha256 => {
                let hex = stored.get(SHA256.len()..).ok_or(StoredHashError::Corrupt)?;
                let expected = decode_hex(hex).ok_or(StoredHashError::Corrupt)?;
                bool::from(Sha256::digest(m.0).as_slice().ct_eq(&expected))
            }
            Self::Bcrypt => {
                if bcrypt_cost(stored)? > MAX_BCRYPT_COST {
                    return Err(StoredHashError::OverCeiling);
                }
                if m.0.len() >= BCRYPT_MAX_INPUT {
                    return Ok(Checked::Mismatch);
                }
                bcrypt::verify(m.0, stored).map_err(|_| StoredHashError::Corrupt)?
            }
        };
        Ok(if matched {
            Checked::Match { rehash: true }
        } else {
            Checked::Mismatch
        })
    }

    /// The stored form of an imported hash of this kind (`$sha256$` and
    /// lowercase hex for SHA-256), or why it is unusable.
    pub(crate) fn normalize(self, hash: &str) -> Result<String, &'static str> {
        match self {
            Self::Sha256 => {
                let hex = hash.strip_prefix(SHA256).unwrap_or(hash);
                decode_hex(hex).ok_or("a SHA-256 hash is 64 hexadecimal digits")?;
                Ok(format!("{SHA256}{}", hex.to_ascii_lowercase()))
            }
            Self::Bcrypt => {
                let cost = bcrypt_cost(hash).map_err(|_| "not a valid bcrypt hash")?;
                if cost > MAX_BCRYPT_COST {
                    return Err("bcrypt cost above 15");
                }
                // Parses the salt and digest too (no hashing).
                hash.parse::<bcrypt::HashParts>()
                    .map_err(|_| "not a valid bcrypt hash")?;
                Ok(hash.to_owned())
            }
        }
    }

    /// Whether `hash` (as given for import) is a bare SHA-256 hex digest.
    pub(crate) fn is_sha256_hex(hash: &str) -> bool {
        decode_hex(hash).is_some()
    }
}

/// The SHA-256 of a key string as an alias: 64 lowercase hex digits,
/// written into `out` (no allocation on the verification path).
pub(crate) fn sha256_hex<'a>(s: &[u8], out: &'a mut [u8; 64]) -> &'a str {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for (i, b) in Sha256::digest(s).iter().enumerate() {
        out[2 * i] = HEX[usize::from(b >> 4)];
        out[2 * i + 1] = HEX[usize::from(b & 0xF)];
    }
    std::str::from_utf8(out).unwrap_or_default()
}

/// The cost field of a bcrypt hash (`$2b$12$…`).
fn bcrypt_cost(stored: &str) -> Result<u32, StoredHashError> {
    if stored.len() != 60 || !stored.is_ascii() {
        return Err(StoredHashError::Corrupt);
    }
    stored
        .get(4..6)
        .and_then(|c| c.parse().ok())
        .ok_or(StoredHashError::Corrupt)
}

/// 32 bytes from 64 hex digits (either case).
fn decode_hex(hex: &str) -> Option<[u8; 32]> {
    let bytes = hex.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let nibble = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = [0u8; 32];
    for (o, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
        *o = nibble(pair[0])? << 4 | nibble(pair[1])?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_matches_only_the_same_string_and_asks_for_a_rehash() {
        let mut buf = [0u8; 64];
        let hex = sha256_hex(b"sk_live_abc", &mut buf).to_owned();
        let stored = Legacy::Sha256
            .normalize(&hex.to_uppercase())
            .expect("valid");
        assert_eq!(stored, format!("$sha256${hex}"));
        assert_eq!(Legacy::of(&stored), Some(Legacy::Sha256));
        assert_eq!(
            Legacy::Sha256.check(&stored, SecretMaterial(b"sk_live_abc")),
            Ok(Checked::Match { rehash: true })
        );
        assert_eq!(
            Legacy::Sha256.check(&stored, SecretMaterial(b"sk_live_abd")),
            Ok(Checked::Mismatch)
        );
        assert!(Legacy::Sha256.normalize("abc").is_err());
    }

    #[test]
    fn bcrypt_checks_bounds_cost_and_refuses_truncated_matches() {
        let stored = bcrypt::hash("sk_live_abc", 4).expect("hash");
        assert_eq!(Legacy::of(&stored), Some(Legacy::Bcrypt));
        assert_eq!(
            Legacy::Bcrypt.normalize(&stored).as_deref(),
            Ok(stored.as_str())
        );
        assert_eq!(
            Legacy::Bcrypt.check(&stored, SecretMaterial(b"sk_live_abc")),
            Ok(Checked::Match { rehash: true })
        );
        assert_eq!(
            Legacy::Bcrypt.check(&stored, SecretMaterial(b"sk_live_abx")),
            Ok(Checked::Mismatch)
        );
        let long = "x".repeat(80);
        let truncated = bcrypt::hash(&long, 4).expect("hash");
        assert_eq!(
            Legacy::Bcrypt.check(&truncated, SecretMaterial(long.as_bytes())),
            Ok(Checked::Mismatch)
        );
        let costly = format!("$2b$31${}", &stored[7..]);
        assert_eq!(
            Legacy::Bcrypt.check(&costly, SecretMaterial(b"sk_live_abc")),
            Err(StoredHashError::OverCeiling)
        );
        assert!(Legacy::Bcrypt.normalize(&costly).is_err());
        assert!(Legacy::Bcrypt.normalize("$2b$04$short").is_err());
    }
}
