//! [`TestApp`]: the built `portico` binary, configured through its environment, serving on a
//! free port, with every log line it writes kept for inspection.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::postgres::PostgresTestDb;
use crate::postgres_requested;

/// A `portico serve` process for one test.
#[derive(Debug)]
pub struct TestApp {
    /// Where it listens.
    pub address: SocketAddr,
    child: Child,
    env: Vec<(String, String)>,
    data_dir: tempfile::TempDir,
    logs: Arc<Mutex<Vec<String>>>,
    client: reqwest::Client,
    _database: Option<PostgresTestDb>,
}

/// How to start a [`TestApp`].
#[derive(Debug, Default)]
pub struct TestAppBuilder {
    env: Vec<(String, String)>,
    tenants: Vec<Vec<String>>,
}

impl TestAppBuilder {
    /// Sets a configuration variable (`PORTICO_…`) for the server and its CLI calls.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Sets several environment variables (such as the AWS SDK's).
    pub fn envs(mut self, vars: Vec<(String, String)>) -> Self {
        self.env.extend(vars);
        self
    }

    /// Creates a tenant with `portico tenant create` before the server starts.
    pub fn tenant(mut self, slug: &str, name: &str) -> Self {
        self.tenants.push(vec![
            "--slug".into(),
            slug.into(),
            "--name".into(),
            name.into(),
        ]);
        self
    }

    /// Creates a tenant with a custom domain.
    pub fn tenant_with_domain(mut self, slug: &str, name: &str, domain: &str) -> Self {
        self.tenants.push(vec![
            "--slug".into(),
            slug.into(),
            "--name".into(),
            name.into(),
            "--domain".into(),
            domain.into(),
        ]);
        self
    }

    /// Migrates, creates the tenants, starts the server and waits until it listens.
    pub async fn start(self) -> TestApp {
        let data_dir = tempfile::tempdir().unwrap();
        let mut env = vec![
            ("PORTICO_LOG".to_owned(), "info".to_owned()),
            ("PORTICO_LOGGING__FORMAT".to_owned(), "json".to_owned()),
        ];
        let database = if postgres_requested() {
            let db = PostgresTestDb::create().await;
            env.push(("PORTICO_DATABASE__PROVIDER".into(), "postgres".into()));
            env.push(("PORTICO_DATABASE__URL".into(), db.server_url()));
            env.push(("PORTICO_DATABASE__MIGRATE_URL".into(), db.owner_url()));
            Some(db)
        } else {
            None
        };
        env.extend(self.env);

        let setup = Setup {
            env: &env,
            data_dir: data_dir.path().to_owned(),
        };
        setup.expect_success(&["migrate"]).await;
        for tenant in &self.tenants {
            let mut args = vec!["tenant", "create"];
            args.extend(tenant.iter().map(String::as_str));
            setup.expect_success(&args).await;
        }

        let mut child = setup
            .command(&["serve", "--listen", "127.0.0.1:0", "--no-migrate"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (address_tx, address_rx) = tokio::sync::oneshot::channel();
        let stderr = child.stderr.take().unwrap();
        let sink = logs.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            let mut address_tx = Some(address_tx);
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(address) = listening_address(&line)
                    && let Some(tx) = address_tx.take()
                {
                    tx.send(address).ok();
                }
                sink.lock().unwrap().push(line);
            }
        });

        let address = match tokio::time::timeout(Duration::from_secs(30), address_rx).await {
            Ok(Ok(address)) => address,
            _ => panic!(
                "portico serve did not start; its log:\n{}",
                logs.lock().unwrap().join("\n")
            ),
        };
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();

        TestApp {
            address,
            child,
            env,
            data_dir,
            logs,
            client,
            _database: database,
        }
    }
}

impl TestApp {
    /// A builder with no tenants and production defaults.
    pub fn builder() -> TestAppBuilder {
        TestAppBuilder::default()
    }

    /// Sends a request to `path` as if addressed to `host`.
    pub fn request(
        &self,
        method: reqwest::Method,
        host: &str,
        path: &str,
    ) -> reqwest::RequestBuilder {
        self.client
            .request(method, format!("http://{}{path}", self.address))
            .header(reqwest::header::HOST, host)
    }

    /// Runs a GraphQL query through `host` + `path` and returns the status and body.
    pub async fn graphql_at(&self, host: &str, path: &str, query: &str) -> (StatusCode, Value) {
        let response = self
            .request(reqwest::Method::POST, host, path)
            .json(&json!({ "query": query }))
            .send()
            .await
            .unwrap();
        let status = response.status();

        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Runs a GraphQL query at `host`'s `/graphql`.
    pub async fn graphql(&self, host: &str, query: &str) -> (StatusCode, Value) {
        self.graphql_at(host, "/graphql", query).await
    }

    /// Runs `portico <args>` against the same configuration and data.
    pub async fn cli(&self, args: &[&str]) -> Output {
        self.cli_with_env(args, &[]).await
    }

    /// Runs `portico <args>` with some settings changed for this one command.
    pub async fn cli_with_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let setup = Setup {
            env: &self.env,
            data_dir: self.data_dir.path().to_owned(),
        };
        setup
            .command(args)
            .envs(env.iter().copied())
            .output()
            .await
            .unwrap()
    }

    /// Runs `portico <args>` with `input` on its standard input.
    pub async fn cli_with_input(&self, args: &[&str], input: &str) -> Output {
        use tokio::io::AsyncWriteExt;

        let setup = Setup {
            env: &self.env,
            data_dir: self.data_dir.path().to_owned(),
        };
        let mut child = setup
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(input.as_bytes()).await.unwrap();
        drop(stdin);
        child.wait_with_output().await.unwrap()
    }

    /// The database as its owner: the SQLite file, or the PostgreSQL database's owner.
    pub fn owner_url(&self) -> String {
        match &self._database {
            Some(db) => db.owner_url(),
            None => format!(
                "sqlite://{}",
                self.data_dir.path().join("portico.db").display()
            ),
        }
    }

    /// The data directory the server and its CLI calls share.
    pub fn data_dir(&self) -> &std::path::Path {
        self.data_dir.path()
    }

    /// Signs in at `host` with the password and the authenticator's current code (its
    /// base32 secret); the session token and the CSRF token.
    pub async fn sign_in(
        &self,
        host: &str,
        email: &str,
        password: &str,
        totp_base32: &str,
    ) -> (String, String) {
        use portico_platform::clock::{Clock, SystemClock};
        use portico_platform::identity::totp::TotpSecret;

        let step = self
            .session_request(
                host,
                &format!(
                    "mutation {{ signIn(email: \"{email}\", password: \"{password}\") {{ next }} }}"
                ),
                None,
            )
            .await;
        let pending = session_token(&step);
        let code = TotpSecret::from_base32(totp_base32)
            .unwrap()
            .code_at(SystemClock.now());
        let verified = self
            .session_request(
                host,
                &format!("mutation {{ verifyTotp(code: \"{code}\") {{ csrfToken }} }}"),
                Some(&pending),
            )
            .await;
        let session = session_token(&verified);
        let body: Value = verified.json().await.unwrap();
        let csrf = body["data"]["verifyTotp"]["csrfToken"]
            .as_str()
            .unwrap_or_else(|| panic!("{body}"))
            .to_owned();
        (session, csrf)
    }

    async fn session_request(
        &self,
        host: &str,
        query: &str,
        session: Option<&str>,
    ) -> reqwest::Response {
        let mut request = self
            .request(reqwest::Method::POST, host, "/graphql")
            .json(&json!({ "query": query }));
        if let Some(session) = session {
            request = request.header("cookie", format!("__Host-portico_session={session}"));
        }
        request.send().await.unwrap()
    }

    /// Everything the server has logged so far.
    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().join("\n")
    }

    /// Waits until a log line contains `text`, for at most 20 seconds.
    pub async fn wait_for_log(&self, text: &str) {
        for _ in 0..400 {
            if self.logs().contains(text) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "the server never logged {text:?}; its log:\n{}",
            self.logs()
        );
    }

    /// Sends SIGTERM, as an orchestrator stopping the node would.
    pub async fn terminate(&self) {
        let pid = self.child.id().unwrap().to_string();
        let status = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .await
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit, for at most 30 seconds.
    pub async fn wait(&mut self) -> std::process::ExitStatus {
        tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("the server did not exit")
            .unwrap()
    }
}

/// What the server and its CLI calls share: configuration and the data directory.
struct Setup<'a> {
    env: &'a [(String, String)],
    data_dir: PathBuf,
}

impl Setup<'_> {
    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(binary());
        for (key, _) in std::env::vars() {
            // The server must see only the configuration the test chose.
            if key.starts_with("PORTICO_") {
                command.env_remove(key);
            }
        }
        command
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(args)
            .envs(self.env.iter().cloned());
        command.stdin(Stdio::null());
        command
    }

    async fn expect_success(&self, args: &[&str]) {
        let output = self.command(args).output().await.unwrap();
        assert!(
            output.status.success(),
            "portico {} failed:\n{}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// The `portico` binary built beside this test executable (`./tests/run` builds it first).
pub fn binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(|deps| deps.parent()).unwrap();
    let binary = profile_dir.join("portico");
    assert!(
        binary.is_file(),
        "{} is missing: build it first with `cargo build -p portico-infra` (./tests/run does)",
        binary.display()
    );
    binary
}

fn listening_address(line: &str) -> Option<SocketAddr> {
    let value: Value = serde_json::from_str(line).ok()?;
    if value.get("message")?.as_str()? != "listening" {
        return None;
    }
    value.get("http.address")?.as_str()?.parse().ok()
}

/// The session token a response's `Set-Cookie` carries.
fn session_token(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("set-cookie")
        .and_then(|value| value.to_str().ok())
        .and_then(|cookie| cookie.strip_prefix("__Host-portico_session="))
        .and_then(|rest| rest.split(';').next())
        .unwrap_or_else(|| panic!("no session cookie: {response:?}"))
        .to_owned()
}
