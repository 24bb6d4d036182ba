//! The admin console (feature `console`): a single-page app embedded in the
//! crate at compile time, served at a mount point by
//! `keyward::http::axum::console` or `keyward::http::actix::console`.
//!
//! This module is the framework-neutral part: the asset table, the
//! response headers (strict Content-Security-Policy, `nosniff`,
//! `no-referrer`, ETag revalidation) and the answer to each request, so
//! both frameworks send the same bytes. The console talks only to the
//! management API (`/auth/login`, `/apikeys…`, and the routes of the
//! management plane when the server has them), from its own origin.

use std::borrow::Cow;
use std::sync::LazyLock;

/// The `Content-Security-Policy` of every console response: everything
/// from the console's own origin, no inline script or style, no framing,
/// no plugins, no `<base>`, no form posts.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
style-src 'self'; img-src 'self'; connect-src 'self'; font-src 'self'; object-src 'none'; \
base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Where the console is mounted and where it finds the management API.
///
/// ```
/// use keyward::http::ConsoleConfig;
/// let c = ConsoleConfig::new().mount("/admin").api_base("/api");
/// assert_eq!(c.mount_path(), "/admin");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleConfig {
    mount: String,
    api_base: String,
    host_sign_out: Option<String>,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        Self::new()
    }
}

impl ConsoleConfig {
    /// Mounted at `/console`, the management API at the server's root.
    pub fn new() -> Self {
        Self {
            mount: "/console".into(),
            api_base: String::new(),
            host_sign_out: None,
        }
    }

    /// The mount point: `/` followed by one or more path segments of
    /// ASCII letters, digits, `-`, `_` and `.`, no trailing slash
    /// (checked when the routes are built).
    pub fn mount(mut self, path: impl Into<String>) -> Self {
        self.mount = path.into();
        self
    }

    /// The path the management API is mounted at on the same origin:
    /// `""` (the default) for the root, or a mount point like
    /// [`mount`](Self::mount)'s. Same-origin only, so that the
    /// Content-Security-Policy stays `connect-src 'self'`.
    pub fn api_base(mut self, path: impl Into<String>) -> Self {
        self.api_base = path.into();
        self
    }

    /// Where the host application signs its people out (a same-origin
    /// path like [`mount`](Self::mount)'s), for a console mounted behind
    /// the host's login: signed in as a [`HostUser`](crate::http::HostUser),
    /// the console's "Sign out" sends `POST` there (with the host's
    /// cookie) and then shows the sign-in screen again. Without it, a
    /// person signed in by the host gets no sign-out button in the
    /// console (they sign out in the host application).
    ///
    /// ```
    /// use keyward::http::ConsoleConfig;
    /// let c = ConsoleConfig::new().host_sign_out("/logout");
    /// assert_eq!(c.host_sign_out_path(), Some("/logout"));
    /// ```
    pub fn host_sign_out(mut self, path: impl Into<String>) -> Self {
        self.host_sign_out = Some(path.into());
        self
    }

    /// The host's sign-out path, if set.
    pub fn host_sign_out_path(&self) -> Option<&str> {
        self.host_sign_out.as_deref()
    }

    /// The mount point.
    pub fn mount_path(&self) -> &str {
        &self.mount
    }

    /// Panics with a message naming the problem when the mount point or
    /// the API base is not a valid path (at router construction, like an
    /// invalid route path).
    pub(crate) fn validated(self) -> Self {
        if !valid_mount(&self.mount) {
            panic!(
                "keyward console: mount point {:?} must be `/` and path segments of [A-Za-z0-9._-], without a trailing slash",
                self.mount
            );
        }
        if !self.api_base.is_empty() && !valid_mount(&self.api_base) {
            panic!(
                "keyward console: api_base {:?} must be empty or a same-origin path like `/api`",
                self.api_base
            );
        }
        if let Some(p) = &self.host_sign_out
            && !valid_mount(p)
        {
            panic!(
                "keyward console: host_sign_out {p:?} must be a same-origin path like `/logout`"
            );
        }
        self
    }

    /// The last segment of the mount point, for the relative redirect from
    /// `/console` to `/console/` (right under any outer prefix too).
    fn last_segment(&self) -> &str {
        self.mount.rsplit('/').next().unwrap_or_default()
    }

    /// `config.json`: what the page needs to know about this server.
    fn config_json(&self) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "api_base": self.api_base,
            "host_sign_out": self.host_sign_out,
        }))
        .unwrap_or_default()
    }
}

fn valid_mount(p: &str) -> bool {
    p.len() > 1
        && p.starts_with('/')
        && p[1..].split('/').all(|seg| {
            !seg.is_empty()
                && seg != "."
                && seg != ".."
                && seg
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        })
}

/// One embedded file.
struct Asset {
    /// Path below the mount point, with its leading `/`.
    path: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

macro_rules! asset {
    ($path:literal, $type:expr) => {
        Asset {
            path: concat!("/", $path),
            content_type: $type,
            body: include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/console/", $path)),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// Every file of the console. `/` is `index.html`.
static ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("app.css", CSS),
    asset!("favicon.svg", "image/svg+xml"),
    asset!("lock.svg", "image/svg+xml"),
    asset!("js/main.js", JS),
    asset!("js/api.js", JS),
    asset!("js/dom.js", JS),
    asset!("js/format.js", JS),
    asset!("js/signin.js", JS),
    asset!("js/keys.js", JS),
    asset!("js/key_dialogs.js", JS),
    asset!("js/key_detail.js", JS),
    asset!("js/usage.js", JS),
    asset!("js/optional.js", JS),
    asset!("js/live.js", JS),
    asset!("vendor/uPlot.iife.min.js", JS),
    asset!("vendor/uPlot.min.css", CSS),
    asset!("vendor/uPlot.LICENSE", "text/plain; charset=utf-8"),
];

/// A strong ETag: the first 128 bits of the BLAKE3 hash of the body.
fn etag_of(body: &[u8]) -> String {
    let hex = blake3::hash(body).to_hex();
    format!("\"{}\"", &hex.as_str()[..32])
}

static ETAGS: LazyLock<Vec<String>> =
    LazyLock::new(|| ASSETS.iter().map(|a| etag_of(a.body)).collect());

/// A gzip variant: the encoded body and its ETag.
type Gzipped = (Vec<u8>, String);

/// The gzip variant of each asset (compressed once, on first use), when
/// compression saves at least a tenth.
static GZIPPED: LazyLock<Vec<Option<Gzipped>>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .zip(ETAGS.iter())
        .map(|(a, etag)| {
            let z = gzip(a.body)?;
            (z.len() * 10 < a.body.len() * 9).then(|| {
                let tag = format!("{}-gz\"", &etag[..etag.len() - 1]);
                (z, tag)
            })
        })
        .collect()
});

fn gzip(body: &[u8]) -> Option<Vec<u8>> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(body).ok()?;
    enc.finish().ok()
}

/// Whether `Accept-Encoding` (all its values) accepts gzip: a `gzip` or
/// `*` coding whose `q` is not 0.
fn accepts_gzip(accept_encoding: &[&[u8]]) -> bool {
    accept_encoding.iter().any(|v| {
        std::str::from_utf8(v).is_ok_and(|v| {
            v.split(',').any(|item| {
                let mut parts = item.split(';');
                let coding = parts.next().unwrap_or_default().trim();
                let zero = parts.any(|p| {
                    p.trim()
                        .strip_prefix("q=")
                        .and_then(|q| q.trim().parse::<f32>().ok())
                        .is_some_and(|q| q <= 0.0)
                });
                (coding.eq_ignore_ascii_case("gzip") || coding == "*") && !zero
            })
        })
    })
}

/// The number of bytes of every embedded file, uncompressed: what a first
/// load transfers at most.
pub fn console_asset_bytes() -> usize {
    ASSETS.iter().map(|a| a.body.len()).sum()
}

/// A console response for an adapter to write out as is. For `HEAD` the
/// frameworks send the headers (with `Content-Length`) and no body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ConsoleResponse {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(&'static str, String)>,
    pub(crate) body: Cow<'static, [u8]>,
}

/// Headers on every console response, errors included.
fn security_headers() -> Vec<(&'static str, String)> {
    vec![
        (
            "content-security-policy",
            CONTENT_SECURITY_POLICY.to_owned(),
        ),
        ("x-content-type-options", "nosniff".to_owned()),
        ("referrer-policy", "no-referrer".to_owned()),
        ("x-frame-options", "DENY".to_owned()),
        ("cross-origin-opener-policy", "same-origin".to_owned()),
        ("cross-origin-resource-policy", "same-origin".to_owned()),
    ]
}

fn plain(status: u16, text: &'static str) -> ConsoleResponse {
    let mut headers = security_headers();
    headers.push(("content-type", "text/plain; charset=utf-8".to_owned()));
    headers.push(("cache-control", "no-store".to_owned()));
    ConsoleResponse {
        status,
        headers,
        body: Cow::Borrowed(text.as_bytes()),
    }
}

/// Whether `If-None-Match` (all its values) names `etag` (weak
/// comparison, RFC 9110 §13.1.2) or is `*`.
fn not_modified(if_none_match: &[&[u8]], etag: &str) -> bool {
    if_none_match.iter().any(|v| {
        std::str::from_utf8(v).is_ok_and(|v| {
            v.split(',')
                .map(str::trim)
                .any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t) == etag)
        })
    })
}

/// The request headers the console looks at: the values of every
/// `If-None-Match` and `Accept-Encoding` header.
#[derive(Debug, Default)]
pub(crate) struct Conditions<'a> {
    pub(crate) if_none_match: Vec<&'a [u8]>,
    pub(crate) accept_encoding: Vec<&'a [u8]>,
}

impl<'a> Conditions<'a> {
    /// Picks them out of `(name, value)` pairs (names in lower case).
    pub(crate) fn gather(headers: impl Iterator<Item = (&'a str, &'a [u8])>) -> Self {
        let mut c = Self::default();
        for (name, value) in headers {
            match name {
                "if-none-match" => c.if_none_match.push(value),
                "accept-encoding" => c.accept_encoding.push(value),
                _ => {}
            }
        }
        c
    }
}

/// Answers one console request. `rest` is the request path below the
/// mount point: `""` for the mount point itself, `"/"` for the page,
/// `"/js/main.js"` for a file.
pub(crate) fn respond(
    cfg: &ConsoleConfig,
    method: &str,
    rest: &str,
    conditions: &Conditions<'_>,
) -> ConsoleResponse {
    if method != "GET" && method != "HEAD" {
        let mut r = plain(405, "method not allowed\n");
        r.headers.push(("allow", "GET, HEAD".to_owned()));
        return r;
    }
    if rest.is_empty() {
        let mut r = plain(308, "moved to the console's page\n");
        r.headers
            .push(("location", format!("{}/", cfg.last_segment())));
        return r;
    }
    // (type, body, ETag, gzip-encoded, has a gzip variant)
    let (content_type, body, etag, gzipped, varies) = if rest == "/config.json" {
        let body = cfg.config_json();
        let etag = etag_of(&body);
        ("application/json", Cow::Owned(body), etag, false, false)
    } else {
        let path = if rest == "/" { "/index.html" } else { rest };
        let Some(i) = ASSETS.iter().position(|a| a.path == path) else {
            return plain(404, "not found\n");
        };
        let a = &ASSETS[i];
        match &GZIPPED[i] {
            Some((z, tag)) if accepts_gzip(&conditions.accept_encoding) => (
                a.content_type,
                Cow::Borrowed(&z[..]),
                tag.clone(),
                true,
                true,
            ),
            variant => (
                a.content_type,
                Cow::Borrowed(a.body),
                ETAGS[i].clone(),
                false,
                variant.is_some(),
            ),
        }
    };
    let mut headers = security_headers();
    // Revalidate on every load: file names carry no version, and a 304 is
    // a few hundred bytes.
    headers.push(("cache-control", "no-cache".to_owned()));
    if varies {
        headers.push(("vary", "accept-encoding".to_owned()));
    }
    if not_modified(&conditions.if_none_match, &etag) {
        headers.push(("etag", etag));
        return ConsoleResponse {
            status: 304,
            headers,
            body: Cow::Borrowed(&[]),
        };
    }
    headers.push(("content-type", content_type.to_owned()));
    if gzipped {
        headers.push(("content-encoding", "gzip".to_owned()));
    }
    headers.push(("etag", etag));
    ConsoleResponse {
        status: 200,
        headers,
        body,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_is_served_with_its_type_and_the_policy() {
        let cfg = ConsoleConfig::new();
        for a in ASSETS {
            let r = respond(&cfg, "GET", a.path, &Conditions::default());
            assert_eq!(r.status, 200, "{}", a.path);
            assert_eq!(&*r.body, a.body);
            let h = |n: &str| {
                r.headers
                    .iter()
                    .find(|(k, _)| *k == n)
                    .map(|(_, v)| v.as_str())
            };
            assert_eq!(h("content-type"), Some(a.content_type));
            assert_eq!(h("content-security-policy"), Some(CONTENT_SECURITY_POLICY));
            assert_eq!(h("x-content-type-options"), Some("nosniff"));
        }
    }

    #[test]
    fn etag_revalidation_gives_304_without_body() {
        let cfg = ConsoleConfig::new();
        let first = respond(&cfg, "GET", "/", &Conditions::default());
        let etag = first
            .headers
            .iter()
            .find(|(k, _)| *k == "etag")
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        let inm = format!("\"x\", W/{etag}");
        let revalidate = Conditions {
            if_none_match: vec![inm.as_bytes()],
            ..Conditions::default()
        };
        let again = respond(&cfg, "GET", "/", &revalidate);
        assert_eq!(again.status, 304);
        assert!(again.body.is_empty());
        let other = Conditions {
            if_none_match: vec![b"\"other\""],
            ..Conditions::default()
        };
        assert_eq!(respond(&cfg, "GET", "/", &other).status, 200);
    }

    #[test]
    fn gzip_is_chosen_by_accept_encoding() {
        for (v, yes) in [
            ("gzip", true),
            ("deflate, gzip;q=0.5", true),
            ("br, *", true),
            ("GZIP", true),
            ("gzip;q=0", false),
            ("gzip; q=0.000", false),
            ("deflate, br", false),
            ("identity", false),
        ] {
            assert_eq!(accepts_gzip(&[v.as_bytes()]), yes, "{v}");
        }
        assert!(!accepts_gzip(&[]));
    }

    #[test]
    fn mount_points_are_checked() {
        for ok in ["/console", "/a/b-c_d.e"] {
            assert!(valid_mount(ok), "{ok}");
        }
        for bad in [
            "",
            "/",
            "console",
            "/console/",
            "/a//b",
            "/a/../b",
            "/a b",
            "/a?b",
        ] {
            assert!(!valid_mount(bad), "{bad}");
        }
    }

    #[test]
    fn first_load_stays_small() {
        // The issue's budget is 300 KB compressed; even uncompressed the
        // console stays under it.
        assert!(console_asset_bytes() < 300_000, "{}", console_asset_bytes());
    }
}
