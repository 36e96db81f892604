//! Deployment commands: `containers add`, `stores add|list`, `grant`, `deploy`, `inventory`,
//! `replace`, `jobs list|run|cancel|retry`.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use signal_hook::consts::{SIGINT, SIGTERM};

use pfxkit::PasswordSource;
use pfxkit::store::StoreType;
use pfxkit_catalog::Error;
use pfxkit_catalog::jobs::{self, JobOptions, NewCertificate, StoreOptions, StoreOutcome};
use pfxkit_catalog::{Action, JobRecord, Permission, StorePasswordRecord, StoreRecord};
use serde_json::{Value, json};

use crate::catalog::CatalogArgs;
use crate::{password_source, print_json, resolve};

/// Who acts.
#[derive(Debug, Clone, clap::Args)]
pub struct PrincipalArgs {
    /// The acting principal [env: PFXKIT_PRINCIPAL]; without one the catalog's owner acts with
    /// every permission.
    #[arg(long = "principal", value_name = "NAME", global = true)]
    pub principal: Option<String>,
}

impl PrincipalArgs {
    /// This command's `--principal`, else one given before the command, else
    /// `PFXKIT_PRINCIPAL`.
    #[must_use]
    pub fn resolved(mut self, before_command: Option<&str>) -> Self {
        self.principal = self
            .principal
            .or_else(|| before_command.map(str::to_string))
            .or_else(|| std::env::var("PFXKIT_PRINCIPAL").ok());
        self
    }
}

#[derive(Debug, clap::Subcommand)]
pub enum ContainersCommand {
    /// List the containers.
    List,
    /// Create a container.
    Add {
        /// Its unique name.
        name: String,
    },
}

#[derive(Debug, clap::Subcommand)]
pub enum StoresCommand {
    /// Record a store.
    Add {
        /// pem, pkcs12 or jks (also PKCS12, p12, pfx, JKS: keytool's spellings).
        #[arg(long = "type", value_parser = store_type)]
        store_type: StoreType,
        /// The store's (certificate) file.
        #[arg(long)]
        path: PathBuf,
        /// A PEM store's separate key file.
        #[arg(long)]
        key_path: Option<PathBuf>,
        /// The container it belongs to.
        #[arg(long)]
        container: Option<String>,
        /// Store password: pass:/stdin values are sealed in the catalog; env:/file: are kept as
        /// references.
        #[arg(long, value_parser = password_source)]
        store_password: Option<PasswordSource>,
        /// The agent whose host holds the store and runs its jobs (`pfxkit agents add`);
        /// without it the server runs them. Paths are then absolute paths on that host, and a
        /// store password must be env:VAR or file:PATH, resolved there.
        #[arg(long, value_name = "AGENT")]
        machine: Option<String>,
        /// PEM only: write the key unencrypted (nginx, HAProxy). Recorded with the store;
        /// without it a PEM store always gets an encrypted key.
        #[arg(long)]
        plain_key: bool,
        /// How often the store is inventoried on a schedule: 12h, 30m, 1d or seconds
        /// (default daily).
        #[arg(long, value_name = "PERIOD", value_parser = crate::catalog::duration_secs)]
        inventory_every: Option<u64>,
    },
    /// List the stores.
    List,
    /// Show one store.
    Show {
        /// Its GUID.
        id: String,
    },
    /// Forget a store: its locations and jobs go too; its files are left alone.
    Remove {
        /// Its GUID.
        id: String,
    },
}

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("scope").required(true).args(["global", "container"])))]
pub struct GrantArgs {
    /// Who receives the permission. (This `--principal` names the grantee, so the acting
    /// principal of `grant` is given with `--as` or `PFXKIT_PRINCIPAL`.)
    #[arg(long)]
    principal: String,
    /// The acting principal (needs the global admin permission; never the grantee itself).
    #[arg(long = "as", env = "PFXKIT_PRINCIPAL", value_name = "PRINCIPAL")]
    actor: Option<String>,
    /// On every store.
    #[arg(long)]
    global: bool,
    /// On the stores of this container.
    #[arg(long)]
    container: Option<String>,
    /// read, schedule or modify (each includes the ones before it), or the global-only enroll,
    /// recover or admin.
    #[arg(long, value_parser = permission)]
    permission: Permission,
}

#[derive(Debug, clap::Args)]
pub struct DeployArgs {
    #[command(flatten)]
    principal: PrincipalArgs,
    /// The certificate to deploy.
    #[arg(long)]
    certificate_id: i64,
    /// Target store GUIDs.
    #[arg(long = "store", required = true, num_args = 1..)]
    stores: Vec<String>,
    /// Alias in the stores.
    #[arg(long)]
    alias: Option<String>,
    /// Replace an existing entry under the alias.
    #[arg(long)]
    overwrite: bool,
    /// Entry password (required by PEM stores).
    #[arg(long, value_parser = password_source)]
    password: Option<PasswordSource>,
    /// When to run: ISO 8601 UTC; absent or past means now.
    #[arg(long)]
    job_time: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct InventoryArgs {
    /// Only this store.
    #[arg(long)]
    store: Option<String>,
}

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("new").required(true).args(["certificate_id", "request_id"])))]
pub struct ReplaceArgs {
    #[command(flatten)]
    principal: PrincipalArgs,
    /// The certificate being replaced.
    #[arg(long)]
    existing_certificate_id: i64,
    /// The replacement, by certificate id.
    #[arg(long)]
    certificate_id: Option<i64>,
    /// The replacement, by enrollment request id.
    #[arg(long)]
    request_id: Option<i64>,
    /// Entry password (required by PEM stores).
    #[arg(long, value_parser = password_source)]
    password: Option<PasswordSource>,
    /// When to run: ISO 8601 UTC; absent or past means now.
    #[arg(long)]
    job_time: Option<String>,
    /// List the target stores and what would happen in each (a job, or a failure and why);
    /// create nothing.
    #[arg(long)]
    dry_run: bool,
}

#[derive(Debug, clap::Subcommand)]
pub enum JobsCommand {
    /// List every job (a running job shows which runner holds its lease, and until when).
    List,
    /// Run every due job. SIGINT/SIGTERM: the running jobs finish, the others are released,
    /// exit 130.
    Run {
        /// Run as of this ISO 8601 UTC time instead of now (leases stay on the real clock).
        #[arg(long)]
        now: Option<String>,
    },
    /// Cancel a Waiting job (it ends Completed/Failure).
    Cancel {
        /// The job's id.
        id: i64,
    },
    /// Queue a failed job again, due now.
    Retry {
        /// The job's id.
        id: i64,
    },
}

/// The spellings `store --type` accepts (keytool's `PKCS12`, `p12`, …), for one habit across
/// both commands.
fn store_type(s: &str) -> Result<StoreType, String> {
    crate::store::store_type(s)
}

fn permission(s: &str) -> Result<Permission, String> {
    s.parse().map_err(|e: Error| e.to_string())
}

pub fn containers(
    args: &CatalogArgs,
    principal: &PrincipalArgs,
    command: ContainersCommand,
) -> crate::CliResult {
    let service = args.open()?;
    match command {
        ContainersCommand::Add { name } => {
            let c = service.add_container(principal.principal.as_deref(), &name)?;
            emit(args, json!({ "Id": c.id, "Name": c.name }), || {
                outln!("container {} ({})", c.id, c.name)
            });
        }
        ContainersCommand::List => {
            let all = service.containers()?;
            emit(
                args,
                Value::Array(
                    all.iter()
                        .map(|c| json!({ "Id": c.id, "Name": c.name }))
                        .collect(),
                ),
                || {
                    for c in &all {
                        outln!("{:>5}  {}", c.id, c.name);
                    }
                    if all.is_empty() {
                        outln!("no containers");
                    }
                },
            );
        }
    }
    Ok(())
}

fn store_json(s: &StoreRecord) -> Value {
    json!({
        "Id": s.id,
        "StoreType": s.store_type.name(),
        "StorePath": s.path.display().to_string(),
        "KeyPath": s.key_path.as_ref().map(|p| p.display().to_string()),
        "ContainerId": s.container_id,
        "StorePassword": match &s.password {
            StorePasswordRecord::None => Value::Null,
            StorePasswordRecord::Sealed(_) => json!("sealed"),
            StorePasswordRecord::Reference(r) => json!(r),
            _ => Value::Null,
        },
        "Machine": s.machine,
        "PlainKey": s.plain_key,
        "InventoryEverySecs": s.inventory_every(),
    })
}

pub fn stores(
    args: &CatalogArgs,
    principal: &PrincipalArgs,
    command: StoresCommand,
) -> crate::CliResult {
    let service = args.open()?;
    match command {
        StoresCommand::Add {
            store_type,
            path,
            key_path,
            container,
            store_password,
            machine,
            plain_key,
            inventory_every,
        } => {
            if plain_key && store_type != StoreType::Pem {
                return Err(crate::CliError::Usage(format!(
                    "--plain-key applies to pem stores only, not {store_type}: its keys are \
                     protected by the store password"
                )));
            }
            let options = StoreOptions::default()
                .machine(machine)
                .plain_key(plain_key)
                .inventory_every_secs(
                    inventory_every.map(|s| i64::try_from(s).unwrap_or(i64::MAX)),
                );
            let s = service.add_store_with(
                principal.principal.as_deref(),
                store_type,
                &path,
                key_path.as_deref(),
                container.as_deref(),
                store_password.as_ref(),
                &options,
            )?;
            emit(args, store_json(&s), || {
                outln!(
                    "added store {}: {} {}{}",
                    s.id,
                    s.store_type.name(),
                    s.path.display(),
                    container
                        .as_deref()
                        .map(|c| format!(" in container {c}"))
                        .unwrap_or_default()
                )
            });
        }
        StoresCommand::Show { id } => {
            let s = service.store(&id)?;
            service.authorize(principal.principal.as_deref(), Action::ReadStore(&s))?;
            emit(args, store_json(&s), || {
                outln!(
                    "store {}: {} {}{}{}",
                    s.id,
                    s.store_type.name(),
                    s.path.display(),
                    s.key_path
                        .as_ref()
                        .map(|k| format!(" (key {})", k.display()))
                        .unwrap_or_default(),
                    s.container_id
                        .map(|c| format!(", container {c}"))
                        .unwrap_or_default()
                );
                outln!(
                    "  run by {}; inventoried every {} s{}",
                    s.machine
                        .as_deref()
                        .map_or("the server".to_string(), |m| format!("agent {m}")),
                    s.inventory_every(),
                    if s.plain_key { "; key unencrypted" } else { "" }
                )
            });
        }
        StoresCommand::Remove { id } => {
            // Forgetting a store is managing stores: the global admin permission.
            service.authorize(principal.principal.as_deref(), Action::Admin)?;
            let s = service.remove_store(&id)?;
            emit(args, store_json(&s), || {
                outln!(
                    "removed store {} ({} {}) from the catalog; its files are untouched",
                    s.id,
                    s.store_type.name(),
                    s.path.display()
                )
            });
        }
        StoresCommand::List => {
            // A principal sees the stores it may read.
            let mut all: Vec<StoreRecord> = Vec::new();
            for s in service.catalog().stores()? {
                match service.authorize(principal.principal.as_deref(), Action::ReadStore(&s)) {
                    Ok(()) => all.push(s),
                    Err(Error::Forbidden(_)) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            emit(
                args,
                Value::Array(all.iter().map(store_json).collect()),
                || {
                    for s in &all {
                        outln!("{}  {:6}  {}", s.id, s.store_type.name(), s.path.display());
                    }
                    if all.is_empty() {
                        outln!("no stores");
                    }
                },
            );
        }
    }
    Ok(())
}

pub fn grant(args: &CatalogArgs, g: GrantArgs) -> crate::CliResult {
    args.open()?.grant(
        g.actor.as_deref(),
        &g.principal,
        g.container.as_deref(),
        g.permission,
    )?;
    emit(args, json!({}), || {
        outln!("granted {} to {}", g.permission.name(), g.principal)
    });
    Ok(())
}

pub fn outcome_json(o: &StoreOutcome) -> Value {
    let mut value = json!({
        "SuccessfulStores": o.successful,
        "FailedStores": o.failed,
        "Failures": o.failures,
        "Warnings": o.warnings,
    });
    if let Some(fields) = value.as_object_mut() {
        fields.insert("Actions".into(), json!(o.actions));
        if o.dry_run {
            fields.insert("DryRun".into(), json!(true));
        }
    }
    value
}

/// The text form of a Deploy or Replace answer.
pub fn print_outcome_text(o: &StoreOutcome) {
    if o.dry_run {
        outln!("dry run: nothing was created");
    }
    for w in &o.warnings {
        outln!("warning: {w}");
    }
    for s in &o.successful {
        outln!(
            "store {s}: {}",
            o.actions
                .get(s)
                .map(String::as_str)
                .unwrap_or("job created")
        );
    }
    if o.successful.is_empty() && o.failed.is_empty() {
        outln!("no target stores (the latest inventories found the certificate nowhere)");
    }
    for s in &o.failed {
        outln!(
            "store {s} failed: {}",
            o.failures.get(s).map(String::as_str).unwrap_or_default()
        );
    }
}

/// Prints the answer of Deploy or Replace; when every targeted store failed the command fails
/// too (exit 1), after printing it.
fn print_outcome(args: &CatalogArgs, o: &StoreOutcome) -> crate::CliResult {
    emit(args, outcome_json(o), || print_outcome_text(o));
    if o.all_failed() {
        return Err(Error::Invalid(format!(
            "every store failed ({}); no job was created",
            o.failed.len()
        ))
        .into());
    }
    Ok(())
}

pub fn deploy(args: &CatalogArgs, d: DeployArgs, principal: Option<&str>) -> crate::CliResult {
    let principal = &d.principal.clone().resolved(principal);
    let service = args.open()?;
    let password = resolve(d.password.as_ref())?;
    let options = JobOptions::new(
        password.as_ref(),
        d.job_time.as_deref(),
        principal.principal.as_deref(),
    );
    let o = service.deploy(
        d.certificate_id,
        &d.stores,
        d.alias.as_deref(),
        d.overwrite,
        &options,
    )?;
    print_outcome(args, &o)
}

pub fn inventory(args: &CatalogArgs, i: InventoryArgs) -> crate::CliResult {
    let reports = args.open()?.inventory(i.store.as_deref())?;
    let value = Value::Array(
        reports
            .iter()
            .map(|r| json!({ "StoreId": r.store_id, "Result": r.result.name(), "Entries": r.entries, "Message": r.message }))
            .collect(),
    );
    emit(args, value, || {
        if reports.is_empty() {
            outln!("no stores to inventory");
        }
        for r in &reports {
            outln!(
                "{}: {} ({} entries){}",
                r.store_id,
                r.result.name(),
                r.entries,
                r.message
                    .as_ref()
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default()
            );
        }
    });
    Ok(())
}

pub fn replace(args: &CatalogArgs, r: ReplaceArgs, principal: Option<&str>) -> crate::CliResult {
    let principal = &r.principal.clone().resolved(principal);
    let service = args.open()?;
    let new = match (r.certificate_id, r.request_id) {
        (Some(c), None) => NewCertificate::Certificate(c),
        (None, Some(q)) => NewCertificate::Request(q),
        // clap's group makes exactly one present.
        _ => {
            return Err(crate::CliError::Usage(
                "give exactly one of --certificate-id and --request-id".into(),
            ));
        }
    };
    let password = resolve(r.password.as_ref())?;
    let options = JobOptions::new(
        password.as_ref(),
        r.job_time.as_deref(),
        principal.principal.as_deref(),
    )
    .dry_run(r.dry_run);
    let o = service.replace(r.existing_certificate_id, new, &options)?;
    print_outcome(args, &o)
}

pub fn job_json(j: &JobRecord) -> Value {
    json!({
        "Id": j.id,
        "StoreId": j.job.store_id,
        "Type": "Management",
        "CertificateId": j.job.certificate_id,
        "Alias": j.job.alias,
        "Status": j.status.name(),
        "Result": j.result.map(|r| r.name()),
        "Scheduled": jobs::format_time(j.job.scheduled_ms),
        "Message": j.message,
        "LeasedBy": j.claimed_by,
        "LeasedUntil": j.claimed_ms.map(|c| jobs::format_time(c.saturating_add(jobs::JOB_LEASE_MS))),
    })
}

fn print_jobs(args: &CatalogArgs, list: &[JobRecord]) {
    emit(
        args,
        Value::Array(list.iter().map(job_json).collect()),
        || {
            for j in list {
                let lease = match (&j.claimed_by, j.claimed_ms) {
                    (Some(by), Some(at)) => format!(
                        " (leased by {by} until {})",
                        jobs::format_time(at.saturating_add(jobs::JOB_LEASE_MS))
                    ),
                    _ => String::new(),
                };
                outln!(
                    "job {} {} store {}: {}{lease}{}",
                    j.id,
                    jobs::format_time(j.job.scheduled_ms),
                    j.job.store_id,
                    j.status.name(),
                    j.result
                        .map(|r| format!(
                            " {} — {}",
                            r.name(),
                            crate::escape_text(j.message.as_deref().unwrap_or_default())
                        ))
                        .unwrap_or_default()
                );
            }
        },
    );
}

/// Jobs at or above this count get a progress bar on a terminal.
const PROGRESS_THRESHOLD: usize = 20;

/// Without a terminal (CI, cron, a pipe), a progress line on stderr every this many jobs.
const PROGRESS_EVERY: usize = 10;

/// The exit code of an interrupted `jobs run` (128 + SIGINT, as shells report it).
pub const INTERRUPTED: u8 = 130;

/// Runs a `jobs` command; `Ok(Some(code))` asks for that exit code after printing.
pub fn jobs(
    args: &CatalogArgs,
    principal: &PrincipalArgs,
    command: JobsCommand,
) -> Result<Option<u8>, crate::CliError> {
    let service = args.open()?;
    let principal = principal.principal.as_deref();
    match command {
        JobsCommand::List => {
            let list = service.catalog().jobs()?;
            print_jobs(args, &list);
            if list.is_empty() && !args.json {
                outln!("no jobs");
            }
        }
        JobsCommand::Cancel { id } => print_jobs(args, &[service.cancel_job(principal, id)?]),
        JobsCommand::Retry { id } => print_jobs(args, &[service.retry_job(principal, id)?]),
        JobsCommand::Run { now } => {
            let now_ms = match now {
                Some(t) => jobs::parse_time(&t)?,
                None => jobs::now_ms(),
            };
            let queue = service.job_queue(now_ms)?;
            if queue.due == 0 {
                print_jobs(args, &[]);
                let mut why = "no jobs due".to_string();
                if queue.leased > 0 {
                    why.push_str(&format!(
                        "; {} job{} leased by another runner until {}",
                        queue.leased,
                        if queue.leased == 1 { " is" } else { "s are" },
                        queue
                            .leased_until_ms
                            .map(jobs::format_time)
                            .unwrap_or_default()
                    ));
                }
                if let Some(next) = queue.next_due_ms {
                    why.push_str(&format!(
                        "; the next falls due at {}",
                        jobs::format_time(next)
                    ));
                }
                if args.json {
                    eprintln!("pfxkit: {why}");
                } else {
                    outln!("{why}");
                }
                return Ok(None);
            }
            let due = queue.due;
            // A first SIGINT/SIGTERM asks the runner to stop after the jobs it is running; a
            // second one ends the process at once (the jobs' leases then expire).
            let stop = Arc::new(AtomicBool::new(false));
            for signal in [SIGINT, SIGTERM] {
                signal_hook::flag::register_conditional_shutdown(
                    signal,
                    i32::from(INTERRUPTED),
                    Arc::clone(&stop),
                )
                .and_then(|_| signal_hook::flag::register(signal, Arc::clone(&stop)))
                .map_err(|e| Error::Invalid(format!("cannot handle signals: {e}")))?;
            }
            let terminal = std::io::stderr().is_terminal();
            let bar = (!args.json && due >= PROGRESS_THRESHOLD && terminal)
                .then(|| indicatif::ProgressBar::new(due as u64));
            let finished = std::sync::atomic::AtomicUsize::new(0);
            let ran = service.run_jobs_until(
                now_ms,
                &|_| {
                    let n = finished.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                    if let Some(b) = &bar {
                        b.inc(1);
                    } else if !terminal && n.is_multiple_of(PROGRESS_EVERY) {
                        eprintln!("pfxkit: ran {n} of {due} jobs");
                    }
                },
                &stop,
            )?;
            if let Some(b) = bar {
                b.finish_and_clear();
            }
            print_jobs(args, &ran);
            if stop.load(Ordering::SeqCst) {
                eprintln!(
                    "pfxkit: interrupted: {} jobs ran; the jobs not started were released",
                    ran.len()
                );
                return Ok(Some(INTERRUPTED));
            }
            // The contract's exit 1 covers "a failed job": scripts must not read success here.
            let failed = ran
                .iter()
                .filter(|j| j.result == Some(pfxkit_catalog::JobResult::Failure))
                .count();
            if failed > 0 {
                return Err(Error::Invalid(format!(
                    "{failed} of {} jobs failed (see their messages)",
                    ran.len()
                ))
                .into());
            }
            if !args.json {
                outln!(
                    "ran {} job{}, all succeeded",
                    ran.len(),
                    if ran.len() == 1 { "" } else { "s" }
                );
            }
        }
    }
    Ok(None)
}

fn emit(args: &CatalogArgs, value: Value, text: impl FnOnce()) {
    if args.json {
        print_json(&value);
    } else {
        text();
    }
}

pub fn demo(json: bool, dir: Option<PathBuf>) -> crate::CliResult {
    let temp;
    let dir = match dir {
        Some(d) => d,
        None => {
            temp = TempDir::new()?;
            temp.0.clone()
        }
    };
    let report = pfxkit_catalog::demo::run(&dir, &mut |line| {
        if !json {
            outln!("• {line}");
        }
    })?;
    let replace = outcome_json(&report.replace);
    if json {
        let checks: Vec<Value> = report
            .checks
            .iter()
            .map(|(what, ok)| json!({ "Check": what, "Held": ok }))
            .collect();
        print_json(&json!({ "Replace": replace, "Checks": checks, "Passed": report.passed() }));
    } else {
        outln!(
            "Replace response:\n{}",
            serde_json::to_string_pretty(&replace).unwrap_or_default()
        );
        for (what, ok) in &report.checks {
            outln!("{} {what}", if *ok { "✔" } else { "✘" });
        }
        outln!(
            "{}",
            if report.passed() {
                "demo passed"
            } else {
                "demo FAILED"
            }
        );
    }
    if report.passed() {
        Ok(())
    } else {
        Err(Error::Invalid("the demo's checks did not all hold".into()).into())
    }
}

/// A directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Result<Self, Error> {
        let mut random = [0u8; 8];
        getrandom::fill(&mut random).map_err(|e| Error::Invalid(format!("random: {e}")))?;
        let path =
            std::env::temp_dir().join(format!("pfxkit-demo-{}", pfxkit::cert::hex_lower(&random)));
        std::fs::create_dir_all(&path).map_err(|e| Error::io(&path, e))?;
        Ok(TempDir(path))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
