//! What an audit event says: who did what to which record, when, how it ended and why.
//!
//! Events carry codes and ids only. Every free-form part (actor ids, resource types and
//! ids, client ids) must be a [`Token`]: a short run of letters, digits and `.-_:/`, so
//! that no name, clinical text or sentence can be written into the trail by mistake.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{PatientId, TenantId};

/// Why a value cannot go into an audit event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    /// A token is empty, too long, or holds characters other than `A-Za-z0-9.-_:/`.
    #[error("{field} must be 1 to 128 of the characters A-Z a-z 0-9 . - _ : /")]
    BadToken {
        /// Which part of the event.
        field: &'static str,
    },
    /// A stored code is not one this version knows.
    #[error("unknown {field} code {code:?}")]
    UnknownCode {
        /// Which part of the event.
        field: &'static str,
        /// The code found.
        code: String,
    },
}

/// An identifier-shaped string: never a name, never free text.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Token(String);

impl Token {
    /// The longest token accepted.
    pub const MAX_LEN: usize = 128;

    /// Checks `value` for `field`.
    pub fn new(field: &'static str, value: impl Into<String>) -> Result<Self, EventError> {
        let value = value.into();
        let shaped = !value.is_empty()
            && value.len() <= Self::MAX_LEN
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._:/".contains(&b));
        if shaped {
            Ok(Self(value))
        } else {
            Err(EventError::BadToken { field })
        }
    }

    /// A UUID's text, which is always token-shaped.
    pub fn for_uuid(id: uuid::Uuid) -> Self {
        Self(id.to_string())
    }

    /// The token.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Token {
    type Error = EventError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::new("token", value)
    }
}

impl From<Token> for String {
    fn from(token: Token) -> Self {
        token.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Declares a closed set of codes, stored as short strings.
macro_rules! codes {
    ($(#[$meta:meta])* $name:ident, $field:literal { $($(#[$vmeta:meta])* $variant:ident => $code:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [Self] = &[$(Self::$variant,)+];

            /// The stored code.
            pub fn code(self) -> &'static str {
                match self {
                    $(Self::$variant => $code,)+
                }
            }

            /// Reads a stored code.
            pub fn from_code(code: &str) -> Result<Self, EventError> {
                match code {
                    $($code => Ok(Self::$variant),)+
                    other => Err(EventError::UnknownCode {
                        field: $field,
                        code: other.to_owned(),
                    }),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.code())
            }
        }
    };
}

codes!(
    /// What kind of actor did it.
    ActorKind, "actor kind" {
        /// The patient, on their own record.
        Patient => "patient",
        /// Someone acting for a patient (a parent, a caregiver).
        Proxy => "proxy",
        /// Clinic staff.
        Staff => "staff",
        /// A third-party application the patient connected.
        App => "app",
        /// Portico itself (sync, schedules).
        System => "system",
        /// The vendor's operations team.
        Operator => "operator",
        /// Someone not signed in: a failed sign-in for an address with no account.
        Anonymous => "anonymous",
    }
);

codes!(
    /// What was done.
    Action, "action" {
        /// Read one record.
        Read => "read",
        /// Searched or listed records.
        Search => "search",
        /// Created a record.
        Create => "create",
        /// Changed a record.
        Update => "update",
        /// Deleted a record.
        Delete => "delete",
        /// Exported records out of Portico (a download, a bulk export).
        Export => "export",
        /// Shared records with someone else (an app, a proxy).
        Share => "share",
        /// Signed in.
        SignIn => "sign_in",
        /// A sign-in attempt failed.
        SignInFailed => "sign_in_failed",
        /// A multi-factor step (challenge, enrolment, removal).
        Mfa => "mfa",
        /// Signed out.
        SignOut => "sign_out",
        /// Held a record back from the patient under an information-blocking exception.
        Withhold => "withhold",
        /// Released a withheld record.
        Release => "release",
    }
);

codes!(
    /// How it ended.
    Outcome, "outcome" {
        /// It happened.
        Success => "success",
        /// It was refused (not allowed, wrong credentials).
        Denied => "denied",
        /// It failed inside Portico.
        Failed => "failed",
    }
);

codes!(
    /// Why it was done (HL7 PurposeOfUse, the subset a portal meets).
    Purpose, "purpose" {
        /// Care of the patient (TREAT).
        Treatment => "treatment",
        /// Billing and payment (HPAYMT).
        Payment => "payment",
        /// Running the clinic (HOPERAT).
        Operations => "operations",
        /// The patient's own request (PATRQT).
        PatientRequest => "patient_request",
        /// A legal or compliance request (HLEGAL).
        Legal => "legal",
        /// Portico's own upkeep: sync, keys, schedules (HSYSADMIN).
        System => "system",
    }
);

/// Who acted: a kind and an id within it (an account id, an app's client id).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Actor {
    /// What kind of actor.
    pub kind: ActorKind,
    /// Its id, within the tenant for patients, proxies, staff and apps.
    pub id: Token,
}

impl Actor {
    /// An actor of `kind` with id `id`.
    pub fn new(kind: ActorKind, id: impl Into<String>) -> Result<Self, EventError> {
        Ok(Self {
            kind,
            id: Token::new("actor id", id)?,
        })
    }

    /// Portico itself.
    pub fn system() -> Self {
        Self {
            kind: ActorKind::System,
            id: Token("portico".to_owned()),
        }
    }

    /// The vendor's operations team at the CLI.
    pub fn operator() -> Self {
        Self {
            kind: ActorKind::Operator,
            id: Token("cli".to_owned()),
        }
    }
}

/// What a service tells the trail about one access. The trail adds the tenant, sequence
/// number, time and hashes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewEvent {
    /// Who.
    pub actor: Actor,
    /// Did what.
    pub action: Action,
    /// To which kind of record (a FHIR resource type, `Account`, `AuditEvent`, …).
    pub resource_type: Token,
    /// To which record, if one.
    pub resource_id: Option<Token>,
    /// Whose record.
    pub patient: Option<PatientId>,
    /// How it ended.
    pub outcome: Outcome,
    /// Through which session or app (an id, never a token or secret).
    pub client: Option<Token>,
    /// Why.
    pub purpose: Purpose,
}

impl NewEvent {
    /// A successful `action` by `actor` on records of `resource_type`, for `purpose`.
    pub fn new(
        actor: Actor,
        action: Action,
        resource_type: &str,
        purpose: Purpose,
    ) -> Result<Self, EventError> {
        Ok(Self {
            actor,
            action,
            resource_type: Token::new("resource type", resource_type)?,
            resource_id: None,
            patient: None,
            outcome: Outcome::Success,
            client: None,
            purpose,
        })
    }

    /// Names the one record touched.
    pub fn resource(mut self, id: &str) -> Result<Self, EventError> {
        self.resource_id = Some(Token::new("resource id", id)?);
        Ok(self)
    }

    /// Names the patient whose record it is.
    pub fn patient(mut self, patient: PatientId) -> Self {
        self.patient = Some(patient);
        self
    }

    /// Names the session or app it came through.
    pub fn client(mut self, client: &str) -> Result<Self, EventError> {
        self.client = Some(Token::new("client", client)?);
        Ok(self)
    }

    /// Sets how it ended.
    pub fn outcome(mut self, outcome: Outcome) -> Self {
        self.outcome = outcome;
        self
    }
}

/// An event as the trail holds it: what a service said, placed in the tenant's chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// The tenant whose chain it is in.
    pub tenant: TenantId,
    /// Its place in that chain, from 1, without gaps.
    pub seq: i64,
    /// When, from the injected clock, to the microsecond.
    pub at: DateTime<Utc>,
    /// Who did what to which record, how it ended and why.
    #[serde(flatten)]
    pub what: NewEvent,
    /// The previous event's hash (the chain's genesis value for the first).
    #[serde(with = "hex_bytes")]
    pub prev_hash: [u8; 32],
    /// SHA-256 over `prev_hash` and this event's canonical encoding.
    #[serde(with = "hex_bytes")]
    pub hash: [u8; 32],
}

/// Hashes as lowercase hex in JSON (archive segments, checkpoints).
pub(crate) mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub(crate) fn serialize<S: Serializer>(bytes: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&encode(bytes))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let text = String::deserialize(d)?;
        decode(&text).ok_or_else(|| D::Error::custom("expected 64 hexadecimal digits"))
    }

    pub(crate) fn encode(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    pub(crate) fn decode(text: &str) -> Option<[u8; 32]> {
        if text.len() != 64 || !text.is_ascii() {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_refuse_names_and_sentences() {
        assert!(Token::new("actor id", "stf_01J9Z").is_ok());
        assert!(Token::new("resource id", "Observation/lab-123.4").is_ok());
        for bad in ["", "Jane Doe", "héllo", "a;drop", &"x".repeat(129)] {
            assert_eq!(
                Token::new("actor id", bad),
                Err(EventError::BadToken { field: "actor id" }),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn every_code_reads_back() {
        for action in Action::ALL {
            assert_eq!(Action::from_code(action.code()), Ok(*action));
        }
        for kind in ActorKind::ALL {
            assert_eq!(ActorKind::from_code(kind.code()), Ok(*kind));
        }
        assert!(matches!(
            Outcome::from_code("maybe"),
            Err(EventError::UnknownCode { .. })
        ));
    }

    #[test]
    fn hashes_round_trip_as_hex() {
        let bytes = [0xab; 32];
        assert_eq!(hex_bytes::decode(&hex_bytes::encode(&bytes)), Some(bytes));
        assert_eq!(hex_bytes::decode("zz"), None);
    }
}
