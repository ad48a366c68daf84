//! Enrollment and recovery: the clinic's patient registry (the stand-in for the EHR's
//! Patient search until connectors exist), clinic-issued activation codes, one-time
//! verification tickets (self-enrollment and password reset), and the outbox that holds
//! messages the embedded notifier "sends". Every table is tenant-owned.
//!
//! Demographics and message contents are sealed under the tenant's key; a patient is found
//! by a blind index of the fields enrollment matches on, never by the fields themselves.
//! Codes are stored only as hashes.

use sea_orm_migration::prelude::*;

use crate::{belongs_to_tenant, isolate_tenant_table, optional_timestamp, timestamp};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden)]
enum Patients {
    Table,
    Id,
    TenantId,
    MatchIndex,
    Record,
    CreatedAt,
}

#[derive(DeriveIden)]
enum ActivationCodes {
    Table,
    TenantId,
    Lookup,
    Hash,
    PatientId,
    Failures,
    ExpiresAt,
    UsedAt,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Verifications {
    Table,
    Id,
    TenantId,
    Purpose,
    PatientId,
    AccountId,
    CodeHash,
    Failures,
    ExpiresAt,
    UsedAt,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Outbox {
    Table,
    Id,
    TenantId,
    Channel,
    Kind,
    Recipient,
    Body,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Accounts {
    Table,
    TenantId,
    PatientId,
}

// async_trait's expansion of the trait elides the manager's lifetime; so must the impl.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Patients::Table)
                    .col(ColumnDef::new(Patients::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(Patients::TenantId).uuid().not_null())
                    .col(ColumnDef::new(Patients::MatchIndex).blob().not_null())
                    .col(ColumnDef::new(Patients::Record).blob().not_null())
                    .col(timestamp(Patients::CreatedAt))
                    .foreign_key(&mut belongs_to_tenant(Patients::Table, Patients::TenantId))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("patients_match")
                    .table(Patients::Table)
                    .col(Patients::TenantId)
                    .col(Patients::MatchIndex)
                    .to_owned(),
            )
            .await?;
        isolate_tenant_table(manager, "patients", "SELECT, INSERT, UPDATE").await?;

        // One account per patient (proxies will be links of their own, not accounts).
        manager
            .create_index(
                Index::create()
                    .name("accounts_patient")
                    .table(Accounts::Table)
                    .col(Accounts::TenantId)
                    .col(Accounts::PatientId)
                    .unique()
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(ActivationCodes::Table)
                    .col(ColumnDef::new(ActivationCodes::TenantId).uuid().not_null())
                    .col(
                        ColumnDef::new(ActivationCodes::Lookup)
                            .string_len(8)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(ActivationCodes::Hash)
                            .string_len(256)
                            .not_null(),
                    )
                    .col(ColumnDef::new(ActivationCodes::PatientId).uuid().not_null())
                    .col(
                        ColumnDef::new(ActivationCodes::Failures)
                            .integer()
                            .not_null()
                            .default(0),
                    )
                    .col(timestamp(ActivationCodes::ExpiresAt))
                    .col(optional_timestamp(ActivationCodes::UsedAt))
                    .col(timestamp(ActivationCodes::CreatedAt))
                    .primary_key(
                        Index::create()
                            .col(ActivationCodes::TenantId)
                            .col(ActivationCodes::Lookup),
                    )
                    .foreign_key(&mut belongs_to_tenant(
                        ActivationCodes::Table,
                        ActivationCodes::TenantId,
                    ))
                    .to_owned(),
            )
            .await?;
        isolate_tenant_table(manager, "activation_codes", "SELECT, INSERT, UPDATE").await?;

        manager
            .create_table(
                Table::create()
                    .table(Verifications::Table)
                    .col(
                        ColumnDef::new(Verifications::Id)
                            .blob()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(Verifications::TenantId).uuid().not_null())
                    .col(
                        ColumnDef::new(Verifications::Purpose)
                            .string_len(16)
                            .not_null()
                            .check(Expr::col(Verifications::Purpose).is_in(["enroll", "reset"])),
                    )
                    .col(ColumnDef::new(Verifications::PatientId).uuid().null())
                    .col(ColumnDef::new(Verifications::AccountId).uuid().null())
                    .col(ColumnDef::new(Verifications::CodeHash).blob().null())
                    .col(
                        ColumnDef::new(Verifications::Failures)
                            .integer()
                            .not_null()
                            .default(0),
                    )
                    .col(timestamp(Verifications::ExpiresAt))
                    .col(optional_timestamp(Verifications::UsedAt))
                    .col(timestamp(Verifications::CreatedAt))
                    .foreign_key(&mut belongs_to_tenant(
                        Verifications::Table,
                        Verifications::TenantId,
                    ))
                    .to_owned(),
            )
            .await?;
        isolate_tenant_table(manager, "verifications", "SELECT, INSERT, UPDATE").await?;

        manager
            .create_table(
                Table::create()
                    .table(Outbox::Table)
                    .col(ColumnDef::new(Outbox::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(Outbox::TenantId).uuid().not_null())
                    .col(ColumnDef::new(Outbox::Channel).string_len(8).not_null())
                    .col(ColumnDef::new(Outbox::Kind).string_len(32).not_null())
                    .col(ColumnDef::new(Outbox::Recipient).blob().not_null())
                    .col(ColumnDef::new(Outbox::Body).blob().not_null())
                    .col(timestamp(Outbox::CreatedAt))
                    .foreign_key(&mut belongs_to_tenant(Outbox::Table, Outbox::TenantId))
                    .to_owned(),
            )
            .await?;
        isolate_tenant_table(manager, "outbox", "SELECT, INSERT").await?;

        Ok(())
    }
}
