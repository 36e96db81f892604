//! The job runner inside the server (it also inventories the server's own stores on their
//! schedules, `stores add --inventory-every`): every [`ServerLimits::interval`](crate::ServerLimits)
//! (250 ms by default) it runs the jobs that are due by the server's clock, on the blocking
//! pool, so a job is run within a second of its `JobTime` and a store's locations are current as
//! soon as its job ends (the service inventories the store after each job). On shutdown it
//! finishes the batch it is running and stops; `pfxkit jobs run` may run beside it (jobs are
//! claimed in the catalog, so each runs once).
//!
//! Every [`ServerLimits::renewal_interval`](crate::ServerLimits) (hourly by default, and once at
//! start) the same loop runs the renewal policy check before the due jobs, so the Replace jobs a
//! renewal creates run in the same pass. Two servers on one catalog may check at once: the
//! catalog records each renewal exactly once.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::watch;

use crate::State;
use pfxkit_catalog::jobs::now_ms;

/// How often the runner looks for stores whose scheduled inventory is due (their schedules are
/// a minute at least).
const INVENTORY_CHECK: std::time::Duration = std::time::Duration::from_secs(30);

/// Runs due jobs, the scheduled inventories of the server's own stores and, when its interval
/// has passed, the renewal check, until `stop` turns true.
pub(crate) async fn run(state: Arc<State>, mut stop: watch::Receiver<bool>) {
    let started = now_ms();
    let last_inventory = Arc::new(std::sync::Mutex::new(HashMap::new()));
    let mut next_check = tokio::time::Instant::now() + INVENTORY_CHECK;
    let mut last_renewal_check: Option<Instant> = None;
    loop {
        if *stop.borrow() {
            break;
        }
        let renewal_due =
            last_renewal_check.is_none_or(|t| t.elapsed() >= state.limits.renewal_interval);
        if renewal_due {
            last_renewal_check = Some(Instant::now());
            check_renewals(&state).await;
        }
        if tokio::time::Instant::now() >= next_check {
            next_check = tokio::time::Instant::now() + INVENTORY_CHECK;
            let service = state.service.clone();
            let last = last_inventory.clone();
            let done = tokio::task::spawn_blocking(move || {
                let Ok(mut last) = last.lock() else {
                    return Ok(Vec::new());
                };
                service.scheduled_inventories(now_ms(), started, &mut last)
            })
            .await;
            match done {
                Ok(Ok(reports)) => {
                    for r in reports {
                        tracing::info!(
                            store = %r.store_id,
                            result = r.result.name(),
                            entries = r.entries,
                            "scheduled inventory"
                        );
                    }
                }
                Ok(Err(e)) => tracing::error!(error = %e, "scheduled inventory: catalog error"),
                Err(e) => tracing::error!(error = %e, "scheduled inventory: task failed"),
            }
        }
        let service = state.service.clone();
        let ran = tokio::task::spawn_blocking(move || {
            service.run_jobs(now_ms(), &|job| {
                tracing::info!(
                    job = job.id,
                    store = %job.job.store_id,
                    result = job.result.map(|r| r.name()).unwrap_or("-"),
                    "job finished"
                );
            })
        })
        .await;
        match ran {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "job runner: catalog error"),
            Err(e) => tracing::error!(error = %e, "job runner: task failed"),
        }
        tokio::select! {
            () = tokio::time::sleep(state.limits.runner_interval) => {}
            () = async { let _ = stop.wait_for(|s| *s).await; } => break,
        }
    }
}

/// The renewal policy check, off the async threads; one log line per decision.
async fn check_renewals(state: &Arc<State>) {
    let service = state.service.clone();
    let checked = tokio::task::spawn_blocking(move || service.renew_due(now_ms())).await;
    match checked {
        Ok(Ok(decisions)) => {
            for d in decisions {
                tracing::info!(
                    certificate = d.certificate_id,
                    successor = d.successor_id.unwrap_or_default(),
                    outcome = d.outcome.name(),
                    principal = %d.principal,
                    stores = d.stores.len(),
                    message = d.message.as_deref().unwrap_or(""),
                    "renewal policy decision"
                );
            }
        }
        Ok(Err(e)) => tracing::error!(error = %e, "renewal check: catalog error"),
        Err(e) => tracing::error!(error = %e, "renewal check: task failed"),
    }
}
