//! [`Actor`]: who performs a management operation, and [`User`]: a person
//! the host application authenticated.

use std::net::IpAddr;

use crate::audit::{ActorKind, AuditActor};
use crate::error::{Error, Result};
use crate::id::AccountId;
use crate::permission::{Permission, PermissionSet};
use crate::principal::Principal;

/// Longest [`User`] id or name, in characters.
pub(crate) const MAX_USER_FIELD: usize = 200;

/// Who performs a management operation.
///
/// Every actor but [`Actor::System`] is bounded the same way: it manages
/// (rotates, updates, activates, deactivates, deletes) only keys whose
/// permissions it holds, grants only permissions it holds, never changes a
/// protected key, and what it creates or changes is at least as restricted
/// (expiry, networks) as the key it acts with. `writeApiKeys` implies
/// `readApiKeys`.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum Actor<'a> {
    /// The application itself (bootstrap, back-office jobs): every account,
    /// every permission, and the only actor that may change protected keys.
    System,
    /// A verified principal (a key, or a session of a key): only its
    /// (acting) account, bounded by its effective permissions and by its
    /// key's expiry and networks.
    Principal(&'a Principal),
    /// A person the host application authenticated (its own login): only
    /// [`User::account`], bounded by the permissions the host grants them.
    User(&'a User),
}

impl<'a> From<&'a Principal> for Actor<'a> {
    fn from(p: &'a Principal) -> Self {
        Actor::Principal(p)
    }
}

impl<'a> From<&'a User> for Actor<'a> {
    fn from(u: &'a User) -> Self {
        Actor::User(u)
    }
}

/// A person the host application authenticated, acting on keyward's
/// management operations (for example an Admin or Staff user of the host
/// product's settings screens).
///
/// keyward does not authenticate people: the host does, and says who the
/// person is, which account they act for and which permissions they hold
/// there (Admin: `readApiKeys` + `writeApiKeys`, Staff: `readApiKeys`, plus
/// the permissions they may hand out to keys). The id and name are recorded
/// in every audit event the person causes.
///
/// ```
/// use keyward::{AccountId, PermissionSet, User};
/// let admin = User::new(
///     "u_42",
///     "Ada Admin",
///     AccountId::new("acme")?,
///     PermissionSet::parse(["readApiKeys", "writeApiKeys"])?,
/// )?;
/// assert_eq!(admin.name(), "Ada Admin");
/// # Ok::<_, Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    id: Box<str>,
    name: Box<str>,
    account: AccountId,
    permissions: PermissionSet,
    client_ip: Option<IpAddr>,
}

impl User {
    /// A person with the host's `id` and display `name`, acting for
    /// `account` with `permissions`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when the id or name is empty, longer than
    /// 200 characters, or contains control or format characters (they end
    /// up in the audit log).
    pub fn new(
        id: impl Into<String>,
        name: impl Into<String>,
        account: AccountId,
        permissions: PermissionSet,
    ) -> Result<Self> {
        let id = id.into();
        let name = name.into();
        super::validate::user_field("user.id", &id)?;
        super::validate::user_field("user.name", &name)?;
        Ok(Self {
            id: id.into(),
            name: name.into(),
            account,
            permissions,
            client_ip: None,
        })
    }

    /// The client address the person's request came from, recorded in the
    /// audit events it causes (the HTTP adapters set it).
    #[must_use]
    pub fn with_client_ip(mut self, ip: Option<IpAddr>) -> Self {
        self.client_ip = ip;
        self
    }

    /// The host's id for the person.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The person's display name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The account the person acts for.
    pub fn account(&self) -> &AccountId {
        &self.account
    }

    /// The permissions the host grants the person.
    pub fn permissions(&self) -> &PermissionSet {
        &self.permissions
    }

    /// The client address, when known.
    pub fn client_ip(&self) -> Option<IpAddr> {
        self.client_ip
    }
}

impl<'a> Actor<'a> {
    /// The permissions a bounded actor holds (`None` for the system),
    /// before implications (see [`super::bounds::held`]).
    pub(crate) fn permissions(&self) -> Option<&'a PermissionSet> {
        match self {
            Actor::System => None,
            Actor::Principal(p) => Some(p.permissions()),
            Actor::User(u) => Some(u.permissions()),
        }
    }

    /// The account a bounded actor acts for (`None` for the system).
    pub(crate) fn account(&self) -> Option<&'a AccountId> {
        match self {
            Actor::System => None,
            Actor::Principal(p) => Some(p.account_id()),
            Actor::User(u) => Some(u.account()),
        }
    }

    /// Succeeds when the actor holds `permission` (`writeApiKeys` implies
    /// `readApiKeys`).
    ///
    /// # Errors
    /// [`Error::Forbidden`] naming the permission.
    pub(crate) fn require(&self, permission: &Permission) -> Result<()> {
        match self.permissions() {
            Some(held) if !super::bounds::holds(held, permission) => Err(Error::Forbidden {
                permission: permission.clone(),
            }),
            _ => Ok(()),
        }
    }

    /// Checks that the actor may use `permission` on `account`. Another
    /// account's records are reported as absent (`what` not found).
    pub(crate) fn authorize(
        &self,
        account: &AccountId,
        permission: &Permission,
        what: &'static str,
    ) -> Result<()> {
        self.require(permission)?;
        match self.account() {
            Some(own) if own != account => Err(Error::NotFound(what)),
            _ => Ok(()),
        }
    }

    /// The audit actor: who, explicitly, for every kind.
    pub(crate) fn audit(&self) -> AuditActor {
        match self {
            Actor::System => AuditActor::system(),
            Actor::Principal(p) => AuditActor {
                kind: if p.session_id().is_some() {
                    ActorKind::Session
                } else {
                    ActorKind::Key
                },
                key_id: Some(*p.key_id()),
                session_id: p.session_id().copied(),
                account_id: Some(*p.home_account_id()),
                user_id: None,
                user_name: None,
            },
            Actor::User(u) => AuditActor {
                kind: ActorKind::User,
                key_id: None,
                session_id: None,
                account_id: Some(u.account),
                user_id: Some(u.id.to_string()),
                user_name: Some(u.name.to_string()),
            },
        }
    }

    /// The client address behind the actor, if known.
    pub(crate) fn client_ip(&self) -> Option<IpAddr> {
        match self {
            Actor::System => None,
            Actor::Principal(p) => p.client_ip(),
            Actor::User(u) => u.client_ip,
        }
    }
}
