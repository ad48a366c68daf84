//! What a client sends never reaches the log: not its body, query string, headers, path or
//! the values of its variables (docs/LOGGING.md).

use portico_tests::TestApp;
use reqwest::Method;
use serde_json::json;

/// Strings standing in for PHI and credentials; none may appear in any log line.
const NEVER_LOGGED: &[&str] = &[
    "Jane-Q-Patient",
    "1970-01-01-dob",
    "555-0100-phone",
    "Bearer-tok-7d1f",
    "session=cookie-9a8b",
    "free-text-diagnosis",
    "path-secret-42",
];

#[tokio::test]
async fn no_request_content_is_logged_whatever_the_outcome() {
    let app = TestApp::builder()
        .env("PORTICO_LOG", "debug")
        .env("PORTICO_TENANCY__PATH_FALLBACK", "true")
        .env("PORTICO_HTTP__BODY_LIMIT_BYTES", "2048")
        .tenant("sunrise", "Sunrise Family Clinic")
        .start()
        .await;
    let with_secrets = |builder: reqwest::RequestBuilder| {
        builder
            .header("authorization", "Bearer Bearer-tok-7d1f")
            .header("cookie", "session=cookie-9a8b")
            .header("x-patient", "Jane-Q-Patient")
    };

    // A successful query carrying PHI in variables and in a query string.
    let ok = json!({
        "query": "query($name: String) { tenant { slug } }",
        "variables": { "name": "Jane-Q-Patient", "dob": "1970-01-01-dob", "phone": "555-0100-phone" }
    });
    with_secrets(app.request(
        Method::POST,
        "sunrise.localhost",
        "/graphql?q=Jane-Q-Patient",
    ))
    .json(&ok)
    .send()
    .await
    .unwrap();
    // A parse error, a validation error, malformed JSON, an oversized body, a bad path.
    for body in [
        json!({ "query": "{ tenant { free-text-diagnosis" }),
        json!({ "query": "{ free_text_diagnosis }" }),
    ] {
        with_secrets(app.request(Method::POST, "sunrise.localhost", "/graphql"))
            .json(&body)
            .send()
            .await
            .unwrap();
    }
    with_secrets(app.request(Method::POST, "sunrise.localhost", "/graphql"))
        .header("content-type", "application/json")
        .body("{\"query\": \"Jane-Q-Patient")
        .send()
        .await
        .unwrap();
    with_secrets(app.request(Method::POST, "sunrise.localhost", "/graphql"))
        .json(&json!({ "query": "{ tenant { slug } }", "v": "free-text-diagnosis ".repeat(200) }))
        .send()
        .await
        .unwrap();
    with_secrets(app.request(Method::GET, "sunrise.localhost", "/records/path-secret-42"))
        .send()
        .await
        .unwrap();
    with_secrets(app.request(Method::GET, "127.0.0.1", "/t/path-secret-42/graphql"))
        .send()
        .await
        .unwrap();

    app.wait_for_log("\"http.status\":404").await;
    let logs = app.logs();
    assert!(
        logs.contains("request finished"),
        "the requests were not logged at all:\n{logs}"
    );
    for marker in NEVER_LOGGED {
        assert!(!logs.contains(marker), "{marker} reached the log:\n{logs}");
    }
}
