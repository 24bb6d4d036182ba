//! [`Keyward::bootstrap_admin`]: the first administrator of a deployment.

use super::keys::{IssuedKey, ListKeys, NewKey};
use super::{Actor, Keyward};
use crate::account::NewAccount;
use crate::error::{Error, Result};
use crate::id::AccountId;
use crate::permission::PermissionSet;

impl Keyward {
    /// Creates the administrator account `id` (name "Administrators") with
    /// `permissions` and issues it a protected key named `admin`, as
    /// [`Actor::System`]. Returns the key and its secret (shown this once),
    /// or `None` when the account already has a key or another instance is
    /// creating it at the same moment. Safe to call on every start.
    ///
    /// The account and the key are two writes: a call that finds the
    /// account without any key (an earlier call stopped in between) issues
    /// the key then, with the account's permissions.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// use keyward::{AccountId, Keyward, MemoryStore, PermissionSet};
    /// let kw = Keyward::builder().store(MemoryStore::new()).build()?;
    /// let admin = AccountId::new("admin")?;
    /// let perms = PermissionSet::parse(["readApiKeys", "writeApiKeys"])?;
    /// let first = kw.bootstrap_admin(&admin, perms.clone()).await?;
    /// let issued = first.expect("first start issues the admin key");
    /// assert!(issued.key.protected);
    /// // Later starts issue nothing.
    /// assert!(kw.bootstrap_admin(&admin, perms).await?.is_none());
    /// # Ok::<_, Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidInput`] / [`Error::NotGrantable`] for unusable
    /// permissions, [`Error::Unavailable`].
    pub async fn bootstrap_admin(
        &self,
        id: &AccountId,
        permissions: PermissionSet,
    ) -> Result<Option<IssuedKey>> {
        let mut perms = permissions;
        match self.get_account(Actor::System, id).await {
            Ok(account) => {
                // The key gets what the account may grant, as it would have.
                perms = account.permissions;
                let keys = self
                    .list_keys(Actor::System, id, ListKeys::new().limit(1))
                    .await?;
                if !keys.items.is_empty() {
                    tracing::info!(account_id = %id, "admin account has a key; nothing issued");
                    return Ok(None);
                }
                tracing::warn!(account_id = %id, "admin account has no key (an earlier bootstrap stopped early)");
            }
            Err(Error::NotFound(_)) => {
                let created = self
                    .create_account(
                        Actor::System,
                        NewAccount::new("Administrators", perms.clone()).id(*id),
                    )
                    .await;
                match created {
                    Ok(_) => {}
                    // Another instance created it first and issues the key.
                    Err(Error::Conflict(_)) => {
                        tracing::info!(account_id = %id, "admin account created by another instance");
                        return Ok(None);
                    }
                    Err(e) => return Err(e),
                }
            }
            Err(e) => return Err(e),
        }
        let issued = self
            .issue_key(
                Actor::System,
                id,
                NewKey::new("admin")
                    .description("created on first start")
                    .permissions(perms)
                    .protected(true),
            )
            .await?;
        tracing::info!(account_id = %id, key_id = %issued.key.id, "admin account and key created");
        Ok(Some(issued))
    }
}
