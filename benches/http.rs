//! HTTP benchmark: a demo route behind keyward's extractor (warm key
//! headers, warm bearer session) against the same route with no
//! authentication, in the same run, in-process (`tower::ServiceExt::oneshot`
//! on an axum `Router`).
//!
//! ```sh
//! cargo bench --bench http --features axum
//! ```
//!
//! Routes: `/plain` (no authentication, a static body), `/keyward` (the
//! `require` layer and the `Principal` extractor), `/extract` (the
//! `Principal` extractor alone) and `/authorized` (the `Authorized<P>`
//! extractor, no layer); and the example servers' demo route
//! `GET /applications` (the account's applications as JSON) as
//! `/demo/plain`, `/demo/authorized` and `/demo/keyward`.
//!
//! With `KEYWARD_BENCH_SERVE=127.0.0.1:8080` the binary instead serves these
//! routes on loopback and prints the credentials to use, for a load
//! generator such as `wrk`; `KEYWARD_BENCH_THREADS=1` serves on a
//! current-thread runtime (otherwise one worker per core).
//! `benches/loopback.sh` runs that server and wrk, pinned to one CPU each,
//! in interleaved rounds:
//!
//! ```sh
//! bash benches/loopback.sh 50 1 /plain /authorized /keyward
//! KEYWARD_BENCH_RESULTS=/tmp/demo.txt bash benches/loopback.sh 100 1 /demo/plain /demo/authorized /demo/keyward
//! ```
//!
//! `KEYWARD_BENCH_PROFILE=<case>:<requests>` sends one case's requests in a
//! loop for an instruction count (see [`profile`]).
//!
//! `KEYWARD_BENCH_POLLUTE=<KiB>` writes over that much memory between
//! requests, so that each finds its code and data out of the L1/L2 caches
//! as on a real server (the kernel's network path runs in between):
//!
//! ```sh
//! KEYWARD_BENCH_POLLUTE=256 cargo bench --bench http --features axum
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::{LazyLock, Mutex, OnceLock};

use axum::body::Body;
use axum::http::Request;
use axum::routing::get;
use axum::{Json, Router};
use criterion::{Criterion, Throughput, criterion_group};
use keyward::http::axum::{Authorized, require};
use keyward::http::{KeywardHttp, RequiredPermission};
use keyward::{
    AccountId, Actor, Keyward, MemoryStore, NewAccount, NewKey, PermissionSet, Principal,
};
use serde_json::{Value, json};
use tower::ServiceExt;

struct Setup {
    kw: Keyward,
    key_id: String,
    secret: String,
    token: String,
}

async fn setup() -> Setup {
    let kw = Keyward::builder()
        .store(MemoryStore::new())
        .build()
        .unwrap();
    let perms = PermissionSet::parse(["readApplications"]).unwrap();
    let account = kw
        .create_account(Actor::System, NewAccount::new("bench", perms.clone()))
        .await
        .unwrap();
    let issued = kw
        .issue_key(
            Actor::System,
            &account.id,
            NewKey::new("bench").permissions(perms),
        )
        .await
        .unwrap();
    let session = kw
        .login(
            issued.key.id.as_str(),
            issued.secret.expose(),
            keyward::VerifyContext::new(),
        )
        .await
        .unwrap();
    let apps = ["billing", "reports", "mobile"].map(String::from).to_vec();
    APPLICATIONS.lock().unwrap().insert(account.id, apps);
    ACCOUNT.set(account.id).unwrap();
    Setup {
        kw,
        key_id: issued.key.id.to_string(),
        secret: issued.secret.expose().to_owned(),
        token: session.token.expose().to_owned(),
    }
}

async fn plain() -> &'static str {
    "applications"
}

async fn guarded(p: Principal) -> &'static str {
    black_box(p);
    "applications"
}

struct ReadApplications;

impl RequiredPermission for ReadApplications {
    const NAME: &'static str = "readApplications";
}

async fn authorized(p: Authorized<ReadApplications>) -> &'static str {
    black_box(p);
    "applications"
}

/// The example servers' demo data: each account's applications.
static APPLICATIONS: LazyLock<Mutex<HashMap<AccountId, Vec<String>>>> =
    LazyLock::new(Mutex::default);
/// The benchmark's account, for the demo route without authentication.
static ACCOUNT: OnceLock<AccountId> = OnceLock::new();

/// `GET /applications` of `examples/server.rs`: the account's applications
/// as JSON.
fn list_applications(account: &AccountId) -> Json<Value> {
    let items = APPLICATIONS
        .lock()
        .unwrap()
        .get(account)
        .cloned()
        .unwrap_or_default();
    Json(json!({ "account_id": account, "items": items }))
}

async fn demo_plain() -> Json<Value> {
    list_applications(ACCOUNT.get().unwrap())
}

async fn demo_authorized(p: Authorized<ReadApplications>) -> Json<Value> {
    list_applications(p.account_id())
}

async fn demo_guarded(p: Principal) -> Json<Value> {
    list_applications(p.account_id())
}

fn app(kw: &Keyward) -> Router {
    let http = KeywardHttp::new(kw.clone());
    Router::new()
        .route("/demo/plain", get(demo_plain))
        .route("/demo/authorized", get(demo_authorized))
        .route(
            "/demo/keyward",
            get(demo_guarded).route_layer(require(&http, "readApplications")),
        )
        .route("/plain", get(plain))
        .route("/extract", get(guarded))
        .route("/authorized", get(authorized))
        .route(
            "/keyward",
            get(guarded).route_layer(require(&http, "readApplications")),
        )
        .with_state(http)
}

/// (benchmark name, route, credentials as a bearer session token rather
/// than the key headers)
const CASES: [(&str, &str, bool); 9] = [
    ("no auth (same headers sent)", "/plain", false),
    ("keyward x-api-key + x-api-secret (warm)", "/keyward", false),
    (
        "keyward extractor only, no permission layer (warm)",
        "/extract",
        false,
    ),
    (
        "keyward Authorized<P> x-api-key + x-api-secret (warm)",
        "/authorized",
        false,
    ),
    (
        "keyward Authorized<P> bearer session (warm)",
        "/authorized",
        true,
    ),
    ("keyward bearer session (warm)", "/keyward", true),
    (
        "demo route GET /applications, no auth",
        "/demo/plain",
        false,
    ),
    (
        "demo route GET /applications, Authorized<P> (warm)",
        "/demo/authorized",
        false,
    ),
    (
        "demo route GET /applications, require + Principal (warm)",
        "/demo/keyward",
        false,
    ),
];

/// One request through the router, as the benchmark sends it.
async fn one_request(router: &Router, s: &Setup, name: &str, path: &str, bearer: bool) {
    let req = if bearer {
        Request::get(path).header("authorization", format!("Bearer {}", s.token))
    } else {
        Request::get(path)
            .header("x-api-key", &s.key_id)
            .header("x-api-secret", &s.secret)
    };
    let res = router
        .clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = res.status();
    if !status.is_success() {
        let body = axum::body::to_bytes(res.into_body(), 4096).await.unwrap();
        panic!("{name}: {status} {}", String::from_utf8_lossy(&body));
    }
}

/// A current-thread runtime, the benchmark's keys and the router.
fn in_process() -> (tokio::runtime::Runtime, Setup, Router) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let s = rt.block_on(setup());
    let router = app(&s.kw);
    (rt, s, router)
}

fn bench(c: &mut Criterion) {
    let (rt, s, router) = in_process();
    let mut g = c.benchmark_group("http/demo route (in-process, axum)");
    g.throughput(Throughput::Elements(1));
    for (name, path, bearer) in CASES {
        g.bench_function(name, |b| {
            let buf = std::cell::RefCell::new(pollution_buffer());
            b.to_async(&rt).iter(|| async {
                one_request(&router, &s, name, path, bearer).await;
                pollute_caches(&mut buf.borrow_mut(), 1);
            });
        });
    }
    g.bench_function("Keyward::verify alone (warm, for reference)", |b| {
        b.to_async(&rt).iter(|| async {
            let p =
                s.kw.verify(
                    black_box(&s.key_id),
                    black_box(&s.secret),
                    keyward::VerifyContext::new(),
                )
                .await
                .unwrap();
            black_box(p);
        });
    });
    g.finish();
}

fn serve(addr: &str) {
    // KEYWARD_BENCH_THREADS=1 serves on one thread (no contention).
    let threads: usize = std::env::var("KEYWARD_BENCH_THREADS")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(0);
    let rt = if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap()
    };
    rt.block_on(async {
        let s = setup().await;
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        println!("serving on http://{}", listener.local_addr().unwrap());
        println!("x-api-key: {}", s.key_id);
        println!("x-api-secret: {}", s.secret);
        println!("bearer: {}", s.token);
        axum::serve(listener, app(&s.kw)).await.unwrap();
    });
}

/// `KEYWARD_BENCH_PROFILE=<case number>:<requests>`: sends that many
/// requests of one case (numbered from 0 in the order of [`CASES`]) in
/// [`profile_loop`], for an instruction count per request:
///
/// ```sh
/// KEYWARD_BENCH_PROFILE=3:20000 valgrind --tool=callgrind \
///   --toggle-collect='*profile_loop*' target/release/deps/http-<hash>
/// ```
///
/// (the total `Ir` divided by the number of requests; run it for case 0,
/// no authentication, to get the baseline).
fn profile(spec: &str) {
    let (case, n) = spec.split_once(':').expect("<case>:<requests>");
    let (name, path, bearer) = CASES[case.parse::<usize>().unwrap()];
    let n: u64 = n.parse().unwrap();
    let (rt, s, router) = in_process();
    // Warm the cache and the allocator before counting.
    rt.block_on(async {
        for _ in 0..100 {
            one_request(&router, &s, name, path, bearer).await;
        }
    });
    profile_loop(&rt, &router, &s, (name, path, bearer), n);
    println!("{name}: {n} requests");
}

#[inline(never)]
fn profile_loop(
    rt: &tokio::runtime::Runtime,
    router: &Router,
    s: &Setup,
    (name, path, bearer): (&str, &str, bool),
    n: u64,
) {
    let mut buf = pollution_buffer();
    rt.block_on(async {
        for i in 0..n {
            one_request(router, s, name, path, bearer).await;
            pollute_caches(&mut buf, i as u8);
        }
    });
}

/// `KEYWARD_BENCH_POLLUTE=<KiB>`: a buffer that size, which
/// [`pollute_caches`] writes over between requests (in the criterion
/// benchmarks and in [`profile_loop`]) as the kernel's network path does on
/// a real server, so that a request finds its data and code out of the L1
/// and L2 caches. Empty by default.
fn pollution_buffer() -> Vec<u8> {
    let kib: usize = std::env::var("KEYWARD_BENCH_POLLUTE")
        .ok()
        .and_then(|k| k.parse().ok())
        .unwrap_or(0);
    vec![0u8; kib * 1024]
}

/// Writes one byte per cache line of `buf`.
#[inline(never)]
fn pollute_caches(buf: &mut [u8], v: u8) {
    for line in buf.chunks_mut(64) {
        line[0] = v;
    }
    black_box(buf);
}

criterion_group!(benches, bench);

fn main() {
    if let Ok(addr) = std::env::var("KEYWARD_BENCH_SERVE") {
        serve(&addr);
        return;
    }
    if let Ok(spec) = std::env::var("KEYWARD_BENCH_PROFILE") {
        profile(&spec);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
