//! Resolving a request's tenant by host, custom domain and path; refusing unknown and
//! suspended tenants; managing tenants from the CLI.

use portico_tests::TestApp;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const TENANT_QUERY: &str = "{ tenant { slug displayName defaultLocale } }";

fn tenant_of(body: &Value) -> (&str, &str) {
    let tenant = &body["data"]["tenant"];
    (
        tenant["slug"].as_str().unwrap_or("?"),
        tenant["displayName"].as_str().unwrap_or("?"),
    )
}

#[tokio::test]
async fn each_tenant_host_sees_only_its_own_tenant() {
    let app = TestApp::builder()
        .tenant("sunrise", "Sunrise Family Clinic")
        .tenant("harbor", "Harbor Pediatrics")
        .start()
        .await;

    let (status, body) = app.graphql("sunrise.localhost:8080", TENANT_QUERY).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(tenant_of(&body), ("sunrise", "Sunrise Family Clinic"));
    assert_eq!(body["data"]["tenant"]["defaultLocale"], "en");

    let (_, body) = app.graphql("HARBOR.localhost", TENANT_QUERY).await;
    assert_eq!(tenant_of(&body), ("harbor", "Harbor Pediatrics"));
}

#[tokio::test]
async fn a_verified_custom_domain_reaches_its_tenant() {
    let app = TestApp::builder()
        .tenant_with_domain(
            "sunrise",
            "Sunrise Family Clinic",
            "portal.sunrise-clinic.example",
        )
        .start()
        .await;

    let (status, body) = app
        .graphql("portal.sunrise-clinic.example", TENANT_QUERY)
        .await;

    assert_eq!(status, StatusCode::OK);
    assert_eq!(tenant_of(&body), ("sunrise", "Sunrise Family Clinic"));
}

#[tokio::test]
async fn the_path_fallback_reaches_a_tenant_only_when_enabled() {
    let off = TestApp::builder()
        .tenant("sunrise", "Sunrise Family Clinic")
        .start()
        .await;
    let (status, _) = off
        .graphql_at("localhost", "/t/sunrise/graphql", TENANT_QUERY)
        .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "production mode must not serve /t/<slug>/"
    );

    let on = TestApp::builder()
        .env("PORTICO_TENANCY__PATH_FALLBACK", "true")
        .tenant("sunrise", "Sunrise Family Clinic")
        .start()
        .await;
    let (status, body) = on
        .graphql_at("127.0.0.1", "/t/sunrise/graphql", TENANT_QUERY)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(tenant_of(&body), ("sunrise", "Sunrise Family Clinic"));

    let (status, body) = on
        .graphql_at("127.0.0.1", "/t/nosuch/graphql", TENANT_QUERY)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "tenant_not_found");
}

#[tokio::test]
async fn an_unknown_tenant_is_not_found_and_the_platform_host_has_no_tenant() {
    let app = TestApp::builder()
        .tenant("sunrise", "Sunrise Family Clinic")
        .start()
        .await;

    for host in [
        "nosuch.localhost",
        "portal.unknown.example",
        "localhost",
        "127.0.0.1:8080",
    ] {
        let (status, body) = app.graphql(host, TENANT_QUERY).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{host}");
        assert_eq!(body["error"]["code"], "tenant_not_found", "{host}");
    }
}

#[tokio::test]
async fn a_malformed_host_is_a_bad_request() {
    let app = TestApp::builder()
        .tenant("sunrise", "Sunrise Family Clinic")
        .start()
        .await;

    for host in [
        "exa mple.localhost",
        "sun_rise.localhost",
        "a..localhost",
        "sunrise.localhost:http",
    ] {
        let response = app
            .request(Method::POST, host, "/graphql")
            .json(&json!({ "query": TENANT_QUERY }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{host}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "bad_host", "{host}");
    }
}

#[tokio::test]
async fn a_suspended_tenant_is_unavailable_until_resumed() {
    let app = TestApp::builder()
        .env("PORTICO_TENANCY__CACHE_TTL_SECS", "1")
        .tenant("sunrise", "Sunrise Family Clinic")
        .start()
        .await;
    let (status, _) = app.graphql("sunrise.localhost", TENANT_QUERY).await;
    assert_eq!(status, StatusCode::OK);

    let suspended = app.cli(&["tenant", "suspend", "--slug", "sunrise"]).await;
    assert!(suspended.status.success());
    // The CLI is another process: the server sees the change when its cache entry expires.
    let body = eventually(&app, StatusCode::SERVICE_UNAVAILABLE).await;
    assert_eq!(body["error"]["code"], "tenant_unavailable");

    let page = app
        .request(Method::GET, "sunrise.localhost", "/")
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        page.text()
            .await
            .unwrap()
            .contains("This portal is unavailable")
    );

    let resumed = app.cli(&["tenant", "resume", "--slug", "sunrise"]).await;
    assert!(resumed.status.success());
    eventually(&app, StatusCode::OK).await;
}

/// Polls the tenant query until it answers `status`, for at most 15 seconds.
async fn eventually(app: &TestApp, status: StatusCode) -> Value {
    for _ in 0..150 {
        let (got, body) = app.graphql("sunrise.localhost", TENANT_QUERY).await;
        if got == status {
            return body;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the tenant never answered {status}");
}

#[tokio::test]
async fn a_duplicate_slug_is_refused_and_nothing_is_half_created() {
    let app = TestApp::builder()
        .tenant("sunrise", "Sunrise Family Clinic")
        .start()
        .await;

    let duplicate = app
        .cli(&[
            "tenant",
            "create",
            "--slug",
            "sunrise",
            "--name",
            "Another",
            "--domain",
            "portal.another.example",
        ])
        .await;
    assert!(!duplicate.status.success());
    assert!(String::from_utf8_lossy(&duplicate.stderr).contains("already taken"));

    // The domain of the refused tenant was not kept: another tenant may claim it.
    let other = app
        .cli(&[
            "tenant",
            "create",
            "--slug",
            "harbor",
            "--name",
            "Harbor",
            "--domain",
            "portal.another.example",
        ])
        .await;
    assert!(
        other.status.success(),
        "{}",
        String::from_utf8_lossy(&other.stderr)
    );

    let listed = app.cli(&["tenant", "list", "--json"]).await;
    let tenants: Value = serde_json::from_slice(&listed.stdout).unwrap();
    let slugs: Vec<_> = tenants
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["slug"].as_str().unwrap())
        .collect();
    assert_eq!(slugs, ["harbor", "sunrise"]);
    assert_eq!(tenants[0]["domains"], json!(["portal.another.example"]));
}

#[tokio::test]
async fn bad_tenant_input_is_refused_with_a_reason() {
    let app = TestApp::builder().start().await;

    let cases: [(&[&str], &str); 4] = [
        (&["--slug", "Sunrise", "--name", "X"], "lowercase"),
        (&["--slug", "www", "--name", "X"], "reserved"),
        (&["--slug", "sunrise", "--name", "  "], "display name"),
        (
            &[
                "--slug",
                "sunrise",
                "--name",
                "X",
                "--domain",
                "not a domain",
            ],
            "domain",
        ),
    ];
    for (args, reason) in cases {
        let mut command = vec!["tenant", "create"];
        command.extend_from_slice(args);
        let output = app.cli(&command).await;
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?} was accepted");
        assert!(stderr.contains(reason), "{args:?}: {stderr}");
    }

    let listed = app.cli(&["tenant", "list", "--json"]).await;
    assert_eq!(
        serde_json::from_slice::<Value>(&listed.stdout).unwrap(),
        json!([])
    );
}
