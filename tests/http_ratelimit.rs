//! A rate-limited or spent key over HTTP: 429 with `Retry-After`,
//! `RateLimit-Policy` and `RateLimit` (`rate_limited`), or 429
//! `usage_exceeded`, byte-identical on axum and actix; a wrong secret stays
//! a 401 whatever the limits.

mod common;

use actix_web::{App, web};
use axum::Router;
use keyward::{Actor, Credits, Keyward, Label, LimitOwner, Limits, NewKey, Principal, RateLimit};
use tower::ServiceExt;

type Resp = (u16, Vec<(String, String)>, Vec<u8>);

const KEPT: [&str; 4] = [
    "content-type",
    "retry-after",
    "ratelimit-policy",
    "ratelimit",
];

fn kept<'a>(h: impl Iterator<Item = (&'a str, &'a [u8])>) -> Vec<(String, String)> {
    let mut v: Vec<_> = h
        .filter(|(k, _)| KEPT.contains(k))
        .map(|(k, v)| (k.to_owned(), String::from_utf8_lossy(v).into_owned()))
        .collect();
    v.sort();
    v
}

async fn who(p: Principal) -> String {
    p.key_id().to_string()
}

async fn axum_call(app: &Router, id: &str, secret: &str) -> Resp {
    let req = axum::http::Request::builder()
        .uri("/who")
        .header("x-api-key", id)
        .header("x-api-secret", secret)
        .body(axum::body::Body::empty())
        .expect("request");
    let res = app.clone().oneshot(req).await.expect("response");
    let status = res.status().as_u16();
    let headers = kept(
        res.headers()
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_bytes())),
    );
    let body = axum::body::to_bytes(res.into_body(), usize::MAX)
        .await
        .expect("body")
        .to_vec();
    (status, headers, body)
}

/// Two services over one store and clock, one per framework, each with a
/// key limited to 2 calls per minute and one with 1 credit.
async fn setup() -> (Keyward, Keyward, Vec<(String, String)>) {
    let f = common::fixture().await;
    let other = common::service(&f.store, &f.clock);
    let mut creds = Vec::new();
    for (i, limits) in [
        Limits::new().ratelimit(RateLimit::new(Label::from_static("requests"), 2, 60_000)),
        Limits::new().credits(Credits::new(1)),
    ]
    .into_iter()
    .enumerate()
    {
        for _ in 0..2 {
            let k =
                f.kw.issue_key(Actor::System, &f.account.id, NewKey::new(format!("k{i}")))
                    .await
                    .expect("key");
            f.kw.set_limits(Actor::System, &LimitOwner::Key(k.key.id), limits.clone())
                .await
                .expect("limits");
            creds.push((k.key.id.to_string(), k.secret.expose().to_owned()));
        }
    }
    (f.kw, other, creds)
}

#[tokio::test]
async fn limited_and_spent_keys_get_the_same_429_on_axum_and_actix() {
    let (kw_axum, kw_actix, creds) = setup().await;
    let axum_app = Router::new()
        .route("/who", axum::routing::get(who))
        .with_state(keyward::http::KeywardHttp::new(kw_axum.clone()));
    let actix = actix_web::test::init_service(
        App::new()
            .app_data(web::Data::new(keyward::http::KeywardHttp::new(
                kw_actix.clone(),
            )))
            .route("/who", web::get().to(who)),
    )
    .await;
    let actix_call = |id: String, secret: String| {
        let actix = &actix;
        async move {
            let req = actix_web::test::TestRequest::get()
                .uri("/who")
                .insert_header(("x-api-key", id))
                .insert_header(("x-api-secret", secret))
                .to_request();
            let res = actix_web::test::call_service(actix, req).await;
            let status = res.status().as_u16();
            let headers = kept(
                res.headers()
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_bytes())),
            );
            let body = actix_web::test::read_body(res).await.to_vec();
            (status, headers, body)
        }
    };
    // Each framework has its own key of each kind (same limits).
    let (ax_limited, ac_limited, ax_spent, ac_spent) = (&creds[0], &creds[1], &creds[2], &creds[3]);
    let mut axum_answers = Vec::new();
    let mut actix_answers = Vec::new();
    for _ in 0..3 {
        axum_answers.push(axum_call(&axum_app, &ax_limited.0, &ax_limited.1).await);
        actix_answers.push(actix_call(ac_limited.0.clone(), ac_limited.1.clone()).await);
    }
    for _ in 0..2 {
        axum_answers.push(axum_call(&axum_app, &ax_spent.0, &ax_spent.1).await);
        actix_answers.push(actix_call(ac_spent.0.clone(), ac_spent.1.clone()).await);
    }
    let statuses: Vec<u16> = axum_answers.iter().map(|r| r.0).collect();
    assert_eq!(statuses, [200, 200, 429, 200, 429]);
    let limited = &axum_answers[2];
    let json: serde_json::Value = serde_json::from_slice(&limited.2).expect("json");
    assert_eq!(json["error"], "rate_limited");
    let header = |r: &Resp, k: &str| r.1.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    assert_eq!(header(limited, "retry-after").as_deref(), Some("30"));
    assert_eq!(
        header(limited, "ratelimit-policy").as_deref(),
        Some("\"requests\";q=2;w=60")
    );
    assert_eq!(
        header(limited, "ratelimit").as_deref(),
        Some("\"requests\";r=0;t=30")
    );
    let spent = &axum_answers[4];
    let json: serde_json::Value = serde_json::from_slice(&spent.2).expect("json");
    assert_eq!(json["error"], "usage_exceeded");
    // Refusals are byte-identical; successes differ only by key id.
    for i in [2, 4] {
        assert_eq!(axum_answers[i], actix_answers[i], "answer {i}");
    }
    for i in [0, 1, 3] {
        assert_eq!(actix_answers[i].0, 200);
    }
    // A wrong secret for the spent key is the plain 401.
    let wrong = axum_call(&axum_app, &ax_spent.0, "kw_sk_wrong").await;
    assert_eq!(wrong.0, 401);
}

/// One management request's answer: status and JSON body.
type Answer = (u16, serde_json::Value);

async fn axum_manage(
    app: &Router,
    method: &str,
    path: &str,
    admin: &(String, String),
    body: &str,
) -> Answer {
    let req = axum::http::Request::builder()
        .method(method)
        .uri(path)
        .header("x-api-key", &admin.0)
        .header("x-api-secret", &admin.1)
        .header("content-type", "application/json")
        .body(axum::body::Body::from(body.to_owned()))
        .expect("request");
    let res = app.clone().oneshot(req).await.expect("response");
    let status = res.status().as_u16();
    let body = axum::body::to_bytes(res.into_body(), usize::MAX)
        .await
        .expect("body");
    (status, serde_json::from_slice(&body).unwrap_or_default())
}

/// What both adapters must agree on: the status, the error body, the
/// limits as answered (ids and times differ between the two services).
fn contract(a: &Answer) -> (u16, serde_json::Value) {
    let b = &a.1;
    if b.get("error").is_some() {
        return (a.0, b.clone());
    }
    (
        a.0,
        serde_json::json!({ "ratelimits": b["ratelimits"], "credits": b["credits"], "name": b["name"], "title": b["title"] }),
    )
}

#[tokio::test]
async fn limits_are_set_on_create_and_patch_validated_and_identical_on_both_frameworks() {
    let fx_axum = common::fixture().await;
    let fx_actix = common::fixture().await;
    let cred = |f: &common::Fixture| {
        (
            f.admin.key.id.to_string(),
            f.admin.secret.expose().to_owned(),
        )
    };
    let (ax_admin, ac_admin) = (cred(&fx_axum), cred(&fx_actix));
    let axum_app: Router = keyward::http::axum::router()
        .with_state(keyward::http::KeywardHttp::new(fx_axum.kw.clone()));
    let actix = actix_web::test::init_service(
        App::new()
            .app_data(web::Data::new(keyward::http::KeywardHttp::new(
                fx_actix.kw.clone(),
            )))
            .service(keyward::http::actix::scope("")),
    )
    .await;
    let actix_manage = |method: &'static str, path: String, body: &'static str| {
        let actix = &actix;
        let admin = ac_admin.clone();
        async move {
            let req = actix_web::test::TestRequest::default()
                .method(actix_web::http::Method::from_bytes(method.as_bytes()).expect("method"))
                .uri(&path)
                .insert_header(("x-api-key", admin.0))
                .insert_header(("x-api-secret", admin.1))
                .insert_header(("content-type", "application/json"))
                .set_payload(body)
                .to_request();
            let res = actix_web::test::call_service(actix, req).await;
            let status = res.status().as_u16();
            let body = actix_web::test::read_body(res).await;
            (
                status,
                serde_json::from_slice::<serde_json::Value>(&body).unwrap_or_default(),
            )
        }
    };
    let create = r#"{"name":"metered","permissions":[],"ratelimits":[{"name":"requests","limit":2,"duration_ms":60000}],"credits":{"remaining":100,"refill":{"interval":"daily","amount":100}}}"#;
    let ax = axum_manage(&axum_app, "POST", "/apikeys", &ax_admin, create).await;
    let ac = actix_manage("POST", "/apikeys".into(), create).await;
    assert_eq!(ax.0, 201, "{:?}", ax.1);
    assert_eq!(contract(&ax), contract(&ac));
    assert_eq!(
        ax.1["ratelimits"],
        serde_json::json!([{"name":"requests","limit":2,"duration_ms":60000,"burst":2,"auto_apply":true}])
    );
    assert_eq!(ax.1["credits"]["remaining"], 100);
    let (ax_id, ac_id) = (
        ax.1["id"].as_str().expect("id").to_owned(),
        ac.1["id"].as_str().expect("id").to_owned(),
    );
    let ax_secret = ax.1["secret"].as_str().expect("secret").to_owned();

    // The new key is limited at once: 2 calls, then 429.
    for expected in [200, 200, 429] {
        let status = axum_call(&axum_app_with_who(&fx_axum.kw), &ax_id, &ax_secret)
            .await
            .0;
        assert_eq!(status, expected);
    }

    // PATCH naming only the rate limits keeps the credits; bad values
    // are 422 naming the field on both, and change nothing.
    let cases: [(&str, &str, u16); 4] = [
        (
            "ratelimits only",
            r#"{"ratelimits":[{"name":"requests","limit":5,"duration_ms":1000,"burst":1}]}"#,
            200,
        ),
        (
            "zero limit",
            r#"{"ratelimits":[{"name":"a","limit":0,"duration_ms":1000}]}"#,
            422,
        ),
        (
            "duplicate names",
            r#"{"ratelimits":[{"name":"a","limit":1,"duration_ms":1},{"name":"a","limit":1,"duration_ms":1}]}"#,
            422,
        ),
        ("credits null", r#"{"credits":null}"#, 200),
    ];
    for (name, body, status) in cases {
        let ax = axum_manage(
            &axum_app,
            "PATCH",
            &format!("/apikeys/{ax_id}"),
            &ax_admin,
            body,
        )
        .await;
        let ac = actix_manage("PATCH", format!("/apikeys/{ac_id}"), body).await;
        assert_eq!(ax.0, status, "{name}: {:?}", ax.1);
        assert_eq!(contract(&ax), contract(&ac), "{name}");
        if name == "ratelimits only" {
            assert_eq!(ax.1["credits"]["remaining"], 100, "{name}");
            assert_eq!(ax.1["ratelimits"][0]["limit"], 5, "{name}");
        }
        if name == "zero limit" {
            assert_eq!(ax.1["field"], "ratelimits[0].limit");
        }
        if name == "duplicate names" {
            assert_eq!(ax.1["field"], "ratelimits[1].name");
        }
        if name == "credits null" {
            assert_eq!(ax.1["credits"], serde_json::Value::Null);
            assert_eq!(
                ax.1["ratelimits"][0]["limit"], 5,
                "unchanged by the failed PATCHes"
            );
        }
    }

    // Applications and child accounts take the same fields.
    let app =
        r#"{"title":"pooled","ratelimits":[{"name":"requests","limit":10,"duration_ms":1000}]}"#;
    let ax = axum_manage(&axum_app, "POST", "/apps", &ax_admin, app).await;
    let ac = actix_manage("POST", "/apps".into(), app).await;
    assert_eq!(ax.0, 201, "{:?}", ax.1);
    assert_eq!(contract(&ax), contract(&ac));
    assert_eq!(ax.1["ratelimits"][0]["limit"], 10);
}

fn axum_app_with_who(kw: &Keyward) -> Router {
    Router::new()
        .route("/who", axum::routing::get(who))
        .with_state(keyward::http::KeywardHttp::new(kw.clone()))
}
