//! Usage counts.

use time::Duration;

use super::fixtures::{account_id, at, insert_account, insert_key, plain_key};
use crate::store::{KeyStore, UsageQuery, UsageRecord};

fn hour(h: i64) -> time::OffsetDateTime {
    time::macros::datetime!(2030-01-02 00:00 UTC) + Duration::hours(h)
}

fn rec(key: &crate::store::StoredKey, origin: &str, category: &str, h: i64) -> UsageRecord {
    UsageRecord {
        key_id: key.key.id,
        account_id: key.key.account_id,
        origin: origin.into(),
        category: category.into(),
        hour: hour(h),
        successes: 0,
        failures: 0,
        rate_limited: 0,
        usage_exceeded: 0,
        last_used_at: None,
    }
}

fn all(account: crate::id::AccountId) -> UsageQuery {
    UsageQuery {
        account_id: account,
        key_id: None,
        origin: None,
        from: hour(-1000),
        to: hour(1000),
    }
}

/// Counts of the same key, origin, category and hour add up (across
/// batches and within one), each outcome apart (successes, failures, rate
/// limited, usage exceeded); `last_used_at` of the row and of the key only
/// move forward.
pub async fn record_usage_sums_and_advances_last_used(store: &dyn KeyStore) {
    let a = insert_account(store).await;
    let k = plain_key(a.id, "k", at(1, 0));
    insert_key(store, &k).await;
    let used = hour(3) + Duration::minutes(5) + Duration::microseconds(17);
    let first = UsageRecord {
        successes: 3,
        failures: 1,
        rate_limited: 2,
        usage_exceeded: 0,
        last_used_at: Some(used),
        ..rec(&k, "api", "default", 3)
    };
    store
        .record_usage(std::slice::from_ref(&first))
        .await
        .expect("record_usage");
    assert_eq!(
        store
            .get_key(&k.key.id)
            .await
            .expect("get")
            .map(|s| s.key.last_used_at),
        Some(Some(used))
    );
    let later = used + Duration::minutes(1);
    let earlier = used - Duration::minutes(1);
    let batch = [
        UsageRecord {
            successes: 2,
            failures: 0,
            last_used_at: Some(earlier),
            ..rec(&k, "api", "default", 3)
        },
        UsageRecord {
            successes: 1,
            failures: 4,
            rate_limited: 5,
            usage_exceeded: 7,
            last_used_at: Some(later),
            ..rec(&k, "api", "default", 3)
        },
        UsageRecord {
            successes: 0,
            failures: 2,
            usage_exceeded: 1,
            last_used_at: None,
            ..rec(&k, "mcp", "default", 3)
        },
    ];
    store.record_usage(&batch).await.expect("record_usage");
    store.record_usage(&[]).await.expect("empty batch");
    let rows = store.usage(&all(a.id)).await.expect("usage");
    assert_eq!(rows.len(), 2);
    assert_eq!(
        rows[0],
        UsageRecord {
            successes: 6,
            failures: 5,
            rate_limited: 7,
            usage_exceeded: 7,
            last_used_at: Some(later),
            ..rec(&k, "api", "default", 3)
        }
    );
    assert_eq!(
        rows[1],
        UsageRecord {
            successes: 0,
            failures: 2,
            usage_exceeded: 1,
            last_used_at: None,
            ..rec(&k, "mcp", "default", 3)
        }
    );
    let key = store
        .get_key(&k.key.id)
        .await
        .expect("get")
        .expect("present");
    assert_eq!(key.key.last_used_at, Some(later));
    assert_eq!(
        key.version, k.version,
        "usage must not bump the key's version"
    );
    // Older usage never moves last_used_at back.
    let old = UsageRecord {
        successes: 1,
        last_used_at: Some(hour(1)),
        ..rec(&k, "api", "default", 1)
    };
    store.record_usage(&[old]).await.expect("record_usage");
    let key = store
        .get_key(&k.key.id)
        .await
        .expect("get")
        .expect("present");
    assert_eq!(key.key.last_used_at, Some(later));
}

/// `usage` filters by account, key, origin and the half-open hour range
/// `[from, to)`, ordered by hour, key, origin, category.
pub async fn usage_filters_by_key_origin_and_time(store: &dyn KeyStore) {
    let a = insert_account(store).await;
    let k1 = plain_key(a.id, "one", at(1, 0));
    let k2 = plain_key(a.id, "two", at(1, 0));
    insert_key(store, &k1).await;
    insert_key(store, &k2).await;
    let one = |r: UsageRecord| UsageRecord { successes: 1, ..r };
    let batch = vec![
        one(rec(&k1, "api", "default", 1)),
        one(rec(&k1, "api", "analytics", 1)),
        one(rec(&k1, "mcp", "default", 2)),
        one(rec(&k2, "api", "default", 2)),
        one(rec(&k2, "api", "default", 5)),
        one(UsageRecord {
            account_id: account_id(),
            ..rec(&k2, "api", "default", 9)
        }),
    ];
    store.record_usage(&batch).await.expect("record_usage");
    let rows = store.usage(&all(a.id)).await.expect("usage");
    let mut expected: Vec<UsageRecord> = batch[..5].to_vec();
    expected.sort_by(|x, y| {
        (x.hour, x.key_id, &x.origin, &x.category).cmp(&(y.hour, y.key_id, &y.origin, &y.category))
    });
    assert_eq!(rows, expected);

    let q = UsageQuery {
        key_id: Some(k1.key.id),
        ..all(a.id)
    };
    assert_eq!(store.usage(&q).await.expect("usage").len(), 3);
    let q = UsageQuery {
        origin: Some("mcp".into()),
        ..all(a.id)
    };
    assert_eq!(
        store.usage(&q).await.expect("usage"),
        vec![batch[2].clone()]
    );
    let q = UsageQuery {
        key_id: Some(k2.key.id),
        origin: Some("api".into()),
        ..all(a.id)
    };
    assert_eq!(store.usage(&q).await.expect("usage").len(), 2);
    let q = UsageQuery {
        from: hour(2),
        to: hour(5),
        ..all(a.id)
    };
    let rows = store.usage(&q).await.expect("usage");
    assert_eq!(rows.len(), 2, "to is exclusive, from inclusive");
    assert!(rows.iter().all(|r| r.hour == hour(2)));
    let q = UsageQuery {
        from: hour(6),
        to: hour(6),
        ..all(a.id)
    };
    assert!(store.usage(&q).await.expect("usage").is_empty());
}
