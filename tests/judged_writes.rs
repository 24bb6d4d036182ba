//! No management write decided on a stale read (issue 12): a stronger
//! actor's change lands between the weaker actor's read and its write (the
//! counting store runs it just before the write), and the write is refused
//! or judged again on the new state, never applied to what the weaker
//! actor did not see. On the memory store, SQLite and PostgreSQL.

#[path = "store_support/mod.rs"]
mod common;

use std::sync::Arc;

use common::counting::Counting;
use keyward::store::KeyStore;
use keyward::{
    Account, AccountStatus, AccountUpdate, Actor, AppStatus, AppUpdate, AuditAction, Error,
    IssuedKey, KeyUpdate, Keyward, MemoryStore, NewAccount, NewApp, NewKey, PermissionSet,
    Principal, VerifyContext,
};

fn perms(names: &[&str]) -> PermissionSet {
    PermissionSet::parse(names).expect("perms")
}

const ACCOUNT: &[&str] = &[
    "readApiKeys",
    "writeApiKeys",
    "readAccounts",
    "writeAccounts",
    "readApplications",
    "writeApplications",
];

/// The weaker actor's instance (behind the counting store) and the
/// stronger one's (the system, straight on the store), one account, and a
/// principal that manages keys and accounts but lacks `writeApplications`.
struct Race {
    kw: Keyward,
    strong: Keyward,
    store: Arc<Counting>,
    account: Account,
    weak: Principal,
}

async fn race(inner: Arc<dyn KeyStore>) -> Race {
    let strong = common::service(inner.clone(), None, 30);
    let store = Counting::forwarding(inner);
    let kw = common::service(store.clone(), None, 30);
    let account = strong
        .create_account(Actor::System, NewAccount::new("Acme", perms(ACCOUNT)))
        .await
        .expect("account");
    let key = strong
        .issue_key(
            Actor::System,
            &account.id,
            NewKey::new("weak").permissions(perms(&[
                "readApiKeys",
                "writeApiKeys",
                "readAccounts",
                "writeAccounts",
                "readApplications",
            ])),
        )
        .await
        .expect("weak key");
    let weak = kw
        .verify(
            key.key.id.as_str(),
            key.secret.expose(),
            VerifyContext::new(),
        )
        .await
        .expect("verifies");
    Race {
        kw,
        strong,
        store,
        account,
        weak,
    }
}

impl Race {
    async fn issue(&self, new: NewKey) -> IssuedKey {
        self.strong
            .issue_key(Actor::System, &self.account.id, new)
            .await
            .expect("issued")
    }

    /// How many events of `action` the account (and its children) has.
    async fn count(&self, action: AuditAction) -> usize {
        let mut n = 0;
        for account in [self.account.id].into_iter().chain(self.children().await) {
            n += self
                .strong
                .events(Actor::System, &account, None, 100, None)
                .await
                .expect("events")
                .items
                .iter()
                .filter(|e| e.action == action)
                .count();
        }
        n
    }

    async fn children(&self) -> Vec<keyward::AccountId> {
        self.strong
            .list_accounts(Actor::System, &self.account.id, Default::default())
            .await
            .expect("children")
            .items
            .into_iter()
            .map(|a| a.id)
            .collect()
    }
}

fn lacks_write_applications(e: &Error) -> bool {
    matches!(e, Error::PermissionNotHeld { permissions } if *permissions == perms(&["writeApplications"]))
}

/// `delete_key`: the key was widened after the weaker actor read it; the
/// deletion is judged again on the widened key and refused.
async fn delete_of_a_key_widened_meanwhile_is_refused(inner: Arc<dyn KeyStore>) {
    let r = race(inner).await;
    let target = r
        .issue(NewKey::new("target").permissions(perms(&["readApplications"])))
        .await;
    let (strong, id) = (r.strong.clone(), target.key.id);
    r.store.before_next_write(move || async move {
        strong
            .update_key(
                Actor::System,
                &id,
                KeyUpdate::new().permissions(perms(&["readApplications", "writeApplications"])),
            )
            .await
            .expect("widened");
    });
    let e =
        r.kw.delete_key(Actor::Principal(&r.weak), &id)
            .await
            .expect_err("a stronger key deleted");
    assert!(lacks_write_applications(&e), "{e:?}");
    let k = r.strong.get_key(Actor::System, &id).await.expect("kept");
    assert!(k.permissions.contains_name("writeApplications"));
    assert_eq!(r.count(AuditAction::KeyDeleted).await, 0);
    // Still within the bound when nothing races: deleted.
    let peer = r
        .issue(NewKey::new("peer").permissions(perms(&["readApplications"])))
        .await;
    r.kw.delete_key(Actor::Principal(&r.weak), &peer.key.id)
        .await
        .expect("within the bound");
    assert_eq!(r.count(AuditAction::KeyDeleted).await, 1);
}

/// `rotate_key`: widened after the weaker actor read it, the key's
/// rotation is judged again and refused (no new secret for a key beyond
/// the actor); renamed meanwhile (nothing stronger), the rotation is judged
/// again and goes through, keeping the new name, and only the new secret
/// verifies.
async fn rotation_rejudges_a_key_changed_meanwhile(inner: Arc<dyn KeyStore>) {
    let r = race(inner).await;
    let target = r
        .issue(NewKey::new("target").permissions(perms(&["readApplications"])))
        .await;
    let (strong, id) = (r.strong.clone(), target.key.id);
    r.store.before_next_write(move || async move {
        strong
            .update_key(
                Actor::System,
                &id,
                KeyUpdate::new().permissions(perms(&["readApplications", "writeApplications"])),
            )
            .await
            .expect("widened");
    });
    let e =
        r.kw.rotate_key(Actor::Principal(&r.weak), &id, None)
            .await
            .expect_err("a stronger key rotated");
    assert!(lacks_write_applications(&e), "{e:?}");
    assert_eq!(r.count(AuditAction::KeyRotated).await, 0);
    assert!(
        r.strong
            .verify(id.as_str(), target.secret.expose(), VerifyContext::new())
            .await
            .is_ok(),
        "the refused rotation changed the secret"
    );

    let peer = r
        .issue(NewKey::new("peer").permissions(perms(&["readApplications"])))
        .await;
    let (strong, id) = (r.strong.clone(), peer.key.id);
    r.store.before_next_write(move || async move {
        strong
            .update_key(Actor::System, &id, KeyUpdate::new().name("peer, renamed"))
            .await
            .expect("renamed");
    });
    let rotated =
        r.kw.rotate_key(Actor::Principal(&r.weak), &id, None)
            .await
            .expect("judged again and rotated");
    assert_eq!(rotated.key.name, "peer, renamed");
    assert_eq!(r.count(AuditAction::KeyRotated).await, 1);
    let fresh = common::service(r.store.clone(), None, 30);
    assert!(
        fresh
            .verify(id.as_str(), rotated.secret.expose(), VerifyContext::new())
            .await
            .is_ok()
    );
    assert!(
        fresh
            .verify(id.as_str(), peer.secret.expose(), VerifyContext::new())
            .await
            .is_err()
    );
}

/// `update_app`: a stronger key joined the application (issued into it,
/// or a protected one) after the weaker actor read its keys; the switch-off
/// is judged again with it and refused, so that key keeps working.
async fn switch_off_of_an_app_a_stronger_key_joined_is_refused(inner: Arc<dyn KeyStore>) {
    let r = race(inner).await;
    for protected in [false, true] {
        let app = r
            .strong
            .create_app(Actor::System, &r.account.id, NewApp::new("Mobile"))
            .await
            .expect("app");
        r.issue(
            NewKey::new("weak one")
                .app(app.id)
                .permissions(perms(&["readApplications"])),
        )
        .await;
        let strong = r.strong.clone();
        let (account, app_id) = (r.account.id, app.id);
        let (tx, rx) = tokio::sync::oneshot::channel();
        r.store.before_next_write(move || async move {
            let joined = strong
                .issue_key(
                    Actor::System,
                    &account,
                    NewKey::new("strong")
                        .app(app_id)
                        .protected(protected)
                        .permissions(perms(&["readApplications", "writeApplications"])),
                )
                .await
                .expect("joined");
            let _ = tx.send(joined);
        });
        let e =
            r.kw.update_app(
                Actor::Principal(&r.weak),
                &app.id,
                AppUpdate::new().status(AppStatus::Inactive),
            )
            .await
            .expect_err("switched a stronger key off");
        if protected {
            assert!(matches!(e, Error::Protected), "{e:?}");
        } else {
            assert!(lacks_write_applications(&e), "{e:?}");
        }
        let joined = rx.await.expect("the change ran");
        let got = r.strong.get_app(Actor::System, &app.id).await.expect("app");
        assert_eq!((got.status, got.active_keys), (AppStatus::Active, 2));
        r.kw.verify(
            joined.key.id.as_str(),
            joined.secret.expose(),
            VerifyContext::new(),
        )
        .await
        .expect("the stronger key still works");
    }
    assert_eq!(r.count(AuditAction::AppDeactivated).await, 0);
}

/// `update_app`: a change in between that leaves the application within
/// the weaker actor's bound (a key renamed) is judged again and the
/// switch-off goes through, once.
async fn switch_off_rejudged_within_the_bound_goes_through(inner: Arc<dyn KeyStore>) {
    let r = race(inner).await;
    let app = r
        .strong
        .create_app(Actor::System, &r.account.id, NewApp::new("Mobile"))
        .await
        .expect("app");
    let k = r
        .issue(
            NewKey::new("member")
                .app(app.id)
                .permissions(perms(&["readApplications"])),
        )
        .await;
    let (strong, id) = (r.strong.clone(), k.key.id);
    r.store.before_next_write(move || async move {
        strong
            .update_key(Actor::System, &id, KeyUpdate::new().name("renamed"))
            .await
            .expect("renamed");
    });
    let done =
        r.kw.update_app(
            Actor::Principal(&r.weak),
            &app.id,
            AppUpdate::new().status(AppStatus::Inactive),
        )
        .await
        .expect("within the bound after the re-read");
    assert_eq!(done.app.status, AppStatus::Inactive);
    assert!(done.effective_by.is_some());
    assert_eq!(r.count(AuditAction::AppDeactivated).await, 1);
    let e =
        r.kw.verify(k.key.id.as_str(), k.secret.expose(), VerifyContext::new())
            .await
            .expect_err("its key stopped");
    assert!(matches!(e, Error::KeyInactive), "{e:?}");
}

/// `update_app`: a rename judged while the application was active must not
/// switch it back on after a stronger actor switched it off in between.
async fn stale_rename_does_not_reactivate_an_app(inner: Arc<dyn KeyStore>) {
    let r = race(inner).await;
    let app = r
        .strong
        .create_app(Actor::System, &r.account.id, NewApp::new("Mobile"))
        .await
        .expect("app");
    r.issue(
        NewKey::new("strong")
            .app(app.id)
            .permissions(perms(&["writeApplications"])),
    )
    .await;
    let (strong, app_id) = (r.strong.clone(), app.id);
    r.store.before_next_write(move || async move {
        strong
            .update_app(
                Actor::System,
                &app_id,
                AppUpdate::new().status(AppStatus::Inactive),
            )
            .await
            .expect("switched off");
    });
    let done =
        r.kw.update_app(
            Actor::Principal(&r.weak),
            &app.id,
            AppUpdate::new().title("Mobile v2"),
        )
        .await
        .expect("renamed");
    assert_eq!(
        (done.app.title.as_str(), done.app.status),
        ("Mobile v2", AppStatus::Inactive)
    );
    let got = r.strong.get_app(Actor::System, &app.id).await.expect("app");
    assert_eq!(got.status, AppStatus::Inactive);
    assert_eq!(r.count(AuditAction::AppActivated).await, 0);
}

/// `delete_app` with `cascade`: a stronger key joined while the judged keys
/// were being deleted; the application is judged again with it, and it
/// and the stronger key stay.
async fn cascade_delete_rejudges_a_key_that_joined(inner: Arc<dyn KeyStore>) {
    let r = race(inner).await;
    let app = r
        .strong
        .create_app(Actor::System, &r.account.id, NewApp::new("Mobile"))
        .await
        .expect("app");
    r.issue(
        NewKey::new("weak one")
            .app(app.id)
            .permissions(perms(&["readApplications"])),
    )
    .await;
    let strong = r.strong.clone();
    let (account, app_id) = (r.account.id, app.id);
    r.store.before_next_write(move || async move {
        strong
            .issue_key(
                Actor::System,
                &account,
                NewKey::new("strong")
                    .app(app_id)
                    .permissions(perms(&["writeApplications"])),
            )
            .await
            .expect("joined");
    });
    let e =
        r.kw.delete_app(Actor::Principal(&r.weak), &app.id, true)
            .await
            .expect_err("deleted a stronger key's application");
    assert!(lacks_write_applications(&e), "{e:?}");
    let got = r
        .strong
        .get_app(Actor::System, &app.id)
        .await
        .expect("kept");
    assert_eq!(got.active_keys, 1);
    assert_eq!(r.count(AuditAction::AppDeleted).await, 0);
}

/// `update_account`: the child account was widened after the weaker actor
/// read it; the deactivation is judged again on the widened account and
/// refused.
async fn account_widened_meanwhile_is_not_deactivated(inner: Arc<dyn KeyStore>) {
    let r = race(inner).await;
    let child = r
        .strong
        .create_account(
            Actor::System,
            NewAccount::new("Customer", perms(&["readApplications"])).parent(r.account.id),
        )
        .await
        .expect("child");
    let (strong, id) = (r.strong.clone(), child.id);
    r.store.before_next_write(move || async move {
        strong
            .update_account(
                Actor::System,
                &id,
                AccountUpdate::new().permissions(perms(&["readApplications", "writeApplications"])),
            )
            .await
            .expect("widened");
    });
    let e =
        r.kw.update_account(
            Actor::Principal(&r.weak),
            &child.id,
            AccountUpdate::new().status(AccountStatus::Inactive),
        )
        .await
        .expect_err("a stronger account deactivated");
    assert!(lacks_write_applications(&e), "{e:?}");
    let got = r
        .strong
        .get_account(Actor::System, &child.id)
        .await
        .expect("child");
    assert_eq!(got.status, AccountStatus::Active);
    assert!(got.permissions.contains_name("writeApplications"));
    assert_eq!(r.count(AuditAction::AccountDeactivated).await, 0);
    // Without a race, within the bound: written, with a new version.
    let before = got.version;
    let narrow = r
        .strong
        .create_account(
            Actor::System,
            NewAccount::new("Small", perms(&["readApplications"])).parent(r.account.id),
        )
        .await
        .expect("child");
    let done =
        r.kw.update_account(
            Actor::Principal(&r.weak),
            &narrow.id,
            AccountUpdate::new().status(AccountStatus::Inactive),
        )
        .await
        .expect("within the bound");
    assert_eq!(done.account.version, narrow.version + 1);
    assert!(before > child.version, "the widening moved the version");
}

macro_rules! on_every_store {
    ($($case:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test]
                async fn $case() {
                    super::$case(std::sync::Arc::new(super::MemoryStore::new())).await;
                }
            )*
        }

        #[cfg(feature = "sqlite")]
        mod sqlite {
            $(
                #[tokio::test]
                async fn $case() {
                    let store = keyward::store::SqliteStore::connect("sqlite::memory:")
                        .await
                        .expect("sqlite");
                    super::$case(std::sync::Arc::new(store)).await;
                }
            )*
        }

        #[cfg(feature = "postgres")]
        mod postgres {
            $(
                #[tokio::test]
                async fn $case() {
                    let Some(url) = super::common::pg_url() else { return };
                    let schema = super::common::schema_name();
                    let store = super::common::pg_store(&url, &schema, |o| o).await;
                    super::$case(std::sync::Arc::new(store)).await;
                    super::common::drop_schema(&url, &schema).await;
                }
            )*
        }
    };
}

on_every_store!(
    delete_of_a_key_widened_meanwhile_is_refused,
    rotation_rejudges_a_key_changed_meanwhile,
    switch_off_of_an_app_a_stronger_key_joined_is_refused,
    switch_off_rejudged_within_the_bound_goes_through,
    stale_rename_does_not_reactivate_an_app,
    cascade_delete_rejudges_a_key_that_joined,
    account_widened_meanwhile_is_not_deactivated,
);
