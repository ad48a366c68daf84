//! Amazon Cognito: each tenant's patients and staff in a user pool of the tenant's own.
//!
//! On tenant creation: `CreateUserPool` named `portico-<slug>`, tagged with the tenant, with
//! e-mail addresses as user names, MFA required (authenticator apps and SMS), a password
//! policy after NIST SP 800-63B §3.1.1.2 (length, not character classes), and only admins
//! creating accounts; then one app client with a secret that signs in with
//! `USER_PASSWORD_AUTH` and refreshes. Sign-in is `InitiateAuth` answered by
//! `RespondToAuthChallenge` until Cognito hands out tokens; the ID and access tokens are
//! checked against the pool's published keys (RS256, JWKS) with the caller's clock.
//!
//! AWS settings load the standard way (region, credentials chain, `AWS_ENDPOINT_URL` and
//! `AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER`), so pointing Portico at an emulator needs
//! no switch of ours; the pool's keys are fetched from that same endpoint.
//!
//! Nothing Cognito says about a user reaches an error of ours as text: its messages can
//! name the user (and the emulator's name the secret hash), so errors keep only the
//! operation, the error code and the HTTP status.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use aws_config::SdkConfig;
use aws_sdk_cognitoidentityprovider::Client;
use aws_sdk_cognitoidentityprovider::config::http::HttpResponse;
use aws_sdk_cognitoidentityprovider::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_cognitoidentityprovider::types::{
    AdminCreateUserConfigType, AttributeType, AuthFlowType, AuthenticationResultType,
    ChallengeNameType, ExplicitAuthFlowsType, MessageActionType, PasswordPolicyType,
    PreventUserExistenceErrorTypes, SmsConfigurationType, SmsMfaConfigType, SmsMfaSettingsType,
    SoftwareTokenMfaConfigType, SoftwareTokenMfaSettingsType, UserPoolMfaType, UserPoolPolicyType,
    UsernameAttributeType, VerifiedAttributeType, VerifySoftwareTokenResponseType,
};
use aws_types::service_config::ServiceConfigKey;
use base64::Engine;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use portico_platform::ids::TenantId;
use portico_platform::secret::Secret;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use sha2::Sha256;
use tracing::instrument;

/// The shortest password the pool accepts: NIST SP 800-63B §3.1.1.2 asks for at least 8.
pub const MIN_PASSWORD_LENGTH: i32 = 8;

/// How long a fetched key set is trusted before an unknown `kid` may fetch it again; keeps
/// forged tokens with made-up key ids from turning into a stream of requests.
const JWKS_REFETCH_AFTER_SECS: i64 = 60;

/// The text of the SMS that carries a sign-in code: a code and nothing about the patient
/// (ARCHITECTURE.md rule 4).
const SMS_MESSAGE: &str = "Your sign-in code is {####}. Do not share it.";

/// A user pool's id (`us-east-1_AbC123`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PoolId(pub String);

/// An app client's id within a pool.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientId(pub String);

/// A user's `sub`: the id Cognito gives a user for life, unlike the e-mail address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CognitoSub(pub String);

macro_rules! display_inner {
    ($($name:ident),*) => {$(
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    )*};
}
display_inner!(PoolId, ClientId, CognitoSub);

/// What Portico keeps about a tenant's pool: all three are needed to sign anyone in.
#[derive(Debug, Clone)]
pub struct PoolIds {
    /// The pool.
    pub pool_id: PoolId,
    /// Portico's app client in it.
    pub client_id: ClientId,
    /// That client's secret; store it sealed.
    pub client_secret: Secret<String>,
}

/// A new user's first password.
#[derive(Debug, Clone)]
pub enum InitialPassword {
    /// To be replaced at first sign-in (`NEW_PASSWORD_REQUIRED`), after which MFA is set up.
    Temporary(Secret<String>),
    /// Final: the user signs in with it and goes straight to MFA.
    Permanent(Secret<String>),
}

/// The second factor a user has chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MfaMethod {
    /// A code from an authenticator app (RFC 6238).
    SoftwareToken,
    /// A code sent by text message to the user's `phone_number`.
    Sms,
}

/// Where a sign-in stands after a step.
#[derive(Debug)]
pub enum Step {
    /// Cognito asks for something more.
    Challenge(Challenge),
    /// The user is signed in.
    Tokens(Tokens),
}

/// What Cognito asks for next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChallengeKind {
    /// The code from the user's authenticator app: [`Cognito::respond_totp`].
    SoftwareTokenMfa,
    /// The code sent by SMS: [`Cognito::respond_sms`].
    SmsMfa,
    /// MFA is required and the user has none yet: [`Cognito::associate_software_token`],
    /// then [`Cognito::verify_software_token`].
    MfaSetup,
    /// The password was temporary: [`Cognito::respond_new_password`].
    NewPasswordRequired,
}

/// A challenge in a sign-in, to be answered within Cognito's session lifetime (3 minutes
/// by default). Keep it server-side: the session lets its holder continue the sign-in.
#[derive(Debug, Clone)]
pub struct Challenge {
    /// What is asked for.
    pub kind: ChallengeKind,
    /// Cognito's session for the next answer.
    pub session: Secret<String>,
    /// The user name Cognito wants in the answer (its internal one where it gives it);
    /// hidden because it can be the e-mail address.
    pub username: Secret<String>,
}

/// The tokens of a finished sign-in. Check them with [`Cognito::verify_tokens`].
#[derive(Debug, Clone)]
pub struct Tokens {
    /// The OpenID Connect ID token (who the user is).
    pub id_token: Secret<String>,
    /// The access token (what Cognito's user APIs accept).
    pub access_token: Secret<String>,
    /// The refresh token, when Cognito issued one.
    pub refresh_token: Option<Secret<String>>,
    /// Seconds until the ID and access tokens expire.
    pub expires_in_secs: i64,
}

/// An authenticator app being set up: show `secret` (base32) or a QR code of it, then
/// send the first code to [`Cognito::verify_software_token`] with `challenge`.
#[derive(Debug)]
pub struct TotpEnrollment {
    /// The shared secret, base32.
    pub secret: Secret<String>,
    /// The MFA_SETUP challenge with Cognito's new session.
    pub challenge: Challenge,
}

/// Who a verified pair of tokens is for.
#[derive(Clone, PartialEq, Eq)]
pub struct CognitoSubject {
    /// Cognito's id for the user.
    pub sub: CognitoSub,
    /// The user's e-mail address, from the ID token.
    pub email: String,
}

impl fmt::Debug for CognitoSubject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CognitoSubject")
            .field("sub", &self.sub)
            .field("email", &"***")
            .finish()
    }
}

/// How the pools' text messages reach SNS.
#[derive(Debug, Clone)]
pub struct SmsSettings {
    /// The IAM role Cognito assumes to publish SMS through SNS.
    pub sns_caller_role_arn: String,
    /// The external id that role's trust policy requires of Cognito.
    pub external_id: String,
}

/// What went wrong in Cognito. No variant carries a password, code, token, e-mail address
/// or secret, and neither do the messages of their sources.
#[derive(Debug, thiserror::Error)]
pub enum CognitoError {
    /// Wrong password or no such user: the same answer for both, so that sign-in does not
    /// tell who has an account.
    #[error("the e-mail address or password is not right")]
    Invalid,
    /// A one-time code that is wrong or has expired.
    #[error("that code is not right or has expired")]
    CodeMismatch,
    /// The sign-in took too long (or its session was answered already): start again.
    #[error("the sign-in has expired; start again")]
    SessionExpired,
    /// The password breaks the pool's policy or repeats an earlier one.
    #[error("that password cannot be used")]
    PasswordRejected,
    /// The user must reset the password before signing in.
    #[error("the password must be reset before signing in")]
    PasswordResetRequired,
    /// A user with that e-mail address exists in the pool already.
    #[error("an account with that e-mail address exists already")]
    UserExists,
    /// Cognito refuses more attempts for now.
    #[error("too many attempts; wait a while and try again")]
    TooManyAttempts,
    /// The pool, client or user does not exist.
    #[error("not found in Cognito")]
    NotFound,
    /// A token that does not verify; the reason is for the log, never for the client.
    #[error("the token is not valid: {0}")]
    TokenInvalid(&'static str),
    /// Cognito (or its key set) could not be reached, timed out or failed on its side.
    #[error("Cognito is unavailable: {0}")]
    Unavailable(ServiceFault),
    /// Cognito refused the request or answered something this adapter cannot use.
    #[error("Cognito failed: {0}")]
    Internal(ServiceFault),
}

/// Which operation failed and how, in words that are safe to log: an operation, an error
/// code, an HTTP status or a transport error — never a service message.
#[derive(Debug)]
pub struct ServiceFault {
    operation: &'static str,
    detail: String,
}

impl ServiceFault {
    fn new(operation: &'static str, detail: impl Into<String>) -> Self {
        Self {
            operation,
            detail: detail.into(),
        }
    }
}

impl fmt::Display for ServiceFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.operation, self.detail)
    }
}

/// The Cognito identity adapter.
#[derive(Debug, Clone)]
pub struct Cognito {
    client: Client,
    http: reqwest::Client,
    sms: SmsSettings,
    /// Where pools publish their keys: `<base>/<poolId>/.well-known/jwks.json`.
    jwks_base: String,
    /// What pools sign as their issuer: `https://cognito-idp.<region>.amazonaws.com`.
    issuer_base: String,
    jwks: Arc<RwLock<HashMap<PoolId, CachedKeys>>>,
}

/// A pool's key set and when it was fetched.
#[derive(Debug, Clone)]
struct CachedKeys {
    keys: Arc<JwkSet>,
    fetched_at: DateTime<Utc>,
}

impl Cognito {
    /// Loads AWS settings from the environment and the standard credentials chain.
    pub async fn from_environment(sms: SmsSettings) -> Result<Self, CognitoError> {
        // Short timeouts: sign-in waits on these calls, and an outage should fail fast.
        let sdk = crate::aws::sdk_config(Duration::from_secs(5), Duration::from_secs(15)).await;

        Self::new(&sdk, sms)
    }

    /// A client on settings already loaded.
    pub fn new(sdk: &SdkConfig, sms: SmsSettings) -> Result<Self, CognitoError> {
        let region = sdk
            .region()
            .map(|region| region.as_ref().to_owned())
            .ok_or_else(|| CognitoError::Internal(ServiceFault::new("setup", "no AWS region")))?;
        let issuer_base = format!("https://cognito-idp.{region}.amazonaws.com");
        let jwks_base = endpoint_override(sdk)
            .map(|url| url.trim_end_matches('/').to_owned())
            .unwrap_or_else(|| issuer_base.clone());
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .map_err(|err| CognitoError::Internal(ServiceFault::new("setup", err.to_string())))?;

        Ok(Self {
            client: Client::new(sdk),
            http,
            sms,
            jwks_base,
            issuer_base,
            jwks: Arc::default(),
        })
    }

    /// The issuer (`iss`) of a pool's tokens.
    pub fn issuer(&self, pool: &PoolId) -> String {
        format!("{}/{pool}", self.issuer_base)
    }

    /// Where a pool's signing keys are published.
    pub fn jwks_url(&self, pool: &PoolId) -> String {
        format!("{}/{pool}/.well-known/jwks.json", self.jwks_base)
    }

    /// Creates a tenant's pool and Portico's client in it. A pool whose setup fails part
    /// way is deleted again.
    #[instrument(skip_all, fields(tenant.id = %tenant))]
    pub async fn provision_pool(
        &self,
        tenant: TenantId,
        slug: &str,
    ) -> Result<PoolIds, CognitoError> {
        const OP: &str = "CreateUserPool";
        // NIST SP 800-63B §3.1.1.2: a minimum length, no composition rules. The check
        // against breached passwords is Portico's own, before the password gets here.
        let password_policy = PasswordPolicyType::builder()
            .minimum_length(MIN_PASSWORD_LENGTH)
            .require_lowercase(false)
            .require_uppercase(false)
            .require_numbers(false)
            .require_symbols(false)
            .temporary_password_validity_days(7)
            .build();
        let created = self
            .client
            .create_user_pool()
            .pool_name(format!("portico-{slug}"))
            .username_attributes(UsernameAttributeType::Email)
            .auto_verified_attributes(VerifiedAttributeType::Email)
            .policies(
                UserPoolPolicyType::builder()
                    .password_policy(password_policy)
                    .build(),
            )
            .mfa_configuration(UserPoolMfaType::On)
            .sms_configuration(self.sms_configuration())
            .sms_authentication_message(SMS_MESSAGE)
            // Accounts are made by Portico (onboarding, invitations), never by sign-up
            // straight to Cognito, which would bypass the tenant's checks.
            .admin_create_user_config(
                AdminCreateUserConfigType::builder()
                    .allow_admin_create_user_only(true)
                    .build(),
            )
            .user_pool_tags("portico:tenant_id", tenant.to_string())
            .user_pool_tags("portico:tenant_slug", slug)
            .user_pool_tags("portico:purpose", "identity")
            .send()
            .await
            .map_err(|err| sdk_error(OP, Flow::Admin, err))?;
        let pool_id = created
            .user_pool()
            .and_then(|pool| pool.id())
            .map(|id| PoolId(id.to_owned()))
            .ok_or_else(|| CognitoError::Internal(ServiceFault::new(OP, "no pool id")))?;

        // A pool half set up is no use to anyone: remove it rather than leave it behind.
        match self.finish_pool(&pool_id).await {
            Ok((client_id, client_secret)) => Ok(PoolIds {
                pool_id,
                client_id,
                client_secret,
            }),
            Err(err) => {
                let _ = self.delete_pool(&pool_id).await;
                Err(err)
            }
        }
    }

    /// The MFA settings and the app client: the steps after `CreateUserPool`.
    async fn finish_pool(&self, pool: &PoolId) -> Result<(ClientId, Secret<String>), CognitoError> {
        const MFA: &str = "SetUserPoolMfaConfig";
        self.client
            .set_user_pool_mfa_config()
            .user_pool_id(&pool.0)
            .mfa_configuration(UserPoolMfaType::On)
            .software_token_mfa_configuration(
                SoftwareTokenMfaConfigType::builder().enabled(true).build(),
            )
            .sms_mfa_configuration(
                SmsMfaConfigType::builder()
                    .sms_authentication_message(SMS_MESSAGE)
                    .sms_configuration(self.sms_configuration())
                    .build(),
            )
            .send()
            .await
            .map_err(|err| sdk_error(MFA, Flow::Admin, err))?;

        const CLIENT: &str = "CreateUserPoolClient";
        let created = self
            .client
            .create_user_pool_client()
            .user_pool_id(&pool.0)
            .client_name("portico")
            .generate_secret(true)
            .explicit_auth_flows(ExplicitAuthFlowsType::AllowUserPasswordAuth)
            .explicit_auth_flows(ExplicitAuthFlowsType::AllowRefreshTokenAuth)
            // Unknown users fail exactly like wrong passwords, on Cognito's side too.
            .prevent_user_existence_errors(PreventUserExistenceErrorTypes::Enabled)
            .enable_token_revocation(true)
            .send()
            .await
            .map_err(|err| sdk_error(CLIENT, Flow::Admin, err))?;
        let client = created
            .user_pool_client()
            .ok_or_else(|| CognitoError::Internal(ServiceFault::new(CLIENT, "no client")))?;
        let client_id = client
            .client_id()
            .map(|id| ClientId(id.to_owned()))
            .ok_or_else(|| CognitoError::Internal(ServiceFault::new(CLIENT, "no client id")))?;
        let secret = client
            .client_secret()
            .map(|secret| Secret::new(secret.to_owned()))
            .ok_or_else(|| CognitoError::Internal(ServiceFault::new(CLIENT, "no client secret")))?;

        Ok((client_id, secret))
    }

    /// Deletes a pool with its users and clients: rollback of a failed onboarding, or
    /// offboarding.
    #[instrument(skip_all, fields(pool.id = %pool))]
    pub async fn delete_pool(&self, pool: &PoolId) -> Result<(), CognitoError> {
        // TODO: pools are created without deletion protection so that rollback can remove
        // them; offboarding alone should be able to, behind protection, so that no slip
        // deletes a live tenant's accounts.
        self.client
            .delete_user_pool()
            .user_pool_id(&pool.0)
            .send()
            .await
            .map_err(|err| sdk_error("DeleteUserPool", Flow::Admin, err))?;

        Ok(())
    }

    /// The ids of a pool and Portico's client in it, with the client's secret read back
    /// from Cognito (Portico records only the ids).
    #[instrument(skip_all, fields(pool.id = %pool))]
    pub async fn pool_ids(
        &self,
        pool: &PoolId,
        client: &ClientId,
    ) -> Result<PoolIds, CognitoError> {
        const OP: &str = "DescribeUserPoolClient";
        let described = self
            .client
            .describe_user_pool_client()
            .user_pool_id(&pool.0)
            .client_id(&client.0)
            .send()
            .await
            .map_err(|err| sdk_error(OP, Flow::Admin, err))?;
        let secret = described
            .user_pool_client()
            .and_then(|client| client.client_secret())
            .map(|secret| Secret::new(secret.to_owned()))
            .ok_or_else(|| CognitoError::Internal(ServiceFault::new(OP, "no client secret")))?;

        Ok(PoolIds {
            pool_id: pool.clone(),
            client_id: client.clone(),
            client_secret: secret,
        })
    }

    /// Replaces a user's password with a permanent one. `username` is the e-mail address
    /// or the `sub`.
    #[instrument(skip_all, fields(pool.id = %pool))]
    pub async fn set_password(
        &self,
        pool: &PoolId,
        username: &str,
        password: &Secret<String>,
    ) -> Result<(), CognitoError> {
        self.client
            .admin_set_user_password()
            .user_pool_id(&pool.0)
            .username(username)
            .password(password.expose())
            .permanent(true)
            .send()
            .await
            .map_err(|err| sdk_error("AdminSetUserPassword", Flow::Admin, err))?;
        Ok(())
    }

    /// Deletes a user (one whose set-up failed part way).
    #[instrument(skip_all, fields(pool.id = %pool))]
    pub async fn delete_user(&self, pool: &PoolId, username: &str) -> Result<(), CognitoError> {
        self.client
            .admin_delete_user()
            .user_pool_id(&pool.0)
            .username(username)
            .send()
            .await
            .map_err(|err| sdk_error("AdminDeleteUser", Flow::Admin, err))?;
        Ok(())
    }

    /// Creates a user with a verified e-mail address, sending nothing (Portico sends its
    /// own invitation); returns the user's `sub`.
    #[instrument(skip_all, fields(pool.id = %pool))]
    pub async fn create_user(
        &self,
        pool: &PoolId,
        email: &str,
        password: &InitialPassword,
    ) -> Result<CognitoSub, CognitoError> {
        const OP: &str = "AdminCreateUser";
        let mut request = self
            .client
            .admin_create_user()
            .user_pool_id(&pool.0)
            .username(email)
            .user_attributes(attribute(OP, "email", email)?)
            .user_attributes(attribute(OP, "email_verified", "true")?)
            .message_action(MessageActionType::Suppress);
        if let InitialPassword::Temporary(temporary) = password {
            request = request.temporary_password(temporary.expose());
        }
        let created = request
            .send()
            .await
            .map_err(|err| sdk_error(OP, Flow::Admin, err))?;
        let sub = created
            .user()
            .and_then(|user| {
                user.attributes()
                    .iter()
                    .find(|attribute| attribute.name() == "sub")
                    .and_then(|attribute| attribute.value())
            })
            .map(|sub| CognitoSub(sub.to_owned()))
            .ok_or_else(|| CognitoError::Internal(ServiceFault::new(OP, "no sub")))?;

        if let InitialPassword::Permanent(permanent) = password {
            let set = self
                .client
                .admin_set_user_password()
                .user_pool_id(&pool.0)
                .username(&sub.0)
                .password(permanent.expose())
                .permanent(true)
                .send()
                .await;
            // A user without the password asked for would be left unusable: take it back.
            if let Err(err) = set {
                let _ = self
                    .client
                    .admin_delete_user()
                    .user_pool_id(&pool.0)
                    .username(&sub.0)
                    .send()
                    .await;
                return Err(sdk_error("AdminSetUserPassword", Flow::Admin, err));
            }
        }

        Ok(sub)
    }

    /// Starts a sign-in with e-mail address and password (`USER_PASSWORD_AUTH`).
    #[instrument(skip_all, fields(pool.id = %pool.pool_id))]
    pub async fn sign_in(
        &self,
        pool: &PoolIds,
        email: &str,
        password: &str,
    ) -> Result<Step, CognitoError> {
        const OP: &str = "InitiateAuth";
        let output = self
            .client
            .initiate_auth()
            .client_id(&pool.client_id.0)
            .auth_flow(AuthFlowType::UserPasswordAuth)
            .auth_parameters("USERNAME", email)
            .auth_parameters("PASSWORD", password)
            .auth_parameters("SECRET_HASH", secret_hash(pool, email).expose())
            .send()
            .await
            .map_err(|err| sdk_error(OP, Flow::SignIn, err))?;

        step(
            OP,
            output.challenge_name(),
            output.session(),
            output.challenge_parameters(),
            output.authentication_result(),
            email,
        )
    }

    /// Answers a `SoftwareTokenMfa` challenge with the code from the authenticator app.
    #[instrument(skip_all, fields(pool.id = %pool.pool_id))]
    pub async fn respond_totp(
        &self,
        pool: &PoolIds,
        challenge: &Challenge,
        code: &str,
    ) -> Result<Step, CognitoError> {
        expect_kind(challenge, ChallengeKind::SoftwareTokenMfa)?;

        self.respond(
            pool,
            challenge,
            &challenge.session,
            ChallengeNameType::SoftwareTokenMfa,
            &[("SOFTWARE_TOKEN_MFA_CODE", code)],
        )
        .await
    }

    /// Answers an `SmsMfa` challenge with the code the user was texted.
    #[instrument(skip_all, fields(pool.id = %pool.pool_id))]
    pub async fn respond_sms(
        &self,
        pool: &PoolIds,
        challenge: &Challenge,
        code: &str,
    ) -> Result<Step, CognitoError> {
        expect_kind(challenge, ChallengeKind::SmsMfa)?;

        self.respond(
            pool,
            challenge,
            &challenge.session,
            ChallengeNameType::SmsMfa,
            &[("SMS_MFA_CODE", code)],
        )
        .await
    }

    /// Answers a `NewPasswordRequired` challenge with the password the user chose.
    #[instrument(skip_all, fields(pool.id = %pool.pool_id))]
    pub async fn respond_new_password(
        &self,
        pool: &PoolIds,
        challenge: &Challenge,
        new_password: &str,
    ) -> Result<Step, CognitoError> {
        expect_kind(challenge, ChallengeKind::NewPasswordRequired)?;

        self.respond(
            pool,
            challenge,
            &challenge.session,
            ChallengeNameType::NewPasswordRequired,
            &[("NEW_PASSWORD", new_password)],
        )
        .await
    }

    /// Starts setting up an authenticator app during sign-in (an `MfaSetup` challenge).
    #[instrument(skip_all)]
    pub async fn associate_software_token(
        &self,
        challenge: &Challenge,
    ) -> Result<TotpEnrollment, CognitoError> {
        const OP: &str = "AssociateSoftwareToken";
        expect_kind(challenge, ChallengeKind::MfaSetup)?;
        let output = self
            .client
            .associate_software_token()
            .session(challenge.session.expose())
            .send()
            .await
            .map_err(|err| sdk_error(OP, Flow::Challenge, err))?;
        let secret = output
            .secret_code()
            .map(|secret| Secret::new(secret.to_owned()))
            .ok_or_else(|| CognitoError::Internal(ServiceFault::new(OP, "no secret")))?;
        let session = output
            .session()
            .map(|session| Secret::new(session.to_owned()))
            .unwrap_or_else(|| challenge.session.clone());

        Ok(TotpEnrollment {
            secret,
            challenge: Challenge {
                session,
                ..challenge.clone()
            },
        })
    }

    /// Checks the first code of the app being set up, then finishes the `MfaSetup`
    /// challenge: the user is signed in and has TOTP from now on.
    #[instrument(skip_all, fields(pool.id = %pool.pool_id))]
    pub async fn verify_software_token(
        &self,
        pool: &PoolIds,
        enrollment: &TotpEnrollment,
        code: &str,
    ) -> Result<Step, CognitoError> {
        const OP: &str = "VerifySoftwareToken";
        let challenge = &enrollment.challenge;
        expect_kind(challenge, ChallengeKind::MfaSetup)?;
        let output = self
            .client
            .verify_software_token()
            .session(challenge.session.expose())
            .user_code(code)
            .friendly_device_name("Authenticator app")
            .send()
            .await
            .map_err(|err| sdk_error(OP, Flow::Challenge, err))?;
        if output.status() != Some(&VerifySoftwareTokenResponseType::Success) {
            return Err(CognitoError::CodeMismatch);
        }
        let session = output
            .session()
            .map(|session| Secret::new(session.to_owned()))
            .unwrap_or_else(|| challenge.session.clone());

        self.respond(pool, challenge, &session, ChallengeNameType::MfaSetup, &[])
            .await
    }

    /// Starts setting up an authenticator app for a user already signed in (to add one,
    /// or to replace SMS); returns the secret, base32.
    #[instrument(skip_all)]
    pub async fn associate_software_token_signed_in(
        &self,
        access_token: &Secret<String>,
    ) -> Result<Secret<String>, CognitoError> {
        const OP: &str = "AssociateSoftwareToken";
        let output = self
            .client
            .associate_software_token()
            .access_token(access_token.expose())
            .send()
            .await
            .map_err(|err| sdk_error(OP, Flow::Challenge, err))?;

        output
            .secret_code()
            .map(|secret| Secret::new(secret.to_owned()))
            .ok_or_else(|| CognitoError::Internal(ServiceFault::new(OP, "no secret")))
    }

    /// Checks the first code of an app set up by a signed-in user; then make it the
    /// user's method with [`Cognito::set_mfa_preference`].
    #[instrument(skip_all)]
    pub async fn verify_software_token_signed_in(
        &self,
        access_token: &Secret<String>,
        code: &str,
    ) -> Result<(), CognitoError> {
        const OP: &str = "VerifySoftwareToken";
        let output = self
            .client
            .verify_software_token()
            .access_token(access_token.expose())
            .user_code(code)
            .friendly_device_name("Authenticator app")
            .send()
            .await
            .map_err(|err| sdk_error(OP, Flow::Challenge, err))?;
        if output.status() != Some(&VerifySoftwareTokenResponseType::Success) {
            return Err(CognitoError::CodeMismatch);
        }

        Ok(())
    }

    /// Makes `method` the user's enabled and preferred second factor. `username` is the
    /// e-mail address or the `sub`.
    #[instrument(skip_all, fields(pool.id = %pool))]
    pub async fn set_mfa_preference(
        &self,
        pool: &PoolId,
        username: &str,
        method: MfaMethod,
    ) -> Result<(), CognitoError> {
        let totp = method == MfaMethod::SoftwareToken;
        let mut request = self
            .client
            .admin_set_user_mfa_preference()
            .user_pool_id(&pool.0)
            .username(username);
        request = if totp {
            request.software_token_mfa_settings(
                SoftwareTokenMfaSettingsType::builder()
                    .enabled(true)
                    .preferred_mfa(true)
                    .build(),
            )
        } else {
            request.sms_mfa_settings(
                SmsMfaSettingsType::builder()
                    .enabled(true)
                    .preferred_mfa(true)
                    .build(),
            )
        };
        request
            .send()
            .await
            .map_err(|err| sdk_error("AdminSetUserMFAPreference", Flow::Admin, err))?;

        Ok(())
    }

    /// Signs the user out everywhere: refresh tokens stop working and access tokens are
    /// refused by Cognito's APIs. `username` is the e-mail address or the `sub`.
    ///
    /// ID and access tokens still verify until they expire — they are self-contained — so
    /// Portico's own server-side session is what ends access at once.
    #[instrument(skip_all, fields(pool.id = %pool))]
    pub async fn global_sign_out(&self, pool: &PoolId, username: &str) -> Result<(), CognitoError> {
        self.client
            .admin_user_global_sign_out()
            .user_pool_id(&pool.0)
            .username(username)
            .send()
            .await
            .map_err(|err| sdk_error("AdminUserGlobalSignOut", Flow::Admin, err))?;

        Ok(())
    }

    /// Checks a sign-in's ID and access tokens: RS256 under a key the pool publishes, the
    /// pool as issuer, Portico's client as audience, the right `token_use`, not expired at
    /// `now`, and both for the same user.
    #[instrument(skip_all, fields(pool.id = %pool.pool_id))]
    pub async fn verify_tokens(
        &self,
        pool: &PoolIds,
        tokens: &Tokens,
        now: DateTime<Utc>,
    ) -> Result<CognitoSubject, CognitoError> {
        let id: IdClaims = self
            .verify(pool, tokens.id_token.expose(), Audience::Id, now)
            .await?;
        let access: AccessClaims = self
            .verify(pool, tokens.access_token.expose(), Audience::Access, now)
            .await?;

        if id.token_use != "id" || access.token_use != "access" {
            return Err(CognitoError::TokenInvalid("wrong token_use"));
        }
        if access.client_id != pool.client_id.0 {
            return Err(CognitoError::TokenInvalid("issued to another client"));
        }
        if id.sub != access.sub {
            return Err(CognitoError::TokenInvalid("tokens of different users"));
        }
        let email = id
            .email
            .ok_or(CognitoError::TokenInvalid("no email claim"))?;

        Ok(CognitoSubject {
            sub: CognitoSub(id.sub),
            email,
        })
    }

    /// One token's signature and registered claims.
    async fn verify<C: DeserializeOwned + Expiring>(
        &self,
        pool: &PoolIds,
        token: &str,
        audience: Audience,
        now: DateTime<Utc>,
    ) -> Result<C, CognitoError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| CognitoError::TokenInvalid("not a JWT"))?;
        if header.alg != Algorithm::RS256 {
            return Err(CognitoError::TokenInvalid("not RS256"));
        }
        let kid = header.kid.ok_or(CognitoError::TokenInvalid("no key id"))?;
        let key = self.key(&pool.pool_id, &kid, now).await?;

        let mut validation = Validation::new(Algorithm::RS256);
        // Expiry is checked below against the injected clock, not the ambient one.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        validation.set_issuer(&[self.issuer(&pool.pool_id)]);
        match audience {
            Audience::Id => validation.set_audience(&[&pool.client_id.0]),
            // Access tokens name the client in `client_id`, not `aud`; checked by the caller.
            Audience::Access => validation.validate_aud = false,
        }
        let claims = jsonwebtoken::decode::<C>(token, &key, &validation)
            .map_err(|err| CognitoError::TokenInvalid(jwt_problem(&err)))?
            .claims;
        if claims.exp() <= now.timestamp() {
            return Err(CognitoError::TokenInvalid("expired"));
        }

        Ok(claims)
    }

    /// The pool's key `kid`, from the cache or, when it is not there, from one fresh fetch
    /// of the key set (Cognito rotates keys by publishing new ones).
    async fn key(
        &self,
        pool: &PoolId,
        kid: &str,
        now: DateTime<Utc>,
    ) -> Result<DecodingKey, CognitoError> {
        let cached = self
            .jwks
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(pool)
            .cloned();
        if let Some(cached) = &cached {
            if let Some(jwk) = cached.keys.find(kid) {
                return decoding_key(jwk);
            }
            if (now - cached.fetched_at).num_seconds() < JWKS_REFETCH_AFTER_SECS {
                return Err(CognitoError::TokenInvalid("unknown key id"));
            }
        }

        let keys = Arc::new(self.fetch_keys(pool).await?);
        self.jwks
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(
                pool.clone(),
                CachedKeys {
                    keys: Arc::clone(&keys),
                    fetched_at: now,
                },
            );

        keys.find(kid)
            .ok_or(CognitoError::TokenInvalid("unknown key id"))
            .and_then(decoding_key)
    }

    /// Fetches a pool's published key set.
    async fn fetch_keys(&self, pool: &PoolId) -> Result<JwkSet, CognitoError> {
        const OP: &str = "GetJwks";
        let unavailable = |err: reqwest::Error| {
            CognitoError::Unavailable(ServiceFault::new(OP, err.without_url().to_string()))
        };
        let response = self
            .http
            .get(self.jwks_url(pool))
            .send()
            .await
            .map_err(unavailable)?;
        let status = response.status();
        if status.is_server_error() {
            return Err(CognitoError::Unavailable(ServiceFault::new(
                OP,
                format!("HTTP {status}"),
            )));
        }
        if !status.is_success() {
            return Err(CognitoError::Internal(ServiceFault::new(
                OP,
                format!("HTTP {status}"),
            )));
        }

        response
            .json::<JwkSet>()
            .await
            .map_err(|_| CognitoError::Internal(ServiceFault::new(OP, "not a JWK set")))
    }

    /// Sends one answer to a challenge.
    async fn respond(
        &self,
        pool: &PoolIds,
        challenge: &Challenge,
        session: &Secret<String>,
        name: ChallengeNameType,
        answers: &[(&str, &str)],
    ) -> Result<Step, CognitoError> {
        const OP: &str = "RespondToAuthChallenge";
        let username = challenge.username.expose();
        let mut request = self
            .client
            .respond_to_auth_challenge()
            .client_id(&pool.client_id.0)
            .challenge_name(name)
            .session(session.expose())
            .challenge_responses("USERNAME", username)
            .challenge_responses("SECRET_HASH", secret_hash(pool, username).expose());
        for (key, value) in answers {
            request = request.challenge_responses(*key, *value);
        }
        let output = request
            .send()
            .await
            .map_err(|err| sdk_error(OP, Flow::Challenge, err))?;

        step(
            OP,
            output.challenge_name(),
            output.session(),
            output.challenge_parameters(),
            output.authentication_result(),
            username,
        )
    }

    /// The SMS settings of a pool.
    fn sms_configuration(&self) -> SmsConfigurationType {
        SmsConfigurationType::builder()
            .sns_caller_arn(&self.sms.sns_caller_role_arn)
            .external_id(&self.sms.external_id)
            .build()
    }
}

/// The endpoint the Cognito client is pointed at, if any: the per-service setting first
/// (`AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER`, or the profile's), then `AWS_ENDPOINT_URL`
/// — the order the SDK itself follows.
fn endpoint_override(sdk: &SdkConfig) -> Option<String> {
    if sdk.get_origin("endpoint_url").is_client_config() {
        return sdk.endpoint_url().map(str::to_owned);
    }
    let key = ServiceConfigKey::builder()
        .service_id("Cognito Identity Provider")
        .env("AWS_ENDPOINT_URL")
        .profile("endpoint_url")
        .build()
        .ok();
    key.and_then(|key| {
        sdk.service_config()
            .and_then(|config| config.load_config(key))
    })
    .or_else(|| sdk.endpoint_url().map(str::to_owned))
}

/// Cognito's `SECRET_HASH`: Base64 of HMAC-SHA-256 over user name and client id, keyed by
/// the client secret.
fn secret_hash(pool: &PoolIds, username: &str) -> Secret<String> {
    // HMAC takes keys of any length; this cannot fail.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(pool.client_secret.expose().as_bytes()) else {
        return Secret::default();
    };
    mac.update(username.as_bytes());
    mac.update(pool.client_id.0.as_bytes());

    Secret::new(base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes()))
}

/// A user attribute.
fn attribute(
    operation: &'static str,
    name: &str,
    value: &str,
) -> Result<AttributeType, CognitoError> {
    AttributeType::builder()
        .name(name)
        .value(value)
        .build()
        .map_err(|_| CognitoError::Internal(ServiceFault::new(operation, "attribute")))
}

/// Refuses an answer meant for another kind of challenge.
fn expect_kind(challenge: &Challenge, kind: ChallengeKind) -> Result<(), CognitoError> {
    if challenge.kind == kind {
        return Ok(());
    }

    Err(CognitoError::Internal(ServiceFault::new(
        "RespondToAuthChallenge",
        format!("answer for {kind:?} to a {:?} challenge", challenge.kind),
    )))
}

/// Reads where a sign-in stands from an `InitiateAuth` or `RespondToAuthChallenge` answer.
fn step(
    operation: &'static str,
    name: Option<&ChallengeNameType>,
    session: Option<&str>,
    parameters: Option<&HashMap<String, String>>,
    result: Option<&AuthenticationResultType>,
    username: &str,
) -> Result<Step, CognitoError> {
    let fault = |detail: &str| CognitoError::Internal(ServiceFault::new(operation, detail));
    if let Some(result) = result {
        return tokens(result)
            .map(Step::Tokens)
            .ok_or_else(|| fault("incomplete tokens"));
    }
    let kind = match name {
        Some(ChallengeNameType::SoftwareTokenMfa) => ChallengeKind::SoftwareTokenMfa,
        Some(ChallengeNameType::SmsMfa) => ChallengeKind::SmsMfa,
        Some(ChallengeNameType::MfaSetup) => ChallengeKind::MfaSetup,
        Some(ChallengeNameType::NewPasswordRequired) => ChallengeKind::NewPasswordRequired,
        // SELECT_MFA_TYPE and the rest do not arise with the pools and clients made here
        // (a preferred method is always set).
        Some(other) => {
            return Err(fault(&format!("unsupported challenge {}", other.as_str())));
        }
        None => return Err(fault("neither tokens nor a challenge")),
    };
    let session = session.ok_or_else(|| fault("a challenge without a session"))?;
    // Later answers name the user as Cognito knows it, which for e-mail user names is its
    // internal one; the SECRET_HASH must be computed over the same name.
    let username = parameters
        .and_then(|p| p.get("USER_ID_FOR_SRP").or_else(|| p.get("USERNAME")))
        .map_or(username, String::as_str);

    Ok(Step::Challenge(Challenge {
        kind,
        session: Secret::new(session.to_owned()),
        username: Secret::new(username.to_owned()),
    }))
}

/// The tokens of a finished sign-in, if all of them are there.
fn tokens(result: &AuthenticationResultType) -> Option<Tokens> {
    Some(Tokens {
        id_token: Secret::new(result.id_token()?.to_owned()),
        access_token: Secret::new(result.access_token()?.to_owned()),
        refresh_token: result
            .refresh_token()
            .map(|token| Secret::new(token.to_owned())),
        expires_in_secs: i64::from(result.expires_in()),
    })
}

/// A key of the set, for RS256 only.
fn decoding_key(jwk: &jsonwebtoken::jwk::Jwk) -> Result<DecodingKey, CognitoError> {
    if !matches!(
        jwk.algorithm,
        jsonwebtoken::jwk::AlgorithmParameters::RSA(_)
    ) {
        return Err(CognitoError::TokenInvalid("not an RSA key"));
    }
    DecodingKey::from_jwk(jwk).map_err(|_| CognitoError::TokenInvalid("unusable key"))
}

/// Why `jsonwebtoken` refused a token, in words safe to log.
fn jwt_problem(err: &jsonwebtoken::errors::Error) -> &'static str {
    use jsonwebtoken::errors::ErrorKind;
    match err.kind() {
        ErrorKind::InvalidSignature => "bad signature",
        ErrorKind::InvalidIssuer => "wrong issuer",
        ErrorKind::InvalidAudience => "wrong audience",
        ErrorKind::MissingRequiredClaim(_) => "a required claim is missing",
        ErrorKind::InvalidAlgorithm => "wrong algorithm",
        _ => "malformed",
    }
}

/// Which token is being checked.
#[derive(Debug, Clone, Copy)]
enum Audience {
    Id,
    Access,
}

/// Claims with an expiry.
trait Expiring {
    fn exp(&self) -> i64;
}

/// The claims of an ID token that Portico reads.
#[derive(Deserialize)]
struct IdClaims {
    sub: String,
    exp: i64,
    token_use: String,
    email: Option<String>,
}

/// The claims of an access token that Portico reads.
#[derive(Deserialize)]
struct AccessClaims {
    sub: String,
    exp: i64,
    token_use: String,
    client_id: String,
}

impl Expiring for IdClaims {
    fn exp(&self) -> i64 {
        self.exp
    }
}

impl Expiring for AccessClaims {
    fn exp(&self) -> i64 {
        self.exp
    }
}

/// Which kind of call failed, because the same Cognito code means different things in each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    /// `InitiateAuth`.
    SignIn,
    /// Answers to challenges and the software-token calls of a sign-in.
    Challenge,
    /// Administration of pools and users.
    Admin,
}

/// Sorts a Cognito failure into what callers act on, keeping only the error code and
/// status: service messages may name the user.
fn sdk_error<E>(operation: &'static str, flow: Flow, err: SdkError<E, HttpResponse>) -> CognitoError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match &err {
        SdkError::DispatchFailure(failure) => {
            let detail = if failure.is_timeout() {
                "timed out"
            } else {
                "could not connect"
            };
            return CognitoError::Unavailable(ServiceFault::new(operation, detail));
        }
        SdkError::TimeoutError(_) => {
            return CognitoError::Unavailable(ServiceFault::new(operation, "timed out"));
        }
        SdkError::ResponseError(_) => {
            return CognitoError::Unavailable(ServiceFault::new(operation, "unreadable response"));
        }
        _ => {}
    }
    let status = err.raw_response().map(|raw| raw.status().as_u16());
    let code = err.code().unwrap_or("unknown").to_owned();
    let fault = || match status {
        Some(status) => ServiceFault::new(operation, format!("{code} (HTTP {status})")),
        None => ServiceFault::new(operation, code.clone()),
    };
    match (code.as_str(), flow) {
        (
            "NotAuthorizedException" | "UserNotFoundException" | "UserNotConfirmedException",
            Flow::SignIn,
        ) => CognitoError::Invalid,
        ("NotAuthorizedException" | "ResourceNotFoundException", Flow::Challenge) => {
            CognitoError::SessionExpired
        }
        (
            "CodeMismatchException" | "ExpiredCodeException" | "EnableSoftwareTokenMFAException",
            _,
        ) => CognitoError::CodeMismatch,
        ("InvalidPasswordException" | "PasswordHistoryPolicyViolationException", _) => {
            CognitoError::PasswordRejected
        }
        ("PasswordResetRequiredException", _) => CognitoError::PasswordResetRequired,
        ("UsernameExistsException" | "AliasExistsException", _) => CognitoError::UserExists,
        ("TooManyFailedAttemptsException" | "LimitExceededException", _) => {
            CognitoError::TooManyAttempts
        }
        ("ResourceNotFoundException" | "UserNotFoundException", Flow::Admin) => {
            CognitoError::NotFound
        }
        ("TooManyRequestsException" | "InternalErrorException" | "ServiceUnavailable", _) => {
            CognitoError::Unavailable(fault())
        }
        _ if status.is_some_and(|status| status >= 500) => CognitoError::Unavailable(fault()),
        _ => CognitoError::Internal(fault()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool() -> PoolIds {
        PoolIds {
            pool_id: PoolId("us-east-1_test".to_owned()),
            client_id: ClientId("client-id".to_owned()),
            client_secret: Secret::new("client-secret".to_owned()),
        }
    }

    /// Service settings as aws-config reads them from `AWS_ENDPOINT_URL_<SERVICE>`.
    #[derive(Debug)]
    struct ServiceEndpoint(&'static str, &'static str);

    impl aws_types::service_config::LoadServiceConfig for ServiceEndpoint {
        fn load_config(&self, key: ServiceConfigKey<'_>) -> Option<String> {
            (key.service_id() == self.0 && key.env() == "AWS_ENDPOINT_URL")
                .then(|| self.1.to_owned())
        }
    }

    fn sms() -> SmsSettings {
        SmsSettings {
            sns_caller_role_arn: "arn:aws:iam::123456789012:role/sms".to_owned(),
            external_id: "x".to_owned(),
        }
    }

    fn sdk() -> aws_types::sdk_config::Builder {
        SdkConfig::builder()
            .region(aws_types::region::Region::new("eu-west-2"))
            .behavior_version(aws_config::BehaviorVersion::latest())
    }

    #[test]
    fn keys_come_from_aws_unless_an_endpoint_is_configured() {
        let pool = PoolId("eu-west-2_abc".to_owned());
        let aws = Cognito::new(&sdk().build(), sms()).unwrap();
        assert_eq!(
            aws.jwks_url(&pool),
            "https://cognito-idp.eu-west-2.amazonaws.com/eu-west-2_abc/.well-known/jwks.json"
        );

        let everything = sdk().endpoint_url("http://127.0.0.1:5077/").build();
        let emulated = Cognito::new(&everything, sms()).unwrap();
        assert_eq!(
            emulated.jwks_url(&pool),
            "http://127.0.0.1:5077/eu-west-2_abc/.well-known/jwks.json"
        );
        // The issuer is the pool's name in its tokens, wherever they are fetched from.
        assert_eq!(
            emulated.issuer(&pool),
            "https://cognito-idp.eu-west-2.amazonaws.com/eu-west-2_abc"
        );

        let per_service = sdk()
            .service_config(ServiceEndpoint(
                "Cognito Identity Provider",
                "http://cognito.test",
            ))
            .build();
        let emulated = Cognito::new(&per_service, sms()).unwrap();
        assert_eq!(
            emulated.jwks_url(&pool),
            "http://cognito.test/eu-west-2_abc/.well-known/jwks.json"
        );
        let other_service = sdk()
            .service_config(ServiceEndpoint("KMS", "http://kms.test"))
            .build();
        let aws = Cognito::new(&other_service, sms()).unwrap();
        assert!(
            aws.jwks_url(&pool)
                .starts_with("https://cognito-idp.eu-west-2.")
        );
    }

    #[test]
    fn the_secret_hash_is_hmac_sha256_of_user_and_client_under_the_secret() {
        // Computed independently with Python's hmac and base64 modules.
        assert_eq!(
            secret_hash(&pool(), "patient@example.org").expose(),
            "/zIl5yOCi4PWFJixG1zi8bdSojir8TNpMeDEE88KIf4="
        );
    }

    #[test]
    fn secrets_and_e_mail_addresses_print_as_stars() {
        let printed = format!("{:?}", pool());
        assert!(!printed.contains("client-secret"), "{printed}");

        let subject = CognitoSubject {
            sub: CognitoSub("sub-1".to_owned()),
            email: "patient@example.org".to_owned(),
        };
        let printed = format!("{subject:?}");
        assert!(
            printed.contains("sub-1") && !printed.contains("example.org"),
            "{printed}"
        );

        let challenge = Challenge {
            kind: ChallengeKind::MfaSetup,
            session: Secret::new("session-value".to_owned()),
            username: Secret::new("patient@example.org".to_owned()),
        };
        let printed = format!("{challenge:?}");
        assert!(!printed.contains("session-value") && !printed.contains("example.org"));
    }

    #[test]
    fn a_challenge_names_the_user_as_cognito_does() {
        let parameters = HashMap::from([("USER_ID_FOR_SRP".to_owned(), "internal-1".to_owned())]);
        let Ok(Step::Challenge(challenge)) = step(
            "InitiateAuth",
            Some(&ChallengeNameType::SoftwareTokenMfa),
            Some("s"),
            Some(&parameters),
            None,
            "patient@example.org",
        ) else {
            panic!("expected a challenge");
        };

        assert_eq!(challenge.kind, ChallengeKind::SoftwareTokenMfa);
        assert_eq!(challenge.username.expose(), "internal-1");
    }

    #[test]
    fn an_unsupported_challenge_is_an_error_not_a_guess() {
        let result = step(
            "InitiateAuth",
            Some(&ChallengeNameType::SelectMfaType),
            Some("s"),
            None,
            None,
            "u",
        );

        assert!(matches!(result, Err(CognitoError::Internal(_))));
    }
}
