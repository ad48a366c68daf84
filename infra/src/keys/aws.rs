//! AWS KMS: each tenant's own customer-managed key.
//!
//! On tenant creation: `CreateKey` (symmetric) tagged with the tenant, with a key policy
//! that lets only the platform's role use it, and only with
//! `kms:EncryptionContext:tenant_id` equal to that tenant; the alias
//! `alias/portico/tenant/<slug>`; automatic rotation. Data keys come from `GenerateDataKey`
//! (AES_256) and go back through `Decrypt`, always with the encryption context and the key
//! id. Offboarding schedules deletion.
//!
//! AWS settings load the standard way (region, credentials chain, `AWS_ENDPOINT_URL` and
//! `AWS_ENDPOINT_URL_KMS`), so pointing Portico at an emulator needs no switch of ours.
//! The SDK's standard retry mode gives exponential backoff with jitter.

use std::time::Duration;

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_kms::Client;
use aws_sdk_kms::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{
    DataKeySpec, KeySpec, KeyState as AwsKeyState, KeyUsageType, MacAlgorithmSpec, Tag,
};
use chrono::{DateTime, Utc};
use portico_platform::crypto::keys::{
    DataKey, EncryptionContext, GeneratedKey, KeyError, KeyRef, KeyService, KeyState,
    check_deletion_window,
};
use portico_platform::ids::TenantId;

/// The AWS KMS key service.
#[derive(Debug, Clone)]
pub struct AwsKms {
    client: Client,
    platform_role_arn: String,
}

/// Why the KMS adapter cannot be configured.
#[derive(Debug, thiserror::Error)]
pub enum AwsConfigError {
    /// The role ARN is not an IAM ARN with an account.
    #[error(
        "keys.aws.platform_role_arn must be an IAM ARN such as arn:aws:iam::123456789012:role/portico"
    )]
    RoleArn,
}

impl AwsKms {
    /// Loads AWS settings from the environment and the standard credentials chain.
    pub async fn from_environment(platform_role_arn: &str) -> Result<Self, AwsConfigError> {
        // Short timeouts: an outage should fail requests quickly, not hold them.
        let sdk = crate::aws::sdk_config(Duration::from_secs(5), Duration::from_secs(15)).await;

        Self::new(&sdk, platform_role_arn)
    }

    /// A client on settings already loaded.
    pub fn new(sdk: &SdkConfig, platform_role_arn: &str) -> Result<Self, AwsConfigError> {
        account_of(platform_role_arn).ok_or(AwsConfigError::RoleArn)?;

        Ok(Self {
            client: Client::new(sdk),
            platform_role_arn: platform_role_arn.to_owned(),
        })
    }

    /// The key policy for one tenant's key: administrators of the account may manage it
    /// but not use it; the platform's role may use it only for this tenant's context.
    pub fn key_policy(&self, tenant: TenantId) -> String {
        let account = account_of(&self.platform_role_arn).unwrap_or("000000000000");
        let role = &self.platform_role_arn;
        serde_json::json!({
            "Version": "2012-10-17",
            "Id": format!("portico-tenant-{tenant}"),
            "Statement": [
                administers_but_cannot_use(account, &["kms:ScheduleKeyDeletion", "kms:CancelKeyDeletion"]),
                {
                    "Sid": "PorticoUsesItForThisTenantOnly",
                    "Effect": "Allow",
                    "Principal": { "AWS": role },
                    "Action": ["kms:GenerateDataKey", "kms:Decrypt", "kms:ReEncryptFrom", "kms:ReEncryptTo"],
                    "Resource": "*",
                    "Condition": { "StringEquals": { "kms:EncryptionContext:tenant_id": tenant.to_string() } }
                },
                {
                    "Sid": "PorticoManagesItsLifecycle",
                    "Effect": "Allow",
                    "Principal": { "AWS": role },
                    "Action": [
                        "kms:DescribeKey", "kms:CreateAlias", "kms:EnableKeyRotation",
                        "kms:RotateKeyOnDemand", "kms:ScheduleKeyDeletion"
                    ],
                    "Resource": "*"
                }
            ]
        })
        .to_string()
    }

    /// The key policy for a platform MAC key: only the platform's role may sign and check
    /// with it; administrators may manage it but not use it.
    pub fn mac_key_policy(&self) -> String {
        let account = account_of(&self.platform_role_arn).unwrap_or("000000000000");
        serde_json::json!({
            "Version": "2012-10-17",
            "Id": "portico-platform-mac",
            "Statement": [
                administers_but_cannot_use(account, &[]),
                {
                    "Sid": "PorticoSignsAndChecks",
                    "Effect": "Allow",
                    "Principal": { "AWS": self.platform_role_arn },
                    "Action": ["kms:GenerateMac", "kms:VerifyMac", "kms:DescribeKey"],
                    "Resource": "*"
                }
            ]
        })
        .to_string()
    }

    /// Alias, rotation: the steps after `CreateKey`.
    async fn finish_key(&self, key_id: &str, slug: &str) -> Result<(), KeyError> {
        self.client
            .create_alias()
            .alias_name(format!("alias/portico/tenant/{slug}"))
            .target_key_id(key_id)
            .send()
            .await
            .map_err(kms_error)?;
        self.client
            .enable_key_rotation()
            .key_id(key_id)
            .send()
            .await
            .map_err(kms_error)?;

        Ok(())
    }
}

#[async_trait]
impl KeyService for AwsKms {
    fn provider(&self) -> &'static str {
        "aws"
    }

    async fn create_tenant_key(&self, tenant: TenantId, slug: &str) -> Result<KeyRef, KeyError> {
        let tag = |key: &str, value: &str| {
            Tag::builder()
                .tag_key(key)
                .tag_value(value)
                .build()
                .map_err(|_| KeyError::Invalid("tag"))
        };
        let created = self
            .client
            .create_key()
            .key_spec(KeySpec::SymmetricDefault)
            .key_usage(KeyUsageType::EncryptDecrypt)
            .description(format!("Portico: PHI of tenant {slug}"))
            .policy(self.key_policy(tenant))
            .tags(tag("portico:tenant_id", &tenant.to_string())?)
            .tags(tag("portico:tenant_slug", slug)?)
            .tags(tag("portico:purpose", "phi")?)
            .send()
            .await
            .map_err(kms_error)?;
        let metadata = created
            .key_metadata()
            .ok_or(KeyError::Invalid("CreateKey returned no key"))?;
        // The key id, not the ARN: it names the key in every KMS operation of this account
        // and region (and the emulator accepts nothing else for some of them).
        let key_id = metadata.key_id().to_owned();

        // A key half set up is no use to anyone: remove it rather than leave it behind.
        if let Err(err) = self.finish_key(&key_id, slug).await {
            let _ = self
                .client
                .schedule_key_deletion()
                .key_id(&key_id)
                .pending_window_in_days(7)
                .send()
                .await;
            return Err(err);
        }

        Ok(KeyRef(key_id))
    }

    async fn generate_data_key(
        &self,
        key: &KeyRef,
        context: &EncryptionContext,
    ) -> Result<GeneratedKey, KeyError> {
        let output = self
            .client
            .generate_data_key()
            .key_id(&key.0)
            .key_spec(DataKeySpec::Aes256)
            .set_encryption_context(Some(context.pairs().clone().into_iter().collect()))
            .send()
            .await
            .map_err(kms_error)?;
        let plaintext = output
            .plaintext()
            .ok_or(KeyError::Invalid("GenerateDataKey returned no plaintext"))?;
        let plaintext = DataKey::from_slice(plaintext.as_ref())
            .ok_or(KeyError::Invalid("data key of the wrong length"))?;
        let wrapped = output
            .ciphertext_blob()
            .ok_or(KeyError::Invalid("GenerateDataKey returned no ciphertext"))?;

        Ok(GeneratedKey {
            plaintext,
            wrapped: wrapped.as_ref().to_vec(),
        })
    }

    async fn decrypt_data_key(
        &self,
        key: &KeyRef,
        wrapped: &[u8],
        context: &EncryptionContext,
    ) -> Result<DataKey, KeyError> {
        let output = self
            .client
            .decrypt()
            .key_id(&key.0)
            .ciphertext_blob(Blob::new(wrapped))
            .set_encryption_context(Some(context.pairs().clone().into_iter().collect()))
            .send()
            .await
            .map_err(kms_error)?;
        let plaintext = output.plaintext().ok_or(KeyError::InvalidCiphertext)?;

        DataKey::from_slice(plaintext.as_ref()).ok_or(KeyError::InvalidCiphertext)
    }

    async fn rotate_tenant_key(&self, key: &KeyRef) -> Result<(), KeyError> {
        self.client
            .rotate_key_on_demand()
            .key_id(&key.0)
            .send()
            .await
            .map_err(kms_error)?;

        Ok(())
    }

    async fn rewrap_data_key(
        &self,
        key: &KeyRef,
        wrapped: &[u8],
        context: &EncryptionContext,
    ) -> Result<Vec<u8>, KeyError> {
        let pairs: std::collections::HashMap<_, _> = context.pairs().clone().into_iter().collect();
        let output = self
            .client
            .re_encrypt()
            .ciphertext_blob(Blob::new(wrapped))
            .source_key_id(&key.0)
            .set_source_encryption_context(Some(pairs.clone()))
            .destination_key_id(&key.0)
            .set_destination_encryption_context(Some(pairs))
            .send()
            .await
            .map_err(kms_error)?;

        output
            .ciphertext_blob()
            .map(|blob| blob.as_ref().to_vec())
            .ok_or(KeyError::InvalidCiphertext)
    }

    async fn schedule_deletion(
        &self,
        key: &KeyRef,
        window_days: u32,
    ) -> Result<DateTime<Utc>, KeyError> {
        check_deletion_window(window_days)?;
        let output = self
            .client
            .schedule_key_deletion()
            .key_id(&key.0)
            .pending_window_in_days(i32::try_from(window_days).unwrap_or(30))
            .send()
            .await
            .map_err(kms_error)?;

        output
            .deletion_date()
            .and_then(|date| DateTime::from_timestamp(date.secs(), 0))
            .ok_or(KeyError::Invalid("ScheduleKeyDeletion returned no date"))
    }

    async fn create_mac_key(&self, name: &str) -> Result<KeyRef, KeyError> {
        let alias = format!("alias/portico/platform/{name}");
        // One per deployment: a database restored or rebuilt against the same account finds
        // the key it signed with before, rather than failing on the alias or orphaning it.
        match self.client.describe_key().key_id(&alias).send().await {
            Ok(found) => {
                if let Some(metadata) = found.key_metadata()
                    && metadata.key_usage() == Some(&KeyUsageType::GenerateVerifyMac)
                {
                    return Ok(KeyRef(metadata.key_id().to_owned()));
                }
                return Err(KeyError::Invalid(
                    "the platform MAC alias names a non-MAC key",
                ));
            }
            Err(err) if err.code() == Some("NotFoundException") => {}
            Err(err) => return Err(kms_error(err)),
        }
        let created = self
            .client
            .create_key()
            .key_spec(KeySpec::Hmac256)
            .key_usage(KeyUsageType::GenerateVerifyMac)
            .description(format!("Portico: platform key {name}"))
            .policy(self.mac_key_policy())
            .tags(
                Tag::builder()
                    .tag_key("portico:purpose")
                    .tag_value(name)
                    .build()
                    .map_err(|_| KeyError::Invalid("tag"))?,
            )
            .send()
            .await
            .map_err(kms_error)?;
        let key_id = created
            .key_metadata()
            .ok_or(KeyError::Invalid("CreateKey returned no key"))?
            .key_id()
            .to_owned();
        self.client
            .create_alias()
            .alias_name(alias)
            .target_key_id(&key_id)
            .send()
            .await
            .map_err(kms_error)?;

        Ok(KeyRef(key_id))
    }

    async fn generate_mac(&self, key: &KeyRef, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        let output = self
            .client
            .generate_mac()
            .key_id(&key.0)
            .mac_algorithm(MacAlgorithmSpec::HmacSha256)
            .message(Blob::new(message))
            .send()
            .await
            .map_err(kms_error)?;

        output
            .mac()
            .map(|mac| mac.as_ref().to_vec())
            .ok_or(KeyError::Invalid("GenerateMac returned no MAC"))
    }

    async fn verify_mac(&self, key: &KeyRef, message: &[u8], mac: &[u8]) -> Result<bool, KeyError> {
        let result = self
            .client
            .verify_mac()
            .key_id(&key.0)
            .mac_algorithm(MacAlgorithmSpec::HmacSha256)
            .message(Blob::new(message))
            .mac(Blob::new(mac))
            .send()
            .await;
        match result {
            Ok(output) => Ok(output.mac_valid()),
            // KMS answers a wrong MAC with an error rather than `MacValid: false`.
            Err(err) if err.code() == Some("KMSInvalidMacException") => Ok(false),
            Err(err) => Err(kms_error(err)),
        }
    }

    async fn describe(&self, key: &KeyRef) -> Result<KeyState, KeyError> {
        let output = self
            .client
            .describe_key()
            .key_id(&key.0)
            .send()
            .await
            .map_err(kms_error)?;
        let metadata = output.key_metadata().ok_or(KeyError::NotFound)?;

        Ok(match metadata.key_state() {
            Some(AwsKeyState::PendingDeletion) => KeyState::PendingDeletion {
                at: metadata
                    .deletion_date()
                    .and_then(|date| DateTime::from_timestamp(date.secs(), 0))
                    .unwrap_or(DateTime::<Utc>::MIN_UTC),
            },
            _ => KeyState::Enabled,
        })
    }
}

/// The key policy statement that lets the account's administrators manage a key (and do
/// `extra` to it) but never use it: only Portico's role encrypts, decrypts or signs.
fn administers_but_cannot_use(account: &str, extra: &[&str]) -> serde_json::Value {
    let mut actions = vec![
        "kms:Describe*",
        "kms:Get*",
        "kms:List*",
        "kms:Put*",
        "kms:Update*",
        "kms:Enable*",
        "kms:Disable*",
        "kms:TagResource",
        "kms:UntagResource",
        "kms:CreateAlias",
        "kms:DeleteAlias",
    ];
    actions.extend_from_slice(extra);
    serde_json::json!({
        "Sid": "AccountAdministersButCannotUse",
        "Effect": "Allow",
        "Principal": { "AWS": format!("arn:aws:iam::{account}:root") },
        "Action": actions,
        "Resource": "*"
    })
}

/// The account of an IAM ARN (`arn:aws:iam::<account>:…`).
fn account_of(arn: &str) -> Option<&str> {
    let mut parts = arn.splitn(6, ':');
    let (Some("arn"), Some(_partition), Some("iam"), Some(""), Some(account), Some(_)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return None;
    };
    (account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit())).then_some(account)
}

/// Sorts a KMS failure into what the vault acts on. Service messages can name keys but
/// never carry plaintext; they go to the log as the error's source.
fn kms_error<E, R>(err: SdkError<E, R>) -> KeyError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    match &err {
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) | SdkError::ResponseError(_) => {
            return KeyError::Unavailable(Box::new(err));
        }
        _ => {}
    }
    match err.code() {
        Some("InvalidCiphertextException" | "IncorrectKeyException") => KeyError::InvalidCiphertext,
        Some("NotFoundException") => KeyError::NotFound,
        Some("KMSInvalidStateException" | "DisabledException") => KeyError::PendingDeletion,
        Some(
            "ThrottlingException"
            | "KMSInternalException"
            | "DependencyTimeoutException"
            | "ServiceUnavailable",
        ) => KeyError::Unavailable(Box::new(err)),
        _ => KeyError::Other(Box::new(err)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_account_is_read_from_an_iam_arn() {
        assert_eq!(
            account_of("arn:aws:iam::123456789012:role/portico"),
            Some("123456789012")
        );
        assert_eq!(
            account_of("arn:aws-us-gov:iam::123456789012:role/x"),
            Some("123456789012")
        );
        assert_eq!(account_of("arn:aws:iam::12345:role/portico"), None);
        assert_eq!(account_of("arn:aws:s3:::bucket"), None);
        assert_eq!(account_of("portico"), None);
    }
}
