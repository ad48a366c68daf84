//! Sign-in from the binary over HTTP: an account made with the CLI, the password step and
//! the TOTP step through GraphQL, the session cookie and CSRF token, `me`, sign-out — and
//! no password, code or token in the server's log.

use portico_platform::clock::{Clock, SystemClock};
use portico_platform::identity::totp::TotpSecret;
use portico_tests::TestApp;
use reqwest::StatusCode;
use serde_json::{Value, json};

const HOST: &str = "sunrise.localhost";
const EMAIL: &str = "ana@example.org";
const PASSWORD: &str = "violet harbor lantern";

pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) body: Value,
    pub(crate) set_cookie: Option<String>,
}

pub(crate) async fn post(
    app: &TestApp,
    host: &str,
    query: &str,
    cookie: Option<&str>,
    csrf: Option<&str>,
) -> Answer {
    let mut request = app
        .request(reqwest::Method::POST, host, "/graphql")
        .json(&json!({ "query": query }));
    if let Some(cookie) = cookie {
        request = request.header("cookie", format!("__Host-portico_session={cookie}"));
    }
    if let Some(csrf) = csrf {
        request = request.header("x-csrf-token", csrf);
    }
    let response = request.send().await.unwrap();
    let set_cookie = response
        .headers()
        .get("set-cookie")
        .map(|value| value.to_str().unwrap().to_owned());
    Answer {
        status: response.status(),
        body: response.json().await.unwrap(),
        set_cookie,
    }
}

/// The session token a `Set-Cookie` header carries.
pub(crate) fn token(set_cookie: &str) -> String {
    set_cookie
        .strip_prefix("__Host-portico_session=")
        .and_then(|rest| rest.split(';').next())
        .unwrap()
        .to_owned()
}

/// `portico account create` (development mode) with `password` on standard input; returns
/// the authenticator secret (base32) and all that was printed.
pub(crate) async fn create_account(
    app: &TestApp,
    tenant: &str,
    email: &str,
    role: &str,
    password: &str,
) -> (String, String) {
    let created = app
        .cli_with_input(
            &[
                "account", "create", "--tenant", tenant, "--email", email, "--role", role,
            ],
            &format!("{password}\n"),
        )
        .await;
    assert!(created.status.success(), "{created:?}");
    let printed = String::from_utf8_lossy(&created.stdout).into_owned();
    let secret = printed
        .split("authenticator secret (shown once): ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no secret in {printed}"))
        .to_owned();
    (secret, printed)
}

/// Signs in at `host` with the password and the authenticator's current code; the
/// session token and CSRF token.
pub(crate) async fn signed_in(
    app: &TestApp,
    host: &str,
    email: &str,
    password: &str,
    totp_base32: &str,
) -> (String, String) {
    app.sign_in(host, email, password, totp_base32).await
}

fn sign_in(email: &str, password: &str) -> String {
    format!("mutation {{ signIn(email: \"{email}\", password: \"{password}\") {{ next }} }}")
}

#[tokio::test]
async fn a_patient_signs_in_with_password_and_authenticator_then_signs_out() {
    let app = TestApp::builder()
        .env("PORTICO_MODE", "development")
        .tenant("sunrise", "Sunrise Family Clinic")
        .tenant("harbor", "Harbor Health")
        .start()
        .await;
    let (secret, out_text) = create_account(&app, "sunrise", EMAIL, "patient", PASSWORD).await;
    let secret = secret.as_str();
    let totp = TotpSecret::from_base32(secret).unwrap();

    // A wrong password and an unknown address: the same answer.
    let wrong = post(&app, HOST, &sign_in(EMAIL, "not the password"), None, None).await;
    let unknown = post(
        &app,
        HOST,
        &sign_in("nobody@example.org", PASSWORD),
        None,
        None,
    )
    .await;
    assert_eq!(wrong.body, unknown.body);
    assert_eq!(
        wrong.body["errors"][0]["extensions"]["code"],
        "UNAUTHENTICATED"
    );
    assert!(wrong.set_cookie.is_none());

    // The password step sets a cookie that reaches nothing yet.
    let step = post(&app, HOST, &sign_in(EMAIL, PASSWORD), None, None).await;
    assert_eq!(step.body["data"]["signIn"]["next"], "TOTP", "{}", step.body);
    let set_cookie = step.set_cookie.unwrap();
    for attribute in ["Path=/", "HttpOnly", "Secure", "SameSite=Lax"] {
        assert!(set_cookie.contains(attribute), "{set_cookie}");
    }
    let pending = token(&set_cookie);
    let me = post(&app, HOST, "{ me { kind } }", Some(&pending), None).await;
    assert_eq!(me.body["data"]["me"], Value::Null);

    // The code step replaces the session (a new token) and hands over the CSRF token.
    let code = totp.code_at(SystemClock.now());
    let verified = post(
        &app,
        HOST,
        &format!("mutation {{ verifyTotp(code: \"{code}\") {{ csrfToken }} }}"),
        Some(&pending),
        None,
    )
    .await;
    let csrf = verified.body["data"]["verifyTotp"]["csrfToken"]
        .as_str()
        .unwrap_or_else(|| panic!("{}", verified.body))
        .to_owned();
    let session = token(&verified.set_cookie.unwrap());
    assert_ne!(session, pending);

    // With the cookie, every request must carry the CSRF token.
    let forged = post(&app, HOST, "{ me { kind } }", Some(&session), None).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert_eq!(
        forged.body["errors"][0]["extensions"]["code"],
        "CSRF_FAILED"
    );
    let me = post(
        &app,
        HOST,
        "{ me { kind clinic patientId } }",
        Some(&session),
        Some(&csrf),
    )
    .await;
    assert_eq!(me.body["data"]["me"]["kind"], "patient", "{}", me.body);
    assert_eq!(me.body["data"]["me"]["clinic"], "sunrise");

    // Another clinic's portal does not know the session.
    let elsewhere = post(
        &app,
        "harbor.localhost",
        "{ me { kind } }",
        Some(&session),
        Some(&csrf),
    )
    .await;
    assert_eq!(
        elsewhere.body["data"]["me"],
        Value::Null,
        "{}",
        elsewhere.body
    );

    // Signing out clears the cookie and ends the session.
    let out = post(
        &app,
        HOST,
        "mutation { signOut }",
        Some(&session),
        Some(&csrf),
    )
    .await;
    assert_eq!(out.body["data"]["signOut"], true, "{}", out.body);
    assert!(out.set_cookie.unwrap().contains("Max-Age=0"));
    let me = post(&app, HOST, "{ me { kind } }", Some(&session), Some(&csrf)).await;
    assert_eq!(me.body["data"]["me"], Value::Null);

    // A recovery code stands in for the authenticator, once.
    let recovery = out_text
        .lines()
        .skip_while(|line| !line.starts_with("recovery codes"))
        .nth(1)
        .unwrap()
        .trim()
        .to_owned();
    let step = post(&app, HOST, &sign_in(EMAIL, PASSWORD), None, None).await;
    let pending = token(&step.set_cookie.unwrap());
    let query = format!("mutation {{ useRecoveryCode(code: \"{recovery}\") {{ csrfToken }} }}");
    let used = post(&app, HOST, &query, Some(&pending), None).await;
    assert!(
        used.body["data"]["useRecoveryCode"]["csrfToken"].is_string(),
        "{}",
        used.body
    );
    let step = post(&app, HOST, &sign_in(EMAIL, PASSWORD), None, None).await;
    let pending_again = token(&step.set_cookie.unwrap());
    let reused = post(&app, HOST, &query, Some(&pending_again), None).await;
    assert_eq!(
        reused.body["errors"][0]["extensions"]["code"],
        "UNAUTHENTICATED"
    );

    // Nothing secret reached the log.
    let logs = app.logs();
    for secret_text in [
        PASSWORD, secret, &code, &pending, &session, &csrf, EMAIL, &recovery,
    ] {
        assert!(!logs.contains(secret_text), "{secret_text:?} is in the log");
    }
}

#[tokio::test]
async fn a_weak_password_is_refused_with_the_reason() {
    let app = TestApp::builder()
        .env("PORTICO_MODE", "development")
        .tenant("sunrise", "Sunrise Family Clinic")
        .start()
        .await;

    let output = app
        .cli_with_input(
            &[
                "account", "create", "--tenant", "sunrise", "--email", EMAIL, "--role", "nurse",
            ],
            "password123\n",
        )
        .await;

    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("too common"), "{stderr}");
}
