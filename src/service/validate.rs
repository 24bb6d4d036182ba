//! Validation of management input. Every check runs before anything is
//! written, so a rejected operation changes nothing.

use ipnet::IpNet;
use time::OffsetDateTime;

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
    Ok(())
}

pub(crate) fn name(s: &str) -> Result<()> {
    text("name", s, MAX_NAME, false)?;
    if s.contains('\n') {
        return Err(invalid("name", "must be a single line"));
    }
    Ok(())
}

pub(crate) fn description(s: &str) -> Result<()> {
    text("description", s, MAX_DESCRIPTION, true)
}

pub(crate) fn application(s: &str) -> Result<()> {
    text("application", s, MAX_APPLICATION, false)
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

pub(crate) fn expiry(at: Option<OffsetDateTime>, now: OffsetDateTime) -> Result<()> {
    match at {
        Some(t) if t <= now => Err(invalid("expires_at", "must be in the future")),
        _ => Ok(()),
    }
}

/// Checks that `wanted` ⊆ `account` and, for a principal, ⊆ what it holds.
pub(crate) fn grantable(
    wanted: &PermissionSet,
    account: &PermissionSet,
    actor: Option<&PermissionSet>,
) -> Result<()> {
    if let Some(held) = actor {
        let beyond = wanted.difference(held);
        if !beyond.is_empty() {
            return Err(Error::NotGrantable {
                limit: GrantLimit::Actor,
                permissions: beyond,
            });
        }
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
