//! Portico's edges with the world: configuration, the database, the HTTP server, and the
//! commands of the `portico` binary.

pub mod audit;
pub mod aws;
pub mod cli;
pub mod config;
pub mod database;
pub mod ehr;
pub mod fhir;
pub mod http;
pub mod identity;
pub mod keys;
pub mod logging;
pub mod notify;
pub mod sandbox;
pub mod services;
