//! End-to-end tests: each starts the built `portico` binary and talks to it over HTTP or
//! runs its commands, as clients and operators do.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers fail loudly"
)]

mod audit;
mod branding;
mod cognito;
mod config;
mod connector;
mod enrollment;
mod graphql;
mod health;
mod identity;
mod keys;
mod logging;
mod passkey;
mod records;
mod shutdown;
mod staff;
mod tenancy;
