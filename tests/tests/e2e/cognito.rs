//! Sign-in with Amazon Cognito as the identity provider, from the binary, against the AWS
//! emulator (moto, started by ./tests/run with TOTP checking on): a clinic's user pool made
//! with the clinic, an account registered there with its authenticator, the password and
//! the code checked by Cognito through Portico's GraphQL, an invited admin enrolled the
//! same way, and sign-out everywhere.

use portico_platform::clock::{Clock, SystemClock};
use portico_platform::identity::totp::TotpSecret;
use portico_tests::{TestApp, moto};
use serde_json::Value;

use crate::identity::{create_account, post, token};

const PASSWORD: &str = "tidal beacon orchard 73";

async fn app(slug: &str) -> TestApp {
    TestApp::builder()
        // `account create` and the outbox are for development mode.
        .env("PORTICO_MODE", "development")
        .env("PORTICO_IDENTITY__PROVIDER", "cognito")
        .env("PORTICO_IDENTITY__COGNITO__SMS_ROLE_ARN", moto::SMS_ROLE)
        .envs(moto::sdk_env(&moto::shared_url()))
        .tenant(slug, "Cognito Clinic")
        .start()
        .await
}

/// The current code, waiting for the next step near the end of this one: the emulator
/// takes only the current step.
async fn code(secret: &TotpSecret) -> String {
    if SystemClock.now().timestamp().rem_euclid(30) >= 26 {
        tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    }
    secret.code_at(SystemClock.now())
}

fn error_code(answer: &Value) -> &str {
    answer["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no error in {answer}"))
}

/// The pool names the emulator holds.
async fn pools() -> String {
    reqwest::Client::new()
        .post(moto::shared_url())
        .header(
            "x-amz-target",
            "AWSCognitoIdentityProviderService.ListUserPools",
        )
        .header("content-type", "application/x-amz-json-1.1")
        .header(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=testing/20261204/us-east-1/cognito-idp/aws4_request",
        )
        .body(r#"{"MaxResults": 60}"#)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_clinic_on_cognito_signs_in_with_password_and_authenticator() {
    let slug = format!("cog{}", std::process::id());
    let host = format!("{slug}.localhost");
    let email = format!("ana.{slug}@example.org");
    let app = app(&slug).await;

    // The clinic's pool was made with the clinic.
    assert!(pools().await.contains(&format!("portico-{slug}")));

    let (secret, _) = create_account(&app, &slug, &email, "patient", PASSWORD).await;
    let totp = TotpSecret::issued_by_provider(&secret).unwrap();

    let sign_in = |password: &str| {
        format!("mutation {{ signIn(email: \"{email}\", password: \"{password}\") {{ next }} }}")
    };
    // Cognito refuses a wrong password and an unknown address alike.
    let wrong = post(&app, &host, &sign_in("not the password at all"), None, None).await;
    assert_eq!(error_code(&wrong.body), "UNAUTHENTICATED");
    let unknown = post(
        &app,
        &host,
        &format!(
            "mutation {{ signIn(email: \"nobody.{slug}@example.org\", password: \"{PASSWORD}\") \
             {{ next }} }}"
        ),
        None,
        None,
    )
    .await;
    assert_eq!(wrong.body, unknown.body);

    let step = post(&app, &host, &sign_in(PASSWORD), None, None).await;
    assert_eq!(step.body["data"]["signIn"]["next"], "TOTP", "{}", step.body);
    let pending = token(&step.set_cookie.unwrap());

    // A wrong code is Cognito's refusal; the right one signs in.
    let right = code(&totp).await;
    let wrong_code = format!("{:06}", (right.parse::<u32>().unwrap() + 1) % 1_000_000);
    let verify =
        |code: &str| format!("mutation {{ verifyTotp(code: \"{code}\") {{ csrfToken }} }}");
    let refused = post(&app, &host, &verify(&wrong_code), Some(&pending), None).await;
    assert_eq!(error_code(&refused.body), "UNAUTHENTICATED");
    let verified = post(
        &app,
        &host,
        &verify(&code(&totp).await),
        Some(&pending),
        None,
    )
    .await;
    let csrf = verified.body["data"]["verifyTotp"]["csrfToken"]
        .as_str()
        .unwrap_or_else(|| panic!("{}", verified.body))
        .to_owned();
    let session = token(&verified.set_cookie.unwrap());
    let me = post(
        &app,
        &host,
        "{ me { kind clinic } }",
        Some(&session),
        Some(&csrf),
    )
    .await;
    assert_eq!(me.body["data"]["me"]["kind"], "patient", "{}", me.body);

    // Signing out everywhere ends Portico's sessions and Cognito's.
    let out = post(
        &app,
        &host,
        "mutation { signOut(everywhere: true) }",
        Some(&session),
        Some(&csrf),
    )
    .await;
    assert_eq!(out.body["data"]["signOut"], true, "{}", out.body);
    let me = post(&app, &host, "{ me { kind } }", Some(&session), Some(&csrf)).await;
    assert_eq!(me.body["data"]["me"], Value::Null);
    assert!(!app.logs().contains("did not sign the account out"));

    // An invited admin enrolls into the pool and confirms the authenticator through Cognito.
    let admin = format!("admin.{slug}@example.org");
    let invited = app
        .cli(&["tenant", "invite-admin", "--slug", &slug, "--email", &admin])
        .await;
    assert!(invited.status.success(), "{invited:?}");
    let outbox = app.cli(&["outbox", "--tenant", &slug, "--last", "1"]).await;
    let message = String::from_utf8_lossy(&outbox.stdout).into_owned();
    let invitation = message
        .split_whitespace()
        .map(|word| word.trim_end_matches([';', '.']))
        .find(|word| word.len() == 24 && word.matches('-').count() == 4)
        .unwrap_or_else(|| panic!("{message}"))
        .to_owned();
    let accepted = post(
        &app,
        &host,
        &format!(
            "mutation {{ acceptInvitation(code: \"{invitation}\", email: \"{admin}\", \
             password: \"{PASSWORD}\") {{ totpSecret }} }}"
        ),
        None,
        None,
    )
    .await;
    let admin_secret = accepted.body["data"]["acceptInvitation"]["totpSecret"]
        .as_str()
        .unwrap_or_else(|| panic!("{}", accepted.body));
    let admin_totp = TotpSecret::issued_by_provider(admin_secret).unwrap();
    let pending = token(&accepted.set_cookie.unwrap());
    let verified = post(
        &app,
        &host,
        &verify(&code(&admin_totp).await),
        Some(&pending),
        None,
    )
    .await;
    let csrf = verified.body["data"]["verifyTotp"]["csrfToken"]
        .as_str()
        .unwrap_or_else(|| panic!("{}", verified.body))
        .to_owned();
    let session = token(&verified.set_cookie.unwrap());
    let me = post(&app, &host, "{ me { role } }", Some(&session), Some(&csrf)).await;
    assert_eq!(me.body["data"]["me"]["role"], "tenant_admin", "{}", me.body);

    let logs = app.logs();
    for secret in [PASSWORD, &right, &invitation, &session, &csrf] {
        assert!(!logs.contains(secret), "{secret:?} is in the log");
    }
}
