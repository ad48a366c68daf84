//! The tenant registry against a real database: resolution and its cache on SQLite (and
//! PostgreSQL in that pass), and isolation by row-level security on PostgreSQL.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers fail loudly"
)]

mod isolation;
mod resolution;
