//! `Authorized<P>` with marker types from `keyward::permission!`, on axum
//! and on actix-web: the same statuses, headers and bodies on both (401
//! without credentials or with a wrong secret, 403 without the permission,
//! 200 with it).
#![cfg(all(feature = "axum", feature = "actix"))]

mod common;

use axum::routing::get;
use common::{fixture, perms};
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
        .with_state(kw.clone());
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
            .app_data(actix_web::web::Data::new(kw.clone()))
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

/// The configuration `HttpConfig`'s docs show for axum,
/// `Extension<HttpConfig>`, is the one used: its trusted proxy's
/// `X-Forwarded-For` is believed, so a key allowed only for the forwarded
/// client's network is accepted (and refused without the layer, as the
/// proxy's own address is not allowed).
#[tokio::test]
async fn axum_reads_an_extension_http_config() {
    use std::net::SocketAddr;

    use axum::Extension;
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
    let call = |with_config: bool| {
        let mut app: axum::Router = axum::Router::new()
            .route("/apps", get(axum_handler))
            .with_state(f.kw.clone());
        if with_config {
            app = app.layer(Extension(
                HttpConfig::new().trusted_proxies(vec!["127.0.0.1/32".parse().expect("cidr")]),
            ));
        }
        let mut req = axum::http::Request::get("/apps")
            .header("x-api-key", &id)
            .header("x-api-secret", &secret)
            .header("x-forwarded-for", "203.0.113.9")
            .body(axum::body::Body::empty())
            .expect("request");
        let proxy: SocketAddr = "127.0.0.1:4000".parse().expect("addr");
        req.extensions_mut().insert(ConnectInfo(proxy));
        async move { app.oneshot(req).await.expect("response").status().as_u16() }
    };
    assert_eq!(call(true).await, 200);
    assert_eq!(call(false).await, 401);
}
