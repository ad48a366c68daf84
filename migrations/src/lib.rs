//! Portico's schema, as sea-orm migrations that run on SQLite and on PostgreSQL.
//!
//! Migrations run as the schema owner (`database.migrate_url`); the server runs as a role
//! that owns nothing (see docs/DATABASE.md). On PostgreSQL every migration also grants the
//! `portico_app` role exactly what the server needs, and puts every tenant-owned table under
//! row-level security with [`isolate_tenant_table`].

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

mod m20261203_000001_tenants;
mod m20261203_000002_keys;
mod m20261203_000003_audit;
mod m20261203_000004_identity;
mod m20261204_000005_enrollment;
mod m20261204_000006_staff_and_sms;
mod m20261204_000007_identity_provider;
mod m20261204_000008_passkeys;
mod m20261204_000009_connectors;
mod m20261204_000010_records;
mod m20261204_000011_branding;

/// The role the server's login role must be a member of on PostgreSQL. It owns nothing, is
/// not a superuser and cannot bypass row-level security.
pub const APP_ROLE: &str = "portico_app";

/// All of Portico's migrations, in order.
#[derive(Debug)]
pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261203_000001_tenants::Migration),
            Box::new(m20261203_000002_keys::Migration),
            Box::new(m20261203_000003_audit::Migration),
            Box::new(m20261203_000004_identity::Migration),
            Box::new(m20261204_000005_enrollment::Migration),
            Box::new(m20261204_000006_staff_and_sms::Migration),
            Box::new(m20261204_000007_identity_provider::Migration),
            Box::new(m20261204_000008_passkeys::Migration),
            Box::new(m20261204_000009_connectors::Migration),
            Box::new(m20261204_000010_records::Migration),
            Box::new(m20261204_000011_branding::Migration),
        ]
    }
}

/// Creates the server's group role if it is missing, and lets it use the schema.
///
/// Roles are cluster-wide, so two databases migrating at once can race to create it; the
/// loser's duplicate error is swallowed.
async fn ensure_app_role(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    if manager.get_database_backend() != DbBackend::Postgres {
        return Ok(());
    }
    let conn = manager.get_connection();
    conn.execute_unprepared(&format!(
        "DO $$ BEGIN
           IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{APP_ROLE}') THEN
             CREATE ROLE {APP_ROLE} NOLOGIN NOSUPERUSER NOBYPASSRLS;
           END IF;
         EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
         END $$;"
    ))
    .await?;
    conn.execute_unprepared(&format!("GRANT USAGE ON SCHEMA public TO {APP_ROLE}"))
        .await?;
    conn.execute_unprepared(&format!("GRANT SELECT ON seaql_migrations TO {APP_ROLE}"))
        .await?;

    Ok(())
}

/// Grants the server's role `privileges` (e.g. `"SELECT, INSERT"`) on a table (PostgreSQL
/// only; SQLite has no roles).
async fn grant(manager: &SchemaManager<'_>, table: &str, privileges: &str) -> Result<(), DbErr> {
    if manager.get_database_backend() != DbBackend::Postgres {
        return Ok(());
    }
    manager
        .get_connection()
        .execute_unprepared(&format!("GRANT {privileges} ON {table} TO {APP_ROLE}"))
        .await?;

    Ok(())
}

/// Puts a tenant-owned table under row-level security on PostgreSQL: rows are visible and
/// writable only inside a transaction whose `app.tenant_id` is the row's `tenant_id`.
///
/// `FORCE` makes the policy apply to the table's owner too. An unset or empty setting
/// matches no row, so forgetting the scope fails closed.
pub async fn isolate_tenant_table(
    manager: &SchemaManager<'_>,
    table: &str,
    privileges: &str,
) -> Result<(), DbErr> {
    if manager.get_database_backend() != DbBackend::Postgres {
        return Ok(());
    }
    let conn = manager.get_connection();
    conn.execute_unprepared(&format!(
        "ALTER TABLE {table} ENABLE ROW LEVEL SECURITY;
         ALTER TABLE {table} FORCE ROW LEVEL SECURITY;
         CREATE POLICY tenant_isolation ON {table}
           USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
           WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);"
    ))
    .await?;
    grant(manager, table, privileges).await
}

/// `tenants`, as later migrations refer to it.
#[derive(DeriveIden)]
enum Tenants {
    Table,
    Id,
}

/// The foreign key from a tenant-owned table's `tenant_id` column to `tenants`.
fn belongs_to_tenant<T: IntoIden + 'static>(table: T, column: T) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .from(table, column)
        .to(Tenants::Table, Tenants::Id)
        .to_owned()
}

/// A non-null timestamp column.
fn timestamp<T: IntoIden>(name: T) -> ColumnDef {
    ColumnDef::new(name)
        .timestamp_with_time_zone()
        .not_null()
        .to_owned()
}

/// A nullable timestamp column.
fn optional_timestamp<T: IntoIden>(name: T) -> ColumnDef {
    ColumnDef::new(name)
        .timestamp_with_time_zone()
        .null()
        .to_owned()
}

pub use sea_orm_migration::MigratorTrait;
