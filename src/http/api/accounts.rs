//! `/accounts…`: the acting account's customer (child) accounts: create,
//! list, get, update (name, permissions, status).

use serde_json::{Map, Value};

use super::keys::{limit, page, query};
use super::sessions::rfc3339;
use super::{Op, Request, Response};
use crate::account::{Account, AccountStatus, AccountUpdate, NewAccount};
use crate::http::body::{self, Fields};
use crate::http::config::HttpConfig;
use crate::http::error::HttpError;
use crate::http::host_user::Caller;
use crate::id::AccountId;
use crate::permission::Permission;
use crate::service::{Keyward, ListAccounts};

const CREATE_FIELDS: &[&str] = &["name", "permissions"];
const UPDATE_FIELDS: &[&str] = &["name", "permissions", "status"];

/// The account record in its serde form, as a JSON object.
fn record(account: &Account) -> Map<String, Value> {
    match serde_json::to_value(account) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    }
}

fn status(cfg: &HttpConfig, v: &str) -> Result<AccountStatus, HttpError> {
    AccountStatus::parse(v)
        .ok_or_else(|| HttpError::invalid_value(cfg, "status", "must be active or inactive"))
}

pub(super) async fn handle(
    kw: &Keyward,
    cfg: &HttpConfig,
    op: Op,
    req: &Request<'_>,
) -> Result<Response, HttpError> {
    let permission = match op {
        Op::ListAccounts | Op::GetAccount => Permission::read_accounts(),
        _ => Permission::write_accounts(),
    };
    let p = Caller::of(kw, cfg, req.user, &req.headers, req.client_ip).await?;
    if !p.has(&permission) {
        return Err(HttpError::insufficient_scope(cfg, permission.as_str()));
    }
    match op {
        Op::CreateAccount => create(kw, cfg, &p, req).await,
        Op::ListAccounts => list(kw, cfg, &p, req).await,
        _ => {
            let id = req
                .id
                .and_then(|s| AccountId::new(s).ok())
                .ok_or_else(|| HttpError::not_found(cfg, "account"))?;
            if op == Op::GetAccount {
                let a = kw
                    .get_account(p.actor(), &id)
                    .await
                    .map_err(|e| HttpError::from_service(cfg, e))?;
                Ok(Response::json(200, &Value::Object(record(&a))))
            } else {
                update(kw, cfg, &p, &id, req).await
            }
        }
    }
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
    let name = f.required_string("name")?;
    let permissions = f
        .permissions("permissions")?
        .ok_or_else(|| HttpError::invalid_value(cfg, "permissions", "is required"))?;
    let new = NewAccount::new(name, permissions).parent(*p.account());
    let a = kw
        .create_account(p.actor(), new)
        .await
        .map_err(|e| HttpError::from_service(cfg, e))?;
    let mut out = record(&a);
    limits
        .apply(
            kw,
            cfg,
            p,
            crate::ratelimit::LimitOwner::Account(a.id),
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
    let mut l = ListAccounts::new();
    for (name, v) in query(cfg, req.query, &["q", "status", "limit", "cursor"])? {
        match name {
            "q" => l.q = Some(v),
            "status" => l.status = Some(status(cfg, &v)?),
            "limit" => l.limit = limit(cfg, &v)?,
            _ => l.cursor = Some(v),
        }
    }
    let page_ = kw
        .list_accounts(p.actor(), p.account(), l)
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
    id: &AccountId,
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
    let mut u = AccountUpdate::new();
    u.name = match f.string("name")? {
        None => None,
        Some(Some(n)) => Some(n),
        Some(None) => return Err(HttpError::invalid_value(cfg, "name", "must not be null")),
    };
    u.permissions = f.permissions("permissions")?;
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
        .update_account(p.actor(), id, u)
        .await
        .map_err(|e| HttpError::from_service(cfg, e))?;
    let mut out = record(&updated.account);
    limits
        .apply(
            kw,
            cfg,
            p,
            crate::ratelimit::LimitOwner::Account(*id),
            &mut out,
        )
        .await?;
    if let Some(at) = updated.effective_by {
        out.insert("effective_by".into(), rfc3339(at));
    }
    Ok(Response::json(200, &Value::Object(out)))
}
