//! Liveness and readiness answer on any address.

use portico_tests::TestApp;
use reqwest::{Method, StatusCode};
use serde_json::Value;

#[tokio::test]
async fn health_and_readiness_answer_on_the_platform_host_and_tenant_hosts() {
    let app = TestApp::builder()
        .tenant("sunrise", "Sunrise Family Clinic")
        .start()
        .await;

    for host in [
        "localhost",
        "sunrise.localhost",
        "nosuch.localhost",
        "127.0.0.1",
    ] {
        let health = app
            .request(Method::GET, host, "/healthz")
            .send()
            .await
            .unwrap();
        assert_eq!(health.status(), StatusCode::OK, "healthz on {host}");

        let ready = app
            .request(Method::GET, host, "/readyz")
            .send()
            .await
            .unwrap();
        assert_eq!(ready.status(), StatusCode::OK, "readyz on {host}");
        let body: Value = ready.json().await.unwrap();
        assert_eq!(body["status"], "ready");
    }
}

#[tokio::test]
async fn every_response_carries_the_security_headers_and_a_request_id() {
    let app = TestApp::builder().start().await;

    let response = app
        .request(Method::GET, "localhost", "/healthz")
        .send()
        .await
        .unwrap();
    let headers = response.headers();

    assert!(
        headers["strict-transport-security"]
            .to_str()
            .unwrap()
            .contains("max-age=")
    );
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"));
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["referrer-policy"], "no-referrer");
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(headers["x-request-id"].to_str().unwrap().len(), 36);
}

#[tokio::test]
async fn a_client_supplied_request_id_is_replaced() {
    let app = TestApp::builder().start().await;

    let response = app
        .request(Method::GET, "localhost", "/healthz")
        .header("x-request-id", "injected\tlog text")
        .send()
        .await
        .unwrap();

    assert_ne!(response.headers()["x-request-id"], "injected\tlog text");
}
