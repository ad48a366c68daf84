//! The embedded identity provider: accounts with argon2id passwords and a TOTP second
//! factor, sign-in in two steps, throttling, and the audit of every step.
//!
//! Sign-in: [`LocalIdentity::sign_in`] checks the password and starts a session at
//! [`Stage::Password`], which reaches nothing; [`LocalIdentity::verify_totp`] checks the
//! code, ends that session and starts a new one at [`Stage::Full`] (a new id on every
//! change of privilege).
//!
//! Refusals reveal nothing: an unknown address gets the same answer, after the same work
//! (a decoy hash), as a wrong password; throttles count failures per client address and
//! per address typed, whether or not an account has it, with delays that grow after a few
//! failures; 100 failures in a row lock the address until it is recovered.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter};
use unicode_normalization::UnicodeNormalization;

use super::entity::{accounts, recovery_codes, throttles, totp_factors};
use super::password::{Context, HashError, PasswordHasher, PasswordPolicy, PasswordProblem};
use super::provider::{IdentityProvider, PasswordCheck, ProviderError};
use super::recovery::{CODES, RecoveryCode};
use super::registry::PatientRegistry;
use super::role::Role;
use super::sessions::{Issued, Session, SessionError, SessionSummary, Sessions, Stage};
use super::totp::{TotpError, TotpSecret};
use crate::audit::{Action, Actor, ActorKind, AuditError, AuditTrail, NewEvent, Outcome, Purpose};
use crate::clock::Clock;
use crate::crypto::platform_keys::{PlatformKeyError, PlatformKeys};
use crate::crypto::seal::Place;
use crate::crypto::vault::{Vault, VaultError};
use crate::db::{Db, DbError, TenantTx};
use crate::entropy::Entropy;
use crate::ids::{AccountId, PatientId, TenantId};
use crate::notify::Notifier;
use crate::principal::Principal;
use crate::secret::Secret;

/// The platform key that makes e-mail lookups blind.
pub const EMAIL_INDEX_KEY: &str = "identity-email-index";

/// Consecutive failures after which an address is locked until recovered (NIST's limit).
pub const LOCK_AFTER: i32 = 100;

/// Why sign-in did not go on. Messages are safe to show: none says whether an account
/// exists.
#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    /// Wrong address or password (or no such account).
    #[error("the e-mail address or password is not right")]
    Invalid,
    /// The second factor was refused.
    #[error(transparent)]
    Code(#[from] TotpError),
    /// Too many recent failures; try again after this time.
    #[error("too many attempts; try again in a little while")]
    TryLater {
        /// When.
        until: DateTime<Utc>,
    },
    /// Too many failures in a row: only recovery opens it again.
    #[error("too many failed attempts; contact your clinic to recover your account")]
    Locked,
    /// The recovery code is wrong or already used.
    #[error("that recovery code is not right, or has been used")]
    RecoveryCode,
    /// The texted code is wrong, used or expired.
    #[error("that code is not right or has expired; ask for a new one")]
    SmsCode,
    /// No mobile number is on file for the account.
    #[error("no mobile number is on file; use your authenticator app or a recovery code")]
    NoPhone,
    /// The text could not be sent.
    #[error("the code could not be sent; try again in a little while")]
    NotSent(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// Only a signed-in patient or staff member may do this.
    #[error("not signed in")]
    NotSignedIn,
    /// The session is not waiting for a second factor.
    #[error("sign in with your password first")]
    NotPending,
    /// The account has no passkey for this portal.
    #[error("no passkey is registered for this portal; use your authenticator app")]
    NoPasskey,
    /// The passkey's answer did not verify.
    #[error("the passkey was not accepted")]
    PasskeyRefused,
    /// The provider's sign-in expired before the code came: sign in again.
    #[error("the sign-in has expired; sign in again")]
    ProviderExpired,
    /// The identity provider is unreachable; try again later.
    #[error("sign-in is unavailable; try again in a little while")]
    ProviderUnavailable(#[source] ProviderError),
    /// The session failed.
    #[error(transparent)]
    Session(#[from] SessionError),
    /// Something failed inside Portico.
    #[error("sign-in failed inside Portico")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Why an account could not be made.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// The password breaks a rule.
    #[error("the password is not accepted: {0}")]
    Password(#[from] PasswordProblem),
    /// The address is not an e-mail address.
    #[error("the e-mail address is not valid")]
    Email,
    /// An account with this address exists at the clinic.
    #[error("an account with this e-mail address already exists")]
    Taken,
    /// A patient account names no patient, or a staff account names one.
    #[error("a patient account must name its patient, and only a patient account may")]
    Patient,
    /// Something failed inside Portico.
    #[error("the account could not be created")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl From<ProviderError> for SignInError {
    fn from(err: ProviderError) -> Self {
        match err {
            ProviderError::Expired => Self::ProviderExpired,
            ProviderError::Unavailable(_) => Self::ProviderUnavailable(err),
            other => Self::Internal(Box::new(other)),
        }
    }
}

macro_rules! internal {
    ($($error:ty => $target:ident),+ $(,)?) => {
        $(
            impl From<$error> for $target {
                fn from(err: $error) -> Self {
                    Self::Internal(Box::new(err))
                }
            }
        )+
    };
}

internal!(
    DbError => SignInError, AuditError => SignInError, VaultError => SignInError,
    HashError => SignInError, PlatformKeyError => SignInError, sea_orm::DbErr => SignInError,
    DbError => AccountError, AuditError => AccountError, VaultError => AccountError,
    HashError => AccountError, PlatformKeyError => AccountError, sea_orm::DbErr => AccountError,
);

/// A new account.
#[derive(Debug)]
pub struct NewAccount<'a> {
    /// The sign-in address.
    pub email: &'a str,
    /// The chosen password.
    pub password: &'a Secret<String>,
    /// The role.
    pub role: Role,
    /// For a patient account, the patient it reaches.
    pub patient: Option<PatientId>,
    /// What the password must not be built from (the clinic's name and address label).
    pub clinic_name: &'a str,
    /// The clinic's slug.
    pub clinic_slug: &'a str,
}

/// An account just made, with its authenticator secret and recovery codes to show once.
#[derive(Debug)]
pub struct Created {
    /// The account.
    pub account: AccountId,
    /// The TOTP secret, for the authenticator app.
    pub totp: TotpSecret,
    /// Ten single-use recovery codes, as shown to the person.
    pub recovery_codes: Vec<Secret<String>>,
}

/// An account checked, hashed and sealed, ready to be written in a transaction.
#[derive(Debug)]
pub(super) struct PreparedAccount {
    account: AccountId,
    role: Role,
    patient: Option<PatientId>,
    index: [u8; 32],
    sealed_email: Vec<u8>,
    hash: String,
    subject: Option<String>,
    totp: TotpSecret,
    /// Sealed, when Portico checks the authenticator.
    sealed_totp: Option<Vec<u8>>,
    /// The provider's sealed state for the first second step, when it checks codes.
    pub(super) pending: Option<Vec<u8>>,
    confirmed: bool,
    codes: Vec<RecoveryCode>,
    code_hashes: Vec<String>,
}

/// The embedded identity provider.
#[derive(Debug, Clone)]
pub struct LocalIdentity {
    pub(super) db: Db,
    pub(super) vault: Vault,
    pub(super) audit: AuditTrail,
    pub(super) platform_keys: PlatformKeys,
    pub(super) hasher: PasswordHasher,
    pub(super) policy: PasswordPolicy,
    pub(super) sessions: Sessions,
    pub(super) provider: Arc<dyn IdentityProvider>,
    pub(super) registry: Arc<dyn PatientRegistry>,
    pub(super) notifier: Arc<dyn Notifier>,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) entropy: Arc<dyn Entropy>,
}

/// What the identity provider is built from.
#[derive(Debug, Clone)]
pub struct Parts {
    /// The database.
    pub db: Db,
    /// Sealing e-mail addresses and TOTP secrets.
    pub vault: Vault,
    /// Recording every step.
    pub audit: AuditTrail,
    /// The blind-index key.
    pub platform_keys: PlatformKeys,
    /// Password hashing.
    pub hasher: PasswordHasher,
    /// Password rules.
    pub policy: PasswordPolicy,
    /// Session lifetimes.
    pub sessions: Sessions,
    /// Where passwords and authenticators are kept and checked.
    pub provider: Arc<dyn IdentityProvider>,
    /// Where enrollment finds patients.
    pub registry: Arc<dyn PatientRegistry>,
    /// Where one-time codes are sent.
    pub notifier: Arc<dyn Notifier>,
    /// The clock.
    pub clock: Arc<dyn Clock>,
    /// Randomness.
    pub entropy: Arc<dyn Entropy>,
}

impl LocalIdentity {
    /// The provider over `parts`.
    pub fn new(parts: Parts) -> Self {
        Self {
            db: parts.db,
            vault: parts.vault,
            audit: parts.audit,
            platform_keys: parts.platform_keys,
            hasher: parts.hasher,
            policy: parts.policy,
            sessions: parts.sessions,
            provider: parts.provider,
            registry: parts.registry,
            notifier: parts.notifier,
            clock: parts.clock,
            entropy: parts.entropy,
        }
    }

    /// Creates an account with a TOTP factor, by `by` (an operator or Portico itself,
    /// until staff invitations exist).
    pub async fn create_account(
        &self,
        by: &Principal,
        tenant: TenantId,
        new: NewAccount<'_>,
    ) -> Result<Created, AccountError> {
        let prepared = self.prepare_account(tenant, &new, true).await?;
        let tx = self.db.begin_serialized(tenant).await?;
        let actor = match by {
            Principal::Operator => Actor::operator(),
            _ => Actor::system(),
        };
        let created = self.insert_account(&tx, prepared, actor).await?;
        tx.commit().await?;

        Ok(created)
    }

    /// Everything an account needs that must happen outside its transaction: checking
    /// the password, hashing it and the recovery codes (slow, on blocking threads),
    /// sealing the address and the TOTP secret (sealing may make a data key).
    /// `confirmed`: whether the TOTP factor counts as set up already (an operator handed
    /// the secret over) or is confirmed by its first code (enrollment).
    pub(super) async fn prepare_account(
        &self,
        tenant: TenantId,
        new: &NewAccount<'_>,
        confirmed: bool,
    ) -> Result<PreparedAccount, AccountError> {
        let email = normalize_email(new.email).ok_or(AccountError::Email)?;
        if (new.role == Role::Patient) != new.patient.is_some() {
            return Err(AccountError::Patient);
        }
        self.policy.check(
            new.password,
            &Context {
                clinic: Some(new.clinic_name),
                slug: Some(new.clinic_slug),
                email: Some(&email),
            },
        )?;
        let index = self.email_index(tenant, &email).await?;
        // Refused before the provider is asked: it would otherwise keep a person whom
        // Portico then refuses.
        let read = self.db.begin(tenant).await?;
        let taken = read
            .find::<accounts::Entity>()
            .filter(accounts::Column::EmailIndex.eq(index.to_vec()))
            .one(read.conn())
            .await?;
        read.commit().await?;
        if taken.is_some() {
            return Err(AccountError::Taken);
        }
        let registered = self
            .provider
            .register(tenant, &email, new.password)
            .await
            .map_err(|err| match err {
                ProviderError::Exists => AccountError::Taken,
                other => AccountError::Internal(Box::new(other)),
            })?;
        let account = AccountId::generate(self.clock.as_ref(), self.entropy.as_ref());
        let totp = registered.totp;
        let row = account.to_string();
        // A provider that checks codes starts the first sign-in now, so that the session
        // enrollment hands out can take the authenticator's first code.
        let pending = if self.provider.checks_authenticator() {
            match self
                .provider
                .check_password(tenant, &email, None, new.password)
                .await
                .map_err(|err| AccountError::Internal(Box::new(err)))?
            {
                PasswordCheck::Accepted { pending } => pending,
                PasswordCheck::Refused => {
                    return Err(AccountError::Internal(
                        "the provider refused the password it just took".into(),
                    ));
                }
            }
        } else {
            None
        };
        let codes: Vec<RecoveryCode> = (0..CODES)
            .map(|_| RecoveryCode::generate(self.entropy.as_ref()))
            .collect();
        let mut code_hashes = Vec::with_capacity(CODES);
        for code in &codes {
            code_hashes.push(
                self.hasher
                    .hash(&code.secret, self.entropy.as_ref())
                    .await?,
            );
        }

        let sealing = self.db.begin(tenant).await?;
        let sealed_email = self
            .vault
            .seal(
                &sealing,
                &place(tenant, "accounts", "email", &row),
                email.as_bytes(),
            )
            .await?;
        let sealed_totp = if self.provider.checks_authenticator() {
            None
        } else {
            Some(
                self.vault
                    .seal(
                        &sealing,
                        &place(tenant, "totp_factors", "secret", &row),
                        totp.expose(),
                    )
                    .await?,
            )
        };
        let pending = match pending {
            Some(state) => Some(
                self.vault
                    .seal(
                        &sealing,
                        &place(tenant, "sessions", "provider_state", &row),
                        state.expose().as_bytes(),
                    )
                    .await?,
            ),
            None => None,
        };
        sealing.commit().await?;

        Ok(PreparedAccount {
            account,
            role: new.role,
            patient: new.patient,
            index,
            sealed_email,
            hash: registered.password_hash,
            subject: registered.subject,
            totp,
            sealed_totp,
            pending,
            confirmed,
            codes,
            code_hashes,
        })
    }

    /// Writes a prepared account in `tx` and audits its creation by `actor`.
    pub(super) async fn insert_account(
        &self,
        tx: &TenantTx,
        prepared: PreparedAccount,
        actor: Actor,
    ) -> Result<Created, AccountError> {
        let now = self.clock.now();
        let account = prepared.account;
        let inserted = tx
            .insert(accounts::ActiveModel {
                id: Set(account.as_uuid()),
                role: Set(prepared.role.code().to_owned()),
                patient_id: Set(prepared.patient.map(|p| p.as_uuid())),
                email_index: Set(prepared.index.to_vec()),
                email: Set(prepared.sealed_email),
                password_hash: Set(prepared.hash),
                provider_subject: Set(prepared.subject),
                status: Set("active".to_owned()),
                failed_sign_ins: Set(0),
                throttled_until: Set(None),
                created_at: Set(now),
                updated_at: Set(now),
                ..Default::default()
            })
            .await;
        match inserted {
            Err(DbError::Conflict(_)) => return Err(AccountError::Taken),
            other => other?,
        };
        if let Some(sealed) = prepared.sealed_totp {
            tx.insert(totp_factors::ActiveModel {
                account_id: Set(account.as_uuid()),
                secret: Set(sealed),
                last_step: Set(None),
                confirmed_at: Set(prepared.confirmed.then_some(now)),
                created_at: Set(now),
                ..Default::default()
            })
            .await?;
        }
        for (code, hash) in prepared.codes.iter().zip(prepared.code_hashes) {
            tx.insert(recovery_codes::ActiveModel {
                account_id: Set(account.as_uuid()),
                lookup: Set(code.lookup.clone()),
                hash: Set(hash),
                used_at: Set(None),
                created_at: Set(now),
                ..Default::default()
            })
            .await
            .map_err(|err| match err {
                // Two of ten codes sharing a 20-bit lookup: vanishingly rare; try again.
                DbError::Conflict(_) => AccountError::Internal("recovery code collision".into()),
                other => other.into(),
            })?;
        }
        let mut event = NewEvent::new(actor, Action::Create, "Account", Purpose::Operations)
            .map_err(AuditError::from)?
            .resource(&account.to_string())
            .map_err(AuditError::from)?;
        event.patient = prepared.patient;
        self.audit.append(tx, &[event]).await?;

        Ok(Created {
            account,
            totp: prepared.totp,
            recovery_codes: prepared.codes.iter().map(RecoveryCode::display).collect(),
        })
    }

    /// The first step: the password. Starts a session that owes its second factor.
    pub async fn sign_in(
        &self,
        tenant: TenantId,
        email: &str,
        password: &Secret<String>,
        client: &str,
    ) -> Result<Issued, SignInError> {
        let now = self.clock.now();
        let email = normalize_email(email).unwrap_or_default();
        let index = self.email_index(tenant, &email).await?;
        let keys = [client_key(client), address_key(&index)];

        let read = self.db.begin(tenant).await?;
        let account = read
            .find::<accounts::Entity>()
            .filter(accounts::Column::EmailIndex.eq(index.to_vec()))
            .one(read.conn())
            .await?;
        let counts = self.throttles(&read, &keys).await?;
        read.commit().await?;
        let actor = account.as_ref().map_or_else(anonymous, account_actor);

        if let Some(until) = counts.iter().filter_map(|t| t.1).filter(|u| *u > now).max() {
            self.record(tenant, &actor, Action::SignInFailed, Outcome::Denied, None)
                .await?;
            return Err(SignInError::TryLater { until });
        }
        let locked =
            counts[1].0 >= LOCK_AFTER || account.as_ref().is_some_and(|a| a.status == "locked");
        // The same work whether or not the account exists.
        let checked = self
            .provider
            .check_password(
                tenant,
                &email,
                account.as_ref().map(|a| a.password_hash.as_str()),
                password,
            )
            .await?;
        if locked {
            self.record(tenant, &actor, Action::SignInFailed, Outcome::Denied, None)
                .await?;
            return Err(SignInError::Locked);
        }
        let (account, pending) = match (account, checked) {
            (Some(account), PasswordCheck::Accepted { pending }) => (account, pending),
            _ => {
                self.fail(tenant, &actor, &keys, None).await?;
                return Err(SignInError::Invalid);
            }
        };
        let pending = match pending {
            Some(state) => Some(self.seal_pending(tenant, account.id, &state).await?),
            None => None,
        };

        let tx = self.db.begin_serialized(tenant).await?;
        let id = AccountId::from_uuid(account.id);
        let issued = self
            .sessions
            .issue(
                &tx,
                id,
                Stage::Password,
                self.clock.as_ref(),
                self.entropy.as_ref(),
            )
            .await?;
        if let Some(sealed) = pending {
            self.sessions
                .attach_provider_state(&tx, &issued.session, sealed)
                .await?;
        }
        tx.commit().await?;

        Ok(issued)
    }

    /// Seals the provider's second-step state for the account's waiting session. Done
    /// before the session's transaction: sealing may write a data key in its own.
    pub(super) async fn seal_pending(
        &self,
        tenant: TenantId,
        account: uuid::Uuid,
        state: &Secret<String>,
    ) -> Result<Vec<u8>, SignInError> {
        let row = account.to_string();
        let sealing = self.db.begin(tenant).await?;
        let sealed = self
            .vault
            .seal(
                &sealing,
                &place(tenant, "sessions", "provider_state", &row),
                state.expose().as_bytes(),
            )
            .await?;
        sealing.commit().await?;
        Ok(sealed)
    }

    /// The second step: a code from the authenticator app, for a session at the password
    /// stage. Ends that session and starts a full one.
    pub async fn verify_totp(
        &self,
        tenant: TenantId,
        pending: &str,
        code: &str,
        client: &str,
    ) -> Result<Issued, SignInError> {
        if self.provider.checks_authenticator() {
            return self.verify_at_provider(tenant, pending, code, client).await;
        }
        let tx = self.db.begin_serialized(tenant).await?;
        let (session, account) = self.pending(&tx, pending).await?;
        let keys = [client_key(client), address_key(&account.email_index)];
        if let Err(err) = self.check_totp(&tx, &account, code).await {
            drop(tx);
            self.fail(tenant, &account_actor(&account), &keys, Some(&session))
                .await?;
            return Err(err);
        }

        self.complete(tx, &session, &account, &keys).await
    }

    /// The second step at a provider that checks the authenticator itself (Cognito): the
    /// code answers the challenge kept with the waiting session. The provider is asked
    /// outside the session's transaction, since it may take a while.
    async fn verify_at_provider(
        &self,
        tenant: TenantId,
        pending: &str,
        code: &str,
        client: &str,
    ) -> Result<Issued, SignInError> {
        let read = self.db.begin(tenant).await?;
        let (session, account) = self.pending(&read, pending).await?;
        let sealed = self
            .sessions
            .provider_state(&read, &session)
            .await?
            .ok_or(SignInError::NotPending)?;
        let row = account.id.to_string();
        let state = self
            .vault
            .open(
                &read,
                &place(tenant, "sessions", "provider_state", &row),
                &sealed,
            )
            .await?;
        read.commit().await?;
        let state = Secret::new(String::from_utf8_lossy(&state).into_owned());
        let keys = [client_key(client), address_key(&account.email_index)];
        let code = code.trim().replace(' ', "");
        if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
            self.fail(tenant, &account_actor(&account), &keys, Some(&session))
                .await?;
            return Err(TotpError::Malformed.into());
        }
        if !self.provider.check_code(tenant, &state, &code).await? {
            self.fail(tenant, &account_actor(&account), &keys, Some(&session))
                .await?;
            return Err(TotpError::Wrong.into());
        }

        let tx = self.db.begin_serialized(tenant).await?;
        // Still standing: it may have been ended while the provider answered.
        let (session, account) = self.pending(&tx, pending).await?;
        self.complete(tx, &session, &account, &keys).await
    }

    /// The second step with a recovery code instead of the authenticator app. The code is
    /// used up.
    pub async fn use_recovery_code(
        &self,
        tenant: TenantId,
        pending: &str,
        typed: &str,
        client: &str,
    ) -> Result<Issued, SignInError> {
        let tx = self.db.begin_serialized(tenant).await?;
        let (session, account) = self.pending(&tx, pending).await?;
        let keys = [client_key(client), address_key(&account.email_index)];
        if let Err(err) = self.take_recovery_code(&tx, &account, typed).await {
            drop(tx);
            self.fail(tenant, &account_actor(&account), &keys, Some(&session))
                .await?;
            return Err(err);
        }

        self.complete(tx, &session, &account, &keys).await
    }

    /// Checks a code from the account's authenticator app and records its step, so it is
    /// not accepted again. The first code accepted also confirms a factor set up at
    /// enrollment.
    pub(super) async fn check_totp(
        &self,
        tx: &TenantTx,
        account: &accounts::Model,
        code: &str,
    ) -> Result<(), SignInError> {
        if self.provider.checks_authenticator() {
            return Err(SignInError::NotPending);
        }
        let now = self.clock.now();
        let factor = tx
            .find::<totp_factors::Entity>()
            .filter(totp_factors::Column::AccountId.eq(account.id))
            .one(tx.conn())
            .await?
            .ok_or(SignInError::Session(SessionError::Unknown))?;
        let row = account.id.to_string();
        let secret = self
            .vault
            .open(
                tx,
                &place(tx.tenant(), "totp_factors", "secret", &row),
                &factor.secret,
            )
            .await?;
        let secret =
            TotpSecret::from_slice(&secret).ok_or(SignInError::Session(SessionError::Unknown))?;
        let last = factor.last_step.and_then(|s| u64::try_from(s).ok());
        let step = secret.verify(code, now, last)?;
        tx.update_many::<totp_factors::Entity>()
            .col_expr(
                totp_factors::Column::LastStep,
                Some(i64::try_from(step).unwrap_or(i64::MAX)).into(),
            )
            .col_expr(
                totp_factors::Column::ConfirmedAt,
                Some(factor.confirmed_at.unwrap_or(now)).into(),
            )
            .filter(totp_factors::Column::AccountId.eq(account.id))
            .exec(tx.conn())
            .await?;

        Ok(())
    }

    /// Checks one of the account's unused recovery codes and uses it up.
    pub(super) async fn take_recovery_code(
        &self,
        tx: &TenantTx,
        account: &accounts::Model,
        typed: &str,
    ) -> Result<(), SignInError> {
        let code = RecoveryCode::parse(typed);
        let stored = match &code {
            Some(code) => {
                tx.find::<recovery_codes::Entity>()
                    .filter(recovery_codes::Column::AccountId.eq(account.id))
                    .filter(recovery_codes::Column::Lookup.eq(code.lookup.clone()))
                    .filter(recovery_codes::Column::UsedAt.is_null())
                    .one(tx.conn())
                    .await?
            }
            None => None,
        };
        // The same work whether or not such a code exists.
        let secret = code.map_or_else(|| Secret::new(String::new()), |code| code.secret);
        let matched = self
            .hasher
            .verify(&secret, stored.as_ref().map(|row| row.hash.as_str()))
            .await?;
        let Some(stored) = stored.filter(|_| matched) else {
            return Err(SignInError::RecoveryCode);
        };
        tx.update_many::<recovery_codes::Entity>()
            .col_expr(
                recovery_codes::Column::UsedAt,
                Some(self.clock.now()).into(),
            )
            .filter(recovery_codes::Column::AccountId.eq(account.id))
            .filter(recovery_codes::Column::Lookup.eq(stored.lookup))
            .exec(tx.conn())
            .await?;

        Ok(())
    }

    /// The session waiting for its second factor, and its account.
    pub(super) async fn pending(
        &self,
        tx: &TenantTx,
        token: &str,
    ) -> Result<(Session, accounts::Model), SignInError> {
        let session = self
            .sessions
            .authenticate(tx, token, self.clock.now())
            .await?;
        if session.stage != Stage::Password {
            return Err(SignInError::NotPending);
        }
        let account = account_by_id(tx, session.account)
            .await?
            .ok_or(SignInError::Session(SessionError::Unknown))?;
        Ok((session, account))
    }

    /// After a second factor: the pending session ends, a full one (a new id) starts, the
    /// address's failures are forgiven, and both steps are audited.
    pub(super) async fn complete(
        &self,
        tx: TenantTx,
        session: &Session,
        account: &accounts::Model,
        keys: &[String; 2],
    ) -> Result<Issued, SignInError> {
        self.sessions.revoke(&tx, session, self.clock.now()).await?;
        let issued = self
            .sessions
            .issue(
                &tx,
                session.account,
                Stage::Full,
                self.clock.as_ref(),
                self.entropy.as_ref(),
            )
            .await?;
        self.clear(&tx, keys).await?;
        let client_ref = session_ref(&issued.session);
        let patient = account.patient_id.map(PatientId::from_uuid);
        let actor = account_actor(account);
        let events = [Action::Mfa, Action::SignIn]
            .map(|action| event(&actor, action, Outcome::Success, patient, Some(&client_ref)));
        self.audit
            .append(&tx, &events.into_iter().collect::<Result<Vec<_>, _>>()?)
            .await?;
        tx.commit().await?;

        Ok(issued)
    }

    /// Who a session's bearer is, if it stands and is fully signed in.
    pub async fn principal(
        &self,
        tenant: TenantId,
        token: &str,
    ) -> Result<(Principal, Session), SessionError> {
        match self.resolve(tenant, token).await? {
            (Some(principal), session) => Ok((principal, session)),
            (None, _) => Err(SessionError::Unknown),
        }
    }

    /// The session a token names, at whatever stage, and its bearer's principal once fully
    /// signed in (`None` while the second factor is owed).
    pub async fn resolve(
        &self,
        tenant: TenantId,
        token: &str,
    ) -> Result<(Option<Principal>, Session), SessionError> {
        let tx = self.db.begin(tenant).await?;
        let session = self
            .sessions
            .authenticate(&tx, token, self.clock.now())
            .await?;
        let account = account_by_id(&tx, session.account)
            .await?
            .ok_or(SessionError::Unknown)?;
        tx.commit().await?;
        if account.status != "active" {
            return Err(SessionError::Unknown);
        }
        if session.stage != Stage::Full {
            return Ok((None, session));
        }
        let role = Role::from_code(&account.role).ok_or(SessionError::Unknown)?;
        let reference = session_ref(&session);
        let principal = match (role, account.patient_id) {
            (Role::Patient, Some(patient)) => Principal::Patient {
                tenant,
                account: session.account,
                patient: PatientId::from_uuid(patient),
                session: reference,
            },
            (role, _) => Principal::Staff {
                tenant,
                account: session.account,
                role,
                session: reference,
            },
        };

        Ok((Some(principal), session))
    }

    /// Whether `csrf` is the token issued with the session.
    pub async fn csrf_matches(&self, session: &Session, csrf: &str) -> Result<bool, SessionError> {
        let tx = self.db.begin(session.tenant).await?;
        let same = self.sessions.csrf_matches(&tx, session, csrf).await?;
        tx.commit().await?;
        Ok(same)
    }

    /// Ends one session (`everywhere`: every session of its account).
    pub async fn sign_out(&self, session: &Session, everywhere: bool) -> Result<(), SignInError> {
        let now = self.clock.now();
        let tx = self.db.begin_serialized(session.tenant).await?;
        if everywhere {
            self.sessions.revoke_all(&tx, session.account, now).await?;
        } else {
            self.sessions.revoke(&tx, session, now).await?;
        }
        let account = account_by_id(&tx, session.account)
            .await?
            .ok_or(SignInError::Session(SessionError::Unknown))?;
        let patient = account.patient_id.map(PatientId::from_uuid);
        let reference = session_ref(session);
        let event = event(
            &account_actor(&account),
            Action::SignOut,
            Outcome::Success,
            patient,
            Some(&reference),
        )?;
        self.audit.append(&tx, &[event]).await?;
        tx.commit().await?;
        if everywhere {
            // Whatever the provider issued ends too (after the commit: it is a network
            // call). Portico's sessions, which are what reach data, have ended already.
            if let Err(err) = self
                .provider
                .sign_out_everywhere(session.tenant, account.provider_subject.as_deref())
                .await
            {
                tracing::warn!(tenant.id = %session.tenant, error = %err,
                    "the identity provider did not sign the account out everywhere");
            }
        }
        Ok(())
    }

    /// The signed-in account's sessions that still stand, newest first.
    pub async fn sessions(&self, by: &Principal) -> Result<Vec<SessionSummary>, SignInError> {
        let (tenant, account) = signed_in(by)?;
        let tx = self.db.begin(tenant).await?;
        let live = self.sessions.live(&tx, account, self.clock.now()).await?;
        tx.commit().await?;
        Ok(live.into_iter().map(|(_, summary)| summary).collect())
    }

    /// Ends one of the signed-in account's sessions by its reference (a lost phone, a
    /// shared computer). False if no live session of the account has that reference.
    pub async fn end_session(&self, by: &Principal, reference: &str) -> Result<bool, SignInError> {
        let (tenant, account) = signed_in(by)?;
        let now = self.clock.now();
        let tx = self.db.begin_serialized(tenant).await?;
        let live = self.sessions.live(&tx, account, now).await?;
        let Some((id, summary)) = live.into_iter().find(|(_, s)| s.reference == reference) else {
            return Ok(false);
        };
        self.sessions.revoke_id(&tx, &id, now).await?;
        let row = account_by_id(&tx, account)
            .await?
            .ok_or(SignInError::Session(SessionError::Unknown))?;
        let patient = row.patient_id.map(PatientId::from_uuid);
        let event = event(
            &account_actor(&row),
            Action::SignOut,
            Outcome::Success,
            patient,
            Some(&summary.reference),
        )?;
        self.audit.append(&tx, &[event]).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// The blind index of an address at a clinic: an HMAC under a platform key, so the
    /// database can find an account by address without holding the address in the clear.
    pub(super) async fn email_index(
        &self,
        tenant: TenantId,
        email: &str,
    ) -> Result<[u8; 32], PlatformKeyError> {
        self.platform_keys
            .blind_index(EMAIL_INDEX_KEY, tenant, email)
            .await
    }

    /// Failures so far and the throttle's end, for each key.
    pub(super) async fn throttles(
        &self,
        tx: &TenantTx,
        keys: &[String; 2],
    ) -> Result<[(i32, Option<DateTime<Utc>>); 2], SignInError> {
        let rows = tx
            .find::<throttles::Entity>()
            .filter(throttles::Column::Client.is_in(keys.to_vec()))
            .all(tx.conn())
            .await?;
        Ok(keys.each_ref().map(|key| {
            rows.iter()
                .find(|row| &row.client == key)
                .map_or((0, None), |row| (row.failures, row.throttled_until))
        }))
    }

    /// Counts a failure against the client and the address, audits it.
    pub(super) async fn fail(
        &self,
        tenant: TenantId,
        actor: &Actor,
        keys: &[String; 2],
        session: Option<&Session>,
    ) -> Result<(), SignInError> {
        self.fail_as(tenant, actor, keys, session, Action::SignInFailed)
            .await
    }

    /// Counts a failure against both keys, recording it as `action` denied.
    pub(super) async fn fail_as(
        &self,
        tenant: TenantId,
        actor: &Actor,
        keys: &[String; 2],
        session: Option<&Session>,
        action: Action,
    ) -> Result<(), SignInError> {
        let now = self.clock.now();
        let tx = self.db.begin_serialized(tenant).await?;
        let counts = self.throttles(&tx, keys).await?;
        for (i, key) in keys.iter().enumerate() {
            let failures = counts[i].0.saturating_add(1);
            let grace = if i == 0 { CLIENT_GRACE } else { ADDRESS_GRACE };
            let until = delay(failures, grace).map(|d| now + d);
            throttles::Entity::insert(throttles::ActiveModel {
                tenant_id: Set(tenant.as_uuid()),
                client: Set(key.clone()),
                failures: Set(failures),
                throttled_until: Set(until),
                updated_at: Set(now),
            })
            .on_conflict(
                sea_orm::sea_query::OnConflict::columns([
                    throttles::Column::TenantId,
                    throttles::Column::Client,
                ])
                .update_columns([
                    throttles::Column::Failures,
                    throttles::Column::ThrottledUntil,
                    throttles::Column::UpdatedAt,
                ])
                .to_owned(),
            )
            .exec(tx.conn())
            .await?;
            if let (1, true, Ok(account)) = (
                i,
                failures >= LOCK_AFTER,
                uuid::Uuid::parse_str(actor.id.as_str()),
            ) && actor.kind != ActorKind::Anonymous
            {
                tx.update_many::<accounts::Entity>()
                    .col_expr(accounts::Column::Status, "locked".into())
                    .filter(accounts::Column::Id.eq(account))
                    .exec(tx.conn())
                    .await?;
            }
        }
        let reference = session.map(session_ref);
        let event = event(actor, action, Outcome::Denied, None, reference.as_deref())?;
        self.audit.append(&tx, &[event]).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Clears the address's failures after a full sign-in (the client's are kept: one
    /// success does not excuse an address that is trying many accounts).
    pub(super) async fn clear(&self, tx: &TenantTx, keys: &[String; 2]) -> Result<(), SignInError> {
        tx.update_many::<throttles::Entity>()
            .col_expr(throttles::Column::Failures, 0.into())
            .col_expr(
                throttles::Column::ThrottledUntil,
                Option::<DateTime<Utc>>::None.into(),
            )
            .filter(throttles::Column::Client.eq(keys[1].clone()))
            .exec(tx.conn())
            .await?;
        Ok(())
    }

    /// Records an event on its own.
    pub(super) async fn record(
        &self,
        tenant: TenantId,
        actor: &Actor,
        action: Action,
        outcome: Outcome,
        patient: Option<PatientId>,
    ) -> Result<(), SignInError> {
        self.audit
            .record(tenant, &[event(actor, action, outcome, patient, None)?])
            .await?;
        Ok(())
    }
}

/// An account by id, in the transaction's clinic.
pub(super) async fn account_by_id(
    tx: &TenantTx,
    id: AccountId,
) -> Result<Option<accounts::Model>, sea_orm::DbErr> {
    tx.find::<accounts::Entity>()
        .filter(accounts::Column::Id.eq(id.as_uuid()))
        .one(tx.conn())
        .await
}

/// The clinic and account of a signed-in patient or staff member.
pub(super) fn signed_in(by: &Principal) -> Result<(TenantId, AccountId), SignInError> {
    match by {
        Principal::Patient {
            tenant, account, ..
        }
        | Principal::Staff {
            tenant, account, ..
        } => Ok((*tenant, *account)),
        _ => Err(SignInError::NotSignedIn),
    }
}

/// Failures a client address may make before delays start (shared addresses, such as a
/// clinic's own network, make more).
const CLIENT_GRACE: i32 = 10;
/// Failures an address typed may make before delays start.
const ADDRESS_GRACE: i32 = 3;

/// The delay after `failures` in a row: none within the grace, then 1 s doubling to at most
/// 15 minutes.
fn delay(failures: i32, grace: i32) -> Option<Duration> {
    if failures <= grace {
        return None;
    }
    let exponent = u32::try_from(failures - grace - 1).unwrap_or(0).min(20);
    Some(Duration::seconds(1_i64 << exponent).min(Duration::minutes(15)))
}

pub(super) fn client_key(client: &str) -> String {
    let client: String = client.chars().take(60).collect();
    format!("ip:{client}")
}

pub(super) fn address_key(index: &[u8]) -> String {
    let hex: String = index.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("id:{hex}")
}

/// A short, non-secret reference to a session for the audit trail: a prefix of its
/// stored id (itself a hash of the token), never the token.
pub(super) fn session_ref(session: &Session) -> String {
    super::sessions::reference(&session.id)
}

pub(super) fn anonymous() -> Actor {
    Actor {
        kind: ActorKind::Anonymous,
        id: crate::audit::event::Token::for_uuid(uuid::Uuid::nil()),
    }
}

pub(super) fn account_actor(account: &accounts::Model) -> Actor {
    let kind = if account.role == Role::Patient.code() {
        ActorKind::Patient
    } else {
        ActorKind::Staff
    };
    Actor {
        kind,
        id: crate::audit::event::Token::for_uuid(account.id),
    }
}

pub(super) fn event(
    actor: &Actor,
    action: Action,
    outcome: Outcome,
    patient: Option<PatientId>,
    client: Option<&str>,
) -> Result<NewEvent, AuditError> {
    let mut event =
        NewEvent::new(actor.clone(), action, "Account", Purpose::PatientRequest)?.outcome(outcome);
    event.patient = patient;
    if let Some(client) = client {
        event = event.client(client)?;
    }
    Ok(event)
}

pub(super) fn place<'a>(
    tenant: TenantId,
    table: &'static str,
    column: &'static str,
    row: &'a str,
) -> Place<'a> {
    Place {
        tenant,
        table,
        column,
        row,
    }
}

/// Trimmed, NFKC, lower case; `None` unless it looks like an address.
pub fn normalize_email(email: &str) -> Option<String> {
    let email: String = email.trim().nfkc().collect::<String>().to_lowercase();
    let (local, domain) = email.split_once('@')?;
    let plausible = !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && email.len() <= 254
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    plausible.then_some(email)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_after_the_grace_and_stop_at_fifteen_minutes() {
        assert_eq!(delay(3, ADDRESS_GRACE), None);
        assert_eq!(delay(4, ADDRESS_GRACE), Some(Duration::seconds(1)));
        assert_eq!(delay(5, ADDRESS_GRACE), Some(Duration::seconds(2)));
        assert_eq!(delay(8, ADDRESS_GRACE), Some(Duration::seconds(16)));
        assert_eq!(delay(99, ADDRESS_GRACE), Some(Duration::minutes(15)));
        assert_eq!(delay(10, CLIENT_GRACE), None);
    }

    #[test]
    fn addresses_are_normalized_and_checked() {
        assert_eq!(
            normalize_email("  Maria@Example.ORG "),
            Some("maria@example.org".to_owned())
        );
        for bad in [
            "",
            "maria",
            "@example.org",
            "maria@example",
            "maria@.org",
            "ma ria@example.org",
        ] {
            assert_eq!(normalize_email(bad), None, "{bad:?}");
        }
    }
}
