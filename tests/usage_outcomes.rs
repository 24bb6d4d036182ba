//! Usage outcomes (issue 16): a request with a valid credential refused by
//! a rate limit counts as `rate_limited`, one refused because the credits
//! are spent as `usage_exceeded`, each once and never as a success or a
//! failure; warm, cold and session verifications alike, through the flush,
//! the per-key usage and the usage report.

mod common;

use common::{around_now, fixture, perms};
use keyward::store::UsageRecord;
use keyward::{
    Actor, Credits, Error, IssuedKey, Label, LimitOwner, Limits, NewKey, RateLimit, UsageReport,
    VerifyContext,
};

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

/// Successes, failures, rate limited and usage exceeded of `k`, flushed.
async fn outcomes(f: &common::Fixture, k: &IssuedKey) -> [u64; 4] {
    f.kw.flush().await.expect("flush");
    let rows: Vec<UsageRecord> =
        f.kw.usage(
            Actor::System,
            &f.account.id,
            around_now(&f.kw).key(k.key.id),
        )
        .await
        .expect("usage");
    let sum = |g: fn(&UsageRecord) -> u64| rows.iter().map(g).sum::<u64>();
    [
        sum(|r| r.successes),
        sum(|r| r.failures),
        sum(|r| r.rate_limited),
        sum(|r| r.usage_exceeded),
    ]
}

#[tokio::test]
async fn refusals_by_a_limit_or_spent_credits_count_apart_never_as_successes() {
    let f = fixture().await;
    let limited = key(&f, "limited").await;
    let credited = key(&f, "credited").await;
    f.kw.set_limits(
        Actor::System,
        &LimitOwner::Key(limited.key.id),
        Limits::new().ratelimit(RateLimit::new(Label::from_static("requests"), 5, 60_000)),
    )
    .await
    .expect("limits");
    f.kw.set_limits(
        Actor::System,
        &LimitOwner::Key(credited.key.id),
        Limits::new().credits(Credits::new(3)),
    )
    .await
    .expect("credits");
    let ctx = VerifyContext::new();
    // The first call is cold (argon2), the rest warm.
    for _ in 0..8 {
        let _ =
            f.kw.verify(limited.key.id.as_str(), limited.secret.expose(), ctx)
                .await;
    }
    // Warm from the caches alone (the HTTP adapters' path).
    let cached =
        f.kw.verify_cached(limited.key.id.as_str(), limited.secret.expose(), ctx);
    assert!(matches!(cached, Some(Err(Error::RateLimited { .. }))));
    // A wrong secret stays a failure, whatever the limits say.
    let wrong =
        f.kw.verify(limited.key.id.as_str(), f.admin.secret.expose(), ctx)
            .await;
    assert!(wrong.is_err());
    // A session of the credited key (logging in spends one credit)...
    let session =
        f.kw.login(credited.key.id.as_str(), credited.secret.expose(), ctx)
            .await
            .expect("login");
    for _ in 0..4 {
        let _ =
            f.kw.verify(credited.key.id.as_str(), credited.secret.expose(), ctx)
                .await;
    }
    // ...is refused the same way once they are spent, and counted so.
    let r = f.kw.verify_session(session.token.expose(), ctx).await;
    assert!(matches!(r, Err(Error::UsageExceeded)), "{r:?}");

    let [s, fail, rl, ue] = outcomes(&f, &limited).await;
    assert_eq!((s, rl, ue), (5, 4, 0), "limited key");
    assert_eq!(fail, 1, "the wrong secret is the one failure");
    let [s, fail, rl, ue] = outcomes(&f, &credited).await;
    assert_eq!((s, fail, rl), (3, 0, 0), "credited key");
    assert_eq!(ue, 3, "credited key");

    // The usage report carries them, in totals and in the series.
    let report =
        f.kw.usage_report(
            Actor::System,
            &f.account.id,
            UsageReport::between(
                f.kw.now() - time::Duration::hours(1),
                f.kw.now() + time::Duration::hours(1),
            ),
        )
        .await
        .expect("report");
    let g = report
        .items
        .iter()
        .find(|g| g.id == limited.key.id.as_str())
        .expect("limited key in the report");
    assert_eq!((g.successes, g.rate_limited, g.usage_exceeded), (5, 4, 0));
    let points: (u64, u64) = g
        .series
        .iter()
        .fold((0, 0), |a, p| (a.0 + p.rate_limited, a.1 + p.successes));
    assert_eq!(points, (4, 5));
    let g = report
        .items
        .iter()
        .find(|g| g.id == credited.key.id.as_str())
        .expect("credited key in the report");
    assert_eq!(g.usage_exceeded, ue);
}

#[tokio::test]
async fn a_key_refused_only_by_its_limit_still_ranks_in_the_report() {
    let f = fixture().await;
    let k = key(&f, "always refused").await;
    f.kw.set_limits(
        Actor::System,
        &LimitOwner::Key(k.key.id),
        Limits::new().credits(Credits::new(0)),
    )
    .await
    .expect("credits");
    for _ in 0..3 {
        let r =
            f.kw.verify(k.key.id.as_str(), k.secret.expose(), VerifyContext::new())
                .await;
        assert!(matches!(r, Err(Error::UsageExceeded)), "{r:?}");
    }
    assert_eq!(outcomes(&f, &k).await, [0, 0, 0, 3]);
    let report =
        f.kw.usage_report(
            Actor::System,
            &f.account.id,
            UsageReport::between(
                f.kw.now() - time::Duration::hours(1),
                f.kw.now() + time::Duration::hours(1),
            ),
        )
        .await
        .expect("report");
    let g = report
        .items
        .iter()
        .find(|g| g.id == k.key.id.as_str())
        .unwrap_or_else(|| panic!("a key refused by its credits is in the report: {report:?}"));
    assert_eq!((g.successes, g.failures, g.usage_exceeded), (0, 0, 3));
    // It was never used.
    let stored = f.kw.get_key(Actor::System, &k.key.id).await.expect("key");
    assert_eq!(stored.last_used_at, None);
}
