//! [`HostUser`]: a person the host application's own authentication put
//! on a request, so the management API can sit behind the host's login.

use std::net::IpAddr;
use std::sync::Arc;

use crate::http::auth;
use crate::http::config::HttpConfig;
use crate::http::error::HttpError;
use crate::http::headers::{self, RequestHeaders};
use crate::id::AccountId;
use crate::permission::Permission;
use crate::principal::Principal;
use crate::service::{Actor, Keyward, User};

/// A person the host application authenticated, for keyward's management
/// routes. The host's middleware inserts it into the request's extensions
/// (axum: `req.extensions_mut().insert(..)`; actix-web:
/// `req.extensions_mut().insert(..)`); the routes then act as that
/// [`Actor::User`], with the same bounds as a key, and record the person
/// in every audit event.
///
/// A request that carries both a `HostUser` and keyward credentials is
/// refused (400 `invalid_request`): it would be ambiguous who acts.
///
/// ```
/// use keyward::http::HostUser;
/// use keyward::{AccountId, PermissionSet, User};
/// let staff = User::new(
///     "u_7",
///     "Sam Staff",
///     AccountId::new("acme")?,
///     PermissionSet::parse(["readApiKeys"])?,
/// )?;
/// let ext = HostUser::new(staff);
/// assert_eq!(ext.user().id(), "u_7");
/// # Ok::<_, Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct HostUser(Arc<User>);

impl HostUser {
    /// Wraps the person the host authenticated.
    pub fn new(user: User) -> Self {
        Self(Arc::new(user))
    }

    /// The person.
    pub fn user(&self) -> &User {
        &self.0
    }
}

impl From<User> for HostUser {
    fn from(u: User) -> Self {
        Self::new(u)
    }
}

/// Who calls a management route: a key (or session), or a person.
pub(crate) enum Caller {
    /// Authenticated by keyward's credentials.
    Principal(Principal),
    /// Authenticated by the host.
    User(User),
}

impl Caller {
    /// The request's caller: the host's person when there is one (and no
    /// credentials), otherwise the verified principal.
    pub(crate) async fn of(
        kw: &Keyward,
        cfg: &HttpConfig,
        user: Option<&HostUser>,
        h: &RequestHeaders<'_>,
        client_ip: Option<IpAddr>,
    ) -> Result<Self, HttpError> {
        match user {
            Some(u) => {
                if headers::credentials(cfg, h)?.is_some() {
                    return Err(HttpError::invalid_request(
                        cfg,
                        "the request is signed in to the host application and carries keyward credentials; send one or the other",
                    ));
                }
                if headers::account_id(cfg, h)?.is_some() {
                    return Err(HttpError::invalid_request(
                        cfg,
                        "x-account-id applies to keys; a person signed in to the host acts for the account the host gives",
                    ));
                }
                let mut person = u.user().clone();
                if person.client_ip().is_none() {
                    person = person.with_client_ip(client_ip);
                }
                Ok(Caller::User(person))
            }
            None => auth::require(kw, cfg, h, client_ip)
                .await
                .map(Caller::Principal),
        }
    }

    /// The management actor.
    pub(crate) fn actor(&self) -> Actor<'_> {
        match self {
            Caller::Principal(p) => Actor::Principal(p),
            Caller::User(u) => Actor::User(u),
        }
    }

    /// The account the caller acts for.
    pub(crate) fn account(&self) -> &AccountId {
        match self {
            Caller::Principal(p) => p.account_id(),
            Caller::User(u) => u.account(),
        }
    }

    /// Whether the caller holds `permission` (`writeApiKeys` implies
    /// `readApiKeys`).
    pub(crate) fn has(&self, permission: &Permission) -> bool {
        match self {
            Caller::Principal(p) => p.has(permission),
            Caller::User(u) => crate::service::holds(u.permissions(), permission),
        }
    }
}
