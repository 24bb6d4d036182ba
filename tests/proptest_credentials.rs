//! Property tests for the credential parsers: any input is handled without
//! panicking and without touching the store; issued credentials round-trip.

mod common;

use common::{fixture, service};
use keyward::{Error, ManualClock, MemoryStore, Prefix, VerifyContext, combine_key, split_key};
use proptest::prelude::*;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// Strings that look like credentials: the right prefixes and lengths with
/// arbitrary characters, plus arbitrary strings.
fn credential_like() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "kw_(sk|st|ak)_[0-9A-Za-z]{40,70}",
        "kw_[0-9A-Za-z]{15,19}",
        "[ -~]{0,200}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, .. ProptestConfig::default() })]

    #[test]
    fn any_string_is_rejected_cleanly(id in credential_like(), secret in credential_like()) {
        let rt = runtime();
        let store = MemoryStore::new();
        let kw = service(&store, &ManualClock::default());
        // The store is down: anything that got past parsing would report
        // Unavailable; anything rejected by parsing reports Malformed.
        store.set_unavailable(true);
        rt.block_on(async {
            for r in [
                kw.verify(&id, &secret, VerifyContext::new()).await,
                kw.verify_bearer(&secret, VerifyContext::new()).await,
                kw.verify_session(&secret, VerifyContext::new()).await,
            ] {
                match r {
                    Err(Error::Malformed(_)) => {}
                    // Only a string that passed the 32-bit checksum reaches the store.
                    Err(Error::Unavailable(_)) => {}
                    other => panic!("unexpected {other:?}"),
                }
            }
        });
        let _ = split_key(&Prefix::default(), &secret);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, .. ProptestConfig::default() })]

    #[test]
    fn issued_credentials_round_trip(name in "[a-zA-Z0-9 ]{1,40}") {
        let rt = runtime();
        rt.block_on(async {
            let f = fixture().await;
            let issued = f
                .kw
                .issue_key(keyward::Actor::System, &f.account.id, keyward::NewKey::new(name.trim().to_string() + "k"))
                .await
                .expect("issued");
            let p = f
                .kw
                .verify(issued.key.id.as_str(), issued.secret.expose(), VerifyContext::new())
                .await
                .expect("verifies");
            assert_eq!(p.key_id(), &issued.key.id);
            let single = combine_key(f.kw.prefix(), &issued.key.id, &issued.secret).expect("combine");
            let (id, secret) = split_key(f.kw.prefix(), single.expose()).expect("split");
            assert_eq!((id, &secret), (issued.key.id, &issued.secret));
            f.kw.verify_bearer(single.expose(), VerifyContext::new()).await.expect("bearer");
            // One changed character is caught by the checksum.
            let mut bytes = issued.secret.expose().as_bytes().to_vec();
            let i = bytes.len() / 2;
            bytes[i] = if bytes[i] == b'x' { b'y' } else { b'x' };
            let typo = String::from_utf8(bytes).expect("ascii");
            assert!(matches!(
                f.kw.verify(issued.key.id.as_str(), &typo, VerifyContext::new()).await,
                Err(Error::Malformed(_))
            ));
        });
    }
}
