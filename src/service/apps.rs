//! Applications: create, get, list, update (title, description, status:
//! all its keys off or on at once), delete (with its keys on request).
//!
//! The bounds are the keys' ([`Ceiling::manage`]): switching an
//! application off or on, or deleting it with its keys, needs the actor to
//! hold every permission of each of its keys, and an application holding a
//! protected key changes only through [`Actor::System`].

use serde_json::json;
use time::OffsetDateTime;

use super::bounds::Ceiling;
use super::judged::rejudged;
use super::page::{cursor_position, cut_page, page_limit};
use super::{Actor, Keyward, validate};
use crate::app::{App, AppStatus, AppUpdate, NewApp};
use crate::audit::AuditAction;
use crate::error::{Error, Result};
use crate::id::{AccountId, AppId, KeyId};
use crate::permission::Permission;
use crate::random::fill_base62;
use crate::store::{AppExpectation, AppQuery, KeyQuery, StoreError, StoredKey};

/// Filters and page for [`Keyward::list_apps`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ListApps {
    /// Title contains (case-insensitive).
    pub q: Option<String>,
    /// Status filter.
    pub status: Option<AppStatus>,
    /// Page size, 1–100 (default 50).
    pub limit: usize,
    /// Cursor from a previous page.
    pub cursor: Option<String>,
}

impl Default for ListApps {
    fn default() -> Self {
        Self {
            q: None,
            status: None,
            limit: 50,
            cursor: None,
        }
    }
}

impl ListApps {
    /// The first page of 50, unfiltered.
    pub fn new() -> Self {
        Self::default()
    }
    /// Title contains `q`.
    pub fn q(mut self, q: impl Into<String>) -> Self {
        self.q = Some(q.into());
        self
    }
    /// Only applications with `status`.
    pub fn status(mut self, status: AppStatus) -> Self {
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

/// One page of applications.
#[derive(Debug, Clone)]
pub struct AppPage {
    /// The applications, ordered by creation time.
    pub items: Vec<App>,
    /// Pass to [`ListApps::cursor`] for the next page; `None` on the last.
    pub next_cursor: Option<String>,
}

/// The result of [`Keyward::update_app`].
#[derive(Debug, Clone)]
pub struct AppUpdated {
    /// The application after the update.
    pub app: App,
    /// When the update switched the application off: the instant its keys
    /// and their sessions stop working on every instance (at once on this
    /// one).
    pub effective_by: Option<OffsetDateTime>,
}

/// The result of [`Keyward::delete_app`].
#[derive(Debug, Clone)]
pub struct AppDeleted {
    /// The deleted application.
    pub id: AppId,
    /// The keys deleted with it (`cascade`), each with its own audit event.
    pub deleted_keys: Vec<KeyId>,
    /// When the deletion of those keys is effective on every instance.
    pub effective_by: OffsetDateTime,
}

/// Keys read per store call when walking an application's keys.
const KEYS_PAGE: usize = 500;

impl Keyward {
    /// Creates an application in `account`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] (title, description), [`Error::Forbidden`]
    /// without `writeApiKeys`, [`Error::NotFound`] for an unknown or
    /// foreign account, [`Error::Unavailable`].
    pub async fn create_app(
        &self,
        actor: Actor<'_>,
        account: &AccountId,
        new: NewApp,
    ) -> Result<App> {
        let mut new = new;
        let limits = std::mem::take(&mut new.limits);
        self.check_limits_change(actor, None, &limits).await?;
        let done = self.create_app_record(actor, account, new).await?;
        self.apply_limits_change(actor, crate::ratelimit::LimitOwner::App(done.id), limits)
            .await?;
        Ok(done)
    }

    /// [`create_app`](Self::create_app) of the record alone (its limits set by the caller).
    async fn create_app_record(
        &self,
        actor: Actor<'_>,
        account: &AccountId,
        new: NewApp,
    ) -> Result<App> {
        validate::title(&new.title)?;
        validate::description(&new.description)?;
        actor.authorize(account, &Permission::write_api_keys(), "account")?;
        self.load_account(account)
            .await?
            .ok_or(Error::NotFound("account"))?;
        let now = self.now();
        let app = App {
            id: new_app_id()?,
            account_id: *account,
            title: new.title,
            description: new.description,
            status: AppStatus::Active,
            created_at: now,
            updated_at: now,
            active_keys: 0,
            inactive_keys: 0,
            protected: false,
            last_used_at: None,
        };
        let event = self
            .event(
                AuditAction::AppCreated,
                *account,
                None,
                None,
                actor,
                json!({ "app_id": app.id, "title": app.title }),
            )
            .in_app(Some(app.id));
        self.inner.store.insert_app(&app, &event).await?;
        Ok(app)
    }

    /// The application's record, with its key counts.
    ///
    /// # Errors
    /// [`Error::NotFound`] when absent or in another account,
    /// [`Error::Forbidden`] without `readApiKeys`, [`Error::Unavailable`].
    pub async fn get_app(&self, actor: Actor<'_>, id: &AppId) -> Result<App> {
        self.app_for(actor, id, &Permission::read_api_keys()).await
    }

    /// A page of `account`'s applications.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad limit or cursor,
    /// [`Error::Forbidden`], [`Error::NotFound`] for a foreign account,
    /// [`Error::Unavailable`].
    pub async fn list_apps(
        &self,
        actor: Actor<'_>,
        account: &AccountId,
        list: ListApps,
    ) -> Result<AppPage> {
        let limit = page_limit(list.limit)?;
        let after = cursor_position(list.cursor.as_deref(), |id| AppId::new(id).ok())?;
        actor.authorize(account, &Permission::read_api_keys(), "account")?;
        let query = AppQuery {
            title_contains: list.q.filter(|q| !q.is_empty()),
            status: list.status,
            after,
            limit: limit + 1,
        };
        let mut items = self.inner.store.list_apps(account, &query).await?;
        let next_cursor = cut_page(&mut items, limit, |a| (a.created_at, a.id.as_str()));
        Ok(AppPage { items, next_cursor })
    }

    /// Applies `update`. Switching the application off stops every one of
    /// its keys and their sessions at once on this instance and within W
    /// everywhere, in one store transaction with one audit event; switching
    /// it on restores exactly the keys whose own status is active (sessions
    /// ended by the switch-off stay ended).
    ///
    /// The bounds are judged on the application and its keys as read, and
    /// the store writes only while they are unchanged: a key that joins the
    /// application, or changes, in between is read and judged again (a few
    /// times) instead of being switched off unjudged.
    ///
    /// # Errors
    /// [`Error::InvalidInput`], [`Error::Forbidden`], [`Error::NotFound`],
    /// [`Error::PermissionNotHeld`] when a key of the application has
    /// permissions the actor lacks (status changes), [`Error::Protected`]
    /// when it holds a protected key, [`Error::Conflict`] when it kept
    /// changing, [`Error::Unavailable`].
    pub async fn update_app(
        &self,
        actor: Actor<'_>,
        id: &AppId,
        update: AppUpdate,
    ) -> Result<AppUpdated> {
        let mut update = update;
        let limits = std::mem::take(&mut update.limits);
        self.check_limits_change(
            actor,
            Some(&crate::ratelimit::LimitOwner::App(*id)),
            &limits,
        )
        .await?;
        let done = self.update_app_record(actor, id, update).await?;
        self.apply_limits_change(actor, crate::ratelimit::LimitOwner::App(*id), limits)
            .await?;
        Ok(done)
    }

    /// [`update_app`](Self::update_app) of the record alone (its limits set by the caller).
    async fn update_app_record(
        &self,
        actor: Actor<'_>,
        id: &AppId,
        update: AppUpdate,
    ) -> Result<AppUpdated> {
        if let Some(t) = &update.title {
            validate::title(t)?;
        }
        if let Some(d) = &update.description {
            validate::description(d)?;
        }
        rejudged(|| self.update_app_judged(actor, id, update.clone())).await
    }

    /// One attempt of [`update_app`](Self::update_app) on validated input:
    /// reads the application and its keys, judges the update on them and
    /// writes it if the store still holds what was judged
    /// ([`Error::Conflict`] otherwise).
    async fn update_app_judged(
        &self,
        actor: Actor<'_>,
        id: &AppId,
        update: AppUpdate,
    ) -> Result<AppUpdated> {
        let mut app = self
            .app_for(actor, id, &Permission::write_api_keys())
            .await?;
        let before = app.clone();
        let mut changed: Vec<&'static str> = Vec::new();
        if let Some(t) = update.title.filter(|t| *t != app.title) {
            app.title = t;
            changed.push("title");
        }
        if let Some(d) = update.description.filter(|d| *d != app.description) {
            app.description = d;
            changed.push("description");
        }
        if let Some(s) = update.status.filter(|s| *s != app.status) {
            app.status = s;
            changed.push("status");
        }
        if changed.is_empty() {
            return Ok(AppUpdated {
                app: before,
                effective_by: None,
            });
        }
        let keys = self.keys_of_app(&app).await?;
        let status_changed = app.status != before.status;
        guard(actor, &keys, status_changed)?;
        let expected = AppExpectation::new(
            before.status,
            keys.iter().map(|k| (k.key.id, k.version)).collect(),
        );
        let now = self.now();
        app.updated_at = now;
        let action = match (before.status, app.status) {
            (AppStatus::Active, AppStatus::Inactive) => AuditAction::AppDeactivated,
            (AppStatus::Inactive, AppStatus::Active) => AuditAction::AppActivated,
            _ => AuditAction::AppUpdated,
        };
        let event = self
            .event(
                action,
                app.account_id,
                None,
                None,
                actor,
                {
                    let diff = super::audit::Diff::of(&before, &app, &changed);
                    json!({ "app_id": app.id, "changed": changed, "keys": keys.len(), "before": diff.before, "after": diff.after })
                },
            )
            .in_app(Some(app.id));
        let moved = self.inner.store.update_app(&app, &expected, &event).await?;
        if status_changed {
            self.refresh_keys(&moved).await;
            if app.status == AppStatus::Inactive {
                // The switch-off deleted the sessions of these keys; drop
                // every cached session so none of them outlives it here.
                self.inner.sessions.clear();
            }
        }
        let app = self
            .inner
            .store
            .get_app(id)
            .await?
            .ok_or(Error::NotFound("application"))?;
        let revokes = action == AuditAction::AppDeactivated;
        Ok(AppUpdated {
            app,
            effective_by: revokes.then(|| self.effective_by(now)),
        })
    }

    /// Deletes an application. While keys belong to it this fails with
    /// [`Error::AppHasKeys`] unless `cascade`, which deletes each of them
    /// first (each with its own audit event, as
    /// [`delete_key`](Self::delete_key) does, judged again on the key as it
    /// is then). A key that joins the application meanwhile stops the
    /// deletion: without `cascade` with [`Error::AppHasKeys`], with it the
    /// application and its keys are read and judged again (a few times).
    ///
    /// # Errors
    /// [`Error::AppHasKeys`], [`Error::PermissionNotHeld`] and
    /// [`Error::Protected`] (checked for every key before any is deleted),
    /// [`Error::Forbidden`], [`Error::NotFound`], [`Error::Conflict`] when
    /// its keys kept changing, [`Error::Unavailable`].
    pub async fn delete_app(
        &self,
        actor: Actor<'_>,
        id: &AppId,
        cascade: bool,
    ) -> Result<AppDeleted> {
        rejudged(|| self.delete_app_judged(actor, id, cascade)).await
    }

    /// One attempt of [`delete_app`](Self::delete_app).
    async fn delete_app_judged(
        &self,
        actor: Actor<'_>,
        id: &AppId,
        cascade: bool,
    ) -> Result<AppDeleted> {
        let app = self
            .app_for(actor, id, &Permission::write_api_keys())
            .await?;
        let keys = self.keys_of_app(&app).await?;
        guard(actor, &keys, true)?;
        if !keys.is_empty() && !cascade {
            return Err(Error::AppHasKeys);
        }
        let mut deleted_keys = Vec::with_capacity(keys.len());
        for k in &keys {
            match self.delete_key(actor, &k.key.id).await {
                Ok(d) => deleted_keys.push(d.id),
                Err(Error::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        let now = self.now();
        let event = self
            .event(
                AuditAction::AppDeleted,
                app.account_id,
                None,
                None,
                actor,
                json!({ "app_id": app.id, "title": app.title, "deleted_keys": deleted_keys }),
            )
            .in_app(Some(app.id));
        match self.inner.store.delete_app(id, &event).await {
            Ok(()) | Err(StoreError::NotFound) => {}
            // A key joined after the keys were read: judge them again.
            Err(StoreError::Conflict(what)) if cascade => return Err(Error::Conflict(what)),
            Err(StoreError::Conflict(_)) => return Err(Error::AppHasKeys),
            Err(e) => return Err(e.into()),
        }
        Ok(AppDeleted {
            id: *id,
            deleted_keys,
            effective_by: self.effective_by(now),
        })
    }

    /// The application, if `actor` may use `permission` on it.
    pub(crate) async fn app_for(
        &self,
        actor: Actor<'_>,
        id: &AppId,
        permission: &Permission,
    ) -> Result<App> {
        actor.require(permission)?;
        let app = self
            .inner
            .store
            .get_app(id)
            .await?
            .ok_or(Error::NotFound("application"))?;
        actor.authorize(&app.account_id, permission, "application")?;
        Ok(app)
    }

    /// Every key of `app`, with its version (what a judged write expects).
    async fn keys_of_app(&self, app: &App) -> Result<Vec<StoredKey>> {
        let mut out: Vec<StoredKey> = Vec::new();
        loop {
            let query = KeyQuery {
                app_id: Some(app.id),
                after: out.last().map(|k| (k.key.created_at, k.key.id)),
                limit: KEYS_PAGE,
                ..KeyQuery::default()
            };
            let page = self
                .inner
                .store
                .list_stored_keys(&app.account_id, &query)
                .await?;
            let last = page.len() < KEYS_PAGE;
            out.extend(page);
            if last {
                return Ok(out);
            }
        }
    }

    /// Drops this instance's cached entries of `keys` and reads them anew,
    /// so a change to their application applies here at once. A key that
    /// cannot be read now stays dropped (its next use reads the store).
    async fn refresh_keys(&self, keys: &[KeyId]) {
        for id in keys {
            self.inner.keys.invalidate(id);
            if let Err(e) = self.load_key(id).await {
                tracing::warn!(target: "keyward::apps", key = %id, error = %e, "re-reading a key of a changed application failed");
            }
        }
    }
}

/// The bounds of changing an application whose keys are `keys`: an
/// application holding a protected key is protected; a change of its
/// status (or deleting its keys) needs each key's permissions.
fn guard(actor: Actor<'_>, keys: &[StoredKey], manages_keys: bool) -> Result<()> {
    let ceiling = Ceiling::of(actor, None);
    if matches!(ceiling, Ceiling::System) {
        return Ok(());
    }
    if keys.iter().any(|k| k.key.protected) {
        return Err(Error::Protected);
    }
    if manages_keys {
        for k in keys {
            ceiling.manage(&k.key)?;
        }
    }
    Ok(())
}

/// A fresh `app_<17 base62>` id.
fn new_app_id() -> Result<AppId> {
    let mut r = [0u8; 17];
    fill_base62(&mut r);
    let s = format!("app_{}", std::str::from_utf8(&r).unwrap_or_default());
    AppId::new(&s).map_err(|e| Error::Internal(Box::new(e)))
}
