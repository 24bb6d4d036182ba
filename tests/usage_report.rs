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

/// A small deterministic generator: the data differs per seed, the test is
/// reproducible.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

/// What one expected group holds: its name, successes per hour.
type Expected = std::collections::BTreeMap<
    String,
    (
        String,
        std::collections::BTreeMap<time::OffsetDateTime, u64>,
    ),
>;

/// One expected or reported group: id, name, successes, hourly series.
type Row = (String, String, u64, Vec<(time::OffsetDateTime, u64)>);

/// Every group_by over random usage (skewed over 50 keys, 6 hours, two
/// origins and categories) equals a brute-force computation from the calls
/// made: the ranking by volume then id, walked two groups a page, each
/// group's name, totals and hourly series; applications' and accounts'
/// totals are the sums of their keys'.
async fn groups_match_brute_force(store: Arc<dyn keyward::store::KeyStore>) {
    use keyward::{NewAccount, NewApp, UsageGroupKind};
    let clock = ManualClock::new(datetime!(2030-03-04 18:10 UTC));
    let kw = common::service(store, Some(clock.clone()), 30);
    let parent = kw
        .create_account(Actor::System, NewAccount::new("Parent Co", common::perms()))
        .await
        .expect("parent");
    let mut children = Vec::new();
    for name in ["Customer One", "Customer Two"] {
        children.push(
            kw.create_account(
                Actor::System,
                NewAccount::new(name, common::perms()).parent(parent.id),
            )
            .await
            .expect("child"),
        );
    }
    let mut apps = Vec::new();
    for title in ["Exporter", "Realtime feed"] {
        apps.push(
            kw.create_app(Actor::System, &parent.id, NewApp::new(title))
                .await
                .expect("app"),
        );
    }
    // (key, its account, its application)
    let mut keys = Vec::new();
    for i in 0..40 {
        let app = match i % 4 {
            0 => Some(apps[0].id),
            1 => Some(apps[1].id),
            _ => None,
        };
        let mut new = keyward::NewKey::new(format!("p{i}"))
            .permissions(keyward::PermissionSet::parse(["readApplications"]).expect("p"));
        if let Some(a) = app {
            new = new.app(a);
        }
        let k = kw
            .issue_key(Actor::System, &parent.id, new)
            .await
            .expect("issue");
        keys.push((k, parent.id, app));
    }
    for c in &children {
        for i in 0..5 {
            let k = common::issue(&kw, &c.id, &format!("c{i}")).await;
            keys.push((k, c.id, None));
        }
    }
    let origins = [Label::new("api").expect("l"), Label::new("mcp").expect("l")];
    let categories = [
        Label::new("default").expect("l"),
        Label::new("realtime").expect("l"),
    ];
    // (key index, hour, origin, category)
    let mut calls: Vec<(usize, time::OffsetDateTime, usize, usize)> = Vec::new();
    let mut rng = Lcg(0x0013_5eed);
    for _ in 0..6 {
        for _ in 0..120 {
            let bound = rng.below(keys.len() as u64) + 1;
            let i = rng.below(bound) as usize;
            let (o, c) = (rng.below(2) as usize, rng.below(2) as usize);
            let k = &keys[i].0;
            kw.verify(
                k.key.id.as_str(),
                k.secret.expose(),
                VerifyContext::new()
                    .origin(origins[o])
                    .category(categories[c]),
            )
            .await
            .expect("verify");
            let now = kw.now();
            let hour = now
                .replace_minute(0)
                .expect("h")
                .replace_second(0)
                .expect("s")
                .replace_nanosecond(0)
                .expect("n");
            calls.push((i, hour, o, c));
        }
        clock.advance(Duration::minutes(60));
        // Half the hours are flushed before the report, half are pending.
        if rng.below(2) == 0 {
            kw.flush().await.expect("flush");
        }
    }
    let from = datetime!(2030-03-04 0:00 UTC);
    let to = datetime!(2030-03-06 0:00 UTC);
    let mid = (
        datetime!(2030-03-04 19:00 UTC),
        datetime!(2030-03-04 22:00 UTC),
    );
    for kind in [
        UsageGroupKind::Key,
        UsageGroupKind::App,
        UsageGroupKind::Account,
    ] {
        for (o, c) in [
            (None, None),
            (Some(1), None),
            (None, Some(1)),
            (Some(0), Some(0)),
        ] {
            for (f, t) in [(from, to), mid] {
                let mut want: Expected = Default::default();
                for &(i, hour, co, cc) in &calls {
                    if o.is_some_and(|o| o != co)
                        || c.is_some_and(|c| c != cc)
                        || hour < f
                        || hour >= t
                    {
                        continue;
                    }
                    let (k, account, app) = &keys[i];
                    let (id, name) = match kind {
                        UsageGroupKind::Key if *account != parent.id => continue,
                        UsageGroupKind::Key => (k.key.id.to_string(), k.key.name.clone()),
                        UsageGroupKind::App => match app {
                            Some(a) => {
                                let x = apps.iter().find(|x| x.id == *a).expect("app");
                                (a.to_string(), x.title.clone())
                            }
                            None => continue,
                        },
                        _ => {
                            let name = if *account == parent.id {
                                parent.name.clone()
                            } else {
                                children
                                    .iter()
                                    .find(|x| x.id == *account)
                                    .expect("child")
                                    .name
                                    .clone()
                            };
                            (account.to_string(), name)
                        }
                    };
                    *want
                        .entry(id)
                        .or_insert((name, Default::default()))
                        .1
                        .entry(hour)
                        .or_default() += 1;
                }
                let mut ranked: Vec<Row> = want
                    .into_iter()
                    .map(|(id, (name, hours))| {
                        let total = hours.values().sum();
                        (id, name, total, hours.into_iter().collect())
                    })
                    .collect();
                ranked.sort_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(&b.0)));
                let mut got = Vec::new();
                let mut cursor = None;
                loop {
                    let mut r = UsageReport::between(f, t).group_by(kind).limit(2);
                    r.origin = o.map(|o| origins[o]);
                    r.category = c.map(|c| categories[c]);
                    r.cursor = cursor.take();
                    let page = kw
                        .usage_report(Actor::System, &parent.id, r)
                        .await
                        .expect("report");
                    for g in page.items {
                        assert_eq!(g.failures, 0);
                        let series: Vec<_> = g.series.iter().map(|p| (p.at, p.successes)).collect();
                        got.push((g.id, g.name.expect("named"), g.successes, series));
                    }
                    match page.next_cursor {
                        Some(c) => cursor = Some(c),
                        None => break,
                    }
                }
                assert_eq!(
                    got, ranked,
                    "{kind:?} origin {o:?} category {c:?} [{f}, {t})"
                );
            }
        }
    }
    // The sums, said once more in the dashboard's terms: every application's
    // total is the sum of its keys', every account's the sum of its keys'.
    let all = |kind| {
        let kw = kw.clone();
        async move {
            kw.usage_report(
                Actor::System,
                &parent.id,
                UsageReport::between(from, to).group_by(kind).limit(100),
            )
            .await
            .expect("report")
            .items
        }
    };
    let by_key = all(UsageGroupKind::Key).await;
    let key_total = |id: &keyward::KeyId| {
        by_key
            .iter()
            .find(|g| g.id == id.as_str())
            .map_or(0, |g| g.successes)
    };
    for g in all(UsageGroupKind::App).await {
        let sum: u64 = keys
            .iter()
            .filter(|(_, _, a)| a.is_some_and(|a| a.as_str() == g.id))
            .map(|(k, _, _)| key_total(&k.key.id))
            .sum();
        assert_eq!(g.successes, sum, "application {}", g.id);
    }
    let by_account = all(UsageGroupKind::Account).await;
    assert_eq!(by_account.len(), 3, "the parent and its two customers");
    let parent_sum: u64 = keys
        .iter()
        .filter(|(_, a, _)| *a == parent.id)
        .map(|(k, _, _)| key_total(&k.key.id))
        .sum();
    let own = by_account
        .iter()
        .find(|g| g.id == parent.id.as_str())
        .expect("own");
    assert_eq!(own.successes, parent_sum);
    for c in &children {
        let theirs = kw
            .usage_report(
                Actor::System,
                &c.id,
                UsageReport::between(from, to).limit(100),
            )
            .await
            .expect("child's keys");
        let sum: u64 = theirs.items.iter().map(|g| g.successes).sum();
        let row = by_account
            .iter()
            .find(|g| g.id == c.id.as_str())
            .expect("child row");
        assert_eq!(row.successes, sum, "customer {}", c.name);
    }
}

#[tokio::test]
async fn groups_match_brute_force_in_memory() {
    groups_match_brute_force(Arc::new(MemoryStore::new())).await;
}

#[cfg(feature = "sqlite")]
#[tokio::test]
async fn groups_match_brute_force_on_sqlite() {
    let store = keyward::store::SqliteStore::connect("sqlite::memory:")
        .await
        .expect("sqlite");
    groups_match_brute_force(Arc::new(store)).await;
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn groups_match_brute_force_on_postgres() {
    let Some(url) = common::pg_url() else {
        return;
    };
    let schema = common::schema_name();
    let store = common::pg_store(&url, &schema, |o| o).await;
    groups_match_brute_force(Arc::new(store)).await;
    common::drop_schema(&url, &schema).await;
}
