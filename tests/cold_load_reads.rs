//! Store reads per cold verification (issue 12): the key, its
//! application's status and its owners' limits come in one store call
//! (`KeyStore::get_key_for_verify`), the account from its cache. Counted
//! with the counting store, against a store that answers that call the
//! way the trait's default does (one call per record), on the memory
//! store, SQLite and PostgreSQL.

#[path = "store_support/mod.rs"]
mod common;

use std::sync::Arc;

use common::counting::Counting;
use keyward::store::KeyStore;
use keyward::{
    Actor, IssuedKey, Keyward, LimitOwner, Limits, MemoryStore, NewAccount, NewApp, NewKey,
    PermissionSet, VerifyContext,
};

/// Store reads of a cold verification of `first` (account not cached
/// yet) and then of `second` (same account, cached), on a fresh instance
/// over `store`.
async fn reads(store: Arc<Counting>, first: &IssuedKey, second: &IssuedKey) -> (u64, u64) {
    let kw = common::service(store.clone(), None, 30);
    let mut out = [0; 2];
    for (i, k) in [first, second].into_iter().enumerate() {
        let before = store.store_reads();
        kw.verify(k.key.id.as_str(), k.secret.expose(), VerifyContext::new())
            .await
            .expect("verifies");
        out[i] = store.store_reads() - before;
    }
    (out[0], out[1])
}

async fn cold_verify_reads_the_key_once(inner: Arc<dyn KeyStore>) {
    let strong: Keyward = common::service(inner.clone(), None, 30);
    let p = PermissionSet::parse(["readApplications"]).expect("perms");
    let account = strong
        .create_account(Actor::System, NewAccount::new("Acme", p.clone()))
        .await
        .expect("account");
    let app = strong
        .create_app(Actor::System, &account.id, NewApp::new("Mobile"))
        .await
        .expect("app");
    let mut keys = Vec::new();
    for name in ["first", "second"] {
        keys.push(
            strong
                .issue_key(
                    Actor::System,
                    &account.id,
                    NewKey::new(name).app(app.id).permissions(p.clone()),
                )
                .await
                .expect("issued"),
        );
    }
    strong
        .set_limits(
            Actor::System,
            &LimitOwner::Account(account.id),
            Limits::new().credits(keyward::Credits::new(1000)),
        )
        .await
        .expect("limits");

    let joined = reads(Counting::forwarding(inner.clone()), &keys[0], &keys[1]).await;
    let split_store = Counting::forwarding(inner);
    split_store.split_key_reads();
    let split = reads(split_store, &keys[0], &keys[1]).await;
    println!(
        "store reads per cold verify (account uncached, cached): joined {joined:?}, split {split:?}"
    );
    // Split: key, account, application, limits; then the same without the
    // account. Joined: one call for the key, plus the account once.
    assert_eq!(split, (4, 3));
    assert_eq!(joined, (2, 1));
}

#[tokio::test]
async fn memory() {
    cold_verify_reads_the_key_once(Arc::new(MemoryStore::new())).await;
}

#[cfg(feature = "sqlite")]
#[tokio::test]
async fn sqlite() {
    let store = keyward::store::SqliteStore::connect("sqlite::memory:")
        .await
        .expect("sqlite");
    cold_verify_reads_the_key_once(Arc::new(store)).await;
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn postgres() {
    let Some(url) = common::pg_url() else { return };
    let schema = common::schema_name();
    let store = common::pg_store(&url, &schema, |o| o).await;
    cold_verify_reads_the_key_once(Arc::new(store)).await;
    common::drop_schema(&url, &schema).await;
}
