//! Warm verification allocates nothing on the heap: counted (not timed)
//! with dhat's global allocator in a test binary of its own.

mod common;

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use common::fixture;
use keyward::{Actor, NewKey, VerifyContext};

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

/// Polls a future that must complete without waiting (a warm verify).
fn ready<F: Future>(f: F) -> F::Output {
    let mut cx = Context::from_waker(Waker::noop());
    match pin!(f).poll(&mut cx) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("a warm verification must not wait"),
    }
}

async fn setup() -> (
    common::Fixture,
    keyward::IssuedKey,
    keyward::LoginSession,
    keyward::Secret,
) {
    let f = fixture().await;
    let key =
        f.kw.issue_key(Actor::System, &f.account.id, NewKey::new("k"))
            .await
            .expect("issued");
    let session =
        f.kw.login(
            key.key.id.as_str(),
            key.secret.expose(),
            VerifyContext::new(),
        )
        .await
        .expect("login");
    let wrong =
        f.kw.issue_key(Actor::System, &f.account.id, NewKey::new("other"))
            .await
            .expect("issued")
            .secret;
    (f, key, session, wrong)
}

#[test]
fn warm_verify_allocates_nothing() {
    let _profiler = dhat::Profiler::builder().testing().build();
    // Set up on a runtime, then shut it down (joining its threads) so that
    // only the measured calls run while allocations are counted.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (f, key, session, wrong) = rt.block_on(setup());
    let limited = rt.block_on(async {
        let k =
            f.kw.issue_key(Actor::System, &f.account.id, NewKey::new("limited"))
                .await
                .expect("issued");
        let limits = keyward::Limits::new()
            .ratelimit(keyward::RateLimit::new(
                keyward::Label::from_static("requests"),
                1_000_000,
                1000,
            ))
            .credits(keyward::Credits::new(1_000_000));
        f.kw.set_limits(Actor::System, &keyward::LimitOwner::Key(k.key.id), limits)
            .await
            .expect("limits");
        k
    });
    drop(rt);
    let (id, secret, token) = (
        key.key.id.as_str(),
        key.secret.expose(),
        session.token.expose(),
    );
    let ctx = VerifyContext::new().client_ip("192.0.2.9".parse().expect("ip"));
    // Warm up: the first verification of the hour creates the usage slot.
    ready(f.kw.verify(id, secret, ctx)).expect("warm");
    ready(f.kw.verify_session(token, ctx)).expect("warm");
    ready(f.kw.verify(limited.key.id.as_str(), limited.secret.expose(), ctx)).expect("warm");

    let before = dhat::HeapStats::get();
    for _ in 0..1000 {
        let p = ready(f.kw.verify(id, secret, ctx)).expect("verifies");
        assert_eq!(p.key_id(), &key.key.id);
        drop(p);
    }
    let keys = dhat::HeapStats::get();
    for _ in 0..1000 {
        ready(f.kw.verify_session(token, ctx)).expect("verifies");
    }
    let sessions = dhat::HeapStats::get();
    // Wrong secrets for a warm key and malformed input allocate nothing too.
    for _ in 0..1000 {
        assert!(ready(f.kw.verify(id, wrong.expose(), ctx)).is_err());
        assert!(ready(f.kw.verify(id, "kw_sk_malformed", ctx)).is_err());
    }
    let after_wrong = dhat::HeapStats::get();
    // A key with an auto-applied rate limit and credits: metering
    // allocates nothing either.
    for _ in 0..1000 {
        ready(f.kw.verify(limited.key.id.as_str(), limited.secret.expose(), ctx))
            .expect("admitted");
    }
    let after_limited = dhat::HeapStats::get();
    assert_eq!(
        after_limited.total_blocks - after_wrong.total_blocks,
        0,
        "metered verify allocated"
    );

    assert_eq!(
        keys.total_blocks - before.total_blocks,
        0,
        "warm key verify allocated"
    );
    assert_eq!(
        sessions.total_blocks - keys.total_blocks,
        0,
        "warm session verify allocated"
    );
    assert_eq!(
        after_wrong.total_blocks - sessions.total_blocks,
        0,
        "rejections allocated"
    );
}
