//! The one place where failures become GraphQL errors.
//!
//! Every error a client sees has a stable `extensions.code` and a message meant for people.
//! Internal failures say only "internal error"; their detail goes to the server log, once,
//! here, with the request's ids but nothing the client sent.

use async_graphql::{Error, ErrorExtensions};
use portico_platform::audit::AuditError;
use portico_platform::crypto::keys::KeyError;
use portico_platform::crypto::vault::VaultError;
use portico_platform::identity::enrollment::EnrollmentError;
use portico_platform::identity::local::{AccountError, SignInError};
use portico_platform::identity::passkey::PasskeyError;
use portico_platform::identity::reset::ResetError;
use portico_tenants::TenantError;

/// Stable error codes, part of the API contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// The request body is not a GraphQL request.
    BadRequest,
    /// The document is not valid GraphQL syntax.
    ParseError,
    /// The document does not fit the schema.
    ValidationFailed,
    /// The selection is nested too deeply.
    DepthLimit,
    /// The selection asks for too many fields.
    ComplexityLimit,
    /// The document uses too many aliases.
    AliasLimit,
    /// The request batches too many operations.
    BatchLimit,
    /// The caller must sign in first.
    Unauthenticated,
    /// The caller may not do this.
    Forbidden,
    /// Too many failed attempts; `extensions.retryAfter` says when to try again.
    TooManyAttempts,
    /// The thing asked for does not exist, or is not the caller's to see.
    NotFound,
    /// Identity proofing failed: the code, birth date or match did not prove who the person
    /// is. Says nothing about whether a record exists.
    NotVerified,
    /// It exists already (an account for this patient or address).
    Conflict,
    /// Self-service recovery needs a second factor the person no longer has: the clinic
    /// must recover the account.
    AssistedRecoveryRequired,
    /// A service Portico depends on (the key service) is unreachable; try again later.
    Unavailable,
    /// Something failed inside Portico.
    Internal,
}

impl ErrorCode {
    /// The code as it appears in `extensions.code`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadRequest => "BAD_REQUEST",
            Self::ParseError => "PARSE_ERROR",
            Self::ValidationFailed => "VALIDATION_FAILED",
            Self::DepthLimit => "DEPTH_LIMIT",
            Self::ComplexityLimit => "COMPLEXITY_LIMIT",
            Self::AliasLimit => "ALIAS_LIMIT",
            Self::BatchLimit => "BATCH_LIMIT",
            Self::Unauthenticated => "UNAUTHENTICATED",
            Self::Forbidden => "FORBIDDEN",
            Self::TooManyAttempts => "TOO_MANY_ATTEMPTS",
            Self::NotFound => "NOT_FOUND",
            Self::NotVerified => "NOT_VERIFIED",
            Self::Conflict => "CONFLICT",
            Self::AssistedRecoveryRequired => "ASSISTED_RECOVERY_REQUIRED",
            Self::Unavailable => "UNAVAILABLE",
            Self::Internal => "INTERNAL",
        }
    }

    /// An error with this code and message.
    pub fn error(self, message: impl Into<String>) -> Error {
        Error::new(message).extend_with(|_, ext| ext.set("code", self.as_str()))
    }
}

/// Translates a tenant failure for the client.
pub(crate) fn from_tenant(err: TenantError) -> Error {
    match err {
        TenantError::NotFound => ErrorCode::NotFound.error("Not found."),
        TenantError::Forbidden => ErrorCode::Forbidden.error("Not allowed."),
        TenantError::InvalidSlug(_)
        | TenantError::InvalidName(_)
        | TenantError::InvalidDomain(_)
        | TenantError::SlugTaken(_)
        | TenantError::DomainTaken(_)
        | TenantError::InvalidConnector(_)
        | TenantError::InvalidBranding(_)
        | TenantError::InvalidState(_) => ErrorCode::ValidationFailed.error(err.to_string()),
        TenantError::Database(_)
        | TenantError::Identity(_)
        | TenantError::KeyService(_)
        | TenantError::Vault(_)
        | TenantError::Audit(_) => internal(&err),
    }
}

/// Translates an audit failure for the client. A failure to write the audit event is an
/// internal error: the data it guarded was not returned.
pub(crate) fn from_audit(err: AuditError) -> Error {
    match err {
        AuditError::Forbidden => ErrorCode::Forbidden.error("Not allowed."),
        AuditError::KeyService(KeyError::Unavailable(_)) => {
            tracing::error!(error = %ErrorChain(&err), "key service unavailable; request refused");
            ErrorCode::Unavailable
                .error("A service Portico depends on is unavailable; try again shortly.")
        }
        _ => internal(&err),
    }
}

/// Translates a sealing failure for the client: a key service outage is `UNAVAILABLE`
/// (retry later; nothing is ever served unsealed), an offboarded tenant's data is
/// `NOT_FOUND`, anything else internal.
pub fn from_vault(err: VaultError) -> Error {
    match err {
        VaultError::KeyServiceUnavailable(_) => {
            tracing::error!(error = %ErrorChain(&err), "key service unavailable; request refused");
            ErrorCode::Unavailable
                .error("A service Portico depends on is unavailable; try again shortly.")
        }
        VaultError::TenantKeyDeleted => ErrorCode::NotFound.error("Not found."),
        _ => internal(&err),
    }
}

/// Translates a sign-in failure: every refusal keeps its non-revealing message.
pub(crate) fn from_sign_in(err: SignInError) -> Error {
    match err {
        SignInError::Invalid
        | SignInError::Code(_)
        | SignInError::RecoveryCode
        | SignInError::SmsCode
        | SignInError::NotSignedIn
        | SignInError::Locked => ErrorCode::Unauthenticated.error(capitalized(&err)),
        SignInError::NoPhone | SignInError::NoPasskey => {
            ErrorCode::Forbidden.error(capitalized(&err))
        }
        SignInError::PasskeyRefused => ErrorCode::Unauthenticated.error(capitalized(&err)),
        SignInError::NotSent(_) => {
            tracing::warn!(error = %ErrorChain(&err), "sign-in code not sent");
            ErrorCode::Unavailable.error(capitalized(&err))
        }
        SignInError::TryLater { until } => too_many(&err, until),
        SignInError::NotPending | SignInError::Session(_) => {
            ErrorCode::Unauthenticated.error("Sign in with your password first.")
        }
        SignInError::ProviderExpired => ErrorCode::Unauthenticated.error(capitalized(&err)),
        SignInError::ProviderUnavailable(_) => {
            tracing::warn!(error = %ErrorChain(&err), "identity provider unavailable");
            ErrorCode::Unavailable.error(capitalized(&err))
        }
        SignInError::Internal(_) => internal(&err),
    }
}

/// Translates an enrollment failure: proofing failures are all `NOT_VERIFIED`, with one
/// message.
pub(crate) fn from_enrollment(err: EnrollmentError) -> Error {
    match err {
        EnrollmentError::NotVerified => ErrorCode::NotVerified.error(capitalized(&err)),
        EnrollmentError::AlreadyEnrolled | EnrollmentError::Account(AccountError::Taken) => {
            ErrorCode::Conflict.error(capitalized(&err))
        }
        EnrollmentError::Forbidden => ErrorCode::Forbidden.error("Not allowed."),
        EnrollmentError::NotFound => ErrorCode::NotFound.error("Not found."),
        EnrollmentError::Account(
            AccountError::Password(_) | AccountError::Email | AccountError::Patient,
        )
        | EnrollmentError::Invalid(_) => ErrorCode::ValidationFailed.error(capitalized(&err)),
        EnrollmentError::TryLater { until } => too_many(&err, until),
        EnrollmentError::Vault(err) => from_vault(err),
        EnrollmentError::NotSent(_) => {
            tracing::warn!(error = %ErrorChain(&err), "message not sent");
            ErrorCode::Unavailable.error(capitalized(&err))
        }
        EnrollmentError::Account(AccountError::Internal(_)) | EnrollmentError::Internal(_) => {
            internal(&err)
        }
    }
}

/// Translates a passkey failure.
pub(crate) fn from_passkey(err: PasskeyError) -> Error {
    match err {
        PasskeyError::NotSignedIn => ErrorCode::Unauthenticated.error(capitalized(&err)),
        PasskeyError::Expired | PasskeyError::Refused => {
            ErrorCode::NotVerified.error(capitalized(&err))
        }
        PasskeyError::TooMany => ErrorCode::Conflict.error(capitalized(&err)),
        PasskeyError::Invalid(_) => ErrorCode::ValidationFailed.error(capitalized(&err)),
        PasskeyError::Internal(_) => internal(&err),
    }
}

/// Translates a password reset failure.
pub(crate) fn from_reset(err: ResetError) -> Error {
    match err {
        ResetError::NotVerified => ErrorCode::NotVerified.error(capitalized(&err)),
        ResetError::AssistedRecovery => {
            ErrorCode::AssistedRecoveryRequired.error(capitalized(&err))
        }
        ResetError::Password(_) => ErrorCode::ValidationFailed.error(capitalized(&err)),
        ResetError::Other(err) => from_enrollment(err),
    }
}

fn too_many(err: &dyn std::fmt::Display, until: chrono::DateTime<chrono::Utc>) -> Error {
    ErrorCode::TooManyAttempts
        .error(capitalized(err))
        .extend_with(|_, ext| {
            ext.set(
                "retryAfter",
                until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            );
        })
}

/// An error's message as a sentence.
fn capitalized(err: &dyn std::fmt::Display) -> String {
    let text = err.to_string();
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => format!("{}{}.", first.to_uppercase(), chars.as_str()),
        None => text,
    }
}

/// Logs an internal failure and returns the generic error the client sees.
pub(crate) fn internal(err: &(dyn std::error::Error + 'static)) -> Error {
    tracing::error!(error = %ErrorChain(err), "request failed");
    ErrorCode::Internal.error("Internal error.")
}

/// Formats an error with its sources, for the server log.
struct ErrorChain<'a>(&'a (dyn std::error::Error + 'static));

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(err) = source {
            write!(f, ": {err}")?;
            source = err.source();
        }

        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(err: &Error) -> String {
        err.extensions
            .as_ref()
            .and_then(|ext| ext.get("code"))
            .map(|code| code.to_string())
            .unwrap_or_default()
    }

    #[test]
    fn a_key_service_outage_is_unavailable_and_an_offboarded_tenant_not_found() {
        let outage = VaultError::KeyServiceUnavailable(KeyError::Unavailable("refused".into()));
        assert_eq!(code(&from_vault(outage)), "\"UNAVAILABLE\"");
        assert_eq!(
            code(&from_vault(VaultError::TenantKeyDeleted)),
            "\"NOT_FOUND\""
        );
        assert_eq!(code(&from_vault(VaultError::UnknownKey)), "\"INTERNAL\"");
        let audit = AuditError::KeyService(KeyError::Unavailable("refused".into()));
        assert_eq!(code(&from_audit(audit)), "\"UNAVAILABLE\"");
        assert_eq!(code(&from_audit(AuditError::Forbidden)), "\"FORBIDDEN\"");
    }

    #[test]
    fn an_identity_provider_outage_is_unavailable_and_its_expiry_asks_for_a_new_sign_in() {
        use portico_platform::identity::provider::ProviderError;

        let outage: SignInError = ProviderError::Unavailable("refused".into()).into();
        assert_eq!(code(&from_sign_in(outage)), "\"UNAVAILABLE\"");
        let expired: SignInError = ProviderError::Expired.into();
        assert_eq!(code(&from_sign_in(expired)), "\"UNAUTHENTICATED\"");
        let other: SignInError = ProviderError::Internal("bug".into()).into();
        assert_eq!(code(&from_sign_in(other)), "\"INTERNAL\"");
    }
}
