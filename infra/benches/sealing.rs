//! Sealing and opening a 2 KB FHIR resource through the vault (cached data key), against
//! raw AES-256-GCM on the same bytes in the same run; then how many key-service calls
//! 10,000 opens across 100 tenants cost a node whose cache starts cold.
//!
//! `cargo bench -p portico-infra --bench sealing`. Targets: the vault within 1.2× of raw
//! AES-GCM; key-service calls at most 1% of opens.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    reason = "a benchmark's report is its output"
)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use criterion::Criterion;
use portico_infra::keys::local::{LocalKeyService, RootKey};
use portico_platform::clock::SystemClock;
use portico_platform::crypto::cache::CacheLimits;
use portico_platform::crypto::seal::Place;
use portico_platform::crypto::vault::Vault;
use portico_platform::db::Db;
use portico_platform::entropy::{Entropy, SystemEntropy};
use portico_platform::principal::Principal;
use portico_tenants::{NewTenant, TenantService};
use portico_tests::TestDatabase;
use portico_tests::keys::CountingKeys;

/// A lab Observation of about 2 KB, as an EHR would send it.
fn fhir_resource() -> Vec<u8> {
    let mut resource = serde_json::json!({
        "resourceType": "Observation",
        "id": "f001",
        "status": "final",
        "category": [{ "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory" }] }],
        "code": { "coding": [{ "system": "http://loinc.org", "code": "15074-8", "display": "Glucose [Moles/volume] in Blood" }] },
        "subject": { "reference": "Patient/f001", "display": "P. van de Heuvel" },
        "effectivePeriod": { "start": "2013-04-02T09:30:10+01:00" },
        "issued": "2013-04-03T15:30:10+01:00",
        "performer": [{ "reference": "Practitioner/f005", "display": "A. Langeveld" }],
        "valueQuantity": { "value": 6.3, "unit": "mmol/l", "system": "http://unitsofmeasure.org", "code": "mmol/L" },
        "interpretation": [{ "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation", "code": "H", "display": "High" }] }],
        "referenceRange": [{ "low": { "value": 3.1, "unit": "mmol/l" }, "high": { "value": 6.2, "unit": "mmol/l" } }]
    })
    .to_string()
    .into_bytes();
    resource.resize(2048, b' ');
    resource
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let resource = fhir_resource();
    let (vault, db, keys, tenants) = runtime.block_on(setup(100));
    let sunrise = tenants[0];
    let place = Place {
        tenant: sunrise,
        table: "observations",
        column: "resource",
        row: "f001",
    };
    let tx = runtime.block_on(db.begin(sunrise)).unwrap();
    let sealed = runtime
        .block_on(vault.seal(&tx, &place, &resource))
        .unwrap();

    let raw_key = {
        let mut key = [0u8; 32];
        SystemEntropy.fill(&mut key);
        Aes256Gcm::new(&key.into())
    };
    let aad = b"tenant|observations|resource|f001";

    let reports = tempfile::tempdir().unwrap();
    let mut criterion = Criterion::default()
        .output_directory(reports.path())
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    let mut group = criterion.benchmark_group("seal_open_2kb");
    group.bench_function("raw_aes_256_gcm", |b| {
        b.iter(|| {
            let mut nonce = [0u8; 12];
            SystemEntropy.fill(&mut nonce);
            let nonce = Nonce::from_slice(&nonce);
            let ciphertext = raw_key
                .encrypt(
                    nonce,
                    Payload {
                        msg: &resource,
                        aad,
                    },
                )
                .unwrap();
            black_box(
                raw_key
                    .decrypt(
                        nonce,
                        Payload {
                            msg: &ciphertext,
                            aad,
                        },
                    )
                    .unwrap(),
            )
        });
    });
    // The sealed format alone (header, associated data, zeroizing the opened plaintext),
    // without the vault's cache and async call: where the vault's overhead comes from.
    let cipher = portico_platform::crypto::seal::Cipher::new(
        &portico_platform::crypto::keys::DataKey::from_bytes([7; 32]),
    );
    let key_id = portico_platform::ids::DataKeyId::from_uuid(Default::default());
    group.bench_function("seal_format", |b| {
        b.iter(|| {
            let sealed = portico_platform::crypto::seal::seal(
                &cipher,
                key_id,
                &place,
                &SystemEntropy,
                &resource,
            );
            black_box(portico_platform::crypto::seal::open(&cipher, &place, &sealed).unwrap())
        });
    });
    // Timed inside the runtime, as a service calls it from async code: entering the
    // runtime once per pair (`block_on`) is the benchmark's cost, not the vault's.
    group.bench_function("vault", |b| {
        b.iter_custom(|iters| {
            runtime.block_on(async {
                let started = std::time::Instant::now();
                for _ in 0..iters {
                    let sealed = vault.seal(&tx, &place, &resource).await.unwrap();
                    black_box(vault.open(&tx, &place, &sealed).await.unwrap());
                }
                started.elapsed()
            })
        });
    });
    group.finish();
    criterion.final_summary();
    if !std::env::args().any(|arg| arg == "--bench") {
        // `cargo test --benches` runs each function once as a smoke test; there is nothing
        // to report.
        runtime.block_on(tx.commit()).unwrap();
        return;
    }

    let mean = |name: &str| -> f64 {
        let path = reports
            .path()
            .join("seal_open_2kb")
            .join(name)
            .join("new/estimates.json");
        let text = std::fs::read_to_string(&path).unwrap();
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        value["mean"]["point_estimate"].as_f64().unwrap()
    };
    let (raw, format, through_vault) =
        (mean("raw_aes_256_gcm"), mean("seal_format"), mean("vault"));
    println!("\nseal + open of a 2 KB FHIR resource (mean, same run)");
    println!(
        "  raw AES-256-GCM (baseline)   {:>8.2} µs   1.00×",
        raw / 1000.0
    );
    println!(
        "  sealed format, no vault      {:>8.2} µs   {:.2}×",
        format / 1000.0,
        format / raw
    );
    println!(
        "  vault, cached data key       {:>8.2} µs   {:.2}×  (target ≤ 1.20×)",
        through_vault / 1000.0,
        through_vault / raw
    );

    // Key-service calls: 10,000 opens across 100 tenants on a node whose cache is cold.
    let calls = runtime.block_on(async {
        let mut values = Vec::new();
        for tenant in &tenants {
            let place = Place {
                tenant: *tenant,
                table: "observations",
                column: "resource",
                row: "f001",
            };
            let tx = db.begin(*tenant).await.unwrap();
            values.push((*tenant, vault.seal(&tx, &place, &resource).await.unwrap()));
            tx.commit().await.unwrap();
        }
        let cold = Vault::new(
            db.clone(),
            keys.clone(),
            CacheLimits::default(),
            Arc::new(SystemClock),
            Arc::new(SystemEntropy),
        );
        let before = keys.calls();
        for (tenant, value) in &values {
            let place = Place {
                tenant: *tenant,
                table: "observations",
                column: "resource",
                row: "f001",
            };
            let tx = db.begin(*tenant).await.unwrap();
            for _ in 0..100 {
                black_box(cold.open(&tx, &place, value).await.unwrap());
            }
        }
        keys.calls() - before
    });
    println!(
        "  key-service calls per 10,000 opens across 100 tenants: {calls} ({:.2}%, target ≤ 1%)",
        calls as f64 / 100.0
    );
    drop(sealed);
    runtime.block_on(tx.commit()).unwrap();
}

async fn setup(
    tenant_count: usize,
) -> (
    Vault,
    Db,
    Arc<CountingKeys>,
    Vec<portico_platform::ids::TenantId>,
) {
    let database = Box::leak(Box::new(TestDatabase::migrated().await));
    let db = Db::new(database.connect_as_server().await);
    let root_dir = Box::leak(Box::new(tempfile::tempdir().unwrap()));
    let root = RootKey::load_or_create(&root_dir.path().join("root.key"), &SystemEntropy).unwrap();
    let local = LocalKeyService::new(
        db.clone(),
        root,
        Arc::new(SystemClock),
        Arc::new(SystemEntropy),
    );
    let keys = Arc::new(CountingKeys::new(Arc::new(local)));
    let vault = Vault::new(
        db.clone(),
        keys.clone(),
        CacheLimits::default(),
        Arc::new(SystemClock),
        Arc::new(SystemEntropy),
    );
    let service = TenantService::new(
        db.clone(),
        vault.clone(),
        Arc::new(SystemClock),
        Arc::new(SystemEntropy),
    );
    let mut tenants = Vec::new();
    for i in 0..tenant_count {
        let new = NewTenant {
            slug: format!("clinic-{i}").parse().unwrap(),
            display_name: format!("Clinic {i}"),
            domains: vec![],
        };
        tenants.push(service.create(&Principal::System, new).await.unwrap().id);
    }

    (vault, db, keys, tenants)
}
