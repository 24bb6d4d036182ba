//! A rate-limited or spent key over HTTP: 429 with `Retry-After`,
//! `RateLimit-Policy` and `RateLimit` (`rate_limited`), or 429
//! `usage_exceeded`, byte-identical on axum and actix; a wrong secret stays
//! a 401 whatever the limits.

mod common;
#[path = "common/http.rs"]
mod http_client;

use actix_web::{App, web};
use axum::Router;
use http_client::{ActixClient, AxumClient, Client, Cred, Resp, req};
use keyward::{Actor, Credits, Keyward, Label, LimitOwner, Limits, NewKey, Principal, RateLimit};

const KEPT: &[&str] = &[
    "content-type",
    "retry-after",
    "ratelimit-policy",
    "ratelimit",
];

async fn who(p: Principal) -> String {
    p.key_id().to_string()
}

async fn call<C: Client>(c: &C, key: &Cred) -> Resp {
    c.send(req("GET", "/who").key(key)).await
}

/// Two services over one store and clock, one per framework, each with a
/// key limited to 2 calls per minute and one with 1 credit.
async fn setup() -> (Keyward, Keyward, Vec<Cred>) {
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
            creds.push(Cred {
                id: k.key.id.to_string(),
                secret: k.secret.expose().to_owned(),
            });
        }
    }
    (f.kw, other, creds)
}

#[tokio::test]
async fn limited_and_spent_keys_get_the_same_429_on_axum_and_actix() {
    let (kw_axum, kw_actix, creds) = setup().await;
    let axum = AxumClient(
        Router::new()
            .route("/who", axum::routing::get(who))
            .with_state(keyward::http::KeywardHttp::new(kw_axum.clone())),
    );
    let actix = ActixClient(
        actix_web::test::init_service(
            App::new()
                .app_data(web::Data::new(keyward::http::KeywardHttp::new(
                    kw_actix.clone(),
                )))
                .route("/who", web::get().to(who)),
        )
        .await,
    );
    // Each framework has its own key of each kind (same limits).
    let (ax_limited, ac_limited, ax_spent, ac_spent) = (&creds[0], &creds[1], &creds[2], &creds[3]);
    let mut axum_answers = Vec::new();
    let mut actix_answers = Vec::new();
    for _ in 0..3 {
        axum_answers.push(call(&axum, ax_limited).await);
        actix_answers.push(call(&actix, ac_limited).await);
    }
    for _ in 0..2 {
        axum_answers.push(call(&axum, ax_spent).await);
        actix_answers.push(call(&actix, ac_spent).await);
    }
    let statuses: Vec<u16> = axum_answers.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [200, 200, 429, 200, 429]);
    let limited = &axum_answers[2];
    assert_eq!(limited.json()["error"], "rate_limited");
    assert_eq!(limited.header("retry-after"), Some("30"));
    assert_eq!(
        limited.header("ratelimit-policy"),
        Some("\"requests\";q=2;w=60")
    );
    assert_eq!(limited.header("ratelimit"), Some("\"requests\";r=0;t=30"));
    let spent = &axum_answers[4];
    assert_eq!(spent.json()["error"], "usage_exceeded");
    // Refusals are byte-identical; successes differ only by key id.
    for i in [2, 4] {
        assert_eq!(
            axum_answers[i].contract(KEPT),
            actix_answers[i].contract(KEPT),
            "answer {i}"
        );
    }
    for i in [0, 1, 3] {
        assert_eq!(actix_answers[i].status, 200);
    }
    // A wrong secret for the spent key is the plain 401.
    let wrong = Cred {
        id: ax_spent.id.clone(),
        secret: "kw_sk_wrong".into(),
    };
    assert_eq!(call(&axum, &wrong).await.status, 401);
}

/// One management request's answer: status and JSON body.
type Answer = (u16, serde_json::Value);

async fn manage<C: Client>(
    c: &C,
    method: &'static str,
    path: &str,
    admin: &Cred,
    body: &str,
) -> Answer {
    let r = c
        .send(
            req(method, path)
                .key(admin)
                .raw("application/json", body.as_bytes().to_vec()),
        )
        .await;
    (
        r.status,
        serde_json::from_slice(&r.body).unwrap_or_default(),
    )
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
    let cred = |f: &common::Fixture| Cred {
        id: f.admin.key.id.to_string(),
        secret: f.admin.secret.expose().to_owned(),
    };
    let (ax_admin, ac_admin) = (cred(&fx_axum), cred(&fx_actix));
    let axum = AxumClient(
        keyward::http::axum::router()
            .with_state(keyward::http::KeywardHttp::new(fx_axum.kw.clone())),
    );
    let actix = ActixClient(
        actix_web::test::init_service(
            App::new()
                .app_data(web::Data::new(keyward::http::KeywardHttp::new(
                    fx_actix.kw.clone(),
                )))
                .service(keyward::http::actix::scope("")),
        )
        .await,
    );
    let create = r#"{"name":"metered","permissions":[],"ratelimits":[{"name":"requests","limit":2,"duration_ms":60000}],"credits":{"remaining":100,"refill":{"interval":"daily","amount":100}}}"#;
    let ax = manage(&axum, "POST", "/apikeys", &ax_admin, create).await;
    let ac = manage(&actix, "POST", "/apikeys", &ac_admin, create).await;
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
    let new_key = Cred {
        id: ax_id.clone(),
        secret: ax.1["secret"].as_str().expect("secret").to_owned(),
    };

    // The new key is limited at once: 2 calls, then 429.
    let with_who = AxumClient(axum_app_with_who(&fx_axum.kw));
    for expected in [200, 200, 429] {
        assert_eq!(call(&with_who, &new_key).await.status, expected);
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
        let ax = manage(
            &axum,
            "PATCH",
            &format!("/apikeys/{ax_id}"),
            &ax_admin,
            body,
        )
        .await;
        let ac = manage(
            &actix,
            "PATCH",
            &format!("/apikeys/{ac_id}"),
            &ac_admin,
            body,
        )
        .await;
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
    let ax = manage(&axum, "POST", "/apps", &ax_admin, app).await;
    let ac = manage(&actix, "POST", "/apps", &ac_admin, app).await;
    assert_eq!(ax.0, 201, "{:?}", ax.1);
    assert_eq!(contract(&ax), contract(&ac));
    assert_eq!(ax.1["ratelimits"][0]["limit"], 10);
}

fn axum_app_with_who(kw: &Keyward) -> Router {
    Router::new()
        .route("/who", axum::routing::get(who))
        .with_state(keyward::http::KeywardHttp::new(kw.clone()))
}
