#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
//! The command line on Java keystores: `inspect` detects JKS/JCEKS by magic and lists entries
//! as the manifest (made with keytool) says; errors map to the contract's exit codes; `convert
//! --to jks|jceks` writes stores keytool reads.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn data(rel: &str) -> PathBuf {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .join("tests/data")
        .join(rel)
}

fn pfxkit(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pfxkit"))
        .args(args)
        .output()
        .unwrap()
}

fn manifest_entry(file: &str) -> Value {
    let m: Value = serde_json::from_slice(&std::fs::read(data("manifest.json")).unwrap()).unwrap();
    m["jks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["file"] == file)
        .unwrap()
        .clone()
}

#[test]
fn inspect_lists_every_keytool_fixture_as_the_manifest_says() {
    for file in [
        "jks/rsa-keypass.jks",
        "jks/ec.jks",
        "jks/chain.jks",
        "jks/trust-only.jks",
        "jks/unicode.jks",
        "jks/key.jceks",
    ] {
        let expected = manifest_entry(file);
        let store_pw = format!("pass:{}", expected["store_password"].as_str().unwrap());
        let key_pw = expected["entries"]
            .as_array()
            .unwrap()
            .iter()
            .find_map(|e| e["key_password"].as_str())
            .map(|p| format!("pass:{p}"));
        let path = data(file);
        let mut args = vec![
            "inspect",
            path.to_str().unwrap(),
            "--password",
            &store_pw,
            "--json",
        ];
        if let Some(k) = &key_pw {
            args.extend(["--key-password", k]);
        }
        let out = pfxkit(&args);
        assert!(
            out.status.success(),
            "{file}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        let format = if file.ends_with(".jceks") {
            "jceks"
        } else {
            "jks"
        };
        assert_eq!(report["format"], format, "{file}");
        assert_eq!(report["mac"]["algorithm"], "sha1-keystore-digest", "{file}");
        for entry in expected["entries"].as_array().unwrap() {
            let alias = entry["alias"].as_str().unwrap();
            if entry["kind"] == "key" {
                let key = report["keys"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|k| k["alias"] == alias)
                    .unwrap();
                assert_eq!(key["certificate_sha256"], entry["sha256"], "{file} {alias}");
                assert_eq!(key["algorithm"], entry["key_algorithm"], "{file} {alias}");
            } else {
                let cert = report["certificates"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|c| c["alias"] == alias)
                    .unwrap();
                assert_eq!(cert["sha256"], entry["sha256"], "{file} {alias}");
                assert_eq!(cert["trusted"], true, "{file} {alias}");
            }
        }
    }
}

#[test]
fn inspect_without_the_key_password_lists_the_key_as_not_decrypted() {
    let out = pfxkit(&[
        "inspect",
        data("jks/rsa-keypass.jks").to_str().unwrap(),
        "--password",
        "pass:store-pass",
        "--json",
    ]);
    assert!(out.status.success());
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["keys"][0]["algorithm"], Value::Null);
    assert_eq!(
        report["keys"][0]["certificate_sha256"],
        manifest_entry("jks/rsa-keypass.jks")["entries"][0]["sha256"]
    );
}

#[test]
fn a_keystore_without_its_password_is_listed_only_when_asked_unverified() {
    let path = data("jks/trust-only.jks");
    let refused = pfxkit(&["inspect", path.to_str().unwrap()]);
    // A usage error (issue 14 item 8), with the hint.
    assert_eq!(refused.status.code(), Some(2));
    let listed = pfxkit(&["inspect", path.to_str().unwrap(), "--no-verify", "--json"]);
    assert!(listed.status.success());
    let report: Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(report["verified"], false);
    assert_eq!(report["mac"], Value::Null);
}

#[test]
fn wrong_password_and_tampering_exit_3_and_say_so() {
    let dir = tempfile::tempdir().unwrap();
    let tampered = dir.path().join("t.jks");
    let mut bytes = std::fs::read(data("jks/ec.jks")).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 1;
    std::fs::write(&tampered, &bytes).unwrap();
    for (path, pw) in [
        (data("jks/ec.jks"), "pass:wrong"),
        (tampered, "pass:store-pass"),
    ] {
        let out = pfxkit(&["inspect", path.to_str().unwrap(), "--password", pw]);
        assert_eq!(out.status.code(), Some(3), "{}", path.display());
        assert!(String::from_utf8_lossy(&out.stderr).contains("wrong password or tampered"));
    }
}

#[test]
fn truncated_keystore_exits_4() {
    let dir = tempfile::tempdir().unwrap();
    let truncated = dir.path().join("t.jks");
    let bytes = std::fs::read(data("jks/chain.jks")).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 3]).unwrap();
    let out = pfxkit(&[
        "inspect",
        truncated.to_str().unwrap(),
        "--password",
        "pass:store-pass",
    ]);
    assert_eq!(
        out.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn convert_writes_jks_and_jceks_that_keytool_lists_with_the_key_password() {
    let dir = tempfile::tempdir().unwrap();
    for (to, storetype) in [("jks", "JKS"), ("jceks", "JCEKS")] {
        let out_path = dir.path().join(format!("out.{to}"));
        let out = pfxkit(&[
            "convert",
            data("p12/openssl-default.p12").to_str().unwrap(),
            "--password",
            "pass:pfxkit-pass",
            "--to",
            to,
            "--out",
            out_path.to_str().unwrap(),
            "--out-password",
            "pass:storepass",
            "--out-key-password",
            "pass:keypass1",
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let listed = Command::new("keytool")
            .args([
                "-list",
                "-v",
                "-storetype",
                storetype,
                "-keystore",
                out_path.to_str().unwrap(),
                "-storepass",
                "storepass",
            ])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&listed.stdout);
        assert!(listed.status.success(), "{text}");
        assert!(text.contains("PrivateKeyEntry"), "{text}");
        assert!(text.contains("Certificate chain length: 3"), "{text}");
        // And back: the key decrypts with the key password only.
        let back = pfxkit(&[
            "inspect",
            out_path.to_str().unwrap(),
            "--password",
            "pass:storepass",
            "--key-password",
            "pass:keypass1",
            "--json",
        ]);
        let report: Value = serde_json::from_slice(&back.stdout).unwrap();
        assert_eq!(report["keys"][0]["algorithm"], "rsa");
    }
}

#[test]
fn convert_of_a_keystore_to_pkcs12_keeps_trusted_entries_trusted() {
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("trust.p12");
    let out = pfxkit(&[
        "convert",
        data("jks/trust-only.jks").to_str().unwrap(),
        "--password",
        "pass:store-pass",
        "--to",
        "pkcs12",
        "--out",
        out_path.to_str().unwrap(),
        "--out-password",
        "pass:changeit",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed = Command::new("keytool")
        .args([
            "-list",
            "-storetype",
            "PKCS12",
            "-keystore",
            out_path.to_str().unwrap(),
            "-storepass",
            "changeit",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&listed.stdout);
    assert_eq!(text.matches("trustedCertEntry").count(), 2, "{text}");
}
