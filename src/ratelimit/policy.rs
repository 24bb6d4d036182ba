//! [`RateLimit`] and [`Limits`]: what an owner (key, application, account)
//! is allowed, as set through the library or the management API.

use serde::{Deserialize, Serialize};

use crate::context::Label;
use crate::credits::Credits;

/// Most rate limits one owner may have.
pub const MAX_RATE_LIMITS: usize = 16;
/// Largest `limit` and `burst`.
pub const MAX_LIMIT: u32 = 1_000_000_000;
/// Longest `duration_ms`: 31 days.
pub const MAX_DURATION_MS: u64 = 31 * 24 * 3600 * 1000;

/// One named rate limit: `limit` calls per `duration_ms`, at most `burst`
/// at once (default: `limit`), enforced with GCRA (the generic cell rate
/// algorithm: calls are spaced `duration_ms / limit` apart on average, and
/// a client that was idle may spend up to `burst` at once).
///
/// `auto_apply` limits (the default) count on every verification of the
/// owner's keys; the others only on routes that name them
/// ([`VerifyContext::limit`](crate::VerifyContext::limit)).
///
/// ```
/// use keyward::{Label, RateLimit};
/// let per_minute = RateLimit::new(Label::from_static("requests"), 100, 60_000);
/// assert_eq!(per_minute.burst, 100);
/// assert!(per_minute.auto_apply);
/// let expensive = RateLimit::new(Label::from_static("expensive"), 10, 60_000).burst(2).manual();
/// assert!(!expensive.auto_apply);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[non_exhaustive]
pub struct RateLimit {
    /// The limit's name, unique per owner (for example `requests`).
    pub name: Label,
    /// Calls allowed per `duration_ms` (1 to 10^9).
    pub limit: u32,
    /// The window in milliseconds (1 ms to 31 days).
    pub duration_ms: u64,
    /// Calls allowed at once after an idle period (1 to 10^9).
    pub burst: u32,
    /// Whether every verification counts against it.
    pub auto_apply: bool,
}

impl RateLimit {
    /// `limit` calls per `duration_ms`, burst `limit`, auto-applied.
    pub fn new(name: Label, limit: u32, duration_ms: u64) -> Self {
        Self {
            name,
            limit,
            duration_ms,
            burst: limit,
            auto_apply: true,
        }
    }

    /// With this burst.
    pub fn burst(mut self, burst: u32) -> Self {
        self.burst = burst;
        self
    }

    /// Applied only on routes that name it.
    pub fn manual(mut self) -> Self {
        self.auto_apply = false;
        self
    }

    /// Nanoseconds between two calls at the sustained rate (at least 1).
    pub(crate) fn interval_nanos(&self) -> i64 {
        let total = i128::from(self.duration_ms) * 1_000_000;
        (total / i128::from(self.limit.max(1))).clamp(1, i128::from(i64::MAX)) as i64
    }

    /// Checks the bounds; `Err((field, reason))` naming the field.
    fn check(&self) -> Result<(), (&'static str, &'static str)> {
        if self.limit == 0 || self.limit > MAX_LIMIT {
            return Err(("limit", "must be between 1 and 1000000000"));
        }
        if self.duration_ms == 0 || self.duration_ms > MAX_DURATION_MS {
            return Err(("duration_ms", "must be between 1 and 2678400000 (31 days)"));
        }
        if self.burst == 0 || self.burst > MAX_LIMIT {
            return Err(("burst", "must be between 1 and 1000000000"));
        }
        if i128::from(self.duration_ms) * 1_000_000 < i128::from(self.limit) {
            return Err(("limit", "more than one call per nanosecond"));
        }
        Ok(())
    }
}

/// The wire form: `burst` and `auto_apply` optional.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RateLimitWire {
    name: Label,
    limit: u32,
    duration_ms: u64,
    #[serde(default)]
    burst: Option<u32>,
    #[serde(default = "auto_apply_default")]
    auto_apply: bool,
}

fn auto_apply_default() -> bool {
    true
}

impl<'de> Deserialize<'de> for RateLimit {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let w = RateLimitWire::deserialize(d)?;
        Ok(Self {
            name: w.name,
            limit: w.limit,
            duration_ms: w.duration_ms,
            burst: w.burst.unwrap_or(w.limit),
            auto_apply: w.auto_apply,
        })
    }
}

/// An owner's limits: named rate limits and usage credits.
///
/// ```
/// use keyward::{Credits, Label, Limits, RateLimit, Refill, RefillInterval};
/// let limits = Limits::new()
///     .ratelimit(RateLimit::new(Label::from_static("requests"), 100, 60_000))
///     .credits(Credits::new(1000).refill(Refill::new(RefillInterval::Daily, 1000)));
/// assert!(limits.validate().is_ok());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Limits {
    /// Named rate limits (at most 16, names unique).
    #[serde(default)]
    pub ratelimits: Vec<RateLimit>,
    /// Usage credits, if metered.
    #[serde(default)]
    pub credits: Option<Credits>,
}

/// Why [`Limits`] are invalid: the field (a JSON path such as
/// `ratelimits[1].burst`) and the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {field}: {reason}")]
pub struct InvalidLimits {
    /// The field, as a JSON path.
    pub field: String,
    /// Why.
    pub reason: &'static str,
}

impl Limits {
    /// No limits.
    pub fn new() -> Self {
        Self::default()
    }

    /// With one more rate limit.
    pub fn ratelimit(mut self, limit: RateLimit) -> Self {
        self.ratelimits.push(limit);
        self
    }

    /// With these credits.
    pub fn credits(mut self, credits: Credits) -> Self {
        self.credits = Some(credits);
        self
    }

    /// Whether nothing is limited.
    pub fn is_empty(&self) -> bool {
        self.ratelimits.is_empty() && self.credits.is_none()
    }

    /// Checks every bound.
    ///
    /// # Errors
    /// [`InvalidLimits`] naming the first offending field.
    pub fn validate(&self) -> Result<(), InvalidLimits> {
        if self.ratelimits.len() > MAX_RATE_LIMITS {
            return Err(InvalidLimits {
                field: "ratelimits".into(),
                reason: "at most 16 rate limits",
            });
        }
        for (i, r) in self.ratelimits.iter().enumerate() {
            r.check().map_err(|(field, reason)| InvalidLimits {
                field: format!("ratelimits[{i}].{field}"),
                reason,
            })?;
            if self.ratelimits[..i].iter().any(|o| o.name == r.name) {
                return Err(InvalidLimits {
                    field: format!("ratelimits[{i}].name"),
                    reason: "duplicate name",
                });
            }
        }
        if let Some(c) = &self.credits {
            c.check().map_err(|(field, reason)| InvalidLimits {
                field: format!("credits.{field}"),
                reason,
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &'static str) -> Label {
        Label::from_static(s)
    }

    #[test]
    fn wire_defaults_burst_to_limit_and_auto_apply_on() {
        let r: RateLimit =
            serde_json::from_str(r#"{"name":"requests","limit":5,"duration_ms":60000}"#)
                .expect("parses");
        assert_eq!(r, RateLimit::new(name("requests"), 5, 60_000));
        let json = serde_json::to_value(&r).expect("serializes");
        assert_eq!(json["burst"], 5);
        assert_eq!(json["auto_apply"], true);
    }

    #[test]
    fn unknown_fields_and_bad_names_are_refused() {
        assert!(
            serde_json::from_str::<RateLimit>(
                r#"{"name":"r","limit":5,"duration_ms":1,"extra":1}"#
            )
            .is_err()
        );
        assert!(
            serde_json::from_str::<RateLimit>(r#"{"name":"Bad Name","limit":5,"duration_ms":1}"#)
                .is_err()
        );
    }

    #[test]
    fn validation_names_the_field() {
        let bad = |l: Limits| l.validate().expect_err("invalid").field;
        let ok = RateLimit::new(name("a"), 5, 1000);
        assert_eq!(
            bad(Limits::new().ratelimit(ok.clone()).ratelimit(RateLimit {
                limit: 0,
                ..ok.clone()
            })),
            "ratelimits[1].limit"
        );
        assert_eq!(
            bad(Limits::new().ratelimit(RateLimit {
                duration_ms: 0,
                ..ok.clone()
            })),
            "ratelimits[0].duration_ms"
        );
        assert_eq!(
            bad(Limits::new().ratelimit(ok.clone().burst(0))),
            "ratelimits[0].burst"
        );
        assert_eq!(
            bad(Limits::new().ratelimit(ok.clone()).ratelimit(ok.clone())),
            "ratelimits[1].name"
        );
        let many = (0..17).fold(Limits::new(), |l, i| {
            l.ratelimit(RateLimit::new(
                Label::new(&format!("n{i}")).expect("label"),
                1,
                1,
            ))
        });
        assert_eq!(bad(many), "ratelimits");
        assert!(Limits::new().ratelimit(ok).validate().is_ok());
    }

    #[test]
    fn interval_is_duration_over_limit() {
        assert_eq!(
            RateLimit::new(name("a"), 5, 60_000).interval_nanos(),
            12_000_000_000
        );
        assert_eq!(
            RateLimit::new(name("a"), 100, 1000).interval_nanos(),
            10_000_000
        );
    }
}
