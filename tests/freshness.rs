//! No valid key is refused because a store read took time: an entry read
//! during a verification is judged against its own read time, not against
//! an older account entry that turned W old while the read (or argon2) ran.

#[path = "store_support/mod.rs"]
mod common;

use std::sync::Arc;

use async_trait::async_trait;
use keyward::store::{
    EventQuery, KeyQuery, KeyStore, StoreResult, StoredKey, UsageQuery, UsageRecord,
};
use keyward::{
    Account, AccountId, ApiKey, AuditEvent, KeyId, ManualClock, MemoryStore, Session, SessionId,
    VerifyContext,
};
use time::{Duration, OffsetDateTime};

/// A MemoryStore whose key reads take `read_time` of the test's clock.
#[derive(Debug)]
struct SlowKeyReads {
    inner: MemoryStore,
    clock: ManualClock,
    read_time: Duration,
}

#[async_trait]
impl KeyStore for SlowKeyReads {
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
        self.clock.advance(self.read_time);
        r
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

const W_SECS: i64 = 30;

/// Keys verified by a second instance (cold caches, so every first
/// verification reads the store) at every offset around many W boundaries
/// of its account entry: none is refused.
#[tokio::test]
async fn no_valid_key_is_refused_across_w_boundaries() {
    let clock = ManualClock::default();
    let memory = MemoryStore::new();
    let issuer = common::service(Arc::new(memory.clone()), Some(clock.clone()), W_SECS);
    let (account, _) = common::account_and_key(&issuer).await;
    let mut keys = Vec::new();
    for i in 0..40 {
        keys.push(common::issue(&issuer, &account.id, &format!("k{i}")).await);
    }
    let store = Arc::new(SlowKeyReads {
        inner: memory,
        clock: clock.clone(),
        read_time: Duration::milliseconds(3),
    });
    let kw = common::service(store, Some(clock.clone()), W_SECS);
    let w = Duration::seconds(W_SECS);
    let mut verified = 0;
    for boundary in 0..8 {
        // The account entry is read now (with the first key); the others
        // are verified ever closer to its W boundary, some across it.
        let mut keys_left = keys.iter();
        let first = keys_left.next().expect("keys");
        kw.verify(
            first.key.id.as_str(),
            first.secret.expose(),
            VerifyContext::new(),
        )
        .await
        .unwrap_or_else(|e| panic!("boundary {boundary}: first key refused: {e:?}"));
        let step = Duration::milliseconds(1);
        clock.advance(w - Duration::milliseconds(25));
        for k in keys_left {
            let r = kw
                .verify(k.key.id.as_str(), k.secret.expose(), VerifyContext::new())
                .await;
            assert!(
                r.is_ok(),
                "boundary {boundary}: a valid key was refused: {:?}",
                r.err()
            );
            verified += 1;
            clock.advance(step);
        }
        // Past every entry's W: the next round starts cold again.
        clock.advance(w);
    }
    assert_eq!(verified, 8 * 39);
}
