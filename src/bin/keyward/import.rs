//! `keyward keys import --file keys.csv`: keys from another system, all or
//! nothing, bad rows reported by their line in the file.

use std::collections::HashMap;
use std::io::Read;

use indicatif::{ProgressBar, ProgressStyle};
use keyward::{Actor, ImportError, ImportKey, Keyward, NewKey};
use serde_json::{Value, json};
use zeroize::Zeroizing;

use crate::args::ImportArgs;
use crate::commands::{account_id, cidrs, metadata, permissions, rfc3339};
use crate::exit::{CliResult, Failure, input};
use crate::output::Out;

/// The columns a file may have; the first four (one of secret and hash)
/// are required.
const COLUMNS: [&str; 12] = [
    "external_id",
    "account",
    "name",
    "secret",
    "hash",
    "alias",
    "permissions",
    "description",
    "application",
    "expires_at",
    "cidrs",
    "metadata",
];

/// A row that cannot be imported: its line in the file and why.
struct BadRow {
    line: u64,
    error: String,
}

/// Reads, checks and imports the file; prints a summary (or every bad
/// row, then fails with exit code 2 having imported nothing).
pub(crate) async fn run(kw: &Keyward, a: ImportArgs, out: Out) -> CliResult {
    let text = read(&a.file)?;
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let header = reader
        .headers()
        .map_err(|e| input("CSV header", e))?
        .clone();
    let index: HashMap<&str, usize> = header.iter().enumerate().map(|(i, h)| (h, i)).collect();
    if let Some(unknown) = header.iter().find(|h| !COLUMNS.contains(h)) {
        return Err(Failure::Input(format!(
            "line 1: unknown column {unknown:?} (columns: {})",
            COLUMNS.join(", ")
        )));
    }
    for required in ["external_id", "account", "name"] {
        if !index.contains_key(required) {
            return Err(Failure::Input(format!(
                "line 1: missing column {required:?}"
            )));
        }
    }
    let records: Vec<csv::StringRecord> = reader
        .records()
        .collect::<Result<_, _>>()
        .map_err(|e| input("CSV", e))?;
    let bar = progress(records.len() as u64, out);
    bar.set_message("checking rows");
    let (mut rows, mut lines, mut bad) = (Vec::new(), Vec::new(), Vec::new());
    for record in &records {
        let line = record.position().map_or(0, |p| p.line());
        let field = |name: &str| {
            index
                .get(name)
                .and_then(|&i| record.get(i))
                .filter(|v| !v.is_empty())
        };
        match row(&field) {
            Ok(r) => {
                rows.push(r);
                lines.push(line);
            }
            Err(e) => bad.push(BadRow {
                line,
                error: e.to_string(),
            }),
        }
        bar.inc(1);
    }
    if !bad.is_empty() {
        bar.finish_and_clear();
        return report_bad(bad, out);
    }
    bar.set_message("importing (hashing secrets)");
    let result = kw.import_keys(Actor::System, rows).await;
    bar.finish_and_clear();
    match result {
        Ok(imported) => {
            let created = imported.iter().filter(|i| i.created).count();
            let items: Vec<Value> = imported
                .iter()
                .zip(&lines)
                .map(|(i, line)| json!({ "line": line, "key_id": i.key.id, "account_id": i.key.account_id, "created": i.created }))
                .collect();
            out.note(
                &format!(
                    "keyward: {created} keys imported, {} already imported before",
                    imported.len() - created
                ),
                json!({ "imported": created, "existing": imported.len() - created, "items": items }),
            );
            Ok(())
        }
        Err(ImportError::Invalid(rows)) => report_bad(
            rows.into_iter()
                .map(|r| BadRow {
                    line: lines.get(r.row).copied().unwrap_or(0),
                    error: r.error.to_string(),
                })
                .collect(),
            out,
        ),
        Err(ImportError::Failed(e)) => Err(e.into()),
        Err(e) => Err(Failure::Input(e.to_string())),
    }
}

/// The file's text (`-`: standard input).
fn read(path: &std::path::Path) -> CliResult<Zeroizing<String>> {
    // The file holds secrets: the buffer is wiped when dropped.
    let mut text = Zeroizing::new(String::new());
    let read = if path.as_os_str() == "-" {
        std::io::stdin().read_to_string(&mut text)
    } else {
        std::fs::File::open(path).and_then(|mut f| f.read_to_string(&mut text))
    };
    read.map_err(|e| input(&format!("file {}", path.display()), e))?;
    Ok(text)
}

/// One CSV row as an import.
fn row<'a>(field: &impl Fn(&str) -> Option<&'a str>) -> CliResult<ImportKey> {
    let required =
        |name: &'static str| field(name).ok_or_else(|| Failure::Input(format!("missing {name}")));
    let list = |name: &str| -> Vec<String> {
        field(name)
            .map(|v| v.split([' ', ';']).map(str::to_owned).collect())
            .unwrap_or_default()
    };
    let external_id = required("external_id")?;
    let account = account_id(required("account")?)?;
    let mut key = NewKey::new(required("name")?).permissions(permissions(&list("permissions"))?);
    if let Some(d) = field("description") {
        key = key.description(d);
    }
    if let Some(a) = field("application") {
        key = key.application(a);
    }
    if let Some(e) = field("expires_at") {
        key = key.expires_at(rfc3339("expires_at", e)?);
    }
    let networks = cidrs(&list("cidrs"))?;
    if !networks.is_empty() {
        key = key.allowed_cidrs(networks);
    }
    if let Some(m) = field("metadata") {
        key = key.metadata(metadata(m)?);
    }
    let mut import = match (field("secret"), field("hash")) {
        (Some(s), None) => ImportKey::with_secret(external_id, account, key, s),
        (None, Some(h)) => ImportKey::with_hash(external_id, account, key, h),
        _ => return Err(Failure::Input("give exactly one of secret and hash".into())),
    };
    if let Some(a) = field("alias") {
        import = import.alias(a);
    }
    Ok(import)
}

/// Prints every bad row (stderr; and a JSON document with `--json`) and
/// fails with the invalid-input exit code.
fn report_bad(bad: Vec<BadRow>, out: Out) -> CliResult {
    for b in &bad {
        eprintln!("keyward: line {}: {}", b.line, b.error);
    }
    if out.json {
        let errors: Vec<Value> = bad
            .iter()
            .map(|b| json!({ "line": b.line, "error": b.error }))
            .collect();
        out.note("", json!({ "imported": 0, "errors": errors }));
    }
    Err(Failure::Input(format!(
        "{} bad rows; nothing was imported",
        bad.len()
    )))
}

/// A bar over the rows on a terminal (hidden with `--json` or when stderr
/// is not one).
fn progress(len: u64, out: Out) -> ProgressBar {
    let bar = ProgressBar::new(len);
    if out.json || len < 2 {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    bar.set_style(
        ProgressStyle::with_template("{spinner} {bar:40} {pos}/{len} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    bar
}
