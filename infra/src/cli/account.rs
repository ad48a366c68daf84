//! `portico account create`: a sign-in account at a clinic, with its authenticator secret
//! shown once — in development mode only. In production staff are invited
//! (`portico tenant invite-admin`, then `inviteStaff`) and patients enroll.

use std::io::BufRead;

use anyhow::{Context, bail};
use clap::Args;
use portico_platform::identity::local::{Created, NewAccount};
use portico_platform::identity::role::Role;
use portico_platform::ids::PatientId;
use portico_platform::principal::Principal;
use portico_platform::secret::Secret;
use portico_tenants::Tenant;

use crate::services::Services;

#[derive(Debug, Args)]
pub(super) struct CreateAccount {
    /// The clinic (slug).
    #[arg(long)]
    tenant: String,
    /// The sign-in e-mail address.
    #[arg(long)]
    email: String,
    /// patient, provider, nurse, front_desk, billing or tenant_admin.
    #[arg(long)]
    role: String,
    /// For a patient, the patient record to link (a UUID) [default: a new one].
    #[arg(long, value_name = "ID")]
    patient: Option<String>,
}

pub(super) async fn create(args: CreateAccount, services: Services) -> anyhow::Result<()> {
    let role = Role::from_code(&args.role).with_context(|| {
        format!(
            "--role {:?} is not one of patient, provider, nurse, front_desk, billing, tenant_admin",
            args.role
        )
    })?;
    let patient = match (role, args.patient.as_deref()) {
        (Role::Patient, Some(id)) => {
            Some(id.parse::<PatientId>().context("--patient is not a UUID")?)
        }
        (Role::Patient, None) => Some(PatientId::generate(
            services.clock.as_ref(),
            services.entropy.as_ref(),
        )),
        (_, Some(_)) => bail!("--patient is only for --role patient"),
        (_, None) => None,
    };
    eprintln!("Password for {} (one line on standard input):", args.email);
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("cannot read the password from standard input")?;
    let password = Secret::new(line.trim_end_matches(['\r', '\n']).to_owned());
    let tenant = services
        .tenants
        .get(&Principal::Operator, &args.tenant.parse()?)
        .await?;
    let created = create_account(&services, &tenant, &args.email, &password, role, patient).await?;

    println!(
        "created {} account {} at {}",
        role, created.account, tenant.slug
    );
    if let Some(patient) = patient {
        println!("linked to patient {patient}");
    }
    print_totp(&tenant, &args.email, &created);

    Ok(())
}

/// Creates the account as the operator.
pub(super) async fn create_account(
    services: &Services,
    tenant: &Tenant,
    email: &str,
    password: &Secret<String>,
    role: Role,
    patient: Option<PatientId>,
) -> anyhow::Result<Created> {
    Ok(services
        .identity
        .create_account(
            &Principal::Operator,
            tenant.id,
            NewAccount {
                email,
                password,
                role,
                patient,
                clinic_name: &tenant.display_name,
                clinic_slug: tenant.slug.as_str(),
            },
        )
        .await?)
}

/// The authenticator secret and recovery codes, shown once: the secret as text for typing
/// in and as the URI a QR code would carry.
pub(super) fn print_totp(tenant: &Tenant, email: &str, created: &Created) {
    println!(
        "authenticator secret (shown once): {}\n  otpauth URI: {}",
        created.totp.base32().as_str(),
        created.totp.uri(&tenant.display_name, email).as_str()
    );
    println!("recovery codes (shown once; each works once instead of the authenticator):");
    for code in &created.recovery_codes {
        println!("  {}", code.expose());
    }
}
