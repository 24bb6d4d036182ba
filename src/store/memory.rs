//! [`MemoryStore`]: an in-process store for tests, examples and
//! single-instance services that need no persistence.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use time::OffsetDateTime;
use tokio::sync::watch;

use super::{
    AccountQuery, AppExpectation, AppQuery, EventQuery, ImportedKey, KeyForVerify, KeyQuery,
    KeyStore, SequencedEvent, StoreError, StoreResult, StoredKey, UsageQuery, UsageRecord,
};
use crate::account::{Account, AccountStatus};
use crate::api_key::{ApiKey, KeyStatus};
use crate::app::{App, AppStatus};
use crate::audit::AuditEvent;
use crate::id::{AccountId, AppId, KeyId, SessionId};
use crate::origin::AllowedOrigin;
use crate::session::Session;

#[derive(Debug, Default)]
struct Inner {
    accounts: HashMap<AccountId, Account>,
    keys: HashMap<KeyId, StoredKey>,
    apps: HashMap<AppId, App>,
    origins: Vec<AllowedOrigin>,
    sessions: HashMap<SessionId, Session>,
    /// In commit order (ascending `seq`).
    events: Vec<StoredEvent>,
    last_seq: u64,
    usage: BTreeMap<(OffsetDateTime, KeyId, String, String), UsageRecord>,
    /// Imported keys by external id, and by alias (dropped with their key).
    imports: HashMap<String, KeyId>,
    aliases: HashMap<String, KeyId>,
    limits: HashMap<crate::ratelimit::LimitOwner, super::StoredLimits>,
}

/// An event as kept: its position and its account's parent.
#[derive(Debug)]
struct StoredEvent {
    seq: u64,
    parent: Option<AccountId>,
    event: AuditEvent,
}

impl Inner {
    /// Appends `event` at the next position.
    fn push_event(&mut self, mut event: AuditEvent) {
        // The application of the event's key, when the event names none.
        if event.app_id.is_none()
            && let Some(k) = event.key_id.and_then(|k| self.keys.get(&k))
        {
            event.app_id = k.key.app_id;
        }
        self.last_seq += 1;
        let parent = self.accounts.get(&event.account_id).and_then(|a| a.parent);
        self.events.push(StoredEvent {
            seq: self.last_seq,
            parent,
            event,
        });
    }

    /// The stored events matching `q`'s filters (not its position).
    fn matching<'a>(&'a self, q: &'a EventQuery) -> impl Iterator<Item = &'a StoredEvent> + 'a {
        self.events
            .iter()
            .filter(move |e| q.matches(&e.event, e.parent.as_ref()))
    }
}

/// A store kept in memory. Clones share the same data, so several
/// [`Keyward`](crate::Keyward) instances built on clones behave like
/// instances of a service sharing one database (without a change feed).
#[derive(Debug, Clone)]
pub struct MemoryStore {
    inner: Arc<Mutex<Inner>>,
    unavailable: Arc<AtomicBool>,
    /// Bumped whenever events are appended (see [`KeyStore::event_signal`]).
    events_signal: Arc<watch::Sender<u64>>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self {
            inner: Arc::default(),
            unavailable: Arc::default(),
            events_signal: Arc::new(watch::channel(0).0),
        }
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Wakes the readers of [`KeyStore::event_signal`].
    fn signal_events(&self) {
        self.events_signal.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Makes every operation fail with [`StoreError::Unavailable`] (or work
    /// again), to test how a service behaves when its database is down.
    pub fn set_unavailable(&self, unavailable: bool) {
        self.unavailable.store(unavailable, Ordering::SeqCst);
    }

    fn lock(&self) -> StoreResult<MutexGuard<'_, Inner>> {
        if self.unavailable.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable(
                "memory store set unavailable".into(),
            ));
        }
        // A panic while holding the lock cannot leave a half-written change:
        // every method validates before it mutates.
        Ok(self.inner.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

#[async_trait]
impl KeyStore for MemoryStore {
    async fn insert_account(&self, account: &Account, event: &AuditEvent) -> StoreResult<()> {
        let mut g = self.lock()?;
        if g.accounts.contains_key(&account.id) {
            return Err(StoreError::Conflict("account id exists"));
        }
        let mut account = account.clone();
        account.last_used_at = None;
        g.accounts.insert(account.id, account);
        g.push_event(event.clone());
        self.signal_events();
        Ok(())
    }

    async fn get_account(&self, id: &AccountId) -> StoreResult<Option<Account>> {
        Ok(self.lock()?.accounts.get(id).cloned())
    }

    async fn list_accounts(
        &self,
        parent: &AccountId,
        q: &AccountQuery,
    ) -> StoreResult<Vec<Account>> {
        let g = self.lock()?;
        let needle = q.name_contains.as_ref().map(|s| s.to_lowercase());
        let mut out: Vec<Account> = g
            .accounts
            .values()
            .filter(|a| a.parent.as_ref() == Some(parent))
            .filter(|a| q.status.is_none_or(|s| a.status == s))
            .filter(|a| {
                needle
                    .as_ref()
                    .is_none_or(|n| a.name.to_lowercase().contains(n.as_str()))
            })
            .filter(|a| {
                q.after
                    .as_ref()
                    .is_none_or(|(at, id)| (a.created_at, a.id) > (*at, *id))
            })
            .cloned()
            .collect();
        out.sort_by_key(|a| (a.created_at, a.id));
        out.truncate(q.limit);
        Ok(out)
    }

    async fn update_account(
        &self,
        account: &Account,
        expected_version: u64,
        event: &AuditEvent,
    ) -> StoreResult<()> {
        let mut g = self.lock()?;
        let current = g
            .accounts
            .get_mut(&account.id)
            .ok_or(StoreError::NotFound)?;
        if current.version != expected_version {
            return Err(StoreError::Conflict("account changed since it was read"));
        }
        current.version = account.version;
        current.name.clone_from(&account.name);
        current.permissions.clone_from(&account.permissions);
        current.status = account.status;
        if account.status == AccountStatus::Inactive {
            g.sessions.retain(|_, s| s.account_id != account.id);
        }
        g.push_event(event.clone());
        self.signal_events();
        Ok(())
    }

    async fn insert_key(&self, key: &StoredKey, event: &AuditEvent) -> StoreResult<()> {
        let mut g = self.lock()?;
        if g.keys.contains_key(&key.key.id) {
            return Err(StoreError::Conflict("key id exists"));
        }
        g.keys.insert(key.key.id, key.clone());
        g.push_event(event.clone());
        self.signal_events();
        Ok(())
    }

    async fn get_key(&self, id: &KeyId) -> StoreResult<Option<StoredKey>> {
        Ok(self.lock()?.keys.get(id).cloned())
    }

    async fn get_key_for_verify(&self, id: &KeyId) -> StoreResult<Option<KeyForVerify>> {
        let g = self.lock()?;
        let Some(stored) = g.keys.get(id).cloned() else {
            return Ok(None);
        };
        let app_active = stored.key.app_id.map(|app| {
            g.apps
                .get(&app)
                .is_some_and(|a| a.status == AppStatus::Active)
        });
        let limits = super::limit_owners(&stored.key)
            .iter()
            .filter_map(|o| g.limits.get(o).cloned())
            .collect();
        Ok(Some(KeyForVerify::new(stored, app_active, limits)))
    }

    async fn update_key(
        &self,
        key: &StoredKey,
        expected_version: u64,
        event: &AuditEvent,
    ) -> StoreResult<()> {
        let mut g = self.lock()?;
        let current = g.keys.get_mut(&key.key.id).ok_or(StoreError::NotFound)?;
        if current.version != expected_version {
            return Err(StoreError::Conflict("key changed since it was read"));
        }
        let last_used_at = current.key.last_used_at.max(key.key.last_used_at);
        *current = key.clone();
        current.key.last_used_at = last_used_at;
        g.push_event(event.clone());
        self.signal_events();
        Ok(())
    }

    async fn delete_key(
        &self,
        id: &KeyId,
        expected_version: u64,
        event: &AuditEvent,
    ) -> StoreResult<()> {
        let mut g = self.lock()?;
        match g.keys.get(id) {
            None => return Err(StoreError::NotFound),
            Some(k) if k.version != expected_version => {
                return Err(StoreError::Conflict("key changed since it was read"));
            }
            Some(_) => {}
        }
        g.keys.remove(id);
        g.sessions.retain(|_, s| s.key_id != *id);
        g.imports.retain(|_, k| k != id);
        g.aliases.retain(|_, k| k != id);
        g.push_event(event.clone());
        self.signal_events();
        Ok(())
    }

    async fn insert_imported_keys(&self, keys: &[ImportedKey]) -> StoreResult<()> {
        let mut g = self.lock()?;
        let mut ids = std::collections::HashSet::new();
        let mut externals = std::collections::HashSet::new();
        let mut aliases = std::collections::HashSet::new();
        for k in keys {
            if g.keys.contains_key(&k.stored.key.id) || !ids.insert(k.stored.key.id) {
                return Err(StoreError::Conflict("key id exists"));
            }
            if g.imports.contains_key(&k.external_id) || !externals.insert(&k.external_id) {
                return Err(StoreError::Conflict("external id already imported"));
            }
            if g.aliases.contains_key(&k.alias) || !aliases.insert(&k.alias) {
                return Err(StoreError::Conflict("alias already taken"));
            }
        }
        for k in keys {
            let id = k.stored.key.id;
            g.keys.insert(id, k.stored.clone());
            g.imports.insert(k.external_id.clone(), id);
            g.aliases.insert(k.alias.clone(), id);
            g.push_event(k.event.clone());
        }
        drop(g);
        self.signal_events();
        Ok(())
    }

    async fn imported_key(&self, external_id: &str) -> StoreResult<Option<KeyId>> {
        Ok(self.lock()?.imports.get(external_id).copied())
    }

    async fn key_by_alias(&self, alias: &str) -> StoreResult<Option<KeyId>> {
        Ok(self.lock()?.aliases.get(alias).copied())
    }

    async fn list_keys(&self, account: &AccountId, q: &KeyQuery) -> StoreResult<Vec<ApiKey>> {
        Ok(self
            .list_stored_keys(account, q)
            .await?
            .into_iter()
            .map(|s| s.key)
            .collect())
    }

    async fn list_stored_keys(
        &self,
        account: &AccountId,
        q: &KeyQuery,
    ) -> StoreResult<Vec<StoredKey>> {
        let g = self.lock()?;
        let needle = q.name_contains.as_ref().map(|s| s.to_lowercase());
        let mut keys: Vec<StoredKey> = g
            .keys
            .values()
            .filter(|s| {
                let k = &s.key;
                k.account_id == *account
                    && q.status.is_none_or(|st| k.status == st)
                    && q.application
                        .as_ref()
                        .is_none_or(|a| k.application.as_ref() == Some(a))
                    && q.app_id.is_none_or(|a| k.app_id == Some(a))
                    && needle
                        .as_ref()
                        .is_none_or(|n| k.name.to_lowercase().contains(n.as_str()))
                    && q.after
                        .as_ref()
                        .is_none_or(|(at, id)| (k.created_at, k.id) > (*at, *id))
            })
            .cloned()
            .collect();
        keys.sort_by_key(|s| (s.key.created_at, s.key.id));
        keys.truncate(q.limit);
        Ok(keys)
    }

    async fn get_limits(
        &self,
        owners: &[crate::ratelimit::LimitOwner],
    ) -> StoreResult<Vec<super::StoredLimits>> {
        let g = self.lock()?;
        Ok(owners
            .iter()
            .filter_map(|o| g.limits.get(o).cloned())
            .collect())
    }

    async fn put_limits(
        &self,
        limits: &super::StoredLimits,
        event: &AuditEvent,
    ) -> StoreResult<()> {
        let mut g = self.lock()?;
        if limits.limits.is_empty() {
            g.limits.remove(&limits.owner);
        } else {
            g.limits.insert(limits.owner, limits.clone());
        }
        g.push_event(event.clone());
        Ok(())
    }

    async fn spend_credits(
        &self,
        owner: &crate::ratelimit::LimitOwner,
        spent: u64,
        period: i64,
    ) -> StoreResult<Option<u64>> {
        let mut g = self.lock()?;
        Ok(g.limits.get_mut(owner).and_then(|l| l.spend(spent, period)))
    }

    async fn insert_app(&self, app: &App, event: &AuditEvent) -> StoreResult<()> {
        let mut g = self.lock()?;
        if g.apps.contains_key(&app.id) {
            return Err(StoreError::Conflict("application id exists"));
        }
        let mut app = app.clone();
        (app.active_keys, app.inactive_keys, app.protected) = (0, 0, false);
        app.last_used_at = None;
        g.apps.insert(app.id, app);
        g.push_event(event.clone());
        self.signal_events();
        Ok(())
    }

    async fn get_app(&self, id: &AppId) -> StoreResult<Option<App>> {
        let g = self.lock()?;
        Ok(g.apps.get(id).map(|a| with_counts(&g, a)))
    }

    async fn list_apps(&self, account: &AccountId, q: &AppQuery) -> StoreResult<Vec<App>> {
        let g = self.lock()?;
        let needle = q.title_contains.as_ref().map(|s| s.to_lowercase());
        let mut apps: Vec<&App> = g
            .apps
            .values()
            .filter(|a| a.account_id == *account)
            .filter(|a| q.status.is_none_or(|s| a.status == s))
            .filter(|a| {
                needle
                    .as_ref()
                    .is_none_or(|n| a.title.to_lowercase().contains(n.as_str()))
            })
            .filter(|a| {
                q.after
                    .as_ref()
                    .is_none_or(|(at, id)| (a.created_at, a.id) > (*at, *id))
            })
            .collect();
        apps.sort_by_key(|a| (a.created_at, a.id));
        apps.truncate(q.limit);
        Ok(apps.into_iter().map(|a| with_counts(&g, a)).collect())
    }

    async fn update_app(
        &self,
        app: &App,
        expected: &AppExpectation,
        event: &AuditEvent,
    ) -> StoreResult<Vec<KeyId>> {
        let mut g = self.lock()?;
        let status = g.apps.get(&app.id).ok_or(StoreError::NotFound)?.status;
        let keys = g
            .keys
            .values()
            .filter(|k| k.key.app_id == Some(app.id))
            .map(|k| (k.key.id, k.version))
            .collect();
        if !expected.holds(status, keys) {
            return Err(StoreError::Conflict(
                "application changed since it was read",
            ));
        }
        let current = g.apps.get_mut(&app.id).ok_or(StoreError::NotFound)?;
        let status_changed = current.status != app.status;
        current.title.clone_from(&app.title);
        current.description.clone_from(&app.description);
        current.status = app.status;
        current.updated_at = app.updated_at;
        let mut moved = Vec::new();
        if status_changed {
            for k in g.keys.values_mut().filter(|k| k.key.app_id == Some(app.id)) {
                k.version += 1;
                moved.push(k.key.id);
            }
            if app.status == AppStatus::Inactive {
                g.sessions.retain(|_, s| !moved.contains(&s.key_id));
            }
        }
        g.push_event(event.clone());
        self.signal_events();
        Ok(moved)
    }

    async fn delete_app(&self, id: &AppId, event: &AuditEvent) -> StoreResult<()> {
        let mut g = self.lock()?;
        if !g.apps.contains_key(id) {
            return Err(StoreError::NotFound);
        }
        if g.keys.values().any(|k| k.key.app_id == Some(*id)) {
            return Err(StoreError::Conflict("application has keys"));
        }
        g.apps.remove(id);
        g.push_event(event.clone());
        self.signal_events();
        Ok(())
    }

    async fn list_allowed_origins(&self) -> StoreResult<Vec<AllowedOrigin>> {
        Ok(self.lock()?.origins.clone())
    }

    async fn insert_allowed_origin(
        &self,
        origin: &AllowedOrigin,
        event: &AuditEvent,
    ) -> StoreResult<()> {
        let mut g = self.lock()?;
        if g.origins
            .iter()
            .any(|o| o.id == origin.id || o.origin == origin.origin)
        {
            return Err(StoreError::Conflict("origin already listed"));
        }
        g.origins.push(origin.clone());
        g.push_event(event.clone());
        self.signal_events();
        Ok(())
    }

    async fn delete_allowed_origin(&self, id: &str, event: &AuditEvent) -> StoreResult<()> {
        let mut g = self.lock()?;
        let before = g.origins.len();
        g.origins.retain(|o| o.id != id);
        if g.origins.len() == before {
            return Err(StoreError::NotFound);
        }
        g.push_event(event.clone());
        self.signal_events();
        Ok(())
    }

    async fn insert_session(&self, session: &Session, event: &AuditEvent) -> StoreResult<()> {
        let mut g = self.lock()?;
        if g.sessions.contains_key(&session.id) {
            return Err(StoreError::Conflict("session id exists"));
        }
        if g.keys
            .get(&session.key_id)
            .is_none_or(|k| k.session_epoch != session.key_epoch)
        {
            return Err(StoreError::NotFound);
        }
        g.sessions.insert(session.id, session.clone());
        g.push_event(event.clone());
        self.signal_events();
        Ok(())
    }

    async fn get_session(&self, id: &SessionId) -> StoreResult<Option<Session>> {
        Ok(self.lock()?.sessions.get(id).cloned())
    }

    async fn delete_session(&self, id: &SessionId, event: &AuditEvent) -> StoreResult<()> {
        let mut g = self.lock()?;
        if g.sessions.remove(id).is_none() {
            return Err(StoreError::NotFound);
        }
        g.push_event(event.clone());
        self.signal_events();
        Ok(())
    }

    async fn purge_expired_sessions(&self, now: OffsetDateTime) -> StoreResult<u64> {
        let mut g = self.lock()?;
        let before = g.sessions.len();
        g.sessions.retain(|_, s| s.expires_at > now);
        Ok((before - g.sessions.len()) as u64)
    }

    async fn list_events(&self, q: &EventQuery) -> StoreResult<Vec<AuditEvent>> {
        let g = self.lock()?;
        let mut events: Vec<AuditEvent> = g
            .matching(q)
            .map(|e| &e.event)
            .filter(|e| {
                q.before
                    .as_ref()
                    .is_none_or(|(at, id)| (e.at, &e.id) < (*at, id))
            })
            .cloned()
            .collect();
        events.sort_by(|a, b| (b.at, &b.id).cmp(&(a.at, &a.id)));
        events.truncate(q.limit);
        Ok(events)
    }

    async fn list_events_since(
        &self,
        q: &EventQuery,
        after: u64,
    ) -> StoreResult<Vec<SequencedEvent>> {
        let g = self.lock()?;
        let start = g.events.partition_point(|e| e.seq <= after);
        let mut out = Vec::new();
        for e in g.events[start..].iter() {
            if out.len() >= q.limit {
                break;
            }
            if q.matches(&e.event, e.parent.as_ref()) {
                out.push(SequencedEvent {
                    seq: e.seq,
                    event: e.event.clone(),
                });
            }
        }
        Ok(out)
    }

    async fn last_event_seq(&self) -> StoreResult<u64> {
        Ok(self.lock()?.last_seq)
    }

    async fn record_refusals(&self, events: &[AuditEvent]) -> StoreResult<()> {
        {
            let mut g = self.lock()?;
            for e in events {
                let mut e = e.clone();
                if let Some(i) = g.events.iter().position(|s| s.event.id == e.id) {
                    let old = g.events.remove(i).event;
                    let count = crate::audit::refusal_count(&old.details)
                        .saturating_add(crate::audit::refusal_count(&e.details));
                    e.details["count"] = count.into();
                    e.at = old.at;
                }
                g.push_event(e);
            }
        }
        self.signal_events();
        Ok(())
    }

    fn event_signal(&self) -> Option<watch::Receiver<u64>> {
        Some(self.events_signal.subscribe())
    }

    async fn record_usage(&self, batch: &[UsageRecord]) -> StoreResult<()> {
        let mut g = self.lock()?;
        for r in batch {
            let slot = (r.hour, r.key_id, r.origin.clone(), r.category.clone());
            let row = g.usage.entry(slot).or_insert_with(|| UsageRecord {
                successes: 0,
                failures: 0,
                rate_limited: 0,
                usage_exceeded: 0,
                last_used_at: None,
                ..r.clone()
            });
            row.absorb(r);
            if let (Some(t), Some(k)) = (r.last_used_at, g.keys.get_mut(&r.key_id)) {
                k.key.last_used_at = k.key.last_used_at.max(Some(t));
                if let Some(app) = k.key.app_id.and_then(|a| g.apps.get_mut(&a)) {
                    app.last_used_at = app.last_used_at.max(Some(t));
                }
            }
            if let (Some(t), Some(a)) = (r.last_used_at, g.accounts.get_mut(&r.account_id)) {
                a.last_used_at = a.last_used_at.max(Some(t));
            }
        }
        Ok(())
    }

    async fn usage(&self, q: &UsageQuery) -> StoreResult<Vec<UsageRecord>> {
        let g = self.lock()?;
        let mut rows: Vec<UsageRecord> = g
            .usage
            .values()
            .filter(|r| r.account_id == q.account_id)
            .filter(|r| q.key_id.is_none_or(|k| r.key_id == k))
            .filter(|r| q.origin.as_ref().is_none_or(|o| &r.origin == o))
            .filter(|r| r.hour >= q.from && r.hour < q.to)
            .cloned()
            .collect();
        rows.sort_by(|a, b| {
            (a.hour, a.key_id, &a.origin, &a.category).cmp(&(
                b.hour,
                b.key_id,
                &b.origin,
                &b.category,
            ))
        });
        Ok(rows)
    }
}

/// `app` with the counts of its active and inactive keys.
fn with_counts(g: &Inner, app: &App) -> App {
    let mut out = app.clone();
    (out.active_keys, out.inactive_keys, out.protected) = (0, 0, false);
    for k in g.keys.values().filter(|k| k.key.app_id == Some(app.id)) {
        out.protected |= k.key.protected;
        match k.key.status {
            KeyStatus::Active => out.active_keys += 1,
            KeyStatus::Inactive => out.inactive_keys += 1,
        }
    }
    out
}
