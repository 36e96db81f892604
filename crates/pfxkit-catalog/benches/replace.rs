//! Replace across N file stores (N = 10, 100, 1000, 10,000 by default) of mixed types — a third
//! each PEM (key in a separate file, encrypted under the entry password), PKCS#12 (modern
//! profile) and JKS — all holding an EC P-256 certificate under the alias `bench`, in one SQLite
//! catalog, every store file in one directory.
//!
//! - One child process per N, first (this binary, re-executed with
//!   `PFXKIT_BENCH_REPLACE_CHILD=N`): builds the fleet, times Replace rounds with `Instant` —
//!   three up to N = 1000, one above, since one round over 10,000 stores takes minutes — and
//!   prints `VmHWM` from `/proc/self/status` after the set-up and after the rounds, the set-up's
//!   two phases (`add_store` × N; Deploy and its run), seconds per Replace and jobs/s. A runner
//!   that streamed jobs would stay flat in memory as N grows; one that held every store would not.
//! - `replace/run_jobs/N` (criterion, N ≤ 1000 only): the time of `Service::run_jobs` executing
//!   the N management jobs one Replace created (each job: one store transaction and the store's
//!   inventory); the Replace call itself is outside the timing, throughput (elements/s) is
//!   jobs/second. Each iteration replaces the certificate the stores hold with the other of two,
//!   so every job really rewrites its store. Ten flat samples.
//!
//! Environment:
//! - `PFXKIT_BENCH_REPLACE_SIZES=10,100,1000,10000`: the N to run (comma-separated; that is the
//!   default). Sizes above 1000 get the child's one-shot timing only.
//! - `PFXKIT_BENCH_REPLACE_STORES_PER_DIR=100`: spread the stores over directories of that many
//!   instead of one, to tell costs that grow with the directory from costs that grow with N.
//!
//! Run of 2026-11-25 06:30 UTC (2-core AMD EPYC, release, `cargo bench --bench replace`),
//! machine otherwise idle:
//!
//! | N | per Replace (child) | jobs/s | VmHWM set-up / after | criterion `run_jobs` |
//! |---|---|---|---|---|
//! | 10 | 0.02 s | 426 | 7.8 / 8.0 MiB | 32 ms (310 jobs/s) |
//! | 100 | 0.22 s | 451 | 8.4 / 8.6 MiB | 0.32 s (314 jobs/s) |
//! | 1000 | 2.26 s | 443 | 9.8 / 10.2 MiB | 2.88 s (347 jobs/s) |
//! | 10,000 | 22.7 s | 440 | 17.4 / 17.4 MiB | — |
//!
//! Set-up at 10,000: `add_store` × 10,000 1.7 s, Deploy and its run 20.1 s.
//!
//! Wall time grows linearly. An earlier run (loaded machine) found it quadratic: every store
//! lock ran recovery, which listed the store's whole directory 3–5 times (47 % of CPU in
//! `getdents64` at N = 1000; 829 s per Replace at 10,000); temporaries now have fixed names and
//! recovery checks known paths. The catalog's quadratic outcome listing and all-at-once job
//! claiming were fixed too (claims come in batches of `catalog::jobs::CLAIM_BATCH`).
//!
//! Memory is bounded by catalog metadata, not store contents: ≈0.8 KiB more per store from
//! 1000 to 10,000 (the job list `run_jobs` returns, Deploy's per-store records, SQLite's page
//! cache up to its 2 MiB); with every due job claimed at once it was 25.2 / 27.8 MiB at 10,000.
// A bench whose jobs failed would time nothing meaningful: failing loudly is the point.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput};
use pfxkit::store::StoreType;
use pfxkit::{Password, PasswordSource};
use pfxkit_catalog::ca::KeyType;
use pfxkit_catalog::jobs::{JobOptions, NewCertificate, now_ms};
use pfxkit_catalog::service::{CertificateRef, EnrollRequest, Service};
use pfxkit_catalog::{CertificateId, JobResult};

const DEFAULT_SIZES: [usize; 4] = [10, 100, 1000, 10_000];
/// The largest fleet criterion times; larger ones are timed once, in the child process.
const CRITERION_MAX: usize = 1000;
const SIZES_VAR: &str = "PFXKIT_BENCH_REPLACE_SIZES";
const PER_DIR_VAR: &str = "PFXKIT_BENCH_REPLACE_STORES_PER_DIR";
const CHILD: &str = "PFXKIT_BENCH_REPLACE_CHILD";
const ENTRY_PASSWORD: &str = "bench-entry-password";
const STORE_PASSWORD: &str = "bench-store-password";

/// N stores holding one of two certificates, and the catalog that knows them.
struct Fleet {
    _dir: tempfile::TempDir,
    service: Service,
    certificates: [CertificateId; 2],
    /// Index into `certificates` of the one the stores hold.
    held: usize,
    stores: usize,
    /// How long recording the stores in the catalog took (`Service::add_store` × N).
    add_stores: Duration,
}

impl Fleet {
    fn new(stores: usize) -> Fleet {
        let dir = tempfile::tempdir().unwrap();
        let service = Service::init(&dir.path().join("catalog")).unwrap();
        service
            .ca_init("CN=pfxkit Bench Root", KeyType::EcP256, None)
            .unwrap();
        let root = dir.path().join("stores");
        std::fs::create_dir(&root).unwrap();
        let per_dir = stores_per_dir();
        let store_password = PasswordSource::Literal(Password::new(STORE_PASSWORD));
        let started = Instant::now();
        let ids: Vec<String> = (0..stores)
            .map(|i| {
                let files = match per_dir {
                    None => root.clone(),
                    Some(per) => {
                        let sub = root.join((i / per).to_string());
                        if i % per == 0 {
                            std::fs::create_dir(&sub).unwrap();
                        }
                        sub
                    }
                };
                let (store_type, path, key_path, password) = match i % 3 {
                    0 => (
                        StoreType::Pem,
                        files.join(format!("{i}.crt")),
                        Some(files.join(format!("{i}.key"))),
                        None,
                    ),
                    1 => (
                        StoreType::Pkcs12,
                        files.join(format!("{i}.p12")),
                        None,
                        Some(&store_password),
                    ),
                    _ => (
                        StoreType::Jks,
                        files.join(format!("{i}.jks")),
                        None,
                        Some(&store_password),
                    ),
                };
                service
                    .add_store(None, store_type, &path, key_path.as_deref(), None, password)
                    .unwrap()
                    .id
            })
            .collect();
        let add_stores = started.elapsed();
        let transport = Password::new("");
        let first = service
            .enroll(
                None,
                &EnrollRequest::new("CN=bench.example.com").key_type(KeyType::EcP256),
                &transport,
            )
            .unwrap();
        let second = service
            .renew(None, &CertificateRef::Id(first.certificate_id), &transport)
            .unwrap();
        let entry = Password::new(ENTRY_PASSWORD);
        let deployed = service
            .deploy(
                first.certificate_id,
                &ids,
                Some("bench"),
                false,
                &JobOptions::new(Some(&entry), None, None),
            )
            .unwrap();
        assert_eq!(deployed.successful.len(), stores);
        let fleet = Fleet {
            _dir: dir,
            service,
            certificates: [first.certificate_id, second.certificate_id],
            held: 0,
            stores,
            add_stores,
        };
        fleet.run();
        fleet
    }

    /// Replace (untimed by the caller's choice): jobs for every store, due now.
    fn replace(&mut self) {
        let entry = Password::new(ENTRY_PASSWORD);
        let (from, to) = (
            self.certificates[self.held],
            self.certificates[1 - self.held],
        );
        let outcome = self
            .service
            .replace(
                from,
                NewCertificate::Certificate(to),
                &JobOptions::new(Some(&entry), None, None),
            )
            .unwrap();
        assert_eq!(outcome.successful.len(), self.stores, "{outcome:?}");
        self.held = 1 - self.held;
    }

    /// Runs every due job and checks each succeeded.
    fn run(&self) {
        let ran = self.service.run_jobs(now_ms(), &|_| {}).unwrap();
        assert_eq!(ran.len(), self.stores);
        for job in &ran {
            assert_eq!(job.result, Some(JobResult::Success), "{job:?}");
        }
    }
}

/// `VmHWM` (peak resident set) of this process, in KiB.
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// The fleet sizes to measure: `PFXKIT_BENCH_REPLACE_SIZES` (comma-separated) or the default.
fn sizes() -> Vec<usize> {
    match std::env::var(SIZES_VAR) {
        Ok(list) => list
            .split(',')
            .map(|n| {
                n.trim()
                    .parse()
                    .unwrap_or_else(|_| panic!("{SIZES_VAR}: '{n}' is not a store count"))
            })
            .collect(),
        Err(_) => DEFAULT_SIZES.to_vec(),
    }
}

/// `PFXKIT_BENCH_REPLACE_STORES_PER_DIR`: spread the stores over directories of this many;
/// unset, every store shares one directory.
fn stores_per_dir() -> Option<usize> {
    let value = std::env::var(PER_DIR_VAR).ok()?;
    let per = value
        .trim()
        .parse()
        .ok()
        .filter(|&n| n > 0)
        .unwrap_or_else(|| panic!("{PER_DIR_VAR}: '{value}' is not a positive count"));
    Some(per)
}

/// Replace rounds the child times: three up to 1000 stores, one above (a round over 10,000
/// stores takes minutes).
fn rounds(stores: usize) -> usize {
    if stores <= CRITERION_MAX { 3 } else { 1 }
}

/// The child's work: one fleet of `stores`, `rounds(stores)` Replace rounds, peak RSS after
/// each phase. Prints one line: stores, VmHWM after set-up and after the rounds (KiB), the
/// set-up's two phases (add_store; Deploy and its run, seconds), rounds, seconds per Replace
/// (`run_jobs` only), jobs/s.
fn child(stores: usize) {
    let started = Instant::now();
    let mut fleet = Fleet::new(stores);
    let after_setup = peak_rss_kib();
    let setup = started.elapsed();
    let rounds = rounds(stores);
    let mut run_time = Duration::ZERO;
    for _ in 0..rounds {
        fleet.replace();
        let t = Instant::now();
        fleet.run();
        run_time += t.elapsed();
    }
    let after_rounds = peak_rss_kib();
    let per_replace = run_time.as_secs_f64() / rounds as f64;
    let jobs_per_second = stores as f64 / per_replace;
    println!(
        "{stores} {after_setup} {after_rounds} {:.1} {:.1} {rounds} {per_replace:.2} {jobs_per_second:.0}",
        fleet.add_stores.as_secs_f64(),
        (setup - fleet.add_stores).as_secs_f64(),
    );
}

fn memory_report(exe: &Path, sizes: &[usize]) {
    println!("replace: peak memory and one-shot timing per fleet size (one child process each)");
    let header = [
        "stores",
        "VmHWM setup KiB",
        "VmHWM after KiB",
        "add_store s",
        "deploy s",
        "rounds",
        "s/Replace",
        "jobs/s",
    ];
    println!("{}", row(&header));
    for &n in sizes {
        let output = Command::new(exe)
            .env(CHILD, n.to_string())
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "child for {n}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let line = String::from_utf8_lossy(&output.stdout);
        let fields: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(fields.len(), header.len(), "child for {n}: {line}");
        println!("{}", row(&fields));
    }
}

/// One table row, each column right-aligned to its header's width.
fn row(fields: &[&str]) -> String {
    const WIDTHS: [usize; 8] = [6, 15, 15, 11, 8, 6, 9, 7];
    fields
        .iter()
        .zip(WIDTHS)
        .map(|(f, w)| format!("{f:>w$}"))
        .collect::<Vec<_>>()
        .join("  ")
}

fn bench_run_jobs(c: &mut Criterion, sizes: &[usize]) {
    let mut group = c.benchmark_group("replace");
    group.sample_size(10);
    // Ten samples of equal iteration counts rather than 1, 2, … 10 × d: at N = 1000 one
    // iteration is seconds, and linear sampling's 55 of them took minutes.
    group.sampling_mode(SamplingMode::Flat);
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(5));
    for &n in sizes.iter().filter(|&&n| n <= CRITERION_MAX) {
        let mut fleet = Fleet::new(n);
        group.throughput(Throughput::Elements(n as u64));
        group.bench_function(BenchmarkId::new("run_jobs", n), |b| {
            b.iter_custom(|iterations| {
                let mut timed = Duration::ZERO;
                for _ in 0..iterations {
                    fleet.replace();
                    let started = Instant::now();
                    fleet.run();
                    timed += started.elapsed();
                }
                timed
            });
        });
    }
    group.finish();
}

fn main() {
    if let Ok(n) = std::env::var(CHILD) {
        child(n.parse().unwrap());
        return;
    }
    let sizes = sizes();
    memory_report(&std::env::current_exe().unwrap(), &sizes);
    let mut criterion = Criterion::default().configure_from_args();
    bench_run_jobs(&mut criterion, &sizes);
    criterion.final_summary();
}
