//! The `IdentityProvider` port: where a person's password and authenticator app are kept
//! and checked.
//!
//! Everything else about identity is Portico's own, whatever the provider: accounts (role,
//! patient link, sealed address), sessions, throttling, recovery codes, texted codes,
//! enrollment, invitations and the audit trail ([`super::local::LocalIdentity`]). The
//! provider only answers "is this the password?" and "is this the code?", and keeps the
//! credentials:
//!
//! - [`LocalProvider`] (the embedded default): argon2id hashes in Portico's `accounts`
//!   table, TOTP secrets sealed in `totp_factors`, checked by Portico.
//! - Amazon Cognito (`portico_infra::identity::provider`): a user pool per clinic; Cognito
//!   keeps the password and the authenticator and runs the challenges.

use std::fmt;

use async_trait::async_trait;

use sea_orm::ActiveValue::Set;

use super::entity::identity_directories;
use super::password::{HashError, PasswordHasher};
use super::totp::TotpSecret;
use crate::db::{Db, DbError, TenantTx};
use crate::entropy::Entropy;
use crate::ids::TenantId;
use crate::secret::Secret;

/// A clinic's user directory at an external provider (a Cognito user pool and Portico's
/// app client in it), recorded with the clinic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directory {
    /// The provider's name (`cognito`).
    pub provider: String,
    /// The directory's id (the pool id).
    pub directory_id: String,
    /// Portico's client in it.
    pub client_id: String,
}

/// A person's credentials just registered with the provider.
#[derive(Debug)]
pub struct Registered {
    /// The password hash for Portico to keep, when Portico checks passwords; empty when the
    /// provider keeps the password.
    pub password_hash: String,
    /// The provider's id for the person (Cognito's `sub`), when it has one.
    pub subject: Option<String>,
    /// The authenticator app's secret, to show the person once.
    pub totp: TotpSecret,
}

/// What a password check found.
#[derive(Debug)]
pub enum PasswordCheck {
    /// A wrong password, or nobody with that address: the same answer.
    Refused,
    /// The password is right; the second factor is owed. `pending` is the provider's state
    /// for the second step (Cognito's challenge session), which the caller keeps sealed with
    /// the waiting session.
    Accepted {
        /// The provider's state for checking the second factor, if it checks it.
        pending: Option<Secret<String>>,
    },
}

/// Why the provider could not answer.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// The provider refuses the password (its own policy, or a repeated one).
    #[error("that password cannot be used")]
    PasswordRejected,
    /// The provider has a person with that address already.
    #[error("an account with that e-mail address exists already")]
    Exists,
    /// The second step's state expired at the provider: sign in again.
    #[error("the sign-in has expired; start again")]
    Expired,
    /// The provider is unreachable or failing; try again later.
    #[error("the identity provider is unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// Something else failed.
    #[error("the identity provider failed")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl From<HashError> for ProviderError {
    fn from(err: HashError) -> Self {
        Self::Internal(Box::new(err))
    }
}

/// Where passwords and authenticators are kept and checked.
#[async_trait]
pub trait IdentityProvider: Send + Sync + fmt::Debug {
    /// The configured name: `local` or `cognito`.
    fn name(&self) -> &'static str;

    /// Whether the provider checks authenticator codes itself. If not, Portico keeps the
    /// secret sealed and checks the codes.
    fn checks_authenticator(&self) -> bool;

    /// Sets up a new clinic's directory, before the clinic is written; `None` if the
    /// provider keeps none.
    async fn provision(
        &self,
        tenant: TenantId,
        slug: &str,
    ) -> Result<Option<Directory>, ProviderError>;

    /// Takes back a directory whose clinic could not be written.
    async fn deprovision(&self, directory: &Directory) -> Result<(), ProviderError>;

    /// Registers a person with a password (already checked against Portico's rules) and an
    /// authenticator app, whose secret comes back to show once.
    async fn register(
        &self,
        tenant: TenantId,
        email: &str,
        password: &Secret<String>,
    ) -> Result<Registered, ProviderError>;

    /// Checks a password. `stored_hash` is Portico's hash for the address (empty or absent
    /// when the provider keeps passwords, absent when no account has the address): a
    /// provider must do the same work either way, so timing does not tell.
    async fn check_password(
        &self,
        tenant: TenantId,
        email: &str,
        stored_hash: Option<&str>,
        password: &Secret<String>,
    ) -> Result<PasswordCheck, ProviderError>;

    /// Checks an authenticator code against the provider's `pending` state (providers that
    /// [check the authenticator](Self::checks_authenticator) only). `Ok(false)` for a wrong
    /// or reused code.
    async fn check_code(
        &self,
        tenant: TenantId,
        pending: &Secret<String>,
        code: &str,
    ) -> Result<bool, ProviderError>;

    /// Replaces a person's password (a reset); returns the new hash for Portico to keep,
    /// empty when the provider keeps passwords.
    async fn set_password(
        &self,
        tenant: TenantId,
        subject: Option<&str>,
        password: &Secret<String>,
    ) -> Result<String, ProviderError>;

    /// Ends everything the provider issued to the person (sign out everywhere, a reset).
    async fn sign_out_everywhere(
        &self,
        tenant: TenantId,
        subject: Option<&str>,
    ) -> Result<(), ProviderError>;
}

/// The embedded provider: argon2id hashes and TOTP secrets in Portico's own tables.
#[derive(Clone)]
pub struct LocalProvider {
    hasher: PasswordHasher,
    entropy: std::sync::Arc<dyn Entropy>,
}

impl fmt::Debug for LocalProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LocalProvider")
    }
}

impl LocalProvider {
    /// The provider hashing with `hasher`.
    pub fn new(hasher: PasswordHasher, entropy: std::sync::Arc<dyn Entropy>) -> Self {
        Self { hasher, entropy }
    }
}

#[async_trait]
impl IdentityProvider for LocalProvider {
    fn name(&self) -> &'static str {
        "local"
    }

    fn checks_authenticator(&self) -> bool {
        false
    }

    async fn provision(&self, _: TenantId, _: &str) -> Result<Option<Directory>, ProviderError> {
        Ok(None)
    }

    async fn deprovision(&self, _: &Directory) -> Result<(), ProviderError> {
        Ok(())
    }

    async fn register(
        &self,
        _: TenantId,
        _: &str,
        password: &Secret<String>,
    ) -> Result<Registered, ProviderError> {
        Ok(Registered {
            password_hash: self.hasher.hash(password, self.entropy.as_ref()).await?,
            subject: None,
            totp: TotpSecret::generate(self.entropy.as_ref()),
        })
    }

    async fn check_password(
        &self,
        _: TenantId,
        _: &str,
        stored_hash: Option<&str>,
        password: &Secret<String>,
    ) -> Result<PasswordCheck, ProviderError> {
        // `verify` checks a decoy hash when there is none, so it costs the same.
        let stored = stored_hash.filter(|hash| !hash.is_empty());
        Ok(
            if self.hasher.verify(password, stored).await? && stored.is_some() {
                PasswordCheck::Accepted { pending: None }
            } else {
                PasswordCheck::Refused
            },
        )
    }

    async fn check_code(
        &self,
        _: TenantId,
        _: &Secret<String>,
        _: &str,
    ) -> Result<bool, ProviderError> {
        // Portico checks its own authenticators (`checks_authenticator` is false).
        Err(ProviderError::Internal(
            "the local provider does not check codes itself".into(),
        ))
    }

    async fn set_password(
        &self,
        _: TenantId,
        _: Option<&str>,
        password: &Secret<String>,
    ) -> Result<String, ProviderError> {
        Ok(self.hasher.hash(password, self.entropy.as_ref()).await?)
    }

    async fn sign_out_everywhere(&self, _: TenantId, _: Option<&str>) -> Result<(), ProviderError> {
        // Portico's sessions are all there is.
        Ok(())
    }
}

/// Records a clinic's directory in the transaction that writes the clinic.
pub async fn record_directory(
    tx: &TenantTx,
    directory: &Directory,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), DbError> {
    tx.insert(identity_directories::ActiveModel {
        provider: Set(directory.provider.clone()),
        directory_id: Set(directory.directory_id.clone()),
        client_id: Set(directory.client_id.clone()),
        created_at: Set(now),
        ..Default::default()
    })
    .await?;
    Ok(())
}

/// A clinic's directory at an external provider, if it has one.
pub async fn directory(db: &Db, tenant: TenantId) -> Result<Option<Directory>, DbError> {
    let tx = db.begin(tenant).await?;
    let row = tx
        .find::<identity_directories::Entity>()
        .one(tx.conn())
        .await
        .map_err(DbError::from)?;
    tx.commit().await?;
    Ok(row.map(|row| Directory {
        provider: row.provider,
        directory_id: row.directory_id,
        client_id: row.client_id,
    }))
}
