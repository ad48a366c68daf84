//! The patient's record from the sandbox EHR, through the binary: a clinic connected to the
//! sandbox with `portico connector sandbox`, a patient linked with `portico records link`,
//! the backfill watched with `portico records status`, the whole record read through
//! GraphQL, and a result the sandbox finalizes showing up seconds later through the same
//! notification path a real EHR uses. Notifications with a wrong secret are refused.

use std::time::Duration;

use portico_platform::clock::{Clock, SystemClock};
use portico_tests::TestApp;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::identity::{create_account, post, signed_in};

const HOST: &str = "sunrise.localhost";
const EMAIL: &str = "rosa@example.org";
const PASSWORD: &str = "lantern orchard 1984";

struct Signed {
    cookie: String,
    csrf: String,
}

async fn query(app: &TestApp, who: &Signed, text: &str) -> Value {
    let answer = post(app, HOST, text, Some(&who.cookie), Some(&who.csrf)).await;
    assert!(answer.body["errors"].is_null(), "{}", answer.body);
    answer.body["data"].clone()
}

async fn notify(app: &TestApp, secret: Option<&str>, body: &str) -> StatusCode {
    let mut request = app
        .request(reqwest::Method::POST, HOST, "/ehr/notifications")
        .header("content-type", "application/fhir+json")
        .body(body.to_owned());
    if let Some(secret) = secret {
        request = request.bearer_auth(secret);
    }
    request.send().await.unwrap().status()
}

#[tokio::test]
async fn a_patient_sees_their_whole_record_from_the_ehr_and_a_new_result_within_seconds() {
    let app = TestApp::builder()
        .env("PORTICO_MODE", "development")
        .env("PORTICO_SANDBOX__FINALIZE_EVERY_SECS", "1")
        .tenant("sunrise", "Sunrise Family Clinic")
        .start()
        .await;

    let connected = app
        .cli(&["connector", "sandbox", "--tenant", "sunrise"])
        .await;
    assert!(connected.status.success(), "{connected:?}");
    let printed = String::from_utf8_lossy(&connected.stdout).into_owned();
    let secret = printed
        .split("notification secret (shown once; the sandbox sends it with each notification): ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("{printed}"))
        .to_owned();

    let (totp, printed) = create_account(&app, "sunrise", EMAIL, "patient", PASSWORD).await;
    let patient = printed
        .split("linked to patient ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("{printed}"))
        .to_owned();
    let linked = app
        .cli(&[
            "records",
            "link",
            "--tenant",
            "sunrise",
            "--patient",
            &patient,
            "--ehr-patient",
            "sbx-p0000",
        ])
        .await;
    assert!(linked.status.success(), "{linked:?}");
    let bad_link = app
        .cli(&[
            "records",
            "link",
            "--tenant",
            "sunrise",
            "--patient",
            &patient,
            "--ehr-patient",
            "a/b",
        ])
        .await;
    assert!(!bad_link.status.success());

    // The admin's view from the CLI: the backfill runs to the end.
    let mut backfilled = false;
    for _ in 0..120 {
        let status = app.cli(&["records", "status", "--tenant", "sunrise"]).await;
        assert!(status.status.success(), "{status:?}");
        let text = String::from_utf8_lossy(&status.stdout).into_owned();
        if text.contains("backfilled") {
            assert!(text.contains("17/17"), "{text}");
            backfilled = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(
        backfilled,
        "the backfill did not finish; log:\n{}",
        app.logs()
    );

    // Signed in as the patient.
    let me = sign_in(&app, EMAIL, &totp).await;

    let fresh = query(
        &app,
        &me,
        "{ recordFreshness { linked stale lastSyncedAt } }",
    )
    .await;
    assert_eq!(fresh["recordFreshness"]["linked"], true);
    assert_eq!(fresh["recordFreshness"]["stale"], false);

    // Every category of the record is there.
    for category in [
        "NOTE",
        "LAB",
        "VITAL",
        "MEDICATION",
        "ALLERGY",
        "IMMUNIZATION",
        "PROBLEM",
        "CARE_PLAN",
        "VISIT",
        "IMAGING",
        "PROCEDURE",
        "BILLING",
    ] {
        let page = query(
            &app,
            &me,
            &format!("{{ recordItems(category: {category}, first: 5) {{ items {{ id title status resourceType releasedAt }} }} }}"),
        )
        .await;
        let items = page["recordItems"]["items"].as_array().unwrap();
        assert!(!items.is_empty(), "no {category} items");
        assert!(items.iter().all(|i| i["releasedAt"].is_string()));
    }
    // A note in full, its text decoded.
    let notes = query(
        &app,
        &me,
        "{ recordItems(category: NOTE, first: 50) { items { id resourceType } } }",
    )
    .await;
    let mut texts = 0;
    for note in notes["recordItems"]["items"].as_array().unwrap() {
        let detail = query(
            &app,
            &me,
            &format!(
                "{{ recordItem(id: \"{}\") {{ attachments {{ contentType text }} }} }}",
                note["id"].as_str().unwrap()
            ),
        )
        .await;
        texts += detail["recordItem"]["attachments"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["text"].as_str().is_some_and(|t| t.len() > 40))
            .count();
    }
    assert!(texts >= 5, "notes in full: {texts}");

    // Labs with values, ranges and flags, and trends by analyte.
    let labs = query(&app, &me, "{ labResults(first: 50) { results { code name value unit referenceRange flag } } labTrends { code results { value } chartSvg } }").await;
    let results = labs["labResults"]["results"].as_array().unwrap();
    assert!(results.iter().any(|r| r["flag"] == "H"));
    assert!(
        results
            .iter()
            .all(|r| r["unit"].is_string() && r["referenceRange"].is_string())
    );
    let trends = labs["labTrends"].as_array().unwrap();
    assert!(
        trends
            .iter()
            .any(|t| t["code"] == "2345-7" && t["results"].as_array().unwrap().len() >= 4)
    );
    let glucose = trends.iter().find(|t| t["code"] == "2345-7").unwrap();
    let chart = glucose["chartSvg"].as_str().unwrap();
    assert!(
        chart.starts_with("<svg") && chart.contains(r#"role="img""#),
        "{chart}"
    );

    // "Download my record": everything, as one FHIR Bundle.
    let download = query(&app, &me, "{ recordBundle }").await;
    let bundle = &download["recordBundle"];
    assert_eq!(bundle["type"], "collection");
    assert!(
        bundle["entry"].as_array().unwrap().len() >= 120,
        "{}",
        bundle["total"]
    );

    // The sandbox finalizes a pending result every second and notifies: it shows up.
    let finalized_since = |labs: &Value| {
        labs["labResults"]["results"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["item"]["finalizedAt"].as_str() > Some("2026-12-03"))
            .count()
    };
    let recent = "{ labResults(first: 200) { results { item { finalizedAt releasedAt } } } }";
    let before = finalized_since(&query(&app, &me, recent).await);
    let mut appeared = false;
    for _ in 0..60 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        if finalized_since(&query(&app, &me, recent).await) > before {
            appeared = true;
            break;
        }
    }
    assert!(
        appeared,
        "no newly finalized result appeared; log:\n{}",
        app.logs()
    );
    assert!(app.logs().contains("EHR notification received"));

    // Notifications must carry the clinic's secret.
    let bundle = json!({"resourceType": "Bundle", "type": "history", "entry": [{"resource": {
    "resourceType": "Parameters", "parameter": [{"name": "notification-event", "part": [
        {"name": "focus", "valueReference": {"reference": "Observation/x"}},
        {"name": "additional-context", "valueReference": {"reference": "Patient/sbx-p0000"}}
    ]}]}}]})
    .to_string();
    assert_eq!(notify(&app, None, &bundle).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        notify(&app, Some("not-the-secret"), &bundle).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        notify(&app, Some(&secret), "{not json").await,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        notify(&app, Some(&secret), r#"{"resourceType": "Patient"}"#).await,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        notify(&app, Some(&secret), &bundle).await,
        StatusCode::ACCEPTED
    );
    assert!(!app.logs().contains(&secret), "the secret reached the log");

    // The admin's view through GraphQL needs an admin; the patient is refused.
    let refused = post(
        &app,
        HOST,
        "{ recordSync { queued } }",
        Some(&me.cookie),
        Some(&me.csrf),
    )
    .await;
    assert_eq!(refused.body["errors"][0]["extensions"]["code"], "FORBIDDEN");

    // The clinic's admin: the sync state, and withholding one item.
    let (admin_totp, _) = create_account(
        &app,
        "sunrise",
        "admin@example.org",
        "tenant_admin",
        PASSWORD,
    )
    .await;
    let admin = sign_in(&app, "admin@example.org", &admin_totp).await;
    let sync = query(&app, &admin, "{ recordSync { patients { patientId backfilledAt } queued failed errors latencyCount latencyP95Ms } }").await;
    let state = &sync["recordSync"];
    assert_eq!(state["patients"][0]["patientId"], patient.as_str());
    assert!(state["patients"][0]["backfilledAt"].is_string());
    assert_eq!(
        (state["failed"].as_u64(), state["errors"].as_u64()),
        (Some(0), Some(0))
    );
    assert!(state["latencyCount"].as_u64().unwrap() >= 1, "{state}");

    let item = query(
        &app,
        &me,
        "{ recordItems(category: IMAGING, first: 1) { items { id } } }",
    )
    .await["recordItems"]["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let withhold = |exception: &str, until: &str| {
        format!(
            "mutation {{ withholdRecord(input: {{ recordId: \"{item}\", {exception} \
             reason: \"The radiologist asked to discuss this finding in person first.\", \
             until: \"{until}\" }}) }}"
        )
    };
    let next_month = (SystemClock.now() + chrono::Duration::days(30))
        .format("%Y-%m-%d")
        .to_string();
    // Without an exception: not even a valid request.
    let missing = post(
        &app,
        HOST,
        &withhold("", &next_month),
        Some(&admin.cookie),
        Some(&admin.csrf),
    )
    .await;
    assert!(
        missing.body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("exception"),
        "{}",
        missing.body
    );
    let far = post(
        &app,
        HOST,
        &withhold("exception: PREVENTING_HARM,", "2099-01-01"),
        Some(&admin.cookie),
        Some(&admin.csrf),
    )
    .await;
    assert_eq!(
        far.body["errors"][0]["extensions"]["code"], "VALIDATION_FAILED",
        "at most a year"
    );
    // The patient cannot withhold.
    let by_patient = post(
        &app,
        HOST,
        &withhold("exception: PRIVACY,", &next_month),
        Some(&me.cookie),
        Some(&me.csrf),
    )
    .await;
    assert_eq!(
        by_patient.body["errors"][0]["extensions"]["code"],
        "FORBIDDEN"
    );

    let held = query(
        &app,
        &admin,
        &withhold("exception: PREVENTING_HARM,", &next_month),
    )
    .await;
    let withholding = held["withholdRecord"].as_str().unwrap().to_owned();
    let open_item = format!("{{ recordItem(id: \"{item}\") {{ item {{ id }} }} }}");
    let hidden = post(&app, HOST, &open_item, Some(&me.cookie), Some(&me.csrf)).await;
    assert_eq!(hidden.body["errors"][0]["extensions"]["code"], "NOT_FOUND");
    let listed = query(
        &app,
        &admin,
        "{ withholdings { id exception citation reason releasedAt } }",
    )
    .await;
    assert_eq!(listed["withholdings"][0]["exception"], "PREVENTING_HARM");
    assert_eq!(listed["withholdings"][0]["citation"], "45 CFR 171.201");
    query(
        &app,
        &admin,
        &format!("mutation {{ releaseWithholding(id: \"{withholding}\") }}"),
    )
    .await;
    query(&app, &me, &open_item).await;
}

/// Signs in with the password and a code from the authenticator.
async fn sign_in(app: &TestApp, email: &str, totp: &str) -> Signed {
    let (cookie, csrf) = signed_in(app, HOST, email, PASSWORD, totp).await;
    Signed { cookie, csrf }
}

#[tokio::test]
async fn the_release_policy_refuses_holding_results_for_review() {
    let app = TestApp::builder()
        .tenant("sunrise", "Sunrise Family Clinic")
        .start()
        .await;
    let key = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        key.path(),
        "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let set = app
        .cli(&[
            "connector",
            "set",
            "--tenant",
            "sunrise",
            "--vendor",
            "epic",
            "--base-url",
            "https://fhir.example.org/api/FHIR/R4",
            "--token-url",
            "https://fhir.example.org/oauth2/token",
            "--client-id",
            "portico",
            "--private-key-file",
            key.path().to_str().unwrap(),
            "--release",
            "hold-until-reviewed",
        ])
        .await;
    assert!(!set.status.success());
    let stderr = String::from_utf8_lossy(&set.stderr);
    assert!(stderr.contains("information blocking"), "{stderr}");
    let show = app.cli(&["connector", "show", "--tenant", "sunrise"]).await;
    assert!(
        !String::from_utf8_lossy(&show.stdout).contains("hold"),
        "nothing was saved"
    );

    // The sandbox exists only in development.
    let sandbox = app
        .cli(&["connector", "sandbox", "--tenant", "sunrise"])
        .await;
    assert!(!sandbox.status.success());
    let (status, _) = app.graphql(HOST, "{ __typename }").await;
    assert_eq!(status, StatusCode::OK);
    let outside = app
        .request(reqwest::Method::GET, "127.0.0.1", "/sandbox/fhir/metadata")
        .send()
        .await
        .unwrap();
    assert_eq!(outside.status(), StatusCode::NOT_FOUND);
}
