//! The record store, the release policy and withholding, against a real database; and
//! every clinical example of the official HL7 R4 examples package stored and read back.

use std::sync::Arc;

use chrono::Duration;
use portico_platform::audit::{Action, AuditTrail};
use portico_platform::clock::Clock;
use portico_platform::identity::role::Role;
use portico_platform::ids::{AccountId, PatientId, RecordId};
use portico_platform::principal::Principal;
use portico_platform::records::service::Filter;
use portico_platform::records::{
    Category, Exception, RecordError, RecordStore, Records, ReleasePolicy,
};
use portico_tenants::Tenant;
use serde_json::{Value, json};

use crate::fixture::{FixedConnections, Platform};

struct Fixture {
    platform: Platform,
    clinic: Tenant,
    store: RecordStore,
    patient: PatientId,
}

const EHR_PATIENT: &str = "ehr-p1";

async fn fixture() -> Fixture {
    let platform = Platform::new(Default::default()).await;
    let clinic = platform.tenant("sunrise").await;
    let store = platform.record_store();
    Fixture {
        store,
        clinic,
        platform,
        patient: PatientId::from_uuid(uuid::Uuid::from_u128(0x51)),
    }
}

impl Fixture {
    fn records(&self, policy: ReleasePolicy) -> Records {
        self.platform.records(Arc::new(FixedConnections {
            client: None,
            policy,
        }))
    }

    fn me(&self) -> Principal {
        Principal::Patient {
            tenant: self.clinic.id,
            account: AccountId::from_uuid(uuid::Uuid::from_u128(0xa1)),
            patient: self.patient,
            session: "s1".to_owned(),
        }
    }

    fn staff(&self, role: Role) -> Principal {
        Principal::Staff {
            tenant: self.clinic.id,
            account: AccountId::from_uuid(uuid::Uuid::from_u128(0xb1)),
            role,
            session: "s2".to_owned(),
        }
    }

    async fn store(&self, resources: &[Value]) -> portico_platform::records::store::Outcome {
        self.store
            .store(self.clinic.id, self.patient, EHR_PATIENT, resources, None)
            .await
            .unwrap()
    }

    async fn visible(
        &self,
        policy: ReleasePolicy,
    ) -> Vec<portico_platform::records::service::Item> {
        self.records(policy)
            .list(&self.me(), &Filter::default(), 200, None)
            .await
            .unwrap()
            .items
    }
}

fn lab(id: &str, status: &str, version: &str, updated: &str) -> Value {
    json!({
        "resourceType": "Observation",
        "id": id,
        "meta": {"versionId": version, "lastUpdated": updated},
        "status": status,
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "2345-7", "display": "Glucose"}]},
        "subject": {"reference": format!("Patient/{EHR_PATIENT}")},
        "effectiveDateTime": "2026-11-01T08:00:00Z",
        "valueQuantity": {"value": 104, "unit": "mg/dL"},
        "referenceRange": [{"low": {"value": 70}, "high": {"value": 99}}],
        "vendorExtension": {"kept": ["exactly", "as", "sent"]}
    })
}

#[tokio::test]
async fn a_final_result_is_visible_the_moment_it_is_stored_and_a_preliminary_one_only_by_choice() {
    let f = fixture().await;
    let outcome = f
        .store(&[
            lab("final-1", "final", "1", "2026-11-02T09:00:00Z"),
            lab("prelim-1", "preliminary", "1", "2026-11-02T09:00:00Z"),
        ])
        .await;
    assert_eq!((outcome.stored, outcome.released), (2, 1));

    let shown = f.visible(ReleasePolicy::FinalAtOnce).await;
    assert_eq!(shown.len(), 1);
    let item = &shown[0];
    assert_eq!(item.resource["id"], "final-1");
    assert!(!item.preliminary);
    // Released in the transaction that stored it, at the clock's now.
    assert_eq!(item.released_at, Some(f.platform.clock.now()));
    assert_eq!(
        item.finalized_at,
        portico_platform::records::classify::parse_datetime("2026-11-02T09:00:00Z")
    );
    // Unknown elements are kept, whole.
    assert_eq!(item.resource["vendorExtension"]["kept"][2], "sent");

    let with_preliminary = f.visible(ReleasePolicy::FinalAndPreliminary).await;
    assert_eq!(with_preliminary.len(), 2);
    assert!(
        with_preliminary
            .iter()
            .any(|i| i.preliminary && i.resource["id"] == "prelim-1")
    );

    // The preliminary one turns final: released then, not before.
    f.platform.clock.advance(Duration::minutes(10));
    let outcome = f
        .store(&[lab("prelim-1", "final", "2", "2026-11-02T09:10:00Z")])
        .await;
    assert_eq!((outcome.stored, outcome.released), (1, 1));
    let shown = f.visible(ReleasePolicy::FinalAtOnce).await;
    assert_eq!(shown.len(), 2);
    let now_final = shown
        .iter()
        .find(|i| i.resource["id"] == "prelim-1")
        .unwrap();
    assert_eq!(now_final.released_at, Some(f.platform.clock.now()));
}

#[tokio::test]
async fn storing_is_idempotent_newer_versions_replace_and_older_ones_are_ignored() {
    let f = fixture().await;
    let first = [
        lab("o1", "final", "1", "2026-11-02T09:00:00Z"),
        lab("o2", "final", "1", "2026-11-02T09:00:00Z"),
    ];
    assert_eq!(f.store(&first).await.stored, 2);
    let again = f.store(&first).await;
    assert_eq!((again.stored, again.unchanged), (0, 2));

    let mut amended = lab("o1", "amended", "2", "2026-11-03T09:00:00Z");
    amended["valueQuantity"]["value"] = json!(98);
    assert_eq!(f.store(&[amended]).await.stored, 1);
    // A late copy of version 1 (a page fetched before the push) changes nothing.
    let late = f
        .store(&[lab("o1", "final", "1", "2026-11-02T09:00:00Z")])
        .await;
    assert_eq!((late.stored, late.unchanged), (0, 1));

    let shown = f.visible(ReleasePolicy::FinalAtOnce).await;
    assert_eq!(shown.len(), 2, "nothing duplicated");
    let o1 = shown.iter().find(|i| i.resource["id"] == "o1").unwrap();
    assert_eq!(
        (o1.status.as_str(), &o1.resource["valueQuantity"]["value"]),
        ("amended", &json!(98))
    );
}

#[tokio::test]
async fn entered_in_error_removes_an_item_from_view() {
    let f = fixture().await;
    f.store(&[lab("o1", "final", "1", "2026-11-02T09:00:00Z")])
        .await;
    assert_eq!(f.visible(ReleasePolicy::FinalAtOnce).await.len(), 1);
    f.store(&[lab("o1", "entered-in-error", "2", "2026-11-02T10:00:00Z")])
        .await;
    assert!(
        f.visible(ReleasePolicy::FinalAndPreliminary)
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn a_malformed_resource_is_recorded_and_the_rest_are_stored() {
    let f = fixture().await;
    let mut other = lab("o3", "final", "1", "2026-11-02T09:00:00Z");
    other["subject"]["reference"] = json!("Patient/someone-else");
    let outcome = f
        .store(&[
            lab("o1", "final", "1", "2026-11-02T09:00:00Z"),
            json!({"id": "no-type"}),
            json!({"resourceType": "Observation", "id": "not/an/id"}),
            other,
            json!("not even an object"),
        ])
        .await;
    assert_eq!((outcome.stored, outcome.errors), (1, 4));
    assert_eq!(f.visible(ReleasePolicy::FinalAtOnce).await.len(), 1);
    let overview = f
        .records(ReleasePolicy::FinalAtOnce)
        .sync_overview(&f.staff(Role::TenantAdmin), f.clinic.id)
        .await
        .unwrap();
    assert_eq!(overview.errors, 4);
}

#[tokio::test]
async fn pages_filters_and_categories_cover_every_item_once() {
    let f = fixture().await;
    let mut resources: Vec<Value> = (0..7)
        .map(|n| {
            let mut o = lab(&format!("o{n}"), "final", "1", "2026-11-02T09:00:00Z");
            o["effectiveDateTime"] = json!(format!("2026-10-0{}T08:00:00Z", n + 1));
            o
        })
        .collect();
    resources.push(json!({
        "resourceType": "Condition", "id": "c1",
        "clinicalStatus": {"coding": [{"code": "active"}]},
        "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "E11.9"}], "text": "Type 2 diabetes"},
        "subject": {"reference": format!("Patient/{EHR_PATIENT}")},
        "recordedDate": "2025-01-01"
    }));
    f.store(&resources).await;
    let records = f.records(ReleasePolicy::FinalAtOnce);
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = records
            .list(&f.me(), &Filter::default(), 3, after.as_deref())
            .await
            .unwrap();
        assert!(page.items.len() <= 3);
        seen.extend(
            page.items
                .iter()
                .map(|i| i.resource["id"].as_str().unwrap().to_owned()),
        );
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(seen.len(), 8);
    assert_eq!(seen[0], "o6", "newest first");
    assert_eq!(seen[7], "c1");

    let problems = Filter {
        category: Some(Category::Problem),
        ..Filter::default()
    };
    let page = records.list(&f.me(), &problems, 50, None).await.unwrap();
    assert_eq!(page.items.len(), 1);
    let october = Filter {
        from: portico_platform::records::classify::parse_datetime("2026-10-03"),
        to: portico_platform::records::classify::parse_datetime("2026-10-05"),
        ..Filter::default()
    };
    let page = records.list(&f.me(), &october, 50, None).await.unwrap();
    assert_eq!(page.items.len(), 2);

    assert!(matches!(
        records
            .list(&f.me(), &Filter::default(), 3, Some("forged"))
            .await,
        Err(RecordError::Invalid(_))
    ));
    let trends = records.lab_trends(&f.me()).await.unwrap();
    assert_eq!(trends.len(), 1);
    assert_eq!(trends[0].points.len(), 7);
    assert_eq!(trends[0].points[0].reading.flag.as_deref(), Some("H"));
}

#[tokio::test]
async fn reads_are_audited_and_only_the_patient_reads_their_record() {
    let f = fixture().await;
    f.store(&[lab("o1", "final", "1", "2026-11-02T09:00:00Z")])
        .await;
    let records = f.records(ReleasePolicy::FinalAtOnce);
    let first = records
        .list(&f.me(), &Filter::default(), 10, None)
        .await
        .unwrap();
    assert_eq!(first.items[0].first_viewed_at, None);
    f.platform.clock.advance(Duration::minutes(5));
    let again = records
        .list(&f.me(), &Filter::default(), 10, None)
        .await
        .unwrap();
    assert_eq!(
        again.items[0].first_viewed_at,
        Some(f.platform.clock.now() - Duration::minutes(5)),
        "the first view is kept, not moved"
    );
    let trail = AuditTrail::new(f.platform.db.clone(), Arc::new(f.platform.clock.clone()));
    let log = trail.access_log(&f.me(), 50, None).await.unwrap();
    assert!(
        log.entries
            .iter()
            .any(|e| e.action == Action::Search && e.resource_type == "Observation"),
        "{log:?}"
    );
    for stranger in [f.staff(Role::Nurse), Principal::Operator, Principal::System] {
        assert!(matches!(
            records.list(&stranger, &Filter::default(), 10, None).await,
            Err(RecordError::Forbidden)
        ));
    }
}

#[tokio::test]
async fn withholding_needs_an_exception_a_reason_and_an_end_and_is_audited_and_listed() {
    let f = fixture().await;
    f.store(&[lab("o1", "final", "1", "2026-11-02T09:00:00Z")])
        .await;
    let records = f.records(ReleasePolicy::FinalAtOnce);
    let item: RecordId = f.visible(ReleasePolicy::FinalAtOnce).await[0].id;
    let now = f.platform.clock.now();
    let week = now + Duration::days(7);
    let reason = "Discussing a new cancer diagnosis in person first, per the patient's oncologist.";

    // Only a provider or the clinic's admin; never the patient, never a nurse.
    for who in [f.me(), f.staff(Role::Nurse), f.staff(Role::FrontDesk)] {
        assert!(matches!(
            records
                .withhold(&who, item, Exception::PreventingHarm, reason, week)
                .await,
            Err(RecordError::Forbidden)
        ));
    }
    let provider = f.staff(Role::Provider);
    for (why, until) in [
        ("", week),
        ("too short", week),
        (reason, now - Duration::hours(1)),
        (reason, now + Duration::days(400)),
    ] {
        assert!(matches!(
            records
                .withhold(&provider, item, Exception::PreventingHarm, why, until)
                .await,
            Err(RecordError::Invalid(_))
        ));
    }
    let held = records
        .withhold(&provider, item, Exception::PreventingHarm, reason, week)
        .await
        .unwrap();
    assert!(f.visible(ReleasePolicy::FinalAtOnce).await.is_empty());
    assert!(matches!(
        records.item(&f.me(), item).await,
        Err(RecordError::NotFound)
    ));
    assert!(matches!(
        records
            .withhold(&provider, item, Exception::Privacy, reason, week)
            .await,
        Err(RecordError::Invalid(_))
    ));

    let list = records
        .withholdings(&f.staff(Role::TenantAdmin))
        .await
        .unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(
        (list[0].exception, list[0].reason.as_str()),
        (Exception::PreventingHarm, reason)
    );
    assert!(matches!(
        records.withholdings(&provider).await,
        Err(RecordError::Forbidden)
    ));

    records.release(&provider, held).await.unwrap();
    assert_eq!(f.visible(ReleasePolicy::FinalAtOnce).await.len(), 1);
    let list = records
        .withholdings(&f.staff(Role::TenantAdmin))
        .await
        .unwrap();
    assert!(list[0].released_at.is_some());

    let trail = AuditTrail::new(f.platform.db.clone(), Arc::new(f.platform.clock.clone()));
    let actions: Vec<Action> = trail
        .events(f.clinic.id, 1, 1000)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.what.action)
        .collect();
    assert!(actions.contains(&Action::Withhold) && actions.contains(&Action::Release));

    // A withholding lapses at its end date.
    records
        .withhold(&provider, item, Exception::Privacy, reason, week)
        .await
        .unwrap();
    assert!(f.visible(ReleasePolicy::FinalAtOnce).await.is_empty());
    f.platform.clock.advance(Duration::days(8));
    assert_eq!(f.visible(ReleasePolicy::FinalAtOnce).await.len(), 1);
}

/// Resource types of the examples package that are not about a patient's care: definitions,
/// terminology, conformance and infrastructure.
const NOT_CLINICAL: &[&str] = &[
    "ActivityDefinition",
    "Bundle",
    "CapabilityStatement",
    "ChargeItemDefinition",
    "CodeSystem",
    "CompartmentDefinition",
    "ConceptMap",
    "EffectEvidenceSynthesis",
    "EventDefinition",
    "Evidence",
    "EvidenceVariable",
    "ExampleScenario",
    "GraphDefinition",
    "ImplementationGuide",
    "Library",
    "Measure",
    "MessageDefinition",
    "NamingSystem",
    "ObservationDefinition",
    "OperationDefinition",
    "PlanDefinition",
    "Questionnaire",
    "ResearchDefinition",
    "ResearchElementDefinition",
    "RiskEvidenceSynthesis",
    "SearchParameter",
    "SpecimenDefinition",
    "StructureDefinition",
    "StructureMap",
    "SubstanceSpecification",
    "TerminologyCapabilities",
    "TestScript",
    "ValueSet",
];

#[tokio::test]
async fn every_clinical_example_of_the_hl7_r4_package_is_stored_and_read_back_whole() {
    let dir = std::env::var("TEST_FHIR_EXAMPLES").unwrap_or_else(|_| {
        panic!("TEST_FHIR_EXAMPLES is not set: ./tests/run unpacks hl7.fhir.r4.examples there")
    });
    let mut examples: Vec<Value> = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !name.ends_with(".json") || name == "package.json" || name.starts_with("ig-") {
            continue;
        }
        let resource: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let kind = resource["resourceType"].as_str().unwrap_or_default();
        if !NOT_CLINICAL.contains(&kind) {
            examples.push(resource);
        }
    }
    assert!(
        examples.len() > 500,
        "only {} examples in {dir}",
        examples.len()
    );

    // Stored as the EHR would send them: each patient's resources under that patient.
    let f = fixture().await;
    let mut by_patient: std::collections::BTreeMap<String, Vec<Value>> = Default::default();
    for example in &examples {
        let patient = portico_platform::records::classify::classify(example)
            .ok()
            .and_then(|item| item.patient)
            .unwrap_or_else(|| "unattached".to_owned());
        by_patient.entry(patient).or_default().push(example.clone());
    }
    let (mut stored, mut errors) = (0, 0);
    let mut patients = Vec::new();
    for (n, (ehr_patient, resources)) in by_patient.iter().enumerate() {
        let patient = PatientId::from_uuid(uuid::Uuid::from_u128(0x1000 + n as u128));
        let outcome = f
            .store
            .store(f.clinic.id, patient, ehr_patient, resources, None)
            .await
            .unwrap();
        stored += outcome.stored;
        errors += outcome.errors;
        patients.push((patient, resources));
    }
    // Every example either stored or recorded as an error; the errors are only the few
    // examples without a usable id, and the same id used twice across patients.
    assert_eq!(stored + errors, examples.len());
    assert!(
        errors * 50 < examples.len(),
        "{errors} of {} refused",
        examples.len()
    );

    // Read back, every visible one equals what was sent, byte for byte as JSON.
    let records = f.records(ReleasePolicy::FinalAndPreliminary);
    let mut read_back = 0;
    for (patient, resources) in &patients {
        let me = Principal::Patient {
            tenant: f.clinic.id,
            account: AccountId::from_uuid(uuid::Uuid::from_u128(0xa1)),
            patient: *patient,
            session: "s1".to_owned(),
        };
        let mut after = None;
        loop {
            let page = records
                .list(&me, &Filter::default(), 200, after.as_deref())
                .await
                .unwrap();
            for item in &page.items {
                assert!(
                    resources.contains(&item.resource),
                    "{} {} changed in the store",
                    item.resource_type,
                    item.resource["id"]
                );
                read_back += 1;
            }
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
    }
    assert!(
        read_back * 10 > stored * 8,
        "{read_back} of {stored} visible"
    );
}

#[tokio::test]
async fn the_whole_record_downloads_as_one_bundle_with_what_the_patient_sees() {
    let f = fixture().await;
    f.store(&[
        lab("o1", "final", "1", "2026-11-02T09:00:00Z"),
        lab("o2", "preliminary", "1", "2026-11-02T09:00:00Z"),
        json!({"resourceType": "DocumentReference", "id": "n1", "status": "current",
               "subject": {"reference": format!("Patient/{EHR_PATIENT}")},
               "content": [{"attachment": {"contentType": "text/plain", "url": "Binary/b1"}}]}),
        json!({"resourceType": "Binary", "id": "b1", "contentType": "text/plain", "data": "aGVsbG8="}),
    ])
    .await;
    let records = f.records(ReleasePolicy::FinalAtOnce);
    let bundle = records.export(&f.me()).await.unwrap();
    assert_eq!(
        (&bundle["resourceType"], &bundle["type"]),
        (&json!("Bundle"), &json!("collection"))
    );
    let mut ids: Vec<&str> = bundle["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["resource"]["id"].as_str().unwrap())
        .collect();
    ids.sort_unstable();
    assert_eq!(
        ids,
        ["b1", "n1", "o1"],
        "the attachment is in, the preliminary result is not"
    );

    let trail = AuditTrail::new(f.platform.db.clone(), Arc::new(f.platform.clock.clone()));
    let log = trail.access_log(&f.me(), 50, None).await.unwrap();
    assert!(log.entries.iter().any(|e| e.action == Action::Export));
    assert!(matches!(
        records.export(&f.staff(Role::Provider)).await,
        Err(RecordError::Forbidden)
    ));
}
