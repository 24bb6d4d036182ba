//! The store conformance suite on [`SqliteStore`], each case on a fresh
//! database file.

use keyward::store::SqliteStore;

struct TempStore {
    store: SqliteStore,
    _dir: tempfile::TempDir,
}

impl keyward::store::conformance::AsStore for TempStore {
    fn as_store(&self) -> &dyn keyward::store::KeyStore {
        &self.store
    }
}

async fn fresh() -> TempStore {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("keyward.db").display());
    let store = SqliteStore::connect(&url).await.expect("connect");
    TempStore { store, _dir: dir }
}

keyward::store_conformance_tests!(fresh());

mod in_memory {
    use keyward::store::SqliteStore;
    keyward::store_conformance_tests!(async {
        SqliteStore::connect("sqlite::memory:")
            .await
            .expect("connect")
    });
}
