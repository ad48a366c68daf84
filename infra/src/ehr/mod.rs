//! The EHR side of the sync: each clinic's connection (its connector settings and a FHIR
//! client kept warm, token and circuit breaker included), the worker every node runs over
//! the shared queue, and the endpoint EHR notifications arrive at.

pub mod notify;
pub mod worker;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use portico_platform::clock::Clock;
use portico_platform::entropy::Entropy;
use portico_platform::ids::TenantId;
use portico_platform::principal::Principal;
use portico_platform::records::sync::Connection;
use portico_platform::records::{EhrClient, EhrConnections, EhrError, ReleasePolicy};
use portico_tenants::{Connector, TenantService};
use tokio::sync::Mutex;

use crate::fhir::client::FhirClient;

/// How long a clinic's connection is reused before its settings are read again, so a
/// changed connector takes effect within this time on every node.
const REFRESH: chrono::Duration = chrono::Duration::seconds(5);
/// The timeout of one request to an EHR.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

#[async_trait]
impl EhrClient for FhirClient {
    async fn search(
        &self,
        resource_type: &str,
        patient: &str,
        since: Option<DateTime<Utc>>,
    ) -> Result<Vec<serde_json::Value>, EhrError> {
        self.patient_resources(resource_type, patient, since)
            .await
            .map_err(|err| EhrError(format!("{resource_type} search: {err}")))
    }

    async fn read(
        &self,
        resource_type: &str,
        id: &str,
    ) -> Result<Option<serde_json::Value>, EhrError> {
        FhirClient::read(self, resource_type, id)
            .await
            .map_err(|err| EhrError(format!("{resource_type} read: {err}")))
    }
}

struct Cached {
    connection: Option<Connection>,
    notification_secret: Option<portico_platform::secret::Secret<String>>,
    read_at: DateTime<Utc>,
}

/// Each clinic's EHR connection, from its connector settings.
#[derive(Clone)]
pub struct Connections {
    tenants: TenantService,
    clock: Arc<dyn Clock>,
    entropy: Arc<dyn Entropy>,
    cache: Arc<Mutex<HashMap<TenantId, Cached>>>,
}

impl std::fmt::Debug for Connections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connections").finish_non_exhaustive()
    }
}

impl Connections {
    /// Connections from the tenants' connector settings.
    pub fn new(tenants: TenantService, clock: Arc<dyn Clock>, entropy: Arc<dyn Entropy>) -> Self {
        Self {
            tenants,
            clock,
            entropy,
            cache: Arc::default(),
        }
    }

    /// The secret a clinic's EHR notifications must carry; `None` without a connector.
    pub async fn notification_secret(
        &self,
        tenant: TenantId,
    ) -> Result<Option<portico_platform::secret::Secret<String>>, EhrError> {
        self.refresh(tenant).await?;
        let cache = self.cache.lock().await;
        Ok(cache
            .get(&tenant)
            .and_then(|cached| cached.notification_secret.clone()))
    }

    async fn refresh(&self, tenant: TenantId) -> Result<(), EhrError> {
        let now = self.clock.now();
        {
            let cache = self.cache.lock().await;
            if cache
                .get(&tenant)
                .is_some_and(|cached| now - cached.read_at < REFRESH)
            {
                return Ok(());
            }
        }
        let connector = self
            .tenants
            .connector(&Principal::System, tenant)
            .await
            .map_err(|err| EhrError(format!("the connector settings cannot be read: {err}")))?;
        let cached = match connector {
            None => Cached {
                connection: None,
                notification_secret: None,
                read_at: now,
            },
            Some(connector) => self.connect_to(connector, now)?,
        };
        self.cache.lock().await.insert(tenant, cached);
        Ok(())
    }

    fn connect_to(&self, connector: Connector, now: DateTime<Utc>) -> Result<Cached, EhrError> {
        let policy = connector.release;
        let poll_interval = Duration::from_secs(u64::from(connector.poll_interval_secs));
        let secret = connector.notification_secret.clone();
        let client = FhirClient::new(
            connector,
            REQUEST_TIMEOUT,
            self.clock.clone(),
            self.entropy.clone(),
        )
        .map_err(|err| EhrError(err.to_string()))?;
        Ok(Cached {
            connection: Some(Connection {
                client: Arc::new(client),
                policy,
                poll_interval,
            }),
            notification_secret: Some(secret),
            read_at: now,
        })
    }
}

#[async_trait]
impl EhrConnections for Connections {
    async fn connect(&self, tenant: TenantId) -> Result<Option<Connection>, EhrError> {
        self.refresh(tenant).await?;
        let cache = self.cache.lock().await;
        Ok(cache
            .get(&tenant)
            .and_then(|cached| cached.connection.clone()))
    }

    async fn release_policy(&self, tenant: TenantId) -> ReleasePolicy {
        match self.connect(tenant).await {
            Ok(Some(connection)) => connection.policy,
            _ => ReleasePolicy::default(),
        }
    }
}
