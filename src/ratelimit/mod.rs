//! Rate limits and usage credits per key, application and account.
//!
//! - [`RateLimit`]: named GCRA limits (`limit` per `duration_ms`, `burst`),
//!   auto-applied on every verification or only on routes that name them.
//! - [`Credits`](crate::Credits): a count spent per call (`cost`), refilled
//!   daily or monthly, durable in the store.
//!
//! Limits are read with a key (its own, its application's and its
//! account's) into its cache entry, so they reach other instances within
//! the propagation window W like every other change to a key. The state
//! lives in this process ([`meter`]); an application's or account's limit
//! is one pool for all its keys on this instance. With feature `redis` and
//! [`KeywardBuilder::redis_limits`](crate::KeywardBuilder::redis_limits)
//! every limit is one pool shared by all instances (see [`RedisLimits`]).

mod change;
mod gcra;
pub(crate) mod meter;
mod owner;
mod policy;
pub(crate) mod registry;
#[cfg(feature = "redis")]
pub(crate) mod shared;

pub use change::LimitsChange;
pub use meter::LimitStatus;
pub use owner::LimitOwner;
pub use policy::{InvalidLimits, Limits, MAX_DURATION_MS, MAX_LIMIT, MAX_RATE_LIMITS, RateLimit};
#[cfg(feature = "redis")]
pub use shared::{FailurePolicy, RedisLimits, RedisLimitsError};
