//! The shared catalog: PostgreSQL, for many `pfxkit` processes on many hosts.
//!
//! - **Connections**: a small bounded pool of synchronous `postgres` clients, each keeping its
//!   prepared statements. A connection that failed (PostgreSQL restarted, the network broke) is
//!   dropped, and an idle one is pinged before reuse, so after a restart the next request opens a
//!   fresh connection: requests made while the server is down fail with
//!   [`Error::Unavailable`], later ones work without restarting pfxkit.
//! - **Migrations**: numbered, recorded in `pfxkit_schema`, applied by
//!   [`PostgresCatalog::migrate`] (`catalog init`) in one transaction under an advisory lock, so
//!   two hosts migrating at once apply each version once. [`PostgresCatalog::connect`] never
//!   migrates; it refuses a schema older or newer than this build.
//! - **Jobs**: a claim is one short transaction that locks the rows of the stores it takes
//!   jobs from with `SELECT … FOR UPDATE SKIP LOCKED` (runners claim different stores in
//!   parallel, never waiting on each other), then walks those stores' open jobs in one windowed
//!   `UPDATE`, so two runners never claim the same job, and a job is never claimed while an
//!   older job of its store, by (scheduled time, id), is waiting or leased to another runner. Leases are kept on the database's clock and record their holder (the runner's id).
//!   Every claim also bumps the job's lease number; a completion carrying an older lease number
//!   (its runner was presumed dead and the job was taken over) is refused and recorded in
//!   `job_refusals` with the holder that took it over.
//! - **Secrets** stay sealed exactly as in SQLite (the catalog key never reaches the database),
//!   so a `pg_dump` holds no password or key bytes.
//!
//! The connection string may carry a password; it is never logged nor put in an error.

use std::collections::HashMap;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use ::postgres::{Client, Config, GenericClient, NoTls, Statement};

use super::*;
use crate::error::{Error, Result};
use pfxkit::cert::{Certificate, now_millis};

/// Ordered schema migrations; entry `i` moves the schema from version `i` to `i + 1`. Released
/// entries are never edited, only appended to.
const MIGRATIONS: &[&str] = &[
    r"
CREATE TABLE certificates (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sha256      TEXT NOT NULL UNIQUE,
    sha1        TEXT NOT NULL,
    der         BYTEA NOT NULL,
    subject     TEXT NOT NULL,
    issuer      TEXT NOT NULL,
    serial      TEXT NOT NULL,
    not_before  BIGINT NOT NULL,
    not_after   BIGINT NOT NULL,
    chain       TEXT NOT NULL DEFAULT '',
    created_ms  BIGINT NOT NULL
);
CREATE INDEX certificates_sha1 ON certificates(sha1);
CREATE TABLE requests (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    certificate_id  BIGINT NOT NULL REFERENCES certificates(id),
    kind            TEXT NOT NULL,
    created_ms      BIGINT NOT NULL
);
CREATE TABLE staged_keys (
    certificate_id  BIGINT PRIMARY KEY REFERENCES certificates(id),
    sealed          BYTEA NOT NULL
);
CREATE TABLE cas (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    certificate_id  BIGINT NOT NULL REFERENCES certificates(id),
    role            TEXT NOT NULL,
    sealed_key      BYTEA NOT NULL
);
CREATE TABLE containers (
    id    BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name  TEXT NOT NULL UNIQUE
);
CREATE TABLE stores (
    id              TEXT PRIMARY KEY,
    seq             BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
    store_type      TEXT NOT NULL,
    path            TEXT NOT NULL,
    key_path        TEXT,
    container_id    BIGINT REFERENCES containers(id),
    password_kind   TEXT NOT NULL,
    password        BYTEA
);
CREATE TABLE locations (
    store_id        TEXT NOT NULL REFERENCES stores(id),
    alias           TEXT NOT NULL,
    certificate_id  BIGINT NOT NULL REFERENCES certificates(id),
    PRIMARY KEY (store_id, alias)
);
CREATE INDEX locations_certificate ON locations(certificate_id);
CREATE TABLE grants (
    principal     TEXT NOT NULL,
    container_id  BIGINT REFERENCES containers(id),
    permission    TEXT NOT NULL,
    UNIQUE NULLS NOT DISTINCT (principal, container_id, permission)
);
CREATE TABLE jobs (
    id                      BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    store_id                TEXT NOT NULL REFERENCES stores(id),
    operation               TEXT NOT NULL,
    certificate_id          BIGINT NOT NULL REFERENCES certificates(id),
    alias                   TEXT,
    overwrite               BOOLEAN NOT NULL,
    sealed_entry_password   BYTEA,
    scheduled_ms            BIGINT NOT NULL,
    principal               TEXT,
    status                  TEXT NOT NULL,
    result                  TEXT,
    message                 TEXT,
    claimed_ms              BIGINT,
    lease_until_ms          BIGINT,
    lease                   BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX jobs_due ON jobs(status, scheduled_ms);
CREATE INDEX jobs_open_by_store ON jobs(store_id, id) WHERE status IN ('Waiting', 'InProcess');
CREATE TABLE job_refusals (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id      BIGINT NOT NULL REFERENCES jobs(id),
    lease       BIGINT NOT NULL,
    current     BIGINT NOT NULL,
    status      TEXT NOT NULL,
    result      TEXT NOT NULL,
    message     TEXT NOT NULL,
    refused_ms  BIGINT NOT NULL
);
CREATE TABLE pfxkit_meta (
    name   TEXT PRIMARY KEY,
    value  BYTEA NOT NULL
);
",
    r"
-- Who staged a certificate's key; which runner holds a job's lease.
ALTER TABLE certificates ADD COLUMN owner TEXT;
ALTER TABLE jobs ADD COLUMN claimed_by TEXT;
ALTER TABLE job_refusals ADD COLUMN holder TEXT;
-- A lease ends a fixed time after its claim: the claim time is enough.
ALTER TABLE jobs DROP COLUMN lease_until_ms;
-- Jobs run in (scheduled time, id) order per store, no longer in id order.
DROP INDEX jobs_open_by_store;
CREATE INDEX jobs_open_by_store ON jobs(store_id, scheduled_ms, id)
    WHERE status IN ('Waiting', 'InProcess');
",
    r"
-- Renewal: who renewed whom, policies, and their decisions. A certificate renewed by hand may
-- be renewed again; a policy renews it only while it has no successor at all, and at most once
-- (the partial unique index is what makes two concurrent policy checks renew it once).
CREATE TABLE renewals (
    successor_id    BIGINT PRIMARY KEY REFERENCES certificates(id),
    predecessor_id  BIGINT NOT NULL REFERENCES certificates(id),
    policy_id       BIGINT,
    created_ms      BIGINT NOT NULL
);
CREATE INDEX renewals_predecessor ON renewals(predecessor_id);
CREATE UNIQUE INDEX renewals_once_by_policy ON renewals(predecessor_id)
    WHERE policy_id IS NOT NULL;
CREATE INDEX certificates_not_after ON certificates(not_after);
CREATE TABLE policies (
    id                    BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    container_id          BIGINT REFERENCES containers(id),
    renew_before_secs     BIGINT NOT NULL,
    principal             TEXT NOT NULL,
    entry_password_kind   TEXT NOT NULL,
    entry_password        BYTEA,
    created_ms            BIGINT NOT NULL
);
-- One policy per scope; container ids start at 1, so 0 stands for the global scope.
CREATE UNIQUE INDEX policies_scope ON policies((COALESCE(container_id, 0)));
-- No foreign key to policies: the history outlives a removed policy.
CREATE TABLE policy_history (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    policy_id       BIGINT NOT NULL,
    container_id    BIGINT,
    principal       TEXT NOT NULL,
    certificate_id  BIGINT NOT NULL REFERENCES certificates(id),
    not_after       BIGINT NOT NULL,
    window_start    BIGINT NOT NULL,
    successor_id    BIGINT REFERENCES certificates(id),
    outcome         TEXT NOT NULL,
    message         TEXT,
    decided_ms      BIGINT NOT NULL
);
CREATE TABLE policy_history_stores (
    history_id  BIGINT NOT NULL REFERENCES policy_history(id),
    store_id    TEXT NOT NULL,
    scheduled   BOOLEAN NOT NULL,
    reason      TEXT,
    PRIMARY KEY (history_id, store_id)
);
",
    r"
-- Users and API tokens of `pfxkit serve`: an Argon2id hash, and tokens by their SHA-256 only.
CREATE TABLE users (
    name          TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL
);
CREATE TABLE tokens (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    principal   TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    token_hash  TEXT NOT NULL UNIQUE,
    expires_ms  BIGINT
);
",
    r"
-- Agents (fleet): the machine that runs a store's jobs, PEM stores registered for a plain
-- key, per-store inventory schedules, and the agents with their one-time token hashes.
ALTER TABLE stores ADD COLUMN machine TEXT;
ALTER TABLE stores ADD COLUMN plain_key BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE stores ADD COLUMN inventory_every BIGINT;
CREATE INDEX stores_machine ON stores(machine);
CREATE TABLE agents (
    name                    TEXT PRIMARY KEY,
    state                   TEXT NOT NULL,
    token_hash              TEXT UNIQUE,
    certificate_serial      TEXT,
    certificate_thumbprint  TEXT,
    last_seen_ms            BIGINT,
    version                 TEXT,
    jobs_done               BIGINT NOT NULL DEFAULT 0,
    jobs_failed             BIGINT NOT NULL DEFAULT 0,
    created_ms              BIGINT NOT NULL
);
",
    // 6: when a job last started and when it ended (JobHistory's OperationStart and
    // OperationEnd). `claimed_ms` already records the start; it is now kept after the lease.
    r"
ALTER TABLE jobs ADD COLUMN finished_ms BIGINT;
",
    // 7: "one file is one store" by lookup (files.rs).
    crate::files::STORE_FILES_MIGRATION,
];

use crate::files::STORE_FILES_VERSION;

/// Records the files of every store recorded before `store_files` existed.
fn record_store_files(tx: &mut ::postgres::Transaction<'_>) -> Result<(), ::postgres::Error> {
    let stores = tx
        .query(
            "SELECT id, path, key_path, machine FROM stores ORDER BY seq",
            &[],
        )?
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?)))
        .collect::<Result<_, ::postgres::Error>>()?;
    for (host, file, id) in crate::files::store_file_rows(stores) {
        tx.execute(
            "INSERT INTO store_files (host, file, store_id) VALUES ($1, $2, $3)
             ON CONFLICT (host, file) DO NOTHING",
            &[&host, &file, &id],
        )?;
    }
    Ok(())
}

/// The advisory lock key that serialises migrations (`pfxkit` in ASCII).
const MIGRATION_LOCK: i64 = 0x7066_786b_6974;

/// Connections the pool opens at most, unless [`PostgresCatalog::connect_with_pool`] says
/// otherwise.
pub const DEFAULT_POOL_SIZE: usize = 8;

/// How long a request waits for a free connection before failing with
/// [`Error::Unavailable`].
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);

/// An idle connection older than this is pinged before reuse (a restart kills it silently).
const PING_AFTER: Duration = Duration::from_millis(500);

/// Connection attempts give up after this long unless the connection string says otherwise.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Whether a `--catalog` value names a PostgreSQL database rather than a directory:
/// `postgres://…`, `postgresql://…`, or key/value connection parameters (`host=/run/pg dbname=x`).
pub fn is_connection_string(catalog: &str) -> bool {
    const KEYS: &[&str] = &[
        "host=",
        "hostaddr=",
        "port=",
        "dbname=",
        "user=",
        "password=",
        "sslmode=",
        "application_name=",
        "connect_timeout=",
        "options=",
    ];
    catalog.starts_with("postgres://")
        || catalog.starts_with("postgresql://")
        || KEYS.iter().any(|k| catalog.trim_start().starts_with(k))
}

/// Whether a PostgreSQL error means the server cannot be reached right now (as opposed to a
/// failed statement).
fn is_unavailable(e: &::postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    if let Some(code) = e.code() {
        let c = code.code();
        // 08: connection exception; 57P01-03: admin/crash shutdown, cannot connect now;
        // 53300: too many connections.
        return c.starts_with("08") || matches!(c, "57P01" | "57P02" | "57P03" | "53300");
    }
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if s.is::<std::io::Error>() {
            return true;
        }
        source = s.source();
    }
    false
}

fn pg(e: &::postgres::Error) -> Error {
    if is_unavailable(e) {
        Error::Unavailable(format!("PostgreSQL: {e}"))
    } else {
        Error::Database(format!("PostgreSQL: {e}"))
    }
}

/// One pooled connection and its prepared statements.
struct Conn {
    client: Client,
    statements: HashMap<&'static str, Statement>,
    idle_since: Instant,
}

/// Prepares `sql` once per connection.
fn prepare(
    statements: &mut HashMap<&'static str, Statement>,
    client: &mut impl GenericClient,
    sql: &'static str,
) -> Result<Statement, ::postgres::Error> {
    if let Some(s) = statements.get(sql) {
        return Ok(s.clone());
    }
    let s = client.prepare(sql)?;
    statements.insert(sql, s.clone());
    Ok(s)
}

struct PoolState {
    idle: Vec<Conn>,
    open: usize,
}

struct Pool {
    config: Config,
    max: usize,
    state: Mutex<PoolState>,
    freed: Condvar,
}

impl Pool {
    fn lock(&self) -> Result<MutexGuard<'_, PoolState>> {
        self.state
            .lock()
            .map_err(|_| Error::Database("connection pool poisoned".into()))
    }

    fn connect(&self) -> Result<Conn> {
        let client = self.config.connect(NoTls).map_err(|e| pg(&e))?;
        Ok(Conn {
            client,
            statements: HashMap::new(),
            idle_since: Instant::now(),
        })
    }

    fn release_slot(&self) {
        if let Ok(mut st) = self.state.lock() {
            st.open = st.open.saturating_sub(1);
        }
        self.freed.notify_one();
    }

    fn get(&self) -> Result<Pooled<'_>> {
        let deadline = Instant::now() + ACQUIRE_TIMEOUT;
        let mut st = self.lock()?;
        loop {
            if let Some(mut conn) = st.idle.pop() {
                drop(st);
                let stale = conn.idle_since.elapsed() > PING_AFTER;
                if conn.client.is_closed()
                    || (stale && conn.client.is_valid(CONNECT_TIMEOUT).is_err())
                {
                    drop(conn);
                    self.release_slot();
                    st = self.lock()?;
                    continue;
                }
                return Ok(Pooled {
                    pool: self,
                    conn: Some(conn),
                });
            }
            if st.open < self.max {
                st.open += 1;
                drop(st);
                return match self.connect() {
                    Ok(conn) => Ok(Pooled {
                        pool: self,
                        conn: Some(conn),
                    }),
                    Err(e) => {
                        self.release_slot();
                        Err(e)
                    }
                };
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Error::Unavailable(format!(
                    "all {} catalog connections stayed busy for {} s",
                    self.max,
                    ACQUIRE_TIMEOUT.as_secs()
                )));
            }
            st = self
                .freed
                .wait_timeout(st, left)
                .map_err(|_| Error::Database("connection pool poisoned".into()))?
                .0;
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        let idle = match self.state.get_mut() {
            Ok(st) => std::mem::take(&mut st.idle),
            Err(poisoned) => std::mem::take(&mut poisoned.into_inner().idle),
        };
        // The synchronous client closes its connection by blocking on its own runtime, which
        // panics when the catalog is dropped on an async thread (`pfxkit serve` ending). A
        // plain thread of its own is never one; joining it keeps the close before we return.
        if !idle.is_empty() {
            let _ = std::thread::spawn(move || drop(idle)).join();
        }
    }
}

/// A connection borrowed from the pool; returned on drop unless it broke.
struct Pooled<'a> {
    pool: &'a Pool,
    conn: Option<Conn>,
}

impl Pooled<'_> {
    fn discard(&mut self) {
        if self.conn.take().is_some() {
            self.pool.release_slot();
        }
    }
}

impl Drop for Pooled<'_> {
    fn drop(&mut self) {
        if let Some(mut conn) = self.conn.take() {
            if conn.client.is_closed() {
                drop(conn);
                self.pool.release_slot();
                return;
            }
            conn.idle_since = Instant::now();
            if let Ok(mut st) = self.pool.state.lock() {
                st.idle.push(conn);
            }
            self.pool.freed.notify_one();
        }
    }
}

/// The PostgreSQL catalog.
pub struct PostgresCatalog {
    pool: Pool,
    /// Lease numbers of the jobs this instance claimed and has not finished, so that
    /// [`Catalog::finish_job`] can tell whether the lease is still ours.
    leases: Mutex<HashMap<JobId, i64>>,
}

impl fmt::Debug for PostgresCatalog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The configuration may hold a password: show where, not how.
        f.debug_struct("PostgresCatalog")
            .field("hosts", &self.pool.config.get_hosts())
            .field("dbname", &self.pool.config.get_dbname())
            .field("pool", &self.pool.max)
            .finish_non_exhaustive()
    }
}

impl PostgresCatalog {
    /// Connects to the catalog at `conninfo` (a `postgres://` URL or key/value parameters) with a
    /// pool of [`DEFAULT_POOL_SIZE`] connections, and checks that its schema is this build's.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a malformed connection string or a catalog not initialised (or
    /// newer than this build); [`Error::Unavailable`] when PostgreSQL cannot be reached.
    pub fn connect(conninfo: &str) -> Result<Self> {
        Self::connect_with_pool(conninfo, DEFAULT_POOL_SIZE)
    }

    /// [`connect`](Self::connect) with at most `pool_size` (≥ 1) connections.
    ///
    /// # Errors
    /// As [`connect`](Self::connect).
    pub fn connect_with_pool(conninfo: &str, pool_size: usize) -> Result<Self> {
        let catalog = Self::unchecked(conninfo, pool_size)?;
        let version = catalog.schema_version()?;
        if version < MIGRATIONS.len() {
            return Err(Error::Invalid(format!(
                "the PostgreSQL catalog is at schema version {version}, this pfxkit needs {} \
                 (run `pfxkit catalog init` to create or migrate it)",
                MIGRATIONS.len()
            )));
        }
        if version > MIGRATIONS.len() {
            return Err(Error::Invalid(format!(
                "the PostgreSQL catalog is at schema version {version}, newer than this pfxkit \
                 knows ({}); upgrade pfxkit",
                MIGRATIONS.len()
            )));
        }
        Ok(catalog)
    }

    /// Connects and brings the schema up to date (`catalog init`): safe to run any number of
    /// times, from any number of hosts at once.
    ///
    /// # Errors
    /// As [`connect`](Self::connect); [`Error::Database`] when a migration fails (nothing of it
    /// is applied).
    pub fn migrate(conninfo: &str) -> Result<Self> {
        let catalog = Self::unchecked(conninfo, DEFAULT_POOL_SIZE)?;
        catalog.with(|c| {
            let mut tx = c.client.transaction()?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
            tx.batch_execute(
                "CREATE TABLE IF NOT EXISTS pfxkit_schema (
                     version     INTEGER PRIMARY KEY,
                     applied_at  TIMESTAMPTZ NOT NULL DEFAULT now()
                 )",
            )?;
            let version: i32 = tx
                .query_one("SELECT COALESCE(MAX(version), 0) FROM pfxkit_schema", &[])?
                .try_get(0)?;
            for (i, sql) in MIGRATIONS
                .iter()
                .enumerate()
                .skip(usize::try_from(version).unwrap_or(0))
            {
                tx.batch_execute(sql)?;
                if i + 1 == STORE_FILES_VERSION {
                    record_store_files(&mut tx)?;
                }
                let v = i32::try_from(i + 1).unwrap_or(i32::MAX);
                tx.execute("INSERT INTO pfxkit_schema (version) VALUES ($1)", &[&v])?;
            }
            tx.commit()
        })?;
        Ok(catalog)
    }

    fn unchecked(conninfo: &str, pool_size: usize) -> Result<Self> {
        let mut config: Config = conninfo.parse().map_err(|_| {
            // The parser's message may quote the string, password included.
            Error::Invalid(
                "malformed PostgreSQL connection string (expected postgres://USER@HOST/DB or \
                 host=… dbname=… parameters)"
                    .into(),
            )
        })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("pfxkit");
        }
        Ok(PostgresCatalog {
            pool: Pool {
                config,
                max: pool_size.max(1),
                state: Mutex::new(PoolState {
                    idle: Vec::new(),
                    open: 0,
                }),
                freed: Condvar::new(),
            },
            leases: Mutex::new(HashMap::new()),
        })
    }

    /// The applied schema version (0: none).
    ///
    /// # Errors
    /// Database errors.
    pub fn schema_version(&self) -> Result<usize> {
        let v: i32 = self.with(|c| {
            let exists: bool = c
                .client
                .query_one("SELECT to_regclass('pfxkit_schema') IS NOT NULL", &[])?
                .try_get(0)?;
            if !exists {
                return Ok(0);
            }
            c.client
                .query_one("SELECT COALESCE(MAX(version), 0) FROM pfxkit_schema", &[])?
                .try_get(0)
        })?;
        Ok(usize::try_from(v).unwrap_or(0))
    }

    /// A catalog-wide value by name (e.g. the sealed key check); never secret in the clear.
    ///
    /// # Errors
    /// Database errors.
    pub fn meta(&self, name: &str) -> Result<Option<Vec<u8>>> {
        self.with(|c| {
            let st = prepare(
                &mut c.statements,
                &mut c.client,
                "SELECT value FROM pfxkit_meta WHERE name = $1",
            )?;
            c.client
                .query_opt(&st, &[&name])?
                .map(|r| r.try_get(0))
                .transpose()
        })
    }

    /// Sets a catalog-wide value unless it is set already; returns the value now stored.
    ///
    /// # Errors
    /// Database errors.
    pub fn meta_insert_once(&self, name: &str, value: &[u8]) -> Result<Vec<u8>> {
        self.with(|c| {
            c.client.execute(
                "INSERT INTO pfxkit_meta (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
                &[&name, &value],
            )?;
            c.client
                .query_one("SELECT value FROM pfxkit_meta WHERE name = $1", &[&name])?
                .try_get(0)
        })
    }

    /// Refused completions recorded for a job: `(lease presented, lease current, message)`.
    ///
    /// # Errors
    /// Database errors.
    pub fn refusals(&self, job: JobId) -> Result<Vec<(i64, i64, String)>> {
        self.with(|c| {
            c.client
                .query(
                    "SELECT lease, current, message FROM job_refusals WHERE job_id = $1 ORDER BY id",
                    &[&job],
                )?
                .iter()
                .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
                .collect()
        })
    }

    /// Runs `f` on a pooled connection; a connection that failed is dropped, not reused.
    fn with<T>(&self, f: impl FnOnce(&mut Conn) -> Result<T, ::postgres::Error>) -> Result<T> {
        let mut pooled = self.pool.get()?;
        let Some(conn) = pooled.conn.as_mut() else {
            return Err(Error::Database("connection pool lost a connection".into()));
        };
        match f(conn) {
            Ok(v) => Ok(v),
            Err(e) => {
                let err = pg(&e);
                if matches!(err, Error::Unavailable(_)) {
                    pooled.discard();
                }
                Err(err)
            }
        }
    }

    /// The rows a statement (prepared once per connection) selects, each read by `row`.
    fn query_all<T>(
        &self,
        sql: &'static str,
        params: &[&(dyn ::postgres::types::ToSql + Sync)],
        row: impl Fn(&::postgres::Row) -> Result<T, ::postgres::Error>,
    ) -> Result<Vec<T>> {
        self.with(|c| {
            let st = prepare(&mut c.statements, &mut c.client, sql)?;
            c.client.query(&st, params)?.iter().map(row).collect()
        })
    }

    /// The row a statement (prepared once per connection) selects, if any, read by `row`.
    fn query_opt<T>(
        &self,
        sql: &'static str,
        params: &[&(dyn ::postgres::types::ToSql + Sync)],
        row: impl Fn(&::postgres::Row) -> Result<T, ::postgres::Error>,
    ) -> Result<Option<T>> {
        self.with(|c| {
            let st = prepare(&mut c.statements, &mut c.client, sql)?;
            c.client
                .query_opt(&st, params)?
                .as_ref()
                .map(row)
                .transpose()
        })
    }

    fn lease_of(&self, job: JobId) -> Option<i64> {
        self.leases.lock().ok().and_then(|l| l.get(&job).copied())
    }
}

fn ms(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn insert_certificate(
    statements: &mut HashMap<&'static str, Statement>,
    tx: &mut ::postgres::Transaction<'_>,
    cert: &Certificate,
    chain: &str,
) -> Result<i64, ::postgres::Error> {
    let insert = prepare(
        statements,
        tx,
        "INSERT INTO certificates (sha256, sha1, der, subject, issuer, serial, not_before, not_after, chain, created_ms)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
         ON CONFLICT (sha256) DO NOTHING RETURNING id",
    )?;
    let sha256 = cert.sha256_hex();
    let inserted = tx.query_opt(
        &insert,
        &[
            &sha256,
            &cert.sha1_hex(),
            &cert.der(),
            &cert.subject(),
            &cert.issuer(),
            &cert.serial_hex(),
            &ms(cert.not_before_unix()),
            &ms(cert.not_after_unix()),
            &chain,
            &now_millis(),
        ],
    )?;
    if let Some(row) = inserted {
        return row.try_get(0);
    }
    let update = prepare(
        statements,
        tx,
        "UPDATE certificates SET chain = CASE WHEN chain = '' THEN $2 ELSE chain END
         WHERE sha256 = $1 RETURNING id",
    )?;
    tx.query_one(&update, &[&sha256, &chain])?.try_get(0)
}

/// Inserts a certificate, its chain, its staged key (owned by `owner` if first staged) and a
/// request inside `tx`.
fn insert_with_chain(
    statements: &mut HashMap<&'static str, Statement>,
    tx: &mut ::postgres::Transaction<'_>,
    certificate: &Certificate,
    chain: &[Certificate],
    sealed_key: Option<&[u8]>,
    request: Option<RequestKind>,
    owner: Option<&str>,
) -> Result<(CertificateId, Option<RequestId>), ::postgres::Error> {
    // Chain certificates first, each with the rest of the chain above it.
    let mut ids: Vec<i64> = Vec::with_capacity(chain.len());
    for cert in chain.iter().rev() {
        let above: Vec<String> = ids.iter().rev().map(i64::to_string).collect();
        ids.push(insert_certificate(statements, tx, cert, &above.join(","))?);
    }
    ids.reverse();
    let chain_text: Vec<String> = ids.iter().map(i64::to_string).collect();
    let id = insert_certificate(statements, tx, certificate, &chain_text.join(","))?;
    if let Some(key) = sealed_key {
        // Whoever first stages the key owns the certificate; staging it again (the
        // same key: it matches the certificate) keeps the first owner. Locking the
        // certificate's row first orders two hosts staging the same key at once (the
        // UPDATE's own snapshot then sees the other's staged key).
        let lock = prepare(
            statements,
            tx,
            "SELECT id FROM certificates WHERE id = $1 FOR UPDATE",
        )?;
        tx.query_one(&lock, &[&id])?;
        let own = prepare(
            statements,
            tx,
            "UPDATE certificates SET owner = $1 WHERE id = $2
               AND NOT EXISTS (SELECT 1 FROM staged_keys WHERE certificate_id = $2)",
        )?;
        tx.execute(&own, &[&owner, &id])?;
        let st = prepare(
            statements,
            tx,
            "INSERT INTO staged_keys (certificate_id, sealed) VALUES ($1, $2)
             ON CONFLICT (certificate_id) DO UPDATE SET sealed = excluded.sealed",
        )?;
        tx.execute(&st, &[&id, &key])?;
    }
    let request_id = match request {
        Some(kind) => {
            let st = prepare(
                statements,
                tx,
                "INSERT INTO requests (certificate_id, kind, created_ms) VALUES ($1, $2, $3) RETURNING id",
            )?;
            let row = tx.query_one(&st, &[&id, &kind.name(), &now_millis()])?;
            Some(row.try_get::<_, i64>(0)?)
        }
        None => None,
    };
    Ok((id, request_id))
}

/// A secret's columns: how it is kept, and the sealed bytes or the reference.
fn secret_columns(secret: &StorePasswordRecord) -> (&'static str, Option<Vec<u8>>) {
    match secret {
        StorePasswordRecord::None => ("none", None),
        StorePasswordRecord::Sealed(p) => ("sealed", Some(p.clone())),
        StorePasswordRecord::Reference(r) => ("reference", Some(r.as_bytes().to_vec())),
    }
}

/// The inverse of [`secret_columns`].
fn secret_from_columns(
    kind: &str,
    value: Option<Vec<u8>>,
    context: &str,
) -> Result<StorePasswordRecord> {
    Ok(match (kind, value) {
        ("sealed", Some(p)) => StorePasswordRecord::Sealed(p),
        ("reference", Some(p)) => StorePasswordRecord::Reference(
            String::from_utf8(p)
                .map_err(|_| Error::malformed(context, "password reference is not UTF-8"))?,
        ),
        _ => StorePasswordRecord::None,
    })
}

const SELECT_CERT: &str = "SELECT c.id, c.der, c.chain, EXISTS(SELECT 1 FROM staged_keys k WHERE k.certificate_id = c.id), c.owner FROM certificates c";

type RawCert = (i64, Vec<u8>, String, bool, Option<String>);

fn raw_cert(row: &::postgres::Row) -> Result<RawCert, ::postgres::Error> {
    Ok((
        row.try_get(0)?,
        row.try_get(1)?,
        row.try_get(2)?,
        row.try_get(3)?,
        row.try_get(4)?,
    ))
}

fn to_record(raw: RawCert) -> Result<CertificateRecord> {
    let (id, der, chain, has_staged_key, owner) = raw;
    Ok(CertificateRecord {
        id,
        certificate: Certificate::from_der(&der)?,
        chain: chain
            .split(',')
            .filter(|s| !s.is_empty())
            .filter_map(|s| s.parse().ok())
            .collect(),
        has_staged_key,
        owner,
    })
}

type RawJob = (
    JobId,
    NewJob,
    String,
    Option<String>,
    Option<String>,
    i64,
    Option<String>,
    Option<i64>,
    Option<i64>,
    String,
);

const JOB_COLUMNS: &str = "id, store_id, operation, certificate_id, alias, overwrite, sealed_entry_password, scheduled_ms, principal, status, result, message, lease, claimed_by, claimed_ms, finished_ms";

fn raw_job(row: &::postgres::Row) -> Result<RawJob, ::postgres::Error> {
    Ok((
        row.try_get(0)?,
        NewJob {
            store_id: row.try_get(1)?,
            operation: JobOperation::Add,
            certificate_id: row.try_get(3)?,
            alias: row.try_get(4)?,
            overwrite: row.try_get(5)?,
            sealed_entry_password: row.try_get(6)?,
            scheduled_ms: row.try_get(7)?,
            principal: row.try_get(8)?,
        },
        row.try_get(9)?,
        row.try_get(10)?,
        row.try_get(11)?,
        row.try_get(12)?,
        row.try_get(13)?,
        row.try_get(14)?,
        row.try_get(15)?,
        row.try_get(2)?,
    ))
}

fn to_job(raw: RawJob) -> Result<(JobRecord, i64)> {
    let (id, mut job, status, result, message, lease, claimed_by, claimed_ms, finished_ms, op) =
        raw;
    job.operation = op.parse()?;
    let status: JobStatus = status.parse()?;
    let leased = status == JobStatus::InProcess;
    Ok((
        JobRecord {
            id,
            job,
            status,
            result: result.map(|r| r.parse()).transpose()?,
            message,
            claimed_by: claimed_by.filter(|_| leased),
            claimed_ms: claimed_ms.filter(|_| leased),
            started_ms: claimed_ms,
            finished_ms,
        },
        lease,
    ))
}

type RawStore = (
    String,
    String,
    String,
    Option<String>,
    Option<i64>,
    String,
    Option<Vec<u8>>,
    (Option<String>, bool, Option<i64>),
);

fn raw_store(row: &::postgres::Row) -> Result<RawStore, ::postgres::Error> {
    Ok((
        row.try_get(0)?,
        row.try_get(1)?,
        row.try_get(2)?,
        row.try_get(3)?,
        row.try_get(4)?,
        row.try_get(5)?,
        row.try_get(6)?,
        (row.try_get(7)?, row.try_get(8)?, row.try_get(9)?),
    ))
}

fn to_store(raw: RawStore) -> Result<StoreRecord> {
    let (id, store_type, path, key_path, container_id, kind, password, fleet) = raw;
    let (machine, plain_key, inventory_every_secs) = fleet;
    let password = secret_from_columns(&kind, password, "catalog store record")?;
    Ok(StoreRecord {
        id,
        store_type: store_type.parse()?,
        path: path.into(),
        key_path: key_path.map(PathBuf::from),
        container_id,
        password,
        machine,
        plain_key,
        inventory_every_secs,
    })
}

const SELECT_STORE: &str = "SELECT id, store_type, path, key_path, container_id, password_kind, password, machine, plain_key, inventory_every FROM stores";

const SELECT_AGENT: &str = "SELECT name, state, token_hash IS NOT NULL, certificate_serial, certificate_thumbprint, last_seen_ms, version, jobs_done, jobs_failed, created_ms FROM agents";

fn raw_agent(r: &::postgres::Row) -> Result<(AgentRecord, String), ::postgres::Error> {
    Ok((
        AgentRecord {
            name: r.try_get(0)?,
            state: AgentState::Registered,
            token_pending: r.try_get(2)?,
            certificate_serial: r.try_get(3)?,
            certificate_thumbprint: r.try_get(4)?,
            last_seen_ms: r.try_get(5)?,
            version: r.try_get(6)?,
            jobs_done: r.try_get(7)?,
            jobs_failed: r.try_get(8)?,
            created_ms: r.try_get(9)?,
        },
        r.try_get(1)?,
    ))
}

fn to_agent((mut agent, state): (AgentRecord, String)) -> Result<AgentRecord> {
    agent.state = state.parse()?;
    Ok(agent)
}

impl Catalog for PostgresCatalog {
    fn add_certificate(
        &self,
        certificate: &Certificate,
        chain: &[Certificate],
        sealed_key: Option<&[u8]>,
        request: Option<RequestKind>,
        owner: Option<&str>,
    ) -> Result<(CertificateRecord, Option<RequestId>)> {
        let (id, request_id) = self.with(|c| {
            let mut tx = c.client.transaction()?;
            let (id, request_id) = insert_with_chain(
                &mut c.statements,
                &mut tx,
                certificate,
                chain,
                sealed_key,
                request,
                owner,
            )?;
            tx.commit()?;
            Ok((id, request_id))
        })?;
        let record = self
            .certificate(id)?
            .ok_or_else(|| Error::Database("certificate vanished".into()))?;
        Ok((record, request_id))
    }

    fn certificate(&self, id: CertificateId) -> Result<Option<CertificateRecord>> {
        const SQL: &str = "SELECT c.id, c.der, c.chain, EXISTS(SELECT 1 FROM staged_keys k WHERE k.certificate_id = c.id), c.owner FROM certificates c WHERE c.id = $1";
        let raw = self.query_opt(SQL, &[&id], raw_cert)?;
        raw.map(to_record).transpose()
    }

    fn certificate_by_thumbprint(&self, thumbprint: &str) -> Result<Option<CertificateRecord>> {
        const SQL: &str = "SELECT c.id, c.der, c.chain, EXISTS(SELECT 1 FROM staged_keys k WHERE k.certificate_id = c.id), c.owner FROM certificates c WHERE c.sha1 = $1 OR c.sha256 = $1 ORDER BY c.id LIMIT 1";
        debug_assert!(SQL.starts_with(SELECT_CERT));
        let t = thumbprint.to_ascii_lowercase();
        let raw = self.query_opt(SQL, &[&t], raw_cert)?;
        raw.map(to_record).transpose()
    }

    fn certificate_by_request(&self, request: RequestId) -> Result<Option<CertificateRecord>> {
        let id: Option<i64> = self.with(|c| {
            let st = prepare(
                &mut c.statements,
                &mut c.client,
                "SELECT certificate_id FROM requests WHERE id = $1",
            )?;
            c.client
                .query_opt(&st, &[&request])?
                .map(|r| r.try_get(0))
                .transpose()
        })?;
        match id {
            Some(id) => self.certificate(id),
            None => Ok(None),
        }
    }

    fn staged_key(&self, certificate: CertificateId) -> Result<Option<Vec<u8>>> {
        self.with(|c| {
            let st = prepare(
                &mut c.statements,
                &mut c.client,
                "SELECT sealed FROM staged_keys WHERE certificate_id = $1",
            )?;
            c.client
                .query_opt(&st, &[&certificate])?
                .map(|r| r.try_get(0))
                .transpose()
        })
    }

    fn add_ca(&self, certificate: CertificateId, role: CaRole, sealed_key: &[u8]) -> Result<()> {
        let role = match role {
            CaRole::Root => "root",
            CaRole::Intermediate => "intermediate",
        };
        self.with(|c| {
            c.client
                .execute(
                    "INSERT INTO cas (certificate_id, role, sealed_key) VALUES ($1, $2, $3)",
                    &[&certificate, &role, &sealed_key],
                )
                .map(|_| ())
        })
    }

    fn issuing_ca(&self) -> Result<Option<CaRecord>> {
        let raw: Option<(i64, String, Vec<u8>)> = self.with(|c| {
            let st = prepare(
                &mut c.statements,
                &mut c.client,
                "SELECT certificate_id, role, sealed_key FROM cas
                 ORDER BY CASE role WHEN 'intermediate' THEN 0 ELSE 1 END, id DESC LIMIT 1",
            )?;
            c.client
                .query_opt(&st, &[])?
                .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
                .transpose()
        })?;
        Ok(raw.map(|(certificate_id, role, sealed_key)| CaRecord {
            certificate_id,
            role: if role == "intermediate" {
                CaRole::Intermediate
            } else {
                CaRole::Root
            },
            sealed_key,
        }))
    }

    fn add_container(&self, name: &str) -> Result<ContainerRecord> {
        let id: Option<i64> = self.with(|c| {
            c.client
                .query_opt(
                    "INSERT INTO containers (name) VALUES ($1) ON CONFLICT (name) DO NOTHING RETURNING id",
                    &[&name],
                )?
                .map(|r| r.try_get(0))
                .transpose()
        })?;
        let id = id.ok_or_else(|| Error::Invalid(format!("container '{name}' already exists")))?;
        Ok(ContainerRecord {
            id,
            name: name.to_string(),
        })
    }

    fn container_by_name(&self, name: &str) -> Result<Option<ContainerRecord>> {
        self.with(|c| {
            let st = prepare(
                &mut c.statements,
                &mut c.client,
                "SELECT id, name FROM containers WHERE name = $1",
            )?;
            c.client
                .query_opt(&st, &[&name])?
                .map(|r| {
                    Ok(ContainerRecord {
                        id: r.try_get(0)?,
                        name: r.try_get(1)?,
                    })
                })
                .transpose()
        })
    }

    fn add_store(&self, store: &StoreRecord) -> Result<()> {
        let (kind, password) = secret_columns(&store.password);
        let path = store.path.to_string_lossy().into_owned();
        let key_path = store
            .key_path
            .as_ref()
            .map(|p| p.to_string_lossy().into_owned());
        let machine = store.machine.as_deref();
        let host = crate::files::store_host(machine);
        let mut files =
            crate::files::store_file_keys(&store.path, store.key_path.as_deref(), machine);
        // One order for every writer: two registrations sharing two files cannot deadlock.
        files.sort();
        let taken: Option<(String, String)> = self.with(|c| {
            let mut tx = c.client.transaction()?;
            tx.execute(
                "INSERT INTO stores (id, store_type, path, key_path, container_id, password_kind,
                     password, machine, plain_key, inventory_every)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                &[
                    &store.id,
                    &store.store_type.name(),
                    &path,
                    &key_path,
                    &store.container_id,
                    &kind,
                    &password,
                    &store.machine,
                    &store.plain_key,
                    &store.inventory_every_secs,
                ],
            )?;
            for file in &files {
                // A concurrent registration of the same file makes this wait for its outcome:
                // exactly one of them records it.
                let inserted = tx.execute(
                    "INSERT INTO store_files (host, file, store_id) VALUES ($1, $2, $3)
                     ON CONFLICT (host, file) DO NOTHING",
                    &[&host, file, &store.id],
                )?;
                if inserted == 0 {
                    let owner: String = tx
                        .query_one(
                            "SELECT store_id FROM store_files WHERE host = $1 AND file = $2",
                            &[&host, file],
                        )?
                        .try_get(0)?;
                    // Dropping the transaction rolls the store row back.
                    return Ok(Some((file.clone(), owner)));
                }
            }
            tx.commit()?;
            Ok(None)
        })?;
        match taken {
            Some((file, owner)) => Err(one_file_one_store(&file, &owner)),
            None => Ok(()),
        }
    }

    fn store(&self, id: &str) -> Result<Option<StoreRecord>> {
        const SQL: &str = "SELECT id, store_type, path, key_path, container_id, password_kind, password, machine, plain_key, inventory_every FROM stores WHERE id = $1";
        debug_assert!(SQL.starts_with(SELECT_STORE));
        let raw = self.query_opt(SQL, &[&id], raw_store)?;
        raw.map(to_store).transpose()
    }

    fn stores(&self) -> Result<Vec<StoreRecord>> {
        const SQL: &str = "SELECT id, store_type, path, key_path, container_id, password_kind, password, machine, plain_key, inventory_every FROM stores ORDER BY seq";
        debug_assert!(SQL.starts_with(SELECT_STORE));
        let raws: Vec<RawStore> = self.query_all(SQL, &[], raw_store)?;
        raws.into_iter().map(to_store).collect()
    }

    fn grant(&self, grant: &Grant) -> Result<()> {
        self.with(|c| {
            c.client
                .execute(
                    "INSERT INTO grants (principal, container_id, permission) VALUES ($1, $2, $3)
                     ON CONFLICT DO NOTHING",
                    &[
                        &grant.principal,
                        &grant.container_id,
                        &grant.permission.name(),
                    ],
                )
                .map(|_| ())
        })
    }

    fn container_has_grants(&self, container: ContainerId) -> Result<bool> {
        self.with(|c| {
            let st = prepare(
                &mut c.statements,
                &mut c.client,
                "SELECT EXISTS(SELECT 1 FROM grants WHERE container_id = $1)",
            )?;
            c.client.query_one(&st, &[&container])?.try_get(0)
        })
    }

    fn grants(&self, principal: &str) -> Result<Vec<Grant>> {
        let raws: Vec<(Option<i64>, String)> = self.with(|c| {
            let st = prepare(
                &mut c.statements,
                &mut c.client,
                "SELECT container_id, permission FROM grants WHERE principal = $1",
            )?;
            c.client
                .query(&st, &[&principal])?
                .iter()
                .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
                .collect()
        })?;
        raws.into_iter()
            .map(|(container_id, p)| {
                Ok(Grant {
                    principal: principal.to_string(),
                    container_id,
                    permission: p.parse()?,
                })
            })
            .collect()
    }

    fn set_locations(&self, store_id: &str, found: &[(String, CertificateId)]) -> Result<()> {
        self.with(|c| {
            let mut tx = c.client.transaction()?;
            let delete = prepare(
                &mut c.statements,
                &mut tx,
                "DELETE FROM locations WHERE store_id = $1",
            )?;
            tx.execute(&delete, &[&store_id])?;
            let insert = prepare(
                &mut c.statements,
                &mut tx,
                "INSERT INTO locations (store_id, alias, certificate_id) VALUES ($1, $2, $3)
                 ON CONFLICT (store_id, alias) DO UPDATE SET certificate_id = excluded.certificate_id",
            )?;
            for (alias, cert) in found {
                tx.execute(&insert, &[&store_id, alias, cert])?;
            }
            tx.commit()
        })
    }

    fn locations(&self, certificate: CertificateId) -> Result<Vec<Location>> {
        self.with(|c| {
            let st = prepare(
                &mut c.statements,
                &mut c.client,
                "SELECT store_id, alias, certificate_id FROM locations WHERE certificate_id = $1 ORDER BY store_id, alias",
            )?;
            c.client
                .query(&st, &[&certificate])?
                .iter()
                .map(|r| {
                    Ok(Location {
                        store_id: r.try_get(0)?,
                        alias: r.try_get(1)?,
                        certificate_id: r.try_get(2)?,
                    })
                })
                .collect()
        })
    }

    fn add_jobs(&self, jobs: &[NewJob]) -> Result<Vec<JobId>> {
        self.with(|c| {
            let mut tx = c.client.transaction()?;
            let st = prepare(
                &mut c.statements,
                &mut tx,
                "INSERT INTO jobs (store_id, operation, certificate_id, alias, overwrite, sealed_entry_password,
                                   scheduled_ms, principal, status)
                 VALUES ($1, $8, $2, $3, $4, $5, $6, $7, 'Waiting') RETURNING id",
            )?;
            let mut ids = Vec::with_capacity(jobs.len());
            for j in jobs {
                let row = tx.query_one(
                    &st,
                    &[
                        &j.store_id,
                        &j.certificate_id,
                        &j.alias,
                        &j.overwrite,
                        &j.sealed_entry_password,
                        &j.scheduled_ms,
                        &j.principal,
                        &j.operation.name(),
                    ],
                )?;
                ids.push(row.try_get(0)?);
            }
            tx.commit()?;
            Ok(ids)
        })
    }

    fn jobs(&self) -> Result<Vec<JobRecord>> {
        const SQL: &str = "SELECT id, store_id, operation, certificate_id, alias, overwrite, sealed_entry_password, scheduled_ms, principal, status, result, message, lease, claimed_by, claimed_ms, finished_ms FROM jobs ORDER BY id";
        debug_assert!(SQL.contains(JOB_COLUMNS));
        let raws = self.query_all(SQL, &[], raw_job)?;
        raws.into_iter().map(|r| Ok(to_job(r)?.0)).collect()
    }

    fn job_queue(&self, now_ms: i64, lease_ms: i64) -> Result<crate::jobs::JobQueue> {
        // Only open jobs are read (the jobs_due index), and only their counts leave the server.
        let row = self.with(|c| {
            let row = c.client.query_one(
                "SELECT
                     COUNT(*) FILTER (WHERE CASE WHEN j.status = $3 THEN j.scheduled_ms <= $1
                                       ELSE COALESCE(j.claimed_ms, $1) + $2 <= $1 END),
                     COUNT(*) FILTER (WHERE j.status = $4 AND COALESCE(j.claimed_ms, $1) + $2 > $1),
                     MAX(COALESCE(j.claimed_ms, $1) + $2)
                         FILTER (WHERE j.status = $4 AND COALESCE(j.claimed_ms, $1) + $2 > $1),
                     MIN(j.scheduled_ms) FILTER (WHERE j.status = $3 AND j.scheduled_ms > $1)
                 FROM jobs j JOIN stores s ON s.id = j.store_id
                 WHERE j.status IN ($3, $4) AND s.machine IS NULL",
                &[
                    &now_ms,
                    &lease_ms,
                    &JobStatus::Waiting.name(),
                    &JobStatus::InProcess.name(),
                ],
            )?;
            Ok((
                row.try_get::<_, i64>(0)?,
                row.try_get::<_, i64>(1)?,
                row.try_get::<_, Option<i64>>(2)?,
                row.try_get::<_, Option<i64>>(3)?,
            ))
        })?;
        Ok(crate::jobs::JobQueue::from_row(row))
    }

    fn waiting_jobs_of_certificate(&self, certificate: CertificateId) -> Result<Vec<JobRecord>> {
        const SQL: &str = "SELECT id, store_id, operation, certificate_id, alias, overwrite, sealed_entry_password, scheduled_ms, principal, status, result, message, lease, claimed_by, claimed_ms, finished_ms FROM jobs WHERE certificate_id = $1 AND status = 'Waiting' ORDER BY id";
        debug_assert!(SQL.contains(JOB_COLUMNS));
        let raws = self.query_all(SQL, &[&certificate], raw_job)?;
        raws.into_iter().map(|r| Ok(to_job(r)?.0)).collect()
    }

    /// One transaction in two statements. The first locks, with `FOR UPDATE SKIP LOCKED`, the
    /// rows of up to `limit` stores whose oldest open job (by scheduled time, id) is claimable
    /// — due, and waiting or leased to a runner presumed dead — oldest first; stores another
    /// runner is claiming at this moment are skipped, not waited for. The second, a fresh
    /// snapshot that sees every claim committed before the locks were taken, walks the locked
    /// stores' open jobs in order and takes each store's due, claimable prefix — the first job
    /// that is not due, or is leased to a live runner, blocks the rest of its store — oldest
    /// first, up to `limit`, moving them to InProcess under `holder` with a new lease number.
    ///
    /// So runners claim different stores in parallel, and a store's jobs still run in order:
    /// while one runner holds a store's row no other can claim its jobs, and once it commits
    /// they are InProcess, which blocks the store's later jobs until they end.
    ///
    /// Time is the database's: `now_ms` (which jobs are due; a chosen time for `jobs run
    /// --now`) and `stale_before_ms` (leases started before it are over; real time) only
    /// contribute their offsets from this host's clock, so hosts whose clocks disagree still
    /// agree about leases, and a runner's `--now` never moves a lease.
    fn claim_due_jobs(
        &self,
        now_ms: i64,
        stale_before_ms: i64,
        limit: usize,
        holder: &str,
    ) -> Result<Vec<JobRecord>> {
        self.claim_machine_jobs(now_ms, stale_before_ms, limit, holder, None)
    }

    fn claim_machine_jobs(
        &self,
        now_ms: i64,
        stale_before_ms: i64,
        limit: usize,
        holder: &str,
        machine: Option<&str>,
    ) -> Result<Vec<JobRecord>> {
        const LOCK_STORES: &str = "
            WITH clock AS (
                SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint AS real_ms
            ), heads AS (
                SELECT DISTINCT ON (j.store_id) j.store_id, j.scheduled_ms, j.id,
                       j.scheduled_ms <= clock.real_ms + $1::bigint
                       AND (j.status = 'Waiting' OR j.claimed_ms IS NULL
                            OR j.claimed_ms < clock.real_ms + $2::bigint) AS claimable
                FROM jobs j, clock
                WHERE j.status IN ('Waiting', 'InProcess')
                ORDER BY j.store_id, j.scheduled_ms, j.id
            )
            SELECT s.id FROM stores s JOIN heads h ON h.store_id = s.id
            WHERE h.claimable AND s.machine IS NOT DISTINCT FROM $4::text
            ORDER BY h.scheduled_ms, h.id
            LIMIT $3
            FOR UPDATE OF s SKIP LOCKED";
        const CLAIM: &str = "
            WITH clock AS (
                SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint AS real_ms
            ), open AS (
                SELECT j.id, j.store_id, j.scheduled_ms,
                       j.scheduled_ms <= clock.real_ms + $1::bigint
                       AND (j.status = 'Waiting' OR j.claimed_ms IS NULL
                            OR j.claimed_ms < clock.real_ms + $2::bigint) AS claimable
                FROM jobs j, clock
                WHERE j.status IN ('Waiting', 'InProcess') AND j.store_id = ANY($5)
            ), walked AS (
                SELECT id, scheduled_ms,
                       bool_and(claimable) OVER (PARTITION BY store_id ORDER BY scheduled_ms, id
                                                 ROWS UNBOUNDED PRECEDING) AS reachable
                FROM open
            ), picked AS (
                SELECT id FROM walked WHERE reachable ORDER BY scheduled_ms, id LIMIT $3
            )
            UPDATE jobs SET status = 'InProcess', claimed_ms = clock.real_ms, claimed_by = $4,
                            lease = jobs.lease + 1, finished_ms = NULL
            FROM picked, clock
            WHERE jobs.id = picked.id AND jobs.status IN ('Waiting', 'InProcess')
            RETURNING jobs.id, jobs.store_id, jobs.operation, jobs.certificate_id, jobs.alias,
                      jobs.overwrite, jobs.sealed_entry_password, jobs.scheduled_ms,
                      jobs.principal, jobs.status, jobs.result, jobs.message, jobs.lease,
                      jobs.claimed_by, jobs.claimed_ms, jobs.finished_ms";
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let host_now = now_millis();
        let due_offset = now_ms.saturating_sub(host_now);
        let stale_offset = stale_before_ms.saturating_sub(host_now);
        let raws = self.with(|c| {
            let mut tx = c.client.transaction()?;
            let lock = prepare(&mut c.statements, &mut tx, LOCK_STORES)?;
            let stores: Vec<String> = tx
                .query(&lock, &[&due_offset, &stale_offset, &limit, &machine])?
                .iter()
                .map(|r| r.try_get(0))
                .collect::<Result<_, _>>()?;
            if stores.is_empty() {
                tx.commit()?;
                return Ok(Vec::new());
            }
            let claim = prepare(&mut c.statements, &mut tx, CLAIM)?;
            let rows = tx.query(
                &claim,
                &[&due_offset, &stale_offset, &limit, &holder, &stores],
            )?;
            let raws = rows.iter().map(raw_job).collect::<Result<Vec<_>, _>>()?;
            tx.commit()?;
            Ok(raws)
        })?;
        let mut claimed = raws.into_iter().map(to_job).collect::<Result<Vec<_>>>()?;
        claimed.sort_by_key(|(j, _)| (j.job.scheduled_ms, j.id));
        if let Ok(mut leases) = self.leases.lock() {
            for (job, lease) in &claimed {
                leases.insert(job.id, *lease);
            }
        }
        Ok(claimed.into_iter().map(|(j, _)| j).collect())
    }

    fn release_jobs(&self, ids: &[JobId], holder: &str) -> Result<()> {
        // The holder's leases only; where this instance knows the lease number it claimed,
        // that lease only, so a job taken over since (even by a runner of the same name)
        // keeps its new runner.
        let leases: Vec<Option<i64>> = ids.iter().map(|id| self.lease_of(*id)).collect();
        let released: Vec<JobId> = self.with(|c| {
            let st = prepare(
                &mut c.statements,
                &mut c.client,
                "UPDATE jobs SET status = 'Waiting', claimed_by = NULL, claimed_ms = NULL
                 FROM unnest($1::bigint[], $2::bigint[]) AS r(id, lease)
                 WHERE jobs.id = r.id AND (r.lease IS NULL OR jobs.lease = r.lease)
                   AND jobs.status = 'InProcess' AND jobs.claimed_by = $3
                 RETURNING jobs.id",
            )?;
            c.client
                .query(&st, &[&ids, &leases, &holder])?
                .iter()
                .map(|r| r.try_get(0))
                .collect()
        })?;
        if let Ok(mut l) = self.leases.lock() {
            for id in &released {
                l.remove(id);
            }
        }
        Ok(())
    }

    fn cancel_job(&self, id: JobId, message: &str) -> Result<bool> {
        self.with(|c| {
            let st = prepare(
                &mut c.statements,
                &mut c.client,
                "UPDATE jobs SET status = 'Completed', result = 'Failure', message = $1,
                                 finished_ms = (extract(epoch FROM clock_timestamp()) * 1000)::bigint
                 WHERE id = $2 AND status = 'Waiting'",
            )?;
            c.client.execute(&st, &[&message, &id]).map(|n| n == 1)
        })
    }

    fn retry_job(&self, id: JobId, scheduled_ms: i64) -> Result<bool> {
        self.with(|c| {
            let st = prepare(
                &mut c.statements,
                &mut c.client,
                "UPDATE jobs SET status = 'Waiting', result = NULL, message = NULL,
                                 claimed_by = NULL, claimed_ms = NULL, finished_ms = NULL,
                                 scheduled_ms = $1
                 WHERE id = $2 AND status = 'Completed' AND result = 'Failure'",
            )?;
            c.client.execute(&st, &[&scheduled_ms, &id]).map(|n| n == 1)
        })
    }

    fn job(&self, id: JobId) -> Result<Option<JobRecord>> {
        const SQL: &str = "SELECT id, store_id, operation, certificate_id, alias, overwrite, sealed_entry_password, scheduled_ms, principal, status, result, message, lease, claimed_by, claimed_ms, finished_ms FROM jobs WHERE id = $1";
        debug_assert!(SQL.contains(JOB_COLUMNS));
        let raw = self.query_opt(SQL, &[&id], raw_job)?;
        raw.map(|r| Ok(to_job(r)?.0)).transpose()
    }

    /// A job this instance claimed is finished only if its lease is still the current one;
    /// otherwise the completion is refused, recorded in `job_refusals`, and reported as
    /// [`Error::Invalid`]. A job finished without a claim by this instance (an administrator's
    /// correction) is recorded as asked.
    fn finish_job(
        &self,
        id: JobId,
        status: JobStatus,
        result: JobResult,
        message: &str,
    ) -> Result<()> {
        let lease = self.lease_of(id);
        let refused: Option<i64> = self.with(|c| {
            let mut tx = c.client.transaction()?;
            let current: Option<(i64, Option<String>)> = tx
                .query_opt(
                    "SELECT lease, claimed_by FROM jobs WHERE id = $1 FOR UPDATE",
                    &[&id],
                )?
                .map(|r| Ok::<_, ::postgres::Error>((r.try_get(0)?, r.try_get(1)?)))
                .transpose()?;
            if let (Some(mine), Some((current, holder))) = (lease, current)
                && mine != current
            {
                tx.execute(
                    "INSERT INTO job_refusals (job_id, lease, current, holder, status, result, message, refused_ms)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                    &[&id, &mine, &current, &holder, &status.name(), &result.name(), &message, &now_millis()],
                )?;
                tx.commit()?;
                return Ok(Some(current));
            }
            let st = prepare(
                &mut c.statements,
                &mut tx,
                // The database's clock, as for `claimed_ms` (the start), so both ends of a
                // run are read on one clock.
                "UPDATE jobs SET status = $1, result = $2, message = $3,
                                 finished_ms = CASE WHEN $5::boolean
                                     THEN (extract(epoch FROM clock_timestamp()) * 1000)::bigint
                                 END
                 WHERE id = $4",
            )?;
            let ends = ended_ms(status).is_some();
            tx.execute(
                &st,
                &[&status.name(), &result.name(), &message, &id, &ends],
            )?;
            tx.commit()?;
            Ok(None)
        })?;
        if let Ok(mut leases) = self.leases.lock() {
            leases.remove(&id);
        }
        match refused {
            Some(current) => Err(Error::Invalid(format!(
                "job {id}: its lease was taken over by another runner (lease {current}); \
                 this completion was refused and recorded"
            ))),
            None => Ok(()),
        }
    }

    fn record_renewal(
        &self,
        predecessor: CertificateId,
        certificate: &Certificate,
        chain: &[Certificate],
        sealed_key: &[u8],
        policy: Option<PolicyId>,
        owner: Option<&str>,
    ) -> Result<Option<(CertificateRecord, RequestId)>> {
        let ids = self.with(|c| {
            let mut tx = c.client.transaction()?;
            if policy.is_some() {
                let st = prepare(
                    &mut c.statements,
                    &mut tx,
                    "SELECT EXISTS(SELECT 1 FROM renewals WHERE predecessor_id = $1)",
                )?;
                let renewed: bool = tx.query_one(&st, &[&predecessor])?.try_get(0)?;
                if renewed {
                    return Ok(None);
                }
            }
            let (id, request) = insert_with_chain(
                &mut c.statements,
                &mut tx,
                certificate,
                chain,
                Some(sealed_key),
                Some(RequestKind::Renew),
                owner,
            )?;
            // Under READ COMMITTED two checks both pass the test above; the partial unique
            // index makes the second wait for the first and then insert nothing, and nothing of
            // the second is kept (its transaction is rolled back on drop).
            let st = prepare(
                &mut c.statements,
                &mut tx,
                "INSERT INTO renewals (predecessor_id, successor_id, policy_id, created_ms)
                 VALUES ($1, $2, $3, $4)
                 ON CONFLICT (predecessor_id) WHERE policy_id IS NOT NULL DO NOTHING
                 RETURNING successor_id",
            )?;
            let inserted = tx.query_opt(&st, &[&predecessor, &id, &policy, &now_millis()])?;
            if inserted.is_none() {
                return Ok(None);
            }
            tx.commit()?;
            Ok(request.map(|r| (id, r)))
        })?;
        match ids {
            Some((id, request)) => {
                let record = self
                    .certificate(id)?
                    .ok_or_else(|| Error::Database("certificate vanished".into()))?;
                Ok(Some((record, request)))
            }
            None => Ok(None),
        }
    }

    fn successor(&self, certificate: CertificateId) -> Result<Option<CertificateId>> {
        self.with(|c| {
            let st = prepare(
                &mut c.statements,
                &mut c.client,
                "SELECT MAX(successor_id) FROM renewals WHERE predecessor_id = $1",
            )?;
            c.client.query_one(&st, &[&certificate])?.try_get(0)
        })
    }

    fn expiring(&self, not_after_by: i64) -> Result<Vec<ExpiringRecord>> {
        type Raw = (RawCert, i64, Option<i64>);
        let raws: Vec<Raw> = self.with(|c| {
            let st = prepare(
                &mut c.statements,
                &mut c.client,
                "SELECT c.id, c.der, c.chain,
                        EXISTS(SELECT 1 FROM staged_keys k WHERE k.certificate_id = c.id),
                        c.owner,
                        (SELECT COUNT(*) FROM locations l WHERE l.certificate_id = c.id),
                        (SELECT MAX(r.successor_id) FROM renewals r WHERE r.predecessor_id = c.id)
                 FROM certificates c
                 WHERE c.not_after <= $1
                   AND EXISTS(SELECT 1 FROM locations l WHERE l.certificate_id = c.id)
                 ORDER BY c.not_after, c.id",
            )?;
            c.client
                .query(&st, &[&not_after_by])?
                .iter()
                .map(|r| Ok((raw_cert(r)?, r.try_get(5)?, r.try_get(6)?)))
                .collect()
        })?;
        raws.into_iter()
            .map(|(raw, locations, successor)| {
                Ok(ExpiringRecord {
                    record: to_record(raw)?,
                    locations: usize::try_from(locations).unwrap_or(0),
                    successor,
                })
            })
            .collect()
    }

    fn set_policy(&self, policy: &NewPolicy) -> Result<PolicyRecord> {
        let (kind, secret) = secret_columns(&policy.entry_password);
        let id: i64 = self.with(|c| {
            let mut tx = c.client.transaction()?;
            let delete = prepare(
                &mut c.statements,
                &mut tx,
                "DELETE FROM policies WHERE COALESCE(container_id, 0) = COALESCE($1::bigint, 0)",
            )?;
            tx.execute(&delete, &[&policy.container_id])?;
            // A concurrent set of the same scope may have inserted meanwhile: take its place.
            let insert = prepare(
                &mut c.statements,
                &mut tx,
                "INSERT INTO policies (container_id, renew_before_secs, principal,
                                       entry_password_kind, entry_password, created_ms)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT ((COALESCE(container_id, 0))) DO UPDATE SET
                     renew_before_secs = excluded.renew_before_secs,
                     principal = excluded.principal,
                     entry_password_kind = excluded.entry_password_kind,
                     entry_password = excluded.entry_password,
                     created_ms = excluded.created_ms
                 RETURNING id",
            )?;
            let id = tx
                .query_one(
                    &insert,
                    &[
                        &policy.container_id,
                        &policy.renew_before_secs,
                        &policy.principal,
                        &kind,
                        &secret,
                        &now_millis(),
                    ],
                )?
                .try_get(0)?;
            tx.commit()?;
            Ok(id)
        })?;
        Ok(PolicyRecord {
            id,
            container_id: policy.container_id,
            renew_before_secs: policy.renew_before_secs,
            principal: policy.principal.clone(),
            entry_password: policy.entry_password.clone(),
        })
    }

    fn policies(&self) -> Result<Vec<PolicyRecord>> {
        type Raw = (i64, Option<i64>, i64, String, String, Option<Vec<u8>>);
        let raws: Vec<Raw> = self.with(|c| {
            let st = prepare(
                &mut c.statements,
                &mut c.client,
                "SELECT id, container_id, renew_before_secs, principal, entry_password_kind,
                        entry_password
                 FROM policies ORDER BY COALESCE(container_id, 0)",
            )?;
            c.client
                .query(&st, &[])?
                .iter()
                .map(|r| {
                    Ok((
                        r.try_get(0)?,
                        r.try_get(1)?,
                        r.try_get(2)?,
                        r.try_get(3)?,
                        r.try_get(4)?,
                        r.try_get(5)?,
                    ))
                })
                .collect()
        })?;
        raws.into_iter()
            .map(
                |(id, container_id, renew_before_secs, principal, kind, secret)| {
                    Ok(PolicyRecord {
                        id,
                        container_id,
                        renew_before_secs,
                        principal,
                        entry_password: secret_from_columns(
                            &kind,
                            secret,
                            "catalog policy record",
                        )?,
                    })
                },
            )
            .collect()
    }

    fn remove_policy(&self, container: Option<ContainerId>) -> Result<bool> {
        self.with(|c| {
            let st = prepare(
                &mut c.statements,
                &mut c.client,
                "DELETE FROM policies WHERE COALESCE(container_id, 0) = COALESCE($1::bigint, 0)",
            )?;
            c.client.execute(&st, &[&container]).map(|n| n > 0)
        })
    }

    fn add_history(&self, entry: &HistoryRecord) -> Result<HistoryId> {
        self.with(|c| {
            let mut tx = c.client.transaction()?;
            let st = prepare(
                &mut c.statements,
                &mut tx,
                "INSERT INTO policy_history (policy_id, container_id, principal, certificate_id,
                     not_after, window_start, successor_id, outcome, message, decided_ms)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
            )?;
            let id: i64 = tx
                .query_one(
                    &st,
                    &[
                        &entry.policy_id,
                        &entry.container_id,
                        &entry.principal,
                        &entry.certificate_id,
                        &entry.not_after,
                        &entry.window_start,
                        &entry.successor_id,
                        &entry.outcome.name(),
                        &entry.message,
                        &entry.decided_ms,
                    ],
                )?
                .try_get(0)?;
            let store = prepare(
                &mut c.statements,
                &mut tx,
                "INSERT INTO policy_history_stores (history_id, store_id, scheduled, reason)
                 VALUES ($1, $2, $3, $4)
                 ON CONFLICT (history_id, store_id) DO UPDATE SET
                     scheduled = excluded.scheduled, reason = excluded.reason",
            )?;
            for decision in &entry.stores {
                tx.execute(
                    &store,
                    &[
                        &id,
                        &decision.store_id,
                        &decision.scheduled,
                        &decision.reason,
                    ],
                )?;
            }
            tx.commit()?;
            Ok(id)
        })
    }

    fn history(&self) -> Result<Vec<HistoryRecord>> {
        type Raw = (
            i64,
            i64,
            Option<i64>,
            String,
            i64,
            i64,
            i64,
            Option<i64>,
            String,
            Option<String>,
            i64,
        );
        let (raws, stores) = self.with(|c| {
            // One snapshot for both reads, so an entry is never seen without its stores.
            let mut tx = c
                .client
                .build_transaction()
                .isolation_level(::postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()?;
            let st = prepare(
                &mut c.statements,
                &mut tx,
                "SELECT id, policy_id, container_id, principal, certificate_id, not_after,
                        window_start, successor_id, outcome, message, decided_ms
                 FROM policy_history ORDER BY id",
            )?;
            let raws: Vec<Raw> = tx
                .query(&st, &[])?
                .iter()
                .map(|r| {
                    Ok((
                        r.try_get(0)?,
                        r.try_get(1)?,
                        r.try_get(2)?,
                        r.try_get(3)?,
                        r.try_get(4)?,
                        r.try_get(5)?,
                        r.try_get(6)?,
                        r.try_get(7)?,
                        r.try_get(8)?,
                        r.try_get(9)?,
                        r.try_get(10)?,
                    ))
                })
                .collect::<Result<_, ::postgres::Error>>()?;
            let st = prepare(
                &mut c.statements,
                &mut tx,
                "SELECT history_id, store_id, scheduled, reason FROM policy_history_stores
                 ORDER BY history_id, store_id",
            )?;
            let stores: Vec<(i64, StoreDecision)> = tx
                .query(&st, &[])?
                .iter()
                .map(|r| {
                    Ok((
                        r.try_get(0)?,
                        StoreDecision {
                            store_id: r.try_get(1)?,
                            scheduled: r.try_get(2)?,
                            reason: r.try_get(3)?,
                        },
                    ))
                })
                .collect::<Result<_, ::postgres::Error>>()?;
            tx.commit()?;
            Ok((raws, stores))
        })?;
        let mut by_entry: HashMap<i64, Vec<StoreDecision>> = HashMap::new();
        for (id, decision) in stores {
            by_entry.entry(id).or_default().push(decision);
        }
        raws.into_iter()
            .map(|raw| {
                let (id, policy_id, container_id, principal, certificate_id, not_after) =
                    (raw.0, raw.1, raw.2, raw.3, raw.4, raw.5);
                Ok(HistoryRecord {
                    id: Some(id),
                    policy_id,
                    container_id,
                    principal,
                    certificate_id,
                    not_after,
                    window_start: raw.6,
                    successor_id: raw.7,
                    outcome: raw.8.parse()?,
                    message: raw.9,
                    stores: by_entry.remove(&id).unwrap_or_default(),
                    decided_ms: raw.10,
                })
            })
            .collect()
    }

    fn add_user(&self, name: &str, password_hash: &str) -> Result<()> {
        let inserted = self.with(|c| {
            c.client.execute(
                "INSERT INTO users (name, password_hash) VALUES ($1, $2)
                 ON CONFLICT (name) DO NOTHING",
                &[&name, &password_hash],
            )
        })?;
        if inserted == 0 {
            return Err(Error::Invalid(format!("user '{name}' already exists")));
        }
        Ok(())
    }

    fn remove_user(&self, name: &str) -> Result<bool> {
        self.with(|c| {
            let mut tx = c.client.transaction()?;
            tx.execute("DELETE FROM tokens WHERE principal = $1", &[&name])?;
            let n = tx.execute("DELETE FROM users WHERE name = $1", &[&name])?;
            tx.commit()?;
            Ok(n > 0)
        })
    }

    fn users(&self) -> Result<Vec<String>> {
        self.with(|c| {
            c.client
                .query("SELECT name FROM users ORDER BY name", &[])?
                .iter()
                .map(|r| r.try_get(0))
                .collect()
        })
    }

    fn password_hash(&self, name: &str) -> Result<Option<String>> {
        self.with(|c| {
            let st = prepare(
                &mut c.statements,
                &mut c.client,
                "SELECT password_hash FROM users WHERE name = $1",
            )?;
            c.client
                .query_opt(&st, &[&name])?
                .map(|r| r.try_get(0))
                .transpose()
        })
    }

    fn add_token(&self, principal: &str, token_hash: &str, expires_ms: Option<i64>) -> Result<i64> {
        // One statement: the user is checked and the token inserted at once (and the foreign
        // key refuses a user removed meanwhile).
        let id: Option<i64> = self.with(|c| {
            c.client
                .query_opt(
                    "INSERT INTO tokens (principal, token_hash, expires_ms)
                     SELECT name, $2, $3 FROM users WHERE name = $1
                     RETURNING id",
                    &[&principal, &token_hash, &expires_ms],
                )?
                .map(|r| r.try_get(0))
                .transpose()
        })?;
        id.ok_or_else(|| Error::NotFound(format!("unknown user '{principal}'")))
    }

    fn token(&self, token_hash: &str) -> Result<Option<TokenRecord>> {
        self.with(|c| {
            let st = prepare(
                &mut c.statements,
                &mut c.client,
                "SELECT id, principal, expires_ms FROM tokens WHERE token_hash = $1",
            )?;
            c.client
                .query_opt(&st, &[&token_hash])?
                .map(|r| {
                    Ok(TokenRecord {
                        id: r.try_get(0)?,
                        principal: r.try_get(1)?,
                        expires_ms: r.try_get(2)?,
                    })
                })
                .transpose()
        })
    }

    fn finish_leased_job(
        &self,
        id: JobId,
        holder: &str,
        status: JobStatus,
        result: JobResult,
        message: &str,
    ) -> Result<bool> {
        let agent = agent_of_holder(holder);
        let recorded = self.with(|c| {
            let mut tx = c.client.transaction()?;
            let recorded = tx.execute(
                "UPDATE jobs SET status = $1, result = $2, message = $3
                 WHERE id = $4 AND status = 'InProcess' AND claimed_by = $5",
                &[&status.name(), &result.name(), &message, &id, &holder],
            )? == 1;
            if recorded && let Some(agent) = agent {
                let failed = result == JobResult::Failure;
                tx.execute(
                    "UPDATE agents SET jobs_done = jobs_done + $1, jobs_failed = jobs_failed + $2,
                         last_seen_ms = $3
                     WHERE name = $4",
                    &[
                        &i64::from(!failed),
                        &i64::from(failed),
                        &now_millis(),
                        &agent,
                    ],
                )?;
            }
            tx.commit()?;
            Ok(recorded)
        })?;
        if recorded && let Ok(mut leases) = self.leases.lock() {
            leases.remove(&id);
        }
        Ok(recorded)
    }

    fn machines_with_due_jobs(&self, now_ms: i64, stale_before_ms: i64) -> Result<Vec<String>> {
        self.with(|c| {
            let st = prepare(
                &mut c.statements,
                &mut c.client,
                "SELECT DISTINCT s.machine FROM jobs j JOIN stores s ON s.id = j.store_id
                 WHERE s.machine IS NOT NULL AND j.scheduled_ms <= $1
                   AND (j.status = 'Waiting'
                        OR (j.status = 'InProcess'
                            AND (j.claimed_ms IS NULL OR j.claimed_ms < $2)))
                 ORDER BY s.machine",
            )?;
            c.client
                .query(&st, &[&now_ms, &stale_before_ms])?
                .iter()
                .map(|r| r.try_get(0))
                .collect()
        })
    }

    fn add_agent(&self, name: &str, token_hash: &str) -> Result<()> {
        let inserted = self.with(|c| {
            c.client.execute(
                "INSERT INTO agents (name, state, token_hash, created_ms) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (name) DO UPDATE SET state = excluded.state,
                     token_hash = excluded.token_hash, certificate_serial = NULL,
                     certificate_thumbprint = NULL
                 WHERE agents.state = 'revoked'",
                &[
                    &name,
                    &AgentState::Registered.name(),
                    &token_hash,
                    &now_millis(),
                ],
            )
        })?;
        if inserted == 0 {
            return Err(Error::Invalid(format!("agent '{name}' exists already")));
        }
        Ok(())
    }

    fn agents(&self) -> Result<Vec<AgentRecord>> {
        let raws = self.with(|c| {
            c.client
                .query(&format!("{SELECT_AGENT} ORDER BY name"), &[])?
                .iter()
                .map(raw_agent)
                .collect::<Result<Vec<_>, _>>()
        })?;
        raws.into_iter().map(to_agent).collect()
    }

    fn agent(&self, name: &str) -> Result<Option<AgentRecord>> {
        let raw = self.with(|c| {
            let st = prepare(
                &mut c.statements,
                &mut c.client,
                "SELECT name, state, token_hash IS NOT NULL, certificate_serial, certificate_thumbprint, last_seen_ms, version, jobs_done, jobs_failed, created_ms FROM agents WHERE name = $1",
            )?;
            c.client
                .query_opt(&st, &[&name])?
                .as_ref()
                .map(raw_agent)
                .transpose()
        })?;
        raw.map(to_agent).transpose()
    }

    fn agent_token_matches(&self, name: &str, token_hash: &str) -> Result<bool> {
        self.with(|c| {
            c.client
                .query_opt(
                    "SELECT 1 FROM agents WHERE name = $1 AND state = $2 AND token_hash = $3",
                    &[&name, &AgentState::Registered.name(), &token_hash],
                )
                .map(|r| r.is_some())
        })
    }

    fn redeem_agent_token(
        &self,
        name: &str,
        token_hash: &str,
        serial: &str,
        thumbprint: &str,
    ) -> Result<bool> {
        self.with(|c| {
            c.client
                .execute(
                    "UPDATE agents SET token_hash = NULL, certificate_serial = $1,
                         certificate_thumbprint = $2
                     WHERE name = $3 AND state = $4 AND token_hash = $5",
                    &[
                        &serial,
                        &thumbprint,
                        &name,
                        &AgentState::Registered.name(),
                        &token_hash,
                    ],
                )
                .map(|n| n == 1)
        })
    }

    fn revoke_agent(&self, name: &str) -> Result<bool> {
        self.with(|c| {
            c.client
                .execute(
                    "UPDATE agents SET state = $1, token_hash = NULL WHERE name = $2",
                    &[&AgentState::Revoked.name(), &name],
                )
                .map(|n| n == 1)
        })
    }

    fn agent_seen(
        &self,
        name: &str,
        version: &str,
        now_ms: i64,
        done: i64,
        failed: i64,
    ) -> Result<()> {
        self.with(|c| {
            let st = prepare(
                &mut c.statements,
                &mut c.client,
                "UPDATE agents SET last_seen_ms = $1, version = $2, jobs_done = jobs_done + $3,
                     jobs_failed = jobs_failed + $4
                 WHERE name = $5",
            )?;
            c.client
                .execute(&st, &[&now_ms, &version, &done, &failed, &name])
                .map(|_| ())
        })
    }

    fn revoke_token(&self, id: i64) -> Result<bool> {
        self.with(|c| {
            c.client
                .execute("DELETE FROM tokens WHERE id = $1", &[&id])
                .map(|n| n > 0)
        })
    }

    fn remove_store(&self, id: &str) -> Result<bool> {
        // None: removed; Some(0): unknown; Some(n): n jobs running. The store row is locked
        // first, so a runner claiming one of its jobs meanwhile waits for the answer.
        let running: Option<i64> = self.with(|c| {
            let mut tx = c.client.transaction()?;
            if tx
                .query_opt("SELECT 1 FROM stores WHERE id = $1 FOR UPDATE", &[&id])?
                .is_none()
            {
                return Ok(Some(0));
            }
            let running: i64 = tx
                .query_one(
                    "SELECT COUNT(*) FROM jobs WHERE store_id = $1 AND status = $2",
                    &[&id, &JobStatus::InProcess.name()],
                )?
                .try_get(0)?;
            if running > 0 {
                return Ok(Some(running));
            }
            tx.execute(
                "DELETE FROM job_refusals WHERE job_id IN (SELECT id FROM jobs WHERE store_id = $1)",
                &[&id],
            )?;
            tx.execute("DELETE FROM locations WHERE store_id = $1", &[&id])?;
            tx.execute("DELETE FROM jobs WHERE store_id = $1", &[&id])?;
            tx.execute("DELETE FROM store_files WHERE store_id = $1", &[&id])?;
            tx.execute("DELETE FROM stores WHERE id = $1", &[&id])?;
            tx.commit()?;
            Ok(None)
        })?;
        match running {
            None => Ok(true),
            Some(0) => Ok(false),
            Some(n) => Err(Error::Invalid(format!(
                "store {id} has {n} running job(s); remove it when they have ended"
            ))),
        }
    }

    fn retire_cas(&self) -> Result<Vec<CaRecord>> {
        let raw: Vec<(i64, String, Vec<u8>)> = self.with(|c| {
            c.client
                .query(
                    "WITH retired AS (DELETE FROM cas RETURNING id, certificate_id, role, sealed_key)
                     SELECT certificate_id, role, sealed_key FROM retired ORDER BY id",
                    &[],
                )?
                .iter()
                .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
                .collect()
        })?;
        Ok(raw
            .into_iter()
            .map(|(certificate_id, role, sealed_key)| CaRecord {
                certificate_id,
                role: if role == "intermediate" {
                    CaRole::Intermediate
                } else {
                    CaRole::Root
                },
                sealed_key,
            })
            .collect())
    }

    fn containers(&self) -> Result<Vec<ContainerRecord>> {
        self.with(|c| {
            c.client
                .query("SELECT id, name FROM containers ORDER BY id", &[])?
                .iter()
                .map(|r| {
                    Ok(ContainerRecord {
                        id: r.try_get(0)?,
                        name: r.try_get(1)?,
                    })
                })
                .collect()
        })
    }

    fn certificates(&self) -> Result<Vec<CertificateRecord>> {
        const SQL: &str = "SELECT c.id, c.der, c.chain, EXISTS(SELECT 1 FROM staged_keys k WHERE k.certificate_id = c.id), c.owner FROM certificates c ORDER BY c.id";
        debug_assert!(SQL.starts_with(SELECT_CERT));
        let raws: Vec<RawCert> = self.query_all(SQL, &[], raw_cert)?;
        raws.into_iter().map(to_record).collect()
    }
}
