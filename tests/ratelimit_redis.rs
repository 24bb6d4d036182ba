//! Rate limits shared through Redis (feature `redis`): two instances on one
//! PostgreSQL database and one Redis share a key's limit of 5 per minute
//! (8 calls over both: exactly 5 succeed) and an account's limit across
//! two keys; credits run out at the same count whichever instance serves;
//! a Redis stopped and started mid-test (a `redis-server` of the test's
//! own, never the shared one) follows the configured policy — fail-open to
//! the local share, fail-closed with 503 `limits_unavailable`, the same
//! bytes on axum and actix — and both recover without a restart.
//!
//! Needs `KEYWARD_TEST_REDIS_URL` (and `KEYWARD_TEST_POSTGRES_URL` for the
//! shared-database cases); unset they print `skipped:`, under `CI=true`
//! they fail. Every test uses a key prefix of its own.

mod store_support;

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration as StdDuration;

use keyward::store::KeyStore;
use keyward::{
    Actor, Credits, Error, IssuedKey, Keyward, Label, LimitOwner, Limits, ManualClock, MemoryStore,
    NewAccount, RateLimit, RedisLimits, VerifyContext,
};
use store_support::{FAST_HASH, drop_schema, issue, perms, pg_store, pg_url, schema_name};

/// The shared test Redis; `None` (after printing why) when unset, unless
/// `CI=true`.
fn redis_url() -> Option<String> {
    match std::env::var("KEYWARD_TEST_REDIS_URL") {
        Ok(u) if !u.is_empty() => Some(u),
        _ => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "KEYWARD_TEST_REDIS_URL must be set in CI"
            );
            println!("skipped: KEYWARD_TEST_REDIS_URL not set");
            None
        }
    }
}

/// A key prefix no other test (or run) uses.
fn prefix() -> String {
    format!("keyward:test:{:016x}", rand::random::<u64>())
}

async fn limits(url: &str, prefix: &str) -> RedisLimits {
    RedisLimits::connect(url)
        .await
        .expect("redis")
        .key_prefix(prefix)
}

fn instance(store: Arc<dyn KeyStore>, limits: RedisLimits, clock: Option<&ManualClock>) -> Keyward {
    let b = Keyward::builder()
        .shared_store(store)
        .hash_params(FAST_HASH)
        .propagation_window(time::Duration::hours(1))
        .flush_interval(None)
        .redis_limits(limits);
    match clock {
        Some(c) => b.clock(c.clone()),
        None => b,
    }
    .build()
    .expect("build")
}

fn requests(limit: u32) -> RateLimit {
    RateLimit::new(Label::from_static("requests"), limit, 60_000)
}

async fn call(kw: &Keyward, k: &IssuedKey) -> keyward::Result<()> {
    kw.verify(k.key.id.as_str(), k.secret.expose(), VerifyContext::new())
        .await
        .map(|_| ())
}

/// Two instances on one fresh PostgreSQL schema and the shared Redis.
struct Shared {
    url: String,
    schema: String,
    a: Keyward,
    b: Keyward,
}

impl Shared {
    async fn new() -> Option<Self> {
        let redis = redis_url()?;
        let url = pg_url()?;
        let schema = schema_name();
        let prefix = prefix();
        let store: Arc<dyn KeyStore> = Arc::new(pg_store(&url, &schema, |o| o).await);
        let a = instance(Arc::clone(&store), limits(&redis, &prefix).await, None);
        let store_b: Arc<dyn KeyStore> = Arc::new(pg_store(&url, &schema, |o| o).await);
        let b = instance(store_b, limits(&redis, &prefix).await, None);
        Some(Self { url, schema, a, b })
    }

    async fn end(self) {
        drop_schema(&self.url, &self.schema).await;
    }
}

#[tokio::test]
async fn two_instances_share_a_key_limit_of_five_per_minute() {
    let Some(s) = Shared::new().await else { return };
    let (_, k) = store_support::account_and_key(&s.a).await;
    s.a.set_limits(
        Actor::System,
        &LimitOwner::Key(k.key.id),
        Limits::new().ratelimit(requests(5)),
    )
    .await
    .expect("limits");
    let mut ok = 0;
    for i in 0..8 {
        let kw = if i % 2 == 0 { &s.a } else { &s.b };
        match call(kw, &k).await {
            Ok(()) => ok += 1,
            Err(Error::RateLimited { status, .. }) => assert_eq!(status.name.as_str(), "requests"),
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!(ok, 5, "one limit of 5 over both instances");
    s.end().await;
}

#[tokio::test]
async fn an_account_limit_holds_across_two_keys_and_instances() {
    let Some(s) = Shared::new().await else { return };
    let account =
        s.a.create_account(Actor::System, NewAccount::new("Acme", perms()))
            .await
            .expect("account");
    // Set before the keys are read anywhere (a change to an account's
    // limits reaches keys already cached within W).
    s.a.set_limits(
        Actor::System,
        &LimitOwner::Account(account.id),
        Limits::new().ratelimit(requests(5)),
    )
    .await
    .expect("limits");
    let k1 = issue(&s.a, &account.id, "first").await;
    let k2 = issue(&s.a, &account.id, "second").await;
    let mut ok = 0;
    for i in 0..8 {
        let kw = if i % 2 == 0 { &s.a } else { &s.b };
        let k = if i < 4 { &k1 } else { &k2 };
        match call(kw, k).await {
            Ok(()) => ok += 1,
            Err(Error::RateLimited { .. }) => {}
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!(ok, 5, "minting a second key buys no more calls");
    s.end().await;
}

#[tokio::test]
async fn credits_run_out_at_the_same_count_whichever_instance_serves() {
    let Some(s) = Shared::new().await else { return };
    let (_, k) = store_support::account_and_key(&s.a).await;
    let owner = LimitOwner::Key(k.key.id);
    s.a.set_limits(
        Actor::System,
        &owner,
        Limits::new()
            .ratelimit(requests(100))
            .credits(Credits::new(5)),
    )
    .await
    .expect("limits");
    let mut ok = 0;
    for i in 0..8 {
        // The batch flush (here before every call) writes what each spent
        // and reads the durable count back.
        s.a.flush().await.expect("flush");
        s.b.flush().await.expect("flush");
        let kw = if i % 3 == 0 { &s.a } else { &s.b };
        match call(kw, &k).await {
            Ok(()) => ok += 1,
            Err(Error::UsageExceeded) => {}
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!(ok, 5);
    s.a.flush().await.expect("flush");
    s.b.flush().await.expect("flush");
    let stored = s.b.limits(Actor::System, &owner).await.expect("read");
    assert_eq!(stored.credits.map(|c| c.remaining), Some(0));
    s.end().await;
}

/// A `redis-server` of the test's own on a free port, stopped and started
/// at will and killed on drop.
struct OwnRedis {
    port: u16,
    child: Option<Child>,
}

impl OwnRedis {
    fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let mut r = Self { port, child: None };
        r.up();
        r
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn up(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (install redis, see DEVELOPERS.md)");
        self.child = Some(child);
        for _ in 0..500 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(StdDuration::from_millis(10));
        }
        panic!("redis-server did not start on port {}", self.port);
    }

    fn down(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.down();
    }
}

/// One instance on a memory store, its limits in `redis`, with a manual
/// clock (the retry period after a failure passes by advancing it).
async fn outage_instance(
    redis: &OwnRedis,
    policy: impl FnOnce(RedisLimits) -> RedisLimits,
) -> (Keyward, ManualClock, IssuedKey) {
    let clock = ManualClock::default();
    let limits = limits(&redis.url(), &prefix())
        .await
        .instances(2)
        .timeout(StdDuration::from_millis(500))
        .retry_after_failure(StdDuration::from_secs(1));
    let kw = instance(Arc::new(MemoryStore::new()), policy(limits), Some(&clock));
    let account = kw
        .create_account(Actor::System, NewAccount::new("Acme", perms()))
        .await
        .expect("account");
    let k = issue(&kw, &account.id, "k").await;
    kw.set_limits(
        Actor::System,
        &LimitOwner::Key(k.key.id),
        Limits::new().ratelimit(requests(10)),
    )
    .await
    .expect("limits");
    (kw, clock, k)
}

/// How many keys the Redis at `url` holds.
async fn redis_keys(url: &str) -> usize {
    let client = redis::Client::open(url).expect("url");
    let Ok(mut c) = client.get_multiplexed_async_connection().await else {
        return 0;
    };
    redis::cmd("DBSIZE")
        .query_async::<usize>(&mut c)
        .await
        .unwrap_or(0)
}

/// Calls until one is admitted through Redis again (the restarted Redis,
/// empty before, then holds the limit's cell): the clock passes the retry
/// period before each attempt, the connection manager reconnects
/// meanwhile; bounded. A call the local share admits does not count.
async fn until_recovered(kw: &Keyward, clock: &ManualClock, k: &IssuedKey, url: &str) {
    for _ in 0..100 {
        clock.advance(time::Duration::milliseconds(1100));
        if call(kw, k).await.is_ok() && redis_keys(url).await > 0 {
            return;
        }
        tokio::time::sleep(StdDuration::from_millis(50)).await;
    }
    panic!("no recovery after Redis came back");
}

/// Counts calls accepted before the first refusal (at most `max`).
async fn admitted(kw: &Keyward, k: &IssuedKey, max: u32) -> (u32, Option<Error>) {
    for n in 0..max {
        if let Err(e) = call(kw, k).await {
            return (n, Some(e));
        }
    }
    (max, None)
}

#[tokio::test]
async fn fail_open_follows_the_local_share_and_recovers_without_restart() {
    if redis_url().is_none() {
        return;
    }
    let mut redis = OwnRedis::start();
    let (kw, clock, k) = outage_instance(&redis, RedisLimits::fail_open).await;
    // Shared: 2 of the 10 spent in Redis.
    for _ in 0..2 {
        call(&kw, &k).await.expect("shared call");
    }
    redis.down();
    // Down: the local share, 10 / 2 instances = 5, then refusals.
    let (n, refusal) = admitted(&kw, &k, 20).await;
    assert_eq!(n, 5, "fail-open admits the local share");
    assert!(
        matches!(refusal, Some(Error::RateLimited { .. })),
        "{refusal:?}"
    );
    redis.up();
    until_recovered(&kw, &clock, &k, &redis.url()).await;
    // Shared again: the restarted Redis kept nothing, so the full limit
    // (beyond the spent local share) is admitted: 10 in all.
    let (n, refusal) = admitted(&kw, &k, 20).await;
    assert_eq!(n + 1, 10, "the shared limit again, not the local share");
    assert!(
        matches!(refusal, Some(Error::RateLimited { .. })),
        "{refusal:?}"
    );
}

#[tokio::test]
async fn fail_closed_refuses_with_503_on_both_frameworks_and_recovers() {
    if redis_url().is_none() {
        return;
    }
    let mut redis = OwnRedis::start();
    let (kw, clock, k) = outage_instance(&redis, RedisLimits::fail_closed).await;
    call(&kw, &k).await.expect("shared call");
    redis.down();
    assert!(matches!(call(&kw, &k).await, Err(Error::LimitsUnavailable)));
    // Within the retry period: refused at once, Redis not asked.
    assert!(matches!(call(&kw, &k).await, Err(Error::LimitsUnavailable)));
    let (ax, ac) = http_answers(&kw, &k).await;
    assert_eq!(ax.0, 503);
    let json: serde_json::Value = serde_json::from_slice(&ax.2).expect("json");
    assert_eq!(json["error"], "limits_unavailable");
    assert_eq!(ax, ac, "the same answer on axum and actix");
    // A wrong secret is still a 401, not a 503 (limits apply only after
    // the secret is proved).
    let wrong = kw
        .verify(
            k.key.id.as_str(),
            "kw_sk_not-the-secret",
            VerifyContext::new(),
        )
        .await;
    assert!(
        matches!(wrong, Err(Error::Unauthorized | Error::Malformed(_))),
        "{wrong:?}"
    );
    redis.up();
    until_recovered(&kw, &clock, &k, &redis.url()).await;
    let (n, _) = admitted(&kw, &k, 20).await;
    assert_eq!(n + 1, 10, "the shared limit again");
}

type Resp = (u16, Vec<(String, String)>, Vec<u8>);

/// One request to a protected route on axum and one on actix, both served
/// by `kw`: status, content-type and retry-after, body.
async fn http_answers(kw: &Keyward, k: &IssuedKey) -> (Resp, Resp) {
    use tower::ServiceExt;
    async fn who(p: keyward::Principal) -> String {
        p.key_id().to_string()
    }
    let keep = |name: &str| matches!(name, "content-type" | "retry-after");
    let app = axum::Router::new()
        .route("/who", axum::routing::get(who))
        .with_state(keyward::http::KeywardHttp::new(kw.clone()));
    let req = axum::http::Request::builder()
        .uri("/who")
        .header("x-api-key", k.key.id.as_str())
        .header("x-api-secret", k.secret.expose())
        .body(axum::body::Body::empty())
        .expect("request");
    let res = app.oneshot(req).await.expect("response");
    let mut headers: Vec<_> = res
        .headers()
        .iter()
        .filter(|(n, _)| keep(n.as_str()))
        .map(|(n, v)| {
            (
                n.to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    headers.sort();
    let status = res.status().as_u16();
    let body = axum::body::to_bytes(res.into_body(), usize::MAX)
        .await
        .expect("body")
        .to_vec();
    let axum_answer = (status, headers, body);

    let actix = actix_web::test::init_service(
        actix_web::App::new()
            .app_data(actix_web::web::Data::new(keyward::http::KeywardHttp::new(
                kw.clone(),
            )))
            .route("/who", actix_web::web::get().to(who)),
    )
    .await;
    let req = actix_web::test::TestRequest::get()
        .uri("/who")
        .insert_header(("x-api-key", k.key.id.as_str()))
        .insert_header(("x-api-secret", k.secret.expose()))
        .to_request();
    let res = actix_web::test::call_service(&actix, req).await;
    let mut headers: Vec<_> = res
        .headers()
        .iter()
        .filter(|(n, _)| keep(n.as_str()))
        .map(|(n, v)| {
            (
                n.to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    headers.sort();
    let status = res.status().as_u16();
    let body = actix_web::test::read_body(res).await.to_vec();
    (axum_answer, (status, headers, body))
}
