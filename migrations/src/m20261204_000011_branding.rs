//! Each clinic's branding: colours, support line and logo. Not PHI; the portal reads it on
//! every page, so it is kept in the clear, one row per clinic.

use sea_orm_migration::prelude::*;

use crate::{belongs_to_tenant, isolate_tenant_table, timestamp};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden)]
enum TenantBranding {
    Table,
    TenantId,
    PrimaryColor,
    AccentColor,
    SupportPhone,
    SupportHours,
    LogoType,
    Logo,
    UpdatedAt,
}

// async_trait's expansion of the trait elides the manager's lifetime; so must the impl.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(TenantBranding::Table)
                    .col(
                        ColumnDef::new(TenantBranding::TenantId)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(TenantBranding::PrimaryColor)
                            .string_len(7)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(TenantBranding::AccentColor)
                            .string_len(7)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(TenantBranding::SupportPhone)
                            .string_len(32)
                            .null(),
                    )
                    .col(
                        ColumnDef::new(TenantBranding::SupportHours)
                            .string_len(480)
                            .null(),
                    )
                    .col(
                        ColumnDef::new(TenantBranding::LogoType)
                            .string_len(16)
                            .null(),
                    )
                    .col(ColumnDef::new(TenantBranding::Logo).blob().null())
                    .col(timestamp(TenantBranding::UpdatedAt))
                    .foreign_key(&mut belongs_to_tenant(
                        TenantBranding::Table,
                        TenantBranding::TenantId,
                    ))
                    .to_owned(),
            )
            .await?;
        isolate_tenant_table(manager, "tenant_branding", "SELECT, INSERT, UPDATE").await?;

        Ok(())
    }
}
