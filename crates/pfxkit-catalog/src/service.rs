//! The catalog's operations: initialisation, the embedded CA, enrollment, import, renewal and
//! look-ups.

use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use super::ca::{self, Issuer, KeyType, San, Usage};
use super::postgres::{self as pg, PostgresCatalog};
use super::seal::CatalogKey;
use super::sqlite::SqliteCatalog;
use super::{
    Action, CaRole, Catalog, CertificateId, CertificateRecord, ContainerRecord, RequestId,
    RequestKind, StoreRecord,
};
use crate::error::{Error, Result};
use pfxkit::cert::Certificate;
use pfxkit::identity::Identity;
use pfxkit::limits::Limits;
use pfxkit::pkcs12::{Builder, Profile};
use pfxkit::secret::{Password, PrivateKey};

const DB_FILE: &str = "catalog.sqlite";
const KEY_FILE: &str = "catalog.key";

/// The label of the sealed value by which a shared catalog recognises its key.
const KEY_CHECK_LABEL: &str = "catalog-key-check";
const KEY_CHECK_VALUE: &[u8] = b"pfxkit catalog key check v1";

/// Where a catalog lives: the `--catalog` value (and `--catalog-key`).
#[derive(Clone)]
#[non_exhaustive]
pub enum CatalogLocation {
    /// The embedded catalog: a directory holding the SQLite database and the key file.
    Directory(PathBuf),
    /// A shared PostgreSQL catalog; the key is a file given to every server and runner, never
    /// stored in the database.
    Postgres {
        /// `postgres://…`, `postgresql://…` or `host=… dbname=…` (may hold a password).
        conninfo: String,
        /// The catalog key file.
        key_file: PathBuf,
    },
}

impl std::fmt::Debug for CatalogLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CatalogLocation::Directory(d) => write!(f, "Directory({})", d.display()),
            CatalogLocation::Postgres { key_file, .. } => write!(
                f,
                "Postgres {{ conninfo: [redacted], key_file: {} }}",
                key_file.display()
            ),
        }
    }
}

impl CatalogLocation {
    /// Reads a `--catalog` value: a PostgreSQL connection string (see
    /// [`postgres::is_connection_string`](crate::postgres::is_connection_string)), which needs
    /// `key_file`, or else a directory (where `key_file`, if given, must be absent).
    ///
    /// # Errors
    /// [`Error::Invalid`] for a PostgreSQL catalog without a key file.
    pub fn parse(catalog: &str, key_file: Option<&Path>) -> Result<Self> {
        if pg::is_connection_string(catalog) {
            let key_file = key_file.ok_or_else(|| {
                Error::Invalid(
                    "a PostgreSQL catalog needs its key file: --catalog-key FILE or \
                     PFXKIT_CATALOG_KEY (the key is never kept in the database)"
                        .into(),
                )
            })?;
            return Ok(CatalogLocation::Postgres {
                conninfo: catalog.to_string(),
                key_file: key_file.to_path_buf(),
            });
        }
        if key_file.is_some() {
            return Err(Error::Invalid(
                "--catalog-key is for a PostgreSQL catalog; a catalog directory keeps its key \
                 inside"
                    .into(),
            ));
        }
        Ok(CatalogLocation::Directory(PathBuf::from(catalog)))
    }

    /// What to show a user: the directory, or the PostgreSQL host and database (no password).
    pub fn describe(&self) -> String {
        match self {
            CatalogLocation::Directory(d) => d.display().to_string(),
            CatalogLocation::Postgres { conninfo, .. } => {
                match conninfo.parse::<::postgres::Config>() {
                    Ok(c) => {
                        let hosts: Vec<String> = c
                            .get_hosts()
                            .iter()
                            .map(|h| match h {
                                ::postgres::config::Host::Tcp(t) => t.clone(),
                                ::postgres::config::Host::Unix(p) => p.display().to_string(),
                            })
                            .collect();
                        format!(
                            "PostgreSQL database '{}' on {}",
                            c.get_dbname().unwrap_or("(default)"),
                            if hosts.is_empty() {
                                "(default host)".to_string()
                            } else {
                                hosts.join(",")
                            }
                        )
                    }
                    Err(_) => "PostgreSQL".to_string(),
                }
            }
        }
    }
}

/// Default validity of an enrolled certificate, in days.
pub const DEFAULT_DAYS: u32 = 397;
/// Validity of a CA certificate, in days.
pub const CA_DAYS: u32 = 3650;

/// A catalog opened for work: its storage, its key, and where it lives.
#[derive(Debug)]
pub struct Service {
    dir: PathBuf,
    catalog: Box<dyn Catalog>,
    key: CatalogKey,
    limits: Limits,
}

/// What enrollment, import and renewal return (Keyfactor's `CertificateInformation`).
#[derive(Debug)]
#[non_exhaustive]
pub struct Enrollment {
    /// `KeyfactorId`.
    pub certificate_id: CertificateId,
    /// `KeyfactorRequestId`.
    pub request_id: RequestId,
    /// The certificate.
    pub certificate: Certificate,
    /// `Pkcs12Blob`: key and chain under the transport password.
    pub pkcs12: Vec<u8>,
}

/// A CA made but not yet recorded: the root and, when asked for, an intermediate, with keys.
struct MadeCa {
    root: (Certificate, PrivateKey),
    intermediate: Option<(Certificate, PrivateKey)>,
}

/// What [`Service::replace_ca`] did.
#[derive(Debug)]
#[non_exhaustive]
pub struct CaReplacement {
    /// The new issuing CA certificate.
    pub issuing: Certificate,
    /// The CA certificates whose keys were retired.
    pub replaced: Vec<Certificate>,
}

/// The embedded CA as [`Service::ca`] shows it.
#[derive(Debug)]
#[non_exhaustive]
pub struct CaInfo {
    /// Root or intermediate.
    pub role: CaRole,
    /// The certificate that issues end-entity certificates.
    pub issuing: CertificateRecord,
    /// The chain above it (issuer first).
    pub chain: Vec<Certificate>,
}

/// Which certificates [`Service::certificates`] lists.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct CertificateFilter {
    /// Subject DN contains this text (case-insensitive).
    pub subject: Option<String>,
    /// Not expired, and expiring within this many seconds.
    pub expiring_within_secs: Option<u64>,
}

impl CertificateFilter {
    /// A filter with these criteria.
    pub fn new(subject: Option<String>, expiring_within_secs: Option<u64>) -> Self {
        CertificateFilter {
            subject,
            expiring_within_secs,
        }
    }
}

/// Which certificate an operation is about: exactly one of id and thumbprint.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum CertificateRef {
    /// By `KeyfactorId`.
    Id(CertificateId),
    /// By SHA-1 or SHA-256 thumbprint.
    Thumbprint(String),
}

/// What to enroll.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct EnrollRequest {
    /// Subject DN (RFC 4514).
    pub subject: String,
    /// Subject alternative names.
    pub sans: Vec<San>,
    /// Key type to generate.
    pub key_type: KeyType,
    /// Validity in days.
    pub days: u32,
}

impl EnrollRequest {
    /// A request for `subject` with an EC P-256 key, valid [`DEFAULT_DAYS`].
    pub fn new(subject: impl Into<String>) -> Self {
        EnrollRequest {
            subject: subject.into(),
            sans: Vec::new(),
            key_type: KeyType::EcP256,
            days: DEFAULT_DAYS,
        }
    }

    /// With these SANs.
    #[must_use]
    pub fn sans(mut self, sans: Vec<San>) -> Self {
        self.sans = sans;
        self
    }

    /// With this key type.
    #[must_use]
    pub fn key_type(mut self, key_type: KeyType) -> Self {
        self.key_type = key_type;
        self
    }

    /// Valid for this many days.
    #[must_use]
    pub fn days(mut self, days: u32) -> Self {
        self.days = days;
        self
    }
}

/// Whether `key` is the key the shared catalog was created with: it must open the check value
/// sealed at `catalog init`, else every secret would fail later and far from the cause.
fn verify_key(key: &CatalogKey, stored: &[u8], key_file: &Path) -> Result<()> {
    match key.open(KEY_CHECK_LABEL, stored) {
        Ok(v) if v.as_slice() == KEY_CHECK_VALUE => Ok(()),
        _ => Err(Error::Invalid(format!(
            "the catalog key {} is not the key of this PostgreSQL catalog",
            key_file.display()
        ))),
    }
}

fn key_dir(key_file: &Path) -> PathBuf {
    key_file
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

fn staged_label(cert: &Certificate) -> String {
    format!("staged-key:{}", cert.sha256_hex())
}

fn ca_label(cert: &Certificate) -> String {
    format!("ca-key:{}", cert.sha256_hex())
}

impl Service {
    /// Creates a catalog in `dir` (made 0700 if missing): the database and a new 0600 key file.
    ///
    /// # Errors
    /// [`Error::Invalid`] when a catalog already exists there; I/O and database errors.
    pub fn init(dir: &Path) -> Result<Service> {
        use std::os::unix::fs::DirBuilderExt;
        if dir.join(KEY_FILE).exists() || dir.join(DB_FILE).exists() {
            return Err(Error::Invalid(format!(
                "a catalog already exists in {}",
                dir.display()
            )));
        }
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| Error::io(dir, e))?;
        // An existing directory is made 0700 too: the catalog's files are nobody else's.
        std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .map_err(|e| Error::io(dir, e))?;
        let key = CatalogKey::create(&dir.join(KEY_FILE))?;
        let catalog = SqliteCatalog::open(&dir.join(DB_FILE))?;
        Ok(Service {
            dir: dir.to_path_buf(),
            catalog: Box::new(catalog),
            key,
            limits: Limits::default(),
        })
    }

    /// Opens the catalog in `dir`: its key and its database must both be there (a missing or
    /// empty database is never silently recreated: the certificates, staged keys and grants it
    /// held would be gone).
    ///
    /// # Errors
    /// [`Error::Invalid`] when there is no catalog, only half of one (a key without a database
    /// or the reverse), an empty database, or a key others may read; I/O and database errors.
    pub fn open(dir: &Path) -> Result<Service> {
        let (key_path, db_path) = (dir.join(KEY_FILE), dir.join(DB_FILE));
        let exists = |p: &Path| std::fs::symlink_metadata(p).is_ok();
        match (exists(&key_path), exists(&db_path)) {
            (true, true) => {}
            (false, false) => {
                return Err(Error::Invalid(format!(
                    "no catalog in {} (run `pfxkit catalog init` first)",
                    dir.display()
                )));
            }
            (true, false) => {
                return Err(Error::Invalid(format!(
                    "the catalog in {} has a key but no database ({DB_FILE}): refusing to start an empty one; restore the database",
                    dir.display()
                )));
            }
            (false, true) => {
                return Err(Error::Invalid(format!(
                    "the catalog in {} has a database but no key ({KEY_FILE}): its sealed secrets cannot be opened; restore the key",
                    dir.display()
                )));
            }
        }
        let key = CatalogKey::load(&key_path)?;
        let catalog = SqliteCatalog::open_existing(&db_path)?;
        Ok(Service {
            dir: dir.to_path_buf(),
            catalog: Box::new(catalog),
            key,
            limits: Limits::default(),
        })
    }

    /// Creates the catalog at `location`. A directory must not hold a catalog yet. A PostgreSQL
    /// catalog is created or migrated (safe to repeat, and from several hosts at once); its key
    /// file is created (0600) when missing, or else must be the key this catalog was created
    /// with.
    ///
    /// # Errors
    /// [`Error::Invalid`] for an existing directory catalog or a key that is not the shared
    /// catalog's; [`Error::Unavailable`] when PostgreSQL cannot be reached; I/O and database
    /// errors.
    pub fn init_at(location: &CatalogLocation) -> Result<Service> {
        match location {
            CatalogLocation::Directory(dir) => Service::init(dir),
            CatalogLocation::Postgres { conninfo, key_file } => {
                let (key, created) = if key_file.exists() {
                    (CatalogKey::load(key_file)?, false)
                } else {
                    match CatalogKey::create(key_file) {
                        Ok(key) => (key, true),
                        // Another host's `catalog init` created it a moment ago.
                        Err(_) if key_file.exists() => (CatalogKey::load(key_file)?, false),
                        Err(e) => return Err(e),
                    }
                };
                let result = (|| {
                    let catalog = PostgresCatalog::migrate(conninfo)?;
                    let check = key.seal(KEY_CHECK_LABEL, KEY_CHECK_VALUE)?;
                    let stored = catalog.meta_insert_once(KEY_CHECK_LABEL, &check)?;
                    verify_key(&key, &stored, key_file)?;
                    Ok(Service::with_catalog(
                        &key_dir(key_file),
                        Box::new(catalog),
                        key,
                    ))
                })();
                if result.is_err() && created {
                    // A key made for a catalog that could not be set up is of no use to anyone.
                    let _ = std::fs::remove_file(key_file);
                }
                result
            }
        }
    }

    /// Opens the catalog at `location`.
    ///
    /// # Errors
    /// [`Error::Invalid`] when there is none, or the key is not its key; [`Error::Unavailable`]
    /// when PostgreSQL cannot be reached; I/O and database errors.
    pub fn open_at(location: &CatalogLocation) -> Result<Service> {
        match location {
            CatalogLocation::Directory(dir) => Service::open(dir),
            CatalogLocation::Postgres { conninfo, key_file } => {
                let key = CatalogKey::load(key_file)?;
                let catalog = PostgresCatalog::connect(conninfo)?;
                let stored = catalog.meta(KEY_CHECK_LABEL)?.ok_or_else(|| {
                    Error::Invalid(
                        "the PostgreSQL catalog has no key check (run `pfxkit catalog init`)"
                            .into(),
                    )
                })?;
                verify_key(&key, &stored, key_file)?;
                Ok(Service::with_catalog(
                    &key_dir(key_file),
                    Box::new(catalog),
                    key,
                ))
            }
        }
    }

    /// A service over any [`Catalog`] implementation (e.g. a shared database) and key.
    pub fn with_catalog(dir: &Path, catalog: Box<dyn Catalog>, key: CatalogKey) -> Service {
        Service {
            dir: dir.to_path_buf(),
            catalog,
            key,
            limits: Limits::default(),
        }
    }

    /// The catalog directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The storage.
    pub fn catalog(&self) -> &dyn Catalog {
        self.catalog.as_ref()
    }

    /// The catalog key (sealing and opening secrets).
    pub fn key(&self) -> &CatalogKey {
        &self.key
    }

    /// The limits applied to files read.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Creates the embedded CA: a root for `subject`, and an intermediate for
    /// `intermediate_subject` when given (which then issues end-entity certificates). Returns
    /// the issuing CA's certificate. A catalog has one CA: a second `ca_init` is refused (see
    /// [`Service::replace_ca`]).
    ///
    /// # Errors
    /// [`Error::Invalid`] when the catalog has a CA already, or for a bad DN; key generation and
    /// database errors.
    pub fn ca_init(
        &self,
        subject: &str,
        key_type: KeyType,
        intermediate_subject: Option<&str>,
    ) -> Result<Certificate> {
        if let Some(current) = self.catalog.issuing_ca()? {
            let current = self.require(current.certificate_id)?;
            return Err(Error::Invalid(format!(
                "the catalog already has a CA ({}, thumbprint {}); replacing it needs --replace-ca",
                current.certificate.subject(),
                current.certificate.sha1_hex()
            )));
        }
        Ok(self
            .new_ca(subject, key_type, intermediate_subject)?
            .issuing)
    }

    /// Replaces the embedded CA: makes a new one as [`Service::ca_init`] does, then retires
    /// every earlier CA key (their certificates stay recorded, so chains of certificates they
    /// issued still resolve). Returns the new issuing CA and the CA certificates replaced.
    ///
    /// # Errors
    /// As [`Service::ca_init`], except that an existing CA is what this replaces.
    pub fn replace_ca(
        &self,
        subject: &str,
        key_type: KeyType,
        intermediate_subject: Option<&str>,
    ) -> Result<CaReplacement> {
        // Every certificate is made before anything is retired: a bad DN or a failed key
        // generation leaves the old CA in place.
        let made = self.made_ca(subject, key_type, intermediate_subject)?;
        let retired = self.catalog.retire_cas()?;
        let replaced = retired
            .iter()
            .map(|ca| Ok(self.require(ca.certificate_id)?.certificate))
            .collect::<Result<Vec<_>>>()?;
        let issuing = self.record_ca(made)?;
        Ok(CaReplacement { issuing, replaced })
    }

    /// The embedded CA: the issuing certificate and the chain above it.
    ///
    /// # Errors
    /// [`Error::NotFound`] when the catalog has no CA; database errors.
    pub fn ca(&self) -> Result<CaInfo> {
        let ca = self.catalog.issuing_ca()?.ok_or_else(|| {
            Error::NotFound("the catalog has no CA (run `pfxkit ca init` first)".into())
        })?;
        let record = self.require(ca.certificate_id)?;
        let chain = self.chain_of(&record)?;
        Ok(CaInfo {
            role: ca.role,
            issuing: record,
            chain,
        })
    }

    fn new_ca(
        &self,
        subject: &str,
        key_type: KeyType,
        intermediate_subject: Option<&str>,
    ) -> Result<CaReplacement> {
        let made = self.made_ca(subject, key_type, intermediate_subject)?;
        Ok(CaReplacement {
            issuing: self.record_ca(made)?,
            replaced: Vec::new(),
        })
    }

    /// Generates and signs a root (and an intermediate), recording nothing.
    fn made_ca(
        &self,
        subject: &str,
        key_type: KeyType,
        intermediate_subject: Option<&str>,
    ) -> Result<MadeCa> {
        let root_key = key_type.generate()?;
        let (not_before, not_after) = ca::validity(CA_DAYS);
        let root = ca::issue(
            &ca::Request {
                subject_der: ca::name_der(subject)?,
                sans: &[],
                subject_key: (&root_key).into(),
                not_before,
                not_after,
                usage: Usage::Ca,
            },
            &Issuer {
                certificate: None,
                key: &root_key,
            },
        )?;
        let intermediate = match intermediate_subject {
            None => None,
            Some(sub) => {
                let int_key = key_type.generate()?;
                let int = ca::issue(
                    &ca::Request {
                        subject_der: ca::name_der(sub)?,
                        sans: &[],
                        subject_key: (&int_key).into(),
                        not_before,
                        not_after,
                        usage: Usage::Ca,
                    },
                    &Issuer {
                        certificate: Some(&root),
                        key: &root_key,
                    },
                )?;
                Some((int, int_key))
            }
        };
        Ok(MadeCa {
            root: (root, root_key),
            intermediate,
        })
    }

    /// Records a made CA; returns the issuing certificate.
    fn record_ca(&self, made: MadeCa) -> Result<Certificate> {
        let (root, root_key) = made.root;
        let sealed = self
            .key
            .seal(&ca_label(&root), root_key.expose_pkcs8_der())?;
        let (record, _) = self.catalog.add_certificate(&root, &[], None, None, None)?;
        self.catalog.add_ca(record.id, CaRole::Root, &sealed)?;
        let Some((int, int_key)) = made.intermediate else {
            return Ok(root);
        };
        let sealed = self.key.seal(&ca_label(&int), int_key.expose_pkcs8_der())?;
        let (record, _) =
            self.catalog
                .add_certificate(&int, std::slice::from_ref(&root), None, None, None)?;
        self.catalog
            .add_ca(record.id, CaRole::Intermediate, &sealed)?;
        Ok(int)
    }

    /// Certificates matching `filter`, by id.
    ///
    /// # Errors
    /// Database errors.
    pub fn certificates(&self, filter: &CertificateFilter) -> Result<Vec<CertificateRecord>> {
        let now = u64::try_from(pfxkit::cert::now_millis() / 1000).unwrap_or_default();
        let subject = filter.subject.as_ref().map(|s| s.to_lowercase());
        Ok(self
            .catalog
            .certificates()?
            .into_iter()
            .filter(|r| {
                subject
                    .as_ref()
                    .is_none_or(|s| r.certificate.subject().to_lowercase().contains(s))
            })
            .filter(|r| {
                filter.expiring_within_secs.is_none_or(|within| {
                    let after = r.certificate.not_after_unix();
                    after >= now && after <= now.saturating_add(within)
                })
            })
            .collect())
    }

    /// Every container, by id.
    ///
    /// # Errors
    /// Database errors.
    pub fn containers(&self) -> Result<Vec<ContainerRecord>> {
        self.catalog.containers()
    }

    /// A store by GUID.
    ///
    /// # Errors
    /// [`Error::NotFound`] when no store has that id; database errors.
    pub fn store(&self, id: &str) -> Result<StoreRecord> {
        self.catalog.store(id)?.ok_or_else(|| {
            Error::NotFound(format!(
                "no store {id} in the catalog (see `pfxkit stores list`)"
            ))
        })
    }

    /// Forgets a store, its locations and its jobs (its files are left alone); returns what
    /// was removed.
    ///
    /// # Errors
    /// [`Error::NotFound`] when no store has that id; [`Error::Invalid`] while one of its jobs
    /// runs; database errors.
    pub fn remove_store(&self, id: &str) -> Result<StoreRecord> {
        let store = self.store(id)?;
        if !self.catalog.remove_store(id)? {
            return Err(Error::NotFound(format!("no store {id} in the catalog")));
        }
        Ok(store)
    }

    /// The issuing CA's certificate, key and chain (issuer first, the CA itself included).
    pub(crate) fn issuing_ca(&self) -> Result<(Certificate, PrivateKey, Vec<Certificate>)> {
        let ca = self.catalog.issuing_ca()?.ok_or_else(|| {
            Error::Invalid("the catalog has no CA (run `pfxkit ca init` first)".into())
        })?;
        let record = self.require(ca.certificate_id)?;
        let key_der = self
            .key
            .open(&ca_label(&record.certificate), &ca.sealed_key)?;
        let key = PrivateKey::from_pkcs8_der(&key_der)?;
        let mut chain = vec![record.certificate.clone()];
        chain.extend(self.chain_of(&record)?);
        Ok((record.certificate, key, chain))
    }

    /// The CA chain clients trust (`pfxkit ca export`): the issuing CA first, the root last.
    ///
    /// # Errors
    /// [`Error::Invalid`] without a CA; database errors.
    pub fn ca_chain(&self) -> Result<Vec<Certificate>> {
        let ca = self.catalog.issuing_ca()?.ok_or_else(|| {
            Error::Invalid("the catalog has no CA (run `pfxkit ca init` first)".into())
        })?;
        let record = self.require(ca.certificate_id)?;
        let mut chain = vec![record.certificate.clone()];
        chain.extend(self.chain_of(&record)?);
        Ok(chain)
    }

    /// Issues a TLS server identity (EC P-256 key, certificate and CA chain) from the embedded
    /// CA for `sans`, valid `days` days. Nothing is recorded: the identity lives in the server
    /// process only, and a restart issues a new one.
    ///
    /// # Errors
    /// [`Error::Invalid`] without a CA; crypto errors.
    pub fn issue_server_identity(
        &self,
        subject: &str,
        sans: &[San],
        days: u32,
    ) -> Result<Identity> {
        let (ca_cert, ca_key, chain) = self.issuing_ca()?;
        let key = KeyType::EcP256.generate()?;
        let (not_before, not_after) = ca::validity(days.max(1));
        let cert = ca::issue(
            &ca::Request {
                subject_der: ca::name_der(subject)?,
                sans,
                subject_key: (&key).into(),
                not_before,
                not_after,
                usage: Usage::Tls,
            },
            &Issuer {
                certificate: Some(&ca_cert),
                key: &ca_key,
            },
        )?;
        Ok(Identity::new(key, cert, chain)?)
    }

    fn require(&self, id: CertificateId) -> Result<CertificateRecord> {
        self.catalog
            .certificate(id)?
            .ok_or_else(|| Error::Invalid(format!("unknown certificate id {id}")))
    }

    /// The recorded chain of a certificate (issuer first).
    ///
    /// # Errors
    /// Database errors.
    pub fn chain_of(&self, record: &CertificateRecord) -> Result<Vec<Certificate>> {
        record
            .chain
            .iter()
            .map(|id| Ok(self.require(*id)?.certificate))
            .collect()
    }

    /// Looks a certificate up by id or thumbprint.
    ///
    /// # Errors
    /// [`Error::Invalid`] when it is unknown; database errors.
    pub fn certificate(&self, which: &CertificateRef) -> Result<CertificateRecord> {
        match which {
            CertificateRef::Id(id) => self.require(*id),
            CertificateRef::Thumbprint(t) => self
                .catalog
                .certificate_by_thumbprint(t)?
                .ok_or_else(|| Error::Invalid(format!("unknown certificate thumbprint {t}"))),
        }
    }

    /// The staged identity (key and chain) of a certificate.
    ///
    /// # Errors
    /// [`Error::Invalid`] when no key is staged for it; key and database errors.
    pub fn staged_identity(&self, record: &CertificateRecord) -> Result<Identity> {
        let sealed = self.catalog.staged_key(record.id)?.ok_or_else(|| {
            Error::Invalid(format!(
                "certificate {} has no staged private key",
                record.id
            ))
        })?;
        let der = self.key.open(&staged_label(&record.certificate), &sealed)?;
        let key = PrivateKey::from_pkcs8_der(&der)?;
        Ok(Identity::new(
            key,
            record.certificate.clone(),
            self.chain_of(record)?,
        )?)
    }

    /// Generates a key and issues a certificate from the embedded CA; stages the key, owned by
    /// `principal`; returns the ids and the PKCS#12 blob under `transport_password`.
    ///
    /// # Errors
    /// [`Error::Forbidden`] without the global `enroll` permission; [`Error::Invalid`] without
    /// a CA or for a bad request; crypto and database errors.
    pub fn enroll(
        &self,
        principal: Option<&str>,
        request: &EnrollRequest,
        transport_password: &Password,
    ) -> Result<Enrollment> {
        self.authorize(principal, Action::Enroll)?;
        self.issue(principal, request, RequestKind::Enroll, transport_password)
    }

    fn issue(
        &self,
        principal: Option<&str>,
        request: &EnrollRequest,
        kind: RequestKind,
        transport_password: &Password,
    ) -> Result<Enrollment> {
        if request.days == 0 {
            return Err(Error::Invalid("validity must be at least one day".into()));
        }
        let identity = self.issue_identity(request, ca::validity(request.days))?;
        self.record(principal, &identity, kind, transport_password)
    }

    /// Generates a key and has the embedded CA sign a certificate for it, valid from
    /// `not_before` to `not_after`; records nothing.
    fn issue_identity(
        &self,
        request: &EnrollRequest,
        (not_before, not_after): (std::time::SystemTime, std::time::SystemTime),
    ) -> Result<Identity> {
        let (ca_cert, ca_key, chain) = self.issuing_ca()?;
        let key = request.key_type.generate()?;
        let cert = ca::issue(
            &ca::Request {
                subject_der: ca::name_der(&request.subject)?,
                sans: &request.sans,
                subject_key: (&key).into(),
                not_before,
                not_after,
                usage: Usage::Tls,
            },
            &Issuer {
                certificate: Some(&ca_cert),
                key: &ca_key,
            },
        )?;
        Ok(Identity::new(key, cert, chain)?)
    }

    /// Stages an identity and records it with a request; the blob is built first so nothing is
    /// recorded for a request that cannot be answered.
    fn record(
        &self,
        principal: Option<&str>,
        identity: &Identity,
        kind: RequestKind,
        transport_password: &Password,
    ) -> Result<Enrollment> {
        let leaf = identity.leaf();
        let pkcs12 = Builder::new(Profile::Modern)
            .identity(identity.clone(), Some(&leaf.sha1_hex()))
            .build(transport_password, &self.limits)?;
        let sealed = Zeroizing::new(
            self.key
                .seal(&staged_label(leaf), identity.key().expose_pkcs8_der())?,
        );
        let (record, request_id) = self.catalog.add_certificate(
            leaf,
            identity.chain().get(1..).unwrap_or_default(),
            Some(&sealed),
            Some(kind),
            principal,
        )?;
        Ok(Enrollment {
            certificate_id: record.id,
            request_id: request_id.ok_or_else(|| Error::Database("request id missing".into()))?,
            certificate: record.certificate,
            pkcs12,
        })
    }

    /// Registers a PFX made elsewhere (its one key and chain), as enrollment does; `principal`
    /// owns it unless its key was staged before.
    ///
    /// # Errors
    /// [`Error::Forbidden`] without the global `enroll` permission; the PKCS#12 reader's
    /// errors; [`Error::Invalid`] when the file has no key with its certificate, or several.
    pub fn import(
        &self,
        principal: Option<&str>,
        pfx: &[u8],
        password: Option<&Password>,
        transport_password: &Password,
    ) -> Result<Enrollment> {
        self.authorize(principal, Action::Enroll)?;
        let archive = pfxkit::pkcs12::read(pfx, password, &self.limits)?;
        let identity = match archive.identities().as_slice() {
            [one] => one.clone(),
            [] => {
                return Err(Error::Invalid(
                    "the PFX holds no private key with its certificate".into(),
                ));
            }
            _ => {
                return Err(Error::Invalid(
                    "the PFX holds several keys; import one at a time".into(),
                ));
            }
        };
        self.record(
            principal,
            &identity,
            RequestKind::Import,
            transport_password,
        )
    }

    /// Issues a new certificate (a new key, owned by `principal`) with the subject, SANs and key
    /// type of an existing one, valid from now for as long as the original was, and records it
    /// as the existing one's successor (`RenewedBy`). Never deploys.
    ///
    /// # Errors
    /// [`Error::Forbidden`] without the global `enroll` permission; [`Error::Invalid`] for an
    /// unknown certificate or one whose key type the CA cannot make.
    pub fn renew(
        &self,
        principal: Option<&str>,
        which: &CertificateRef,
        transport_password: &Password,
    ) -> Result<Enrollment> {
        self.authorize(principal, Action::Enroll)?;
        let old = self.certificate(which)?;
        let identity = self.renewed_identity(&old, std::time::SystemTime::now())?;
        let pkcs12 = self.transport_blob(&identity, transport_password)?;
        self.record_renewal(&old, &identity, None, principal)?
            .map(|(certificate_id, request_id)| Enrollment {
                certificate_id,
                request_id,
                certificate: identity.leaf().clone(),
                pkcs12,
            })
            .ok_or_else(|| Error::Database("a renewal by hand was not recorded".into()))
    }

    /// A new key and certificate like `old` (subject, SANs, key type), valid from `start` for
    /// as long as `old` was valid; nothing recorded.
    pub(crate) fn renewed_identity(
        &self,
        old: &CertificateRecord,
        start: std::time::SystemTime,
    ) -> Result<Identity> {
        // The certificate's public key tells the key type: no need to unseal the private key.
        let key_type = key_type_of_certificate(&old.certificate).ok_or_else(|| {
            Error::Invalid(format!(
                "certificate {}: its key type cannot be renewed here",
                old.id
            ))
        })?;
        let cert = &old.certificate;
        // The original's not-before was set back for clock skew as ours will be: the length
        // counted from not-before, less that minute, is the length it was issued for.
        let lifetime = cert
            .not_after_unix()
            .saturating_sub(cert.not_before_unix())
            .saturating_sub(60)
            .max(60);
        let request = EnrollRequest {
            subject: cert.subject(),
            sans: ca::sans_of(cert),
            key_type,
            days: u32::try_from(lifetime / 86_400).unwrap_or(DEFAULT_DAYS),
        };
        self.issue_identity(&request, ca::validity_from(start, lifetime))
    }

    /// The PKCS#12 blob of an identity under the transport password.
    fn transport_blob(
        &self,
        identity: &Identity,
        transport_password: &Password,
    ) -> Result<Vec<u8>> {
        Ok(Builder::new(Profile::Modern)
            .identity(identity.clone(), Some(&identity.leaf().sha1_hex()))
            .build(transport_password, &self.limits)?)
    }

    /// Stages a renewed identity and records it as a successor of `old` (see
    /// [`Catalog::record_renewal`]), its key owned by `owner`: `None` when `policy` is given
    /// and `old` has a successor already.
    pub(crate) fn record_renewal(
        &self,
        old: &CertificateRecord,
        identity: &Identity,
        policy: Option<crate::PolicyId>,
        owner: Option<&str>,
    ) -> Result<Option<(CertificateId, RequestId)>> {
        let leaf = identity.leaf();
        let sealed = Zeroizing::new(
            self.key
                .seal(&staged_label(leaf), identity.key().expose_pkcs8_der())?,
        );
        Ok(self
            .catalog
            .record_renewal(
                old.id,
                leaf,
                identity.chain().get(1..).unwrap_or_default(),
                &sealed,
                policy,
                owner,
            )?
            .map(|(record, request)| (record.id, request)))
    }
}

/// The key type of a certificate's public key.
fn key_type_of_certificate(cert: &Certificate) -> Option<KeyType> {
    use pfxkit::secret::oids;
    cert.with_public_key(|spki| {
        let oid = spki.algorithm.oid;
        Ok(if oid == oids::ED25519 {
            Some(KeyType::Ed25519)
        } else if oid == oids::EC {
            let curve = spki
                .algorithm
                .parameters
                .and_then(|p| p.decode_as::<der::asn1::ObjectIdentifier>().ok());
            match curve {
                Some(c) if c == oids::P256 => Some(KeyType::EcP256),
                Some(c) if c == oids::P384 => Some(KeyType::EcP384),
                _ => None,
            }
        } else if oid == oids::RSA || oid == oids::RSA_PSS {
            // Sizes the CA does not make are renewed at the next size up (1024 → 2048).
            match pfxkit::secret::rsa_modulus_bits(spki.subject_public_key.raw_bytes()) {
                Some(b) if b <= 2048 => Some(KeyType::Rsa2048),
                Some(b) if b <= 3072 => Some(KeyType::Rsa3072),
                Some(b) if b <= 4096 => Some(KeyType::Rsa4096),
                _ => None,
            }
        } else {
            None
        })
    })
    .ok()
    .flatten()
}
