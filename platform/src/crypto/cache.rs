//! Unwrapped data keys kept in memory for a bounded time, number of seals and count, so the
//! key service is asked once per data key rather than once per row.
//!
//! A sealing key is retired after `max_seals` seals (far below the 2^32 random-nonce bound
//! of AES-GCM) or `max_age`, whichever comes first; it stays usable for opening until
//! `max_age`. Each sealing key is made for one cache entry and never reloaded for sealing,
//! so no data key is ever used for more than `max_seals` seals in all. Keys are wiped from
//! memory when evicted.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, Duration, Utc};

use crate::crypto::seal::Cipher;
use crate::ids::{DataKeyId, TenantId};

/// Bounds on what the cache keeps.
#[derive(Debug, Clone, Copy)]
pub struct CacheLimits {
    /// Longest an unwrapped key stays in memory.
    pub max_age: Duration,
    /// Most values sealed with one data key.
    pub max_seals: u64,
    /// Most keys held at once.
    pub max_entries: usize,
}

impl Default for CacheLimits {
    fn default() -> Self {
        Self {
            max_age: Duration::minutes(5),
            max_seals: 1 << 24,
            max_entries: 10_000,
        }
    }
}

#[derive(Debug)]
struct Entry {
    cipher: Arc<Cipher>,
    loaded_at: DateTime<Utc>,
}

#[derive(Debug)]
struct Sealing {
    id: DataKeyId,
    seals: u64,
}

#[derive(Debug, Default)]
struct Inner {
    keys: HashMap<(TenantId, DataKeyId), Entry>,
    sealing: HashMap<TenantId, Sealing>,
}

/// The data-key cache.
#[derive(Debug, Default)]
pub struct DataKeyCache {
    limits: CacheLimits,
    inner: Mutex<Inner>,
}

impl DataKeyCache {
    /// An empty cache with these limits.
    pub fn new(limits: CacheLimits) -> Self {
        Self {
            limits,
            inner: Mutex::default(),
        }
    }

    /// The key `id` of `tenant`, if held and not too old.
    pub fn get(&self, tenant: TenantId, id: DataKeyId, now: DateTime<Utc>) -> Option<Arc<Cipher>> {
        let mut inner = self.lock();
        let fresh = inner
            .keys
            .get(&(tenant, id))
            .is_some_and(|e| now - e.loaded_at < self.limits.max_age);
        if !fresh {
            inner.keys.remove(&(tenant, id));
            return None;
        }
        inner
            .keys
            .get(&(tenant, id))
            .map(|entry| entry.cipher.clone())
    }

    /// The tenant's current sealing key, counting one seal against it; `None` when there is
    /// none or it is spent, and a new one must be made.
    pub fn take_sealing_key(
        &self,
        tenant: TenantId,
        now: DateTime<Utc>,
    ) -> Option<(DataKeyId, Arc<Cipher>)> {
        // One lock for the whole decision: this is on every seal.
        let mut guard = self.lock();
        let inner = &mut *guard;
        let sealing = inner.sealing.get_mut(&tenant)?;
        let cipher = inner
            .keys
            .get(&(tenant, sealing.id))
            .filter(|entry| now - entry.loaded_at < self.limits.max_age)
            .map(|entry| entry.cipher.clone());
        match cipher {
            Some(cipher) if sealing.seals < self.limits.max_seals => {
                sealing.seals += 1;
                Some((sealing.id, cipher))
            }
            // Spent or expired: a new key must be made. An expired entry stays until a
            // lookup or eviction removes it.
            _ => {
                inner.sealing.remove(&tenant);
                None
            }
        }
    }

    /// Holds an unwrapped key; `for_sealing` makes it the tenant's sealing key (with one
    /// seal already counted).
    pub fn insert(
        &self,
        tenant: TenantId,
        id: DataKeyId,
        cipher: Arc<Cipher>,
        now: DateTime<Utc>,
        for_sealing: bool,
    ) {
        let mut inner = self.lock();
        if inner.keys.len() >= self.limits.max_entries
            && let Some(oldest) = inner
                .keys
                .iter()
                .min_by_key(|(_, e)| e.loaded_at)
                .map(|(k, _)| *k)
        {
            inner.keys.remove(&oldest);
            if inner
                .sealing
                .get(&oldest.0)
                .is_some_and(|s| s.id == oldest.1)
            {
                inner.sealing.remove(&oldest.0);
            }
        }
        inner.keys.insert(
            (tenant, id),
            Entry {
                cipher,
                loaded_at: now,
            },
        );
        if for_sealing {
            inner.sealing.insert(tenant, Sealing { id, seals: 1 });
        }
    }

    /// Drops every key of one tenant (on offboarding).
    pub fn forget_tenant(&self, tenant: TenantId) {
        let mut inner = self.lock();
        inner.keys.retain(|(owner, _), _| *owner != tenant);
        inner.sealing.remove(&tenant);
    }

    /// How many keys are held.
    pub fn len(&self) -> usize {
        self.lock().keys.len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::keys::DataKey;

    fn t(n: u8) -> TenantId {
        TenantId::from_uuid(uuid::Uuid::from_bytes([n; 16]))
    }

    fn k(n: u8) -> DataKeyId {
        DataKeyId::from_uuid(uuid::Uuid::from_bytes([n; 16]))
    }

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
    }

    #[test]
    fn a_key_expires_after_its_maximum_age() {
        let cache = DataKeyCache::new(CacheLimits {
            max_age: Duration::seconds(300),
            ..Default::default()
        });
        cache.insert(
            t(1),
            k(1),
            Arc::new(Cipher::new(&DataKey::from_bytes([1; 32]))),
            at(0),
            false,
        );

        assert!(cache.get(t(1), k(1), at(299)).is_some());
        assert!(cache.get(t(1), k(1), at(300)).is_none());
        assert!(cache.is_empty());
    }

    #[test]
    fn a_sealing_key_is_retired_after_its_maximum_seals_but_still_opens() {
        let cache = DataKeyCache::new(CacheLimits {
            max_seals: 3,
            ..Default::default()
        });
        cache.insert(
            t(1),
            k(1),
            Arc::new(Cipher::new(&DataKey::from_bytes([1; 32]))),
            at(0),
            true,
        );

        assert!(cache.take_sealing_key(t(1), at(1)).is_some());
        assert!(cache.take_sealing_key(t(1), at(1)).is_some());
        assert!(
            cache.take_sealing_key(t(1), at(1)).is_none(),
            "a fourth seal was allowed"
        );
        assert!(cache.get(t(1), k(1), at(1)).is_some());
    }

    #[test]
    fn the_cache_is_bounded_and_evicts_the_oldest() {
        let cache = DataKeyCache::new(CacheLimits {
            max_entries: 2,
            ..Default::default()
        });
        cache.insert(
            t(1),
            k(1),
            Arc::new(Cipher::new(&DataKey::from_bytes([1; 32]))),
            at(0),
            false,
        );
        cache.insert(
            t(1),
            k(2),
            Arc::new(Cipher::new(&DataKey::from_bytes([2; 32]))),
            at(1),
            false,
        );
        cache.insert(
            t(1),
            k(3),
            Arc::new(Cipher::new(&DataKey::from_bytes([3; 32]))),
            at(2),
            false,
        );

        assert_eq!(cache.len(), 2);
        assert!(cache.get(t(1), k(1), at(3)).is_none());
        assert!(cache.get(t(1), k(3), at(3)).is_some());
    }

    #[test]
    fn keys_are_per_tenant_and_can_be_forgotten() {
        let cache = DataKeyCache::default();
        cache.insert(
            t(1),
            k(1),
            Arc::new(Cipher::new(&DataKey::from_bytes([1; 32]))),
            at(0),
            true,
        );

        assert!(cache.get(t(2), k(1), at(1)).is_none());
        cache.forget_tenant(t(1));
        assert!(cache.take_sealing_key(t(1), at(1)).is_none());
        assert!(cache.is_empty());
    }
}
