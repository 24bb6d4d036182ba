//! Audit events and usage queries.

use std::sync::atomic::{AtomicU64, Ordering};

use time::OffsetDateTime;

use super::{Actor, Keyward};
use crate::audit::{AuditAction, AuditEvent};
use crate::context::Label;
use crate::error::{Error, Result};
use crate::id::{AccountId, KeyId, SessionId};
use crate::permission::Permission;
use crate::random::fill_base62;
use crate::store::{UsageQuery, UsageRecord};

/// One page of audit events, newest first.
#[derive(Debug, Clone)]
pub struct EventPage {
    /// The events.
    pub items: Vec<AuditEvent>,
    /// Cursor for the next (older) page; `None` on the last.
    pub next_cursor: Option<String>,
}

/// Which usage [`Keyward::usage`] returns.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct UsageFilter {
    /// Only this key (otherwise every key of the account).
    pub key_id: Option<KeyId>,
    /// Only this origin.
    pub origin: Option<Label>,
    /// Hours at or after this instant.
    pub from: OffsetDateTime,
    /// Hours before this instant.
    pub to: OffsetDateTime,
}

impl UsageFilter {
    /// Usage between `from` and `to`.
    pub fn between(from: OffsetDateTime, to: OffsetDateTime) -> Self {
        Self {
            key_id: None,
            origin: None,
            from,
            to,
        }
    }
    /// Only `key`.
    pub fn key(mut self, key: KeyId) -> Self {
        self.key_id = Some(key);
        self
    }
    /// Only `origin`.
    pub fn origin(mut self, origin: Label) -> Self {
        self.origin = Some(origin);
        self
    }
}

/// The before and after values of the fields a change touched, for its
/// audit event's `before` and `after`. Only public records (keys,
/// accounts, applications) are compared, never a secret or its hash.
#[derive(Debug, Default)]
pub(crate) struct Diff {
    pub(crate) before: serde_json::Map<String, serde_json::Value>,
    pub(crate) after: serde_json::Map<String, serde_json::Value>,
}

impl Diff {
    /// The serialized values of `fields` in `before` and in `after`.
    pub(crate) fn of<T: serde::Serialize>(before: &T, after: &T, fields: &[&str]) -> Self {
        let pick = |v: &T| {
            let mut all = match serde_json::to_value(v) {
                Ok(serde_json::Value::Object(m)) => m,
                _ => serde_json::Map::new(),
            };
            fields
                .iter()
                .map(|f| {
                    (
                        (*f).to_owned(),
                        all.remove(*f).unwrap_or(serde_json::Value::Null),
                    )
                })
                .collect()
        };
        Self {
            before: pick(before),
            after: pick(after),
        }
    }
}

impl Keyward {
    /// Builds an audit event stamped now.
    pub(crate) fn event(
        &self,
        action: AuditAction,
        account_id: AccountId,
        key_id: Option<KeyId>,
        session_id: Option<SessionId>,
        actor: Actor<'_>,
        details: serde_json::Value,
    ) -> AuditEvent {
        // Ties on `at` (a manual clock, a coarse system clock) are broken by
        // a per-process sequence, so listings show events in the order they
        // were made; the random tail keeps ids unique across instances.
        static SEQUENCE: AtomicU64 = AtomicU64::new(0);
        let seq = SEQUENCE.fetch_add(1, Ordering::Relaxed);
        let mut r = [0u8; 12];
        fill_base62(&mut r);
        AuditEvent {
            id: format!(
                "evt_{seq:012}{}",
                std::str::from_utf8(&r).unwrap_or_default()
            ),
            at: self.now(),
            action,
            account_id,
            key_id,
            session_id,
            app_id: None,
            actor: actor.audit(),
            client_ip: actor.client_ip(),
            details,
        }
    }

    /// Audit events of `account` (of one key when `key` is given), newest
    /// first. Events of deleted keys remain.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad limit or cursor,
    /// [`Error::Forbidden`] without `readApiKeys`, [`Error::NotFound`] for
    /// a foreign account, or a key that is not (and never was) one of
    /// `account`'s, [`Error::Unavailable`].
    pub async fn events(
        &self,
        actor: Actor<'_>,
        account: &AccountId,
        key: Option<&KeyId>,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<EventPage> {
        let mut filter = super::EventFilter::new();
        filter.key_id = key.copied();
        self.events_matching(actor, account, &filter, limit, cursor)
            .await
    }

    /// Usage counts per key, origin, category and hour (flushes pending
    /// counts first, so the answer includes every verification so far).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when `from` is after `to`,
    /// [`Error::Forbidden`], [`Error::NotFound`], [`Error::Unavailable`].
    #[tracing::instrument(name = "keyward.usage", skip_all, fields(account_id = %account), err(level = "debug", Display))]
    pub async fn usage(
        &self,
        actor: Actor<'_>,
        account: &AccountId,
        filter: UsageFilter,
    ) -> Result<Vec<UsageRecord>> {
        if filter.from > filter.to {
            return Err(Error::InvalidInput {
                field: "from",
                reason: "must not be after `to`".into(),
            });
        }
        actor.authorize(account, &Permission::read_api_keys(), "account")?;
        if let Err(e) = self.flush().await {
            tracing::warn!(target: "keyward::usage", error = %e, "flush before usage query failed");
        }
        let query = UsageQuery {
            account_id: *account,
            key_id: filter.key_id,
            origin: filter.origin.map(|o| o.as_str().to_owned()),
            from: filter.from,
            to: filter.to,
        };
        Ok(self.inner.store.usage(&query).await?)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;

    use super::Diff;

    /// Only the named fields, each with its value before and after.
    #[test]
    fn a_diff_has_the_changed_fields_before_and_after() {
        let before = json!({ "name": "ci", "status": "active", "permissions": ["a"] });
        let after = json!({ "name": "ci", "status": "inactive", "permissions": ["a", "b"] });
        let d = Diff::of(&before, &after, &["status", "permissions"]);
        assert_eq!(
            serde_json::Value::Object(d.before),
            json!({ "status": "active", "permissions": ["a"] })
        );
        assert_eq!(
            serde_json::Value::Object(d.after),
            json!({ "status": "inactive", "permissions": ["a", "b"] })
        );
    }
}
