//! Resolving each request's tenant, once, before routing.
//!
//! The tenant comes from the `Host` (`<slug>.<base_domain>` or a verified custom domain),
//! or, where enabled, from a `/t/<slug>/` path prefix, which is then removed so routes are
//! the same either way. The resolved tenant rides in the request's extensions as
//! [`RequestTenant`]; its id is recorded on the request span.

use std::net::IpAddr;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Uri, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use portico_tenants::{DomainName, Resolution, Tenant};

use super::{ApiError, AppState};

/// The active tenant a request is for.
#[derive(Debug, Clone)]
pub struct RequestTenant(pub Tenant);

impl<S: Send + Sync> FromRequestParts<S> for RequestTenant {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<RequestTenant>()
            .cloned()
            .ok_or(ApiError::TenantNotFound)
    }
}

/// Paths served on every address, tenant or not, for load balancers.
const HOST_AGNOSTIC: &[&str] = &["/healthz", "/readyz"];

/// Finds the request's tenant and refuses unknown or suspended ones.
pub(crate) async fn resolve(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    if HOST_AGNOSTIC.contains(&request.uri().path()) {
        return next.run(request).await;
    }
    let host = match host_of(&request) {
        Ok(host) => host,
        Err(err) => return err.into_response(),
    };

    let by_host = match host.filter(|host| host != state.resolver.base_domain()) {
        Some(host) => Some(state.resolver.resolve_host(&host).await),
        None => None,
    };
    let resolution = match by_host {
        Some(Ok(found @ (Resolution::Active(_) | Resolution::Suspended(_)))) => Some(Ok(found)),
        by_host => match tenant_path(request.uri()).filter(|_| state.settings.path_fallback) {
            Some((slug, rest)) => {
                *request.uri_mut() = rest;
                Some(state.resolver.resolve_slug(&slug).await)
            }
            None => by_host,
        },
    };

    match resolution {
        // The platform's own address: only routes that need no tenant will answer.
        None => next.run(request).await,
        Some(Ok(Resolution::Active(tenant))) => {
            tracing::Span::current().record("tenant.id", tracing::field::display(tenant.id));
            request.extensions_mut().insert(RequestTenant(tenant));
            next.run(request).await
        }
        Some(Ok(Resolution::Suspended(tenant))) => {
            tracing::Span::current().record("tenant.id", tracing::field::display(tenant.id));
            unavailable(request.headers())
        }
        Some(Ok(Resolution::NotFound)) => ApiError::TenantNotFound.into_response(),
        Some(Err(err)) => {
            tracing::error!(error = %err, "tenant resolution failed");
            ApiError::Unavailable.into_response()
        }
    }
}

/// The request's host: from the URI (HTTP/2) or the `Host` header. `None` for IP literals
/// and requests without one, which address the platform, not a tenant.
fn host_of(request: &Request) -> Result<Option<DomainName>, ApiError> {
    let value = match request.uri().authority() {
        Some(authority) => authority.as_str().to_owned(),
        None => match request.headers().get(header::HOST) {
            Some(value) => value.to_str().map_err(|_| ApiError::BadHost)?.to_owned(),
            None => return Ok(None),
        },
    };
    let bare = value
        .rsplit_once(':')
        .map_or(value.as_str(), |(host, _)| host);
    if bare.parse::<IpAddr>().is_ok() || value.starts_with('[') {
        return Ok(None);
    }

    DomainName::from_host_header(&value)
        .map(Some)
        .map_err(|_| ApiError::BadHost)
}

/// Splits `/t/<slug>/rest?query` into the slug and `/rest?query`.
fn tenant_path(uri: &Uri) -> Option<(String, Uri)> {
    let after = uri.path().strip_prefix("/t/")?;
    let (slug, rest) = after
        .split_once('/')
        .map_or((after, ""), |(slug, rest)| (slug, rest));
    if slug.is_empty() {
        return None;
    }
    let path_and_query = match uri.query() {
        Some(query) => format!("/{rest}?{query}"),
        None => format!("/{rest}"),
    };
    let rewritten = Uri::builder().path_and_query(path_and_query).build().ok()?;

    Some((slug.to_owned(), rewritten))
}

/// A suspended portal: a page for browsers, JSON for everything else.
fn unavailable(headers: &HeaderMap) -> Response {
    let wants_html = headers
        .get(header::ACCEPT)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"));
    if !wants_html {
        return ApiError::TenantUnavailable.into_response();
    }
    let page = Html(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>Portal unavailable</title></head><body><main><h1>This portal is unavailable</h1>\
         <p>Please contact your clinic.</p></main></body></html>",
    );

    (axum::http::StatusCode::SERVICE_UNAVAILABLE, page).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenant_path_is_split_into_slug_and_rest() {
        let (slug, rest) = tenant_path(&"/t/sunrise/graphql?x=1".parse().unwrap()).unwrap();
        assert_eq!(slug, "sunrise");
        assert_eq!(rest.to_string(), "/graphql?x=1");

        let (slug, rest) = tenant_path(&"/t/sunrise".parse().unwrap()).unwrap();
        assert_eq!((slug.as_str(), rest.path()), ("sunrise", "/"));

        assert!(tenant_path(&"/t/".parse().unwrap()).is_none());
        assert!(tenant_path(&"/graphql".parse().unwrap()).is_none());
    }
}
