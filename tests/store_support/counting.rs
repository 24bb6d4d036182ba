//! A store wrapper that counts key reads and controls the change feed an
//! instance sees: the wrapped store's own feed, one the test drives, or a
//! feed that goes silent on demand (as when both its listener and its poll
//! fail).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use keyward::store::{
    AccountQuery, AppQuery, Change, EventQuery, KeyQuery, KeyStore, StoreResult, StoredKey,
    UsageQuery, UsageRecord, UsageTotal, UsageTotalsQuery,
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

/// `inner`, with key reads counted.
#[derive(Debug)]
pub struct Counting {
    inner: Arc<dyn KeyStore>,
    key_reads: AtomicU64,
    account_reads: AtomicU64,
    feed: Feed,
    silent: Arc<AtomicBool>,
    /// A change to send on the scripted feed while the next key read is
    /// under way (after the record was read, before it is returned).
    racing: Mutex<Option<Change>>,
}

impl Counting {
    /// `inner` with its own feed (if any) forwarded.
    pub fn forwarding(inner: Arc<dyn KeyStore>) -> Arc<Self> {
        Arc::new(Self {
            inner,
            key_reads: AtomicU64::new(0),
            account_reads: AtomicU64::new(0),
            feed: Feed::Forwarded,
            silent: Arc::default(),
            racing: Mutex::default(),
        })
    }

    /// `inner` with a feed the test drives through [`send`](Self::send).
    pub fn scripted(inner: Arc<dyn KeyStore>) -> Arc<Self> {
        Arc::new(Self {
            inner,
            key_reads: AtomicU64::new(0),
            account_reads: AtomicU64::new(0),
            feed: Feed::Scripted(broadcast::channel(4096).0),
            silent: Arc::default(),
            racing: Mutex::default(),
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

    /// Silences the forwarded feed from now on: nothing more reaches the
    /// instance (neither changes nor catch-ups).
    pub fn silence(&self) {
        self.silent.store(true, Ordering::SeqCst);
    }

    /// Account reads so far.
    pub fn account_reads(&self) -> u64 {
        self.account_reads.load(Ordering::SeqCst)
    }

    /// Key reads so far.
    pub fn key_reads(&self) -> u64 {
        self.key_reads.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl KeyStore for Counting {
    async fn insert_account(&self, a: &Account, e: &AuditEvent) -> StoreResult<()> {
        self.inner.insert_account(a, e).await
    }
    async fn get_account(&self, id: &AccountId) -> StoreResult<Option<Account>> {
        self.account_reads.fetch_add(1, Ordering::SeqCst);
        self.inner.get_account(id).await
    }
    async fn list_accounts(&self, p: &AccountId, q: &AccountQuery) -> StoreResult<Vec<Account>> {
        self.inner.list_accounts(p, q).await
    }
    async fn update_account(&self, a: &Account, e: &AuditEvent) -> StoreResult<()> {
        self.inner.update_account(a, e).await
    }
    async fn insert_key(&self, k: &StoredKey, e: &AuditEvent) -> StoreResult<()> {
        self.inner.insert_key(k, e).await
    }
    async fn get_key(&self, id: &KeyId) -> StoreResult<Option<StoredKey>> {
        self.key_reads.fetch_add(1, Ordering::SeqCst);
        let read = self.inner.get_key(id).await;
        let racing = self.racing.lock().expect("lock").take();
        if let Some(change) = racing {
            self.send(change);
            // Let the instance apply it before this read returns.
            for _ in 0..20 {
                tokio::task::yield_now().await;
            }
        }
        read
    }
    async fn update_key(&self, k: &StoredKey, v: u64, e: &AuditEvent) -> StoreResult<()> {
        self.inner.update_key(k, v, e).await
    }
    async fn delete_key(&self, id: &KeyId, e: &AuditEvent) -> StoreResult<()> {
        self.inner.delete_key(id, e).await
    }
    async fn list_keys(&self, a: &AccountId, q: &KeyQuery) -> StoreResult<Vec<ApiKey>> {
        self.inner.list_keys(a, q).await
    }
    async fn insert_app(&self, a: &App, e: &AuditEvent) -> StoreResult<()> {
        self.inner.insert_app(a, e).await
    }
    async fn get_app(&self, id: &AppId) -> StoreResult<Option<App>> {
        self.inner.get_app(id).await
    }
    async fn list_apps(&self, a: &AccountId, q: &AppQuery) -> StoreResult<Vec<App>> {
        self.inner.list_apps(a, q).await
    }
    async fn update_app(&self, a: &App, e: &AuditEvent) -> StoreResult<Vec<KeyId>> {
        self.inner.update_app(a, e).await
    }
    async fn delete_app(&self, id: &AppId, e: &AuditEvent) -> StoreResult<()> {
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
