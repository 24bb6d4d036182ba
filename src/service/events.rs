//! The account-wide activity log ([`Keyward::events_matching`]) and its
//! live tail ([`Keyward::tail_events`], which `GET /events/stream` reads).
//!
//! Both ask the same question of the store, authorized the same way: the
//! events of the acting account (or of one of its direct children, or of
//! it and all its direct children), filtered by key, application, action,
//! actor and time. The log pages newest first by `(at, id)`; the tail
//! reads forward by commit position (`seq`), so a reader resuming from a
//! position misses nothing that committed after it.

use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::watch;

use super::audit::EventPage;
use super::page::{cut_page, decode_cursor, page_limit};
use super::{Actor, Keyward};
use crate::audit::AuditAction;
use crate::error::{Error, Result};
use crate::id::{AccountId, AppId, KeyId};
use crate::permission::Permission;
use crate::store::{ActorFilter, EventQuery, KeyStore, SequencedEvent};

/// Events one read of [`EventTail::next`] returns at most.
const TAIL_BATCH: usize = 100;

/// How often a tail re-reads the store when its store has no signal, or
/// the signal stayed silent (events committed by other processes on a
/// shared SQLite file, a PostgreSQL feed that is off or reconnecting).
const TAIL_POLL: Duration = Duration::from_millis(500);

/// Which events [`Keyward::events_matching`] and [`Keyward::tail_events`]
/// return, beyond the acting account. Every filter narrows; none set means
/// every event of the account.
///
/// ```
/// use keyward::{AuditAction, EventFilter};
/// let f = EventFilter::new().action(AuditAction::KeyRotated).children(true);
/// assert!(f.children);
/// ```
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct EventFilter {
    /// The events of this account instead: the acting account itself or
    /// one of its direct children (a bounded actor needs `readAccounts`
    /// for a child).
    pub account_id: Option<AccountId>,
    /// Also the events of the account's direct children (a bounded actor
    /// needs `readAccounts`).
    pub children: bool,
    /// Only events about this key (404 when it is not, and never was, a
    /// key of the accounts read).
    pub key_id: Option<KeyId>,
    /// Only events about this application (its own and its keys').
    pub app_id: Option<AppId>,
    /// Only events of this action.
    pub action: Option<AuditAction>,
    /// Only events by this actor.
    pub actor: Option<ActorFilter>,
    /// Only events at or after this instant.
    pub from: Option<OffsetDateTime>,
    /// Only events before this instant.
    pub to: Option<OffsetDateTime>,
}

impl EventFilter {
    /// No filter.
    pub fn new() -> Self {
        Self::default()
    }
    /// The events of `account` (the acting account or a direct child).
    #[must_use]
    pub fn account(mut self, account: AccountId) -> Self {
        self.account_id = Some(account);
        self
    }
    /// Also the events of the direct children.
    #[must_use]
    pub fn children(mut self, children: bool) -> Self {
        self.children = children;
        self
    }
    /// Only events about `key`.
    #[must_use]
    pub fn key(mut self, key: KeyId) -> Self {
        self.key_id = Some(key);
        self
    }
    /// Only events about `app`.
    #[must_use]
    pub fn app(mut self, app: AppId) -> Self {
        self.app_id = Some(app);
        self
    }
    /// Only events of `action`.
    #[must_use]
    pub fn action(mut self, action: AuditAction) -> Self {
        self.action = Some(action);
        self
    }
    /// Only events by `actor`.
    #[must_use]
    pub fn actor(mut self, actor: ActorFilter) -> Self {
        self.actor = Some(actor);
        self
    }
    /// Only events in `[from, to)` (either bound optional).
    #[must_use]
    pub fn between(mut self, from: Option<OffsetDateTime>, to: Option<OffsetDateTime>) -> Self {
        self.from = from;
        self.to = to;
        self
    }
}

impl Keyward {
    /// Audit events of `account` (the account `actor` acts for) matching
    /// `filter`, newest first, a page of at most `limit` (1 to 100) from
    /// `cursor`. Events of deleted keys remain.
    ///
    /// ```
    /// use keyward::{Actor, AuditAction, EventFilter, Keyward, MemoryStore, NewAccount, NewKey, PermissionSet};
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let kw = Keyward::builder().store(MemoryStore::new()).build()?;
    /// let acct = kw.create_account(Actor::System, NewAccount::new("Acme", PermissionSet::default())).await?;
    /// kw.issue_key(Actor::System, &acct.id, NewKey::new("ci")).await?;
    /// let only = EventFilter::new().action(AuditAction::KeyCreated);
    /// let page = kw.events_matching(Actor::System, &acct.id, &only, 50, None).await?;
    /// assert_eq!(page.items.len(), 1);
    /// # Ok::<_, Box<dyn std::error::Error>>(()) }).unwrap();
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad limit or cursor, or `from` after
    /// `to`; [`Error::Forbidden`] without `readApiKeys` (and `readAccounts`
    /// for children); [`Error::NotFound`] for a foreign account, or a key
    /// that is not (and never was) one of the accounts'; [`Error::Unavailable`].
    #[tracing::instrument(name = "keyward.events", skip_all, fields(account_id = %account), err(level = "debug", Display))]
    pub async fn events_matching(
        &self,
        actor: Actor<'_>,
        account: &AccountId,
        filter: &EventFilter,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<EventPage> {
        let limit = page_limit(limit)?;
        let before = cursor.map(decode_cursor).transpose()?;
        let mut query = self.event_query(actor, account, filter).await?;
        query.before = before;
        query.limit = limit + 1;
        let mut items = self.inner.store.list_events(&query).await?;
        let next_cursor = cut_page(&mut items, limit, |e| (e.at, e.id.as_str()));
        Ok(EventPage { items, next_cursor })
    }

    /// A live tail of the events [`events_matching`](Self::events_matching)
    /// would list, in commit order, from position `after` (the last
    /// [`SequencedEvent::seq`] a reader saw; `None`: from now on).
    /// Authorized once, here; the caller bounds how long it reads (the
    /// HTTP stream ends after the propagation window, so a revoked
    /// credential stops reading within it).
    ///
    /// # Errors
    /// As [`events_matching`](Self::events_matching).
    #[tracing::instrument(name = "keyward.tail_events", skip_all, fields(account_id = %account), err(level = "debug", Display))]
    pub async fn tail_events(
        &self,
        actor: Actor<'_>,
        account: &AccountId,
        filter: &EventFilter,
        after: Option<u64>,
    ) -> Result<EventTail> {
        let mut query = self.event_query(actor, account, filter).await?;
        query.limit = TAIL_BATCH;
        let store = Arc::clone(&self.inner.store);
        let position = match after {
            Some(p) => p,
            None => store.last_event_seq().await?,
        };
        let signal = store.event_signal();
        Ok(EventTail {
            store,
            query,
            position,
            signal,
        })
    }

    /// The store query for `filter` on `account`, once `actor` may read it.
    async fn event_query(
        &self,
        actor: Actor<'_>,
        account: &AccountId,
        filter: &EventFilter,
    ) -> Result<EventQuery> {
        if let (Some(from), Some(to)) = (filter.from, filter.to)
            && from > to
        {
            return Err(Error::InvalidInput {
                field: "from",
                reason: "must not be after `to`".into(),
            });
        }
        actor.authorize(account, &Permission::read_api_keys(), "account")?;
        let target = match filter.account_id {
            Some(child) if child != *account => {
                let acct = self
                    .inner
                    .store
                    .get_account(&child)
                    .await?
                    .ok_or(Error::NotFound("account"))?;
                if actor.account().is_some() {
                    if acct.parent.as_ref() != Some(account) {
                        return Err(Error::NotFound("account"));
                    }
                    actor.require(&Permission::read_accounts())?;
                }
                child
            }
            _ => *account,
        };
        if filter.children && actor.account().is_some() {
            actor.require(&Permission::read_accounts())?;
        }
        if let Some(key) = &filter.key_id {
            self.key_of(&target, filter.children, key).await?;
        }
        let mut q = EventQuery::new(target, TAIL_BATCH);
        q.children = filter.children;
        q.key_id = filter.key_id;
        q.app_id = filter.app_id;
        q.action = filter.action;
        q.actor = filter.actor.clone();
        q.from = filter.from;
        q.to = filter.to;
        Ok(q)
    }

    /// Succeeds when `key` is, or was (deleted, its events remain), a key
    /// of `account` (or, with `children`, of a direct child): another
    /// account's key and an unknown one are alike not found, as for
    /// [`get_key`](Self::get_key).
    pub(super) async fn key_of(
        &self,
        account: &AccountId,
        children: bool,
        key: &KeyId,
    ) -> Result<()> {
        if let Some(k) = self.inner.store.get_key(key).await? {
            let owner = k.key.account_id;
            if owner == *account {
                return Ok(());
            }
            if children
                && let Some(acct) = self.inner.store.get_account(&owner).await?
                && acct.parent.as_ref() == Some(account)
            {
                return Ok(());
            }
            return Err(Error::NotFound("key"));
        }
        let mut any = EventQuery::new(*account, 1);
        any.children = children;
        any.key_id = Some(*key);
        if self.inner.store.list_events(&any).await?.is_empty() {
            Err(Error::NotFound("key"))
        } else {
            Ok(())
        }
    }
}

/// A live tail of audit events ([`Keyward::tail_events`]): each
/// [`next`](Self::next) returns the matching events committed after the
/// tail's position and moves it past them. It holds one batch at a time;
/// a writer never waits for it.
pub struct EventTail {
    store: Arc<dyn KeyStore>,
    query: EventQuery,
    position: u64,
    signal: Option<watch::Receiver<u64>>,
}

impl std::fmt::Debug for EventTail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventTail")
            .field("query", &self.query)
            .field("position", &self.position)
            .finish_non_exhaustive()
    }
}

impl EventTail {
    /// The position after the last event returned (or the start).
    pub fn position(&self) -> u64 {
        self.position
    }

    /// The next matching events (at most 100), waiting up to `wait` for
    /// one to commit; empty when none did. Woken by the store's signal
    /// (this instance's commits; other instances' through the PostgreSQL
    /// feed), and re-reading every 500 ms besides.
    ///
    /// # Errors
    /// [`Error::Unavailable`] when the store cannot be read (the position
    /// stays, so a retry misses nothing).
    pub async fn next(&mut self, wait: Duration) -> Result<Vec<SequencedEvent>> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(s) = self.signal.as_mut() {
                s.borrow_and_update();
            }
            // Every event at or below `last` has committed (positions
            // follow commit order), and the read below sees them all; so
            // when it returns less than a batch, the tail may move to
            // `last` even past events that did not match.
            let last = self.store.last_event_seq().await?;
            let batch = self
                .store
                .list_events_since(&self.query, self.position)
                .await?;
            if let Some(e) = batch.last() {
                self.position = self.position.max(e.seq);
            }
            if batch.len() < self.query.limit {
                self.position = self.position.max(last);
            }
            if !batch.is_empty() {
                return Ok(batch);
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Ok(Vec::new());
            }
            let nap = (deadline - now).min(TAIL_POLL);
            let closed = match self.signal.as_mut() {
                Some(s) => matches!(tokio::time::timeout(nap, s.changed()).await, Ok(Err(_))),
                None => {
                    tokio::time::sleep(nap).await;
                    false
                }
            };
            if closed {
                // The store's signal is gone (its feed stopped): poll.
                self.signal = None;
            }
        }
    }
}
