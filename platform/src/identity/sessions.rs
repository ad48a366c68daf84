//! Portico's own sessions, whatever the identity provider: server-side, found by the
//! SHA-256 of a random token that only the browser holds; ended by 15 minutes of idleness
//! (a clinic may choose less) or 12 hours in all; replaced by a new one on sign-in and on
//! any change of privilege; each with its own CSRF token for state-changing requests.

use chrono::{DateTime, Duration, Utc};
use sea_orm::{ActiveValue::Set, ColumnTrait, QueryFilter, QueryOrder};
use sha2::{Digest, Sha256};

use super::entity::sessions;
use crate::clock::Clock;
use crate::db::{DbError, TenantTx};
use crate::entropy::Entropy;
use crate::ids::{AccountId, TenantId};
use crate::secret::Secret;

/// The longest idle time any clinic may allow.
pub const MAX_IDLE: Duration = Duration::minutes(15);
/// The longest a session lasts, however active.
pub const ABSOLUTE: Duration = Duration::hours(12);
/// `last_seen_at` is written at most this often, so that reads do not all become writes.
const TOUCH_EVERY: Duration = Duration::seconds(60);

/// How far a session has got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// The password was right; the second factor is still owed. Reaches no PHI.
    Password,
    /// Fully signed in.
    Full,
}

impl Stage {
    fn code(self) -> &'static str {
        match self {
            Self::Password => "password",
            Self::Full => "full",
        }
    }
}

/// A live session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// Its stored id (the token's SHA-256), for revoking it.
    pub id: [u8; 32],
    /// The clinic it belongs to; it is good at no other.
    pub tenant: TenantId,
    /// Whose it is.
    pub account: AccountId,
    /// How far sign-in has got.
    pub stage: Stage,
    /// When it ends at the latest.
    pub expires_at: DateTime<Utc>,
    /// When it was last used.
    pub last_seen_at: DateTime<Utc>,
}

/// A session just made: the token and CSRF token go to the browser, once.
#[derive(Debug)]
pub struct Issued {
    /// The session token, for the cookie.
    pub token: Secret<String>,
    /// The CSRF token, for the `X-CSRF-Token` header of state-changing requests.
    pub csrf: Secret<String>,
    /// The session.
    pub session: Session,
}

/// A live session as its owner sees it in the list of their sessions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionSummary {
    /// Its short, non-secret reference (`ses-…`), as the audit trail names it.
    pub reference: String,
    /// When it started.
    pub created_at: DateTime<Utc>,
    /// When it was last used (to within a minute).
    pub last_seen_at: DateTime<Utc>,
    /// When it ends at the latest.
    pub expires_at: DateTime<Utc>,
    /// Whether it has passed its second factor.
    pub stage: Stage,
}

/// A short, non-secret reference to a session, for the audit trail and the session list:
/// a prefix of its stored id (itself a hash of the token), never the token.
pub fn reference(id: &[u8]) -> String {
    let hex: String = id.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("ses-{hex}")
}

/// Why a session does not stand.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// No such session here (never was, ended, or another clinic's).
    #[error("not signed in")]
    Unknown,
    /// It ended after inactivity or at its time limit.
    #[error("the session has expired; sign in again")]
    Expired,
    /// The database failed.
    #[error("database error")]
    Database(#[from] DbError),
}

impl From<sea_orm::DbErr> for SessionError {
    fn from(err: sea_orm::DbErr) -> Self {
        Self::Database(err.into())
    }
}

/// Makes, checks and ends sessions.
#[derive(Debug, Clone)]
pub struct Sessions {
    idle: Duration,
}

impl Sessions {
    /// Sessions ending after `idle` of inactivity (at most [`MAX_IDLE`]).
    pub fn new(idle: Duration) -> Self {
        Self {
            idle: idle.min(MAX_IDLE),
        }
    }

    /// Starts a session for `account` at `stage`, inside `tx`.
    pub async fn issue(
        &self,
        tx: &TenantTx,
        account: AccountId,
        stage: Stage,
        clock: &dyn Clock,
        entropy: &dyn Entropy,
    ) -> Result<Issued, SessionError> {
        let now = clock.now();
        let token = random_token(entropy);
        let csrf = random_token(entropy);
        let id = digest(token.expose());
        let expires_at = now + ABSOLUTE;
        tx.insert(sessions::ActiveModel {
            id: Set(id.to_vec()),
            account_id: Set(account.as_uuid()),
            stage: Set(stage.code().to_owned()),
            csrf_hash: Set(digest(csrf.expose()).to_vec()),
            created_at: Set(now),
            last_seen_at: Set(now),
            expires_at: Set(expires_at),
            revoked_at: Set(None),
            provider_state: Set(None),
            ..Default::default()
        })
        .await?;

        Ok(Issued {
            token,
            csrf,
            session: Session {
                id,
                tenant: tx.tenant(),
                account,
                stage,
                expires_at,
                last_seen_at: now,
            },
        })
    }

    /// The session `token` names at the transaction's clinic, if it still stands; its
    /// last use is recorded.
    pub async fn authenticate(
        &self,
        tx: &TenantTx,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<Session, SessionError> {
        let id = digest(token);
        let row = tx
            .find::<sessions::Entity>()
            .filter(sessions::Column::Id.eq(id.to_vec()))
            .one(tx.conn())
            .await?
            .ok_or(SessionError::Unknown)?;
        if row.revoked_at.is_some() {
            return Err(SessionError::Unknown);
        }
        if now >= row.expires_at || now - row.last_seen_at >= self.idle {
            return Err(SessionError::Expired);
        }
        if now - row.last_seen_at >= TOUCH_EVERY {
            tx.update_many::<sessions::Entity>()
                .col_expr(sessions::Column::LastSeenAt, now.into())
                .filter(sessions::Column::Id.eq(id.to_vec()))
                .exec(tx.conn())
                .await?;
        }
        let stage = if row.stage == Stage::Full.code() {
            Stage::Full
        } else {
            Stage::Password
        };

        Ok(Session {
            id,
            tenant: tx.tenant(),
            account: AccountId::from_uuid(row.account_id),
            stage,
            expires_at: row.expires_at,
            last_seen_at: now,
        })
    }

    /// Whether `csrf` is the session's CSRF token.
    pub async fn csrf_matches(
        &self,
        tx: &TenantTx,
        session: &Session,
        csrf: &str,
    ) -> Result<bool, SessionError> {
        let row = tx
            .find::<sessions::Entity>()
            .filter(sessions::Column::Id.eq(session.id.to_vec()))
            .one(tx.conn())
            .await?
            .ok_or(SessionError::Unknown)?;
        // Both sides are digests of fixed length; compare without stopping early.
        let given = digest(csrf);
        let same = row.csrf_hash.len() == given.len()
            && row
                .csrf_hash
                .iter()
                .zip(given.iter())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0;
        Ok(same)
    }

    /// Ends one session.
    pub async fn revoke(
        &self,
        tx: &TenantTx,
        session: &Session,
        now: DateTime<Utc>,
    ) -> Result<(), SessionError> {
        self.revoke_id(tx, &session.id, now).await
    }

    /// The account's sessions that still stand at `now`, newest first, with their ids.
    pub async fn live(
        &self,
        tx: &TenantTx,
        account: AccountId,
        now: DateTime<Utc>,
    ) -> Result<Vec<([u8; 32], SessionSummary)>, SessionError> {
        let rows = tx
            .find::<sessions::Entity>()
            .filter(sessions::Column::AccountId.eq(account.as_uuid()))
            .filter(sessions::Column::RevokedAt.is_null())
            .filter(sessions::Column::ExpiresAt.gt(now))
            .filter(sessions::Column::LastSeenAt.gt(now - self.idle))
            .order_by_desc(sessions::Column::CreatedAt)
            .all(tx.conn())
            .await?;
        Ok(rows
            .into_iter()
            .filter_map(|row| {
                let id: [u8; 32] = row.id.as_slice().try_into().ok()?;
                let stage = if row.stage == Stage::Full.code() {
                    Stage::Full
                } else {
                    Stage::Password
                };
                Some((
                    id,
                    SessionSummary {
                        reference: reference(&id),
                        created_at: row.created_at,
                        last_seen_at: row.last_seen_at,
                        expires_at: row.expires_at,
                        stage,
                    },
                ))
            })
            .collect())
    }

    /// Keeps the identity provider's state for the second step (sealed by the caller) with
    /// a session waiting for it.
    pub async fn attach_provider_state(
        &self,
        tx: &TenantTx,
        session: &Session,
        sealed: Vec<u8>,
    ) -> Result<(), SessionError> {
        tx.update_many::<sessions::Entity>()
            .col_expr(sessions::Column::ProviderState, Some(sealed).into())
            .filter(sessions::Column::Id.eq(session.id.to_vec()))
            .exec(tx.conn())
            .await?;
        Ok(())
    }

    /// The identity provider's sealed state kept with a session, if any.
    pub async fn provider_state(
        &self,
        tx: &TenantTx,
        session: &Session,
    ) -> Result<Option<Vec<u8>>, SessionError> {
        let row = tx
            .find::<sessions::Entity>()
            .filter(sessions::Column::Id.eq(session.id.to_vec()))
            .one(tx.conn())
            .await?
            .ok_or(SessionError::Unknown)?;
        Ok(row.provider_state)
    }

    /// Ends one session by its id.
    pub async fn revoke_id(
        &self,
        tx: &TenantTx,
        id: &[u8; 32],
        now: DateTime<Utc>,
    ) -> Result<(), SessionError> {
        tx.update_many::<sessions::Entity>()
            .col_expr(sessions::Column::RevokedAt, Some(now).into())
            .filter(sessions::Column::Id.eq(id.to_vec()))
            .exec(tx.conn())
            .await?;
        Ok(())
    }

    /// Ends every session of an account (sign out everywhere, a password reset).
    pub async fn revoke_all(
        &self,
        tx: &TenantTx,
        account: AccountId,
        now: DateTime<Utc>,
    ) -> Result<u64, SessionError> {
        let result = tx
            .update_many::<sessions::Entity>()
            .col_expr(sessions::Column::RevokedAt, Some(now).into())
            .filter(sessions::Column::AccountId.eq(account.as_uuid()))
            .filter(sessions::Column::RevokedAt.is_null())
            .exec(tx.conn())
            .await?;
        Ok(result.rows_affected)
    }
}

/// 32 random bytes, base64url without padding: 256 bits, never stored.
fn random_token(entropy: &dyn Entropy) -> Secret<String> {
    let mut bytes = zeroize::Zeroizing::new([0u8; 32]);
    entropy.fill(bytes.as_mut());
    Secret::new(base64url(bytes.as_ref()))
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64url_matches_rfc_4648_without_padding() {
        assert_eq!(base64url(b""), "");
        assert_eq!(base64url(b"f"), "Zg");
        assert_eq!(base64url(b"fo"), "Zm8");
        assert_eq!(base64url(b"foo"), "Zm9v");
        assert_eq!(base64url(b"foob"), "Zm9vYg");
        assert_eq!(base64url(&[0xfb, 0xff]), "-_8");
    }

    #[test]
    fn a_clinic_may_shorten_the_idle_time_but_not_lengthen_it() {
        assert_eq!(
            Sessions::new(Duration::minutes(5)).idle,
            Duration::minutes(5)
        );
        assert_eq!(Sessions::new(Duration::hours(1)).idle, MAX_IDLE);
    }
}
