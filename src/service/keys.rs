//! Key management: issue, get, list, update, deactivate, activate, rotate,
//! delete.

use ipnet::IpNet;
use serde_json::json;
use time::{Duration, OffsetDateTime};
use zeroize::Zeroizing;

use super::bounds::Ceiling;
use super::judged::rejudged;
use super::page::{cursor_position, cut_page, page_limit};
use super::{Actor, Keyward, validate};
use crate::api_key::{ApiKey, KeyStatus};
use crate::audit::AuditAction;
use crate::credential::{SecretMaterial, new_key_id, new_key_secret, parse_key_secret};
use crate::digest::Tag;
use crate::error::{Error, Result};
use crate::id::{AccountId, AppId, KeyId};
use crate::permission::{Permission, PermissionSet};
use crate::secret::Secret;
use crate::store::{KeyQuery, PhcString, PreviousSecret, StoreError, StoredKey};

/// What [`Keyward::issue_key`] needs. Build with [`NewKey::new`] and the
/// setters.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct NewKey {
    /// Display name (1–200 characters).
    pub name: String,
    /// Free text (up to 2000 characters).
    pub description: String,
    /// Application label.
    pub application: Option<String>,
    /// The application ([`App`](crate::App)) of the same account the key
    /// belongs to.
    pub app_id: Option<AppId>,
    /// Permissions (⊆ the account's, and ⊆ the acting principal's).
    pub permissions: PermissionSet,
    /// Expiry (must be in the future).
    pub expires_at: Option<OffsetDateTime>,
    /// Allowed client networks (empty: any).
    pub allowed_cidrs: Vec<IpNet>,
    /// Allowed browser origins (empty: any): exact `scheme://host[:port]`
    /// origins or `https://*.example.com` subdomain patterns.
    pub allowed_origins: Vec<String>,
    /// Application-defined JSON object (≤ 16 KiB).
    pub metadata: serde_json::Value,
    /// Protected keys (the application's own) are rotated, changed,
    /// deactivated and deleted only by [`Actor::System`], which alone may
    /// set it.
    pub protected: bool,
    /// Instead of `permissions`: every permission the actor may grant on
    /// the account (the account's, within the actor's own), recorded
    /// explicitly on the key.
    pub inherit_permissions: bool,
    /// Rate limits and credits to set on it (see [`LimitsChange`](crate::LimitsChange)).
    pub limits: crate::ratelimit::LimitsChange,
}

impl NewKey {
    /// A key named `name` with no permissions.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            description: String::new(),
            application: None,
            app_id: None,
            permissions: PermissionSet::new(),
            expires_at: None,
            allowed_cidrs: Vec::new(),
            allowed_origins: Vec::new(),
            metadata: serde_json::Value::Object(Default::default()),
            protected: false,
            inherit_permissions: false,
            limits: Default::default(),
        }
    }
    /// Sets the description.
    pub fn description(mut self, d: impl Into<String>) -> Self {
        self.description = d.into();
        self
    }
    /// Sets the application label.
    pub fn application(mut self, a: impl Into<String>) -> Self {
        self.application = Some(a.into());
        self
    }
    /// Puts the key in the application `app`.
    pub fn app(mut self, app: AppId) -> Self {
        self.app_id = Some(app);
        self
    }
    /// Sets the permissions.
    pub fn permissions(mut self, p: PermissionSet) -> Self {
        self.permissions = p;
        self
    }
    /// Sets the expiry.
    pub fn expires_at(mut self, at: OffsetDateTime) -> Self {
        self.expires_at = Some(at);
        self
    }
    /// Sets the allowed client networks.
    pub fn allowed_cidrs(mut self, c: Vec<IpNet>) -> Self {
        self.allowed_cidrs = c;
        self
    }
    /// Sets the allowed browser origins (exact origins or
    /// `https://*.example.com` patterns; normalized when issued).
    ///
    /// ```
    /// # use keyward::{Actor, Keyward, MemoryStore, NewAccount, NewKey, PermissionSet};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let kw = Keyward::builder().store(MemoryStore::new()).build()?;
    /// # let acct = kw.create_account(Actor::System, NewAccount::new("acme", PermissionSet::new())).await?;
    /// let issued = kw
    ///     .issue_key(Actor::System, &acct.id, NewKey::new("web")
    ///         .allowed_origins(vec!["https://app.example.com".into(), "https://*.example.org".into()]))
    ///     .await?;
    /// assert_eq!(issued.key.allowed_origins, ["https://app.example.com", "https://*.example.org"]);
    /// # Ok(()) }
    /// ```
    pub fn allowed_origins(mut self, o: Vec<String>) -> Self {
        self.allowed_origins = o;
        self
    }
    /// Sets the metadata.
    pub fn metadata(mut self, m: serde_json::Value) -> Self {
        self.metadata = m;
        self
    }
    /// Gives the key every permission the actor may grant on the account
    /// (replacing [`permissions`](Self::permissions)), recorded explicitly.
    pub fn inherit_permissions(mut self) -> Self {
        self.inherit_permissions = true;
        self
    }
    /// Marks the key protected.
    pub fn protected(mut self, p: bool) -> Self {
        self.protected = p;
        self
    }

    /// Adds a rate limit (see [`LimitsChange`](crate::LimitsChange)).
    pub fn ratelimit(mut self, limit: crate::RateLimit) -> Self {
        self.limits.push(limit);
        self
    }

    /// Meters it with `credits` (see [`LimitsChange`](crate::LimitsChange)).
    pub fn credits(mut self, credits: crate::Credits) -> Self {
        self.limits.credits = Some(Some(credits));
        self
    }
}

/// A newly issued key and its secret, shown this once.
#[derive(Debug)]
pub struct IssuedKey {
    /// The record.
    pub key: ApiKey,
    /// The secret; keyward keeps only its hash.
    pub secret: Secret,
}

/// Changes to a key; `None` fields stay as they are.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct KeyUpdate {
    /// New name.
    pub name: Option<String>,
    /// New description.
    pub description: Option<String>,
    /// New application label (`Some(None)` clears it).
    pub application: Option<Option<String>>,
    /// New application (`Some(None)`: out of any), within the key's account.
    pub app_id: Option<Option<AppId>>,
    /// New permissions.
    pub permissions: Option<PermissionSet>,
    /// New expiry (`Some(None)` clears it).
    pub expires_at: Option<Option<OffsetDateTime>>,
    /// Activate or deactivate.
    pub status: Option<KeyStatus>,
    /// New allowed networks.
    pub allowed_cidrs: Option<Vec<IpNet>>,
    /// New allowed browser origins.
    pub allowed_origins: Option<Vec<String>>,
    /// New metadata.
    pub metadata: Option<serde_json::Value>,
    /// Rate limits and credits to set on it (see [`LimitsChange`](crate::LimitsChange)).
    pub limits: crate::ratelimit::LimitsChange,
}

impl KeyUpdate {
    /// No changes.
    pub fn new() -> Self {
        Self::default()
    }
    /// Renames.
    pub fn name(mut self, n: impl Into<String>) -> Self {
        self.name = Some(n.into());
        self
    }
    /// Sets the description.
    pub fn description(mut self, d: impl Into<String>) -> Self {
        self.description = Some(d.into());
        self
    }
    /// Sets or clears the application label.
    pub fn application(mut self, a: Option<String>) -> Self {
        self.application = Some(a);
        self
    }
    /// Moves the key to another application of its account (`None`: out
    /// of any).
    pub fn app(mut self, app: Option<AppId>) -> Self {
        self.app_id = Some(app);
        self
    }
    /// Replaces the permissions.
    pub fn permissions(mut self, p: PermissionSet) -> Self {
        self.permissions = Some(p);
        self
    }
    /// Sets or clears the expiry.
    pub fn expires_at(mut self, at: Option<OffsetDateTime>) -> Self {
        self.expires_at = Some(at);
        self
    }
    /// Activates or deactivates.
    pub fn status(mut self, s: KeyStatus) -> Self {
        self.status = Some(s);
        self
    }
    /// Replaces the allowed networks.
    pub fn allowed_cidrs(mut self, c: Vec<IpNet>) -> Self {
        self.allowed_cidrs = Some(c);
        self
    }
    /// Replaces the allowed browser origins (`[]`: any).
    pub fn allowed_origins(mut self, o: Vec<String>) -> Self {
        self.allowed_origins = Some(o);
        self
    }
    /// Replaces the metadata.
    pub fn metadata(mut self, m: serde_json::Value) -> Self {
        self.metadata = Some(m);
        self
    }

    /// Replaces the rate limits (empty: none; see
    /// [`LimitsChange`](crate::LimitsChange)).
    pub fn ratelimits(mut self, limits: Vec<crate::RateLimit>) -> Self {
        self.limits.ratelimits = Some(limits);
        self
    }

    /// Replaces the credits (`None`: unmetered; see
    /// [`LimitsChange`](crate::LimitsChange)).
    pub fn credits(mut self, credits: Option<crate::Credits>) -> Self {
        self.limits.credits = Some(credits);
        self
    }
}

/// The result of an update.
#[derive(Debug, Clone)]
pub struct Updated {
    /// The key after the update.
    pub key: ApiKey,
    /// When the update revoked something (deactivation, fewer permissions,
    /// earlier expiry, narrower networks): the instant it is effective on
    /// every instance.
    pub effective_by: Option<OffsetDateTime>,
}

/// The result of a rotation.
#[derive(Debug)]
pub struct Rotated {
    /// The key after rotation.
    pub key: ApiKey,
    /// The new secret, shown this once.
    pub secret: Secret,
    /// Until when the previous secret still works (`None`: no grace).
    pub previous_secret_expires_at: Option<OffsetDateTime>,
    /// When the previous secret stops working on every instance.
    pub effective_by: OffsetDateTime,
}

/// The result of a deletion.
#[derive(Debug, Clone, Copy)]
pub struct Deleted {
    /// The deleted key.
    pub id: KeyId,
    /// When the deletion is effective on every instance.
    pub effective_by: OffsetDateTime,
}

/// Filters and page for [`Keyward::list_keys`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ListKeys {
    /// Name contains (case-insensitive): 3–200 characters, or empty for
    /// no filter.
    pub q: Option<String>,
    /// Status filter.
    pub status: Option<KeyStatus>,
    /// Application label filter.
    pub application: Option<String>,
    /// Only the keys of this application.
    pub app_id: Option<AppId>,
    /// Page size, 1–100 (default 50).
    pub limit: usize,
    /// Cursor from a previous page.
    pub cursor: Option<String>,
}

impl Default for ListKeys {
    fn default() -> Self {
        Self {
            q: None,
            status: None,
            application: None,
            app_id: None,
            limit: 50,
            cursor: None,
        }
    }
}

impl ListKeys {
    /// The first page of 50, unfiltered.
    pub fn new() -> Self {
        Self::default()
    }
    /// Name contains `q`.
    pub fn q(mut self, q: impl Into<String>) -> Self {
        self.q = Some(q.into());
        self
    }
    /// Only keys with `status`.
    pub fn status(mut self, status: KeyStatus) -> Self {
        self.status = Some(status);
        self
    }
    /// Only keys of `application`.
    pub fn application(mut self, a: impl Into<String>) -> Self {
        self.application = Some(a.into());
        self
    }
    /// Only keys of the application `app`.
    pub fn app(mut self, app: AppId) -> Self {
        self.app_id = Some(app);
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

/// One page of keys.
#[derive(Debug, Clone)]
pub struct KeyPage {
    /// The keys, ordered by creation time.
    pub items: Vec<ApiKey>,
    /// Pass to [`ListKeys::cursor`] for the next page; `None` on the last.
    pub next_cursor: Option<String>,
}

impl Keyward {
    /// Issues a key for `account`. The secret is returned once; only its
    /// argon2id hash is stored.
    ///
    /// A bounded actor grants only permissions it holds, and the key is at
    /// least as restricted as the actor's own (no later expiry, networks
    /// within its own when it has any).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] (name, description, application, metadata,
    /// networks, expiry in the past), [`Error::NotGrantable`],
    /// [`Error::RestrictionNotHeld`],
    /// [`Error::Forbidden`] without `writeApiKeys`, [`Error::NotFound`] for
    /// an unknown or foreign account, [`Error::Unavailable`].
    #[tracing::instrument(name = "keyward.issue_key", skip_all, fields(account_id = %account), err(level = "debug", Display))]
    pub async fn issue_key(
        &self,
        actor: Actor<'_>,
        account: &AccountId,
        new: NewKey,
    ) -> Result<IssuedKey> {
        let mut new = new;
        let limits = std::mem::take(&mut new.limits);
        self.check_limits_change(actor, None, &limits).await?;
        let done = self.issue_key_record(actor, account, new).await?;
        self.apply_limits_change(
            actor,
            crate::ratelimit::LimitOwner::Key(done.key.id),
            limits,
        )
        .await?;
        Ok(done)
    }

    /// [`issue_key`](Self::issue_key) of the record alone (its limits set by the caller).
    async fn issue_key_record(
        &self,
        actor: Actor<'_>,
        account: &AccountId,
        new: NewKey,
    ) -> Result<IssuedKey> {
        let now = self.now();
        // The caches' time of this change (their clock: see `Clock::now_unix_nanos`).
        let read_at = self.now_nanos();
        let key = self.new_key_record(actor, account, new, now).await?;
        let secret = new_key_secret(&self.inner.prefix);
        let material = parse_key_secret(secret.expose().as_bytes(), &self.inner.prefix)?;
        let tag = self.inner.digester.tag(material);
        let hash = self.hash_secret(material).await?;
        let stored = StoredKey {
            key,
            secret_hash: hash,
            generation: 0,
            previous: None,
            version: 1,
            session_epoch: 0,
        };
        let event = self.event(
            AuditAction::KeyCreated,
            *account,
            Some(stored.key.id),
            None,
            actor,
            json!({ "name": stored.key.name, "permissions": stored.key.permissions, "app_id": stored.key.app_id }),
        )
        .in_app(stored.key.app_id);
        self.inner.store.insert_key(&stored, &event).await?;
        self.cache_key(&stored, Some(tag), read_at).await?;
        Ok(IssuedKey {
            key: stored.key,
            secret,
        })
    }

    /// The key's record.
    ///
    /// # Errors
    /// [`Error::NotFound`] when absent or in another account,
    /// [`Error::Forbidden`] without `readApiKeys`, [`Error::Unavailable`].
    #[tracing::instrument(name = "keyward.get_key", skip_all, fields(key_id = %id), err(level = "debug", Display))]
    pub async fn get_key(&self, actor: Actor<'_>, id: &KeyId) -> Result<ApiKey> {
        Ok(self
            .stored_for(actor, id, &Permission::read_api_keys())
            .await?
            .key)
    }

    /// A page of `account`'s keys.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad limit or cursor, or a search
    /// `q` shorter than 3 characters (or longer than 200),
    /// [`Error::Forbidden`], [`Error::NotFound`] for a foreign account,
    /// [`Error::Unavailable`].
    #[tracing::instrument(name = "keyward.list_keys", skip_all, fields(account_id = %account), err(level = "debug", Display))]
    pub async fn list_keys(
        &self,
        actor: Actor<'_>,
        account: &AccountId,
        list: ListKeys,
    ) -> Result<KeyPage> {
        let limit = page_limit(list.limit)?;
        let q = list.q.filter(|q| !q.is_empty());
        if let Some(q) = &q {
            super::validate::key_search(q)?;
        }
        let after = cursor_position(list.cursor.as_deref(), |id| KeyId::new(id).ok())?;
        actor.authorize(account, &Permission::read_api_keys(), "account")?;
        let query = KeyQuery {
            name_contains: q,
            status: list.status,
            application: list.application,
            app_id: list.app_id,
            after,
            limit: limit + 1,
        };
        let mut items = self.inner.store.list_keys(account, &query).await?;
        let next_cursor = cut_page(&mut items, limit, |k| (k.created_at, k.id.as_str()));
        Ok(KeyPage { items, next_cursor })
    }

    /// Applies `update`. Takes effect at once on this instance and within W
    /// everywhere.
    ///
    /// A bounded actor (principal, person) must hold every permission of
    /// the key, and may not set a later (or no) expiry, or networks outside
    /// its own key's. A move to another application (`app_id`) stays
    /// within the key's account; moved into an inactive application, the
    /// key stops (within W elsewhere: `effective_by`).
    ///
    /// # Errors
    /// [`Error::InvalidInput`], [`Error::NotGrantable`],
    /// [`Error::PermissionNotHeld`], [`Error::RestrictionNotHeld`],
    /// [`Error::Protected`], [`Error::Forbidden`], [`Error::NotFound`]
    /// (`"application"` for an application not of the key's account),
    /// [`Error::Conflict`] when the key kept changing concurrently (a
    /// change in between is read and judged again, a few times),
    /// [`Error::Unavailable`].
    #[tracing::instrument(name = "keyward.update_key", skip_all, fields(key_id = %id), err(level = "debug", Display))]
    pub async fn update_key(
        &self,
        actor: Actor<'_>,
        id: &KeyId,
        update: KeyUpdate,
    ) -> Result<Updated> {
        let mut update = update;
        let limits = std::mem::take(&mut update.limits);
        self.check_limits_change(
            actor,
            Some(&crate::ratelimit::LimitOwner::Key(*id)),
            &limits,
        )
        .await?;
        let done = self.update_key_record(actor, id, update).await?;
        self.apply_limits_change(actor, crate::ratelimit::LimitOwner::Key(*id), limits)
            .await?;
        Ok(done)
    }

    /// [`update_key`](Self::update_key) of the record alone (its limits set by the caller).
    async fn update_key_record(
        &self,
        actor: Actor<'_>,
        id: &KeyId,
        update: KeyUpdate,
    ) -> Result<Updated> {
        let now = self.now();
        // The caches' time of this change (their clock: see `Clock::now_unix_nanos`).
        let read_at = self.now_nanos();
        if let Some(n) = &update.name {
            validate::name(n)?;
        }
        if let Some(d) = &update.description {
            validate::description(d)?;
        }
        if let Some(Some(a)) = &update.application {
            validate::application(a)?;
        }
        if let Some(m) = &update.metadata {
            validate::metadata(m)?;
        }
        if let Some(c) = &update.allowed_cidrs {
            validate::cidrs(c)?;
        }
        let mut update = update;
        update.allowed_origins = update.allowed_origins.map(validate::origins).transpose()?;
        update.expires_at = update.expires_at.map(|e| e.map(stored_precision));
        if let Some(e) = update.expires_at {
            validate::expiry(e, now)?;
        }
        rejudged(|| self.update_key_judged(actor, id, update.clone(), now, read_at)).await
    }

    /// One attempt of [`update_key`](Self::update_key) on validated input:
    /// reads the key, judges the update on it and writes it if the key is
    /// still the one judged ([`Error::Conflict`] otherwise).
    async fn update_key_judged(
        &self,
        actor: Actor<'_>,
        id: &KeyId,
        update: KeyUpdate,
        now: OffsetDateTime,
        read_at: i64,
    ) -> Result<Updated> {
        let mut stored = self
            .stored_for(actor, id, &Permission::write_api_keys())
            .await?;
        let own = self.acting_key(actor, Some(&stored)).await?;
        let ceiling = Ceiling::of(actor, own.as_ref());
        ceiling.manage(&stored.key)?;
        if let Some(p) = &update.permissions {
            let (acct, _) = self
                .load_account(&stored.key.account_id)
                .await?
                .ok_or(Error::NotFound("account"))?;
            validate::grantable(p, &acct.permissions, ceiling.grant_bound())?;
        }
        ceiling.restrict(
            update.expires_at,
            update.allowed_cidrs.as_deref(),
            update.allowed_origins.as_deref(),
        )?;
        // A move stays within the key's account; the bounds on the key
        // itself (above) are the mover's bound.
        let mut into_inactive = false;
        if let Some(Some(app)) = &update.app_id {
            match self.inner.store.get_app(app).await? {
                Some(a) if a.account_id == stored.key.account_id => {
                    into_inactive = a.status == crate::app::AppStatus::Inactive;
                }
                _ => return Err(Error::NotFound("application")),
            }
        }
        let before = stored.key.clone();
        let k = &mut stored.key;
        let mut changed: Vec<&'static str> = Vec::new();
        macro_rules! set {
            ($field:ident, $label:literal) => {
                if let Some(v) = update.$field {
                    if k.$field != v {
                        k.$field = v;
                        changed.push($label);
                    }
                }
            };
        }
        set!(name, "name");
        set!(description, "description");
        set!(application, "application");
        set!(app_id, "app_id");
        set!(permissions, "permissions");
        set!(expires_at, "expires_at");
        set!(status, "status");
        set!(allowed_cidrs, "allowed_cidrs");
        set!(allowed_origins, "allowed_origins");
        set!(metadata, "metadata");
        if changed.is_empty() {
            return Ok(Updated {
                key: before,
                effective_by: None,
            });
        }
        k.updated_at = now;
        let revokes = (before.status == KeyStatus::Active && k.status == KeyStatus::Inactive)
            || !before.permissions.is_subset(&k.permissions)
            || match (before.expires_at, k.expires_at) {
                (_, None) => false,
                (None, Some(_)) => true,
                (Some(old), Some(new)) => new < old,
            }
            || (k.allowed_cidrs != before.allowed_cidrs && !k.allowed_cidrs.is_empty())
            || (k.app_id != before.app_id && into_inactive)
            || (k.allowed_origins != before.allowed_origins && !k.allowed_origins.is_empty());
        let action = match (before.status, k.status) {
            (KeyStatus::Active, KeyStatus::Inactive) => AuditAction::KeyDeactivated,
            (KeyStatus::Inactive, KeyStatus::Active) => AuditAction::KeyActivated,
            _ => AuditAction::KeyUpdated,
        };
        super::sessions::end_sessions_if_revoked(&before, &mut stored, now);
        let expected = stored.version;
        stored.version += 1;
        let event = self
            .event(action, stored.key.account_id, Some(*id), None, actor, {
                let diff = super::audit::Diff::of(&before, &stored.key, &changed);
                json!({ "changed": changed, "before": diff.before, "after": diff.after })
            })
            .in_app(stored.key.app_id);
        self.inner
            .store
            .update_key(&stored, expected, &event)
            .await?;
        self.cache_key(&stored, None, read_at).await?;
        Ok(Updated {
            key: stored.key,
            effective_by: revokes.then(|| self.effective_by(now)),
        })
    }

    /// Deactivates a key (it can be reactivated).
    ///
    /// # Errors
    /// As [`update_key`](Self::update_key).
    #[tracing::instrument(name = "keyward.deactivate_key", skip_all, fields(key_id = %id), err(level = "debug", Display))]
    pub async fn deactivate_key(&self, actor: Actor<'_>, id: &KeyId) -> Result<Updated> {
        self.update_key(actor, id, KeyUpdate::new().status(KeyStatus::Inactive))
            .await
    }

    /// Reactivates a deactivated key.
    ///
    /// # Errors
    /// As [`update_key`](Self::update_key).
    #[tracing::instrument(name = "keyward.activate_key", skip_all, fields(key_id = %id), err(level = "debug", Display))]
    pub async fn activate_key(&self, actor: Actor<'_>, id: &KeyId) -> Result<Updated> {
        self.update_key(actor, id, KeyUpdate::new().status(KeyStatus::Active))
            .await
    }

    /// Issues a new secret. The old one keeps working for `grace_period`
    /// (default none, at most the configured maximum); sessions opened with
    /// it end with it.
    ///
    /// The new secret goes to the actor, so a bounded actor must hold every
    /// permission of the key, and the key must be at least as restricted
    /// (expiry, networks) as the actor's own.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a negative or too long grace period,
    /// [`Error::PermissionNotHeld`], [`Error::RestrictionNotHeld`],
    /// [`Error::Protected`], [`Error::Forbidden`], [`Error::NotFound`],
    /// [`Error::Conflict`] when the key kept changing (a key changed
    /// between the read and the write is read and judged again, a few
    /// times), [`Error::Unavailable`].
    #[tracing::instrument(name = "keyward.rotate_key", skip_all, fields(key_id = %id), err(level = "debug", Display))]
    pub async fn rotate_key(
        &self,
        actor: Actor<'_>,
        id: &KeyId,
        grace_period: Option<Duration>,
    ) -> Result<Rotated> {
        let now = self.now();
        // The caches' time of this change (their clock: see `Clock::now_unix_nanos`).
        let read_at = self.now_nanos();
        let grace = grace_period.unwrap_or(Duration::ZERO);
        if grace < Duration::ZERO || grace > self.inner.max_grace {
            return Err(Error::InvalidInput {
                field: "grace_period_seconds",
                reason: format!(
                    "must be between 0 and {} seconds",
                    self.inner.max_grace.whole_seconds()
                ),
            });
        }
        // The new secret is drawn and hashed once (argon2 is the costly
        // part), after the first judgement; a re-judgement reuses it.
        let fresh = tokio::sync::OnceCell::new();
        let (key, until) =
            rejudged(|| self.rotate_key_judged(actor, id, grace, now, read_at, &fresh)).await?;
        let Some((secret, _, _)) = fresh.into_inner() else {
            return Err(Error::Conflict("key"));
        };
        let everywhere = self.effective_by(now);
        Ok(Rotated {
            key,
            secret,
            previous_secret_expires_at: until,
            effective_by: until.map_or(everywhere, |u| u.max(everywhere)),
        })
    }

    /// One attempt of [`rotate_key`](Self::rotate_key): reads the key,
    /// judges the rotation on it, and writes the secret of `fresh` (drawn
    /// and hashed on the first attempt that gets this far) if the key is
    /// still the one judged ([`Error::Conflict`] otherwise).
    async fn rotate_key_judged(
        &self,
        actor: Actor<'_>,
        id: &KeyId,
        grace: Duration,
        now: OffsetDateTime,
        read_at: i64,
        fresh: &tokio::sync::OnceCell<(Secret, Tag, PhcString)>,
    ) -> Result<(ApiKey, Option<OffsetDateTime>)> {
        let mut stored = self
            .stored_for(actor, id, &Permission::write_api_keys())
            .await?;
        // The new secret goes to the actor: the key must be within what it
        // holds, restrictions included.
        let own = self.acting_key(actor, Some(&stored)).await?;
        let ceiling = Ceiling::of(actor, own.as_ref());
        ceiling.manage(&stored.key)?;
        ceiling.restrict(
            Some(stored.key.expires_at),
            Some(&stored.key.allowed_cidrs),
            Some(&stored.key.allowed_origins),
        )?;
        let (_, tag, hash) = fresh
            .get_or_try_init(|| async {
                let secret = new_key_secret(&self.inner.prefix);
                let material = parse_key_secret(secret.expose().as_bytes(), &self.inner.prefix)?;
                let tag = self.inner.digester.tag(material);
                let hash = self.hash_secret(material).await?;
                Ok::<_, Error>((secret, tag, hash))
            })
            .await?;
        let until = (grace > Duration::ZERO).then(|| now + grace);
        let old = std::mem::replace(&mut stored.secret_hash, hash.clone());
        stored.previous = until.map(|valid_until| PreviousSecret {
            hash: old,
            valid_until,
        });
        stored.generation = stored.generation.wrapping_add(1);
        let expected = stored.version;
        stored.version += 1;
        stored.key.updated_at = now;
        let event = self
            .event(
                AuditAction::KeyRotated,
                stored.key.account_id,
                Some(*id),
                None,
                actor,
                json!({ "grace_period_seconds": grace.whole_seconds() }),
            )
            .in_app(stored.key.app_id);
        self.inner
            .store
            .update_key(&stored, expected, &event)
            .await?;
        self.cache_key(&stored, Some(*tag), read_at).await?;
        Ok((stored.key, until))
    }

    /// Deletes a key and its sessions. Protected keys are deleted only by
    /// [`Actor::System`]. The deletion is judged on the key as read and
    /// happens only if the key is still that version; a key changed in
    /// between is read and judged again (a few times).
    ///
    /// # Errors
    /// [`Error::Protected`], [`Error::PermissionNotHeld`],
    /// [`Error::Forbidden`], [`Error::NotFound`], [`Error::Conflict`] when
    /// the key kept changing, [`Error::Unavailable`].
    #[tracing::instrument(name = "keyward.delete_key", skip_all, fields(key_id = %id), err(level = "debug", Display))]
    pub async fn delete_key(&self, actor: Actor<'_>, id: &KeyId) -> Result<Deleted> {
        rejudged(|| self.delete_key_judged(actor, id)).await
    }

    /// One attempt of [`delete_key`](Self::delete_key): reads the key,
    /// judges the deletion on it and deletes it if it is still the key
    /// judged ([`Error::Conflict`] otherwise).
    async fn delete_key_judged(&self, actor: Actor<'_>, id: &KeyId) -> Result<Deleted> {
        let now = self.now();
        let stored = self
            .stored_for(actor, id, &Permission::write_api_keys())
            .await?;
        let own = self.acting_key(actor, Some(&stored)).await?;
        Ceiling::of(actor, own.as_ref()).manage(&stored.key)?;
        let event = self
            .event(
                AuditAction::KeyDeleted,
                stored.key.account_id,
                Some(*id),
                None,
                actor,
                json!({ "name": stored.key.name }),
            )
            .in_app(stored.key.app_id);
        match self
            .inner
            .store
            .delete_key(id, stored.version, &event)
            .await
        {
            Ok(()) | Err(StoreError::NotFound) => {}
            Err(e) => return Err(e.into()),
        }
        self.inner.keys.mark_missing(id, self.now_nanos());
        Ok(Deleted {
            id: *id,
            effective_by: self.effective_by(now),
        })
    }

    /// The record of a new key for `account` once every rule allows it
    /// (fields, the actor's bounds, the account's permissions): what
    /// [`issue_key`](Self::issue_key) and key imports store.
    pub(super) async fn new_key_record(
        &self,
        actor: Actor<'_>,
        account: &AccountId,
        new: NewKey,
        now: OffsetDateTime,
    ) -> Result<ApiKey> {
        validate::name(&new.name)?;
        validate::description(&new.description)?;
        if let Some(a) = &new.application {
            validate::application(a)?;
        }
        validate::metadata(&new.metadata)?;
        validate::cidrs(&new.allowed_cidrs)?;
        let mut new = new;
        new.allowed_origins = validate::origins(std::mem::take(&mut new.allowed_origins))?;
        new.expires_at = new.expires_at.map(stored_precision);
        validate::expiry(new.expires_at, now)?;
        actor.authorize(account, &Permission::write_api_keys(), "account")?;
        if new.protected && !matches!(actor, Actor::System) {
            return Err(Error::InvalidInput {
                field: "protected",
                reason: "only the application itself may create protected keys".into(),
            });
        }
        let (acct, _) = self
            .load_account(account)
            .await?
            .ok_or(Error::NotFound("account"))?;
        if let Some(app) = &new.app_id {
            match self.inner.store.get_app(app).await? {
                Some(a) if a.account_id == *account => {}
                _ => return Err(Error::NotFound("application")),
            }
        }
        let own = self.acting_key(actor, None).await?;
        let ceiling = Ceiling::of(actor, own.as_ref());
        if new.inherit_permissions {
            new.permissions = acct
                .permissions
                .iter()
                .filter(|p| {
                    ceiling
                        .grant_bound()
                        .is_none_or(|held| super::holds(held, p))
                })
                .cloned()
                .collect();
        }
        validate::grantable(&new.permissions, &acct.permissions, ceiling.grant_bound())?;
        ceiling.restrict(
            Some(new.expires_at),
            Some(&new.allowed_cidrs),
            Some(&new.allowed_origins),
        )?;

        Ok(ApiKey {
            id: new_key_id(&self.inner.prefix),
            account_id: *account,
            name: new.name,
            description: new.description,
            application: new.application,
            app_id: new.app_id,
            permissions: new.permissions,
            status: KeyStatus::Active,
            protected: new.protected,
            created_at: now,
            updated_at: now,
            last_used_at: None,
            expires_at: new.expires_at,
            allowed_cidrs: new.allowed_cidrs,
            allowed_origins: new.allowed_origins,
            metadata: if new.metadata.is_null() {
                serde_json::Value::Object(Default::default())
            } else {
                new.metadata
            },
        })
    }

    /// The stored key, if `actor` may use `permission` on it.
    pub(crate) async fn stored_for(
        &self,
        actor: Actor<'_>,
        id: &KeyId,
        permission: &Permission,
    ) -> Result<StoredKey> {
        actor.require(permission)?;
        let stored = self
            .inner
            .store
            .get_key(id)
            .await?
            .ok_or(Error::NotFound("key"))?;
        actor.authorize(&stored.key.account_id, permission, "key")?;
        Ok(stored)
    }

    /// The record of the key a principal acts with (its restrictions), as
    /// stored now; `target` when that is the same key. `None` for other
    /// actors.
    ///
    /// # Errors
    /// [`Error::Unauthorized`] when the acting key is gone.
    async fn acting_key(
        &self,
        actor: Actor<'_>,
        target: Option<&StoredKey>,
    ) -> Result<Option<ApiKey>> {
        let Actor::Principal(p) = actor else {
            return Ok(None);
        };
        if let Some(t) = target.filter(|t| t.key.id == *p.key_id()) {
            return Ok(Some(t.key.clone()));
        }
        match self.inner.store.get_key(p.key_id()).await? {
            Some(own) => Ok(Some(own.key)),
            None => Err(Error::Unauthorized),
        }
    }

    /// Hashes secret material with argon2id on a blocking thread, within
    /// the concurrency bound.
    pub(super) async fn hash_secret(&self, m: SecretMaterial<'_>) -> Result<PhcString> {
        let _permit = self
            .inner
            .hash_slots
            .acquire()
            .await
            .map_err(|e| Error::Internal(Box::new(e)))?;
        let material = Zeroizing::new(m.0.to_vec());
        let hasher = self.inner.hasher.clone();
        tokio::task::spawn_blocking(move || hasher.hash(SecretMaterial(&material)))
            .await
            .map_err(|e| Error::Internal(Box::new(e)))?
            .map_err(|e| Error::Internal(e.to_string().into()))
    }
}

/// `at` truncated to microseconds, the precision every store keeps, so the
/// answer to a write is what a read returns later.
fn stored_precision(at: OffsetDateTime) -> OffsetDateTime {
    at.replace_nanosecond(at.nanosecond() / 1_000 * 1_000)
        .unwrap_or(at)
}
