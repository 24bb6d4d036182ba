//! `/auth/login`, `/auth/logout`, `/auth/whoami`.

use serde_json::{Value, json};
use time::format_description::well_known::Rfc3339;

use super::{Request, Response};
use crate::context::VerifyContext;
use crate::http::auth;
use crate::http::body::{self, Fields};
use crate::http::config::HttpConfig;
use crate::http::error::HttpError;
use crate::http::headers::{self, Credentials};
use crate::http::host_user::Caller;
use crate::service::{Keyward, Refused, cause_of};

pub(super) async fn login(
    kw: &Keyward,
    cfg: &HttpConfig,
    req: &Request<'_>,
) -> Result<Response, HttpError> {
    let mut ctx = VerifyContext::new();
    ctx.client_ip = req.client_ip;
    ctx.browser_origin = req.headers.browser_origin();
    let svc = |e| HttpError::from_service(cfg, e);
    // No body, an empty one, or a JSON object naming the key and secret;
    // never a body beside header credentials (which would win?).
    let map = body::object(cfg, req.body, req.content_type, &["key", "secret"], true)?;
    let principal = match headers::credentials(cfg, &req.headers)? {
        Some(_) if !map.is_empty() => {
            return Err(HttpError::invalid_request(
                cfg,
                "credentials in both the body and the headers; send one or the other",
            ));
        }
        Some(c @ Credentials::Key { id, secret }) => {
            kw.verify_key_bytes(id, secret, ctx).await.map_err(|e| {
                if let Some(cause) = cause_of(&e) {
                    kw.note_refused_key(Refused::Login, id, cause, req.client_ip);
                }
                c.reject(cfg, e)
            })?
        }
        Some(c @ Credentials::Bearer(token)) => {
            kw.verify_bearer_bytes(token, ctx).await.map_err(|e| {
                if let Some(cause) = cause_of(&e) {
                    kw.note_refused_bearer(Refused::Login, token, cause, req.client_ip);
                }
                c.reject(cfg, e)
            })?
        }
        None => {
            if map.is_empty() {
                return Err(HttpError::missing_credentials(cfg));
            }
            let mut f = Fields { cfg, map };
            let key = f.required_string("key")?;
            let secret = zeroize::Zeroizing::new(f.required_string("secret")?);
            kw.verify(&key, &secret, ctx).await.map_err(|e| {
                if let Some(cause) = cause_of(&e) {
                    kw.note_refused_key(Refused::Login, key.as_bytes(), cause, req.client_ip);
                }
                svc(e)
            })?
        }
    };
    let session = kw.open_session(&principal).await.map_err(svc)?;
    let expires_at = session.expires_at();
    let expires_in = (expires_at - kw.now()).whole_seconds().max(0);
    Ok(Response::json(
        200,
        &json!({
            "token": session.token.expose(),
            "token_type": "Bearer",
            "expires_at": rfc3339(expires_at),
            "expires_in": expires_in,
        }),
    ))
}

pub(super) async fn logout(
    kw: &Keyward,
    cfg: &HttpConfig,
    req: &Request<'_>,
) -> Result<Response, HttpError> {
    let principal = auth::require(kw, cfg, &req.headers, req.client_ip).await?;
    if principal.session_id().is_none() {
        return Err(HttpError::invalid_request(
            cfg,
            "logout needs Authorization: Bearer <session token>",
        ));
    }
    kw.logout(&principal)
        .await
        .map_err(|e| HttpError::from_service(cfg, e))?;
    Ok(Response::no_content())
}

pub(super) async fn whoami(
    kw: &Keyward,
    cfg: &HttpConfig,
    req: &Request<'_>,
) -> Result<Response, HttpError> {
    // A person the host signed in (the console behind the host's login)
    // is answered too, with who they are and no key.
    let body = match Caller::of(kw, cfg, req.user, &req.headers, req.client_ip).await? {
        Caller::Principal(p) => json!({
            "account_id": p.account_id(),
            "key_id": p.key_id(),
            "session_id": p.session_id(),
            "permissions": p.permissions(),
        }),
        Caller::User(u) => json!({
            "account_id": u.account(),
            "key_id": null,
            "session_id": null,
            "permissions": u.permissions(),
            "person": { "id": u.id(), "name": u.name() },
        }),
    };
    Ok(Response::json(200, &body))
}

pub(super) fn rfc3339(t: time::OffsetDateTime) -> Value {
    t.format(&Rfc3339).map(Value::String).unwrap_or(Value::Null)
}
