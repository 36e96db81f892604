//! The shared catalog under load, in one run (`cargo bench -p pfxkit-catalog --bench fleet`):
//!
//! 1. **Claiming**: `PFXKIT_BENCH_CLAIM_JOBS` (default 20,000) due jobs over a quarter as many
//!    stores, drained by 1, 2 and 4 runners at once, each runner its own `PostgresCatalog` (its
//!    own connection, as separate hosts would have) looping `claim_due_jobs(…, CLAIM_BATCH)` and
//!    `finish_job` per job. The store work is left out: this measures the queue. The same on
//!    SQLite for reference.
//! 2. **Replace at N stores** (`PFXKIT_BENCH_FLEET_STORES`, default 10,000) PKCS#12 stores on
//!    tmpfs (`/dev/shm`), on PostgreSQL and on SQLite: set-up (stores, Deploy, its run), then
//!    one Replace and the run of its jobs.
//!
//! PostgreSQL is a throwaway server (tests/pg) on a Unix socket, data on tmpfs, `fsync=off`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

#[path = "../tests/pg/mod.rs"]
mod pg;

use std::path::Path;
use std::time::Instant;

use pfxkit::store::StoreType;
use pfxkit::{Password, PasswordSource};
use pfxkit_catalog::ca::KeyType;
use pfxkit_catalog::jobs::{CLAIM_BATCH, JOB_LEASE_MS, JobOptions, NewCertificate, now_ms};
use pfxkit_catalog::postgres::PostgresCatalog;
use pfxkit_catalog::service::{CatalogLocation, EnrollRequest, Service};
use pfxkit_catalog::{Catalog, JobResult, JobStatus};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn populate_jobs(service: &Service, dir: &Path, jobs: usize) {
    let password = PasswordSource::Literal(Password::new("bench-store"));
    let stores: Vec<String> = (0..jobs / 4)
        .map(|i| {
            service
                .add_store(
                    None,
                    StoreType::Pkcs12,
                    &dir.join(format!("{i}.p12")),
                    None,
                    None,
                    Some(&password),
                )
                .unwrap()
                .id
        })
        .collect();
    let cert = service
        .enroll(
            None,
            &EnrollRequest::new("CN=claim.bench"),
            &Password::new(""),
        )
        .unwrap()
        .certificate_id;
    for alias in ["a", "b", "c", "d"] {
        service
            .deploy(cert, &stores, Some(alias), true, &JobOptions::default())
            .unwrap();
    }
}

/// Drains every job with `runners` threads, each with its own catalog; returns claims/s.
fn drain(catalogs: Vec<Box<dyn Catalog>>, total: usize) -> f64 {
    let started = Instant::now();
    let claimed: usize = std::thread::scope(|s| {
        let handles: Vec<_> = catalogs
            .iter()
            .map(|c| {
                s.spawn(move || {
                    let mut mine = 0;
                    let mut idle = 0;
                    loop {
                        let now = now_ms();
                        let batch = c
                            .claim_due_jobs(now, now - JOB_LEASE_MS, CLAIM_BATCH, "runner")
                            .unwrap();
                        if batch.is_empty() {
                            // Others may hold the older jobs of the stores still waiting.
                            let open = c
                                .jobs()
                                .unwrap()
                                .iter()
                                .any(|j| j.status != JobStatus::Completed);
                            if !open {
                                break;
                            }
                            idle += 1;
                            std::thread::sleep(std::time::Duration::from_millis(2));
                            continue;
                        }
                        for j in &batch {
                            c.finish_job(j.id, JobStatus::Completed, JobResult::Success, "")
                                .unwrap();
                        }
                        mine += batch.len();
                    }
                    let _ = idle;
                    mine
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    assert_eq!(claimed, total, "every job claimed exactly once");
    claimed as f64 / started.elapsed().as_secs_f64()
}

fn claim_bench(server: &pg::TestPostgres, tmp: &Path, jobs: usize) {
    println!("## claiming: {jobs} jobs over {} stores", jobs / 4);
    println!("| backend | runners | claims/s |");
    println!("|---|---|---|");
    for runners in [1usize, 2, 4] {
        let conninfo = server.create_database();
        let dir = tmp.join(format!("claim-pg-{runners}"));
        std::fs::create_dir_all(&dir).unwrap();
        let service = Service::init_at(
            &CatalogLocation::parse(&conninfo, Some(&dir.join("catalog.key"))).unwrap(),
        )
        .unwrap();
        service
            .ca_init("CN=Bench Root", KeyType::EcP256, None)
            .unwrap();
        populate_jobs(&service, &dir, jobs);
        let catalogs: Vec<Box<dyn Catalog>> = (0..runners)
            .map(|_| {
                Box::new(PostgresCatalog::connect_with_pool(&conninfo, 1).unwrap())
                    as Box<dyn Catalog>
            })
            .collect();
        let rate = drain(catalogs, jobs);
        println!("| PostgreSQL | {runners} | {rate:.0} |");
    }
    for runners in [1usize, 4] {
        let dir = tmp.join(format!("claim-sqlite-{runners}"));
        let service = Service::init(&dir.join("catalog")).unwrap();
        service
            .ca_init("CN=Bench Root", KeyType::EcP256, None)
            .unwrap();
        populate_jobs(&service, &dir, jobs);
        let catalogs: Vec<Box<dyn Catalog>> = (0..runners)
            .map(|_| {
                Box::new(
                    pfxkit_catalog::sqlite::SqliteCatalog::open(
                        &dir.join("catalog").join("catalog.sqlite"),
                    )
                    .unwrap(),
                ) as Box<dyn Catalog>
            })
            .collect();
        let rate = drain(catalogs, jobs);
        println!("| SQLite | {runners} | {rate:.0} |");
    }
}

fn replace_bench(name: &str, service: &Service, dir: &Path, n: usize) {
    let t = Instant::now();
    let password = PasswordSource::Literal(Password::new("bench-store"));
    let stores: Vec<String> = (0..n)
        .map(|i| {
            service
                .add_store(
                    None,
                    StoreType::Pkcs12,
                    &dir.join(format!("{i}.p12")),
                    None,
                    None,
                    Some(&password),
                )
                .unwrap()
                .id
        })
        .collect();
    let old = service
        .enroll(
            None,
            &EnrollRequest::new("CN=old.bench"),
            &Password::new(""),
        )
        .unwrap()
        .certificate_id;
    let new = service
        .enroll(
            None,
            &EnrollRequest::new("CN=new.bench"),
            &Password::new(""),
        )
        .unwrap()
        .certificate_id;
    service
        .deploy(old, &stores, Some("bench"), true, &JobOptions::default())
        .unwrap();
    let ran = service.run_jobs(now_ms(), &|_| {}).unwrap();
    assert_eq!(ran.len(), n);
    let setup = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let outcome = service
        .replace(
            old,
            NewCertificate::Certificate(new),
            &JobOptions::default(),
        )
        .unwrap();
    let scheduled = t.elapsed().as_secs_f64();
    assert_eq!(outcome.successful.len(), n);
    let ran = service.run_jobs(now_ms(), &|_| {}).unwrap();
    assert!(ran.iter().all(|j| j.result == Some(JobResult::Success)));
    let total = t.elapsed().as_secs_f64();
    println!(
        "| {name} | {n} | {setup:.1} s | {scheduled:.2} s | {total:.1} s | {:.0} |",
        n as f64 / total
    );
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else to parse.
    let Some(server) = pg::TestPostgres::start() else {
        eprintln!("fleet bench needs PostgreSQL");
        return;
    };
    let base = if Path::new("/dev/shm").is_dir() {
        tempfile::tempdir_in("/dev/shm").unwrap()
    } else {
        tempfile::tempdir().unwrap()
    };
    claim_bench(
        &server,
        base.path(),
        env_usize("PFXKIT_BENCH_CLAIM_JOBS", 20_000),
    );
    let n = env_usize("PFXKIT_BENCH_FLEET_STORES", 10_000);
    println!("\n## Replace at {n} PKCS#12 stores on tmpfs");
    println!("| backend | stores | set-up | Replace (scheduling) | Replace + run | jobs/s |");
    println!("|---|---|---|---|---|---|");
    let dir = base.path().join("replace-pg");
    std::fs::create_dir_all(&dir).unwrap();
    let conninfo = server.create_database();
    let service = Service::init_at(
        &CatalogLocation::parse(&conninfo, Some(&dir.join("catalog.key"))).unwrap(),
    )
    .unwrap();
    service
        .ca_init("CN=Bench Root", KeyType::EcP256, None)
        .unwrap();
    replace_bench("PostgreSQL", &service, &dir, n);
    drop(service);
    let dir = base.path().join("replace-sqlite");
    let service = Service::init(&dir.join("catalog")).unwrap();
    service
        .ca_init("CN=Bench Root", KeyType::EcP256, None)
        .unwrap();
    replace_bench("SQLite", &service, &dir, n);
}
