//! The management API: route table and dispatch. Adapters register every
//! path of [`ROUTES`] and hand each request here, so both frameworks give
//! the same answers byte for byte.

mod accounts;
mod allowlist;
mod apps;
mod events;
mod events_stream;
mod keys;
mod limits;
mod sessions;
mod usage;

use std::net::IpAddr;

use serde_json::Value;

use crate::http::body::Body;
use crate::http::config::HttpConfig;
use crate::http::error::HttpError;
use crate::http::headers::{Hv, RequestHeaders};
use crate::http::host_user::HostUser;
use crate::service::Keyward;

/// What a route does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    CreateKey,
    ListKeys,
    GetKey,
    UpdateKey,
    DeleteKey,
    RotateKey,
    KeyEvents,
    KeyUsage,
    CreateApp,
    ListApps,
    GetApp,
    UpdateApp,
    DeleteApp,
    CreateAccount,
    ListAccounts,
    GetAccount,
    UpdateAccount,
    ListOrigins,
    AddOrigin,
    RemoveOrigin,
    Events,
    EventsStream,
    Usage,
    Login,
    Logout,
    Whoami,
    OpenApi,
}

/// Every route: method, path (relative to where the router is mounted),
/// operation.
pub(crate) const ROUTES: &[(&str, &str, Op)] = &[
    ("POST", "/apikeys", Op::CreateKey),
    ("GET", "/apikeys", Op::ListKeys),
    ("GET", "/apikeys/{id}", Op::GetKey),
    ("PATCH", "/apikeys/{id}", Op::UpdateKey),
    ("DELETE", "/apikeys/{id}", Op::DeleteKey),
    ("POST", "/apikeys/{id}/rotate", Op::RotateKey),
    ("GET", "/apikeys/{id}/events", Op::KeyEvents),
    ("GET", "/apikeys/{id}/usage", Op::KeyUsage),
    ("POST", "/apps", Op::CreateApp),
    ("GET", "/apps", Op::ListApps),
    ("GET", "/apps/{id}", Op::GetApp),
    ("PATCH", "/apps/{id}", Op::UpdateApp),
    ("DELETE", "/apps/{id}", Op::DeleteApp),
    ("POST", "/accounts", Op::CreateAccount),
    ("GET", "/accounts", Op::ListAccounts),
    ("GET", "/accounts/{id}", Op::GetAccount),
    ("PATCH", "/accounts/{id}", Op::UpdateAccount),
    ("GET", "/allowlist", Op::ListOrigins),
    ("POST", "/allowlist", Op::AddOrigin),
    ("DELETE", "/allowlist/{id}", Op::RemoveOrigin),
    ("GET", "/events", Op::Events),
    ("GET", "/events/stream", Op::EventsStream),
    ("GET", "/usage", Op::Usage),
    ("POST", "/auth/login", Op::Login),
    ("POST", "/auth/logout", Op::Logout),
    ("GET", "/auth/whoami", Op::Whoami),
    ("GET", "/openapi.json", Op::OpenApi),
];

/// The distinct paths of [`ROUTES`], in order.
pub(crate) fn paths() -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for (_, p, _) in ROUTES {
        if !out.contains(p) {
            out.push(p);
        }
    }
    out
}

/// A request as an adapter hands it over.
#[derive(Debug)]
pub(crate) struct Request<'a> {
    /// The matched path pattern from [`ROUTES`].
    pub(crate) path: &'static str,
    pub(crate) method: &'a str,
    /// The `{id}` path parameter.
    pub(crate) id: Option<&'a str>,
    /// The raw query string (without `?`).
    pub(crate) query: &'a str,
    pub(crate) headers: RequestHeaders<'a>,
    /// The `Content-Type` values (of a request with a body).
    pub(crate) content_type: Hv<'a>,
    pub(crate) client_ip: Option<IpAddr>,
    pub(crate) body: Body<'a>,
    /// The person the host's authentication put on the request, if any.
    pub(crate) user: Option<&'a HostUser>,
    /// The `Origin` header: a browser request.
    pub(crate) origin: Option<&'a [u8]>,
    /// The `Host` header (or the URI's authority).
    pub(crate) host: Option<&'a [u8]>,
    /// Whether it carries `Access-Control-Request-Method` (a CORS
    /// preflight when the method is OPTIONS).
    pub(crate) preflight: bool,
    /// The `Last-Event-ID` header (an event stream's resume position).
    pub(crate) last_event_id: Option<&'a [u8]>,
}

/// A response for an adapter to write out as is: `body`, or, when set,
/// the chunks of `stream` as they come.
#[derive(Debug)]
pub(crate) struct Response {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(&'static str, String)>,
    pub(crate) body: Vec<u8>,
    pub(crate) stream: Option<events_stream::SseBody>,
}

impl Response {
    /// A JSON response. Management responses are never cached (some carry
    /// a secret or a token).
    pub(crate) fn json(status: u16, value: &Value) -> Self {
        Self {
            status,
            headers: vec![
                ("content-type", "application/json".to_owned()),
                ("cache-control", "no-store".to_owned()),
            ],
            body: serde_json::to_vec(value).unwrap_or_default(),
            stream: None,
        }
    }

    pub(crate) fn no_content() -> Self {
        Self {
            status: 204,
            headers: vec![("cache-control", "no-store".to_owned())],
            body: Vec::new(),
            stream: None,
        }
    }
}

/// Answers one management API request.
///
/// HEAD is answered as GET (RFC 9110 §9.3.2): the frameworks send GET's
/// status and headers, `Content-Length` included, without the body.
pub(crate) async fn dispatch(kw: &Keyward, cfg: &HttpConfig, req: Request<'_>) -> Response {
    // A browser request: only from the server's own origin or a listed one.
    let cors = match req.origin {
        None => None,
        Some(raw) => match allowlist::admit(kw, cfg, &req, raw).await {
            Ok(origin) => Some(origin),
            Err(refused) => return refused,
        },
    };
    if let Some(origin) = &cors
        && req.method == "OPTIONS"
        && req.preflight
    {
        return allowlist::preflight(origin, &allowed_methods(req.path));
    }
    let mut res = route(kw, cfg, req).await;
    if let Some(origin) = cors {
        res.headers.push(("access-control-allow-origin", origin));
        res.headers.push(("vary", "Origin".to_owned()));
    }
    res
}

/// The methods served on `path` (GET implying HEAD), as for `Allow`.
fn allowed_methods(path: &str) -> String {
    let allow: Vec<&str> = ROUTES
        .iter()
        .filter(|(_, p, _)| *p == path)
        .flat_map(|(m, _, _)| match *m {
            "GET" => &["GET", "HEAD"][..],
            _ => std::slice::from_ref(m),
        })
        .copied()
        .collect();
    allow.join(", ")
}

async fn route(kw: &Keyward, cfg: &HttpConfig, req: Request<'_>) -> Response {
    let method = if req.method == "HEAD" {
        "GET"
    } else {
        req.method
    };
    let op = ROUTES
        .iter()
        .find(|(m, p, _)| *p == req.path && *m == method)
        .map(|(_, _, op)| *op);
    let Some(op) = op else {
        return HttpError::method_not_allowed(cfg, allowed_methods(req.path)).render();
    };
    let result = match op {
        Op::OpenApi => Ok(Response::json(200, &crate::http::openapi::document())),
        Op::Login => sessions::login(kw, cfg, &req).await,
        Op::Logout => sessions::logout(kw, cfg, &req).await,
        Op::Whoami => sessions::whoami(kw, cfg, &req).await,
        Op::CreateApp | Op::ListApps | Op::GetApp | Op::UpdateApp | Op::DeleteApp => {
            apps::handle(kw, cfg, op, &req).await
        }
        Op::CreateAccount | Op::ListAccounts | Op::GetAccount | Op::UpdateAccount => {
            accounts::handle(kw, cfg, op, &req).await
        }
        Op::ListOrigins | Op::AddOrigin | Op::RemoveOrigin => {
            allowlist::handle(kw, cfg, op, &req).await
        }
        Op::Events => events::list(kw, cfg, &req).await,
        Op::EventsStream => events_stream::open(kw, cfg, &req).await,
        Op::Usage => usage::report(kw, cfg, &req).await,
        op => keys::handle(kw, cfg, op, &req).await,
    };
    result.unwrap_or_else(|e| {
        if op != Op::Login && matches!(e.status(), 401 | 403 | 429) {
            note_refused(kw, cfg, &req, e.code());
        }
        e.render()
    })
}

/// Counts a refused management request in its key's activity log (see
/// `service::events_refusals`): the key its credentials name, if any (a
/// session token or a host's person names none here).
fn note_refused(kw: &Keyward, cfg: &HttpConfig, req: &Request<'_>, cause: &'static str) {
    use crate::http::headers::{self, Credentials};
    use crate::service::Refused;
    match headers::credentials(cfg, &req.headers) {
        Ok(Some(Credentials::Key { id, .. })) => {
            kw.note_refused_key(Refused::Management, id, cause, req.client_ip);
        }
        Ok(Some(Credentials::Bearer(token))) => {
            kw.note_refused_bearer(Refused::Management, token, cause, req.client_ip);
        }
        _ => {}
    }
}
