//! The patient registry: who the clinic's patients are, for identity proofing.
//!
//! Enrollment links an account to exactly one patient. [`PatientRegistry`] is the port it
//! asks: which patients have this name, birth date and ZIP, and what the clinic has on file
//! for one (birth date and contact details, where one-time codes go). The EHR connector
//! will back it with the EHR's `Patient` search; until then [`LocalRegistry`] backs it with
//! the clinic's own `patients` table, demographics sealed under the clinic's key and found
//! by a blind index of the normalized matching fields.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::NaiveDate;
use sea_orm::{ActiveValue::Set, ColumnTrait, QueryFilter};
use serde::{Deserialize, Serialize};
use unicode_normalization::UnicodeNormalization;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use super::entity::patients;
use crate::audit::{Action, Actor, AuditError, AuditTrail, NewEvent, Purpose};
use crate::clock::Clock;
use crate::crypto::phi::Phi;
use crate::crypto::platform_keys::{PlatformKeyError, PlatformKeys};
use crate::crypto::seal::Place;
use crate::crypto::seal::Sealed;
use crate::crypto::vault::{Vault, VaultError};
use crate::db::{Db, DbError};
use crate::entropy::Entropy;
use crate::ids::{PatientId, TenantId};
use crate::notify::Contact;

/// The platform key that makes demographic lookups blind.
pub const MATCH_INDEX_KEY: &str = "identity-patient-match";

/// What a person gives to be found: the fields enrollment matches on.
#[derive(Debug, Clone)]
pub struct Demographics {
    /// Given (first) name.
    pub given: Phi,
    /// Family name.
    pub family: Phi,
    /// Date of birth.
    pub birth_date: NaiveDate,
    /// ZIP code (the first five digits are compared).
    pub postal_code: Phi,
}

impl Demographics {
    /// The normalized form that is indexed: case, accents' composition, punctuation and
    /// extra spaces do not matter; `None` when a field is empty.
    fn match_key(&self) -> Option<Zeroizing<String>> {
        let given = normalize_name(self.given.expose());
        let family = normalize_name(self.family.expose());
        let zip: Zeroizing<String> = Zeroizing::new(
            self.postal_code
                .expose()
                .chars()
                .filter(char::is_ascii_digit)
                .take(5)
                .collect(),
        );
        if given.is_empty() || family.is_empty() || zip.len() != 5 {
            return None;
        }
        Some(Zeroizing::new(format!(
            "{}|{}|{}|{}",
            family.as_str(),
            given.as_str(),
            self.birth_date,
            zip.as_str()
        )))
    }
}

/// What the clinic has on file for a patient, as proofing needs it.
#[derive(Debug, Clone)]
pub struct OnFile {
    /// Date of birth.
    pub birth_date: NaiveDate,
    /// Where codes may be sent: the mobile number first, then the e-mail address.
    pub contacts: Vec<Contact>,
}

/// A patient to register (the EHR's job later; the CLI and the demo now).
#[derive(Debug, Clone)]
pub struct NewPatient {
    /// Name, birth date and ZIP.
    pub demographics: Demographics,
    /// Mobile number on file (E.164), if any.
    pub phone: Option<String>,
    /// E-mail address on file, if any.
    pub email: Option<String>,
}

/// Why the registry could not answer.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// A field is missing or malformed.
    #[error("{0}")]
    Invalid(&'static str),
    /// Sealing or opening failed (a key service outage among them).
    #[error(transparent)]
    Vault(#[from] VaultError),
    /// The registry's source failed.
    #[error("the patient registry failed")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl From<DbError> for RegistryError {
    fn from(err: DbError) -> Self {
        Self::Internal(Box::new(err))
    }
}

impl From<sea_orm::DbErr> for RegistryError {
    fn from(err: sea_orm::DbErr) -> Self {
        Self::Internal(Box::new(err))
    }
}

impl From<PlatformKeyError> for RegistryError {
    fn from(err: PlatformKeyError) -> Self {
        Self::Internal(Box::new(err))
    }
}

impl From<AuditError> for RegistryError {
    fn from(err: AuditError) -> Self {
        Self::Internal(Box::new(err))
    }
}

/// Where proofing looks patients up.
#[async_trait]
pub trait PatientRegistry: Send + Sync + fmt::Debug {
    /// The patients of `tenant` with exactly these demographics (none, one, or — for a
    /// registry with duplicates — several; enrollment accepts only one).
    async fn matching(
        &self,
        tenant: TenantId,
        who: &Demographics,
    ) -> Result<Vec<PatientId>, RegistryError>;

    /// What the clinic has on file for `patient`, if it is one of the clinic's.
    async fn on_file(
        &self,
        tenant: TenantId,
        patient: PatientId,
    ) -> Result<Option<OnFile>, RegistryError>;
}

/// The sealed form of a registry row.
#[derive(Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
struct Stored {
    given: String,
    family: String,
    birth_date: String,
    postal_code: String,
    phone: Option<String>,
    email: Option<String>,
}

/// The registry in the clinic's own `patients` table.
#[derive(Debug, Clone)]
pub struct LocalRegistry {
    db: Db,
    vault: Vault,
    platform_keys: PlatformKeys,
    audit: AuditTrail,
    clock: Arc<dyn Clock>,
    entropy: Arc<dyn Entropy>,
}

impl LocalRegistry {
    /// The registry over `db`.
    pub fn new(
        db: Db,
        vault: Vault,
        platform_keys: PlatformKeys,
        audit: AuditTrail,
        clock: Arc<dyn Clock>,
        entropy: Arc<dyn Entropy>,
    ) -> Self {
        Self {
            db,
            vault,
            platform_keys,
            audit,
            clock,
            entropy,
        }
    }

    /// Registers a patient, by the operator or Portico itself (the EHR's job once
    /// connectors exist). The creation is audited.
    pub async fn add(
        &self,
        actor: Actor,
        tenant: TenantId,
        new: &NewPatient,
    ) -> Result<PatientId, RegistryError> {
        let key = new.demographics.match_key().ok_or(RegistryError::Invalid(
            "given name, family name and a 5-digit ZIP code are required",
        ))?;
        let phone = new.phone.as_deref().map(normalize_phone).transpose()?;
        let email = new.email.as_deref().map(str::trim).map(str::to_lowercase);
        if phone.is_none() && email.is_none() {
            return Err(RegistryError::Invalid(
                "a mobile number or an e-mail address is required, for verification codes",
            ));
        }
        let index = self
            .platform_keys
            .blind_index(MATCH_INDEX_KEY, tenant, &key)
            .await?;
        let id = PatientId::generate(self.clock.as_ref(), self.entropy.as_ref());
        let row = id.to_string();
        let demographics = &new.demographics;
        let stored = Stored {
            given: demographics.given.expose().trim().to_owned(),
            family: demographics.family.expose().trim().to_owned(),
            birth_date: demographics.birth_date.to_string(),
            postal_code: demographics.postal_code.expose().trim().to_owned(),
            phone,
            email,
        };

        let sealing = self.db.begin(tenant).await?;
        let record = self
            .vault
            .seal_value(&sealing, &place(tenant, &row), &stored)
            .await?;
        sealing.commit().await?;

        let tx = self.db.begin_serialized(tenant).await?;
        tx.insert(patients::ActiveModel {
            id: Set(id.as_uuid()),
            match_index: Set(index.to_vec()),
            record: Set(record.into_bytes()),
            created_at: Set(self.clock.now()),
            ..Default::default()
        })
        .await?;
        let event = NewEvent::new(actor, Action::Create, "Patient", Purpose::Operations)
            .and_then(|event| event.resource(&row))
            .map_err(AuditError::from)?
            .patient(id);
        self.audit.append(&tx, &[event]).await?;
        tx.commit().await?;

        Ok(id)
    }
}

#[async_trait]
impl PatientRegistry for LocalRegistry {
    async fn matching(
        &self,
        tenant: TenantId,
        who: &Demographics,
    ) -> Result<Vec<PatientId>, RegistryError> {
        let Some(key) = who.match_key() else {
            return Ok(Vec::new());
        };
        let index = self
            .platform_keys
            .blind_index(MATCH_INDEX_KEY, tenant, &key)
            .await?;
        let tx = self.db.begin(tenant).await?;
        let rows = tx
            .find::<patients::Entity>()
            .filter(patients::Column::MatchIndex.eq(index.to_vec()))
            .all(tx.conn())
            .await?;
        tx.commit().await?;

        Ok(rows
            .into_iter()
            .map(|row| PatientId::from_uuid(row.id))
            .collect())
    }

    async fn on_file(
        &self,
        tenant: TenantId,
        patient: PatientId,
    ) -> Result<Option<OnFile>, RegistryError> {
        let tx = self.db.begin(tenant).await?;
        let row = tx
            .find::<patients::Entity>()
            .filter(patients::Column::Id.eq(patient.as_uuid()))
            .one(tx.conn())
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let stored: Stored = self
            .vault
            .open_value(
                &tx,
                &place(tenant, &patient.to_string()),
                &Sealed::from_stored(row.record),
            )
            .await?;
        tx.commit().await?;
        let birth_date = stored
            .birth_date
            .parse()
            .map_err(|_| RegistryError::Invalid("the stored birth date is not a date"))?;
        let contacts = stored
            .phone
            .clone()
            .map(Contact::Sms)
            .into_iter()
            .chain(stored.email.clone().map(Contact::Email))
            .collect();

        Ok(Some(OnFile {
            birth_date,
            contacts,
        }))
    }
}

fn place(tenant: TenantId, row: &str) -> Place<'_> {
    Place {
        tenant,
        table: "patients",
        column: "record",
        row,
    }
}

/// NFKC, lower case, letters and digits only, single spaces: "O'Brien-Smith " and
/// "obrien smith" differ, but "José" typed composed or decomposed does not.
fn normalize_name(name: &str) -> Zeroizing<String> {
    let folded: Zeroizing<String> = Zeroizing::new(name.nfkc().collect::<String>().to_lowercase());
    let kept: Zeroizing<String> = Zeroizing::new(
        folded
            .chars()
            .map(|c| if c.is_alphanumeric() { c } else { ' ' })
            .collect(),
    );
    Zeroizing::new(kept.split_whitespace().collect::<Vec<_>>().join(" "))
}

/// A US or international mobile number in E.164 form.
fn normalize_phone(phone: &str) -> Result<String, RegistryError> {
    let digits: String = phone.chars().filter(char::is_ascii_digit).collect();
    let international = phone.trim_start().starts_with('+');
    let e164 = match (international, digits.len()) {
        (true, 8..=15) => format!("+{digits}"),
        (false, 10) => format!("+1{digits}"),
        (false, 11) if digits.starts_with('1') => format!("+{digits}"),
        _ => {
            return Err(RegistryError::Invalid(
                "the mobile number is not a phone number (E.164, or 10 digits in the US)",
            ));
        }
    };
    Ok(e164)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who(given: &str, family: &str, zip: &str) -> Demographics {
        Demographics {
            given: Phi::new(given),
            family: Phi::new(family),
            birth_date: NaiveDate::from_ymd_opt(1984, 3, 9).unwrap(),
            postal_code: Phi::new(zip),
        }
    }

    #[test]
    fn case_spacing_and_composition_do_not_change_the_match() {
        let typed = who("  José ", "GARCÍA  lópez", "97201-1234");
        let on_file = who("jose\u{301}", "García López", "97201");
        assert_eq!(
            typed.match_key().unwrap().as_str(),
            on_file.match_key().unwrap().as_str()
        );
        assert_ne!(
            who("Ana", "Lopez", "97201").match_key().unwrap().as_str(),
            who("Ana", "Lopez", "97202").match_key().unwrap().as_str()
        );
    }

    #[test]
    fn an_empty_name_or_short_zip_matches_nothing() {
        assert!(who("", "Lopez", "97201").match_key().is_none());
        assert!(who("Ana", "  ", "97201").match_key().is_none());
        assert!(who("Ana", "Lopez", "972").match_key().is_none());
    }

    #[test]
    fn phone_numbers_become_e164() {
        assert_eq!(normalize_phone("(503) 555-0142").unwrap(), "+15035550142");
        assert_eq!(
            normalize_phone("+44 20 7946 0958").unwrap(),
            "+442079460958"
        );
        assert!(normalize_phone("555-0142").is_err());
    }
}
