//! The write side of the record store: EHR resources in, sealed rows out, idempotently.
//!
//! A resource is keyed by tenant, type and FHIR id. Storing the same version again changes
//! nothing; a newer version replaces the row; an older one (a late page after a push) is
//! ignored. The release state is set from the status the moment the row is written — a
//! final result is released in the same transaction that stores it.
//!
//! One batch is one transaction: the rows, the per-resource errors, the audit events and,
//! when the caller passes one, the sync cursor move together. A crash before the commit
//! leaves the cursor where it was, so the next run fetches the same resources and stores
//! them harmlessly again.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QuerySelect};
use serde_json::Value;

use super::RecordError;
use super::classify::{Category, Classified, Problem, Release, classify};
use super::entity::{health_records, record_errors, sync_cursors};
use crate::audit::{Action, Actor, AuditError, AuditTrail, NewEvent, Purpose};
use crate::clock::Clock;
use crate::crypto::seal::Place;
use crate::crypto::vault::Vault;
use crate::db::{Db, TenantTx};
use crate::entropy::Entropy;
use crate::ids::{PatientId, RecordId, TenantId};

/// The table and column record bodies are sealed in.
pub(crate) const TABLE: &str = "health_records";
const BODY: &str = "body";

/// Where a record's body is sealed: bound to its type and FHIR id, the row's natural key,
/// so it can be sealed before the row exists and cannot be moved to another row.
pub(crate) fn body_place<'a>(tenant: TenantId, key: &'a str) -> Place<'a> {
    Place {
        tenant,
        table: TABLE,
        column: BODY,
        row: key,
    }
}

/// A sync cursor to move in the same transaction as the rows it covers.
#[derive(Debug, Clone)]
pub struct CursorMove {
    /// The resource type searched.
    pub resource_type: String,
    /// Where the next incremental search starts.
    pub since: DateTime<Utc>,
}

/// What one batch did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Rows written (new, or a newer version).
    pub stored: usize,
    /// Resources already held at this version (or newer).
    pub unchanged: usize,
    /// Resources that could not be stored, each recorded in `record_errors`.
    pub errors: usize,
    /// Items released to the patient by this batch.
    pub released: usize,
    /// The newest `meta.lastUpdated` among the resources.
    pub newest: Option<DateTime<Utc>>,
}

/// Writes EHR resources into the patient's record.
#[derive(Debug, Clone)]
pub struct RecordStore {
    db: Db,
    vault: Vault,
    audit: AuditTrail,
    clock: Arc<dyn Clock>,
    entropy: Arc<dyn Entropy>,
}

struct Planned {
    item: Classified,
    existing: Option<Held>,
    body: Vec<u8>,
}

/// What deciding about a new version needs of the row already held (never its body).
#[derive(Debug, Clone)]
struct Held {
    id: uuid::Uuid,
    patient_id: uuid::Uuid,
    version: String,
    ehr_updated_at: Option<DateTime<Utc>>,
    released_at: Option<DateTime<Utc>>,
}

impl RecordStore {
    /// A store over `db`.
    pub fn new(
        db: Db,
        vault: Vault,
        audit: AuditTrail,
        clock: Arc<dyn Clock>,
        entropy: Arc<dyn Entropy>,
    ) -> Self {
        Self {
            db,
            vault,
            audit,
            clock,
            entropy,
        }
    }

    /// Stores `resources` as `patient`'s (`ehr_patient` on the EHR), by Portico itself.
    /// A resource that names another patient is refused and recorded as an error.
    pub async fn store(
        &self,
        tenant: TenantId,
        patient: PatientId,
        ehr_patient: &str,
        resources: &[Value],
        cursor: Option<CursorMove>,
    ) -> Result<Outcome, RecordError> {
        let now = self.clock.now();
        let mut outcome = Outcome::default();
        let mut problems: Vec<(Option<String>, Option<String>, Problem)> = Vec::new();
        let mut items: Vec<(Classified, &Value)> = Vec::new();
        let mut seen = HashSet::new();
        for resource in resources {
            match classify(resource) {
                Ok(item) if item.patient.as_deref().is_some_and(|p| p != ehr_patient) => {
                    problems.push((
                        Some(item.resource_type),
                        Some(item.fhir_id),
                        Problem::OtherPatient,
                    ));
                }
                Ok(item) => {
                    outcome.newest = outcome.newest.max(item.updated_at);
                    // A page may repeat a resource; the first is kept.
                    if seen.insert((item.resource_type.clone(), item.fhir_id.clone())) {
                        items.push((item, resource));
                    }
                }
                Err(problem) => {
                    let resource_type = resource
                        .get("resourceType")
                        .and_then(Value::as_str)
                        .filter(|t| t.len() <= 64)
                        .map(str::to_owned);
                    let id = resource
                        .get("id")
                        .and_then(Value::as_str)
                        .filter(|id| super::classify::is_fhir_id(id))
                        .map(str::to_owned);
                    problems.push((resource_type, id, problem));
                }
            }
        }

        // What is held already, and so what is new, newer, or the same.
        let existing = self.existing(tenant, &items).await?;
        let mut planned = Vec::new();
        let sealing = self.db.begin(tenant).await?;
        for (item, resource) in items {
            let held = existing
                .get(&(item.resource_type.clone(), item.fhir_id.clone()))
                .cloned();
            if let Some(held) = &held {
                if held.patient_id != patient.as_uuid() {
                    problems.push((
                        Some(item.resource_type),
                        Some(item.fhir_id),
                        Problem::OtherPatient,
                    ));
                    continue;
                }
                let older = matches!((item.updated_at, held.ehr_updated_at), (Some(new), Some(old)) if new < old);
                if held.version == item.version || older {
                    outcome.unchanged += 1;
                    continue;
                }
            }
            let key = format!("{}/{}", item.resource_type, item.fhir_id);
            let json = zeroize::Zeroizing::new(
                serde_json::to_vec(resource)
                    .map_err(|_| RecordError::Invalid("unserializable resource"))?,
            );
            let body = self
                .vault
                .seal(&sealing, &body_place(tenant, &key), &json)
                .await?;
            planned.push(Planned {
                item,
                existing: held,
                body,
            });
        }
        sealing.commit().await?;

        let tx = self.db.begin_serialized(tenant).await?;
        let mut touched: HashMap<String, usize> = HashMap::new();
        for Planned {
            item,
            existing,
            body,
        } in planned
        {
            *touched.entry(item.resource_type.clone()).or_default() += 1;
            let first_release = item.release == Release::Released
                && existing
                    .as_ref()
                    .is_none_or(|held| held.released_at.is_none());
            // Only what the EHR's new version changes is written: the first view and a
            // withholding belong to Portico and are never written back from an older read.
            let mut model = health_records::ActiveModel {
                version: Set(item.version.clone()),
                category: Set(item.category.code().to_owned()),
                status: Set(item.status.clone()),
                release: Set(item.release.code().to_owned()),
                effective_at: Set(Some(item.effective_at.unwrap_or(now))),
                ehr_updated_at: Set(item.updated_at),
                body: Set(body),
                stored_at: Set(now),
                ..Default::default()
            };
            if first_release {
                outcome.released += 1;
                model.released_at = Set(Some(now));
                model.finalized_at = Set(Some(
                    item.updated_at.or(item.issued_at).unwrap_or(now).min(now),
                ));
            }
            match existing {
                None => {
                    model.id = Set(
                        RecordId::generate(self.clock.as_ref(), self.entropy.as_ref()).as_uuid(),
                    );
                    model.patient_id = Set(patient.as_uuid());
                    model.resource_type = Set(item.resource_type);
                    model.fhir_id = Set(item.fhir_id);
                    model.first_viewed_at = Set(None);
                    model.withheld_until = Set(None);
                    if !first_release {
                        model.released_at = Set(None);
                        model.finalized_at = Set(None);
                    }
                    tx.insert(model).await?;
                }
                Some(held) => {
                    tx.update_many::<health_records::Entity>()
                        .set(model)
                        .filter(health_records::Column::Id.eq(held.id))
                        .exec(tx.conn())
                        .await?;
                }
            }
            outcome.stored += 1;
        }
        for (resource_type, fhir_id, problem) in &problems {
            tx.insert(record_errors::ActiveModel {
                id: Set(RecordId::generate(self.clock.as_ref(), self.entropy.as_ref()).as_uuid()),
                patient_id: Set(Some(patient.as_uuid())),
                resource_type: Set(resource_type
                    .clone()
                    .unwrap_or_else(|| "unknown".to_owned())),
                fhir_id: Set(fhir_id.clone()),
                problem: Set(problem.to_string()),
                at: Set(now),
                ..Default::default()
            })
            .await?;
            tracing::warn!(
                fhir.resource_type = resource_type.as_deref().unwrap_or("unknown"),
                problem = %problem,
                "an EHR resource could not be stored"
            );
        }
        outcome.errors = problems.len();
        if let Some(cursor) = cursor {
            move_cursor(&tx, patient, cursor).await?;
        }
        let mut events = Vec::new();
        let mut types: Vec<_> = touched.into_keys().collect();
        types.sort();
        for resource_type in types {
            events.push(
                NewEvent::new(
                    Actor::system(),
                    Action::Update,
                    &resource_type,
                    Purpose::System,
                )
                .map_err(AuditError::from)?
                .patient(patient),
            );
        }
        if !events.is_empty() {
            self.audit.append(&tx, &events).await?;
        }
        tx.commit().await?;

        Ok(outcome)
    }

    /// Removes from view the items of `resource_type` that a full read of the patient's
    /// record no longer returned (deleted in the EHR). Returns how many.
    pub async fn remove_missing(
        &self,
        tenant: TenantId,
        patient: PatientId,
        resource_type: &str,
        present: &HashSet<String>,
    ) -> Result<usize, RecordError> {
        let tx = self.db.begin_serialized(tenant).await?;
        let rows: Vec<(uuid::Uuid, String)> = tx
            .find::<health_records::Entity>()
            .select_only()
            .columns([health_records::Column::Id, health_records::Column::FhirId])
            .filter(health_records::Column::PatientId.eq(patient.as_uuid()))
            .filter(health_records::Column::ResourceType.eq(resource_type))
            .filter(health_records::Column::Release.ne(Release::Hidden.code()))
            .into_tuple()
            .all(tx.conn())
            .await?;
        let gone: Vec<uuid::Uuid> = rows
            .into_iter()
            .filter(|(_, fhir_id)| !present.contains(fhir_id))
            .map(|(id, _)| id)
            .collect();
        if gone.is_empty() {
            return Ok(0);
        }
        tx.update_many::<health_records::Entity>()
            .col_expr(
                health_records::Column::Release,
                sea_orm::sea_query::Expr::value(Release::Hidden.code()),
            )
            .col_expr(
                health_records::Column::Status,
                sea_orm::sea_query::Expr::value("deleted"),
            )
            .filter(health_records::Column::Id.is_in(gone.clone()))
            .exec(tx.conn())
            .await?;
        let event = NewEvent::new(
            Actor::system(),
            Action::Delete,
            resource_type,
            Purpose::System,
        )
        .map_err(AuditError::from)?
        .patient(patient);
        self.audit.append(&tx, &[event]).await?;
        tx.commit().await?;

        Ok(gone.len())
    }

    /// What is held already for these resources, by (type, id).
    async fn existing(
        &self,
        tenant: TenantId,
        items: &[(Classified, &Value)],
    ) -> Result<HashMap<(String, String), Held>, RecordError> {
        type Row = (
            uuid::Uuid,
            uuid::Uuid,
            String,
            String,
            String,
            Option<DateTime<Utc>>,
            Option<DateTime<Utc>>,
        );
        let mut by_type: HashMap<&str, Vec<&str>> = HashMap::new();
        for (item, _) in items {
            by_type
                .entry(&item.resource_type)
                .or_default()
                .push(&item.fhir_id);
        }
        let tx = self.db.begin(tenant).await?;
        let mut found = HashMap::new();
        for (resource_type, ids) in by_type {
            for chunk in ids.chunks(500) {
                let rows: Vec<Row> = tx
                    .find::<health_records::Entity>()
                    .select_only()
                    .columns([
                        health_records::Column::Id,
                        health_records::Column::PatientId,
                        health_records::Column::ResourceType,
                        health_records::Column::FhirId,
                        health_records::Column::Version,
                        health_records::Column::EhrUpdatedAt,
                        health_records::Column::ReleasedAt,
                    ])
                    .filter(health_records::Column::ResourceType.eq(resource_type))
                    .filter(health_records::Column::FhirId.is_in(chunk.iter().copied()))
                    .into_tuple()
                    .all(tx.conn())
                    .await?;
                for (
                    id,
                    patient_id,
                    resource_type,
                    fhir_id,
                    version,
                    ehr_updated_at,
                    released_at,
                ) in rows
                {
                    found.insert(
                        (resource_type, fhir_id),
                        Held {
                            id,
                            patient_id,
                            version,
                            ehr_updated_at,
                            released_at,
                        },
                    );
                }
            }
        }
        tx.commit().await?;

        Ok(found)
    }
}

/// Moves a patient's cursor for one resource type.
pub(crate) async fn move_cursor(
    tx: &TenantTx,
    patient: PatientId,
    cursor: CursorMove,
) -> Result<(), RecordError> {
    let model = sync_cursors::ActiveModel {
        tenant_id: Set(tx.tenant().as_uuid()),
        patient_id: Set(patient.as_uuid()),
        resource_type: Set(cursor.resource_type),
        since: Set(cursor.since),
    };
    // An insert of this tenant's own row (the tenant is set above, and row-level security
    // checks it on PostgreSQL), or an update of the same key.
    sync_cursors::Entity::insert(model)
        .on_conflict(
            OnConflict::columns([
                sync_cursors::Column::TenantId,
                sync_cursors::Column::PatientId,
                sync_cursors::Column::ResourceType,
            ])
            .update_column(sync_cursors::Column::Since)
            .to_owned(),
        )
        .exec(tx.conn())
        .await?;

    Ok(())
}

/// The category a stored row is in.
pub(crate) fn category(row: &health_records::Model) -> Category {
    Category::from_code(&row.category).unwrap_or(Category::Other)
}
