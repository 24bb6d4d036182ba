//! [`AllowedOrigin`]: an entry of the management API's origin allowlist,
//! and the strict parsing of a web origin (`scheme://host[:port]`).

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
