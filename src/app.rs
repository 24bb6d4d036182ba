//! [`App`]: an application, a titled group of keys of one account that
//! can be switched off and on as a whole.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::id::{AccountId, AppId};

/// Whether an application's keys may be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AppStatus {
    /// Its keys authenticate (each as its own status allows).
    Active,
    /// None of its keys authenticates, nor any of their sessions; each
    /// key keeps its own status, so reactivating the application restores
    /// exactly the keys that were active.
    Inactive,
}

impl AppStatus {
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

/// An application's record. The key counts and `protected` are computed by
/// the store when the record is read; they are ignored when it is written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct App {
    /// Public id, `app_…`.
    pub id: AppId,
    /// The account the application and its keys belong to.
    pub account_id: AccountId,
    /// Title (1–200 characters).
    pub title: String,
    /// Free text (up to 2000 characters).
    pub description: String,
    /// Active or inactive.
    pub status: AppStatus,
    /// Creation time.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Last change of the record.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// How many of its keys are themselves active.
    pub active_keys: u64,
    /// How many of its keys are themselves inactive.
    pub inactive_keys: u64,
    /// Whether it holds a protected key: then only
    /// [`Actor::System`](crate::Actor::System) may change or delete it.
    pub protected: bool,
    /// The latest successful verification of any of its keys (advanced
    /// when usage is flushed; maintained by the store, ignored when the
    /// record is written).
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub last_used_at: Option<OffsetDateTime>,
}

/// What [`Keyward::create_app`](crate::Keyward::create_app) needs.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct NewApp {
    /// Title (1–200 characters).
    pub title: String,
    /// Free text (up to 2000 characters).
    pub description: String,
    /// Rate limits and credits to set on it (see [`LimitsChange`](crate::LimitsChange)).
    pub limits: crate::ratelimit::LimitsChange,
}

impl NewApp {
    /// An application titled `title` with no description.
    pub fn new(title: impl Into<String>) -> Self {
        Self {
            title: title.into(),
            description: String::new(),
            limits: Default::default(),
        }
    }

    /// Sets the description.
    pub fn description(mut self, d: impl Into<String>) -> Self {
        self.description = d.into();
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

/// Changes to an application; `None` fields stay as they are.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct AppUpdate {
    /// New title.
    pub title: Option<String>,
    /// New description.
    pub description: Option<String>,
    /// Activate or deactivate every key of the application at once.
    pub status: Option<AppStatus>,
    /// Rate limits and credits to set on it (see [`LimitsChange`](crate::LimitsChange)).
    pub limits: crate::ratelimit::LimitsChange,
}

impl AppUpdate {
    /// No changes.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the title.
    pub fn title(mut self, t: impl Into<String>) -> Self {
        self.title = Some(t.into());
        self
    }

    /// Sets the description.
    pub fn description(mut self, d: impl Into<String>) -> Self {
        self.description = Some(d.into());
        self
    }

    /// Activates or deactivates the application.
    pub fn status(mut self, s: AppStatus) -> Self {
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
