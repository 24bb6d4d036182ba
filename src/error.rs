//! The service's [`Error`].

use crate::credential::MalformedCredential;
use crate::permission::{InvalidPermission, Permission, PermissionSet};
use crate::store::StoreError;

/// Why a permission set cannot be granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantLimit {
    /// The account does not have these permissions.
    Account,
    /// The acting principal does not hold these permissions itself.
    Actor,
}

/// Errors of the [`Keyward`](crate::Keyward) service.
///
/// Authentication failures collapse into [`Error::Unauthorized`] toward a
/// caller who did not present the key's correct secret: unknown key, wrong
/// secret, deleted key and (for sessions) unknown, expired or ended sessions
/// are indistinguishable. [`Error::KeyInactive`], [`Error::KeyExpired`] and
/// [`Error::ClientNotAllowed`] are returned only to a caller who proved
/// possession of the secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The credential was not in a valid format (400).
    #[error("malformed credential: {0}")]
    Malformed(#[from] MalformedCredential),
    /// Unknown key, wrong secret, or an invalid session (401).
    #[error("invalid credentials")]
    Unauthorized,
    /// The secret is correct but the key is deactivated (401).
    #[error("the key is inactive")]
    KeyInactive,
    /// The secret is correct but the key has expired (401).
    #[error("the key has expired")]
    KeyExpired,
    /// The secret is correct but the client address is not allowed (401).
    #[error("the key may not be used from this address")]
    ClientNotAllowed,
    /// Too many failed attempts for this key on this instance (429).
    #[error("too many failed attempts; retry in {retry_after_secs} s")]
    TooManyAttempts {
        /// Seconds until the next attempt is accepted.
        retry_after_secs: u64,
    },
    /// The secret is correct; a rate limit of the key, its application or
    /// its account is exceeded (429 `rate_limited`, with `Retry-After` and
    /// the `RateLimit` headers).
    #[error("rate limit {} exceeded; retry in {retry_after_ms} ms", .status.name)]
    RateLimited {
        /// The limit, at zero remaining.
        status: crate::ratelimit::LimitStatus,
        /// Milliseconds until a call is allowed again.
        retry_after_ms: u64,
    },
    /// The secret is correct; the usage credits of the key, its application
    /// or its account are spent until their refill (429 `usage_exceeded`).
    #[error("usage credits exhausted")]
    UsageExceeded,
    /// The secret is correct; a rate limit shared through Redis applies and
    /// Redis is unreachable with [`RedisLimits::fail_closed`] (503
    /// `limits_unavailable`).
    ///
    /// [`RedisLimits::fail_closed`]: https://docs.rs/keyward/latest/keyward/struct.RedisLimits.html#method.fail_closed
    #[error("shared rate limits unavailable")]
    LimitsUnavailable,
    /// The principal lacks a permission (403).
    #[error("missing permission {permission}")]
    Forbidden {
        /// The permission required.
        permission: Permission,
    },
    /// The principal may not act for the requested account (403).
    #[error("not allowed to act for this account")]
    AccountNotAllowed,
    /// The child account to act for is inactive (403): its parent manages
    /// it (for example reactivates it) without acting for it.
    #[error("the account to act for is inactive")]
    AccountInactive,
    /// Permissions that cannot be granted (403 when beyond the actor, 422
    /// when beyond the account).
    #[error("permissions beyond what the {} holds: {}", match .limit { GrantLimit::Account => "account", GrantLimit::Actor => "acting principal" }, names(.permissions))]
    NotGrantable {
        /// Which limit was exceeded.
        limit: GrantLimit,
        /// The offending permissions.
        permissions: PermissionSet,
    },
    /// A field of the request is invalid (422).
    #[error("invalid {field}: {reason}")]
    InvalidInput {
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// No such record (404). Keys of other accounts are reported as absent.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The key has permissions the acting principal or person does not
    /// hold, so it may not rotate, change, deactivate or delete it (403).
    #[error("the key has permissions the actor does not hold: {}", names(.permissions))]
    PermissionNotHeld {
        /// The key's permissions the actor lacks.
        permissions: PermissionSet,
    },
    /// The key would be less restricted (a later or no expiry, networks
    /// outside the acting key's) than the key the actor acts with (403).
    #[error("{field}: {reason}")]
    RestrictionNotHeld {
        /// The field (`expires_at`, `allowed_cidrs`).
        field: &'static str,
        /// What the bound is.
        reason: String,
    },
    /// Protected keys are changed (rotated, updated, deactivated, deleted)
    /// only by [`Actor::System`](crate::Actor::System) (409).
    #[error("the key is protected: only the application itself may change or delete it")]
    Protected,
    /// The application still has keys (409): delete them first, or delete
    /// it with its keys (`cascade`).
    #[error("the application still has keys")]
    AppHasKeys,
    /// A concurrent change won (409); re-read and retry.
    #[error("conflicting change: {0}")]
    Conflict(&'static str),
    /// The store is unavailable (503); nothing was changed.
    #[error("store unavailable")]
    Unavailable(#[source] StoreError),
    /// An unexpected failure (500).
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

fn names(p: &PermissionSet) -> String {
    p.iter()
        .map(Permission::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

impl From<InvalidPermission> for Error {
    fn from(e: InvalidPermission) -> Self {
        Error::InvalidInput {
            field: "permissions",
            reason: e.to_string(),
        }
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(_) => Error::Unavailable(e),
            StoreError::Conflict(what) => Error::Conflict(what),
            StoreError::NotFound => Error::NotFound("record"),
            StoreError::Backend(source) => Error::Internal(source),
        }
    }
}

/// Result alias of the service.
pub type Result<T, E = Error> = std::result::Result<T, E>;
