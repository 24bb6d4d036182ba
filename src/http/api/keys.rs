//! `/apikeys…`: issue, list, get, update, delete, rotate, events, usage.

use serde_json::{Map, Value, json};
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

use super::sessions::rfc3339;
use super::{Op, Request, Response};
use crate::api_key::{ApiKey, KeyStatus};
use crate::context::Label;
use crate::error::Error;
use crate::http::body::{self, Fields};
use crate::http::config::HttpConfig;
use crate::http::error::HttpError;
use crate::http::host_user::Caller;
use crate::id::{AppId, KeyId};
use crate::permission::Permission;
use crate::ratelimit::LimitOwner;
use crate::service::{KeyUpdate, Keyward, ListKeys, NewKey, UsageFilter};

const CREATE_FIELDS: &[&str] = &[
    "name",
    "description",
    "application",
    "app_id",
    "permissions",
    "expires_at",
    "allowed_cidrs",
    "allowed_origins",
    "metadata",
];
const UPDATE_FIELDS: &[&str] = &[
    "name",
    "description",
    "application",
    "app_id",
    "permissions",
    "expires_at",
    "status",
    "allowed_cidrs",
    "allowed_origins",
    "metadata",
];

/// The body's `app_id`: absent, `null` (no application) or an id.
fn app_id(f: &mut Fields<'_>) -> Result<Option<Option<AppId>>, HttpError> {
    let cfg = f.cfg;
    f.string("app_id")?
        .map(|a| {
            a.map(|a| {
                AppId::new(&a)
                    .map_err(|_| HttpError::invalid_value(cfg, "app_id", "no such application"))
            })
            .transpose()
        })
        .transpose()
}

/// A service error, an unknown application being the body's `app_id`'s.
fn app_error(cfg: &HttpConfig, e: Error) -> HttpError {
    match e {
        Error::NotFound("application") => {
            HttpError::invalid_value(cfg, "app_id", "no such application")
        }
        e => HttpError::from_service(cfg, e),
    }
}

/// The key record in its serde form, as a JSON object.
fn record(key: &ApiKey) -> Map<String, Value> {
    match serde_json::to_value(key) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    }
}

pub(super) async fn handle(
    kw: &Keyward,
    cfg: &HttpConfig,
    op: Op,
    req: &Request<'_>,
) -> Result<Response, HttpError> {
    let permission = match op {
        Op::ListKeys | Op::GetKey | Op::KeyEvents | Op::KeyUsage => Permission::read_api_keys(),
        _ => Permission::write_api_keys(),
    };
    let p = Caller::of(kw, cfg, req.user, &req.headers, req.client_ip).await?;
    if !p.has(&permission) {
        return Err(HttpError::insufficient_scope(cfg, permission.as_str()));
    }
    let svc = |e| HttpError::from_service(cfg, e);
    let actor = p.actor();
    match op {
        Op::CreateKey => create(kw, cfg, &p, req).await,
        Op::ListKeys => list(kw, cfg, &p, req).await,
        _ => {
            let id = key_id(cfg, req)?;
            match op {
                Op::GetKey => {
                    let key = kw.get_key(actor, &id).await.map_err(svc)?;
                    Ok(Response::json(200, &Value::Object(record(&key))))
                }
                Op::UpdateKey => update(kw, cfg, &p, &id, req).await,
                Op::DeleteKey => {
                    let d = kw.delete_key(actor, &id).await.map_err(svc)?;
                    Ok(Response::json(
                        200,
                        &json!({ "id": d.id, "status": "deleted", "effective_by": rfc3339(d.effective_by) }),
                    ))
                }
                Op::RotateKey => rotate(kw, cfg, &p, &id, req).await,
                Op::KeyEvents => events(kw, cfg, &p, &id, req).await,
                _ => usage(kw, cfg, &p, &id, req).await,
            }
        }
    }
}

/// The `{id}` path parameter; an id that cannot exist is simply not found.
fn key_id(cfg: &HttpConfig, req: &Request<'_>) -> Result<KeyId, HttpError> {
    req.id
        .and_then(|s| KeyId::new(s).ok())
        .ok_or_else(|| HttpError::not_found(cfg, "key"))
}

async fn create(
    kw: &Keyward,
    cfg: &HttpConfig,
    p: &Caller,
    req: &Request<'_>,
) -> Result<Response, HttpError> {
    let map = body::object(
        cfg,
        req.body,
        req.content_type,
        &super::limits::fields(CREATE_FIELDS),
        false,
    )?;
    let mut f = Fields { cfg, map };
    let limits = super::limits::LimitsPatch::read(&mut f)?;
    let mut new = NewKey::new(f.required_string("name")?);
    if let Some(d) = f.string("description")? {
        new.description = d.unwrap_or_default();
    }
    new.application = f.string("application")?.flatten();
    new.app_id = app_id(&mut f)?.flatten();
    // Without `permissions`, the key inherits what the caller may grant on
    // the account; `[]` is an explicit empty set.
    match f.permissions("permissions")? {
        Some(p) => new.permissions = p,
        None => new.inherit_permissions = true,
    }
    new.expires_at = f.time("expires_at")?.flatten();
    new.allowed_cidrs = f.cidrs("allowed_cidrs")?.unwrap_or_default();
    new.allowed_origins = f.strings("allowed_origins")?.unwrap_or_default();
    if let Some(m) = f.object("metadata")? {
        new.metadata = m;
    }
    let issued = kw
        .issue_key(p.actor(), p.account(), new)
        .await
        .map_err(|e| app_error(cfg, e))?;
    let mut out = record(&issued.key);
    limits
        .apply(kw, cfg, p, LimitOwner::Key(issued.key.id), &mut out)
        .await?;
    out.insert("secret".into(), issued.secret.expose().into());
    out.insert(
        "key".into(),
        single_string(kw, cfg, &issued.key, &issued.secret)?,
    );
    Ok(Response::json(201, &Value::Object(out)))
}

/// The single-string form (`<prefix>_ak_…`) of a new id and secret, shown
/// once beside the secret.
fn single_string(
    kw: &Keyward,
    cfg: &HttpConfig,
    key: &ApiKey,
    secret: &crate::secret::Secret,
) -> Result<Value, HttpError> {
    crate::credential::combine_key(kw.prefix(), &key.id, secret)
        .map(|s| Value::from(s.expose()))
        .map_err(|e| HttpError::from_service(cfg, Error::Internal(Box::new(e))))
}

/// Parses a query string into `(name, value)` pairs, each name at most
/// once and one of `allowed`.
pub(super) fn query<'q>(
    cfg: &HttpConfig,
    raw: &str,
    allowed: &[&'q str],
) -> Result<Vec<(&'q str, String)>, HttpError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw)
        .map_err(|_| HttpError::invalid_query(cfg, "malformed query string"))?;
    let mut out: Vec<(&'q str, String)> = Vec::with_capacity(pairs.len());
    for (k, v) in pairs {
        let Some(name) = allowed.iter().find(|a| **a == k) else {
            let shown: String = k.chars().take(64).collect();
            return Err(HttpError::invalid_query(
                cfg,
                format!(
                    "unknown query parameter `{shown}`; expected one of: {}",
                    allowed.join(", ")
                ),
            ));
        };
        if out.iter().any(|(n, _)| n == name) {
            return Err(HttpError::invalid_query(
                cfg,
                format!("query parameter `{name}` given more than once"),
            ));
        }
        out.push((name, v));
    }
    Ok(out)
}

pub(super) fn limit(cfg: &HttpConfig, v: &str) -> Result<usize, HttpError> {
    v.parse::<usize>()
        .ok()
        .filter(|n| (1..=100).contains(n))
        .ok_or_else(|| {
            HttpError::invalid_value(cfg, "limit", "must be an integer between 1 and 100")
        })
}

pub(super) fn page(items: Vec<Value>, next: Option<String>) -> Value {
    json!({ "items": items, "next_cursor": next })
}

async fn list(
    kw: &Keyward,
    cfg: &HttpConfig,
    p: &Caller,
    req: &Request<'_>,
) -> Result<Response, HttpError> {
    let mut l = ListKeys::new();
    for (name, v) in query(
        cfg,
        req.query,
        &["q", "status", "application", "app_id", "limit", "cursor"],
    )? {
        match name {
            "q" => l.q = Some(v),
            "status" => {
                l.status = Some(match v.as_str() {
                    "active" => KeyStatus::Active,
                    "inactive" => KeyStatus::Inactive,
                    _ => {
                        return Err(HttpError::invalid_value(
                            cfg,
                            "status",
                            "must be active or inactive",
                        ));
                    }
                });
            }
            "application" => l.application = Some(v),
            "app_id" => {
                // An id that cannot exist names no application: no keys.
                match AppId::new(&v) {
                    Ok(a) => l.app_id = Some(a),
                    Err(_) => return Ok(Response::json(200, &key_page(Vec::new(), None))),
                }
            }
            "limit" => l.limit = limit(cfg, &v)?,
            _ => l.cursor = Some(v),
        }
    }
    let page_ = kw
        .list_keys(p.actor(), p.account(), l)
        .await
        .map_err(|e| HttpError::from_service(cfg, e))?;
    let items = page_
        .items
        .iter()
        .map(|k| Value::Object(record(k)))
        .collect();
    Ok(Response::json(200, &key_page(items, page_.next_cursor)))
}

/// A page of `GET /apikeys`. Its `total` is `null`: counting the filter's
/// keys is itself a walk of the filter's whole index range (tens of
/// milliseconds at a million keys), not cheap.
fn key_page(items: Vec<Value>, next: Option<String>) -> Value {
    let mut out = page(items, next);
    out["total"] = Value::Null;
    out
}

async fn update(
    kw: &Keyward,
    cfg: &HttpConfig,
    p: &Caller,
    id: &KeyId,
    req: &Request<'_>,
) -> Result<Response, HttpError> {
    let map = body::object(
        cfg,
        req.body,
        req.content_type,
        &super::limits::fields(UPDATE_FIELDS),
        false,
    )?;
    let mut f = Fields { cfg, map };
    let limits = super::limits::LimitsPatch::read(&mut f)?;
    let mut u = KeyUpdate::new();
    u.name = match f.string("name")? {
        None => None,
        Some(Some(n)) => Some(n),
        Some(None) => return Err(HttpError::invalid_value(cfg, "name", "must not be null")),
    };
    u.description = f.string("description")?.map(Option::unwrap_or_default);
    u.application = f.string("application")?;
    u.app_id = app_id(&mut f)?;
    u.permissions = f.permissions("permissions")?;
    u.expires_at = f.time("expires_at")?;
    u.status = match f.string("status")? {
        None => None,
        Some(Some(s)) if s == "active" => Some(KeyStatus::Active),
        Some(Some(s)) if s == "inactive" => Some(KeyStatus::Inactive),
        Some(_) => {
            return Err(HttpError::invalid_value(
                cfg,
                "status",
                "must be active or inactive",
            ));
        }
    };
    u.allowed_cidrs = f.cidrs("allowed_cidrs")?;
    u.allowed_origins = f.strings("allowed_origins")?;
    u.metadata = f.object("metadata")?;
    let updated = kw
        .update_key(p.actor(), id, u)
        .await
        .map_err(|e| app_error(cfg, e))?;
    let mut out = record(&updated.key);
    limits
        .apply(kw, cfg, p, LimitOwner::Key(*id), &mut out)
        .await?;
    if let Some(at) = updated.effective_by {
        out.insert("effective_by".into(), rfc3339(at));
    }
    Ok(Response::json(200, &Value::Object(out)))
}

async fn rotate(
    kw: &Keyward,
    cfg: &HttpConfig,
    p: &Caller,
    id: &KeyId,
    req: &Request<'_>,
) -> Result<Response, HttpError> {
    let map = body::object(
        cfg,
        req.body,
        req.content_type,
        &["grace_period_seconds"],
        true,
    )?;
    let mut f = Fields { cfg, map };
    let grace = f.seconds("grace_period_seconds")?.map(Duration::seconds);
    let r = kw
        .rotate_key(p.actor(), id, grace)
        .await
        .map_err(|e| HttpError::from_service(cfg, e))?;
    let mut out = record(&r.key);
    out.insert("secret".into(), r.secret.expose().into());
    out.insert("key".into(), single_string(kw, cfg, &r.key, &r.secret)?);
    out.insert(
        "previous_secret_expires_at".into(),
        r.previous_secret_expires_at.map_or(Value::Null, rfc3339),
    );
    out.insert("effective_by".into(), rfc3339(r.effective_by));
    Ok(Response::json(200, &Value::Object(out)))
}

async fn events(
    kw: &Keyward,
    cfg: &HttpConfig,
    p: &Caller,
    id: &KeyId,
    req: &Request<'_>,
) -> Result<Response, HttpError> {
    let mut n = 50;
    let mut cursor = None;
    for (name, v) in query(cfg, req.query, &["limit", "cursor"])? {
        if name == "limit" {
            n = limit(cfg, &v)?;
        } else {
            cursor = Some(v);
        }
    }
    let page_ = kw
        .events(p.actor(), p.account(), Some(id), n, cursor.as_deref())
        .await
        .map_err(|e| HttpError::from_service(cfg, e))?;
    let items = page_
        .items
        .iter()
        .map(|e| serde_json::to_value(e).unwrap_or(Value::Null))
        .collect();
    Ok(Response::json(200, &page(items, page_.next_cursor)))
}

pub(super) fn instant(
    cfg: &HttpConfig,
    field: &'static str,
    v: &str,
) -> Result<OffsetDateTime, HttpError> {
    OffsetDateTime::parse(v, &Rfc3339)
        .map_err(|_| HttpError::invalid_value(cfg, field, "must be an RFC 3339 date-time"))
}

async fn usage(
    kw: &Keyward,
    cfg: &HttpConfig,
    p: &Caller,
    id: &KeyId,
    req: &Request<'_>,
) -> Result<Response, HttpError> {
    let mut from = None;
    let mut to = None;
    let mut origin = None;
    for (name, v) in query(cfg, req.query, &["from", "to", "origin"])? {
        match name {
            "from" => from = Some(instant(cfg, "from", &v)?),
            "to" => to = Some(instant(cfg, "to", &v)?),
            _ => {
                origin = Some(
                    Label::new(&v)
                        .map_err(|e| HttpError::invalid_value(cfg, "origin", e.to_string()))?,
                );
            }
        }
    }
    let to = to.unwrap_or_else(|| kw.now());
    let from = from.unwrap_or(to - Duration::days(1));
    let mut filter = UsageFilter::between(from, to).key(*id);
    filter.origin = origin;
    // The key must be visible to the caller (404 otherwise).
    kw.get_key(p.actor(), id)
        .await
        .map_err(|e| HttpError::from_service(cfg, e))?;
    let rows = kw
        .usage(p.actor(), p.account(), filter)
        .await
        .map_err(|e| HttpError::from_service(cfg, e))?;
    let items: Vec<Value> = rows
        .iter()
        .map(|r| {
            json!({
                "hour": rfc3339(r.hour),
                "origin": r.origin,
                "category": r.category,
                "successes": r.successes,
                "failures": r.failures,
                "rate_limited": r.rate_limited,
                "usage_exceeded": r.usage_exceeded,
            })
        })
        .collect();
    Ok(Response::json(
        200,
        &json!({ "key_id": id, "from": rfc3339(from), "to": rfc3339(to), "items": items }),
    ))
}
