//! The keyward example server (axum): the management API, `/auth/*`,
//! `/openapi.json` and a demo `/applications` resource.
//!
//! ```sh
//! KEYWARD_DATABASE_URL=sqlite://keyward.db cargo run --example server --features axum,sqlite
//! ```

mod support;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{FromRef, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Extension, Json, Router};
use keyward::http::HttpConfig;
use keyward::http::axum::{require, router};
use keyward::{Keyward, Principal};
use serde_json::{Value, json};
use support::{Applications, NewApplication};

#[derive(Clone)]
struct AppState {
    kw: Keyward,
    apps: Applications,
}

impl FromRef<AppState> for Keyward {
    fn from_ref(s: &AppState) -> Keyward {
        s.kw.clone()
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

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    support::init_tracing();
    let kw = support::keyward().await?;
    support::bootstrap(&kw).await?;
    let config = HttpConfig::default();
    let state = AppState {
        kw: kw.clone(),
        apps: Applications::default(),
    };
    let app = Router::new()
        .route(
            "/applications",
            get(list_apps)
                .route_layer(require(&kw, "readApplications"))
                .merge(
                    axum::routing::post(create_app).route_layer(require(&kw, "writeApplications")),
                ),
        )
        .merge(router(kw.clone(), config.clone()))
        .layer(Extension(Arc::new(config)))
        .with_state(state);
    // The admin console at /console/ (feature `console`).
    #[cfg(feature = "console")]
    let app = app.merge(keyward::http::axum::console(
        keyward::http::ConsoleConfig::default(),
    ));
    let addr = support::listen_addr();
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    tracing::info!(addr = %listener.local_addr()?, "listening");
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown_signal())
    .await?;
    kw.shutdown().await?;
    tracing::info!("usage flushed; bye");
    Ok(())
}
