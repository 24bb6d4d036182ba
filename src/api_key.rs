//! [`ApiKey`]: the public record of a key (never its secret or hash).

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::id::{AccountId, AppId, KeyId};
use crate::permission::PermissionSet;

/// Whether a key may be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyStatus {
    /// The key authenticates requests.
    Active,
    /// The key is deactivated; it can be reactivated.
    Inactive,
}

impl KeyStatus {
    /// `"active"` or `"inactive"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Inactive => "inactive",
        }
    }
}

/// An API key's record. It never holds the secret nor its hash; those live
/// only in the store (as argon2id PHC strings).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiKey {
    /// Public key id, sent as `x-api-key`.
    pub id: KeyId,
    /// The account the key belongs to.
    pub account_id: AccountId,
    /// Display name (1–200 characters).
    pub name: String,
    /// Free text (up to 2000 characters).
    pub description: String,
    /// Optional application label, to group several keys of one integration.
    pub application: Option<String>,
    /// The application ([`App`](crate::App)) the key belongs to, if any.
    /// While that application is inactive the key does not authenticate,
    /// whatever its own status.
    pub app_id: Option<AppId>,
    /// Permissions granted to the key (a subset of the account's).
    pub permissions: PermissionSet,
    /// Active or inactive.
    pub status: KeyStatus,
    /// Protected keys (the application's own system keys) are rotated,
    /// changed, deactivated and deleted only by [`Actor::System`](crate::Actor::System).
    pub protected: bool,
    /// Creation time.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Last change of the record.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// Last successful verification (updated when usage is flushed).
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_used_at: Option<OffsetDateTime>,
    /// After this instant the key no longer authenticates.
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    /// When non-empty, only clients from these networks may use the key.
    pub allowed_cidrs: Vec<IpNet>,
    /// When non-empty, only requests from these browser origins may use
    /// the key: exact origins (`https://app.example.com`) or subdomain
    /// patterns (`https://*.example.com`), matched against the request's
    /// `Origin` (or, without one, its `Referer`'s origin).
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    /// Application-defined JSON (up to 16 KiB serialized).
    pub metadata: serde_json::Value,
}

impl ApiKey {
    /// Whether the key is past its expiry at `now`.
    pub fn is_expired_at(&self, now: OffsetDateTime) -> bool {
        self.expires_at.is_some_and(|e| e <= now)
    }
}
