//! Authenticating a request: credentials, client address, `x-account-id`.

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;

use crate::context::VerifyContext;
use crate::http::config::HttpConfig;
use crate::http::error::HttpError;
use crate::http::headers::{self, Credentials, RequestHeaders};
use crate::id::AccountId;
use crate::principal::Principal;
use crate::service::Keyward;

/// A permission named at compile time, for the extractors that check it
/// without a layer (axum's `keyward::http::axum::Authorized`).
/// An invalid name is a compile error where the extractor is used.
///
/// ```
/// use keyward::http::RequiredPermission;
///
/// struct ReadApplications;
/// impl RequiredPermission for ReadApplications {
///     const NAME: &'static str = "readApplications";
/// }
/// ```
pub trait RequiredPermission: 'static {
    /// The permission name (see [`Permission::new`](crate::Permission::new)).
    const NAME: &'static str;
}

/// [`RequiredPermission::NAME`], checked at compile time.
#[cfg(feature = "axum")]
pub(crate) const fn required_name<P: RequiredPermission>() -> &'static str {
    const {
        assert!(
            crate::permission::is_valid_name(P::NAME),
            "RequiredPermission::NAME is not a valid permission name"
        );
    }
    P::NAME
}

/// A request's presented credentials, read and checked: everything
/// synchronous about authenticating it, so that the future that verifies
/// holds only this (not the gathered headers) across its await and stays
/// small (cheaper to move, and to box when a framework boxes it).
pub(crate) struct Attempt<'a> {
    creds: Credentials<'a>,
    account: Option<AccountId>,
    client_ip: Option<IpAddr>,
}

/// The request's credentials; `Ok(None)` when it presented none, 400 when
/// they are malformed.
///
/// `client_ip` is called only when credentials were presented (the
/// adapters' version reads `X-Forwarded-For`, which a request without
/// credentials never needs).
pub(crate) fn attempt<'a>(
    cfg: &HttpConfig,
    h: &RequestHeaders<'a>,
    client_ip: impl FnOnce() -> Option<IpAddr>,
) -> Result<Option<Attempt<'a>>, HttpError> {
    let Some(creds) = headers::credentials(cfg, h)? else {
        return Ok(None);
    };
    let account = headers::account_id(cfg, h)?;
    Ok(Some(Attempt {
        creds,
        account,
        client_ip: client_ip(),
    }))
}

/// A verification in progress: decided from the caches, or a boxed future
/// for the rare request that needs the store, argon2 or a child account.
pub(crate) enum Verification<'a> {
    /// Decided without an await.
    Done(Result<Principal, HttpError>),
    /// To await.
    Pending(Pin<Box<dyn Future<Output = Result<Principal, HttpError>> + Send + 'a>>),
}

impl Verification<'_> {
    /// The outcome: at once when decided, otherwise when the future is.
    #[inline]
    pub(crate) async fn outcome(self) -> Result<Principal, HttpError> {
        match self {
            Verification::Done(r) => r,
            Verification::Pending(f) => f.await,
        }
    }
}

impl<'a> Attempt<'a> {
    /// Verifies from the caches when they decide (no await, no
    /// allocation: most requests), otherwise starts the full verification.
    pub(crate) fn start(self, kw: &'a Keyward, cfg: &'a HttpConfig) -> Verification<'a> {
        let ctx = self.context();
        let cached = match self.creds {
            Credentials::Key { id, secret } => kw.verify_cached(id, secret, ctx),
            Credentials::Bearer(token) => kw.verify_bearer_cached(token, ctx),
        };
        match cached {
            None => Verification::Pending(Box::pin(self.verify(kw, cfg))),
            Some(Err(e)) => Verification::Done(Err(self.creds.reject(cfg, e))),
            Some(Ok(p)) => match self.account {
                Some(a) if a != *p.home_account_id() => {
                    Verification::Pending(Box::pin(async move {
                        kw.act_for(&p, &a)
                            .await
                            .map_err(|e| HttpError::from_service(cfg, e))
                    }))
                }
                // Its own account: the principal as verified.
                _ => Verification::Done(Ok(p)),
            },
        }
    }

    fn context(&self) -> VerifyContext {
        let mut ctx = VerifyContext::new();
        ctx.client_ip = self.client_ip;
        ctx
    }

    /// Verifies the credentials (reading the store when needed), then
    /// `x-account-id`.
    pub(crate) async fn verify(
        self,
        kw: &Keyward,
        cfg: &HttpConfig,
    ) -> Result<Principal, HttpError> {
        let ctx = self.context();
        let verified = match self.creds {
            Credentials::Key { id, secret } => kw.verify_key_bytes(id, secret, ctx).await,
            Credentials::Bearer(token) => kw.verify_bearer_bytes(token, ctx).await,
        };
        let principal = verified.map_err(|e| self.creds.reject(cfg, e))?;
        match self.account {
            // Boxed: rarer, and it would otherwise enlarge every
            // verification's future.
            Some(a) => Box::pin(async move { kw.act_for(&principal, &a).await })
                .await
                .map_err(|e| HttpError::from_service(cfg, e)),
            None => Ok(principal),
        }
    }
}

/// The request's principal; 401 when it presented no credentials.
pub(crate) async fn require(
    kw: &Keyward,
    cfg: &HttpConfig,
    h: &RequestHeaders<'_>,
    client_ip: Option<IpAddr>,
) -> Result<Principal, HttpError> {
    match attempt(cfg, h, || client_ip)? {
        Some(a) => a.start(kw, cfg).outcome().await,
        None => Err(HttpError::missing_credentials(cfg)),
    }
}
