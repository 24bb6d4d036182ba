//! [`Actor`]: who performs a management operation.

use crate::error::{Error, Result};
use crate::id::AccountId;
use crate::permission::Permission;
use crate::principal::Principal;

/// Who performs a management operation.
#[derive(Debug, Clone, Copy)]
pub enum Actor<'a> {
    /// The application itself (bootstrap, back-office jobs): every account,
    /// every permission.
    System,
    /// A verified principal: only its (acting) account, only with
    /// `readApiKeys` / `writeApiKeys`, and it may grant only permissions it
    /// holds.
    Principal(&'a Principal),
}

impl<'a> From<&'a Principal> for Actor<'a> {
    fn from(p: &'a Principal) -> Self {
        Actor::Principal(p)
    }
}

impl Actor<'_> {
    /// Checks that the actor may use `permission` on `account`. Another
    /// account's records are reported as absent (`what` not found).
    pub(crate) fn authorize(
        &self,
        account: &AccountId,
        permission: &Permission,
        what: &'static str,
    ) -> Result<()> {
        match self {
            Actor::System => Ok(()),
            Actor::Principal(p) => {
                p.require(permission)?;
                if p.account_id() == account {
                    Ok(())
                } else {
                    Err(Error::NotFound(what))
                }
            }
        }
    }

    /// The audit actor.
    pub(crate) fn audit(&self) -> crate::audit::AuditActor {
        match self {
            Actor::System => crate::audit::AuditActor {
                key_id: None,
                session_id: None,
                account_id: None,
            },
            Actor::Principal(p) => crate::audit::AuditActor {
                key_id: Some(*p.key_id()),
                session_id: p.session_id().copied(),
                account_id: Some(*p.home_account_id()),
            },
        }
    }

    /// The client address behind the actor, if known.
    pub(crate) fn client_ip(&self) -> Option<std::net::IpAddr> {
        match self {
            Actor::System => None,
            Actor::Principal(p) => p.client_ip(),
        }
    }
}
