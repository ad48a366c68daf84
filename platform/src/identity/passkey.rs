//! Passkeys (WebAuthn): the phishing-resistant second factor.
//!
//! A signed-in person registers a passkey on their phone or laptop
//! ([`LocalIdentity::start_passkey_registration`], then `finish_…`); at the next sign-in,
//! after the password, the browser signs Portico's challenge with it
//! ([`LocalIdentity::start_passkey_sign_in`], then `finish_…`) instead of typing a code.
//! A passkey is bound to the portal's host (its relying party id): the browser will not
//! use it on any other site, so a look-alike page cannot relay it. User verification (the
//! device's PIN or biometric) is required.
//!
//! The ceremony's state (its challenge) is kept server-side, sealed, with the session that
//! started it, for 5 minutes, and used once. Public keys and signature counters are kept
//! in `passkeys`; a counter that goes backwards (a cloned authenticator) is refused.

use chrono::{DateTime, Duration, Utc};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use webauthn_rs::prelude::{
    Passkey, PasskeyAuthentication, PasskeyRegistration, PublicKeyCredential,
    RegisterPublicKeyCredential, Url, Webauthn, WebauthnBuilder,
};

use super::enrollment::hex;
use super::entity::{passkey_ceremonies, passkeys};
use super::local::{
    LocalIdentity, SignInError, account_actor, account_by_id, address_key, client_key, place,
    signed_in,
};
use super::sessions::{Issued, Session, Stage};
use crate::audit::{Action, NewEvent, Purpose};
use crate::db::TenantTx;
use crate::ids::{AccountId, TenantId};
use crate::principal::Principal;

/// How long a ceremony may take (the WebAuthn recommendation).
pub const CEREMONY_MINUTES: i64 = 5;
/// Most passkeys one account may have.
pub const MAX_PASSKEYS: usize = 10;
/// The longest name a person may give a passkey.
const MAX_NAME_CHARS: usize = 64;

/// The site the browser must be on: the portal's host and origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelyingParty {
    /// The relying party id: the portal's host name, without port.
    pub id: String,
    /// The clinic's name, shown by the authenticator.
    pub name: String,
    origins: Vec<Url>,
    any_port: bool,
}

impl RelyingParty {
    /// The relying party for a portal host. Browsers allow WebAuthn only over https, and
    /// over http on `localhost` names, which development mode accepts (on any port).
    /// `None` for a host that cannot be a relying party (an IP address).
    pub fn for_host(host: &str, name: &str, development: bool) -> Option<Self> {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let https = Url::parse(&format!("https://{host}")).ok()?;
        // An IP address has no domain, and cannot be a relying party.
        https.domain()?;
        let local = host == "localhost" || host.ends_with(".localhost");
        let mut origins = vec![https];
        if development && local {
            origins.push(Url::parse(&format!("http://{host}")).ok()?);
        }
        Some(Self {
            id: host,
            name: name.to_owned(),
            origins,
            any_port: development && local,
        })
    }

    fn webauthn(&self) -> Result<Webauthn, PasskeyError> {
        let mut builder = WebauthnBuilder::new(&self.id, &self.origins[0])
            .map_err(|_| PasskeyError::Internal("no relying party for this host".into()))?
            .rp_name(&self.name)
            .allow_any_port(self.any_port);
        for origin in &self.origins[1..] {
            builder = builder.append_allowed_origin(origin);
        }
        builder
            .build()
            .map_err(|_| PasskeyError::Internal("no relying party for this host".into()))
    }
}

/// Why a passkey could not be added or removed. Messages are safe to show.
#[derive(Debug, thiserror::Error)]
pub enum PasskeyError {
    /// Only a fully signed-in person manages their passkeys.
    #[error("sign in first")]
    NotSignedIn,
    /// No registration is waiting for this session, or it took too long.
    #[error("the passkey set-up has expired; start again")]
    Expired,
    /// The browser's answer did not verify (another site, a wrong or reused challenge, no
    /// user verification).
    #[error("the passkey was not accepted")]
    Refused,
    /// The account has as many passkeys as it may.
    #[error("you have the most passkeys an account may have; remove one first")]
    TooMany,
    /// A field is malformed.
    #[error("{0}")]
    Invalid(&'static str),
    /// Something failed inside Portico.
    #[error("passkeys failed inside Portico")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl From<SignInError> for PasskeyError {
    fn from(err: SignInError) -> Self {
        match err {
            SignInError::NotSignedIn => Self::NotSignedIn,
            other => Self::Internal(Box::new(other)),
        }
    }
}

macro_rules! internal {
    ($($error:ty),+ $(,)?) => {
        $(
            impl From<$error> for PasskeyError {
                fn from(err: $error) -> Self {
                    Self::Internal(Box::new(err))
                }
            }
        )+
    };
}

internal!(
    crate::db::DbError,
    sea_orm::DbErr,
    crate::crypto::vault::VaultError,
    crate::audit::AuditError,
    crate::audit::event::EventError,
    super::sessions::SessionError,
    serde_json::Error,
);

/// A registered passkey, as its owner sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasskeyInfo {
    /// Its id, for removing it.
    pub id: uuid::Uuid,
    /// The name its owner gave it.
    pub name: String,
    /// When it was added.
    pub created_at: DateTime<Utc>,
    /// When it last signed in.
    pub last_used_at: Option<DateTime<Utc>>,
}

/// What a ceremony is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ceremony {
    Register,
    SignIn,
}

impl Ceremony {
    fn code(self) -> &'static str {
        match self {
            Self::Register => "register",
            Self::SignIn => "sign_in",
        }
    }
}

impl LocalIdentity {
    /// Starts adding a passkey for the signed-in person: returns the options for the
    /// browser's `navigator.credentials.create()`, as JSON.
    pub async fn start_passkey_registration(
        &self,
        by: &Principal,
        session: &Session,
        rp: &RelyingParty,
    ) -> Result<String, PasskeyError> {
        let (tenant, account) = own_full_session(by, session)?;
        let read = self.db.begin(tenant).await?;
        let row = account_by_id(&read, account)
            .await?
            .ok_or(PasskeyError::NotSignedIn)?;
        let existing = stored(&read, account).await?;
        let email = self
            .vault
            .open(
                &read,
                &place(tenant, "accounts", "email", &row.id.to_string()),
                &row.email,
            )
            .await?;
        read.commit().await?;
        if existing.len() >= MAX_PASSKEYS {
            return Err(PasskeyError::TooMany);
        }
        let email = String::from_utf8_lossy(&email).into_owned();
        let exclude = existing
            .iter()
            .map(|(_, passkey)| passkey.cred_id().clone())
            .collect();
        let (options, state) = rp
            .webauthn()?
            .start_passkey_registration(account.as_uuid(), &email, &email, Some(exclude))
            .map_err(|_| PasskeyError::Internal("cannot start a passkey registration".into()))?;
        self.keep_ceremony(
            tenant,
            session,
            Ceremony::Register,
            &serde_json::to_vec(&state)?,
        )
        .await?;

        Ok(serde_json::to_string(&options)?)
    }

    /// Finishes adding a passkey with the browser's answer (the JSON of the
    /// `PublicKeyCredential` it created) and a name for it.
    pub async fn finish_passkey_registration(
        &self,
        by: &Principal,
        session: &Session,
        rp: &RelyingParty,
        credential: &str,
        name: &str,
    ) -> Result<PasskeyInfo, PasskeyError> {
        let (tenant, account) = own_full_session(by, session)?;
        let name = passkey_name(name)?;
        let credential: RegisterPublicKeyCredential =
            serde_json::from_str(credential).map_err(|_| {
                PasskeyError::Invalid("the passkey answer is not a WebAuthn credential")
            })?;
        let state = self
            .take_ceremony(tenant, session, Ceremony::Register)
            .await?
            .ok_or(PasskeyError::Expired)?;
        let state: PasskeyRegistration = serde_json::from_slice(&state)?;
        let passkey = rp
            .webauthn()?
            .finish_passkey_registration(&credential, &state)
            .map_err(|_| PasskeyError::Refused)?;

        let now = self.clock.now();
        let id = crate::ids::new_uuid(self.clock.as_ref(), self.entropy.as_ref());
        let tx = self.db.begin_serialized(tenant).await?;
        tx.insert(passkeys::ActiveModel {
            id: Set(id),
            account_id: Set(account.as_uuid()),
            credential_id: Set(passkey.cred_id().to_vec()),
            rp_id: Set(rp.id.clone()),
            credential: Set(serde_json::to_string(&passkey)?),
            name: Set(name.clone()),
            created_at: Set(now),
            last_used_at: Set(None),
            ..Default::default()
        })
        .await
        .map_err(|err| match err {
            crate::db::DbError::Conflict(_) => PasskeyError::Refused,
            other => other.into(),
        })?;
        let row = account_by_id(&tx, account)
            .await?
            .ok_or(PasskeyError::NotSignedIn)?;
        let event = NewEvent::new(
            account_actor(&row),
            Action::Create,
            "Passkey",
            Purpose::PatientRequest,
        )?
        .resource(&id.to_string())?;
        self.audit.append(&tx, &[event]).await?;
        tx.commit().await?;

        Ok(PasskeyInfo {
            id,
            name,
            created_at: now,
            last_used_at: None,
        })
    }

    /// The signed-in person's passkeys, newest first.
    pub async fn passkeys(&self, by: &Principal) -> Result<Vec<PasskeyInfo>, PasskeyError> {
        let (tenant, account) = signed_in(by)?;
        let tx = self.db.begin(tenant).await?;
        let rows = tx
            .find::<passkeys::Entity>()
            .filter(passkeys::Column::AccountId.eq(account.as_uuid()))
            .order_by_desc(passkeys::Column::CreatedAt)
            .all(tx.conn())
            .await?;
        tx.commit().await?;
        Ok(rows
            .into_iter()
            .map(|row| PasskeyInfo {
                id: row.id,
                name: row.name,
                created_at: row.created_at,
                last_used_at: row.last_used_at,
            })
            .collect())
    }

    /// Removes one of the signed-in person's passkeys. False if they have none by that id.
    pub async fn remove_passkey(
        &self,
        by: &Principal,
        id: uuid::Uuid,
    ) -> Result<bool, PasskeyError> {
        let (tenant, account) = signed_in(by)?;
        let tx = self.db.begin_serialized(tenant).await?;
        let removed = tx
            .delete_many::<passkeys::Entity>()
            .filter(passkeys::Column::Id.eq(id))
            .filter(passkeys::Column::AccountId.eq(account.as_uuid()))
            .exec(tx.conn())
            .await?;
        if removed.rows_affected == 0 {
            return Ok(false);
        }
        let row = account_by_id(&tx, account)
            .await?
            .ok_or(PasskeyError::NotSignedIn)?;
        let event = NewEvent::new(
            account_actor(&row),
            Action::Delete,
            "Passkey",
            Purpose::PatientRequest,
        )?
        .resource(&id.to_string())?;
        self.audit.append(&tx, &[event]).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// The second step of sign-in with a passkey: returns the options for the browser's
    /// `navigator.credentials.get()`, as JSON, for a session at the password stage.
    pub async fn start_passkey_sign_in(
        &self,
        tenant: TenantId,
        pending: &str,
        rp: &RelyingParty,
    ) -> Result<String, SignInError> {
        let read = self.db.begin(tenant).await?;
        let (session, account) = self.pending(&read, pending).await?;
        let keys: Vec<Passkey> = stored(&read, AccountId::from_uuid(account.id))
            .await?
            .into_iter()
            .filter(|(row, _)| row.rp_id == rp.id)
            .map(|(_, passkey)| passkey)
            .collect();
        read.commit().await?;
        if keys.is_empty() {
            return Err(SignInError::NoPasskey);
        }
        let (options, state) = rp
            .webauthn()
            .map_err(|err| SignInError::Internal(Box::new(err)))?
            .start_passkey_authentication(&keys)
            .map_err(|_| SignInError::Internal("cannot start a passkey sign-in".into()))?;
        let state =
            serde_json::to_vec(&state).map_err(|err| SignInError::Internal(Box::new(err)))?;
        self.keep_ceremony(tenant, &session, Ceremony::SignIn, &state)
            .await
            .map_err(|err| SignInError::Internal(Box::new(err)))?;

        serde_json::to_string(&options).map_err(|err| SignInError::Internal(Box::new(err)))
    }

    /// Finishes the second step with the browser's answer (the JSON of the
    /// `PublicKeyCredential` it got). Ends the waiting session and starts a full one.
    pub async fn finish_passkey_sign_in(
        &self,
        tenant: TenantId,
        pending: &str,
        rp: &RelyingParty,
        credential: &str,
        client: &str,
    ) -> Result<Issued, SignInError> {
        let read = self.db.begin(tenant).await?;
        let (session, account) = self.pending(&read, pending).await?;
        read.commit().await?;
        let keys = [client_key(client), address_key(&account.email_index)];
        let state = self
            .take_ceremony(tenant, &session, Ceremony::SignIn)
            .await
            .map_err(|err| SignInError::Internal(Box::new(err)))?;
        let verified = match (
            state,
            serde_json::from_str::<PublicKeyCredential>(credential),
        ) {
            (Some(state), Ok(answer)) => {
                let state: Result<PasskeyAuthentication, _> = serde_json::from_slice(&state);
                match (state, rp.webauthn()) {
                    (Ok(state), Ok(webauthn)) => {
                        webauthn.finish_passkey_authentication(&answer, &state).ok()
                    }
                    _ => None,
                }
            }
            _ => None,
        };
        let Some(result) = verified else {
            self.fail(tenant, &account_actor(&account), &keys, Some(&session))
                .await?;
            return Err(SignInError::PasskeyRefused);
        };

        let tx = self.db.begin_serialized(tenant).await?;
        // Still standing: it may have been ended meanwhile.
        let (session, account) = self.pending(&tx, pending).await?;
        let own = stored(&tx, AccountId::from_uuid(account.id)).await?;
        let Some((row, mut passkey)) = own
            .into_iter()
            .find(|(_, passkey)| passkey.cred_id() == result.cred_id())
        else {
            drop(tx);
            self.fail(tenant, &account_actor(&account), &keys, Some(&session))
                .await?;
            return Err(SignInError::PasskeyRefused);
        };
        passkey.update_credential(&result);
        tx.update_many::<passkeys::Entity>()
            .col_expr(
                passkeys::Column::Credential,
                serde_json::to_string(&passkey)
                    .map_err(|err| SignInError::Internal(Box::new(err)))?
                    .into(),
            )
            .col_expr(passkeys::Column::LastUsedAt, Some(self.clock.now()).into())
            .filter(passkeys::Column::Id.eq(row.id))
            .exec(tx.conn())
            .await?;

        self.complete(tx, &session, &account, &keys).await
    }

    /// Keeps a ceremony's state, sealed, with the session that started it (replacing an
    /// earlier one).
    async fn keep_ceremony(
        &self,
        tenant: TenantId,
        session: &Session,
        ceremony: Ceremony,
        state: &[u8],
    ) -> Result<(), PasskeyError> {
        let row = hex(&session.id);
        let sealing = self.db.begin(tenant).await?;
        let sealed = self
            .vault
            .seal(
                &sealing,
                &place(tenant, "passkey_ceremonies", "state", &row),
                state,
            )
            .await?;
        sealing.commit().await?;

        let now = self.clock.now();
        let tx = self.db.begin_serialized(tenant).await?;
        passkey_ceremonies::Entity::insert(passkey_ceremonies::ActiveModel {
            session_id: Set(session.id.to_vec()),
            tenant_id: Set(tenant.as_uuid()),
            purpose: Set(ceremony.code().to_owned()),
            state: Set(sealed),
            expires_at: Set(now + Duration::minutes(CEREMONY_MINUTES)),
            created_at: Set(now),
        })
        .on_conflict(
            OnConflict::column(passkey_ceremonies::Column::SessionId)
                .update_columns([
                    passkey_ceremonies::Column::Purpose,
                    passkey_ceremonies::Column::State,
                    passkey_ceremonies::Column::ExpiresAt,
                    passkey_ceremonies::Column::CreatedAt,
                ])
                .to_owned(),
        )
        .exec(tx.conn())
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Takes (and removes) the session's ceremony state for `ceremony`, if it is still
    /// good: a challenge is answered once.
    async fn take_ceremony(
        &self,
        tenant: TenantId,
        session: &Session,
        ceremony: Ceremony,
    ) -> Result<Option<Vec<u8>>, PasskeyError> {
        let now = self.clock.now();
        let tx = self.db.begin_serialized(tenant).await?;
        let row = tx
            .find::<passkey_ceremonies::Entity>()
            .filter(passkey_ceremonies::Column::SessionId.eq(session.id.to_vec()))
            .one(tx.conn())
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        tx.delete_many::<passkey_ceremonies::Entity>()
            .filter(passkey_ceremonies::Column::SessionId.eq(session.id.to_vec()))
            .exec(tx.conn())
            .await?;
        let state = if row.purpose == ceremony.code() && row.expires_at > now {
            Some(
                self.vault
                    .open(
                        &tx,
                        &place(tenant, "passkey_ceremonies", "state", &hex(&session.id)),
                        &row.state,
                    )
                    .await?
                    .to_vec(),
            )
        } else {
            None
        };
        tx.commit().await?;
        Ok(state)
    }
}

/// The account's passkeys with their rows.
async fn stored(
    tx: &TenantTx,
    account: AccountId,
) -> Result<Vec<(passkeys::Model, Passkey)>, sea_orm::DbErr> {
    let rows = tx
        .find::<passkeys::Entity>()
        .filter(passkeys::Column::AccountId.eq(account.as_uuid()))
        .all(tx.conn())
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|row| {
            let passkey = serde_json::from_str(&row.credential).ok()?;
            Some((row, passkey))
        })
        .collect())
}

/// The principal's clinic and account, if `session` is its own full session.
fn own_full_session(
    by: &Principal,
    session: &Session,
) -> Result<(TenantId, AccountId), PasskeyError> {
    let (tenant, account) = signed_in(by)?;
    if session.stage != Stage::Full || session.account != account || session.tenant != tenant {
        return Err(PasskeyError::NotSignedIn);
    }
    Ok((tenant, account))
}

/// A passkey's name as given: trimmed, 1 to 64 characters, no control characters;
/// "Passkey" when none is given.
fn passkey_name(name: &str) -> Result<String, PasskeyError> {
    let name = name.trim();
    if name.is_empty() {
        return Ok("Passkey".to_owned());
    }
    if name.chars().count() > MAX_NAME_CHARS || name.chars().any(char::is_control) {
        return Err(PasskeyError::Invalid(
            "a passkey's name is at most 64 characters, without control characters",
        ));
    }
    Ok(name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_relying_party_is_a_host_name_and_http_only_for_local_development() {
        let production =
            RelyingParty::for_host("sunrise.portico.example", "Sunrise", false).unwrap();
        assert_eq!(production.id, "sunrise.portico.example");
        assert_eq!(production.origins.len(), 1);
        assert_eq!(production.origins[0].scheme(), "https");
        assert!(!production.any_port);

        let local = RelyingParty::for_host("sunrise.localhost", "Sunrise", true).unwrap();
        assert_eq!(local.origins.len(), 2);
        assert!(local.any_port);
        // Development mode does not open http for real domains.
        let dev_domain =
            RelyingParty::for_host("sunrise.portico.example", "Sunrise", true).unwrap();
        assert_eq!(dev_domain.origins.len(), 1);

        assert_eq!(RelyingParty::for_host("127.0.0.1", "Sunrise", true), None);
        assert!(
            RelyingParty::for_host("sunrise.localhost", "Sunrise", true)
                .unwrap()
                .webauthn()
                .is_ok()
        );
    }

    #[test]
    fn names_are_short_plain_text() {
        assert_eq!(passkey_name("  ").unwrap(), "Passkey");
        assert_eq!(passkey_name(" My phone ").unwrap(), "My phone");
        assert!(passkey_name(&"x".repeat(65)).is_err());
        assert!(passkey_name("line\nbreak").is_err());
    }
}
