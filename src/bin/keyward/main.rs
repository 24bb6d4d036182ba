//! `keyward`: the ops CLI (feature `cli`). Opens the store named by
//! `--database-url` / `KEYWARD_DATABASE_URL` (migrating it), then acts as
//! the application itself (`Actor::System`). See `keyward --help` for the
//! commands and the exit codes.

mod apps;
mod args;
mod commands;
mod exit;
mod import;
mod output;

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use keyward::Keyward;
use keyward::store::KeyStore;

use args::Cli;
use exit::{CliResult, Failure, OK};
use output::Out;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("keyward: error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::from(OK),
        Err(e) => {
            eprintln!("keyward: error: {e}");
            e.exit_code()
        }
    }
}

async fn run(cli: Cli) -> CliResult {
    let store = open(&cli.database_url).await?;
    let mut builder = Keyward::builder().shared_store(store).flush_interval(None);
    if let Some(p) = cli.prefix {
        builder = builder.prefix(p);
    }
    if let Some(p) = &cli.legacy_prefix {
        let legacy = match cli.legacy_id_len {
            Some(n) => keyward::LegacyKeys::leading(p, n),
            None => keyward::LegacyKeys::sha256(p),
        };
        builder = builder.legacy_keys(legacy.map_err(|e| Failure::Input(e.to_string()))?);
    }
    let kw = builder
        .build()
        .map_err(|e| Failure::Input(format!("invalid configuration: {e}")))?;
    let result = commands::run(&kw, cli.command, Out { json: cli.json }).await;
    let closed = kw.shutdown().await;
    result?;
    Ok(closed?)
}

/// The store at `url`, migrated; PostgreSQL without its change feed (a
/// one-shot command caches nothing).
async fn open(url: &str) -> CliResult<Arc<dyn KeyStore>> {
    #[cfg(feature = "postgres")]
    if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        let options = keyward::store::PostgresOptions::new()
            .feed(false)
            .max_connections(2)
            .application_name("keyward-cli");
        let store = keyward::store::PostgresStore::connect_with(url, options).await?;
        return Ok(Arc::new(store));
    }
    Ok(keyward::store::connect(url).await?)
}
