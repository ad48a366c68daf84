//! A clinic's EHR connector from the binary, against sekmet-fhir (a FHIR R4 server nobody
//! here wrote, with SMART Backend Services): set with a private key or a client secret,
//! shown without its secrets, tested step by step, refused when malformed — and sealed:
//! the private key is nowhere in the database file.

use portico_tests::TestApp;
use portico_tests::sekmet::{CLIENT_SECRET, KEY_CLIENT, SECRET_CLIENT, Sekmet};

async fn app() -> TestApp {
    TestApp::builder()
        .tenant("sunrise", "Sunrise Family Clinic")
        .start()
        .await
}

fn text(output: &std::process::Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn a_connector_with_a_private_key_fetches_a_token_and_the_capability_statement() {
    let ehr = Sekmet::start().await;
    let app = app().await;
    let key = ehr.private_key();
    let key_path = key.to_str().unwrap();
    let (fhir, token) = (ehr.fhir(), ehr.token_url());
    let set = |client_id: &'static str| {
        vec![
            "connector",
            "set",
            "--tenant",
            "sunrise",
            "--vendor",
            "fhir-r4",
            "--base-url",
            fhir.as_str(),
            "--token-url",
            token.as_str(),
            "--client-id",
            client_id,
            "--private-key-file",
            key_path,
            "--key-id",
            "portico-1",
        ]
    };

    let output = app.cli(&set(KEY_CLIENT)).await;
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains("notification secret (shown once"),
        "{stdout}"
    );

    let shown = app.cli(&["connector", "show", "--tenant", "sunrise"]).await;
    let (stdout, _) = text(&shown);
    assert!(
        stdout.contains(KEY_CLIENT) && stdout.contains(&fhir),
        "{stdout}"
    );
    assert!(
        stdout.contains("backend-services") && stdout.contains("RS384"),
        "{stdout}"
    );
    assert!(!stdout.contains("PRIVATE KEY"), "{stdout}");

    let tested = app.cli(&["connector", "test", "--tenant", "sunrise"]).await;
    let (stdout, stderr) = text(&tested);
    assert!(tested.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("token:    ok"), "{stdout}");
    assert!(stdout.contains("metadata: FHIR 4.0.1"), "{stdout}");
    assert!(stdout.contains("the connector works"), "{stdout}");

    // A client the EHR does not know: the token step fails, and says how.
    assert!(app.cli(&set("stranger")).await.status.success());
    let tested = app.cli(&["connector", "test", "--tenant", "sunrise"]).await;
    let (stdout, stderr) = text(&tested);
    assert_eq!(tested.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stderr.contains("token from"), "{stderr}");
    assert!(
        stderr.contains("refused the client (HTTP 401, invalid_client)"),
        "{stderr}"
    );

    // The private key is sealed: not a line of it in the database file.
    let pem = std::fs::read_to_string(&key).unwrap();
    let line = pem.lines().nth(1).unwrap();
    for entry in std::fs::read_dir(app.data_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            let bytes = std::fs::read(&path).unwrap();
            let found = bytes
                .windows(line.len())
                .any(|window| window == line.as_bytes());
            assert!(!found, "the private key is readable in {}", path.display());
        }
    }
    assert!(!app.logs().contains(line));
}

#[tokio::test]
async fn a_connector_with_a_client_secret_works_and_a_wrong_secret_is_refused() {
    let ehr = Sekmet::start().await;
    let app = app().await;
    let (fhir, token) = (ehr.fhir(), ehr.token_url());
    let notification = ehr.file("notify.secret", &"n".repeat(48));
    for (secret, works) in [
        (CLIENT_SECRET, true),
        ("not-the-right-secret-at-all", false),
    ] {
        let file = ehr.file("client.secret", secret);
        let set = app
            .cli(&[
                "connector",
                "set",
                "--tenant",
                "sunrise",
                "--vendor",
                "epic",
                "--base-url",
                &fhir,
                "--token-url",
                &token,
                "--client-id",
                SECRET_CLIENT,
                "--client-secret-file",
                file.to_str().unwrap(),
                "--notification-secret-file",
                notification.to_str().unwrap(),
            ])
            .await;
        let (stdout, stderr) = text(&set);
        assert!(set.status.success(), "{stdout}{stderr}");
        assert!(!stdout.contains("notification secret"), "{stdout}");
        let tested = app.cli(&["connector", "test", "--tenant", "sunrise"]).await;
        let (stdout, stderr) = text(&tested);
        assert_eq!(tested.status.success(), works, "{stdout}{stderr}");
        assert!(!stdout.contains(secret) && !stderr.contains(secret));
    }
}

#[tokio::test]
async fn bad_connectors_are_refused_with_the_field_named_and_an_absent_server_is_reported() {
    let mut ehr = Sekmet::start().await;
    let app = app().await;
    let key = ehr.private_key();
    let key = key.to_str().unwrap();
    let token = ehr.token_url();
    let with_vendor = |url: &str, vendor: &str| {
        vec![
            "connector".to_owned(),
            "set".to_owned(),
            "--tenant".to_owned(),
            "sunrise".to_owned(),
            "--vendor".to_owned(),
            vendor.to_owned(),
            "--base-url".to_owned(),
            url.to_owned(),
            "--token-url".to_owned(),
            token.clone(),
            "--client-id".to_owned(),
            KEY_CLIENT.to_owned(),
            "--private-key-file".to_owned(),
            key.to_owned(),
        ]
    };
    let base = |url: &str| with_vendor(url, "fhir-r4");
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            base("http://fhir.example.org/r4"),
            "base_url: must use https",
        ),
        (
            with_vendor(&ehr.fhir(), "cerner"),
            "--vendor \"cerner\" is not one of",
        ),
        (
            [
                base(&ehr.fhir()),
                vec!["--algorithm".into(), "HS256".into()],
            ]
            .concat(),
            "--algorithm \"HS256\" is not RS384 or ES384",
        ),
        (
            [
                base(&ehr.fhir()),
                vec!["--poll-interval-secs".into(), "5".into()],
            ]
            .concat(),
            "poll_interval_secs: must be 30 to 86400",
        ),
        (
            [
                base(&ehr.fhir()),
                vec!["--scopes".into(), "patient/*.read".into()],
            ]
            .concat(),
            "scopes:",
        ),
        (
            with_vendor(&ehr.fhir(), "athenahealth"),
            "practice_id: athenahealth needs the practice id",
        ),
    ];
    for (args, expected) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let output = app.cli(&args).await;
        let (_, stderr) = text(&output);
        assert_eq!(output.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
    let missing = app
        .cli(&[
            "connector",
            "set",
            "--tenant",
            "sunrise",
            "--vendor",
            "fhir-r4",
            "--base-url",
            &ehr.fhir(),
            "--token-url",
            &token,
            "--client-id",
            KEY_CLIENT,
            "--private-key-file",
            "/nonexistent/key.pem",
        ])
        .await;
    assert!(text(&missing).1.contains("--private-key-file: cannot read"));
    let not_a_key = ehr.file("not-a-key.pem", "hello");
    let output = app
        .cli(&[
            "connector",
            "set",
            "--tenant",
            "sunrise",
            "--vendor",
            "fhir-r4",
            "--base-url",
            &ehr.fhir(),
            "--token-url",
            &token,
            "--client-id",
            KEY_CLIENT,
            "--private-key-file",
            not_a_key.to_str().unwrap(),
        ])
        .await;
    assert!(
        text(&output)
            .1
            .contains("private_key: must be a PEM private key")
    );
    let untested = app.cli(&["connector", "test", "--tenant", "sunrise"]).await;
    assert!(text(&untested).1.contains("has no EHR connector"));

    // Set well, then the server goes away: the test says the token endpoint is unreachable.
    let args = base(&ehr.fhir());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    assert!(app.cli(&args).await.status.success());
    ehr.stop().await;
    let tested = app.cli(&["connector", "test", "--tenant", "sunrise"]).await;
    let (_, stderr) = text(&tested);
    assert_eq!(tested.status.code(), Some(1));
    assert!(stderr.contains("could not be reached"), "{stderr}");
}
