//! Liveness and readiness, for load balancers and orchestrators. Host-agnostic: they answer
//! on any address, with or without a tenant.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::AppState;
use crate::database;

/// The process is alive and answering.
pub(crate) async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// The database answers and every migration this binary knows has been applied.
pub(crate) async fn readyz(State(state): State<AppState>) -> Response {
    let reason = match state.db.ping().await {
        Err(err) => {
            tracing::warn!(error = %err, "readiness: database unreachable");
            Some("database_unreachable")
        }
        Ok(()) => match database::migrations_current(&state.db).await {
            Ok(true) => None,
            Ok(false) => Some("migrations_pending"),
            Err(err) => {
                tracing::warn!(error = %err, "readiness: cannot read the migration ledger");
                Some("database_unreachable")
            }
        },
    };

    match reason {
        None => Json(json!({ "status": "ready" })).into_response(),
        Some(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "not_ready", "reason": reason })),
        )
            .into_response(),
    }
}
