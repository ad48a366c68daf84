//! Setting and reading a clinic's branding.

use portico_platform::audit::{Action, Actor, ActorKind, AuditError, NewEvent, Purpose};
use portico_platform::db::DbError;
use portico_platform::identity::role::Role;
use portico_platform::ids::TenantId;
use portico_platform::principal::Principal;
use sea_orm::ActiveValue::Set;
use sea_orm::EntityTrait;
use sea_orm::sea_query::OnConflict;

use crate::branding::{Branding, Logo};
use crate::entity::tenant_branding;
use crate::{TenantError, TenantService};

impl TenantService {
    /// Sets a clinic's branding, checked (WCAG AA contrast among the rest) and audited. The
    /// operator, or the clinic's own admin. Takes effect on the next page: nothing is
    /// rebuilt or restarted.
    pub async fn set_branding(
        &self,
        actor: &Principal,
        tenant: TenantId,
        branding: &Branding,
    ) -> Result<(), TenantError> {
        let who = match actor {
            Principal::Operator => Actor::operator(),
            Principal::Staff {
                tenant: own,
                account,
                role: Role::TenantAdmin,
                ..
            } if *own == tenant => {
                Actor::new(ActorKind::Staff, account.to_string()).map_err(AuditError::from)?
            }
            _ => return Err(TenantError::Forbidden),
        };
        branding.validate().map_err(TenantError::InvalidBranding)?;
        let now = self.clock.now();
        let tx = self.db.begin_serialized(tenant).await?;
        tenant_branding::Entity::insert(tenant_branding::ActiveModel {
            tenant_id: Set(tenant.as_uuid()),
            primary_color: Set(branding.primary.to_string()),
            accent_color: Set(branding.accent.to_string()),
            support_phone: Set(branding.support_phone.clone()),
            support_hours: Set(branding.support_hours.clone()),
            logo_type: Set(branding
                .logo
                .as_ref()
                .map(|logo| logo.content_type.to_owned())),
            logo: Set(branding.logo.as_ref().map(|logo| logo.bytes.clone())),
            updated_at: Set(now),
        })
        .on_conflict(
            OnConflict::column(tenant_branding::Column::TenantId)
                .update_columns([
                    tenant_branding::Column::PrimaryColor,
                    tenant_branding::Column::AccentColor,
                    tenant_branding::Column::SupportPhone,
                    tenant_branding::Column::SupportHours,
                    tenant_branding::Column::LogoType,
                    tenant_branding::Column::Logo,
                    tenant_branding::Column::UpdatedAt,
                ])
                .to_owned(),
        )
        .exec(tx.conn())
        .await
        .map_err(DbError::from)?;
        let event = NewEvent::new(who, Action::Update, "Organization", Purpose::Operations)
            .and_then(|event| event.resource(&tenant.to_string()))
            .map_err(AuditError::from)?;
        self.audit.append(&tx, &[event]).await?;
        tx.commit().await?;
        tracing::info!(tenant.id = %tenant, "branding set");

        Ok(())
    }

    /// A clinic's branding: Portico's own until the clinic sets one. Not PHI: anyone who
    /// reached the clinic's portal may read it.
    pub async fn branding(&self, tenant: TenantId) -> Result<Branding, TenantError> {
        let tx = self.db.begin(tenant).await?;
        let row = tx
            .find::<tenant_branding::Entity>()
            .one(tx.conn())
            .await
            .map_err(DbError::from)?;
        tx.commit().await?;
        let Some(row) = row else {
            return Ok(Branding::default());
        };
        let fallback = Branding::default();
        Ok(Branding {
            primary: row.primary_color.parse().unwrap_or(fallback.primary),
            accent: row.accent_color.parse().unwrap_or(fallback.accent),
            support_phone: row.support_phone,
            support_hours: row.support_hours,
            logo: row.logo.and_then(|bytes| Logo::from_bytes(bytes).ok()),
        })
    }
}
