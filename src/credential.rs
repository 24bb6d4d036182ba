//! The credential formats: key ids, key secrets, the single-string key form
//! and session tokens. Parsing is strict, allocation-free and rejects
//! malformed, truncated or mistyped strings by their checksum before any
//! store access or hashing.
//!
//! | credential | format | length (prefix `kw`) |
//! |---|---|---|
//! | key id | `<prefix>_<17 base62>` (101 random bits, public) | 20 |
//! | key secret | `<prefix>_sk_<43 base62><6 base62 CRC-32C>` (256 random bits) | 55 |
//! | single-string key | `<prefix>_ak_<17 id base62><43 secret base62><6 CRC-32C>` | 72 |
//! | session token | `<prefix>_st_<17 session base62><43 base62><6 CRC-32C>` | 72 |
//! | session id | `<prefix>_ses_<17 base62>` (public) | 24 |
//!
//! The checksum is CRC-32C (Castagnoli, the polynomial with a hardware
//! instruction on x86-64 and aarch64) of every character before it, written
//! as 6 base62 characters (like GitHub's tokens' CRC32), so a
//! secret scanner can recognise keyward credentials with few false positives,
//! and a session token is never accepted as a key secret or the reverse (the
//! markers `sk`, `ak`, `st` differ and are covered by the checksum).

use std::fmt;

use crate::id::{KeyId, SessionId};
use crate::random::{BASE62, fill_base62};
use crate::secret::Secret;

/// Length of the random part of key and session ids.
pub(crate) const ID_RANDOM_LEN: usize = 17;
/// Length of the random part of secrets (43 base62 characters ≥ 256 bits).
pub(crate) const SECRET_RANDOM_LEN: usize = 43;
const CHECKSUM_LEN: usize = 6;
/// Characters after `<prefix>_sk_` in a key secret.
const SECRET_BODY: usize = SECRET_RANDOM_LEN + CHECKSUM_LEN;
/// Characters after `<prefix>_ak_` / `<prefix>_st_`: an id, a secret, a
/// checksum.
const PAIR_BODY: usize = ID_RANDOM_LEN + SECRET_RANDOM_LEN + CHECKSUM_LEN;
/// No credential keyward issues is longer than this; longer input is
/// rejected before it is looked at.
pub const MAX_CREDENTIAL_LEN: usize = 96;

/// Why a presented credential string was rejected before any lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MalformedCredential {
    /// Longer than any credential keyward issues.
    #[error("credential is too long")]
    TooLong,
    /// Wrong prefix, marker, length or characters.
    #[error("credential is not in the expected format")]
    Format,
    /// The checksum does not match: truncated, mistyped or made up.
    #[error("credential checksum does not match")]
    Checksum,
}

/// Error for an invalid credential prefix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid credential prefix {0:?}: must be 1-8 characters of lowercase ASCII letters and digits"
)]
pub struct InvalidPrefix(pub String);

/// The prefix that starts every credential of a deployment (default `kw`):
/// 1–8 lowercase ASCII letters and digits.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Prefix {
    len: u8,
    bytes: [u8; 8],
}

impl Prefix {
    /// Validates `p`.
    ///
    /// # Errors
    /// [`InvalidPrefix`] when `p` is empty, longer than 8 characters or has
    /// characters other than `a-z` and `0-9`.
    pub fn new(p: &str) -> Result<Self, InvalidPrefix> {
        let ok = (1..=8).contains(&p.len())
            && p.bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
        if !ok {
            return Err(InvalidPrefix(p.chars().take(16).collect()));
        }
        let mut bytes = [0u8; 8];
        bytes[..p.len()].copy_from_slice(p.as_bytes());
        Ok(Self {
            len: p.len() as u8,
            bytes,
        })
    }

    /// The prefix text.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(self.as_bytes()).unwrap_or_default()
    }

    #[inline]
    fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }
}

impl Default for Prefix {
    fn default() -> Self {
        Self {
            len: 2,
            bytes: *b"kw\0\0\0\0\0\0",
        }
    }
}

impl fmt::Debug for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Prefix({:?})", self.as_str())
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// 256 bits of secret material in base62, as presented or issued. It is
/// what the verifier hashes; it borrows from the presented string.
#[derive(Clone, Copy)]
pub(crate) struct SecretMaterial<'a>(pub(crate) &'a [u8]);

impl fmt::Debug for SecretMaterial<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretMaterial([redacted])")
    }
}

/// A key secret in the right format (prefix, marker, length, base62)
/// whose checksum is not checked yet. The warm path checks it only when no
/// verified tag matches the material: a match proves the secret (the
/// checksum exists to turn typos away before any store read or argon2,
/// and a match needs neither). So a secret whose random part is right is
/// accepted from the cache even with its checksum characters mistyped;
/// anything else malformed is refused as before.
#[derive(Clone, Copy)]
pub(crate) struct UncheckedSecret<'a> {
    /// The material, as [`parse_key_secret`] returns it.
    pub(crate) material: SecretMaterial<'a>,
    /// What the checksum covers, checksum last.
    checksummed: &'a [u8],
}

impl<'a> UncheckedSecret<'a> {
    /// Material that carries no checksum of keyward's (an imported key's
    /// old string): always well formed; only its hash can accept it.
    #[cfg(feature = "import")]
    pub(crate) fn without_checksum(material: SecretMaterial<'a>) -> Self {
        Self {
            material,
            checksummed: &[],
        }
    }

    /// Whether the checksum matches (always, for material without one).
    #[inline]
    pub(crate) fn well_formed(&self) -> bool {
        self.checksummed.is_empty() || checksum_ok(self.checksummed)
    }

    /// The material once its checksum is checked.
    pub(crate) fn checked(self) -> Result<SecretMaterial<'a>, MalformedCredential> {
        if self.well_formed() {
            Ok(self.material)
        } else {
            Err(MalformedCredential::Checksum)
        }
    }
}

impl fmt::Debug for UncheckedSecret<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("UncheckedSecret([redacted])")
    }
}

/// Value of each base62 character, 0xFF for every other byte.
const BASE62_VALUE: [u8; 256] = {
    let mut t = [0xFFu8; 256];
    let mut i = 0;
    while i < 62 {
        t[BASE62[i] as usize] = i as u8;
        i += 1;
    }
    t
};

/// Whether every byte is base62. Branch-free over the whole input (no
/// early exit, no table), so the compiler vectorizes it.
#[inline]
fn is_base62<const N: usize>(bytes: &[u8; N]) -> bool {
    bytes.iter().fold(0u8, |bad, &b| {
        let digit = b.wrapping_sub(b'0') < 10;
        // `| 0x20` folds A-Z onto a-z and maps no other byte into a-z.
        let letter = (b | 0x20).wrapping_sub(b'a') < 26;
        bad | u8::from(!(digit | letter))
    }) == 0
}

/// The checksum: CRC-32C (Castagnoli; one hardware instruction per 8
/// bytes on x86-64 and aarch64) of `data`, as 6 base62 characters.
fn crc_base62(data: &[u8]) -> [u8; CHECKSUM_LEN] {
    let mut v = crc32c::crc32c(data);
    let mut out = [b'0'; CHECKSUM_LEN];
    for slot in out.iter_mut().rev() {
        *slot = BASE62[(v % 62) as usize];
        v /= 62;
    }
    out
}

/// Checks the trailing 6-character checksum of `s` (already known to be
/// base62): decodes it and compares it with the CRC-32C of what precedes
/// it.
#[inline]
fn checksum_ok(s: &[u8]) -> bool {
    let (body, sum) = s.split_at(s.len() - CHECKSUM_LEN);
    let presented = sum.iter().fold(0u64, |acc, &c| {
        acc * 62 + u64::from(BASE62_VALUE[c as usize])
    });
    presented == u64::from(crc32c::crc32c(body))
}

/// Strips `<prefix>_<marker>_` from `s`: the prefix is compared as one
/// masked 8-byte word, the marker as a short fixed slice.
#[inline]
fn strip<'a>(s: &'a [u8], prefix: &Prefix, marker: &[u8]) -> Option<&'a [u8]> {
    let n = prefix.len as usize;
    let head: &[u8; 8] = s.first_chunk()?;
    let mask = u64::MAX >> (8 * (8 - n));
    if u64::from_le_bytes(*head) & mask != u64::from_le_bytes(prefix.bytes) {
        return None;
    }
    let rest = s[n..].strip_prefix(b"_")?;
    if marker.is_empty() {
        return Some(rest);
    }
    rest.strip_prefix(marker)?.strip_prefix(b"_")
}

/// Why `s` failed the format check: too long, or not in the format. Cold:
/// the accepted path's code stays contiguous.
#[cold]
#[inline(never)]
fn malformed(s: &[u8]) -> MalformedCredential {
    if s.len() > MAX_CREDENTIAL_LEN {
        MalformedCredential::TooLong
    } else {
        MalformedCredential::Format
    }
}

/// Parses `<prefix>_<marker>_<random: n1><random: n2><crc>`, returning the
/// two random parts.
fn parse_checksummed<'a, const BODY: usize>(
    b: &'a [u8],
    prefix: &Prefix,
    marker: &[u8],
    n1: usize,
) -> Result<(&'a [u8], &'a [u8]), MalformedCredential> {
    let parts = parse_format::<BODY>(b, prefix, marker, n1)?;
    if !checksum_ok(b) {
        crate::hint::cold_path();
        return Err(MalformedCredential::Checksum);
    }
    Ok(parts)
}

/// [`parse_checksummed`] without the checksum.
#[inline]
fn parse_format<'a, const BODY: usize>(
    b: &'a [u8],
    prefix: &Prefix,
    marker: &[u8],
    n1: usize,
) -> Result<(&'a [u8], &'a [u8]), MalformedCredential> {
    let Some(body) = strip(b, prefix, marker) else {
        return Err(malformed(b));
    };
    // A fixed-size body: the character check compiles to a few vector ops.
    let Ok(fixed) = <&[u8; BODY]>::try_from(body) else {
        return Err(malformed(b));
    };
    if !is_base62(fixed) {
        return Err(malformed(b));
    }
    let random = BODY - CHECKSUM_LEN;
    Ok((&body[..n1], &body[n1..random]))
}

fn assemble(prefix: &Prefix, marker: &str, parts: &[&[u8]]) -> String {
    let mut s = String::with_capacity(MAX_CREDENTIAL_LEN);
    s.push_str(prefix.as_str());
    s.push('_');
    s.push_str(marker);
    s.push('_');
    for p in parts {
        // Parts are base62 ASCII by construction.
        s.push_str(std::str::from_utf8(p).unwrap_or_default());
    }
    let sum = crc_base62(s.as_bytes());
    s.push_str(std::str::from_utf8(&sum).unwrap_or_default());
    s
}

/// Parses a key id `<prefix>_<17 base62>`. Credentials are parsed from
/// bytes, so that a header value needs no UTF-8 check first: any byte
/// outside the format is rejected here.
pub(crate) fn parse_key_id(s: &[u8], prefix: &Prefix) -> Result<KeyId, MalformedCredential> {
    if s.len() != prefix.len as usize + 1 + ID_RANDOM_LEN {
        return Err(malformed(s));
    }
    let Some(body) = strip(s, prefix, b"") else {
        return Err(malformed(s));
    };
    let Ok(fixed) = <&[u8; ID_RANDOM_LEN]>::try_from(body) else {
        return Err(malformed(s));
    };
    if !is_base62(fixed) {
        return Err(malformed(s));
    }
    // Prefix, '_' and base62 are all valid id characters: no re-validation.
    KeyId::from_valid(s).ok_or_else(|| malformed(s))
}

/// Parses a key secret, returning its secret material.
pub(crate) fn parse_key_secret<'a>(
    s: &'a [u8],
    prefix: &Prefix,
) -> Result<SecretMaterial<'a>, MalformedCredential> {
    parse_checksummed::<SECRET_BODY>(s, prefix, b"sk", 0).map(|(_, m)| SecretMaterial(m))
}

/// [`parse_key_secret`] but for the checksum (see [`UncheckedSecret`]).
#[inline]
pub(crate) fn parse_key_secret_unchecked<'a>(
    s: &'a [u8],
    prefix: &Prefix,
) -> Result<UncheckedSecret<'a>, MalformedCredential> {
    let (_, m) = parse_format::<SECRET_BODY>(s, prefix, b"sk", 0)?;
    Ok(UncheckedSecret {
        material: SecretMaterial(m),
        checksummed: s,
    })
}

/// [`parse_combined_key`] but for the checksum (see [`UncheckedSecret`]).
pub(crate) fn parse_combined_key_unchecked<'a>(
    s: &'a [u8],
    prefix: &Prefix,
) -> Result<(KeyId, UncheckedSecret<'a>), MalformedCredential> {
    let (id, m) = parse_format::<PAIR_BODY>(s, prefix, b"ak", ID_RANDOM_LEN)?;
    let secret = UncheckedSecret {
        material: SecretMaterial(m),
        checksummed: s,
    };
    Ok((join_id(prefix, "", id)?, secret))
}

/// Parses the single-string key form, returning the key id and the secret
/// material.
pub(crate) fn parse_combined_key<'a>(
    s: &'a [u8],
    prefix: &Prefix,
) -> Result<(KeyId, SecretMaterial<'a>), MalformedCredential> {
    let (id, m) = parse_checksummed::<PAIR_BODY>(s, prefix, b"ak", ID_RANDOM_LEN)?;
    Ok((join_id(prefix, "", id)?, SecretMaterial(m)))
}

/// Parses a session token, returning the session id and secret material.
pub(crate) fn parse_session_token<'a>(
    s: &'a [u8],
    prefix: &Prefix,
) -> Result<(SessionId, SecretMaterial<'a>), MalformedCredential> {
    let (id, m) = parse_checksummed::<PAIR_BODY>(s, prefix, b"st", ID_RANDOM_LEN)?;
    let mut buf = [0u8; SessionId::MAX_LEN];
    let n = write_id(&mut buf, prefix, "ses", id);
    let sid = SessionId::from_valid_bytes(&buf[..n]).ok_or(MalformedCredential::Format)?;
    Ok((sid, SecretMaterial(m)))
}

/// Writes `<prefix>_[<marker>_]<random>` into `buf`, returning its length.
fn write_id(buf: &mut [u8], prefix: &Prefix, marker: &str, random: &[u8]) -> usize {
    let mut n = 0;
    let mut put = |bytes: &[u8]| {
        buf[n..n + bytes.len()].copy_from_slice(bytes);
        n += bytes.len();
    };
    put(prefix.as_bytes());
    put(b"_");
    if !marker.is_empty() {
        put(marker.as_bytes());
        put(b"_");
    }
    put(random);
    n
}

fn join_id(prefix: &Prefix, marker: &str, random: &[u8]) -> Result<KeyId, MalformedCredential> {
    let mut buf = [0u8; KeyId::MAX_LEN];
    let n = write_id(&mut buf, prefix, marker, random);
    std::str::from_utf8(&buf[..n])
        .ok()
        .and_then(|s| KeyId::new(s).ok())
        .ok_or(MalformedCredential::Format)
}

/// A newly generated key id.
pub(crate) fn new_key_id(prefix: &Prefix) -> KeyId {
    let mut r = [0u8; ID_RANDOM_LEN];
    fill_base62(&mut r);
    // A validated prefix (≤ 8) plus 18 characters always fits a KeyId.
    join_id(prefix, "", &r).unwrap_or_else(|_| unreachable!("key id always fits"))
}

/// A newly generated key secret.
pub(crate) fn new_key_secret(prefix: &Prefix) -> Secret {
    let mut r = zeroize::Zeroizing::new([0u8; SECRET_RANDOM_LEN]);
    fill_base62(&mut r[..]);
    Secret::from(assemble(prefix, "sk", &[&r[..]]))
}

/// The single-string form of a key id and its secret, for clients that can
/// send only one header (`Authorization: Bearer <this>`) and for secret
/// scanners.
///
/// # Errors
/// [`MalformedCredential`] when `key_id` or `secret` is not a credential of
/// this prefix.
///
/// ```
/// # use keyward::{Keyward, MemoryStore, NewKey, Actor, PermissionSet};
/// # tokio_test_block_on(async {
/// let kw = Keyward::builder().store(MemoryStore::new()).build().unwrap();
/// # let account = kw.create_account(Actor::System, keyward::NewAccount::new("a", PermissionSet::new())).await.unwrap();
/// let issued = kw.issue_key(Actor::System, &account.id, NewKey::new("ci")).await.unwrap();
/// let single = keyward::combine_key(kw.prefix(), &issued.key.id, &issued.secret).unwrap();
/// assert!(single.expose().starts_with("kw_ak_"));
/// # });
/// # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
/// # }
/// ```
pub fn combine_key(
    prefix: &Prefix,
    key_id: &KeyId,
    secret: &Secret,
) -> Result<Secret, MalformedCredential> {
    let id = parse_key_id(key_id.as_str().as_bytes(), prefix)?;
    let m = parse_key_secret(secret.expose().as_bytes(), prefix)?;
    let random = &id.as_str().as_bytes()[prefix.as_str().len() + 1..];
    Ok(Secret::from(assemble(prefix, "ak", &[random, m.0])))
}

/// Splits the single-string form into the key id and the key secret.
///
/// # Errors
/// [`MalformedCredential`] when `combined` is not a single-string key of
/// this prefix.
pub fn split_key(prefix: &Prefix, combined: &str) -> Result<(KeyId, Secret), MalformedCredential> {
    let (id, m) = parse_combined_key(combined.as_bytes(), prefix)?;
    Ok((id, Secret::from(assemble(prefix, "sk", &[m.0]))))
}

/// A newly generated session: its id and bearer token.
pub(crate) fn new_session_token(prefix: &Prefix) -> (SessionId, Secret) {
    let mut id = [0u8; ID_RANDOM_LEN];
    fill_base62(&mut id);
    let mut r = zeroize::Zeroizing::new([0u8; SECRET_RANDOM_LEN]);
    fill_base62(&mut r[..]);
    let token = Secret::from(assemble(prefix, "st", &[&id, &r[..]]));
    let mut buf = [0u8; SessionId::MAX_LEN];
    let n = write_id(&mut buf, prefix, "ses", &id);
    let sid = std::str::from_utf8(&buf[..n])
        .ok()
        .and_then(|s| SessionId::new(s).ok())
        .unwrap_or_else(|| unreachable!("session id always fits"));
    (sid, token)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> Prefix {
        Prefix::default()
    }

    #[test]
    fn issued_credentials_parse_back() {
        let id = new_key_id(&p());
        assert_eq!(id.as_str().len(), 20);
        assert_eq!(parse_key_id(id.as_str().as_bytes(), &p()), Ok(id));
        let secret = new_key_secret(&p());
        assert_eq!(secret.expose().len(), 55);
        let m = parse_key_secret(secret.expose().as_bytes(), &p()).expect("parses");
        assert_eq!(m.0, &secret.expose().as_bytes()[6..49]);
        let combined = combine_key(&p(), &id, &secret).expect("combines");
        let (id2, secret2) = split_key(&p(), combined.expose()).expect("splits");
        assert_eq!((id2, secret2), (id, secret));
        let (sid, token) = new_session_token(&p());
        assert_eq!(
            parse_session_token(token.expose().as_bytes(), &p())
                .expect("parses")
                .0,
            sid
        );
    }

    #[test]
    fn markers_are_not_interchangeable() {
        let secret = new_key_secret(&p());
        let (_, token) = new_session_token(&p());
        assert!(parse_session_token(secret.expose().as_bytes(), &p()).is_err());
        assert!(parse_key_secret(token.expose().as_bytes(), &p()).is_err());
        assert!(parse_combined_key(token.expose().as_bytes(), &p()).is_err());
        // Same length, marker swapped: the checksum catches it.
        let swapped = token.expose().replacen("_st_", "_ak_", 1);
        assert_eq!(
            parse_combined_key(swapped.as_bytes(), &p()).err(),
            Some(MalformedCredential::Checksum)
        );
    }

    #[test]
    fn typos_and_truncation_are_rejected() {
        let secret = new_key_secret(&p());
        let s = secret.expose();
        assert_eq!(
            parse_key_secret(&s.as_bytes()[..s.len() - 1], &p()).err(),
            Some(MalformedCredential::Format)
        );
        let mut typo = s.as_bytes().to_vec();
        typo[10] = if typo[10] == b'a' { b'b' } else { b'a' };
        let typo = String::from_utf8(typo).expect("ascii");
        assert_eq!(
            parse_key_secret(typo.as_bytes(), &p()).err(),
            Some(MalformedCredential::Checksum)
        );
        let other = Prefix::new("acme").expect("valid");
        assert!(parse_key_secret(s.as_bytes(), &other).is_err());
        assert_eq!(
            parse_key_secret("x".repeat(200).as_bytes(), &p()).err(),
            Some(MalformedCredential::TooLong)
        );
    }

    #[test]
    fn prefix_rules() {
        assert!(Prefix::new("acme2").is_ok());
        for bad in ["", "ACME", "a_b", "toolongpx"] {
            assert!(Prefix::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn is_base62_matches_the_byte_definition() {
        // Every byte value in every position, for the lengths parsed and
        // two edge sizes.
        fn check<const N: usize>() {
            for pos in 0..N {
                for b in 0..=255u8 {
                    let mut v = [b'a'; N];
                    v[pos] = b;
                    assert_eq!(is_base62(&v), b.is_ascii_alphanumeric(), "{N} {pos} {b:#x}");
                }
            }
        }
        check::<ID_RANDOM_LEN>();
        check::<SECRET_BODY>();
        check::<PAIR_BODY>();
        check::<1>();
        check::<31>();
    }
}
