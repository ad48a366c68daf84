//! The sandbox EHR: a small FHIR R4 server inside the binary, for the demo and
//! development only, so a clinic's record fills in with nothing installed.
//!
//! It speaks as a real EHR does, and Portico reaches it through the same connector, FHIR
//! client and sync engine as Epic — no shortcut path:
//!
//! - `POST /sandbox/auth/token`: SMART Backend Services. The client assertion (ES384 or
//!   RS384, `aud` = this URL, at most five minutes, a fresh `jti`) is checked against the
//!   public key registered for the client; an access token good for five minutes comes back.
//! - `GET /sandbox/fhir/metadata`: the CapabilityStatement.
//! - `GET /sandbox/fhir/<Type>?patient=…&_lastUpdated=gt…&_count=…`: searches, paged with
//!   `Bundle.link[next]`; `GET /sandbox/fhir/<Type>/<id>`: reads (404 when unknown).
//!
//! Its patients are the deterministic synthetic charts of [`data`]. Every few seconds it
//! finalizes one pending result — or, when none is left, orders a new one — and sends each
//! subscriber the R4 Subscriptions backport's notification `Bundle`, as an EHR with
//! topic-based subscriptions does.

pub mod data;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chrono::{DateTime, SecondsFormat, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use portico_platform::clock::Clock;
use portico_platform::entropy::Entropy;
use portico_platform::secret::Secret;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// How long a sandbox access token lasts.
const TOKEN_SECS: i64 = 300;
/// The most entries one search page holds.
const MAX_COUNT: usize = 200;

/// What one [`Sandbox::step`] did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Step {
    /// A pending result was finalized (otherwise a new one was ordered, preliminary).
    pub finalized: bool,
    /// The resource, `Type/id`.
    pub focus: String,
}

/// Where a subscriber wants notifications, and the secret they must carry.
#[derive(Debug, Clone)]
struct Subscriber {
    endpoint: url::Url,
    secret: Secret<String>,
}

#[derive(Default)]
struct State_ {
    /// Every resource by `Type/id`, Patients included.
    resources: HashMap<String, Value>,
    /// Registered clients: client id → the key their assertions are checked with.
    clients: HashMap<String, (Algorithm, DecodingKey)>,
    /// Hashes of live access tokens, with their expiry.
    tokens: HashMap<[u8; 32], DateTime<Utc>>,
    /// Assertion ids seen (replay protection), with their expiry.
    seen_jti: HashMap<String, DateTime<Utc>>,
    subscribers: Vec<Subscriber>,
    /// Notifications sent so far (the backport's `events-since-subscription-start`).
    events: u64,
    /// Results ordered since start, for new ids.
    orders: u64,
}

/// The sandbox EHR. Cheap to clone; clones share one server.
#[derive(Clone)]
pub struct Sandbox {
    state: Arc<Mutex<State_>>,
    clock: Arc<dyn Clock>,
    entropy: Arc<dyn Entropy>,
    http: reqwest::Client,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox").finish_non_exhaustive()
    }
}

impl Sandbox {
    /// A sandbox holding `patients` synthetic charts dated up to the start of today.
    pub fn new(patients: usize, clock: Arc<dyn Clock>, entropy: Arc<dyn Entropy>) -> Self {
        let now = clock.now();
        let base = now
            .date_naive()
            .and_hms_opt(0, 0, 0)
            .map_or(now, |midnight| midnight.and_utc());
        let mut resources = HashMap::new();
        for chart in data::charts(patients, base) {
            for resource in std::iter::once(chart.patient).chain(chart.resources) {
                if let Some(key) = key_of(&resource) {
                    resources.insert(key, resource);
                }
            }
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap_or_default();
        Self {
            state: Arc::new(Mutex::new(State_ {
                resources,
                ..State_::default()
            })),
            clock,
            entropy,
            http,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State_> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers a Backend Services client by the private key it signs with (the
    /// sandbox keeps only the public half).
    pub fn register_client(&self, client_id: &str, private_key_pem: &str) -> anyhow::Result<()> {
        let key = public_key(private_key_pem)?;
        self.lock()
            .clients
            .insert(client_id.to_owned(), (Algorithm::ES384, key));
        Ok(())
    }

    /// Sends notifications to `endpoint`, with `secret` as the bearer token (the
    /// Subscription's `channel.header`). Subscribing the same endpoint again replaces it.
    pub fn subscribe(&self, endpoint: url::Url, secret: Secret<String>) {
        let mut state = self.lock();
        state.subscribers.retain(|s| s.endpoint != endpoint);
        state.subscribers.push(Subscriber { endpoint, secret });
    }

    /// Finalizes the next pending result of the first patient (or orders a new one when
    /// none is left) and notifies the subscribers. Returns what it did and the resource's
    /// `Type/id`.
    pub async fn step(&self) -> Option<Step> {
        let now = self.clock.now();
        let mut finalized = false;
        let (focus, resource, patient) = {
            let mut state = self.lock();
            let first = patient_id(0);
            let mut pending: Vec<String> = state
                .resources
                .iter()
                .filter(|(_, r)| data::is_pending(r))
                .filter(|(_, r)| patient_of(r).as_deref() == Some(first.as_str()))
                .map(|(key, _)| key.clone())
                .collect();
            // Results before their reports; then by id, so the order is the same each run.
            pending.sort_by_key(|key| (!key.starts_with("Observation/"), key.clone()));
            match pending.first() {
                Some(key) => {
                    let key = key.clone();
                    let resource = state.resources.get_mut(&key)?;
                    data::finalize(resource, now);
                    finalized = true;
                    (key, resource.clone(), patient_of(resource))
                }
                None => {
                    state.orders += 1;
                    let order = state.orders;
                    let resource = new_order(order, now);
                    let key = key_of(&resource)?;
                    state.resources.insert(key.clone(), resource.clone());
                    let patient = patient_of(&resource);
                    (key, resource, patient)
                }
            }
        };
        self.notify(&focus, &resource, patient.as_deref()).await;
        Some(Step { finalized, focus })
    }

    /// Runs [`step`](Self::step) every `every` until the task is dropped.
    pub async fn run(self, every: Duration) {
        loop {
            tokio::time::sleep(every).await;
            self.step().await;
        }
    }

    async fn notify(&self, focus: &str, resource: &Value, patient: Option<&str>) {
        let (subscribers, event) = {
            let mut state = self.lock();
            state.events += 1;
            (state.subscribers.clone(), state.events)
        };
        let mut parts = vec![
            json!({"name": "event-number", "valueString": event.to_string()}),
            json!({"name": "timestamp", "valueInstant": self.clock.now().to_rfc3339_opts(SecondsFormat::Millis, true)}),
            json!({"name": "focus", "valueReference": {"reference": focus}}),
        ];
        if let Some(patient) = patient {
            parts.push(json!({"name": "additional-context", "valueReference": {"reference": format!("Patient/{patient}")}}));
        }
        let bundle = json!({
            "resourceType": "Bundle",
            "id": format!("notification-{event}"),
            "meta": {"profile": ["http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-subscription-notification-r4"]},
            "type": "history",
            "timestamp": self.clock.now().to_rfc3339_opts(SecondsFormat::Millis, true),
            "entry": [
                {
                    "fullUrl": format!("urn:uuid:notification-status-{event}"),
                    "resource": {
                        "resourceType": "Parameters",
                        "parameter": [
                            {"name": "subscription", "valueReference": {"reference": "Subscription/portico"}},
                            {"name": "topic", "valueCanonical": "http://hl7.org/SubscriptionTopic/patient-data"},
                            {"name": "status", "valueCode": "active"},
                            {"name": "type", "valueCode": "event-notification"},
                            {"name": "events-since-subscription-start", "valueString": event.to_string()},
                            {"name": "notification-event", "part": parts}
                        ]
                    },
                    "request": {"method": "GET", "url": "https://sandbox.invalid/fhir/Subscription/portico/$status"},
                    "response": {"status": "200"}
                },
                {"fullUrl": focus, "resource": resource, "request": {"method": "PUT", "url": focus}, "response": {"status": "200"}}
            ]
        });
        for subscriber in subscribers {
            let sent = self
                .http
                .post(subscriber.endpoint.clone())
                .bearer_auth(subscriber.secret.expose())
                .header(header::CONTENT_TYPE, "application/fhir+json")
                .body(bundle.to_string())
                .send()
                .await;
            if let Err(err) = sent.and_then(reqwest::Response::error_for_status) {
                tracing::warn!(
                    status = err.status().map(|s| s.as_u16()),
                    "the sandbox EHR could not deliver a notification"
                );
            }
        }
    }
}

/// The sandbox's routes, to nest at `/sandbox`.
pub fn routes(sandbox: Sandbox) -> Router {
    Router::new()
        .route("/auth/token", post(token))
        .route("/fhir/metadata", get(metadata))
        .route("/fhir/$step", post(step))
        .route("/fhir/{resource_type}", get(search))
        .route("/fhir/{resource_type}/{id}", get(read))
        .with_state(sandbox)
}

async fn token(State(sandbox): State<Sandbox>, headers: HeaderMap, body: Bytes) -> Response {
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
        return oauth_error("unsupported_grant_type");
    }
    if form.get("client_assertion_type").map(String::as_str)
        != Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
    {
        return oauth_error("invalid_client");
    }
    let Some(assertion) = form.get("client_assertion") else {
        return oauth_error("invalid_client");
    };
    let audience = format!("{}/sandbox/auth/token", origin(&headers));
    let now = sandbox.clock.now();
    let claims = {
        let state = sandbox.lock();
        let Ok(header) = jsonwebtoken::decode_header(assertion) else {
            return oauth_error("invalid_client");
        };
        let Some(issuer) = unverified_issuer(assertion) else {
            return oauth_error("invalid_client");
        };
        let Some((algorithm, key)) = state.clients.get(&issuer) else {
            return oauth_error("invalid_client");
        };
        if header.alg != *algorithm {
            return oauth_error("invalid_client");
        }
        let mut validation = Validation::new(*algorithm);
        validation.set_audience(&[audience.as_str()]);
        validation.set_issuer(&[issuer.as_str()]);
        validation.set_required_spec_claims(&["exp", "aud", "iss", "sub"]);
        match jsonwebtoken::decode::<Value>(assertion, key, &validation) {
            Ok(data) => data.claims,
            Err(_) => return oauth_error("invalid_client"),
        }
    };
    let exp = claims["exp"].as_i64().unwrap_or_default();
    let jti = claims["jti"].as_str().unwrap_or_default().to_owned();
    if claims["sub"] != claims["iss"] || exp > now.timestamp() + 300 || jti.is_empty() {
        return oauth_error("invalid_client");
    }
    let mut bytes = [0u8; 32];
    sandbox.entropy.fill(&mut bytes);
    let access_token = URL_SAFE_NO_PAD.encode(bytes);
    {
        let mut state = sandbox.lock();
        state.seen_jti.retain(|_, until| *until > now);
        if state.seen_jti.contains_key(&jti) {
            return oauth_error("invalid_client");
        }
        state
            .seen_jti
            .insert(jti, now + chrono::Duration::seconds(300));
        state.tokens.retain(|_, until| *until > now);
        state.tokens.insert(
            Sha256::digest(access_token.as_bytes()).into(),
            now + chrono::Duration::seconds(TOKEN_SECS),
        );
    }
    axum::Json(json!({
        "access_token": access_token,
        "token_type": "bearer",
        "expires_in": TOKEN_SECS,
        "scope": form.get("scope").cloned().unwrap_or_else(|| "system/*.read".to_owned()),
    }))
    .into_response()
}

/// `POST /sandbox/fhir/$step`: the sandbox's own control operation (it has no
/// counterpart in a real EHR): finalize the next pending result now, or order a new one,
/// and notify, as the timer does. For tests and benchmarks that need it on cue.
async fn step(State(sandbox): State<Sandbox>) -> Response {
    match sandbox.step().await {
        Some(step) => axum::Json(step).into_response(),
        None => outcome(
            StatusCode::INTERNAL_SERVER_ERROR,
            "exception",
            "nothing to do",
        ),
    }
}

async fn metadata(headers: HeaderMap) -> Response {
    let types: Vec<Value> = portico_platform::records::sync::SYNCED_TYPES
        .iter()
        .chain(["Patient", "Binary"].iter())
        .map(|t| json!({"type": t, "interaction": [{"code": "read"}, {"code": "search-type"}],
            "searchParam": [{"name": "patient", "type": "reference"}, {"name": "_lastUpdated", "type": "date"}]}))
        .collect();
    fhir(
        StatusCode::OK,
        &json!({
            "resourceType": "CapabilityStatement",
            "status": "active",
            "date": "2026-12-01",
            "kind": "instance",
            "software": {"name": "Portico sandbox EHR", "version": env!("CARGO_PKG_VERSION")},
            "implementation": {"description": "Synthetic patients for the demo", "url": format!("{}/sandbox/fhir", origin(&headers))},
            "fhirVersion": "4.0.1",
            "format": ["application/fhir+json"],
            "rest": [{"mode": "server", "security": {"service": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/restful-security-service", "code": "SMART-on-FHIR"}]}]}, "resource": types}]
        }),
    )
}

async fn search(
    State(sandbox): State<Sandbox>,
    Path(resource_type): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    if let Err(refused) = sandbox.authorize(&headers) {
        return refused;
    }
    let params: Vec<(String, String)> =
        url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    let param = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let patient = param("patient")
        .or_else(|| param("subject"))
        .or_else(|| param("beneficiary"));
    let since = param("_lastUpdated")
        .and_then(|v| v.strip_prefix("gt"))
        .and_then(portico_platform::records::classify::parse_datetime);
    let count = param("_count")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(50)
        .clamp(1, MAX_COUNT);
    let offset = param("_offset")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0);
    if patient.is_none() && resource_type != "Patient" {
        return outcome(StatusCode::BAD_REQUEST, "required", "search by patient");
    }
    let mut matches: Vec<Value> = {
        let state = sandbox.lock();
        state
            .resources
            .values()
            .filter(|r| r["resourceType"] == resource_type.as_str())
            .filter(|r| patient.is_none_or(|p| patient_of(r).as_deref() == Some(p)))
            .filter(|r| {
                since.is_none_or(|since| {
                    r.pointer("/meta/lastUpdated")
                        .and_then(Value::as_str)
                        .and_then(portico_platform::records::classify::parse_datetime)
                        .is_some_and(|at| at > since)
                })
            })
            .cloned()
            .collect()
    };
    matches.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    let total = matches.len();
    let base = format!("{}/sandbox/fhir", origin(&headers));
    let entries: Vec<Value> = matches
        .into_iter()
        .skip(offset)
        .take(count)
        .map(|r| {
            json!({"fullUrl": format!("{base}/{}/{}", resource_type, r["id"].as_str().unwrap_or_default()),
                   "resource": r, "search": {"mode": "match"}})
        })
        .collect();
    let mut links = vec![json!({"relation": "self", "url": format!("{base}/{resource_type}")})];
    if offset + count < total {
        let mut next = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in params.iter().filter(|(k, _)| k != "_offset") {
            next.append_pair(k, v);
        }
        next.append_pair("_offset", &(offset + count).to_string());
        links.push(
            json!({"relation": "next", "url": format!("{base}/{resource_type}?{}", next.finish())}),
        );
    }
    fhir(
        StatusCode::OK,
        &json!({"resourceType": "Bundle", "type": "searchset", "total": total, "link": links, "entry": entries}),
    )
}

async fn read(
    State(sandbox): State<Sandbox>,
    Path((resource_type, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Err(refused) = sandbox.authorize(&headers) {
        return refused;
    }
    let found = sandbox
        .lock()
        .resources
        .get(&format!("{resource_type}/{id}"))
        .cloned();
    match found {
        Some(resource) => fhir(StatusCode::OK, &resource),
        None => outcome(StatusCode::NOT_FOUND, "not-found", "no such resource"),
    }
}

impl Sandbox {
    #[allow(clippy::result_large_err, reason = "the error is the response itself")]
    fn authorize(&self, headers: &HeaderMap) -> Result<(), Response> {
        let token = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            });
        let now = self.clock.now();
        let valid = token.is_some_and(|token| {
            let hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
            self.lock()
                .tokens
                .get(&hash)
                .is_some_and(|until| *until > now)
        });
        if valid {
            Ok(())
        } else {
            Err(outcome(
                StatusCode::UNAUTHORIZED,
                "login",
                "a valid access token is required",
            ))
        }
    }
}

/// `scheme://host[:port]` as the request addressed the sandbox.
fn origin(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("127.0.0.1");
    format!("http://{host}")
}

fn key_of(resource: &Value) -> Option<String> {
    Some(format!(
        "{}/{}",
        resource["resourceType"].as_str()?,
        resource["id"].as_str()?
    ))
}

fn patient_of(resource: &Value) -> Option<String> {
    if resource["resourceType"] == "Patient" {
        return resource["id"].as_str().map(str::to_owned);
    }
    portico_platform::records::classify::classify(resource)
        .ok()?
        .patient
}

/// A new preliminary glucose result for the first patient, ordered `now`.
fn new_order(order: u64, now: DateTime<Utc>) -> Value {
    let at = now.to_rfc3339_opts(SecondsFormat::Secs, true);
    let value = 85 + (order * 7) % 40;
    let flag = if value > 99 { "H" } else { "N" };
    json!({
        "resourceType": "Observation",
        "id": format!("sbx-p0000-order-{order}"),
        "meta": {"versionId": "1", "lastUpdated": at},
        "status": "preliminary",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory", "display": "Laboratory"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "2345-7", "display": "Glucose [Mass/volume] in Serum or Plasma"}], "text": "Glucose"},
        "subject": {"reference": "Patient/sbx-p0000"},
        "effectiveDateTime": at,
        "issued": at,
        "valueQuantity": {"value": value, "unit": "mg/dL", "system": "http://unitsofmeasure.org", "code": "mg/dL"},
        "referenceRange": [{"low": {"value": 70, "unit": "mg/dL", "system": "http://unitsofmeasure.org", "code": "mg/dL"}, "high": {"value": 99, "unit": "mg/dL", "system": "http://unitsofmeasure.org", "code": "mg/dL"}}],
        "interpretation": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation", "code": flag}]}]
    })
}

/// The issuer of an assertion, read before its signature is checked, to find its key.
fn unverified_issuer(assertion: &str) -> Option<String> {
    let payload = assertion.split('.').nth(1)?;
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
    claims["iss"].as_str().map(str::to_owned)
}

/// The public half of an ES384 private key (PKCS#8 PEM), as a verifying key.
fn public_key(private_key_pem: &str) -> anyhow::Result<DecodingKey> {
    use aws_lc_rs::signature::{ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
    let der = pem_body(private_key_pem)?;
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P384_SHA384_FIXED_SIGNING, &der)
        .map_err(|_| anyhow::anyhow!("not a PKCS#8 P-384 private key"))?;
    let point = pair.public_key().as_ref();
    // An uncompressed point: 0x04, then x and y of 48 bytes each.
    if point.len() != 97 {
        anyhow::bail!("unexpected P-384 public key length");
    }
    Ok(DecodingKey::from_ec_components(
        &URL_SAFE_NO_PAD.encode(&point[1..49]),
        &URL_SAFE_NO_PAD.encode(&point[49..]),
    )?)
}

/// A new ES384 key pair for a sandbox client, as PKCS#8 PEM.
pub fn generate_client_key() -> anyhow::Result<Secret<String>> {
    use aws_lc_rs::signature::{ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair};
    let pair = EcdsaKeyPair::generate(&ECDSA_P384_SHA384_FIXED_SIGNING)
        .map_err(|_| anyhow::anyhow!("cannot generate a P-384 key"))?;
    let der = pair
        .to_pkcs8v1()
        .map_err(|_| anyhow::anyhow!("cannot encode the P-384 key"))?;
    let body = STANDARD.encode(der.as_ref());
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .filter_map(|chunk| std::str::from_utf8(chunk).ok())
        .collect();
    Ok(Secret::new(format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        lines.join("\n")
    )))
}

fn pem_body(pem: &str) -> anyhow::Result<zeroize::Zeroizing<Vec<u8>>> {
    let body: String = pem
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .collect();
    Ok(zeroize::Zeroizing::new(STANDARD.decode(body.trim())?))
}

fn fhir(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/fhir+json")],
        body.to_string(),
    )
        .into_response()
}

fn outcome(status: StatusCode, code: &str, text: &str) -> Response {
    fhir(
        status,
        &json!({"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": code, "diagnostics": text}]}),
    )
}

fn oauth_error(error: &str) -> Response {
    (StatusCode::BAD_REQUEST, axum::Json(json!({"error": error}))).into_response()
}

/// Sandbox patients by index, for tests and the demo: `sbx-p0000`, …
pub fn patient_id(index: usize) -> String {
    format!("sbx-p{index:04}")
}
