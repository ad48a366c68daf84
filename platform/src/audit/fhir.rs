//! Audit events as FHIR R4 `AuditEvent` resources, for export to a tenant or an audit
//! record repository.
//!
//! The mapping follows the IHE Basic Audit Log Patterns (BALP) where Portico's events carry
//! what a pattern needs: RESTful interactions are typed `rest` with a `restful-interaction`
//! subtype, the patient is an entity of type Person and role Patient, the record touched
//! is a System Object in the role Domain Resource. Everything in a resource is derived
//! from the event's codes and ids; the only prose is the fixed `display` of a code.
//!
//! No BALP profile is claimed in `meta.profile`: every BALP RESTful profile requires a
//! client and a server agent with network addresses, which Portico does not record, fixes
//! `outcome` to success, and the Query profiles require the raw query, which Portico never
//! stores. A resource that claims a profile it fails is rejected by validating receivers.
// TODO: record the client's and the server's network addresses (and the query, encoded)
// with each event so exports can claim the BALP Read/Query/Create/Update/Delete profiles;
// until then receivers can only check them against the base R4 AuditEvent.

use chrono::SecondsFormat;
use serde_json::{Value, json};

use super::event::{Action, ActorKind, AuditEvent, Outcome, Purpose, hex_bytes};

/// Portico's own action codes, carried in every resource so an export round-trips them.
const PORTICO_ACTION: &str = "urn:portico:audit-action";
/// The extension holding an event's place in its tenant's chain.
const CHAIN_EXTENSION: &str = "urn:portico:audit:chain";

const AUDIT_EVENT_TYPE: &str = "http://terminology.hl7.org/CodeSystem/audit-event-type";
const RESTFUL_INTERACTION: &str = "http://hl7.org/fhir/restful-interaction";
const DICOM: &str = "http://dicom.nema.org/resources/ontology/DCM";
const ACT_REASON: &str = "http://terminology.hl7.org/CodeSystem/v3-ActReason";
const ROLE_CLASS: &str = "http://terminology.hl7.org/CodeSystem/v3-RoleClass";
const SECURITY_ROLE_TYPE: &str = "http://terminology.hl7.org/CodeSystem/extra-security-role-type";
const SECURITY_SOURCE_TYPE: &str = "http://terminology.hl7.org/CodeSystem/security-source-type";
const ENTITY_TYPE: &str = "http://terminology.hl7.org/CodeSystem/audit-entity-type";
const OBJECT_ROLE: &str = "http://terminology.hl7.org/CodeSystem/object-role";
const RESOURCE_TYPES: &str = "http://hl7.org/fhir/resource-types";

/// One FHIR `Coding`: a code from a code system, with the display that system gives it.
#[derive(Debug, Clone, Copy)]
struct Coding {
    system: &'static str,
    code: &'static str,
    display: Option<&'static str>,
}

impl Coding {
    const fn new(system: &'static str, code: &'static str, display: &'static str) -> Self {
        Self {
            system,
            code,
            display: Some(display),
        }
    }

    /// Portico's own code for `action`; the code system defines no displays.
    fn portico(action: Action) -> Self {
        Self {
            system: PORTICO_ACTION,
            code: action.code(),
            display: None,
        }
    }

    fn to_json(self) -> Value {
        match self.display {
            Some(display) => {
                json!({ "system": self.system, "code": self.code, "display": display })
            }
            None => json!({ "system": self.system, "code": self.code }),
        }
    }

    /// The coding as a `CodeableConcept` of one coding.
    fn concept(self) -> Value {
        json!({ "coding": [self.to_json()] })
    }
}

const REST: Coding = Coding::new(AUDIT_EVENT_TYPE, "rest", "RESTful Operation");
const DCM_EXPORT: Coding = Coding::new(DICOM, "110106", "Export");
const DCM_USER_AUTHENTICATION: Coding = Coding::new(DICOM, "110114", "User Authentication");
const DCM_LOGIN: Coding = Coding::new(DICOM, "110122", "Login");
const DCM_LOGOUT: Coding = Coding::new(DICOM, "110123", "Logout");
const DCM_APPLICATION: Coding = Coding::new(DICOM, "110150", "Application");
const APPLICATION_SERVER: Coding = Coding::new(SECURITY_SOURCE_TYPE, "4", "Application Server");
const ENTITY_PERSON: Coding = Coding::new(ENTITY_TYPE, "1", "Person");
const ENTITY_SYSTEM_OBJECT: Coding = Coding::new(ENTITY_TYPE, "2", "System Object");
const ROLE_PATIENT: Coding = Coding::new(OBJECT_ROLE, "1", "Patient");
const ROLE_DOMAIN_RESOURCE: Coding = Coding::new(OBJECT_ROLE, "4", "Domain Resource");

/// The FHIR R4 AuditEvent for one event.
///
/// The id is `<tenant uuid>-<seq>`: opaque, unique across tenants, and free of tenant
/// names or slugs.
pub fn to_fhir(event: &AuditEvent) -> Value {
    let (event_type, subtype) = classify(event.what.action);

    json!({
        "resourceType": "AuditEvent",
        "id": format!("{}-{}", event.tenant, event.seq),
        "extension": [chain_extension(event)],
        "type": event_type.to_json(),
        "subtype": subtype.into_iter().map(Coding::to_json).collect::<Vec<_>>(),
        "action": action_code(event.what.action),
        "recorded": event.at.to_rfc3339_opts(SecondsFormat::Micros, true),
        "outcome": outcome_code(event.what.outcome),
        "purposeOfEvent": [purpose(event.what.purpose).concept()],
        "agent": [agent(event)],
        "source": {
            "observer": { "display": "Portico" },
            "type": [APPLICATION_SERVER.to_json()],
        },
        "entity": entities(event),
    })
}

/// The event's `type` and `subtype` codings. The last subtype is always Portico's own
/// action code, so the exact action survives the trip through FHIR.
fn classify(action: Action) -> (Coding, Vec<Coding>) {
    let interaction = |code| Coding::new(RESTFUL_INTERACTION, code, code);
    let (event_type, mut subtype) = match action {
        Action::Read => (REST, vec![interaction("read")]),
        // Portico searches within one resource type, never across the whole system.
        Action::Search => (REST, vec![interaction("search-type")]),
        Action::Create => (REST, vec![interaction("create")]),
        Action::Update => (REST, vec![interaction("update")]),
        Action::Delete => (REST, vec![interaction("delete")]),
        Action::Export => (DCM_EXPORT, vec![]),
        // A failed sign-in is a Login whose outcome says it failed (DICOM PS3.15 Annex A.5).
        Action::SignIn | Action::SignInFailed => (DCM_USER_AUTHENTICATION, vec![DCM_LOGIN]),
        // A multi-factor step is part of logging in; the Portico code below says which.
        Action::Mfa => (DCM_USER_AUTHENTICATION, vec![DCM_LOGIN]),
        Action::SignOut => (DCM_USER_AUTHENTICATION, vec![DCM_LOGOUT]),
        // No standard event type fits granting, holding back or releasing access.
        Action::Share | Action::Withhold | Action::Release => (Coding::portico(action), vec![]),
    };
    subtype.push(Coding::portico(action));
    (event_type, subtype)
}

/// The R4 `audit-event-action` code.
fn action_code(action: Action) -> &'static str {
    match action {
        Action::Create => "C",
        Action::Read => "R",
        // BALP Query and the R4 AuditEvent notes record a search as Execute, not Read.
        Action::Search => "E",
        Action::Update => "U",
        Action::Delete => "D",
        // DICOM PS3.15 Annex A.5: the Export message's action is Read.
        Action::Export => "R",
        // DICOM PS3.15 Annex A.5: User Authentication events are Execute.
        Action::SignIn | Action::SignInFailed | Action::Mfa | Action::SignOut => "E",
        // These change who may see a record, not what it says: an application function
        // (Execute), not an Update, which would tell an auditor the record's content changed.
        Action::Share | Action::Withhold | Action::Release => "E",
    }
}

/// The R4 `audit-event-outcome` code.
fn outcome_code(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Success => "0",
        // A refusal is an expected answer to a bad request: a minor failure.
        Outcome::Denied => "4",
        // A failure inside Portico left the request undone: a serious failure.
        Outcome::Failed => "8",
    }
}

/// The HL7 v3 `ActReason` (PurposeOfUse) code for `purpose`.
fn purpose(purpose: Purpose) -> Coding {
    let (code, display) = match purpose {
        Purpose::Treatment => ("TREAT", "treatment"),
        Purpose::Payment => ("HPAYMT", "healthcare payment"),
        Purpose::Operations => ("HOPERAT", "healthcare operations"),
        Purpose::PatientRequest => ("PATRQT", "patient requested"),
        Purpose::Legal => ("HLEGAL", "legal"),
        Purpose::System => ("HSYSADMIN", "health system administration"),
    };
    Coding::new(ACT_REASON, code, display)
}

/// The agent's `type`, by what kind of actor it is.
fn agent_type(kind: ActorKind) -> Coding {
    match kind {
        ActorKind::Patient => Coding::new(ROLE_CLASS, "PAT", "patient"),
        // A proxy acts on the patient's behalf (a parent, a caregiver). GUARD would assert a
        // legal guardianship Portico does not know of; AGNT says only "acts for".
        ActorKind::Proxy => Coding::new(ROLE_CLASS, "AGNT", "agent"),
        ActorKind::Staff | ActorKind::Operator | ActorKind::Anonymous => {
            Coding::new(SECURITY_ROLE_TYPE, "humanuser", "human user")
        }
        ActorKind::App => Coding::new(SECURITY_ROLE_TYPE, "dataprocessor", "data processor"),
        ActorKind::System => DCM_APPLICATION,
    }
}

/// The one agent: whoever asked. Identified by kind and id only, never by name.
fn agent(event: &AuditEvent) -> Value {
    let mut agent = json!({
        "type": agent_type(event.what.actor.kind).concept(),
        "who": {
            "identifier": {
                "system": format!("urn:portico:actor:{}", event.what.actor.kind.code()),
                "value": event.what.actor.id.as_str(),
            },
        },
        "requestor": true,
    });
    if let (Some(client), Some(fields)) = (&event.what.client, agent.as_object_mut()) {
        // The session or app the request came through: another identity of the same agent.
        fields.insert("altId".to_owned(), client.as_str().into());
    }
    agent
}

/// The patient, if the record is one patient's, then the record or kind of record touched.
fn entities(event: &AuditEvent) -> Vec<Value> {
    let mut entities = Vec::with_capacity(2);
    if let Some(patient) = event.what.patient {
        entities.push(json!({
            "what": { "reference": format!("Patient/{patient}") },
            "type": ENTITY_PERSON.to_json(),
            "role": ROLE_PATIENT.to_json(),
        }));
    }

    // TODO: Portico's own record kinds (`Account` is a portal login, not FHIR's financial
    // Account) are written as if they were FHIR resource types; a receiver may misread them
    // until they get a Portico code system of their own.
    let resource_type = event.what.resource_type.as_str();
    entities.push(match &event.what.resource_id {
        Some(id) => {
            let id = id.as_str();
            // Some services record a full relative reference (`Observation/lab-1`) as the id.
            let reference = if id.contains('/') {
                id.to_owned()
            } else {
                format!("{resource_type}/{id}")
            };
            json!({
                "what": { "reference": reference },
                "type": ENTITY_SYSTEM_OBJECT.to_json(),
                "role": ROLE_DOMAIN_RESOURCE.to_json(),
            })
        }
        // No one record (a search, a bulk export): name the kind of record, with no `what`
        // and no query text, which could hold search terms about the patient.
        None => json!({
            "type": { "system": RESOURCE_TYPES, "code": resource_type },
            "role": ROLE_DOMAIN_RESOURCE.to_json(),
        }),
    });
    entities
}

/// The event's place in its chain, so an export can be re-verified link by link. FHIR R4
/// has no 64-bit integer type, so the sequence number is a decimal string.
fn chain_extension(event: &AuditEvent) -> Value {
    json!({
        "url": CHAIN_EXTENSION,
        "extension": [
            { "url": "seq", "valueString": event.seq.to_string() },
            { "url": "hash", "valueString": hex_bytes::encode(&event.hash) },
            { "url": "prevHash", "valueString": hex_bytes::encode(&event.prev_hash) },
        ],
    })
}

#[cfg(test)]
mod tests {
    use chrono::DateTime;

    use super::*;
    use crate::audit::event::{Actor, NewEvent};
    use crate::ids::{PatientId, TenantId};

    const TENANT: &str = "01a23cdf-d215-73c9-b312-0ca8e43e8f19";
    const PATIENT: &str = "01a23cdf-d215-73c9-b312-0ca8e43e8f77";

    /// A coding as (system, code).
    type Code<'a> = (&'a str, &'a str);

    fn patient() -> PatientId {
        PATIENT.parse().unwrap()
    }

    fn new_event(kind: ActorKind, action: Action) -> NewEvent {
        NewEvent::new(
            Actor::new(kind, "act-7").unwrap(),
            action,
            "Observation",
            Purpose::Treatment,
        )
        .unwrap()
    }

    /// What the trail would store for `new` at sequence 42.
    fn stored(new: NewEvent) -> AuditEvent {
        AuditEvent {
            tenant: TENANT.parse::<TenantId>().unwrap(),
            seq: 42,
            at: DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap(),
            what: new,
            prev_hash: [0xab; 32],
            hash: [0xcd; 32],
        }
    }

    fn staff_reads(id: &str) -> AuditEvent {
        stored(
            new_event(ActorKind::Staff, Action::Read)
                .resource(id)
                .unwrap()
                .patient(patient())
                .client("ses-9")
                .unwrap(),
        )
    }

    fn codes(codings: &Value) -> Vec<Code<'_>> {
        codings
            .as_array()
            .unwrap()
            .iter()
            .map(|c| (c["system"].as_str().unwrap(), c["code"].as_str().unwrap()))
            .collect()
    }

    /// Every string in `value`, with the name of the field holding it.
    fn strings<'a>(value: &'a Value, field: &'a str, out: &mut Vec<(&'a str, &'a str)>) {
        match value {
            Value::String(s) => out.push((field, s)),
            Value::Array(items) => items.iter().for_each(|v| strings(v, field, out)),
            Value::Object(fields) => fields.iter().for_each(|(k, v)| strings(v, k, out)),
            _ => {}
        }
    }

    #[test]
    fn every_action_and_actor_kind_has_the_required_r4_elements() {
        for action in Action::ALL {
            for kind in ActorKind::ALL {
                let fhir = to_fhir(&stored(new_event(*kind, *action)));
                let at = format!("{action:?} by {kind:?}");

                assert_eq!(fhir["resourceType"], "AuditEvent", "{at}");
                assert!(fhir["type"]["system"].is_string(), "{at}");
                assert!(fhir["type"]["code"].is_string(), "{at}");
                assert!(fhir["recorded"].is_string(), "{at}");
                let agents = fhir["agent"].as_array().unwrap();
                assert_eq!(agents.len(), 1, "{at}");
                assert_eq!(agents[0]["requestor"], true, "{at}");
                assert_eq!(agents[0]["type"]["coding"].as_array().unwrap().len(), 1);
                assert_eq!(fhir["source"]["observer"]["display"], "Portico", "{at}");
                assert_eq!(
                    codes(&fhir["source"]["type"]),
                    [(SECURITY_SOURCE_TYPE, "4")],
                    "{at}"
                );
                assert!(
                    ["C", "R", "U", "D", "E"].contains(&fhir["action"].as_str().unwrap()),
                    "{at}"
                );
            }
        }
    }

    #[test]
    fn each_action_has_its_type_subtype_and_action_code() {
        use Action::*;
        let cases: [(Action, &str, Code<'_>, &[Code<'_>]); 13] = [
            (
                Read,
                "R",
                (AUDIT_EVENT_TYPE, "rest"),
                &[(RESTFUL_INTERACTION, "read")],
            ),
            (
                Search,
                "E",
                (AUDIT_EVENT_TYPE, "rest"),
                &[(RESTFUL_INTERACTION, "search-type")],
            ),
            (
                Create,
                "C",
                (AUDIT_EVENT_TYPE, "rest"),
                &[(RESTFUL_INTERACTION, "create")],
            ),
            (
                Update,
                "U",
                (AUDIT_EVENT_TYPE, "rest"),
                &[(RESTFUL_INTERACTION, "update")],
            ),
            (
                Delete,
                "D",
                (AUDIT_EVENT_TYPE, "rest"),
                &[(RESTFUL_INTERACTION, "delete")],
            ),
            (Export, "R", (DICOM, "110106"), &[]),
            (SignIn, "E", (DICOM, "110114"), &[(DICOM, "110122")]),
            (SignInFailed, "E", (DICOM, "110114"), &[(DICOM, "110122")]),
            (Mfa, "E", (DICOM, "110114"), &[(DICOM, "110122")]),
            (SignOut, "E", (DICOM, "110114"), &[(DICOM, "110123")]),
            (Share, "E", (PORTICO_ACTION, "share"), &[]),
            (Withhold, "E", (PORTICO_ACTION, "withhold"), &[]),
            (Release, "E", (PORTICO_ACTION, "release"), &[]),
        ];
        assert_eq!(cases.len(), Action::ALL.len());

        for (action, action_code, event_type, standard_subtypes) in cases {
            let fhir = to_fhir(&stored(new_event(ActorKind::Patient, action)));
            let mut subtypes = standard_subtypes.to_vec();
            subtypes.push((PORTICO_ACTION, action.code()));

            assert_eq!(fhir["action"], action_code, "{action:?}");
            assert_eq!(
                (
                    fhir["type"]["system"].as_str().unwrap(),
                    fhir["type"]["code"].as_str().unwrap()
                ),
                event_type,
                "{action:?}"
            );
            assert_eq!(codes(&fhir["subtype"]), subtypes, "{action:?}");
        }
    }

    #[test]
    fn the_portico_action_code_round_trips_through_the_subtype() {
        for action in Action::ALL {
            let fhir = to_fhir(&stored(new_event(ActorKind::Staff, *action)));
            let portico: Vec<_> = codes(&fhir["subtype"])
                .into_iter()
                .filter(|(system, _)| *system == PORTICO_ACTION)
                .collect();

            assert_eq!(portico.len(), 1, "{action:?}");
            assert_eq!(Action::from_code(portico[0].1), Ok(*action));
        }
    }

    #[test]
    fn outcomes_are_success_minor_failure_and_serious_failure() {
        for (outcome, code) in [
            (Outcome::Success, "0"),
            (Outcome::Denied, "4"),
            (Outcome::Failed, "8"),
        ] {
            let event = new_event(ActorKind::Patient, Action::SignInFailed).outcome(outcome);
            assert_eq!(to_fhir(&stored(event))["outcome"], code, "{outcome:?}");
        }
    }

    #[test]
    fn purposes_are_v3_act_reason_codes() {
        for (purpose, code) in [
            (Purpose::Treatment, "TREAT"),
            (Purpose::Payment, "HPAYMT"),
            (Purpose::Operations, "HOPERAT"),
            (Purpose::PatientRequest, "PATRQT"),
            (Purpose::Legal, "HLEGAL"),
            (Purpose::System, "HSYSADMIN"),
        ] {
            let event = NewEvent {
                purpose,
                ..new_event(ActorKind::Staff, Action::Read)
            };
            let fhir = to_fhir(&stored(event));

            assert_eq!(fhir["purposeOfEvent"].as_array().unwrap().len(), 1);
            assert_eq!(
                codes(&fhir["purposeOfEvent"][0]["coding"]),
                [(ACT_REASON, code)],
                "{purpose:?}"
            );
        }
    }

    #[test]
    fn the_agent_is_typed_by_kind_and_identified_by_kind_and_id() {
        for (kind, agent_type) in [
            (ActorKind::Patient, (ROLE_CLASS, "PAT")),
            (ActorKind::Proxy, (ROLE_CLASS, "AGNT")),
            (ActorKind::Staff, (SECURITY_ROLE_TYPE, "humanuser")),
            (ActorKind::App, (SECURITY_ROLE_TYPE, "dataprocessor")),
            (ActorKind::System, (DICOM, "110150")),
            (ActorKind::Operator, (SECURITY_ROLE_TYPE, "humanuser")),
        ] {
            let agent = &to_fhir(&stored(new_event(kind, Action::Read)))["agent"][0];

            assert_eq!(codes(&agent["type"]["coding"]), [agent_type], "{kind:?}");
            assert_eq!(
                agent["who"],
                json!({ "identifier": {
                    "system": format!("urn:portico:actor:{}", kind.code()),
                    "value": "act-7",
                }}),
                "{kind:?}"
            );
            assert!(agent.get("name").is_none() && agent["who"].get("display").is_none());
        }
    }

    #[test]
    fn the_client_is_the_agents_alt_id_when_there_is_one() {
        let with = to_fhir(&staff_reads("obs-1"));
        let without = to_fhir(&stored(new_event(ActorKind::Staff, Action::Read)));

        assert_eq!(with["agent"][0]["altId"], "ses-9");
        assert!(without["agent"][0].get("altId").is_none());
    }

    #[test]
    fn id_time_and_chain_position_come_from_the_event() {
        let fhir = to_fhir(&staff_reads("obs-1"));

        assert_eq!(fhir["id"], format!("{TENANT}-42"));
        assert_eq!(fhir["recorded"], "2023-11-14T22:13:20.123456Z");
        assert_eq!(
            fhir["extension"],
            json!([{
                "url": "urn:portico:audit:chain",
                "extension": [
                    { "url": "seq", "valueString": "42" },
                    { "url": "hash", "valueString": "cd".repeat(32) },
                    { "url": "prevHash", "valueString": "ab".repeat(32) },
                ],
            }])
        );
    }

    #[test]
    fn the_patient_is_a_person_entity_in_the_patient_role() {
        let fhir = to_fhir(&staff_reads("obs-1"));

        assert_eq!(
            fhir["entity"][0],
            json!({
                "what": { "reference": format!("Patient/{PATIENT}") },
                "type": { "system": ENTITY_TYPE, "code": "1", "display": "Person" },
                "role": { "system": OBJECT_ROLE, "code": "1", "display": "Patient" },
            })
        );
        assert_eq!(fhir["entity"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn without_a_patient_there_is_no_patient_entity() {
        let fhir = to_fhir(&stored(new_event(ActorKind::System, Action::Search)));
        let entities = fhir["entity"].as_array().unwrap();

        assert_eq!(entities.len(), 1);
        assert_ne!(entities[0]["role"]["code"], "1");
    }

    #[test]
    fn the_record_touched_is_a_reference_to_a_domain_resource() {
        let entity = &to_fhir(&staff_reads("obs-1"))["entity"][1];

        assert_eq!(entity["what"], json!({ "reference": "Observation/obs-1" }));
        assert_eq!(codes(&json!([entity["type"]])), [(ENTITY_TYPE, "2")]);
        assert_eq!(codes(&json!([entity["role"]])), [(OBJECT_ROLE, "4")]);
    }

    #[test]
    fn a_resource_id_that_is_already_a_reference_is_kept_as_it_is() {
        let entity = &to_fhir(&staff_reads("DiagnosticReport/rep-3"))["entity"][1];

        assert_eq!(entity["what"]["reference"], "DiagnosticReport/rep-3");
    }

    #[test]
    fn a_search_without_an_id_names_only_the_resource_type() {
        let event = new_event(ActorKind::Patient, Action::Search).patient(patient());
        let entity = &to_fhir(&stored(event))["entity"][1];

        assert_eq!(
            *entity,
            json!({
                "type": { "system": RESOURCE_TYPES, "code": "Observation" },
                "role": { "system": OBJECT_ROLE, "code": "4", "display": "Domain Resource" },
            })
        );
    }

    #[test]
    fn no_value_is_free_text_and_each_id_stays_in_its_field() {
        let fhir = to_fhir(&staff_reads("obs-123"));
        let mut found = Vec::new();
        strings(&fhir, "", &mut found);

        for (field, text) in &found {
            if text.contains(char::is_whitespace) {
                assert_eq!(*field, "display", "{text:?} is not a fixed display");
            }
            if *field == "display" {
                for token in ["act-7", "obs-123", "ses-9", PATIENT, TENANT] {
                    assert!(!text.contains(token), "{token} in display {text:?}");
                }
            }
        }
        let fields_holding = |token: &str| -> Vec<&str> {
            found
                .iter()
                .filter(|(_, text)| text.contains(token))
                .map(|(field, _)| *field)
                .collect()
        };
        assert_eq!(fields_holding("obs-123"), ["reference"]);
        assert_eq!(fields_holding(PATIENT), ["reference"]);
        assert_eq!(fields_holding("act-7"), ["value"]);
        assert_eq!(fields_holding("ses-9"), ["altId"]);
        assert_eq!(fields_holding(TENANT), ["id"]);
    }

    #[test]
    fn no_balp_profile_is_claimed() {
        // See the module documentation: Portico's events lack what the profiles require.
        for action in Action::ALL {
            let fhir = to_fhir(&stored(new_event(ActorKind::Staff, *action)));
            assert!(fhir.get("meta").is_none(), "{action:?}");
        }
    }
}
