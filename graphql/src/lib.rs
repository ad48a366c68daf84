//! Portico's GraphQL API: a thin transport over the platform services.
//!
//! No SQL and no business rules live here: resolvers pass the request's principal and
//! tenant to a service and translate what comes back. [`error`] is the one place where
//! domain errors become GraphQL errors with a stable `extensions.code`.

mod branding;
pub mod chart;
mod enrollment;
pub mod error;
mod limits;
mod mutation;
mod passkey;
mod query;
mod records;

use async_graphql::{EmptySubscription, Schema};
use std::sync::Arc;

use portico_platform::audit::AuditTrail;
use portico_platform::identity::local::LocalIdentity;
use portico_platform::identity::sessions::Session;
use portico_platform::principal::Principal;
use portico_platform::records::Records;
use portico_platform::secret::Secret;
use portico_tenants::{Tenant, TenantService};

pub use enrollment::qr_svg;
pub use error::ErrorCode;
pub use mutation::{Mutation, SESSION_COOKIE};
pub use query::Query;
pub use records::{RecordsMutation, RecordsQuery};

/// The schema served at `/graphql`.
pub type PorticoSchema = Schema<Query, Mutation, EmptySubscription>;

/// Bounds on what one request may ask for.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Deepest selection nesting.
    pub max_depth: usize,
    /// Largest total complexity (one per field by default).
    pub max_complexity: usize,
    /// Most aliases in one document.
    pub max_aliases: usize,
}

/// Everything a resolver may use, put into each request by the HTTP edge.
#[derive(Debug, Clone)]
pub struct RequestContext {
    /// The tenant whose portal the request came through.
    pub tenant: Tenant,
    /// Who is asking.
    pub principal: Principal,
    /// The session the request's cookie names, at whatever stage, with its token.
    pub session: Option<RequestSession>,
    /// The client's address, for sign-in throttling.
    pub client: String,
    /// The portal's host as the request named it (tenant resolution checked it), without
    /// its port: what passkeys are bound to.
    pub host: Option<String>,
    /// Development mode: passkeys also over http on `localhost` names.
    pub development: bool,
}

/// The session a request carried.
#[derive(Debug, Clone)]
pub struct RequestSession {
    /// The session.
    pub session: Session,
    /// Its token, as the cookie held it.
    pub token: Arc<Secret<String>>,
}

/// Builds the schema. Introspection is served only in development: in production the API's
/// shape is published as `graphql/schema.graphql`, not discoverable by anyone who asks.
pub fn build_schema(
    tenants: TenantService,
    audit: AuditTrail,
    identity: LocalIdentity,
    records: Records,
    limits: Limits,
    development: bool,
) -> PorticoSchema {
    let builder = Schema::build(Query::default(), Mutation::default(), EmptySubscription)
        .data(tenants)
        .data(audit)
        .data(identity)
        .data(records)
        .limit_depth(limits.max_depth)
        .limit_complexity(limits.max_complexity)
        .limit_directives(8)
        .disable_suggestions()
        .extension(limits::Guard {
            max_aliases: limits.max_aliases,
        });
    let builder = if development {
        builder
    } else {
        builder.disable_introspection()
    };

    builder.finish()
}

/// The schema in SDL, as committed at `graphql/schema.graphql`.
pub fn sdl() -> String {
    Schema::build(Query::default(), Mutation::default(), EmptySubscription)
        .finish()
        .sdl()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_committed_schema_matches_the_code() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql");
        let sdl = sdl();
        if std::env::var_os("UPDATE_SCHEMA").is_some() {
            std::fs::write(path, &sdl).unwrap();
        }
        let committed = std::fs::read_to_string(path).unwrap_or_default();

        assert!(
            committed == sdl,
            "graphql/schema.graphql differs from the code; review the change, then run \
             `UPDATE_SCHEMA=1 cargo test -p portico-graphql` to rewrite it"
        );
    }
}
