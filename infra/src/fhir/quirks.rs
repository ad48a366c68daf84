//! What each EHR vendor needs of a search, and how fast it may be called.
//!
//! A small table, grown as vendors are met: every vendor gets searches scoped to one
//! patient (Epic and Oracle Health refuse searches without a patient; it is also all that
//! Portico may ask for), athenahealth also needs its practice (`ah-practice`), and each
//! vendor has a request rate Portico keeps under.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use portico_tenants::{Connector, Vendor};

/// A vendor's needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quirks {
    /// Requests per second Portico makes at most, per clinic.
    pub requests_per_sec: u32,
    /// Entries per page asked for (`_count`).
    pub page_size: u32,
}

/// The table.
pub fn quirks(vendor: Vendor) -> Quirks {
    match vendor {
        Vendor::Epic | Vendor::OracleHealth => Quirks {
            requests_per_sec: 10,
            page_size: 100,
        },
        Vendor::Athenahealth => Quirks {
            requests_per_sec: 5,
            page_size: 100,
        },
        Vendor::FhirR4 => Quirks {
            requests_per_sec: 20,
            page_size: 100,
        },
        Vendor::Sandbox => Quirks {
            requests_per_sec: 1000,
            page_size: 500,
        },
    }
}

/// The parameters of an incremental search for one patient's resources of one type:
/// everything changed after `since` (all of them when `None`).
pub fn patient_search(
    connector: &Connector,
    resource_type: &str,
    patient: &str,
    since: Option<DateTime<Utc>>,
) -> Vec<(&'static str, String)> {
    let mut params = Vec::new();
    if resource_type == "Patient" {
        params.push(("_id", patient.to_owned()));
    } else {
        params.push(("patient", patient.to_owned()));
    }
    if let Some(since) = since {
        params.push((
            "_lastUpdated",
            format!("gt{}", since.to_rfc3339_opts(SecondsFormat::Millis, true)),
        ));
    }
    params.push(("_count", quirks(connector.vendor).page_size.to_string()));
    if let (Vendor::Athenahealth, Some(practice)) = (connector.vendor, &connector.practice_id) {
        params.push((
            "ah-practice",
            format!("Organization/a-1.Practice-{practice}"),
        ));
    }
    params
}

/// The `category` values a vendor wants a search of `resource_type` split into (each one a
/// search of its own), or none when one search returns every category.
///
/// Epic's Observation search refuses a request without a category (or code), and Oracle
/// Health's returns only some categories without one; both are asked once per category.
pub fn categories(vendor: Vendor, resource_type: &str) -> &'static [&'static str] {
    match (vendor, resource_type) {
        (Vendor::Epic | Vendor::OracleHealth, "Observation") => &[
            "laboratory",
            "vital-signs",
            "social-history",
            "exam",
            "survey",
            "imaging",
            "procedure",
        ],
        _ => &[],
    }
}

/// Spaces requests so that no more than a rate are made: each reservation returns how long
/// to wait before sending.
#[derive(Debug)]
pub struct Pacer {
    spacing: Duration,
    next: Option<tokio::time::Instant>,
}

impl Pacer {
    /// At most `per_sec` requests a second.
    pub fn new(per_sec: u32) -> Self {
        Self {
            spacing: Duration::from_secs(1) / per_sec.max(1),
            next: None,
        }
    }

    /// Takes the next slot at or after `now`; the wait until it.
    pub fn reserve(&mut self, now: tokio::time::Instant) -> Duration {
        let slot = self.next.map_or(now, |next| next.max(now));
        self.next = Some(slot + self.spacing);
        slot - now
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use portico_platform::secret::Secret;

    fn connector(vendor: Vendor, practice: Option<&str>) -> Connector {
        Connector {
            vendor,
            base_url: "https://ehr.example.org/fhir".parse().unwrap(),
            token_url: "https://ehr.example.org/token".parse().unwrap(),
            scopes: "system/*.read".to_owned(),
            auth: portico_tenants::ConnectorAuth::ClientSecret {
                client_id: "x".to_owned(),
                client_secret: Secret::new("s".repeat(20)),
            },
            practice_id: practice.map(str::to_owned),
            poll_interval_secs: 300,
            notification_secret: Secret::new("n".repeat(40)),
            release: portico_platform::records::ReleasePolicy::FinalAtOnce,
        }
    }

    #[test]
    fn searches_name_the_patient_the_change_time_and_athenas_practice() {
        let since = DateTime::parse_from_rfc3339("2026-12-04T09:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let epic = patient_search(
            &connector(Vendor::Epic, None),
            "Observation",
            "p1",
            Some(since),
        );
        assert_eq!(
            epic,
            [
                ("patient", "p1".to_owned()),
                ("_lastUpdated", "gt2026-12-04T09:00:00.000Z".to_owned()),
                ("_count", "100".to_owned()),
            ]
        );
        let athena = patient_search(
            &connector(Vendor::Athenahealth, Some("195900")),
            "Patient",
            "a-1.E-14914",
            None,
        );
        assert_eq!(athena[0], ("_id", "a-1.E-14914".to_owned()));
        assert!(athena.contains(&("ah-practice", "Organization/a-1.Practice-195900".to_owned())));
    }

    #[test]
    fn epic_and_oracle_observations_are_asked_for_by_category() {
        for vendor in [Vendor::Epic, Vendor::OracleHealth] {
            let split = categories(vendor, "Observation");
            assert!(split.contains(&"laboratory") && split.contains(&"vital-signs"));
            assert!(categories(vendor, "Condition").is_empty());
        }
        assert!(categories(Vendor::FhirR4, "Observation").is_empty());
        assert!(categories(Vendor::Sandbox, "Observation").is_empty());
    }

    #[test]
    fn the_pacer_spaces_requests_at_the_rate() {
        let mut pacer = Pacer::new(10);
        let start = tokio::time::Instant::now();
        let waits: Vec<u128> = (0..4).map(|_| pacer.reserve(start).as_millis()).collect();
        assert_eq!(waits, [0, 100, 200, 300]);
        // After a quiet spell there is no debt to wait off.
        let later = start + Duration::from_secs(5);
        assert_eq!(pacer.reserve(later), Duration::ZERO);
    }
}
