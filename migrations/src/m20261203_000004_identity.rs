//! Identity: accounts (patients and staff) with their password hashes, TOTP factors,
//! Portico's own sessions, and sign-in throttles. Every table is tenant-owned.
//!
//! An account's e-mail address is stored sealed under the tenant's key; it is found by a
//! blind index (an HMAC of the normalized address under a platform key), never by the
//! address itself. Session tokens are stored only as their SHA-256.

use sea_orm_migration::prelude::*;

use crate::{belongs_to_tenant, isolate_tenant_table, optional_timestamp, timestamp};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden)]
enum Accounts {
    Table,
    Id,
    TenantId,
    Role,
    PatientId,
    EmailIndex,
    Email,
    PasswordHash,
    Status,
    FailedSignIns,
    ThrottledUntil,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum TotpFactors {
    Table,
    AccountId,
    TenantId,
    Secret,
    LastStep,
    ConfirmedAt,
    CreatedAt,
}

#[derive(DeriveIden)]
enum RecoveryCodes {
    Table,
    TenantId,
    AccountId,
    Lookup,
    Hash,
    UsedAt,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Sessions {
    Table,
    Id,
    TenantId,
    AccountId,
    Stage,
    CsrfHash,
    CreatedAt,
    LastSeenAt,
    ExpiresAt,
    RevokedAt,
}

#[derive(DeriveIden)]
enum SignInThrottles {
    Table,
    TenantId,
    Client,
    Failures,
    ThrottledUntil,
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
                    .table(Accounts::Table)
                    .col(ColumnDef::new(Accounts::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(Accounts::TenantId).uuid().not_null())
                    .col(
                        ColumnDef::new(Accounts::Role)
                            .string_len(24)
                            .not_null()
                            .check(Expr::col(Accounts::Role).is_in([
                                "patient",
                                "provider",
                                "nurse",
                                "front_desk",
                                "billing",
                                "tenant_admin",
                            ])),
                    )
                    .col(ColumnDef::new(Accounts::PatientId).uuid().null())
                    .col(ColumnDef::new(Accounts::EmailIndex).blob().not_null())
                    .col(ColumnDef::new(Accounts::Email).blob().not_null())
                    .col(
                        ColumnDef::new(Accounts::PasswordHash)
                            .string_len(256)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Accounts::Status)
                            .string_len(16)
                            .not_null()
                            .check(Expr::col(Accounts::Status).is_in(["active", "locked"])),
                    )
                    .col(
                        ColumnDef::new(Accounts::FailedSignIns)
                            .integer()
                            .not_null()
                            .default(0),
                    )
                    .col(optional_timestamp(Accounts::ThrottledUntil))
                    .col(timestamp(Accounts::CreatedAt))
                    .col(timestamp(Accounts::UpdatedAt))
                    .foreign_key(&mut belongs_to_tenant(Accounts::Table, Accounts::TenantId))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("accounts_email")
                    .table(Accounts::Table)
                    .col(Accounts::TenantId)
                    .col(Accounts::EmailIndex)
                    .unique()
                    .to_owned(),
            )
            .await?;
        isolate_tenant_table(manager, "accounts", "SELECT, INSERT, UPDATE").await?;

        manager
            .create_table(
                Table::create()
                    .table(TotpFactors::Table)
                    .col(
                        ColumnDef::new(TotpFactors::AccountId)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(TotpFactors::TenantId).uuid().not_null())
                    .col(ColumnDef::new(TotpFactors::Secret).blob().not_null())
                    .col(ColumnDef::new(TotpFactors::LastStep).big_integer().null())
                    .col(optional_timestamp(TotpFactors::ConfirmedAt))
                    .col(timestamp(TotpFactors::CreatedAt))
                    .foreign_key(&mut belongs_to_tenant(
                        TotpFactors::Table,
                        TotpFactors::TenantId,
                    ))
                    .foreign_key(
                        ForeignKey::create()
                            .from(TotpFactors::Table, TotpFactors::AccountId)
                            .to(Accounts::Table, Accounts::Id),
                    )
                    .to_owned(),
            )
            .await?;
        isolate_tenant_table(manager, "totp_factors", "SELECT, INSERT, UPDATE, DELETE").await?;

        // Single-use recovery codes: found by a short lookup part, checked against an
        // argon2id hash of the rest; used ones are kept, marked.
        manager
            .create_table(
                Table::create()
                    .table(RecoveryCodes::Table)
                    .col(ColumnDef::new(RecoveryCodes::TenantId).uuid().not_null())
                    .col(ColumnDef::new(RecoveryCodes::AccountId).uuid().not_null())
                    .col(
                        ColumnDef::new(RecoveryCodes::Lookup)
                            .string_len(8)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(RecoveryCodes::Hash)
                            .string_len(256)
                            .not_null(),
                    )
                    .col(optional_timestamp(RecoveryCodes::UsedAt))
                    .col(timestamp(RecoveryCodes::CreatedAt))
                    .primary_key(
                        Index::create()
                            .col(RecoveryCodes::TenantId)
                            .col(RecoveryCodes::AccountId)
                            .col(RecoveryCodes::Lookup),
                    )
                    .foreign_key(&mut belongs_to_tenant(
                        RecoveryCodes::Table,
                        RecoveryCodes::TenantId,
                    ))
                    .foreign_key(
                        ForeignKey::create()
                            .from(RecoveryCodes::Table, RecoveryCodes::AccountId)
                            .to(Accounts::Table, Accounts::Id),
                    )
                    .to_owned(),
            )
            .await?;
        isolate_tenant_table(manager, "recovery_codes", "SELECT, INSERT, UPDATE").await?;

        manager
            .create_table(
                Table::create()
                    .table(Sessions::Table)
                    .col(ColumnDef::new(Sessions::Id).blob().not_null().primary_key())
                    .col(ColumnDef::new(Sessions::TenantId).uuid().not_null())
                    .col(ColumnDef::new(Sessions::AccountId).uuid().not_null())
                    .col(
                        ColumnDef::new(Sessions::Stage)
                            .string_len(16)
                            .not_null()
                            .check(Expr::col(Sessions::Stage).is_in(["password", "full"])),
                    )
                    .col(ColumnDef::new(Sessions::CsrfHash).blob().not_null())
                    .col(timestamp(Sessions::CreatedAt))
                    .col(timestamp(Sessions::LastSeenAt))
                    .col(timestamp(Sessions::ExpiresAt))
                    .col(optional_timestamp(Sessions::RevokedAt))
                    .foreign_key(&mut belongs_to_tenant(Sessions::Table, Sessions::TenantId))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Sessions::Table, Sessions::AccountId)
                            .to(Accounts::Table, Accounts::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("sessions_account")
                    .table(Sessions::Table)
                    .col(Sessions::TenantId)
                    .col(Sessions::AccountId)
                    .to_owned(),
            )
            .await?;
        isolate_tenant_table(manager, "sessions", "SELECT, INSERT, UPDATE").await?;

        manager
            .create_table(
                Table::create()
                    .table(SignInThrottles::Table)
                    .col(ColumnDef::new(SignInThrottles::TenantId).uuid().not_null())
                    .col(
                        ColumnDef::new(SignInThrottles::Client)
                            .string_len(64)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(SignInThrottles::Failures)
                            .integer()
                            .not_null(),
                    )
                    .col(optional_timestamp(SignInThrottles::ThrottledUntil))
                    .col(timestamp(SignInThrottles::UpdatedAt))
                    .primary_key(
                        Index::create()
                            .col(SignInThrottles::TenantId)
                            .col(SignInThrottles::Client),
                    )
                    .foreign_key(&mut belongs_to_tenant(
                        SignInThrottles::Table,
                        SignInThrottles::TenantId,
                    ))
                    .to_owned(),
            )
            .await?;
        isolate_tenant_table(manager, "sign_in_throttles", "SELECT, INSERT, UPDATE").await?;

        Ok(())
    }
}
