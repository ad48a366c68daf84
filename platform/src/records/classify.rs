//! Reading one FHIR R4 resource the way the record store needs it: which category of the
//! record it belongs to, whether it may be shown now, its dates and whose it is.
//!
//! Reading is tolerant, as EHRs are not uniform: an unknown element is simply kept in the
//! stored JSON, a missing date falls back to the next best one, and an unknown status is
//! released rather than held (holding back is the exception the law allows, not the
//! default). Only what cannot be stored at all — no type, no usable id — is a
//! [`Problem`], recorded per resource without failing the rest of a sync.

use chrono::{DateTime, NaiveDate, NaiveTime, TimeZone, Utc};
use serde_json::Value;

/// The parts of the record a patient browses, as the portal groups them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Category {
    /// Clinical notes and discharge summaries (`DocumentReference`).
    Note,
    /// A note's attachment (`Binary`), shown with its note, not listed on its own.
    Attachment,
    /// Lab results and lab reports.
    Lab,
    /// Vital signs.
    Vital,
    /// Prescriptions and medications taken.
    Medication,
    /// Allergies and adverse reactions.
    Allergy,
    /// Immunizations.
    Immunization,
    /// Problems and diagnoses.
    Problem,
    /// Care plans and goals.
    CarePlan,
    /// Appointments and visits.
    Visit,
    /// Imaging and pathology reports and imaging studies.
    Imaging,
    /// Procedures.
    Procedure,
    /// Claims, explanations of benefit and coverage.
    Billing,
    /// Anything else the EHR holds about the patient: still theirs, still shown.
    Other,
}

impl Category {
    /// Every category.
    pub const ALL: [Self; 14] = [
        Self::Note,
        Self::Attachment,
        Self::Lab,
        Self::Vital,
        Self::Medication,
        Self::Allergy,
        Self::Immunization,
        Self::Problem,
        Self::CarePlan,
        Self::Visit,
        Self::Imaging,
        Self::Procedure,
        Self::Billing,
        Self::Other,
    ];

    /// The stored code.
    pub fn code(self) -> &'static str {
        match self {
            Self::Note => "note",
            Self::Attachment => "attachment",
            Self::Lab => "lab",
            Self::Vital => "vital",
            Self::Medication => "medication",
            Self::Allergy => "allergy",
            Self::Immunization => "immunization",
            Self::Problem => "problem",
            Self::CarePlan => "care_plan",
            Self::Visit => "visit",
            Self::Imaging => "imaging",
            Self::Procedure => "procedure",
            Self::Billing => "billing",
            Self::Other => "other",
        }
    }

    /// Reads a stored code.
    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|category| category.code() == code)
    }
}

/// Whether an item may be shown, by its EHR status alone (withholding is separate).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Release {
    /// Final (or amended, corrected, appended), or a kind of record with no draft state:
    /// visible the moment it is stored.
    Released,
    /// Not yet final: shown only where the clinic chose to show preliminary results,
    /// labelled as such.
    Preliminary,
    /// Entered in error, or deleted in the EHR: removed from view.
    Hidden,
}

impl Release {
    /// The stored code.
    pub fn code(self) -> &'static str {
        match self {
            Self::Released => "released",
            Self::Preliminary => "preliminary",
            Self::Hidden => "hidden",
        }
    }
}

/// What a resource is, for storing it.
#[derive(Debug, Clone, PartialEq)]
pub struct Classified {
    /// Its FHIR type.
    pub resource_type: String,
    /// Its FHIR id on the EHR.
    pub fhir_id: String,
    /// Its version: `meta.versionId`, else `meta.lastUpdated`, else a digest of the JSON.
    pub version: String,
    /// Where in the record it belongs.
    pub category: Category,
    /// Its status as the EHR gives it (`final`, `active`, …), or `unknown`.
    pub status: String,
    /// Whether it may be shown by its status.
    pub release: Release,
    /// The clinically relevant date (taken, given, written, started…), if it has one.
    pub effective_at: Option<DateTime<Utc>>,
    /// When the EHR last changed it (`meta.lastUpdated`).
    pub updated_at: Option<DateTime<Utc>>,
    /// When the EHR made this version available (`issued`), where the type says.
    pub issued_at: Option<DateTime<Utc>>,
    /// The patient it names (`Patient/<id>` → `<id>`), if it names one.
    pub patient: Option<String>,
}

/// Why a resource cannot be stored. Names the problem, never the content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    /// Not a JSON object with a `resourceType`.
    #[error("not a FHIR resource (no resourceType)")]
    NoType,
    /// The type is not a FHIR type name.
    #[error("the resourceType is not a FHIR type name")]
    BadType,
    /// No id, or not a FHIR id (`[A-Za-z0-9\-.]{1,64}`).
    #[error("the resource has no valid id")]
    BadId,
    /// It names a different patient than the one being synced.
    #[error("the resource belongs to a different patient")]
    OtherPatient,
}

/// Reads `resource`.
pub fn classify(resource: &Value) -> Result<Classified, Problem> {
    let resource_type = resource
        .get("resourceType")
        .and_then(Value::as_str)
        .ok_or(Problem::NoType)?;
    if resource_type.is_empty()
        || resource_type.len() > 64
        || !resource_type.starts_with(|c: char| c.is_ascii_uppercase())
        || !resource_type.chars().all(|c| c.is_ascii_alphanumeric())
    {
        return Err(Problem::BadType);
    }
    let fhir_id = resource
        .get("id")
        .and_then(Value::as_str)
        .filter(|id| is_fhir_id(id))
        .ok_or(Problem::BadId)?;
    let updated_at = resource
        .pointer("/meta/lastUpdated")
        .and_then(Value::as_str)
        .and_then(parse_datetime);
    let version = resource
        .pointer("/meta/versionId")
        .and_then(Value::as_str)
        .filter(|v| !v.is_empty() && v.len() <= 64)
        .map(str::to_owned)
        .or_else(|| updated_at.map(|at| at.to_rfc3339()))
        .unwrap_or_else(|| digest(resource));
    let category = category_of(resource_type, resource);
    let status = status_of(resource_type, resource);
    let release = release_of(resource_type, resource, &status);
    let issued_at = match resource_type {
        "Observation" | "DiagnosticReport" => text(resource, "/issued").and_then(parse_datetime),
        _ => None,
    };

    Ok(Classified {
        resource_type: resource_type.to_owned(),
        fhir_id: fhir_id.to_owned(),
        version,
        category,
        status,
        release,
        effective_at: effective_of(resource_type, resource)
            .or(issued_at)
            .or(updated_at),
        updated_at,
        issued_at,
        patient: patient_of(resource_type, resource),
    })
}

/// Whether `id` is a FHIR id.
pub fn is_fhir_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
}

fn text<'a>(resource: &'a Value, pointer: &str) -> Option<&'a str> {
    resource.pointer(pointer).and_then(Value::as_str)
}

/// The codes of a CodeableConcept array's codings (`category`, usually).
fn codes(concepts: Option<&Value>) -> impl Iterator<Item = &str> {
    let concepts: &[Value] = match concepts {
        Some(Value::Array(items)) => items,
        Some(single @ Value::Object(_)) => std::slice::from_ref(single),
        _ => &[],
    };
    concepts
        .iter()
        .filter_map(|concept| concept.get("coding").and_then(Value::as_array))
        .flatten()
        .filter_map(|coding| coding.get("code").and_then(Value::as_str))
}

fn category_of(resource_type: &str, resource: &Value) -> Category {
    match resource_type {
        "DocumentReference" => Category::Note,
        "Binary" => Category::Attachment,
        "Observation" => {
            let mut category = Category::Other;
            for code in codes(resource.get("category")) {
                match code {
                    "laboratory" => return Category::Lab,
                    "vital-signs" => category = Category::Vital,
                    _ => {}
                }
            }
            category
        }
        "DiagnosticReport" => {
            let mut category = Category::Other;
            for code in codes(resource.get("category")) {
                match code {
                    "LAB" | "CH" | "HM" | "MB" | "SP" | "CG" | "LP29693-6" => {
                        return Category::Lab;
                    }
                    "RAD" | "LP29684-5" | "PAT" | "LP7839-6" | "CT" | "MR" | "US" | "NMR" => {
                        category = Category::Imaging;
                    }
                    _ => {}
                }
            }
            category
        }
        "MedicationRequest"
        | "MedicationStatement"
        | "MedicationAdministration"
        | "MedicationDispense" => Category::Medication,
        "AllergyIntolerance" | "AdverseEvent" => Category::Allergy,
        "Immunization" => Category::Immunization,
        "Condition" => Category::Problem,
        "CarePlan" | "Goal" => Category::CarePlan,
        "Appointment" | "Encounter" => Category::Visit,
        "ImagingStudy" => Category::Imaging,
        "Procedure" => Category::Procedure,
        "Claim" | "ExplanationOfBenefit" | "Coverage" => Category::Billing,
        _ => Category::Other,
    }
}

fn status_of(resource_type: &str, resource: &Value) -> String {
    let status = match resource_type {
        // The workflow status says little to a patient; whether it was recorded in error
        // is what matters, and that is in verificationStatus.
        "Condition" | "AllergyIntolerance" => codes(resource.get("clinicalStatus"))
            .next()
            .or_else(|| text(resource, "/status")),
        "Goal" => text(resource, "/lifecycleStatus"),
        _ => text(resource, "/status"),
    };
    status
        .filter(|s| !s.is_empty() && s.len() <= 32)
        .unwrap_or("unknown")
        .to_owned()
}

fn release_of(resource_type: &str, resource: &Value, status: &str) -> Release {
    let in_error = |code: &str| code == "entered-in-error";
    if in_error(status)
        || text(resource, "/status").is_some_and(in_error)
        || codes(resource.get("verificationStatus")).any(in_error)
    {
        return Release::Hidden;
    }
    match resource_type {
        "Observation" | "DiagnosticReport" => match status {
            "registered" | "preliminary" | "partial" => Release::Preliminary,
            _ => Release::Released,
        },
        "DocumentReference" => match text(resource, "/docStatus") {
            Some("preliminary") => Release::Preliminary,
            Some("entered-in-error") => Release::Hidden,
            _ => Release::Released,
        },
        _ => Release::Released,
    }
}

/// The first of these paths that holds a date.
fn first_date(resource: &Value, pointers: &[&str]) -> Option<DateTime<Utc>> {
    pointers
        .iter()
        .find_map(|pointer| text(resource, pointer).and_then(parse_datetime))
}

fn effective_of(resource_type: &str, resource: &Value) -> Option<DateTime<Utc>> {
    let pointers: &[&str] = match resource_type {
        "Observation" | "DiagnosticReport" => &[
            "/effectiveDateTime",
            "/effectivePeriod/start",
            "/effectiveInstant",
        ],
        "DocumentReference" => &["/date", "/context/period/start"],
        "MedicationRequest" => &["/authoredOn"],
        "MedicationStatement" => &[
            "/effectiveDateTime",
            "/effectivePeriod/start",
            "/dateAsserted",
        ],
        "MedicationAdministration" => &["/effectiveDateTime", "/effectivePeriod/start"],
        "MedicationDispense" => &["/whenHandedOver", "/whenPrepared"],
        "AllergyIntolerance" => &["/recordedDate", "/onsetDateTime"],
        "Immunization" => &["/occurrenceDateTime", "/recorded"],
        "Condition" => &["/recordedDate", "/onsetDateTime", "/onsetPeriod/start"],
        "CarePlan" => &["/period/start", "/created"],
        "Goal" => &["/startDate", "/statusDate", "/target/0/dueDate"],
        "Appointment" => &["/start", "/created"],
        "Encounter" => &["/period/start"],
        "ImagingStudy" => &["/started"],
        "Procedure" => &["/performedDateTime", "/performedPeriod/start"],
        "Claim" | "ExplanationOfBenefit" => &["/created", "/billablePeriod/start"],
        "Coverage" => &["/period/start"],
        _ => &["/date", "/effectiveDateTime", "/created", "/period/start"],
    };
    first_date(resource, pointers)
}

fn patient_of(resource_type: &str, resource: &Value) -> Option<String> {
    let reference = match resource_type {
        "Binary" => text(resource, "/securityContext/reference"),
        "Coverage" => text(resource, "/beneficiary/reference"),
        "Appointment" => resource
            .get("participant")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|p| p.pointer("/actor/reference").and_then(Value::as_str))
            .find(|r| patient_id(r).is_some()),
        _ => text(resource, "/subject/reference").or_else(|| text(resource, "/patient/reference")),
    }?;
    patient_id(reference).map(str::to_owned)
}

/// The id in a `Patient/<id>` reference, relative or absolute (`…/Patient/<id>`, with or
/// without `/_history/<v>`).
pub fn patient_id(reference: &str) -> Option<&str> {
    let reference = reference
        .split_once("/_history/")
        .map_or(reference, |(head, _)| head);
    let (head, id) = reference.rsplit_once('/')?;
    (head == "Patient" || head.ends_with("/Patient"))
        .then_some(id)
        .filter(|id| is_fhir_id(id))
}

/// The `Binary` ids a note's attachments point at (`Binary/<id>`, relative or on the
/// server, with or without a version), each once.
pub fn attachment_ids(note: &Value) -> Vec<String> {
    let mut ids: Vec<String> = Vec::new();
    let urls = note["content"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|content| content.pointer("/attachment/url").and_then(Value::as_str));
    for url in urls {
        let url = url.split_once("/_history/").map_or(url, |(head, _)| head);
        if let Some((head, id)) = url.rsplit_once('/')
            && (head == "Binary" || head.ends_with("/Binary"))
            && is_fhir_id(id)
            && !ids.iter().any(|held| held == id)
        {
            ids.push(id.to_owned());
        }
    }
    ids
}

/// A FHIR `date`, `dateTime` or `instant`: a year, a month or a day is taken as its first
/// moment in UTC; a time without a zone as UTC.
pub fn parse_datetime(value: &str) -> Option<DateTime<Utc>> {
    if let Ok(at) = DateTime::parse_from_rfc3339(value) {
        return Some(at.with_timezone(&Utc));
    }
    let day = match value.len() {
        4 => NaiveDate::from_ymd_opt(value.parse().ok()?, 1, 1),
        7 => NaiveDate::parse_from_str(&format!("{value}-01"), "%Y-%m-%d").ok(),
        10 => NaiveDate::parse_from_str(value, "%Y-%m-%d").ok(),
        _ => {
            return chrono::NaiveDateTime::parse_from_str(value, "%Y-%m-%dT%H:%M:%S%.f")
                .ok()
                .map(|at| Utc.from_utc_datetime(&at));
        }
    }?;
    Some(Utc.from_utc_datetime(&day.and_time(NaiveTime::MIN)))
}

/// What a patient would call the item: the EHR's own text for its code, else the first
/// coding's display, else the type's name.
pub fn title(resource: &Value) -> String {
    let concept_text = |concept: Option<&Value>| -> Option<String> {
        let concept = concept?;
        let concept = match concept {
            Value::Array(items) => items.first()?,
            other => other,
        };
        concept["text"]
            .as_str()
            .or_else(|| concept.pointer("/coding/0/display").and_then(Value::as_str))
            .or_else(|| concept.pointer("/coding/0/code").and_then(Value::as_str))
            .map(str::to_owned)
    };
    let resource_type = resource["resourceType"].as_str().unwrap_or("Record");
    let found = match resource_type {
        "MedicationRequest"
        | "MedicationStatement"
        | "MedicationAdministration"
        | "MedicationDispense" => concept_text(resource.get("medicationCodeableConcept"))
            .or_else(|| text(resource, "/medicationReference/display").map(str::to_owned)),
        "Immunization" => concept_text(resource.get("vaccineCode")),
        "DocumentReference" => concept_text(resource.get("type"))
            .or_else(|| text(resource, "/description").map(str::to_owned)),
        "CarePlan" => text(resource, "/title")
            .map(str::to_owned)
            .or_else(|| concept_text(resource.get("category"))),
        "Goal" => concept_text(resource.get("description")),
        "Appointment" => text(resource, "/description")
            .map(str::to_owned)
            .or_else(|| concept_text(resource.get("serviceType"))),
        "Encounter" => concept_text(resource.get("type")),
        "ImagingStudy" => text(resource, "/description")
            .map(str::to_owned)
            .or_else(|| concept_text(resource.get("procedureCode"))),
        "Claim" | "ExplanationOfBenefit" | "Coverage" => concept_text(resource.get("type")),
        _ => concept_text(resource.get("code")),
    };
    found.unwrap_or_else(|| resource_type.to_owned())
}

fn digest(resource: &Value) -> String {
    use sha2::Digest;
    let bytes = serde_json::to_vec(resource).unwrap_or_default();
    let hash = sha2::Sha256::digest(&bytes);
    format!(
        "sha256-{}",
        crate::audit::event::hex_bytes::encode(&hash[..12])
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::json;

    use super::*;

    fn observation(status: &str, category: &str) -> Value {
        json!({
            "resourceType": "Observation",
            "id": "obs-1",
            "meta": {"versionId": "3", "lastUpdated": "2026-11-02T10:15:00Z"},
            "status": status,
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": category}]}],
            "subject": {"reference": "Patient/p-1"},
            "effectiveDateTime": "2026-11-01",
            "issued": "2026-11-02T10:14:00Z",
            "someFutureElement": {"kept": true}
        })
    }

    #[test]
    fn results_are_released_when_final_amended_corrected_or_appended() {
        for status in [
            "final",
            "amended",
            "corrected",
            "appended",
            "cancelled",
            "unknown",
        ] {
            let item = classify(&observation(status, "laboratory")).unwrap();
            assert_eq!(item.release, Release::Released, "{status}");
            assert_eq!(item.category, Category::Lab);
        }
        for status in ["preliminary", "registered", "partial"] {
            let item = classify(&observation(status, "laboratory")).unwrap();
            assert_eq!(item.release, Release::Preliminary, "{status}");
        }
        let item = classify(&observation("entered-in-error", "vital-signs")).unwrap();
        assert_eq!(item.release, Release::Hidden);
        assert_eq!(item.category, Category::Vital);
    }

    #[test]
    fn notes_follow_doc_status() {
        let note = |status: &str, doc_status: Option<&str>| {
            let mut note = json!({"resourceType": "DocumentReference", "id": "n1", "status": status, "subject": {"reference": "Patient/p"}});
            if let Some(doc_status) = doc_status {
                note["docStatus"] = json!(doc_status);
            }
            classify(&note).unwrap().release
        };
        assert_eq!(note("current", Some("final")), Release::Released);
        assert_eq!(note("current", Some("amended")), Release::Released);
        assert_eq!(note("current", None), Release::Released);
        assert_eq!(note("current", Some("preliminary")), Release::Preliminary);
        assert_eq!(note("entered-in-error", Some("final")), Release::Hidden);
        assert_eq!(note("current", Some("entered-in-error")), Release::Hidden);
    }

    #[test]
    fn conditions_recorded_in_error_are_hidden() {
        let condition = json!({
            "resourceType": "Condition", "id": "c1",
            "clinicalStatus": {"coding": [{"code": "active"}]},
            "verificationStatus": {"coding": [{"code": "entered-in-error"}]},
            "subject": {"reference": "Patient/p"}
        });
        let item = classify(&condition).unwrap();
        assert_eq!(
            (item.release, item.status.as_str()),
            (Release::Hidden, "active")
        );
    }

    #[test]
    fn dates_versions_and_patient_are_read() {
        let item = classify(&observation("final", "laboratory")).unwrap();
        assert_eq!(item.version, "3");
        assert_eq!(item.patient.as_deref(), Some("p-1"));
        assert_eq!(item.effective_at, parse_datetime("2026-11-01T00:00:00Z"));
        assert_eq!(item.issued_at, parse_datetime("2026-11-02T10:14:00Z"));

        let bare = json!({"resourceType": "Basic", "id": "b"});
        let item = classify(&bare).unwrap();
        assert!(item.version.starts_with("sha256-"));
        assert_eq!(item.category, Category::Other);
        assert_eq!(item.patient, None);
    }

    #[test]
    fn references_are_read_relative_absolute_and_versioned() {
        assert_eq!(patient_id("Patient/abc"), Some("abc"));
        assert_eq!(
            patient_id("https://ehr.example/fhir/Patient/abc"),
            Some("abc")
        );
        assert_eq!(patient_id("Patient/abc/_history/2"), Some("abc"));
        assert_eq!(patient_id("Group/abc"), None);
        assert_eq!(patient_id("Patient/a b"), None);
    }

    #[test]
    fn attachments_are_found_by_their_binary_urls_once() {
        let note = json!({"resourceType": "DocumentReference", "content": [
            {"attachment": {"url": "Binary/b1"}},
            {"attachment": {"url": "https://ehr.example/fhir/Binary/b2/_history/3"}},
            {"attachment": {"url": "Binary/b1"}},
            {"attachment": {"url": "https://ehr.example/files/report.pdf"}},
            {"attachment": {"data": "aGk="}}
        ]});
        assert_eq!(attachment_ids(&note), ["b1", "b2"]);
    }

    #[test]
    fn partial_dates_are_their_first_moment() {
        assert_eq!(
            parse_datetime("2020"),
            parse_datetime("2020-01-01T00:00:00Z")
        );
        assert_eq!(
            parse_datetime("2020-05"),
            parse_datetime("2020-05-01T00:00:00Z")
        );
        assert_eq!(
            parse_datetime("2020-05-07T10:00:00"),
            parse_datetime("2020-05-07T10:00:00Z")
        );
        assert_eq!(parse_datetime("yesterday"), None);
    }

    #[test]
    fn what_cannot_be_stored_is_a_problem() {
        assert_eq!(classify(&json!([1])), Err(Problem::NoType));
        assert_eq!(
            classify(&json!({"resourceType": "obs ervation", "id": "1"})),
            Err(Problem::BadType)
        );
        assert_eq!(
            classify(&json!({"resourceType": "Observation"})),
            Err(Problem::BadId)
        );
        assert_eq!(
            classify(&json!({"resourceType": "Observation", "id": "a/b"})),
            Err(Problem::BadId)
        );
    }
}
