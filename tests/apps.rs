//! Applications through the library: one switch for all its keys and
//! sessions, here at once and elsewhere within W; reactivation restores
//! exactly the keys that were active; the manage bounds; delete with and
//! without cascade.

mod common;

use common::{fixture, perms, service};
use keyward::{
    Actor, AppStatus, AppUpdate, AuditAction, Error, KeyStatus, ListApps, ListKeys, NewApp, NewKey,
    Principal, VerifyContext,
};

fn ctx() -> VerifyContext<'static> {
    VerifyContext::new()
}

async fn key_in(
    f: &common::Fixture,
    app: &keyward::App,
    name: &str,
    p: &[&str],
) -> keyward::IssuedKey {
    f.kw.issue_key(
        Actor::System,
        &f.account.id,
        NewKey::new(name).app(app.id).permissions(perms(p)),
    )
    .await
    .expect("issued")
}

async fn verify(kw: &keyward::Keyward, k: &keyward::IssuedKey) -> Result<Principal, Error> {
    kw.verify(k.key.id.as_str(), k.secret.expose(), ctx()).await
}

#[tokio::test]
async fn switching_an_app_off_stops_its_keys_and_sessions_and_on_restores_the_active_ones() {
    let f = fixture().await;
    let app =
        f.kw.create_app(
            Actor::System,
            &f.account.id,
            NewApp::new("Mobile").description("iOS and Android"),
        )
        .await
        .expect("app");
    let on = key_in(&f, &app, "on", &["readApplications"]).await;
    let off = key_in(&f, &app, "off", &["readApplications"]).await;
    let outside =
        f.kw.issue_key(Actor::System, &f.account.id, NewKey::new("outside"))
            .await
            .expect("issued");
    f.kw.deactivate_key(Actor::System, &off.key.id)
        .await
        .expect("key off");
    let session =
        f.kw.login(on.key.id.as_str(), on.secret.expose(), ctx())
            .await
            .expect("login");
    verify(&f.kw, &on).await.expect("warm");
    f.kw.verify_session(session.token.expose(), ctx())
        .await
        .expect("session warm");
    let got = f.kw.get_app(Actor::System, &app.id).await.expect("get");
    assert_eq!((got.active_keys, got.inactive_keys), (1, 1));

    let events_before =
        f.kw.events(Actor::System, &f.account.id, None, 100, None)
            .await
            .expect("events")
            .items
            .len();
    let done =
        f.kw.update_app(
            Actor::System,
            &app.id,
            AppUpdate::new().status(AppStatus::Inactive),
        )
        .await
        .expect("app off");
    assert_eq!(done.app.status, AppStatus::Inactive);
    assert_eq!(
        done.effective_by,
        Some(f.kw.now() + f.kw.propagation_window())
    );
    // At once on this instance, with the answer an inactive key gets.
    assert!(matches!(verify(&f.kw, &on).await, Err(Error::KeyInactive)));
    assert!(
        f.kw.verify_session(session.token.expose(), ctx())
            .await
            .is_err()
    );
    verify(&f.kw, &outside)
        .await
        .expect("other keys unaffected");
    // One audit event for the whole switch.
    let events =
        f.kw.events(Actor::System, &f.account.id, None, 100, None)
            .await
            .expect("events")
            .items;
    assert_eq!(events.len(), events_before + 1);
    assert_eq!(events[0].action, AuditAction::AppDeactivated);
    // The keys' own status is untouched.
    let k = f.kw.get_key(Actor::System, &on.key.id).await.expect("get");
    assert_eq!(k.status, KeyStatus::Active);

    let back =
        f.kw.update_app(
            Actor::System,
            &app.id,
            AppUpdate::new().status(AppStatus::Active),
        )
        .await
        .expect("app on");
    assert_eq!(back.effective_by, None);
    verify(&f.kw, &on)
        .await
        .expect("the active key verifies again");
    assert!(
        matches!(verify(&f.kw, &off).await, Err(Error::KeyInactive)),
        "a key off before stays off"
    );
    assert!(
        f.kw.verify_session(session.token.expose(), ctx())
            .await
            .is_err(),
        "a session ended by the switch-off came back"
    );
    f.kw.login(on.key.id.as_str(), on.secret.expose(), ctx())
        .await
        .expect("new sessions work again");
}

#[tokio::test]
async fn the_switch_reaches_another_instance_within_w() {
    let f = fixture().await;
    let b = service(&f.store, &f.clock);
    let app =
        f.kw.create_app(Actor::System, &f.account.id, NewApp::new("Web"))
            .await
            .expect("app");
    let k = key_in(&f, &app, "k", &["readApplications"]).await;
    let s =
        f.kw.login(k.key.id.as_str(), k.secret.expose(), ctx())
            .await
            .expect("login");
    verify(&b, &k).await.expect("B warm");
    b.verify_session(s.token.expose(), ctx())
        .await
        .expect("B session warm");
    let w = f.kw.propagation_window();
    f.kw.update_app(
        Actor::System,
        &app.id,
        AppUpdate::new().status(AppStatus::Inactive),
    )
    .await
    .expect("off");
    f.clock.advance(w);
    assert!(verify(&b, &k).await.is_err(), "B accepted the key after W");
    assert!(
        b.verify_session(s.token.expose(), ctx()).await.is_err(),
        "B accepted the session after W"
    );
    f.kw.update_app(
        Actor::System,
        &app.id,
        AppUpdate::new().status(AppStatus::Active),
    )
    .await
    .expect("on");
    f.clock.advance(w);
    verify(&b, &k)
        .await
        .expect("B accepts the key again after W");
    assert!(
        b.verify_session(s.token.expose(), ctx()).await.is_err(),
        "B revived a session"
    );
}

#[tokio::test]
async fn a_principal_switches_an_app_only_when_it_holds_every_permission_of_its_keys() {
    let f = fixture().await;
    let writer =
        f.kw.issue_key(
            Actor::System,
            &f.account.id,
            NewKey::new("writer").permissions(perms(&["writeApiKeys", "readApplications"])),
        )
        .await
        .expect("writer");
    let p = verify(&f.kw, &writer).await.expect("writer verifies");
    let app =
        f.kw.create_app(Actor::Principal(&p), &f.account.id, NewApp::new("Mine"))
            .await
            .expect("a writer creates an app");
    let weak = key_in(&f, &app, "weak", &["readApplications"]).await;
    f.kw.update_app(
        Actor::Principal(&p),
        &app.id,
        AppUpdate::new().status(AppStatus::Inactive),
    )
    .await
    .expect("within its permissions");
    f.kw.update_app(
        Actor::Principal(&p),
        &app.id,
        AppUpdate::new().status(AppStatus::Active),
    )
    .await
    .expect("back on");
    let strong = key_in(&f, &app, "strong", &["writeApplications"]).await;
    let r =
        f.kw.update_app(
            Actor::Principal(&p),
            &app.id,
            AppUpdate::new().status(AppStatus::Inactive),
        )
        .await;
    assert!(
        matches!(r, Err(Error::PermissionNotHeld { .. })),
        "got {r:?}"
    );
    let r = f.kw.delete_app(Actor::Principal(&p), &app.id, true).await;
    assert!(
        matches!(r, Err(Error::PermissionNotHeld { .. })),
        "got {r:?}"
    );
    // Nothing changed: both keys still work.
    verify(&f.kw, &weak).await.expect("weak still works");
    verify(&f.kw, &strong).await.expect("strong still works");
    // Renaming needs no key's permissions.
    f.kw.update_app(
        Actor::Principal(&p),
        &app.id,
        AppUpdate::new().title("Renamed"),
    )
    .await
    .expect("rename");

    // An application holding a protected key is protected.
    let sys =
        f.kw.create_app(Actor::System, &f.account.id, NewApp::new("System"))
            .await
            .expect("app");
    f.kw.issue_key(
        Actor::System,
        &f.account.id,
        NewKey::new("guard").app(sys.id).protected(true),
    )
    .await
    .expect("protected key");
    let admin = verify(&f.kw, &f.admin).await.expect("admin");
    for r in [
        f.kw.update_app(
            Actor::Principal(&admin),
            &sys.id,
            AppUpdate::new().status(AppStatus::Inactive),
        )
        .await
        .err(),
        f.kw.update_app(
            Actor::Principal(&admin),
            &sys.id,
            AppUpdate::new().title("x"),
        )
        .await
        .err(),
        f.kw.delete_app(Actor::Principal(&admin), &sys.id, true)
            .await
            .err(),
    ] {
        assert!(matches!(r, Some(Error::Protected)), "got {r:?}");
    }
    f.kw.update_app(
        Actor::System,
        &sys.id,
        AppUpdate::new().status(AppStatus::Inactive),
    )
    .await
    .expect("the system may");
}

#[tokio::test]
async fn apps_are_scoped_to_their_account_and_listed_with_filters() {
    let f = fixture().await;
    let other =
        f.kw.create_account(
            Actor::System,
            keyward::NewAccount::new("Other", perms(common::ALL)),
        )
        .await
        .expect("account");
    let foreign =
        f.kw.create_app(Actor::System, &other.id, NewApp::new("Theirs"))
            .await
            .expect("app");
    let admin = verify(&f.kw, &f.admin).await.expect("admin");
    let r = f.kw.get_app(Actor::Principal(&admin), &foreign.id).await;
    assert!(
        matches!(r, Err(Error::NotFound("application"))),
        "got {r:?}"
    );
    let r =
        f.kw.issue_key(
            Actor::Principal(&admin),
            &f.account.id,
            NewKey::new("x").app(foreign.id),
        )
        .await;
    assert!(
        matches!(r, Err(Error::NotFound("application"))),
        "got {r:?}"
    );
    for title in ["Billing export", "Mobile", "billing API"] {
        // Apart in time: listed in creation order.
        f.clock.advance(time::Duration::seconds(1));
        f.kw.create_app(Actor::Principal(&admin), &f.account.id, NewApp::new(title))
            .await
            .expect("app");
    }
    let page =
        f.kw.list_apps(
            Actor::Principal(&admin),
            &f.account.id,
            ListApps::new().q("BILL"),
        )
        .await
        .expect("list");
    let titles: Vec<_> = page.items.iter().map(|a| a.title.as_str()).collect();
    assert_eq!(titles, ["Billing export", "billing API"]);
    let first =
        f.kw.list_apps(
            Actor::Principal(&admin),
            &f.account.id,
            ListApps::new().limit(2),
        )
        .await
        .expect("list");
    assert_eq!(first.items.len(), 2);
    let rest =
        f.kw.list_apps(
            Actor::Principal(&admin),
            &f.account.id,
            ListApps::new().cursor(first.next_cursor.expect("more")),
        )
        .await
        .expect("list");
    assert_eq!(rest.items.len(), 1);
    assert!(rest.next_cursor.is_none());
    let r =
        f.kw.create_app(Actor::System, &f.account.id, NewApp::new(""))
            .await;
    assert!(
        matches!(r, Err(Error::InvalidInput { field: "title", .. })),
        "got {r:?}"
    );
}

#[tokio::test]
async fn delete_refuses_while_keys_remain_unless_cascade() {
    let f = fixture().await;
    let app =
        f.kw.create_app(Actor::System, &f.account.id, NewApp::new("Doomed"))
            .await
            .expect("app");
    let a = key_in(&f, &app, "a", &[]).await;
    let b = key_in(&f, &app, "b", &[]).await;
    let listed =
        f.kw.list_keys(Actor::System, &f.account.id, ListKeys::new().app(app.id))
            .await
            .expect("list");
    assert_eq!(listed.items.len(), 2);
    let r = f.kw.delete_app(Actor::System, &app.id, false).await;
    assert!(matches!(r, Err(Error::AppHasKeys)), "got {r:?}");
    verify(&f.kw, &a).await.expect("nothing deleted");
    let before =
        f.kw.events(Actor::System, &f.account.id, None, 100, None)
            .await
            .expect("events")
            .items
            .len();
    let d =
        f.kw.delete_app(Actor::System, &app.id, true)
            .await
            .expect("cascade");
    assert_eq!(d.deleted_keys.len(), 2);
    assert!(verify(&f.kw, &a).await.is_err());
    assert!(verify(&f.kw, &b).await.is_err());
    let events =
        f.kw.events(Actor::System, &f.account.id, None, 100, None)
            .await
            .expect("events")
            .items;
    assert_eq!(
        events.len(),
        before + 3,
        "one event per key and one for the app"
    );
    assert_eq!(events[0].action, AuditAction::AppDeleted);
    let r = f.kw.get_app(Actor::System, &app.id).await;
    assert!(matches!(r, Err(Error::NotFound(_))), "got {r:?}");
}

#[tokio::test]
async fn a_key_moves_between_applications_of_its_account_within_the_bounds() {
    let f = fixture().await;
    let from =
        f.kw.create_app(Actor::System, &f.account.id, NewApp::new("From"))
            .await
            .expect("app");
    let to =
        f.kw.create_app(Actor::System, &f.account.id, NewApp::new("To"))
            .await
            .expect("app");
    let k = key_in(&f, &from, "mover", &["readApplications"]).await;
    let admin = verify(&f.kw, &f.admin).await.expect("admin");
    let moved =
        f.kw.update_key(
            Actor::Principal(&admin),
            &k.key.id,
            keyward::KeyUpdate::new().app(Some(to.id)),
        )
        .await
        .expect("move");
    assert_eq!(moved.key.app_id, Some(to.id));
    assert!(
        moved.effective_by.is_none(),
        "an active application stops nothing"
    );
    let listed =
        f.kw.list_keys(Actor::System, &f.account.id, ListKeys::new().app(to.id))
            .await
            .expect("list");
    assert_eq!(listed.items.len(), 1);
    assert_eq!(
        f.kw.get_app(Actor::System, &from.id)
            .await
            .expect("app")
            .active_keys,
        0
    );
    // Not to another account's application.
    let other =
        f.kw.create_account(
            Actor::System,
            keyward::NewAccount::new("Other", perms(common::ALL)),
        )
        .await
        .expect("account");
    let foreign =
        f.kw.create_app(Actor::System, &other.id, NewApp::new("Theirs"))
            .await
            .expect("app");
    let r =
        f.kw.update_key(
            Actor::Principal(&admin),
            &k.key.id,
            keyward::KeyUpdate::new().app(Some(foreign.id)),
        )
        .await;
    assert!(
        matches!(r, Err(Error::NotFound("application"))),
        "got {r:?}"
    );
    // Not by a principal lacking one of the key's permissions.
    let narrow =
        f.kw.issue_key(
            Actor::System,
            &f.account.id,
            NewKey::new("narrow").permissions(perms(&["writeApiKeys"])),
        )
        .await
        .expect("issued");
    let narrow = verify(&f.kw, &narrow).await.expect("narrow");
    let r =
        f.kw.update_key(
            Actor::Principal(&narrow),
            &k.key.id,
            keyward::KeyUpdate::new().app(Some(from.id)),
        )
        .await;
    assert!(
        matches!(r, Err(Error::PermissionNotHeld { .. })),
        "got {r:?}"
    );
    // Into an inactive application: the key stops (effective_by); out of
    // any application, it works again.
    f.kw.update_app(
        Actor::System,
        &from.id,
        AppUpdate::new().status(AppStatus::Inactive),
    )
    .await
    .expect("off");
    let into =
        f.kw.update_key(
            Actor::Principal(&admin),
            &k.key.id,
            keyward::KeyUpdate::new().app(Some(from.id)),
        )
        .await
        .expect("move in");
    assert!(into.effective_by.is_some());
    assert!(matches!(verify(&f.kw, &k).await, Err(Error::KeyInactive)));
    f.kw.update_key(
        Actor::Principal(&admin),
        &k.key.id,
        keyward::KeyUpdate::new().app(None),
    )
    .await
    .expect("move out");
    verify(&f.kw, &k)
        .await
        .expect("works outside any application");
    let events =
        f.kw.events(Actor::System, &f.account.id, Some(&k.key.id), 10, None)
            .await
            .expect("events")
            .items;
    assert_eq!(events[0].action, AuditAction::KeyUpdated);
}
