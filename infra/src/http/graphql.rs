//! `POST /graphql`, and GraphiQL on `GET /graphql` in development.

use async_graphql::BatchRequest;
use axum::Json;
use axum::body::{Body, to_bytes};
use axum::extract::{OriginalUri, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::ConnectInfo;
use portico_graphql::{ErrorCode, RequestContext, RequestSession, SESSION_COOKIE};
use portico_platform::identity::sessions::Stage;
use portico_platform::principal::Principal;
use portico_platform::secret::Secret;
use serde_json::json;

use super::layers::request_id;
use super::{ApiError, AppState, RequestTenant};

/// Runs a GraphQL request (or a bounded batch) for the request's tenant.
pub(crate) async fn graphql(
    State(state): State<AppState>,
    RequestTenant(tenant): RequestTenant,
    request: Request,
) -> Response {
    let Some(request_id) = request_id(&request) else {
        return ApiError::Internal.into_response();
    };
    let (parts, body) = request.into_parts();
    if !is_json(&parts.headers) {
        // Also a CSRF defence: a cross-site form cannot send application/json.
        return ApiError::UnsupportedMediaType.into_response();
    }
    let body = match read_body(&parts.headers, body, state.settings.body_limit_bytes).await {
        Ok(body) => body,
        Err(err) => return err.into_response(),
    };

    let Some(batch) = parse_batch(&body) else {
        return refused(
            ErrorCode::BadRequest,
            "The request body is not a GraphQL request.",
        );
    };
    let size = batch.iter().count();
    if size > state.settings.max_batch {
        let message = format!(
            "The request batches {size} operations; at most {} are allowed.",
            state.settings.max_batch
        );
        return refused(ErrorCode::BatchLimit, &message);
    }

    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0.ip());
    let client = client_address(&parts.headers, peer, state.settings.forwarded_hops);
    let mut principal = Principal::Anonymous {
        request: request_id,
    };
    let mut session = None;
    if let Some(token) = session_cookie(&parts.headers) {
        // An unknown, ended or other clinic's session is no session: the request goes on
        // as anonymous.
        if let Ok((resolved, found)) = state.identity.resolve(tenant.id, &token).await {
            if found.stage == Stage::Full {
                // A request made with a full session's cookie must prove it came from the
                // page that holds the session's CSRF token.
                let csrf = parts
                    .headers
                    .get(CSRF_HEADER)
                    .and_then(|value| value.to_str().ok());
                let genuine = match csrf {
                    Some(csrf) => state
                        .identity
                        .csrf_matches(&found, csrf)
                        .await
                        .unwrap_or(false),
                    None => false,
                };
                if !genuine {
                    return csrf_refused();
                }
            }
            if let Some(resolved) = resolved {
                principal = resolved;
            }
            session = Some(RequestSession {
                session: found,
                token: Arc::new(Secret::new(token)),
            });
        }
    }

    let host = parts
        .headers
        .get(header::HOST)
        .and_then(|host| host.to_str().ok())
        .map(|host| {
            host.rsplit_once(':')
                .map_or(host, |(name, _)| name)
                .to_owned()
        });
    let context = RequestContext {
        tenant,
        principal,
        session,
        client,
        host,
        development: state.settings.development,
    };
    let response = state.schema.execute_batch(batch.data(context)).await;
    let headers: Vec<_> = response
        .http_headers_iter()
        .filter(|(name, _)| name == header::SET_COOKIE)
        .collect();
    let mut response = Json(response).into_response();
    for (name, value) in headers {
        response.headers_mut().append(name, value);
    }

    response
}

/// The client's address for throttling: the TCP peer, or with `hops` trusted proxies in
/// front, the address the outermost of them saw — the `hops`-th from the end of
/// `X-Forwarded-For`. What the client itself put earlier in the header is never trusted.
fn client_address(headers: &HeaderMap, peer: Option<IpAddr>, hops: u8) -> String {
    let forwarded = || {
        let listed: Vec<IpAddr> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .filter_map(|part| part.trim().parse().ok())
            .collect();
        listed
            .len()
            .checked_sub(usize::from(hops))
            .and_then(|i| listed.get(i).copied())
    };
    let address = if hops == 0 {
        peer
    } else {
        forwarded().or(peer)
    };
    address.map_or_else(|| "unknown".to_owned(), |ip| ip.to_string())
}

/// The header carrying the session's CSRF token.
pub(crate) const CSRF_HEADER: &str = "x-csrf-token";

/// The session token from the request's cookie, if it has one.
fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.to_owned())
        .filter(|value| !value.is_empty() && value.len() <= 128)
}

fn csrf_refused() -> Response {
    let body = json!({ "errors": [{
        "message": "This request must carry the X-CSRF-Token header given at sign-in.",
        "extensions": { "code": "CSRF_FAILED" }
    }] });

    (StatusCode::FORBIDDEN, Json(body)).into_response()
}

/// GraphiQL, only in development; production publishes the schema file instead.
pub(crate) async fn graphiql(
    State(state): State<AppState>,
    _tenant: RequestTenant,
    OriginalUri(uri): OriginalUri,
) -> Response {
    if !state.settings.development {
        return ApiError::MethodNotAllowed.into_response();
    }
    let page = async_graphql::http::GraphiQLSource::build()
        .endpoint(uri.path())
        .finish();
    // GraphiQL is served from its CDN with inline bootstrapping; this looser policy is
    // confined to this development-only page.
    let csp = "default-src 'self' https://unpkg.com; script-src 'self' 'unsafe-inline' https://unpkg.com; \
               style-src 'self' 'unsafe-inline' https://unpkg.com; img-src 'self' data:; \
               connect-src 'self'; frame-ancestors 'none'";

    ([(header::CONTENT_SECURITY_POLICY, csp)], Html(page)).into_response()
}

/// A GraphQL-over-HTTP body: one request object, or a non-empty array of them.
fn parse_batch(body: &[u8]) -> Option<BatchRequest> {
    // serde would also read a request from a JSON array of its fields; only objects count.
    let shape_ok = match serde_json::from_slice::<serde_json::Value>(body).ok()? {
        serde_json::Value::Object(_) => true,
        serde_json::Value::Array(items) => {
            !items.is_empty() && items.iter().all(serde_json::Value::is_object)
        }
        _ => false,
    };

    shape_ok
        .then(|| serde_json::from_slice::<BatchRequest>(body).ok())
        .flatten()
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"))
}

/// Reads the body, refusing one over `limit` before or while reading it.
async fn read_body(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<axum::body::Bytes, ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return Err(ApiError::PayloadTooLarge);
    }

    to_bytes(body, limit)
        .await
        .map_err(|_| ApiError::PayloadTooLarge)
}

/// A request refused before execution, in the GraphQL response shape.
fn refused(code: ErrorCode, message: &str) -> Response {
    let body =
        json!({ "errors": [{ "message": message, "extensions": { "code": code.as_str() } }] });

    (StatusCode::BAD_REQUEST, Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn the_client_is_the_peer_unless_proxies_are_trusted() {
        let peer: IpAddr = "10.0.0.5".parse().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            HeaderValue::from_static("6.6.6.6, 203.0.113.7"),
        );

        // No trusted proxy: the header is the client's to forge; ignored.
        assert_eq!(client_address(&headers, Some(peer), 0), "10.0.0.5");
        // One balancer: the last entry is what it saw; the first was written by the client.
        assert_eq!(client_address(&headers, Some(peer), 1), "203.0.113.7");
        assert_eq!(client_address(&headers, Some(peer), 2), "6.6.6.6");
        // More hops than entries, or no header: the peer.
        assert_eq!(client_address(&headers, Some(peer), 3), "10.0.0.5");
        assert_eq!(client_address(&HeaderMap::new(), Some(peer), 1), "10.0.0.5");
        assert_eq!(client_address(&HeaderMap::new(), None, 0), "unknown");
    }
}
