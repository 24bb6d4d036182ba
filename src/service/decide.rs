//! The verification decision: one pure, synchronous function that says
//! whether what the cache holds for a key accepts a presented credential —
//! a key's secret (by its keyed tag) or a session (by the secret it was
//! opened with). Keys and sessions share it; sessions add only their own
//! checks ([`session`]) on top. Changing a revocation rule means changing
//! this file.
//!
//! It reads nothing but its arguments (no clock, no store, no usage): the
//! caller finds the entry, decides, counts the outcome, and performs a
//! [`Decision::NeedStore`] or [`Decision::NeedHash`] before deciding again.

use std::net::IpAddr;
use std::sync::Arc;

use subtle::ConstantTimeEq;

use crate::cache::{Cached, Found, KeyEntry, SecretRef, SessionEntry};
use crate::context::{Label, VerifyContext};
use crate::digest::{Tag, tags_equal};
use crate::error::Error;
use crate::principal::Grant;
use crate::ratelimit::meter::{Applied, Exceeded};
use crate::store::PhcString;
use crate::usage::Outcome;

/// The time and request facts a decision is made with.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Judge<'a> {
    /// Now (unix nanoseconds): expiries and grace periods end by it.
    pub(crate) now: i64,
    /// The instant cached entries' freshness is judged at: `now`, or the
    /// time of a store read this verification made itself (an entry read
    /// during a verification is judged against its own read time, so a
    /// store read never turns a valid key into a refusal).
    pub(crate) fresh_at: i64,
    /// The propagation window W (nanoseconds).
    pub(crate) window: i64,
    /// The time before which the change feed has applied every change
    /// (`i64::MIN` without a vouching feed): a vouchable key entry is
    /// known current up to it.
    pub(crate) covered_to: i64,
    /// The client address, for network allowlists.
    pub(crate) ip: Option<IpAddr>,
    /// The request's browser origin, for origin allowlists.
    pub(crate) origin: Option<&'a str>,
}

impl<'a> Judge<'a> {
    /// A judge at `now` for every purpose, with the request's facts.
    #[inline]
    pub(crate) fn at(now: i64, window: i64, covered_to: i64, ctx: &VerifyContext<'a>) -> Self {
        Self {
            now,
            fresh_at: now,
            window,
            covered_to,
            ip: ctx.client_ip,
            origin: ctx.browser_origin,
        }
    }

    /// Whether something read at `read_at` is still trusted by the
    /// window alone: read no later than now (a read from the future, after
    /// the clock stepped back, is not) and less than W before `fresh_at`.
    /// For what the feed cannot vouch for: ids the store did not know (a
    /// key's creation is not announced) and sessions.
    #[inline]
    fn fresh(&self, read_at: i64) -> bool {
        read_at <= self.now && self.fresh_at.saturating_sub(read_at) < self.window
    }

    /// Whether a key entry is still trusted: read no later than now, and
    /// known current less than W before `fresh_at` — since its read, or,
    /// while the change feed vouches for it, since the feed last covered
    /// every change (so an unchanged key is never re-read while the feed
    /// is healthy, and a dead feed leaves it trusted W past the last
    /// coverage at most).
    #[inline]
    fn current(&self, e: &KeyEntry) -> bool {
        e.fetched_at <= self.now
            && self
                .fresh_at
                .saturating_sub(e.known_current_at(self.covered_to))
                < self.window
    }
}

/// What was presented to the key's decision.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Presented<F> {
    /// A key's secret, by its keyed tag (computed only when needed, after
    /// the entry's loads were issued).
    Tag(F),
    /// An open session, by the secret it was opened with.
    Session(SecretRef),
}

/// Why a credential is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// No such key (the store said so within W): nothing to count.
    Unknown,
    /// The secret matches none the key accepts.
    WrongSecret,
    /// A session that ended (its secret, epoch or key state): nothing to
    /// count, like an unknown session.
    SessionEnded,
    /// The secret matched; the key is deactivated.
    Inactive,
    /// The secret matched; the key expired.
    Expired,
    /// The secret matched; the client address or browser origin is not
    /// allowed.
    ClientNotAllowed,
    /// Accepted, then refused by a rate limit or spent credits (see
    /// [`Decision::admitted`]).
    Exceeded(Exceeded),
}

impl Refusal {
    /// The error a caller sees.
    pub(crate) fn error(self) -> Error {
        match self {
            Refusal::Unknown | Refusal::WrongSecret | Refusal::SessionEnded => Error::Unauthorized,
            Refusal::Inactive => Error::KeyInactive,
            Refusal::Expired => Error::KeyExpired,
            Refusal::ClientNotAllowed => Error::ClientNotAllowed,
            Refusal::Exceeded(e) => e.error(),
        }
    }
}

/// The outcome of one decision.
#[derive(Debug)]
pub(crate) enum Decision {
    /// Accepted: the key's grant and the secret that was proved, and
    /// (once [`admitted`](Decision::admitted)) where the request stands
    /// against the limit closest to refusing it.
    Accept {
        grant: Arc<Grant>,
        secret: SecretRef,
        applied: Option<Applied>,
    },
    /// Refused.
    Reject(Refusal),
    /// The cache cannot decide: read the key from the store, then decide
    /// again.
    NeedStore,
    /// A secret the key accepts has no verified tag yet: run argon2
    /// against these hashes, record a match, then decide again.
    NeedHash {
        current: Option<PhcString>,
        previous: Option<PhcString>,
        generation: u32,
    },
    /// Accepted, but a rate limit shared through Redis has no leased call
    /// on this instance: lease for the grant's limits, then decide again
    /// (made by the caller from an acceptance whose admission needs it;
    /// counted nowhere until decided).
    #[cfg(feature = "redis")]
    NeedLease { grant: Arc<Grant> },
}

impl Decision {
    /// How the outcome counts in the key's usage, or `None` when it is
    /// not a verification of an existing key's secret (unknown key, ended
    /// session, undecided). Counted after [`admitted`](Self::admitted), so
    /// a request refused by a limit counts as such, never as a success.
    #[inline]
    pub(crate) fn usage(&self) -> Option<Outcome> {
        match self {
            Decision::Accept { .. } => Some(Outcome::Success),
            Decision::Reject(Refusal::Unknown | Refusal::SessionEnded) => None,
            Decision::Reject(Refusal::Exceeded(Exceeded::RateLimited { .. })) => {
                Some(Outcome::RateLimited)
            }
            Decision::Reject(Refusal::Exceeded(Exceeded::UsageExceeded)) => {
                Some(Outcome::UsageExceeded)
            }
            Decision::Reject(_) => Some(Outcome::Failure),
            Decision::NeedStore | Decision::NeedHash { .. } => None,
            #[cfg(feature = "redis")]
            Decision::NeedLease { .. } => None,
        }
    }

    /// An acceptance put to the rate limits and credits of the key, its
    /// application and its account (the one metering hook of every
    /// accepted verification): still an acceptance, with where it stands,
    /// or a refusal by the limit or credits that said no. Any other
    /// decision is unchanged.
    #[inline(always)]
    pub(crate) fn admitted(self, route: Option<Label>, cost: u32, now: i64) -> Decision {
        match self {
            Decision::Accept { grant, secret, .. } => match grant.meters.admit(route, cost, now) {
                Ok(applied) => Decision::Accept {
                    grant,
                    secret,
                    applied,
                },
                // A shared limit with no leased call here: lease, then
                // decide again (nothing was taken).
                #[cfg(feature = "redis")]
                Err(Exceeded::NeedLease) => {
                    crate::hint::cold_path();
                    Decision::NeedLease { grant }
                }
                Err(exceeded) => {
                    crate::hint::cold_path();
                    Decision::Reject(Refusal::Exceeded(exceeded))
                }
            },
            other => other,
        }
    }
}

/// The refresh slots of keys: every 19/20 W, each key at a phase of its
/// own (see [`refresh_due`]); with the reciprocal of the period, so the
/// warm path divides nothing.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RefreshSlots {
    period: u64,
    /// `u64::MAX / period`: `x / period` is `mulhi(x, reciprocal)` or one
    /// more.
    reciprocal: u64,
}

impl RefreshSlots {
    /// The slots for propagation window `window` (nanoseconds).
    pub(crate) fn for_window(window: i64) -> Self {
        let period = (window / 20 * 19).max(1) as u64;
        Self {
            period,
            reciprocal: u64::MAX / period,
        }
    }

    /// `x % period`, by multiplication.
    #[inline]
    fn rem(&self, x: u64) -> u64 {
        let q = ((u128::from(x) * u128::from(self.reciprocal)) >> 64) as u64;
        let r = x.wrapping_sub(q.wrapping_mul(self.period));
        if r >= self.period { r - self.period } else { r }
    }

    /// The key's phase within the period, from its per-key seed.
    #[inline]
    fn phase(&self, seed: u64) -> u64 {
        ((u128::from(seed) * u128::from(self.period)) >> 64) as u64
    }

    /// The first slot of a key with `seed` at or after `from`.
    #[inline]
    fn first_at_or_after(&self, from: i64, seed: u64) -> i64 {
        let into = self.rem((from as u64).wrapping_add(self.phase(seed)));
        if into == 0 {
            from
        } else {
            from.saturating_add((self.period - into) as i64)
        }
    }
}

/// Whether an entry in use is due for a refresh ahead of its expiry.
///
/// Each key has refresh slots every 19/20 W at a phase of its own (from
/// its id); an entry is due at its first slot at least W/40 after it was
/// last known current. So every entry is refreshed before it is W old
/// (about one read per key per W), and the refreshes of keys read
/// together (a cold start, a reset) spread evenly over the period rather
/// than coming back together. Never while a live feed vouches for the
/// entry (known current less than W/4 ago thanks to it). One comparison
/// for the common young entry.
#[inline]
pub(crate) fn refresh_due(e: &KeyEntry, judge: &Judge, slots: &RefreshSlots) -> bool {
    let known = e.known_current_at(judge.covered_to);
    let age = judge.now.saturating_sub(known);
    let margin = judge.window / 40;
    if age < margin {
        return false;
    }
    if known > e.fetched_at && age < judge.window / 4 {
        return false;
    }
    judge.now >= slots.first_at_or_after(known.saturating_add(margin), e.phase_seed())
}

/// The key's decision for a presented credential.
#[inline(always)]
pub(crate) fn key<F: FnOnce() -> Tag>(
    found: Found<'_>,
    presented: Presented<F>,
    judge: &Judge,
) -> Decision {
    let e = match found {
        Found::Entry(e) => e,
        Found::Missing(read_at) if judge.fresh(read_at) => {
            crate::hint::cold_path();
            return Decision::Reject(Refusal::Unknown);
        }
        Found::Missing(_) | Found::Absent => {
            crate::hint::cold_path();
            return Decision::NeedStore;
        }
    };
    let secret = match presented {
        Presented::Tag(tag) => {
            // The digest is computed only now, after the lookup issued its
            // loads: the CPU computes it while the entry is still arriving
            // from memory (the main cost of a verification among many keys).
            let tag = tag();
            if !judge.current(&e) {
                crate::hint::cold_path();
                return Decision::NeedStore;
            }
            match proved(e, &tag, judge.now) {
                Ok(secret) => secret,
                Err(undecided) => return undecided,
            }
        }
        Presented::Session(opened) => {
            if !judge.current(&e) {
                return Decision::NeedStore;
            }
            if !still_valid(e, opened, judge.now) {
                return Decision::Reject(Refusal::SessionEnded);
            }
            opened
        }
    };
    match state(e, judge) {
        Ok(()) => Decision::Accept {
            grant: Arc::clone(&e.grant),
            secret,
            applied: None,
        },
        Err(refusal) => {
            crate::hint::cold_path();
            Decision::Reject(refusal)
        }
    }
}

/// Which secret `tag` proves, comparing it in constant time with every
/// verified tag the key accepts at `now`; otherwise the refusal (every
/// accepted secret is verified and none matches) or the hashes argon2
/// must try.
#[inline(always)]
fn proved(e: Cached<'_>, tag: &Tag, now: i64) -> Result<SecretRef, Decision> {
    let current = e.tag().map(|t| tags_equal(&t, tag));
    // The extras once (most keys have none: one test of a flag).
    let extra = e.extra();
    let previous = extra.and_then(|x| x.previous_at(now));
    let epoch = extra.map_or(0, |x| x.session_epoch);
    let previous_match = previous.and_then(|slot| slot.tag.map(|t| tags_equal(&t, tag)));
    if current == Some(true) {
        return Ok(SecretRef {
            generation: e.generation,
            epoch,
        });
    }
    crate::hint::cold_path();
    if previous_match == Some(true) {
        return Ok(SecretRef {
            generation: e.generation.wrapping_sub(1),
            epoch,
        });
    }
    let previous_cold = previous.is_some() && previous_match.is_none();
    if current.is_some() && !previous_cold {
        return Err(Decision::Reject(Refusal::WrongSecret));
    }
    Err(need_hash(
        e,
        current.is_none(),
        previous.and_then(|s| s.hash.clone()),
    ))
}

/// [`proved`] when argon2 must decide. Out of line: it clones hashes.
#[cold]
#[inline(never)]
fn need_hash(e: Cached<'_>, current_cold: bool, previous: Option<PhcString>) -> Decision {
    Decision::NeedHash {
        current: if current_cold {
            e.current_hash().cloned()
        } else {
            None
        },
        previous,
        generation: e.generation,
    }
}

/// Whether the secret a session was opened with still opens it: the same
/// generation, or the previous one while its grace period lasts; and the
/// key's session epoch unchanged (no deactivation, no expiry moved after it
/// passed, since the session opened).
fn still_valid(e: Cached<'_>, opened: SecretRef, now: i64) -> bool {
    let secret_ok = opened.generation == e.generation
        || (opened.generation.wrapping_add(1) == e.generation && e.previous_at(now).is_some());
    secret_ok && opened.epoch == e.session_epoch()
}

/// The key's own state once a secret is proved: active, not expired, the
/// client's network and browser origin allowed (checked in this order, and
/// only after the secret).
#[inline]
fn state(e: Cached<'_>, judge: &Judge) -> Result<(), Refusal> {
    if !e.active() {
        Err(Refusal::Inactive)
    } else if judge.now >= e.expires_at {
        Err(Refusal::Expired)
    } else if !e.admits(judge.ip, judge.origin) {
        Err(Refusal::ClientNotAllowed)
    } else {
        Ok(())
    }
}

/// A session's decision: its own checks (the token's digest in constant
/// time, its expiry, the freshness of its cached record), then its key's
/// decision for the secret it was opened with. A key that is inactive or
/// expired ends the session like an unknown one.
pub(crate) fn session(
    s: &SessionEntry,
    digest: &[u8; 32],
    key: Found<'_>,
    judge: &Judge,
) -> Decision {
    if !bool::from(s.digest.ct_eq(digest)) || judge.now >= s.expires_at {
        return Decision::Reject(Refusal::SessionEnded);
    }
    if !judge.fresh(s.fetched_at) {
        return Decision::NeedStore;
    }
    match self::key(key, Presented::<fn() -> Tag>::Session(s.opened), judge) {
        Decision::Reject(Refusal::Inactive | Refusal::Expired | Refusal::Unknown) => {
            Decision::Reject(Refusal::SessionEnded)
        }
        d => d,
    }
}

#[cfg(test)]
mod tests {
    use super::RefreshSlots;

    /// The reciprocal remainder is the remainder, and slots come one
    /// period apart at the key's phase.
    #[test]
    fn refresh_slots_divide_by_multiplying() {
        let mut x = 0x2545_f491_4f6c_dd1d_u64;
        for window in [1, 7, 40, 30_000_000_000, 86_400_000_000_000, i64::MAX / 2] {
            let slots = RefreshSlots::for_window(window);
            for _ in 0..10_000 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                assert_eq!(slots.rem(x), x % slots.period, "{x} % {}", slots.period);
                let from = (x >> 2) as i64;
                let slot = slots.first_at_or_after(from, x);
                assert!(slot >= from && slot - from < slots.period as i64);
                let at = (slot as u64).wrapping_add(slots.phase(x));
                assert_eq!(at % slots.period, 0);
            }
        }
    }
}
