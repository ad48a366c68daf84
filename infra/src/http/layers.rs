//! Cross-cutting layers: request ids, the request span, and security headers.
//!
//! The span carries ids and the route template only. Never the path as sent, the query,
//! headers or bodies: those are the client's words and may hold PHI (docs/LOGGING.md).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use portico_platform::ids::RequestId;
use tracing::Span;

use super::EdgeSettings;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Gives every request a fresh id, from the injected clock and entropy, and returns it in
/// the response's `X-Request-Id`.
///
/// A client's own `X-Request-Id` is replaced, never trusted: it would let anyone write
/// text of their choosing into our logs.
pub(crate) async fn assign_request_id(
    State(settings): State<Arc<EdgeSettings>>,
    mut request: Request,
    next: Next,
) -> Response {
    let id = RequestId::generate(settings.clock.as_ref(), settings.entropy.as_ref());
    let value = HeaderValue::from_str(&id.to_string()).unwrap_or(HeaderValue::from_static("-"));
    request.headers_mut().insert(REQUEST_ID, value.clone());

    let mut response = next.run(request).await;
    response.headers_mut().insert(REQUEST_ID, value);

    response
}

/// The request's id, as set by [`assign_request_id`].
pub(crate) fn request_id<B>(request: &axum::http::Request<B>) -> Option<RequestId> {
    request
        .headers()
        .get(REQUEST_ID)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// The span every request runs in.
pub(crate) fn span<B>(request: &axum::http::Request<B>) -> Span {
    let id = request_id(request).map(tracing::field::display);
    tracing::info_span!(
        "request",
        request.id = id,
        http.method = %request.method(),
        http.route = tracing::field::Empty,
        tenant.id = tracing::field::Empty,
    )
}

/// Logs the outcome of each request.
pub(crate) fn on_response<B>(response: &axum::http::Response<B>, latency: Duration, _span: &Span) {
    tracing::info!(
        http.status = response.status().as_u16(),
        duration_ms = u64::try_from(latency.as_millis()).unwrap_or(u64::MAX),
        "request finished"
    );
}

/// Records the matched route template (`/graphql`), never the path as sent.
pub(crate) async fn record_route(request: Request, next: Next) -> Response {
    if let Some(route) = request.extensions().get::<MatchedPath>() {
        Span::current().record("http.route", route.as_str());
    }

    next.run(request).await
}

/// The headers every response carries unless its handler set its own.
const SECURITY_HEADERS: &[(HeaderName, &str)] = &[
    (
        header::STRICT_TRANSPORT_SECURITY,
        "max-age=63072000; includeSubDomains",
    ),
    (
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    ),
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (header::REFERRER_POLICY, "no-referrer"),
    (header::X_FRAME_OPTIONS, "DENY"),
    // Responses may carry PHI: no browser or proxy keeps a copy.
    (header::CACHE_CONTROL, "no-store"),
];

/// Adds [`SECURITY_HEADERS`] to every response.
pub(crate) async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    for (name, value) in SECURITY_HEADERS {
        if !headers.contains_key(name) {
            headers.insert(name.clone(), HeaderValue::from_static(value));
        }
    }
    headers.insert(
        HeaderName::from_static("cross-origin-opener-policy"),
        HeaderValue::from_static("same-origin"),
    );

    response
}
