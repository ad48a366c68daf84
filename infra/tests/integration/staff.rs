//! Staff invitations and texted sign-in codes against a real database, on the injected
//! clock: who may invite, expiry, single use, the limits on texts — and the audit trail,
//! which records each step and never a code.

use std::sync::Arc;

use chrono::Duration;
use portico_infra::notify::outbox::Outbox;
use portico_platform::audit::{AuditTrail, Outcome};
use portico_platform::crypto::phi::Phi;
use portico_platform::identity::enrollment::EnrollmentError;
use portico_platform::identity::invitation::{INVITATION_DAYS, NewInvitation};
use portico_platform::identity::local::{AccountError, LocalIdentity, NewAccount, SignInError};
use portico_platform::identity::registry::{Demographics, NewPatient};
use portico_platform::identity::role::Role;
use portico_platform::identity::sms::SMS_CODE_MINUTES;
use portico_platform::ids::{AccountId, PatientId};
use portico_platform::principal::Principal;
use portico_platform::secret::Secret;
use portico_tenants::Tenant;

use crate::fixture::Platform;

const PASSWORD: &str = "saffron kettle 2031";
const CLIENT: &str = "198.51.100.30";

struct Fixture {
    platform: Platform,
    identity: LocalIdentity,
    outbox: Outbox,
    audit: AuditTrail,
    sunrise: Tenant,
    harbor: Tenant,
}

async fn fixture() -> Fixture {
    let platform = Platform::new(Default::default()).await;
    let sunrise = platform.tenant("sunrise").await;
    let harbor = platform.tenant("harbor").await;
    Fixture {
        identity: platform.identity(),
        outbox: platform.outbox(),
        audit: AuditTrail::new(platform.db.clone(), Arc::new(platform.clock.clone())),
        platform,
        sunrise,
        harbor,
    }
}

fn admin_of(tenant: &Tenant) -> Principal {
    Principal::Staff {
        tenant: tenant.id,
        account: AccountId::from_uuid(uuid::Uuid::from_u128(7)),
        role: Role::TenantAdmin,
        session: "ses-test".to_owned(),
    }
}

impl Fixture {
    async fn invite(
        &self,
        by: &Principal,
        email: &str,
        role: Role,
    ) -> Result<String, EnrollmentError> {
        self.identity
            .invite_staff(
                by,
                self.sunrise.id,
                NewInvitation {
                    email,
                    role,
                    practice: &self.sunrise.display_name,
                },
            )
            .await?;
        Ok(self.newest_code(24).await)
    }

    /// The code of the given length in the newest message.
    async fn newest_code(&self, len: usize) -> String {
        let kept = self.outbox.recent(self.sunrise.id, 1).await.unwrap();
        kept[0]
            .text
            .expose()
            .split_whitespace()
            .map(|word| word.trim_end_matches([';', '.']))
            .find(|word| word.len() == len)
            .unwrap()
            .to_owned()
    }

    async fn accept(&self, code: &str, email: &str) -> Result<AccountId, EnrollmentError> {
        let password = Secret::new(PASSWORD.to_owned());
        let enrolled = self
            .identity
            .accept_invitation(
                self.sunrise.id,
                code,
                NewAccount {
                    email,
                    password: &password,
                    role: Role::Patient,
                    patient: None,
                    clinic_name: &self.sunrise.display_name,
                    clinic_slug: self.sunrise.slug.as_str(),
                },
                CLIENT,
            )
            .await?;
        Ok(enrolled.created.account)
    }
}

#[tokio::test]
async fn only_a_clinic_admin_invites_and_only_to_staff_roles() {
    let f = fixture().await;
    let nurse = Principal::Staff {
        tenant: f.sunrise.id,
        account: AccountId::from_uuid(uuid::Uuid::from_u128(8)),
        role: Role::Nurse,
        session: "ses-test".to_owned(),
    };
    for by in [
        nurse,
        admin_of(&f.harbor),
        Principal::System,
        Principal::Anonymous {
            request: portico_platform::ids::RequestId::from_uuid(uuid::Uuid::nil()),
        },
    ] {
        let refused = f.invite(&by, "ops@example.org", Role::Nurse).await;
        assert!(
            matches!(refused, Err(EnrollmentError::Forbidden)),
            "{by:?}: {refused:?}"
        );
    }
    // An operator invites only a clinic's admin, never other staff.
    let refused = f
        .invite(&Principal::Operator, "ops@example.org", Role::Provider)
        .await;
    assert!(matches!(refused, Err(EnrollmentError::Forbidden)));
    let refused = f
        .invite(&admin_of(&f.sunrise), "pat@example.org", Role::Patient)
        .await;
    assert!(matches!(refused, Err(EnrollmentError::Invalid(_))));
    let refused = f
        .invite(&admin_of(&f.sunrise), "not an address", Role::Billing)
        .await;
    assert!(matches!(
        refused,
        Err(EnrollmentError::Account(AccountError::Email))
    ));
    assert!(f.outbox.recent(f.sunrise.id, 5).await.unwrap().is_empty());

    let code = f
        .invite(&admin_of(&f.sunrise), "billing@example.org", Role::Billing)
        .await
        .unwrap();
    let account = f.accept(&code, "Billing@Example.org ").await.unwrap();
    let issued = f
        .identity
        .sign_in(
            f.sunrise.id,
            "billing@example.org",
            &Secret::new(PASSWORD.to_owned()),
            CLIENT,
        )
        .await
        .unwrap();
    assert_eq!(issued.session.account, account);

    // The trail has the invitation and the account, and no code.
    let events = f.audit.events(f.sunrise.id, 1, 1000).await.unwrap();
    let types: Vec<_> = events
        .iter()
        .map(|e| e.what.resource_type.as_str())
        .collect();
    assert!(types.contains(&"Invitation"), "{types:?}");
    assert!(types.contains(&"Account"), "{types:?}");
    let dump = format!("{events:?}");
    assert!(!dump.contains(&code[5..]), "the code is in the trail");
}

#[tokio::test]
async fn an_invitation_expires_after_seven_days_and_works_once() {
    let f = fixture().await;
    let admin = admin_of(&f.sunrise);
    let late = f
        .invite(&admin, "late@example.org", Role::Nurse)
        .await
        .unwrap();
    let fresh = f
        .invite(&admin, "fresh@example.org", Role::Provider)
        .await
        .unwrap();
    f.platform
        .clock
        .advance(Duration::days(INVITATION_DAYS) + Duration::seconds(1));
    assert!(matches!(
        f.accept(&late, "late@example.org").await,
        Err(EnrollmentError::NotVerified)
    ));

    let fresh_again = f
        .invite(&admin, "fresh@example.org", Role::Provider)
        .await
        .unwrap();
    assert!(matches!(
        f.accept(&fresh, "fresh@example.org").await,
        Err(EnrollmentError::NotVerified)
    ));
    f.accept(&fresh_again, "fresh@example.org").await.unwrap();
    assert!(matches!(
        f.accept(&fresh_again, "fresh@example.org").await,
        Err(EnrollmentError::NotVerified)
    ));
    // Inviting an address that has an account is a conflict the admin is told about.
    assert!(matches!(
        f.invite(&admin, "fresh@example.org", Role::Nurse).await,
        Err(EnrollmentError::Account(AccountError::Taken))
    ));
    // Refusals are recorded as denied.
    let events = f.audit.events(f.sunrise.id, 1, 1000).await.unwrap();
    assert!(events.iter().any(|e| e.what.outcome == Outcome::Denied));
}

#[tokio::test]
async fn texted_codes_expire_and_are_limited() {
    let f = fixture().await;
    let patient: PatientId = f
        .platform
        .registry()
        .add(
            portico_platform::audit::Actor::operator(),
            f.sunrise.id,
            &NewPatient {
                demographics: Demographics {
                    given: Phi::new("Noor"),
                    family: Phi::new("Haddad"),
                    birth_date: chrono::NaiveDate::from_ymd_opt(1975, 1, 2).unwrap(),
                    postal_code: Phi::new("97210"),
                },
                phone: Some("503-555-0190".to_owned()),
                email: None,
            },
        )
        .await
        .unwrap();
    let password = Secret::new(PASSWORD.to_owned());
    f.identity
        .create_account(
            &Principal::Operator,
            f.sunrise.id,
            NewAccount {
                email: "noor@example.org",
                password: &password,
                role: Role::Patient,
                patient: Some(patient),
                clinic_name: &f.sunrise.display_name,
                clinic_slug: f.sunrise.slug.as_str(),
            },
        )
        .await
        .unwrap();
    let pending = f
        .identity
        .sign_in(f.sunrise.id, "noor@example.org", &password, CLIENT)
        .await
        .unwrap();
    let token = pending.token.expose().clone();
    let send = || f.identity.send_sms_code(f.sunrise.id, &token, "Sunrise");

    send().await.unwrap();
    let expired = f.newest_code(6).await;
    f.platform
        .clock
        .advance(Duration::minutes(SMS_CODE_MINUTES) + Duration::seconds(1));
    let refused = f
        .identity
        .verify_sms_code(f.sunrise.id, &token, &expired, CLIENT)
        .await;
    assert!(matches!(refused, Err(SignInError::SmsCode)), "{refused:?}");

    // Re-sent twice more at most for one waiting session; each new code replaces the last.
    // (The clock moves between sends so that the outbox orders them.)
    send().await.unwrap();
    let replaced = f.newest_code(6).await;
    f.platform.clock.advance(Duration::seconds(1));
    send().await.unwrap();
    let current = f.newest_code(6).await;
    assert!(matches!(send().await, Err(SignInError::TryLater { .. })));
    if replaced != current {
        let refused = f
            .identity
            .verify_sms_code(f.sunrise.id, &token, &replaced, CLIENT)
            .await;
        assert!(matches!(refused, Err(SignInError::SmsCode)));
    }
    let issued = f
        .identity
        .verify_sms_code(f.sunrise.id, &token, &current, CLIENT)
        .await
        .unwrap();
    assert_eq!(
        issued.session.stage,
        portico_platform::identity::sessions::Stage::Full
    );

    // The codes are not in the audit trail.
    let dump = format!("{:?}", f.audit.events(f.sunrise.id, 1, 1000).await.unwrap());
    for code in [&expired, &replaced, &current] {
        assert!(!dump.contains(code.as_str()));
    }
}
