//! Accounts.

use super::fixtures::{account, event, events_of, insert_account};
use crate::audit::AuditAction;
use crate::store::{KeyStore, StoreError};

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
