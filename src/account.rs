//! [`Account`]: a tenant that owns keys.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::id::AccountId;
use crate::permission::PermissionSet;

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
    /// When the account was created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
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
}

impl NewAccount {
    /// A top-level account named `name` with `permissions`.
    pub fn new(name: impl Into<String>, permissions: PermissionSet) -> Self {
        Self {
            id: None,
            name: name.into(),
            parent: None,
            permissions,
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
}
