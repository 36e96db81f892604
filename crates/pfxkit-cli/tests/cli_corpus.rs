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
