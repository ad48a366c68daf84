//! The platform's services against a real database, with the embedded key service:
//! tenant resolution and its cache, sealing through the vault, and — on PostgreSQL —
//! isolation by row-level security alone. Runs on SQLite, and again on PostgreSQL in that
//! pass of `./tests/run`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers fail loudly"
)]

mod archive;
mod audit;
mod aws_kms;
mod cognito;
mod enrollment;
mod fhir;
mod fixture;
mod identity;
mod isolation;
mod passkey;
mod records;
mod resolution;
mod staff;
mod sync;
mod vault;
