//! The root query type.

use async_graphql::{Context, MergedObject, Object, Result, SimpleObject};
use portico_platform::audit::AuditTrail;
use portico_platform::audit::access_log;
use portico_platform::identity::local::LocalIdentity;
use portico_platform::identity::sessions;
use portico_platform::principal::Principal;
use portico_tenants::TenantService;

use crate::RequestContext;
use crate::error::{self, ErrorCode};

/// Everything that can be read.
#[derive(Debug, Default, MergedObject)]
pub struct Query(SessionQuery, crate::records::RecordsQuery);

/// Who is signed in, their sessions and passkeys, who opened their record, the clinic.
#[derive(Debug, Default)]
pub struct SessionQuery;

/// The clinic whose portal the request came through.
#[derive(Debug, SimpleObject)]
#[graphql(complex)]
pub struct TenantInfo {
    /// The clinic's short name, the first label of its portal's address.
    slug: String,
    /// The clinic's name as patients see it.
    display_name: String,
    /// The language the portal opens in when the browser does not say (BCP 47).
    default_locale: String,
}

/// A page of the accesses to the signed-in patient's record, newest first.
#[derive(Debug, SimpleObject)]
pub struct AccessLogPage {
    /// The accesses.
    entries: Vec<AccessLogEntry>,
    /// Pass as `before` for the next, older page; null on the last page.
    next_cursor: Option<String>,
}

/// One access to the patient's record.
#[derive(Debug, SimpleObject)]
pub struct AccessLogEntry {
    /// When, in RFC 3339 (UTC).
    at: String,
    /// Who.
    who: Accessor,
    /// What they did: read, search, create, update, delete, export, share, sign_in, …
    action: String,
    /// What kind of data: a FHIR resource type such as Observation or DocumentReference.
    data_kind: String,
    /// success, denied or failed.
    outcome: String,
    /// Why: treatment, payment, operations, patient_request, legal or system.
    purpose: String,
}

/// Who accessed the record.
#[derive(Debug, SimpleObject)]
pub struct Accessor {
    /// patient, proxy, staff, app, system or operator.
    kind: String,
    /// A staff member's or app's name, as the clinic registered it.
    name: Option<String>,
    /// A staff member's role.
    role: Option<String>,
    /// Whether it was you.
    is_you: bool,
}

/// One of your sessions that still stands.
#[derive(Debug, SimpleObject)]
pub struct SessionInfo {
    /// Its short reference, as your access log names it; pass it to `endSession`.
    reference: String,
    /// When it started, RFC 3339 (UTC).
    created_at: String,
    /// When it was last used, to within a minute.
    last_seen_at: String,
    /// When it ends at the latest.
    expires_at: String,
    /// Whether it is the session making this request.
    current: bool,
}

/// Who is signed in.
#[derive(Debug, SimpleObject)]
pub struct Me {
    /// `patient` or `staff`.
    kind: String,
    /// The staff role (provider, nurse, front_desk, billing, tenant_admin); null for
    /// patients.
    role: Option<String>,
    /// For a patient, the patient record the account is linked to.
    patient_id: Option<String>,
    /// The clinic.
    clinic: String,
    /// When the session ends at the latest, in RFC 3339 (UTC).
    session_expires_at: Option<String>,
}

#[Object]
impl SessionQuery {
    /// Who is signed in at this portal; null when nobody is (or sign-in is half done).
    async fn me(&self, ctx: &Context<'_>) -> Result<Option<Me>> {
        let request = request_context(ctx)?;
        let expires = request.session.as_ref().map(|current| {
            current
                .session
                .expires_at
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        });
        Ok(match &request.principal {
            Principal::Patient { patient, .. } => Some(Me {
                kind: "patient".to_owned(),
                role: None,
                patient_id: Some(patient.to_string()),
                clinic: request.tenant.slug.to_string(),
                session_expires_at: expires,
            }),
            Principal::Staff { role, .. } => Some(Me {
                kind: "staff".to_owned(),
                role: Some(role.code().to_owned()),
                patient_id: None,
                clinic: request.tenant.slug.to_string(),
                session_expires_at: expires,
            }),
            _ => None,
        })
    }

    /// Your sessions that still stand (signed in fully or waiting for the second factor),
    /// newest first, so you can end one you do not recognize.
    async fn sessions(&self, ctx: &Context<'_>) -> Result<Vec<SessionInfo>> {
        let request = request_context(ctx)?;
        let current = request
            .session
            .as_ref()
            .map(|current| sessions::reference(&current.session.id));
        let live = ctx
            .data::<LocalIdentity>()?
            .sessions(&request.principal)
            .await
            .map_err(error::from_sign_in)?;
        let time =
            |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);

        Ok(live
            .into_iter()
            .map(|session| SessionInfo {
                current: current.as_deref() == Some(session.reference.as_str()),
                created_at: time(session.created_at),
                last_seen_at: time(session.last_seen_at),
                expires_at: time(session.expires_at),
                reference: session.reference,
            })
            .collect())
    }

    /// Your passkeys.
    async fn passkeys(&self, ctx: &Context<'_>) -> Result<Vec<crate::passkey::Passkey>> {
        crate::passkey::passkeys(ctx).await
    }

    /// Who has opened your record: every access to your data, newest first. Only a
    /// signed-in patient may ask, and only about themselves.
    async fn access_log(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 20, desc = "How many entries, 1 to 100.")] first: i32,
        #[graphql(desc = "The `nextCursor` of the previous page.")] before: Option<String>,
    ) -> Result<AccessLogPage> {
        let request = request_context(ctx)?;
        match &request.principal {
            Principal::Patient { tenant, .. } if *tenant == request.tenant.id => {}
            Principal::Patient { .. } => return Err(ErrorCode::Forbidden.error("Not allowed.")),
            _ => {
                return Err(
                    ErrorCode::Unauthenticated.error("Sign in to see who has opened your record.")
                );
            }
        }
        if !(1..=100).contains(&first) {
            return Err(ErrorCode::ValidationFailed.error("`first` must be 1 to 100."));
        }
        let before = match before {
            Some(cursor) => Some(
                cursor
                    .parse::<i64>()
                    .ok()
                    .filter(|seq| *seq > 0)
                    .ok_or_else(|| {
                        ErrorCode::ValidationFailed.error("`before` is not a cursor from this log.")
                    })?,
            ),
            None => None,
        };
        let page = ctx
            .data::<AuditTrail>()?
            .access_log(
                &request.principal,
                u64::try_from(first).unwrap_or(20),
                before,
            )
            .await
            .map_err(error::from_audit)?;

        Ok(AccessLogPage {
            entries: page.entries.into_iter().map(entry).collect(),
            next_cursor: page.next.map(|seq| seq.to_string()),
        })
    }

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

#[async_graphql::ComplexObject]
impl TenantInfo {
    /// Its colours, logo and support line.
    async fn branding(&self, ctx: &Context<'_>) -> Result<crate::branding::BrandingInfo> {
        crate::branding::branding(ctx).await
    }
}

pub(crate) fn request_context<'a>(ctx: &Context<'a>) -> Result<&'a RequestContext> {
    // The HTTP edge always supplies it; its absence is a wiring fault, not a client error.
    ctx.data_opt::<RequestContext>()
        .ok_or_else(|| ErrorCode::Internal.error("Internal error."))
}

fn entry(entry: access_log::AccessLogEntry) -> AccessLogEntry {
    AccessLogEntry {
        at: entry.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        who: Accessor {
            kind: entry.who.kind.code().to_owned(),
            name: entry.who.name,
            role: entry.who.role,
            is_you: entry.who.is_you,
        },
        action: entry.action.code().to_owned(),
        data_kind: entry.resource_type,
        outcome: entry.outcome.code().to_owned(),
        purpose: entry.purpose.code().to_owned(),
    }
}
