//! `portico audit`: verify the chains, make checkpoints now, export as FHIR `AuditEvent`s;
//! and the checkpoint schedule that `portico serve` runs.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, bail};
use chrono::{DateTime, NaiveDate, Utc};
use clap::Subcommand;
use portico_platform::audit::verify::Verifier;
use portico_platform::audit::{Action, Actor, NewEvent, Purpose, fhir};
use portico_platform::principal::Principal;
use portico_tenants::{Tenant, TenantService};

use crate::services::Services;

#[derive(Debug, Subcommand)]
pub(super) enum AuditCommand {
    /// Check every tenant's chain (database and archive) and every checkpoint signature;
    /// exits non-zero on any break, naming the first broken link.
    Verify {
        /// Only this tenant (slug).
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Sign and archive each tenant's chain head now (`serve` does this on a schedule).
    Checkpoint {
        /// Only this tenant (slug).
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Write a tenant's audit events as FHIR R4 AuditEvent resources, one JSON per line.
    Export {
        /// The tenant (slug).
        #[arg(long)]
        tenant: String,
        /// Events at or after this time (RFC 3339, or a date: 2026-01-31).
        #[arg(long, value_name = "TIME")]
        from: Option<String>,
        /// Events before this time (RFC 3339, or a date, meaning its start).
        #[arg(long, value_name = "TIME")]
        to: Option<String>,
        /// Write to this file instead of standard output.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
}

pub(super) async fn run(command: AuditCommand, services: Services) -> anyhow::Result<()> {
    match command {
        AuditCommand::Verify { tenant } => verify(&services, tenant.as_deref()).await,
        AuditCommand::Checkpoint { tenant } => {
            for tenant in tenants(&services.tenants, tenant.as_deref()).await? {
                let outcome = services
                    .checkpointer
                    .run(tenant.id)
                    .await
                    .with_context(|| format!("{}: checkpoint failed", tenant.slug))?;
                match outcome.checkpoint {
                    Some(seq) => println!("{}: checkpoint at event {seq}", tenant.slug),
                    None => println!("{}: nothing new to checkpoint", tenant.slug),
                }
                for (first, last) in outcome.segments {
                    println!("{}: archived events {first}-{last}", tenant.slug);
                }
            }
            Ok(())
        }
        AuditCommand::Export {
            tenant,
            from,
            to,
            out,
        } => {
            let from = from.as_deref().map(parse_time).transpose()?;
            let to = to.as_deref().map(parse_time).transpose()?;
            export(&services, &tenant, from, to, out).await
        }
    }
}

async fn verify(services: &Services, only: Option<&str>) -> anyhow::Result<()> {
    let verifier = Verifier::new(services.checkpointer.clone());
    println!("archive: {}", services.checkpointer.sink().describe());
    let mut broken = 0;
    for tenant in tenants(&services.tenants, only).await? {
        let report = verifier
            .verify(tenant.id)
            .await
            .with_context(|| format!("{}: cannot verify", tenant.slug))?;
        match report.breaks.first() {
            None => println!(
                "{}: ok: {}, {}, {}; {} since the last checkpoint",
                tenant.slug,
                count(report.events, "event"),
                count(report.checkpoints, "checkpoint"),
                count(report.segments, "segment"),
                count(report.unsigned, "event"),
            ),
            Some(first) => {
                broken += 1;
                println!("{}: BROKEN at event {}: {first}", tenant.slug, first.seq());
                for other in &report.breaks[1..] {
                    println!("{}:   also: {other}", tenant.slug);
                }
            }
        }
    }
    if broken > 0 {
        bail!("{broken} audit chain(s) failed verification");
    }

    Ok(())
}

async fn export(
    services: &Services,
    slug: &str,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    out: Option<PathBuf>,
) -> anyhow::Result<()> {
    let tenant = services
        .tenants
        .get(&Principal::Operator, &slug.parse()?)
        .await?;
    let mut writer: Box<dyn Write> = match &out {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path)
                .with_context(|| format!("cannot create {}", path.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    // The export is itself an access to the trail, and is recorded first: if it cannot
    // be recorded, nothing is exported.
    let event = NewEvent::new(
        Actor::operator(),
        Action::Export,
        "AuditEvent",
        Purpose::Legal,
    )?;
    services.audit.record(tenant.id, &[event]).await?;

    let mut next = 1;
    let mut written = 0;
    loop {
        let page = services.audit.events(tenant.id, next, 1_000).await?;
        let Some(last) = page.last() else { break };
        next = last.seq + 1;
        for event in &page {
            let in_range =
                from.is_none_or(|from| event.at >= from) && to.is_none_or(|to| event.at < to);
            if in_range {
                serde_json::to_writer(&mut writer, &fhir::to_fhir(event))?;
                writer.write_all(b"\n")?;
                written += 1;
            }
        }
    }
    writer.flush()?;
    if let Some(path) = out {
        eprintln!("wrote {written} AuditEvent resources to {}", path.display());
    }

    Ok(())
}

/// "1 event", "2 events".
fn count<N: std::fmt::Display + PartialEq + From<u8>>(n: N, noun: &str) -> String {
    if n == N::from(1) {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// Every tenant, or the one named.
async fn tenants(service: &TenantService, only: Option<&str>) -> anyhow::Result<Vec<Tenant>> {
    Ok(match only {
        Some(slug) => vec![service.get(&Principal::Operator, &slug.parse()?).await?],
        None => service.list(&Principal::Operator).await?,
    })
}

fn parse_time(text: &str) -> anyhow::Result<DateTime<Utc>> {
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Ok(at.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|date| date.and_hms_opt(0, 0, 0))
        .map(|at| at.and_utc())
        .with_context(|| format!("{text:?} is not a time (2026-01-31 or 2026-01-31T09:00:00Z)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_read_as_english() {
        assert_eq!(count(1_i64, "event"), "1 event");
        assert_eq!(count(0_usize, "segment"), "0 segments");
        assert_eq!(count(12_usize, "checkpoint"), "12 checkpoints");
    }

    #[test]
    fn times_are_dates_or_rfc3339() {
        assert_eq!(
            parse_time("2026-01-31").unwrap().to_rfc3339(),
            "2026-01-31T00:00:00+00:00"
        );
        assert_eq!(
            parse_time("2026-01-31T09:30:00-05:00")
                .unwrap()
                .to_rfc3339(),
            "2026-01-31T14:30:00+00:00"
        );
        let err = parse_time("last tuesday").unwrap_err().to_string();
        assert!(err.contains("is not a time"), "{err}");
    }
}
