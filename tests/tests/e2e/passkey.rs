//! Passkeys from the binary over HTTP, with a software authenticator standing in for the
//! browser and the phone: added while signed in, listed, used as the second step of the
//! next sign-in, refused from a look-alike origin, and removed.

use portico_platform::clock::{Clock, SystemClock};
use portico_platform::identity::totp::TotpSecret;
use portico_tests::TestApp;
use serde_json::{Value, json};
use webauthn_authenticator_rs::prelude::{
    CreationChallengeResponse, RequestChallengeResponse, Url, WebauthnAuthenticator,
};
use webauthn_authenticator_rs::softpasskey::SoftPasskey;

use crate::identity::{create_account, post, token};

const HOST: &str = "sunrise.localhost";
const EMAIL: &str = "rhea@example.org";
const PASSWORD: &str = "lichen harbor 2042";

fn sign_in() -> String {
    format!(
        "mutation {{ signIn(email: \"{EMAIL}\", password: \"{PASSWORD}\") {{ next alternatives }} }}"
    )
}

fn error_code(answer: &Value) -> &str {
    answer["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no error in {answer}"))
}

/// A GraphQL mutation with one string variable.
fn with_credential(operation: &str, field: &str, credential: &str) -> Value {
    json!({
        "query": format!("mutation ($c: String!) {{ {operation}(credential: $c) {field} }}"),
        "variables": { "c": credential },
    })
}

async fn post_json(
    app: &TestApp,
    body: &Value,
    cookie: &str,
    csrf: Option<&str>,
) -> (Value, Option<String>) {
    let mut request = app
        .request(reqwest::Method::POST, HOST, "/graphql")
        .json(body)
        .header("cookie", format!("__Host-portico_session={cookie}"));
    if let Some(csrf) = csrf {
        request = request.header("x-csrf-token", csrf);
    }
    let response = request.send().await.unwrap();
    let set_cookie = response
        .headers()
        .get("set-cookie")
        .map(|value| value.to_str().unwrap().to_owned());
    (response.json().await.unwrap(), set_cookie)
}

#[tokio::test]
async fn a_passkey_added_while_signed_in_signs_in_next_time() {
    let app = TestApp::builder()
        .env("PORTICO_MODE", "development")
        .tenant("sunrise", "Sunrise Family Clinic")
        .start()
        .await;
    let (secret, _) = create_account(&app, "sunrise", EMAIL, "nurse", PASSWORD).await;
    let totp = TotpSecret::from_base32(&secret).unwrap();

    // Signed in with the authenticator app first.
    let step = post(&app, HOST, &sign_in(), None, None).await;
    assert!(
        step.body["data"]["signIn"]["alternatives"]
            .as_array()
            .unwrap()
            .contains(&json!("PASSKEY"))
    );
    let pending = token(&step.set_cookie.unwrap());
    // No passkey yet.
    let none = post(
        &app,
        HOST,
        "mutation { startPasskeySignIn }",
        Some(&pending),
        None,
    )
    .await;
    assert_eq!(error_code(&none.body), "FORBIDDEN");
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

    // Add a passkey: the options go to the authenticator, its credential comes back.
    let started = post(
        &app,
        HOST,
        "mutation { startPasskeyRegistration }",
        Some(&session),
        Some(&csrf),
    )
    .await;
    let options: CreationChallengeResponse = serde_json::from_str(
        started.body["data"]["startPasskeyRegistration"]
            .as_str()
            .unwrap_or_else(|| panic!("{}", started.body)),
    )
    .unwrap();
    let origin = Url::parse(&format!("https://{HOST}")).unwrap();
    let mut phone = SoftPasskey::new(true);
    let credential = phone.do_registration(origin.clone(), options).unwrap();
    let mut body = with_credential(
        "finishPasskeyRegistration",
        "{ id name }",
        &serde_json::to_string(&credential).unwrap(),
    );
    body["query"] = json!(
        "mutation ($c: String!) { finishPasskeyRegistration(credential: $c, name: \"Work phone\") { id name } }"
    );
    let (finished, _) = post_json(&app, &body, &session, Some(&csrf)).await;
    assert_eq!(
        finished["data"]["finishPasskeyRegistration"]["name"], "Work phone",
        "{finished}"
    );
    let listed = post(
        &app,
        HOST,
        "{ passkeys { id name } }",
        Some(&session),
        Some(&csrf),
    )
    .await;
    let passkeys = listed.body["data"]["passkeys"].as_array().unwrap().clone();
    assert_eq!(passkeys.len(), 1, "{}", listed.body);

    // Next sign-in: password, then the passkey instead of a code.
    let sign_in_with = |phone: &mut SoftPasskey, options: &str, at: &Url| {
        let options: RequestChallengeResponse = serde_json::from_str(options).unwrap();
        let credential = phone.do_authentication(at.clone(), options).unwrap();
        serde_json::to_string(&credential).unwrap()
    };
    let step = post(&app, HOST, &sign_in(), None, None).await;
    let pending = token(&step.set_cookie.unwrap());
    let started = post(
        &app,
        HOST,
        "mutation { startPasskeySignIn }",
        Some(&pending),
        None,
    )
    .await;
    let options = started.body["data"]["startPasskeySignIn"]
        .as_str()
        .unwrap_or_else(|| panic!("{}", started.body))
        .to_owned();
    // A look-alike origin under the portal's name gets a signature Portico refuses.
    let phished = sign_in_with(
        &mut phone,
        &options,
        &Url::parse(&format!("https://login.{HOST}")).unwrap(),
    );
    let (refused, _) = post_json(
        &app,
        &with_credential("finishPasskeySignIn", "{ csrfToken }", &phished),
        &pending,
        None,
    )
    .await;
    assert_eq!(error_code(&refused), "UNAUTHENTICATED");

    let started = post(
        &app,
        HOST,
        "mutation { startPasskeySignIn }",
        Some(&pending),
        None,
    )
    .await;
    let options = started.body["data"]["startPasskeySignIn"]
        .as_str()
        .unwrap()
        .to_owned();
    let answer = sign_in_with(&mut phone, &options, &origin);
    let (signed_in, set_cookie) = post_json(
        &app,
        &with_credential("finishPasskeySignIn", "{ csrfToken }", &answer),
        &pending,
        None,
    )
    .await;
    let csrf = signed_in["data"]["finishPasskeySignIn"]["csrfToken"]
        .as_str()
        .unwrap_or_else(|| panic!("{signed_in}"))
        .to_owned();
    let session = token(&set_cookie.unwrap());
    let me = post(&app, HOST, "{ me { role } }", Some(&session), Some(&csrf)).await;
    assert_eq!(me.body["data"]["me"]["role"], "nurse", "{}", me.body);

    // Removed, it no longer signs in.
    let id = passkeys[0]["id"].as_str().unwrap();
    let removed = post(
        &app,
        HOST,
        &format!("mutation {{ removePasskey(id: \"{id}\") }}"),
        Some(&session),
        Some(&csrf),
    )
    .await;
    assert_eq!(
        removed.body["data"]["removePasskey"], true,
        "{}",
        removed.body
    );
    let step = post(&app, HOST, &sign_in(), None, None).await;
    let pending = token(&step.set_cookie.unwrap());
    let none = post(
        &app,
        HOST,
        "mutation { startPasskeySignIn }",
        Some(&pending),
        None,
    )
    .await;
    assert_eq!(error_code(&none.body), "FORBIDDEN");
}
