//! Agents at scale, with the real binaries: a `pfxkit serve` and N `pfxkit agent` processes on
//! this machine, stores on tmpfs (`/dev/shm`).
//!
//! - Replace across `PFXKIT_BENCH_STORES` (default 1,000) PKCS#12 stores spread over 1, 2
//!   and 4 agents: jobs/s and the time from the Replace to the last completion, and the
//!   server's CPU time per job (its user + system time over the phase, divided by the jobs);
//! - the resident memory of an idle agent;
//! - the server's resident memory with 100 agents connected and long-polling.
//!
//! `cargo bench -p pfxkit-cli --bench fleet_agents`. Prints a Markdown table.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs
)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use pfxkit::secret::{Password, PasswordSource};
use pfxkit::store::StoreType;
use pfxkit_catalog::JobStatus;
use pfxkit_catalog::ca::KeyType;
use pfxkit_catalog::jobs::{JobOptions, NewCertificate, StoreOptions};
use pfxkit_catalog::service::{EnrollRequest, Service};

const STORE_PASSWORD_VAR: &str = "BENCH_STORE_PASSWORD";

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(15) {
            if self.0.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// User + system CPU time of a process, in clock ticks (100 per second on Linux).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<&str> = after.split_whitespace().collect();
    // After the command name: state is field 3, utime 14, stime 15 (1-based).
    let utime: u64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0);
    let stime: u64 = fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    utime + stime
}

fn serve(catalog: &Path) -> (Proc, u16) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_pfxkit"))
        .arg("--catalog")
        .arg(catalog)
        .args([
            "--json",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--tls-from-ca",
        ])
        .env("PFXKIT_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    let port = v["Listening"]
        .as_str()
        .unwrap()
        .trim_start_matches("https://127.0.0.1:")
        .trim_end_matches("/KeyfactorAPI")
        .parse()
        .unwrap();
    (Proc(child), port)
}

fn agent(dir: &Path, port: u16, name: &str, token: &str) -> Proc {
    let log = std::fs::File::create(dir.join(format!("{name}.log"))).unwrap();
    Proc(
        Command::new(env!("CARGO_BIN_EXE_pfxkit"))
            .args(["agent", "--server", &format!("https://127.0.0.1:{port}")])
            .args(["--name", name, "--token", "env:BENCH_TOKEN"])
            .arg("--ca-cert")
            .arg(dir.join("ca.pem"))
            .arg("--state")
            .arg(dir.join(format!("{name}-state")))
            .env("BENCH_TOKEN", token)
            .env(STORE_PASSWORD_VAR, "bench-store-password")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    )
}

fn setup(dir: &Path) -> Service {
    let svc = Service::init(&dir.join("catalog")).unwrap();
    svc.ca_init("CN=Bench Root", KeyType::EcP256, None).unwrap();
    let pem: String = svc
        .ca_chain()
        .unwrap()
        .iter()
        .map(pfxkit::pem::encode_certificate)
        .collect();
    std::fs::write(dir.join("ca.pem"), pem).unwrap();
    svc
}

fn wait_all_completed(svc: &Service, first_job: i64) -> (Duration, usize) {
    let start = Instant::now();
    loop {
        let jobs = svc.catalog().jobs().unwrap();
        let mine: Vec<_> = jobs.iter().filter(|j| j.id >= first_job).collect();
        if mine.iter().all(|j| j.status == JobStatus::Completed) {
            let failed = mine
                .iter()
                .filter(|j| j.result != Some(pfxkit_catalog::JobResult::Success))
                .count();
            return (start.elapsed(), failed);
        }
        assert!(
            start.elapsed() < Duration::from_secs(3600),
            "jobs did not complete"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn next_job_id(svc: &Service) -> i64 {
    svc.catalog().jobs().unwrap().last().map_or(1, |j| j.id + 1)
}

fn replace_over(agents: usize, stores: usize) {
    let tmp = tempfile::tempdir_in("/dev/shm").unwrap();
    let dir = tmp.path();
    let svc = setup(dir);
    let a = svc
        .enroll(
            None,
            &EnrollRequest::new("CN=bench.example"),
            &Password::new(""),
        )
        .unwrap()
        .certificate_id;
    let b = svc
        .enroll(
            None,
            &EnrollRequest::new("CN=bench.example"),
            &Password::new(""),
        )
        .unwrap()
        .certificate_id;
    let names: Vec<String> = (0..agents).map(|i| format!("host{i}")).collect();
    let tokens: Vec<String> = names
        .iter()
        .map(|n| svc.add_agent(None, n).unwrap().to_string())
        .collect();
    let password = PasswordSource::Env(STORE_PASSWORD_VAR.into());
    let mut ids = Vec::with_capacity(stores);
    for s in 0..stores {
        let host = &names[s % agents];
        let d = dir.join(host);
        std::fs::create_dir_all(&d).unwrap();
        ids.push(
            svc.add_store_with(
                None,
                StoreType::Pkcs12,
                &d.join(format!("{s}.p12")),
                None,
                None,
                Some(&password),
                &StoreOptions::default().machine(Some(host.clone())),
            )
            .unwrap()
            .id,
        );
    }
    let (server, port) = serve(&dir.join("catalog"));
    let procs: Vec<Proc> = names
        .iter()
        .zip(&tokens)
        .map(|(n, t)| agent(dir, port, n, t))
        .collect();
    // Deploy the first certificate everywhere (set-up; the agents report where it is).
    let first = next_job_id(&svc);
    svc.deploy(a, &ids, Some("app"), true, &JobOptions::default())
        .unwrap();
    let (deploy_time, deploy_failed) = wait_all_completed(&svc, first);
    assert_eq!(deploy_failed, 0, "deploy failures: see {}", dir.display());
    // Replace, timed from the request to the last completion.
    let server_pid = server.0.id();
    let cpu_before = cpu_ticks(server_pid);
    let first = next_job_id(&svc);
    let start = Instant::now();
    let outcome = svc
        .replace(a, NewCertificate::Certificate(b), &JobOptions::default())
        .unwrap();
    assert_eq!(outcome.successful.len(), stores, "{:?}", outcome.failures);
    let scheduled = start.elapsed();
    let (_, failed) = wait_all_completed(&svc, first);
    let total = start.elapsed();
    let cpu = cpu_ticks(server_pid).saturating_sub(cpu_before);
    assert_eq!(failed, 0);
    std::thread::sleep(Duration::from_secs(3));
    let idle_rss = procs.iter().map(|p| rss_kib(p.0.id())).max().unwrap_or(0);
    #[allow(clippy::cast_precision_loss)]
    let jobs_per_s = stores as f64 / total.as_secs_f64();
    #[allow(clippy::cast_precision_loss)]
    let server_ms_per_job = cpu as f64 * 10.0 / stores as f64;
    println!(
        "| {agents} | {stores} | {:.1} s | {:.2} s | {:.1} s | {jobs_per_s:.0} | {server_ms_per_job:.2} ms | {:.1} MiB |",
        deploy_time.as_secs_f64(),
        scheduled.as_secs_f64(),
        total.as_secs_f64(),
        idle_rss as f64 / 1024.0,
    );
    drop(procs);
    drop(server);
}

fn hundred_agents() {
    let tmp = tempfile::tempdir_in("/dev/shm").unwrap();
    let dir = tmp.path();
    let svc = setup(dir);
    let (server, port) = serve(&dir.join("catalog"));
    let idle_server = rss_kib(server.0.id());
    let mut procs = Vec::new();
    for i in 0..100 {
        let name = format!("a{i}");
        let token = svc.add_agent(None, &name).unwrap();
        procs.push(agent(dir, port, &name, &token));
    }
    let start = Instant::now();
    loop {
        let connected = svc
            .catalog()
            .agents()
            .unwrap()
            .iter()
            .filter(|a| a.last_seen_ms.is_some())
            .count();
        if connected == 100 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(600),
            "{connected} connected"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(10));
    let server_rss = rss_kib(server.0.id());
    let mut agent_rss: Vec<u64> = procs.iter().map(|p| rss_kib(p.0.id())).collect();
    agent_rss.sort_unstable();
    println!(
        "\nserver RSS: {:.1} MiB idle, {:.1} MiB with 100 agents connected (long-polling); \
         agent RSS idle: median {:.1} MiB, max {:.1} MiB",
        idle_server as f64 / 1024.0,
        server_rss as f64 / 1024.0,
        agent_rss[50] as f64 / 1024.0,
        agent_rss[99] as f64 / 1024.0
    );
    drop(procs);
    drop(server);
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument is not supported.
    let stores: usize = std::env::var("PFXKIT_BENCH_STORES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let agents: Vec<usize> = std::env::var("PFXKIT_BENCH_AGENTS")
        .ok()
        .map(|v| v.split(',').filter_map(|n| n.parse().ok()).collect())
        .unwrap_or_else(|| vec![1, 2, 4]);
    println!(
        "| agents | stores | deploy (set-up) to last completion | Replace (scheduling) | Replace to last completion | jobs/s | server CPU per job | idle agent RSS |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for n in agents {
        replace_over(n, stores);
    }
    if std::env::var("PFXKIT_BENCH_SKIP_100").is_err() {
        hundred_agents();
    }
}
