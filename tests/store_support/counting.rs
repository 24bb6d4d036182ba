//! A store wrapper that counts key reads and controls the change feed an
//! instance sees: the wrapped store's own feed, one the test drives, or a
//! feed that goes silent on demand (as when both its listener and its poll
//! fail), and runs a concurrent change just before the next write.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use keyward::store::{
    AccountQuery, AppExpectation, AppQuery, Change, EventQuery, KeyForVerify, KeyQuery, KeyStore,
    StoreResult, StoredKey, UsageQuery, UsageRecord, UsageTotal, UsageTotalsQuery,
};
use keyward::{
    Account, AccountId, AllowedOrigin, ApiKey, App, AppId, AuditEvent, KeyId, Session, SessionId,
};
use time::OffsetDateTime;
use tokio::sync::broadcast;

/// Which feed the wrapper's instance sees.
#[derive(Debug)]
enum Feed {
    /// The wrapped store's feed, forwarded while not silenced.
    Forwarded,
    /// One the test sends on.
    Scripted(broadcast::Sender<Change>),
}

/// A change run before the next write ([`Counting::before_next_write`]).
struct Hook(Box<dyn FnOnce() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>);

impl std::fmt::Debug for Hook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Hook")
    }
}

/// `inner`, with key reads counted.
#[derive(Debug)]
pub struct Counting {
    inner: Arc<dyn KeyStore>,
    key_reads: AtomicU64,
    /// `get_keys_for_verify` calls (their keys count in `key_reads`).
    key_batches: AtomicU64,
    /// Ids asked of `get_keys_for_verify` (counted in `key_reads` too).
    batched_ids: AtomicU64,
    account_reads: AtomicU64,
    /// Every read call: keys (joined or not), accounts, applications,
    /// limits.
    store_reads: AtomicU64,
    /// Answer `get_key_for_verify` as a store without it does: `get_key`,
    /// `get_app`, `get_limits`, one call each.
    split_key_reads: AtomicBool,
    feed: Feed,
    silent: Arc<AtomicBool>,
    /// A change to send on the scripted feed while the next key read is
    /// under way (after the record was read, before it is returned).
    racing: Mutex<Option<Change>>,
    /// Runs before the next management write reaches `inner`.
    before_write: Mutex<Option<Hook>>,
}

impl Counting {
    /// `inner` with its own feed (if any) forwarded.
    pub fn forwarding(inner: Arc<dyn KeyStore>) -> Arc<Self> {
        Arc::new(Self {
            inner,
            key_reads: AtomicU64::new(0),
            key_batches: AtomicU64::new(0),
            batched_ids: AtomicU64::new(0),
            account_reads: AtomicU64::new(0),
            store_reads: AtomicU64::new(0),
            split_key_reads: AtomicBool::new(false),
            feed: Feed::Forwarded,
            silent: Arc::default(),
            racing: Mutex::default(),
            before_write: Mutex::default(),
        })
    }

    /// `inner` with a feed the test drives through [`send`](Self::send).
    pub fn scripted(inner: Arc<dyn KeyStore>) -> Arc<Self> {
        Arc::new(Self {
            inner,
            key_reads: AtomicU64::new(0),
            key_batches: AtomicU64::new(0),
            batched_ids: AtomicU64::new(0),
            account_reads: AtomicU64::new(0),
            store_reads: AtomicU64::new(0),
            split_key_reads: AtomicBool::new(false),
            feed: Feed::Scripted(broadcast::channel(4096).0),
            silent: Arc::default(),
            racing: Mutex::default(),
            before_write: Mutex::default(),
        })
    }

    /// Sends `change` on the scripted feed.
    pub fn send(&self, change: Change) {
        match &self.feed {
            Feed::Scripted(tx) => {
                let _ = tx.send(change);
            }
            Feed::Forwarded => panic!("not a scripted feed"),
        }
    }

    /// Makes `change` arrive on the scripted feed during the next key read:
    /// the read returns the record as it was before the change.
    pub fn race_next_read(&self, change: Change) {
        *self.racing.lock().expect("lock") = Some(change);
    }

    /// Runs `change` (typically another actor's operation on the wrapped
    /// store) when the next write (`update_key`, `delete_key`,
    /// `update_app`, `delete_app`, `update_account`) arrives, before it is
    /// passed on: the write then meets a record that moved after the
    /// service read it.
    pub fn before_next_write<F, Fut>(&self, change: F)
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        *self.before_write.lock().expect("lock") = Some(Hook(Box::new(move || Box::pin(change()))));
    }

    /// Runs the pending [`before_next_write`](Self::before_next_write)
    /// change, if any.
    async fn racing_write(&self) {
        let hook = self.before_write.lock().expect("lock").take();
        if let Some(hook) = hook {
            (hook.0)().await;
        }
    }

    /// Silences the forwarded feed from now on: nothing more reaches the
    /// instance (neither changes nor catch-ups).
    pub fn silence(&self) {
        self.silent.store(true, Ordering::SeqCst);
    }

    /// From now on, answers `get_key_for_verify` as a store written before
    /// it existed (the trait's default: one call per record).
    pub fn split_key_reads(&self) {
        self.split_key_reads.store(true, Ordering::SeqCst);
    }

    /// Store reads so far (every call that reads a key, an account, an
    /// application or limits).
    pub fn store_reads(&self) -> u64 {
        self.store_reads.load(Ordering::SeqCst)
    }

    /// Sends the [`race_next_read`](Self::race_next_read) change, if any,
    /// and lets the instance apply it.
    async fn race_key_read(&self) {
        let racing = self.racing.lock().expect("lock").take();
        if let Some(change) = racing {
            self.send(change);
            // Let the instance apply it before this read returns.
            for _ in 0..20 {
                tokio::task::yield_now().await;
            }
        }
    }

    /// Account reads so far.
    pub fn account_reads(&self) -> u64 {
        self.account_reads.load(Ordering::SeqCst)
    }

    /// Keys read so far: one per `get_key`/`get_key_for_verify` call, one
    /// per id asked of `get_keys_for_verify`.
    pub fn key_reads(&self) -> u64 {
        self.key_reads.load(Ordering::SeqCst)
    }

    /// `get_keys_for_verify` calls so far (the background refresher's
    /// batches).
    pub fn key_batches(&self) -> u64 {
        self.key_batches.load(Ordering::SeqCst)
    }

    /// Store calls that read keys or accounts so far: one per key read
    /// alone, per batch and per account read.
    pub fn key_and_account_calls(&self) -> u64 {
        self.key_reads() - self.batched_ids.load(Ordering::SeqCst)
            + self.key_batches()
            + self.account_reads()
    }
}

#[async_trait]
impl KeyStore for Counting {
    async fn insert_account(&self, a: &Account, e: &AuditEvent) -> StoreResult<()> {
        self.inner.insert_account(a, e).await
    }
    async fn get_account(&self, id: &AccountId) -> StoreResult<Option<Account>> {
        self.account_reads.fetch_add(1, Ordering::SeqCst);
        self.store_reads.fetch_add(1, Ordering::SeqCst);
        self.inner.get_account(id).await
    }
    async fn list_accounts(&self, p: &AccountId, q: &AccountQuery) -> StoreResult<Vec<Account>> {
        self.inner.list_accounts(p, q).await
    }
    async fn update_account(&self, a: &Account, v: u64, e: &AuditEvent) -> StoreResult<()> {
        self.racing_write().await;
        self.inner.update_account(a, v, e).await
    }
    async fn insert_key(&self, k: &StoredKey, e: &AuditEvent) -> StoreResult<()> {
        self.inner.insert_key(k, e).await
    }
    async fn get_key(&self, id: &KeyId) -> StoreResult<Option<StoredKey>> {
        self.key_reads.fetch_add(1, Ordering::SeqCst);
        self.store_reads.fetch_add(1, Ordering::SeqCst);
        let read = self.inner.get_key(id).await;
        self.race_key_read().await;
        read
    }
    async fn get_key_for_verify(&self, id: &KeyId) -> StoreResult<Option<KeyForVerify>> {
        if self.split_key_reads.load(Ordering::SeqCst) {
            let Some(stored) = self.get_key(id).await? else {
                return Ok(None);
            };
            let app_active = match stored.key.app_id {
                Some(app) => Some(
                    self.get_app(&app)
                        .await?
                        .is_some_and(|a| a.status == keyward::AppStatus::Active),
                ),
                None => None,
            };
            let limits = self
                .get_limits(&keyward::store::limit_owners(&stored.key))
                .await?;
            return Ok(Some(KeyForVerify::new(stored, app_active, limits)));
        }
        self.key_reads.fetch_add(1, Ordering::SeqCst);
        self.store_reads.fetch_add(1, Ordering::SeqCst);
        let read = self.inner.get_key_for_verify(id).await;
        self.race_key_read().await;
        read
    }
    async fn get_keys_for_verify(&self, ids: &[KeyId]) -> StoreResult<Vec<KeyForVerify>> {
        if self.split_key_reads.load(Ordering::SeqCst) {
            let mut out = Vec::new();
            for id in ids {
                out.extend(self.get_key_for_verify(id).await?);
            }
            return Ok(out);
        }
        let n = ids.len() as u64;
        self.key_reads.fetch_add(n, Ordering::SeqCst);
        self.batched_ids.fetch_add(n, Ordering::SeqCst);
        self.key_batches.fetch_add(1, Ordering::SeqCst);
        self.store_reads.fetch_add(1, Ordering::SeqCst);
        let read = self.inner.get_keys_for_verify(ids).await;
        self.race_key_read().await;
        read
    }
    async fn get_limits(
        &self,
        owners: &[keyward::LimitOwner],
    ) -> StoreResult<Vec<keyward::store::StoredLimits>> {
        self.store_reads.fetch_add(1, Ordering::SeqCst);
        self.inner.get_limits(owners).await
    }
    async fn update_key(&self, k: &StoredKey, v: u64, e: &AuditEvent) -> StoreResult<()> {
        self.racing_write().await;
        self.inner.update_key(k, v, e).await
    }
    async fn delete_key(&self, id: &KeyId, v: u64, e: &AuditEvent) -> StoreResult<()> {
        self.racing_write().await;
        self.inner.delete_key(id, v, e).await
    }
    async fn list_keys(&self, a: &AccountId, q: &KeyQuery) -> StoreResult<Vec<ApiKey>> {
        self.inner.list_keys(a, q).await
    }
    async fn list_stored_keys(&self, a: &AccountId, q: &KeyQuery) -> StoreResult<Vec<StoredKey>> {
        self.inner.list_stored_keys(a, q).await
    }
    async fn insert_app(&self, a: &App, e: &AuditEvent) -> StoreResult<()> {
        self.inner.insert_app(a, e).await
    }
    async fn get_app(&self, id: &AppId) -> StoreResult<Option<App>> {
        self.store_reads.fetch_add(1, Ordering::SeqCst);
        self.inner.get_app(id).await
    }
    async fn list_apps(&self, a: &AccountId, q: &AppQuery) -> StoreResult<Vec<App>> {
        self.inner.list_apps(a, q).await
    }
    async fn update_app(
        &self,
        a: &App,
        x: &AppExpectation,
        e: &AuditEvent,
    ) -> StoreResult<Vec<KeyId>> {
        self.racing_write().await;
        self.inner.update_app(a, x, e).await
    }
    async fn delete_app(&self, id: &AppId, e: &AuditEvent) -> StoreResult<()> {
        self.racing_write().await;
        self.inner.delete_app(id, e).await
    }
    async fn list_allowed_origins(&self) -> StoreResult<Vec<AllowedOrigin>> {
        self.inner.list_allowed_origins().await
    }
    async fn insert_allowed_origin(&self, o: &AllowedOrigin, e: &AuditEvent) -> StoreResult<()> {
        self.inner.insert_allowed_origin(o, e).await
    }
    async fn delete_allowed_origin(&self, id: &str, e: &AuditEvent) -> StoreResult<()> {
        self.inner.delete_allowed_origin(id, e).await
    }
    async fn insert_session(&self, s: &Session, e: &AuditEvent) -> StoreResult<()> {
        self.inner.insert_session(s, e).await
    }
    async fn get_session(&self, id: &SessionId) -> StoreResult<Option<Session>> {
        self.inner.get_session(id).await
    }
    async fn delete_session(&self, id: &SessionId, e: &AuditEvent) -> StoreResult<()> {
        self.inner.delete_session(id, e).await
    }
    async fn purge_expired_sessions(&self, now: OffsetDateTime) -> StoreResult<u64> {
        self.inner.purge_expired_sessions(now).await
    }
    async fn list_events(&self, q: &EventQuery) -> StoreResult<Vec<AuditEvent>> {
        self.inner.list_events(q).await
    }
    async fn record_usage(&self, b: &[UsageRecord]) -> StoreResult<()> {
        self.inner.record_usage(b).await
    }
    async fn usage(&self, q: &UsageQuery) -> StoreResult<Vec<UsageRecord>> {
        self.inner.usage(q).await
    }
    async fn usage_totals(&self, q: &UsageTotalsQuery) -> StoreResult<Vec<UsageTotal>> {
        self.inner.usage_totals(q).await
    }
    fn subscribe(&self) -> Option<broadcast::Receiver<Change>> {
        match &self.feed {
            Feed::Scripted(tx) => Some(tx.subscribe()),
            Feed::Forwarded => {
                let mut from = self.inner.subscribe()?;
                let (tx, rx) = broadcast::channel(4096);
                let silent = Arc::clone(&self.silent);
                tokio::spawn(async move {
                    while let Ok(change) = from.recv().await {
                        if !silent.load(Ordering::SeqCst) && tx.send(change).is_err() {
                            return;
                        }
                    }
                });
                Some(rx)
            }
        }
    }
}
