//! Finding the tenant a request is for, from its host or its `/t/<slug>/` path.
//!
//! Answers (including "no such tenant") are cached for `ttl`, so a flood of requests costs
//! one registry read per host per `ttl`. A change made through the same [`TenantService`]
//! empties the cache at once; a change made elsewhere (the CLI, another node) is seen
//! within `ttl`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, Duration, Utc};
use portico_platform::clock::Clock;

use crate::{DomainName, Tenant, TenantError, TenantService, TenantStatus};

/// At most this many hosts are cached; past it the cache starts over. Bounds memory against
/// requests with random `Host` headers.
const MAX_ENTRIES: usize = 10_000;

/// What a request's address says about its tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// An active tenant.
    Active(Tenant),
    /// A tenant whose portal is closed for now.
    Suspended(Tenant),
    /// No tenant: unknown, offboarded, or the platform's own host.
    NotFound,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Slug(String),
    Domain(DomainName),
}

/// Resolves hosts and slugs to tenants, with a bounded-age cache.
#[derive(Debug, Clone)]
pub struct TenantResolver {
    service: TenantService,
    base_domain: DomainName,
    ttl: Duration,
    clock: Arc<dyn Clock>,
    cache: Arc<Mutex<HashMap<Key, Cached>>>,
    /// The service's generation the cache was filled at.
    generation: Arc<AtomicU64>,
}

/// When an answer was looked up, and what it was.
type Cached = (DateTime<Utc>, Option<Tenant>);

impl TenantResolver {
    /// A resolver for tenants served at `<slug>.<base_domain>` and their custom domains.
    pub fn new(
        service: TenantService,
        base_domain: DomainName,
        ttl: Duration,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            service,
            base_domain,
            ttl,
            clock,
            cache: Arc::default(),
            generation: Arc::default(),
        }
    }

    /// The domain whose single-label subdomains are tenant portals.
    pub fn base_domain(&self) -> &DomainName {
        &self.base_domain
    }

    /// The tenant served at `host`: `<slug>.<base_domain>` or a verified custom domain.
    pub async fn resolve_host(&self, host: &DomainName) -> Result<Resolution, TenantError> {
        if host == &self.base_domain {
            return Ok(Resolution::NotFound);
        }
        let key = match host.label_under(&self.base_domain) {
            Some(label) => Key::Slug(label.to_owned()),
            None => Key::Domain(host.clone()),
        };

        self.resolve(key).await
    }

    /// The tenant with this slug, for the `/t/<slug>/` path fallback.
    pub async fn resolve_slug(&self, slug: &str) -> Result<Resolution, TenantError> {
        self.resolve(Key::Slug(slug.to_owned())).await
    }

    /// Forgets every cached answer.
    pub fn invalidate(&self) {
        self.cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    async fn resolve(&self, key: Key) -> Result<Resolution, TenantError> {
        let current = self.service.generation();
        if self.generation.swap(current, Ordering::AcqRel) != current {
            self.invalidate();
        }
        let now = self.clock.now();
        let cached = self
            .cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
            .filter(|(at, _)| now - *at < self.ttl)
            .map(|(_, tenant)| tenant.clone());
        let tenant = match cached {
            Some(tenant) => tenant,
            None => {
                let tenant = match &key {
                    Key::Slug(slug) => self.service.by_slug(slug).await?,
                    Key::Domain(domain) => self.service.by_domain(domain).await?,
                };
                let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
                if cache.len() >= MAX_ENTRIES {
                    cache.clear();
                }
                cache.insert(key, (now, tenant.clone()));
                tenant
            }
        };

        Ok(match tenant {
            Some(tenant) if tenant.status == TenantStatus::Active => Resolution::Active(tenant),
            Some(tenant) if tenant.status == TenantStatus::Suspended => {
                Resolution::Suspended(tenant)
            }
            _ => Resolution::NotFound,
        })
    }
}
