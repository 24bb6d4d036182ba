//! The HTTP contract: one table of cases run against both adapters
//! in-process (axum through `tower::ServiceExt::oneshot`, actix-web through
//! `actix_web::test`), then the error responses compared across the two
//! byte for byte.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "common/http.rs"]
mod http_client;

use std::collections::HashMap;

use actix_web::dev::Service;
use axum::Router;
use keyward::http::{HostUser, HttpConfig, KeywardHttp};
use keyward::{
    AccountId, Actor, KeyId, Keyward, ManualClock, MemoryStore, NewAccount, NewKey, PermissionSet,
    Principal, User,
};
use serde_json::{Value, json};
use time::Duration;

use http_client::{ActixClient, AxumClient, Client, Cred, Req, Resp, issue, req};

/// The headers both adapters must agree on (with the status and body).
const CONTRACT: &[&str] = &[
    "content-type",
    "www-authenticate",
    "retry-after",
    "allow",
    "cache-control",
];

const ALL: [&str; 4] = [
    "readApiKeys",
    "writeApiKeys",
    "readApplications",
    "writeApplications",
];

fn perms(p: &[&str]) -> PermissionSet {
    PermissionSet::parse(p.iter().copied()).unwrap()
}

struct Fixture {
    kw: Keyward,
    clock: ManualClock,
    store: MemoryStore,
    keys: HashMap<&'static str, Cred>,
}

impl Fixture {
    fn key(&self, name: &str) -> &Cred {
        &self.keys[name]
    }
    fn id(&self, name: &str) -> &str {
        &self.keys[name].id
    }
    fn config() -> HttpConfig {
        HttpConfig::new().trusted_proxies(vec!["10.0.0.0/8".parse().unwrap()])
    }
}

async fn fixture() -> Fixture {
    let clock = ManualClock::default();
    let store = MemoryStore::new();
    let build = |s: MemoryStore| {
        Keyward::builder()
            .store(s)
            .clock(clock.clone())
            .flush_interval(None)
            .build()
            .unwrap()
    };
    let kw = build(store.clone());
    let acme = AccountId::new("acme").unwrap();
    let child = AccountId::new("acme-eu").unwrap();
    let other = AccountId::new("other").unwrap();
    kw.create_account(Actor::System, NewAccount::new("Acme", perms(&ALL)).id(acme))
        .await
        .unwrap();
    kw.create_account(
        Actor::System,
        NewAccount::new("Acme EU", perms(&ALL))
            .id(child)
            .parent(acme),
    )
    .await
    .unwrap();
    kw.create_account(
        Actor::System,
        NewAccount::new("Other", perms(&ALL)).id(other),
    )
    .await
    .unwrap();
    let mut keys = HashMap::new();
    let now = kw.now();
    for (name, account, p, extra) in [
        ("admin", acme, &ALL[..], 0),
        ("reader", acme, &["readApiKeys", "readApplications"][..], 0),
        ("writer", acme, &["readApiKeys", "writeApiKeys"][..], 0),
        ("noperm", acme, &[][..], 0),
        ("inactive", acme, &ALL[..], 1),
        ("expired", acme, &ALL[..], 2),
        ("deleted", acme, &ALL[..], 3),
        ("restricted", acme, &ALL[..], 4),
        ("protected", acme, &ALL[..], 5),
        ("victim", acme, &["readApplications"][..], 0),
        ("rotatee", acme, &["readApplications"][..], 0),
        ("patchee", acme, &["readApplications"][..], 0),
        ("foreign", other, &ALL[..], 0),
        ("wonly", acme, &["writeApiKeys"][..], 0),
        ("fenced", acme, &["writeApiKeys", "readApplications"][..], 6),
    ] {
        let mut new = NewKey::new(name).permissions(perms(p));
        match extra {
            2 => new = new.expires_at(now + Duration::minutes(1)),
            4 => new = new.allowed_cidrs(vec!["198.51.100.0/24".parse().unwrap()]),
            5 => new = new.protected(true),
            6 => {
                new = new
                    .expires_at(now + Duration::days(1))
                    .allowed_cidrs(vec!["203.0.113.0/24".parse().unwrap()]);
            }
            _ => {}
        }
        let cred = issue(&kw, &account, new).await;
        let id = KeyId::new(&cred.id).unwrap();
        match extra {
            1 => {
                kw.deactivate_key(Actor::System, &id).await.unwrap();
            }
            3 => {
                kw.delete_key(Actor::System, &id).await.unwrap();
            }
            _ => {}
        }
        keys.insert(name, cred);
    }
    // A key this instance has never verified (cold: argon2 and the
    // failed-attempt limit apply).
    let other_instance = build(store.clone());
    keys.insert(
        "limited",
        issue(
            &other_instance,
            &acme,
            NewKey::new("limited").permissions(perms(&ALL)),
        )
        .await,
    );
    // Well-formed but unknown.
    let elsewhere = build(MemoryStore::new());
    elsewhere
        .create_account(Actor::System, NewAccount::new("X", perms(&ALL)).id(acme))
        .await
        .unwrap();
    keys.insert(
        "unknown",
        issue(&elsewhere, &acme, NewKey::new("x").permissions(perms(&ALL))).await,
    );
    clock.advance(Duration::minutes(2));
    Fixture {
        kw,
        clock,
        store,
        keys,
    }
}

// -------------------------------------------------------------------- apps

/// The host application's own login, as a test stand-in: `x-test-user:
/// admin|staff` signs a person in (a real host reads its session cookie).
fn host_user_of(role: Option<&[u8]>) -> Option<HostUser> {
    let acme = AccountId::new("acme").unwrap();
    let user = match role? {
        b"admin" => User::new(
            "u-1",
            "Ada Admin",
            acme,
            perms(&["readApiKeys", "writeApiKeys", "readApplications"]),
        ),
        b"staff" => User::new("u-2", "Sam Staff", acme, perms(&["readApiKeys"])),
        _ => return None,
    };
    Some(HostUser::new(user.unwrap()))
}

async fn axum_host_login(
    mut req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    if let Some(u) = host_user_of(req.headers().get("x-test-user").map(|v| v.as_bytes())) {
        req.extensions_mut().insert(u);
    }
    next.run(req).await
}

async fn whoami_opt(p: Option<Principal>) -> String {
    p.map_or_else(|| "anonymous".to_owned(), |p| p.key_id().to_string())
}

struct ReadApplications;

impl keyward::http::RequiredPermission for ReadApplications {
    const NAME: &'static str = "readApplications";
}

struct ReadApiKeys;

impl keyward::http::RequiredPermission for ReadApiKeys {
    const NAME: &'static str = "readApiKeys";
}

fn axum_app(kw: &Keyward) -> Router {
    use axum::routing::get;
    use keyward::http::axum::{Authorized, require, router};
    async fn apps(p: Principal) -> String {
        format!("applications of {}", p.account_id())
    }
    async fn apps_authorized(p: Authorized<ReadApplications>) -> String {
        format!("applications of {}", p.account_id())
    }
    async fn keys_authorized(p: Authorized<ReadApiKeys>) -> String {
        format!("keys of {}", p.account_id())
    }
    // An application state holding the `KeywardHttp` (the extractor's
    // other path: `FromRef` of a field rather than the state itself).
    #[derive(Clone)]
    struct AppState {
        http: KeywardHttp,
    }
    impl axum::extract::FromRef<AppState> for KeywardHttp {
        fn from_ref(s: &AppState) -> KeywardHttp {
            s.http.clone()
        }
    }
    let http = KeywardHttp::with_config(kw.clone(), Fixture::config());
    let app_state = Router::new()
        .route("/authorized-app-state", get(apps_authorized))
        .with_state(AppState { http: http.clone() });
    Router::new()
        .route(
            "/applications",
            get(apps).route_layer(require(&http, "readApplications")),
        )
        .route("/authorized", get(apps_authorized))
        .route("/authorized-keys", get(keys_authorized))
        .route(
            "/keys-reader",
            get(apps).route_layer(require(&http, "readApiKeys")),
        )
        .merge(app_state)
        .route("/optional", get(whoami_opt))
        .merge(router())
        .layer(axum::middleware::from_fn(axum_host_login))
        .with_state(http)
}

macro_rules! actix_app {
    ($kw:expr) => {{
        use actix_web::{App, web};
        use keyward::http::actix::{OptionalPrincipal, RequirePermission, scope};
        async fn apps(p: Principal) -> String {
            format!("applications of {}", p.account_id())
        }
        async fn whoami_opt_actix(p: OptionalPrincipal) -> String {
            whoami_opt(p.0).await
        }
        App::new()
            .wrap_fn(|req, srv| {
                use actix_web::HttpMessage as _;
                if let Some(u) =
                    host_user_of(req.headers().get("x-test-user").map(|v| v.as_bytes()))
                {
                    req.extensions_mut().insert(u);
                }
                srv.call(req)
            })
            .app_data(web::Data::new(KeywardHttp::with_config(
                $kw.clone(),
                Fixture::config(),
            )))
            .service(
                web::resource("/applications")
                    .wrap(RequirePermission::new("readApplications"))
                    .route(web::get().to(apps)),
            )
            .route("/optional", web::get().to(whoami_opt_actix))
            .service(
                web::resource("/keys-reader")
                    .wrap(RequirePermission::new("readApiKeys"))
                    .route(web::get().to(apps)),
            )
            .service(scope(""))
    }};
}

// ------------------------------------------------------------------- table

/// One row: name, request, expected status, expected `error` code (for
/// error responses), expected `WWW-Authenticate`.
struct Case {
    name: &'static str,
    req: Req,
    status: u16,
    code: Option<&'static str>,
    www: Option<&'static str>,
}

fn case(name: &'static str, req: Req, status: u16) -> Case {
    Case {
        name,
        req,
        status,
        code: None,
        www: None,
    }
}

impl Case {
    fn code(mut self, c: &'static str) -> Self {
        self.code = Some(c);
        self
    }
    fn www(mut self, w: &'static str) -> Self {
        self.www = Some(w);
        self
    }
}

const PLAIN: &str = "Bearer realm=\"keyward\"";
const INVALID_TOKEN: &str = "Bearer realm=\"keyward\", error=\"invalid_token\"";
const INVALID_REQUEST: &str = "Bearer realm=\"keyward\", error=\"invalid_request\"";

fn table(fx: &Fixture) -> Vec<Case> {
    let admin = fx.key("admin");
    let reader = fx.key("reader");
    let writer = fx.key("writer");
    let wonly = fx.key("wonly");
    let fenced = fx.key("fenced");
    let wrong = Cred {
        id: admin.id.clone(),
        secret: reader.secret.clone(),
    };
    let combined = keyward::combine_key(
        fx.kw.prefix(),
        &KeyId::new(&admin.id).unwrap(),
        &keyward::Secret::from(admin.secret.clone()),
    )
    .unwrap();
    let combined = combined.expose().to_owned();
    let past = "2001-01-01T00:00:00Z";
    vec![
        // --- authenticating a request
        case("no credentials", req("GET", "/auth/whoami"), 401).code("missing_credentials").www(PLAIN),
        case("credentials in the query are ignored", req("GET", format!("/auth/whoami?x-api-key={}&x-api-secret={}&access_token={combined}", admin.id, admin.secret)), 401).code("missing_credentials").www(PLAIN),
        case("key headers", req("GET", "/auth/whoami").key(admin), 200),
        case("bearer single-string key, lowercase scheme", req("GET", "/auth/whoami").header("authorization", format!("bearer {combined}")), 200),
        case("other scheme is not a credential", req("GET", "/auth/whoami").header("authorization", "Basic Zm9vOmJhcg=="), 401).code("missing_credentials").www(PLAIN),
        case("only x-api-key", req("GET", "/auth/whoami").header("x-api-key", &admin.id), 400).code("invalid_request").www(INVALID_REQUEST),
        case("only x-api-secret", req("GET", "/auth/whoami").header("x-api-secret", &admin.secret), 400).code("invalid_request").www(INVALID_REQUEST),
        case("key and bearer", req("GET", "/auth/whoami").key(admin).bearer(&combined), 400).code("invalid_request").www(INVALID_REQUEST),
        case("x-api-key twice", req("GET", "/auth/whoami").key(admin).header("x-api-key", &admin.id), 400).code("invalid_request").www(INVALID_REQUEST),
        case("authorization twice", req("GET", "/auth/whoami").bearer(&combined).bearer(&combined), 400).code("invalid_request").www(INVALID_REQUEST),
        case("non-ASCII key", req("GET", "/auth/whoami").header("x-api-key", "kw_é".as_bytes()).header("x-api-secret", &admin.secret), 400).code("invalid_request").www(INVALID_REQUEST),
        case("over-long secret", req("GET", "/auth/whoami").header("x-api-key", &admin.id).header("x-api-secret", "a".repeat(300)), 400).code("invalid_request").www(INVALID_REQUEST),
        case("over-long bearer", req("GET", "/auth/whoami").bearer(&"a".repeat(300)), 400).code("invalid_request").www(INVALID_REQUEST),
        case("unknown key", req("GET", "/auth/whoami").key(fx.key("unknown")), 401).code("invalid_credentials").www(INVALID_TOKEN),
        case("wrong secret", req("GET", "/auth/whoami").key(&wrong), 401).code("invalid_credentials").www(INVALID_TOKEN),
        case("inactive key", req("GET", "/auth/whoami").key(fx.key("inactive")), 401).code("invalid_credentials").www(INVALID_TOKEN),
        case("expired key", req("GET", "/auth/whoami").key(fx.key("expired")), 401).code("invalid_credentials").www(INVALID_TOKEN),
        case("deleted key", req("GET", "/auth/whoami").key(fx.key("deleted")), 401).code("invalid_credentials").www(INVALID_TOKEN),
        case("address not allowed", req("GET", "/auth/whoami").key(fx.key("restricted")), 401).code("invalid_credentials").www(INVALID_TOKEN),
        case("malformed secret", req("GET", "/auth/whoami").header("x-api-key", &admin.id).header("x-api-secret", "kw_sk_nope"), 401).code("invalid_credentials").www(INVALID_TOKEN),
        case("malformed bearer", req("GET", "/auth/whoami").bearer("kw_st_nope"), 401).code("invalid_credentials").www(INVALID_TOKEN),
        case("forwarded-for from an untrusted peer is ignored", req("GET", "/auth/whoami").key(fx.key("restricted")).header("x-forwarded-for", "198.51.100.9"), 401).code("invalid_credentials"),
        case("forwarded-for from a trusted proxy", req("GET", "/auth/whoami").key(fx.key("restricted")).header("x-forwarded-for", "198.51.100.9, 10.0.0.2").peer("10.0.0.1:5000"), 200),
        case("x-account-id own", req("GET", "/auth/whoami").key(admin).header("x-account-id", "acme"), 200),
        case("x-account-id child", req("GET", "/auth/whoami").key(admin).header("x-account-id", "acme-eu"), 200),
        case("x-account-id foreign", req("GET", "/auth/whoami").key(admin).header("x-account-id", "other"), 403).code("account_not_allowed"),
        case("x-account-id unknown", req("GET", "/auth/whoami").key(admin).header("x-account-id", "nobody"), 403).code("account_not_allowed"),
        case("x-account-id malformed", req("GET", "/auth/whoami").key(admin).header("x-account-id", "no spaces allowed"), 400).code("invalid_request").www(INVALID_REQUEST),
        case("demo route with permission", req("GET", "/applications").key(reader), 200),
        case("demo route without permission", req("GET", "/applications").key(fx.key("noperm")), 403).code("insufficient_scope").www("Bearer realm=\"keyward\", error=\"insufficient_scope\", scope=\"readApplications\""),
        case("demo route without credentials", req("GET", "/applications"), 401).code("missing_credentials").www(PLAIN),
        case("demo route with a bad key", req("GET", "/applications").key(&wrong), 401).code("invalid_credentials").www(INVALID_TOKEN),
        case("optional principal, none", req("GET", "/optional"), 200),
        case("optional principal, present", req("GET", "/optional").key(admin), 200),
        case("optional principal, bad credentials", req("GET", "/optional").key(&wrong), 401).code("invalid_credentials").www(INVALID_TOKEN),
        case("optional principal, malformed credentials", req("GET", "/optional").header("x-api-key", &admin.id), 400).code("invalid_request").www(INVALID_REQUEST),
        // --- management API: permissions
        case("create without writeApiKeys", req("POST", "/apikeys").key(reader).json(json!({"name": "x", "permissions": []})), 403).code("insufficient_scope").www("Bearer realm=\"keyward\", error=\"insufficient_scope\", scope=\"writeApiKeys\""),
        case("list without readApiKeys", req("GET", "/apikeys").key(fx.key("noperm")), 403).code("insufficient_scope"),
        case("list without credentials", req("GET", "/apikeys"), 401).code("missing_credentials").www(PLAIN),
        // --- create
        case("create", req("POST", "/apikeys").key(admin).json(json!({"name": "ci", "description": "d", "application": "billing", "permissions": ["readApplications"], "expires_at": "2031-01-01T00:00:00Z", "allowed_cidrs": ["192.0.2.0/24", "2001:db8::1"], "metadata": {"team": "a"}})), 201),
        case("create, minimal", req("POST", "/apikeys").key(admin).json(json!({"name": "min", "permissions": []})), 201),
        case("create, text/plain", req("POST", "/apikeys").key(admin).raw("text/plain", "{}"), 415).code("unsupported_media_type"),
        case("create, no content-type", { let mut r = req("POST", "/apikeys").key(admin); r.body = b"{}".to_vec(); r }, 415).code("unsupported_media_type"),
        case("create, body over 64 KiB", req("POST", "/apikeys").key(admin).json(json!({"name": "x", "permissions": [], "metadata": {"pad": "a".repeat(70_000)}})), 413).code("payload_too_large"),
        case("create, not JSON", req("POST", "/apikeys").key(admin).raw("application/json", "{nope"), 400).code("invalid_body"),
        case("create, not an object", req("POST", "/apikeys").key(admin).json(json!([1, 2])), 400).code("invalid_body"),
        case("create, unknown field", req("POST", "/apikeys").key(admin).json(json!({"name": "x", "permissions": [], "secret": "mine"})), 400).code("invalid_body"),
        case("create, name missing", req("POST", "/apikeys").key(admin).json(json!({"permissions": []})), 422).code("invalid_value"),
        case("create, empty name", req("POST", "/apikeys").key(admin).json(json!({"name": " ", "permissions": []})), 422).code("invalid_value"),
        case("create, permissions not a list", req("POST", "/apikeys").key(admin).json(json!({"name": "x", "permissions": "all"})), 422).code("invalid_value"),
        case("create, bad permission name", req("POST", "/apikeys").key(admin).json(json!({"name": "x", "permissions": ["no spaces"]})), 422).code("invalid_value"),
        case("create, expiry in the past", req("POST", "/apikeys").key(admin).json(json!({"name": "x", "permissions": [], "expires_at": past})), 422).code("invalid_value"),
        case("create, expiry not a date", req("POST", "/apikeys").key(admin).json(json!({"name": "x", "permissions": [], "expires_at": "tomorrow"})), 422).code("invalid_value"),
        case("create, bad cidr", req("POST", "/apikeys").key(admin).json(json!({"name": "x", "permissions": [], "allowed_cidrs": ["10.0.0.0/99"]})), 422).code("invalid_value"),
        case("create, metadata not an object", req("POST", "/apikeys").key(admin).json(json!({"name": "x", "permissions": [], "metadata": 3})), 422).code("invalid_value"),
        case("create, beyond the principal", req("POST", "/apikeys").key(writer).json(json!({"name": "x", "permissions": ["readApplications"]})), 403).code("permission_not_held"),
        case("create, beyond the account", req("POST", "/apikeys").key(admin).json(json!({"name": "x", "permissions": ["launchRockets"]})), 403).code("permission_not_held"),
        // --- list
        case("list", req("GET", "/apikeys").key(admin), 200),
        case("list, filters", req("GET", "/apikeys?q=adm&status=active&application=billing&limit=5").key(admin), 200),
        case("list, empty search", req("GET", "/apikeys?q=").key(admin), 200),
        case("list, search of 2 characters", req("GET", "/apikeys?q=ad").key(admin), 422).code("invalid_value"),
        case("list, limit 0", req("GET", "/apikeys?limit=0").key(admin), 422).code("invalid_value"),
        case("list, limit 101", req("GET", "/apikeys?limit=101").key(admin), 422).code("invalid_value"),
        case("list, limit not a number", req("GET", "/apikeys?limit=ten").key(admin), 422).code("invalid_value"),
        case("list, bad cursor", req("GET", "/apikeys?cursor=garbage").key(admin), 422).code("invalid_value"),
        case("list, bad status", req("GET", "/apikeys?status=gone").key(admin), 422).code("invalid_value"),
        case("list, unknown parameter", req("GET", "/apikeys?sort=name").key(admin), 400).code("invalid_query"),
        case("list, parameter twice", req("GET", "/apikeys?limit=1&limit=2").key(admin), 400).code("invalid_query"),
        case("list, for the child account", req("GET", "/apikeys").key(admin).header("x-account-id", "acme-eu"), 200),
        // --- get
        case("get", req("GET", format!("/apikeys/{}", admin.id)).key(admin), 200),
        case("get, other account", req("GET", format!("/apikeys/{}", fx.id("foreign"))).key(admin), 404).code("not_found"),
        case("get, absent", req("GET", format!("/apikeys/{}", fx.id("deleted"))).key(admin), 404).code("not_found"),
        case("get, not an id", req("GET", "/apikeys/..%20x").key(admin), 404).code("not_found"),
        // --- update
        case("update", req("PATCH", format!("/apikeys/{}", fx.id("patchee"))).key(admin).json(json!({"name": "renamed", "description": "new", "application": null, "metadata": {"v": 2}})), 200),
        case("update, expiry set", req("PATCH", format!("/apikeys/{}", fx.id("patchee"))).key(admin).json(json!({"expires_at": "2031-06-01T00:00:00Z"})), 200),
        case("update, expiry cleared", req("PATCH", format!("/apikeys/{}", fx.id("patchee"))).key(admin).json(json!({"expires_at": null})), 200),
        case("update, expiry in the past", req("PATCH", format!("/apikeys/{}", fx.id("patchee"))).key(admin).json(json!({"expires_at": past})), 422).code("invalid_value"),
        case("update, unknown field", req("PATCH", format!("/apikeys/{}", fx.id("patchee"))).key(admin).json(json!({"protected": true})), 400).code("invalid_body"),
        case("update, bad status", req("PATCH", format!("/apikeys/{}", fx.id("patchee"))).key(admin).json(json!({"status": "paused"})), 422).code("invalid_value"),
        case("update, null name", req("PATCH", format!("/apikeys/{}", fx.id("patchee"))).key(admin).json(json!({"name": null})), 422).code("invalid_value"),
        case("update, beyond the principal", req("PATCH", format!("/apikeys/{}", fx.id("patchee"))).key(writer).json(json!({"permissions": ["writeApplications"]})), 403).code("permission_not_held"),
        case("update, other account", req("PATCH", format!("/apikeys/{}", fx.id("foreign"))).key(admin).json(json!({"name": "mine"})), 404).code("not_found"),
        case("update, wrong content type", req("PATCH", format!("/apikeys/{}", fx.id("patchee"))).key(admin).raw("application/x-www-form-urlencoded", "name=x"), 415).code("unsupported_media_type"),
        case("update, deactivate", req("PATCH", format!("/apikeys/{}", fx.id("patchee"))).key(admin).json(json!({"status": "inactive"})), 200),
        // --- delete
        case("delete", req("DELETE", format!("/apikeys/{}", fx.id("victim"))).key(admin), 200),
        case("delete, again", req("DELETE", format!("/apikeys/{}", fx.id("victim"))).key(admin), 404).code("not_found"),
        case("delete, protected", req("DELETE", format!("/apikeys/{}", fx.id("protected"))).key(admin), 409).code("protected"),
        case("delete, other account", req("DELETE", format!("/apikeys/{}", fx.id("foreign"))).key(admin), 404).code("not_found"),
        case("delete, without writeApiKeys", req("DELETE", format!("/apikeys/{}", fx.id("rotatee"))).key(reader), 403).code("insufficient_scope"),
        // --- rotate
        case("rotate, negative grace", req("POST", format!("/apikeys/{}/rotate", fx.id("rotatee"))).key(admin).json(json!({"grace_period_seconds": -1})), 422).code("invalid_value"),
        case("rotate, grace not a number", req("POST", format!("/apikeys/{}/rotate", fx.id("rotatee"))).key(admin).json(json!({"grace_period_seconds": "1h"})), 422).code("invalid_value"),
        case("rotate, unknown field", req("POST", format!("/apikeys/{}/rotate", fx.id("rotatee"))).key(admin).json(json!({"grace": 1})), 400).code("invalid_body"),
        case("rotate, with grace", req("POST", format!("/apikeys/{}/rotate", fx.id("rotatee"))).key(admin).json(json!({"grace_period_seconds": 600})), 200),
        case("rotate, no body", req("POST", format!("/apikeys/{}/rotate", fx.id("rotatee"))).key(admin), 200),
        // --- events and usage
        case("events", req("GET", format!("/apikeys/{}/events", fx.id("patchee"))).key(admin), 200),
        case("events, limit 1", req("GET", format!("/apikeys/{}/events?limit=1", fx.id("patchee"))).key(admin), 200),
        case("events, limit 500", req("GET", format!("/apikeys/{}/events?limit=500", fx.id("patchee"))).key(admin), 422).code("invalid_value"),
        case("events, bad cursor", req("GET", format!("/apikeys/{}/events?cursor=%%%", fx.id("patchee"))).key(admin), 422).code("invalid_value"),
        case("events, undecodable cursor", req("GET", format!("/apikeys/{}/events?cursor=abc", fx.id("patchee"))).key(admin), 422).code("invalid_value"),
        case("events, without readApiKeys", req("GET", format!("/apikeys/{}/events", fx.id("patchee"))).key(fx.key("noperm")), 403).code("insufficient_scope"),
        case("usage report", req("GET", "/usage").key(admin), 200),
        case("usage report, daily, one key", req("GET", "/usage?granularity=day&limit=1").key(admin), 200),
        case("usage report, other origin", req("GET", "/usage?origin=mcp").key(admin), 200),
        case("usage report, bad granularity", req("GET", "/usage?granularity=week").key(admin), 422).code("invalid_value"),
        case("usage report, by application", req("GET", "/usage?group_by=app").key(admin), 200),
        case("usage report, by account", req("GET", "/usage?group_by=account&origin=api").key(admin), 200),
        case("usage report, group_by unknown", req("GET", "/usage?group_by=customer").key(admin), 422).code("invalid_value"),
        case("usage report, cursor of another group_by", req("GET", "/usage?group_by=app&cursor=a2V5LjEua3dfYWJj").key(admin), 422).code("invalid_value"),
        case("usage report, bad cursor", req("GET", "/usage?cursor=abc").key(admin), 422).code("invalid_value"),
        case("usage report, without readApiKeys", req("GET", "/usage").key(fx.key("noperm")), 403).code("insufficient_scope"),
        case("account events", req("GET", "/events?limit=100").key(admin), 200),
        case("account events of a key", req("GET", format!("/events?key_id={}", fx.id("patchee"))).key(admin), 200),
        case("account events, limit 1", req("GET", "/events?limit=1").key(admin), 200),
        case("account events, unknown parameter", req("GET", "/events?colour=x").key(admin), 400).code("invalid_query"),
        case("account events, unknown action", req("GET", "/events?action=x").key(admin), 422).code("invalid_value"),
        case("account events stream, unknown parameter", req("GET", "/events/stream?limit=1").key(admin), 400).code("invalid_query"),
        case("account events stream, bad Last-Event-ID", req("GET", "/events/stream").key(admin).header("last-event-id", "-1"), 422).code("invalid_value"),
        case("account events, bad cursor", req("GET", "/events?cursor=abc").key(admin), 422).code("invalid_value"),
        case("account events, malformed key_id", req("GET", "/events?key_id=%20").key(admin), 404).code("not_found"),
        case("account events, foreign key", req("GET", format!("/events?key_id={}", fx.id("foreign"))).key(admin), 404).code("not_found"),
        case("account events, without readApiKeys", req("GET", "/events").key(fx.key("noperm")), 403).code("insufficient_scope"),
        case("usage", req("GET", format!("/apikeys/{}/usage?from=2029-12-31T00:00:00Z&to=2030-01-02T00:00:00Z&origin=api", admin.id)).key(admin), 200),
        case("usage, bad from", req("GET", format!("/apikeys/{}/usage?from=yesterday", admin.id)).key(admin), 422).code("invalid_value"),
        case("usage, from after to", req("GET", format!("/apikeys/{}/usage?from=2030-01-02T00:00:00Z&to=2030-01-01T00:00:00Z", admin.id)).key(admin), 422).code("invalid_value"),
        case("usage, other account", req("GET", format!("/apikeys/{}/usage", fx.id("foreign"))).key(admin), 404).code("not_found"),
        // --- sessions
        case("login, headers", req("POST", "/auth/login").key(admin), 200),
        case("login, JSON body", req("POST", "/auth/login").json(json!({"key": admin.id, "secret": admin.secret})), 200),
        case("login, JSON body with a wrong secret", req("POST", "/auth/login").json(json!({"key": admin.id, "secret": reader.secret})), 401).code("invalid_credentials").www(INVALID_TOKEN),
        case("login, JSON body with an unknown field", req("POST", "/auth/login").json(json!({"key": admin.id, "secret": admin.secret, "ttl": 5})), 400).code("invalid_body"),
        case("login, nothing", req("POST", "/auth/login"), 401).code("missing_credentials").www(PLAIN),
        case("login, wrong secret", req("POST", "/auth/login").key(&wrong), 401).code("invalid_credentials").www(INVALID_TOKEN),
        case("login, inactive key", req("POST", "/auth/login").key(fx.key("inactive")), 401).code("invalid_credentials").www(INVALID_TOKEN),
        case("logout with a key", req("POST", "/auth/logout").key(admin), 400).code("invalid_request"),
        case("logout without credentials", req("POST", "/auth/logout"), 401).code("missing_credentials"),
        // --- issue 10: no principal gains or removes power it does not hold
        case("takeover: rotate the protected admin key with writeApiKeys only", req("POST", format!("/apikeys/{}/rotate", fx.id("protected"))).key(wonly).json(json!({"grace_period_seconds": 604800})), 403).code("permission_not_held"),
        case("takeover: rotate a stronger key", req("POST", format!("/apikeys/{}/rotate", admin.id)).key(wonly).json(json!({"grace_period_seconds": 604800})), 403).code("permission_not_held"),
        case("disarm: deactivate a stronger key", req("PATCH", format!("/apikeys/{}", admin.id)).key(wonly).json(json!({"status": "inactive"})), 403).code("permission_not_held"),
        case("disarm: narrow a stronger key", req("PATCH", format!("/apikeys/{}", admin.id)).key(writer).json(json!({"permissions": ["readApiKeys"]})), 403).code("permission_not_held"),
        case("disarm: fence a stronger key", req("PATCH", format!("/apikeys/{}", admin.id)).key(writer).json(json!({"allowed_cidrs": ["203.0.113.0/24"]})), 403).code("permission_not_held"),
        case("disarm: delete a stronger key", req("DELETE", format!("/apikeys/{}", admin.id)).key(wonly), 403).code("permission_not_held"),
        case("protected: rotate, even with every permission", req("POST", format!("/apikeys/{}/rotate", fx.id("protected"))).key(admin), 409).code("protected"),
        case("protected: deactivate, even with every permission", req("PATCH", format!("/apikeys/{}", fx.id("protected"))).key(admin).json(json!({"status": "inactive"})), 409).code("protected"),
        case("shed: clear own expiry", req("PATCH", format!("/apikeys/{}", fx.id("fenced"))).key(fenced).json(json!({"expires_at": null})), 403).code("restriction_not_held"),
        case("shed: clear own networks", req("PATCH", format!("/apikeys/{}", fx.id("fenced"))).key(fenced).json(json!({"allowed_cidrs": []})), 403).code("restriction_not_held"),
        case("shed: mint a key without expiry", req("POST", "/apikeys").key(fenced).json(json!({"name": "free", "permissions": ["readApplications"], "allowed_cidrs": ["203.0.113.0/24"]})), 403).code("restriction_not_held"),
        case("shed: mint a key for other networks", req("POST", "/apikeys").key(fenced).json(json!({"name": "free", "permissions": [], "expires_at": "2030-01-01T12:00:00Z", "allowed_cidrs": ["0.0.0.0/0"]})), 403).code("restriction_not_held"),
        case("writeApiKeys implies readApiKeys", req("GET", format!("/apikeys/{}", fx.id("rotatee"))).key(wonly), 200),
        case("writeApiKeys implies readApiKeys in the require layer", req("GET", "/keys-reader").key(wonly), 200),
        case("the require layer still refuses without either", req("GET", "/keys-reader").key(fx.key("noperm")), 403).code("insufficient_scope"),
        case("host user and x-account-id", req("GET", "/apikeys").header("x-test-user", "admin").header("x-account-id", "acme-eu"), 400).code("invalid_request").www(INVALID_REQUEST),
        // --- issue 10: people the host signed in
        case("host admin creates", req("POST", "/apikeys").header("x-test-user", "admin").json(json!({"name": "by a person", "permissions": ["readApplications"]})), 201),
        case("host staff lists", req("GET", "/apikeys").header("x-test-user", "staff"), 200),
        case("host staff creates", req("POST", "/apikeys").header("x-test-user", "staff").json(json!({"name": "x", "permissions": []})), 403).code("insufficient_scope"),
        case("host admin rotates a stronger key", req("POST", format!("/apikeys/{}/rotate", admin.id)).header("x-test-user", "admin"), 403).code("permission_not_held"),
        case("host admin rotates the protected key", req("POST", format!("/apikeys/{}/rotate", fx.id("protected"))).header("x-test-user", "admin"), 403).code("permission_not_held"),
        case("host user and credentials", req("GET", "/apikeys").header("x-test-user", "admin").key(admin), 400).code("invalid_request").www(INVALID_REQUEST),
        case("host user sees no foreign key", req("GET", format!("/apikeys/{}", fx.id("foreign"))).header("x-test-user", "admin"), 404).code("not_found"),
        // --- issue 10: bad input
        case("login, body not an object", req("POST", "/auth/login").json(json!([null, null])), 400).code("invalid_body"),
        case("login, headers and a body not an object", req("POST", "/auth/login").key(admin).json(json!([null, null])), 400).code("invalid_body"),
        case("login, credentials in body and headers", req("POST", "/auth/login").key(admin).json(json!({"key": fx.id("reader"), "secret": reader.secret})), 400).code("invalid_request").www(INVALID_REQUEST),
        case("login, headers and an empty object", req("POST", "/auth/login").key(admin).json(json!({})), 200),
        case("login, headers and a text body", req("POST", "/auth/login").key(admin).raw("text/plain", "hello"), 415).code("unsupported_media_type"),
        case("login, duplicate JSON keys", req("POST", "/auth/login").raw("application/json", format!(r#"{{"key":"{}","secret":"{}","secret":"x"}}"#, admin.id, admin.secret)), 400).code("invalid_body"),
        case("create, duplicate JSON keys", req("POST", "/apikeys").key(admin).raw("application/json", r#"{"name":"a","permissions":[],"name":"b"}"#), 400).code("invalid_body"),
        case("create, duplicate keys in metadata", req("POST", "/apikeys").key(admin).raw("application/json", r#"{"name":"a","permissions":[],"metadata":{"x":1,"x":2}}"#), 400).code("invalid_body"),
        case("create, bidi override in the name", req("POST", "/apikeys").key(admin).json(json!({"name": "admin\u{202E}gpj.exe", "permissions": []})), 422).code("invalid_value"),
        case("create, zero-width space in the name", req("POST", "/apikeys").key(admin).json(json!({"name": "ad\u{200B}min", "permissions": []})), 422).code("invalid_value"),
        case("create, BOM in the name", req("POST", "/apikeys").key(admin).json(json!({"name": "\u{FEFF}admin", "permissions": []})), 422).code("invalid_value"),
        case("update, control character in the name", req("PATCH", format!("/apikeys/{}", fx.id("patchee"))).key(admin).json(json!({"name": "a\u{1B}[31mred"})), 422).code("invalid_value"),
        case("events, other account", req("GET", format!("/apikeys/{}/events", fx.id("foreign"))).key(admin), 404).code("not_found"),
        case("events, unknown key", req("GET", format!("/apikeys/{}/events", fx.id("unknown"))).key(admin), 404).code("not_found"),
        case("create, expiry with nanoseconds", req("POST", "/apikeys").key(admin).json(json!({"name": "precise", "permissions": [], "expires_at": "2031-01-01T00:00:00.123456789Z"})), 201),
        // --- routing
        case("openapi", req("GET", "/openapi.json"), 200),
        case("method not allowed", req("PUT", "/apikeys").key(admin), 405).code("method_not_allowed"),
    ]
}

async fn run_table<C: Client>(fx: &Fixture, c: &C) -> Vec<(&'static str, Resp)> {
    let mut out = Vec::new();
    let secrets: Vec<&str> = fx.keys.values().map(|k| k.secret.as_str()).collect();
    let before = fx
        .kw
        .list_keys(
            Actor::System,
            &AccountId::new("acme").unwrap(),
            keyward::ListKeys::new().limit(100),
        )
        .await
        .unwrap()
        .items
        .len();
    let mut created = 0;
    for case in table(fx) {
        let res = c.send(case.req.clone()).await;
        let ctx = format!("[{}] {}: {} {}", C::NAME, case.name, res.status, res.text());
        assert_eq!(res.status, case.status, "{ctx}");
        if res.status == 201 {
            created += 1;
        }
        if res.status >= 400 {
            assert_eq!(
                res.header("content-type"),
                Some("application/json"),
                "{ctx}"
            );
            let body = res.json();
            assert!(body["message"].is_string(), "{ctx}");
            if let Some(code) = case.code {
                assert_eq!(body["error"], code, "{ctx}");
            }
            assert_eq!(
                res.header("www-authenticate"),
                case.www.or(res.header("www-authenticate")),
                "{ctx}"
            );
            if let Some(w) = case.www {
                assert_eq!(res.header("www-authenticate"), Some(w), "{ctx}");
            }
            if res.status == 401 {
                assert!(res.header("www-authenticate").is_some(), "{ctx}");
            }
            if res.status == 422 {
                assert!(body["field"].is_string(), "{ctx}");
            }
            // No secret or token of any key in an error response.
            for s in &secrets {
                assert!(!res.text().contains(s), "{ctx}");
                assert!(!format!("{:?}", res.headers).contains(s), "{ctx}");
            }
        }
        out.push((case.name, res));
    }
    // Rejected requests changed nothing: only the two successful creates
    // and the one delete show.
    let after = fx
        .kw
        .list_keys(
            Actor::System,
            &AccountId::new("acme").unwrap(),
            keyward::ListKeys::new().limit(100),
        )
        .await
        .unwrap()
        .items
        .len();
    assert_eq!(created, 4, "[{}]", C::NAME);
    assert_eq!(after, before + 4 - 1, "[{}]", C::NAME);
    out
}

fn by_name<'a>(rs: &'a [(&'static str, Resp)], name: &str) -> &'a Resp {
    &rs.iter().find(|(n, _)| *n == name).unwrap().1
}

fn check_bodies(fx: &Fixture, rs: &[(&'static str, Resp)]) {
    // Byte-identical 401s for every presented but invalid credential.
    let reference = by_name(rs, "unknown key").contract(CONTRACT);
    for name in [
        "wrong secret",
        "inactive key",
        "expired key",
        "deleted key",
        "address not allowed",
        "malformed secret",
        "malformed bearer",
    ] {
        assert_eq!(by_name(rs, name).contract(CONTRACT), reference, "{name}");
    }
    assert_eq!(
        reference.2,
        br#"{"error":"invalid_credentials","message":"invalid credentials"}"#.to_vec()
    );
    // Records: the ApiKey serde form, never a hash.
    let created = by_name(rs, "create").json();
    let mut fields: Vec<&str> = created
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    fields.sort_unstable();
    assert_eq!(
        fields,
        [
            "account_id",
            "allowed_cidrs",
            "allowed_origins",
            "app_id",
            "application",
            "created_at",
            "description",
            "expires_at",
            "id",
            "key",
            "last_used_at",
            "metadata",
            "name",
            "permissions",
            "protected",
            "secret",
            "status",
            "updated_at"
        ]
    );
    assert_eq!(created["expires_at"], "2031-01-01T00:00:00Z");
    assert_eq!(
        created["allowed_cidrs"],
        json!(["192.0.2.0/24", "2001:db8::1/128"])
    );
    assert_eq!(created["allowed_origins"], json!([]));
    assert!(created["secret"].as_str().unwrap().starts_with("kw_sk_"));
    assert_eq!(
        by_name(rs, "create").header("cache-control"),
        Some("no-store")
    );
    let got = by_name(rs, "get").json();
    assert_eq!(got["id"], fx.id("admin"));
    assert!(got.get("secret").is_none());
    assert!(!by_name(rs, "get").text().contains("argon2"));
    let list = by_name(rs, "list").json();
    assert!(list["items"].as_array().unwrap().len() >= 10);
    assert!(list["next_cursor"].is_null());
    let child = by_name(rs, "list, for the child account").json();
    assert_eq!(child["items"], json!([]));
    assert_eq!(
        by_name(rs, "x-account-id child").json()["account_id"],
        "acme-eu"
    );
    let who = by_name(rs, "key headers").json();
    assert_eq!(who["key_id"], fx.id("admin"));
    assert_eq!(who["account_id"], "acme");
    assert!(who["session_id"].is_null());
    assert_eq!(
        who["permissions"],
        json!([
            "readApiKeys",
            "readApplications",
            "writeApiKeys",
            "writeApplications"
        ])
    );
    assert_eq!(by_name(rs, "optional principal, none").text(), "anonymous");
    assert_eq!(
        by_name(rs, "optional principal, present").text(),
        fx.id("admin")
    );
    let upd = by_name(rs, "update").json();
    assert_eq!(upd["name"], "renamed");
    assert!(upd["application"].is_null());
    assert!(upd.get("effective_by").is_none());
    assert!(
        by_name(rs, "update, expiry set")
            .json()
            .get("effective_by")
            .is_some()
    );
    assert!(by_name(rs, "update, expiry cleared").json()["expires_at"].is_null());
    let deact = by_name(rs, "update, deactivate").json();
    assert_eq!(deact["status"], "inactive");
    assert!(deact["effective_by"].is_string());
    let del = by_name(rs, "delete").json();
    assert_eq!(del["id"], fx.id("victim"));
    assert_eq!(del["status"], "deleted");
    assert!(del["effective_by"].is_string());
    let rot = by_name(rs, "rotate, with grace").json();
    assert!(rot["secret"].as_str().unwrap().starts_with("kw_sk_"));
    assert!(rot["previous_secret_expires_at"].is_string());
    assert!(by_name(rs, "rotate, no body").json()["previous_secret_expires_at"].is_null());
    let ev = by_name(rs, "events").json();
    assert!(ev["items"].as_array().unwrap().len() >= 4);
    let ev1 = by_name(rs, "events, limit 1").json();
    assert_eq!(ev1["items"].as_array().unwrap().len(), 1);
    assert!(ev1["next_cursor"].is_string());
    // Top consumers first; each key's totals are its series' sums.
    let report = by_name(rs, "usage report").json();
    let groups = report["items"].as_array().unwrap();
    assert!(!groups.is_empty(), "{report}");
    let volume = |g: &Value| g["successes"].as_u64().unwrap() + g["failures"].as_u64().unwrap();
    assert!(groups.windows(2).all(|w| volume(&w[0]) >= volume(&w[1])));
    for g in groups {
        let series = g["series"].as_array().unwrap();
        let sum = |f: &str| series.iter().map(|p| p[f].as_u64().unwrap()).sum::<u64>();
        assert_eq!(
            (sum("successes"), sum("failures")),
            (
                g["successes"].as_u64().unwrap(),
                g["failures"].as_u64().unwrap()
            )
        );
        assert!(g["name"].is_string());
    }
    let daily = by_name(rs, "usage report, daily, one key").json();
    assert_eq!(daily["items"].as_array().unwrap().len(), 1);
    assert_eq!(daily["items"][0]["id"], groups[0]["id"]);
    assert_eq!(daily["next_cursor"].is_string(), groups.len() > 1);
    assert_eq!(
        by_name(rs, "usage report, other origin").json()["items"],
        json!([])
    );
    // The account's log holds the key's events, newest first; the key
    // filter gives exactly the per-key route's page.
    let all = by_name(rs, "account events").json();
    let all = all["items"].as_array().unwrap();
    assert!(all.len() > ev["items"].as_array().unwrap().len());
    assert!(all.iter().all(|e| e["account_id"] == all[0]["account_id"]));
    let at = |e: &Value| {
        time::OffsetDateTime::parse(
            e["at"].as_str().unwrap(),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap()
    };
    assert!(all.windows(2).all(|w| at(&w[0]) >= at(&w[1])));
    assert_eq!(by_name(rs, "account events of a key").json(), ev);
    let all1 = by_name(rs, "account events, limit 1").json();
    assert_eq!(all1["items"].as_array().unwrap().len(), 1);
    assert!(all1["next_cursor"].is_string());
    let usage = by_name(rs, "usage").json();
    assert!(usage["items"].is_array());
    let login = by_name(rs, "login, headers").json();
    assert_eq!(login["token_type"], "Bearer");
    assert_eq!(login["expires_in"], 3600);
    assert!(login["token"].as_str().unwrap().starts_with("kw_st_"));
    assert!(login["expires_at"].is_string());
    assert_eq!(
        by_name(rs, "method not allowed").header("allow"),
        Some("POST, GET, HEAD")
    );
    // The store keeps microseconds, and the answer says so.
    assert_eq!(
        by_name(rs, "create, expiry with nanoseconds").json()["expires_at"],
        "2031-01-01T00:00:00.123456Z"
    );
    assert_eq!(
        by_name(rs, "takeover: rotate a stronger key").json()["message"],
        "the key has permissions the actor does not hold: readApplications, writeApplications"
    );
    assert_eq!(
        by_name(rs, "shed: clear own expiry").json()["field"],
        "expires_at"
    );
    assert_eq!(
        by_name(rs, "shed: mint a key for other networks").json(),
        json!({"error": "restriction_not_held", "message": "allowed_cidrs: 0.0.0.0/0 is outside the acting key's allowed networks", "field": "allowed_cidrs"})
    );
    assert_eq!(
        by_name(rs, "host admin rotates the protected key").json()["message"],
        "the key has permissions the actor does not hold: writeApplications"
    );
    assert!(
        by_name(rs, "create, duplicate JSON keys").json()["message"]
            .as_str()
            .unwrap()
            .contains("duplicate field `name`")
    );
    let s503 = by_name(rs, "openapi").json();
    assert_eq!(s503["openapi"], "3.1.0");
}

/// Flows that depend on order or time, and the 429/503 paths.
async fn run_flows<C: Client>(fx: &Fixture, c: &C) -> Vec<(&'static str, Resp)> {
    let mut out = Vec::new();
    let admin = fx.key("admin");
    // A new key, used, then a session, then deactivation.
    let created = c
        .send(
            req("POST", "/apikeys")
                .key(admin)
                .json(json!({"name": "flow", "permissions": ["readApplications"]})),
        )
        .await;
    assert_eq!(created.status, 201);
    let k = created.json();
    let cred = Cred {
        id: k["id"].as_str().unwrap().into(),
        secret: k["secret"].as_str().unwrap().into(),
    };
    assert_eq!(
        c.send(req("GET", "/applications").key(&cred)).await.status,
        200
    );
    let login = c.send(req("POST", "/auth/login").key(&cred)).await;
    assert_eq!(login.status, 200);
    let token = login.json()["token"].as_str().unwrap().to_owned();
    let who = c.send(req("GET", "/auth/whoami").bearer(&token)).await;
    assert_eq!(who.status, 200);
    assert!(
        who.json()["session_id"]
            .as_str()
            .unwrap()
            .starts_with("kw_ses_")
    );
    assert_eq!(
        c.send(req("GET", "/applications").bearer(&token))
            .await
            .status,
        200
    );
    let again = c.send(req("POST", "/auth/login").bearer(&token)).await;
    assert_eq!(again.status, 400, "login with a session: {}", again.text());
    // Logout ends the session at once.
    let out_ = c.send(req("POST", "/auth/logout").bearer(&token)).await;
    assert_eq!(out_.status, 204);
    assert!(out_.body.is_empty());
    let ended = c.send(req("GET", "/auth/whoami").bearer(&token)).await;
    assert_eq!(ended.status, 401);
    out.push(("ended session", ended));
    // A second session dies with the key's deactivation.
    let token2 = c.send(req("POST", "/auth/login").key(&cred)).await.json()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let deact = c
        .send(
            req("PATCH", format!("/apikeys/{}", cred.id))
                .key(admin)
                .json(json!({"status": "inactive"})),
        )
        .await;
    assert_eq!(deact.status, 200);
    let k401 = c.send(req("GET", "/applications").key(&cred)).await;
    assert_eq!(k401.status, 401);
    assert_eq!(k401.header("www-authenticate"), Some(INVALID_TOKEN));
    out.push(("deactivated key", k401));
    assert_eq!(
        c.send(req("GET", "/applications").bearer(&token2))
            .await
            .status,
        401
    );
    let list = c
        .send(req("GET", "/apikeys?status=inactive&q=flow").key(admin))
        .await;
    assert_eq!(list.json()["items"][0]["id"], cred.id.as_str());
    assert_eq!(list.json()["items"][0]["status"], "inactive");
    // Pagination: follow next_cursor to the end.
    let mut seen = 0;
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(cur) => format!("/apikeys?limit=3&cursor={cur}"),
            None => "/apikeys?limit=3".into(),
        };
        let page = c.send(req("GET", path).key(admin)).await.json();
        seen += page["items"].as_array().unwrap().len();
        match page["next_cursor"].as_str() {
            Some(cur) => cursor = Some(cur.to_owned()),
            None => break,
        }
    }
    let all = c
        .send(req("GET", "/apikeys?limit=100").key(admin))
        .await
        .json();
    assert_eq!(seen, all["items"].as_array().unwrap().len());
    // Too many failed attempts on a cold key: 429 with Retry-After.
    let limited = fx.key("limited");
    let wrong = Cred {
        id: limited.id.clone(),
        secret: admin.secret.clone(),
    };
    let mut last = None;
    for _ in 0..12 {
        let r = c.send(req("GET", "/auth/whoami").key(&wrong)).await;
        assert!(r.status == 401 || r.status == 429, "{}", r.status);
        last = Some(r);
    }
    let r429 = last.unwrap();
    assert_eq!(r429.status, 429);
    assert!(r429.header("retry-after").unwrap().parse::<u64>().unwrap() >= 1);
    assert_eq!(r429.json()["error"], "too_many_attempts");
    out.push(("429", r429));
    // A person the host signed in is recorded in the audit log; the
    // system's own events say so.
    let by_person = c
        .send(
            req("POST", "/apikeys")
                .header("x-test-user", "admin")
                .json(json!({"name": "person's", "permissions": []})),
        )
        .await;
    assert_eq!(by_person.status, 201, "{}", by_person.text());
    let pid = by_person.json()["id"].as_str().unwrap().to_owned();
    let rotated = c
        .send(req("POST", format!("/apikeys/{pid}/rotate")).header("x-test-user", "admin"))
        .await;
    assert_eq!(rotated.status, 200, "{}", rotated.text());
    let ev = c
        .send(req("GET", format!("/apikeys/{pid}/events")).header("x-test-user", "staff"))
        .await
        .json();
    let items = ev["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    for e in items {
        assert_eq!(
            e["actor"],
            json!({"kind": "user", "key_id": null, "session_id": null, "account_id": "acme", "user_id": "u-1", "user_name": "Ada Admin"}),
            "[{}]",
            C::NAME
        );
        assert_eq!(e["client_ip"], "203.0.113.7");
    }
    let ev = c
        .send(req("GET", format!("/apikeys/{}/events", fx.id("admin"))).key(admin))
        .await
        .json();
    let created = ev["items"].as_array().unwrap().last().unwrap();
    assert_eq!(created["action"], "key_created");
    assert_eq!(created["actor"]["kind"], "system");
    // Store down: 503 with Retry-After, nothing of the store error leaks.
    fx.store.set_unavailable(true);
    let r503 = c.send(req("GET", "/apikeys").key(admin)).await;
    fx.store.set_unavailable(false);
    assert_eq!(r503.status, 503);
    assert_eq!(r503.header("retry-after"), Some("5"));
    assert!(!r503.text().contains("memory"));
    assert_eq!(
        r503.body,
        br#"{"error":"unavailable","message":"the service is temporarily unavailable; retry later"}"#.to_vec()
    );
    out.push(("503", r503));
    // Sessions expire (manual clock).
    let token3 = c.send(req("POST", "/auth/login").key(admin)).await.json()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        c.send(req("GET", "/auth/whoami").bearer(&token3))
            .await
            .status,
        200
    );
    fx.clock.advance(Duration::hours(2));
    let expired = c.send(req("GET", "/auth/whoami").bearer(&token3)).await;
    assert_eq!(expired.status, 401);
    out.push(("expired session", expired));
    out
}

#[actix_web::test]
async fn same_contract_on_axum_and_actix() {
    let fx_axum = fixture().await;
    let axum_client = AxumClient(axum_app(&fx_axum.kw));
    let axum_rs = run_table(&fx_axum, &axum_client).await;
    check_bodies(&fx_axum, &axum_rs);
    let axum_flows = run_flows(&fx_axum, &axum_client).await;

    let fx_actix = fixture().await;
    let svc = actix_web::test::init_service(actix_app!(fx_actix.kw)).await;
    let actix_client = ActixClient(svc);
    let actix_rs = run_table(&fx_actix, &actix_client).await;
    check_bodies(&fx_actix, &actix_rs);
    let actix_flows = run_flows(&fx_actix, &actix_client).await;

    // Every error response is the same on both, byte for byte (success
    // bodies differ only by the generated ids, secrets and times).
    for ((name, a), (_, b)) in axum_rs
        .iter()
        .zip(&actix_rs)
        .chain(axum_flows.iter().zip(&actix_flows))
    {
        if a.status >= 400 {
            assert_eq!(a.contract(CONTRACT), b.contract(CONTRACT), "{name}");
        } else {
            assert_eq!(a.status, b.status, "{name}");
        }
    }
    // 401s of both frameworks are identical to each other too.
    assert_eq!(
        by_name(&axum_rs, "expired key").contract(CONTRACT),
        by_name(&actix_rs, "wrong secret").contract(CONTRACT)
    );
}

/// axum's `Authorized<P>` extractor answers exactly as the `require` layer
/// with the `Principal` extractor, rejections byte for byte.
#[tokio::test]
async fn axum_authorized_extractor_answers_like_the_require_layer() {
    let fx = fixture().await;
    let c = AxumClient(axum_app(&fx.kw));
    let admin = fx.key("admin");
    let wrong = Cred {
        id: admin.id.clone(),
        secret: fx.key("reader").secret.clone(),
    };
    let login = c
        .send(req("POST", "/auth/login").key(fx.key("reader")))
        .await;
    let token = login.json()["token"].as_str().unwrap().to_owned();
    let restricted = fx.key("restricted");
    let cases = [
        req("GET", "").key(fx.key("reader")),
        req("GET", "").bearer(&token),
        req("GET", "").key(fx.key("noperm")),
        req("GET", ""),
        req("GET", "").key(&wrong),
        req("GET", "").key(fx.key("inactive")),
        req("GET", "").key(fx.key("unknown")),
        req("GET", "").header("x-api-key", &admin.id),
        req("GET", "").key(admin).bearer(&token),
        req("GET", "").bearer("kw_st_nope"),
        req("GET", "").key(admin).header("x-account-id", "acme-eu"),
        req("GET", "").key(admin).header("x-account-id", "other"),
        req("GET", "")
            .key(admin)
            .header("x-account-id", "no spaces"),
        req("GET", "").key(restricted),
        req("GET", "")
            .key(restricted)
            .header("x-forwarded-for", "198.51.100.9, 10.0.0.2")
            .peer("10.0.0.1:5000"),
    ];
    let mut statuses = Vec::new();
    for r in cases {
        let mut layer = r.clone();
        layer.path = "/applications".to_owned();
        let mut app_state = r.clone();
        app_state.path = "/authorized-app-state".to_owned();
        let mut extractor = r;
        extractor.path = "/authorized".to_owned();
        let a = c.send(layer).await;
        let b = c.send(extractor).await;
        assert_eq!(
            a.contract(CONTRACT),
            b.contract(CONTRACT),
            "{} {}",
            a.status,
            a.text()
        );
        let d = c.send(app_state).await;
        assert_eq!(
            a.contract(CONTRACT),
            d.contract(CONTRACT),
            "{} {}",
            a.status,
            a.text()
        );
        statuses.push(a.status);
    }
    assert_eq!(
        statuses,
        [
            200, 200, 403, 401, 401, 401, 401, 400, 400, 401, 200, 403, 400, 401, 200
        ]
    );
}

#[test]
fn openapi_document_matches_the_routes() {
    let doc = keyward::http::openapi_document();
    let mut documented: Vec<(String, String)> = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            if ["get", "post", "patch", "delete", "put", "head", "options"]
                .contains(&method.as_str())
            {
                documented.push((method.to_uppercase(), path.clone()));
            }
        }
    }
    let mut served: Vec<(String, String)> = keyward::http::management_routes()
        .map(|(m, p)| (m.to_owned(), p.to_owned()))
        .collect();
    documented.sort();
    served.sort();
    assert_eq!(documented, served);
    // Every $ref resolves.
    let text = doc.to_string();
    for piece in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
        let name = piece.split('"').next().unwrap();
        assert!(doc["components"]["schemas"].get(name).is_some(), "{name}");
    }
}

/// The permission layers and the `Principal` extractor honour
/// `x-account-id` the same way on both frameworks, for a key verified on
/// the spot (cold, right after the fixture's clock moved past W) and for
/// one decided from the caches.
async fn acting_for_a_child_through_the_layer<C: Client>(c: &C, fx: &Fixture) {
    let reader = fx.key("reader");
    let acting_for = |account: &str| {
        req("GET", "/applications")
            .key(reader)
            .header("x-account-id", account)
    };
    for round in ["cold", "warm"] {
        let child = c.send(acting_for("acme-eu")).await;
        assert_eq!(child.status, 200, "[{}] {round}: {}", C::NAME, child.text());
        assert_eq!(
            child.text(),
            "applications of acme-eu",
            "[{}] {round}",
            C::NAME
        );
        let foreign = c.send(acting_for("other")).await;
        assert_eq!(foreign.status, 403, "[{}] {round}", C::NAME);
        assert_eq!(foreign.json()["error"], "account_not_allowed");
    }
}

#[actix_web::test]
async fn layers_act_for_a_child_account_on_both_frameworks() {
    let fx = fixture().await;
    acting_for_a_child_through_the_layer(&AxumClient(axum_app(&fx.kw)), &fx).await;
    let fx = fixture().await;
    let svc = actix_web::test::init_service(actix_app!(fx.kw)).await;
    acting_for_a_child_through_the_layer(&ActixClient(svc), &fx).await;
}

// ------------------------------------------------------------ applications

/// The applications flow (`/apps…`, `app_id` on keys): each step's status
/// and body, returned for the byte-for-byte comparison of the errors.
async fn app_flows<C: Client>(fx: &Fixture, c: &C) -> Vec<(&'static str, Resp)> {
    let mut out = Vec::new();
    let admin = fx.key("admin");
    let n = C::NAME;
    let mut step = |name: &'static str, r: Resp, status: u16| {
        assert_eq!(r.status, status, "[{n}] {name}: {}", r.text());
        if status == 422 {
            assert!(r.json()["field"].is_string(), "[{n}] {name}");
        }
        let v = r.json();
        out.push((name, r));
        v
    };
    // Create, with the body rules of the other routes.
    let app = step(
        "create app",
        c.send(
            req("POST", "/apps")
                .key(admin)
                .json(json!({"title": "Mobile", "description": "iOS and Android"})),
        )
        .await,
        201,
    );
    assert_eq!(app["title"], "Mobile");
    assert_eq!(app["description"], "iOS and Android");
    assert_eq!(app["status"], "active");
    assert_eq!(
        (app["active_keys"].as_u64(), app["inactive_keys"].as_u64()),
        (Some(0), Some(0))
    );
    assert!(app["id"].as_str().unwrap().starts_with("app_"));
    let app_id = app["id"].as_str().unwrap().to_owned();
    let r = c
        .send(
            req("POST", "/apps")
                .key(admin)
                .json(json!({"title": "x", "owner": "me"})),
        )
        .await;
    step("create app, unknown field", r, 400);
    let r = c
        .send(
            req("POST", "/apps")
                .key(admin)
                .json(json!({"description": "no title"})),
        )
        .await;
    assert_eq!(step("create app, no title", r, 422)["field"], "title");
    let r = c
        .send(
            req("POST", "/apps")
                .key(admin)
                .json(json!({"title": "a\u{202e}b"})),
        )
        .await;
    assert_eq!(
        step("create app, format character", r, 422)["field"],
        "title"
    );
    let r = c
        .send(req("POST", "/apps").key(admin).raw("text/plain", "title=x"))
        .await;
    step("create app, not JSON", r, 415);
    let r = c
        .send(
            req("POST", "/apps")
                .key(fx.key("reader"))
                .json(json!({"title": "x"})),
        )
        .await;
    assert_eq!(
        step("create app, reader", r, 403)["error"],
        "insufficient_scope"
    );
    // Two credentials in it; one individually off.
    let mut creds = Vec::new();
    for name in ["m1", "m2"] {
        let r =
            c.send(req("POST", "/apikeys").key(admin).json(
                json!({"name": name, "permissions": ["readApplications"], "app_id": app_id}),
            ))
            .await;
        let k = step("create key in app", r, 201);
        assert_eq!(k["app_id"], app_id.as_str());
        let single = k["key"].as_str().unwrap();
        assert!(single.starts_with("kw_ak_"), "{single}");
        let (id, secret) = keyward::split_key(fx.kw.prefix(), single).unwrap();
        assert_eq!(
            (id.as_str(), secret.expose()),
            (k["id"].as_str().unwrap(), k["secret"].as_str().unwrap())
        );
        creds.push(Cred {
            id: k["id"].as_str().unwrap().into(),
            secret: k["secret"].as_str().unwrap().into(),
        });
    }
    let (m1, m2) = (&creds[0], &creds[1]);
    let r = c
        .send(
            req("PATCH", format!("/apikeys/{}", m2.id))
                .key(admin)
                .json(json!({"status": "inactive"})),
        )
        .await;
    step("key off", r, 200);
    let r = c
        .send(
            req("POST", "/apikeys")
                .key(admin)
                .json(json!({"name": "x", "permissions": [], "app_id": "app_nope"})),
        )
        .await;
    assert_eq!(step("create key, unknown app", r, 422)["field"], "app_id");
    let r = c
        .send(
            req("POST", "/apikeys")
                .key(admin)
                .json(json!({"name": "x", "permissions": [], "app_id": "bad id!"})),
        )
        .await;
    assert_eq!(
        step("create key, malformed app id", r, 422)["field"],
        "app_id"
    );
    // List its keys; read it with its counts; list applications.
    let r = c
        .send(req("GET", format!("/apikeys?app_id={app_id}")).key(admin))
        .await;
    let listed = step("list keys of app", r, 200);
    let mut ids: Vec<&str> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["id"].as_str().unwrap())
        .collect();
    ids.sort_unstable();
    let mut want = [m1.id.as_str(), m2.id.as_str()];
    want.sort_unstable();
    assert_eq!(ids, want);
    let got = step(
        "get app",
        c.send(req("GET", format!("/apps/{app_id}")).key(fx.key("reader")))
            .await,
        200,
    );
    assert_eq!(
        (got["active_keys"].as_u64(), got["inactive_keys"].as_u64()),
        (Some(1), Some(1))
    );
    let page = step(
        "list apps",
        c.send(req("GET", "/apps?q=MOB&status=active").key(admin))
            .await,
        200,
    );
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert_eq!(page["next_cursor"], Value::Null);
    step(
        "list apps, bad status",
        c.send(req("GET", "/apps?status=off").key(admin)).await,
        422,
    );
    step(
        "list apps, bad limit",
        c.send(req("GET", "/apps?limit=0").key(admin)).await,
        422,
    );
    step(
        "list apps, unknown parameter",
        c.send(req("GET", "/apps?owner=me").key(admin)).await,
        400,
    );
    step(
        "get app, unknown",
        c.send(req("GET", "/apps/app_nope").key(admin)).await,
        404,
    );
    step(
        "apps, method not allowed",
        c.send(req("PUT", "/apps").key(admin)).await,
        405,
    );
    // A key without every permission of the app's keys cannot switch it.
    let r = c
        .send(
            req("PATCH", format!("/apps/{app_id}"))
                .key(fx.key("writer"))
                .json(json!({"status": "inactive"})),
        )
        .await;
    assert_eq!(
        step("app off, weaker writer", r, 403)["error"],
        "permission_not_held"
    );
    step(
        "app patch, bad status",
        c.send(
            req("PATCH", format!("/apps/{app_id}"))
                .key(admin)
                .json(json!({"status": "off"})),
        )
        .await,
        422,
    );
    // Switch it off: both keys and the session 401 at once, one event.
    let token = c.send(req("POST", "/auth/login").key(m1)).await.json()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    step(
        "m1 before",
        c.send(req("GET", "/applications").key(m1)).await,
        200,
    );
    let before = fx
        .kw
        .events(
            Actor::System,
            &AccountId::new("acme").unwrap(),
            None,
            100,
            None,
        )
        .await
        .unwrap()
        .items;
    let off = step(
        "app off",
        c.send(
            req("PATCH", format!("/apps/{app_id}"))
                .key(admin)
                .json(json!({"status": "inactive"})),
        )
        .await,
        200,
    );
    assert_eq!(off["status"], "inactive");
    assert!(off["effective_by"].is_string());
    let after = fx
        .kw
        .events(
            Actor::System,
            &AccountId::new("acme").unwrap(),
            None,
            100,
            None,
        )
        .await
        .unwrap()
        .items;
    assert_eq!(after.len(), before.len() + 1);
    assert_eq!(after[0].action, keyward::AuditAction::AppDeactivated);
    let inactive_key = c
        .send(req("GET", "/applications").key(fx.key("inactive")))
        .await;
    for (name, r) in [
        (
            "m1, app off",
            c.send(req("GET", "/applications").key(m1)).await,
        ),
        (
            "m2, app off",
            c.send(req("GET", "/applications").key(m2)).await,
        ),
        (
            "session, app off",
            c.send(req("GET", "/applications").bearer(&token)).await,
        ),
    ] {
        if name != "session, app off" {
            assert_eq!(
                r.contract(CONTRACT),
                inactive_key.contract(CONTRACT),
                "[{n}] {name}: not the inactive key's 401"
            );
        }
        step(name, r, 401);
    }
    // Back on: the key that was active works again, the other stays off.
    let on = step(
        "app on",
        c.send(
            req("PATCH", format!("/apps/{app_id}"))
                .key(admin)
                .json(json!({"status": "active"})),
        )
        .await,
        200,
    );
    assert!(on.get("effective_by").is_none());
    step(
        "m1, app on",
        c.send(req("GET", "/applications").key(m1)).await,
        200,
    );
    step(
        "m2, app on",
        c.send(req("GET", "/applications").key(m2)).await,
        401,
    );
    step(
        "session, app on",
        c.send(req("GET", "/applications").bearer(&token)).await,
        401,
    );
    // Rotation carries the single-string key too.
    let rot = step(
        "rotate m1",
        c.send(req("POST", format!("/apikeys/{}/rotate", m1.id)).key(admin))
            .await,
        200,
    );
    assert!(rot["key"].as_str().unwrap().starts_with("kw_ak_"));
    // Delete: 409 while it has keys, then with its keys.
    let r = c
        .send(req("DELETE", format!("/apps/{app_id}")).key(admin))
        .await;
    assert_eq!(
        step("delete app with keys", r, 409)["error"],
        "app_has_keys"
    );
    step(
        "delete app, bad cascade",
        c.send(req("DELETE", format!("/apps/{app_id}?cascade=yes")).key(admin))
            .await,
        422,
    );
    let d = step(
        "delete app, cascade",
        c.send(req("DELETE", format!("/apps/{app_id}?cascade=true")).key(admin))
            .await,
        200,
    );
    assert_eq!(d["deleted_keys"].as_array().unwrap().len(), 2);
    step(
        "get deleted app",
        c.send(req("GET", format!("/apps/{app_id}")).key(admin))
            .await,
        404,
    );
    step(
        "m1, app deleted",
        c.send(req("GET", "/applications").key(m1)).await,
        401,
    );
    // Another account's application is not found.
    let foreign = step(
        "create foreign app",
        c.send(
            req("POST", "/apps")
                .key(fx.key("foreign"))
                .json(json!({"title": "Theirs"})),
        )
        .await,
        201,
    );
    let foreign_id = foreign["id"].as_str().unwrap();
    step(
        "get foreign app",
        c.send(req("GET", format!("/apps/{foreign_id}")).key(admin))
            .await,
        404,
    );
    step(
        "patch foreign app",
        c.send(
            req("PATCH", format!("/apps/{foreign_id}"))
                .key(admin)
                .json(json!({"title": "mine"})),
        )
        .await,
        404,
    );
    out
}

#[actix_web::test]
async fn applications_answer_alike_on_axum_and_actix() {
    let fx = fixture().await;
    let axum_rs = app_flows(&fx, &AxumClient(axum_app(&fx.kw))).await;
    let fx = fixture().await;
    let svc = actix_web::test::init_service(actix_app!(fx.kw)).await;
    let actix_rs = app_flows(&fx, &ActixClient(svc)).await;
    assert_eq!(axum_rs.len(), actix_rs.len());
    for ((name, a), (_, b)) in axum_rs.iter().zip(&actix_rs) {
        if a.status >= 400 {
            assert_eq!(a.contract(CONTRACT), b.contract(CONTRACT), "{name}");
        } else {
            assert_eq!(a.status, b.status, "{name}");
        }
    }
}

/// `writeApiKeys` implies `readApiKeys` in axum's `Authorized<P>` as in the
/// `require` layer and the management routes.
#[tokio::test]
async fn axum_authorized_honours_write_implies_read() {
    let fx = fixture().await;
    let c = AxumClient(axum_app(&fx.kw));
    let ok = c
        .send(req("GET", "/authorized-keys").key(fx.key("wonly")))
        .await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert_eq!(ok.text(), "keys of acme");
    let no = c
        .send(req("GET", "/authorized-keys").key(fx.key("victim")))
        .await;
    assert_eq!(no.status, 403);
    let layer = c
        .send(req("GET", "/keys-reader").key(fx.key("victim")))
        .await;
    assert_eq!(no.contract(CONTRACT), layer.contract(CONTRACT));
}

// ---------------------------------------------------------- the seed flows

/// The seeds' "API Management" flows end to end (issue 12's "Done when"):
/// an application with two credentials switched off and on, a customer
/// account with an inherited key, narrowed and switched off.
async fn seed_flows<C: Client>(fx: &Fixture, c: &C) -> Vec<(&'static str, Resp)> {
    let n = C::NAME;
    let mut out = Vec::new();
    let mut step = |name: &'static str, r: Resp, status: u16| {
        assert_eq!(r.status, status, "[{n}] {name}: {}", r.text());
        let v = r.json();
        out.push((name, r));
        v
    };
    // A vendor account whose admin manages keys and customer accounts.
    let vendor = AccountId::new("vendor").unwrap();
    let all = [
        "readApiKeys",
        "writeApiKeys",
        "readAccounts",
        "writeAccounts",
        "readApplications",
        "writeApplications",
    ];
    fx.kw
        .create_account(
            Actor::System,
            NewAccount::new("Vendor", perms(&all)).id(vendor),
        )
        .await
        .unwrap();
    let admin = issue(
        &fx.kw,
        &vendor,
        NewKey::new("admin").permissions(perms(&all)),
    )
    .await;
    let acct = |c: &Cred| req("GET", "/auth/whoami").key(c);

    // Create New App: title and description.
    let app = step(
        "seed: create app",
        c.send(
            req("POST", "/apps")
                .key(&admin)
                .json(json!({"title": "Dashboard", "description": "the customer dashboard"})),
        )
        .await,
        201,
    );
    let app_id = app["id"].as_str().unwrap().to_owned();
    // Multiple credentials per application.
    let mut creds = Vec::new();
    for name in ["web", "batch", "worker"] {
        let k = step(
            "seed: add credential",
            c.send(req("POST", "/apikeys").key(&admin).json(
                json!({"name": name, "permissions": ["readApplications"], "app_id": app_id}),
            ))
            .await,
            201,
        );
        creds.push(Cred {
            id: k["id"].as_str().unwrap().into(),
            secret: k["secret"].as_str().unwrap().into(),
        });
    }
    let (web, batch, worker) = (&creds[0], &creds[1], &creds[2]);
    let listed = step(
        "seed: list its keys",
        c.send(req("GET", format!("/apikeys?app_id={app_id}")).key(&admin))
            .await,
        200,
    );
    assert_eq!(listed["items"].as_array().unwrap().len(), 3);
    // One credential switched off on its own first.
    step(
        "seed: batch off",
        c.send(
            req("PATCH", format!("/apikeys/{}", batch.id))
                .key(&admin)
                .json(json!({"status": "inactive"})),
        )
        .await,
        200,
    );
    step(
        "seed: web works",
        c.send(req("GET", "/applications").key(web)).await,
        200,
    );
    // Application off: both 401 at once, one audit event, effective_by.
    let before = fx
        .kw
        .events(Actor::System, &vendor, None, 100, None)
        .await
        .unwrap()
        .items
        .len();
    let off = step(
        "seed: app off",
        c.send(
            req("PATCH", format!("/apps/{app_id}"))
                .key(&admin)
                .json(json!({"status": "inactive"})),
        )
        .await,
        200,
    );
    assert!(off["effective_by"].is_string());
    let events = fx
        .kw
        .events(Actor::System, &vendor, None, 100, None)
        .await
        .unwrap()
        .items;
    assert_eq!(events.len(), before + 1, "[{n}] one audit event");
    step(
        "seed: web, app off",
        c.send(req("GET", "/applications").key(web)).await,
        401,
    );
    step(
        "seed: worker, app off",
        c.send(req("GET", "/applications").key(worker)).await,
        401,
    );
    step(
        "seed: batch, app off",
        c.send(req("GET", "/applications").key(batch)).await,
        401,
    );
    // On again: the active key verifies; the one off before stays off.
    step(
        "seed: app on",
        c.send(
            req("PATCH", format!("/apps/{app_id}"))
                .key(&admin)
                .json(json!({"status": "active"})),
        )
        .await,
        200,
    );
    step(
        "seed: web, app on",
        c.send(req("GET", "/applications").key(web)).await,
        200,
    );
    step(
        "seed: worker, app on",
        c.send(req("GET", "/applications").key(worker)).await,
        200,
    );
    step(
        "seed: batch, app on",
        c.send(req("GET", "/applications").key(batch)).await,
        401,
    );
    // A key for browsers: 200 from its origin, the same 401 from another.
    let k = step(
        "seed: browser key",
        c.send(req("POST", "/apikeys").key(&admin).json(json!({
            "name": "spa",
            "permissions": ["readApplications"],
            "allowed_origins": ["https://app.example.com"]
        })))
        .await,
        201,
    );
    let spa = Cred {
        id: k["id"].as_str().unwrap().into(),
        secret: k["secret"].as_str().unwrap().into(),
    };
    step(
        "seed: browser key, its origin",
        c.send(
            req("GET", "/applications")
                .key(&spa)
                .header("origin", "https://app.example.com"),
        )
        .await,
        200,
    );
    let other = c
        .send(
            req("GET", "/applications")
                .key(&spa)
                .header("origin", "https://other.example.com"),
        )
        .await;
    let inactive = c.send(req("GET", "/applications").key(batch)).await;
    assert_eq!(
        other.body, inactive.body,
        "[{n}] the same 401 as an inactive key"
    );
    step("seed: browser key, another origin", other, 401);

    // A customer account, a child of the vendor.
    let child = step(
        "seed: create customer",
        c.send(req("POST", "/accounts").key(&admin).json(
            json!({"name": "Globex", "permissions": ["readApplications", "writeApplications"]}),
        ))
        .await,
        201,
    );
    let child_id = child["id"].as_str().unwrap().to_owned();
    assert_eq!(child["parent"], "vendor");
    let list = step(
        "seed: list customers",
        c.send(req("GET", "/accounts?q=glob").key(&admin)).await,
        200,
    );
    assert_eq!(list["items"][0]["id"], child_id.as_str());
    // A key for it, acting with x-account-id, without permissions: it
    // inherits what the admin may grant there.
    let k = step(
        "seed: customer key inherits",
        c.send(
            req("POST", "/apikeys")
                .key(&admin)
                .header("x-account-id", &child_id)
                .json(json!({"name": "globex-prod"})),
        )
        .await,
        201,
    );
    assert_eq!(k["account_id"], child_id.as_str());
    assert_eq!(
        k["permissions"],
        json!(["readApplications", "writeApplications"])
    );
    let customer = Cred {
        id: k["id"].as_str().unwrap().into(),
        secret: k["secret"].as_str().unwrap().into(),
    };
    let who = step("seed: customer key", c.send(acct(&customer)).await, 200);
    assert_eq!(
        who["permissions"],
        json!(["readApplications", "writeApplications"])
    );
    // Narrow the customer: its key loses the permission.
    let narrowed = step(
        "seed: narrow customer",
        c.send(
            req("PATCH", format!("/accounts/{child_id}"))
                .key(&admin)
                .json(json!({"permissions": ["readApplications"]})),
        )
        .await,
        200,
    );
    assert!(narrowed["effective_by"].is_string());
    let who = step(
        "seed: customer key, narrowed",
        c.send(acct(&customer)).await,
        200,
    );
    assert_eq!(who["permissions"], json!(["readApplications"]));
    // Switch the customer off: its key 401.
    step(
        "seed: customer off",
        c.send(
            req("PATCH", format!("/accounts/{child_id}"))
                .key(&admin)
                .json(json!({"status": "inactive"})),
        )
        .await,
        200,
    );
    step(
        "seed: customer key, customer off",
        c.send(acct(&customer)).await,
        401,
    );
    // The rules of the other routes.
    step(
        "seed: customers need readAccounts",
        c.send(req("GET", "/accounts").key(fx.key("admin"))).await,
        403,
    );
    step(
        "seed: customer, unknown field",
        c.send(
            req("POST", "/accounts")
                .key(&admin)
                .json(json!({"name": "x", "permissions": [], "parent": "other"})),
        )
        .await,
        400,
    );
    step(
        "seed: customer, no permissions",
        c.send(
            req("POST", "/accounts")
                .key(&admin)
                .json(json!({"name": "x"})),
        )
        .await,
        422,
    );
    step(
        "seed: customer, bad status",
        c.send(
            req("PATCH", format!("/accounts/{child_id}"))
                .key(&admin)
                .json(json!({"status": "gone"})),
        )
        .await,
        422,
    );
    step(
        "seed: not a child",
        c.send(req("GET", "/accounts/acme").key(&admin)).await,
        404,
    );
    step(
        "seed: patch own account",
        c.send(
            req("PATCH", "/accounts/vendor")
                .key(&admin)
                .json(json!({"name": "mine"})),
        )
        .await,
        404,
    );
    step(
        "seed: accounts, method not allowed",
        c.send(req("DELETE", "/accounts/vendor").key(&admin)).await,
        405,
    );

    // The management API from browsers: its own origin, listed origins.
    let from = |origin: &str, r: Req| r.header("host", "keyward.test").header("origin", origin);
    let r = c
        .send(from(
            "https://evil.example",
            req("GET", "/apikeys").key(&admin),
        ))
        .await;
    assert_eq!(
        step("seed: unlisted origin", r, 403)["error"],
        "origin_not_allowed"
    );
    let r = c
        .send(from(
            "https://keyward.test",
            req("GET", "/apikeys").key(&admin),
        ))
        .await;
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://keyward.test")
    );
    step("seed: own origin", r, 200);
    let list = step(
        "seed: allowlist",
        c.send(req("GET", "/allowlist").key(&admin)).await,
        200,
    );
    assert_eq!(list["items"][0]["id"], "orig_self");
    assert_eq!(list["items"][0]["protected"], true);
    let r = c
        .send(req("DELETE", "/allowlist/orig_self").key(&admin))
        .await;
    assert_eq!(
        step("seed: delete the default entry", r, 409)["error"],
        "protected"
    );
    let added = step(
        "seed: allow the console",
        c.send(
            req("POST", "/allowlist")
                .key(&admin)
                .json(json!({"origin": "https://Console.Example.com:443"})),
        )
        .await,
        201,
    );
    assert_eq!(added["origin"], "https://console.example.com");
    let entry = added["id"].as_str().unwrap().to_owned();
    step(
        "seed: allow it twice",
        c.send(
            req("POST", "/allowlist")
                .key(&admin)
                .json(json!({"origin": "https://console.example.com"})),
        )
        .await,
        422,
    );
    step(
        "seed: allow a path",
        c.send(
            req("POST", "/allowlist")
                .key(&admin)
                .json(json!({"origin": "https://x.example/admin"})),
        )
        .await,
        422,
    );
    step(
        "seed: allowlist, reader",
        c.send(
            req("POST", "/allowlist")
                .key(fx.key("reader"))
                .json(json!({"origin": "https://x.example"})),
        )
        .await,
        403,
    );
    let r = c
        .send(from(
            "https://console.example.com",
            req("GET", "/apikeys").key(&admin),
        ))
        .await;
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://console.example.com")
    );
    assert_eq!(r.header("vary"), Some("Origin"));
    step("seed: listed origin", r, 200);
    let pre = |origin: &str| {
        from(
            origin,
            req("OPTIONS", "/apikeys").header("access-control-request-method", "POST"),
        )
    };
    let r = c.send(pre("https://console.example.com")).await;
    assert_eq!(
        r.header("access-control-allow-methods"),
        Some("POST, GET, HEAD")
    );
    assert!(
        r.header("access-control-allow-headers")
            .unwrap()
            .contains("x-api-secret")
    );
    step("seed: preflight, listed", r, 204);
    step(
        "seed: preflight, unlisted",
        c.send(pre("https://evil.example")).await,
        403,
    );
    step(
        "seed: unlist the console",
        c.send(req("DELETE", format!("/allowlist/{entry}")).key(&admin))
            .await,
        200,
    );
    step(
        "seed: unlisted again",
        c.send(from(
            "https://console.example.com",
            req("GET", "/apikeys").key(&admin),
        ))
        .await,
        403,
    );
    step(
        "seed: unlist twice",
        c.send(req("DELETE", format!("/allowlist/{entry}")).key(&admin))
            .await,
        404,
    );
    step(
        "seed: no Origin, no gate",
        c.send(req("GET", "/apikeys").key(&admin)).await,
        200,
    );
    out
}

// ------------------------------------------------- sessions that stay dead

/// A new key of `admin`'s account with `extra` fields, created over HTTP.
async fn created_key<C: Client>(c: &C, admin: &Cred, name: &str, extra: Value) -> Cred {
    let mut body = json!({"name": name, "permissions": ["readApplications"]});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    let r = c.send(req("POST", "/apikeys").key(admin).json(body)).await;
    assert_eq!(r.status, 201, "[{}] create {name}: {}", C::NAME, r.text());
    let k = r.json();
    Cred {
        id: k["id"].as_str().unwrap().into(),
        secret: k["secret"].as_str().unwrap().into(),
    }
}

/// A session token opened over HTTP with `cred`'s headers.
async fn session_of<C: Client>(c: &C, cred: &Cred) -> String {
    let r = c.send(req("POST", "/auth/login").key(cred)).await;
    assert_eq!(r.status, 200, "[{}] login: {}", C::NAME, r.text());
    r.json()["token"].as_str().unwrap().to_owned()
}

/// `PATCH /apikeys/{id}` as `admin`; the answer must be 200.
async fn patched<C: Client>(c: &C, admin: &Cred, id: &str, body: Value) -> Value {
    let r = c
        .send(
            req("PATCH", format!("/apikeys/{id}"))
                .key(admin)
                .json(body.clone()),
        )
        .await;
    assert_eq!(r.status, 200, "[{}] PATCH {body}: {}", C::NAME, r.text());
    r.json()
}

/// Issue 10, failures 3 and 4, over HTTP: a session opened with the old
/// secret during a grace period ends with the grace; deactivating then
/// reactivating a key, or letting it expire then clearing its expiry,
/// revives none of its sessions (each dead session answers the same 401 as
/// a logged-out one), while new logins work. Time moves by the fixture's
/// manual clock.
async fn run_dead_session_flows<C: Client>(fx: &Fixture, c: &C) -> Vec<(&'static str, Resp)> {
    let mut out = Vec::new();
    let admin = fx.key("admin");
    let whoami = |t: &str| c.send(req("GET", "/auth/whoami").bearer(t));
    let apps = |t: &str| c.send(req("GET", "/applications").bearer(t));
    // The reference: a session ended by logout.
    let ended = session_of(c, admin).await;
    let bye = c.send(req("POST", "/auth/logout").bearer(&ended)).await;
    assert_eq!(bye.status, 204);
    let reference = whoami(&ended).await;
    assert_eq!(reference.status, 401);
    assert_eq!(reference.header("www-authenticate"), Some(INVALID_TOKEN));
    out.push(("logged-out session", reference.clone()));
    let mut dead = |name: &'static str, r: Resp| {
        assert_eq!(r.status, 401, "[{}] {name}: {}", C::NAME, r.text());
        assert_eq!(
            r.contract(CONTRACT),
            reference.contract(CONTRACT),
            "[{}] {name}",
            C::NAME
        );
        out.push((name, r));
    };

    // 1. Rotation with a 3 s grace: a session opened with the old secret
    // during the grace ends when the grace does.
    let old = created_key(c, admin, "graceful", json!({})).await;
    let before = session_of(c, &old).await;
    let rot = c
        .send(
            req("POST", format!("/apikeys/{}/rotate", old.id))
                .key(admin)
                .json(json!({"grace_period_seconds": 3})),
        )
        .await;
    assert_eq!(rot.status, 200, "[{}] rotate: {}", C::NAME, rot.text());
    let new = Cred {
        id: old.id.clone(),
        secret: rot.json()["secret"].as_str().unwrap().to_owned(),
    };
    let during = session_of(c, &old).await;
    let fresh = session_of(c, &new).await;
    for t in [&before, &during, &fresh] {
        assert_eq!(whoami(t).await.status, 200, "[{}] in the grace", C::NAME);
    }
    fx.clock.advance(Duration::seconds(4));
    dead("old-secret session after the grace", whoami(&during).await);
    dead(
        "old-secret session after the grace, layer",
        apps(&during).await,
    );
    dead(
        "pre-rotation session after the grace",
        whoami(&before).await,
    );
    let r = whoami(&fresh).await;
    assert_eq!(
        r.status,
        200,
        "[{}] new-secret session: {}",
        C::NAME,
        r.text()
    );
    let r = c.send(req("POST", "/auth/login").key(&old)).await;
    assert_eq!(r.status, 401, "[{}] old secret after the grace", C::NAME);

    // 2. Deactivate, reactivate: the old session stays dead.
    let toggled = created_key(c, admin, "toggled", json!({})).await;
    let s = session_of(c, &toggled).await;
    assert_eq!(whoami(&s).await.status, 200);
    let off = patched(c, admin, &toggled.id, json!({"status": "inactive"})).await;
    assert_eq!(off["status"], "inactive");
    dead("session of a deactivated key", whoami(&s).await);
    let on = patched(c, admin, &toggled.id, json!({"status": "active"})).await;
    assert_eq!(on["status"], "active");
    dead("session after reactivation", whoami(&s).await);
    dead("session after reactivation, layer", apps(&s).await);
    let r = c.send(req("GET", "/applications").key(&toggled)).await;
    assert_eq!(r.status, 200, "[{}] reactivated key: {}", C::NAME, r.text());
    let again = session_of(c, &toggled).await;
    let r = whoami(&again).await;
    assert_eq!(r.status, 200, "[{}] new session: {}", C::NAME, r.text());
    assert_eq!(r.json()["key_id"], toggled.id.as_str());

    // 3. Expire, clear the expiry: the old session stays dead.
    let at = (fx.kw.now() + Duration::minutes(1))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let expiring = created_key(c, admin, "expiring", json!({"expires_at": at})).await;
    let s = session_of(c, &expiring).await;
    assert_eq!(whoami(&s).await.status, 200);
    fx.clock.advance(Duration::minutes(2));
    dead("session of an expired key", whoami(&s).await);
    let r = c.send(req("POST", "/auth/login").key(&expiring)).await;
    assert_eq!(r.status, 401, "[{}] expired key logs in", C::NAME);
    let cleared = patched(c, admin, &expiring.id, json!({"expires_at": null})).await;
    assert!(cleared["expires_at"].is_null());
    dead("session after the expiry was cleared", whoami(&s).await);
    dead(
        "session after the expiry was cleared, layer",
        apps(&s).await,
    );
    let again = session_of(c, &expiring).await;
    let r = whoami(&again).await;
    assert_eq!(r.status, 200, "[{}] new session: {}", C::NAME, r.text());
    assert_eq!(r.json()["key_id"], expiring.id.as_str());
    out
}

#[actix_web::test]
async fn seed_flows_on_axum_and_actix() {
    let fx = fixture().await;
    let axum_rs = seed_flows(&fx, &AxumClient(axum_app(&fx.kw))).await;
    let fx = fixture().await;
    let svc = actix_web::test::init_service(actix_app!(fx.kw)).await;
    let actix_rs = seed_flows(&fx, &ActixClient(svc)).await;
    assert_eq!(axum_rs.len(), actix_rs.len());
    let cors = |r: &Resp| {
        let mut h: Vec<_> = r
            .headers
            .iter()
            .filter(|(k, _)| k.starts_with("access-control-") || k == "vary")
            .cloned()
            .collect();
        h.sort();
        h
    };
    for ((name, a), (_, b)) in axum_rs.iter().zip(&actix_rs) {
        assert_eq!(cors(a), cors(b), "{name}");
        if a.status >= 400 {
            assert_eq!(a.contract(CONTRACT), b.contract(CONTRACT), "{name}");
        } else {
            assert_eq!(a.status, b.status, "{name}");
        }
    }
}

#[actix_web::test]
async fn sessions_stay_dead_on_axum_and_actix() {
    let fx = fixture().await;
    let axum_rs = run_dead_session_flows(&fx, &AxumClient(axum_app(&fx.kw))).await;
    let fx = fixture().await;
    let svc = actix_web::test::init_service(actix_app!(fx.kw)).await;
    let actix_rs = run_dead_session_flows(&fx, &ActixClient(svc)).await;
    assert_eq!(axum_rs.len(), actix_rs.len());
    assert_eq!(axum_rs.len(), 10);
    for ((name, a), (other, b)) in axum_rs.iter().zip(&actix_rs) {
        assert_eq!(name, other);
        assert_eq!(a.contract(CONTRACT), b.contract(CONTRACT), "{name}");
    }
}
