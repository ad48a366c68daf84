//! Identity: who may reach PHI, after how much proof.
//!
//! - [`password`]: NIST SP 800-63B-4 password rules, a blocklist port, argon2id hashing.
//! - [`totp`]: RFC 6238 one-time codes, each accepted once.

pub mod password;
pub mod totp;
