//! keyward against its anchors, interleaved in one process on the same
//! request stream (each round runs every contender once, in a rotated
//! order, so the machine's drift between rounds cancels in the per-round
//! ratios):
//!
//! - keyward `verify` (awaited; warm, so it completes without waiting) and
//!   `verify_cached`;
//! - the README floor: one keyed SipHash-2-4-128 digest of the presented
//!   secret + one `HashMap<String, _>` lookup + one constant-time compare;
//! - the floor with the id stored inline (`HashMap<[u8; 24], _>`);
//! - SHA-256 of the whole presented key + one `HashMap` lookup (the design
//!   Unkey uses; the `sha2` crate, which uses the CPU's SHA extensions when
//!   present);
//! - argon2id per request, with the argon2 crate's defaults and with
//!   keyward's parameters (a few runs per round: milliseconds each).
//!
//! ```sh
//! cargo bench --bench peers -- [keys] [rounds]   # defaults: 10000 15
//! ```
//!
//! Prints each round's ns per verification and, at the end, the median of
//! each contender and the median of its per-round ratio to the SHA-256 +
//! `HashMap` design and to the floor.
//!
//! `KEYWARD_BENCH_PROFILE=<contender>:<n>` (contender 0–4 in the order
//! above) runs one warm-up pass, then `n` verifications of that contender
//! in `profile_loop` and exits, for an instruction count that does not
//! depend on the machine's load:
//!
//! ```sh
//! KEYWARD_BENCH_PROFILE=1:200000 valgrind --tool=callgrind \
//!   --toggle-collect='*profile_loop*' target/release/deps/peers-<hash> 10000
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::HashMap;
use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};
use keyward::{
    Actor, HashParams, Keyward, ManualClock, MemoryStore, NewAccount, NewKey, PermissionSet,
    VerifyContext,
};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Polls a future that completes without waiting (warm paths).
fn ready<F: Future>(f: F) -> F::Output {
    let mut cx = Context::from_waker(Waker::noop());
    match pin!(f).poll(&mut cx) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("expected a warm, non-waiting path"),
    }
}

fn siphash(key: &[u8; 16], data: &[u8]) -> [u8; 16] {
    use siphasher::sip128::Hasher128;
    use std::hash::Hasher;
    let mut h = siphasher::sip128::SipHasher24::new_with_key(key);
    h.write(data);
    h.finish128().as_bytes()
}

fn inline_id(id: &str) -> [u8; 24] {
    let mut out = [0u8; 24];
    out[..id.len()].copy_from_slice(id.as_bytes());
    out
}

/// The presented credentials, one contiguous buffer read front to back,
/// naming the keys in a fixed random order.
struct Stream {
    text: String,
    id_len: usize,
    record: usize,
}

impl Stream {
    fn new(creds: &[(String, String)]) -> Self {
        let mut order: Vec<usize> = (0..creds.len()).collect();
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for i in (1..order.len()).rev() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            order.swap(i, (x % (i as u64 + 1)) as usize);
        }
        let text: String = order
            .iter()
            .map(|&i| format!("{}{}", creds[i].0, creds[i].1))
            .collect();
        let (id_len, record) = (creds[0].0.len(), creds[0].0.len() + creds[0].1.len());
        Self {
            text,
            id_len,
            record,
        }
    }

    #[inline]
    fn next(&self, at: &mut usize) -> (&str, &str) {
        let start = *at * self.record;
        *at += 1;
        if *at * self.record == self.text.len() {
            *at = 0;
        }
        (
            &self.text[start..start + self.id_len],
            &self.text[start + self.id_len..start + self.record],
        )
    }
}

fn populate(rt: &tokio::runtime::Runtime, n: usize) -> (Keyward, Vec<(String, String)>) {
    let kw = Keyward::builder()
        .store(MemoryStore::new())
        .clock(ManualClock::default())
        .hash_params(HashParams {
            memory_kib: 8,
            iterations: 1,
            parallelism: 1,
        })
        .propagation_window(time::Duration::days(1))
        .flush_interval(None)
        .build()
        .expect("config");
    let perms = PermissionSet::parse(["readApplications"]).expect("valid");
    let account = rt
        .block_on(kw.create_account(Actor::System, NewAccount::new("peers", perms.clone())))
        .expect("account")
        .id;
    let creds = rt.block_on(async {
        let mut tasks = Vec::new();
        for w in 0..8 {
            let (kw, perms) = (kw.clone(), perms.clone());
            tasks.push(tokio::spawn(async move {
                let mut out = Vec::new();
                for i in (w..n).step_by(8) {
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
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.expect("task"));
        }
        all
    });
    let (len, bytes) = kw.cache_stats();
    eprintln!(
        "{len} keys cached: {:.1} MiB of cache tables and entries, {} bytes per key",
        bytes as f64 / (1024.0 * 1024.0),
        bytes / len.max(1)
    );
    (kw, creds)
}

/// ns per operation of `ops` runs of `f` over the stream.
fn time(ops: usize, stream: &Stream, mut f: impl FnMut(&str, &str) -> bool) -> f64 {
    let mut at = 0;
    let started = Instant::now();
    for _ in 0..ops {
        let (id, secret) = stream.next(&mut at);
        assert!(f(black_box(id), black_box(secret)));
    }
    started.elapsed().as_nanos() as f64 / ops as f64
}

/// `ops` runs of `f` over the stream, for callgrind's `--toggle-collect`.
#[inline(never)]
fn profile_loop(ops: usize, stream: &Stream, mut f: impl FnMut(&str, &str) -> bool) {
    let mut at = 0;
    for _ in 0..ops {
        let (id, secret) = stream.next(&mut at);
        assert!(f(black_box(id), black_box(secret)));
    }
}

/// How a contender is run: timed, or warmed up then profiled `n` times.
#[derive(Clone, Copy)]
enum Mode {
    Time,
    Profile(usize),
}

/// Runs `f` over the stream in `mode`: ns per operation when timed.
fn run(mode: Mode, ops: usize, stream: &Stream, f: impl FnMut(&str, &str) -> bool) -> f64 {
    match mode {
        Mode::Time => time(ops, stream, f),
        Mode::Profile(n) => {
            let mut f = f;
            time(ops, stream, &mut f);
            profile_loop(n, stream, f);
            0.0
        }
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let n = args.first().copied().unwrap_or(10_000);
    let rounds = args.get(1).copied().unwrap_or(15);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (kw, creds) = populate(&rt, n);
    let stream = Stream::new(&creds);
    let key = [7u8; 16];
    let floor: HashMap<String, [u8; 16], foldhash::fast::RandomState> = creds
        .iter()
        .map(|(id, s)| (id.clone(), siphash(&key, s.as_bytes())))
        .collect();
    let inline: HashMap<[u8; 24], [u8; 16], foldhash::fast::RandomState> = creds
        .iter()
        .map(|(id, s)| (inline_id(id), siphash(&key, s.as_bytes())))
        .collect();
    let unkey: HashMap<[u8; 32], u32, foldhash::fast::RandomState> = creds
        .iter()
        .enumerate()
        .map(|(i, (id, s))| {
            let mut h = Sha256::new();
            h.update(id.as_bytes());
            h.update(s.as_bytes());
            (h.finalize().into(), i as u32)
        })
        .collect();
    let argon_default = Argon2::default();
    let argon_keyward = Argon2::new(
        Algorithm::Argon2id,
        Version::V0x13,
        Params::new(8192, 1, 1, None).expect("params"),
    );
    let stored_default = argon_default
        .hash_password(creds[0].1.as_bytes())
        .expect("hash")
        .to_string();
    let stored_keyward = argon_keyward
        .hash_password(creds[0].1.as_bytes())
        .expect("hash")
        .to_string();
    let ctx = VerifyContext::new();
    let ops = (n * 20).max(200_000);
    let names = [
        "keyward verify",
        "keyward verify_cached",
        "floor (README)",
        "floor, inline ids",
        "SHA-256 + HashMap (Unkey)",
        "argon2id crate defaults",
        "argon2id keyward params",
    ];
    let contender = |c: usize, mode: Mode| -> f64 {
        match c {
            0 => run(mode, ops, &stream, |id, s| {
                ready(kw.verify(id, s, ctx)).is_ok()
            }),
            1 => run(mode, ops, &stream, |id, s| {
                matches!(kw.verify_cached(id, s, ctx), Some(Ok(_)))
            }),
            2 => run(mode, ops, &stream, |id, s| {
                let tag = siphash(&key, s.as_bytes());
                bool::from(floor.get(id).expect("present").ct_eq(&tag))
            }),
            3 => run(mode, ops, &stream, |id, s| {
                let tag = siphash(&key, s.as_bytes());
                bool::from(inline.get(&inline_id(id)).expect("present").ct_eq(&tag))
            }),
            4 => run(mode, ops, &stream, |id, s| {
                let mut h = Sha256::new();
                h.update(id.as_bytes());
                h.update(s.as_bytes());
                let digest: [u8; 32] = h.finalize().into();
                unkey.contains_key(&digest)
            }),
            _ => {
                let (argon, stored) = if c == 5 {
                    (&argon_default, &stored_default)
                } else {
                    (&argon_keyward, &stored_keyward)
                };
                let parsed = PasswordHash::new(stored).expect("phc");
                let runs = 5;
                let started = Instant::now();
                for _ in 0..runs {
                    argon
                        .verify_password(black_box(creds[0].1.as_bytes()), &parsed)
                        .expect("verifies");
                }
                started.elapsed().as_nanos() as f64 / f64::from(runs)
            }
        }
    };
    if let Some((c, n)) = std::env::var("KEYWARD_BENCH_PROFILE").ok().and_then(|v| {
        let (c, n) = v.split_once(':')?;
        Some((c.parse::<usize>().ok()?, n.parse::<usize>().ok()?))
    }) {
        assert!(c < 5, "profile contenders are 0-4 (argon2 is not profiled)");
        contender(c, Mode::Profile(n));
        eprintln!("profiled {n} verifications of {}", names[c]);
        return;
    }
    let mut results: Vec<Vec<f64>> = vec![Vec::new(); names.len()];
    for round in 0..rounds {
        let mut line = Vec::new();
        for k in 0..names.len() {
            let c = (k + round) % names.len();
            let ns = contender(c, Mode::Time);
            results[c].push(ns);
            line.push((c, ns));
        }
        line.sort_by_key(|(c, _)| *c);
        let cells: Vec<String> = line.iter().map(|(_, ns)| format!("{ns:.0}")).collect();
        println!("round {round:2} ns: {}", cells.join(" | "));
    }
    println!(
        "\n{n} keys, {rounds} rounds, {ops} verifications per contender per round (argon2: 5)"
    );
    println!("| contender | median ns | × SHA-256 + HashMap (median of rounds) | × floor |");
    println!("|---|---|---|---|");
    for (c, name) in names.iter().enumerate() {
        let ratio = |base: usize| {
            let mut r: Vec<f64> = results[c]
                .iter()
                .zip(&results[base])
                .map(|(a, b)| a / b)
                .collect();
            median(&mut r)
        };
        let (to_unkey, to_floor) = (ratio(4), ratio(2));
        let mut own = results[c].clone();
        println!(
            "| {name} | {:.0} | {to_unkey:.2} | {to_floor:.2} |",
            median(&mut own)
        );
    }
}
