//! [`AllowedOrigin`]: an entry of the management API's origin allowlist;
//! the strict parsing of a web origin (`scheme://host[:port]`); and a key's
//! origin patterns (exact origins or `https://*.example.com` subdomain
//! patterns) with the request-time match, which allocates nothing.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// An origin that may call the management API from a browser.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllowedOrigin {
    /// Public id, `orig_…`.
    pub id: String,
    /// The origin, normalized (`https://admin.example.com`,
    /// `http://localhost:8080`).
    pub origin: String,
    /// The protected default entry (the server's own origin) cannot be
    /// deleted.
    pub protected: bool,
    /// When it was added.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// Error of [`normalize_origin`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an origin: expected scheme://host[:port] with scheme http or https")]
pub struct InvalidOrigin;

/// Longest origin accepted.
const MAX_ORIGIN: usize = 260;

/// `s` as a normalized web origin: `http` or `https`, a host of ASCII
/// letters, digits, `-` and `.` (or a bracketed IPv6 address), an optional
/// port 1–65535 (dropped when it is the scheme's default), nothing else
/// (no path, query, user info or trailing slash). Scheme and host are
/// lower-cased.
///
/// ```
/// use keyward::normalize_origin;
/// assert_eq!(normalize_origin("HTTPS://Admin.Example.com:443").unwrap(), "https://admin.example.com");
/// assert_eq!(normalize_origin("http://localhost:8080").unwrap(), "http://localhost:8080");
/// assert!(normalize_origin("https://example.com/").is_err());
/// assert!(normalize_origin("null").is_err());
/// ```
///
/// # Errors
/// [`InvalidOrigin`] for anything else.
pub fn normalize_origin(s: &str) -> Result<String, InvalidOrigin> {
    if s.is_empty() || s.len() > MAX_ORIGIN || !s.is_ascii() {
        return Err(InvalidOrigin);
    }
    let lower = s.to_ascii_lowercase();
    let (scheme, rest) = lower.split_once("://").ok_or(InvalidOrigin)?;
    let default_port = match scheme {
        "http" => "80",
        "https" => "443",
        _ => return Err(InvalidOrigin),
    };
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        let (addr, after) = v6.split_once(']').ok_or(InvalidOrigin)?;
        addr.parse::<std::net::Ipv6Addr>()
            .map_err(|_| InvalidOrigin)?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or(InvalidOrigin)?),
        };
        (&rest[..addr.len() + 2], port)
    } else {
        match rest.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (rest, None),
        }
    };
    if !host.starts_with('[') {
        let ok = !host.is_empty()
            && host.len() <= 253
            && host.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
        if !ok {
            return Err(InvalidOrigin);
        }
    }
    let port = match port {
        None => None,
        Some(p) => {
            if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
                return Err(InvalidOrigin);
            }
            let n: u16 = p.parse().map_err(|_| InvalidOrigin)?;
            if n == 0 {
                return Err(InvalidOrigin);
            }
            (p != default_port).then(|| n.to_string())
        }
    };
    Ok(match port {
        Some(p) => format!("{scheme}://{host}:{p}"),
        None => format!("{scheme}://{host}"),
    })
}

/// `s` as a normalized entry of a key's `allowed_origins`: an exact origin
/// (as [`normalize_origin`]), or a subdomain pattern
/// `scheme://*.host[:port]` that matches any origin of that scheme and port
/// whose host ends with `.host` (not `host` itself). The host of a pattern
/// must have at least two labels (`https://*.com` is refused) and not be
/// an IP address.
///
/// ```
/// use keyward::normalize_origin_pattern;
/// assert_eq!(normalize_origin_pattern("HTTPS://*.Example.com").unwrap(), "https://*.example.com");
/// assert_eq!(normalize_origin_pattern("https://app.example.com:443").unwrap(), "https://app.example.com");
/// assert!(normalize_origin_pattern("https://*.com").is_err());
/// assert!(normalize_origin_pattern("https://a.*.example.com").is_err());
/// ```
///
/// # Errors
/// [`InvalidOrigin`] for anything else.
pub fn normalize_origin_pattern(s: &str) -> Result<String, InvalidOrigin> {
    let Some((scheme, rest)) = s.split_once("://") else {
        return Err(InvalidOrigin);
    };
    let Some(base) = rest.strip_prefix("*.") else {
        return normalize_origin(s);
    };
    let normalized = normalize_origin(&format!("{scheme}://{base}"))?;
    let (scheme, host_port) = normalized.split_once("://").ok_or(InvalidOrigin)?;
    let host = host_port.rsplit_once(':').map_or(host_port, |(h, _)| h);
    let is_ip = host.starts_with('[') || host.parse::<std::net::Ipv4Addr>().is_ok();
    if is_ip || !host.contains('.') {
        return Err(InvalidOrigin);
    }
    Ok(format!("{scheme}://*.{host_port}"))
}

/// Whether the request origin `origin` (an `Origin` header value, or the
/// origin of a `Referer`) matches a normalized entry of a key's
/// `allowed_origins` ([`normalize_origin_pattern`]). ASCII
/// case-insensitive; no allocation.
pub(crate) fn origin_matches(pattern: &str, origin: &str) -> bool {
    let Some((p_scheme, p_rest)) = pattern.split_once("://") else {
        return false;
    };
    let Some(base) = p_rest.strip_prefix("*.") else {
        return pattern.eq_ignore_ascii_case(origin);
    };
    let Some((scheme, rest)) = origin.split_once("://") else {
        return false;
    };
    if !scheme.eq_ignore_ascii_case(p_scheme) || rest.len() <= base.len() + 1 {
        return false;
    }
    let (sub, suffix) = rest.split_at(rest.len() - base.len());
    let Some(sub) = sub.strip_suffix('.') else {
        return false;
    };
    suffix.eq_ignore_ascii_case(base)
        && sub.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// Whether every origin the normalized entry `wanted` admits is admitted
/// by the normalized entry `allowed`: the same entry, an exact origin that
/// `allowed` matches, or a subdomain pattern under `allowed`'s.
pub(crate) fn pattern_within(wanted: &str, allowed: &str) -> bool {
    if wanted.eq_ignore_ascii_case(allowed) {
        return true;
    }
    match wanted.split_once("://") {
        // `https://*.a.example.com` lies within `https://*.example.com`
        // when `https://a.example.com` matches it.
        Some((scheme, rest)) if rest.starts_with("*.") => {
            origin_matches(allowed, &format!("{scheme}://{}", &rest[2..]))
                && allowed.contains("://*.")
        }
        _ => origin_matches(allowed, wanted),
    }
}

/// The origin (`scheme://host[:port]`) of a `Referer` URL: everything up
/// to the first `/`, `?` or `#` after `://`. `None` when it has no scheme.
#[cfg_attr(not(any(feature = "axum", feature = "actix")), allow(dead_code))]
pub(crate) fn referer_origin(referer: &str) -> Option<&str> {
    let (scheme, rest) = referer.split_once("://")?;
    if scheme.is_empty() {
        return None;
    }
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    Some(&referer[..scheme.len() + 3 + end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pattern_within_admits_only_narrower_entries() {
        let wild = "https://*.example.com";
        assert!(pattern_within(wild, wild));
        assert!(pattern_within("https://app.example.com", wild));
        assert!(pattern_within("https://*.eu.example.com", wild));
        assert!(!pattern_within("https://example.com", wild));
        assert!(!pattern_within("http://app.example.com", wild));
        assert!(!pattern_within(
            "https://*.example.com",
            "https://app.example.com"
        ));
        assert!(!pattern_within(
            "https://*.app.example.com",
            "https://app.example.com"
        ));
        assert!(!pattern_within("https://other.org", wild));
        assert!(pattern_within("https://a.org", "https://a.org"));
    }

    #[test]
    fn normalizes_and_rejects() {
        for (input, want) in [
            ("https://example.com", "https://example.com"),
            ("HTTPS://EXAMPLE.com:443", "https://example.com"),
            ("http://example.com:80", "http://example.com"),
            ("http://127.0.0.1:3000", "http://127.0.0.1:3000"),
            ("https://[::1]:8443", "https://[::1]:8443"),
            ("https://a-b.c.example", "https://a-b.c.example"),
        ] {
            assert_eq!(normalize_origin(input).as_deref(), Ok(want), "{input}");
        }
        for bad in [
            "",
            "null",
            "example.com",
            "ftp://example.com",
            "https://",
            "https://example.com/",
            "https://example.com/path",
            "https://user@example.com",
            "https://example.com:0",
            "https://example.com:65536",
            "https://example.com:",
            "https://exa mple.com",
            "https://exämple.com",
            "https://example..com",
            "https://[::1",
            "https://[nope]",
            "https://*.example.com",
        ] {
            assert!(normalize_origin(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn patterns_normalize_and_match_subdomains_only() {
        let p = normalize_origin_pattern("https://*.Example.com").expect("pattern");
        assert_eq!(p, "https://*.example.com");
        for (origin, want) in [
            ("https://app.example.com", true),
            ("https://a.b.example.com", true),
            ("HTTPS://APP.EXAMPLE.COM", true),
            ("https://example.com", false),
            ("http://app.example.com", false),
            ("https://app.example.com:8443", false),
            ("https://appexample.com", false),
            ("https://app.example.com.evil.net", false),
            ("https://evil.net/.example.com", false),
            ("https://.example.com", false),
            ("https://user@x.example.com", false),
            ("null", false),
            ("", false),
        ] {
            assert_eq!(origin_matches(&p, origin), want, "{origin}");
        }
        let ported = normalize_origin_pattern("https://*.example.com:8443").expect("pattern");
        assert!(origin_matches(&ported, "https://app.example.com:8443"));
        assert!(!origin_matches(&ported, "https://app.example.com"));
        let exact = normalize_origin_pattern("https://App.example.com:443").expect("exact");
        assert_eq!(exact, "https://app.example.com");
        assert!(origin_matches(&exact, "https://app.example.com"));
        assert!(!origin_matches(&exact, "https://app.example.com:444"));
        assert!(!origin_matches(&exact, "https://x.app.example.com"));
        for bad in [
            "https://*.com",
            "https://*.",
            "https://*.127.0.0.1",
            "https://*.[::1]",
            "https://a.*.example.com",
            "https://*example.com",
            "ftp://*.example.com",
            "https://*.example.com/",
            "*.example.com",
        ] {
            assert!(normalize_origin_pattern(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn referer_origin_is_the_prefix_before_the_path() {
        for (referer, want) in [
            (
                "https://app.example.com/page?q=1",
                Some("https://app.example.com"),
            ),
            (
                "https://app.example.com:8443?x",
                Some("https://app.example.com:8443"),
            ),
            (
                "https://app.example.com#frag",
                Some("https://app.example.com"),
            ),
            ("https://app.example.com", Some("https://app.example.com")),
            ("/relative/path", None),
            ("://x", None),
        ] {
            assert_eq!(referer_origin(referer), want, "{referer}");
        }
    }
}
