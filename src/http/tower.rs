//! A tower [`Layer`](tower_layer::Layer) for any `http::Request<B>`
//! (tonic, plain hyper, axum, anything on tower): [`RequireLayer`].
//!
//! The layer reads the credentials from the request headers as the axum
//! and actix-web adapters do (`x-api-key` + `x-api-secret`, or
//! `Authorization: Bearer …`, optional `x-account-id`), decides from
//! keyward's caches without an await when they can (most requests: the
//! inner service's own future, nothing boxed), awaits the store or argon2
//! otherwise, puts the verified [`Principal`] in the request extensions
//! and answers a refusal itself, without calling the inner service. What
//! a refusal looks like is the [`Refusal`]: keyward's JSON error body for
//! plain HTTP ([`JsonRefusal`], the default, byte for byte the axum
//! adapter's), a trailers-only gRPC status for tonic ([`GrpcRefusal`]).
//!
//! ```no_run
//! use keyward::{Keyward, MemoryStore, Principal};
//! use keyward::http::KeywardHttp;
//! use keyward::http::tower::RequireLayer;
//! use tower::{ServiceBuilder, service_fn};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let http = KeywardHttp::new(Keyward::builder().store(MemoryStore::new()).build()?);
//! let svc = ServiceBuilder::new()
//!     .layer(RequireLayer::new(&http, "readApplications"))
//!     .service(service_fn(|req: http::Request<String>| async move {
//!         let p = req.extensions().get::<Principal>().expect("set by the layer");
//!         Ok::<_, std::convert::Infallible>(http::Response::new(p.account_id().to_string()))
//!     }));
//! # drop(svc); Ok(()) }
//! ```
//!
//! For a tonic server, `RequireLayer::new(&http, "…").grpc()` as a layer
//! of `tonic::transport::Server::builder()` (see `examples/tonic_server/`).
//!
//! The client address (for keys restricted to networks, the audit log and
//! usage) comes from a [`SocketAddr`] in the request extensions by
//! default; [`RequireLayer::client_ip`] reads it elsewhere (tonic's
//! `TcpConnectInfo`). `X-Forwarded-For` is believed only from
//! [`HttpConfig::trusted_proxies`](crate::http::HttpConfig::trusted_proxies).

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Extensions, HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode};

use crate::context::Label;
use crate::http::auth::{self, Found, Later};
use crate::http::headers::{self, RequestHeaders};
use crate::http::{HttpConfig, HttpError, KeywardHttp, RouteUsage};
use crate::permission::Permission;
use crate::principal::Principal;

// Pre-parsed name: a lookup by `&str` parses the name on every call.
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// The headers keyward reads, in one pass over the request's.
#[inline]
pub(crate) fn gather(h: &HeaderMap) -> RequestHeaders<'_> {
    RequestHeaders::gather(h.iter().map(|(n, v)| (n.as_str(), v.as_bytes())))
}

/// The client: the peer `peer` finds in the extensions, or behind a
/// trusted proxy the `X-Forwarded-For` client (and its `x-call-origin`).
#[inline]
pub(crate) fn client(
    cfg: &HttpConfig,
    headers: &HeaderMap,
    peer: Option<IpAddr>,
) -> headers::Client {
    headers::client(cfg, peer, || {
        headers
            .get_all(&X_FORWARDED_FOR)
            .iter()
            .map(HeaderValue::as_bytes)
    })
}

/// The default peer address: a [`SocketAddr`] in the extensions.
fn socket_addr(ext: &Extensions) -> Option<IpAddr> {
    ext.get::<SocketAddr>().map(SocketAddr::ip)
}

/// How the layer answers a request it refuses: the [`HttpError`] (its
/// status, code and message, never a secret) as a response of the inner
/// service's body type `B`.
pub trait Refusal<B>: Clone + Send + Sync + 'static {
    /// The response to send instead of calling the inner service.
    fn refuse(&self, error: HttpError) -> Response<B>;
}

/// keyward's JSON error response for plain HTTP: the status,
/// `WWW-Authenticate`, `Retry-After` and the body
/// `{"error": "<code>", "message": "…"}`, the same bytes as the axum and
/// actix-web adapters. For any response body that can be built from a
/// `String` (`String`, `Vec<u8>`, `Bytes`, `Full<Bytes>`, axum's `Body`).
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonRefusal;

impl<B: From<String>> Refusal<B> for JsonRefusal {
    fn refuse(&self, error: HttpError) -> Response<B> {
        json_response(error)
    }
}

/// An [`HttpError`] as keyward's JSON response.
#[cold]
pub(crate) fn json_response<B: From<String>>(error: HttpError) -> Response<B> {
    error.log();
    // serde_json writes UTF-8.
    let body = String::from_utf8(error.body()).unwrap_or_default();
    let mut res = Response::new(B::from(body));
    *res.status_mut() =
        StatusCode::from_u16(error.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    for (name, value) in error.headers() {
        if let Ok(v) = HeaderValue::from_str(&value) {
            res.headers_mut().append(name, v);
        }
    }
    res
}

/// A gRPC refusal: a trailers-only response (HTTP 200,
/// `content-type: application/grpc`, an empty body) whose `grpc-status`
/// maps the HTTP status — 401 → 16 `UNAUTHENTICATED`, 403 → 7
/// `PERMISSION_DENIED`, 429 → 8 `RESOURCE_EXHAUSTED`, 400 → 3
/// `INVALID_ARGUMENT`, 503 → 14 `UNAVAILABLE`, otherwise 13 `INTERNAL` —
/// and whose `grpc-message` is the error's message (percent-encoded; it
/// never holds a secret). For any body with a `Default` (empty) value, such
/// as `tonic::body::Body`.
#[derive(Debug, Clone, Copy, Default)]
pub struct GrpcRefusal;

impl<B: Default> Refusal<B> for GrpcRefusal {
    fn refuse(&self, error: HttpError) -> Response<B> {
        grpc_response(error)
    }
}

/// The `grpc-status` code for an HTTP status of keyward's.
fn grpc_status(http_status: u16) -> u16 {
    match http_status {
        400 => 3,
        401 => 16,
        403 => 7,
        429 => 8,
        503 => 14,
        _ => 13,
    }
}

#[cold]
fn grpc_response<B: Default>(error: HttpError) -> Response<B> {
    error.log();
    let mut res = Response::new(B::default());
    let h = res.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    h.insert(
        "grpc-status",
        HeaderValue::from(grpc_status(error.status())),
    );
    if let Ok(v) = HeaderValue::from_str(&percent_encode(error.message())) {
        h.insert("grpc-message", v);
    }
    res
}

/// `grpc-message` encoding: bytes outside visible ASCII and space, and
/// `%`, as `%XX` (gRPC over HTTP/2, "Responses").
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if (0x20..=0x7e).contains(&b) && b != b'%' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// What the layer checks with: one `Arc` to clone per layered service.
#[derive(Debug, Clone)]
struct Guard {
    http: KeywardHttp,
    /// `None`: only counts usage ([`RequireLayer::usage_only`]).
    permission: Option<Permission>,
    usage: RouteUsage,
    peer: fn(&Extensions) -> Option<IpAddr>,
}

/// A tower layer that lets a request through only when its principal
/// holds a permission, for any `http::Request<B>`; see the
/// [module docs](self).
#[derive(Debug, Clone)]
pub struct RequireLayer<R = JsonRefusal> {
    guard: Arc<Guard>,
    refusal: R,
}

impl RequireLayer {
    /// Requires `permission`: 401 without (or with bad) credentials, 403
    /// `insufficient_scope` naming it when the principal lacks it, answered
    /// with keyward's JSON errors ([`grpc`](Self::grpc) for gRPC).
    ///
    /// # Panics
    /// When `permission` is not a valid permission name (at construction,
    /// like an invalid route path).
    pub fn new(http: &KeywardHttp, permission: &str) -> Self {
        let permission = Permission::new(permission)
            .unwrap_or_else(|e| panic!("keyward::http::tower::RequireLayer: {e}"));
        Self::with_guard(Guard {
            http: http.clone(),
            permission: Some(permission),
            usage: RouteUsage::API,
            peer: socket_addr,
        })
    }

    /// Checks no permission: verifies the credentials when presented
    /// (refusing bad ones) and counts the request under `origin` and
    /// `category`; a request without credentials goes on to the inner
    /// service with no [`Principal`] in its extensions.
    ///
    /// # Panics
    /// When `category` is not a valid [`Label`].
    pub fn usage_only(http: &KeywardHttp, origin: Label, category: &str) -> Self {
        Self::with_guard(Guard {
            http: http.clone(),
            permission: None,
            usage: RouteUsage::new(origin, category),
            peer: socket_addr,
        })
    }

    fn with_guard(guard: Guard) -> Self {
        Self {
            guard: Arc::new(guard),
            refusal: JsonRefusal,
        }
    }
}

impl<R> RequireLayer<R> {
    /// Counts the verified requests under the call `origin` and usage
    /// `category` (default `api`, `default`; see [`RouteUsage`]).
    ///
    /// # Panics
    /// When `category` is not a valid [`Label`].
    pub fn usage(self, origin: Label, category: &str) -> Self {
        let usage = RouteUsage::new(origin, category);
        self.map_guard(|g| g.usage = usage)
    }

    /// Reads the peer address from the request extensions with `peer`
    /// instead of looking for a [`SocketAddr`]; for tonic:
    /// `|ext| ext.get::<TcpConnectInfo>().and_then(|c| c.remote_addr()).map(|a| a.ip())`.
    pub fn client_ip(self, peer: fn(&Extensions) -> Option<IpAddr>) -> Self {
        self.map_guard(|g| g.peer = peer)
    }

    /// Answers refusals as gRPC statuses ([`GrpcRefusal`]).
    pub fn grpc(self) -> RequireLayer<GrpcRefusal> {
        self.refusal(GrpcRefusal)
    }

    /// Answers refusals with `refusal`.
    pub fn refusal<R2>(self, refusal: R2) -> RequireLayer<R2> {
        RequireLayer {
            guard: self.guard,
            refusal,
        }
    }

    fn map_guard(self, f: impl FnOnce(&mut Guard)) -> Self {
        let mut guard = Guard::clone(&self.guard);
        f(&mut guard);
        Self {
            guard: Arc::new(guard),
            refusal: self.refusal,
        }
    }
}

impl<S, R: Clone> tower_layer::Layer<S> for RequireLayer<R> {
    type Service = Require<S, R>;

    fn layer(&self, inner: S) -> Self::Service {
        Require {
            inner,
            guard: Arc::clone(&self.guard),
            refusal: self.refusal.clone(),
        }
    }
}

/// The service made by [`RequireLayer`].
#[derive(Debug, Clone)]
pub struct Require<S, R = JsonRefusal> {
    inner: S,
    guard: Arc<Guard>,
    refusal: R,
}

impl<S, R, ReqB, ResB> tower_service::Service<Request<ReqB>> for Require<S, R>
where
    S: tower_service::Service<Request<ReqB>, Response = Response<ResB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: 'static,
    R: Refusal<ResB>,
    ReqB: Send + 'static,
    ResB: Send + 'static,
{
    type Response = Response<ResB>;
    type Error = S::Error;
    type Future = RequireFuture<S::Future, ResB, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqB>) -> Self::Future {
        let state = match self.guard.decide_now(&mut req) {
            // Most requests: the inner service's own future, no box.
            Ok(Now::Allowed) => State::Inner {
                future: self.inner.call(req),
            },
            Err(e) => State::Ready {
                response: Some(self.refusal.refuse(e)),
            },
            Ok(Now::Later(later)) => {
                // `poll_ready` readied `self.inner`; the boxed future takes
                // it and leaves a clone for the next request.
                let clone = self.inner.clone();
                let inner = std::mem::replace(&mut self.inner, clone);
                State::Boxed {
                    future: Box::pin(guarded_later(
                        Arc::clone(&self.guard),
                        self.refusal.clone(),
                        inner,
                        req,
                        later,
                    )),
                }
            }
        };
        RequireFuture { state }
    }
}

/// What [`Guard::decide_now`] decided without an await (its `Err` is the
/// refusal).
enum Now {
    /// The principal holds the permission and is in the request
    /// extensions (or, counting usage only, none was presented).
    Allowed,
    /// Still to await.
    Later(Later),
}

impl Guard {
    /// Decides from the caches when they can, inserting the principal in
    /// the request extensions when it is allowed.
    #[inline]
    fn decide_now<B>(&self, req: &mut Request<B>) -> Result<Now, HttpError> {
        let cached = req.extensions().get::<Principal>().cloned();
        let principal = match cached {
            Some(p) => p,
            None => {
                let (headers, ext) = (req.headers(), req.extensions());
                let found = auth::find_now(&self.http, &gather(headers), &self.usage, |cfg| {
                    client(cfg, headers, (self.peer)(ext))
                });
                match found {
                    Found::Principal(p) => p,
                    Found::Absent => return self.absent().map(|()| Now::Allowed),
                    Found::Rejected(e) => return Err(e),
                    Found::Later(later) => return Ok(Now::Later(later)),
                }
            }
        };
        self.admit(req, principal).map(|()| Now::Allowed)
    }

    /// The permission check, then the principal into the extensions.
    #[inline]
    fn admit<B>(&self, req: &mut Request<B>, principal: Principal) -> Result<(), HttpError> {
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
    /// on to the inner service where only usage is counted.
    fn absent(&self) -> Result<(), HttpError> {
        match self.permission {
            Some(_) => Err(HttpError::missing_credentials(self.http.config())),
            None => Ok(()),
        }
    }
}

type BoxedResponse<B, E> = Pin<Box<dyn Future<Output = Result<Response<B>, E>> + Send>>;

pin_project_lite::pin_project! {
    /// The future of [`Require`]: the inner service's future when the
    /// caches decided (most requests: nothing boxed), a ready refusal, or
    /// a boxed verification that needs the store, argon2 or a child
    /// account.
    #[must_use = "futures do nothing unless polled"]
    pub struct RequireFuture<F, B, E> {
        #[pin]
        state: State<F, B, E>,
    }
}

pin_project_lite::pin_project! {
    #[project = StateProj]
    enum State<F, B, E> {
        Inner { #[pin] future: F },
        Ready { response: Option<Response<B>> },
        Boxed { future: BoxedResponse<B, E> },
    }
}

impl<F, B, E> std::fmt::Debug for RequireFuture<F, B, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.state {
            State::Inner { .. } => "RequireFuture::Inner",
            State::Ready { .. } => "RequireFuture::Ready",
            State::Boxed { .. } => "RequireFuture::Boxed",
        })
    }
}

impl<F, B, E> Future for RequireFuture<F, B, E>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<B>, E>;

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

/// The rest of [`Require`] once a request needs an await.
async fn guarded_later<S, R, ReqB, ResB>(
    guard: Arc<Guard>,
    refusal: R,
    mut inner: S,
    mut req: Request<ReqB>,
    later: Later,
) -> Result<Response<ResB>, S::Error>
where
    S: tower_service::Service<Request<ReqB>, Response = Response<ResB>>,
    R: Refusal<ResB>,
{
    let verified = {
        let (headers, ext) = (req.headers(), req.extensions());
        auth::find_later(
            &guard.http,
            later,
            &guard.usage,
            || gather(headers),
            |cfg| client(cfg, headers, (guard.peer)(ext)),
        )
        .await
    };
    let admitted = match verified {
        Ok(Some(p)) => guard.admit(&mut req, p),
        Ok(None) => guard.absent(),
        Err(e) => Err(e),
    };
    match admitted {
        Ok(()) => {
            drop(guard);
            inner.call(req).await
        }
        Err(e) => Ok(refusal.refuse(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_message_is_percent_encoded() {
        assert_eq!(
            percent_encode("missing permission a"),
            "missing permission a"
        );
        assert_eq!(percent_encode("100% ü\n"), "100%25 %C3%BC%0A");
    }

    #[test]
    fn grpc_statuses() {
        assert_eq!(
            [400, 401, 403, 429, 500, 503].map(grpc_status),
            [3, 16, 7, 8, 13, 14]
        );
    }
}
