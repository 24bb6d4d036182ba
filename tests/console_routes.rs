//! The console's routes on both frameworks: every embedded file served
//! with its content type, the strict Content-Security-Policy and the other
//! security headers, ETag revalidation, the redirect to the page, 404 and
//! 405, a custom mount point, and the management API still answering
//! beside it; axum and actix-web byte for byte alike.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use actix_web::dev::{Service, ServiceResponse};
use axum::Router;
use keyward::http::{CONTENT_SECURITY_POLICY, ConsoleConfig, KeywardHttp};
use keyward::{Keyward, MemoryStore};
use tower::ServiceExt;

#[derive(Debug, Clone, PartialEq, Eq)]
struct Resp {
    status: u16,
    /// Sorted, without `date` and `content-length` (set by the servers'
    /// writers, not by the adapters).
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

fn sorted<'a>(it: impl Iterator<Item = (&'a str, &'a [u8])>) -> Vec<(String, String)> {
    let mut h: Vec<(String, String)> = it
        .filter(|(k, _)| *k != "date" && *k != "content-length")
        .map(|(k, v)| (k.to_owned(), String::from_utf8_lossy(v).into_owned()))
        .collect();
    h.sort();
    h
}

async fn axum_send(app: &Router, method: &str, path: &str, headers: &[(&str, &str)]) -> Resp {
    let mut b = axum::http::Request::builder().method(method).uri(path);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let res = app
        .clone()
        .oneshot(b.body(axum::body::Body::empty()).unwrap())
        .await
        .unwrap();
    let status = res.status().as_u16();
    let headers = sorted(
        res.headers()
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_bytes())),
    );
    let body = axum::body::to_bytes(res.into_body(), usize::MAX)
        .await
        .unwrap()
        .to_vec();
    Resp {
        status,
        headers,
        body,
    }
}

async fn actix_send<S, B>(svc: &S, method: &str, path: &str, headers: &[(&str, &str)]) -> Resp
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: actix_web::body::MessageBody,
{
    let mut t = actix_web::test::TestRequest::default()
        .method(actix_web::http::Method::from_bytes(method.as_bytes()).unwrap())
        .uri(path);
    for (k, v) in headers {
        t = t.append_header((*k, *v));
    }
    let res = actix_web::test::call_service(svc, t.to_request()).await;
    let status = res.status().as_u16();
    let headers = sorted(
        res.headers()
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_bytes())),
    );
    let body = actix_web::test::read_body(res).await.to_vec();
    Resp {
        status,
        headers,
        body,
    }
}

fn keyward() -> Keyward {
    Keyward::builder()
        .store(MemoryStore::new())
        .flush_interval(None)
        .build()
        .unwrap()
}

const FILES: &[(&str, &str)] = &[
    ("/console/", "text/html; charset=utf-8"),
    ("/console/index.html", "text/html; charset=utf-8"),
    ("/console/app.css", "text/css; charset=utf-8"),
    ("/console/js/main.js", "text/javascript; charset=utf-8"),
    ("/console/js/api.js", "text/javascript; charset=utf-8"),
    (
        "/console/vendor/uPlot.iife.min.js",
        "text/javascript; charset=utf-8",
    ),
    ("/console/vendor/uPlot.min.css", "text/css; charset=utf-8"),
    ("/console/favicon.svg", "image/svg+xml"),
    ("/console/config.json", "application/json"),
];

fn assert_secure(r: &Resp, what: &str) {
    assert_eq!(
        r.header("content-security-policy"),
        Some(CONTENT_SECURITY_POLICY),
        "{what}"
    );
    let csp = CONTENT_SECURITY_POLICY;
    assert!(csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"));
    assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"));
    assert_eq!(
        r.header("x-content-type-options"),
        Some("nosniff"),
        "{what}"
    );
    assert_eq!(r.header("referrer-policy"), Some("no-referrer"), "{what}");
}

#[actix_web::test]
async fn console_routes_are_identical_on_axum_and_actix() {
    let kw = keyward();
    let axum_app: Router = Router::new()
        .merge(keyward::http::axum::router())
        .merge(keyward::http::axum::console(ConsoleConfig::default()))
        .merge(keyward::http::axum::console(
            ConsoleConfig::new().mount("/admin/ui").api_base("/api"),
        ))
        .with_state(KeywardHttp::new(kw.clone()));
    let actix_app = actix_web::test::init_service(
        actix_web::App::new()
            .app_data(actix_web::web::Data::new(KeywardHttp::new(kw.clone())))
            .service(keyward::http::actix::console(ConsoleConfig::default()))
            .service(keyward::http::actix::console(
                ConsoleConfig::new().mount("/admin/ui").api_base("/api"),
            ))
            .service(keyward::http::actix::scope("")),
    )
    .await;

    let mut compared = 0;
    let mut both = async |method: &str, path: &str, headers: &[(&str, &str)]| {
        let a = axum_send(&axum_app, method, path, headers).await;
        let b = actix_send(&actix_app, method, path, headers).await;
        if method == "HEAD" {
            // Body stripping of HEAD is the HTTP writers' job.
            assert_eq!(
                (a.status, &a.headers),
                (b.status, &b.headers),
                "{method} {path}"
            );
        } else {
            assert_eq!(a, b, "{method} {path}: axum and actix differ");
        }
        compared += 1;
        a
    };

    // Every file: 200, its type, the policy, an ETag; revalidation is 304.
    for (path, content_type) in FILES {
        let r = both("GET", path, &[]).await;
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.header("content-type"), Some(*content_type), "{path}");
        assert_eq!(r.header("cache-control"), Some("no-cache"), "{path}");
        assert!(!r.body.is_empty(), "{path}");
        assert_secure(&r, path);
        let etag = r.header("etag").unwrap().to_owned();
        assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");
        let again = both("GET", path, &[("if-none-match", &etag)]).await;
        assert_eq!(again.status, 304, "{path}");
        assert!(again.body.is_empty());
        assert_eq!(again.header("etag"), Some(etag.as_str()));
        assert_secure(&again, path);
        let stale = both("GET", path, &[("if-none-match", "\"stale\"")]).await;
        assert_eq!(stale.status, 200, "{path}");
        let head = both("HEAD", path, &[]).await;
        assert_eq!(head.status, 200, "{path}");
    }

    // With `Accept-Encoding: gzip`, the larger files come gzip-encoded,
    // with their own ETag and `Vary`; decoded, they are the same bytes.
    let mut encoded = 0;
    for (path, _) in FILES {
        let plain = both("GET", path, &[]).await;
        let r = both("GET", path, &[("accept-encoding", "br, gzip;q=0.8")]).await;
        assert_eq!(r.status, 200, "{path}");
        assert_secure(&r, path);
        if r.header("content-encoding") == Some("gzip") {
            encoded += 1;
            assert_eq!(r.header("vary"), Some("accept-encoding"), "{path}");
            assert_eq!(plain.header("vary"), Some("accept-encoding"), "{path}");
            assert_ne!(r.header("etag"), plain.header("etag"), "{path}");
            assert!(r.body.len() < plain.body.len());
            let mut decoded = Vec::new();
            std::io::Read::read_to_end(
                &mut flate2::read::GzDecoder::new(&r.body[..]),
                &mut decoded,
            )
            .unwrap();
            assert_eq!(decoded, plain.body, "{path}");
            let etag = r.header("etag").unwrap().to_owned();
            let again = both(
                "GET",
                path,
                &[("accept-encoding", "gzip"), ("if-none-match", &etag)],
            )
            .await;
            assert_eq!(again.status, 304, "{path}");
            // The identity representation does not match the gzip ETag.
            assert_eq!(
                both("GET", path, &[("if-none-match", &etag)]).await.status,
                200
            );
        } else {
            assert_eq!(r.body, plain.body, "{path}");
        }
        let refused = both("GET", path, &[("accept-encoding", "gzip;q=0")]).await;
        assert_eq!(refused.header("content-encoding"), None, "{path}");
        assert_eq!(refused.body, plain.body, "{path}");
    }
    assert!(encoded >= 5, "{encoded} files gzip-encoded");

    // The page references only its own files, no inline script or style.
    let page = both("GET", "/console/", &[]).await;
    let html = String::from_utf8(page.body.clone()).unwrap();
    assert!(html.contains(r#"<script type="module" src="js/main.js"></script>"#));
    assert!(!html.contains("style=") && !html.contains("<style"));
    assert!(!html.contains("http://") && !html.contains("https://"));

    // The mount point redirects to the page, relatively (right under any
    // outer prefix too).
    let r = both("GET", "/console", &[]).await;
    assert_eq!(r.status, 308);
    assert_eq!(r.header("location"), Some("console/"));
    assert_secure(&r, "redirect");

    // Unknown files, traversal, other methods.
    for path in [
        "/console/nope.js",
        "/console/js/../index.html.bak",
        "/console/%2e%2e/Cargo.toml",
    ] {
        let r = both("GET", path, &[]).await;
        assert_eq!(r.status, 404, "{path}");
        assert_secure(&r, path);
    }
    let r = both("POST", "/console/", &[]).await;
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET, HEAD"));

    // config.json tells the page where the management API is.
    let c = both("GET", "/console/config.json", &[]).await;
    assert_eq!(c.body, br#"{"api_base":"","host_sign_out":null}"#);
    let c = both("GET", "/admin/ui/config.json", &[]).await;
    assert_eq!(c.body, br#"{"api_base":"/api","host_sign_out":null}"#);
    let r = both("GET", "/admin/ui", &[]).await;
    assert_eq!(r.header("location"), Some("ui/"));
    assert_eq!(both("GET", "/admin/ui/", &[]).await.body, page.body);

    // The management API beside it is untouched (actix: the console is
    // registered before the root scope).
    let api = both("GET", "/openapi.json", &[]).await;
    assert_eq!(api.status, 200);
    assert_eq!(api.header("content-security-policy"), None);
    let r = both("GET", "/apikeys", &[]).await;
    assert_eq!(r.status, 401);

    assert!(compared > 40);
}

#[test]
#[should_panic(expected = "mount point")]
fn a_bad_mount_point_is_refused_when_the_routes_are_built() {
    let _: Router = keyward::http::axum::console(ConsoleConfig::new().mount("/console/"));
}

#[test]
#[should_panic(expected = "api_base")]
fn a_cross_origin_api_base_is_refused() {
    let _ =
        keyward::http::actix::console(ConsoleConfig::new().api_base("https://elsewhere.example"));
}

#[test]
fn the_first_load_is_under_300_kb_uncompressed() {
    let n = keyward::http::console_asset_bytes();
    assert!(n < 300_000, "{n} bytes");
}

/// Every file under `console/` is embedded and served byte for byte (a
/// module added to the page but not to the asset table would break it).
#[tokio::test]
async fn every_file_of_the_console_directory_is_served() {
    let app: Router = keyward::http::axum::console(ConsoleConfig::default());
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("console");
    let mut stack = vec![root.clone()];
    let mut files = 0;
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let rel = path
                .strip_prefix(&root)
                .unwrap()
                .to_str()
                .unwrap()
                .replace('\\', "/");
            let r = axum_send(&app, "GET", &format!("/console/{rel}"), &[]).await;
            assert_eq!(r.status, 200, "{rel} is not in the asset table");
            assert_eq!(r.body, std::fs::read(&path).unwrap(), "{rel}");
            files += 1;
        }
    }
    assert!(files >= 15, "{files}");
}

/// Behind the host's login: `GET /auth/whoami` with a `HostUser` (and no
/// key) names the person, so the console shows "signed in as …" and no key
/// form; without one it is the byte-identical 401; `host_sign_out` reaches
/// the page through `config.json`. Both frameworks alike.
#[actix_web::test]
async fn whoami_names_the_hosts_person_on_axum_and_actix() {
    use keyward::http::HostUser;
    use keyward::{AccountId, PermissionSet, User};
    fn person(h: Option<&[u8]>) -> Option<HostUser> {
        (h? == b"sam").then(|| {
            let perms = PermissionSet::parse(["readApiKeys"]).unwrap();
            let acme = AccountId::new("acme").unwrap();
            HostUser::new(User::new("u-7", "Sam <Staff>", acme, perms).unwrap())
        })
    }
    async fn axum_host(
        mut req: axum::extract::Request,
        next: axum::middleware::Next,
    ) -> axum::response::Response {
        if let Some(u) = person(req.headers().get("x-test-user").map(|v| v.as_bytes())) {
            req.extensions_mut().insert(u);
        }
        next.run(req).await
    }
    let kw = keyward();
    let cfg = ConsoleConfig::new().host_sign_out("/host/logout");
    let axum_app: Router = Router::new()
        .merge(keyward::http::axum::router())
        .merge(keyward::http::axum::console(cfg.clone()))
        .layer(axum::middleware::from_fn(axum_host))
        .with_state(KeywardHttp::new(kw.clone()));
    let actix_app = actix_web::test::init_service(
        actix_web::App::new()
            .app_data(actix_web::web::Data::new(KeywardHttp::new(kw.clone())))
            .service(keyward::http::actix::console(cfg))
            .service(keyward::http::actix::scope(""))
            .wrap_fn(|req, srv| {
                use actix_web::HttpMessage as _;
                if let Some(u) = person(req.headers().get("x-test-user").map(|v| v.as_bytes())) {
                    req.extensions_mut().insert(u);
                }
                srv.call(req)
            }),
    )
    .await;
    let both = async |path: &str, headers: &[(&str, &str)]| {
        let a = axum_send(&axum_app, "GET", path, headers).await;
        let b = actix_send(&actix_app, "GET", path, headers).await;
        assert_eq!(a, b, "{path} {headers:?}");
        a
    };
    let me = both("/auth/whoami", &[("x-test-user", "sam")]).await;
    assert_eq!(me.status, 200);
    let v: serde_json::Value = serde_json::from_slice(&me.body).unwrap();
    assert_eq!(
        v,
        serde_json::json!({
            "account_id": "acme",
            "key_id": null,
            "session_id": null,
            "permissions": ["readApiKeys"],
            "person": { "id": "u-7", "name": "Sam <Staff>" },
        })
    );
    let nobody = both("/auth/whoami", &[]).await;
    assert_eq!(nobody.status, 401);
    // A host's person with keyward credentials too: who acts is ambiguous.
    let mixed = both(
        "/auth/whoami",
        &[("x-test-user", "sam"), ("authorization", "Bearer kw_ak_x")],
    )
    .await;
    assert_eq!(mixed.status, 400);
    let c = both("/console/config.json", &[]).await;
    assert_eq!(c.body, br#"{"api_base":"","host_sign_out":"/host/logout"}"#);
}

#[test]
#[should_panic(expected = "host_sign_out")]
fn a_cross_origin_host_sign_out_is_refused() {
    let _: Router = keyward::http::axum::console(
        ConsoleConfig::new().host_sign_out("https://elsewhere.example/logout"),
    );
}
