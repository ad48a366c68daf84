//! Identity: who may reach PHI, after how much proof.
//!
//! - [`provider`]: the port to where passwords and authenticators are kept and checked
//!   (Portico's own tables, or Amazon Cognito).
//! - [`passkey`]: WebAuthn passkeys, the phishing-resistant second factor.
//! - [`password`]: NIST SP 800-63B-4 password rules, a blocklist port, argon2id hashing.
//! - [`totp`]: RFC 6238 one-time codes, each accepted once.
//! - [`recovery`]: single-use recovery codes, for a lost authenticator.
//! - [`role`]: what an account may do at its clinic.
//! - [`sessions`]: Portico's own sessions, whatever the provider.
//! - [`registry`]: the port enrollment finds patients through, and the clinic's own table.
//! - [`enrollment`]: activation codes and self-enrollment with identity proofing.
//! - [`invitation`]: staff invitations by a clinic admin (an operator for the first).
//! - [`sms`]: a code texted to the mobile number on file, as the second step of sign-in.
//! - [`reset`]: password reset with a code to the contact on file and the second factor.
//! - [`local`]: the embedded identity provider: accounts, sign-in with a password then a
//!   second factor, throttling.

pub mod enrollment;
mod entity;
pub mod invitation;
pub mod local;
pub mod passkey;
pub mod password;
pub mod provider;
pub mod recovery;
pub mod registry;
pub mod reset;
pub mod role;
pub mod sessions;
pub mod sms;
pub mod totp;
