//! [`KeywardHttp`]: the one state both HTTP adapters read.

use std::sync::Arc;

use crate::http::config::HttpConfig;
use crate::service::Keyward;

/// The state of the HTTP adapters: the [`Keyward`] service and its
/// [`HttpConfig`], one cheap-to-clone handle (one `Arc`).
///
/// Every keyward extractor, layer and route finds it the framework's way,
/// and only there: axum through `FromRef` of the router state (the state
/// itself, or a field of the application's state), actix-web as
/// `web::Data<KeywardHttp>` in the app data. There is no second source and
/// no silent default: a missing state is a compile error (axum) or a 500
/// naming the fix (actix-web).
///
/// ```
/// use keyward::{Keyward, MemoryStore};
/// use keyward::http::{HttpConfig, KeywardHttp};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let kw = Keyward::builder().store(MemoryStore::new()).build()?;
/// let http = KeywardHttp::with_config(
///     kw,
///     HttpConfig::default().trusted_proxies(vec!["10.0.0.0/8".parse()?]),
/// );
/// assert_eq!(http.config().trusted_proxies.len(), 1);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct KeywardHttp {
    shared: Arc<Shared>,
}

struct Shared {
    keyward: Keyward,
    config: HttpConfig,
}

impl KeywardHttp {
    /// The service with the default [`HttpConfig`] (no trusted proxies,
    /// realm `keyward`).
    pub fn new(keyward: Keyward) -> Self {
        Self::with_config(keyward, HttpConfig::default())
    }

    /// The service with `config`.
    pub fn with_config(keyward: Keyward, config: HttpConfig) -> Self {
        Self {
            shared: Arc::new(Shared { keyward, config }),
        }
    }

    /// The service.
    #[inline]
    pub fn keyward(&self) -> &Keyward {
        &self.shared.keyward
    }

    /// The HTTP settings.
    #[inline]
    pub fn config(&self) -> &HttpConfig {
        &self.shared.config
    }
}

impl From<Keyward> for KeywardHttp {
    fn from(keyward: Keyward) -> Self {
        Self::new(keyward)
    }
}

impl std::fmt::Debug for KeywardHttp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeywardHttp")
            .field("keyward", self.keyward())
            .field("config", self.config())
            .finish()
    }
}
