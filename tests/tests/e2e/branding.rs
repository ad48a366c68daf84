//! A clinic's branding at runtime: set from the CLI and by the clinic's admin through
//! GraphQL, served as CSS custom properties and a logo on the next request, with no
//! restart; a colour that fails WCAG AA contrast refused with its ratio and a shade that
//! passes.

use portico_tests::TestApp;
use reqwest::StatusCode;

use crate::identity::{create_account, post, signed_in};

const HOST: &str = "sunrise.localhost";
const PASSWORD: &str = "saffron harbor 2026 kite";

async fn css(app: &TestApp) -> String {
    let response = app
        .request(reqwest::Method::GET, HOST, "/branding.css")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/css")
    );
    response.text().await.unwrap()
}

#[tokio::test]
async fn branding_is_set_at_runtime_and_checked_for_contrast() {
    let app = TestApp::builder()
        .env("PORTICO_MODE", "development")
        .tenant("sunrise", "Sunrise Family Clinic")
        .start()
        .await;
    // Portico's own until the clinic sets one.
    assert!(css(&app).await.contains("--portico-primary: #1F4E8C;"));
    let logo = app
        .request(reqwest::Method::GET, HOST, "/branding/logo")
        .send()
        .await
        .unwrap();
    assert_eq!(logo.status(), StatusCode::NOT_FOUND);

    // A gold that fails AA on white: refused, with the ratio and a darker shade.
    let refused = app
        .cli(&[
            "tenant",
            "branding",
            "--slug",
            "sunrise",
            "--primary",
            "#FFD700",
        ])
        .await;
    assert_eq!(refused.status.code(), Some(1), "{refused:?}");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("1.40:1") && stderr.contains("4.5:1"),
        "{stderr}"
    );
    assert!(css(&app).await.contains("#1F4E8C"), "nothing was saved");

    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("logo.png");
    std::fs::write(&png, b"\x89PNG\r\n\x1a\n-not-a-real-image-but-a-png-header").unwrap();
    let set = app
        .cli(&[
            "tenant",
            "branding",
            "--slug",
            "sunrise",
            "--primary",
            "#7A4B00",
            "--accent",
            "#0B5E8A",
            "--support-phone",
            "+1 503 555 0100",
            "--support-hours",
            "Mon–Fri 8am–5pm",
            "--logo",
            png.to_str().unwrap(),
        ])
        .await;
    assert!(set.status.success(), "{set:?}");
    // The next request shows it: no restart.
    let sheet = css(&app).await;
    assert!(sheet.contains("--portico-primary: #7A4B00;"), "{sheet}");
    assert!(sheet.contains("--portico-accent: #0B5E8A;"), "{sheet}");
    let logo = app
        .request(reqwest::Method::GET, HOST, "/branding/logo")
        .send()
        .await
        .unwrap();
    assert_eq!(logo.headers()["content-type"], "image/png");
    let (_, public) = app
        .graphql(HOST, "{ tenant { branding { primaryColor accentColor supportPhone supportHours logoUrl } } }")
        .await;
    let branding = &public["data"]["tenant"]["branding"];
    assert_eq!(branding["supportHours"], "Mon–Fri 8am–5pm");
    assert_eq!(branding["logoUrl"], "/branding/logo");

    // The clinic's admin changes it through GraphQL; a patient may not.
    let (admin_totp, _) = create_account(
        &app,
        "sunrise",
        "admin@example.org",
        "tenant_admin",
        PASSWORD,
    )
    .await;
    let admin = signed_in(&app, HOST, "admin@example.org", PASSWORD, &admin_totp).await;
    let update = |primary: &str| {
        format!(
            "mutation {{ updateBranding(input: {{ primaryColor: \"{primary}\", accentColor: \"#0B5E8A\" }}) {{ primaryColor }} }}"
        )
    };
    let failing = post(
        &app,
        HOST,
        &update("#FFD700"),
        Some(&admin.0),
        Some(&admin.1),
    )
    .await;
    assert_eq!(
        failing.body["errors"][0]["extensions"]["code"],
        "VALIDATION_FAILED"
    );
    assert!(
        failing.body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("contrast")
    );
    let changed = post(
        &app,
        HOST,
        &update("#2D5016"),
        Some(&admin.0),
        Some(&admin.1),
    )
    .await;
    assert_eq!(
        changed.body["data"]["updateBranding"]["primaryColor"], "#2D5016",
        "{}",
        changed.body
    );
    assert!(css(&app).await.contains("--portico-primary: #2D5016;"));

    let (patient_totp, _) =
        create_account(&app, "sunrise", "pat@example.org", "patient", PASSWORD).await;
    let patient = signed_in(&app, HOST, "pat@example.org", PASSWORD, &patient_totp).await;
    let denied = post(
        &app,
        HOST,
        &update("#2D5016"),
        Some(&patient.0),
        Some(&patient.1),
    )
    .await;
    assert_eq!(denied.body["errors"][0]["extensions"]["code"], "FORBIDDEN");
}
