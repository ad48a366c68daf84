//! What tenant isolation costs on a read: a tenant's settings through `TenantService`
//! (a `TenantTx`: transaction, `set_config('app.tenant_id')`, filtered select, commit, under
//! row-level security on PostgreSQL), against the same row read with a raw statement on
//! the same database in the same run.
//!
//! `cargo bench -p portico-infra --bench tenant_scope`. Runs on SQLite always, and on PostgreSQL when
//! `TEST_POSTGRES_URL` (a superuser URL) is set. Prints median time per read and the ratio
//! to the raw baseline.

#![allow(
    clippy::unwrap_used,
    clippy::print_stdout,
    reason = "a benchmark's report is its output"
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use portico_infra::keys::local::{LocalKeyService, RootKey};
use portico_migrations::{Migrator, MigratorTrait};
use portico_platform::clock::SystemClock;
use portico_platform::crypto::cache::CacheLimits;
use portico_platform::crypto::vault::Vault;
use portico_platform::db::Db;
use portico_platform::entropy::SystemEntropy;
use portico_platform::ids::TenantId;
use portico_platform::principal::Principal;
use portico_tenants::{NewTenant, TenantService};
use portico_tests::PostgresTestDb;
use sea_orm::{
    ConnectionTrait, Database, DatabaseConnection, DbBackend, Statement, TransactionTrait,
};

const TENANTS: usize = 50;
const ROUNDS: usize = 7;
const READS_PER_ROUND: usize = 500;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    println!(
        "tenant-scoped read vs raw read, median of {ROUNDS} rounds of {READS_PER_ROUND} reads\n"
    );

    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("bench.db").display()
    );
    let sqlite = Database::connect(url.as_str()).await.unwrap();
    Migrator::up(&sqlite, None).await.unwrap();
    run("SQLite", sqlite.clone(), sqlite).await;

    if std::env::var_os("TEST_POSTGRES_URL").is_some() {
        let database = PostgresTestDb::create().await;
        let owner = Database::connect(database.owner_url()).await.unwrap();
        Migrator::up(&owner, None).await.unwrap();
        let server = Database::connect(database.server_url()).await.unwrap();
        run("PostgreSQL", owner, server).await;
    } else {
        println!("PostgreSQL: skipped (TEST_POSTGRES_URL is not set)");
    }
}

/// Measures on one database: `raw` reads as the owner, `server` as the server's role.
async fn run(name: &str, raw: DatabaseConnection, server: DatabaseConnection) {
    let db = Db::new(server);
    let root_dir = tempfile::tempdir().unwrap();
    let root = RootKey::load_or_create(&root_dir.path().join("root.key"), &SystemEntropy).unwrap();
    let keys = Arc::new(LocalKeyService::new(
        db.clone(),
        root,
        Arc::new(SystemClock),
        Arc::new(SystemEntropy),
    ));
    let vault = Vault::new(
        db.clone(),
        keys,
        CacheLimits::default(),
        Arc::new(SystemClock),
        Arc::new(SystemEntropy),
    );
    let service = TenantService::new(db, vault, Arc::new(SystemClock), Arc::new(SystemEntropy));
    let mut tenants = Vec::new();
    for i in 0..TENANTS {
        let new = NewTenant {
            slug: format!("clinic-{i}").parse().unwrap(),
            display_name: format!("Clinic {i}"),
            domains: vec![],
        };
        tenants.push(service.create(&Principal::System, new).await.unwrap().id);
    }
    let backend = raw.get_database_backend();
    let select = match backend {
        DbBackend::Postgres => "SELECT default_locale FROM tenant_settings WHERE tenant_id = $1",
        _ => "SELECT default_locale FROM tenant_settings WHERE tenant_id = ?",
    };
    let statement = |tenant: TenantId| {
        Statement::from_sql_and_values(backend, select, [tenant.as_uuid().into()])
    };

    let (mut bare, mut in_tx, mut scoped) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..=ROUNDS {
        let started = Instant::now();
        for i in 0..READS_PER_ROUND {
            let row = raw
                .query_one_raw(statement(tenants[i % TENANTS]))
                .await
                .unwrap();
            assert!(row.is_some());
        }
        let bare_round = started.elapsed();

        let started = Instant::now();
        for i in 0..READS_PER_ROUND {
            let tx = raw.begin().await.unwrap();
            assert!(
                tx.query_one_raw(statement(tenants[i % TENANTS]))
                    .await
                    .unwrap()
                    .is_some()
            );
            tx.commit().await.unwrap();
        }
        let tx_round = started.elapsed();

        let started = Instant::now();
        for i in 0..READS_PER_ROUND {
            let settings = service
                .settings(&Principal::System, tenants[i % TENANTS])
                .await
                .unwrap();
            assert_eq!(settings.default_locale, "en");
        }
        let scoped_round = started.elapsed();

        // Round 0 warms caches and connections; it is not counted.
        if round > 0 {
            bare.push(bare_round);
            in_tx.push(tx_round);
            scoped.push(scoped_round);
        }
    }

    let per_read = |samples: &mut Vec<Duration>| {
        samples.sort();
        samples[samples.len() / 2].as_secs_f64() * 1e6 / READS_PER_ROUND as f64
    };
    let (bare, in_tx, scoped) = (
        per_read(&mut bare),
        per_read(&mut in_tx),
        per_read(&mut scoped),
    );
    println!("{name}");
    println!("  raw select (baseline)                 {bare:8.1} µs/read   1.00×");
    println!(
        "  raw select in a transaction           {in_tx:8.1} µs/read   {:.2}×",
        in_tx / bare
    );
    println!(
        "  TenantService::settings (TenantTx)    {scoped:8.1} µs/read   {:.2}×",
        scoped / bare
    );
    println!();
}
