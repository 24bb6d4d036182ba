//! [`Timed`]: the store as the service sees it when feature `metrics` is
//! on, recording each call's latency as `keyward_store_seconds{op}` and its
//! failures as `keyward_store_errors_total{op}`.
//!
//! Store calls are the cold path (each is a database round trip), so the
//! histogram's cost (a key built per call) does not show; the warm path
//! makes none.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::account::Account;
use crate::api_key::ApiKey;
use crate::app::App;
use crate::audit::AuditEvent;
use crate::id::{AccountId, AppId, KeyId, SessionId};
use crate::origin::AllowedOrigin;
use crate::ratelimit::LimitOwner;
use crate::session::Session;
use crate::store::{
    AccountQuery, AppExpectation, AppQuery, Change, EventQuery, GroupTotal, ImportedKey,
    KeyForVerify, KeyQuery, KeyStore, RollupRow, RollupScope, SequencedEvent, StoreResult,
    StoredKey, StoredLimits, UsageGroupKind, UsageQuery, UsageRecord, UsageTotal, UsageTotalsQuery,
};

/// A store whose every call is timed. Forwards everything, including the
/// methods with defaults (a method added to [`KeyStore`] must be forwarded
/// here too: the conformance suite runs against this wrapper and fails
/// when one is not).
pub(crate) struct Timed(pub(crate) Arc<dyn KeyStore>);

impl std::fmt::Debug for Timed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// Records one call of `op` that started at `started`.
fn record<T>(op: &'static str, started: Instant, r: &StoreResult<T>) {
    metrics::histogram!("keyward_store_seconds", "op" => op)
        .record(started.elapsed().as_secs_f64());
    if r.is_err() {
        metrics::counter!("keyward_store_errors_total", "op" => op).increment(1);
    }
}

macro_rules! timed {
    ($op:literal, $call:expr) => {{
        let started = Instant::now();
        let r = $call.await;
        record($op, started, &r);
        r
    }};
}

#[async_trait]
impl KeyStore for Timed {
    async fn insert_account(&self, account: &Account, event: &AuditEvent) -> StoreResult<()> {
        timed!("insert_account", self.0.insert_account(account, event))
    }
    async fn get_account(&self, id: &AccountId) -> StoreResult<Option<Account>> {
        timed!("get_account", self.0.get_account(id))
    }
    async fn list_accounts(
        &self,
        parent: &AccountId,
        query: &AccountQuery,
    ) -> StoreResult<Vec<Account>> {
        timed!("list_accounts", self.0.list_accounts(parent, query))
    }
    async fn update_account(
        &self,
        account: &Account,
        expected_version: u64,
        event: &AuditEvent,
    ) -> StoreResult<()> {
        timed!(
            "update_account",
            self.0.update_account(account, expected_version, event)
        )
    }
    async fn insert_key(&self, key: &StoredKey, event: &AuditEvent) -> StoreResult<()> {
        timed!("insert_key", self.0.insert_key(key, event))
    }
    async fn get_key(&self, id: &KeyId) -> StoreResult<Option<StoredKey>> {
        timed!("get_key", self.0.get_key(id))
    }
    async fn get_key_for_verify(&self, id: &KeyId) -> StoreResult<Option<KeyForVerify>> {
        timed!("get_key_for_verify", self.0.get_key_for_verify(id))
    }
    async fn get_keys_for_verify(&self, ids: &[KeyId]) -> StoreResult<Vec<KeyForVerify>> {
        timed!("get_keys_for_verify", self.0.get_keys_for_verify(ids))
    }
    async fn update_key(
        &self,
        key: &StoredKey,
        expected_version: u64,
        event: &AuditEvent,
    ) -> StoreResult<()> {
        timed!(
            "update_key",
            self.0.update_key(key, expected_version, event)
        )
    }
    async fn delete_key(
        &self,
        id: &KeyId,
        expected_version: u64,
        event: &AuditEvent,
    ) -> StoreResult<()> {
        timed!("delete_key", self.0.delete_key(id, expected_version, event))
    }
    async fn list_keys(&self, account: &AccountId, query: &KeyQuery) -> StoreResult<Vec<ApiKey>> {
        timed!("list_keys", self.0.list_keys(account, query))
    }
    async fn list_stored_keys(
        &self,
        account: &AccountId,
        query: &KeyQuery,
    ) -> StoreResult<Vec<StoredKey>> {
        timed!("list_stored_keys", self.0.list_stored_keys(account, query))
    }
    async fn insert_imported_keys(&self, keys: &[ImportedKey]) -> StoreResult<()> {
        timed!("insert_imported_keys", self.0.insert_imported_keys(keys))
    }
    async fn imported_key(&self, external_id: &str) -> StoreResult<Option<KeyId>> {
        timed!("imported_key", self.0.imported_key(external_id))
    }
    async fn key_by_alias(&self, alias: &str) -> StoreResult<Option<KeyId>> {
        timed!("key_by_alias", self.0.key_by_alias(alias))
    }
    async fn insert_app(&self, app: &App, event: &AuditEvent) -> StoreResult<()> {
        timed!("insert_app", self.0.insert_app(app, event))
    }
    async fn get_app(&self, id: &AppId) -> StoreResult<Option<App>> {
        timed!("get_app", self.0.get_app(id))
    }
    async fn list_apps(&self, account: &AccountId, query: &AppQuery) -> StoreResult<Vec<App>> {
        timed!("list_apps", self.0.list_apps(account, query))
    }
    async fn update_app(
        &self,
        app: &App,
        expected: &AppExpectation,
        event: &AuditEvent,
    ) -> StoreResult<Vec<KeyId>> {
        timed!("update_app", self.0.update_app(app, expected, event))
    }
    async fn delete_app(&self, id: &AppId, event: &AuditEvent) -> StoreResult<()> {
        timed!("delete_app", self.0.delete_app(id, event))
    }
    async fn list_allowed_origins(&self) -> StoreResult<Vec<AllowedOrigin>> {
        timed!("list_allowed_origins", self.0.list_allowed_origins())
    }
    async fn insert_allowed_origin(
        &self,
        origin: &AllowedOrigin,
        event: &AuditEvent,
    ) -> StoreResult<()> {
        timed!(
            "insert_allowed_origin",
            self.0.insert_allowed_origin(origin, event)
        )
    }
    async fn delete_allowed_origin(&self, id: &str, event: &AuditEvent) -> StoreResult<()> {
        timed!(
            "delete_allowed_origin",
            self.0.delete_allowed_origin(id, event)
        )
    }
    async fn insert_session(&self, session: &Session, event: &AuditEvent) -> StoreResult<()> {
        timed!("insert_session", self.0.insert_session(session, event))
    }
    async fn get_session(&self, id: &SessionId) -> StoreResult<Option<Session>> {
        timed!("get_session", self.0.get_session(id))
    }
    async fn delete_session(&self, id: &SessionId, event: &AuditEvent) -> StoreResult<()> {
        timed!("delete_session", self.0.delete_session(id, event))
    }
    async fn purge_expired_sessions(&self, now: OffsetDateTime) -> StoreResult<u64> {
        timed!("purge_expired_sessions", self.0.purge_expired_sessions(now))
    }
    async fn list_events(&self, query: &EventQuery) -> StoreResult<Vec<AuditEvent>> {
        timed!("list_events", self.0.list_events(query))
    }
    async fn record_usage(&self, batch: &[UsageRecord]) -> StoreResult<()> {
        timed!("record_usage", self.0.record_usage(batch))
    }
    async fn usage(&self, query: &UsageQuery) -> StoreResult<Vec<UsageRecord>> {
        timed!("usage", self.0.usage(query))
    }
    async fn usage_totals(&self, query: &UsageTotalsQuery) -> StoreResult<Vec<UsageTotal>> {
        timed!("usage_totals", self.0.usage_totals(query))
    }
    async fn list_events_since(
        &self,
        query: &EventQuery,
        after: u64,
    ) -> StoreResult<Vec<SequencedEvent>> {
        timed!("list_events_since", self.0.list_events_since(query, after))
    }
    async fn last_event_seq(&self) -> StoreResult<u64> {
        timed!("last_event_seq", self.0.last_event_seq())
    }
    async fn record_refusals(&self, events: &[AuditEvent]) -> StoreResult<()> {
        timed!("record_refusals", self.0.record_refusals(events))
    }
    fn event_signal(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        self.0.event_signal()
    }
    async fn usage_ranked(
        &self,
        scope: &RollupScope,
        hour: OffsetDateTime,
        after: Option<&(u64, String)>,
        limit: usize,
    ) -> StoreResult<Vec<GroupTotal>> {
        timed!(
            "usage_ranked",
            self.0.usage_ranked(scope, hour, after, limit)
        )
    }
    async fn usage_rollup(
        &self,
        scope: &RollupScope,
        groups: &[String],
        from: OffsetDateTime,
        to: OffsetDateTime,
    ) -> StoreResult<Vec<RollupRow>> {
        timed!("usage_rollup", self.0.usage_rollup(scope, groups, from, to))
    }
    async fn usage_group_totals(
        &self,
        scope: &RollupScope,
        from: OffsetDateTime,
        to: OffsetDateTime,
        after: Option<&(u64, String)>,
        limit: usize,
    ) -> StoreResult<Vec<GroupTotal>> {
        timed!(
            "usage_group_totals",
            self.0.usage_group_totals(scope, from, to, after, limit)
        )
    }
    async fn group_names(
        &self,
        kind: UsageGroupKind,
        ids: &[String],
    ) -> StoreResult<Vec<(String, String)>> {
        timed!("group_names", self.0.group_names(kind, ids))
    }
    async fn get_limits(&self, owners: &[LimitOwner]) -> StoreResult<Vec<StoredLimits>> {
        timed!("get_limits", self.0.get_limits(owners))
    }
    async fn put_limits(&self, limits: &StoredLimits, event: &AuditEvent) -> StoreResult<()> {
        timed!("put_limits", self.0.put_limits(limits, event))
    }
    async fn spend_credits(
        &self,
        owner: &LimitOwner,
        spent: u64,
        period: i64,
    ) -> StoreResult<Option<u64>> {
        timed!("spend_credits", self.0.spend_credits(owner, spent, period))
    }
    fn subscribe(&self) -> Option<tokio::sync::broadcast::Receiver<Change>> {
        self.0.subscribe()
    }
}

/// The whole store contract through the wrapper: a [`KeyStore`] method it
/// does not forward fails its cases here.
#[cfg(all(test, feature = "test-suite"))]
mod conformance {
    use super::Timed;
    use crate::store::MemoryStore;

    crate::store_conformance_tests!(async { Timed(std::sync::Arc::new(MemoryStore::new())) });
}
