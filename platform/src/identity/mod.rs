//! Identity: who may reach PHI, after how much proof.
//!
//! - [`password`]: NIST SP 800-63B-4 password rules, a blocklist port, argon2id hashing.
//! - [`totp`]: RFC 6238 one-time codes, each accepted once.
//! - [`recovery`]: single-use recovery codes, for a lost authenticator.
//! - [`role`]: what an account may do at its clinic.
//! - [`sessions`]: Portico's own sessions, whatever the provider.
//! - [`local`]: the embedded identity provider: accounts, sign-in with a password then a
//!   second factor, throttling.

mod entity;
pub mod local;
pub mod password;
pub mod recovery;
pub mod role;
pub mod sessions;
pub mod totp;
