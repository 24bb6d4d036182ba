//! With feature `metrics`, verifications (by path and outcome), argon2
//! queueing, usage flushes and cache entries reach the installed recorder
//! (here the Prometheus exporter the example servers serve on /metrics).

#[path = "store_support/mod.rs"]
mod common;

use std::sync::Arc;

use keyward::{MemoryStore, VerifyContext};

fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {series} in:\n{text}"))
}

#[tokio::test]
async fn verifications_flushes_and_queues_are_recorded() {
    let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .expect("recorder");
    let memory = MemoryStore::new();
    let store: Arc<dyn keyward::store::KeyStore> = Arc::new(memory.clone());
    let kw = common::service(store.clone(), None, 30);
    let (account, key) = common::account_and_key(&kw).await;
    let another = common::issue(&kw, &account.id, "another").await;
    let verify = |kw: &keyward::Keyward, secret: &str| {
        let kw = kw.clone();
        let (id, secret) = (key.key.id, secret.to_owned());
        async move {
            kw.verify(id.as_str(), &secret, VerifyContext::new())
                .await
                .is_ok()
        }
    };
    // A fresh instance: cold (argon2) first, warm after.
    let other = common::service(store.clone(), None, 30);
    // A well-formed secret, but another key's.
    assert!(!verify(&other, another.secret.expose()).await);
    assert!(verify(&other, key.secret.expose()).await);
    assert!(verify(&other, key.secret.expose()).await);
    assert!(verify(&other, key.secret.expose()).await);
    other.flush().await.expect("flush");
    // A store failure is counted under its operation.
    memory.set_unavailable(true);
    let third = common::service(store, None, 30);
    assert!(!verify(&third, key.secret.expose()).await);
    memory.set_unavailable(false);

    let text = handle.render();
    assert_eq!(
        value(
            &text,
            r#"keyward_verifications_total{path="cold",outcome="ok"}"#
        ),
        1.0
    );
    assert_eq!(
        value(
            &text,
            r#"keyward_verifications_total{path="cold",outcome="unauthorized"}"#
        ),
        1.0
    );
    assert_eq!(
        value(
            &text,
            r#"keyward_verifications_total{path="warm",outcome="ok"}"#
        ),
        2.0
    );
    assert_eq!(value(&text, "keyward_argon2_waiting"), 0.0);
    assert!(
        value(&text, "keyward_argon2_wait_seconds_count") >= 2.0,
        "{text}"
    );
    assert_eq!(
        value(&text, r#"keyward_usage_flushes_total{result="ok"}"#),
        1.0
    );
    assert!(value(&text, "keyward_usage_flushed_rows_total") >= 1.0);
    assert!(value(&text, "keyward_cached_keys") >= 1.0);
    // Store calls, timed per operation: the fresh instance read the key
    // (with its application and limits, in one call; its account too) and
    // wrote the usage batch.
    for op in [
        "get_key_for_verify",
        "get_account",
        "record_usage",
        "insert_key",
    ] {
        assert!(
            value(
                &text,
                &format!(r#"keyward_store_seconds_count{{op="{op}"}}"#)
            ) >= 1.0,
            "{op}: {text}"
        );
    }
    assert!(
        value(
            &text,
            r#"keyward_store_errors_total{op="get_key_for_verify"}"#
        ) >= 1.0
    );
    assert!(!text.contains(key.secret.expose()) && !text.contains(key.key.id.as_str()));
}
