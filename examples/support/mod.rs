//! Shared by the example servers: configuration, first-start bootstrap,
//! the demo application store, shutdown signal.

use std::collections::HashMap;
use std::error::Error;
use std::sync::{Arc, Mutex};

use keyward::{AccountId, Keyward, PermissionSet};

pub(crate) mod host_login;

/// The well-known id of the admin account created on first start.
pub(crate) const ADMIN_ACCOUNT: &str = "admin";

/// What the bootstrap admin (and the demo host's Admin person) may do.
pub(crate) const ADMIN_PERMISSIONS: &[&str] = &[
    "readApiKeys",
    "writeApiKeys",
    "readAccounts",
    "writeAccounts",
    "readApplications",
    "writeApplications",
];

/// `KEYWARD_DATABASE_URL` (default `sqlite://keyward.db`).
pub(crate) fn database_url() -> String {
    std::env::var("KEYWARD_DATABASE_URL").unwrap_or_else(|_| "sqlite://keyward.db".into())
}

/// `KEYWARD_ADDR` (default `127.0.0.1:3000`).
pub(crate) fn listen_addr() -> String {
    std::env::var("KEYWARD_ADDR").unwrap_or_else(|_| "127.0.0.1:3000".into())
}

/// How long a connection may take to send a whole request head:
/// `KEYWARD_HEADER_READ_TIMEOUT_SECS`, 1–10 s (default 10). Longer is
/// refused: slowloris clients hold connections open with partial headers.
pub(crate) fn header_read_timeout() -> std::time::Duration {
    let secs = std::env::var("KEYWARD_HEADER_READ_TIMEOUT_SECS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(10)
        .clamp(1, 10);
    std::time::Duration::from_secs(secs)
}

/// Logs to stderr, `RUST_LOG` or `info`.
pub(crate) fn init_tracing() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
}

/// Opens the store and builds the service; with `KEYWARD_REDIS_URL` set
/// (feature `redis`), rate limits are shared through that Redis by every
/// instance (fail-open; `KEYWARD_REDIS_FAIL_CLOSED=1` for 503s while it
/// is unreachable, `KEYWARD_INSTANCES` the expected instance count).
pub(crate) async fn keyward() -> Result<Keyward, Box<dyn Error>> {
    let url = database_url();
    let store = keyward::store::connect(&url).await?;
    tracing::info!(store = %url.split('?').next().unwrap_or_default(), "store opened");
    let builder = Keyward::builder().shared_store(store);
    let redis = std::env::var("KEYWARD_REDIS_URL")
        .ok()
        .filter(|u| !u.is_empty());
    #[cfg(feature = "redis")]
    let builder = match redis {
        Some(url) => {
            let mut limits = keyward::RedisLimits::connect(&url).await?;
            if let Some(n) = std::env::var("KEYWARD_INSTANCES")
                .ok()
                .and_then(|n| n.parse().ok())
            {
                limits = limits.instances(n);
            }
            if std::env::var("KEYWARD_REDIS_FAIL_CLOSED").as_deref() == Ok("1") {
                limits = limits.fail_closed();
            }
            tracing::info!(?limits, "rate limits shared through Redis");
            builder.redis_limits(limits)
        }
        None => builder,
    };
    #[cfg(not(feature = "redis"))]
    if redis.is_some() {
        return Err("KEYWARD_REDIS_URL is set: build the example with feature `redis`".into());
    }
    Ok(builder.build()?)
}

/// On first start (no `admin` account): creates it with every permission
/// the demo uses and a protected admin key, prints the key id and secret
/// once on stdout and writes them to `KEYWARD_ADMIN_CREDENTIALS` when set.
/// Later starts print nothing secret. The account and the key are two
/// writes: a start that finds the account without any key (the first start
/// stopped in between) issues the key then.
pub(crate) async fn bootstrap(kw: &Keyward) -> Result<(), Box<dyn Error>> {
    let admin = AccountId::new(ADMIN_ACCOUNT)?;
    let perms = PermissionSet::parse(ADMIN_PERMISSIONS.iter().copied())?;
    let Some(issued) = kw.bootstrap_admin(&admin, perms).await? else {
        tracing::info!("admin account exists; no credentials printed");
        return Ok(());
    };
    println!("keyward: first start; admin key (shown once, store it now):");
    println!("  x-api-key:    {}", issued.key.id);
    println!("  x-api-secret: {}", issued.secret.expose());
    if let Ok(path) = std::env::var("KEYWARD_ADMIN_CREDENTIALS") {
        let json = serde_json::json!({ "id": issued.key.id, "secret": issued.secret.expose() });
        write_private(&path, &serde_json::to_vec_pretty(&json)?)?;
        tracing::info!(path = %path, "admin credentials written");
    }
    Ok(())
}

fn write_private(path: &str, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    opts.open(path)?.write_all(bytes)
}

/// The demo's "applications", per account.
#[derive(Debug, Clone, Default)]
pub(crate) struct Applications(Arc<Mutex<HashMap<AccountId, Vec<String>>>>);

impl Applications {
    /// The account's applications.
    pub(crate) fn list(&self, account: &AccountId) -> Vec<String> {
        let g = self.0.lock().unwrap_or_else(|e| e.into_inner());
        g.get(account).cloned().unwrap_or_default()
    }

    /// Adds one.
    pub(crate) fn add(&self, account: &AccountId, name: String) {
        let mut g = self.0.lock().unwrap_or_else(|e| e.into_inner());
        g.entry(*account).or_default().push(name);
    }
}

/// The demo `POST /mcp` answer: what an MCP tool call in front of the API
/// would return (the caller's account), counted as origin `mcp`.
pub(crate) fn mcp_answer(p: &keyward::Principal) -> serde_json::Value {
    serde_json::json!({ "origin": "mcp", "account_id": p.account_id() })
}

/// Body of `POST /applications`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewApplication {
    /// The application's name.
    pub(crate) name: String,
}

/// With feature `metrics`: installs the Prometheus recorder (and its
/// upkeep task) that `GET /metrics` renders.
#[cfg(feature = "metrics")]
pub(crate) fn install_metrics()
-> Result<metrics_exporter_prometheus::PrometheusHandle, Box<dyn Error>> {
    let handle = metrics_exporter_prometheus::PrometheusBuilder::new().install_recorder()?;
    let upkeep = handle.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(std::time::Duration::from_secs(5)).await;
            upkeep.run_upkeep();
        }
    });
    Ok(handle)
}
