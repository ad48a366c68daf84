//! The tenant registry (`tenants`, `tenant_domains`) and the first tenant-owned table
//! (`tenant_settings`).

use sea_orm_migration::prelude::*;

use crate::{ensure_app_role, grant, isolate_tenant_table};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden)]
enum Tenants {
    Table,
    Id,
    Slug,
    DisplayName,
    Status,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum TenantDomains {
    Table,
    Domain,
    TenantId,
    VerifiedAt,
    CreatedAt,
}

#[derive(DeriveIden)]
enum TenantSettings {
    Table,
    TenantId,
    DefaultLocale,
    CreatedAt,
    UpdatedAt,
}

// async_trait's expansion of the trait elides the manager's lifetime; so must the impl.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        ensure_app_role(manager).await?;

        manager
            .create_table(
                Table::create()
                    .table(Tenants::Table)
                    .col(ColumnDef::new(Tenants::Id).uuid().not_null().primary_key())
                    .col(
                        ColumnDef::new(Tenants::Slug)
                            .string_len(63)
                            .not_null()
                            .unique_key(),
                    )
                    .col(
                        ColumnDef::new(Tenants::DisplayName)
                            .string_len(200)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Tenants::Status)
                            .string_len(16)
                            .not_null()
                            .check(Expr::col(Tenants::Status).is_in([
                                "active",
                                "suspended",
                                "offboarded",
                            ])),
                    )
                    .col(
                        ColumnDef::new(Tenants::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Tenants::UpdatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        // The registry is not PHI and must be readable before a tenant is known (resolving a
        // request's host). Tenants are never deleted: offboarding is a status.
        grant(manager, "tenants", "SELECT, INSERT, UPDATE").await?;

        manager
            .create_table(
                Table::create()
                    .table(TenantDomains::Table)
                    .col(
                        ColumnDef::new(TenantDomains::Domain)
                            .string_len(253)
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(TenantDomains::TenantId).uuid().not_null())
                    .col(
                        ColumnDef::new(TenantDomains::VerifiedAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(TenantDomains::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(TenantDomains::Table, TenantDomains::TenantId)
                            .to(Tenants::Table, Tenants::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("tenant_domains_tenant_id")
                    .table(TenantDomains::Table)
                    .col(TenantDomains::TenantId)
                    .to_owned(),
            )
            .await?;
        // Domains are part of the registry: a host is resolved to its tenant before any
        // tenant scope exists, so this table cannot sit under the tenant policy.
        grant(manager, "tenant_domains", "SELECT, INSERT, UPDATE, DELETE").await?;

        manager
            .create_table(
                Table::create()
                    .table(TenantSettings::Table)
                    .col(
                        ColumnDef::new(TenantSettings::TenantId)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(TenantSettings::DefaultLocale)
                            .string_len(16)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(TenantSettings::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(TenantSettings::UpdatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(TenantSettings::Table, TenantSettings::TenantId)
                            .to(Tenants::Table, Tenants::Id),
                    )
                    .to_owned(),
            )
            .await?;
        isolate_tenant_table(manager, "tenant_settings", "SELECT, INSERT, UPDATE").await?;

        Ok(())
    }
}
