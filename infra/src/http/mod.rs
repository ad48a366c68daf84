//! The HTTP edge: routes, the layers every request passes through, and graceful shutdown.
//!
//! Order of the layers, outermost first: request id → tracing span → security headers →
//! timeout → panic catcher → tenant resolution (which may rewrite `/t/<slug>/…`) → router.

mod branding;
mod error;
mod graphql;
mod health;
mod layers;
mod tenant;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use portico_graphql::PorticoSchema;
use portico_platform::clock::Clock;
use portico_platform::db::Db;
use portico_platform::entropy::Entropy;
use portico_platform::identity::local::LocalIdentity;
use portico_tenants::TenantResolver;
use tokio::net::TcpListener;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

pub use error::ApiError;
pub use tenant::RequestTenant;

/// What every handler may use.
#[derive(Clone)]
pub struct AppState {
    /// The database.
    pub db: Db,
    /// Host and path to tenant.
    pub resolver: TenantResolver,
    /// The tenant registry (branding).
    pub tenants: portico_tenants::TenantService,
    /// The GraphQL schema.
    pub schema: PorticoSchema,
    /// Sessions: who a request's cookie names.
    pub identity: LocalIdentity,
    /// Edge settings.
    pub settings: Arc<EdgeSettings>,
    /// The EHR side: notifications in, and the sandbox EHR where it runs.
    pub ehr: Option<EhrEdge>,
}

/// What the EHR endpoints use.
#[derive(Debug, Clone)]
pub struct EhrEdge {
    /// Each clinic's connection (for its notification secret).
    pub connections: crate::ehr::Connections,
    /// The sync engine notifications queue work in.
    pub engine: portico_platform::records::SyncEngine,
    /// Wakes this node's sync worker.
    pub waker: crate::ehr::worker::Waker,
    /// The sandbox EHR, in demo and development only.
    pub sandbox: Option<crate::sandbox::Sandbox>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// Settings the edge reads on every request.
#[derive(Debug, Clone)]
pub struct EdgeSettings {
    /// Largest request body, in bytes.
    pub body_limit_bytes: usize,
    /// Longest a request may take.
    pub request_timeout: Duration,
    /// Whether `/t/<slug>/…` reaches tenants.
    pub path_fallback: bool,
    /// Development mode: GraphiQL served.
    pub development: bool,
    /// Most operations in one batched GraphQL request.
    pub max_batch: usize,
    /// Proxies in front that append to `X-Forwarded-For` (see `http.forwarded_hops`).
    pub forwarded_hops: u8,
    /// The clock request ids are made from.
    pub clock: Arc<dyn Clock>,
    /// The entropy request ids are made from.
    pub entropy: Arc<dyn Entropy>,
}

/// The whole application as one service.
pub fn app(state: AppState) -> Router {
    let settings = state.settings.clone();
    let routes = Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route(
            "/graphql",
            get(graphql::graphiql)
                .post(graphql::graphql)
                .fallback(error::method_not_allowed),
        )
        .route("/branding.css", get(branding::css))
        .route("/branding/logo", get(branding::logo))
        .route(
            "/ehr/notifications",
            axum::routing::post(crate::ehr::notify::receive).fallback(error::method_not_allowed),
        )
        .fallback(error::not_found)
        .route_layer(axum::middleware::from_fn(layers::record_route))
        .with_state(state.clone());

    let routes = match state.ehr.as_ref().and_then(|ehr| ehr.sandbox.clone()) {
        Some(sandbox) => routes.nest_service("/sandbox", crate::sandbox::routes(sandbox)),
        None => routes,
    };

    // Tenant resolution wraps the router, not the routes, so that rewriting `/t/<slug>/…`
    // happens before routing.
    let routed = Router::new()
        .fallback_service(routes)
        .layer(axum::middleware::from_fn_with_state(state, tenant::resolve));

    routed.layer(
        ServiceBuilder::new()
            .layer(axum::middleware::from_fn_with_state(
                settings.clone(),
                layers::assign_request_id,
            ))
            .layer(
                TraceLayer::new_for_http()
                    .make_span_with(layers::span)
                    .on_request(())
                    .on_response(layers::on_response)
                    .on_failure(()),
            )
            .layer(axum::middleware::from_fn(layers::security_headers))
            .layer(TimeoutLayer::with_status_code(
                http::StatusCode::SERVICE_UNAVAILABLE,
                settings.request_timeout,
            ))
            .layer(CatchPanicLayer::custom(error::panic_response)),
    )
}

/// Serves until `shutdown` resolves, then stops accepting and gives in-flight requests up
/// to `grace` to finish.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> anyhow::Result<()> {
    let (signalled_tx, signalled_rx) = tokio::sync::oneshot::channel::<()>();
    let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        shutdown.await;
        tracing::info!("shutting down: finishing in-flight requests");
        signalled_tx.send(()).ok();
    });
    let mut server = std::pin::pin!(server.into_future());

    tokio::select! {
        result = &mut server => return Ok(result?),
        _ = signalled_rx => {}
    }
    match tokio::time::timeout(grace, server).await {
        Ok(result) => Ok(result?),
        Err(_) => {
            tracing::warn!(
                grace_secs = grace.as_secs(),
                "in-flight requests outlived the grace period"
            );
            Ok(())
        }
    }
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };

    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
