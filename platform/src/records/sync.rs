//! The sync engine: a queue of work in the database that every node shares, and the work.
//!
//! A job is one patient's: a **backfill** reads their whole record, type by type; a
//! **poll** reads what changed since each type's cursor; a **push** reads the resources an
//! EHR notification named. Jobs are claimed with `FOR UPDATE SKIP LOCKED` and a lease, so
//! two nodes never run the same job and a node that dies mid-job only delays it until the
//! lease ends. A failed job is retried with backoff; a cursor moves only in the
//! transaction that stored what it covers, so a job repeated after a crash stores nothing
//! twice and misses nothing.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use sea_orm::sea_query::{Expr, LockBehavior, LockType};
use sea_orm::{ActiveValue::Set, ColumnTrait, Condition, QueryFilter, QueryOrder, QuerySelect};
use serde_json::Value;

use super::RecordError;
use super::entity::{ehr_links, sync_cursors, sync_jobs};
use super::policy::ReleasePolicy;
use super::store::{CursorMove, RecordStore};
use crate::clock::Clock;
use crate::db::Db;
use crate::entropy::Entropy;
use crate::ids::{PatientId, SyncJobId, TenantId};

/// The FHIR types read for each patient, in the order a backfill reads them: notes and
/// results first, as patients look for those first.
pub const SYNCED_TYPES: [&str; 17] = [
    "DocumentReference",
    "Observation",
    "DiagnosticReport",
    "MedicationRequest",
    "MedicationStatement",
    "AllergyIntolerance",
    "Immunization",
    "Condition",
    "CarePlan",
    "Goal",
    "Appointment",
    "Encounter",
    "ImagingStudy",
    "Procedure",
    "Claim",
    "ExplanationOfBenefit",
    "Coverage",
];

/// Attempts before a job is given up (and reported to the clinic's admins).
pub const MAX_ATTEMPTS: i32 = 8;

/// Why the EHR could not be read. Safe to store and print: never a body or a secret.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct EhrError(pub String);

/// One clinic's EHR, as the sync engine reads it.
#[async_trait]
pub trait EhrClient: Send + Sync + fmt::Debug {
    /// One patient's resources of one type changed after `since` (all of them when
    /// `None`), every page.
    async fn search(
        &self,
        resource_type: &str,
        patient: &str,
        since: Option<DateTime<Utc>>,
    ) -> Result<Vec<Value>, EhrError>;

    /// One resource; `None` when the EHR says it is gone (404 or 410).
    async fn read(&self, resource_type: &str, id: &str) -> Result<Option<Value>, EhrError>;
}

/// A clinic's connection: its EHR and how its records are released.
#[derive(Debug, Clone)]
pub struct Connection {
    /// The EHR.
    pub client: Arc<dyn EhrClient>,
    /// What the clinic shows besides final items.
    pub policy: ReleasePolicy,
    /// How often each patient's record is polled.
    pub poll_interval: std::time::Duration,
}

/// Where the sync engine finds each clinic's EHR (the tenants' connector settings, in
/// `infra`).
#[async_trait]
pub trait EhrConnections: Send + Sync + fmt::Debug {
    /// The clinic's connection; `None` when it has no EHR connector.
    async fn connect(&self, tenant: TenantId) -> Result<Option<Connection>, EhrError>;

    /// The clinic's release policy (the default when it has no connector).
    async fn release_policy(&self, tenant: TenantId) -> ReleasePolicy;
}

/// What a job does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobKind {
    /// The whole record, once, when a patient is linked.
    Backfill,
    /// What changed since the cursors.
    Poll,
    /// The resources a notification named.
    Push,
}

impl JobKind {
    fn code(self) -> &'static str {
        match self {
            Self::Backfill => "backfill",
            Self::Poll => "poll",
            Self::Push => "push",
        }
    }

    fn from_code(code: &str) -> Self {
        match code {
            "backfill" => Self::Backfill,
            "push" => Self::Push,
            _ => Self::Poll,
        }
    }
}

/// A claimed job.
#[derive(Debug, Clone)]
pub struct Job {
    /// Its id.
    pub id: SyncJobId,
    /// The clinic.
    pub tenant: TenantId,
    /// The patient.
    pub patient: PatientId,
    /// What it does.
    pub kind: JobKind,
    /// For a push: the `Type/id` references to read.
    pub focus: Vec<String>,
    /// Attempts so far, this one included.
    pub attempts: i32,
}

/// A job's progress, as admins watch it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// Resource types read so far.
    pub done: i32,
    /// Resource types to read.
    pub total: i32,
    /// Resources stored so far.
    pub stored: i32,
}

/// What a notification led to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Notified {
    /// Targeted reads queued (one job per patient named).
    pub queued: usize,
    /// Patients polled at once because the notification named no patient Portico knows.
    pub polled: usize,
}

/// Runs the shared sync queue.
#[derive(Debug, Clone)]
pub struct SyncEngine {
    db: Db,
    store: RecordStore,
    clock: Arc<dyn Clock>,
    entropy: Arc<dyn Entropy>,
    lease: Duration,
}

impl SyncEngine {
    /// An engine storing through `store`; a claimed job is leased for `lease`.
    pub fn new(
        db: Db,
        store: RecordStore,
        clock: Arc<dyn Clock>,
        entropy: Arc<dyn Entropy>,
        lease: Duration,
    ) -> Self {
        Self {
            db,
            store,
            clock,
            entropy,
            lease,
        }
    }

    /// Links a Portico patient to their EHR record and queues the backfill. Linking again
    /// to the same EHR patient changes nothing; to another is refused.
    pub async fn link(
        &self,
        tenant: TenantId,
        patient: PatientId,
        ehr_patient: &str,
    ) -> Result<bool, RecordError> {
        if !super::classify::is_fhir_id(ehr_patient) {
            return Err(RecordError::Invalid("the EHR patient id is not a FHIR id"));
        }
        let tx = self.db.begin_serialized(tenant).await?;
        let held = tx
            .find::<ehr_links::Entity>()
            .filter(
                Condition::any()
                    .add(ehr_links::Column::PatientId.eq(patient.as_uuid()))
                    .add(ehr_links::Column::EhrPatientId.eq(ehr_patient)),
            )
            .all(tx.conn())
            .await?;
        match held.as_slice() {
            [] => {}
            [link]
                if link.patient_id == patient.as_uuid() && link.ehr_patient_id == ehr_patient =>
            {
                return Ok(false);
            }
            _ => return Err(RecordError::Conflict),
        }
        let now = self.clock.now();
        tx.insert(ehr_links::ActiveModel {
            patient_id: Set(patient.as_uuid()),
            ehr_patient_id: Set(ehr_patient.to_owned()),
            linked_at: Set(now),
            backfilled_at: Set(None),
            last_synced_at: Set(None),
            last_polled_at: Set(None),
            ..Default::default()
        })
        .await?;
        self.queue(&tx, patient, JobKind::Backfill, &[], now)
            .await?;
        tx.commit().await?;

        Ok(true)
    }

    /// Queues a job, due at once.
    pub async fn enqueue(
        &self,
        tenant: TenantId,
        patient: PatientId,
        kind: JobKind,
        focus: &[String],
    ) -> Result<SyncJobId, RecordError> {
        let tx = self.db.begin_serialized(tenant).await?;
        let id = self
            .queue(&tx, patient, kind, focus, self.clock.now())
            .await?;
        tx.commit().await?;
        Ok(id)
    }

    async fn queue(
        &self,
        tx: &crate::db::TenantTx,
        patient: PatientId,
        kind: JobKind,
        focus: &[String],
        due: DateTime<Utc>,
    ) -> Result<SyncJobId, RecordError> {
        let id = SyncJobId::generate(self.clock.as_ref(), self.entropy.as_ref());
        tx.insert(sync_jobs::ActiveModel {
            id: Set(id.as_uuid()),
            patient_id: Set(patient.as_uuid()),
            kind: Set(kind.code().to_owned()),
            focus: Set(
                (!focus.is_empty()).then(|| serde_json::to_string(focus).unwrap_or_default())
            ),
            state: Set("queued".to_owned()),
            due_at: Set(due),
            lease_until: Set(None),
            attempts: Set(0),
            done: Set(0),
            total: Set(0),
            stored: Set(0),
            last_error: Set(None),
            created_at: Set(self.clock.now()),
            finished_at: Set(None),
            ..Default::default()
        })
        .await?;
        Ok(id)
    }

    /// Queues a poll for every backfilled patient not polled within `interval` who has no
    /// job waiting. Returns how many were queued.
    ///
    /// Every node calls this every second: the due patients are found with a read, and the
    /// write lock is taken only when there are some.
    pub async fn schedule_polls(
        &self,
        tenant: TenantId,
        interval: std::time::Duration,
    ) -> Result<usize, RecordError> {
        let now = self.clock.now();
        let interval = Duration::from_std(interval).unwrap_or(Duration::minutes(5));
        let due_condition = || {
            Condition::all()
                .add(ehr_links::Column::BackfilledAt.is_not_null())
                .add(
                    Condition::any()
                        .add(ehr_links::Column::LastPolledAt.is_null())
                        .add(ehr_links::Column::LastPolledAt.lte(now - interval)),
                )
        };
        let probe = self.db.begin(tenant).await?;
        let any_due = probe
            .find::<ehr_links::Entity>()
            .filter(due_condition())
            .one(probe.conn())
            .await?
            .is_some();
        probe.commit().await?;
        if !any_due {
            return Ok(0);
        }

        let tx = self.db.begin_serialized(tenant).await?;
        let due: Vec<uuid::Uuid> = tx
            .find::<ehr_links::Entity>()
            .select_only()
            .column(ehr_links::Column::PatientId)
            .filter(due_condition())
            .into_tuple()
            .all(tx.conn())
            .await?;
        let waiting: HashSet<uuid::Uuid> = tx
            .find::<sync_jobs::Entity>()
            .select_only()
            .column(sync_jobs::Column::PatientId)
            .filter(sync_jobs::Column::State.eq("queued"))
            .filter(sync_jobs::Column::PatientId.is_in(due.clone()))
            .into_tuple::<uuid::Uuid>()
            .all(tx.conn())
            .await?
            .into_iter()
            .collect();
        let mut queued = 0;
        for patient in due.iter().filter(|patient| !waiting.contains(patient)) {
            self.queue(&tx, PatientId::from_uuid(*patient), JobKind::Poll, &[], now)
                .await?;
            queued += 1;
        }
        tx.update_many::<ehr_links::Entity>()
            .col_expr(ehr_links::Column::LastPolledAt, Expr::value(now))
            .filter(ehr_links::Column::PatientId.is_in(due))
            .exec(tx.conn())
            .await?;
        tx.commit().await?;
        Ok(queued)
    }

    /// Claims the next due job of the clinic, if any: locked so no other node takes it
    /// (`SKIP LOCKED` passes over rows another node is claiming), then leased.
    ///
    /// Idle nodes call this every second: whether anything is due is asked with a read, and
    /// the write lock is taken only when something is.
    pub async fn claim(&self, tenant: TenantId) -> Result<Option<Job>, RecordError> {
        let now = self.clock.now();
        let due = || {
            Condition::all()
                .add(sync_jobs::Column::State.eq("queued"))
                .add(sync_jobs::Column::DueAt.lte(now))
                .add(
                    Condition::any()
                        .add(sync_jobs::Column::LeaseUntil.is_null())
                        .add(sync_jobs::Column::LeaseUntil.lt(now)),
                )
        };
        let probe = self.db.begin(tenant).await?;
        let any_due = probe
            .find::<sync_jobs::Entity>()
            .select_only()
            .column(sync_jobs::Column::Id)
            .filter(due())
            .into_tuple::<uuid::Uuid>()
            .one(probe.conn())
            .await?
            .is_some();
        probe.commit().await?;
        if !any_due {
            return Ok(None);
        }

        let tx = self.db.begin_serialized(tenant).await?;
        let row = tx
            .find::<sync_jobs::Entity>()
            .filter(due())
            .order_by_asc(sync_jobs::Column::DueAt)
            .lock_with_behavior(LockType::Update, LockBehavior::SkipLocked)
            .one(tx.conn())
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        tx.update_many::<sync_jobs::Entity>()
            .col_expr(sync_jobs::Column::LeaseUntil, Expr::value(now + self.lease))
            .col_expr(sync_jobs::Column::Attempts, Expr::value(row.attempts + 1))
            .filter(sync_jobs::Column::Id.eq(row.id))
            .exec(tx.conn())
            .await?;
        tx.commit().await?;

        Ok(Some(Job {
            id: SyncJobId::from_uuid(row.id),
            tenant,
            patient: PatientId::from_uuid(row.patient_id),
            kind: JobKind::from_code(&row.kind),
            focus: row
                .focus
                .as_deref()
                .and_then(|focus| serde_json::from_str(focus).ok())
                .unwrap_or_default(),
            attempts: row.attempts + 1,
        }))
    }

    /// Runs a claimed job to its end: done, or back in the queue with a backoff (given up
    /// after [`MAX_ATTEMPTS`]). Returns the error that stopped it, if one did.
    pub async fn run(&self, job: &Job, connection: &Connection) -> Result<(), RecordError> {
        let result = self.work(job, connection).await;
        let now = self.clock.now();
        let tx = self.db.begin_serialized(job.tenant).await?;
        let update = tx
            .update_many::<sync_jobs::Entity>()
            .filter(sync_jobs::Column::Id.eq(job.id.as_uuid()));
        match &result {
            Ok(()) => {
                update
                    .col_expr(sync_jobs::Column::State, Expr::value("done"))
                    .col_expr(sync_jobs::Column::FinishedAt, Expr::value(now))
                    .col_expr(
                        sync_jobs::Column::LastError,
                        Expr::value(Option::<String>::None),
                    )
                    .exec(tx.conn())
                    .await?;
                let mut link = tx
                    .update_many::<ehr_links::Entity>()
                    .col_expr(ehr_links::Column::LastSyncedAt, Expr::value(now))
                    .filter(ehr_links::Column::PatientId.eq(job.patient.as_uuid()));
                if job.kind == JobKind::Backfill {
                    link = link
                        .col_expr(ehr_links::Column::BackfilledAt, Expr::value(now))
                        .col_expr(ehr_links::Column::LastPolledAt, Expr::value(now));
                }
                link.exec(tx.conn()).await?;
            }
            Err(err) => {
                let given_up = job.attempts >= MAX_ATTEMPTS;
                // 2, 4, 8 … seconds, at most ten minutes.
                let backoff = Duration::seconds((1_i64 << job.attempts.clamp(1, 10)).min(600));
                let message: String = err.to_string().chars().take(200).collect();
                update
                    .col_expr(
                        sync_jobs::Column::State,
                        Expr::value(if given_up { "failed" } else { "queued" }),
                    )
                    .col_expr(sync_jobs::Column::DueAt, Expr::value(now + backoff))
                    .col_expr(
                        sync_jobs::Column::LeaseUntil,
                        Expr::value(Option::<DateTime<Utc>>::None),
                    )
                    .col_expr(sync_jobs::Column::LastError, Expr::value(message))
                    .exec(tx.conn())
                    .await?;
                tracing::warn!(
                    tenant.id = %job.tenant,
                    sync.job = %job.id,
                    sync.kind = job.kind.code(),
                    sync.attempts = job.attempts,
                    sync.given_up = given_up,
                    error = %err,
                    "sync job failed"
                );
            }
        }
        tx.commit().await?;
        result
    }

    async fn work(&self, job: &Job, connection: &Connection) -> Result<(), RecordError> {
        let ehr_patient = self
            .ehr_patient(job.tenant, job.patient)
            .await?
            .ok_or(RecordError::NotFound)?;
        let client = connection.client.as_ref();
        if job.kind == JobKind::Push {
            return self.read_focus(job, &ehr_patient, client).await;
        }
        let full = job.kind == JobKind::Backfill;
        let cursors = self.cursors(job.tenant, job.patient).await?;
        let total = i32::try_from(SYNCED_TYPES.len()).unwrap_or(i32::MAX);
        let mut stored = 0;
        for (done, resource_type) in SYNCED_TYPES.iter().enumerate() {
            let since = if full {
                None
            } else {
                cursors
                    .iter()
                    .find(|cursor| cursor.resource_type == *resource_type)
                    .map(|cursor| cursor.since)
            };
            let mut resources = client
                .search(resource_type, &ehr_patient, since)
                .await
                .map_err(RecordError::Ehr)?;
            let present: HashSet<String> = resources
                .iter()
                .filter_map(|r| r.get("id").and_then(Value::as_str).map(str::to_owned))
                .collect();
            if *resource_type == "DocumentReference" {
                let attachments = attachments(client, &resources).await?;
                resources.extend(attachments);
            }
            let newest = resources
                .iter()
                .filter_map(|r| r.pointer("/meta/lastUpdated").and_then(Value::as_str))
                .filter_map(super::classify::parse_datetime)
                .max();
            let cursor = newest
                .map(|newest| newest.max(since.unwrap_or(newest)))
                .map(|since| CursorMove {
                    resource_type: (*resource_type).to_owned(),
                    since,
                });
            let outcome = self
                .store
                .store(job.tenant, job.patient, &ehr_patient, &resources, cursor)
                .await?;
            if full {
                self.store
                    .remove_missing(job.tenant, job.patient, resource_type, &present)
                    .await?;
            }
            stored += i32::try_from(outcome.stored).unwrap_or(i32::MAX);
            self.progress(
                job,
                Progress {
                    done: i32::try_from(done + 1).unwrap_or(i32::MAX),
                    total,
                    stored,
                },
            )
            .await?;
        }
        Ok(())
    }

    async fn read_focus(
        &self,
        job: &Job,
        ehr_patient: &str,
        client: &dyn EhrClient,
    ) -> Result<(), RecordError> {
        let mut found = Vec::new();
        for reference in &job.focus {
            let Some((resource_type, id)) = reference.split_once('/') else {
                continue;
            };
            match client
                .read(resource_type, id)
                .await
                .map_err(RecordError::Ehr)?
            {
                Some(resource) => found.push(resource),
                None => {
                    // Gone from the EHR: gone from view.
                    let present = self.present_except(job, resource_type, id).await?;
                    self.store
                        .remove_missing(job.tenant, job.patient, resource_type, &present)
                        .await?;
                }
            }
        }
        let attachments = attachments(client, &found).await?;
        found.extend(attachments);
        self.store
            .store(job.tenant, job.patient, ehr_patient, &found, None)
            .await?;
        Ok(())
    }

    /// The ids of the patient's items of a type, but one.
    async fn present_except(
        &self,
        job: &Job,
        resource_type: &str,
        id: &str,
    ) -> Result<HashSet<String>, RecordError> {
        let tx = self.db.begin(job.tenant).await?;
        let rows = tx
            .find::<super::entity::health_records::Entity>()
            .select_only()
            .column(super::entity::health_records::Column::FhirId)
            .filter(super::entity::health_records::Column::PatientId.eq(job.patient.as_uuid()))
            .filter(super::entity::health_records::Column::ResourceType.eq(resource_type))
            .into_tuple::<String>()
            .all(tx.conn())
            .await?;
        tx.commit().await?;
        Ok(rows.into_iter().filter(|held| held != id).collect())
    }

    async fn progress(&self, job: &Job, progress: Progress) -> Result<(), RecordError> {
        let tx = self.db.begin_serialized(job.tenant).await?;
        tx.update_many::<sync_jobs::Entity>()
            .col_expr(sync_jobs::Column::Done, Expr::value(progress.done))
            .col_expr(sync_jobs::Column::Total, Expr::value(progress.total))
            .col_expr(sync_jobs::Column::Stored, Expr::value(progress.stored))
            .col_expr(
                sync_jobs::Column::LeaseUntil,
                Expr::value(self.clock.now() + self.lease),
            )
            .filter(sync_jobs::Column::Id.eq(job.id.as_uuid()))
            .exec(tx.conn())
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn cursors(
        &self,
        tenant: TenantId,
        patient: PatientId,
    ) -> Result<Vec<sync_cursors::Model>, RecordError> {
        let tx = self.db.begin(tenant).await?;
        let rows = tx
            .find::<sync_cursors::Entity>()
            .filter(sync_cursors::Column::PatientId.eq(patient.as_uuid()))
            .all(tx.conn())
            .await?;
        tx.commit().await?;
        Ok(rows)
    }

    /// The EHR id of a linked patient.
    pub async fn ehr_patient(
        &self,
        tenant: TenantId,
        patient: PatientId,
    ) -> Result<Option<String>, RecordError> {
        let tx = self.db.begin(tenant).await?;
        let link = tx
            .find::<ehr_links::Entity>()
            .filter(ehr_links::Column::PatientId.eq(patient.as_uuid()))
            .one(tx.conn())
            .await?;
        tx.commit().await?;
        Ok(link.map(|link| link.ehr_patient_id))
    }

    /// Takes in an EHR notification (the Subscriptions backport's notification `Bundle`,
    /// already authenticated): queues a targeted read of what it names, for each linked
    /// patient it names, due at once. A notification that names no linked patient makes
    /// every linked patient due for a poll instead, so nothing it meant is missed.
    pub async fn notified(
        &self,
        tenant: TenantId,
        bundle: &Value,
    ) -> Result<Notified, RecordError> {
        let notice = read_notification(bundle)?;
        let mut outcome = Notified::default();
        let tx = self.db.begin_serialized(tenant).await?;
        let now = self.clock.now();
        let mut named = false;
        for (ehr_patient, focus) in &notice {
            let Some(ehr_patient) = ehr_patient else {
                continue;
            };
            let link = tx
                .find::<ehr_links::Entity>()
                .filter(ehr_links::Column::EhrPatientId.eq(ehr_patient.as_str()))
                .one(tx.conn())
                .await?;
            if let Some(link) = link {
                named = true;
                self.queue(
                    &tx,
                    PatientId::from_uuid(link.patient_id),
                    JobKind::Push,
                    focus,
                    now,
                )
                .await?;
                outcome.queued += 1;
            }
        }
        if !named && notice.iter().any(|(patient, _)| patient.is_none()) {
            let links = tx.find::<ehr_links::Entity>().all(tx.conn()).await?;
            for link in links.into_iter().filter(|l| l.backfilled_at.is_some()) {
                self.queue(
                    &tx,
                    PatientId::from_uuid(link.patient_id),
                    JobKind::Poll,
                    &[],
                    now,
                )
                .await?;
                outcome.polled += 1;
            }
        }
        tx.commit().await?;
        Ok(outcome)
    }

    /// The latest job of each kind for a patient, with its progress.
    pub async fn latest_job(
        &self,
        tenant: TenantId,
        patient: PatientId,
    ) -> Result<Option<JobStatus>, RecordError> {
        let tx = self.db.begin(tenant).await?;
        let row = tx
            .find::<sync_jobs::Entity>()
            .filter(sync_jobs::Column::PatientId.eq(patient.as_uuid()))
            .filter(sync_jobs::Column::Kind.eq(JobKind::Backfill.code()))
            .order_by_desc(sync_jobs::Column::CreatedAt)
            .order_by_desc(sync_jobs::Column::Id)
            .one(tx.conn())
            .await?;
        tx.commit().await?;
        Ok(row.map(JobStatus::from))
    }
}

/// A job as admins see it.
#[derive(Debug, Clone)]
pub struct JobStatus {
    /// queued, done or failed.
    pub state: String,
    /// What it does.
    pub kind: JobKind,
    /// How far it got.
    pub progress: Progress,
    /// Attempts so far.
    pub attempts: i32,
    /// The last failure, if any (no PHI: an HTTP status, a step).
    pub last_error: Option<String>,
}

impl From<sync_jobs::Model> for JobStatus {
    fn from(row: sync_jobs::Model) -> Self {
        Self {
            state: row.state,
            kind: JobKind::from_code(&row.kind),
            progress: Progress {
                done: row.done,
                total: row.total,
                stored: row.stored,
            },
            attempts: row.attempts,
            last_error: row.last_error,
        }
    }
}

/// The `Binary` attachments notes point at (`Binary/<id>`, relative or on the server).
async fn attachments(client: &dyn EhrClient, notes: &[Value]) -> Result<Vec<Value>, RecordError> {
    let mut ids: Vec<String> = Vec::new();
    for note in notes
        .iter()
        .filter(|r| r["resourceType"] == "DocumentReference")
    {
        for id in super::classify::attachment_ids(note) {
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
    }
    let mut found = Vec::new();
    for id in ids {
        if let Some(binary) = client.read("Binary", &id).await.map_err(RecordError::Ehr)? {
            found.push(binary);
        }
    }
    Ok(found)
}

/// A patient a notification names (by EHR id; `None` when it names none), with the
/// `Type/id` references to read.
type Named = (Option<String>, Vec<String>);

/// The patients a notification bundle names, each with the `Type/id` references to read.
/// A reference without a patient is listed under `None`.
fn read_notification(bundle: &Value) -> Result<Vec<Named>, RecordError> {
    if bundle["resourceType"] != "Bundle" {
        return Err(RecordError::Invalid("a notification must be a FHIR Bundle"));
    }
    let entries = bundle["entry"].as_array().ok_or(RecordError::Invalid(
        "the notification Bundle has no entries",
    ))?;
    let status = entries
        .first()
        .and_then(|entry| entry.get("resource"))
        .filter(|r| {
            r["resourceType"] == "SubscriptionStatus" || (r["resourceType"] == "Parameters")
        })
        .ok_or(RecordError::Invalid(
            "the notification Bundle does not start with a SubscriptionStatus",
        ))?;
    let mut found: Vec<Named> = Vec::new();
    let mut add = |patient: Option<String>, reference: Option<String>| match found
        .iter_mut()
        .find(|(p, _)| *p == patient)
    {
        Some((_, refs)) => refs.extend(reference),
        None => found.push((patient, reference.into_iter().collect())),
    };
    for event in notification_events(status) {
        let focus = event.focus.as_deref().and_then(relative_reference);
        let mut patient = event
            .context
            .iter()
            .chain(event.focus.iter())
            .find_map(|r| super::classify::patient_id(r).map(str::to_owned));
        // A full-resource notification carries the resource: it names the patient.
        if patient.is_none()
            && let Some(focus) = &focus
        {
            patient = entries.iter().skip(1).find_map(|entry| {
                let resource = entry.get("resource")?;
                let key = format!(
                    "{}/{}",
                    resource["resourceType"].as_str()?,
                    resource["id"].as_str()?
                );
                (key == *focus)
                    .then(|| super::classify::classify(resource).ok()?.patient)
                    .flatten()
            });
        }
        let focus = focus.filter(|f| !f.starts_with("Patient/"));
        add(patient, focus);
    }
    Ok(found)
}

struct NotificationEvent {
    focus: Option<String>,
    context: Vec<String>,
}

/// The events of a `SubscriptionStatus` (R4B/R5 shape) or of the R4 backport's
/// `Parameters` form.
fn notification_events(status: &Value) -> Vec<NotificationEvent> {
    if status["resourceType"] == "SubscriptionStatus" {
        return status["notificationEvent"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|event| NotificationEvent {
                focus: event
                    .pointer("/focus/reference")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                context: event["additionalContext"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|r| r["reference"].as_str().map(str::to_owned))
                    .collect(),
            })
            .collect();
    }
    status["parameter"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["name"] == "notification-event")
        .map(|event| {
            let parts = event["part"].as_array().cloned().unwrap_or_default();
            let reference = |name: &str| {
                parts
                    .iter()
                    .filter(|part| part["name"] == name)
                    .filter_map(|part| {
                        part.pointer("/valueReference/reference")
                            .and_then(Value::as_str)
                    })
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            };
            NotificationEvent {
                focus: reference("focus").into_iter().next(),
                context: reference("additional-context"),
            }
        })
        .collect()
}

/// `Type/id` from a relative or absolute reference, if it is one.
fn relative_reference(reference: &str) -> Option<String> {
    let reference = reference
        .split_once("/_history/")
        .map_or(reference, |(head, _)| head);
    let mut parts = reference.rsplitn(3, '/');
    let id = parts.next()?;
    let resource_type = parts.next()?;
    (super::classify::is_fhir_id(id)
        && resource_type.starts_with(|c: char| c.is_ascii_uppercase())
        && resource_type.chars().all(|c| c.is_ascii_alphanumeric()))
    .then(|| format!("{resource_type}/{id}"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::json;

    use super::*;

    fn notification(event: Value, resources: Vec<Value>) -> Value {
        let mut entries = vec![json!({"resource": {
            "resourceType": "Parameters",
            "parameter": [
                {"name": "subscription", "valueReference": {"reference": "Subscription/portico"}},
                {"name": "type", "valueCode": "event-notification"},
                event
            ]
        }})];
        entries.extend(resources.into_iter().map(|r| json!({"resource": r})));
        json!({"resourceType": "Bundle", "type": "history", "entry": entries})
    }

    #[test]
    fn a_backport_notification_names_the_patient_and_the_focus() {
        let bundle = notification(
            json!({"name": "notification-event", "part": [
                {"name": "event-number", "valueString": "7"},
                {"name": "focus", "valueReference": {"reference": "https://ehr.example/fhir/Observation/o1/_history/2"}},
                {"name": "additional-context", "valueReference": {"reference": "Patient/p1"}}
            ]}),
            vec![],
        );
        assert_eq!(
            read_notification(&bundle).unwrap(),
            vec![(Some("p1".to_owned()), vec!["Observation/o1".to_owned()])]
        );
    }

    #[test]
    fn a_full_resource_notification_names_the_patient_through_the_resource() {
        let bundle = notification(
            json!({"name": "notification-event", "part": [
                {"name": "focus", "valueReference": {"reference": "DiagnosticReport/r1"}}
            ]}),
            vec![
                json!({"resourceType": "DiagnosticReport", "id": "r1", "subject": {"reference": "Patient/p2"}}),
            ],
        );
        assert_eq!(
            read_notification(&bundle).unwrap(),
            vec![(
                Some("p2".to_owned()),
                vec!["DiagnosticReport/r1".to_owned()]
            )]
        );
        // An id-only notification that names no patient.
        let bundle = notification(
            json!({"name": "notification-event", "part": [
                {"name": "focus", "valueReference": {"reference": "Observation/o9"}}
            ]}),
            vec![],
        );
        assert_eq!(
            read_notification(&bundle).unwrap(),
            vec![(None, vec!["Observation/o9".to_owned()])]
        );
    }

    #[test]
    fn what_is_not_a_notification_is_refused() {
        assert!(read_notification(&json!({"resourceType": "Patient"})).is_err());
        assert!(read_notification(&json!({"resourceType": "Bundle"})).is_err());
        assert!(
            read_notification(&json!({"resourceType": "Bundle", "entry": [{"resource": {"resourceType": "Observation"}}]}))
                .is_err()
        );
    }
}
