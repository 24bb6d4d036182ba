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
    Account, AccountId, ApiKey, AuditEvent, Clock, KeyId, ManualClock, MemoryStore, Session,
    SessionId, VerifyContext,
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

/// A clock that moves 1 ms forward at every reading: time passes between
/// any two steps of a verification (store reads, argon2, decisions).
#[derive(Debug, Clone)]
struct Ticking(ManualClock);

impl Clock for Ticking {
    fn now(&self) -> OffsetDateTime {
        self.0.advance(Duration::milliseconds(1));
        self.0.now()
    }
}

const W_SECS: i64 = 30;

/// A key verified by a cold instance at every offset (in clock ticks)
/// before its account entry's W boundary: none is refused, whichever step
/// of the verification (store read, argon2, decision) the boundary falls
/// into.
#[tokio::test]
async fn no_valid_key_is_refused_across_w_boundaries() {
    let clock = ManualClock::default();
    let memory = MemoryStore::new();
    let issuer = common::service(Arc::new(memory.clone()), Some(clock.clone()), W_SECS);
    let (account, first) = common::account_and_key(&issuer).await;
    let second = common::issue(&issuer, &account.id, "second").await;
    let store = Arc::new(SlowKeyReads {
        inner: memory,
        clock: clock.clone(),
        read_time: Duration::milliseconds(2),
    });
    let w = Duration::seconds(W_SECS);
    let mut refused = Vec::new();
    for offset_ms in 0..80 {
        let kw = keyward::Keyward::builder()
            .shared_store(store.clone())
            .hash_params(common::FAST_HASH)
            .propagation_window(w)
            .flush_interval(None)
            .clock(Ticking(clock.clone()))
            .build()
            .expect("build");
        // The account entry is read with the first key, at about `start`.
        let start = clock.now();
        kw.verify(
            first.key.id.as_str(),
            first.secret.expose(),
            VerifyContext::new(),
        )
        .await
        .expect("first key");
        // The second key (cold: a store read and argon2) starts just
        // before that entry turns W old.
        clock.set(start + w - Duration::milliseconds(offset_ms));
        let r = kw
            .verify(
                second.key.id.as_str(),
                second.secret.expose(),
                VerifyContext::new(),
            )
            .await;
        if let Err(e) = r {
            refused.push((offset_ms, e));
        }
        clock.advance(w);
    }
    assert!(
        refused.is_empty(),
        "valid key refused at offsets (ms): {refused:?}"
    );
}

/// A key in use never waits for the store: its entry is re-read in the
/// background ahead of its expiry (past 3/4 W, with jitter), so the cache
/// alone decides every request, W after W.
#[tokio::test]
async fn keys_in_use_are_refreshed_ahead_of_expiry() {
    let clock = ManualClock::default();
    let kw = common::service(Arc::new(MemoryStore::new()), Some(clock.clone()), W_SECS);
    let (account, key) = common::account_and_key(&kw).await;
    let others: Vec<_> = {
        let mut v = Vec::new();
        for i in 0..20 {
            v.push(common::issue(&kw, &account.id, &format!("k{i}")).await);
        }
        v
    };
    let step = Duration::seconds(W_SECS) / 40;
    for n in 0..200 {
        clock.advance(step);
        for k in std::iter::once(&key).chain(&others) {
            let decided =
                kw.verify_cached(k.key.id.as_str(), k.secret.expose(), VerifyContext::new());
            assert!(
                matches!(decided, Some(Ok(_))),
                "at {}/40 W: a key in use needed the store",
                n + 1
            );
        }
        // Let the background refreshes run.
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
    }
}

/// Many keys verified in a random order while a ticking clock crosses many
/// W boundaries (entries expiring, refreshed ahead, re-read cold): not one
/// valid key is refused. (The benchmark-sized run is 10 000 000
/// verifications of 1 000 000 keys: `benches/freshness.rs`.)
async fn none_refused(keys: usize, verifications: usize, max_step_ms: u64) {
    let clock = ManualClock::default();
    let memory = MemoryStore::new();
    let issuer = cheap_service(Arc::new(memory.clone()), clock.clone());
    let (account, _) = common::account_and_key(&issuer).await;
    let mut issued = Vec::new();
    for i in 0..keys {
        issued.push(common::issue(&issuer, &account.id, &format!("k{i}")).await);
    }
    let store = Arc::new(SlowKeyReads {
        inner: memory,
        clock: clock.clone(),
        read_time: Duration::milliseconds(2),
    });
    let kw = keyward::Keyward::builder()
        .shared_store(store)
        .hash_params(CHEAP_HASH)
        .propagation_window(Duration::seconds(W_SECS))
        .flush_interval(None)
        .clock(Ticking(clock.clone()))
        .build()
        .expect("build");
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let start = clock.now();
    for n in 0..verifications {
        clock.advance(Duration::milliseconds((next() % (max_step_ms + 1)) as i64));
        let k = &issued[(next() % issued.len() as u64) as usize];
        let r = kw
            .verify(k.key.id.as_str(), k.secret.expose(), VerifyContext::new())
            .await;
        assert!(r.is_ok(), "a valid key was refused: {:?}", r.err());
        if n % 64 == 0 {
            tokio::task::yield_now().await;
        }
    }
    let crossed = (clock.now() - start).whole_seconds() / W_SECS;
    assert!(crossed >= 10, "only {crossed} W boundaries crossed");
}

/// The smallest argon2 parameters, for runs that issue thousands of keys.
const CHEAP_HASH: keyward::HashParams = keyward::HashParams {
    memory_kib: 8,
    iterations: 1,
    parallelism: 1,
};

fn cheap_service(store: Arc<dyn KeyStore>, clock: ManualClock) -> keyward::Keyward {
    keyward::Keyward::builder()
        .shared_store(store)
        .hash_params(CHEAP_HASH)
        .propagation_window(Duration::seconds(W_SECS))
        .flush_interval(None)
        .clock(clock)
        .build()
        .expect("build")
}

/// 300 keys, each verified about 80 times, over about 12 W.
#[tokio::test]
async fn many_keys_across_many_boundaries_none_refused() {
    none_refused(300, 24_000, 30).await;
}

/// 10 000 keys, 100 000 verifications, over about 100 W: most
/// verifications find an entry expired or due for a refresh.
#[tokio::test]
async fn ten_thousand_keys_across_a_hundred_boundaries_none_refused() {
    none_refused(10_000, 100_000, 60).await;
}

/// Without a change feed, the keys due for refresh are re-read together:
/// 300 warm keys in use take a few batched store calls per step instead
/// of one read each, none of them needs the store on its request, and
/// every key is still re-read within W (a deactivation made by another
/// instance, with no feed to tell this one, reaches its cache).
#[tokio::test]
async fn keys_due_together_are_refreshed_in_batches() {
    const N: usize = 300;
    let clock = ManualClock::default();
    let memory = Arc::new(MemoryStore::new());
    let issuer = common::service(memory.clone(), Some(clock.clone()), W_SECS);
    let (account, first) = common::account_and_key(&issuer).await;
    let mut keys = vec![first];
    for i in 1..N {
        keys.push(common::issue(&issuer, &account.id, &format!("k{i}")).await);
    }
    let store = common::counting::Counting::forwarding(memory);
    let kw = common::service(store.clone(), Some(clock.clone()), W_SECS);
    for k in &keys {
        kw.verify(k.key.id.as_str(), k.secret.expose(), VerifyContext::new())
            .await
            .expect("warm");
    }
    clock.advance(Duration::seconds(1));
    // Every third key is switched off elsewhere.
    let off: Vec<bool> = (0..N).map(|i| i % 3 == 0).collect();
    for (k, _) in keys.iter().zip(&off).filter(|(_, off)| **off) {
        issuer
            .deactivate_key(keyward::Actor::System, &k.key.id)
            .await
            .expect("deactivate");
    }
    let (reads, calls, batches) = (
        store.key_reads(),
        store.key_and_account_calls(),
        store.key_batches(),
    );
    let step = Duration::seconds(W_SECS) / 40;
    for n in 0..40 {
        clock.advance(step);
        for (k, off) in keys.iter().zip(&off) {
            let decided =
                kw.verify_cached(k.key.id.as_str(), k.secret.expose(), VerifyContext::new());
            if !off {
                assert!(
                    matches!(decided, Some(Ok(_))),
                    "at {}/40 W: a key in use needed the store",
                    n + 1
                );
            }
        }
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
    }
    for (k, _) in keys.iter().zip(&off).filter(|(_, off)| **off) {
        let decided = kw.verify_cached(k.key.id.as_str(), k.secret.expose(), VerifyContext::new());
        assert!(
            matches!(decided, Some(Err(_))),
            "a deactivated key's entry was not re-read within W: {decided:?}"
        );
    }
    let (reads, calls, batches) = (
        store.key_reads() - reads,
        store.key_and_account_calls() - calls,
        store.key_batches() - batches,
    );
    assert!(reads >= N as u64, "only {reads} keys re-read of {N}");
    assert!(batches > 0, "no batched read");
    // At most a batch and an account read per step (40), not one per key.
    assert!(
        calls <= 2 * 40,
        "{calls} store calls ({batches} batches) re-read {reads} keys"
    );
}
