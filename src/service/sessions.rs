//! Sessions: login, logout.

use serde_json::json;
use time::OffsetDateTime;

use super::{Actor, Keyward};
use crate::api_key::{ApiKey, KeyStatus};
use crate::audit::AuditAction;
use crate::context::VerifyContext;
use crate::credential::{new_session_token, parse_session_token};
use crate::digest::session_digest;
use crate::error::{Error, Result};
use crate::principal::Principal;
use crate::secret::Secret;
use crate::session::Session;
use crate::store::StoreError;
use crate::store::StoredKey;

/// A session opened by [`Keyward::login`].
#[derive(Debug)]
pub struct LoginSession {
    /// The bearer token, shown this once; only its digest is stored.
    pub token: Secret,
    /// The session record.
    pub session: Session,
}

impl LoginSession {
    /// When the session ends.
    pub fn expires_at(&self) -> OffsetDateTime {
        self.session.expires_at
    }
}

impl Keyward {
    /// Opens a session with a key id and secret; the token then
    /// authenticates as `Authorization: Bearer <token>` until it expires
    /// (default 1 h), the holder logs out, or the key is deactivated,
    /// deleted, expired or rotated without grace (within W).
    ///
    /// # Errors
    /// As [`verify`](Self::verify).
    #[tracing::instrument(name = "keyward.login", skip_all, err(level = "debug", Display))]
    pub async fn login(
        &self,
        key_id: &str,
        secret: &str,
        ctx: VerifyContext<'_>,
    ) -> Result<LoginSession> {
        let principal = self.verify(key_id, secret, ctx).await?;
        self.open_session(&principal).await
    }

    /// Opens a session for a principal verified with a key (not with a
    /// session: sessions are not extended by logging in with them).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a session principal,
    /// [`Error::Unauthorized`] when the key is gone, [`Error::Unavailable`].
    #[tracing::instrument(name = "keyward.open_session", skip_all, fields(key_id = %principal.key_id(), account_id = %principal.account_id()), err(level = "debug", Display))]
    pub async fn open_session(&self, principal: &Principal) -> Result<LoginSession> {
        if principal.session_id().is_some() {
            return Err(Error::InvalidInput {
                field: "credentials",
                reason: "log in with a key, not with a session".into(),
            });
        }
        let now = self.now();
        // The caches' time of this change (their clock: see `Clock::now_unix_nanos`).
        let read_at = self.now_nanos();
        let key_id = *principal.key_id();
        let (id, token) = new_session_token(&self.inner.prefix);
        let (_, material) = parse_session_token(token.expose().as_bytes(), &self.inner.prefix)?;
        // The secret the principal proved, and the key's session epoch
        // then: the store refuses the session if the key was deleted or
        // deactivated since (atomically with those changes).
        let opened = principal.secret;
        let session = Session {
            id,
            key_id,
            account_id: *principal.home_account_id(),
            created_at: now,
            expires_at: now + self.inner.session_ttl,
            key_generation: opened.generation,
            key_epoch: opened.epoch,
            token_digest: session_digest(material),
        };
        let event = self.event(
            AuditAction::Login,
            session.account_id,
            Some(key_id),
            Some(id),
            Actor::Principal(principal),
            json!({ "expires_at": session.expires_at.unix_timestamp() }),
        );
        self.inner
            .store
            .insert_session(&session, &event)
            .await
            .map_err(|e| match e {
                StoreError::NotFound => Error::Unauthorized,
                e => e.into(),
            })?;
        self.inner
            .sessions
            .insert(id, super::verify::session_entry(&session, read_at));
        Ok(LoginSession { token, session })
    }

    /// Ends the principal's session: its token stops working at once on
    /// this instance and within W everywhere.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when the principal did not authenticate with
    /// a session, [`Error::Unauthorized`] when it already ended,
    /// [`Error::Unavailable`].
    #[tracing::instrument(name = "keyward.logout", skip_all, fields(key_id = %principal.key_id()), err(level = "debug", Display))]
    pub async fn logout(&self, principal: &Principal) -> Result<()> {
        let Some(id) = principal.session_id().copied() else {
            return Err(Error::InvalidInput {
                field: "credentials",
                reason: "logout needs a session token".into(),
            });
        };
        let event = self.event(
            AuditAction::Logout,
            *principal.home_account_id(),
            Some(*principal.key_id()),
            Some(id),
            Actor::Principal(principal),
            serde_json::Value::Null,
        );
        let result = self.inner.store.delete_session(&id, &event).await;
        self.inner.sessions.remove(&id);
        match result {
            Ok(()) => Ok(()),
            Err(StoreError::NotFound) => Err(Error::Unauthorized),
            Err(e) => Err(e.into()),
        }
    }
}

/// Ends the key's sessions for good when `before` → `stored.key` revokes
/// them: a deactivation, or an expiry moved (cleared, extended) after it
/// passed. Bumps the key's session epoch, so reactivating the key or
/// extending its expiry revives no session opened before.
pub(crate) fn end_sessions_if_revoked(
    before: &ApiKey,
    stored: &mut StoredKey,
    now: OffsetDateTime,
) {
    let after = &stored.key;
    let deactivated = before.status == KeyStatus::Active && after.status == KeyStatus::Inactive;
    let expired_moved =
        before.expires_at.is_some_and(|at| at <= now) && after.expires_at != before.expires_at;
    if deactivated || expired_moved {
        stored.session_epoch = stored.session_epoch.wrapping_add(1);
    }
}
