//! The console for actix-web: [`console`] (re-exported as
//! `keyward::http::actix::console`).

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};

use crate::http::console::{self, Conditions, ConsoleConfig, ConsoleResponse};

/// The admin console as a scope at `config`'s mount point (`/console` by
/// default): the page there, its files below it. It calls the management
/// API ([`scope`](crate::http::actix::scope)) on the same origin, at
/// [`ConsoleConfig::api_base`].
///
/// ```no_run
/// use actix_web::App;
/// use keyward::http::{ConsoleConfig, actix::{console, scope}};
///
/// let app = App::new()
///     .service(console(ConsoleConfig::default()))
///     .service(scope(""));
/// ```
///
/// Register it before a scope mounted at `""`, which would otherwise take
/// its requests.
///
/// # Panics
/// When the mount point or API base is not a valid path (see
/// [`ConsoleConfig::mount`]).
pub fn console(config: ConsoleConfig) -> actix_web::Scope {
    let cfg = Arc::new(config.validated());
    let (c1, c2) = (Arc::clone(&cfg), Arc::clone(&cfg));
    web::scope(cfg.mount_path())
        .service(
            web::resource("").route(web::route().to(move |req: HttpRequest| {
                let cfg = Arc::clone(&c1);
                async move { serve(&cfg, "", &req) }
            })),
        )
        .service(
            web::resource("/{rest:.*}").route(web::route().to(move |req: HttpRequest| {
                let cfg = Arc::clone(&c2);
                async move {
                    let rest = format!("/{}", req.match_info().get("rest").unwrap_or_default());
                    serve(&cfg, &rest, &req)
                }
            })),
        )
}

fn serve(cfg: &ConsoleConfig, rest: &str, req: &HttpRequest) -> HttpResponse {
    let c = Conditions::gather(
        req.headers()
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_bytes())),
    );
    to_actix(console::respond(cfg, req.method().as_str(), rest, &c))
}

fn to_actix(r: ConsoleResponse) -> HttpResponse {
    let mut b = HttpResponse::build(
        StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
    );
    for (name, value) in r.headers {
        b.append_header((name, value));
    }
    match r.body {
        std::borrow::Cow::Borrowed(s) => b.body(s),
        std::borrow::Cow::Owned(v) => b.body(v),
    }
}
