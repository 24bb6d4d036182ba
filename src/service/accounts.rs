//! Accounts.

use serde_json::json;

use super::{Actor, Keyward, validate};
use crate::account::{Account, NewAccount};
use crate::audit::AuditAction;
use crate::error::{Error, Result};
use crate::id::AccountId;
use crate::permission::Permission;
use crate::random::fill_base62;

impl Keyward {
    /// Creates an account. [`Actor::System`] may create any account; a
    /// principal with `writeApiKeys` may create child accounts of its own
    /// account, with permissions it holds.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad name, [`Error::NotGrantable`],
    /// [`Error::NotFound`] for an unknown parent, [`Error::Conflict`] when
    /// the id exists, [`Error::Forbidden`], [`Error::Unavailable`].
    #[tracing::instrument(name = "keyward.create_account", skip_all, fields(account_id = ?new.id), err(level = "debug", Display))]
    pub async fn create_account(&self, actor: Actor<'_>, new: NewAccount) -> Result<Account> {
        validate::name(&new.name)?;
        let now = self.now();
        // The caches' time of this change (their clock: see `Clock::now_unix_nanos`).
        let read_at = self.now_nanos();
        actor.require(&Permission::write_api_keys())?;
        if let Some(home) = home_account(actor)
            && new.parent.as_ref() != Some(home)
        {
            return Err(Error::AccountNotAllowed);
        }
        if let Some(parent) = &new.parent {
            let (parent, _) = self
                .load_account(parent)
                .await?
                .ok_or(Error::NotFound("parent account"))?;
            validate::grantable(&new.permissions, &parent.permissions, actor.permissions())?;
        }
        let id = match new.id {
            Some(id) => id,
            None => {
                let mut r = [0u8; 17];
                fill_base62(&mut r);
                let s = format!("acct_{}", std::str::from_utf8(&r).unwrap_or_default());
                AccountId::new(&s).map_err(|e| Error::Internal(Box::new(e)))?
            }
        };
        let account = Account {
            id,
            name: new.name,
            parent: new.parent,
            permissions: new.permissions,
            created_at: now,
        };
        let event = self.event(
            AuditAction::AccountCreated,
            id,
            None,
            None,
            actor,
            json!({ "name": account.name, "parent": account.parent, "permissions": account.permissions }),
        );
        self.inner.store.insert_account(&account, &event).await?;
        self.inner.accounts.insert(account.clone(), read_at);
        Ok(account)
    }

    /// The account, if `actor` may see it (its own or a child).
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::Unavailable`].
    #[tracing::instrument(name = "keyward.get_account", skip_all, fields(account_id = %id), err(level = "debug", Display))]
    pub async fn get_account(&self, actor: Actor<'_>, id: &AccountId) -> Result<Account> {
        let account = self
            .inner
            .store
            .get_account(id)
            .await?
            .ok_or(Error::NotFound("account"))?;
        match home_account(actor) {
            None => Ok(account),
            Some(home) if account.id == *home || account.parent.as_ref() == Some(home) => {
                Ok(account)
            }
            Some(_) => Err(Error::NotFound("account")),
        }
    }
}

/// The account a bounded actor belongs to: a key's own account, a
/// person's account. `None` for the system.
fn home_account<'a>(actor: Actor<'a>) -> Option<&'a AccountId> {
    match actor {
        Actor::Principal(p) => Some(p.home_account_id()),
        Actor::User(u) => Some(u.account()),
        _ => None,
    }
}
