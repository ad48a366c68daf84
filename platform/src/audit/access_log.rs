//! "Who opened my record": the events touching one patient's data, for that patient.
//!
//! Events hold actor ids only; how to name an actor to a patient (a staff member's name and
//! role, an app's name) is kept beside the trail in a directory that the identity and app
//! registration services fill in. Looking at the log is itself an access, and is recorded.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use super::AuditError;
use super::entity::{actors, events};
use super::event::{Action, Actor, ActorKind, NewEvent, Outcome, Purpose};
use super::trail::{AuditTrail, from_row, micros};
use crate::ids::{AccountId, TenantId};
use crate::principal::Principal;

/// The most entries one page may hold.
pub const MAX_PAGE: u64 = 100;

/// Who an entry says acted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accessor {
    /// What kind of actor.
    pub kind: ActorKind,
    /// Their name as the clinic registered it (a staff member, an app), if known.
    pub name: Option<String>,
    /// Their role (provider, nurse, front desk, …), if staff.
    pub role: Option<String>,
    /// Whether it was the patient asking.
    pub is_you: bool,
}

/// One access to the patient's data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessLogEntry {
    /// Its place in the clinic's chain; also the paging cursor.
    pub seq: i64,
    /// When.
    pub at: DateTime<Utc>,
    /// Who.
    pub who: Accessor,
    /// What they did.
    pub action: Action,
    /// What kind of data (a FHIR resource type, `Account`, …).
    pub resource_type: String,
    /// How it ended.
    pub outcome: Outcome,
    /// Why.
    pub purpose: Purpose,
}

/// A page of the log, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessLogPage {
    /// The entries.
    pub entries: Vec<AccessLogEntry>,
    /// Pass as `before` for the next (older) page; `None` on the last page.
    pub next: Option<i64>,
}

/// Why a display name cannot be stored.
fn check_name(name: &str) -> Result<(), AuditError> {
    let length = name.chars().count();
    if (1..=200).contains(&length) && !name.chars().any(char::is_control) {
        Ok(())
    } else {
        Err(AuditError::Event(super::event::EventError::BadToken {
            field: "display name",
        }))
    }
}

impl AuditTrail {
    /// Records how to name an actor to patients (and updates it when it changes).
    pub async fn register_actor(
        &self,
        tenant: TenantId,
        actor: &Actor,
        display_name: &str,
        role: Option<&str>,
    ) -> Result<(), AuditError> {
        check_name(display_name)?;
        if let Some(role) = role {
            check_name(role)?;
        }
        let tx = self.db().begin(tenant).await?;
        actors::Entity::insert(actors::ActiveModel {
            tenant_id: Set(tenant.as_uuid()),
            kind: Set(actor.kind.code().to_owned()),
            actor_id: Set(actor.id.as_str().to_owned()),
            display_name: Set(display_name.to_owned()),
            role: Set(role.map(str::to_owned)),
            updated_at: Set(micros(self.clock().now())),
        })
        .on_conflict(
            OnConflict::columns([
                actors::Column::TenantId,
                actors::Column::Kind,
                actors::Column::ActorId,
            ])
            .update_columns([
                actors::Column::DisplayName,
                actors::Column::Role,
                actors::Column::UpdatedAt,
            ])
            .to_owned(),
        )
        .exec(tx.conn())
        .await?;
        tx.commit().await?;

        Ok(())
    }

    /// The accesses to the signed-in patient's data, newest first, `first` at a time,
    /// older than `before` if given. Only a patient may ask, and only about themselves.
    pub async fn access_log(
        &self,
        principal: &Principal,
        first: u64,
        before: Option<i64>,
    ) -> Result<AccessLogPage, AuditError> {
        let Principal::Patient {
            tenant,
            account,
            patient,
            session,
        } = principal
        else {
            return Err(AuditError::Forbidden);
        };
        let (tenant, patient) = (*tenant, *patient);
        let first = first.clamp(1, MAX_PAGE);
        let me = patient_actor(*account);

        let mut access = self.begin(tenant).await?;
        let tx = access.tx();
        let mut query = tx
            .find::<events::Entity>()
            .filter(events::Column::PatientId.eq(patient.as_uuid()));
        if let Some(before) = before {
            query = query.filter(events::Column::Seq.lt(before));
        }
        let rows = query
            .order_by_desc(events::Column::Seq)
            .limit(first + 1)
            .all(tx.conn())
            .await?;
        let more = rows.len() as u64 > first;
        let events = rows
            .into_iter()
            .take(usize::try_from(first).unwrap_or(usize::MAX))
            .map(from_row)
            .collect::<Result<Vec<_>, _>>()?;

        let ids: Vec<String> = events.iter().map(|e| e.what.actor.id.to_string()).collect();
        let names: HashMap<(String, String), actors::Model> = tx
            .find::<actors::Entity>()
            .filter(actors::Column::ActorId.is_in(ids))
            .all(tx.conn())
            .await?
            .into_iter()
            .map(|row| ((row.kind.clone(), row.actor_id.clone()), row))
            .collect();
        let entries: Vec<AccessLogEntry> = events
            .into_iter()
            .map(|event| {
                let known = names.get(&(
                    event.what.actor.kind.code().to_owned(),
                    event.what.actor.id.to_string(),
                ));
                AccessLogEntry {
                    seq: event.seq,
                    at: event.at,
                    who: Accessor {
                        kind: event.what.actor.kind,
                        name: known.map(|row| row.display_name.clone()),
                        role: known.and_then(|row| row.role.clone()),
                        is_you: event.what.actor == me,
                    },
                    action: event.what.action,
                    resource_type: event.what.resource_type.to_string(),
                    outcome: event.what.outcome,
                    purpose: event.what.purpose,
                }
            })
            .collect();
        let next = if more {
            entries.last().map(|e| e.seq)
        } else {
            None
        };

        let mut viewed = NewEvent::new(me, Action::Search, "AuditEvent", Purpose::PatientRequest)?
            .patient(patient);
        if let Ok(with_client) = viewed.clone().client(session) {
            viewed = with_client;
        }
        access.record(viewed);

        access.release(AccessLogPage { entries, next }).await
    }
}

/// The actor a patient is in events: their account, acting on their record.
pub fn patient_actor(account: AccountId) -> Actor {
    Actor {
        kind: ActorKind::Patient,
        id: super::event::Token::for_uuid(account.as_uuid()),
    }
}
