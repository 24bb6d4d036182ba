//! A demo of the host application's own login in front of keyward's
//! management API and console (`KEYWARD_DEMO_HOST_LOGIN=<password>`).
//!
//! The host owns the cookie: `POST /host/login` (form `user`, `password`)
//! checks the password, keeps a random session id in this process's memory
//! and sets `demo_host_session=<id>; HttpOnly; SameSite=Strict; Path=/`;
//! a middleware turns the cookie into a [`HostUser`] on every request;
//! `POST /host/logout` ends it. The console never sees a secret: it calls
//! the API with the browser's cookie and shows "Signed in as …".
//!
//! Two demo people of the bootstrap `admin` account: `ada` (Ada Admin, the
//! admin's permissions) and `sam` (Sam Staff, `readApiKeys` only).
//! A demo, not a product login: one shared password, sessions in memory.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use keyward::http::HostUser;
use keyward::{AccountId, PermissionSet, User};

/// The host's cookie.
pub(crate) const COOKIE: &str = "demo_host_session";

/// Where the host signs in and out.
pub(crate) const LOGIN_PATH: &str = "/host/login";
/// `POST` here ends the host's session (the console's "Sign out").
pub(crate) const LOGOUT_PATH: &str = "/host/logout";

/// The host's sign-in page (its own, not the console's).
pub(crate) const LOGIN_PAGE: &str = "<!doctype html>
<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Demo host: sign in</title></head>
<body><h1>Demo host application</h1>
<form method=\"post\" action=\"/host/login\">
<label for=\"user\">Person</label>
<select id=\"user\" name=\"user\"><option value=\"ada\">Ada Admin</option><option value=\"sam\">Sam Staff</option></select>
<label for=\"password\">Password</label>
<input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\">
<button type=\"submit\">Sign in</button>
</form></body></html>
";

/// The host page's own policy: no script at all, forms only to itself.
pub(crate) const LOGIN_PAGE_CSP: &str =
    "default-src 'none'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The demo host's sessions: random id → person.
#[derive(Clone)]
pub(crate) struct DemoHostLogin {
    password: Arc<str>,
    sessions: Arc<Mutex<HashMap<String, HostUser>>>,
}

impl std::fmt::Debug for DemoHostLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DemoHostLogin").finish_non_exhaustive()
    }
}

/// What a sign-in attempt gives.
pub(crate) enum SignIn {
    /// The `Set-Cookie` value of the new session.
    Ok(String),
    /// Unknown person or wrong password (which one is not said).
    Refused,
}

impl DemoHostLogin {
    /// Enabled by `KEYWARD_DEMO_HOST_LOGIN=<password>` (at least 8
    /// characters).
    pub(crate) fn from_env() -> Option<Self> {
        let password = std::env::var("KEYWARD_DEMO_HOST_LOGIN").ok()?;
        if password.len() < 8 {
            tracing::warn!(
                "KEYWARD_DEMO_HOST_LOGIN needs at least 8 characters; demo host login off"
            );
            return None;
        }
        tracing::info!(path = LOGIN_PATH, "demo host login on");
        Some(Self {
            password: password.into(),
            sessions: Arc::default(),
        })
    }

    /// Checks a form body `user=…&password=…`.
    pub(crate) fn sign_in(&self, form: &[u8]) -> SignIn {
        let fields: HashMap<String, String> =
            serde_urlencoded::from_bytes(form).unwrap_or_default();
        let given = fields
            .get("password")
            .map(String::as_bytes)
            .unwrap_or_default();
        let ok: bool = subtle::ConstantTimeEq::ct_eq(
            &blake3::hash(given).as_bytes()[..],
            &blake3::hash(self.password.as_bytes()).as_bytes()[..],
        )
        .into();
        let Some(person) = fields.get("user").and_then(|u| person(u)) else {
            return SignIn::Refused;
        };
        if !ok {
            return SignIn::Refused;
        }
        let mut raw = [0u8; 32];
        rand::TryRng::try_fill_bytes(&mut rand::rngs::SysRng, &mut raw)
            .expect("the operating system's random number generator failed");
        let id: String = raw.iter().map(|b| format!("{b:02x}")).collect();
        self.lock().insert(id.clone(), person);
        SignIn::Ok(format!("{COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/"))
    }

    /// The person of a request's `Cookie` header values, if signed in.
    pub(crate) fn user<'a>(&self, cookies: impl Iterator<Item = &'a [u8]>) -> Option<HostUser> {
        let id = session_id(cookies)?;
        self.lock().get(&id).cloned()
    }

    /// Ends the session of the request's cookie; the `Set-Cookie` value
    /// that clears it.
    pub(crate) fn sign_out<'a>(&self, cookies: impl Iterator<Item = &'a [u8]>) -> String {
        if let Some(id) = session_id(cookies) {
            self.lock().remove(&id);
        }
        format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0")
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, HostUser>> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn session_id<'a>(mut cookies: impl Iterator<Item = &'a [u8]>) -> Option<String> {
    cookies.find_map(|v| {
        std::str::from_utf8(v).ok()?.split(';').find_map(|c| {
            let (k, v) = c.trim().split_once('=')?;
            (k == COOKIE && !v.is_empty()).then(|| v.to_owned())
        })
    })
}

/// The demo's people.
fn person(user: &str) -> Option<HostUser> {
    let account = AccountId::new(super::ADMIN_ACCOUNT).ok()?;
    let (id, name, perms): (&str, &str, &[&str]) = match user {
        "ada" => ("ada", "Ada Admin", super::ADMIN_PERMISSIONS),
        "sam" => ("sam", "Sam Staff", &["readApiKeys"]),
        _ => return None,
    };
    let perms = PermissionSet::parse(perms.iter().copied()).ok()?;
    User::new(id, name, account, perms).ok().map(HostUser::new)
}

/// The console's configuration: with the host's sign-out path when the
/// demo host login is on.
#[cfg(feature = "console")]
pub(crate) fn console_config(demo: Option<&DemoHostLogin>) -> keyward::http::ConsoleConfig {
    let c = keyward::http::ConsoleConfig::default();
    if demo.is_some() {
        c.host_sign_out(LOGOUT_PATH)
    } else {
        c
    }
}

/// axum: the host's sign-in routes and the middleware that puts the
/// cookie's person on every request (outermost, so it covers all routes).
#[cfg(feature = "axum")]
#[allow(dead_code)] // the actix example server uses the actix half
pub(crate) fn axum_mount(app: axum::Router, demo: Option<DemoHostLogin>) -> axum::Router {
    use axum::body::Bytes;
    use axum::extract::Request;
    use axum::http::{HeaderMap, StatusCode, header};
    use axum::middleware::{self, Next};
    use axum::response::{IntoResponse, Response};
    use axum::routing::{get, post};

    let Some(demo) = demo else { return app };
    let cookies = |h: &HeaderMap| -> Vec<Vec<u8>> {
        h.get_all(header::COOKIE)
            .iter()
            .map(|v| v.as_bytes().to_vec())
            .collect()
    };
    let (d1, d2, d3) = (demo.clone(), demo.clone(), demo);
    let page = || async {
        (
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::CONTENT_SECURITY_POLICY, LOGIN_PAGE_CSP),
            ],
            LOGIN_PAGE,
        )
    };
    let login = move |body: Bytes| async move {
        match d1.sign_in(&body) {
            SignIn::Ok(cookie) => (
                StatusCode::SEE_OTHER,
                [
                    (header::SET_COOKIE, cookie),
                    (header::LOCATION, "/console/".to_owned()),
                ],
            )
                .into_response(),
            SignIn::Refused => (
                StatusCode::UNAUTHORIZED,
                "not signed in: unknown person or wrong password\n",
            )
                .into_response(),
        }
    };
    let logout = move |headers: HeaderMap| async move {
        let c = cookies(&headers);
        let clear = d2.sign_out(c.iter().map(Vec::as_slice));
        (StatusCode::NO_CONTENT, [(header::SET_COOKIE, clear)]).into_response()
    };
    let attach = move |mut req: Request, next: Next| {
        let demo = d3.clone();
        async move {
            let c = cookies(req.headers());
            if let Some(u) = demo.user(c.iter().map(Vec::as_slice)) {
                req.extensions_mut().insert(u);
            }
            let r: Response = next.run(req).await;
            r
        }
    };
    app.route(LOGIN_PATH, get(page).post(login))
        .route(LOGOUT_PATH, post(logout))
        .layer(middleware::from_fn(attach))
}

/// actix-web: the host's sign-in routes (register before a root scope).
#[cfg(feature = "actix")]
#[allow(dead_code)] // the axum example server uses the axum half
pub(crate) fn actix_routes(
    demo: Option<DemoHostLogin>,
) -> impl FnOnce(&mut actix_web::web::ServiceConfig) {
    use actix_web::http::header;
    use actix_web::{HttpRequest, HttpResponse, web};
    move |cfg| {
        let Some(demo) = demo else { return };
        let (d1, d2) = (demo.clone(), demo);
        cfg.service(
            web::resource(LOGIN_PATH)
                .route(web::get().to(|| async {
                    HttpResponse::Ok()
                        .content_type("text/html; charset=utf-8")
                        .insert_header((header::CONTENT_SECURITY_POLICY, LOGIN_PAGE_CSP))
                        .body(LOGIN_PAGE)
                }))
                .route(web::post().to(move |body: web::Bytes| {
                    let demo = d1.clone();
                    async move {
                        match demo.sign_in(&body) {
                            SignIn::Ok(cookie) => HttpResponse::SeeOther()
                                .insert_header((header::SET_COOKIE, cookie))
                                .insert_header((header::LOCATION, "/console/"))
                                .finish(),
                            SignIn::Refused => HttpResponse::Unauthorized()
                                .body("not signed in: unknown person or wrong password\n"),
                        }
                    }
                })),
        )
        .service(
            web::resource(LOGOUT_PATH).route(web::post().to(move |req: HttpRequest| {
                let demo = d2.clone();
                async move {
                    let clear =
                        demo.sign_out(req.headers().get_all(header::COOKIE).map(|v| v.as_bytes()));
                    HttpResponse::NoContent()
                        .insert_header((header::SET_COOKIE, clear))
                        .finish()
                }
            })),
        );
    }
}

/// actix-web: puts the cookie's person on the request (from `wrap_fn`).
#[cfg(feature = "actix")]
#[allow(dead_code)] // the axum example server uses the axum half
pub(crate) fn actix_attach(demo: Option<&DemoHostLogin>, req: &actix_web::dev::ServiceRequest) {
    use actix_web::HttpMessage as _;
    let cookies = req
        .headers()
        .get_all(actix_web::http::header::COOKIE)
        .map(|v| v.as_bytes());
    if let Some(u) = demo.and_then(|d| d.user(cookies)) {
        req.extensions_mut().insert(u);
    }
}
