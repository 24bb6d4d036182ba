//! [`LimitsChange`]: the rate limits and credits a create or update of a
//! key, application or account sets, as `"ratelimits"` / `"credits"` do
//! in the HTTP bodies.

use super::policy::{InvalidLimits, Limits, RateLimit};
use crate::credits::Credits;

/// What a [`NewKey`](crate::NewKey), [`KeyUpdate`](crate::KeyUpdate),
/// [`NewApp`](crate::NewApp), [`AppUpdate`](crate::AppUpdate),
/// [`NewAccount`](crate::NewAccount) or
/// [`AccountUpdate`](crate::AccountUpdate) sets of its owner's limits:
/// each half absent (`None`: kept as it is), or given (replacing it; an
/// empty list or `Some(None)` clears). Validated before anything is
/// written, then set after the record, with the same rules and audit as
/// [`Keyward::set_limits`](crate::Keyward::set_limits).
///
/// ```
/// use keyward::{Credits, Label, LimitsChange, NewKey, RateLimit};
/// let new = NewKey::new("metered")
///     .ratelimit(RateLimit::new(Label::from_static("requests"), 100, 60_000))
///     .credits(Credits::new(1_000));
/// assert_eq!(new.limits.ratelimits.as_ref().map(Vec::len), Some(1));
/// assert!(LimitsChange::default().is_empty());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LimitsChange {
    /// The named rate limits (`None`: unchanged).
    pub ratelimits: Option<Vec<RateLimit>>,
    /// The credits (`None`: unchanged; `Some(None)`: none).
    pub credits: Option<Option<Credits>>,
}

impl LimitsChange {
    /// Whether it changes nothing.
    pub fn is_empty(&self) -> bool {
        self.ratelimits.is_none() && self.credits.is_none()
    }

    /// With one more rate limit (starting from none when unset).
    pub(crate) fn push(&mut self, limit: RateLimit) {
        self.ratelimits.get_or_insert_with(Vec::new).push(limit);
    }

    /// `current` with what the change names replaced.
    pub(crate) fn over(&self, mut current: Limits) -> Limits {
        if let Some(r) = &self.ratelimits {
            current.ratelimits = r.clone();
        }
        if let Some(c) = self.credits {
            current.credits = c;
        }
        current
    }

    /// Checks what it names, as [`Limits::validate`] does.
    ///
    /// # Errors
    /// [`InvalidLimits`] naming the field.
    pub(crate) fn validate(&self) -> Result<(), InvalidLimits> {
        self.over(Limits::new()).validate()
    }
}
