//! HTTP adapters for axum (feature `axum`), actix-web (feature `actix`)
//! and any tower service of `http::Request<B>`, such as tonic or plain
//! hyper (feature `tower`), with one framework-neutral core so all give
//! the same answers byte for byte.
//!
//! # The state
//!
//! Both adapters read one state, [`KeywardHttp`]: the service and its
//! [`HttpConfig`]. axum finds it through `FromRef` of the router state,
//! actix-web as `web::Data<KeywardHttp>`; there is no other source.
//!
//! # Authenticating a request
//!
//! - `x-api-key` + `x-api-secret`, or `Authorization: Bearer <token>` where
//!   the token is a session token from `POST /auth/login` or the
//!   single-string key form (scheme case-insensitive). Credentials in the
//!   query string are never read.
//! - Optional `x-account-id`: act for the key's own account or a direct
//!   child account (403 `account_not_allowed` otherwise).
//! - The client address is the peer address; `X-Forwarded-For` is believed
//!   only from [`HttpConfig::trusted_proxies`].
//!
//! | situation | status | `WWW-Authenticate` | `error` |
//! |---|---|---|---|
//! | no credentials | 401 | `Bearer realm="keyward"` | `missing_credentials` |
//! | unknown key, wrong secret, inactive, expired, deleted, address not allowed, malformed or ended token | 401 | `Bearer realm="keyward", error="invalid_token"` | `invalid_credentials` |
//! | one of the two key headers, key headers and bearer, a header twice, non-ASCII, too long | 400 | `Bearer realm="keyward", error="invalid_request"` | `invalid_request` |
//! | missing permission | 403 | `Bearer realm="keyward", error="insufficient_scope", scope="<permission>"` | `insufficient_scope` |
//! | `x-account-id` not allowed | 403 | | `account_not_allowed` |
//! | too many failed attempts | 429 + `Retry-After` | | `too_many_attempts` |
//! | store unavailable | 503 + `Retry-After` | | `unavailable` |
//!
//! All 401s for a presented credential are byte-identical, including
//! inactive and expired keys: although the service tells those apart only
//! to a caller holding the correct secret, the HTTP layer does not repeat
//! it, so a leaked-then-revoked secret learns nothing, and clients need one
//! code path. The usage counters and the audit log keep the distinction.
//!
//! Every error body is `{"error": "<code>", "message": "…"}` (422s add
//! `"field"`), `Content-Type: application/json`; see [`HttpError`].
//!
//! # Management API
//!
//! Mounted with [`axum::router`] or [`actix::scope`]; the routes are listed
//! by [`management_routes`] and described by `GET /openapi.json`.
//!
//! The caller is a key (or session), or a person the host application
//! signed in: the host's middleware inserts a [`HostUser`] into the
//! request's extensions, and the routes act as that
//! [`Actor::User`](crate::Actor::User). Either way the service's bounds
//! apply: 403 `permission_not_held` for a key with permissions the caller
//! lacks, 403 `restriction_not_held` (with `field`) for an expiry or
//! networks beyond the caller's key, 409 `protected` for the
//! application's own keys.

// The management API and its documents: the axum and actix-web adapters.
#[cfg(any(feature = "axum", feature = "actix"))]
mod api;
mod auth;
#[cfg(any(feature = "axum", feature = "actix"))]
mod body;
mod config;
mod error;
mod headers;
#[cfg(any(feature = "axum", feature = "actix"))]
mod host_user;
#[cfg(any(feature = "axum", feature = "actix"))]
mod openapi;
#[cfg(any(feature = "axum", feature = "actix"))]
mod openapi_fields;
mod ratelimit;
mod route_usage;
mod state;

#[cfg(feature = "console")]
mod console;
#[cfg(all(feature = "console", feature = "actix"))]
mod console_actix;
#[cfg(all(feature = "console", feature = "axum"))]
mod console_axum;

#[cfg(feature = "actix")]
#[cfg_attr(docsrs, doc(cfg(feature = "actix")))]
pub mod actix;
#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub mod axum;
#[cfg(feature = "tower")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
pub mod tower;

#[cfg(any(feature = "axum", feature = "actix"))]
pub(crate) use api::Response;
pub use auth::RequiredPermission;
pub use config::HttpConfig;
pub use error::{HttpError, MAX_BODY_BYTES};
#[cfg(any(feature = "axum", feature = "actix"))]
pub use host_user::HostUser;
pub use ratelimit::rate_limit_headers;
pub use route_usage::RouteUsage;
pub use state::KeywardHttp;

#[cfg(feature = "console")]
#[cfg_attr(docsrs, doc(cfg(feature = "console")))]
pub use console::{CONTENT_SECURITY_POLICY, ConsoleConfig, console_asset_bytes};

#[cfg(any(feature = "axum", feature = "actix"))]
#[cfg_attr(docsrs, doc(cfg(any(feature = "axum", feature = "actix"))))]
/// `(method, path)` of every route of the management API, paths relative
/// to where it is mounted, `{id}` for the key id.
pub fn management_routes() -> impl Iterator<Item = (&'static str, &'static str)> {
    api::ROUTES.iter().map(|(m, p, _)| (*m, *p))
}

#[cfg(any(feature = "axum", feature = "actix"))]
#[cfg_attr(docsrs, doc(cfg(any(feature = "axum", feature = "actix"))))]
/// The OpenAPI 3.1 document served at `GET /openapi.json`.
pub fn openapi_document() -> serde_json::Value {
    openapi::document()
}
