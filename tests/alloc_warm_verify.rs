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

#[tokio::test]
async fn warm_verify_allocates_nothing() {
    let _profiler = dhat::Profiler::builder().testing().build();
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
    let (id, secret, token) = (
        key.key.id.as_str(),
        key.secret.expose(),
        session.token.expose(),
    );
    let ctx = VerifyContext::new().client_ip("192.0.2.9".parse().expect("ip"));
    // Warm up: the first verification of the hour creates the usage slot.
    f.kw.verify(id, secret, ctx).await.expect("warm");
    f.kw.verify_session(token, ctx).await.expect("warm");

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
    let wrong =
        f.kw.issue_key(Actor::System, &f.account.id, NewKey::new("other"))
            .await
            .expect("issued")
            .secret;
    let before_wrong = dhat::HeapStats::get();
    for _ in 0..1000 {
        assert!(ready(f.kw.verify(id, wrong.expose(), ctx)).is_err());
        assert!(ready(f.kw.verify(id, "kw_sk_malformed", ctx)).is_err());
    }
    let after_wrong = dhat::HeapStats::get();

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
        after_wrong.total_blocks - before_wrong.total_blocks,
        0,
        "rejections allocated"
    );
}
