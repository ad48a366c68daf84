//! The audit trail: every access to PHI, recorded in a per-tenant tamper-evident chain.
//!
//! - [`event`]: what an event says — codes and ids, never names or clinical text.
//! - [`chain`]: the canonical encoding and SHA-256 links.
//! - [`trail`]: [`AuditTrail`] and [`Access`], the one way services reach PHI: the events
//!   are written in the same transaction as the access, or the access returns nothing.
//! - [`checkpoint`]: chain heads signed under a platform key held by the key service, and
//!   old events copied out as segments, both written to an [`archive::ArchiveSink`].
//! - [`verify`]: re-walks every chain and checks it against its checkpoints and archive.
//! - [`access_log`]: "who opened my record", for the patient.
//! - [`fhir`]: events as FHIR R4 `AuditEvent` resources, for export.

pub mod access_log;
pub mod archive;
pub mod chain;
pub mod checkpoint;
mod entity;
pub mod event;
pub mod fhir;
pub mod trail;
pub mod verify;

pub use event::{Action, Actor, ActorKind, AuditEvent, NewEvent, Outcome, Purpose};
pub use trail::{Access, AuditTrail};

use crate::crypto::keys::KeyError;
use crate::db::DbError;
use archive::ArchiveError;

/// Why an audited operation failed. None of these carries event contents.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// An event was malformed (see [`event::EventError`]).
    #[error(transparent)]
    Event(#[from] event::EventError),
    /// An access tried to release data without saying what it touched.
    #[error("an access recorded no audit event; nothing was released")]
    NothingRecorded,
    /// The caller may not see this.
    #[error("not allowed")]
    Forbidden,
    /// A stored row does not read back as an event.
    #[error("the audit row at sequence {seq} is unreadable")]
    Corrupt {
        /// Where.
        seq: i64,
    },
    /// The key service failed (signing or checking a checkpoint).
    #[error("the key service failed")]
    KeyService(#[from] KeyError),
    /// The archive failed.
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    /// The database failed; the access was rolled back.
    #[error("database error")]
    Database(#[from] DbError),
}

impl From<sea_orm::DbErr> for AuditError {
    fn from(err: sea_orm::DbErr) -> Self {
        Self::Database(err.into())
    }
}
