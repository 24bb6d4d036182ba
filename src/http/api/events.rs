//! `GET /events`: the acting account's audit log, newest first, optionally
//! of one key, with a keyset cursor (one index range per filter).

use serde_json::Value;

use super::keys::{limit, page, query};
use super::{Request, Response};
use crate::http::config::HttpConfig;
use crate::http::error::HttpError;
use crate::http::host_user::Caller;
use crate::id::KeyId;
use crate::permission::Permission;
use crate::service::Keyward;

/// `GET /events?key_id=&limit=&cursor=` (readApiKeys). An unknown or
/// foreign `key_id` is 404, as on `/apikeys/{id}/events`.
pub(super) async fn list(
    kw: &Keyward,
    cfg: &HttpConfig,
    req: &Request<'_>,
) -> Result<Response, HttpError> {
    let permission = Permission::read_api_keys();
    let p = Caller::of(kw, cfg, req.user, &req.headers, req.client_ip).await?;
    if !p.has(&permission) {
        return Err(HttpError::insufficient_scope(cfg, permission.as_str()));
    }
    let mut n = 50;
    let mut cursor = None;
    let mut key = None;
    for (name, v) in query(cfg, req.query, &["key_id", "limit", "cursor"])? {
        match name {
            "limit" => n = limit(cfg, &v)?,
            "key_id" => {
                key = Some(KeyId::new(&v).map_err(|_| HttpError::not_found(cfg, "key"))?);
            }
            _ => cursor = Some(v),
        }
    }
    let page_ = kw
        .events(p.actor(), p.account(), key.as_ref(), n, cursor.as_deref())
        .await
        .map_err(|e| HttpError::from_service(cfg, e))?;
    let items = page_
        .items
        .iter()
        .map(|e| serde_json::to_value(e).unwrap_or(Value::Null))
        .collect();
    Ok(Response::json(200, &page(items, page_.next_cursor)))
}
