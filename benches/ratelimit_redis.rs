//! Accuracy of rate limits shared through Redis: 4 instances (4 `Keyward`
//! values in one process, one Redis) share one key's limit and hammer it
//! as fast as they go for a few seconds; after the initial burst, how many
//! calls are accepted in any 1-second sliding window, and how many
//! verifications waited for Redis.
//!
//! ```sh
//! KEYWARD_BENCH_REDIS_URL=redis://127.0.0.1:6379 \
//!   cargo bench --features redis --bench ratelimit_redis
//! ```
//!
//! (`KEYWARD_TEST_REDIS_URL` is used when the first is unset; without
//! either it prints `skipped:` and exits.) Optional
//! `KEYWARD_BENCH_SECONDS` (default 5).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use keyward::{
    Actor, Error, HashParams, Keyward, Label, LimitOwner, Limits, MemoryStore, NewAccount, NewKey,
    PermissionSet, RateLimit, RedisLimits, VerifyContext,
};

const INSTANCES: usize = 4;
const TASKS_PER_INSTANCE: usize = 2;

fn main() {
    let Some(url) = ["KEYWARD_BENCH_REDIS_URL", "KEYWARD_TEST_REDIS_URL"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|u| !u.is_empty()))
    else {
        println!("skipped: KEYWARD_BENCH_REDIS_URL / KEYWARD_TEST_REDIS_URL not set");
        return;
    };
    let seconds: u64 = std::env::var("KEYWARD_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    println!(
        "{INSTANCES} instances x {TASKS_PER_INSTANCE} tasks, one Redis, {seconds} s per limit"
    );
    println!(
        "{:>10} {:>6} {:>10} {:>14} {:>10} {:>12} {:>14}",
        "limit/s", "lease", "accepted", "max in 1 s", "allowed", "verifs", "waited Redis"
    );
    for limit in [100u32, 10_000] {
        let r = rt.block_on(run(&url, limit, Duration::from_secs(seconds)));
        println!(
            "{:>10} {:>6} {:>10} {:>14} {:>10} {:>12} {:>13.2}%",
            limit,
            (limit / (100 * INSTANCES as u32)).max(1),
            r.accepted,
            r.max_window,
            // GCRA's own bound for a 1 s window once the burst is spent.
            limit + 1,
            r.verifications,
            100.0 * r.waited as f64 / r.verifications.max(1) as f64
        );
    }
}

struct Outcome {
    accepted: usize,
    max_window: usize,
    verifications: u64,
    waited: u64,
}

async fn run(url: &str, limit: u32, length: Duration) -> Outcome {
    let store = MemoryStore::new();
    let prefix = format!("keyward:bench:{:016x}", rand::random::<u64>());
    let mut instances = Vec::new();
    for _ in 0..INSTANCES {
        let limits = RedisLimits::connect(url)
            .await
            .expect("redis")
            .key_prefix(prefix.clone())
            .instances(INSTANCES as u32);
        instances.push(
            Keyward::builder()
                .store(store.clone())
                .hash_params(HashParams {
                    memory_kib: 8,
                    iterations: 1,
                    parallelism: 1,
                })
                .flush_interval(None)
                .redis_limits(limits)
                .build()
                .expect("build"),
        );
    }
    let kw = &instances[0];
    let perms = PermissionSet::parse(["readApplications"]).expect("perms");
    let account = kw
        .create_account(Actor::System, NewAccount::new("bench", perms.clone()))
        .await
        .expect("account");
    let issued = kw
        .issue_key(
            Actor::System,
            &account.id,
            NewKey::new("k").permissions(perms),
        )
        .await
        .expect("key");
    let limits =
        Limits::new().ratelimit(RateLimit::new(Label::from_static("requests"), limit, 1000));
    kw.set_limits(Actor::System, &LimitOwner::Key(issued.key.id), limits)
        .await
        .expect("limits");
    let id = issued.key.id.to_string();
    let secret = issued.secret.expose().to_owned();

    let stop = Arc::new(AtomicBool::new(false));
    let accepted = Arc::new(Mutex::new(Vec::<Instant>::new()));
    let verifications = Arc::new(AtomicU64::new(0));
    let waited = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for kw in &instances {
        for _ in 0..TASKS_PER_INSTANCE {
            let (kw, id, secret) = (kw.clone(), id.clone(), secret.clone());
            let (stop, accepted) = (stop.clone(), accepted.clone());
            let (verifications, waited) = (verifications.clone(), waited.clone());
            tasks.push(tokio::spawn(async move {
                let mut mine = Vec::new();
                let (mut n, mut w) = (0u64, 0u64);
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let ctx = VerifyContext::new();
                    let r = match kw.verify_cached(&id, &secret, ctx) {
                        Some(r) => r,
                        None => {
                            w += 1;
                            kw.verify(&id, &secret, ctx).await
                        }
                    };
                    match r {
                        Ok(_) => mine.push(Instant::now()),
                        Err(Error::RateLimited { .. }) => {}
                        Err(e) => panic!("unexpected {e}"),
                    }
                    if n % 64 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
                accepted.lock().expect("lock").extend(mine);
                verifications.fetch_add(n, Ordering::Relaxed);
                waited.fetch_add(w, Ordering::Relaxed);
            }));
        }
    }
    tokio::time::sleep(length).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.expect("task");
    }
    let end = start + length;
    let mut ts = std::mem::take(&mut *accepted.lock().expect("lock"));
    ts.sort();
    // Windows [t, t + 1 s) starting once the initial burst (the first
    // second) is over and ending within the run.
    let second = Duration::from_secs(1);
    let mut max_window = 0;
    let mut j = 0;
    for i in 0..ts.len() {
        if ts[i] < start + second || ts[i] + second > end {
            continue;
        }
        j = j.max(i);
        while j < ts.len() && ts[j] < ts[i] + second {
            j += 1;
        }
        max_window = max_window.max(j - i);
    }
    Outcome {
        accepted: ts.len(),
        max_window,
        verifications: verifications.load(Ordering::Relaxed),
        waited: waited.load(Ordering::Relaxed),
    }
}
