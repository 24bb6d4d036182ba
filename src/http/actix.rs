//! actix-web adapter: the [`Principal`] extractor, the [`RequirePermission`]
//! middleware and the management [`scope`].
//!
//! ```no_run
//! use actix_web::{App, web};
//! use keyward::{Keyward, MemoryStore, Principal};
//! use keyward::http::{HttpConfig, actix::{RequirePermission, scope}};
//!
//! async fn apps(p: Principal) -> String {
//!     format!("applications of {}", p.account_id())
//! }
//!
//! # fn app() -> Result<(), Box<dyn std::error::Error>> {
//! let kw = Keyward::builder().store(MemoryStore::new()).build()?;
//! let app = App::new()
//!     .app_data(web::Data::new(kw))
//!     .app_data(web::Data::new(HttpConfig::default()))
//!     .service(web::resource("/applications").wrap(RequirePermission::new("readApplications")).route(web::get().to(apps)))
//!     .service(scope(""));
//! # Ok(()) }
//! ```
//!
//! Everything reads `web::Data<Keyward>` (a 500 naming the fix when it is
//! missing) and `web::Data<HttpConfig>` (defaults when missing) from the
//! app data. The verified principal is cached in the request extensions.
//! For an optional principal use [`OptionalPrincipal`]: `None` when no
//! credentials were presented, the same rejection as [`Principal`] when
//! bad or malformed ones were (as axum's `Option<Principal>`). actix-web's
//! own `Option<Principal>` is a blanket implementation that turns every
//! rejection into `None`, bad credentials included.

use std::future::{Future, Ready, ready};
use std::net::IpAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::LazyLock;
use std::task::{Context, Poll};

use actix_web::body::EitherBody;
use actix_web::dev::{Payload, Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderMap};
use actix_web::{FromRequest, HttpMessage, HttpRequest, HttpResponse, ResponseError, web};

use crate::http::api::{self, Response};
use crate::http::auth::{self, Later, Verification};
use crate::http::body::Body;
use crate::http::headers::{self, RequestHeaders};
use crate::http::{HttpConfig, HttpError, MAX_BODY_BYTES};
use crate::permission::Permission;
use crate::principal::Principal;
use crate::service::Keyward;

#[cfg(feature = "console")]
#[cfg_attr(docsrs, doc(cfg(feature = "console")))]
pub use crate::http::console_actix::console;

static DEFAULT_CONFIG: LazyLock<HttpConfig> = LazyLock::new(HttpConfig::default);

const MISSING_STATE: &str =
    "keyward: no web::Data<Keyward> in the app data; add .app_data(web::Data::new(keyward))";

fn config(req: &HttpRequest) -> &HttpConfig {
    req.app_data::<web::Data<HttpConfig>>()
        .map_or(&*DEFAULT_CONFIG, |c| c.get_ref())
}

fn gather(h: &HeaderMap) -> RequestHeaders<'_> {
    RequestHeaders::gather(h.iter().map(|(n, v)| (n.as_str(), v.as_bytes())))
}

fn client_ip(cfg: &HttpConfig, req: &HttpRequest) -> Option<IpAddr> {
    headers::client_ip(cfg, req.peer_addr().map(|a| a.ip()), || {
        req.headers()
            .get_all(header::X_FORWARDED_FOR)
            .map(|v| v.as_bytes())
    })
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
fn principal_now(req: &HttpRequest) -> Found {
    let cached = req.extensions().get::<Principal>().cloned();
    if cached.is_some() {
        return Found::Now(Ok(cached));
    }
    let Some(kw) = req.app_data::<web::Data<Keyward>>() else {
        return Found::Now(Err(HttpError::misconfigured(MISSING_STATE)));
    };
    let cfg = config(req);
    let attempt = match auth::attempt(cfg, &gather(req.headers()), || client_ip(cfg, req)) {
        Ok(Some(a)) => a,
        Ok(None) => return Found::Now(Ok(None)),
        Err(e) => return Found::Now(Err(e)),
    };
    match attempt.start(kw.get_ref(), cfg) {
        Verification::Done(r) => Found::Now(r.map(|p| Some(cache(req, p)))),
        Verification::ActFor(p, account) => Found::Later(Later::ActFor(p, account)),
        Verification::Cold(_) => Found::Later(Later::Cold),
    }
}

/// What [`principal_now`] could not decide, awaited (and then cached).
async fn principal_later(req: &HttpRequest, later: Later) -> Result<Option<Principal>, HttpError> {
    let Some(kw) = req.app_data::<web::Data<Keyward>>() else {
        return Err(HttpError::misconfigured(MISSING_STATE));
    };
    let cfg = config(req);
    let found = later
        .resolve(kw.get_ref(), cfg, || {
            auth::attempt(cfg, &gather(req.headers()), || client_ip(cfg, req))
        })
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
    match principal_now(req) {
        Found::Now(r) => PrincipalFuture(FutureState::Ready(Some(r.and_then(|p| done(p, req))))),
        Found::Later(later) => {
            let req = req.clone();
            PrincipalFuture(FutureState::Verifying(Box::pin(async move {
                let found = principal_later(&req, later).await?;
                done(found, &req)
            })))
        }
    }
}

impl FromRequest for Principal {
    type Error = HttpError;
    type Future = PrincipalFuture<Self>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        extract(req, |found, req| {
            found.ok_or_else(|| HttpError::missing_credentials(config(req)))
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
        extract(req, |found, req| Authorized::checked(config(req), found))
    }
}

/// Middleware letting a request through only when its principal holds the
/// permission (401/403 otherwise), caching the principal for the
/// handler's extractor. One line per resource:
/// `web::resource("/applications").wrap(RequirePermission::new("readApplications"))`.
#[derive(Debug, Clone)]
pub struct RequirePermission {
    permission: Permission,
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
        Self { permission }
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
            permission: Rc::new(self.permission.clone()),
        }))
    }
}

/// The service made by [`RequirePermission`].
#[derive(Debug)]
pub struct RequirePermissionMiddleware<S> {
    service: Rc<S>,
    // Shared with each request's future: cloning a `Permission` allocates.
    permission: Rc<Permission>,
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
        let state = match principal_now(req.request()) {
            // Most requests: the inner service's own future, no box.
            Found::Now(Ok(Some(p))) if p.has(&self.permission) => State::Inner {
                future: self.service.call(req),
            },
            Found::Now(found) => State::Ready {
                response: Some(self.reject(req, found)),
            },
            Found::Later(later) => {
                let this = RequirePermissionMiddleware {
                    service: Rc::clone(&self.service),
                    permission: Rc::clone(&self.permission),
                };
                State::Boxed {
                    future: Box::pin(async move {
                        match principal_later(req.request(), later).await {
                            Ok(Some(p)) if p.has(&this.permission) => this
                                .service
                                .call(req)
                                .await
                                .map(ServiceResponse::map_into_left_body),
                            found => Ok(this.reject(req, found)),
                        }
                    }),
                }
            }
        };
        RequireFuture { state }
    }
}

impl<S> RequirePermissionMiddleware<S> {
    /// The response to a request whose principal is missing, lacks the
    /// permission or could not be verified.
    fn reject<B>(
        &self,
        req: ServiceRequest,
        found: Result<Option<Principal>, HttpError>,
    ) -> ServiceResponse<EitherBody<B>> {
        let cfg = config(req.request());
        let e = match found {
            Ok(Some(_)) => HttpError::insufficient_scope(cfg, self.permission.as_str()),
            Ok(None) => HttpError::missing_credentials(cfg),
            Err(e) => e,
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
        Inner { #[pin] future: F },
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
            StateProj::Inner { future } => {
                future.poll(cx).map_ok(ServiceResponse::map_into_left_body)
            }
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
    let Some(kw) = req.app_data::<web::Data<Keyward>>().cloned() else {
        return to_actix(HttpError::misconfigured(MISSING_STATE).render());
    };
    let cfg = config(&req);
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
    to_actix(api::dispatch(kw.get_ref(), cfg, request).await)
}
