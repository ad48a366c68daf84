//! Wiring: the platform services built once from the configuration, for `serve` and the
//! commands alike.

use std::sync::Arc;

use anyhow::Context;
use portico_platform::audit::AuditTrail;
use portico_platform::audit::archive::ArchiveSink;
use portico_platform::audit::checkpoint::Checkpointer;
use portico_platform::clock::{Clock, SystemClock};
use portico_platform::crypto::platform_keys::PlatformKeys;
use portico_platform::crypto::vault::Vault;
use portico_platform::db::Db;
use portico_platform::entropy::{Entropy, SystemEntropy};
use portico_platform::identity::local::{LocalIdentity, Parts};
use portico_platform::identity::password::{MemoryBlocklist, PasswordHasher, PasswordPolicy};
use portico_platform::identity::provider::{IdentityProvider, LocalProvider};
use portico_platform::identity::registry::LocalRegistry;
use portico_platform::identity::sessions::Sessions;
use portico_platform::records::{RecordStore, Records, SyncEngine};
use portico_tenants::TenantService;

use crate::audit::local::LocalArchive;
use crate::audit::s3::S3Archive;
use crate::config::{ArchiveProvider, Config, IdentityProviderKind};
use crate::ehr::Connections;
use crate::ehr::worker::Waker;
use crate::identity::cognito::{Cognito, SmsSettings};
use crate::identity::provider::CognitoProvider;
use crate::keys;
use crate::notify::outbox::Outbox;

/// Every platform service, sharing one pool, clock and entropy.
#[derive(Debug, Clone)]
pub struct Services {
    /// The database.
    pub db: Db,
    /// Sealing and opening PHI under each tenant's key.
    pub vault: Vault,
    /// The tenant registry.
    pub tenants: TenantService,
    /// The audit trail.
    pub audit: AuditTrail,
    /// Signs and archives the audit trail.
    pub checkpointer: Checkpointer,
    /// Accounts, sign-in and sessions.
    pub identity: LocalIdentity,
    /// The clinic's patients, as enrollment finds them (the EHR's Patient search later).
    pub registry: LocalRegistry,
    /// The embedded notifier's messages.
    pub outbox: Outbox,
    /// The patient's health record: reads, withholding, sync state.
    pub records: Records,
    /// The sync engine over the shared queue.
    pub sync: SyncEngine,
    /// Each clinic's EHR connection.
    pub connections: Connections,
    /// Wakes this node's sync worker when work is queued.
    pub sync_waker: Waker,
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
        let hasher =
            PasswordHasher::new(entropy.as_ref()).context("cannot set up password hashing")?;
        let provider = identity_provider(config, &db, &hasher, &clock, &entropy).await?;
        let tenants = TenantService::new(db.clone(), vault.clone(), clock.clone(), entropy.clone());
        let tenants = match config.identity.provider {
            IdentityProviderKind::Local => tenants,
            IdentityProviderKind::Cognito => tenants.with_identity_provider(provider.clone()),
        };
        let audit = AuditTrail::new(db.clone(), clock.clone());
        let segment_after = match config.audit.segment_after_days {
            0 => None,
            days => Some(chrono::Duration::days(i64::from(days))),
        };
        let checkpointer = Checkpointer::new(
            audit.clone(),
            vault.key_service().clone(),
            archive_sink(config, clock.clone()).await?,
            segment_after,
        );

        let platform_keys =
            PlatformKeys::new(db.clone(), vault.key_service().clone(), clock.clone());
        let registry = LocalRegistry::new(
            db.clone(),
            vault.clone(),
            platform_keys.clone(),
            audit.clone(),
            clock.clone(),
            entropy.clone(),
        );
        let outbox = Outbox::new(db.clone(), vault.clone(), clock.clone(), entropy.clone());
        let identity = LocalIdentity::new(Parts {
            db: db.clone(),
            vault: vault.clone(),
            audit: audit.clone(),
            platform_keys,
            hasher,
            policy: PasswordPolicy::new(MemoryBlocklist::common()),
            sessions: Sessions::new(chrono::Duration::minutes(i64::from(
                config.identity.idle_timeout_minutes,
            ))),
            provider,
            registry: Arc::new(registry.clone()),
            notifier: Arc::new(outbox.clone()),
            clock: clock.clone(),
            entropy: entropy.clone(),
        });

        let connections = Connections::new(tenants.clone(), clock.clone(), entropy.clone());
        let store = RecordStore::new(
            db.clone(),
            vault.clone(),
            audit.clone(),
            clock.clone(),
            entropy.clone(),
        );
        let sync = SyncEngine::new(
            db.clone(),
            store,
            clock.clone(),
            entropy.clone(),
            chrono::Duration::minutes(5),
        );
        let records = Records::new(
            db.clone(),
            vault.clone(),
            audit.clone(),
            Arc::new(connections.clone()),
            clock.clone(),
            entropy.clone(),
        );

        Ok(Self {
            db,
            vault,
            tenants,
            audit,
            checkpointer,
            identity,
            registry,
            outbox,
            records,
            sync,
            connections,
            sync_waker: Waker::default(),
            clock,
            entropy,
        })
    }
}

/// Where passwords and authenticators are kept: Portico's database, or Cognito.
async fn identity_provider(
    config: &Config,
    db: &Db,
    hasher: &PasswordHasher,
    clock: &Arc<dyn Clock>,
    entropy: &Arc<dyn Entropy>,
) -> anyhow::Result<Arc<dyn IdentityProvider>> {
    Ok(match config.identity.provider {
        IdentityProviderKind::Local => {
            Arc::new(LocalProvider::new(hasher.clone(), entropy.clone()))
        }
        IdentityProviderKind::Cognito => {
            let cognito = &config.identity.cognito;
            let sms = SmsSettings {
                // `Config::load` requires the role for cognito.
                sns_caller_role_arn: cognito.sms_role_arn.clone().unwrap_or_default(),
                external_id: cognito
                    .sms_external_id
                    .clone()
                    .unwrap_or_else(|| "portico-sms".to_owned()),
            };
            let client = Cognito::from_environment(sms)
                .await
                .context("identity.provider = \"cognito\": cannot set up the Cognito client")?;
            Arc::new(CognitoProvider::new(client, db.clone(), clock.clone()))
        }
    })
}

/// The audit archive the configuration names. An S3 bucket without Object Lock is refused.
async fn archive_sink(
    config: &Config,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<Arc<dyn ArchiveSink>> {
    match config.audit.archive.provider {
        ArchiveProvider::Local => {
            let dir = config.archive_dir();
            let archive = LocalArchive::new(dir.clone())
                .with_context(|| format!("audit.archive.dir ({})", dir.display()))?;
            Ok(Arc::new(archive))
        }
        ArchiveProvider::S3 => {
            // `Config::load` requires the bucket for s3.
            let bucket = config.audit.archive.bucket.clone().unwrap_or_default();
            let archive =
                S3Archive::from_environment(bucket, config.audit.archive.prefix.clone(), clock)
                    .await;
            archive.check().await.context("audit.archive.bucket")?;
            Ok(Arc::new(archive))
        }
    }
}
