//! The console for axum: [`console`] (re-exported as
//! `keyward::http::axum::console`).

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Request};
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::any;

use crate::http::console::{self, Conditions, ConsoleConfig, ConsoleResponse};

/// The admin console as a router to `merge` into an application: the page
/// at `config`'s mount point (`/console` by default), its files below it.
/// It calls the management API ([`router`](crate::http::axum::router)) on
/// the same origin, at [`ConsoleConfig::api_base`].
///
/// ```no_run
/// use axum::Router;
/// use keyward::{Keyward, MemoryStore};
/// use keyward::http::{ConsoleConfig, KeywardHttp, axum::{console, router}};
///
/// # fn app() -> Result<(), Box<dyn std::error::Error>> {
/// let kw = Keyward::builder().store(MemoryStore::new()).build()?;
/// let app: Router = Router::new()
///     .merge(router())
///     .merge(console(ConsoleConfig::default()))
///     .with_state(KeywardHttp::new(kw));
/// # Ok(()) }
/// ```
///
/// # Panics
/// When the mount point or API base is not a valid path (see
/// [`ConsoleConfig::mount`]).
pub fn console<S>(config: ConsoleConfig) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let cfg = Arc::new(config.validated());
    let mount = cfg.mount_path().to_owned();
    let (c1, c2, c3) = (Arc::clone(&cfg), Arc::clone(&cfg), cfg);
    Router::new()
        .route(
            &mount,
            any(move |req: Request| async move { serve(&c1, "", &req) }),
        )
        .route(
            &format!("{mount}/"),
            any(move |req: Request| async move { serve(&c2, "/", &req) }),
        )
        .route(
            &format!("{mount}/{{*rest}}"),
            any(move |Path(rest): Path<String>, req: Request| async move {
                serve(&c3, &format!("/{rest}"), &req)
            }),
        )
}

fn serve(cfg: &ConsoleConfig, rest: &str, req: &Request) -> Response {
    let c = Conditions::gather(
        req.headers()
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_bytes())),
    );
    to_axum(console::respond(cfg, req.method().as_str(), rest, &c))
}

fn to_axum(r: ConsoleResponse) -> Response {
    let body = match r.body {
        std::borrow::Cow::Borrowed(b) => Body::from(Bytes::from_static(b)),
        std::borrow::Cow::Owned(v) => Body::from(v),
    };
    let mut res = Response::new(body);
    *res.status_mut() = StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    for (name, value) in r.headers {
        if let Ok(v) = HeaderValue::from_str(&value) {
            res.headers_mut().append(name, v);
        }
    }
    res
}
