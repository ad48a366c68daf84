//! Staff invitations: how clinic staff get accounts.
//!
//! A clinic admin invites a person by e-mail address to a staff role
//! ([`LocalIdentity::invite_staff`]); so does an operator, but only for a clinic's first
//! admin when the clinic is created. The invitation code goes to that address and lasts 7
//! days; it is stored only as an argon2id hash, like a recovery code. The person accepts
//! with the code, the same address and a password of their own
//! ([`LocalIdentity::accept_invitation`]), and, as at enrollment, confirms a new
//! authenticator with its first code: no account reaches anything without a second factor.
//!
//! An invitation is good only at its clinic: accounts, codes and sessions are all
//! tenant-owned, so staff of one clinic cannot sign in at another's address.

use chrono::{DateTime, Duration, Utc};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ActiveValue::Set, ColumnTrait, PaginatorTrait, QueryFilter};

use super::enrollment::{Enrolled, EnrollmentError, MAX_FAILURES};
use super::entity::{accounts, invitations};
use super::local::{AccountError, LocalIdentity, NewAccount, client_key, normalize_email, place};
use super::recovery::RecoveryCode;
use super::role::Role;
use crate::audit::event::Token;
use crate::audit::{Action, Actor, ActorKind, NewEvent, Purpose};
use crate::db::DbError;
use crate::ids::{AccountId, TenantId};
use crate::notify::{Contact, Message};
use crate::principal::Principal;

/// How long an invitation lasts.
pub const INVITATION_DAYS: i64 = 7;

/// An invitation sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Invitation {
    /// The role the person will have.
    pub role: Role,
    /// When the code stops working.
    pub expires_at: DateTime<Utc>,
}

/// A staff member to invite.
#[derive(Debug, Clone, Copy)]
pub struct NewInvitation<'a> {
    /// Where the invitation goes, and the address the account will sign in with.
    pub email: &'a str,
    /// A staff role.
    pub role: Role,
    /// The clinic's name, as the message names it.
    pub practice: &'a str,
}

impl LocalIdentity {
    /// Invites a person to a staff role at the clinic and e-mails them the code. Only the
    /// clinic's admin may, or an operator for the clinic's first admin.
    pub async fn invite_staff(
        &self,
        by: &Principal,
        tenant: TenantId,
        new: NewInvitation<'_>,
    ) -> Result<Invitation, EnrollmentError> {
        let (actor, invited_by) = match by {
            Principal::Operator if new.role == Role::TenantAdmin => (Actor::operator(), None),
            Principal::Staff {
                tenant: own,
                account,
                role: Role::TenantAdmin,
                ..
            } if *own == tenant => (staff_actor(*account), Some(account.as_uuid())),
            _ => return Err(EnrollmentError::Forbidden),
        };
        if !new.role.is_staff() {
            return Err(EnrollmentError::Invalid(
                "an invitation is for a staff role; patients enroll themselves",
            ));
        }
        let email = normalize_email(new.email).ok_or(AccountError::Email)?;
        let index = self.email_index(tenant, &email).await?;

        let read = self.db.begin(tenant).await?;
        let taken = read
            .find::<accounts::Entity>()
            .filter(accounts::Column::EmailIndex.eq(index.to_vec()))
            .count(read.conn())
            .await?;
        read.commit().await?;
        if taken > 0 {
            return Err(AccountError::Taken.into());
        }

        let code = RecoveryCode::generate(self.entropy.as_ref());
        let hash = self
            .hasher
            .hash(&code.secret, self.entropy.as_ref())
            .await?;
        // Sealed before the write transaction: sealing may make a data key in its own.
        let sealing = self.db.begin(tenant).await?;
        let sealed_email = self
            .vault
            .seal(
                &sealing,
                &place(tenant, "invitations", "email", &code.lookup),
                email.as_bytes(),
            )
            .await?;
        sealing.commit().await?;

        let now = self.clock.now();
        let expires_at = now + Duration::days(INVITATION_DAYS);
        let tx = self.db.begin_serialized(tenant).await?;
        tx.insert(invitations::ActiveModel {
            lookup: Set(code.lookup.clone()),
            hash: Set(hash),
            email_index: Set(index.to_vec()),
            email: Set(sealed_email),
            role: Set(new.role.code().to_owned()),
            invited_by: Set(invited_by),
            failures: Set(0),
            expires_at: Set(expires_at),
            used_at: Set(None),
            created_at: Set(now),
            ..Default::default()
        })
        .await
        .map_err(|err| match err {
            // A 20-bit lookup already taken: vanishingly rare; the caller tries again.
            DbError::Conflict(_) => EnrollmentError::Internal("invitation code collision".into()),
            other => other.into(),
        })?;
        let event = NewEvent::new(actor, Action::Create, "Invitation", Purpose::Operations)?;
        self.audit.append(&tx, &[event]).await?;
        tx.commit().await?;

        let message = Message::StaffInvitation {
            practice: new.practice.to_owned(),
            code: code.display(),
            days: INVITATION_DAYS,
        };
        self.notifier
            .send(tenant, &Contact::Email(email), &message)
            .await
            .map_err(EnrollmentError::NotSent)?;

        Ok(Invitation {
            role: new.role,
            expires_at,
        })
    }

    /// Accepts an invitation: the code, the address it was sent to, and a password. The
    /// account starts with an authenticator that its first code confirms, as at
    /// enrollment. `new.role` and `new.patient` are ignored: the invitation names the role.
    pub async fn accept_invitation(
        &self,
        tenant: TenantId,
        typed: &str,
        new: NewAccount<'_>,
        client: &str,
    ) -> Result<Enrolled, EnrollmentError> {
        let now = self.clock.now();
        let code = RecoveryCode::parse(typed);
        let lookup = code.as_ref().map_or_else(String::new, |c| c.lookup.clone());
        let keys = [client_key(client), format!("iv:{lookup}")];
        self.not_throttled(tenant, &keys).await?;
        let index = match normalize_email(new.email) {
            Some(email) => Some(self.email_index(tenant, &email).await?),
            None => None,
        };

        let read = self.db.begin(tenant).await?;
        let stored = match &code {
            Some(code) => {
                read.find::<invitations::Entity>()
                    .filter(invitations::Column::Lookup.eq(code.lookup.clone()))
                    .one(read.conn())
                    .await?
            }
            None => None,
        };
        read.commit().await?;
        // The same work whether or not such a code exists.
        let secret = code.map_or_else(
            || crate::secret::Secret::new(String::new()),
            |code| code.secret,
        );
        let matched = self
            .hasher
            .verify(&secret, stored.as_ref().map(|row| row.hash.as_str()))
            .await?;
        let usable = stored.filter(|row| {
            matched && row.used_at.is_none() && row.expires_at > now && row.failures < MAX_FAILURES
        });
        let Some(invitation) = usable else {
            self.refuse_invitation(tenant, &keys).await?;
            return Err(EnrollmentError::NotVerified);
        };
        // The code was sent to one address; only that address may take it.
        if index.is_none_or(|index| index.as_slice() != invitation.email_index.as_slice()) {
            self.count_invitation_failure(tenant, &invitation.lookup)
                .await?;
            self.refuse_invitation(tenant, &keys).await?;
            return Err(EnrollmentError::NotVerified);
        }
        let role = Role::from_code(&invitation.role).ok_or(EnrollmentError::Internal(
            "unknown role in an invitation".into(),
        ))?;

        let account = NewAccount {
            role,
            patient: None,
            ..new
        };
        let mut prepared = self.prepare_account(tenant, &account, false).await?;
        let tx = self.db.begin_serialized(tenant).await?;
        // Used once: the update that marks it is the check, so two at once cannot both win.
        let used = tx
            .update_many::<invitations::Entity>()
            .col_expr(invitations::Column::UsedAt, Some(now).into())
            .filter(invitations::Column::Lookup.eq(invitation.lookup.clone()))
            .filter(invitations::Column::UsedAt.is_null())
            .exec(tx.conn())
            .await?;
        if used.rows_affected != 1 {
            drop(tx);
            self.refuse_invitation(tenant, &keys).await?;
            return Err(EnrollmentError::NotVerified);
        }
        let actor = invitation.invited_by.map_or_else(Actor::operator, |admin| {
            staff_actor(AccountId::from_uuid(admin))
        });
        let pending = prepared.pending.take();
        let created = self.insert_account(&tx, prepared, actor).await?;
        let session = self.first_session(&tx, created.account, pending).await?;
        tx.commit().await?;

        Ok(Enrolled { created, session })
    }

    /// Counts a refused invitation against the client and the code, and audits it.
    async fn refuse_invitation(
        &self,
        tenant: TenantId,
        keys: &[String; 2],
    ) -> Result<(), EnrollmentError> {
        self.fail_as(
            tenant,
            &super::local::anonymous(),
            keys,
            None,
            Action::Create,
        )
        .await?;
        Ok(())
    }

    async fn count_invitation_failure(
        &self,
        tenant: TenantId,
        lookup: &str,
    ) -> Result<(), DbError> {
        let tx = self.db.begin_serialized(tenant).await?;
        tx.update_many::<invitations::Entity>()
            .col_expr(
                invitations::Column::Failures,
                Expr::col(invitations::Column::Failures).add(1),
            )
            .filter(invitations::Column::Lookup.eq(lookup))
            .exec(tx.conn())
            .await?;
        tx.commit().await
    }
}

fn staff_actor(account: AccountId) -> Actor {
    Actor {
        kind: ActorKind::Staff,
        id: Token::for_uuid(account.as_uuid()),
    }
}
