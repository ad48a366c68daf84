//! The sync worker every node runs: for each active clinic with a connector, queue the
//! polls that are due, then claim and run jobs until none is due. Jobs live in the
//! database, so any number of nodes share them; a notification wakes this node's worker at
//! once, and the others find the job on their next tick.

use std::sync::Arc;
use std::time::Duration;

use portico_platform::principal::Principal;
use portico_platform::records::{EhrConnections, SyncEngine};
use portico_tenants::{TenantService, TenantStatus};
use tokio::sync::Notify;

use super::Connections;

/// How often an idle worker looks for due work.
pub const TICK: Duration = Duration::from_secs(1);

/// The worker's handle: wake it when work was queued.
#[derive(Debug, Clone, Default)]
pub struct Waker(Arc<Notify>);

impl Waker {
    /// Wakes the worker now.
    pub fn wake(&self) {
        self.0.notify_one();
    }
}

/// Runs the worker until `shutdown` resolves.
pub async fn run(
    tenants: TenantService,
    engine: SyncEngine,
    connections: Connections,
    waker: Waker,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        if let Err(err) = round(&tenants, &engine, &connections).await {
            tracing::warn!(error = %err, "sync round failed");
        }
        tokio::select! {
            () = &mut shutdown => return,
            () = waker.0.notified() => {}
            () = tokio::time::sleep(TICK) => {}
        }
    }
}

/// One pass over every clinic: due polls queued, due jobs run.
pub async fn round(
    tenants: &TenantService,
    engine: &SyncEngine,
    connections: &Connections,
) -> anyhow::Result<usize> {
    let mut ran = 0;
    for tenant in tenants.list(&Principal::System).await? {
        if tenant.status != TenantStatus::Active {
            continue;
        }
        let connection = match connections.connect(tenant.id).await {
            Ok(Some(connection)) => connection,
            Ok(None) => continue,
            Err(err) => {
                tracing::warn!(tenant.id = %tenant.id, error = %err, "EHR connection unavailable");
                continue;
            }
        };
        engine
            .schedule_polls(tenant.id, connection.poll_interval)
            .await?;
        while let Some(job) = engine.claim(tenant.id).await? {
            ran += 1;
            // A failed job is back in the queue with a backoff, and logged; the round goes
            // on with the next.
            let _ = engine.run(&job, &connection).await;
        }
    }
    Ok(ran)
}
