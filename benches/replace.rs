//! Replace across N file stores (N = 10, 100, 1000) of mixed types — a third each PEM (key in a
//! separate file, encrypted under the entry password), PKCS#12 (modern profile) and JKS — all
//! holding an EC P-256 certificate under the alias `bench`, in one SQLite catalog.
//!
//! - `replace/run_jobs/N`: the time of `Service::run_jobs` executing the N management jobs one
//!   Replace created (each job: one store transaction and the store's inventory). The Replace
//!   call itself is outside the timing; the reported throughput (elements/s) is jobs/second.
//!   Each iteration replaces the certificate the stores hold with the other of two, so every
//!   job really rewrites its store.
//! - Peak memory: before the timings, each N runs in a child process (this binary, re-executed
//!   with `PFXKIT_BENCH_REPLACE_CHILD=N`) that builds the fleet, runs three Replace rounds, and
//!   prints `VmHWM` from `/proc/self/status` after the set-up and after the rounds. A runner
//!   that streamed jobs would stay flat as N grows; one that held every store in memory would
//!   not.
//!
//! One run (2 cores, criterion 0.8, release): run_jobs 107 / 125 / 124 jobs/s at N = 10 / 100 /
//! 1000 (93.7 ms, 0.80 s, 8.06 s per Replace); peak RSS 8.0 / 8.5 / 11.7 MiB after three rounds,
//! i.e. about 3.6 KiB more per store — flat in practice: stores are streamed, not held.
//!
//! Run: `cargo bench --bench replace`. Sample sizes are small: at N = 1000 one iteration is a
//! thousand store rewrites, each with a PBKDF2 of 10,000 iterations for PKCS#12 and PEM.
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

use criterion::{BenchmarkId, Criterion, Throughput};
use pfxkit::catalog::ca::KeyType;
use pfxkit::catalog::jobs::{JobOptions, NewCertificate, now_ms};
use pfxkit::catalog::service::{CertificateRef, EnrollRequest, Service};
use pfxkit::catalog::{CertificateId, JobResult};
use pfxkit::store::StoreType;
use pfxkit::{Password, PasswordSource};

const SIZES: [usize; 3] = [10, 100, 1000];
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
}

impl Fleet {
    fn new(stores: usize) -> Fleet {
        let dir = tempfile::tempdir().unwrap();
        let service = Service::init(&dir.path().join("catalog")).unwrap();
        service
            .ca_init("CN=pfxkit Bench Root", KeyType::EcP256, None)
            .unwrap();
        let files = dir.path().join("stores");
        std::fs::create_dir(&files).unwrap();
        let store_password = PasswordSource::Literal(Password::new(STORE_PASSWORD));
        let ids: Vec<String> = (0..stores)
            .map(|i| {
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
                    .add_store(store_type, &path, key_path.as_deref(), None, password)
                    .unwrap()
                    .id
            })
            .collect();
        let transport = Password::new("");
        let first = service
            .enroll(
                &EnrollRequest::new("CN=bench.example.com").key_type(KeyType::EcP256),
                &transport,
            )
            .unwrap();
        let second = service
            .renew(&CertificateRef::Id(first.certificate_id), &transport)
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

/// The child's work: one fleet of `stores`, three Replace rounds, peak RSS after each phase.
fn child(stores: usize) {
    let started = Instant::now();
    let mut fleet = Fleet::new(stores);
    let after_setup = peak_rss_kib();
    let setup = started.elapsed();
    let mut run_time = Duration::ZERO;
    for _ in 0..3 {
        fleet.replace();
        let t = Instant::now();
        fleet.run();
        run_time += t.elapsed();
    }
    let after_rounds = peak_rss_kib();
    let jobs_per_second = (3 * stores) as f64 / run_time.as_secs_f64();
    println!(
        "{stores} {after_setup} {after_rounds} {:.1} {jobs_per_second:.0}",
        setup.as_secs_f64()
    );
}

fn memory_report(exe: &Path) {
    println!("replace: peak memory per fleet size (one child process each)");
    println!(
        "{:>6}  {:>16}  {:>16}  {:>10}  {:>10}",
        "stores", "VmHWM setup KiB", "VmHWM after KiB", "setup s", "jobs/s"
    );
    for n in SIZES {
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
        let f: Vec<&str> = line.split_whitespace().collect();
        println!(
            "{:>6}  {:>16}  {:>16}  {:>10}  {:>10}",
            f[0], f[1], f[2], f[3], f[4]
        );
    }
}

fn bench_run_jobs(c: &mut Criterion) {
    let mut group = c.benchmark_group("replace");
    group.sample_size(10);
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(5));
    for n in SIZES {
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
    memory_report(&std::env::current_exe().unwrap());
    let mut criterion = Criterion::default().configure_from_args();
    bench_run_jobs(&mut criterion);
    criterion.final_summary();
}
