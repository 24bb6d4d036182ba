#![doc = include_str!("docs/crate.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod account;
mod api_key;
mod app;
mod audit;
mod cache;
mod clock;
mod context;
mod credential;
mod credits;
mod digest;
mod error;
mod hash;
mod hint;
mod id;
mod inline_str;
mod limiter;
mod metrics;
mod origin;
mod padded;
mod permission;
mod principal;
mod random;
mod ratelimit;
mod secret;
mod service;
mod session;
mod usage;

#[cfg(any(feature = "axum", feature = "actix", feature = "tower"))]
#[cfg_attr(
    docsrs,
    doc(cfg(any(feature = "axum", feature = "actix", feature = "tower")))
)]
pub mod http;
pub mod store;

pub use account::{Account, AccountStatus, AccountUpdate, NewAccount};
pub use api_key::{ApiKey, KeyStatus};
pub use app::{App, AppStatus, AppUpdate, NewApp};
pub use audit::{ActorKind, AuditAction, AuditActor, AuditEvent};
pub use clock::{Clock, ManualClock, SystemClock};
pub use context::{InvalidLabel, Label, VerifyContext};
pub use credential::{
    InvalidPrefix, MAX_CREDENTIAL_LEN, MalformedCredential, Prefix, combine_key, split_key,
};
pub use credits::{Credits, MAX_CREDITS, Refill, RefillInterval};
pub use error::{Error, GrantLimit, Result};
pub use hash::{HashParams, InvalidHashParams};
pub use id::{AccountId, AppId, InvalidId, KeyId, SessionId};
pub use limiter::AttemptLimit;
pub use origin::{AllowedOrigin, InvalidOrigin, normalize_origin, normalize_origin_pattern};
pub use permission::{InvalidPermission, Permission, PermissionSet};
pub use principal::Principal;
#[cfg(feature = "redis")]
pub use ratelimit::{FailurePolicy, RedisLimits, RedisLimitsError};
pub use ratelimit::{
    InvalidLimits, LimitOwner, LimitStatus, Limits, LimitsChange, MAX_DURATION_MS, MAX_LIMIT,
    MAX_RATE_LIMITS, RateLimit,
};
pub use secret::Secret;
pub use service::{
    AccountPage, AccountUpdated, Actor, AppDeleted, AppPage, AppUpdated, BuildError, Deleted,
    EventFilter, EventPage, EventTail, Granularity, IssuedKey, KeyPage, KeyUpdate, Keyward,
    KeywardBuilder, ListAccounts, ListApps, ListKeys, LoginSession, NewKey, Rotated, Updated,
    UsageFilter, UsageGroup, UsagePage, UsagePoint, UsageReport, User, may_manage,
};
#[cfg(feature = "import")]
#[cfg_attr(docsrs, doc(cfg(feature = "import")))]
pub use service::{
    ImportError, ImportKey, Imported, InvalidLegacyKeys, LegacyKeys, MAX_LEGACY_KEY_LEN, RowError,
};
pub use session::Session;
pub use store::{MemoryStore, UsageGroupKind};

// The README's Rust snippets, compiled (and run unless `no_run`) as doctests.
#[cfg(all(
    doctest,
    feature = "axum",
    feature = "actix",
    feature = "sqlite",
    feature = "import"
))]
#[doc = include_str!("../README.md")]
mod readme {}
