//! Rate limits and credits: setting them (authorized and audited like the
//! record they belong to), reading them into a key's cache entry, and
//! writing spent credits in batches.

use std::sync::Arc;

use serde_json::json;

use super::{Actor, Keyward};
use crate::audit::AuditAction;
use crate::error::{Error, Result};
use crate::permission::Permission;
use crate::ratelimit::meter::Meters;
use crate::ratelimit::{LimitOwner, Limits, LimitsChange};
use crate::store::{StoredKey, StoredLimits};

impl Keyward {
    /// The limits of a key, application or account (empty when none are
    /// set), for an actor who may read it.
    ///
    /// # Errors
    /// [`Error::Forbidden`], [`Error::NotFound`], [`Error::Unavailable`].
    pub async fn limits(&self, actor: Actor<'_>, owner: &LimitOwner) -> Result<Limits> {
        self.limits_owner_account(actor, owner, false).await?;
        let stored = self
            .inner
            .store
            .get_limits(std::slice::from_ref(owner))
            .await?;
        Ok(stored
            .into_iter()
            .next()
            .map(|s| current(&s))
            .unwrap_or_default())
    }

    /// Sets (replaces) the limits of a key, application or account; empty
    /// [`Limits`] remove them. Credits start from the given `remaining`.
    /// Effective at once on this instance, on others within W.
    ///
    /// Who may: keys and applications with `writeApiKeys` in their account
    /// (a key never changes its own limits), accounts with `writeAccounts`
    /// on a child account (an account never changes its own).
    ///
    /// ```
    /// # use keyward::*;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let kw = Keyward::builder().store(MemoryStore::new()).build()?;
    /// let perms = PermissionSet::parse(["readApplications"])?;
    /// let account = kw.create_account(Actor::System, NewAccount::new("acme", perms.clone())).await?;
    /// let issued = kw.issue_key(Actor::System, &account.id, NewKey::new("ci").permissions(perms)).await?;
    /// let owner = LimitOwner::Key(issued.key.id);
    /// let two_per_minute = RateLimit::new(Label::from_static("requests"), 2, 60_000);
    /// kw.set_limits(Actor::System, &owner, Limits::new().ratelimit(two_per_minute)).await?;
    /// let (id, secret) = (issued.key.id.as_str(), issued.secret.expose());
    /// kw.verify(id, secret, VerifyContext::new()).await?;
    /// kw.verify(id, secret, VerifyContext::new()).await?;
    /// let third = kw.verify(id, secret, VerifyContext::new()).await;
    /// assert!(matches!(third, Err(Error::RateLimited { .. })));
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming the field, [`Error::Forbidden`],
    /// [`Error::RestrictionNotHeld`] for one's own key or account,
    /// [`Error::NotFound`], [`Error::Unavailable`].
    pub async fn set_limits(
        &self,
        actor: Actor<'_>,
        owner: &LimitOwner,
        limits: Limits,
    ) -> Result<Limits> {
        limits.validate().map_err(invalid_limits)?;
        let account = self.limits_owner_account(actor, owner, true).await?;
        let version = self
            .inner
            .store
            .get_limits(std::slice::from_ref(owner))
            .await?
            .first()
            .map_or(0, |s| s.version)
            + 1;
        let mut stored = StoredLimits::new(*owner, limits, version);
        if let Some(r) = stored.limits.credits.and_then(|c| c.refill) {
            stored.period = r.interval.period_start(self.now_nanos());
        }
        let (action, key_id) = match owner {
            LimitOwner::Key(id) => (AuditAction::KeyUpdated, Some(*id)),
            LimitOwner::App(_) => (AuditAction::AppUpdated, None),
            LimitOwner::Account(_) => (AuditAction::AccountUpdated, None),
        };
        let mut details = json!({ "changed": ["ratelimits", "credits"], "limits": stored.limits });
        if let LimitOwner::App(id) = owner {
            details["app_id"] = json!(id);
        }
        let event = self.event(action, account, key_id, None, actor, details);
        self.inner.store.put_limits(&stored, &event).await?;
        self.inner.meters.forget(owner);
        self.reload_limited(owner).await;
        Ok(stored.limits)
    }

    /// The account an owner belongs to, once `actor` may read (or, with
    /// `write`, change) its limits.
    async fn limits_owner_account(
        &self,
        actor: Actor<'_>,
        owner: &LimitOwner,
        write: bool,
    ) -> Result<crate::id::AccountId> {
        let own = |field: &'static str| Error::RestrictionNotHeld {
            field,
            reason: "a principal may not change its own limits".into(),
        };
        match owner {
            LimitOwner::Key(id) => {
                let perm = if write {
                    Permission::write_api_keys()
                } else {
                    Permission::read_api_keys()
                };
                let stored = self.stored_for(actor, id, &perm).await?;
                if write
                    && let Actor::Principal(p) = actor
                    && p.key_id() == id
                {
                    return Err(own("ratelimits"));
                }
                Ok(stored.key.account_id)
            }
            LimitOwner::App(id) => {
                let perm = if write {
                    Permission::write_api_keys()
                } else {
                    Permission::read_api_keys()
                };
                Ok(self.app_for(actor, id, &perm).await?.account_id)
            }
            LimitOwner::Account(id) => {
                let perm = if write {
                    Permission::write_accounts()
                } else {
                    Permission::read_accounts()
                };
                actor.require(&perm)?;
                let account = self
                    .inner
                    .store
                    .get_account(id)
                    .await?
                    .ok_or(Error::NotFound("account"))?;
                if let Some(acting) = actor.account() {
                    if write && acting == id {
                        return Err(own("ratelimits"));
                    }
                    if acting != id && account.parent.as_ref() != Some(acting) {
                        return Err(Error::NotFound("account"));
                    }
                }
                Ok(account.id)
            }
        }
    }

    /// Re-reads the cached keys a change of `owner`'s limits concerns, so
    /// it is effective here at once (a key's own entry; for applications
    /// and accounts the entries that use its meter pick it up on their
    /// next read, within W — or at once for keys read after the change).
    async fn reload_limited(&self, owner: &LimitOwner) {
        if let LimitOwner::Key(id) = owner
            && let Err(e) = self.load_key(id).await
        {
            tracing::warn!(target: "keyward::limits", key_id = %id, error = %e, "reloading the key after a limits change failed; it applies within W");
        }
    }

    /// The meters of a key read from the store: its own, its
    /// application's, its account's.
    pub(crate) async fn load_meters(&self, stored: &StoredKey) -> Result<Meters> {
        let owners = crate::store::limit_owners(&stored.key);
        let found = self.inner.store.get_limits(&owners).await?;
        Ok(self.meters_of(stored, &found))
    }

    /// The meters of `stored` given the stored limits `found` of its
    /// owners (read with the key, or by [`load_meters`](Self::load_meters)).
    pub(crate) fn meters_of(&self, stored: &StoredKey, found: &[StoredLimits]) -> Meters {
        if found.is_empty() {
            return Meters::NONE;
        }
        let owners = crate::store::limit_owners(&stored.key);
        let now = self.now_nanos();
        let mut meters = Vec::with_capacity(found.len());
        for owner in &owners {
            if let Some(s) = found
                .iter()
                .find(|s| s.owner == *owner && !s.limits.is_empty())
            {
                meters.push(self.inner.meters.meter(s, now));
            }
        }
        Meters((!meters.is_empty()).then(|| Arc::from(meters)))
    }

    /// Writes the credits spent on this instance and re-reads the stored
    /// counts (one store call per owner with credits in use here). On a
    /// failure the spent counts are kept for the next flush.
    ///
    /// # Errors
    /// The first store failure.
    pub async fn flush_credits(&self) -> Result<()> {
        let mut first_error = None;
        for meter in self.inner.meters.with_credits() {
            let Some(live) = &meter.credits else { continue };
            let spent = live.take_spent();
            let period = live
                .config
                .refill
                .map_or(0, |r| r.interval.period_start(self.now_nanos()));
            match self
                .inner
                .store
                .spend_credits(&meter.owner, spent, period)
                .await
            {
                Ok(Some(remaining)) => live.synced(remaining),
                Ok(None) => {}
                Err(e) => {
                    live.restore_spent(spent);
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) => Err(e.into()),
            None => Ok(()),
        }
    }
}

impl Keyward {
    /// Checks a create's or update's [`LimitsChange`] before anything is
    /// written: the limits it names, and — for an existing `owner` — that
    /// `actor` may change its limits (so a refused change leaves the
    /// record unchanged too).
    pub(crate) async fn check_limits_change(
        &self,
        actor: Actor<'_>,
        owner: Option<&LimitOwner>,
        change: &LimitsChange,
    ) -> Result<()> {
        if change.is_empty() {
            return Ok(());
        }
        change.validate().map_err(invalid_limits)?;
        if let Some(owner) = owner {
            self.limits_owner_account(actor, owner, true).await?;
        }
        Ok(())
    }

    /// Sets what `change` names of `owner`'s limits, over the stored ones
    /// (nothing when it names nothing).
    pub(crate) async fn apply_limits_change(
        &self,
        actor: Actor<'_>,
        owner: LimitOwner,
        change: LimitsChange,
    ) -> Result<()> {
        if change.is_empty() {
            return Ok(());
        }
        let stored = self
            .inner
            .store
            .get_limits(std::slice::from_ref(&owner))
            .await?;
        let now = stored.first().map(current).unwrap_or_default();
        self.set_limits(actor, &owner, change.over(now)).await?;
        Ok(())
    }
}

/// The limits as they stand: credits with the stored remaining count.
fn current(s: &StoredLimits) -> Limits {
    let mut limits = s.limits.clone();
    if let Some(c) = &mut limits.credits {
        c.remaining = s.remaining;
    }
    limits
}

/// [`InvalidLimits`](crate::ratelimit::InvalidLimits) as the service's
/// [`Error::InvalidInput`].
pub(crate) fn invalid_limits(e: crate::ratelimit::InvalidLimits) -> Error {
    Error::InvalidInput {
        field: leak_field(&e.field),
        reason: e.reason.into(),
    }
}

/// `InvalidInput` names its field with a `&'static str`; limit fields are
/// a bounded set of paths (16 limits × 5 fields, the credits' fields).
fn leak_field(field: &str) -> &'static str {
    static FIELDS: std::sync::LazyLock<Vec<String>> = std::sync::LazyLock::new(|| {
        let mut v = vec![
            "ratelimits".to_owned(),
            "credits.remaining".to_owned(),
            "credits.refill.amount".to_owned(),
        ];
        for i in 0..crate::ratelimit::MAX_RATE_LIMITS {
            for f in ["name", "limit", "duration_ms", "burst", "auto_apply"] {
                v.push(format!("ratelimits[{i}].{f}"));
            }
        }
        v
    });
    FIELDS
        .iter()
        .find(|f| f.as_str() == field)
        .map_or("ratelimits", String::as_str)
}
