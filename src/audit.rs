//! [`AuditEvent`]: the record of every change, login and logout.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::id::{AccountId, AppId, KeyId, SessionId};

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AuditAction {
    /// An account was created.
    AccountCreated,
    /// An account's name or permissions changed.
    AccountUpdated,
    /// An account was deactivated: none of its keys authenticates.
    AccountDeactivated,
    /// An account was reactivated.
    AccountActivated,
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
    /// A key was imported from another system with its existing secret or
    /// hash.
    KeyImported,
    /// An application was created.
    AppCreated,
    /// An application's title or description changed.
    AppUpdated,
    /// An application was deactivated: none of its keys authenticates.
    AppDeactivated,
    /// An application was reactivated: its active keys authenticate again.
    AppActivated,
    /// An application was deleted.
    AppDeleted,
    /// An origin was added to the management API's allowlist.
    OriginAllowed,
    /// An origin was removed from the management API's allowlist.
    OriginRemoved,
    /// A session was opened with a key.
    Login,
    /// A session was ended by its holder.
    Logout,
    /// Logins with an existing key were refused (wrong secret, inactive,
    /// expired, address not allowed): one event per key, cause and minute,
    /// `details.count` saying how many.
    LoginFailed,
    /// Management requests authenticated as an existing key were refused
    /// (wrong secret, or a permission it lacks): one event per key, cause
    /// and minute, `details.count` saying how many.
    ManagementRefused,
}

impl AuditAction {
    /// The snake_case name, as serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AccountCreated => "account_created",
            Self::AccountUpdated => "account_updated",
            Self::AccountDeactivated => "account_deactivated",
            Self::AccountActivated => "account_activated",
            Self::KeyCreated => "key_created",
            Self::KeyUpdated => "key_updated",
            Self::KeyDeactivated => "key_deactivated",
            Self::KeyActivated => "key_activated",
            Self::KeyRotated => "key_rotated",
            Self::KeyDeleted => "key_deleted",
            Self::KeyRehashed => "key_rehashed",
            Self::KeyImported => "key_imported",
            Self::AppCreated => "app_created",
            Self::AppUpdated => "app_updated",
            Self::AppDeactivated => "app_deactivated",
            Self::AppActivated => "app_activated",
            Self::AppDeleted => "app_deleted",
            Self::OriginAllowed => "origin_allowed",
            Self::OriginRemoved => "origin_removed",
            Self::Login => "login",
            Self::Logout => "logout",
            Self::LoginFailed => "login_failed",
            Self::ManagementRefused => "management_refused",
        }
    }

    /// Parses the snake_case name.
    pub fn parse(s: &str) -> Option<Self> {
        serde_json::from_value(serde_json::Value::String(s.to_owned())).ok()
    }
}

/// Which kind of actor did it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ActorKind {
    /// The application itself ([`Actor::System`](crate::Actor::System)).
    System,
    /// A key, with its secret.
    Key,
    /// A session of a key.
    Session,
    /// A person the host application authenticated
    /// ([`Actor::User`](crate::Actor::User)).
    User,
}

impl ActorKind {
    /// The snake_case name, as serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::System => "system",
            Self::Key => "key",
            Self::Session => "session",
            Self::User => "user",
        }
    }
}

/// Who did it. `kind` says which actor; the other fields are those that
/// apply to it (a key and its account, a session too, or a person's id,
/// name and account); the system has none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "StoredActor")]
pub struct AuditActor {
    /// Which kind of actor.
    pub kind: ActorKind,
    /// The acting key (keys and sessions).
    pub key_id: Option<KeyId>,
    /// The session the key acted through, if any.
    pub session_id: Option<SessionId>,
    /// The acting key's own account, or the account a person acted for.
    pub account_id: Option<AccountId>,
    /// The host's id of the person who acted.
    pub user_id: Option<String>,
    /// The display name of the person who acted, as the host gave it then.
    pub user_name: Option<String>,
}

impl AuditActor {
    /// The application itself.
    pub fn system() -> Self {
        Self {
            kind: ActorKind::System,
            key_id: None,
            session_id: None,
            account_id: None,
            user_id: None,
            user_name: None,
        }
    }
}

/// [`AuditActor`] as stored: events written before `kind` existed (keyward
/// 0.1 with schema 1) have only the key, session and account, and the kind
/// follows from them.
#[derive(Deserialize)]
struct StoredActor {
    #[serde(default)]
    kind: Option<ActorKind>,
    #[serde(default)]
    key_id: Option<KeyId>,
    #[serde(default)]
    session_id: Option<SessionId>,
    #[serde(default)]
    account_id: Option<AccountId>,
    #[serde(default)]
    user_id: Option<String>,
    #[serde(default)]
    user_name: Option<String>,
}

impl From<StoredActor> for AuditActor {
    fn from(s: StoredActor) -> Self {
        let kind = s.kind.unwrap_or(match (&s.session_id, &s.key_id) {
            (Some(_), _) => ActorKind::Session,
            (None, Some(_)) => ActorKind::Key,
            (None, None) => ActorKind::System,
        });
        Self {
            kind,
            key_id: s.key_id,
            session_id: s.session_id,
            account_id: s.account_id,
            user_id: s.user_id,
            user_name: s.user_name,
        }
    }
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
    /// The application concerned: its own events and those of its keys
    /// (`None` for events recorded before keyward 0.2 other than key and
    /// application creation).
    #[serde(default)]
    pub app_id: Option<AppId>,
    /// Who did it.
    pub actor: AuditActor,
    /// The client address of the request that did it, when known.
    pub client_ip: Option<IpAddr>,
    /// Details: the fields changed (`changed`, with their `before` and
    /// `after` values), grace periods, counts of aggregated refusals and so
    /// on. Never a secret.
    pub details: serde_json::Value,
}

impl AuditEvent {
    /// The same event, about application `app`.
    #[must_use]
    pub fn in_app(mut self, app: Option<AppId>) -> Self {
        self.app_id = app;
        self
    }
}

/// How many refusals an aggregated refusal event stands for
/// (`details.count`; 1 when absent).
pub(crate) fn refusal_count(details: &serde_json::Value) -> u64 {
    details
        .get("count")
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(1)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// Events written before `kind` existed read back with the kind their
    /// fields imply; new ones name it.
    #[test]
    fn actors_stored_without_a_kind_read_back_with_the_implied_one() {
        let old: AuditActor =
            serde_json::from_str(r#"{"key_id":null,"session_id":null,"account_id":null}"#).unwrap();
        assert_eq!(old, AuditActor::system());
        let key: AuditActor = serde_json::from_str(
            r#"{"key_id":"kw_00000000000000000","session_id":null,"account_id":"acme"}"#,
        )
        .unwrap();
        assert_eq!(key.kind, ActorKind::Key);
        let json = serde_json::to_value(AuditActor::system()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"kind": "system", "key_id": null, "session_id": null, "account_id": null, "user_id": null, "user_name": null})
        );
        let back: AuditActor = serde_json::from_value(json).unwrap();
        assert_eq!(back, AuditActor::system());
    }
}
