//! Verification benchmarks: warm, cold (argon2 at the default parameters),
//! malformed, wrong secret, session; 10 000 and 1 000 000 cached keys; two
//! threads; and the floor (one keyed digest, keyward's SipHash-2-4-128, +
//! one HashMap lookup + one constant-time compare) measured in the same run.
//!
//! Warm verification and the floor read the presented credentials from a
//! request stream: one contiguous buffer read front to back, as a server
//! reads requests off the network, naming keys in a random order.
//!
//! `cargo bench --bench verify` (`-- clock` for the hot path's clock).
//!
//! `KEYWARD_BENCH_PROFILE=<verify|cached>:<verifications>` runs that many
//! warm verifications of 10 000 keys (`verify` awaited, or
//! `verify_cached`) in [`profile_loop`] and exits, for an instruction
//! count per verification:
//!
//! ```sh
//! KEYWARD_BENCH_PROFILE=cached:200000 valgrind --tool=callgrind \
//!   --toggle-collect='*profile_loop*' target/release/deps/verify-<hash>
//! ```
//!
//! (the total `Ir` divided by the number of verifications; the loop's own
//! cost, reading the request stream, is included).

use std::collections::HashMap;
use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::sync::OnceLock;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, criterion_group};
use keyward::{
    Actor, HashParams, Keyward, ManualClock, MemoryStore, NewAccount, NewKey, PermissionSet,
    VerifyContext,
};
use subtle::ConstantTimeEq;

/// Polls a future that completes without waiting (warm paths).
fn ready<F: Future>(f: F) -> F::Output {
    let mut cx = Context::from_waker(Waker::noop());
    match pin!(f).poll(&mut cx) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("expected a warm, non-waiting path"),
    }
}

struct Population {
    kw: Keyward,
    store: MemoryStore,
    clock: ManualClock,
    account: keyward::AccountId,
    creds: Vec<(String, String)>,
    /// The credentials in random order, as a request stream.
    stream: RequestStream,
    id_len: usize,
}

/// `n` keys issued through the public API and cached (issuance warms the
/// cache). Bulk issuance uses the cheapest argon2 parameters to keep setup
/// short; the cached entries are identical whatever the parameters.
fn populate(rt: &tokio::runtime::Runtime, n: usize) -> Population {
    let started = Instant::now();
    let store = MemoryStore::new();
    let clock = ManualClock::default();
    let kw = Keyward::builder()
        .store(store.clone())
        .clock(clock.clone())
        .hash_params(HashParams {
            memory_kib: 8,
            iterations: 1,
            parallelism: 1,
        })
        .propagation_window(time::Duration::days(1))
        .flush_interval(None)
        .build()
        .expect("config");
    let perms = PermissionSet::parse(["readApplications", "writeApplications"]).expect("valid");
    let account = rt
        .block_on(kw.create_account(Actor::System, NewAccount::new("bench", perms.clone())))
        .expect("account")
        .id;
    let creds = rt.block_on(async {
        let mut tasks = Vec::new();
        let workers = 8;
        for w in 0..workers {
            let kw = kw.clone();
            let perms = perms.clone();
            tasks.push(tokio::spawn(async move {
                let mut out = Vec::with_capacity(n / workers + 1);
                for i in (w..n).step_by(workers) {
                    let k = kw
                        .issue_key(
                            Actor::System,
                            &account,
                            NewKey::new(format!("key {i}")).permissions(perms.clone()),
                        )
                        .await
                        .expect("issued");
                    out.push((k.key.id.to_string(), k.secret.expose().to_owned()));
                }
                out
            }));
        }
        let mut all = Vec::with_capacity(n);
        for t in tasks {
            all.extend(t.await.expect("task"));
        }
        all
    });
    let (len, bytes) = kw.cache_stats();
    eprintln!(
        "populated {len} keys in {:.1?}; cache tables and entries: {:.1} MiB, {} bytes per key",
        started.elapsed(),
        bytes as f64 / (1024.0 * 1024.0),
        bytes / len.max(1)
    );
    let stream = RequestStream::new(
        creds
            .iter()
            .map(|(id, secret)| [id.as_bytes(), secret.as_bytes()]),
    );
    let id_len = creds[0].0.len();
    Population {
        kw,
        store,
        clock,
        account,
        creds,
        stream,
        id_len,
    }
}

fn floor(c: &mut Criterion, n: usize, label: &str) {
    c.bench_function(&format!("floor/digest+lookup+ct_eq/{label}"), |b| {
        floor_iter(b, n)
    });
}

/// Keyward's keyed digest (SipHash-2-4, 128-bit output) of a 32-byte
/// secret.
fn digest(key: &[u8; 16], secret: &[u8]) -> [u8; 16] {
    use siphasher::sip128::Hasher128;
    use std::hash::Hasher;
    let mut h = siphasher::sip128::SipHasher24::new_with_key(key);
    h.write(secret);
    h.finish128().as_bytes()
}

/// One keyed digest of a 32-byte secret, one HashMap lookup, one ct_eq;
/// the presented id and secret read from a request stream like the warm
/// benchmark's.
fn floor_iter(b: &mut criterion::Bencher<'_>, n: usize) {
    const ID: usize = 20;
    let key = [7u8; 16];
    let mut map: HashMap<String, [u8; 16], foldhash::fast::RandomState> = HashMap::default();
    let mut records = Vec::with_capacity(n);
    for i in 0..n {
        let id = format!("kw_{i:017}");
        // 32 base62 characters standing in for the secret.
        let secret = format!("{i:032}");
        map.insert(id.clone(), digest(&key, secret.as_bytes()));
        records.push((id, secret));
    }
    let stream = RequestStream::new(records.iter().map(|(id, s)| [id.as_bytes(), s.as_bytes()]));
    let mut at = 0usize;
    b.iter(|| {
        let (id, secret) = stream.credentials(&mut at, ID);
        let tag = digest(&key, black_box(secret.as_bytes()));
        let stored = map.get(black_box(id)).expect("present");
        black_box(bool::from(stored.ct_eq(&tag)))
    });
}

/// The presented credentials as a server sees them: each request's bytes
/// arrive fresh in a buffer (here one contiguous buffer read front to
/// back), while the keys they name are visited in a random order, so the
/// cache's own tables are accessed at random.
struct RequestStream {
    text: String,
    record: usize,
}

impl RequestStream {
    /// Lays out the records in a fixed pseudo-random order (every record
    /// once), each one the concatenation of its parts.
    fn new<'a>(records: impl Iterator<Item = [&'a [u8]; 2]>) -> Self {
        let mut all: Vec<Vec<u8>> = records.map(|[a, b]| [a, b].concat()).collect();
        let record = all[0].len();
        assert!(all.iter().all(|r| r.len() == record), "fixed-size records");
        // Fisher-Yates with a fixed xorshift seed: the same order every run.
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for i in (1..all.len()).rev() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            all.swap(i, (x % (i as u64 + 1)) as usize);
        }
        Self {
            text: String::from_utf8(all.concat()).expect("ASCII credentials"),
            record,
        }
    }

    fn len(&self) -> usize {
        self.text.len() / self.record
    }

    /// The key id and secret of the record at `*at`, advancing (and
    /// wrapping) the cursor.
    #[inline]
    fn credentials(&self, at: &mut usize, id_len: usize) -> (&str, &str) {
        let start = *at * self.record;
        *at = if *at + 1 == self.len() { 0 } else { *at + 1 };
        (
            &self.text[start..start + id_len],
            &self.text[start + id_len..start + self.record],
        )
    }
}

fn warm(c: &mut Criterion, pop: fn() -> &'static Population, label: &str) {
    let ctx = VerifyContext::new();
    c.bench_function(&format!("verify/warm/{label}"), |b| {
        let pop = pop();
        let mut at = 0usize;
        b.iter(|| {
            let (id, secret) = pop.stream.credentials(&mut at, pop.id_len);
            black_box(ready(pop.kw.verify(black_box(id), black_box(secret), ctx)).expect("ok"))
        })
    });
}

fn two_threads(c: &mut Criterion, pop: fn() -> &'static Population, label: &str) {
    let ctx = VerifyContext::new();
    let mut group = c.benchmark_group(format!("verify/warm/{label}"));
    for threads in [1usize, 2] {
        group.bench_function(
            format!("{threads} thread(s), time per verify per thread"),
            |b| {
                let pop = pop();
                b.iter_custom(|iters| {
                    let start = Instant::now();
                    std::thread::scope(|s| {
                        for t in 0..threads {
                            let kw = pop.kw.clone();
                            s.spawn(move || {
                                let mut at = t * pop.stream.len() / threads;
                                for _ in 0..iters {
                                    let (id, secret) = pop.stream.credentials(&mut at, pop.id_len);
                                    black_box(ready(kw.verify(id, secret, ctx)).expect("ok"));
                                }
                            });
                        }
                    });
                    start.elapsed()
                })
            },
        );
    }
    group.finish();
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime")
    })
}

/// Populations are built on first use, so a filtered run (for example
/// `cargo bench --bench verify -- 10k`) builds only what it measures.
fn small() -> &'static Population {
    static P: OnceLock<Population> = OnceLock::new();
    P.get_or_init(|| populate(runtime(), 10_000))
}

fn big() -> &'static Population {
    static P: OnceLock<Population> = OnceLock::new();
    P.get_or_init(|| populate(runtime(), 1_000_000))
}

fn ten_thousand(c: &mut Criterion) {
    floor(c, 10_000, "10k keys");
    warm(c, small, "10k keys");
    two_threads(c, small, "10k keys");
}

fn one_million(c: &mut Criterion) {
    floor(c, 1_000_000, "1M keys");
    warm(c, big, "1M keys");
    two_threads(c, big, "1M keys");
}

fn rejections_and_sessions(c: &mut Criterion) {
    let ctx = VerifyContext::new();
    c.bench_function("verify/wrong secret (warm key)", |b| {
        let pop = small();
        let (id, _) = &pop.creds[0];
        let wrong = &pop.creds[1].1;
        b.iter(|| black_box(ready(pop.kw.verify(id, black_box(wrong), ctx)).is_err()))
    });
    c.bench_function("verify/malformed (checksum fails)", |b| {
        let pop = small();
        let (id, secret) = &pop.creds[0];
        let mut typo = secret.clone().into_bytes();
        typo[10] = if typo[10] == b'a' { b'b' } else { b'a' };
        let typo = String::from_utf8(typo).expect("ascii");
        b.iter(|| black_box(ready(pop.kw.verify(id, black_box(&typo), ctx)).is_err()))
    });
    c.bench_function("verify/malformed (too short)", |b| {
        let pop = small();
        let (id, _) = &pop.creds[0];
        b.iter(|| black_box(ready(pop.kw.verify(id, black_box("kw_sk_abc"), ctx)).is_err()))
    });
    c.bench_function("verify/session (warm)", |b| {
        let pop = small();
        let (id, secret) = &pop.creds[0];
        let session = runtime()
            .block_on(pop.kw.login(id, secret, ctx))
            .expect("login");
        let token = session.token.expose().to_owned();
        b.iter(|| black_box(ready(pop.kw.verify_session(black_box(&token), ctx)).expect("ok")))
    });
}

fn cold(c: &mut Criterion) {
    // A fresh instance on the same store for every iteration, so each
    // verification reads the store and runs argon2id at the default
    // parameters.
    let ctx = VerifyContext::new();
    let d = HashParams::DEFAULT;
    let mut group = c.benchmark_group("verify/cold");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(10));
    group.bench_function(
        format!(
            "argon2id m={} t={} p={}",
            d.memory_kib, d.iterations, d.parallelism
        ),
        |b| {
            let pop = small();
            let rt = runtime();
            let fresh = || {
                Keyward::builder()
                    .store(pop.store.clone())
                    .clock(pop.clock.clone())
                    .flush_interval(None)
                    .build()
                    .expect("config")
            };
            let key = rt
                .block_on(fresh().issue_key(Actor::System, &pop.account, NewKey::new("cold")))
                .expect("issued");
            let (id, secret) = (key.key.id.to_string(), key.secret.expose().to_owned());
            b.iter_batched(
                fresh,
                |kw| rt.block_on(kw.verify(&id, &secret, ctx)).expect("ok"),
                BatchSize::PerIteration,
            )
        },
    );
    group.finish();
}

/// The hot path's clock against std's `SystemTime` (what it replaced).
#[allow(clippy::disallowed_methods)]
fn clock(c: &mut Criterion) {
    use keyward::Clock;
    c.bench_function("clock/SystemClock::now_unix_nanos", |b| {
        b.iter(|| black_box(keyward::SystemClock.now_unix_nanos()));
    });
    c.bench_function("clock/SystemTime::now + duration_since", |b| {
        b.iter(|| {
            black_box(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos()),
            )
        });
    });
}

/// The cost of one auto-applied rate limit on a warm verification: the
/// same warm key verified without limits, then with one (a GCRA cell that
/// never refuses here: 10^9 calls per second).
fn one_limit(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let pop = populate(&rt, 2);
    let ctx = VerifyContext::new();
    let mut group = c.benchmark_group("verify/warm/ratelimit");
    let (free_id, free_secret) = &pop.creds[0];
    let (id, secret) = &pop.creds[1];
    let limit =
        keyward::RateLimit::new(keyward::Label::from_static("requests"), 1_000_000_000, 1000);
    rt.block_on(pop.kw.set_limits(
        Actor::System,
        &keyward::LimitOwner::Key(id.parse().expect("key id")),
        keyward::Limits::new().ratelimit(limit),
    ))
    .expect("limits");
    group.bench_function("no limit", |b| {
        b.iter(|| {
            black_box(
                ready(
                    pop.kw
                        .verify(black_box(free_id), black_box(free_secret), ctx),
                )
                .expect("ok"),
            )
        })
    });
    group.bench_function("one auto-applied limit", |b| {
        b.iter(|| {
            black_box(ready(pop.kw.verify(black_box(id), black_box(secret), ctx)).expect("ok"))
        })
    });
    group.finish();
}

criterion_group!(
    verify,
    one_limit,
    ten_thousand,
    rejections_and_sessions,
    cold,
    one_million,
    clock
);
/// See the module docs.
#[inline(never)]
fn profile_loop(pop: &Population, n: u64, cached: bool) {
    let ctx = VerifyContext::new();
    let mut at = 0usize;
    for _ in 0..n {
        let (id, secret) = pop.stream.credentials(&mut at, pop.id_len);
        if cached {
            let decided = pop.kw.verify_cached(black_box(id), black_box(secret), ctx);
            black_box(decided.expect("decided").expect("ok"));
        } else {
            black_box(ready(pop.kw.verify(black_box(id), black_box(secret), ctx)).expect("ok"));
        }
    }
}

fn profile(spec: &str) {
    let (mode, n) = spec
        .split_once(':')
        .expect("<verify|cached>:<verifications>");
    let cached = match mode {
        "verify" => false,
        "cached" => true,
        other => panic!("unknown profile mode {other:?}"),
    };
    let n: u64 = n.parse().expect("a count");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let pop = populate(&rt, 10_000);
    // Warm the usage slots and the caches before counting.
    profile_loop(&pop, 20_000, cached);
    profile_loop(&pop, n, cached);
    eprintln!("profiled {n} warm verifications ({mode})");
}

fn main() {
    if let Ok(spec) = std::env::var("KEYWARD_BENCH_PROFILE") {
        profile(&spec);
        return;
    }
    verify();
    Criterion::default().configure_from_args().final_summary();
}
