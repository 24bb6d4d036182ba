//! The keyward example server (actix-web), same contract as `server.rs`
//! (the demo `/applications` counted as origin `api`, `POST /mcp` as `mcp`).
//!
//! ```sh
//! KEYWARD_DATABASE_URL=sqlite://keyward.db cargo run --example actix_server --features actix,sqlite
//! ```
//!
//! `KEYWARD_HEADER_READ_TIMEOUT_SECS` (default 10, at most 10) and
//! `KEYWARD_REDIS_URL` (feature `redis`: rate limits shared through that
//! Redis), as `server.rs`.

mod support;

use actix_web::{App, HttpResponse, HttpServer, web};
use keyward::http::actix::{RequirePermission, scope};
use keyward::http::{HttpConfig, KeywardHttp};
use keyward::{Keyward, Label, Principal};
use serde_json::json;
use support::{Applications, NewApplication};

async fn list_apps(apps: web::Data<Applications>, p: Principal) -> HttpResponse {
    HttpResponse::Ok()
        .json(json!({ "account_id": p.account_id(), "items": apps.list(p.account_id()) }))
}

async fn create_app(
    apps: web::Data<Applications>,
    p: Principal,
    new: web::Json<NewApplication>,
) -> HttpResponse {
    let new = new.into_inner();
    apps.add(p.account_id(), new.name.clone());
    HttpResponse::Created().json(json!({ "account_id": p.account_id(), "name": new.name }))
}

async fn mcp_call(p: Principal) -> HttpResponse {
    HttpResponse::Ok().json(support::mcp_answer(&p))
}

#[actix_web::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    support::init_tracing();
    let kw: Keyward = support::keyward().await?;
    support::bootstrap(&kw).await?;
    // keyward's one HTTP state: the service and its settings.
    let http = web::Data::new(KeywardHttp::with_config(kw.clone(), HttpConfig::default()));
    let apps = web::Data::new(Applications::default());
    // Prometheus text on GET /metrics (feature `metrics`).
    #[cfg(feature = "metrics")]
    let metrics = web::Data::new(support::install_metrics()?);
    // The demo host login (`KEYWARD_DEMO_HOST_LOGIN=<password>`), as in
    // server.rs.
    let demo = support::host_login::DemoHostLogin::from_env();
    let addr = support::listen_addr();
    let server = HttpServer::new(move || {
        #[cfg(feature = "metrics")]
        let app =
            App::new().app_data(metrics.clone()).route(
                "/metrics",
                web::get().to(
                    |m: web::Data<metrics_exporter_prometheus::PrometheusHandle>| async move {
                        m.render()
                    },
                ),
            );
        #[cfg(not(feature = "metrics"))]
        let app = App::new();
        // The admin console at /console/ (feature `console`), before the
        // root scope, which would take its requests.
        #[cfg(feature = "console")]
        let app = app.service(keyward::http::actix::console(
            support::host_login::console_config(demo.as_ref()),
        ));
        let attach = demo.clone();
        app.app_data(http.clone())
            .app_data(apps.clone())
            // Each route says how its requests count in usage: call
            // origin and category. Creating an application also applies
            // the owner's manual `expensive` rate limit (one set with
            // `auto_apply: false`) and costs 5 credits.
            .service(
                web::resource("/applications")
                    .route(web::get().to(list_apps).wrap(
                        RequirePermission::new("readApplications").usage(Label::API, "analytics"),
                    ))
                    .route(
                        web::post().to(create_app).wrap(
                            RequirePermission::new("writeApplications")
                                .usage(Label::API, "realtime")
                                .limit("expensive")
                                .cost(5),
                        ),
                    ),
            )
            .service(
                web::resource("/mcp").route(web::post().to(mcp_call).wrap(
                    RequirePermission::new("readApplications").usage(Label::MCP, "realtime"),
                )),
            )
            .configure(support::host_login::actix_routes(demo.clone()))
            .service(scope(""))
            .wrap_fn(move |req, srv| {
                support::host_login::actix_attach(attach.as_ref(), &req);
                actix_web::dev::Service::call(srv, req)
            })
    })
    .shutdown_timeout(30)
    // Slowloris: a connection must send its whole request head in time
    // (actix answers 408 and closes), and gets 1 s to close afterwards.
    .client_request_timeout(support::header_read_timeout())
    .client_disconnect_timeout(std::time::Duration::from_secs(1))
    .bind(&addr)?;
    for a in server.addrs() {
        tracing::info!(addr = %a, "listening");
    }
    // actix-web stops accepting on SIGINT/SIGTERM and drains in-flight
    // requests before `run` returns.
    server.run().await?;
    kw.shutdown().await?;
    tracing::info!("usage flushed; bye");
    Ok(())
}
