//! Request bodies: JSON only, at most 64 KiB, unknown fields rejected, and
//! typed field readers that name the field in their 422s.

use std::fmt;
use std::str::FromStr;

use ipnet::IpNet;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::http::config::HttpConfig;
use crate::http::error::HttpError;
use crate::http::headers::Hv;
use crate::permission::PermissionSet;

/// A request body as the adapter read it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Body<'a> {
    /// The whole body (at most [`MAX_BODY_BYTES`](super::MAX_BODY_BYTES)).
    Read(&'a [u8]),
    /// Longer than the limit.
    TooLarge,
}

fn is_json(content_type: &[u8]) -> bool {
    let media = content_type
        .split(|&c| c == b';')
        .next()
        .unwrap_or_default()
        .trim_ascii();
    media.eq_ignore_ascii_case(b"application/json")
}

/// The body as a JSON object whose keys are all in `allowed`. An empty
/// body without `Content-Type` is an empty object when `optional`.
pub(crate) fn object(
    cfg: &HttpConfig,
    body: Body<'_>,
    content_type: Hv<'_>,
    allowed: &[&str],
    optional: bool,
) -> Result<Map<String, Value>, HttpError> {
    let bytes = match body {
        Body::TooLarge => return Err(HttpError::payload_too_large(cfg)),
        Body::Read(b) => b,
    };
    match content_type {
        Hv::Absent if optional && bytes.is_empty() => return Ok(Map::new()),
        Hv::One(ct) if is_json(ct) => {}
        _ => return Err(HttpError::unsupported_media_type(cfg)),
    }
    if optional && bytes.trim_ascii().is_empty() {
        return Ok(Map::new());
    }
    let value = serde_json::from_slice::<Unique>(bytes)
        .map(|u| u.0)
        .map_err(|e| {
            HttpError::invalid_body(
                cfg,
                if e.is_data() {
                    // The only data error `Unique` raises: "duplicate field …".
                    format!("request body has a {e}")
                } else {
                    format!(
                        "request body is not valid JSON (line {}, column {})",
                        e.line(),
                        e.column()
                    )
                },
            )
        })?;
    let Value::Object(map) = value else {
        return Err(HttpError::invalid_body(
            cfg,
            "request body must be a JSON object",
        ));
    };
    if let Some(unknown) = map.keys().find(|k| !allowed.contains(&k.as_str())) {
        let shown: String = unknown.chars().take(64).collect();
        return Err(HttpError::invalid_body(
            cfg,
            format!(
                "unknown field `{shown}`; expected one of: {}",
                allowed.join(", ")
            ),
        ));
    }
    Ok(map)
}

/// A JSON value in which no object has a key twice: serde_json keeps the
/// last of duplicates silently, so two readers of one body (a proxy, a
/// WAF, this API) could each see a different request.
struct Unique(Value);

impl<'de> Deserialize<'de> for Unique {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(UniqueVisitor).map(Unique)
    }
}

struct UniqueVisitor;

impl<'de> Visitor<'de> for UniqueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Unique::deserialize(d).map(|u| u.0)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(Unique(v)) = seq.next_element()? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                let shown: String = key.chars().take(64).collect();
                return Err(de::Error::custom(format_args!("duplicate field `{shown}`")));
            }
            let Unique(v) = map.next_value()?;
            out.insert(key, v);
        }
        Ok(Value::Object(out))
    }
}

/// Typed readers over a JSON object. `Option<Option<T>>`: absent, null,
/// value.
pub(crate) struct Fields<'c> {
    pub(crate) cfg: &'c HttpConfig,
    pub(crate) map: Map<String, Value>,
}

impl Fields<'_> {
    fn bad(&self, field: &'static str, reason: &str) -> HttpError {
        HttpError::invalid_value(self.cfg, field, reason)
    }

    /// `Some(v)` when present (possibly `null`).
    fn raw(&mut self, field: &'static str) -> Option<Value> {
        self.map.remove(field)
    }

    pub(crate) fn string(
        &mut self,
        field: &'static str,
    ) -> Result<Option<Option<String>>, HttpError> {
        match self.raw(field) {
            None => Ok(None),
            Some(Value::Null) => Ok(Some(None)),
            Some(Value::String(s)) => Ok(Some(Some(s))),
            Some(_) => Err(self.bad(field, "must be a string")),
        }
    }

    pub(crate) fn required_string(&mut self, field: &'static str) -> Result<String, HttpError> {
        match self.string(field)? {
            Some(Some(s)) => Ok(s),
            _ => Err(self.bad(field, "is required")),
        }
    }

    pub(crate) fn permissions(
        &mut self,
        field: &'static str,
    ) -> Result<Option<PermissionSet>, HttpError> {
        match self.raw(field) {
            None => Ok(None),
            Some(Value::Array(items)) => {
                let mut names = Vec::with_capacity(items.len());
                for item in &items {
                    match item {
                        Value::String(s) => names.push(s.as_str()),
                        _ => return Err(self.bad(field, "must be an array of strings")),
                    }
                }
                PermissionSet::parse(names)
                    .map(Some)
                    .map_err(|e| self.bad(field, &e.to_string()))
            }
            Some(_) => Err(self.bad(field, "must be an array of strings")),
        }
    }

    pub(crate) fn time(
        &mut self,
        field: &'static str,
    ) -> Result<Option<Option<OffsetDateTime>>, HttpError> {
        match self.raw(field) {
            None => Ok(None),
            Some(Value::Null) => Ok(Some(None)),
            Some(Value::String(s)) => OffsetDateTime::parse(&s, &Rfc3339)
                .map(|t| Some(Some(t)))
                .map_err(|_| self.bad(field, "must be an RFC 3339 date-time")),
            Some(_) => Err(self.bad(field, "must be an RFC 3339 date-time string or null")),
        }
    }

    pub(crate) fn cidrs(&mut self, field: &'static str) -> Result<Option<Vec<IpNet>>, HttpError> {
        match self.raw(field) {
            None => Ok(None),
            Some(Value::Null) => Ok(Some(Vec::new())),
            Some(Value::Array(items)) => {
                let mut nets = Vec::with_capacity(items.len());
                for item in &items {
                    let Value::String(s) = item else {
                        return Err(self.bad(field, "must be an array of CIDR strings"));
                    };
                    let net = IpNet::from_str(s)
                        .or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from))
                        .map_err(|_| self.bad(field, "must be an array of CIDR strings"))?;
                    nets.push(net);
                }
                Ok(Some(nets))
            }
            Some(_) => Err(self.bad(field, "must be an array of CIDR strings")),
        }
    }

    /// An array of strings (`null`: empty), checked further by the
    /// service (`allowed_origins`).
    pub(crate) fn strings(
        &mut self,
        field: &'static str,
    ) -> Result<Option<Vec<String>>, HttpError> {
        match self.raw(field) {
            None => Ok(None),
            Some(Value::Null) => Ok(Some(Vec::new())),
            Some(Value::Array(items)) => items
                .into_iter()
                .map(|item| match item {
                    Value::String(s) => Ok(s),
                    _ => Err(self.bad(field, "must be an array of strings")),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(_) => Err(self.bad(field, "must be an array of strings")),
        }
    }

    pub(crate) fn object(&mut self, field: &'static str) -> Result<Option<Value>, HttpError> {
        match self.raw(field) {
            None => Ok(None),
            Some(Value::Null) => Ok(Some(Value::Object(Map::new()))),
            Some(v @ Value::Object(_)) => Ok(Some(v)),
            Some(_) => Err(self.bad(field, "must be a JSON object")),
        }
    }

    pub(crate) fn seconds(&mut self, field: &'static str) -> Result<Option<i64>, HttpError> {
        match self.raw(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => n
                .as_i64()
                .map(Some)
                .ok_or_else(|| self.bad(field, "must be an integer number of seconds")),
            Some(_) => Err(self.bad(field, "must be an integer number of seconds")),
        }
    }
}
