//! A clinic's EHR connector: which EHR, where its FHIR R4 API is, and how Portico
//! authenticates to it.
//!
//! Validated when set — https except on loopback, a token URL, a private key that parses
//! for its algorithm, the vendor's own ids — and stored sealed under the clinic's key as
//! one value; only the vendor and base URL are kept in the clear, for operators. Secrets
//! (the private key, a client secret, the notification secret) are [`Secret`]s: they print
//! as `***` and never reach a log.

use std::fmt;

use portico_platform::records::ReleasePolicy;
use portico_platform::secret::Secret;
use serde::{Deserialize, Serialize};
use url::Url;
use zeroize::Zeroizing;

/// The EHR a clinic runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Vendor {
    /// Epic (FHIR R4, Backend Services).
    Epic,
    /// Oracle Health (Cerner Millennium).
    OracleHealth,
    /// athenahealth (needs the practice id).
    Athenahealth,
    /// Any other FHIR R4 server.
    FhirR4,
    /// Portico's own sandbox EHR (development and demo only).
    Sandbox,
}

impl Vendor {
    /// Every vendor.
    pub const ALL: [Self; 5] = [
        Self::Epic,
        Self::OracleHealth,
        Self::Athenahealth,
        Self::FhirR4,
        Self::Sandbox,
    ];

    /// The name used in configuration and on the command line.
    pub fn code(self) -> &'static str {
        match self {
            Self::Epic => "epic",
            Self::OracleHealth => "oracle-health",
            Self::Athenahealth => "athenahealth",
            Self::FhirR4 => "fhir-r4",
            Self::Sandbox => "sandbox",
        }
    }

    /// Reads a vendor's name.
    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|vendor| vendor.code() == code)
    }
}

impl fmt::Display for Vendor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// How a client assertion is signed (SMART Backend Services allows these two).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SigningAlgorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    RS384,
    /// ECDSA P-384 with SHA-384.
    ES384,
}

/// How Portico gets an access token from the EHR.
#[derive(Debug, Clone)]
pub enum ConnectorAuth {
    /// SMART Backend Services: a JWT client assertion signed with the clinic's private key.
    BackendServices {
        /// The client id the EHR registered.
        client_id: String,
        /// The private key, PEM.
        private_key: Secret<String>,
        /// How it signs.
        algorithm: SigningAlgorithm,
        /// The key id the EHR knows the public key by (`kid`), if it wants one.
        key_id: Option<String>,
    },
    /// The client-credentials grant with a client secret, where the vendor uses it.
    ClientSecret {
        /// The client id.
        client_id: String,
        /// The client secret.
        client_secret: Secret<String>,
    },
}

impl ConnectorAuth {
    /// The client id, whichever way.
    pub fn client_id(&self) -> &str {
        match self {
            Self::BackendServices { client_id, .. } | Self::ClientSecret { client_id, .. } => {
                client_id
            }
        }
    }

    /// `backend-services` or `client-secret`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::BackendServices { .. } => "backend-services",
            Self::ClientSecret { .. } => "client-secret",
        }
    }
}

/// A clinic's EHR connector.
#[derive(Debug, Clone)]
pub struct Connector {
    /// Which EHR.
    pub vendor: Vendor,
    /// The FHIR R4 base URL.
    pub base_url: Url,
    /// The OAuth token endpoint.
    pub token_url: Url,
    /// The scopes asked for (`system/*.read`, …).
    pub scopes: String,
    /// How Portico authenticates.
    pub auth: ConnectorAuth,
    /// athenahealth's practice id (`ah-practice` on searches).
    pub practice_id: Option<String>,
    /// Seconds between incremental polls.
    pub poll_interval_secs: u32,
    /// The secret the EHR's notifications must carry.
    pub notification_secret: Secret<String>,
    /// Whether preliminary results are shown too (final ones always are, at once).
    pub release: ReleasePolicy,
}

/// What is wrong with a connector. Names the field; never echoes a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct ConnectorProblem {
    /// The field.
    pub field: &'static str,
    /// What is wrong.
    pub problem: String,
}

fn problem(field: &'static str, text: impl Into<String>) -> ConnectorProblem {
    ConnectorProblem {
        field,
        problem: text.into(),
    }
}

/// Poll intervals allowed, in seconds.
pub const POLL_INTERVAL_SECS: std::ops::RangeInclusive<u32> = 30..=86_400;
/// The shortest notification secret accepted.
pub const MIN_NOTIFICATION_SECRET: usize = 32;

impl Connector {
    /// Checks every field; the first problem found, by field.
    pub fn validate(&self) -> Result<(), ConnectorProblem> {
        endpoint("base_url", &self.base_url)?;
        endpoint("token_url", &self.token_url)?;
        if self.vendor == Vendor::Sandbox
            && self
                .base_url
                .host_str()
                .is_some_and(|host| !is_loopback(host))
        {
            return Err(problem(
                "vendor",
                "the sandbox EHR runs only inside Portico itself",
            ));
        }
        let scopes = self.scopes.trim();
        if scopes.is_empty()
            || scopes.len() > 1000
            || !scopes
                .split_whitespace()
                .all(|scope| scope.starts_with("system/") || scope == "launch")
        {
            return Err(problem(
                "scopes",
                "give the system scopes to ask for, e.g. \"system/*.read\"",
            ));
        }
        let client_id = self.auth.client_id();
        if client_id.is_empty()
            || client_id.len() > 256
            || client_id
                .chars()
                .any(|c| c.is_control() || c.is_whitespace())
        {
            return Err(problem("client_id", "1 to 256 characters, no spaces"));
        }
        match &self.auth {
            ConnectorAuth::BackendServices {
                private_key,
                algorithm,
                key_id,
                ..
            } => {
                check_private_key(private_key, *algorithm)?;
                if key_id
                    .as_deref()
                    .is_some_and(|kid| kid.is_empty() || kid.len() > 256)
                {
                    return Err(problem("key_id", "1 to 256 characters"));
                }
            }
            ConnectorAuth::ClientSecret { client_secret, .. } => {
                if client_secret.expose().len() < 16 {
                    return Err(problem("client_secret", "at least 16 characters"));
                }
            }
        }
        match (&self.practice_id, self.vendor) {
            (None, Vendor::Athenahealth) => {
                return Err(problem("practice_id", "athenahealth needs the practice id"));
            }
            (Some(id), _) if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric()) => {
                return Err(problem("practice_id", "letters and digits only"));
            }
            _ => {}
        }
        if !POLL_INTERVAL_SECS.contains(&self.poll_interval_secs) {
            return Err(problem("poll_interval_secs", "must be 30 to 86400"));
        }
        if self.notification_secret.expose().len() < MIN_NOTIFICATION_SECRET {
            return Err(problem(
                "notification_secret",
                format!("at least {MIN_NOTIFICATION_SECRET} characters"),
            ));
        }
        Ok(())
    }

    /// The connector as stored (sealed): every field, secrets included.
    pub(crate) fn to_stored(&self) -> Result<Zeroizing<Vec<u8>>, serde_json::Error> {
        let (kind, client_id, secret, algorithm, key_id) = match &self.auth {
            ConnectorAuth::BackendServices {
                client_id,
                private_key,
                algorithm,
                key_id,
            } => (
                "backend-services",
                client_id,
                private_key,
                Some(*algorithm),
                key_id.clone(),
            ),
            ConnectorAuth::ClientSecret {
                client_id,
                client_secret,
            } => ("client-secret", client_id, client_secret, None, None),
        };
        let stored = Stored {
            vendor: self.vendor,
            base_url: self.base_url.to_string(),
            token_url: self.token_url.to_string(),
            scopes: self.scopes.clone(),
            auth_kind: kind.to_owned(),
            client_id: client_id.clone(),
            secret: Zeroizing::new(secret.expose().clone()),
            algorithm,
            key_id,
            practice_id: self.practice_id.clone(),
            poll_interval_secs: self.poll_interval_secs,
            notification_secret: Zeroizing::new(self.notification_secret.expose().clone()),
            release: self.release,
        };
        serde_json::to_vec(&stored).map(Zeroizing::new)
    }

    /// Reads a stored connector back.
    pub(crate) fn from_stored(bytes: &[u8]) -> Option<Self> {
        let stored: Stored = serde_json::from_slice(bytes).ok()?;
        let auth = match (stored.auth_kind.as_str(), stored.algorithm) {
            ("backend-services", Some(algorithm)) => ConnectorAuth::BackendServices {
                client_id: stored.client_id,
                private_key: Secret::new(stored.secret.to_string()),
                algorithm,
                key_id: stored.key_id,
            },
            ("client-secret", None) => ConnectorAuth::ClientSecret {
                client_id: stored.client_id,
                client_secret: Secret::new(stored.secret.to_string()),
            },
            _ => return None,
        };
        Some(Self {
            vendor: stored.vendor,
            base_url: Url::parse(&stored.base_url).ok()?,
            token_url: Url::parse(&stored.token_url).ok()?,
            scopes: stored.scopes,
            auth,
            practice_id: stored.practice_id,
            poll_interval_secs: stored.poll_interval_secs,
            notification_secret: Secret::new(stored.notification_secret.to_string()),
            release: stored.release,
        })
    }
}

/// The sealed form. Never printed: it is built, serialized and dropped in one place.
#[derive(Serialize, Deserialize)]
struct Stored {
    vendor: Vendor,
    base_url: String,
    token_url: String,
    scopes: String,
    auth_kind: String,
    client_id: String,
    secret: Zeroizing<String>,
    algorithm: Option<SigningAlgorithm>,
    key_id: Option<String>,
    practice_id: Option<String>,
    poll_interval_secs: u32,
    notification_secret: Zeroizing<String>,
    #[serde(default)]
    release: ReleasePolicy,
}

/// An endpoint: https, or http on a loopback address (a local EHR, the tests' peer).
fn endpoint(field: &'static str, url: &Url) -> Result<(), ConnectorProblem> {
    let Some(host) = url.host_str() else {
        return Err(problem(field, "must be an http(s) URL with a host"));
    };
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(host) => {}
        "http" => {
            return Err(problem(
                field,
                "must use https (plain http only on a loopback address)",
            ));
        }
        _ => return Err(problem(field, "must be an http(s) URL")),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(problem(field, "must not carry credentials"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(problem(field, "must not have a query or fragment"));
    }
    Ok(())
}

fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The private key must be PEM of the algorithm's kind. The signature itself is made (and
/// so the key fully checked) by `portico connector test`.
fn check_private_key(
    key: &Secret<String>,
    algorithm: SigningAlgorithm,
) -> Result<(), ConnectorProblem> {
    let pem = key.expose().trim();
    let begins = |label: &str| pem.starts_with(&format!("-----BEGIN {label}-----"));
    let plausible = match algorithm {
        SigningAlgorithm::RS384 => begins("PRIVATE KEY") || begins("RSA PRIVATE KEY"),
        SigningAlgorithm::ES384 => begins("PRIVATE KEY") || begins("EC PRIVATE KEY"),
    };
    if !plausible || !pem.contains("-----END ") {
        return Err(problem(
            "private_key",
            format!("must be a PEM private key for {algorithm:?}"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const RSA: &str = "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n";

    fn connector() -> Connector {
        Connector {
            vendor: Vendor::Epic,
            base_url: Url::parse("https://fhir.example.org/api/FHIR/R4").unwrap(),
            token_url: Url::parse("https://fhir.example.org/oauth2/token").unwrap(),
            scopes: "system/*.read".to_owned(),
            auth: ConnectorAuth::BackendServices {
                client_id: "portico-sunrise".to_owned(),
                private_key: Secret::new(RSA.to_owned()),
                algorithm: SigningAlgorithm::RS384,
                key_id: Some("k1".to_owned()),
            },
            practice_id: None,
            poll_interval_secs: 300,
            notification_secret: Secret::new("n".repeat(40)),
            release: ReleasePolicy::FinalAtOnce,
        }
    }

    #[test]
    fn a_good_connector_passes_and_reads_back_with_its_secrets() {
        let good = connector();
        assert_eq!(good.validate(), Ok(()));
        let back = Connector::from_stored(&good.to_stored().unwrap()).unwrap();
        assert_eq!(back.base_url, good.base_url);
        match back.auth {
            ConnectorAuth::BackendServices { private_key, .. } => {
                assert_eq!(private_key.expose(), RSA);
            }
            ConnectorAuth::ClientSecret { .. } => panic!("wrong kind"),
        }
        assert!(!format!("{good:?}").contains("MIIE"));
    }

    #[test]
    fn each_bad_field_is_named() {
        type Spoil = Box<dyn Fn(&mut Connector)>;
        let cases: Vec<(&str, Spoil)> = vec![
            (
                "base_url",
                Box::new(|c| c.base_url = Url::parse("http://fhir.example.org/r4").unwrap()),
            ),
            (
                "token_url",
                Box::new(|c| c.token_url = Url::parse("ftp://fhir.example.org/t").unwrap()),
            ),
            (
                "base_url",
                Box::new(|c| c.base_url = Url::parse("https://u:p@fhir.example.org/").unwrap()),
            ),
            (
                "scopes",
                Box::new(|c| c.scopes = "patient/*.read".to_owned()),
            ),
            (
                "private_key",
                Box::new(|c| {
                    c.auth = ConnectorAuth::BackendServices {
                        client_id: "x".to_owned(),
                        private_key: Secret::new("not a key".to_owned()),
                        algorithm: SigningAlgorithm::ES384,
                        key_id: None,
                    }
                }),
            ),
            (
                "client_secret",
                Box::new(|c| {
                    c.auth = ConnectorAuth::ClientSecret {
                        client_id: "x".to_owned(),
                        client_secret: Secret::new("short".to_owned()),
                    }
                }),
            ),
            ("practice_id", Box::new(|c| c.vendor = Vendor::Athenahealth)),
            ("poll_interval_secs", Box::new(|c| c.poll_interval_secs = 5)),
            (
                "notification_secret",
                Box::new(|c| c.notification_secret = Secret::new("short".to_owned())),
            ),
            ("vendor", Box::new(|c| c.vendor = Vendor::Sandbox)),
        ];
        for (field, spoil) in cases {
            let mut bad = connector();
            spoil(&mut bad);
            assert_eq!(bad.validate().map_err(|p| p.field), Err(field));
        }
        let mut local = connector();
        local.base_url = Url::parse("http://127.0.0.1:8090/fhir").unwrap();
        assert_eq!(local.validate(), Ok(()));
    }
}
