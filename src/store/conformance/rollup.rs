//! The usage rollup: per key, application and account, checked against a
//! brute-force computation over seeded random usage.

use std::collections::BTreeMap;

use time::{Duration, OffsetDateTime};

use super::fixtures::{account, app, at, event, insert_app, insert_key, plain_key};
use crate::audit::AuditAction;
use crate::id::AccountId;
use crate::store::{
    GroupTotal, KeyStore, RollupRow, RollupScope, StoredKey, UsageGroupKind, UsageRecord,
};

fn hour(h: i64) -> OffsetDateTime {
    time::macros::datetime!(2030-01-02 00:00 UTC) + Duration::hours(h)
}

/// A small deterministic generator (the data differs per seed, the test is
/// reproducible).
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

/// A recorded count, with the groups it belongs to.
struct Counted {
    rec: UsageRecord,
    app: Option<String>,
    parent: Option<AccountId>,
}

/// The rows a rollup holds for `scope` in `[from, to)`, computed from the
/// recorded counts.
fn expected_rows(
    counted: &[Counted],
    scope: &RollupScope,
    from: OffsetDateTime,
    to: OffsetDateTime,
) -> Vec<RollupRow> {
    let mut sums: BTreeMap<(String, OffsetDateTime), [u64; 4]> = BTreeMap::new();
    for c in counted {
        let r = &c.rec;
        if r.hour < from || r.hour >= to {
            continue;
        }
        if scope.origin.as_ref().is_some_and(|o| *o != r.origin)
            || scope.category.as_ref().is_some_and(|x| *x != r.category)
        {
            continue;
        }
        let group = match scope.kind {
            UsageGroupKind::Key if r.account_id == scope.account_id => r.key_id.as_str().to_owned(),
            UsageGroupKind::App if r.account_id == scope.account_id => match &c.app {
                Some(a) => a.clone(),
                None => continue,
            },
            UsageGroupKind::Account
                if r.account_id == scope.account_id || c.parent == Some(scope.account_id) =>
            {
                r.account_id.as_str().to_owned()
            }
            _ => continue,
        };
        let e = sums.entry((group, r.hour)).or_default();
        e[0] += r.successes;
        e[1] += r.failures;
        e[2] += r.rate_limited;
        e[3] += r.usage_exceeded;
    }
    sums.into_iter()
        .filter(|(_, [s, f, l, x])| s + f + l + x > 0)
        .map(|((group, hour), [s, f, l, x])| RollupRow {
            group,
            hour,
            successes: s,
            failures: f,
            rate_limited: l,
            usage_exceeded: x,
        })
        .collect()
}

/// The brute-force ranking: totals per group, by volume (every outcome)
/// descending, then group id.
fn ranked(rows: &[RollupRow]) -> Vec<GroupTotal> {
    let mut by_group: BTreeMap<String, [u64; 4]> = BTreeMap::new();
    for r in rows {
        let e = by_group.entry(r.group.clone()).or_default();
        e[0] += r.successes;
        e[1] += r.failures;
        e[2] += r.rate_limited;
        e[3] += r.usage_exceeded;
    }
    let mut out: Vec<GroupTotal> = by_group
        .into_iter()
        .filter(|(_, [s, f, l, x])| s + f + l + x > 0)
        .map(|(group, [s, f, l, x])| GroupTotal {
            group,
            successes: s,
            failures: f,
            rate_limited: l,
            usage_exceeded: x,
        })
        .collect();
    out.sort_by(|a, b| {
        let v = |t: &GroupTotal| t.successes + t.failures + t.rate_limited + t.usage_exceeded;
        v(b).cmp(&v(a)).then_with(|| a.group.cmp(&b.group))
    });
    out
}

/// Rolled-up usage of keys, applications and child accounts equals the sum
/// of what was recorded, for every origin/category filter and range: the
/// totals by volume (and their keyset pages), each hour's ranking (and its
/// pages), and each group's rows. Applications and accounts were last used
/// when their latest key was.
pub async fn usage_rollup_matches_brute_force(store: &dyn KeyStore) {
    let mut parent = account();
    parent.parent = None;
    store
        .insert_account(
            &parent,
            &event(AuditAction::AccountCreated, parent.id, None, at(0, 0)),
        )
        .await
        .expect("insert parent");
    let mut children = Vec::new();
    for _ in 0..2 {
        let mut c = account();
        c.parent = Some(parent.id);
        store
            .insert_account(
                &c,
                &event(AuditAction::AccountCreated, c.id, None, at(0, 0)),
            )
            .await
            .expect("insert child");
        children.push(c);
    }
    let apps = [
        app(parent.id, "one", at(1, 0)),
        app(parent.id, "two", at(1, 1)),
    ];
    for a in &apps {
        insert_app(store, a).await;
    }
    let mut keys: Vec<StoredKey> = Vec::new();
    for i in 0..6 {
        let mut k = plain_key(parent.id, &format!("p{i}"), at(2, i));
        k.key.app_id = match i {
            0..=2 => Some(apps[0].id),
            3 => Some(apps[1].id),
            _ => None,
        };
        insert_key(store, &k).await;
        keys.push(k);
    }
    for (n, c) in children.iter().enumerate() {
        for i in 0..2 {
            let k = plain_key(c.id, &format!("c{n}{i}"), at(3, i));
            insert_key(store, &k).await;
            keys.push(k);
        }
    }
    let mut rng = Lcg(0x5eed_0013);
    let mut counted = Vec::new();
    for _batch in 0..8 {
        let mut batch = Vec::new();
        for _ in 0..12 {
            let k = &keys[rng.below(keys.len() as u64) as usize];
            let h = rng.below(6) as i64;
            let rec = UsageRecord {
                key_id: k.key.id,
                account_id: k.key.account_id,
                origin: ["api", "mcp"][rng.below(2) as usize].into(),
                category: ["default", "realtime"][rng.below(2) as usize].into(),
                hour: hour(h),
                successes: rng.below(5),
                failures: rng.below(3),
                // Some rows count refusals by limits only: a group refused
                // by its limits still ranks by its calls.
                rate_limited: rng.below(4).saturating_sub(1),
                usage_exceeded: rng.below(3).saturating_sub(1),
                last_used_at: Some(hour(h) + Duration::minutes(rng.below(60) as i64)),
            };
            counted.push(Counted {
                app: k.key.app_id.map(|a| a.as_str().to_owned()),
                parent: (k.key.account_id != parent.id).then_some(parent.id),
                rec: rec.clone(),
            });
            batch.push(rec);
        }
        store.record_usage(&batch).await.expect("record_usage");
    }
    for a in &apps {
        let want = counted
            .iter()
            .filter(|c| c.app.as_deref() == Some(a.id.as_str()))
            .filter_map(|c| c.rec.last_used_at)
            .max();
        let got = store.get_app(&a.id).await.expect("get_app").expect("app");
        assert_eq!(got.last_used_at, want, "application {}", a.title);
    }
    for acct in std::iter::once(&parent).chain(&children) {
        let want = counted
            .iter()
            .filter(|c| c.rec.account_id == acct.id)
            .filter_map(|c| c.rec.last_used_at)
            .max();
        let got = store
            .get_account(&acct.id)
            .await
            .expect("get_account")
            .expect("account");
        assert_eq!(got.last_used_at, want, "account {}", acct.id);
    }
    let mut scopes = Vec::new();
    for kind in [
        UsageGroupKind::Key,
        UsageGroupKind::App,
        UsageGroupKind::Account,
    ] {
        for origin in [None, Some("api"), Some("mcp")] {
            for category in [None, Some("realtime")] {
                for account_id in [parent.id, children[0].id] {
                    scopes.push(RollupScope {
                        account_id,
                        kind,
                        origin: origin.map(Into::into),
                        category: category.map(Into::into),
                    });
                }
            }
        }
    }
    for scope in &scopes {
        for (from, to) in [(hour(0), hour(6)), (hour(1), hour(4))] {
            let rows = expected_rows(&counted, scope, from, to);
            let want = ranked(&rows);
            let got = store
                .usage_group_totals(scope, from, to, None, 100)
                .await
                .expect("usage_group_totals");
            assert_eq!(got, want, "totals of {scope:?} in [{from}, {to})");
            // Keyset pages of two are the whole ranking.
            let mut paged = Vec::new();
            let mut after: Option<(u64, String)> = None;
            loop {
                let page = store
                    .usage_group_totals(scope, from, to, after.as_ref(), 2)
                    .await
                    .expect("page");
                after = page.last().map(|t| (t.volume(), t.group.clone()));
                let done = page.len() < 2;
                paged.extend(page);
                if done {
                    break;
                }
            }
            assert_eq!(paged, want, "pages of {scope:?}");
            let ids: Vec<String> = want.iter().map(|t| t.group.clone()).collect();
            let got_rows = store
                .usage_rollup(scope, &ids, from, to)
                .await
                .expect("usage_rollup");
            let mut want_rows = rows.clone();
            want_rows.sort_by(|a, b| a.group.cmp(&b.group).then(a.hour.cmp(&b.hour)));
            assert_eq!(got_rows, want_rows, "rows of {scope:?}");
        }
        for h in 0..6 {
            let want = ranked(&expected_rows(&counted, scope, hour(h), hour(h + 1)));
            let got = store
                .usage_ranked(scope, hour(h), None, 100)
                .await
                .expect("usage_ranked");
            assert_eq!(got, want, "hour {h} of {scope:?}");
            if let Some(p) = want.get(1) {
                let pos = (p.volume(), p.group.clone());
                let rest = store
                    .usage_ranked(scope, hour(h), Some(&pos), 100)
                    .await
                    .expect("usage_ranked after");
                assert_eq!(rest, want[2..].to_vec(), "hour {h} after {pos:?}");
            }
        }
    }
}

/// `group_names`: key names, application titles and account names of the
/// ids asked for, in one call; ids of nothing are left out.
pub async fn group_names_of_keys_apps_and_accounts(store: &dyn KeyStore) {
    let a = super::fixtures::insert_account(store).await;
    let k = plain_key(a.id, "billing-export", at(1, 0));
    insert_key(store, &k).await;
    let ap = app(a.id, "Mobile checkout", at(2, 0));
    insert_app(store, &ap).await;
    let absent = super::fixtures::key_id().to_string();

    let keys = store
        .group_names(
            UsageGroupKind::Key,
            &[k.key.id.to_string(), absent.clone(), "not an id".into()],
        )
        .await
        .expect("group_names keys");
    assert_eq!(keys, vec![(k.key.id.to_string(), "billing-export".into())]);

    let apps = store
        .group_names(UsageGroupKind::App, &[ap.id.to_string(), absent.clone()])
        .await
        .expect("group_names apps");
    assert_eq!(apps, vec![(ap.id.to_string(), "Mobile checkout".into())]);

    let accounts = store
        .group_names(
            UsageGroupKind::Account,
            &[a.id.to_string(), k.key.id.to_string()],
        )
        .await
        .expect("group_names accounts");
    assert_eq!(accounts, vec![(a.id.to_string(), a.name.clone())]);

    assert!(
        store
            .group_names(UsageGroupKind::Key, &[])
            .await
            .expect("group_names of nothing")
            .is_empty()
    );
}
