//! Shared test setup.
#![allow(dead_code, unreachable_pub, missing_docs)]

use keyward::{
    Account, Actor, HashParams, IssuedKey, Keyward, ManualClock, MemoryStore, NewAccount, NewKey,
    PermissionSet,
};

/// Cheap argon2 parameters so tests run fast (production uses the default).
pub const TEST_HASH: HashParams = HashParams {
    memory_kib: 64,
    iterations: 1,
    parallelism: 1,
};

pub fn perms(names: &[&str]) -> PermissionSet {
    PermissionSet::parse(names).expect("valid permissions")
}

pub fn service(store: &MemoryStore, clock: &ManualClock) -> Keyward {
    Keyward::builder()
        .store(store.clone())
        .clock(clock.clone())
        .hash_params(TEST_HASH)
        .flush_interval(None)
        .build()
        .expect("valid configuration")
}

pub struct Fixture {
    pub store: MemoryStore,
    pub clock: ManualClock,
    pub kw: Keyward,
    pub account: Account,
    pub admin: IssuedKey,
}

pub const ALL: &[&str] = &[
    "readApiKeys",
    "writeApiKeys",
    "readApplications",
    "writeApplications",
];

pub async fn fixture() -> Fixture {
    let store = MemoryStore::new();
    let clock = ManualClock::default();
    let kw = service(&store, &clock);
    let account = kw
        .create_account(Actor::System, NewAccount::new("Acme", perms(ALL)))
        .await
        .expect("account");
    let admin = kw
        .issue_key(
            Actor::System,
            &account.id,
            NewKey::new("admin").permissions(perms(ALL)).protected(true),
        )
        .await
        .expect("admin key");
    Fixture {
        store,
        clock,
        kw,
        account,
        admin,
    }
}

/// A usage filter for the hours around the service's current time.
pub fn around_now(kw: &Keyward) -> keyward::UsageFilter {
    keyward::UsageFilter::between(
        kw.now() - time::Duration::hours(1),
        kw.now() + time::Duration::hours(1),
    )
}

/// Flushes `kw`'s usage, then the key's successes and failures in the
/// hours around now.
pub async fn usage_totals(
    kw: &Keyward,
    account: &keyward::AccountId,
    key: keyward::KeyId,
) -> (u64, u64) {
    kw.flush().await.expect("flushed");
    let rows = kw
        .usage(Actor::System, account, around_now(kw).key(key))
        .await
        .expect("usage");
    (
        rows.iter().map(|r| r.successes).sum(),
        rows.iter().map(|r| r.failures).sum(),
    )
}
