//! Tenancy: the registry of clinics, their portal addresses, and resolving a request's host
//! to the clinic it is for.
//!
//! A tenant's life — create, suspend, resume — goes through [`TenantService`]; a request's
//! tenant is found by [`TenantResolver`], which caches answers for a bounded time and is
//! told when one changes.

pub mod branding;
mod brandings;
pub mod connector;
mod connectors;
mod entity;
mod error;
mod name;
mod resolve;
mod service;

pub use branding::{Branding, BrandingProblem, Color, Logo};
pub use connector::{Connector, ConnectorAuth, ConnectorProblem, SigningAlgorithm, Vendor};
pub use error::TenantError;
pub use name::{DomainName, HostError, TenantSlug};
pub use resolve::{Resolution, TenantResolver};
pub use service::{NewTenant, Tenant, TenantService, TenantSettings, TenantStatus};
