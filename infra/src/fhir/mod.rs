//! FHIR R4: the client each clinic's EHR connector talks through.

pub mod client;
pub mod quirks;
