//! The rate-limit response headers of the IETF httpapi draft
//! (draft-ietf-httpapi-ratelimit-headers): `RateLimit-Policy` names the
//! limit (`q` calls per `w` seconds), `RateLimit` where the request stands
//! (`r` remaining, `t` seconds until the limit is fully replenished; on a
//! refusal until the next call is allowed).

use crate::ratelimit::LimitStatus;

/// `RateLimit-Policy` and `RateLimit` for `s`.
pub(crate) fn push_headers(h: &mut Vec<(&'static str, String)>, s: &LimitStatus) {
    let window = s.duration_ms.div_ceil(1000).max(1);
    h.push((
        "ratelimit-policy",
        format!("\"{}\";q={};w={window}", s.name, s.limit),
    ));
    h.push((
        "ratelimit",
        format!(
            "\"{}\";r={};t={}",
            s.name,
            s.remaining,
            s.reset_ms.div_ceil(1000)
        ),
    ));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::Label;

    #[test]
    fn headers_follow_the_draft() {
        let mut h = Vec::new();
        let s = LimitStatus {
            name: Label::from_static("requests"),
            limit: 5,
            duration_ms: 60_000,
            remaining: 0,
            reset_ms: 11_001,
        };
        push_headers(&mut h, &s);
        assert_eq!(
            h,
            [
                ("ratelimit-policy", "\"requests\";q=5;w=60".to_owned()),
                ("ratelimit", "\"requests\";r=0;t=12".to_owned()),
            ]
        );
    }
}
