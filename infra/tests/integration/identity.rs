//! The embedded identity provider against a real database: accounts, sign-in with a
//! password then a TOTP code, sessions and their timeouts, throttling and locking, and the
//! audit of every step — with no password, code or token in any audit row.

use std::sync::Arc;

use chrono::Duration;
use portico_platform::audit::{Action, ActorKind, AuditTrail, Outcome};
use portico_platform::clock::Clock;
use portico_platform::identity::local::{
    AccountError, Created, LOCK_AFTER, LocalIdentity, NewAccount, SignInError,
};
use portico_platform::identity::password::PasswordProblem;
use portico_platform::identity::role::Role;
use portico_platform::identity::sessions::{SessionError, Stage};
use portico_platform::identity::totp::TotpError;
use portico_platform::ids::{PatientId, TenantId};
use portico_platform::principal::Principal;
use portico_platform::secret::Secret;
use portico_tenants::Tenant;

use crate::fixture::Platform;

const PASSWORD: &str = "tangerine orchestra 42";
const EMAIL: &str = "maria.lopez@example.org";

struct Fixture {
    platform: Platform,
    identity: LocalIdentity,
    audit: AuditTrail,
    sunrise: Tenant,
}

async fn fixture() -> Fixture {
    let platform = Platform::new(Default::default()).await;
    let sunrise = platform.tenant("sunrise").await;
    let audit = AuditTrail::new(platform.db.clone(), Arc::new(platform.clock.clone()));
    let identity = platform.identity();

    Fixture {
        platform,
        identity,
        audit,
        sunrise,
    }
}

fn secret(text: &str) -> Secret<String> {
    Secret::new(text.to_owned())
}

fn patient() -> PatientId {
    PatientId::from_uuid(uuid::Uuid::from_bytes([1; 16]))
}

impl Fixture {
    async fn patient_account(&self, tenant: TenantId, email: &str) -> Created {
        self.identity
            .create_account(
                &Principal::Operator,
                tenant,
                NewAccount {
                    email,
                    password: &secret(PASSWORD),
                    role: Role::Patient,
                    patient: Some(patient()),
                    clinic_name: "Sunrise Family Clinic",
                    clinic_slug: "sunrise",
                },
            )
            .await
            .unwrap()
    }

    /// Signs in fully; returns the session token.
    async fn sign_in(&self, created: &Created) -> Secret<String> {
        let pending = self
            .identity
            .sign_in(self.sunrise.id, EMAIL, &secret(PASSWORD), "203.0.113.5")
            .await
            .unwrap();
        assert_eq!(pending.session.stage, Stage::Password);
        let code = created.totp.code_at(self.platform.clock.now());
        let full = self
            .identity
            .verify_totp(
                self.sunrise.id,
                pending.token.expose(),
                &code,
                "203.0.113.5",
            )
            .await
            .unwrap();
        assert_eq!(full.session.stage, Stage::Full);
        full.token
    }

    async fn wrong_password(&self, email: &str, client: &str) -> SignInError {
        self.identity
            .sign_in(self.sunrise.id, email, &secret("not the password"), client)
            .await
            .unwrap_err()
    }
}

#[tokio::test]
async fn a_patient_signs_in_with_a_password_then_a_code_and_is_the_patient() {
    let f = fixture().await;
    let created = f.patient_account(f.sunrise.id, EMAIL).await;

    let pending = f
        .identity
        .sign_in(
            f.sunrise.id,
            "  Maria.Lopez@Example.org ",
            &secret(PASSWORD),
            "203.0.113.5",
        )
        .await
        .unwrap();
    // Half signed in reaches nothing.
    assert!(matches!(
        f.identity
            .principal(f.sunrise.id, pending.token.expose())
            .await,
        Err(SessionError::Unknown)
    ));
    let code = created.totp.code_at(f.platform.clock.now());
    let full = f
        .identity
        .verify_totp(f.sunrise.id, pending.token.expose(), &code, "203.0.113.5")
        .await
        .unwrap();

    // A new session id on the change of privilege; the pending one is gone.
    assert_ne!(full.session.id, pending.session.id);
    assert!(
        f.identity
            .principal(f.sunrise.id, pending.token.expose())
            .await
            .is_err()
    );
    let (principal, session) = f
        .identity
        .principal(f.sunrise.id, full.token.expose())
        .await
        .unwrap();
    assert!(matches!(
        principal,
        Principal::Patient { tenant, patient: p, .. } if tenant == f.sunrise.id && p == patient()
    ));
    assert!(
        f.identity
            .csrf_matches(&session, full.csrf.expose())
            .await
            .unwrap()
    );
    assert!(!f.identity.csrf_matches(&session, "forged").await.unwrap());

    // The code cannot be used again, even for a new password step in the same 30 s.
    let again = f
        .identity
        .sign_in(f.sunrise.id, EMAIL, &secret(PASSWORD), "203.0.113.5")
        .await
        .unwrap();
    let replayed = f
        .identity
        .verify_totp(f.sunrise.id, again.token.expose(), &code, "203.0.113.5")
        .await
        .unwrap_err();
    assert!(
        matches!(replayed, SignInError::Code(TotpError::Replayed)),
        "{replayed:?}"
    );

    // Every step is audited, and no secret is in any event.
    let events = f.audit.events(f.sunrise.id, 1, 100).await.unwrap();
    let actions: Vec<(Action, Outcome)> = events
        .iter()
        .map(|e| (e.what.action, e.what.outcome))
        .collect();
    assert!(actions.contains(&(Action::Mfa, Outcome::Success)));
    assert!(actions.contains(&(Action::SignIn, Outcome::Success)));
    assert!(actions.contains(&(Action::SignInFailed, Outcome::Denied)));
    let trail = serde_json::to_string(&events).unwrap();
    for secret_text in [
        PASSWORD,
        &code,
        full.token.expose(),
        full.csrf.expose(),
        pending.token.expose(),
        "maria",
    ] {
        assert!(
            !trail.contains(secret_text),
            "{secret_text} is in the audit trail"
        );
    }
    assert!(f.verify_chain().await);
}

impl Fixture {
    async fn verify_chain(&self) -> bool {
        let dir = tempfile::tempdir().unwrap();
        let archive = portico_infra::audit::local::LocalArchive::new(dir.path().join("a")).unwrap();
        let checkpointer = portico_platform::audit::checkpoint::Checkpointer::new(
            self.audit.clone(),
            self.platform.keys.clone(),
            Arc::new(archive),
            None,
        );
        portico_platform::audit::verify::Verifier::new(checkpointer)
            .verify(self.sunrise.id)
            .await
            .unwrap()
            .ok()
    }
}

#[tokio::test]
async fn an_unknown_address_and_a_wrong_password_get_the_same_answer() {
    let f = fixture().await;
    f.patient_account(f.sunrise.id, EMAIL).await;

    let wrong = f.wrong_password(EMAIL, "203.0.113.5").await;
    let unknown = f.wrong_password("nobody@example.org", "203.0.113.6").await;

    assert_eq!(wrong.to_string(), unknown.to_string());
    assert!(matches!(wrong, SignInError::Invalid));
    assert!(matches!(unknown, SignInError::Invalid));
    let events = f.audit.events(f.sunrise.id, 1, 100).await.unwrap();
    let failed: Vec<ActorKind> = events
        .iter()
        .filter(|e| e.what.action == Action::SignInFailed)
        .map(|e| e.what.actor.kind)
        .collect();
    assert_eq!(failed, vec![ActorKind::Patient, ActorKind::Anonymous]);
}

#[tokio::test]
async fn a_session_ends_after_fifteen_idle_minutes_or_twelve_hours_and_only_works_at_its_clinic() {
    let f = fixture().await;
    let created = f.patient_account(f.sunrise.id, EMAIL).await;
    let token = f.sign_in(&created).await;

    f.platform.clock.advance(Duration::minutes(14));
    assert!(
        f.identity
            .principal(f.sunrise.id, token.expose())
            .await
            .is_ok()
    );
    f.platform.clock.advance(Duration::minutes(14));
    assert!(
        f.identity
            .principal(f.sunrise.id, token.expose())
            .await
            .is_ok(),
        "used 14 minutes ago"
    );
    f.platform.clock.advance(Duration::minutes(15));
    assert!(matches!(
        f.identity.principal(f.sunrise.id, token.expose()).await,
        Err(SessionError::Expired)
    ));

    // Kept busy, it still ends at twelve hours.
    f.platform.clock.advance(Duration::seconds(31));
    let token = f.sign_in(&created).await;
    for _ in 0..71 {
        f.platform.clock.advance(Duration::minutes(10));
        assert!(
            f.identity
                .principal(f.sunrise.id, token.expose())
                .await
                .is_ok()
        );
    }
    f.platform.clock.advance(Duration::minutes(10));
    assert!(matches!(
        f.identity.principal(f.sunrise.id, token.expose()).await,
        Err(SessionError::Expired)
    ));

    // Another clinic's host does not know the session.
    f.platform.clock.advance(Duration::seconds(31));
    let token = f.sign_in(&created).await;
    let harbor = f.platform.tenant("harbor").await;
    assert!(matches!(
        f.identity.principal(harbor.id, token.expose()).await,
        Err(SessionError::Unknown)
    ));
}

#[tokio::test]
async fn signing_out_ends_the_session_and_everywhere_ends_them_all() {
    let f = fixture().await;
    let created = f.patient_account(f.sunrise.id, EMAIL).await;
    let laptop = f.sign_in(&created).await;
    f.platform.clock.advance(Duration::seconds(31));
    let phone = f.sign_in(&created).await;

    let (_, session) = f
        .identity
        .principal(f.sunrise.id, laptop.expose())
        .await
        .unwrap();
    f.identity.sign_out(&session, false).await.unwrap();
    assert!(
        f.identity
            .principal(f.sunrise.id, laptop.expose())
            .await
            .is_err()
    );
    assert!(
        f.identity
            .principal(f.sunrise.id, phone.expose())
            .await
            .is_ok()
    );

    f.platform.clock.advance(Duration::seconds(31));
    let tablet = f.sign_in(&created).await;
    let (_, session) = f
        .identity
        .principal(f.sunrise.id, tablet.expose())
        .await
        .unwrap();
    f.identity.sign_out(&session, true).await.unwrap();
    for token in [&phone, &tablet] {
        assert!(
            f.identity
                .principal(f.sunrise.id, token.expose())
                .await
                .is_err()
        );
    }
}

#[tokio::test]
async fn repeated_failures_slow_down_then_lock_known_and_unknown_addresses_alike() {
    let f = fixture().await;
    f.patient_account(f.sunrise.id, EMAIL).await;
    for _ in 0..3 {
        assert!(matches!(
            f.wrong_password(EMAIL, "198.51.100.1").await,
            SignInError::Invalid
        ));
    }
    // The fourth failure starts a delay; trying during it is refused without a check.
    assert!(matches!(
        f.wrong_password(EMAIL, "198.51.100.1").await,
        SignInError::Invalid
    ));
    assert!(matches!(
        f.identity
            .sign_in(f.sunrise.id, EMAIL, &secret(PASSWORD), "198.51.100.2")
            .await,
        Err(SignInError::TryLater { .. })
    ));
    f.platform.clock.advance(Duration::seconds(2));
    assert!(
        f.identity
            .sign_in(f.sunrise.id, EMAIL, &secret(PASSWORD), "198.51.100.2")
            .await
            .is_ok()
    );

    // A hundred failures in a row lock the address, existing or not.
    for email in [EMAIL, "nobody@example.org"] {
        for _ in 0..LOCK_AFTER {
            f.platform.clock.advance(Duration::minutes(16));
            f.wrong_password(email, &format!("192.0.2.{}", email.len()))
                .await;
        }
        f.platform.clock.advance(Duration::minutes(16));
        let err = f
            .identity
            .sign_in(f.sunrise.id, email, &secret(PASSWORD), "192.0.2.200")
            .await
            .unwrap_err();
        assert!(matches!(err, SignInError::Locked), "{email}: {err:?}");
    }
}

#[tokio::test]
async fn one_address_trying_many_accounts_is_slowed_down() {
    let f = fixture().await;
    for i in 0..10 {
        f.wrong_password(&format!("person{i}@example.org"), "198.51.100.9")
            .await;
    }
    let err = f
        .wrong_password("person10@example.org", "198.51.100.9")
        .await;
    assert!(matches!(err, SignInError::Invalid), "{err:?}");
    let err = f
        .wrong_password("person11@example.org", "198.51.100.9")
        .await;
    assert!(matches!(err, SignInError::TryLater { .. }), "{err:?}");
    // Another address is not held up.
    let err = f
        .wrong_password("person11@example.org", "198.51.100.10")
        .await;
    assert!(matches!(err, SignInError::Invalid), "{err:?}");
}

#[tokio::test]
async fn accounts_are_refused_for_weak_passwords_bad_addresses_and_duplicates() {
    let f = fixture().await;
    f.patient_account(f.sunrise.id, EMAIL).await;
    let attempt =
        |email: &'static str, password: &'static str, role: Role, patient: Option<PatientId>| {
            let identity = f.identity.clone();
            let tenant = f.sunrise.id;
            async move {
                identity
                    .create_account(
                        &Principal::Operator,
                        tenant,
                        NewAccount {
                            email,
                            password: &secret(password),
                            role,
                            patient,
                            clinic_name: "Sunrise Family Clinic",
                            clinic_slug: "sunrise",
                        },
                    )
                    .await
            }
        };

    assert!(matches!(
        attempt("a@example.org", "password1", Role::Patient, Some(patient())).await,
        Err(AccountError::Password(PasswordProblem::Common))
    ));
    assert!(matches!(
        attempt(
            "a@example.org",
            "Sunrise2026",
            Role::Patient,
            Some(patient())
        )
        .await,
        Err(AccountError::Password(PasswordProblem::Context(_)))
    ));
    assert!(matches!(
        attempt("not-an-address", PASSWORD, Role::Patient, Some(patient())).await,
        Err(AccountError::Email)
    ));
    assert!(matches!(
        attempt(
            "MARIA.LOPEZ@example.org",
            PASSWORD,
            Role::Patient,
            Some(patient())
        )
        .await,
        Err(AccountError::Taken)
    ));
    assert!(matches!(
        attempt("b@example.org", PASSWORD, Role::Nurse, Some(patient())).await,
        Err(AccountError::Patient)
    ));
    assert!(
        attempt("nurse@example.org", PASSWORD, Role::Nurse, None)
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn a_recovery_code_stands_in_for_the_authenticator_once() {
    let f = fixture().await;
    let created = f.patient_account(f.sunrise.id, EMAIL).await;
    assert_eq!(created.recovery_codes.len(), 10);
    let code = created.recovery_codes[3].expose().clone();
    let pending = |identity: LocalIdentity, tenant| async move {
        identity
            .sign_in(tenant, EMAIL, &secret(PASSWORD), "203.0.113.5")
            .await
            .unwrap()
    };

    // Typed in lower case without dashes, it works.
    let first = pending(f.identity.clone(), f.sunrise.id).await;
    let typed = code.replace('-', "").to_lowercase();
    let full = f
        .identity
        .use_recovery_code(f.sunrise.id, first.token.expose(), &typed, "203.0.113.5")
        .await
        .unwrap();
    assert_eq!(full.session.stage, Stage::Full);

    // Used up; a made-up code and a malformed one are refused alike.
    for attempt in [code.as_str(), "ABCD-EFGH-JKMN-PQRS-TVWX", "not a code"] {
        let again = pending(f.identity.clone(), f.sunrise.id).await;
        let err = f
            .identity
            .use_recovery_code(f.sunrise.id, again.token.expose(), attempt, "203.0.113.5")
            .await
            .unwrap_err();
        assert!(
            matches!(err, SignInError::RecoveryCode),
            "{attempt}: {err:?}"
        );
    }
    // Another unused code still works.
    let second = pending(f.identity.clone(), f.sunrise.id).await;
    let other = created.recovery_codes[7].expose().clone();
    assert!(
        f.identity
            .use_recovery_code(f.sunrise.id, second.token.expose(), &other, "203.0.113.5")
            .await
            .is_ok()
    );

    let trail =
        serde_json::to_string(&f.audit.events(f.sunrise.id, 1, 100).await.unwrap()).unwrap();
    for code in &created.recovery_codes {
        let secret_part = &code.expose()[5..];
        assert!(!trail.contains(secret_part));
    }
}
