//! The checkpoint schedule `portico serve` runs: every active tenant whose chain has grown
//! gets a signed checkpoint in the archive each interval. A failed run is logged and tried
//! again sooner; it is never fatal, because events keep being written to the database
//! whatever the archive does.

use std::time::Duration;

use portico_platform::audit::checkpoint::Checkpointer;
use portico_platform::principal::Principal;
use portico_tenants::{TenantService, TenantStatus};

/// When runs happen.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    /// Between successful runs.
    pub interval: Duration,
    /// After the first failure; doubled after each further one, up to `interval`.
    pub first_retry: Duration,
}

impl Schedule {
    /// Every `interval`, retrying a failure after 30 seconds, then 1, 2, 4 … minutes.
    pub fn every(interval: Duration) -> Self {
        Self {
            interval,
            first_retry: Duration::from_secs(30),
        }
    }

    /// The wait before the next run, after `failures` failed runs in a row.
    pub fn delay(&self, failures: u32) -> Duration {
        if failures == 0 {
            return self.interval;
        }
        let doubled = self.first_retry.saturating_mul(1 << (failures - 1).min(16));
        doubled.min(self.interval)
    }

    /// Runs forever (until the task is aborted).
    pub async fn run(self, checkpointer: Checkpointer, tenants: TenantService) {
        let mut failures: u32 = 0;
        loop {
            tokio::time::sleep(self.delay(failures)).await;
            if run_once(&checkpointer, &tenants).await {
                failures = 0;
            } else {
                failures = failures.saturating_add(1);
                tracing::warn!(
                    audit.failures = failures,
                    retry_in_secs = self.delay(failures).as_secs(),
                    "audit checkpoints incomplete; will retry"
                );
            }
        }
    }
}

/// Checkpoints every tenant that is not offboarded; whether all succeeded.
async fn run_once(checkpointer: &Checkpointer, tenants: &TenantService) -> bool {
    let list = match tenants.list(&Principal::System).await {
        Ok(list) => list,
        Err(err) => {
            tracing::error!(error = %err, "cannot list tenants for audit checkpoints");
            return false;
        }
    };
    let mut ok = true;
    for tenant in list.iter().filter(|t| t.status != TenantStatus::Offboarded) {
        if let Err(err) = checkpointer.run(tenant.id).await {
            ok = false;
            tracing::error!(tenant.id = %tenant.id, error = %err, "audit checkpoint failed");
        }
    }
    ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_retried_sooner_doubling_up_to_the_interval() {
        let schedule = Schedule::every(Duration::from_secs(3600));

        let delays: Vec<u64> = (0..9).map(|f| schedule.delay(f).as_secs()).collect();

        assert_eq!(delays, [3600, 30, 60, 120, 240, 480, 960, 1920, 3600]);
        assert_eq!(schedule.delay(u32::MAX).as_secs(), 3600);
    }
}
