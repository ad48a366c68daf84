//! The sandbox EHR's synthetic patients: deterministic FHIR R4 charts, built as JSON.
//!
//! Each chart is a Patient and the rest of a plausible primary-care history — notes, labs with
//! two years of trend, vital signs, medications, allergies, immunizations, problems, a care
//! plan with goals, visits and appointments, imaging and pathology, procedures, and billing.
//! Everything follows from the chart number (a small splitmix64 generator, never the wall
//! clock or a random source) and is dated up to a given `base` time, so the same inputs give
//! the same chart. Every person, organization, number and note is made up.
//!
//! Each chart also holds four *pending* resources — two preliminary lab results, their
//! preliminary report, and a draft note — which [`finalize`] marks final, so the portal's
//! sync and notification paths have something to pick up. This module has no HTTP.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, NaiveTime, SecondsFormat, TimeDelta, Utc};
use serde_json::{Map, Value, json};

type Time = DateTime<Utc>;

const LOINC: &str = "http://loinc.org";
const SNOMED: &str = "http://snomed.info/sct";
const UCUM: &str = "http://unitsofmeasure.org";
const RXNORM: &str = "http://www.nlm.nih.gov/research/umls/rxnorm";
const CVX: &str = "http://hl7.org/fhir/sid/cvx";
const ICD10: &str = "http://hl7.org/fhir/sid/icd-10-cm";
const CPT: &str = "http://www.ama-assn.org/go/cpt";
const DICOM: &str = "http://dicom.nema.org/resources/ontology/DCM";
const MRN_SYSTEM: &str = "urn:oid:2.16.840.1.113883.3.7418.2.1";
const US_CORE: &str = "http://hl7.org/fhir/us/core/CodeSystem/";
/// HL7 terminology: a code system's URL is this plus its name.
const THO: &str = "http://terminology.hl7.org/CodeSystem/";

const PROGRESS_NOTE: (&str, &str) = ("11506-3", "Progress note");
const DISCHARGE_SUMMARY: (&str, &str) = ("18842-5", "Discharge summary");
const CLINIC: &str = "Willamette Valley Family Medicine (sandbox)";
const LAB: &str = "Cascade Reference Laboratory (sandbox)";
const PAYOR: &str = "Evergreen Health Plan (sandbox)";

/// Names, places and visits, laid out by hand.
#[rustfmt::skip]
mod tables {
    pub const CLINICIANS: [&str; 4] =
        ["Dr. Elena Okafor", "Dr. Marcus Lindqvist", "Dr. Priya Natarajan", "Dr. Tomas Herrera"];
    pub const FEMALE_GIVEN: [&str; 10] =
        ["Ana", "Grace", "Maya", "Lena", "Nora", "Iris", "June", "Ruth", "Leah", "Hazel"];
    pub const MALE_GIVEN: [&str; 10] =
        ["Owen", "Theo", "Jonah", "Felix", "Ezra", "Milo", "Caleb", "Arlo", "Hugo", "Silas"];
    pub const FAMILY: [&str; 12] = ["Nguyen", "Larsen", "Patel", "Brooks", "Castillo", "Yamada",
        "Fischer", "Romero", "Sullivan", "Haddad", "Kowalski", "Abernathy"];
    pub const STREETS: [&str; 6] = ["SE Division St", "NE Alberta St", "Oak Grove Rd",
        "Willamette St", "Commercial St SE", "River Rd"];
    /// Oregon ZIP codes and their cities.
    pub const PLACES: [(&str, &str); 8] = [("97201", "Portland"), ("97214", "Portland"),
        ("97301", "Salem"), ("97401", "Eugene"), ("97330", "Corvallis"), ("97701", "Bend"),
        ("97501", "Medford"), ("97124", "Hillsboro")];
    /// The two fixed patients (born 1984-03-09, living in Portland 97201): given name, family
    /// name, female, street address.
    pub const FIXED: [(&str, &str, bool, &str); 2] = [
        ("Rosa", "Martinez", true, "1420 SW Park Ave"),
        ("Sam", "Rivera", false, "2215 SW Jefferson St"),
    ];
    /// The four visits: about how many days before `base`, and why.
    pub const VISITS: [(i64, &str); 4] = [(720, "Annual preventive visit"),
        (540, "Diabetes follow-up"), (350, "Hypertension follow-up"),
        (130, "Chronic care follow-up")];
}
use tables::*;

/// A lab analyte: LOINC code, names, units (display and UCUM), reference range, and the bands
/// a patient's first and last (two years later) values fall in.
struct Analyte {
    loinc: &'static str,
    name: &'static str,
    display: &'static str,
    unit: (&'static str, &'static str),
    low: Option<f64>,
    high: f64,
    from: (f64, f64),
    to: (f64, f64),
    decimals: i32,
}

const GLUCOSE: usize = 0;
const HBA1C: usize = 1;
const CREATININE: usize = 2;
const POTASSIUM: usize = 3;
const LDL: usize = 4;
const HEMOGLOBIN: usize = 5;
const WBC: usize = 6;
const TSH: usize = 7;

#[rustfmt::skip]
static ANALYTES: [Analyte; 8] = [
    Analyte { loinc: "2345-7", name: "Glucose", display: "Glucose [Mass/volume] in Serum or Plasma",
        unit: ("mg/dL", "mg/dL"), low: Some(70.0), high: 99.0,
        from: (105.0, 170.0), to: (88.0, 130.0), decimals: 0 },
    Analyte { loinc: "4548-4", name: "Hemoglobin A1c",
        display: "Hemoglobin A1c/Hemoglobin.total in Blood", unit: ("%", "%"), low: Some(4.0),
        high: 5.6, from: (7.0, 8.8), to: (6.2, 7.6), decimals: 1 },
    Analyte { loinc: "2160-0", name: "Creatinine",
        display: "Creatinine [Mass/volume] in Serum or Plasma", unit: ("mg/dL", "mg/dL"),
        low: Some(0.6), high: 1.2, from: (0.8, 1.1), to: (0.9, 1.35), decimals: 2 },
    Analyte { loinc: "2823-3", name: "Potassium",
        display: "Potassium [Moles/volume] in Serum or Plasma", unit: ("mmol/L", "mmol/L"),
        low: Some(3.5), high: 5.1, from: (3.7, 4.6), to: (3.9, 5.3), decimals: 1 },
    Analyte { loinc: "13457-7", name: "LDL cholesterol",
        display: "Cholesterol in LDL [Mass/volume] in Serum or Plasma by calculation",
        unit: ("mg/dL", "mg/dL"), low: None, high: 99.0,
        from: (130.0, 175.0), to: (78.0, 115.0), decimals: 0 },
    Analyte { loinc: "718-7", name: "Hemoglobin", display: "Hemoglobin [Mass/volume] in Blood",
        unit: ("g/dL", "g/dL"), low: Some(12.0), high: 16.0,
        from: (12.2, 15.0), to: (11.4, 14.6), decimals: 1 },
    Analyte { loinc: "6690-2", name: "White blood cells",
        display: "Leukocytes [#/volume] in Blood by Automated count", unit: ("10*3/uL", "10*3/uL"),
        low: Some(4.5), high: 11.0, from: (5.0, 9.0), to: (4.2, 11.8), decimals: 1 },
    Analyte { loinc: "3016-3", name: "TSH",
        display: "Thyrotropin [Units/volume] in Serum or Plasma", unit: ("mIU/L", "m[IU]/L"),
        low: Some(0.4), high: 4.0,
        from: (1.0, 3.2), to: (0.8, 4.6), decimals: 2 },
];

/// A lab report: LOINC code, display, short name, and the analytes it reports.
type Panel = (&'static str, &'static str, &'static str, &'static [usize]);

const CBC: usize = 1;

#[rustfmt::skip]
static PANELS: [Panel; 5] = [
    ("24323-8", "Comprehensive metabolic 2000 panel - Serum or Plasma",
        "Comprehensive metabolic panel", &[GLUCOSE, CREATININE, POTASSIUM]),
    ("58410-2", "CBC panel - Blood by Automated count", "CBC panel", &[HEMOGLOBIN, WBC]),
    ("4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood", "Hemoglobin A1c", &[HBA1C]),
    ("24331-1", "Lipid 1996 panel - Serum or Plasma", "Lipid panel", &[LDL]),
    ("3016-3", "Thyrotropin [Units/volume] in Serum or Plasma", "TSH", &[TSH]),
];

/// One synthetic patient's chart.
#[derive(Debug, Clone)]
pub struct Chart {
    /// The Patient resource.
    pub patient: Value,
    /// Every other resource of the chart, final and pending alike.
    pub resources: Vec<Value>,
}

/// Chart number `index`, its history dated up to `base` (deterministic in index and base).
pub fn chart(index: usize, base: DateTime<Utc>) -> Chart {
    let mut b = Builder::new(index, base);
    let patient = b.patient(index);
    let visits = b.visits();
    b.vitals(&visits);
    b.labs(&visits);
    b.pending();
    b.notes(&visits);
    b.problems(&visits);
    b.medications(&visits);
    b.allergies(&visits);
    b.immunizations(&visits);
    b.care_plan(&visits);
    b.upcoming_appointment();
    b.imaging(&visits[2]);
    b.procedures(&visits);
    b.billing(&visits);
    let resources = b.out;
    Chart { patient, resources }
}

/// `count` charts, 0..count.
pub fn charts(count: usize, base: DateTime<Utc>) -> Vec<Chart> {
    (0..count).map(|index| chart(index, base)).collect()
}

/// Whether the resource is pending finalization (preliminary Observation/DiagnosticReport,
/// DocumentReference with docStatus preliminary).
pub fn is_pending(resource: &Value) -> bool {
    match resource["resourceType"].as_str() {
        Some("Observation" | "DiagnosticReport") => resource["status"] == "preliminary",
        Some("DocumentReference") => resource["docStatus"] == "preliminary",
        _ => false,
    }
}

/// Marks a pending (preliminary) resource final at `at`: Observation/DiagnosticReport status
/// "final" (and `issued` = at), DocumentReference docStatus "final"; bumps meta.versionId by
/// one and sets meta.lastUpdated = at. Returns false (and changes nothing) if the resource was
/// not pending.
pub fn finalize(resource: &mut Value, at: DateTime<Utc>) -> bool {
    if !is_pending(resource) {
        return false;
    }
    let version = resource["meta"]["versionId"]
        .as_str()
        .and_then(|v| v.parse::<u64>().ok());
    if resource["resourceType"] == "DocumentReference" {
        insert(resource, "docStatus", json!("final"));
    } else {
        insert(resource, "status", json!("final"));
        insert(resource, "issued", json!(instant(at)));
    }
    let mut meta = resource["meta"].as_object().cloned().unwrap_or_default();
    let version = version.unwrap_or(1) + 1;
    meta.insert("versionId".into(), json!(version.to_string()));
    meta.insert("lastUpdated".into(), json!(instant(at)));
    insert(resource, "meta", Value::Object(meta));
    true
}

/// An `instant` to the millisecond: when a result is finalized, to the precision the
/// finalized-to-visible latency is measured in.
fn instant(at: Time) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// splitmix64: small, fast, and the same everywhere.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [low, high).
    fn range(&mut self, low: f64, high: f64) -> f64 {
        let unit = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        low + (high - low) * unit
    }

    /// Uniform in 0..n (n > 0).
    fn below(&mut self, n: u64) -> i64 {
        (self.next_u64() % n.max(1)) as i64
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
}

/// One office visit, its Encounter, and the vital signs taken at it.
struct Visit {
    start: Time,
    encounter: String,
    reason: &'static str,
    systolic: f64,
    diastolic: f64,
    heart_rate: f64,
    weight: f64,
    height: f64,
    temperature: f64,
    spo2: f64,
}

impl Visit {
    fn end(&self) -> Time {
        self.start + TimeDelta::minutes(30)
    }
}

/// One blood draw: its step on the trend (0..=3 are the visits'), times, and status.
struct Draw {
    step: usize,
    drawn: Time,
    issued: Time,
    status: &'static str,
    encounter: Option<String>,
}

impl Draw {
    /// A draw at `drawn`; final results are issued four hours later, preliminary ones sooner.
    fn new(step: usize, drawn: Time, status: &'static str, encounter: Option<String>) -> Self {
        let minutes = if status == "final" { 240 } else { 45 };
        let issued = drawn + TimeDelta::minutes(minutes);
        Draw {
            step,
            drawn,
            issued,
            status,
            encounter,
        }
    }
}

/// Builds one chart's resources, in order, from one generator.
struct Builder {
    pid: String,
    base: Time,
    rng: Rng,
    next_id: usize,
    female: bool,
    clinician: &'static str,
    /// Each analyte's trend: its first and last value over the four draws.
    trends: Vec<(f64, f64)>,
    /// HbA1c of each draw, for the notes.
    a1c: Vec<f64>,
    /// The problem list: diabetes, hypertension, hyperlipidemia.
    problems: Vec<String>,
    out: Vec<Value>,
}

impl Builder {
    fn new(index: usize, base: Time) -> Self {
        let seed = (index as u64).wrapping_mul(0xD1B5_4A32_D192_ED03) ^ 0x5EED_F00D_5A4D_B0C5;
        let mut rng = Rng(seed);
        let clinician = rng.pick(&CLINICIANS);
        Builder {
            pid: format!("sbx-p{index:04}"),
            base,
            rng,
            next_id: 0,
            female: true,
            clinician,
            trends: Vec::new(),
            a1c: Vec::new(),
            problems: Vec::new(),
            out: Vec::new(),
        }
    }

    /// Adds a resource of type `kind` made of `body`, with a fresh id (`sbx-p0000-obs-12`) and
    /// `meta` as of its clinical time `at`. Returns the id.
    fn add(&mut self, kind: &str, tag: &str, at: Time, mut body: Value) -> String {
        self.next_id += 1;
        let id = format!("{}-{tag}-{}", self.pid, self.next_id);
        insert(&mut body, "resourceType", json!(kind));
        insert(&mut body, "id", json!(id));
        self.out.push(with_meta(body, at, self.base));
        id
    }

    /// A reference to the chart's Patient.
    fn subject(&self) -> Value {
        reference("Patient", &self.pid)
    }

    /// When the patient registered (and got coverage): before the first visit.
    fn registered(&self) -> Time {
        day_at(self.base, 740, 17 * 60)
    }

    /// A time in clinic hours (08:00–15:45 in Oregon, 16:00–23:45 UTC), `days_ago` before base.
    fn clinic_time(&mut self, days_ago: i64) -> Time {
        day_at(self.base, days_ago, 16 * 60 + 15 * self.rng.below(32))
    }

    /// The Patient: fixed for charts 0 and 1, drawn from the tables for the others.
    fn patient(&mut self, index: usize) -> Value {
        self.female = self.rng.below(2) == 0;
        let names: &[&str] = if self.female {
            &FEMALE_GIVEN
        } else {
            &MALE_GIVEN
        };
        let (mut given, mut family) = (self.rng.pick(names), self.rng.pick(&FAMILY));
        let year = 1940 + self.rng.below(71);
        let (month, day) = (1 + self.rng.below(12), 1 + self.rng.below(28));
        let mut birth = format!("{year:04}-{month:02}-{day:02}");
        let mut line = format!("{} {}", 100 + self.rng.below(9800), self.rng.pick(&STREETS));
        let (mut zip, mut city) = self.rng.pick(&PLACES);
        if let Some(&(fixed_given, fixed_family, female, street)) = FIXED.get(index) {
            (given, family, self.female) = (fixed_given, fixed_family, female);
            (birth, line, (zip, city)) = ("1984-03-09".into(), street.into(), PLACES[0]);
        }
        let gender = if self.female { "female" } else { "male" };
        // 555-0100 to 555-0199 are reserved for fiction.
        let phone = format!("+1503555{:04}", 142 + index % 58);
        let mrn = format!("MRN{index:06}");
        let patient = json!({
            "resourceType": "Patient", "id": self.pid, "active": true,
            "identifier": [{
                "use": "usual", "type": hl7("v2-0203", "MR", "Medical record number"),
                "system": MRN_SYSTEM, "value": mrn,
            }],
            "name": [{"use": "official", "family": family, "given": [given]}],
            "telecom": [{"system": "phone", "value": phone, "use": "mobile"}],
            "gender": gender, "birthDate": birth,
            "address": [{
                "use": "home", "line": [line], "city": city, "state": "OR", "postalCode": zip,
                "country": "US",
            }],
        });
        with_meta(patient, self.registered(), self.base)
    }

    /// Four check-ups over the last two years: an Appointment (fulfilled) and an Encounter each.
    fn visits(&mut self) -> Vec<Visit> {
        let heights = if self.female {
            (152.0, 172.0)
        } else {
            (165.0, 190.0)
        };
        let height = round(self.rng.range(heights.0, heights.1), 1);
        let weight = self.rng.range(24.0, 34.0) * (height / 100.0).powi(2);
        let (systolic, diastolic) = (self.rng.range(130.0, 152.0), self.rng.range(80.0, 94.0));
        let heart_rate = self.rng.range(62.0, 86.0);
        let mut visits = Vec::new();
        for (k, (days_ago, reason)) in VISITS.into_iter().enumerate() {
            let k = k as f64;
            let jitter = self.rng.below(21);
            let start = self.clinic_time(days_ago - jitter);
            let end = start + TimeDelta::minutes(30);
            let booked = start - TimeDelta::days(21);
            let appointment = self.appointment("fulfilled", start, reason, booked);
            let ambulatory = coding(&format!("{THO}v3-ActCode"), "AMB", "ambulatory");
            let body = json!({
                "status": "finished", "class": ambulatory,
                "type": [concept(SNOMED, "185349003", "Encounter for check up")],
                "subject": self.subject(), "period": period(start, end),
                "participant": [{"individual": {"display": self.clinician}}],
                "appointment": [reference("Appointment", &appointment)],
                "reasonCode": [{"text": reason}], "serviceProvider": {"display": CLINIC},
            });
            let encounter = self.add("Encounter", "enc", end, body);
            visits.push(Visit {
                start,
                encounter,
                reason,
                systolic: (systolic - 3.0 * k + self.rng.range(-5.0, 5.0)).round(),
                diastolic: (diastolic - 1.5 * k + self.rng.range(-4.0, 4.0)).round(),
                heart_rate: (heart_rate + self.rng.range(-6.0, 6.0)).round(),
                weight: round(weight - 0.9 * k + self.rng.range(-1.2, 1.2), 1),
                height,
                temperature: round(self.rng.range(36.4, 37.2), 1),
                spo2: self.rng.range(95.0, 99.4).floor(),
            });
        }
        visits
    }

    /// A 30-minute check-up with the patient's clinician, booked at `created`.
    fn appointment(&mut self, status: &str, start: Time, reason: &str, created: Time) -> String {
        let end = start + TimeDelta::minutes(30);
        let updated = if status == "booked" { created } else { end };
        let clinician = json!({"display": self.clinician});
        let body = json!({
            "status": status, "description": reason,
            "serviceType": [hl7("service-type", "124", "General Practice")],
            "start": ts(start), "end": ts(end), "minutesDuration": 30, "created": ts(created),
            "participant": [
                {"actor": self.subject(), "required": "required", "status": "accepted"},
                {"actor": clinician, "required": "required", "status": "accepted"},
            ],
        });
        self.add("Appointment", "appt", updated, body)
    }

    /// A check-up booked a few days ago for a few weeks after `base`: the one future date.
    fn upcoming_appointment(&mut self) {
        let booked = self.base - TimeDelta::days(3 + self.rng.below(10));
        let days_ahead = 14 + self.rng.below(28);
        let start = self.clinic_time(-days_ahead);
        self.appointment("booked", start, "Diabetes follow-up", booked);
    }

    /// The seven vital signs of every visit.
    fn vitals(&mut self, visits: &[Visit]) {
        for visit in visits {
            let mm_hg = |value| quantity(value, ("mm[Hg]", "mm[Hg]"));
            let bp = json!([
                {"code": code(LOINC, "8480-6", "Systolic blood pressure"),
                    "valueQuantity": mm_hg(visit.systolic)},
                {"code": code(LOINC, "8462-4", "Diastolic blood pressure"),
                    "valueQuantity": mm_hg(visit.diastolic)},
            ]);
            let panel = "Blood pressure panel with all children optional";
            self.vital(visit, code(LOINC, "85354-9", panel), "component", bp);
            let bmi = round(visit.weight / (visit.height / 100.0).powi(2), 1);
            let spo2 = "Oxygen saturation in Arterial blood by Pulse oximetry";
            let measurements = [
                ("8867-4", "Heart rate", visit.heart_rate, "/min"),
                ("29463-7", "Body weight", visit.weight, "kg"),
                ("8302-2", "Body height", visit.height, "cm"),
                ("39156-5", "Body mass index (BMI) [Ratio]", bmi, "kg/m2"),
                ("8310-5", "Body temperature", visit.temperature, "Cel"),
                ("59408-5", spo2, visit.spo2, "%"),
            ];
            for (loinc, display, value, unit) in measurements {
                let value = quantity(value, (unit, unit));
                self.vital(visit, code(LOINC, loinc, display), "valueQuantity", value);
            }
        }
    }

    /// One vital-sign Observation; `value` goes under `field` (`valueQuantity` or `component`).
    fn vital(&mut self, visit: &Visit, code: Value, field: &str, value: Value) {
        let at = visit.start + TimeDelta::minutes(8);
        let mut body = json!({
            "status": "final", "code": code, "subject": self.subject(),
            "category": [hl7("observation-category", "vital-signs", "Vital Signs")],
            "encounter": reference("Encounter", &visit.encounter),
            "effectiveDateTime": ts(at), "issued": ts(at),
            "performer": [{"display": self.clinician}],
        });
        insert(&mut body, field, value);
        self.add("Observation", "obs", at, body);
    }

    /// Four draws, one after each visit, every panel each time.
    fn labs(&mut self, visits: &[Visit]) {
        let rng = &mut self.rng;
        self.trends = ANALYTES
            .iter()
            .map(|a| (rng.range(a.from.0, a.from.1), rng.range(a.to.0, a.to.1)))
            .collect();
        for (step, visit) in visits.iter().enumerate() {
            let drawn = visit.end() + TimeDelta::minutes(15);
            let draw = Draw::new(step, drawn, "final", Some(visit.encounter.clone()));
            for panel in &PANELS {
                self.lab_report(panel, &draw);
            }
        }
    }

    /// Today's CBC, still preliminary, and a draft note: the chart's pending resources.
    fn pending(&mut self) {
        let drawn = self.base - TimeDelta::minutes(120 + self.rng.below(600));
        let draw = Draw::new(VISITS.len(), drawn, "preliminary", None);
        self.lab_report(&PANELS[CBC], &draw);
        let text = "Nurse visit. Patient came in for a blood draw after two weeks of fatigue. \
            No fever, bleeding or weight loss reported. CBC drawn today; results pending at the \
            time of writing. Medication list reviewed with the patient. DRAFT - awaiting \
            clinician review and signature.";
        let written = drawn + TimeDelta::minutes(20);
        let content = inline(text, "Nurse visit note", written);
        let context = context(drawn, written, None);
        self.document(PROGRESS_NOTE, draw.status, written, context, content);
    }

    /// A DiagnosticReport of `panel`, and an Observation per analyte, for one draw.
    fn lab_report(&mut self, &(loinc, display, name, analytes): &Panel, draw: &Draw) {
        let results: Vec<Value> = analytes
            .iter()
            .map(|&analyte| reference("Observation", &self.lab_observation(analyte, draw)))
            .collect();
        let body = json!({
            "status": draw.status, "subject": self.subject(),
            "category": [hl7("v2-0074", "LAB", "Laboratory")],
            "code": {"coding": [coding(LOINC, loinc, display)], "text": name},
            "effectiveDateTime": ts(draw.drawn), "issued": ts(draw.issued),
            "performer": [{"display": LAB}], "result": results,
        });
        let body = with_encounter(body, draw);
        self.add("DiagnosticReport", "dr", draw.issued, body);
    }

    /// One analyte's result, on its trend at the draw's step, flagged against its range.
    fn lab_observation(&mut self, index: usize, draw: &Draw) -> String {
        let a = &ANALYTES[index];
        let (first, last) = self.trends.get(index).copied().unwrap_or(a.from);
        let noise = self.rng.range(-1.0, 1.0) * (a.high - a.low.unwrap_or(0.0)) * 0.06;
        let trend = first + (last - first) * draw.step as f64 / 3.0;
        let value = round((trend + noise).max(a.high / 20.0), a.decimals);
        if index == HBA1C {
            self.a1c.push(value);
        }
        let (flag, meaning) = interpretation(value, a.low, a.high);
        let mut range = Map::new();
        if let Some(low) = a.low {
            range.insert("low".into(), quantity(low, a.unit));
        }
        range.insert("high".into(), quantity(a.high, a.unit));
        let body = json!({
            "status": draw.status, "subject": self.subject(),
            "category": [hl7("observation-category", "laboratory", "Laboratory")],
            "code": {"coding": [coding(LOINC, a.loinc, a.display)], "text": a.name},
            "effectiveDateTime": ts(draw.drawn), "issued": ts(draw.issued),
            "valueQuantity": quantity(value, a.unit), "referenceRange": [range],
            "interpretation": [hl7("v3-ObservationInterpretation", flag, meaning)],
        });
        let body = with_encounter(body, draw);
        self.add("Observation", "obs", draw.issued, body)
    }

    /// A progress note per visit, and a discharge summary kept in a Binary.
    fn notes(&mut self, visits: &[Visit]) {
        for (k, visit) in visits.iter().enumerate() {
            let a1c = match k.checked_sub(1).and_then(|prior| self.a1c.get(prior)) {
                Some(value) => format!("most recent HbA1c {value}%"),
                None => "HbA1c drawn today".to_owned(),
            };
            let text = format!(
                "Patient presents for {reason}. Reports taking medications as prescribed; denies \
                 chest pain, shortness of breath, polyuria or hypoglycemic episodes. BP {s}/{d} \
                 mmHg, heart rate {hr}/min, weight {w} kg, temperature {t} C. Exam unremarkable; \
                 monofilament sensation intact in both feet. Assessment: type 2 diabetes \
                 mellitus, {a1c}; essential hypertension; hyperlipidemia. Plan: continue current \
                 medications, labs today, diet and 150 minutes of activity a week. Return in 3 \
                 to 6 months.",
                reason = visit.reason.to_lowercase(),
                s = visit.systolic,
                d = visit.diastolic,
                hr = visit.heart_rate,
                w = visit.weight,
                t = visit.temperature,
            );
            let signed = visit.end() + TimeDelta::minutes(50);
            let context = context(visit.start, visit.end(), Some(&visit.encounter));
            let content = inline(&text, "Progress note", signed);
            self.document(PROGRESS_NOTE, "final", signed, context, content);
        }
        let discharged = day_at(self.base, 240 + self.rng.below(21), 19 * 60);
        let admitted = discharged - TimeDelta::hours(78);
        let text = "Admitted with symptomatic hyperglycemia (glucose 412 mg/dL) and mild \
            dehydration during a viral gastroenteritis. No ketoacidosis. Treated with intravenous \
            fluids and basal-bolus insulin, then back to metformin as oral intake improved. \
            Discharged home in stable condition. Follow up with primary care within one week and \
            check glucose twice daily until then.";
        let data = STANDARD.encode(text);
        let body = json!({
            "contentType": "text/plain", "securityContext": self.subject(), "data": data,
        });
        let binary = self.add("Binary", "bin", discharged, body);
        let content = json!({
            "contentType": "text/plain", "url": format!("Binary/{binary}"),
            "title": "Discharge summary", "creation": ts(discharged),
        });
        let context = context(admitted, discharged, None);
        self.document(DISCHARGE_SUMMARY, "final", discharged, context, content);
    }

    /// A clinical note of LOINC type `kind`, dated when it was signed.
    fn document(
        &mut self,
        kind: (&str, &str),
        status: &str,
        date: Time,
        context: Value,
        content: Value,
    ) {
        let category = format!("{US_CORE}us-core-documentreference-category");
        let category = concept(&category, "clinical-note", "Clinical Note");
        let body = json!({
            "status": "current", "docStatus": status, "type": code(LOINC, kind.0, kind.1),
            "category": [category],
            "subject": self.subject(), "date": ts(date), "author": [{"display": self.clinician}],
            "content": [{"attachment": content}], "context": context,
        });
        self.add("DocumentReference", "doc", date, body);
    }

    /// Three active problems, and one resolved encounter diagnosis.
    fn problems(&mut self, visits: &[Visit]) {
        let recorded = visits[0].start;
        #[rustfmt::skip]
        let problems = [
            ["E11.9", "Type 2 diabetes mellitus without complications",
                "44054006", "Diabetes mellitus type 2"],
            ["I10", "Essential (primary) hypertension",
                "38341003", "Hypertensive disorder, systemic arterial"],
            ["E78.5", "Hyperlipidemia, unspecified", "55822004", "Hyperlipidemia"],
        ];
        for codes in problems {
            let years = 365 * (1 + self.rng.below(6)) + self.rng.below(300);
            let onset = recorded - TimeDelta::days(years);
            let body = self.condition(codes, "problem-list-item", "active", (onset, recorded));
            let id = self.add("Condition", "cond", recorded, body);
            self.problems.push(id);
        }
        let visit = &visits[2];
        let uri = "Acute upper respiratory infection, unspecified";
        let codes = ["J06.9", uri, "54150009", "Upper respiratory infection"];
        let onset = visit.start - TimeDelta::days(3);
        let at = (onset, visit.start);
        let mut body = self.condition(codes, "encounter-diagnosis", "resolved", at);
        let abated = visit.start + TimeDelta::days(10);
        let encounter = reference("Encounter", &visit.encounter);
        insert(&mut body, "abatementDateTime", json!(ts(abated)));
        insert(&mut body, "encounter", encounter);
        self.add("Condition", "cond", abated, body);
    }

    /// A Condition coded in ICD-10-CM and SNOMED CT: `[icd, display, snomed, display]`.
    fn condition(&self, codes: [&str; 4], category: &str, status: &str, at: (Time, Time)) -> Value {
        let [icd, icd_name, sct, sct_name] = codes;
        let (category_name, status_name) = match (category, status) {
            ("problem-list-item", "active") => ("Problem List Item", "Active"),
            _ => ("Encounter Diagnosis", "Resolved"),
        };
        json!({
            "clinicalStatus": hl7("condition-clinical", status, status_name),
            "verificationStatus": hl7("condition-ver-status", "confirmed", "Confirmed"),
            "category": [hl7("condition-category", category, category_name)],
            "code": {
                "coding": [coding(ICD10, icd, icd_name), coding(SNOMED, sct, sct_name)],
                "text": sct_name,
            },
            "subject": self.subject(), "onsetDateTime": ts(at.0), "recordedDate": ts(at.1),
        })
    }

    /// Three prescriptions, each for a problem, and an over-the-counter drug the patient takes.
    fn medications(&mut self, visits: &[Visit]) {
        let metformin = "24 HR metformin hydrochloride 500 MG Extended Release Oral Tablet";
        #[rustfmt::skip]
        let orders = [
            ("197361", "amlodipine 5 MG Oral Tablet", "once daily", 0, 1),
            ("860975", metformin, "once daily with the evening meal", 0, 0),
            ("617312", "atorvastatin 40 MG Oral Tablet", "at bedtime", 1, 2),
        ];
        for (rxnorm, display, when, visit, problem) in orders {
            let visit: &Visit = &visits[visit];
            let authored = visit.start + TimeDelta::minutes(25);
            let daily = json!({"repeat": {"frequency": 1, "period": 1, "periodUnit": "d"}});
            let dosage =
                json!({"text": format!("Take 1 tablet by mouth {when}."), "timing": daily});
            let supply = json!({"value": 90, "unit": "tablet", "system": UCUM, "code": "{tbl}"});
            let body = json!({
                "status": "active", "intent": "order",
                "medicationCodeableConcept": concept(RXNORM, rxnorm, display),
                "subject": self.subject(), "encounter": reference("Encounter", &visit.encounter),
                "authoredOn": ts(authored), "requester": {"display": self.clinician},
                "reasonReference": [reference("Condition", &self.problems[problem])],
                "dosageInstruction": [dosage],
                "dispenseRequest": {"numberOfRepeatsAllowed": 3, "quantity": supply},
            });
            self.add("MedicationRequest", "medrx", authored, body);
        }
        let asserted = visits[1].start + TimeDelta::minutes(10);
        let since = date(asserted - TimeDelta::days(200));
        let dosage = "1 to 2 tablets by mouth as needed for knee pain, at most 3 times a day.";
        let body = json!({
            "status": "active",
            "medicationCodeableConcept": concept(RXNORM, "310965", "ibuprofen 200 MG Oral Tablet"),
            "subject": self.subject(), "informationSource": self.subject(),
            "effectivePeriod": {"start": since}, "dateAsserted": ts(asserted),
            "dosage": [{"text": dosage, "asNeededBoolean": true}],
        });
        self.add("MedicationStatement", "medst", asserted, body);
    }

    /// A drug allergy and a food allergy, recorded at the first visit.
    fn allergies(&mut self, visits: &[Visit]) {
        let recorded = visits[0].start + TimeDelta::minutes(5);
        #[rustfmt::skip]
        let allergies = [
            ("medication", "low", "91936005", "Allergy to penicillin", "271807003",
                "Eruption of skin", "moderate"),
            ("food", "high", "91935009", "Allergy to peanut", "39579001", "Anaphylaxis", "severe"),
        ];
        for (category, criticality, allergy, display, manifestation, reaction, severity) in
            allergies
        {
            let reaction = concept(SNOMED, manifestation, reaction);
            let body = json!({
                "clinicalStatus": hl7("allergyintolerance-clinical", "active", "Active"),
                "verificationStatus":
                    hl7("allergyintolerance-verification", "confirmed", "Confirmed"),
                "type": "allergy", "category": [category], "criticality": criticality,
                "code": concept(SNOMED, allergy, display), "patient": self.subject(),
                "recordedDate": ts(recorded),
                "reaction": [{"manifestation": [reaction], "severity": severity}],
            });
            self.add("AllergyIntolerance", "alg", recorded, body);
        }
    }

    /// Influenza, COVID-19 and Tdap vaccines, each given at a visit.
    fn immunizations(&mut self, visits: &[Visit]) {
        let covid = "SARS-COV-2 (COVID-19) vaccine, mRNA, spike protein, LNP, preservative free, \
            30 mcg/0.3mL dose";
        #[rustfmt::skip]
        let vaccines = [
            ("140", "Influenza, seasonal, injectable, preservative free", "FL", 3),
            ("208", covid, "PF", 2),
            ("115", "Tdap", "TD", 0),
        ];
        for (cvx, display, lot, visit) in vaccines {
            let visit: &Visit = &visits[visit];
            let given = visit.start + TimeDelta::minutes(28);
            let lot = format!("{lot}{:05}", self.rng.below(100_000));
            let body = json!({
                "status": "completed", "vaccineCode": concept(CVX, cvx, display),
                "patient": self.subject(), "encounter": reference("Encounter", &visit.encounter),
                "occurrenceDateTime": ts(given), "primarySource": true, "lotNumber": lot,
                "performer": [{"actor": {"display": self.clinician}}],
            });
            self.add("Immunization", "imm", given, body);
        }
    }

    /// Two goals and the plan that pursues them.
    fn care_plan(&mut self, visits: &[Visit]) {
        let planned = visits[1].start + TimeDelta::minutes(26);
        let due = date(visits[3].start + TimeDelta::days(90));
        #[rustfmt::skip]
        let goals = [
            ("HbA1c below 7%", "4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood", 7.0, "%", 0),
            ("Blood pressure below 130/80 mmHg", "8480-6", "Systolic blood pressure", 130.0,
                "mm[Hg]", 1),
        ];
        let mut goal_refs = Vec::new();
        for (text, loinc, display, limit, unit, problem) in goals {
            let mut limit = quantity(limit, (unit, unit));
            insert(&mut limit, "comparator", json!("<"));
            let measure = code(LOINC, loinc, display);
            let body = json!({
                "lifecycleStatus": "active", "description": {"text": text},
                "subject": self.subject(), "startDate": date(planned),
                "target": [{"measure": measure, "detailQuantity": limit, "dueDate": due}],
                "addresses": [reference("Condition", &self.problems[problem])],
            });
            let id = self.add("Goal", "goal", planned, body);
            goal_refs.push(reference("Goal", &id));
        }
        let title = "Diabetes and blood pressure management";
        let description = "Metformin and amlodipine daily, a statin for LDL, home glucose and \
            blood pressure checks, 150 minutes of activity a week, and a visit with labs every \
            3 to 6 months.";
        let xhtml = "xmlns=\"http://www.w3.org/1999/xhtml\"";
        let div = format!("<div {xhtml}><p><b>{title}</b></p><p>{description}</p></div>");
        let addresses: Vec<Value> = self
            .problems
            .iter()
            .map(|id| reference("Condition", id))
            .collect();
        let category = "Assessment and Plan of Treatment";
        let body = json!({
            "text": {"status": "generated", "div": div}, "status": "active", "intent": "plan",
            "category": [concept(&format!("{US_CORE}careplan-category"), "assess-plan", category)],
            "title": title, "description": description, "subject": self.subject(),
            "period": {"start": ts(planned)}, "created": ts(planned),
            "author": {"display": self.clinician}, "addresses": addresses, "goal": goal_refs,
        });
        self.add("CarePlan", "cp", planned, body);
    }

    /// A made-up DICOM UID under the 2.25 (UUID-derived) root.
    fn uid(&mut self) -> String {
        let (high, low) = (self.rng.next_u64(), self.rng.below(1_000_000));
        format!("2.25.{high}{low:06}")
    }

    /// A chest X-ray at a visit: the study and its report.
    fn imaging(&mut self, visit: &Visit) {
        let taken = visit.end() + TimeDelta::minutes(40);
        let read = taken + TimeDelta::hours(3);
        let (study_uid, series_uid) = (self.uid(), self.uid());
        let xray = code(LOINC, "36643-5", "XR Chest 2 Views");
        let dx = coding(DICOM, "DX", "Digital Radiography");
        let chest = coding(SNOMED, "51185008", "Thoracic structure");
        let body = json!({
            "identifier": [{"system": "urn:dicom:uid", "value": format!("urn:oid:{study_uid}")}],
            "status": "available", "modality": [dx], "subject": self.subject(),
            "encounter": reference("Encounter", &visit.encounter), "started": ts(taken),
            "numberOfSeries": 1, "numberOfInstances": 2, "procedureCode": [xray],
            "series": [{
                "uid": series_uid, "number": 1, "modality": dx, "bodySite": chest,
                "description": "Chest PA and lateral", "numberOfInstances": 2, "started": ts(taken),
            }],
        });
        let study = self.add("ImagingStudy", "img", taken, body);
        let conclusion = "No acute cardiopulmonary process.";
        let report = format!(
            "Exam: XR chest, 2 views. Indication: cough for two weeks. Findings: The lungs are \
             clear. The heart size is normal. No pleural effusion or pneumothorax. Impression: \
             {conclusion}"
        );
        let form = inline(&report, "XR Chest 2 Views", read);
        let body = json!({
            "status": "final", "category": [concept(LOINC, "LP29684-5", "Radiology")],
            "code": xray, "subject": self.subject(),
            "encounter": reference("Encounter", &visit.encounter),
            "effectiveDateTime": ts(taken), "issued": ts(read),
            "resultsInterpreter": [{"display": "Dr. Hannah Whitcomb, Radiology (sandbox)"}],
            "imagingStudy": [reference("ImagingStudy", &study)], "conclusion": conclusion,
            "presentedForm": [form],
        });
        self.add("DiagnosticReport", "dr", read, body);
    }

    /// A screening colonoscopy with its pathology report, and an ECG at a visit.
    fn procedures(&mut self, visits: &[Visit]) {
        let performed = visits[1].start + TimeDelta::days(28);
        let signed = performed + TimeDelta::days(3);
        let conclusion = "Sigmoid colon polyp, biopsy: tubular adenoma without high-grade \
            dysplasia. Margins negative.";
        let body = json!({
            "status": "final", "category": [concept(LOINC, "LP7839-6", "Pathology")],
            "code": code(LOINC, "60567-5", "Comprehensive pathology report panel"),
            "subject": self.subject(), "effectiveDateTime": ts(performed), "issued": ts(signed),
            "resultsInterpreter": [{"display": "Dr. Samuel Achterberg, Pathology (sandbox)"}],
            "conclusion": conclusion,
        });
        let pathology = self.add("DiagnosticReport", "dr", signed, body);
        let gastroenterologist = "Dr. Nadia Ferreira, Gastroenterology (sandbox)";
        let body = json!({
            "status": "completed", "code": concept(SNOMED, "73761001", "Colonoscopy"),
            "subject": self.subject(), "performedDateTime": ts(performed),
            "performer": [{"actor": {"display": gastroenterologist}}],
            "report": [reference("DiagnosticReport", &pathology)],
        });
        self.add("Procedure", "proc", performed + TimeDelta::hours(1), body);
        let visit = &visits[2];
        let performed = visit.start + TimeDelta::minutes(15);
        let body = json!({
            "status": "completed",
            "code": concept(SNOMED, "29303009", "Electrocardiographic procedure"),
            "subject": self.subject(), "encounter": reference("Encounter", &visit.encounter),
            "performedDateTime": ts(performed),
        });
        self.add("Procedure", "proc", performed, body);
    }

    /// The patient's coverage, and a claim and its explanation of benefit per visit.
    fn billing(&mut self, visits: &[Visit]) {
        let since = self.registered();
        let subscriber = format!("EHP{:09}", self.rng.below(1_000_000_000));
        let plan = hl7("v3-ActCode", "HIP", "health insurance plan policy");
        let body = json!({
            "status": "active", "type": plan, "subscriberId": subscriber,
            "beneficiary": self.subject(),
            "relationship": hl7("subscriber-relationship", "self", "Self"),
            "period": {"start": date(since)}, "payor": [{"display": PAYOR}],
        });
        let coverage = self.add("Coverage", "cov", since, body);
        let coverage = reference("Coverage", &coverage);
        let professional = hl7("claim-type", "professional", "Professional");
        let visit_code = "Office or other outpatient visit, established patient, low complexity";
        let service = concept(CPT, "99213", visit_code);
        let diabetes = reference("Condition", &self.problems[0]);
        for visit in visits {
            let created = visit.end() + TimeDelta::days(1);
            let (charge, billed) = (money(148.0), period(visit.start, visit.end()));
            let body = json!({
                "status": "active", "type": professional, "use": "claim", "patient": self.subject(),
                "billablePeriod": billed, "created": ts(created), "provider": {"display": CLINIC},
                "priority": hl7("processpriority", "normal", "Normal"),
                "insurance": [{"sequence": 1, "focal": true, "coverage": coverage}],
                "diagnosis": [{"sequence": 1, "diagnosisReference": diabetes}],
                "item": [{
                    "sequence": 1, "productOrService": service, "servicedDate": date(visit.start),
                    "encounter": [reference("Encounter", &visit.encounter)],
                    "unitPrice": charge, "net": charge,
                }],
                "total": charge,
            });
            let claim = self.add("Claim", "claim", created, body);
            let processed = created + TimeDelta::days(14);
            let submitted = adjudication("submitted", "Submitted Amount", 148.0);
            let benefit = adjudication("benefit", "Benefit Amount", 87.5);
            let body = json!({
                "status": "active", "type": professional, "use": "claim", "patient": self.subject(),
                "billablePeriod": billed, "created": ts(processed), "insurer": {"display": PAYOR},
                "provider": {"display": CLINIC}, "claim": reference("Claim", &claim),
                "outcome": "complete", "insurance": [{"focal": true, "coverage": coverage}],
                "item": [{
                    "sequence": 1, "productOrService": service, "servicedDate": date(visit.start),
                    "net": charge,
                    "adjudication": [
                        submitted, adjudication("eligible", "Eligible Amount", 112.5),
                        adjudication("copay", "CoPay", 25.0), benefit,
                    ],
                }],
                "total": [submitted, benefit],
                "payment": {
                    "type": hl7("ex-paymenttype", "complete", "Complete"),
                    "date": date(processed), "amount": money(87.5),
                },
            });
            self.add("ExplanationOfBenefit", "eob", processed, body);
        }
    }
}

/// Sets `meta`: version 1, last updated a few minutes after `at` (never after `base`).
fn with_meta(mut resource: Value, at: Time, base: Time) -> Value {
    let updated = (at + TimeDelta::minutes(4)).min(base);
    let meta = json!({"versionId": "1", "lastUpdated": ts(updated)});
    insert(&mut resource, "meta", meta);
    resource
}

/// Adds the draw's Encounter, if it has one.
fn with_encounter(mut body: Value, draw: &Draw) -> Value {
    if let Some(encounter) = &draw.encounter {
        insert(&mut body, "encounter", reference("Encounter", encounter));
    }
    body
}

/// A DocumentReference context: the period, and the Encounter if there is one.
fn context(start: Time, end: Time, encounter: Option<&str>) -> Value {
    let mut context = json!({"period": period(start, end)});
    if let Some(encounter) = encounter {
        let encounter = json!([reference("Encounter", encounter)]);
        insert(&mut context, "encounter", encounter);
    }
    context
}

fn insert(object: &mut Value, key: &str, value: Value) {
    if let Some(fields) = object.as_object_mut() {
        fields.insert(key.to_owned(), value);
    }
}

/// Midnight UTC of `base`'s day, `days_ago` days earlier, plus `minutes`.
fn day_at(base: Time, days_ago: i64, minutes: i64) -> Time {
    let midnight = base.date_naive().and_time(NaiveTime::MIN).and_utc();
    midnight - TimeDelta::days(days_ago) + TimeDelta::minutes(minutes)
}

fn ts(at: Time) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn date(at: Time) -> String {
    at.format("%Y-%m-%d").to_string()
}

fn period(start: Time, end: Time) -> Value {
    json!({"start": ts(start), "end": ts(end)})
}

fn coding(system: &str, code: &str, display: &str) -> Value {
    json!({"system": system, "code": code, "display": display})
}

/// A CodeableConcept of one coding, its text the coding's display.
fn concept(system: &str, code: &str, display: &str) -> Value {
    json!({"coding": [coding(system, code, display)], "text": display})
}

/// A CodeableConcept from the HL7 terminology code system `name`.
fn hl7(name: &str, code: &str, display: &str) -> Value {
    concept(&format!("{THO}{name}"), code, display)
}

/// A CodeableConcept of one coding, no text.
fn code(system: &str, code: &str, display: &str) -> Value {
    json!({"coding": [coding(system, code, display)]})
}

fn reference(kind: &str, id: &str) -> Value {
    json!({"reference": format!("{kind}/{id}")})
}

/// A UCUM quantity, `(unit, ucum code)`; whole numbers are written without a fraction.
fn quantity(value: f64, (unit, ucum): (&str, &str)) -> Value {
    let whole = value.fract() == 0.0 && value.abs() < 1e15;
    let value = if whole {
        json!(value as i64)
    } else {
        json!(value)
    };
    json!({"value": value, "unit": unit, "system": UCUM, "code": ucum})
}

/// An adjudication (or total) amount of an explanation of benefit.
fn adjudication(category: &str, display: &str, value: f64) -> Value {
    json!({"category": hl7("adjudication", category, display), "amount": money(value)})
}

fn money(value: f64) -> Value {
    json!({"value": value, "currency": "USD"})
}

fn round(value: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (value * scale).round() / scale
}

/// H above the range, L below it, N within it.
fn interpretation(value: f64, low: Option<f64>, high: f64) -> (&'static str, &'static str) {
    if value > high {
        ("H", "High")
    } else if low.is_some_and(|low| value < low) {
        ("L", "Low")
    } else {
        ("N", "Normal")
    }
}

/// A plain-text attachment carried inline.
fn inline(text: &str, title: &str, created: Time) -> Value {
    let data = STANDARD.encode(text);
    json!({"contentType": "text/plain", "data": data, "title": title, "creation": ts(created)})
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::collections::{HashMap, HashSet};

    use chrono::NaiveDate;

    use super::*;

    fn base() -> Time {
        at("2025-06-15T18:30:00Z")
    }

    fn at(text: &str) -> Time {
        DateTime::parse_from_rfc3339(text).unwrap().to_utc()
    }

    fn all(chart: &Chart) -> impl Iterator<Item = &Value> {
        std::iter::once(&chart.patient).chain(&chart.resources)
    }

    fn of_type<'a>(chart: &'a Chart, kind: &str) -> Vec<&'a Value> {
        chart
            .resources
            .iter()
            .filter(|r| r["resourceType"] == kind)
            .collect()
    }

    /// Every string in `value`, with the key it sits under.
    fn strings(value: &Value, key: &str, out: &mut Vec<(String, String)>) {
        match value {
            Value::String(s) => out.push((key.to_owned(), s.clone())),
            Value::Array(items) => items.iter().for_each(|item| strings(item, key, out)),
            Value::Object(fields) => fields.iter().for_each(|(k, v)| strings(v, k, out)),
            _ => {}
        }
    }

    fn chart_strings(chart: &Chart) -> Vec<(String, String)> {
        let mut out = Vec::new();
        chart
            .resources
            .iter()
            .for_each(|r| strings(r, "", &mut out));
        out
    }

    #[test]
    fn charts_are_deterministic() {
        for index in [0, 1, 7] {
            let (a, b) = (chart(index, base()), chart(index, base()));
            assert_eq!((a.patient, a.resources), (b.patient, b.resources));
        }
        assert_ne!(chart(2, base()).resources, chart(3, base()).resources);
    }

    #[test]
    fn the_first_two_patients_are_fixed() {
        let rosa = chart(0, base()).patient;
        assert_eq!(rosa["id"], "sbx-p0000");
        assert_eq!(rosa["name"][0]["family"], "Martinez");
        assert_eq!(
            (&rosa["gender"], &rosa["birthDate"]),
            (&json!("female"), &json!("1984-03-09"))
        );
        assert_eq!(rosa["address"][0]["postalCode"], "97201");
        assert_eq!(rosa["telecom"][0]["value"], "+15035550142");
        assert_eq!(rosa["identifier"][0]["system"], MRN_SYSTEM);
        assert_eq!(rosa["identifier"][0]["value"], "MRN000000");
        let sam = chart(1, base()).patient;
        assert_eq!(
            (&sam["name"][0]["given"][0], &sam["gender"]),
            (&json!("Sam"), &json!("male"))
        );
        assert_eq!(sam["telecom"][0]["value"], "+15035550143");
        let other = chart(12, base()).patient;
        let born = other["birthDate"].as_str().unwrap();
        assert!(("1940".."2011").contains(&&born[..4]), "{born}");
        assert!(
            other["address"][0]["postalCode"]
                .as_str()
                .unwrap()
                .starts_with("97")
        );
    }

    #[test]
    fn chart_zero_has_every_resource_type() {
        let chart = chart(0, base());
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for resource in &chart.resources {
            *counts
                .entry(resource["resourceType"].as_str().unwrap())
                .or_default() += 1;
        }
        let kinds = "DocumentReference Binary Observation DiagnosticReport MedicationRequest \
            MedicationStatement AllergyIntolerance Immunization Condition CarePlan Goal Encounter \
            Appointment ImagingStudy Procedure Coverage Claim ExplanationOfBenefit";
        for kind in kinds.split_whitespace() {
            assert!(counts.contains_key(kind), "no {kind}");
        }
        let observations = of_type(&chart, "Observation");
        let loinc = |o: &&Value| o["code"]["coding"][0]["code"].as_str().unwrap().to_owned();
        let codes: HashSet<String> = observations.iter().map(loinc).collect();
        let expected = "2345-7 4548-4 2160-0 2823-3 13457-7 718-7 6690-2 3016-3 \
            85354-9 8867-4 29463-7 8302-2 39156-5 8310-5 59408-5";
        for code in expected.split_whitespace() {
            assert!(codes.contains(code), "no {code}");
        }
        let glucose = observations.iter().filter(|o| loinc(o) == "2345-7").count();
        assert_eq!(glucose, 4, "four draws of every analyte");
        let reports = of_type(&chart, "DiagnosticReport");
        let categories: HashSet<&str> = reports
            .iter()
            .filter_map(|r| r["category"][0]["coding"][0]["code"].as_str())
            .collect();
        assert_eq!(categories, HashSet::from(["LAB", "LP29684-5", "LP7839-6"]));
        let appointments = of_type(&chart, "Appointment");
        assert_eq!(
            appointments
                .iter()
                .filter(|a| a["status"] == "booked")
                .count(),
            1
        );
    }

    #[test]
    fn ids_are_valid_and_unique_across_charts() {
        let mut seen = HashSet::new();
        for chart in charts(20, base()) {
            for resource in all(&chart) {
                let id = resource["id"].as_str().unwrap().to_owned();
                let valid = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '.';
                assert!(
                    !id.is_empty() && id.len() <= 64 && id.chars().all(valid),
                    "{id}"
                );
                assert!(seen.insert(id.clone()), "duplicate {id}");
                assert_eq!(resource["meta"]["versionId"], "1");
            }
        }
    }

    #[test]
    fn references_stay_within_the_chart() {
        for chart in charts(20, base()) {
            let pid = chart.patient["id"].as_str().unwrap();
            let present: HashSet<String> = all(&chart)
                .map(|r| {
                    format!(
                        "{}/{}",
                        r["resourceType"].as_str().unwrap(),
                        r["id"].as_str().unwrap()
                    )
                })
                .collect();
            let mut patient_refs = 0;
            for (key, value) in chart_strings(&chart) {
                if key == "reference" {
                    assert!(present.contains(&value), "{value} is not in chart {pid}");
                    if let Some(target) = value.strip_prefix("Patient/") {
                        assert_eq!(target, pid);
                        patient_refs += 1;
                    }
                }
                if key == "url" {
                    assert!(
                        value.starts_with("Binary/") && present.contains(&value),
                        "{value}"
                    );
                }
            }
            assert!(patient_refs > 100);
            let binaries = of_type(&chart, "Binary");
            assert_eq!(binaries.len(), 1);
            assert_eq!(
                binaries[0]["securityContext"]["reference"],
                format!("Patient/{pid}")
            );
        }
    }

    #[test]
    fn binary_attachment_resolves_and_texts_decode() {
        let chart = chart(0, base());
        let urls: Vec<&str> = of_type(&chart, "DocumentReference")
            .iter()
            .filter_map(|d| d["content"][0]["attachment"]["url"].as_str())
            .collect();
        assert_eq!(urls.len(), 1);
        let id = urls[0].strip_prefix("Binary/").unwrap();
        let binary = of_type(&chart, "Binary")
            .into_iter()
            .find(|b| b["id"] == id)
            .unwrap();
        assert_eq!(binary["contentType"], "text/plain");
        let texts: Vec<String> = chart_strings(&chart)
            .into_iter()
            .filter(|(key, _)| key == "data")
            .map(|(_, data)| String::from_utf8(STANDARD.decode(data).unwrap()).unwrap())
            .collect();
        assert_eq!(
            texts.len(),
            7,
            "6 notes (one in the Binary) and the radiology report"
        );
        assert!(
            texts.iter().all(|t| t.matches(". ").count() >= 3),
            "{texts:?}"
        );
    }

    #[test]
    fn dates_are_not_after_base() {
        for base in [base(), at("2026-01-01T00:05:00Z")] {
            for chart in charts(5, base) {
                for resource in all(&chart) {
                    let booked =
                        resource["resourceType"] == "Appointment" && resource["status"] == "booked";
                    let mut found = Vec::new();
                    strings(resource, "", &mut found);
                    for (key, value) in found {
                        if booked && (key == "start" || key == "end") {
                            assert!(at(&value) > base, "a booked appointment is in the future");
                        } else if let Ok(time) = DateTime::parse_from_rfc3339(&value) {
                            assert!(
                                time <= base && value.ends_with('Z'),
                                "{key} {value} after {base}"
                            );
                        } else if let Ok(day) = NaiveDate::parse_from_str(&value, "%Y-%m-%d") {
                            assert!(day <= base.date_naive(), "{key} {value} after {base}");
                        }
                    }
                    assert!(resource["meta"]["lastUpdated"].is_string());
                }
            }
        }
    }

    #[test]
    fn interpretation_matches_the_reference_range() {
        let mut flags = HashSet::new();
        for chart in charts(20, base()) {
            for lab in of_type(&chart, "Observation") {
                if lab["category"][0]["coding"][0]["code"] != "laboratory" {
                    assert!(lab["interpretation"].is_null());
                    continue;
                }
                let value = lab["valueQuantity"]["value"].as_f64().unwrap();
                let range = &lab["referenceRange"][0];
                assert_eq!(range["high"]["unit"], lab["valueQuantity"]["unit"]);
                let expected = if value > range["high"]["value"].as_f64().unwrap() {
                    "H"
                } else if range["low"]["value"]
                    .as_f64()
                    .is_some_and(|low| value < low)
                {
                    "L"
                } else {
                    "N"
                };
                let coding = &lab["interpretation"][0]["coding"][0];
                assert_eq!(coding["code"], expected, "{lab}");
                assert_eq!(
                    coding["system"],
                    format!("{THO}v3-ObservationInterpretation")
                );
                flags.insert(expected);
            }
        }
        assert_eq!(flags.len(), 3, "high, low and normal results all occur");
    }

    #[test]
    fn each_chart_has_four_pending_resources() {
        for chart in charts(20, base()) {
            let pending: Vec<&Value> = chart.resources.iter().filter(|r| is_pending(r)).collect();
            let count = |kind: &str| pending.iter().filter(|r| r["resourceType"] == kind).count();
            assert_eq!(pending.len(), 4);
            assert_eq!((count("Observation"), count("DiagnosticReport")), (2, 1));
            assert_eq!(count("DocumentReference"), 1);
            for lab in pending
                .iter()
                .filter(|r| r["resourceType"] == "Observation")
            {
                let drawn = at(lab["effectiveDateTime"].as_str().unwrap());
                assert!(drawn >= base() - TimeDelta::days(1));
            }
        }
    }

    #[test]
    fn finalize_marks_pending_resources_final_once() {
        let mut chart = chart(0, base());
        let now = base() + TimeDelta::hours(2);
        let mut finalized = 0;
        for resource in &mut chart.resources {
            let before = resource.clone();
            let pending = is_pending(resource);
            assert_eq!(finalize(resource, now), pending);
            if !pending {
                assert_eq!(*resource, before, "a final resource is left alone");
                continue;
            }
            finalized += 1;
            assert!(!is_pending(resource));
            assert_eq!(resource["meta"]["versionId"], "2");
            assert_eq!(resource["meta"]["lastUpdated"], instant(now));
            if resource["resourceType"] == "DocumentReference" {
                assert_eq!(resource["docStatus"], "final");
            } else {
                assert_eq!(
                    (&resource["status"], &resource["issued"]),
                    (&json!("final"), &json!(instant(now)))
                );
            }
            let after = resource.clone();
            assert!(!finalize(resource, now + TimeDelta::hours(1)));
            assert_eq!(*resource, after);
        }
        assert_eq!(finalized, 4);
        assert!(!chart.resources.iter().any(is_pending));
        assert!(!finalize(&mut json!("not a resource"), now));
    }
}
