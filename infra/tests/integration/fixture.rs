//! A migrated database with the platform's services on it, a manual clock, and a key
//! service that counts its calls and can be made unreachable.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use portico_infra::keys::local::{LocalKeyService, RootKey};
use portico_platform::clock::ManualClock;
use portico_platform::crypto::cache::CacheLimits;
use portico_platform::crypto::keys::{
    DataKey, EncryptionContext, GeneratedKey, KeyError, KeyRef, KeyService, KeyState,
};
use portico_platform::crypto::vault::Vault;
use portico_platform::db::Db;
use portico_platform::entropy::SeededEntropy;
use portico_platform::ids::TenantId;
use portico_platform::principal::Principal;
use portico_tenants::{NewTenant, Tenant, TenantService};
use portico_tests::TestDatabase;

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

/// Wraps the real key service: counts data-key calls, and can be switched off to act as an
/// outage.
#[derive(Debug)]
pub struct CountingKeys {
    inner: Arc<dyn KeyService>,
    pub generated: AtomicUsize,
    pub decrypted: AtomicUsize,
    down: AtomicBool,
}

impl CountingKeys {
    fn new(inner: Arc<dyn KeyService>) -> Self {
        Self {
            inner,
            generated: AtomicUsize::new(0),
            decrypted: AtomicUsize::new(0),
            down: AtomicBool::new(false),
        }
    }

    /// Makes every call fail as unreachable (`true`) or work again (`false`).
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    /// Data-key calls so far.
    pub fn calls(&self) -> usize {
        self.generated.load(Ordering::SeqCst) + self.decrypted.load(Ordering::SeqCst)
    }

    fn check(&self) -> Result<(), KeyError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(KeyError::Unavailable(
                "connection refused (simulated outage)".into(),
            ));
        }
        Ok(())
    }
}

#[async_trait]
impl KeyService for CountingKeys {
    fn provider(&self) -> &'static str {
        self.inner.provider()
    }

    async fn create_tenant_key(&self, tenant: TenantId, slug: &str) -> Result<KeyRef, KeyError> {
        self.check()?;
        self.inner.create_tenant_key(tenant, slug).await
    }

    async fn generate_data_key(
        &self,
        key: &KeyRef,
        context: &EncryptionContext,
    ) -> Result<GeneratedKey, KeyError> {
        self.check()?;
        self.generated.fetch_add(1, Ordering::SeqCst);
        self.inner.generate_data_key(key, context).await
    }

    async fn decrypt_data_key(
        &self,
        key: &KeyRef,
        wrapped: &[u8],
        context: &EncryptionContext,
    ) -> Result<DataKey, KeyError> {
        self.check()?;
        self.decrypted.fetch_add(1, Ordering::SeqCst);
        self.inner.decrypt_data_key(key, wrapped, context).await
    }

    async fn rotate_tenant_key(&self, key: &KeyRef) -> Result<(), KeyError> {
        self.check()?;
        self.inner.rotate_tenant_key(key).await
    }

    async fn rewrap_data_key(
        &self,
        key: &KeyRef,
        wrapped: &[u8],
        context: &EncryptionContext,
    ) -> Result<Vec<u8>, KeyError> {
        self.check()?;
        self.inner.rewrap_data_key(key, wrapped, context).await
    }

    async fn schedule_deletion(
        &self,
        key: &KeyRef,
        window_days: u32,
    ) -> Result<DateTime<Utc>, KeyError> {
        self.check()?;
        self.inner.schedule_deletion(key, window_days).await
    }

    async fn describe(&self, key: &KeyRef) -> Result<KeyState, KeyError> {
        self.check()?;
        self.inner.describe(key).await
    }
}
