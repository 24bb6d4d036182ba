//! The store conformance suite on [`PostgresStore`], each case in its own
//! schema (dropped after the case). Needs `KEYWARD_TEST_POSTGRES_URL`.

#[path = "store_support/mod.rs"]
mod common;

use keyward::store::{PostgresOptions, PostgresStore};

struct SchemaStore {
    store: PostgresStore,
    url: String,
    schema: String,
}

impl keyward::store::conformance::AsStore for SchemaStore {
    fn as_store(&self) -> &dyn keyward::store::KeyStore {
        &self.store
    }
}

async fn fresh() -> Option<SchemaStore> {
    let url = common::pg_url()?;
    let schema = common::schema_name();
    let store = PostgresStore::connect_with(
        &url,
        PostgresOptions::new()
            .schema(&schema)
            .max_connections(4)
            .feed(false),
    )
    .await
    .expect("connect");
    Some(SchemaStore { store, url, schema })
}

keyward::store_conformance_tests!(
    fresh(),
    teardown = |s: SchemaStore| async move {
        s.store.close().await;
        common::drop_schema(&s.url, &s.schema).await;
    }
);
