//! The AWS emulator (moto) for tests: the shared one `./tests/run` starts, or a private
//! one a test can pause to act out an outage.

use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

/// Region used against the emulator.
pub const REGION: &str = "us-east-1";
/// The role Portico runs as, in the emulator's default account.
pub const PLATFORM_ROLE: &str = "arn:aws:iam::123456789012:role/portico";
/// The role Cognito assumes to send SMS through SNS, in the emulator's default account.
pub const SMS_ROLE: &str = "arn:aws:iam::123456789012:role/portico-cognito-sms";

/// The shared emulator's URL. Panics, saying what to do, when it is not running.
pub fn shared_url() -> String {
    std::env::var("TEST_MOTO_URL").unwrap_or_else(|_| {
        panic!("TEST_MOTO_URL is not set: the AWS tests run through ./tests/run, which starts moto")
    })
}

/// The environment that points the AWS SDK (in the `portico` binary) at the emulator.
pub fn sdk_env(url: &str) -> Vec<(String, String)> {
    [
        ("AWS_ENDPOINT_URL", url),
        ("AWS_REGION", REGION),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// An emulator of the test's own.
#[derive(Debug)]
pub struct PrivateMoto {
    child: Child,
    /// Its base URL.
    pub url: String,
}

impl PrivateMoto {
    /// Starts `moto_server` on a free port and waits until it answers.
    pub async fn start() -> Self {
        let binary = std::env::var("TEST_MOTO_BIN").unwrap_or_else(|_| {
            panic!("TEST_MOTO_BIN is not set: run the AWS tests through ./tests/run")
        });
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(binary)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let url = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::new();
        for _ in 0..200 {
            if client.get(format!("{url}/moto-api/")).send().await.is_ok() {
                return Self { child, url };
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("moto did not start on port {port}");
    }

    /// Freezes the emulator: connections hang, as in a network partition.
    pub async fn pause(&self) {
        self.signal("-STOP").await;
    }

    /// Lets it answer again, with its state intact.
    pub async fn resume(&self) {
        self.signal("-CONT").await;
    }

    /// Kills the emulator: connections are refused from now on (its keys die with it).
    pub async fn kill(&mut self) {
        self.child.kill().await.unwrap();
    }

    async fn signal(&self, signal: &str) {
        let pid = self.child.id().unwrap().to_string();
        assert!(
            Command::new("kill")
                .args([signal, &pid])
                .status()
                .await
                .unwrap()
                .success()
        );
    }
}
