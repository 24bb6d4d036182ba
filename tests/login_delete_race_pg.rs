//! On PostgreSQL, logins racing a key's deletion leave no orphan session
//! rows: a login's session is committed while its key exists (and is then
//! deleted with it) or refused. Needs
//! `KEYWARD_TEST_POSTGRES_URL`.
#![cfg(feature = "postgres")]

#[path = "store_support/mod.rs"]
mod common;

use std::sync::Arc;

use keyward::{Actor, Error, VerifyContext};
use sqlx::Connection;

const ROUNDS: usize = 20;
const LOGINS: usize = 8;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn logins_racing_a_delete_leave_no_orphan_sessions() {
    let Some(url) = common::pg_url() else { return };
    let schema = common::schema_name();
    let store = common::pg_store(&url, &schema, |o| o.max_connections(12)).await;
    let kw = common::service(Arc::new(store), None, 30);
    let (account, _) = common::account_and_key(&kw).await;
    let mut handed_out = 0;
    for round in 0..ROUNDS {
        let key = common::issue(&kw, &account.id, &format!("raced {round}")).await;
        // Warm: the logins race the delete in the store, not in argon2.
        kw.verify(
            key.key.id.as_str(),
            key.secret.expose(),
            VerifyContext::new(),
        )
        .await
        .expect("verifies");
        let logins: Vec<_> = (0..LOGINS)
            .map(|_| {
                let (kw, id, secret) = (kw.clone(), key.key.id, key.secret.expose().to_owned());
                tokio::spawn(
                    async move { kw.login(id.as_str(), &secret, VerifyContext::new()).await },
                )
            })
            .collect();
        let deleter = {
            let (kw, id) = (kw.clone(), key.key.id);
            tokio::spawn(async move { kw.delete_key(Actor::System, &id).await })
        };
        deleter.await.expect("join").expect("deleted");
        for login in logins {
            match login.await.expect("join") {
                Ok(_) => handed_out += 1,
                Err(Error::Unauthorized) => {}
                Err(e) => panic!("login failed otherwise: {e:?}"),
            }
        }
    }
    let mut c = sqlx::PgConnection::connect(&url).await.expect("connect");
    let orphans: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM \"{schema}\".sessions s \
         WHERE NOT EXISTS (SELECT 1 FROM \"{schema}\".keys k WHERE k.id = s.key_id)"
    )))
    .fetch_one(&mut c)
    .await
    .expect("count");
    let _ = c.close().await;
    common::drop_schema(&url, &schema).await;
    assert_eq!(
        orphans, 0,
        "orphan session rows ({handed_out} logins succeeded)"
    );
}
