//! Printing results: human-readable tables by default, JSON with `--json`.

use comfy_table::Table;
use keyward::store::UsageRecord;
use keyward::{Account, ApiKey, App, AuditEvent, PermissionSet, Secret};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// The outcome of one item of a bulk command.
#[derive(Debug)]
pub(crate) struct Bulk {
    /// The key id as given.
    pub(crate) id: String,
    /// What was done (`"deactivated"`, ...), when it succeeded.
    pub(crate) result: &'static str,
    /// When the change is effective on every instance.
    pub(crate) effective_by: Option<OffsetDateTime>,
    /// Why it failed.
    pub(crate) error: Option<String>,
}

/// Where results go: stdout, as tables or JSON.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Out {
    /// JSON instead of tables.
    pub(crate) json: bool,
}

fn time(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_else(|_| t.to_string())
}

fn opt_time(t: Option<OffsetDateTime>) -> String {
    t.map_or_else(|| "-".into(), time)
}

fn perms(p: &PermissionSet) -> String {
    p.iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_style(comfy_table::presets::UTF8_FULL_CONDENSED)
        .set_header(header.iter().copied());
    t
}

fn fields(rows: Vec<(&str, String)>) -> Table {
    let mut t = table(&["field", "value"]);
    for (k, v) in rows {
        t.add_row([k.to_owned(), v]);
    }
    t
}

fn key_fields(k: &ApiKey) -> Vec<(&'static str, String)> {
    vec![
        ("id", k.id.to_string()),
        ("account", k.account_id.to_string()),
        ("name", k.name.clone()),
        ("description", k.description.clone()),
        (
            "application",
            k.application.clone().unwrap_or_else(|| "-".into()),
        ),
        ("permissions", perms(&k.permissions)),
        ("status", k.status.as_str().into()),
        ("protected", k.protected.to_string()),
        ("created", time(k.created_at)),
        ("updated", time(k.updated_at)),
        ("last used", opt_time(k.last_used_at)),
        ("expires", opt_time(k.expires_at)),
        (
            "networks",
            serde_json::to_string(&k.allowed_cidrs).unwrap_or_default(),
        ),
        (
            "origins",
            serde_json::to_string(&k.allowed_origins).unwrap_or_default(),
        ),
        ("metadata", k.metadata.to_string()),
    ]
}

impl Out {
    fn json_out(self, v: &Value) {
        println!(
            "{}",
            serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
        );
    }

    /// One key.
    pub(crate) fn key(self, k: &ApiKey, extra: Vec<(&'static str, String)>) {
        if self.json {
            let mut v = json!({ "key": k });
            for (name, value) in extra {
                v[name.replace(' ', "_")] = json!(value);
            }
            return self.json_out(&v);
        }
        let mut rows = key_fields(k);
        rows.extend(extra);
        println!("{}", fields(rows));
    }

    /// A key and its new secret, shown this once.
    pub(crate) fn key_with_secret(
        self,
        k: &ApiKey,
        secret: &Secret,
        extra: Vec<(&'static str, String)>,
    ) {
        if self.json {
            let mut v = json!({ "key": k, "secret": secret.expose() });
            for (name, value) in extra {
                v[name.replace(' ', "_")] = json!(value);
            }
            return self.json_out(&v);
        }
        let mut rows = key_fields(k);
        rows.extend(extra);
        println!("{}", fields(rows));
        println!("Secret (shown once, store it now; keyward keeps only its hash):");
        println!("  x-api-key:    {}", k.id);
        println!("  x-api-secret: {}", secret.expose());
    }

    /// A page of keys.
    pub(crate) fn keys(self, keys: &[ApiKey], next_cursor: Option<&str>) {
        if self.json {
            return self.json_out(&json!({ "items": keys, "next_cursor": next_cursor }));
        }
        let mut t = table(&[
            "id",
            "name",
            "status",
            "permissions",
            "application",
            "expires",
            "last used",
        ]);
        for k in keys {
            t.add_row([
                k.id.to_string(),
                k.name.clone(),
                k.status.as_str().into(),
                perms(&k.permissions),
                k.application.clone().unwrap_or_else(|| "-".into()),
                opt_time(k.expires_at),
                opt_time(k.last_used_at),
            ]);
        }
        println!("{t}");
        println!("{} key(s)", keys.len());
        if let Some(c) = next_cursor {
            println!("next page: --cursor {c}");
        }
    }

    /// One account.
    pub(crate) fn account(self, a: &Account) {
        if self.json {
            return self.json_out(&json!({ "account": a }));
        }
        println!(
            "{}",
            fields(vec![
                ("id", a.id.to_string()),
                ("name", a.name.clone()),
                (
                    "parent",
                    a.parent.map_or_else(|| "-".into(), |p| p.to_string())
                ),
                ("permissions", perms(&a.permissions)),
                ("created", time(a.created_at)),
            ])
        );
    }

    /// A page of accounts.
    pub(crate) fn accounts(self, accounts: &[Account], next_cursor: Option<&str>) {
        if self.json {
            return self.json_out(&json!({ "items": accounts, "next_cursor": next_cursor }));
        }
        let mut t = table(&["id", "name", "status", "permissions", "created"]);
        for a in accounts {
            t.add_row([
                a.id.to_string(),
                a.name.clone(),
                a.status.as_str().into(),
                perms(&a.permissions),
                time(a.created_at),
            ]);
        }
        println!("{t}");
        println!("{} account(s)", accounts.len());
        if let Some(c) = next_cursor {
            println!("next page: --cursor {c}");
        }
    }

    /// An account after an update, with when it is effective everywhere.
    pub(crate) fn account_updated(self, a: &Account, effective_by: Option<OffsetDateTime>) {
        if self.json {
            return self.json_out(&json!({ "account": a, "effective_by": effective_by.map(time) }));
        }
        self.account(a);
        if let Some(at) = effective_by {
            println!("effective everywhere by {}", time(at));
        }
    }

    /// One application, with when a change is effective everywhere.
    pub(crate) fn app(self, a: &App, effective_by: Option<OffsetDateTime>) {
        if self.json {
            return self.json_out(&json!({ "app": a, "effective_by": effective_by.map(time) }));
        }
        let mut rows = vec![
            ("id", a.id.to_string()),
            ("account", a.account_id.to_string()),
            ("title", a.title.clone()),
            ("description", a.description.clone()),
            ("status", a.status.as_str().into()),
            (
                "keys",
                format!("{} active, {} inactive", a.active_keys, a.inactive_keys),
            ),
            ("protected", a.protected.to_string()),
            ("created", time(a.created_at)),
        ];
        if let Some(at) = effective_by {
            rows.push(("effective everywhere by", time(at)));
        }
        println!("{}", fields(rows));
    }

    /// A page of applications.
    pub(crate) fn apps(self, apps: &[App], next_cursor: Option<&str>) {
        if self.json {
            return self.json_out(&json!({ "items": apps, "next_cursor": next_cursor }));
        }
        let mut t = table(&["id", "title", "status", "active keys", "inactive keys"]);
        for a in apps {
            t.add_row([
                a.id.to_string(),
                a.title.clone(),
                a.status.as_str().into(),
                a.active_keys.to_string(),
                a.inactive_keys.to_string(),
            ]);
        }
        println!("{t}");
        println!("{} application(s)", apps.len());
        if let Some(c) = next_cursor {
            println!("next page: --cursor {c}");
        }
    }

    /// A page of audit events.
    pub(crate) fn events(self, events: &[AuditEvent], next_cursor: Option<&str>) {
        if self.json {
            return self.json_out(&json!({ "items": events, "next_cursor": next_cursor }));
        }
        let mut t = table(&["at", "action", "key", "actor", "client", "details"]);
        for e in events {
            let action = serde_json::to_value(e.action)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_else(|| format!("{:?}", e.action));
            t.add_row([
                time(e.at),
                action,
                e.key_id.map_or_else(|| "-".into(), |k| k.to_string()),
                e.actor
                    .key_id
                    .map_or_else(|| "system".into(), |k| k.to_string()),
                e.client_ip.map_or_else(|| "-".into(), |ip| ip.to_string()),
                e.details.to_string(),
            ]);
        }
        println!("{t}");
        if let Some(c) = next_cursor {
            println!("next page: --cursor {c}");
        }
    }

    /// Usage rows.
    pub(crate) fn usage(self, rows: &[UsageRecord]) {
        if self.json {
            let items: Vec<Value> = rows
                .iter()
                .map(|r| {
                    json!({
                        "key_id": r.key_id,
                        "account_id": r.account_id,
                        "origin": r.origin,
                        "category": r.category,
                        "hour": time(r.hour),
                        "successes": r.successes,
                        "failures": r.failures,
                        "rate_limited": r.rate_limited,
                        "usage_exceeded": r.usage_exceeded,
                        "last_used_at": r.last_used_at.map(time),
                    })
                })
                .collect();
            return self.json_out(&json!({ "items": items }));
        }
        let mut t = table(&[
            "hour",
            "key",
            "origin",
            "category",
            "successes",
            "failures",
            "rate_limited",
            "usage_exceeded",
        ]);
        for r in rows {
            t.add_row([
                time(r.hour),
                r.key_id.to_string(),
                r.origin.clone(),
                r.category.clone(),
                r.successes.to_string(),
                r.failures.to_string(),
                r.rate_limited.to_string(),
                r.usage_exceeded.to_string(),
            ]);
        }
        println!("{t}");
    }

    /// The outcomes of a bulk command, one row per id.
    pub(crate) fn bulk(self, rows: &[Bulk]) {
        if self.json {
            let items: Vec<Value> = rows
                .iter()
                .map(|r| {
                    json!({
                        "id": r.id,
                        "ok": r.error.is_none(),
                        "result": r.result,
                        "effective_by": r.effective_by.map(time),
                        "error": r.error,
                    })
                })
                .collect();
            return self.json_out(&json!({ "items": items }));
        }
        let mut t = table(&["id", "result", "effective everywhere by"]);
        for r in rows {
            t.add_row([
                r.id.clone(),
                r.error
                    .as_ref()
                    .map_or_else(|| r.result.to_owned(), |e| format!("error: {e}")),
                opt_time(r.effective_by),
            ]);
        }
        println!("{t}");
    }

    /// A line of information (no output in JSON mode beyond `json`).
    pub(crate) fn note(self, text: &str, json: Value) {
        if self.json {
            self.json_out(&json);
        } else {
            println!("{text}");
        }
    }
}
