//! Running a parsed command against the store, as `Actor::System`.

use indicatif::{ProgressBar, ProgressStyle};
use keyward::{
    AccountId, Actor, KeyId, KeyStatus, KeyUpdate, Keyward, ListKeys, NewAccount, NewKey,
    PermissionSet, UsageFilter,
};
use serde_json::json;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::args::{
    AccountsCommand, Command, CreateKey, EventsArgs, InitArgs, KeysCommand, ListArgs, Status,
    UpdateKey, UsageArgs,
};
use crate::exit::{CliResult, input};
use crate::output::{Bulk, Out};

pub(crate) fn account_id(s: &str) -> CliResult<AccountId> {
    AccountId::new(s).map_err(|e| input("account id", e))
}

fn key_id(s: &str) -> CliResult<KeyId> {
    KeyId::new(s).map_err(|e| input("key id", e))
}

pub(crate) fn permissions(names: &[String]) -> CliResult<PermissionSet> {
    PermissionSet::parse(names.iter().map(|s| s.trim()).filter(|s| !s.is_empty()))
        .map_err(|e| input("permissions", e))
}

pub(crate) fn rfc3339(what: &str, s: &str) -> CliResult<OffsetDateTime> {
    OffsetDateTime::parse(s, &Rfc3339).map_err(|e| input(what, e))
}

pub(crate) fn cidrs(list: &[String]) -> CliResult<Vec<ipnet::IpNet>> {
    list.iter()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().map_err(|e| input("network", e)))
        .collect()
}

/// Browser origins as given (the service normalizes and checks them).
fn origins(list: &[String]) -> Vec<String> {
    list.iter()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

pub(crate) fn metadata(s: &str) -> CliResult<serde_json::Value> {
    serde_json::from_str(s).map_err(|e| input("metadata", e))
}

/// Runs `command` on `kw`; prints its results through `out`.
pub(crate) async fn run(kw: &Keyward, command: Command, out: Out) -> CliResult {
    match command {
        // The store was migrated when it was opened.
        Command::Migrate => {
            out.note("keyward: migrations applied", json!({ "migrated": true }));
            Ok(())
        }
        Command::Init(a) => init(kw, a, out).await,
        Command::Accounts(AccountsCommand::Create {
            name,
            permissions: p,
            id,
            parent,
        }) => {
            let mut new = NewAccount::new(name, permissions(&p)?);
            if let Some(id) = id {
                new = new.id(account_id(&id)?);
            }
            if let Some(parent) = parent {
                new = new.parent(account_id(&parent)?);
            }
            let account = kw.create_account(Actor::System, new).await?;
            out.account(&account);
            Ok(())
        }
        Command::Accounts(AccountsCommand::Show { id }) => {
            let account = kw.get_account(Actor::System, &account_id(&id)?).await?;
            out.account(&account);
            Ok(())
        }
        Command::Accounts(AccountsCommand::List(a)) => crate::apps::list_accounts(kw, a, out).await,
        Command::Accounts(AccountsCommand::Update {
            id,
            name,
            permissions,
            status,
        }) => crate::apps::update_account(kw, id, name, permissions, status, out).await,
        Command::Apps(a) => crate::apps::run(kw, a, out).await,
        Command::Keys(k) => keys(kw, k, out).await,
        Command::Events(a) => events(kw, a, out).await,
        Command::Usage(a) => usage(kw, a, out).await,
    }
}

async fn init(kw: &Keyward, a: InitArgs, out: Out) -> CliResult {
    let id = account_id(&a.account)?;
    match kw
        .bootstrap_admin(&id, permissions(&a.permissions)?)
        .await?
    {
        Some(issued) => {
            out.key_with_secret(&issued.key, &issued.secret, vec![]);
            Ok(())
        }
        None => {
            out.note(
                &format!(
                    "keyward: account {id} already has a key; nothing issued \
                     (a lost admin key: `keyward keys rotate <id>` or `keyward keys create --account {id} ...`)"
                ),
                json!({ "account_id": id, "issued": false }),
            );
            Ok(())
        }
    }
}

async fn keys(kw: &Keyward, command: KeysCommand, out: Out) -> CliResult {
    match command {
        KeysCommand::Create(c) => create(kw, c, out).await,
        KeysCommand::List(l) => list(kw, l, out).await,
        KeysCommand::Show { id } => {
            let key = kw.get_key(Actor::System, &key_id(&id)?).await?;
            out.key(&key, vec![]);
            Ok(())
        }
        KeysCommand::Update(u) => update(kw, u, out).await,
        KeysCommand::Import(a) => crate::import::run(kw, a, out).await,
        KeysCommand::Rotate { id, grace_seconds } => {
            let grace = grace_seconds.map(time::Duration::seconds);
            let r = kw.rotate_key(Actor::System, &key_id(&id)?, grace).await?;
            let mut extra = vec![(
                "effective by",
                r.effective_by.format(&Rfc3339).unwrap_or_default(),
            )];
            if let Some(until) = r.previous_secret_expires_at {
                extra.push((
                    "previous secret until",
                    until.format(&Rfc3339).unwrap_or_default(),
                ));
            }
            out.key_with_secret(&r.key, &r.secret, extra);
            Ok(())
        }
        KeysCommand::Activate { ids } => bulk(kw, ids, Op::Activate, out).await,
        KeysCommand::Deactivate { ids } => bulk(kw, ids, Op::Deactivate, out).await,
        KeysCommand::Delete { ids, force } => bulk(kw, ids, Op::Delete { force }, out).await,
    }
}

async fn create(kw: &Keyward, c: CreateKey, out: Out) -> CliResult {
    let account = account_id(&c.account)?;
    let mut new = NewKey::new(c.name)
        .permissions(permissions(&c.permissions)?)
        .protected(c.protected)
        .allowed_cidrs(cidrs(&c.cidrs)?)
        .allowed_origins(origins(&c.origins));
    if let Some(d) = c.description {
        new = new.description(d);
    }
    if let Some(a) = c.application {
        new = new.application(a);
    }
    if let Some(e) = c.expires_at {
        new = new.expires_at(rfc3339("expiry", &e)?);
    }
    if let Some(m) = c.metadata {
        new = new.metadata(metadata(&m)?);
    }
    let issued = kw.issue_key(Actor::System, &account, new).await?;
    out.key_with_secret(&issued.key, &issued.secret, vec![]);
    Ok(())
}

async fn list(kw: &Keyward, l: ListArgs, out: Out) -> CliResult {
    let account = account_id(&l.account)?;
    let mut query = ListKeys::new().limit(l.limit);
    if let Some(q) = l.q {
        query = query.q(q);
    }
    if let Some(s) = l.status {
        query = query.status(match s {
            Status::Active => KeyStatus::Active,
            Status::Inactive => KeyStatus::Inactive,
        });
    }
    if let Some(a) = l.application {
        query = query.application(a);
    }
    if let Some(c) = l.cursor {
        query = query.cursor(c);
    }
    let mut items = Vec::new();
    loop {
        let page = kw.list_keys(Actor::System, &account, query.clone()).await?;
        items.extend(page.items);
        match page.next_cursor {
            Some(c) if l.all => query = query.cursor(c),
            next => {
                out.keys(&items, next.as_deref());
                return Ok(());
            }
        }
    }
}

async fn update(kw: &Keyward, u: UpdateKey, out: Out) -> CliResult {
    let id = key_id(&u.id)?;
    let mut update = KeyUpdate::new();
    if let Some(n) = u.name {
        update = update.name(n);
    }
    if let Some(d) = u.description {
        update = update.description(d);
    }
    if let Some(a) = u.application {
        update = update.application(Some(a));
    } else if u.clear_application {
        update = update.application(None);
    }
    if let Some(p) = u.permissions {
        update = update.permissions(permissions(&p)?);
    }
    if let Some(e) = u.expires_at {
        update = update.expires_at(Some(rfc3339("expiry", &e)?));
    } else if u.no_expiry {
        update = update.expires_at(None);
    }
    if let Some(c) = u.cidrs {
        update = update.allowed_cidrs(cidrs(&c)?);
    }
    if let Some(o) = u.origins {
        update = update.allowed_origins(origins(&o));
    }
    if let Some(m) = u.metadata {
        update = update.metadata(metadata(&m)?);
    }
    let updated = kw.update_key(Actor::System, &id, update).await?;
    let extra = updated
        .effective_by
        .map(|t| vec![("effective by", t.format(&Rfc3339).unwrap_or_default())])
        .unwrap_or_default();
    out.key(&updated.key, extra);
    Ok(())
}

/// An operation applied to each id of a bulk command.
#[derive(Debug, Clone, Copy)]
enum Op {
    Activate,
    Deactivate,
    /// `force`: protected keys too (the CLI acts as `Actor::System`, which
    /// may delete them; without it the CLI refuses, exit code 4).
    Delete {
        force: bool,
    },
}

/// Applies `op` to every id (all are tried; a progress bar on stderr),
/// prints one row per id, and fails with the last failure's code.
async fn bulk(kw: &Keyward, ids: Vec<String>, op: Op, out: Out) -> CliResult {
    let bar = ProgressBar::new(ids.len() as u64);
    if ids.len() > 1 {
        bar.set_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
    } else {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let mut rows = Vec::with_capacity(ids.len());
    let mut last_failure = None;
    for id in ids {
        bar.set_message(id.clone());
        let r: CliResult<(&'static str, Option<OffsetDateTime>)> = async {
            let key = key_id(&id)?;
            Ok(match op {
                Op::Activate => (
                    "activated",
                    kw.activate_key(Actor::System, &key).await?.effective_by,
                ),
                Op::Deactivate => (
                    "deactivated",
                    kw.deactivate_key(Actor::System, &key).await?.effective_by,
                ),
                Op::Delete { force } => {
                    if !force && kw.get_key(Actor::System, &key).await?.protected {
                        return Err(keyward::Error::Protected.into());
                    }
                    (
                        "deleted",
                        Some(kw.delete_key(Actor::System, &key).await?.effective_by),
                    )
                }
            })
        }
        .await;
        rows.push(match r {
            Ok((result, effective_by)) => Bulk {
                id,
                result,
                effective_by,
                error: None,
            },
            Err(e) => {
                let row = Bulk {
                    id,
                    result: "failed",
                    effective_by: None,
                    error: Some(e.to_string()),
                };
                last_failure = Some(e);
                row
            }
        });
        bar.inc(1);
    }
    bar.finish_and_clear();
    out.bulk(&rows);
    last_failure.map_or(Ok(()), Err)
}

async fn events(kw: &Keyward, a: EventsArgs, out: Out) -> CliResult {
    let account = account_id(&a.account)?;
    let key = a.key.as_deref().map(key_id).transpose()?;
    let page = kw
        .events(
            Actor::System,
            &account,
            key.as_ref(),
            a.limit,
            a.cursor.as_deref(),
        )
        .await?;
    out.events(&page.items, page.next_cursor.as_deref());
    Ok(())
}

async fn usage(kw: &Keyward, a: UsageArgs, out: Out) -> CliResult {
    let account = account_id(&a.account)?;
    let now = kw.now();
    let to =
        a.to.as_deref()
            .map(|s| rfc3339("to", s))
            .transpose()?
            .unwrap_or(now);
    let from = a
        .from
        .as_deref()
        .map(|s| rfc3339("from", s))
        .transpose()?
        .unwrap_or(to - time::Duration::hours(24));
    let mut filter = UsageFilter::between(from, to);
    if let Some(k) = a.key {
        filter = filter.key(key_id(&k)?);
    }
    if let Some(o) = a.origin {
        filter = filter.origin(keyward::Label::new(&o).map_err(|e| input("origin", e))?);
    }
    let rows = kw.usage(Actor::System, &account, filter).await?;
    out.usage(&rows);
    Ok(())
}
