//! `"ratelimits"` and `"credits"` in the create and `PATCH` bodies of
//! `/apikeys`, `/apps` and `/accounts`: read and validated before anything
//! is written, set after the record (keeping the other of the two when a
//! `PATCH` names only one), and shown in the answer.

use serde_json::{Map, Value};

use crate::credits::Credits;
use crate::http::body::Fields;
use crate::http::config::HttpConfig;
use crate::http::error::HttpError;
use crate::http::host_user::Caller;
use crate::ratelimit::{LimitOwner, Limits, RateLimit};
use crate::service::Keyward;

/// The body fields this module reads.
pub(super) const FIELDS: [&str; 2] = ["ratelimits", "credits"];

/// What a body asks: each field absent (`None`) or given (`null` clears).
#[derive(Debug, Default)]
pub(super) struct LimitsPatch {
    ratelimits: Option<Vec<RateLimit>>,
    credits: Option<Option<Credits>>,
}

impl LimitsPatch {
    /// Reads (and removes) both fields from `f`, validating them.
    pub(super) fn read(f: &mut Fields<'_>) -> Result<Self, HttpError> {
        let cfg = f.cfg;
        let bad = |field: &'static str, e: serde_json::Error| {
            HttpError::invalid_value(cfg, field, e.to_string())
        };
        let ratelimits = match f.map.remove("ratelimits") {
            None => None,
            Some(Value::Null) => Some(Vec::new()),
            Some(v) => Some(serde_json::from_value(v).map_err(|e| bad("ratelimits", e))?),
        };
        let credits = match f.map.remove("credits") {
            None => None,
            Some(Value::Null) => Some(None),
            Some(v) => Some(Some(
                serde_json::from_value(v).map_err(|e| bad("credits", e))?,
            )),
        };
        let patch = Self {
            ratelimits,
            credits,
        };
        patch
            .over(Limits::new())
            .validate()
            .map_err(|e| HttpError::from_service(cfg, crate::service::invalid_limits(e)))?;
        Ok(patch)
    }

    /// Whether the body named neither field.
    pub(super) fn is_empty(&self) -> bool {
        self.ratelimits.is_none() && self.credits.is_none()
    }

    /// `current` with what the body names replaced.
    fn over(&self, mut current: Limits) -> Limits {
        if let Some(r) = &self.ratelimits {
            current.ratelimits = r.clone();
        }
        if let Some(c) = self.credits {
            current.credits = c;
        }
        current
    }

    /// Sets the owner's limits when the body named any, and adds the
    /// limits as they stand to `out` when it did.
    pub(super) async fn apply(
        self,
        kw: &Keyward,
        cfg: &HttpConfig,
        p: &Caller,
        owner: LimitOwner,
        out: &mut Map<String, Value>,
    ) -> Result<(), HttpError> {
        if self.is_empty() {
            return Ok(());
        }
        let svc = |e| HttpError::from_service(cfg, e);
        let current = kw.limits(p.actor(), &owner).await.map_err(svc)?;
        let set = kw
            .set_limits(p.actor(), &owner, self.over(current))
            .await
            .map_err(svc)?;
        out.insert(
            "ratelimits".into(),
            serde_json::to_value(&set.ratelimits).unwrap_or(Value::Null),
        );
        out.insert(
            "credits".into(),
            serde_json::to_value(set.credits).unwrap_or(Value::Null),
        );
        Ok(())
    }
}

/// `base` with the limits fields.
pub(super) fn fields(base: &[&'static str]) -> Vec<&'static str> {
    let mut v = base.to_vec();
    v.extend(FIELDS);
    v
}
