//! A key service wrapper for tests and benchmarks: counts data-key calls, and can be
//! switched off to act out an outage.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use portico_platform::crypto::keys::{
    DataKey, EncryptionContext, GeneratedKey, KeyError, KeyRef, KeyService, KeyState,
};
use portico_platform::ids::TenantId;

/// Wraps the real key service: counts data-key calls, and can be switched off to act as an
/// outage.
#[derive(Debug)]
pub struct CountingKeys {
    inner: Arc<dyn KeyService>,
    /// `GenerateDataKey` calls so far.
    pub generated: AtomicUsize,
    /// `Decrypt` calls so far.
    pub decrypted: AtomicUsize,
    down: AtomicBool,
}

impl CountingKeys {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn KeyService>) -> Self {
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

    async fn create_mac_key(&self, name: &str) -> Result<KeyRef, KeyError> {
        self.check()?;
        self.inner.create_mac_key(name).await
    }

    async fn generate_mac(&self, key: &KeyRef, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        self.check()?;
        self.inner.generate_mac(key, message).await
    }

    async fn verify_mac(&self, key: &KeyRef, message: &[u8], mac: &[u8]) -> Result<bool, KeyError> {
        self.check()?;
        self.inner.verify_mac(key, message, mac).await
    }
}
