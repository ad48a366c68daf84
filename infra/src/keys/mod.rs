//! Key service adapters, chosen by `keys.provider`: the embedded local service (the
//! default) or AWS KMS.

pub mod aws;
pub mod local;

use std::sync::Arc;

use anyhow::Context;
use portico_platform::clock::Clock;
use portico_platform::crypto::keys::KeyService;
use portico_platform::db::Db;
use portico_platform::entropy::Entropy;

use crate::config::{Config, KeyProvider};

/// The configured key service.
pub async fn key_service(
    config: &Config,
    db: &Db,
    clock: Arc<dyn Clock>,
    entropy: Arc<dyn Entropy>,
) -> anyhow::Result<Arc<dyn KeyService>> {
    match config.keys.provider {
        KeyProvider::Local => {
            let path = config.root_key_file();
            let root = local::RootKey::load_or_create(&path, entropy.as_ref())
                .with_context(|| format!("keys.local.root_key_file ({})", path.display()))?;
            Ok(Arc::new(local::LocalKeyService::new(
                db.clone(),
                root,
                clock,
                entropy,
            )))
        }
        KeyProvider::Aws => {
            let role = config
                .keys
                .aws
                .platform_role_arn
                .as_deref()
                .unwrap_or_default();
            let kms = aws::AwsKms::from_environment(role)
                .await
                .context("keys.aws")?;
            Ok(Arc::new(kms))
        }
    }
}
