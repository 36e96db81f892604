//! Catalog commands: `catalog init`, `ca init`, `enroll`, `import`, `renew`, `certificates show`.
//! JSON field names follow the Keyfactor Command API (PascalCase).

use std::path::{Path, PathBuf};

use base64ct::{Base64, Encoding};
use pfxkit::{Password, PasswordSource};
use pfxkit_catalog::Error;
use pfxkit_catalog::ca::{KeyType, San};
use pfxkit_catalog::service::{
    CatalogLocation, CertificateRef, EnrollRequest, Enrollment, Service,
};
use serde_json::{Value, json};

use crate::build::write_output;
use crate::manage::PrincipalArgs;
use crate::manage::{outcome_json, print_outcome_text};
use crate::{password_source, print_json, read_file, resolve};
use pfxkit_catalog::jobs::JobOptions;

/// Where the catalog is.
#[derive(Debug, clap::Args)]
pub struct CatalogArgs {
    /// Catalog directory, or a shared PostgreSQL catalog: postgres://USER@HOST/DB,
    /// postgresql://…, or "host=/run/postgresql dbname=pfxkit".
    #[arg(
        long = "catalog",
        env = "PFXKIT_CATALOG",
        default_value = "./pfxkit-catalog",
        global = true,
        hide_env_values = true
    )]
    pub catalog: String,
    /// The key file of a PostgreSQL catalog (created 0600 by `catalog init`; every server and
    /// runner of the catalog gets the same file). Never stored in the database.
    #[arg(long = "catalog-key", env = "PFXKIT_CATALOG_KEY", global = true)]
    pub catalog_key: Option<PathBuf>,
    /// Print one JSON document.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Debug, clap::Subcommand)]
pub enum CatalogCommand {
    /// Create a catalog: the database and a new 0600 key file.
    Init,
}

#[derive(Debug, clap::Subcommand)]
pub enum CaCommand {
    /// Create the embedded CA (a root, and an intermediate with --intermediate).
    Init {
        /// The root's subject DN.
        #[arg(long)]
        subject: String,
        /// Subject DN of an intermediate that will issue certificates.
        #[arg(long)]
        intermediate: Option<String>,
        /// CA key type.
        #[arg(long, default_value = "ec-p256", value_parser = key_type)]
        key_type: KeyType,
    },
    /// Write the CA chain that clients of `pfxkit serve --tls-from-ca` trust (PEM).
    Export {
        /// Write here instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(Debug, clap::Args)]
pub struct EnrollArgs {
    /// Subject DN, e.g. "CN=www.example.com,O=Example".
    #[arg(long)]
    subject: String,
    /// Subject alternative names: dns:NAME, ip:ADDR or email:ADDR (repeatable).
    #[arg(long = "san", value_parser = san)]
    sans: Vec<San>,
    /// Key type.
    #[arg(long, default_value = "ec-p256", value_parser = key_type)]
    key_type: KeyType,
    /// Validity in days.
    #[arg(long, default_value_t = pfxkit_catalog::service::DEFAULT_DAYS)]
    days: u32,
    /// Transport password of the returned PKCS#12 blob (default: empty).
    #[arg(long, value_parser = password_source)]
    password: Option<PasswordSource>,
    /// Also write the PKCS#12 blob to this file.
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// The PFX to register.
    #[arg(long)]
    pfx: PathBuf,
    /// Its password (also the transport password of the returned blob).
    #[arg(long, value_parser = password_source)]
    password: Option<PasswordSource>,
}

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("which").required(true).args(["certificate_id", "thumbprint"])))]
pub struct RenewArgs {
    /// The certificate to renew, by id.
    #[arg(long)]
    certificate_id: Option<i64>,
    /// The certificate to renew, by SHA-1 or SHA-256 thumbprint.
    #[arg(long)]
    thumbprint: Option<String>,
    /// Transport password of the returned PKCS#12 blob (default: empty).
    #[arg(long, value_parser = password_source)]
    password: Option<PasswordSource>,
    /// Also write the PKCS#12 blob to this file.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Then replace the certificate with its successor in every store where it is located;
    /// --password is then also the entry password of the jobs.
    #[arg(long)]
    replace: bool,
    /// With --replace: when the jobs run, ISO 8601 UTC; absent or past means now.
    #[arg(long, requires = "replace")]
    job_time: Option<String>,
}

#[derive(Debug, clap::Subcommand)]
pub enum CertificatesCommand {
    /// Show one certificate.
    Show {
        /// Its id.
        id: i64,
        /// List the stores and aliases where the latest inventories found it.
        #[arg(long)]
        include_locations: bool,
    },
}

fn key_type(s: &str) -> Result<KeyType, String> {
    s.parse().map_err(|e: Error| e.to_string())
}

fn san(s: &str) -> Result<San, String> {
    s.parse().map_err(|e: Error| e.to_string())
}

impl CatalogArgs {
    /// Where the catalog is, as the catalog crate reads it.
    pub fn location(&self) -> Result<CatalogLocation, Error> {
        CatalogLocation::parse(&self.catalog, self.catalog_key.as_deref())
    }

    /// Opens the catalog.
    pub fn open(&self) -> Result<Service, Error> {
        Service::open_at(&self.location()?)
    }
}

fn emit(args: &CatalogArgs, value: Value, text: impl FnOnce()) {
    if args.json {
        print_json(&value);
    } else {
        text();
    }
}

pub fn catalog(args: &CatalogArgs, command: CatalogCommand) -> Result<(), Error> {
    match command {
        CatalogCommand::Init => {
            let location = args.location()?;
            Service::init_at(&location)?;
            let dir = location.describe();
            emit(args, json!({ "Catalog": dir }), || {
                outln!("catalog created in {dir}")
            });
            Ok(())
        }
    }
}

pub fn ca(args: &CatalogArgs, command: CaCommand) -> Result<(), Error> {
    let service = args.open()?;
    let (subject, intermediate, key_type) = match command {
        CaCommand::Init {
            subject,
            intermediate,
            key_type,
        } => (subject, intermediate, key_type),
        CaCommand::Export { out } => {
            let pem: String = service
                .ca_chain()?
                .iter()
                .map(pfxkit::pem::encode_certificate)
                .collect();
            match out {
                Some(path) => write_output(&path, pem.as_bytes(), false)?,
                None => outln!("{}", pem.trim_end()),
            }
            return Ok(());
        }
    };
    let cert = service.ca_init(&subject, key_type, intermediate.as_deref())?;
    emit(
        args,
        json!({ "Thumbprint": cert.sha1_hex(), "SubjectDN": cert.subject() }),
        || outln!("CA {} (thumbprint {})", cert.subject(), cert.sha1_hex()),
    );
    Ok(())
}

fn enrollment_json(e: &Enrollment) -> Value {
    json!({ "CertificateInformation": {
        "KeyfactorId": e.certificate_id,
        "KeyfactorRequestId": e.request_id,
        "Thumbprint": e.certificate.sha1_hex(),
        "SerialNumber": e.certificate.serial_hex(),
        "IssuerDN": e.certificate.issuer(),
        "SubjectDN": e.certificate.subject(),
        "Pkcs12Blob": Base64::encode_string(&e.pkcs12),
    }})
}

fn report_enrollment(args: &CatalogArgs, e: &Enrollment, out: Option<&Path>) -> Result<(), Error> {
    if let Some(path) = out {
        write_output(path, &e.pkcs12, true)?;
    }
    emit(args, enrollment_json(e), || {
        outln!(
            "certificate {} (request {}): {}\n  issuer {}\n  serial {}  thumbprint {}",
            e.certificate_id,
            e.request_id,
            e.certificate.subject(),
            e.certificate.issuer(),
            e.certificate.serial_hex(),
            e.certificate.sha1_hex()
        )
    });
    Ok(())
}

fn transport(src: Option<&PasswordSource>) -> Result<Password, Error> {
    Ok(resolve(src)?.unwrap_or_else(|| Password::new("")))
}

pub fn enroll(args: &CatalogArgs, principal: &PrincipalArgs, e: EnrollArgs) -> Result<(), Error> {
    let service = args.open()?;
    let request = EnrollRequest::new(e.subject)
        .sans(e.sans)
        .key_type(e.key_type)
        .days(e.days);
    let result = service.enroll(
        principal.principal.as_deref(),
        &request,
        &transport(e.password.as_ref())?,
    )?;
    report_enrollment(args, &result, e.out.as_deref())
}

pub fn import(args: &CatalogArgs, principal: &PrincipalArgs, i: ImportArgs) -> Result<(), Error> {
    let service = args.open()?;
    let password = resolve(i.password.as_ref())?;
    let transport = password.clone().unwrap_or_else(|| Password::new(""));
    let result = service.import(
        principal.principal.as_deref(),
        &read_file(&i.pfx)?,
        password.as_ref(),
        &transport,
    )?;
    report_enrollment(args, &result, None)
}

pub fn renew(args: &CatalogArgs, principal: &PrincipalArgs, r: RenewArgs) -> Result<(), Error> {
    let service = args.open()?;
    let which = match (r.certificate_id, r.thumbprint) {
        (Some(id), None) => CertificateRef::Id(id),
        (None, Some(t)) => CertificateRef::Thumbprint(t),
        // clap's group makes exactly one present.
        _ => {
            return Err(Error::Invalid(
                "give exactly one of --certificate-id and --thumbprint".into(),
            ));
        }
    };
    if r.replace {
        let password = resolve(r.password.as_ref())?;
        let options = JobOptions::new(
            password.as_ref(),
            r.job_time.as_deref(),
            principal.principal.as_deref(),
        );
        let done = service.renew_and_replace(&which, &options)?;
        if let Some(path) = r.out.as_deref() {
            write_output(path, &done.enrollment.pkcs12, true)?;
        }
        let mut value = enrollment_json(&done.enrollment);
        if let (Some(fields), Value::Object(outcome)) =
            (value.as_object_mut(), outcome_json(&done.outcome))
        {
            fields.extend(outcome);
        }
        let e = &done.enrollment;
        emit(args, value, || {
            outln!(
                "certificate {} renewed as {} (request {}), thumbprint {}",
                which_text(&which),
                e.certificate_id,
                e.request_id,
                e.certificate.sha1_hex()
            );
            print_outcome_text(&done.outcome);
        });
        return Ok(());
    }
    let result = service.renew(
        principal.principal.as_deref(),
        &which,
        &transport(r.password.as_ref())?,
    )?;
    report_enrollment(args, &result, r.out.as_deref())
}

fn which_text(which: &CertificateRef) -> String {
    match which {
        CertificateRef::Id(id) => id.to_string(),
        CertificateRef::Thumbprint(t) => t.clone(),
        _ => String::new(),
    }
}

pub fn certificates(args: &CatalogArgs, command: CertificatesCommand) -> Result<(), Error> {
    let CertificatesCommand::Show {
        id,
        include_locations,
    } = command;
    let service = args.open()?;
    let record = service.certificate(&CertificateRef::Id(id))?;
    let cert = &record.certificate;
    let mut value = json!({
        "Id": record.id,
        "Thumbprint": cert.sha1_hex(),
        "SerialNumber": cert.serial_hex(),
        "IssuedDN": cert.subject(),
        "IssuerDN": cert.issuer(),
        "NotBefore": cert.not_before_rfc3339(),
        "NotAfter": cert.not_after_rfc3339(),
        "HasPrivateKey": record.has_staged_key,
    });
    let mut locations = Vec::new();
    if include_locations {
        for loc in service.catalog().locations(record.id)? {
            let store = service.catalog().store(&loc.store_id)?;
            locations.push(json!({
                "CertStoreId": loc.store_id,
                "Alias": loc.alias,
                "StoreType": store.as_ref().map(|s| s.store_type.name()),
                "StorePath": store.as_ref().map(|s| s.path.display().to_string()),
            }));
        }
        if let Some(fields) = value.as_object_mut() {
            fields.insert("Locations".into(), Value::Array(locations.clone()));
        }
    }
    emit(args, value, || {
        outln!(
            "certificate {}: {}\n  issuer {}\n  thumbprint {}",
            record.id,
            cert.subject(),
            cert.issuer(),
            cert.sha1_hex()
        );
        for l in &locations {
            outln!(
                "  in {} ({}) as {}",
                l["CertStoreId"],
                l["StorePath"],
                l["Alias"]
            );
        }
    });
    Ok(())
}
