//! Passkeys (WebAuthn) as a second factor.
//!
//! - `passkeys`: each registered passkey's public key and signature counter (the
//!   `webauthn-rs` credential as JSON: nothing secret), bound to the portal host it was
//!   made for, found by its credential id.
//! - `passkey_ceremonies`: a registration or sign-in in progress, one per session, its
//!   challenge sealed under the clinic's key, for 5 minutes; removed when answered.

use sea_orm_migration::prelude::*;

use crate::{belongs_to_tenant, isolate_tenant_table, optional_timestamp, timestamp};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden)]
enum Passkeys {
    Table,
    Id,
    TenantId,
    AccountId,
    CredentialId,
    RpId,
    Credential,
    Name,
    CreatedAt,
    LastUsedAt,
}

#[derive(DeriveIden)]
enum PasskeyCeremonies {
    Table,
    SessionId,
    TenantId,
    Purpose,
    State,
    ExpiresAt,
    CreatedAt,
}

// async_trait's expansion of the trait elides the manager's lifetime; so must the impl.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Passkeys::Table)
                    .col(ColumnDef::new(Passkeys::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(Passkeys::TenantId).uuid().not_null())
                    .col(ColumnDef::new(Passkeys::AccountId).uuid().not_null())
                    .col(ColumnDef::new(Passkeys::CredentialId).blob().not_null())
                    .col(ColumnDef::new(Passkeys::RpId).string_len(253).not_null())
                    .col(ColumnDef::new(Passkeys::Credential).text().not_null())
                    .col(ColumnDef::new(Passkeys::Name).string_len(64).not_null())
                    .col(timestamp(Passkeys::CreatedAt))
                    .col(optional_timestamp(Passkeys::LastUsedAt))
                    .foreign_key(&mut belongs_to_tenant(Passkeys::Table, Passkeys::TenantId))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("passkeys_credential")
                    .table(Passkeys::Table)
                    .col(Passkeys::TenantId)
                    .col(Passkeys::CredentialId)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("passkeys_account")
                    .table(Passkeys::Table)
                    .col(Passkeys::TenantId)
                    .col(Passkeys::AccountId)
                    .to_owned(),
            )
            .await?;
        isolate_tenant_table(manager, "passkeys", "SELECT, INSERT, UPDATE, DELETE").await?;

        manager
            .create_table(
                Table::create()
                    .table(PasskeyCeremonies::Table)
                    .col(
                        ColumnDef::new(PasskeyCeremonies::SessionId)
                            .blob()
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(PasskeyCeremonies::TenantId)
                            .uuid()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(PasskeyCeremonies::Purpose)
                            .string_len(16)
                            .not_null()
                            .check(
                                Expr::col(PasskeyCeremonies::Purpose)
                                    .is_in(["register", "sign_in"]),
                            ),
                    )
                    .col(ColumnDef::new(PasskeyCeremonies::State).blob().not_null())
                    .col(timestamp(PasskeyCeremonies::ExpiresAt))
                    .col(timestamp(PasskeyCeremonies::CreatedAt))
                    .foreign_key(&mut belongs_to_tenant(
                        PasskeyCeremonies::Table,
                        PasskeyCeremonies::TenantId,
                    ))
                    .to_owned(),
            )
            .await?;
        isolate_tenant_table(
            manager,
            "passkey_ceremonies",
            "SELECT, INSERT, UPDATE, DELETE",
        )
        .await?;

        Ok(())
    }
}
