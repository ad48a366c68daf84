//! The FHIR client against a scripted server: paging within the base URL and never out
//! of it, 429 with `Retry-After`, a 5xx storm that opens the circuit (and the clock that
//! closes it), one new token after a 401, and errors that are not retried.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{TimeZone, Utc};
use portico_infra::fhir::client::{FhirClient, FhirError, RetryPolicy};
use portico_platform::clock::ManualClock;
use portico_platform::entropy::SeededEntropy;
use portico_platform::secret::Secret;
use portico_tenants::{Connector, ConnectorAuth, Vendor};
use serde_json::{Value, json};

#[derive(Default)]
struct Script {
    /// Answers to give, in order, before the normal ones.
    queued: VecDeque<(u16, Vec<(&'static str, String)>)>,
    requests: usize,
    tokens: usize,
    base: String,
}

type Shared = Arc<Mutex<Script>>;

async fn token(State(script): State<Shared>) -> Response {
    let mut script = script.lock().unwrap();
    script.tokens += 1;
    axum::Json(json!({ "access_token": format!("token-{}", script.tokens), "expires_in": 300 }))
        .into_response()
}

fn bundle(ids: &[&str], next: Option<String>) -> Value {
    let mut entries: Vec<Value> = ids
        .iter()
        .map(|id| json!({ "resource": { "resourceType": "Patient", "id": id } }))
        .collect();
    entries.push(json!({ "search": { "mode": "outcome" },
        "resource": { "resourceType": "OperationOutcome" } }));
    let mut links = vec![json!({ "relation": "self", "url": "x" })];
    if let Some(next) = next {
        links.push(json!({ "relation": "next", "url": next }));
    }
    json!({ "resourceType": "Bundle", "type": "searchset", "link": links, "entry": entries })
}

async fn patients(
    State(script): State<Shared>,
    headers: HeaderMap,
    Query(query): Query<std::collections::HashMap<String, String>>,
) -> Response {
    let mut script = script.lock().unwrap();
    script.requests += 1;
    assert!(
        headers
            .get("authorization")
            .is_some_and(|value| value.to_str().unwrap().starts_with("Bearer token-"))
    );
    if let Some((status, headers)) = script.queued.pop_front() {
        let mut response = (StatusCode::from_u16(status).unwrap(), "{}").into_response();
        for (name, value) in headers {
            response.headers_mut().insert(name, value.parse().unwrap());
        }
        return response;
    }
    let base = script.base.clone();
    let page: u32 = query.get("page").and_then(|p| p.parse().ok()).unwrap_or(1);
    let body = match (query.get("foreign"), page) {
        (Some(_), _) => bundle(
            &["f1"],
            Some("http://elsewhere.example/fhir/Patient?page=2".into()),
        ),
        (None, 1) => bundle(&["a", "b"], Some(format!("{base}/Patient?page=2"))),
        (None, 2) => bundle(&["c", "d"], Some(format!("{base}/Patient?page=3"))),
        _ => bundle(&["e", "f"], None),
    };
    axum::Json(body).into_response()
}

struct Fixture {
    script: Shared,
    clock: ManualClock,
    client: FhirClient,
}

async fn fixture(policy: RetryPolicy) -> Fixture {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let root = format!("http://{}", listener.local_addr().unwrap());
    let script: Shared = Arc::new(Mutex::new(Script {
        base: format!("{root}/fhir"),
        ..Script::default()
    }));
    let app = Router::new()
        .route("/token", post(token))
        .route("/fhir/Patient", get(patients))
        .with_state(script.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let connector = Connector {
        vendor: Vendor::FhirR4,
        base_url: format!("{root}/fhir").parse().unwrap(),
        token_url: format!("{root}/token").parse().unwrap(),
        scopes: "system/*.read".to_owned(),
        auth: ConnectorAuth::ClientSecret {
            client_id: "portico".to_owned(),
            client_secret: Secret::new("a-client-secret-of-length".to_owned()),
        },
        practice_id: None,
        poll_interval_secs: 300,
        notification_secret: Secret::new("n".repeat(40)),
        release: portico_platform::records::ReleasePolicy::FinalAtOnce,
    };
    let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 12, 4, 9, 0, 0).unwrap());
    let client = FhirClient::new(
        connector,
        Duration::from_secs(5),
        Arc::new(clock.clone()),
        Arc::new(SeededEntropy::new(8)),
    )
    .unwrap()
    .with_policy(policy);
    Fixture {
        script,
        clock,
        client,
    }
}

fn quick() -> RetryPolicy {
    RetryPolicy {
        attempts: 3,
        backoff: Duration::from_millis(5),
        max_wait: Duration::from_secs(2),
        breaker_threshold: 2,
        breaker_cooldown: Duration::from_secs(60),
    }
}

impl Fixture {
    fn queue(&self, status: u16, headers: Vec<(&'static str, String)>) {
        self.script
            .lock()
            .unwrap()
            .queued
            .push_back((status, headers));
    }

    fn requests(&self) -> usize {
        self.script.lock().unwrap().requests
    }

    fn tokens(&self) -> usize {
        self.script.lock().unwrap().tokens
    }
}

fn ids(resources: &[Value]) -> Vec<&str> {
    resources
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn a_search_follows_every_page_within_the_base_and_skips_outcomes() {
    let f = fixture(quick()).await;
    let all = f.client.search_all("Patient", &[]).await.unwrap();
    assert_eq!(ids(&all), ["a", "b", "c", "d", "e", "f"]);
    assert_eq!(f.requests(), 3);
    // One token for all three pages.
    assert_eq!(f.tokens(), 1);

    // A next link to another host is not followed (the token would go with it).
    let refused = f.client.search_all("Patient", &[("foreign", "1")]).await;
    assert!(
        matches!(refused, Err(FhirError::ForeignLink)),
        "{refused:?}"
    );
}

#[tokio::test]
async fn a_429_waits_for_its_retry_after_and_a_longer_wait_is_reported() {
    let f = fixture(quick()).await;
    f.queue(429, vec![("retry-after", "1".to_owned())]);
    let all = f.client.search_all("Patient", &[]).await.unwrap();
    assert_eq!(all.len(), 6);
    assert_eq!(f.requests(), 4, "the refused request, then three pages");

    f.queue(429, vec![("retry-after", "3600".to_owned())]);
    let refused = f.client.search("Patient", &[]).await;
    assert!(
        matches!(refused, Err(FhirError::RateLimited(3600))),
        "{refused:?}"
    );
    assert_eq!(f.requests(), 5, "not retried");
}

#[tokio::test]
async fn a_5xx_storm_is_retried_then_opens_the_circuit_until_the_cooldown_passes() {
    let f = fixture(quick()).await;
    for _ in 0..6 {
        f.queue(503, Vec::new());
    }
    // Three attempts each, twice: the second failure in a row opens the circuit.
    for _ in 0..2 {
        let failed = f.client.search("Patient", &[]).await;
        assert!(matches!(failed, Err(FhirError::Status(503))), "{failed:?}");
    }
    assert_eq!(f.requests(), 6);
    let open = f.client.search("Patient", &[]).await;
    assert!(matches!(open, Err(FhirError::CircuitOpen(_))), "{open:?}");
    assert_eq!(f.requests(), 6, "an open circuit makes no request");

    f.clock.advance(chrono::Duration::seconds(61));
    let bundle = f.client.search("Patient", &[]).await.unwrap();
    assert_eq!(bundle["resourceType"], "Bundle");
    assert_eq!(f.requests(), 7);
}

#[tokio::test]
async fn a_401_takes_one_new_token_and_a_404_is_not_retried() {
    let f = fixture(quick()).await;
    f.queue(401, Vec::new());
    f.client.search("Patient", &[]).await.unwrap();
    assert_eq!(f.tokens(), 2);
    assert_eq!(f.requests(), 2);

    f.queue(404, Vec::new());
    let missing = f.client.search("Patient", &[]).await;
    assert!(
        matches!(missing, Err(FhirError::Status(404))),
        "{missing:?}"
    );
    assert_eq!(f.requests(), 3);

    // Two 401s in a row: the second is the answer, not a loop.
    f.queue(401, Vec::new());
    f.queue(401, Vec::new());
    let refused = f.client.search("Patient", &[]).await;
    assert!(
        matches!(refused, Err(FhirError::Status(401))),
        "{refused:?}"
    );
    assert_eq!(f.tokens(), 3);
}

#[tokio::test]
async fn a_search_pages_through_a_real_fhir_server() {
    use portico_tests::sekmet::{CLIENT_SECRET, SECRET_CLIENT, Sekmet};

    let ehr = Sekmet::start().await;
    let entries: Vec<Value> = (0..25)
        .map(|n| {
            json!({
                "resource": { "resourceType": "Patient", "name": [{ "family": format!("Family{n:02}") }] },
                "request": { "method": "POST", "url": "Patient" },
            })
        })
        .collect();
    ehr.load(&json!({ "resourceType": "Bundle", "type": "transaction", "entry": entries }))
        .await;
    let connector = Connector {
        vendor: Vendor::FhirR4,
        base_url: ehr.fhir().parse().unwrap(),
        token_url: ehr.token_url().parse().unwrap(),
        scopes: "system/*.read".to_owned(),
        auth: ConnectorAuth::ClientSecret {
            client_id: SECRET_CLIENT.to_owned(),
            client_secret: Secret::new(CLIENT_SECRET.to_owned()),
        },
        practice_id: None,
        poll_interval_secs: 300,
        notification_secret: Secret::new("n".repeat(40)),
        release: portico_platform::records::ReleasePolicy::FinalAtOnce,
    };
    let client = FhirClient::new(
        connector,
        Duration::from_secs(5),
        Arc::new(portico_platform::clock::SystemClock),
        Arc::new(SeededEntropy::new(9)),
    )
    .unwrap();

    let all = client
        .search_all("Patient", &[("_count", "10"), ("_sort", "_lastUpdated")])
        .await
        .unwrap();
    assert_eq!(all.len(), 25);
    let mut families: Vec<&str> = all
        .iter()
        .map(|p| p["name"][0]["family"].as_str().unwrap())
        .collect();
    families.sort_unstable();
    families.dedup();
    assert_eq!(families.len(), 25, "no resource twice, none missing");
}

#[tokio::test]
async fn a_patients_resources_come_whole_then_only_what_changed_since() {
    use portico_tests::sekmet::{CLIENT_SECRET, SECRET_CLIENT, Sekmet};

    let ehr = Sekmet::start().await;
    let observation = |n: u32| {
        json!({
            "resource": {
                "resourceType": "Observation", "status": "final",
                "code": { "coding": [{ "system": "http://loinc.org", "code": "2345-7" }] },
                "subject": { "reference": "urn:uuid:6d3b6a4e-7c1e-4c1a-9a55-1f1e3c0b2a01" },
                "valueQuantity": { "value": 90 + n, "unit": "mg/dL" },
            },
            "request": { "method": "POST", "url": "Observation" },
        })
    };
    let mut entries = vec![json!({
        "fullUrl": "urn:uuid:6d3b6a4e-7c1e-4c1a-9a55-1f1e3c0b2a01",
        "resource": { "resourceType": "Patient", "name": [{ "family": "Okafor" }] },
        "request": { "method": "POST", "url": "Patient" },
    })];
    entries.extend((0..3).map(observation));
    let loaded = ehr
        .load(&json!({ "resourceType": "Bundle", "type": "transaction", "entry": entries }))
        .await;
    // `Patient/<id>/_history/1`, relative or absolute.
    let location = loaded["entry"][0]["response"]["location"].as_str().unwrap();
    let patient = location
        .split("Patient/")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_else(|| panic!("{location}"))
        .to_owned();
    // A second patient's results must not come with the first's.
    ehr.load(
        &json!({ "resourceType": "Bundle", "type": "transaction", "entry": [
            { "fullUrl": "urn:uuid:6d3b6a4e-7c1e-4c1a-9a55-1f1e3c0b2a01",
              "resource": { "resourceType": "Patient", "name": [{ "family": "Other" }] },
              "request": { "method": "POST", "url": "Patient" } },
            observation(7),
        ]}),
    )
    .await;

    let connector = Connector {
        vendor: Vendor::FhirR4,
        base_url: ehr.fhir().parse().unwrap(),
        token_url: ehr.token_url().parse().unwrap(),
        scopes: "system/*.read".to_owned(),
        auth: ConnectorAuth::ClientSecret {
            client_id: SECRET_CLIENT.to_owned(),
            client_secret: Secret::new(CLIENT_SECRET.to_owned()),
        },
        practice_id: None,
        poll_interval_secs: 300,
        notification_secret: Secret::new("n".repeat(40)),
        release: portico_platform::records::ReleasePolicy::FinalAtOnce,
    };
    let client = FhirClient::new(
        connector,
        Duration::from_secs(5),
        Arc::new(portico_platform::clock::SystemClock),
        Arc::new(SeededEntropy::new(10)),
    )
    .unwrap();

    let first = client
        .patient_resources("Observation", &patient, None)
        .await
        .unwrap();
    assert_eq!(first.len(), 3);
    let newest = first
        .iter()
        .map(|o| {
            chrono::DateTime::parse_from_rfc3339(o["meta"]["lastUpdated"].as_str().unwrap())
                .unwrap()
                .with_timezone(&Utc)
        })
        .max()
        .unwrap();
    let me = client
        .patient_resources("Patient", &patient, None)
        .await
        .unwrap();
    assert_eq!(me.len(), 1);

    // Nothing changed: nothing comes. Then one new result: only it comes.
    let nothing = client
        .patient_resources("Observation", &patient, Some(newest))
        .await
        .unwrap();
    assert!(nothing.is_empty(), "{nothing:?}");
    tokio::time::sleep(Duration::from_millis(5)).await;
    let mut later = observation(9);
    later["resource"]["subject"] = json!({ "reference": format!("Patient/{patient}") });
    ehr.load(&json!({ "resourceType": "Bundle", "type": "transaction", "entry": [later] }))
        .await;
    let changed = client
        .patient_resources("Observation", &patient, Some(newest))
        .await
        .unwrap();
    assert_eq!(changed.len(), 1, "{changed:?}");
    assert_eq!(changed[0]["valueQuantity"]["value"], 99);
}

/// Epic's Observation search, as Epic answers it: 400 without a category.
async fn epic_observations(
    Query(query): Query<std::collections::HashMap<String, String>>,
) -> Response {
    let Some(category) = query.get("category") else {
        return (StatusCode::BAD_REQUEST, "{}").into_response();
    };
    assert_eq!(
        query.get("patient").map(String::as_str),
        Some("e63wRTbPfr1p8UW81d8Seiw3")
    );
    let entries: Vec<Value> = match category.as_str() {
        "laboratory" => vec![json!({"resource": {"resourceType": "Observation", "id": "lab-1"}})],
        "vital-signs" => vec![json!({"resource": {"resourceType": "Observation", "id": "vs-1"}})],
        _ => vec![],
    };
    axum::Json(json!({"resourceType": "Bundle", "type": "searchset", "entry": entries}))
        .into_response()
}

#[tokio::test]
async fn epic_observations_are_asked_for_one_category_at_a_time() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let root = format!("http://{}", listener.local_addr().unwrap());
    let script: Shared = Arc::default();
    let app = Router::new()
        .route("/token", post(token))
        .route("/fhir/Observation", get(epic_observations))
        .with_state(script);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let connector = Connector {
        vendor: Vendor::Epic,
        base_url: format!("{root}/fhir").parse().unwrap(),
        token_url: format!("{root}/token").parse().unwrap(),
        scopes: "system/*.read".to_owned(),
        auth: ConnectorAuth::ClientSecret {
            client_id: "portico".to_owned(),
            client_secret: Secret::new("a-client-secret-of-length".to_owned()),
        },
        practice_id: None,
        poll_interval_secs: 300,
        notification_secret: Secret::new("n".repeat(40)),
        release: portico_platform::records::ReleasePolicy::FinalAtOnce,
    };
    let client = FhirClient::new(
        connector,
        Duration::from_secs(5),
        Arc::new(ManualClock::new(
            Utc.with_ymd_and_hms(2026, 12, 4, 9, 0, 0).unwrap(),
        )),
        Arc::new(SeededEntropy::new(8)),
    )
    .unwrap()
    .with_policy(quick());

    let found = client
        .patient_resources("Observation", "e63wRTbPfr1p8UW81d8Seiw3", None)
        .await
        .unwrap();
    assert_eq!(ids(&found), ["lab-1", "vs-1"]);
}
