//! Per-tenant envelope encryption of PHI (ARCHITECTURE.md rule 3).
//!
//! - [`keys`]: the `KeyService` port — each tenant's own key in a key management service,
//!   which generates and unwraps data keys under an encryption context naming the tenant.
//! - [`seal`]: AES-256-GCM sealing of one value under a data key, bound by its associated
//!   data to the tenant, table, column and row it belongs to.
//! - [`phi`]: types that keep PHI out of logs and errors.
//! - [`platform_keys`]: the platform's own MAC keys (checkpoint signing, blind lookups).
//! - [`vault`]: sealing and opening for a tenant, with data keys stored wrapped in
//!   `data_keys` and cached unwrapped in [`cache`] for a bounded time and use.

pub mod cache;
mod entity;
pub mod keys;
pub mod phi;
pub mod platform_keys;
pub mod seal;
pub mod vault;
