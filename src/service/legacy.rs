//! Old key strings of imported keys (feature `import`): how a string such as
//! `sk_live_…`, issued by another system, finds its key and is verified.
//!
//! # Design
//!
//! An imported key gets a keyward [`KeyId`] like any other, and one
//! *alias*: what identifies its old string. [`LegacyKeys`] says which
//! strings are old ones (by their prefix) and what their alias is:
//!
//! - [`LegacyKeys::sha256`]: the SHA-256 of the whole string (64 hex
//!   digits), for systems whose keys are one opaque token. It is computable
//!   at import from the secret or from the old system's own SHA-256 hash.
//! - [`LegacyKeys::leading`]: the string's first `n` characters, for
//!   systems whose keys start with a public id (`sk_live_<id><secret>`);
//!   the id is given at import with the old system's hash of any kind.
//!
//! Verifying an old string is: its alias (a slice, or one SHA-256 of a
//! short string), a read-locked map from alias to key id, then the key's
//! usual path with the whole string as the secret: warm, one keyed SipHash
//! of it compared in constant time with the tag remembered after the first
//! successful check; cold, the stored hash (bcrypt, SHA-256 or argon2) on
//! a hashing slot, then argon2id from then on (the rehash). The alias is
//! not secret (a public id, or a preimage-resistant digest of a random
//! key), so looking it up in a map reveals what a key id lookup does:
//! whether such a key exists, never anything about its secret.
//! Remembered aliases expire after W, like every cached entry.

use std::collections::HashMap;
use std::sync::RwLock;

use super::Keyward;
use crate::context::VerifyContext;
use crate::credential::{SecretMaterial, UncheckedSecret};
use crate::error::{Error, Result};
use crate::id::KeyId;
use crate::principal::Principal;

/// Longest old key string accepted (longer ones are malformed).
pub const MAX_LEGACY_KEY_LEN: usize = 256;

/// The aliases remembered at most; beyond, the map starts over (a flood of
/// made-up strings costs store reads, never memory).
const MAX_ALIASES: usize = 1_000_000;

/// Which strings are old keys from the system keys were imported from, and
/// how each finds its key (see the module docs of `keyward::service::legacy`
/// in the source): set with
/// [`KeywardBuilder::legacy_keys`](crate::KeywardBuilder::legacy_keys).
///
/// ```
/// use keyward::LegacyKeys;
/// // Keys like `sk_live_4eC39HqLyjWDarjtT1zdp7dc`, found by their SHA-256.
/// let legacy = LegacyKeys::sha256("sk_live_")?;
/// // Keys like `pk_0123abcd.<secret>`, found by their first 11 characters.
/// let by_id = LegacyKeys::leading("pk_", 11)?;
/// # Ok::<_, keyward::InvalidLegacyKeys>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegacyKeys {
    prefix: String,
    lookup: Lookup,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lookup {
    Sha256,
    Leading(usize),
}

/// Error for an unusable [`LegacyKeys`] setting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid legacy key setting: {0}")]
pub struct InvalidLegacyKeys(&'static str);

impl LegacyKeys {
    /// Old keys start with `prefix` (1-32 visible ASCII characters) and are
    /// found by the SHA-256 of the whole string.
    ///
    /// # Errors
    /// [`InvalidLegacyKeys`] for an empty, long or non-ASCII prefix.
    pub fn sha256(prefix: &str) -> std::result::Result<Self, InvalidLegacyKeys> {
        Ok(Self {
            prefix: checked_prefix(prefix)?,
            lookup: Lookup::Sha256,
        })
    }

    /// Old keys start with `prefix` and are found by their first `len`
    /// characters (the prefix included), a public id in the old system.
    ///
    /// # Errors
    /// [`InvalidLegacyKeys`] for a bad prefix, or a `len` not longer than
    /// the prefix or above 128.
    pub fn leading(prefix: &str, len: usize) -> std::result::Result<Self, InvalidLegacyKeys> {
        let prefix = checked_prefix(prefix)?;
        if len <= prefix.len() || len > 128 {
            return Err(InvalidLegacyKeys(
                "the public part must be longer than the prefix and at most 128 characters",
            ));
        }
        Ok(Self {
            prefix,
            lookup: Lookup::Leading(len),
        })
    }

    /// The prefix that marks old keys.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Whether `s` has the form of an old key: the prefix, more after it,
    /// at most [`MAX_LEGACY_KEY_LEN`] visible ASCII characters (and longer
    /// than the public part with [`leading`](Self::leading)).
    pub fn matches(&self, s: &[u8]) -> bool {
        let min = match self.lookup {
            Lookup::Sha256 => self.prefix.len(),
            Lookup::Leading(n) => n,
        };
        s.len() > min
            && s.len() <= MAX_LEGACY_KEY_LEN
            && s.starts_with(self.prefix.as_bytes())
            && s.iter().all(u8::is_ascii_graphic)
    }

    /// Whether aliases are SHA-256 digests (else leading characters).
    pub(crate) fn by_digest(&self) -> bool {
        self.lookup == Lookup::Sha256
    }

    /// The alias of an old key string (already [`matches`](Self::matches)),
    /// borrowing `buf` for a digest.
    pub(crate) fn alias_of<'a>(&self, s: &'a [u8], buf: &'a mut [u8; 64]) -> &'a str {
        match self.lookup {
            Lookup::Sha256 => crate::hash::legacy::sha256_hex(s, buf),
            Lookup::Leading(n) => std::str::from_utf8(&s[..n]).unwrap_or_default(),
        }
    }

    /// Whether `alias`, given at import, can be the alias of an old string.
    pub(crate) fn valid_alias(&self, alias: &str) -> bool {
        match self.lookup {
            Lookup::Sha256 => {
                alias.len() == 64
                    && alias
                        .bytes()
                        .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
            }
            Lookup::Leading(n) => {
                alias.len() == n
                    && alias.starts_with(&self.prefix)
                    && alias.bytes().all(|b| b.is_ascii_graphic())
            }
        }
    }
}

fn checked_prefix(p: &str) -> std::result::Result<String, InvalidLegacyKeys> {
    if p.is_empty() || p.len() > 32 || !p.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(InvalidLegacyKeys(
            "the prefix must be 1-32 visible ASCII characters",
        ));
    }
    Ok(p.to_owned())
}

/// What an alias was found to be: its key (none known), and when that was
/// read, by the caches' clock.
type Remembered = (Option<KeyId>, i64);

/// The configured [`LegacyKeys`] and the aliases this instance has read.
#[derive(Debug)]
pub(crate) struct Legacy {
    pub(crate) keys: LegacyKeys,
    aliases: RwLock<HashMap<Box<str>, Remembered>>,
}

impl Legacy {
    pub(crate) fn new(keys: LegacyKeys) -> Self {
        Self {
            keys,
            aliases: RwLock::default(),
        }
    }

    /// The remembered key of `alias` if read within `window` of `now`:
    /// `Some(None)` for an alias known to have no key.
    fn remembered(&self, alias: &str, now: i64, window: i64) -> Option<Option<KeyId>> {
        let map = self.aliases.read().unwrap_or_else(|e| e.into_inner());
        match map.get(alias) {
            Some(&(id, at)) if now.saturating_sub(at) <= window => Some(id),
            _ => None,
        }
    }

    pub(crate) fn remember(&self, alias: &str, id: Option<KeyId>, at: i64) {
        let mut map = self.aliases.write().unwrap_or_else(|e| e.into_inner());
        if map.len() >= MAX_ALIASES {
            map.clear();
        }
        map.insert(alias.into(), (id, at));
    }
}

impl Keyward {
    /// Verifies an old key string of an imported key (see [`LegacyKeys`]),
    /// as [`verify`](Self::verify) does a keyward key: the same outcomes,
    /// the same single [`Error::Unauthorized`] for an unknown string or a
    /// wrong one. `Authorization: Bearer <old string>` reaches it through
    /// [`verify_bearer`](Self::verify_bearer).
    ///
    /// # Errors
    /// [`Error::Malformed`] when no [`LegacyKeys`] is configured or `key`
    /// does not have its form; otherwise as [`verify`](Self::verify).
    pub async fn verify_legacy(&self, key: &str, ctx: VerifyContext<'_>) -> Result<Principal> {
        self.verify_legacy_bytes(key.as_bytes(), ctx).await
    }

    /// [`verify_legacy`](Self::verify_legacy) from this instance's caches
    /// alone: `None` when the store or a hash check is needed.
    pub fn verify_legacy_cached(
        &self,
        key: impl AsRef<[u8]>,
        ctx: VerifyContext<'_>,
    ) -> Option<Result<Principal>> {
        let key = key.as_ref();
        let now = self.now_nanos();
        let Some(legacy) = self.legacy_for(key) else {
            return Some(Err(malformed()));
        };
        let mut buf = [0u8; 64];
        let alias = legacy.keys.alias_of(key, &mut buf);
        match legacy.remembered(alias, now, self.inner.window_nanos)? {
            Some(id) => self.verify_warm(
                id,
                UncheckedSecret::without_checksum(SecretMaterial(key)),
                &mut None,
                ctx,
                now,
            ),
            None => Some(Err(Error::Unauthorized)),
        }
    }

    pub(crate) async fn verify_legacy_bytes(
        &self,
        key: &[u8],
        ctx: VerifyContext<'_>,
    ) -> Result<Principal> {
        let now = self.now_nanos();
        let legacy = self.legacy_for(key).ok_or_else(malformed)?;
        let mut buf = [0u8; 64];
        let alias = legacy.keys.alias_of(key, &mut buf);
        let id = match legacy.remembered(alias, now, self.inner.window_nanos) {
            Some(id) => id,
            None => {
                let id = self.inner.store.key_by_alias(alias).await?;
                legacy.remember(alias, id, now);
                id
            }
        };
        let id = id.ok_or(Error::Unauthorized)?;
        self.verify_material(
            id,
            UncheckedSecret::without_checksum(SecretMaterial(key)),
            ctx,
            now,
        )
        .await
    }

    /// The legacy setting when `key` has its form.
    #[inline]
    pub(crate) fn legacy_for(&self, key: &[u8]) -> Option<&Legacy> {
        self.inner.legacy.as_ref().filter(|l| l.keys.matches(key))
    }
}

fn malformed() -> Error {
    Error::Malformed(crate::credential::MalformedCredential::Format)
}
