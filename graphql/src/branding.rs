//! The clinic's branding: read by anyone at its portal, changed by its admin.

use async_graphql::{Context, InputObject, Object, Result, SimpleObject};
use portico_tenants::{Branding, TenantService};

use crate::error::{self, ErrorCode};
use crate::query::request_context;

/// How the clinic's portal looks, and whom patients call.
#[derive(Debug, SimpleObject)]
pub struct BrandingInfo {
    /// The main colour, `#RRGGBB`.
    primary_color: String,
    /// The second colour, `#RRGGBB`.
    accent_color: String,
    /// The support phone number.
    support_phone: Option<String>,
    /// When support answers.
    support_hours: Option<String>,
    /// Where the logo is served, if the clinic has one.
    logo_url: Option<String>,
    /// The stylesheet with the colours as CSS custom properties.
    stylesheet_url: String,
}

impl From<Branding> for BrandingInfo {
    fn from(branding: Branding) -> Self {
        Self {
            primary_color: branding.primary.to_string(),
            accent_color: branding.accent.to_string(),
            support_phone: branding.support_phone,
            support_hours: branding.support_hours,
            logo_url: branding.logo.map(|_| "/branding/logo".to_owned()),
            stylesheet_url: "/branding.css".to_owned(),
        }
    }
}

/// New colours and support line. The logo is kept; `portico tenant branding --logo`
/// uploads one.
#[derive(Debug, InputObject)]
pub struct BrandingInput {
    /// `#RRGGBB`; must reach 4.5:1 against white.
    primary_color: String,
    /// `#RRGGBB`; must reach 4.5:1 against white.
    accent_color: String,
    /// The support phone number.
    support_phone: Option<String>,
    /// When support answers.
    support_hours: Option<String>,
}

/// The branding mutation, merged into the root mutation.
#[derive(Debug, Default)]
pub struct BrandingMutation;

#[Object]
impl BrandingMutation {
    /// Changes the clinic's colours and support line; the portal shows them on its next
    /// page. A colour short of WCAG AA contrast is refused, with its ratio and a shade that
    /// passes. The clinic's admin only.
    async fn update_branding(
        &self,
        ctx: &Context<'_>,
        input: BrandingInput,
    ) -> Result<BrandingInfo> {
        let request = request_context(ctx)?;
        let tenants = ctx.data::<TenantService>()?;
        let parse = |value: &str| {
            value
                .parse()
                .map_err(|err: portico_tenants::BrandingProblem| {
                    ErrorCode::ValidationFailed.error(err.to_string())
                })
        };
        let current = tenants
            .branding(request.tenant.id)
            .await
            .map_err(error::from_tenant)?;
        let branding = Branding {
            primary: parse(&input.primary_color)?,
            accent: parse(&input.accent_color)?,
            support_phone: input.support_phone.filter(|p| !p.trim().is_empty()),
            support_hours: input.support_hours.filter(|h| !h.trim().is_empty()),
            logo: current.logo,
        };
        tenants
            .set_branding(&request.principal, request.tenant.id, &branding)
            .await
            .map_err(error::from_tenant)?;
        Ok(branding.into())
    }
}

/// The branding of the request's clinic.
pub(crate) async fn branding(ctx: &Context<'_>) -> Result<BrandingInfo> {
    let request = request_context(ctx)?;
    let branding = ctx
        .data::<TenantService>()?
        .branding(request.tenant.id)
        .await
        .map_err(error::from_tenant)?;
    Ok(branding.into())
}
