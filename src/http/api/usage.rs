//! `GET /usage`: the usage dashboard's data, the acting account's keys,
//! applications or child accounts by volume with totals and a series.

use serde_json::{Value, json};
use time::Duration;

use super::keys::{instant, limit, query};
use super::sessions::rfc3339;
use super::{Request, Response};
use crate::context::Label;
use crate::http::config::HttpConfig;
use crate::http::error::HttpError;
use crate::http::host_user::Caller;
use crate::permission::Permission;
use crate::service::{Granularity, Keyward, UsageReport};
use crate::store::UsageGroupKind;

const PARAMS: &[&str] = &[
    "from",
    "to",
    "granularity",
    "origin",
    "category",
    "group_by",
    "limit",
    "cursor",
];

fn label(cfg: &HttpConfig, field: &'static str, v: &str) -> Result<Label, HttpError> {
    Label::new(v).map_err(|e| HttpError::invalid_value(cfg, field, e.to_string()))
}

/// `GET /usage?from=&to=&granularity=hour|day&origin=&category=&group_by=key|app|account&limit=&cursor=`
/// (readApiKeys). Defaults: the last 24 hours, hourly, every origin and
/// category, by key, 50 groups.
pub(super) async fn report(
    kw: &Keyward,
    cfg: &HttpConfig,
    req: &Request<'_>,
) -> Result<Response, HttpError> {
    let permission = Permission::read_api_keys();
    let p = Caller::of(kw, cfg, req.user, &req.headers, req.client_ip).await?;
    if !p.has(&permission) {
        return Err(HttpError::insufficient_scope(cfg, permission.as_str()));
    }
    let (mut from, mut to) = (None, None);
    let mut granularity = Granularity::Hour;
    let (mut origin, mut category, mut cursor) = (None, None, None);
    let mut n = 50;
    let mut group_by = UsageGroupKind::Key;
    for (name, v) in query(cfg, req.query, PARAMS)? {
        match name {
            "from" => from = Some(instant(cfg, "from", &v)?),
            "to" => to = Some(instant(cfg, "to", &v)?),
            "granularity" => {
                granularity = match v.as_str() {
                    "hour" => Granularity::Hour,
                    "day" => Granularity::Day,
                    _ => {
                        return Err(HttpError::invalid_value(
                            cfg,
                            "granularity",
                            "must be `hour` or `day`",
                        ));
                    }
                };
            }
            "origin" => origin = Some(label(cfg, "origin", &v)?),
            "category" => category = Some(label(cfg, "category", &v)?),
            "group_by" => {
                group_by = match v.as_str() {
                    "key" => UsageGroupKind::Key,
                    "app" => UsageGroupKind::App,
                    "account" => UsageGroupKind::Account,
                    _ => {
                        return Err(HttpError::invalid_value(
                            cfg,
                            "group_by",
                            "must be `key`, `app` or `account`",
                        ));
                    }
                };
            }
            "limit" => n = limit(cfg, &v)?,
            "cursor" => cursor = Some(v),
            _ => {}
        }
    }
    let to = to.unwrap_or_else(|| kw.now());
    let from = from.unwrap_or(to - Duration::days(1));
    let mut r = UsageReport::between(from, to)
        .granularity(granularity)
        .group_by(group_by)
        .limit(n);
    r.origin = origin;
    r.category = category;
    r.cursor = cursor;
    let page = kw
        .usage_report(p.actor(), p.account(), r)
        .await
        .map_err(|e| HttpError::from_service(cfg, e))?;
    let items: Vec<Value> = page
        .items
        .iter()
        .map(|g| {
            let series: Vec<Value> = g
                .series
                .iter()
                .map(|pt| {
                    json!({
                        "at": rfc3339(pt.at),
                        "successes": pt.successes,
                        "failures": pt.failures,
                        "rate_limited": pt.rate_limited,
                        "usage_exceeded": pt.usage_exceeded,
                    })
                })
                .collect();
            json!({
                "id": g.id,
                "name": g.name,
                "successes": g.successes,
                "failures": g.failures,
                "rate_limited": g.rate_limited,
                "usage_exceeded": g.usage_exceeded,
                "series": series,
            })
        })
        .collect();
    Ok(Response::json(
        200,
        &json!({
            "from": rfc3339(from),
            "to": rfc3339(to),
            "group_by": group_by.as_str(),
            "items": items,
            "next_cursor": page.next_cursor,
        }),
    ))
}
