//! `/apps…`: create, list, get, update (title, description, status),
//! delete (`?cascade=true` with its keys).

use serde_json::{Map, Value, json};

use super::keys::{limit, page, query};
use super::sessions::rfc3339;
use super::{Op, Request, Response};
use crate::app::{App, AppStatus, AppUpdate, NewApp};
use crate::http::body::{self, Fields};
use crate::http::config::HttpConfig;
use crate::http::error::HttpError;
use crate::http::host_user::Caller;
use crate::id::AppId;
use crate::permission::Permission;
use crate::service::{Keyward, ListApps};

const CREATE_FIELDS: &[&str] = &["title", "description"];
const UPDATE_FIELDS: &[&str] = &["title", "description", "status"];

/// The application record in its serde form, as a JSON object.
fn record(app: &App) -> Map<String, Value> {
    match serde_json::to_value(app) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    }
}

fn status(cfg: &HttpConfig, v: &str) -> Result<AppStatus, HttpError> {
    AppStatus::parse(v)
        .ok_or_else(|| HttpError::invalid_value(cfg, "status", "must be active or inactive"))
}

pub(super) async fn handle(
    kw: &Keyward,
    cfg: &HttpConfig,
    op: Op,
    req: &Request<'_>,
) -> Result<Response, HttpError> {
    let permission = match op {
        Op::ListApps | Op::GetApp => Permission::read_api_keys(),
        _ => Permission::write_api_keys(),
    };
    let p = Caller::of(kw, cfg, req.user, &req.headers, req.client_ip).await?;
    if !p.has(&permission) {
        return Err(HttpError::insufficient_scope(cfg, permission.as_str()));
    }
    let svc = |e| HttpError::from_service(cfg, e);
    match op {
        Op::CreateApp => create(kw, cfg, &p, req).await,
        Op::ListApps => list(kw, cfg, &p, req).await,
        _ => {
            let id = app_id(cfg, req)?;
            match op {
                Op::GetApp => {
                    let app = kw.get_app(p.actor(), &id).await.map_err(svc)?;
                    Ok(Response::json(200, &Value::Object(record(&app))))
                }
                Op::UpdateApp => update(kw, cfg, &p, &id, req).await,
                _ => delete(kw, cfg, &p, &id, req).await,
            }
        }
    }
}

/// The `{id}` path parameter; an id that cannot exist is simply not found.
fn app_id(cfg: &HttpConfig, req: &Request<'_>) -> Result<AppId, HttpError> {
    req.id
        .and_then(|s| AppId::new(s).ok())
        .ok_or_else(|| HttpError::not_found(cfg, "application"))
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
    let mut new = NewApp::new(f.required_string("title")?);
    if let Some(d) = f.string("description")? {
        new.description = d.unwrap_or_default();
    }
    let app = kw
        .create_app(p.actor(), p.account(), new)
        .await
        .map_err(|e| HttpError::from_service(cfg, e))?;
    let mut out = record(&app);
    limits
        .apply(
            kw,
            cfg,
            p,
            crate::ratelimit::LimitOwner::App(app.id),
            &mut out,
        )
        .await?;
    Ok(Response::json(201, &Value::Object(out)))
}

async fn list(
    kw: &Keyward,
    cfg: &HttpConfig,
    p: &Caller,
    req: &Request<'_>,
) -> Result<Response, HttpError> {
    let mut l = ListApps::new();
    for (name, v) in query(cfg, req.query, &["q", "status", "limit", "cursor"])? {
        match name {
            "q" => l.q = Some(v),
            "status" => l.status = Some(status(cfg, &v)?),
            "limit" => l.limit = limit(cfg, &v)?,
            _ => l.cursor = Some(v),
        }
    }
    let page_ = kw
        .list_apps(p.actor(), p.account(), l)
        .await
        .map_err(|e| HttpError::from_service(cfg, e))?;
    let items = page_
        .items
        .iter()
        .map(|a| Value::Object(record(a)))
        .collect();
    Ok(Response::json(200, &page(items, page_.next_cursor)))
}

async fn update(
    kw: &Keyward,
    cfg: &HttpConfig,
    p: &Caller,
    id: &AppId,
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
    let mut u = AppUpdate::new();
    u.title = match f.string("title")? {
        None => None,
        Some(Some(t)) => Some(t),
        Some(None) => return Err(HttpError::invalid_value(cfg, "title", "must not be null")),
    };
    u.description = f.string("description")?.map(Option::unwrap_or_default);
    u.status = match f.string("status")? {
        None => None,
        Some(Some(s)) => Some(status(cfg, &s)?),
        Some(None) => {
            return Err(HttpError::invalid_value(
                cfg,
                "status",
                "must be active or inactive",
            ));
        }
    };
    let updated = kw
        .update_app(p.actor(), id, u)
        .await
        .map_err(|e| HttpError::from_service(cfg, e))?;
    let mut out = record(&updated.app);
    limits
        .apply(kw, cfg, p, crate::ratelimit::LimitOwner::App(*id), &mut out)
        .await?;
    if let Some(at) = updated.effective_by {
        out.insert("effective_by".into(), rfc3339(at));
    }
    Ok(Response::json(200, &Value::Object(out)))
}

async fn delete(
    kw: &Keyward,
    cfg: &HttpConfig,
    p: &Caller,
    id: &AppId,
    req: &Request<'_>,
) -> Result<Response, HttpError> {
    let mut cascade = false;
    for (_, v) in query(cfg, req.query, &["cascade"])? {
        cascade = match v.as_str() {
            "true" => true,
            "false" => false,
            _ => {
                return Err(HttpError::invalid_value(
                    cfg,
                    "cascade",
                    "must be true or false",
                ));
            }
        };
    }
    let d = kw
        .delete_app(p.actor(), id, cascade)
        .await
        .map_err(|e| HttpError::from_service(cfg, e))?;
    Ok(Response::json(
        200,
        &json!({
            "id": d.id,
            "status": "deleted",
            "deleted_keys": d.deleted_keys,
            "effective_by": rfc3339(d.effective_by),
        }),
    ))
}
