//! [`RouteUsage`]: how a route's verified requests count in usage.

use crate::context::Label;

/// The call origin and category a route's verifications count under
/// (the usage dashboard's Call Origin filter and its categories). Declared
/// by the host per route or router: axum
/// `route_layer(keyward::http::axum::usage(&http, Label::MCP, "realtime"))`
/// or `require(&http, "perm").usage(..)`, actix-web
/// `.wrap(keyward::http::actix::usage(Label::MCP, "realtime"))`. Routes
/// that declare nothing count as origin `api`, category `default`.
///
/// ```
/// use keyward::Label;
/// use keyward::http::RouteUsage;
///
/// let mcp = RouteUsage::new(Label::MCP, "realtime");
/// assert_eq!((mcp.origin.as_str(), mcp.category.as_str()), ("mcp", "realtime"));
/// assert_eq!(RouteUsage::default(), RouteUsage::API);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RouteUsage {
    /// The call origin (`api`, `mcp`, …).
    pub origin: Label,
    /// The usage category (`default`, `realtime`, `analytics`, …).
    pub category: Label,
}

impl RouteUsage {
    /// Origin `api`, category `default`: routes that declare nothing.
    pub const API: RouteUsage = RouteUsage {
        origin: Label::API,
        category: Label::DEFAULT,
    };

    /// `origin` and the category named `category`.
    ///
    /// # Panics
    /// When `category` is not a valid [`Label`] (at router construction,
    /// like an invalid route path).
    pub fn new(origin: Label, category: &str) -> Self {
        let category = Label::new(category)
            .unwrap_or_else(|e| panic!("keyward::http::RouteUsage: category: {e}"));
        Self { origin, category }
    }
}

impl Default for RouteUsage {
    fn default() -> Self {
        Self::API
    }
}
