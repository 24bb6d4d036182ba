//! Sessions: login, bearer verification, logout, and the events that end
//! a session.

mod common;

use common::fixture;
use keyward::{Actor, Error, NewKey, VerifyContext, combine_key};
use time::Duration;

fn ctx() -> VerifyContext<'static> {
    VerifyContext::new()
}

#[tokio::test]
async fn login_gives_a_bearer_token_that_works_until_logout() {
    let f = fixture().await;
    let s =
        f.kw.login(f.admin.key.id.as_str(), f.admin.secret.expose(), ctx())
            .await
            .expect("login");
    assert!(s.token.expose().starts_with("kw_st_"));
    assert_eq!(s.expires_at(), f.kw.now() + Duration::hours(1));
    let p =
        f.kw.verify_bearer(s.token.expose(), ctx())
            .await
            .expect("bearer");
    assert_eq!(p.session_id(), Some(&s.session.id));
    assert_eq!(p.key_id(), &f.admin.key.id);
    // A session token is never a key secret, and the reverse.
    assert!(matches!(
        f.kw.verify(f.admin.key.id.as_str(), s.token.expose(), ctx())
            .await,
        Err(Error::Malformed(_))
    ));
    assert!(matches!(
        f.kw.verify_session(f.admin.secret.expose(), ctx()).await,
        Err(Error::Malformed(_))
    ));
    f.kw.logout(&p).await.expect("logout");
    assert!(matches!(
        f.kw.verify_bearer(s.token.expose(), ctx()).await,
        Err(Error::Unauthorized)
    ));
    assert!(matches!(f.kw.logout(&p).await, Err(Error::Unauthorized)));
}

#[tokio::test]
async fn sessions_expire() {
    let f = fixture().await;
    let s =
        f.kw.login(f.admin.key.id.as_str(), f.admin.secret.expose(), ctx())
            .await
            .expect("login");
    f.clock.advance(Duration::minutes(59));
    f.kw.verify_session(s.token.expose(), ctx())
        .await
        .expect("still valid");
    f.clock.advance(Duration::minutes(1));
    assert!(matches!(
        f.kw.verify_session(s.token.expose(), ctx()).await,
        Err(Error::Unauthorized)
    ));
}

#[tokio::test]
async fn sessions_die_with_their_key() {
    let f = fixture().await;
    for action in ["deactivate", "delete", "rotate", "expire"] {
        let k =
            f.kw.issue_key(
                Actor::System,
                &f.account.id,
                NewKey::new(action).expires_at(f.kw.now() + Duration::minutes(30)),
            )
            .await
            .expect("issued");
        let s =
            f.kw.login(k.key.id.as_str(), k.secret.expose(), ctx())
                .await
                .expect("login");
        f.kw.verify_session(s.token.expose(), ctx())
            .await
            .expect("valid");
        match action {
            "deactivate" => drop(
                f.kw.deactivate_key(Actor::System, &k.key.id)
                    .await
                    .expect("off"),
            ),
            "delete" => drop(
                f.kw.delete_key(Actor::System, &k.key.id)
                    .await
                    .expect("gone"),
            ),
            "rotate" => drop(
                f.kw.rotate_key(Actor::System, &k.key.id, None)
                    .await
                    .expect("rotated"),
            ),
            _ => f.clock.advance(Duration::minutes(30)),
        }
        assert!(
            matches!(
                f.kw.verify_session(s.token.expose(), ctx()).await,
                Err(Error::Unauthorized)
            ),
            "session survived {action}"
        );
    }
}

#[tokio::test]
async fn rotation_with_grace_keeps_sessions_until_the_grace_ends() {
    let f = fixture().await;
    let s =
        f.kw.login(f.admin.key.id.as_str(), f.admin.secret.expose(), ctx())
            .await
            .expect("login");
    f.kw.rotate_key(Actor::System, &f.admin.key.id, Some(Duration::minutes(5)))
        .await
        .expect("rotated");
    f.kw.verify_session(s.token.expose(), ctx())
        .await
        .expect("grace");
    f.clock.advance(Duration::minutes(5));
    assert!(f.kw.verify_session(s.token.expose(), ctx()).await.is_err());
}

#[tokio::test]
async fn single_string_key_form_authenticates_as_bearer() {
    let f = fixture().await;
    let single = combine_key(f.kw.prefix(), &f.admin.key.id, &f.admin.secret).expect("combined");
    let p =
        f.kw.verify_bearer(single.expose(), ctx())
            .await
            .expect("bearer key");
    assert_eq!(p.key_id(), &f.admin.key.id);
    assert_eq!(p.session_id(), None);
    assert!(matches!(
        f.kw.verify_bearer("Basic abc", ctx()).await,
        Err(Error::Malformed(_))
    ));
}

#[tokio::test]
async fn login_and_logout_are_audited() {
    let f = fixture().await;
    let s =
        f.kw.login(f.admin.key.id.as_str(), f.admin.secret.expose(), ctx())
            .await
            .expect("login");
    let p =
        f.kw.verify_bearer(s.token.expose(), ctx())
            .await
            .expect("bearer");
    f.kw.logout(&p).await.expect("logout");
    let events =
        f.kw.events(
            Actor::System,
            &f.account.id,
            Some(&f.admin.key.id),
            10,
            None,
        )
        .await
        .expect("events");
    let actions: Vec<&str> = events.items.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions[..2], ["logout", "login"]);
    assert_eq!(events.items[0].session_id, Some(s.session.id));
}
