//! SMS codes: the second step of sign-in for a patient without their authenticator app.
//!
//! After the password, a patient may ask for a 6-digit code texted to the mobile number
//! the clinic has **on file** ([`LocalIdentity::send_sms_code`]) — never a number typed at
//! sign-in — and give it back ([`LocalIdentity::verify_sms_code`]) instead of a TOTP code.
//! The code is bound to the session waiting for it, stored only as a digest, lasts 5
//! minutes and survives 5 wrong tries; a session may have it re-sent twice, an account
//! be sent 5 in an hour. Staff accounts have no number on file and use the authenticator
//! app (or a recovery code).
//!
//! SMS is the weakest factor Portico accepts (NIST SP 800-63B calls it restricted): it is
//! offered, not required, and a passkey or the authenticator app is always preferred.

use chrono::Duration;
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ActiveValue::Set, ColumnTrait, PaginatorTrait, QueryFilter};

use super::enrollment::{MAX_FAILURES, code_digest, constant_time_eq, hex, six_digits};
use super::entity::{accounts, sms_codes};
use super::local::{LocalIdentity, SignInError, account_actor, address_key, client_key};
use super::sessions::{Issued, Session};
use crate::db::{DbError, TenantTx};
use crate::ids::{PatientId, TenantId};
use crate::notify::{Contact, Message};

/// How long a texted code lasts.
pub const SMS_CODE_MINUTES: i64 = 5;
/// Texts one waiting session may be sent.
const SENDS_PER_SESSION: i32 = 3;
/// Texts one account may be sent in an hour.
const SENDS_PER_HOUR: u64 = 5;

impl LocalIdentity {
    /// Texts a sign-in code to the mobile number on file, for a session at the password
    /// stage.
    pub async fn send_sms_code(
        &self,
        tenant: TenantId,
        pending: &str,
        practice: &str,
    ) -> Result<(), SignInError> {
        let now = self.clock.now();
        let read = self.db.begin(tenant).await?;
        let (session, account) = self.pending(&read, pending).await?;
        let existing = read
            .find::<sms_codes::Entity>()
            .filter(sms_codes::Column::SessionId.eq(session.id.to_vec()))
            .one(read.conn())
            .await?;
        let recent = read
            .find::<sms_codes::Entity>()
            .filter(sms_codes::Column::AccountId.eq(account.id))
            .filter(sms_codes::Column::CreatedAt.gt(now - Duration::hours(1)))
            .count(read.conn())
            .await?;
        read.commit().await?;
        let sends = existing.as_ref().map_or(0, |row| row.sends);
        if sends >= SENDS_PER_SESSION || (existing.is_none() && recent >= SENDS_PER_HOUR) {
            return Err(SignInError::TryLater {
                until: now + Duration::minutes(15),
            });
        }
        let phone = self
            .mobile_on_file(tenant, &account)
            .await?
            .ok_or(SignInError::NoPhone)?;

        let code = six_digits(self.entropy.as_ref());
        let hash = code_digest(&hex(&session.id), code.expose()).to_vec();
        let expires_at = now + Duration::minutes(SMS_CODE_MINUTES);
        let tx = self.db.begin_serialized(tenant).await?;
        if existing.is_some() {
            tx.update_many::<sms_codes::Entity>()
                .col_expr(sms_codes::Column::CodeHash, hash.into())
                .col_expr(
                    sms_codes::Column::Sends,
                    Expr::col(sms_codes::Column::Sends).add(1),
                )
                .col_expr(sms_codes::Column::Failures, 0.into())
                .col_expr(sms_codes::Column::ExpiresAt, expires_at.into())
                .filter(sms_codes::Column::SessionId.eq(session.id.to_vec()))
                .exec(tx.conn())
                .await?;
        } else {
            tx.insert(sms_codes::ActiveModel {
                session_id: Set(session.id.to_vec()),
                account_id: Set(account.id),
                code_hash: Set(hash),
                sends: Set(1),
                failures: Set(0),
                expires_at: Set(expires_at),
                used_at: Set(None),
                created_at: Set(now),
                ..Default::default()
            })
            .await?;
        }
        tx.commit().await?;

        let message = Message::SignInCode {
            practice: practice.to_owned(),
            code,
            minutes: SMS_CODE_MINUTES,
        };
        self.notifier
            .send(tenant, &Contact::Sms(phone), &message)
            .await
            .map_err(|err| SignInError::NotSent(Box::new(err)))
    }

    /// The second step with a texted code. Ends the waiting session and starts a full one.
    pub async fn verify_sms_code(
        &self,
        tenant: TenantId,
        pending: &str,
        code: &str,
        client: &str,
    ) -> Result<Issued, SignInError> {
        let tx = self.db.begin_serialized(tenant).await?;
        let (session, account) = self.pending(&tx, pending).await?;
        let keys = [client_key(client), address_key(&account.email_index)];
        if let Err(live) = self.take_sms_code(&tx, &session, code).await? {
            // Counted after `tx` ends: on SQLite a second writer would wait for it.
            drop(tx);
            if live {
                self.count_sms_failure(tenant, &session).await?;
            }
            self.fail(tenant, &account_actor(&account), &keys, Some(&session))
                .await?;
            return Err(SignInError::SmsCode);
        }

        self.complete(tx, &session, &account, &keys).await
    }

    /// Checks the session's texted code and uses it up. `Err(live)` for a wrong, used or
    /// expired code; `live` when the code still stands and the failure must be counted.
    async fn take_sms_code(
        &self,
        tx: &TenantTx,
        session: &Session,
        code: &str,
    ) -> Result<Result<(), bool>, SignInError> {
        let now = self.clock.now();
        let id = session.id.to_vec();
        let row = tx
            .find::<sms_codes::Entity>()
            .filter(sms_codes::Column::SessionId.eq(id.clone()))
            .one(tx.conn())
            .await?;
        let Some(row) = row else {
            return Ok(Err(false));
        };
        let live = row.used_at.is_none() && row.expires_at > now && row.failures < MAX_FAILURES;
        let given = code_digest(&hex(&session.id), code.trim());
        if !(live && constant_time_eq(&row.code_hash, &given)) {
            return Ok(Err(live));
        }
        tx.update_many::<sms_codes::Entity>()
            .col_expr(sms_codes::Column::UsedAt, Some(now).into())
            .filter(sms_codes::Column::SessionId.eq(id))
            .exec(tx.conn())
            .await?;

        Ok(Ok(()))
    }

    async fn count_sms_failure(&self, tenant: TenantId, session: &Session) -> Result<(), DbError> {
        let tx = self.db.begin_serialized(tenant).await?;
        tx.update_many::<sms_codes::Entity>()
            .col_expr(
                sms_codes::Column::Failures,
                Expr::col(sms_codes::Column::Failures).add(1),
            )
            .filter(sms_codes::Column::SessionId.eq(session.id.to_vec()))
            .exec(tx.conn())
            .await?;
        tx.commit().await
    }

    /// The mobile number on file for a patient account; staff have none.
    async fn mobile_on_file(
        &self,
        tenant: TenantId,
        account: &accounts::Model,
    ) -> Result<Option<String>, SignInError> {
        let Some(patient) = account.patient_id.map(PatientId::from_uuid) else {
            return Ok(None);
        };
        let on_file = self
            .registry
            .on_file(tenant, patient)
            .await
            .map_err(|err| SignInError::Internal(Box::new(err)))?;
        Ok(on_file.and_then(|on_file| {
            on_file
                .contacts
                .into_iter()
                .find_map(|contact| match contact {
                    Contact::Sms(number) => Some(number),
                    Contact::Email(_) => None,
                })
        }))
    }
}
