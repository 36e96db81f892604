//! The pfxkit agent: the process on each host that holds stores. It registers once with a
//! one-time token and a CSR (its key is generated here and never leaves the host), then talks
//! to `pfxkit serve` over mutual TLS only: it long-polls for the jobs of its own stores, runs
//! each through the same crash-safe [`StoreAdapter`](pfxkit::store::StoreAdapter) the server
//! uses, reports the outcome with an inventory of the store, and inventories every store on
//! its schedule so certificates placed by other means are found.
//!
//! What crosses the network: the CSR and certificate at registration; then store definitions
//! (paths, types, password *references*), and per job the key and chain and entry password —
//! only to the agent holding the job's lease, inside mutual TLS. Store passwords kept as
//! `env:`/`file:` references are resolved here and never sent anywhere. A job's key and entry
//! password are held in memory only (zeroized after use), never written in plain text, except
//! into a PEM store the catalog registered for a plain key (nginx).
//!
//! Failures: a network error or server restart is retried with exponential backoff and
//! jitter; a completion is retried until it is recorded or refused (its lease ended); a
//! SIGTERM (the `stop` flag) ends the loop after the job in hand.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use base64ct::{Base64, Encoding};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::{Value, json};
use zeroize::{Zeroize, Zeroizing};

use pfxkit::cert::Certificate;
use pfxkit::identity::Identity;
use pfxkit::secret::{Password, PasswordSource, PrivateKey};
use pfxkit::store::{self, AddOptions, StoreSpec, StoreType};

mod confine;
pub use confine::Roots;

/// The version reported to the server.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The agent's errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Bad configuration or state (a missing token, an unreadable CA file): not retried.
    #[error("{0}")]
    Config(String),
    /// The server refused (403 and the like): not retried.
    #[error("the server refused: {0}")]
    Refused(String),
    /// The network or the server failed; retried with backoff.
    #[error("{0}")]
    Transient(String),
    /// A store file outside the agent's roots (`--root`), or one whose directories another
    /// user could swap: the job fails, nothing is read or written, the agent goes on.
    #[error("{0}")]
    Confined(String),
    /// A store or codec failure.
    #[error(transparent)]
    Codec(#[from] pfxkit::Error),
}

/// Result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How an agent runs.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct AgentConfig {
    /// The server, `https://HOST:PORT` (the API base path is added when missing).
    pub server: String,
    /// This agent's name, as `pfxkit agents add` gave it.
    pub name: String,
    /// The registration token's source (needed only until the first registration).
    pub token: Option<PasswordSource>,
    /// The PEM file of the CA that issued the server's certificate.
    pub ca_cert: PathBuf,
    /// Where the agent keeps its key (0600) and certificate.
    pub state_dir: PathBuf,
    /// The longest long-poll, seconds.
    pub poll_wait_secs: u64,
    /// The directories store files must lie in (`--root`); unconfined when empty.
    pub roots: Roots,
}

impl AgentConfig {
    /// A configuration with the default state directory (`./pfxkit-agent`) and poll.
    pub fn new(server: &str, name: &str, ca_cert: &Path) -> Self {
        AgentConfig {
            server: server.to_string(),
            name: name.to_string(),
            token: None,
            ca_cert: ca_cert.to_path_buf(),
            state_dir: PathBuf::from("pfxkit-agent"),
            poll_wait_secs: 20,
            roots: Roots::unconfined(),
        }
    }

    /// With a registration token.
    #[must_use]
    pub fn token(mut self, token: Option<PasswordSource>) -> Self {
        self.token = token;
        self
    }

    /// Confined to `roots` (see [`Roots`]).
    #[must_use]
    pub fn roots(mut self, roots: Roots) -> Self {
        self.roots = roots;
        self
    }

    /// With a state directory.
    #[must_use]
    pub fn state_dir(mut self, dir: &Path) -> Self {
        self.state_dir = dir.to_path_buf();
        self
    }

    fn base(&self) -> String {
        let s = self.server.trim_end_matches('/');
        let lower = s.to_ascii_lowercase();
        if lower.ends_with("/keyfactorapi") || lower.ends_with("/keyfactor/api") {
            s.to_string()
        } else {
            format!("{s}/KeyfactorAPI")
        }
    }
}

/// One line to stderr: what an operator greps for.
fn log(line: &str) {
    let _ = writeln!(std::io::stderr().lock(), "pfxkit-agent: {line}");
}

fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    let _ = getrandom::fill(&mut b);
    u64::from_le_bytes(b)
}

/// Exponential backoff with jitter: 0.5 s doubling to 30 s, each wait a random point in its
/// upper half, so a fleet that lost the server does not come back in step.
#[derive(Debug, Default)]
struct Backoff {
    failures: u32,
}

impl Backoff {
    fn next(&mut self) -> Duration {
        let base_ms = 500u64
            .saturating_mul(1u64 << self.failures.min(6))
            .min(30_000);
        self.failures = self.failures.saturating_add(1);
        let jitter = random_u64() % (base_ms / 2 + 1);
        Duration::from_millis(base_ms / 2 + jitter)
    }

    fn reset(&mut self) {
        self.failures = 0;
    }
}

/// Sleeps `d`, waking early when `stop` is set; whether it was.
fn sleep_or_stop(d: Duration, stop: &AtomicBool) -> bool {
    let end = Instant::now() + d;
    while Instant::now() < end {
        if stop.load(Ordering::SeqCst) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50).min(end - Instant::now()));
    }
    stop.load(Ordering::SeqCst)
}

fn io(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Config(format!("{what}: {e}"))
}

/// Writes a file readable by its owner only, atomically (temporary + rename).
fn write_private(path: &Path, data: &[u8]) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| io(&tmp.display().to_string(), e))?;
    f.write_all(data)
        .and_then(|()| f.sync_all())
        .map_err(|e| io(&tmp.display().to_string(), e))?;
    std::fs::rename(&tmp, path).map_err(|e| io(&path.display().to_string(), e))
}

/// The agent's own TLS identity in its state directory: `agent.key` (PKCS#8 PEM, 0600) and
/// `agent.crt` (its certificate, then the CA chain).
struct StateDir {
    dir: PathBuf,
}

impl StateDir {
    fn open(dir: &Path) -> Result<Self> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| io(&dir.display().to_string(), e))?;
        Ok(StateDir {
            dir: dir.to_path_buf(),
        })
    }

    fn key_path(&self) -> PathBuf {
        self.dir.join("agent.key")
    }

    fn cert_path(&self) -> PathBuf {
        self.dir.join("agent.crt")
    }

    /// The agent's key, generated (EC P-256) on first use.
    fn key(&self) -> Result<PrivateKey> {
        let path = self.key_path();
        if path.exists() {
            let pem = Zeroizing::new(
                std::fs::read_to_string(&path).map_err(|e| io(&path.display().to_string(), e))?,
            );
            let der = PrivateKeyDer::from_pem_slice(pem.as_bytes())
                .map_err(|e| io(&path.display().to_string(), e))?;
            return Ok(PrivateKey::from_pkcs8_der(der.secret_der())?);
        }
        let key = pfxkit_catalog::ca::KeyType::EcP256
            .generate()
            .map_err(|e| Error::Config(format!("key generation: {e}")))?;
        let pem = Zeroizing::new(format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            Zeroizing::new(Base64::encode_string(key.expose_pkcs8_der()))
                .as_bytes()
                .chunks(64)
                .map(|c| std::str::from_utf8(c).unwrap_or_default())
                .collect::<Vec<_>>()
                .join("\n")
        ));
        write_private(&path, pem.as_bytes())?;
        Ok(key)
    }

    fn certificates(&self) -> Result<Option<Vec<CertificateDer<'static>>>> {
        let path = self.cert_path();
        if !path.exists() {
            return Ok(None);
        }
        let chain = CertificateDer::pem_file_iter(&path)
            .and_then(Iterator::collect::<Result<Vec<_>, _>>)
            .map_err(|e| io(&path.display().to_string(), e))?;
        Ok(Some(chain))
    }
}

fn tls_config(
    ca_cert: &Path,
    client: Option<(Vec<CertificateDer<'static>>, &PrivateKey)>,
) -> Result<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    let cas = CertificateDer::pem_file_iter(ca_cert)
        .and_then(Iterator::collect::<Result<Vec<_>, _>>)
        .map_err(|e| io(&ca_cert.display().to_string(), e))?;
    if cas.is_empty() {
        return Err(Error::Config(format!(
            "{}: no CA certificate",
            ca_cert.display()
        )));
    }
    for ca in cas {
        roots
            .add(ca)
            .map_err(|e| io(&ca_cert.display().to_string(), e))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Config(format!("TLS: {e}")))?
        .with_root_certificates(roots);
    Ok(match client {
        None => builder.with_no_client_auth(),
        Some((chain, key)) => builder
            .with_client_auth_cert(
                chain,
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.expose_pkcs8_der().to_vec())),
            )
            .map_err(|e| Error::Config(format!("the agent's certificate and key: {e}")))?,
    })
}

fn http_client(tls: rustls::ClientConfig, timeout: Duration) -> Result<reqwest::blocking::Client> {
    reqwest::blocking::Client::builder()
        .use_preconfigured_tls(tls)
        .timeout(timeout)
        .connect_timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| Error::Config(format!("HTTP client: {e}")))
}

/// An answer's body, read into memory that is zeroized when dropped (it may hold a key).
fn body(resp: reqwest::blocking::Response) -> Result<(reqwest::StatusCode, Zeroizing<Vec<u8>>)> {
    let status = resp.status();
    let capacity = resp
        .content_length()
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(64 * 1024)
        .min(16 * 1024 * 1024);
    let mut buf = Zeroizing::new(Vec::with_capacity(capacity));
    resp.take(16 * 1024 * 1024)
        .read_to_end(&mut buf)
        .map_err(|e| Error::Transient(format!("reading the answer: {e}")))?;
    Ok((status, buf))
}

fn answer(resp: reqwest::Result<reqwest::blocking::Response>) -> Result<Value> {
    let resp = resp.map_err(|e| Error::Transient(format!("server unreachable: {e}")))?;
    let (status, bytes) = body(resp)?;
    let value: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    if status.is_success() {
        return Ok(value);
    }
    let message = value
        .get("Message")
        .and_then(Value::as_str)
        .unwrap_or("no message")
        .to_string();
    if status.is_server_error() || status == reqwest::StatusCode::REQUEST_TIMEOUT {
        Err(Error::Transient(format!("HTTP {status}: {message}")))
    } else {
        Err(Error::Refused(format!("HTTP {status}: {message}")))
    }
}

/// Registers (once: when the state directory has no certificate yet) and returns the
/// certificate chain.
fn register(
    config: &AgentConfig,
    state: &StateDir,
    key: &PrivateKey,
    stop: &AtomicBool,
) -> Result<Vec<CertificateDer<'static>>> {
    if let Some(chain) = state.certificates()? {
        return Ok(chain);
    }
    let token = config.token.as_ref().ok_or_else(|| {
        Error::Config(format!(
            "{} holds no certificate yet: --token is needed to register",
            state.dir.display()
        ))
    })?;
    if matches!(token, PasswordSource::Stdin) {
        return Err(Error::Config("--token stdin is not supported".into()));
    }
    let token = token.resolve()?;
    let token = token.expose_secret().unwrap_or_default().to_string();
    let token = Zeroizing::new(token);
    let csr = pfxkit_catalog::ca::csr(key, &format!("CN={}", config.name))
        .map_err(|e| Error::Config(format!("CSR: {e}")))?;
    let client = http_client(tls_config(&config.ca_cert, None)?, Duration::from_secs(30))?;
    let url = format!("{}/Agent/Register", config.base());
    let mut backoff = Backoff::default();
    let value = loop {
        let body = Zeroizing::new(
            json!({"Name": config.name, "Token": token.as_str(), "Csr": Base64::encode_string(&csr)})
                .to_string(),
        );
        match answer(
            client
                .post(&url)
                .header("content-type", "application/json")
                .body(body.as_bytes().to_vec())
                .send(),
        ) {
            Ok(v) => break v,
            Err(Error::Transient(e)) => {
                log(&format!("registration: {e}; retrying"));
                if sleep_or_stop(backoff.next(), stop) {
                    return Err(Error::Config("stopped before registering".into()));
                }
            }
            Err(e) => return Err(e),
        }
    };
    let mut pem = String::new();
    let mut chain = Vec::new();
    for b64 in value
        .get("Certificates")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        let der = Base64::decode_vec(b64)
            .map_err(|_| Error::Refused("a certificate in the answer is not base64".into()))?;
        pem.push_str(&pfxkit::pem::encode_certificate(&Certificate::from_der(
            &der,
        )?));
        chain.push(CertificateDer::from(der));
    }
    if chain.is_empty() {
        return Err(Error::Refused(
            "the registration answer holds no certificate".into(),
        ));
    }
    write_private(&state.cert_path(), pem.as_bytes())?;
    log(&format!("registered as {}", config.name));
    Ok(chain)
}

/// A store as the server describes it to its agent.
#[derive(Clone, Debug)]
struct Store {
    id: String,
    spec_type: StoreType,
    path: PathBuf,
    key_path: Option<PathBuf>,
    password: Option<String>,
    plain_key: bool,
    inventory_every: Duration,
    next_inventory: Instant,
}

impl Store {
    fn from_json(v: &Value, now: Instant) -> Result<Self> {
        let s = |k: &str| v.get(k).and_then(Value::as_str);
        let bad = |what: &str| Error::Refused(format!("the server sent a store without {what}"));
        Ok(Store {
            id: s("Id").ok_or_else(|| bad("Id"))?.to_string(),
            spec_type: s("StoreType").ok_or_else(|| bad("StoreType"))?.parse()?,
            path: PathBuf::from(s("StorePath").ok_or_else(|| bad("StorePath"))?),
            key_path: s("KeyPath").map(PathBuf::from),
            password: s("StorePassword").map(str::to_string),
            plain_key: v.get("PlainKey").and_then(Value::as_bool).unwrap_or(false),
            inventory_every: Duration::from_secs(
                v.get("InventoryEverySecs")
                    .and_then(Value::as_u64)
                    .unwrap_or(86_400)
                    .max(60),
            ),
            next_inventory: now,
        })
    }

    /// Opens the store with its password resolved here (an `env:` or `file:` reference; a
    /// server cannot make the agent read its standard input or take a literal), at its files'
    /// paths as `roots` resolved and allowed them.
    fn adapter(&self, roots: &Roots) -> Result<Box<dyn store::StoreAdapter>> {
        // Before anything else, the password file included: a refused store touches nothing.
        let path = roots.confine(&self.path)?;
        let key_path = self
            .key_path
            .as_deref()
            .map(|k| roots.confine(k))
            .transpose()?;
        let password = match &self.password {
            None => None,
            Some(r) => match r.parse::<PasswordSource>()? {
                source @ (PasswordSource::Env(_) | PasswordSource::File(_)) => {
                    Some(source.resolve()?)
                }
                _ => {
                    return Err(Error::Refused(format!(
                        "store {}: only env: and file: password references resolve on an agent",
                        self.id
                    )));
                }
            },
        };
        let spec = StoreSpec::new(self.spec_type, &path)
            .key_path(key_path)
            .store_password(password)
            .plain_key(self.plain_key);
        Ok(store::open(&spec)?)
    }

    fn inventory(&self, roots: &Roots) -> Result<Value> {
        let entries = self.adapter(roots)?.inventory()?;
        Ok(Value::Array(
            entries
                .iter()
                .map(|e| {
                    json!({
                        "Alias": e.alias,
                        "Chain": e.chain.iter().map(|c| Base64::encode_string(c.der())).collect::<Vec<_>>(),
                    })
                })
                .collect(),
        ))
    }
}

/// A job as received: the key and entry password live in zeroizing buffers.
struct Job {
    id: i64,
    store: Store,
    alias: Option<String>,
    overwrite: bool,
    key_der: Zeroizing<Vec<u8>>,
    chain: Vec<Certificate>,
    entry_password: Option<Password>,
}

/// Takes a secret string out of a JSON value, wiping the value's copy.
fn take_secret(v: &mut Value, key: &str) -> Option<Zeroizing<String>> {
    match v.get_mut(key) {
        Some(Value::String(s)) => {
            let out = Zeroizing::new(s.clone());
            s.zeroize();
            Some(out)
        }
        _ => None,
    }
}

fn parse_job(v: &mut Value, now: Instant) -> Result<Job> {
    let bad = |what: &str| Error::Refused(format!("the server sent a job without {what}"));
    let key_b64 = take_secret(v, "Key").ok_or_else(|| bad("Key"))?;
    let entry_password = take_secret(v, "EntryPassword").map(|p| Password::new(p.as_str()));
    let key_der = Zeroizing::new(Base64::decode_vec(&key_b64).map_err(|_| bad("a base64 Key"))?);
    let mut chain = Vec::new();
    for b64 in v
        .get("Chain")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        let der = Base64::decode_vec(b64).map_err(|_| bad("a base64 Chain"))?;
        chain.push(Certificate::from_der(&der)?);
    }
    Ok(Job {
        id: v
            .get("Id")
            .and_then(Value::as_i64)
            .ok_or_else(|| bad("Id"))?,
        store: Store::from_json(v.get("Store").ok_or_else(|| bad("Store"))?, now)?,
        alias: v.get("Alias").and_then(Value::as_str).map(str::to_string),
        overwrite: v.get("Overwrite").and_then(Value::as_bool).unwrap_or(false),
        key_der,
        chain,
        entry_password,
    })
}

/// Runs a job through the store's adapter, as the server's runner would: the store
/// transaction, then an inventory. Returns (result, message, inventory).
fn run_job(job: &Job, roots: &Roots) -> (&'static str, String, Option<Value>) {
    let added = (|| -> Result<String> {
        let mut chain = job.chain.clone();
        if chain.is_empty() {
            return Err(Error::Refused("the job has no certificate".into()));
        }
        let leaf = chain.remove(0);
        let identity = Identity::new(PrivateKey::from_pkcs8_der(&job.key_der)?, leaf, chain)?;
        let adapter = job.store.adapter(roots)?;
        // A job re-run after an interruption finds its own certificate under the alias: the
        // same end state, so it overwrites.
        let overwrite = job.overwrite
            || adapter.inventory().ok().is_some_and(|entries| {
                entries.iter().any(|e| {
                    job.alias.as_deref().is_none_or(|a| a == e.alias)
                        && e.leaf() == Some(identity.leaf())
                })
            });
        Ok(adapter.add(
            job.alias.as_deref(),
            &identity,
            job.entry_password.as_ref(),
            AddOptions::new(overwrite, true),
        )?)
    })();
    match added {
        Ok(alias) => match job.store.inventory(roots) {
            Ok(inv) => ("Success", format!("added as '{alias}'"), Some(inv)),
            Err(e) => (
                "Warning",
                format!("added as '{alias}'; inventory failed: {e}"),
                None,
            ),
        },
        Err(e) => ("Failure", e.to_string(), None),
    }
}

/// The connected agent.
struct Session<'a> {
    config: &'a AgentConfig,
    client: reqwest::blocking::Client,
    stores: Vec<Store>,
    refreshed: Instant,
    stop: &'a AtomicBool,
}

impl Session<'_> {
    fn url(&self, path: &str) -> String {
        format!("{}/Agent/{path}", self.config.base())
    }

    fn post(&self, path: &str, body: &Value) -> Result<Value> {
        answer(
            self.client
                .post(self.url(path))
                .header("content-type", "application/json")
                .header("x-pfxkit-agent-version", VERSION)
                .body(body.to_string())
                .send(),
        )
    }

    fn set_stores(&mut self, list: &Value) -> Result<()> {
        let now = Instant::now();
        let mut stores = Vec::new();
        for v in list.as_array().into_iter().flatten() {
            let mut s = Store::from_json(v, now)?;
            // A store already known keeps its schedule.
            if let Some(old) = self.stores.iter().find(|o| o.id == s.id) {
                s.next_inventory = old.next_inventory;
            }
            stores.push(s);
        }
        self.stores = stores;
        self.refreshed = now;
        Ok(())
    }

    fn hello(&mut self) -> Result<()> {
        let v = self.post("Hello", &json!({"Version": VERSION}))?;
        if let Some(n) = v.get("Released").and_then(Value::as_u64).filter(|n| *n > 0) {
            log(&format!(
                "{n} job(s) of an earlier run given back to the queue"
            ));
        }
        self.set_stores(v.get("Stores").unwrap_or(&Value::Null))
    }

    /// Inventories the stores whose time has come; returns when the next one is due.
    fn scheduled_inventories(&mut self) -> Result<Instant> {
        let now = Instant::now();
        let due: Vec<usize> = (0..self.stores.len())
            .filter(|i| self.stores.get(*i).is_some_and(|s| s.next_inventory <= now))
            .collect();
        for i in due {
            if self.stop.load(Ordering::SeqCst) {
                break;
            }
            let Some(store) = self.stores.get(i).cloned() else {
                continue;
            };
            match store.inventory(&self.config.roots) {
                Ok(inv) => {
                    self.post(
                        &format!("Stores/{}/Inventory", store.id),
                        &json!({"Inventory": inv}),
                    )?;
                }
                Err(Error::Codec(pfxkit::Error::StoreNotFound { .. })) => {}
                Err(e) => log(&format!("inventory of store {}: {e}", store.id)),
            }
            if let Some(s) = self.stores.get_mut(i) {
                s.next_inventory = now + s.inventory_every;
            }
        }
        Ok(self
            .stores
            .iter()
            .map(|s| s.next_inventory)
            .min()
            .unwrap_or(now + Duration::from_secs(3600)))
    }

    /// Polls in a thread so a SIGTERM is not held up by a long-poll.
    fn poll(&self, wait: Duration) -> Result<Option<Value>> {
        let (tx, rx) = mpsc::channel();
        let request = self
            .client
            .get(self.url(&format!("Jobs?wait={}", wait.as_secs())))
            .header("x-pfxkit-agent-version", VERSION)
            .timeout(wait + Duration::from_secs(30));
        std::thread::spawn(move || {
            let _ = tx.send(answer(request.send()));
        });
        loop {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(v) => return v.map(Some),
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if self.stop.load(Ordering::SeqCst) {
                        return Ok(None);
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(Error::Transient("the poll ended without an answer".into()));
                }
            }
        }
    }

    /// Reports a job's end, retrying while the server is unreachable: the lease outlives a
    /// server restart, so the completion is recorded once it is back.
    fn complete(&self, id: i64, lease: &str, result: &str, message: &str, inv: Option<Value>) {
        let body = json!({"Lease": lease, "Result": result, "Message": message, "Inventory": inv});
        let mut backoff = Backoff::default();
        loop {
            match self.post(&format!("Jobs/{id}/Complete"), &body) {
                Ok(_) => return,
                Err(Error::Transient(e)) => {
                    log(&format!("job {id}: reporting: {e}; retrying"));
                    if sleep_or_stop(backoff.next(), self.stop) {
                        return;
                    }
                }
                Err(e) => {
                    log(&format!("job {id}: completion not recorded: {e}"));
                    return;
                }
            }
        }
    }

    fn run_claim(&self, mut claim: Value) {
        let lease = claim
            .get("Lease")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let now = Instant::now();
        let jobs = match claim.get_mut("Jobs") {
            Some(Value::Array(jobs)) => std::mem::take(jobs),
            _ => Vec::new(),
        };
        for mut v in jobs {
            let parsed = parse_job(&mut v, now);
            // Whatever key material the value held is wiped with it.
            if let Some(Value::String(s)) = v.get_mut("Key") {
                s.zeroize();
            }
            if self.stop.load(Ordering::SeqCst) {
                // The lease goes back to the queue at the next start (or when it ends).
                break;
            }
            let started = Instant::now();
            let (id, result, message, inv, store) = match parsed {
                Ok(job) => {
                    let (result, message, inv) = run_job(&job, &self.config.roots);
                    (job.id, result, message, inv, job.store.id.clone())
                }
                Err(e) => {
                    let id = v.get("Id").and_then(Value::as_i64).unwrap_or(-1);
                    (id, "Failure", e.to_string(), None, String::from("?"))
                }
            };
            log(&format!(
                "job {id} store {store}: {result}: {message} ({} ms)",
                started.elapsed().as_millis()
            ));
            self.complete(id, &lease, result, &message, inv);
        }
    }
}

/// Runs the agent until `stop` is set: registers if needed, then polls and runs jobs and
/// inventories, surviving network failures and server restarts.
///
/// # Errors
/// [`Error::Config`] for a bad configuration or state directory, [`Error::Refused`] when the
/// server refuses the agent (a wrong or used token, a revoked agent).
pub fn run(config: &AgentConfig, stop: &AtomicBool) -> Result<()> {
    pfxkit_catalog::agents::check_agent_name(&config.name)
        .map_err(|e| Error::Config(e.to_string()))?;
    let state = StateDir::open(&config.state_dir)?;
    if config.roots.is_confined() {
        log(&format!(
            "store files confined to {}",
            config
                .roots
                .dirs()
                .iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    } else {
        log(
            "warning: unconfined: store files are written and read wherever the server says \
             (give --root DIR to confine them)",
        );
    }
    let key = state.key()?;
    let chain = match register(config, &state, &key, stop) {
        Ok(c) => c,
        Err(_) if stop.load(Ordering::SeqCst) => return Ok(()),
        Err(e) => return Err(e),
    };
    let client = http_client(
        tls_config(&config.ca_cert, Some((chain, &key)))?,
        Duration::from_secs(60),
    )?;
    let mut session = Session {
        config,
        client,
        stores: Vec::new(),
        refreshed: Instant::now(),
        stop,
    };
    let mut backoff = Backoff::default();
    let mut connected = false;
    while !stop.load(Ordering::SeqCst) {
        let step = (|| -> Result<()> {
            if !connected {
                session.hello()?;
                connected = true;
                log(&format!(
                    "connected as {} ({} store(s))",
                    config.name,
                    session.stores.len()
                ));
            } else if session.refreshed.elapsed() > Duration::from_secs(60) {
                let list = answer(
                    session
                        .client
                        .get(session.url("Stores"))
                        .header("x-pfxkit-agent-version", VERSION)
                        .send(),
                )?;
                session.set_stores(&list)?;
            }
            let next = session.scheduled_inventories()?;
            let wait = next
                .saturating_duration_since(Instant::now())
                .min(Duration::from_secs(config.poll_wait_secs))
                .max(Duration::from_secs(1));
            if let Some(claim) = session.poll(wait)? {
                session.run_claim(claim);
            }
            Ok(())
        })();
        match step {
            Ok(()) => backoff.reset(),
            Err(Error::Transient(e)) => {
                log(&format!("{e}; retrying"));
                if sleep_or_stop(backoff.next(), stop) {
                    break;
                }
            }
            // Refused: revoked, or the certificate is no longer this agent's.
            Err(e) => return Err(e),
        }
    }
    log("stopped");
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_thirty_seconds_with_jitter_in_its_upper_half() {
        let mut b = Backoff::default();
        let first = b.next();
        assert!(first >= Duration::from_millis(250) && first <= Duration::from_millis(500));
        for _ in 0..20 {
            let d = b.next();
            assert!(d <= Duration::from_secs(30), "{d:?}");
        }
        let late = b.next();
        assert!(late >= Duration::from_secs(15), "{late:?}");
        b.reset();
        assert!(b.next() <= Duration::from_millis(500));
    }

    #[test]
    fn the_api_base_path_is_added_once() {
        let c = AgentConfig::new("https://h:1/", "a", Path::new("ca.pem"));
        assert_eq!(c.base(), "https://h:1/KeyfactorAPI");
        let c = AgentConfig::new("https://h:1/KeyfactorAPI", "a", Path::new("ca.pem"));
        assert_eq!(c.base(), "https://h:1/KeyfactorAPI");
    }

    #[test]
    fn a_server_cannot_make_an_agent_use_a_literal_store_password() {
        // Threat: a compromised server pointing a store at stdin or at a password it chose.
        let store = Store::from_json(
            &json!({"Id": "s", "StoreType": "pkcs12", "StorePath": "/nonexistent/x.p12",
                    "StorePassword": "pass:chosen"}),
            Instant::now(),
        )
        .unwrap();
        assert!(matches!(
            store.adapter(&Roots::unconfined()),
            Err(Error::Refused(_))
        ));
    }

    #[test]
    fn the_key_file_is_private_to_its_owner() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("pfxkit-agent-test-{}", random_u64()));
        let state = StateDir::open(&dir).unwrap();
        let key = state.key().unwrap();
        let mode = std::fs::metadata(state.key_path())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        // The same key comes back on the next start.
        assert_eq!(
            state.key().unwrap().expose_pkcs8_der(),
            key.expose_pkcs8_der()
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
