//! The patient's health record, from the clinic's EHR: the store, the release policy, the
//! sync engine, and what patients and staff may read and do with it.
//!
//! - [`classify`] reads one FHIR resource: its category, its status, whether it may be
//!   shown now.
//! - [`store`] writes resources sealed under the clinic's key, idempotently, releasing
//!   final ones in the same transaction.
//! - [`sync`] is the queue every node shares and the work it does, over the [`sync::EhrClient`]
//!   port that `infra` implements with its FHIR client.
//! - [`policy`] is what a clinic may choose (never "hold until reviewed") and the eight
//!   exceptions under which one item may be withheld.
//! - [`service`] is what the signed-in patient reads (audited) and what staff do.
//! - [`lab`] reads a lab result's value, range and flag for lists and trends.

pub mod classify;
mod entity;
pub mod lab;
pub mod policy;
pub mod service;
pub mod store;
pub mod sync;

pub use classify::{Category, Release};
pub use policy::{Exception, ReleasePolicy};
pub use service::Records;
pub use store::RecordStore;
pub use sync::{EhrClient, EhrConnections, EhrError, SyncEngine};

use crate::audit::AuditError;
use crate::crypto::vault::VaultError;
use crate::db::DbError;

/// Why a record operation failed. None of the variants carries record content.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The input is wrong; the message says how.
    #[error("{0}")]
    Invalid(&'static str),
    /// No such item for this caller (or another tenant's, which is the same).
    #[error("not found")]
    NotFound,
    /// The caller may not do this.
    #[error("not allowed")]
    Forbidden,
    /// It conflicts with what is there (a patient linked to another EHR record).
    #[error("conflicts with an existing link")]
    Conflict,
    /// The EHR could not be read.
    #[error("the EHR could not be read: {0}")]
    Ehr(#[source] EhrError),
    /// Sealing or opening failed.
    #[error(transparent)]
    Vault(#[from] VaultError),
    /// The audit trail refused.
    #[error(transparent)]
    Audit(#[from] AuditError),
    /// The database failed.
    #[error("database error")]
    Database(#[from] DbError),
}

impl From<sea_orm::DbErr> for RecordError {
    fn from(err: sea_orm::DbErr) -> Self {
        Self::Database(err.into())
    }
}
