//! What patients read of their record, and what staff may do with it. Every read is
//! audited in the transaction that reads; every withholding and release too.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveValue::Set, ColumnTrait, Condition, QueryFilter, QueryOrder, QuerySelect};
use serde_json::Value;

use super::RecordError;
use super::classify::{Category, Release};
use super::entity::{ehr_links, health_records, record_errors, sync_jobs, withholdings};
use super::lab::{LabReading, reading};
use super::policy::{Exception, ReleasePolicy};
use super::store::{self, body_place};
use super::sync::{EhrConnections, JobStatus};
use crate::audit::access_log::patient_actor;
use crate::audit::{Access, Action, Actor, ActorKind, AuditError, AuditTrail, NewEvent, Purpose};
use crate::clock::Clock;
use crate::crypto::seal::Place;
use crate::crypto::vault::Vault;
use crate::db::{Db, TenantTx};
use crate::entropy::Entropy;
use crate::identity::role::Role;
use crate::ids::{AccountId, PatientId, RecordId, TenantId, WithholdingId};
use crate::principal::Principal;

/// A moment, as stored.
type Instant = DateTime<Utc>;

/// The most items one page holds.
pub const MAX_PAGE: u64 = 200;
/// The longest a withholding may last before it must be renewed.
pub const MAX_WITHHOLDING_DAYS: i64 = 365;

/// Which items to list.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// One category; all but attachments when `None`.
    pub category: Option<Category>,
    /// From this date on.
    pub from: Option<DateTime<Utc>>,
    /// Before this date.
    pub to: Option<DateTime<Utc>>,
    /// Only these FHIR types.
    pub resource_types: Vec<String>,
}

/// One item of the record, as the patient sees it.
#[derive(Debug, Clone)]
pub struct Item {
    /// Portico's id for it.
    pub id: RecordId,
    /// Its FHIR type.
    pub resource_type: String,
    /// Where in the record.
    pub category: Category,
    /// Its EHR status.
    pub status: String,
    /// Shown before it is final, labelled so.
    pub preliminary: bool,
    /// Its clinically relevant date.
    pub effective_at: Option<DateTime<Utc>>,
    /// When the EHR finalized it.
    pub finalized_at: Option<DateTime<Utc>>,
    /// When Portico released it to the patient.
    pub released_at: Option<DateTime<Utc>>,
    /// When the patient first opened it (before this read); `None` until then.
    pub first_viewed_at: Option<DateTime<Utc>>,
    /// The FHIR resource, whole, as the EHR sent it.
    pub resource: Value,
}

/// A page of items, newest first.
#[derive(Debug, Clone)]
pub struct Page {
    /// The items.
    pub items: Vec<Item>,
    /// Pass as `after` for the next page; `None` on the last.
    pub next: Option<String>,
}

/// A lab result, read.
#[derive(Debug, Clone)]
pub struct LabResult {
    /// The item.
    pub item: Item,
    /// Its value, range and flag.
    pub reading: LabReading,
}

/// One analyte's results over time, oldest first.
#[derive(Debug, Clone)]
pub struct Trend {
    /// The analyte's code.
    pub code: String,
    /// Its name.
    pub name: String,
    /// Its unit (of the latest result).
    pub unit: Option<String>,
    /// The results.
    pub points: Vec<LabResult>,
}

/// How current the patient's record is.
#[derive(Debug, Clone)]
pub struct Freshness {
    /// Whether the record is linked to the clinic's EHR at all.
    pub linked: bool,
    /// When a sync last completed.
    pub last_synced_at: Option<DateTime<Utc>>,
    /// Whether the data may be out of date (no sync within twice the poll interval, or a
    /// backfill still running).
    pub stale: bool,
    /// The first full read's progress while it runs.
    pub backfill: Option<JobStatus>,
}

/// A withholding, for compliance review.
#[derive(Debug, Clone)]
pub struct Withholding {
    /// Its id.
    pub id: WithholdingId,
    /// The item held back.
    pub record: RecordId,
    /// Whose.
    pub patient: PatientId,
    /// Under which exception.
    pub exception: Exception,
    /// Why, in the staff member's words.
    pub reason: String,
    /// Until when at the latest.
    pub until: DateTime<Utc>,
    /// By whom (account id).
    pub withheld_by: String,
    /// When.
    pub withheld_at: DateTime<Utc>,
    /// Released by whom, if it was.
    pub released_by: Option<String>,
    /// When it was released.
    pub released_at: Option<DateTime<Utc>>,
}

/// One linked patient's sync, for the clinic's admins.
#[derive(Debug, Clone)]
pub struct PatientSync {
    /// The patient.
    pub patient: PatientId,
    /// When the full read finished.
    pub backfilled_at: Option<DateTime<Utc>>,
    /// When a sync last completed.
    pub last_synced_at: Option<DateTime<Utc>>,
    /// The backfill job.
    pub backfill: Option<JobStatus>,
}

/// The clinic's sync, for its admins.
#[derive(Debug, Clone)]
pub struct SyncOverview {
    /// Each linked patient.
    pub patients: Vec<PatientSync>,
    /// Jobs waiting.
    pub queued: u64,
    /// Jobs given up.
    pub failed: u64,
    /// Resources that could not be stored.
    pub errors: u64,
    /// Finalized in the EHR → visible in Portico, for items finalized after their
    /// patient's backfill: how many, the median and the 95th percentile, in milliseconds.
    pub latency: Latency,
}

/// Finalized → visible latency.
#[derive(Debug, Clone, Default)]
pub struct Latency {
    /// Items measured.
    pub count: u64,
    /// The median, in milliseconds.
    pub p50_ms: Option<i64>,
    /// The 95th percentile, in milliseconds.
    pub p95_ms: Option<i64>,
}

/// The patient's record, read and managed.
#[derive(Debug, Clone)]
pub struct Records {
    db: Db,
    vault: Vault,
    audit: AuditTrail,
    connections: Arc<dyn EhrConnections>,
    clock: Arc<dyn Clock>,
    entropy: Arc<dyn Entropy>,
}

struct Reader<'a> {
    tenant: TenantId,
    patient: PatientId,
    actor: Actor,
    session: &'a str,
}

impl Records {
    /// The service over `db`.
    pub fn new(
        db: Db,
        vault: Vault,
        audit: AuditTrail,
        connections: Arc<dyn EhrConnections>,
        clock: Arc<dyn Clock>,
        entropy: Arc<dyn Entropy>,
    ) -> Self {
        Self {
            db,
            vault,
            audit,
            connections,
            clock,
            entropy,
        }
    }

    /// The signed-in patient's items, newest first, `first` at a time after `after`.
    pub async fn list(
        &self,
        principal: &Principal,
        filter: &Filter,
        first: u64,
        after: Option<&str>,
    ) -> Result<Page, RecordError> {
        let reader = patient_of(principal)?;
        let policy = self.connections.release_policy(reader.tenant).await;
        let first = first.clamp(1, MAX_PAGE);
        let mut access = self.audit.begin(reader.tenant).await?;
        let mut query = self
            .visible(access.tx(), reader.patient, policy)
            .order_by_desc(health_records::Column::EffectiveAt)
            .order_by_desc(health_records::Column::Id)
            .limit(first + 1);
        query = match filter.category {
            Some(category) => query.filter(health_records::Column::Category.eq(category.code())),
            None => query.filter(health_records::Column::Category.ne(Category::Attachment.code())),
        };
        if !filter.resource_types.is_empty() {
            query = query
                .filter(health_records::Column::ResourceType.is_in(filter.resource_types.clone()));
        }
        if let Some(from) = filter.from {
            query = query.filter(health_records::Column::EffectiveAt.gte(from));
        }
        if let Some(to) = filter.to {
            query = query.filter(health_records::Column::EffectiveAt.lt(to));
        }
        if let Some((at, id)) = after.map(parse_cursor).transpose()? {
            query = query.filter(
                Condition::any()
                    .add(health_records::Column::EffectiveAt.lt(at))
                    .add(
                        Condition::all()
                            .add(health_records::Column::EffectiveAt.eq(at))
                            .add(health_records::Column::Id.lt(id)),
                    ),
            );
        }
        let rows = query.all(access.tx().conn()).await?;
        let more = rows.len() as u64 > first;
        let rows: Vec<_> = rows
            .into_iter()
            .take(usize::try_from(first).unwrap_or(usize::MAX))
            .collect();
        let next = more.then(|| rows.last().map(cursor_of)).flatten();
        let items = self
            .open_rows(&mut access, &reader, rows, Action::Search)
            .await?;
        access
            .release(Page { items, next })
            .await
            .map_err(RecordError::from)
    }

    /// One item, whole: a note with its attachments' text.
    pub async fn item(
        &self,
        principal: &Principal,
        id: RecordId,
    ) -> Result<(Item, Vec<Item>), RecordError> {
        let reader = patient_of(principal)?;
        let policy = self.connections.release_policy(reader.tenant).await;
        let mut access = self.audit.begin(reader.tenant).await?;
        let row = self
            .visible(access.tx(), reader.patient, policy)
            .filter(health_records::Column::Id.eq(id.as_uuid()))
            .one(access.tx().conn())
            .await?
            .ok_or(RecordError::NotFound)?;
        let mut items = self
            .open_rows(&mut access, &reader, vec![row], Action::Read)
            .await?;
        let item = items.pop().ok_or(RecordError::NotFound)?;
        let binaries = super::classify::attachment_ids(&item.resource);
        let attachments = if binaries.is_empty() {
            Vec::new()
        } else {
            let rows = self
                .visible(access.tx(), reader.patient, policy)
                .filter(health_records::Column::ResourceType.eq("Binary"))
                .filter(health_records::Column::FhirId.is_in(binaries))
                .all(access.tx().conn())
                .await?;
            self.open_rows(&mut access, &reader, rows, Action::Read)
                .await?
        };
        access
            .release((item, attachments))
            .await
            .map_err(RecordError::from)
    }

    /// The signed-in patient's whole record as one FHIR R4 `Bundle` (type `collection`):
    /// every item they can see, attachments included — what "download my record" gives.
    /// Free, and audited as an export.
    pub async fn export(&self, principal: &Principal) -> Result<Value, RecordError> {
        let reader = patient_of(principal)?;
        let policy = self.connections.release_policy(reader.tenant).await;
        let mut access = self.audit.begin(reader.tenant).await?;
        let rows = self
            .visible(access.tx(), reader.patient, policy)
            .order_by_desc(health_records::Column::EffectiveAt)
            .order_by_desc(health_records::Column::Id)
            .all(access.tx().conn())
            .await?;
        let items = self
            .open_rows(&mut access, &reader, rows, Action::Export)
            .await?;
        let entries: Vec<Value> = items
            .into_iter()
            .map(|item| {
                serde_json::json!({
                    "fullUrl": format!("urn:uuid:{}", item.id),
                    "resource": item.resource,
                })
            })
            .collect();
        let bundle = serde_json::json!({
            "resourceType": "Bundle",
            "type": "collection",
            "timestamp": self.clock.now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "total": entries.len(),
            "entry": entries,
        });
        access.release(bundle).await.map_err(RecordError::from)
    }

    /// The signed-in patient's lab results (Observations), newest first, read.
    pub async fn labs(
        &self,
        principal: &Principal,
        first: u64,
        after: Option<&str>,
    ) -> Result<(Vec<LabResult>, Option<String>), RecordError> {
        let filter = Filter {
            category: Some(Category::Lab),
            resource_types: vec!["Observation".to_owned()],
            ..Filter::default()
        };
        let page = self.list(principal, &filter, first, after).await?;
        Ok((
            page.items
                .into_iter()
                .map(|item| LabResult {
                    reading: reading(&item.resource),
                    item,
                })
                .collect(),
            page.next,
        ))
    }

    /// The signed-in patient's lab results grouped by analyte, each oldest first: what
    /// trend charts draw.
    pub async fn lab_trends(&self, principal: &Principal) -> Result<Vec<Trend>, RecordError> {
        let mut trends: BTreeMap<String, Trend> = BTreeMap::new();
        let mut after = None;
        loop {
            let (results, next) = self.labs(principal, MAX_PAGE, after.as_deref()).await?;
            for result in results {
                let key = result
                    .reading
                    .code
                    .clone()
                    .unwrap_or_else(|| result.reading.name.clone());
                let trend = trends.entry(key.clone()).or_insert_with(|| Trend {
                    code: key,
                    name: result.reading.name.clone(),
                    unit: result.reading.unit.clone(),
                    points: Vec::new(),
                });
                trend.points.push(result);
            }
            match next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        let mut trends: Vec<Trend> = trends.into_values().collect();
        for trend in &mut trends {
            trend.points.reverse();
        }
        Ok(trends)
    }

    /// How current the signed-in patient's record is.
    pub async fn freshness(&self, principal: &Principal) -> Result<Freshness, RecordError> {
        let reader = patient_of(principal)?;
        let interval = match self.connections.connect(reader.tenant).await {
            Ok(Some(connection)) => connection.poll_interval,
            _ => std::time::Duration::from_secs(300),
        };
        let tx = self.db.begin(reader.tenant).await?;
        let link = tx
            .find::<ehr_links::Entity>()
            .filter(ehr_links::Column::PatientId.eq(reader.patient.as_uuid()))
            .one(tx.conn())
            .await?;
        let backfill = latest_backfill(&tx, reader.patient).await?;
        tx.commit().await?;
        let Some(link) = link else {
            return Ok(Freshness {
                linked: false,
                last_synced_at: None,
                stale: false,
                backfill: None,
            });
        };
        let window = Duration::from_std(interval * 2).unwrap_or(Duration::minutes(10));
        let stale = link.backfilled_at.is_none()
            || link
                .last_synced_at
                .is_none_or(|at| at + window < self.clock.now());
        Ok(Freshness {
            linked: true,
            last_synced_at: link.last_synced_at,
            stale,
            backfill: backfill.filter(|job| job.state != "done"),
        })
    }

    /// Withholds one item from its patient under an information-blocking exception, by a
    /// provider or the clinic's admin, with a reason and an end date. Audited.
    pub async fn withhold(
        &self,
        principal: &Principal,
        record: RecordId,
        exception: Exception,
        reason: &str,
        until: DateTime<Utc>,
    ) -> Result<WithholdingId, RecordError> {
        let (tenant, account) = staff_of(principal, &[Role::Provider, Role::TenantAdmin])?;
        let reason = reason.trim();
        if reason.chars().count() < 10 || reason.len() > 2000 {
            return Err(RecordError::Invalid(
                "say why, in 10 to 2000 characters: the reason is kept for compliance review",
            ));
        }
        let now = self.clock.now();
        if until <= now {
            return Err(RecordError::Invalid("the end date must be in the future"));
        }
        if until > now + Duration::days(MAX_WITHHOLDING_DAYS) {
            return Err(RecordError::Invalid(
                "a withholding may last at most 365 days; review it and renew it then",
            ));
        }
        let id = WithholdingId::generate(self.clock.as_ref(), self.entropy.as_ref());
        let row_key = id.to_string();
        let sealing = self.db.begin(tenant).await?;
        let sealed = self
            .vault
            .seal(&sealing, &reason_place(tenant, &row_key), reason.as_bytes())
            .await?;
        sealing.commit().await?;

        let mut access = self.audit.begin(tenant).await?;
        let row = access
            .tx()
            .find::<health_records::Entity>()
            .filter(health_records::Column::Id.eq(record.as_uuid()))
            .one(access.tx().conn())
            .await?
            .ok_or(RecordError::NotFound)?;
        let active = access
            .tx()
            .find::<withholdings::Entity>()
            .filter(withholdings::Column::RecordId.eq(record.as_uuid()))
            .filter(withholdings::Column::ReleasedAt.is_null())
            .filter(withholdings::Column::Until.gt(now))
            .one(access.tx().conn())
            .await?;
        if active.is_some() {
            return Err(RecordError::Invalid(
                "this item is already withheld; release that withholding first",
            ));
        }
        access
            .tx()
            .insert(withholdings::ActiveModel {
                id: Set(id.as_uuid()),
                record_id: Set(record.as_uuid()),
                patient_id: Set(row.patient_id),
                exception: Set(exception.code().to_owned()),
                reason: Set(sealed),
                until: Set(until),
                withheld_by: Set(account.to_string()),
                withheld_at: Set(now),
                released_by: Set(None),
                released_at: Set(None),
                ..Default::default()
            })
            .await?;
        set_withheld(access.tx(), record, Some(until)).await?;
        access.record(
            staff_event(
                account,
                Action::Withhold,
                &row.resource_type,
                &record.to_string(),
            )?
            .patient(PatientId::from_uuid(row.patient_id)),
        );
        access.release(id).await.map_err(RecordError::from)
    }

    /// Releases a withholding at once. Audited.
    pub async fn release(
        &self,
        principal: &Principal,
        withholding: WithholdingId,
    ) -> Result<(), RecordError> {
        let (tenant, account) = staff_of(principal, &[Role::Provider, Role::TenantAdmin])?;
        let now = self.clock.now();
        let mut access = self.audit.begin(tenant).await?;
        let row = access
            .tx()
            .find::<withholdings::Entity>()
            .filter(withholdings::Column::Id.eq(withholding.as_uuid()))
            .filter(withholdings::Column::ReleasedAt.is_null())
            .one(access.tx().conn())
            .await?
            .ok_or(RecordError::NotFound)?;
        access
            .tx()
            .update_many::<withholdings::Entity>()
            .col_expr(withholdings::Column::ReleasedAt, Expr::value(now))
            .col_expr(
                withholdings::Column::ReleasedBy,
                Expr::value(account.to_string()),
            )
            .filter(withholdings::Column::Id.eq(row.id))
            .exec(access.tx().conn())
            .await?;
        let record = RecordId::from_uuid(row.record_id);
        set_withheld(access.tx(), record, None).await?;
        let resource_type = access
            .tx()
            .find::<health_records::Entity>()
            .filter(health_records::Column::Id.eq(row.record_id))
            .one(access.tx().conn())
            .await?
            .map_or_else(|| "Unknown".to_owned(), |r| r.resource_type);
        access.record(
            staff_event(
                account,
                Action::Release,
                &resource_type,
                &record.to_string(),
            )?
            .patient(PatientId::from_uuid(row.patient_id)),
        );
        access.release(()).await.map_err(RecordError::from)
    }

    /// Every withholding, newest first, with its reason: the compliance list, for the
    /// clinic's admin. Audited.
    pub async fn withholdings(
        &self,
        principal: &Principal,
    ) -> Result<Vec<Withholding>, RecordError> {
        let (tenant, account) = staff_of(principal, &[Role::TenantAdmin])?;
        let mut access = self.audit.begin(tenant).await?;
        let rows = access
            .tx()
            .find::<withholdings::Entity>()
            .order_by_desc(withholdings::Column::WithheldAt)
            .limit(1000)
            .all(access.tx().conn())
            .await?;
        let mut list = Vec::with_capacity(rows.len());
        for row in rows {
            let key = row.id.to_string();
            let reason = self
                .vault
                .open(access.tx(), &reason_place(tenant, &key), &row.reason)
                .await?;
            list.push(Withholding {
                id: WithholdingId::from_uuid(row.id),
                record: RecordId::from_uuid(row.record_id),
                patient: PatientId::from_uuid(row.patient_id),
                exception: Exception::from_code(&row.exception)
                    .unwrap_or(Exception::PreventingHarm),
                reason: String::from_utf8_lossy(reason.as_slice()).into_owned(),
                until: row.until,
                withheld_by: row.withheld_by,
                withheld_at: row.withheld_at,
                released_by: row.released_by,
                released_at: row.released_at,
            });
        }
        access.record(staff_event(
            account,
            Action::Search,
            "Consent",
            "withholdings",
        )?);
        access.release(list).await.map_err(RecordError::from)
    }

    /// The clinic's sync state, for its admin: every linked patient's backfill, the queue,
    /// errors, and finalized→visible latency.
    ///
    /// The vendor's operators may ask too: the overview holds ids and counts, no PHI.
    pub async fn sync_overview(
        &self,
        principal: &Principal,
        tenant: TenantId,
    ) -> Result<SyncOverview, RecordError> {
        if !matches!(principal, Principal::Operator) {
            let (own, _) = staff_of(principal, &[Role::TenantAdmin])?;
            if own != tenant {
                return Err(RecordError::Forbidden);
            }
        }
        let tx = self.db.begin(tenant).await?;
        let links = tx
            .find::<ehr_links::Entity>()
            .order_by_asc(ehr_links::Column::LinkedAt)
            .limit(1000)
            .all(tx.conn())
            .await?;
        // Each patient's latest backfill, from one read of the clinic's backfill jobs.
        let mut backfills: HashMap<uuid::Uuid, JobStatus> = HashMap::new();
        let jobs = tx
            .find::<sync_jobs::Entity>()
            .filter(sync_jobs::Column::Kind.eq("backfill"))
            .order_by_desc(sync_jobs::Column::CreatedAt)
            .order_by_desc(sync_jobs::Column::Id)
            .all(tx.conn())
            .await?;
        for job in jobs {
            backfills
                .entry(job.patient_id)
                .or_insert_with(|| job.into());
        }
        let patients = links
            .iter()
            .map(|link| PatientSync {
                patient: PatientId::from_uuid(link.patient_id),
                backfilled_at: link.backfilled_at,
                last_synced_at: link.last_synced_at,
                backfill: backfills.remove(&link.patient_id),
            })
            .collect();
        let count_jobs = |state: &'static str| {
            tx.find::<sync_jobs::Entity>()
                .filter(sync_jobs::Column::State.eq(state))
                .count(tx.conn())
        };
        use sea_orm::PaginatorTrait;
        let queued = count_jobs("queued").await?;
        let failed = count_jobs("failed").await?;
        let errors = tx.find::<record_errors::Entity>().count(tx.conn()).await?;
        let latency = latency(&tx, &links).await?;
        tx.commit().await?;
        Ok(SyncOverview {
            patients,
            queued,
            failed,
            errors,
            latency,
        })
    }

    /// Items visible to `patient` now, under `policy`.
    fn visible(
        &self,
        tx: &TenantTx,
        patient: PatientId,
        policy: ReleasePolicy,
    ) -> sea_orm::Select<health_records::Entity> {
        let mut shown =
            Condition::any().add(health_records::Column::Release.eq(Release::Released.code()));
        if policy.shows_preliminary() {
            shown = shown.add(health_records::Column::Release.eq(Release::Preliminary.code()));
        }
        tx.find::<health_records::Entity>()
            .filter(health_records::Column::PatientId.eq(patient.as_uuid()))
            .filter(shown)
            .filter(
                Condition::any()
                    .add(health_records::Column::WithheldUntil.is_null())
                    .add(health_records::Column::WithheldUntil.lte(self.clock.now())),
            )
    }

    /// Opens rows for the patient, records the access, and marks first views.
    async fn open_rows(
        &self,
        access: &mut Access,
        reader: &Reader<'_>,
        rows: Vec<health_records::Model>,
        action: Action,
    ) -> Result<Vec<Item>, RecordError> {
        let mut items = Vec::with_capacity(rows.len());
        let mut types: Vec<String> = Vec::new();
        let mut unviewed = Vec::new();
        for row in rows {
            let key = format!("{}/{}", row.resource_type, row.fhir_id);
            let json = self
                .vault
                .open(access.tx(), &body_place(reader.tenant, &key), &row.body)
                .await?;
            let resource: Value = serde_json::from_slice(json.as_slice())
                .map_err(|_| RecordError::Invalid("a stored record is not JSON"))?;
            if !types.contains(&row.resource_type) {
                types.push(row.resource_type.clone());
            }
            if row.first_viewed_at.is_none() {
                unviewed.push(row.id);
            }
            items.push(Item {
                id: RecordId::from_uuid(row.id),
                category: store::category(&row),
                preliminary: row.release == Release::Preliminary.code(),
                resource_type: row.resource_type,
                status: row.status,
                effective_at: row.effective_at,
                finalized_at: row.finalized_at,
                released_at: row.released_at,
                first_viewed_at: row.first_viewed_at,
                resource,
            });
        }
        if !unviewed.is_empty() {
            access
                .tx()
                .update_many::<health_records::Entity>()
                .col_expr(
                    health_records::Column::FirstViewedAt,
                    Expr::value(self.clock.now()),
                )
                .filter(health_records::Column::Id.is_in(unviewed))
                .filter(health_records::Column::FirstViewedAt.is_null())
                .exec(access.tx().conn())
                .await?;
        }
        if types.is_empty() {
            // An empty answer is an access too.
            types.push("Bundle".to_owned());
        }
        for resource_type in types {
            let mut event = NewEvent::new(
                reader.actor.clone(),
                action,
                &resource_type,
                Purpose::PatientRequest,
            )
            .map_err(AuditError::from)?
            .patient(reader.patient);
            if let Ok(with_client) = event.clone().client(reader.session) {
                event = with_client;
            }
            access.record(event);
        }
        Ok(items)
    }
}

fn patient_of(principal: &Principal) -> Result<Reader<'_>, RecordError> {
    match principal {
        Principal::Patient {
            tenant,
            account,
            patient,
            session,
        } => Ok(Reader {
            tenant: *tenant,
            patient: *patient,
            actor: patient_actor(*account),
            session,
        }),
        _ => Err(RecordError::Forbidden),
    }
}

fn staff_of(principal: &Principal, roles: &[Role]) -> Result<(TenantId, AccountId), RecordError> {
    match principal {
        Principal::Staff {
            tenant,
            account,
            role,
            ..
        } if roles.contains(role) => Ok((*tenant, *account)),
        _ => Err(RecordError::Forbidden),
    }
}

fn staff_event(
    account: AccountId,
    action: Action,
    resource_type: &str,
    resource: &str,
) -> Result<NewEvent, RecordError> {
    let actor = Actor::new(ActorKind::Staff, account.to_string()).map_err(AuditError::from)?;
    Ok(
        NewEvent::new(actor, action, resource_type, Purpose::Operations)
            .and_then(|event| event.resource(resource))
            .map_err(AuditError::from)?,
    )
}

fn reason_place(tenant: TenantId, row: &str) -> Place<'_> {
    Place {
        tenant,
        table: "withholdings",
        column: "reason",
        row,
    }
}

async fn set_withheld(
    tx: &TenantTx,
    record: RecordId,
    until: Option<DateTime<Utc>>,
) -> Result<(), RecordError> {
    tx.update_many::<health_records::Entity>()
        .col_expr(health_records::Column::WithheldUntil, Expr::value(until))
        .filter(health_records::Column::Id.eq(record.as_uuid()))
        .exec(tx.conn())
        .await?;
    Ok(())
}

async fn latest_backfill(
    tx: &TenantTx,
    patient: PatientId,
) -> Result<Option<JobStatus>, RecordError> {
    Ok(tx
        .find::<sync_jobs::Entity>()
        .filter(sync_jobs::Column::PatientId.eq(patient.as_uuid()))
        .filter(sync_jobs::Column::Kind.eq("backfill"))
        .order_by_desc(sync_jobs::Column::CreatedAt)
        .one(tx.conn())
        .await?
        .map(JobStatus::from))
}

/// Finalized → released, for items finalized after their patient's backfill finished (what
/// was final before Portico watched says nothing about Portico's speed).
async fn latency(tx: &TenantTx, links: &[ehr_links::Model]) -> Result<Latency, RecordError> {
    let backfilled: HashMap<uuid::Uuid, Instant> = links
        .iter()
        .filter_map(|link| Some((link.patient_id, link.backfilled_at?)))
        .collect();
    let Some(earliest) = backfilled.values().min().copied() else {
        return Ok(Latency::default());
    };
    let rows: Vec<(uuid::Uuid, Option<Instant>, Option<Instant>)> = tx
        .find::<health_records::Entity>()
        .select_only()
        .columns([
            health_records::Column::PatientId,
            health_records::Column::FinalizedAt,
            health_records::Column::ReleasedAt,
        ])
        .filter(health_records::Column::FinalizedAt.gte(earliest))
        .into_tuple()
        .all(tx.conn())
        .await?;
    let mut samples: Vec<i64> = rows
        .into_iter()
        .filter_map(|(patient, finalized, released)| {
            let (finalized, released) = (finalized?, released?);
            (finalized >= *backfilled.get(&patient)?)
                .then(|| (released - finalized).num_milliseconds().max(0))
        })
        .collect();
    samples.sort_unstable();
    let at = |q: f64| {
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss
        )]
        let index = ((samples.len() as f64 - 1.0) * q).round() as usize;
        samples.get(index).copied()
    };
    Ok(Latency {
        count: samples.len() as u64,
        p50_ms: at(0.5),
        p95_ms: at(0.95),
    })
}

fn cursor_of(row: &health_records::Model) -> String {
    format!(
        "{}.{}",
        row.effective_at.map_or(0, |at| at.timestamp_micros()),
        row.id
    )
}

fn parse_cursor(cursor: &str) -> Result<(DateTime<Utc>, uuid::Uuid), RecordError> {
    let (micros, id) = cursor.split_once('.').ok_or(RecordError::Invalid(
        "the page cursor is not one this API gave",
    ))?;
    micros
        .parse::<i64>()
        .ok()
        .and_then(DateTime::from_timestamp_micros)
        .zip(uuid::Uuid::parse_str(id).ok())
        .ok_or(RecordError::Invalid(
            "the page cursor is not one this API gave",
        ))
}
