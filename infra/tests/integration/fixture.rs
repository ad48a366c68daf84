//! A migrated database with the platform's services on it, a manual clock, and a key
//! service that counts its calls and can be made unreachable ([`CountingKeys`]).

use std::sync::Arc;

use chrono::DateTime;
use portico_infra::keys::local::{LocalKeyService, RootKey};
use portico_platform::clock::ManualClock;
use portico_platform::crypto::cache::CacheLimits;
use portico_platform::crypto::keys::KeyService;
use portico_platform::crypto::vault::Vault;
use portico_platform::db::Db;
use portico_platform::entropy::SeededEntropy;
use portico_platform::principal::Principal;
use portico_tenants::{NewTenant, Tenant, TenantService};
use portico_tests::TestDatabase;

pub use portico_tests::keys::CountingKeys;

/// The services over one test database.
pub struct Platform {
    pub database: TestDatabase,
    pub db: Db,
    pub clock: ManualClock,
    pub keys: Arc<CountingKeys>,
    pub vault: Vault,
    pub tenants: TenantService,
    _root_dir: tempfile::TempDir,
}

impl Platform {
    /// A fresh database with the services on it, connected as the server is, with the
    /// embedded key service.
    pub async fn new(limits: CacheLimits) -> Self {
        Self::with_keys(limits, |db, clock, root_dir| {
            let entropy = Arc::new(SeededEntropy::new(13));
            let root =
                RootKey::load_or_create(&root_dir.join("root.key"), entropy.as_ref()).unwrap();
            Arc::new(LocalKeyService::new(
                db.clone(),
                root,
                Arc::new(clock.clone()),
                entropy,
            ))
        })
        .await
    }

    /// The same, with the key service `make` returns.
    pub async fn with_keys(
        limits: CacheLimits,
        make: impl FnOnce(&Db, &ManualClock, &std::path::Path) -> Arc<dyn KeyService>,
    ) -> Self {
        let database = TestDatabase::migrated().await;
        let db = Db::new(database.connect_as_server().await);
        let clock = ManualClock::new(DateTime::from_timestamp(1_800_000_000, 0).unwrap());
        let entropy = Arc::new(SeededEntropy::new(11));
        let root_dir = tempfile::tempdir().unwrap();
        let keys = Arc::new(CountingKeys::new(make(&db, &clock, root_dir.path())));
        let vault = Vault::new(
            db.clone(),
            keys.clone(),
            limits,
            Arc::new(clock.clone()),
            entropy.clone(),
        );
        let tenants =
            TenantService::new(db.clone(), vault.clone(), Arc::new(clock.clone()), entropy);

        Self {
            database,
            db,
            clock,
            keys,
            vault,
            tenants,
            _root_dir: root_dir,
        }
    }

    /// A vault on the same database and key service with an empty cache, as another node
    /// would have.
    pub fn cold_vault(&self) -> Vault {
        Vault::new(
            self.db.clone(),
            self.keys.clone(),
            CacheLimits::default(),
            Arc::new(self.clock.clone()),
            Arc::new(SeededEntropy::new(5)),
        )
    }

    /// The embedded identity provider on this platform, with cheap password hashing.
    pub fn identity(&self) -> portico_platform::identity::local::LocalIdentity {
        use portico_platform::identity::local::{LocalIdentity, Parts};
        use portico_platform::identity::password::{
            MemoryBlocklist, PasswordHasher, PasswordPolicy,
        };

        let clock: Arc<dyn portico_platform::clock::Clock> = Arc::new(self.clock.clone());
        let entropy: Arc<dyn portico_platform::entropy::Entropy> = Arc::new(SeededEntropy::new(21));
        let hasher = PasswordHasher::for_tests(entropy.as_ref()).unwrap();
        LocalIdentity::new(Parts {
            db: self.db.clone(),
            vault: self.vault.clone(),
            audit: portico_platform::audit::AuditTrail::new(self.db.clone(), clock.clone()),
            platform_keys: self.platform_keys(),
            provider: Arc::new(portico_platform::identity::provider::LocalProvider::new(
                hasher.clone(),
                entropy.clone(),
            )),
            hasher,
            policy: PasswordPolicy::new(MemoryBlocklist::common()),
            sessions: portico_platform::identity::sessions::Sessions::new(
                chrono::Duration::minutes(15),
            ),
            registry: Arc::new(self.registry()),
            notifier: Arc::new(self.outbox()),
            clock,
            entropy,
        })
    }

    /// The platform's MAC keys on this platform.
    pub fn platform_keys(&self) -> portico_platform::crypto::platform_keys::PlatformKeys {
        portico_platform::crypto::platform_keys::PlatformKeys::new(
            self.db.clone(),
            self.keys.clone(),
            Arc::new(self.clock.clone()),
        )
    }

    /// The clinic's own patient registry on this platform.
    pub fn registry(&self) -> portico_platform::identity::registry::LocalRegistry {
        let clock: Arc<dyn portico_platform::clock::Clock> = Arc::new(self.clock.clone());
        portico_platform::identity::registry::LocalRegistry::new(
            self.db.clone(),
            self.vault.clone(),
            self.platform_keys(),
            portico_platform::audit::AuditTrail::new(self.db.clone(), clock.clone()),
            clock,
            Arc::new(SeededEntropy::new(23)),
        )
    }

    /// The embedded notifier on this platform.
    pub fn outbox(&self) -> portico_infra::notify::outbox::Outbox {
        portico_infra::notify::outbox::Outbox::new(
            self.db.clone(),
            self.vault.clone(),
            Arc::new(self.clock.clone()),
            Arc::new(SeededEntropy::new(29)),
        )
    }

    /// The record store on this platform.
    pub fn record_store(&self) -> portico_platform::records::RecordStore {
        let clock: Arc<dyn portico_platform::clock::Clock> = Arc::new(self.clock.clone());
        portico_platform::records::RecordStore::new(
            self.db.clone(),
            self.vault.clone(),
            portico_platform::audit::AuditTrail::new(self.db.clone(), clock.clone()),
            clock,
            Arc::new(SeededEntropy::new(31)),
        )
    }

    /// The sync engine on this platform (jobs leased for a minute).
    pub fn sync_engine(&self) -> portico_platform::records::SyncEngine {
        portico_platform::records::SyncEngine::new(
            self.db.clone(),
            self.record_store(),
            Arc::new(self.clock.clone()),
            Arc::new(SeededEntropy::new(37)),
            chrono::Duration::minutes(1),
        )
    }

    /// The record service on this platform, every clinic releasing by `policy` through
    /// `client`.
    pub fn records(
        &self,
        connections: Arc<dyn portico_platform::records::EhrConnections>,
    ) -> portico_platform::records::Records {
        let clock: Arc<dyn portico_platform::clock::Clock> = Arc::new(self.clock.clone());
        portico_platform::records::Records::new(
            self.db.clone(),
            self.vault.clone(),
            portico_platform::audit::AuditTrail::new(self.db.clone(), clock.clone()),
            connections,
            clock,
            Arc::new(SeededEntropy::new(41)),
        )
    }

    /// Creates a tenant as an operator would.
    pub async fn tenant(&self, slug: &str) -> Tenant {
        let new = NewTenant {
            slug: slug.parse().unwrap(),
            display_name: format!("Clinic {slug}"),
            domains: vec![],
        };
        self.tenants
            .create(&Principal::Operator, new)
            .await
            .unwrap()
    }

    /// A registry of its own over the same database, as another process would have.
    pub async fn other_process(&self) -> TenantService {
        let db = Db::new(self.database.connect_as_server().await);
        TenantService::new(
            db,
            self.vault.clone(),
            Arc::new(self.clock.clone()),
            Arc::new(SeededEntropy::new(3)),
        )
    }
}

/// A fixed connection for every clinic: `client` (if any), released by `policy`.
#[derive(Debug, Clone)]
pub struct FixedConnections {
    pub client: Option<Arc<dyn portico_platform::records::EhrClient>>,
    pub policy: portico_platform::records::ReleasePolicy,
}

#[async_trait::async_trait]
impl portico_platform::records::EhrConnections for FixedConnections {
    async fn connect(
        &self,
        _tenant: portico_platform::ids::TenantId,
    ) -> Result<
        Option<portico_platform::records::sync::Connection>,
        portico_platform::records::EhrError,
    > {
        Ok(self
            .client
            .clone()
            .map(|client| portico_platform::records::sync::Connection {
                client,
                policy: self.policy,
                poll_interval: std::time::Duration::from_secs(60),
            }))
    }

    async fn release_policy(
        &self,
        _tenant: portico_platform::ids::TenantId,
    ) -> portico_platform::records::ReleasePolicy {
        self.policy
    }
}

/// AWS SDK settings for the emulator at `url`, with the test's credentials and region, two
/// attempts, and the given bounds on one attempt and on the whole operation (short, so an
/// outage shows quickly).
pub async fn emulator_sdk(
    url: &str,
    attempt: std::time::Duration,
    operation: std::time::Duration,
) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(url)
        .region(aws_config::Region::new(portico_tests::moto::REGION))
        .credentials_provider(aws_sdk_kms::config::Credentials::new(
            "testing", "testing", None, None, "tests",
        ))
        .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(2))
        .timeout_config(
            aws_config::timeout::TimeoutConfig::builder()
                .connect_timeout(std::time::Duration::from_secs(1))
                .operation_attempt_timeout(attempt)
                .operation_timeout(operation)
                .build(),
        )
        .load()
        .await
}
