//! Populates a keyward store for the management-at-scale benchmark
//! (`benches/mgmt_scale.sh`): through the store's own methods, into the
//! example server's `admin` account (which must exist: start the server
//! once first).
//!
//! ```sh
//! KEYWARD_DATABASE_URL=sqlite://scale.db cargo run --release --example mgmt_populate \
//!     --features sqlite,postgres -- [keys] [events on one key] [child accounts]
//! ```
//!
//! Defaults: 1,000,000 keys (every tenth inactive, names `<word>-<n>`, a
//! rare word on every thousandth), 100,000 audit events on the first key,
//! 1,000 child accounts (one key each), 10,000 applications (key `n` in
//! application `n % 10,000`, also labelled `app-<n % 10,000>`), one usage
//! row per key in the current hour (origin `api` or `mcp`, category
//! `realtime` or `analytics`). Every key shares one cheaply hashed secret (argon2id,
//! 64 KiB, 1 pass): the benchmark measures management, not verification.
//! Prints what it inserted and how long each step took.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use argon2::{Algorithm, Argon2, Params, PasswordHasher, Version};
use keyward::store::{KeyStore, PhcString, StoredKey, UsageRecord};
use keyward::{
    Account, AccountId, ApiKey, App, AppId, AppStatus, AuditAction, AuditActor, AuditEvent, Clock,
    KeyId, KeyStatus, PermissionSet, SystemClock,
};
use time::{Duration, OffsetDateTime};

/// Name words; `WORDS[0]` only on every thousandth key (a rare search).
const WORDS: &[&str] = &[
    "orion",
    "billing",
    "export",
    "nightly",
    "mobile",
    "partner",
    "reporting",
    "ingest",
];

/// Concurrent writers.
const WRITERS: usize = 8;
/// Applications the keys are spread over.
const APPS: usize = 10_000;

fn arg(n: usize, default: usize) -> usize {
    std::env::args()
        .nth(n)
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(default)
}

fn rand_hex() -> String {
    format!("{:032x}", rand::random::<u128>())
}

fn event(
    action: AuditAction,
    account: AccountId,
    key: Option<KeyId>,
    at: OffsetDateTime,
) -> AuditEvent {
    AuditEvent {
        id: format!("evt_{}", rand_hex()),
        at,
        action,
        account_id: account,
        key_id: key,
        session_id: None,
        app_id: None,
        actor: AuditActor::system(),
        client_ip: None,
        details: serde_json::json!({ "source": "mgmt_populate" }),
    }
}

fn key(
    account: AccountId,
    n: usize,
    hash: &PhcString,
    created_at: OffsetDateTime,
    app_id: Option<AppId>,
) -> Result<StoredKey, keyward::InvalidId> {
    // `kw_` and 24 hex digits (96 random bits): within KeyId's 31 bytes.
    let id = KeyId::new(&format!("kw_{:024x}", rand::random::<u128>() >> 32))?;
    let word = if n.is_multiple_of(1000) {
        WORDS[0]
    } else {
        WORDS[1 + n % (WORDS.len() - 1)]
    };
    Ok(StoredKey {
        key: ApiKey {
            id,
            account_id: account,
            name: format!("{word}-{n}"),
            description: "mgmt_populate".into(),
            application: Some(format!("app-{}", n % APPS)),
            app_id,
            permissions: PermissionSet::parse(["readApplications"]).unwrap_or_default(),
            status: if n.is_multiple_of(10) {
                KeyStatus::Inactive
            } else {
                KeyStatus::Active
            },
            protected: false,
            created_at,
            updated_at: created_at,
            last_used_at: None,
            expires_at: None,
            allowed_cidrs: Vec::new(),
            allowed_origins: Vec::new(),
            metadata: serde_json::json!({}),
        },
        secret_hash: hash.clone(),
        generation: 0,
        previous: None,
        version: 1,
        session_epoch: 0,
    })
}

/// The HTTP API's list cursor for the position `(at, id)` (what
/// `next_cursor` holds): a page deep in the list without paging to it.
fn cursor(at: OffsetDateTime, id: &str) -> String {
    use base64::Engine;
    let nanos = at.unix_timestamp_nanos();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{nanos}.{id}"))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let keys = arg(1, 1_000_000);
    let events = arg(2, 100_000);
    let children = arg(3, 1_000);
    let url =
        std::env::var("KEYWARD_DATABASE_URL").unwrap_or_else(|_| "sqlite://keyward.db".into());
    let store: Arc<dyn KeyStore> = keyward::store::connect(&url).await?;
    let admin = AccountId::new("admin")?;
    if store.get_account(&admin).await?.is_none() {
        return Err("no `admin` account: start the example server once first".into());
    }
    let argon = Argon2::new(
        Algorithm::Argon2id,
        Version::V0x13,
        Params::new(64, 1, 1, None)?,
    );
    let secret = rand_hex();
    let hash = PhcString(argon.hash_password(secret.as_bytes())?.to_string());
    // Keys are created one microsecond apart, ending now.
    let now = SystemClock.now();
    let base = now - Duration::microseconds(i64::try_from(keys)?);

    let t = Instant::now();
    let mut apps = Vec::with_capacity(APPS);
    for i in 0..APPS {
        let a = App {
            id: AppId::new(&format!("app_{}", &rand_hex()[..24]))?,
            account_id: admin,
            title: format!("Application {i}"),
            description: "mgmt_populate".into(),
            status: AppStatus::Active,
            created_at: now,
            updated_at: now,
            active_keys: 0,
            inactive_keys: 0,
            protected: false,
            last_used_at: None,
        };
        store
            .insert_app(&a, &event(AuditAction::AppCreated, admin, None, now))
            .await?;
        apps.push(a.id);
    }
    let apps = Arc::new(apps);
    println!("applications: {APPS} in {:.1} s", t.elapsed().as_secs_f64());

    let t = Instant::now();
    let mut child_keys = Vec::with_capacity(children);
    for i in 0..children {
        let a = Account {
            id: AccountId::new(&format!("acct_{}", rand_hex()))?,
            name: format!("Customer {i}"),
            parent: Some(admin),
            permissions: PermissionSet::parse(["readApiKeys", "readApplications"])?,
            status: keyward::AccountStatus::Active,
            created_at: now,
            last_used_at: None,
            version: 1,
        };
        store
            .insert_account(&a, &event(AuditAction::AccountCreated, admin, None, now))
            .await?;
        let k = key(a.id, keys + i, &hash, now, None)?;
        store
            .insert_key(
                &k,
                &event(AuditAction::KeyCreated, a.id, Some(k.key.id), now),
            )
            .await?;
        child_keys.push((a.id, k.key.id));
    }
    println!(
        "child accounts: {children} in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    let t = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let first: Arc<tokio::sync::OnceCell<KeyId>> = Arc::new(tokio::sync::OnceCell::new());
    let deep: Arc<tokio::sync::OnceCell<String>> = Arc::new(tokio::sync::OnceCell::new());
    let mut writers = Vec::new();
    for _ in 0..WRITERS {
        let (store, next, hash, apps) = (store.clone(), next.clone(), hash.clone(), apps.clone());
        let (first, deep) = (first.clone(), deep.clone());
        writers.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= keys {
                    return Ok::<_, Box<dyn std::error::Error + Send + Sync>>(ids);
                }
                let at = base + Duration::microseconds(i64::try_from(n).unwrap_or(0));
                let k = key(admin, n, &hash, at, Some(apps[n % APPS]))?;
                store
                    .insert_key(
                        &k,
                        &event(AuditAction::KeyCreated, admin, Some(k.key.id), at),
                    )
                    .await?;
                if n == 0 {
                    let _ = first.set(k.key.id);
                }
                if n == keys * 9 / 10 {
                    let _ = deep.set(cursor(at, k.key.id.as_str()));
                }
                ids.push(k.key.id);
                if n > 0 && n.is_multiple_of(100_000) {
                    eprintln!("  {n} keys");
                }
            }
        }));
    }
    let mut ids = Vec::with_capacity(keys);
    for w in writers {
        ids.extend(w.await?.map_err(|e| e.to_string())?);
    }
    if let Some(c) = deep.get() {
        println!("deep key cursor: {c}");
    }
    println!(
        "keys: {keys} ({} inactive) in {:.1} s",
        keys.div_ceil(10),
        t.elapsed().as_secs_f64()
    );

    let t = Instant::now();
    let hour = now
        .replace_minute(0)?
        .replace_second(0)?
        .replace_nanosecond(0)?;
    for chunk in ids.chunks(5_000) {
        let batch: Vec<UsageRecord> = chunk
            .iter()
            .enumerate()
            .map(|(i, id)| UsageRecord {
                key_id: *id,
                account_id: admin,
                origin: if i % 4 == 0 { "mcp" } else { "api" }.into(),
                category: if i % 2 == 0 { "realtime" } else { "analytics" }.into(),
                hour,
                successes: 1 + (i as u64 % 97),
                failures: i as u64 % 3,
                rate_limited: i as u64 % 5,
                usage_exceeded: u64::from(i % 11 == 0),
                last_used_at: Some(now),
            })
            .collect();
        store.record_usage(&batch).await?;
    }
    let batch: Vec<UsageRecord> = child_keys
        .iter()
        .enumerate()
        .map(|(i, (account, id))| UsageRecord {
            key_id: *id,
            account_id: *account,
            origin: "api".into(),
            category: "realtime".into(),
            hour,
            successes: 1 + (i as u64 % 89),
            failures: i as u64 % 2,
            rate_limited: i as u64 % 3,
            usage_exceeded: 0,
            last_used_at: Some(now),
        })
        .collect();
    store.record_usage(&batch).await?;
    println!(
        "usage rows: {} in {:.1} s",
        ids.len() + child_keys.len(),
        t.elapsed().as_secs_f64()
    );

    let t = Instant::now();
    if let Some(id) = first.get().copied() {
        for i in 0..events {
            let Some(mut k) = store.get_key(&id).await? else {
                return Err("first key vanished".into());
            };
            let expected = k.version;
            k.version += 1;
            k.key.description = format!("revision {i}");
            let at = SystemClock.now();
            k.key.updated_at = at;
            let e = event(AuditAction::KeyUpdated, admin, Some(id), at);
            if i == events / 2 {
                println!("deep event cursor: {}", cursor(at, &e.id));
            }
            store.update_key(&k, expected, &e).await?;
        }
        println!(
            "events on {id}: {events} in {:.1} s",
            t.elapsed().as_secs_f64()
        );
        println!("event key: {id}");
    }
    Ok(())
}
