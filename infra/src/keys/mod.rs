//! Key service adapters: the embedded local service (the default), chosen by
//! `keys.provider`.

pub mod local;

use std::sync::Arc;

use anyhow::Context;
use portico_platform::clock::Clock;
use portico_platform::crypto::keys::KeyService;
use portico_platform::db::Db;
use portico_platform::entropy::Entropy;

use crate::config::{Config, KeyProvider};

/// The configured key service.
pub fn key_service(
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
    }
}
