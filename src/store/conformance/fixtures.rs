//! Records the cases build: every field set, times truncated to the
//! microsecond.

use serde_json::json;
use time::{Duration, OffsetDateTime};

use crate::account::Account;
use crate::api_key::{ApiKey, KeyStatus};
use crate::app::{App, AppStatus};
use crate::audit::{AuditAction, AuditActor, AuditEvent};
use crate::id::{AccountId, AppId, KeyId, SessionId};
use crate::permission::PermissionSet;
use crate::random::fill_base62;
use crate::session::Session;
use crate::store::{EventQuery, KeyStore, PhcString, PreviousSecret, StoredKey};

/// `n` random base62 characters.
pub(super) fn random(n: usize) -> String {
    let mut b = vec![0u8; n];
    fill_base62(&mut b);
    String::from_utf8(b).unwrap_or_default()
}

/// The suite's base time: microsecond precision, no finer.
pub(super) fn t0() -> OffsetDateTime {
    time::macros::datetime!(2030-01-02 03:04:05.123456 UTC)
}

/// `t0` plus `secs` seconds and `micros` microseconds.
pub(super) fn at(secs: i64, micros: i64) -> OffsetDateTime {
    t0() + Duration::seconds(secs) + Duration::microseconds(micros)
}

pub(super) fn perms(names: &[&str]) -> PermissionSet {
    PermissionSet::parse(names).unwrap_or_default()
}

pub(super) fn account_id() -> AccountId {
    AccountId::new(&format!("acct_{}", random(17))).expect("valid account id")
}

pub(super) fn key_id() -> KeyId {
    KeyId::new(&format!("kw_{}", random(17))).expect("valid key id")
}

pub(super) fn app_id() -> AppId {
    AppId::new(&format!("app_{}", random(17))).expect("valid app id")
}

/// An application of `account` created at `created_at` (key counts zero).
pub(super) fn app(account: AccountId, title: &str, created_at: OffsetDateTime) -> App {
    App {
        id: app_id(),
        account_id: account,
        title: title.into(),
        description: "the nightly exporter — ✓".into(),
        status: AppStatus::Active,
        created_at,
        updated_at: created_at + Duration::microseconds(3),
        active_keys: 0,
        inactive_keys: 0,
        protected: false,
        last_used_at: None,
    }
}

/// Inserts `a` with an `app_created` event.
pub(super) async fn insert_app(store: &dyn KeyStore, a: &App) {
    store
        .insert_app(
            a,
            &event(AuditAction::AppCreated, a.account_id, None, a.created_at),
        )
        .await
        .expect("insert_app");
}

pub(super) fn session_id() -> SessionId {
    SessionId::new(&format!("kw_ses_{}", random(17))).expect("valid session id")
}

pub(super) fn account() -> Account {
    Account {
        id: account_id(),
        name: "Acme Ünïcode".into(),
        parent: Some(account_id()),
        permissions: perms(&["readApiKeys", "writeApiKeys", "readApplications"]),
        status: crate::account::AccountStatus::Active,
        created_at: at(0, 1),
        last_used_at: None,
        version: 1,
    }
}

/// A key with every field set (previous secret, networks, origins,
/// metadata...).
pub(super) fn key(account: AccountId, name: &str, created_at: OffsetDateTime) -> StoredKey {
    StoredKey {
        key: ApiKey {
            id: key_id(),
            account_id: account,
            name: name.into(),
            description: "for the nightly export — ✓".into(),
            application: Some("exporter".into()),
            app_id: Some(app_id()),
            permissions: perms(&["readApplications"]),
            status: KeyStatus::Active,
            protected: false,
            created_at,
            updated_at: created_at + Duration::microseconds(7),
            last_used_at: Some(created_at + Duration::seconds(3)),
            expires_at: Some(created_at + Duration::days(30)),
            allowed_cidrs: vec![
                "10.0.0.0/8".parse().expect("cidr"),
                "2001:db8::/32".parse().expect("cidr"),
            ],
            allowed_origins: vec![
                "https://app.example.com".into(),
                "https://*.example.org:8443".into(),
            ],
            metadata: json!({
                "team": "data",
                "tier": 3,
                "ratio": 0.25,
                "tags": ["a", "b"],
                "nested": { "ok": true, "none": null }
            }),
        },
        secret_hash: PhcString(format!(
            "$argon2id$v=19$m=8192,t=1,p=1${}${}",
            random(22),
            random(43)
        )),
        generation: 3,
        previous: Some(PreviousSecret {
            hash: PhcString(format!(
                "$argon2id$v=19$m=8192,t=1,p=1${}${}",
                random(22),
                random(43)
            )),
            valid_until: created_at + Duration::hours(1) + Duration::microseconds(999_999),
        }),
        version: 7,
        session_epoch: 2,
    }
}

/// A plain key: no previous secret, no networks or origins, no expiry.
pub(super) fn plain_key(account: AccountId, name: &str, created_at: OffsetDateTime) -> StoredKey {
    let mut k = key(account, name, created_at);
    k.key.application = None;
    k.key.app_id = None;
    k.key.last_used_at = None;
    k.key.expires_at = None;
    k.key.allowed_cidrs.clear();
    k.key.allowed_origins.clear();
    k.key.metadata = json!({});
    k.previous = None;
    k.generation = 0;
    k.version = 1;
    k
}

pub(super) fn session(key: &StoredKey, expires_at: OffsetDateTime) -> Session {
    let mut digest = [0u8; 32];
    crate::random::fill(&mut digest);
    Session {
        id: session_id(),
        key_id: key.key.id,
        account_id: key.key.account_id,
        created_at: at(1, 2),
        expires_at,
        key_generation: key.generation,
        key_epoch: key.session_epoch,
        token_digest: digest,
    }
}

pub(super) fn event(
    action: AuditAction,
    account: AccountId,
    key: Option<KeyId>,
    at: OffsetDateTime,
) -> AuditEvent {
    AuditEvent {
        id: format!("evt_{}", random(20)),
        at,
        action,
        account_id: account,
        key_id: key,
        session_id: None,
        app_id: None,
        actor: AuditActor::system(),
        client_ip: None,
        details: json!({ "changed": ["name"] }),
    }
}

/// Every event of `account`, newest first.
pub(super) async fn events_of(store: &dyn KeyStore, account: AccountId) -> Vec<AuditEvent> {
    store
        .list_events(&EventQuery::new(account, 10_000))
        .await
        .expect("list_events")
}

/// Inserts an account so keys can refer to it.
pub(super) async fn insert_account(store: &dyn KeyStore) -> Account {
    let a = account();
    store
        .insert_account(
            &a,
            &event(AuditAction::AccountCreated, a.id, None, at(0, 0)),
        )
        .await
        .expect("insert_account");
    a
}

/// Inserts `k` with a `key_created` event.
pub(super) async fn insert_key(store: &dyn KeyStore, k: &StoredKey) {
    store
        .insert_key(
            k,
            &event(
                AuditAction::KeyCreated,
                k.key.account_id,
                Some(k.key.id),
                k.key.created_at,
            ),
        )
        .await
        .expect("insert_key");
}
