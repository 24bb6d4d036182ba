//! Customer accounts through the library: children of the acting account,
//! managed with readAccounts / writeAccounts within the actor's own
//! permissions; narrowing and switching off reach every key of the account
//! (here at once, elsewhere within W); inherited key permissions.

mod common;

use common::{fixture, perms, service};
use keyward::{
    AccountStatus, AccountUpdate, Actor, AuditAction, Error, ListAccounts, NewAccount, NewKey,
    Principal, VerifyContext,
};

fn ctx() -> VerifyContext<'static> {
    VerifyContext::new()
}

const MANAGER: &[&str] = &[
    "readApiKeys",
    "writeApiKeys",
    "readAccounts",
    "writeAccounts",
    "readApplications",
    "writeApplications",
];

/// A fixture whose account may grant the account permissions, and a
/// principal holding all of them.
async fn manager() -> (common::Fixture, Principal) {
    let f = fixture().await;
    let home =
        f.kw.create_account(Actor::System, NewAccount::new("Vendor", perms(MANAGER)))
            .await
            .expect("account");
    let key =
        f.kw.issue_key(
            Actor::System,
            &home.id,
            NewKey::new("manager").permissions(perms(MANAGER)),
        )
        .await
        .expect("key");
    let p =
        f.kw.verify(key.key.id.as_str(), key.secret.expose(), ctx())
            .await
            .expect("verify");
    (f, p)
}

#[tokio::test]
async fn children_are_created_and_listed_within_the_actors_bounds() {
    let (f, p) = manager().await;
    let home = *p.account_id();
    let child =
        f.kw.create_account(
            Actor::Principal(&p),
            NewAccount::new("Globex", perms(&["readApplications"])).parent(home),
        )
        .await
        .expect("child");
    assert_eq!(child.parent, Some(home));
    assert_eq!(child.status, AccountStatus::Active);
    // Only children of the acting account.
    let r =
        f.kw.create_account(Actor::Principal(&p), NewAccount::new("Loose", perms(&[])))
            .await;
    assert!(matches!(r, Err(Error::AccountNotAllowed)), "got {r:?}");
    let r =
        f.kw.create_account(
            Actor::Principal(&p),
            NewAccount::new("Nested", perms(&[])).parent(child.id),
        )
        .await;
    assert!(matches!(r, Err(Error::AccountNotAllowed)), "got {r:?}");
    // Within the parent's permissions (and so the actor's).
    let r =
        f.kw.create_account(
            Actor::Principal(&p),
            NewAccount::new("Big", perms(&["launchRockets"])).parent(home),
        )
        .await;
    assert!(matches!(r, Err(Error::NotGrantable { .. })), "got {r:?}");
    // writeAccounts is needed.
    let weak =
        f.kw.issue_key(
            Actor::System,
            &home,
            NewKey::new("weak").permissions(perms(&["readAccounts", "writeApiKeys"])),
        )
        .await
        .expect("key");
    let weak =
        f.kw.verify(weak.key.id.as_str(), weak.secret.expose(), ctx())
            .await
            .expect("verify");
    let r =
        f.kw.create_account(
            Actor::Principal(&weak),
            NewAccount::new("x", perms(&[])).parent(home),
        )
        .await;
    assert!(matches!(r, Err(Error::Forbidden { .. })), "got {r:?}");
    // Listing: the acting account's children, with a name filter.
    f.clock.advance(time::Duration::seconds(1));
    f.kw.create_account(
        Actor::Principal(&p),
        NewAccount::new("Initech", perms(&[])).parent(home),
    )
    .await
    .expect("child");
    let page =
        f.kw.list_accounts(Actor::Principal(&weak), &home, ListAccounts::new())
            .await
            .expect("readAccounts lists");
    let names: Vec<_> = page.items.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["Globex", "Initech"]);
    let page =
        f.kw.list_accounts(Actor::Principal(&p), &home, ListAccounts::new().q("glob"))
            .await
            .expect("list");
    assert_eq!(page.items.len(), 1);
    let r =
        f.kw.list_accounts(Actor::Principal(&p), &f.account.id, ListAccounts::new())
            .await;
    assert!(matches!(r, Err(Error::NotFound(_))), "got {r:?}");
    let got =
        f.kw.get_account(Actor::Principal(&p), &child.id)
            .await
            .expect("a child is visible");
    assert_eq!(got, child);
    let r = f.kw.get_account(Actor::Principal(&p), &f.account.id).await;
    assert!(matches!(r, Err(Error::NotFound(_))), "got {r:?}");
}

#[tokio::test]
async fn narrowing_and_switching_a_child_off_reach_its_keys_here_and_within_w() {
    let (f, p) = manager().await;
    let b = service(&f.store, &f.clock);
    let home = *p.account_id();
    let child =
        f.kw.create_account(
            Actor::Principal(&p),
            NewAccount::new("Globex", perms(&["readApplications", "writeApplications"]))
                .parent(home),
        )
        .await
        .expect("child");
    // A parent's admin issues for the child (x-account-id) and the key
    // inherits what it may grant there.
    let acting = f.kw.act_for(&p, &child.id).await.expect("act for");
    assert!(acting.has(&keyward::Permission::write_api_keys()));
    let k =
        f.kw.issue_key(
            Actor::Principal(&acting),
            &child.id,
            NewKey::new("customer").inherit_permissions(),
        )
        .await
        .expect("issued");
    assert_eq!(
        k.key.permissions,
        perms(&["readApplications", "writeApplications"])
    );
    let session =
        f.kw.login(k.key.id.as_str(), k.secret.expose(), ctx())
            .await
            .expect("login");
    b.verify(k.key.id.as_str(), k.secret.expose(), ctx())
        .await
        .expect("B warm");
    // Narrow: the key loses the permission at once here, within W on B.
    let narrowed =
        f.kw.update_account(
            Actor::Principal(&p),
            &child.id,
            AccountUpdate::new().permissions(perms(&["readApplications"])),
        )
        .await
        .expect("narrow");
    assert!(narrowed.effective_by.is_some());
    let here =
        f.kw.verify(k.key.id.as_str(), k.secret.expose(), ctx())
            .await
            .expect("verify");
    assert_eq!(here.permissions(), &perms(&["readApplications"]));
    f.clock.advance(f.kw.propagation_window());
    let there = b
        .verify(k.key.id.as_str(), k.secret.expose(), ctx())
        .await
        .expect("verify on B");
    assert_eq!(there.permissions(), &perms(&["readApplications"]));
    // Off: key and session 401 at once, one audit event.
    let off =
        f.kw.update_account(
            Actor::Principal(&p),
            &child.id,
            AccountUpdate::new().status(AccountStatus::Inactive),
        )
        .await
        .expect("off");
    assert_eq!(off.account.status, AccountStatus::Inactive);
    assert_eq!(
        off.effective_by,
        Some(f.kw.now() + f.kw.propagation_window())
    );
    assert!(matches!(
        f.kw.verify(k.key.id.as_str(), k.secret.expose(), ctx())
            .await,
        Err(Error::KeyInactive)
    ));
    assert!(
        f.kw.verify_session(session.token.expose(), ctx())
            .await
            .is_err()
    );
    let events =
        f.kw.events(Actor::System, &child.id, None, 10, None)
            .await
            .expect("events")
            .items;
    assert_eq!(events[0].action, AuditAction::AccountDeactivated);
    // Acting for the inactive child is refused, saying why; the parent
    // still manages it (reads it, switches it back on) from its own account.
    let r = f.kw.act_for(&p, &child.id).await;
    assert!(matches!(r, Err(Error::AccountInactive)), "got {r:?}");
    f.clock.advance(f.kw.propagation_window());
    assert!(
        b.verify(k.key.id.as_str(), k.secret.expose(), ctx())
            .await
            .is_err(),
        "B accepted a key of an inactive account after W"
    );
    // Back on: the key works; the session stays ended.
    f.kw.update_account(
        Actor::Principal(&p),
        &child.id,
        AccountUpdate::new().status(AccountStatus::Active),
    )
    .await
    .expect("on");
    f.kw.act_for(&p, &child.id)
        .await
        .expect("acting for it works again");
    f.kw.verify(k.key.id.as_str(), k.secret.expose(), ctx())
        .await
        .expect("the key works again");
    assert!(
        f.kw.verify_session(session.token.expose(), ctx())
            .await
            .is_err()
    );
}

#[tokio::test]
async fn only_children_and_only_with_every_permission_they_have() {
    let (f, p) = manager().await;
    let home = *p.account_id();
    let child =
        f.kw.create_account(
            Actor::System,
            NewAccount::new("Strong", perms(&["readApplications", "writeApplications"]))
                .parent(home),
        )
        .await
        .expect("child");
    // An actor never changes its own account.
    let r =
        f.kw.update_account(
            Actor::Principal(&p),
            &home,
            AccountUpdate::new().permissions(perms(MANAGER)),
        )
        .await;
    assert!(matches!(r, Err(Error::NotFound(_))), "got {r:?}");
    let limited =
        f.kw.issue_key(
            Actor::System,
            &home,
            NewKey::new("limited").permissions(perms(&["writeAccounts", "readApplications"])),
        )
        .await
        .expect("key");
    let limited =
        f.kw.verify(limited.key.id.as_str(), limited.secret.expose(), ctx())
            .await
            .expect("verify");
    for u in [
        AccountUpdate::new().status(AccountStatus::Inactive),
        AccountUpdate::new().permissions(perms(&["readApplications"])),
    ] {
        let r =
            f.kw.update_account(Actor::Principal(&limited), &child.id, u)
                .await;
        assert!(
            matches!(r, Err(Error::PermissionNotHeld { .. })),
            "got {r:?}"
        );
    }
    f.kw.update_account(
        Actor::Principal(&limited),
        &child.id,
        AccountUpdate::new().name("Renamed"),
    )
    .await
    .expect("a rename needs no permission of the account");
    // writeAccounts implies readAccounts: who manages accounts sees them.
    let seen =
        f.kw.get_account(Actor::Principal(&limited), &child.id)
            .await
            .expect("writeAccounts reads the account");
    assert_eq!(seen.name, "Renamed");
    let r =
        f.kw.update_account(
            Actor::Principal(&p),
            &child.id,
            AccountUpdate::new().permissions(perms(&["launchRockets"])),
        )
        .await;
    assert!(matches!(r, Err(Error::NotGrantable { .. })), "got {r:?}");
    let got =
        f.kw.get_account(Actor::System, &child.id)
            .await
            .expect("get");
    assert_eq!(
        got.permissions,
        perms(&["readApplications", "writeApplications"])
    );
    assert_eq!(got.name, "Renamed");
}

#[tokio::test]
async fn inherited_permissions_are_what_the_actor_may_grant() {
    let (f, p) = manager().await;
    let home = *p.account_id();
    let partial =
        f.kw.issue_key(
            Actor::System,
            &home,
            NewKey::new("partial").permissions(perms(&["writeApiKeys", "readApplications"])),
        )
        .await
        .expect("key");
    let partial =
        f.kw.verify(partial.key.id.as_str(), partial.secret.expose(), ctx())
            .await
            .expect("verify");
    let k =
        f.kw.issue_key(
            Actor::Principal(&partial),
            &home,
            NewKey::new("inherits").inherit_permissions(),
        )
        .await
        .expect("issued");
    // writeApiKeys implies readApiKeys; nothing the actor lacks.
    assert_eq!(
        k.key.permissions,
        perms(&["readApiKeys", "writeApiKeys", "readApplications"])
    );
    let explicit =
        f.kw.issue_key(Actor::Principal(&partial), &home, NewKey::new("none"))
            .await
            .expect("issued");
    assert!(
        explicit.key.permissions.is_empty(),
        "[] stays an explicit empty set"
    );
    let sys =
        f.kw.issue_key(
            Actor::System,
            &home,
            NewKey::new("all").inherit_permissions(),
        )
        .await
        .expect("issued");
    assert_eq!(sys.key.permissions, perms(MANAGER));
}
