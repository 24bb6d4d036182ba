//! The generic tower layer (`keyward::http::tower::RequireLayer`) on a
//! plain `http::Request<String>` service: the principal reaches the inner
//! service, refusals never call it, and their bytes are keyward's.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use keyward::http::tower::RequireLayer;
use keyward::http::{HttpConfig, HttpError, KeywardHttp};
use keyward::store::KeyStore;
use keyward::{
    Actor, IssuedKey, Keyward, MemoryStore, NewAccount, NewKey, PermissionSet, Principal,
};
use tower::{BoxError, Layer, Service, ServiceExt, service_fn};

struct Setup {
    http: KeywardHttp,
    account: keyward::AccountId,
    /// Holds `readApiKeys`.
    reader: IssuedKey,
    /// Holds only `readAccounts`.
    other: IssuedKey,
}

/// The keys are issued by another instance on the same store, so that
/// the layer's instance meets each one cold: its first verification reads
/// the store and runs argon2.
async fn setup() -> Setup {
    let store: Arc<dyn KeyStore> = Arc::new(MemoryStore::new());
    let kw = Keyward::builder()
        .shared_store(Arc::clone(&store))
        .build()
        .unwrap();
    let served = Keyward::builder().shared_store(store).build().unwrap();
    let perms = PermissionSet::parse(["readApiKeys", "readAccounts"]).unwrap();
    let account = kw
        .create_account(Actor::System, NewAccount::new("tower", perms))
        .await
        .unwrap();
    let issue = |name: &'static str, p: &'static str| {
        let kw = kw.clone();
        let id = account.id;
        async move {
            kw.issue_key(
                Actor::System,
                &id,
                NewKey::new(name).permissions(PermissionSet::parse([p]).unwrap()),
            )
            .await
            .unwrap()
        }
    };
    let reader = issue("reader", "readApiKeys").await;
    let other = issue("other", "readAccounts").await;
    Setup {
        http: KeywardHttp::new(served),
        account: account.id,
        reader,
        other,
    }
}

/// The inner service: answers the account of the principal the layer put
/// in the extensions, and counts its calls.
#[derive(Clone)]
struct Echo {
    calls: Arc<AtomicUsize>,
}

fn inner(calls: Arc<AtomicUsize>) -> Echo {
    Echo { calls }
}

impl Service<http::Request<String>> for Echo {
    type Response = http::Response<String>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<http::Response<String>, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<String>) -> Self::Future {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let who = req
            .extensions()
            .get::<Principal>()
            .map(|p| p.account_id().to_string())
            .unwrap_or_else(|| "nobody".into());
        std::future::ready(Ok(http::Response::new(who)))
    }
}

fn key_request(k: &IssuedKey, secret: &str) -> http::Request<String> {
    http::Request::builder()
        .uri("/things")
        .header("x-api-key", k.key.id.as_str())
        .header("x-api-secret", secret)
        .body(String::new())
        .unwrap()
}

fn bare_request() -> http::Request<String> {
    http::Request::builder()
        .uri("/things")
        .body(String::new())
        .unwrap()
}

fn header<'a>(res: &'a http::Response<String>, name: &str) -> Option<&'a str> {
    res.headers().get(name).map(|v| v.to_str().unwrap())
}

/// Sends `req` through a fresh layered service, returning the response and
/// the `Debug` of the layer's future (`Inner`: decided from the caches).
async fn send<R>(
    layer: &RequireLayer<R>,
    calls: &Arc<AtomicUsize>,
    req: http::Request<String>,
) -> (http::Response<String>, String)
where
    R: keyward::http::tower::Refusal<String>,
{
    let mut svc = layer.layer(inner(Arc::clone(calls)));
    ServiceExt::<http::Request<String>>::ready(&mut svc)
        .await
        .unwrap();
    let fut = svc.call(req);
    let shape = format!("{fut:?}");
    (fut.await.unwrap(), shape)
}

#[tokio::test]
async fn fresh_key_goes_through_the_cold_path_then_is_decided_inline() {
    let s = setup().await;
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = RequireLayer::new(&s.http, "readApiKeys");
    let req = || key_request(&s.reader, s.reader.secret.expose());

    let (res, shape) = send(&layer, &calls, req()).await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.body(),
        &s.account.to_string(),
        "principal in the extensions"
    );
    assert_eq!(
        shape, "RequireFuture::Boxed",
        "a fresh key needs the store and argon2"
    );

    let (res, shape) = send(&layer, &calls, req()).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.body(), &s.account.to_string());
    assert_eq!(
        shape, "RequireFuture::Inner",
        "warm: the inner future, nothing boxed"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn single_string_bearer_key_is_accepted() {
    let s = setup().await;
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = RequireLayer::new(&s.http, "readApiKeys");
    let single = keyward::combine_key(
        s.http.keyward().prefix(),
        &s.reader.key.id,
        &s.reader.secret,
    )
    .unwrap();
    let req = http::Request::builder()
        .header("authorization", format!("Bearer {}", single.expose()))
        .body(String::new())
        .unwrap();
    let (res, _) = send(&layer, &calls, req).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.body(), &s.account.to_string());
}

#[tokio::test]
async fn refusals_are_keyward_json_and_never_reach_the_inner_service() {
    let s = setup().await;
    let cfg = HttpConfig::default();
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = RequireLayer::new(&s.http, "readApiKeys");

    // No credentials.
    let (res, _) = send(&layer, &calls, bare_request()).await;
    assert_eq!(res.status(), 401);
    assert_eq!(header(&res, "content-type"), Some("application/json"));
    assert_eq!(
        header(&res, "www-authenticate"),
        Some("Bearer realm=\"keyward\"")
    );
    let expected = HttpError::missing_credentials(&cfg).body();
    assert_eq!(res.body().as_bytes(), &expected[..]);

    // Wrong secret (the cold path decides), then an unknown key: the same
    // bytes.
    let wrong = s.other.secret.expose();
    let (res, _) = send(&layer, &calls, key_request(&s.reader, wrong)).await;
    assert_eq!(res.status(), 401);
    assert_eq!(
        header(&res, "www-authenticate"),
        Some("Bearer realm=\"keyward\", error=\"invalid_token\"")
    );
    let expected = HttpError::invalid_credentials(&cfg).body();
    assert_eq!(res.body().as_bytes(), &expected[..]);

    // Malformed: one of the two key headers.
    let req = http::Request::builder()
        .header("x-api-key", s.reader.key.id.as_str())
        .body(String::new())
        .unwrap();
    let (res, _) = send(&layer, &calls, req).await;
    assert_eq!(res.status(), 400);

    // A valid key without the permission: 403 naming it, cold and warm.
    for _ in 0..2 {
        let req = key_request(&s.other, s.other.secret.expose());
        let (res, _) = send(&layer, &calls, req).await;
        assert_eq!(res.status(), 403);
        assert_eq!(
            header(&res, "www-authenticate"),
            Some("Bearer realm=\"keyward\", error=\"insufficient_scope\", scope=\"readApiKeys\"")
        );
        let expected = HttpError::insufficient_scope(&cfg, "readApiKeys").body();
        assert_eq!(res.body().as_bytes(), &expected[..]);
        assert!(res.body().contains("readApiKeys"), "{}", res.body());
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        0,
        "no refusal calls the inner service"
    );
}

#[tokio::test]
async fn usage_only_passes_requests_without_credentials_on() {
    let s = setup().await;
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = RequireLayer::usage_only(&s.http, keyward::Label::MCP, "realtime");
    let (res, _) = send(&layer, &calls, bare_request()).await;
    assert_eq!(
        (res.status().as_u16(), res.body().as_str()),
        (200, "nobody")
    );
    // Any valid key, whatever its permissions, and bad ones refused.
    let (res, _) = send(
        &layer,
        &calls,
        key_request(&s.other, s.other.secret.expose()),
    )
    .await;
    assert_eq!(res.body(), &s.account.to_string());
    let (res, _) = send(
        &layer,
        &calls,
        key_request(&s.other, s.reader.secret.expose()),
    )
    .await;
    assert_eq!(res.status(), 401);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn grpc_refusals_are_trailers_only_statuses() {
    let s = setup().await;
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = RequireLayer::new(&s.http, "readApiKeys").grpc();
    let cases = [
        (bare_request(), "16"),
        (key_request(&s.reader, s.other.secret.expose()), "16"),
        (key_request(&s.other, s.other.secret.expose()), "7"),
    ];
    for (req, status) in cases {
        let (res, _) = send(&layer, &calls, req).await;
        assert_eq!(res.status(), 200, "gRPC errors travel in a 200");
        assert_eq!(header(&res, "content-type"), Some("application/grpc"));
        assert_eq!(header(&res, "grpc-status"), Some(status));
        assert!(res.body().is_empty(), "trailers-only: no message");
        let message = header(&res, "grpc-message").unwrap();
        assert!(!message.contains(s.other.secret.expose()));
    }
    let (res, _) = send(
        &layer,
        &calls,
        key_request(&s.other, s.other.secret.expose()),
    )
    .await;
    assert_eq!(
        header(&res, "grpc-message"),
        Some("missing permission readApiKeys")
    );
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn too_many_failures_are_resource_exhausted_over_grpc() {
    let s = setup().await;
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = RequireLayer::new(&s.http, "readApiKeys").grpc();
    let mut statuses = Vec::new();
    for _ in 0..12 {
        let req = key_request(&s.reader, s.other.secret.expose());
        let (res, _) = send(&layer, &calls, req).await;
        statuses.push(header(&res, "grpc-status").unwrap().to_owned());
    }
    assert_eq!(statuses[0], "16");
    assert!(
        statuses.iter().any(|s| s == "8"),
        "a wrong-secret flood ends in RESOURCE_EXHAUSTED: {statuses:?}"
    );
}

#[tokio::test]
async fn works_under_tower_service_builder_with_box_errors() {
    // Any inner error type: the layer passes it through.
    let s = setup().await;
    let svc = tower::ServiceBuilder::new()
        .layer(RequireLayer::new(&s.http, "readApiKeys"))
        .service(service_fn(|_req: http::Request<String>| async {
            Err::<http::Response<String>, BoxError>("inner failed".into())
        }));
    let err = svc
        .oneshot(key_request(&s.reader, s.reader.secret.expose()))
        .await
        .expect_err("the inner error");
    assert_eq!(err.to_string(), "inner failed");
}
