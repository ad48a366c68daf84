//! The release policy a clinic may choose, and the only grounds on which one item may be
//! held back.
//!
//! Under the 21st Century Cures Act, holding back a finalized result or note until a
//! clinician has reviewed it is information blocking. So there is no such setting: a clinic
//! chooses only whether *preliminary* results are shown too (labelled), and a request for
//! "hold until reviewed" is refused with the reason. One item may still be withheld, by
//! staff, under one of the eight exceptions of 45 CFR 171 Subparts B and C — named, with a
//! reason and an end date, audited.

use std::fmt;
use std::str::FromStr;

/// What a clinic shows besides what is final (final is always shown at once).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReleasePolicy {
    /// Final results and notes, the moment they are stored; preliminary ones are not shown.
    #[default]
    FinalAtOnce,
    /// Final ones at once, and preliminary ones too, labelled preliminary.
    FinalAndPreliminary,
}

impl ReleasePolicy {
    /// The setting's value.
    pub fn code(self) -> &'static str {
        match self {
            Self::FinalAtOnce => "final-at-once",
            Self::FinalAndPreliminary => "final-and-preliminary",
        }
    }

    /// Whether preliminary items are shown.
    pub fn shows_preliminary(self) -> bool {
        self == Self::FinalAndPreliminary
    }
}

impl fmt::Display for ReleasePolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// Why a release policy was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// A delay before release was asked for.
    #[error(
        "\"{0}\" is not allowed: holding finalized results or notes until they are reviewed is \
         information blocking under the 21st Century Cures Act (45 CFR 171). Final results are \
         always released at once; choose final-at-once or final-and-preliminary, and withhold \
         a single item only under an information-blocking exception"
    )]
    HoldNotAllowed(String),
    /// Not a policy at all.
    #[error("unknown release policy \"{0}\": choose final-at-once or final-and-preliminary")]
    Unknown(String),
}

impl FromStr for ReleasePolicy {
    type Err = PolicyError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let normalized = value.trim().to_ascii_lowercase().replace(['_', ' '], "-");
        match normalized.as_str() {
            "final-at-once" | "immediate" => Ok(Self::FinalAtOnce),
            "final-and-preliminary" => Ok(Self::FinalAndPreliminary),
            other
                if ["hold", "review", "delay", "embargo", "after-"]
                    .iter()
                    .any(|word| other.contains(word)) =>
            {
                Err(PolicyError::HoldNotAllowed(value.trim().to_owned()))
            }
            _ => Err(PolicyError::Unknown(value.trim().to_owned())),
        }
    }
}

/// The eight information-blocking exceptions (45 CFR 171.201–205 and 171.301–303).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Exception {
    /// 171.201: a licensed professional's determination that access would likely endanger
    /// the life or physical safety of the patient or another person.
    PreventingHarm,
    /// 171.202: the patient's privacy (for example, a request not to share).
    Privacy,
    /// 171.203: the security of the information.
    Security,
    /// 171.204: uncontrollable events, segmentation or infeasibility.
    Infeasibility,
    /// 171.205: health IT maintenance or performance.
    HealthItPerformance,
    /// 171.301: content and manner (fulfilled another way).
    ContentAndManner,
    /// 171.302: fees (never for a patient's own access; Portico charges none).
    Fees,
    /// 171.303: licensing of interoperability elements.
    Licensing,
}

impl Exception {
    /// Every exception.
    pub const ALL: [Self; 8] = [
        Self::PreventingHarm,
        Self::Privacy,
        Self::Security,
        Self::Infeasibility,
        Self::HealthItPerformance,
        Self::ContentAndManner,
        Self::Fees,
        Self::Licensing,
    ];

    /// The stored code.
    pub fn code(self) -> &'static str {
        match self {
            Self::PreventingHarm => "preventing_harm",
            Self::Privacy => "privacy",
            Self::Security => "security",
            Self::Infeasibility => "infeasibility",
            Self::HealthItPerformance => "health_it_performance",
            Self::ContentAndManner => "content_and_manner",
            Self::Fees => "fees",
            Self::Licensing => "licensing",
        }
    }

    /// Reads a stored code.
    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|exception| exception.code() == code)
    }

    /// The regulation it is.
    pub fn citation(self) -> &'static str {
        match self {
            Self::PreventingHarm => "45 CFR 171.201",
            Self::Privacy => "45 CFR 171.202",
            Self::Security => "45 CFR 171.203",
            Self::Infeasibility => "45 CFR 171.204",
            Self::HealthItPerformance => "45 CFR 171.205",
            Self::ContentAndManner => "45 CFR 171.301",
            Self::Fees => "45 CFR 171.302",
            Self::Licensing => "45 CFR 171.303",
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn only_the_two_lawful_policies_parse() {
        assert_eq!("final-at-once".parse(), Ok(ReleasePolicy::FinalAtOnce));
        assert_eq!(
            "Final and preliminary".parse(),
            Ok(ReleasePolicy::FinalAndPreliminary)
        );
        for hold in [
            "hold-until-reviewed",
            "hold_until_reviewed",
            "after review",
            "delay-72h",
        ] {
            let err = hold.parse::<ReleasePolicy>().unwrap_err();
            assert!(matches!(err, PolicyError::HoldNotAllowed(_)), "{hold}");
            assert!(err.to_string().contains("information blocking"));
        }
        assert!(matches!(
            "sometimes".parse::<ReleasePolicy>(),
            Err(PolicyError::Unknown(_))
        ));
    }

    #[test]
    fn exceptions_round_trip() {
        for exception in Exception::ALL {
            assert_eq!(Exception::from_code(exception.code()), Some(exception));
            assert!(exception.citation().starts_with("45 CFR 171."));
        }
        assert_eq!(Exception::from_code("awaiting_review"), None);
    }
}
