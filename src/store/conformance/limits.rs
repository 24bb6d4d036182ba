//! Rate limits and credits (`owner_limits`).

use super::fixtures::{
    app, app_id, at, event, events_of, insert_account, insert_app, insert_key, key_id, plain_key,
};
use crate::app::AppStatus;
use crate::audit::AuditAction;
use crate::context::Label;
use crate::credits::{Credits, Refill, RefillInterval};
use crate::ratelimit::{LimitOwner, Limits, RateLimit};
use crate::store::{AppExpectation, KeyStore, StoredLimits};

/// Limits round-trip every field per owner (a key, an application, an
/// account: owners of different kinds never mix); a write replaces them
/// and appends its event; empty limits remove the row; absent owners are
/// left out of the answer.
pub async fn limits_round_trip_replace_and_remove(store: &dyn KeyStore) {
    let a = insert_account(store).await;
    let key = LimitOwner::Key(key_id());
    let app = LimitOwner::App(app_id());
    let account = LimitOwner::Account(a.id);
    let limits = Limits::new()
        .ratelimit(RateLimit::new(Label::from_static("requests"), 100, 60_000).burst(10))
        .ratelimit(RateLimit::new(Label::from_static("expensive"), 5, 1000).manual())
        .credits(Credits::new(500).refill(Refill::new(RefillInterval::Monthly, 1000)));
    let ev = || event(AuditAction::KeyUpdated, a.id, None, at(1, 0));
    let events_before = events_of(store, a.id).await.len();
    let mut written = StoredLimits::new(key, limits.clone(), 1);
    written.period = 1_700_000_000;
    store.put_limits(&written, &ev()).await.expect("put");
    let only_rates = StoredLimits::new(
        account,
        Limits::new().ratelimit(limits.ratelimits[0].clone()),
        7,
    );
    store.put_limits(&only_rates, &ev()).await.expect("put");
    let got = store.get_limits(&[key, app, account]).await.expect("get");
    assert_eq!(got.len(), 2);
    assert!(got.contains(&written), "{got:?}");
    assert!(got.contains(&only_rates), "{got:?}");
    assert_eq!(events_of(store, a.id).await.len(), events_before + 2);

    let replaced = StoredLimits::new(key, Limits::new().credits(Credits::new(3)), 2);
    store.put_limits(&replaced, &ev()).await.expect("replace");
    assert_eq!(store.get_limits(&[key]).await.expect("get"), vec![replaced]);
    store
        .put_limits(&StoredLimits::new(key, Limits::new(), 3), &ev())
        .await
        .expect("remove");
    assert!(store.get_limits(&[key]).await.expect("get").is_empty());
    assert!(store.get_limits(&[]).await.expect("get").is_empty());
}

/// Spending subtracts and never goes below zero; a refill applies once
/// per later period, before the spend; owners without credits answer
/// `None` and change nothing.
pub async fn spend_credits_subtracts_and_refills_once_per_period(store: &dyn KeyStore) {
    let a = insert_account(store).await;
    let ev = || event(AuditAction::AccountUpdated, a.id, None, at(1, 0));
    let owner = LimitOwner::Account(a.id);
    let mut s = StoredLimits::new(
        owner,
        Limits::new().credits(Credits::new(10).refill(Refill::new(RefillInterval::Daily, 7))),
        1,
    );
    s.period = 86_400;
    store.put_limits(&s, &ev()).await.expect("put");
    assert_eq!(
        store.spend_credits(&owner, 4, 86_400).await.expect("spend"),
        Some(6)
    );
    assert_eq!(
        store.spend_credits(&owner, 0, 86_400).await.expect("read"),
        Some(6)
    );
    assert_eq!(
        store.spend_credits(&owner, 9, 86_400).await.expect("spend"),
        Some(0)
    );
    // The next day: 7, then the spend.
    assert_eq!(
        store
            .spend_credits(&owner, 2, 172_800)
            .await
            .expect("spend"),
        Some(5)
    );
    assert_eq!(
        store
            .spend_credits(&owner, 1, 172_800)
            .await
            .expect("spend"),
        Some(4)
    );
    // A stale period (an instance behind) refills nothing.
    assert_eq!(
        store.spend_credits(&owner, 1, 86_400).await.expect("spend"),
        Some(3)
    );
    let got = store.get_limits(&[owner]).await.expect("get");
    assert_eq!((got[0].remaining, got[0].period), (3, 172_800));
    // Credits as set stay as set.
    assert_eq!(got[0].limits.credits.map(|c| c.remaining), Some(10));

    let rates_only = LimitOwner::Key(key_id());
    let r = StoredLimits::new(
        rates_only,
        Limits::new().ratelimit(RateLimit::new(Label::from_static("requests"), 1, 1000)),
        1,
    );
    store.put_limits(&r, &ev()).await.expect("put");
    assert_eq!(
        store.spend_credits(&rates_only, 1, 0).await.expect("spend"),
        None
    );
    let absent = LimitOwner::Key(key_id());
    assert_eq!(
        store.spend_credits(&absent, 1, 0).await.expect("spend"),
        None
    );
}

/// `get_key_for_verify` answers what `get_key`, `get_app` and `get_limits`
/// answer together: the key, its application's status (`None` outside
/// any, `Some(false)` once switched off) and the limits of the key, its
/// application and its account (none for owners without; never another
/// key's or account's); an absent key is `Ok(None)`.
pub async fn key_for_verify_joins_app_status_and_limits(store: &dyn KeyStore) {
    let a = insert_account(store).await;
    let other = insert_account(store).await;
    let x = app(a.id, "Web", at(1, 0));
    insert_app(store, &x).await;
    let mut k = plain_key(a.id, "in app", at(2, 0));
    k.key.app_id = Some(x.id);
    insert_key(store, &k).await;
    let bare = plain_key(a.id, "bare", at(2, 1));
    insert_key(store, &bare).await;
    let ev = || event(AuditAction::KeyUpdated, a.id, None, at(3, 0));

    let got = store
        .get_key_for_verify(&bare.key.id)
        .await
        .expect("read")
        .expect("present");
    assert_eq!((got.stored, got.app_active), (bare.clone(), None));
    assert!(got.limits.is_empty(), "{:?}", got.limits);

    let rates =
        |n| Limits::new().ratelimit(RateLimit::new(Label::from_static("requests"), n, 1000));
    let own = StoredLimits::new(LimitOwner::Key(k.key.id), rates(1), 1);
    let of_app = StoredLimits::new(
        LimitOwner::App(x.id),
        Limits::new().credits(Credits::new(9).refill(Refill::new(RefillInterval::Daily, 9))),
        2,
    );
    let of_account = StoredLimits::new(LimitOwner::Account(a.id), rates(3), 3);
    let foreign = [
        StoredLimits::new(LimitOwner::Key(bare.key.id), rates(4), 4),
        StoredLimits::new(LimitOwner::Account(other.id), rates(5), 5),
        StoredLimits::new(LimitOwner::App(app_id()), rates(6), 6),
    ];
    for l in [&own, &of_app, &of_account].into_iter().chain(&foreign) {
        store.put_limits(l, &ev()).await.expect("put");
    }
    let got = store
        .get_key_for_verify(&k.key.id)
        .await
        .expect("read")
        .expect("present");
    assert_eq!((&got.stored, got.app_active), (&k, Some(true)));
    let mut limits = got.limits.clone();
    limits.sort_by_key(|l| l.version);
    assert_eq!(limits, vec![own, of_app, of_account.clone()]);

    let mut off = x.clone();
    off.status = AppStatus::Inactive;
    let expected = AppExpectation::new(AppStatus::Active, vec![(k.key.id, k.version)]);
    store
        .update_app(
            &off,
            &expected,
            &event(AuditAction::AppDeactivated, a.id, None, at(4, 0)),
        )
        .await
        .expect("switched off");
    let got = store
        .get_key_for_verify(&k.key.id)
        .await
        .expect("read")
        .expect("present");
    assert_eq!(got.app_active, Some(false));
    assert_eq!(got.stored.version, k.version + 1);
    let got = store
        .get_key_for_verify(&bare.key.id)
        .await
        .expect("read")
        .expect("present");
    let mut limits = got.limits;
    limits.sort_by_key(|l| l.version);
    assert_eq!(limits, vec![of_account, foreign[0].clone()]);
    assert!(
        store
            .get_key_for_verify(&key_id())
            .await
            .expect("read")
            .is_none()
    );
}

/// `get_keys_for_verify` returns the keys that exist among the ids, each
/// exactly as `get_key_for_verify` does (application status, limits of
/// every owner), and leaves absent ids out, also past one chunk of ids.
pub async fn keys_for_verify_reads_many_as_one_each(store: &dyn KeyStore) {
    let a = insert_account(store).await;
    let b = insert_account(store).await;
    let on = app(a.id, "On", at(1, 0));
    insert_app(store, &on).await;
    let off_app = app(a.id, "Off", at(1, 1));
    insert_app(store, &off_app).await;
    let mut in_app = plain_key(a.id, "in app", at(2, 0));
    in_app.key.app_id = Some(on.id);
    insert_key(store, &in_app).await;
    let mut in_off_app = plain_key(a.id, "in off app", at(2, 1));
    in_off_app.key.app_id = Some(off_app.id);
    insert_key(store, &in_off_app).await;
    let bare = plain_key(b.id, "bare", at(2, 2));
    insert_key(store, &bare).await;
    let ev = || event(AuditAction::KeyUpdated, a.id, None, at(3, 0));
    let rates =
        |n| Limits::new().ratelimit(RateLimit::new(Label::from_static("requests"), n, 1000));
    for l in [
        StoredLimits::new(LimitOwner::Key(in_app.key.id), rates(1), 1),
        StoredLimits::new(LimitOwner::App(on.id), rates(2), 2),
        StoredLimits::new(LimitOwner::Account(a.id), rates(3), 3),
        StoredLimits::new(LimitOwner::Key(bare.key.id), rates(4), 4),
    ] {
        store.put_limits(&l, &ev()).await.expect("put");
    }
    let mut switched = off_app.clone();
    switched.status = AppStatus::Inactive;
    let expected = AppExpectation::new(
        AppStatus::Active,
        vec![(in_off_app.key.id, in_off_app.version)],
    );
    store
        .update_app(
            &switched,
            &expected,
            &event(AuditAction::AppDeactivated, a.id, None, at(4, 0)),
        )
        .await
        .expect("switched off");

    let present = [in_app.key.id, in_off_app.key.id, bare.key.id];
    let mut ids: Vec<_> = (0..600).map(|_| key_id()).collect();
    ids.insert(0, present[0]);
    ids.insert(300, present[1]);
    ids.push(present[2]);
    let sorted = |mut v: Vec<crate::store::KeyForVerify>| {
        v.sort_by_key(|k| k.stored.key.id);
        for k in &mut v {
            k.limits.sort_by_key(|l| l.version);
        }
        v
    };
    let got = sorted(store.get_keys_for_verify(&ids).await.expect("read"));
    let mut each = Vec::new();
    for id in &present {
        each.push(
            store
                .get_key_for_verify(id)
                .await
                .expect("read")
                .expect("present"),
        );
    }
    let each = sorted(each);
    assert_eq!(got, each);
    let of = |id| got.iter().find(|k| k.stored.key.id == id).expect("read");
    assert_eq!(of(in_app.key.id).app_active, Some(true));
    assert_eq!(of(in_app.key.id).limits.len(), 3);
    assert_eq!(of(in_off_app.key.id).app_active, Some(false));
    assert_eq!(of(in_off_app.key.id).limits.len(), 1);
    assert_eq!(of(bare.key.id).app_active, None);
    assert_eq!(of(bare.key.id).limits.len(), 1);
    assert!(
        store
            .get_keys_for_verify(&ids[1..300])
            .await
            .expect("read")
            .is_empty()
    );
    assert!(
        store
            .get_keys_for_verify(&[])
            .await
            .expect("read")
            .is_empty()
    );
}
