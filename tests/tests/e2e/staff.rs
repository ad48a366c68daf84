//! Staff accounts and the second factors beyond the authenticator app, from the binary:
//! a clinic's first admin invited by `tenant create --admin-email`, staff invited by that
//! admin through GraphQL with their roles, the list of one's sessions and ending one, and
//! a sign-in code texted to the patient's number on file. Each refusal is checked, and no
//! code, password or token reaches the server's log.

use portico_platform::clock::{Clock, SystemClock};
use portico_platform::identity::totp::TotpSecret;
use portico_tests::TestApp;
use serde_json::Value;

use crate::identity::{post, token};

const HOST: &str = "lakeside.localhost";
const ADMIN: &str = "admin@lakeside.example";
const NURSE: &str = "nurse@lakeside.example";
const PASSWORD: &str = "copper lantern harbor 88";

async fn app() -> TestApp {
    TestApp::builder()
        // The outbox (where invitations "go") is readable only in development mode.
        .env("PORTICO_MODE", "development")
        .tenant("harbor", "Harbor Health")
        .start()
        .await
}

/// The newest message in a clinic's outbox.
async fn newest_message(app: &TestApp, slug: &str) -> String {
    let output = app.cli(&["outbox", "--tenant", slug, "--last", "1"]).await;
    assert!(output.status.success(), "{output:?}");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The invitation code (`XXXX-XXXX-XXXX-XXXX-XXXX`) in a message.
fn invitation_code(message: &str) -> String {
    message
        .split_whitespace()
        .map(|word| word.trim_end_matches([';', '.']))
        .find(|word| word.len() == 24 && word.matches('-').count() == 4)
        .unwrap_or_else(|| panic!("no invitation code in {message}"))
        .to_owned()
}

fn accept(code: &str, email: &str) -> String {
    format!(
        "mutation {{ acceptInvitation(code: \"{code}\", email: \"{email}\", password: \
         \"{PASSWORD}\") {{ next totpSecret recoveryCodes }} }}"
    )
}

fn code_of(answer: &Value) -> &str {
    answer["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no error in {answer}"))
}

/// Accepts an invitation and confirms the new authenticator; returns a recovery code, the
/// session token and the CSRF token.
async fn join(app: &TestApp, code: &str, email: &str) -> (String, String, String) {
    let accepted = post(app, HOST, &accept(code, email), None, None).await;
    let enrollment = &accepted.body["data"]["acceptInvitation"];
    assert_eq!(enrollment["next"], "TOTP", "{}", accepted.body);
    assert_eq!(enrollment["recoveryCodes"].as_array().unwrap().len(), 10);
    let secret = TotpSecret::from_base32(enrollment["totpSecret"].as_str().unwrap()).unwrap();
    let recovery = enrollment["recoveryCodes"][0].as_str().unwrap().to_owned();
    let pending = token(&accepted.set_cookie.unwrap());
    let code = secret.code_at(SystemClock.now());
    let query = format!("mutation {{ verifyTotp(code: \"{code}\") {{ csrfToken }} }}");
    let verified = post(app, HOST, &query, Some(&pending), None).await;
    let csrf = verified.body["data"]["verifyTotp"]["csrfToken"]
        .as_str()
        .unwrap_or_else(|| panic!("{}", verified.body))
        .to_owned();
    (recovery, token(&verified.set_cookie.unwrap()), csrf)
}

fn sign_in(email: &str) -> String {
    format!("mutation {{ signIn(email: \"{email}\", password: \"{PASSWORD}\") {{ next }} }}")
}

#[tokio::test]
async fn a_clinic_admin_is_invited_at_creation_and_invites_staff_with_roles() {
    let app = app().await;

    // A malformed address is refused before anything is made.
    let bad = app
        .cli(&[
            "tenant",
            "create",
            "--slug",
            "lakeside",
            "--name",
            "Lakeside Clinic",
            "--admin-email",
            "not-an-address",
        ])
        .await;
    assert_eq!(bad.status.code(), Some(1), "{bad:?}");
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not an e-mail address"));
    let listed = app.cli(&["tenant", "list"]).await;
    assert!(!String::from_utf8_lossy(&listed.stdout).contains("lakeside"));

    let created = app
        .cli(&[
            "tenant",
            "create",
            "--slug",
            "lakeside",
            "--name",
            "Lakeside Clinic",
            "--admin-email",
            ADMIN,
        ])
        .await;
    assert!(created.status.success(), "{created:?}");
    let stdout = String::from_utf8_lossy(&created.stdout).into_owned();
    assert!(stdout.contains("invited the clinic admin"), "{stdout}");
    let message = newest_message(&app, "lakeside").await;
    assert!(
        message.contains(&format!("email to {ADMIN} (staff_invitation)")),
        "{message}"
    );
    assert!(
        message.contains("Lakeside Clinic has invited you"),
        "{message}"
    );
    let admin_code = invitation_code(&message);

    // The code works only with the address it was sent to, and only at its clinic.
    let other_address = post(&app, HOST, &accept(&admin_code, NURSE), None, None).await;
    assert_eq!(code_of(&other_address.body), "NOT_VERIFIED");
    let other_clinic = post(
        &app,
        "harbor.localhost",
        &accept(&admin_code, ADMIN),
        None,
        None,
    )
    .await;
    assert_eq!(code_of(&other_clinic.body), "NOT_VERIFIED");
    let garbled = post(&app, HOST, &accept("ABCD-EFGH", ADMIN), None, None).await;
    assert_eq!(code_of(&garbled.body), "NOT_VERIFIED");

    let (admin_recovery, admin, admin_csrf) = join(&app, &admin_code, ADMIN).await;
    let me = post(
        &app,
        HOST,
        "{ me { kind role patientId clinic } }",
        Some(&admin),
        Some(&admin_csrf),
    )
    .await;
    assert_eq!(me.body["data"]["me"]["kind"], "staff", "{}", me.body);
    assert_eq!(me.body["data"]["me"]["role"], "tenant_admin");
    assert_eq!(me.body["data"]["me"]["patientId"], Value::Null);

    // Used once.
    let again = post(&app, HOST, &accept(&admin_code, ADMIN), None, None).await;
    assert_eq!(code_of(&again.body), "NOT_VERIFIED");

    // The admin invites a nurse; without the CSRF token the cookie does nothing.
    let invite =
        format!("mutation {{ inviteStaff(email: \"{NURSE}\", role: NURSE) {{ role expiresAt }} }}");
    let forged = post(&app, HOST, &invite, Some(&admin), None).await;
    assert_eq!(forged.status, reqwest::StatusCode::FORBIDDEN);
    let invited = post(&app, HOST, &invite, Some(&admin), Some(&admin_csrf)).await;
    assert_eq!(
        invited.body["data"]["inviteStaff"]["role"], "nurse",
        "{}",
        invited.body
    );
    // The admin's own address has an account already.
    let taken = format!("mutation {{ inviteStaff(email: \"{ADMIN}\", role: BILLING) {{ role }} }}");
    let taken = post(&app, HOST, &taken, Some(&admin), Some(&admin_csrf)).await;
    assert_eq!(code_of(&taken.body), "CONFLICT");

    let nurse_code = invitation_code(&newest_message(&app, "lakeside").await);
    let (_, nurse, nurse_csrf) = join(&app, &nurse_code, NURSE).await;
    let me = post(
        &app,
        HOST,
        "{ me { role } }",
        Some(&nurse),
        Some(&nurse_csrf),
    )
    .await;
    assert_eq!(me.body["data"]["me"]["role"], "nurse", "{}", me.body);

    // Only the clinic admin invites; nobody signed in cannot either.
    let by_nurse = "mutation { inviteStaff(email: \"frontdesk@lakeside.example\", \
                    role: FRONT_DESK) { role } }";
    let refused = post(&app, HOST, by_nurse, Some(&nurse), Some(&nurse_csrf)).await;
    assert_eq!(code_of(&refused.body), "FORBIDDEN");
    let anonymous = post(&app, HOST, by_nurse, None, None).await;
    assert_eq!(code_of(&anonymous.body), "FORBIDDEN");

    // Staff of one clinic cannot sign in at another clinic's portal.
    let elsewhere = post(&app, "harbor.localhost", &sign_in(ADMIN), None, None).await;
    assert_eq!(code_of(&elsewhere.body), "UNAUTHENTICATED");
    assert!(elsewhere.set_cookie.is_none());

    // The admin sees both sessions (this one and a second sign-in) and ends the other.
    let step = post(&app, HOST, &sign_in(ADMIN), None, None).await;
    let pending = token(&step.set_cookie.unwrap());
    // A recovery code stands in for the authenticator, whose current code is spent.
    let query =
        format!("mutation {{ useRecoveryCode(code: \"{admin_recovery}\") {{ csrfToken }} }}");
    let verified = post(&app, HOST, &query, Some(&pending), None).await;
    let second_csrf = verified.body["data"]["useRecoveryCode"]["csrfToken"]
        .as_str()
        .unwrap_or_else(|| panic!("{}", verified.body))
        .to_owned();
    let second = token(&verified.set_cookie.unwrap());
    let listed = post(
        &app,
        HOST,
        "{ sessions { reference current createdAt lastSeenAt expiresAt } }",
        Some(&admin),
        Some(&admin_csrf),
    )
    .await;
    let sessions = listed.body["data"]["sessions"]
        .as_array()
        .unwrap_or_else(|| panic!("{}", listed.body))
        .clone();
    assert_eq!(sessions.len(), 2, "{}", listed.body);
    let current: Vec<_> = sessions.iter().filter(|s| s["current"] == true).collect();
    assert_eq!(current.len(), 1);
    let other = sessions.iter().find(|s| s["current"] == false).unwrap()["reference"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(other.starts_with("ses-"));
    let end = format!("mutation {{ endSession(reference: \"{other}\") }}");
    let ended = post(&app, HOST, &end, Some(&admin), Some(&admin_csrf)).await;
    assert_eq!(ended.body["data"]["endSession"], true, "{}", ended.body);
    let gone = post(
        &app,
        HOST,
        "{ me { kind } }",
        Some(&second),
        Some(&second_csrf),
    )
    .await;
    assert_eq!(gone.body["data"]["me"], Value::Null);
    let unknown = post(&app, HOST, &end, Some(&admin), Some(&admin_csrf)).await;
    assert_eq!(unknown.body["data"]["endSession"], false);
    let anonymous = post(&app, HOST, "{ sessions { reference } }", None, None).await;
    assert_eq!(code_of(&anonymous.body), "UNAUTHENTICATED");

    // Nothing secret reached the log.
    let logs = app.logs();
    for secret in [
        PASSWORD,
        admin_code.as_str(),
        nurse_code.as_str(),
        admin.as_str(),
        admin_csrf.as_str(),
        nurse.as_str(),
        ADMIN,
        NURSE,
    ] {
        assert!(!logs.contains(secret), "{secret:?} is in the log");
    }
}

#[tokio::test]
async fn operators_cannot_make_accounts_outside_development() {
    let app = TestApp::builder()
        .tenant("sunrise", "Sunrise Family Clinic")
        .start()
        .await;
    let output = app
        .cli_with_input(
            &[
                "account", "create", "--tenant", "sunrise", "--email", ADMIN, "--role", "provider",
            ],
            &format!("{PASSWORD}\n"),
        )
        .await;

    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("development mode"), "{stderr}");
    assert!(stderr.contains("invite-admin"), "{stderr}");
}

#[tokio::test]
async fn a_patient_signs_in_with_a_code_texted_to_the_number_on_file() {
    let app = TestApp::builder()
        .env("PORTICO_MODE", "development")
        .tenant("lakeside", "Lakeside Clinic")
        .start()
        .await;
    let added = app
        .cli(&[
            "patient",
            "add",
            "--tenant",
            "lakeside",
            "--given",
            "Iris",
            "--family",
            "Okafor",
            "--birth-date",
            "1990-05-17",
            "--zip",
            "97214",
            "--phone",
            "503-555-0177",
        ])
        .await;
    assert!(added.status.success(), "{added:?}");
    let patient = String::from_utf8_lossy(&added.stdout)
        .split_whitespace()
        .nth(2)
        .unwrap()
        .to_owned();
    for (email, role, patient) in [
        ("iris@example.org", "patient", Some(patient.as_str())),
        (NURSE, "nurse", None),
    ] {
        let mut args = vec![
            "account", "create", "--tenant", "lakeside", "--email", email, "--role", role,
        ];
        if let Some(patient) = patient {
            args.extend(["--patient", patient]);
        }
        let created = app.cli_with_input(&args, &format!("{PASSWORD}\n")).await;
        assert!(created.status.success(), "{created:?}");
    }

    let step = post(&app, HOST, &sign_in("iris@example.org"), None, None).await;
    assert_eq!(step.body["data"]["signIn"]["next"], "TOTP", "{}", step.body);
    let pending = token(&step.set_cookie.unwrap());
    // Nothing was sent yet, so no code can be right.
    let early = post(
        &app,
        HOST,
        "mutation { verifySmsCode(code: \"000000\") { csrfToken } }",
        Some(&pending),
        None,
    )
    .await;
    assert_eq!(code_of(&early.body), "UNAUTHENTICATED");

    let sent = post(&app, HOST, "mutation { sendSmsCode }", Some(&pending), None).await;
    assert_eq!(sent.body["data"]["sendSmsCode"], true, "{}", sent.body);
    let message = newest_message(&app, "lakeside").await;
    assert!(
        message.contains("sms to +15035550177 (sign_in_code)"),
        "{message}"
    );
    let code = message
        .split_whitespace()
        .map(|word| word.trim_end_matches('.'))
        .find(|word| word.len() == 6 && word.bytes().all(|b| b.is_ascii_digit()))
        .unwrap()
        .to_owned();
    let wrong = if code == "111111" { "222222" } else { "111111" };
    let refused = post(
        &app,
        HOST,
        &format!("mutation {{ verifySmsCode(code: \"{wrong}\") {{ csrfToken }} }}"),
        Some(&pending),
        None,
    )
    .await;
    assert_eq!(code_of(&refused.body), "UNAUTHENTICATED");

    let verify = format!("mutation {{ verifySmsCode(code: \"{code}\") {{ csrfToken }} }}");
    let verified = post(&app, HOST, &verify, Some(&pending), None).await;
    let csrf = verified.body["data"]["verifySmsCode"]["csrfToken"]
        .as_str()
        .unwrap_or_else(|| panic!("{}", verified.body))
        .to_owned();
    let session = token(&verified.set_cookie.unwrap());
    let me = post(&app, HOST, "{ me { kind } }", Some(&session), Some(&csrf)).await;
    assert_eq!(me.body["data"]["me"]["kind"], "patient", "{}", me.body);

    // The code belonged to that waiting session: a new sign-in cannot use it.
    let step = post(&app, HOST, &sign_in("iris@example.org"), None, None).await;
    let pending = token(&step.set_cookie.unwrap());
    let replayed = post(&app, HOST, &verify, Some(&pending), None).await;
    assert_eq!(code_of(&replayed.body), "UNAUTHENTICATED");

    // Staff have no number on file: the authenticator app or a recovery code.
    let step = post(&app, HOST, &sign_in(NURSE), None, None).await;
    let pending = token(&step.set_cookie.unwrap());
    let none = post(&app, HOST, "mutation { sendSmsCode }", Some(&pending), None).await;
    assert_eq!(code_of(&none.body), "FORBIDDEN");
    // Without a password step there is nothing to text.
    let cold = post(&app, HOST, "mutation { sendSmsCode }", None, None).await;
    assert_eq!(code_of(&cold.body), "UNAUTHENTICATED");

    let logs = app.logs();
    for secret in [PASSWORD, code.as_str(), "+15035550177", session.as_str()] {
        assert!(!logs.contains(secret), "{secret:?} is in the log");
    }
}
