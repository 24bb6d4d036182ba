//! Migration 0004 on a database holding keys from before applications:
//! every distinct `application` label of an account becomes one active
//! application titled with it, and its keys belong to it. Run on SQLite
//! and (with `KEYWARD_TEST_POSTGRES_URL`) on PostgreSQL, each from the
//! migration files themselves.
#![cfg(all(feature = "sqlite", feature = "postgres"))]
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "store_support/mod.rs"]
mod common;

use std::collections::BTreeMap;

use keyward::AppId;

/// The migration files of `backend` before (`true`) or from (`false`) 0004.
fn migrations(backend: &str, before: bool) -> Vec<String> {
    let dir = format!("{}/migrations/{backend}", env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name.as_str() < "0004") == before && name.ends_with(".sql")
        })
        .collect();
    files.sort();
    files
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect()
}

/// Keys before the migration: (id, account, label, status).
const KEYS: &[(&str, &str, Option<&str>, &str)] = &[
    ("kw_a1", "acct_a", Some("billing"), "active"),
    ("kw_a2", "acct_a", Some("billing"), "inactive"),
    ("kw_a3", "acct_a", Some("web"), "active"),
    ("kw_a4", "acct_a", None, "active"),
    ("kw_b1", "acct_b", Some("billing"), "active"),
];

/// Checks the migrated rows: (key id, key account, key app id) and
/// (app id, app account, title, status).
fn check(keys: Vec<(String, String, Option<String>)>, apps: Vec<(String, String, String, String)>) {
    assert_eq!(
        apps.len(),
        3,
        "one application per label and account: {apps:?}"
    );
    let by_id: BTreeMap<_, _> = apps
        .iter()
        .map(|(id, account, title, status)| {
            (id.clone(), (account.clone(), title.clone(), status.clone()))
        })
        .collect();
    for (id, _, _, _) in &apps {
        AppId::new(id).expect("a migrated id is a valid application id");
    }
    for (id, account, app) in &keys {
        let (_, _, label, _) = KEYS.iter().find(|k| k.0 == id).unwrap();
        match (label, app) {
            (None, None) => {}
            (Some(label), Some(app)) => {
                let (app_account, title, status) = &by_id[app];
                assert_eq!(
                    (app_account, title.as_str(), status.as_str()),
                    (account, *label, "active"),
                    "{id}"
                );
            }
            other => panic!("{id}: label and app_id disagree: {other:?}"),
        }
    }
    let app_of = |k: &str| keys.iter().find(|r| r.0 == k).unwrap().2.clone();
    assert_eq!(
        app_of("kw_a1"),
        app_of("kw_a2"),
        "one label, one application"
    );
    assert_ne!(
        app_of("kw_a1"),
        app_of("kw_b1"),
        "the same label in another account"
    );
    assert_ne!(app_of("kw_a1"), app_of("kw_a3"));
}

#[tokio::test]
async fn sqlite_labels_become_applications() {
    use sqlx::Connection;
    let mut c = sqlx::SqliteConnection::connect("sqlite::memory:")
        .await
        .unwrap();
    for m in migrations("sqlite", true) {
        sqlx::raw_sql(sqlx::AssertSqlSafe(m))
            .execute(&mut c)
            .await
            .unwrap();
    }
    for (i, (id, account, label, status)) in KEYS.iter().enumerate() {
        sqlx::query(
            "INSERT INTO keys (id, account_id, name, name_lower, description, application, \
             permissions, status, protected, created_at, updated_at, allowed_cidrs, metadata, \
             secret_hash, generation, version) \
             VALUES (?, ?, 'k', 'k', '', ?, '[]', ?, 0, ?, ?, '[]', '{}', 'x', 0, 1)",
        )
        .bind(id)
        .bind(account)
        .bind(label)
        .bind(status)
        .bind(i as i64)
        .bind(i as i64)
        .execute(&mut c)
        .await
        .unwrap();
    }
    for m in migrations("sqlite", false) {
        sqlx::raw_sql(sqlx::AssertSqlSafe(m))
            .execute(&mut c)
            .await
            .unwrap();
    }
    let keys: Vec<(String, String, Option<String>)> =
        sqlx::query_as("SELECT id, account_id, app_id FROM keys")
            .fetch_all(&mut c)
            .await
            .unwrap();
    let apps: Vec<(String, String, String, String)> =
        sqlx::query_as("SELECT id, account_id, title, status FROM apps")
            .fetch_all(&mut c)
            .await
            .unwrap();
    check(keys, apps);
}

#[tokio::test]
async fn postgres_labels_become_applications() {
    use sqlx::Connection;
    let Some(url) = common::pg_url() else { return };
    let schema = common::schema_name();
    let mut c = sqlx::PgConnection::connect(&url).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE SCHEMA \"{schema}\"; SET search_path TO \"{schema}\""
    )))
    .execute(&mut c)
    .await
    .unwrap();
    for m in migrations("postgres", true) {
        sqlx::raw_sql(sqlx::AssertSqlSafe(m))
            .execute(&mut c)
            .await
            .unwrap();
    }
    for (i, (id, account, label, status)) in KEYS.iter().enumerate() {
        sqlx::query(
            "INSERT INTO keys (id, account_id, name, name_lower, description, application, \
             permissions, status, protected, created_at, updated_at, allowed_cidrs, metadata, \
             secret_hash, generation, version) \
             VALUES ($1, $2, 'k', 'k', '', $3, '[]', $4, false, \
             to_timestamp($5), to_timestamp($5), '[]', '{}', 'x', 0, 1)",
        )
        .bind(id)
        .bind(account)
        .bind(label)
        .bind(status)
        .bind(i as f64)
        .execute(&mut c)
        .await
        .unwrap();
    }
    for m in migrations("postgres", false) {
        sqlx::raw_sql(sqlx::AssertSqlSafe(m))
            .execute(&mut c)
            .await
            .unwrap();
    }
    let keys: Vec<(String, String, Option<String>)> =
        sqlx::query_as("SELECT id, account_id, app_id FROM keys")
            .fetch_all(&mut c)
            .await
            .unwrap();
    let apps: Vec<(String, String, String, String)> =
        sqlx::query_as("SELECT id, account_id, title, status FROM apps")
            .fetch_all(&mut c)
            .await
            .unwrap();
    let _ = c.close().await;
    common::drop_schema(&url, &schema).await;
    check(keys, apps);
}
