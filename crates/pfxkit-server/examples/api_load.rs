//! A load generator for `pfxkit serve` (issue 16, "Performance"): the server in this process
//! over real TLS and sockets, 64 keep-alive connections (one HTTP/1.1 client each, Basic
//! authentication on every request), the load generator on the same machine.
//!
//! ```text
//! cargo run --release -p pfxkit-server --example api_load -- [SECONDS] [PFXKIT_BINARY]
//! ```
//!
//! `PFXKIT_BENCH_STORES` sets the number of located stores (default 10,000);
//! `PFXKIT_BENCH_DIR` where the catalog goes (default: a temporary directory).
//!
//! Scenarios: `GET /Certificates/{id}?includeLocations=true` for SECONDS (default 10; memory
//! sampled every 10 s), `POST /Enrollment/PFX` (EC P-256) for SECONDS, and a Replace whose
//! certificate is located in 10,000 stores (jobs created, not run: the runner is off). With a
//! `pfxkit` binary, the same reads and enrollments through the CLI, one process per call, for
//! comparison. Prints one line per scenario: requests, requests/s, p50 / p99 / max latency.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::indexing_slicing
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use pfxkit::secret::{Password, PasswordSource};
use pfxkit::store::StoreType;
use pfxkit_catalog::Permission;
use pfxkit_catalog::ca::KeyType;
use pfxkit_catalog::service::{EnrollRequest, Service};
use pfxkit_server::{Server, ServerConfig, ServerLimits, tls};
use serde_json::{Value, json};

const CONNECTIONS: usize = 64;
const USER: &str = "bench";
const PASSWORD: &str = "bench-password";

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

/// Latencies in 10 µs buckets up to 2 s (longer ones in the last), shared by every connection:
/// the load generator's memory stays the same however long it runs, so the process's RSS
/// tracks the server's.
struct Histogram {
    buckets: Vec<AtomicU64>,
    max_us: AtomicU64,
}

const BUCKET_US: u64 = 10;
const BUCKETS: usize = 200_000;

impl Histogram {
    fn new() -> Self {
        Histogram {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            max_us: AtomicU64::new(0),
        }
    }

    fn record(&self, elapsed: Duration) {
        let us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        let i = usize::try_from(us / BUCKET_US).map_or(BUCKETS - 1, |i| i.min(BUCKETS - 1));
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.max_us.fetch_max(us, Ordering::Relaxed);
    }

    fn count(&self) -> u64 {
        self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).sum()
    }

    /// The upper edge of the bucket holding the `p` quantile, in ms.
    fn quantile_ms(&self, p: f64) -> f64 {
        let n = self.count();
        let rank = ((n as f64 * p).ceil() as u64).clamp(1, n.max(1));
        let mut seen = 0;
        for (i, b) in self.buckets.iter().enumerate() {
            seen += b.load(Ordering::Relaxed);
            if seen >= rank {
                return ((i as u64 + 1) * BUCKET_US) as f64 / 1000.0;
            }
        }
        0.0
    }
}

struct Report {
    name: String,
    latencies: Histogram,
    errors: usize,
    elapsed: Duration,
}

impl Report {
    fn new(name: &str) -> Self {
        Report {
            name: name.to_string(),
            latencies: Histogram::new(),
            errors: 0,
            elapsed: Duration::ZERO,
        }
    }

    fn print(&self) {
        let n = self.latencies.count();
        println!(
            "{:<58} {:>7} req {:>9.1} req/s  p50 {:>7.2} ms  p99 {:>7.2} ms  max {:>8.2} ms  errors {}",
            self.name,
            n,
            n as f64 / self.elapsed.as_secs_f64(),
            self.latencies.quantile_ms(0.50),
            self.latencies.quantile_ms(0.99),
            self.latencies.max_us.load(Ordering::Relaxed) as f64 / 1000.0,
            self.errors
        );
    }
}

fn client(ca_pem: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap())
        .http1_only()
        .pool_max_idle_per_host(1)
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// `CONNECTIONS` clients, each sending `request` back to back for `duration`.
async fn load<F>(name: &str, ca_pem: &str, duration: Duration, request: F) -> Report
where
    F: Fn(&reqwest::Client, usize) -> reqwest::RequestBuilder + Send + Sync + 'static,
{
    let request = Arc::new(request);
    let stop = Arc::new(AtomicBool::new(false));
    let report = Arc::new(Report::new(name));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CONNECTIONS {
        let c = client(ca_pem);
        let request = request.clone();
        let stop = stop.clone();
        let report = report.clone();
        tasks.push(tokio::spawn(async move {
            let mut errors = 0;
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                let ok = match request(&c, i).send().await {
                    Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
                    Err(_) => false,
                };
                if ok {
                    report.latencies.record(t.elapsed());
                } else {
                    errors += 1;
                }
                i += 1;
            }
            errors
        }));
    }
    tokio::time::sleep(duration).await;
    stop.store(true, Ordering::Relaxed);
    let mut errors = 0;
    for t in tasks {
        errors += t.await.unwrap();
    }
    let mut report = Arc::into_inner(report).unwrap();
    report.errors = errors;
    report.elapsed = start.elapsed();
    report
}

/// Runs `pfxkit ARGS` `n` times, one process per call, two at a time (the machine's cores).
fn cli_calls(name: &str, binary: &str, catalog: &std::path::Path, n: usize, args: &[&str]) {
    let start = Instant::now();
    let mut report = Report::new(name);
    std::thread::scope(|s| {
        for worker in 0..2 {
            let latencies = &report.latencies;
            s.spawn(move || {
                for i in (worker..n).step_by(2) {
                    let args: Vec<String> = args
                        .iter()
                        .map(|a| a.replace("{i}", &i.to_string()))
                        .collect();
                    let t = Instant::now();
                    let out = std::process::Command::new(binary)
                        .env("PFXKIT_CATALOG", catalog)
                        .args(&args)
                        .output()
                        .unwrap();
                    assert!(
                        out.status.success(),
                        "{}",
                        String::from_utf8_lossy(&out.stderr)
                    );
                    latencies.record(t.elapsed());
                }
            });
        }
    });
    report.elapsed = start.elapsed();
    report.print();
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args = std::env::args().skip(1);
    let seconds: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(10);
    let cli = args
        .next()
        .map(|p| std::fs::canonicalize(&p).expect("the pfxkit binary"));
    let duration = Duration::from_secs(seconds);

    let stores: usize = std::env::var("PFXKIT_BENCH_STORES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000);
    let dir = match std::env::var_os("PFXKIT_BENCH_DIR") {
        Some(d) => tempfile::tempdir_in(d).unwrap(),
        None => tempfile::tempdir().unwrap(),
    };
    let cat = dir.path().join("catalog");
    let svc = Service::init(&cat).unwrap();
    svc.ca_init("CN=Bench CA", KeyType::EcP256, None).unwrap();
    svc.add_user(USER, &Password::new(PASSWORD)).unwrap();
    for p in [Permission::Modify, Permission::Enroll, Permission::Admin] {
        svc.grant(None, USER, None, p).unwrap();
    }
    let enrolled = svc
        .enroll(
            Some(USER),
            &EnrollRequest::new("CN=bench.example".to_string()),
            &Password::new("transport"),
        )
        .unwrap();
    let id = enrolled.certificate_id;
    // `stores` stores, the certificate located in each (as an inventory would have recorded).
    let t = Instant::now();
    let stores_dir = dir.path().join("stores");
    let store_password = PasswordSource::Literal(Password::new("store-pw"));
    std::fs::create_dir_all(&stores_dir).unwrap();
    for i in 0..stores {
        if i % 1000 == 0 {
            println!("set-up: {i} stores");
        }
        let store = svc
            .add_store(
                None,
                StoreType::Pkcs12,
                &stores_dir.join(format!("s{i}.p12")),
                None,
                None,
                Some(&store_password),
            )
            .unwrap();
        svc.catalog()
            .set_locations(&store.id, &[("web".to_string(), id)])
            .unwrap();
    }
    println!(
        "set-up: {stores} stores located in {:.1} s; RSS {} MiB",
        t.elapsed().as_secs_f64(),
        rss_kib() / 1024
    );
    let ca_pem: String = svc
        .ca_chain()
        .unwrap()
        .iter()
        .map(pfxkit::pem::encode_certificate)
        .collect();
    let tls = tls::from_catalog_ca(&svc, "localhost", "127.0.0.1".parse().unwrap()).unwrap();
    let config = ServerConfig::new("127.0.0.1:0".parse().unwrap(), Some(tls))
        .runner(false)
        .limits(ServerLimits::default());
    let server = Server::bind(config, svc).await.unwrap();
    let base = server.base_url().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        server
            .run(async {
                let _ = rx.await;
            })
            .await
            .unwrap();
    });

    // A small certificate to read: located in 3 stores (the 10,000-store one answers 10,000
    // locations and is the Replace scenario's).
    let small = {
        let c = client(&ca_pem);
        let r: Value = c
            .post(format!("{base}/Enrollment/PFX"))
            .basic_auth(USER, Some(PASSWORD))
            .header("X-Keyfactor-Requested-With", "APIClient")
            .json(&json!({"Subject": "CN=read.example", "Password": "x"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        r["CertificateInformation"]["KeyfactorId"].as_i64().unwrap()
    };
    {
        let svc = Service::open(&cat).unwrap();
        let stores = svc.catalog().stores().unwrap();
        for s in stores.iter().take(3) {
            svc.catalog()
                .set_locations(&s.id, &[("web".into(), id), ("read".into(), small)])
                .unwrap();
        }
    }

    println!(
        "pfxkit serve: TLS 1.3 (rustls), HTTP/1.1 keep-alive, Basic auth, {CONNECTIONS} connections, {seconds} s per scenario"
    );
    let url = format!("{base}/Certificates/{small}?includeLocations=true");
    let rss_before = rss_kib();
    // Sampled every 10 s while the reads run (the first sample includes the connections'
    // set-up; flat means the later ones do not climb).
    let samples = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sampler = {
        let samples = samples.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(10)).await;
                samples.lock().unwrap().push(rss_kib() / 1024);
            }
        })
    };
    load(
        "GET /Certificates/{id}?includeLocations=true",
        &ca_pem,
        duration,
        move |c, _| {
            c.get(&url)
                .basic_auth(USER, Some(PASSWORD))
                .header("X-Keyfactor-Requested-With", "APIClient")
        },
    )
    .await
    .print();
    sampler.abort();
    println!(
        "  RSS (server and load generator, one process; the generator's memory is fixed): {} MiB before, every 10 s under load: {:?} MiB, after: {} MiB",
        rss_before / 1024,
        samples.lock().unwrap(),
        rss_kib() / 1024
    );

    let enroll_url = format!("{base}/Enrollment/PFX");
    load(
        "POST /Enrollment/PFX (EC P-256)",
        &ca_pem,
        duration,
        move |c, i| {
            c.post(&enroll_url)
                .basic_auth(USER, Some(PASSWORD))
                .header("X-Keyfactor-Requested-With", "APIClient")
                .json(&json!({"Subject": format!("CN=load{i}.example"), "Password": "x"}))
        },
    )
    .await
    .print();

    // Replace: the certificate located in 10,000 stores; jobs created, not run.
    let c = client(&ca_pem);
    let renewed: Value = c
        .post(format!("{base}/Enrollment/Renew"))
        .basic_auth(USER, Some(PASSWORD))
        .header("X-Keyfactor-Requested-With", "APIClient")
        .json(&json!({"CertificateId": id}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let new_id = renewed["KeyfactorId"].as_i64().unwrap();
    let t = Instant::now();
    let r: Value = c
        .post(format!("{base}/Enrollment/PFX/Replace"))
        .basic_auth(USER, Some(PASSWORD))
        .header("X-Keyfactor-Requested-With", "APIClient")
        .json(
            &json!({"ExistingCertificateId": id, "CertificateId": new_id, "Password": "entry-pw"}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    println!(
        "POST /Enrollment/PFX/Replace over {stores} stores: answered in {:.3} s, {} SuccessfulStores, {} FailedStores",
        t.elapsed().as_secs_f64(),
        r["SuccessfulStores"].as_array().map_or(0, Vec::len),
        r["FailedStores"].as_array().map_or(0, Vec::len)
    );
    if let Some((store, reason)) = r["Failures"].as_object().and_then(|f| f.iter().next()) {
        println!("  first failure: {store}: {reason}");
    }
    let _ = tx.send(());
    task.await.unwrap();

    if let Some(binary) = cli {
        let binary = binary.to_string_lossy().into_owned();
        let n = 200;
        println!("the same through the CLI, one process per call, 2 at a time ({n} calls):");
        let small_s = small.to_string();
        cli_calls(
            "pfxkit certificates show N --include-locations",
            &binary,
            &cat,
            n,
            &["certificates", "show", &small_s, "--include-locations"],
        );
        cli_calls(
            "pfxkit enroll --subject CN=cli{i} (EC P-256)",
            &binary,
            &cat,
            n,
            &[
                "enroll",
                "--subject",
                "CN=cli{i}.example",
                "--key-type",
                "ec-p256",
            ],
        );
    }
}
