//! SIGTERM stops the server gracefully: new connections are refused, in-flight requests
//! finish.

use std::time::Duration;

use portico_tests::TestApp;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::test]
async fn sigterm_lets_an_in_flight_request_finish_then_exits_cleanly() {
    let mut app = TestApp::builder()
        .tenant("sunrise", "Sunrise Family Clinic")
        .start()
        .await;
    let body = br#"{"query":"{ tenant { slug displayName } }"}"#;
    let (head, tail) = body.split_at(10);

    // A request that is in flight: headers and part of the body sent, the rest held back.
    let mut stream = TcpStream::connect(app.address).await.unwrap();
    let headers = format!(
        "POST /graphql HTTP/1.1\r\nHost: sunrise.localhost\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(headers.as_bytes()).await.unwrap();
    stream.write_all(head).await.unwrap();
    stream.flush().await.unwrap();
    // Let the server start reading it before the signal arrives.
    app.wait_for_log("\"message\":\"listening\"").await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    app.terminate().await;
    app.wait_for_log("shutting down").await;
    assert!(
        listener_closed(&app).await,
        "new connections are still accepted after SIGTERM"
    );

    stream.write_all(tail).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("Sunrise Family Clinic"), "{response}");

    let status = app.wait().await;
    assert!(status.success(), "exit status {status}");
}

/// Whether new connections are refused, allowing the server a moment to drop its listener
/// after logging the signal.
async fn listener_closed(app: &TestApp) -> bool {
    for _ in 0..100 {
        if TcpStream::connect(app.address).await.is_err() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}
