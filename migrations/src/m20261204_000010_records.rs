//! Health records synced from each clinic's EHR, and the shared sync queue.
//!
//! - `ehr_links`: which EHR patient a Portico patient is, and when their record was last
//!   synced in full and in part.
//! - `health_records`: one row per EHR resource (tenant, type, FHIR id unique). The FHIR
//!   JSON is sealed under the clinic's key; in the clear are only what paging, filtering
//!   and the release policy need: category, status, release state and dates. No code,
//!   value or text is in the clear.
//! - `record_errors`: resources that could not be read, per resource, so one bad resource
//!   never fails the rest of a sync.
//! - `withholdings`: each decision to hold one item back under an information-blocking
//!   exception, the reason sealed, and its release.
//! - `sync_jobs` and `sync_cursors`: the queue every node shares (claimed with
//!   `FOR UPDATE SKIP LOCKED` and a lease) and how far each patient's record has been read.

use sea_orm_migration::prelude::*;

use crate::{belongs_to_tenant, isolate_tenant_table, optional_timestamp, timestamp};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden)]
enum EhrLinks {
    Table,
    TenantId,
    PatientId,
    EhrPatientId,
    LinkedAt,
    BackfilledAt,
    LastSyncedAt,
    LastPolledAt,
}

#[derive(DeriveIden)]
enum HealthRecords {
    Table,
    Id,
    TenantId,
    PatientId,
    ResourceType,
    FhirId,
    Version,
    Category,
    Status,
    Release,
    EffectiveAt,
    EhrUpdatedAt,
    FinalizedAt,
    ReleasedAt,
    FirstViewedAt,
    WithheldUntil,
    Body,
    StoredAt,
}

#[derive(DeriveIden)]
enum RecordErrors {
    Table,
    Id,
    TenantId,
    PatientId,
    ResourceType,
    FhirId,
    Problem,
    At,
}

#[derive(DeriveIden)]
enum Withholdings {
    Table,
    Id,
    TenantId,
    RecordId,
    PatientId,
    Exception,
    Reason,
    Until,
    WithheldBy,
    WithheldAt,
    ReleasedBy,
    ReleasedAt,
}

#[derive(DeriveIden)]
enum SyncJobs {
    Table,
    Id,
    TenantId,
    PatientId,
    Kind,
    Focus,
    State,
    DueAt,
    LeaseUntil,
    Attempts,
    Done,
    Total,
    Stored,
    LastError,
    CreatedAt,
    FinishedAt,
}

#[derive(DeriveIden)]
enum SyncCursors {
    Table,
    TenantId,
    PatientId,
    ResourceType,
    Since,
}

fn uuid<T: IntoIden>(name: T) -> ColumnDef {
    ColumnDef::new(name).uuid().not_null().to_owned()
}

fn text<T: IntoIden>(name: T, len: u32) -> ColumnDef {
    ColumnDef::new(name).string_len(len).not_null().to_owned()
}

fn optional_text<T: IntoIden>(name: T, len: u32) -> ColumnDef {
    ColumnDef::new(name).string_len(len).null().to_owned()
}

fn count<T: IntoIden>(name: T) -> ColumnDef {
    ColumnDef::new(name)
        .integer()
        .not_null()
        .default(0)
        .to_owned()
}

// async_trait's expansion of the trait elides the manager's lifetime; so must the impl.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(EhrLinks::Table)
                    .col(uuid(EhrLinks::TenantId))
                    .col(uuid(EhrLinks::PatientId))
                    .col(text(EhrLinks::EhrPatientId, 64))
                    .col(timestamp(EhrLinks::LinkedAt))
                    .col(optional_timestamp(EhrLinks::BackfilledAt))
                    .col(optional_timestamp(EhrLinks::LastSyncedAt))
                    .col(optional_timestamp(EhrLinks::LastPolledAt))
                    .primary_key(
                        Index::create()
                            .col(EhrLinks::TenantId)
                            .col(EhrLinks::PatientId),
                    )
                    .foreign_key(&mut belongs_to_tenant(EhrLinks::Table, EhrLinks::TenantId))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ehr_links_ehr_patient")
                    .table(EhrLinks::Table)
                    .col(EhrLinks::TenantId)
                    .col(EhrLinks::EhrPatientId)
                    .unique()
                    .to_owned(),
            )
            .await?;
        isolate_tenant_table(manager, "ehr_links", "SELECT, INSERT, UPDATE").await?;

        manager
            .create_table(
                Table::create()
                    .table(HealthRecords::Table)
                    .col(
                        ColumnDef::new(HealthRecords::Id)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(uuid(HealthRecords::TenantId))
                    .col(uuid(HealthRecords::PatientId))
                    .col(text(HealthRecords::ResourceType, 64))
                    .col(text(HealthRecords::FhirId, 64))
                    .col(text(HealthRecords::Version, 64))
                    .col(text(HealthRecords::Category, 32))
                    .col(text(HealthRecords::Status, 32))
                    .col(text(HealthRecords::Release, 16).check(
                        Expr::col(HealthRecords::Release).is_in([
                            "released",
                            "preliminary",
                            "hidden",
                        ]),
                    ))
                    .col(optional_timestamp(HealthRecords::EffectiveAt))
                    .col(optional_timestamp(HealthRecords::EhrUpdatedAt))
                    .col(optional_timestamp(HealthRecords::FinalizedAt))
                    .col(optional_timestamp(HealthRecords::ReleasedAt))
                    .col(optional_timestamp(HealthRecords::FirstViewedAt))
                    .col(optional_timestamp(HealthRecords::WithheldUntil))
                    .col(ColumnDef::new(HealthRecords::Body).blob().not_null())
                    .col(timestamp(HealthRecords::StoredAt))
                    .foreign_key(&mut belongs_to_tenant(
                        HealthRecords::Table,
                        HealthRecords::TenantId,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("health_records_resource")
                    .table(HealthRecords::Table)
                    .col(HealthRecords::TenantId)
                    .col(HealthRecords::ResourceType)
                    .col(HealthRecords::FhirId)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("health_records_patient")
                    .table(HealthRecords::Table)
                    .col(HealthRecords::TenantId)
                    .col(HealthRecords::PatientId)
                    .col(HealthRecords::Category)
                    .col(HealthRecords::EffectiveAt)
                    .to_owned(),
            )
            .await?;
        isolate_tenant_table(manager, "health_records", "SELECT, INSERT, UPDATE").await?;

        manager
            .create_table(
                Table::create()
                    .table(RecordErrors::Table)
                    .col(
                        ColumnDef::new(RecordErrors::Id)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(uuid(RecordErrors::TenantId))
                    .col(ColumnDef::new(RecordErrors::PatientId).uuid().null())
                    .col(text(RecordErrors::ResourceType, 64))
                    .col(optional_text(RecordErrors::FhirId, 64))
                    .col(text(RecordErrors::Problem, 200))
                    .col(timestamp(RecordErrors::At))
                    .foreign_key(&mut belongs_to_tenant(
                        RecordErrors::Table,
                        RecordErrors::TenantId,
                    ))
                    .to_owned(),
            )
            .await?;
        isolate_tenant_table(manager, "record_errors", "SELECT, INSERT").await?;

        manager
            .create_table(
                Table::create()
                    .table(Withholdings::Table)
                    .col(
                        ColumnDef::new(Withholdings::Id)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(uuid(Withholdings::TenantId))
                    .col(uuid(Withholdings::RecordId))
                    .col(uuid(Withholdings::PatientId))
                    .col(text(Withholdings::Exception, 32).check(
                        Expr::col(Withholdings::Exception).is_in([
                            "preventing_harm",
                            "privacy",
                            "security",
                            "infeasibility",
                            "health_it_performance",
                            "content_and_manner",
                            "fees",
                            "licensing",
                        ]),
                    ))
                    .col(ColumnDef::new(Withholdings::Reason).blob().not_null())
                    .col(timestamp(Withholdings::Until))
                    .col(text(Withholdings::WithheldBy, 64))
                    .col(timestamp(Withholdings::WithheldAt))
                    .col(optional_text(Withholdings::ReleasedBy, 64))
                    .col(optional_timestamp(Withholdings::ReleasedAt))
                    .foreign_key(&mut belongs_to_tenant(
                        Withholdings::Table,
                        Withholdings::TenantId,
                    ))
                    .to_owned(),
            )
            .await?;
        isolate_tenant_table(manager, "withholdings", "SELECT, INSERT, UPDATE").await?;

        manager
            .create_table(
                Table::create()
                    .table(SyncJobs::Table)
                    .col(ColumnDef::new(SyncJobs::Id).uuid().not_null().primary_key())
                    .col(uuid(SyncJobs::TenantId))
                    .col(uuid(SyncJobs::PatientId))
                    .col(
                        text(SyncJobs::Kind, 16)
                            .check(Expr::col(SyncJobs::Kind).is_in(["backfill", "poll", "push"])),
                    )
                    .col(ColumnDef::new(SyncJobs::Focus).text().null())
                    .col(
                        text(SyncJobs::State, 16)
                            .check(Expr::col(SyncJobs::State).is_in(["queued", "done", "failed"])),
                    )
                    .col(timestamp(SyncJobs::DueAt))
                    .col(optional_timestamp(SyncJobs::LeaseUntil))
                    .col(count(SyncJobs::Attempts))
                    .col(count(SyncJobs::Done))
                    .col(count(SyncJobs::Total))
                    .col(count(SyncJobs::Stored))
                    .col(optional_text(SyncJobs::LastError, 200))
                    .col(timestamp(SyncJobs::CreatedAt))
                    .col(optional_timestamp(SyncJobs::FinishedAt))
                    .foreign_key(&mut belongs_to_tenant(SyncJobs::Table, SyncJobs::TenantId))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("sync_jobs_due")
                    .table(SyncJobs::Table)
                    .col(SyncJobs::TenantId)
                    .col(SyncJobs::State)
                    .col(SyncJobs::DueAt)
                    .to_owned(),
            )
            .await?;
        isolate_tenant_table(manager, "sync_jobs", "SELECT, INSERT, UPDATE, DELETE").await?;

        manager
            .create_table(
                Table::create()
                    .table(SyncCursors::Table)
                    .col(uuid(SyncCursors::TenantId))
                    .col(uuid(SyncCursors::PatientId))
                    .col(text(SyncCursors::ResourceType, 64))
                    .col(timestamp(SyncCursors::Since))
                    .primary_key(
                        Index::create()
                            .col(SyncCursors::TenantId)
                            .col(SyncCursors::PatientId)
                            .col(SyncCursors::ResourceType),
                    )
                    .foreign_key(&mut belongs_to_tenant(
                        SyncCursors::Table,
                        SyncCursors::TenantId,
                    ))
                    .to_owned(),
            )
            .await?;
        isolate_tenant_table(manager, "sync_cursors", "SELECT, INSERT, UPDATE, DELETE").await?;

        Ok(())
    }
}
