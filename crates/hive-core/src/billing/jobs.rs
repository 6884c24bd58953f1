//! Billing's jobs on the leader: holds whose call never settled (its replica died) are
//! released when they expire, and budget alerts are posted to the alert webhook.

use super::Billing;
use crate::kernel::jobs::{Job, JobContext};
use async_trait::async_trait;
use std::sync::Arc;
use std::time::Duration;

/// The job that releases expired holds.
pub const RELEASE_HOLDS: &str = "release-billing-holds";
/// The job that posts budget alerts.
pub const DELIVER_ALERTS: &str = "deliver-billing-alerts";
/// Holds released per run.
const HOLDS_PER_RUN: u32 = 500;

pub struct ReleaseExpiredHolds {
    pub every: Duration,
}

#[async_trait]
impl Job for ReleaseExpiredHolds {
    fn name(&self) -> &'static str {
        RELEASE_HOLDS
    }

    fn every(&self) -> Duration {
        self.every
    }

    async fn run(&self, ctx: &JobContext) -> Result<String, String> {
        let now = ctx.clock.now();
        let expired = ctx
            .store
            .billing()
            .expired_holds(now, HOLDS_PER_RUN)
            .await
            .map_err(|e| e.to_string())?;
        let mut released = 0;
        for hold in &expired {
            if ctx
                .store
                .billing()
                .release(hold.id)
                .await
                .map_err(|e| e.to_string())?
            {
                released += 1;
            }
        }
        Ok(format!("{released} expired hold(s) released"))
    }
}

pub struct DeliverAlerts {
    pub billing: Arc<Billing>,
    pub every: Duration,
}

#[async_trait]
impl Job for DeliverAlerts {
    fn name(&self) -> &'static str {
        DELIVER_ALERTS
    }

    fn every(&self) -> Duration {
        self.every
    }

    async fn run(&self, _ctx: &JobContext) -> Result<String, String> {
        let (delivered, failed) = self
            .billing
            .deliver_alerts()
            .await
            .map_err(|e| e.to_string())?;
        Ok(format!("{delivered} alert(s) delivered, {failed} failed"))
    }
}
