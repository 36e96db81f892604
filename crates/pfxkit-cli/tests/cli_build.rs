#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
//! `pfxkit build` and `pfxkit convert` as `docs/cli.md` describes them: chains stored
//! leaf-first whatever order they are given in, profiles chosen by exact name only, usage errors
//! exit 2, keys read from encrypted PKCS#8, PKCS#1 and SEC1 PEM, and conversions between PKCS#12
//! and PEM that OpenSSL reads back.
//!
//! Inputs are the PEM fixtures under `tests/data/pki` (made by `tests/data/gen.sh`); the other key
//! encodings are made from them here with the `openssl` commands shown, in a temporary directory.
//! Results are checked with pfxkit's reader and, independently, with the `openssl` 3.0 CLI.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use pfxkit::pkcs12::{self, Archive};
use pfxkit::{Limits, Password, PrivateKey};

const PASSWORD: &str = "pfxkit-pass";

fn pki(relative: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .join("tests/data/pki")
        .join(relative)
}

fn pfxkit(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pfxkit"))
        .args(args.iter().map(|a| a.as_ref()))
        .output()
        .unwrap()
}

fn openssl(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
    let output = Command::new("openssl")
        .args(args.iter().map(|a| a.as_ref()))
        .output()
        .expect("openssl is needed for CLI tests");
    assert!(output.status.success(), "openssl {}", text(&output));
    output
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn assert_exit(output: &Output, code: i32) {
    assert_eq!(output.status.code(), Some(code), "{}", text(output));
}

/// `pfxkit build` of the RSA leaf with `key` and `extra` options into `out`.
fn build(key: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"build", &"--key", &key];
    let cert = pki("certs/leaf-rsa.pem");
    args.extend([&"--cert" as &dyn AsRef<_>, &cert, &"--out", &out]);
    args.extend(extra.iter().map(|a| a as &dyn AsRef<_>));
    pfxkit(&args)
}

fn read(path: &Path, password: &str) -> Archive {
    let bytes = std::fs::read(path).unwrap();
    pkcs12::read(&bytes, Some(&Password::new(password)), &Limits::default()).unwrap()
}

fn fixture_key(name: &str) -> PrivateKey {
    let bytes = std::fs::read(pki(&format!("keys/{name}.pem"))).unwrap();
    pfxkit::pem::read_bundle(&bytes, None, &Limits::default())
        .unwrap()
        .keys
        .remove(0)
}

fn subject_cns(archive: &Archive) -> Vec<String> {
    archive
        .certificates()
        .iter()
        .map(|c| c.certificate.subject())
        .collect()
}

/// The SubjectPublicKeyInfo PEM of the first certificate in `pem` and of the key in `key_pem`
/// (decrypted with `passin`), as OpenSSL computes them.
fn openssl_public_keys(cert_pem: &Path, key_pem: &Path, passin: Option<&str>) -> (String, String) {
    let cert = openssl(&[&"x509", &"-in", &cert_pem, &"-noout", &"-pubkey"]);
    let passin = passin.map(|p| format!("pass:{p}"));
    let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"pkey", &"-in", &key_pem, &"-pubout"];
    if let Some(p) = &passin {
        args.extend([&"-passin" as &dyn AsRef<_>, p]);
    }
    let key = openssl(&args);
    (
        String::from_utf8(cert.stdout).unwrap(),
        String::from_utf8(key.stdout).unwrap(),
    )
}

#[test]
fn build_stores_a_chain_given_root_first_leaf_first() {
    let dir = tempfile::tempdir().unwrap();
    let reversed = dir.path().join("root-first.pem");
    let mut chain = std::fs::read(pki("certs/root.pem")).unwrap();
    chain.extend(std::fs::read(pki("certs/intermediate.pem")).unwrap());
    std::fs::write(&reversed, chain).unwrap();
    let out = dir.path().join("out.p12");
    let output = build(
        &pki("keys/leaf-rsa.pem"),
        &out,
        &[
            "--chain",
            reversed.to_str().unwrap(),
            "--password",
            "pass:pfxkit-pass",
            "--name",
            "web",
        ],
    );
    assert_exit(&output, 0);

    let expected = [
        "CN=www.example.com",
        "CN=pfxkit Test Intermediate",
        "CN=pfxkit Test Root",
    ];
    let archive = read(&out, PASSWORD);
    assert_eq!(subject_cns(&archive), expected);
    let identities = archive.identities();
    assert_eq!(identities.len(), 1);
    assert_eq!(identities[0].alias(), Some("web"));
    assert_eq!(identities[0].chain().len(), 3);

    // OpenSSL prints the certificate bags in file order.
    let listed = openssl(&[
        &"pkcs12",
        &"-in",
        &out,
        &"-nokeys",
        &"-passin",
        &"pass:pfxkit-pass",
    ]);
    let subjects: Vec<String> = String::from_utf8_lossy(&listed.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("subject="))
        .map(|s| s.replace(" = ", "="))
        .collect();
    assert_eq!(subjects, expected);
}

#[test]
fn build_defaults_to_modern_and_writes_none_only_when_asked_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let key = pki("keys/leaf-rsa.pem");

    let default = dir.path().join("default.p12");
    assert_exit(
        &build(&key, &default, &["--password", "pass:pfxkit-pass"]),
        0,
    );
    let info = openssl(&[
        &"pkcs12",
        &"-in",
        &default,
        &"-info",
        &"-noout",
        &"-passin",
        &"pass:pfxkit-pass",
    ]);
    let info = text(&info);
    assert!(info.contains("MAC: sha256, Iteration 10000"), "{info}");
    assert!(
        info.contains("Shrouded Keybag: PBES2, PBKDF2, AES-256-CBC"),
        "{info}"
    );

    let none = dir.path().join("none.p12");
    assert_exit(&build(&key, &none, &["--profile", "none"]), 0);
    let archive = read(&none, "");
    assert!(archive.mac().is_none());
    assert!(archive.keys()[0].encryption.is_none());
    let info = openssl(&[
        &"pkcs12", &"-in", &none, &"-info", &"-noout", &"-passin", &"pass:",
    ]);
    let info = text(&info);
    assert!(info.contains("MAC is absent"), "{info}");
    assert!(info.contains("Key bag"), "{info}");

    // No spelling but the exact name reaches the insecure profile.
    for near in ["NONE", "None", " none", "none ", "no", ""] {
        let out = dir.path().join("near.p12");
        let output = build(&key, &out, &["--profile", near]);
        assert_exit(&output, 2);
        assert!(!out.exists(), "--profile {near:?} wrote a file");
    }
}

#[test]
fn build_with_an_unknown_profile_is_a_usage_error_listing_the_profiles() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.p12");
    let output = build(&pki("keys/leaf-rsa.pem"), &out, &["--profile", "modern2"]);
    assert_exit(&output, 2);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("modern2"), "{stderr}");
    for name in [
        "modern",
        "modern-pbmac1",
        "legacy-3des",
        "legacy-rc2",
        "java",
        "none",
    ] {
        assert!(stderr.contains(name), "{name} not listed in: {stderr}");
    }
    assert!(!out.exists());
}

#[test]
fn build_reads_an_encrypted_pkcs8_key_with_its_key_password() {
    let dir = tempfile::tempdir().unwrap();
    let encrypted = dir.path().join("key.pem");
    openssl(&[
        &"pkcs8",
        &"-topk8",
        &"-v2",
        &"aes-256-cbc",
        &"-in",
        &pki("keys/leaf-rsa.pem"),
        &"-out",
        &encrypted,
        &"-passout",
        &"pass:kp",
    ]);
    assert!(
        std::fs::read_to_string(&encrypted)
            .unwrap()
            .starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----")
    );

    let out = dir.path().join("out.p12");
    let output = build(
        &encrypted,
        &out,
        &[
            "--key-password",
            "pass:kp",
            "--password",
            "pass:pfxkit-pass",
        ],
    );
    assert_exit(&output, 0);
    let archive = read(&out, PASSWORD);
    assert_eq!(
        archive.keys()[0].key.expose_pkcs8_der(),
        fixture_key("leaf-rsa").expose_pkcs8_der()
    );
    assert_eq!(archive.identities().len(), 1);

    // A wrong key password is a wrong password (exit 3) and writes nothing.
    let wrong = dir.path().join("wrong.p12");
    assert_exit(
        &build(
            &encrypted,
            &wrong,
            &["--key-password", "pass:nope", "--password", "pass:x"],
        ),
        3,
    );
    assert!(!wrong.exists());
}

#[test]
fn build_reads_pkcs1_rsa_and_sec1_ec_keys() {
    let dir = tempfile::tempdir().unwrap();
    for (fixture, command, header) in [
        ("leaf-rsa", "rsa", "-----BEGIN RSA PRIVATE KEY-----"),
        ("leaf-ec256", "ec", "-----BEGIN EC PRIVATE KEY-----"),
    ] {
        let legacy = dir.path().join(format!("{fixture}-traditional.pem"));
        // `openssl rsa -traditional` writes PKCS#1; `openssl ec` writes SEC1 by default.
        let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&command];
        if command == "rsa" {
            args.push(&"-traditional");
        }
        let input = pki(&format!("keys/{fixture}.pem"));
        args.extend([&"-in" as &dyn AsRef<_>, &input, &"-out", &legacy]);
        openssl(&args);
        assert!(
            std::fs::read_to_string(&legacy)
                .unwrap()
                .starts_with(header)
        );

        let out = dir.path().join(format!("{fixture}.p12"));
        let cert = pki(&format!("certs/{fixture}.pem"));
        let output = pfxkit(&[
            &"build",
            &"--key",
            &legacy,
            &"--cert",
            &cert,
            &"--chain",
            &pki("certs/chain.pem"),
            &"--out",
            &out,
            &"--password",
            &"pass:pfxkit-pass",
        ]);
        assert_exit(&output, 0);

        // Paired with its certificate by proof, with the full chain.
        let identities = read(&out, PASSWORD).identities();
        assert_eq!(identities.len(), 1, "{fixture}");
        assert_eq!(identities[0].chain().len(), 3, "{fixture}");

        // OpenSSL decrypts the key and finds the certificate's public key in it.
        let extracted = dir.path().join(format!("{fixture}-extracted.pem"));
        openssl(&[
            &"pkcs12",
            &"-in",
            &out,
            &"-nodes",
            &"-passin",
            &"pass:pfxkit-pass",
            &"-out",
            &extracted,
        ]);
        let (cert_pub, key_pub) = openssl_public_keys(&cert, &extracted, None);
        assert_eq!(cert_pub, key_pub, "{fixture}");
    }
}

#[test]
fn convert_pkcs12_to_pem_writes_an_encrypted_key_openssl_decrypts_and_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    // Input made by OpenSSL, so the conversion is tested on a file pfxkit did not write.
    let p12 = dir.path().join("in.p12");
    openssl(&[
        &"pkcs12",
        &"-export",
        &"-inkey",
        &pki("keys/leaf-ec256.pem"),
        &"-in",
        &pki("certs/leaf-ec256.pem"),
        &"-certfile",
        &pki("certs/chain.pem"),
        &"-passout",
        &"pass:pfxkit-pass",
        &"-out",
        &p12,
    ]);

    let pem = dir.path().join("out.pem");
    let output = pfxkit(&[
        &"convert",
        &p12,
        &"--password",
        &"pass:pfxkit-pass",
        &"--to",
        &"pem",
        &"--out",
        &pem,
        &"--out-key-password",
        &"pass:kp2",
    ]);
    assert_exit(&output, 0);
    let text = std::fs::read_to_string(&pem).unwrap();
    assert_eq!(
        text.matches("-----BEGIN ENCRYPTED PRIVATE KEY-----")
            .count(),
        1
    );
    assert!(!text.contains("-----BEGIN PRIVATE KEY-----"));
    assert_eq!(text.matches("-----BEGIN CERTIFICATE-----").count(), 3);

    // `openssl x509` reads the first certificate: it must be the key's.
    let (cert_pub, key_pub) = openssl_public_keys(&pem, &pem, Some("kp2"));
    assert_eq!(cert_pub, key_pub);
    let wrong = Command::new("openssl")
        .args(["pkey", "-in"])
        .arg(&pem)
        .args(["-passin", "pass:nope", "-noout"])
        .output()
        .unwrap();
    assert!(!wrong.status.success(), "the key is really encrypted");

    // With no output password a plain PKCS#8 key is written only when asked for by name
    // (openssl -noenc); by omission it is a usage error that writes nothing.
    let plain = dir.path().join("plain.pem");
    let convert_plain = |extra: &[&str]| {
        let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![
            &"convert",
            &p12,
            &"--password",
            &"pass:pfxkit-pass",
            &"--to",
            &"pem",
            &"--out",
            &plain,
        ];
        args.extend(extra.iter().map(|a| a as &dyn AsRef<_>));
        pfxkit(&args)
    };
    let refused = convert_plain(&[]);
    assert_exit(&refused, 2);
    assert!(
        crate::text(&refused).contains("--plain-key"),
        "{}",
        crate::text(&refused)
    );
    assert!(!plain.exists());
    let output = convert_plain(&["--plain-key"]);
    assert_exit(&output, 0);
    let text = std::fs::read_to_string(&plain).unwrap();
    assert_eq!(text.matches("-----BEGIN PRIVATE KEY-----").count(), 1);
    let (cert_pub, key_pub) = openssl_public_keys(&plain, &plain, None);
    assert_eq!(cert_pub, key_pub);
}

#[test]
fn convert_pem_bundle_to_pkcs12_in_the_requested_profile() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("bundle.pem");
    let mut bytes = std::fs::read(pki("keys/leaf-rsa.pem")).unwrap();
    bytes.extend(std::fs::read(pki("certs/leaf-rsa.pem")).unwrap());
    bytes.extend(std::fs::read(pki("certs/chain.pem")).unwrap());
    std::fs::write(&bundle, bytes).unwrap();

    let p12 = dir.path().join("out.p12");
    let output = pfxkit(&[
        &"convert",
        &bundle,
        &"--to",
        &"pkcs12",
        &"--out",
        &p12,
        &"--out-password",
        &"pass:pfxkit-pass",
        &"--profile",
        &"legacy-3des",
    ]);
    assert_exit(&output, 0);

    let archive = read(&p12, PASSWORD);
    let identities = archive.identities();
    assert_eq!(identities.len(), 1);
    assert_eq!(
        identities[0].key().expose_pkcs8_der(),
        fixture_key("leaf-rsa").expose_pkcs8_der()
    );
    assert_eq!(
        subject_cns(&archive),
        [
            "CN=www.example.com",
            "CN=pfxkit Test Intermediate",
            "CN=pfxkit Test Root"
        ]
    );

    let info = openssl(&[
        &"pkcs12",
        &"-in",
        &p12,
        &"-info",
        &"-nodes",
        &"-passin",
        &"pass:pfxkit-pass",
    ]);
    let all = text(&info);
    assert!(all.contains("MAC: sha1, Iteration 2048"), "{all}");
    assert!(
        all.contains("Shrouded Keybag: pbeWithSHA1And3-KeyTripleDES-CBC, Iteration 2048"),
        "{all}"
    );
    let extracted = dir.path().join("extracted.pem");
    std::fs::write(&extracted, &info.stdout).unwrap();
    let (cert_pub, key_pub) = openssl_public_keys(&pki("certs/leaf-rsa.pem"), &extracted, None);
    assert_eq!(cert_pub, key_pub);
}
