//! Sessions stay dead: a session is valid only while the exact secret it
//! was opened with is valid and its key has not been deactivated, expired
//! or deleted since it opened. Reactivating a key or moving its passed
//! expiry revives nothing; a session opened with the old secret during a
//! grace period ends with that grace. At once on this instance, within W
//! on another one sharing the store.

mod common;

use common::{fixture, service};
use keyward::{Actor, Error, KeyUpdate, Keyward, NewKey, VerifyContext};
use time::Duration;

fn ctx() -> VerifyContext<'static> {
    VerifyContext::new()
}

/// W of the test services (the builder's default).
const W: Duration = Duration::seconds(30);

async fn refused(kw: &Keyward, token: &str) -> bool {
    matches!(
        kw.verify_session(token, ctx()).await,
        Err(Error::Unauthorized)
    )
}

#[tokio::test]
async fn a_session_opened_with_the_old_secret_ends_with_its_grace() {
    let f = fixture().await;
    let other = service(&f.store, &f.clock);
    let k =
        f.kw.issue_key(Actor::System, &f.account.id, NewKey::new("rotating"))
            .await
            .expect("issued");
    let before =
        f.kw.login(k.key.id.as_str(), k.secret.expose(), ctx())
            .await
            .expect("login before the rotation");
    let rotated =
        f.kw.rotate_key(Actor::System, &k.key.id, Some(Duration::seconds(3)))
            .await
            .expect("rotated");
    // During the grace, log in with the old secret and with the new one.
    let old =
        f.kw.login(k.key.id.as_str(), k.secret.expose(), ctx())
            .await
            .expect("the old secret still logs in during the grace");
    let new =
        f.kw.login(k.key.id.as_str(), rotated.secret.expose(), ctx())
            .await
            .expect("the new secret logs in");
    for s in [&before, &old, &new] {
        for kw in [&f.kw, &other] {
            kw.verify_session(s.token.expose(), ctx())
                .await
                .expect("valid during the grace");
        }
    }
    f.clock.advance(Duration::seconds(4));
    for kw in [&f.kw, &other] {
        assert!(
            refused(kw, old.token.expose()).await,
            "old-secret session survived its grace"
        );
        assert!(
            refused(kw, before.token.expose()).await,
            "pre-rotation session survived"
        );
        kw.verify_session(new.token.expose(), ctx())
            .await
            .expect("the new secret's session lives on");
    }
    // Also much later, with every cache re-read from the store.
    f.clock.advance(W);
    assert!(refused(&other, old.token.expose()).await);
    assert!(
        refused(&service(&f.store, &f.clock), old.token.expose()).await,
        "a fresh instance revived it from the store"
    );
}

#[tokio::test]
async fn reactivation_revives_no_session() {
    let f = fixture().await;
    let other = service(&f.store, &f.clock);
    let k =
        f.kw.issue_key(Actor::System, &f.account.id, NewKey::new("toggled"))
            .await
            .expect("issued");
    let s =
        f.kw.login(k.key.id.as_str(), k.secret.expose(), ctx())
            .await
            .expect("login");
    other
        .verify_session(s.token.expose(), ctx())
        .await
        .expect("valid elsewhere");
    f.kw.deactivate_key(Actor::System, &k.key.id)
        .await
        .expect("off");
    f.kw.activate_key(Actor::System, &k.key.id)
        .await
        .expect("on again");
    assert!(refused(&f.kw, s.token.expose()).await, "revived here");
    f.clock.advance(W);
    assert!(refused(&other, s.token.expose()).await, "revived elsewhere");
    assert!(refused(&service(&f.store, &f.clock), s.token.expose()).await);
    // The key itself works again, and a new session does too.
    let again =
        f.kw.login(k.key.id.as_str(), k.secret.expose(), ctx())
            .await
            .expect("the reactivated key logs in");
    for kw in [&f.kw, &other] {
        kw.verify_session(again.token.expose(), ctx())
            .await
            .expect("a session opened after the reactivation works");
    }
}

#[tokio::test]
async fn clearing_a_passed_expiry_revives_no_session() {
    let f = fixture().await;
    let other = service(&f.store, &f.clock);
    let k =
        f.kw.issue_key(
            Actor::System,
            &f.account.id,
            NewKey::new("expiring").expires_at(f.kw.now() + Duration::minutes(10)),
        )
        .await
        .expect("issued");
    let s =
        f.kw.login(k.key.id.as_str(), k.secret.expose(), ctx())
            .await
            .expect("login");
    f.clock.advance(Duration::minutes(10));
    assert!(refused(&f.kw, s.token.expose()).await, "expired key");
    for update in [
        KeyUpdate::new().expires_at(None),
        KeyUpdate::new().expires_at(Some(f.kw.now() + Duration::days(1))),
    ] {
        f.kw.update_key(Actor::System, &k.key.id, update)
            .await
            .expect("expiry moved");
        f.kw.verify(k.key.id.as_str(), k.secret.expose(), ctx())
            .await
            .expect("the key itself works again");
        assert!(refused(&f.kw, s.token.expose()).await, "revived here");
        f.clock.advance(W);
        assert!(refused(&other, s.token.expose()).await, "revived elsewhere");
    }
}

#[tokio::test]
async fn extending_an_expiry_before_it_passes_keeps_sessions() {
    let f = fixture().await;
    let k =
        f.kw.issue_key(
            Actor::System,
            &f.account.id,
            NewKey::new("extended").expires_at(f.kw.now() + Duration::minutes(10)),
        )
        .await
        .expect("issued");
    let s =
        f.kw.login(k.key.id.as_str(), k.secret.expose(), ctx())
            .await
            .expect("login");
    f.kw.update_key(
        Actor::System,
        &k.key.id,
        KeyUpdate::new().expires_at(Some(f.kw.now() + Duration::minutes(50))),
    )
    .await
    .expect("extended");
    f.kw.update_key(Actor::System, &k.key.id, KeyUpdate::new().name("renamed"))
        .await
        .expect("renamed");
    f.clock.advance(Duration::minutes(20));
    f.kw.verify_session(s.token.expose(), ctx())
        .await
        .expect("the key never expired: its session lives on");
}

#[tokio::test]
async fn a_login_racing_a_deactivation_hands_out_no_token() {
    let f = fixture().await;
    let k =
        f.kw.issue_key(Actor::System, &f.account.id, NewKey::new("raced"))
            .await
            .expect("issued");
    // The login verified the key, then the key was deactivated (and even
    // reactivated) before the session was written.
    let p =
        f.kw.verify(k.key.id.as_str(), k.secret.expose(), ctx())
            .await
            .expect("verified");
    f.kw.deactivate_key(Actor::System, &k.key.id)
        .await
        .expect("off");
    f.kw.activate_key(Actor::System, &k.key.id)
        .await
        .expect("on");
    assert!(matches!(
        f.kw.open_session(&p).await,
        Err(Error::Unauthorized)
    ));
    // Deleted between the verification and the session: no token, no row.
    let p =
        f.kw.verify(k.key.id.as_str(), k.secret.expose(), ctx())
            .await
            .expect("verified again");
    f.kw.delete_key(Actor::System, &k.key.id)
        .await
        .expect("deleted");
    assert!(matches!(
        f.kw.open_session(&p).await,
        Err(Error::Unauthorized)
    ));
}
