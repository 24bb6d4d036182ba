//! The warm path skips the secret's checksum when a verified tag matches
//! (the match proves the secret), and checks it before anything else
//! counts: a malformed secret is refused as malformed, with no store read,
//! no argon2 and nothing counted, whether its key is warm, cold or unknown.

#[path = "store_support/mod.rs"]
mod common;

use std::sync::Arc;

use common::counting::Counting;
use keyward::{Error, MalformedCredential, MemoryStore, VerifyContext};

/// `secret` with one character of its random part changed (the checksum
/// left as it was, so it no longer matches).
fn mistyped_random_part(secret: &str) -> String {
    let mut b = secret.as_bytes().to_vec();
    let i = b.len() - 10;
    b[i] = if b[i] == b'a' { b'b' } else { b'a' };
    String::from_utf8(b).expect("ascii")
}

/// `secret` with one of its checksum characters changed.
fn mistyped_checksum(secret: &str) -> String {
    let mut b = secret.as_bytes().to_vec();
    let i = b.len() - 1;
    b[i] = if b[i] == b'a' { b'b' } else { b'a' };
    String::from_utf8(b).expect("ascii")
}

fn is_checksum_error<T: std::fmt::Debug>(r: &Result<T, Error>) -> bool {
    matches!(r, Err(Error::Malformed(MalformedCredential::Checksum)))
}

#[tokio::test]
async fn malformed_secrets_are_refused_before_any_read_or_argon2() {
    let memory = Arc::new(MemoryStore::new());
    let issuer = common::service(memory.clone(), None, 30);
    let (account, warm) = common::account_and_key(&issuer).await;
    let cold = common::issue(&issuer, &account.id, "cold").await;
    let store = Counting::forwarding(memory);
    let kw = common::service(store.clone(), None, 30);
    let ctx = VerifyContext::new();
    kw.verify(warm.key.id.as_str(), warm.secret.expose(), ctx)
        .await
        .expect("warm");
    let (reads, hashes) = (store.key_reads(), kw.argon2_checks());
    let unknown = "kw_0000000000000000a";
    for (id, secret) in [
        (warm.key.id.as_str(), warm.secret.expose()),
        (cold.key.id.as_str(), cold.secret.expose()),
        (unknown, warm.secret.expose()),
    ] {
        let bad = mistyped_random_part(secret);
        let cached = kw.verify_cached(id, &bad, ctx);
        assert!(
            matches!(&cached, Some(r) if is_checksum_error(r)),
            "{id}: {cached:?}"
        );
        let r = kw.verify(id, &bad, ctx).await;
        assert!(is_checksum_error(&r), "{id}: {r:?}");
    }
    assert_eq!(
        store.key_reads(),
        reads,
        "a malformed secret read the store"
    );
    assert_eq!(kw.argon2_checks(), hashes, "a malformed secret ran argon2");
    // The right secret is still accepted from the cache.
    let ok = kw.verify_cached(warm.key.id.as_str(), warm.secret.expose(), ctx);
    assert!(matches!(ok, Some(Ok(_))), "{ok:?}");
}

/// A verified tag proves the secret, so the cache accepts the right random
/// part even when a checksum character is mistyped; an instance that must
/// read the store and run argon2 refuses it as malformed first.
#[tokio::test]
async fn a_matching_tag_decides_without_the_checksum() {
    let memory = Arc::new(MemoryStore::new());
    let kw = common::service(memory.clone(), None, 30);
    let (_, key) = common::account_and_key(&kw).await;
    let ctx = VerifyContext::new();
    let id = key.key.id.as_str();
    kw.verify(id, key.secret.expose(), ctx).await.expect("warm");
    let typo = mistyped_checksum(key.secret.expose());
    assert!(matches!(kw.verify_cached(id, &typo, ctx), Some(Ok(_))));
    let cold = common::service(memory, None, 30);
    let r = cold.verify(id, &typo, ctx).await;
    assert!(is_checksum_error(&r), "{r:?}");
}
