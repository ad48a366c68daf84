//! The FHIR R4 client a clinic's connector talks through.
//!
//! Requests are retried the way EHR vendors ask: a 429 waits for its `Retry-After` (up to a
//! bound), a 5xx or a dropped connection backs off exponentially with jitter, a 401 takes a
//! new token once; after several failed requests in a row the client stops calling for a
//! while (a circuit breaker per clinic), so one EHR's outage does not tie up the sync of the
//! others. Searches follow `Bundle.link[next]` — only within the server's own base URL, so
//! the token is never sent elsewhere.
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
    /// The server asked to wait longer than Portico waits in one request.
    #[error("the FHIR server asked to wait {0} s before trying again")]
    RateLimited(u64),
    /// Too many requests failed in a row: no more are made until this time.
    #[error("the FHIR server failed repeatedly; not calling it again until {0}")]
    CircuitOpen(DateTime<Utc>),
    /// A `next` link points outside the server's base URL.
    #[error("a page link leads outside the FHIR server's base URL; not followed")]
    ForeignLink,
    /// Paging did not end.
    #[error("the search did not end after {0} pages")]
    TooManyPages(usize),
}

impl FhirError {
    /// Whether trying again later may help (and so whether it counts against the server).
    fn is_server_trouble(&self) -> bool {
        match self {
            Self::Unreachable(_) | Self::TokenUnreachable(_) | Self::RateLimited(_) => true,
            Self::Status(status) => *status >= 500,
            _ => false,
        }
    }
}

/// How hard a client tries before it gives up, and when it stops calling altogether.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts per request, the first included.
    pub attempts: u32,
    /// The first backoff after a failure; it doubles, plus up to as much again of jitter.
    pub backoff: Duration,
    /// The longest `Retry-After` waited for inside one request.
    pub max_wait: Duration,
    /// Failed requests in a row that open the circuit.
    pub breaker_threshold: u32,
    /// How long the circuit stays open.
    pub breaker_cooldown: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 4,
            backoff: Duration::from_millis(500),
            max_wait: Duration::from_secs(120),
            breaker_threshold: 5,
            breaker_cooldown: Duration::from_secs(60),
        }
    }
}

/// Most pages one search follows.
pub const MAX_PAGES: usize = 10_000;

#[derive(Debug, Default)]
struct Breaker {
    failures: u32,
    open_until: Option<DateTime<Utc>>,
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
    policy: RetryPolicy,
    breaker: Arc<std::sync::Mutex<Breaker>>,
    pacer: Arc<std::sync::Mutex<super::quirks::Pacer>>,
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
        let pacer =
            super::quirks::Pacer::new(super::quirks::quirks(connector.vendor).requests_per_sec);
        Ok(Self {
            pacer: Arc::new(std::sync::Mutex::new(pacer)),
            http,
            connector: Arc::new(connector),
            clock,
            entropy,
            token: Arc::default(),
            policy: RetryPolicy::default(),
            breaker: Arc::default(),
        })
    }

    /// The same client, retrying by `policy`.
    #[must_use]
    pub fn with_policy(mut self, policy: RetryPolicy) -> Self {
        self.policy = policy;
        self
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

    /// A search with the access token (`GET [base]/[type]?…`): the first page's Bundle.
    pub async fn search(
        &self,
        resource_type: &str,
        params: &[(&str, &str)],
    ) -> Result<serde_json::Value, FhirError> {
        let url = self.search_url(resource_type, params)?;
        let bundle = self.get(url).await?;
        if bundle["resourceType"] != "Bundle" {
            return Err(FhirError::NotFhir("a search did not answer with a Bundle"));
        }
        Ok(bundle)
    }

    /// A whole search: every page, following `Bundle.link[next]` within the base URL; the
    /// entries' resources in order.
    pub async fn search_all(
        &self,
        resource_type: &str,
        params: &[(&str, &str)],
    ) -> Result<Vec<serde_json::Value>, FhirError> {
        let mut url = self.search_url(resource_type, params)?;
        let mut resources = Vec::new();
        for _ in 0..MAX_PAGES {
            let bundle = self.get(url.clone()).await?;
            if bundle["resourceType"] != "Bundle" {
                return Err(FhirError::NotFhir("a search did not answer with a Bundle"));
            }
            if let Some(entries) = bundle["entry"].as_array() {
                resources.extend(
                    entries
                        .iter()
                        .filter(|entry| entry["search"]["mode"] != "outcome")
                        .filter_map(|entry| entry.get("resource").cloned()),
                );
            }
            let next = bundle["link"].as_array().and_then(|links| {
                links
                    .iter()
                    .find(|link| link["relation"] == "next")
                    .and_then(|link| link["url"].as_str())
            });
            let Some(next) = next else {
                return Ok(resources);
            };
            let next = url::Url::parse(next).map_err(|_| FhirError::ForeignLink)?;
            if !self.within_base(&next) || next == url {
                return Err(FhirError::ForeignLink);
            }
            url = next;
        }
        Err(FhirError::TooManyPages(MAX_PAGES))
    }

    /// One patient's resources of one type changed after `since` (all when `None`), every
    /// page, as the vendor wants the search put (split by category where it must be).
    pub async fn patient_resources(
        &self,
        resource_type: &str,
        patient: &str,
        since: Option<DateTime<Utc>>,
    ) -> Result<Vec<serde_json::Value>, FhirError> {
        let params = super::quirks::patient_search(&self.connector, resource_type, patient, since);
        let params: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let categories = super::quirks::categories(self.connector.vendor, resource_type);
        if categories.is_empty() {
            return self.search_all(resource_type, &params).await;
        }
        let mut resources = Vec::new();
        for category in categories {
            let mut with_category = params.clone();
            with_category.push(("category", category));
            resources.extend(self.search_all(resource_type, &with_category).await?);
        }
        Ok(resources)
    }

    /// One resource (`GET [base]/[type]/[id]`); `None` when the server says it is gone
    /// (404 or 410).
    pub async fn read(
        &self,
        resource_type: &str,
        id: &str,
    ) -> Result<Option<serde_json::Value>, FhirError> {
        if !portico_platform::records::classify::is_fhir_id(id)
            || !resource_type.chars().all(|c| c.is_ascii_alphanumeric())
        {
            return Err(FhirError::NotFhir("not a FHIR type and id"));
        }
        let base = self.connector.base_url.as_str().trim_end_matches('/');
        let url = url::Url::parse(&format!("{base}/{resource_type}/{id}"))
            .map_err(|_| FhirError::NotFhir("the read cannot be made into a URL"))?;
        match self.get(url).await {
            Ok(resource) if resource["resourceType"] == resource_type => Ok(Some(resource)),
            Ok(_) => Err(FhirError::NotFhir(
                "a read answered with another resource type",
            )),
            Err(FhirError::Status(404 | 410)) => Ok(None),
            Err(err) => Err(err),
        }
    }

    fn search_url(
        &self,
        resource_type: &str,
        params: &[(&str, &str)],
    ) -> Result<url::Url, FhirError> {
        let base = self.connector.base_url.as_str().trim_end_matches('/');
        url::Url::parse_with_params(&format!("{base}/{resource_type}"), params)
            .map_err(|_| FhirError::NotFhir("the search cannot be made into a URL"))
    }

    /// Whether `url` is on the server, under its base path.
    fn within_base(&self, url: &url::Url) -> bool {
        let base = &self.connector.base_url;
        url.scheme() == base.scheme()
            && url.host_str() == base.host_str()
            && url.port_or_known_default() == base.port_or_known_default()
            && url.path().starts_with(base.path().trim_end_matches('/'))
    }

    /// A GET with the access token, retried by the policy, counted by the breaker.
    async fn get(&self, url: url::Url) -> Result<serde_json::Value, FhirError> {
        let now = self.clock.now();
        {
            let breaker = self
                .breaker
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(until) = breaker.open_until.filter(|until| *until > now) {
                return Err(FhirError::CircuitOpen(until));
            }
        }
        let result = self.get_with_retries(url).await;
        let mut breaker = self
            .breaker
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match &result {
            Err(err) if err.is_server_trouble() => {
                breaker.failures += 1;
                if breaker.failures >= self.policy.breaker_threshold {
                    let cooldown = chrono::Duration::from_std(self.policy.breaker_cooldown)
                        .unwrap_or(chrono::Duration::seconds(60));
                    breaker.open_until = Some(self.clock.now() + cooldown);
                    breaker.failures = 0;
                    tracing::warn!(fhir.base = %self.connector.base_url, "FHIR server failing; circuit opened");
                }
            }
            _ => {
                breaker.failures = 0;
                breaker.open_until = None;
            }
        }
        result
    }

    async fn get_with_retries(&self, url: url::Url) -> Result<serde_json::Value, FhirError> {
        let mut renewed = false;
        let mut last = FhirError::Unreachable("no attempt made".to_owned());
        for attempt in 0..self.policy.attempts.max(1) {
            let token = self.token().await?;
            // Kept under the vendor's rate, per clinic.
            let wait = self
                .pacer
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .reserve(tokio::time::Instant::now());
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
            let sent = self
                .http
                .get(url.clone())
                .bearer_auth(token.expose())
                .header("accept", "application/fhir+json")
                .send()
                .await;
            let wait = match sent {
                Err(err) => {
                    last = FhirError::Unreachable(transport(&err));
                    self.backoff(attempt)
                }
                Ok(response) if response.status().is_success() => {
                    return response
                        .json()
                        .await
                        .map_err(|_| FhirError::NotFhir("not JSON"));
                }
                Ok(response)
                    if response.status() == reqwest::StatusCode::UNAUTHORIZED && !renewed =>
                {
                    // The token may have been revoked early: one new one.
                    renewed = true;
                    *self.token.lock().await = None;
                    last = FhirError::Status(401);
                    Duration::ZERO
                }
                Ok(response) if response.status() == reqwest::StatusCode::TOO_MANY_REQUESTS => {
                    let asked = retry_after(response.headers(), self.clock.now())
                        .unwrap_or_else(|| self.backoff(attempt));
                    if asked > self.policy.max_wait {
                        return Err(FhirError::RateLimited(asked.as_secs()));
                    }
                    last = FhirError::RateLimited(asked.as_secs());
                    asked
                }
                Ok(response) if response.status().is_server_error() => {
                    last = FhirError::Status(response.status().as_u16());
                    self.backoff(attempt)
                }
                Ok(response) => return Err(FhirError::Status(response.status().as_u16())),
            };
            if attempt + 1 < self.policy.attempts {
                tokio::time::sleep(wait).await;
            }
        }
        Err(last)
    }

    /// The wait after failed attempt `attempt` (from 0): the backoff doubled per attempt,
    /// plus up to as much again of jitter so that clients do not retry in step.
    fn backoff(&self, attempt: u32) -> Duration {
        let base = self.policy.backoff.saturating_mul(1 << attempt.min(10));
        let mut bytes = [0u8; 4];
        self.entropy.fill(&mut bytes);
        let jitter = u64::from(u32::from_le_bytes(bytes))
            % u64::try_from(base.as_millis()).unwrap_or(u64::MAX).max(1);
        base + Duration::from_millis(jitter)
    }
}

/// A `Retry-After` header: seconds, or an HTTP date.
fn retry_after(headers: &reqwest::header::HeaderMap, now: DateTime<Utc>) -> Option<Duration> {
    let value = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = DateTime::parse_from_rfc2822(value)
        .ok()?
        .with_timezone(&Utc);
    Some((at - now).to_std().unwrap_or(Duration::ZERO))
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
