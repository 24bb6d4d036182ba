//! HTTP benchmark: a demo route behind keyward's extractor (warm key
//! headers, warm bearer session) against the same route with no
//! authentication, in the same run, in-process (`tower::ServiceExt::oneshot`
//! on an axum `Router`).
//!
//! ```sh
//! cargo bench --bench http --features axum
//! ```
//!
//! Routes: `/plain` (no authentication), `/keyward` (the `require` layer
//! and the `Principal` extractor), `/extract` (the `Principal` extractor
//! alone) and `/authorized` (the `Authorized<P>` extractor, no layer).
//!
//! With `KEYWARD_BENCH_SERVE=127.0.0.1:8080` the binary instead serves these
//! routes on loopback and prints the credentials to use, for a load
//! generator such as `wrk`:
//!
//! ```sh
//! KEYWARD_BENCH_SERVE=127.0.0.1:8080 cargo bench --bench http --features axum
//! ```
//!
//! `KEYWARD_BENCH_THREADS=1` serves on a current-thread runtime; otherwise
//! a multi-thread runtime with one worker per core. The loopback figure
//! (`/plain` against `/keyward`, same headers sent to both):
//!
//! ```sh
//! wrk -t1 -c32 -d10s -H "x-api-key: $KEY" -H "x-api-secret: $SECRET" http://127.0.0.1:8080/plain
//! wrk -t1 -c32 -d10s -H "x-api-key: $KEY" -H "x-api-secret: $SECRET" http://127.0.0.1:8080/keyward
//! wrk -t1 -c32 -d10s -H "x-api-key: $KEY" -H "x-api-secret: $SECRET" http://127.0.0.1:8080/authorized
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;

use axum::Router;
use axum::body::Body;
use axum::http::Request;
use axum::routing::get;
use criterion::{Criterion, Throughput, criterion_group};
use keyward::http::RequiredPermission;
use keyward::http::axum::{Authorized, require};
use keyward::{Actor, Keyward, MemoryStore, NewAccount, NewKey, PermissionSet, Principal};
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

fn app(kw: &Keyward) -> Router {
    Router::new()
        .route("/plain", get(plain))
        .route("/extract", get(guarded))
        .route("/authorized", get(authorized))
        .route(
            "/keyward",
            get(guarded).route_layer(require(kw, "readApplications")),
        )
        .with_state(kw.clone())
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let s = rt.block_on(setup());
    let router = app(&s.kw);
    let mut g = c.benchmark_group("http/demo route (in-process, axum)");
    g.throughput(Throughput::Elements(1));
    // (benchmark name, route, credentials as a bearer session token rather
    // than the key headers)
    let cases = [
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
    ];
    for (name, path, bearer) in cases {
        g.bench_function(name, |b| {
            b.to_async(&rt).iter(|| async {
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

criterion_group!(benches, bench);

fn main() {
    if let Ok(addr) = std::env::var("KEYWARD_BENCH_SERVE") {
        serve(&addr);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
