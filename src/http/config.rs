//! [`HttpConfig`]: settings shared by both adapters.

use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;

/// Settings of the HTTP adapters, held with the [`Keyward`](crate::Keyward)
/// in their one state, [`KeywardHttp::with_config`](crate::http::KeywardHttp::with_config)
/// (the only place the adapters read them; [`KeywardHttp::new`](crate::http::KeywardHttp::new)
/// takes the defaults: no trusted proxies, realm `keyward`).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct HttpConfig {
    /// Proxies whose `X-Forwarded-For` is believed. The client address is
    /// the peer address unless the peer is one of these; then it is the
    /// right-most `X-Forwarded-For` entry that is not a trusted proxy.
    pub trusted_proxies: Vec<IpNet>,
    /// The realm in `WWW-Authenticate` challenges (default `keyward`).
    pub realm: Arc<str>,
    /// `Retry-After` seconds sent with 503 when the store is unavailable
    /// (default 5).
    pub unavailable_retry_after_secs: u64,
    /// Whether successful responses of routes behind the adapters' layers
    /// (axum `require` / `usage`, actix `RequirePermission` / `usage`)
    /// carry the `RateLimit-Policy` / `RateLimit` headers of the limit
    /// closest to refusing the principal, when one applied (default off;
    /// a 429 always carries them).
    pub rate_limit_headers_on_success: bool,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            trusted_proxies: Vec::new(),
            realm: Arc::from("keyward"),
            unavailable_retry_after_secs: 5,
            rate_limit_headers_on_success: false,
        }
    }
}

impl HttpConfig {
    /// The defaults: no trusted proxies, realm `keyward`.
    pub fn new() -> Self {
        Self::default()
    }

    /// Believes `X-Forwarded-For` from these networks.
    pub fn trusted_proxies(mut self, proxies: Vec<IpNet>) -> Self {
        self.trusted_proxies = proxies;
        self
    }

    /// Sets the realm. It must be printable ASCII without `"` or `\`;
    /// other characters are replaced by `_`.
    pub fn realm(mut self, realm: &str) -> Self {
        let clean: String = realm
            .chars()
            .map(|c| {
                if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        self.realm = Arc::from(clean);
        self
    }

    /// Sets the `Retry-After` of 503 responses.
    pub fn unavailable_retry_after_secs(mut self, secs: u64) -> Self {
        self.unavailable_retry_after_secs = secs;
        self
    }

    /// Adds the `RateLimit-Policy` / `RateLimit` headers to successful
    /// responses of routes behind the adapters' layers whose principal
    /// has a limit status (see
    /// [`rate_limit_headers_on_success`](Self::rate_limit_headers_on_success)).
    ///
    /// ```
    /// use keyward::http::HttpConfig;
    /// let cfg = HttpConfig::new().rate_limit_headers(true);
    /// assert!(cfg.rate_limit_headers_on_success);
    /// ```
    pub fn rate_limit_headers(mut self, on: bool) -> Self {
        self.rate_limit_headers_on_success = on;
        self
    }

    #[inline]
    pub(crate) fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trusted_proxies.iter().any(|n| n.contains(&ip))
    }
}
