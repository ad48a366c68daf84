//! `portico patient add | activation-code` and `portico outbox`: the clinic's registry
//! (the EHR's Patient records, until connectors exist), clinic-issued activation codes,
//! and the messages the embedded notifier kept.

use anyhow::Context;
use chrono::NaiveDate;
use clap::{Args, Subcommand};
use portico_platform::audit::Actor;
use portico_platform::crypto::phi::Phi;
use portico_platform::identity::registry::{Demographics, NewPatient};
use portico_platform::ids::PatientId;
use portico_platform::principal::Principal;

use crate::services::Services;

#[derive(Debug, Subcommand)]
pub(super) enum PatientCommand {
    /// Register a patient in the clinic's registry (what the EHR holds, until connectors
    /// exist) and print their id.
    Add(AddPatient),
    /// Issue a single-use activation code for a patient (valid 30 days) and print it once.
    ActivationCode {
        /// The clinic (slug).
        #[arg(long)]
        tenant: String,
        /// The patient's id.
        #[arg(long, value_name = "ID")]
        patient: String,
    },
}

#[derive(Debug, Args)]
pub(super) struct AddPatient {
    /// The clinic (slug).
    #[arg(long)]
    tenant: String,
    /// Given (first) name.
    #[arg(long)]
    given: String,
    /// Family name.
    #[arg(long)]
    family: String,
    /// Date of birth, YYYY-MM-DD.
    #[arg(long, value_name = "DATE")]
    birth_date: String,
    /// ZIP code.
    #[arg(long)]
    zip: String,
    /// Mobile number on file, where verification codes go.
    #[arg(long)]
    phone: Option<String>,
    /// E-mail address on file.
    #[arg(long)]
    email: Option<String>,
}

/// `portico outbox`.
#[derive(Debug, Args)]
pub(super) struct OutboxArgs {
    /// The clinic (slug).
    #[arg(long)]
    tenant: String,
    /// How many of the newest messages [default: 10].
    #[arg(long, default_value_t = 10)]
    last: u64,
}

pub(super) async fn run(command: PatientCommand, services: Services) -> anyhow::Result<()> {
    match command {
        PatientCommand::Add(args) => {
            let tenant = services
                .tenants
                .get(&Principal::Operator, &args.tenant.parse()?)
                .await?;
            let new = NewPatient {
                demographics: Demographics {
                    given: Phi::new(args.given),
                    family: Phi::new(args.family),
                    birth_date: parse_date(&args.birth_date)?,
                    postal_code: Phi::new(args.zip),
                },
                phone: args.phone,
                email: args.email,
            };
            let patient = services
                .registry
                .add(Actor::operator(), tenant.id, &new)
                .await?;
            println!("registered patient {patient} at {}", tenant.slug);
        }
        PatientCommand::ActivationCode { tenant, patient } => {
            let tenant = services
                .tenants
                .get(&Principal::Operator, &tenant.parse()?)
                .await?;
            let patient: PatientId = patient.parse().context("--patient is not a patient id")?;
            let issued = services
                .identity
                .issue_activation_code(&Principal::Operator, tenant.id, patient)
                .await?;
            println!(
                "activation code (shown once; single use): {}\n  expires: {}",
                issued.code.expose(),
                issued
                    .expires_at
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            );
        }
    }

    Ok(())
}

pub(super) async fn outbox(args: OutboxArgs, services: Services) -> anyhow::Result<()> {
    let tenant = services
        .tenants
        .get(&Principal::Operator, &args.tenant.parse()?)
        .await?;
    let messages = services.outbox.recent(tenant.id, args.last).await?;
    if messages.is_empty() {
        println!("the outbox of {} is empty", tenant.slug);
    }
    for message in messages {
        println!(
            "{}  {} to {} ({})\n  {}",
            message
                .at
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            message.channel,
            message.to.expose(),
            message.kind,
            message.text.expose()
        );
    }

    Ok(())
}

/// A date of birth as typed on the command line.
pub(super) fn parse_date(text: &str) -> anyhow::Result<NaiveDate> {
    NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
        .with_context(|| format!("{text:?} is not a date in the form YYYY-MM-DD"))
}
