//! The management API's origin allowlist: which browser origins may call
//! it. The server's own origin is a built-in, protected entry; the others
//! are stored, shared by every instance, and managed here.
//!
//! The list is deployment-wide, so a bounded actor manages it only from a
//! top-level account (one without a parent: the operator's, not a
//! customer's), with `readApiKeys` to read it and `writeApiKeys` to change
//! it.

use serde_json::json;

use super::{Actor, Keyward};
use crate::audit::AuditAction;
use crate::error::{Error, Result};
use crate::id::AccountId;
use crate::origin::{AllowedOrigin, normalize_origin};
use crate::permission::Permission;
use crate::random::fill_base62;
use crate::store::StoreError;

/// The id of the built-in entry: the server's own origin.
pub(crate) const SELF_ORIGIN_ID: &str = "orig_self";

impl Keyward {
    /// The stored allowlist entries (the built-in entry for the server's
    /// own origin is not among them).
    ///
    /// # Errors
    /// [`Error::Forbidden`], [`Error::AccountNotAllowed`] from a child
    /// account, [`Error::Unavailable`].
    pub async fn allowed_origins(&self, actor: Actor<'_>) -> Result<Vec<AllowedOrigin>> {
        self.operator(actor, &Permission::read_api_keys()).await?;
        Ok(self.inner.store.list_allowed_origins().await?)
    }

    /// Whether a browser request from `origin` may call the management
    /// API: it is listed. (The server's own origin is decided by the HTTP
    /// layer, which knows the request's host.)
    ///
    /// # Errors
    /// [`Error::Unavailable`].
    pub async fn origin_is_listed(&self, origin: &str) -> Result<bool> {
        let Ok(origin) = normalize_origin(origin) else {
            return Ok(false);
        };
        let listed = self.inner.store.list_allowed_origins().await?;
        Ok(listed.iter().any(|o| o.origin == origin))
    }

    /// Adds `origin` to the allowlist.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] (`origin`) for anything but
    /// `scheme://host[:port]`, [`Error::Conflict`] when it is listed,
    /// [`Error::Forbidden`], [`Error::AccountNotAllowed`],
    /// [`Error::Unavailable`].
    pub async fn allow_origin(&self, actor: Actor<'_>, origin: &str) -> Result<AllowedOrigin> {
        let origin = normalize_origin(origin).map_err(|e| Error::InvalidInput {
            field: "origin",
            reason: e.to_string(),
        })?;
        let account = self.operator(actor, &Permission::write_api_keys()).await?;
        let mut r = [0u8; 17];
        fill_base62(&mut r);
        let entry = AllowedOrigin {
            id: format!("orig_{}", std::str::from_utf8(&r).unwrap_or_default()),
            origin,
            protected: false,
            created_at: self.now(),
        };
        let event = self.event(
            AuditAction::OriginAllowed,
            account,
            None,
            None,
            actor,
            json!({ "id": entry.id, "origin": entry.origin }),
        );
        self.inner
            .store
            .insert_allowed_origin(&entry, &event)
            .await?;
        Ok(entry)
    }

    /// Removes the entry `id`.
    ///
    /// # Errors
    /// [`Error::Protected`] for the built-in entry, [`Error::NotFound`],
    /// [`Error::Forbidden`], [`Error::AccountNotAllowed`],
    /// [`Error::Unavailable`].
    pub async fn remove_allowed_origin(&self, actor: Actor<'_>, id: &str) -> Result<()> {
        let account = self.operator(actor, &Permission::write_api_keys()).await?;
        if id == SELF_ORIGIN_ID {
            return Err(Error::Protected);
        }
        let event = self.event(
            AuditAction::OriginRemoved,
            account,
            None,
            None,
            actor,
            json!({ "id": id }),
        );
        match self.inner.store.delete_allowed_origin(id, &event).await {
            Ok(()) => Ok(()),
            Err(StoreError::NotFound) => Err(Error::NotFound("origin")),
            Err(e) => Err(e.into()),
        }
    }

    /// The account an allowlist change is recorded under: a bounded
    /// actor's own top-level account (the system's: a placeholder).
    async fn operator(&self, actor: Actor<'_>, permission: &Permission) -> Result<AccountId> {
        actor.require(permission)?;
        let Some(account) = actor.account() else {
            return AccountId::new("system").map_err(|e| Error::Internal(Box::new(e)));
        };
        let (a, _) = self
            .load_account(account)
            .await?
            .ok_or(Error::AccountNotAllowed)?;
        if a.parent.is_some() {
            return Err(Error::AccountNotAllowed);
        }
        Ok(a.id)
    }
}
