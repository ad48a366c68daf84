//! Amazon Cognito behind the `IdentityProvider` port: each clinic's people in a user pool
//! of the clinic's own, made when the clinic is created; Cognito keeps the passwords and
//! the authenticator apps and runs the challenges, Portico keeps everything else
//! (accounts, sessions, recovery codes, the audit trail).
//!
//! - **Registering** a person: `AdminCreateUser` with the password Portico has already
//!   checked against its own rules, then the authenticator set up at once — Cognito hands
//!   out the secret, Portico proves it with the current code and makes TOTP the person's
//!   method — so no account is ever without a second factor. The secret is shown to the
//!   person once, as with the embedded provider.
//! - **Signing in**: `InitiateAuth` (`USER_PASSWORD_AUTH`) answers a right password with a
//!   `SOFTWARE_TOKEN_MFA` challenge, whose session Portico keeps sealed with its own
//!   waiting session; the code answers it (`RespondToAuthChallenge`), and the tokens that
//!   come back are checked against the pool's published keys before Portico's session
//!   is made.
//! - **Signing out everywhere** and a **reset** reach Cognito too
//!   (`AdminUserGlobalSignOut`, `AdminSetUserPassword`).
//!
//! Only the pool's and client's ids are recorded with the clinic; the client's secret is
//! read from Cognito when first needed and held in memory.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use async_trait::async_trait;
use portico_platform::clock::Clock;
use portico_platform::db::Db;
use portico_platform::identity::provider::{
    self, Directory, IdentityProvider, PasswordCheck, ProviderError, Registered,
};
use portico_platform::identity::totp::TotpSecret;
use portico_platform::ids::TenantId;
use portico_platform::secret::Secret;
use serde::{Deserialize, Serialize};

use super::cognito::{
    Challenge, ChallengeKind, ClientId, Cognito, CognitoError, InitialPassword, MfaMethod, PoolId,
    PoolIds, Step,
};

/// The provider's name in configuration and in `identity_directories`.
const NAME: &str = "cognito";

/// Cognito as the identity provider.
#[derive(Clone)]
pub struct CognitoProvider {
    cognito: Cognito,
    db: Db,
    clock: Arc<dyn Clock>,
    pools: Arc<RwLock<HashMap<TenantId, Arc<PoolIds>>>>,
}

impl std::fmt::Debug for CognitoProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CognitoProvider")
    }
}

/// A challenge kept between the password and the code, sealed with Portico's session.
#[derive(Serialize, Deserialize)]
struct Pending {
    session: String,
    username: String,
}

impl CognitoProvider {
    /// The provider over `cognito`, finding each clinic's pool in `db`.
    pub fn new(cognito: Cognito, db: Db, clock: Arc<dyn Clock>) -> Self {
        Self {
            cognito,
            db,
            clock,
            pools: Arc::default(),
        }
    }

    /// The clinic's pool, its client and the client's secret.
    async fn pool(&self, tenant: TenantId) -> Result<Arc<PoolIds>, ProviderError> {
        if let Some(pool) = self
            .pools
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&tenant)
        {
            return Ok(pool.clone());
        }
        let directory = provider::directory(&self.db, tenant)
            .await
            .map_err(|err| ProviderError::Internal(Box::new(err)))?
            .filter(|directory| directory.provider == NAME)
            .ok_or_else(|| ProviderError::Internal("the clinic has no Cognito user pool".into()))?;
        let pool = self
            .cognito
            .pool_ids(
                &PoolId(directory.directory_id),
                &ClientId(directory.client_id),
            )
            .await
            .map_err(fault)?;
        let pool = Arc::new(pool);
        self.pools
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(tenant, pool.clone());
        Ok(pool)
    }

    /// Sets up the authenticator of a user just created with a permanent password, and
    /// returns its secret.
    async fn set_up_authenticator(
        &self,
        pool: &PoolIds,
        email: &str,
        password: &Secret<String>,
        sub: &str,
    ) -> Result<TotpSecret, ProviderError> {
        let step = self
            .cognito
            .sign_in(pool, email, password.expose())
            .await
            .map_err(fault)?;
        let secret = match step {
            // Cognito asks a user without MFA to set it up during sign-in.
            Step::Challenge(challenge) if challenge.kind == ChallengeKind::MfaSetup => {
                let enrollment = self
                    .cognito
                    .associate_software_token(&challenge)
                    .await
                    .map_err(fault)?;
                let totp = issued(&enrollment.secret)?;
                let code = self.current_code(&totp).await;
                self.cognito
                    .verify_software_token(pool, &enrollment, &code)
                    .await
                    .map_err(fault)?;
                totp
            }
            // Some pools (and the emulator) sign such a user straight in; add the app then.
            Step::Tokens(tokens) => {
                let secret = self
                    .cognito
                    .associate_software_token_signed_in(&tokens.access_token)
                    .await
                    .map_err(fault)?;
                let totp = issued(&secret)?;
                let code = self.current_code(&totp).await;
                self.cognito
                    .verify_software_token_signed_in(&tokens.access_token, &code)
                    .await
                    .map_err(fault)?;
                totp
            }
            Step::Challenge(_) => {
                return Err(ProviderError::Internal(
                    "Cognito asked a new user for something other than MFA setup".into(),
                ));
            }
        };
        self.cognito
            .set_mfa_preference(&pool.pool_id, sub, MfaMethod::SoftwareToken)
            .await
            .map_err(fault)?;

        Ok(secret)
    }

    /// The authenticator's code for now, waiting for the next step when this one is about
    /// to end (Cognito may take only the current step).
    async fn current_code(&self, totp: &TotpSecret) -> String {
        let now = self.clock.now();
        if now.timestamp().rem_euclid(30) >= 28 {
            tokio::time::sleep(std::time::Duration::from_secs(3)).await;
            return totp.code_at(self.clock.now());
        }
        totp.code_at(now)
    }
}

#[async_trait]
impl IdentityProvider for CognitoProvider {
    fn name(&self) -> &'static str {
        NAME
    }

    fn checks_authenticator(&self) -> bool {
        true
    }

    async fn provision(
        &self,
        tenant: TenantId,
        slug: &str,
    ) -> Result<Option<Directory>, ProviderError> {
        let pool = self
            .cognito
            .provision_pool(tenant, slug)
            .await
            .map_err(fault)?;
        let directory = Directory {
            provider: NAME.to_owned(),
            directory_id: pool.pool_id.0.clone(),
            client_id: pool.client_id.0.clone(),
        };
        self.pools
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(tenant, Arc::new(pool));
        Ok(Some(directory))
    }

    async fn deprovision(&self, directory: &Directory) -> Result<(), ProviderError> {
        self.cognito
            .delete_pool(&PoolId(directory.directory_id.clone()))
            .await
            .map_err(fault)
    }

    async fn register(
        &self,
        tenant: TenantId,
        email: &str,
        password: &Secret<String>,
    ) -> Result<Registered, ProviderError> {
        let pool = self.pool(tenant).await?;
        let sub = self
            .cognito
            .create_user(
                &pool.pool_id,
                email,
                &InitialPassword::Permanent(password.clone()),
            )
            .await
            .map_err(|err| match err {
                CognitoError::UserExists => ProviderError::Exists,
                CognitoError::PasswordRejected => ProviderError::PasswordRejected,
                other => fault(other),
            })?;
        match self
            .set_up_authenticator(&pool, email, password, &sub.0)
            .await
        {
            Ok(totp) => Ok(Registered {
                password_hash: String::new(),
                subject: Some(sub.0),
                totp,
            }),
            Err(err) => {
                // A user without an authenticator could never sign in: take it back.
                if let Err(cleanup) = self.cognito.delete_user(&pool.pool_id, &sub.0).await {
                    tracing::warn!(tenant.id = %tenant, error = %cleanup,
                        "could not remove a Cognito user whose set-up failed");
                }
                Err(err)
            }
        }
    }

    async fn check_password(
        &self,
        tenant: TenantId,
        email: &str,
        _: Option<&str>,
        password: &Secret<String>,
    ) -> Result<PasswordCheck, ProviderError> {
        let pool = self.pool(tenant).await?;
        // Cognito is asked whether or not Portico knows the address, so the answer takes
        // the same time; its pools do not reveal whether a user exists.
        match self.cognito.sign_in(&pool, email, password.expose()).await {
            Ok(Step::Challenge(challenge)) if challenge.kind == ChallengeKind::SoftwareTokenMfa => {
                let pending = Pending {
                    session: challenge.session.expose().clone(),
                    username: challenge.username.expose().clone(),
                };
                let text = serde_json::to_string(&pending)
                    .map_err(|err| ProviderError::Internal(Box::new(err)))?;
                Ok(PasswordCheck::Accepted {
                    pending: Some(Secret::new(text)),
                })
            }
            // No sign-in without the authenticator app: a user Cognito lets in on the
            // password alone, or asks for something else, is refused.
            Ok(Step::Tokens(_) | Step::Challenge(_)) => Err(ProviderError::Internal(
                "Cognito did not ask for the authenticator".into(),
            )),
            Err(
                CognitoError::Invalid
                | CognitoError::NotFound
                | CognitoError::TooManyAttempts
                | CognitoError::PasswordResetRequired,
            ) => Ok(PasswordCheck::Refused),
            Err(err) => Err(fault(err)),
        }
    }

    async fn check_code(
        &self,
        tenant: TenantId,
        pending: &Secret<String>,
        code: &str,
    ) -> Result<bool, ProviderError> {
        let pool = self.pool(tenant).await?;
        let pending: Pending = serde_json::from_str(pending.expose())
            .map_err(|err| ProviderError::Internal(Box::new(err)))?;
        let challenge = Challenge {
            kind: ChallengeKind::SoftwareTokenMfa,
            session: Secret::new(pending.session),
            username: Secret::new(pending.username),
        };
        match self.cognito.respond_totp(&pool, &challenge, code).await {
            Ok(Step::Tokens(tokens)) => {
                // Cognito's word is its signed tokens, checked against the pool's keys.
                self.cognito
                    .verify_tokens(&pool, &tokens, self.clock.now())
                    .await
                    .map_err(fault)?;
                Ok(true)
            }
            Ok(Step::Challenge(_)) => Err(ProviderError::Internal(
                "Cognito asked for more after the authenticator code".into(),
            )),
            Err(CognitoError::CodeMismatch) => Ok(false),
            Err(CognitoError::SessionExpired) => Err(ProviderError::Expired),
            Err(err) => Err(fault(err)),
        }
    }

    async fn set_password(
        &self,
        tenant: TenantId,
        subject: Option<&str>,
        password: &Secret<String>,
    ) -> Result<String, ProviderError> {
        let pool = self.pool(tenant).await?;
        let subject = subject
            .ok_or_else(|| ProviderError::Internal("the account has no Cognito user".into()))?;
        self.cognito
            .set_password(&pool.pool_id, subject, password)
            .await
            .map_err(|err| match err {
                CognitoError::PasswordRejected => ProviderError::PasswordRejected,
                other => fault(other),
            })?;
        Ok(String::new())
    }

    async fn sign_out_everywhere(
        &self,
        tenant: TenantId,
        subject: Option<&str>,
    ) -> Result<(), ProviderError> {
        let Some(subject) = subject else {
            return Ok(());
        };
        let pool = self.pool(tenant).await?;
        self.cognito
            .global_sign_out(&pool.pool_id, subject)
            .await
            .map_err(fault)
    }
}

/// The authenticator secret Cognito issued.
fn issued(secret: &Secret<String>) -> Result<TotpSecret, ProviderError> {
    TotpSecret::issued_by_provider(secret.expose()).ok_or_else(|| {
        ProviderError::Internal("Cognito issued an authenticator secret Portico cannot read".into())
    })
}

/// A Cognito failure as the port's: outages are `Unavailable`, the rest `Internal`.
fn fault(err: CognitoError) -> ProviderError {
    match err {
        CognitoError::Unavailable(_) => ProviderError::Unavailable(Box::new(err)),
        other => ProviderError::Internal(Box::new(other)),
    }
}
