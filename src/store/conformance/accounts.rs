//! Accounts.

use super::fixtures::{
    account, account_id, at, event, events_of, insert_account, insert_key, perms, plain_key,
    session,
};
use crate::account::{Account, AccountStatus};
use crate::audit::AuditAction;
use crate::store::{AccountQuery, KeyStore, StoreError};

/// `insert_account` then `get_account` returns every field as written.
pub async fn insert_account_round_trips(store: &dyn KeyStore) {
    let a = insert_account(store).await;
    let back = store.get_account(&a.id).await.expect("get_account");
    assert_eq!(back, Some(a.clone()));
    let mut top = account();
    top.parent = None;
    store
        .insert_account(
            &top,
            &event(AuditAction::AccountCreated, top.id, None, top.created_at),
        )
        .await
        .expect("insert_account");
    assert_eq!(store.get_account(&top.id).await.expect("get"), Some(top));
}

/// A second account with the same id is a [`StoreError::Conflict`] and
/// writes nothing (neither the account nor its event).
pub async fn insert_account_conflicts(store: &dyn KeyStore) {
    let a = insert_account(store).await;
    let mut again = a.clone();
    again.name = "Other".into();
    let r = store
        .insert_account(
            &again,
            &event(AuditAction::AccountCreated, a.id, None, a.created_at),
        )
        .await;
    assert!(matches!(r, Err(StoreError::Conflict(_))), "got {r:?}");
    assert_eq!(
        store.get_account(&a.id).await.expect("get"),
        Some(a.clone())
    );
    assert_eq!(
        events_of(store, a.id).await.len(),
        1,
        "rejected change wrote an event"
    );
}

/// Inserts a child of `parent` named `name`, created at `created_at`.
async fn child(
    store: &dyn KeyStore,
    parent: &Account,
    name: &str,
    created_at: time::OffsetDateTime,
) -> Account {
    let mut c = account();
    c.parent = Some(parent.id);
    c.name = name.into();
    c.created_at = created_at;
    store
        .insert_account(
            &c,
            &event(AuditAction::AccountCreated, c.id, None, created_at),
        )
        .await
        .expect("insert_account");
    c
}

/// `list_accounts` lists the direct children of one parent only, filters
/// by name (contains, case-insensitive) and status, orders by
/// `(created_at, id)` and pages with `after` and `limit`; the status
/// round-trips.
pub async fn list_accounts_lists_children_with_filters_and_pages(store: &dyn KeyStore) {
    let parent = insert_account(store).await;
    let other = insert_account(store).await;
    let mut kids = Vec::new();
    for (i, name) in ["Globex Corp", "Initech", "globex EU", "Umbrella"]
        .into_iter()
        .enumerate()
    {
        let t = if i < 2 { at(9, 0) } else { at(9, i as i64) };
        kids.push(child(store, &parent, name, t).await);
    }
    let mut off = kids[3].clone();
    off.status = AccountStatus::Inactive;
    off.version += 1;
    store
        .update_account(
            &off,
            kids[3].version,
            &event(AuditAction::AccountDeactivated, off.id, None, at(10, 0)),
        )
        .await
        .expect("update_account");
    kids[3] = off;
    let grandchild = child(store, &kids[0], "Globex grandchild", at(11, 0)).await;
    child(store, &other, "Globex of other", at(9, 0)).await;
    let list = |q: AccountQuery| async move {
        store
            .list_accounts(&parent.id, &q)
            .await
            .expect("list_accounts")
    };
    let mut expected: Vec<_> = kids.iter().map(|a| (a.created_at, a.id)).collect();
    expected.sort();
    let all = list(AccountQuery {
        limit: 100,
        ..AccountQuery::default()
    })
    .await;
    assert_eq!(
        all.iter().map(|a| (a.created_at, a.id)).collect::<Vec<_>>(),
        expected
    );
    assert!(
        all.iter().all(|a| a.id != grandchild.id),
        "a grandchild listed"
    );
    assert_eq!(all.iter().find(|a| a.id == kids[3].id), Some(&kids[3]));
    let globex = list(AccountQuery {
        name_contains: Some("GLOBEX".into()),
        limit: 100,
        ..AccountQuery::default()
    })
    .await;
    let mut want = vec![
        (kids[0].created_at, kids[0].id),
        (kids[2].created_at, kids[2].id),
    ];
    want.sort();
    assert_eq!(
        globex.iter().map(|a| a.id).collect::<Vec<_>>(),
        want.into_iter().map(|(_, id)| id).collect::<Vec<_>>()
    );
    let inactive = list(AccountQuery {
        status: Some(AccountStatus::Inactive),
        limit: 100,
        ..AccountQuery::default()
    })
    .await;
    assert_eq!(
        inactive.iter().map(|a| a.id).collect::<Vec<_>>(),
        vec![kids[3].id]
    );
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = list(AccountQuery {
            after,
            limit: 3,
            ..AccountQuery::default()
        })
        .await;
        assert!(page.len() <= 3);
        if page.is_empty() {
            break;
        }
        after = page.last().map(|a| (a.created_at, a.id));
        seen.extend(page.into_iter().map(|a| (a.created_at, a.id)));
    }
    assert_eq!(seen, expected);
    assert!(
        list(AccountQuery {
            limit: 0,
            ..AccountQuery::default()
        })
        .await
        .is_empty()
    );
    let none = store
        .list_accounts(
            &account_id(),
            &AccountQuery {
                limit: 100,
                ..AccountQuery::default()
            },
        )
        .await
        .expect("list_accounts");
    assert!(none.is_empty());
}

/// `update_account` writes name, permissions and status (id, parent and
/// creation time stay) with its event; deactivation deletes the sessions
/// of the account's keys and no other; absent: [`StoreError::NotFound`]
/// (nothing written).
pub async fn update_account_writes_and_deactivation_ends_sessions(store: &dyn KeyStore) {
    let a = insert_account(store).await;
    let b = insert_account(store).await;
    let ka = plain_key(a.id, "a", at(1, 0));
    let kb = plain_key(b.id, "b", at(1, 0));
    insert_key(store, &ka).await;
    insert_key(store, &kb).await;
    let (sa, sb) = (session(&ka, at(3600, 0)), session(&kb, at(3600, 0)));
    for s in [&sa, &sb] {
        store
            .insert_session(
                s,
                &event(AuditAction::Login, s.account_id, Some(s.key_id), at(2, 0)),
            )
            .await
            .expect("insert_session");
    }
    let mut renamed = a.clone();
    renamed.name = "Renamed Ünïcode".into();
    renamed.permissions = perms(&["readApplications"]);
    renamed.id = a.id;
    renamed.version = a.version + 1;
    store
        .update_account(
            &renamed,
            a.version,
            &event(AuditAction::AccountUpdated, a.id, None, at(3, 0)),
        )
        .await
        .expect("update_account");
    assert_eq!(
        store.get_account(&a.id).await.expect("get"),
        Some(renamed.clone())
    );
    assert!(
        store.get_session(&sa.id).await.expect("get").is_some(),
        "a rename ended a session"
    );
    let mut off = renamed.clone();
    off.status = AccountStatus::Inactive;
    off.version += 1;
    store
        .update_account(
            &off,
            renamed.version,
            &event(AuditAction::AccountDeactivated, a.id, None, at(4, 0)),
        )
        .await
        .expect("update_account");
    assert_eq!(store.get_account(&a.id).await.expect("get"), Some(off));
    assert!(store.get_session(&sa.id).await.expect("get").is_none());
    assert!(store.get_session(&sb.id).await.expect("get").is_some());
    let actions: Vec<_> = events_of(store, a.id)
        .await
        .iter()
        .map(|e| e.action)
        .collect();
    assert_eq!(
        &actions[..2],
        &[AuditAction::AccountDeactivated, AuditAction::AccountUpdated]
    );
    let mut ghost = account();
    ghost.parent = None;
    let before = events_of(store, ghost.id).await.len();
    let r = store
        .update_account(
            &ghost,
            ghost.version,
            &event(AuditAction::AccountUpdated, ghost.id, None, at(5, 0)),
        )
        .await;
    assert!(matches!(r, Err(StoreError::NotFound)), "got {r:?}");
    assert_eq!(events_of(store, ghost.id).await.len(), before);
}

/// An update judged on a stale version is [`StoreError::Conflict`]: the
/// account (permissions, status, sessions) stays as it is and no event is
/// written; the current version is accepted.
pub async fn update_account_refuses_stale_version(store: &dyn KeyStore) {
    let a = insert_account(store).await;
    let k = plain_key(a.id, "Member", at(1, 0));
    insert_key(store, &k).await;
    let s = session(&k, at(7200, 0));
    store
        .insert_session(
            &s,
            &event(AuditAction::Login, a.id, Some(k.key.id), at(2, 0)),
        )
        .await
        .expect("insert_session");
    // Another change moved the account on (version 1 → 2).
    let mut moved = a.clone();
    moved.name = "Moved on".into();
    moved.version = a.version + 1;
    store
        .update_account(
            &moved,
            a.version,
            &event(AuditAction::AccountUpdated, a.id, None, at(3, 0)),
        )
        .await
        .expect("update_account");
    let events = events_of(store, a.id).await.len();
    // A change judged on version 1: refused, nothing written.
    let mut stale = a.clone();
    stale.status = AccountStatus::Inactive;
    stale.permissions = perms(&[]);
    stale.version = a.version + 1;
    let r = store
        .update_account(
            &stale,
            a.version,
            &event(AuditAction::AccountDeactivated, a.id, None, at(4, 0)),
        )
        .await;
    assert!(matches!(r, Err(StoreError::Conflict(_))), "got {r:?}");
    assert_eq!(
        store.get_account(&a.id).await.expect("get"),
        Some(moved.clone())
    );
    assert!(store.get_session(&s.id).await.expect("get").is_some());
    assert_eq!(events_of(store, a.id).await.len(), events);
    // Judged on the current version: written.
    let mut fresh = moved.clone();
    fresh.status = AccountStatus::Inactive;
    fresh.version = moved.version + 1;
    store
        .update_account(
            &fresh,
            moved.version,
            &event(AuditAction::AccountDeactivated, a.id, None, at(5, 0)),
        )
        .await
        .expect("update_account");
    assert_eq!(store.get_account(&a.id).await.expect("get"), Some(fresh));
    assert_eq!(events_of(store, a.id).await.len(), events + 1);
}
