//! What auditing costs: the same tenant-scoped read of a tenant's rows, plain and through
//! the audit trail (its event appended in the same transaction), in the same run; and how
//! many events per second the trail appends for one tenant and across 100, from 8
//! concurrent writers.
//!
//! `cargo bench -p portico-infra --bench audit`. Runs on SQLite always, and on PostgreSQL
//! when `TEST_POSTGRES_URL` (a superuser URL) is set.

#![allow(
    clippy::unwrap_used,
    clippy::print_stdout,
    reason = "a benchmark's report is its output"
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use portico_infra::keys::local::{LocalKeyService, RootKey};
use portico_migrations::{Migrator, MigratorTrait};
use portico_platform::audit::{Action, Actor, ActorKind, AuditTrail, NewEvent, Purpose};
use portico_platform::clock::SystemClock;
use portico_platform::crypto::cache::CacheLimits;
use portico_platform::crypto::vault::Vault;
use portico_platform::db::{Db, TenantTx};
use portico_platform::entropy::SystemEntropy;
use portico_platform::ids::{PatientId, TenantId};
use portico_platform::principal::Principal;
use portico_tenants::{NewTenant, TenantService};
use portico_tests::PostgresTestDb;
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, Statement,
};

const TENANTS: usize = 100;
const ROWS: usize = 20;
const ROUNDS: usize = 7;
const READS_PER_ROUND: usize = 300;
const WRITERS: usize = 8;
const APPENDS_PER_WRITER: usize = 250;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    println!(
        "audited vs plain read of {ROWS} rows (median of {ROUNDS} rounds of {READS_PER_ROUND}); \
         appends by {WRITERS} concurrent writers\n"
    );

    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("bench.db").display()
    );
    let owner = Database::connect(url.as_str()).await.unwrap();
    owner
        .execute_unprepared("PRAGMA journal_mode = WAL")
        .await
        .unwrap();
    Migrator::up(&owner, None).await.unwrap();
    run("SQLite", connect(&url).await).await;

    if std::env::var_os("TEST_POSTGRES_URL").is_some() {
        let database = PostgresTestDb::create().await;
        let owner = Database::connect(database.owner_url()).await.unwrap();
        Migrator::up(&owner, None).await.unwrap();
        run("PostgreSQL", connect(&database.server_url()).await).await;
    } else {
        println!("PostgreSQL: skipped (TEST_POSTGRES_URL is not set)");
    }
}

async fn connect(url: &str) -> DatabaseConnection {
    let mut options = ConnectOptions::new(url);
    options.max_connections(10).sqlx_logging(false);
    Database::connect(options).await.unwrap()
}

async fn run(name: &str, server: DatabaseConnection) {
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
    let service = TenantService::new(
        db.clone(),
        vault,
        Arc::new(SystemClock),
        Arc::new(SystemEntropy),
    );
    let trail = AuditTrail::new(db.clone(), Arc::new(SystemClock));
    let mut tenants = Vec::new();
    for i in 0..TENANTS {
        let new = NewTenant {
            slug: format!("clinic-{i}").parse().unwrap(),
            display_name: format!("Clinic {i}"),
            domains: vec![],
        };
        let tenant = service.create(&Principal::System, new).await.unwrap().id;
        for row in 0..ROWS {
            let actor = Actor::new(ActorKind::Staff, format!("stf-{row}")).unwrap();
            trail
                .register_actor(
                    tenant,
                    &actor,
                    &format!("Staff member {row}"),
                    Some("nurse"),
                )
                .await
                .unwrap();
        }
        tenants.push(tenant);
    }
    let patient = PatientId::from_uuid(uuid::Uuid::from_bytes([7; 16]));

    let (mut plain, mut written, mut audited) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..=ROUNDS {
        let started = Instant::now();
        for i in 0..READS_PER_ROUND {
            let tx = db.begin(tenants[i % TENANTS]).await.unwrap();
            assert_eq!(read_rows(&tx).await, ROWS);
            tx.commit().await.unwrap();
        }
        let plain_round = started.elapsed();

        // The same read, plus one durable row written in its transaction: what any write
        // costs (a commit that must reach the disk), without the chain.
        let started = Instant::now();
        for i in 0..READS_PER_ROUND {
            let tx = db.begin_serialized(tenants[i % TENANTS]).await.unwrap();
            assert_eq!(read_rows(&tx).await, ROWS);
            touch(&tx, round * READS_PER_ROUND + i).await;
            tx.commit().await.unwrap();
        }
        let written_round = started.elapsed();

        let started = Instant::now();
        for i in 0..READS_PER_ROUND {
            let mut access = trail.begin(tenants[i % TENANTS]).await.unwrap();
            let rows = read_rows(access.tx()).await;
            access.record(event(patient));
            assert_eq!(access.release(rows).await.unwrap(), ROWS);
        }
        let audited_round = started.elapsed();
        if round > 0 {
            plain.push(plain_round);
            written.push(written_round);
            audited.push(audited_round);
        }
    }
    let per_read = |samples: &mut Vec<Duration>| {
        samples.sort();
        samples[samples.len() / 2].as_secs_f64() * 1e6 / READS_PER_ROUND as f64
    };
    let (plain, written, audited) = (
        per_read(&mut plain),
        per_read(&mut written),
        per_read(&mut audited),
    );

    let one = appends_per_second(&trail, &tenants[..1], patient).await;
    let many = appends_per_second(&trail, &tenants, patient).await;

    println!("{name}");
    println!("  tenant-scoped read (baseline)      {plain:8.1} µs/read   1.00×");
    println!(
        "  read + one durable row written     {written:8.1} µs/read   {:.2}×",
        written / plain
    );
    println!(
        "  audited read (Access, same tx)     {audited:8.1} µs/read   {:.2}×   ({:.2}× the durable write)",
        audited / plain,
        audited / written
    );
    println!("  appends, one tenant                {one:8.0} events/s");
    println!("  appends, across {TENANTS} tenants        {many:8.0} events/s");
    println!();
}

/// The tenant's directory rows, read through its transaction.
async fn read_rows(tx: &TenantTx) -> usize {
    let backend = tx.conn().get_database_backend();
    let sql = match backend {
        DbBackend::Postgres => {
            "SELECT kind, actor_id, display_name, role FROM audit_actors WHERE tenant_id = $1"
        }
        _ => "SELECT kind, actor_id, display_name, role FROM audit_actors WHERE tenant_id = ?",
    };
    tx.conn()
        .query_all_raw(Statement::from_sql_and_values(
            backend,
            sql,
            [tx.tenant().as_uuid().into()],
        ))
        .await
        .unwrap()
        .len()
}

/// Writes one row in `tx`: an update of one of the tenant's directory rows.
async fn touch(tx: &TenantTx, n: usize) {
    let backend = tx.conn().get_database_backend();
    let sql = match backend {
        DbBackend::Postgres => {
            "UPDATE audit_actors SET role = $1 WHERE tenant_id = $2 AND actor_id = 'stf-0'"
        }
        _ => "UPDATE audit_actors SET role = ? WHERE tenant_id = ? AND actor_id = 'stf-0'",
    };
    tx.conn()
        .execute_raw(Statement::from_sql_and_values(
            backend,
            sql,
            [format!("nurse-{n}").into(), tx.tenant().as_uuid().into()],
        ))
        .await
        .unwrap();
}

fn event(patient: PatientId) -> NewEvent {
    NewEvent::new(
        Actor::new(ActorKind::Staff, "stf-1").unwrap(),
        Action::Read,
        "Observation",
        Purpose::Treatment,
    )
    .unwrap()
    .patient(patient)
}

/// Events per second appended by [`WRITERS`] concurrent writers spread over `tenants`.
async fn appends_per_second(trail: &AuditTrail, tenants: &[TenantId], patient: PatientId) -> f64 {
    let started = Instant::now();
    let mut writers = Vec::new();
    for writer in 0..WRITERS {
        let trail = trail.clone();
        let tenants = tenants.to_vec();
        writers.push(tokio::spawn(async move {
            for i in 0..APPENDS_PER_WRITER {
                let tenant = tenants[(writer * APPENDS_PER_WRITER + i) % tenants.len()];
                trail.record(tenant, &[event(patient)]).await.unwrap();
            }
        }));
    }
    for writer in writers {
        writer.await.unwrap();
    }

    (WRITERS * APPENDS_PER_WRITER) as f64 / started.elapsed().as_secs_f64()
}
