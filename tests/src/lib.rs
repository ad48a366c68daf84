//! The test harness: a fresh database per test and the real `portico` binary on a free port.
//!
//! Which database is chosen by the environment that `./tests/run` sets:
//! `TEST_DATABASE=postgres` with `TEST_POSTGRES_URL` (a superuser URL) gives every test a
//! database of its own, dropped afterwards; otherwise each test gets an SQLite file in a
//! temporary directory.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test harness fails loudly"
)]

pub mod app;
pub mod database;
pub mod keys;
pub mod moto;
pub mod postgres;
pub mod sekmet;

pub use app::{TestApp, TestAppBuilder};
pub use database::TestDatabase;
pub use postgres::PostgresTestDb;

/// Whether this run is the PostgreSQL pass.
pub fn postgres_requested() -> bool {
    std::env::var("TEST_DATABASE").is_ok_and(|value| value == "postgres")
}
