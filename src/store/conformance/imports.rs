//! Imported keys: written all or nothing, found by external id and alias
//! while their key exists.

use super::fixtures::{at, event, events_of, insert_account, key};
use crate::audit::AuditAction;
use crate::id::AccountId;
use crate::store::{ImportedKey, KeyStore, StoreError};

fn imported(account: AccountId, external: &str, alias: &str, minute: i64) -> ImportedKey {
    let stored = key(account, external, at(minute, 0));
    let event = event(
        AuditAction::KeyImported,
        account,
        Some(stored.key.id),
        at(minute, 0),
    );
    ImportedKey {
        stored,
        external_id: external.into(),
        alias: alias.into(),
        event,
    }
}

/// A batch is written with its events and found by external id and by
/// alias; a batch reusing a taken external id or alias, or repeating one,
/// is a [`StoreError::Conflict`] and writes nothing.
pub async fn imported_keys_are_found_and_conflicts_write_nothing(store: &dyn KeyStore) {
    let a = insert_account(store).await;
    let one = imported(a.id, "ext-1", "sk_live_aaaa", 10);
    let two = imported(a.id, "ext-2", "sk_live_bbbb", 11);
    store
        .insert_imported_keys(&[one.clone(), two.clone()])
        .await
        .expect("import");
    assert_eq!(
        store.get_key(&one.stored.key.id).await.expect("get"),
        Some(one.stored.clone())
    );
    assert_eq!(
        store.imported_key("ext-2").await.expect("lookup"),
        Some(two.stored.key.id)
    );
    assert_eq!(
        store.key_by_alias("sk_live_aaaa").await.expect("lookup"),
        Some(one.stored.key.id)
    );
    assert_eq!(store.imported_key("ext-3").await.expect("lookup"), None);
    assert_eq!(
        store.key_by_alias("sk_live_cccc").await.expect("lookup"),
        None
    );
    let events = events_of(store, a.id).await.len();

    for batch in [
        // A fresh key reusing an external id.
        vec![
            imported(a.id, "ext-3", "sk_live_cccc", 12),
            imported(a.id, "ext-1", "sk_live_dddd", 12),
        ],
        // Reusing an alias.
        vec![imported(a.id, "ext-4", "sk_live_bbbb", 13)],
        // The same alias twice in one batch.
        vec![
            imported(a.id, "ext-5", "sk_live_eeee", 14),
            imported(a.id, "ext-6", "sk_live_eeee", 14),
        ],
    ] {
        let r = store.insert_imported_keys(&batch).await;
        assert!(matches!(r, Err(StoreError::Conflict(_))), "got {r:?}");
        for k in &batch {
            if k.external_id != "ext-1" {
                assert_eq!(
                    store.imported_key(&k.external_id).await.expect("lookup"),
                    None
                );
            }
            assert!(
                store
                    .get_key(&k.stored.key.id)
                    .await
                    .expect("get")
                    .is_none(),
                "a refused batch wrote a key"
            );
        }
    }
    assert_eq!(
        events_of(store, a.id).await.len(),
        events,
        "a refused batch wrote events"
    );
}

/// Once its key is deleted, an import is found by neither lookup, and its
/// external id and alias can be imported again.
pub async fn deleted_imported_key_frees_its_external_id_and_alias(store: &dyn KeyStore) {
    let a = insert_account(store).await;
    let one = imported(a.id, "ext-1", "sk_live_aaaa", 10);
    store
        .insert_imported_keys(std::slice::from_ref(&one))
        .await
        .expect("import");
    store
        .delete_key(
            &one.stored.key.id,
            one.stored.version,
            &event(
                AuditAction::KeyDeleted,
                a.id,
                Some(one.stored.key.id),
                at(11, 0),
            ),
        )
        .await
        .expect("delete");
    assert_eq!(store.imported_key("ext-1").await.expect("lookup"), None);
    assert_eq!(
        store.key_by_alias("sk_live_aaaa").await.expect("lookup"),
        None
    );
    let again = imported(a.id, "ext-1", "sk_live_aaaa", 12);
    store
        .insert_imported_keys(std::slice::from_ref(&again))
        .await
        .expect("import again");
    assert_eq!(
        store.key_by_alias("sk_live_aaaa").await.expect("lookup"),
        Some(again.stored.key.id)
    );
}
