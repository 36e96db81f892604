//! The embedded catalog: one SQLite file (bundled SQLite) in the catalog directory, WAL mode so
//! readers never block the writer, and a busy timeout so concurrent processes queue instead of
//! failing. Schema versions are applied in order from `PRAGMA user_version`.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::*;
use crate::error::{Error, Result};
use pfxkit::cert::Certificate;

/// Ordered schema migrations; entry `i` moves the schema from version `i` to `i + 1`. Released
/// entries are never edited, only appended to.
const MIGRATIONS: &[&str] = &[
    r"
CREATE TABLE certificates (
    id          INTEGER PRIMARY KEY,
    sha256      TEXT NOT NULL UNIQUE,
    sha1        TEXT NOT NULL,
    der         BLOB NOT NULL,
    subject     TEXT NOT NULL,
    issuer      TEXT NOT NULL,
    serial      TEXT NOT NULL,
    not_before  INTEGER NOT NULL,
    not_after   INTEGER NOT NULL,
    chain       TEXT NOT NULL DEFAULT '',
    created_ms  INTEGER NOT NULL
);
CREATE INDEX certificates_sha1 ON certificates(sha1);
CREATE TABLE requests (
    id              INTEGER PRIMARY KEY,
    certificate_id  INTEGER NOT NULL REFERENCES certificates(id),
    kind            TEXT NOT NULL,
    created_ms      INTEGER NOT NULL
);
CREATE TABLE staged_keys (
    certificate_id  INTEGER PRIMARY KEY REFERENCES certificates(id),
    sealed          BLOB NOT NULL
);
CREATE TABLE cas (
    id              INTEGER PRIMARY KEY,
    certificate_id  INTEGER NOT NULL REFERENCES certificates(id),
    role            TEXT NOT NULL,
    sealed_key      BLOB NOT NULL
);
CREATE TABLE containers (
    id    INTEGER PRIMARY KEY,
    name  TEXT NOT NULL UNIQUE
);
CREATE TABLE stores (
    id              TEXT PRIMARY KEY,
    store_type      TEXT NOT NULL,
    path            TEXT NOT NULL,
    key_path        TEXT,
    container_id    INTEGER REFERENCES containers(id),
    password_kind   TEXT NOT NULL,
    password        BLOB
);
CREATE TABLE locations (
    store_id        TEXT NOT NULL REFERENCES stores(id),
    alias           TEXT NOT NULL,
    certificate_id  INTEGER NOT NULL REFERENCES certificates(id),
    PRIMARY KEY (store_id, alias)
);
CREATE INDEX locations_certificate ON locations(certificate_id);
CREATE TABLE grants (
    principal     TEXT NOT NULL,
    container_id  INTEGER REFERENCES containers(id),
    permission    TEXT NOT NULL,
    UNIQUE (principal, container_id, permission)
);
CREATE TABLE jobs (
    id                      INTEGER PRIMARY KEY,
    store_id                TEXT NOT NULL REFERENCES stores(id),
    operation               TEXT NOT NULL,
    certificate_id          INTEGER NOT NULL REFERENCES certificates(id),
    alias                   TEXT,
    overwrite               INTEGER NOT NULL,
    sealed_entry_password   BLOB,
    scheduled_ms            INTEGER NOT NULL,
    principal               TEXT,
    status                  TEXT NOT NULL,
    result                  TEXT,
    message                 TEXT,
    claimed_ms              INTEGER
);
CREATE INDEX jobs_due ON jobs(status, scheduled_ms);
",
    r"
ALTER TABLE certificates ADD COLUMN owner TEXT;
ALTER TABLE jobs ADD COLUMN claimed_by TEXT;
CREATE INDEX jobs_store ON jobs(store_id, status);
",
    r"
-- Renewal: who renewed whom, policies, and their decisions. A certificate renewed by hand may
-- be renewed again; a policy renews it only while it has no successor at all, and at most once
-- (the partial unique index is what makes two concurrent policy checks renew it once).
CREATE TABLE renewals (
    successor_id    INTEGER PRIMARY KEY REFERENCES certificates(id),
    predecessor_id  INTEGER NOT NULL REFERENCES certificates(id),
    policy_id       INTEGER,
    created_ms      INTEGER NOT NULL
);
CREATE INDEX renewals_predecessor ON renewals(predecessor_id);
CREATE UNIQUE INDEX renewals_once_by_policy ON renewals(predecessor_id) WHERE policy_id IS NOT NULL;
CREATE INDEX certificates_not_after ON certificates(not_after);
CREATE TABLE policies (
    id                    INTEGER PRIMARY KEY,
    container_id          INTEGER REFERENCES containers(id),
    renew_before_secs     INTEGER NOT NULL,
    principal             TEXT NOT NULL,
    entry_password_kind   TEXT NOT NULL,
    entry_password        BLOB,
    created_ms            INTEGER NOT NULL
);
-- One policy per scope; container ids start at 1, so 0 stands for the global scope.
CREATE UNIQUE INDEX policies_scope ON policies(IFNULL(container_id, 0));
-- No foreign key to policies: the history outlives a removed policy.
CREATE TABLE policy_history (
    id              INTEGER PRIMARY KEY,
    policy_id       INTEGER NOT NULL,
    container_id    INTEGER,
    principal       TEXT NOT NULL,
    certificate_id  INTEGER NOT NULL REFERENCES certificates(id),
    not_after       INTEGER NOT NULL,
    window_start    INTEGER NOT NULL,
    successor_id    INTEGER REFERENCES certificates(id),
    outcome         TEXT NOT NULL,
    message         TEXT,
    decided_ms      INTEGER NOT NULL
);
CREATE TABLE policy_history_stores (
    history_id  INTEGER NOT NULL REFERENCES policy_history(id),
    store_id    TEXT NOT NULL,
    scheduled   INTEGER NOT NULL,
    reason      TEXT,
    PRIMARY KEY (history_id, store_id)
);
",
    // Users and API tokens of `pfxkit serve`.
    r"
CREATE TABLE users (
    name          TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL
);
CREATE TABLE tokens (
    id          INTEGER PRIMARY KEY,
    principal   TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    token_hash  TEXT NOT NULL UNIQUE,
    expires_ms  INTEGER
);
",
    // Agents (fleet): the machine that runs a store's jobs, PEM stores registered for a plain
    // key, per-store inventory schedules, and the agents with their one-time token hashes.
    r"
ALTER TABLE stores ADD COLUMN machine TEXT;
ALTER TABLE stores ADD COLUMN plain_key INTEGER NOT NULL DEFAULT 0;
ALTER TABLE stores ADD COLUMN inventory_every INTEGER;
CREATE INDEX stores_machine ON stores(machine);
CREATE TABLE agents (
    name                    TEXT PRIMARY KEY,
    state                   TEXT NOT NULL,
    token_hash              TEXT UNIQUE,
    certificate_serial      TEXT,
    certificate_thumbprint  TEXT,
    last_seen_ms            INTEGER,
    version                 TEXT,
    jobs_done               INTEGER NOT NULL DEFAULT 0,
    jobs_failed             INTEGER NOT NULL DEFAULT 0,
    created_ms              INTEGER NOT NULL
);
",
    // 6: when a job last started and when it ended (JobHistory's OperationStart and
    // OperationEnd). `claimed_ms` already records the start; it is now kept after the lease.
    r"
ALTER TABLE jobs ADD COLUMN finished_ms INTEGER;
",
    // 7: "one file is one store" by lookup (files.rs).
    crate::files::STORE_FILES_MIGRATION,
];

use crate::files::STORE_FILES_VERSION;

/// The SQLite catalog.
#[derive(Debug)]
pub struct SqliteCatalog {
    path: PathBuf,
    conn: Mutex<Connection>,
}

fn db(e: rusqlite::Error) -> Error {
    Error::Database(e.to_string())
}

use pfxkit::cert::now_millis;

impl SqliteCatalog {
    /// Opens (creating if needed) the database file and brings its schema up to date.
    ///
    /// # Errors
    /// [`Error::Database`] when the file cannot be opened or migrated.
    pub fn open(path: &Path) -> Result<Self> {
        let conn = Connection::open(path).map_err(db)?;
        conn.busy_timeout(std::time::Duration::from_secs(30))
            .map_err(db)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(db)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(db)?;
        conn.pragma_update(None, "foreign_keys", "ON").map_err(db)?;
        let catalog = SqliteCatalog {
            path: path.to_path_buf(),
            conn: Mutex::new(conn),
        };
        catalog.migrate()?;
        Ok(catalog)
    }

    /// Opens a database that must already exist and hold a catalog (never creates one).
    ///
    /// # Errors
    /// [`Error::Invalid`] when the file is missing or empty (no schema); [`Error::Database`]
    /// when it cannot be opened or migrated.
    pub fn open_existing(path: &Path) -> Result<Self> {
        use rusqlite::OpenFlags;
        let missing = || {
            Error::Invalid(format!(
                "catalog database {} is missing or empty: refusing to start an empty catalog; restore it",
                path.display()
            ))
        };
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|_| missing())?;
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(db)?;
        if version == 0 {
            return Err(missing());
        }
        drop(conn);
        Self::open(path)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn with<T>(&self, f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>) -> Result<T> {
        let mut conn = self
            .conn
            .lock()
            .map_err(|_| Error::Database("catalog connection poisoned".into()))?;
        f(&mut conn).map_err(db)
    }

    /// Every row `sql` selects (no parameters), read by `row`, in one statement.
    fn all<T>(
        &self,
        sql: &str,
        row: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Vec<T>> {
        self.with(|c| {
            let mut stmt = c.prepare(sql)?;
            stmt.query_map([], row)?.collect()
        })
    }

    fn migrate(&self) -> Result<()> {
        self.with(|conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let version: usize = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
            for (i, sql) in MIGRATIONS.iter().enumerate().skip(version) {
                tx.execute_batch(sql)?;
                if i + 1 == STORE_FILES_VERSION {
                    record_store_files(&tx)?;
                }
                tx.pragma_update(None, "user_version", i + 1)?;
            }
            tx.commit()
        })
    }
}

/// Records the files of every store recorded before `store_files` existed.
fn record_store_files(tx: &rusqlite::Transaction<'_>) -> rusqlite::Result<()> {
    let stores = {
        let mut stmt =
            tx.prepare("SELECT id, path, key_path, machine FROM stores ORDER BY rowid")?;
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
            .collect::<rusqlite::Result<_>>()?
    };
    let mut insert =
        tx.prepare("INSERT OR IGNORE INTO store_files (host, file, store_id) VALUES (?1, ?2, ?3)")?;
    for (host, file, id) in crate::files::store_file_rows(stores) {
        insert.execute(params![host, file, id])?;
    }
    Ok(())
}

type RawCertificate = (i64, Vec<u8>, String, bool, Option<String>);

fn record_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<RawCertificate> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
    ))
}

fn to_record(raw: RawCertificate) -> Result<CertificateRecord> {
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

const SELECT_CERT: &str = "SELECT c.id, c.der, c.chain, EXISTS(SELECT 1 FROM staged_keys k WHERE k.certificate_id = c.id), c.owner FROM certificates c";

fn insert_certificate(
    tx: &rusqlite::Transaction<'_>,
    cert: &Certificate,
    chain: &str,
) -> rusqlite::Result<i64> {
    if let Some(id) = tx
        .query_row(
            "SELECT id FROM certificates WHERE sha256 = ?1",
            [cert.sha256_hex()],
            |r| r.get(0),
        )
        .optional()?
    {
        if !chain.is_empty() {
            tx.execute(
                "UPDATE certificates SET chain = ?1 WHERE id = ?2 AND chain = ''",
                params![chain, id],
            )?;
        }
        return Ok(id);
    }
    tx.execute(
        "INSERT INTO certificates (sha256, sha1, der, subject, issuer, serial, not_before, not_after, chain, created_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        params![
            cert.sha256_hex(),
            cert.sha1_hex(),
            cert.der(),
            cert.subject(),
            cert.issuer(),
            cert.serial_hex(),
            i64::try_from(cert.not_before_unix()).unwrap_or(i64::MAX),
            i64::try_from(cert.not_after_unix()).unwrap_or(i64::MAX),
            chain,
            now_millis()
        ],
    )?;
    Ok(tx.last_insert_rowid())
}

/// Inserts a certificate, its chain, its staged key and a request inside `tx`.
fn insert_with_chain(
    tx: &rusqlite::Transaction<'_>,
    certificate: &Certificate,
    chain: &[Certificate],
    sealed_key: Option<&[u8]>,
    request: Option<RequestKind>,
    owner: Option<&str>,
) -> rusqlite::Result<(CertificateId, Option<RequestId>)> {
    // Chain certificates first, each with the rest of the chain above it.
    let mut ids = Vec::with_capacity(chain.len());
    for c in chain.iter().rev() {
        let above: Vec<String> = ids.iter().rev().map(i64::to_string).collect();
        ids.push(insert_certificate(tx, c, &above.join(","))?);
    }
    ids.reverse();
    let chain_text: Vec<String> = ids.iter().map(i64::to_string).collect();
    let id = insert_certificate(tx, certificate, &chain_text.join(","))?;
    if let Some(key) = sealed_key {
        // Whoever first stages the key owns the certificate; staging it again (the same key:
        // it matches the certificate) keeps the first owner.
        let staged_before: bool = tx.query_row(
            "SELECT EXISTS(SELECT 1 FROM staged_keys WHERE certificate_id = ?1)",
            [id],
            |r| r.get(0),
        )?;
        if !staged_before {
            tx.execute(
                "UPDATE certificates SET owner = ?1 WHERE id = ?2",
                params![owner, id],
            )?;
        }
        tx.execute(
            "INSERT INTO staged_keys (certificate_id, sealed) VALUES (?1, ?2)
             ON CONFLICT(certificate_id) DO UPDATE SET sealed = excluded.sealed",
            params![id, key],
        )?;
    }
    let request_id = match request {
        Some(kind) => {
            tx.execute(
                "INSERT INTO requests (certificate_id, kind, created_ms) VALUES (?1, ?2, ?3)",
                params![id, kind.name(), now_millis()],
            )?;
            Some(tx.last_insert_rowid())
        }
        None => None,
    };
    Ok((id, request_id))
}

type RawJob = (
    JobId,
    NewJob,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<i64>,
    Option<i64>,
);

fn job_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<RawJob> {
    Ok((
        row.get(0)?,
        NewJob {
            store_id: row.get(1)?,
            operation: row.get::<_, String>(2)?.parse().map_err(|e: Error| {
                rusqlite::Error::FromSqlConversionFailure(
                    2,
                    rusqlite::types::Type::Text,
                    Box::new(e),
                )
            })?,
            certificate_id: row.get(3)?,
            alias: row.get(4)?,
            overwrite: row.get(5)?,
            sealed_entry_password: row.get(6)?,
            scheduled_ms: row.get(7)?,
            principal: row.get(8)?,
        },
        row.get(9)?,
        row.get(10)?,
        row.get(11)?,
        row.get(12)?,
        row.get(13)?,
        row.get(14)?,
    ))
}

const SELECT_JOB: &str = "SELECT id, store_id, operation, certificate_id, alias, overwrite, sealed_entry_password, scheduled_ms, principal, status, result, message, claimed_by, claimed_ms, finished_ms FROM jobs";

fn to_job(raw: RawJob) -> Result<JobRecord> {
    let (id, job, status, result, message, claimed_by, claimed_ms, finished_ms) = raw;
    let status: JobStatus = status.parse()?;
    let leased = status == JobStatus::InProcess;
    Ok(JobRecord {
        id,
        job,
        status,
        result: result.map(|r| r.parse()).transpose()?,
        message,
        claimed_by: claimed_by.filter(|_| leased),
        claimed_ms: claimed_ms.filter(|_| leased),
        started_ms: claimed_ms,
        finished_ms,
    })
}

fn store_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<RawStore> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
        row.get(5)?,
        row.get(6)?,
        (row.get(7)?, row.get(8)?, row.get(9)?),
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

type RawAgent = (
    String,
    String,
    bool,
    Option<String>,
    Option<String>,
    Option<i64>,
    Option<String>,
    (i64, i64, i64),
);

fn agent_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<RawAgent> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
        row.get(5)?,
        row.get(6)?,
        (row.get(7)?, row.get(8)?, row.get(9)?),
    ))
}

fn to_agent(raw: RawAgent) -> Result<AgentRecord> {
    let (name, state, token_pending, serial, thumbprint, last_seen_ms, version, counts) = raw;
    let (jobs_done, jobs_failed, created_ms) = counts;
    Ok(AgentRecord {
        name,
        state: state.parse()?,
        token_pending,
        certificate_serial: serial,
        certificate_thumbprint: thumbprint,
        last_seen_ms,
        version,
        jobs_done,
        jobs_failed,
        created_ms,
    })
}

impl Catalog for SqliteCatalog {
    fn add_certificate(
        &self,
        certificate: &Certificate,
        chain: &[Certificate],
        sealed_key: Option<&[u8]>,
        request: Option<RequestKind>,
        owner: Option<&str>,
    ) -> Result<(CertificateRecord, Option<RequestId>)> {
        let (id, request_id) = self.with(|conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let ids = insert_with_chain(&tx, certificate, chain, sealed_key, request, owner)?;
            tx.commit()?;
            Ok(ids)
        })?;
        let record = self
            .certificate(id)?
            .ok_or_else(|| Error::Database("certificate vanished".into()))?;
        Ok((record, request_id))
    }

    fn certificate(&self, id: CertificateId) -> Result<Option<CertificateRecord>> {
        let raw = self.with(|c| {
            c.query_row(
                &format!("{SELECT_CERT} WHERE c.id = ?1"),
                [id],
                record_from_row,
            )
            .optional()
        })?;
        raw.map(to_record).transpose()
    }

    fn certificate_by_thumbprint(&self, thumbprint: &str) -> Result<Option<CertificateRecord>> {
        let t = thumbprint.to_ascii_lowercase();
        let raw = self.with(|c| {
            c.query_row(
                &format!("{SELECT_CERT} WHERE c.sha1 = ?1 OR c.sha256 = ?1 ORDER BY c.id LIMIT 1"),
                [t],
                record_from_row,
            )
            .optional()
        })?;
        raw.map(to_record).transpose()
    }

    fn certificate_by_request(&self, request: RequestId) -> Result<Option<CertificateRecord>> {
        let id: Option<i64> = self.with(|c| {
            c.query_row(
                "SELECT certificate_id FROM requests WHERE id = ?1",
                [request],
                |r| r.get(0),
            )
            .optional()
        })?;
        match id {
            Some(id) => self.certificate(id),
            None => Ok(None),
        }
    }

    fn staged_key(&self, certificate: CertificateId) -> Result<Option<Vec<u8>>> {
        self.with(|c| {
            c.query_row(
                "SELECT sealed FROM staged_keys WHERE certificate_id = ?1",
                [certificate],
                |r| r.get(0),
            )
            .optional()
        })
    }

    fn add_ca(&self, certificate: CertificateId, role: CaRole, sealed_key: &[u8]) -> Result<()> {
        let role = match role {
            CaRole::Root => "root",
            CaRole::Intermediate => "intermediate",
        };
        self.with(|c| {
            c.execute(
                "INSERT INTO cas (certificate_id, role, sealed_key) VALUES (?1, ?2, ?3)",
                params![certificate, role, sealed_key],
            )
            .map(|_| ())
        })
    }

    fn issuing_ca(&self) -> Result<Option<CaRecord>> {
        self.with(|c| {
            c.query_row(
                "SELECT certificate_id, role, sealed_key FROM cas
                 ORDER BY CASE role WHEN 'intermediate' THEN 0 ELSE 1 END, id DESC LIMIT 1",
                [],
                |r| {
                    let role: String = r.get(1)?;
                    Ok(CaRecord {
                        certificate_id: r.get(0)?,
                        role: if role == "intermediate" {
                            CaRole::Intermediate
                        } else {
                            CaRole::Root
                        },
                        sealed_key: r.get(2)?,
                    })
                },
            )
            .optional()
        })
    }

    fn add_container(&self, name: &str) -> Result<ContainerRecord> {
        if self.container_by_name(name)?.is_some() {
            return Err(Error::Invalid(format!("container '{name}' already exists")));
        }
        let id = self.with(|c| {
            c.execute("INSERT INTO containers (name) VALUES (?1)", [name])?;
            Ok(c.last_insert_rowid())
        })?;
        Ok(ContainerRecord {
            id,
            name: name.to_string(),
        })
    }

    fn container_by_name(&self, name: &str) -> Result<Option<ContainerRecord>> {
        self.with(|c| {
            c.query_row(
                "SELECT id, name FROM containers WHERE name = ?1",
                [name],
                |r| {
                    Ok(ContainerRecord {
                        id: r.get(0)?,
                        name: r.get(1)?,
                    })
                },
            )
            .optional()
        })
    }

    fn add_store(&self, store: &StoreRecord) -> Result<()> {
        let (kind, password) = secret_columns(&store.password);
        let machine = store.machine.as_deref();
        let host = crate::files::store_host(machine);
        let files = crate::files::store_file_keys(&store.path, store.key_path.as_deref(), machine);
        let taken: Option<(String, String)> = self.with(|c| {
            // IMMEDIATE: the lookup and the insert are one step for every writer.
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            for file in &files {
                let owner: Option<String> = tx
                    .query_row(
                        "SELECT store_id FROM store_files WHERE host = ?1 AND file = ?2",
                        params![host, file],
                        |r| r.get(0),
                    )
                    .optional()?;
                if let Some(owner) = owner {
                    return Ok(Some((file.clone(), owner)));
                }
            }
            tx.execute(
                "INSERT INTO stores (id, store_type, path, key_path, container_id, password_kind, password,
                     machine, plain_key, inventory_every)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                params![
                    store.id,
                    store.store_type.name(),
                    store.path.to_string_lossy(),
                    store.key_path.as_ref().map(|p| p.to_string_lossy().into_owned()),
                    store.container_id,
                    kind,
                    password,
                    store.machine,
                    store.plain_key,
                    store.inventory_every_secs
                ],
            )?;
            for file in &files {
                tx.execute(
                    "INSERT INTO store_files (host, file, store_id) VALUES (?1, ?2, ?3)",
                    params![host, file, store.id],
                )?;
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
        let raw = self.with(|c| {
            c.query_row(
                &format!("{SELECT_STORE} WHERE id = ?1"),
                [id],
                store_from_row,
            )
            .optional()
        })?;
        raw.map(to_store).transpose()
    }

    fn stores(&self) -> Result<Vec<StoreRecord>> {
        let raws = self.all(&format!("{SELECT_STORE} ORDER BY rowid"), store_from_row)?;
        raws.into_iter().map(to_store).collect()
    }

    fn grant(&self, grant: &Grant) -> Result<()> {
        self.with(|c| {
            c.execute(
                // Not INSERT OR IGNORE: the UNIQUE constraint treats NULL (global) container
                // ids as distinct, so a global grant given twice was recorded twice.
                "INSERT INTO grants (principal, container_id, permission) SELECT ?1, ?2, ?3
                 WHERE NOT EXISTS (SELECT 1 FROM grants WHERE principal = ?1
                                   AND container_id IS ?2 AND permission = ?3)",
                params![grant.principal, grant.container_id, grant.permission.name()],
            )
            .map(|_| ())
        })
    }

    fn container_has_grants(&self, container: ContainerId) -> Result<bool> {
        self.with(|c| {
            c.query_row(
                "SELECT EXISTS(SELECT 1 FROM grants WHERE container_id = ?1)",
                [container],
                |r| r.get(0),
            )
        })
    }

    fn grants(&self, principal: &str) -> Result<Vec<Grant>> {
        let raws: Vec<(Option<i64>, String)> = self.with(|c| {
            let mut stmt =
                c.prepare("SELECT container_id, permission FROM grants WHERE principal = ?1")?;
            stmt.query_map([principal], |r| Ok((r.get(0)?, r.get(1)?)))?
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
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.execute("DELETE FROM locations WHERE store_id = ?1", [store_id])?;
            for (alias, cert) in found {
                tx.execute(
                    "INSERT OR REPLACE INTO locations (store_id, alias, certificate_id) VALUES (?1, ?2, ?3)",
                    params![store_id, alias, cert],
                )?;
            }
            tx.commit()
        })
    }

    fn locations(&self, certificate: CertificateId) -> Result<Vec<Location>> {
        self.with(|c| {
            let mut stmt = c.prepare(
                "SELECT store_id, alias, certificate_id FROM locations WHERE certificate_id = ?1 ORDER BY store_id, alias",
            )?;
            stmt.query_map([certificate], |r| {
                Ok(Location { store_id: r.get(0)?, alias: r.get(1)?, certificate_id: r.get(2)? })
            })?
            .collect()
        })
    }

    fn add_jobs(&self, jobs: &[NewJob]) -> Result<Vec<JobId>> {
        self.with(|c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let mut ids = Vec::with_capacity(jobs.len());
            for j in jobs {
                tx.execute(
                    "INSERT INTO jobs (store_id, operation, certificate_id, alias, overwrite, sealed_entry_password,
                                       scheduled_ms, principal, status)
                     VALUES (?1, ?8, ?2, ?3, ?4, ?5, ?6, ?7, 'Waiting')",
                    params![
                        j.store_id,
                        j.certificate_id,
                        j.alias,
                        j.overwrite,
                        j.sealed_entry_password,
                        j.scheduled_ms,
                        j.principal,
                        j.operation.name()
                    ],
                )?;
                ids.push(tx.last_insert_rowid());
            }
            tx.commit()?;
            Ok(ids)
        })
    }

    fn jobs(&self) -> Result<Vec<JobRecord>> {
        let raws = self.all(&format!("{SELECT_JOB} ORDER BY id"), job_from_row)?;
        raws.into_iter().map(to_job).collect()
    }

    fn job_queue(&self, now_ms: i64, lease_ms: i64) -> Result<crate::jobs::JobQueue> {
        // Only open jobs are read (the jobs_due index), and only their counts leave SQLite.
        let row = self.with(|c| {
            c.query_row(
                "SELECT
                     COALESCE(SUM(CASE WHEN j.status = ?3 THEN j.scheduled_ms <= ?1
                                       ELSE COALESCE(j.claimed_ms, ?1) + ?2 <= ?1 END), 0),
                     COALESCE(SUM(j.status = ?4 AND COALESCE(j.claimed_ms, ?1) + ?2 > ?1), 0),
                     MAX(CASE WHEN j.status = ?4 AND COALESCE(j.claimed_ms, ?1) + ?2 > ?1
                              THEN COALESCE(j.claimed_ms, ?1) + ?2 END),
                     MIN(CASE WHEN j.status = ?3 AND j.scheduled_ms > ?1 THEN j.scheduled_ms END)
                 FROM jobs j JOIN stores s ON s.id = j.store_id
                 WHERE j.status IN (?3, ?4) AND s.machine IS NULL",
                params![
                    now_ms,
                    lease_ms,
                    JobStatus::Waiting.name(),
                    JobStatus::InProcess.name()
                ],
                |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, Option<i64>>(2)?,
                        r.get::<_, Option<i64>>(3)?,
                    ))
                },
            )
        })?;
        Ok(crate::jobs::JobQueue::from_row(row))
    }

    fn waiting_jobs_of_certificate(&self, certificate: CertificateId) -> Result<Vec<JobRecord>> {
        let raws: Vec<RawJob> = self.with(|c| {
            let mut stmt = c.prepare_cached(&format!(
                "{SELECT_JOB} WHERE certificate_id = ?1 AND status = 'Waiting' ORDER BY id"
            ))?;
            stmt.query_map([certificate], job_from_row)?.collect()
        })?;
        raws.into_iter().map(to_job).collect()
    }

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
        // BEGIN IMMEDIATE takes SQLite's write lock first, so no other runner can claim the
        // same rows between the SELECT and the UPDATE (PostgreSQL: an advisory lock around
        // the same walk).
        let raws = self.with(|c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let unfinished: Vec<(JobId, String, String, i64, Option<i64>)> = {
                // `IS` compares NULL with NULL as equal: the server's own stores.
                let mut stmt = tx.prepare(
                    "SELECT j.id, j.store_id, j.status, j.scheduled_ms, j.claimed_ms
                     FROM jobs j JOIN stores s ON s.id = j.store_id
                     WHERE j.status IN ('Waiting', 'InProcess') AND s.machine IS ?1
                     ORDER BY j.scheduled_ms, j.id",
                )?;
                stmt.query_map([machine], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?
            };
            // Walk each store's unfinished jobs in order; the first one this call cannot take
            // (not due, leased by a live runner, or over the limit) blocks the rest of its store.
            let mut blocked = std::collections::HashSet::new();
            let mut picked = Vec::new();
            for (id, store, status, scheduled, claimed) in unfinished {
                if blocked.contains(&store) {
                    continue;
                }
                let abandoned =
                    status == "InProcess" && claimed.is_none_or(|c| c < stale_before_ms);
                if picked.len() < limit && scheduled <= now_ms && (status == "Waiting" || abandoned)
                {
                    picked.push(id);
                } else {
                    blocked.insert(store);
                }
            }
            let mut raws = Vec::with_capacity(picked.len());
            {
                let mut claim = tx.prepare(
                    "UPDATE jobs SET status = 'InProcess', claimed_ms = ?1, claimed_by = ?2, finished_ms = NULL
                     WHERE id = ?3",
                )?;
                let mut read = tx.prepare(&format!("{SELECT_JOB} WHERE id = ?1"))?;
                for id in &picked {
                    claim.execute(params![now_millis(), holder, id])?;
                    raws.push(read.query_row([id], job_from_row)?);
                }
            }
            tx.commit()?;
            Ok(raws)
        })?;
        raws.into_iter().map(to_job).collect()
    }

    fn release_jobs(&self, ids: &[JobId], holder: &str) -> Result<()> {
        self.with(|c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            {
                let mut release = tx.prepare(
                    "UPDATE jobs SET status = 'Waiting', claimed_ms = NULL, claimed_by = NULL
                     WHERE id = ?1 AND status = 'InProcess' AND claimed_by = ?2",
                )?;
                for id in ids {
                    release.execute(params![id, holder])?;
                }
            }
            tx.commit()
        })
    }

    fn cancel_job(&self, id: JobId, message: &str) -> Result<bool> {
        self.with(|c| {
            c.execute(
                "UPDATE jobs SET status = 'Completed', result = 'Failure', message = ?1,
                     finished_ms = ?3
                 WHERE id = ?2 AND status = 'Waiting'",
                params![message, id, now_millis()],
            )
            .map(|n| n == 1)
        })
    }

    fn retry_job(&self, id: JobId, scheduled_ms: i64) -> Result<bool> {
        self.with(|c| {
            c.execute(
                "UPDATE jobs SET status = 'Waiting', result = NULL, message = NULL,
                     claimed_ms = NULL, claimed_by = NULL, finished_ms = NULL, scheduled_ms = ?1
                 WHERE id = ?2 AND status = 'Completed' AND result = 'Failure'",
                params![scheduled_ms, id],
            )
            .map(|n| n == 1)
        })
    }

    fn job(&self, id: JobId) -> Result<Option<JobRecord>> {
        let raw = self.with(|c| {
            c.query_row(&format!("{SELECT_JOB} WHERE id = ?1"), [id], job_from_row)
                .optional()
        })?;
        raw.map(to_job).transpose()
    }

    fn certificates(&self) -> Result<Vec<CertificateRecord>> {
        let raws = self.all(&format!("{SELECT_CERT} ORDER BY c.id"), record_from_row)?;
        raws.into_iter().map(to_record).collect()
    }

    fn containers(&self) -> Result<Vec<ContainerRecord>> {
        self.with(|c| {
            let mut stmt = c.prepare("SELECT id, name FROM containers ORDER BY id")?;
            stmt.query_map([], |r| {
                Ok(ContainerRecord {
                    id: r.get(0)?,
                    name: r.get(1)?,
                })
            })?
            .collect()
        })
    }

    fn remove_store(&self, id: &str) -> Result<bool> {
        let running = self.with(|c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let running: i64 = tx.query_row(
                "SELECT COUNT(*) FROM jobs WHERE store_id = ?1 AND status = ?2",
                params![id, JobStatus::InProcess.name()],
                |r| r.get(0),
            )?;
            if running > 0 {
                return Ok(Some(running));
            }
            tx.execute("DELETE FROM locations WHERE store_id = ?1", [id])?;
            tx.execute("DELETE FROM jobs WHERE store_id = ?1", [id])?;
            tx.execute("DELETE FROM store_files WHERE store_id = ?1", [id])?;
            let removed = tx.execute("DELETE FROM stores WHERE id = ?1", [id])?;
            tx.commit()?;
            Ok(if removed > 0 { None } else { Some(-1) })
        })?;
        match running {
            None => Ok(true),
            Some(-1) => Ok(false),
            Some(n) => Err(Error::Invalid(format!(
                "store {id} has {n} running job(s); remove it when they have ended"
            ))),
        }
    }

    fn retire_cas(&self) -> Result<Vec<CaRecord>> {
        self.with(|c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let retired = {
                let mut stmt =
                    tx.prepare("SELECT certificate_id, role, sealed_key FROM cas ORDER BY id")?;
                stmt.query_map([], |r| {
                    let role: String = r.get(1)?;
                    Ok(CaRecord {
                        certificate_id: r.get(0)?,
                        role: if role == "intermediate" {
                            CaRole::Intermediate
                        } else {
                            CaRole::Root
                        },
                        sealed_key: r.get(2)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?
            };
            tx.execute("DELETE FROM cas", [])?;
            tx.commit()?;
            Ok(retired)
        })
    }

    fn finish_job(
        &self,
        id: JobId,
        status: JobStatus,
        result: JobResult,
        message: &str,
    ) -> Result<()> {
        self.with(|c| {
            c.execute(
                "UPDATE jobs SET status = ?1, result = ?2, message = ?3, finished_ms = ?5
                 WHERE id = ?4",
                params![status.name(), result.name(), message, id, ended_ms(status)],
            )
            .map(|_| ())
        })
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
        let ids = self.with(|conn| {
            // BEGIN IMMEDIATE: the check below and the insert are one step for every writer.
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            if policy.is_some() {
                let renewed: bool = tx.query_row(
                    "SELECT EXISTS(SELECT 1 FROM renewals WHERE predecessor_id = ?1)",
                    [predecessor],
                    |r| r.get(0),
                )?;
                if renewed {
                    return Ok(None);
                }
            }
            let (id, request) = insert_with_chain(
                &tx,
                certificate,
                chain,
                Some(sealed_key),
                Some(RequestKind::Renew),
                owner,
            )?;
            // The unique index on policy renewals refuses a second one even where the check
            // above does not serialise writers (PostgreSQL under READ COMMITTED).
            tx.execute(
                "INSERT INTO renewals (predecessor_id, successor_id, policy_id, created_ms)
                 VALUES (?1, ?2, ?3, ?4)",
                params![predecessor, id, policy, now_millis()],
            )?;
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
            c.query_row(
                "SELECT MAX(successor_id) FROM renewals WHERE predecessor_id = ?1",
                [certificate],
                |r| r.get(0),
            )
        })
    }

    fn expiring(&self, not_after_by: i64) -> Result<Vec<ExpiringRecord>> {
        type Raw = (RawCertificate, i64, Option<i64>);
        let raws: Vec<Raw> = self.with(|c| {
            let mut stmt = c.prepare(
                "SELECT c.id, c.der, c.chain,
                        EXISTS(SELECT 1 FROM staged_keys k WHERE k.certificate_id = c.id),
                        c.owner,
                        (SELECT COUNT(*) FROM locations l WHERE l.certificate_id = c.id),
                        (SELECT MAX(r.successor_id) FROM renewals r WHERE r.predecessor_id = c.id)
                 FROM certificates c
                 WHERE c.not_after <= ?1
                   AND EXISTS(SELECT 1 FROM locations l WHERE l.certificate_id = c.id)
                 ORDER BY c.not_after, c.id",
            )?;
            stmt.query_map([not_after_by], |r| {
                Ok((record_from_row(r)?, r.get(5)?, r.get(6)?))
            })?
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
        let id = self.with(|c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.execute(
                "DELETE FROM policies WHERE IFNULL(container_id, 0) = IFNULL(?1, 0)",
                [policy.container_id],
            )?;
            tx.execute(
                "INSERT INTO policies (container_id, renew_before_secs, principal,
                                       entry_password_kind, entry_password, created_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    policy.container_id,
                    policy.renew_before_secs,
                    policy.principal,
                    kind,
                    secret,
                    now_millis()
                ],
            )?;
            let id = tx.last_insert_rowid();
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
            let mut stmt = c.prepare(
                "SELECT id, container_id, renew_before_secs, principal, entry_password_kind,
                        entry_password
                 FROM policies ORDER BY IFNULL(container_id, 0)",
            )?;
            stmt.query_map([], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            })?
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
            c.execute(
                "DELETE FROM policies WHERE IFNULL(container_id, 0) = IFNULL(?1, 0)",
                [container],
            )
            .map(|n| n > 0)
        })
    }

    fn add_history(&self, entry: &HistoryRecord) -> Result<HistoryId> {
        self.with(|c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.execute(
                "INSERT INTO policy_history (policy_id, container_id, principal, certificate_id,
                     not_after, window_start, successor_id, outcome, message, decided_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                params![
                    entry.policy_id,
                    entry.container_id,
                    entry.principal,
                    entry.certificate_id,
                    entry.not_after,
                    entry.window_start,
                    entry.successor_id,
                    entry.outcome.name(),
                    entry.message,
                    entry.decided_ms
                ],
            )?;
            let id = tx.last_insert_rowid();
            for store in &entry.stores {
                tx.execute(
                    "INSERT OR REPLACE INTO policy_history_stores (history_id, store_id, scheduled, reason)
                     VALUES (?1, ?2, ?3, ?4)",
                    params![id, store.store_id, store.scheduled, store.reason],
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
            let mut stmt = c.prepare(
                "SELECT id, policy_id, container_id, principal, certificate_id, not_after,
                        window_start, successor_id, outcome, message, decided_ms
                 FROM policy_history ORDER BY id",
            )?;
            let raws: Vec<Raw> = stmt
                .query_map([], |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                        r.get(6)?,
                        r.get(7)?,
                        r.get(8)?,
                        r.get(9)?,
                        r.get(10)?,
                    ))
                })?
                .collect::<rusqlite::Result<_>>()?;
            let mut stmt = c.prepare(
                "SELECT history_id, store_id, scheduled, reason FROM policy_history_stores
                 ORDER BY history_id, store_id",
            )?;
            let stores: Vec<(i64, StoreDecision)> = stmt
                .query_map([], |r| {
                    Ok((
                        r.get(0)?,
                        StoreDecision {
                            store_id: r.get(1)?,
                            scheduled: r.get(2)?,
                            reason: r.get(3)?,
                        },
                    ))
                })?
                .collect::<rusqlite::Result<_>>()?;
            Ok((raws, stores))
        })?;
        let mut by_entry: std::collections::HashMap<i64, Vec<StoreDecision>> =
            std::collections::HashMap::new();
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
            c.execute(
                "INSERT OR IGNORE INTO users (name, password_hash) VALUES (?1, ?2)",
                params![name, password_hash],
            )
        })?;
        if inserted == 0 {
            return Err(Error::Invalid(format!("user '{name}' already exists")));
        }
        Ok(())
    }

    fn remove_user(&self, name: &str) -> Result<bool> {
        self.with(|c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.execute("DELETE FROM tokens WHERE principal = ?1", [name])?;
            let n = tx.execute("DELETE FROM users WHERE name = ?1", [name])?;
            tx.commit()?;
            Ok(n > 0)
        })
    }

    fn users(&self) -> Result<Vec<String>> {
        self.with(|c| {
            let mut stmt = c.prepare("SELECT name FROM users ORDER BY name")?;
            stmt.query_map([], |r| r.get(0))?.collect()
        })
    }

    fn password_hash(&self, name: &str) -> Result<Option<String>> {
        self.with(|c| {
            c.query_row(
                "SELECT password_hash FROM users WHERE name = ?1",
                [name],
                |r| r.get(0),
            )
            .optional()
        })
    }

    fn add_token(&self, principal: &str, token_hash: &str, expires_ms: Option<i64>) -> Result<i64> {
        let id = self.with(|c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let exists: bool = tx.query_row(
                "SELECT EXISTS(SELECT 1 FROM users WHERE name = ?1)",
                [principal],
                |r| r.get(0),
            )?;
            if !exists {
                return Ok(None);
            }
            tx.execute(
                "INSERT INTO tokens (principal, token_hash, expires_ms) VALUES (?1, ?2, ?3)",
                params![principal, token_hash, expires_ms],
            )?;
            let id = tx.last_insert_rowid();
            tx.commit()?;
            Ok(Some(id))
        })?;
        id.ok_or_else(|| Error::NotFound(format!("unknown user '{principal}'")))
    }

    fn token(&self, token_hash: &str) -> Result<Option<TokenRecord>> {
        self.with(|c| {
            c.query_row(
                "SELECT id, principal, expires_ms FROM tokens WHERE token_hash = ?1",
                [token_hash],
                |r| {
                    Ok(TokenRecord {
                        id: r.get(0)?,
                        principal: r.get(1)?,
                        expires_ms: r.get(2)?,
                    })
                },
            )
            .optional()
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
        self.with(|c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let recorded = tx.execute(
                "UPDATE jobs SET status = ?1, result = ?2, message = ?3
                 WHERE id = ?4 AND status = 'InProcess' AND claimed_by = ?5",
                params![status.name(), result.name(), message, id, holder],
            )? == 1;
            if recorded && let Some(agent) = agent {
                let failed = result == JobResult::Failure;
                tx.execute(
                    "UPDATE agents SET jobs_done = jobs_done + ?1, jobs_failed = jobs_failed + ?2,
                         last_seen_ms = ?3
                     WHERE name = ?4",
                    params![i64::from(!failed), i64::from(failed), now_millis(), agent],
                )?;
            }
            tx.commit()?;
            Ok(recorded)
        })
    }

    fn machines_with_due_jobs(&self, now_ms: i64, stale_before_ms: i64) -> Result<Vec<String>> {
        self.with(|c| {
            let mut stmt = c.prepare(
                "SELECT DISTINCT s.machine FROM jobs j JOIN stores s ON s.id = j.store_id
                 WHERE s.machine IS NOT NULL AND j.scheduled_ms <= ?1
                   AND (j.status = 'Waiting'
                        OR (j.status = 'InProcess' AND (j.claimed_ms IS NULL OR j.claimed_ms < ?2)))
                 ORDER BY s.machine",
            )?;
            stmt.query_map(params![now_ms, stale_before_ms], |r| r.get(0))?
                .collect()
        })
    }

    fn add_agent(&self, name: &str, token_hash: &str) -> Result<()> {
        let inserted =
            self.with(|c| {
                c.execute(
                "INSERT INTO agents (name, state, token_hash, created_ms) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (name) DO UPDATE SET state = excluded.state,
                     token_hash = excluded.token_hash, certificate_serial = NULL,
                     certificate_thumbprint = NULL
                 WHERE agents.state = 'revoked'",
                params![name, AgentState::Registered.name(), token_hash, now_millis()],
            )
            })?;
        if inserted == 0 {
            return Err(Error::Invalid(format!("agent '{name}' exists already")));
        }
        Ok(())
    }

    fn agents(&self) -> Result<Vec<AgentRecord>> {
        let raws = self.all(&format!("{SELECT_AGENT} ORDER BY name"), agent_from_row)?;
        raws.into_iter().map(to_agent).collect()
    }

    fn agent(&self, name: &str) -> Result<Option<AgentRecord>> {
        let raw = self.with(|c| {
            c.query_row(
                &format!("{SELECT_AGENT} WHERE name = ?1"),
                [name],
                agent_from_row,
            )
            .optional()
        })?;
        raw.map(to_agent).transpose()
    }

    fn agent_token_matches(&self, name: &str, token_hash: &str) -> Result<bool> {
        self.with(|c| {
            c.query_row(
                "SELECT COUNT(*) FROM agents WHERE name = ?1 AND state = ?2 AND token_hash = ?3",
                params![name, AgentState::Registered.name(), token_hash],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n == 1)
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
            c.execute(
                "UPDATE agents SET token_hash = NULL, certificate_serial = ?1,
                     certificate_thumbprint = ?2
                 WHERE name = ?3 AND state = ?4 AND token_hash = ?5",
                params![
                    serial,
                    thumbprint,
                    name,
                    AgentState::Registered.name(),
                    token_hash
                ],
            )
            .map(|n| n == 1)
        })
    }

    fn revoke_agent(&self, name: &str) -> Result<bool> {
        self.with(|c| {
            c.execute(
                "UPDATE agents SET state = ?1, token_hash = NULL WHERE name = ?2",
                params![AgentState::Revoked.name(), name],
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
            c.execute(
                "UPDATE agents SET last_seen_ms = ?1, version = ?2, jobs_done = jobs_done + ?3,
                     jobs_failed = jobs_failed + ?4
                 WHERE name = ?5",
                params![now_ms, version, done, failed, name],
            )
            .map(|_| ())
        })
    }

    fn revoke_token(&self, id: i64) -> Result<bool> {
        self.with(|c| Ok(c.execute("DELETE FROM tokens WHERE id = ?1", [id])? > 0))
    }
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
