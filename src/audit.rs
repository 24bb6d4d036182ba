//! [`AuditEvent`]: the record of every change, login and logout.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::id::{AccountId, KeyId, SessionId};

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AuditAction {
    /// An account was created.
    AccountCreated,
    /// A key was issued.
    KeyCreated,
    /// A key's name, description, permissions, expiry, networks, metadata or
    /// application changed.
    KeyUpdated,
    /// A key was deactivated.
    KeyDeactivated,
    /// A key was reactivated.
    KeyActivated,
    /// A key's secret was rotated.
    KeyRotated,
    /// A key was deleted.
    KeyDeleted,
    /// A stored hash was upgraded to the configured argon2 parameters.
    KeyRehashed,
    /// A session was opened with a key.
    Login,
    /// A session was ended by its holder.
    Logout,
}

impl AuditAction {
    /// The snake_case name, as serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AccountCreated => "account_created",
            Self::KeyCreated => "key_created",
            Self::KeyUpdated => "key_updated",
            Self::KeyDeactivated => "key_deactivated",
            Self::KeyActivated => "key_activated",
            Self::KeyRotated => "key_rotated",
            Self::KeyDeleted => "key_deleted",
            Self::KeyRehashed => "key_rehashed",
            Self::Login => "login",
            Self::Logout => "logout",
        }
    }

    /// Parses the snake_case name.
    pub fn parse(s: &str) -> Option<Self> {
        serde_json::from_value(serde_json::Value::String(s.to_owned())).ok()
    }
}

/// Who did it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditActor {
    /// The acting key, or `None` for the application itself
    /// ([`Actor::System`](crate::Actor::System)).
    pub key_id: Option<KeyId>,
    /// The session the key acted through, if any.
    pub session_id: Option<SessionId>,
    /// The acting key's own account.
    pub account_id: Option<AccountId>,
}

/// One audit log entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// Unique id (`evt_…`), ordered after `at` in listings.
    pub id: String,
    /// When it happened.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// What happened.
    pub action: AuditAction,
    /// The account concerned.
    pub account_id: AccountId,
    /// The key concerned, if any.
    pub key_id: Option<KeyId>,
    /// The session concerned (login, logout).
    pub session_id: Option<SessionId>,
    /// Who did it.
    pub actor: AuditActor,
    /// The client address of the request that did it, when known.
    pub client_ip: Option<IpAddr>,
    /// Details: the fields changed, grace periods and so on. Never a secret.
    pub details: serde_json::Value,
}
