//! Routes declare what their calls cost and which manual limit they apply
//! (axum `require(..).limit(..).cost(..)`, actix
//! `RequirePermission::new(..).limit(..).cost(..)`), successful responses
//! carry the `RateLimit-Policy` / `RateLimit` headers when the host turns
//! them on, and a trusted proxy's `x-call-origin` overrides the route's
//! call origin (ignored from anyone else): the same bytes on both
//! frameworks.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;
#[path = "common/http.rs"]
mod http_client;

use actix_web::{App, web};
use axum::Router;
use http_client::{ActixClient, AxumClient, Client, Cred, Req, Resp, issue, req};
use keyward::http::{HttpConfig, KeywardHttp};
use keyward::store::UsageRecord;
use keyward::{
    Actor, Credits, KeyId, Keyward, Label, LimitOwner, Limits, NewKey, Principal, RateLimit,
};

const KEPT: &[&str] = &[
    "content-type",
    "retry-after",
    "ratelimit-policy",
    "ratelimit",
];
const PROXY: &str = "10.0.0.1:50000";

async fn account_of(p: Principal) -> String {
    p.account_id().to_string()
}

fn config(headers_on_success: bool) -> HttpConfig {
    HttpConfig::new()
        .trusted_proxies(vec!["10.0.0.0/8".parse().unwrap()])
        .rate_limit_headers(headers_on_success)
}

fn axum_app(kw: &Keyward, headers_on_success: bool) -> Router {
    use keyward::http::axum::require;
    let http = KeywardHttp::with_config(kw.clone(), config(headers_on_success));
    Router::new()
        .route(
            "/cheap",
            axum::routing::get(account_of).route_layer(require(&http, "readApplications")),
        )
        .route(
            "/expensive",
            axum::routing::get(account_of).route_layer(
                require(&http, "readApplications")
                    .limit("expensive")
                    .cost(5),
            ),
        )
        .with_state(http)
}

async fn actix_app(
    kw: &Keyward,
    headers_on_success: bool,
) -> ActixClient<
    impl actix_web::dev::Service<
        actix_http::Request,
        Response = actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>,
        Error = actix_web::Error,
    >,
> {
    use keyward::http::actix::RequirePermission;
    let http = KeywardHttp::with_config(kw.clone(), config(headers_on_success));
    ActixClient(
        actix_web::test::init_service(
            App::new()
                .app_data(web::Data::new(http))
                .service(
                    web::resource("/cheap")
                        .wrap(RequirePermission::new("readApplications"))
                        .route(web::get().to(account_of)),
                )
                .service(
                    web::resource("/expensive")
                        .wrap(
                            RequirePermission::new("readApplications")
                                .limit("expensive")
                                .cost(5),
                        )
                        .route(web::get().to(account_of)),
                ),
        )
        .await,
    )
}

/// A key with `requests` 100 per minute (auto-applied), `expensive` 1 per
/// minute (only where a route names it) and 12 credits.
async fn metered(f: &common::Fixture) -> Cred {
    let c = issue(
        &f.kw,
        &f.account.id,
        NewKey::new("metered").permissions(common::perms(&["readApplications"])),
    )
    .await;
    let limits = Limits::new()
        .ratelimit(RateLimit::new(Label::from_static("requests"), 100, 60_000))
        .ratelimit(RateLimit::new(Label::from_static("expensive"), 1, 60_000).manual())
        .credits(Credits::new(12));
    f.kw.set_limits(Actor::System, &owner(&c), limits)
        .await
        .expect("limits");
    c
}

fn owner(c: &Cred) -> LimitOwner {
    LimitOwner::Key(KeyId::new(&c.id).unwrap())
}

async fn run<C: Client>(c: &C, key: &Cred) -> Vec<Resp> {
    let mut out = Vec::new();
    for path in ["/expensive", "/expensive", "/cheap"] {
        out.push(c.send(req("GET", path).key(key)).await);
    }
    out
}

#[tokio::test]
async fn a_route_applies_its_named_limit_and_costs_what_it_says_alike_on_both_frameworks() {
    let f = common::fixture().await;
    let (ka, kb) = (metered(&f).await, metered(&f).await);
    let axum = AxumClient(axum_app(&f.kw, false));
    let actix = actix_app(&f.kw, false).await;
    let a = run(&axum, &ka).await;
    let b = run(&actix, &kb).await;
    let statuses: Vec<u16> = a.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [200, 429, 200]);
    assert_eq!(a[1].json()["error"], "rate_limited");
    assert_eq!(a[1].header("retry-after"), Some("60"));
    assert_eq!(
        a[1].header("ratelimit-policy"),
        Some("\"expensive\";q=1;w=60")
    );
    // Off by default: a success carries no rate-limit headers.
    assert_eq!(a[0].header("ratelimit"), None);
    let contract = |rs: &[Resp]| rs.iter().map(|r| r.contract(KEPT)).collect::<Vec<_>>();
    assert_eq!(contract(&a), contract(&b), "axum and actix differ");
    // 12 credits: the expensive route took 5, the refused call none, the
    // plain one 1.
    f.kw.flush().await.expect("flush");
    for k in [&ka, &kb] {
        let stored = f.kw.limits(Actor::System, &owner(k)).await.expect("read");
        assert_eq!(stored.credits.map(|c| c.remaining), Some(6), "{}", k.id);
    }
}

#[tokio::test]
async fn successes_carry_rate_limit_headers_when_turned_on_alike_on_both_frameworks() {
    let f = common::fixture().await;
    let (ka, kb) = (metered(&f).await, metered(&f).await);
    let axum = AxumClient(axum_app(&f.kw, true));
    let actix = actix_app(&f.kw, true).await;
    let a = run(&axum, &ka).await;
    let b = run(&actix, &kb).await;
    // The expensive call stands closest to its 1-per-minute limit; the
    // plain one against `requests` (two taken of 100).
    assert_eq!(
        a[0].header("ratelimit-policy"),
        Some("\"expensive\";q=1;w=60")
    );
    assert_eq!(a[0].header("ratelimit"), Some("\"expensive\";r=0;t=60"));
    assert_eq!(a[2].status, 200);
    assert_eq!(
        a[2].header("ratelimit-policy"),
        Some("\"requests\";q=100;w=60")
    );
    assert!(
        a[2].header("ratelimit")
            .is_some_and(|v| v.starts_with("\"requests\";r=98;t=")),
        "{:?}",
        a[2].headers
    );
    let contract = |rs: &[Resp]| rs.iter().map(|r| r.contract(KEPT)).collect::<Vec<_>>();
    assert_eq!(contract(&a), contract(&b), "axum and actix differ");
    // A key without limits: no headers.
    let plain = issue(
        &f.kw,
        &f.account.id,
        NewKey::new("plain").permissions(common::perms(&["readApplications"])),
    )
    .await;
    for r in [
        axum.send(req("GET", "/cheap").key(&plain)).await,
        actix.send(req("GET", "/cheap").key(&plain)).await,
    ] {
        assert_eq!(r.status, 200);
        assert_eq!(r.header("ratelimit-policy"), None);
        assert_eq!(r.header("ratelimit"), None);
    }
}

/// The origins `key`'s usage was counted under, with their successes.
async fn origins(kw: &Keyward, account: &keyward::AccountId, key: &Cred) -> Vec<(String, u64)> {
    kw.flush().await.expect("flush");
    let rows: Vec<UsageRecord> = kw
        .usage(
            Actor::System,
            account,
            common::around_now(kw).key(KeyId::new(&key.id).unwrap()),
        )
        .await
        .expect("usage");
    let mut by: std::collections::BTreeMap<String, u64> = Default::default();
    for r in rows {
        *by.entry(r.origin).or_default() += r.successes;
    }
    by.into_iter().collect()
}

async fn origin_calls<C: Client>(c: &C, key: &Cred) {
    let sends: [Req; 5] = [
        // A trusted proxy (an MCP gateway) names the origin: believed.
        req("GET", "/cheap")
            .key(key)
            .peer(PROXY)
            .header("x-call-origin", "mcp"),
        req("GET", "/cheap")
            .key(key)
            .peer(PROXY)
            .header("x-call-origin", "mcp"),
        // Anyone else: ignored, the route's origin counts.
        req("GET", "/cheap").key(key).header("x-call-origin", "mcp"),
        // Not a valid label, or sent twice: ignored.
        req("GET", "/cheap")
            .key(key)
            .peer(PROXY)
            .header("x-call-origin", "MCP!"),
        req("GET", "/cheap")
            .key(key)
            .peer(PROXY)
            .header("x-call-origin", "mcp")
            .header("x-call-origin", "api"),
    ];
    for r in sends {
        assert_eq!(c.send(r).await.status, 200);
    }
}

#[tokio::test]
async fn a_trusted_proxys_call_origin_overrides_the_routes_and_nobody_elses_does() {
    let f = common::fixture().await;
    let read = || NewKey::new("origins").permissions(common::perms(&["readApplications"]));
    let ka = issue(&f.kw, &f.account.id, read()).await;
    let kb = issue(&f.kw, &f.account.id, read()).await;
    origin_calls(&AxumClient(axum_app(&f.kw, false)), &ka).await;
    origin_calls(&actix_app(&f.kw, false).await, &kb).await;
    for k in [&ka, &kb] {
        assert_eq!(
            origins(&f.kw, &f.account.id, k).await,
            [("api".to_owned(), 3), ("mcp".to_owned(), 2)],
            "{}",
            k.id
        );
    }
}
