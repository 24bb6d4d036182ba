//! Argon2id hashing of secrets at rest.
//!
//! # Default parameters: m = 8 MiB, t = 1, p = 1
//!
//! keyward's secrets are 256-bit uniformly random values, not passwords:
//! the hash does not need to slow down guessing (2^256 guesses are out of
//! reach at any cost per guess); it exists so that a leaked database does
//! not reveal usable credentials, which any preimage-resistant function
//! achieves. Argon2id is kept because it is what auditors expect to see
//! and because the parameters can grow later without a migration (they are
//! recorded in each PHC string and upgraded on the next successful verify).
//! The default is therefore deliberately cheap: m = 8192 KiB, t = 1, p = 1
//! costs about 8 ms of one core and 8 MiB of memory per cold verification
//! on the 2-core benchmark machine (`cargo bench --bench verify -- cold`),
//! and a cold verification happens once per key per process (then the
//! keyed digest in the cache takes over). Configure stronger parameters
//! with [`KeywardBuilder::hash_params`](crate::KeywardBuilder::hash_params)
//! if a policy requires them (OWASP's password minimum is m = 19 MiB, t = 2).
//!
//! # Memory
//!
//! Verifications reuse argon2's memory blocks (a pool of buffers, one per
//! concurrent hashing slot, kept at the configured `m`) rather than
//! allocating `m` per run: under a flood of cold-key wrong secrets the
//! process holds at most hashing concurrency × `m`, and the allocator is
//! not left holding freed 8 MiB chunks (`benches/argon2_flood.sh`).
//!
//! Stored PHC strings whose parameters exceed the configured ceiling
//! (default m = 256 MiB, t = 16, p = 8) are refused before any work is
//! done, so a corrupted or hostile row cannot make the process allocate
//! gigabytes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use argon2::password_hash::PasswordHasher;
use argon2::password_hash::phc::PasswordHash;
use argon2::{Algorithm, Argon2, Block, Params, Version};
use subtle::ConstantTimeEq;

use crate::credential::SecretMaterial;
use crate::store::PhcString;

#[cfg(feature = "import")]
pub(crate) mod legacy;

/// Argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashParams {
    /// Memory in KiB (m).
    pub memory_kib: u32,
    /// Iterations (t).
    pub iterations: u32,
    /// Lanes (p).
    pub parallelism: u32,
}

impl HashParams {
    /// keyward's default: m = 8 MiB, t = 1, p = 1 (see the module docs).
    pub const DEFAULT: Self = Self {
        memory_kib: 8192,
        iterations: 1,
        parallelism: 1,
    };

    /// The default ceiling for stored hashes: m = 256 MiB, t = 16, p = 8.
    pub const DEFAULT_CEILING: Self = Self {
        memory_kib: 256 * 1024,
        iterations: 16,
        parallelism: 8,
    };

    fn to_argon2(self) -> Result<Params, argon2::Error> {
        Params::new(self.memory_kib, self.iterations, self.parallelism, None)
    }

    fn exceeds(self, ceiling: Self) -> bool {
        self.memory_kib > ceiling.memory_kib
            || self.iterations > ceiling.iterations
            || self.parallelism > ceiling.parallelism
    }
}

impl Default for HashParams {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Error for unusable hashing parameters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid argon2 parameters: {0}")]
pub struct InvalidHashParams(String);

/// Why a stored hash could not be checked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum StoredHashError {
    #[error("stored hash is not a valid argon2id PHC string")]
    Corrupt,
    #[error("stored hash parameters exceed the configured ceiling")]
    OverCeiling,
}

/// The outcome of checking a secret against a stored hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Checked {
    /// The secret matches; `rehash` when the hash uses other parameters
    /// than the configured ones.
    Match { rehash: bool },
    /// The secret does not match.
    Mismatch,
}

/// Hashes and verifies secrets with argon2id.
#[derive(Debug, Clone)]
pub(crate) struct Hasher {
    params: HashParams,
    argon: Params,
    ceiling: HashParams,
    /// Reusable argon2 memory; at most one buffer per concurrent check
    /// (the caller bounds the concurrency).
    blocks: Arc<Mutex<Vec<Vec<Block>>>>,
    /// Argon2 verifications run (a metric, and what tests count).
    checks: Arc<AtomicU64>,
}

impl Hasher {
    /// A hasher with `params`, refusing stored hashes above `ceiling`.
    pub(crate) fn new(params: HashParams, ceiling: HashParams) -> Result<Self, InvalidHashParams> {
        if params.exceeds(ceiling) {
            return Err(InvalidHashParams("parameters exceed the ceiling".into()));
        }
        let argon = params
            .to_argon2()
            .map_err(|e| InvalidHashParams(e.to_string()))?;
        Ok(Self {
            params,
            argon,
            ceiling,
            blocks: Arc::default(),
            checks: Arc::default(),
        })
    }

    /// The argon2id PHC string of `m` with a fresh random salt. CPU heavy:
    /// call it on a blocking thread.
    pub(crate) fn hash(
        &self,
        m: SecretMaterial<'_>,
    ) -> Result<PhcString, argon2::password_hash::Error> {
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, self.argon.clone());
        Ok(PhcString(argon.hash_password(m.0)?.to_string()))
    }

    /// Checks `m` against a stored hash. CPU heavy: call it on a blocking
    /// thread.
    pub(crate) fn check(
        &self,
        phc: &PhcString,
        m: SecretMaterial<'_>,
    ) -> Result<Checked, StoredHashError> {
        // The hook for imported keys: a legacy hash is checked once, then
        // replaced by argon2id (its match always asks for a rehash).
        #[cfg(feature = "import")]
        if let Some(kind) = legacy::Legacy::of(&phc.0) {
            return kind.check(&phc.0, m);
        }
        let parsed = PasswordHash::new(&phc.0).map_err(|_| StoredHashError::Corrupt)?;
        let (algorithm, stored) = self.argon2_params(&parsed)?;
        let (Some(salt), Some(expected)) = (&parsed.salt, &parsed.hash) else {
            return Err(StoredHashError::Corrupt);
        };
        let version = match parsed.version {
            None => Version::default(),
            Some(v) => Version::try_from(v).map_err(|_| StoredHashError::Corrupt)?,
        };
        let params = Params::try_from(&parsed).map_err(|_| StoredHashError::Corrupt)?;
        let argon = Argon2::new(algorithm, version, params.clone());
        let mut out = [0u8; 64];
        let out = out
            .get_mut(..expected.len())
            .ok_or(StoredHashError::Corrupt)?;
        let mut blocks = self.take_blocks(params.block_count());
        self.checks.fetch_add(1, Ordering::Relaxed);
        let computed = argon.hash_password_into_with_memory(
            m.0,
            salt.as_ref(),
            out,
            &mut blocks[..params.block_count()],
        );
        self.return_blocks(blocks);
        computed.map_err(|_| StoredHashError::Corrupt)?;
        if bool::from(out.ct_eq(expected.as_bytes())) {
            Ok(Checked::Match {
                rehash: stored != self.params || algorithm != Algorithm::Argon2id,
            })
        } else {
            Ok(Checked::Mismatch)
        }
    }

    /// The variant and cost of a stored argon2 PHC string: argon2id, or
    /// argon2i / argon2d imported from another system (verified, then
    /// rehashed to argon2id), within the ceiling.
    fn argon2_params(
        &self,
        parsed: &PasswordHash,
    ) -> Result<(Algorithm, HashParams), StoredHashError> {
        let algorithm = match parsed.algorithm.as_str() {
            "argon2id" => Algorithm::Argon2id,
            "argon2i" => Algorithm::Argon2i,
            "argon2d" => Algorithm::Argon2d,
            _ => return Err(StoredHashError::Corrupt),
        };
        let stored = Params::try_from(parsed).map_err(|_| StoredHashError::Corrupt)?;
        let stored = HashParams {
            memory_kib: stored.m_cost(),
            iterations: stored.t_cost(),
            parallelism: stored.p_cost(),
        };
        if stored.exceeds(self.ceiling) {
            return Err(StoredHashError::OverCeiling);
        }
        Ok((algorithm, stored))
    }

    /// The stored form of a hash imported from another system (an argon2
    /// PHC string within the ceiling, bcrypt, or SHA-256 hex), or why it
    /// cannot be used. Parses only; hashes nothing.
    #[cfg(feature = "import")]
    pub(crate) fn imported(&self, hash: &str) -> Result<PhcString, &'static str> {
        use legacy::Legacy;
        if Legacy::is_sha256_hex(hash) {
            return Ok(PhcString(Legacy::Sha256.normalize(hash)?));
        }
        if let Some(kind) = Legacy::of(hash) {
            return Ok(PhcString(kind.normalize(hash)?));
        }
        let parsed = PasswordHash::new(hash)
            .map_err(|_| "not an argon2 PHC string, a bcrypt hash or 64 hex digits of SHA-256")?;
        match self.argon2_params(&parsed) {
            Ok(_) if parsed.salt.is_some() && parsed.hash.is_some() => Ok(PhcString(hash.into())),
            Ok(_) | Err(StoredHashError::Corrupt) => Err("not a complete argon2 PHC string"),
            Err(StoredHashError::OverCeiling) => {
                Err("argon2 parameters above the configured ceiling")
            }
        }
    }

    /// Argon2 verifications run so far.
    pub(crate) fn checks(&self) -> u64 {
        self.checks.load(Ordering::Relaxed)
    }

    /// A buffer of at least `n` blocks, from the pool when one is free.
    fn take_blocks(&self, n: usize) -> Vec<Block> {
        let pooled = self.blocks.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let mut blocks = pooled.unwrap_or_default();
        if blocks.len() < n {
            blocks.resize(n, Block::default());
        }
        blocks
    }

    /// Puts a buffer back for the next check, unless it is larger than the
    /// configured parameters need (a stored hash with a larger `m`, under
    /// the ceiling): that one is freed, so the pool stays at the configured
    /// `m` per slot.
    fn return_blocks(&self, blocks: Vec<Block>) {
        if blocks.len() <= self.argon.block_count() {
            self.blocks
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(blocks);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap() -> HashParams {
        HashParams {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        }
    }

    #[test]
    fn hashes_verify_and_flag_rehash() {
        let h = Hasher::new(cheap(), HashParams::DEFAULT_CEILING).expect("valid");
        let phc = h.hash(SecretMaterial(b"material")).expect("hash");
        assert!(phc.0.starts_with("$argon2id$v=19$m=64,t=1,p=1$"));
        assert_eq!(
            h.check(&phc, SecretMaterial(b"material")),
            Ok(Checked::Match { rehash: false })
        );
        assert_eq!(
            h.check(&phc, SecretMaterial(b"materiaL")),
            Ok(Checked::Mismatch)
        );
        let stronger = Hasher::new(
            HashParams {
                memory_kib: 128,
                ..cheap()
            },
            HashParams::DEFAULT_CEILING,
        )
        .expect("valid");
        assert_eq!(
            stronger.check(&phc, SecretMaterial(b"material")),
            Ok(Checked::Match { rehash: true })
        );
    }

    #[test]
    fn refuses_hostile_and_corrupt_hashes() {
        let h = Hasher::new(cheap(), cheap()).expect("valid");
        let big = Hasher::new(
            HashParams {
                memory_kib: 1024,
                ..cheap()
            },
            HashParams::DEFAULT_CEILING,
        )
        .expect("valid")
        .hash(SecretMaterial(b"m"))
        .expect("hash");
        assert_eq!(
            h.check(&big, SecretMaterial(b"m")),
            Err(StoredHashError::OverCeiling)
        );
        let hostile = PhcString(
            "$argon2id$v=19$m=4194304,t=1,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g"
                .into(),
        );
        assert_eq!(
            h.check(&hostile, SecretMaterial(b"m")),
            Err(StoredHashError::OverCeiling)
        );
        assert_eq!(
            h.check(&PhcString("not a hash".into()), SecretMaterial(b"m")),
            Err(StoredHashError::Corrupt)
        );
        assert!(
            Hasher::new(
                HashParams {
                    memory_kib: 1,
                    ..cheap()
                },
                HashParams::DEFAULT_CEILING
            )
            .is_err()
        );
    }
}
