//! actix-web adapter: the [`Principal`] extractor, the [`RequirePermission`]
//! middleware and the management [`scope`].
//!
//! ```no_run
//! use actix_web::{App, web};
//! use keyward::{Keyward, MemoryStore, Principal};
//! use keyward::http::{HttpConfig, KeywardHttp, actix::{RequirePermission, scope}};
//!
//! async fn apps(p: Principal) -> String {
//!     format!("applications of {}", p.account_id())
//! }
//!
//! # fn app() -> Result<(), Box<dyn std::error::Error>> {
//! let kw = Keyward::builder().store(MemoryStore::new()).build()?;
//! let app = App::new()
//!     .app_data(web::Data::new(KeywardHttp::with_config(kw, HttpConfig::default())))
//!     .service(web::resource("/applications").wrap(RequirePermission::new("readApplications")).route(web::get().to(apps)))
//!     .service(scope(""));
//! # Ok(()) }
//! ```
//!
//! Everything reads the one state, `web::Data<KeywardHttp>`, from the app
//! data (a 500 naming the fix when it is missing): the [`HttpConfig`] comes
//! from there and nowhere else. The verified principal is cached in the
//! request extensions.
//! For an optional principal use [`OptionalPrincipal`]: `None` when no
//! credentials were presented, the same rejection as [`Principal`] when
//! bad or malformed ones were (as axum's `Option<Principal>`). actix-web's
//! own `Option<Principal>` is a blanket implementation that turns every
//! rejection into `None`, bad credentials included.

use std::future::{Future, Ready, ready};
use std::net::IpAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use actix_web::body::EitherBody;
use actix_web::dev::{Payload, Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderMap};
use actix_web::{FromRequest, HttpMessage, HttpRequest, HttpResponse, ResponseError, web};

use crate::context::Label;
use crate::http::api::{self, Response};
use crate::http::auth::{self, Later};
use crate::http::body::Body;
use crate::http::headers::{self, Hv, RequestHeaders};
use crate::http::{HttpConfig, HttpError, KeywardHttp, MAX_BODY_BYTES, RouteUsage};
use crate::permission::Permission;
use crate::principal::Principal;

#[cfg(feature = "console")]
#[cfg_attr(docsrs, doc(cfg(feature = "console")))]
pub use crate::http::console_actix::console;

const MISSING_STATE: &str = "keyward: no web::Data<KeywardHttp> in the app data; add \
     .app_data(web::Data::new(keyward::http::KeywardHttp::new(keyward)))";

/// The one state, `web::Data<KeywardHttp>`; a 500 naming the fix without.
fn state(req: &HttpRequest) -> Result<&KeywardHttp, HttpError> {
    req.app_data::<web::Data<KeywardHttp>>()
        .map(|d| d.get_ref())
        .ok_or_else(|| HttpError::misconfigured(MISSING_STATE))
}

fn gather(h: &HeaderMap) -> RequestHeaders<'_> {
    RequestHeaders::gather(h.iter().map(|(n, v)| (n.as_str(), v.as_bytes())))
}

fn client(cfg: &HttpConfig, req: &HttpRequest) -> headers::Client {
    headers::client(cfg, req.peer_addr().map(|a| a.ip()), || {
        req.headers()
            .get_all(header::X_FORWARDED_FOR)
            .map(|v| v.as_bytes())
    })
}

fn client_ip(cfg: &HttpConfig, req: &HttpRequest) -> Option<IpAddr> {
    client(cfg, req).ip
}

fn to_actix(r: Response) -> HttpResponse {
    let mut b = HttpResponse::build(
        StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
    );
    for (name, value) in r.headers {
        b.append_header((name, value));
    }
    match r.stream {
        Some(stream) => b.streaming(stream),
        None => b.body(r.body),
    }
}

impl ResponseError for HttpError {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        to_actix(self.clone().render())
    }
}

/// The principal as far as it is known without an await.
enum Found {
    /// Known (`None`: no credentials were presented), and cached in the
    /// request extensions.
    Now(Result<Option<Principal>, HttpError>),
    /// The store, argon2 or a child account must be read.
    Later(Later),
}

/// The principal cached in the extensions, or decided from keyward's
/// caches (and then cached): most requests, without an await.
fn principal_now(req: &HttpRequest, usage: &RouteUsage) -> Found {
    let cached = req.extensions().get::<Principal>().cloned();
    if cached.is_some() {
        return Found::Now(Ok(cached));
    }
    let http = match state(req) {
        Ok(http) => http,
        Err(e) => return Found::Now(Err(e)),
    };
    match auth::find_now(http, &gather(req.headers()), usage, |cfg| client(cfg, req)) {
        auth::Found::Principal(p) => Found::Now(Ok(Some(cache(req, p)))),
        auth::Found::Absent => Found::Now(Ok(None)),
        auth::Found::Rejected(e) => Found::Now(Err(e)),
        auth::Found::Later(later) => Found::Later(later),
    }
}

/// What [`principal_now`] could not decide, awaited (and then cached).
async fn principal_later(
    req: &HttpRequest,
    usage: &RouteUsage,
    later: Later,
) -> Result<Option<Principal>, HttpError> {
    let http = state(req)?;
    let found = auth::find_later(
        http,
        later,
        usage,
        || gather(req.headers()),
        |cfg| client(cfg, req),
    )
    .await?;
    Ok(found.map(|p| cache(req, p)))
}

/// `p`, also cached in the request extensions for later extractors.
fn cache(req: &HttpRequest, p: Principal) -> Principal {
    req.extensions_mut().insert(p.clone());
    p
}

/// The future of keyward's extractors ([`Principal`], [`OptionalPrincipal`]):
/// ready at once when the principal is already cached in the request
/// extensions (behind [`RequirePermission`]) or keyward's caches decide it
/// (most requests), boxed only when the store, argon2 or a child account
/// must be read.
pub struct PrincipalFuture<T>(FutureState<T>);

enum FutureState<T> {
    Ready(Option<Result<T, HttpError>>),
    Verifying(Pin<Box<dyn Future<Output = Result<T, HttpError>>>>),
}

impl<T> std::fmt::Debug for PrincipalFuture<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.0 {
            FutureState::Ready(_) => "PrincipalFuture::Ready",
            FutureState::Verifying(_) => "PrincipalFuture::Verifying",
        })
    }
}

// Never pins a `T`: the result is only moved out.
impl<T> Unpin for PrincipalFuture<T> {}

impl<T> Future for PrincipalFuture<T> {
    type Output = Result<T, HttpError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.get_mut().0 {
            FutureState::Ready(r) => {
                Poll::Ready(r.take().expect("PrincipalFuture polled after completion"))
            }
            FutureState::Verifying(f) => f.as_mut().poll(cx),
        }
    }
}

/// A ready future when the principal is known without an await, or a
/// boxed verification.
fn extract<T, F>(req: &HttpRequest, done: F) -> PrincipalFuture<T>
where
    T: 'static,
    F: FnOnce(Option<Principal>, &HttpRequest) -> Result<T, HttpError> + 'static,
{
    match principal_now(req, &RouteUsage::API) {
        Found::Now(r) => PrincipalFuture(FutureState::Ready(Some(r.and_then(|p| done(p, req))))),
        Found::Later(later) => {
            let req = req.clone();
            PrincipalFuture(FutureState::Verifying(Box::pin(async move {
                let found = principal_later(&req, &RouteUsage::API, later).await?;
                done(found, &req)
            })))
        }
    }
}

impl FromRequest for Principal {
    type Error = HttpError;
    type Future = PrincipalFuture<Self>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        extract(req, |found, req| match found {
            Some(p) => Ok(p),
            None => Err(HttpError::missing_credentials(state(req)?.config())),
        })
    }
}

/// An optional principal: `None` when the request presented no
/// credentials, the same rejection as [`Principal`] (401/400/429/503) when
/// it presented bad or malformed ones. Use it instead of
/// `Option<Principal>`, which actix-web resolves to `None` on any rejection.
#[derive(Debug, Clone)]
pub struct OptionalPrincipal(pub Option<Principal>);

impl FromRequest for OptionalPrincipal {
    type Error = HttpError;
    type Future = PrincipalFuture<Self>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        extract(req, |found, _| Ok(OptionalPrincipal(found)))
    }
}

pub use crate::http::auth::Authorized;

/// A principal holding the permission `P` (see [`Authorized`]), checked by
/// the extractor: `async fn apps(p: Authorized<ReadApplications>)`.
impl<P: crate::http::RequiredPermission> FromRequest for Authorized<P> {
    type Error = HttpError;
    type Future = PrincipalFuture<Self>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        extract(req, |found, req| {
            Authorized::checked(state(req)?.config(), found)
        })
    }
}

/// Middleware letting a request through only when its principal holds the
/// permission (401/403 otherwise), caching the principal for the
/// handler's extractor. One line per resource:
/// `web::resource("/applications").wrap(RequirePermission::new("readApplications"))`.
#[derive(Debug, Clone)]
pub struct RequirePermission {
    guard: Rc<Guard>,
}

/// What the middleware checks with, shared by its requests.
#[derive(Debug, Clone)]
struct Guard {
    /// `None`: only counts usage ([`usage`]).
    permission: Option<Permission>,
    usage: RouteUsage,
}

impl RequirePermission {
    /// Requires `permission`.
    ///
    /// # Panics
    /// When `permission` is not a valid permission name (at app
    /// construction).
    pub fn new(permission: &str) -> Self {
        let permission = Permission::new(permission)
            .unwrap_or_else(|e| panic!("keyward::http::actix::RequirePermission: {e}"));
        Self {
            guard: Rc::new(Guard {
                permission: Some(permission),
                usage: RouteUsage::API,
            }),
        }
    }

    /// Counts the resource's verified requests under the call `origin`
    /// and usage `category` (default `api`, `default`; see
    /// [`RouteUsage`]).
    ///
    /// # Panics
    /// When `category` is not a valid [`Label`].
    pub fn usage(self, origin: Label, category: &str) -> Self {
        self.with_usage(|u| u.labels(origin, category))
    }

    /// Applies the owner's rate limit named `name` on this resource too
    /// (one set with `auto_apply: false`):
    /// `RequirePermission::new("runReports").limit("expensive").cost(5)`.
    /// A request it refuses gets 429 with `Retry-After` and the
    /// `RateLimit-Policy` / `RateLimit` headers.
    ///
    /// ```no_run
    /// use actix_web::{App, web};
    /// use keyward::Principal;
    /// use keyward::http::actix::RequirePermission;
    ///
    /// async fn report(p: Principal) -> String { p.account_id().to_string() }
    ///
    /// let app = App::new().service(
    ///     web::resource("/reports")
    ///         .wrap(RequirePermission::new("readApplications").limit("expensive").cost(5))
    ///         .route(web::post().to(report)),
    /// );
    /// ```
    ///
    /// # Panics
    /// When `name` is not a valid [`Label`].
    pub fn limit(self, name: &str) -> Self {
        self.with_usage(|u| u.limit(name))
    }

    /// A call of this resource costs `credits` (default 1; 0 spends none).
    pub fn cost(self, credits: u32) -> Self {
        self.with_usage(|u| u.cost(credits))
    }

    fn with_usage(self, f: impl FnOnce(RouteUsage) -> RouteUsage) -> Self {
        let mut guard = Guard::clone(&self.guard);
        guard.usage = f(guard.usage);
        Self {
            guard: Rc::new(guard),
        }
    }
}

/// Middleware counting a resource's or scope's verified requests under the
/// call origin and usage category (see [`RouteUsage`]): it verifies the
/// request's credentials, if any, and caches the principal for the
/// handler's `Principal` (or `Authorized<P>`) extractor. A request without
/// credentials passes on to the handler; bad ones get their
/// 400/401/429/503 here. With a permission to check, use
/// `RequirePermission::new("…").usage(origin, category)`.
///
/// ```no_run
/// use actix_web::{App, web};
/// use keyward::{Label, Principal};
/// use keyward::http::actix::usage;
///
/// async fn mcp(p: Principal) -> String { p.account_id().to_string() }
///
/// let app = App::new().service(
///     web::resource("/mcp").wrap(usage(Label::MCP, "realtime")).route(web::post().to(mcp)),
/// );
/// ```
///
/// # Panics
/// When `category` is not a valid [`Label`].
pub fn usage(origin: Label, category: &str) -> RequirePermission {
    RequirePermission {
        guard: Rc::new(Guard {
            permission: None,
            usage: RouteUsage::new(origin, category),
        }),
    }
}

impl<S, B> Transform<S, ServiceRequest> for RequirePermission
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Transform = RequirePermissionMiddleware<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, ()>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(RequirePermissionMiddleware {
            service: Rc::new(service),
            guard: Rc::clone(&self.guard),
        }))
    }
}

/// The service made by [`RequirePermission`] and [`usage`].
#[derive(Debug)]
pub struct RequirePermissionMiddleware<S> {
    service: Rc<S>,
    // Shared with each request's future: cloning a `Permission` allocates.
    guard: Rc<Guard>,
}

impl Guard {
    /// Whether a request with this outcome goes on to the inner service:
    /// a principal holding the permission, or — counting usage only — any
    /// principal or none.
    fn admits(&self, found: &Result<Option<Principal>, HttpError>) -> bool {
        match (found, &self.permission) {
            (Ok(Some(p)), Some(permission)) => p.has(permission),
            (Ok(_), None) => true,
            _ => false,
        }
    }
}

type LocalFuture<T> = Pin<Box<dyn Future<Output = T>>>;

impl<S, B> Service<ServiceRequest> for RequirePermissionMiddleware<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Future = RequireFuture<S::Future, B>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let state = match principal_now(req.request(), &self.guard.usage) {
            // Most requests: the inner service's own future, no box.
            Found::Now(found) if self.guard.admits(&found) => State::Inner {
                limit: success_limit(&req, &found),
                future: self.service.call(req),
            },
            Found::Now(found) => State::Ready {
                response: Some(self.reject(req, found)),
            },
            Found::Later(later) => {
                let this = RequirePermissionMiddleware {
                    service: Rc::clone(&self.service),
                    guard: Rc::clone(&self.guard),
                };
                State::Boxed {
                    future: Box::pin(async move {
                        let found = principal_later(req.request(), &this.guard.usage, later).await;
                        if this.guard.admits(&found) {
                            let limit = success_limit(&req, &found);
                            this.service
                                .call(req)
                                .await
                                .map(|r| with_limit_headers(r, limit))
                                .map(ServiceResponse::map_into_left_body)
                        } else {
                            Ok(this.reject(req, found))
                        }
                    }),
                }
            }
        };
        RequireFuture { state }
    }
}

/// The limit status whose headers the request's successful response
/// carries (see `HttpConfig::rate_limit_headers`).
#[inline]
fn success_limit(
    req: &ServiceRequest,
    found: &Result<Option<Principal>, HttpError>,
) -> Option<crate::ratelimit::LimitStatus> {
    let principal = found.as_ref().ok()?.as_ref()?;
    principal.rate_limit()?;
    let http = state(req.request()).ok()?;
    crate::http::ratelimit::on_success(http.config(), Some(principal))
}

/// Adds the `RateLimit-Policy` / `RateLimit` headers of `limit` to a
/// successful response.
fn with_limit_headers<B>(
    mut res: ServiceResponse<B>,
    limit: Option<crate::ratelimit::LimitStatus>,
) -> ServiceResponse<B> {
    if let Some(s) = limit
        && res.status().is_success()
    {
        for (name, value) in crate::http::ratelimit::headers_of(&s) {
            if let Ok(v) = actix_web::http::header::HeaderValue::try_from(value) {
                res.headers_mut()
                    .insert(actix_web::http::header::HeaderName::from_static(name), v);
            }
        }
    }
    res
}

impl<S> RequirePermissionMiddleware<S> {
    /// The response to a request whose principal is missing, lacks the
    /// permission or could not be verified.
    fn reject<B>(
        &self,
        req: ServiceRequest,
        found: Result<Option<Principal>, HttpError>,
    ) -> ServiceResponse<EitherBody<B>> {
        let cfg = match state(req.request()) {
            Ok(http) => http.config(),
            Err(e) => {
                return req
                    .into_response(to_actix(e.render()))
                    .map_into_right_body();
            }
        };
        let e = match (found, &self.guard.permission) {
            (Ok(Some(_)), Some(permission)) => {
                HttpError::insufficient_scope(cfg, permission.as_str())
            }
            (Ok(_), _) => HttpError::missing_credentials(cfg),
            (Err(e), _) => e,
        };
        req.into_response(to_actix(e.render()))
            .map_into_right_body()
    }
}

pin_project_lite::pin_project! {
    /// The future of [`RequirePermissionMiddleware`]: the inner service's
    /// future when keyward's caches decided (most requests: nothing boxed),
    /// a ready rejection, or a boxed verification that needs the store,
    /// argon2 or a child account.
    #[must_use = "futures do nothing unless polled"]
    pub struct RequireFuture<F, B> {
        #[pin]
        state: State<F, B>,
    }
}

pin_project_lite::pin_project! {
    #[project = StateProj]
    enum State<F, B> {
        Inner { #[pin] future: F, limit: Option<crate::ratelimit::LimitStatus> },
        Ready { response: Option<ServiceResponse<EitherBody<B>>> },
        Boxed { future: LocalFuture<Result<ServiceResponse<EitherBody<B>>, actix_web::Error>> },
    }
}

impl<F, B> std::fmt::Debug for RequireFuture<F, B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.state {
            State::Inner { .. } => "RequireFuture::Inner",
            State::Ready { .. } => "RequireFuture::Ready",
            State::Boxed { .. } => "RequireFuture::Boxed",
        })
    }
}

impl<F, B> Future for RequireFuture<F, B>
where
    F: Future<Output = Result<ServiceResponse<B>, actix_web::Error>>,
{
    type Output = Result<ServiceResponse<EitherBody<B>>, actix_web::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Inner { future, limit } => future
                .poll(cx)
                .map_ok(|r| with_limit_headers(r, limit.take()).map_into_left_body()),
            StateProj::Ready { response } => Poll::Ready(Ok(response
                .take()
                .expect("RequireFuture polled after completion"))),
            StateProj::Boxed { future } => future.as_mut().poll(cx),
        }
    }
}

/// The management API (`/apikeys…`, `/auth/…`, `/openapi.json`) as a scope
/// mounted at `path` (`""` for the root).
pub fn scope(path: &str) -> actix_web::Scope {
    let mut s = web::scope(path);
    for p in api::paths() {
        s = s.service(web::resource(p).route(
            web::route().to(move |req: HttpRequest, body: web::Payload| serve(p, req, body)),
        ));
    }
    s
}

fn declared_too_large(req: &HttpRequest) -> bool {
    req.headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|n| n > MAX_BODY_BYTES as u64)
}

async fn serve(path: &'static str, req: HttpRequest, payload: web::Payload) -> HttpResponse {
    let http = match state(&req) {
        Ok(http) => http.clone(),
        Err(e) => return to_actix(e.render()),
    };
    let (kw, cfg) = (http.keyward(), http.config());
    let bytes = if declared_too_large(&req) {
        None
    } else {
        match payload.to_bytes_limited(MAX_BODY_BYTES).await {
            Ok(Ok(b)) => Some(b),
            _ => None,
        }
    };
    // Cloned out of the extensions: their `RefCell` must not stay borrowed
    // across the awaits below.
    let user = req.extensions().get::<crate::http::HostUser>().cloned();
    let request = api::Request {
        path,
        method: req.method().as_str(),
        id: req.match_info().get("id"),
        query: req.query_string(),
        headers: gather(req.headers()),
        content_type: Hv::of(req.headers().get_all("content-type").map(|v| v.as_bytes())),
        client_ip: client_ip(cfg, &req),
        body: bytes.as_deref().map_or(Body::TooLarge, Body::Read),
        user: user.as_ref(),
        origin: req.headers().get("origin").map(|v| v.as_bytes()),
        host: req
            .headers()
            .get("host")
            .map(|v| v.as_bytes())
            .or_else(|| req.uri().authority().map(|a| a.as_str().as_bytes())),
        preflight: req.headers().contains_key("access-control-request-method"),
        last_event_id: req.headers().get("last-event-id").map(|v| v.as_bytes()),
    };
    to_actix(api::dispatch(kw, cfg, request).await)
}
