//! `pfxkit inspect FILE [--password SRC] [--key-password SRC] [--json]`.

use std::path::PathBuf;

use pfxkit::pkcs12::{self, Archive};
use pfxkit::{Error, Limits, PasswordSource};
use serde_json::{Value, json};

use crate::{password_source, print_json, read_file, resolve};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The file to inspect (PKCS#12 in DER, BER or PEM armour; JKS; JCEKS; PEM bundle).
    file: PathBuf,
    /// Password source: pass:TEXT, env:VAR, file:PATH or stdin. Left out: for PKCS#12 both the
    /// empty and the absent password are tried.
    #[arg(long, value_parser = password_source)]
    password: Option<PasswordSource>,
    /// Key password source for JKS/JCEKS key entries (default: the store password).
    #[arg(long, value_parser = password_source)]
    key_password: Option<PasswordSource>,
    /// Print one JSON document instead of text.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> Result<(), Error> {
    let bytes = read_file(&args.file)?;
    let password = resolve(args.password.as_ref())?;
    let limits = Limits::default();
    let report = {
        let archive = pkcs12::read(&bytes, password.as_ref(), &limits)?;
        pkcs12_report(&archive)
    };
    if args.json {
        print_json(&report);
    } else {
        print_text(&report);
    }
    Ok(())
}

fn pkcs12_report(archive: &Archive) -> Value {
    let pairings = archive.pairings();
    let certs = archive.certificates();
    let keys: Vec<Value> = archive
        .keys()
        .iter()
        .zip(&pairings)
        .map(|(k, pair)| {
            let alg = k.key.algorithm();
            json!({
                "alias": k.attributes.friendly_name,
                "algorithm": alg.name(),
                "bits": alg.bits(),
                "certificate_sha256": pair.and_then(|i| certs.get(i)).map(|c| c.certificate.sha256_hex()),
                "encryption": k.encryption.as_ref().map(|e| e.name()),
            })
        })
        .collect();
    let certificates: Vec<Value> = certs
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let cert = &c.certificate;
            json!({
                "alias": c.attributes.friendly_name,
                "subject": cert.subject(),
                "issuer": cert.issuer(),
                "serial": cert.serial_hex(),
                "not_before": cert.not_before_rfc3339(),
                "not_after": cert.not_after_rfc3339(),
                "sha1": cert.sha1_hex(),
                "sha256": cert.sha256_hex(),
                "has_key": pairings.contains(&Some(i)),
                "trusted": c.attributes.java_trusted,
            })
        })
        .collect();
    let other: Vec<Value> = archive
        .other_bags()
        .iter()
        .map(|b| json!({ "kind": format!("{:?}", b.kind), "alias": b.attributes.friendly_name }))
        .collect();
    json!({
        "format": "pkcs12",
        "mac": archive.mac().map(|m| json!({
            "algorithm": m.algorithm.name(),
            "iterations": m.algorithm.iterations(),
        })),
        "keys": keys,
        "certificates": certificates,
        "other_bags": other,
    })
}

fn print_text(report: &Value) {
    let s = |v: &Value| {
        v.as_str()
            .map(str::to_string)
            .unwrap_or_else(|| v.to_string())
    };
    println!("format: {}", s(&report["format"]));
    match report["mac"].as_object() {
        Some(mac) => println!(
            "mac: {} ({} iterations)",
            s(&mac["algorithm"]),
            mac["iterations"]
        ),
        None => println!("mac: none (no integrity protection)"),
    }
    for k in report["keys"].as_array().into_iter().flatten() {
        println!(
            "key {}: {} {} bits, certificate {}",
            s(&k["alias"]),
            s(&k["algorithm"]),
            s(&k["bits"]),
            s(&k["certificate_sha256"])
        );
    }
    for c in report["certificates"].as_array().into_iter().flatten() {
        println!(
            "certificate {}: {}\n  issuer {}\n  serial {}  valid {} .. {}\n  sha256 {}{}{}",
            s(&c["alias"]),
            s(&c["subject"]),
            s(&c["issuer"]),
            s(&c["serial"]),
            s(&c["not_before"]),
            s(&c["not_after"]),
            s(&c["sha256"]),
            if c["has_key"] == true {
                "  [has key]"
            } else {
                ""
            },
            if c["trusted"] == true {
                "  [trusted]"
            } else {
                ""
            },
        );
    }
}
