//! `GET /events`: the acting account's activity log, newest first, with a
//! keyset cursor (one index range per filter shape), and the filters it
//! shares with `GET /events/stream`.

use serde_json::Value;

use super::keys::{instant, limit, page, query};
use super::{Request, Response};
use crate::audit::{ActorKind, AuditAction};
use crate::http::config::HttpConfig;
use crate::http::error::HttpError;
use crate::http::host_user::Caller;
use crate::id::{AccountId, AppId, KeyId};
use crate::permission::Permission;
use crate::service::{EventFilter, Keyward};
use crate::store::ActorFilter;

/// The filters of both routes.
pub(super) const FILTERS: &[&str] = &[
    "key_id",
    "app_id",
    "account_id",
    "children",
    "action",
    "actor",
    "from",
    "to",
];

/// The caller, once it holds `readApiKeys`.
pub(super) async fn reader(
    kw: &Keyward,
    cfg: &HttpConfig,
    req: &Request<'_>,
) -> Result<Caller, HttpError> {
    let permission = Permission::read_api_keys();
    let p = Caller::of(kw, cfg, req.user, &req.headers, req.client_ip).await?;
    if !p.has(&permission) {
        return Err(HttpError::insufficient_scope(cfg, permission.as_str()));
    }
    Ok(p)
}

/// Sets the filter `name` (one of [`FILTERS`]) from its query value.
pub(super) fn filter(
    cfg: &HttpConfig,
    f: &mut EventFilter,
    name: &str,
    v: &str,
) -> Result<(), HttpError> {
    match name {
        // A key id that cannot exist is a key that is not found, as on
        // `/apikeys/{id}/events`.
        "key_id" => f.key_id = Some(KeyId::new(v).map_err(|_| HttpError::not_found(cfg, "key"))?),
        "app_id" => {
            f.app_id =
                Some(AppId::new(v).map_err(|_| {
                    HttpError::invalid_value(cfg, "app_id", "not an application id")
                })?);
        }
        "account_id" => {
            f.account_id =
                Some(AccountId::new(v).map_err(|_| HttpError::not_found(cfg, "account"))?);
        }
        "children" => {
            f.children = match v {
                "true" => true,
                "false" => false,
                _ => {
                    return Err(HttpError::invalid_value(
                        cfg,
                        "children",
                        "must be `true` or `false`",
                    ));
                }
            };
        }
        "action" => {
            f.action = Some(AuditAction::parse(v).ok_or_else(|| {
                HttpError::invalid_value(cfg, "action", "not an audit action (e.g. `key_created`)")
            })?);
        }
        "actor" => f.actor = Some(actor(cfg, v)?),
        "from" => f.from = Some(instant(cfg, "from", v)?),
        "to" => f.to = Some(instant(cfg, "to", v)?),
        _ => {}
    }
    Ok(())
}

/// `system`, `key`, `session`, `user` (every actor of the kind),
/// `key:<key id>` (a key, directly or through its sessions) or
/// `user:<host id>` (a person).
fn actor(cfg: &HttpConfig, v: &str) -> Result<ActorFilter, HttpError> {
    let bad = || {
        HttpError::invalid_value(
            cfg,
            "actor",
            "must be `system`, `key`, `session`, `user`, `key:<key id>` or `user:<user id>`",
        )
    };
    Ok(match v.split_once(':') {
        None => ActorFilter::Kind(match v {
            "system" => ActorKind::System,
            "key" => ActorKind::Key,
            "session" => ActorKind::Session,
            "user" => ActorKind::User,
            _ => return Err(bad()),
        }),
        Some(("key", id)) => ActorFilter::Key(KeyId::new(id).map_err(|_| bad())?),
        Some(("user", id)) if !id.is_empty() && id.chars().count() <= 200 => {
            ActorFilter::User(id.to_owned())
        }
        Some(_) => return Err(bad()),
    })
}

/// `GET /events?key_id=&app_id=&account_id=&children=&action=&actor=&from=&to=&limit=&cursor=`
/// (readApiKeys; readAccounts for a child's events). An unknown or foreign
/// `key_id` is 404, as on `/apikeys/{id}/events`.
pub(super) async fn list(
    kw: &Keyward,
    cfg: &HttpConfig,
    req: &Request<'_>,
) -> Result<Response, HttpError> {
    let p = reader(kw, cfg, req).await?;
    let mut n = 50;
    let mut cursor = None;
    let mut f = EventFilter::new();
    let mut allowed = FILTERS.to_vec();
    allowed.extend(["limit", "cursor"]);
    for (name, v) in query(cfg, req.query, &allowed)? {
        match name {
            "limit" => n = limit(cfg, &v)?,
            "cursor" => cursor = Some(v),
            _ => filter(cfg, &mut f, name, &v)?,
        }
    }
    let page_ = kw
        .events_matching(p.actor(), p.account(), &f, n, cursor.as_deref())
        .await
        .map_err(|e| HttpError::from_service(cfg, e))?;
    let items = page_
        .items
        .iter()
        .map(|e| serde_json::to_value(e).unwrap_or(Value::Null))
        .collect();
    Ok(Response::json(200, &page(items, page_.next_cursor)))
}
