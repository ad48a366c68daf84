//! Appending to the chain, in the same transaction as the access it records.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use super::AuditError;
use super::chain::{self, Contents, Hash, Linked};
use super::entity::{events, heads};
use super::event::{Action, Actor, ActorKind, AuditEvent, NewEvent, Outcome, Purpose, Token};
use crate::clock::Clock;
use crate::db::{Db, TenantTx};
use crate::ids::{PatientId, TenantId};

/// The audit trail: every access to PHI goes through it.
///
/// Services start an [`Access`] with [`AuditTrail::begin`], do their reads and writes on
/// [`Access::tx`], say what they touched with [`Access::record`], and get their result back
/// from [`Access::release`], which writes the events in the same transaction and commits.
/// If the events cannot be written, nothing is committed and no data is returned.
#[derive(Debug, Clone)]
pub struct AuditTrail {
    db: Db,
    clock: Arc<dyn Clock>,
}

impl AuditTrail {
    /// A trail over `db`, stamping events with `clock`.
    pub fn new(db: Db, clock: Arc<dyn Clock>) -> Self {
        Self { db, clock }
    }

    /// The database behind the trail.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// The clock events are stamped with.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Starts an audited unit of work on one tenant's data.
    pub async fn begin(&self, tenant: TenantId) -> Result<Access, AuditError> {
        let tx = self.db.begin_serialized(tenant).await?;

        Ok(Access {
            tx,
            events: Vec::new(),
            trail: self.clone(),
        })
    }

    /// Records events that go with no data access of their own (a refused request, a failed
    /// sign-in), in a transaction of their own.
    pub async fn record(
        &self,
        tenant: TenantId,
        events: &[NewEvent],
    ) -> Result<Vec<AuditEvent>, AuditError> {
        let tx = self.db.begin_serialized(tenant).await?;
        let appended = self.append(&tx, events).await?;
        tx.commit().await?;

        Ok(appended)
    }

    /// Appends `events` to the tenant's chain inside `tx`. The head row is locked until `tx`
    /// ends, so appends from any number of connections or servers form one line.
    pub async fn append(
        &self,
        tx: &TenantTx,
        events: &[NewEvent],
    ) -> Result<Vec<AuditEvent>, AuditError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let tenant = tx.tenant();
        let (mut seq, mut prev) = self.lock_head(tx).await?;
        let at = micros(self.clock.now());
        let mut appended = Vec::with_capacity(events.len());
        for event in events {
            seq += 1;
            let hash = chain::link(
                &prev,
                &Linked {
                    tenant,
                    seq,
                    at_micros: at.timestamp_micros(),
                    event: Contents::of_new(event),
                },
            );
            appended.push(AuditEvent {
                tenant,
                seq,
                at,
                what: event.clone(),
                prev_hash: prev,
                hash,
            });
            prev = hash;
        }

        // A trigger advances the head row with each event, refusing one that does not
        // follow it (see the migration).
        events::Entity::insert_many(appended.iter().map(to_row))
            .exec(tx.conn())
            .await
            .map_err(crate::db::DbError::from)?;

        Ok(appended)
    }

    /// The tenant's chain head: the last sequence number and hash (0 and the genesis value
    /// for an empty chain).
    pub async fn head(&self, tenant: TenantId) -> Result<(i64, Hash), AuditError> {
        let tx = self.db.begin(tenant).await?;
        let row = tx.find::<heads::Entity>().one(tx.conn()).await?;
        tx.commit().await?;

        Ok(match row {
            Some(row) => (
                row.seq,
                to_hash(&row.hash).ok_or(AuditError::Corrupt { seq: row.seq })?,
            ),
            None => (0, chain::genesis(tenant)),
        })
    }

    /// Reads up to `limit` events with sequence numbers from `from`, in order.
    pub async fn events(
        &self,
        tenant: TenantId,
        from: i64,
        limit: u64,
    ) -> Result<Vec<AuditEvent>, AuditError> {
        let tx = self.db.begin(tenant).await?;
        let rows = tx
            .find::<events::Entity>()
            .filter(events::Column::Seq.gte(from))
            .order_by_asc(events::Column::Seq)
            .limit(limit)
            .all(tx.conn())
            .await
            .map_err(crate::db::DbError::from)?;
        tx.commit().await?;

        rows.into_iter().map(from_row).collect()
    }

    /// Locks the tenant's head row (creating it for the tenant's first event) and reads it.
    async fn lock_head(&self, tx: &TenantTx) -> Result<(i64, Hash), AuditError> {
        let head = match self.locked_head(tx).await? {
            Some(head) => head,
            None => {
                let tenant = tx.tenant();
                // Two first appends may race to create it: one inserts, the other waits on
                // its lock and then finds it.
                heads::Entity::insert(heads::ActiveModel {
                    tenant_id: Set(tenant.as_uuid()),
                    seq: Set(0),
                    hash: Set(chain::genesis(tenant).to_vec()),
                    updated_at: Set(micros(self.clock.now())),
                })
                .on_conflict_do_nothing_on([heads::Column::TenantId])
                .exec(tx.conn())
                .await
                .map_err(crate::db::DbError::from)?;
                self.locked_head(tx)
                    .await?
                    .ok_or(AuditError::Database(crate::db::DbError::NotFound))?
            }
        };
        let hash = to_hash(&head.hash).ok_or(AuditError::Corrupt { seq: head.seq })?;

        Ok((head.seq, hash))
    }

    async fn locked_head(&self, tx: &TenantTx) -> Result<Option<heads::Model>, AuditError> {
        Ok(tx
            .find::<heads::Entity>()
            .lock_exclusive()
            .one(tx.conn())
            .await?)
    }
}

/// An audited unit of work: one transaction, and the events that say what it touched.
///
/// Dropping it without [`release`](Self::release) rolls back the work and records nothing,
/// so a failure between the data write and the audit write leaves neither.
#[derive(Debug)]
#[must_use = "an access is committed only by `release`; dropping it rolls back"]
pub struct Access {
    tx: TenantTx,
    events: Vec<NewEvent>,
    trail: AuditTrail,
}

impl Access {
    /// The transaction to read and write through.
    pub fn tx(&self) -> &TenantTx {
        &self.tx
    }

    /// The tenant.
    pub fn tenant(&self) -> TenantId {
        self.tx.tenant()
    }

    /// Says what this unit touched. Nothing is written until [`release`](Self::release).
    pub fn record(&mut self, event: NewEvent) {
        self.events.push(event);
    }

    /// Writes the recorded events in this transaction, commits, and hands back `value`.
    ///
    /// Fails closed: if nothing was recorded, or the events or the commit fail, the work
    /// is rolled back and `value` is dropped, not returned.
    pub async fn release<T>(self, value: T) -> Result<T, AuditError> {
        if self.events.is_empty() {
            return Err(AuditError::NothingRecorded);
        }
        self.trail.append(&self.tx, &self.events).await?;
        self.tx.commit().await?;

        Ok(value)
    }
}

/// Truncates to the microsecond, the precision both databases keep.
pub(crate) fn micros(at: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(at.timestamp_micros()).unwrap_or(at)
}

pub(crate) fn to_hash(bytes: &[u8]) -> Option<Hash> {
    <Hash>::try_from(bytes).ok()
}

fn to_row(event: &AuditEvent) -> events::ActiveModel {
    events::ActiveModel {
        tenant_id: Set(event.tenant.as_uuid()),
        seq: Set(event.seq),
        at: Set(event.at),
        actor_kind: Set(event.what.actor.kind.code().to_owned()),
        actor_id: Set(event.what.actor.id.as_str().to_owned()),
        action: Set(event.what.action.code().to_owned()),
        resource_type: Set(event.what.resource_type.as_str().to_owned()),
        resource_id: Set(event
            .what
            .resource_id
            .as_ref()
            .map(|t| t.as_str().to_owned())),
        patient_id: Set(event.what.patient.map(|p| p.as_uuid())),
        outcome: Set(event.what.outcome.code().to_owned()),
        client: Set(event.what.client.as_ref().map(|t| t.as_str().to_owned())),
        purpose: Set(event.what.purpose.code().to_owned()),
        prev_hash: Set(event.prev_hash.to_vec()),
        hash: Set(event.hash.to_vec()),
    }
}

/// Reads a stored row back; a row that does not parse is reported as corrupt at its seq.
pub(crate) fn from_row(row: events::Model) -> Result<AuditEvent, AuditError> {
    let seq = row.seq;
    let corrupt = |_| AuditError::Corrupt { seq };
    let optional = |field: &'static str, value: Option<String>| {
        value.map(|v| Token::new(field, v)).transpose()
    };

    Ok(AuditEvent {
        tenant: TenantId::from_uuid(row.tenant_id),
        seq,
        at: row.at,
        what: NewEvent {
            actor: Actor {
                kind: ActorKind::from_code(&row.actor_kind).map_err(corrupt)?,
                id: Token::new("actor id", row.actor_id).map_err(corrupt)?,
            },
            action: Action::from_code(&row.action).map_err(corrupt)?,
            resource_type: Token::new("resource type", row.resource_type).map_err(corrupt)?,
            resource_id: optional("resource id", row.resource_id).map_err(corrupt)?,
            patient: row.patient_id.map(PatientId::from_uuid),
            outcome: Outcome::from_code(&row.outcome).map_err(corrupt)?,
            client: optional("client", row.client).map_err(corrupt)?,
            purpose: Purpose::from_code(&row.purpose).map_err(corrupt)?,
        },
        prev_hash: to_hash(&row.prev_hash).ok_or(AuditError::Corrupt { seq })?,
        hash: to_hash(&row.hash).ok_or(AuditError::Corrupt { seq })?,
    })
}
