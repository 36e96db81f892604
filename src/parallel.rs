//! Independent key derivations run side by side on a few long-lived helper threads.
//!
//! Opening or writing an archive costs a handful of independent KDFs (the MAC key, each
//! encrypted item's key), each well under a millisecond for common files. Spawning threads per
//! call costs a noticeable share of that (thread creation, stack mapping, exit), so the helpers
//! are started once, on first use, and then wait for work: one fewer than the cores the process
//! may use, since the calling thread works too.
//!
//! Jobs own their inputs (`'static`): a scoped API over persistent threads would need `unsafe`,
//! which this crate forbids, and copying a password and a few kilobytes of ciphertext is cheap
//! next to a KDF.

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex, OnceLock};

/// A unit of work for the helpers.
type Task = Box<dyn FnOnce() + Send + 'static>;

/// A job whose result the caller collects.
pub(crate) type Job<T> = Box<dyn FnOnce() -> T + Send + 'static>;

/// The cores this process may use, asked once: `available_parallelism` reads cgroup files on
/// every call, which costs as much as a small archive's KDFs.
pub(crate) fn cores() -> usize {
    static CORES: OnceLock<usize> = OnceLock::new();
    *CORES.get_or_init(|| {
        std::thread::available_parallelism()
            .map(std::num::NonZeroUsize::get)
            .unwrap_or(1)
    })
}

/// The helpers' queue, with `cores() - 1` threads started on first use (none on one core). A
/// helper that cannot be started is simply missing: the caller runs whatever nobody took.
fn helpers() -> Option<&'static Mutex<Sender<Task>>> {
    static HELPERS: OnceLock<Option<Mutex<Sender<Task>>>> = OnceLock::new();
    HELPERS
        .get_or_init(|| {
            let count = cores().saturating_sub(1);
            if count == 0 {
                return None;
            }
            let (tx, rx) = channel::<Task>();
            let rx = Arc::new(Mutex::new(rx));
            for i in 0..count {
                let rx = Arc::clone(&rx);
                let _ = std::thread::Builder::new()
                    .name(format!("pfxkit-kdf-{i}"))
                    .spawn(move || helper_loop(&rx));
            }
            Some(Mutex::new(tx))
        })
        .as_ref()
}

fn helper_loop(rx: &Mutex<Receiver<Task>>) {
    loop {
        let task = match rx.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        match task {
            // Tasks catch their own panics (see `run_all`); this one cannot unwind.
            Ok(task) => task(),
            Err(_) => return,
        }
    }
}

/// The jobs of one `run_all` call still waiting to be taken, and where results go.
struct Batch<T> {
    jobs: Mutex<VecDeque<(usize, Job<T>)>>,
    results: Mutex<Sender<(usize, Option<T>)>>,
}

impl<T: Send + 'static> Batch<T> {
    /// Takes and runs jobs until none are left. A panicking job reports `None` instead of
    /// taking the thread (and the caller waiting for its result) down with it.
    fn work(&self) {
        loop {
            let next = match self.jobs.lock() {
                Ok(mut jobs) => jobs.pop_front(),
                Err(_) => None,
            };
            let Some((index, job)) = next else { return };
            let result = catch_unwind(AssertUnwindSafe(job)).ok();
            if let Ok(results) = self.results.lock() {
                let _ = results.send((index, result));
            }
        }
    }
}

/// Runs every job, on the helpers and the calling thread together, and returns their results
/// in the jobs' order; `None` for a job that panicked.
pub(crate) fn run_all<T: Send + 'static>(jobs: Vec<Job<T>>) -> Vec<Option<T>> {
    let count = jobs.len();
    let helpers = if count > 1 { helpers() } else { None };
    let Some(helpers) = helpers else {
        return jobs
            .into_iter()
            .map(|job| catch_unwind(AssertUnwindSafe(job)).ok())
            .collect();
    };
    let (tx, rx) = channel();
    let batch = Arc::new(Batch {
        jobs: Mutex::new(jobs.into_iter().enumerate().collect()),
        results: Mutex::new(tx),
    });
    // One helper per job beyond the caller's first, at most one per helper thread.
    let wanted = (count - 1).min(cores().saturating_sub(1));
    if let Ok(queue) = helpers.lock() {
        for _ in 0..wanted {
            let batch = Arc::clone(&batch);
            let _ = queue.send(Box::new(move || batch.work()));
        }
    }
    batch.work();
    // Every job has been taken; wait for those the helpers are still running.
    let mut results: Vec<Option<T>> = (0..count).map(|_| None).collect();
    for _ in 0..count {
        match rx.recv() {
            Ok((index, result)) => {
                if let Some(slot) = results.get_mut(index) {
                    *slot = result;
                }
            }
            Err(_) => break,
        }
    }
    results
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_results_in_job_order() {
        let jobs: Vec<Job<u64>> = (0..50u64)
            .map(|i| {
                Box::new(move || {
                    std::thread::sleep(std::time::Duration::from_micros((50 - i) * 10));
                    i * i
                }) as Job<u64>
            })
            .collect();
        let results = run_all(jobs);
        assert_eq!(results, (0..50).map(|i| Some(i * i)).collect::<Vec<_>>());
    }

    #[test]
    fn a_panicking_job_yields_none_and_the_others_finish() {
        let jobs: Vec<Job<u8>> = vec![
            Box::new(|| 1),
            Box::new(|| panic!("job failure under test")),
            Box::new(|| 3),
        ];
        assert_eq!(run_all(jobs), vec![Some(1), None, Some(3)]);
        // The helpers survive it.
        let again: Vec<Job<u8>> = vec![Box::new(|| 4), Box::new(|| 5)];
        assert_eq!(run_all(again), vec![Some(4), Some(5)]);
    }

    #[test]
    fn runs_from_many_threads_at_once() {
        std::thread::scope(|scope| {
            for t in 0..8u64 {
                scope.spawn(move || {
                    for round in 0..20u64 {
                        let jobs: Vec<Job<u64>> = (0..4u64)
                            .map(|j| Box::new(move || t * 1000 + round * 10 + j) as Job<u64>)
                            .collect();
                        let expected: Vec<Option<u64>> =
                            (0..4).map(|j| Some(t * 1000 + round * 10 + j)).collect();
                        assert_eq!(run_all(jobs), expected);
                    }
                });
            }
        });
    }
}
