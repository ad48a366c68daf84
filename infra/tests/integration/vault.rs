//! Sealing PHI through the vault with the embedded key service: what reaches the database,
//! what refuses to open, how often the key service is asked, and what an outage does.

use chrono::Duration;
use portico_platform::crypto::cache::CacheLimits;
use portico_platform::crypto::keys::{EncryptionContext, KeyError, KeyPurpose, KeyService};
use portico_platform::crypto::seal::{Place, SealError};
use portico_platform::crypto::vault::VaultError;
use portico_platform::ids::TenantId;
use portico_tests::TestDatabase;
use sea_orm::{ConnectionTrait, Database, DbBackend, Statement};

use crate::fixture::Platform;

fn place(tenant: TenantId, row: &str) -> Place<'_> {
    Place {
        tenant,
        table: "messages",
        column: "body",
        row,
    }
}

#[tokio::test]
async fn a_sealed_value_opens_for_its_tenant_and_place() {
    let p = Platform::new(CacheLimits::default()).await;
    let sunrise = p.tenant("sunrise").await;

    let tx = p.db.begin(sunrise.id).await.unwrap();
    let sealed = p
        .vault
        .seal(&tx, &place(sunrise.id, "m1"), b"Your A1c is 6.1%")
        .await
        .unwrap();
    let opened = p
        .vault
        .open(&tx, &place(sunrise.id, "m1"), &sealed)
        .await
        .unwrap();

    assert_eq!(opened.as_slice(), b"Your A1c is 6.1%");
}

#[tokio::test]
async fn another_tenant_cannot_open_it_even_with_the_bytes() {
    let p = Platform::new(CacheLimits::default()).await;
    let sunrise = p.tenant("sunrise").await;
    let harbor = p.tenant("harbor").await;
    let tx = p.db.begin(sunrise.id).await.unwrap();
    let sealed = p
        .vault
        .seal(&tx, &place(sunrise.id, "m1"), b"note")
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let theirs = p.db.begin(harbor.id).await.unwrap();
    let err = p
        .vault
        .open(&theirs, &place(harbor.id, "m1"), &sealed)
        .await
        .unwrap_err();
    assert!(
        matches!(err, VaultError::Seal(SealError::WrongTenant)),
        "{err:?}"
    );

    // Nor by claiming to be the other tenant inside its own transaction.
    let err = p
        .vault
        .open(&theirs, &place(sunrise.id, "m1"), &sealed)
        .await
        .unwrap_err();
    assert!(
        matches!(err, VaultError::Seal(SealError::WrongTenant)),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_value_naming_an_unknown_data_key_is_refused_as_such() {
    let p = Platform::new(CacheLimits::default()).await;
    let sunrise = p.tenant("sunrise").await;
    let tx = p.db.begin(sunrise.id).await.unwrap();
    let mut sealed = p
        .vault
        .seal(&tx, &place(sunrise.id, "m1"), b"note")
        .await
        .unwrap();
    sealed[1..17].copy_from_slice(&[0xAB; 16]);

    let err = p
        .vault
        .open(&tx, &place(sunrise.id, "m1"), &sealed)
        .await
        .unwrap_err();

    assert!(matches!(err, VaultError::UnknownKey), "{err:?}");
}

#[tokio::test]
async fn a_wrapped_data_key_does_not_open_under_another_tenants_context() {
    let p = Platform::new(CacheLimits::default()).await;
    let sunrise = p.tenant("sunrise").await;
    let harbor = p.tenant("harbor").await;
    let key = p
        .keys
        .create_tenant_key(sunrise.id, "sunrise-2")
        .await
        .unwrap();
    let generated = p
        .keys
        .generate_data_key(&key, &EncryptionContext::new(sunrise.id, KeyPurpose::Phi))
        .await
        .unwrap();

    let other_context = EncryptionContext::new(harbor.id, KeyPurpose::Phi);
    let err = p
        .keys
        .decrypt_data_key(&key, &generated.wrapped, &other_context)
        .await
        .unwrap_err();
    assert!(matches!(err, KeyError::InvalidCiphertext), "{err:?}");

    let mut tampered = generated.wrapped.clone();
    *tampered.last_mut().unwrap() ^= 1;
    let own_context = EncryptionContext::new(sunrise.id, KeyPurpose::Phi);
    let err = p
        .keys
        .decrypt_data_key(&key, &tampered, &own_context)
        .await
        .unwrap_err();
    assert!(matches!(err, KeyError::InvalidCiphertext), "{err:?}");
}

#[tokio::test]
async fn the_key_service_is_asked_once_per_data_key_not_once_per_value() {
    let p = Platform::new(CacheLimits::default()).await;
    let mut sealed = Vec::new();
    for i in 0..100 {
        let tenant = p.tenant(&format!("clinic-{i}")).await;
        let tx = p.db.begin(tenant.id).await.unwrap();
        let value = p
            .vault
            .seal(&tx, &place(tenant.id, "m1"), b"Potassium 4.1")
            .await
            .unwrap();
        tx.commit().await.unwrap();
        sealed.push((tenant.id, value));
    }
    assert_eq!(
        p.keys.generated.load(std::sync::atomic::Ordering::SeqCst),
        100
    );

    // A node that has not seen these keys yet: 10,000 opens across the 100 tenants.
    let cold = p.cold_vault();
    let before = p.keys.calls();
    for (tenant, value) in &sealed {
        let tx = p.db.begin(*tenant).await.unwrap();
        for _ in 0..100 {
            let opened = cold.open(&tx, &place(*tenant, "m1"), value).await.unwrap();
            assert_eq!(opened.as_slice(), b"Potassium 4.1");
        }
    }
    let calls = p.keys.calls() - before;

    assert_eq!(calls, 100, "one unwrap per data key");
    assert!(
        calls * 100 <= 10_000,
        "more than 1% of opens reached the key service"
    );
}

#[tokio::test]
async fn a_sealing_key_is_replaced_after_its_maximum_seals() {
    let p = Platform::new(CacheLimits {
        max_seals: 10,
        ..CacheLimits::default()
    })
    .await;
    let sunrise = p.tenant("sunrise").await;
    let tx = p.db.begin(sunrise.id).await.unwrap();

    let mut keys = std::collections::BTreeSet::new();
    for i in 0..25 {
        let row = format!("m{i}");
        let sealed = p
            .vault
            .seal(&tx, &place(sunrise.id, &row), b"x")
            .await
            .unwrap();
        keys.insert(sealed[1..17].to_vec());
    }

    assert_eq!(keys.len(), 3, "25 seals at 10 per key need 3 keys");
}

#[tokio::test]
async fn during_an_outage_cached_keys_keep_working_then_requests_fail_closed_until_it_ends() {
    let p = Platform::new(CacheLimits {
        max_age: Duration::minutes(5),
        ..CacheLimits::default()
    })
    .await;
    let sunrise = p.tenant("sunrise").await;
    let tx = p.db.begin(sunrise.id).await.unwrap();
    let sealed = p
        .vault
        .seal(&tx, &place(sunrise.id, "m1"), b"note")
        .await
        .unwrap();

    p.keys.set_down(true);
    assert!(
        p.vault
            .open(&tx, &place(sunrise.id, "m1"), &sealed)
            .await
            .is_ok(),
        "a cached key stopped working"
    );

    p.clock.advance(Duration::minutes(5));
    let err = p
        .vault
        .open(&tx, &place(sunrise.id, "m1"), &sealed)
        .await
        .unwrap_err();
    assert!(
        matches!(err, VaultError::KeyServiceUnavailable(_)),
        "{err:?}"
    );
    let err = p
        .vault
        .seal(&tx, &place(sunrise.id, "m2"), b"new")
        .await
        .unwrap_err();
    assert!(
        matches!(err, VaultError::KeyServiceUnavailable(_)),
        "{err:?}"
    );

    p.keys.set_down(false);
    let opened = p
        .vault
        .open(&tx, &place(sunrise.id, "m1"), &sealed)
        .await
        .unwrap();
    assert_eq!(opened.as_slice(), b"note");
}

#[tokio::test]
async fn a_tenant_cannot_be_created_while_the_key_service_is_down_and_nothing_is_left() {
    let p = Platform::new(CacheLimits::default()).await;
    p.keys.set_down(true);

    let new = portico_tenants::NewTenant {
        slug: "sunrise".parse().unwrap(),
        display_name: "Sunrise".into(),
        domains: vec![],
    };
    let err = p
        .tenants
        .create(&portico_platform::principal::Principal::Operator, new)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            portico_tenants::TenantError::KeyService(KeyError::Unavailable(_))
        ),
        "{err:?}"
    );

    p.keys.set_down(false);
    let listed = p
        .tenants
        .list(&portico_platform::principal::Principal::Operator)
        .await
        .unwrap();
    assert!(listed.is_empty());
}

#[tokio::test]
async fn a_canary_sealed_into_the_database_leaves_no_trace_of_itself() {
    let p = Platform::new(CacheLimits::default()).await;
    let sunrise = p.tenant("sunrise").await;
    let marker = format!("CANARY-{}-PHI", sunrise.id.as_uuid().simple());

    let tx = p.db.begin(sunrise.id).await.unwrap();
    let sealed = p
        .vault
        .seal(&tx, &place(sunrise.id, "canary"), marker.as_bytes())
        .await
        .unwrap();
    tx.commit().await.unwrap();
    store_raw(&p.database, &sealed).await;

    let haystack = everything_in(&p.database).await;
    // PostgreSQL prints bytea as hex: look for the sealed value both ways.
    let stored =
        contains(&haystack, &sealed[..16]) || contains(&haystack, hex(&sealed[..16]).as_bytes());
    assert!(
        stored,
        "the sealed value was not found, so the scan proves nothing"
    );
    let hex_marker = hex(marker.as_bytes());
    assert!(
        !contains(&haystack, marker.as_bytes()),
        "the canary is readable in the database"
    );
    assert!(
        !contains(&haystack, hex_marker.as_bytes()),
        "the canary is readable (hex) in the database"
    );
}

/// Stores sealed bytes in a table of the test's own, as a capability would store a column.
async fn store_raw(database: &TestDatabase, sealed: &[u8]) {
    let (conn, backend, blob) = match database {
        TestDatabase::Sqlite(_) => (
            database.connect_as_server().await,
            DbBackend::Sqlite,
            "BLOB",
        ),
        TestDatabase::Postgres(db) => (
            Database::connect(db.owner_url()).await.unwrap(),
            DbBackend::Postgres,
            "BYTEA",
        ),
    };
    conn.execute_unprepared(&format!(
        "CREATE TABLE canary (id TEXT PRIMARY KEY, body {blob} NOT NULL)"
    ))
    .await
    .unwrap();
    let insert = match backend {
        DbBackend::Postgres => "INSERT INTO canary (id, body) VALUES ('canary', $1)",
        _ => "INSERT INTO canary (id, body) VALUES ('canary', ?)",
    };
    conn.execute_raw(Statement::from_sql_and_values(
        backend,
        insert,
        [sealed.to_vec().into()],
    ))
    .await
    .unwrap();
    conn.close().await.unwrap();
}

/// Every byte the database holds: the SQLite files, or every PostgreSQL table as text.
async fn everything_in(database: &TestDatabase) -> Vec<u8> {
    match database {
        TestDatabase::Sqlite(dir) => {
            let conn = database.connect_as_server().await;
            conn.execute_unprepared("PRAGMA wal_checkpoint(TRUNCATE)")
                .await
                .unwrap();
            conn.close().await.unwrap();
            let mut bytes = Vec::new();
            for entry in std::fs::read_dir(dir.path()).unwrap() {
                bytes.extend(std::fs::read(entry.unwrap().path()).unwrap());
            }
            bytes
        }
        TestDatabase::Postgres(db) => {
            let conn = Database::connect(db.owner_url()).await.unwrap();
            let tables = conn
                .query_all_raw(Statement::from_string(
                    DbBackend::Postgres,
                    "SELECT tablename::text AS name FROM pg_tables WHERE schemaname = 'public'",
                ))
                .await
                .unwrap();
            let mut bytes = Vec::new();
            for table in tables {
                let name: String = table.try_get("", "name").unwrap();
                let rows = conn
                    .query_all_raw(Statement::from_string(
                        DbBackend::Postgres,
                        format!("SELECT t::text AS row FROM \"{name}\" t"),
                    ))
                    .await
                    .unwrap();
                for row in rows {
                    bytes.extend(row.try_get::<String>("", "row").unwrap().into_bytes());
                }
            }
            bytes
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn after_offboarding_a_tenants_data_no_longer_opens() {
    let p = Platform::new(CacheLimits::default()).await;
    let sunrise = p.tenant("sunrise").await;
    let tx = p.db.begin(sunrise.id).await.unwrap();
    let sealed = p
        .vault
        .seal(&tx, &place(sunrise.id, "m1"), b"note")
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let operator = portico_platform::principal::Principal::Operator;
    p.tenants
        .offboard(&operator, &"sunrise".parse().unwrap(), 30)
        .await
        .unwrap();

    let tx = p.db.begin(sunrise.id).await.unwrap();
    let err = p
        .vault
        .open(&tx, &place(sunrise.id, "m1"), &sealed)
        .await
        .unwrap_err();
    assert!(matches!(err, VaultError::TenantKeyDeleted), "{err:?}");
    let err = p
        .vault
        .seal(&tx, &place(sunrise.id, "m2"), b"new")
        .await
        .unwrap_err();
    assert!(matches!(err, VaultError::TenantKeyDeleted), "{err:?}");
    assert!(
        p.tenants
            .offboard(&operator, &"sunrise".parse().unwrap(), 30)
            .await
            .is_err()
    );
}

#[tokio::test]
async fn rotation_and_rewrapping_keep_sealed_data_readable() {
    let p = Platform::new(CacheLimits::default()).await;
    let sunrise = p.tenant("sunrise").await;
    let tx = p.db.begin(sunrise.id).await.unwrap();
    let before = p
        .vault
        .seal(&tx, &place(sunrise.id, "m1"), b"before rotation")
        .await
        .unwrap();
    tx.commit().await.unwrap();

    p.vault.rotate(sunrise.id).await.unwrap();
    assert_eq!(p.vault.rewrap(sunrise.id).await.unwrap(), 1);

    // A node with a cold cache must unwrap the re-wrapped key.
    let cold = p.cold_vault();
    let tx = p.db.begin(sunrise.id).await.unwrap();
    let opened = cold
        .open(&tx, &place(sunrise.id, "m1"), &before)
        .await
        .unwrap();
    assert_eq!(opened.as_slice(), b"before rotation");
}

#[tokio::test]
async fn a_typed_value_seals_and_opens_as_its_type() {
    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct LabResult {
        analyte: String,
        value: f64,
    }
    let p = Platform::new(CacheLimits::default()).await;
    let sunrise = p.tenant("sunrise").await;
    let tx = p.db.begin(sunrise.id).await.unwrap();
    let result = LabResult {
        analyte: "Potassium".into(),
        value: 4.1,
    };

    let sealed = p
        .vault
        .seal_value(&tx, &place(sunrise.id, "r1"), &result)
        .await
        .unwrap();
    let stored = sealed.clone().into_bytes();
    assert!(!contains(&stored, b"Potassium"));
    assert_eq!(
        format!("{sealed:?}"),
        format!("Sealed({} bytes)", stored.len())
    );

    let back: portico_platform::crypto::seal::Sealed<LabResult> =
        portico_platform::crypto::seal::Sealed::from_stored(stored);
    let opened = p
        .vault
        .open_value(&tx, &place(sunrise.id, "r1"), &back)
        .await
        .unwrap();
    assert_eq!(opened, result);

    // The same bytes asked for as another type are refused, not mis-read.
    let as_text: portico_platform::crypto::seal::Sealed<Vec<String>> =
        portico_platform::crypto::seal::Sealed::from_stored(back.into_bytes());
    let err = p
        .vault
        .open_value(&tx, &place(sunrise.id, "r1"), &as_text)
        .await
        .unwrap_err();
    assert!(matches!(err, VaultError::Encoding), "{err:?}");
}

mod notes {
    //! A tenant-owned table with a sealed column, as PHI tables declare one.
    use portico_platform::crypto::seal::Sealed;
    use portico_platform::db::TenantOwned;
    use sea_orm::entity::prelude::*;

    /// What a note opens to.
    #[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
    pub struct Note {
        pub title: String,
        pub text: String,
    }

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "test_notes")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub tenant_id: Uuid,
        #[sea_orm(column_type = "VarBinary(StringLen::None)")]
        pub body: Sealed<Note>,
        #[sea_orm(column_type = "VarBinary(StringLen::None)", nullable)]
        pub addendum: Option<Sealed<Note>>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}

    impl TenantOwned for Entity {
        fn tenant_column() -> Column {
            Column::TenantId
        }
    }
}

#[tokio::test]
async fn a_sealed_column_stores_and_reads_back_a_typed_value() {
    use sea_orm::{ActiveValue::Set, ColumnTrait, QueryFilter};

    let p = Platform::new(CacheLimits::default()).await;
    let sunrise = p.tenant("sunrise").await;
    let owner = Database::connect(p.database.owner_url()).await.unwrap();
    let ddl = match owner.get_database_backend() {
        DbBackend::Postgres => {
            "CREATE TABLE test_notes (id text PRIMARY KEY, tenant_id uuid NOT NULL, body bytea NOT NULL, addendum bytea);
             ALTER TABLE test_notes ENABLE ROW LEVEL SECURITY;
             ALTER TABLE test_notes FORCE ROW LEVEL SECURITY;
             CREATE POLICY tenant_isolation ON test_notes
               USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);
             GRANT SELECT, INSERT ON test_notes TO portico_app"
        }
        _ => {
            "CREATE TABLE test_notes (id text PRIMARY KEY, tenant_id blob NOT NULL, body blob NOT NULL, addendum blob)"
        }
    };
    owner.execute_unprepared(ddl).await.unwrap();
    let note = notes::Note {
        title: "Visit summary".to_owned(),
        text: "Blood pressure 128/82; continue lisinopril.".to_owned(),
    };
    let at = Place {
        tenant: sunrise.id,
        table: "test_notes",
        column: "body",
        row: "n1",
    };

    // Sealed before the write, as services do.
    let sealing = p.db.begin(sunrise.id).await.unwrap();
    let body = p.vault.seal_value(&sealing, &at, &note).await.unwrap();
    sealing.commit().await.unwrap();
    let tx = p.db.begin(sunrise.id).await.unwrap();
    tx.insert(notes::ActiveModel {
        id: Set("n1".to_owned()),
        body: Set(body),
        addendum: Set(None),
        ..Default::default()
    })
    .await
    .unwrap();
    tx.commit().await.unwrap();

    let tx = p.db.begin(sunrise.id).await.unwrap();
    let row = tx
        .find::<notes::Entity>()
        .filter(notes::Column::Id.eq("n1"))
        .one(tx.conn())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.addendum, None);
    assert_eq!(p.vault.open_value(&tx, &at, &row.body).await.unwrap(), note);
    // The same bytes, asked for as another place, do not open.
    let elsewhere = Place {
        column: "addendum",
        ..at.clone()
    };
    assert!(matches!(
        p.vault.open_value(&tx, &elsewhere, &row.body).await,
        Err(VaultError::Seal(SealError::WrongPlace))
    ));
}
