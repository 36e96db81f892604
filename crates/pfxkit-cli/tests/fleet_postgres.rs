//! The shared PostgreSQL catalog through the `pfxkit` binary: `--catalog postgres…` with
//! `--catalog-key`, several runner processes on one queue, a runner killed mid-batch, and
//! PostgreSQL restarted under a running process. Each test starts a throwaway server
//! (`pfxkit-catalog/tests/pg`); outside CI a machine without PostgreSQL skips them.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "../../pfxkit-catalog/tests/pg/mod.rs"]
mod pg;

use std::collections::{BTreeMap, HashSet};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use pfxkit::secret::{Password, PasswordSource};
use pfxkit::store::StoreType;
use pfxkit_catalog::jobs::{JOB_LEASE_MS, JobOptions, format_time, now_ms};
use pfxkit_catalog::service::{CatalogLocation, EnrollRequest, Service};
use pfxkit_catalog::{Error, JobResult, JobStatus};
use serde_json::Value;

const STORE_PASSWORD: &str = "fleet-store-password";

struct Fleet {
    server: pg::TestPostgres,
    conninfo: String,
    dir: tempfile::TempDir,
}

impl Fleet {
    fn start() -> Option<Fleet> {
        let server = pg::TestPostgres::start()?;
        let conninfo = server.create_database();
        Some(Fleet {
            server,
            conninfo,
            dir: tempfile::tempdir().unwrap(),
        })
    }

    fn key(&self) -> PathBuf {
        self.dir.path().join("catalog.key")
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_pfxkit"));
        c.env("PFXKIT_CATALOG", &self.conninfo)
            .env("PFXKIT_CATALOG_KEY", self.key())
            .env_remove("PFXKIT_PRINCIPAL")
            .arg("--json")
            .args(args);
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> Value {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "pfxkit {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    fn service(&self) -> Service {
        Service::open_at(&CatalogLocation::parse(&self.conninfo, Some(&self.key())).unwrap())
            .unwrap()
    }

    /// `catalog init` and `ca init` through the binary; `stores` stores (PKCS#12 and JKS
    /// alternately) and `certificates` successive certificates through the library.
    fn populate(&self, stores: usize, certificates: usize) -> (Service, Vec<String>, Vec<i64>) {
        self.ok(&["catalog", "init"]);
        self.ok(&["ca", "init", "--subject", "CN=Fleet Root"]);
        let service = self.service();
        let password = PasswordSource::Literal(Password::new(STORE_PASSWORD));
        let stores = (0..stores)
            .map(|i| {
                let (t, ext) = if i % 2 == 0 {
                    (StoreType::Pkcs12, "p12")
                } else {
                    (StoreType::Jks, "jks")
                };
                service
                    .add_store(
                        None,
                        t,
                        &self.dir.path().join(format!("{i}.{ext}")),
                        None,
                        None,
                        Some(&password),
                    )
                    .unwrap()
                    .id
            })
            .collect();
        let certificates = (0..certificates)
            .map(|i| {
                service
                    .enroll(
                        None,
                        &EnrollRequest::new(format!("CN=fleet-{i}.example")),
                        &Password::new(""),
                    )
                    .unwrap()
                    .certificate_id
            })
            .collect();
        (service, stores, certificates)
    }
}

fn deploy_in_turn(service: &Service, stores: &[String], certificates: &[i64]) {
    for c in certificates {
        let outcome = service
            .deploy(*c, stores, Some("web"), true, &JobOptions::default())
            .unwrap();
        assert_eq!(outcome.successful.len(), stores.len());
    }
}

fn sha1_of_pem(pem: &[u8]) -> String {
    let mut c = Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha1"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(c.stdin.as_mut().unwrap(), pem).unwrap();
    let out = c.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim()
        .rsplit('=')
        .next()
        .unwrap()
        .replace(':', "")
        .to_lowercase()
}

/// What openssl (PKCS#12) or keytool (JKS) finds in a store: the SHA-1 of each certificate with
/// a key (one entry expected).
fn independent_view(path: &Path) -> Vec<String> {
    if path.extension().is_some_and(|e| e == "p12") {
        let out = Command::new("openssl")
            .args(["pkcs12", "-nokeys", "-clcerts", "-passin"])
            .arg(format!("pass:{STORE_PASSWORD}"))
            .arg("-in")
            .arg(path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        text.split("-----BEGIN CERTIFICATE-----")
            .skip(1)
            .map(|c| sha1_of_pem(format!("-----BEGIN CERTIFICATE-----{c}").as_bytes()))
            .collect()
    } else {
        let out = Command::new("keytool")
            .args([
                "-list",
                "-storetype",
                "JKS",
                "-storepass",
                STORE_PASSWORD,
                "-keystore",
            ])
            .arg(path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        text.lines()
            .filter(|l| {
                l.contains("Certificate fingerprint (SHA-256)") || l.contains("PrivateKeyEntry")
            })
            .filter_map(|l| l.split("(SHA-256): ").nth(1))
            .map(|f| f.replace(':', "").to_lowercase())
            .collect()
    }
}

/// Every job Completed with Success exactly once (its id listed by exactly one runner), and
/// every store holding exactly the newest certificate, as the catalog's inventory and as openssl
/// / keytool see it.
fn assert_fleet_converged(
    fleet: &Fleet,
    service: &Service,
    stores: &[String],
    newest: i64,
    ran_ids: &[i64],
) {
    let jobs = service.catalog().jobs().unwrap();
    let mut seen = HashSet::new();
    for id in ran_ids {
        assert!(seen.insert(*id), "job {id} ran twice");
    }
    for j in &jobs {
        assert_eq!(j.status, JobStatus::Completed, "job {}", j.id);
        assert_eq!(
            j.result,
            Some(JobResult::Success),
            "job {}: {:?}",
            j.id,
            j.message
        );
    }
    let reports = service.inventory(None).unwrap();
    assert!(
        reports.iter().all(|r| r.entries == 1),
        "one entry per store"
    );
    let at: HashSet<String> = service
        .catalog()
        .locations(newest)
        .unwrap()
        .into_iter()
        .map(|l| l.store_id)
        .collect();
    assert_eq!(at, stores.iter().cloned().collect());
    let newest_cert = service
        .catalog()
        .certificate(newest)
        .unwrap()
        .unwrap()
        .certificate;
    // Independent tools on a sample of each type (keytool starts a JVM per call).
    for record in service.catalog().stores().unwrap().iter().take(4) {
        let seen = independent_view(&record.path);
        let expected = if record.path.extension().is_some_and(|e| e == "p12") {
            newest_cert.sha1_hex()
        } else {
            newest_cert.sha256_hex()
        };
        assert_eq!(seen, vec![expected], "{}", record.path.display());
    }
    let _ = fleet;
}

fn ids_of(v: &Value) -> Vec<i64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|j| j["Id"].as_i64().unwrap())
        .collect()
}

#[test]
fn catalog_init_makes_a_private_key_file_and_is_safe_from_two_processes_at_once() {
    let Some(fleet) = Fleet::start() else { return };
    let a = fleet.command(&["catalog", "init"]).spawn().unwrap();
    let b = fleet.command(&["catalog", "init"]).spawn().unwrap();
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    // Both may race to create the key file: one wins, the other fails cleanly or agrees.
    assert!(a.status.success() || b.status.success());
    let out = fleet.ok(&["catalog", "init"]);
    assert!(
        out["Catalog"]
            .as_str()
            .unwrap()
            .contains("PostgreSQL database")
    );
    assert!(!out.to_string().contains("password"));
    let mode = std::fs::metadata(fleet.key()).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    fleet.ok(&["ca", "init", "--subject", "CN=Two Hosts Root"]);
    let enrolled = fleet.ok(&["enroll", "--subject", "CN=two.example"]);
    assert!(
        enrolled["CertificateInformation"]["KeyfactorId"]
            .as_i64()
            .is_some()
    );
    // Without the key file, a clear refusal.
    let out = Command::new(env!("CARGO_BIN_EXE_pfxkit"))
        .env("PFXKIT_CATALOG", &fleet.conninfo)
        .env_remove("PFXKIT_CATALOG_KEY")
        .args(["jobs", "list"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--catalog-key"));
}

#[test]
fn four_runner_processes_share_400_due_jobs_across_100_stores_each_job_once() {
    let Some(fleet) = Fleet::start() else { return };
    let (service, stores, certificates) = fleet.populate(100, 4);
    deploy_in_turn(&service, &stores, &certificates);
    assert_eq!(service.catalog().jobs().unwrap().len(), 400);
    // Four runners at once, each running until no job is left for it, three rounds each (a
    // runner that finds every remaining job leased by another stops; the next round resumes).
    let mut ran = Vec::new();
    for _round in 0..3 {
        let runners: Vec<_> = (0..4)
            .map(|_| {
                fleet
                    .command(&["jobs", "run"])
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for r in runners {
            let out = r.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            ran.extend(ids_of(&serde_json::from_slice(&out.stdout).unwrap()));
        }
        if ran.len() == 400 {
            break;
        }
    }
    assert_eq!(ran.len(), 400, "every job ran, none twice");
    assert_fleet_converged(&fleet, &service, &stores, certificates[3], &ran);
}

#[test]
fn a_runner_killed_mid_batch_leaves_jobs_that_complete_once_after_the_lease() {
    let Some(fleet) = Fleet::start() else { return };
    let (service, stores, certificates) = fleet.populate(60, 2);
    deploy_in_turn(&service, &stores, &certificates);
    let mut runner = fleet
        .command(&["jobs", "run"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kill it once some, not all, jobs are done.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let done = service
            .catalog()
            .jobs()
            .unwrap()
            .iter()
            .filter(|j| j.status == JobStatus::Completed)
            .count();
        if done >= 5 || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    runner.kill().unwrap(); // SIGKILL
    runner.wait().unwrap();
    let jobs = service.catalog().jobs().unwrap();
    let leased = jobs
        .iter()
        .filter(|j| j.status == JobStatus::InProcess)
        .count();
    let done = jobs
        .iter()
        .filter(|j| j.status == JobStatus::Completed)
        .count();
    assert!(done < jobs.len(), "the runner was killed before the end");
    // Within the lease nobody takes the killed runner's jobs over.
    if leased > 0 {
        let ran = fleet.ok(&["jobs", "run"]);
        for j in ran.as_array().unwrap() {
            assert_ne!(j["Status"], "InProcess");
        }
        let still = service
            .catalog()
            .jobs()
            .unwrap()
            .iter()
            .filter(|j| j.status == JobStatus::InProcess)
            .count();
        assert_eq!(still, leased, "leased jobs wait for their lease");
    }
    // A runner's `--now` in the future does not end a lease: leases are on the real clock.
    let later = format_time(now_ms() + JOB_LEASE_MS + 60_000);
    let mut ran = ids_of(&fleet.ok(&["jobs", "run", "--now", &later]));
    let still = service
        .catalog()
        .jobs()
        .unwrap()
        .iter()
        .filter(|j| j.status == JobStatus::InProcess)
        .count();
    assert_eq!(still, leased, "a future --now took over a live lease");
    // Past the lease (its start moved back, as if the runner had died that long ago), the
    // runners finish everything.
    let mut admin = postgres::Client::connect(&fleet.conninfo, postgres::NoTls).unwrap();
    admin
        .execute(
            "UPDATE jobs SET claimed_ms = claimed_ms - $1 WHERE status = 'InProcess'",
            &[&(JOB_LEASE_MS + 60_000)],
        )
        .unwrap();
    for _ in 0..4 {
        ran.extend(ids_of(&fleet.ok(&["jobs", "run", "--now", &later])));
    }
    let all: Vec<i64> = service
        .catalog()
        .jobs()
        .unwrap()
        .iter()
        .map(|j| j.id)
        .collect();
    assert_eq!(all.len(), 120);
    let ran_set: HashSet<i64> = ran.iter().copied().collect();
    assert_eq!(ran_set.len(), ran.len(), "no job ran twice after the kill");
    assert_fleet_converged(&fleet, &service, &stores, certificates[1], &ran);
}

#[test]
fn postgres_restarted_under_a_running_process_fails_clearly_then_recovers() {
    let Some(fleet) = Fleet::start() else { return };
    let (service, stores, certificates) = fleet.populate(2, 1);
    assert_eq!(service.catalog().stores().unwrap().len(), 2);
    fleet.server.stop();
    // In the gap: a clear, retryable error from the long-running process and from the CLI.
    let err = service.catalog().stores().unwrap_err();
    assert!(matches!(err, Error::Unavailable(_)), "{err:?}");
    let out = fleet.run(&["jobs", "list"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("catalog database unavailable"), "{stderr}");
    fleet.server.restart();
    // The same process works again without being restarted: pooled connections reconnect.
    let deadline = Instant::now() + Duration::from_secs(20);
    let stores_again = loop {
        match service.catalog().stores() {
            Ok(s) => break s,
            Err(e) if Instant::now() < deadline => {
                assert!(matches!(e, Error::Unavailable(_)), "{e:?}");
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => panic!("no recovery: {e}"),
        }
    };
    assert_eq!(stores_again.len(), 2);
    deploy_in_turn(&service, &stores, &certificates);
    let ran = service.run_jobs(now_ms(), &|_| {}).unwrap();
    assert_eq!(ran.len(), 2);
    let listed: BTreeMap<i64, Value> = ids_of(&fleet.ok(&["jobs", "list"]))
        .into_iter()
        .map(|id| (id, Value::Null))
        .collect();
    assert_eq!(listed.len(), 2);
}

/// One plain-HTTP request on loopback with `ops:ops-secret`; the status code and the body.
fn http_get(addr: &str, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    // ops:ops-secret
    write!(
        s,
        "GET /KeyfactorAPI{path} HTTP/1.1\r\nHost: x\r\nAuthorization: Basic b3BzOm9wcy1zZWNyZXQ=\r\nX-Keyfactor-Requested-With: APIClient\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    let status = answer
        .get(9..12)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {answer}"));
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// Threat: a database failover or restart under a running API server. Callers in the gap must
/// get a retryable 503 with Keyfactor's error body (not a 500, not a hang, no connection detail),
/// and the same server process must answer again once PostgreSQL is back.
#[test]
fn postgres_restarted_under_a_running_serve_answers_503_then_recovers() {
    use std::io::BufRead;
    let Some(fleet) = Fleet::start() else { return };
    let (_service, _stores, certificates) = fleet.populate(1, 1);
    fleet.ok(&["users", "add", "ops", "--password", "pass:ops-secret"]);
    fleet.ok(&[
        "grant",
        "--principal",
        "ops",
        "--global",
        "--permission",
        "read",
    ]);
    let mut child = fleet
        .command(&["serve", "--listen", "127.0.0.1:0", "--insecure-http"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    // Under --json the URL comes as {"Listening": URL}.
    let listening: Value = serde_json::from_str(&line).unwrap();
    let addr = listening["Listening"]
        .as_str()
        .and_then(|u| u.strip_prefix("http://"))
        .and_then(|u| u.strip_suffix("/KeyfactorAPI"))
        .unwrap_or_else(|| panic!("{line}"))
        .to_string();
    let path = format!("/Certificates/{}?includeLocations=true", certificates[0]);
    let (status, body) = http_get(&addr, &path);
    assert_eq!(status, 200, "{body}");

    fleet.server.stop();
    let (status, body) = http_get(&addr, &path);
    assert_eq!(status, 503, "{body}");
    let error: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(error["ErrorCode"], "0xA00001F7");
    assert!(
        !error["Message"].as_str().unwrap().contains(&fleet.conninfo),
        "{body}"
    );

    fleet.server.restart();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = http_get(&addr, &path);
        if status == 200 {
            let cert: Value = serde_json::from_str(&body).unwrap();
            assert_eq!(cert["Id"], certificates[0]);
            break;
        }
        assert_eq!(status, 503, "only 503 while reconnecting: {body}");
        assert!(Instant::now() < deadline, "serve did not recover");
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let out = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?}: {log}", out.status);
    assert!(!log.contains("ops-secret"), "no secret in the log");
}

/// Threat: two servers (or cron jobs on two hosts) checking the policies of one shared catalog
/// at the same moment would each renew the same certificate, issuing two successors and racing
/// two Replaces into the same stores. Four `renew-due` processes at once on PostgreSQL: each
/// certificate is renewed by exactly one of them, and its stores get exactly one Replace job.
#[test]
fn concurrent_policy_checks_on_postgres_renew_each_certificate_once() {
    let Some(fleet) = Fleet::start() else { return };
    let (service, stores, _) = fleet.populate(3, 0);
    let certificates: Vec<i64> = (0..3)
        .map(|i| {
            service
                .enroll(
                    None,
                    &EnrollRequest::new(format!("CN=short-{i}.example")).days(20),
                    &Password::new(""),
                )
                .unwrap()
                .certificate_id
        })
        .collect();
    for (certificate, store) in certificates.iter().zip(&stores) {
        service
            .deploy(
                *certificate,
                std::slice::from_ref(store),
                Some("web"),
                true,
                &JobOptions::default(),
            )
            .unwrap();
    }
    assert_eq!(service.run_jobs(now_ms(), &|_| {}).unwrap().len(), 3);
    for permission in ["enroll", "schedule"] {
        fleet.ok(&[
            "grant",
            "--principal",
            "renewer",
            "--global",
            "--permission",
            permission,
        ]);
    }
    fleet.ok(&[
        "policy",
        "set",
        "--global",
        "--renew-before",
        "30d",
        "--principal",
        "renewer",
    ]);
    // Twelve days on, every 20-day certificate is inside its window.
    let at = format_time(now_ms() + 12 * 86_400_000);
    let checks: Vec<_> = (0..4)
        .map(|_| {
            fleet
                .command(&["renew-due", "--now", &at])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut renewed = Vec::new();
    for check in checks {
        let out = check.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let decisions: Value = serde_json::from_slice(&out.stdout).unwrap();
        for d in decisions.as_array().unwrap() {
            assert_eq!(d["Outcome"], "Renewed", "{d}");
            renewed.push(d["CertificateId"].as_i64().unwrap());
        }
    }
    renewed.sort_unstable();
    assert_eq!(renewed, certificates, "each renewed by exactly one check");
    assert_eq!(service.policy_history().unwrap().len(), 3);
    let waiting = service
        .catalog()
        .jobs()
        .unwrap()
        .into_iter()
        .filter(|j| j.status == JobStatus::Waiting)
        .count();
    assert_eq!(waiting, 3, "one Replace job per store");
    let at_ms = now_ms() + 12 * 86_400_000;
    let ran = service.run_jobs(at_ms, &|_| {}).unwrap();
    assert!(ran.iter().all(|j| j.result == Some(JobResult::Success)));
    // A later check finds every certificate renewed already.
    let again = fleet.ok(&["renew-due", "--now", &at]);
    assert_eq!(again.as_array().unwrap().len(), 0);
}
