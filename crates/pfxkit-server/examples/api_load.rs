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
use std::sync::atomic::{AtomicBool, Ordering};
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

struct Report {
    name: String,
    latencies_us: Vec<u64>,
    errors: usize,
    elapsed: Duration,
}

impl Report {
    fn print(&mut self) {
        self.latencies_us.sort_unstable();
        let n = self.latencies_us.len();
        let pct = |p: f64| {
            let i = ((n as f64 * p).ceil() as usize).clamp(1, n.max(1)) - 1;
            self.latencies_us.get(i).copied().unwrap_or(0) as f64 / 1000.0
        };
        println!(
            "{:<58} {:>7} req {:>9.1} req/s  p50 {:>7.2} ms  p99 {:>7.2} ms  max {:>8.2} ms  errors {}",
            self.name,
            n,
            n as f64 / self.elapsed.as_secs_f64(),
            pct(0.50),
            pct(0.99),
            pct(1.0),
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
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CONNECTIONS {
        let c = client(ca_pem);
        let request = request.clone();
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0;
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                let ok = match request(&c, i).send().await {
                    Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
                    Err(_) => false,
                };
                if ok {
                    lat.push(u64::try_from(t.elapsed().as_micros()).unwrap_or(u64::MAX));
                } else {
                    errors += 1;
                }
                i += 1;
            }
            (lat, errors)
        }));
    }
    tokio::time::sleep(duration).await;
    stop.store(true, Ordering::Relaxed);
    let mut report = Report {
        name: name.to_string(),
        latencies_us: Vec::new(),
        errors: 0,
        elapsed: Duration::ZERO,
    };
    for t in tasks {
        let (lat, errors) = t.await.unwrap();
        report.latencies_us.extend(lat);
        report.errors += errors;
    }
    report.elapsed = start.elapsed();
    report
}

/// Runs `pfxkit ARGS` `n` times, one process per call, two at a time (the machine's cores).
fn cli_calls(name: &str, binary: &str, catalog: &std::path::Path, n: usize, args: &[&str]) {
    let start = Instant::now();
    let lat = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for worker in 0..2 {
            let lat = &lat;
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
                    lat.lock()
                        .unwrap()
                        .push(u64::try_from(t.elapsed().as_micros()).unwrap_or(u64::MAX));
                }
            });
        }
    });
    Report {
        name: name.to_string(),
        latencies_us: lat.into_inner().unwrap(),
        errors: 0,
        elapsed: start.elapsed(),
    }
    .print();
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
    let sampler = {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let h = tokio::spawn(async move {
            let mut samples = Vec::new();
            while !s.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_secs(10)).await;
                samples.push(rss_kib() / 1024);
            }
            samples
        });
        (stop, h)
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
    sampler.0.store(true, Ordering::Relaxed);
    let samples = sampler.1.await.unwrap();
    println!(
        "  RSS (server and load generator, one process): {} MiB before, every 10 s: {samples:?} MiB",
        rss_before / 1024
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
