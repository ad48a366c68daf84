//! Who is acting: every platform service method takes one of these.

use crate::ids::RequestId;

/// The actor behind a call into a platform service.
///
/// Sign-in does not exist yet; patients and staff join this type when it does. Each variant
/// carries only ids, never names, so a principal can be logged and audited as it is.
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
}
