//! Password reset without PHI, and never on one factor alone.
//!
//! [`LocalIdentity::request_password_reset`] sends a 6-digit code to the contact on file
//! — for a patient, what the clinic's registry holds (mobile first); for staff, the
//! account's address — and returns a ticket whatever the address typed, so the answer does
//! not tell whether an account exists. [`LocalIdentity::reset_password`] needs the ticket,
//! the code, **and** the second factor (a code from the authenticator app or a recovery
//! code). Without the second factor it refuses with [`ResetError::AssistedRecovery`]: the
//! clinic verifies the person and issues a new activation path. A reset ends every
//! session of the account and lifts a lock left by repeated failures.

use chrono::Duration;
use sea_orm::{ActiveValue::Set, ColumnTrait, QueryFilter};

use super::enrollment::{
    CODE_MINUTES, EnrollmentError, code_digest, digest, random_token, six_digits, use_ticket,
};
use super::entity::{accounts, verifications};
use super::local::{
    LocalIdentity, SignInError, account_actor, account_by_id, address_key, anonymous, client_key,
    event, normalize_email, place,
};
use super::password::{Context, PasswordProblem};
use crate::audit::{Action, NewEvent, Outcome, Purpose};
use crate::db::TenantTx;
use crate::ids::{AccountId, PatientId, TenantId};
use crate::notify::{Contact, Message};
use crate::secret::Secret;

/// The second factor offered with a reset.
#[derive(Debug, Clone, Copy)]
pub enum SecondFactor<'a> {
    /// A code from the authenticator app.
    Totp(&'a str),
    /// One of the recovery codes (used up).
    RecoveryCode(&'a str),
    /// Neither: the person has lost both.
    Neither,
}

/// What the person gives to reset their password.
#[derive(Debug, Clone, Copy)]
pub struct PasswordReset<'a> {
    /// The ticket `request_password_reset` returned.
    pub ticket: &'a str,
    /// The code sent to the contact on file.
    pub code: &'a str,
    /// The new password.
    pub password: &'a Secret<String>,
    /// The second factor.
    pub second: SecondFactor<'a>,
}

/// Why a reset did not go on. Messages are safe to show.
#[derive(Debug, thiserror::Error)]
pub enum ResetError {
    /// The ticket, code or second factor is not right, or has expired.
    #[error("that code is not right or has expired; ask for a new one")]
    NotVerified,
    /// No second factor: only the clinic can recover the account.
    #[error(
        "a password can be reset here only with your authenticator app or a recovery code; \
         please contact the clinic to recover your account"
    )]
    AssistedRecovery,
    /// The new password breaks a rule.
    #[error("the password is not accepted: {0}")]
    Password(#[from] PasswordProblem),
    /// Anything else, as enrollment reports it (throttling, outages, internal).
    #[error(transparent)]
    Other(#[from] EnrollmentError),
}

impl From<SignInError> for ResetError {
    fn from(err: SignInError) -> Self {
        Self::Other(err.into())
    }
}

macro_rules! via_enrollment {
    ($($error:ty),+) => {
        $(
            impl From<$error> for ResetError {
                fn from(err: $error) -> Self {
                    Self::Other(err.into())
                }
            }
        )+
    };
}

via_enrollment!(
    crate::db::DbError,
    sea_orm::DbErr,
    crate::audit::AuditError,
    crate::crypto::vault::VaultError,
    crate::crypto::platform_keys::PlatformKeyError,
    crate::identity::sessions::SessionError,
    crate::identity::registry::RegistryError
);

impl LocalIdentity {
    /// Sends a reset code to the contact on file of the account with `email`, if there is
    /// one. Returns a ticket either way.
    pub async fn request_password_reset(
        &self,
        tenant: TenantId,
        email: &str,
        practice: &str,
        client: &str,
    ) -> Result<Secret<String>, ResetError> {
        let keys = [client_key(client), client_key(client)];
        self.not_throttled(tenant, &keys).await?;
        let email = normalize_email(email).unwrap_or_default();
        let index = self.email_index(tenant, &email).await?;

        let read = self.db.begin(tenant).await?;
        let account = read
            .find::<accounts::Entity>()
            .filter(accounts::Column::EmailIndex.eq(index.to_vec()))
            .one(read.conn())
            .await?;
        let contact = match &account {
            Some(account) => Some(self.contact_on_file(&read, account).await?),
            None => None,
        };
        read.commit().await?;

        let ticket = random_token(self.entropy.as_ref());
        let code = six_digits(self.entropy.as_ref());
        let now = self.clock.now();
        let tx = self.db.begin_serialized(tenant).await?;
        tx.insert(verifications::ActiveModel {
            id: Set(digest(ticket.expose()).to_vec()),
            purpose: Set("reset".to_owned()),
            patient_id: Set(None),
            account_id: Set(account.as_ref().map(|a| a.id)),
            code_hash: Set(account
                .as_ref()
                .map(|_| code_digest(ticket.expose(), code.expose()).to_vec())),
            failures: Set(0),
            expires_at: Set(now + Duration::minutes(CODE_MINUTES)),
            used_at: Set(None),
            created_at: Set(now),
            ..Default::default()
        })
        .await?;
        tx.commit().await?;

        if let (Some(account), Some(contact)) = (&account, contact) {
            let message = Message::PasswordReset {
                practice: practice.to_owned(),
                code,
                minutes: CODE_MINUTES,
            };
            if let Err(err) = self.notifier.send(tenant, &contact, &message).await {
                tracing::warn!(tenant.id = %tenant, account.id = %account.id,
                    channel = contact.channel(), error = %crate::notify::describe(&err), "password reset code not sent");
            }
        }

        Ok(ticket)
    }

    /// Sets a new password, given the ticket, the code sent, and the second factor.
    pub async fn reset_password(
        &self,
        tenant: TenantId,
        reset: &PasswordReset<'_>,
        clinic: (&str, &str),
        client: &str,
    ) -> Result<(), ResetError> {
        let PasswordReset {
            ticket,
            code,
            password,
            second,
        } = *reset;
        let keys = [client_key(client), client_key(client)];
        self.not_throttled(tenant, &keys).await?;
        let row = self.open_ticket(tenant, "reset", ticket, code).await?;
        let Some((row, account_id)) =
            row.and_then(|row| row.account_id.map(|id| (row, AccountId::from_uuid(id))))
        else {
            self.fail_as(tenant, &anonymous(), &keys, None, Action::Update)
                .await?;
            return Err(ResetError::NotVerified);
        };

        let read = self.db.begin(tenant).await?;
        let account = account_by_id(&read, account_id)
            .await?
            .ok_or(ResetError::NotVerified)?;
        let email = self
            .vault
            .open(
                &read,
                &place(tenant, "accounts", "email", &account.id.to_string()),
                &account.email,
            )
            .await?;
        read.commit().await?;
        let actor = account_actor(&account);
        let patient = account.patient_id.map(PatientId::from_uuid);
        if matches!(second, SecondFactor::Neither) {
            let refused = event(&actor, Action::Update, Outcome::Denied, patient, None)?;
            self.audit.record(tenant, &[refused]).await?;
            return Err(ResetError::AssistedRecovery);
        }
        let email = String::from_utf8_lossy(&email).into_owned();
        self.policy.check(
            password,
            &Context {
                clinic: Some(clinic.0),
                slug: Some(clinic.1),
                email: Some(&email),
            },
        )?;
        let now = self.clock.now();
        let tx = self.db.begin_serialized(tenant).await?;
        // A provider that checks the authenticator itself can do so only inside a sign-in,
        // which the forgotten password cannot start: there, a recovery code is the second
        // factor of a reset (`check_totp` refuses).
        let checked = match second {
            SecondFactor::Totp(code) => self.check_totp(&tx, &account, code).await,
            SecondFactor::RecoveryCode(code) => self.take_recovery_code(&tx, &account, code).await,
            SecondFactor::Neither => Err(SignInError::NotPending),
        };
        if checked.is_err() {
            drop(tx);
            let address = [client_key(client), address_key(&account.email_index)];
            self.fail_as(tenant, &actor, &address, None, Action::Update)
                .await?;
            return Err(ResetError::NotVerified);
        }
        if !use_ticket(&tx, &row.id, now).await? {
            return Err(ResetError::NotVerified);
        }
        // The password changes at the provider once both factors are proven; if the
        // transaction then fails, the person resets again with a new code.
        let hash = self
            .provider
            .set_password(tenant, account.provider_subject.as_deref(), password)
            .await
            .map_err(|err| EnrollmentError::Internal(Box::new(err)))?;
        if let Err(err) = self
            .provider
            .sign_out_everywhere(tenant, account.provider_subject.as_deref())
            .await
        {
            tracing::warn!(tenant.id = %tenant, error = %err,
                "the identity provider did not sign the account out everywhere after a reset");
        }
        tx.update_many::<accounts::Entity>()
            .col_expr(accounts::Column::PasswordHash, hash.into())
            .col_expr(accounts::Column::Status, "active".into())
            .col_expr(accounts::Column::UpdatedAt, now.into())
            .filter(accounts::Column::Id.eq(account.id))
            .exec(tx.conn())
            .await?;
        self.sessions.revoke_all(&tx, account_id, now).await?;
        self.clear(
            &tx,
            &[client_key(client), address_key(&account.email_index)],
        )
        .await?;
        let done = NewEvent::new(actor, Action::Update, "Account", Purpose::PatientRequest)
            .and_then(|event| event.resource(&account.id.to_string()))
            .map_err(crate::audit::AuditError::from)?;
        let done = match patient {
            Some(patient) => done.patient(patient),
            None => done,
        };
        self.audit.append(&tx, &[done]).await?;
        tx.commit().await?;

        Ok(())
    }

    /// Where a reset code for `account` goes: for a patient, the registry's first contact
    /// (falling back to the account's address); for staff, the account's address.
    async fn contact_on_file(
        &self,
        tx: &TenantTx,
        account: &accounts::Model,
    ) -> Result<Contact, ResetError> {
        if let Some(patient) = account.patient_id.map(PatientId::from_uuid)
            && let Some(on_file) = self.registry.on_file(tx.tenant(), patient).await?
            && let Some(contact) = on_file.contacts.into_iter().next()
        {
            return Ok(contact);
        }
        let email = self
            .vault
            .open(
                tx,
                &place(tx.tenant(), "accounts", "email", &account.id.to_string()),
                &account.email,
            )
            .await?;

        Ok(Contact::Email(String::from_utf8_lossy(&email).into_owned()))
    }
}
