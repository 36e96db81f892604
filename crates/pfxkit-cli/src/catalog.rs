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
    /// postgresql://…, or "host=/run/postgresql dbname=pfxkit"
    /// [env: PFXKIT_CATALOG; default: ./pfxkit-catalog].
    #[arg(long = "catalog", value_name = "DIR|URL", global = true)]
    pub given: Option<String>,
    /// The key file of a PostgreSQL catalog (created 0600 by `catalog init`; every server and
    /// runner of the catalog gets the same file). Never stored in the database.
    #[arg(
        long = "catalog-key",
        value_name = "FILE",
        env = "PFXKIT_CATALOG_KEY",
        global = true
    )]
    pub catalog_key: Option<PathBuf>,
    /// The catalog in use: `--catalog`, else `PFXKIT_CATALOG`, else `./pfxkit-catalog`.
    #[arg(skip)]
    pub catalog: String,
    /// Set from the global `--json`.
    #[arg(skip)]
    pub json: bool,
}

impl CatalogArgs {
    /// Resolves the catalog: this command's `--catalog`, then one given before the command
    /// (`pfxkit --catalog DIR enroll …`, as scripts written for earlier versions do), then
    /// `PFXKIT_CATALOG`, then `./pfxkit-catalog`.
    #[must_use]
    pub fn resolved(mut self, before_command: Option<&str>, json: bool) -> Self {
        self.catalog = self
            .given
            .clone()
            .or_else(|| before_command.map(str::to_owned))
            .or_else(|| {
                std::env::var_os("PFXKIT_CATALOG").map(|v| v.to_string_lossy().into_owned())
            })
            .unwrap_or_else(|| "./pfxkit-catalog".to_owned());
        self.json = json;
        self
    }

    /// Where the catalog is, as the catalog crate reads it.
    ///
    /// # Errors
    /// A connection string that does not parse, or a PostgreSQL catalog without a key file.
    pub fn location(&self) -> Result<CatalogLocation, Error> {
        CatalogLocation::parse(&self.catalog, self.catalog_key.as_deref())
    }

    /// Opens the catalog.
    ///
    /// # Errors
    /// As [`Service::open_at`].
    pub fn open(&self) -> Result<Service, Error> {
        Service::open_at(&self.location()?)
    }
}

#[derive(Debug, clap::Subcommand)]
pub enum CatalogCommand {
    /// Create a catalog: the database and a new 0600 key file.
    Init,
}

#[derive(Debug, clap::Subcommand)]
pub enum CaCommand {
    /// Show the embedded CA: the issuing certificate and its chain.
    Show,
    /// Create the embedded CA (a root, and an intermediate with --intermediate). A catalog has
    /// one CA: a second init is refused unless --replace-ca.
    Init {
        /// Replace the existing CA: its keys are retired (its certificates stay recorded).
        #[arg(long)]
        replace_ca: bool,
        /// The root's subject DN.
        #[arg(long)]
        subject: String,
        /// Subject DN of an intermediate that will issue certificates.
        #[arg(long)]
        intermediate: Option<String>,
        /// CA key type: rsa-2048, rsa-3072, rsa-4096, ec-p256, ec-p384 or ed25519.
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
    /// Key type: rsa-2048, rsa-3072, rsa-4096, ec-p256, ec-p384 or ed25519.
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
    /// List certificates, optionally filtered.
    List {
        /// Only those whose subject DN contains this text (case-insensitive).
        #[arg(long)]
        subject: Option<String>,
        /// Only those not yet expired that expire within this period: 30d, 12h, 90m or seconds.
        #[arg(long, value_parser = duration_secs, value_name = "PERIOD")]
        expiring_within: Option<u64>,
    },
    /// Show one certificate.
    Show {
        /// Its id.
        id: i64,
        /// List the stores and aliases where the latest inventories found it.
        #[arg(long)]
        include_locations: bool,
    },
}

/// `30d`, `12h`, `90m`, `45s` or a number of seconds.
pub(crate) fn duration_secs(s: &str) -> Result<u64, String> {
    let (number, unit) = match s.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (s.get(..i).unwrap_or_default(), c),
        _ => (s, 's'),
    };
    let n: u64 = number
        .parse()
        .map_err(|_| format!("'{s}' is not a period (use 30d, 12h, 90m or seconds)"))?;
    let factor = match unit {
        'd' => 86_400,
        'h' => 3_600,
        'm' => 60,
        's' => 1,
        _ => return Err(format!("'{s}': unknown unit '{unit}' (use d, h, m or s)")),
    };
    n.checked_mul(factor)
        .ok_or_else(|| format!("'{s}' is too long a period"))
}

fn key_type(s: &str) -> Result<KeyType, String> {
    s.parse().map_err(|e: Error| e.to_string())
}

fn san(s: &str) -> Result<San, String> {
    s.parse().map_err(|e: Error| e.to_string())
}

fn emit(args: &CatalogArgs, value: Value, text: impl FnOnce()) {
    if args.json {
        print_json(&value);
    } else {
        text();
    }
}

pub fn catalog(args: &CatalogArgs, command: CatalogCommand) -> crate::CliResult {
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

fn ca_json(cert: &pfxkit::Certificate) -> Value {
    json!({
        "Thumbprint": cert.sha1_hex(),
        "SubjectDN": cert.subject(),
        "IssuerDN": cert.issuer(),
        "SerialNumber": cert.serial_hex(),
        "NotAfter": cert.not_after_rfc3339(),
    })
}

pub fn ca(args: &CatalogArgs, command: CaCommand) -> crate::CliResult {
    let service = args.open()?;
    match command {
        CaCommand::Show => {
            let info = service.ca()?;
            let cert = &info.issuing.certificate;
            let mut value = ca_json(cert);
            if let Some(fields) = value.as_object_mut() {
                fields.insert("Id".into(), json!(info.issuing.id));
                fields.insert(
                    "Role".into(),
                    json!(match info.role {
                        pfxkit_catalog::CaRole::Intermediate => "intermediate",
                        _ => "root",
                    }),
                );
                fields.insert(
                    "Chain".into(),
                    Value::Array(info.chain.iter().map(ca_json).collect()),
                );
            }
            emit(args, value, || {
                outln!(
                    "CA {} (certificate {}, thumbprint {}, expires {})",
                    cert.subject(),
                    info.issuing.id,
                    cert.sha1_hex(),
                    cert.not_after_rfc3339()
                );
                for c in &info.chain {
                    outln!("  issued by {} (thumbprint {})", c.subject(), c.sha1_hex());
                }
            });
        }
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
        }
        CaCommand::Init {
            replace_ca,
            subject,
            intermediate,
            key_type,
        } => {
            let (cert, replaced) = if replace_ca {
                let r = service.replace_ca(&subject, key_type, intermediate.as_deref())?;
                (r.issuing, r.replaced)
            } else {
                (
                    service.ca_init(&subject, key_type, intermediate.as_deref())?,
                    Vec::new(),
                )
            };
            let mut value = json!({ "Thumbprint": cert.sha1_hex(), "SubjectDN": cert.subject() });
            if replace_ca && let Some(fields) = value.as_object_mut() {
                fields.insert(
                    "Replaced".into(),
                    Value::Array(replaced.iter().map(ca_json).collect()),
                );
            }
            emit(args, value, || {
                outln!("CA {} (thumbprint {})", cert.subject(), cert.sha1_hex());
                for old in &replaced {
                    outln!(
                        "replaced CA {} (thumbprint {}): its key is retired",
                        old.subject(),
                        old.sha1_hex()
                    );
                }
            });
        }
    }
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

fn report_enrollment(args: &CatalogArgs, e: &Enrollment, out: Option<&Path>) -> crate::CliResult {
    if let Some(path) = out {
        write_output(path, &e.pkcs12, true)?;
    }
    let mut value = enrollment_json(e);
    if let (Some(path), Some(fields)) = (out, value.as_object_mut()) {
        fields.insert("Written".into(), json!(path.display().to_string()));
    }
    emit(args, value, || {
        if let Some(path) = out {
            outln!(
                "wrote {}: 1 key, certificate {}",
                path.display(),
                e.certificate_id
            );
        }
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

pub fn enroll(args: &CatalogArgs, principal: &PrincipalArgs, e: EnrollArgs) -> crate::CliResult {
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

pub fn import(args: &CatalogArgs, principal: &PrincipalArgs, i: ImportArgs) -> crate::CliResult {
    let service = args.open()?;
    let password = resolve(i.password.as_ref())?;
    let transport = password.clone().unwrap_or_else(|| Password::new(""));
    let bytes = read_file(&i.pfx)?;
    crate::inspect::expect_format(&i.pfx, &bytes, pfxkit::contents::Format::Pkcs12, "--pfx")?;
    let result = service
        .import(
            principal.principal.as_deref(),
            &bytes,
            password.as_ref(),
            &transport,
        )
        .map_err(crate::naming_password(format!(
            "the password of {}",
            i.pfx.display()
        )))?;
    report_enrollment(args, &result, None)
}

pub fn renew(args: &CatalogArgs, principal: &PrincipalArgs, r: RenewArgs) -> crate::CliResult {
    let service = args.open()?;
    let which = match (r.certificate_id, r.thumbprint) {
        (Some(id), None) => CertificateRef::Id(id),
        (None, Some(t)) => CertificateRef::Thumbprint(t),
        // clap's group makes exactly one present.
        _ => {
            return Err(crate::CliError::Usage(
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

fn certificate_json(record: &pfxkit_catalog::CertificateRecord) -> Value {
    let cert = &record.certificate;
    json!({
        "Id": record.id,
        "Thumbprint": cert.sha1_hex(),
        "SerialNumber": cert.serial_hex(),
        "IssuedDN": cert.subject(),
        "IssuerDN": cert.issuer(),
        "NotBefore": cert.not_before_rfc3339(),
        "NotAfter": cert.not_after_rfc3339(),
        "HasPrivateKey": record.has_staged_key,
    })
}

pub fn certificates(args: &CatalogArgs, command: CertificatesCommand) -> crate::CliResult {
    let service = args.open()?;
    let (id, include_locations) = match command {
        CertificatesCommand::Show {
            id,
            include_locations,
        } => (id, include_locations),
        CertificatesCommand::List {
            subject,
            expiring_within,
        } => {
            let filter = pfxkit_catalog::service::CertificateFilter::new(subject, expiring_within);
            let list = service.certificates(&filter)?;
            emit(
                args,
                Value::Array(list.iter().map(certificate_json).collect()),
                || {
                    for r in &list {
                        outln!(
                            "{:>5}  {}  {}  expires {}{}",
                            r.id,
                            r.certificate.sha1_hex(),
                            r.certificate.subject(),
                            r.certificate.not_after_rfc3339(),
                            if r.has_staged_key {
                                "  [key staged]"
                            } else {
                                ""
                            }
                        );
                    }
                    if list.is_empty() {
                        outln!("no certificates match");
                    }
                },
            );
            return Ok(());
        }
    };
    let record = service.certificate(&CertificateRef::Id(id))?;
    let cert = &record.certificate;
    let mut value = certificate_json(&record);
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
