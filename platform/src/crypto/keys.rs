//! The key management port: each tenant's own key, and data keys wrapped under it.
//!
//! Implementations (the embedded local service, AWS KMS) live in `infra`. Every data-key
//! operation carries an [`EncryptionContext`] naming the tenant and the purpose; a wrapped
//! key presented with any other context does not unwrap.

use std::collections::BTreeMap;
use std::fmt;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::ids::TenantId;

/// The length of a data key: AES-256.
pub const DATA_KEY_LEN: usize = 32;

/// Days between scheduling a tenant key's deletion and its destruction: AWS KMS's own
/// bounds, which every key service here keeps.
pub const DELETION_WINDOW_DAYS: std::ops::RangeInclusive<u32> = 7..=30;

/// Refuses a deletion window outside [`DELETION_WINDOW_DAYS`].
pub fn check_deletion_window(days: u32) -> Result<(), KeyError> {
    if DELETION_WINDOW_DAYS.contains(&days) {
        Ok(())
    } else {
        Err(KeyError::Invalid(
            "the deletion window must be 7 to 30 days",
        ))
    }
}

/// A plaintext data key, wiped from memory when dropped. Prints as `***`.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct DataKey([u8; DATA_KEY_LEN]);

impl DataKey {
    /// Wraps key bytes.
    pub fn from_bytes(bytes: [u8; DATA_KEY_LEN]) -> Self {
        Self(bytes)
    }

    /// Copies key bytes from a slice, if it has the right length.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        <[u8; DATA_KEY_LEN]>::try_from(bytes).ok().map(Self)
    }

    /// The key bytes, for the cipher.
    pub fn expose(&self) -> &[u8; DATA_KEY_LEN] {
        &self.0
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey(***)")
    }
}

/// What a tenant's key is called in its key service (a KMS key ARN, a local key id).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeyRef(pub String);

/// Why a data key is being made or opened; part of the encryption context.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyPurpose {
    /// Sealing PHI stored in the database.
    Phi,
}

impl KeyPurpose {
    fn as_str(self) -> &'static str {
        match self {
            Self::Phi => "phi",
        }
    }
}

/// The encryption context: authenticated, not secret. A wrapped data key opens only with
/// the same context it was made with (and a KMS key policy can require `tenant_id`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncryptionContext(BTreeMap<String, String>);

impl EncryptionContext {
    /// The context for a tenant's data keys of one purpose.
    pub fn new(tenant: TenantId, purpose: KeyPurpose) -> Self {
        let mut pairs = BTreeMap::new();
        pairs.insert("tenant_id".to_owned(), tenant.to_string());
        pairs.insert("purpose".to_owned(), purpose.as_str().to_owned());
        Self(pairs)
    }

    /// The pairs, in key order.
    pub fn pairs(&self) -> &BTreeMap<String, String> {
        &self.0
    }

    /// A canonical byte encoding, for services that authenticate the context themselves:
    /// each key and value length-prefixed, in key order.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (key, value) in &self.0 {
            for part in [key, value] {
                out.extend_from_slice(&u32::try_from(part.len()).unwrap_or(u32::MAX).to_be_bytes());
                out.extend_from_slice(part.as_bytes());
            }
        }
        out
    }
}

/// A data key just made: the plaintext to use now, the wrapped form to store.
#[derive(Debug)]
pub struct GeneratedKey {
    /// Use this, then drop it.
    pub plaintext: DataKey,
    /// Store this; only the key service can turn it back into the plaintext.
    pub wrapped: Vec<u8>,
}

/// Where a tenant key is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    /// Usable.
    Enabled,
    /// Deletion is scheduled; nothing may be opened with it any more.
    PendingDeletion {
        /// When the key material will be destroyed.
        at: DateTime<Utc>,
    },
}

/// A key service failure. None of them carries key material or plaintext.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The service cannot be reached or is throttling; worth retrying later.
    #[error("the key service is unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// No such key.
    #[error("no such key")]
    NotFound,
    /// The key is scheduled for deletion (the tenant was offboarded).
    #[error("the key is scheduled for deletion")]
    PendingDeletion,
    /// The wrapped key does not open: altered, or presented with another context or key.
    #[error("the wrapped key does not open with this key and context")]
    InvalidCiphertext,
    /// A request the service refused as malformed.
    #[error("invalid request to the key service: {0}")]
    Invalid(&'static str),
    /// Anything else the service reported.
    #[error("key service error")]
    Other(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Each tenant's own key, and data keys under it.
#[async_trait]
pub trait KeyService: Send + Sync + fmt::Debug {
    /// Which implementation this is, for configuration output and logs.
    fn provider(&self) -> &'static str;

    /// Creates the tenant's key, named for its slug where the service has names.
    async fn create_tenant_key(&self, tenant: TenantId, slug: &str) -> Result<KeyRef, KeyError>;

    /// Makes a new AES-256 data key under the tenant's key.
    async fn generate_data_key(
        &self,
        key: &KeyRef,
        context: &EncryptionContext,
    ) -> Result<GeneratedKey, KeyError>;

    /// Unwraps a stored data key. The context must be the one it was made with.
    async fn decrypt_data_key(
        &self,
        key: &KeyRef,
        wrapped: &[u8],
        context: &EncryptionContext,
    ) -> Result<DataKey, KeyError>;

    /// Makes a new version of the tenant's key current. Data keys wrapped under older
    /// versions still unwrap.
    async fn rotate_tenant_key(&self, key: &KeyRef) -> Result<(), KeyError>;

    /// Re-wraps a stored data key under the key's current version, without exposing it to
    /// the caller. The context must be the one it was made with.
    async fn rewrap_data_key(
        &self,
        key: &KeyRef,
        wrapped: &[u8],
        context: &EncryptionContext,
    ) -> Result<Vec<u8>, KeyError>;

    /// Schedules the key's destruction after `window_days` (7–30); returns when.
    async fn schedule_deletion(
        &self,
        key: &KeyRef,
        window_days: u32,
    ) -> Result<DateTime<Utc>, KeyError>;

    /// The key's state.
    async fn describe(&self, key: &KeyRef) -> Result<KeyState, KeyError>;

    /// Creates a key the platform itself signs with (HMAC-SHA-256), called `name` where the
    /// service has names. Its material never leaves the service.
    async fn create_mac_key(&self, name: &str) -> Result<KeyRef, KeyError>;

    /// HMAC-SHA-256 of `message` (at most 4,096 bytes) under a MAC key.
    async fn generate_mac(&self, key: &KeyRef, message: &[u8]) -> Result<Vec<u8>, KeyError>;

    /// Whether `mac` is the HMAC-SHA-256 of `message` under the key.
    async fn verify_mac(&self, key: &KeyRef, message: &[u8], mac: &[u8]) -> Result<bool, KeyError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_data_key_never_prints() {
        assert_eq!(
            format!("{:?}", DataKey::from_bytes([7; 32])),
            "DataKey(***)"
        );
    }

    #[test]
    fn the_context_names_the_tenant_and_purpose_canonically() {
        let tenant: TenantId = "01a23cdf-d215-73c9-b312-0ca8e43e8f19".parse().unwrap();
        let context = EncryptionContext::new(tenant, KeyPurpose::Phi);

        assert_eq!(context.pairs()["tenant_id"], tenant.to_string());
        assert_eq!(context.pairs()["purpose"], "phi");
        assert_eq!(
            context.canonical_bytes(),
            EncryptionContext::new(tenant, KeyPurpose::Phi).canonical_bytes()
        );
    }
}
