//! Validation of management input. Every check runs before anything is
//! written, so a rejected operation changes nothing.

use ipnet::IpNet;
use time::OffsetDateTime;
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

use crate::error::{Error, GrantLimit, Result};
use crate::permission::PermissionSet;

/// Longest key or account name.
pub(crate) const MAX_NAME: usize = 200;
/// Longest description.
pub(crate) const MAX_DESCRIPTION: usize = 2000;
/// Longest application label.
pub(crate) const MAX_APPLICATION: usize = 100;
/// Largest serialized metadata.
pub(crate) const MAX_METADATA_BYTES: usize = 16 * 1024;
/// Most allowed networks per key.
pub(crate) const MAX_CIDRS: usize = 100;
/// Most allowed browser origins per key.
pub(crate) const MAX_ORIGINS: usize = 100;
/// Shortest key-name search: the stores search names through a trigram
/// index, and a shorter needle has no trigram (it would scan every key).
pub(crate) const MIN_KEY_SEARCH: usize = 3;

fn invalid(field: &'static str, reason: impl Into<String>) -> Error {
    Error::InvalidInput {
        field,
        reason: reason.into(),
    }
}

fn text(field: &'static str, s: &str, max: usize, allow_empty: bool) -> Result<()> {
    if !allow_empty && s.trim().is_empty() {
        return Err(invalid(field, "must not be empty"));
    }
    if s.chars().count() > max {
        return Err(invalid(field, format!("must be at most {max} characters")));
    }
    if s.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Err(invalid(field, "must not contain control characters"));
    }
    // Bidi controls reorder what follows them, even in free text.
    if s.chars().any(|c| {
        matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}')
    }) {
        return Err(invalid(field, "must not contain bidi control characters"));
    }
    Ok(())
}

/// [`text`], and no format characters: for names and labels shown in
/// lists (descriptions may hold emoji sequences, whose joiners are Cf).
fn label(field: &'static str, s: &str, max: usize) -> Result<()> {
    text(field, s, max, false)?;
    if let Some(c) = s.chars().find(|&c| is_format(c)) {
        return Err(invalid(
            field,
            format!(
                "must not contain format characters (U+{:04X}: bidi controls, zero-width characters, BOM)",
                u32::from(c)
            ),
        ));
    }
    Ok(())
}

/// A key-name search needle (`q` of `GET /apikeys`): 3–200 characters
/// (no name is longer), so that it always has a trigram to search by.
pub(crate) fn key_search(q: &str) -> Result<()> {
    let len = q.chars().count();
    if len < MIN_KEY_SEARCH {
        return Err(invalid(
            "q",
            format!(
                "must be at least {MIN_KEY_SEARCH} characters (or absent): a shorter search cannot use the name index"
            ),
        ));
    }
    if len > MAX_NAME {
        return Err(invalid(
            "q",
            format!("must be at most {MAX_NAME} characters"),
        ));
    }
    Ok(())
}

/// Unicode category Cf (format): bidi overrides and isolates, zero-width
/// spaces and joiners, the BOM, soft hyphen… invisible, and able to make a
/// name read differently in an admin screen than it is.
fn is_format(c: char) -> bool {
    c.general_category() == GeneralCategory::Format
}

/// A [`User`](super::User)'s id or name: 1–200 characters, no controls or
/// format characters.
pub(crate) fn user_field(field: &'static str, s: &str) -> Result<()> {
    label(field, s, super::actor::MAX_USER_FIELD)?;
    if s.contains(['\n', '\t']) {
        return Err(invalid(field, "must be a single line"));
    }
    Ok(())
}

pub(crate) fn name(s: &str) -> Result<()> {
    label("name", s, MAX_NAME)?;
    if s.contains('\n') {
        return Err(invalid("name", "must be a single line"));
    }
    Ok(())
}

/// An application's title: the rules of a key's name.
pub(crate) fn title(s: &str) -> Result<()> {
    label("title", s, MAX_NAME)?;
    if s.contains('\n') {
        return Err(invalid("title", "must be a single line"));
    }
    Ok(())
}

pub(crate) fn description(s: &str) -> Result<()> {
    text("description", s, MAX_DESCRIPTION, true)
}

pub(crate) fn application(s: &str) -> Result<()> {
    label("application", s, MAX_APPLICATION)
}

pub(crate) fn metadata(v: &serde_json::Value) -> Result<()> {
    if !(v.is_object() || v.is_null()) {
        return Err(invalid("metadata", "must be a JSON object"));
    }
    let len = serde_json::to_vec(v).map_or(usize::MAX, |b| b.len());
    if len > MAX_METADATA_BYTES {
        return Err(invalid(
            "metadata",
            format!("must be at most {MAX_METADATA_BYTES} bytes"),
        ));
    }
    Ok(())
}

pub(crate) fn cidrs(c: &[IpNet]) -> Result<()> {
    if c.len() > MAX_CIDRS {
        return Err(invalid(
            "allowed_cidrs",
            format!("at most {MAX_CIDRS} networks"),
        ));
    }
    Ok(())
}

/// A key's `allowed_origins`, normalized ([`normalize_origin_pattern`](crate::normalize_origin_pattern))
/// and without duplicates, in the order given.
pub(crate) fn origins(o: Vec<String>) -> Result<Vec<String>> {
    if o.len() > MAX_ORIGINS {
        return Err(invalid(
            "allowed_origins",
            format!("at most {MAX_ORIGINS} origins"),
        ));
    }
    let mut out: Vec<String> = Vec::with_capacity(o.len());
    for s in &o {
        let n = crate::origin::normalize_origin_pattern(s).map_err(|_| {
            invalid(
                "allowed_origins",
                format!(
                    "{:?} is not an origin (scheme://host[:port], http or https) \
                     nor a subdomain pattern (https://*.example.com)",
                    s.chars().take(80).collect::<String>()
                ),
            )
        })?;
        if !out.contains(&n) {
            out.push(n);
        }
    }
    Ok(out)
}

pub(crate) fn expiry(at: Option<OffsetDateTime>, now: OffsetDateTime) -> Result<()> {
    match at {
        Some(t) if t <= now => Err(invalid("expires_at", "must be in the future")),
        _ => Ok(()),
    }
}

/// Checks that `wanted` ⊆ `account` and, for a bounded actor, within what
/// it holds ([`super::bounds::may_manage`]).
pub(crate) fn grantable(
    wanted: &PermissionSet,
    account: &PermissionSet,
    actor: Option<&PermissionSet>,
) -> Result<()> {
    if let Some(held) = actor
        && let Err(beyond) = super::bounds::may_manage(held, wanted)
    {
        return Err(Error::NotGrantable {
            limit: GrantLimit::Actor,
            permissions: beyond,
        });
    }
    let beyond = wanted.difference(account);
    if !beyond.is_empty() {
        return Err(Error::NotGrantable {
            limit: GrantLimit::Account,
            permissions: beyond,
        });
    }
    Ok(())
}
