//! Helpers shared by the SQL stores: error mapping, JSON columns, the
//! neutral row shapes both backends decode into, and usage batch merging.

use std::collections::HashMap;
use std::str::FromStr;

use serde::Serialize;
use serde::de::DeserializeOwned;
use time::OffsetDateTime;

use super::{PhcString, PreviousSecret, StoreError, StoreResult, StoredKey, UsageRecord};
use crate::account::{Account, AccountStatus};
use crate::api_key::{ApiKey, KeyStatus};
use crate::app::{App, AppStatus};
use crate::audit::{AuditAction, AuditActor, AuditEvent};
use crate::id::{AccountId, AppId, KeyId, SessionId};

/// Maps a sqlx error: connection trouble is [`StoreError::Unavailable`]
/// (retrying later may work), a unique violation is
/// [`StoreError::Conflict`] with `conflict` as its message, anything else
/// is [`StoreError::Backend`].
pub(crate) fn map_err(e: sqlx::Error, conflict: &'static str) -> StoreError {
    use sqlx::Error as E;
    match e {
        E::Io(_) | E::Tls(_) | E::PoolTimedOut | E::PoolClosed | E::WorkerCrashed => {
            StoreError::Unavailable(Box::new(e))
        }
        E::Database(ref db) if db.is_unique_violation() => StoreError::Conflict(conflict),
        E::Database(ref db) if db.code().is_some_and(|c| unavailable_code(&c)) => {
            StoreError::Unavailable(Box::new(e))
        }
        other => StoreError::Backend(Box::new(other)),
    }
}

/// Database error codes that mean "not now" rather than "never": SQLite
/// busy/locked, PostgreSQL connection exceptions (class 08), shutdown and
/// startup (57P01–57P03), too many connections (53300).
fn unavailable_code(code: &str) -> bool {
    matches!(
        code,
        "5" | "6" | "261" | "517" | "53300" | "57P01" | "57P02" | "57P03"
    ) || code.starts_with("08")
}

/// A corrupt or unexpected value read back from the database.
pub(crate) fn corrupt(what: &str) -> StoreError {
    StoreError::Backend(format!("unexpected stored value in {what}").into())
}

/// Serializes a JSON column.
pub(crate) fn to_json<T: Serialize + ?Sized>(v: &T) -> StoreResult<String> {
    serde_json::to_string(v).map_err(|e| StoreError::Backend(Box::new(e)))
}

/// Deserializes a JSON column.
pub(crate) fn from_json<T: DeserializeOwned>(s: &str, what: &str) -> StoreResult<T> {
    serde_json::from_str(s).map_err(|_| corrupt(what))
}

/// Parses an id column.
pub(crate) fn id<T: FromStr>(s: &str, what: &str) -> StoreResult<T> {
    s.parse().map_err(|_| corrupt(what))
}

/// A `u64` as a SQL BIGINT.
pub(crate) fn to_i64(v: u64) -> StoreResult<i64> {
    i64::try_from(v).map_err(|_| StoreError::Backend("counter exceeds i64".into()))
}

/// A SQL BIGINT as a `u64`.
pub(crate) fn to_u64(v: i64, what: &str) -> StoreResult<u64> {
    u64::try_from(v).map_err(|_| corrupt(what))
}

/// A SQL BIGINT as a `u32`.
pub(crate) fn to_u32(v: i64, what: &str) -> StoreResult<u32> {
    u32::try_from(v).map_err(|_| corrupt(what))
}

/// Where a usage group's display name is stored: `(table, column)`, both
/// keyed by `id`.
pub(crate) fn group_name_column(kind: super::UsageGroupKind) -> (&'static str, &'static str) {
    match kind {
        super::UsageGroupKind::Key => ("keys", "name"),
        super::UsageGroupKind::App => ("apps", "title"),
        super::UsageGroupKind::Account => ("accounts", "name"),
    }
}

/// The text stored for a status.
pub(crate) fn status_str(s: KeyStatus) -> &'static str {
    s.as_str()
}

/// The key row as read by either backend, before validation.
pub(crate) struct KeyRow {
    pub(crate) id: String,
    pub(crate) account_id: String,
    pub(crate) name: String,
    pub(crate) description: String,
    pub(crate) application: Option<String>,
    pub(crate) permissions: String,
    pub(crate) status: String,
    pub(crate) protected: bool,
    pub(crate) created_at: OffsetDateTime,
    pub(crate) updated_at: OffsetDateTime,
    pub(crate) last_used_at: Option<OffsetDateTime>,
    pub(crate) expires_at: Option<OffsetDateTime>,
    pub(crate) allowed_cidrs: String,
    pub(crate) metadata: String,
    pub(crate) secret_hash: String,
    pub(crate) generation: i64,
    pub(crate) previous_hash: Option<String>,
    pub(crate) previous_valid_until: Option<OffsetDateTime>,
    pub(crate) version: i64,
    pub(crate) session_epoch: i64,
    pub(crate) app_id: Option<String>,
    pub(crate) allowed_origins: String,
}

impl KeyRow {
    /// Validates the row into a [`StoredKey`].
    pub(crate) fn into_stored(self) -> StoreResult<StoredKey> {
        let status = match self.status.as_str() {
            "active" => KeyStatus::Active,
            "inactive" => KeyStatus::Inactive,
            _ => return Err(corrupt("keys.status")),
        };
        let previous = match (self.previous_hash, self.previous_valid_until) {
            (Some(hash), Some(valid_until)) => Some(PreviousSecret {
                hash: PhcString(hash),
                valid_until,
            }),
            (None, None) => None,
            _ => return Err(corrupt("keys.previous_hash")),
        };
        Ok(StoredKey {
            key: ApiKey {
                id: id(&self.id, "keys.id")?,
                account_id: id(&self.account_id, "keys.account_id")?,
                name: self.name,
                description: self.description,
                application: self.application,
                app_id: self.app_id.map(|a| id(&a, "keys.app_id")).transpose()?,
                permissions: from_json(&self.permissions, "keys.permissions")?,
                status,
                protected: self.protected,
                created_at: self.created_at,
                updated_at: self.updated_at,
                last_used_at: self.last_used_at,
                expires_at: self.expires_at,
                allowed_cidrs: from_json(&self.allowed_cidrs, "keys.allowed_cidrs")?,
                allowed_origins: from_json(&self.allowed_origins, "keys.allowed_origins")?,
                metadata: from_json(&self.metadata, "keys.metadata")?,
            },
            secret_hash: PhcString(self.secret_hash),
            generation: to_u32(self.generation, "keys.generation")?,
            previous,
            version: to_u64(self.version, "keys.version")?,
            session_epoch: to_u32(self.session_epoch, "keys.session_epoch")?,
        })
    }
}

/// The JSON and text columns of a key, encoded once for either backend.
pub(crate) struct KeyColumns {
    pub(crate) name_lower: String,
    pub(crate) permissions: String,
    pub(crate) allowed_cidrs: String,
    pub(crate) allowed_origins: String,
    pub(crate) metadata: String,
    pub(crate) generation: i64,
    pub(crate) version: i64,
    pub(crate) session_epoch: i64,
}

impl KeyColumns {
    pub(crate) fn of(k: &StoredKey) -> StoreResult<Self> {
        Ok(Self {
            name_lower: k.key.name.to_lowercase(),
            permissions: to_json(&k.key.permissions)?,
            allowed_cidrs: to_json(&k.key.allowed_cidrs)?,
            allowed_origins: to_json(&k.key.allowed_origins)?,
            metadata: to_json(&k.key.metadata)?,
            generation: i64::from(k.generation),
            version: to_i64(k.version)?,
            session_epoch: i64::from(k.session_epoch),
        })
    }
}

/// Binds a key's columns (22 parameters), in the order
/// [`key_bind_columns!`] lists them. `$time`
/// turns each timestamp into the store's bound type.
macro_rules! bind_key_columns {
    ($query:expr, $key:expr, $columns:expr, $time:expr) => {{
        let (key, c, time) = ($key, $columns, $time);
        let k = &key.key;
        $query
            .bind(k.account_id.as_str())
            .bind(&k.name)
            .bind(&c.name_lower)
            .bind(&k.description)
            .bind(k.application.as_deref())
            .bind(&c.permissions)
            .bind($crate::store::sql::status_str(k.status))
            .bind(k.protected)
            .bind(time(k.created_at))
            .bind(time(k.updated_at))
            .bind(k.last_used_at.map(time))
            .bind(k.expires_at.map(time))
            .bind(&c.allowed_cidrs)
            .bind(&c.metadata)
            .bind(&key.secret_hash.0)
            .bind(c.generation)
            .bind(key.previous.as_ref().map(|p| p.hash.0.as_str()))
            .bind(key.previous.as_ref().map(|p| time(p.valid_until)))
            .bind(c.version)
            .bind(c.session_epoch)
            .bind(k.app_id.as_ref().map(|a| a.as_str()))
            .bind(&c.allowed_origins)
    }};
}
pub(crate) use bind_key_columns;

/// The key columns [`bind_key_columns!`] binds, in its order, as one
/// literal (for `concat!` into each store's `INSERT`): written once beside
/// the macro, so a new column cannot be bound in one order and listed in
/// another.
macro_rules! key_bind_columns {
    () => {
        "account_id, name, name_lower, description, application, permissions, status, \
         protected, created_at, updated_at, last_used_at, expires_at, allowed_cidrs, metadata, \
         secret_hash, generation, previous_hash, previous_valid_until, version, session_epoch, \
         app_id, allowed_origins"
    };
}
pub(crate) use key_bind_columns;

/// The keys in rows of [`key_for_verify_query`]: one or more rows per key
/// (one per limits row), in any order. `id`, `key` and `limits` read a
/// row's key id, its record with its application's status, and its
/// limits row: each store
/// decodes its own rows.
pub(crate) fn group_keys_for_verify<R>(
    rows: &[R],
    id: impl Fn(&R) -> StoreResult<String>,
    key: impl Fn(&R) -> StoreResult<(StoredKey, Option<String>)>,
    limits: impl Fn(&R) -> StoreResult<Option<super::StoredLimits>>,
) -> StoreResult<Vec<super::KeyForVerify>> {
    let mut out: Vec<super::KeyForVerify> = Vec::new();
    let mut at = HashMap::<String, usize>::new();
    for r in rows {
        let i = match at.entry(id(r)?) {
            std::collections::hash_map::Entry::Occupied(e) => *e.get(),
            std::collections::hash_map::Entry::Vacant(e) => {
                let (stored, app_status) = key(r)?;
                let app_active = stored
                    .key
                    .app_id
                    .map(|_| app_status.as_deref() == Some(AppStatus::Active.as_str()));
                out.push(super::KeyForVerify::new(stored, app_active, Vec::new()));
                *e.insert(out.len() - 1)
            }
        };
        out[i].limits.extend(limits(r)?);
    }
    Ok(out)
}

/// The `SELECT` of [`KeyStore::get_key_for_verify`](super::KeyStore::get_key_for_verify)
/// for a backend whose key columns are `key_columns` and whose joins need
/// `app_join` and `key_owner` (collations): the key joined with its
/// application's status and the `owner_limits` rows of its owners, one
/// row per limits row (at least one). The limits columns are aliased
/// `l_<column>`. `condition` follows `WHERE k.id `: `= ?` for one key,
/// `IN (?, …)` or `= ANY($1)` for several
/// ([`KeyStore::get_keys_for_verify`](super::KeyStore::get_keys_for_verify)),
/// so both reads are this one query.
pub(crate) fn key_for_verify_query(
    key_columns: &str,
    app_join: &str,
    key_owner: &str,
    condition: &str,
) -> String {
    let k: Vec<String> = key_columns
        .split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(|c| format!("k.{c}"))
        .collect();
    let l: Vec<String> = super::limits::row::COLUMNS
        .split(',')
        .map(str::trim)
        .map(|c| format!("l.{c} AS l_{c}"))
        .collect();
    format!(
        "SELECT {}, a.status AS app_status, {} \
         FROM keys k LEFT JOIN apps a ON {app_join} \
         LEFT JOIN owner_limits l ON (l.owner_kind = 'key' AND l.owner_id = {key_owner}) \
         OR (l.owner_kind = 'app' AND l.owner_id = k.app_id) \
         OR (l.owner_kind = 'account' AND l.owner_id = k.account_id) \
         WHERE k.id {condition}",
        k.join(", "),
        l.join(", ")
    )
}

/// Most ids in one `IN (...)` / `= ANY(...)` read of
/// [`KeyStore::get_keys_for_verify`](super::KeyStore::get_keys_for_verify);
/// more are read in chunks of this size.
pub(crate) const KEYS_PER_READ: usize = 500;

/// `(id, version)` rows of keys, validated.
pub(crate) fn key_versions(rows: &[(String, i64)]) -> StoreResult<Vec<(KeyId, u64)>> {
    rows.iter()
        .map(|(k, v)| Ok((id(k, "keys.id")?, to_u64(*v, "keys.version")?)))
        .collect()
}

/// The account row as read by either backend, before validation.
pub(crate) struct AccountRow {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) parent: Option<String>,
    pub(crate) permissions: String,
    pub(crate) status: String,
    pub(crate) created_at: OffsetDateTime,
    pub(crate) last_used_at: Option<OffsetDateTime>,
    pub(crate) version: i64,
}

impl AccountRow {
    /// Validates the row into an [`Account`].
    pub(crate) fn into_account(self) -> StoreResult<Account> {
        Ok(Account {
            id: id(&self.id, "accounts.id")?,
            name: self.name,
            parent: self
                .parent
                .map(|p| id::<AccountId>(&p, "accounts.parent"))
                .transpose()?,
            permissions: from_json(&self.permissions, "accounts.permissions")?,
            status: AccountStatus::parse(&self.status).ok_or_else(|| corrupt("accounts.status"))?,
            created_at: self.created_at,
            last_used_at: self.last_used_at,
            version: to_u64(self.version, "accounts.version")?,
        })
    }
}

/// The application row as read by either backend, with its key counts.
pub(crate) struct AppRow {
    pub(crate) id: String,
    pub(crate) account_id: String,
    pub(crate) title: String,
    pub(crate) description: String,
    pub(crate) status: String,
    pub(crate) created_at: OffsetDateTime,
    pub(crate) updated_at: OffsetDateTime,
    pub(crate) active_keys: i64,
    pub(crate) inactive_keys: i64,
    pub(crate) protected_keys: i64,
    pub(crate) last_used_at: Option<OffsetDateTime>,
}

impl AppRow {
    /// Validates the row into an [`App`].
    pub(crate) fn into_app(self) -> StoreResult<App> {
        Ok(App {
            id: id(&self.id, "apps.id")?,
            account_id: id(&self.account_id, "apps.account_id")?,
            title: self.title,
            description: self.description,
            status: AppStatus::parse(&self.status).ok_or_else(|| corrupt("apps.status"))?,
            created_at: self.created_at,
            updated_at: self.updated_at,
            active_keys: to_u64(self.active_keys, "apps.active_keys")?,
            inactive_keys: to_u64(self.inactive_keys, "apps.inactive_keys")?,
            protected: self.protected_keys > 0,
            last_used_at: self.last_used_at,
        })
    }
}

/// The columns of an application with its key counts, for a `SELECT … FROM
/// apps a`.
pub(crate) const APP_COLUMNS: &str = "a.id, a.account_id, a.title, a.description, a.status, \
     a.created_at, a.updated_at, a.last_used_at, \
     (SELECT COUNT(*) FROM keys k WHERE k.app_id = a.id AND k.status = 'active') AS active_keys, \
     (SELECT COUNT(*) FROM keys k WHERE k.app_id = a.id AND k.status = 'inactive') AS inactive_keys, \
     (SELECT COUNT(*) FROM keys k WHERE k.app_id = a.id AND k.protected = TRUE) AS protected_keys";

/// The audit event row as read by either backend.
pub(crate) struct EventRow {
    pub(crate) id: String,
    pub(crate) at: OffsetDateTime,
    pub(crate) action: String,
    pub(crate) account_id: String,
    pub(crate) key_id: Option<String>,
    pub(crate) session_id: Option<String>,
    pub(crate) app_id: Option<String>,
    pub(crate) actor: String,
    pub(crate) client_ip: Option<String>,
    pub(crate) details: String,
}

impl EventRow {
    pub(crate) fn into_event(self) -> StoreResult<AuditEvent> {
        Ok(AuditEvent {
            id: self.id,
            at: self.at,
            action: AuditAction::parse(&self.action).ok_or_else(|| corrupt("audit.action"))?,
            account_id: id(&self.account_id, "audit.account_id")?,
            key_id: self
                .key_id
                .map(|k| id::<KeyId>(&k, "audit.key_id"))
                .transpose()?,
            session_id: self
                .session_id
                .map(|s| id::<SessionId>(&s, "audit.session_id"))
                .transpose()?,
            app_id: self
                .app_id
                .map(|a| id::<AppId>(&a, "audit.app_id"))
                .transpose()?,
            actor: from_json::<AuditActor>(&self.actor, "audit.actor")?,
            client_ip: self
                .client_ip
                .map(|ip| ip.parse().map_err(|_| corrupt("audit.client_ip")))
                .transpose()?,
            details: from_json(&self.details, "audit.details")?,
        })
    }
}

/// The columns of an audit event row, as [`EventRow`] reads them (SQLite;
/// PostgreSQL casts its JSON columns to text).
#[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
pub(crate) const EVENT_COLUMNS: &str = "id, at, action, account_id, key_id, session_id, app_id, \
     actor, client_ip, details";

/// The volume of summed usage columns (every outcome), in SQL: the order
/// of the usage and rollup rankings.
pub(crate) const VOLUME_SUM: &str =
    "(SUM(successes) + SUM(failures) + SUM(rate_limited) + SUM(usage_exceeded))";

/// The volume of one usage or rollup row (every outcome), in SQL: the
/// expression of the `usage_rollup_ranked` index (migration 0013).
pub(crate) const VOLUME: &str = "(successes + failures + rate_limited + usage_exceeded)";

/// Merges records of the same (key, origin, category, hour) so one
/// multi-row upsert never touches a row twice.
pub(crate) fn merge_usage(batch: &[UsageRecord]) -> Vec<UsageRecord> {
    let mut out: Vec<UsageRecord> = Vec::with_capacity(batch.len());
    let mut index: HashMap<(KeyId, &str, &str, OffsetDateTime), usize> = HashMap::new();
    for r in batch {
        let slot = (r.key_id, r.origin.as_str(), r.category.as_str(), r.hour);
        match index.get(&slot) {
            Some(&i) => {
                out[i].absorb(r);
            }
            None => {
                index.insert(slot, out.len());
                out.push(r.clone());
            }
        }
    }
    out
}

/// The latest use of each key in a batch.
pub(crate) fn last_used(batch: &[UsageRecord]) -> Vec<(KeyId, OffsetDateTime)> {
    latest(batch, |r| r.key_id)
}

/// The latest use in a batch of each `of(record)` (a key, an account).
pub(crate) fn latest<K: std::hash::Hash + Eq>(
    batch: &[UsageRecord],
    of: impl Fn(&UsageRecord) -> K,
) -> Vec<(K, OffsetDateTime)> {
    let mut latest: HashMap<K, OffsetDateTime> = HashMap::new();
    for r in batch {
        if let Some(t) = r.last_used_at {
            let e = latest.entry(of(r)).or_insert(t);
            *e = (*e).max(t);
        }
    }
    latest.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_duplicate_usage_slots() {
        let key = KeyId::new("kw_a").expect("id");
        let hour = time::macros::datetime!(2030-01-01 5:00 UTC);
        let rec = |s, f, t: Option<OffsetDateTime>| UsageRecord {
            key_id: key,
            account_id: AccountId::new("acct_a").expect("id"),
            origin: "api".into(),
            category: "default".into(),
            hour,
            successes: s,
            failures: f,
            rate_limited: f / 2,
            usage_exceeded: s * 2,
            last_used_at: t,
        };
        let t1 = hour + time::Duration::minutes(1);
        let t2 = hour + time::Duration::minutes(2);
        let mut other = rec(1, 0, None);
        other.origin = "mcp".into();
        let merged = merge_usage(&[rec(1, 2, Some(t2)), rec(3, 4, Some(t1)), other]);
        assert_eq!(merged.len(), 2);
        assert_eq!((merged[0].successes, merged[0].failures), (4, 6));
        assert_eq!((merged[0].rate_limited, merged[0].usage_exceeded), (3, 8));
        assert_eq!(merged[0].last_used_at, Some(t2));
        assert_eq!(last_used(&merged), vec![(key, t2)]);
    }

    #[test]
    fn maps_unavailable_codes() {
        assert!(unavailable_code("08006"));
        assert!(unavailable_code("57P01"));
        assert!(unavailable_code("5"));
        assert!(!unavailable_code("23505"));
        assert!(matches!(
            map_err(sqlx::Error::PoolTimedOut, "x"),
            StoreError::Unavailable(_)
        ));
        assert!(matches!(
            map_err(sqlx::Error::RowNotFound, "x"),
            StoreError::Backend(_)
        ));
    }
}
