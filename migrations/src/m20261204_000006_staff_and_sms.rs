//! Staff invitations and SMS sign-in codes.
//!
//! - `invitations`: a clinic admin (or an operator, for a clinic's first admin) invites a
//!   person by e-mail address to a staff role. The code is stored only as an argon2id hash,
//!   found by its first group; the address is sealed under the clinic's key and found by
//!   the same blind index as accounts.
//! - `sms_codes`: a one-time code texted to the phone on file as the second step of sign-in,
//!   bound to the session waiting for it (one row per session, re-sent at most a few
//!   times) and stored only as a digest.

use sea_orm_migration::prelude::*;

use crate::{belongs_to_tenant, isolate_tenant_table, optional_timestamp, timestamp};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden)]
enum Invitations {
    Table,
    TenantId,
    Lookup,
    Hash,
    EmailIndex,
    Email,
    Role,
    InvitedBy,
    Failures,
    ExpiresAt,
    UsedAt,
    CreatedAt,
}

#[derive(DeriveIden)]
enum SmsCodes {
    Table,
    SessionId,
    TenantId,
    AccountId,
    CodeHash,
    Sends,
    Failures,
    ExpiresAt,
    UsedAt,
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
                    .table(Invitations::Table)
                    .col(ColumnDef::new(Invitations::TenantId).uuid().not_null())
                    .col(ColumnDef::new(Invitations::Lookup).string_len(8).not_null())
                    .col(ColumnDef::new(Invitations::Hash).string_len(256).not_null())
                    .col(ColumnDef::new(Invitations::EmailIndex).blob().not_null())
                    .col(ColumnDef::new(Invitations::Email).blob().not_null())
                    .col(
                        ColumnDef::new(Invitations::Role)
                            .string_len(32)
                            .not_null()
                            .check(Expr::col(Invitations::Role).is_in([
                                "provider",
                                "nurse",
                                "front_desk",
                                "billing",
                                "tenant_admin",
                            ])),
                    )
                    .col(ColumnDef::new(Invitations::InvitedBy).uuid().null())
                    .col(
                        ColumnDef::new(Invitations::Failures)
                            .integer()
                            .not_null()
                            .default(0),
                    )
                    .col(timestamp(Invitations::ExpiresAt))
                    .col(optional_timestamp(Invitations::UsedAt))
                    .col(timestamp(Invitations::CreatedAt))
                    .primary_key(
                        Index::create()
                            .col(Invitations::TenantId)
                            .col(Invitations::Lookup),
                    )
                    .foreign_key(&mut belongs_to_tenant(
                        Invitations::Table,
                        Invitations::TenantId,
                    ))
                    .to_owned(),
            )
            .await?;
        isolate_tenant_table(manager, "invitations", "SELECT, INSERT, UPDATE").await?;

        manager
            .create_table(
                Table::create()
                    .table(SmsCodes::Table)
                    .col(
                        ColumnDef::new(SmsCodes::SessionId)
                            .blob()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(SmsCodes::TenantId).uuid().not_null())
                    .col(ColumnDef::new(SmsCodes::AccountId).uuid().not_null())
                    .col(ColumnDef::new(SmsCodes::CodeHash).blob().not_null())
                    .col(
                        ColumnDef::new(SmsCodes::Sends)
                            .integer()
                            .not_null()
                            .default(1),
                    )
                    .col(
                        ColumnDef::new(SmsCodes::Failures)
                            .integer()
                            .not_null()
                            .default(0),
                    )
                    .col(timestamp(SmsCodes::ExpiresAt))
                    .col(optional_timestamp(SmsCodes::UsedAt))
                    .col(timestamp(SmsCodes::CreatedAt))
                    .foreign_key(&mut belongs_to_tenant(SmsCodes::Table, SmsCodes::TenantId))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("sms_codes_account")
                    .table(SmsCodes::Table)
                    .col(SmsCodes::TenantId)
                    .col(SmsCodes::AccountId)
                    .col(SmsCodes::CreatedAt)
                    .to_owned(),
            )
            .await?;
        isolate_tenant_table(manager, "sms_codes", "SELECT, INSERT, UPDATE").await?;

        Ok(())
    }
}
