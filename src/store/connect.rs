//! [`connect`]: a store from a URL.

use std::sync::Arc;

use super::{KeyStore, MemoryStore, StoreError, StoreResult};

/// Opens the store named by `url`:
///
/// - `sqlite://path/to/file.db` or `sqlite::memory:` — [`SqliteStore`](super::SqliteStore)
///   (feature `sqlite`, on by default);
/// - `postgres://…` or `postgresql://…` — [`PostgresStore`](super::PostgresStore)
///   (feature `postgres`), with its change feed;
/// - `memory:` — a fresh [`MemoryStore`].
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let store = keyward::store::connect("memory:").await?;
/// let kw = keyward::Keyward::builder().shared_store(store).build()?;
/// # Ok::<_, Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
///
/// # Errors
/// [`StoreError::Backend`] for an unknown scheme or a store whose feature
/// is not enabled (the message says which), and whatever the store's own
/// `connect` reports.
pub async fn connect(url: &str) -> StoreResult<Arc<dyn KeyStore>> {
    let scheme = url.split_once(':').map_or("", |(s, _)| s);
    match scheme.to_ascii_lowercase().as_str() {
        "memory" => Ok(Arc::new(MemoryStore::new())),
        "sqlite" => sqlite(url).await,
        "postgres" | "postgresql" => postgres(url).await,
        _ => Err(StoreError::Backend(
            format!(
                "unknown store URL scheme {scheme:?}: expected sqlite:, postgres:, postgresql: or memory:"
            )
            .into(),
        )),
    }
}

#[cfg(feature = "sqlite")]
async fn sqlite(url: &str) -> StoreResult<Arc<dyn KeyStore>> {
    Ok(Arc::new(super::SqliteStore::connect(url).await?))
}

#[cfg(not(feature = "sqlite"))]
async fn sqlite(_url: &str) -> StoreResult<Arc<dyn KeyStore>> {
    Err(StoreError::Backend(
        "sqlite: URLs need keyward's \"sqlite\" feature".into(),
    ))
}

#[cfg(feature = "postgres")]
async fn postgres(url: &str) -> StoreResult<Arc<dyn KeyStore>> {
    Ok(Arc::new(super::PostgresStore::connect(url).await?))
}

#[cfg(not(feature = "postgres"))]
async fn postgres(_url: &str) -> StoreResult<Arc<dyn KeyStore>> {
    Err(StoreError::Backend(
        "postgres: URLs need keyward's \"postgres\" feature".into(),
    ))
}
