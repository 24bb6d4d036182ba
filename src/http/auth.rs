//! Authenticating a request: credentials, client address, `x-account-id`.

use std::net::IpAddr;

use crate::context::VerifyContext;
use crate::http::config::HttpConfig;
use crate::http::error::HttpError;
use crate::http::headers::{self, Client, Credentials, RequestHeaders};
use crate::http::route_usage::RouteUsage;
use crate::http::state::KeywardHttp;
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

/// Declares permission marker types for [`Authorized`]: each a unit
/// struct implementing [`RequiredPermission`] (an invalid name is a compile
/// error where the marker is used).
///
/// ```
/// keyward::permission! {
///     /// May read applications.
///     pub ReadApplications = "readApplications";
///     pub WriteApplications = "writeApplications";
/// }
/// use keyward::http::RequiredPermission;
/// assert_eq!(ReadApplications::NAME, "readApplications");
/// ```
#[macro_export]
macro_rules! permission {
    ($($(#[$meta:meta])* $vis:vis $name:ident = $permission:literal;)+) => {
        $(
            $(#[$meta])*
            #[derive(Debug, Clone, Copy, PartialEq, Eq)]
            $vis struct $name;
            impl $crate::http::RequiredPermission for $name {
                const NAME: &'static str = $permission;
            }
        )+
    };
}

/// A principal holding the permission `P`, checked by the extractor itself
/// (axum and actix-web): the same 401/400/403/429/503 as the adapter's
/// `require` layer / `RequirePermission` middleware, without one.
///
/// ```no_run
/// # #[cfg(feature = "axum")] {
/// use axum::{Router, routing::get};
/// use keyward::{Keyward, MemoryStore};
/// use keyward::http::axum::Authorized;
///
/// keyward::permission! { pub ReadApplications = "readApplications"; }
///
/// async fn apps(p: Authorized<ReadApplications>) -> String {
///     format!("applications of {}", p.account_id())
/// }
///
/// # fn app() -> Result<(), Box<dyn std::error::Error>> {
/// let kw = Keyward::builder().store(MemoryStore::new()).build()?;
/// let app: Router = Router::new()
///     .route("/applications", get(apps))
///     .with_state(keyward::http::KeywardHttp::new(kw));
/// # Ok(()) }
/// # }
/// ```
///
/// Cheaper than the layer plus a `Principal` extractor: no boxed layer
/// future and nothing inserted in the request extensions. It uses a
/// principal already cached there (by the layer or a `Principal`
/// extractor) but does not cache the one it verifies, so make it the
/// handler's only keyward extractor (it dereferences to the
/// [`Principal`]); a second extractor would verify, and count usage,
/// again. Put it before any body extractor so that a rejected request is
/// not read.
#[cfg(any(feature = "axum", feature = "actix"))]
pub struct Authorized<P> {
    principal: Principal,
    permission: std::marker::PhantomData<fn() -> P>,
}

#[cfg(any(feature = "axum", feature = "actix"))]
impl<P: RequiredPermission> Authorized<P> {
    /// The extractors' one rule: 401 without credentials, 403 without `P`.
    pub(crate) fn checked(cfg: &HttpConfig, found: Option<Principal>) -> Result<Self, HttpError> {
        let name = required_name::<P>();
        let Some(principal) = found else {
            return Err(HttpError::missing_credentials(cfg));
        };
        if !principal.has_name(name) {
            return Err(HttpError::insufficient_scope(cfg, name));
        }
        Ok(Self {
            principal,
            permission: std::marker::PhantomData,
        })
    }
}

#[cfg(any(feature = "axum", feature = "actix"))]
impl<P> Authorized<P> {
    /// The principal.
    pub fn into_inner(self) -> Principal {
        self.principal
    }
}

#[cfg(any(feature = "axum", feature = "actix"))]
impl<P> std::ops::Deref for Authorized<P> {
    type Target = Principal;

    fn deref(&self) -> &Principal {
        &self.principal
    }
}

#[cfg(any(feature = "axum", feature = "actix"))]
impl<P> Clone for Authorized<P> {
    fn clone(&self) -> Self {
        Self {
            principal: self.principal.clone(),
            permission: std::marker::PhantomData,
        }
    }
}

#[cfg(any(feature = "axum", feature = "actix"))]
impl<P> std::fmt::Debug for Authorized<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Authorized").field(&self.principal).finish()
    }
}

/// [`RequiredPermission::NAME`], checked at compile time.
#[cfg(any(feature = "axum", feature = "actix"))]
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
    browser_origin: Option<&'a str>,
    usage: &'a RouteUsage,
    /// The call origin a trusted proxy named (`x-call-origin`), over the
    /// route's.
    origin: Option<crate::Label>,
}

/// The request's credentials; `Ok(None)` when it presented none, 400 when
/// they are malformed.
///
/// `client` is called only when credentials were presented (the
/// adapters' version reads `X-Forwarded-For`, which a request without
/// credentials never needs). A trusted proxy's `x-call-origin` overrides
/// the route's origin.
#[inline]
pub(crate) fn attempt<'a>(
    cfg: &HttpConfig,
    h: &RequestHeaders<'a>,
    usage: &'a RouteUsage,
    client: impl FnOnce() -> Client,
) -> Result<Option<Attempt<'a>>, HttpError> {
    let Some(creds) = headers::credentials(cfg, h)? else {
        return Ok(None);
    };
    let account = headers::account_id(cfg, h)?;
    let client = client();
    Ok(Some(Attempt {
        creds,
        account,
        client_ip: client.ip,
        browser_origin: h.browser_origin(),
        usage,
        origin: headers::call_origin(h, &client),
    }))
}

/// A verification started by [`Attempt::start`].
pub(crate) enum Verification<'a> {
    /// Decided from the caches, without an await (most requests).
    Done(Result<Principal, HttpError>),
    /// Verified and counted, for another account (`x-account-id`), which
    /// must be read.
    ActFor(Principal, AccountId),
    // Read by `outcome` (the management API's callers).
    #[cfg_attr(not(any(feature = "axum", feature = "actix")), allow(dead_code))]
    /// The caches could not decide and nothing was counted: the store or
    /// argon2 must.
    Cold(Attempt<'a>),
}

/// The part of a verification an adapter leaves to a boxed future: it
/// holds no borrow of the request, which the future reads again.
pub(crate) enum Later {
    /// The caches could not decide; nothing was counted yet.
    Cold,
    /// Verified and counted; acting for another account.
    ActFor(Principal, AccountId),
}

impl Later {
    /// Awaits what remains: the child account, or — nothing having been
    /// counted — the verification from the start, of the credentials
    /// `attempt` reads again from the request. `None`: it presented none.
    pub(crate) async fn resolve<'a>(
        self,
        kw: &Keyward,
        cfg: &HttpConfig,
        attempt: impl FnOnce() -> Result<Option<Attempt<'a>>, HttpError>,
    ) -> Result<Option<Principal>, HttpError> {
        match self {
            Later::ActFor(p, account) => act_for(kw, cfg, &p, &account).await.map(Some),
            Later::Cold => match attempt()? {
                Some(a) => a.verify(kw, cfg).await.map(Some),
                None => Ok(None),
            },
        }
    }
}

#[cfg(any(feature = "axum", feature = "actix"))]
impl Verification<'_> {
    /// The outcome, awaiting what the caches could not decide. Callers on
    /// the request path box this when it is not `Done`, so that their own
    /// futures stay small.
    pub(crate) async fn outcome(
        self,
        kw: &Keyward,
        cfg: &HttpConfig,
    ) -> Result<Principal, HttpError> {
        match self {
            Verification::Done(r) => r,
            Verification::ActFor(p, account) => act_for(kw, cfg, &p, &account).await,
            Verification::Cold(attempt) => attempt.verify(kw, cfg).await,
        }
    }
}

/// The principal acting for `account` (`x-account-id`).
pub(crate) async fn act_for(
    kw: &Keyward,
    cfg: &HttpConfig,
    p: &Principal,
    account: &AccountId,
) -> Result<Principal, HttpError> {
    kw.act_for(p, account)
        .await
        .map_err(|e| HttpError::from_service(cfg, e))
}

impl<'a> Attempt<'a> {
    /// Verifies from the caches when they decide (no await, no
    /// allocation), or says what remains to be awaited.
    #[inline]
    pub(crate) fn start(self, kw: &Keyward, cfg: &HttpConfig) -> Verification<'a> {
        let ctx = self.context();
        let cached = match self.creds {
            Credentials::Key { id, secret } => kw.verify_cached(id, secret, ctx),
            Credentials::Bearer(token) => kw.verify_bearer_cached(token, ctx),
        };
        match cached {
            Some(Ok(p)) => match self.account {
                Some(a) if a != *p.home_account_id() => {
                    crate::hint::cold_path();
                    Verification::ActFor(p, a)
                }
                // Its own account: the principal as verified.
                _ => Verification::Done(Ok(p)),
            },
            None => {
                crate::hint::cold_path();
                Verification::Cold(self)
            }
            Some(Err(e)) => {
                crate::hint::cold_path();
                Verification::Done(Err(self.creds.reject(cfg, e)))
            }
        }
    }

    #[inline]
    fn context(&self) -> VerifyContext<'a> {
        let mut ctx = VerifyContext::new();
        ctx.client_ip = self.client_ip;
        ctx.browser_origin = self.browser_origin;
        ctx.origin = self.origin.unwrap_or(self.usage.origin);
        ctx.category = self.usage.category;
        ctx.limit = self.usage.limit;
        ctx.cost = self.usage.cost;
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
            Some(a) => Box::pin(act_for(kw, cfg, &principal, &a)).await,
            None => Ok(principal),
        }
    }
}

/// A request's principal as far as keyward's caches know it, without an
/// await: what every adapter's extractor and layer starts from.
pub(crate) enum Found {
    /// Verified from the caches.
    Principal(Principal),
    /// The request presented no credentials.
    Absent,
    /// The response is an error (400, 401, 403, 429, 503).
    Rejected(HttpError),
    /// The store, argon2 or a child account must say ([`find_later`]).
    Later(Later),
}

/// Verifies a request's credentials from the caches when they decide
/// (most requests: no await, no allocation), or says what remains. The
/// adapter gives the request's headers and, called only when credentials
/// were presented, its client address.
#[inline]
pub(crate) fn find_now(
    http: &KeywardHttp,
    h: &RequestHeaders<'_>,
    usage: &RouteUsage,
    client: impl FnOnce(&HttpConfig) -> Client,
) -> Found {
    let cfg = http.config();
    let attempt = match attempt(cfg, h, usage, || client(cfg)) {
        Ok(Some(a)) => a,
        Ok(None) => return Found::Absent,
        Err(e) => return Found::Rejected(e),
    };
    match attempt.start(http.keyward(), cfg) {
        Verification::Done(Ok(p)) => Found::Principal(p),
        Verification::Done(Err(e)) => {
            crate::hint::cold_path();
            Found::Rejected(e)
        }
        Verification::ActFor(p, account) => {
            crate::hint::cold_path();
            Found::Later(Later::ActFor(p, account))
        }
        Verification::Cold(_) => {
            crate::hint::cold_path();
            Found::Later(Later::Cold)
        }
    }
}

/// What [`find_now`] left to await, reading the request's headers (and
/// client address) again; `None` when it presented no credentials.
pub(crate) async fn find_later<'a>(
    http: &KeywardHttp,
    later: Later,
    usage: &'a RouteUsage,
    h: impl FnOnce() -> RequestHeaders<'a>,
    client: impl FnOnce(&HttpConfig) -> Client,
) -> Result<Option<Principal>, HttpError> {
    let cfg = http.config();
    later
        .resolve(http.keyward(), cfg, || {
            attempt(cfg, &h(), usage, || client(cfg))
        })
        .await
}

#[cfg(any(feature = "axum", feature = "actix"))]
/// The request's principal; 401 when it presented no credentials.
pub(crate) async fn require(
    kw: &Keyward,
    cfg: &HttpConfig,
    h: &RequestHeaders<'_>,
    client_ip: Option<IpAddr>,
) -> Result<Principal, HttpError> {
    let client = || Client {
        ip: client_ip,
        via_trusted_proxy: false,
    };
    match attempt(cfg, h, &RouteUsage::API, client)? {
        Some(a) => a.start(kw, cfg).outcome(kw, cfg).await,
        None => Err(HttpError::missing_credentials(cfg)),
    }
}
