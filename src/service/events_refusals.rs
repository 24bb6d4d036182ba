//! Refused logins and management calls, recorded in the activity log
//! without letting a flood flood it.
//!
//! A refusal is counted in memory under (key, cause, minute): no store
//! access and no allocation beyond the first of its minute, and the same
//! work whether the key exists or not, so the refusal a caller sees (and
//! its timing) stays what it was. [`Keyward::flush`] writes each count as
//! one event ([`AuditAction::LoginFailed`] or
//! [`AuditAction::ManagementRefused`]) whose id is the (key, cause, minute)
//! itself, merged with the store's event of the same id: at most one event
//! per key, cause and minute, across flushes and instances, with
//! `details.count` saying how many. Only keys that exist are recorded
//! (their account owns the log); ids of no key are dropped at the flush.
//! Nothing secret is recorded: the key id is public, the secret presented
//! is never looked at here.

// Only the HTTP adapters refuse logins and management calls.
#![cfg_attr(not(any(feature = "axum", feature = "actix")), allow(dead_code))]

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use serde_json::json;
use time::OffsetDateTime;

use super::Keyward;
use crate::audit::{ActorKind, AuditAction, AuditActor, AuditEvent};
use crate::credential::{parse_combined_key, parse_key_id, parse_session_token};
use crate::error::{Error, Result};
use crate::id::KeyId;
use crate::store::StoreError;

/// Distinct (key, cause, minute) counts held between flushes; refusals of
/// further keys are dropped (and counted in the log line of the flush).
const MAX_PENDING: usize = 10_000;

/// What was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Refused {
    /// A login (`POST /auth/login`).
    Login,
    /// A management request.
    Management,
}

impl Refused {
    fn action(self) -> AuditAction {
        match self {
            Self::Login => AuditAction::LoginFailed,
            Self::Management => AuditAction::ManagementRefused,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Slot {
    key: KeyId,
    what: Refused,
    cause: &'static str,
    /// Unix minute.
    minute: i64,
}

#[derive(Debug, Clone, Copy)]
struct Count {
    n: u64,
    client_ip: Option<IpAddr>,
}

/// The counts waiting for the next flush.
#[derive(Debug, Default)]
pub(crate) struct Refusals {
    pending: Mutex<HashMap<Slot, Count>>,
    dropped: Mutex<u64>,
}

/// The cause recorded for a refused verification, or `None` when nothing
/// is recorded (malformed credentials name no key; an unavailable store
/// refused nobody).
pub(crate) fn cause_of(e: &Error) -> Option<&'static str> {
    Some(match e {
        // For a key that exists (only those are recorded): a wrong secret.
        Error::Unauthorized => "wrong_secret",
        Error::KeyInactive => "key_inactive",
        Error::KeyExpired => "key_expired",
        Error::ClientNotAllowed => "client_not_allowed",
        Error::TooManyAttempts { .. } => "too_many_attempts",
        _ => return None,
    })
}

impl Keyward {
    /// Counts a refusal of the key whose id `key_id` presents (header
    /// bytes; anything not a key id is ignored).
    pub(crate) fn note_refused_key(
        &self,
        what: Refused,
        key_id: &[u8],
        cause: &'static str,
        client_ip: Option<IpAddr>,
    ) {
        if let Ok(id) = parse_key_id(key_id, &self.inner.prefix) {
            self.note_refusal(what, id, cause, client_ip);
        }
    }

    /// Counts a refusal of a bearer credential: the single-string key form
    /// names its key; a session token, the key its session was opened
    /// with, when this instance holds the session (a refused management
    /// call of a live session: it was just verified). Nothing is read from
    /// the store here.
    pub(crate) fn note_refused_bearer(
        &self,
        what: Refused,
        token: &[u8],
        cause: &'static str,
        client_ip: Option<IpAddr>,
    ) {
        if let Ok((id, _)) = parse_combined_key(token, &self.inner.prefix) {
            self.note_refusal(what, id, cause, client_ip);
        } else if let Ok((session, _)) = parse_session_token(token, &self.inner.prefix)
            && let Some(entry) = self.inner.sessions.get(&session)
        {
            self.note_refusal(what, entry.key_id, cause, client_ip);
        }
    }

    /// Counts a refusal of `key` under its cause and the current minute.
    pub(crate) fn note_refusal(
        &self,
        what: Refused,
        key: KeyId,
        cause: &'static str,
        client_ip: Option<IpAddr>,
    ) {
        let minute = self.now().unix_timestamp().div_euclid(60);
        let slot = Slot {
            key,
            what,
            cause,
            minute,
        };
        let r = &self.inner.refusals;
        let mut pending = r.pending.lock().unwrap_or_else(|e| e.into_inner());
        let full = pending.len() >= MAX_PENDING;
        match pending.get_mut(&slot) {
            Some(c) => {
                c.n = c.n.saturating_add(1);
                c.client_ip = client_ip.or(c.client_ip);
            }
            None if full => {
                drop(pending);
                let mut d = r.dropped.lock().unwrap_or_else(|e| e.into_inner());
                *d = d.saturating_add(1);
            }
            None => {
                pending.insert(slot, Count { n: 1, client_ip });
            }
        }
    }

    /// Writes the pending refusal counts as events (see the module doc);
    /// on failure they are kept for the next flush.
    pub(crate) async fn flush_refusals(&self) -> Result<()> {
        let r = &self.inner.refusals;
        let batch: Vec<(Slot, Count)> = {
            let mut pending = r.pending.lock().unwrap_or_else(|e| e.into_inner());
            pending.drain().collect()
        };
        let dropped = std::mem::take(&mut *r.dropped.lock().unwrap_or_else(|e| e.into_inner()));
        if dropped > 0 {
            tracing::warn!(target: "keyward::events", dropped, "refusals of too many distinct keys in one flush interval were not recorded");
        }
        if batch.is_empty() {
            return Ok(());
        }
        match self.write_refusals(&batch).await {
            Ok(()) => Ok(()),
            Err(e) => {
                let mut pending = r.pending.lock().unwrap_or_else(|e| e.into_inner());
                for (slot, c) in batch {
                    if pending.len() >= MAX_PENDING && !pending.contains_key(&slot) {
                        continue;
                    }
                    let e = pending.entry(slot).or_insert(Count {
                        n: 0,
                        client_ip: c.client_ip,
                    });
                    e.n = e.n.saturating_add(c.n);
                }
                Err(e)
            }
        }
    }

    async fn write_refusals(&self, batch: &[(Slot, Count)]) -> Result<()> {
        let mut owners: HashMap<KeyId, Option<(crate::id::AccountId, Option<crate::id::AppId>)>> =
            HashMap::new();
        let mut events = Vec::with_capacity(batch.len());
        for (slot, c) in batch {
            let owner = match owners.get(&slot.key) {
                Some(o) => *o,
                None => {
                    let o = self
                        .inner
                        .store
                        .get_key(&slot.key)
                        .await?
                        .map(|k| (k.key.account_id, k.key.app_id));
                    owners.insert(slot.key, o);
                    o
                }
            };
            let Some((account, app)) = owner else {
                continue;
            };
            let at = OffsetDateTime::from_unix_timestamp(slot.minute * 60)
                .map_err(|e| Error::Internal(Box::new(e)))?;
            events.push(AuditEvent {
                id: refusal_id(slot),
                at,
                action: slot.what.action(),
                account_id: account,
                key_id: Some(slot.key),
                session_id: None,
                app_id: app,
                actor: AuditActor {
                    kind: ActorKind::Key,
                    key_id: Some(slot.key),
                    session_id: None,
                    account_id: Some(account),
                    user_id: None,
                    user_name: None,
                },
                client_ip: c.client_ip,
                details: json!({ "cause": slot.cause, "count": c.n }),
            });
        }
        match self.inner.store.record_refusals(&events).await {
            Ok(()) => Ok(()),
            // A store that does not record refusals (a third-party store
            // written before they existed): not worth failing every flush.
            Err(StoreError::Backend(e)) => {
                tracing::warn!(target: "keyward::events", error = %e, "refusal events not recorded");
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// The event id of a (key, cause, minute): the same on every instance, so
/// their counts merge into one event.
fn refusal_id(slot: &Slot) -> String {
    let what = match slot.what {
        Refused::Login => "login",
        Refused::Management => "mgmt",
    };
    format!(
        "evt_r{:011}_{what}_{}_{}",
        slot.minute, slot.cause, slot.key
    )
}
