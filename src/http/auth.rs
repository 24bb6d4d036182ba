//! Authenticating a request: credentials, client address, `x-account-id`.

use std::net::IpAddr;

use crate::context::VerifyContext;
use crate::http::config::HttpConfig;
use crate::http::error::HttpError;
use crate::http::headers::{self, Credentials, RequestHeaders};
use crate::principal::Principal;
use crate::service::Keyward;

/// The request's principal; `Ok(None)` when it presented no credentials.
pub(crate) async fn authenticate(
    kw: &Keyward,
    cfg: &HttpConfig,
    h: &RequestHeaders<'_>,
    client_ip: Option<IpAddr>,
) -> Result<Option<Principal>, HttpError> {
    let Some(creds) = headers::credentials(cfg, h)? else {
        return Ok(None);
    };
    let account = headers::account_id(cfg, h)?;
    let mut ctx = VerifyContext::new();
    ctx.client_ip = client_ip;
    let verified = match creds {
        Credentials::Key { id, secret } => kw.verify(id, secret, ctx).await,
        Credentials::Bearer(token) => kw.verify_bearer(token, ctx).await,
    };
    let principal = verified.map_err(|e| HttpError::from_service(cfg, e))?;
    match account {
        Some(a) => kw
            .act_for(&principal, &a)
            .await
            .map(Some)
            .map_err(|e| HttpError::from_service(cfg, e)),
        None => Ok(Some(principal)),
    }
}

/// The request's principal; 401 when it presented no credentials.
pub(crate) async fn require(
    kw: &Keyward,
    cfg: &HttpConfig,
    h: &RequestHeaders<'_>,
    client_ip: Option<IpAddr>,
) -> Result<Principal, HttpError> {
    authenticate(kw, cfg, h, client_ip)
        .await?
        .ok_or_else(|| HttpError::missing_credentials(cfg))
}
