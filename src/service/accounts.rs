//! Accounts: create (children of the acting account), get, list children,
//! update (name, permissions, status).
//!
//! A bounded actor (a principal or a person) manages only the direct
//! children of the account it acts for, with `readAccounts` /
//! `writeAccounts`; what it grants lies within the parent's permissions and
//! its own, and changing a child's permissions or status needs every
//! permission the child has (the bound of managing a key).

use serde_json::json;
use time::OffsetDateTime;

use super::judged::rejudged;
use super::page::{cursor_position, cut_page, page_limit};
use super::{Actor, Keyward, may_manage, validate};
use crate::account::{Account, AccountStatus, AccountUpdate, NewAccount};
use crate::audit::AuditAction;
use crate::error::{Error, Result};
use crate::id::AccountId;
use crate::permission::Permission;
use crate::random::fill_base62;
use crate::store::AccountQuery;

/// Filters and page for [`Keyward::list_accounts`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ListAccounts {
    /// Name contains (case-insensitive).
    pub q: Option<String>,
    /// Status filter.
    pub status: Option<AccountStatus>,
    /// Page size, 1–100 (default 50).
    pub limit: usize,
    /// Cursor from a previous page.
    pub cursor: Option<String>,
}

impl Default for ListAccounts {
    fn default() -> Self {
        Self {
            q: None,
            status: None,
            limit: 50,
            cursor: None,
        }
    }
}

impl ListAccounts {
    /// The first page of 50, unfiltered.
    pub fn new() -> Self {
        Self::default()
    }
    /// Name contains `q`.
    pub fn q(mut self, q: impl Into<String>) -> Self {
        self.q = Some(q.into());
        self
    }
    /// Only accounts with `status`.
    pub fn status(mut self, status: AccountStatus) -> Self {
        self.status = Some(status);
        self
    }
    /// Page size.
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = limit;
        self
    }
    /// Continue after `cursor`.
    pub fn cursor(mut self, cursor: impl Into<String>) -> Self {
        self.cursor = Some(cursor.into());
        self
    }
}

/// One page of accounts.
#[derive(Debug, Clone)]
pub struct AccountPage {
    /// The accounts, ordered by creation time.
    pub items: Vec<Account>,
    /// Pass to [`ListAccounts::cursor`] for the next page; `None` on the
    /// last.
    pub next_cursor: Option<String>,
}

/// The result of [`Keyward::update_account`].
#[derive(Debug, Clone)]
pub struct AccountUpdated {
    /// The account after the update.
    pub account: Account,
    /// When the update revoked something (fewer permissions,
    /// deactivation): the instant it is effective on every instance (at
    /// once on this one).
    pub effective_by: Option<OffsetDateTime>,
}

impl Keyward {
    /// Creates an account. [`Actor::System`] may create any account; a
    /// bounded actor with `writeAccounts` creates children of the account
    /// it acts for, with permissions within that account's and its own.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad name, [`Error::NotGrantable`],
    /// [`Error::NotFound`] for an unknown parent, [`Error::Conflict`] when
    /// the id exists, [`Error::Forbidden`], [`Error::AccountNotAllowed`],
    /// [`Error::Unavailable`].
    #[tracing::instrument(name = "keyward.create_account", skip_all, fields(account_id = ?new.id), err(level = "debug", Display))]
    pub async fn create_account(&self, actor: Actor<'_>, new: NewAccount) -> Result<Account> {
        let mut new = new;
        let limits = std::mem::take(&mut new.limits);
        self.check_limits_change(actor, None, &limits).await?;
        let done = self.create_account_record(actor, new).await?;
        self.apply_limits_change(
            actor,
            crate::ratelimit::LimitOwner::Account(done.id),
            limits,
        )
        .await?;
        Ok(done)
    }

    /// [`create_account`](Self::create_account) of the record alone (its
    /// limits set by the caller).
    async fn create_account_record(&self, actor: Actor<'_>, new: NewAccount) -> Result<Account> {
        validate::name(&new.name)?;
        let now = self.now();
        // The caches' time of this change (their clock: see `Clock::now_unix_nanos`).
        let read_at = self.now_nanos();
        actor.require(&Permission::write_accounts())?;
        if let Some(acting) = actor.account()
            && new.parent.as_ref() != Some(acting)
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
            status: AccountStatus::Active,
            created_at: now,
            last_used_at: None,
            version: 1,
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

    /// The account, if `actor` may see it: the account it acts for or a
    /// direct child of it (a bounded actor needs `readAccounts` for a
    /// child).
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::Forbidden`], [`Error::Unavailable`].
    #[tracing::instrument(name = "keyward.get_account", skip_all, fields(account_id = %id), err(level = "debug", Display))]
    pub async fn get_account(&self, actor: Actor<'_>, id: &AccountId) -> Result<Account> {
        let account = self
            .inner
            .store
            .get_account(id)
            .await?
            .ok_or(Error::NotFound("account"))?;
        match actor.account() {
            None => Ok(account),
            Some(own) if account.id == *own => Ok(account),
            Some(own) if account.parent.as_ref() == Some(own) => {
                actor.require(&Permission::read_accounts())?;
                Ok(account)
            }
            Some(_) => Err(Error::NotFound("account")),
        }
    }

    /// A page of `parent`'s direct children.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad limit or cursor,
    /// [`Error::Forbidden`] without `readAccounts`, [`Error::NotFound`]
    /// for a foreign parent, [`Error::Unavailable`].
    pub async fn list_accounts(
        &self,
        actor: Actor<'_>,
        parent: &AccountId,
        list: ListAccounts,
    ) -> Result<AccountPage> {
        let limit = page_limit(list.limit)?;
        let after = cursor_position(list.cursor.as_deref(), |id| AccountId::new(id).ok())?;
        actor.authorize(parent, &Permission::read_accounts(), "account")?;
        let query = AccountQuery {
            name_contains: list.q.filter(|q| !q.is_empty()),
            status: list.status,
            after,
            limit: limit + 1,
        };
        let mut items = self.inner.store.list_accounts(parent, &query).await?;
        let next_cursor = cut_page(&mut items, limit, |a| (a.created_at, a.id.as_str()));
        Ok(AccountPage { items, next_cursor })
    }

    /// Applies `update` to a child account. Narrowed permissions narrow
    /// every key of the account (key ∩ account); deactivation stops all
    /// its keys and their sessions (ended for good); both at once on this
    /// instance and within W everywhere, in one store transaction with one
    /// audit event.
    ///
    /// # Errors
    /// [`Error::InvalidInput`], [`Error::NotGrantable`] (permissions beyond
    /// the parent's or the actor's), [`Error::PermissionNotHeld`] when the
    /// account has permissions the actor lacks (permission or status
    /// changes), [`Error::Forbidden`] without `writeAccounts`,
    /// [`Error::NotFound`] for an account that is not a child of the
    /// actor's, [`Error::Conflict`] when it kept changing concurrently (a
    /// change in between is read and judged again, a few times),
    /// [`Error::Unavailable`].
    pub async fn update_account(
        &self,
        actor: Actor<'_>,
        id: &AccountId,
        update: AccountUpdate,
    ) -> Result<AccountUpdated> {
        let mut update = update;
        let limits = std::mem::take(&mut update.limits);
        self.check_limits_change(
            actor,
            Some(&crate::ratelimit::LimitOwner::Account(*id)),
            &limits,
        )
        .await?;
        let done = self.update_account_record(actor, id, update).await?;
        self.apply_limits_change(actor, crate::ratelimit::LimitOwner::Account(*id), limits)
            .await?;
        Ok(done)
    }

    /// [`update_account`](Self::update_account) of the record alone (its limits set by the caller).
    async fn update_account_record(
        &self,
        actor: Actor<'_>,
        id: &AccountId,
        update: AccountUpdate,
    ) -> Result<AccountUpdated> {
        if let Some(n) = &update.name {
            validate::name(n)?;
        }
        actor.require(&Permission::write_accounts())?;
        rejudged(|| self.update_account_judged(actor, id, update.clone())).await
    }

    /// One attempt of [`update_account`](Self::update_account) on validated
    /// input: reads the account, judges the update on it and writes it if
    /// the account is still the version judged ([`Error::Conflict`]
    /// otherwise).
    async fn update_account_judged(
        &self,
        actor: Actor<'_>,
        id: &AccountId,
        update: AccountUpdate,
    ) -> Result<AccountUpdated> {
        let mut account = self
            .inner
            .store
            .get_account(id)
            .await?
            .ok_or(Error::NotFound("account"))?;
        if let Some(acting) = actor.account() {
            // Only children: an actor never changes its own account.
            if account.parent.as_ref() != Some(acting) {
                return Err(Error::NotFound("account"));
            }
        }
        let before = account.clone();
        let mut changed: Vec<&'static str> = Vec::new();
        if let Some(n) = update.name.filter(|n| *n != account.name) {
            account.name = n;
            changed.push("name");
        }
        if let Some(p) = update.permissions.filter(|p| *p != account.permissions) {
            if let Some(parent) = &account.parent {
                let (parent, _) = self
                    .load_account(parent)
                    .await?
                    .ok_or(Error::NotFound("parent account"))?;
                validate::grantable(&p, &parent.permissions, actor.permissions())?;
            }
            account.permissions = p;
            changed.push("permissions");
        }
        if let Some(s) = update.status.filter(|s| *s != account.status) {
            account.status = s;
            changed.push("status");
        }
        if changed.is_empty() {
            return Ok(AccountUpdated {
                account: before,
                effective_by: None,
            });
        }
        if changed != ["name"]
            && let Some(held) = actor.permissions()
        {
            may_manage(held, &before.permissions)
                .map_err(|permissions| Error::PermissionNotHeld { permissions })?;
        }
        let now = self.now();
        let read_at = self.now_nanos();
        let action = match (before.status, account.status) {
            (AccountStatus::Active, AccountStatus::Inactive) => AuditAction::AccountDeactivated,
            (AccountStatus::Inactive, AccountStatus::Active) => AuditAction::AccountActivated,
            _ => AuditAction::AccountUpdated,
        };
        let event = self.event(
            action,
            account.id,
            None,
            None,
            actor,
            {
                let diff = super::audit::Diff::of(&before, &account, &changed);
                json!({ "changed": changed, "permissions": account.permissions, "before": diff.before, "after": diff.after })
            },
        );
        let expected = account.version;
        account.version += 1;
        self.inner
            .store
            .update_account(&account, expected, &event)
            .await?;
        self.inner.accounts.insert(account.clone(), read_at);
        self.inner.keys.invalidate_account(&account.id);
        if action == AuditAction::AccountDeactivated {
            // Its sessions were deleted; none outlives that here.
            self.inner.sessions.clear();
        }
        let revokes = action == AuditAction::AccountDeactivated
            || !before.permissions.is_subset(&account.permissions);
        Ok(AccountUpdated {
            account,
            effective_by: revokes.then(|| self.effective_by(now)),
        })
    }
}
