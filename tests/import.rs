//! Key import: keys from another system keep working with their old
//! strings, whatever was imported (the secret, or an argon2, bcrypt or
//! SHA-256 hash), are upgraded to keyward's argon2id at the first
//! successful verification, and bad batches import nothing.

mod common;

use common::{TEST_HASH, perms};
use keyward::store::KeyStore;
use keyward::{
    Actor, AuditAction, Error, ImportError, ImportKey, Keyward, LegacyKeys, ManualClock,
    MemoryStore, NewAccount, NewKey, VerifyContext,
};
use sha2::Digest;

const OLD: &str = "sk_live_4eC39HqLyjWDarjtT1zdp7dc";
const OTHER: &str = "sk_live_9fZ11QqLyjWDarjtT1zdp7dd";

fn service(store: &MemoryStore, clock: &ManualClock, legacy: LegacyKeys) -> Keyward {
    Keyward::builder()
        .store(store.clone())
        .clock(clock.clone())
        .hash_params(TEST_HASH)
        .legacy_keys(legacy)
        .flush_interval(None)
        .build()
        .expect("valid configuration")
}

struct Setup {
    store: MemoryStore,
    clock: ManualClock,
    kw: Keyward,
    account: keyward::AccountId,
}

async fn setup(legacy: LegacyKeys) -> Setup {
    let store = MemoryStore::new();
    let clock = ManualClock::default();
    let kw = service(&store, &clock, legacy);
    let account = kw
        .create_account(
            Actor::System,
            NewAccount::new("Acme", perms(&["readApplications", "readApiKeys"])),
        )
        .await
        .expect("account")
        .id;
    Setup {
        store,
        clock,
        kw,
        account,
    }
}

fn key() -> NewKey {
    NewKey::new("production").permissions(perms(&["readApplications"]))
}

fn sha256_hex(s: &str) -> String {
    sha2::Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

async fn stored_hash(s: &Setup, id: &keyward::KeyId) -> String {
    s.store
        .get_key(id)
        .await
        .expect("store")
        .expect("present")
        .secret_hash
        .0
}

/// The outcome a caller sees: the same for an unknown string and a wrong
/// one.
fn refused(r: keyward::Result<keyward::Principal>) -> String {
    match r {
        Err(e @ Error::Unauthorized) => e.to_string(),
        other => panic!("expected the one refusal, got {other:?}"),
    }
}

/// Verifies `old` on a fresh instance (cold: the stored hash is checked),
/// then checks what the stored hash became.
async fn verifies_cold_and_upgrades(s: &Setup, old: &str, id: &keyward::KeyId) {
    let before = stored_hash(s, id).await;
    let fresh = service(&s.store, &s.clock, fresh_legacy(&before));
    assert!(!before.starts_with("$argon2id$"), "{before}");
    let wrong = format!("{}X", &old[..old.len() - 1]);
    let unknown = refused(fresh.verify_legacy(OTHER, VerifyContext::new()).await);
    assert_eq!(
        refused(fresh.verify_legacy(&wrong, VerifyContext::new()).await),
        unknown,
        "a wrong secret is refused as an unknown key is"
    );
    assert_eq!(
        stored_hash(s, id).await,
        before,
        "a refusal upgrades nothing"
    );
    s.clock.advance(fresh.propagation_window());
    let p = fresh
        .verify_legacy(old, VerifyContext::new())
        .await
        .expect("the old string verifies");
    assert_eq!(p.key_id(), id);
    let after = stored_hash(s, id).await;
    assert!(after.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{after}");
    // Another instance now verifies the old string with argon2id, and the
    // wrong one is still refused the same way.
    let other = service(&s.store, &s.clock, fresh_legacy(&before));
    other
        .verify_legacy(old, VerifyContext::new())
        .await
        .expect("verifies against the argon2id hash");
    assert_eq!(
        refused(other.verify_legacy(&wrong, VerifyContext::new()).await),
        unknown
    );
    let events =
        s.kw.events(Actor::System, &s.account, Some(id), 10, None)
            .await
            .expect("events");
    let actions: Vec<_> = events.items.iter().map(|e| e.action).collect();
    assert_eq!(
        actions,
        [AuditAction::KeyRehashed, AuditAction::KeyImported]
    );
}

fn fresh_legacy(before: &str) -> LegacyKeys {
    if before.starts_with("$2") {
        LegacyKeys::leading("sk_live_", 14).expect("valid")
    } else {
        LegacyKeys::sha256("sk_live_").expect("valid")
    }
}

#[tokio::test]
async fn a_secret_is_hashed_with_argon2id_on_import_and_verifies_warm() {
    let s = setup(LegacyKeys::sha256("sk_live_").expect("valid")).await;
    let imported =
        s.kw.import_key(
            Actor::System,
            ImportKey::with_secret("key_1", s.account, key(), OLD),
        )
        .await
        .expect("imported");
    assert!(imported.created);
    assert!(
        stored_hash(&s, &imported.key.id)
            .await
            .starts_with("$argon2id$")
    );
    // Warm on the importing instance, through the bearer form too.
    let warm =
        s.kw.verify_legacy_cached(OLD, VerifyContext::new())
            .expect("decided from the cache")
            .expect("accepted");
    assert_eq!(warm.key_id(), &imported.key.id);
    let bearer =
        s.kw.verify_bearer(OLD, VerifyContext::new())
            .await
            .expect("Authorization: Bearer <old string>");
    assert_eq!(bearer.key_id(), &imported.key.id);
    assert!(bearer.has(&keyward::Permission::new("readApplications").expect("valid")));
    let unknown = refused(s.kw.verify_legacy(OTHER, VerifyContext::new()).await);
    assert_eq!(
        refused(
            s.kw.verify_legacy(&format!("{OLD}x"), VerifyContext::new())
                .await
        ),
        unknown
    );
}

#[tokio::test]
async fn a_sha256_hash_verifies_then_becomes_argon2id() {
    let s = setup(LegacyKeys::sha256("sk_live_").expect("valid")).await;
    let imported =
        s.kw.import_key(
            Actor::System,
            ImportKey::with_hash("key_1", s.account, key(), sha256_hex(OLD).to_uppercase()),
        )
        .await
        .expect("imported");
    assert!(
        stored_hash(&s, &imported.key.id)
            .await
            .starts_with("$sha256$")
    );
    verifies_cold_and_upgrades(&s, OLD, &imported.key.id).await;
}

#[tokio::test]
async fn a_bcrypt_hash_found_by_its_public_part_verifies_then_becomes_argon2id() {
    let s = setup(LegacyKeys::leading("sk_live_", 14).expect("valid")).await;
    let hash = bcrypt::hash(OLD, 4).expect("bcrypt");
    let missing_alias =
        s.kw.import_key(
            Actor::System,
            ImportKey::with_hash("key_1", s.account, key(), hash.clone()),
        )
        .await;
    assert!(matches!(
        missing_alias,
        Err(Error::InvalidInput { field: "alias", .. })
    ));
    let imported =
        s.kw.import_key(
            Actor::System,
            ImportKey::with_hash("key_1", s.account, key(), hash).alias(&OLD[..14]),
        )
        .await
        .expect("imported");
    verifies_cold_and_upgrades(&s, OLD, &imported.key.id).await;
}

#[tokio::test]
async fn an_argon2i_hash_verifies_then_becomes_argon2id() {
    use argon2::password_hash::PasswordHasher;
    let s = setup(LegacyKeys::sha256("sk_live_").expect("valid")).await;
    let argon2i = argon2::Argon2::new(
        argon2::Algorithm::Argon2i,
        argon2::Version::V0x13,
        argon2::Params::new(64, 1, 1, None).expect("params"),
    )
    .hash_password(OLD.as_bytes())
    .expect("hash")
    .to_string();
    assert!(argon2i.starts_with("$argon2i$"));
    let imported =
        s.kw.import_key(
            Actor::System,
            ImportKey::with_hash("key_1", s.account, key(), argon2i).alias(sha256_hex(OLD)),
        )
        .await
        .expect("imported");
    verifies_cold_and_upgrades(&s, OLD, &imported.key.id).await;
}

#[tokio::test]
async fn importing_an_external_id_again_finds_the_same_key() {
    let s = setup(LegacyKeys::sha256("sk_live_").expect("valid")).await;
    let row = || ImportKey::with_hash("key_1", s.account, key(), sha256_hex(OLD));
    let first = s.kw.import_key(Actor::System, row()).await.expect("first");
    let again = s.kw.import_key(Actor::System, row()).await.expect("again");
    assert!(first.created && !again.created);
    assert_eq!(first.key.id, again.key.id);
    let keys =
        s.kw.list_keys(Actor::System, &s.account, keyward::ListKeys::new())
            .await
            .expect("list");
    assert_eq!(keys.items.len(), 1);
    // Another external id with the same old string is refused: one string,
    // one key.
    let taken =
        s.kw.import_key(
            Actor::System,
            ImportKey::with_secret("key_2", s.account, key(), OLD),
        )
        .await;
    assert!(matches!(taken, Err(Error::Conflict(_))), "{taken:?}");
}

#[tokio::test]
async fn a_batch_with_bad_rows_imports_nothing_and_names_each_row() {
    let s = setup(LegacyKeys::sha256("sk_live_").expect("valid")).await;
    let rows = vec![
        ImportKey::with_secret("key_1", s.account, key(), OLD),
        ImportKey::with_hash("key_2", s.account, key(), "not a hash"),
        ImportKey::with_secret(
            "key_3",
            s.account,
            NewKey::new("admin").permissions(perms(&["writeAccounts"])),
            OTHER,
        ),
        ImportKey::with_secret("key_4", s.account, key(), "pk_test_wrong_prefix"),
        ImportKey::with_secret("key_1", s.account, key(), OTHER),
    ];
    let Err(ImportError::Invalid(bad)) = s.kw.import_keys(Actor::System, rows).await else {
        panic!("expected invalid rows");
    };
    let rows: Vec<_> = bad.iter().map(|r| r.row).collect();
    assert_eq!(rows, [1, 2, 3, 4]);
    assert!(matches!(
        bad[0].error,
        Error::InvalidInput { field: "hash", .. }
    ));
    assert!(matches!(bad[1].error, Error::NotGrantable { .. }));
    assert!(matches!(
        bad[2].error,
        Error::InvalidInput {
            field: "secret",
            ..
        }
    ));
    assert!(matches!(
        bad[3].error,
        Error::InvalidInput {
            field: "external_id",
            ..
        }
    ));
    let keys =
        s.kw.list_keys(Actor::System, &s.account, keyward::ListKeys::new())
            .await
            .expect("list");
    assert!(keys.items.is_empty(), "nothing partial");
    refused(s.kw.verify_legacy(OLD, VerifyContext::new()).await);
}

#[tokio::test]
async fn import_needs_a_legacy_setting_and_respects_the_actor() {
    let store = MemoryStore::new();
    let kw = common::service(&store, &ManualClock::default());
    let account = kw
        .create_account(
            Actor::System,
            NewAccount::new("Acme", perms(&["readApplications"])),
        )
        .await
        .expect("account");
    let r = kw
        .import_keys(
            Actor::System,
            vec![ImportKey::with_secret("k", account.id, key(), OLD)],
        )
        .await;
    assert!(matches!(
        r,
        Err(ImportError::Failed(Error::InvalidInput {
            field: "legacy_keys",
            ..
        }))
    ));
    assert!(matches!(
        kw.verify_legacy(OLD, VerifyContext::new()).await,
        Err(Error::Malformed(_))
    ));
}
