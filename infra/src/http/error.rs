//! The one place where edge failures become HTTP responses.
//!
//! Bodies are `{"error": {"code": "...", "message": "..."}}` with a stable code and a message
//! for people; 5xx bodies never carry internal detail (that goes to the log, once).

use std::any::Any;

use axum::Json;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use portico_platform::crypto::vault::VaultError;
use serde_json::json;

/// An error answered by the edge itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiError {
    /// No route here, or no tenant at this address.
    NotFound,
    /// The address names no tenant.
    TenantNotFound,
    /// The tenant's portal is closed for now.
    TenantUnavailable,
    /// The `Host` header cannot be read.
    BadHost,
    /// The body is larger than allowed.
    PayloadTooLarge,
    /// The body is not of a type this endpoint takes.
    UnsupportedMediaType,
    /// The method is not served here.
    MethodNotAllowed,
    /// Something failed inside Portico.
    Internal,
    /// A dependency (the database) is not answering.
    Unavailable,
}

impl ApiError {
    fn parts(self) -> (StatusCode, &'static str, &'static str) {
        match self {
            Self::NotFound => (StatusCode::NOT_FOUND, "not_found", "Nothing is here."),
            Self::TenantNotFound => (
                StatusCode::NOT_FOUND,
                "tenant_not_found",
                "No portal is served at this address.",
            ),
            Self::TenantUnavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "tenant_unavailable",
                "This portal is unavailable. Please contact your clinic.",
            ),
            Self::BadHost => (
                StatusCode::BAD_REQUEST,
                "bad_host",
                "The Host header is not a valid host name.",
            ),
            Self::PayloadTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "The request body is too large.",
            ),
            Self::UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "The request body must be application/json.",
            ),
            Self::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "This method is not allowed here.",
            ),
            Self::Internal => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal error.",
            ),
            Self::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "The service is unavailable; try again shortly.",
            ),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, message) = self.parts();
        let body = Json(json!({ "error": { "code": code, "message": message } }));

        (status, body).into_response()
    }
}

/// Sealing failures at the edge: a key service outage is a 503 the client may retry (never
/// a plaintext fallback); an offboarded tenant's data is gone; anything else is internal.
/// Each is logged once, here, without content.
impl From<VaultError> for ApiError {
    fn from(err: VaultError) -> Self {
        match err {
            VaultError::KeyServiceUnavailable(_) => {
                tracing::error!(error = %err, "key service unavailable; request refused");
                Self::Unavailable
            }
            VaultError::TenantKeyDeleted => Self::TenantNotFound,
            other => {
                tracing::error!(error = %other, "sealing failed");
                Self::Internal
            }
        }
    }
}

/// The answer for any path no route serves.
pub(crate) async fn not_found() -> ApiError {
    ApiError::NotFound
}

/// The answer for a method a route does not serve.
pub(crate) async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

/// The answer when a handler panics: logged without the payload (which may hold anything),
/// answered with a generic 500.
pub(crate) fn panic_response(_payload: Box<dyn Any + Send + 'static>) -> Response {
    tracing::error!("request handler panicked");
    let mut response = ApiError::Internal.into_response();
    response.headers_mut().insert(
        header::CONNECTION,
        header::HeaderValue::from_static("close"),
    );
    response
}

#[cfg(test)]
mod tests {
    use portico_platform::crypto::keys::KeyError;

    use super::*;

    #[test]
    fn a_key_service_outage_is_a_retryable_503_and_never_content() {
        let outage = VaultError::KeyServiceUnavailable(KeyError::Unavailable("refused".into()));
        let response = ApiError::from(outage).into_response();

        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            ApiError::from(VaultError::TenantKeyDeleted),
            ApiError::TenantNotFound
        );
        assert_eq!(ApiError::from(VaultError::UnknownKey), ApiError::Internal);
    }
}
