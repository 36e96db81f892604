//! The `pfxkit inspect` contract (`docs/cli.md`): its JSON for a real archive matches
//! the facts in `tests/data/manifest.json`, each failure class has its exit code, and password
//! sources work. Runs the built binary.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

#[path = "../../../tests/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use common::{Der, PfxTree, data_dir, fixture, integer, oid, p12_entry};

fn pfxkit() -> Command {
    Command::new(env!("CARGO_BIN_EXE_pfxkit"))
}

fn p12(name: &str) -> PathBuf {
    data_dir().join("p12").join(name)
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("pfxkit runs")
}

fn exit_code(output: &Output) -> i32 {
    output.status.code().expect("pfxkit exited, not killed")
}

fn assert_exit(output: &Output, code: i32, what: &str) {
    assert_eq!(
        exit_code(output),
        code,
        "{what}: stderr was {}",
        String::from_utf8_lossy(&output.stderr)
    );
    if code != 0 {
        assert!(
            !output.stderr.is_empty(),
            "{what}: a failure says why on stderr"
        );
    }
}

fn write_temp(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn inspect_json_of_openssl_default_matches_the_manifest() {
    let output = run(pfxkit()
        .args(["inspect", "--json", "--password", "pass:pfxkit-pass"])
        .arg(p12("openssl-default.p12")));
    assert_exit(&output, 0, "inspect --json");
    let report: Value =
        serde_json::from_slice(&output.stdout).expect("stdout is one JSON document");
    let entry = p12_entry("p12/openssl-default.p12");

    assert_eq!(report["format"], "pkcs12");
    assert_eq!(report["mac"]["algorithm"], entry["mac"]);
    assert_eq!(report["mac"]["iterations"], entry["mac_iterations"]);

    let keys = report["keys"].as_array().unwrap();
    let want_keys = entry["keys"].as_array().unwrap();
    assert_eq!(keys.len(), want_keys.len());
    for (k, want) in keys.iter().zip(want_keys) {
        for field in ["alias", "algorithm", "bits", "certificate_sha256"] {
            assert_eq!(k[field], want[field], "keys[].{field}");
        }
    }

    let certs = report["certificates"].as_array().unwrap();
    let want_certs = entry["certificates"].as_array().unwrap();
    assert_eq!(certs.len(), want_certs.len());
    for (i, (c, want)) in certs.iter().zip(want_certs).enumerate() {
        for field in [
            "alias", "subject", "issuer", "serial", "sha1", "sha256", "has_key", "trusted",
        ] {
            assert_eq!(c[field], want[field], "certificates[{i}].{field}");
        }
        // RFC 3339 UTC, as the contract says.
        for field in ["not_before", "not_after"] {
            let t = c[field].as_str().unwrap();
            assert!(
                t.len() == 20 && t.ends_with('Z') && &t[10..11] == "T",
                "{field}: {t}"
            );
        }
    }
}

#[test]
fn inspect_prints_text_without_json() {
    let output = run(pfxkit()
        .args(["inspect", "--password", "pass:pfxkit-pass"])
        .arg(p12("openssl-default.p12")));
    assert_exit(&output, 0, "inspect");
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(text.contains("format: pkcs12"), "{text}");
    assert!(text.contains("CN=www.example.com"), "{text}");
}

#[test]
fn exits_3_on_wrong_password() {
    let output = run(pfxkit()
        .args(["inspect", "--password", "pass:wrong"])
        .arg(p12("openssl-default.p12")));
    assert_exit(&output, 3, "wrong password");
}

#[test]
fn exits_3_when_no_password_is_given_for_a_protected_file() {
    let output = run(pfxkit().arg("inspect").arg(p12("openssl-default.p12")));
    assert_exit(&output, 3, "no password");
}

#[test]
fn exits_4_on_a_garbage_file() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = write_temp(
        dir.path(),
        "garbage.p12",
        &[0x30, 0x82, 0x01, 0x00, 0xde, 0xad],
    );
    let output = run(pfxkit().arg("inspect").arg(&garbage));
    assert_exit(&output, 4, "garbage");
    // A truncated real archive too.
    let bytes = fixture("p12/openssl-default.p12");
    let truncated = write_temp(dir.path(), "truncated.p12", &bytes[..bytes.len() / 2]);
    let output = run(pfxkit()
        .args(["inspect", "--password", "pass:pfxkit-pass"])
        .arg(&truncated));
    assert_exit(&output, 4, "truncated");
}

#[test]
fn exits_5_on_a_mac_iteration_count_of_2_pow_31_minus_1() {
    let mut tree = PfxTree::parse(&fixture("p12/openssl-default.p12"));
    *tree.mac_data().at_mut(&[2]) = Der::parse(&integer(i64::from(i32::MAX)));
    let dir = tempfile::tempdir().unwrap();
    let hostile = write_temp(dir.path(), "iterations.p12", &tree.encode());
    let output = run(pfxkit()
        .args(["inspect", "--password", "pass:pfxkit-pass"])
        .arg(&hostile));
    assert_exit(&output, 5, "2^31-1 MAC iterations");
}

#[test]
fn exits_5_when_proving_its_keys_would_exceed_the_work_limit() {
    // 2000 Ed448 keys, one scalar multiplication each to pair them: over a second of CPU.
    let mut bags = vec![common::key_bag(&common::pem_der("pki/keys/leaf-ed448.pem")); 2000];
    bags.push(common::cert_bag(&common::pem_der(
        "pki/certs/leaf-ed448.pem",
    )));
    let dir = tempfile::tempdir().unwrap();
    let hostile = write_temp(dir.path(), "ed448.p12", &common::plain_pfx(&bags));
    let output = run(pfxkit()
        .args(["inspect", "--password", "pass:"])
        .arg(&hostile));
    assert_exit(&output, 5, "2000 Ed448 key proofs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("work"), "{stderr}");
}

#[test]
fn exits_6_on_an_unknown_pbes2_cipher_and_names_its_oid() {
    let bytes = fixture("p12/openssl-default.p12");
    let mut unknown = oid::AES_256_CBC.to_vec();
    *unknown.last_mut().unwrap() = 0x7f;
    let hostile: Vec<u8> = {
        let mut out = bytes.clone();
        let n = unknown.len();
        for i in 0..=out.len() - n {
            if out[i..i + n] == *oid::AES_256_CBC {
                out[i..i + n].copy_from_slice(&unknown);
            }
        }
        out
    };
    assert_ne!(hostile, bytes);
    let dir = tempfile::tempdir().unwrap();
    let path = write_temp(dir.path(), "cipher.p12", &hostile);
    let output = run(pfxkit()
        .args(["inspect", "--password", "pass:pfxkit-pass"])
        .arg(&path));
    assert_exit(&output, 6, "unknown cipher");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("2.16.840.1.101.3.4.1.127"),
        "the message names the OID: {stderr}"
    );
}

#[test]
fn exits_2_on_a_bad_option() {
    let output = run(pfxkit()
        .args(["inspect", "--no-such-option"])
        .arg(p12("openssl-default.p12")));
    assert_exit(&output, 2, "unknown option");
    let output = run(pfxkit()
        .args(["inspect", "--password", "bogus-source"])
        .arg(p12("openssl-default.p12")));
    assert_exit(&output, 2, "password source without a scheme");
    let output = run(pfxkit().arg("inspect"));
    assert_exit(&output, 2, "missing FILE");
}

#[test]
fn exits_1_when_the_file_cannot_be_read() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(pfxkit().arg("inspect").arg(dir.path().join("missing.p12")));
    assert_exit(&output, 1, "missing file");
}

#[test]
fn reads_the_password_from_an_environment_variable() {
    let output = run(pfxkit()
        .args([
            "inspect",
            "--json",
            "--password",
            "env:PFXKIT_TEST_PASSWORD",
        ])
        .arg(p12("openssl-default.p12"))
        .env("PFXKIT_TEST_PASSWORD", "pfxkit-pass"));
    assert_exit(&output, 0, "env: source");
    let output = run(pfxkit()
        .args(["inspect", "--password", "env:PFXKIT_TEST_PASSWORD"])
        .arg(p12("openssl-default.p12"))
        .env("PFXKIT_TEST_PASSWORD", "wrong"));
    assert_exit(&output, 3, "env: source with a wrong password");
}

#[test]
fn reads_the_password_from_the_first_line_of_a_file() {
    let dir = tempfile::tempdir().unwrap();
    for (name, content) in [
        ("lf", "pfxkit-pass\nsecond line\n"),
        ("crlf", "pfxkit-pass\r\n"),
        ("bare", "pfxkit-pass"),
    ] {
        let file = write_temp(dir.path(), name, content.as_bytes());
        let output = run(pfxkit()
            .args(["inspect", "--json", "--password"])
            .arg(format!("file:{}", file.display()))
            .arg(p12("openssl-default.p12")));
        assert_exit(&output, 0, &format!("file: source ({name})"));
    }
    // A non-ASCII password read from a file.
    let file = write_temp(dir.path(), "unicode", "pässwörd-😀\n".as_bytes());
    let output = run(pfxkit()
        .args(["inspect", "--json", "--password"])
        .arg(format!("file:{}", file.display()))
        .arg(p12("openssl-unicode-pass.p12")));
    assert_exit(&output, 0, "file: source with a non-ASCII password");
}

#[test]
fn inspects_a_pem_armoured_pkcs12_file() {
    let armoured = pem::encode(&pem::Pem::new("PKCS12", fixture("p12/openssl-default.p12")));
    let dir = tempfile::tempdir().unwrap();
    let path = write_temp(dir.path(), "armoured.pem", armoured.as_bytes());
    let output = run(pfxkit()
        .args(["inspect", "--json", "--password", "pass:pfxkit-pass"])
        .arg(&path));
    assert_exit(&output, 0, "PEM armour");
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["format"], "pkcs12");
}
