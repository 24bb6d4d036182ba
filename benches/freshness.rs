//! Freshness at scale, under a manual clock (simulated time: figures are
//! counts, not timings, so any build profile gives the same ones).
//!
//! `reads`: store reads per second of one instance whose keys are all in
//! use and none changes, with a change feed that vouches for them (a
//! catch-up every second, as the PostgreSQL feed sends) and without one
//! (SQLite, or a memory store: each entry expires W after its own read and
//! is refreshed ahead in the background, the keys due read together in
//! batches). Every key is verified once per simulated second, in ten
//! steps of 100 ms; store calls (key reads alone, batches of keys,
//! account reads) and keys read are counted by a store wrapper, and
//! reported separately. Simulated time: real time barely passes, so the
//! instance's refresh batch window is zero and a batch is what is due
//! within one 100 ms step.
//!
//! `refusals`: verifications of keys in a random order while the clock
//! (moving 1 ms at every reading, and by 0–60 ms between requests) crosses
//! many W boundaries: entries expire, are refreshed ahead and re-read
//! cold; counts the valid keys refused (the target is 0).
//!
//! ```sh
//! cargo test --bench freshness -- reads 10000 240
//! cargo test --bench freshness -- refusals 1000000 10000000
//! ```
//!
//! (`cargo test --bench` runs it in the test profile, which is fast enough
//! here; `cargo bench --bench freshness -- ...` gives the same counts.)

#[path = "../tests/store_support/counting.rs"]
#[allow(dead_code, unreachable_pub)]
mod counting;

use std::sync::Arc;
use std::time::Instant;

use counting::Counting;
use keyward::store::{Change, KeyStore};
use keyward::{
    Actor, Clock, HashParams, IssuedKey, Keyward, ManualClock, MemoryStore, NewAccount, NewKey,
    PermissionSet, VerifyContext,
};
use time::{Duration, OffsetDateTime};

/// The smallest argon2 parameters: the runs issue and verify each key once.
const CHEAP_HASH: HashParams = HashParams {
    memory_kib: 8,
    iterations: 1,
    parallelism: 1,
};

const W_SECS: i64 = 30;

fn service(store: Arc<dyn KeyStore>, clock: impl Clock) -> Keyward {
    Keyward::builder()
        .shared_store(store)
        .hash_params(CHEAP_HASH)
        .propagation_window(Duration::seconds(W_SECS))
        .max_cached_keys(2_000_000)
        .flush_interval(None)
        // Simulated time: a real-time batch window would never end within
        // a step; with none, a batch is what one 100 ms step made due.
        .refresh_batch_window(std::time::Duration::ZERO)
        .clock(clock)
        .build()
        .expect("build")
}

/// `n` keys issued on a memory store by an instance of their own.
async fn keys(memory: &Arc<MemoryStore>, clock: &ManualClock, n: usize) -> Vec<IssuedKey> {
    let issuer = service(memory.clone(), clock.clone());
    let perms = PermissionSet::parse(["readApplications"]).expect("perms");
    let account = issuer
        .create_account(Actor::System, NewAccount::new("bench", perms.clone()))
        .await
        .expect("account");
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let key = NewKey::new(format!("k{i}")).permissions(perms.clone());
        out.push(
            issuer
                .issue_key(Actor::System, &account.id, key)
                .await
                .expect("issue"),
        );
    }
    out
}

async fn settle() {
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
}

/// What one simulated second cost: store calls (keys alone, batches of
/// keys, accounts), and keys and accounts read.
#[derive(Debug, Clone, Copy)]
struct Second {
    calls: u64,
    keys: u64,
    accounts: u64,
}

/// Store reads per simulated second, after a warm-up of 2 W, over
/// `seconds` seconds.
async fn reads(n: usize, seconds: usize, vouching: bool) -> Vec<Second> {
    let clock = ManualClock::default();
    let memory = Arc::new(MemoryStore::new());
    let keys = keys(&memory, &clock, n).await;
    let store = if vouching {
        Counting::scripted(memory)
    } else {
        Counting::forwarding(memory)
    };
    let kw = service(store.clone(), clock.clone());
    const STEPS: usize = 10;
    let mut per_second = Vec::new();
    let warm_up = 2 * W_SECS as usize;
    for second in 0..warm_up + seconds {
        let before = (
            store.key_and_account_calls(),
            store.key_reads(),
            store.account_reads(),
        );
        if vouching {
            store.send(Change::CaughtUp(Instant::now()));
        }
        for step in 0..STEPS {
            clock.advance(Duration::seconds(1) / STEPS as i32);
            for k in keys.iter().skip(step).step_by(STEPS) {
                let (id, secret) = (k.key.id.as_str(), k.secret.expose());
                let ctx = VerifyContext::new();
                if kw.verify_cached(id, secret, ctx).is_none() {
                    kw.verify(id, secret, ctx)
                        .await
                        .expect("a valid key was refused");
                }
            }
            settle().await;
        }
        if second >= warm_up {
            per_second.push(Second {
                calls: store.key_and_account_calls() - before.0,
                keys: store.key_reads() - before.1,
                accounts: store.account_reads() - before.2,
            });
        }
    }
    per_second
}

fn report_reads(n: usize, label: &str, per_second: &[Second]) {
    let secs = per_second.len() as f64;
    let stats = |f: fn(&Second) -> u64| {
        let mean = per_second.iter().map(f).sum::<u64>() as f64 / secs;
        let max = per_second.iter().map(f).max().unwrap_or(0);
        let ratio = if mean > 0.0 { max as f64 / mean } else { 0.0 };
        (mean, max, ratio)
    };
    let (calls, calls_max, calls_ratio) = stats(|s| s.calls);
    let (keys, keys_max, keys_ratio) = stats(|s| s.keys);
    let (accounts, _, _) = stats(|s| s.accounts);
    println!(
        "{label}: {n} keys, {} s (keys/W = {:.1}; a batch is what is due within one 100 ms step): \
         store calls mean {calls:.1}/s, busiest second {calls_max} ({calls_ratio:.2}x the mean); \
         keys read mean {keys:.1}/s, busiest second {keys_max} ({keys_ratio:.2}x the mean); \
         account reads mean {accounts:.1}/s",
        per_second.len(),
        n as f64 / W_SECS as f64,
    );
}

/// A clock that moves 1 ms at every reading.
#[derive(Debug, Clone)]
struct Ticking(ManualClock);

impl Clock for Ticking {
    fn now(&self) -> OffsetDateTime {
        self.0.advance(Duration::milliseconds(1));
        self.0.now()
    }
}

/// Valid keys refused in `verifications` random verifications of `n` keys.
async fn refusals(n: usize, verifications: usize) -> usize {
    let clock = ManualClock::default();
    let memory = Arc::new(MemoryStore::new());
    let keys = keys(&memory, &clock, n).await;
    let kw = service(memory, Ticking(clock.clone()));
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let start = clock.now();
    let mut refused = 0;
    for i in 0..verifications {
        clock.advance(Duration::milliseconds((next() % 61) as i64));
        let k = &keys[(next() % n as u64) as usize];
        let ctx = VerifyContext::new();
        if kw
            .verify(k.key.id.as_str(), k.secret.expose(), ctx)
            .await
            .is_err()
        {
            refused += 1;
        }
        if i % 256 == 0 {
            tokio::task::yield_now().await;
        }
    }
    let crossed = (clock.now() - start).whole_seconds() / W_SECS;
    println!(
        "refusals: {verifications} verifications of {n} keys across {crossed} W boundaries: {refused} valid keys refused"
    );
    refused
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let number = |i: usize, default: usize| {
        args.get(i)
            .and_then(|a| a.replace('_', "").parse().ok())
            .unwrap_or(default)
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    match args.first().map(String::as_str) {
        Some("reads") => {
            let (n, seconds) = (number(1, 10_000), number(2, 240));
            let with = rt.block_on(reads(n, seconds, true));
            report_reads(n, "feed vouching", &with);
            let without = rt.block_on(reads(n, seconds, false));
            report_reads(n, "no feed", &without);
        }
        Some("refusals") => {
            let refused = rt.block_on(refusals(number(1, 10_000), number(2, 100_000)));
            assert_eq!(refused, 0, "valid keys were refused");
        }
        // `cargo bench` without a mode (and `cargo test --benches`):
        // a small run of each.
        _ => {
            let with = rt.block_on(reads(200, 60, true));
            report_reads(200, "feed vouching", &with);
            let without = rt.block_on(reads(200, 60, false));
            report_reads(200, "no feed", &without);
            assert_eq!(rt.block_on(refusals(200, 5_000)), 0);
        }
    }
}
