//! Typed ids: no bare `Uuid` crosses a module boundary.
//!
//! Ids are UUIDv7 (time-ordered, so indexes stay compact), made from the injected clock and
//! entropy rather than ambient ones.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::clock::Clock;
use crate::entropy::Entropy;

/// Makes a new time-ordered id from the given clock and entropy.
pub fn new_uuid(clock: &dyn Clock, entropy: &dyn Entropy) -> Uuid {
    let millis = u64::try_from(clock.now().timestamp_millis()).unwrap_or(0);
    let mut random = [0u8; 10];
    entropy.fill(&mut random);
    uuid::Builder::from_unix_timestamp_millis(millis, &random).into_uuid()
}

macro_rules! id_type {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// A new id from the injected clock and entropy.
            pub fn generate(clock: &dyn Clock, entropy: &dyn Entropy) -> Self {
                Self(new_uuid(clock, entropy))
            }

            /// Wraps an id read from storage.
            pub const fn from_uuid(id: Uuid) -> Self {
                Self(id)
            }

            /// The id as stored.
            pub const fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }

        impl From<$name> for sea_orm::Value {
            fn from(id: $name) -> Self {
                id.0.into()
            }
        }
    };
}

id_type!(
    /// A clinic: the unit of isolation for every row of patient data.
    TenantId
);

id_type!(
    /// One HTTP request, for correlating log lines.
    RequestId
);

id_type!(
    /// A data key: named in the header of every value sealed with it.
    DataKeyId
);

id_type!(
    /// A patient of one clinic: the person whose record it is.
    PatientId
);

id_type!(
    /// A sign-in account at one clinic: a patient's or a staff member's.
    AccountId
);

id_type!(
    /// A message handed to the notifier (an SMS or e-mail in the outbox).
    MessageId
);

id_type!(
    /// One item of a patient's health record, as synced from the clinic's EHR.
    RecordId
);

id_type!(
    /// One unit of sync work (a backfill, a poll, a pushed change) in the shared queue.
    SyncJobId
);

id_type!(
    /// A decision to withhold one record item under an information-blocking exception.
    WithholdingId
);

#[cfg(test)]
mod tests {
    use chrono::DateTime;

    use super::*;
    use crate::clock::ManualClock;
    use crate::entropy::SeededEntropy;

    #[test]
    fn ids_are_ordered_by_creation_time() {
        let clock = ManualClock::new(DateTime::from_timestamp(1_700_000_000, 0).unwrap());
        let entropy = SeededEntropy::new(7);
        let first = TenantId::generate(&clock, &entropy);

        clock.advance(chrono::Duration::milliseconds(1));
        let second = TenantId::generate(&clock, &entropy);

        assert!(first < second);
        assert_eq!(first.as_uuid().get_version_num(), 7);
    }

    #[test]
    fn an_id_survives_display_and_parse() {
        let clock = ManualClock::new(DateTime::from_timestamp(1_700_000_000, 0).unwrap());
        let id = TenantId::generate(&clock, &SeededEntropy::new(1));

        assert_eq!(id.to_string().parse::<TenantId>().unwrap(), id);
        assert!("not-an-id".parse::<TenantId>().is_err());
    }
}
