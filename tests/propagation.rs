//! Two service instances sharing one store (no change feed) see each
//! other's revocations within the propagation window W, measured with a
//! manual clock.

mod common;

use common::{fixture, service};
use keyward::{Actor, Error, KeyUpdate, NewKey, VerifyContext};
use time::Duration;

fn ctx() -> VerifyContext<'static> {
    VerifyContext::new()
}

#[tokio::test]
async fn revocations_reach_the_other_instance_within_w() {
    let f = fixture().await;
    let b = service(&f.store, &f.clock);
    let w = f.kw.propagation_window();
    for action in [
        "deactivate",
        "delete",
        "rotate",
        "expire",
        "permissions",
        "session",
    ] {
        let k =
            f.kw.issue_key(
                Actor::System,
                &f.account.id,
                NewKey::new(action).permissions(common::perms(&["readApplications"])),
            )
            .await
            .expect("issued");
        let s =
            f.kw.login(k.key.id.as_str(), k.secret.expose(), ctx())
                .await
                .expect("login");
        // Warm B.
        b.verify(k.key.id.as_str(), k.secret.expose(), ctx())
            .await
            .expect("B warm");
        b.verify_session(s.token.expose(), ctx())
            .await
            .expect("B session warm");
        let effective_by = match action {
            "deactivate" => {
                f.kw.deactivate_key(Actor::System, &k.key.id)
                    .await
                    .expect("off")
                    .effective_by
            }
            "delete" => Some(
                f.kw.delete_key(Actor::System, &k.key.id)
                    .await
                    .expect("gone")
                    .effective_by,
            ),
            "rotate" => Some(
                f.kw.rotate_key(Actor::System, &k.key.id, None)
                    .await
                    .expect("rot")
                    .effective_by,
            ),
            "expire" => {
                f.kw.update_key(
                    Actor::System,
                    &k.key.id,
                    KeyUpdate::new().expires_at(Some(f.kw.now() + Duration::seconds(1))),
                )
                .await
                .expect("expiry")
                .effective_by
            }
            "permissions" => {
                f.kw.update_key(
                    Actor::System,
                    &k.key.id,
                    KeyUpdate::new().permissions(common::perms(&[])),
                )
                .await
                .expect("perms")
                .effective_by
            }
            _ => {
                let p =
                    f.kw.verify_session(s.token.expose(), ctx())
                        .await
                        .expect("session");
                f.kw.logout(&p).await.expect("logout");
                Some(f.kw.now() + w)
            }
        };
        assert_eq!(effective_by, Some(f.kw.now() + w), "{action}");
        // Still within W, B may serve its cached entry...
        f.clock.advance(Duration::seconds(1));
        // ...but once W has passed since the change, B must not.
        f.clock.advance(w - Duration::seconds(1));
        let key_ok = b.verify(k.key.id.as_str(), k.secret.expose(), ctx()).await;
        let session_ok = b.verify_session(s.token.expose(), ctx()).await;
        match action {
            "permissions" => {
                let p = key_ok.expect("still authenticates");
                assert!(p.permissions().is_empty(), "B kept revoked permissions");
            }
            _ => assert!(
                key_ok.is_err() || action == "session",
                "B accepted after W: {action}"
            ),
        }
        if action != "permissions" {
            assert!(
                session_ok.is_err(),
                "B accepted a session after W: {action}"
            );
        }
    }
}

#[tokio::test]
async fn the_instance_that_revokes_rejects_at_once() {
    let f = fixture().await;
    let k =
        f.kw.issue_key(Actor::System, &f.account.id, NewKey::new("k"))
            .await
            .expect("issued");
    f.kw.verify(k.key.id.as_str(), k.secret.expose(), ctx())
        .await
        .expect("warm");
    f.kw.deactivate_key(Actor::System, &k.key.id)
        .await
        .expect("off");
    assert!(matches!(
        f.kw.verify(k.key.id.as_str(), k.secret.expose(), ctx())
            .await,
        Err(Error::KeyInactive)
    ));
}

#[tokio::test]
async fn account_permission_changes_bound_keys_within_w() {
    // The effective permissions are key ∩ account as of the last read,
    // never older than W.
    let f = fixture().await;
    let p =
        f.kw.verify(f.admin.key.id.as_str(), f.admin.secret.expose(), ctx())
            .await
            .expect("verify");
    assert!(p.permissions().is_subset(&f.account.permissions));
    f.clock.advance(f.kw.propagation_window());
    let p =
        f.kw.verify(f.admin.key.id.as_str(), f.admin.secret.expose(), ctx())
            .await
            .expect("re-read after W keeps the tag, no argon2 needed");
    assert!(p.permissions().is_subset(&f.account.permissions));
}
