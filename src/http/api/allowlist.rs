//! `/allowlist…` and the origin gate of the management API: a browser
//! request (one with an `Origin` header) is answered only for the server's
//! own origin (an `Origin` whose host and port are the request's `Host`)
//! and for origins on the runtime allowlist; others get 403
//! `origin_not_allowed`, and CORS preflights are answered for listed
//! origins only. Requests without `Origin` (servers, curl) are unaffected.

use serde_json::{Value, json};

use super::{Op, Request, Response};
use crate::Error;
use crate::http::body::{self, Fields};
use crate::http::config::HttpConfig;
use crate::http::error::HttpError;
use crate::http::host_user::Caller;
use crate::origin::normalize_origin;
use crate::permission::Permission;
use crate::service::{Keyward, SELF_ORIGIN_ID};

/// Request headers a browser may send to the management API.
const ALLOW_HEADERS: &str =
    "authorization, content-type, x-api-key, x-api-secret, x-account-id, last-event-id";

/// Whether `origin` (normalized) is the server's own: the request's host.
fn same_origin(origin: &str, host: Option<&[u8]>) -> bool {
    let Some(host) = host.and_then(|h| std::str::from_utf8(h).ok()) else {
        return false;
    };
    let Some((scheme, _)) = origin.split_once("://") else {
        return false;
    };
    normalize_origin(&format!("{scheme}://{host}")).is_ok_and(|own| own == origin)
}

/// Admits a browser request: `Ok` with the `Origin` to echo in
/// `Access-Control-Allow-Origin`, or the 403 (503 when the list cannot be
/// read) to answer.
pub(super) async fn admit(
    kw: &Keyward,
    cfg: &HttpConfig,
    req: &Request<'_>,
    raw: &[u8],
) -> Result<String, Response> {
    let refuse = || HttpError::origin_not_allowed(cfg).render();
    let Ok(sent) = std::str::from_utf8(raw) else {
        return Err(refuse());
    };
    let Ok(origin) = normalize_origin(sent) else {
        return Err(refuse());
    };
    if same_origin(&origin, req.host) {
        return Ok(sent.to_owned());
    }
    match kw.origin_is_listed(&origin).await {
        Ok(true) => Ok(sent.to_owned()),
        Ok(false) => Err(refuse()),
        Err(e) => Err(HttpError::from_service(cfg, e).render()),
    }
}

/// The answer to a CORS preflight from an admitted origin.
pub(super) fn preflight(origin: &str, methods: &str) -> Response {
    Response {
        status: 204,
        headers: vec![
            ("access-control-allow-origin", origin.to_owned()),
            ("access-control-allow-methods", methods.to_owned()),
            ("access-control-allow-headers", ALLOW_HEADERS.to_owned()),
            ("access-control-max-age", "600".to_owned()),
            ("vary", "Origin".to_owned()),
            ("cache-control", "no-store".to_owned()),
        ],
        body: Vec::new(),
        stream: None,
    }
}

pub(super) async fn handle(
    kw: &Keyward,
    cfg: &HttpConfig,
    op: Op,
    req: &Request<'_>,
) -> Result<Response, HttpError> {
    let permission = match op {
        Op::ListOrigins => Permission::read_api_keys(),
        _ => Permission::write_api_keys(),
    };
    let p = Caller::of(kw, cfg, req.user, &req.headers, req.client_ip).await?;
    if !p.has(&permission) {
        return Err(HttpError::insufficient_scope(cfg, permission.as_str()));
    }
    let svc = |e| HttpError::from_service(cfg, e);
    match op {
        Op::ListOrigins => {
            let stored = kw.allowed_origins(p.actor()).await.map_err(svc)?;
            let mut items = vec![json!({
                "id": SELF_ORIGIN_ID,
                "origin": "self",
                "protected": true,
                "created_at": Value::Null,
            })];
            items.extend(
                stored
                    .iter()
                    .map(|o| serde_json::to_value(o).unwrap_or(Value::Null)),
            );
            Ok(Response::json(200, &json!({ "items": items })))
        }
        Op::AddOrigin => {
            let map = body::object(cfg, req.body, req.content_type, &["origin"], false)?;
            let mut f = Fields { cfg, map };
            let origin = f.required_string("origin")?;
            let entry = kw
                .allow_origin(p.actor(), &origin)
                .await
                .map_err(|e| match e {
                    Error::Conflict(_) => {
                        HttpError::invalid_value(cfg, "origin", "is already listed")
                    }
                    e => svc(e),
                })?;
            Ok(Response::json(
                201,
                &serde_json::to_value(&entry).unwrap_or(Value::Null),
            ))
        }
        _ => {
            let id = req.id.unwrap_or_default();
            kw.remove_allowed_origin(p.actor(), id).await.map_err(svc)?;
            Ok(Response::json(
                200,
                &json!({ "id": id, "status": "deleted" }),
            ))
        }
    }
}
