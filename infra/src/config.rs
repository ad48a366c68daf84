//! Configuration: built-in defaults, then `portico.toml`, then `PORTICO_*` environment
//! variables, then command-line flags, each overriding the one before.
//!
//! Nested keys use `__` in the environment (`PORTICO_HTTP__LISTEN`). A secret may instead be
//! read from a file named by `<VAR>_FILE` (`PORTICO_DATABASE__URL_FILE=/run/secrets/db`).
//! Unknown keys and bad values are refused at start-up with the key named; see
//! docs/CONFIGURATION.md for every key.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Serialized, Toml};
use figment::{Figment, Provider};
use portico_platform::secret::Secret;
use portico_tenants::DomainName;
use serde::{Deserialize, Serialize};

/// The prefix of every environment variable Portico reads as configuration.
const ENV_PREFIX: &str = "PORTICO_";

/// Environment variables with the prefix that are not configuration keys.
const NOT_KEYS: &[&str] = &["log", "config"];

/// Keys that hold secrets, the only ones that may come from `*_FILE` variables.
const SECRET_KEYS: &[&str] = &["database.url", "database.migrate_url"];

/// Everything Portico can be told at start-up.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// `production` (the default) or `development`. Development turns on GraphQL
    /// introspection and GraphiQL and the `/t/<slug>/` path fallback.
    pub mode: Mode,
    /// Where the embedded database and other local state live. Created (mode 0700) if
    /// missing.
    pub data_dir: PathBuf,
    /// The HTTP server.
    pub http: HttpConfig,
    /// The database.
    pub database: DatabaseConfig,
    /// Finding a request's tenant.
    pub tenancy: TenancyConfig,
    /// Limits on GraphQL requests.
    pub graphql: GraphqlConfig,
    /// Each tenant's own key, and the data keys that seal its PHI.
    pub keys: KeysConfig,
    /// The audit trail's checkpoints and archive.
    pub audit: AuditConfig,
    /// Sign-in and sessions.
    pub identity: IdentityConfig,
    /// Log output.
    pub logging: LoggingConfig,
    /// The sandbox EHR (development and the demo only).
    pub sandbox: SandboxConfig,
}

/// The sandbox EHR inside the binary, served in development mode only.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SandboxConfig {
    /// Synthetic patients it holds (1 to 1000).
    pub patients: usize,
    /// Seconds between finalizing one pending result (and notifying); 0 turns it off.
    pub finalize_every_secs: u64,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            patients: 10,
            finalize_every_secs: 20,
        }
    }
}

/// Whether Portico runs for real or on a developer's machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Safe defaults; nothing exploratory is exposed.
    #[default]
    Production,
    /// For local use: introspection, GraphiQL, and the `/t/<slug>/` paths.
    Development,
}

/// The HTTP server.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Address and port to listen on. Port 0 picks a free port (logged at start).
    pub listen: SocketAddr,
    /// Tenant portals are served at `<slug>.<base_domain>`.
    pub base_domain: DomainName,
    /// Largest request body accepted, in bytes.
    pub body_limit_bytes: usize,
    /// A request taking longer than this is answered with 503.
    pub request_timeout_secs: u64,
    /// On SIGTERM or Ctrl-C, in-flight requests get this long to finish.
    pub shutdown_grace_secs: u64,
    /// How many proxies (load balancers) in front of Portico append to `X-Forwarded-For`.
    /// 0 (the default): the client is the TCP peer and the header is ignored. With 1 (an
    /// AWS ALB), the client is the last address the header lists — the one the balancer
    /// saw; anything before it was written by the client and is not trusted.
    pub forwarded_hops: u8,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            base_domain: DomainName::localhost(),
            body_limit_bytes: 1024 * 1024,
            request_timeout_secs: 30,
            shutdown_grace_secs: 30,
            forwarded_hops: 0,
        }
    }
}

/// Which database engine to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DatabaseProvider {
    /// Embedded: `<data_dir>/portico.db`, nothing to install.
    #[default]
    Sqlite,
    /// PostgreSQL at `database.url`, with row-level security.
    Postgres,
}

/// The database.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `sqlite` (the default) or `postgres`.
    pub provider: DatabaseProvider,
    /// PostgreSQL URL the server connects with. Its role must own nothing and be a member
    /// of `portico_app` (docs/DATABASE.md). Secret.
    pub url: Option<Secret<String>>,
    /// PostgreSQL URL migrations run with: the schema owner. Falls back to `url`. Secret.
    pub migrate_url: Option<Secret<String>>,
    /// Apply pending migrations when `serve` starts.
    pub migrate_on_start: bool,
    /// Most connections in the pool.
    pub max_connections: u32,
    /// Give up connecting after this long.
    pub connect_timeout_secs: u64,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            provider: DatabaseProvider::Sqlite,
            url: None,
            migrate_url: None,
            migrate_on_start: true,
            max_connections: 10,
            connect_timeout_secs: 10,
        }
    }
}

/// Finding a request's tenant.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TenancyConfig {
    /// How long a host-to-tenant answer is reused. A tenant changed by another process (the
    /// CLI, another node) is seen within this time.
    pub cache_ttl_secs: u64,
    /// Serve `/t/<slug>/…` as that tenant's portal, for local use without DNS. Always on in
    /// development mode.
    pub path_fallback: bool,
}

impl Default for TenancyConfig {
    fn default() -> Self {
        Self {
            cache_ttl_secs: 5,
            path_fallback: false,
        }
    }
}

/// Limits on GraphQL requests.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GraphqlConfig {
    /// Deepest selection nesting.
    pub max_depth: usize,
    /// Largest total complexity (one per field).
    pub max_complexity: usize,
    /// Most aliases in one document.
    pub max_aliases: usize,
    /// Most operations in one batched request.
    pub max_batch: usize,
}

impl Default for GraphqlConfig {
    fn default() -> Self {
        Self {
            max_depth: 12,
            max_complexity: 500,
            max_aliases: 30,
            max_batch: 5,
        }
    }
}

/// Which key service holds each tenant's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyProvider {
    /// Embedded: tenant keys in the database, sealed under a root key file.
    #[default]
    Local,
    /// AWS KMS: one customer-managed key per tenant.
    Aws,
}

/// Each tenant's own key, and the data keys that seal its PHI.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KeysConfig {
    /// `local` (the embedded default) or `aws`.
    pub provider: KeyProvider,
    /// The embedded key service.
    pub local: LocalKeysConfig,
    /// AWS KMS. Region, credentials and endpoint come from the standard AWS settings
    /// (`AWS_REGION`, the credentials chain, `AWS_ENDPOINT_URL_KMS`).
    pub aws: AwsKeysConfig,
    /// Longest an unwrapped data key stays in memory, in seconds.
    pub cache_max_age_secs: u64,
    /// Most values sealed with one data key before a new one is made.
    pub cache_max_seals: u64,
    /// Most unwrapped data keys held in memory.
    pub cache_max_entries: usize,
    /// Days between offboarding a tenant and the destruction of its key (7–30).
    pub deletion_window_days: u32,
}

impl Default for KeysConfig {
    fn default() -> Self {
        Self {
            provider: KeyProvider::Local,
            local: LocalKeysConfig::default(),
            aws: AwsKeysConfig::default(),
            cache_max_age_secs: 300,
            cache_max_seals: 1 << 24,
            cache_max_entries: 10_000,
            deletion_window_days: 30,
        }
    }
}

/// The embedded key service.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LocalKeysConfig {
    /// The root key file [default: `<data_dir>/root.key`]. Created with mode 0600 if
    /// missing; refused if group or others can read it.
    pub root_key_file: Option<PathBuf>,
}

/// AWS KMS.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AwsKeysConfig {
    /// The IAM role Portico runs as; each tenant's key policy lets only this role use the
    /// key, and only for that tenant. Required with `keys.provider = "aws"`.
    pub platform_role_arn: Option<String>,
}

/// Sign-in and sessions.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IdentityConfig {
    /// `local` (the embedded default: passwords and authenticators in Portico's database)
    /// or `cognito` (a user pool per clinic in Amazon Cognito).
    pub provider: IdentityProviderKind,
    /// Minutes of inactivity after which a session ends (1–15; HIPAA practice is 15 at
    /// most). Sessions also end 12 hours after sign-in, however active.
    pub idle_timeout_minutes: u32,
    /// Amazon Cognito. Region, credentials and endpoint come from the standard AWS
    /// settings (`AWS_REGION`, the credentials chain,
    /// `AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER`).
    pub cognito: CognitoConfig,
}

impl Default for IdentityConfig {
    fn default() -> Self {
        Self {
            provider: IdentityProviderKind::Local,
            idle_timeout_minutes: 15,
            cognito: CognitoConfig::default(),
        }
    }
}

/// Where passwords and authenticators are kept and checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IdentityProviderKind {
    /// Embedded: argon2id hashes and sealed TOTP secrets in Portico's database.
    #[default]
    Local,
    /// Amazon Cognito: one user pool per clinic, made when the clinic is created.
    Cognito,
}

/// The Cognito user pools' settings.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CognitoConfig {
    /// The IAM role Cognito assumes to send SMS codes through SNS (required for
    /// `cognito`).
    pub sms_role_arn: Option<String>,
    /// The external id that role's trust policy requires [default: `portico-sms`].
    pub sms_external_id: Option<String>,
}

/// The audit trail's checkpoints and archive.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditConfig {
    /// Seconds between checkpoint runs of `portico serve` (each tenant whose chain grew
    /// gets a signed checkpoint in the archive). A failed run is retried sooner.
    pub checkpoint_interval_secs: u64,
    /// Events older than this many days are also copied to the archive as NDJSON segments
    /// (they stay in the database too). 0 turns segments off.
    pub segment_after_days: u32,
    /// Where checkpoints and segments go.
    pub archive: ArchiveConfig,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            checkpoint_interval_secs: 3600,
            segment_after_days: 90,
            archive: ArchiveConfig::default(),
        }
    }
}

/// Where the audit archive lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ArchiveProvider {
    /// A local directory (write-once files).
    #[default]
    Local,
    /// An S3 bucket with Object Lock in COMPLIANCE mode, six years' retention.
    S3,
}

/// The audit archive.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ArchiveConfig {
    /// `local` (the embedded default) or `s3`.
    pub provider: ArchiveProvider,
    /// The local archive's directory [default: `<data_dir>/audit-archive`].
    pub dir: Option<PathBuf>,
    /// The S3 bucket; it must have Object Lock enabled. Required with `provider = "s3"`.
    /// Region, credentials and endpoint come from the standard AWS settings
    /// (`AWS_ENDPOINT_URL_S3`).
    pub bucket: Option<String>,
    /// A key prefix inside the bucket.
    pub prefix: String,
}

/// Log output. The level comes from `PORTICO_LOG` (e.g. `info`, `portico=debug`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoggingConfig {
    /// `auto` (compact text on a terminal, JSON otherwise), `text` or `json`.
    pub format: LogFormat,
}

impl Default for LoggingConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Auto,
        }
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Text on a terminal, JSON otherwise.
    Auto,
    /// Compact human-readable text.
    Text,
    /// One JSON object per line.
    Json,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            mode: Mode::Production,
            data_dir: PathBuf::from("data"),
            http: HttpConfig::default(),
            database: DatabaseConfig::default(),
            tenancy: TenancyConfig::default(),
            graphql: GraphqlConfig::default(),
            keys: KeysConfig::default(),
            audit: AuditConfig::default(),
            identity: IdentityConfig::default(),
            logging: LoggingConfig::default(),
            sandbox: SandboxConfig::default(),
        }
    }
}

/// A configuration that cannot be used, naming the key at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The key, dotted (`http.listen`), or the variable for `*_FILE` problems.
    pub key: String,
    /// What is wrong with it.
    pub message: String,
    /// Where the value came from, when known.
    pub origin: Option<String>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "configuration key `{}`: {}", self.key, self.message)?;
        if let Some(origin) = &self.origin {
            write!(f, " (from {origin})")?;
        }

        Ok(())
    }
}

impl std::error::Error for ConfigError {}

impl ConfigError {
    fn new(key: &str, message: impl Into<String>) -> Self {
        Self {
            key: key.to_owned(),
            message: message.into(),
            origin: None,
        }
    }
}

/// Where configuration comes from, besides the environment.
#[derive(Debug, Default)]
pub struct Sources {
    /// `--config`, else `PORTICO_CONFIG`, else `./portico.toml` if it exists.
    pub file: Option<PathBuf>,
    /// Values from command-line flags, as dotted keys; they win over everything.
    pub overrides: Vec<(&'static str, toml::Value)>,
}

impl Config {
    /// Reads and validates the configuration from every source.
    pub fn load(sources: Sources) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));

        let file = match sources
            .file
            .or_else(|| std::env::var_os("PORTICO_CONFIG").map(PathBuf::from))
        {
            Some(path) if !path.is_file() => {
                return Err(ConfigError::new(
                    "config",
                    format!("the configuration file {} does not exist", path.display()),
                ));
            }
            Some(path) => Some(path),
            None => Some(PathBuf::from("portico.toml")).filter(|path| path.is_file()),
        };
        if let Some(path) = &file {
            figment = figment.merge(Toml::file_exact(path));
        }
        figment = figment.merge(env_provider()).merge(secret_files()?);
        for (key, value) in sources.overrides {
            figment = figment.merge((key, value));
        }

        let config: Config = figment.extract().map_err(from_figment)?;
        config.validate()?;

        Ok(config)
    }

    /// The effective configuration as TOML, secrets shown as `***`.
    pub fn to_redacted_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|err| format!("# cannot render: {err}\n"))
    }

    /// Whether `/t/<slug>/` paths reach tenants.
    pub fn path_fallback(&self) -> bool {
        self.tenancy.path_fallback || self.mode == Mode::Development
    }

    /// The local key service's root key file.
    pub fn root_key_file(&self) -> PathBuf {
        self.keys
            .local
            .root_key_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("root.key"))
    }

    /// The data-key cache's bounds.
    pub fn key_cache_limits(&self) -> portico_platform::crypto::cache::CacheLimits {
        portico_platform::crypto::cache::CacheLimits {
            max_age: chrono::Duration::seconds(
                i64::try_from(self.keys.cache_max_age_secs).unwrap_or(300),
            ),
            max_seals: self.keys.cache_max_seals,
            max_entries: self.keys.cache_max_entries,
        }
    }

    /// The local audit archive's directory.
    pub fn archive_dir(&self) -> PathBuf {
        self.audit
            .archive
            .dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("audit-archive"))
    }

    /// The embedded database's file.
    pub fn sqlite_path(&self) -> PathBuf {
        self.data_dir.join("portico.db")
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let positive: [(&str, u64); 7] = [
            ("http.body_limit_bytes", self.http.body_limit_bytes as u64),
            ("http.request_timeout_secs", self.http.request_timeout_secs),
            (
                "database.max_connections",
                u64::from(self.database.max_connections),
            ),
            (
                "database.connect_timeout_secs",
                self.database.connect_timeout_secs,
            ),
            ("graphql.max_depth", self.graphql.max_depth as u64),
            ("graphql.max_complexity", self.graphql.max_complexity as u64),
            ("graphql.max_batch", self.graphql.max_batch as u64),
        ];
        if let Some((key, _)) = positive.iter().find(|(_, value)| *value == 0) {
            return Err(ConfigError::new(key, "must be greater than zero"));
        }
        if self.keys.provider == KeyProvider::Aws && self.keys.aws.platform_role_arn.is_none() {
            return Err(ConfigError::new(
                "keys.aws.platform_role_arn",
                "is required with keys.provider = \"aws\"",
            ));
        }
        if !(1..=3600).contains(&self.keys.cache_max_age_secs) {
            return Err(ConfigError::new(
                "keys.cache_max_age_secs",
                "must be 1 to 3600",
            ));
        }
        // AES-GCM with random nonces stays safe for about 2^32 messages per key; keep two
        // orders of magnitude below.
        if !(1..=(1u64 << 26)).contains(&self.keys.cache_max_seals) {
            return Err(ConfigError::new(
                "keys.cache_max_seals",
                "must be 1 to 67108864 (2^26)",
            ));
        }
        if !portico_platform::crypto::keys::DELETION_WINDOW_DAYS
            .contains(&self.keys.deletion_window_days)
        {
            return Err(ConfigError::new(
                "keys.deletion_window_days",
                "must be 7 to 30",
            ));
        }
        if !(1..=1000).contains(&self.sandbox.patients) {
            return Err(ConfigError::new("sandbox.patients", "must be 1 to 1000"));
        }
        if self.keys.cache_max_entries == 0 {
            return Err(ConfigError::new(
                "keys.cache_max_entries",
                "must be greater than zero",
            ));
        }
        if self.identity.provider == IdentityProviderKind::Cognito
            && self
                .identity
                .cognito
                .sms_role_arn
                .as_deref()
                .is_none_or(str::is_empty)
        {
            return Err(ConfigError::new(
                "identity.cognito.sms_role_arn",
                "is required when identity.provider is \"cognito\"",
            ));
        }
        if !(1..=15).contains(&self.identity.idle_timeout_minutes) {
            return Err(ConfigError::new(
                "identity.idle_timeout_minutes",
                "must be 1 to 15",
            ));
        }
        if !(60..=86_400).contains(&self.audit.checkpoint_interval_secs) {
            return Err(ConfigError::new(
                "audit.checkpoint_interval_secs",
                "must be 60 to 86400",
            ));
        }
        if self.audit.archive.provider == ArchiveProvider::S3
            && self
                .audit
                .archive
                .bucket
                .as_deref()
                .is_none_or(str::is_empty)
        {
            return Err(ConfigError::new(
                "audit.archive.bucket",
                "is required with audit.archive.provider = \"s3\"",
            ));
        }
        if self.tenancy.cache_ttl_secs > 3600 {
            return Err(ConfigError::new(
                "tenancy.cache_ttl_secs",
                "must be at most 3600",
            ));
        }

        match self.database.provider {
            DatabaseProvider::Sqlite => {
                for (key, value) in [
                    ("database.url", &self.database.url),
                    ("database.migrate_url", &self.database.migrate_url),
                ] {
                    if value.is_some() {
                        return Err(ConfigError::new(
                            key,
                            "is only used with database.provider = \"postgres\"",
                        ));
                    }
                }
            }
            DatabaseProvider::Postgres => {
                let Some(url) = &self.database.url else {
                    return Err(ConfigError::new(
                        "database.url",
                        "is required with database.provider = \"postgres\"",
                    ));
                };
                for (key, value) in [
                    ("database.url", Some(url)),
                    ("database.migrate_url", self.database.migrate_url.as_ref()),
                ] {
                    if let Some(value) = value
                        && !(value.expose().starts_with("postgres://")
                            || value.expose().starts_with("postgresql://"))
                    {
                        // The value is a secret: name the key, never echo it.
                        return Err(ConfigError::new(key, "must be a postgres:// URL"));
                    }
                }
            }
        }

        Ok(())
    }
}

fn env_provider() -> Env {
    Env::prefixed(ENV_PREFIX)
        .split("__")
        .ignore(NOT_KEYS)
        .filter(|key| !key.as_str().to_ascii_lowercase().ends_with("_file"))
}

/// Reads secrets named by `PORTICO_…_FILE` variables.
fn secret_files() -> Result<impl Provider, ConfigError> {
    let mut values = Figment::new();
    for (name, path) in std::env::vars_os() {
        let Some(name) = name.to_str() else { continue };
        let Some(key) = name
            .strip_prefix(ENV_PREFIX)
            .and_then(|rest| rest.strip_suffix("_FILE"))
        else {
            continue;
        };
        let key = key.to_ascii_lowercase().replace("__", ".");
        if !SECRET_KEYS.contains(&key.as_str()) {
            return Err(ConfigError::new(
                name,
                format!(
                    "only secrets can be read from files: {}",
                    SECRET_KEYS.join(", ")
                ),
            ));
        }
        let path = PathBuf::from(path);
        let value = read_secret_file(&path).map_err(|message| ConfigError::new(name, message))?;
        values = values.merge(Serialized::global(&key, value));
    }

    Ok(values)
}

fn read_secret_file(path: &Path) -> Result<String, String> {
    let value = std::fs::read_to_string(path)
        .map_err(|err| format!("cannot read {}: {}", path.display(), err.kind()))?;
    let value = value.trim_end_matches(['\r', '\n']).to_owned();
    if value.is_empty() {
        return Err(format!("{} is empty", path.display()));
    }

    Ok(value)
}

/// Turns figment's error into one that names the key and where its value came from.
fn from_figment(err: figment::Error) -> ConfigError {
    use figment::error::Kind;

    // figment's path already ends with the offending field.
    let path = err.path.clone();
    let message = match &err.kind {
        Kind::UnknownField(..) => {
            "is not a configuration key (see docs/CONFIGURATION.md)".to_owned()
        }
        Kind::UnknownVariant(value, expected) => {
            format!("`{value}` is not one of: {}", expected.join(", "))
        }
        Kind::InvalidType(actual, expected) => format!("expected {expected}, found {actual}"),
        Kind::InvalidValue(_, expected) => format!("expected {expected}"),
        // serde's messages for parsed types (addresses, numbers) describe the value's shape,
        // not its content.
        Kind::Message(text) => text.clone(),
        other => other.to_string(),
    };
    let origin = err.metadata.as_ref().map(|meta| {
        if meta.name.contains("environment") {
            let var = format!("{ENV_PREFIX}{}", path.join("__")).to_ascii_uppercase();
            format!("environment variable {var}")
        } else if let Some(source) = &meta.source {
            format!("{} {source}", meta.name)
        } else {
            meta.name.to_string()
        }
    });

    ConfigError {
        key: path.join("."),
        message,
        origin,
    }
}

#[cfg(test)]
#[allow(
    clippy::result_large_err,
    reason = "figment::Jail's closures return figment::Error"
)]
mod tests {
    use figment::Jail;

    use super::*;

    /// Loads inside a jail: its own working directory and environment.
    fn load_in(_jail: &Jail) -> Result<Config, ConfigError> {
        Config::load(Sources::default())
    }

    #[test]
    fn defaults_need_nothing() {
        Jail::expect_with(|jail| {
            let config = load_in(jail).unwrap();
            assert_eq!(config.database.provider, DatabaseProvider::Sqlite);
            assert_eq!(config.http.listen.to_string(), "127.0.0.1:8080");
            assert_eq!(config.mode, Mode::Production);
            Ok(())
        });
    }

    #[test]
    fn the_environment_overrides_the_file_and_flags_override_both() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "portico.toml",
                "[http]\nlisten = \"127.0.0.1:9000\"\nbase_domain = \"example.org\"\n",
            )?;
            jail.set_env("PORTICO_HTTP__LISTEN", "127.0.0.1:9001");
            let config = load_in(jail).unwrap();
            assert_eq!(config.http.listen.to_string(), "127.0.0.1:9001");
            assert_eq!(config.http.base_domain.as_str(), "example.org");

            let config = Config::load(Sources {
                file: None,
                overrides: vec![("http.listen", toml::Value::String("127.0.0.1:9002".into()))],
            })
            .unwrap();
            assert_eq!(config.http.listen.to_string(), "127.0.0.1:9002");
            Ok(())
        });
    }

    #[test]
    fn an_unknown_key_in_the_file_is_named() {
        Jail::expect_with(|jail| {
            jail.create_file("portico.toml", "[http]\nlisen = \"127.0.0.1:9000\"\n")?;
            let err = load_in(jail).unwrap_err();
            assert_eq!(err.key, "http.lisen");
            assert!(err.origin.unwrap().contains("portico.toml"));
            Ok(())
        });
    }

    #[test]
    fn an_unknown_environment_key_is_named_by_its_variable() {
        Jail::expect_with(|jail| {
            jail.set_env("PORTICO_DATABASE__PROVIDR", "postgres");
            let err = load_in(jail).unwrap_err();
            assert_eq!(err.key, "database.providr");
            assert_eq!(
                err.origin.as_deref(),
                Some("environment variable PORTICO_DATABASE__PROVIDR")
            );
            Ok(())
        });
    }

    #[test]
    fn a_bad_value_is_named() {
        Jail::expect_with(|jail| {
            jail.set_env("PORTICO_HTTP__LISTEN", "not-an-address");
            assert_eq!(load_in(jail).unwrap_err().key, "http.listen");

            jail.set_env("PORTICO_HTTP__LISTEN", "127.0.0.1:8080");
            jail.set_env("PORTICO_DATABASE__PROVIDER", "oracle");
            let err = load_in(jail).unwrap_err();
            assert_eq!(err.key, "database.provider");
            assert!(err.message.contains("postgres"));
            Ok(())
        });
    }

    #[test]
    fn postgres_needs_a_url_and_the_error_never_echoes_it() {
        Jail::expect_with(|jail| {
            jail.set_env("PORTICO_DATABASE__PROVIDER", "postgres");
            assert_eq!(load_in(jail).unwrap_err().key, "database.url");

            jail.set_env("PORTICO_DATABASE__URL", "mysql://user:hunter2@db/x");
            let err = load_in(jail).unwrap_err();
            assert_eq!(err.key, "database.url");
            assert!(!err.to_string().contains("hunter2"));
            Ok(())
        });
    }

    #[test]
    fn a_secret_can_come_from_a_file_and_is_redacted_when_printed() {
        Jail::expect_with(|jail| {
            jail.create_file("db-url", "postgres://app:hunter2@127.0.0.1/portico\n")?;
            jail.set_env("PORTICO_DATABASE__PROVIDER", "postgres");
            jail.set_env("PORTICO_DATABASE__URL_FILE", "db-url");
            let config = load_in(jail).unwrap();

            let url = config.database.url.as_ref().unwrap();
            assert_eq!(url.expose(), "postgres://app:hunter2@127.0.0.1/portico");
            assert!(!config.to_redacted_toml().contains("hunter2"));
            assert!(!format!("{config:?}").contains("hunter2"));
            Ok(())
        });
    }

    #[test]
    fn only_secrets_may_come_from_files() {
        Jail::expect_with(|jail| {
            jail.create_file("listen", "127.0.0.1:1")?;
            jail.set_env("PORTICO_HTTP__LISTEN_FILE", "listen");
            assert_eq!(load_in(jail).unwrap_err().key, "PORTICO_HTTP__LISTEN_FILE");
            Ok(())
        });
    }

    #[test]
    fn portico_log_is_not_a_configuration_key() {
        Jail::expect_with(|jail| {
            jail.set_env("PORTICO_LOG", "debug");
            assert!(load_in(jail).is_ok());
            Ok(())
        });
    }

    #[test]
    fn a_missing_named_file_is_an_error() {
        Jail::expect_with(|jail| {
            let _ = jail;
            let err = Config::load(Sources {
                file: Some("nope.toml".into()),
                overrides: vec![],
            })
            .unwrap_err();
            assert_eq!(err.key, "config");
            Ok(())
        });
    }
}
