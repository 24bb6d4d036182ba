//! The store conformance suite (feature `test-suite`): the contract every
//! [`KeyStore`] must meet, as async test cases that third-party stores can
//! run too.
//!
//! Each case takes a store (a fresh one per case is best: some cases count
//! rows) and panics on a violation. The [`store_conformance_tests!`]
//! macro expands into one `#[tokio::test]` per case:
//!
//! ```ignore
//! keyward::store_conformance_tests!(async { MyStore::connect("…").await.unwrap() });
//! // or, with a teardown run after each case that passed:
//! keyward::store_conformance_tests!(
//!     async { MyStore::connect("…").await.unwrap() },
//!     teardown = |store: MyStore| async move { store.drop_everything().await },
//! );
//! ```
//!
//! The calling crate needs `tokio` (features `macros`, `rt`) as a
//! dev-dependency.
//!
//! # Time precision
//!
//! Stores must keep timestamps to the microsecond at least (PostgreSQL's
//! `timestamptz` resolution; [`SqliteStore`](super::SqliteStore) stores unix
//! microseconds). The suite therefore uses microsecond-truncated times, and
//! round-trips values such as `…:05.123456`. Sub-microsecond digits may be
//! dropped by a store.
//!
//! [`store_conformance_tests!`]: crate::store_conformance_tests

use std::sync::Arc;

use super::KeyStore;

mod accounts;
mod apps;
mod events;
mod fixtures;
mod imports;
mod keys;
mod limits;
mod origins;
mod rollup;
mod sessions;
mod usage;

pub use accounts::{
    insert_account_conflicts, insert_account_round_trips,
    list_accounts_lists_children_with_filters_and_pages, update_account_refuses_stale_version,
    update_account_writes_and_deactivation_ends_sessions,
};
pub use apps::{
    app_counts_and_lists_its_keys, delete_app_refused_while_it_has_keys,
    insert_app_round_trips_and_conflicts, list_apps_filters_orders_and_paginates,
    update_app_refuses_a_stale_judgement, update_app_status_moves_keys_and_ends_sessions,
};
pub use events::{
    event_actor_kinds_round_trip, event_round_trips_every_field, events_since_follow_commit_order,
    events_written_with_each_change, list_events_filters_by_every_field,
    list_events_newest_first_with_cursor_and_key_filter, refusals_merge_by_id,
};
pub use imports::{
    deleted_imported_key_frees_its_external_id_and_alias,
    imported_keys_are_found_and_conflicts_write_nothing,
};
pub use keys::{
    delete_key_refuses_stale_version, delete_key_removes_key_and_sessions,
    delete_key_twice_is_not_found, get_absent_returns_none, insert_key_conflicts,
    insert_key_round_trips_every_field, list_keys_filters, list_keys_orders_and_paginates,
    list_keys_scoped_to_account, update_key_absent_is_not_found,
    update_key_keeps_the_later_last_used_at, update_key_refuses_stale_version,
    update_key_replaces_record,
};
pub use limits::{
    key_for_verify_joins_app_status_and_limits, keys_for_verify_reads_many_as_one_each,
    limits_round_trip_replace_and_remove, spend_credits_subtracts_and_refills_once_per_period,
};
pub use origins::allowed_origins_insert_list_delete;
pub use rollup::{group_names_of_keys_apps_and_accounts, usage_rollup_matches_brute_force};
pub use sessions::{
    delete_session_then_not_found, insert_session_for_absent_key_is_not_found,
    insert_session_with_a_stale_epoch_is_not_found, purge_expired_sessions_removes_only_expired,
    session_round_trips_and_conflicts,
};
pub use usage::{record_usage_sums_and_advances_last_used, usage_filters_by_key_origin_and_time};

/// Borrows a store as `&dyn KeyStore`: implemented for every [`KeyStore`]
/// and for `Arc<dyn KeyStore>` (what [`connect`](super::connect) returns).
pub trait AsStore {
    /// The store.
    fn as_store(&self) -> &dyn KeyStore;
}

impl<T: KeyStore> AsStore for T {
    fn as_store(&self) -> &dyn KeyStore {
        self
    }
}

impl AsStore for Arc<dyn KeyStore> {
    fn as_store(&self) -> &dyn KeyStore {
        &**self
    }
}

/// What a conformance factory yields: a store, or `None` to skip the case
/// (for example when the test database is not configured).
pub trait MaybeStore {
    /// The store type.
    type Store: AsStore;
    /// The store, if there is one.
    fn into_store(self) -> Option<Self::Store>;
}

impl<T: AsStore> MaybeStore for T {
    type Store = T;
    fn into_store(self) -> Option<T> {
        Some(self)
    }
}

impl<T: AsStore> MaybeStore for Option<T> {
    type Store = T;
    fn into_store(self) -> Option<T> {
        self
    }
}

/// Expands into one `#[tokio::test]` per conformance case, each on a store
/// made by evaluating `$make` anew: an expression yielding a future of
/// the store, or of `Option<store>` where `None` skips the case. An optional `teardown = closure` receives the store after
/// a case passed and returns a future. See
/// [`store::conformance`](crate::store::conformance).
#[macro_export]
macro_rules! store_conformance_tests {
    ($make:expr $(,)?) => {
        $crate::store_conformance_tests!($make, teardown = |_store| async {});
    };
    ($make:expr, teardown = $teardown:expr $(,)?) => {
        $crate::__store_conformance_cases!(($make) ($teardown);
            insert_account_round_trips,
            insert_account_conflicts,
            list_accounts_lists_children_with_filters_and_pages,
            update_account_writes_and_deactivation_ends_sessions,
            update_account_refuses_stale_version,
            get_absent_returns_none,
            insert_key_round_trips_every_field,
            insert_key_conflicts,
            update_key_replaces_record,
            imported_keys_are_found_and_conflicts_write_nothing,
            deleted_imported_key_frees_its_external_id_and_alias,
            update_key_keeps_the_later_last_used_at,
            update_key_refuses_stale_version,
            update_key_absent_is_not_found,
            delete_key_removes_key_and_sessions,
            delete_key_twice_is_not_found,
            delete_key_refuses_stale_version,
            list_keys_filters,
            list_keys_orders_and_paginates,
            list_keys_scoped_to_account,
            session_round_trips_and_conflicts,
            insert_session_for_absent_key_is_not_found,
            insert_session_with_a_stale_epoch_is_not_found,
            delete_session_then_not_found,
            purge_expired_sessions_removes_only_expired,
            events_written_with_each_change,
            list_events_newest_first_with_cursor_and_key_filter,
            event_round_trips_every_field,
            event_actor_kinds_round_trip,
            events_since_follow_commit_order,
            list_events_filters_by_every_field,
            refusals_merge_by_id,
            record_usage_sums_and_advances_last_used,
            usage_filters_by_key_origin_and_time,
            usage_rollup_matches_brute_force,
            group_names_of_keys_apps_and_accounts,
            insert_app_round_trips_and_conflicts,
            app_counts_and_lists_its_keys,
            list_apps_filters_orders_and_paginates,
            update_app_status_moves_keys_and_ends_sessions,
            update_app_refuses_a_stale_judgement,
            delete_app_refused_while_it_has_keys,
            allowed_origins_insert_list_delete,
            limits_round_trip_replace_and_remove,
            spend_credits_subtracts_and_refills_once_per_period,
            key_for_verify_joins_app_status_and_limits,
            keys_for_verify_reads_many_as_one_each,
        );
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __store_conformance_cases {
    (($make:expr) ($teardown:expr); $($case:ident),* $(,)?) => {
        $(
            #[::tokio::test]
            async fn $case() {
                let Some(store) = $crate::store::conformance::MaybeStore::into_store($make.await)
                else {
                    return;
                };
                $crate::store::conformance::$case(
                    $crate::store::conformance::AsStore::as_store(&store),
                )
                .await;
                ($teardown)(store).await;
            }
        )*
    };
}
