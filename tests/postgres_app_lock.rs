//! PostgreSQL: a key written into an application serializes with that
//! application's switch-off. The switch-off locks the application's row
//! `FOR UPDATE` and then compares the keys it judged; a key moved (or
//! created) into the application holds the row `FOR SHARE`, so it waits
//! for a switch-off in progress and is never disarmed by one that did not
//! see it (issue 12).
#![cfg(feature = "postgres")]

#[path = "store_support/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::Duration;

use keyward::{Actor, KeyUpdate, NewApp, NewKey};
use sqlx::Connection;

/// Opens a transaction on `conn` holding the application's row
/// `FOR UPDATE`, as the store's `update_app` holds it until it commits.
async fn begin_switch_off(conn: &mut sqlx::PgConnection, app: &keyward::AppId) {
    sqlx::query("BEGIN")
        .execute(&mut *conn)
        .await
        .expect("begin");
    sqlx::query("SELECT status FROM apps WHERE id = $1 FOR UPDATE")
        .bind(app.as_str())
        .fetch_one(&mut *conn)
        .await
        .expect("lock");
}

#[tokio::test]
async fn a_key_moved_into_an_app_waits_for_its_switch_off_in_progress() {
    let Some(url) = common::pg_url() else { return };
    let schema = common::schema_name();
    let store = common::pg_store(&url, &schema, |o| o).await;
    let kw = common::service(Arc::new(store), None, 30);
    let (account, key) = common::account_and_key(&kw).await;
    let app = kw
        .create_app(Actor::System, &account.id, NewApp::new("Dashboard"))
        .await
        .expect("app");

    // A switch-off in progress: the application's row locked FOR UPDATE,
    // as the store's update_app holds it until it commits.
    let mut switch_off = sqlx::PgConnection::connect(&url).await.expect("connect");
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SET search_path TO \"{schema}\""
    )))
    .execute(&mut switch_off)
    .await
    .expect("search path");
    begin_switch_off(&mut switch_off, &app.id).await;

    let mover = kw.clone();
    let id = key.key.id;
    let app_id = app.id;
    let moved = tokio::spawn(async move {
        mover
            .update_key(Actor::System, &id, KeyUpdate::new().app(Some(app_id)))
            .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !moved.is_finished(),
        "the move must wait while the application's row is locked by a switch-off"
    );

    sqlx::query("COMMIT")
        .execute(&mut switch_off)
        .await
        .expect("commit");
    let moved = tokio::time::timeout(Duration::from_secs(10), moved)
        .await
        .expect("the move finishes once the switch-off committed")
        .expect("task");
    assert_eq!(moved.expect("moved").key.app_id, Some(app.id));

    // A key created into the application takes the same lock.
    begin_switch_off(&mut switch_off, &app.id).await;
    let creator = kw.clone();
    let account_id = account.id;
    let created = tokio::spawn(async move {
        creator
            .issue_key(
                Actor::System,
                &account_id,
                NewKey::new("second").app(app_id),
            )
            .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !created.is_finished(),
        "the creation waits for the switch-off"
    );
    sqlx::query("ROLLBACK")
        .execute(&mut switch_off)
        .await
        .expect("rollback");
    let created = tokio::time::timeout(Duration::from_secs(10), created)
        .await
        .expect("the creation finishes")
        .expect("task")
        .expect("created");
    assert_eq!(created.key.app_id, Some(app.id));
    let _ = switch_off.close().await;
    common::drop_schema(&url, &schema).await;
}
