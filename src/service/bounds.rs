//! The management bounds, in one place: what a bounded actor (a principal
//! or a person) may manage, grant and set. Every management operation
//! calls these; nothing else decides it.
//!
//! - **Manage**: rotating, updating, activating, deactivating or deleting a
//!   key needs every permission the key has ([`may_manage`]).
//! - **Grant**: a new or changed permission set needs the same
//!   ([`may_manage`] again, then the account's own bound).
//! - **Restrictions**: what an actor creates, or hands itself the secret of
//!   (rotation), or sets, is at least as restricted as the key it acts with:
//!   no later expiry, no networks outside its `allowed_cidrs` when it has
//!   any ([`Ceiling::restrict`]).
//! - **Protected** keys change only through [`Actor::System`].
//! - `writeApiKeys` implies `readApiKeys`, `writeAccounts` implies
//!   `readAccounts` ([`IMPLIED`], [`holds`]).

use std::borrow::Cow;

use ipnet::IpNet;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::Actor;
use crate::api_key::ApiKey;
use crate::error::{Error, Result};
use crate::permission::{Permission, PermissionSet};

/// The implications between permissions, `(held, implied)`: whoever
/// manages keys sees them, whoever manages accounts sees them. The one
/// rule [`held`], [`holds`] and [`may_manage`] apply.
pub(crate) const IMPLIED: &[(&str, &str)] = &[
    ("writeApiKeys", "readApiKeys"),
    ("writeAccounts", "readAccounts"),
];

/// The permissions `held` amounts to, [`IMPLIED`] ones included.
pub(crate) fn held(held: &PermissionSet) -> Cow<'_, PermissionSet> {
    let missing: Vec<&str> = IMPLIED
        .iter()
        .filter(|(w, r)| held.contains_name(w) && !held.contains_name(r))
        .map(|(_, r)| *r)
        .collect();
    if missing.is_empty() {
        return Cow::Borrowed(held);
    }
    let mut with = held.clone();
    for r in missing {
        if let Ok(p) = Permission::new(r) {
            with.insert(p);
        }
    }
    Cow::Owned(with)
}

/// Whether `held` includes `permission`, implications included.
pub(crate) fn holds(held: &PermissionSet, permission: &Permission) -> bool {
    holds_name(held, permission.as_str())
}

/// [`holds`] by name.
pub(crate) fn holds_name(held: &PermissionSet, name: &str) -> bool {
    held.contains_name(name)
        || IMPLIED
            .iter()
            .any(|(w, r)| *r == name && held.contains_name(w))
}

/// The one management bound: an actor holding `actor` may manage (and
/// grant) `target` exactly when every permission of `target` is within
/// `actor` (`writeApiKeys` implying `readApiKeys`). Otherwise the
/// permissions it lacks.
///
/// ```
/// use keyward::{PermissionSet, may_manage};
/// let p = |n: &[&str]| PermissionSet::parse(n.iter().copied()).unwrap();
/// assert!(may_manage(&p(&["writeApiKeys", "readApplications"]), &p(&["readApiKeys"])).is_ok());
/// assert_eq!(
///     may_manage(&p(&["writeApiKeys"]), &p(&["writeApiKeys", "writeApplications"])),
///     Err(p(&["writeApplications"])),
/// );
/// ```
///
/// # Errors
/// The permissions of `target` that `actor` does not hold.
pub fn may_manage(actor: &PermissionSet, target: &PermissionSet) -> Result<(), PermissionSet> {
    let missing = target.difference(&held(actor));
    if missing.is_empty() {
        Ok(())
    } else {
        Err(missing)
    }
}

/// What a bounded actor holds: the ceiling of everything it manages.
#[derive(Debug)]
pub(crate) enum Ceiling<'a> {
    /// [`Actor::System`]: no bound.
    System,
    /// A principal or a person.
    Bounded {
        /// Its permissions.
        permissions: &'a PermissionSet,
        /// The expiry of the key it acts with (a session: its key's).
        expires_at: Option<OffsetDateTime>,
        /// The networks of the key it acts with (empty: any).
        networks: Vec<IpNet>,
        /// The browser origins of the key it acts with (empty: any).
        origins: Vec<String>,
    },
}

impl Ceiling<'_> {
    /// The ceiling of `actor`, whose acting key (for a principal) is
    /// `key`.
    pub(crate) fn of<'a>(actor: Actor<'a>, key: Option<&ApiKey>) -> Ceiling<'a> {
        match actor.permissions() {
            None => Ceiling::System,
            Some(permissions) => Ceiling::Bounded {
                permissions,
                expires_at: key.and_then(|k| k.expires_at),
                networks: key.map(|k| k.allowed_cidrs.clone()).unwrap_or_default(),
                origins: key.map(|k| k.allowed_origins.clone()).unwrap_or_default(),
            },
        }
    }

    /// May the actor rotate, update, activate, deactivate or delete
    /// `target`?
    ///
    /// # Errors
    /// [`Error::PermissionNotHeld`] naming the permissions the actor
    /// lacks, [`Error::Protected`] for a protected key.
    pub(crate) fn manage(&self, target: &ApiKey) -> Result<()> {
        let Ceiling::Bounded { permissions, .. } = self else {
            return Ok(());
        };
        may_manage(permissions, &target.permissions)
            .map_err(|permissions| Error::PermissionNotHeld { permissions })?;
        if target.protected {
            return Err(Error::Protected);
        }
        Ok(())
    }

    /// The permissions the actor holds, for [`super::validate::grantable`].
    pub(crate) fn grant_bound(&self) -> Option<&PermissionSet> {
        match self {
            Ceiling::System => None,
            Ceiling::Bounded { permissions, .. } => Some(permissions),
        }
    }

    /// The one restriction check (issue, update, rotate): an expiry that is
    /// set (`Some`) is no later than the actor's (`Some(None)`, none, is
    /// later than any), and networks and browser origins that are set lie
    /// within the actor's when it has any (a key bound to some origins
    /// cannot mint or widen one that any origin may use).
    ///
    /// # Errors
    /// [`Error::RestrictionNotHeld`] naming the field.
    pub(crate) fn restrict(
        &self,
        expires_at: Option<Option<OffsetDateTime>>,
        networks: Option<&[IpNet]>,
        origins: Option<&[String]>,
    ) -> Result<()> {
        let Ceiling::Bounded {
            expires_at: limit,
            networks: allowed,
            origins: allowed_origins,
            ..
        } = self
        else {
            return Ok(());
        };
        if let (Some(wanted), Some(limit)) = (expires_at, limit)
            && wanted.is_none_or(|w| w > *limit)
        {
            let at = limit.format(&Rfc3339).unwrap_or_default();
            return Err(Error::RestrictionNotHeld {
                field: "expires_at",
                reason: format!("must be no later than the acting key's expiry ({at})"),
            });
        }
        if let Some(wanted) = networks
            && !allowed.is_empty()
        {
            let reason = if wanted.is_empty() {
                Some("must name networks within the acting key's allowed networks (empty allows any address)".to_owned())
            } else {
                wanted
                    .iter()
                    .find(|w| !allowed.iter().any(|a| a.contains(*w)))
                    .map(|w| format!("{w} is outside the acting key's allowed networks"))
            };
            if let Some(reason) = reason {
                return Err(Error::RestrictionNotHeld {
                    field: "allowed_cidrs",
                    reason,
                });
            }
        }
        if let Some(wanted) = origins
            && !allowed_origins.is_empty()
        {
            let reason = if wanted.is_empty() {
                Some("must name origins within the acting key's allowed origins (empty allows any origin)".to_owned())
            } else {
                wanted
                    .iter()
                    .find(|w| {
                        !allowed_origins
                            .iter()
                            .any(|a| crate::origin::pattern_within(w, a))
                    })
                    .map(|w| format!("{w} is outside the acting key's allowed origins"))
            };
            if let Some(reason) = reason {
                return Err(Error::RestrictionNotHeld {
                    field: "allowed_origins",
                    reason,
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use proptest::prelude::*;

    use super::*;

    const NAMES: [&str; 8] = [
        "readApiKeys",
        "writeApiKeys",
        "readApplications",
        "writeApplications",
        "readBilling",
        "admin:all",
        "readAccounts",
        "writeAccounts",
    ];

    fn set(bits: u8) -> PermissionSet {
        PermissionSet::parse(
            NAMES
                .iter()
                .enumerate()
                .filter(|(i, _)| bits & (1 << i) != 0)
                .map(|(_, n)| *n),
        )
        .unwrap()
    }

    proptest! {
        /// Allowed exactly when the target's set lies within the actor's
        /// (with `readApiKeys` counted as held when `writeApiKeys` is), and
        /// a refusal names exactly what is missing.
        #[test]
        fn may_manage_is_subset(actor in 0u8..=255, target in 0u8..=255) {
            let (a, t) = (set(actor), set(target));
            let mut closure = a.clone();
            if a.contains_name("writeApiKeys") {
                closure.insert(Permission::read_api_keys());
            }
            if a.contains_name("writeAccounts") {
                closure.insert(Permission::read_accounts());
            }
            match may_manage(&a, &t) {
                Ok(()) => prop_assert!(t.is_subset(&closure)),
                Err(missing) => {
                    prop_assert!(!t.is_subset(&closure));
                    prop_assert_eq!(missing, t.difference(&closure));
                }
            }
        }
    }

    #[test]
    fn write_implies_read_only() {
        let w = set(0b10);
        assert!(holds(&w, &Permission::read_api_keys()));
        assert!(!holds(&set(0b01), &Permission::write_api_keys()));
        assert!(!holds(&w, &Permission::new("readApplications").unwrap()));
        let accounts = set(0b1000_0000);
        assert!(holds(&accounts, &Permission::read_accounts()));
        assert!(!holds(&set(0b0100_0000), &Permission::write_accounts()));
        assert!(!holds(&accounts, &Permission::read_api_keys()));
    }
}
