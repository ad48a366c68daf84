//! What can go wrong with a tenant, in words an operator or a client can act on.

use portico_platform::audit::AuditError;
use portico_platform::crypto::keys::KeyError;
use portico_platform::crypto::vault::VaultError;
use portico_platform::db::DbError;
use portico_platform::identity::provider::ProviderError;

/// A tenant operation that could not be carried out.
#[derive(Debug, thiserror::Error)]
pub enum TenantError {
    /// The slug is not a lowercase DNS label, or is reserved.
    #[error("invalid slug: {0}")]
    InvalidSlug(&'static str),
    /// The display name is empty or too long.
    #[error("invalid display name: {0}")]
    InvalidName(&'static str),
    /// A custom domain is not a valid host name.
    #[error("invalid domain: {0}")]
    InvalidDomain(&'static str),
    /// Another tenant already has this slug.
    #[error("the slug \"{0}\" is already taken")]
    SlugTaken(String),
    /// Another tenant already serves this domain.
    #[error("the domain \"{0}\" is already in use")]
    DomainTaken(String),
    /// No tenant has this slug (or the caller may not know it exists).
    #[error("no such tenant")]
    NotFound,
    /// The caller may not do this.
    #[error("not allowed")]
    Forbidden,
    /// The operation is not possible in the tenant's current state.
    #[error("{0}")]
    InvalidState(&'static str),
    /// The tenant's key could not be made.
    #[error("the key service could not create the tenant's key")]
    KeyService(#[source] KeyError),
    /// The EHR connector is not valid.
    #[error("invalid EHR connector: {0}")]
    InvalidConnector(#[from] crate::connector::ConnectorProblem),
    /// The branding is not valid (a colour short of WCAG AA contrast, among others).
    #[error("invalid branding: {0}")]
    InvalidBranding(#[from] crate::branding::BrandingProblem),
    /// The identity provider could not set up the tenant's user directory.
    #[error("the identity provider could not set up the tenant's user directory")]
    Identity(#[source] ProviderError),
    /// The tenant's key could not be recorded or used.
    #[error("the tenant's key could not be used")]
    Vault(#[from] VaultError),
    /// The change's audit event could not be written, so the change was not made.
    #[error("the audit trail could not record the change")]
    Audit(#[from] AuditError),
    /// The database failed; details are in the source, for the server log only.
    #[error("database error")]
    Database(#[from] DbError),
}
