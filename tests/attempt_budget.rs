//! The failed-attempt budget cannot be raced or turned against the owner:
//! attempts are reserved before argon2 (so concurrent wrong secrets run at
//! most the budget's worth of argon2), budgets are per key × client
//! address (so the owner at another address is served during and right
//! after someone else's burst), and `Retry-After` tells the true wait.
//! Argon2 runs are counted, not timed.

mod common;

use std::net::IpAddr;

use common::perms;
use keyward::{
    Actor, AttemptLimit, Error, HashParams, IssuedKey, Keyward, ManualClock, MemoryStore,
    NewAccount, NewKey, VerifyContext,
};
use time::Duration;

const BURST: usize = 200;

fn attacker() -> VerifyContext<'static> {
    VerifyContext::new().client_ip(IpAddr::from([203, 0, 113, 7]))
}

fn owner() -> VerifyContext<'static> {
    VerifyContext::new().client_ip(IpAddr::from([198, 51, 100, 1]))
}

/// Argon2 slow enough (1 MiB) that the burst's requests are all in
/// flight together.
const HASH: HashParams = HashParams {
    memory_kib: 1024,
    iterations: 1,
    parallelism: 1,
};

async fn setup() -> (Keyward, ManualClock, Vec<IssuedKey>) {
    let clock = ManualClock::default();
    let kw = Keyward::builder()
        .store(MemoryStore::new())
        .clock(clock.clone())
        .hash_params(HASH)
        .max_concurrent_hashes(2)
        .flush_interval(None)
        .build()
        .expect("build");
    let account = kw
        .create_account(
            Actor::System,
            NewAccount::new("Acme", perms(&["readApplications"])),
        )
        .await
        .expect("account");
    let mut keys = Vec::new();
    for name in ["first", "second"] {
        keys.push(
            kw.issue_key(Actor::System, &account.id, NewKey::new(name))
                .await
                .expect("key"),
        );
    }
    // Issuing leaves the key warm on this instance; the budget is about
    // cold keys (every key after a restart or on another instance).
    let cold = Keyward::builder()
        .shared_store(kw.store().clone())
        .clock(clock.clone())
        .hash_params(HASH)
        .max_concurrent_hashes(2)
        .flush_interval(None)
        .build()
        .expect("build");
    (cold, clock, keys)
}

/// 200 concurrent wrong secrets (well-formed: another key's) for `key`
/// from the attacker's address.
fn burst(
    kw: &Keyward,
    key: &IssuedKey,
    wrong: &IssuedKey,
) -> Vec<tokio::task::JoinHandle<keyward::Result<()>>> {
    (0..BURST)
        .map(|_| {
            let (kw, id) = (kw.clone(), key.key.id);
            let wrong = wrong.secret.expose().to_owned();
            tokio::spawn(async move { kw.verify(id.as_str(), &wrong, attacker()).await.map(drop) })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_runs_at_most_the_budget_and_the_owner_is_served_during_and_after() {
    let (kw, _clock, keys) = setup().await;
    let budget = AttemptLimit::default().burst as u64;
    let before = kw.argon2_checks();
    let attack = burst(&kw, &keys[0], &keys[1]);
    // During the burst: the owner's correct secret from another address.
    kw.verify(keys[0].key.id.as_str(), keys[0].secret.expose(), owner())
        .await
        .expect("the owner is accepted during the burst");
    let (mut refused, mut unauthorized) = (0, 0);
    for a in attack {
        match a.await.expect("join") {
            Err(Error::TooManyAttempts { .. }) => refused += 1,
            Err(Error::Unauthorized) => unauthorized += 1,
            other => panic!("a wrong secret got {other:?}"),
        }
    }
    let runs = kw.argon2_checks() - before;
    println!(
        "burst of {BURST}: {runs} argon2 runs, {refused} refused (429), {unauthorized} hashed and refused (401)"
    );
    // The owner's own verification is one run; the burst at most the budget.
    assert!(
        runs <= budget + 1,
        "{runs} argon2 runs for a budget of {budget}"
    );
    assert!(
        unauthorized as u64 <= budget,
        "{unauthorized} wrong secrets hashed"
    );
    assert_eq!(refused + unauthorized, BURST);

    // Right after a burst on a cold key: the owner from another address.
    let attack = burst(&kw, &keys[1], &keys[0]);
    for a in attack {
        let _ = a.await.expect("join");
    }
    kw.verify(keys[1].key.id.as_str(), keys[1].secret.expose(), owner())
        .await
        .expect("the owner is accepted right after the burst");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_tells_the_true_wait() {
    let (kw, clock, keys) = setup().await;
    let key = &keys[0];
    for a in burst(&kw, key, &keys[1]) {
        let _ = a.await.expect("join");
    }
    let wrong = keys[1].secret.expose();
    let wait = match kw.verify(key.key.id.as_str(), wrong, attacker()).await {
        Err(Error::TooManyAttempts { retry_after_secs }) => retry_after_secs,
        other => panic!("expected 429, got {other:?}"),
    };
    let refill = i64::from(AttemptLimit::default().refill_secs);
    assert!((1..=refill as u64).contains(&wait), "Retry-After {wait}");
    // One second early: still refused; at the announced time: heard.
    clock.advance(Duration::seconds(wait as i64 - 1));
    assert!(matches!(
        kw.verify(key.key.id.as_str(), wrong, attacker()).await,
        Err(Error::TooManyAttempts { .. })
    ));
    clock.advance(Duration::seconds(1));
    assert!(matches!(
        kw.verify(key.key.id.as_str(), wrong, attacker()).await,
        Err(Error::Unauthorized)
    ));
}
