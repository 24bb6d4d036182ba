//! Two instances on one PostgreSQL: revocation propagation through the
//! change feed, the propagation window without a feed, a killed listener,
//! and the feed's shutdown. Needs `KEYWARD_TEST_POSTGRES_URL`.

#[path = "store_support/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use keyward::{Actor, Error, Keyward, ManualClock, VerifyContext};

const LIMIT: Duration = Duration::from_secs(10);

async fn rejects(kw: &Keyward, id: &str, secret: &str) -> bool {
    matches!(
        kw.verify(id, secret, VerifyContext::new()).await,
        Err(Error::KeyInactive)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn revocation_reaches_other_instance_through_feed() {
    let Some(url) = common::pg_url() else { return };
    let schema = common::schema_name();
    let store_a = common::pg_store(&url, &schema, |o| o).await;
    let store_b = common::pg_store(&url, &schema, |o| o).await;
    // W is a minute: only the feed can make B reject within the bound.
    let a = common::service(Arc::new(store_a.clone()), None, 60);
    let b = common::service(Arc::new(store_b.clone()), None, 60);
    let (account, _) = common::account_and_key(&a).await;
    let mut delays = Vec::new();
    for i in 0..100 {
        let key = common::issue(&a, &account.id, &format!("k{i}")).await;
        let (id, secret) = (key.key.id.as_str(), key.secret.expose());
        b.verify(id, secret, VerifyContext::new())
            .await
            .expect("B warm");
        b.verify(id, secret, VerifyContext::new())
            .await
            .expect("B warm");
        a.deactivate_key(Actor::System, &key.key.id)
            .await
            .expect("deactivate");
        assert!(
            rejects(&a, id, secret).await,
            "A accepted after its own revoke returned"
        );
        let d = common::time_until(LIMIT, || rejects(&b, id, secret))
            .await
            .expect("B never rejected within the bound");
        delays.push(d);
    }
    delays.sort();
    println!(
        "propagation over 100 revocations: median {:?}, p99 {:?}, worst {:?}",
        delays[49], delays[98], delays[99]
    );
    drop((a, b));
    store_a.close().await;
    store_b.close().await;
    common::drop_schema(&url, &schema).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_feed_the_window_bounds_staleness() {
    let Some(url) = common::pg_url() else { return };
    let schema = common::schema_name();
    let store_a = common::pg_store(&url, &schema, |o| o.feed(false)).await;
    let store_b = common::pg_store(&url, &schema, |o| o.feed(false)).await;
    let clock = ManualClock::default();
    let a = common::service(Arc::new(store_a.clone()), Some(clock.clone()), 30);
    let b = common::service(Arc::new(store_b.clone()), Some(clock.clone()), 30);
    let (_, key) = common::account_and_key(&a).await;
    let (id, secret) = (key.key.id.as_str(), key.secret.expose());
    b.verify(id, secret, VerifyContext::new())
        .await
        .expect("B warm");
    a.deactivate_key(Actor::System, &key.key.id)
        .await
        .expect("deactivate");
    assert!(rejects(&a, id, secret).await);
    clock.advance(time::Duration::seconds(29));
    // Within W, B may still accept (it has no feed): that is the contract.
    let _ = b.verify(id, secret, VerifyContext::new()).await;
    clock.advance(time::Duration::seconds(1));
    assert!(
        rejects(&b, id, secret).await,
        "B accepted once W had passed"
    );
    drop((a, b));
    store_a.close().await;
    store_b.close().await;
    common::drop_schema(&url, &schema).await;
}

async fn listener_pids(pool: &sqlx::PgPool, app: &str) -> Vec<i32> {
    sqlx::query_scalar("SELECT pid FROM pg_stat_activity WHERE application_name = $1")
        .bind(app)
        .fetch_all(pool)
        .await
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_listener_still_rejects_within_window() {
    let Some(url) = common::pg_url() else { return };
    let schema = common::schema_name();
    let app_b = format!("{schema}_b");
    let store_a = common::pg_store(&url, &schema, |o| o.feed(false)).await;
    let store_b = common::pg_store(&url, &schema, |o| o.application_name(&app_b)).await;
    let a = common::service(Arc::new(store_a.clone()), None, 60);
    let b = common::service(Arc::new(store_b.clone()), None, 60);
    let feed_app = format!("{app_b}-feed");
    let admin = store_a.pool().clone();
    common::time_until(LIMIT, || {
        let (admin, feed_app) = (admin.clone(), feed_app.clone());
        async move { !listener_pids(&admin, &feed_app).await.is_empty() }
    })
    .await
    .expect("B's listener never connected");
    let (account, _) = common::account_and_key(&a).await;
    for round in 0..3 {
        let key = common::issue(&a, &account.id, &format!("k{round}")).await;
        let (id, secret) = (key.key.id.as_str(), key.secret.expose());
        b.verify(id, secret, VerifyContext::new())
            .await
            .expect("B warm");
        let killed: Vec<bool> = sqlx::query_scalar(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
        )
        .bind(&feed_app)
        .fetch_all(&admin)
        .await
        .expect("terminate");
        assert!(!killed.is_empty(), "no listener to kill");
        a.deactivate_key(Actor::System, &key.key.id)
            .await
            .expect("deactivate");
        let d = common::time_until(LIMIT, || rejects(&b, id, secret))
            .await
            .expect("B never rejected after its listener was killed");
        println!("round {round}: B rejected {d:?} after the revocation (listener killed)");
    }
    drop((a, b));
    store_a.close().await;
    store_b.close().await;
    common::drop_schema(&url, &schema).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feed_stops_when_store_dropped() {
    let Some(url) = common::pg_url() else { return };
    let schema = common::schema_name();
    let app = format!("{schema}_drop");
    let feed_app = format!("{app}-feed");
    let admin = common::pg_store(&url, &schema, |o| o.feed(false)).await;
    let store = common::pg_store(&url, &schema, |o| o.application_name(&app)).await;
    let kw = common::service(Arc::new(store), None, 30);
    let pool = admin.pool().clone();
    common::time_until(LIMIT, || {
        let (pool, feed_app) = (pool.clone(), feed_app.clone());
        async move { !listener_pids(&pool, &feed_app).await.is_empty() }
    })
    .await
    .expect("listener never connected");
    drop(kw);
    common::time_until(LIMIT, || {
        let (pool, feed_app) = (pool.clone(), feed_app.clone());
        async move { listener_pids(&pool, &feed_app).await.is_empty() }
    })
    .await
    .expect("the feed's listener outlived its store");
    admin.close().await;
    common::drop_schema(&url, &schema).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_verifiers_see_no_success_after_deactivate_returns() {
    let Some(url) = common::pg_url() else { return };
    let schema = common::schema_name();
    let store = common::pg_store(&url, &schema, |o| o).await;
    let kw = common::service(Arc::new(store.clone()), None, 30);
    let (_, key) = common::account_and_key(&kw).await;
    let id = key.key.id;
    let secret = key.secret.expose().to_owned();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let (kw, secret, stop) = (kw.clone(), secret.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut successes = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let started = Instant::now();
                if kw
                    .verify(id.as_str(), &secret, VerifyContext::new())
                    .await
                    .is_ok()
                {
                    successes.push(started);
                }
                tokio::task::yield_now().await;
            }
            successes
        }));
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    kw.deactivate_key(Actor::System, &id)
        .await
        .expect("deactivate");
    let returned = Instant::now();
    // Let the feed deliver the change back to this instance while verifiers
    // keep going (its invalidation forces store reloads racing the cache).
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut total = 0;
    for t in tasks {
        let successes = t.await.expect("task");
        total += successes.len();
        assert_eq!(successes.iter().filter(|s| **s > returned).count(), 0);
    }
    assert!(total > 0);
    drop(kw);
    store.close().await;
    common::drop_schema(&url, &schema).await;
}

/// B on `store_b` behind a counting wrapper (its own feed forwarded), with
/// a manual clock; `n` keys issued on A and verified once on B; then the
/// clock moved 2 W and B's feed caught up after that: B's entries are
/// older than W and trusted only because the feed vouches for them.
///
/// A read that a change raced (here: the notifications of the keys just
/// issued on A, arriving late on a loaded machine) is rightly not vouched
/// for; such keys are read again and the clock moved again, until every
/// entry is vouched for (a few rounds at most).
async fn vouched_on_b(
    a: &Keyward,
    store_b: keyward::store::PostgresStore,
    n: usize,
) -> (
    Keyward,
    Arc<common::counting::Counting>,
    ManualClock,
    Vec<keyward::IssuedKey>,
) {
    let clock = ManualClock::default();
    let counted = common::counting::Counting::forwarding(Arc::new(store_b));
    let b = common::service(counted.clone(), Some(clock.clone()), 30);
    let (account, first) = common::account_and_key(a).await;
    let mut keys = vec![first];
    for i in 1..n {
        keys.push(common::issue(a, &account.id, &format!("v{i}")).await);
    }
    let vouched = |k: &keyward::IssuedKey| {
        matches!(
            b.verify_cached(k.key.id.as_str(), k.secret.expose(), VerifyContext::new()),
            Some(Ok(_))
        )
    };
    let mut unvouched: Vec<usize> = (0..keys.len()).collect();
    for _round in 0..5 {
        for &i in &unvouched {
            let k = &keys[i];
            b.verify(k.key.id.as_str(), k.secret.expose(), VerifyContext::new())
                .await
                .expect("B warm");
        }
        clock.advance(time::Duration::seconds(60));
        common::time_until(LIMIT, || async {
            unvouched.iter().any(|&i| vouched(&keys[i]))
        })
        .await
        .expect("B's feed never vouched for its entries");
        unvouched.retain(|&i| !vouched(&keys[i]));
        if unvouched.is_empty() {
            return (b, counted, clock, keys);
        }
    }
    panic!("{} entries were never vouched for", unvouched.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_change_reaches_entries_the_feed_vouches_for() {
    let Some(url) = common::pg_url() else { return };
    let schema = common::schema_name();
    let store_a = common::pg_store(&url, &schema, |o| o.feed(false)).await;
    let store_b = common::pg_store(&url, &schema, |o| {
        o.poll_interval(Duration::from_millis(20))
    })
    .await;
    let a = common::service(Arc::new(store_a.clone()), None, 30);
    let (b, counted, _clock, keys) = vouched_on_b(&a, store_b.clone(), 20).await;
    let reads = counted.key_reads();
    for k in &keys {
        assert!(
            matches!(
                b.verify_cached(k.key.id.as_str(), k.secret.expose(), VerifyContext::new()),
                Some(Ok(_))
            ),
            "an unchanged key needed the store"
        );
    }
    assert_eq!(counted.key_reads(), reads, "unchanged keys were re-read");
    let k = &keys[0];
    a.deactivate_key(Actor::System, &k.key.id)
        .await
        .expect("deactivate");
    let (id, secret) = (k.key.id.as_str(), k.secret.expose());
    let d = common::time_until(LIMIT, || rejects(&b, id, secret))
        .await
        .expect("B never rejected a key its feed vouched for");
    println!("B rejected {d:?} after the revocation (entries 2 W old, vouched)");
    drop((a, b));
    store_a.close().await;
    store_b.close().await;
    common::drop_schema(&url, &schema).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_silent_feed_bounds_staleness_to_the_window() {
    let Some(url) = common::pg_url() else { return };
    let schema = common::schema_name();
    let store_a = common::pg_store(&url, &schema, |o| o.feed(false)).await;
    let store_b = common::pg_store(&url, &schema, |o| {
        o.poll_interval(Duration::from_millis(20))
    })
    .await;
    let a = common::service(Arc::new(store_a.clone()), None, 30);
    let (b, counted, clock, keys) = vouched_on_b(&a, store_b.clone(), 3).await;
    // Nothing reaches B any more: neither the change nor a catch-up.
    counted.silence();
    let k = &keys[0];
    let (id, secret) = (k.key.id.as_str(), k.secret.expose());
    a.deactivate_key(Actor::System, &k.key.id)
        .await
        .expect("deactivate");
    // B's last catch-up was at or before the clock's current time: W
    // later it must refuse.
    clock.advance(time::Duration::seconds(30));
    assert!(
        rejects(&b, id, secret).await,
        "B accepted W after its feed fell silent"
    );
    drop((a, b));
    store_a.close().await;
    store_b.close().await;
    common::drop_schema(&url, &schema).await;
}
