//! `POST /ehr/notifications` on a clinic's host: where its EHR's FHIR Subscription
//! notifications arrive (the R4 Subscriptions backport's notification `Bundle`).
//!
//! The request must carry the clinic's notification secret as a bearer token (the header
//! the Subscription's `channel.header` sets). A wrong or missing secret is refused with 401
//! and nothing queued; a malformed bundle with 400. A good one queues a targeted read of
//! what it names and wakes the sync worker; the answer is 202 before the read is done.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::http::{AppState, RequestTenant};

/// Receives one notification.
pub(crate) async fn receive(
    State(state): State<AppState>,
    RequestTenant(tenant): RequestTenant,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(ehr) = state.ehr.as_ref() else {
        return outcome(
            StatusCode::NOT_FOUND,
            "not-found",
            "no EHR notifications here",
        );
    };
    let expected = match ehr.connections.notification_secret(tenant.id).await {
        Ok(Some(secret)) => secret,
        Ok(None) => {
            return outcome(
                StatusCode::NOT_FOUND,
                "not-found",
                "this clinic has no EHR connector",
            );
        }
        Err(err) => {
            tracing::error!(tenant.id = %tenant.id, error = %err, "connector unreadable");
            return outcome(
                StatusCode::SERVICE_UNAVAILABLE,
                "transient",
                "try again later",
            );
        }
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .unwrap_or_default();
    if !same_secret(given, expected.expose()) {
        tracing::warn!(tenant.id = %tenant.id, "EHR notification refused: wrong or missing secret");
        return outcome(
            StatusCode::UNAUTHORIZED,
            "security",
            "wrong or missing secret",
        );
    }
    let Ok(bundle) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return outcome(StatusCode::BAD_REQUEST, "structure", "the body is not JSON");
    };
    match ehr.engine.notified(tenant.id, &bundle).await {
        Ok(notified) => {
            tracing::info!(
                tenant.id = %tenant.id,
                sync.queued = notified.queued,
                sync.polled = notified.polled,
                "EHR notification received"
            );
            ehr.waker.wake();
            outcome(StatusCode::ACCEPTED, "informational", "queued")
        }
        Err(portico_platform::records::RecordError::Invalid(problem)) => {
            outcome(StatusCode::BAD_REQUEST, "structure", problem)
        }
        Err(err) => {
            tracing::error!(tenant.id = %tenant.id, error = %err, "EHR notification not queued");
            outcome(
                StatusCode::SERVICE_UNAVAILABLE,
                "transient",
                "try again later",
            )
        }
    }
}

/// Compares digests, so the time taken says nothing about the secret.
fn same_secret(given: &str, expected: &str) -> bool {
    let (a, b) = (
        Sha256::digest(given.as_bytes()),
        Sha256::digest(expected.as_bytes()),
    );
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
        && !given.is_empty()
}

/// An OperationOutcome with one issue.
fn outcome(status: StatusCode, code: &str, text: &str) -> Response {
    let severity = if status.is_success() {
        "information"
    } else {
        "error"
    };
    (
        status,
        [(header::CONTENT_TYPE, "application/fhir+json")],
        json!({
            "resourceType": "OperationOutcome",
            "issue": [{"severity": severity, "code": code, "diagnostics": text}]
        })
        .to_string(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_must_match_exactly() {
        assert!(same_secret("s3cret-s3cret", "s3cret-s3cret"));
        assert!(!same_secret("s3cret-s3cre", "s3cret-s3cret"));
        assert!(!same_secret("", ""));
    }
}
