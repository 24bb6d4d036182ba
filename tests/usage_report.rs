//! `Keyward::usage_report` (what `GET /usage` serves): keys by volume, the
//! origin and category filters, hour and day series, cursor pages, and
//! counts current to the call (this instance's pending counts included,
//! with no background flush running).

#[path = "store_support/mod.rs"]
mod common;

use std::sync::Arc;

use keyward::{Actor, Granularity, Label, ManualClock, MemoryStore, UsageReport, VerifyContext};
use time::{Duration, macros::datetime};

#[tokio::test]
async fn keys_by_volume_with_filters_series_and_pages() {
    let clock = ManualClock::new(datetime!(2030-03-04 22:30 UTC));
    let kw = common::service(Arc::new(MemoryStore::new()), Some(clock.clone()), 30);
    let (account, a) = common::account_and_key(&kw).await;
    let b = common::issue(&kw, &account.id, "b").await;
    let c = common::issue(&kw, &account.id, "c").await;
    let (other, foreign) = common::account_and_key(&kw).await;
    let mcp = Label::new("mcp").expect("label");
    let realtime = Label::new("realtime").expect("label");
    let ctx = |origin: Option<&Label>| {
        let mut x = VerifyContext::new();
        if let Some(o) = origin {
            x = x.origin(*o).category(realtime);
        }
        x
    };
    // a: 3 api calls at 22:30; b: 5 mcp calls, 2 at 22:30 and 3 at 01:10
    // the next day, plus one wrong secret; c: 1 api call; a foreign key: 9.
    for _ in 0..3 {
        kw.verify(a.key.id.as_str(), a.secret.expose(), ctx(None))
            .await
            .expect("a");
    }
    for _ in 0..2 {
        kw.verify(b.key.id.as_str(), b.secret.expose(), ctx(Some(&mcp)))
            .await
            .expect("b");
    }
    kw.verify(c.key.id.as_str(), c.secret.expose(), ctx(None))
        .await
        .expect("c");
    for _ in 0..9 {
        kw.verify(foreign.key.id.as_str(), foreign.secret.expose(), ctx(None))
            .await
            .expect("f");
    }
    clock.advance(Duration::minutes(160));
    for _ in 0..3 {
        kw.verify(b.key.id.as_str(), b.secret.expose(), ctx(Some(&mcp)))
            .await
            .expect("b");
    }
    // A well-formed secret (another key's) is a counted failure.
    assert!(
        kw.verify(b.key.id.as_str(), c.secret.expose(), ctx(Some(&mcp)))
            .await
            .is_err()
    );

    let from = datetime!(2030-03-04 0:00 UTC);
    let to = datetime!(2030-03-06 0:00 UTC);
    // Nothing was flushed by hand: the report flushes this instance first.
    let all = kw
        .usage_report(Actor::System, &account.id, UsageReport::between(from, to))
        .await
        .expect("report");
    let ids: Vec<_> = all.items.iter().map(|g| g.id.as_str()).collect();
    assert_eq!(
        ids,
        vec![b.key.id.as_str(), a.key.id.as_str(), c.key.id.as_str()]
    );
    let bg = &all.items[0];
    assert_eq!((bg.successes, bg.failures), (5, 1));
    assert_eq!(bg.name.as_deref(), Some("b"));
    let hours: Vec<_> = bg
        .series
        .iter()
        .map(|p| (p.at, p.successes, p.failures))
        .collect();
    assert_eq!(
        hours,
        vec![
            (datetime!(2030-03-04 22:00 UTC), 2, 0),
            (datetime!(2030-03-05 1:00 UTC), 3, 1)
        ]
    );
    assert!(all.next_cursor.is_none());

    let daily = kw
        .usage_report(
            Actor::System,
            &account.id,
            UsageReport::between(from, to).granularity(Granularity::Day),
        )
        .await
        .expect("daily");
    let days: Vec<_> = daily.items[0]
        .series
        .iter()
        .map(|p| (p.at, p.successes))
        .collect();
    assert_eq!(
        days,
        vec![
            (datetime!(2030-03-04 0:00 UTC), 2),
            (datetime!(2030-03-05 0:00 UTC), 3)
        ]
    );

    let only_mcp = kw
        .usage_report(
            Actor::System,
            &account.id,
            UsageReport::between(from, to).origin(mcp),
        )
        .await
        .expect("mcp");
    assert_eq!(
        only_mcp
            .items
            .iter()
            .map(|g| g.id.as_str())
            .collect::<Vec<_>>(),
        vec![b.key.id.as_str()]
    );
    let only_api = kw
        .usage_report(
            Actor::System,
            &account.id,
            UsageReport::between(from, to).origin(Label::new("api").expect("label")),
        )
        .await
        .expect("api");
    assert_eq!(
        only_api
            .items
            .iter()
            .map(|g| g.id.as_str())
            .collect::<Vec<_>>(),
        vec![a.key.id.as_str(), c.key.id.as_str()]
    );
    let analytics = kw
        .usage_report(
            Actor::System,
            &account.id,
            UsageReport::between(from, to).category(Label::new("analytics").expect("label")),
        )
        .await
        .expect("analytics");
    assert!(analytics.items.is_empty());

    // One key a page: the pages are the full report, in order.
    let mut paged = Vec::new();
    let mut cursor = None;
    loop {
        let mut r = UsageReport::between(from, to).limit(1);
        if let Some(c) = cursor.take() {
            r = r.cursor(c);
        }
        let page = kw
            .usage_report(Actor::System, &account.id, r)
            .await
            .expect("page");
        paged.extend(page.items);
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(paged, all.items);

    // Another account's report holds only its own key.
    let theirs = kw
        .usage_report(Actor::System, &other.id, UsageReport::between(from, to))
        .await
        .expect("theirs");
    assert_eq!(theirs.items.len(), 1);
    assert_eq!(theirs.items[0].successes, 9);

    // Bad input changes nothing and says what is wrong.
    let bad = kw
        .usage_report(Actor::System, &account.id, UsageReport::between(to, from))
        .await;
    assert!(matches!(
        bad,
        Err(keyward::Error::InvalidInput { field: "from", .. })
    ));
    let bad = kw
        .usage_report(
            Actor::System,
            &account.id,
            UsageReport::between(from, to).cursor("x"),
        )
        .await;
    assert!(matches!(
        bad,
        Err(keyward::Error::InvalidInput {
            field: "cursor",
            ..
        })
    ));
}
