//! Enrollment with identity proofing: an account is linked to exactly one of the clinic's
//! patients, and only after the person has proved they are that patient.
//!
//! Two ways in:
//!
//! - **Activation code** — staff issue a single-use code bound to one patient, valid for
//!   30 days ([`LocalIdentity::issue_activation_code`]); the patient types it with their
//!   date of birth ([`LocalIdentity::enroll_with_code`]). Five wrong birth dates use the
//!   code up.
//! - **Self-enrollment** — the person gives name, birth date and ZIP
//!   ([`LocalIdentity::start_self_enrollment`]); if exactly one patient matches, a 6-digit
//!   code goes to the contact details the clinic has *on file* (never ones typed); the
//!   code then links the account ([`LocalIdentity::complete_self_enrollment`]).
//!
//! Refusals never say whether a record exists: a failed match gets a ticket like any other,
//! which no code will open, and every failure reads "we could not verify you". Either way
//! the account starts with an authenticator secret that its first code confirms, ten
//! recovery codes, and a session at the password stage: `verify_totp` completes it.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ActiveValue::Set, ColumnTrait, PaginatorTrait, QueryFilter};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::entity::{accounts, activation_codes, verifications};
use super::local::{
    AccountError, Created, LocalIdentity, NewAccount, SignInError, anonymous, client_key,
};
use super::recovery::RecoveryCode;
use super::registry::{Demographics, RegistryError};
use super::role::Role;
use super::sessions::{Issued, SessionError, Stage};
use crate::audit::{Action, Actor, AuditError, NewEvent, Outcome, Purpose};
use crate::crypto::platform_keys::PlatformKeyError;
use crate::crypto::vault::VaultError;
use crate::db::{DbError, TenantTx};
use crate::entropy::Entropy;
use crate::ids::{PatientId, TenantId};
use crate::notify::Message;
use crate::principal::Principal;
use crate::secret::Secret;

/// How long an activation code lasts.
pub const ACTIVATION_DAYS: i64 = 30;
/// How long a code sent to the contact on file lasts.
pub const CODE_MINUTES: i64 = 10;
/// Wrong answers after which a code or ticket is used up.
pub const MAX_FAILURES: i32 = 5;
/// Codes sent for one patient per hour, at most (texts cost the clinic, and annoy).
const SENDS_PER_HOUR: u64 = 5;

/// Why enrollment did not go on. Messages are safe to show.
#[derive(Debug, thiserror::Error)]
pub enum EnrollmentError {
    /// The code, birth date, match or one-time code did not prove who the person is.
    #[error("we could not verify you; please contact the clinic")]
    NotVerified,
    /// The patient already has an account.
    #[error("you already have an account; sign in, or reset your password")]
    AlreadyEnrolled,
    /// The caller may not issue activation codes.
    #[error("not allowed")]
    Forbidden,
    /// No such patient at this clinic.
    #[error("not found")]
    NotFound,
    /// The account could not be made (the password or address is refused).
    #[error(transparent)]
    Account(#[from] AccountError),
    /// Too many recent failures from this client.
    #[error("too many attempts; try again in a little while")]
    TryLater {
        /// When.
        until: DateTime<Utc>,
    },
    /// A required field is malformed.
    #[error("{0}")]
    Invalid(&'static str),
    /// The message could not be sent.
    #[error("the message could not be sent; try again in a little while")]
    NotSent(#[source] crate::notify::NotifyError),
    /// Sealing failed (a key service outage among them).
    #[error(transparent)]
    Vault(#[from] VaultError),
    /// Something failed inside Portico.
    #[error("enrollment failed inside Portico")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

macro_rules! internal {
    ($($error:ty),+ $(,)?) => {
        $(
            impl From<$error> for EnrollmentError {
                fn from(err: $error) -> Self {
                    Self::Internal(Box::new(err))
                }
            }
        )+
    };
}

internal!(
    DbError,
    AuditError,
    super::password::HashError,
    PlatformKeyError,
    sea_orm::DbErr,
    SessionError,
    crate::audit::event::EventError
);

impl From<RegistryError> for EnrollmentError {
    fn from(err: RegistryError) -> Self {
        match err {
            RegistryError::Invalid(message) => Self::Invalid(message),
            RegistryError::Vault(err) => Self::Vault(err),
            other => Self::Internal(Box::new(other)),
        }
    }
}

impl From<SignInError> for EnrollmentError {
    fn from(err: SignInError) -> Self {
        match err {
            SignInError::TryLater { until } => Self::TryLater { until },
            SignInError::Internal(err) => Self::Internal(err),
            other => Self::Internal(Box::new(other)),
        }
    }
}

/// An activation code, to print or hand over once.
#[derive(Debug)]
pub struct ActivationCode {
    /// The code as the patient types it.
    pub code: Secret<String>,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
}

/// A new, enrolled account: what to show once, and the session that owes its first code.
#[derive(Debug)]
pub struct Enrolled {
    /// The account, its authenticator secret and recovery codes.
    pub created: Created,
    /// A session at the password stage; `verify_totp` with the first code completes it.
    pub session: Issued,
}

impl LocalIdentity {
    /// Issues a single-use activation code for one of the clinic's patients, by its staff
    /// (front desk, nurse, provider, clinic admin) or an operator at the CLI.
    pub async fn issue_activation_code(
        &self,
        by: &Principal,
        tenant: TenantId,
        patient: PatientId,
    ) -> Result<ActivationCode, EnrollmentError> {
        let actor = match by {
            Principal::Operator => Actor::operator(),
            Principal::Staff {
                tenant: own,
                account,
                role,
                ..
            } if *own == tenant
                && matches!(
                    role,
                    Role::FrontDesk | Role::Nurse | Role::Provider | Role::TenantAdmin
                ) =>
            {
                Actor {
                    kind: crate::audit::ActorKind::Staff,
                    id: crate::audit::event::Token::for_uuid(account.as_uuid()),
                }
            }
            _ => return Err(EnrollmentError::Forbidden),
        };
        if self.registry.on_file(tenant, patient).await?.is_none() {
            return Err(EnrollmentError::NotFound);
        }
        let code = RecoveryCode::generate(self.entropy.as_ref());
        let hash = self
            .hasher
            .hash(&code.secret, self.entropy.as_ref())
            .await?;
        let now = self.clock.now();
        let expires_at = now + Duration::days(ACTIVATION_DAYS);

        let tx = self.db.begin_serialized(tenant).await?;
        if has_account(&tx, patient).await? {
            return Err(EnrollmentError::AlreadyEnrolled);
        }
        tx.insert(activation_codes::ActiveModel {
            lookup: Set(code.lookup.clone()),
            hash: Set(hash),
            patient_id: Set(patient.as_uuid()),
            failures: Set(0),
            expires_at: Set(expires_at),
            used_at: Set(None),
            created_at: Set(now),
            ..Default::default()
        })
        .await
        .map_err(|err| match err {
            // A 20-bit lookup already taken: vanishingly rare; the caller tries again.
            DbError::Conflict(_) => EnrollmentError::Internal("activation code collision".into()),
            other => other.into(),
        })?;
        let event = NewEvent::new(actor, Action::Create, "ActivationCode", Purpose::Operations)?
            .patient(patient);
        self.audit.append(&tx, &[event]).await?;
        tx.commit().await?;

        Ok(ActivationCode {
            code: code.display(),
            expires_at,
        })
    }

    /// Enrolls with a clinic-issued activation code and the patient's date of birth.
    /// `new.patient` is ignored: the code names the patient.
    pub async fn enroll_with_code(
        &self,
        tenant: TenantId,
        typed: &str,
        birth_date: NaiveDate,
        new: NewAccount<'_>,
        client: &str,
    ) -> Result<Enrolled, EnrollmentError> {
        let now = self.clock.now();
        let code = RecoveryCode::parse(typed);
        let lookup = code.as_ref().map_or_else(String::new, |c| c.lookup.clone());
        let keys = [client_key(client), format!("ac:{lookup}")];
        self.not_throttled(tenant, &keys).await?;

        let read = self.db.begin(tenant).await?;
        let stored = match &code {
            Some(code) => {
                read.find::<activation_codes::Entity>()
                    .filter(activation_codes::Column::Lookup.eq(code.lookup.clone()))
                    .one(read.conn())
                    .await?
            }
            None => None,
        };
        read.commit().await?;
        // The same work whether or not such a code exists.
        let secret = code.map_or_else(|| Secret::new(String::new()), |code| code.secret);
        let matched = self
            .hasher
            .verify(&secret, stored.as_ref().map(|row| row.hash.as_str()))
            .await?;
        // A genuine code that is spent or expired is still recorded against its patient,
        // who sees in their access log that someone tried it.
        let genuine = stored.filter(|_| matched);
        let owner = genuine
            .as_ref()
            .map(|row| PatientId::from_uuid(row.patient_id));
        let usable = genuine.filter(|row| {
            row.used_at.is_none() && row.expires_at > now && row.failures < MAX_FAILURES
        });
        let Some(stored) = usable else {
            self.refuse(tenant, &keys, owner).await?;
            return Err(EnrollmentError::NotVerified);
        };
        let patient = PatientId::from_uuid(stored.patient_id);
        let on_file = self.registry.on_file(tenant, patient).await?;
        if on_file.is_none_or(|on_file| on_file.birth_date != birth_date) {
            self.count_code_failure(tenant, &stored.lookup).await?;
            self.refuse(tenant, &keys, Some(patient)).await?;
            return Err(EnrollmentError::NotVerified);
        }

        let account = NewAccount {
            patient: Some(patient),
            role: Role::Patient,
            ..new
        };
        let prepared = self.prepare_account(tenant, &account, false).await?;
        let tx = self.db.begin_serialized(tenant).await?;
        // Used once: the update that marks it is the check, so two at once cannot both win.
        let used = tx
            .update_many::<activation_codes::Entity>()
            .col_expr(activation_codes::Column::UsedAt, Some(now).into())
            .filter(activation_codes::Column::Lookup.eq(stored.lookup.clone()))
            .filter(activation_codes::Column::UsedAt.is_null())
            .exec(tx.conn())
            .await?;
        if used.rows_affected != 1 {
            drop(tx);
            self.refuse(tenant, &keys, Some(patient)).await?;
            return Err(EnrollmentError::NotVerified);
        }

        self.finish(tx, patient, prepared).await
    }

    /// Starts self-enrollment: looks the person up and, if exactly one patient matches, sends
    /// a code to the contact details on file. Returns a ticket whatever happened, so the
    /// answer does not tell whether a record exists.
    pub async fn start_self_enrollment(
        &self,
        tenant: TenantId,
        who: &Demographics,
        practice: &str,
        client: &str,
    ) -> Result<Secret<String>, EnrollmentError> {
        let keys = [client_key(client), client_key(client)];
        self.not_throttled(tenant, &keys).await?;
        let matches = self.registry.matching(tenant, who).await?;
        let found = match matches.as_slice() {
            [patient] => Some(*patient),
            _ => None,
        };
        let target = match found {
            Some(patient) => self.reachable(tenant, patient).await?,
            None => None,
        };

        let ticket = random_token(self.entropy.as_ref());
        let code = six_digits(self.entropy.as_ref());
        let now = self.clock.now();
        let tx = self.db.begin_serialized(tenant).await?;
        tx.insert(verifications::ActiveModel {
            id: Set(digest(ticket.expose()).to_vec()),
            purpose: Set("enroll".to_owned()),
            patient_id: Set(target.as_ref().map(|(patient, _)| patient.as_uuid())),
            account_id: Set(None),
            // A decoy ticket holds no code: nothing opens it.
            code_hash: Set(target
                .as_ref()
                .map(|_| code_digest(ticket.expose(), code.expose()).to_vec())),
            failures: Set(0),
            expires_at: Set(now + Duration::minutes(CODE_MINUTES)),
            used_at: Set(None),
            created_at: Set(now),
            ..Default::default()
        })
        .await?;
        let outcome = if target.is_some() {
            Outcome::Success
        } else {
            Outcome::Denied
        };
        let mut event = NewEvent::new(
            anonymous(),
            Action::Search,
            "Patient",
            Purpose::PatientRequest,
        )?
        .outcome(outcome);
        event.patient = target.as_ref().map(|(patient, _)| *patient);
        self.audit.append(&tx, &[event]).await?;
        tx.commit().await?;

        if let Some((patient, contact)) = target {
            let message = Message::VerificationCode {
                practice: practice.to_owned(),
                code,
                minutes: CODE_MINUTES,
            };
            // A failed send is not told to the person: it would say a record exists.
            if let Err(err) = self.notifier.send(tenant, &contact, &message).await {
                tracing::warn!(tenant.id = %tenant, patient.id = %patient, channel = contact.channel(),
                    error = %crate::notify::describe(&err), "verification code not sent");
            }
        }

        Ok(ticket)
    }

    /// Completes self-enrollment with the code sent to the contact on file.
    pub async fn complete_self_enrollment(
        &self,
        tenant: TenantId,
        ticket: &str,
        code: &str,
        new: NewAccount<'_>,
        client: &str,
    ) -> Result<Enrolled, EnrollmentError> {
        let keys = [client_key(client), client_key(client)];
        self.not_throttled(tenant, &keys).await?;
        let Some(row) = self.open_ticket(tenant, "enroll", ticket, code).await? else {
            self.refuse(tenant, &keys, None).await?;
            return Err(EnrollmentError::NotVerified);
        };
        let Some(patient) = row.patient_id.map(PatientId::from_uuid) else {
            self.refuse(tenant, &keys, None).await?;
            return Err(EnrollmentError::NotVerified);
        };

        let account = NewAccount {
            patient: Some(patient),
            role: Role::Patient,
            ..new
        };
        let prepared = self.prepare_account(tenant, &account, false).await?;
        let tx = self.db.begin_serialized(tenant).await?;
        if !use_ticket(&tx, &row.id, self.clock.now()).await? {
            drop(tx);
            self.refuse(tenant, &keys, Some(patient)).await?;
            return Err(EnrollmentError::NotVerified);
        }

        self.finish(tx, patient, prepared).await
    }

    /// The account is written, linked and audited, and a session owing its first code is
    /// started, in the transaction that used the code.
    async fn finish(
        &self,
        tx: TenantTx,
        patient: PatientId,
        mut prepared: super::local::PreparedAccount,
    ) -> Result<Enrolled, EnrollmentError> {
        if has_account(&tx, patient).await? {
            return Err(EnrollmentError::AlreadyEnrolled);
        }
        let pending = prepared.pending.take();
        let created = self.insert_account(&tx, prepared, Actor::system()).await?;
        let session = self.first_session(&tx, created.account, pending).await?;
        tx.commit().await?;

        Ok(Enrolled { created, session })
    }

    /// The session a new account starts with, waiting for its authenticator's first code,
    /// with the provider's sealed state for that step when the provider checks codes.
    pub(super) async fn first_session(
        &self,
        tx: &TenantTx,
        account: crate::ids::AccountId,
        pending: Option<Vec<u8>>,
    ) -> Result<Issued, SessionError> {
        let session = self
            .sessions
            .issue(
                tx,
                account,
                Stage::Password,
                self.clock.as_ref(),
                self.entropy.as_ref(),
            )
            .await?;
        if let Some(sealed) = pending {
            self.sessions
                .attach_provider_state(tx, &session.session, sealed)
                .await?;
        }
        Ok(session)
    }

    /// The verification ticket `ticket` for `purpose`, if `code` is its code and it is
    /// still good; a wrong code counts against it.
    pub(super) async fn open_ticket(
        &self,
        tenant: TenantId,
        purpose: &str,
        ticket: &str,
        code: &str,
    ) -> Result<Option<verifications::Model>, EnrollmentError> {
        let now = self.clock.now();
        let id = digest(ticket).to_vec();
        let tx = self.db.begin_serialized(tenant).await?;
        let row = tx
            .find::<verifications::Entity>()
            .filter(verifications::Column::Id.eq(id.clone()))
            .filter(verifications::Column::Purpose.eq(purpose))
            .one(tx.conn())
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let live = row.used_at.is_none() && row.expires_at > now && row.failures < MAX_FAILURES;
        let given = code_digest(ticket, code.trim());
        let right = row
            .code_hash
            .as_deref()
            .is_some_and(|stored| constant_time_eq(stored, &given));
        if live && right {
            return Ok(Some(row));
        }
        if live {
            tx.update_many::<verifications::Entity>()
                .col_expr(
                    verifications::Column::Failures,
                    Expr::col(verifications::Column::Failures).add(1),
                )
                .filter(verifications::Column::Id.eq(id))
                .exec(tx.conn())
                .await?;
            tx.commit().await?;
        }

        Ok(None)
    }

    /// Refuses unless neither key is throttled now.
    pub(super) async fn not_throttled(
        &self,
        tenant: TenantId,
        keys: &[String; 2],
    ) -> Result<(), EnrollmentError> {
        let now = self.clock.now();
        let tx = self.db.begin(tenant).await?;
        let counts = self.throttles(&tx, keys).await?;
        tx.commit().await?;
        match counts.iter().filter_map(|t| t.1).filter(|u| *u > now).max() {
            Some(until) => Err(EnrollmentError::TryLater { until }),
            None => Ok(()),
        }
    }

    /// Counts a failed enrollment against the client (and the code) and audits it.
    async fn refuse(
        &self,
        tenant: TenantId,
        keys: &[String; 2],
        patient: Option<PatientId>,
    ) -> Result<(), EnrollmentError> {
        self.fail_as(tenant, &anonymous(), keys, None, Action::Create)
            .await?;
        if let Some(patient) = patient {
            // The patient sees in their access log that someone tried to enroll as them.
            let event = NewEvent::new(
                anonymous(),
                Action::Create,
                "Account",
                Purpose::PatientRequest,
            )?
            .outcome(Outcome::Denied)
            .patient(patient);
            self.audit.record(tenant, &[event]).await?;
        }
        Ok(())
    }

    async fn count_code_failure(&self, tenant: TenantId, lookup: &str) -> Result<(), DbError> {
        let tx = self.db.begin_serialized(tenant).await?;
        tx.update_many::<activation_codes::Entity>()
            .col_expr(
                activation_codes::Column::Failures,
                Expr::col(activation_codes::Column::Failures).add(1),
            )
            .filter(activation_codes::Column::Lookup.eq(lookup))
            .exec(tx.conn())
            .await?;
        tx.commit().await
    }

    /// Where a code for `patient` may go: the first contact on file, unless the patient
    /// already has an account or was sent too many codes in the last hour.
    async fn reachable(
        &self,
        tenant: TenantId,
        patient: PatientId,
    ) -> Result<Option<(PatientId, crate::notify::Contact)>, EnrollmentError> {
        let since = self.clock.now() - Duration::hours(1);
        let tx = self.db.begin(tenant).await?;
        let enrolled = has_account(&tx, patient).await?;
        let recent = tx
            .find::<verifications::Entity>()
            .filter(verifications::Column::PatientId.eq(patient.as_uuid()))
            .filter(verifications::Column::CreatedAt.gt(since))
            .count(tx.conn())
            .await?;
        tx.commit().await?;
        if enrolled || recent >= SENDS_PER_HOUR {
            return Ok(None);
        }
        let on_file = self.registry.on_file(tenant, patient).await?;

        Ok(on_file
            .and_then(|on_file| on_file.contacts.into_iter().next())
            .map(|contact| (patient, contact)))
    }
}

/// Marks a ticket used; false if another request used it first.
pub(super) async fn use_ticket(
    tx: &TenantTx,
    id: &[u8],
    now: DateTime<Utc>,
) -> Result<bool, DbError> {
    let used = tx
        .update_many::<verifications::Entity>()
        .col_expr(verifications::Column::UsedAt, Some(now).into())
        .filter(verifications::Column::Id.eq(id.to_vec()))
        .filter(verifications::Column::UsedAt.is_null())
        .exec(tx.conn())
        .await?;
    Ok(used.rows_affected == 1)
}

async fn has_account(tx: &TenantTx, patient: PatientId) -> Result<bool, DbError> {
    let count = tx
        .find::<accounts::Entity>()
        .filter(accounts::Column::PatientId.eq(patient.as_uuid()))
        .count(tx.conn())
        .await?;
    Ok(count > 0)
}

/// A 256-bit ticket, base64url, held only by the person; stored as its SHA-256.
pub(super) fn random_token(entropy: &dyn Entropy) -> Secret<String> {
    let mut bytes = Zeroizing::new([0u8; 32]);
    entropy.fill(bytes.as_mut());
    Secret::new(hex(bytes.as_ref()))
}

/// Lower-case hex.
pub(super) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A 6-digit code, uniformly drawn.
pub(super) fn six_digits(entropy: &dyn Entropy) -> Secret<String> {
    loop {
        let mut bytes = [0u8; 4];
        entropy.fill(&mut bytes);
        let n = u32::from_le_bytes(bytes);
        // Reject the top sliver so every code is equally likely.
        if n < 4_294_000_000 {
            return Secret::new(format!("{:06}", n % 1_000_000));
        }
    }
}

pub(super) fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// The stored form of a code: bound to its ticket, so it is worthless without the ticket
/// that only the person holds.
pub(super) fn code_digest(ticket: &str, code: &str) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(ticket.as_bytes());
    hasher.update(b":");
    hasher.update(code.as_bytes());
    hasher.finalize().into()
}

pub(super) use crate::secret::constant_time_eq;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entropy::SeededEntropy;

    #[test]
    fn codes_are_six_digits_and_bound_to_their_ticket() {
        let entropy = SeededEntropy::new(3);
        for _ in 0..100 {
            let code = six_digits(&entropy);
            assert_eq!(code.expose().len(), 6);
            assert!(code.expose().bytes().all(|b| b.is_ascii_digit()));
        }
        assert_ne!(code_digest("a", "123456"), code_digest("b", "123456"));
    }
}
