//! `portico records link | status`: connecting a patient to their record in the clinic's
//! EHR, and watching the sync (the backfill's progress, the queue, errors, latency).

use std::io::Write;
use std::time::Duration;

use anyhow::Context;
use clap::Subcommand;
use portico_platform::ids::PatientId;
use portico_platform::principal::Principal;
use portico_platform::records::service::SyncOverview;

use crate::services::Services;

#[derive(Debug, Subcommand)]
pub(crate) enum RecordsCommand {
    /// Link a patient to their record in the clinic's EHR; the server's sync worker then
    /// copies the whole record (the backfill) and keeps it current.
    Link {
        /// The clinic (slug).
        #[arg(long)]
        tenant: String,
        /// The patient's id in Portico.
        #[arg(long, value_name = "ID")]
        patient: String,
        /// The patient's FHIR id in the EHR (`Patient/<id>`).
        #[arg(long, value_name = "FHIR_ID")]
        ehr_patient: String,
    },
    /// Show each linked patient's sync, with a progress bar while the backfill runs.
    Status {
        /// The clinic (slug).
        #[arg(long)]
        tenant: String,
        /// Redraw every second until every backfill has finished.
        #[arg(long)]
        watch: bool,
    },
}

pub(crate) async fn run(command: RecordsCommand, services: Services) -> anyhow::Result<()> {
    match command {
        RecordsCommand::Link {
            tenant,
            patient,
            ehr_patient,
        } => {
            let clinic = services
                .tenants
                .get(&Principal::Operator, &tenant.parse()?)
                .await?;
            let patient: PatientId = patient.parse().context("--patient is not a patient id")?;
            let linked = services
                .sync
                .link(clinic.id, patient, &ehr_patient)
                .await
                .context("cannot link the patient")?;
            if linked {
                println!(
                    "linked {patient} to Patient/{ehr_patient}; the backfill is queued \
                     (watch it with: portico records status --tenant {tenant} --watch)"
                );
            } else {
                println!("{patient} was already linked to Patient/{ehr_patient}");
            }
            Ok(())
        }
        RecordsCommand::Status { tenant, watch } => {
            let clinic = services
                .tenants
                .get(&Principal::Operator, &tenant.parse()?)
                .await?;
            loop {
                let overview = services
                    .records
                    .sync_overview(&Principal::Operator, clinic.id)
                    .await?;
                let text = render(&overview);
                let running = overview.patients.iter().any(|p| p.backfilled_at.is_none());
                let mut out = std::io::stdout().lock();
                if watch {
                    // Clear the screen and draw again.
                    write!(out, "\x1b[2J\x1b[H")?;
                }
                write!(out, "{text}")?;
                out.flush()?;
                if !watch || !running {
                    return Ok(());
                }
                drop(out);
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// The overview as text: a line per patient, a bar while their backfill runs.
fn render(overview: &SyncOverview) -> String {
    let time = |at: Option<chrono::DateTime<chrono::Utc>>| {
        at.map_or_else(
            || "never".to_owned(),
            |at| at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        )
    };
    let mut text = String::new();
    if overview.patients.is_empty() {
        text.push_str("no patient is linked to the EHR yet\n");
    }
    for patient in &overview.patients {
        let progress = patient.backfill.as_ref().map(|job| &job.progress);
        let (done, total) = progress.map_or((0, 0), |p| (p.done, p.total.max(1)));
        let bar = bar(done, total, 24);
        let state = match (&patient.backfilled_at, &patient.backfill) {
            (Some(_), _) => "backfilled".to_owned(),
            (None, Some(job)) if job.state == "failed" => {
                format!("failed: {}", job.last_error.as_deref().unwrap_or("unknown"))
            }
            (None, Some(job)) if job.attempts > 1 => format!(
                "retrying (attempt {}): {}",
                job.attempts,
                job.last_error.as_deref().unwrap_or("")
            ),
            (None, _) => "backfilling".to_owned(),
        };
        text.push_str(&format!(
            "{}  {bar} {done:>2}/{total:<2} types  {:>6} stored  last sync {}  {state}\n",
            patient.patient,
            progress.map_or(0, |p| p.stored),
            time(patient.last_synced_at),
        ));
    }
    text.push_str(&format!(
        "queue: {} waiting, {} given up; {} resources could not be stored\n",
        overview.queued, overview.failed, overview.errors
    ));
    match (overview.latency.p50_ms, overview.latency.p95_ms) {
        (Some(p50), Some(p95)) => text.push_str(&format!(
            "finalized in the EHR -> visible here: p50 {p50} ms, p95 {p95} ms over {} results\n",
            overview.latency.count
        )),
        _ => text.push_str(
            "finalized in the EHR -> visible here: nothing finalized since the backfill yet\n",
        ),
    }
    text
}

fn bar(done: i32, total: i32, width: usize) -> String {
    let filled = usize::try_from(done.clamp(0, total))
        .unwrap_or(0)
        .saturating_mul(width)
        / usize::try_from(total.max(1)).unwrap_or(1);
    format!(
        "[{}{}]",
        "#".repeat(filled),
        ".".repeat(width - filled.min(width))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bar_fills_with_progress() {
        assert_eq!(bar(0, 17, 10), "[..........]");
        assert_eq!(bar(17, 17, 10), "[##########]");
        assert_eq!(bar(8, 16, 10), "[#####.....]");
        assert_eq!(bar(30, 17, 4), "[####]");
    }
}
