#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
//! Agents as separate processes: a `pfxkit serve` and several `pfxkit agent`s, each with its
//! own state directory and store directory, driven through the real binaries. Store files are
//! read back with openssl and keytool. Waits are generous (this runs on a loaded 2-core
//! machine): each test asserts an end state, never a speed.

mod catalog_cli;
mod store_common;

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use catalog_cli::{Cli, assert_exit, keytool_sha1, openssl, openssl_pkcs12_certs, openssl_sha1};
use serde_json::{Value, json};
use store_common::openssl_key_matches_cert;

const STORE_PASSWORD: &str = "store-secret";
const ENTRY_PASSWORD: &str = "entry-secret";
const WAIT: Duration = Duration::from_secs(180);

struct Server {
    child: Child,
    port: u16,
}

struct Agent {
    child: Child,
    log: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Agent {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn terminate(&mut self) -> std::process::ExitStatus {
        signal(&self.child, "-TERM");
        wait_exit(&mut self.child)
    }
}

fn signal(child: &Child, sig: &str) {
    assert!(
        Command::new("kill")
            .args([sig, &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
}

fn wait_exit(child: &mut Child) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "did not exit");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < WAIT, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A catalog with a CA, a server and its agents.
struct Fleet {
    cli: Cli,
    server: Option<Server>,
}

impl Fleet {
    fn new() -> Fleet {
        let cli = Cli::with_ca();
        let out = cli.run(&[
            "ca",
            "export",
            "--out",
            cli.dir().join("ca.pem").to_str().unwrap(),
        ]);
        assert_exit(&out, 0);
        let mut fleet = Fleet { cli, server: None };
        fleet.start_server(0);
        fleet
    }

    fn path(&self, p: &str) -> PathBuf {
        self.cli.dir().join(p)
    }

    fn start_server(&mut self, port: u16) {
        let mut child = self
            .cli
            .command(&[
                "serve",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--tls-from-ca",
                "--log-format",
                "json",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let listening: Value =
            serde_json::from_str(&line).unwrap_or_else(|_| panic!("unexpected first line: {line}"));
        let port = listening["Listening"]
            .as_str()
            .unwrap_or_default()
            .strip_prefix("https://127.0.0.1:")
            .and_then(|rest| rest.strip_suffix("/KeyfactorAPI"))
            .unwrap_or_else(|| panic!("unexpected first line: {line}"))
            .parse()
            .unwrap();
        self.server = Some(Server { child, port });
    }

    fn port(&self) -> u16 {
        self.server.as_ref().unwrap().port
    }

    fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port())
    }

    /// `agents add NAME`: its one-time token.
    fn add_agent(&self, name: &str) -> String {
        let v = self.cli.ok(&["agents", "add", name]);
        assert_eq!(v["Name"], name);
        v["Token"].as_str().unwrap().to_string()
    }

    /// Starts `pfxkit agent` for `name` with its own state directory; its stores' passwords
    /// come from its own environment.
    fn start_agent(&self, name: &str, token: Option<&str>) -> Agent {
        self.start_agent_with(name, token, &[])
    }

    /// [`Fleet::start_agent`] with more arguments (`--root DIR`).
    fn start_agent_with(&self, name: &str, token: Option<&str>, extra: &[&OsStr]) -> Agent {
        let log = self.path(&format!("{name}.log"));
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_pfxkit"));
        cmd.args(["agent", "--server", &self.url(), "--name", name])
            .arg("--ca-cert")
            .arg(self.path("ca.pem"))
            .arg("--state")
            .arg(self.path(&format!("{name}-state")))
            .args(["--poll-wait", "5"])
            .args(extra)
            .env("AGENT_STORE_PASSWORD", STORE_PASSWORD)
            .env_remove("PFXKIT_CATALOG")
            .stdout(Stdio::null())
            .stderr(out);
        if let Some(t) = token {
            cmd.arg("--token")
                .arg("env:AGENT_TOKEN")
                .env("AGENT_TOKEN", t);
        }
        Agent {
            child: cmd.spawn().unwrap(),
            log,
        }
    }

    fn add_store(&self, machine: Option<&str>, args: &[&str]) -> String {
        let mut all: Vec<&str> = vec!["stores", "add"];
        all.extend_from_slice(args);
        if let Some(m) = machine {
            all.extend_from_slice(&["--machine", m]);
        }
        self.cli.ok(&all)["Id"].as_str().unwrap().to_string()
    }

    /// A `store_type` store at `path` on `machine`, its password read from the agent's
    /// `AGENT_STORE_PASSWORD`; its id.
    fn add_remote_store(&self, machine: &str, store_type: &str, path: &Path) -> String {
        self.add_store(
            Some(machine),
            &[
                "--type",
                store_type,
                "--path",
                path.to_str().unwrap(),
                "--store-password",
                "env:AGENT_STORE_PASSWORD",
            ],
        )
    }

    fn store_dir(&self, host: &str) -> PathBuf {
        let d = self.path(host);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn enroll(&self, cn: &str) -> Value {
        self.cli.enroll(
            &format!("CN={cn},O=pfxkit"),
            &["--key-type", "ec-p256", "--password", "pass:transport"],
        )
    }

    fn deploy(&self, cert: &Value, stores: &[&str]) -> Vec<i64> {
        let before = self.job_ids();
        let id = cert["KeyfactorId"].to_string();
        let pw = format!("pass:{ENTRY_PASSWORD}");
        let mut args = vec![
            "deploy",
            "--certificate-id",
            &id,
            "--alias",
            "app",
            "--password",
            &pw,
            "--store",
        ];
        args.extend_from_slice(stores);
        let v = self.cli.ok(&args);
        assert_eq!(v["FailedStores"], json!([]), "{v}");
        self.job_ids()
            .into_iter()
            .filter(|j| !before.contains(j))
            .collect()
    }

    fn jobs(&self) -> Vec<Value> {
        self.cli.ok(&["jobs", "list"]).as_array().unwrap().clone()
    }

    fn job_ids(&self) -> Vec<i64> {
        self.jobs()
            .iter()
            .map(|j| j["Id"].as_i64().unwrap())
            .collect()
    }

    fn job(&self, id: i64) -> Value {
        self.jobs()
            .into_iter()
            .find(|j| j["Id"] == id)
            .unwrap_or_else(|| panic!("no job {id}"))
    }

    fn wait_completed(&self, ids: &[i64]) {
        eventually(&format!("jobs {ids:?} to complete"), || {
            let jobs = self.jobs();
            ids.iter().all(|id| {
                jobs.iter()
                    .any(|j| j["Id"] == *id && j["Status"] == "Completed")
            })
        });
        for id in ids {
            let j = self.job(*id);
            assert_eq!(j["Result"], "Success", "{j}");
        }
    }
}

/// Writes `p12`, a PKCS#12 file made by openssl (not by pfxkit) under the agents' store
/// password, holding a self-signed certificate for `cn` that the catalog never issued.
fn p12_by_openssl(fleet: &Fleet, cn: &str, p12: &Path) {
    let key = fleet.path(&format!("{cn}.key"));
    let crt = fleet.path(&format!("{cn}.crt"));
    openssl(&[
        OsStr::new("req"),
        OsStr::new("-x509"),
        OsStr::new("-newkey"),
        OsStr::new("ec"),
        OsStr::new("-pkeyopt"),
        OsStr::new("ec_paramgen_curve:P-256"),
        OsStr::new("-nodes"),
        OsStr::new("-subj"),
        OsStr::new(&format!("/CN={cn}")),
        OsStr::new("-days"),
        OsStr::new("30"),
        OsStr::new("-keyout"),
        key.as_os_str(),
        OsStr::new("-out"),
        crt.as_os_str(),
    ]);
    openssl(&[
        OsStr::new("pkcs12"),
        OsStr::new("-export"),
        OsStr::new("-inkey"),
        key.as_os_str(),
        OsStr::new("-in"),
        crt.as_os_str(),
        OsStr::new("-name"),
        OsStr::new("byhand"),
        OsStr::new("-passout"),
        OsStr::new(&format!("pass:{STORE_PASSWORD}")),
        OsStr::new("-out"),
        p12.as_os_str(),
    ]);
}

fn sha1(info: &Value) -> String {
    info["Thumbprint"].as_str().unwrap().to_string()
}

/// The agent's mutual-TLS client, built from its state directory (what a thief of that
/// directory would hold).
fn agent_client(fleet: &Fleet, name: &str) -> reqwest::blocking::Client {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let state = fleet.path(&format!("{name}-state"));
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(state.join("agent.crt"))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
    let key = PrivateKeyDer::from_pem_file(state.join("agent.key")).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_file_iter(fleet.path("ca.pem")).unwrap() {
        roots.add(ca.unwrap()).unwrap();
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .unwrap();
    reqwest::blocking::Client::builder()
        .use_preconfigured_tls(tls)
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

fn call(
    client: &reqwest::blocking::Client,
    fleet: &Fleet,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let url = format!("{}/KeyfactorAPI/Agent/{path}", fleet.url());
    let req = match method {
        "GET" => client.get(url),
        _ => client
            .post(url)
            .header("content-type", "application/json")
            .body(body.unwrap_or(json!({})).to_string()),
    };
    let resp = req.send().unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().unwrap_or(Value::Null))
}

/// Registers `name` by running its agent until it has a certificate, then stops it.
fn registered(fleet: &Fleet, name: &str) {
    let token = fleet.add_agent(name);
    let mut agent = fleet.start_agent(name, Some(&token));
    eventually("registration", || agent.log().contains("connected as"));
    assert!(agent.terminate().success(), "{}", agent.log());
    // Without --root it says, once, that the server decides where it writes.
    assert_eq!(
        agent.log().matches("warning: unconfined").count(),
        1,
        "{}",
        agent.log()
    );
}

fn pem_key_is_plain(key: &Path, cert: &Path) {
    let text = std::fs::read_to_string(key).unwrap();
    assert!(text.contains("-----BEGIN PRIVATE KEY-----"), "{text}");
    assert!(!text.contains("ENCRYPTED"), "{text}");
    // openssl reads it with an empty password (none is asked), and it is the certificate's key.
    openssl_key_matches_cert(key, "", cert);
}

fn pem_key_is_encrypted(key: &Path, cert: &Path) {
    let text = std::fs::read_to_string(key).unwrap();
    assert!(text.contains("ENCRYPTED PRIVATE KEY"), "{text}");
    openssl_key_matches_cert(key, ENTRY_PASSWORD, cert);
}

#[test]
fn agents_deploy_and_replace_their_own_stores_checked_by_openssl_and_keytool() {
    let fleet = Fleet::new();
    let web = fleet.store_dir("web1");
    let db = fleet.store_dir("db1");
    let p = |d: &Path, f: &str| d.join(f).to_str().unwrap().to_string();
    let (nginx_crt, nginx_key) = (p(&web, "nginx.crt"), p(&web, "nginx.key"));
    let nginx = fleet.add_store(
        Some("web1"),
        &[
            "--type",
            "pem",
            "--path",
            &nginx_crt,
            "--key-path",
            &nginx_key,
            "--plain-key",
        ],
    );
    let web_p12 = fleet.add_store(
        Some("web1"),
        &[
            "--type",
            "pkcs12",
            "--path",
            &p(&web, "app.p12"),
            "--store-password",
            "env:AGENT_STORE_PASSWORD",
            "--inventory-every",
            "12h",
        ],
    );
    let db_jks = fleet.add_store(
        Some("db1"),
        &[
            "--type",
            "jks",
            "--path",
            &p(&db, "db.jks"),
            "--store-password",
            "env:AGENT_STORE_PASSWORD",
        ],
    );
    let (db_crt, db_key) = (p(&db, "db.crt"), p(&db, "db.key"));
    let db_pem = fleet.add_store(
        Some("db1"),
        &["--type", "pem", "--path", &db_crt, "--key-path", &db_key],
    );
    let shown = fleet.cli.ok(&["stores", "show", &web_p12]);
    assert_eq!(shown["Machine"], "web1");
    assert_eq!(shown["InventoryEverySecs"], 43_200);
    assert_eq!(fleet.cli.ok(&["stores", "show", &nginx])["PlainKey"], true);

    let web_token = fleet.add_agent("web1");
    let db_token = fleet.add_agent("db1");
    let _web1 = fleet.start_agent("web1", Some(&web_token));
    let _db1 = fleet.start_agent("db1", Some(&db_token));

    let first = fleet.enroll("app.example.com");
    let jobs = fleet.deploy(&first, &[&nginx, &web_p12, &db_jks, &db_pem]);
    assert_eq!(jobs.len(), 4);
    fleet.wait_completed(&jobs);

    let check = |expected: &str| {
        assert_eq!(openssl_sha1(Path::new(&nginx_crt)), expected);
        pem_key_is_plain(Path::new(&nginx_key), Path::new(&nginx_crt));
        assert_eq!(openssl_sha1(Path::new(&db_crt)), expected);
        pem_key_is_encrypted(Path::new(&db_key), Path::new(&db_crt));
        let extracted = fleet.path("extracted.pem");
        let leaf =
            openssl_pkcs12_certs(&web.join("app.p12"), STORE_PASSWORD, "-clcerts", &extracted);
        assert_eq!(openssl_sha1(&leaf), expected);
        assert_eq!(
            keytool_sha1(&db.join("db.jks"), "JKS", STORE_PASSWORD, "app"),
            expected
        );
    };
    check(&sha1(&first));

    // The agents reported their inventories: the catalog knows where the certificate is, so
    // Replace finds every store of both hosts.
    let second = fleet.enroll("app.example.com");
    let before = fleet.job_ids();
    let replaced = fleet.cli.ok(&[
        "replace",
        "--existing-certificate-id",
        &first["KeyfactorId"].to_string(),
        "--certificate-id",
        &second["KeyfactorId"].to_string(),
        "--password",
        &format!("pass:{ENTRY_PASSWORD}"),
    ]);
    let mut successful: Vec<String> = replaced["SuccessfulStores"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect();
    successful.sort();
    let mut all = vec![
        nginx.clone(),
        web_p12.clone(),
        db_jks.clone(),
        db_pem.clone(),
    ];
    all.sort();
    assert_eq!(successful, all, "{replaced}");
    let new_jobs: Vec<i64> = fleet
        .job_ids()
        .into_iter()
        .filter(|j| !before.contains(j))
        .collect();
    fleet.wait_completed(&new_jobs);
    check(&sha1(&second));

    let agents = fleet.cli.ok(&["agents", "list"]);
    for a in agents.as_array().unwrap() {
        assert_eq!(a["State"], "registered", "{a}");
        assert_eq!(a["TokenPending"], false, "{a}");
        assert_eq!(a["JobsDone"], 4, "{a}");
        assert_eq!(a["JobsFailed"], 0, "{a}");
        assert!(a["LastSeen"].is_string(), "{a}");
        assert_eq!(a["Version"], env!("CARGO_PKG_VERSION"), "{a}");
    }
    // The key file of each agent is its owner's only.
    use std::os::unix::fs::PermissionsExt;
    for name in ["web1", "db1"] {
        let key = fleet.path(&format!("{name}-state/agent.key"));
        let mode = std::fs::metadata(key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

#[test]
fn the_server_runner_leaves_an_agents_stores_to_that_agent() {
    let fleet = Fleet::new();
    let here = fleet.store_dir("server");
    let own = fleet.add_store(
        None,
        &[
            "--type",
            "pkcs12",
            "--path",
            here.join("own.p12").to_str().unwrap(),
            "--store-password",
            &format!("pass:{STORE_PASSWORD}"),
        ],
    );
    let remote_file = fleet.store_dir("web1").join("remote.p12");
    let remote = fleet.add_remote_store("web1", "pkcs12", &remote_file);
    let cert = fleet.enroll("split.example.com");
    let jobs = fleet.deploy(&cert, &[&own, &remote]);
    let (own_job, remote_job) = (jobs[0], jobs[1]);
    // The server's runner runs its own store's job...
    fleet.wait_completed(&[own_job]);
    // ...and `jobs run` takes nothing of web1's either: the files are on web1's host.
    fleet.cli.ok(&["jobs", "run"]);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(fleet.job(remote_job)["Status"], "Waiting");
    assert!(!remote_file.exists());
    // web1's agent runs it once it is there.
    let token = fleet.add_agent("web1");
    let _agent = fleet.start_agent("web1", Some(&token));
    fleet.wait_completed(&[remote_job]);
    assert!(remote_file.exists());
}

#[test]
fn a_registration_token_works_once() {
    // Threat: a registration token copied from a shell history or a provisioning log, used
    // after (or before) the real agent registered.
    let fleet = Fleet::new();
    let token = fleet.add_agent("web1");
    let mut agent = fleet.start_agent("web1", Some(&token));
    eventually("registration", || agent.log().contains("connected as"));
    assert!(agent.terminate().success());
    // The same token from another state directory (another host): refused, no certificate.
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pfxkit"));
    let thief_state = fleet.path("thief-state");
    let out = cmd
        .args([
            "agent",
            "--server",
            &fleet.url(),
            "--name",
            "web1",
            "--token",
            "env:T",
        ])
        .arg("--ca-cert")
        .arg(fleet.path("ca.pem"))
        .arg("--state")
        .arg(&thief_state)
        .env("T", &token)
        .output()
        .unwrap();
    assert_exit(&out, 1);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("refused"), "{err}");
    assert!(!err.contains(&token), "the token is not echoed: {err}");
    assert!(!thief_state.join("agent.crt").exists());
    // The real agent still works with its certificate (no token needed any more).
    let mut again = fleet.start_agent("web1", None);
    eventually("reconnection", || {
        // The log file is shared with the first run, which connected once.
        again.log().matches("connected as").count() >= 2
    });
    assert!(again.terminate().success());
    // The catalog never kept the token itself.
    let db = std::fs::read(fleet.cli.database()).unwrap();
    assert!(!db.windows(token.len()).any(|w| w == token.as_bytes()));
}

#[test]
fn an_agent_gets_403_for_another_machines_jobs_and_stores() {
    // Threat: a compromised web server's agent reaching for the database host's keys.
    let fleet = Fleet::new();
    registered(&fleet, "web1");
    registered(&fleet, "db1");
    let db_store = fleet.add_remote_store("db1", "pkcs12", &fleet.store_dir("db1").join("db.p12"));
    let cert = fleet.enroll("db.example.com");
    let jobs = fleet.deploy(&cert, &[&db_store]);
    let web1 = agent_client(&fleet, "web1");
    // web1 polls: db1's job is not among its jobs.
    let (status, claim) = call(&web1, &fleet, "GET", "Jobs?wait=1", None);
    assert_eq!(status, 200);
    assert_eq!(claim["Jobs"], json!([]), "{claim}");
    assert_eq!(fleet.job(jobs[0])["Status"], "Waiting");
    // Completing db1's job, with any lease, or reporting db1's inventory: 403.
    let (status, _) = call(
        &web1,
        &fleet,
        "POST",
        &format!("Jobs/{}/Complete", jobs[0]),
        Some(json!({"Lease": "agent:web1:00", "Result": "Success", "Message": "forged"})),
    );
    assert_eq!(status, 403);
    let (status, _) = call(
        &web1,
        &fleet,
        "POST",
        &format!("Stores/{db_store}/Inventory"),
        Some(json!({"Inventory": []})),
    );
    assert_eq!(status, 403);
    // db1 gets it, key included, and only db1's store.
    let db1 = agent_client(&fleet, "db1");
    let (status, claim) = call(&db1, &fleet, "GET", "Jobs?wait=5", None);
    assert_eq!(status, 200);
    assert_eq!(claim["Jobs"].as_array().unwrap().len(), 1, "{claim}");
    assert_eq!(claim["Jobs"][0]["StoreId"], db_store.as_str());
    assert!(claim["Jobs"][0]["Key"].is_string());
    // No certificate at all: the agent endpoints answer 401, whatever the credentials.
    let plain = reqwest::blocking::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap();
    let status = plain
        .get(format!("{}/KeyfactorAPI/Agent/Jobs", fleet.url()))
        .send()
        .unwrap()
        .status();
    assert_eq!(status.as_u16(), 401);
}

#[test]
fn a_late_completion_from_an_ended_lease_is_refused() {
    // Threat to exactly-once: an agent that lost its lease (it hung, was restarted) reporting
    // an outcome over the job's new run.
    let fleet = Fleet::new();
    registered(&fleet, "web1");
    let store = fleet.add_remote_store("web1", "pkcs12", &fleet.store_dir("web1").join("a.p12"));
    let cert = fleet.enroll("late.example.com");
    let job = fleet.deploy(&cert, &[&store])[0];
    let web1 = agent_client(&fleet, "web1");
    let (_, first) = call(&web1, &fleet, "GET", "Jobs?wait=5", None);
    let old_lease = first["Lease"].as_str().unwrap().to_string();
    assert_eq!(first["Jobs"][0]["Id"], job);
    // The agent restarts: its earlier leases are given back, and it claims the job anew.
    let (status, hello) = call(&web1, &fleet, "POST", "Hello", Some(json!({})));
    assert_eq!(status, 200);
    assert_eq!(hello["Released"], 1);
    let (_, second) = call(&web1, &fleet, "GET", "Jobs?wait=5", None);
    let new_lease = second["Lease"].as_str().unwrap().to_string();
    assert_ne!(old_lease, new_lease);
    let complete = |lease: &str| {
        call(
            &web1,
            &fleet,
            "POST",
            &format!("Jobs/{job}/Complete"),
            Some(json!({"Lease": lease, "Result": "Failure", "Message": "from the old run"})),
        )
        .0
    };
    assert_eq!(complete(&old_lease), 409);
    assert_eq!(fleet.job(job)["Status"], "InProcess");
    assert_eq!(complete(&new_lease), 200);
    assert_eq!(fleet.job(job)["Status"], "Completed");
    // Once finished, even the lease that finished it cannot report again.
    assert_eq!(complete(&new_lease), 409);
}

#[test]
fn an_agent_killed_mid_run_and_restarted_completes_every_job_once_in_effect() {
    let mut fleet = Fleet::new();
    let dir = fleet.store_dir("web1");
    let stores: Vec<String> = (0..24)
        .map(|i| fleet.add_remote_store("web1", "pkcs12", &dir.join(format!("s{i}.p12"))))
        .collect();
    let token = fleet.add_agent("web1");
    let mut agent = fleet.start_agent("web1", Some(&token));
    eventually("registration", || agent.log().contains("connected as"));
    let cert = fleet.enroll("crash.example.com");
    let refs: Vec<&str> = stores.iter().map(String::as_str).collect();
    let jobs = fleet.deploy(&cert, &refs);
    // kill -9 as soon as the first job is done: the rest are leased or waiting.
    eventually("a first job", || {
        fleet.jobs().iter().any(|j| j["Status"] == "Completed")
    });
    signal(&agent.child, "-KILL");
    wait_exit(&mut agent.child);
    // Restart the server too, under the (now dead) agent: leases live in the catalog.
    let port = fleet.port();
    drop(fleet.server.take());
    fleet.start_server(port);
    let _again = fleet.start_agent("web1", None);
    fleet.wait_completed(&jobs);
    for i in 0..24 {
        let extracted = fleet.path("x.pem");
        let leaf = openssl_pkcs12_certs(
            &dir.join(format!("s{i}.p12")),
            STORE_PASSWORD,
            "-clcerts",
            &extracted,
        );
        assert_eq!(openssl_sha1(&leaf), sha1(&cert), "store {i}");
    }
    let agents = fleet.cli.ok(&["agents", "list"]);
    let done = agents[0]["JobsDone"].as_i64().unwrap();
    assert_eq!(done, 24, "each job recorded once: {agents}");
}

#[test]
fn agents_keep_working_across_a_server_restart() {
    let mut fleet = Fleet::new();
    let dir = fleet.store_dir("web1");
    let store = fleet.add_remote_store("web1", "pkcs12", &dir.join("a.p12"));
    let token = fleet.add_agent("web1");
    let mut agent = fleet.start_agent("web1", Some(&token));
    eventually("registration", || agent.log().contains("connected as"));
    let port = fleet.port();
    drop(fleet.server.take());
    std::thread::sleep(Duration::from_secs(2));
    fleet.start_server(port);
    let cert = fleet.enroll("restart.example.com");
    let jobs = fleet.deploy(&cert, &[&store]);
    fleet.wait_completed(&jobs);
    let extracted = fleet.path("x.pem");
    let leaf = openssl_pkcs12_certs(&dir.join("a.p12"), STORE_PASSWORD, "-clcerts", &extracted);
    assert_eq!(openssl_sha1(&leaf), sha1(&cert));
    // One log line per job, and SIGTERM stops it cleanly.
    assert_eq!(
        agent
            .log()
            .lines()
            .filter(|l| l.contains(&format!("job {} ", jobs[0])))
            .count(),
        1,
        "{}",
        agent.log()
    );
    assert!(agent.terminate().success(), "{}", agent.log());
    assert!(agent.log().contains("stopped"));
}

#[test]
fn a_revoked_agent_is_refused_at_once() {
    // Threat: a decommissioned or stolen host keeps its certificate.
    let fleet = Fleet::new();
    let dir = fleet.store_dir("web1");
    let store = fleet.add_remote_store("web1", "pkcs12", &dir.join("a.p12"));
    let token = fleet.add_agent("web1");
    let mut agent = fleet.start_agent("web1", Some(&token));
    eventually("registration", || agent.log().contains("connected as"));
    let revoked = fleet.cli.ok(&["agents", "revoke", "web1"]);
    assert_eq!(revoked["State"], "revoked");
    // Its certificate is refused on the very next request...
    let client = agent_client(&fleet, "web1");
    let (status, _) = call(&client, &fleet, "GET", "Jobs", None);
    assert_eq!(status, 403);
    // ...so a job for its store is never handed out, and the running agent gives up.
    let cert = fleet.enroll("revoked.example.com");
    let jobs = fleet.deploy(&cert, &[&store]);
    let status = wait_exit(&mut agent.child);
    assert!(!status.success(), "{}", agent.log());
    assert!(agent.log().contains("403"), "{}", agent.log());
    assert_eq!(fleet.job(jobs[0])["Status"], "Waiting");
    assert!(!dir.join("a.p12").exists());
}

#[test]
fn refuses_plain_key_for_non_pem_store() {
    let cli = Cli::with_ca();
    let path = cli.dir().join("a.p12");
    let out = cli.run(&[
        "stores",
        "add",
        "--type",
        "pkcs12",
        "--path",
        path.to_str().unwrap(),
        "--store-password",
        "pass:x",
        "--plain-key",
    ]);
    assert_exit(&out, 2);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--plain-key applies to pem stores only")
    );
    assert_eq!(cli.ok(&["stores", "list"]), json!([]));
}

#[test]
fn a_pem_store_gets_a_plain_key_only_when_registered_so() {
    // The server's own runner honours the registration as an agent does.
    let cli = Cli::with_ca();
    let d = cli.dir();
    let s = |p: &str| d.join(p).to_str().unwrap().to_string();
    let plain = cli.ok(&[
        "stores",
        "add",
        "--type",
        "pem",
        "--path",
        &s("p.crt"),
        "--key-path",
        &s("p.key"),
        "--plain-key",
    ])["Id"]
        .as_str()
        .unwrap()
        .to_string();
    let encrypted = cli.ok(&[
        "stores",
        "add",
        "--type",
        "pem",
        "--path",
        &s("e.crt"),
        "--key-path",
        &s("e.key"),
    ])["Id"]
        .as_str()
        .unwrap()
        .to_string();
    let cert = cli.enroll(
        "CN=nginx.example.com",
        &["--key-type", "ec-p256", "--password", "pass:t"],
    );
    cli.ok(&[
        "deploy",
        "--certificate-id",
        &cert["KeyfactorId"].to_string(),
        "--password",
        &format!("pass:{ENTRY_PASSWORD}"),
        "--store",
        &plain,
        &encrypted,
    ]);
    let ran = cli.ok(&["jobs", "run"]);
    assert!(
        ran.as_array()
            .unwrap()
            .iter()
            .all(|j| j["Result"] == "Success"),
        "{ran}"
    );
    pem_key_is_plain(&d.join("p.key"), &d.join("p.crt"));
    pem_key_is_encrypted(&d.join("e.key"), &d.join("e.crt"));
    // Without an entry password a plain-key store still gets its job; an ordinary PEM store
    // does not (its key would have to be written unencrypted).
    let out = cli.ok(&[
        "deploy",
        "--certificate-id",
        &cert["KeyfactorId"].to_string(),
        "--store",
        &plain,
        &encrypted,
    ]);
    assert_eq!(out["SuccessfulStores"], json!([plain]), "{out}");
    assert_eq!(out["FailedStores"], json!([encrypted]), "{out}");
}

#[test]
fn a_machines_store_takes_only_password_references_resolved_on_that_host() {
    // Threat: a literal store password would travel to the agent with every job.
    let cli = Cli::with_ca();
    let out = cli.run(&[
        "stores",
        "add",
        "--type",
        "pkcs12",
        "--path",
        "/srv/app.p12",
        "--store-password",
        "pass:literal",
        "--machine",
        "web1",
    ]);
    assert_exit(&out, 1);
    assert!(String::from_utf8_lossy(&out.stderr).contains("env:VAR or file:PATH"));
    let out = cli.run(&[
        "stores",
        "add",
        "--type",
        "pem",
        "--path",
        "relative.crt",
        "--machine",
        "web1",
    ]);
    assert_exit(&out, 1);
    assert!(String::from_utf8_lossy(&out.stderr).contains("absolute paths"));
}

#[test]
fn an_agent_inventories_its_stores_so_certificates_placed_by_other_means_are_found() {
    let fleet = Fleet::new();
    let dir = fleet.store_dir("web1");
    let p12 = dir.join("other.p12");
    // A PKCS#12 file made by openssl, not by pfxkit: a certificate the catalog never issued.
    p12_by_openssl(&fleet, "placed-by-hand.example", &p12);
    let store = fleet.add_store(
        Some("web1"),
        &[
            "--type",
            "pkcs12",
            "--path",
            p12.to_str().unwrap(),
            "--store-password",
            "env:AGENT_STORE_PASSWORD",
            "--inventory-every",
            "1h",
        ],
    );
    let token = fleet.add_agent("web1");
    let _agent = fleet.start_agent("web1", Some(&token));
    let found = || {
        fleet
            .cli
            .ok(&["certificates", "list", "--subject", "placed-by-hand"])
            .as_array()
            .unwrap()
            .first()
            .cloned()
    };
    eventually("the agent's inventory", || found().is_some());
    let id = found().unwrap()["Id"].to_string();
    let shown = fleet
        .cli
        .ok(&["certificates", "show", &id, "--include-locations"]);
    assert_eq!(
        shown["Locations"][0]["CertStoreId"],
        store.as_str(),
        "{shown}"
    );
    assert_eq!(shown["Locations"][0]["Alias"], "byhand", "{shown}");
}

/// `stores add --machine web1` of a PKCS#12 store at `path`, its password on the agent's host.
fn add_p12_store(fleet: &Fleet, path: &Path) -> String {
    fleet.add_remote_store("web1", "pkcs12", path)
}

/// Deploys `cn` to `stores` and waits until each job has ended, however it ended; the jobs by
/// store id.
fn deploy_and_wait(fleet: &Fleet, cn: &str, stores: &[&str]) -> (Value, Vec<Value>) {
    let cert = fleet.enroll(cn);
    let ids = fleet.deploy(&cert, stores);
    assert_eq!(ids.len(), stores.len());
    eventually("every job to end", || {
        ids.iter().all(|id| fleet.job(*id)["Status"] == "Completed")
    });
    let jobs = stores
        .iter()
        .map(|s| {
            fleet
                .jobs()
                .into_iter()
                .find(|j| j["StoreId"] == *s && ids.contains(&j["Id"].as_i64().unwrap()))
                .unwrap()
        })
        .collect();
    (cert, jobs)
}

/// The names in `dir`, sorted.
fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn a_confined_agent_refuses_stores_outside_its_root_and_deploys_inside_it() {
    // Threat: whoever controls the server (or a catalog admin) registers a "store" at a path of
    // its choosing on the agent's host (/etc/shadow, /root/.ssh/authorized_keys) so that the
    // agent, often root, writes a keystore over it or reads it through an inventory.
    let fleet = Fleet::new();
    let root = fleet.store_dir("web1");
    let outside = fleet.store_dir("etc");
    let inside = root.join("app.p12");
    let absent = outside.join("shadow.p12");
    let present = outside.join("present.p12");
    p12_by_openssl(&fleet, "outside-the-root.example", &present);
    let present_before = std::fs::read(&present).unwrap();
    let s_inside = add_p12_store(&fleet, &inside);
    let s_absent = add_p12_store(&fleet, &absent);
    let s_present = add_p12_store(&fleet, &present);
    // A PEM store whose certificate is inside the root but whose key is not.
    let split_crt = root.join("split.crt");
    let split_key = outside.join("split.key");
    let s_split = fleet.add_store(
        Some("web1"),
        &[
            "--type",
            "pem",
            "--path",
            split_crt.to_str().unwrap(),
            "--key-path",
            split_key.to_str().unwrap(),
        ],
    );
    let token = fleet.add_agent("web1");
    let mut agent = fleet.start_agent_with(
        "web1",
        Some(&token),
        &[OsStr::new("--root"), root.as_os_str()],
    );
    let (cert, jobs) = deploy_and_wait(
        &fleet,
        "confined.example.com",
        &[&s_inside, &s_absent, &s_present, &s_split],
    );
    // Inside the root: deployed in the same run.
    assert_eq!(jobs[0]["Result"], "Success", "{}", jobs[0]);
    assert_eq!(
        keytool_sha1(&inside, "PKCS12", STORE_PASSWORD, "app"),
        sha1(&cert)
    );
    // Outside: each job failed naming its path and the root.
    let canonical_root = std::fs::canonicalize(&root).unwrap();
    for (job, path) in [
        (&jobs[1], &absent),
        (&jobs[2], &present),
        (&jobs[3], &split_key),
    ] {
        assert_eq!(job["Result"], "Failure", "{job}");
        let message = job["Message"].as_str().unwrap();
        assert!(message.contains("outside the agent's roots"), "{message}");
        assert!(message.contains(path.to_str().unwrap()), "{message}");
        assert!(
            message.contains(canonical_root.to_str().unwrap()),
            "{message}"
        );
    }
    // Nothing written outside (not even a lock file), the existing file unchanged, and the
    // store refused as a whole (its certificate file not written either)...
    assert_eq!(names_in(&outside), vec!["present.p12".to_string()]);
    assert!(!split_crt.exists());
    assert_eq!(std::fs::read(&present).unwrap(), present_before);
    // ...nor read: the scheduled inventory, run at connection before any job, refused it too,
    // so the certificate in it never reached the catalog.
    assert!(
        fleet
            .cli
            .ok(&["certificates", "list", "--subject", "outside-the-root"])
            .as_array()
            .unwrap()
            .is_empty()
    );
    let log = agent.log();
    assert!(
        log.contains(&format!("inventory of store {s_present}:"))
            && log.contains("outside the agent's roots"),
        "{log}"
    );
    assert!(!log.contains("unconfined"), "{log}");
    // The agent is still serving.
    assert!(agent.child.try_wait().unwrap().is_none(), "{log}");
    assert!(agent.terminate().success(), "{}", agent.log());
}

#[test]
fn a_symlink_inside_the_root_leading_outside_is_refused() {
    // Threat: a link placed inside the root (by anyone who could write there, or left behind)
    // turning a confined write into a write outside it.
    let fleet = Fleet::new();
    let root = fleet.store_dir("web1");
    let outside = fleet.store_dir("elsewhere");
    let target = outside.join("target.p12");
    p12_by_openssl(&fleet, "link-target.example", &target);
    let target_before = std::fs::read(&target).unwrap();
    std::os::unix::fs::symlink(&target, root.join("link.p12")).unwrap();
    std::os::unix::fs::symlink(&outside, root.join("sub")).unwrap();
    // The root named through a link of its own, and a store registered through that link:
    // resolved, it is inside, so it is deployed.
    let root_link = fleet.path("web1-link");
    std::os::unix::fs::symlink(&root, &root_link).unwrap();
    let s_ok = add_p12_store(&fleet, &root_link.join("ok.p12"));
    let s_link = add_p12_store(&fleet, &root.join("link.p12"));
    let s_sub = add_p12_store(&fleet, &root.join("sub").join("new.p12"));
    let token = fleet.add_agent("web1");
    let mut agent = fleet.start_agent_with(
        "web1",
        Some(&token),
        &[OsStr::new("--root"), root_link.as_os_str()],
    );
    let (cert, jobs) = deploy_and_wait(&fleet, "linked.example.com", &[&s_ok, &s_link, &s_sub]);
    assert_eq!(jobs[0]["Result"], "Success", "{}", jobs[0]);
    assert_eq!(
        keytool_sha1(&root.join("ok.p12"), "PKCS12", STORE_PASSWORD, "app"),
        sha1(&cert)
    );
    let link_message = jobs[1]["Message"].as_str().unwrap();
    assert_eq!(jobs[1]["Result"], "Failure", "{}", jobs[1]);
    assert!(
        link_message.contains("outside the agent's roots")
            && link_message.contains("a symbolic link to"),
        "{link_message}"
    );
    let sub_message = jobs[2]["Message"].as_str().unwrap();
    assert_eq!(jobs[2]["Result"], "Failure", "{}", jobs[2]);
    assert!(
        sub_message.contains("outside the agent's roots"),
        "{sub_message}"
    );
    assert_eq!(std::fs::read(&target).unwrap(), target_before);
    assert_eq!(names_in(&outside), vec!["target.p12".to_string()]);
    assert!(
        std::fs::symlink_metadata(root.join("link.p12"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert!(agent.terminate().success(), "{}", agent.log());
}

#[test]
fn an_agent_with_a_missing_root_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-dir");
    let state = dir.path().join("state");
    let out = Command::new(env!("CARGO_BIN_EXE_pfxkit"))
        .args(["agent", "--server", "https://127.0.0.1:9", "--name", "web1"])
        .arg("--ca-cert")
        .arg(dir.path().join("ca.pem"))
        .arg("--state")
        .arg(&state)
        .arg("--root")
        .arg(dir.path())
        .arg("--root")
        .arg(&missing)
        .env_remove("PFXKIT_CATALOG")
        .output()
        .unwrap();
    assert_exit(&out, 2);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(missing.to_str().unwrap()), "{stderr}");
    assert!(stderr.contains("must be an existing directory"), "{stderr}");
    // Refused before anything else: no state directory, no key.
    assert!(!state.exists());
}
