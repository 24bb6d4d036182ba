//! [`connect`]: open a store from a URL.
//!
//! Temporary version on the `http` branch: only `memory:` is supported
//! here; the full version (sqlite, postgres, memory) replaces this file.

use std::sync::Arc;

use super::{KeyStore, MemoryStore, StoreError};

/// Opens the store named by `url`. This build supports `memory:` only.
///
/// # Errors
/// [`StoreError::Backend`] for an unsupported URL.
pub fn connect(url: &str) -> Result<Arc<dyn KeyStore>, StoreError> {
    if url == "memory:" || url.starts_with("memory:") {
        return Ok(Arc::new(MemoryStore::new()));
    }
    let scheme = url.split(':').next().unwrap_or_default();
    Err(StoreError::Backend(
        format!("unsupported store URL scheme {scheme:?}: this build supports only memory:").into(),
    ))
}
