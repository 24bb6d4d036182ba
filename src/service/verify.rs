//! Verification: keys, the single-string form, sessions, bearer tokens.
//!
//! Every outcome comes from one decision ([`super::decide`]): the cache
//! finds the entry, the decision says, usage counts it once, and one async
//! loop per credential kind performs what the decision needs (a store read,
//! argon2) before deciding again.

use std::sync::Arc;

use zeroize::Zeroizing;

use super::Keyward;
use super::decide::{self, Decision, Judge, Presented, Refusal};
use crate::cache::{Found, SecretRef, SessionEntry};
use crate::context::VerifyContext;
use crate::credential::{
    MalformedCredential, SecretMaterial, UncheckedSecret, parse_combined_key_unchecked,
    parse_key_id, parse_key_secret_unchecked, parse_session_token,
};
use crate::digest::{Tag, session_digest};
use crate::error::{Error, Result};
use crate::hash::Checked;
use crate::id::{AccountId, KeyId, SessionId};
use crate::limiter::Settled;
use crate::principal::{Grant, Principal};
use crate::store::PhcString;
use crate::usage::time_to_nanos;

/// At most this many store reads in one verification: a change racing it
/// (a feed reset, a revocation) may make a read stale once; beyond that it
/// is refused rather than looping.
const MAX_READS: u32 = 2;

/// At most this many lease round trips in one verification (a concurrent
/// request may spend a leased call first; beyond that it is refused as
/// rate limited rather than looping: other requests took the calls).
#[cfg(feature = "redis")]
const MAX_LEASES: u32 = 3;

/// What a bearer value holds, by its marker.
enum Bearer {
    Session,
    Key,
    /// An old key string of an imported key (`LegacyKeys`).
    #[cfg(feature = "import")]
    Legacy,
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
        ctx: VerifyContext<'_>,
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
        ctx: VerifyContext<'_>,
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
    /// With rate limits shared through Redis it is also `None` when this
    /// instance holds no leased call for one of the key's limits (counted
    /// nowhere: `verify` leases and decides).
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
        ctx: VerifyContext<'_>,
    ) -> Option<Result<Principal>> {
        self.key_cached(key_id.as_ref(), secret.as_ref(), ctx)
    }

    #[inline]
    fn key_cached(
        &self,
        key_id: &[u8],
        secret: &[u8],
        ctx: VerifyContext<'_>,
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

    /// The key id and the secret, both in their format before any lookup
    /// (the secret's checksum is checked once no verified tag matched: see
    /// [`UncheckedSecret`]).
    #[inline]
    fn parse_key<'a>(
        &self,
        key_id: &[u8],
        secret: &'a [u8],
    ) -> std::result::Result<(KeyId, UncheckedSecret<'a>), MalformedCredential> {
        let id = parse_key_id(key_id, &self.inner.prefix)?;
        Ok((id, parse_key_secret_unchecked(secret, &self.inner.prefix)?))
    }

    /// [`verify_bearer`](Self::verify_bearer) from this instance's caches
    /// alone: `None` when the store or argon2 is needed (see
    /// [`verify_cached`](Self::verify_cached)).
    #[inline]
    pub fn verify_bearer_cached(
        &self,
        token: impl AsRef<[u8]>,
        ctx: VerifyContext<'_>,
    ) -> Option<Result<Principal>> {
        let token = token.as_ref();
        let p = &self.inner.prefix;
        match self.bearer_kind(token) {
            Bearer::Session => match parse_session_token(token, p) {
                Ok((sid, m)) => self.session_cached(sid, &session_digest(m), ctx),
                Err(e) => Some(Err(e.into())),
            },
            Bearer::Key => match (self.now_nanos(), parse_combined_key_unchecked(token, p)) {
                (now, Ok((id, m))) => self.verify_warm(id, m, &mut None, ctx, now),
                (_, Err(e)) => Some(Err(e.into())),
            },
            #[cfg(feature = "import")]
            Bearer::Legacy => self.verify_legacy_cached(token, ctx),
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
            #[cfg(feature = "import")]
            _ if self.legacy_for(token).is_some() => Bearer::Legacy,
            _ if token.len() > crate::credential::MAX_CREDENTIAL_LEN => {
                Bearer::Malformed(MalformedCredential::TooLong)
            }
            _ => Bearer::Malformed(MalformedCredential::Format),
        }
    }

    /// The judge of decisions made at `now` for a client at `ip`.
    #[inline]
    fn judge<'a>(&self, now: i64, ctx: &VerifyContext<'a>) -> Judge<'a> {
        let covered_to = self.inner.keys.vouch().covered_to();
        Judge::at(now, self.inner.window_nanos, covered_to, ctx)
    }

    /// The warm path, synchronous and allocation-free: `None` when the
    /// cache cannot decide (absent, stale or cold entry). A verified tag
    /// that matches proves the secret; any other outcome first checks the
    /// secret's checksum (a malformed secret is refused as such, counted
    /// nowhere, before any store read or argon2).
    #[inline]
    pub(super) fn verify_warm(
        &self,
        id: KeyId,
        secret: UncheckedSecret<'_>,
        tag: &mut Option<Tag>,
        ctx: VerifyContext<'_>,
        now: i64,
    ) -> Option<Result<Principal>> {
        let digester = &self.inner.digester;
        let judge = self.judge(now, &ctx);
        let decided = self.decide_key(
            id,
            Presented::Tag(|| *tag.insert(digester.tag(secret.material))),
            &judge,
            ctx,
            || secret.well_formed(),
        );
        let Some(decision) = decided else {
            crate::hint::cold_path();
            return Some(Err(MalformedCredential::Checksum.into()));
        };
        match decision {
            Decision::Accept {
                grant,
                secret,
                applied,
            } => Some(crate::metrics::verified_warm(Ok(principal(
                id, grant, None, secret, applied, ctx,
            )))),
            Decision::Reject(refusal) => {
                crate::hint::cold_path();
                Some(crate::metrics::verified_warm(Err(refusal.error())))
            }
            Decision::NeedStore | Decision::NeedHash { .. } => {
                crate::hint::cold_path();
                None
            }
            #[cfg(feature = "redis")]
            Decision::NeedLease { .. } => {
                crate::hint::cold_path();
                None
            }
        }
    }

    /// Finds the key's entry, decides, puts an acceptance to the limits
    /// and credits, and counts the outcome in the key's usage once (under
    /// the entry's lock, so in its in-place counter). `None`, counted
    /// nowhere, when the decision is not an acceptance and the presented
    /// secret is not `well_formed`.
    #[inline(always)]
    fn decide_key<F: FnOnce() -> Tag>(
        &self,
        id: KeyId,
        presented: Presented<F>,
        judge: &Judge,
        ctx: VerifyContext<'_>,
        well_formed: impl FnOnce() -> bool,
    ) -> Option<Decision> {
        let tally = self.inner.usage.tally(ctx.origin, ctx.category, judge.now);
        self.inner.keys.find(&id, |found| {
            let decision = decide::key(found, presented, judge);
            if !matches!(decision, Decision::Accept { .. }) && !well_formed() {
                crate::hint::cold_path();
                return None;
            }
            let decision = decision.admitted(ctx.limit, ctx.cost, judge.now);
            self.after_decision(found, &decision, judge, &tally);
            Some(decision)
        })
    }

    /// The verification's lease step: leases calls from Redis for the
    /// grant's shared limits that hold none here (one round trip each).
    #[cfg(feature = "redis")]
    #[cold]
    async fn lease(&self, grant: &Grant, ctx: &VerifyContext<'_>) {
        let now = self.now_nanos();
        for cell in grant.meters.to_lease(ctx.limit, now) {
            cell.fetch(|| self.now_nanos()).await;
        }
    }

    /// What follows a decision, under the entry's lock: its usage, counted
    /// once; a refresh ahead of expiry for an entry in use; the warning
    /// for an allowlisted key presented without a client address.
    #[inline(always)]
    fn after_decision(
        &self,
        found: Found<'_>,
        decision: &Decision,
        judge: &Judge,
        tally: &crate::usage::Tally,
    ) {
        if let Found::Entry(e) = found {
            if let Some(outcome) = decision.usage() {
                self.inner
                    .usage
                    .count(tally, Some(&e.usage), e.key_id, &e.grant.account, outcome);
            }
            if matches!(decision, Decision::Accept { .. })
                && decide::refresh_due(&e, judge, &self.inner.refresh_slots)
            {
                self.refresh_ahead(e.key_id);
            }
        }
        if judge.ip.is_none()
            && matches!(decision, Decision::Reject(Refusal::ClientNotAllowed))
            && matches!(found, Found::Entry(e) if !e.ip_allowed(None))
        {
            warn_no_client_address();
        }
    }

    /// Re-reads a key that is in use and nearly W old, in the background,
    /// so that its requests never wait for the store: queues it for the
    /// instance's refresher task, which reads the keys due together in
    /// batches (see `refresher`). Needs a Tokio runtime (none: the entry
    /// expires and the next request reads it).
    #[cold]
    #[inline(never)]
    fn refresh_ahead(&self, id: KeyId) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if !self.inner.keys.begin_refresh(&id) {
            return;
        }
        self.queue_refresh(&runtime, id);
    }

    /// Verifies the single-string key form (see
    /// [`combine_key`](crate::combine_key)).
    ///
    /// # Errors
    /// As [`verify`](Self::verify).
    pub async fn verify_combined(
        &self,
        credential: &str,
        ctx: VerifyContext<'_>,
    ) -> Result<Principal> {
        let now = self.now_nanos();
        let (id, secret) = parse_combined_key_unchecked(credential.as_bytes(), &self.inner.prefix)?;
        self.verify_material(id, secret, ctx, now).await
    }

    /// Verifies an `Authorization: Bearer` value: a session token or the
    /// single-string key form.
    ///
    /// # Errors
    /// As [`verify`](Self::verify) and [`verify_session`](Self::verify_session).
    pub async fn verify_bearer(&self, token: &str, ctx: VerifyContext<'_>) -> Result<Principal> {
        self.verify_bearer_bytes(token.as_bytes(), ctx).await
    }

    /// [`verify_bearer`](Self::verify_bearer) of a header value's bytes.
    pub(crate) async fn verify_bearer_bytes(
        &self,
        token: &[u8],
        ctx: VerifyContext<'_>,
    ) -> Result<Principal> {
        let p = &self.inner.prefix;
        match self.bearer_kind(token) {
            Bearer::Session => {
                let (sid, m) = parse_session_token(token, p)?;
                self.verify_session_parsed(sid, m, ctx).await
            }
            Bearer::Key => {
                let now = self.now_nanos();
                let (id, secret) = parse_combined_key_unchecked(token, p)?;
                self.verify_material(id, secret, ctx, now).await
            }
            #[cfg(feature = "import")]
            Bearer::Legacy => self.verify_legacy_bytes(token, ctx).await,
            Bearer::Malformed(e) => Err(e.into()),
        }
    }

    pub(super) async fn verify_material(
        &self,
        id: KeyId,
        secret: UncheckedSecret<'_>,
        ctx: VerifyContext<'_>,
        now: i64,
    ) -> Result<Principal> {
        let mut tag = None;
        if let Some(decided) = self.verify_warm(id, secret, &mut tag, ctx, now) {
            return decided;
        }
        // Undecided by the cache: the checksum was checked (a store read
        // or argon2 follows only for a well-formed secret).
        let m = secret.checked()?;
        let tag = tag.unwrap_or_else(|| self.inner.digester.tag(m));
        // The slow path's future is large (store reads, argon2 on a blocking
        // thread); boxing it keeps the warm path's future small.
        crate::metrics::verified_cold(Box::pin(self.verify_slow(id, m, tag, ctx)).await)
    }

    /// The one loop for keys: performs what the decision needs (a store
    /// read, argon2) and decides again.
    #[tracing::instrument(name = "keyward.verify_cold", level = "debug", skip_all, fields(key_id = %id), err(level = "debug", Display))]
    async fn verify_slow(
        &self,
        id: KeyId,
        m: SecretMaterial<'_>,
        tag: Tag,
        ctx: VerifyContext<'_>,
    ) -> Result<Principal> {
        let mut read_at = None;
        let mut reads = 0;
        let mut hashed = false;
        #[cfg(feature = "redis")]
        let mut leases = 0;
        loop {
            let now = self.now_nanos();
            let judge = Judge {
                fresh_at: read_at.unwrap_or(now),
                ..self.judge(now, &ctx)
            };
            let decided = self.decide_key(id, Presented::Tag(|| tag), &judge, ctx, || true);
            match decided.unwrap_or(Decision::Reject(Refusal::WrongSecret)) {
                Decision::Accept {
                    grant,
                    secret,
                    applied,
                } => {
                    return Ok(principal(id, grant, None, secret, applied, ctx));
                }
                #[cfg(feature = "redis")]
                Decision::NeedLease { grant } if leases < MAX_LEASES => {
                    leases += 1;
                    self.lease(&grant, &ctx).await;
                }
                #[cfg(feature = "redis")]
                Decision::NeedLease { grant } => {
                    return Err(grant.meters.contended(ctx.limit, now).error());
                }
                Decision::Reject(refusal) => return Err(refusal.error()),
                Decision::NeedStore if reads < MAX_READS => {
                    reads += 1;
                    let started = self.now_nanos();
                    self.load_key(&id).await?;
                    read_at = Some(started);
                }
                Decision::NeedHash {
                    current,
                    previous,
                    generation,
                } if !hashed => {
                    hashed = true;
                    match self
                        .check_cold(id, m, current, previous, ctx.client_ip, now)
                        .await?
                    {
                        ColdOutcome::Matched { previous, rehashed } => {
                            self.inner
                                .keys
                                .mark_verified(&id, generation, previous, tag);
                            if let Some(phc) = rehashed {
                                self.store_rehash(&id, generation, phc).await;
                            }
                        }
                        ColdOutcome::Mismatch => {
                            self.count_wrong_secret(id, ctx, now);
                            return Err(Error::Unauthorized);
                        }
                    }
                }
                // The entry changed under us again and again; refuse rather
                // than loop.
                Decision::NeedStore | Decision::NeedHash { .. } => {
                    return Err(Error::Unauthorized);
                }
            }
        }
    }

    /// Argon2 verifications this instance has run (cold verifications of
    /// known keys; a metric: a flood of wrong secrets shows here, bounded
    /// by the failed-attempt budget).
    pub fn argon2_checks(&self) -> u64 {
        self.inner.hasher.checks()
    }

    /// Counts a wrong secret that argon2 refused, in the key's usage.
    fn count_wrong_secret(&self, id: KeyId, ctx: VerifyContext<'_>, now: i64) {
        let usage = &self.inner.usage;
        let tally = usage.tally(ctx.origin, ctx.category, now);
        self.inner.keys.find(&id, |found| {
            if let Found::Entry(e) = found {
                let failure = crate::usage::Outcome::Failure;
                usage.count(&tally, Some(&e.usage), id, &e.grant.account, failure);
            }
        });
    }

    /// Runs argon2 against the cold hashes on a blocking thread.
    async fn check_cold(
        &self,
        id: KeyId,
        m: SecretMaterial<'_>,
        current: Option<PhcString>,
        previous: Option<PhcString>,
        client_ip: Option<std::net::IpAddr>,
        now: i64,
    ) -> Result<ColdOutcome> {
        // Reserved before argon2, so concurrent wrong secrets cannot run
        // more than the budget; given back on a match (see `limiter`).
        let limiter = &self.inner.limiter;
        let reservation = limiter
            .reserve(&id, client_ip, now)
            .map_err(|retry_after_secs| Error::TooManyAttempts { retry_after_secs })?;
        let gate = limiter.gate(&reservation).await;
        let queued = crate::metrics::hash_queued();
        let permit = match self.inner.hash_slots.acquire().await {
            Ok(p) => p,
            Err(e) => {
                limiter.settle(reservation, Settled::Unjudged);
                return Err(Error::Internal(Box::new(e)));
            }
        };
        crate::metrics::hash_started(queued);
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
        drop(gate);
        limiter.settle(
            reservation,
            match &result {
                Ok(Ok(ColdOutcome::Mismatch)) => Settled::WrongSecret,
                Ok(Ok(ColdOutcome::Matched { .. })) => Settled::Matched,
                _ => Settled::Unjudged,
            },
        );
        match result {
            Ok(Ok(outcome)) => Ok(outcome),
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
    pub async fn verify_session(&self, token: &str, ctx: VerifyContext<'_>) -> Result<Principal> {
        let (sid, m) = parse_session_token(token.as_bytes(), &self.inner.prefix)?;
        self.verify_session_parsed(sid, m, ctx).await
    }

    async fn verify_session_parsed(
        &self,
        sid: SessionId,
        m: SecretMaterial<'_>,
        ctx: VerifyContext<'_>,
    ) -> Result<Principal> {
        let digest = session_digest(m);
        if let Some(decided) = self.session_cached(sid, &digest, ctx) {
            return decided;
        }
        Box::pin(self.verify_session_slow(sid, digest, ctx)).await
    }

    /// A session decided from the caches alone (its entry and its key's,
    /// both fresh); `None` when either must be read.
    #[inline]
    fn session_cached(
        &self,
        sid: SessionId,
        digest: &[u8; 32],
        ctx: VerifyContext<'_>,
    ) -> Option<Result<Principal>> {
        let now = self.now_nanos();
        let entry = self.inner.sessions.get(&sid)?;
        let judge = self.judge(now, &ctx);
        match self.decide_session(&entry, digest, &judge, ctx) {
            Decision::NeedStore | Decision::NeedHash { .. } => None,
            decided => Some(session_outcome(&entry, decided, ctx)),
        }
    }

    /// The one loop for sessions: reads what the decision needs (the
    /// session, its key) and decides again.
    async fn verify_session_slow(
        &self,
        sid: SessionId,
        digest: [u8; 32],
        ctx: VerifyContext<'_>,
    ) -> Result<Principal> {
        let mut read_at = None;
        let mut reads = 0;
        #[cfg(feature = "redis")]
        let mut leases = 0;
        loop {
            let now = self.now_nanos();
            let judge = Judge {
                fresh_at: read_at.unwrap_or(now),
                ..self.judge(now, &ctx)
            };
            let entry = self.inner.sessions.get(&sid);
            let decision = match &entry {
                Some(e) => self.decide_session(e, &digest, &judge, ctx),
                None if read_at.is_some() => return Err(Error::Unauthorized),
                None => Decision::NeedStore,
            };
            match (decision, entry) {
                (Decision::NeedStore, _) if reads < MAX_READS => {
                    reads += 1;
                    let started = self.now_nanos();
                    self.load_session(sid, started).await?;
                    read_at = Some(started);
                }
                #[cfg(feature = "redis")]
                (Decision::NeedLease { grant }, _) if leases < MAX_LEASES => {
                    leases += 1;
                    self.lease(&grant, &ctx).await;
                }
                #[cfg(feature = "redis")]
                (Decision::NeedLease { grant }, _) => {
                    return Err(grant.meters.contended(ctx.limit, now).error());
                }
                (decided, Some(e)) => return session_outcome(&e, decided, ctx),
                (_, None) => return Err(Error::Unauthorized),
            }
        }
    }

    /// Reads a session and its key from the store into the caches (the
    /// session's entry dropped when the store has none).
    async fn load_session(&self, sid: SessionId, started: i64) -> Result<()> {
        let Some(s) = self.inner.store.get_session(&sid).await? else {
            self.inner.sessions.remove(&sid);
            return Ok(());
        };
        self.inner.sessions.insert(sid, session_entry(&s, started));
        self.load_key(&s.key_id).await?;
        Ok(())
    }

    /// The session's decision on its cached entry and its key's, admitted
    /// like a key's and counted in the key's usage.
    fn decide_session(
        &self,
        entry: &SessionEntry,
        digest: &[u8; 32],
        judge: &Judge,
        ctx: VerifyContext<'_>,
    ) -> Decision {
        let tally = self.inner.usage.tally(ctx.origin, ctx.category, judge.now);
        self.inner.keys.find(&entry.key_id, |found| {
            let decision = decide::session(entry, digest, found, judge)
                .admitted(ctx.limit, ctx.cost, judge.now);
            self.after_decision(found, &decision, judge, &tally);
            decision
        })
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
    /// not); [`Error::AccountInactive`] for an inactive child;
    /// [`Error::Unavailable`].
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
        if child.status != crate::account::AccountStatus::Active {
            return Err(Error::AccountInactive);
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
            meters: principal.home.meters.clone(),
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

/// Logs once per process that a key with a network allowlist was presented
/// without a client address (so it can never be allowed), naming the fix.
#[cold]
#[inline(never)]
fn warn_no_client_address() {
    static WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if !WARNED.swap(true, std::sync::atomic::Ordering::Relaxed) {
        tracing::warn!(
            target: "keyward::verify",
            "a key with allowed_cidrs was presented without a client address and refused; \
             give the verification the client's address (axum: serve with \
             `into_make_service_with_connect_info::<SocketAddr>()`; actix: the peer address \
             is read from the request; library: `VerifyContext::client_ip`)"
        );
    }
}

/// A principal for key `id` with `grant`, admitted by the rate limits and
/// credits (see [`Decision::admitted`]) standing at `limit_status`.
#[inline]
fn principal(
    id: KeyId,
    grant: Arc<Grant>,
    session_id: Option<Arc<SessionId>>,
    secret: SecretRef,
    limit_status: Option<crate::ratelimit::meter::Applied>,
    ctx: VerifyContext<'_>,
) -> Principal {
    Principal {
        key_id: id,
        home: grant,
        acting: None,
        session_id,
        client_ip: ctx.client_ip,
        secret,
        limit_status,
    }
}

/// A session's decided outcome (`Unauthorized` when still undecided).
fn session_outcome(
    entry: &SessionEntry,
    decided: Decision,
    ctx: VerifyContext<'_>,
) -> Result<Principal> {
    match decided {
        Decision::Accept {
            grant,
            secret,
            applied,
        } => Ok(principal(
            entry.key_id,
            grant,
            Some(Arc::clone(&entry.id)),
            secret,
            applied,
            ctx,
        )),
        Decision::Reject(refusal) => Err(refusal.error()),
        Decision::NeedStore | Decision::NeedHash { .. } => Err(Error::Unauthorized),
        #[cfg(feature = "redis")]
        Decision::NeedLease { .. } => Err(Error::LimitsUnavailable),
    }
}

/// The cache entry for a stored session read at `read_at`.
pub(crate) fn session_entry(s: &crate::session::Session, read_at: i64) -> SessionEntry {
    SessionEntry {
        id: Arc::new(s.id),
        key_id: s.key_id,
        digest: s.token_digest,
        expires_at: time_to_nanos(s.expires_at),
        opened: SecretRef {
            generation: s.key_generation,
            epoch: s.key_epoch,
        },
        fetched_at: read_at,
    }
}
