//! The management API's origin allowlist.

use super::fixtures::{at, event, events_of, insert_account, random};
use crate::audit::AuditAction;
use crate::origin::AllowedOrigin;
use crate::store::{KeyStore, StoreError};

fn entry(origin: &str, secs: i64) -> AllowedOrigin {
    AllowedOrigin {
        id: format!("orig_{}", random(17)),
        origin: origin.into(),
        protected: false,
        created_at: at(secs, 7),
    }
}

/// Entries are listed in the order they were added, every field as
/// written; the same origin (or id) twice is a [`StoreError::Conflict`]
/// that writes nothing; a deleted entry is gone, and deleting it again is
/// [`StoreError::NotFound`].
pub async fn allowed_origins_insert_list_delete(store: &dyn KeyStore) {
    let a = insert_account(store).await;
    let ev = |action| event(action, a.id, None, at(1, 0));
    let before = store.list_allowed_origins().await.expect("list");
    let one = entry(
        &format!("https://{}.example.com", random(8).to_lowercase()),
        2,
    );
    let two = entry(
        &format!("http://{}.localhost:8080", random(8).to_lowercase()),
        3,
    );
    for e in [&one, &two] {
        store
            .insert_allowed_origin(e, &ev(AuditAction::OriginAllowed))
            .await
            .expect("insert");
    }
    let listed = store.list_allowed_origins().await.expect("list");
    assert_eq!(&listed[before.len()..], &[one.clone(), two.clone()]);
    let mut same_origin = entry(&one.origin, 4);
    let r = store
        .insert_allowed_origin(&same_origin, &ev(AuditAction::OriginAllowed))
        .await;
    assert!(matches!(r, Err(StoreError::Conflict(_))), "got {r:?}");
    same_origin.id.clone_from(&one.id);
    same_origin.origin = "https://other.example".into();
    let r = store
        .insert_allowed_origin(&same_origin, &ev(AuditAction::OriginAllowed))
        .await;
    assert!(matches!(r, Err(StoreError::Conflict(_))), "got {r:?}");
    assert_eq!(
        events_of(store, a.id).await.len(),
        3,
        "a rejected insert wrote an event"
    );
    store
        .delete_allowed_origin(&one.id, &ev(AuditAction::OriginRemoved))
        .await
        .expect("delete");
    let listed = store.list_allowed_origins().await.expect("list");
    assert!(listed.iter().all(|o| o.id != one.id));
    assert!(listed.contains(&two));
    let r = store
        .delete_allowed_origin(&one.id, &ev(AuditAction::OriginRemoved))
        .await;
    assert!(matches!(r, Err(StoreError::NotFound)), "got {r:?}");
    assert_eq!(events_of(store, a.id).await.len(), 4);
}
