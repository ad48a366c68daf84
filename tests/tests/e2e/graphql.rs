//! The GraphQL endpoint refuses malformed and expensive requests with stable codes, and
//! exposes its schema only in development.

use portico_tests::TestApp;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const HOST: &str = "sunrise.localhost";

async fn app() -> TestApp {
    TestApp::builder()
        .env("PORTICO_GRAPHQL__MAX_DEPTH", "6")
        .env("PORTICO_GRAPHQL__MAX_COMPLEXITY", "40")
        .env("PORTICO_GRAPHQL__MAX_ALIASES", "5")
        .env("PORTICO_GRAPHQL__MAX_BATCH", "2")
        .env("PORTICO_HTTP__BODY_LIMIT_BYTES", "4096")
        .tenant("sunrise", "Sunrise Family Clinic")
        .start()
        .await
}

fn first_code(body: &Value) -> &str {
    body["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or("<none>")
}

async fn post(app: &TestApp, body: &Value) -> (StatusCode, Value) {
    let response = app
        .request(Method::POST, HOST, "/graphql")
        .json(body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap())
}

#[tokio::test]
async fn a_too_deep_query_is_refused_with_depth_limit() {
    let app = app().await;
    // The schema has no nesting of its own yet, so depth is reached through the
    // introspection types, which validation measures even where introspection is off.
    let query =
        "{ __schema { types { fields { type { ofType { ofType { ofType { name } } } } } } } }";
    let (status, body) = app.graphql(HOST, query).await;

    assert_eq!(status, StatusCode::OK);
    assert_eq!(first_code(&body), "DEPTH_LIMIT", "{body}");
}

#[tokio::test]
async fn a_too_complex_query_is_refused_with_complexity_limit() {
    let app = app().await;
    let fields = "slug displayName defaultLocale ".repeat(15);
    let query = format!("{{ tenant {{ {fields} }} }}");

    let (_, body) = app.graphql(HOST, &query).await;

    assert_eq!(first_code(&body), "COMPLEXITY_LIMIT", "{body}");
}

#[tokio::test]
async fn too_many_aliases_are_refused_with_alias_limit() {
    let app = app().await;
    let aliases: String = (0..6)
        .map(|i| format!("t{i}: tenant {{ slug }} "))
        .collect();

    let (_, body) = app.graphql(HOST, &format!("{{ {aliases} }}")).await;

    assert_eq!(first_code(&body), "ALIAS_LIMIT", "{body}");
}

#[tokio::test]
async fn a_batch_over_the_limit_is_refused_and_one_within_it_runs() {
    let app = app().await;
    let one = json!({ "query": "{ tenant { slug } }" });

    let (status, body) = post(&app, &json!([one, one, one])).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(first_code(&body), "BATCH_LIMIT");

    let (status, body) = post(&app, &json!([one, one])).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body[1]["data"]["tenant"]["slug"], "sunrise");
}

#[tokio::test]
async fn malformed_json_is_a_bad_request_that_does_not_echo_the_body() {
    let app = app().await;

    for body in ["{\"query\": ", "[]", "\"just a string\"", "{\"query\": 42}"] {
        let response = app
            .request(Method::POST, HOST, "/graphql")
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{body}");
        let json: Value = response.json().await.unwrap();
        assert_eq!(first_code(&json), "BAD_REQUEST", "{body}");
    }
}

#[tokio::test]
async fn a_syntax_error_is_a_parse_error() {
    let app = app().await;

    let (_, body) = app.graphql(HOST, "{ tenant { slug ").await;

    assert_eq!(first_code(&body), "PARSE_ERROR");
}

#[tokio::test]
async fn a_body_that_is_not_json_is_refused() {
    let app = app().await;

    let response = app
        .request(Method::POST, HOST, "/graphql")
        .header("content-type", "application/x-www-form-urlencoded")
        .body("query=%7B+tenant+%7B+slug+%7D+%7D")
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unsupported_media_type");
}

#[tokio::test]
async fn an_oversized_body_is_refused_whether_its_length_is_declared_or_not() {
    let app = app().await;
    let padding = "x".repeat(8 * 1024);
    let body = json!({ "query": "{ tenant { slug } }", "variables": { "padding": padding } });

    let (status, json) = post(&app, &body).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(json["error"]["code"], "payload_too_large");

    // Chunked, with no Content-Length: the limit applies while reading.
    let chunks: Vec<Result<String, std::io::Error>> = vec![Ok(body.to_string())];
    let response = app
        .request(Method::POST, HOST, "/graphql")
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn introspection_is_off_in_production_and_on_in_development() {
    let query = "{ __schema { queryType { name } } }";

    let production = app().await;
    let (_, body) = production.graphql(HOST, query).await;
    assert!(
        body["data"]["__schema"].is_null(),
        "introspection answered in production: {body}"
    );

    let development = TestApp::builder()
        .env("PORTICO_MODE", "development")
        .tenant("sunrise", "Sunrise Family Clinic")
        .start()
        .await;
    let (_, body) = development.graphql(HOST, query).await;
    assert_eq!(
        body["data"]["__schema"]["queryType"]["name"], "Query",
        "{body}"
    );
}

#[tokio::test]
async fn graphiql_is_served_only_in_development() {
    let production = app().await;
    let response = production
        .request(Method::GET, HOST, "/graphql")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);

    let development = TestApp::builder()
        .env("PORTICO_MODE", "development")
        .tenant("sunrise", "Sunrise Family Clinic")
        .start()
        .await;
    let response = development
        .request(Method::GET, HOST, "/graphql")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.text().await.unwrap().contains("graphiql"));
}

#[tokio::test]
async fn an_unknown_field_gets_no_suggestion() {
    let app = app().await;

    let (_, body) = app.graphql(HOST, "{ tenant { slu } }").await;

    assert_eq!(first_code(&body), "VALIDATION_FAILED");
    assert!(!body.to_string().contains("Did you mean"), "{body}");
}

#[tokio::test]
async fn another_method_is_refused_with_a_code() {
    let app = app().await;

    let response = app
        .request(Method::PUT, HOST, "/graphql")
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "method_not_allowed");
}
