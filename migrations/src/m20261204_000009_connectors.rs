//! Each clinic's EHR connector: the vendor and FHIR base URL in the clear, for operators;
//! everything else — client id, private key or client secret, token URL, scopes, the
//! notification secret — sealed under the clinic's key as one value.

use sea_orm_migration::prelude::*;

use crate::{belongs_to_tenant, isolate_tenant_table, timestamp};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden)]
enum TenantConnectors {
    Table,
    TenantId,
    Vendor,
    BaseUrl,
    Config,
    CreatedAt,
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
                    .table(TenantConnectors::Table)
                    .col(
                        ColumnDef::new(TenantConnectors::TenantId)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(TenantConnectors::Vendor)
                            .string_len(16)
                            .not_null()
                            .check(Expr::col(TenantConnectors::Vendor).is_in([
                                "epic",
                                "oracle-health",
                                "athenahealth",
                                "fhir-r4",
                                "sandbox",
                            ])),
                    )
                    .col(
                        ColumnDef::new(TenantConnectors::BaseUrl)
                            .string_len(2048)
                            .not_null(),
                    )
                    .col(ColumnDef::new(TenantConnectors::Config).blob().not_null())
                    .col(timestamp(TenantConnectors::CreatedAt))
                    .col(timestamp(TenantConnectors::UpdatedAt))
                    .foreign_key(&mut belongs_to_tenant(
                        TenantConnectors::Table,
                        TenantConnectors::TenantId,
                    ))
                    .to_owned(),
            )
            .await?;
        isolate_tenant_table(manager, "tenant_connectors", "SELECT, INSERT, UPDATE").await?;

        Ok(())
    }
}
