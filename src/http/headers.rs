//! Reading the authentication headers and the client address.

use std::net::IpAddr;

use crate::credential::MAX_CREDENTIAL_LEN;
use crate::error::Error;
use crate::http::config::HttpConfig;
use crate::http::error::HttpError;
use crate::id::AccountId;

/// The values of one request header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hv<'a> {
    /// Not sent.
    Absent,
    /// Sent once.
    One(&'a [u8]),
    /// Sent several times.
    Many,
}

/// The headers keyward authenticates with, gathered by an adapter.
///
/// Stored as one optional value per header plus a bit per header sent
/// more than once: 120 bytes, so that moving it (into the verification's
/// state) is inline rather than a `memcpy` call.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RequestHeaders<'a> {
    /// The first value of each [`Header`] sent.
    values: [Option<&'a [u8]>; Header::COUNT],
    /// Bit `h` set: header `h` was sent more than once.
    many: u8,
}

/// A header in [`RequestHeaders`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Header {
    /// `x-api-key`.
    ApiKey,
    /// `x-api-secret`.
    ApiSecret,
    /// `authorization`.
    Authorization,
    /// `x-account-id`.
    AccountId,
    /// `origin`.
    Origin,
    /// `referer`.
    Referer,
    /// `x-call-origin`: believed only from a trusted proxy.
    CallOrigin,
}

impl Header {
    const COUNT: usize = 7;

    /// The header a lower-case name is, if keyward reads it.
    #[inline]
    fn named(name: &str) -> Option<Self> {
        Some(match name {
            "x-api-key" => Header::ApiKey,
            "x-api-secret" => Header::ApiSecret,
            "authorization" => Header::Authorization,
            "x-account-id" => Header::AccountId,
            "origin" => Header::Origin,
            "referer" => Header::Referer,
            "x-call-origin" => Header::CallOrigin,
            _ => return None,
        })
    }
}

#[cfg(any(feature = "axum", feature = "actix"))]
impl<'a> Hv<'a> {
    /// The values of one header, in order (for the management API).
    pub(crate) fn of(values: impl Iterator<Item = &'a [u8]>) -> Self {
        values.fold(Hv::Absent, |hv, v| match hv {
            Hv::Absent => Hv::One(v),
            Hv::One(_) | Hv::Many => Hv::Many,
        })
    }
}

impl<'a> RequestHeaders<'a> {
    /// No headers.
    pub(crate) const NONE: Self = RequestHeaders {
        values: [None; Header::COUNT],
        many: 0,
    };

    /// From every `(lower-case name, value)` of the request, in one pass:
    /// cheaper than one map lookup per header keyward reads.
    #[inline]
    pub(crate) fn gather(all: impl Iterator<Item = (&'a str, &'a [u8])>) -> Self {
        let mut h = Self::NONE;
        for (name, v) in all {
            if let Some(header) = Header::named(name) {
                h.push(header, v);
            }
        }
        h
    }

    /// One more value of `header`.
    #[inline]
    fn push(&mut self, header: Header, v: &'a [u8]) {
        let slot = &mut self.values[header as usize];
        if slot.is_some() {
            self.many |= 1 << header as u8;
        } else {
            *slot = Some(v);
        }
    }

    /// The values of `header`.
    #[inline]
    pub(crate) fn get(&self, header: Header) -> Hv<'a> {
        if self.many & (1 << header as u8) != 0 {
            return Hv::Many;
        }
        match self.values[header as usize] {
            Some(v) => Hv::One(v),
            None => Hv::Absent,
        }
    }

    /// These headers with `header` set to `v` (for tests).
    #[cfg(test)]
    pub(crate) fn with(mut self, header: Header, v: Hv<'a>) -> Self {
        let bit = 1 << header as u8;
        self.many &= !bit;
        self.values[header as usize] = None;
        match v {
            Hv::Absent => {}
            Hv::One(v) => self.values[header as usize] = Some(v),
            Hv::Many => self.many |= bit,
        }
        self
    }

    /// The request's browser origin, for keys with allowed origins: its
    /// `Origin`, or without one the origin of its `Referer`. `None` when it
    /// sent neither, either more than once, or one that is not UTF-8
    /// (which no allowed origin matches).
    #[inline]
    pub(crate) fn browser_origin(&self) -> Option<&'a str> {
        match (self.get(Header::Origin), self.get(Header::Referer)) {
            (Hv::Absent, Hv::Absent) => None,
            (Hv::One(o), _) => std::str::from_utf8(o).ok().map(str::trim),
            (Hv::Absent, Hv::One(r)) => std::str::from_utf8(r)
                .ok()
                .and_then(|r| crate::origin::referer_origin(r.trim())),
            _ => None,
        }
    }
}

/// Presented credentials, as the header bytes (trimmed, length-checked).
/// Their format is checked by the core's parser, which rejects any byte
/// outside it; [`Credentials::reject`] tells a non-ASCII value (400) from
/// a malformed one (401) only then, so the accepted path reads each byte
/// once.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Credentials<'a> {
    /// `x-api-key` + `x-api-secret`.
    Key { id: &'a [u8], secret: &'a [u8] },
    /// `Authorization: Bearer …`.
    Bearer(&'a [u8]),
}

impl Credentials<'_> {
    /// The response to a failed verification: 400 when a credential
    /// header is not visible ASCII (RFC 7230 field content keyward
    /// accepts), the service error's mapping otherwise.
    pub(crate) fn reject(&self, cfg: &HttpConfig, e: Error) -> HttpError {
        if matches!(e, Error::Malformed(_)) {
            let bad = match *self {
                Credentials::Key { id, secret } => [
                    (!visible_ascii(id)).then_some("x-api-key"),
                    (!visible_ascii(secret)).then_some("x-api-secret"),
                ]
                .into_iter()
                .flatten()
                .next(),
                Credentials::Bearer(t) => (!visible_ascii(t)).then_some("the bearer token"),
            };
            if let Some(name) = bad {
                return not_visible_ascii(cfg, name);
            }
        }
        HttpError::from_service(cfg, e)
    }
}

fn not_visible_ascii(cfg: &HttpConfig, name: &str) -> HttpError {
    bad_header(cfg, name, "must be visible ASCII")
}

/// 400 for a malformed authentication header: `"<name> <problem>"`. Out
/// of line, so that the accepted path's code stays small.
#[cold]
#[inline(never)]
fn bad_header(cfg: &HttpConfig, name: &str, problem: &str) -> HttpError {
    HttpError::invalid_request(cfg, format!("{name} {problem}"))
}

/// A header value as credential bytes: trimmed, not empty, not longer
/// than any credential.
#[inline]
fn credential_bytes<'a>(
    cfg: &HttpConfig,
    name: &'static str,
    v: &'a [u8],
) -> Result<&'a [u8], HttpError> {
    let v = v.trim_ascii();
    if v.is_empty() {
        return Err(bad_header(cfg, name, "is empty"));
    }
    if v.len() > MAX_CREDENTIAL_LEN {
        return Err(bad_header(cfg, name, "is too long"));
    }
    Ok(v)
}

/// Whether every byte is visible ASCII (0x21..=0x7e). Eight bytes at a
/// time: the vectorised byte loop it replaces spent most of its time in
/// its one-byte-at-a-time tail, credentials being 20–60 bytes.
fn visible_ascii(v: &[u8]) -> bool {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    let mut chunks = v.chunks_exact(8);
    let mut bad = 0;
    for c in &mut chunks {
        let mut w = [0; 8];
        w.copy_from_slice(c);
        let x = u64::from_ne_bytes(w);
        // Exact per word: a byte < 0x21 (its high bit clear) borrows, a
        // byte > 0x7e carries into or has its high bit.
        bad |= (x.wrapping_sub(0x21 * ONES) & !x) | (x.wrapping_add(ONES) | x);
    }
    bad & HIGH == 0
        && chunks
            .remainder()
            .iter()
            .all(|&b| b.wrapping_sub(0x21) <= 0x5d)
}

#[inline]
fn single<'a>(
    cfg: &HttpConfig,
    name: &'static str,
    v: Hv<'a>,
) -> Result<Option<&'a [u8]>, HttpError> {
    match v {
        Hv::Absent => Ok(None),
        Hv::One(v) => Ok(Some(v)),
        Hv::Many => Err(bad_header(cfg, name, "was sent more than once")),
    }
}

/// The bearer token of an `Authorization` value, or `None` for another
/// scheme (which keyward ignores).
#[inline]
fn bearer<'a>(cfg: &HttpConfig, v: &'a [u8]) -> Result<Option<&'a [u8]>, HttpError> {
    let v = v.trim_ascii();
    let (scheme, rest) = match v.iter().position(|&c| c == b' ') {
        Some(i) => (&v[..i], &v[i..]),
        None => (v, &[][..]),
    };
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return Ok(None);
    }
    credential_bytes(cfg, "the bearer token", rest).map(Some)
}

/// The credentials of a request: `Ok(None)` when none were presented,
/// 400 when the headers are malformed or ambiguous.
#[inline]
pub(crate) fn credentials<'a>(
    cfg: &HttpConfig,
    h: &RequestHeaders<'a>,
) -> Result<Option<Credentials<'a>>, HttpError> {
    let key = single(cfg, "x-api-key", h.get(Header::ApiKey))?;
    let secret = single(cfg, "x-api-secret", h.get(Header::ApiSecret))?;
    let auth = single(cfg, "authorization", h.get(Header::Authorization))?;
    let token = match auth {
        Some(v) => bearer(cfg, v)?,
        None => None,
    };
    match (key, secret, token) {
        (None, None, None) => Ok(None),
        (None, None, Some(t)) => Ok(Some(Credentials::Bearer(t))),
        (Some(_), Some(_), Some(_)) => Err(HttpError::invalid_request(
            cfg,
            "send either x-api-key and x-api-secret or Authorization: Bearer, not both",
        )),
        (Some(k), Some(s), None) => Ok(Some(Credentials::Key {
            id: credential_bytes(cfg, "x-api-key", k)?,
            secret: credential_bytes(cfg, "x-api-secret", s)?,
        })),
        (Some(_), None, _) => Err(HttpError::invalid_request(
            cfg,
            "x-api-key needs x-api-secret",
        )),
        (None, Some(_), _) => Err(HttpError::invalid_request(
            cfg,
            "x-api-secret needs x-api-key",
        )),
    }
}

/// The `x-account-id` header, if sent (inline: most requests send none).
#[inline(always)]
pub(crate) fn account_id(
    cfg: &HttpConfig,
    h: &RequestHeaders<'_>,
) -> Result<Option<AccountId>, HttpError> {
    match h.get(Header::AccountId) {
        Hv::Absent => Ok(None),
        v => sent_account_id(cfg, v),
    }
}

/// [`account_id`] of a request that sent the header.
#[cold]
fn sent_account_id(cfg: &HttpConfig, v: Hv<'_>) -> Result<Option<AccountId>, HttpError> {
    let Some(v) = single(cfg, "x-account-id", v)? else {
        return Ok(None);
    };
    let s =
        std::str::from_utf8(v.trim_ascii()).map_err(|_| not_visible_ascii(cfg, "x-account-id"))?;
    AccountId::new(s)
        .map(Some)
        .map_err(|_| HttpError::invalid_request(cfg, "x-account-id is not a valid account id"))
}

/// Who sent a request: the client address, and whether it came through a
/// trusted proxy (whose `X-Forwarded-For` and `x-call-origin` are
/// believed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Client {
    /// The client address (see [`client`]).
    pub(crate) ip: Option<IpAddr>,
    /// The peer is one of `HttpConfig::trusted_proxies`.
    pub(crate) via_trusted_proxy: bool,
}

/// The client: the peer, or — when the peer is a trusted proxy — the
/// right-most `X-Forwarded-For` entry that is not a trusted proxy.
/// `forwarded_for` is called only then, so an untrusted peer costs no
/// header lookup.
#[inline]
pub(crate) fn client<'a, I>(
    cfg: &HttpConfig,
    peer: Option<IpAddr>,
    forwarded_for: impl FnOnce() -> I,
) -> Client
where
    I: Iterator<Item = &'a [u8]>,
{
    match peer {
        Some(ip) if cfg.is_trusted(ip) => Client {
            ip: Some(forwarded_client(cfg, ip, forwarded_for())),
            via_trusted_proxy: true,
        },
        ip => Client {
            ip,
            via_trusted_proxy: false,
        },
    }
}

/// The client address (see [`client`]).
#[cfg(test)]
pub(crate) fn client_ip<'a, I>(
    cfg: &HttpConfig,
    peer: Option<IpAddr>,
    forwarded_for: impl FnOnce() -> I,
) -> Option<IpAddr>
where
    I: Iterator<Item = &'a [u8]>,
{
    client(cfg, peer, forwarded_for).ip
}

/// The call origin a trusted proxy names in `x-call-origin` (an MCP
/// gateway in front of the API): `None` unless `client` came through a
/// trusted proxy and sent the header once with a valid [`Label`]
/// (anything else is ignored: the route's declared origin counts).
/// Allocation-free.
///
/// [`Label`]: crate::Label
#[inline]
pub(crate) fn call_origin(h: &RequestHeaders<'_>, client: &Client) -> Option<crate::Label> {
    if !client.via_trusted_proxy {
        return None;
    }
    match h.get(Header::CallOrigin) {
        Hv::One(v) => {
            crate::hint::cold_path();
            crate::Label::parse(std::str::from_utf8(v.trim_ascii()).ok()?)
        }
        Hv::Absent | Hv::Many => None,
    }
}

/// The client behind the trusted proxy `proxy`, from `X-Forwarded-For`.
/// Out of line: most deployments trust no proxy.
#[inline(never)]
fn forwarded_client<'a>(
    cfg: &HttpConfig,
    proxy: IpAddr,
    forwarded_for: impl Iterator<Item = &'a [u8]>,
) -> IpAddr {
    let mut ip = proxy;
    // Headers in order, entries in order; walk from the right.
    let values: Vec<&[u8]> = forwarded_for.collect();
    for value in values.iter().rev() {
        let Ok(text) = std::str::from_utf8(value) else {
            return ip;
        };
        for entry in text.rsplit(',') {
            let Ok(hop) = entry.trim().parse::<IpAddr>() else {
                return ip;
            };
            ip = hop;
            if !cfg.is_trusted(hop) {
                return hop;
            }
        }
    }
    ip
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h<'a>(key: Hv<'a>, secret: Hv<'a>, auth: Hv<'a>) -> RequestHeaders<'a> {
        RequestHeaders::NONE
            .with(Header::ApiKey, key)
            .with(Header::ApiSecret, secret)
            .with(Header::Authorization, auth)
    }

    #[test]
    fn bearer_scheme_is_case_insensitive_and_other_schemes_ignored() {
        let cfg = HttpConfig::default();
        for v in [&b"Bearer abc"[..], b"bearer abc", b"BEARER   abc "] {
            let c = credentials(&cfg, &h(Hv::Absent, Hv::Absent, Hv::One(v))).expect("ok");
            assert!(matches!(c, Some(Credentials::Bearer(b"abc"))), "{v:?}");
        }
        let c = credentials(&cfg, &h(Hv::Absent, Hv::Absent, Hv::One(b"Basic Zm9v"))).expect("ok");
        assert!(c.is_none());
        let e =
            credentials(&cfg, &h(Hv::Absent, Hv::Absent, Hv::One(b"Bearer"))).expect_err("empty");
        assert_eq!(e.status(), 400);
    }

    #[test]
    fn malformed_headers_are_400() {
        let cfg = HttpConfig::default();
        let long = vec![b'a'; 200];
        for hs in [
            h(Hv::One(b"k"), Hv::Absent, Hv::Absent),
            h(Hv::Absent, Hv::One(b"s"), Hv::Absent),
            h(Hv::Many, Hv::One(b"s"), Hv::Absent),
            h(Hv::One(b"k"), Hv::One(b"s"), Hv::One(b"Bearer t")),
            h(Hv::One(&long), Hv::One(b"s"), Hv::Absent),
        ] {
            let e = credentials(&cfg, &hs).expect_err("malformed");
            assert_eq!(e.status(), 400);
            assert_eq!(
                e.www_authenticate().as_deref(),
                Some("Bearer realm=\"keyward\", error=\"invalid_request\"")
            );
        }
    }

    #[test]
    fn non_ascii_credentials_are_400_once_the_parser_rejects_them() {
        let cfg = HttpConfig::default();
        let malformed = || Error::Malformed(crate::credential::MalformedCredential::Format);
        for hs in [
            h(Hv::One("kü".as_bytes()), Hv::One(b"s"), Hv::Absent),
            h(Hv::One(b"k"), Hv::One(b"s\x01"), Hv::Absent),
            h(Hv::Absent, Hv::Absent, Hv::One("Bearer tök".as_bytes())),
        ] {
            let c = credentials(&cfg, &hs).expect("read").expect("present");
            let e = c.reject(&cfg, malformed());
            assert_eq!(e.status(), 400);
            assert!(e.message().contains("visible ASCII"), "{}", e.message());
        }
        // Visible ASCII in the wrong format: the byte-identical 401.
        let c = credentials(&cfg, &h(Hv::One(b"k"), Hv::One(b"s"), Hv::Absent))
            .expect("read")
            .expect("present");
        assert_eq!(c.reject(&cfg, malformed()).status(), 401);
    }

    #[test]
    fn visible_ascii_matches_the_byte_definition() {
        // Every byte value in every position of words and tails.
        for len in 1..=17 {
            for pos in 0..len {
                for b in 0..=255u8 {
                    let mut v = vec![b'a'; len];
                    v[pos] = b;
                    let expected = (0x21..=0x7e).contains(&b);
                    assert_eq!(visible_ascii(&v), expected, "{len} {pos} {b:#x}");
                }
            }
        }
        // Neighbouring bytes at the edges of the range.
        for (a, b) in [
            (0x20, 0x21),
            (0x7e, 0x7f),
            (0xff, 0x21),
            (0x00, 0x7e),
            (0x80, 0x7f),
        ] {
            let mut v = vec![b'a'; 16];
            v[3] = a;
            v[4] = b;
            assert!(!visible_ascii(&v), "{a:#x} {b:#x}");
        }
        assert!(visible_ascii(b"!~!~!~!~!~!~!~!~!~"));
    }

    #[test]
    fn forwarded_for_only_from_trusted_proxies() {
        let proxy: IpAddr = "10.0.0.1".parse().expect("ip");
        let client: IpAddr = "203.0.113.9".parse().expect("ip");
        let xff = [&b"198.51.100.1, 203.0.113.9, 10.0.0.2"[..]];
        let none = HttpConfig::default();
        assert_eq!(
            client_ip(&none, Some(proxy), || xff.into_iter()),
            Some(proxy)
        );
        let cfg = HttpConfig::default().trusted_proxies(vec!["10.0.0.0/8".parse().expect("net")]);
        assert_eq!(
            client_ip(&cfg, Some(proxy), || xff.into_iter()),
            Some(client)
        );
        assert_eq!(
            client_ip(&cfg, Some(client), || xff.into_iter()),
            Some(client)
        );
        assert_eq!(
            client_ip(&cfg, Some(proxy), || [&b"junk"[..]].into_iter()),
            Some(proxy)
        );
        assert_eq!(client_ip(&cfg, None, || xff.into_iter()), None);
    }

    #[test]
    fn call_origin_only_from_a_trusted_proxy_and_only_a_valid_label() {
        let proxy: IpAddr = "10.0.0.1".parse().expect("ip");
        let direct: IpAddr = "203.0.113.9".parse().expect("ip");
        let cfg = HttpConfig::default().trusted_proxies(vec!["10.0.0.0/8".parse().expect("net")]);
        let with = |v: Hv<'static>| RequestHeaders::NONE.with(Header::CallOrigin, v);
        let via = client(&cfg, Some(proxy), std::iter::empty);
        let not = client(&cfg, Some(direct), std::iter::empty);
        assert!(via.via_trusted_proxy && !not.via_trusted_proxy);
        assert_eq!(
            call_origin(&with(Hv::One(b" mcp ")), &via),
            Some(crate::Label::MCP)
        );
        assert_eq!(call_origin(&with(Hv::One(b"mcp")), &not), None);
        for bad in [&b"MCP"[..], b"", b"m c p", b"\xff", &[b'a'; 33]] {
            assert_eq!(call_origin(&with(Hv::One(bad)), &via), None, "{bad:?}");
        }
        assert_eq!(call_origin(&with(Hv::Many), &via), None);
        assert_eq!(call_origin(&with(Hv::Absent), &via), None);
        // No trusted proxies: nothing is believed.
        let none = client(&HttpConfig::default(), Some(proxy), std::iter::empty);
        assert_eq!(call_origin(&with(Hv::One(b"mcp")), &none), None);
        let gathered = RequestHeaders::gather([("x-call-origin", &b"mcp"[..])].into_iter());
        assert_eq!(gathered.get(Header::CallOrigin), Hv::One(b"mcp"));
    }

    #[test]
    fn gathering_tells_one_value_from_several_and_stays_small() {
        let g = RequestHeaders::gather(
            [
                ("x-api-key", &b"a"[..]),
                ("origin", b"https://a.example"),
                ("x-api-key", b"b"),
                ("x-api-key", b"c"),
                ("content-type", b"application/json"),
            ]
            .into_iter(),
        );
        assert_eq!(g.get(Header::ApiKey), Hv::Many);
        assert_eq!(g.get(Header::Origin), Hv::One(b"https://a.example"));
        assert_eq!(g.get(Header::ApiSecret), Hv::Absent);
        // Moved into the verification's state: inline up to 128 bytes.
        assert!(size_of::<RequestHeaders<'_>>() <= 128);
    }
}
