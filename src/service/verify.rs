//! Verification: keys, the single-string form, sessions, bearer tokens.

use std::ops::ControlFlow;
use std::sync::Arc;

use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::Keyward;
use crate::cache::{SessionEntry, Warm};
use crate::context::VerifyContext;
use crate::credential::{
    MalformedCredential, SecretMaterial, parse_combined_key, parse_key_id, parse_key_secret,
    parse_session_token,
};
use crate::digest::{Tag, session_digest};
use crate::error::{Error, Result};
use crate::hash::Checked;
use crate::id::{AccountId, KeyId, SessionId};
use crate::principal::{Grant, Principal};
use crate::store::PhcString;
use crate::usage::time_to_nanos;

/// What a bearer value holds, by its marker.
enum Bearer {
    Session,
    Key,
    Malformed(MalformedCredential),
}

/// What a cold verification found.
enum ColdOutcome {
    Matched {
        previous: bool,
        rehashed: Option<PhcString>,
    },
    Mismatch,
}

impl Keyward {
    /// Verifies a key id and secret (`x-api-key` / `x-api-secret`).
    ///
    /// Warm (the secret verified on this instance within W) this is one
    /// cache lookup, one keyed SipHash digest and one constant-time compare,
    /// and allocates nothing. Cold it reads the store and runs argon2 on a
    /// blocking thread, bounded in concurrency and per key by the failed
    /// attempt limit.
    ///
    /// # Errors
    /// [`Error::Malformed`] before any lookup for a malformed credential;
    /// [`Error::Unauthorized`] for an unknown key or a wrong secret (the
    /// same error, so a caller without the secret learns nothing about the
    /// key); [`Error::KeyInactive`], [`Error::KeyExpired`],
    /// [`Error::ClientNotAllowed`] only with the correct secret;
    /// [`Error::TooManyAttempts`]; [`Error::Unavailable`] when the store is
    /// needed and down (fail closed).
    ///
    /// # Timing
    /// What response time can still reveal: whether the key id exists and
    /// whether this instance has a verified tag for it (an unknown id costs
    /// a store lookup, then none for W while it is remembered as missing; a
    /// known cold key an argon2 run; a warm key neither).
    /// Key ids are public identifiers, so this reveals nothing that grants
    /// access. Whether a key is inactive, expired or restricted is checked
    /// only after the secret matched, so it is not observable without it.
    pub async fn verify(
        &self,
        key_id: &str,
        secret: &str,
        ctx: VerifyContext,
    ) -> Result<Principal> {
        self.verify_key_bytes(key_id.as_bytes(), secret.as_bytes(), ctx)
            .await
    }

    /// [`verify`](Self::verify) of credentials as bytes (header values):
    /// anything but the credential format is malformed.
    pub(crate) async fn verify_key_bytes(
        &self,
        key_id: &[u8],
        secret: &[u8],
        ctx: VerifyContext,
    ) -> Result<Principal> {
        // Read before parsing: see `key_cached`.
        let now = self.now_nanos();
        let (id, material) = self.parse_key(key_id, secret)?;
        self.verify_material(id, material, ctx, now).await
    }

    /// [`verify`](Self::verify) from this instance's caches alone,
    /// synchronously and without allocating: `Some` with the outcome when
    /// they decide it (a key verified here within W, a known wrong secret,
    /// an id remembered as missing, a malformed credential), `None` when
    /// the store or argon2 is needed — then call [`verify`](Self::verify).
    /// A decided outcome is counted in the key's usage like any other.
    ///
    /// For synchronous hooks (a gRPC interceptor, a custom middleware)
    /// and for the HTTP adapters, which answer most requests this way.
    /// Takes the header values' bytes as they are (`&str`, `&[u8]` or
    /// `http::HeaderValue`).
    ///
    /// ```
    /// # use keyward::{Actor, Keyward, MemoryStore, NewAccount, NewKey, PermissionSet, VerifyContext};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let kw = Keyward::builder().store(MemoryStore::new()).build()?;
    /// # let perms = PermissionSet::parse(["readApplications"])?;
    /// # let account = kw.create_account(Actor::System, NewAccount::new("acme", perms.clone())).await?;
    /// # let issued = kw.issue_key(Actor::System, &account.id, NewKey::new("ci").permissions(perms)).await?;
    /// let (id, secret) = (issued.key.id.as_str(), issued.secret.expose());
    /// let ctx = VerifyContext::new();
    /// let principal = match kw.verify_cached(id, secret, ctx) {
    ///     Some(decided) => decided?,
    ///     // Not verified on this instance within W: the store and argon2.
    ///     None => kw.verify(id, secret, ctx).await?,
    /// };
    /// assert_eq!(principal.key_id(), &issued.key.id);
    /// // A wrong secret for a warm key is refused from the cache too.
    /// let wrong = kw.verify_cached(id, "kw_sk_not-the-secret", ctx);
    /// assert!(matches!(wrong, Some(Err(_))));
    /// # Ok(()) }
    /// ```
    #[inline]
    pub fn verify_cached(
        &self,
        key_id: impl AsRef<[u8]>,
        secret: impl AsRef<[u8]>,
        ctx: VerifyContext,
    ) -> Option<Result<Principal>> {
        self.key_cached(key_id.as_ref(), secret.as_ref(), ctx)
    }

    #[inline]
    fn key_cached(
        &self,
        key_id: &[u8],
        secret: &[u8],
        ctx: VerifyContext,
    ) -> Option<Result<Principal>> {
        // The clock first: reading it orders the instructions before it
        // (`rdtsc` behind a fence), so it is cheapest before the parsing
        // and checksum work rather than after.
        let now = self.now_nanos();
        match self.parse_key(key_id, secret) {
            Ok((id, m)) => self.verify_warm(id, m, &mut None, ctx, now),
            Err(e) => {
                crate::hint::cold_path();
                Some(Err(e.into()))
            }
        }
    }

    /// The key id and the secret's material, both checked before any
    /// lookup.
    #[inline]
    fn parse_key<'a>(
        &self,
        key_id: &[u8],
        secret: &'a [u8],
    ) -> std::result::Result<(KeyId, SecretMaterial<'a>), MalformedCredential> {
        let id = parse_key_id(key_id, &self.inner.prefix)?;
        Ok((id, parse_key_secret(secret, &self.inner.prefix)?))
    }

    /// [`verify_bearer`](Self::verify_bearer) from this instance's caches
    /// alone: `None` when the store or argon2 is needed (see
    /// [`verify_cached`](Self::verify_cached)).
    #[inline]
    pub fn verify_bearer_cached(
        &self,
        token: impl AsRef<[u8]>,
        ctx: VerifyContext,
    ) -> Option<Result<Principal>> {
        let token = token.as_ref();
        let p = &self.inner.prefix;
        match self.bearer_kind(token) {
            Bearer::Session => match parse_session_token(token, p) {
                Ok((sid, m)) => self.session_cached(sid, &session_digest(m), ctx),
                Err(e) => Some(Err(e.into())),
            },
            Bearer::Key => match (self.now_nanos(), parse_combined_key(token, p)) {
                (now, Ok((id, m))) => self.verify_warm(id, m, &mut None, ctx, now),
                (_, Err(e)) => Some(Err(e.into())),
            },
            Bearer::Malformed(e) => Some(Err(e.into())),
        }
    }

    /// What a bearer value is, by its marker.
    fn bearer_kind(&self, token: &[u8]) -> Bearer {
        let marker = token
            .strip_prefix(self.inner.prefix.as_str().as_bytes())
            .and_then(|r| r.strip_prefix(b"_"))
            .and_then(|r| r.get(..3));
        match marker {
            Some(b"st_") => Bearer::Session,
            Some(b"ak_") => Bearer::Key,
            _ if token.len() > crate::credential::MAX_CREDENTIAL_LEN => {
                Bearer::Malformed(MalformedCredential::TooLong)
            }
            _ => Bearer::Malformed(MalformedCredential::Format),
        }
    }

    /// The warm path, synchronous and allocation-free: `None` when the
    /// cache cannot decide (absent, stale or cold entry).
    #[inline]
    fn verify_warm(
        &self,
        id: KeyId,
        m: SecretMaterial<'_>,
        tag: &mut Option<Tag>,
        ctx: VerifyContext,
        now: i64,
    ) -> Option<Result<Principal>> {
        let bucket = self.inner.usage.bucket(ctx.origin, ctx.category, now);
        let digester = &self.inner.digester;
        let warm = self.inner.keys.check(
            &id,
            || *tag.insert(digester.tag(m)),
            now,
            self.inner.window_nanos,
            ctx.client_ip,
            bucket,
        );
        match self.decide(warm, id, now, ctx) {
            ControlFlow::Break(decided) => Some(decided),
            ControlFlow::Continue(_) => None,
        }
    }

    /// The outcome when the cache decided (a match, a mismatch, an id known
    /// to be missing), counting it unless the entry did; otherwise the
    /// cache's answer back (cold or stale: the store or argon2 must say).
    #[inline]
    fn decide(
        &self,
        warm: Warm,
        id: KeyId,
        now: i64,
        ctx: VerifyContext,
    ) -> ControlFlow<Result<Principal>, Warm> {
        ControlFlow::Break(match warm {
            Warm::Match {
                grant,
                active,
                expires_at,
                ip_allowed,
                counted,
            } => self.conclude(id, grant, active, expires_at, ip_allowed, counted, now, ctx),
            Warm::Mismatch { account, counted } => {
                crate::hint::cold_path();
                if !counted {
                    self.inner
                        .usage
                        .record(id, &account, ctx.origin, ctx.category, now, false);
                }
                Err(Error::Unauthorized)
            }
            Warm::Missing => {
                crate::hint::cold_path();
                Err(Error::Unauthorized)
            }
            undecided @ (Warm::Cold { .. } | Warm::Stale) => {
                crate::hint::cold_path();
                return ControlFlow::Continue(undecided);
            }
        })
    }

    /// Verifies the single-string key form (see
    /// [`combine_key`](crate::combine_key)).
    ///
    /// # Errors
    /// As [`verify`](Self::verify).
    pub async fn verify_combined(&self, credential: &str, ctx: VerifyContext) -> Result<Principal> {
        let now = self.now_nanos();
        let (id, material) = parse_combined_key(credential.as_bytes(), &self.inner.prefix)?;
        self.verify_material(id, material, ctx, now).await
    }

    /// Verifies an `Authorization: Bearer` value: a session token or the
    /// single-string key form.
    ///
    /// # Errors
    /// As [`verify`](Self::verify) and [`verify_session`](Self::verify_session).
    pub async fn verify_bearer(&self, token: &str, ctx: VerifyContext) -> Result<Principal> {
        self.verify_bearer_bytes(token.as_bytes(), ctx).await
    }

    /// [`verify_bearer`](Self::verify_bearer) of a header value's bytes.
    pub(crate) async fn verify_bearer_bytes(
        &self,
        token: &[u8],
        ctx: VerifyContext,
    ) -> Result<Principal> {
        let p = &self.inner.prefix;
        match self.bearer_kind(token) {
            Bearer::Session => {
                let (sid, m) = parse_session_token(token, p)?;
                self.verify_session_parsed(sid, m, ctx).await
            }
            Bearer::Key => {
                let now = self.now_nanos();
                let (id, material) = parse_combined_key(token, p)?;
                self.verify_material(id, material, ctx, now).await
            }
            Bearer::Malformed(e) => Err(e.into()),
        }
    }

    async fn verify_material(
        &self,
        id: KeyId,
        m: SecretMaterial<'_>,
        ctx: VerifyContext,
        now: i64,
    ) -> Result<Principal> {
        let mut tag = None;
        if let Some(decided) = self.verify_warm(id, m, &mut tag, ctx, now) {
            return decided;
        }
        let tag = tag.unwrap_or_else(|| self.inner.digester.tag(m));
        // The slow path's future is large (store reads, argon2 on a blocking
        // thread); boxing it keeps the warm path's future small.
        Box::pin(self.verify_slow(id, m, tag, ctx)).await
    }

    async fn verify_slow(
        &self,
        id: KeyId,
        m: SecretMaterial<'_>,
        tag: Tag,
        ctx: VerifyContext,
    ) -> Result<Principal> {
        let w = self.inner.window_nanos;
        let mut loaded = false;
        let mut hashed = false;
        loop {
            let now = self.now_nanos();
            let bucket = self.inner.usage.bucket(ctx.origin, ctx.category, now);
            let warm = self
                .inner
                .keys
                .check(&id, || tag, now, w, ctx.client_ip, bucket);
            let undecided = match self.decide(warm, id, now, ctx) {
                ControlFlow::Break(decided) => return decided,
                ControlFlow::Continue(undecided) => undecided,
            };
            match undecided {
                Warm::Cold {
                    current,
                    previous,
                    generation,
                    account,
                } if !hashed => {
                    hashed = true;
                    match self.check_cold(id, m, current, previous, now).await? {
                        ColdOutcome::Matched { previous, rehashed } => {
                            self.inner
                                .keys
                                .mark_verified(&id, generation, previous, tag);
                            if let Some(phc) = rehashed {
                                self.store_rehash(&id, generation, phc).await;
                            }
                        }
                        ColdOutcome::Mismatch => {
                            self.inner.usage.record(
                                id,
                                &account,
                                ctx.origin,
                                ctx.category,
                                now,
                                false,
                            );
                            return Err(Error::Unauthorized);
                        }
                    }
                }
                Warm::Stale if !loaded => {
                    loaded = true;
                    if !self.load_key(&id).await? {
                        return Err(Error::Unauthorized);
                    }
                }
                // The entry changed under us twice in a row; refuse rather
                // than loop.
                _ => return Err(Error::Unauthorized),
            }
        }
    }

    /// The decision once the secret matched: state checks, usage, principal.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    fn conclude(
        &self,
        id: KeyId,
        grant: Arc<Grant>,
        active: bool,
        expires_at: i64,
        ip_allowed: bool,
        counted: bool,
        now: i64,
        ctx: VerifyContext,
    ) -> Result<Principal> {
        let verdict = if active && now < expires_at && ip_allowed {
            Ok(())
        } else {
            crate::hint::cold_path();
            Err(if !active {
                Error::KeyInactive
            } else if now >= expires_at {
                Error::KeyExpired
            } else {
                Error::ClientNotAllowed
            })
        };
        if !counted {
            self.inner.usage.record(
                id,
                &grant.account,
                ctx.origin,
                ctx.category,
                now,
                verdict.is_ok(),
            );
        }
        verdict.map(|()| Principal {
            key_id: id,
            home: grant,
            acting: None,
            session_id: None,
            client_ip: ctx.client_ip,
        })
    }

    /// Runs argon2 against the cold hashes on a blocking thread.
    async fn check_cold(
        &self,
        id: KeyId,
        m: SecretMaterial<'_>,
        current: Option<PhcString>,
        previous: Option<PhcString>,
        now: i64,
    ) -> Result<ColdOutcome> {
        if let Err(retry_after_secs) = self.inner.limiter.check(&id, now) {
            return Err(Error::TooManyAttempts { retry_after_secs });
        }
        let permit = self
            .inner
            .hash_slots
            .acquire()
            .await
            .map_err(|e| Error::Internal(Box::new(e)))?;
        let material = Zeroizing::new(m.0.to_vec());
        let hasher = self.inner.hasher.clone();
        let result = tokio::task::spawn_blocking(move || {
            let m = SecretMaterial(&material);
            for (previous, phc) in [(false, current), (true, previous)] {
                let Some(phc) = phc else { continue };
                match hasher.check(&phc, m)? {
                    Checked::Match { rehash } => {
                        let rehashed = (rehash && !previous).then(|| hasher.hash(m).ok()).flatten();
                        return Ok(ColdOutcome::Matched { previous, rehashed });
                    }
                    Checked::Mismatch => {}
                }
            }
            Ok::<_, crate::hash::StoredHashError>(ColdOutcome::Mismatch)
        })
        .await;
        drop(permit);
        match result {
            Ok(Ok(ColdOutcome::Mismatch)) => {
                self.inner.limiter.failed(&id, now);
                Ok(ColdOutcome::Mismatch)
            }
            Ok(Ok(matched)) => {
                self.inner.limiter.succeeded(&id);
                Ok(matched)
            }
            Ok(Err(e)) => {
                tracing::error!(target: "keyward::verify", key_id = %id, error = %e, "stored hash unusable");
                Err(Error::Internal(Box::new(e)))
            }
            Err(e) => Err(Error::Internal(Box::new(e))),
        }
    }

    /// Verifies a session token (`Authorization: Bearer`).
    ///
    /// # Errors
    /// [`Error::Malformed`] for a malformed token; [`Error::Unauthorized`]
    /// for an unknown, expired or ended session, or when its key is
    /// deactivated, deleted, expired or rotated without grace period;
    /// [`Error::ClientNotAllowed`]; [`Error::Unavailable`].
    pub async fn verify_session(&self, token: &str, ctx: VerifyContext) -> Result<Principal> {
        let (sid, m) = parse_session_token(token.as_bytes(), &self.inner.prefix)?;
        self.verify_session_parsed(sid, m, ctx).await
    }

    async fn verify_session_parsed(
        &self,
        sid: SessionId,
        m: SecretMaterial<'_>,
        ctx: VerifyContext,
    ) -> Result<Principal> {
        let digest = session_digest(m);
        if let Some(decided) = self.session_cached(sid, &digest, ctx) {
            return decided;
        }
        Box::pin(self.verify_session_slow(sid, digest, self.now_nanos(), ctx)).await
    }

    /// A session decided from the caches alone (its entry and its key's,
    /// both fresh); `None` when either must be read.
    #[inline]
    fn session_cached(
        &self,
        sid: SessionId,
        digest: &[u8; 32],
        ctx: VerifyContext,
    ) -> Option<Result<Principal>> {
        let now = self.now_nanos();
        let entry = self
            .inner
            .sessions
            .get_fresh(&sid, now, self.inner.window_nanos)?;
        self.session_decision(sid, &entry, digest, now, ctx, false)
    }

    async fn verify_session_slow(
        &self,
        sid: SessionId,
        digest: [u8; 32],
        now: i64,
        ctx: VerifyContext,
    ) -> Result<Principal> {
        let w = self.inner.window_nanos;
        let entry = match self.inner.sessions.get_fresh(&sid, now, w) {
            Some(e) => e,
            None => {
                let Some(s) = self.inner.store.get_session(&sid).await? else {
                    return Err(Error::Unauthorized);
                };
                let e = SessionEntry {
                    key_id: s.key_id,
                    digest: s.token_digest,
                    expires_at: time_to_nanos(s.expires_at),
                    key_generation: s.key_generation,
                    fetched_at: now,
                };
                self.inner.sessions.insert(sid, e.clone());
                e
            }
        };
        if self
            .inner
            .keys
            .with_fresh(&entry.key_id, now, w, |_| ())
            .is_none()
            && !self.load_key(&entry.key_id).await?
        {
            return Err(Error::Unauthorized);
        }
        // The key entry may have just been read: decide at the current time,
        // which is never earlier than that read.
        let now = self.now_nanos();
        self.session_decision(sid, &entry, &digest, now, ctx, true)
            .unwrap_or(Err(Error::Unauthorized))
    }

    /// Decides a session from its cached entry and its key's fresh cache
    /// entry; `None` when the key entry is missing or stale (and
    /// `final_try` is false).
    fn session_decision(
        &self,
        sid: SessionId,
        entry: &SessionEntry,
        digest: &[u8; 32],
        now: i64,
        ctx: VerifyContext,
        final_try: bool,
    ) -> Option<Result<Principal>> {
        if !bool::from(entry.digest.ct_eq(digest)) || now >= entry.expires_at {
            return Some(Err(Error::Unauthorized));
        }
        let bucket = self.inner.usage.bucket(ctx.origin, ctx.category, now);
        let keys = &self.inner.keys;
        // Decided under the entry's lock, so the outcome is counted in the
        // entry's usage counter without a second lookup.
        let decide = |e: &crate::cache::KeyEntry| {
            let previous_until = e
                .extra
                .as_deref()
                .and_then(|x| x.previous.as_ref())
                .map_or(i64::MIN, |(_, until)| *until);
            let generation_ok = entry.key_generation == e.generation
                || (entry.key_generation.wrapping_add(1) == e.generation && now < previous_until);
            if !(e.active() && now < e.expires_at && generation_ok) {
                return None;
            }
            let ip_allowed = e.ip_allowed(ctx.client_ip);
            let counted = keys.count(e, bucket, ip_allowed, now);
            Some((Arc::clone(&e.grant), ip_allowed, counted))
        };
        let Some(decided) = keys.with_fresh(&entry.key_id, now, self.inner.window_nanos, decide)
        else {
            return final_try.then_some(Err(Error::Unauthorized));
        };
        let Some((grant, ip_allowed, counted)) = decided else {
            return Some(Err(Error::Unauthorized));
        };
        if !counted {
            self.inner.usage.record(
                entry.key_id,
                &grant.account,
                ctx.origin,
                ctx.category,
                now,
                ip_allowed,
            );
        }
        if !ip_allowed {
            return Some(Err(Error::ClientNotAllowed));
        }
        Some(Ok(Principal {
            key_id: entry.key_id,
            home: grant,
            acting: None,
            session_id: Some(sid),
            client_ip: ctx.client_ip,
        }))
    }

    /// The principal acting for `account`: its own account, or a direct
    /// child of it (`x-account-id`). Effective permissions become the
    /// principal's ∩ the child account's, plus the principal's own
    /// management permissions ([`Permission::is_management`]).
    ///
    /// [`Permission::is_management`]: crate::Permission::is_management
    ///
    /// # Errors
    /// [`Error::AccountNotAllowed`] for any other account (existing or
    /// not); [`Error::Unavailable`].
    pub async fn act_for(&self, principal: &Principal, account: &AccountId) -> Result<Principal> {
        if account == principal.home_account_id() {
            let mut p = principal.clone();
            p.acting = None;
            return Ok(p);
        }
        let Some((child, _)) = self.load_account(account).await? else {
            return Err(Error::AccountNotAllowed);
        };
        if child.parent.as_ref() != Some(principal.home_account_id()) {
            return Err(Error::AccountNotAllowed);
        }
        let mut p = principal.clone();
        // Data permissions: key ∩ child; management permissions stay the
        // principal's own (a parent's admin manages a customer account
        // that holds none itself).
        let mut permissions = principal.home.permissions.intersection(&child.permissions);
        for m in principal
            .home
            .permissions
            .iter()
            .filter(|m| m.is_management())
        {
            permissions.insert(m.clone());
        }
        p.acting = Some(Arc::new(Grant {
            account: child.id,
            permissions,
        }));
        Ok(p)
    }

    /// Replaces the stored hash by one with the configured parameters, if
    /// the key did not change meanwhile. Best effort: failures are logged.
    async fn store_rehash(&self, id: &KeyId, generation: u32, phc: PhcString) {
        let result = async {
            let Some(mut stored) = self.inner.store.get_key(id).await? else {
                return Ok(());
            };
            if stored.generation != generation {
                return Ok(());
            }
            let expected = stored.version;
            stored.secret_hash = phc;
            stored.version += 1;
            let event = self.event(
                crate::audit::AuditAction::KeyRehashed,
                stored.key.account_id,
                Some(*id),
                None,
                super::Actor::System,
                serde_json::Value::Null,
            );
            self.inner.store.update_key(&stored, expected, &event).await
        }
        .await;
        if let Err(e) = result {
            tracing::warn!(target: "keyward::verify", key_id = %id, error = %e, "hash upgrade failed; will retry on a later verification");
        }
    }
}
