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
