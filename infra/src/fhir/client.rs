//! The FHIR R4 client a clinic's connector talks through.
//!
//! Authentication is SMART Backend Services — a JWT client assertion (RS384 or ES384,
//! `iss` = `sub` = client id, `aud` = token URL, five minutes, a fresh `jti`) exchanged for
//! an access token with the client-credentials grant — or a client secret where the vendor
//! uses one. The token is kept until shortly before it expires. Errors say which step
//! failed and how, never a secret or a token, and never a response body (which could hold
//! PHI).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use portico_platform::clock::Clock;
use portico_platform::entropy::Entropy;
use portico_platform::secret::Secret;
use portico_tenants::{Connector, ConnectorAuth, SigningAlgorithm};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

/// How long a client assertion is good for (SMART: at most five minutes).
const ASSERTION_SECS: i64 = 300;
/// A token is renewed this long before it expires.
const RENEW_BEFORE_SECS: i64 = 60;

/// What failed, step by step. Safe to print.
#[derive(Debug, thiserror::Error)]
pub enum FhirError {
    /// The private key cannot sign.
    #[error(
        "the private key cannot sign {0}: check that it is the PEM the EHR's public key matches"
    )]
    Key(&'static str),
    /// The token endpoint could not be reached.
    #[error("the token endpoint could not be reached: {0}")]
    TokenUnreachable(String),
    /// The token endpoint refused: its HTTP status and OAuth error code.
    #[error("the token endpoint refused the client (HTTP {status}{})", error.as_deref().map(|e| format!(", {e}")).unwrap_or_default())]
    TokenRefused {
        /// The HTTP status.
        status: u16,
        /// The OAuth `error` code, if one came back.
        error: Option<String>,
    },
    /// The token endpoint's answer has no access token.
    #[error("the token endpoint answered without an access token")]
    TokenMalformed,
    /// The FHIR server could not be reached.
    #[error("the FHIR server could not be reached: {0}")]
    Unreachable(String),
    /// The FHIR server answered with an error status.
    #[error("the FHIR server answered HTTP {0}")]
    Status(u16),
    /// The FHIR server's answer is not what FHIR R4 says.
    #[error("the FHIR server's answer is not FHIR R4: {0}")]
    NotFhir(&'static str),
}

/// What `GET [base]/metadata` says about the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capabilities {
    /// `fhirVersion` (4.0.1 for R4).
    pub fhir_version: String,
    /// The software's name and version, if given.
    pub software: Option<String>,
    /// Resource types the server supports.
    pub resources: Vec<String>,
}

#[derive(Debug, Clone)]
struct Token {
    value: Secret<String>,
    expires_at: DateTime<Utc>,
}

/// A client for one clinic's EHR.
#[derive(Clone)]
pub struct FhirClient {
    http: reqwest::Client,
    connector: Arc<Connector>,
    clock: Arc<dyn Clock>,
    entropy: Arc<dyn Entropy>,
    token: Arc<Mutex<Option<Token>>>,
}

impl std::fmt::Debug for FhirClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FhirClient")
            .field("base_url", &self.connector.base_url.as_str())
            .finish_non_exhaustive()
    }
}

#[derive(Serialize)]
struct Assertion<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    exp: i64,
    iat: i64,
    jti: String,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: Option<String>,
    expires_in: Option<i64>,
}

#[derive(Deserialize)]
struct OAuthError {
    error: Option<String>,
}

impl FhirClient {
    /// A client for `connector`, with request timeouts of `timeout`.
    pub fn new(
        connector: Connector,
        timeout: Duration,
        clock: Arc<dyn Clock>,
        entropy: Arc<dyn Entropy>,
    ) -> Result<Self, FhirError> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .user_agent(concat!("Portico/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|err| FhirError::Unreachable(err.to_string()))?;
        Ok(Self {
            http,
            connector: Arc::new(connector),
            clock,
            entropy,
            token: Arc::default(),
        })
    }

    /// An access token: the one held while it is good, else a new one.
    pub async fn token(&self) -> Result<Secret<String>, FhirError> {
        let mut held = self.token.lock().await;
        let now = self.clock.now();
        if let Some(token) = held.as_ref()
            && token.expires_at - chrono::Duration::seconds(RENEW_BEFORE_SECS) > now
        {
            return Ok(token.value.clone());
        }
        let token = self.fetch_token(now).await?;
        let value = token.value.clone();
        *held = Some(token);
        Ok(value)
    }

    async fn fetch_token(&self, now: DateTime<Utc>) -> Result<Token, FhirError> {
        let connector = &self.connector;
        let mut form: Vec<(&str, String)> = vec![
            ("grant_type", "client_credentials".to_owned()),
            ("scope", connector.scopes.clone()),
        ];
        let mut request = self.http.post(connector.token_url.clone());
        match &connector.auth {
            ConnectorAuth::BackendServices {
                client_id,
                private_key,
                algorithm,
                key_id,
            } => {
                let assertion =
                    self.assertion(client_id, private_key, *algorithm, key_id.as_deref(), now)?;
                form.push((
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".to_owned(),
                ));
                form.push(("client_assertion", assertion.expose().clone()));
            }
            ConnectorAuth::ClientSecret {
                client_id,
                client_secret,
            } => {
                request = request.basic_auth(client_id, Some(client_secret.expose()));
            }
        }
        let response = request
            .form(&form)
            .send()
            .await
            .map_err(|err| FhirError::TokenUnreachable(transport(&err)))?;
        let status = response.status();
        if !status.is_success() {
            let error = response
                .json::<OAuthError>()
                .await
                .ok()
                .and_then(|answer| answer.error)
                .filter(|code| code.len() <= 64 && code.chars().all(|c| c.is_ascii_graphic()));
            return Err(FhirError::TokenRefused {
                status: status.as_u16(),
                error,
            });
        }
        let answer: TokenAnswer = response
            .json()
            .await
            .map_err(|_| FhirError::TokenMalformed)?;
        let value = answer
            .access_token
            .filter(|token| !token.is_empty())
            .ok_or(FhirError::TokenMalformed)?;
        let lifetime = answer.expires_in.unwrap_or(300).clamp(1, 24 * 3600);
        Ok(Token {
            value: Secret::new(value),
            expires_at: now + chrono::Duration::seconds(lifetime),
        })
    }

    /// The signed client assertion.
    fn assertion(
        &self,
        client_id: &str,
        private_key: &Secret<String>,
        algorithm: SigningAlgorithm,
        key_id: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Secret<String>, FhirError> {
        let (key, algorithm, name) = match algorithm {
            SigningAlgorithm::RS384 => (
                EncodingKey::from_rsa_pem(private_key.expose().as_bytes()),
                Algorithm::RS384,
                "RS384",
            ),
            SigningAlgorithm::ES384 => (
                EncodingKey::from_ec_pem(private_key.expose().as_bytes()),
                Algorithm::ES384,
                "ES384",
            ),
        };
        let key = key.map_err(|_| FhirError::Key(name))?;
        let mut header = Header::new(algorithm);
        header.kid = key_id.map(str::to_owned);
        header.typ = Some("JWT".to_owned());
        let jti = portico_platform::ids::new_uuid(self.clock.as_ref(), self.entropy.as_ref());
        let claims = Assertion {
            iss: client_id,
            sub: client_id,
            aud: self.connector.token_url.as_str(),
            exp: now.timestamp() + ASSERTION_SECS,
            iat: now.timestamp(),
            jti: jti.to_string(),
        };
        jsonwebtoken::encode(&header, &claims, &key)
            .map(Secret::new)
            .map_err(|_| FhirError::Key(name))
    }

    /// The server's CapabilityStatement (`GET [base]/metadata`, which needs no token on
    /// most servers; the token is sent anyway where one is held).
    pub async fn capabilities(&self) -> Result<Capabilities, FhirError> {
        let url = format!(
            "{}/metadata",
            self.connector.base_url.as_str().trim_end_matches('/')
        );
        let response = self
            .http
            .get(url)
            .header("accept", "application/fhir+json")
            .send()
            .await
            .map_err(|err| FhirError::Unreachable(transport(&err)))?;
        if !response.status().is_success() {
            return Err(FhirError::Status(response.status().as_u16()));
        }
        let statement: serde_json::Value = response
            .json()
            .await
            .map_err(|_| FhirError::NotFhir("not JSON"))?;
        if statement["resourceType"] != "CapabilityStatement" {
            return Err(FhirError::NotFhir("not a CapabilityStatement"));
        }
        let fhir_version = statement["fhirVersion"]
            .as_str()
            .ok_or(FhirError::NotFhir("no fhirVersion"))?
            .to_owned();
        let software = statement["software"]["name"].as_str().map(
            |name| match statement["software"]["version"].as_str() {
                Some(version) => format!("{name} {version}"),
                None => name.to_owned(),
            },
        );
        let resources = statement["rest"][0]["resource"]
            .as_array()
            .map(|list| {
                list.iter()
                    .filter_map(|r| r["type"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();

        Ok(Capabilities {
            fhir_version,
            software,
            resources,
        })
    }

    /// A search with the access token (`GET [base]/[type]?…`), returning the Bundle.
    pub async fn search(
        &self,
        resource_type: &str,
        params: &[(&str, &str)],
    ) -> Result<serde_json::Value, FhirError> {
        let token = self.token().await?;
        let url = format!(
            "{}/{resource_type}",
            self.connector.base_url.as_str().trim_end_matches('/')
        );
        let response = self
            .http
            .get(url)
            .query(params)
            .bearer_auth(token.expose())
            .header("accept", "application/fhir+json")
            .send()
            .await
            .map_err(|err| FhirError::Unreachable(transport(&err)))?;
        if !response.status().is_success() {
            return Err(FhirError::Status(response.status().as_u16()));
        }
        let bundle: serde_json::Value = response
            .json()
            .await
            .map_err(|_| FhirError::NotFhir("not JSON"))?;
        if bundle["resourceType"] != "Bundle" {
            return Err(FhirError::NotFhir("a search did not answer with a Bundle"));
        }
        Ok(bundle)
    }
}

/// A transport failure in words safe to print: the kind, not the URL's query or a body.
fn transport(err: &reqwest::Error) -> String {
    if err.is_timeout() {
        "timed out".to_owned()
    } else if err.is_connect() {
        "connection refused or no route".to_owned()
    } else {
        "the request failed".to_owned()
    }
}
