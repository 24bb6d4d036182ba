//! [`RouteUsage`]: how a route's verified requests count in usage, and
//! what they cost against the owner's limits.

use crate::context::Label;

/// The call origin and category a route's verifications count under
/// (the usage dashboard's Call Origin filter and its categories), the
/// manual rate limit it applies and the credits it costs. Declared by the
/// host per route or router: axum
/// `route_layer(keyward::http::axum::usage(&http, Label::MCP, "realtime"))`
/// or `require(&http, "perm").usage(..).limit("expensive").cost(5)`,
/// actix-web `.wrap(keyward::http::actix::usage(Label::MCP, "realtime"))`
/// or `RequirePermission::new("perm").limit("expensive").cost(5)`. Routes
/// that declare nothing count as origin `api`, category `default`, apply
/// only auto-applied limits and cost 1 credit.
///
/// ```
/// use keyward::Label;
/// use keyward::http::RouteUsage;
///
/// let mcp = RouteUsage::new(Label::MCP, "realtime");
/// assert_eq!((mcp.origin.as_str(), mcp.category.as_str()), ("mcp", "realtime"));
/// assert_eq!(RouteUsage::default(), RouteUsage::API);
/// let report = RouteUsage::API.limit("expensive").cost(5);
/// assert_eq!(report.limit.map(|l| l.to_string()).as_deref(), Some("expensive"));
/// assert_eq!(report.cost, 5);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RouteUsage {
    /// The call origin (`api`, `mcp`, …).
    pub origin: Label,
    /// The usage category (`default`, `realtime`, `analytics`, …).
    pub category: Label,
    /// A rate limit of the owner that is not auto-applied but this route
    /// applies, by name ([`VerifyContext::limit`](crate::VerifyContext::limit)).
    pub limit: Option<Label>,
    /// The credits a call of this route costs (default 1;
    /// [`VerifyContext::cost`](crate::VerifyContext::cost)).
    pub cost: u32,
}

impl RouteUsage {
    /// Origin `api`, category `default`: routes that declare nothing.
    pub const API: RouteUsage = RouteUsage {
        origin: Label::API,
        category: Label::DEFAULT,
        limit: None,
        cost: 1,
    };

    /// `origin` and the category named `category`.
    ///
    /// # Panics
    /// When `category` is not a valid [`Label`] (at router construction,
    /// like an invalid route path).
    pub fn new(origin: Label, category: &str) -> Self {
        let category = Label::new(category)
            .unwrap_or_else(|e| panic!("keyward::http::RouteUsage: category: {e}"));
        Self {
            origin,
            category,
            ..Self::API
        }
    }

    /// The same origin, category, limit and cost under the call `origin`
    /// and the category named `category` (see [`new`](Self::new)).
    ///
    /// # Panics
    /// When `category` is not a valid [`Label`].
    pub fn labels(self, origin: Label, category: &str) -> Self {
        Self {
            limit: self.limit,
            cost: self.cost,
            ..Self::new(origin, category)
        }
    }

    /// Applies the owner's rate limit named `name` too (one configured
    /// with `auto_apply: false`, for expensive routes).
    ///
    /// # Panics
    /// When `name` is not a valid [`Label`] (at router construction).
    pub fn limit(mut self, name: &str) -> Self {
        let name =
            Label::new(name).unwrap_or_else(|e| panic!("keyward::http::RouteUsage: limit: {e}"));
        self.limit = Some(name);
        self
    }

    /// A call of this route costs `credits` (0 spends none).
    pub fn cost(mut self, credits: u32) -> Self {
        self.cost = credits;
        self
    }
}

impl Default for RouteUsage {
    fn default() -> Self {
        Self::API
    }
}
