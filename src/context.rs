//! [`VerifyContext`] and usage [`Label`]s.

use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A short label for usage accounting: 1–32 characters of lowercase ASCII
/// letters, digits, `_`, `-`, `.`. Copy and allocation-free.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Label {
    len: u8,
    bytes: [u8; 32],
}

/// Error for an invalid [`Label`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid label {0:?}: must be 1-32 characters of lowercase ASCII letters, digits, '_', '-', '.'"
)]
pub struct InvalidLabel(pub String);

const fn label_char_ok(c: u8) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_' || c == b'-' || c == b'.'
}

impl Label {
    /// Origin of direct API calls.
    pub const API: Label = Label::from_static("api");
    /// Origin of calls made through an MCP server.
    pub const MCP: Label = Label::from_static("mcp");
    /// The default usage category.
    pub const DEFAULT: Label = Label::from_static("default");

    /// A label from a constant; fails to compile (in const context) or
    /// panics when `s` is not a valid label.
    ///
    /// # Panics
    /// When `s` is not 1–32 characters of `a-z`, `0-9`, `_`, `-`, `.`.
    pub const fn from_static(s: &'static str) -> Self {
        match Self::try_const(s) {
            Some(l) => l,
            None => panic!("invalid keyward label"),
        }
    }

    const fn try_const(s: &str) -> Option<Self> {
        let b = s.as_bytes();
        if b.is_empty() || b.len() > 32 {
            return None;
        }
        let mut bytes = [0u8; 32];
        let mut i = 0;
        while i < b.len() {
            if !label_char_ok(b[i]) {
                return None;
            }
            bytes[i] = b[i];
            i += 1;
        }
        Some(Self {
            len: b.len() as u8,
            bytes,
        })
    }

    /// Validates `s`.
    ///
    /// # Errors
    /// [`InvalidLabel`] when `s` is not 1–32 characters of `a-z`, `0-9`,
    /// `_`, `-`, `.`.
    pub fn new(s: &str) -> Result<Self, InvalidLabel> {
        Self::try_const(s).ok_or_else(|| InvalidLabel(s.chars().take(40).collect()))
    }

    /// `s` as a label, or `None` when it is not one; allocation-free (for
    /// header values).
    #[cfg_attr(not(any(feature = "axum", feature = "actix")), allow(dead_code))]
    #[inline]
    pub(crate) fn parse(s: &str) -> Option<Self> {
        Self::try_const(s)
    }

    /// A cheap fingerprint for hashing on the hot path (first 8 bytes and
    /// the length; labels are few and short).
    #[inline]
    pub(crate) fn fingerprint(&self) -> u64 {
        let mut first = [0u8; 8];
        first.copy_from_slice(&self.bytes[..8]);
        u64::from_le_bytes(first) ^ (u64::from(self.len) << 59)
    }

    /// The label text.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..self.len as usize]).unwrap_or_default()
    }
}

impl std::hash::Hash for Label {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write(&self.bytes[..self.len as usize]);
    }
}

impl fmt::Debug for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Label {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Label {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::new(&s).map_err(serde::de::Error::custom)
    }
}

/// Facts about the request being verified.
///
/// ```
/// use keyward::{Label, VerifyContext};
/// let ctx = VerifyContext::new()
///     .client_ip("203.0.113.7".parse().unwrap())
///     .browser_origin("https://app.example.com")
///     .origin(Label::MCP)
///     .category(Label::new("analytics").unwrap());
/// assert_eq!(ctx.origin.as_str(), "mcp");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifyContext<'a> {
    /// The client's address (checked against a key's allowed networks).
    pub client_ip: Option<IpAddr>,
    /// The browser origin of the request: its `Origin` header, or without
    /// one the origin of its `Referer` (checked against a key's allowed
    /// origins; a key that has some refuses a request without one).
    pub browser_origin: Option<&'a str>,
    /// Call origin for usage accounting (default `api`).
    pub origin: Label,
    /// Usage category (default `default`).
    pub category: Label,
    /// A rate limit that is not auto-applied but this route applies (by
    /// name), if any.
    pub limit: Option<Label>,
    /// The credits this call costs (default 1).
    pub cost: u32,
}

impl<'a> VerifyContext<'a> {
    /// No client address, no browser origin, origin `api`, category
    /// `default`.
    pub const fn new() -> Self {
        Self {
            client_ip: None,
            browser_origin: None,
            origin: Label::API,
            category: Label::DEFAULT,
            limit: None,
            cost: 1,
        }
    }

    /// Sets the client address.
    pub fn client_ip(mut self, ip: IpAddr) -> Self {
        self.client_ip = Some(ip);
        self
    }

    /// Sets the browser origin (`Origin`, or the origin of `Referer`).
    pub fn browser_origin(mut self, origin: &'a str) -> Self {
        self.browser_origin = Some(origin);
        self
    }

    /// Sets the origin label.
    pub fn origin(mut self, origin: Label) -> Self {
        self.origin = origin;
        self
    }

    /// Sets the usage category.
    pub fn category(mut self, category: Label) -> Self {
        self.category = category;
        self
    }

    /// Applies the owner's rate limit `name` too (one configured with
    /// `auto_apply: false`, for expensive routes).
    ///
    /// ```
    /// use keyward::{Label, VerifyContext};
    /// let ctx = VerifyContext::new().limit(Label::from_static("expensive")).cost(5);
    /// assert_eq!(ctx.cost, 5);
    /// ```
    pub fn limit(mut self, name: Label) -> Self {
        self.limit = Some(name);
        self
    }

    /// This call costs `credits` (default 1; 0 spends none).
    pub fn cost(mut self, credits: u32) -> Self {
        self.cost = credits;
        self
    }
}

impl Default for VerifyContext<'_> {
    fn default() -> Self {
        Self::new()
    }
}
