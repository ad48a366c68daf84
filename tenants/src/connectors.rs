//! Setting and reading a clinic's EHR connector.

use portico_platform::audit::{Action, Actor, AuditError, NewEvent, Purpose};
use portico_platform::crypto::seal::Place;
use portico_platform::db::DbError;
use portico_platform::ids::TenantId;
use portico_platform::principal::Principal;
use sea_orm::ActiveValue::Set;
use sea_orm::EntityTrait;
use sea_orm::sea_query::OnConflict;

use crate::connector::Connector;
use crate::entity::tenant_connectors;
use crate::{TenantError, TenantService};

fn place(tenant: TenantId, row: &str) -> Place<'_> {
    Place {
        tenant,
        table: "tenant_connectors",
        column: "config",
        row,
    }
}

impl TenantService {
    /// Sets (or replaces) a clinic's EHR connector, checked, sealed and audited. Operators
    /// only, until the clinic console lets a clinic admin do it.
    pub async fn set_connector(
        &self,
        actor: &Principal,
        tenant: TenantId,
        connector: &Connector,
    ) -> Result<(), TenantError> {
        if !matches!(actor, Principal::Operator) {
            return Err(TenantError::Forbidden);
        }
        connector
            .validate()
            .map_err(TenantError::InvalidConnector)?;
        let row = tenant.to_string();
        // Sealed before the write transaction: sealing may make a data key in its own.
        let sealing = self.db.begin(tenant).await?;
        let sealed = self
            .vault
            .seal(
                &sealing,
                &place(tenant, &row),
                &connector
                    .to_stored()
                    .map_err(|_| TenantError::InvalidState("the connector cannot be stored"))?,
            )
            .await?;
        sealing.commit().await?;

        let now = self.clock.now();
        let tx = self.db.begin_serialized(tenant).await?;
        tenant_connectors::Entity::insert(tenant_connectors::ActiveModel {
            tenant_id: Set(tenant.as_uuid()),
            vendor: Set(connector.vendor.code().to_owned()),
            base_url: Set(connector.base_url.to_string()),
            config: Set(sealed),
            created_at: Set(now),
            updated_at: Set(now),
        })
        .on_conflict(
            OnConflict::column(tenant_connectors::Column::TenantId)
                .update_columns([
                    tenant_connectors::Column::Vendor,
                    tenant_connectors::Column::BaseUrl,
                    tenant_connectors::Column::Config,
                    tenant_connectors::Column::UpdatedAt,
                ])
                .to_owned(),
        )
        .exec(tx.conn())
        .await
        .map_err(DbError::from)?;
        let event = NewEvent::new(
            Actor::operator(),
            Action::Update,
            "Endpoint",
            Purpose::Operations,
        )
        .and_then(|event| event.resource(&row))
        .map_err(AuditError::from)?;
        self.audit.append(&tx, &[event]).await?;
        tx.commit().await?;
        tracing::info!(tenant.id = %tenant, vendor = connector.vendor.code(), "EHR connector set");

        Ok(())
    }

    /// A clinic's EHR connector with its secrets, for the operator's tools and Portico's
    /// own sync; `None` if it has none.
    pub async fn connector(
        &self,
        actor: &Principal,
        tenant: TenantId,
    ) -> Result<Option<Connector>, TenantError> {
        if !matches!(actor, Principal::Operator | Principal::System) {
            return Err(TenantError::Forbidden);
        }
        let tx = self.db.begin(tenant).await?;
        let row = tx
            .find::<tenant_connectors::Entity>()
            .one(tx.conn())
            .await
            .map_err(DbError::from)?;
        let Some(row) = row else {
            tx.commit().await?;
            return Ok(None);
        };
        let opened = self
            .vault
            .open(&tx, &place(tenant, &tenant.to_string()), &row.config)
            .await?;
        tx.commit().await?;
        Connector::from_stored(&opened)
            .map(Some)
            .ok_or(TenantError::InvalidState(
                "the stored connector cannot be read",
            ))
    }
}
