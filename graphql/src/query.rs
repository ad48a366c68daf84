//! The root query type.

use async_graphql::{Context, Object, Result, SimpleObject};
use portico_tenants::TenantService;

use crate::RequestContext;
use crate::error::{self, ErrorCode};

/// Everything that can be read.
#[derive(Debug, Default)]
pub struct Query;

/// The clinic whose portal the request came through.
#[derive(Debug, SimpleObject)]
pub struct TenantInfo {
    /// The clinic's short name, the first label of its portal's address.
    slug: String,
    /// The clinic's name as patients see it.
    display_name: String,
    /// The language the portal opens in when the browser does not say (BCP 47).
    default_locale: String,
}

#[Object]
impl Query {
    /// The clinic this portal belongs to.
    async fn tenant(&self, ctx: &Context<'_>) -> Result<TenantInfo> {
        let request = request_context(ctx)?;
        let settings = ctx
            .data::<TenantService>()?
            .settings(&request.principal, request.tenant.id)
            .await
            .map_err(error::from_tenant)?;

        Ok(TenantInfo {
            slug: request.tenant.slug.to_string(),
            display_name: request.tenant.display_name.clone(),
            default_locale: settings.default_locale,
        })
    }
}

fn request_context<'a>(ctx: &Context<'a>) -> Result<&'a RequestContext> {
    // The HTTP edge always supplies it; its absence is a wiring fault, not a client error.
    ctx.data_opt::<RequestContext>()
        .ok_or_else(|| ErrorCode::Internal.error("Internal error."))
}
