//! [`HttpError`]: the one framework-neutral rejection; each adapter only
//! translates it into its response type.

use std::borrow::Cow;
use std::sync::Arc;

use crate::error::{Error, GrantLimit};
use crate::http::config::HttpConfig;

/// The `WWW-Authenticate` challenge an error carries (RFC 6750 §3).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Challenge {
    None,
    /// `Bearer realm="…"`: no credentials were presented.
    Plain,
    /// `Bearer realm="…", error="…"`.
    Error(&'static str),
    /// `Bearer realm="…", error="insufficient_scope", scope="…"`.
    Scope(String),
}

/// A rejected request: status, machine-readable code, message, and the
/// headers RFC 6750/7235 ask for. Every adapter renders it identically:
/// a JSON body `{"error": "<code>", "message": "…"}` (plus `"field"` for
/// 422) with `Content-Type: application/json`.
///
/// Messages never contain a secret, a token or a store error: store
/// failures are logged (target `keyward::rejection`) and answered with a
/// generic 503 or 500.
#[derive(Debug, Clone)]
pub struct HttpError {
    inner: Box<Inner>,
}

#[derive(Debug, Clone)]
struct Inner {
    status: u16,
    code: &'static str,
    message: Cow<'static, str>,
    field: Option<&'static str>,
    challenge: Challenge,
    retry_after: Option<u64>,
    rate_limit: Option<crate::ratelimit::LimitStatus>,
    allow: Option<String>,
    realm: Arc<str>,
}

/// Largest accepted request body (64 KiB).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

impl HttpError {
    fn new(
        cfg: &HttpConfig,
        status: u16,
        code: &'static str,
        message: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self {
            inner: Box::new(Inner {
                status,
                code,
                message: message.into(),
                field: None,
                challenge: Challenge::None,
                retry_after: None,
                rate_limit: None,
                allow: None,
                realm: Arc::clone(&cfg.realm),
            }),
        }
    }

    fn challenge(mut self, c: Challenge) -> Self {
        self.inner.challenge = c;
        self
    }

    /// 401 without `error=`: the request presented no credentials.
    #[cold]
    pub fn missing_credentials(cfg: &HttpConfig) -> Self {
        Self::new(
            cfg,
            401,
            "missing_credentials",
            "authentication required: send x-api-key and x-api-secret, or Authorization: Bearer <token>",
        )
        .challenge(Challenge::Plain)
    }

    /// 401 `error="invalid_token"`: unknown key, wrong secret, inactive,
    /// expired or deleted key, client address not allowed, malformed
    /// credential, invalid session. Byte-identical in every case.
    #[cold]
    pub fn invalid_credentials(cfg: &HttpConfig) -> Self {
        Self::new(cfg, 401, "invalid_credentials", "invalid credentials")
            .challenge(Challenge::Error("invalid_token"))
    }

    /// 400 `error="invalid_request"`: malformed authentication headers.
    #[cold]
    pub fn invalid_request(cfg: &HttpConfig, message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(cfg, 400, "invalid_request", message)
            .challenge(Challenge::Error("invalid_request"))
    }

    /// 403 `error="insufficient_scope"`: the principal lacks `permission`.
    #[cold]
    pub fn insufficient_scope(cfg: &HttpConfig, permission: &str) -> Self {
        Self::new(
            cfg,
            403,
            "insufficient_scope",
            format!("missing permission {permission}"),
        )
        .challenge(Challenge::Scope(permission.to_owned()))
    }

    /// 400: the body is not JSON, not an object, or has unknown fields.
    pub fn invalid_body(cfg: &HttpConfig, message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(cfg, 400, "invalid_body", message)
    }

    /// 400: an unknown or malformed query parameter.
    pub fn invalid_query(cfg: &HttpConfig, message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(cfg, 400, "invalid_query", message)
    }

    /// 422: a field has a bad value.
    pub fn invalid_value(cfg: &HttpConfig, field: &'static str, reason: impl AsRef<str>) -> Self {
        let mut e = Self::new(
            cfg,
            422,
            "invalid_value",
            format!("invalid {field}: {}", reason.as_ref()),
        );
        e.inner.field = Some(field);
        e
    }

    /// 404.
    pub fn not_found(cfg: &HttpConfig, what: &str) -> Self {
        Self::new(cfg, 404, "not_found", format!("{what} not found"))
    }

    /// 403 for a browser request from an origin not on the management
    /// API's allowlist.
    pub fn origin_not_allowed(cfg: &HttpConfig) -> Self {
        Self::new(
            cfg,
            403,
            "origin_not_allowed",
            "this origin may not call the management API; add it to /allowlist",
        )
    }

    /// 405 with `Allow`.
    pub fn method_not_allowed(cfg: &HttpConfig, allow: String) -> Self {
        let mut e = Self::new(cfg, 405, "method_not_allowed", "method not allowed");
        e.inner.allow = Some(allow);
        e
    }

    /// 413: the body exceeds [`MAX_BODY_BYTES`].
    pub fn payload_too_large(cfg: &HttpConfig) -> Self {
        Self::new(
            cfg,
            413,
            "payload_too_large",
            "request body exceeds 65536 bytes",
        )
    }

    /// 415: the body is not `application/json`.
    pub fn unsupported_media_type(cfg: &HttpConfig) -> Self {
        Self::new(
            cfg,
            415,
            "unsupported_media_type",
            "request body must be application/json",
        )
    }

    /// 500 for an adapter set up without its state; the message names the
    /// fix.
    pub fn misconfigured(message: &'static str) -> Self {
        tracing::error!(target: "keyward::rejection", "{message}");
        Self::new(&HttpConfig::default(), 500, "internal_error", message)
    }

    /// Maps a service [`Error`]. Store failures are logged here and never
    /// reach the body.
    #[cold]
    pub fn from_service(cfg: &HttpConfig, e: Error) -> Self {
        match e {
            Error::Malformed(_)
            | Error::Unauthorized
            | Error::KeyInactive
            | Error::KeyExpired
            | Error::ClientNotAllowed => Self::invalid_credentials(cfg),
            Error::TooManyAttempts { retry_after_secs } => {
                let mut r = Self::new(
                    cfg,
                    429,
                    "too_many_attempts",
                    "too many failed attempts; retry later",
                );
                r.inner.retry_after = Some(retry_after_secs.max(1));
                r
            }
            Error::RateLimited {
                status,
                retry_after_ms,
            } => {
                let mut r = Self::new(cfg, 429, "rate_limited", "rate limit exceeded; retry later");
                r.inner.retry_after = Some(retry_after_ms.div_ceil(1000).max(1));
                r.inner.rate_limit = Some(status);
                r
            }
            Error::UsageExceeded => Self::new(
                cfg,
                429,
                "usage_exceeded",
                "usage credits exhausted until their refill",
            ),
            Error::LimitsUnavailable => {
                let mut r = Self::new(
                    cfg,
                    503,
                    "limits_unavailable",
                    "rate limits cannot be checked right now; retry later",
                );
                r.inner.retry_after = Some(cfg.unavailable_retry_after_secs.max(1));
                r
            }
            Error::Forbidden { permission } => Self::insufficient_scope(cfg, permission.as_str()),
            Error::AccountNotAllowed => Self::new(
                cfg,
                403,
                "account_not_allowed",
                "not allowed to act for this account",
            ),
            Error::AccountInactive => Self::new(
                cfg,
                403,
                "account_inactive",
                "the account to act for is inactive; its parent reactivates it with PATCH /accounts/{id}",
            ),
            e @ Error::NotGrantable {
                limit: GrantLimit::Actor,
                ..
            } => Self::new(cfg, 403, "permission_not_held", e.to_string()),
            e @ Error::NotGrantable {
                limit: GrantLimit::Account,
                ..
            } => {
                let mut r = Self::new(cfg, 422, "invalid_value", e.to_string());
                r.inner.field = Some("permissions");
                r
            }
            Error::InvalidInput {
                field: "credentials",
                reason,
            } => Self::invalid_request(cfg, reason),
            Error::InvalidInput { field, reason } => Self::invalid_value(cfg, field, reason),
            Error::NotFound(what) => Self::not_found(cfg, what),
            e @ Error::PermissionNotHeld { .. } => {
                Self::new(cfg, 403, "permission_not_held", e.to_string())
            }
            e @ Error::RestrictionNotHeld { field, .. } => {
                let mut r = Self::new(cfg, 403, "restriction_not_held", e.to_string());
                r.inner.field = Some(field);
                r
            }
            e @ Error::Protected => Self::new(cfg, 409, "protected", e.to_string()),
            Error::AppHasKeys => Self::new(
                cfg,
                409,
                "app_has_keys",
                "the application still has keys; delete them first or pass cascade=true",
            ),
            Error::Conflict(_) => Self::new(
                cfg,
                409,
                "conflict",
                "the record changed concurrently; read it again and retry",
            ),
            e @ Error::Unavailable(_) => {
                tracing::error!(target: "keyward::rejection", error = ?e, "store unavailable");
                let mut r = Self::new(
                    cfg,
                    503,
                    "unavailable",
                    "the service is temporarily unavailable; retry later",
                );
                r.inner.retry_after = Some(cfg.unavailable_retry_after_secs.max(1));
                r
            }
            e @ Error::Internal(_) => {
                tracing::error!(target: "keyward::rejection", error = ?e, "internal error");
                Self::new(cfg, 500, "internal_error", "internal error")
            }
        }
    }

    /// The HTTP status code.
    pub fn status(&self) -> u16 {
        self.inner.status
    }

    /// The machine-readable snake_case code (`"error"` in the body).
    pub fn code(&self) -> &'static str {
        self.inner.code
    }

    /// The human-readable message.
    pub fn message(&self) -> &str {
        &self.inner.message
    }

    /// The field a 422 is about.
    pub fn field(&self) -> Option<&'static str> {
        self.inner.field
    }

    /// `Retry-After` seconds (429, 503).
    pub fn retry_after(&self) -> Option<u64> {
        self.inner.retry_after
    }

    /// The `WWW-Authenticate` value, if any.
    pub fn www_authenticate(&self) -> Option<String> {
        let realm = &self.inner.realm;
        match &self.inner.challenge {
            Challenge::None => None,
            Challenge::Plain => Some(format!("Bearer realm=\"{realm}\"")),
            Challenge::Error(e) => Some(format!("Bearer realm=\"{realm}\", error=\"{e}\"")),
            Challenge::Scope(s) => Some(format!(
                "Bearer realm=\"{realm}\", error=\"insufficient_scope\", scope=\"{s}\""
            )),
        }
    }

    /// The JSON body.
    pub fn body(&self) -> Vec<u8> {
        let mut m = serde_json::Map::new();
        m.insert("error".into(), self.inner.code.into());
        m.insert("message".into(), self.inner.message.as_ref().into());
        if let Some(f) = self.inner.field {
            m.insert("field".into(), f.into());
        }
        serde_json::to_vec(&serde_json::Value::Object(m)).unwrap_or_default()
    }

    /// Every header of the response, `Content-Type` first.
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        let mut h = vec![("content-type", "application/json".to_owned())];
        if let Some(w) = self.www_authenticate() {
            h.push(("www-authenticate", w));
        }
        if let Some(r) = self.inner.retry_after {
            h.push(("retry-after", r.to_string()));
        }
        if let Some(s) = &self.inner.rate_limit {
            crate::http::ratelimit::push_headers(&mut h, s);
        }
        if let Some(a) = &self.inner.allow {
            h.push(("allow", a.clone()));
        }
        h
    }

    /// Logs a rejection below 500 (target `keyward::rejection`; store
    /// failures were logged where they were mapped): every adapter's
    /// response calls this once.
    pub(crate) fn log(&self) {
        if self.inner.status < 500 {
            tracing::debug!(target: "keyward::rejection", status = self.inner.status, code = self.inner.code, message = %self.inner.message, "request rejected");
        }
    }

    /// Logs the rejection once (target `keyward::rejection`) and returns
    /// the response parts; adapters call this.
    #[cfg(any(feature = "axum", feature = "actix"))]
    pub(crate) fn render(self) -> crate::http::Response {
        self.log();
        crate::http::Response {
            status: self.inner.status,
            headers: self.headers(),
            body: self.body(),
            stream: None,
        }
    }
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.inner.status, self.inner.code, self.inner.message
        )
    }
}

impl std::error::Error for HttpError {}
