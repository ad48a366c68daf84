//! sekmet-fhir, a FHIR R4 server from PyPI, as a stand-in EHR: one private server per test,
//! in memory, with SMART Backend Services clients registered the way an EHR registers
//! them (a public key in JWKS, or a client secret). `./tests/run` installs it and sets
//! `TEST_SEKMET_BIN`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

fn binary() -> String {
    std::env::var("TEST_SEKMET_BIN").unwrap_or_else(|_| {
        panic!("TEST_SEKMET_BIN is not set: the FHIR peer tests run through ./tests/run")
    })
}

fn spawn(dir: &Path, port: u16, database: &str) -> Child {
    Command::new(binary())
        .args(["serve", "--config", "settings.yaml", "--host", "127.0.0.1"])
        .args(["--port", &port.to_string()])
        .env("SEKMET_DB", database)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

/// The backend-services client whose key `Sekmet::private_key` is.
pub const KEY_CLIENT: &str = "portico-key";
/// The client that authenticates with `CLIENT_SECRET`.
pub const SECRET_CLIENT: &str = "portico-secret";
/// That client's secret.
pub const CLIENT_SECRET: &str = "a-client-secret-for-tests-0123456789";
/// The client the tests load data with (it may write).
const LOADER: &str = "test-loader";
const LOADER_SECRET: &str = "a-loader-secret-for-tests-0123456789";

/// A running sekmet-fhir.
#[derive(Debug)]
pub struct Sekmet {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
    database: String,
    /// Its root URL (`http://127.0.0.1:<port>`).
    pub root: String,
}

impl Sekmet {
    /// Starts a server with a fresh RS384 key registered for [`KEY_CLIENT`] and
    /// [`SECRET_CLIENT`]'s secret; waits until it answers.
    pub async fn start() -> Self {
        Self::start_on(":memory:").await
    }

    /// The same, keeping its data in a file, so that it survives [`restart`](Self::restart).
    pub async fn start_persistent() -> Self {
        Self::start_on("sekmet.db").await
    }

    async fn start_on(database: &str) -> Self {
        let binary = binary();
        let dir = tempfile::tempdir().unwrap();
        let generated = Command::new(&binary)
            .args([
                "keys",
                "generate",
                "--out",
                "keys/client.pem",
                "--alg",
                "RS384",
                "--force",
            ])
            .current_dir(dir.path())
            .output()
            .await
            .unwrap();
        assert!(generated.status.success(), "{generated:?}");
        let jwks = std::fs::read_to_string(dir.path().join("keys/client.jwks.json")).unwrap();
        let jwks: serde_json::Value = serde_json::from_str(&jwks).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let root = format!("http://127.0.0.1:{port}");
        // JSON is YAML: the settings are written as JSON.
        let settings = serde_json::json!({
            "base_url": format!("{root}/fhir"),
            "server_auth": {
                "types": ["smart"],
                "smart_clients": [
                    { "client_id": KEY_CLIENT, "scopes": "system/*.read", "jwks": jwks },
                    { "client_id": SECRET_CLIENT, "scopes": "system/*.read",
                      "client_secret": CLIENT_SECRET },
                    { "client_id": LOADER, "scopes": "system/*.*",
                      "client_secret": LOADER_SECRET },
                ],
            },
            "simulator": { "enabled": false },
        });
        std::fs::write(dir.path().join("settings.yaml"), settings.to_string()).unwrap();
        let child = spawn(dir.path(), port, database);
        let server = Self {
            child,
            dir,
            port,
            database: database.to_owned(),
            root,
        };
        server.wait_ready().await;
        server
    }

    async fn wait_ready(&self) {
        let client = reqwest::Client::new();
        for _ in 0..200 {
            let ready = client
                .get(format!("{}/fhir/metadata", self.root))
                .send()
                .await;
            if ready.is_ok_and(|response| response.status().is_success()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("sekmet did not start on port {}", self.port);
    }

    /// Starts it again after [`stop`](Self::stop), on the same port and data.
    pub async fn restart(&mut self) {
        self.child = spawn(self.dir.path(), self.port, &self.database);
        self.wait_ready().await;
    }

    /// The FHIR base URL.
    pub fn fhir(&self) -> String {
        format!("{}/fhir", self.root)
    }

    /// The token endpoint.
    pub fn token_url(&self) -> String {
        format!("{}/auth/token", self.root)
    }

    /// The PEM file of [`KEY_CLIENT`]'s private key.
    pub fn private_key(&self) -> PathBuf {
        self.dir.path().join("keys/client.pem")
    }

    /// A file holding `text`, in the server's directory.
    pub fn file(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    /// The server's working directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Loads a transaction Bundle, as the EHR's own staff would enter records; the
    /// transaction-response Bundle.
    pub async fn load(&self, bundle: &serde_json::Value) -> serde_json::Value {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(600))
            .build()
            .unwrap();
        let token: serde_json::Value = client
            .post(self.token_url())
            .basic_auth(LOADER, Some(LOADER_SECRET))
            .form(&[
                ("grant_type", "client_credentials"),
                ("scope", "system/*.*"),
            ])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let response = client
            .post(self.fhir())
            .bearer_auth(token["access_token"].as_str().unwrap())
            .header("content-type", "application/fhir+json")
            .json(bundle)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        assert!(status.is_success(), "loading failed: {text}");
        serde_json::from_str(&text).unwrap()
    }

    /// Stops the server: connections are refused from now on.
    pub async fn stop(&mut self) {
        self.child.kill().await.unwrap();
    }
}
