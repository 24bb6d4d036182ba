//! The rate-limit response headers of the IETF httpapi draft
//! (draft-ietf-httpapi-ratelimit-headers): `RateLimit-Policy` names the
//! limit (`q` calls per `w` seconds), `RateLimit` where the request stands
//! (`r` remaining, `t` seconds until the limit is fully replenished; on a
//! refusal until the next call is allowed).

use crate::ratelimit::LimitStatus;

/// The `RateLimit-Policy` and `RateLimit` headers for a successful
/// response to `principal`'s request (none when no limit applied), for
/// hosts that show clients where they stand:
///
/// ```
/// # use keyward::*;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let kw = Keyward::builder().store(MemoryStore::new()).build()?;
/// # let perms = PermissionSet::parse(["readApplications"])?;
/// # let account = kw.create_account(Actor::System, NewAccount::new("acme", perms.clone())).await?;
/// # let issued = kw.issue_key(Actor::System, &account.id, NewKey::new("ci").permissions(perms)).await?;
/// let limit = RateLimit::new(Label::from_static("requests"), 10, 60_000);
/// kw.set_limits(Actor::System, &LimitOwner::Key(issued.key.id), Limits::new().ratelimit(limit)).await?;
/// let p = kw.verify(issued.key.id.as_str(), issued.secret.expose(), VerifyContext::new()).await?;
/// let headers = keyward::http::rate_limit_headers(&p);
/// assert_eq!(headers[0], ("ratelimit-policy", "\"requests\";q=10;w=60".to_owned()));
/// assert_eq!(headers[1], ("ratelimit", "\"requests\";r=9;t=6".to_owned()));
/// # Ok(()) }
/// ```
pub fn rate_limit_headers(principal: &crate::Principal) -> Vec<(&'static str, String)> {
    let mut h = Vec::new();
    if let Some(s) = principal.rate_limit() {
        push_headers(&mut h, &s);
    }
    h
}

/// The limit status whose headers a successful response to `principal`
/// carries: `None` unless the host turned them on
/// ([`HttpConfig::rate_limit_headers`](crate::http::HttpConfig::rate_limit_headers))
/// and a limit applied.
#[cfg(any(feature = "axum", feature = "actix"))]
#[inline]
pub(crate) fn on_success(
    cfg: &crate::http::HttpConfig,
    principal: Option<&crate::Principal>,
) -> Option<LimitStatus> {
    if !cfg.rate_limit_headers_on_success {
        return None;
    }
    principal?.rate_limit()
}

/// `RateLimit-Policy` and `RateLimit` for `s`, as a list.
#[cfg(any(feature = "axum", feature = "actix"))]
pub(crate) fn headers_of(s: &LimitStatus) -> Vec<(&'static str, String)> {
    let mut h = Vec::with_capacity(2);
    push_headers(&mut h, s);
    h
}

/// `RateLimit-Policy` and `RateLimit` for `s`.
pub(crate) fn push_headers(h: &mut Vec<(&'static str, String)>, s: &LimitStatus) {
    let window = s.duration_ms.div_ceil(1000).max(1);
    h.push((
        "ratelimit-policy",
        format!("\"{}\";q={};w={window}", s.name, s.limit),
    ));
    h.push((
        "ratelimit",
        format!(
            "\"{}\";r={};t={}",
            s.name,
            s.remaining,
            s.reset_ms.div_ceil(1000)
        ),
    ));
}

#[cfg(any(feature = "axum", feature = "actix"))]
/// Adds the `RateLimit` and `Credits` schemas to the OpenAPI document, and
/// `ratelimits` / `credits` to the create and update bodies of keys,
/// applications and accounts.
pub(crate) fn document_limits(doc: &mut serde_json::Value) {
    use serde_json::json;
    let Some(schemas) = doc
        .pointer_mut("/components/schemas")
        .and_then(|s| s.as_object_mut())
    else {
        return;
    };
    schemas.insert(
        "RateLimit".into(),
        json!({
            "type": "object", "additionalProperties": false, "required": ["name", "limit", "duration_ms"],
            "properties": {
                "name": { "type": "string", "pattern": "^[a-z0-9_.-]{1,32}$" },
                "limit": { "type": "integer", "minimum": 1, "maximum": crate::ratelimit::MAX_LIMIT },
                "duration_ms": { "type": "integer", "minimum": 1, "maximum": crate::ratelimit::MAX_DURATION_MS },
                "burst": { "type": "integer", "minimum": 1, "maximum": crate::ratelimit::MAX_LIMIT, "description": "Default: limit" },
                "auto_apply": { "type": "boolean", "description": "Default true; false: only on routes that name it" }
            }
        }),
    );
    schemas.insert(
        "Credits".into(),
        json!({
            "type": ["object", "null"], "additionalProperties": false, "required": ["remaining"],
            "properties": {
                "remaining": { "type": "integer", "minimum": 0, "maximum": crate::credits::MAX_CREDITS },
                "refill": {
                    "type": ["object", "null"], "additionalProperties": false, "required": ["interval", "amount"],
                    "properties": {
                        "interval": { "type": "string", "enum": ["daily", "monthly"] },
                        "amount": { "type": "integer", "minimum": 1, "maximum": crate::credits::MAX_CREDITS }
                    }
                }
            }
        }),
    );
    for body in [
        "NewKey",
        "KeyUpdate",
        "NewApp",
        "AppUpdate",
        "NewAccount",
        "AccountUpdate",
    ] {
        if let Some(props) = schemas
            .get_mut(body)
            .and_then(|b| b.get_mut("properties"))
            .and_then(|p| p.as_object_mut())
        {
            props.insert(
                "ratelimits".into(),
                json!({ "type": ["array", "null"], "maxItems": crate::ratelimit::MAX_RATE_LIMITS, "items": { "$ref": "#/components/schemas/RateLimit" } }),
            );
            props.insert(
                "credits".into(),
                json!({ "$ref": "#/components/schemas/Credits" }),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::Label;

    #[test]
    fn headers_follow_the_draft() {
        let mut h = Vec::new();
        let s = LimitStatus {
            name: Label::from_static("requests"),
            limit: 5,
            duration_ms: 60_000,
            remaining: 0,
            reset_ms: 11_001,
        };
        push_headers(&mut h, &s);
        assert_eq!(
            h,
            [
                ("ratelimit-policy", "\"requests\";q=5;w=60".to_owned()),
                ("ratelimit", "\"requests\";r=0;t=12".to_owned()),
            ]
        );
    }
}
