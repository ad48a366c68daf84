//! `GET /branding.css` and `GET /branding/logo`: a clinic's colours as CSS custom
//! properties, and its logo, read on every request so a change shows on the next page.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::{ApiError, AppState, RequestTenant};

/// Short enough that a change shows within a minute even through a browser's cache.
const CACHE: &str = "public, max-age=60";

/// The clinic's colours as CSS custom properties.
pub(crate) async fn css(
    State(state): State<AppState>,
    RequestTenant(tenant): RequestTenant,
) -> Response {
    match state.tenants.branding(tenant.id).await {
        Ok(branding) => (
            [
                (header::CONTENT_TYPE, "text/css; charset=utf-8"),
                (header::CACHE_CONTROL, CACHE),
            ],
            branding.css(),
        )
            .into_response(),
        Err(err) => {
            tracing::error!(error = %err, "branding unreadable");
            ApiError::Unavailable.into_response()
        }
    }
}

/// The clinic's logo; 404 when it has none.
pub(crate) async fn logo(
    State(state): State<AppState>,
    RequestTenant(tenant): RequestTenant,
) -> Response {
    match state.tenants.branding(tenant.id).await {
        Ok(branding) => match branding.logo {
            Some(logo) => (
                [
                    (header::CONTENT_TYPE, logo.content_type),
                    (header::CACHE_CONTROL, CACHE),
                ],
                logo.bytes,
            )
                .into_response(),
            None => StatusCode::NOT_FOUND.into_response(),
        },
        Err(err) => {
            tracing::error!(error = %err, "branding unreadable");
            ApiError::Unavailable.into_response()
        }
    }
}
