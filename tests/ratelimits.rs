//! Rate limits and credits through the library: a key's limit admits
//! exactly its count; an account's limit is one pool for all its keys;
//! named limits apply only where the route names them; credits run out at
//! the same count whichever of two instances (one store) serves, and
//! refill; bad limits are refused naming the field and change nothing.

mod common;

use common::{fixture, perms, service};
use keyward::{
    Actor, Credits, Error, IssuedKey, Label, LimitOwner, Limits, NewKey, RateLimit, Refill,
    RefillInterval, VerifyContext,
};
use time::Duration;

const READ: &[&str] = &["readApplications"];

async fn key(f: &common::Fixture, name: &str) -> IssuedKey {
    f.kw.issue_key(
        Actor::System,
        &f.account.id,
        NewKey::new(name).permissions(perms(READ)),
    )
    .await
    .expect("key")
}

async fn call(kw: &keyward::Keyward, k: &IssuedKey, ctx: VerifyContext<'_>) -> keyward::Result<()> {
    kw.verify(k.key.id.as_str(), k.secret.expose(), ctx)
        .await
        .map(|_| ())
}

fn requests(limit: u32) -> RateLimit {
    RateLimit::new(Label::from_static("requests"), limit, 60_000)
}

#[tokio::test]
async fn a_key_limit_of_five_per_minute_admits_exactly_five_of_eight() {
    let f = fixture().await;
    let k = key(&f, "metered").await;
    f.kw.set_limits(
        Actor::System,
        &LimitOwner::Key(k.key.id),
        Limits::new().ratelimit(requests(5)),
    )
    .await
    .expect("limits");
    let mut ok = 0;
    let mut refused = Vec::new();
    for _ in 0..8 {
        match call(&f.kw, &k, VerifyContext::new()).await {
            Ok(()) => ok += 1,
            Err(e) => refused.push(e),
        }
    }
    assert_eq!(ok, 5);
    assert_eq!(refused.len(), 3);
    for e in &refused {
        let Error::RateLimited {
            status,
            retry_after_ms,
        } = e
        else {
            panic!("expected RateLimited, got {e:?}");
        };
        assert_eq!(status.name.as_str(), "requests");
        assert_eq!((status.limit, status.remaining), (5, 0));
        assert_eq!(*retry_after_ms, 12_000);
    }
    // One call per 12 s comes back.
    f.clock.advance(Duration::seconds(12));
    call(&f.kw, &k, VerifyContext::new())
        .await
        .expect("replenished");
    assert!(call(&f.kw, &k, VerifyContext::new()).await.is_err());
    // A wrong secret is still a 401, never a rate-limit answer.
    let wrong =
        f.kw.verify(k.key.id.as_str(), "kw_sk_wrong", VerifyContext::new())
            .await;
    assert!(!matches!(wrong, Err(Error::RateLimited { .. })));
}

#[tokio::test]
async fn an_account_limit_is_one_pool_for_all_its_keys() {
    let f = fixture().await;
    let (a, b) = (key(&f, "a").await, key(&f, "b").await);
    // Both keys warm before the limit is set: the change reaches them.
    call(&f.kw, &a, VerifyContext::new()).await.expect("a");
    call(&f.kw, &b, VerifyContext::new()).await.expect("b");
    f.kw.set_limits(
        Actor::System,
        &LimitOwner::Account(f.account.id),
        Limits::new().ratelimit(requests(3)),
    )
    .await
    .expect("limits");
    // Another key minted afterwards buys no more calls.
    let c = key(&f, "c").await;
    f.clock.advance(f.kw.propagation_window());
    let mut ok = 0;
    for k in [&a, &b, &c, &a, &b, &c] {
        if call(&f.kw, k, VerifyContext::new()).await.is_ok() {
            ok += 1;
        }
    }
    assert_eq!(ok, 3);
}

#[tokio::test]
async fn a_named_limit_applies_only_where_the_route_names_it_and_cost_spends_credits() {
    let f = fixture().await;
    let k = key(&f, "routes").await;
    let expensive = Label::from_static("expensive");
    f.kw.set_limits(
        Actor::System,
        &LimitOwner::Key(k.key.id),
        Limits::new()
            .ratelimit(RateLimit::new(expensive, 1, 60_000).manual())
            .credits(Credits::new(10)),
    )
    .await
    .expect("limits");
    for _ in 0..3 {
        call(&f.kw, &k, VerifyContext::new())
            .await
            .expect("plain route");
    }
    let route = VerifyContext::new().limit(expensive).cost(5);
    call(&f.kw, &k, route).await.expect("first expensive call");
    assert!(matches!(
        call(&f.kw, &k, route).await,
        Err(Error::RateLimited { .. })
    ));
    // 3 + 5 spent, 2 left: a call costing 5 is refused, two of 1 pass.
    f.clock.advance(Duration::minutes(1));
    assert!(matches!(
        call(&f.kw, &k, route).await,
        Err(Error::UsageExceeded)
    ));
    call(&f.kw, &k, VerifyContext::new())
        .await
        .expect("9th credit");
    call(&f.kw, &k, VerifyContext::new())
        .await
        .expect("10th credit");
    assert!(matches!(
        call(&f.kw, &k, VerifyContext::new()).await,
        Err(Error::UsageExceeded)
    ));
}

#[tokio::test]
async fn credits_run_out_at_the_same_count_whichever_instance_serves_and_refill_daily() {
    let f = fixture().await;
    let other = service(&f.store, &f.clock);
    let k = key(&f, "credited").await;
    let owner = LimitOwner::Key(k.key.id);
    let credits = Credits::new(5).refill(Refill::new(RefillInterval::Daily, 5));
    f.kw.set_limits(Actor::System, &owner, Limits::new().credits(credits))
        .await
        .expect("limits");
    let instances = [&f.kw, &other];
    let mut ok = 0;
    for i in 0..8 {
        // Each instance writes what it spent and reads the count before
        // serving (the batch flush, here after every call).
        for kw in instances {
            kw.flush().await.expect("flush");
        }
        match call(instances[i % 2], &k, VerifyContext::new()).await {
            Ok(()) => ok += 1,
            Err(Error::UsageExceeded) => {}
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!(ok, 5);
    for kw in instances {
        kw.flush().await.expect("flush");
    }
    let stored = f.kw.limits(Actor::System, &owner).await.expect("read");
    assert_eq!(stored.credits.map(|c| c.remaining), Some(0));
    // The next UTC day: 5 again, on either instance.
    f.clock.advance(Duration::days(1));
    call(&other, &k, VerifyContext::new())
        .await
        .expect("refilled");
    other.flush().await.expect("flush");
    let stored = f.kw.limits(Actor::System, &owner).await.expect("read");
    assert_eq!(stored.credits.map(|c| c.remaining), Some(4));
}

#[tokio::test]
async fn bad_limits_are_refused_naming_the_field_and_change_nothing() {
    let f = fixture().await;
    let k = key(&f, "strict").await;
    let owner = LimitOwner::Key(k.key.id);
    let bad = Limits::new()
        .ratelimit(requests(5))
        .ratelimit(RateLimit::new(Label::from_static("other"), 0, 1000));
    let e =
        f.kw.set_limits(Actor::System, &owner, bad)
            .await
            .expect_err("invalid");
    assert!(
        matches!(
            e,
            Error::InvalidInput {
                field: "ratelimits[1].limit",
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(
        f.kw.limits(Actor::System, &owner).await.expect("read"),
        Limits::new()
    );
    // A key may not lift its own limits.
    let admin =
        f.kw.verify(
            f.admin.key.id.as_str(),
            f.admin.secret.expose(),
            VerifyContext::new(),
        )
        .await
        .expect("admin");
    let own =
        f.kw.set_limits(
            Actor::Principal(&admin),
            &LimitOwner::Key(f.admin.key.id),
            Limits::new(),
        )
        .await;
    assert!(
        matches!(own, Err(Error::RestrictionNotHeld { .. })),
        "{own:?}"
    );
    // Others' keys it manages: yes, audited.
    f.kw.set_limits(
        Actor::Principal(&admin),
        &owner,
        Limits::new().ratelimit(requests(5)),
    )
    .await
    .expect("set by the admin");
    assert_eq!(
        f.kw.limits(Actor::System, &owner)
            .await
            .expect("read")
            .ratelimits,
        vec![requests(5)]
    );
}

#[tokio::test]
async fn creates_and_updates_set_limits_in_the_library_as_over_http() {
    use keyward::{AccountUpdate, AppUpdate, KeyUpdate, NewAccount, NewApp};
    let f = fixture().await;
    let credits = Credits::new(50);
    // Created with limits: a key, an application, a child account.
    let k =
        f.kw.issue_key(
            Actor::System,
            &f.account.id,
            NewKey::new("born limited")
                .permissions(perms(READ))
                .ratelimit(requests(2))
                .credits(credits),
        )
        .await
        .expect("key");
    let app =
        f.kw.create_app(
            Actor::System,
            &f.account.id,
            NewApp::new("Reports").ratelimit(requests(7)),
        )
        .await
        .expect("app");
    let child =
        f.kw.create_account(
            Actor::System,
            NewAccount::new("Customer", perms(READ))
                .parent(f.account.id)
                .credits(Credits::new(9)),
        )
        .await
        .expect("account");
    let read = |o: LimitOwner| {
        let kw = f.kw.clone();
        async move { kw.limits(Actor::System, &o).await.expect("read") }
    };
    let key_limits = read(LimitOwner::Key(k.key.id)).await;
    assert_eq!(key_limits.ratelimits, vec![requests(2)]);
    assert_eq!(key_limits.credits.map(|c| c.remaining), Some(50));
    assert_eq!(
        read(LimitOwner::App(app.id)).await.ratelimits,
        vec![requests(7)]
    );
    assert_eq!(
        read(LimitOwner::Account(child.id))
            .await
            .credits
            .map(|c| c.remaining),
        Some(9)
    );
    // They apply at once: the third call in the minute is refused.
    for _ in 0..2 {
        call(&f.kw, &k, VerifyContext::new())
            .await
            .expect("admitted");
    }
    assert!(matches!(
        call(&f.kw, &k, VerifyContext::new()).await,
        Err(Error::RateLimited { .. })
    ));
    // An update naming only the rate limits keeps the credits, and the
    // other way round; `None` credits unmeter.
    f.kw.update_key(
        Actor::System,
        &k.key.id,
        KeyUpdate::new().ratelimits(vec![requests(3)]),
    )
    .await
    .expect("update");
    let after = read(LimitOwner::Key(k.key.id)).await;
    assert_eq!(after.ratelimits, vec![requests(3)]);
    assert!(after.credits.is_some(), "credits kept");
    f.kw.update_app(
        Actor::System,
        &app.id,
        AppUpdate::new().credits(Some(Credits::new(4))),
    )
    .await
    .expect("update app");
    let app_limits = read(LimitOwner::App(app.id)).await;
    assert_eq!(app_limits.ratelimits, vec![requests(7)], "rate limits kept");
    assert_eq!(app_limits.credits.map(|c| c.remaining), Some(4));
    f.kw.update_account(
        Actor::System,
        &child.id,
        AccountUpdate::new().name("Customer Ltd").credits(None),
    )
    .await
    .expect("update account");
    assert_eq!(read(LimitOwner::Account(child.id)).await, Limits::new());

    // Bad limits: refused naming the field, and nothing is written.
    let before =
        f.kw.list_keys(Actor::System, &f.account.id, Default::default())
            .await
            .expect("list")
            .items
            .len();
    let bad =
        f.kw.issue_key(
            Actor::System,
            &f.account.id,
            NewKey::new("never").ratelimit(RateLimit::new(Label::from_static("r"), 0, 1000)),
        )
        .await;
    assert!(
        matches!(
            bad,
            Err(Error::InvalidInput {
                field: "ratelimits[0].limit",
                ..
            })
        ),
        "{bad:?}"
    );
    let now =
        f.kw.list_keys(Actor::System, &f.account.id, Default::default())
            .await
            .expect("list")
            .items
            .len();
    assert_eq!(before, now, "no key was created");
    let bad =
        f.kw.update_key(
            Actor::System,
            &k.key.id,
            KeyUpdate::new()
                .name("renamed")
                .ratelimits(vec![requests(1), requests(1)]),
        )
        .await;
    assert!(matches!(bad, Err(Error::InvalidInput { .. })), "{bad:?}");
    let stored = f.kw.get_key(Actor::System, &k.key.id).await.expect("key");
    assert_eq!(stored.name, "born limited", "the record is unchanged too");
    // A key may not lift its own limits through an update either, and the
    // rest of that update is not applied.
    let admin =
        f.kw.verify(
            f.admin.key.id.as_str(),
            f.admin.secret.expose(),
            VerifyContext::new(),
        )
        .await
        .expect("admin");
    let own =
        f.kw.update_key(
            Actor::Principal(&admin),
            &f.admin.key.id,
            KeyUpdate::new().name("lifted").ratelimits(Vec::new()),
        )
        .await;
    assert!(
        matches!(own, Err(Error::RestrictionNotHeld { .. })),
        "{own:?}"
    );
    let admin_key =
        f.kw.get_key(Actor::System, &f.admin.key.id)
            .await
            .expect("key");
    assert_eq!(admin_key.name, "admin");
}
