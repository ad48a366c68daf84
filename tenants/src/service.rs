//! The tenant registry: creating clinics and moving them between active and suspended.

#![allow(
    clippy::disallowed_methods,
    reason = "`tenants` and `tenant_domains` are the platform's registry, not tenant-owned; \
              tenant-owned tables here still go through TenantTx"
)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use portico_platform::audit::{Action, Actor, AuditError, AuditTrail, NewEvent, Purpose};
use portico_platform::clock::Clock;
use portico_platform::crypto::keys::KeyRef;
use portico_platform::crypto::vault::Vault;
use portico_platform::db::{Db, DbError};
use portico_platform::entropy::Entropy;
use portico_platform::identity::provider::{Directory, IdentityProvider, record_directory};
use portico_platform::ids::TenantId;
use portico_platform::principal::Principal;
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use serde::Serialize;

use crate::entity::{tenant_domains, tenant_settings, tenants};
use crate::{DomainName, TenantError, TenantSlug};

/// Where a tenant is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TenantStatus {
    /// Serving its portal.
    Active,
    /// Portal closed by the operator; data kept; can be resumed.
    Suspended,
    /// Gone for good; its portal is not found.
    Offboarded,
}

impl TenantStatus {
    /// The status as stored and shown: `active`, `suspended` or `offboarded`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Suspended => "suspended",
            Self::Offboarded => "offboarded",
        }
    }

    fn from_db(value: &str) -> Result<Self, TenantError> {
        match value {
            "active" => Ok(Self::Active),
            "suspended" => Ok(Self::Suspended),
            "offboarded" => Ok(Self::Offboarded),
            // The table's CHECK constraint makes this unreachable short of manual edits.
            _ => Err(TenantError::InvalidState(
                "unknown tenant status in the database",
            )),
        }
    }
}

/// A clinic, as the registry knows it. Holds no PHI.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Tenant {
    /// Its id, the `tenant_id` of every row it owns.
    pub id: TenantId,
    /// Its short name, the first label of its portal's host.
    pub slug: TenantSlug,
    /// The name patients see.
    pub display_name: String,
    /// Where it is in its life.
    pub status: TenantStatus,
    /// Its verified custom domains.
    pub domains: Vec<DomainName>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When its registry entry last changed.
    pub updated_at: DateTime<Utc>,
}

/// What it takes to create a tenant.
#[derive(Debug, Clone)]
pub struct NewTenant {
    /// Its short name.
    pub slug: TenantSlug,
    /// The name patients will see.
    pub display_name: String,
    /// Custom domains, verified by the operator who adds them.
    pub domains: Vec<DomainName>,
}

/// A clinic's own settings, kept in a tenant-owned table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantSettings {
    /// The language the portal opens in when the browser does not say (BCP 47).
    pub default_locale: String,
}

const MAX_DISPLAY_NAME_CHARS: usize = 200;

/// Creates, lists, suspends and resumes tenants.
#[derive(Debug, Clone)]
pub struct TenantService {
    pub(crate) db: Db,
    pub(crate) vault: Vault,
    /// Each tenant's lifecycle (created, suspended, resumed, offboarded) is recorded in its
    /// own audit chain, in the same transaction as the change.
    pub(crate) audit: AuditTrail,
    pub(crate) clock: Arc<dyn Clock>,
    entropy: Arc<dyn Entropy>,
    /// Sets up each new tenant's user directory (a Cognito user pool); none with the
    /// embedded provider.
    identity: Option<Arc<dyn IdentityProvider>>,
    /// Bumped on every change this process makes, so resolvers built on this service
    /// drop their cached answers at once.
    generation: Arc<AtomicU64>,
}

impl TenantService {
    /// A registry over `db`, provisioning each tenant's key through `vault`.
    pub fn new(db: Db, vault: Vault, clock: Arc<dyn Clock>, entropy: Arc<dyn Entropy>) -> Self {
        Self {
            audit: AuditTrail::new(db.clone(), clock.clone()),
            db,
            vault,
            clock,
            entropy,
            identity: None,
            generation: Arc::default(),
        }
    }

    /// The same registry, provisioning each new tenant's user directory with `provider`.
    #[must_use]
    pub fn with_identity_provider(mut self, provider: Arc<dyn IdentityProvider>) -> Self {
        self.identity = Some(provider);
        self
    }

    /// Creates a tenant with its settings, all or nothing.
    #[tracing::instrument(skip_all, fields(tenant.slug = %new.slug))]
    pub async fn create(&self, actor: &Principal, new: NewTenant) -> Result<Tenant, TenantError> {
        require_operator(actor)?;
        let display_name = parse_display_name(&new.display_name)?;
        self.check_available(&new).await?;
        let id = TenantId::generate(self.clock.as_ref(), self.entropy.as_ref());
        let now = self.clock.now();

        // The key first: it lives outside the database, so it cannot join the transaction.
        // If the transaction then fails, the orphaned key is scheduled for deletion.
        let key = self
            .vault
            .key_service()
            .create_tenant_key(id, new.slug.as_str())
            .await
            .map_err(TenantError::KeyService)?;
        // Then the user directory, for the same reason; if it fails, so does the creation.
        let directory = match &self.identity {
            Some(provider) => match provider.provision(id, new.slug.as_str()).await {
                Ok(directory) => directory,
                Err(err) => {
                    self.discard_key(id, &key).await;
                    return Err(TenantError::Identity(err));
                }
            },
            None => None,
        };
        let written = self
            .insert(
                actor,
                id,
                &new,
                &display_name,
                &key,
                directory.as_ref(),
                now,
            )
            .await;
        if let Err(err) = written {
            self.discard_key(id, &key).await;
            if let (Some(provider), Some(directory)) = (&self.identity, &directory)
                && let Err(cleanup) = provider.deprovision(directory).await
            {
                tracing::warn!(tenant.id = %id, error = %cleanup, "could not remove an orphaned user directory");
            }
            return Err(err);
        }
        self.changed();
        tracing::info!(tenant.id = %id, "tenant created");

        Ok(Tenant {
            id,
            slug: new.slug,
            display_name,
            status: TenantStatus::Active,
            domains: new.domains,
            created_at: now,
            updated_at: now,
        })
    }

    /// Schedules the key of a tenant that could not be created for deletion.
    async fn discard_key(&self, id: TenantId, key: &KeyRef) {
        if let Err(cleanup) = self.vault.key_service().schedule_deletion(key, 7).await {
            tracing::warn!(tenant.id = %id, error = %cleanup, "could not schedule an orphaned tenant key for deletion");
        }
    }

    /// Refuses a slug or domain another tenant has, before anything is provisioned.
    async fn check_available(&self, new: &NewTenant) -> Result<(), TenantError> {
        let conn = self.db.platform();
        let taken = tenants::Entity::find()
            .filter(tenants::Column::Slug.eq(new.slug.as_str()))
            .one(conn)
            .await
            .map_err(DbError::from)?;
        if taken.is_some() {
            return Err(TenantError::SlugTaken(new.slug.to_string()));
        }
        for domain in &new.domains {
            let taken = tenant_domains::Entity::find_by_id(domain.as_str())
                .one(conn)
                .await
                .map_err(DbError::from)?;
            if taken.is_some() {
                return Err(TenantError::DomainTaken(domain.to_string()));
            }
        }

        Ok(())
    }

    /// Writes the tenant, its domains, settings, key reference and user directory: all or
    /// nothing.
    #[allow(
        clippy::too_many_arguments,
        reason = "one private call site, each argument a part of the tenant"
    )]
    async fn insert(
        &self,
        actor: &Principal,
        id: TenantId,
        new: &NewTenant,
        display_name: &str,
        key: &KeyRef,
        directory: Option<&Directory>,
        now: DateTime<Utc>,
    ) -> Result<(), TenantError> {
        // Scoped to the new tenant so its tenant-owned rows pass the row-level security
        // check. The unique constraints catch a tenant created concurrently.
        let tx = self.db.begin(id).await?;
        let row = tenants::ActiveModel {
            id: Set(id.as_uuid()),
            slug: Set(new.slug.to_string()),
            display_name: Set(display_name.to_owned()),
            status: Set(TenantStatus::Active.as_str().to_owned()),
            created_at: Set(now),
            updated_at: Set(now),
        };
        tenants::Entity::insert(row)
            .exec(tx.conn())
            .await
            .map_err(conflict_as_slug(&new.slug))?;
        for domain in &new.domains {
            let row = tenant_domains::ActiveModel {
                domain: Set(domain.to_string()),
                tenant_id: Set(id.as_uuid()),
                verified_at: Set(Some(now)),
                created_at: Set(now),
            };
            tenant_domains::Entity::insert(row)
                .exec(tx.conn())
                .await
                .map_err(|err| match DbError::from(err) {
                    DbError::Conflict(_) => TenantError::DomainTaken(domain.to_string()),
                    other => other.into(),
                })?;
        }
        tx.insert(tenant_settings::ActiveModel {
            default_locale: Set("en".to_owned()),
            created_at: Set(now),
            updated_at: Set(now),
            ..Default::default()
        })
        .await?;
        self.vault.register_tenant_key(&tx, key).await?;
        if let Some(directory) = directory {
            record_directory(&tx, directory, now).await?;
        }
        self.audit
            .append(&tx, &[lifecycle_event(actor, id, Action::Create)?])
            .await?;
        tx.commit().await?;

        Ok(())
    }

    /// Every tenant, by slug.
    pub async fn list(&self, actor: &Principal) -> Result<Vec<Tenant>, TenantError> {
        require_operator(actor)?;
        let conn = self.db.platform();
        let rows = tenants::Entity::find()
            .order_by_asc(tenants::Column::Slug)
            .all(conn)
            .await
            .map_err(DbError::from)?;
        let mut domains: BTreeMap<_, Vec<DomainName>> = BTreeMap::new();
        for row in tenant_domains::Entity::find()
            .filter(tenant_domains::Column::VerifiedAt.is_not_null())
            .order_by_asc(tenant_domains::Column::Domain)
            .all(conn)
            .await
            .map_err(DbError::from)?
        {
            domains
                .entry(row.tenant_id)
                .or_default()
                .push(stored_domain(&row.domain)?);
        }

        rows.into_iter()
            .map(|row| {
                let domains = domains.remove(&row.id).unwrap_or_default();
                to_tenant(row, domains)
            })
            .collect()
    }

    /// One tenant, for operators.
    pub async fn get(&self, actor: &Principal, slug: &TenantSlug) -> Result<Tenant, TenantError> {
        require_operator(actor)?;
        self.by_slug(slug.as_str())
            .await?
            .ok_or(TenantError::NotFound)
    }

    /// Offboards a tenant for good: its portal is gone and its key is scheduled for
    /// deletion after `window_days` (7–30), after which its PHI is unrecoverable anywhere
    /// (crypto-shredding). Portico refuses to open its data from this moment on.
    #[tracing::instrument(skip_all, fields(tenant.slug = %slug))]
    pub async fn offboard(
        &self,
        actor: &Principal,
        slug: &TenantSlug,
        window_days: u32,
    ) -> Result<Tenant, TenantError> {
        require_operator(actor)?;
        let mut tenant = self
            .by_slug(slug.as_str())
            .await?
            .ok_or(TenantError::NotFound)?;
        if tenant.status == TenantStatus::Offboarded {
            return Err(TenantError::InvalidState(
                "the tenant has already been offboarded",
            ));
        }

        // The key first: once it is scheduled for deletion the data is as good as gone, and
        // an offboarding interrupted after it is completed by running it again.
        self.vault
            .destroy_tenant_key(tenant.id, window_days)
            .await?;
        self.write_status(actor, &mut tenant, TenantStatus::Offboarded)
            .await?;

        Ok(tenant)
    }

    /// Closes a tenant's portal; its data stays. Suspending twice is not an error.
    pub async fn suspend(
        &self,
        actor: &Principal,
        slug: &TenantSlug,
    ) -> Result<Tenant, TenantError> {
        self.set_status(actor, slug, TenantStatus::Suspended).await
    }

    /// Reopens a suspended tenant's portal. Resuming an active tenant is not an error.
    pub async fn resume(
        &self,
        actor: &Principal,
        slug: &TenantSlug,
    ) -> Result<Tenant, TenantError> {
        self.set_status(actor, slug, TenantStatus::Active).await
    }

    /// A tenant's own settings, read through its tenant-scoped transaction.
    pub async fn settings(
        &self,
        _actor: &Principal,
        tenant: TenantId,
    ) -> Result<TenantSettings, TenantError> {
        // Settings hold no PHI: anyone who reached this tenant's portal may read them.
        let tx = self.db.begin(tenant).await?;
        let row = tx
            .find::<tenant_settings::Entity>()
            .one(tx.conn())
            .await
            .map_err(DbError::from)?
            .ok_or(TenantError::NotFound)?;
        tx.commit().await?;

        Ok(TenantSettings {
            default_locale: row.default_locale,
        })
    }

    /// How many changes this process has made to the registry.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    fn changed(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// The tenant with this slug, whatever its status. For resolving requests.
    pub(crate) async fn by_slug(&self, slug: &str) -> Result<Option<Tenant>, TenantError> {
        let conn = self.db.platform();
        let Some(row) = tenants::Entity::find()
            .filter(tenants::Column::Slug.eq(slug))
            .one(conn)
            .await
            .map_err(DbError::from)?
        else {
            return Ok(None);
        };
        let domains = self.domains_of(row.id).await?;

        to_tenant(row, domains).map(Some)
    }

    /// The tenant that has verified this custom domain. For resolving requests.
    pub(crate) async fn by_domain(
        &self,
        domain: &DomainName,
    ) -> Result<Option<Tenant>, TenantError> {
        let conn = self.db.platform();
        let Some(link) = tenant_domains::Entity::find_by_id(domain.as_str())
            .filter(tenant_domains::Column::VerifiedAt.is_not_null())
            .one(conn)
            .await
            .map_err(DbError::from)?
        else {
            return Ok(None);
        };
        let Some(row) = tenants::Entity::find_by_id(link.tenant_id)
            .one(conn)
            .await
            .map_err(DbError::from)?
        else {
            return Ok(None);
        };
        let domains = self.domains_of(row.id).await?;

        to_tenant(row, domains).map(Some)
    }

    async fn domains_of(&self, tenant: uuid::Uuid) -> Result<Vec<DomainName>, TenantError> {
        tenant_domains::Entity::find()
            .filter(tenant_domains::Column::TenantId.eq(tenant))
            .filter(tenant_domains::Column::VerifiedAt.is_not_null())
            .order_by_asc(tenant_domains::Column::Domain)
            .all(self.db.platform())
            .await
            .map_err(DbError::from)?
            .iter()
            .map(|row| stored_domain(&row.domain))
            .collect()
    }

    #[tracing::instrument(skip_all, fields(tenant.slug = %slug, tenant.status = ?status))]
    async fn set_status(
        &self,
        actor: &Principal,
        slug: &TenantSlug,
        status: TenantStatus,
    ) -> Result<Tenant, TenantError> {
        require_operator(actor)?;
        let mut tenant = self
            .by_slug(slug.as_str())
            .await?
            .ok_or(TenantError::NotFound)?;
        if tenant.status == TenantStatus::Offboarded {
            return Err(TenantError::InvalidState("the tenant has been offboarded"));
        }
        if tenant.status == status {
            return Ok(tenant);
        }

        self.write_status(actor, &mut tenant, status).await?;

        Ok(tenant)
    }

    /// Records a tenant's new status, with its audit event, and tells resolvers in this
    /// process.
    async fn write_status(
        &self,
        actor: &Principal,
        tenant: &mut Tenant,
        status: TenantStatus,
    ) -> Result<(), TenantError> {
        let now = self.clock.now();
        let tx = self.db.begin_serialized(tenant.id).await?;
        tenants::Entity::update_many()
            .col_expr(tenants::Column::Status, status.as_str().into())
            .col_expr(tenants::Column::UpdatedAt, now.into())
            .filter(tenants::Column::Id.eq(tenant.id.as_uuid()))
            .exec(tx.conn())
            .await
            .map_err(DbError::from)?;
        self.audit
            .append(&tx, &[lifecycle_event(actor, tenant.id, Action::Update)?])
            .await?;
        tx.commit().await?;
        self.changed();
        tracing::info!(tenant.id = %tenant.id, tenant.status = status.as_str(), "tenant status changed");
        tenant.status = status;
        tenant.updated_at = now;

        Ok(())
    }
}

/// The audit event for a change to the tenant itself, by an operator or by Portico.
fn lifecycle_event(
    actor: &Principal,
    tenant: TenantId,
    action: Action,
) -> Result<NewEvent, TenantError> {
    let actor = match actor {
        Principal::Operator => Actor::operator(),
        _ => Actor::system(),
    };
    let event = NewEvent::new(actor, action, "Organization", Purpose::Operations)
        .and_then(|event| event.resource(&tenant.to_string()))
        .map_err(AuditError::from)?;

    Ok(event)
}

/// Only the vendor's operators and Portico itself manage the registry.
fn require_operator(actor: &Principal) -> Result<(), TenantError> {
    match actor {
        Principal::Operator | Principal::System => Ok(()),
        Principal::Anonymous { .. } | Principal::Patient { .. } | Principal::Staff { .. } => {
            Err(TenantError::Forbidden)
        }
    }
}

fn parse_display_name(name: &str) -> Result<String, TenantError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(TenantError::InvalidName("must not be empty"));
    }
    if name.chars().count() > MAX_DISPLAY_NAME_CHARS {
        return Err(TenantError::InvalidName("must be at most 200 characters"));
    }
    if name.chars().any(char::is_control) {
        return Err(TenantError::InvalidName(
            "must not contain control characters",
        ));
    }

    Ok(name.to_owned())
}

fn conflict_as_slug(slug: &TenantSlug) -> impl FnOnce(sea_orm::DbErr) -> TenantError + '_ {
    move |err| match DbError::from(err) {
        DbError::Conflict(_) => TenantError::SlugTaken(slug.to_string()),
        other => other.into(),
    }
}

fn stored_domain(value: &str) -> Result<DomainName, TenantError> {
    value
        .parse()
        .map_err(|_| TenantError::InvalidState("invalid domain in the database"))
}

fn to_tenant(row: tenants::Model, domains: Vec<DomainName>) -> Result<Tenant, TenantError> {
    Ok(Tenant {
        id: TenantId::from_uuid(row.id),
        slug: TenantSlug::from_stored(row.slug),
        display_name: row.display_name,
        status: TenantStatus::from_db(&row.status)?,
        domains,
        created_at: row.created_at,
        updated_at: row.updated_at,
    })
}
