//! A verification whose store read started before a deactivation but
//! finished after it must not put the stale (active) record back in the
//! cache: once `deactivate_key` returns, this instance accepts nothing.

#[path = "store_support/mod.rs"]
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use keyward::store::{
    EventQuery, KeyQuery, KeyStore, StoreResult, StoredKey, UsageQuery, UsageRecord,
};
use keyward::{
    Account, AccountId, Actor, ApiKey, AuditEvent, Error, KeyId, ManualClock, MemoryStore, Session,
    SessionId, VerifyContext,
};
use time::OffsetDateTime;
use tokio::sync::Notify;

/// A MemoryStore whose next `get_key` (when armed) returns its result only
/// after `release` is notified: a slow read that started before a write.
#[derive(Debug, Default)]
struct SlowRead {
    inner: MemoryStore,
    armed: AtomicBool,
    reading: Notify,
    release: Notify,
}

#[async_trait]
impl KeyStore for SlowRead {
    async fn insert_account(&self, a: &Account, e: &AuditEvent) -> StoreResult<()> {
        self.inner.insert_account(a, e).await
    }
    async fn get_account(&self, id: &AccountId) -> StoreResult<Option<Account>> {
        self.inner.get_account(id).await
    }
    async fn insert_key(&self, k: &StoredKey, e: &AuditEvent) -> StoreResult<()> {
        self.inner.insert_key(k, e).await
    }
    async fn get_key(&self, id: &KeyId) -> StoreResult<Option<StoredKey>> {
        let r = self.inner.get_key(id).await;
        if self.armed.swap(false, Ordering::SeqCst) {
            self.reading.notify_one();
            self.release.notified().await;
        }
        r
    }
    async fn update_key(&self, k: &StoredKey, v: u64, e: &AuditEvent) -> StoreResult<()> {
        self.inner.update_key(k, v, e).await
    }
    async fn delete_key(&self, id: &KeyId, v: u64, e: &AuditEvent) -> StoreResult<()> {
        self.inner.delete_key(id, v, e).await
    }
    async fn list_keys(&self, a: &AccountId, q: &KeyQuery) -> StoreResult<Vec<ApiKey>> {
        self.inner.list_keys(a, q).await
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
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_read_cannot_undo_a_deactivation() {
    let store = Arc::new(SlowRead::default());
    let clock = ManualClock::default();
    let kw = common::service(store.clone(), Some(clock.clone()), 30);
    let (_, key) = common::account_and_key(&kw).await;
    let (id, secret) = (
        key.key.id.as_str().to_owned(),
        key.secret.expose().to_owned(),
    );
    kw.verify(&id, &secret, VerifyContext::new())
        .await
        .expect("warm");
    // The cached entry (and the account) go stale; the next verification
    // re-reads the key, slowly.
    clock.advance(time::Duration::seconds(31));
    store.armed.store(true, Ordering::SeqCst);
    let slow = {
        let (kw, id, secret) = (kw.clone(), id.clone(), secret.clone());
        tokio::spawn(async move { kw.verify(&id, &secret, VerifyContext::new()).await })
    };
    store.reading.notified().await;
    kw.deactivate_key(Actor::System, &key.key.id)
        .await
        .expect("deactivate");
    store.release.notify_one();
    // It started before the deactivation returned: either outcome is fine.
    let _ = slow.await.expect("task");
    let r = kw.verify(&id, &secret, VerifyContext::new()).await;
    assert!(
        matches!(r, Err(Error::KeyInactive)),
        "accepted after deactivate_key returned: {r:?}"
    );
}
