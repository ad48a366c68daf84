//! Passkeys against a real database with a software authenticator (webauthn-authenticator-rs
//! `SoftPasskey`, which does what a browser and a phone do): registered while signed in,
//! then used as the second step of sign-in; refused from another origin, replayed, late,
//! for another account or after removal.

use chrono::Duration;
use portico_platform::audit::AuditTrail;
use portico_platform::clock::Clock;
use portico_platform::identity::local::{LocalIdentity, NewAccount, SignInError};
use portico_platform::identity::passkey::{PasskeyError, RelyingParty};
use portico_platform::identity::role::Role;
use portico_platform::identity::sessions::{Issued, Stage};
use portico_platform::principal::Principal;
use portico_platform::secret::Secret;
use portico_tenants::Tenant;
use webauthn_authenticator_rs::prelude::{
    CreationChallengeResponse, RequestChallengeResponse, Url, WebauthnAuthenticator,
};
use webauthn_authenticator_rs::softpasskey::SoftPasskey;

use crate::fixture::Platform;

const PASSWORD: &str = "walnut compass 1964";
const CLIENT: &str = "198.51.100.40";
const HOST: &str = "sunrise.portico.example";

struct Fixture {
    platform: Platform,
    identity: LocalIdentity,
    sunrise: Tenant,
    rp: RelyingParty,
}

async fn fixture() -> Fixture {
    let platform = Platform::new(Default::default()).await;
    let sunrise = platform.tenant("sunrise").await;
    Fixture {
        identity: platform.identity(),
        rp: RelyingParty::for_host(HOST, &sunrise.display_name, false).unwrap(),
        platform,
        sunrise,
    }
}

fn origin() -> Url {
    Url::parse(&format!("https://{HOST}")).unwrap()
}

impl Fixture {
    /// A staff account, signed in fully with its authenticator code; its principal and
    /// session.
    async fn signed_in(&self, email: &str) -> (Principal, Issued) {
        let password = Secret::new(PASSWORD.to_owned());
        let created = self
            .identity
            .create_account(
                &Principal::Operator,
                self.sunrise.id,
                NewAccount {
                    email,
                    password: &password,
                    role: Role::Provider,
                    patient: None,
                    clinic_name: &self.sunrise.display_name,
                    clinic_slug: self.sunrise.slug.as_str(),
                },
            )
            .await
            .unwrap();
        let pending = self.password_step(email).await;
        let code = created.totp.code_at(self.platform.clock.now());
        let full = self
            .identity
            .verify_totp(self.sunrise.id, pending.token.expose(), &code, CLIENT)
            .await
            .unwrap();
        let (principal, _) = self
            .identity
            .principal(self.sunrise.id, full.token.expose())
            .await
            .unwrap();
        (principal, full)
    }

    async fn password_step(&self, email: &str) -> Issued {
        self.identity
            .sign_in(
                self.sunrise.id,
                email,
                &Secret::new(PASSWORD.to_owned()),
                CLIENT,
            )
            .await
            .unwrap()
    }

    async fn register(
        &self,
        principal: &Principal,
        session: &Issued,
        authenticator: &mut SoftPasskey,
    ) -> Result<uuid::Uuid, PasskeyError> {
        let options = self
            .identity
            .start_passkey_registration(principal, &session.session, &self.rp)
            .await?;
        let options: CreationChallengeResponse = serde_json::from_str(&options).unwrap();
        let credential = authenticator.do_registration(origin(), options).unwrap();
        let info = self
            .identity
            .finish_passkey_registration(
                principal,
                &session.session,
                &self.rp,
                &serde_json::to_string(&credential).unwrap(),
                "My phone",
            )
            .await?;
        Ok(info.id)
    }

    /// The browser's answer to a passkey sign-in for the waiting session, from `at`.
    async fn answer(&self, pending: &Issued, authenticator: &mut SoftPasskey, at: Url) -> String {
        let options = self
            .identity
            .start_passkey_sign_in(self.sunrise.id, pending.token.expose(), &self.rp)
            .await
            .unwrap();
        let options: RequestChallengeResponse = serde_json::from_str(&options).unwrap();
        let credential = authenticator.do_authentication(at, options).unwrap();
        serde_json::to_string(&credential).unwrap()
    }

    async fn finish(&self, pending: &Issued, answer: &str) -> Result<Issued, SignInError> {
        self.identity
            .finish_passkey_sign_in(
                self.sunrise.id,
                pending.token.expose(),
                &self.rp,
                answer,
                CLIENT,
            )
            .await
    }
}

#[tokio::test]
async fn a_registered_passkey_is_the_second_step_of_sign_in() {
    let f = fixture().await;
    let (principal, session) = f.signed_in("ines@example.org").await;
    let mut phone = SoftPasskey::new(true);
    let id = f.register(&principal, &session, &mut phone).await.unwrap();
    let listed = f.identity.passkeys(&principal).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, id);
    assert_eq!(listed[0].name, "My phone");

    let pending = f.password_step("ines@example.org").await;
    let answer = f.answer(&pending, &mut phone, origin()).await;
    let full = f.finish(&pending, &answer).await.unwrap();
    assert_eq!(full.session.stage, Stage::Full);
    assert!(
        f.identity.passkeys(&principal).await.unwrap()[0]
            .last_used_at
            .is_some()
    );

    // The same answer again: the challenge was used up with the first.
    let pending = f.password_step("ines@example.org").await;
    assert!(matches!(
        f.finish(&pending, &answer).await,
        Err(SignInError::PasskeyRefused)
    ));

    // The trail has the passkey's creation and the sign-in.
    let events = AuditTrail::new(
        f.platform.db.clone(),
        std::sync::Arc::new(f.platform.clock.clone()),
    )
    .events(f.sunrise.id, 1, 1000)
    .await
    .unwrap();
    assert!(
        events
            .iter()
            .any(|e| e.what.resource_type.as_str() == "Passkey")
    );
}

#[tokio::test]
async fn a_passkey_answer_from_another_origin_late_or_for_another_account_is_refused() {
    let f = fixture().await;
    let (ines, ines_session) = f.signed_in("ines@example.org").await;
    let (_, _) = f.signed_in("omar@example.org").await;
    let mut phone = SoftPasskey::new(true);
    f.register(&ines, &ines_session, &mut phone).await.unwrap();

    // A look-alike subdomain: the authenticator signs, Portico refuses the origin.
    let pending = f.password_step("ines@example.org").await;
    let phished = f
        .answer(
            &pending,
            &mut phone,
            Url::parse(&format!("https://login.{HOST}")).unwrap(),
        )
        .await;
    assert!(matches!(
        f.finish(&pending, &phished).await,
        Err(SignInError::PasskeyRefused)
    ));

    // Too late: the challenge lasts 5 minutes.
    let pending = f.password_step("ines@example.org").await;
    let answer = f.answer(&pending, &mut phone, origin()).await;
    f.platform.clock.advance(Duration::minutes(6));
    assert!(matches!(
        f.finish(&pending, &answer).await,
        Err(SignInError::PasskeyRefused)
    ));

    // Omar has no passkey; Ines's answer is no good for Omar's sign-in.
    let omar = f.password_step("omar@example.org").await;
    let refused = f
        .identity
        .start_passkey_sign_in(f.sunrise.id, omar.token.expose(), &f.rp)
        .await;
    assert!(matches!(refused, Err(SignInError::NoPasskey)));
    let pending = f.password_step("ines@example.org").await;
    let answer = f.answer(&pending, &mut phone, origin()).await;
    assert!(matches!(
        f.finish(&omar, &answer).await,
        Err(SignInError::PasskeyRefused)
    ));

    // Garbage is refused, not a failure inside Portico.
    assert!(matches!(
        f.finish(&pending, "{\"not\": \"a credential\"}").await,
        Err(SignInError::PasskeyRefused)
    ));
}

#[tokio::test]
async fn passkeys_are_managed_only_by_their_signed_in_owner() {
    let f = fixture().await;
    let (ines, session) = f.signed_in("ines@example.org").await;
    let (omar, _) = f.signed_in("omar@example.org").await;
    let mut phone = SoftPasskey::new(true);
    let id = f.register(&ines, &session, &mut phone).await.unwrap();

    // Another person's session cannot register for Ines, nor remove her passkey.
    let refused = f
        .identity
        .start_passkey_registration(&omar, &session.session, &f.rp)
        .await;
    assert!(matches!(refused, Err(PasskeyError::NotSignedIn)));
    assert!(!f.identity.remove_passkey(&omar, id).await.unwrap());
    // A waiting session (password only) cannot register either.
    let pending = f.password_step("ines@example.org").await;
    let refused = f
        .identity
        .start_passkey_registration(&ines, &pending.session, &f.rp)
        .await;
    assert!(matches!(refused, Err(PasskeyError::NotSignedIn)));
    // Finishing without a started registration.
    let refused = f
        .identity
        .finish_passkey_registration(&ines, &session.session, &f.rp, "{}", "x")
        .await;
    assert!(matches!(refused, Err(PasskeyError::Invalid(_))));

    assert!(f.identity.remove_passkey(&ines, id).await.unwrap());
    assert!(f.identity.passkeys(&ines).await.unwrap().is_empty());
    let refused = f
        .identity
        .start_passkey_sign_in(f.sunrise.id, pending.token.expose(), &f.rp)
        .await;
    assert!(matches!(refused, Err(SignInError::NoPasskey)));
}
