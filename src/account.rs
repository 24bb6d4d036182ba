//! [`Account`]: a tenant that owns keys.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::id::AccountId;
use crate::permission::PermissionSet;

/// Whether an account's keys may be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum AccountStatus {
    /// Its keys authenticate (each as its own status allows).
    #[default]
    Active,
    /// None of its keys authenticates, nor any of their sessions; each key
    /// keeps its own status.
    Inactive,
}

impl AccountStatus {
    /// `"active"` or `"inactive"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Inactive => "inactive",
        }
    }

    /// Parses `"active"` or `"inactive"`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(Self::Active),
            "inactive" => Some(Self::Inactive),
            _ => None,
        }
    }
}

/// An account (tenant). Its keys may hold only permissions the account has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// The account's id.
    pub id: AccountId,
    /// Display name (1–200 characters).
    pub name: String,
    /// The parent account, which may act for this one.
    pub parent: Option<AccountId>,
    /// The permissions this account's keys may be granted.
    pub permissions: PermissionSet,
    /// Active or inactive.
    #[serde(default)]
    pub status: AccountStatus,
    /// When the account was created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// The latest successful verification of any of its keys (advanced
    /// when usage is flushed; maintained by the store, ignored when the
    /// record is written).
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub last_used_at: Option<OffsetDateTime>,
    /// Incremented by every update:
    /// [`KeyStore::update_account`](crate::store::KeyStore::update_account)
    /// refuses a write whose expected version is stale, so a change judged
    /// on an account that changed since is judged again.
    #[serde(default = "first_version")]
    pub version: u64,
}

/// The version of a new account (and of records that had none).
fn first_version() -> u64 {
    1
}

/// What [`Keyward::create_account`](crate::Keyward::create_account) needs.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct NewAccount {
    /// Use this id instead of a generated `acct_…` one (for example the
    /// application's own tenant id).
    pub id: Option<AccountId>,
    /// Display name.
    pub name: String,
    /// Parent account.
    pub parent: Option<AccountId>,
    /// Permissions the account's keys may hold.
    pub permissions: PermissionSet,
    /// Rate limits and credits to set on it (see [`LimitsChange`](crate::LimitsChange)).
    pub limits: crate::ratelimit::LimitsChange,
}

impl NewAccount {
    /// A top-level account named `name` with `permissions`.
    pub fn new(name: impl Into<String>, permissions: PermissionSet) -> Self {
        Self {
            id: None,
            name: name.into(),
            parent: None,
            permissions,
            limits: Default::default(),
        }
    }

    /// Makes the account a child of `parent`.
    pub fn parent(mut self, parent: AccountId) -> Self {
        self.parent = Some(parent);
        self
    }

    /// Uses `id` instead of a generated id.
    pub fn id(mut self, id: AccountId) -> Self {
        self.id = Some(id);
        self
    }

    /// Adds a rate limit (see [`LimitsChange`](crate::LimitsChange)).
    pub fn ratelimit(mut self, limit: crate::RateLimit) -> Self {
        self.limits.push(limit);
        self
    }

    /// Meters it with `credits` (see [`LimitsChange`](crate::LimitsChange)).
    pub fn credits(mut self, credits: crate::Credits) -> Self {
        self.limits.credits = Some(Some(credits));
        self
    }
}

/// Changes to an account; `None` fields stay as they are.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct AccountUpdate {
    /// New name.
    pub name: Option<String>,
    /// New permissions; narrowing them narrows every key of the account
    /// (key ∩ account) within W.
    pub permissions: Option<PermissionSet>,
    /// Activate or deactivate every key of the account at once.
    pub status: Option<AccountStatus>,
    /// Rate limits and credits to set on it (see [`LimitsChange`](crate::LimitsChange)).
    pub limits: crate::ratelimit::LimitsChange,
}

impl AccountUpdate {
    /// No changes.
    pub fn new() -> Self {
        Self::default()
    }

    /// Renames.
    pub fn name(mut self, n: impl Into<String>) -> Self {
        self.name = Some(n.into());
        self
    }

    /// Replaces the permissions.
    pub fn permissions(mut self, p: PermissionSet) -> Self {
        self.permissions = Some(p);
        self
    }

    /// Activates or deactivates.
    pub fn status(mut self, s: AccountStatus) -> Self {
        self.status = Some(s);
        self
    }

    /// Replaces the rate limits (empty: none; see
    /// [`LimitsChange`](crate::LimitsChange)).
    pub fn ratelimits(mut self, limits: Vec<crate::RateLimit>) -> Self {
        self.limits.ratelimits = Some(limits);
        self
    }

    /// Replaces the credits (`None`: unmetered; see
    /// [`LimitsChange`](crate::LimitsChange)).
    pub fn credits(mut self, credits: Option<crate::Credits>) -> Self {
        self.limits.credits = Some(credits);
        self
    }
}
