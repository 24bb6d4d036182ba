//! The `keyward` binary end to end on a temporary SQLite file: init,
//! accounts, every `keys` subcommand, events, usage, JSON output and exit
//! codes; the keys it prints verify through the library.

use std::process::Command;

use keyward::store::SqliteStore;
use keyward::{Error, Keyward, VerifyContext};
use serde_json::Value;

struct Cli {
    dir: tempfile::TempDir,
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.stdout))
    }
}

impl Cli {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    fn url(&self) -> String {
        format!("sqlite://{}", self.dir.path().join("kw.db").display())
    }

    fn run(&self, args: &[&str]) -> Run {
        let out = Command::new(env!("CARGO_BIN_EXE_keyward"))
            .args(args)
            .env("KEYWARD_DATABASE_URL", self.url())
            .env_remove("KEYWARD_PREFIX")
            .current_dir(self.dir.path())
            .output()
            .expect("run keyward");
        Run {
            code: out.status.code().expect("exit code"),
            stdout: String::from_utf8(out.stdout).expect("utf-8"),
            stderr: String::from_utf8(out.stderr).expect("utf-8"),
        }
    }

    /// Runs with `--json`, expecting success.
    fn ok(&self, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let r = self.run(&all);
        assert_eq!(r.code, 0, "{args:?} failed: {}", r.stderr);
        r.json()
    }

    /// Runs with `--json`, expecting exit code `code`; returns stderr.
    fn fails(&self, args: &[&str], code: i32) -> String {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let r = self.run(&all);
        assert_eq!(r.code, code, "{args:?}: {} / {}", r.stdout, r.stderr);
        r.stderr
    }

    /// The library on the same database file.
    async fn keyward(&self) -> Keyward {
        let store = SqliteStore::connect(&self.url()).await.expect("open");
        Keyward::builder()
            .store(store)
            .flush_interval(None)
            .build()
            .expect("build")
    }
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}"))
}

async fn verify(kw: &Keyward, id: &str, secret: &str) -> keyward::Result<keyward::Principal> {
    kw.verify(id, secret, VerifyContext::new()).await
}

#[tokio::test]
async fn manages_keys_end_to_end() {
    let cli = Cli::new();

    // init: migrates, creates the admin account and key, secret once.
    let init = cli.ok(&["init"]);
    let admin_id = s(&init["key"]["id"]).to_owned();
    let admin_secret = s(&init["secret"]).to_owned();
    assert_eq!(init["key"]["account_id"], "admin");
    assert_eq!(init["key"]["protected"], true);
    let again = cli.ok(&["init"]);
    assert_eq!(again["issued"], false);
    assert!(
        again.get("secret").is_none(),
        "a second init shows no secret"
    );
    // Table output (the default) shows the secret once, too, and no JSON.
    let table = cli.run(&["keys", "list", "--account", "admin"]);
    assert_eq!(table.code, 0);
    assert!(table.stdout.contains(&admin_id) && table.stdout.contains("1 key(s)"));
    assert!(
        !table.stdout.contains("kw_sk_"),
        "a listing shows no secret"
    );

    // accounts
    let acct = cli.ok(&[
        "accounts",
        "create",
        "--name",
        "Acme",
        "--id",
        "acme",
        "--permissions",
        "readApplications,writeApplications,readApiKeys",
    ]);
    assert_eq!(acct["account"]["id"], "acme");
    assert_eq!(
        cli.ok(&["accounts", "show", "acme"])["account"]["name"],
        "Acme"
    );

    // keys create
    let created = cli.ok(&[
        "keys",
        "create",
        "--account",
        "acme",
        "--name",
        "ci",
        "--permissions",
        "readApplications",
        "--application",
        "billing",
        "--metadata",
        r#"{"team":"ops"}"#,
    ]);
    let id = s(&created["key"]["id"]).to_owned();
    let secret = s(&created["secret"]).to_owned();
    assert_eq!(created["key"]["metadata"]["team"], "ops");
    {
        let kw = cli.keyward().await;
        verify(&kw, &admin_id, &admin_secret)
            .await
            .expect("the admin key init printed verifies");
        let p = verify(&kw, &id, &secret)
            .await
            .expect("the printed key verifies");
        assert_eq!(p.account_id().as_str(), "acme");
        kw.shutdown().await.expect("flush usage");
    }

    // list / show / update
    let listed = cli.ok(&["keys", "list", "--account", "acme", "--all"]);
    assert_eq!(listed["items"].as_array().expect("items").len(), 1);
    assert!(
        !listed.to_string().contains(&secret),
        "a listing holds no secret"
    );
    let shown = cli.ok(&["keys", "show", &id]);
    assert_eq!(shown["key"]["application"], "billing");
    let updated = cli.ok(&[
        "keys",
        "update",
        &id,
        "--name",
        "ci-2",
        "--clear-application",
        "--permissions",
        "readApplications,writeApplications",
    ]);
    assert_eq!(updated["key"]["name"], "ci-2");
    assert_eq!(updated["key"]["application"], Value::Null);
    assert_eq!(
        updated["key"]["permissions"],
        serde_json::json!(["readApplications", "writeApplications"])
    );

    // rotate: the new secret works, the old one no longer.
    let rotated = cli.ok(&["keys", "rotate", &id]);
    let new_secret = s(&rotated["secret"]).to_owned();
    assert_ne!(new_secret, secret);
    {
        let kw = cli.keyward().await;
        verify(&kw, &id, &new_secret).await.expect("new secret");
        assert!(matches!(
            verify(&kw, &id, &secret).await,
            Err(Error::Unauthorized)
        ));
        kw.shutdown().await.expect("flush usage");
    }

    // deactivate / activate (bulk, JSON rows)
    let off = cli.ok(&["keys", "deactivate", &id]);
    assert_eq!(off["items"][0]["result"], "deactivated");
    assert!(off["items"][0]["effective_by"].is_string());
    assert_eq!(cli.ok(&["keys", "show", &id])["key"]["status"], "inactive");
    {
        let kw = cli.keyward().await;
        assert!(matches!(
            verify(&kw, &id, &new_secret).await,
            Err(Error::KeyInactive)
        ));
    }
    cli.ok(&["keys", "activate", &id]);
    assert_eq!(cli.ok(&["keys", "show", &id])["key"]["status"], "active");

    // events and usage
    let events = cli.ok(&["events", "--account", "acme", "--key", &id]);
    let actions: Vec<&str> = events["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|e| s(&e["action"]))
        .collect();
    assert!(actions.len() >= 5, "got {actions:?}");
    let usage = cli.ok(&["usage", "--account", "acme", "--key", &id]);
    let successes: u64 = usage["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|r| r["successes"].as_u64().expect("count"))
        .sum();
    assert_eq!(successes, 2, "two verifications succeeded: {usage}");

    // Exit codes.
    let err = cli.fails(&["keys", "delete", &admin_id], 4);
    assert!(err.contains("protected"), "{err}");
    cli.fails(&["keys", "show", "kw_doesNotExist0000"], 3);
    cli.fails(
        &[
            "keys",
            "create",
            "--account",
            "acme",
            "--name",
            "x",
            "--permissions",
            "not a permission!",
        ],
        2,
    );
    cli.fails(
        &[
            "keys",
            "create",
            "--account",
            "acme",
            "--name",
            "x",
            "--permissions",
            "writeApiKeys",
        ],
        2,
    );
    cli.fails(&["keys", "rotate"], 2);

    // delete: several ids, each reported; one failure fails the command.
    let other = cli.ok(&["keys", "create", "--account", "acme", "--name", "tmp"]);
    let other_id = s(&other["key"]["id"]).to_owned();
    let r = cli.run(&["--json", "keys", "delete", &id, &other_id, &admin_id]);
    assert_eq!(r.code, 4, "{}", r.stderr);
    let rows = r.json();
    let results: Vec<&str> = rows["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|r| s(&r["result"]))
        .collect();
    assert_eq!(results, ["deleted", "deleted", "failed"]);
    cli.fails(&["keys", "show", &id], 3);
    assert_eq!(cli.ok(&["keys", "show", &admin_id])["key"]["id"], admin_id);
}

fn run_with_url(url: &str, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_keyward"))
        .args(args)
        .env("KEYWARD_DATABASE_URL", url)
        .output()
        .expect("run")
}

#[test]
fn store_errors_have_their_exit_codes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = format!(
        "sqlite://{}",
        dir.path().join("missing/dir/kw.db").display()
    );
    let out = run_with_url(&missing, &["keys", "list", "--account", "admin"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("unable to open database file"),
        "{out:?}"
    );
    let out = run_with_url("mysql://x", &["migrate"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown store URL scheme"));
    #[cfg(feature = "postgres")]
    {
        let out = run_with_url("postgres://postgres@127.0.0.1:1/none", &["migrate"]);
        assert_eq!(out.status.code(), Some(5), "{out:?}");
    }
}

/// `keys import`: a file with a bad row imports nothing and names the
/// line; fixed, it imports every key, whose old strings then verify
/// (secret and SHA-256 rows) through the library; importing it again
/// changes nothing.
#[tokio::test]
async fn imports_keys_from_a_csv_file_all_or_nothing() {
    use sha2::Digest;
    let cli = Cli::new();
    cli.ok(&[
        "accounts",
        "create",
        "--name",
        "Acme",
        "--id",
        "acme",
        "--permissions",
        "readApplications,readApiKeys",
    ]);
    let old_secret = "sk_live_4eC39HqLyjWDarjtT1zdp7dc";
    let old_hashed = "sk_live_9fZ11QqLyjWDarjtT1zdp7dd";
    let sha: String = sha2::Sha256::digest(old_hashed.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let legacy = ["--legacy-prefix", "sk_live_"];
    let write = |rows: &str| {
        let path = cli.dir.path().join("keys.csv");
        std::fs::write(
            &path,
            format!("external_id,account,name,secret,hash,permissions\n{rows}"),
        )
        .expect("write csv");
        path.display().to_string()
    };
    let bad = write(&format!(
        "k1,acme,prod,{old_secret},,readApplications\n\
         k2,acme,ci,,{sha},readApplications\n\
         k3,acme,bad,,not-a-hash,readApplications\n\
         k4,nobody,bad,sk_live_x1,,\n"
    ));
    let mut args = vec!["keys", "import", "--file", bad.as_str()];
    args.extend(legacy);
    let stderr = cli.fails(&args, 2);
    assert!(stderr.contains("line 4: invalid hash"), "{stderr}");
    assert!(stderr.contains("line 5: account not found"), "{stderr}");
    assert!(
        !stderr.contains("line 2") && !stderr.contains("line 3"),
        "{stderr}"
    );
    let listed = cli.ok(&["keys", "list", "--account", "acme"]);
    assert_eq!(
        listed["items"].as_array().map(Vec::len),
        Some(0),
        "nothing partial"
    );

    let good = write(&format!(
        "k1,acme,prod,{old_secret},,readApplications\n\
         k2,acme,ci,,{sha},readApplications\n"
    ));
    let mut args = vec!["keys", "import", "--file", good.as_str()];
    args.extend(legacy);
    let summary = cli.ok(&args);
    assert_eq!(summary["imported"], 2);
    assert_eq!(summary["items"][1]["line"], 3);
    let again = cli.ok(&args);
    assert_eq!(
        (again["imported"].clone(), again["existing"].clone()),
        (0.into(), 2.into())
    );
    assert_eq!(again["items"][0]["key_id"], summary["items"][0]["key_id"]);
    // Without the legacy setting the CLI refuses rather than guessing.
    let stderr = cli.fails(&["keys", "import", "--file", good.as_str()], 2);
    assert!(stderr.contains("legacy_keys"), "{stderr}");

    let store = SqliteStore::connect(&cli.url()).await.expect("open");
    let kw = Keyward::builder()
        .store(store)
        .legacy_keys(keyward::LegacyKeys::sha256("sk_live_").expect("valid"))
        .flush_interval(None)
        .build()
        .expect("build");
    for (old, item) in [(old_secret, 0), (old_hashed, 1)] {
        let p = kw
            .verify_legacy(old, VerifyContext::new())
            .await
            .expect("the old string verifies");
        assert_eq!(p.key_id().as_str(), s(&summary["items"][item]["key_id"]));
    }
    assert!(matches!(
        kw.verify_legacy("sk_live_9fZ11QqLyjWDarjtT1zdp7dX", VerifyContext::new())
            .await,
        Err(Error::Unauthorized)
    ));
}

/// `apps` and `accounts list|update`: an application's lifecycle switches
/// its keys off and on (checked through the library), a deletion with keys
/// is a conflict (exit code 4) unless cascaded; accounts list and update.
#[tokio::test]
async fn manages_apps_and_accounts() {
    let cli = Cli::new();
    cli.ok(&["init"]);
    cli.ok(&[
        "accounts",
        "create",
        "--name",
        "Acme",
        "--id",
        "acme",
        "--parent",
        "admin",
        "--permissions",
        "readApplications,readApiKeys",
    ]);
    let listed = cli.ok(&["accounts", "list", "--parent", "admin"]);
    assert_eq!(listed["items"][0]["id"], "acme");
    let renamed = cli.ok(&["accounts", "update", "acme", "--name", "Acme Inc"]);
    assert_eq!(renamed["account"]["name"], "Acme Inc");
    let table = cli.run(&["accounts", "list", "--parent", "admin"]);
    assert!(table.stdout.contains("Acme Inc") && table.stdout.contains("1 account(s)"));

    let app = cli.ok(&["apps", "create", "--account", "acme", "--title", "Billing"]);
    let app_id = s(&app["app"]["id"]).to_owned();
    let key = cli.ok(&[
        "keys",
        "create",
        "--account",
        "acme",
        "--name",
        "billing",
        "--permissions",
        "readApplications",
    ]);
    // Attach the key to the application through the library (the CLI's
    // `keys create` takes a label, not an application id).
    let kw = cli.keyward().await;
    let key_id = s(&key["key"]["id"]).to_owned();
    let secret = s(&key["secret"]).to_owned();
    let attached = kw
        .issue_key(
            keyward::Actor::System,
            &"acme".parse().expect("id"),
            keyward::NewKey::new("in app")
                .permissions(keyward::PermissionSet::parse(["readApplications"]).expect("perms"))
                .app(app_id.parse().expect("app id")),
        )
        .await
        .expect("key in app");
    verify(&kw, &key_id, &secret)
        .await
        .expect("outside the app");
    assert_eq!(cli.ok(&["apps", "show", &app_id])["app"]["active_keys"], 1);
    let list = cli.ok(&["apps", "list", "--account", "acme"]);
    assert_eq!(list["items"][0]["title"], "Billing");
    let updated = cli.ok(&["apps", "update", &app_id, "--title", "Billing v2"]);
    assert_eq!(updated["app"]["title"], "Billing v2");

    let off = cli.ok(&["apps", "deactivate", &app_id]);
    assert_eq!(off["app"]["status"], "inactive");
    assert!(off["effective_by"].is_string());
    let fresh = cli.keyward().await;
    assert!(
        verify(&fresh, attached.key.id.as_str(), attached.secret.expose())
            .await
            .is_err(),
        "a deactivated application's key is refused"
    );
    cli.ok(&["apps", "activate", &app_id]);
    let fresh = cli.keyward().await;
    verify(&fresh, attached.key.id.as_str(), attached.secret.expose())
        .await
        .expect("works again");

    let stderr = cli.fails(&["apps", "delete", &app_id], 4);
    assert!(stderr.contains("still has keys"), "{stderr}");
    let deleted = cli.ok(&["apps", "delete", &app_id, "--cascade"]);
    assert_eq!(deleted["deleted_keys"].as_array().map(Vec::len), Some(1));
    cli.fails(&["apps", "show", &app_id], 3);
    let fresh = cli.keyward().await;
    verify(&fresh, &key_id, &secret)
        .await
        .expect("keys outside the application stay");
}
