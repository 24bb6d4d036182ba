//! A gRPC server (tonic) whose calls keyward authenticates, on the
//! embedded SQLite store (`KEYWARD_DATABASE_URL`, default
//! `sqlite://keyward.db`), listening on `KEYWARD_ADDR` (default
//! `127.0.0.1:50051`).
//!
//! ```sh
//! cargo run --example tonic_server --features tower
//! ```
//!
//! On first start it creates the `greeter` account and prints a key
//! holding `readGreetings` once. Clients send it as gRPC metadata,
//! `authorization: Bearer kw_ak_…` (the single-string form) or
//! `x-api-key` + `x-api-secret`:
//!
//! With the service's `.proto` (in `greeter.rs`'s docs) saved as
//! `greeter.proto`:
//!
//! ```sh
//! grpcurl -plaintext -H 'authorization: Bearer kw_ak_…' -d '{"name":"you"}' \
//!   -proto greeter.proto 127.0.0.1:50051 keyward.example.Greeter/SayHello
//! ```
//!
//! A fresh key's first call reads the store and runs argon2 (the layer's
//! cold path, awaited without blocking the server); later calls are
//! decided from keyward's caches. No credentials or a wrong key get
//! `UNAUTHENTICATED`, a key without `readGreetings` `PERMISSION_DENIED`.

mod greeter;

use keyward::http::KeywardHttp;
use keyward::{AccountId, Keyward, PermissionSet};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
    let url =
        std::env::var("KEYWARD_DATABASE_URL").unwrap_or_else(|_| "sqlite://keyward.db".into());
    let store = keyward::store::connect(&url).await?;
    let kw = Keyward::builder().shared_store(store).build()?;
    first_start(&kw).await?;
    let addr = std::env::var("KEYWARD_ADDR").unwrap_or_else(|_| "127.0.0.1:50051".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    tracing::info!(addr = %listener.local_addr()?, "gRPC listening");
    let http = KeywardHttp::new(kw.clone());
    greeter::serve(&http, listener, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    kw.shutdown().await?;
    Ok(())
}

/// Without a `greeter` account: creates it and a key for it, and prints
/// the key once in its single-string form (its secret is kept nowhere).
async fn first_start(kw: &Keyward) -> Result<(), Box<dyn std::error::Error>> {
    let account = AccountId::new("greeter")?;
    let perms = PermissionSet::parse([greeter::PERMISSION])?;
    let Some(issued) = kw.bootstrap_admin(&account, perms).await? else {
        tracing::info!("account greeter exists; no key printed");
        return Ok(());
    };
    let single = keyward::combine_key(kw.prefix(), &issued.key.id, &issued.secret)?;
    println!("keyward: first start; a key for the greeter (shown once, store it now):");
    println!("  authorization: Bearer {}", single.expose());
    Ok(())
}
