//! `portico connector set|show|test`: a clinic's EHR connector.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use portico_platform::principal::Principal;
use portico_platform::records::ReleasePolicy;
use portico_platform::secret::Secret;
use portico_tenants::{Connector, ConnectorAuth, SigningAlgorithm, Tenant, Vendor};
use url::Url;

use crate::fhir::client::FhirClient;
use crate::services::Services;

#[derive(Debug, Subcommand)]
pub(super) enum ConnectorCommand {
    /// Set (or replace) a clinic's EHR connector. Secrets are read from files, never from
    /// the command line.
    Set(Box<SetArgs>),
    /// Show a clinic's connector, secrets as ***.
    Show {
        /// The clinic (slug).
        #[arg(long)]
        tenant: String,
    },
    /// Fetch a token and the server's CapabilityStatement, and say what failed.
    Test {
        /// The clinic (slug).
        #[arg(long)]
        tenant: String,
    },
    /// Connect a clinic to the sandbox EHR inside Portico (development mode only): a new
    /// Backend Services key and notification secret. A running server picks it up within
    /// seconds.
    Sandbox {
        /// The clinic (slug).
        #[arg(long)]
        tenant: String,
    },
}

#[derive(Debug, Args)]
pub(super) struct SetArgs {
    /// The clinic (slug).
    #[arg(long)]
    tenant: String,
    /// epic, oracle-health, athenahealth, fhir-r4 or sandbox.
    #[arg(long)]
    vendor: String,
    /// The FHIR R4 base URL (https; http only on a loopback address).
    #[arg(long, value_name = "URL")]
    base_url: String,
    /// The OAuth token endpoint.
    #[arg(long, value_name = "URL")]
    token_url: String,
    /// The client id the EHR registered for Portico.
    #[arg(long)]
    client_id: String,
    /// SMART Backend Services: the PEM private key whose public key the EHR holds.
    #[arg(long, value_name = "FILE", conflicts_with = "client_secret_file")]
    private_key_file: Option<PathBuf>,
    /// RS384 or ES384.
    #[arg(long, default_value = "RS384")]
    algorithm: String,
    /// The key id (`kid`) the EHR knows the public key by.
    #[arg(long)]
    key_id: Option<String>,
    /// The client-credentials grant with a client secret (where the vendor uses it).
    #[arg(long, value_name = "FILE")]
    client_secret_file: Option<PathBuf>,
    /// The scopes to ask for.
    #[arg(long, default_value = "system/*.read")]
    scopes: String,
    /// athenahealth's practice id.
    #[arg(long)]
    practice_id: Option<String>,
    /// Seconds between incremental polls (30-86400).
    #[arg(long, default_value_t = 300)]
    poll_interval_secs: u32,
    /// The secret the EHR's notifications must carry [default: a new one, printed once].
    #[arg(long, value_name = "FILE")]
    notification_secret_file: Option<PathBuf>,
    /// What is shown besides final results and notes, which are always shown at once:
    /// final-at-once (nothing else) or final-and-preliminary (preliminary ones too,
    /// labelled). Holding final results for review is information blocking and refused.
    #[arg(long, default_value = "final-at-once", value_name = "POLICY")]
    release: String,
}

pub(super) async fn run(
    command: ConnectorCommand,
    config: &crate::config::Config,
    services: Services,
) -> anyhow::Result<()> {
    match command {
        ConnectorCommand::Sandbox { tenant } => {
            if config.mode != crate::config::Mode::Development {
                bail!(
                    "the sandbox EHR runs only in development mode (PORTICO_MODE=development); \
                     connect a real EHR with `portico connector set`"
                );
            }
            let tenant = clinic(&services, &tenant).await?;
            let secret = super::sandbox::connect(config, &services, &tenant).await?;
            println!(
                "connected {} to the sandbox EHR at {}",
                tenant.slug,
                stored(&services, &tenant).await?.base_url
            );
            println!(
                "notification secret (shown once; the sandbox sends it with each notification): {}",
                secret.expose()
            );
            println!(
                "link a patient to a sandbox chart with: portico records link --tenant {} \
                 --patient <ID> --ehr-patient sbx-p0000",
                tenant.slug
            );
            Ok(())
        }
        ConnectorCommand::Set(args) => set(*args, &services).await,
        ConnectorCommand::Show { tenant } => {
            let tenant = clinic(&services, &tenant).await?;
            let connector = stored(&services, &tenant).await?;
            show(&tenant, &connector);
            Ok(())
        }
        ConnectorCommand::Test { tenant } => {
            let tenant = clinic(&services, &tenant).await?;
            let connector = stored(&services, &tenant).await?;
            test(connector, &services).await
        }
    }
}

async fn set(args: SetArgs, services: &Services) -> anyhow::Result<()> {
    let vendor = Vendor::from_code(&args.vendor).with_context(|| {
        format!(
            "--vendor {:?} is not one of epic, oracle-health, athenahealth, fhir-r4, sandbox",
            args.vendor
        )
    })?;
    let base_url = Url::parse(&args.base_url).context("--base-url is not a URL")?;
    let token_url = Url::parse(&args.token_url).context("--token-url is not a URL")?;
    let auth = match (&args.private_key_file, &args.client_secret_file) {
        (Some(path), None) => ConnectorAuth::BackendServices {
            client_id: args.client_id.clone(),
            private_key: read_secret(path, "--private-key-file")?,
            algorithm: match args.algorithm.as_str() {
                "RS384" => SigningAlgorithm::RS384,
                "ES384" => SigningAlgorithm::ES384,
                other => bail!("--algorithm {other:?} is not RS384 or ES384"),
            },
            key_id: args.key_id.clone(),
        },
        (None, Some(path)) => ConnectorAuth::ClientSecret {
            client_id: args.client_id.clone(),
            client_secret: read_secret(path, "--client-secret-file")?,
        },
        _ => bail!("give --private-key-file (SMART Backend Services) or --client-secret-file"),
    };
    let (notification_secret, generated) = match &args.notification_secret_file {
        Some(path) => (read_secret(path, "--notification-secret-file")?, false),
        None => (new_notification_secret(services), true),
    };
    let release: ReleasePolicy = args.release.parse().context("--release")?;
    let connector = Connector {
        vendor,
        base_url,
        token_url,
        scopes: args.scopes.clone(),
        auth,
        practice_id: args.practice_id.clone(),
        poll_interval_secs: args.poll_interval_secs,
        notification_secret,
        release,
    };
    let tenant = clinic(services, &args.tenant).await?;
    services
        .tenants
        .set_connector(&Principal::Operator, tenant.id, &connector)
        .await?;
    println!(
        "set the EHR connector of {} ({})",
        tenant.slug, connector.vendor
    );
    if generated {
        println!(
            "notification secret (shown once; the EHR's subscription must send it): {}",
            connector.notification_secret.expose()
        );
    }
    println!(
        "check it with: portico connector test --tenant {}",
        tenant.slug
    );
    Ok(())
}

/// A new notification secret: 32 random bytes, as hex.
pub(super) fn new_notification_secret(services: &Services) -> Secret<String> {
    let mut bytes = zeroize::Zeroizing::new([0u8; 32]);
    services.entropy.fill(bytes.as_mut());
    Secret::new(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn show(tenant: &Tenant, connector: &Connector) {
    println!("clinic:        {}", tenant.slug);
    println!("vendor:        {}", connector.vendor);
    println!("FHIR base URL: {}", connector.base_url);
    println!("token URL:     {}", connector.token_url);
    println!("auth:          {}", connector.auth.kind());
    println!("client id:     {}", connector.auth.client_id());
    if let ConnectorAuth::BackendServices {
        algorithm, key_id, ..
    } = &connector.auth
    {
        println!(
            "signing:       {algorithm:?}{}",
            key_id
                .as_deref()
                .map(|kid| format!(", kid {kid}"))
                .unwrap_or_default()
        );
    }
    println!("scopes:        {}", connector.scopes);
    if let Some(practice) = &connector.practice_id {
        println!("practice id:   {practice}");
    }
    println!("poll interval: {} s", connector.poll_interval_secs);
    println!("release:       {}", connector.release);
    println!("secrets:       ***");
}

/// Each step in turn; the first failure is the answer, with exit status 1.
async fn test(connector: Connector, services: &Services) -> anyhow::Result<()> {
    let token_url = connector.token_url.clone();
    let base_url = connector.base_url.clone();
    let client = FhirClient::new(
        connector,
        Duration::from_secs(15),
        services.clock.clone(),
        services.entropy.clone(),
    )?;
    client
        .token()
        .await
        .with_context(|| format!("token from {token_url}"))?;
    println!("token:    ok ({token_url})");
    let capabilities = client
        .capabilities()
        .await
        .with_context(|| format!("CapabilityStatement from {base_url}/metadata"))?;
    println!(
        "metadata: FHIR {}{}, {} resource types",
        capabilities.fhir_version,
        capabilities
            .software
            .as_deref()
            .map(|software| format!(" ({software})"))
            .unwrap_or_default(),
        capabilities.resources.len()
    );
    if !capabilities.fhir_version.starts_with("4.0") {
        bail!(
            "the server speaks FHIR {}, not R4 (4.0.x)",
            capabilities.fhir_version
        );
    }
    client
        .search("Patient", &[("_count", "1"), ("_summary", "count")])
        .await
        .context("a Patient search with the token")?;
    println!("search:   ok (Patient, with the token)");
    println!("the connector works");
    Ok(())
}

async fn clinic(services: &Services, slug: &str) -> anyhow::Result<Tenant> {
    Ok(services
        .tenants
        .get(&Principal::Operator, &slug.parse()?)
        .await?)
}

async fn stored(services: &Services, tenant: &Tenant) -> anyhow::Result<Connector> {
    services
        .tenants
        .connector(&Principal::Operator, tenant.id)
        .await?
        .with_context(|| {
            format!(
                "{} has no EHR connector; set one with `portico connector set`",
                tenant.slug
            )
        })
}

fn read_secret(path: &Path, flag: &str) -> anyhow::Result<Secret<String>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("{flag}: cannot read {}", path.display()))?;
    let text = text.trim();
    if text.is_empty() {
        bail!("{flag}: {} is empty", path.display());
    }
    Ok(Secret::new(text.to_owned()))
}
