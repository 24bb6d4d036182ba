//! Regression: a session must keep working when its key's cache entry is
//! refreshed from the store (after the propagation window) under a clock
//! that moves during the call, as the system clock does.
#![allow(missing_docs, clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use keyward::{
    Actor, Clock, Keyward, MemoryStore, NewAccount, NewKey, PermissionSet, VerifyContext,
};
use time::OffsetDateTime;

/// Moves forward one microsecond on every reading.
#[derive(Debug, Clone)]
struct TickingClock(Arc<AtomicI64>);

impl TickingClock {
    fn advance_secs(&self, s: i64) {
        self.0.fetch_add(s * 1_000_000_000, Ordering::SeqCst);
    }
}

impl Clock for TickingClock {
    fn now(&self) -> OffsetDateTime {
        let n = self.0.fetch_add(1_000, Ordering::SeqCst);
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(n)).unwrap()
    }
}

#[tokio::test]
async fn session_survives_key_refresh_with_a_moving_clock() {
    let clock = TickingClock(Arc::new(AtomicI64::new(1_900_000_000_000_000_000)));
    let kw = Keyward::builder()
        .store(MemoryStore::new())
        .clock(clock.clone())
        .flush_interval(None)
        .build()
        .unwrap();
    let perms = PermissionSet::parse(["a"]).unwrap();
    let acct = kw
        .create_account(Actor::System, NewAccount::new("x", perms.clone()))
        .await
        .unwrap();
    let k = kw
        .issue_key(Actor::System, &acct.id, NewKey::new("k").permissions(perms))
        .await
        .unwrap();
    let s = kw
        .login(k.key.id.as_str(), k.secret.expose(), VerifyContext::new())
        .await
        .unwrap();
    for _ in 0..3 {
        clock.advance_secs(31);
        kw.verify_session(s.token.expose(), VerifyContext::new())
            .await
            .unwrap();
    }
}
