//! Issue 14 through the command line: what `pfxkit inspect` and `convert` print and exit with
//! for the causes found in the real-world corpus, on fixtures of our own
//! (`tests/data/gen_corpus.sh`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// `tests/data` of the root crate.
fn data_dir() -> PathBuf {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../..")).join("tests/data")
}

fn pfxkit(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pfxkit"))
        .args(args)
        .output()
        .expect("pfxkit runs")
}

fn corpus(name: &str) -> String {
    data_dir()
        .join("corpus")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

fn json_of(output: &Output) -> Value {
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

#[test]
fn inspect_reads_ber_inside_authenticated_safe_and_exits_3_on_a_wrong_password() {
    let file = corpus("ber-inside.p12");
    let doc = json_of(&pfxkit(&[
        "inspect",
        &file,
        "--json",
        "--password",
        "pass:pfxkit-pass",
    ]));
    assert_eq!(doc["keys"].as_array().unwrap().len(), 1);
    assert_eq!(doc["certificates"].as_array().unwrap().len(), 3);
    let wrong = pfxkit(&["inspect", &file, "--password", "pass:wrong"]);
    assert_eq!(wrong.status.code(), Some(3));
}

#[test]
fn inspect_notes_windows_zero_padding() {
    let doc = json_of(&pfxkit(&[
        "inspect",
        &corpus("windows-zero-padding.p12"),
        "--json",
        "--password",
        "pass:pfxkit-pass",
    ]));
    assert_eq!(doc["trailing_zero_bytes"], 8);
    assert!(
        doc["warnings"][0]
            .as_str()
            .unwrap()
            .contains("zero bytes of padding")
    );
}

#[test]
fn inspect_lists_jceks_secret_keys_with_kind_secret() {
    let file = corpus("secret-keys.jceks");
    let doc = json_of(&pfxkit(&[
        "inspect",
        &file,
        "--json",
        "--password",
        "pass:store-pass",
    ]));
    let secrets = doc["secret_keys"].as_array().unwrap();
    let by_alias = |alias: &str| {
        secrets
            .iter()
            .find(|s| s["alias"] == alias)
            .unwrap_or_else(|| panic!("{alias} not listed: {doc}"))
    };
    assert_eq!(secrets.len(), 3);
    assert!(secrets.iter().all(|s| s["kind"] == "secret"));
    assert_eq!(by_alias("aes")["algorithm"], "AES");
    assert_eq!(by_alias("aes")["bits"], 128);
    // "hmac" has its own key password: listed, not decrypted, and said so.
    assert_eq!(by_alias("hmac")["algorithm"], Value::Null);
    assert!(
        doc["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w.as_str().unwrap().contains("'hmac'"))
    );
    // Secret keys are not private keys.
    assert_eq!(doc["keys"].as_array().unwrap().len(), 1);

    let wrong = pfxkit(&["inspect", &file, "--password", "pass:wrong"]);
    assert_eq!(wrong.status.code(), Some(3));
}

#[test]
fn convert_warns_about_secret_keys_it_cannot_carry() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.p12");
    let output = pfxkit(&[
        "convert",
        &corpus("secret-keys.jceks"),
        "--password",
        "pass:store-pass",
        "--to",
        "pkcs12",
        "--out",
        out.to_str().unwrap(),
        "--out-password",
        "pass:out-pass",
    ]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    for alias in ["aes", "hmac", "pass"] {
        assert!(
            stderr.contains(&format!("secret key '{alias}'")),
            "{stderr}"
        );
    }
}

/// Every key encoding `build --help` promises (made by openssl in gen_corpus.sh): (file stem,
/// certificate, key password).
const KEY_ENCODINGS: &[(&str, &str, Option<&str>)] = &[
    ("rsa-pkcs8", "leaf-rsa", None),
    ("rsa-pkcs8-encrypted", "leaf-rsa", Some("pass:key-pass")),
    ("rsa-pkcs1", "leaf-rsa", None),
    ("ec-sec1", "leaf-ec256", None),
];

fn assert_ok(output: &Output, what: &str) {
    assert_eq!(
        output.status.code(),
        Some(0),
        "{what}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn openssl_reads(p12: &str, password: &str) {
    match Command::new("openssl")
        .args(["pkcs12", "-info", "-noout", "-in", p12, "-passin"])
        .arg(format!("pass:{password}"))
        .output()
    {
        Ok(out) => assert!(
            out.status.success(),
            "openssl cannot read {p12}: {}",
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(_) => eprintln!("note: openssl is not available; skipping its check"),
    }
}

#[test]
fn builds_stores_and_imports_from_every_key_encoding() {
    let dir = tempfile::tempdir().unwrap();
    let d = |name: &str| dir.path().join(name).to_string_lossy().into_owned();
    let catalog = d("catalog");
    assert_ok(
        &pfxkit(&["catalog", "init", "--catalog", &catalog]),
        "catalog init",
    );
    for (i, (name, cert, key_password)) in KEY_ENCODINGS.iter().enumerate() {
        for ext in ["pem", "der"] {
            let what = format!("{name}.{ext}");
            let key = corpus(&format!("keys/{what}"));
            let cert = data_dir()
                .join(format!("pki/certs/{cert}.pem"))
                .to_string_lossy()
                .into_owned();
            let out = d(&format!("{name}-{ext}.p12"));
            let mut args = vec![
                "build",
                "--key",
                &key,
                "--cert",
                &cert,
                "--out",
                &out,
                "--password",
                "pass:p",
            ];
            if let Some(kp) = key_password {
                args.extend(["--key-password", kp]);
            }
            assert_ok(&pfxkit(&args), &format!("build from {what}"));
            openssl_reads(&out, "p");

            let store = d("store.jks");
            let alias = format!("k{i}-{ext}");
            assert_ok(
                &pfxkit(&[
                    "store",
                    "add",
                    "--type",
                    "jks",
                    "--path",
                    &store,
                    "--store-password",
                    "pass:store-pass",
                    "--alias",
                    &alias,
                    "--pfx",
                    &out,
                    "--pfx-password",
                    "pass:p",
                    "--create",
                ]),
                &format!("store add from {what}"),
            );
            assert_ok(
                &pfxkit(&[
                    "import",
                    "--catalog",
                    &catalog,
                    "--pfx",
                    &out,
                    "--password",
                    "pass:p",
                ]),
                &format!("import from {what}"),
            );
        }
    }
}

#[test]
fn converts_from_every_pem_key_encoding() {
    // convert reads a key and its certificate from one file: a PEM bundle (DER holds one
    // object per file, so DER keys are covered by build above).
    let dir = tempfile::tempdir().unwrap();
    for (name, cert, key_password) in KEY_ENCODINGS {
        let mut bundle = std::fs::read(data_dir().join(format!("pki/certs/{cert}.pem"))).unwrap();
        bundle.extend(std::fs::read(corpus(&format!("keys/{name}.pem"))).unwrap());
        let input = dir.path().join(format!("{name}.pem"));
        std::fs::write(&input, &bundle).unwrap();
        let out = dir.path().join(format!("{name}.p12"));
        let mut args = vec![
            "convert".to_string(),
            input.to_string_lossy().into_owned(),
            "--to".into(),
            "pkcs12".into(),
            "--out".into(),
            out.to_string_lossy().into_owned(),
            "--out-password".into(),
            "pass:p".into(),
        ];
        if let Some(kp) = key_password {
            args.extend(["--key-password".into(), kp.to_string()]);
        }
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        assert_ok(&pfxkit(&refs), &format!("convert from {name}.pem"));
        openssl_reads(&out.to_string_lossy(), "p");
        let doc = json_of(&pfxkit(&[
            "inspect",
            &out.to_string_lossy(),
            "--json",
            "--password",
            "pass:p",
        ]));
        assert!(
            !doc["keys"][0]["certificate_sha256"].is_null(),
            "{name}: {doc}"
        );
    }
}

#[test]
fn inspect_lists_an_unparsable_certificate_with_its_reason() {
    let doc = json_of(&pfxkit(&[
        "inspect",
        &corpus("unparsable-cert.p12"),
        "--json",
        "--password",
        "pass:pfxkit-pass",
    ]));
    let certs = doc["certificates"].as_array().unwrap();
    assert_eq!(certs.len(), 2);
    let broken = certs.iter().find(|c| c["alias"] == "broken").unwrap();
    assert!(broken["subject"].is_null());
    assert!(broken["error"].is_string());
    assert_eq!(broken["sha256"].as_str().unwrap().len(), 64);
}

#[test]
fn inspect_takes_a_pkcs12_key_password() {
    let file = corpus("two-passwords.p12");
    let doc = json_of(&pfxkit(&[
        "inspect",
        &file,
        "--json",
        "--password",
        "pass:store-pass",
        "--key-password",
        "pass:key-pass",
    ]));
    assert_eq!(doc["keys"][0]["algorithm"], "rsa");
    assert!(doc["keys"][0]["certificate_sha256"].is_string());
    let without = pfxkit(&["inspect", &file, "--password", "pass:store-pass"]);
    assert_eq!(without.status.code(), Some(3));
}

#[test]
fn inspect_of_a_jks_without_password_is_a_usage_error() {
    let file = data_dir().join("jks/ec.jks");
    let output = pfxkit(&["inspect", file.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--password"), "{stderr}");
    assert!(stderr.contains("--no-verify"), "{stderr}");
    let out = tempfile::tempdir().unwrap();
    let converted = pfxkit(&[
        "convert",
        file.to_str().unwrap(),
        "--to",
        "pem",
        "--out",
        out.path().join("x.pem").to_str().unwrap(),
    ]);
    assert_eq!(converted.status.code(), Some(2));
}

#[test]
fn inspect_reports_a_claimed_certificate_for_a_key_it_cannot_prove() {
    let doc = json_of(&pfxkit(&[
        "inspect",
        &corpus("sect193r1.p12"),
        "--json",
        "--password",
        "pass:pfxkit-pass",
    ]));
    let expected = std::fs::read_to_string(corpus("sect193r1.sha256")).unwrap();
    let key = &doc["keys"][0];
    assert_eq!(key["algorithm"], "ec");
    assert_eq!(key["certificate_sha256"], Value::Null);
    assert_eq!(key["claimed_certificate_sha256"], expected.trim());
    assert_eq!(doc["certificates"][0]["has_key"], false);
}
