//! The `portico` command line: serve, migrate, demo, tenants, configuration.

#![allow(
    clippy::print_stdout,
    reason = "a command line's output is its interface"
)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use portico_graphql::Limits;
use portico_platform::crypto::keys::DELETION_WINDOW_DAYS;
use portico_platform::principal::Principal;
use portico_tenants::{DomainName, NewTenant, Tenant, TenantError, TenantResolver, TenantSlug};

mod account;
mod audit;
mod connector;
mod patient;
mod records;
mod sandbox;

use portico_platform::audit::Actor;
use portico_platform::crypto::phi::Phi;
use portico_platform::identity::invitation::NewInvitation;
use portico_platform::identity::local::normalize_email;
use portico_platform::identity::registry::{Demographics, NewPatient};
use portico_platform::identity::role::Role;

use crate::config::{Config, DatabaseProvider, Mode, Sources};
use crate::http::{self, AppState, EdgeSettings, EhrEdge};
use crate::services::Services;
use crate::{database, logging};

/// Portico: HIPAA-compliant patient portals for many clinics, in one binary.
#[derive(Debug, Parser)]
#[command(name = "portico", version, about, propagate_version = true)]
struct Cli {
    /// Configuration file [default: ./portico.toml if present; env: PORTICO_CONFIG].
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Directory for the embedded database and local state [default: ./data].
    #[arg(long, global = true, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the portals, the APIs and the consoles.
    Serve(ServeArgs),
    /// Apply pending database migrations, as the schema owner.
    Migrate,
    /// Run a demo on the embedded defaults: SQLite, the demo clinic "sunrise", development mode.
    Demo(ListenArgs),
    /// Manage tenants (clinics).
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Manage tenants' keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Verify, checkpoint and export the audit trail.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Manage sign-in accounts.
    #[command(subcommand)]
    Account(AccountCommand),
    /// A clinic's EHR connector: set, show, test.
    #[command(subcommand)]
    Connector(connector::ConnectorCommand),
    /// The clinic's patient registry and activation codes.
    #[command(subcommand)]
    Patient(patient::PatientCommand),
    /// Patients' records from the EHR: link a patient, watch the sync.
    #[command(subcommand)]
    Records(records::RecordsCommand),
    /// Show the messages the embedded notifier kept (instead of sending SMS and e-mail).
    Outbox(patient::OutboxArgs),
    /// Inspect the configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
}

#[derive(Debug, Subcommand)]
enum AccountCommand {
    /// Create an account (password read from standard input) and print its authenticator
    /// secret, once. Development mode only.
    Create(account::CreateAccount),
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Make a new version of the tenant's key current; existing data keys stay readable.
    Rotate {
        /// The tenant's slug.
        #[arg(long)]
        tenant: String,
    },
    /// Re-wrap the tenant's data keys under its key's current version (sealed data is not
    /// touched).
    Rewrap {
        /// The tenant's slug.
        #[arg(long)]
        tenant: String,
    },
}

#[derive(Debug, Args)]
struct ListenArgs {
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
}

#[derive(Debug, Args)]
struct ServeArgs {
    #[command(flatten)]
    listen: ListenArgs,
    /// Do not apply pending migrations at start (they must have been applied already).
    #[arg(long)]
    no_migrate: bool,
}

#[derive(Debug, Subcommand)]
enum TenantCommand {
    /// Create a tenant.
    Create {
        /// Short name: a lowercase DNS label; the portal is served at <slug>.<base_domain>.
        #[arg(long)]
        slug: String,
        /// The clinic's name as patients see it.
        #[arg(long)]
        name: String,
        /// A custom domain for the portal (repeatable). You vouch that the clinic controls it.
        #[arg(long = "domain", value_name = "DOMAIN")]
        domains: Vec<String>,
        /// Invite the clinic's first admin: an invitation code goes to this address, valid
        /// for 7 days, accepted at the portal with `acceptInvitation`.
        #[arg(long, value_name = "EMAIL")]
        admin_email: Option<String>,
    },
    /// Invite a clinic admin again (a lost or expired invitation, a new admin).
    InviteAdmin {
        /// The tenant's slug.
        #[arg(long)]
        slug: String,
        /// Where the invitation goes, and the address the admin will sign in with.
        #[arg(long, value_name = "EMAIL")]
        email: String,
    },
    /// List tenants.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Offboard a tenant for good: close its portal and schedule its key for deletion,
    /// after which its PHI cannot be read by anyone (crypto-shredding).
    Offboard {
        /// The tenant's slug.
        #[arg(long)]
        slug: String,
        /// Days before the key is destroyed (7-30) [default: keys.deletion_window_days].
        #[arg(long, value_name = "DAYS")]
        deletion_window_days: Option<u32>,
        /// Confirm: this cannot be undone once the window has passed.
        #[arg(long)]
        yes: bool,
    },
    /// Close a tenant's portal; its data is kept.
    Suspend {
        /// The tenant's slug.
        #[arg(long)]
        slug: String,
    },
    /// Set a clinic's branding: colours (checked for WCAG AA contrast against white), support
    /// line and logo. Takes effect on the portal's next page; unnamed fields keep their value.
    Branding {
        /// The tenant's slug.
        #[arg(long)]
        slug: String,
        /// The main colour, #RRGGBB.
        #[arg(long, value_name = "COLOR")]
        primary: Option<String>,
        /// The second colour, #RRGGBB.
        #[arg(long, value_name = "COLOR")]
        accent: Option<String>,
        /// The support phone number patients see.
        #[arg(long, value_name = "PHONE")]
        support_phone: Option<String>,
        /// When support answers, e.g. "Mon-Fri 8am-5pm".
        #[arg(long, value_name = "TEXT")]
        support_hours: Option<String>,
        /// A PNG, JPEG or WebP logo, at most 256 KB.
        #[arg(long, value_name = "FILE")]
        logo: Option<PathBuf>,
    },
    /// Reopen a suspended tenant's portal.
    Resume {
        /// The tenant's slug.
        #[arg(long)]
        slug: String,
    },
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Validate the configuration and print it, secrets redacted.
    Check,
}

/// Exit status for configuration errors, as for usage errors.
const EXIT_CONFIG: u8 = 2;

/// Runs the command line and returns the process's exit status.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::load(sources(&cli)) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    logging::init(config.logging.format);

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command, config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Flags become the highest-priority configuration source.
fn sources(cli: &Cli) -> Sources {
    let mut overrides = Vec::new();
    if let Some(dir) = &cli.data_dir {
        overrides.push(("data_dir", toml::Value::String(dir.display().to_string())));
    }
    let listen = match &cli.command {
        Command::Serve(args) => args.listen.listen,
        Command::Demo(args) => args.listen,
        _ => None,
    };
    if let Some(listen) = listen {
        overrides.push(("http.listen", toml::Value::String(listen.to_string())));
    }
    if let Command::Demo(_) = cli.command {
        // The demo is the embedded defaults, whatever the environment says.
        overrides.push(("mode", toml::Value::String("development".into())));
        overrides.push(("database.provider", toml::Value::String("sqlite".into())));
    }

    Sources {
        file: cli.config.clone(),
        overrides,
    }
}

async fn run(command: Command, config: Config) -> anyhow::Result<()> {
    match command {
        Command::Serve(args) => {
            if !args.no_migrate && config.database.migrate_on_start {
                migrate(&config).await?;
            }
            serve(config, None).await
        }
        Command::Migrate => migrate(&config).await,
        Command::Demo(_) => demo(config).await,
        Command::Tenant(command) => tenant(command, &config).await,
        Command::Keys(command) => keys(command, &config).await,
        Command::Audit(command) => audit::run(command, services(&config).await?).await,
        Command::Account(AccountCommand::Create(args)) => {
            // An operator who makes an account and holds its authenticator secret could sign
            // in as a clinician or a patient, and operators never read PHI: in production
            // staff are invited by their clinic and patients enroll.
            if config.mode != Mode::Development {
                anyhow::bail!(
                    "`account create` works only in development mode; in production invite a \
                     clinic's admin with `portico tenant invite-admin`, who invites staff, and \
                     patients enroll with an activation code or self-enrollment"
                );
            }
            account::create(args, services(&config).await?).await
        }
        Command::Patient(command) => patient::run(command, services(&config).await?).await,
        Command::Connector(command) => {
            connector::run(command, &config, services(&config).await?).await
        }
        Command::Records(command) => records::run(command, services(&config).await?).await,
        Command::Outbox(args) => {
            // The outbox holds contact details and codes: a development stand-in for SMS and
            // e-mail, never something an operator reads in production.
            if config.mode != Mode::Development {
                anyhow::bail!(
                    "the outbox can be read only in development mode, as `portico demo` runs: \
                     PORTICO_MODE=development portico outbox --tenant <slug> (from a checkout: \
                     PORTICO_MODE=development cargo run --release -- outbox --tenant <slug>); \
                     in production messages go through a real notifier"
                );
            }
            patient::outbox(args, services(&config).await?).await
        }
        Command::Config(ConfigCommand::Check) => {
            print!("{}", config.to_redacted_toml());
            Ok(())
        }
    }
}

async fn migrate(config: &Config) -> anyhow::Result<()> {
    let applied = database::migrate(config).await?;
    tracing::info!(migrations.applied = applied, "database schema is current");

    Ok(())
}

/// The demo: migrate the embedded database, make sure the demo clinic exists, serve.
async fn demo(config: Config) -> anyhow::Result<()> {
    debug_assert_eq!(config.database.provider, DatabaseProvider::Sqlite);
    migrate(&config).await?;
    let services = services(&config).await?;
    let demo = NewTenant {
        slug: "sunrise".parse()?,
        display_name: "Sunrise Family Clinic".to_owned(),
        domains: Vec::new(),
    };
    match services.tenants.create(&Principal::System, demo).await {
        Ok(_) | Err(TenantError::SlugTaken(_)) => {}
        Err(err) => return Err(err).context("cannot create the demo clinic"),
    }
    let clinic = services
        .tenants
        .get(&Principal::System, &"sunrise".parse()?)
        .await?;
    sandbox::connect_demo_clinic(&config, &services, &clinic).await?;
    demo_patient(&config, &services).await?;

    serve(config, Some(Banner::Demo)).await
}

/// The demo patient's address and password (development mode only, on the demo clinic).
const DEMO_EMAIL: &str = "demo.patient@example.org";
const DEMO_PASSWORD: &str = "orange kite river 2026";
/// The demo clinic admin's address and password.
const DEMO_ADMIN_EMAIL: &str = "demo.admin@example.org";
const DEMO_ADMIN_PASSWORD: &str = "heron meadow lantern 2026";

/// Creates the demo patient once, and keeps how to sign in as them in
/// `<data_dir>/demo-sign-in.txt` (mode 0600): the authenticator secret is shown only when
/// an account is made.
async fn demo_patient(config: &Config, services: &Services) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;

    let path = config.data_dir.join("demo-sign-in.txt");
    if path.exists() {
        return Ok(());
    }
    let tenant = services
        .tenants
        .get(&Principal::System, &"sunrise".parse()?)
        .await?;
    let patient = services
        .registry
        .add(
            Actor::system(),
            tenant.id,
            &demo_registrant("Rosa", "Martinez"),
        )
        .await
        .context("cannot register the demo patient")?;
    // A second patient, with no account yet, to try enrollment with.
    let newcomer = services
        .registry
        .add(
            Actor::system(),
            tenant.id,
            &demo_registrant("Sam", "Rivera"),
        )
        .await
        .context("cannot register the second demo patient")?;
    // Their records are the sandbox EHR's first two charts.
    sandbox::link_demo_patient(services, &tenant, patient, 0).await?;
    sandbox::link_demo_patient(services, &tenant, newcomer, 1).await?;
    let activation = services
        .identity
        .issue_activation_code(&Principal::Operator, tenant.id, newcomer)
        .await
        .context("cannot issue the demo activation code")?;
    let created = account::create_account(
        services,
        &tenant,
        DEMO_EMAIL,
        &portico_platform::secret::Secret::new(DEMO_PASSWORD.to_owned()),
        portico_platform::identity::role::Role::Patient,
        Some(patient),
    )
    .await
    .context("cannot create the demo patient")?;
    let base32 = created.totp.base32();
    let secret = base32.as_str();
    let text = format!(
        "Demo patient at Sunrise Family Clinic\n\
         \x20 e-mail:   {DEMO_EMAIL}\n\
         \x20 password: {DEMO_PASSWORD}\n\
         \x20 authenticator secret: {secret}\n\
         \x20 (add it to any authenticator app, or: {})\n\
         \x20 otpauth URI: {}\n\
         \x20 a recovery code, if you have no authenticator (each works once): {}\n\n\
         Sign in (curl keeps the session cookie in ./jar):\n\
         \x20 curl -s -c jar -b jar http://localhost:8080/t/sunrise/graphql -H 'content-type: application/json' \\\n\
         \x20      -d '{{\"query\":\"mutation {{ signIn(email: \\\"{DEMO_EMAIL}\\\", password: \\\"{DEMO_PASSWORD}\\\") {{ next }} }}\"}}'\n\
         \x20 curl -s -c jar -b jar http://localhost:8080/t/sunrise/graphql -H 'content-type: application/json' \\\n\
         \x20      -d '{{\"query\":\"mutation {{ verifyTotp(code: \\\"123456\\\") {{ csrfToken }} }}\"}}'\n\
         \x20 curl -s -b jar http://localhost:8080/t/sunrise/graphql -H 'content-type: application/json' \\\n\
         \x20      -H 'x-csrf-token: <csrfToken from the last answer>' -d '{{\"query\":\"{{ me {{ kind patientId clinic }} }}\"}}'\n\n\
         Her record comes from the sandbox EHR (a new result every 20 seconds):\n\
         \x20 curl -s -b jar http://localhost:8080/t/sunrise/graphql -H 'content-type: application/json' \\\n\
         \x20      -H 'x-csrf-token: <csrfToken>' -d '{{\"query\":\"{{ labResults(first: 5) {{ results {{ name value unit flag item {{ releasedAt }} }} }} }}\"}}'\n",
        totp_one_liner(secret),
        created.totp.uri(&tenant.display_name, DEMO_EMAIL).as_str(),
        created
            .recovery_codes
            .first()
            .map(|code| code.expose().as_str())
            .unwrap_or_default(),
    );
    let admin = account::create_account(
        services,
        &tenant,
        DEMO_ADMIN_EMAIL,
        &portico_platform::secret::Secret::new(DEMO_ADMIN_PASSWORD.to_owned()),
        Role::TenantAdmin,
        None,
    )
    .await
    .context("cannot create the demo clinic admin")?;
    let admin_secret = admin.totp.base32();
    let staff = format!(
        "Demo clinic admin (staff) at Sunrise Family Clinic: the same sign-in, with\n\
         \x20 e-mail:   {DEMO_ADMIN_EMAIL}\n\
         \x20 password: {DEMO_ADMIN_PASSWORD}\n\
         \x20 authenticator secret: {}\n\
         \x20 (current code: {})\n\
         Signed in as the admin, invite staff with\n\
         \x20 mutation {{ inviteStaff(email: \"nurse@example.org\", role: NURSE) {{ role expiresAt }} }}\n\
         and read the invitation with `PORTICO_MODE=development portico outbox --tenant sunrise`\n\
         (from a checkout: `PORTICO_MODE=development cargo run --release -- outbox --tenant sunrise`).\n",
        admin_secret.as_str(),
        totp_one_liner(admin_secret.as_str()),
    );
    let text = format!(
        "{text}\n{staff}\n{}",
        enrollment_help(activation.code.expose())
    );
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(text.as_bytes())?;

    Ok(())
}

/// The demo patients' birth date and ZIP code.
const DEMO_BIRTH_DATE: &str = "1984-03-09";
const DEMO_ZIP: &str = "97201";

/// A demo patient as the registry (the EHR, later) holds them.
fn demo_registrant(given: &str, family: &str) -> NewPatient {
    NewPatient {
        demographics: Demographics {
            given: Phi::new(given),
            family: Phi::new(family),
            birth_date: chrono::NaiveDate::from_ymd_opt(1984, 3, 9).unwrap_or_default(),
            postal_code: Phi::new(DEMO_ZIP),
        },
        phone: Some("+15035550142".to_owned()),
        email: None,
    }
}

/// How to enroll as the second demo patient, either way.
fn enrollment_help(activation_code: &str) -> String {
    let enroll = format!(
        r#"mutation {{ enrollWithActivationCode(code: "{activation_code}", birthDate: "{DEMO_BIRTH_DATE}", email: "sam@example.org", password: "choose a long one") {{ totpSecret otpauthUri recoveryCodes }} }}"#
    );
    let start = format!(
        r#"mutation {{ startEnrollment(givenName: "Sam", familyName: "Rivera", birthDate: "{DEMO_BIRTH_DATE}", zip: "{DEMO_ZIP}") {{ ticket message }} }}"#
    );
    format!(
        "A second demo patient, Sam Rivera (born {DEMO_BIRTH_DATE}, ZIP {DEMO_ZIP}), has no account yet.\n\
         Enroll with the clinic's activation code (single use):\n  {enroll}\n\
         or self-enroll:\n  {start}\n\
         then read the code sent to Sam's phone with\n\
         `PORTICO_MODE=development portico outbox --tenant sunrise` and send\n\
         completeEnrollment(ticket, code, email, password). Either way, finish with verifyTotp.\n"
    )
}

/// A command that prints the current code for `secret` with nothing but Python.
fn totp_one_liner(secret: &str) -> String {
    format!(
        "python3 -c \"import base64,hmac,struct,time;k=base64.b32decode('{secret}');\
         h=hmac.digest(k,struct.pack('>Q',int(time.time())//30),'sha1');o=h[19]&15;\
         print('%06d'%((int.from_bytes(h[o:o+4],'big')&0x7fffffff)%1000000))\""
    )
}

#[derive(Debug, Clone, Copy)]
enum Banner {
    Demo,
}

async fn serve(config: Config, banner: Option<Banner>) -> anyhow::Result<()> {
    let services = services(&config).await?;
    let Services {
        db,
        tenants,
        audit,
        checkpointer,
        identity,
        clock,
        entropy,
        ..
    } = services.clone();
    let checkpoints = tokio::spawn(
        crate::audit::schedule::Schedule::every(std::time::Duration::from_secs(
            config.audit.checkpoint_interval_secs,
        ))
        .run(checkpointer, tenants.clone()),
    );
    let ttl = chrono::Duration::seconds(i64::try_from(config.tenancy.cache_ttl_secs).unwrap_or(5));
    let resolver = TenantResolver::new(
        tenants.clone(),
        config.http.base_domain.clone(),
        ttl,
        clock.clone(),
    );
    let limits = Limits {
        max_depth: config.graphql.max_depth,
        max_complexity: config.graphql.max_complexity,
        max_aliases: config.graphql.max_aliases,
    };
    let development = config.mode == Mode::Development;
    let schema = portico_graphql::build_schema(
        tenants,
        audit,
        identity.clone(),
        services.records.clone(),
        limits,
        development,
    );
    let settings = EdgeSettings {
        body_limit_bytes: config.http.body_limit_bytes,
        request_timeout: std::time::Duration::from_secs(config.http.request_timeout_secs),
        path_fallback: config.path_fallback(),
        development,
        max_batch: config.graphql.max_batch,
        forwarded_hops: config.http.forwarded_hops,
        clock,
        entropy,
    };
    let listener = tokio::net::TcpListener::bind(config.http.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.http.listen))?;
    let address = listener.local_addr()?;
    // The sandbox EHR runs only in development (the demo included), never in production.
    let sandbox = match development {
        true => Some(sandbox::start(&config, &services, address).await?),
        false => None,
    };
    let state = AppState {
        db,
        resolver,
        tenants: services.tenants.clone(),
        schema,
        identity,
        settings: Arc::new(settings),
        ehr: Some(EhrEdge {
            connections: services.connections.clone(),
            engine: services.sync.clone(),
            waker: services.sync_waker.clone(),
            sandbox: sandbox.clone(),
        }),
    };
    let (stop_worker, worker_stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = tokio::spawn(crate::ehr::worker::run(
        services.tenants.clone(),
        services.sync.clone(),
        services.connections.clone(),
        services.sync_waker.clone(),
        async move {
            worker_stopped.await.ok();
        },
    ));
    tracing::info!(http.address = %address, mode = ?config.mode, "listening");
    if let Some(Banner::Demo) = banner {
        print_demo_banner(address, &config.http.base_domain);
        if let Ok(text) = std::fs::read_to_string(config.data_dir.join("demo-sign-in.txt")) {
            println!("{text}");
        }
    }

    let grace = std::time::Duration::from_secs(config.http.shutdown_grace_secs);
    http::serve(listener, http::app(state), http::shutdown_signal(), grace).await?;
    stop_worker.send(()).ok();
    worker.await.ok();
    checkpoints.abort();
    tracing::info!("stopped");

    Ok(())
}

fn print_demo_banner(address: SocketAddr, base: &DomainName) {
    let port = address.port();
    println!(
        "\nPortico demo is running (development mode, SQLite in the data directory).\n\n\
         \x20 Sunrise Family Clinic, by host:  http://sunrise.{base}:{port}/graphql  (GraphiQL in a browser)\n\
         \x20 Sunrise Family Clinic, by path:  http://{address}/t/sunrise/graphql\n\
         \x20 Health:                          http://{address}/healthz  and  /readyz\n\n\
         Try:\n\
         \x20 curl -s http://{address}/t/sunrise/graphql -H 'content-type: application/json' \\\n\
         \x20      -d '{{\"query\":\"{{ tenant {{ slug displayName }} }}\"}}'\n\n\
         Stop with Ctrl-C.\n"
    );
}

/// The services on the serving connection, once the schema is known to be current.
async fn services(config: &Config) -> anyhow::Result<Services> {
    let db = database::open_for_serving(config).await?;
    if !database::migrations_current(&db)
        .await
        .context("cannot read the migration ledger")?
    {
        bail!("the database has pending migrations; run `portico migrate` first");
    }

    Services::build(config, db).await
}

async fn keys(command: KeysCommand, config: &Config) -> anyhow::Result<()> {
    let services = services(config).await?;
    let slug = match &command {
        KeysCommand::Rotate { tenant } | KeysCommand::Rewrap { tenant } => tenant.parse()?,
    };
    let tenant = services.tenants.get(&Principal::Operator, &slug).await?;
    match command {
        KeysCommand::Rotate { .. } => {
            services.vault.rotate(tenant.id).await?;
            println!("rotated the key of tenant {slug}");
        }
        KeysCommand::Rewrap { .. } => {
            let count = services.vault.rewrap(tenant.id).await?;
            println!("re-wrapped {count} data keys of tenant {slug}");
        }
    }

    Ok(())
}

/// Invites a clinic's admin as the operator, and says where the invitation went.
async fn invite_admin(services: &Services, tenant: &Tenant, email: &str) -> anyhow::Result<()> {
    let sent = services
        .identity
        .invite_staff(
            &Principal::Operator,
            tenant.id,
            NewInvitation {
                email,
                role: Role::TenantAdmin,
                practice: &tenant.display_name,
            },
        )
        .await?;
    println!(
        "invited the clinic admin: the code went to the address by e-mail and works until {}",
        sent.expires_at
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    );
    Ok(())
}

async fn tenant(command: TenantCommand, config: &Config) -> anyhow::Result<()> {
    let services = services(config).await?;
    let service = services.tenants.clone();
    let operator = Principal::Operator;
    match command {
        TenantCommand::Create {
            slug,
            name,
            domains,
            admin_email,
        } => {
            if let Some(email) = &admin_email
                && normalize_email(email).is_none()
            {
                bail!("--admin-email {email:?} is not an e-mail address");
            }
            let slug: TenantSlug = slug.parse()?;
            let domains = domains
                .iter()
                .map(|d| d.parse())
                .collect::<Result<Vec<DomainName>, _>>()?;
            let tenant = service
                .create(
                    &operator,
                    NewTenant {
                        slug,
                        display_name: name,
                        domains,
                    },
                )
                .await?;
            println!("created tenant {} ({})", tenant.slug, tenant.id);
            if let Some(email) = admin_email {
                invite_admin(&services, &tenant, &email)
                    .await
                    .with_context(|| {
                        format!(
                            "the tenant was created, but its admin was not invited; try again \
                             with `portico tenant invite-admin --slug {} --email …`",
                            tenant.slug
                        )
                    })?;
            }
        }
        TenantCommand::InviteAdmin { slug, email } => {
            let tenant = service.get(&operator, &slug.parse()?).await?;
            invite_admin(&services, &tenant, &email).await?;
        }
        TenantCommand::List { json } => {
            let tenants = service.list(&operator).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&tenants)?);
            } else {
                println!("{:<24} {:<10} {:<36} DOMAINS  NAME", "SLUG", "STATUS", "ID");
                for tenant in tenants {
                    let domains: Vec<_> = tenant.domains.iter().map(DomainName::as_str).collect();
                    let domains = if domains.is_empty() {
                        "-".to_owned()
                    } else {
                        domains.join(",")
                    };
                    println!(
                        "{:<24} {:<10} {:<36} {domains}  {}",
                        tenant.slug,
                        tenant.status.as_str(),
                        tenant.id,
                        tenant.display_name
                    );
                }
            }
        }
        TenantCommand::Offboard {
            slug,
            deletion_window_days,
            yes,
        } => {
            let window = deletion_window_days.unwrap_or(config.keys.deletion_window_days);
            if !DELETION_WINDOW_DAYS.contains(&window) {
                bail!("--deletion-window-days must be 7 to 30");
            }
            if !yes {
                bail!(
                    "offboarding closes {slug}'s portal and destroys its key in {window} days, \
                     after which its data cannot be recovered; run again with --yes to proceed"
                );
            }
            let tenant = service.offboard(&operator, &slug.parse()?, window).await?;
            println!(
                "offboarded tenant {}; its key will be destroyed in {window} days",
                tenant.slug
            );
        }
        TenantCommand::Suspend { slug } => {
            let tenant = service.suspend(&operator, &slug.parse()?).await?;
            println!("suspended tenant {}", tenant.slug);
        }
        TenantCommand::Resume { slug } => {
            let tenant = service.resume(&operator, &slug.parse()?).await?;
            println!("resumed tenant {}", tenant.slug);
        }
        TenantCommand::Branding {
            slug,
            primary,
            accent,
            support_phone,
            support_hours,
            logo,
        } => {
            let tenant = service.get(&operator, &slug.parse()?).await?;
            let mut branding = service.branding(tenant.id).await?;
            if let Some(primary) = primary {
                branding.primary = primary.parse()?;
            }
            if let Some(accent) = accent {
                branding.accent = accent.parse()?;
            }
            if let Some(phone) = support_phone {
                branding.support_phone = Some(phone).filter(|p| !p.trim().is_empty());
            }
            if let Some(hours) = support_hours {
                branding.support_hours = Some(hours).filter(|h| !h.trim().is_empty());
            }
            if let Some(path) = logo {
                let bytes = std::fs::read(&path)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                branding.logo = Some(portico_tenants::Logo::from_bytes(bytes)?);
            }
            service
                .set_branding(&operator, tenant.id, &branding)
                .await?;
            println!(
                "set the branding of {}: primary {}, accent {}",
                tenant.slug, branding.primary, branding.accent
            );
        }
    }

    Ok(())
}
