//! [`Session`]: a bearer session obtained by logging in with a key.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::id::{AccountId, KeyId, SessionId};

/// A session record. The bearer token itself is never stored: only a
/// BLAKE3 digest of its 256-bit secret part, which is not serialized.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// Session id (public).
    pub id: SessionId,
    /// The key that logged in.
    pub key_id: KeyId,
    /// The key's account.
    pub account_id: AccountId,
    /// Login time.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// The session ends at this instant.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// The generation of the secret the session was opened with (the key's
    /// previous generation when opened with the old secret during a grace
    /// period): the session ends when that secret stops working.
    pub key_generation: u32,
    /// The key's session epoch at login: the session ends when the key is
    /// deactivated or its expiry passes, even if reactivated or extended.
    pub key_epoch: u32,
    /// Digest of the token's secret part.
    #[serde(skip)]
    pub token_digest: [u8; 32],
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("id", &self.id)
            .field("key_id", &self.key_id)
            .field("account_id", &self.account_id)
            .field("created_at", &self.created_at)
            .field("expires_at", &self.expires_at)
            .field("key_generation", &self.key_generation)
            .field("key_epoch", &self.key_epoch)
            .finish_non_exhaustive()
    }
}
