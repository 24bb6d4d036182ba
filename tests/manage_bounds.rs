//! No actor gains or removes power it does not hold (issue 10): the manage
//! bound, restrictions, protected keys, people as actors, and the audit
//! record of who acted. Through the library; tests/http_api.rs checks the
//! same on both HTTP adapters.

mod common;

use common::{ALL, Fixture, fixture, perms};
use keyward::{
    AccountId, Actor, ActorKind, AuditAction, Error, IssuedKey, KeyStatus, KeyUpdate, NewKey,
    PermissionSet, Principal, User, VerifyContext,
};
use proptest::prelude::*;
use time::Duration;

fn ctx() -> VerifyContext<'static> {
    VerifyContext::new()
}

async fn issue(f: &Fixture, new: NewKey) -> IssuedKey {
    f.kw.issue_key(Actor::System, &f.account.id, new)
        .await
        .expect("issued")
}

async fn principal(f: &Fixture, k: &IssuedKey, c: VerifyContext<'_>) -> Principal {
    f.kw.verify(k.key.id.as_str(), k.secret.expose(), c)
        .await
        .expect("verifies")
}

async fn event_count(f: &Fixture) -> usize {
    f.kw.events(Actor::System, &f.account.id, None, 100, None)
        .await
        .expect("events")
        .items
        .len()
}

fn not_held(e: &Error, missing: &[&str]) -> bool {
    matches!(e, Error::PermissionNotHeld { permissions } if *permissions == perms(missing))
}

/// Failure 1: a `writeApiKeys`-only key rotated the protected admin key (and
/// any stronger key) and got its secret.
#[tokio::test]
async fn a_weaker_key_cannot_rotate_a_stronger_one() {
    let f = fixture().await;
    let writer = issue(&f, NewKey::new("w").permissions(perms(&["writeApiKeys"]))).await;
    let strong = issue(&f, NewKey::new("strong").permissions(perms(ALL))).await;
    let w = principal(&f, &writer, ctx()).await;
    let events = event_count(&f).await;
    for target in [&f.admin, &strong] {
        let e =
            f.kw.rotate_key(
                Actor::Principal(&w),
                &target.key.id,
                Some(Duration::days(7)),
            )
            .await
            .expect_err("takeover");
        assert!(
            not_held(&e, &["readApplications", "writeApplications"]),
            "{e:?}"
        );
        assert_eq!(
            e.to_string(),
            "the key has permissions the actor does not hold: readApplications, writeApplications"
        );
        // The owner's secret still works: nothing changed, nothing logged.
        principal(&f, target, ctx()).await;
    }
    assert_eq!(event_count(&f).await, events);
    // A key it holds every permission of: allowed.
    let peer = issue(&f, NewKey::new("peer").permissions(perms(&["readApiKeys"]))).await;
    f.kw.rotate_key(Actor::Principal(&w), &peer.key.id, None)
        .await
        .expect("within the bound");
}

/// Failure 2: the same key deactivated, narrowed or fenced off the admin.
#[tokio::test]
async fn a_weaker_key_cannot_disarm_a_stronger_one() {
    let f = fixture().await;
    let writer = issue(
        &f,
        NewKey::new("w").permissions(perms(&["readApiKeys", "writeApiKeys"])),
    )
    .await;
    let strong = issue(&f, NewKey::new("strong").permissions(perms(ALL))).await;
    let w = principal(&f, &writer, ctx()).await;
    let by = Actor::Principal(&w);
    let events = event_count(&f).await;
    for target in [&f.admin, &strong] {
        let id = &target.key.id;
        let missing = ["readApplications", "writeApplications"];
        let e = f.kw.deactivate_key(by, id).await.expect_err("deactivate");
        assert!(not_held(&e, &missing), "{e:?}");
        let e =
            f.kw.update_key(
                by,
                id,
                KeyUpdate::new().permissions(perms(&["readApiKeys"])),
            )
            .await
            .expect_err("narrow");
        assert!(not_held(&e, &missing), "{e:?}");
        let fence = KeyUpdate::new().allowed_cidrs(vec!["203.0.113.0/24".parse().expect("net")]);
        let e = f.kw.update_key(by, id, fence).await.expect_err("fence");
        assert!(not_held(&e, &missing), "{e:?}");
        let e = f.kw.delete_key(by, id).await.expect_err("delete");
        assert!(not_held(&e, &missing), "{e:?}");
        let e =
            f.kw.update_key(by, id, KeyUpdate::new().name("pwned"))
                .await
                .expect_err("rename");
        assert!(not_held(&e, &missing), "{e:?}");
        let k = f.kw.get_key(Actor::System, id).await.expect("still there");
        assert_eq!(k.status, KeyStatus::Active);
        assert_eq!(k.permissions, perms(ALL));
        assert!(k.allowed_cidrs.is_empty());
    }
    assert_eq!(event_count(&f).await, events);
}

/// Protected keys change only through `Actor::System`, whoever asks.
#[tokio::test]
async fn protected_keys_change_only_through_the_system() {
    let f = fixture().await;
    let admin = principal(&f, &f.admin, ctx()).await;
    let other = issue(&f, NewKey::new("other admin").permissions(perms(ALL))).await;
    let other = principal(&f, &other, ctx()).await;
    let id = &f.admin.key.id;
    for p in [&admin, &other] {
        let by = Actor::Principal(p);
        let e = f.kw.rotate_key(by, id, None).await.expect_err("rotate");
        assert!(matches!(e, Error::Protected), "{e:?}");
        let e =
            f.kw.update_key(by, id, KeyUpdate::new().name("x"))
                .await
                .expect_err("update");
        assert!(matches!(e, Error::Protected), "{e:?}");
        let e = f.kw.deactivate_key(by, id).await.expect_err("deactivate");
        assert!(matches!(e, Error::Protected), "{e:?}");
        let e = f.kw.delete_key(by, id).await.expect_err("delete");
        assert!(matches!(e, Error::Protected), "{e:?}");
    }
    assert_eq!(
        Error::Protected.to_string(),
        "the key is protected: only the application itself may change or delete it"
    );
    // The application itself may.
    f.kw.update_key(Actor::System, id, KeyUpdate::new().name("bootstrap"))
        .await
        .expect("system renames");
    f.kw.rotate_key(Actor::System, id, None)
        .await
        .expect("system rotates");
    f.kw.delete_key(Actor::System, id)
        .await
        .expect("system deletes");
}

/// Failure 6: a restricted key shed its expiry and network limit, and
/// minted unrestricted keys.
#[tokio::test]
async fn restrictions_cannot_be_shed() {
    let f = fixture().await;
    let expiry = f.kw.now() + Duration::days(1);
    let local: ipnet::IpNet = "127.0.0.1/32".parse().expect("net");
    let restricted = issue(
        &f,
        NewKey::new("restricted")
            .permissions(perms(&["readApiKeys", "writeApiKeys", "readApplications"]))
            .expires_at(expiry)
            .allowed_cidrs(vec![local]),
    )
    .await;
    let from_local = ctx().client_ip("127.0.0.1".parse().expect("ip"));
    let p = principal(&f, &restricted, from_local).await;
    let by = Actor::Principal(&p);
    let own = &restricted.key.id;
    let field = |e: &Error| match e {
        Error::RestrictionNotHeld { field, .. } => Some(*field),
        _ => None,
    };
    // Loosening itself.
    let e =
        f.kw.update_key(by, own, KeyUpdate::new().expires_at(None))
            .await
            .expect_err("clear expiry");
    assert_eq!(field(&e), Some("expires_at"), "{e:?}");
    let e =
        f.kw.update_key(
            by,
            own,
            KeyUpdate::new().expires_at(Some(expiry + Duration::days(30))),
        )
        .await
        .expect_err("later expiry");
    assert_eq!(field(&e), Some("expires_at"), "{e:?}");
    let e =
        f.kw.update_key(by, own, KeyUpdate::new().allowed_cidrs(vec![]))
            .await
            .expect_err("any network");
    assert_eq!(field(&e), Some("allowed_cidrs"), "{e:?}");
    let k = f.kw.get_key(Actor::System, own).await.expect("key");
    assert_eq!(k.expires_at, Some(expiry));
    assert_eq!(k.allowed_cidrs, vec![local]);
    // Tightening is fine.
    f.kw.update_key(
        by,
        own,
        KeyUpdate::new().expires_at(Some(expiry - Duration::hours(1))),
    )
    .await
    .expect("earlier expiry");
    let expiry = expiry - Duration::hours(1);
    // Minting: no expiry, a later one, other networks, any network.
    let minted = |n: &str| NewKey::new(n).permissions(perms(&["readApplications"]));
    for (new, what) in [
        (minted("a").allowed_cidrs(vec![local]), "expires_at"),
        (
            minted("b")
                .expires_at(expiry + Duration::seconds(1))
                .allowed_cidrs(vec![local]),
            "expires_at",
        ),
        (minted("c").expires_at(expiry), "allowed_cidrs"),
        (
            minted("d")
                .expires_at(expiry)
                .allowed_cidrs(vec!["10.0.0.0/8".parse().expect("net")]),
            "allowed_cidrs",
        ),
    ] {
        let e =
            f.kw.issue_key(by, &f.account.id, new)
                .await
                .expect_err("unrestricted mint");
        assert_eq!(field(&e), Some(what), "{e:?}");
    }
    f.kw.issue_key(
        by,
        &f.account.id,
        minted("ok")
            .expires_at(expiry - Duration::minutes(1))
            .allowed_cidrs(vec![local]),
    )
    .await
    .expect("as restricted as the actor");
    // Rotating an unrestricted key would hand the actor its secret.
    let free = issue(&f, minted("free")).await;
    let e =
        f.kw.rotate_key(by, &free.key.id, None)
            .await
            .expect_err("rotate unrestricted");
    assert_eq!(field(&e), Some("expires_at"), "{e:?}");
    // Deactivating a weaker key is no gain: allowed.
    f.kw.deactivate_key(by, &free.key.id)
        .await
        .expect("deactivate");
}

/// A key bound to browser origins cannot shed them, mint a key any
/// origin may use, or rotate one: origins bound like networks.
#[tokio::test]
async fn origin_restrictions_cannot_be_shed() {
    let f = fixture().await;
    let origins = vec!["https://*.example.com".to_owned()];
    let restricted = issue(
        &f,
        NewKey::new("browser admin")
            .permissions(perms(&["readApiKeys", "writeApiKeys", "readApplications"]))
            .allowed_origins(origins.clone()),
    )
    .await;
    let p = principal(
        &f,
        &restricted,
        ctx().browser_origin("https://app.example.com"),
    )
    .await;
    let by = Actor::Principal(&p);
    let field = |e: &Error| match e {
        Error::RestrictionNotHeld { field, .. } => Some(*field),
        _ => None,
    };
    let e =
        f.kw.update_key(
            by,
            &restricted.key.id,
            KeyUpdate::new().allowed_origins(vec![]),
        )
        .await
        .expect_err("any origin");
    assert_eq!(field(&e), Some("allowed_origins"), "{e:?}");
    let minted = |n: &str| NewKey::new(n).permissions(perms(&["readApplications"]));
    for wanted in [
        vec![],
        vec!["https://other.org".to_owned()],
        vec!["https://*.com".to_owned()],
        vec!["http://app.example.com".to_owned()],
    ] {
        let e =
            f.kw.issue_key(
                by,
                &f.account.id,
                minted("wide").allowed_origins(wanted.clone()),
            )
            .await
            .expect_err("wider mint");
        assert!(
            matches!(field(&e), Some("allowed_origins")) || matches!(e, Error::InvalidInput { .. }),
            "{wanted:?}: {e:?}"
        );
    }
    for within in [
        vec!["https://app.example.com".to_owned()],
        vec!["https://*.eu.example.com".to_owned()],
        origins.clone(),
    ] {
        f.kw.issue_key(
            by,
            &f.account.id,
            minted("narrow").allowed_origins(within.clone()),
        )
        .await
        .unwrap_or_else(|e| panic!("{within:?} lies within: {e:?}"));
    }
    let free = issue(&f, minted("free")).await;
    let e =
        f.kw.rotate_key(by, &free.key.id, None)
            .await
            .expect_err("rotate a key any origin may use");
    assert_eq!(field(&e), Some("allowed_origins"), "{e:?}");
    let k =
        f.kw.get_key(Actor::System, &restricted.key.id)
            .await
            .expect("key");
    assert_eq!(k.allowed_origins, origins);
}

/// A session acts with its key's expiry, not the session's own.
#[tokio::test]
async fn a_session_is_bounded_by_its_keys_expiry() {
    let f = fixture().await;
    let expiry = f.kw.now() + Duration::days(1);
    let k = issue(
        &f,
        NewKey::new("k")
            .permissions(perms(&["writeApiKeys", "readApplications"]))
            .expires_at(expiry),
    )
    .await;
    let login =
        f.kw.login(k.key.id.as_str(), k.secret.expose(), ctx())
            .await
            .expect("login");
    assert!(login.expires_at() < expiry);
    let s =
        f.kw.verify_bearer(login.token.expose(), ctx())
            .await
            .expect("session");
    let by = Actor::Principal(&s);
    // Past the session's end but before the key's: allowed.
    f.kw.issue_key(
        by,
        &f.account.id,
        NewKey::new("n")
            .permissions(perms(&["readApplications"]))
            .expires_at(login.expires_at() + Duration::hours(2)),
    )
    .await
    .expect("within the key's expiry");
    let e =
        f.kw.issue_key(
            by,
            &f.account.id,
            NewKey::new("m").expires_at(expiry + Duration::hours(1)),
        )
        .await
        .expect_err("beyond the key's expiry");
    assert!(
        matches!(
            e,
            Error::RestrictionNotHeld {
                field: "expires_at",
                ..
            }
        ),
        "{e:?}"
    );
    // The audit log names the session.
    let page =
        f.kw.events(Actor::System, &f.account.id, None, 1, None)
            .await
            .expect("events");
    assert_eq!(page.items[0].actor.kind, ActorKind::Session);
    assert_eq!(page.items[0].actor.session_id, Some(login.session.id));
}

fn user(id: &str, name: &str, account: AccountId, p: &[&str]) -> User {
    User::new(id, name, account, perms(p)).expect("user")
}

/// People are actors: bounded like a key, recorded in every audit event.
#[tokio::test]
async fn people_act_with_the_same_bounds_and_are_audited() {
    let f = fixture().await;
    let admin = user(
        "u-1",
        "Ada Admin",
        f.account.id,
        &["readApiKeys", "writeApiKeys", "readApplications"],
    )
    .with_client_ip(Some("192.0.2.9".parse().expect("ip")));
    let staff = user("u-2", "Sam Staff", f.account.id, &["readApiKeys"]);
    let by = Actor::User(&admin);
    let k =
        f.kw.issue_key(
            by,
            &f.account.id,
            NewKey::new("ci").permissions(perms(&["readApplications"])),
        )
        .await
        .expect("admin issues");
    f.kw.update_key(by, &k.key.id, KeyUpdate::new().name("ci-2"))
        .await
        .expect("renames");
    f.kw.deactivate_key(by, &k.key.id).await.expect("off");
    f.kw.activate_key(by, &k.key.id).await.expect("on");
    f.kw.rotate_key(by, &k.key.id, None).await.expect("rotates");
    f.kw.delete_key(by, &k.key.id).await.expect("deletes");
    let page =
        f.kw.events(
            Actor::User(&staff),
            &f.account.id,
            Some(&k.key.id),
            100,
            None,
        )
        .await
        .expect("staff reads");
    assert_eq!(page.items.len(), 6);
    for e in &page.items {
        assert_eq!(e.actor.kind, ActorKind::User, "{e:?}");
        assert_eq!(e.actor.user_id.as_deref(), Some("u-1"));
        assert_eq!(e.actor.user_name.as_deref(), Some("Ada Admin"));
        assert_eq!(e.actor.account_id, Some(f.account.id));
        assert_eq!(e.actor.key_id, None);
        assert_eq!(e.client_ip, Some("192.0.2.9".parse().expect("ip")));
    }
    // Staff reads but does not write.
    f.kw.list_keys(Actor::User(&staff), &f.account.id, keyward::ListKeys::new())
        .await
        .expect("staff lists");
    let e =
        f.kw.issue_key(Actor::User(&staff), &f.account.id, NewKey::new("x"))
            .await
            .expect_err("staff issues");
    assert!(matches!(e, Error::Forbidden { .. }), "{e:?}");
    // The admin is bounded by what the host grants: not the full admin key,
    // nor a key with writeApplications, nor a grant of it.
    let e =
        f.kw.rotate_key(by, &f.admin.key.id, None)
            .await
            .expect_err("stronger key");
    assert!(not_held(&e, &["writeApplications"]), "{e:?}");
    let e =
        f.kw.issue_key(
            by,
            &f.account.id,
            NewKey::new("x").permissions(perms(&["writeApplications"])),
        )
        .await
        .expect_err("grant beyond");
    assert!(matches!(e, Error::NotGrantable { .. }), "{e:?}");
    // Only their own account.
    let other =
        f.kw.create_account(Actor::System, keyward::NewAccount::new("Other", perms(ALL)))
            .await
            .expect("account");
    let foreign =
        f.kw.issue_key(Actor::System, &other.id, NewKey::new("f"))
            .await
            .expect("issued");
    let e =
        f.kw.get_key(by, &foreign.key.id)
            .await
            .expect_err("foreign");
    assert!(matches!(e, Error::NotFound("key")), "{e:?}");
}

/// The system's events say "system" rather than nulls.
#[tokio::test]
async fn system_events_name_the_system() {
    let f = fixture().await;
    let page =
        f.kw.events(Actor::System, &f.account.id, None, 100, None)
            .await
            .expect("events");
    assert!(!page.items.is_empty());
    for e in &page.items {
        assert_eq!(e.actor.kind, ActorKind::System);
        let json = serde_json::to_value(&e.actor).expect("json");
        assert_eq!(json["kind"], "system");
    }
}

/// People's ids and names end up in the audit log: no controls, no format
/// characters, not empty.
#[test]
fn user_ids_and_names_are_validated() {
    let acme = AccountId::new("acme").expect("id");
    for (id, name) in [
        ("", "Ada"),
        ("u-1", " "),
        ("u-1", "Ada\u{202E}nimda"),
        ("u\u{200B}1", "Ada"),
        ("u-1", "Ada\nAdmin"),
        ("u-1", "\u{FEFF}Ada"),
    ] {
        assert!(
            User::new(id, name, acme, PermissionSet::new()).is_err(),
            "{id:?} {name:?}"
        );
    }
    assert!(User::new("u-1", "Zoë O'Neil", acme, PermissionSet::new()).is_ok());
}

/// Failure 9: names with format characters (bidi, zero-width, BOM) or
/// controls are refused, on issue and on update, and change nothing.
#[tokio::test]
async fn names_with_format_or_control_characters_are_refused() {
    let f = fixture().await;
    let k = issue(&f, NewKey::new("plain")).await;
    for bad in [
        "admin\u{202E}txt.exe",
        "ad\u{200B}min",
        "\u{FEFF}admin",
        "ad\u{2066}min",
        "zero\u{200D}joiner",
        "bell\u{7}",
    ] {
        let e =
            f.kw.issue_key(Actor::System, &f.account.id, NewKey::new(bad))
                .await
                .expect_err("issue");
        assert!(
            matches!(e, Error::InvalidInput { field: "name", .. }),
            "{bad:?}: {e:?}"
        );
        let e =
            f.kw.update_key(Actor::System, &k.key.id, KeyUpdate::new().name(bad))
                .await
                .expect_err("update");
        assert!(
            matches!(e, Error::InvalidInput { field: "name", .. }),
            "{bad:?}: {e:?}"
        );
    }
    let e =
        f.kw.issue_key(
            Actor::System,
            &f.account.id,
            NewKey::new("ok").description("see \u{202E}here"),
        )
        .await
        .expect_err("bidi in a description");
    assert!(matches!(
        e,
        Error::InvalidInput {
            field: "description",
            ..
        }
    ));
    assert_eq!(
        f.kw.get_key(Actor::System, &k.key.id)
            .await
            .expect("key")
            .name,
        "plain"
    );
    f.kw.issue_key(Actor::System, &f.account.id, NewKey::new("Zoë's CI 🚀"))
        .await
        .expect("ordinary Unicode is fine");
}

/// Failure 9: the events of a foreign or unknown key are not found, like
/// the key; a deleted key's remain readable.
#[tokio::test]
async fn events_of_foreign_or_unknown_keys_are_not_found() {
    let f = fixture().await;
    let admin = principal(&f, &f.admin, ctx()).await;
    let by = Actor::Principal(&admin);
    let other =
        f.kw.create_account(Actor::System, keyward::NewAccount::new("Other", perms(ALL)))
            .await
            .expect("account");
    let foreign =
        f.kw.issue_key(Actor::System, &other.id, NewKey::new("f"))
            .await
            .expect("issued");
    let unknown = keyward::KeyId::new("kw_00000000000000000").expect("id");
    for id in [&foreign.key.id, &unknown] {
        let e =
            f.kw.events(by, &f.account.id, Some(id), 10, None)
                .await
                .expect_err("not found");
        assert!(matches!(e, Error::NotFound("key")), "{e:?}");
    }
    let gone = issue(&f, NewKey::new("gone")).await;
    f.kw.delete_key(by, &gone.key.id).await.expect("deleted");
    let page =
        f.kw.events(by, &f.account.id, Some(&gone.key.id), 10, None)
            .await
            .expect("a deleted key's events");
    assert_eq!(page.items[0].action, AuditAction::KeyDeleted);
}

/// Failure 9: `expires_at` is answered with the precision that is stored.
#[tokio::test]
async fn expiry_is_answered_as_stored() {
    let f = fixture().await;
    let at = (f.kw.now() + Duration::days(3))
        .replace_nanosecond(123_456_789)
        .expect("time");
    let k = issue(&f, NewKey::new("k").expires_at(at)).await;
    let micros = at.replace_nanosecond(123_456_000).expect("time");
    assert_eq!(k.key.expires_at, Some(micros));
    let read = f.kw.get_key(Actor::System, &k.key.id).await.expect("key");
    assert_eq!(read.expires_at, Some(micros));
    let u =
        f.kw.update_key(
            Actor::System,
            &k.key.id,
            KeyUpdate::new().expires_at(Some(at + Duration::nanoseconds(1))),
        )
        .await
        .expect("updated");
    assert_eq!(u.key.expires_at, Some(micros));
}

// ------------------------------------------------------------- property

fn subset(bits: u8) -> Vec<&'static str> {
    ALL.iter()
        .enumerate()
        .filter(|(i, _)| bits & (1 << i) != 0)
        .map(|(_, n)| *n)
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// For random actor and target permission sets, every management
    /// operation is allowed exactly when the target's set is within the
    /// actor's (`writeApiKeys` implying `readApiKeys`), through a key and
    /// through a person alike.
    #[test]
    fn management_is_allowed_exactly_within_the_actors_permissions(
        actor_bits in 0u8..16,
        target_bits in 0u8..16,
        op in 0u8..4,
        as_user in any::<bool>(),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("rt");
        let (outcome, expected) = rt.block_on(async {
            let f = fixture().await;
            let mut actor_perms = subset(actor_bits);
            actor_perms.push("writeApiKeys");
            let actor_perms = perms(&actor_perms);
            let target_perms = perms(&subset(target_bits));
            let target = issue(&f, NewKey::new("target").permissions(target_perms.clone())).await;
            let key = issue(&f, NewKey::new("actor").permissions(actor_perms.clone())).await;
            let p = principal(&f, &key, ctx()).await;
            let u = User::new("u", "U", f.account.id, actor_perms.clone()).expect("user");
            let by = if as_user { Actor::User(&u) } else { Actor::Principal(&p) };
            let id = &target.key.id;
            let r = match op {
                0 => f.kw.rotate_key(by, id, None).await.map(|_| ()),
                1 => f.kw.update_key(by, id, KeyUpdate::new().name("n")).await.map(|_| ()),
                2 => f.kw.deactivate_key(by, id).await.map(|_| ()),
                _ => f.kw.delete_key(by, id).await.map(|_| ()),
            };
            let mut closure = actor_perms.clone();
            closure.insert(keyward::Permission::read_api_keys());
            (r, target_perms.is_subset(&closure).then_some(()).ok_or_else(|| target_perms.difference(&closure)))
        });
        match (outcome, expected) {
            (Ok(()), Ok(())) => {}
            (Err(Error::PermissionNotHeld { permissions }), Err(missing)) => {
                prop_assert_eq!(permissions, missing);
            }
            (got, want) => prop_assert!(false, "got {:?}, want {:?}", got, want),
        }
    }
}
