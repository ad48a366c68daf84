//! The audit trail: one hash chain per tenant, its head, signed checkpoints, archived
//! segments, the directory that names actors for patients, and the platform's own keys.
//!
//! Events, checkpoints and segments are append-only: a trigger refuses UPDATE, DELETE (and,
//! on PostgreSQL, TRUNCATE) on both databases, and on PostgreSQL the server's role is
//! granted only INSERT and SELECT on them. Only the head row changes: the trail locks it
//! to append (which serializes appends across server nodes), and a trigger on each new
//! event advances it — refusing an event that does not directly follow it, so the chain
//! has no gaps or forks by construction.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

use crate::{belongs_to_tenant, grant, isolate_tenant_table, timestamp};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden)]
enum AuditHeads {
    Table,
    TenantId,
    Seq,
    Hash,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum AuditEvents {
    Table,
    TenantId,
    Seq,
    At,
    ActorKind,
    ActorId,
    Action,
    ResourceType,
    ResourceId,
    PatientId,
    Outcome,
    Client,
    Purpose,
    PrevHash,
    Hash,
}

#[derive(DeriveIden)]
enum AuditCheckpoints {
    Table,
    TenantId,
    Seq,
    Hash,
    At,
    KeyRef,
    Mac,
}

#[derive(DeriveIden)]
enum AuditSegments {
    Table,
    TenantId,
    FirstSeq,
    LastSeq,
    Name,
    Digest,
    At,
}

#[derive(DeriveIden)]
enum AuditActors {
    Table,
    TenantId,
    Kind,
    ActorId,
    DisplayName,
    Role,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum PlatformKeys {
    Table,
    Purpose,
    Provider,
    KeyRef,
    CreatedAt,
}

/// The append-only tables.
const APPEND_ONLY: [&str; 3] = ["audit_events", "audit_checkpoints", "audit_segments"];

fn hash_col<T: IntoIden>(name: T) -> ColumnDef {
    ColumnDef::new(name).blob().not_null().to_owned()
}

fn token_col<T: IntoIden>(name: T, len: u32) -> ColumnDef {
    ColumnDef::new(name).string_len(len).not_null().to_owned()
}

// async_trait's expansion of the trait elides the manager's lifetime; so must the impl.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(AuditHeads::Table)
                    .col(
                        ColumnDef::new(AuditHeads::TenantId)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(AuditHeads::Seq).big_integer().not_null())
                    .col(hash_col(AuditHeads::Hash))
                    .col(timestamp(AuditHeads::UpdatedAt))
                    .foreign_key(&mut belongs_to_tenant(
                        AuditHeads::Table,
                        AuditHeads::TenantId,
                    ))
                    .to_owned(),
            )
            .await?;
        isolate_tenant_table(manager, "audit_heads", "SELECT, INSERT, UPDATE").await?;

        manager
            .create_table(
                Table::create()
                    .table(AuditEvents::Table)
                    .col(ColumnDef::new(AuditEvents::TenantId).uuid().not_null())
                    .col(ColumnDef::new(AuditEvents::Seq).big_integer().not_null())
                    .col(timestamp(AuditEvents::At))
                    .col(token_col(AuditEvents::ActorKind, 16))
                    .col(token_col(AuditEvents::ActorId, 128))
                    .col(token_col(AuditEvents::Action, 24))
                    .col(token_col(AuditEvents::ResourceType, 128))
                    .col(
                        ColumnDef::new(AuditEvents::ResourceId)
                            .string_len(128)
                            .null(),
                    )
                    .col(ColumnDef::new(AuditEvents::PatientId).uuid().null())
                    .col(token_col(AuditEvents::Outcome, 16))
                    .col(ColumnDef::new(AuditEvents::Client).string_len(128).null())
                    .col(token_col(AuditEvents::Purpose, 24))
                    .col(hash_col(AuditEvents::PrevHash))
                    .col(hash_col(AuditEvents::Hash))
                    .primary_key(
                        Index::create()
                            .col(AuditEvents::TenantId)
                            .col(AuditEvents::Seq),
                    )
                    .foreign_key(&mut belongs_to_tenant(
                        AuditEvents::Table,
                        AuditEvents::TenantId,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("audit_events_patient")
                    .table(AuditEvents::Table)
                    .col(AuditEvents::TenantId)
                    .col(AuditEvents::PatientId)
                    .col(AuditEvents::Seq)
                    .to_owned(),
            )
            .await?;
        isolate_tenant_table(manager, "audit_events", "SELECT, INSERT").await?;

        manager
            .create_table(
                Table::create()
                    .table(AuditCheckpoints::Table)
                    .col(ColumnDef::new(AuditCheckpoints::TenantId).uuid().not_null())
                    .col(
                        ColumnDef::new(AuditCheckpoints::Seq)
                            .big_integer()
                            .not_null(),
                    )
                    .col(hash_col(AuditCheckpoints::Hash))
                    .col(timestamp(AuditCheckpoints::At))
                    .col(token_col(AuditCheckpoints::KeyRef, 2048))
                    .col(hash_col(AuditCheckpoints::Mac))
                    .primary_key(
                        Index::create()
                            .col(AuditCheckpoints::TenantId)
                            .col(AuditCheckpoints::Seq),
                    )
                    .foreign_key(&mut belongs_to_tenant(
                        AuditCheckpoints::Table,
                        AuditCheckpoints::TenantId,
                    ))
                    .to_owned(),
            )
            .await?;
        isolate_tenant_table(manager, "audit_checkpoints", "SELECT, INSERT").await?;

        manager
            .create_table(
                Table::create()
                    .table(AuditSegments::Table)
                    .col(ColumnDef::new(AuditSegments::TenantId).uuid().not_null())
                    .col(
                        ColumnDef::new(AuditSegments::FirstSeq)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(AuditSegments::LastSeq)
                            .big_integer()
                            .not_null(),
                    )
                    .col(token_col(AuditSegments::Name, 512))
                    .col(hash_col(AuditSegments::Digest))
                    .col(timestamp(AuditSegments::At))
                    .primary_key(
                        Index::create()
                            .col(AuditSegments::TenantId)
                            .col(AuditSegments::FirstSeq),
                    )
                    .foreign_key(&mut belongs_to_tenant(
                        AuditSegments::Table,
                        AuditSegments::TenantId,
                    ))
                    .to_owned(),
            )
            .await?;
        isolate_tenant_table(manager, "audit_segments", "SELECT, INSERT").await?;

        manager
            .create_table(
                Table::create()
                    .table(AuditActors::Table)
                    .col(ColumnDef::new(AuditActors::TenantId).uuid().not_null())
                    .col(token_col(AuditActors::Kind, 16))
                    .col(token_col(AuditActors::ActorId, 128))
                    .col(token_col(AuditActors::DisplayName, 200))
                    .col(ColumnDef::new(AuditActors::Role).string_len(40).null())
                    .col(timestamp(AuditActors::UpdatedAt))
                    .primary_key(
                        Index::create()
                            .col(AuditActors::TenantId)
                            .col(AuditActors::Kind)
                            .col(AuditActors::ActorId),
                    )
                    .foreign_key(&mut belongs_to_tenant(
                        AuditActors::Table,
                        AuditActors::TenantId,
                    ))
                    .to_owned(),
            )
            .await?;
        isolate_tenant_table(manager, "audit_actors", "SELECT, INSERT, UPDATE").await?;

        // Keys the platform itself holds in the key service (the checkpoint signing key).
        manager
            .create_table(
                Table::create()
                    .table(PlatformKeys::Table)
                    .col(
                        ColumnDef::new(PlatformKeys::Purpose)
                            .string_len(64)
                            .not_null()
                            .primary_key(),
                    )
                    .col(token_col(PlatformKeys::Provider, 16))
                    .col(token_col(PlatformKeys::KeyRef, 2048))
                    .col(timestamp(PlatformKeys::CreatedAt))
                    .to_owned(),
            )
            .await?;
        grant(manager, "platform_keys", "SELECT, INSERT").await?;

        refuse_changes(manager).await
    }
}

/// Installs the triggers that make the audit tables append-only and keep the head in step.
async fn refuse_changes(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    let conn = manager.get_connection();
    match manager.get_database_backend() {
        DbBackend::Postgres => {
            conn.execute_unprepared(
                "CREATE OR REPLACE FUNCTION portico_audit_advance_head() RETURNS trigger
                 LANGUAGE plpgsql AS $$
                 BEGIN
                   UPDATE audit_heads SET seq = NEW.seq, hash = NEW.hash, updated_at = NEW.at
                    WHERE tenant_id = NEW.tenant_id AND seq = NEW.seq - 1;
                   IF NOT FOUND THEN
                     RAISE EXCEPTION 'audit event % does not follow the chain head', NEW.seq
                       USING ERRCODE = 'integrity_constraint_violation';
                   END IF;
                   RETURN NEW;
                 END $$;
                 CREATE TRIGGER audit_events_advance_head AFTER INSERT ON audit_events
                   FOR EACH ROW EXECUTE FUNCTION portico_audit_advance_head();",
            )
            .await?;
            conn.execute_unprepared(
                "CREATE OR REPLACE FUNCTION portico_append_only() RETURNS trigger
                 LANGUAGE plpgsql AS $$
                 BEGIN
                   RAISE EXCEPTION '% is append-only', TG_TABLE_NAME
                     USING ERRCODE = 'insufficient_privilege';
                 END $$;",
            )
            .await?;
            for table in APPEND_ONLY {
                conn.execute_unprepared(&format!(
                    "CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table}
                       FOR EACH ROW EXECUTE FUNCTION portico_append_only();
                     CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table}
                       FOR EACH STATEMENT EXECUTE FUNCTION portico_append_only();"
                ))
                .await?;
            }
        }
        _ => {
            conn.execute_unprepared(
                "CREATE TRIGGER audit_events_advance_head AFTER INSERT ON audit_events
                 BEGIN
                   SELECT RAISE(ABORT, 'audit event does not follow the chain head')
                    WHERE NOT EXISTS (SELECT 1 FROM audit_heads
                                       WHERE tenant_id = NEW.tenant_id AND seq = NEW.seq - 1);
                   UPDATE audit_heads SET seq = NEW.seq, hash = NEW.hash, updated_at = NEW.at
                    WHERE tenant_id = NEW.tenant_id;
                 END;",
            )
            .await?;
            for table in APPEND_ONLY {
                for verb in ["UPDATE", "DELETE"] {
                    conn.execute_unprepared(&format!(
                        "CREATE TRIGGER {table}_no_{verb} BEFORE {verb} ON {table}
                         BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END;",
                        verb = verb.to_lowercase()
                    ))
                    .await?;
                }
            }
        }
    }

    Ok(())
}
