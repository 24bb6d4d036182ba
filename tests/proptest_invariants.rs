//! Property tests for the invariants users rely on.

mod common;

use common::{fixture, perms, service};
use keyward::{Actor, KeyUpdate, NewAccount, NewKey, PermissionSet, VerifyContext};
use proptest::prelude::*;
use time::Duration;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

const UNIVERSE: &[&str] = &["a", "b", "c", "d", "e"];

fn subset() -> impl Strategy<Value = PermissionSet> {
    proptest::sample::subsequence(UNIVERSE, 0..=UNIVERSE.len()).prop_map(|v| perms(&v))
}

#[derive(Debug, Clone, Copy)]
enum Revocation {
    Deactivate,
    Delete,
    Expire,
    RotateWithoutGrace,
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, .. ProptestConfig::default() })]

    /// No verification succeeds on another instance once W has passed after
    /// a deactivation, deletion, expiry or rotation.
    #[test]
    fn no_success_after_w_on_another_instance(
        op in prop_oneof![
            Just(Revocation::Deactivate),
            Just(Revocation::Delete),
            Just(Revocation::Expire),
            Just(Revocation::RotateWithoutGrace),
        ],
        before_secs in 0i64..60,
        extra_secs in 0i64..120,
    ) {
        runtime().block_on(async {
            let f = fixture().await;
            let b = service(&f.store, &f.clock);
            let k = f.kw.issue_key(Actor::System, &f.account.id, NewKey::new("k")).await.expect("issued");
            f.clock.advance(Duration::seconds(before_secs));
            b.verify(k.key.id.as_str(), k.secret.expose(), VerifyContext::new()).await.expect("B warm");
            match op {
                Revocation::Deactivate => drop(f.kw.deactivate_key(Actor::System, &k.key.id).await.expect("ok")),
                Revocation::Delete => drop(f.kw.delete_key(Actor::System, &k.key.id).await.expect("ok")),
                Revocation::Expire => drop(
                    f.kw.update_key(Actor::System, &k.key.id, KeyUpdate::new().expires_at(Some(f.kw.now() + Duration::seconds(1))))
                        .await
                        .expect("ok"),
                ),
                Revocation::RotateWithoutGrace => drop(f.kw.rotate_key(Actor::System, &k.key.id, None).await.expect("ok")),
            }
            f.clock.advance(f.kw.propagation_window() + Duration::seconds(extra_secs));
            let r = b.verify(k.key.id.as_str(), k.secret.expose(), VerifyContext::new()).await;
            assert!(r.is_err(), "{op:?} still accepted after W: {r:?}");
        });
    }

    /// Effective permissions never exceed the account's nor the key's.
    #[test]
    fn effective_permissions_are_bounded(account_perms in subset(), key_perms in subset(), later in subset()) {
        runtime().block_on(async {
            let f = fixture().await;
            let account = f.kw.create_account(Actor::System, NewAccount::new("t", perms(UNIVERSE))).await.expect("account");
            let granted = key_perms.intersection(&account_perms);
            // Narrow the account after issuing by making a child with fewer permissions.
            let child = f
                .kw
                .create_account(Actor::System, NewAccount::new("c", account_perms.clone()).parent(account.id))
                .await
                .expect("child");
            let k = f
                .kw
                .issue_key(Actor::System, &child.id, NewKey::new("k").permissions(granted.clone()))
                .await
                .expect("issued");
            let p = f.kw.verify(k.key.id.as_str(), k.secret.expose(), VerifyContext::new()).await.expect("ok");
            assert!(p.permissions().is_subset(&child.permissions));
            assert!(p.permissions().is_subset(&granted));
            // Beyond the account is refused, never silently granted.
            let r = f.kw.update_key(Actor::System, &k.key.id, KeyUpdate::new().permissions(later.clone())).await;
            assert_eq!(r.is_ok(), later.is_subset(&child.permissions));
        });
    }
}

/// Secrets never appear in `Debug` output or in any serialized record.
#[tokio::test]
async fn secrets_never_leak_into_debug_or_serialized_records() {
    let f = fixture().await;
    let issued =
        f.kw.issue_key(Actor::System, &f.account.id, NewKey::new("k"))
            .await
            .expect("issued");
    let session =
        f.kw.login(
            issued.key.id.as_str(),
            issued.secret.expose(),
            VerifyContext::new(),
        )
        .await
        .expect("login");
    let principal =
        f.kw.verify_bearer(session.token.expose(), VerifyContext::new())
            .await
            .expect("bearer");
    let rotated =
        f.kw.rotate_key(Actor::System, &issued.key.id, Some(Duration::minutes(1)))
            .await
            .expect("rotated");
    let events =
        f.kw.events(Actor::System, &f.account.id, None, 100, None)
            .await
            .expect("events");
    let stored = keyward::store::KeyStore::get_key(&f.store, &issued.key.id)
        .await
        .expect("store")
        .expect("present");
    let texts = [
        format!("{issued:?}"),
        format!("{session:?}"),
        format!("{principal:?}"),
        format!("{rotated:?}"),
        format!("{stored:?}"),
        format!("{:?}", f.kw),
        format!("{events:?}"),
        serde_json::to_string(&issued.key).expect("json"),
        serde_json::to_string(&session.session).expect("json"),
        serde_json::to_string(&rotated.key).expect("json"),
        serde_json::to_string(&events.items).expect("json"),
        issued.secret.to_string(),
    ];
    let secrets = [
        issued.secret.expose(),
        session.token.expose(),
        rotated.secret.expose(),
        &stored.secret_hash.0,
    ];
    for text in &texts {
        for secret in secrets {
            // The random part alone must not appear either.
            let core = &secret[secret.len() / 3..secret.len() * 2 / 3];
            assert!(!text.contains(core), "secret material in: {text}");
        }
    }
}
