//! The end-to-end demonstration behind `pfxkit demo`: a temporary catalog and CA, PEM, PKCS#12
//! and JKS stores, enrollment, deployment, inventory, a successor, Replace, the job run, and a
//! check of every store read directly from its files, independently of the catalog.

use std::path::{Path, PathBuf};

use super::Permission;
use super::ca::{KeyType, San};
use super::jobs::{JobOptions, NewCertificate, StoreOutcome};
use super::service::{CertificateRef, EnrollRequest, Service};
use crate::error::{Error, Result};
use pfxkit::cert::Certificate;
use pfxkit::limits::Limits;
use pfxkit::secret::{Password, PasswordSource};
use pfxkit::store::StoreType;

/// What the demo did and found.
#[derive(Debug)]
#[non_exhaustive]
pub struct DemoReport {
    /// The Replace response.
    pub replace: StoreOutcome,
    /// Each check, with whether it held.
    pub checks: Vec<(String, bool)>,
    /// Where the demo's files are.
    pub dir: PathBuf,
}

impl DemoReport {
    /// Whether every check held.
    pub fn passed(&self) -> bool {
        !self.checks.is_empty() && self.checks.iter().all(|(_, ok)| *ok)
    }
}

const ENTRY_PASSWORD: &str = "demo-entry-password";
const STORE_PASSWORD: &str = "demo-store-password";

/// Runs the demo in `dir` (which must not hold a catalog yet), reporting each step to `log`.
///
/// # Errors
/// Any step that fails outright (a failed *check* is reported in the result instead).
pub fn run(dir: &Path, log: &mut dyn FnMut(&str)) -> Result<DemoReport> {
    let service = Service::init(&dir.join("catalog"))?;
    log(&format!("catalog created in {}", service.dir().display()));
    let ca = service.ca_init(
        "CN=pfxkit Demo Root,O=pfxkit",
        KeyType::EcP256,
        Some("CN=pfxkit Demo Issuing CA,O=pfxkit"),
    )?;
    log(&format!("CA ready: {}", ca.subject()));

    service.add_container(None, "web")?;
    service.add_container(None, "java")?;
    let stores_dir = dir.join("stores");
    std::fs::create_dir_all(&stores_dir).map_err(|e| Error::io(&stores_dir, e))?;
    let store_pw = PasswordSource::Literal(Password::new(STORE_PASSWORD));
    let pem = service.add_store(
        None,
        StoreType::Pem,
        &stores_dir.join("web.crt"),
        Some(&stores_dir.join("web.key")),
        Some("web"),
        None,
    )?;
    let p12 = service.add_store(
        None,
        StoreType::Pkcs12,
        &stores_dir.join("web.p12"),
        None,
        Some("web"),
        Some(&store_pw),
    )?;
    let jks = service.add_store(
        None,
        StoreType::Jks,
        &stores_dir.join("app.jks"),
        None,
        Some("java"),
        Some(&store_pw),
    )?;
    let stores = [pem.clone(), p12.clone(), jks.clone()];
    log(&format!(
        "stores: pem {}, pkcs12 {}, jks {}",
        pem.id, p12.id, jks.id
    ));

    let request = EnrollRequest::new("CN=demo.example.com,O=pfxkit")
        .sans(vec![
            San::Dns("demo.example.com".into()),
            San::Dns("www.demo.example.com".into()),
        ])
        .key_type(KeyType::EcP256);
    let transport = Password::new("demo-transport-password");
    let first = service.enroll(None, &request, &transport)?;
    log(&format!(
        "enrolled certificate {} ({})",
        first.certificate_id,
        first.certificate.sha1_hex()
    ));

    let entry = Password::new(ENTRY_PASSWORD);
    let ids: Vec<String> = stores.iter().map(|s| s.id.clone()).collect();
    let deployed = service.deploy(
        first.certificate_id,
        &ids,
        Some("demo"),
        false,
        &JobOptions::new(Some(&entry), None, None),
    )?;
    let ran = service.run_jobs(super::jobs::now_ms(), &|_| {})?;
    log(&format!(
        "deployed to {} stores; {} jobs ran",
        deployed.successful.len(),
        ran.len()
    ));
    service.inventory(None)?;

    let successor = service.renew(None, &CertificateRef::Id(first.certificate_id), &transport)?;
    log(&format!(
        "renewed as certificate {} ({})",
        successor.certificate_id,
        successor.certificate.sha1_hex()
    ));

    // The operator may schedule on every store and use keys it did not enroll itself.
    service.grant(None, "operator", None, Permission::Schedule)?;
    service.grant(None, "operator", None, Permission::Recover)?;
    let replace = service.replace(
        first.certificate_id,
        NewCertificate::Certificate(successor.certificate_id),
        &JobOptions::new(Some(&entry), None, Some("operator")),
    )?;
    let ran = service.run_jobs(super::jobs::now_ms(), &|_| {})?;
    log(&format!(
        "replace created {} jobs; {} ran",
        replace.successful.len(),
        ran.len()
    ));

    let mut checks = Vec::new();
    let mut check = |what: String, ok: bool| checks.push((what, ok));
    check(
        "Replace targeted every store".into(),
        replace.successful.len() == 3 && replace.failed.is_empty(),
    );
    for job in &ran {
        check(
            format!("job {} succeeded", job.id),
            job.result == Some(super::JobResult::Success),
        );
    }
    let new_cert = &successor.certificate;
    for (name, found) in [
        ("pem store", read_pem(&pem.path, pem.key_path.as_deref())),
        ("pkcs12 store", read_pkcs12(&p12.path)),
        ("jks store", read_jks(&jks.path)),
    ] {
        match found {
            Ok(leaf) => check(
                format!("{name} holds the successor with a matching key"),
                &leaf == new_cert,
            ),
            Err(e) => check(format!("{name} could be read: {e}"), false),
        }
    }
    let new_locations = service.catalog().locations(successor.certificate_id)?;
    let old_locations = service.catalog().locations(first.certificate_id)?;
    check(
        "catalog locates the successor in all three stores".into(),
        new_locations.len() == 3,
    );
    check(
        "catalog no longer locates the predecessor".into(),
        old_locations.is_empty(),
    );
    Ok(DemoReport {
        replace,
        checks,
        dir: dir.to_path_buf(),
    })
}

/// The leaf of the one identity in a file, proven to match its key.
fn only_leaf(mut identities: Vec<pfxkit::Identity>) -> Result<Certificate> {
    match identities.len() {
        1 => Ok(identities.remove(0).leaf().clone()),
        n => Err(Error::Invalid(format!("expected one key entry, found {n}"))),
    }
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::io(path, e))
}

fn read_pem(cert: &Path, key: Option<&Path>) -> Result<Certificate> {
    let mut bytes = read(cert)?;
    if let Some(k) = key {
        bytes.extend(read(k)?);
    }
    only_leaf(
        pfxkit::pem::read_bundle(
            &bytes,
            Some(&Password::new(ENTRY_PASSWORD)),
            &Limits::default(),
        )?
        .identities(&Limits::default())?,
    )
}

fn read_pkcs12(path: &Path) -> Result<Certificate> {
    only_leaf(
        pfxkit::pkcs12::read(
            &read(path)?,
            Some(&Password::new(STORE_PASSWORD)),
            &Limits::default(),
        )?
        .identities(),
    )
}

fn read_jks(path: &Path) -> Result<Certificate> {
    let store = pfxkit::jks::read(
        &read(path)?,
        &Password::new(STORE_PASSWORD),
        &Limits::default(),
    )?;
    let identities = store
        .entries()
        .iter()
        .filter_map(|e| match e {
            pfxkit::jks::Entry::PrivateKey(k) => {
                Some(k.identity(&Password::new(ENTRY_PASSWORD), &Limits::default()))
            }
            _ => None,
        })
        .collect::<pfxkit::Result<Vec<_>>>()?;
    only_leaf(identities)
}
