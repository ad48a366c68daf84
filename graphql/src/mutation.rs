//! The root mutation type: signing in and out here, enrollment and reset in
//! [`crate::enrollment`].
//!
//! The session token travels only in the `__Host-` cookie these mutations set (HttpOnly,
//! Secure, SameSite=Lax): never in a response body. The CSRF token comes back in the body
//! of the final sign-in step, for the `X-CSRF-Token` header of every later request.

use async_graphql::{Context, MergedObject, Object, Result, SimpleObject};
use portico_platform::identity::local::LocalIdentity;
use portico_platform::identity::sessions::Stage;
use portico_platform::secret::Secret;

use crate::RequestContext;
use crate::enrollment::EnrollmentMutation;
use crate::error::{self, ErrorCode};
use crate::passkey::PasskeyMutation;
use crate::query::request_context;

/// The session cookie's name. `__Host-` makes browsers insist on Secure, Path=/ and no
/// Domain, so no other host can set or read it.
pub const SESSION_COOKIE: &str = "__Host-portico_session";

/// Everything that changes something.
#[derive(Debug, Default, MergedObject)]
pub struct Mutation(
    SessionMutation,
    EnrollmentMutation,
    PasskeyMutation,
    crate::records::RecordsMutation,
    crate::branding::BrandingMutation,
);

/// Signing in and out.
#[derive(Debug, Default)]
pub struct SessionMutation;

/// What sign-in needs next.
#[derive(Debug, SimpleObject)]
pub struct SignInStep {
    /// `TOTP`: a code from the authenticator app, through `verifyTotp`.
    next: String,
    /// Other second factors: `PASSKEY` (`startPasskeySignIn` then `finishPasskeySignIn`;
    /// once one is registered), `SMS` (`sendSmsCode` then `verifySmsCode`; patients with a
    /// mobile number on file) and `RECOVERY_CODE` (`useRecoveryCode`).
    alternatives: Vec<String>,
}

/// A completed sign-in.
#[derive(Debug, SimpleObject)]
pub struct SignedIn {
    /// Send this as the `X-CSRF-Token` header with every later request.
    csrf_token: String,
}

impl SignedIn {
    pub(crate) fn new(csrf_token: String) -> Self {
        Self { csrf_token }
    }
}

#[Object]
impl SessionMutation {
    /// The first step: e-mail address and password. On success a session cookie is set that
    /// reaches nothing until `verifyTotp`.
    async fn sign_in(
        &self,
        ctx: &Context<'_>,
        email: String,
        password: String,
    ) -> Result<SignInStep> {
        let request = request_context(ctx)?;
        let password = Secret::new(password);
        let issued = ctx
            .data::<LocalIdentity>()?
            .sign_in(request.tenant.id, &email, &password, &request.client)
            .await
            .map_err(error::from_sign_in)?;
        ctx.append_http_header("set-cookie", cookie(issued.token.expose()));

        Ok(SignInStep {
            next: "TOTP".to_owned(),
            alternatives: vec![
                "PASSKEY".to_owned(),
                "SMS".to_owned(),
                "RECOVERY_CODE".to_owned(),
            ],
        })
    }

    /// The second step: the 6-digit code from the authenticator app. Replaces the session
    /// with a fully signed-in one.
    async fn verify_totp(&self, ctx: &Context<'_>, code: String) -> Result<SignedIn> {
        let request = request_context(ctx)?;
        let pending = pending(request)?;
        let issued = ctx
            .data::<LocalIdentity>()?
            .verify_totp(request.tenant.id, pending, &code, &request.client)
            .await
            .map_err(error::from_sign_in)?;
        ctx.append_http_header("set-cookie", cookie(issued.token.expose()));

        Ok(SignedIn {
            csrf_token: issued.csrf.expose().clone(),
        })
    }

    /// Texts a sign-in code to the mobile number the clinic has on file (patients only).
    /// Then give it to `verifySmsCode`. Never to a number typed here.
    async fn send_sms_code(&self, ctx: &Context<'_>) -> Result<bool> {
        let request = request_context(ctx)?;
        let pending = pending(request)?;
        ctx.data::<LocalIdentity>()?
            .send_sms_code(request.tenant.id, pending, &request.tenant.display_name)
            .await
            .map_err(error::from_sign_in)?;
        Ok(true)
    }

    /// The second step with the code `sendSmsCode` texted. Replaces the session with a
    /// fully signed-in one.
    async fn verify_sms_code(&self, ctx: &Context<'_>, code: String) -> Result<SignedIn> {
        let request = request_context(ctx)?;
        let pending = pending(request)?;
        let issued = ctx
            .data::<LocalIdentity>()?
            .verify_sms_code(request.tenant.id, pending, &code, &request.client)
            .await
            .map_err(error::from_sign_in)?;
        ctx.append_http_header("set-cookie", cookie(issued.token.expose()));

        Ok(SignedIn {
            csrf_token: issued.csrf.expose().clone(),
        })
    }

    /// Ends one of your other sessions by its `reference` (from `sessions`). False if no
    /// live session of yours has it.
    async fn end_session(&self, ctx: &Context<'_>, reference: String) -> Result<bool> {
        let request = request_context(ctx)?;
        ctx.data::<LocalIdentity>()?
            .end_session(&request.principal, &reference)
            .await
            .map_err(error::from_sign_in)
    }

    /// The second step without the authenticator app: one of the account's recovery codes,
    /// which is then used up.
    async fn use_recovery_code(&self, ctx: &Context<'_>, code: String) -> Result<SignedIn> {
        let request = request_context(ctx)?;
        let pending = pending(request)?;
        let issued = ctx
            .data::<LocalIdentity>()?
            .use_recovery_code(request.tenant.id, pending, &code, &request.client)
            .await
            .map_err(error::from_sign_in)?;
        ctx.append_http_header("set-cookie", cookie(issued.token.expose()));

        Ok(SignedIn {
            csrf_token: issued.csrf.expose().clone(),
        })
    }

    /// Ends this session, or with `everywhere`, every session of the account.
    async fn sign_out(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = false)] everywhere: bool,
    ) -> Result<bool> {
        let request = request_context(ctx)?;
        let Some(current) = request.session.as_ref() else {
            return Err(ErrorCode::Unauthenticated.error("Not signed in."));
        };
        ctx.data::<LocalIdentity>()?
            .sign_out(&current.session, everywhere)
            .await
            .map_err(error::from_sign_in)?;
        ctx.append_http_header(
            "set-cookie",
            format!("{SESSION_COOKIE}=; {ATTRIBUTES}; Max-Age=0"),
        );

        Ok(true)
    }
}

const ATTRIBUTES: &str = "Path=/; HttpOnly; Secure; SameSite=Lax";

/// The session cookie: no Max-Age, so it ends with the browser; the server ends it sooner.
pub(crate) fn cookie(token: &str) -> String {
    format!("{SESSION_COOKIE}={token}; {ATTRIBUTES}")
}

/// The token of a session waiting for its second factor.
pub(crate) fn pending(request: &RequestContext) -> Result<&str> {
    match &request.session {
        Some(current) if current.session.stage == Stage::Password => {
            Ok(current.token.expose().as_str())
        }
        _ => Err(ErrorCode::Unauthenticated.error("Sign in with your password first.")),
    }
}
