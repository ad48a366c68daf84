//! The audit trail against a real database: one chain per tenant written in the access's
//! own transaction, append-only tables, checkpoints in the archive, and `verify` catching
//! every kind of tampering an attacker with the database owner's rights could do.
//!
//! Runs on SQLite, and again on PostgreSQL in that pass of `./tests/run`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use portico_infra::audit::local::LocalArchive;
use portico_platform::audit::archive::{self, ArchiveError, ArchiveSink};
use portico_platform::audit::checkpoint::Checkpointer;
use portico_platform::audit::verify::{Break, Report, Verifier};
use portico_platform::audit::{
    Action, Actor, ActorKind, AuditError, AuditTrail, NewEvent, Outcome, Purpose,
};
use portico_platform::crypto::keys::KeyService;
use portico_platform::ids::{PatientId, TenantId};
use portico_platform::principal::Principal;
use portico_tenants::Tenant;
use portico_tests::TestDatabase;
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, DbBackend, Statement};

use crate::fixture::Platform;

/// An archive that can be made unreachable.
#[derive(Debug)]
struct FlakyArchive {
    inner: LocalArchive,
    down: AtomicBool,
}

impl FlakyArchive {
    fn check(&self) -> Result<(), ArchiveError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(ArchiveError::Unavailable(
                "connection refused (simulated)".into(),
            ));
        }
        Ok(())
    }
}

#[async_trait]
impl ArchiveSink for FlakyArchive {
    fn describe(&self) -> String {
        self.inner.describe()
    }

    async fn put(&self, name: &str, body: &[u8]) -> Result<(), ArchiveError> {
        self.check()?;
        self.inner.put(name, body).await
    }

    async fn get(&self, name: &str) -> Result<Option<Vec<u8>>, ArchiveError> {
        self.check()?;
        self.inner.get(name).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, ArchiveError> {
        self.check()?;
        self.inner.list(prefix).await
    }
}

struct Fixture {
    platform: Platform,
    trail: AuditTrail,
    checkpointer: Checkpointer,
    archive: Arc<FlakyArchive>,
    sunrise: Tenant,
    _archive_dir: tempfile::TempDir,
}

async fn fixture() -> Fixture {
    let platform = Platform::new(Default::default()).await;
    let sunrise = platform.tenant("sunrise").await;
    let trail = AuditTrail::new(platform.db.clone(), Arc::new(platform.clock.clone()));
    let archive_dir = tempfile::tempdir().unwrap();
    let archive = Arc::new(FlakyArchive {
        inner: LocalArchive::new(archive_dir.path().join("archive")).unwrap(),
        down: AtomicBool::new(false),
    });
    let checkpointer = Checkpointer::new(
        trail.clone(),
        platform.keys.clone(),
        archive.clone(),
        Some(chrono::Duration::days(90)),
    );

    Fixture {
        platform,
        trail,
        checkpointer,
        archive,
        sunrise,
        _archive_dir: archive_dir,
    }
}

impl Fixture {
    async fn verify(&self) -> Report {
        Verifier::new(self.checkpointer.clone())
            .verify(self.sunrise.id)
            .await
            .unwrap()
    }

    /// Records `count` reads of one patient's observations by a staff member.
    async fn reads(&self, count: usize, patient: PatientId) {
        for i in 0..count {
            let mut access = self.trail.begin(self.sunrise.id).await.unwrap();
            access.record(read(patient, &format!("obs-{i}")));
            access.release(()).await.unwrap();
        }
    }

    /// The owner's connection, with the append-only triggers out of the way: an attacker
    /// with the database owner's rights.
    async fn attacker(&self) -> DatabaseConnection {
        let owner = Database::connect(self.platform.database.owner_url())
            .await
            .unwrap();
        match &self.platform.database {
            TestDatabase::Postgres(_) => {
                for table in ["audit_events", "audit_checkpoints", "audit_segments"] {
                    owner
                        .execute_unprepared(&format!("ALTER TABLE {table} DISABLE TRIGGER USER"))
                        .await
                        .unwrap();
                }
            }
            TestDatabase::Sqlite(_) => {
                for table in ["audit_events", "audit_checkpoints", "audit_segments"] {
                    for verb in ["update", "delete"] {
                        owner
                            .execute_unprepared(&format!("DROP TRIGGER {table}_no_{verb}"))
                            .await
                            .unwrap();
                    }
                }
            }
        }
        owner
    }

    async fn tamper(&self, sql: &str) {
        let attacker = self.attacker().await;
        let sql = sql.replace("$TENANT", &tenant_literal(&attacker, self.sunrise.id));
        for statement in sql.split(';').filter(|s| !s.trim().is_empty()) {
            attacker.execute_unprepared(statement).await.unwrap();
        }
        attacker.close().await.unwrap();
    }
}

fn tenant_literal(conn: &DatabaseConnection, tenant: TenantId) -> String {
    match conn.get_database_backend() {
        DbBackend::Postgres => format!("'{tenant}'::uuid"),
        // sea-orm stores UUIDs on SQLite as 16-byte blobs.
        _ => format!("X'{}'", tenant.as_uuid().simple()),
    }
}

fn staff() -> Actor {
    Actor::new(ActorKind::Staff, "stf-0001").unwrap()
}

fn read(patient: PatientId, id: &str) -> NewEvent {
    NewEvent::new(staff(), Action::Read, "Observation", Purpose::Treatment)
        .unwrap()
        .resource(id)
        .unwrap()
        .patient(patient)
        .client("ses-42")
        .unwrap()
}

fn patient(n: u8) -> PatientId {
    PatientId::from_uuid(uuid::Uuid::from_bytes([n; 16]))
}

fn account() -> portico_platform::ids::AccountId {
    portico_platform::ids::AccountId::from_uuid(uuid::Uuid::from_bytes([9; 16]))
}

fn first_break(report: &Report) -> Break {
    report
        .breaks
        .first()
        .cloned()
        .unwrap_or_else(|| panic!("expected a break, verify said ok: {report:?}"))
}

#[tokio::test]
async fn accesses_form_one_verifiable_chain_per_tenant() {
    let f = fixture().await;
    let harbor = f.platform.tenant("harbor").await;
    f.reads(5, patient(1)).await;
    f.trail
        .record(harbor.id, &[read(patient(2), "obs-x")])
        .await
        .unwrap();

    let report = f.verify().await;
    assert!(report.ok(), "{report:?}");
    // The tenant's creation is its first event; the five reads follow.
    assert_eq!(report.events, 6);
    let events = f.trail.events(f.sunrise.id, 1, 100).await.unwrap();
    assert_eq!(
        events.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![1, 2, 3, 4, 5, 6]
    );
    assert_eq!(
        (events[0].what.action, events[0].what.resource_type.as_str()),
        (Action::Create, "Organization")
    );
    assert_eq!(
        events[0].prev_hash,
        portico_platform::audit::chain::genesis(f.sunrise.id)
    );
    assert_eq!(events[1].prev_hash, events[0].hash);
    // The other clinic's chain is its own: its creation, then the one read.
    assert_eq!(f.trail.head(harbor.id).await.unwrap().0, 2);
    assert_eq!(f.trail.events(harbor.id, 1, 10).await.unwrap()[0].seq, 1);
}

#[tokio::test]
async fn eight_concurrent_writers_keep_one_chain_without_gaps() {
    let f = fixture().await;
    let mut writers = Vec::new();
    for writer in 0..8u8 {
        let trail = f.trail.clone();
        let tenant = f.sunrise.id;
        writers.push(tokio::spawn(async move {
            for i in 0..10 {
                let mut access = trail.begin(tenant).await.unwrap();
                access.record(read(patient(writer), &format!("obs-{writer}-{i}")));
                access.release(()).await.unwrap();
            }
        }));
    }
    for writer in writers {
        writer.await.unwrap();
    }

    let events = f.trail.events(f.sunrise.id, 1, 1000).await.unwrap();
    assert_eq!(
        events.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (1..=81).collect::<Vec<_>>()
    );
    let report = f.verify().await;
    assert!(report.ok(), "{report:?}");
}

#[tokio::test]
async fn a_read_whose_event_cannot_be_written_returns_nothing_and_changes_nothing() {
    let f = fixture().await;
    f.reads(1, patient(1)).await;
    // The audit table goes away under the server's feet.
    let owner = Database::connect(f.platform.database.owner_url())
        .await
        .unwrap();
    owner
        .execute_unprepared("ALTER TABLE audit_events RENAME TO audit_events_gone")
        .await
        .unwrap();

    let mut access = f.trail.begin(f.sunrise.id).await.unwrap();
    set_locale(&access, f.sunrise.id, "es").await;
    access.record(read(patient(1), "obs-secret"));
    let released = access.release("the patient's lab result").await;

    assert!(
        matches!(released, Err(AuditError::Database(_))),
        "{released:?}"
    );
    owner
        .execute_unprepared("ALTER TABLE audit_events_gone RENAME TO audit_events")
        .await
        .unwrap();
    assert_eq!(locale(&f).await, "en");
    assert!(f.verify().await.ok());
    assert_eq!(f.trail.head(f.sunrise.id).await.unwrap().0, 2);
}

#[tokio::test]
async fn a_crash_between_the_data_write_and_the_audit_write_leaves_neither() {
    let f = fixture().await;
    let mut access = f.trail.begin(f.sunrise.id).await.unwrap();
    set_locale(&access, f.sunrise.id, "es").await;
    access.record(read(patient(1), "obs-1"));
    drop(access);

    assert_eq!(locale(&f).await, "en");
    // Only the tenant's creation.
    assert_eq!(f.trail.head(f.sunrise.id).await.unwrap().0, 1);
}

#[tokio::test]
async fn an_access_that_records_nothing_releases_nothing() {
    let f = fixture().await;
    let access = f.trail.begin(f.sunrise.id).await.unwrap();
    set_locale(&access, f.sunrise.id, "es").await;

    let released = access.release(42).await;

    assert!(matches!(released, Err(AuditError::NothingRecorded)));
    assert_eq!(locale(&f).await, "en");
}

async fn set_locale(access: &portico_platform::audit::Access, tenant: TenantId, locale: &str) {
    let conn = access.tx().conn();
    let sql = format!(
        "UPDATE tenant_settings SET default_locale = '{locale}' WHERE tenant_id = {}",
        tenant_literal_for(conn.get_database_backend(), tenant)
    );
    conn.execute_unprepared(&sql).await.unwrap();
}

fn tenant_literal_for(backend: DbBackend, tenant: TenantId) -> String {
    match backend {
        DbBackend::Postgres => format!("'{tenant}'::uuid"),
        _ => format!("X'{}'", tenant.as_uuid().simple()),
    }
}

async fn locale(f: &Fixture) -> String {
    f.platform
        .tenants
        .settings(&Principal::Operator, f.sunrise.id)
        .await
        .unwrap()
        .default_locale
}

#[tokio::test]
async fn the_database_refuses_to_change_or_remove_audit_rows() {
    let f = fixture().await;
    f.reads(2, patient(1)).await;
    assert!(
        f.checkpointer
            .checkpoint(f.sunrise.id)
            .await
            .unwrap()
            .is_some()
    );
    let owner = Database::connect(f.platform.database.owner_url())
        .await
        .unwrap();
    let server = f.platform.db.platform();
    let tenant = tenant_literal(&owner, f.sunrise.id);

    for table in ["audit_events", "audit_checkpoints"] {
        for sql in [
            format!("UPDATE {table} SET seq = seq + 100 WHERE tenant_id = {tenant}"),
            format!("DELETE FROM {table} WHERE tenant_id = {tenant}"),
        ] {
            // Even the owner is refused, by the trigger.
            let err = owner.execute_unprepared(&sql).await.unwrap_err();
            assert!(err.to_string().contains("append-only"), "{sql}: {err}");
            // The server's role is refused too (on PostgreSQL it lacks the privilege).
            assert!(server.execute_unprepared(&sql).await.is_err(), "{sql}");
        }
    }
    // An event that does not follow the head (a gap, or a fork at an old seq) is refused.
    for (seq, refusal) in [
        (10, "does not follow the chain head"),
        (2, "does not follow the chain head|UNIQUE|duplicate key"),
    ] {
        let tx = f.platform.db.begin(f.sunrise.id).await.unwrap();
        let sql = format!(
            "INSERT INTO audit_events (tenant_id, seq, at, actor_kind, actor_id, action, resource_type, outcome, purpose, prev_hash, hash)
             SELECT tenant_id, {seq}, at, actor_kind, actor_id, action, resource_type, outcome, purpose, prev_hash, hash
               FROM audit_events WHERE tenant_id = {tenant} AND seq = 1"
        );
        let err = tx
            .conn()
            .execute_unprepared(&sql)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            refusal.split('|').any(|words| err.contains(words)),
            "{seq}: {err}"
        );
    }
    if owner.get_database_backend() == DbBackend::Postgres {
        let err = owner
            .execute_unprepared("TRUNCATE audit_events")
            .await
            .unwrap_err();
        assert!(err.to_string().contains("append-only"), "{err}");
        let privileges = owner
            .query_one_raw(Statement::from_string(
                DbBackend::Postgres,
                "SELECT string_agg(privilege_type, ',' ORDER BY privilege_type) AS p
                   FROM information_schema.role_table_grants
                  WHERE grantee = 'portico_app' AND table_name = 'audit_events'",
            ))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            privileges.try_get::<String>("", "p").unwrap(),
            "INSERT,SELECT"
        );
    }
    assert!(f.verify().await.ok());
}

#[tokio::test]
async fn verify_catches_an_edited_event() {
    let f = fixture().await;
    f.reads(5, patient(1)).await;
    f.tamper("UPDATE audit_events SET action = 'search' WHERE tenant_id = $TENANT AND seq = 3")
        .await;

    assert_eq!(first_break(&f.verify().await), Break::Altered { seq: 3 });
}

#[tokio::test]
async fn verify_catches_a_deleted_event() {
    let f = fixture().await;
    f.reads(5, patient(1)).await;
    f.tamper("DELETE FROM audit_events WHERE tenant_id = $TENANT AND seq = 2")
        .await;

    assert_eq!(first_break(&f.verify().await), Break::Missing { seq: 2 });
}

#[tokio::test]
async fn verify_catches_reordered_events() {
    let f = fixture().await;
    f.reads(5, patient(1)).await;
    f.tamper(
        "UPDATE audit_events SET seq = 100 WHERE tenant_id = $TENANT AND seq = 2;
         UPDATE audit_events SET seq = 2 WHERE tenant_id = $TENANT AND seq = 4;
         UPDATE audit_events SET seq = 4 WHERE tenant_id = $TENANT AND seq = 100",
    )
    .await;

    assert_eq!(first_break(&f.verify().await), Break::Altered { seq: 2 });
}

#[tokio::test]
async fn verify_catches_a_truncated_chain_even_with_the_head_rewound() {
    let f = fixture().await;
    f.reads(5, patient(1)).await;
    f.checkpointer.checkpoint(f.sunrise.id).await.unwrap();
    // The attacker removes the last two events and makes the head agree.
    f.tamper(
        "DELETE FROM audit_events WHERE tenant_id = $TENANT AND seq > 3;
         UPDATE audit_heads SET seq = 3, hash = (SELECT hash FROM audit_events WHERE tenant_id = $TENANT AND seq = 3) WHERE tenant_id = $TENANT",
    )
    .await;

    let report = f.verify().await;
    assert!(
        report.breaks.contains(&Break::Truncated { seq: 6 }),
        "{report:?}"
    );
}

#[tokio::test]
async fn verify_catches_events_cut_off_behind_the_heads_back() {
    let f = fixture().await;
    f.reads(4, patient(1)).await;
    f.tamper("DELETE FROM audit_events WHERE tenant_id = $TENANT AND seq = 5")
        .await;

    assert_eq!(first_break(&f.verify().await), Break::Head { seq: 4 });
}

#[tokio::test]
async fn verify_catches_a_forged_event_even_when_the_rest_is_rehashed() {
    let f = fixture().await;
    f.reads(4, patient(1)).await;
    f.checkpointer.checkpoint(f.sunrise.id).await.unwrap();

    // A naive forgery: a row slipped in at the end with made-up hashes.
    let forged = "INSERT INTO audit_events (tenant_id, seq, at, actor_kind, actor_id, action, resource_type, outcome, purpose, prev_hash, hash)
        SELECT tenant_id, 6, at, actor_kind, actor_id, 'delete', resource_type, outcome, purpose, hash, hash FROM audit_events WHERE tenant_id = $TENANT AND seq = 5";
    f.tamper(forged).await;
    assert_eq!(first_break(&f.verify().await), Break::Altered { seq: 6 });

    // A careful one: the chain is rebuilt around an inserted event, with correct hashes,
    // head and all. Only the signed checkpoint can tell.
    let f = fixture().await;
    f.reads(4, patient(1)).await;
    f.checkpointer.checkpoint(f.sunrise.id).await.unwrap();
    let mut events = f.trail.events(f.sunrise.id, 1, 10).await.unwrap();
    let mut inserted = events[1].clone();
    inserted.what.action = Action::Delete;
    events.insert(2, inserted);
    let mut prev = portico_platform::audit::chain::genesis(f.sunrise.id);
    for (i, event) in events.iter_mut().enumerate() {
        event.seq = i64::try_from(i).unwrap() + 1;
        event.prev_hash = prev;
        event.hash = portico_platform::audit::chain::recompute(event);
        prev = event.hash;
    }
    rewrite_chain(&f, &events).await;

    let report = f.verify().await;
    assert!(
        report.breaks.contains(&Break::Rewritten { seq: 5 }),
        "{report:?}"
    );
}

/// Replaces the tenant's chain with `events` (and the head), as an attacker with the
/// owner's rights and a script would.
async fn rewrite_chain(f: &Fixture, events: &[portico_platform::audit::AuditEvent]) {
    let attacker = f.attacker().await;
    let backend = attacker.get_database_backend();
    let tenant = tenant_literal(&attacker, f.sunrise.id);
    attacker
        .execute_unprepared(&format!(
            "DELETE FROM audit_events WHERE tenant_id = {tenant}"
        ))
        .await
        .unwrap();
    // Back to the start, so that the head trigger (still on, on SQLite) accepts event 1.
    attacker
        .execute_unprepared(&format!(
            "UPDATE audit_heads SET seq = 0 WHERE tenant_id = {tenant}"
        ))
        .await
        .unwrap();
    for e in events {
        let values: Vec<sea_orm::Value> = vec![
            e.tenant.as_uuid().into(),
            e.seq.into(),
            e.at.into(),
            e.what.actor.kind.code().into(),
            e.what.actor.id.as_str().into(),
            e.what.action.code().into(),
            e.what.resource_type.as_str().into(),
            e.what
                .resource_id
                .as_ref()
                .map(|t| t.as_str().to_owned())
                .into(),
            e.what.patient.map(|p| p.as_uuid()).into(),
            e.what.outcome.code().into(),
            e.what.client.as_ref().map(|t| t.as_str().to_owned()).into(),
            e.what.purpose.code().into(),
            e.prev_hash.to_vec().into(),
            e.hash.to_vec().into(),
        ];
        let placeholders = (1..=values.len())
            .map(|i| match backend {
                DbBackend::Postgres => format!("${i}"),
                _ => "?".to_owned(),
            })
            .collect::<Vec<_>>()
            .join(", ");
        attacker
            .execute_raw(Statement::from_sql_and_values(
                backend,
                format!(
                    "INSERT INTO audit_events (tenant_id, seq, at, actor_kind, actor_id, action, resource_type, resource_id, patient_id, outcome, client, purpose, prev_hash, hash) VALUES ({placeholders})"
                ),
                values,
            ))
            .await
            .unwrap();
    }
    let last = events.last().unwrap();
    let (p1, p2, p3) = match backend {
        DbBackend::Postgres => ("$1", "$2", "$3"),
        _ => ("?", "?", "?"),
    };
    attacker
        .execute_raw(Statement::from_sql_and_values(
            backend,
            format!("UPDATE audit_heads SET seq = {p1}, hash = {p2} WHERE tenant_id = {p3}"),
            [
                last.seq.into(),
                last.hash.to_vec().into(),
                f.sunrise.id.as_uuid().into(),
            ],
        ))
        .await
        .unwrap();
}

#[tokio::test]
async fn verify_catches_a_replaced_checkpoint() {
    let f = fixture().await;
    f.reads(3, patient(1)).await;
    f.checkpointer.checkpoint(f.sunrise.id).await.unwrap();
    f.tamper("UPDATE audit_checkpoints SET mac = hash WHERE tenant_id = $TENANT")
        .await;

    let report = f.verify().await;
    assert!(
        report.breaks.contains(&Break::BadSignature { seq: 4 }),
        "{report:?}"
    );
    assert!(
        report.breaks.contains(&Break::CheckpointDiffers { seq: 4 }),
        "{report:?}"
    );
}

#[tokio::test]
async fn checkpoints_are_signed_archived_and_retried_when_the_archive_is_down() {
    let f = fixture().await;
    f.reads(3, patient(1)).await;

    f.archive.down.store(true, Ordering::SeqCst);
    let failed = f.checkpointer.run(f.sunrise.id).await;
    assert!(
        matches!(
            failed,
            Err(AuditError::Archive(ArchiveError::Unavailable(_)))
        ),
        "{failed:?}"
    );
    // Events keep flowing while the archive is away, and none is lost.
    f.reads(2, patient(1)).await;
    assert!(
        f.checkpointer
            .last_checkpoint(f.sunrise.id)
            .await
            .unwrap()
            .is_none()
    );

    f.archive.down.store(false, Ordering::SeqCst);
    let outcome = f.checkpointer.run(f.sunrise.id).await.unwrap();
    assert_eq!(outcome.checkpoint, Some(6));
    let body = f
        .archive
        .get(&archive::checkpoint_name(f.sunrise.id, 6))
        .await
        .unwrap()
        .expect("archived");
    let checkpoint: portico_platform::audit::checkpoint::Checkpoint =
        serde_json::from_slice(&body).unwrap();
    assert!(
        f.platform
            .keys
            .verify_mac(
                &portico_platform::crypto::keys::KeyRef(checkpoint.key.clone()),
                &checkpoint.signed_message(),
                &checkpoint.mac
            )
            .await
            .unwrap()
    );
    // Nothing new: no new checkpoint.
    assert_eq!(
        f.checkpointer.run(f.sunrise.id).await.unwrap().checkpoint,
        None
    );
    let report = f.verify().await;
    assert!(report.ok(), "{report:?}");
    assert_eq!((report.checkpoints, report.unsigned), (1, 0));
}

#[tokio::test]
async fn old_events_are_archived_as_segments_that_verify_checks() {
    let f = fixture().await;
    f.reads(3, patient(1)).await;
    f.checkpointer.run(f.sunrise.id).await.unwrap();
    f.platform.clock.advance(chrono::Duration::days(91));
    f.reads(1, patient(1)).await;

    let outcome = f.checkpointer.run(f.sunrise.id).await.unwrap();
    assert_eq!(outcome.checkpoint, Some(5));
    assert_eq!(outcome.segments, vec![(1, 4)]);
    let segment = f
        .archive
        .get(&archive::segment_name(f.sunrise.id, 1, 4))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(segment.iter().filter(|&&b| b == b'\n').count(), 4);
    let report = f.verify().await;
    assert!(report.ok(), "{report:?}");
    assert_eq!(report.segments, 1);

    // The events stay in the database; editing one there now disagrees with the archive
    // as well as with its own hash.
    f.tamper("UPDATE audit_events SET outcome = 'denied' WHERE tenant_id = $TENANT AND seq = 2")
        .await;
    let report = f.verify().await;
    assert_eq!(first_break(&report), Break::Altered { seq: 2 });
}

#[tokio::test]
async fn a_patient_sees_who_opened_their_record_and_only_theirs() {
    let f = fixture().await;
    let (mine, theirs) = (patient(1), patient(2));
    f.trail
        .register_actor(f.sunrise.id, &staff(), "Dr. Ana Ortiz", Some("provider"))
        .await
        .unwrap();
    f.reads(3, mine).await;
    f.reads(2, theirs).await;
    let denied = NewEvent::new(
        Actor::new(ActorKind::App, "app-7").unwrap(),
        Action::Read,
        "DocumentReference",
        Purpose::PatientRequest,
    )
    .unwrap()
    .patient(mine)
    .outcome(Outcome::Denied);
    f.trail.record(f.sunrise.id, &[denied]).await.unwrap();
    let me = Principal::Patient {
        tenant: f.sunrise.id,
        account: account(),
        patient: mine,
        session: "ses-9".to_owned(),
    };

    let page = f.trail.access_log(&me, 2, None).await.unwrap();
    assert_eq!(page.entries.len(), 2);
    assert_eq!(page.entries[0].resource_type, "DocumentReference");
    assert_eq!(page.entries[0].outcome, Outcome::Denied);
    assert_eq!(page.entries[0].who.name, None);
    assert_eq!(page.entries[1].who.name.as_deref(), Some("Dr. Ana Ortiz"));
    assert_eq!(page.entries[1].who.role.as_deref(), Some("provider"));
    let rest = f.trail.access_log(&me, 10, page.next).await.unwrap();
    assert_eq!(rest.entries.len(), 2);
    assert_eq!(rest.next, None);
    assert!(
        page.entries
            .iter()
            .chain(&rest.entries)
            .all(|e| e.action == Action::Read)
    );

    // Looking is itself recorded, and shows up next time as the patient's own.
    let again = f.trail.access_log(&me, 1, None).await.unwrap();
    assert_eq!(again.entries[0].action, Action::Search);
    assert!(again.entries[0].who.is_you);

    for stranger in [Principal::Operator, Principal::System] {
        assert!(matches!(
            f.trail.access_log(&stranger, 10, None).await,
            Err(AuditError::Forbidden)
        ));
    }
    assert!(f.verify().await.ok());
}

/// Runs `query` against the schema as `principal`, through the tenant's portal.
async fn graphql_as(f: &Fixture, principal: Principal, query: &str) -> serde_json::Value {
    let schema = portico_graphql::build_schema(
        f.platform.tenants.clone(),
        f.trail.clone(),
        f.platform.identity(),
        f.platform
            .records(Arc::new(crate::fixture::FixedConnections {
                client: None,
                policy: portico_platform::records::ReleasePolicy::FinalAtOnce,
            })),
        portico_graphql::Limits {
            max_depth: 10,
            max_complexity: 500,
            max_aliases: 10,
        },
        false,
    );
    let context = portico_graphql::RequestContext {
        tenant: f.sunrise.clone(),
        principal,
        session: None,
        client: "192.0.2.1".to_owned(),
        host: None,
        development: false,
    };
    let response = schema
        .execute(async_graphql::Request::new(query).data(context))
        .await;
    serde_json::to_value(&response).unwrap()
}

#[tokio::test]
async fn the_access_log_field_answers_the_signed_in_patient_only() {
    let f = fixture().await;
    let mine = patient(1);
    f.trail
        .register_actor(f.sunrise.id, &staff(), "Dr. Ana Ortiz", Some("provider"))
        .await
        .unwrap();
    f.reads(3, mine).await;
    f.reads(1, patient(2)).await;
    let query = "{ accessLog(first: 2) { entries { at action dataKind outcome purpose who { kind name role isYou } } nextCursor } }";
    let me = Principal::Patient {
        tenant: f.sunrise.id,
        account: account(),
        patient: mine,
        session: "ses-1".to_owned(),
    };

    let body = graphql_as(&f, me.clone(), query).await;
    let log = &body["data"]["accessLog"];
    assert_eq!(log["entries"].as_array().unwrap().len(), 2, "{body}");
    let entry = &log["entries"][0];
    assert_eq!(entry["action"], "read");
    assert_eq!(entry["dataKind"], "Observation");
    assert_eq!(entry["who"]["name"], "Dr. Ana Ortiz");
    assert_eq!(entry["who"]["role"], "provider");
    assert_eq!(entry["who"]["isYou"], false);
    let cursor = log["nextCursor"].as_str().unwrap().to_owned();
    let next = graphql_as(
        &f,
        me.clone(),
        &format!(
            "{{ accessLog(first: 2, before: \"{cursor}\") {{ entries {{ action }} nextCursor }} }}"
        ),
    )
    .await;
    assert_eq!(
        next["data"]["accessLog"]["entries"]
            .as_array()
            .unwrap()
            .len(),
        1,
        "{next}"
    );

    // Not signed in; signed in at another clinic; a bad cursor; a page too big.
    let anonymous = Principal::Anonymous {
        request: portico_platform::ids::RequestId::from_uuid(uuid::Uuid::nil()),
    };
    let elsewhere = Principal::Patient {
        tenant: f.platform.tenant("harbor").await.id,
        account: account(),
        patient: mine,
        session: "ses-2".to_owned(),
    };
    for (principal, query, code) in [
        (anonymous, query.to_owned(), "UNAUTHENTICATED"),
        (elsewhere, query.to_owned(), "FORBIDDEN"),
        (
            me.clone(),
            "{ accessLog(before: \"x\") { nextCursor } }".to_owned(),
            "VALIDATION_FAILED",
        ),
        (
            me.clone(),
            "{ accessLog(first: 1000) { nextCursor } }".to_owned(),
            "VALIDATION_FAILED",
        ),
    ] {
        let body = graphql_as(&f, principal, &query).await;
        assert_eq!(body["errors"][0]["extensions"]["code"], code, "{body}");
        assert!(body["data"].is_null() || body["data"]["accessLog"].is_null());
    }
}

#[tokio::test]
async fn the_schedule_retries_a_failing_archive_until_the_checkpoint_lands() {
    use portico_infra::audit::schedule::Schedule;
    use std::time::Duration as StdDuration;

    let f = fixture().await;
    f.reads(2, patient(1)).await;
    f.archive.down.store(true, Ordering::SeqCst);
    let schedule = Schedule {
        interval: StdDuration::from_millis(200),
        first_retry: StdDuration::from_millis(20),
    };
    let task = tokio::spawn(schedule.run(f.checkpointer.clone(), f.platform.tenants.clone()));

    // Runs fail while the archive is down; events are still written.
    f.reads(1, patient(1)).await;
    assert!(
        f.checkpointer
            .last_checkpoint(f.sunrise.id)
            .await
            .unwrap()
            .is_none()
    );
    f.archive.down.store(false, Ordering::SeqCst);

    let mut landed = None;
    for _ in 0..200 {
        landed = f.checkpointer.last_checkpoint(f.sunrise.id).await.unwrap();
        if landed.is_some() {
            break;
        }
        tokio::time::sleep(StdDuration::from_millis(50)).await;
    }
    task.abort();
    assert_eq!(landed.map(|c| c.seq), Some(4));
    assert!(f.verify().await.ok());
}
