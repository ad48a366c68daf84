//! Passkeys: adding one while signed in, and signing in with one after the password.
//!
//! The options and answers are WebAuthn's own JSON (`PublicKeyCredentialCreationOptions`
//! and `…RequestOptions` under `publicKey`, binary fields in base64url), passed through as
//! strings: the page hands the options to `navigator.credentials.create()` or `.get()` and
//! sends back the credential it returns, JSON-encoded.

use async_graphql::{Context, ID, Object, Result, SimpleObject};
use portico_platform::identity::local::LocalIdentity;
use portico_platform::identity::passkey::{PasskeyInfo, RelyingParty};

use crate::RequestContext;
use crate::error::{self, ErrorCode};
use crate::mutation::{SignedIn, cookie, pending};
use crate::query::request_context;

/// Passkeys.
#[derive(Debug, Default)]
pub struct PasskeyMutation;

/// A registered passkey.
#[derive(Debug, SimpleObject)]
pub struct Passkey {
    /// Its id, for `removePasskey`.
    id: ID,
    /// The name you gave it.
    name: String,
    /// When it was added, RFC 3339 (UTC).
    created_at: String,
    /// When it last signed you in.
    last_used_at: Option<String>,
}

impl From<PasskeyInfo> for Passkey {
    fn from(info: PasskeyInfo) -> Self {
        let time =
            |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        Self {
            id: ID(info.id.to_string()),
            name: info.name,
            created_at: time(info.created_at),
            last_used_at: info.last_used_at.map(time),
        }
    }
}

#[Object]
impl PasskeyMutation {
    /// Starts adding a passkey (signed in): pass the answer's `publicKey` options to
    /// `navigator.credentials.create()`, then send the credential to
    /// `finishPasskeyRegistration` within 5 minutes.
    async fn start_passkey_registration(&self, ctx: &Context<'_>) -> Result<String> {
        let request = request_context(ctx)?;
        let session = full_session(request)?;
        ctx.data::<LocalIdentity>()?
            .start_passkey_registration(&request.principal, session, &relying_party(request)?)
            .await
            .map_err(error::from_passkey)
    }

    /// Finishes adding a passkey with the credential the browser created (its JSON) and a
    /// name to know it by ("My phone").
    async fn finish_passkey_registration(
        &self,
        ctx: &Context<'_>,
        credential: String,
        #[graphql(default)] name: String,
    ) -> Result<Passkey> {
        let request = request_context(ctx)?;
        let session = full_session(request)?;
        ctx.data::<LocalIdentity>()?
            .finish_passkey_registration(
                &request.principal,
                session,
                &relying_party(request)?,
                &credential,
                &name,
            )
            .await
            .map(Passkey::from)
            .map_err(error::from_passkey)
    }

    /// Removes one of your passkeys. False if you have none with that id.
    async fn remove_passkey(&self, ctx: &Context<'_>, id: ID) -> Result<bool> {
        let request = request_context(ctx)?;
        let id = id
            .parse::<uuid::Uuid>()
            .map_err(|_| ErrorCode::ValidationFailed.error("`id` is not a passkey id."))?;
        ctx.data::<LocalIdentity>()?
            .remove_passkey(&request.principal, id)
            .await
            .map_err(error::from_passkey)
    }

    /// The second step of sign-in with a passkey, after `signIn`: pass the answer's
    /// `publicKey` options to `navigator.credentials.get()`, then send the credential to
    /// `finishPasskeySignIn`.
    async fn start_passkey_sign_in(&self, ctx: &Context<'_>) -> Result<String> {
        let request = request_context(ctx)?;
        let pending = pending(request)?;
        ctx.data::<LocalIdentity>()?
            .start_passkey_sign_in(request.tenant.id, pending, &relying_party(request)?)
            .await
            .map_err(error::from_sign_in)
    }

    /// Finishes signing in with the credential the browser returned (its JSON). Replaces
    /// the session with a fully signed-in one.
    async fn finish_passkey_sign_in(
        &self,
        ctx: &Context<'_>,
        credential: String,
    ) -> Result<SignedIn> {
        let request = request_context(ctx)?;
        let pending = pending(request)?;
        let issued = ctx
            .data::<LocalIdentity>()?
            .finish_passkey_sign_in(
                request.tenant.id,
                pending,
                &relying_party(request)?,
                &credential,
                &request.client,
            )
            .await
            .map_err(error::from_sign_in)?;
        ctx.append_http_header("set-cookie", cookie(issued.token.expose()));

        Ok(SignedIn::new(issued.csrf.expose().clone()))
    }
}

/// The signed-in person's passkeys.
pub(crate) async fn passkeys(ctx: &Context<'_>) -> Result<Vec<Passkey>> {
    let request = request_context(ctx)?;
    let list = ctx
        .data::<LocalIdentity>()?
        .passkeys(&request.principal)
        .await
        .map_err(error::from_passkey)?;
    Ok(list.into_iter().map(Passkey::from).collect())
}

fn full_session(
    request: &RequestContext,
) -> Result<&portico_platform::identity::sessions::Session> {
    request
        .session
        .as_ref()
        .map(|current| &current.session)
        .ok_or_else(|| ErrorCode::Unauthenticated.error("Sign in first."))
}

/// Passkeys belong to the portal's own address; an IP address cannot carry them.
fn relying_party(request: &RequestContext) -> Result<RelyingParty> {
    let host = request.host.as_deref().unwrap_or_default();
    RelyingParty::for_host(host, &request.tenant.display_name, request.development).ok_or_else(
        || {
            ErrorCode::ValidationFailed.error(
                "Passkeys work only at the portal's own address (https://<clinic>.<domain>).",
            )
        },
    )
}
