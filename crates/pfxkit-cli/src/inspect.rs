//! `pfxkit inspect FILE [--password SRC] [--key-password SRC] [--json]`.

use std::path::PathBuf;

use pfxkit::contents::Format;
use pfxkit::jks::{self, Entry, Keystore};
use pfxkit::pkcs12::{self, Archive};
use pfxkit::{Certificate, Limits, Password, PasswordSource, PrivateKey};
use pfxkit_catalog::Error;
use serde_json::{Value, json};

use crate::build::Selection;
use crate::{CliError, CliResult, password_source, print_json, read_file, resolve};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The file to inspect (PKCS#12 in DER, BER or PEM armour; JKS; JCEKS; PEM bundle).
    file: PathBuf,
    /// Password source: pass:TEXT, env:VAR, file:PATH or stdin. Left out: for PKCS#12 both the
    /// empty and the absent password are tried.
    #[arg(long, value_parser = password_source)]
    password: Option<PasswordSource>,
    /// Key password source for JKS/JCEKS key entries, and for PKCS#12 keys encrypted under a
    /// password other than the MAC's (default: the store password).
    #[arg(long, value_parser = password_source)]
    key_password: Option<PasswordSource>,
    /// The format the file must have (pkcs12, p12, pfx, jks, jceks or pem, any case); without
    /// it the format is detected.
    #[arg(long = "type", value_parser = file_format)]
    file_type: Option<Format>,
    #[command(flatten)]
    select: Selection,
    /// List a Java keystore without its store password, unverified: nothing in it is
    /// integrity-checked (Java's own behaviour without a password, here only on request).
    #[arg(long)]
    no_verify: bool,
}

/// Parses a file format, accepting keytool's and OpenSSL's spellings in any case.
pub fn file_format(s: &str) -> Result<Format, String> {
    match s.to_ascii_lowercase().as_str() {
        "pkcs12" | "p12" | "pfx" => Ok(Format::Pkcs12),
        "jks" => Ok(Format::Jks),
        "jceks" => Ok(Format::Jceks),
        "pem" => Ok(Format::Pem),
        _ => Err(format!(
            "'{s}' is not a file format (expected pkcs12, jks, jceks or pem)"
        )),
    }
}

/// What a person calls a format in a message.
fn described(format: Format) -> &'static str {
    match format {
        Format::Pkcs12 => "a PKCS#12 file",
        Format::Jks => "a JKS keystore",
        Format::Jceks => "a JCEKS keystore",
        _ => "a PEM file",
    }
}

/// Refuses a file whose content is of another format than the one it is read as, naming the
/// format found and the option that reads it (exit 4: the input is not what it was said to be).
/// PKCS#12 is what detection falls back to for unknown bytes, so only the formats with a
/// signature (Java magic numbers, PEM armour) are named when PKCS#12 was not expected.
///
/// # Errors
/// [`pfxkit::Error::Malformed`] on a mismatch.
pub fn expect_format(
    path: &std::path::Path,
    bytes: &[u8],
    expected: Format,
    option: &str,
) -> Result<(), CliError> {
    let found = Format::detect(bytes);
    let same = found == expected
        || (found == Format::Pkcs12 && expected != Format::Pkcs12 && !looks_like_pfx(bytes));
    if same {
        return Ok(());
    }
    let hint = match (option, found) {
        ("--type", Format::Jceks) => "; use --type jks (pfxkit reads JCEKS as a JKS store)".into(),
        ("--type", f) => format!("; use --type {}", f.name()),
        ("--cert", Format::Pkcs12) => "; --cert takes one certificate (PEM or DER); a key entry \
             goes in with --pfx FILE --pfx-password SRC"
            .into(),
        ("--cert", _) => "; --cert takes one certificate (PEM or DER)".into(),
        ("build", _) => "; build takes PEM or DER keys and certificates: to re-encode a PKCS#12 \
             file or a keystore, use pfxkit convert"
            .into(),
        (_, Format::Jks | Format::Jceks) => format!(
            "; convert it first: pfxkit convert {} --password SRC --to pkcs12 --out FILE --out-password SRC",
            path.display()
        ),
        _ => String::new(),
    };
    Err(pfxkit::Error::Malformed {
        context: path.display().to_string(),
        offset: None,
        reason: format!("{}, not {}{hint}", described(found), described(expected)),
    }
    .into())
}

/// A PFX starts `SEQUENCE { INTEGER 3, …`: told apart from random bytes that detection also
/// calls PKCS#12.
fn looks_like_pfx(bytes: &[u8]) -> bool {
    let text = bytes.trim_ascii_start();
    if text.starts_with(b"-----BEGIN PKCS12-----") {
        return true;
    }
    let after_len = match bytes.get(1) {
        Some(l) if *l < 0x80 => 2,
        Some(l) if *l == 0x80 => 2,
        Some(l) => 2 + usize::from(l & 0x7f),
        None => return false,
    };
    bytes.first() == Some(&0x30) && bytes.get(after_len..after_len + 3) == Some(&[0x02, 0x01, 0x03])
}

pub fn run(args: Args, json: bool) -> CliResult {
    let bytes = read_file(&args.file)?;
    if let Some(expected) = args.file_type {
        expect_format(&args.file, &bytes, expected, "--type")?;
    }
    let password = resolve(args.password.as_ref())?;
    let limits = Limits::default();
    let key_password = resolve(args.key_password.as_ref())?;
    let name_password = |e: pfxkit::Error| {
        crate::naming_password(format!("the password of {}", args.file.display()))(e.into())
    };
    let mut report = match Format::detect(&bytes) {
        Format::Pkcs12 => pkcs12_report(
            &pkcs12::read_with_key_password(
                &bytes,
                password.as_ref(),
                key_password.as_ref(),
                &limits,
            )
            .map_err(name_password)?,
        ),
        Format::Jks | Format::Jceks => {
            let store = match (&password, args.no_verify) {
                (Some(p), _) => jks::read(&bytes, p, &limits).map_err(name_password)?,
                (None, true) => jks::read_unverified(&bytes, &limits)?,
                (None, false) => {
                    // A usage error (exit 2), with the way out.
                    return Err(CliError::Usage(
                        "a Java keystore needs --password (or --no-verify to list it unverified)"
                            .into(),
                    ));
                }
            };
            let key_password = key_password.as_ref().or(password.as_ref());
            jks_report(&store, key_password, &limits)?
        }
        Format::Pem => pem_report(&bytes, key_password.as_ref().or(password.as_ref()), &limits)?,
        _ => {
            return Err(pfxkit::Error::Unsupported {
                what: "this file format".into(),
                oid: None,
            }
            .into());
        }
    };
    select(&mut report, args.select);
    if json {
        print_json(&report);
    } else {
        print_text(&report);
    }
    Ok(())
}

/// Applies `--no-keys`, `--no-certs`, `--leaf-only` and `--ca-only` to a report.
fn select(report: &mut Value, select: Selection) {
    if !select.keys()
        && let Some(keys) = report.get_mut("keys")
    {
        *keys = json!([]);
    }
    if let Some(Value::Array(certs)) = report.get_mut("certificates") {
        certs.retain(|c| select.certificate(c["has_key"] == true));
    }
}

/// Seconds since the Unix epoch, now.
fn now_unix() -> u64 {
    u64::try_from(pfxkit::cert::now_millis() / 1000).unwrap_or_default()
}

/// Days from now until `not_after` (negative once expired), rounded down.
fn days_left(cert: &Certificate) -> i64 {
    let after = i64::try_from(cert.not_after_unix()).unwrap_or(i64::MAX);
    let now = i64::try_from(now_unix()).unwrap_or_default();
    (after - now).div_euclid(86_400)
}

fn pkcs12_report(archive: &Archive) -> Value {
    let pairings = archive.pairings();
    let certs = archive.certificates();
    // Keys pfxkit cannot prove: the certificate their embedded public key names, as a claim.
    let claimed = pfxkit::identity::claimed_pairings(
        &archive.keys().iter().map(|k| &k.key).collect::<Vec<_>>(),
        &certs.iter().map(|c| &c.certificate).collect::<Vec<_>>(),
    );
    let keys: Vec<Value> = archive
        .keys()
        .iter()
        .zip(&pairings)
        .zip(&claimed)
        .map(|((k, pair), claim)| {
            let alg = k.key.algorithm();
            let sha256 = |i: &Option<usize>| {
                i.and_then(|i| certs.get(i))
                    .map(|c| c.certificate.sha256_hex())
            };
            let mut key = json!({
                "alias": k.attributes.friendly_name,
                "algorithm": alg.name(),
                "bits": alg.bits(),
                "certificate_sha256": sha256(pair),
                "encryption": k.encryption.as_ref().map(|e| e.name()),
                "encryption_iterations": k.encryption.as_ref().map(|e| e.iterations()),
                "protection": k.encryption.as_ref().map_or_else(|| "none (plain keyBag)".into(), |e| e.description()),
            });
            if let (None, Some(_), Some(fields)) = (pair, claim, key.as_object_mut()) {
                fields.insert("claimed_certificate_sha256".into(), json!(sha256(claim)));
            }
            key
        })
        .collect();
    let certificates: Vec<Value> = certs
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let mut value = cert_json(
                c.attributes.friendly_name.as_deref(),
                &c.certificate,
                pairings.contains(&Some(i)),
                c.attributes.java_trusted,
            );
            if let Some(fields) = value.as_object_mut() {
                fields.insert(
                    "encryption".into(),
                    json!(c.encryption.as_ref().map(|e| e.name())),
                );
                fields.insert(
                    "encryption_iterations".into(),
                    json!(c.encryption.as_ref().map(|e| e.iterations())),
                );
                fields.insert(
                    "protection".into(),
                    json!(
                        c.encryption
                            .as_ref()
                            .map_or_else(|| "none (plain data)".into(), |e| e.description())
                    ),
                );
            }
            value
        })
        .collect();
    // Certificates that cannot be decoded are listed too, by thumbprint, with the reason.
    let mut certificates = certificates;
    for u in archive.unparsed_certificates() {
        certificates.push(json!({
            "alias": u.attributes.friendly_name,
            "subject": null,
            "issuer": null,
            "serial": null,
            "not_before": null,
            "not_after": null,
            "sha1": u.sha1_hex(),
            "sha256": u.sha256_hex(),
            "has_key": false,
            "trusted": u.attributes.java_trusted,
            "error": u.reason,
        }));
    }
    let other: Vec<Value> = archive
        .other_bags()
        .iter()
        .map(|b| json!({ "kind": format!("{:?}", b.kind), "alias": b.attributes.friendly_name }))
        .collect();
    let mut warnings: Vec<String> = archive
        .unparsed_certificates()
        .iter()
        .map(|u| {
            format!(
                "certificate {} cannot be decoded: {}",
                u.sha256_hex(),
                u.reason
            )
        })
        .collect();
    if archive.trailing_zero_bytes() > 0 {
        warnings.push(format!(
            "{} zero bytes of padding after the PFX are ignored (Windows pads its exports)",
            archive.trailing_zero_bytes()
        ));
    }
    json!({
        "format": "pkcs12",
        "mac": archive.mac().map(|m| json!({
            "algorithm": m.algorithm.name(),
            "iterations": m.algorithm.iterations(),
        })),
        "keys": keys,
        "certificates": certificates,
        "other_bags": other,
        "trailing_zero_bytes": archive.trailing_zero_bytes(),
        "warnings": warnings,
    })
}

fn key_json(
    alias: Option<&str>,
    key: Option<&PrivateKey>,
    certificate: Option<&Certificate>,
) -> Value {
    let alg = key.map(PrivateKey::algorithm);
    json!({
        "alias": alias,
        "algorithm": alg.map(|a| a.name()),
        "bits": alg.and_then(|a| a.bits()),
        "certificate_sha256": certificate.map(Certificate::sha256_hex),
    })
}

fn cert_json(alias: Option<&str>, cert: &Certificate, has_key: bool, trusted: bool) -> Value {
    json!({
        "alias": alias,
        "subject": cert.subject(),
        "issuer": cert.issuer(),
        "serial": cert.serial_hex(),
        "not_before": cert.not_before_rfc3339(),
        "not_after": cert.not_after_rfc3339(),
        "sha1": cert.sha1_hex(),
        "sha256": cert.sha256_hex(),
        "has_key": has_key,
        "trusted": trusted,
        "sans": cert.subject_alt_names(),
        "key_usage": cert.key_usage(),
        "extended_key_usage": cert.extended_key_usage(),
        "expired": cert.not_after_unix() < now_unix(),
        "expires_in_days": days_left(cert),
    })
}

/// Key entries whose key password is unknown or wrong are listed with a null algorithm.
fn jks_report(
    store: &Keystore,
    key_password: Option<&Password>,
    limits: &Limits,
) -> Result<Value, Error> {
    let mut keys = Vec::new();
    let mut certificates = Vec::new();
    let mut secret_keys = Vec::new();
    let mut warnings: Vec<String> = store.warnings().to_vec();
    // Private and secret keys share one work budget.
    let (decrypted, unsealed) = match key_password {
        Some(p) => store.decrypt_all_keys(p, limits)?,
        None => (Vec::new(), Vec::new()),
    };
    let (mut decrypted, mut unsealed) = (decrypted.into_iter(), unsealed.into_iter());
    for entry in store.entries() {
        match entry {
            Entry::PrivateKey(k) => {
                let key = decrypted.next().and_then(|r| r.ok());
                let mut value = key_json(Some(k.alias()), key.as_ref(), k.chain().first());
                if let Some(fields) = value.as_object_mut() {
                    let protection = match store.kind() {
                        jks::KeystoreKind::Jceks => "jceks pbe-md5-3des (key password)",
                        _ => "jks key protector sha1 (key password)",
                    };
                    fields.insert("protection".into(), json!(protection));
                }
                keys.push(value);
                for (i, cert) in k.chain().iter().enumerate() {
                    certificates.push(cert_json(Some(k.alias()), cert, i == 0, false));
                }
            }
            Entry::Trusted(t) => {
                certificates.push(cert_json(Some(t.alias()), t.certificate(), false, true))
            }
            Entry::SecretKey(s) => {
                let key = match unsealed.next() {
                    Some(Ok(key)) => Some(key),
                    Some(Err(e)) => {
                        if s.unsupported_reason().is_none() {
                            warnings.push(format!("secret key '{}' not decrypted: {e}", s.alias()));
                        }
                        None
                    }
                    None => None,
                };
                secret_keys.push(json!({
                    "alias": s.alias(),
                    "kind": "secret",
                    "algorithm": key.as_ref().map(|k| k.algorithm().to_string()),
                    "bits": key.as_ref().map(|k| k.bits()),
                }));
            }
            _ => {}
        }
    }
    Ok(json!({
        "format": match store.kind() { jks::KeystoreKind::Jceks => "jceks", _ => "jks" },
        "mac": if store.digest_verified() {
            json!({ "algorithm": "sha1-keystore-digest", "iterations": null })
        } else {
            Value::Null
        },
        "verified": store.digest_verified(),
        "keys": keys,
        "secret_keys": secret_keys,
        "certificates": certificates,
        "warnings": warnings,
    }))
}

/// PEM bundles: keys that cannot be decrypted (no or wrong password) are listed with a null
/// algorithm.
fn pem_report(
    bytes: &[u8],
    key_password: Option<&Password>,
    limits: &Limits,
) -> Result<Value, Error> {
    let scan = pfxkit::pem::scan(bytes, limits).or_else(|e| {
        // A lone DER certificate or key.
        let bundle = pfxkit::pem::read_bundle(bytes, key_password, limits).map_err(|_| e)?;
        let mut scan = pfxkit::pem::Scan::default();
        scan.certificates = bundle.certificates.into_iter().map(|c| (c, None)).collect();
        scan.has_key = !bundle.keys.is_empty();
        Ok::<_, Error>(scan)
    })?;
    let bundle = pfxkit::pem::read_bundle(bytes, key_password, limits).ok();
    let identities = bundle
        .as_ref()
        .and_then(|b| b.identities(limits).ok())
        .unwrap_or_default();
    let keys: Vec<Value> = match &bundle {
        Some(b) => b
            .keys
            .iter()
            .map(|k| {
                let leaf = identities.iter().find(|i| i.key() == k).map(|i| i.leaf());
                key_json(scan.key_alias.as_deref(), Some(k), leaf)
            })
            .collect(),
        None if scan.has_key => vec![key_json(scan.key_alias.as_deref(), None, None)],
        None => Vec::new(),
    };
    let certificates: Vec<Value> = scan
        .certificates
        .iter()
        .map(|(c, alias)| {
            cert_json(
                alias.as_deref(),
                c,
                identities.iter().any(|i| i.leaf() == c),
                false,
            )
        })
        .collect();
    Ok(json!({ "format": "pem", "mac": null, "keys": keys, "certificates": certificates }))
}

fn print_text(report: &Value) {
    let s = |v: &Value| match v {
        Value::Null => "-".to_string(),
        Value::String(text) => crate::escape_text(text),
        other => other.to_string(),
    };
    let flag = |v: &Value, text: &'static str| if *v == true { text } else { "" };
    outln!("format: {}", s(&report["format"]));
    match report["mac"].as_object() {
        Some(mac) if mac["iterations"].is_null() => outln!("mac: {}", s(&mac["algorithm"])),
        Some(mac) => outln!(
            "mac: {} ({} iterations)",
            s(&mac["algorithm"]),
            mac["iterations"]
        ),
        None => outln!("mac: none (no integrity protection)"),
    }
    for k in report["keys"].as_array().into_iter().flatten() {
        let what = match k["algorithm"].as_str() {
            Some(alg) => format!("{alg} {} bits", s(&k["bits"])),
            None => "not decrypted (no or wrong key password)".into(),
        };
        outln!(
            "key {}: {what}, certificate {}",
            s(&k["alias"]),
            s(&k["certificate_sha256"])
        );
        if !k["protection"].is_null() {
            outln!("  protection {}", s(&k["protection"]));
        }
    }
    for k in report["secret_keys"].as_array().into_iter().flatten() {
        let what = match k["algorithm"].as_str() {
            Some(alg) => format!("{alg} {} bits", s(&k["bits"])),
            None => "not decrypted".into(),
        };
        outln!("secret key {}: {what}", s(&k["alias"]));
    }
    for c in report["certificates"].as_array().into_iter().flatten() {
        let days = c["expires_in_days"].as_i64().unwrap_or_default();
        let marker = if c["expired"] == true {
            format!("EXPIRED {} days ago", -days)
        } else {
            format!("expires in {days} days")
        };
        let list = |v: &Value| {
            let items: Vec<String> = v
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect();
            if items.is_empty() {
                "-".to_string()
            } else {
                items.join(", ")
            }
        };
        outln!(
            "certificate {}: {}{}{}\n  issuer {}\n  serial {}\n  valid {} .. {}  [{marker}]\n  sha1 {}\n  sha256 {}\n  sans {}\n  key usage {}\n  extended key usage {}",
            s(&c["alias"]),
            s(&c["subject"]),
            flag(&c["has_key"], "  [has key]"),
            flag(&c["trusted"], "  [trusted]"),
            s(&c["issuer"]),
            s(&c["serial"]),
            s(&c["not_before"]),
            s(&c["not_after"]),
            s(&c["sha1"]),
            s(&c["sha256"]),
            list(&c["sans"]),
            list(&c["key_usage"]),
            list(&c["extended_key_usage"]),
        );
        if c.get("protection").is_some() {
            outln!("  protection {}", s(&c["protection"]));
        }
    }
    for w in report["warnings"].as_array().into_iter().flatten() {
        outln!("warning: {}", s(w));
    }
}
