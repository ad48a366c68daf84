//! The identity provider's share of the schema.
//!
//! - `identity_directories`: a clinic's user directory at an external provider (a Cognito
//!   user pool and Portico's app client in it), written with the clinic. Ids only: the
//!   client's secret stays with Cognito and is read from it when needed.
//! - `accounts.provider_subject`: the provider's id for the person (Cognito's `sub`).
//! - `sessions.provider_state`: the provider's state for the second step of a sign-in
//!   (Cognito's challenge session), sealed under the clinic's key.

use sea_orm_migration::prelude::*;

use crate::{belongs_to_tenant, isolate_tenant_table, timestamp};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden)]
enum IdentityDirectories {
    Table,
    TenantId,
    Provider,
    DirectoryId,
    ClientId,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Accounts {
    Table,
    ProviderSubject,
}

#[derive(DeriveIden)]
enum Sessions {
    Table,
    ProviderState,
}

// async_trait's expansion of the trait elides the manager's lifetime; so must the impl.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(IdentityDirectories::Table)
                    .col(
                        ColumnDef::new(IdentityDirectories::TenantId)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(IdentityDirectories::Provider)
                            .string_len(16)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(IdentityDirectories::DirectoryId)
                            .string_len(128)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(IdentityDirectories::ClientId)
                            .string_len(128)
                            .not_null(),
                    )
                    .col(timestamp(IdentityDirectories::CreatedAt))
                    .foreign_key(&mut belongs_to_tenant(
                        IdentityDirectories::Table,
                        IdentityDirectories::TenantId,
                    ))
                    .to_owned(),
            )
            .await?;
        isolate_tenant_table(manager, "identity_directories", "SELECT, INSERT").await?;

        // SQLite adds one column per ALTER TABLE.
        manager
            .alter_table(
                Table::alter()
                    .table(Accounts::Table)
                    .add_column(
                        ColumnDef::new(Accounts::ProviderSubject)
                            .string_len(128)
                            .null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Sessions::Table)
                    .add_column(ColumnDef::new(Sessions::ProviderState).blob().null())
                    .to_owned(),
            )
            .await?;

        Ok(())
    }
}
