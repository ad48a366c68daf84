//! Keys: each tenant's key reference, its wrapped data keys, and the embedded key
//! service's own store.

use sea_orm_migration::prelude::*;

use crate::{grant, isolate_tenant_table};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden)]
enum TenantKeys {
    Table,
    TenantId,
    Provider,
    KeyRef,
    State,
    DeletionAt,
    CreatedAt,
}

#[derive(DeriveIden)]
enum DataKeys {
    Table,
    Id,
    TenantId,
    KeyRef,
    Wrapped,
    CreatedAt,
}

#[derive(DeriveIden)]
enum LocalKeys {
    Table,
    KeyId,
    Alias,
    State,
    DeletionAt,
    CreatedAt,
}

#[derive(DeriveIden)]
enum LocalKeyVersions {
    Table,
    KeyId,
    Version,
    Material,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Tenants {
    Table,
    Id,
}

// async_trait's expansion of the trait elides the manager's lifetime; so must the impl.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(TenantKeys::Table)
                    .col(
                        ColumnDef::new(TenantKeys::TenantId)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(TenantKeys::Provider)
                            .string_len(16)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(TenantKeys::KeyRef)
                            .string_len(2048)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(TenantKeys::State)
                            .string_len(24)
                            .not_null()
                            .check(
                                Expr::col(TenantKeys::State).is_in(["enabled", "pending_deletion"]),
                            ),
                    )
                    .col(
                        ColumnDef::new(TenantKeys::DeletionAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(TenantKeys::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(TenantKeys::Table, TenantKeys::TenantId)
                            .to(Tenants::Table, Tenants::Id),
                    )
                    .to_owned(),
            )
            .await?;
        isolate_tenant_table(manager, "tenant_keys", "SELECT, INSERT, UPDATE").await?;

        manager
            .create_table(
                Table::create()
                    .table(DataKeys::Table)
                    .col(ColumnDef::new(DataKeys::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(DataKeys::TenantId).uuid().not_null())
                    .col(ColumnDef::new(DataKeys::KeyRef).string_len(2048).not_null())
                    .col(ColumnDef::new(DataKeys::Wrapped).blob().not_null())
                    .col(
                        ColumnDef::new(DataKeys::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(DataKeys::Table, DataKeys::TenantId)
                            .to(Tenants::Table, Tenants::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("data_keys_tenant_id")
                    .table(DataKeys::Table)
                    .col(DataKeys::TenantId)
                    .to_owned(),
            )
            .await?;
        // Data keys are never deleted: a sealed value names its key forever. Only the
        // wrapping changes, when `portico keys rewrap` re-wraps under a newer key version.
        isolate_tenant_table(manager, "data_keys", "SELECT, INSERT, UPDATE").await?;

        // The embedded key service's store stands in for a KMS: it belongs to no tenant
        // (the encryption context binds each use to one), and its key material is sealed
        // under the root key, which is not in the database.
        manager
            .create_table(
                Table::create()
                    .table(LocalKeys::Table)
                    .col(
                        ColumnDef::new(LocalKeys::KeyId)
                            .string_len(64)
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(LocalKeys::Alias)
                            .string_len(256)
                            .not_null()
                            .unique_key(),
                    )
                    .col(ColumnDef::new(LocalKeys::State).string_len(24).not_null())
                    .col(
                        ColumnDef::new(LocalKeys::DeletionAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(LocalKeys::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        grant(manager, "local_keys", "SELECT, INSERT, UPDATE").await?;
        manager
            .create_table(
                Table::create()
                    .table(LocalKeyVersions::Table)
                    .col(
                        ColumnDef::new(LocalKeyVersions::KeyId)
                            .string_len(64)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(LocalKeyVersions::Version)
                            .integer()
                            .not_null(),
                    )
                    .col(ColumnDef::new(LocalKeyVersions::Material).blob().not_null())
                    .col(
                        ColumnDef::new(LocalKeyVersions::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .primary_key(
                        Index::create()
                            .col(LocalKeyVersions::KeyId)
                            .col(LocalKeyVersions::Version),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(LocalKeyVersions::Table, LocalKeyVersions::KeyId)
                            .to(LocalKeys::Table, LocalKeys::KeyId),
                    )
                    .to_owned(),
            )
            .await?;
        grant(manager, "local_key_versions", "SELECT, INSERT").await?;

        Ok(())
    }
}
