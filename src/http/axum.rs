//! axum adapter: the [`Principal`] and [`Authorized`] extractors, the
//! [`require`] layer and the management [`router`].
//!
//! ```no_run
//! use axum::{Router, routing::get};
//! use keyward::{Keyward, MemoryStore, Principal};
//! use keyward::http::{HttpConfig, axum::{require, router}};
//!
//! async fn apps(p: Principal) -> String {
//!     format!("applications of {}", p.account_id())
//! }
//!
//! # fn app() -> Result<(), Box<dyn std::error::Error>> {
//! let kw = Keyward::builder().store(MemoryStore::new()).build()?;
//! let app: Router = Router::new()
//!     .route("/applications", get(apps).route_layer(require(&kw, "readApplications")))
//!     .merge(router(kw.clone(), HttpConfig::default()))
//!     .with_state(kw);
//! # Ok(()) }
//! ```
//!
//! The extractor needs `Keyward: FromRef<S>` of the router state `S`
//! (when `S` is `Keyward` itself, it is borrowed, not cloned). It
//! reads the [`HttpConfig`] from an `Extension<HttpConfig>` (or
//! `Extension<Arc<HttpConfig>>`) layer when there is one (defaults
//! otherwise) and caches the verified principal
//! in the request extensions. `Option<Principal>` extracts `None` when no
//! credentials were presented and rejects bad ones.

use std::any::Any;
use std::borrow::Cow;
use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, LazyLock};
use std::task::{Context, Poll};

use axum::Router;
use axum::body::Body as AxumBody;
use axum::extract::{
    ConnectInfo, FromRef, FromRequestParts, OptionalFromRequestParts, RawPathParams, Request,
};
use axum::http::Extensions;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response as AxumResponse};
use axum::routing::any;

use crate::http::api::{self, Response};
use crate::http::auth::{self, Later, Verification};
use crate::http::body::Body;
use crate::http::headers::{self, RequestHeaders};
use crate::http::{HttpConfig, HttpError, MAX_BODY_BYTES, RequiredPermission};
use crate::permission::Permission;
use crate::principal::Principal;
use crate::service::Keyward;

#[cfg(feature = "console")]
#[cfg_attr(docsrs, doc(cfg(feature = "console")))]
pub use crate::http::console_axum::console;

static DEFAULT_CONFIG: LazyLock<HttpConfig> = LazyLock::new(HttpConfig::default);

/// The [`HttpConfig`] of an `Extension<Arc<HttpConfig>>` layer, or of an
/// `Extension<HttpConfig>` layer (what the docs of [`HttpConfig`] show),
/// or the defaults.
#[inline]
fn config(ext: &Extensions) -> &HttpConfig {
    match ext.get::<Arc<HttpConfig>>() {
        Some(c) => c,
        None => ext.get::<HttpConfig>().unwrap_or(&*DEFAULT_CONFIG),
    }
}

// Pre-parsed name: a lookup by `&str` parses the name on every call.
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

#[inline]
fn gather(h: &HeaderMap) -> RequestHeaders<'_> {
    RequestHeaders::gather(h.iter().map(|(n, v)| (n.as_str(), v.as_bytes())))
}

#[inline]
fn client_ip(cfg: &HttpConfig, headers: &HeaderMap, ext: &Extensions) -> Option<IpAddr> {
    let peer = ext.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    headers::client_ip(cfg, peer, || {
        headers
            .get_all(&X_FORWARDED_FOR)
            .iter()
            .map(HeaderValue::as_bytes)
    })
}

fn to_axum(r: Response) -> AxumResponse {
    let body = match r.stream {
        Some(stream) => AxumBody::from_stream(stream),
        None => AxumBody::from(r.body),
    };
    let mut res = AxumResponse::new(body);
    *res.status_mut() = StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    for (name, value) in r.headers {
        if let Ok(v) = HeaderValue::from_str(&value) {
            res.headers_mut().append(name, v);
        }
    }
    res
}

impl IntoResponse for HttpError {
    fn into_response(self) -> AxumResponse {
        to_axum(self.render())
    }
}

/// A request's principal as far as the caches know it, without an await.
enum Found {
    /// Verified from the caches.
    Principal(Principal),
    /// The request presented no credentials.
    Absent,
    /// The response is an error (400, 401, 403, …).
    Rejected(HttpError),
    /// The store, argon2 or a child account must say.
    Later(Later),
}

/// Verifies a request's credentials from the caches when they decide
/// (most requests: no await, no allocation). It does not look for a
/// principal already in the extensions; callers do, first.
#[inline]
fn find_now(kw: &Keyward, cfg: &HttpConfig, headers: &HeaderMap, ext: &Extensions) -> Found {
    let attempt = match auth::attempt(cfg, &gather(headers), || client_ip(cfg, headers, ext)) {
        Ok(Some(a)) => a,
        Ok(None) => return Found::Absent,
        Err(e) => return Found::Rejected(e),
    };
    match attempt.start(kw, cfg) {
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

/// What [`find_now`] left to await (see [`Later::resolve`]); 401 when no
/// credentials were presented.
async fn find_later(
    kw: &Keyward,
    headers: &HeaderMap,
    ext: &Extensions,
    later: Later,
) -> Result<Principal, HttpError> {
    let cfg = config(ext);
    later
        .resolve(kw, cfg, || {
            auth::attempt(cfg, &gather(headers), || client_ip(cfg, headers, ext))
        })
        .await?
        .ok_or_else(|| HttpError::missing_credentials(cfg))
}

/// An extractor's future: ready when the caches decided, boxed otherwise
/// (axum boxes each handler's future, which holds this one; inline, the
/// verification would make that box larger than 1 KiB).
enum Extracting<'a, T> {
    Ready(Option<T>),
    Later(Pin<Box<dyn Future<Output = T> + Send + 'a>>),
}

impl<T: Unpin> Future for Extracting<'_, T> {
    type Output = T;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        match self.get_mut() {
            Extracting::Ready(v) => {
                Poll::Ready(v.take().expect("extractor polled after completion"))
            }
            Extracting::Later(f) => f.as_mut().poll(cx),
        }
    }
}

/// The router state's `Keyward`: borrowed when the state is the `Keyward`
/// itself (the common case, decided at compile time), so that a warm
/// request clones no `Arc`; through `FromRef` otherwise.
#[inline]
fn state_keyward<S: 'static>(state: &S) -> Cow<'_, Keyward>
where
    Keyward: FromRef<S>,
{
    match (state as &dyn Any).downcast_ref::<Keyward>() {
        Some(kw) => Cow::Borrowed(kw),
        None => Cow::Owned(Keyward::from_ref(state)),
    }
}

/// The principal of a request for an extractor: the one cached in the
/// extensions, or verified now (and then cached when `cache`); `None`
/// without credentials. `finish` turns it into the extractor's output.
fn extract<'a, S: 'static, T>(
    parts: &'a mut Parts,
    state: &S,
    cache: bool,
    finish: fn(&HttpConfig, Option<Principal>) -> Result<T, HttpError>,
) -> Extracting<'a, Result<T, HttpError>>
where
    Keyward: FromRef<S>,
    T: Send + 'a,
{
    let cfg = config(&parts.extensions);
    if let Some(p) = parts.extensions.get::<Principal>() {
        return Extracting::Ready(Some(finish(cfg, Some(p.clone()))));
    }
    let kw = state_keyward(state);
    let p = match find_now(&kw, cfg, &parts.headers, &parts.extensions) {
        Found::Principal(p) => p,
        Found::Absent => return Extracting::Ready(Some(finish(cfg, None))),
        Found::Rejected(e) => return Extracting::Ready(Some(Err(e))),
        Found::Later(later) => {
            let kw = kw.into_owned();
            return Extracting::Later(Box::pin(async move {
                let p = find_later(&kw, &parts.headers, &parts.extensions, later).await?;
                if cache {
                    parts.extensions.insert(p.clone());
                }
                finish(config(&parts.extensions), Some(p))
            }));
        }
    };
    if !cache {
        return Extracting::Ready(Some(finish(cfg, Some(p))));
    }
    let out = finish(cfg, Some(p.clone()));
    parts.extensions.insert(p);
    Extracting::Ready(Some(out))
}

impl<S> OptionalFromRequestParts<S> for Principal
where
    Keyward: FromRef<S>,
    S: Send + Sync + 'static,
{
    type Rejection = HttpError;

    fn from_request_parts(
        parts: &mut Parts,
        state: &S,
    ) -> impl Future<Output = Result<Option<Self>, HttpError>> + Send {
        extract(parts, state, true, |_, p| Ok(p))
    }
}

impl<S> FromRequestParts<S> for Principal
where
    Keyward: FromRef<S>,
    S: Send + Sync + 'static,
{
    type Rejection = HttpError;

    fn from_request_parts(
        parts: &mut Parts,
        state: &S,
    ) -> impl Future<Output = Result<Self, HttpError>> + Send {
        extract(parts, state, true, |cfg, p| {
            p.ok_or_else(|| HttpError::missing_credentials(cfg))
        })
    }
}

pub use crate::http::auth::Authorized;

impl<S, P> FromRequestParts<S> for Authorized<P>
where
    Keyward: FromRef<S>,
    S: Send + Sync + 'static,
    P: RequiredPermission,
{
    type Rejection = HttpError;

    fn from_request_parts(
        parts: &mut Parts,
        state: &S,
    ) -> impl Future<Output = Result<Self, HttpError>> + Send {
        extract(parts, state, false, Authorized::checked)
    }
}

/// A layer that lets a request through only when its principal holds
/// `permission` (401/403 otherwise), caching the principal for the
/// handler's extractor. One line per route:
/// `get(handler).route_layer(require(&kw, "readApplications"))`.
///
/// # Panics
/// When `permission` is not a valid permission name (at router
/// construction, like an invalid route path).
pub fn require(kw: &Keyward, permission: &str) -> RequirePermissionLayer {
    let permission =
        Permission::new(permission).unwrap_or_else(|e| panic!("keyward::http::axum::require: {e}"));
    RequirePermissionLayer {
        guard: Arc::new(Guard {
            kw: kw.clone(),
            permission,
        }),
    }
}

/// What [`RequirePermission`] checks with: one `Arc` to clone per request.
#[derive(Debug)]
struct Guard {
    kw: Keyward,
    permission: Permission,
}

/// The layer made by [`require`].
#[derive(Debug, Clone)]
pub struct RequirePermissionLayer {
    guard: Arc<Guard>,
}

impl<Svc> tower_layer::Layer<Svc> for RequirePermissionLayer {
    type Service = RequirePermission<Svc>;

    fn layer(&self, inner: Svc) -> Self::Service {
        RequirePermission {
            inner,
            guard: Arc::clone(&self.guard),
        }
    }
}

/// The service made by [`RequirePermissionLayer`].
#[derive(Debug, Clone)]
pub struct RequirePermission<Svc> {
    inner: Svc,
    guard: Arc<Guard>,
}

impl<Svc> tower_service::Service<Request> for RequirePermission<Svc>
where
    Svc: tower_service::Service<Request, Response = AxumResponse, Error = Infallible>
        + Clone
        + Send
        + 'static,
    Svc::Future: Send + 'static,
{
    type Response = AxumResponse;
    type Error = Infallible;
    type Future = RequireFuture<Svc::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
        let state = match self.guard.decide_now(&mut req) {
            // Most requests: the inner service's own future, no box.
            Now::Allowed => State::Inner {
                future: self.inner.call(req),
            },
            Now::Rejected(res) => State::Ready {
                response: Some(res),
            },
            Now::Later(verification) => {
                // `poll_ready` readied `self.inner`; the boxed future takes
                // it and leaves a clone for the next request.
                let clone = self.inner.clone();
                let inner = std::mem::replace(&mut self.inner, clone);
                State::Boxed {
                    future: Box::pin(guarded_later(
                        Arc::clone(&self.guard),
                        inner,
                        req,
                        verification,
                    )),
                }
            }
        };
        RequireFuture { state }
    }
}

/// What [`Guard::decide_now`] could decide without an await.
enum Now {
    /// The principal holds the permission; it is in the request
    /// extensions.
    Allowed,
    /// The response to send instead.
    Rejected(AxumResponse),
    /// Still to await.
    Later(Later),
}

impl Guard {
    /// Decides from the caches when they can, inserting the principal in
    /// the request extensions when it is allowed.
    fn decide_now(&self, req: &mut Request) -> Now {
        let cached = req.extensions().get::<Principal>().cloned();
        let principal = match cached {
            Some(p) => p,
            None => match find_now(
                &self.kw,
                config(req.extensions()),
                req.headers(),
                req.extensions(),
            ) {
                Found::Principal(p) => p,
                Found::Absent => {
                    let cfg = config(req.extensions());
                    return Now::Rejected(HttpError::missing_credentials(cfg).into_response());
                }
                Found::Rejected(e) => return Now::Rejected(e.into_response()),
                Found::Later(later) => return Now::Later(later),
            },
        };
        match self.admit(req, principal) {
            Ok(()) => Now::Allowed,
            Err(e) => Now::Rejected(e.into_response()),
        }
    }

    /// The permission check, then the principal into the extensions.
    fn admit(&self, req: &mut Request, principal: Principal) -> Result<(), HttpError> {
        if !principal.has(&self.permission) {
            return Err(HttpError::insufficient_scope(
                config(req.extensions()),
                self.permission.as_str(),
            ));
        }
        req.extensions_mut().insert(principal);
        Ok(())
    }
}

pin_project_lite::pin_project! {
    /// The future of [`RequirePermission`]: the inner service's future when
    /// the caches decided (most requests: nothing boxed), a ready
    /// rejection, or a boxed verification that needs the store, argon2 or
    /// a child account.
    #[must_use = "futures do nothing unless polled"]
    pub struct RequireFuture<F> {
        #[pin]
        state: State<F>,
    }
}

pin_project_lite::pin_project! {
    #[project = StateProj]
    enum State<F> {
        Inner { #[pin] future: F },
        Ready { response: Option<AxumResponse> },
        Boxed { future: Pin<Box<dyn Future<Output = Result<AxumResponse, Infallible>> + Send>> },
    }
}

impl<F> std::fmt::Debug for RequireFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.state {
            State::Inner { .. } => "RequireFuture::Inner",
            State::Ready { .. } => "RequireFuture::Ready",
            State::Boxed { .. } => "RequireFuture::Boxed",
        })
    }
}

impl<F> Future for RequireFuture<F>
where
    F: Future<Output = Result<AxumResponse, Infallible>>,
{
    type Output = Result<AxumResponse, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Inner { future } => future.poll(cx),
            StateProj::Ready { response } => Poll::Ready(Ok(response
                .take()
                .expect("RequireFuture polled after completion"))),
            StateProj::Boxed { future } => future.as_mut().poll(cx),
        }
    }
}

/// The rest of [`RequirePermission`] once a request needs an await.
async fn guarded_later<Svc>(
    guard: Arc<Guard>,
    mut inner: Svc,
    mut req: Request,
    later: Later,
) -> Result<AxumResponse, Infallible>
where
    Svc: tower_service::Service<Request, Response = AxumResponse, Error = Infallible>,
{
    let verified = find_later(&guard.kw, req.headers(), req.extensions(), later).await;
    let principal = match verified {
        Ok(p) => p,
        Err(e) => return Ok(e.into_response()),
    };
    match guard.admit(&mut req, principal) {
        Ok(()) => {
            drop(guard);
            inner.call(req).await
        }
        Err(e) => Ok(e.into_response()),
    }
}

/// The management API (`/apikeys…`, `/auth/…`, `/openapi.json`) as a
/// router to `merge` or `nest` into an application.
pub fn router<S>(kw: Keyward, config: HttpConfig) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let shared = Arc::new((kw, config));
    let mut r = Router::new();
    for path in api::paths() {
        let shared = Arc::clone(&shared);
        r = r.route(
            path,
            any(move |req: Request| {
                let shared = Arc::clone(&shared);
                async move { serve(&shared.0, &shared.1, path, req).await }
            }),
        );
    }
    r
}

fn declared_too_large(h: &HeaderMap) -> bool {
    h.get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|n| n > MAX_BODY_BYTES as u64)
}

async fn serve(kw: &Keyward, cfg: &HttpConfig, path: &'static str, req: Request) -> AxumResponse {
    let (mut parts, body) = req.into_parts();
    let id = RawPathParams::from_request_parts(&mut parts, &())
        .await
        .ok()
        .and_then(|p| {
            p.iter()
                .find(|(k, _)| *k == "id")
                .map(|(_, v)| v.to_owned())
        });
    let bytes = if declared_too_large(&parts.headers) {
        None
    } else {
        axum::body::to_bytes(body, MAX_BODY_BYTES).await.ok()
    };
    let request = api::Request {
        path,
        method: parts.method.as_str(),
        id: id.as_deref(),
        query: parts.uri.query().unwrap_or(""),
        headers: gather(&parts.headers),
        client_ip: client_ip(cfg, &parts.headers, &parts.extensions),
        body: bytes.as_deref().map_or(Body::TooLarge, Body::Read),
        user: parts.extensions.get::<crate::http::HostUser>(),
        origin: parts.headers.get(header::ORIGIN).map(HeaderValue::as_bytes),
        host: parts
            .headers
            .get(header::HOST)
            .map(HeaderValue::as_bytes)
            .or_else(|| parts.uri.authority().map(|a| a.as_str().as_bytes())),
        preflight: parts
            .headers
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD),
        last_event_id: parts
            .headers
            .get("last-event-id")
            .map(HeaderValue::as_bytes),
    };
    to_axum(api::dispatch(kw, cfg, request).await)
}
