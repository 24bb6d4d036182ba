//! `apps …` and the account listing and updates, as `Actor::System`.

use keyward::{
    AccountStatus, AccountUpdate, Actor, AppId, AppStatus, AppUpdate, Keyward, ListAccounts,
    ListApps, NewApp,
};
use serde_json::json;

use crate::args::{AppsCommand, ListAccountsArgs, Status};
use crate::commands::{account_id, permissions};
use crate::exit::{CliResult, input};
use crate::output::Out;

fn app_id(s: &str) -> CliResult<AppId> {
    AppId::new(s).map_err(|e| input("application id", e))
}

fn app_status(s: Status) -> AppStatus {
    match s {
        Status::Active => AppStatus::Active,
        Status::Inactive => AppStatus::Inactive,
    }
}

fn account_status(s: Status) -> AccountStatus {
    match s {
        Status::Active => AccountStatus::Active,
        Status::Inactive => AccountStatus::Inactive,
    }
}

/// `accounts list`.
pub(crate) async fn list_accounts(kw: &Keyward, a: ListAccountsArgs, out: Out) -> CliResult {
    let mut list = ListAccounts::new().limit(a.limit);
    if let Some(q) = a.q {
        list = list.q(q);
    }
    if let Some(s) = a.status {
        list = list.status(account_status(s));
    }
    if let Some(c) = a.cursor {
        list = list.cursor(c);
    }
    let page = kw
        .list_accounts(Actor::System, &account_id(&a.parent)?, list)
        .await?;
    out.accounts(&page.items, page.next_cursor.as_deref());
    Ok(())
}

/// `accounts update`.
pub(crate) async fn update_account(
    kw: &Keyward,
    id: String,
    name: Option<String>,
    perms: Option<Vec<String>>,
    status: Option<Status>,
    out: Out,
) -> CliResult {
    let mut update = AccountUpdate::new();
    if let Some(n) = name {
        update = update.name(n);
    }
    if let Some(p) = perms {
        update = update.permissions(permissions(&p)?);
    }
    if let Some(s) = status {
        update = update.status(account_status(s));
    }
    let r = kw
        .update_account(Actor::System, &account_id(&id)?, update)
        .await?;
    out.account_updated(&r.account, r.effective_by);
    Ok(())
}

/// `apps …`.
pub(crate) async fn run(kw: &Keyward, command: AppsCommand, out: Out) -> CliResult {
    match command {
        AppsCommand::List {
            account,
            q,
            status,
            limit,
            cursor,
        } => {
            let mut list = ListApps::new().limit(limit);
            if let Some(q) = q {
                list = list.q(q);
            }
            if let Some(s) = status {
                list = list.status(app_status(s));
            }
            if let Some(c) = cursor {
                list = list.cursor(c);
            }
            let page = kw
                .list_apps(Actor::System, &account_id(&account)?, list)
                .await?;
            out.apps(&page.items, page.next_cursor.as_deref());
        }
        AppsCommand::Create {
            account,
            title,
            description,
        } => {
            let mut new = NewApp::new(title);
            if let Some(d) = description {
                new = new.description(d);
            }
            let app = kw
                .create_app(Actor::System, &account_id(&account)?, new)
                .await?;
            out.app(&app, None);
        }
        AppsCommand::Show { id } => {
            let app = kw.get_app(Actor::System, &app_id(&id)?).await?;
            out.app(&app, None);
        }
        AppsCommand::Update {
            id,
            title,
            description,
        } => {
            let mut update = AppUpdate::new();
            if let Some(t) = title {
                update = update.title(t);
            }
            if let Some(d) = description {
                update = update.description(d);
            }
            let r = kw.update_app(Actor::System, &app_id(&id)?, update).await?;
            out.app(&r.app, r.effective_by);
        }
        AppsCommand::Activate { id } => set_status(kw, &id, AppStatus::Active, out).await?,
        AppsCommand::Deactivate { id } => set_status(kw, &id, AppStatus::Inactive, out).await?,
        AppsCommand::Delete { id, cascade } => {
            let r = kw.delete_app(Actor::System, &app_id(&id)?, cascade).await?;
            out.note(
                &format!(
                    "keyward: application {} deleted with {} key(s); effective everywhere by {}",
                    r.id,
                    r.deleted_keys.len(),
                    r.effective_by
                ),
                json!({ "id": r.id, "deleted": true, "deleted_keys": r.deleted_keys, "effective_by": r.effective_by.format(&time::format_description::well_known::Rfc3339).ok() }),
            );
        }
    }
    Ok(())
}

async fn set_status(kw: &Keyward, id: &str, status: AppStatus, out: Out) -> CliResult {
    let r = kw
        .update_app(Actor::System, &app_id(id)?, AppUpdate::new().status(status))
        .await?;
    out.app(&r.app, r.effective_by);
    Ok(())
}
