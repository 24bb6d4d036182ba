//! Key lifecycle through the service: issue, verify, update, deactivate,
//! rotate, delete, and the errors a user relies on.

mod common;

use common::{fixture, perms};
use keyward::{Actor, Error, GrantLimit, KeyStatus, KeyUpdate, ListKeys, NewKey, VerifyContext};
use time::Duration;

fn ctx() -> VerifyContext<'static> {
    VerifyContext::new()
}

#[tokio::test]
async fn issue_then_verify_gives_key_and_account_permissions() {
    let f = fixture().await;
    let issued =
        f.kw.issue_key(
            Actor::System,
            &f.account.id,
            NewKey::new("reader").permissions(perms(&["readApplications"])),
        )
        .await
        .expect("issued");
    assert!(issued.key.id.as_str().starts_with("kw_"));
    assert!(issued.secret.expose().starts_with("kw_sk_"));
    let p =
        f.kw.verify(issued.key.id.as_str(), issued.secret.expose(), ctx())
            .await
            .expect("verifies");
    assert_eq!(p.key_id(), &issued.key.id);
    assert_eq!(p.account_id(), &f.account.id);
    assert_eq!(p.permissions(), &perms(&["readApplications"]));
    assert!(p.require(&keyward::Permission::write_api_keys()).is_err());
}

#[tokio::test]
async fn unknown_key_and_wrong_secret_are_the_same_error() {
    let f = fixture().await;
    let other =
        f.kw.issue_key(Actor::System, &f.account.id, NewKey::new("other"))
            .await
            .expect("issued");
    // Wrong secret (a valid secret of another key), cold and warm.
    for _ in 0..2 {
        let e =
            f.kw.verify(f.admin.key.id.as_str(), other.secret.expose(), ctx())
                .await
                .expect_err("wrong secret");
        assert!(matches!(e, Error::Unauthorized), "{e:?}");
    }
    // Unknown, well-formed key id.
    let unknown = "kw_00000000000000000";
    let e =
        f.kw.verify(unknown, other.secret.expose(), ctx())
            .await
            .expect_err("unknown");
    assert!(matches!(e, Error::Unauthorized), "{e:?}");
    // Malformed input is rejected before any lookup.
    f.store.set_unavailable(true);
    let e =
        f.kw.verify(unknown, "kw_sk_short", ctx())
            .await
            .expect_err("malformed");
    assert!(matches!(e, Error::Malformed(_)), "{e:?}");
}

#[tokio::test]
async fn deactivation_is_immediate_and_reported_only_with_the_right_secret() {
    let f = fixture().await;
    let k =
        f.kw.issue_key(Actor::System, &f.account.id, NewKey::new("k"))
            .await
            .expect("issued");
    let updated =
        f.kw.deactivate_key(Actor::System, &k.key.id)
            .await
            .expect("deactivated");
    assert_eq!(updated.key.status, KeyStatus::Inactive);
    assert_eq!(
        updated.effective_by,
        Some(f.kw.now() + f.kw.propagation_window())
    );
    let e =
        f.kw.verify(k.key.id.as_str(), k.secret.expose(), ctx())
            .await
            .expect_err("inactive");
    assert!(matches!(e, Error::KeyInactive), "{e:?}");
    let e =
        f.kw.verify(k.key.id.as_str(), f.admin.secret.expose(), ctx())
            .await
            .expect_err("wrong secret");
    assert!(matches!(e, Error::Unauthorized), "{e:?}");
    f.kw.activate_key(Actor::System, &k.key.id)
        .await
        .expect("reactivated");
    f.kw.verify(k.key.id.as_str(), k.secret.expose(), ctx())
        .await
        .expect("works again");
}

#[tokio::test]
async fn expiry_and_client_networks_apply() {
    let f = fixture().await;
    let k =
        f.kw.issue_key(
            Actor::System,
            &f.account.id,
            NewKey::new("k")
                .expires_at(f.kw.now() + Duration::minutes(5))
                .allowed_cidrs(vec!["10.0.0.0/8".parse().expect("cidr")]),
        )
        .await
        .expect("issued");
    let inside = ctx().client_ip("10.1.2.3".parse().expect("ip"));
    let outside = ctx().client_ip("192.0.2.1".parse().expect("ip"));
    f.kw.verify(k.key.id.as_str(), k.secret.expose(), inside)
        .await
        .expect("allowed network");
    let e =
        f.kw.verify(k.key.id.as_str(), k.secret.expose(), outside)
            .await
            .expect_err("other network");
    assert!(matches!(e, Error::ClientNotAllowed), "{e:?}");
    f.clock.advance(Duration::minutes(5));
    let e =
        f.kw.verify(k.key.id.as_str(), k.secret.expose(), inside)
            .await
            .expect_err("expired");
    assert!(matches!(e, Error::KeyExpired), "{e:?}");
}

/// A key's browser-origin and network allowlists still hold on an
/// instance that first verified it cold (by argon2): recording the verified
/// secret must not drop the allowlists with the hash it replaces.
#[tokio::test]
async fn allowlists_hold_after_a_cold_verification() {
    let f = fixture().await;
    let other = common::service(&f.store, &f.clock);
    for (name, allowed, refused) in [
        (
            "origins",
            ctx().browser_origin("https://app.example.com"),
            ctx().browser_origin("https://evil.example.net"),
        ),
        (
            "networks",
            ctx().client_ip("10.1.2.3".parse().expect("ip")),
            ctx().client_ip("192.0.2.1".parse().expect("ip")),
        ),
    ] {
        let new = NewKey::new(name);
        let new = if name == "origins" {
            new.allowed_origins(vec!["https://app.example.com".into()])
        } else {
            new.allowed_cidrs(vec!["10.0.0.0/8".parse().expect("cidr")])
        };
        let k =
            f.kw.issue_key(Actor::System, &f.account.id, new)
                .await
                .expect("issued");
        // Cold on `other`: argon2 accepts, then the tag is recorded.
        other
            .verify(k.key.id.as_str(), k.secret.expose(), allowed)
            .await
            .expect("allowed, cold");
        other
            .verify(k.key.id.as_str(), k.secret.expose(), allowed)
            .await
            .expect("allowed, warm");
        let e = other
            .verify(k.key.id.as_str(), k.secret.expose(), refused)
            .await
            .expect_err("refused, warm");
        assert!(matches!(e, Error::ClientNotAllowed), "{name}: {e:?}");
    }
}

#[tokio::test]
async fn rotation_with_and_without_grace() {
    let f = fixture().await;
    let k =
        f.kw.issue_key(Actor::System, &f.account.id, NewKey::new("k"))
            .await
            .expect("issued");
    let r =
        f.kw.rotate_key(Actor::System, &k.key.id, Some(Duration::minutes(10)))
            .await
            .expect("rotated");
    assert_ne!(r.secret, k.secret);
    assert_eq!(
        r.previous_secret_expires_at,
        Some(f.kw.now() + Duration::minutes(10))
    );
    for s in [&k.secret, &r.secret] {
        f.kw.verify(k.key.id.as_str(), s.expose(), ctx())
            .await
            .expect("both work during grace");
    }
    f.clock.advance(Duration::minutes(10));
    assert!(
        f.kw.verify(k.key.id.as_str(), k.secret.expose(), ctx())
            .await
            .is_err()
    );
    f.kw.verify(k.key.id.as_str(), r.secret.expose(), ctx())
        .await
        .expect("new secret works");
    let r2 =
        f.kw.rotate_key(Actor::System, &k.key.id, None)
            .await
            .expect("rotated");
    assert_eq!(r2.previous_secret_expires_at, None);
    assert!(
        f.kw.verify(k.key.id.as_str(), r.secret.expose(), ctx())
            .await
            .is_err()
    );
    let e =
        f.kw.rotate_key(Actor::System, &k.key.id, Some(Duration::days(8)))
            .await
            .expect_err("too long");
    assert!(matches!(
        e,
        Error::InvalidInput {
            field: "grace_period_seconds",
            ..
        }
    ));
}

#[tokio::test]
async fn delete_refuses_protected_and_removes_others_everywhere_here() {
    let f = fixture().await;
    let admin =
        f.kw.verify(f.admin.key.id.as_str(), f.admin.secret.expose(), ctx())
            .await
            .expect("admin");
    // Even a principal holding every permission (the protected key itself).
    let e =
        f.kw.delete_key(Actor::Principal(&admin), &f.admin.key.id)
            .await
            .expect_err("protected");
    assert!(matches!(e, Error::Protected), "{e:?}");
    let k =
        f.kw.issue_key(Actor::System, &f.account.id, NewKey::new("k"))
            .await
            .expect("issued");
    f.kw.verify(k.key.id.as_str(), k.secret.expose(), ctx())
        .await
        .expect("works");
    let d =
        f.kw.delete_key(Actor::System, &k.key.id)
            .await
            .expect("deleted");
    assert_eq!(d.effective_by, f.kw.now() + f.kw.propagation_window());
    let e =
        f.kw.verify(k.key.id.as_str(), k.secret.expose(), ctx())
            .await
            .expect_err("deleted");
    assert!(matches!(e, Error::Unauthorized));
    assert!(matches!(
        f.kw.get_key(Actor::System, &k.key.id).await,
        Err(Error::NotFound("key"))
    ));
}

#[tokio::test]
async fn principals_cannot_escalate_or_reach_other_accounts() {
    let f = fixture().await;
    let admin =
        f.kw.verify(f.admin.key.id.as_str(), f.admin.secret.expose(), ctx())
            .await
            .expect("admin");
    let reader =
        f.kw.issue_key(
            Actor::Principal(&admin),
            &f.account.id,
            NewKey::new("writer").permissions(perms(&["writeApiKeys", "readApplications"])),
        )
        .await
        .expect("admin can grant what it holds");
    let writer =
        f.kw.verify(reader.key.id.as_str(), reader.secret.expose(), ctx())
            .await
            .expect("writer");
    let e =
        f.kw.issue_key(
            Actor::Principal(&writer),
            &f.account.id,
            NewKey::new("escalate").permissions(perms(&["writeApplications"])),
        )
        .await
        .expect_err("escalation");
    assert!(
        matches!(
            e,
            Error::NotGrantable {
                limit: GrantLimit::Actor,
                ..
            }
        ),
        "{e:?}"
    );
    let e =
        f.kw.issue_key(
            Actor::System,
            &f.account.id,
            NewKey::new("beyond").permissions(perms(&["deleteEverything"])),
        )
        .await
        .expect_err("beyond account");
    assert!(
        matches!(
            e,
            Error::NotGrantable {
                limit: GrantLimit::Account,
                ..
            }
        ),
        "{e:?}"
    );
    // writeApiKeys implies readApiKeys: the writer sees what it manages.
    f.kw.get_key(Actor::Principal(&writer), &f.admin.key.id)
        .await
        .expect("writeApiKeys reads");
    // A key without either is refused.
    let apps =
        f.kw.issue_key(
            Actor::Principal(&admin),
            &f.account.id,
            NewKey::new("apps").permissions(perms(&["readApplications"])),
        )
        .await
        .expect("issued");
    let apps =
        f.kw.verify(apps.key.id.as_str(), apps.secret.expose(), ctx())
            .await
            .expect("apps");
    let e =
        f.kw.get_key(Actor::Principal(&apps), &f.admin.key.id)
            .await
            .expect_err("forbidden");
    assert!(matches!(e, Error::Forbidden { .. }), "{e:?}");
    // Another account's keys are invisible.
    let other =
        f.kw.create_account(
            Actor::System,
            keyward::NewAccount::new("Other", perms(common::ALL)),
        )
        .await
        .expect("account");
    let foreign =
        f.kw.issue_key(Actor::System, &other.id, NewKey::new("foreign"))
            .await
            .expect("issued");
    let e =
        f.kw.get_key(Actor::Principal(&admin), &foreign.key.id)
            .await
            .expect_err("foreign");
    assert!(matches!(e, Error::NotFound("key")), "{e:?}");
    let e =
        f.kw.deactivate_key(Actor::Principal(&admin), &foreign.key.id)
            .await
            .expect_err("foreign");
    assert!(matches!(e, Error::NotFound("key")), "{e:?}");
}

#[tokio::test]
async fn effective_permissions_follow_the_account() {
    let f = fixture().await;
    let child =
        f.kw.create_account(
            Actor::System,
            keyward::NewAccount::new("Child", perms(&["readApplications"])).parent(f.account.id),
        )
        .await
        .expect("child");
    let admin =
        f.kw.verify(f.admin.key.id.as_str(), f.admin.secret.expose(), ctx())
            .await
            .expect("admin");
    let acting = f.kw.act_for(&admin, &child.id).await.expect("child ok");
    assert_eq!(acting.account_id(), &child.id);
    assert_eq!(acting.home_account_id(), &f.account.id);
    // Data permissions: key ∩ child; management permissions stay the
    // admin's own (issue 12).
    assert_eq!(
        acting.permissions(),
        &perms(&["readApplications", "readApiKeys", "writeApiKeys"])
    );
    let stranger =
        f.kw.create_account(
            Actor::System,
            keyward::NewAccount::new("Stranger", perms(&[])),
        )
        .await
        .expect("account");
    assert!(matches!(
        f.kw.act_for(&admin, &stranger.id).await,
        Err(Error::AccountNotAllowed)
    ));
}

#[tokio::test]
async fn bad_input_changes_nothing_and_writes_no_event() {
    let f = fixture().await;
    let before =
        f.kw.events(Actor::System, &f.account.id, None, 100, None)
            .await
            .expect("events")
            .items
            .len();
    let long = "x".repeat(201);
    let cases: Vec<(NewKey, &str)> = vec![
        (NewKey::new(""), "name"),
        (NewKey::new("   "), "name"),
        (NewKey::new(long.as_str()), "name"),
        (NewKey::new("a\u{0}b"), "name"),
        (
            NewKey::new("k").expires_at(f.kw.now() - Duration::seconds(1)),
            "expires_at",
        ),
        (
            NewKey::new("k").metadata(serde_json::json!([1, 2])),
            "metadata",
        ),
        (
            NewKey::new("k").description("d".repeat(2001)),
            "description",
        ),
    ];
    for (new, field) in cases {
        match f.kw.issue_key(Actor::System, &f.account.id, new).await {
            Err(Error::InvalidInput { field: got, .. }) => assert_eq!(got, field),
            other => panic!("expected invalid {field}, got {other:?}"),
        }
    }
    let e =
        f.kw.update_key(
            Actor::System,
            &f.admin.key.id,
            KeyUpdate::new()
                .name("renamed")
                .expires_at(Some(f.kw.now() - Duration::seconds(1))),
        )
        .await
        .expect_err("past expiry");
    assert!(matches!(
        e,
        Error::InvalidInput {
            field: "expires_at",
            ..
        }
    ));
    let key =
        f.kw.get_key(Actor::System, &f.admin.key.id)
            .await
            .expect("key");
    assert_eq!(key.name, "admin");
    let after =
        f.kw.events(Actor::System, &f.account.id, None, 100, None)
            .await
            .expect("events")
            .items
            .len();
    assert_eq!(before, after);
    assert!(matches!(
        f.kw.list_keys(Actor::System, &f.account.id, ListKeys::new().limit(0))
            .await,
        Err(Error::InvalidInput { field: "limit", .. })
    ));
    assert!(matches!(
        f.kw.list_keys(Actor::System, &f.account.id, ListKeys::new().cursor("!!"))
            .await,
        Err(Error::InvalidInput {
            field: "cursor",
            ..
        })
    ));
}

#[tokio::test]
async fn list_filters_and_paginates() {
    let f = fixture().await;
    for i in 0..7 {
        f.clock.advance(Duration::seconds(1));
        let app = if i % 2 == 0 { "billing" } else { "crm" };
        let k =
            f.kw.issue_key(
                Actor::System,
                &f.account.id,
                NewKey::new(format!("Service {i}")).application(app),
            )
            .await
            .expect("issued");
        if i == 3 {
            f.kw.deactivate_key(Actor::System, &k.key.id)
                .await
                .expect("off");
        }
    }
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let mut q = ListKeys::new().q("service").limit(3);
        if let Some(c) = cursor.take() {
            q = q.cursor(c);
        }
        let page =
            f.kw.list_keys(Actor::System, &f.account.id, q)
                .await
                .expect("page");
        seen.extend(page.items.into_iter().map(|k| k.name));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(
        seen,
        (0..7).map(|i| format!("Service {i}")).collect::<Vec<_>>()
    );
    let inactive =
        f.kw.list_keys(
            Actor::System,
            &f.account.id,
            ListKeys::new().status(KeyStatus::Inactive),
        )
        .await
        .expect("page");
    assert_eq!(inactive.items.len(), 1);
    assert_eq!(inactive.items[0].name, "Service 3");
    let crm =
        f.kw.list_keys(
            Actor::System,
            &f.account.id,
            ListKeys::new().application("crm"),
        )
        .await
        .expect("page");
    assert_eq!(crm.items.len(), 3);
}

#[tokio::test]
async fn every_change_is_audited_with_its_actor() {
    let f = fixture().await;
    let admin =
        f.kw.verify(
            f.admin.key.id.as_str(),
            f.admin.secret.expose(),
            ctx().client_ip("198.51.100.4".parse().expect("ip")),
        )
        .await
        .expect("admin");
    let k =
        f.kw.issue_key(Actor::Principal(&admin), &f.account.id, NewKey::new("k"))
            .await
            .expect("issued");
    let by = Actor::Principal(&admin);
    f.kw.update_key(by, &k.key.id, KeyUpdate::new().name("k2"))
        .await
        .expect("renamed");
    f.kw.deactivate_key(by, &k.key.id).await.expect("off");
    f.kw.activate_key(by, &k.key.id).await.expect("on");
    f.kw.rotate_key(by, &k.key.id, None).await.expect("rotated");
    f.kw.delete_key(by, &k.key.id).await.expect("deleted");
    let page =
        f.kw.events(by, &f.account.id, Some(&k.key.id), 100, None)
            .await
            .expect("events");
    let actions: Vec<&str> = page.items.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "key_deleted",
            "key_rotated",
            "key_activated",
            "key_deactivated",
            "key_updated",
            "key_created"
        ]
    );
    for e in &page.items {
        assert_eq!(e.actor.key_id, Some(f.admin.key.id));
        assert_eq!(e.client_ip, Some("198.51.100.4".parse().expect("ip")));
    }
}

#[tokio::test]
async fn usage_is_counted_in_memory_and_flushed_in_batches() {
    let f = fixture().await;
    let mcp = ctx().origin(keyward::Label::MCP);
    for _ in 0..3 {
        f.kw.verify(f.admin.key.id.as_str(), f.admin.secret.expose(), ctx())
            .await
            .expect("ok");
    }
    f.kw.verify(f.admin.key.id.as_str(), f.admin.secret.expose(), mcp)
        .await
        .expect("ok");
    let wrong = "kw_sk_".to_string() + &"A".repeat(49);
    let _ = f.kw.verify(f.admin.key.id.as_str(), &wrong, ctx()).await;
    // Nothing reaches the store until a flush.
    let stored =
        f.kw.get_key(keyward::Actor::System, &f.admin.key.id)
            .await
            .expect("key");
    assert_eq!(stored.last_used_at, None);
    f.kw.flush().await.expect("flushed");
    let stored =
        f.kw.get_key(Actor::System, &f.admin.key.id)
            .await
            .expect("key");
    assert_eq!(stored.last_used_at, Some(f.kw.now()));
    let rows =
        f.kw.usage(
            Actor::System,
            &f.account.id,
            common::around_now(&f.kw).key(f.admin.key.id),
        )
        .await
        .expect("usage");
    let api = rows.iter().find(|r| r.origin == "api").expect("api row");
    let mcp = rows.iter().find(|r| r.origin == "mcp").expect("mcp row");
    assert_eq!((api.successes, mcp.successes), (3, 1));
    // The malformed secret was rejected before lookup, so it counts nowhere.
    assert_eq!(api.failures, 0);
}

#[tokio::test]
async fn usage_follows_keys_sessions_and_cache_replacement() {
    let f = fixture().await;
    let key =
        f.kw.issue_key(Actor::System, &f.account.id, NewKey::new("counted"))
            .await
            .expect("issued");
    let (id, secret) = (key.key.id, key.secret.expose().to_owned());
    // Two successes; one well-formed wrong secret (a failure).
    for _ in 0..2 {
        f.kw.verify(id.as_str(), &secret, ctx()).await.expect("ok");
    }
    let other = f.admin.secret.expose();
    let e =
        f.kw.verify(id.as_str(), other, ctx())
            .await
            .expect_err("wrong");
    assert!(matches!(e, Error::Unauthorized));
    // Logging in verifies the key (a success); two session verifications
    // count for the key too.
    let session =
        f.kw.login(id.as_str(), &secret, ctx())
            .await
            .expect("login");
    for _ in 0..2 {
        f.kw.verify_session(session.token.expose(), ctx())
            .await
            .expect("session ok");
    }
    // Deactivating replaces the cached entry; its counts move with it, and
    // the correct secret of an inactive key counts as a failure.
    f.kw.deactivate_key(Actor::System, &id)
        .await
        .expect("deactivated");
    let e =
        f.kw.verify(id.as_str(), &secret, ctx())
            .await
            .expect_err("inactive");
    assert!(matches!(e, Error::KeyInactive));
    // Removal from the cache keeps the counts too.
    f.kw.delete_key(Actor::System, &id).await.expect("deleted");
    assert_eq!(common::usage_totals(&f.kw, &f.account.id, id).await, (5, 2));
}

#[tokio::test]
async fn unknown_and_deleted_ids_are_remembered_for_w_without_store_reads() {
    let f = fixture().await;
    let b = common::service(&f.store, &f.clock);
    let key =
        f.kw.issue_key(Actor::System, &f.account.id, NewKey::new("doomed"))
            .await
            .expect("issued");
    let (id, secret) = (key.key.id.to_string(), key.secret.expose().to_owned());
    b.verify(&id, &secret, ctx()).await.expect("warm on b");
    f.kw.delete_key(Actor::System, &key.key.id)
        .await
        .expect("deleted");
    let unknown = "kw_00000000000000000";
    // B learns of the deletion within W, by reading the store once.
    f.clock.advance(b.propagation_window());
    for kw in [&f.kw, &b] {
        for id in [id.as_str(), unknown] {
            let e = kw.verify(id, &secret, ctx()).await.expect_err("gone");
            assert!(matches!(e, Error::Unauthorized), "{e:?}");
        }
    }
    // Within W no instance reads the store again for those ids: with the
    // store down the answer is still 401, not 503.
    f.store.set_unavailable(true);
    f.clock
        .advance(b.propagation_window() - Duration::seconds(1));
    for kw in [&f.kw, &b] {
        for id in [id.as_str(), unknown] {
            let e = kw.verify(id, &secret, ctx()).await.expect_err("gone");
            assert!(matches!(e, Error::Unauthorized), "{e:?}");
        }
    }
    // After W the store is asked again (and, being down, fails closed).
    f.clock.advance(Duration::seconds(1));
    let e = b.verify(unknown, &secret, ctx()).await.expect_err("down");
    assert!(matches!(e, Error::Unavailable(_)), "{e:?}");
}

#[tokio::test]
async fn a_failed_flush_loses_nothing() {
    let f = fixture().await;
    f.kw.verify(f.admin.key.id.as_str(), f.admin.secret.expose(), ctx())
        .await
        .expect("ok");
    f.store.set_unavailable(true);
    assert!(matches!(f.kw.flush().await, Err(Error::Unavailable(_))));
    f.store.set_unavailable(false);
    f.kw.flush().await.expect("flushed");
    let rows =
        f.kw.usage(Actor::System, &f.account.id, common::around_now(&f.kw))
            .await
            .expect("usage");
    assert_eq!(rows.iter().map(|r| r.successes).sum::<u64>(), 1);
}

#[tokio::test]
async fn store_outage_fails_closed_after_the_window() {
    let f = fixture().await;
    f.kw.verify(f.admin.key.id.as_str(), f.admin.secret.expose(), ctx())
        .await
        .expect("warm");
    f.store.set_unavailable(true);
    f.kw.verify(f.admin.key.id.as_str(), f.admin.secret.expose(), ctx())
        .await
        .expect("cached entry younger than W still works");
    f.clock.advance(f.kw.propagation_window());
    let e =
        f.kw.verify(f.admin.key.id.as_str(), f.admin.secret.expose(), ctx())
            .await
            .expect_err("fails closed");
    assert!(matches!(e, Error::Unavailable(_)), "{e:?}");
    let e =
        f.kw.issue_key(Actor::System, &f.account.id, NewKey::new("x"))
            .await
            .expect_err("management fails");
    assert!(matches!(e, Error::Unavailable(_)), "{e:?}");
    f.store.set_unavailable(false);
    f.kw.verify(f.admin.key.id.as_str(), f.admin.secret.expose(), ctx())
        .await
        .expect("recovers");
}

#[tokio::test]
async fn stored_hashes_are_upgraded_after_a_successful_verify() {
    let f = fixture().await;
    let stronger = keyward::HashParams {
        memory_kib: 128,
        ..common::TEST_HASH
    };
    let upgraded = keyward::Keyward::builder()
        .store(f.store.clone())
        .clock(f.clock.clone())
        .hash_params(stronger)
        .flush_interval(None)
        .build()
        .expect("config");
    let read = |store: keyward::MemoryStore, id: keyward::KeyId| async move {
        keyward::store::KeyStore::get_key(&store, &id)
            .await
            .expect("store")
            .expect("present")
            .secret_hash
    };
    assert!(
        read(f.store.clone(), f.admin.key.id)
            .await
            .0
            .contains("m=64,")
    );
    upgraded
        .verify(f.admin.key.id.as_str(), f.admin.secret.expose(), ctx())
        .await
        .expect("verifies with the old parameters");
    assert!(
        read(f.store.clone(), f.admin.key.id)
            .await
            .0
            .contains("m=128,")
    );
    // Still the same secret, and the upgrade is audited.
    f.clock.advance(f.kw.propagation_window());
    f.kw.verify(f.admin.key.id.as_str(), f.admin.secret.expose(), ctx())
        .await
        .expect("still verifies");
    let events =
        f.kw.events(Actor::System, &f.account.id, Some(&f.admin.key.id), 1, None)
            .await
            .expect("events");
    assert_eq!(events.items[0].action, keyward::AuditAction::KeyRehashed);
}

#[tokio::test]
async fn wrong_secret_floods_on_a_cold_key_are_limited() {
    let f = fixture().await;
    // A second instance has no verified tag: every wrong secret costs argon2.
    let cold = common::service(&f.store, &f.clock);
    let wrong =
        f.kw.issue_key(Actor::System, &f.account.id, NewKey::new("x"))
            .await
            .expect("issued")
            .secret;
    let mut limited = 0;
    for _ in 0..20 {
        match cold
            .verify(f.admin.key.id.as_str(), wrong.expose(), ctx())
            .await
        {
            Err(Error::Unauthorized) => {}
            Err(Error::TooManyAttempts { retry_after_secs }) => {
                assert!(retry_after_secs > 0);
                limited += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(limited, 10, "the default budget is 10 failures");
    // The budget refills with time; the right secret then works.
    f.clock.advance(Duration::seconds(6));
    cold.verify(f.admin.key.id.as_str(), f.admin.secret.expose(), ctx())
        .await
        .expect("refilled");
}

#[tokio::test]
async fn a_full_cache_evicts_and_every_key_still_verifies() {
    let f = fixture().await;
    // 64 shards × 2 entries: most keys are evicted and reloaded many times.
    let small = keyward::Keyward::builder()
        .store(f.store.clone())
        .clock(f.clock.clone())
        .hash_params(common::TEST_HASH)
        .flush_interval(None)
        .max_cached_keys(128)
        .build()
        .expect("config");
    let mut keys = Vec::new();
    for i in 0..200 {
        let k = small
            .issue_key(Actor::System, &f.account.id, NewKey::new(format!("k{i}")))
            .await
            .expect("issued");
        keys.push((k.key.id.to_string(), k.secret.expose().to_owned()));
    }
    for round in 0..2 {
        for (i, (id, secret)) in keys.iter().enumerate() {
            small
                .verify(id, secret, ctx())
                .await
                .unwrap_or_else(|e| panic!("key {i}, round {round}: {e}"));
            let wrong = &keys[(i + 1) % keys.len()].1;
            let e = small.verify(id, wrong, ctx()).await.expect_err("wrong");
            assert!(matches!(e, Error::Unauthorized), "{e:?}");
        }
    }
    let (cached, _) = small.cache_stats();
    assert!(cached <= 128 + 64, "{cached} entries cached");
}

#[tokio::test]
async fn cached_verification_decides_only_what_the_caches_know_and_counts_it() {
    let f = fixture().await;
    // Another instance on the same store: nothing verified there yet.
    let b = common::service(&f.store, &f.clock);
    let (id, secret) = (f.admin.key.id, f.admin.secret.expose());
    assert!(b.verify_cached(id.as_str(), secret, ctx()).is_none());
    b.verify(id.as_str(), secret, ctx()).await.expect("cold");
    // Now warm: decided synchronously, from header bytes as well.
    let p = b
        .verify_cached(id.as_str().as_bytes(), secret.as_bytes(), ctx())
        .expect("decided")
        .expect("accepted");
    assert_eq!(p.key_id(), &id);
    // A wrong secret of the right format is refused from the cache, a
    // malformed one before any lookup.
    let other =
        f.kw.issue_key(Actor::System, &f.account.id, NewKey::new("other"))
            .await
            .expect("issued");
    let wrong = b.verify_cached(id.as_str(), other.secret.expose(), ctx());
    assert!(matches!(wrong, Some(Err(Error::Unauthorized))), "{wrong:?}");
    let malformed = b.verify_cached(id.as_str(), "kw_sk_short", ctx());
    assert!(matches!(malformed, Some(Err(Error::Malformed(_)))));
    // Sessions: decided once the session and its key are cached.
    let session = b.login(id.as_str(), secret, ctx()).await.expect("login");
    let token = session.token.expose();
    let p = b
        .verify_bearer_cached(token, ctx())
        .expect("decided")
        .expect("accepted");
    assert_eq!(p.session_id(), Some(&session.session.id));
    // The single-string key form through the same bearer entry point.
    let combined =
        keyward::combine_key(&Default::default(), &id, &f.admin.secret).expect("combined");
    let p = b
        .verify_bearer_cached(combined.expose(), ctx())
        .expect("decided")
        .expect("accepted");
    assert_eq!(p.session_id(), None);
    // Each decided outcome counted once: the cold verify, the cached one,
    // the login, the session and the combined form succeeded; the wrong
    // secret failed. The malformed one is no key's.
    assert_eq!(common::usage_totals(&b, &f.account.id, id).await, (5, 1));
}
