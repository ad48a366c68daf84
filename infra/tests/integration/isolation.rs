//! Tenant isolation in the database itself: on PostgreSQL, row-level security keeps one
//! tenant's rows from another's transaction even when a statement omits the tenant filter.
//!
//! These need PostgreSQL and run in the PostgreSQL pass of `./tests/run`
//! (`--include-ignored`, with `TEST_POSTGRES_URL` set).

use portico_platform::db::Db;
use portico_tenants::Tenant;
use portico_tests::TestDatabase;
use sea_orm::{ConnectionTrait, Database, DbBackend, Statement};

use crate::fixture::Platform;

struct Fixture {
    platform: Platform,
    /// Connected as the server's role: owns nothing, bound by row-level security.
    app: Db,
    sunrise: Tenant,
    harbor: Tenant,
}

async fn fixture() -> Fixture {
    assert!(
        portico_tests::postgres_requested(),
        "run with TEST_DATABASE=postgres (./tests/run does)"
    );
    let platform = Platform::new(Default::default()).await;
    let sunrise = platform.tenant("sunrise").await;
    let harbor = platform.tenant("harbor").await;
    let app = platform.db.clone();

    Fixture {
        platform,
        app,
        sunrise,
        harbor,
    }
}

fn owner_url(platform: &Platform) -> String {
    match &platform.database {
        TestDatabase::Postgres(db) => db.owner_url(),
        TestDatabase::Sqlite(_) => unreachable!("PostgreSQL only"),
    }
}

/// The owners of every `tenant_settings` row the connection can see.
async fn settings_owners(conn: &impl ConnectionTrait) -> Vec<String> {
    // Deliberately no tenant filter: only the database's policy stands in the way.
    let rows = conn
        .query_all_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT tenant_id::text AS owner FROM tenant_settings ORDER BY 1",
        ))
        .await
        .unwrap();
    rows.iter()
        .map(|row| row.try_get::<String>("", "owner").unwrap())
        .collect()
}

#[tokio::test]
#[ignore = "needs PostgreSQL: run by ./tests/run in its PostgreSQL pass"]
async fn a_statement_without_the_tenant_filter_sees_only_its_own_tenant() {
    let f = fixture().await;

    let tx = f.app.begin(f.sunrise.id).await.unwrap();
    let seen = settings_owners(tx.conn()).await;

    assert_eq!(seen, vec![f.sunrise.id.to_string()]);
    assert!(!seen.contains(&f.harbor.id.to_string()));
}

#[tokio::test]
#[ignore = "needs PostgreSQL: run by ./tests/run in its PostgreSQL pass"]
async fn outside_any_tenant_scope_no_tenant_row_is_visible() {
    let f = fixture().await;

    assert!(settings_owners(f.app.platform()).await.is_empty());
}

#[tokio::test]
#[ignore = "needs PostgreSQL: run by ./tests/run in its PostgreSQL pass"]
async fn a_row_cannot_be_changed_or_written_for_another_tenant() {
    let f = fixture().await;
    let tx = f.app.begin(f.sunrise.id).await.unwrap();

    let update = tx
        .conn()
        .execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "UPDATE tenant_settings SET default_locale = 'es' WHERE tenant_id = $1",
            [f.harbor.id.as_uuid().into()],
        ))
        .await
        .unwrap();
    assert_eq!(
        update.rows_affected(),
        0,
        "another tenant's row was updated"
    );

    let insert = tx
        .conn()
        .execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "INSERT INTO tenant_settings (tenant_id, default_locale, created_at, updated_at) \
             VALUES ($1, 'es', now(), now())",
            [f.harbor.id.as_uuid().into()],
        ))
        .await;
    assert!(insert.is_err(), "a row was written into another tenant");
}

#[tokio::test]
#[ignore = "needs PostgreSQL: run by ./tests/run in its PostgreSQL pass"]
async fn every_table_with_a_tenant_column_is_under_forced_row_level_security() {
    let f = fixture().await;
    let owner = Database::connect(owner_url(&f.platform)).await.unwrap();

    // `tenant_domains` is registry: hosts are resolved before any tenant scope exists.
    let rows = owner
        .query_all_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT c.relname::text AS name, c.relrowsecurity AS enabled,
                    c.relforcerowsecurity AS forced,
                    EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = c.oid) AS has_policy
               FROM pg_class c
               JOIN pg_namespace n ON n.oid = c.relnamespace
               JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id'
              WHERE n.nspname = 'public' AND c.relkind = 'r'
                AND c.relname <> 'tenant_domains'",
        ))
        .await
        .unwrap();

    assert!(!rows.is_empty());
    for row in rows {
        let name: String = row.try_get("", "name").unwrap();
        let secured = row.try_get::<bool>("", "enabled").unwrap()
            && row.try_get::<bool>("", "forced").unwrap()
            && row.try_get::<bool>("", "has_policy").unwrap();
        assert!(
            secured,
            "{name} has a tenant_id column but no forced row-level security"
        );
    }
    owner.close().await.unwrap();
}

#[tokio::test]
#[ignore = "needs PostgreSQL: run by ./tests/run in its PostgreSQL pass"]
async fn the_server_role_is_neither_superuser_nor_exempt_from_policies() {
    let f = fixture().await;

    let row = f
        .app
        .platform()
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user",
        ))
        .await
        .unwrap()
        .unwrap();

    assert!(!row.try_get::<bool>("", "rolsuper").unwrap());
    assert!(!row.try_get::<bool>("", "rolbypassrls").unwrap());
}
