//! Wiring: the platform services built once from the configuration, for `serve` and the
//! commands alike.

use std::sync::Arc;

use portico_platform::clock::{Clock, SystemClock};
use portico_platform::crypto::vault::Vault;
use portico_platform::db::Db;
use portico_platform::entropy::{Entropy, SystemEntropy};
use portico_tenants::TenantService;

use crate::config::Config;
use crate::keys;

/// Every platform service, sharing one pool, clock and entropy.
#[derive(Debug, Clone)]
pub struct Services {
    /// The database.
    pub db: Db,
    /// Sealing and opening PHI under each tenant's key.
    pub vault: Vault,
    /// The tenant registry.
    pub tenants: TenantService,
    /// The clock.
    pub clock: Arc<dyn Clock>,
    /// The entropy.
    pub entropy: Arc<dyn Entropy>,
}

impl Services {
    /// Builds the services on the system clock and entropy.
    pub async fn build(config: &Config, db: Db) -> anyhow::Result<Self> {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let entropy: Arc<dyn Entropy> = Arc::new(SystemEntropy);
        let keys = keys::key_service(config, &db, clock.clone(), entropy.clone()).await?;
        let vault = Vault::new(
            db.clone(),
            keys,
            config.key_cache_limits(),
            clock.clone(),
            entropy.clone(),
        );
        let tenants = TenantService::new(db.clone(), vault.clone(), clock.clone(), entropy.clone());

        Ok(Self {
            db,
            vault,
            tenants,
            clock,
            entropy,
        })
    }
}
