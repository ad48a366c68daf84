//! Portico's domain core: the types and rules every capability is built from.
//!
//! Nothing here talks to the network. Time and randomness come in through [`clock::Clock`]
//! and [`entropy::Entropy`]; tenant data is reached only through [`db::TenantTx`].

pub mod audit;
pub mod clock;
pub mod crypto;
pub mod db;
pub mod entropy;
pub mod identity;
pub mod ids;
pub mod notify;
pub mod principal;
pub mod records;
pub mod secret;
