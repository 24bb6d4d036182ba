//! `Authorized<P>` with marker types from `keyward::permission!`, on axum
//! and on actix-web: the same statuses, headers and bodies on both (401
//! without credentials or with a wrong secret, 403 without the permission,
//! 200 with it).
#![cfg(all(feature = "axum", feature = "actix"))]

mod common;

use axum::routing::get;
use common::{fixture, perms};
use keyward::http::KeywardHttp;
use keyward::http::axum::Authorized as AxumAuthorized;
use keyward::{Actor, NewKey};
use tower::ServiceExt;

keyward::permission! {
    /// May read applications.
    pub ReadApplications = "readApplications";
}

/// Status, `WWW-Authenticate` and body.
type Answer = (u16, Option<String>, Vec<u8>);

/// A case: its name, the request headers, the expected status.
type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, u16);

async fn axum_handler(p: AxumAuthorized<ReadApplications>) -> String {
    format!("apps of {}", p.account_id())
}

async fn actix_handler(p: keyward::http::actix::Authorized<ReadApplications>) -> String {
    format!("apps of {}", p.account_id())
}

async fn via_axum(kw: &keyward::Keyward, headers: &[(&str, &str)]) -> Answer {
    let app: axum::Router = axum::Router::new()
        .route("/apps", get(axum_handler))
        .with_state(KeywardHttp::new(kw.clone()));
    let mut req = axum::http::Request::get("/apps");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = app
        .oneshot(req.body(axum::body::Body::empty()).expect("request"))
        .await
        .expect("response");
    let status = res.status().as_u16();
    let challenge = res
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().expect("ascii").to_owned());
    let body = axum::body::to_bytes(res.into_body(), usize::MAX)
        .await
        .expect("body")
        .to_vec();
    (status, challenge, body)
}

async fn via_actix(kw: &keyward::Keyward, headers: &[(&str, &str)]) -> Answer {
    let app = actix_web::test::init_service(
        actix_web::App::new()
            .app_data(actix_web::web::Data::new(KeywardHttp::new(kw.clone())))
            .route("/apps", actix_web::web::get().to(actix_handler)),
    )
    .await;
    let mut req = actix_web::test::TestRequest::get().uri("/apps");
    for (k, v) in headers {
        req = req.insert_header((*k, *v));
    }
    let res = actix_web::test::call_service(&app, req.to_request()).await;
    let status = res.status().as_u16();
    let challenge = res
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().expect("ascii").to_owned());
    let body = actix_web::test::read_body(res).await.to_vec();
    (status, challenge, body)
}

#[actix_web::test]
async fn authorized_answers_alike_on_axum_and_actix() {
    let f = fixture().await;
    let reader =
        f.kw.issue_key(
            Actor::System,
            &f.account.id,
            NewKey::new("reader").permissions(perms(&["readApplications"])),
        )
        .await
        .expect("reader");
    let other =
        f.kw.issue_key(
            Actor::System,
            &f.account.id,
            NewKey::new("other").permissions(perms(&["readApiKeys"])),
        )
        .await
        .expect("other");
    let (rid, rsecret) = (reader.key.id.to_string(), reader.secret.expose().to_owned());
    let (oid, osecret) = (other.key.id.to_string(), other.secret.expose().to_owned());
    let cases: Vec<Case<'_>> = vec![
        ("no credentials", vec![], 401),
        (
            "wrong secret",
            vec![("x-api-key", &rid), ("x-api-secret", &osecret)],
            401,
        ),
        (
            "without the permission",
            vec![("x-api-key", &oid), ("x-api-secret", &osecret)],
            403,
        ),
        (
            "with the permission",
            vec![("x-api-key", &rid), ("x-api-secret", &rsecret)],
            200,
        ),
    ];
    for (name, headers, status) in cases {
        let a = via_axum(&f.kw, &headers).await;
        let b = via_actix(&f.kw, &headers).await;
        assert_eq!(a.0, status, "{name} on axum: {a:?}");
        assert_eq!(a, b, "{name}: axum and actix differ");
        if status == 403 {
            let challenge = a.1.as_deref().unwrap_or_default();
            assert!(
                challenge.contains(r#"scope="readApplications""#),
                "{name}: {challenge}"
            );
        }
    }
}

/// The one state's `HttpConfig` is the one used, on both frameworks: its
/// trusted proxy's `X-Forwarded-For` is believed, so a key allowed only for
/// the forwarded client's network is accepted; with the default
/// configuration the proxy's own address is the client, and it is refused.
#[actix_web::test]
async fn the_state_carries_the_http_config() {
    use std::net::SocketAddr;

    use axum::extract::ConnectInfo;
    use keyward::http::HttpConfig;

    let f = fixture().await;
    let k =
        f.kw.issue_key(
            Actor::System,
            &f.account.id,
            NewKey::new("behind a proxy")
                .permissions(perms(&["readApplications"]))
                .allowed_cidrs(vec!["203.0.113.0/24".parse().expect("cidr")]),
        )
        .await
        .expect("key");
    let (id, secret) = (k.key.id.to_string(), k.secret.expose().to_owned());
    let proxy: SocketAddr = "127.0.0.1:4000".parse().expect("addr");
    let state = |trusting: bool| {
        let config = if trusting {
            HttpConfig::new().trusted_proxies(vec!["127.0.0.1/32".parse().expect("cidr")])
        } else {
            HttpConfig::new()
        };
        KeywardHttp::with_config(f.kw.clone(), config)
    };
    for trusting in [true, false] {
        let app: axum::Router = axum::Router::new()
            .route("/apps", get(axum_handler))
            .with_state(state(trusting));
        let mut req = axum::http::Request::get("/apps")
            .header("x-api-key", &id)
            .header("x-api-secret", &secret)
            .header("x-forwarded-for", "203.0.113.9")
            .body(axum::body::Body::empty())
            .expect("request");
        req.extensions_mut().insert(ConnectInfo(proxy));
        let axum_status = app.oneshot(req).await.expect("response").status().as_u16();

        let app = actix_web::test::init_service(
            actix_web::App::new()
                .app_data(actix_web::web::Data::new(state(trusting)))
                .route("/apps", actix_web::web::get().to(actix_handler)),
        )
        .await;
        let req = actix_web::test::TestRequest::get()
            .uri("/apps")
            .peer_addr(proxy)
            .insert_header(("x-api-key", id.as_str()))
            .insert_header(("x-api-secret", secret.as_str()))
            .insert_header(("x-forwarded-for", "203.0.113.9"))
            .to_request();
        let actix_status = actix_web::test::call_service(&app, req)
            .await
            .status()
            .as_u16();
        let want = if trusting { 200 } else { 401 };
        assert_eq!(axum_status, want, "axum, trusting the proxy: {trusting}");
        assert_eq!(actix_status, want, "actix, trusting the proxy: {trusting}");
    }
}

/// actix-web without the state: a 500 that names the fix, not a default.
#[actix_web::test]
async fn actix_without_the_state_names_the_fix() {
    let app = actix_web::test::init_service(
        actix_web::App::new().route("/apps", actix_web::web::get().to(actix_handler)),
    )
    .await;
    let req = actix_web::test::TestRequest::get()
        .uri("/apps")
        .insert_header(("x-api-key", "kw_ak_x"))
        .insert_header(("x-api-secret", "kw_sk_x"))
        .to_request();
    let res = actix_web::test::call_service(&app, req).await;
    assert_eq!(res.status().as_u16(), 500);
    let body = String::from_utf8(actix_web::test::read_body(res).await.to_vec()).expect("utf-8");
    assert!(
        body.contains("web::Data::new(keyward::http::KeywardHttp"),
        "{body}"
    );
}

/// A key with `allowed_origins`, on both frameworks: 200 from a listed
/// origin (exact or a subdomain pattern, by `Origin` or without it by
/// `Referer`), and from anywhere else the same byte-identical 401 as a
/// wrong secret, `Origin` winning over `Referer`.
#[actix_web::test]
async fn allowed_origins_admit_their_origins_only() {
    let f = fixture().await;
    let browser =
        f.kw.issue_key(
            Actor::System,
            &f.account.id,
            NewKey::new("browser")
                .permissions(perms(&["readApplications"]))
                .allowed_origins(vec![
                    "https://App.example.com".into(),
                    "https://*.example.org".into(),
                ]),
        )
        .await
        .expect("browser key");
    assert_eq!(
        browser.key.allowed_origins,
        ["https://app.example.com", "https://*.example.org"],
        "normalized as stored"
    );
    let (id, secret) = (
        browser.key.id.to_string(),
        browser.secret.expose().to_owned(),
    );
    let creds = [
        ("x-api-key", id.as_str()),
        ("x-api-secret", secret.as_str()),
    ];
    let with = |extra: &[(&'static str, &'static str)]| {
        let mut h: Vec<(&str, &str)> = creds.to_vec();
        h.extend_from_slice(extra);
        h
    };
    let wrong_secret = via_axum(
        &f.kw,
        &[("x-api-key", &id), ("x-api-secret", "kw_sk_wrong")],
    )
    .await;
    assert_eq!(wrong_secret.0, 401);
    let cases: Vec<Case<'_>> = vec![
        (
            "its exact origin",
            with(&[("origin", "https://app.example.com")]),
            200,
        ),
        (
            "a subdomain of its pattern",
            with(&[("origin", "https://eu.shop.example.org")]),
            200,
        ),
        (
            "by referer",
            with(&[("referer", "https://app.example.com/settings?tab=1")]),
            200,
        ),
        (
            "another origin",
            with(&[("origin", "https://evil.example.net")]),
            401,
        ),
        (
            "the pattern's own host",
            with(&[("origin", "https://example.org")]),
            401,
        ),
        (
            "another port",
            with(&[("origin", "https://app.example.com:8443")]),
            401,
        ),
        (
            "plain http",
            with(&[("origin", "http://app.example.com")]),
            401,
        ),
        ("no origin nor referer", with(&[]), 401),
        ("opaque origin", with(&[("origin", "null")]), 401),
        (
            "origin wins over referer",
            with(&[
                ("origin", "https://evil.example.net"),
                ("referer", "https://app.example.com/"),
            ]),
            401,
        ),
    ];
    for (name, headers, status) in cases {
        let a = via_axum(&f.kw, &headers).await;
        let b = via_actix(&f.kw, &headers).await;
        assert_eq!(a.0, status, "{name} on axum: {a:?}");
        assert_eq!(a, b, "{name}: axum and actix differ");
        if status == 401 {
            assert_eq!(a, wrong_secret, "{name}: not the byte-identical 401");
        }
    }
}

/// Origin and category from the route, on both frameworks: calls through
/// a route declared `mcp`/`realtime` (a permission layer) count there, calls
/// through a usage-only layer `mcp`/`tools` there, an undeclared route
/// under `api`/`default`; `origin=` selects each, no origin gives all.
#[actix_web::test]
async fn routes_declare_call_origin_and_category() {
    use keyward::http::actix::{RequirePermission as ActixRequire, usage as actix_usage};
    use keyward::http::axum::{require, usage};
    use keyward::{Label, Principal, UsageFilter};

    async fn whoami(p: Principal) -> String {
        p.key_id().to_string()
    }
    let f = fixture().await;
    let k =
        f.kw.issue_key(
            Actor::System,
            &f.account.id,
            NewKey::new("agent").permissions(perms(&["readApplications"])),
        )
        .await
        .expect("key");
    let (id, secret) = (k.key.id.to_string(), k.secret.expose().to_owned());
    let http = KeywardHttp::new(f.kw.clone());
    let axum_app: axum::Router = axum::Router::new()
        .route(
            "/mcp",
            axum::routing::post(whoami)
                .route_layer(require(&http, "readApplications").usage(Label::MCP, "realtime")),
        )
        .route(
            "/tools",
            get(whoami).route_layer(usage(&http, Label::MCP, "tools")),
        )
        .route("/apps", get(axum_handler))
        .with_state(http.clone());
    let actix_app = actix_web::test::init_service(
        actix_web::App::new()
            .app_data(actix_web::web::Data::new(http.clone()))
            .service(
                actix_web::web::resource("/mcp")
                    .wrap(ActixRequire::new("readApplications").usage(Label::MCP, "realtime"))
                    .route(actix_web::web::post().to(whoami)),
            )
            .service(
                actix_web::web::resource("/tools")
                    .wrap(actix_usage(Label::MCP, "tools"))
                    .route(actix_web::web::get().to(whoami)),
            )
            .route("/apps", actix_web::web::get().to(actix_handler)),
    )
    .await;
    // (method, path, calls per framework)
    let calls = [
        ("POST", "/mcp", 3),
        ("GET", "/tools", 2),
        ("GET", "/apps", 1),
    ];
    for (method, path, n) in calls {
        for _ in 0..n {
            let req = axum::http::Request::builder()
                .method(method)
                .uri(path)
                .header("x-api-key", &id)
                .header("x-api-secret", &secret)
                .body(axum::body::Body::empty())
                .expect("request");
            let res = axum_app.clone().oneshot(req).await.expect("response");
            assert_eq!(res.status(), 200, "axum {method} {path}");
            let req = actix_web::test::TestRequest::default()
                .method(method.parse().expect("method"))
                .uri(path)
                .insert_header(("x-api-key", id.as_str()))
                .insert_header(("x-api-secret", secret.as_str()))
                .to_request();
            let res = actix_web::test::call_service(&actix_app, req).await;
            assert_eq!(res.status(), 200, "actix {method} {path}");
        }
    }
    // Without credentials the usage-only layer lets the handler answer.
    let res = axum_app
        .clone()
        .oneshot(
            axum::http::Request::get("/tools")
                .body(axum::body::Body::empty())
                .expect("request"),
        )
        .await
        .expect("response");
    assert_eq!(res.status(), 401);
    f.kw.flush().await.expect("flush");
    let now = f.kw.now();
    let rows = |origin: Option<Label>| {
        let mut filter = UsageFilter::between(
            now - time::Duration::days(1),
            now + time::Duration::hours(1),
        )
        .key(k.key.id);
        filter.origin = origin;
        let kw = f.kw.clone();
        let account = f.account.id;
        async move {
            let mut by: Vec<(String, String, u64)> = kw
                .usage(Actor::System, &account, filter)
                .await
                .expect("usage")
                .into_iter()
                .map(|r| (r.origin, r.category, r.successes))
                .collect();
            by.sort();
            by
        }
    };
    let triple = |o: &str, c: &str, n: u64| (o.to_owned(), c.to_owned(), n);
    assert_eq!(
        rows(Some(Label::MCP)).await,
        [triple("mcp", "realtime", 6), triple("mcp", "tools", 4)]
    );
    assert_eq!(rows(Some(Label::API)).await, [triple("api", "default", 2)]);
    assert_eq!(
        rows(None).await,
        [
            triple("api", "default", 2),
            triple("mcp", "realtime", 6),
            triple("mcp", "tools", 4)
        ]
    );
}
