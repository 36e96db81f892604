//! The catalog: certificates, enrollment requests, staged keys, containers, stores, locations,
//! jobs and permissions — and the operations on them (enroll, import, renew, deploy, inventory,
//! replace, run jobs).
//!
//! [`Catalog`] is the storage interface: each method is one transaction, written so that a
//! PostgreSQL implementation can serve many hosts (job claiming is one short transaction there
//! too). [`sqlite::SqliteCatalog`] is the embedded default; [`postgres::PostgresCatalog`] is
//! the shared one for a fleet of servers and runners. [`service::Service`] holds the
//! behaviour of Keyfactor's Replace (see `docs/` and ARCHITECTURE.md) on top of a `Catalog` and the stores'
//! [`StoreAdapter`](pfxkit::store::StoreAdapter)s; the catalog never touches store files itself.

pub mod agents;
pub mod authz;
pub mod ca;
pub mod demo;
pub mod error;
mod files;
pub mod jobs;
pub mod postgres;
pub mod renewal;
pub mod seal;
pub mod service;
pub mod sqlite;
pub mod users;

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

pub use crate::authz::Action;
pub use crate::error::{Error, Result};
use pfxkit::cert::Certificate;
use pfxkit::store::StoreType;

/// A certificate's integer id (Keyfactor's `KeyfactorId` / `CertificateId`).
pub type CertificateId = i64;
/// An enrollment request's integer id (`KeyfactorRequestId`).
pub type RequestId = i64;
/// A container's integer id.
pub type ContainerId = i64;
/// A job's integer id.
pub type JobId = i64;
/// A renewal policy's integer id.
pub type PolicyId = i64;
/// A policy-history entry's integer id.
pub type HistoryId = i64;

/// A certificate known to the catalog.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct CertificateRecord {
    /// Its id.
    pub id: CertificateId,
    /// The certificate.
    pub certificate: Certificate,
    /// Ids of the chain above it (issuer first), as recorded.
    pub chain: Vec<CertificateId>,
    /// Whether a private key is staged for it.
    pub has_staged_key: bool,
    /// The principal that enrolled, renewed or imported it (who first staged its key); `None`
    /// for the catalog's owner and for certificates found by inventory.
    pub owner: Option<String>,
}

/// How a certificate entered the catalog.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RequestKind {
    /// Issued by the embedded CA.
    Enroll,
    /// A PFX made elsewhere.
    Import,
    /// Issued by the embedded CA as the renewal of another certificate.
    Renew,
}

impl RequestKind {
    fn name(self) -> &'static str {
        match self {
            RequestKind::Enroll => "enroll",
            RequestKind::Import => "import",
            RequestKind::Renew => "renew",
        }
    }
}

/// The role of a CA certificate held by the embedded CA.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CaRole {
    /// A self-signed root.
    Root,
    /// An intermediate signed by the root; issues end-entity certificates when present.
    Intermediate,
}

/// A CA key held by the catalog.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct CaRecord {
    /// The CA certificate's id.
    pub certificate_id: CertificateId,
    /// Root or intermediate.
    pub role: CaRole,
    /// The CA's private key, sealed under the catalog key.
    pub sealed_key: Vec<u8>,
}

/// A store container (a group of stores with its own permissions).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ContainerRecord {
    /// Its id.
    pub id: ContainerId,
    /// Its unique name.
    pub name: String,
}

/// How a store's password is kept.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StorePasswordRecord {
    /// The store has none.
    None,
    /// Sealed under the catalog key.
    Sealed(Vec<u8>),
    /// A reference resolved when needed: `env:VAR` or `file:PATH`.
    Reference(String),
}

impl fmt::Debug for StorePasswordRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StorePasswordRecord::None => f.write_str("None"),
            StorePasswordRecord::Sealed(_) => f.write_str("Sealed([redacted])"),
            StorePasswordRecord::Reference(r) => write!(f, "Reference({r})"),
        }
    }
}

/// A certificate store known to the catalog.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct StoreRecord {
    /// Its GUID.
    pub id: String,
    /// Its type.
    pub store_type: StoreType,
    /// Its (certificate) file.
    pub path: PathBuf,
    /// A PEM store's separate key file.
    pub key_path: Option<PathBuf>,
    /// The container it belongs to, if any.
    pub container_id: Option<ContainerId>,
    /// Its store password.
    pub password: StorePasswordRecord,
    /// The agent whose host holds the store's files and runs its jobs; `None`: the server's
    /// own built-in runner does.
    pub machine: Option<String>,
    /// A PEM store registered to get its key unencrypted (`stores add --plain-key`, for
    /// nginx/HAProxy); never set by omission, and only for PEM stores.
    pub plain_key: bool,
    /// How often the store is inventoried on a schedule, in seconds (`None`: daily).
    pub inventory_every_secs: Option<i64>,
}

impl StoreRecord {
    /// The default inventory schedule: daily.
    pub const DEFAULT_INVENTORY_EVERY_SECS: i64 = 86_400;

    /// How often the store is inventoried on a schedule, in seconds.
    pub fn inventory_every(&self) -> i64 {
        self.inventory_every_secs
            .unwrap_or(Self::DEFAULT_INVENTORY_EVERY_SECS)
    }
}

/// Where the latest inventory of a store found a certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Location {
    /// The store's GUID.
    pub store_id: String,
    /// The alias it was found under.
    pub alias: String,
    /// The certificate.
    pub certificate_id: CertificateId,
}

/// A permission. The store permissions (`read ⊂ schedule ⊂ modify`) are granted globally or on
/// one container; `enroll`, `recover` and `admin` are global only and include nothing else (see
/// [`Permission::includes`]). Permissions have no order: ask `includes`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Permission {
    /// See stores and their contents (and, granted globally, the catalog's certificates).
    Read,
    /// Schedule management jobs.
    Schedule,
    /// Change store definitions.
    Modify,
    /// Enroll, renew and import certificates (global only).
    Enroll,
    /// Use the private key of a certificate the principal did not enroll, renew or import
    /// itself: Deploy or Replace with it, download it with its key (global only; Keyfactor's
    /// "recover").
    Recover,
    /// Manage users, tokens, grants, containers, stores and agents (global only).
    Admin,
}

impl Permission {
    /// The lowercase name.
    pub fn name(self) -> &'static str {
        match self {
            Permission::Read => "read",
            Permission::Schedule => "schedule",
            Permission::Modify => "modify",
            Permission::Enroll => "enroll",
            Permission::Recover => "recover",
            Permission::Admin => "admin",
        }
    }

    /// Whether this permission may only be granted globally.
    pub fn is_global_only(self) -> bool {
        matches!(
            self,
            Permission::Enroll | Permission::Recover | Permission::Admin
        )
    }

    /// Whether holding `self` gives `needed`: `modify` includes `schedule` includes `read`; every
    /// other permission includes only itself.
    pub fn includes(self, needed: Permission) -> bool {
        fn rank(p: Permission) -> Option<u8> {
            match p {
                Permission::Read => Some(0),
                Permission::Schedule => Some(1),
                Permission::Modify => Some(2),
                _ => None,
            }
        }
        match (rank(self), rank(needed)) {
            (Some(held), Some(needed)) => held >= needed,
            _ => self == needed,
        }
    }
}

impl FromStr for Permission {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "read" => Ok(Permission::Read),
            "schedule" => Ok(Permission::Schedule),
            "modify" => Ok(Permission::Modify),
            "enroll" => Ok(Permission::Enroll),
            "recover" => Ok(Permission::Recover),
            "admin" => Ok(Permission::Admin),
            other => Err(Error::Invalid(format!(
                "unknown permission '{other}' (read, schedule, modify, enroll, recover or admin)"
            ))),
        }
    }
}

/// A permission granted to a principal globally (`container_id: None`) or on one container.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Grant {
    /// Who.
    pub principal: String,
    /// Where: `None` is global.
    pub container_id: Option<ContainerId>,
    /// What.
    pub permission: Permission,
}

/// A job's status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum JobStatus {
    /// Due at its scheduled time.
    Waiting,
    /// Claimed by a runner.
    InProcess,
    /// Done (see its result).
    Completed,
    /// Failed and will be retried.
    CompletedWillRetry,
}

/// A finished job's result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum JobResult {
    /// It did what it was asked.
    Success,
    /// It did it, with something worth a look.
    Warning,
    /// It did not.
    Failure,
}

macro_rules! names {
    ($ty:ty { $($variant:ident = $name:literal),* $(,)? }) => {
        impl $ty {
            /// The name used in JSON and the database.
            pub fn name(self) -> &'static str {
                match self { $(Self::$variant => $name),* }
            }
        }
        impl FromStr for $ty {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self> {
                match s {
                    $($name => Ok(Self::$variant),)*
                    other => Err(Error::malformed("catalog record", format!("unknown value '{other}'"))),
                }
            }
        }
    };
}
names!(JobStatus { Waiting = "Waiting", InProcess = "InProcess", Completed = "Completed", CompletedWillRetry = "CompletedWillRetry" });
names!(JobResult { Success = "Success", Warning = "Warning", Failure = "Failure" });

/// What a management job does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum JobOperation {
    /// Put a certificate (key and chain) under an alias.
    Add,
    /// Remove the entry under an alias (`POST /CertificateStores/Certificates/Remove`).
    Remove,
}
names!(JobOperation { Add = "Add", Remove = "Remove" });

/// A management job to create.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct NewJob {
    /// The target store.
    pub store_id: String,
    /// What to do.
    pub operation: JobOperation,
    /// The certificate to put there.
    pub certificate_id: CertificateId,
    /// Under this alias (`None`: the store derives one).
    pub alias: Option<String>,
    /// Replace an existing entry under the alias.
    pub overwrite: bool,
    /// The entry password, sealed under the catalog key.
    pub sealed_entry_password: Option<Vec<u8>>,
    /// When it is due, milliseconds since the Unix epoch.
    pub scheduled_ms: i64,
    /// Who asked.
    pub principal: Option<String>,
}

/// A job as recorded.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct JobRecord {
    /// Its id.
    pub id: JobId,
    /// What was asked.
    pub job: NewJob,
    /// Where it stands.
    pub status: JobStatus,
    /// How it ended, once it has.
    pub result: Option<JobResult>,
    /// What the runner said.
    pub message: Option<String>,
    /// Who holds the job's lease (a runner's id), while it is InProcess.
    pub claimed_by: Option<String>,
    /// When that runner claimed it, milliseconds since the Unix epoch (real clock); the lease
    /// ends [`jobs::JOB_LEASE_MS`] later.
    pub claimed_ms: Option<i64>,
    /// When a runner last took it, milliseconds since the Unix epoch, kept after it ends
    /// (JobHistory's `OperationStart`); `None` for a job that never started.
    pub started_ms: Option<i64>,
    /// When it last ended (Completed or CompletedWillRetry, a cancellation included),
    /// milliseconds since the Unix epoch (JobHistory's `OperationEnd`); `None` while it has
    /// not.
    pub finished_ms: Option<i64>,
}

/// The time to record as a job's end when it moves to `status`: now for a status that ends a
/// run, none otherwise (a job put back to Waiting or InProcess has not ended).
pub(crate) fn ended_ms(status: JobStatus) -> Option<i64> {
    matches!(status, JobStatus::Completed | JobStatus::CompletedWillRetry)
        .then(pfxkit::cert::now_millis)
}

/// A renewal policy: renew the located certificates of its scope `renew_before_secs` before
/// they expire, acting as `principal`.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct PolicyRecord {
    /// Its id.
    pub id: PolicyId,
    /// Its scope: a container, or `None` for the global policy.
    pub container_id: Option<ContainerId>,
    /// How long before `NotAfter` its window opens, in seconds.
    pub renew_before_secs: i64,
    /// Who the renewal and the Replace act as.
    pub principal: String,
    /// The entry password of the Replace jobs (sealed or a reference), if any.
    pub entry_password: StorePasswordRecord,
}

/// A policy to set: at most one per scope, so setting one replaces the scope's previous one.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct NewPolicy {
    /// Its scope: a container, or `None` for the global policy.
    pub container_id: Option<ContainerId>,
    /// How long before `NotAfter` its window opens, in seconds.
    pub renew_before_secs: i64,
    /// Who the renewal and the Replace act as.
    pub principal: String,
    /// The entry password of the Replace jobs (sealed or a reference), if any.
    pub entry_password: StorePasswordRecord,
}

/// A located certificate as `expiring` lists it.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ExpiringRecord {
    /// The certificate.
    pub record: CertificateRecord,
    /// How many (store, alias) locations the latest inventories found it in.
    pub locations: usize,
    /// The certificate that renewed it, if any.
    pub successor: Option<CertificateId>,
}

/// What a policy check did with one certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RenewalOutcome {
    /// Renewed, and a Replace job created in every store of the old certificate.
    Renewed,
    /// Renewed, but some stores could not get a job (see the per-store outcomes).
    PartiallyReplaced,
    /// Not renewed (see the message); the next check tries again.
    Failed,
}

names!(RenewalOutcome { Renewed = "Renewed", PartiallyReplaced = "PartiallyReplaced", Failed = "Failed" });

/// One store's part of a policy renewal's Replace.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreDecision {
    /// The store's GUID.
    pub store_id: String,
    /// Whether a job was created there.
    pub scheduled: bool,
    /// Why not, when it was not.
    pub reason: Option<String>,
}

/// A decision of a policy check, as recorded.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct HistoryRecord {
    /// Its id (`None` before it is recorded).
    pub id: Option<HistoryId>,
    /// The policy that decided (it may have been removed since).
    pub policy_id: PolicyId,
    /// Its scope then: a container, or `None` for global.
    pub container_id: Option<ContainerId>,
    /// The principal it acted as.
    pub principal: String,
    /// The certificate it renewed.
    pub certificate_id: CertificateId,
    /// That certificate's `NotAfter`, Unix seconds.
    pub not_after: i64,
    /// When its window opened, Unix seconds: `not_after` − the policy's renew-before, or
    /// half-way through the certificate's lifetime when that is later.
    pub window_start: i64,
    /// The successor, when one was issued.
    pub successor_id: Option<CertificateId>,
    /// What came of it.
    pub outcome: RenewalOutcome,
    /// Why it failed, when it did.
    pub message: Option<String>,
    /// Per store of the old certificate: job created or not, and why.
    pub stores: Vec<StoreDecision>,
    /// When the check decided (the check's "now"), milliseconds since the Unix epoch.
    pub decided_ms: i64,
}

/// The catalog's storage. Each method is one transaction; implementations must be safe to use
/// from several processes at once.
pub trait Catalog: Send + Sync + fmt::Debug {
    /// Records `certificate` with its `chain` (issuer first; chain certificates are recorded
    /// too, without keys), an optional sealed staged key, and optionally a new request — all at
    /// once or not at all. A certificate already known (same SHA-256) keeps its id.
    ///
    /// # Errors
    /// [`Error::Codec`] (I/O)-class database errors.
    fn add_certificate(
        &self,
        certificate: &Certificate,
        chain: &[Certificate],
        sealed_key: Option<&[u8]>,
        request: Option<RequestKind>,
        owner: Option<&str>,
    ) -> Result<(CertificateRecord, Option<RequestId>)>;

    /// A certificate by id.
    ///
    /// # Errors
    /// Database errors.
    fn certificate(&self, id: CertificateId) -> Result<Option<CertificateRecord>>;

    /// A certificate by SHA-1 or SHA-256 thumbprint (hex, any case).
    ///
    /// # Errors
    /// Database errors.
    fn certificate_by_thumbprint(&self, thumbprint: &str) -> Result<Option<CertificateRecord>>;

    /// The certificate an enrollment request produced.
    ///
    /// # Errors
    /// Database errors.
    fn certificate_by_request(&self, request: RequestId) -> Result<Option<CertificateRecord>>;

    /// The sealed staged key of a certificate.
    ///
    /// # Errors
    /// Database errors.
    fn staged_key(&self, certificate: CertificateId) -> Result<Option<Vec<u8>>>;

    /// Records a CA key for a recorded certificate.
    ///
    /// # Errors
    /// Database errors.
    fn add_ca(&self, certificate: CertificateId, role: CaRole, sealed_key: &[u8]) -> Result<()>;

    /// The CA that issues end-entity certificates: the newest intermediate, else the newest root.
    ///
    /// # Errors
    /// Database errors.
    fn issuing_ca(&self) -> Result<Option<CaRecord>>;

    /// Creates a container.
    ///
    /// # Errors
    /// [`Error::Invalid`] when the name is taken; database errors.
    fn add_container(&self, name: &str) -> Result<ContainerRecord>;

    /// A container by name.
    ///
    /// # Errors
    /// Database errors.
    fn container_by_name(&self, name: &str) -> Result<Option<ContainerRecord>>;

    /// Records a store and, in the same transaction, the names of its files on its host (its
    /// paths and, on the server's host, the files they resolve to through links).
    ///
    /// # Errors
    /// [`Error::Invalid`] when one of those files is already a file of another store on the
    /// same host (one file is one store; checked by lookup, so concurrent registrations of one
    /// file make one store); database errors.
    fn add_store(&self, store: &StoreRecord) -> Result<()>;

    /// A store by GUID.
    ///
    /// # Errors
    /// Database errors.
    fn store(&self, id: &str) -> Result<Option<StoreRecord>>;

    /// Every store.
    ///
    /// # Errors
    /// Database errors.
    fn stores(&self) -> Result<Vec<StoreRecord>>;

    /// Grants a permission.
    ///
    /// # Errors
    /// Database errors.
    fn grant(&self, grant: &Grant) -> Result<()>;

    /// Whether anyone holds a grant on this container. Informational only: permission
    /// decisions are per principal ([`Service::authorize`](crate::service::Service::authorize)),
    /// and another principal's container grants never change yours.
    ///
    /// # Errors
    /// Database errors.
    fn container_has_grants(&self, container: ContainerId) -> Result<bool>;

    /// Every grant of a principal.
    ///
    /// # Errors
    /// Database errors.
    fn grants(&self, principal: &str) -> Result<Vec<Grant>>;

    /// Replaces a store's locations with what its latest inventory found.
    ///
    /// # Errors
    /// Database errors.
    fn set_locations(&self, store_id: &str, found: &[(String, CertificateId)]) -> Result<()>;

    /// Every location of a certificate.
    ///
    /// # Errors
    /// Database errors.
    fn locations(&self, certificate: CertificateId) -> Result<Vec<Location>>;

    /// Creates jobs, all at once or not at all; returns their ids in order.
    ///
    /// # Errors
    /// Database errors.
    fn add_jobs(&self, jobs: &[NewJob]) -> Result<Vec<JobId>>;

    /// Every job, oldest first.
    ///
    /// # Errors
    /// Database errors.
    fn jobs(&self) -> Result<Vec<JobRecord>>;

    /// The jobs still Waiting that would put `certificate` into a store, oldest first: what
    /// Deploy and Replace ask to avoid queueing the same work twice, without reading the whole
    /// job history.
    ///
    /// # Errors
    /// Database errors.
    fn waiting_jobs_of_certificate(&self, certificate: CertificateId) -> Result<Vec<JobRecord>>;

    /// The open jobs of the stores this host runs (those without a machine) at `now_ms`,
    /// counted by the database: due ones (a Waiting job whose time has come, or one whose
    /// lease — `lease_ms` from its claim — has ended), leased ones and when the last lease
    /// ends, and when the next job not yet due falls due.
    ///
    /// # Errors
    /// Database errors.
    fn job_queue(&self, now_ms: i64, lease_ms: i64) -> Result<crate::jobs::JobQueue>;

    /// Atomically claims up to `limit` jobs for the runner `holder` and returns them, each
    /// store's in order: moves to InProcess (recording `holder` and the real clock's time as the
    /// lease's start) the jobs due at `now_ms` that are Waiting, or InProcess since before
    /// `stale_before_ms` (abandoned by a killed runner). Jobs are taken in (scheduled time, id)
    /// order, and a store's job is never claimed while an earlier job of the same store is
    /// Waiting or InProcess and not claimed by this call — so one store's jobs run in order
    /// across runners. Two runners never claim the same job.
    ///
    /// `now_ms` may be a chosen time (`jobs run --now`); `stale_before_ms` must come from the
    /// real clock, or a runner with a future `--now` would take over live leases.
    ///
    /// # Errors
    /// Database errors.
    fn claim_due_jobs(
        &self,
        now_ms: i64,
        stale_before_ms: i64,
        limit: usize,
        holder: &str,
    ) -> Result<Vec<JobRecord>>;

    /// Every certificate, by id.
    ///
    /// # Errors
    /// Database errors.
    fn certificates(&self) -> Result<Vec<CertificateRecord>>;

    /// Every container, by id.
    ///
    /// # Errors
    /// Database errors.
    fn containers(&self) -> Result<Vec<ContainerRecord>>;

    /// Forgets a store with its locations and jobs, all at once or not at all; the store's
    /// files are not touched. Returns whether it was known.
    ///
    /// # Errors
    /// [`Error::Invalid`] while one of its jobs is running (InProcess); database errors.
    fn remove_store(&self, id: &str) -> Result<bool>;

    /// Retires every CA key (the CA certificates stay recorded): the CA a `ca init
    /// --replace-ca` makes next is then the only issuer. Returns the retired CAs.
    ///
    /// # Errors
    /// Database errors.
    fn retire_cas(&self) -> Result<Vec<CaRecord>>;

    /// Gives the jobs among `ids` that are still InProcess under `holder`'s lease back to the
    /// queue (Waiting, no lease): a runner stopping without running them.
    ///
    /// # Errors
    /// Database errors.
    fn release_jobs(&self, ids: &[JobId], holder: &str) -> Result<()>;

    /// Cancels a Waiting job: it becomes Completed with result Failure and `message`. Returns
    /// whether it was Waiting (an InProcess or finished job is left as it is).
    ///
    /// # Errors
    /// Database errors.
    fn cancel_job(&self, id: JobId, message: &str) -> Result<bool>;

    /// Queues a failed job again (Completed with result Failure → Waiting at `scheduled_ms`,
    /// no result, message or lease). Returns whether it had failed.
    ///
    /// # Errors
    /// Database errors.
    fn retry_job(&self, id: JobId, scheduled_ms: i64) -> Result<bool>;

    /// One job by id.
    ///
    /// # Errors
    /// Database errors.
    fn job(&self, id: JobId) -> Result<Option<JobRecord>>;

    /// Records a job's new status, result and message.
    ///
    /// # Errors
    /// Database errors.
    fn finish_job(
        &self,
        id: JobId,
        status: JobStatus,
        result: JobResult,
        message: &str,
    ) -> Result<()>;

    /// Records `certificate` (with `chain` and its sealed key owned by `owner`, as
    /// [`Catalog::add_certificate`] with a [`RequestKind::Renew`] request) as a successor of
    /// `predecessor`, made by `policy`
    /// or by hand (`None`), in one transaction. For a policy renewal that transaction first
    /// checks that `predecessor` has no successor at all, and returns `None`, recording nothing,
    /// when it has one; a unique index on (predecessor) of policy renewals backs the check, so
    /// two concurrent checks renew a certificate once whatever the isolation level. A renewal by
    /// hand is always recorded.
    ///
    /// # Errors
    /// Database errors.
    fn record_renewal(
        &self,
        predecessor: CertificateId,
        certificate: &Certificate,
        chain: &[Certificate],
        sealed_key: &[u8],
        policy: Option<PolicyId>,
        owner: Option<&str>,
    ) -> Result<Option<(CertificateRecord, RequestId)>>;

    /// The newest certificate that renewed `certificate`, if any.
    ///
    /// # Errors
    /// Database errors.
    fn successor(&self, certificate: CertificateId) -> Result<Option<CertificateId>>;

    /// Every certificate with at least one location whose `NotAfter` is at or before
    /// `not_after_by` (Unix seconds), soonest first, with its location count and successor.
    ///
    /// # Errors
    /// Database errors.
    fn expiring(&self, not_after_by: i64) -> Result<Vec<ExpiringRecord>>;

    /// Sets the policy of a scope (replacing the scope's previous one).
    ///
    /// # Errors
    /// Database errors.
    fn set_policy(&self, policy: &NewPolicy) -> Result<PolicyRecord>;

    /// Every policy, global first, then by container id.
    ///
    /// # Errors
    /// Database errors.
    fn policies(&self) -> Result<Vec<PolicyRecord>>;

    /// Removes the policy of a scope; returns whether there was one.
    ///
    /// # Errors
    /// Database errors.
    fn remove_policy(&self, container: Option<ContainerId>) -> Result<bool>;

    /// Records a policy check's decision with its per-store outcomes, at once.
    ///
    /// # Errors
    /// Database errors.
    fn add_history(&self, entry: &HistoryRecord) -> Result<HistoryId>;

    /// Every recorded decision, oldest first.
    ///
    /// # Errors
    /// Database errors.
    fn history(&self) -> Result<Vec<HistoryRecord>>;

    /// Records a user of the HTTP API with its Argon2id password hash (a PHC string).
    ///
    /// # Errors
    /// [`Error::Invalid`] when the name is taken; database errors.
    fn add_user(&self, name: &str, password_hash: &str) -> Result<()>;

    /// Removes a user and every token issued to it; whether it existed.
    ///
    /// # Errors
    /// Database errors.
    fn remove_user(&self, name: &str) -> Result<bool>;

    /// The names of all users, sorted.
    ///
    /// # Errors
    /// Database errors.
    fn users(&self) -> Result<Vec<String>>;

    /// A user's password hash (PHC string), if the user exists.
    ///
    /// # Errors
    /// Database errors.
    fn password_hash(&self, name: &str) -> Result<Option<String>>;

    /// Records an API token by its SHA-256 hash (lower-case hex) for `principal`; returns its id.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown user; database errors.
    fn add_token(&self, principal: &str, token_hash: &str, expires_ms: Option<i64>) -> Result<i64>;

    /// The token whose SHA-256 hash is `token_hash`, expired or not.
    ///
    /// # Errors
    /// Database errors.
    fn token(&self, token_hash: &str) -> Result<Option<TokenRecord>>;

    /// Revokes (deletes) a token; whether it existed.
    ///
    /// # Errors
    /// Database errors.
    fn revoke_token(&self, id: i64) -> Result<bool>;

    /// [`Catalog::claim_due_jobs`] restricted to the stores of one machine: `Some(agent)` for
    /// an agent's stores, `None` for the stores the server runs itself. `claim_due_jobs` is
    /// this with `None`, so the built-in runner never takes an agent's job.
    ///
    /// # Errors
    /// Database errors.
    fn claim_machine_jobs(
        &self,
        now_ms: i64,
        stale_before_ms: i64,
        limit: usize,
        holder: &str,
        machine: Option<&str>,
    ) -> Result<Vec<JobRecord>>;

    /// Records a job's end only while `holder` still holds its lease (InProcess, claimed by
    /// `holder`). Returns whether it was recorded: `false` is a late completion from a lease
    /// that ended (taken over, released or finished), which changes nothing. A holder
    /// `agent:NAME:…` also counts the job as done or failed for agent NAME, in the same
    /// transaction (a crash between the two would miscount).
    ///
    /// # Errors
    /// Database errors.
    fn finish_leased_job(
        &self,
        id: JobId,
        holder: &str,
        status: JobStatus,
        result: JobResult,
        message: &str,
    ) -> Result<bool>;

    /// The machines (agent names) with at least one job a claim at `now_ms` could take: due
    /// and Waiting, or InProcess since before `stale_before_ms`. One cheap read, so the
    /// server can wake the agents waiting for work without a claim per agent.
    ///
    /// # Errors
    /// Database errors.
    fn machines_with_due_jobs(&self, now_ms: i64, stale_before_ms: i64) -> Result<Vec<String>>;

    /// Adds an agent with the SHA-256 (lower-case hex) of its one-time registration token. A
    /// revoked agent's name may be added again (a re-provisioned host): it gets the new token
    /// and no certificate, so its old certificate stays refused; its job counts stay.
    ///
    /// # Errors
    /// [`Error::Invalid`] when the name is taken by an agent that is not revoked; database
    /// errors.
    fn add_agent(&self, name: &str, token_hash: &str) -> Result<()>;

    /// Every agent, by name.
    ///
    /// # Errors
    /// Database errors.
    fn agents(&self) -> Result<Vec<AgentRecord>>;

    /// One agent by name.
    ///
    /// # Errors
    /// Database errors.
    fn agent(&self, name: &str) -> Result<Option<AgentRecord>>;

    /// Whether `token_hash` is the unused registration token of agent `name`, which is
    /// registered (not revoked). Asked before anything is signed for a registration; the
    /// redemption ([`Catalog::redeem_agent_token`]) still decides, once, which request wins.
    ///
    /// # Errors
    /// Database errors.
    fn agent_token_matches(&self, name: &str, token_hash: &str) -> Result<bool>;

    /// Uses an agent's registration token, once: when the agent is registered (not revoked)
    /// and its unused token's hash is `token_hash`, forgets the token and records the issued
    /// certificate's serial and SHA-256 thumbprint, in one statement. Returns whether it did;
    /// a second use of the same token finds nothing.
    ///
    /// # Errors
    /// Database errors.
    fn redeem_agent_token(
        &self,
        name: &str,
        token_hash: &str,
        serial: &str,
        thumbprint: &str,
    ) -> Result<bool>;

    /// Revokes an agent: its certificate and any unused token are refused from now on.
    /// Returns whether it was known.
    ///
    /// # Errors
    /// Database errors.
    fn revoke_agent(&self, name: &str) -> Result<bool>;

    /// Records that an agent talked to the server at `now_ms` reporting `version`, and counts
    /// `done` and `failed` more completed jobs.
    ///
    /// # Errors
    /// Database errors.
    fn agent_seen(
        &self,
        name: &str,
        version: &str,
        now_ms: i64,
        done: i64,
        failed: i64,
    ) -> Result<()>;
}

/// Whether an agent may work.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AgentState {
    /// Added (and possibly registered with a certificate): its certificate is accepted.
    Registered,
    /// Revoked: its certificate and its token are refused.
    Revoked,
}

names!(AgentState { Registered = "registered", Revoked = "revoked" });

/// An agent as recorded: never its registration token, only the token's SHA-256 while it is
/// unused.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct AgentRecord {
    /// Its name, the `machine` of its stores.
    pub name: String,
    /// Registered or revoked.
    pub state: AgentState,
    /// Whether its one-time registration token is still unused.
    pub token_pending: bool,
    /// The serial (lower-case hex) of the client certificate issued at registration.
    pub certificate_serial: Option<String>,
    /// That certificate's SHA-256 thumbprint (lower-case hex): the one certificate accepted
    /// as this agent.
    pub certificate_thumbprint: Option<String>,
    /// When it last talked to the server, milliseconds since the Unix epoch.
    pub last_seen_ms: Option<i64>,
    /// The version it last reported.
    pub version: Option<String>,
    /// Jobs it completed with success or a warning.
    pub jobs_done: i64,
    /// Jobs it completed with a failure.
    pub jobs_failed: i64,
    /// When it was added, milliseconds since the Unix epoch.
    pub created_ms: i64,
}

/// The agent a lease holder id (`agent:NAME:<random>`) belongs to, if it is an agent's.
pub(crate) fn agent_of_holder(holder: &str) -> Option<&str> {
    holder
        .strip_prefix("agent:")
        .and_then(|rest| rest.split_once(':'))
        .map(|(name, _)| name)
}

/// An API token as recorded: never the token itself, only who it stands for.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TokenRecord {
    /// Its id (for `tokens revoke`).
    pub id: i64,
    /// The user it authenticates as.
    pub principal: String,
    /// When it stops being accepted, milliseconds since the Unix epoch (`None`: never).
    pub expires_ms: Option<i64>,
}

/// The refusal of a store whose `file` is already a file of store `owner`.
fn one_file_one_store(file: &str, owner: &str) -> Error {
    Error::Invalid(format!(
        "{file} is already a file of store {owner}: one file is one store"
    ))
}
