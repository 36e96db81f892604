//! The job runner inside the server: every [`ServerLimits::interval`](crate::ServerLimits)
//! (250 ms by default) it runs the jobs that are due by the server's clock, on the blocking
//! pool, so a job is run within a second of its `JobTime` and a store's locations are current as
//! soon as its job ends (the service inventories the store after each job). On shutdown it
//! finishes the batch it is running and stops; `pfxkit jobs run` may run beside it (jobs are
//! claimed in the catalog, so each runs once).

use std::sync::Arc;

use tokio::sync::watch;

use crate::State;
use pfxkit_catalog::jobs::now_ms;

/// Runs due jobs until `stop` turns true.
pub(crate) async fn run(state: Arc<State>, mut stop: watch::Receiver<bool>) {
    loop {
        if *stop.borrow() {
            break;
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
