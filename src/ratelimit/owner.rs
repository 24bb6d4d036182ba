//! [`LimitOwner`]: whose limits (a key, an application, an account).

use std::fmt;

use crate::id::{AccountId, AppId, KeyId};

/// Who limits belong to. An application's or account's limits are one pool
/// shared by all their keys: minting more keys buys no more calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LimitOwner {
    /// One key.
    Key(KeyId),
    /// An application: every key of it.
    App(AppId),
    /// An account: every key of it.
    Account(AccountId),
}

impl LimitOwner {
    /// The stored kind: `key`, `app` or `account`.
    pub fn kind(&self) -> &'static str {
        match self {
            LimitOwner::Key(_) => "key",
            LimitOwner::App(_) => "app",
            LimitOwner::Account(_) => "account",
        }
    }

    /// The owner's id.
    pub fn id(&self) -> &str {
        match self {
            LimitOwner::Key(id) => id.as_str(),
            LimitOwner::App(id) => id.as_str(),
            LimitOwner::Account(id) => id.as_str(),
        }
    }

    /// From the stored kind and id; `None` when either is invalid.
    pub fn parse(kind: &str, id: &str) -> Option<Self> {
        match kind {
            "key" => KeyId::new(id).ok().map(LimitOwner::Key),
            "app" => AppId::new(id).ok().map(LimitOwner::App),
            "account" => AccountId::new(id).ok().map(LimitOwner::Account),
            _ => None,
        }
    }
}

impl fmt::Display for LimitOwner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind(), self.id())
    }
}
