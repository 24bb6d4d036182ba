//! The keyward example server (axum): the management API, `/auth/*`,
//! `/openapi.json`, a demo `/applications` resource (counted in usage as
//! origin `api`, category `analytics` to read and `realtime` to write) and
//! a demo `POST /mcp` endpoint (origin `mcp`, category `realtime`), as an
//! MCP server in front of the API would be.
//!
//! ```sh
//! KEYWARD_DATABASE_URL=sqlite://keyward.db cargo run --example server --features axum,sqlite
//! ```
//!
//! `KEYWARD_HEADER_READ_TIMEOUT_SECS` (default 10, at most 10) closes
//! connections that do not send a whole request head in time.
//! `KEYWARD_REDIS_URL` (with feature `redis`) shares rate limits with the
//! other instances through that Redis.

mod support;

use std::time::Duration;

use axum::extract::{ConnectInfo, FromRef, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use keyward::http::axum::{require, router};
use keyward::http::{HttpConfig, KeywardHttp};
use keyward::{Label, Principal};
use serde_json::{Value, json};
use support::{Applications, NewApplication};
use tokio::net::TcpListener;
use tower::ServiceExt;

/// The application's state: keyward's one HTTP state beside the demo's
/// own data; keyward finds its part through `FromRef`.
#[derive(Clone)]
struct AppState {
    keyward: KeywardHttp,
    apps: Applications,
}

impl FromRef<AppState> for KeywardHttp {
    fn from_ref(s: &AppState) -> KeywardHttp {
        s.keyward.clone()
    }
}

async fn list_apps(State(s): State<AppState>, p: Principal) -> Json<Value> {
    Json(json!({ "account_id": p.account_id(), "items": s.apps.list(p.account_id()) }))
}

async fn create_app(
    State(s): State<AppState>,
    p: Principal,
    Json(new): Json<NewApplication>,
) -> (StatusCode, Json<Value>) {
    s.apps.add(p.account_id(), new.name.clone());
    (
        StatusCode::CREATED,
        Json(json!({ "account_id": p.account_id(), "name": new.name })),
    )
}

async fn mcp_call(p: Principal) -> Json<Value> {
    Json(support::mcp_answer(&p))
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}

/// Serves `app` over HTTP/1.1 with a header-read timeout: a connection
/// that has not sent a whole request head within `header_timeout` is
/// closed (slowloris). `axum::serve` has no such setting, so this is
/// hyper's connection builder, which has; stops on SIGINT/SIGTERM and
/// drains open connections (at most 30 s).
async fn serve(listener: TcpListener, app: Router, header_timeout: Duration) {
    let graceful = GracefulShutdown::new();
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .keep_alive(true);
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: keep serving.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let app = app.clone();
        // The adapters read the peer address from `ConnectInfo`.
        let service = service_fn(move |mut req: hyper::Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            app.clone().oneshot(req)
        });
        let conn = http.serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, %peer, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {},
        () = tokio::time::sleep(Duration::from_secs(30)) => {
            tracing::warn!("connections still open after 30 s; closing them");
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    support::init_tracing();
    let kw = support::keyward().await?;
    support::bootstrap(&kw).await?;
    let http = KeywardHttp::with_config(kw.clone(), HttpConfig::default());
    let state = AppState {
        keyward: http.clone(),
        apps: Applications::default(),
    };
    // Each route says how its requests count in usage: call origin and
    // category. Creating an application also applies the owner's manual
    // `expensive` rate limit (one set with `auto_apply: false`; none set,
    // nothing applies) and costs 5 credits.
    let app = Router::new()
        .route(
            "/applications",
            get(list_apps)
                .route_layer(require(&http, "readApplications").usage(Label::API, "analytics"))
                .merge(
                    axum::routing::post(create_app).route_layer(
                        require(&http, "writeApplications")
                            .usage(Label::API, "realtime")
                            .limit("expensive")
                            .cost(5),
                    ),
                ),
        )
        .route(
            "/mcp",
            axum::routing::post(mcp_call)
                .route_layer(require(&http, "readApplications").usage(Label::MCP, "realtime")),
        )
        .merge(router())
        .with_state(state);
    // Prometheus text on GET /metrics (feature `metrics`).
    #[cfg(feature = "metrics")]
    let app = {
        let metrics = support::install_metrics()?;
        app.route(
            "/metrics",
            get(move || std::future::ready(metrics.render())),
        )
    };
    // The demo host login (`KEYWARD_DEMO_HOST_LOGIN=<password>`): the
    // console and the API behind the host's own cookie.
    let demo = support::host_login::DemoHostLogin::from_env();
    // The admin console at /console/ (feature `console`).
    #[cfg(feature = "console")]
    let app = app.merge(keyward::http::axum::console(
        support::host_login::console_config(demo.as_ref()),
    ));
    let app = support::host_login::axum_mount(app, demo);
    let addr = support::listen_addr();
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    tracing::info!(addr = %listener.local_addr()?, "listening");
    serve(listener, app, support::header_read_timeout()).await;
    kw.shutdown().await?;
    tracing::info!("usage flushed; bye");
    Ok(())
}
