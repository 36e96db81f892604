//! Deployment, inventory, Replace and the job runner — `docs/replace.md` step by step.
//!
//! Deploy and Replace only *create* management jobs (being in `SuccessfulStores` means a job
//! was created, as in Keyfactor). The runner executes due jobs through each store's
//! [`pfxkit::store::StoreAdapter`] — one transaction per job — and inventories the
//! store right after, so locations are current as soon as a job ends.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use super::service::{CertificateRef, Service};
use super::{
    Action, CertificateId, ContainerRecord, Grant, JobId, JobOperation, JobRecord, JobResult,
    JobStatus, NewJob, Permission, RequestId, StorePasswordRecord, StoreRecord,
};
use crate::error::{Error, Result};
use pfxkit::secret::{Password, PasswordSource};
use pfxkit::store::{
    self, AddOptions, EntryPasswordPolicy, PrivateKeyPolicy, StoreAdapter, StoreSpec, StoreType,
};

/// How long a claimed job may stay InProcess before another runner takes it over (its runner
/// is presumed dead). Jobs are idempotent, so a takeover never duplicates work.
pub const JOB_LEASE_MS: i64 = 10 * 60 * 1000;

/// How many due jobs the runner claims at a time. Claiming every due job at once held them all
/// in memory until the run ended (peak memory grew with the fleet) and started all their leases
/// together, so a run longer than [`JOB_LEASE_MS`] (a Replace over thousands of stores) would
/// let another runner take over jobs still queued here. A batch runs in seconds.
pub const CLAIM_BATCH: usize = 256;

/// `SuccessfulStores` / `FailedStores` / `Failures` of Deploy and Replace.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreOutcome {
    /// Stores for which a job was created.
    pub successful: Vec<String>,
    /// Stores for which none could be.
    pub failed: Vec<String>,
    /// Why, per failed store.
    pub failures: BTreeMap<String, String>,
    /// What happens (or, in a dry run, would happen) in each successful store: a job queued,
    /// or one already waiting that a repeated request did not duplicate.
    pub actions: BTreeMap<String, String>,
    /// Whether this was a dry run: nothing was created.
    pub dry_run: bool,
    /// The jobs behind each successful store: the ones created, or the one already waiting
    /// that stands in for a repeated request (empty in a dry run).
    pub job_ids: BTreeMap<String, Vec<JobId>>,
    /// What the caller should know although nothing failed (a Replace whose new certificate
    /// has another subject).
    pub warnings: Vec<String>,
}

impl StoreOutcome {
    /// Whether at least one store was targeted and every one failed (the CLI exits 1).
    pub fn all_failed(&self) -> bool {
        self.successful.is_empty() && !self.failed.is_empty()
    }
}

impl StoreOutcome {
    /// A store is listed once even when the certificate sits there under several aliases.
    /// `failures` holds exactly the failed stores, so it answers "listed already?" in
    /// O(log n): a scan of `failed` made a Replace over n stores quadratic.
    fn fail(&mut self, store: &str, reason: String) {
        if self.failures.insert(store.to_string(), reason).is_none() {
            self.failed.push(store.to_string());
        }
    }
}

/// The state of the job queue at one instant ([`Service::job_queue`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct JobQueue {
    /// Jobs a run would take now (due, or abandoned by a dead runner).
    pub due: usize,
    /// Jobs another runner holds a live lease on.
    pub leased: usize,
    /// When the last of those leases ends.
    pub leased_until_ms: Option<i64>,
    /// When the next job not yet due falls due.
    pub next_due_ms: Option<i64>,
}

impl JobQueue {
    /// The queue from a database's (due, leased, last lease end, next due) row.
    pub(crate) fn from_row(row: (i64, i64, Option<i64>, Option<i64>)) -> Self {
        let (due, leased, leased_until_ms, next_due_ms) = row;
        JobQueue {
            due: usize::try_from(due).unwrap_or(0),
            leased: usize::try_from(leased).unwrap_or(0),
            leased_until_ms,
            next_due_ms,
        }
    }
}

/// What Deploy and Replace share: the entry password (`Password`), when the jobs are due
/// (`JobTime`), and who asks.
#[derive(Clone, Copy, Debug, Default)]
#[non_exhaustive]
pub struct JobOptions<'a> {
    /// The entry password; required by store types that require one (PEM).
    pub password: Option<&'a Password>,
    /// ISO 8601 UTC; absent or past means now.
    pub job_time: Option<&'a str>,
    /// The acting principal; `None` is the catalog's owner.
    pub principal: Option<&'a str>,
    /// Decide per store as usual but create nothing ([`StoreOutcome::actions`] says what
    /// would happen).
    pub dry_run: bool,
}

impl<'a> JobOptions<'a> {
    /// Options with these values.
    pub fn new(
        password: Option<&'a Password>,
        job_time: Option<&'a str>,
        principal: Option<&'a str>,
    ) -> Self {
        JobOptions {
            password,
            job_time,
            principal,
            dry_run: false,
        }
    }

    /// As a dry run: nothing is created.
    #[must_use]
    pub fn dry_run(mut self, dry_run: bool) -> Self {
        self.dry_run = dry_run;
        self
    }
}

/// The new certificate of a Replace: exactly one of `CertificateId` and `RequestId`.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub enum NewCertificate {
    /// `CertificateId`.
    Certificate(CertificateId),
    /// `RequestId`.
    Request(RequestId),
}

/// The result of inventorying one store.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct InventoryReport {
    /// The store.
    pub store_id: String,
    /// Success or Failure.
    pub result: JobResult,
    /// Entries found.
    pub entries: usize,
    /// Why it failed.
    pub message: Option<String>,
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    pfxkit::cert::now_millis()
}

/// The real clock, for leases (never a `--now` a caller chose).
fn jobs_now_real() -> i64 {
    pfxkit::cert::now_millis()
}

/// A runner's id, shown as the holder of the leases it takes: its process id and a random
/// suffix (a process may run several runners one after another).
fn runner_id() -> Result<String> {
    let mut b = [0u8; 4];
    getrandom::fill(&mut b).map_err(|e| Error::io_other(e.to_string()))?;
    Ok(format!(
        "runner-{}-{}",
        std::process::id(),
        pfxkit::cert::hex_lower(&b)
    ))
}

/// Parses an ISO 8601 UTC time, `2026-11-19T16:23:01Z` or `2026-11-19T16:23:01.000Z`, into
/// milliseconds since the Unix epoch.
///
/// # Errors
/// [`Error::Invalid`] for anything else (other offsets included: the API speaks UTC).
pub fn parse_time(text: &str) -> Result<i64> {
    let bad = || {
        Error::Invalid(format!(
            "time '{text}': expected ISO 8601 UTC like 2026-11-19T16:23:01Z"
        ))
    };
    let body = text.strip_suffix('Z').ok_or_else(bad)?;
    let (date, time) = body.split_once('T').ok_or_else(bad)?;
    let (clock, fraction) = match time.split_once('.') {
        Some((c, f)) => (c, Some(f)),
        None => (time, None),
    };
    let num = |s: &str, len: usize| -> Result<i64> {
        if s.len() != len || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        s.parse().map_err(|_| bad())
    };
    let d: Vec<&str> = date.split('-').collect();
    let c: Vec<&str> = clock.split(':').collect();
    let (&[y, mo, da], &[h, mi, s]) = (d.as_slice(), c.as_slice()) else {
        return Err(bad());
    };
    let (y, mo, da, h, mi, s) = (
        num(y, 4)?,
        num(mo, 2)?,
        num(da, 2)?,
        num(h, 2)?,
        num(mi, 2)?,
        num(s, 2)?,
    );
    let leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
    let month_days = match mo {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return Err(bad()),
    };
    // A time that does not exist (February 31st, 24:00, a minute 60) is refused, never
    // normalised into another day; a leap second is only 23:59:60.
    if !(1..=month_days).contains(&da)
        || h > 23
        || mi > 59
        || s > 60
        || (s == 60 && (h, mi) != (23, 59))
    {
        return Err(bad());
    }
    let millis = match fraction {
        None => 0,
        Some(f) if !f.is_empty() && f.len() <= 9 && f.bytes().all(|b| b.is_ascii_digit()) => {
            let padded = format!("{f:0<3}");
            padded
                .get(..3)
                .and_then(|m| m.parse::<i64>().ok())
                .ok_or_else(bad)?
        }
        Some(_) => return Err(bad()),
    };
    // Days from civil (H. Hinnant), the inverse of `cert::rfc3339`.
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + da - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Ok(((days * 86_400 + h * 3600 + mi * 60 + s) * 1000) + millis)
}

/// Formats milliseconds since the Unix epoch as ISO 8601 UTC with milliseconds.
pub fn format_time(ms: i64) -> String {
    let secs = u64::try_from(ms.div_euclid(1000)).unwrap_or(0);
    let base = pfxkit::cert::rfc3339(secs);
    format!("{}.{:03}Z", base.trim_end_matches('Z'), ms.rem_euclid(1000))
}

fn sealed_entry_label(store_id: &str, certificate: CertificateId) -> String {
    format!("entry-password:{store_id}:{certificate}")
}

fn store_password_label(store_id: &str) -> String {
    format!("store-password:{store_id}")
}

/// A random (version 4) GUID.
fn guid() -> Result<String> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).map_err(|e| Error::io_other(e.to_string()))?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = pfxkit::cert::hex_lower(&b);
    Ok(format!(
        "{}-{}-{}-{}-{}",
        h.get(..8).unwrap_or_default(),
        h.get(8..12).unwrap_or_default(),
        h.get(12..16).unwrap_or_default(),
        h.get(16..20).unwrap_or_default(),
        h.get(20..).unwrap_or_default()
    ))
}

impl Service {
    /// Creates a store container.
    ///
    /// # Errors
    /// [`Error::Forbidden`] unless `principal` holds the global `admin` permission;
    /// [`Error::Invalid`] when the name is taken; database errors.
    pub fn add_container(&self, principal: Option<&str>, name: &str) -> Result<ContainerRecord> {
        self.authorize(principal, Action::Admin)?;
        self.catalog().add_container(name)
    }

    /// Records a store (needs the global `admin` permission: a store receives private keys). A
    /// literal password (or one read from stdin) is sealed; `env:` and `file:` sources are kept
    /// as references (a `file:` path made absolute) and resolved when the store is used.
    ///
    /// One file is one store: a path that resolves (through links) to the file of a store
    /// already recorded is refused, so a store's container — and the grants on it — cannot be
    /// sidestepped by recording its file again elsewhere. The catalog judges it by lookup in
    /// the transaction that records the store (see [`crate::Catalog::add_store`]).
    ///
    /// # Errors
    /// [`Error::Forbidden`] without `admin`; [`Error::Invalid`] for an unknown container, a
    /// file already recorded as a store, or a store type that needs a password without one;
    /// database errors.
    pub fn add_store(
        &self,
        principal: Option<&str>,
        store_type: StoreType,
        path: &std::path::Path,
        key_path: Option<&std::path::Path>,
        container: Option<&str>,
        password: Option<&PasswordSource>,
    ) -> Result<StoreRecord> {
        self.add_store_with(
            principal,
            store_type,
            path,
            key_path,
            container,
            password,
            &StoreOptions::default(),
        )
    }

    /// [`Service::add_store`] with the fleet's options: the agent that runs the store's jobs,
    /// a plain (unencrypted) key for a PEM store, the inventory schedule.
    ///
    /// A store on an agent's machine keeps its files on that host: its path must be absolute,
    /// "one file is one store" is judged among that machine's stores by path, and its store
    /// password may only be an `env:` or `file:` reference, resolved on the agent's host (a
    /// literal one would have to cross the network to every job).
    ///
    /// # Errors
    /// As [`Service::add_store`]; [`Error::Invalid`] for `plain_key` on a store that is not
    /// PEM, a bad machine name, a relative path or a literal password on a machine's store, or
    /// an inventory schedule under a minute.
    #[allow(clippy::too_many_arguments)]
    pub fn add_store_with(
        &self,
        principal: Option<&str>,
        store_type: StoreType,
        path: &std::path::Path,
        key_path: Option<&std::path::Path>,
        container: Option<&str>,
        password: Option<&PasswordSource>,
        options: &StoreOptions,
    ) -> Result<StoreRecord> {
        self.authorize(principal, Action::Admin)?;
        if options.plain_key && store_type != StoreType::Pem {
            return Err(Error::Invalid(format!(
                "a plain (unencrypted) key applies to pem stores only: a {store_type} store keeps \
                 its keys inside the file, protected by the store password"
            )));
        }
        if let Some(every) = options.inventory_every_secs
            && every < 60
        {
            return Err(Error::Invalid(format!(
                "inventory every {every} s: the schedule is at least a minute"
            )));
        }
        if let Some(machine) = &options.machine {
            crate::agents::check_agent_name(machine)?;
            let relative = |p: &std::path::Path| !p.is_absolute();
            if relative(path) || key_path.is_some_and(relative) {
                return Err(Error::Invalid(format!(
                    "a store on machine '{machine}' needs absolute paths: they name files on \
                     that host"
                )));
            }
            if matches!(
                password,
                Some(s) if !matches!(s, PasswordSource::Env(_) | PasswordSource::File(_))
            ) {
                return Err(Error::Invalid(format!(
                    "a store on machine '{machine}' takes its store password as env:VAR or \
                     file:PATH, resolved on that host: a literal password would cross the network"
                )));
            }
        }
        let container_id = match container {
            Some(name) => Some(
                self.catalog()
                    .container_by_name(name)?
                    .ok_or_else(|| Error::Invalid(format!("unknown container '{name}'")))?
                    .id,
            ),
            None => None,
        };
        let path = absolute(path);
        let key_path = key_path.map(absolute);
        let id = guid()?;
        let password = match password {
            None => StorePasswordRecord::None,
            Some(PasswordSource::Env(var)) => StorePasswordRecord::Reference(format!("env:{var}")),
            Some(PasswordSource::File(p)) => {
                StorePasswordRecord::Reference(format!("file:{}", absolute(p).display()))
            }
            Some(other) => {
                let pw = other.resolve()?;
                let text = pw.expose_secret().unwrap_or_default();
                StorePasswordRecord::Sealed(
                    self.key()
                        .seal(&store_password_label(&id), text.as_bytes())?,
                )
            }
        };
        let record = StoreRecord {
            id,
            store_type,
            path,
            key_path,
            container_id,
            password,
            machine: options.machine.clone(),
            plain_key: options.plain_key,
            inventory_every_secs: options.inventory_every_secs,
        };
        // Refuse now what could never be opened later.
        store::open(&self.spec(&record, Some(Password::absent())))?;
        if store_type != StoreType::Pem && record.password == StorePasswordRecord::None {
            return Err(Error::Invalid(format!(
                "a {store_type} store needs a store password"
            )));
        }
        self.catalog().add_store(&record)?;
        Ok(record)
    }

    /// `actor` grants `permission` to `principal`, globally or on a container. Granting needs
    /// the global `admin` permission, and no principal grants itself anything.
    ///
    /// # Errors
    /// [`Error::Forbidden`] without `admin` or for a grant to oneself; [`Error::Invalid`] for
    /// an unknown container or a global-only permission (`enroll`, `recover`, `admin`) on a
    /// container; database errors.
    pub fn grant(
        &self,
        actor: Option<&str>,
        principal: &str,
        container: Option<&str>,
        permission: Permission,
    ) -> Result<()> {
        self.authorize(actor, Action::Admin)?;
        if actor == Some(principal) {
            return Err(Error::Forbidden(format!(
                "principal '{principal}' cannot grant itself anything"
            )));
        }
        if principal.is_empty() {
            return Err(Error::Invalid("the principal's name is empty".into()));
        }
        if container.is_some() && permission.is_global_only() {
            return Err(Error::Invalid(format!(
                "the {} permission is global only",
                permission.name()
            )));
        }
        let container_id = match container {
            Some(name) => Some(
                self.catalog()
                    .container_by_name(name)?
                    .ok_or_else(|| Error::Invalid(format!("unknown container '{name}'")))?
                    .id,
            ),
            None => None,
        };
        self.catalog().grant(&Grant {
            principal: principal.to_string(),
            container_id,
            permission,
        })
    }

    fn spec(&self, record: &StoreRecord, password: Option<Password>) -> StoreSpec {
        store_spec(record, password)
    }

    /// Resolves a store's password (opening a sealed one, reading a reference).
    ///
    /// # Errors
    /// [`Error::Invalid`] for an unset variable; I/O errors; [`Error::Codec`] (wrong password) when the
    /// sealed value was tampered with.
    pub fn store_password(&self, record: &StoreRecord) -> Result<Option<Password>> {
        match &record.password {
            StorePasswordRecord::None => Ok(None),
            StorePasswordRecord::Sealed(sealed) => {
                let text = self.key().open(&store_password_label(&record.id), sealed)?;
                let text = String::from_utf8(text.to_vec())
                    .map_err(|_| Error::malformed("sealed store password", "not UTF-8"))?;
                Ok(Some(Password::new(text)))
            }
            StorePasswordRecord::Reference(r) => Ok(Some(r.parse::<PasswordSource>()?.resolve()?)),
        }
    }

    /// Opens a store's adapter with its password.
    ///
    /// # Errors
    /// As [`Service::store_password`] and [`store::open`].
    pub fn adapter(&self, record: &StoreRecord) -> Result<Box<dyn StoreAdapter>> {
        Ok(store::open(
            &self.spec(record, self.store_password(record)?),
        )?)
    }

    fn require_store(&self, id: &str) -> Result<StoreRecord> {
        self.catalog()
            .store(id)?
            .ok_or_else(|| Error::Invalid(format!("unknown store {id}")))
    }

    /// Inventories one store, or every store: records what each holds as its locations, adding
    /// certificates the catalog did not know (so they get ids).
    ///
    /// # Errors
    /// [`Error::Invalid`] for an unknown store id; database errors. A store that cannot be read
    /// is a Failure in its report, not an error.
    pub fn inventory(&self, store_id: Option<&str>) -> Result<Vec<InventoryReport>> {
        let stores = match store_id {
            Some(id) => {
                let store = self.require_store(id)?;
                if let Some(machine) = &store.machine {
                    return Err(Error::Invalid(format!(
                        "store {id} is on machine '{machine}': its files are on that host, and \
                         its agent inventories it"
                    )));
                }
                vec![store]
            }
            // The agents inventory their own stores.
            None => self
                .catalog()
                .stores()?
                .into_iter()
                .filter(|s| s.machine.is_none())
                .collect(),
        };
        stores.iter().map(|s| self.inventory_store(s)).collect()
    }

    fn inventory_store(&self, record: &StoreRecord) -> Result<InventoryReport> {
        let entries = match self.adapter(record).and_then(|a| Ok(a.inventory()?)) {
            Ok(entries) => entries,
            Err(Error::Database(e)) => return Err(Error::Database(e)),
            Err(e) => {
                return Ok(InventoryReport {
                    store_id: record.id.clone(),
                    result: JobResult::Failure,
                    entries: 0,
                    message: Some(e.to_string()),
                });
            }
        };
        let found: Vec<(String, Vec<pfxkit::cert::Certificate>)> =
            entries.into_iter().map(|e| (e.alias, e.chain)).collect();
        self.record_inventory(&record.id, &found)?;
        Ok(InventoryReport {
            store_id: record.id.clone(),
            result: JobResult::Success,
            entries: found.len(),
            message: None,
        })
    }

    /// Records what an inventory found in a store — (alias, leaf first then chain) per entry —
    /// as its locations, adding certificates the catalog did not know.
    pub(crate) fn record_inventory(
        &self,
        store_id: &str,
        found: &[(String, Vec<pfxkit::cert::Certificate>)],
    ) -> Result<()> {
        let mut locations = Vec::with_capacity(found.len());
        for (alias, chain) in found {
            let Some(leaf) = chain.first() else { continue };
            let issuers = chain.get(1..).unwrap_or_default();
            let (cert, _) = self
                .catalog()
                .add_certificate(leaf, issuers, None, None, None)?;
            locations.push((alias.clone(), cert.id));
        }
        self.catalog().set_locations(store_id, &locations)
    }

    /// A job's entry password, opened.
    pub(crate) fn open_entry_password(&self, job: &JobRecord) -> Result<Option<Password>> {
        match &job.job.sealed_entry_password {
            Some(sealed) => {
                let text = self.key().open(
                    &sealed_entry_label(&job.job.store_id, job.job.certificate_id),
                    sealed,
                )?;
                Ok(Some(Password::new(
                    String::from_utf8(text.to_vec())
                        .map_err(|_| Error::malformed("entry password", "not UTF-8"))?,
                )))
            }
            None => Ok(None),
        }
    }

    /// Inventories the server's own stores (those without a machine: agents inventory theirs)
    /// whose scheduled inventory is due at `now_ms`: `last` holds when each store was last
    /// inventoried on schedule and is updated; a store not in it counts from `started_ms` (the
    /// runner's start), so a restart does not inventory every store at once. Returns the
    /// reports of the stores inventoried.
    ///
    /// # Errors
    /// Database errors; a store that cannot be read is a Failure in its report.
    pub fn scheduled_inventories(
        &self,
        now_ms: i64,
        started_ms: i64,
        last: &mut HashMap<String, i64>,
    ) -> Result<Vec<InventoryReport>> {
        let stores: Vec<StoreRecord> = self
            .catalog()
            .stores()?
            .into_iter()
            .filter(|s| s.machine.is_none())
            .collect();
        last.retain(|id, _| stores.iter().any(|s| &s.id == id));
        let mut reports = Vec::new();
        for store in &stores {
            let since = last.get(&store.id).copied().unwrap_or(started_ms);
            if now_ms.saturating_sub(since) >= store.inventory_every().saturating_mul(1000) {
                reports.push(self.inventory_store(store)?);
                last.insert(store.id.clone(), now_ms);
            }
        }
        Ok(reports)
    }

    /// Decides, for one target store, whether a job can be created (spec step 3).
    fn job_decision(
        &self,
        record: &StoreRecord,
        principal: Option<&str>,
        password: Option<&Password>,
    ) -> Result<std::result::Result<(), String>> {
        match self.authorize(principal, Action::Schedule(record)) {
            Ok(()) => {}
            Err(Error::Forbidden(reason)) => return Ok(Err(reason)),
            Err(e) => return Err(e),
        }
        let caps = store::open(&self.spec(record, Some(Password::absent())))?.capabilities();
        if caps.private_keys == PrivateKeyPolicy::Forbidden {
            return Ok(Err(format!(
                "store type {} does not accept private keys",
                record.store_type
            )));
        }
        if caps.entry_password == EntryPasswordPolicy::Required
            && password.is_none_or(|p| p.is_absent() || p.is_empty())
        {
            return Ok(Err(format!(
                "store type {} requires a non-empty entry password, and the request has none",
                record.store_type
            )));
        }
        Ok(Ok(()))
    }

    fn new_job(
        &self,
        record: &StoreRecord,
        certificate: CertificateId,
        alias: Option<String>,
        overwrite: bool,
        options: &JobOptions<'_>,
        scheduled_ms: i64,
    ) -> Result<NewJob> {
        let sealed_entry_password = match options.password.and_then(Password::expose_secret) {
            Some(p) => Some(
                self.key()
                    .seal(&sealed_entry_label(&record.id, certificate), p.as_bytes())?,
            ),
            None => None,
        };
        Ok(NewJob {
            store_id: record.id.clone(),
            operation: JobOperation::Add,
            certificate_id: certificate,
            alias,
            overwrite,
            sealed_entry_password,
            scheduled_ms,
            principal: options.principal.map(str::to_string),
        })
    }

    fn due(job_time: Option<&str>) -> Result<i64> {
        let now = now_ms();
        Ok(match job_time {
            Some(t) => parse_time(t)?.max(now),
            None => now,
        })
    }

    /// Deploy: management jobs that put certificate `certificate` (its staged key and chain)
    /// into `stores` under `alias`.
    ///
    /// # Errors
    /// Request errors ([`Error::Invalid`]): unknown certificate or store, no staged key, bad
    /// JobTime. Per-store problems go to `FailedStores`.
    pub fn deploy(
        &self,
        certificate: CertificateId,
        stores: &[String],
        alias: Option<&str>,
        overwrite: bool,
        options: &JobOptions<'_>,
    ) -> Result<StoreOutcome> {
        let record = self.certificate(&CertificateRef::Id(certificate))?;
        self.authorize(options.principal, Action::UseKey(record.id))?;
        self.staged_identity(&record)?;
        // A store named twice gets one job, not two racing writes of the same alias.
        let mut seen = HashSet::new();
        let targets = stores
            .iter()
            .filter(|id| seen.insert(id.as_str()))
            .map(|id| Ok((self.require_store(id)?, alias.map(str::to_string))))
            .collect::<Result<Vec<_>>>()?;
        self.schedule(record.id, targets, overwrite, options)
    }

    /// Remove: a management job per `(store, alias)` removing that entry, as Keyfactor's
    /// `POST /CertificateStores/Certificates/Remove`. The job names the certificate the entry
    /// holds now (read from the store), so the history says what was removed.
    ///
    /// # Errors
    /// Request errors ([`Error::Invalid`]): an unknown store, a bad JobTime. A store the
    /// principal may not schedule on, an alias the store does not have or a store that cannot
    /// be read goes to `FailedStores` with its reason.
    pub fn remove(
        &self,
        targets: &[(String, String)],
        options: &JobOptions<'_>,
    ) -> Result<StoreOutcome> {
        let scheduled = Self::due(options.job_time)?;
        let mut outcome = StoreOutcome {
            dry_run: options.dry_run,
            ..StoreOutcome::default()
        };
        let mut jobs = Vec::new();
        for (store_id, alias) in targets {
            let store = self.require_store(store_id)?;
            match self.authorize(options.principal, Action::Schedule(&store)) {
                Ok(()) => {}
                Err(Error::Forbidden(reason)) => {
                    outcome.fail(&store.id, reason);
                    continue;
                }
                Err(e) => return Err(e),
            }
            let entries = match self.adapter(&store).and_then(|a| Ok(a.inventory()?)) {
                Ok(e) => e,
                Err(e @ (Error::Database(_) | Error::Unavailable(_))) => return Err(e),
                Err(e) => {
                    outcome.fail(&store.id, format!("the store cannot be read: {e}"));
                    continue;
                }
            };
            let Some(leaf) = entries
                .iter()
                .find(|e| e.alias == *alias)
                .and_then(|e| e.leaf().cloned())
            else {
                outcome.fail(&store.id, format!("the store has no entry '{alias}'"));
                continue;
            };
            let Some(known) = self.catalog().certificate_by_thumbprint(&leaf.sha1_hex())? else {
                outcome.fail(
                    &store.id,
                    format!(
                        "the certificate under '{alias}' is not in the catalog (run an inventory)"
                    ),
                );
                continue;
            };
            outcome
                .actions
                .insert(store.id.clone(), format!("job queued to remove '{alias}'"));
            if !outcome.successful.contains(&store.id) {
                outcome.successful.push(store.id.clone());
            }
            if !options.dry_run {
                jobs.push(NewJob {
                    store_id: store.id.clone(),
                    operation: JobOperation::Remove,
                    certificate_id: known.id,
                    alias: Some(alias.clone()),
                    overwrite: false,
                    sealed_entry_password: None,
                    scheduled_ms: scheduled,
                    principal: options.principal.map(str::to_string),
                });
            }
        }
        self.record_jobs(&jobs, &mut outcome)?;
        Ok(outcome)
    }

    /// Creates `jobs` at once and lists each one's id under its store in `outcome`.
    fn record_jobs(&self, jobs: &[NewJob], outcome: &mut StoreOutcome) -> Result<()> {
        if jobs.is_empty() {
            return Ok(());
        }
        let ids = self.catalog().add_jobs(jobs)?;
        for (job, id) in jobs.iter().zip(ids) {
            outcome
                .job_ids
                .entry(job.store_id.clone())
                .or_default()
                .push(id);
        }
        Ok(())
    }

    /// Spec step 3 for every target (a store and the alias to write there): a job where the
    /// checks hold, a `FailedStores` entry with its reason where they do not; all jobs are
    /// created at once.
    fn schedule(
        &self,
        certificate: CertificateId,
        targets: Vec<(StoreRecord, Option<String>)>,
        overwrite: bool,
        options: &JobOptions<'_>,
    ) -> Result<StoreOutcome> {
        let scheduled = Self::due(options.job_time)?;
        let mut outcome = StoreOutcome {
            dry_run: options.dry_run,
            ..StoreOutcome::default()
        };
        // A job already waiting to put the same certificate under the same alias of the same
        // store is not queued twice: Replace (or Deploy) sent again, by a retrying script or a
        // second operator, must not make the runner write the same entry twice. Only a job due
        // no later than this request stands in for it: a Replace now after one scheduled for
        // next week must not wait for next week.
        let waiting: HashMap<(String, Option<String>), crate::JobId> = self
            .catalog()
            .waiting_jobs_of_certificate(certificate)?
            .into_iter()
            .filter(|j| j.job.operation == JobOperation::Add && j.job.scheduled_ms <= scheduled)
            .map(|j| ((j.job.store_id, j.job.alias), j.id))
            .collect();
        // Which stores `successful` lists already: a store holding the certificate under
        // several aliases gets a job per alias but one listing, and a scan of the list per
        // target would make a Replace over n stores quadratic.
        let mut listed = HashSet::new();
        let mut jobs = Vec::with_capacity(targets.len());
        for (store, alias) in targets {
            match self.job_decision(&store, options.principal, options.password)? {
                Ok(()) => {
                    let what = match &alias {
                        Some(a) => format!("put certificate {certificate} under alias '{a}'"),
                        None => format!("put certificate {certificate} under its derived alias"),
                    };
                    let action = if let Some(id) = waiting.get(&(store.id.clone(), alias.clone())) {
                        outcome
                            .job_ids
                            .entry(store.id.clone())
                            .or_default()
                            .push(*id);
                        format!("job {id} already waiting to {what}; no new job")
                    } else if options.dry_run {
                        format!("would queue a job to {what} at {}", format_time(scheduled))
                    } else {
                        jobs.push(self.new_job(
                            &store,
                            certificate,
                            alias,
                            overwrite,
                            options,
                            scheduled,
                        )?);
                        format!("job queued to {what} at {}", format_time(scheduled))
                    };
                    outcome
                        .actions
                        .entry(store.id.clone())
                        .and_modify(|a| {
                            a.push_str("; ");
                            a.push_str(&action);
                        })
                        .or_insert(action);
                    if listed.insert(store.id.clone()) {
                        outcome.successful.push(store.id);
                    }
                }
                Err(reason) => outcome.fail(&store.id, reason),
            }
        }
        self.record_jobs(&jobs, &mut outcome)?;
        Ok(outcome)
    }

    /// Replace (spec steps 1–4): a management job overwriting the found alias with the new
    /// certificate in every store where the latest inventory located the existing one.
    ///
    /// # Errors
    /// Request errors ([`Error::Invalid`]): unknown existing or new certificate or request,
    /// a new certificate without a staged key, a bad JobTime. Per-store problems go to
    /// `FailedStores`.
    pub fn replace(
        &self,
        existing: CertificateId,
        new: NewCertificate,
        options: &JobOptions<'_>,
    ) -> Result<StoreOutcome> {
        let existing = self
            .catalog()
            .certificate(existing)?
            .ok_or_else(|| Error::Invalid(format!("unknown existing certificate id {existing}")))?;
        let new = match new {
            NewCertificate::Certificate(id) => self
                .catalog()
                .certificate(id)?
                .ok_or_else(|| Error::Invalid(format!("unknown certificate id {id}")))?,
            NewCertificate::Request(r) => self
                .catalog()
                .certificate_by_request(r)?
                .ok_or_else(|| Error::Invalid(format!("unknown request id {r}")))?,
        };
        if !new.has_staged_key {
            return Err(Error::Invalid(format!(
                "certificate {} has no staged private key: it cannot replace anything",
                new.id
            )));
        }
        self.authorize(options.principal, Action::UseKey(new.id))?;
        // A new certificate that cannot be right is refused before any job exists: its key
        // must match it (the staged identity checks), and it must be valid when the jobs run.
        self.staged_identity(&new)?;
        let due_s = u64::try_from(Self::due(options.job_time)?.div_euclid(1000)).unwrap_or(0);
        let cert = &new.certificate;
        if due_s < cert.not_before_unix() {
            return Err(Error::Invalid(format!(
                "certificate {} is not yet valid (not before {})",
                new.id,
                cert.not_before_rfc3339()
            )));
        }
        if due_s > cert.not_after_unix() {
            return Err(Error::Invalid(format!(
                "certificate {} has expired (not after {})",
                new.id,
                cert.not_after_rfc3339()
            )));
        }
        let mut warnings = Vec::new();
        if cert.subject() != existing.certificate.subject() {
            warnings.push(format!(
                "the new certificate's subject '{}' differs from the existing certificate's '{}'",
                cert.subject(),
                existing.certificate.subject()
            ));
        }
        let targets = self
            .catalog()
            .locations(existing.id)?
            .into_iter()
            .map(|l| Ok((self.require_store(&l.store_id)?, Some(l.alias))))
            .collect::<Result<Vec<_>>>()?;
        let mut outcome = self.schedule(new.id, targets, true, options)?;
        outcome.warnings = warnings;
        Ok(outcome)
    }

    /// What `run_jobs` at `now_ms` would find: jobs due, jobs leased by a runner (and when the
    /// last lease ends), and when the next waiting job falls due — so a runner with nothing to
    /// do can say why. Jobs of agents' stores are not counted: no runner here takes them.
    ///
    /// # Errors
    /// Database errors.
    pub fn job_queue(&self, now_ms: i64) -> Result<JobQueue> {
        self.catalog().job_queue(now_ms, JOB_LEASE_MS)
    }

    /// Runs every job due at `now_ms` (and any abandoned by a dead runner): jobs for different
    /// stores in parallel, jobs for one store in order, each one store transaction followed by
    /// an inventory of that store. `progress` is called as each job ends. Returns the jobs run.
    ///
    /// Jobs are claimed [`CLAIM_BATCH`] at a time; a claim never takes a store's job while an
    /// earlier job of that store is waiting or leased elsewhere, so one store's jobs run in
    /// order across runners. Leases are judged on the real clock, never on `now_ms`.
    ///
    /// # Errors
    /// Database errors; a job that fails is recorded as a Failure, not returned as an error.
    pub fn run_jobs(
        &self,
        now_ms: i64,
        progress: &(dyn Fn(&JobRecord) + Sync),
    ) -> Result<Vec<JobRecord>> {
        self.run_jobs_until(now_ms, progress, &AtomicBool::new(false))
    }

    /// [`Service::run_jobs`] that stops early once `stop` is set (a signal): the job each
    /// worker is running finishes, the claimed jobs not started are released (Waiting again,
    /// no lease) and no further batch is claimed. Returns the jobs run.
    ///
    /// # Errors
    /// As [`Service::run_jobs`].
    pub fn run_jobs_until(
        &self,
        now_ms: i64,
        progress: &(dyn Fn(&JobRecord) + Sync),
        stop: &AtomicBool,
    ) -> Result<Vec<JobRecord>> {
        self.run_jobs_in_batches(now_ms, progress, CLAIM_BATCH, stop)
    }

    fn run_jobs_in_batches(
        &self,
        now_ms: i64,
        progress: &(dyn Fn(&JobRecord) + Sync),
        batch: usize,
        stop: &AtomicBool,
    ) -> Result<Vec<JobRecord>> {
        let holder = runner_id()?;
        let mut done = Vec::new();
        while !stop.load(Ordering::SeqCst) {
            let claimed = self.catalog().claim_due_jobs(
                now_ms,
                jobs_now_real().saturating_sub(JOB_LEASE_MS),
                batch.max(1),
                &holder,
            )?;
            if claimed.is_empty() {
                break;
            }
            let ids: Vec<JobId> = claimed.iter().map(|j| j.id).collect();
            let ran = self.run_claimed(claimed, progress, stop);
            // Whatever was claimed and not run (a stop, a database error) goes back to the
            // queue now instead of waiting out its lease.
            let finished: HashSet<JobId> = ran
                .as_ref()
                .map(|r| r.iter().map(|j| j.id).collect())
                .unwrap_or_default();
            let unstarted: Vec<JobId> = ids
                .into_iter()
                .filter(|id| !finished.contains(id))
                .collect();
            if !unstarted.is_empty() {
                self.catalog().release_jobs(&unstarted, &holder)?;
            }
            done.extend(ran?);
        }
        done.sort_by_key(|j| j.id);
        Ok(done)
    }

    /// Runs claimed jobs: different stores on parallel workers, one store's jobs in order; a
    /// worker starts no further job once `stop` is set.
    fn run_claimed(
        &self,
        claimed: Vec<JobRecord>,
        progress: &(dyn Fn(&JobRecord) + Sync),
        stop: &AtomicBool,
    ) -> Result<Vec<JobRecord>> {
        let mut order: Vec<String> = Vec::new();
        let mut by_store: HashMap<String, Vec<JobRecord>> = HashMap::new();
        for job in claimed {
            if !by_store.contains_key(&job.job.store_id) {
                order.push(job.job.store_id.clone());
            }
            by_store
                .entry(job.job.store_id.clone())
                .or_default()
                .push(job);
        }
        // Oldest store queue first (workers pop from the end).
        let queues: Vec<Vec<JobRecord>> = order
            .iter()
            .rev()
            .filter_map(|s| by_store.remove(s))
            .collect();
        let queues = Mutex::new(queues);
        let done: Mutex<Vec<JobRecord>> = Mutex::new(Vec::new());
        let first_error: Mutex<Option<Error>> = Mutex::new(None);
        let workers = std::thread::available_parallelism()
            .map(|n| n.get() * 2)
            .unwrap_or(2);
        std::thread::scope(|scope| {
            for _ in 0..workers {
                scope.spawn(|| {
                    loop {
                        let next = queues.lock().ok().and_then(|mut q| q.pop());
                        let Some(queue) = next else { break };
                        for job in queue {
                            if stop.load(Ordering::SeqCst) {
                                break;
                            }
                            match self.run_job(job) {
                                Ok(finished) => {
                                    progress(&finished);
                                    if let Ok(mut d) = done.lock() {
                                        d.push(finished);
                                    }
                                }
                                Err(e) => {
                                    if let Ok(mut slot) = first_error.lock() {
                                        slot.get_or_insert(e);
                                    }
                                    // A store's later jobs must not run after a failed one.
                                    break;
                                }
                            }
                        }
                    }
                });
            }
        });
        if let Some(e) = first_error.into_inner().ok().flatten() {
            return Err(e);
        }
        Ok(done.into_inner().unwrap_or_default())
    }

    /// Cancels a Waiting job (it ends Completed/Failure, "cancelled"). Needs Schedule on the
    /// job's store.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown job; [`Error::Forbidden`] without Schedule on its
    /// store; [`Error::Invalid`] for a job that is not Waiting (a running job finishes, a
    /// finished one stays as it is); database errors.
    pub fn cancel_job(&self, principal: Option<&str>, id: JobId) -> Result<JobRecord> {
        let job = self.job_for(principal, id)?;
        let by = principal.map(|p| format!(" by {p}")).unwrap_or_default();
        if !self.catalog().cancel_job(id, &format!("cancelled{by}"))? {
            return Err(Error::Invalid(format!(
                "job {id} is {}: only a Waiting job can be cancelled",
                job.status.name()
            )));
        }
        self.job_for(principal, id)
    }

    /// Queues a failed job again, due now. Needs Schedule on the job's store.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown job; [`Error::Forbidden`] without Schedule on its
    /// store; [`Error::Invalid`] for a job that has not failed; database errors.
    pub fn retry_job(&self, principal: Option<&str>, id: JobId) -> Result<JobRecord> {
        let job = self.job_for(principal, id)?;
        if !self.catalog().retry_job(id, now_ms())? {
            return Err(Error::Invalid(format!(
                "job {id} is {}{}: only a failed job can be retried",
                job.status.name(),
                job.result
                    .map(|r| format!("/{}", r.name()))
                    .unwrap_or_default()
            )));
        }
        self.job_for(principal, id)
    }

    fn job_for(&self, principal: Option<&str>, id: JobId) -> Result<JobRecord> {
        let job = self
            .catalog()
            .job(id)?
            .ok_or_else(|| Error::NotFound(format!("unknown job {id}")))?;
        let store = self.require_store(&job.job.store_id)?;
        self.authorize(principal, Action::Schedule(&store))?;
        Ok(job)
    }

    /// One job: the store transaction, then the store's inventory. Only database errors
    /// escape; anything else is the job's Failure.
    fn run_job(&self, mut job: JobRecord) -> Result<JobRecord> {
        let outcome = self.execute(&job);
        let done = match job.job.operation {
            JobOperation::Remove => "removed",
            _ => "added as",
        };
        let (result, message) = match outcome {
            Ok(alias) => {
                let inv = self
                    .require_store(&job.job.store_id)
                    .and_then(|s| self.inventory_store(&s));
                match inv {
                    Ok(r) if r.result == JobResult::Success => {
                        (JobResult::Success, format!("{done} '{alias}'"))
                    }
                    Ok(r) => (
                        JobResult::Warning,
                        format!(
                            "{done} '{alias}'; inventory failed: {}",
                            r.message.unwrap_or_default()
                        ),
                    ),
                    Err(e) => (
                        JobResult::Warning,
                        format!("{done} '{alias}'; inventory failed: {e}"),
                    ),
                }
            }
            Err(Error::Database(e)) => return Err(Error::Database(e)),
            Err(e) => (
                JobResult::Failure,
                self.failure_message(&job.job.store_id, &e),
            ),
        };
        self.catalog()
            .finish_job(job.id, JobStatus::Completed, result, &message)?;
        job.status = JobStatus::Completed;
        job.claimed_by = None;
        job.claimed_ms = None;
        job.result = Some(result);
        job.message = Some(message);
        Ok(job)
    }

    /// A failed job's message. A keystore that does not open says which password was tried: a
    /// store's file whose password was changed by other means fails every later job, and "PKCS#12
    /// MAC" alone does not tell the operator that the catalog's record is what is out of date.
    fn failure_message(&self, store_id: &str, e: &Error) -> String {
        let store = match self.catalog().store(store_id) {
            Ok(Some(s)) if e.is_wrong_password() && s.store_type != StoreType::Pem => s,
            _ => return e.to_string(),
        };
        let recorded = match &store.password {
            StorePasswordRecord::Sealed(_) => "sealed in the catalog".to_string(),
            StorePasswordRecord::Reference(source) => format!("from {source}"),
            StorePasswordRecord::None => "none recorded".to_string(),
        };
        format!(
            "{e}: the store password recorded for store {store_id} ({recorded}) does not open {}; \
             if the file's password was changed, remove the store and add it again with its \
             --store-password",
            store.path.display()
        )
    }

    fn execute(&self, job: &JobRecord) -> Result<String> {
        let store = self.require_store(&job.job.store_id)?;
        if job.job.operation == JobOperation::Remove {
            let alias = job
                .job
                .alias
                .as_deref()
                .ok_or_else(|| Error::Invalid("a Remove job without an alias".into()))?;
            let adapter = self.adapter(&store)?;
            // Re-running a job after an interruption finds the entry gone: the same end
            // state, so a success.
            let present = adapter.inventory()?.iter().any(|e| e.alias == alias);
            if present {
                adapter.remove(alias)?;
            }
            return Ok(alias.to_string());
        }
        let record = self.certificate(&CertificateRef::Id(job.job.certificate_id))?;
        let identity = self.staged_identity(&record)?;
        let entry_password = entry_password_for(&store, self.open_entry_password(job)?);
        let adapter = self.adapter(&store)?;
        // Re-running a job after an interruption overwrites the alias with the certificate it
        // may already hold: the same end state, so a success.
        let overwrite = job.job.overwrite
            || adapter.inventory().ok().is_some_and(|entries| {
                entries.iter().any(|e| {
                    job.job.alias.as_deref().is_none_or(|a| a == e.alias)
                        && e.leaf() == Some(identity.leaf())
                })
            });
        Ok(adapter.add(
            job.job.alias.as_deref(),
            &identity,
            entry_password.as_ref(),
            AddOptions::new(overwrite, true),
        )?)
    }
}

/// How a store record is opened: its type, files, password and plain-key registration. An
/// agent opens its stores with the same spec as the server would.
pub fn store_spec(record: &StoreRecord, password: Option<Password>) -> StoreSpec {
    StoreSpec::new(record.store_type, &record.path)
        .key_path(record.key_path.clone())
        .store_password(password)
        .plain_key(record.plain_key)
}

/// The entry password a job of `store` writes with: none for a PEM store registered for a
/// plain key (nginx cannot read an encrypted one, so a Replace across a mixed fleet must not
/// encrypt it), else the job's.
pub fn entry_password_for(store: &StoreRecord, password: Option<Password>) -> Option<Password> {
    if store.plain_key && store.store_type == StoreType::Pem {
        None
    } else {
        password
    }
}

/// A store's options beyond its files and password ([`Service::add_store_with`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreOptions {
    /// The agent that runs its jobs (`None`: the server).
    pub machine: Option<String>,
    /// PEM only: write the key unencrypted.
    pub plain_key: bool,
    /// Inventory schedule in seconds (`None`: daily).
    pub inventory_every_secs: Option<i64>,
}

impl StoreOptions {
    /// Run by agent `machine`.
    #[must_use]
    pub fn machine(mut self, machine: Option<String>) -> Self {
        self.machine = machine;
        self
    }

    /// With a plain key (PEM).
    #[must_use]
    pub fn plain_key(mut self, plain_key: bool) -> Self {
        self.plain_key = plain_key;
        self
    }

    /// Inventoried every `secs` seconds.
    #[must_use]
    pub fn inventory_every_secs(mut self, secs: Option<i64>) -> Self {
        self.inventory_every_secs = secs;
        self
    }
}

fn absolute(path: &std::path::Path) -> std::path::PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_servers_store_is_inventoried_on_its_schedule_and_an_agents_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let (service, ids, _) = fleet(dir.path(), 2);
        let agents = service
            .add_store_with(
                None,
                StoreType::Pem,
                &dir.path().join("agent.crt"),
                None,
                None,
                None,
                &StoreOptions::default().machine(Some("web1".into())),
            )
            .unwrap();
        let hourly = service
            .add_store_with(
                None,
                StoreType::Pem,
                &dir.path().join("hourly.crt"),
                None,
                None,
                None,
                &StoreOptions::default().inventory_every_secs(Some(3_600)),
            )
            .unwrap();
        let mut last = HashMap::new();
        let start = 1_000_000;
        let ran = |now: i64, last: &mut HashMap<String, i64>| -> Vec<String> {
            let mut r: Vec<String> = service
                .scheduled_inventories(now, start, last)
                .unwrap()
                .into_iter()
                .map(|r| r.store_id)
                .collect();
            r.sort();
            r
        };
        // Nothing right after the start.
        assert!(ran(start + 1_000, &mut last).is_empty());
        // After an hour the hourly store; after a day the daily ones; never the agent's.
        assert_eq!(ran(start + 3_600_000, &mut last), vec![hourly.id.clone()]);
        assert!(ran(start + 3_700_000, &mut last).is_empty());
        let mut daily = ids.clone();
        daily.push(hourly.id.clone());
        daily.sort();
        assert_eq!(ran(start + 86_400_000, &mut last), daily);
        assert!(!last.contains_key(&agents.id));
    }

    #[test]
    fn parses_job_times_with_and_without_milliseconds() {
        assert_eq!(parse_time("1970-01-01T00:00:00Z").unwrap(), 0);
        assert_eq!(
            parse_time("2026-11-19T16:23:01Z").unwrap(),
            1_795_105_381_000
        );
        assert_eq!(
            parse_time("2026-11-19T16:23:01.000Z").unwrap(),
            1_795_105_381_000
        );
        assert_eq!(
            parse_time("2026-11-19T16:23:01.5Z").unwrap(),
            1_795_105_381_500
        );
        assert_eq!(format_time(1_795_105_381_500), "2026-11-19T16:23:01.500Z");
    }

    /// A catalog with a CA, `stores` JKS stores and an enrolled certificate with a staged key.
    fn fleet(dir: &std::path::Path, stores: usize) -> (Service, Vec<String>, CertificateId) {
        let service = Service::init(&dir.join("catalog")).unwrap();
        service
            .ca_init("CN=Test Root", super::super::ca::KeyType::EcP256, None)
            .unwrap();
        let password = PasswordSource::Literal(Password::new("store-password"));
        let ids = (0..stores)
            .map(|i| {
                service
                    .add_store(
                        None,
                        StoreType::Jks,
                        &dir.join(format!("{i}.jks")),
                        None,
                        None,
                        Some(&password),
                    )
                    .unwrap()
                    .id
            })
            .collect();
        let enrolled = service
            .enroll(
                None,
                &super::super::service::EnrollRequest::new("CN=test.example.com")
                    .key_type(super::super::ca::KeyType::EcP256),
                &Password::new(""),
            )
            .unwrap();
        (service, ids, enrolled.certificate_id)
    }

    #[test]
    fn a_job_on_a_keystore_whose_password_changed_names_the_recorded_store_password() {
        let dir = tempfile::tempdir().unwrap();
        let (service, stores, certificate) = fleet(dir.path(), 1);
        let options = JobOptions::default();
        service
            .deploy(certificate, &stores, Some("a"), false, &options)
            .unwrap();
        service.run_jobs(now_ms(), &|_| {}).unwrap();
        // The file keeps its password; the catalog now records another one for it.
        service.remove_store(&stores[0]).unwrap();
        let again = service
            .add_store(
                None,
                StoreType::Jks,
                &dir.path().join("0.jks"),
                None,
                None,
                Some(&PasswordSource::Literal(Password::new("not-the-password"))),
            )
            .unwrap();
        service
            .deploy(
                certificate,
                std::slice::from_ref(&again.id),
                Some("b"),
                false,
                &options,
            )
            .unwrap();
        let ran = service.run_jobs(now_ms(), &|_| {}).unwrap();
        assert_eq!(ran[0].result, Some(JobResult::Failure));
        let message = ran[0].message.clone().unwrap();
        assert!(message.contains("keystore digest"), "{message}");
        assert!(
            message.contains(&format!(
                "the store password recorded for store {} (sealed in the catalog) does not open",
                again.id
            )),
            "{message}"
        );
        assert!(!message.contains("not-the-password"), "{message}");
    }

    #[test]
    fn claims_the_oldest_due_jobs_up_to_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let (service, stores, certificate) = fleet(dir.path(), 3);
        let options = JobOptions::default();
        service
            .deploy(certificate, &stores, Some("a"), false, &options)
            .unwrap();
        let now = now_ms();
        let first = service.catalog().claim_due_jobs(now, now, 2, "r1").unwrap();
        let rest = service.catalog().claim_due_jobs(now, now, 2, "r2").unwrap();
        let ids = |jobs: &[JobRecord]| jobs.iter().map(|j| j.id).collect::<Vec<_>>();
        let all = ids(&service.catalog().jobs().unwrap());
        assert_eq!(ids(&first), all[..2]);
        assert_eq!(ids(&rest), all[2..]);
        assert!(
            service
                .catalog()
                .claim_due_jobs(now, now, 2, "r3")
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn runs_jobs_batch_by_batch_keeping_each_stores_jobs_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let (service, stores, certificate) = fleet(dir.path(), 3);
        let options = JobOptions::default();
        for alias in ["a", "b", "c"] {
            service
                .deploy(certificate, &stores, Some(alias), false, &options)
                .unwrap();
        }
        let order = Mutex::new(Vec::new());
        let ran = service
            .run_jobs_in_batches(
                now_ms(),
                &|j| order.lock().unwrap().push((j.job.store_id.clone(), j.id)),
                2,
                &AtomicBool::new(false),
            )
            .unwrap();
        assert_eq!(ran.len(), 9);
        assert!(ran.iter().all(|j| j.result == Some(JobResult::Success)));
        assert!(ran.windows(2).all(|w| w[0].id < w[1].id));
        let order = order.into_inner().unwrap();
        for store in &stores {
            let ids: Vec<_> = order
                .iter()
                .filter(|(s, _)| s == store)
                .map(|p| p.1)
                .collect();
            assert_eq!(ids.len(), 3);
            assert!(ids.windows(2).all(|w| w[0] < w[1]), "{store}: {ids:?}");
        }
        let jobs = service.catalog().jobs().unwrap();
        assert!(jobs.iter().all(|j| j.status == JobStatus::Completed));
        let entries = service.adapter(&service.catalog().store(&stores[0]).unwrap().unwrap());
        assert_eq!(entries.unwrap().inventory().unwrap().len(), 3);
    }

    /// Issue 13 item 19: a second runner claiming while the first works must not take a
    /// store's later jobs (the older certificate would win).
    #[test]
    fn concurrent_runners_keep_each_stores_jobs_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let (service, stores, certificate) = fleet(dir.path(), 2);
        let options = JobOptions::default();
        for alias in ["a", "b", "c"] {
            service
                .deploy(certificate, &stores, Some(alias), false, &options)
                .unwrap();
        }
        let now = now_ms();
        let stale = now - JOB_LEASE_MS;
        let first = service
            .catalog()
            .claim_due_jobs(now, stale, 2, "r1")
            .unwrap();
        assert_eq!(first.len(), 2);
        assert_ne!(first[0].job.store_id, first[1].job.store_id);
        // Both stores have an older job leased by r1: r2 gets nothing yet.
        let second = service
            .catalog()
            .claim_due_jobs(now, stale, 10, "r2")
            .unwrap();
        assert!(second.is_empty(), "{second:?}");
        for job in &first {
            service
                .catalog()
                .finish_job(job.id, JobStatus::Completed, JobResult::Success, "done")
                .unwrap();
        }
        let next = service
            .catalog()
            .claim_due_jobs(now, stale, 10, "r2")
            .unwrap();
        let ids: Vec<_> = next.iter().map(|j| j.id).collect();
        let all: Vec<_> = service
            .catalog()
            .jobs()
            .unwrap()
            .iter()
            .map(|j| j.id)
            .collect();
        assert_eq!(ids, all[2..]);

        // End to end: two runners at once over one store, each job putting a newer
        // certificate under one alias: the newest must be what the store ends with.
        let dir = tempfile::tempdir().unwrap();
        let (service, stores, _) = fleet(dir.path(), 1);
        let mut newest = 0;
        for i in 0..8 {
            let id = service
                .enroll(
                    None,
                    &super::super::service::EnrollRequest::new(format!("CN=v{i}.example.com")),
                    &Password::new(""),
                )
                .unwrap()
                .certificate_id;
            service
                .deploy(id, &stores, Some("app"), true, &options)
                .unwrap();
            newest = id;
        }
        let other = Service::open(&dir.path().join("catalog")).unwrap();
        let never = AtomicBool::new(false);
        let order = Mutex::new(Vec::new());
        let note = |j: &JobRecord| order.lock().unwrap().push(j.id);
        std::thread::scope(|scope| {
            scope.spawn(|| {
                service
                    .run_jobs_in_batches(now_ms(), &note, 1, &never)
                    .unwrap()
            });
            scope.spawn(|| {
                other
                    .run_jobs_in_batches(now_ms(), &note, 1, &never)
                    .unwrap()
            });
        });
        let order = order.into_inner().unwrap();
        assert_eq!(order.len(), 8);
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{order:?}");
        let record = service.catalog().store(&stores[0]).unwrap().unwrap();
        let entries = service.adapter(&record).unwrap().inventory().unwrap();
        let cert = service.catalog().certificate(newest).unwrap().unwrap();
        assert_eq!(entries[0].leaf(), Some(&cert.certificate));
    }

    /// Issue 13 item 19: `jobs run --now` in the future must not take over live leases.
    #[test]
    fn lease_uses_real_clock_not_now() {
        let dir = tempfile::tempdir().unwrap();
        let (service, stores, certificate) = fleet(dir.path(), 1);
        service
            .deploy(
                certificate,
                &stores,
                Some("a"),
                false,
                &JobOptions::default(),
            )
            .unwrap();
        let now = now_ms();
        let claimed = service
            .catalog()
            .claim_due_jobs(now, now - JOB_LEASE_MS, 10, "live-runner")
            .unwrap();
        assert_eq!(claimed.len(), 1);
        let tomorrow = now + 86_400_000;
        assert!(service.run_jobs(tomorrow, &|_| {}).unwrap().is_empty());
        let job = service.catalog().job(claimed[0].id).unwrap().unwrap();
        assert_eq!(job.status, JobStatus::InProcess);
        assert_eq!(job.claimed_by.as_deref(), Some("live-runner"));
    }

    #[test]
    fn a_stop_releases_the_claimed_jobs_not_started() {
        let dir = tempfile::tempdir().unwrap();
        let (service, stores, certificate) = fleet(dir.path(), 1);
        for alias in ["a", "b", "c"] {
            service
                .deploy(
                    certificate,
                    &stores,
                    Some(alias),
                    false,
                    &JobOptions::default(),
                )
                .unwrap();
        }
        let ran = service
            .run_jobs_until(now_ms(), &|_| {}, &AtomicBool::new(true))
            .unwrap();
        assert!(ran.is_empty());
        let stop = AtomicBool::new(false);
        let ran = service
            .run_jobs_in_batches(now_ms(), &|_| stop.store(true, Ordering::SeqCst), 3, &stop)
            .unwrap();
        let jobs = service.catalog().jobs().unwrap();
        assert_eq!(ran.len(), 1, "{ran:?}");
        assert_eq!(
            jobs.iter()
                .filter(|j| j.status == JobStatus::Waiting)
                .count(),
            3 - ran.len()
        );
        assert!(jobs.iter().all(|j| j.status != JobStatus::InProcess));
    }

    #[test]
    fn lists_a_failed_store_once_with_its_latest_reason() {
        let mut outcome = StoreOutcome::default();
        outcome.fail("a", "first alias".into());
        outcome.fail("b", "other store".into());
        outcome.fail("a", "second alias".into());
        assert_eq!(outcome.failed, ["a", "b"]);
        assert_eq!(outcome.failures.len(), 2);
        assert_eq!(outcome.failures["a"], "second alias");
    }

    /// Issue 13 item 23.
    #[test]
    fn refuses_impossible_time() {
        for impossible in [
            "2027-02-31T00:00:00Z",
            "2027-02-29T00:00:00Z",
            "2026-04-31T00:00:00Z",
            "2026-11-19T24:00:00Z",
            "2026-11-19T12:00:60Z",
        ] {
            assert!(parse_time(impossible).is_err(), "{impossible}");
        }
        assert!(parse_time("2028-02-29T00:00:00Z").is_ok());
        assert!(parse_time("2000-02-29T00:00:00Z").is_ok());
        assert!(parse_time("1900-02-29T00:00:00Z").is_err());
        assert!(parse_time("2026-12-31T23:59:60Z").is_ok());
    }

    #[test]
    fn rejects_times_that_are_not_utc_iso8601() {
        for bad in [
            "2026-11-19 16:23:01Z",
            "2026-11-19T16:23:01+01:00",
            "2026-13-19T16:23:01Z",
            "yesterday",
            "",
        ] {
            assert!(parse_time(bad).is_err(), "{bad}");
        }
    }
}
