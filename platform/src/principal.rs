//! Who is acting: every platform service method takes one of these.

use crate::identity::role::Role;
use crate::ids::{AccountId, PatientId, RequestId, TenantId};

/// The actor behind a call into a platform service.
///
/// Each variant carries only ids, never names, so a principal can be logged and audited as
/// it is. Proxies join this type later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// Someone not signed in, reaching public information such as a portal's branding.
    Anonymous {
        /// The request they made.
        request: RequestId,
    },
    /// The vendor's operations team, through the `portico` CLI. Manages tenants; never
    /// reads PHI.
    Operator,
    /// Portico itself: start-up, migrations, background work.
    System,
    /// A patient, signed in to their clinic's portal, acting on their own record.
    Patient {
        /// The clinic.
        tenant: TenantId,
        /// Their account.
        account: AccountId,
        /// Who they are in that clinic: the patient record the account is linked to.
        patient: PatientId,
        /// The session they act through (its id, never its token).
        session: String,
    },
    /// A member of a clinic's staff, signed in at that clinic's host.
    Staff {
        /// The clinic.
        tenant: TenantId,
        /// Their account.
        account: AccountId,
        /// Their role there.
        role: Role,
        /// The session they act through (its id, never its token).
        session: String,
    },
}
