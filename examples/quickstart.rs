//! Issue a key, verify it, log in with it, deactivate it.
//!
//! `cargo run --example quickstart`

use keyward::{Actor, Keyward, MemoryStore, NewAccount, NewKey, PermissionSet, VerifyContext};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let kw = Keyward::builder().store(MemoryStore::new()).build()?;
    let perms = PermissionSet::parse(["readApplications"])?;
    let acme = kw
        .create_account(Actor::System, NewAccount::new("Acme", perms.clone()))
        .await?;

    // The secret is shown once; only its argon2id hash is stored.
    let issued = kw
        .issue_key(
            Actor::System,
            &acme.id,
            NewKey::new("ci").permissions(perms),
        )
        .await?;
    println!(
        "key id: {}  secret: {}",
        issued.key.id,
        issued.secret.expose()
    );

    // Every request: x-api-key + x-api-secret.
    let ctx = VerifyContext::new();
    let who = kw
        .verify(issued.key.id.as_str(), issued.secret.expose(), ctx)
        .await?;
    println!(
        "verified: account {} with {:?}",
        who.account_id(),
        who.permissions()
    );

    // Or log in once and send the bearer token.
    let session = kw
        .login(issued.key.id.as_str(), issued.secret.expose(), ctx)
        .await?;
    kw.verify_bearer(session.token.expose(), ctx).await?;
    println!("session valid until {}", session.expires_at());

    // Deactivate: effective here at once, everywhere by `effective_by`.
    let off = kw.deactivate_key(Actor::System, &issued.key.id).await?;
    println!(
        "deactivated; effective everywhere by {:?}",
        off.effective_by
    );
    let refused = kw
        .verify(issued.key.id.as_str(), issued.secret.expose(), ctx)
        .await;
    println!(
        "verify after deactivation: {}",
        refused.err().map_or("accepted?!".into(), |e| e.to_string())
    );
    assert!(kw.verify_bearer(session.token.expose(), ctx).await.is_err());
    kw.shutdown().await?;
    Ok(())
}
