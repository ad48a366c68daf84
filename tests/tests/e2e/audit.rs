//! The audit trail from the binary: tenant lifecycle events in each clinic's chain,
//! `portico audit checkpoint | verify | export`, and verification failing after tampering.

use std::os::unix::fs::PermissionsExt;

use portico_tests::TestApp;
use sea_orm::{ConnectionTrait, Database, DbBackend};
use serde_json::Value;

fn stdout(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test]
async fn verify_is_green_on_a_fresh_clinic_and_red_after_tampering() {
    let app = TestApp::builder()
        .tenant("sunrise", "Sunrise Family Clinic")
        .start()
        .await;
    for args in [
        ["tenant", "suspend", "--slug", "sunrise"],
        ["tenant", "resume", "--slug", "sunrise"],
    ] {
        assert!(app.cli(&args).await.status.success());
    }

    let checkpoint = app.cli(&["audit", "checkpoint"]).await;
    assert!(checkpoint.status.success(), "{checkpoint:?}");
    assert!(
        stdout(&checkpoint).contains("sunrise: checkpoint at event 3"),
        "{}",
        stdout(&checkpoint)
    );
    let archived: Vec<_> = walk(&app.data_dir().join("audit-archive"));
    assert_eq!(archived.len(), 1, "{archived:?}");
    let mode = std::fs::metadata(&archived[0])
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o400);

    let verify = app.cli(&["audit", "verify"]).await;
    assert!(verify.status.success(), "{verify:?}");
    assert!(
        stdout(&verify).contains(
            "sunrise: ok: 3 events, 1 checkpoint, 0 segments; 0 events since the last checkpoint"
        ),
        "{}",
        stdout(&verify)
    );

    // An attacker with the database file rewrites who suspended the clinic.
    let db = Database::connect(app.owner_url()).await.unwrap();
    let bypass = match db.get_database_backend() {
        DbBackend::Postgres => "ALTER TABLE audit_events DISABLE TRIGGER USER",
        _ => "DROP TRIGGER audit_events_no_update",
    };
    db.execute_unprepared(bypass).await.unwrap();
    db.execute_unprepared("UPDATE audit_events SET actor_kind = 'system' WHERE seq = 2")
        .await
        .unwrap();
    db.close().await.unwrap();

    let verify = app.cli(&["audit", "verify", "--tenant", "sunrise"]).await;
    assert_eq!(verify.status.code(), Some(1), "{verify:?}");
    let out = stdout(&verify);
    assert!(out.contains("sunrise: BROKEN at event 2"), "{out}");
    assert!(
        String::from_utf8_lossy(&verify.stderr).contains("failed verification"),
        "{verify:?}"
    );
}

#[tokio::test]
async fn export_writes_fhir_audit_events_and_is_itself_recorded() {
    let app = TestApp::builder()
        .tenant("sunrise", "Sunrise Family Clinic")
        .start()
        .await;
    let file = app.data_dir().join("audit.ndjson");

    let export = app
        .cli(&[
            "audit",
            "export",
            "--tenant",
            "sunrise",
            "--out",
            file.to_str().unwrap(),
        ])
        .await;

    assert!(export.status.success(), "{export:?}");
    let lines: Vec<Value> = std::fs::read_to_string(&file)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    for resource in &lines {
        assert_eq!(resource["resourceType"], "AuditEvent");
        assert!(resource["type"]["code"].is_string());
        assert!(resource["recorded"].is_string());
        assert_eq!(resource["agent"][0]["requestor"], true);
        assert_eq!(resource["source"]["observer"]["display"], "Portico");
    }
    // The clinic's creation, then the export itself, by the operator.
    assert_eq!(lines[0]["action"], "C");
    assert_eq!(
        lines[1]["agent"][0]["who"]["identifier"]["system"],
        "urn:portico:actor:operator"
    );

    let bad = app
        .cli(&[
            "audit",
            "export",
            "--tenant",
            "sunrise",
            "--from",
            "last tuesday",
        ])
        .await;
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("is not a time"),
        "{bad:?}"
    );
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

/// Creates a bucket in the emulator, as Terraform would, with or without Object Lock.
async fn bucket(url: &str, name: &str, object_lock: bool) {
    let mut request = reqwest::Client::new().put(format!("{url}/{name}"));
    if object_lock {
        request = request.header("x-amz-bucket-object-lock-enabled", "true");
    }
    let response = request.send().await.unwrap();
    assert!(response.status().is_success(), "{response:?}");
}

#[tokio::test]
async fn checkpoints_go_to_an_s3_bucket_under_object_lock_when_configured() {
    let url = portico_tests::moto::shared_url();
    let name = format!("portico-audit-{}", std::process::id());
    bucket(&url, &name, true).await;
    bucket(&url, &format!("{name}-unlocked"), false).await;
    let app = TestApp::builder()
        .env("PORTICO_AUDIT__ARCHIVE__PROVIDER", "s3")
        .env("PORTICO_AUDIT__ARCHIVE__BUCKET", &name)
        .env("PORTICO_AUDIT__ARCHIVE__PREFIX", "portico")
        .envs(portico_tests::moto::sdk_env(&url))
        .tenant("sunrise", "Sunrise Family Clinic")
        .start()
        .await;

    let checkpoint = app.cli(&["audit", "checkpoint"]).await;
    assert!(checkpoint.status.success(), "{checkpoint:?}");
    let verify = app.cli(&["audit", "verify"]).await;
    assert!(verify.status.success(), "{verify:?}");
    assert!(
        stdout(&verify).contains(&format!("archive: s3://{name}/portico/")),
        "{}",
        stdout(&verify)
    );
    assert!(
        stdout(&verify).contains("1 checkpoint,"),
        "{}",
        stdout(&verify)
    );

    // The object is in the bucket, locked in COMPLIANCE mode.
    let listing = reqwest::get(format!("{url}/{name}?list-type=2&prefix=portico/audit/"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let key = listing
        .split("<Key>")
        .nth(1)
        .and_then(|rest| rest.split("</Key>").next())
        .unwrap_or_else(|| panic!("no object: {listing}"))
        .to_owned();
    assert!(
        key.ends_with("/checkpoints/00000000000000000001.json"),
        "{key}"
    );
    let head = reqwest::Client::new()
        .head(format!("{url}/{name}/{key}"))
        // The emulator does not check signatures, only who is asking.
        .header(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=testing/20261203/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=0",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(head.headers()["x-amz-object-lock-mode"], "COMPLIANCE");
    // Six years (2,192 days) from when it was written, a moment before this `date`.
    let header = |name: &str| head.headers()[name].to_str().unwrap().to_owned();
    let until =
        chrono::DateTime::parse_from_rfc3339(&header("x-amz-object-lock-retain-until-date"))
            .unwrap();
    let now = chrono::DateTime::parse_from_rfc2822(&header("date")).unwrap();
    let days = (until - now).num_seconds() as f64 / 86_400.0;
    assert!((2191.99..=2192.0).contains(&days), "{until} vs {now}");

    // A bucket without Object Lock is refused, naming the setting.
    let unlocked = app
        .cli_with_env(
            &["audit", "verify"],
            &[(
                "PORTICO_AUDIT__ARCHIVE__BUCKET",
                &format!("{name}-unlocked"),
            )],
        )
        .await;
    assert_eq!(unlocked.status.code(), Some(1), "{unlocked:?}");
    let stderr = String::from_utf8_lossy(&unlocked.stderr);
    assert!(
        stderr.contains("audit.archive.bucket") && stderr.contains("Object Lock"),
        "{stderr}"
    );
}
