//! [`Principal`]: who a verified request is.

use std::net::IpAddr;
use std::sync::Arc;

use crate::cache::SecretRef;
use crate::error::Error;
use crate::id::{AccountId, KeyId, SessionId};
use crate::permission::{Permission, PermissionSet};

/// The account and effective permissions a key grants, shared between the
/// verification cache and the principals it hands out.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct Grant {
    pub(crate) account: AccountId,
    pub(crate) permissions: PermissionSet,
    /// The rate limits and credits of the key, its application and its
    /// account.
    pub(crate) meters: crate::ratelimit::meter::Meters,
}

/// The authenticated caller of a request: the key (and session, if any),
/// the account it acts for and its effective permissions (the key's
/// permissions ∩ the account's, as of verification).
///
/// Cloning is cheap and allocation-free.
#[derive(Debug, Clone)]
pub struct Principal {
    pub(crate) key_id: KeyId,
    pub(crate) home: Arc<Grant>,
    pub(crate) acting: Option<Arc<Grant>>,
    /// Shared with the session's cache entry (a principal is moved
    /// through every extractor and layer: small is cheap to move).
    pub(crate) session_id: Option<Arc<SessionId>>,
    pub(crate) client_ip: Option<IpAddr>,
    /// The key's secret that was proved (a session's: the one it was
    /// opened with); a session opened with this principal records it.
    pub(crate) secret: SecretRef,
    /// Where the request stands against the rate limit closest to refusing
    /// it (for the `RateLimit` response headers).
    pub(crate) limit_status: Option<crate::ratelimit::meter::Applied>,
}

impl Principal {
    /// The key that authenticated.
    pub fn key_id(&self) -> &KeyId {
        &self.key_id
    }

    /// The account the request acts for: the key's own account, or a child
    /// account selected with [`Keyward::act_for`](crate::Keyward::act_for).
    pub fn account_id(&self) -> &AccountId {
        &self.grant().account
    }

    /// The key's own account.
    pub fn home_account_id(&self) -> &AccountId {
        &self.home.account
    }

    /// The session, when the request presented a bearer session token.
    pub fn session_id(&self) -> Option<&SessionId> {
        self.session_id.as_deref()
    }

    /// The client address the request came from, when known.
    pub fn client_ip(&self) -> Option<IpAddr> {
        self.client_ip
    }

    /// Effective permissions.
    pub fn permissions(&self) -> &PermissionSet {
        &self.grant().permissions
    }

    /// Whether the principal holds `permission` (`writeApiKeys` implies
    /// `readApiKeys`).
    pub fn has(&self, permission: &Permission) -> bool {
        crate::service::holds(self.permissions(), permission)
    }

    /// [`has`](Self::has) by name (a name checked at compile time).
    #[cfg(any(feature = "axum", feature = "actix"))]
    pub(crate) fn has_name(&self, name: &str) -> bool {
        crate::service::holds_name(self.permissions(), name)
    }

    /// Succeeds when the principal holds `permission`.
    ///
    /// # Errors
    /// [`Error::Forbidden`] naming the missing permission.
    pub fn require(&self, permission: &Permission) -> Result<(), Error> {
        if self.has(permission) {
            Ok(())
        } else {
            Err(Error::Forbidden {
                permission: permission.clone(),
            })
        }
    }

    /// Where this request stands against the applied rate limit closest
    /// to refusing it, when any applied (for `RateLimit` headers).
    pub fn rate_limit(&self) -> Option<crate::ratelimit::LimitStatus> {
        self.home.meters.status(self.limit_status?)
    }

    pub(crate) fn grant(&self) -> &Grant {
        self.acting.as_deref().unwrap_or(&self.home)
    }
}

#[cfg(test)]
mod layout {
    /// A principal is moved through every extractor and layer: above 128
    /// bytes the compiler calls `memcpy` for each move (at 136 bytes about
    /// 260 instructions a request in `benches/http.rs`), and axum's
    /// handler moves the extractor's future, which holds it, with `memcpy`
    /// unless that fits in 128 bytes too. At 96 bytes every move is inline.
    #[test]
    fn a_principal_fits_in_96_bytes() {
        assert!(std::mem::size_of::<super::Principal>() <= 96);
    }
}
