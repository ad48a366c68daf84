//! The sync engine: a generated patient backfilled from a real FHIR server (sekmet-fhir
//! loaded with a Synthea bundle), then polled for changes and deletes; the server going
//! away mid-sync and coming back; notifications; the shared queue.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use portico_infra::fhir::client::{FhirClient, RetryPolicy};
use portico_platform::entropy::SeededEntropy;
use portico_platform::identity::role::Role;
use portico_platform::ids::{AccountId, PatientId};
use portico_platform::principal::Principal;
use portico_platform::records::service::Filter;
use portico_platform::records::sync::{Connection, JobKind, SYNCED_TYPES};
use portico_platform::records::{EhrClient, EhrError, ReleasePolicy, SyncEngine};
use portico_platform::secret::Secret;
use portico_tenants::{Connector, ConnectorAuth, Tenant, Vendor};
use portico_tests::sekmet::{CLIENT_SECRET, SECRET_CLIENT, Sekmet};
use serde_json::{Value, json};

use crate::fixture::{FixedConnections, Platform};

fn client_for(ehr: &Sekmet) -> FhirClient {
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
        poll_interval_secs: 60,
        notification_secret: Secret::new("n".repeat(40)),
        release: ReleasePolicy::FinalAtOnce,
    };
    // The EHR checks the assertion's times against its own clock: the real one.
    FhirClient::new(
        connector,
        Duration::from_secs(30),
        Arc::new(portico_platform::clock::SystemClock),
        Arc::new(SeededEntropy::new(17)),
    )
    .unwrap()
    .with_policy(RetryPolicy {
        attempts: 2,
        backoff: Duration::from_millis(20),
        max_wait: Duration::from_secs(2),
        breaker_threshold: 1000,
        breaker_cooldown: Duration::from_secs(1),
    })
}

/// The smallest Synthea patient bundle of `TEST_SYNTHEA_DIR`.
fn synthea_bundle() -> Value {
    let dir = std::env::var("TEST_SYNTHEA_DIR").unwrap_or_else(|_| {
        panic!("TEST_SYNTHEA_DIR is not set: ./tests/run generates Synthea patients there")
    });
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort_by_key(|path| std::fs::metadata(path).unwrap().len());
    let smallest = files
        .first()
        .unwrap_or_else(|| panic!("no Synthea bundles in {dir}"));
    serde_json::from_slice(&std::fs::read(smallest).unwrap()).unwrap()
}

/// Loads a Synthea bundle; the patient's id on the server and how many of its resources
/// the sync reads.
async fn load_synthea(ehr: &Sekmet) -> (String, usize) {
    let bundle = synthea_bundle();
    let entries = bundle["entry"].as_array().unwrap();
    let at = entries
        .iter()
        .position(|e| e["resource"]["resourceType"] == "Patient")
        .unwrap();
    let synced = entries
        .iter()
        .filter(|e| {
            SYNCED_TYPES.contains(&e["resource"]["resourceType"].as_str().unwrap_or_default())
        })
        .count();
    let loaded = ehr.load(&bundle).await;
    let location = loaded["entry"][at]["response"]["location"]
        .as_str()
        .unwrap();
    let patient = location
        .split("Patient/")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap()
        .to_owned();
    (patient, synced)
}

struct Synced {
    platform: Platform,
    clinic: Tenant,
    engine: SyncEngine,
    patient: PatientId,
}

impl Synced {
    async fn new() -> Self {
        let platform = Platform::new(Default::default()).await;
        let clinic = platform.tenant("sunrise").await;
        let engine = platform.sync_engine();
        Self {
            platform,
            clinic,
            engine,
            patient: PatientId::from_uuid(uuid::Uuid::from_u128(0x77)),
        }
    }

    fn connection(client: Arc<dyn EhrClient>) -> Connection {
        Connection {
            client,
            policy: ReleasePolicy::FinalAtOnce,
            poll_interval: Duration::from_secs(60),
        }
    }

    /// Claims the next job and runs it.
    async fn run_next(&self, connection: &Connection) -> Result<(), String> {
        let job = self
            .engine
            .claim(self.clinic.id)
            .await
            .unwrap()
            .expect("a job is due");
        self.engine
            .run(&job, connection)
            .await
            .map_err(|err| err.to_string())
    }

    /// Every item the patient sees, by FHIR type and id.
    async fn visible(&self) -> HashMap<String, Value> {
        let records = self.platform.records(Arc::new(FixedConnections {
            client: None,
            policy: ReleasePolicy::FinalAtOnce,
        }));
        let me = Principal::Patient {
            tenant: self.clinic.id,
            account: AccountId::from_uuid(uuid::Uuid::from_u128(0xa7)),
            patient: self.patient,
            session: "s".to_owned(),
        };
        let mut items = HashMap::new();
        let mut after = None;
        loop {
            let page = records
                .list(&me, &Filter::default(), 200, after.as_deref())
                .await
                .unwrap();
            for item in page.items {
                let key = format!(
                    "{}/{}",
                    item.resource_type,
                    item.resource["id"].as_str().unwrap()
                );
                assert!(
                    items.insert(key.clone(), item.resource).is_none(),
                    "{key} twice"
                );
            }
            match page.next {
                Some(next) => after = Some(next),
                None => return items,
            }
        }
    }

    async fn backfill_progress(&self) -> (i32, i32, i32) {
        let job = self
            .engine
            .latest_job(self.clinic.id, self.patient)
            .await
            .unwrap()
            .unwrap();
        (job.progress.done, job.progress.total, job.progress.stored)
    }
}

#[tokio::test]
async fn a_generated_patient_is_backfilled_then_polled_for_changes_and_deletes() {
    let ehr = Sekmet::start().await;
    let (ehr_patient, synced) = load_synthea(&ehr).await;
    let s = Synced::new().await;
    let connection = Synced::connection(Arc::new(client_for(&ehr)));

    assert!(
        s.engine
            .link(s.clinic.id, s.patient, &ehr_patient)
            .await
            .unwrap()
    );
    // Linking again is harmless; linking another EHR patient to the same one is refused.
    assert!(
        !s.engine
            .link(s.clinic.id, s.patient, &ehr_patient)
            .await
            .unwrap()
    );
    assert!(
        s.engine
            .link(s.clinic.id, s.patient, "someone-else")
            .await
            .is_err()
    );

    s.run_next(&connection).await.unwrap();
    let total = i32::try_from(SYNCED_TYPES.len()).unwrap();
    let (done, of, stored) = s.backfill_progress().await;
    assert_eq!((done, of), (total, total));
    assert_eq!(
        usize::try_from(stored).unwrap(),
        synced,
        "every resource of the bundle stored"
    );
    let visible = s.visible().await;
    assert!(
        visible.len() * 10 >= synced * 9,
        "{} of {synced} visible",
        visible.len()
    );

    // A second full read finds nothing new and duplicates nothing.
    s.platform.clock.advance(chrono::Duration::seconds(1));
    s.engine
        .enqueue(s.clinic.id, s.patient, JobKind::Backfill, &[])
        .await
        .unwrap();
    s.run_next(&connection).await.unwrap();
    assert_eq!(s.backfill_progress().await.2, 0);
    assert_eq!(s.visible().await.len(), visible.len());

    // The EHR amends a result and deletes a diagnosis.
    let (key, mut observation) = visible
        .iter()
        .find(|(key, o)| key.starts_with("Observation/") && o["valueQuantity"]["value"].is_number())
        .map(|(k, v)| (k.clone(), v.clone()))
        .unwrap();
    observation["status"] = json!("amended");
    observation["valueQuantity"]["value"] = json!(123.4);
    let condition = visible
        .keys()
        .find(|key| key.starts_with("Condition/"))
        .unwrap()
        .clone();
    ehr.load(
        &json!({"resourceType": "Bundle", "type": "transaction", "entry": [
            {"resource": observation, "request": {"method": "PUT", "url": key}},
            {"request": {"method": "DELETE", "url": condition}},
        ]}),
    )
    .await;

    // A poll reads only what changed since the cursors.
    s.engine
        .enqueue(s.clinic.id, s.patient, JobKind::Poll, &[])
        .await
        .unwrap();
    s.run_next(&connection).await.unwrap();
    let after_poll = s.visible().await;
    assert_eq!(after_poll[&key]["valueQuantity"]["value"], json!(123.4));
    assert_eq!(after_poll[&key]["status"], "amended");

    // A search never shows a deletion; the next full read does, and removes it from view.
    s.platform.clock.advance(chrono::Duration::seconds(1));
    s.engine
        .enqueue(s.clinic.id, s.patient, JobKind::Backfill, &[])
        .await
        .unwrap();
    s.run_next(&connection).await.unwrap();
    let after_full = s.visible().await;
    assert!(!after_full.contains_key(&condition));
    assert_eq!(after_full.len(), visible.len() - 1);
}

/// An EHR client that stops the server after `searches` searches, as if it went away.
#[derive(Debug)]
struct GoesAway {
    inner: FhirClient,
    ehr: Arc<tokio::sync::Mutex<Sekmet>>,
    searches: Mutex<usize>,
    stop_after: usize,
}

#[async_trait]
impl EhrClient for GoesAway {
    async fn search(
        &self,
        resource_type: &str,
        patient: &str,
        since: Option<DateTime<Utc>>,
    ) -> Result<Vec<Value>, EhrError> {
        let count = {
            let mut searches = self.searches.lock().unwrap();
            *searches += 1;
            *searches
        };
        if count == self.stop_after + 1 {
            self.ehr.lock().await.stop().await;
        }
        EhrClient::search(&self.inner, resource_type, patient, since).await
    }

    async fn read(&self, resource_type: &str, id: &str) -> Result<Option<Value>, EhrError> {
        EhrClient::read(&self.inner, resource_type, id).await
    }
}

#[tokio::test]
async fn the_server_going_away_mid_sync_and_coming_back_loses_nothing_and_duplicates_nothing() {
    let ehr = Sekmet::start_persistent().await;
    let (ehr_patient, synced) = load_synthea(&ehr).await;
    let inner = client_for(&ehr);
    let ehr = Arc::new(tokio::sync::Mutex::new(ehr));
    let s = Synced::new().await;
    let connection = Synced::connection(Arc::new(GoesAway {
        inner,
        ehr: ehr.clone(),
        searches: Mutex::new(0),
        stop_after: 4,
    }));
    s.engine
        .link(s.clinic.id, s.patient, &ehr_patient)
        .await
        .unwrap();

    let failed = s.run_next(&connection).await.unwrap_err();
    assert!(failed.contains("could not be reached"), "{failed}");
    let (done, _, stored) = s.backfill_progress().await;
    assert_eq!(
        done, 4,
        "four types were stored before the server went away"
    );
    assert!(stored > 0);
    // Back in the queue, after a backoff; nothing is due before it ends.
    assert!(s.engine.claim(s.clinic.id).await.unwrap().is_none());

    ehr.lock().await.restart().await;
    s.platform.clock.advance(chrono::Duration::minutes(1));
    s.run_next(&connection).await.unwrap();
    let visible = s.visible().await;
    assert!(
        visible.len() * 10 >= synced * 9,
        "{} of {synced} visible",
        visible.len()
    );
    let job = s
        .engine
        .latest_job(s.clinic.id, s.patient)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((job.state.as_str(), job.attempts), ("done", 2));
}

/// An EHR held in memory: searches and reads over a map, failing on demand.
#[derive(Debug, Default)]
struct MemoryEhr {
    resources: Mutex<HashMap<String, Value>>,
    failing: Mutex<bool>,
}

impl MemoryEhr {
    fn put(&self, resource: Value) {
        let key = format!(
            "{}/{}",
            resource["resourceType"].as_str().unwrap(),
            resource["id"].as_str().unwrap()
        );
        self.resources.lock().unwrap().insert(key, resource);
    }
}

#[async_trait]
impl EhrClient for MemoryEhr {
    async fn search(
        &self,
        resource_type: &str,
        patient: &str,
        _since: Option<DateTime<Utc>>,
    ) -> Result<Vec<Value>, EhrError> {
        if *self.failing.lock().unwrap() {
            return Err(EhrError("the FHIR server answered HTTP 503".to_owned()));
        }
        Ok(self
            .resources
            .lock()
            .unwrap()
            .values()
            .filter(|r| r["resourceType"] == resource_type)
            .filter(|r| r["subject"]["reference"] == format!("Patient/{patient}"))
            .cloned()
            .collect())
    }

    async fn read(&self, resource_type: &str, id: &str) -> Result<Option<Value>, EhrError> {
        Ok(self
            .resources
            .lock()
            .unwrap()
            .get(&format!("{resource_type}/{id}"))
            .cloned())
    }
}

fn result(id: &str, patient: &str, status: &str, version: &str) -> Value {
    json!({
        "resourceType": "Observation", "id": id, "status": status,
        "meta": {"versionId": version, "lastUpdated": format!("2026-11-0{version}T10:00:00Z")},
        "category": [{"coding": [{"code": "laboratory"}]}],
        "code": {"text": "Glucose"},
        "subject": {"reference": format!("Patient/{patient}")},
        "valueQuantity": {"value": 101, "unit": "mg/dL"}
    })
}

#[tokio::test]
async fn a_notification_reads_what_it_names_at_once_and_a_deleted_focus_leaves_view() {
    let s = Synced::new().await;
    let ehr = Arc::new(MemoryEhr::default());
    ehr.put(result("r1", "p9", "preliminary", "1"));
    let connection = Synced::connection(ehr.clone());
    s.engine.link(s.clinic.id, s.patient, "p9").await.unwrap();
    s.run_next(&connection).await.unwrap();
    assert!(s.visible().await.is_empty(), "preliminary is not shown");

    ehr.put(result("r1", "p9", "final", "2"));
    let notification = |focus: &str| {
        json!({"resourceType": "Bundle", "type": "history", "entry": [{"resource": {
            "resourceType": "Parameters", "parameter": [
                {"name": "notification-event", "part": [
                    {"name": "focus", "valueReference": {"reference": focus}},
                    {"name": "additional-context", "valueReference": {"reference": "Patient/p9"}}
                ]}
            ]
        }}]})
    };
    let notified = s
        .engine
        .notified(s.clinic.id, &notification("Observation/r1"))
        .await
        .unwrap();
    assert_eq!(notified.queued, 1);
    s.run_next(&connection).await.unwrap();
    assert!(s.visible().await.contains_key("Observation/r1"));

    ehr.resources.lock().unwrap().clear();
    s.engine
        .notified(s.clinic.id, &notification("Observation/r1"))
        .await
        .unwrap();
    s.run_next(&connection).await.unwrap();
    assert!(s.visible().await.is_empty());

    // A notification about a patient nobody here is linked to queues nothing.
    let stranger = json!({"resourceType": "Bundle", "type": "history", "entry": [{"resource": {
        "resourceType": "Parameters", "parameter": [{"name": "notification-event", "part": [
            {"name": "focus", "valueReference": {"reference": "Observation/x"}},
            {"name": "additional-context", "valueReference": {"reference": "Patient/unknown"}}
        ]}]
    }}]});
    let notified = s.engine.notified(s.clinic.id, &stranger).await.unwrap();
    assert_eq!((notified.queued, notified.polled), (0, 0));
    assert!(s.engine.claim(s.clinic.id).await.unwrap().is_none());
}

#[tokio::test]
async fn a_job_is_claimed_by_one_node_only_retried_with_backoff_and_given_up_in_the_end() {
    let s = Synced::new().await;
    let ehr = Arc::new(MemoryEhr::default());
    ehr.put(result("r1", "p9", "final", "1"));
    *ehr.failing.lock().unwrap() = true;
    let connection = Synced::connection(ehr.clone());
    s.engine.link(s.clinic.id, s.patient, "p9").await.unwrap();

    // Two nodes: one claims, the other finds the job leased.
    let other_node = s.platform.sync_engine();
    let job = s.engine.claim(s.clinic.id).await.unwrap().unwrap();
    assert!(other_node.claim(s.clinic.id).await.unwrap().is_none());

    for attempt in 1..=portico_platform::records::sync::MAX_ATTEMPTS {
        let job = if attempt == 1 {
            job.clone()
        } else {
            s.platform.clock.advance(chrono::Duration::minutes(11));
            s.engine.claim(s.clinic.id).await.unwrap().unwrap()
        };
        assert_eq!(job.attempts, attempt);
        assert!(s.engine.run(&job, &connection).await.is_err());
    }
    s.platform.clock.advance(chrono::Duration::hours(1));
    assert!(
        s.engine.claim(s.clinic.id).await.unwrap().is_none(),
        "given up"
    );
    let admin = Principal::Staff {
        tenant: s.clinic.id,
        account: AccountId::from_uuid(uuid::Uuid::from_u128(0xad)),
        role: Role::TenantAdmin,
        session: "a".to_owned(),
    };
    let records = s.platform.records(Arc::new(FixedConnections {
        client: None,
        policy: ReleasePolicy::FinalAtOnce,
    }));
    let overview = records.sync_overview(&admin, s.clinic.id).await.unwrap();
    assert_eq!(overview.failed, 1);
    let backfill = overview.patients[0].backfill.as_ref().unwrap();
    assert_eq!(backfill.state, "failed");
    assert!(backfill.last_error.as_deref().unwrap().contains("503"));

    // A lease that ran out (a node that died mid-job) lets another node take the job.
    *ehr.failing.lock().unwrap() = false;
    s.engine
        .enqueue(s.clinic.id, s.patient, JobKind::Backfill, &[])
        .await
        .unwrap();
    let _abandoned = s.engine.claim(s.clinic.id).await.unwrap().unwrap();
    assert!(other_node.claim(s.clinic.id).await.unwrap().is_none());
    s.platform.clock.advance(chrono::Duration::minutes(2));
    let taken_over = other_node.claim(s.clinic.id).await.unwrap().unwrap();
    other_node.run(&taken_over, &connection).await.unwrap();
    assert!(s.visible().await.contains_key("Observation/r1"));
}
