//! axum adapter: the [`Principal`] and [`Authorized`] extractors, the
//! [`require`] layer and the management [`router`].
//!
//! ```no_run
//! use axum::{Router, routing::get};
//! use keyward::{Keyward, MemoryStore, Principal};
//! use keyward::http::{HttpConfig, KeywardHttp, axum::{require, router}};
//!
//! async fn apps(p: Principal) -> String {
//!     format!("applications of {}", p.account_id())
//! }
//!
//! # fn app() -> Result<(), Box<dyn std::error::Error>> {
//! let kw = Keyward::builder().store(MemoryStore::new()).build()?;
//! let http = KeywardHttp::with_config(kw, HttpConfig::default());
//! let app: Router = Router::new()
//!     .route("/applications", get(apps).route_layer(require(&http, "readApplications")))
//!     .merge(router())
//!     .with_state(http);
//! # Ok(()) }
//! ```
//!
//! Everything finds the one [`KeywardHttp`] state through
//! `KeywardHttp: FromRef<S>` of the router state `S` (the state itself, or
//! a field of the application's state with a `FromRef` impl): the
//! [`HttpConfig`] comes from there and nowhere else. The extractors cache
//! the verified principal in the request extensions. `Option<Principal>`
//! extracts `None` when no credentials were presented and rejects bad ones.
//! With `KeywardHttp` as the state, `State<Keyward>` extracts too.

use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
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

use crate::context::Label;
use crate::http::api::{self, Response};
use crate::http::auth::{self, Found, Later};
use crate::http::body::Body;
use crate::http::headers::{self, Hv, RequestHeaders};
use crate::http::{
    HttpConfig, HttpError, KeywardHttp, MAX_BODY_BYTES, RequiredPermission, RouteUsage,
};
use crate::permission::Permission;
use crate::principal::Principal;
use crate::service::Keyward;

#[cfg(feature = "console")]
#[cfg_attr(docsrs, doc(cfg(feature = "console")))]
pub use crate::http::console_axum::console;

/// `State<Keyward>` in handlers of a router whose state is [`KeywardHttp`].
impl FromRef<KeywardHttp> for Keyward {
    fn from_ref(http: &KeywardHttp) -> Keyward {
        http.keyward().clone()
    }
}

// Pre-parsed name: a lookup by `&str` parses the name on every call.
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

#[inline]
fn gather(h: &HeaderMap) -> RequestHeaders<'_> {
    RequestHeaders::gather(h.iter().map(|(n, v)| (n.as_str(), v.as_bytes())))
}

#[inline]
fn client(cfg: &HttpConfig, headers: &HeaderMap, ext: &Extensions) -> headers::Client {
    let peer = ext.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    headers::client(cfg, peer, || {
        headers
            .get_all(&X_FORWARDED_FOR)
            .iter()
            .map(HeaderValue::as_bytes)
    })
}

fn client_ip(cfg: &HttpConfig, headers: &HeaderMap, ext: &Extensions) -> Option<IpAddr> {
    client(cfg, headers, ext).ip
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

/// [`auth::find_now`] for an axum request.
#[inline]
fn find_now(
    http: &KeywardHttp,
    usage: &RouteUsage,
    headers: &HeaderMap,
    ext: &Extensions,
) -> Found {
    auth::find_now(http, &gather(headers), usage, |cfg| {
        client(cfg, headers, ext)
    })
}

/// [`auth::find_later`] for an axum request; `None` when it presented no
/// credentials.
async fn find_later(
    http: &KeywardHttp,
    usage: &RouteUsage,
    headers: &HeaderMap,
    ext: &Extensions,
    later: Later,
) -> Result<Option<Principal>, HttpError> {
    auth::find_later(
        http,
        later,
        usage,
        || gather(headers),
        |cfg| client(cfg, headers, ext),
    )
    .await
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

/// The principal of a request for an extractor: the one cached in the
/// extensions, or verified now (and then cached when `cache`); `None`
/// without credentials. `finish` turns it into the extractor's output.
fn extract<'a, S, T>(
    parts: &'a mut Parts,
    state: &S,
    cache: bool,
    finish: fn(&HttpConfig, Option<Principal>) -> Result<T, HttpError>,
) -> Extracting<'a, Result<T, HttpError>>
where
    KeywardHttp: FromRef<S>,
    T: Send + 'a,
{
    let http = KeywardHttp::from_ref(state);
    if let Some(p) = parts.extensions.get::<Principal>() {
        return Extracting::Ready(Some(finish(http.config(), Some(p.clone()))));
    }
    let p = match find_now(&http, &RouteUsage::API, &parts.headers, &parts.extensions) {
        Found::Principal(p) => p,
        Found::Absent => return Extracting::Ready(Some(finish(http.config(), None))),
        Found::Rejected(e) => return Extracting::Ready(Some(Err(e))),
        Found::Later(later) => {
            return Extracting::Later(Box::pin(async move {
                let found = find_later(
                    &http,
                    &RouteUsage::API,
                    &parts.headers,
                    &parts.extensions,
                    later,
                )
                .await?;
                let Some(p) = found else {
                    return finish(http.config(), None);
                };
                if cache {
                    parts.extensions.insert(p.clone());
                }
                finish(http.config(), Some(p))
            }));
        }
    };
    if !cache {
        return Extracting::Ready(Some(finish(http.config(), Some(p))));
    }
    let out = finish(http.config(), Some(p.clone()));
    parts.extensions.insert(p);
    Extracting::Ready(Some(out))
}

impl<S> OptionalFromRequestParts<S> for Principal
where
    KeywardHttp: FromRef<S>,
    S: Send + Sync,
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
    KeywardHttp: FromRef<S>,
    S: Send + Sync,
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
    KeywardHttp: FromRef<S>,
    S: Send + Sync,
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
/// `get(handler).route_layer(require(&http, "readApplications"))`, with
/// the router's [`KeywardHttp`] state.
///
/// # Panics
/// When `permission` is not a valid permission name (at router
/// construction, like an invalid route path).
pub fn require(http: &KeywardHttp, permission: &str) -> RequirePermissionLayer {
    let permission =
        Permission::new(permission).unwrap_or_else(|e| panic!("keyward::http::axum::require: {e}"));
    RequirePermissionLayer {
        guard: Arc::new(Guard {
            http: http.clone(),
            permission: Some(permission),
            usage: RouteUsage::API,
        }),
    }
}

/// A layer that counts the route's verified requests under the call
/// `origin` and usage `category` (see [`RouteUsage`]): it verifies the
/// request's credentials, if any, and caches the principal for the
/// handler's `Principal` (or `Authorized<P>`) extractor, which then checks
/// no more. A request without credentials passes on to the handler
/// (whose extractor answers 401, or `None` for `Option<Principal>`); bad
/// ones get their 400/401/429/503 here. With a permission to check, use
/// `require(&http, "…").usage(origin, category)` instead.
///
/// ```no_run
/// use axum::{Router, routing::post};
/// use keyward::{Keyward, Label, MemoryStore, Principal};
/// use keyward::http::{KeywardHttp, axum::usage};
///
/// async fn mcp(p: Principal) -> String { p.account_id().to_string() }
///
/// # fn app() -> Result<(), Box<dyn std::error::Error>> {
/// let http = KeywardHttp::new(Keyward::builder().store(MemoryStore::new()).build()?);
/// let app: Router = Router::new()
///     .route("/mcp", post(mcp).route_layer(usage(&http, Label::MCP, "realtime")))
///     .with_state(http);
/// # Ok(()) }
/// ```
///
/// # Panics
/// When `category` is not a valid [`Label`].
pub fn usage(http: &KeywardHttp, origin: Label, category: &str) -> RequirePermissionLayer {
    RequirePermissionLayer {
        guard: Arc::new(Guard {
            http: http.clone(),
            permission: None,
            usage: RouteUsage::new(origin, category),
        }),
    }
}

/// What [`RequirePermission`] checks with: one `Arc` to clone per request.
#[derive(Debug, Clone)]
struct Guard {
    http: KeywardHttp,
    /// `None`: only counts usage ([`usage`]).
    permission: Option<Permission>,
    usage: RouteUsage,
}

/// The layer made by [`require`] and [`usage`].
#[derive(Debug, Clone)]
pub struct RequirePermissionLayer {
    guard: Arc<Guard>,
}

impl RequirePermissionLayer {
    /// Counts the route's verified requests under the call `origin` and
    /// usage `category` (default `api`, `default`; see [`RouteUsage`]):
    /// `require(&http, "readApplications").usage(Label::API, "analytics")`.
    ///
    /// # Panics
    /// When `category` is not a valid [`Label`].
    pub fn usage(self, origin: Label, category: &str) -> Self {
        self.with_usage(|u| u.labels(origin, category))
    }

    /// Applies the owner's rate limit named `name` on this route too (one
    /// set with `auto_apply: false`): `require(&http, "runReports")
    /// .limit("expensive").cost(5)`. A request it refuses gets 429 with
    /// `Retry-After` and the `RateLimit-Policy` / `RateLimit` headers.
    ///
    /// ```no_run
    /// use axum::{Router, routing::post};
    /// use keyward::{Keyward, MemoryStore, Principal};
    /// use keyward::http::{KeywardHttp, axum::require};
    ///
    /// async fn report(p: Principal) -> String { p.account_id().to_string() }
    ///
    /// # fn app() -> Result<(), Box<dyn std::error::Error>> {
    /// let http = KeywardHttp::new(Keyward::builder().store(MemoryStore::new()).build()?);
    /// let app: Router = Router::new()
    ///     .route(
    ///         "/reports",
    ///         post(report).route_layer(require(&http, "readApplications").limit("expensive").cost(5)),
    ///     )
    ///     .with_state(http);
    /// # Ok(()) }
    /// ```
    ///
    /// # Panics
    /// When `name` is not a valid [`Label`].
    pub fn limit(self, name: &str) -> Self {
        self.with_usage(|u| u.limit(name))
    }

    /// A call of this route costs `credits` (default 1; 0 spends none).
    pub fn cost(self, credits: u32) -> Self {
        self.with_usage(|u| u.cost(credits))
    }

    fn with_usage(self, f: impl FnOnce(RouteUsage) -> RouteUsage) -> Self {
        let mut guard = Guard::clone(&self.guard);
        guard.usage = f(guard.usage);
        Self {
            guard: Arc::new(guard),
        }
    }
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
                limit: self.guard.success_limit(&req),
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
    /// The principal holds the permission and is in the request
    /// extensions (or, counting usage only, none was presented).
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
            None => match find_now(&self.http, &self.usage, req.headers(), req.extensions()) {
                Found::Principal(p) => p,
                Found::Absent => {
                    return match self.absent() {
                        Ok(()) => Now::Allowed,
                        Err(e) => Now::Rejected(e.into_response()),
                    };
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
        if let Some(permission) = &self.permission
            && !principal.has(permission)
        {
            return Err(HttpError::insufficient_scope(
                self.http.config(),
                permission.as_str(),
            ));
        }
        req.extensions_mut().insert(principal);
        Ok(())
    }

    /// A request without credentials: 401 where a permission is required;
    /// on to the handler where only usage is counted.
    fn absent(&self) -> Result<(), HttpError> {
        match self.permission {
            Some(_) => Err(HttpError::missing_credentials(self.http.config())),
            None => Ok(()),
        }
    }

    /// The limit status whose headers the request's successful response
    /// carries (see `HttpConfig::rate_limit_headers`).
    #[inline]
    fn success_limit(&self, req: &Request) -> Option<crate::ratelimit::LimitStatus> {
        crate::http::ratelimit::on_success(self.http.config(), req.extensions().get::<Principal>())
    }
}

/// Adds the `RateLimit-Policy` / `RateLimit` headers of `limit` to a
/// successful response.
fn with_limit_headers(
    mut res: AxumResponse,
    limit: Option<crate::ratelimit::LimitStatus>,
) -> AxumResponse {
    if let Some(s) = limit
        && res.status().is_success()
    {
        for (name, value) in crate::http::ratelimit::headers_of(&s) {
            if let Ok(v) = HeaderValue::try_from(value) {
                res.headers_mut().insert(HeaderName::from_static(name), v);
            }
        }
    }
    res
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
        Inner { #[pin] future: F, limit: Option<crate::ratelimit::LimitStatus> },
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
            StateProj::Inner { future, limit } => match future.poll(cx) {
                Poll::Ready(Ok(res)) => Poll::Ready(Ok(with_limit_headers(res, limit.take()))),
                other => other,
            },
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
    let verified = find_later(
        &guard.http,
        &guard.usage,
        req.headers(),
        req.extensions(),
        later,
    )
    .await;
    let admitted = match verified {
        Ok(Some(p)) => guard.admit(&mut req, p),
        Ok(None) => guard.absent(),
        Err(e) => Err(e),
    };
    match admitted {
        Ok(()) => {
            let limit = guard.success_limit(&req);
            drop(guard);
            let res = inner.call(req).await;
            res.map(|r| with_limit_headers(r, limit))
        }
        Err(e) => Ok(e.into_response()),
    }
}

/// The management API (`/apikeys…`, `/auth/…`, `/openapi.json`) as a
/// router to `merge` or `nest` into an application whose state gives the
/// [`KeywardHttp`] (`KeywardHttp: FromRef<S>`).
///
/// ```
/// use axum::Router;
/// use keyward::{Keyward, MemoryStore};
/// use keyward::http::{KeywardHttp, axum::router};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let kw = Keyward::builder().store(MemoryStore::new()).build()?;
/// let app: Router = Router::new()
///     .nest("/settings/api", router())
///     .with_state(KeywardHttp::new(kw));
/// # Ok(()) }
/// ```
pub fn router<S>() -> Router<S>
where
    KeywardHttp: FromRef<S>,
    S: Clone + Send + Sync + 'static,
{
    let mut r = Router::new();
    for path in api::paths() {
        r = r.route(
            path,
            any(
                move |axum::extract::State(http): axum::extract::State<KeywardHttp>,
                      req: Request| async move { serve(&http, path, req).await },
            ),
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

async fn serve(http: &KeywardHttp, path: &'static str, req: Request) -> AxumResponse {
    let (kw, cfg) = (http.keyward(), http.config());
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
        content_type: Hv::of(
            parts
                .headers
                .get_all(header::CONTENT_TYPE)
                .iter()
                .map(HeaderValue::as_bytes),
        ),
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
