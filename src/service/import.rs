//! Key import (feature `import`): keys issued by another system, moved in
//! with their existing secret or hash so that customers keep using the
//! strings they have (see [`LegacyKeys`] for how those are found and
//! verified).
//!
//! Every row is validated before anything is written, by the same rules
//! as [`Keyward::issue_key`] (fields, permissions, the actor's bounds); then
//! all rows are written in one store transaction with their `key_imported`
//! audit events. Importing an external id again finds the key it made.

use std::collections::HashSet;
use std::fmt;

use serde_json::json;
use zeroize::Zeroizing;

use super::legacy::LegacyKeys;
use super::{Actor, Keyward, NewKey};
use crate::api_key::ApiKey;
use crate::audit::AuditAction;
use crate::credential::SecretMaterial;
use crate::error::{Error, Result};
use crate::id::AccountId;
use crate::store::{ImportedKey, PhcString, StoreError, StoredKey};

/// Longest external id accepted.
const MAX_EXTERNAL_ID_LEN: usize = 200;

/// What an imported key is verified with.
enum Credential {
    /// The old key string itself, hashed with argon2id on import.
    Secret(Zeroizing<String>),
    /// The old system's hash of it: an argon2 PHC string, a bcrypt hash
    /// or SHA-256 hex, replaced by argon2id at the first match.
    Hash(String),
}

/// One key to import: its id in the old system, its account and fields (as
/// for [`Keyward::issue_key`]), and its secret or hash.
///
/// ```
/// use keyward::{AccountId, ImportKey, NewKey};
/// let account: AccountId = "acme".parse()?;
/// let row = ImportKey::with_hash(
///     "cus_42/key_7",
///     account,
///     NewKey::new("production"),
///     "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW",
/// )
/// .alias("pk_live_4eC39H");
/// # Ok::<_, Box<dyn std::error::Error>>(())
/// ```
pub struct ImportKey {
    external_id: String,
    account: AccountId,
    key: NewKey,
    credential: Credential,
    alias: Option<String>,
}

impl fmt::Debug for ImportKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ImportKey")
            .field("external_id", &self.external_id)
            .field("account", &self.account)
            .field("key", &self.key)
            .field("credential", &"[redacted]")
            .field("alias", &self.alias)
            .finish()
    }
}

impl ImportKey {
    /// A key whose old string `secret` is known: it is hashed with argon2id
    /// on import and its alias derived from it.
    pub fn with_secret(
        external_id: impl Into<String>,
        account: AccountId,
        key: NewKey,
        secret: impl Into<String>,
    ) -> Self {
        Self {
            external_id: external_id.into(),
            account,
            key,
            credential: Credential::Secret(Zeroizing::new(secret.into())),
            alias: None,
        }
    }

    /// A key known by the old system's hash of its string: an argon2 PHC
    /// string, a bcrypt hash (`$2b$…`) or 64 hex digits of SHA-256.
    pub fn with_hash(
        external_id: impl Into<String>,
        account: AccountId,
        key: NewKey,
        hash: impl Into<String>,
    ) -> Self {
        Self {
            external_id: external_id.into(),
            account,
            key,
            credential: Credential::Hash(hash.into()),
            alias: None,
        }
    }

    /// The alias of the old string, when it cannot be derived: its public
    /// part with [`LegacyKeys::leading`] and a hash, or its SHA-256 hex with
    /// [`LegacyKeys::sha256`] and a bcrypt or argon2 hash.
    pub fn alias(mut self, alias: impl Into<String>) -> Self {
        self.alias = Some(alias.into());
        self
    }

    /// The key's id in the old system.
    pub fn external_id(&self) -> &str {
        &self.external_id
    }
}

/// An imported key: its record, and whether this import created it (false
/// when its external id had been imported before).
#[derive(Debug, Clone)]
pub struct Imported {
    /// The key.
    pub key: ApiKey,
    /// Whether this import created it.
    pub created: bool,
}

/// A row that cannot be imported, by its position in the batch (0-based).
#[derive(Debug)]
pub struct RowError {
    /// Position of the row in the batch.
    pub row: usize,
    /// Why it cannot be imported.
    pub error: Error,
}

/// Why [`Keyward::import_keys`] imported nothing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImportError {
    /// These rows are invalid; nothing was written.
    #[error("{} invalid rows; nothing was imported", .0.len())]
    Invalid(Vec<RowError>),
    /// The import as a whole failed (store, configuration); nothing was
    /// written.
    #[error(transparent)]
    Failed(#[from] Error),
}

/// A validated row, ready to write.
struct Ready {
    row: usize,
    key: ApiKey,
    external_id: String,
    alias: String,
    hash: Option<PhcString>,
    secret: Option<Zeroizing<String>>,
    kind: &'static str,
}

impl Keyward {
    /// Imports one key (see [`import_keys`](Self::import_keys)).
    ///
    /// ```
    /// # use keyward::{Actor, ImportKey, Keyward, LegacyKeys, MemoryStore, NewAccount, NewKey, PermissionSet, VerifyContext};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let kw = Keyward::builder()
    ///     .store(MemoryStore::new())
    ///     .legacy_keys(LegacyKeys::sha256("sk_live_")?)
    ///     .build()?;
    /// let perms = PermissionSet::parse(["readApplications"])?;
    /// let account = kw.create_account(Actor::System, NewAccount::new("acme", perms.clone())).await?;
    /// let old = "sk_live_4eC39HqLyjWDarjtT1zdp7dc";
    /// let row = ImportKey::with_secret("key_7", account.id, NewKey::new("prod").permissions(perms), old);
    /// let imported = kw.import_key(Actor::System, row).await?;
    /// assert!(imported.created);
    /// let principal = kw.verify_legacy(old, VerifyContext::new()).await?;
    /// assert_eq!(principal.key_id(), &imported.key.id);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// The row's error, as [`import_keys`](Self::import_keys) reports it.
    pub async fn import_key(&self, actor: Actor<'_>, row: ImportKey) -> Result<Imported> {
        match self.import_keys(actor, vec![row]).await {
            Ok(mut done) => done.pop().ok_or(Error::NotFound("key")),
            Err(ImportError::Invalid(mut rows)) => {
                Err(rows.pop().map_or(Error::NotFound("key"), |r| r.error))
            }
            Err(ImportError::Failed(e)) => Err(e),
        }
    }

    /// Imports keys from another system, all or nothing: every row is
    /// checked first (as [`issue_key`](Self::issue_key) checks a new key,
    /// plus its secret or hash, its alias, and that no other key has them),
    /// then all are written in one transaction, each with a `key_imported`
    /// audit event. A row whose external id was imported before is not
    /// written again: its existing key is returned (`created: false`).
    ///
    /// Needs [`KeywardBuilder::legacy_keys`](crate::KeywardBuilder::legacy_keys):
    /// it says how the old strings are found.
    ///
    /// # Errors
    /// [`ImportError::Invalid`] with every bad row (nothing written);
    /// [`ImportError::Failed`] with [`Error::InvalidInput`] (`legacy_keys`)
    /// when none is configured, [`Error::Conflict`] when a concurrent import
    /// took an id or alias, [`Error::Unavailable`].
    #[tracing::instrument(name = "keyward.import_keys", skip_all, fields(rows = rows.len()), err(level = "debug", Display))]
    pub async fn import_keys(
        &self,
        actor: Actor<'_>,
        rows: Vec<ImportKey>,
    ) -> std::result::Result<Vec<Imported>, ImportError> {
        let legacy = self.inner.legacy.as_ref().ok_or(Error::InvalidInput {
            field: "legacy_keys",
            reason: "configure KeywardBuilder::legacy_keys to import keys".into(),
        })?;
        let now = self.now();
        let mut out: Vec<(usize, Imported)> = Vec::new();
        let mut ready = Vec::new();
        let mut errors = Vec::new();
        let (mut externals, mut aliases) = (HashSet::new(), HashSet::new());
        for (row, r) in rows.into_iter().enumerate() {
            if !externals.insert(r.external_id.clone()) {
                errors.push(RowError {
                    row,
                    error: invalid("external_id", "appears twice in this import"),
                });
                continue;
            }
            match self.check_row(actor, &legacy.keys, r, row, now).await {
                Ok(Checked::Existing(key)) => out.push((
                    row,
                    Imported {
                        key,
                        created: false,
                    },
                )),
                Ok(Checked::New(r)) if !aliases.insert(r.alias.clone()) => errors.push(RowError {
                    row,
                    error: invalid("alias", "another row of this import has it"),
                }),
                Ok(Checked::New(r)) => ready.push(r),
                Err(error) => errors.push(RowError { row, error }),
            }
        }
        if !errors.is_empty() {
            return Err(ImportError::Invalid(errors));
        }
        let mut batch = Vec::with_capacity(ready.len());
        for r in &mut ready {
            let hash = match (r.hash.take(), &r.secret) {
                (Some(h), _) => h,
                (None, Some(s)) => self.hash_secret(SecretMaterial(s.as_bytes())).await?,
                (None, None) => {
                    return Err(Error::Internal("import row without a hash".into()).into());
                }
            };
            let event = self.event(
                AuditAction::KeyImported,
                r.key.account_id,
                Some(r.key.id),
                None,
                actor,
                json!({ "name": r.key.name, "permissions": r.key.permissions, "external_id": r.external_id, "credential": r.kind }),
            );
            batch.push(ImportedKey {
                stored: StoredKey {
                    key: r.key.clone(),
                    secret_hash: hash,
                    generation: 0,
                    previous: None,
                    version: 1,
                    session_epoch: 0,
                },
                external_id: r.external_id.clone(),
                alias: r.alias.clone(),
                event,
            });
        }
        let read_at = self.now_nanos();
        match self.inner.store.insert_imported_keys(&batch).await {
            Ok(()) => {}
            Err(StoreError::Conflict(what)) => return Err(Error::Conflict(what).into()),
            Err(e) => return Err(Error::from(e).into()),
        }
        for (r, b) in ready.iter().zip(&batch) {
            let tag = r
                .secret
                .as_ref()
                .map(|s| self.inner.digester.tag(SecretMaterial(s.as_bytes())));
            // Warm at once when the secret was given; best effort (the
            // store has the key either way).
            let _ = self.cache_key(&b.stored, tag, read_at).await;
            legacy.remember(&b.alias, Some(b.stored.key.id), read_at);
            out.push((
                r.row,
                Imported {
                    key: b.stored.key.clone(),
                    created: true,
                },
            ));
        }
        out.sort_by_key(|(row, _)| *row);
        Ok(out.into_iter().map(|(_, i)| i).collect())
    }

    /// Checks one row: an existing import, or a new key ready to write.
    async fn check_row(
        &self,
        actor: Actor<'_>,
        legacy: &LegacyKeys,
        r: ImportKey,
        row: usize,
        now: time::OffsetDateTime,
    ) -> Result<Checked> {
        let ext = &r.external_id;
        if ext.is_empty() || ext.len() > MAX_EXTERNAL_ID_LEN || ext.chars().any(char::is_control) {
            return Err(invalid(
                "external_id",
                "1-200 characters, no control characters",
            ));
        }
        if let Some(id) = self.inner.store.imported_key(ext).await? {
            let key = self.get_key(actor, &id).await?;
            return Ok(Checked::Existing(key));
        }
        let (alias, hash, secret, kind) = match r.credential {
            Credential::Secret(s) => {
                if !legacy.matches(s.as_bytes()) {
                    return Err(invalid(
                        "secret",
                        &format!(
                            "not an old key string (prefix {:?}, visible ASCII, at most {} characters)",
                            legacy.prefix(),
                            super::legacy::MAX_LEGACY_KEY_LEN
                        ),
                    ));
                }
                let mut buf = [0u8; 64];
                let derived = legacy.alias_of(s.as_bytes(), &mut buf).to_owned();
                if r.alias.as_ref().is_some_and(|a| *a != derived) {
                    return Err(invalid("alias", "does not match the secret"));
                }
                (derived, None, Some(s), "secret")
            }
            Credential::Hash(h) => {
                let phc = self
                    .inner
                    .hasher
                    .imported(h.trim())
                    .map_err(|reason| invalid("hash", reason))?;
                let kind = hash_kind(&phc);
                let alias = match r.alias {
                    Some(a) => a,
                    None if legacy.by_digest() && kind == "sha256" => {
                        phc.0.rsplit('$').next().unwrap_or_default().to_owned()
                    }
                    None => {
                        return Err(invalid(
                            "alias",
                            "required with this hash: the public part of the old key (or its SHA-256)",
                        ));
                    }
                };
                (alias, Some(phc), None, kind)
            }
        };
        if !legacy.valid_alias(&alias) {
            return Err(invalid("alias", "not of the configured LegacyKeys form"));
        }
        if self.inner.store.key_by_alias(&alias).await?.is_some() {
            return Err(Error::Conflict("another imported key has this alias"));
        }
        let key = self.new_key_record(actor, &r.account, r.key, now).await?;
        Ok(Checked::New(Ready {
            row,
            key,
            external_id: r.external_id,
            alias,
            hash,
            secret,
            kind,
        }))
    }
}

/// What a row check found.
enum Checked {
    Existing(ApiKey),
    New(Ready),
}

/// The kind of a stored hash, for the audit event.
fn hash_kind(phc: &PhcString) -> &'static str {
    match crate::hash::legacy::Legacy::of(&phc.0) {
        Some(crate::hash::legacy::Legacy::Bcrypt) => "bcrypt",
        Some(crate::hash::legacy::Legacy::Sha256) => "sha256",
        None => "argon2",
    }
}

fn invalid(field: &'static str, reason: &str) -> Error {
    Error::InvalidInput {
        field,
        reason: reason.into(),
    }
}
