//! The activity log's store queries at scale: 100,000 events on one key
//! (plus a child account's), then p50 / p99 of each filter shape of
//! `GET /events` (first page and a page 90,000 events deep) and of the
//! live stream's read, straight on the store.
//!
//! ```sh
//! cargo run --release --example events_scale --features sqlite -- [events] [rounds]
//! KEYWARD_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test \
//!     cargo run --release --example events_scale --features sqlite,postgres
//! ```
//!
//! Without `KEYWARD_DATABASE_URL`, a fresh SQLite file in a temporary
//! directory. Events are written through the store (one transaction each,
//! as the service does), with the actors, actions and applications mixed.

use std::sync::Arc;
use std::time::Instant;

use keyward::store::{ActorFilter, EventQuery, KeyStore, PhcString, StoredKey};
use keyward::{
    Account, AccountId, AccountStatus, ActorKind, ApiKey, AppId, AuditAction, AuditActor,
    AuditEvent, KeyId, KeyStatus, PermissionSet,
};
use time::{Duration, OffsetDateTime};

fn arg(n: usize, default: usize) -> usize {
    std::env::args()
        .nth(n)
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(default)
}

fn t0() -> OffsetDateTime {
    time::macros::datetime!(2031-01-01 00:00:00 UTC)
}

fn event(n: usize, account: AccountId, key: KeyId, app: AppId) -> AuditEvent {
    let actor = match n % 3 {
        0 => AuditActor::system(),
        1 => AuditActor {
            kind: ActorKind::Key,
            key_id: Some(key),
            session_id: None,
            account_id: Some(account),
            user_id: None,
            user_name: None,
        },
        _ => AuditActor {
            kind: ActorKind::User,
            key_id: None,
            session_id: None,
            account_id: Some(account),
            user_id: Some(format!("u{}", n % 7)),
            user_name: Some("Ada".into()),
        },
    };
    AuditEvent {
        id: format!("evt_{n:012}{:08x}", rand::random::<u32>()),
        at: t0() + Duration::milliseconds(i64::try_from(n).unwrap_or(0) * 10),
        action: [
            AuditAction::KeyUpdated,
            AuditAction::KeyRotated,
            AuditAction::Login,
        ][n % 3],
        account_id: account,
        key_id: Some(key),
        session_id: None,
        app_id: n.is_multiple_of(2).then_some(app),
        actor,
        client_ip: None,
        details: serde_json::json!({ "changed": ["name"] }),
    }
}

fn key(account: AccountId) -> StoredKey {
    StoredKey {
        key: ApiKey {
            id: KeyId::new(&format!("kw_{:017}", rand::random::<u32>())).expect("id"),
            account_id: account,
            name: "busy".into(),
            description: String::new(),
            application: None,
            app_id: None,
            permissions: PermissionSet::default(),
            status: KeyStatus::Active,
            protected: false,
            created_at: t0(),
            updated_at: t0(),
            last_used_at: None,
            expires_at: None,
            allowed_cidrs: Vec::new(),
            allowed_origins: Vec::new(),
            metadata: serde_json::json!({}),
        },
        secret_hash: PhcString("$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaA".into()),
        generation: 0,
        previous: None,
        version: 1,
        session_epoch: 0,
    }
}

async fn store() -> (Arc<dyn KeyStore>, Option<tempfile_dir::Dir>) {
    match std::env::var("KEYWARD_DATABASE_URL") {
        Ok(url) if !url.is_empty() => (keyward::store::connect(&url).await.expect("connect"), None),
        _ => {
            let dir = tempfile_dir::Dir::new();
            let url = format!("sqlite://{}", dir.path.join("events.db").display());
            (
                keyward::store::connect(&url).await.expect("connect"),
                Some(dir),
            )
        }
    }
}

/// A temporary directory, removed on drop (no dev-dependency in examples
/// built for release).
mod tempfile_dir {
    pub(crate) struct Dir {
        pub(crate) path: std::path::PathBuf,
    }
    impl Dir {
        pub(crate) fn new() -> Self {
            let path =
                std::env::temp_dir().join(format!("keyward-events-{:016x}", rand::random::<u64>()));
            std::fs::create_dir_all(&path).expect("temp dir");
            Self { path }
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

fn quantiles(mut v: Vec<f64>) -> (f64, f64) {
    v.sort_by(f64::total_cmp);
    let at = |q: f64| v[((v.len() as f64 - 1.0) * q).round() as usize];
    (at(0.5), at(0.99))
}

#[tokio::main]
async fn main() {
    let n = arg(1, 100_000);
    let rounds = arg(2, 200);
    let (store, _dir) = store().await;
    let suffix = rand::random::<u32>();
    let parent = AccountId::new(&format!("acct_p{suffix:08x}")).expect("id");
    let child = AccountId::new(&format!("acct_c{suffix:08x}")).expect("id");
    for (id, p) in [(parent, None), (child, Some(parent))] {
        let a = Account {
            id,
            name: "scale".into(),
            parent: p,
            permissions: PermissionSet::default(),
            status: AccountStatus::Active,
            created_at: t0(),
            last_used_at: None,
            version: 1,
        };
        let e = event(
            0,
            id,
            KeyId::new("kw_00000000000000000").expect("id"),
            AppId::new("app_x").expect("id"),
        );
        store
            .insert_account(&a, &AuditEvent { key_id: None, ..e })
            .await
            .expect("account");
    }
    let busy = key(parent);
    let theirs = key(child);
    let app = AppId::new(&format!("app_{suffix:08x}")).expect("id");
    for k in [&busy, &theirs] {
        let e = event(1, k.key.account_id, k.key.id, app);
        store.insert_key(k, &e).await.expect("key");
    }
    let started = Instant::now();
    let mut version = busy.version;
    let mut other_version = theirs.version;
    for i in 0..n {
        // Nine in ten on the busy key; the rest on the child's key.
        let (k, v) = if i % 10 == 9 {
            (&theirs, &mut other_version)
        } else {
            (&busy, &mut version)
        };
        let mut next = k.clone();
        next.version = *v + 1;
        let e = event(i + 2, k.key.account_id, k.key.id, app);
        store.update_key(&next, *v, &e).await.expect("update");
        *v += 1;
    }
    println!(
        "populated {n} events ({} on one key) in {:.1} s",
        n - n / 10,
        started.elapsed().as_secs_f64()
    );
    // A position 90 % down the newest-first order: a deep cursor.
    let position = (
        t0() + Duration::milliseconds(i64::try_from(n / 10).unwrap_or(0) * 10),
        "evt_".to_owned(),
    );
    let base = EventQuery::new(parent, 51);
    let mut shapes: Vec<(&str, EventQuery)> = vec![("account", base.clone())];
    let mut q = base.clone();
    q.key_id = Some(busy.key.id);
    shapes.push(("key", q));
    let mut q = base.clone();
    q.app_id = Some(app);
    shapes.push(("app", q));
    let mut q = base.clone();
    q.action = Some(AuditAction::KeyRotated);
    shapes.push(("action", q));
    let mut q = base.clone();
    q.actor = Some(ActorFilter::Kind(ActorKind::User));
    shapes.push(("actor kind", q));
    let mut q = base.clone();
    q.actor = Some(ActorFilter::User("u3".into()));
    shapes.push(("actor user", q));
    let mut q = base.clone();
    q.from = Some(t0() + Duration::seconds(100));
    q.to = Some(t0() + Duration::seconds(500));
    shapes.push(("from/to", q));
    let mut q = base.clone();
    q.children = true;
    shapes.push(("children", q));
    println!("| query | first page p50 / p99 (ms) | deep page p50 / p99 (ms) |");
    println!("|---|---|---|");
    for (name, q) in &shapes {
        let mut first = Vec::with_capacity(rounds);
        let mut deep = Vec::with_capacity(rounds);
        for _ in 0..rounds {
            let t = Instant::now();
            let page = store.list_events(q).await.expect("list");
            first.push(t.elapsed().as_secs_f64() * 1e3);
            assert!(!page.is_empty(), "{name}: no events");
            let mut d = q.clone();
            d.before = Some(position.clone());
            let t = Instant::now();
            store.list_events(&d).await.expect("list");
            deep.push(t.elapsed().as_secs_f64() * 1e3);
        }
        let (f50, f99) = quantiles(first);
        let (d50, d99) = quantiles(deep);
        println!("| {name} | {f50:.2} / {f99:.2} | {d50:.2} / {d99:.2} |");
    }
    // The stream's read: the newest 50 positions, then nothing new.
    let last = store.last_event_seq().await.expect("seq");
    let mut tail = Vec::with_capacity(rounds);
    let mut q = EventQuery::new(parent, 100);
    q.key_id = Some(busy.key.id);
    for _ in 0..rounds {
        let t = Instant::now();
        store.list_events_since(&q, last - 50).await.expect("since");
        store.last_event_seq().await.expect("seq");
        tail.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let (t50, t99) = quantiles(tail);
    println!("| stream read (since, 50 new) | {t50:.2} / {t99:.2} | |");
}
