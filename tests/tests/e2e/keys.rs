//! Each tenant's key, from the binary: the local root key file, the AWS KMS provider
//! against the emulator, rotation and offboarding from the CLI.

use std::os::unix::fs::PermissionsExt;

use portico_tests::{TestApp, moto};
use reqwest::StatusCode;
use serde_json::Value;

const QUERY: &str = "{ tenant { slug displayName } }";

#[tokio::test]
async fn the_local_root_key_is_created_private_and_a_readable_one_is_refused() {
    let app = TestApp::builder()
        .tenant("sunrise", "Sunrise Family Clinic")
        .start()
        .await;
    let root = app.data_dir().join("root.key");

    let mode = std::fs::metadata(&root).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o644)).unwrap();
    let output = app.cli(&["tenant", "list"]).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr.contains("keys.local.root_key_file") && stderr.contains("chmod 600"),
        "{stderr}"
    );
}

#[tokio::test]
async fn tenants_get_their_keys_from_aws_kms_when_configured() {
    let slug = format!("aws{}", std::process::id());
    let app = TestApp::builder()
        .env("PORTICO_KEYS__PROVIDER", "aws")
        .env("PORTICO_KEYS__AWS__PLATFORM_ROLE_ARN", moto::PLATFORM_ROLE)
        .envs(moto::sdk_env(&moto::shared_url()))
        .tenant(&slug, "Sunrise Family Clinic")
        .start()
        .await;

    let (status, body) = app.graphql(&format!("{slug}.localhost"), QUERY).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["tenant"]["slug"], slug.as_str());

    // The key is in the emulator, under the tenant's alias.
    let aliases: Value = reqwest::Client::new()
        .post(moto::shared_url())
        .header("x-amz-target", "TrentService.ListAliases")
        .header("content-type", "application/x-amz-json-1.1")
        .header(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=testing/20261203/us-east-1/kms/aws4_request",
        )
        .body("{}")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let wanted = format!("alias/portico/tenant/{slug}");
    assert!(
        aliases.to_string().contains(&wanted),
        "{wanted} is not in {aliases}"
    );

    assert!(
        app.cli(&["keys", "rotate", "--tenant", &slug])
            .await
            .status
            .success()
    );
}

#[tokio::test]
async fn keys_rotate_and_rewrap_from_the_cli() {
    let app = TestApp::builder()
        .tenant("sunrise", "Sunrise Family Clinic")
        .start()
        .await;

    let rotated = app.cli(&["keys", "rotate", "--tenant", "sunrise"]).await;
    assert!(
        rotated.status.success(),
        "{}",
        String::from_utf8_lossy(&rotated.stderr)
    );
    let rewrapped = app.cli(&["keys", "rewrap", "--tenant", "sunrise"]).await;
    assert!(
        rewrapped.status.success(),
        "{}",
        String::from_utf8_lossy(&rewrapped.stderr)
    );
    assert!(String::from_utf8_lossy(&rewrapped.stdout).contains("re-wrapped 0 data keys"));

    let unknown = app.cli(&["keys", "rotate", "--tenant", "nosuch"]).await;
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no such tenant"));
}

#[tokio::test]
async fn offboarding_needs_confirmation_then_closes_the_portal_for_good() {
    let app = TestApp::builder()
        .env("PORTICO_TENANCY__CACHE_TTL_SECS", "1")
        .tenant("sunrise", "Sunrise Family Clinic")
        .start()
        .await;

    let unconfirmed = app.cli(&["tenant", "offboard", "--slug", "sunrise"]).await;
    assert!(!unconfirmed.status.success());
    assert!(String::from_utf8_lossy(&unconfirmed.stderr).contains("--yes"));
    let (status, _) = app.graphql("sunrise.localhost", QUERY).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "an unconfirmed offboarding changed something"
    );

    let too_short = app
        .cli(&[
            "tenant",
            "offboard",
            "--slug",
            "sunrise",
            "--deletion-window-days",
            "3",
            "--yes",
        ])
        .await;
    assert!(!too_short.status.success());

    let done = app
        .cli(&["tenant", "offboard", "--slug", "sunrise", "--yes"])
        .await;
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    for _ in 0..150 {
        if app.graphql("sunrise.localhost", QUERY).await.0 == StatusCode::NOT_FOUND {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        app.graphql("sunrise.localhost", QUERY).await.0,
        StatusCode::NOT_FOUND
    );

    let resumed = app.cli(&["tenant", "resume", "--slug", "sunrise"]).await;
    assert!(
        !resumed.status.success(),
        "an offboarded tenant was resumed"
    );
}
