//! Management operations, login and the cold verify path run in `tracing`
//! spans that name the key and account, and nothing they log holds a
//! secret.

#[path = "store_support/mod.rs"]
mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use keyward::{Actor, MemoryStore, VerifyContext};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::format::FmtSpan;

#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);

impl Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Buf {
    type Writer = Buf;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[tokio::test]
async fn spans_name_keys_and_accounts_never_secrets() {
    let buf = Buf::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(buf.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::TRACE)
        .with_span_events(FmtSpan::CLOSE)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let store: Arc<dyn keyward::store::KeyStore> = Arc::new(MemoryStore::new());
    let kw = common::service(store.clone(), None, 30);
    // A second instance: its first verification takes the cold path.
    let other = common::service(store, None, 30);
    let (account, key) = common::account_and_key(&kw).await;
    let rotated = kw
        .rotate_key(Actor::System, &key.key.id, None)
        .await
        .expect("rotate");
    let session = other
        .login(
            key.key.id.as_str(),
            rotated.secret.expose(),
            VerifyContext::new(),
        )
        .await
        .expect("login");
    let wrong = other
        .verify(
            key.key.id.as_str(),
            key.secret.expose(),
            VerifyContext::new(),
        )
        .await;
    assert!(wrong.is_err(), "the rotated-out secret fails");
    kw.deactivate_key(Actor::System, &key.key.id)
        .await
        .expect("deactivate");

    let out = String::from_utf8(buf.0.lock().expect("lock").clone()).expect("utf-8");
    for span in [
        "keyward.create_account",
        "keyward.issue_key",
        "keyward.rotate_key",
        "keyward.login",
        "keyward.verify_cold",
        "keyward.deactivate_key",
    ] {
        assert!(out.contains(span), "no {span} span in:\n{out}");
    }
    assert!(out.contains(&format!("key_id={}", key.key.id)), "{out}");
    assert!(out.contains(&format!("account_id={}", account.id)), "{out}");
    for secret in [
        key.secret.expose(),
        rotated.secret.expose(),
        session.token.expose(),
    ] {
        assert!(!out.contains(secret), "a secret reached the log:\n{out}");
    }
}
