//! Two instances on one PostgreSQL with the change feed: switching an
//! application or a customer account off on one reaches the other's
//! warm keys and sessions long before W (a minute here, so only the feed
//! can do it), and switching back on revives no session. Needs
//! `KEYWARD_TEST_POSTGRES_URL`.
#![cfg(feature = "postgres")]
#![allow(clippy::unwrap_used)]

#[path = "store_support/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::Duration;

use keyward::{
    AccountStatus, AccountUpdate, Actor, AppStatus, AppUpdate, Error, Keyward, NewAccount, NewApp,
    NewKey, PermissionSet, VerifyContext,
};

const LIMIT: Duration = Duration::from_secs(10);

async fn inactive(kw: &Keyward, id: &str, secret: &str) -> bool {
    matches!(
        kw.verify(id, secret, VerifyContext::new()).await,
        Err(Error::KeyInactive)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_and_account_switches_reach_the_other_instance_through_the_feed() {
    let Some(url) = common::pg_url() else { return };
    let schema = common::schema_name();
    let store_a = common::pg_store(&url, &schema, |o| o).await;
    let store_b = common::pg_store(&url, &schema, |o| o).await;
    let a = common::service(Arc::new(store_a.clone()), None, 60);
    let b = common::service(Arc::new(store_b.clone()), None, 60);
    let perms = PermissionSet::parse(["readApplications"]).unwrap();
    let account = a
        .create_account(Actor::System, NewAccount::new("Acme", perms.clone()))
        .await
        .unwrap();
    let app = a
        .create_app(Actor::System, &account.id, NewApp::new("Mobile"))
        .await
        .unwrap();
    let k = a
        .issue_key(
            Actor::System,
            &account.id,
            NewKey::new("in app").app(app.id).permissions(perms.clone()),
        )
        .await
        .unwrap();
    let (id, secret) = (k.key.id.as_str(), k.secret.expose());
    let s = a.login(id, secret, VerifyContext::new()).await.unwrap();
    b.verify(id, secret, VerifyContext::new())
        .await
        .expect("B warm");
    b.verify_session(s.token.expose(), VerifyContext::new())
        .await
        .expect("B session warm");

    a.update_app(
        Actor::System,
        &app.id,
        AppUpdate::new().status(AppStatus::Inactive),
    )
    .await
    .unwrap();
    common::time_until(LIMIT, || inactive(&b, id, secret))
        .await
        .expect("B kept the key of a switched-off application");
    common::time_until(LIMIT, || async {
        b.verify_session(s.token.expose(), VerifyContext::new())
            .await
            .is_err()
    })
    .await
    .expect("B kept its session");
    a.update_app(
        Actor::System,
        &app.id,
        AppUpdate::new().status(AppStatus::Active),
    )
    .await
    .unwrap();
    common::time_until(LIMIT, || async {
        b.verify(id, secret, VerifyContext::new()).await.is_ok()
    })
    .await
    .expect("B never accepted the key again");
    assert!(
        b.verify_session(s.token.expose(), VerifyContext::new())
            .await
            .is_err(),
        "B revived a session"
    );

    // A customer account switched off on A: B refuses its key.
    let child = a
        .create_account(
            Actor::System,
            NewAccount::new("Globex", perms.clone()).parent(account.id),
        )
        .await
        .unwrap();
    let ck = a
        .issue_key(
            Actor::System,
            &child.id,
            NewKey::new("c").permissions(perms),
        )
        .await
        .unwrap();
    let (cid, csecret) = (ck.key.id.as_str(), ck.secret.expose());
    b.verify(cid, csecret, VerifyContext::new())
        .await
        .expect("B warm");
    a.update_account(
        Actor::System,
        &child.id,
        AccountUpdate::new().status(AccountStatus::Inactive),
    )
    .await
    .unwrap();
    common::time_until(LIMIT, || inactive(&b, cid, csecret))
        .await
        .expect("B kept the key of a switched-off account");

    drop((a, b));
    store_a.close().await;
    store_b.close().await;
    common::drop_schema(&url, &schema).await;
}
