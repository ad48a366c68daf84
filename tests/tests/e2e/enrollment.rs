//! Enrollment and recovery from the binary: a patient registered and given an activation
//! code with the CLI enrolls through GraphQL, scans the QR code's secret, confirms it with
//! a code and is linked to their record; another self-enrolls with the code "sent" to the
//! phone on file (read back with `portico outbox`); a forgotten password is reset with the
//! code and a recovery code. No code, password or token reaches the server's log.

use portico_platform::clock::{Clock, SystemClock};
use portico_platform::identity::totp::TotpSecret;
use portico_tests::TestApp;
use serde_json::Value;

use crate::identity::{post, token};

const HOST: &str = "sunrise.localhost";
const PASSWORD: &str = "marigold ferry 1979";

async fn app() -> TestApp {
    TestApp::builder()
        // The outbox is readable only in development mode, as in the demo.
        .env("PORTICO_MODE", "development")
        .tenant("sunrise", "Sunrise Family Clinic")
        .start()
        .await
}

/// `portico patient add` for a patient born 1979-11-02 in 97205 with a mobile on file.
async fn register(app: &TestApp, given: &str, family: &str) -> String {
    let output = app
        .cli(&[
            "patient",
            "add",
            "--tenant",
            "sunrise",
            "--given",
            given,
            "--family",
            family,
            "--birth-date",
            "1979-11-02",
            "--zip",
            "97205",
            "--phone",
            "503-555-0166",
        ])
        .await;
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    stdout
        .split_whitespace()
        .nth(2)
        .unwrap_or_else(|| panic!("{stdout}"))
        .to_owned()
}

/// The 6-digit code in the newest message of the outbox, and where it went.
async fn outbox_code(app: &TestApp) -> (String, String) {
    let output = app
        .cli(&["outbox", "--tenant", "sunrise", "--last", "1"])
        .await;
    assert!(output.status.success(), "{output:?}");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let to = text
        .split(" to ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap()
        .to_owned();
    let code = text
        .split_whitespace()
        .map(|word| word.trim_end_matches('.'))
        .find(|word| word.len() == 6 && word.bytes().all(|b| b.is_ascii_digit()))
        .unwrap_or_else(|| panic!("{text}"))
        .to_owned();
    (to, code)
}

/// Confirms an enrollment's authenticator with its first code; returns the session token
/// and CSRF token.
async fn confirm(app: &TestApp, enrollment: &Value, pending: &str) -> (String, String) {
    let secret = TotpSecret::from_base32(enrollment["totpSecret"].as_str().unwrap()).unwrap();
    let code = secret.code_at(SystemClock.now());
    let query = format!("mutation {{ verifyTotp(code: \"{code}\") {{ csrfToken }} }}");
    let verified = post(app, HOST, &query, Some(pending), None).await;
    let csrf = verified.body["data"]["verifyTotp"]["csrfToken"]
        .as_str()
        .unwrap_or_else(|| panic!("{}", verified.body))
        .to_owned();
    (token(&verified.set_cookie.unwrap()), csrf)
}

const ENROLLMENT_FIELDS: &str = "next totpSecret otpauthUri qrCodeSvg recoveryCodes";

#[tokio::test]
async fn a_patient_enrolls_with_the_clinics_activation_code_and_birth_date() {
    let app = app().await;
    let patient = register(&app, "Ines", "Duarte").await;
    let issued = app
        .cli(&[
            "patient",
            "activation-code",
            "--tenant",
            "sunrise",
            "--patient",
            &patient,
        ])
        .await;
    assert!(issued.status.success(), "{issued:?}");
    let issued = String::from_utf8_lossy(&issued.stdout).into_owned();
    let code = issued
        .split("single use): ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap()
        .to_owned();
    let enroll = |birth: &str| {
        format!(
            "mutation {{ enrollWithActivationCode(code: \"{code}\", birthDate: \"{birth}\", \
             email: \"ines@example.org\", password: \"{PASSWORD}\") {{ {ENROLLMENT_FIELDS} }} }}"
        )
    };

    // Another birth date: refused, saying nothing more.
    let wrong = post(&app, HOST, &enroll("1979-11-03"), None, None).await;
    assert_eq!(
        wrong.body["errors"][0]["extensions"]["code"],
        "NOT_VERIFIED"
    );
    assert_eq!(
        wrong.body["errors"][0]["message"],
        "We could not verify you; please contact the clinic."
    );
    let malformed = post(&app, HOST, &enroll("02/11/1979"), None, None).await;
    assert_eq!(
        malformed.body["errors"][0]["extensions"]["code"],
        "VALIDATION_FAILED"
    );

    let enrolled = post(&app, HOST, &enroll("1979-11-02"), None, None).await;
    let enrollment = &enrolled.body["data"]["enrollWithActivationCode"];
    assert_eq!(enrollment["next"], "TOTP", "{}", enrolled.body);
    assert!(
        enrollment["otpauthUri"]
            .as_str()
            .unwrap()
            .starts_with("otpauth://totp/Sunrise%20Family%20Clinic:")
    );
    assert!(enrollment["qrCodeSvg"].as_str().unwrap().contains("<svg"));
    assert_eq!(enrollment["recoveryCodes"].as_array().unwrap().len(), 10);
    let pending = token(&enrolled.set_cookie.unwrap());
    // Until the authenticator is confirmed, the session reaches nothing.
    let me = post(&app, HOST, "{ me { kind } }", Some(&pending), None).await;
    assert_eq!(me.body["data"]["me"], Value::Null);

    let (session, csrf) = confirm(&app, enrollment, &pending).await;
    let me = post(
        &app,
        HOST,
        "{ me { kind patientId } }",
        Some(&session),
        Some(&csrf),
    )
    .await;
    assert_eq!(me.body["data"]["me"]["kind"], "patient", "{}", me.body);
    assert_eq!(me.body["data"]["me"]["patientId"], patient.as_str());

    // The code is spent.
    let again = post(&app, HOST, &enroll("1979-11-02"), None, None).await;
    assert_eq!(
        again.body["errors"][0]["extensions"]["code"],
        "NOT_VERIFIED"
    );

    let logs = app.logs();
    for secret_text in [code.as_str(), PASSWORD, &pending, &session, &csrf] {
        assert!(!logs.contains(secret_text), "{secret_text:?} is in the log");
    }
}

#[tokio::test]
async fn a_patient_self_enrolls_with_a_code_sent_to_the_phone_on_file_then_resets_the_password() {
    let app = app().await;
    let patient = register(&app, "Omar", "Haddad").await;
    let start = |family: &str| {
        format!(
            "mutation {{ startEnrollment(givenName: \"Omar\", familyName: \"{family}\", \
             birthDate: \"1979-11-02\", zip: \"97205\") {{ ticket message }} }}"
        )
    };

    // No such patient: the same answer, and nothing in the outbox.
    let unknown = post(&app, HOST, &start("Nobody"), None, None).await;
    let known = post(&app, HOST, &start("haddad"), None, None).await;
    assert_eq!(
        unknown.body["data"]["startEnrollment"]["message"],
        known.body["data"]["startEnrollment"]["message"],
        "{}",
        known.body
    );
    let ticket = known.body["data"]["startEnrollment"]["ticket"]
        .as_str()
        .unwrap()
        .to_owned();
    let (to, code) = outbox_code(&app).await;
    assert_eq!(to, "+15035550166", "the code goes to the number on file");

    let complete = |code: &str| {
        format!(
            "mutation {{ completeEnrollment(ticket: \"{ticket}\", code: \"{code}\", \
             email: \"omar@example.org\", password: \"{PASSWORD}\") {{ {ENROLLMENT_FIELDS} }} }}"
        )
    };
    let wrong = post(&app, HOST, &complete("000000"), None, None).await;
    assert_eq!(
        wrong.body["errors"][0]["extensions"]["code"],
        "NOT_VERIFIED"
    );
    let enrolled = post(&app, HOST, &complete(&code), None, None).await;
    let enrollment = enrolled.body["data"]["completeEnrollment"].clone();
    assert_eq!(enrollment["next"], "TOTP", "{}", enrolled.body);
    let pending = token(&enrolled.set_cookie.unwrap());
    let (session, csrf) = confirm(&app, &enrollment, &pending).await;
    let me = post(
        &app,
        HOST,
        "{ me { patientId } }",
        Some(&session),
        Some(&csrf),
    )
    .await;
    assert_eq!(me.body["data"]["me"]["patientId"], patient.as_str());

    // Forgotten password: a code to the phone on file, plus a recovery code.
    let requested = post(
        &app,
        HOST,
        "mutation { requestPasswordReset(email: \"omar@example.org\") { ticket } }",
        None,
        None,
    )
    .await;
    let reset_ticket = requested.body["data"]["requestPasswordReset"]["ticket"]
        .as_str()
        .unwrap_or_else(|| panic!("{}", requested.body))
        .to_owned();
    let (_, reset_code) = outbox_code(&app).await;
    let new_password = "saffron harbor tide";
    let reset = |second: &str| {
        format!(
            "mutation {{ resetPassword(ticket: \"{reset_ticket}\", code: \"{reset_code}\", \
             newPassword: \"{new_password}\"{second}) }}"
        )
    };
    let alone = post(&app, HOST, &reset(""), None, None).await;
    assert_eq!(
        alone.body["errors"][0]["extensions"]["code"],
        "ASSISTED_RECOVERY_REQUIRED"
    );
    let recovery = enrollment["recoveryCodes"][0].as_str().unwrap();
    let done = post(
        &app,
        HOST,
        &reset(&format!(", recoveryCode: \"{recovery}\"")),
        None,
        None,
    )
    .await;
    assert_eq!(done.body["data"]["resetPassword"], true, "{}", done.body);
    // Every session ended.
    let me = post(&app, HOST, "{ me { kind } }", Some(&session), Some(&csrf)).await;
    assert_eq!(me.body["data"]["me"], Value::Null);
    let sign_in = format!(
        "mutation {{ signIn(email: \"omar@example.org\", password: \"{new_password}\") {{ next }} }}"
    );
    let step = post(&app, HOST, &sign_in, None, None).await;
    assert_eq!(step.body["data"]["signIn"]["next"], "TOTP", "{}", step.body);

    let logs = app.logs();
    for secret_text in [
        code.as_str(),
        &reset_code,
        &ticket,
        &reset_ticket,
        recovery,
        PASSWORD,
        new_password,
        "5550166",
        "omar@example.org",
    ] {
        assert!(!logs.contains(secret_text), "{secret_text:?} is in the log");
    }
}

#[tokio::test]
async fn the_outbox_is_not_readable_in_production() {
    let app = TestApp::builder()
        .tenant("sunrise", "Sunrise Family Clinic")
        .start()
        .await;
    let output = app.cli(&["outbox", "--tenant", "sunrise"]).await;
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("only in development mode"), "{stderr}");
}
