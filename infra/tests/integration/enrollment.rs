//! Enrollment with identity proofing and password reset against a real database: the
//! clinic's registry, activation codes (single use, 30 days, the birth date), self-
//! enrollment with a code sent to the contact on file through the outbox, and reset with
//! the code and the second factor — every refusal non-revealing and audited, no code in
//! the audit trail.

use std::sync::Arc;

use chrono::{Duration, NaiveDate};
use portico_infra::notify::outbox::Outbox;
use portico_platform::audit::{Action, Actor, AuditTrail, Outcome};
use portico_platform::clock::Clock;
use portico_platform::crypto::phi::Phi;
use portico_platform::identity::enrollment::{EnrollmentError, MAX_FAILURES};
use portico_platform::identity::local::{LocalIdentity, NewAccount, SignInError};
use portico_platform::identity::registry::{Demographics, LocalRegistry, NewPatient};
use portico_platform::identity::reset::{PasswordReset, ResetError, SecondFactor};
use portico_platform::identity::role::Role;
use portico_platform::ids::{AccountId, PatientId};
use portico_platform::principal::Principal;
use portico_platform::secret::Secret;
use portico_tenants::Tenant;

use crate::fixture::Platform;

const PASSWORD: &str = "juniper violin 1987";
const NEW_PASSWORD: &str = "copper lantern meadow";
const CLIENT: &str = "198.51.100.20";

struct Fixture {
    platform: Platform,
    identity: LocalIdentity,
    registry: LocalRegistry,
    outbox: Outbox,
    audit: AuditTrail,
    sunrise: Tenant,
}

async fn fixture() -> Fixture {
    let platform = Platform::new(Default::default()).await;
    let sunrise = platform.tenant("sunrise").await;
    Fixture {
        identity: platform.identity(),
        registry: platform.registry(),
        outbox: platform.outbox(),
        audit: AuditTrail::new(platform.db.clone(), Arc::new(platform.clock.clone())),
        platform,
        sunrise,
    }
}

fn born() -> NaiveDate {
    NaiveDate::from_ymd_opt(1990, 7, 14).unwrap()
}

fn lena() -> Demographics {
    Demographics {
        given: Phi::new("Lena"),
        family: Phi::new("Okafor"),
        birth_date: born(),
        postal_code: Phi::new("97214"),
    }
}

fn secret(text: &str) -> Secret<String> {
    Secret::new(text.to_owned())
}

impl Fixture {
    async fn register(&self, who: Demographics) -> PatientId {
        self.registry
            .add(
                Actor::operator(),
                self.sunrise.id,
                &NewPatient {
                    demographics: who,
                    phone: Some("(503) 555-0187".to_owned()),
                    email: Some("lena@example.org".to_owned()),
                },
            )
            .await
            .unwrap()
    }

    fn account<'a>(&'a self, email: &'a str, password: &'a Secret<String>) -> NewAccount<'a> {
        NewAccount {
            email,
            password,
            role: Role::Patient,
            patient: None,
            clinic_name: &self.sunrise.display_name,
            clinic_slug: self.sunrise.slug.as_str(),
        }
    }

    async fn code_for(&self, patient: PatientId) -> String {
        self.identity
            .issue_activation_code(&Principal::Operator, self.sunrise.id, patient)
            .await
            .unwrap()
            .code
            .expose()
            .clone()
    }

    /// Enrolls Lena with an activation code and confirms her authenticator; returns the
    /// account and its recovery codes.
    async fn enroll(
        &self,
        code: &str,
        birth: NaiveDate,
    ) -> Result<(AccountId, Vec<String>), EnrollmentError> {
        let password = secret(PASSWORD);
        let enrolled = self
            .identity
            .enroll_with_code(
                self.sunrise.id,
                code,
                birth,
                self.account("lena@example.org", &password),
                CLIENT,
            )
            .await?;
        // The pending session completes with the new authenticator's first code.
        let totp = enrolled.created.totp.code_at(self.platform.clock.now());
        self.identity
            .verify_totp(
                self.sunrise.id,
                enrolled.session.token.expose(),
                &totp,
                CLIENT,
            )
            .await
            .unwrap();
        let codes = enrolled
            .created
            .recovery_codes
            .iter()
            .map(|code| code.expose().clone())
            .collect();
        Ok((enrolled.created.account, codes))
    }

    /// The newest message in the outbox and its 6-digit code.
    async fn last_code(&self) -> (String, String) {
        let kept = self.outbox.recent(self.sunrise.id, 1).await.unwrap();
        let message = kept.first().expect("a message in the outbox");
        let code = message
            .text
            .expose()
            .split_whitespace()
            .find(|word| {
                word.trim_end_matches('.').len() == 6 && word.starts_with(char::is_numeric)
            })
            .unwrap()
            .trim_end_matches('.')
            .to_owned();
        (message.to.expose().clone(), code)
    }
}

#[tokio::test]
async fn an_activation_code_links_its_patient_once_given_the_right_birth_date() {
    let f = fixture().await;
    let patient = f.register(lena()).await;
    let code = f.code_for(patient).await;

    let wrong = f
        .enroll(&code, born() + Duration::days(1))
        .await
        .unwrap_err();
    assert!(matches!(wrong, EnrollmentError::NotVerified), "{wrong:?}");

    let (account, _) = f.enroll(&code, born()).await.unwrap();
    let pending = f
        .identity
        .sign_in(f.sunrise.id, "lena@example.org", &secret(PASSWORD), CLIENT)
        .await
        .unwrap();
    assert_eq!(pending.session.account, account);

    // Used once: a second use is refused like any wrong code.
    let again = f.enroll(&code, born()).await.unwrap_err();
    assert!(matches!(again, EnrollmentError::NotVerified), "{again:?}");

    // Each refusal is audited against the patient, and no code is in the trail.
    let events = f.audit.events(f.sunrise.id, 1, 200).await.unwrap();
    let denied = events
        .iter()
        .filter(|e| {
            e.what.action == Action::Create
                && e.what.outcome == Outcome::Denied
                && e.what.patient == Some(patient)
        })
        .count();
    assert_eq!(denied, 2);
    let trail = serde_json::to_string(&events).unwrap();
    assert!(
        !trail.contains(&code),
        "the activation code is in the trail"
    );
    assert!(
        !trail.contains(&code[..4]),
        "a part of the code is in the trail"
    );
}

#[tokio::test]
async fn a_patient_with_an_account_gets_no_new_activation_code() {
    let f = fixture().await;
    let patient = f.register(lena()).await;
    let code = f.code_for(patient).await;
    f.enroll(&code, born()).await.unwrap();

    let refused = f
        .identity
        .issue_activation_code(&Principal::Operator, f.sunrise.id, patient)
        .await
        .unwrap_err();
    assert!(
        matches!(refused, EnrollmentError::AlreadyEnrolled),
        "{refused:?}"
    );
}

#[tokio::test]
async fn five_wrong_birth_dates_use_the_code_up_and_thirty_days_expire_it() {
    let f = fixture().await;
    let patient = f.register(lena()).await;
    let code = f.code_for(patient).await;
    for _ in 0..MAX_FAILURES {
        let wrong = f.enroll(&code, born() - Duration::days(365)).await;
        assert!(matches!(wrong, Err(EnrollmentError::NotVerified)));
        // Past the client's grace the delays would start; move on past them.
        f.platform.clock.advance(Duration::minutes(20));
    }
    let used_up = f.enroll(&code, born()).await.unwrap_err();
    assert!(
        matches!(used_up, EnrollmentError::NotVerified),
        "{used_up:?}"
    );

    let other = f
        .register(Demographics {
            given: Phi::new("Theo"),
            ..lena()
        })
        .await;
    let late = f.code_for(other).await;
    f.platform
        .clock
        .advance(Duration::days(30) + Duration::minutes(1));
    let expired = f.enroll(&late, born()).await.unwrap_err();
    assert!(
        matches!(expired, EnrollmentError::NotVerified),
        "{expired:?}"
    );
}

#[tokio::test]
async fn staff_at_the_clinic_issue_activation_codes_and_patients_and_others_may_not() {
    let f = fixture().await;
    let patient = f.register(lena()).await;
    let harbor = f.platform.tenant("harbor").await;
    let staff = |tenant, role| Principal::Staff {
        tenant,
        account: AccountId::from_uuid(uuid::Uuid::from_bytes([7; 16])),
        role,
        session: "ses-test".to_owned(),
    };

    for allowed in [
        Role::FrontDesk,
        Role::Nurse,
        Role::Provider,
        Role::TenantAdmin,
    ] {
        let issued = f
            .identity
            .issue_activation_code(&staff(f.sunrise.id, allowed), f.sunrise.id, patient)
            .await;
        assert!(issued.is_ok(), "{allowed}: {issued:?}");
    }
    let as_patient = Principal::Patient {
        tenant: f.sunrise.id,
        account: AccountId::from_uuid(uuid::Uuid::from_bytes([8; 16])),
        patient,
        session: "ses-test".to_owned(),
    };
    for refused in [
        staff(f.sunrise.id, Role::Billing),
        staff(harbor.id, Role::TenantAdmin),
        as_patient,
        Principal::System,
    ] {
        let result = f
            .identity
            .issue_activation_code(&refused, f.sunrise.id, patient)
            .await;
        assert!(
            matches!(result, Err(EnrollmentError::Forbidden)),
            "{refused:?}: {result:?}"
        );
    }
    // Another clinic's patient is not found, even by that clinic's own operator call.
    let elsewhere = f
        .identity
        .issue_activation_code(&Principal::Operator, harbor.id, patient)
        .await;
    assert!(
        matches!(elsewhere, Err(EnrollmentError::NotFound)),
        "{elsewhere:?}"
    );
}

#[tokio::test]
async fn self_enrollment_sends_a_code_to_the_phone_on_file_only_for_a_single_match() {
    let f = fixture().await;
    let patient = f.register(lena()).await;
    let practice = f.sunrise.display_name.clone();

    // No match: a ticket all the same, and nothing sent.
    let stranger = Demographics {
        family: Phi::new("Nobody"),
        ..lena()
    };
    let decoy = f
        .identity
        .start_self_enrollment(f.sunrise.id, &stranger, &practice, CLIENT)
        .await
        .unwrap();
    assert!(f.outbox.recent(f.sunrise.id, 5).await.unwrap().is_empty());

    // A match, typed differently: the code goes to the number on file, not anything typed.
    let typed = Demographics {
        given: Phi::new(" lena "),
        family: Phi::new("OKAFOR"),
        ..lena()
    };
    let ticket = f
        .identity
        .start_self_enrollment(f.sunrise.id, &typed, &practice, CLIENT)
        .await
        .unwrap();
    let (to, code) = f.last_code().await;
    assert_eq!(to, "+15035550187");
    let kept = f.outbox.recent(f.sunrise.id, 1).await.unwrap();
    let text = kept[0].text.expose();
    assert!(text.starts_with("Clinic sunrise: "), "{text}");
    for clinical in ["Lena", "Okafor", "1990"] {
        assert!(!text.contains(clinical), "{clinical} is in the SMS");
    }

    let password = secret(PASSWORD);
    let complete = |ticket: String, code: String| {
        let password = &password;
        let f = &f;
        async move {
            f.identity
                .complete_self_enrollment(
                    f.sunrise.id,
                    &ticket,
                    &code,
                    f.account("lena.o@example.org", password),
                    CLIENT,
                )
                .await
        }
    };
    // The decoy opens with no code, a wrong code does not open the real one.
    let refused = complete(decoy.expose().clone(), code.clone())
        .await
        .unwrap_err();
    assert!(
        matches!(refused, EnrollmentError::NotVerified),
        "{refused:?}"
    );
    let wrong = if code == "000000" { "000001" } else { "000000" };
    let refused = complete(ticket.expose().clone(), wrong.to_owned())
        .await
        .unwrap_err();
    assert!(
        matches!(refused, EnrollmentError::NotVerified),
        "{refused:?}"
    );

    let enrolled = complete(ticket.expose().clone(), code.clone())
        .await
        .unwrap();
    let totp = enrolled.created.totp.code_at(f.platform.clock.now());
    let full = f
        .identity
        .verify_totp(f.sunrise.id, enrolled.session.token.expose(), &totp, CLIENT)
        .await
        .unwrap();
    let (principal, _) = f
        .identity
        .principal(f.sunrise.id, full.token.expose())
        .await
        .unwrap();
    assert!(
        matches!(principal, Principal::Patient { patient: linked, .. } if linked == patient),
        "{principal:?}"
    );

    // The ticket is spent.
    let reused = complete(ticket.expose().clone(), code.clone())
        .await
        .unwrap_err();
    assert!(matches!(reused, EnrollmentError::NotVerified), "{reused:?}");
    let trail =
        serde_json::to_string(&f.audit.events(f.sunrise.id, 1, 200).await.unwrap()).unwrap();
    assert!(!trail.contains(&code));
    assert!(!trail.contains(ticket.expose()));
}

#[tokio::test]
async fn a_self_enrollment_code_expires_after_ten_minutes() {
    let f = fixture().await;
    f.register(lena()).await;
    let ticket = f
        .identity
        .start_self_enrollment(f.sunrise.id, &lena(), "Sunrise", CLIENT)
        .await
        .unwrap();
    let (_, code) = f.last_code().await;
    f.platform.clock.advance(Duration::minutes(11));
    let password = secret(PASSWORD);
    let late = f
        .identity
        .complete_self_enrollment(
            f.sunrise.id,
            ticket.expose(),
            &code,
            f.account("lena@example.org", &password),
            CLIENT,
        )
        .await
        .unwrap_err();
    assert!(matches!(late, EnrollmentError::NotVerified), "{late:?}");
}

#[tokio::test]
async fn a_password_reset_needs_the_code_and_the_second_factor_and_ends_every_session() {
    let f = fixture().await;
    let patient = f.register(lena()).await;
    let code = f.code_for(patient).await;
    let (_, recovery_codes) = f.enroll(&code, born()).await.unwrap();
    // A session signed in before the reset.
    let before = f
        .identity
        .sign_in(f.sunrise.id, "lena@example.org", &secret(PASSWORD), CLIENT)
        .await
        .unwrap();

    // An unknown address gets a ticket too, and nothing is sent.
    let sent_before = f.outbox.recent(f.sunrise.id, 50).await.unwrap().len();
    f.identity
        .request_password_reset(f.sunrise.id, "nobody@example.org", "Sunrise", CLIENT)
        .await
        .unwrap();
    assert_eq!(
        f.outbox.recent(f.sunrise.id, 50).await.unwrap().len(),
        sent_before
    );

    let ticket = f
        .identity
        .request_password_reset(f.sunrise.id, "LENA@example.org", "Sunrise", CLIENT)
        .await
        .unwrap();
    let (to, reset_code) = f.last_code().await;
    assert_eq!(to, "+15035550187", "the code goes to the phone on file");
    let clinic = ("Clinic sunrise", "sunrise");
    let reset = |second: SecondFactor<'static>, code: String| {
        let f = &f;
        let ticket = ticket.expose().clone();
        async move {
            let password = secret(NEW_PASSWORD);
            let reset = PasswordReset {
                ticket: &ticket,
                code: &code,
                password: &password,
                second,
            };
            f.identity
                .reset_password(f.sunrise.id, &reset, clinic, CLIENT)
                .await
        }
    };

    // Without a second factor: the clinic must help.
    let assisted = reset(SecondFactor::Neither, reset_code.clone())
        .await
        .unwrap_err();
    assert!(
        matches!(assisted, ResetError::AssistedRecovery),
        "{assisted:?}"
    );
    // A wrong authenticator code: refused.
    let wrong = reset(SecondFactor::Totp("000000"), reset_code.clone())
        .await
        .unwrap_err();
    assert!(matches!(wrong, ResetError::NotVerified), "{wrong:?}");
    // A recovery code that is not one: refused.
    let wrong = reset(
        SecondFactor::RecoveryCode("0000-0000-0000-0000-0000"),
        reset_code.clone(),
    )
    .await
    .unwrap_err();
    assert!(matches!(wrong, ResetError::NotVerified), "{wrong:?}");
    // A weak new password: refused, nothing spent.
    let weak = f
        .identity
        .reset_password(
            f.sunrise.id,
            &PasswordReset {
                ticket: ticket.expose(),
                code: &reset_code,
                password: &secret("password"),
                second: SecondFactor::Totp("123456"),
            },
            clinic,
            CLIENT,
        )
        .await
        .unwrap_err();
    assert!(matches!(weak, ResetError::Password(_)), "{weak:?}");

    // The session from before still stands, until the reset succeeds.
    assert!(
        f.identity
            .resolve(f.sunrise.id, before.token.expose())
            .await
            .is_ok()
    );
    let leaked: &'static str = Box::leak(recovery_codes[0].clone().into_boxed_str());
    reset(SecondFactor::RecoveryCode(leaked), reset_code.clone())
        .await
        .unwrap();
    assert!(
        f.identity
            .resolve(f.sunrise.id, before.token.expose())
            .await
            .is_err()
    );

    // The old password is gone, the new one works, the ticket is spent.
    let old = f
        .identity
        .sign_in(f.sunrise.id, "lena@example.org", &secret(PASSWORD), CLIENT)
        .await
        .unwrap_err();
    assert!(matches!(old, SignInError::Invalid), "{old:?}");
    f.identity
        .sign_in(
            f.sunrise.id,
            "lena@example.org",
            &secret(NEW_PASSWORD),
            CLIENT,
        )
        .await
        .unwrap();
    let spent = reset(SecondFactor::Totp("123456"), reset_code.clone())
        .await
        .unwrap_err();
    assert!(matches!(spent, ResetError::NotVerified), "{spent:?}");

    let events = f.audit.events(f.sunrise.id, 1, 300).await.unwrap();
    assert!(events.iter().any(|e| e.what.action == Action::Update
        && e.what.outcome == Outcome::Success
        && e.what.patient == Some(patient)));
    let trail = serde_json::to_string(&events).unwrap();
    for secret_text in [reset_code.as_str(), ticket.expose(), NEW_PASSWORD, leaked] {
        assert!(
            !trail.contains(secret_text),
            "{secret_text} is in the trail"
        );
    }
}
