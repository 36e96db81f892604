#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
//! Interop for the PKCS#12 writer (issue #3): archives written by [`pkcs12::Builder`] for every
//! profile × key type × password kind are read back by consumers that share no code with pfxkit.
//!
//! - Python `cryptography` 48 (its wheel bundles OpenSSL ≥ 3.4, so it also verifies PBMAC1): the
//!   key matches the certificate, the leaf thumbprint is ours, the two CA certificates follow.
//!   One script reads every file, because starting Python per file would dominate the run time.
//! - The `openssl` 3.0 CLI (`pkcs12 -info`): it names the algorithms it found, which must be the
//!   profile's. OpenSSL 3.0 predates PBMAC1 (added in 3.4), so `modern-pbmac1` is only checked to
//!   be refused for that reason.
//! - JDK 17 `keytool -list`: a PrivateKeyEntry named "web" with its whole chain; trusted
//!   certificates as trustedCertEntry.
//! - The `p12-keystore` crate (0.4.1): the same key and certificates.
//!
//! Inputs are the PEM fixtures under `tests/data/pki` (made by `tests/data/gen.sh`); every archive
//! is written into a fresh temporary directory with a [`DeterministicRandom`] so a failure can be
//! reproduced byte for byte. Tool behaviours found while writing these tests (and asserted
//! below so that a change is noticed):
//! - OpenSSL on Unix takes `-passin pass:` bytes as UTF-8 whatever the locale (checked under
//!   `LC_ALL=C` too), so a non-BMP password works from the command line.
//! - keytool 17 accepts `-storepass ""` for `-list`, but refuses any non-ASCII password
//!   ("Password is not ASCII" from the SunJCE PBE key factory), for OpenSSL's own files too.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use pfxkit::pkcs12::{self, Profile};
use pfxkit::random::DeterministicRandom;
use pfxkit::{Certificate, Identity, Limits, Password};
use serde_json::{Value, json};

const ALIAS: &str = "web";

/// The three password kinds: plain ASCII, empty (BMPString `00 00` in the MAC, zero bytes in
/// PBKDF2), and Unicode with a character outside the BMP (a UTF-16 surrogate pair in the MAC).
const PASSWORDS: [(&str, &str); 3] = [
    ("ascii", "pfxkit-pass"),
    ("empty", ""),
    ("unicode", "pä😀ss"),
];

/// Fixture stems of the key types under test: RSA-2048, EC P-256, Ed25519.
const KEYS: [&str; 3] = ["rsa", "ec256", "ed25519"];

fn pki(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/pki")
        .join(relative)
}

fn certificates(relative: &str) -> Vec<Certificate> {
    let bytes = std::fs::read(pki(relative)).unwrap();
    pfxkit::pem::read_bundle(&bytes, None, &Limits::default())
        .unwrap()
        .certificates
}

/// The fixture leaf of `key` with its key and chain (intermediate, root).
fn identity(key: &str) -> Identity {
    let key_pem = std::fs::read(pki(&format!("keys/leaf-{key}.pem"))).unwrap();
    let private = pfxkit::pem::read_bundle(&key_pem, None, &Limits::default())
        .unwrap()
        .keys
        .remove(0);
    let leaf = certificates(&format!("certs/leaf-{key}.pem")).remove(0);
    Identity::new(private, leaf, certificates("certs/chain.pem")).unwrap()
}

/// One archive written by pfxkit, on disk.
struct Written {
    path: PathBuf,
    profile: Profile,
    key: &'static str,
    password_kind: &'static str,
    password: &'static str,
    identity: Identity,
}

impl Written {
    fn label(&self) -> String {
        format!(
            "{} / {} / {} password",
            self.profile, self.key, self.password_kind
        )
    }
}

fn write(dir: &Path, profile: Profile, key: &'static str, password_index: usize) -> Written {
    let (password_kind, password) = PASSWORDS[password_index];
    let identity = identity(key);
    let seed = 0x5eed_0000 + password_index as u64;
    let der = pkcs12::Builder::new(profile)
        .identity(identity.clone(), Some(ALIAS))
        .random(DeterministicRandom::new(seed))
        .build(&Password::new(password), &Limits::default())
        .unwrap();
    let path = dir.join(format!("{profile}-{key}-{password_kind}.p12"));
    std::fs::write(&path, der).unwrap();
    Written {
        path,
        profile,
        key,
        password_kind,
        password,
        identity,
    }
}

/// Every key type × password kind of one profile.
fn write_all(dir: &Path, profile: Profile) -> Vec<Written> {
    KEYS.iter()
        .flat_map(|key| (0..PASSWORDS.len()).map(move |p| (*key, p)))
        .map(|(key, p)| write(dir, profile, key, p))
        .collect()
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// OpenSSL's uppercase, space-separated hex, as `-info` prints `localKeyID`.
fn openssl_hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(" ")
}

// ---------------------------------------------------------------------------------------------
// Python cryptography
// ---------------------------------------------------------------------------------------------

/// Reads each `{file, password}` job with `pkcs12.load_pkcs12` and reports what it found.
const CRYPTOGRAPHY_READER: &str = r#"
import json, sys
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import pkcs12

def key_type(key):
    if isinstance(key, rsa.RSAPrivateKey):
        return f"rsa-{key.key_size}"
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return f"ec-{key.curve.name}"
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return "ed25519"
    return type(key).__name__

def spki(public_key):
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)

results = []
for job in json.loads(sys.stdin.buffer.read().decode("utf-8")):
    result = {"file": job["file"]}
    try:
        with open(job["file"], "rb") as f:
            p12 = pkcs12.load_pkcs12(f.read(), job["password"].encode("utf-8"))
        leaf = p12.cert.certificate
        result["key_type"] = key_type(p12.key)
        result["key_matches_certificate"] = spki(p12.key.public_key()) == spki(leaf.public_key())
        result["leaf_sha1"] = leaf.fingerprint(hashes.SHA1()).hex()
        result["friendly_name"] = (p12.cert.friendly_name or b"").decode("utf-8")
        result["ca_sha1"] = [c.certificate.fingerprint(hashes.SHA1()).hex()
                             for c in p12.additional_certs]
    except Exception as e:
        result["error"] = f"{type(e).__name__}: {e}"
    results.append(result)
print(json.dumps(results))
"#;

fn read_with_cryptography(files: &[Written]) -> Vec<Value> {
    let jobs: Vec<Value> = files
        .iter()
        .map(|w| json!({"file": w.path, "password": w.password}))
        .collect();
    let mut child = Command::new("python3")
        .args(["-c", CRYPTOGRAPHY_READER])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 with cryptography 48 is needed for interop tests");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(serde_json::to_string(&jobs).unwrap().as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "python failed: {}", text(&output));
    serde_json::from_slice(&output.stdout).unwrap()
}

#[test]
fn every_profile_key_type_and_password_is_read_by_python_cryptography() {
    let dir = tempfile::tempdir().unwrap();
    let files: Vec<Written> = Profile::all()
        .iter()
        .flat_map(|profile| write_all(dir.path(), *profile))
        .collect();
    assert_eq!(files.len(), 6 * 3 * 3);
    let results = read_with_cryptography(&files);
    assert_eq!(results.len(), files.len());

    for (written, result) in files.iter().zip(&results) {
        let label = written.label();
        assert!(result.get("error").is_none(), "{label}: {result}");
        assert_eq!(result["key_matches_certificate"], true, "{label}");
        assert_eq!(
            result["leaf_sha1"],
            written.identity.leaf().sha1_hex(),
            "{label}"
        );
        assert_eq!(result["friendly_name"], ALIAS, "{label}");
        // The two CA certificates, in the order we wrote them: intermediate, then root.
        let chain: Vec<String> = written.identity.chain()[1..]
            .iter()
            .map(Certificate::sha1_hex)
            .collect();
        assert_eq!(chain.len(), 2);
        assert_eq!(result["ca_sha1"], json!(chain), "{label}");
        let key_type = match written.key {
            "rsa" => "rsa-2048",
            "ec256" => "ec-secp256r1",
            _ => "ed25519",
        };
        assert_eq!(result["key_type"], key_type, "{label}");
    }
}

// ---------------------------------------------------------------------------------------------
// OpenSSL 3.0 CLI
// ---------------------------------------------------------------------------------------------

/// `openssl pkcs12 -info -nodes`: the algorithm lines go to stderr, the decrypted key and the
/// certificates to stdout, so one run shows both what was found and that it all decrypts.
fn openssl_pkcs12_info(written: &Written, legacy: bool) -> Output {
    let mut cmd = Command::new("openssl");
    cmd.arg("pkcs12")
        .arg("-in")
        .arg(&written.path)
        .args(["-info", "-nodes", "-passin"])
        .arg(format!("pass:{}", written.password))
        // OpenSSL ≥ 1.1 treats the bytes as UTF-8 whatever the locale; set one anyway, as a user
        // typing a non-ASCII password would have.
        .env("LC_ALL", "C.UTF-8");
    if legacy {
        cmd.arg("-legacy");
    }
    cmd.output().expect("openssl is needed for interop tests")
}

/// Runs `openssl pkcs12 -info` on every key type × password of `profile` and checks that each
/// decrypts fully, with the alias and localKeyId we wrote, and reports every line of `expected`.
fn assert_openssl_reads(profile: Profile, legacy: bool, expected: &[&str]) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let mut outputs = Vec::new();
    for written in write_all(dir.path(), profile) {
        let label = written.label();
        let output = openssl_pkcs12_info(&written, legacy);
        let all = text(&output);
        assert!(output.status.success(), "{label}: openssl failed:\n{all}");
        for line in expected {
            assert!(all.contains(line), "{label}: no '{line}' in:\n{all}");
        }
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert_eq!(
            stdout.matches("-----BEGIN CERTIFICATE-----").count(),
            3,
            "{label}"
        );
        assert_eq!(
            stdout.matches("-----BEGIN PRIVATE KEY-----").count(),
            1,
            "{label}"
        );
        // Key bag and leaf certificate bag carry the alias and SHA-1(leaf) as localKeyId.
        assert_eq!(
            all.matches("friendlyName: web").count(),
            2,
            "{label}:\n{all}"
        );
        let local_key_id = format!(
            "localKeyID: {}",
            openssl_hex(written.identity.leaf().sha1())
        );
        assert_eq!(all.matches(&local_key_id).count(), 2, "{label}:\n{all}");
        outputs.push(all);
    }
    outputs
}

#[test]
fn modern_profile_is_read_by_openssl_with_aes256_and_sha256_mac() {
    assert_openssl_reads(
        Profile::Modern,
        false,
        &[
            "MAC: sha256, Iteration 10000",
            "MAC length: 32, salt length: 8",
            "PKCS7 Encrypted data: PBES2, PBKDF2, AES-256-CBC, Iteration 10000, PRF hmacWithSHA256",
            "Shrouded Keybag: PBES2, PBKDF2, AES-256-CBC, Iteration 10000, PRF hmacWithSHA256",
        ],
    );
}

#[test]
fn legacy_3des_profile_is_read_by_openssl_without_legacy_provider_with_3des_and_sha1_mac() {
    let outputs = assert_openssl_reads(
        Profile::Legacy3Des,
        false,
        &[
            "MAC: sha1, Iteration 2048",
            "MAC length: 20, salt length: 8",
            "PKCS7 Encrypted data: pbeWithSHA1And3-KeyTripleDES-CBC, Iteration 2048",
            "Shrouded Keybag: pbeWithSHA1And3-KeyTripleDES-CBC, Iteration 2048",
        ],
    );
    assert!(outputs.iter().all(|o| !o.contains("RC2")));
}

#[test]
fn legacy_rc2_profile_is_read_by_openssl_legacy_with_rc2_certificates_and_3des_key() {
    assert_openssl_reads(
        Profile::LegacyRc2,
        true,
        &[
            "MAC: sha1, Iteration 2048",
            "PKCS7 Encrypted data: pbeWithSHA1And40BitRC2-CBC, Iteration 2048",
            "Shrouded Keybag: pbeWithSHA1And3-KeyTripleDES-CBC, Iteration 2048",
        ],
    );
}

#[test]
fn java_profile_is_read_by_openssl_with_20_byte_mac_salt_and_aes256() {
    assert_openssl_reads(
        Profile::Java,
        false,
        &[
            "MAC: sha256, Iteration 10000",
            "MAC length: 32, salt length: 20",
            "PKCS7 Encrypted data: PBES2, PBKDF2, AES-256-CBC, Iteration 10000, PRF hmacWithSHA256",
            "Shrouded Keybag: PBES2, PBKDF2, AES-256-CBC, Iteration 10000, PRF hmacWithSHA256",
        ],
    );
}

#[test]
fn none_profile_is_read_by_openssl_as_unencrypted_key_bag_without_mac() {
    let outputs = assert_openssl_reads(Profile::None, false, &["MAC is absent", "Key bag"]);
    for output in outputs {
        assert!(!output.contains("Shrouded Keybag"), "{output}");
        assert!(!output.contains("Encrypted data"), "{output}");
    }
}

fn openssl_version() -> (u32, u32) {
    let output = Command::new("openssl").arg("version").output().unwrap();
    // "OpenSSL 3.0.19 27 Jan 2026 (Library: ...)"
    let version = String::from_utf8_lossy(&output.stdout);
    let mut numbers = version
        .split_whitespace()
        .nth(1)
        .unwrap()
        .split('.')
        .map(|n| n.parse::<u32>().unwrap());
    (numbers.next().unwrap(), numbers.next().unwrap())
}

#[test]
fn modern_pbmac1_profile_is_refused_by_openssl_before_3_4_for_want_of_pbmac1_only() {
    let dir = tempfile::tempdir().unwrap();
    let written = write(dir.path(), Profile::ModernPbmac1, "rsa", 0);
    let output = openssl_pkcs12_info(&written, false);
    let all = text(&output);
    // OpenSSL parses our MacData and names the algorithm either way.
    assert!(all.contains("MAC: PBMAC1, Iteration 10000"), "{all}");
    if openssl_version() >= (3, 4) {
        assert!(output.status.success(), "{all}");
    } else {
        // 3.0 cannot fetch PBMAC1, so it reports a MAC failure; the file itself is fine, as the
        // cryptography test (bundled OpenSSL ≥ 3.4) shows.
        assert!(!output.status.success(), "{all}");
        assert!(all.contains("Algorithm (PBMAC1"), "{all}");
    }
}

// ---------------------------------------------------------------------------------------------
// JDK keytool
// ---------------------------------------------------------------------------------------------

fn keytool_list(path: &Path, store_password: &str) -> Output {
    Command::new("keytool")
        .args(["-list", "-v", "-storetype", "PKCS12", "-keystore"])
        .arg(path)
        .args(["-storepass", store_password])
        .env("LC_ALL", "C.UTF-8")
        .stdin(Stdio::null())
        .output()
        .expect("JDK keytool is needed for interop tests")
}

/// keytool's colon-separated uppercase hex fingerprint.
fn keytool_fingerprint(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[test]
fn modern_legacy_3des_and_java_profiles_are_listed_by_keytool_as_private_key_entry_web() {
    let dir = tempfile::tempdir().unwrap();
    for profile in [Profile::Modern, Profile::Legacy3Des, Profile::Java] {
        for key in KEYS {
            let written = write(dir.path(), profile, key, 0);
            let label = written.label();
            let output = keytool_list(&written.path, written.password);
            let all = text(&output);
            assert!(output.status.success(), "{label}: keytool failed:\n{all}");
            assert!(
                all.contains("Your keystore contains 1 entry"),
                "{label}:\n{all}"
            );
            assert!(all.contains("Alias name: web"), "{label}:\n{all}");
            assert!(
                all.contains("Entry type: PrivateKeyEntry"),
                "{label}:\n{all}"
            );
            assert!(
                all.contains("Certificate chain length: 3"),
                "{label}:\n{all}"
            );
            let leaf = format!(
                "SHA256: {}",
                keytool_fingerprint(written.identity.leaf().sha256())
            );
            assert!(all.contains(&leaf), "{label}: no {leaf} in:\n{all}");
        }
    }
}

#[test]
fn keytool_opens_our_archives_under_the_empty_password() {
    let dir = tempfile::tempdir().unwrap();
    for profile in [Profile::Modern, Profile::Legacy3Des, Profile::Java] {
        let written = write(dir.path(), profile, "rsa", 1);
        assert_eq!(written.password, "");
        let output = keytool_list(&written.path, "");
        let all = text(&output);
        assert!(output.status.success(), "{}:\n{all}", written.label());
        assert!(all.contains("Entry type: PrivateKeyEntry"), "{all}");
        assert!(all.contains("Certificate chain length: 3"), "{all}");
    }
}

#[test]
fn keytool_17_refuses_non_ascii_passwords_for_openssl_files_as_for_ours() {
    let dir = tempfile::tempdir().unwrap();
    let ours = write(dir.path(), Profile::Modern, "rsa", 2);
    // The same failure on a file OpenSSL wrote shows the limit is keytool's, not the archive's
    // (cryptography and OpenSSL read ours with this password, above).
    let openssl_made = dir.path().join("openssl-bmp.p12");
    let status = Command::new("openssl")
        .args(["pkcs12", "-export", "-inkey"])
        .arg(pki("keys/leaf-rsa.pem"))
        .arg("-in")
        .arg(pki("certs/leaf-rsa.pem"))
        .arg("-out")
        .arg(&openssl_made)
        .arg(format!("-passout=pass:{}", ours.password))
        .status()
        .unwrap();
    assert!(status.success());
    for path in [&ours.path, &openssl_made] {
        let output = keytool_list(path, ours.password);
        let all = text(&output);
        if output.status.success() {
            // A JDK that lifted the restriction must then read our file in full.
            assert!(all.contains("Entry type: PrivateKeyEntry"), "{all}");
        } else {
            assert!(all.contains("Password is not ASCII"), "{all}");
        }
    }
}

#[test]
fn truststore_entries_are_listed_by_keytool_as_trusted_cert_entries() {
    let dir = tempfile::tempdir().unwrap();
    let chain = certificates("certs/chain.pem");
    let (intermediate, root) = (&chain[0], &chain[1]);
    for profile in [Profile::Modern, Profile::Legacy3Des, Profile::Java] {
        let der = pkcs12::Builder::new(profile)
            .trusted_certificate(root.clone(), "root")
            .trusted_certificate(intermediate.clone(), "intermediate")
            .random(DeterministicRandom::new(7))
            .build(&Password::new("pfxkit-pass"), &Limits::default())
            .unwrap();
        let path = dir.path().join(format!("trust-{profile}.p12"));
        std::fs::write(&path, &der).unwrap();

        let output = keytool_list(&path, "pfxkit-pass");
        let all = text(&output);
        assert!(output.status.success(), "{profile}: keytool failed:\n{all}");
        assert!(
            all.contains("Your keystore contains 2 entries"),
            "{profile}:\n{all}"
        );
        for (alias, cert) in [("root", root), ("intermediate", intermediate)] {
            // In -v output each entry is "Alias name: A", a date, then "Entry type: T".
            let entry = all
                .split("Alias name: ")
                .find(|e| e.starts_with(&format!("{alias}\n")));
            assert!(entry.is_some(), "{profile}: no entry {alias} in:\n{all}");
            let entry = entry.unwrap();
            assert!(entry.contains("Entry type: trustedCertEntry"), "{entry}");
            let sha256 = format!("SHA256: {}", keytool_fingerprint(cert.sha256()));
            assert!(entry.contains(&sha256), "{alias}: no {sha256} in:\n{entry}");
        }

        // Our own reader sees the trust attribute on both, and no key.
        let archive = pkcs12::read(
            &der,
            Some(&Password::new("pfxkit-pass")),
            &Limits::default(),
        )
        .unwrap();
        assert!(archive.keys().is_empty());
        let read: Vec<_> = archive
            .certificates()
            .iter()
            .map(|c| {
                (
                    c.attributes.friendly_name.as_deref().unwrap(),
                    c.attributes.java_trusted,
                    c.certificate.sha256(),
                )
            })
            .collect();
        assert_eq!(
            read,
            [
                ("root", true, root.sha256()),
                ("intermediate", true, intermediate.sha256())
            ]
        );
    }
}

// ---------------------------------------------------------------------------------------------
// p12-keystore
// ---------------------------------------------------------------------------------------------

fn read_with_p12_keystore(written: &Written) -> p12_keystore::Result<p12_keystore::KeyStore> {
    let der = std::fs::read(&written.path).unwrap();
    p12_keystore::KeyStore::from_pkcs12(
        &der,
        written.password,
        p12_keystore::Pkcs12ImportPolicy::Strict,
    )
}

#[test]
fn p12_keystore_reads_modern_java_and_legacy_archives_with_the_same_key_and_chain() {
    let dir = tempfile::tempdir().unwrap();
    for profile in [
        Profile::Modern,
        Profile::Java,
        Profile::Legacy3Des,
        Profile::LegacyRc2,
        Profile::None,
    ] {
        // ASCII and empty passwords only: see the non-BMP test below.
        for written in write_all(dir.path(), profile)
            .into_iter()
            .filter(|w| w.password_kind != "unicode")
        {
            let label = written.label();
            let store = read_with_p12_keystore(&written);
            assert!(store.is_ok(), "{label}: p12-keystore failed: {store:?}");
            let store = store.unwrap();
            assert_eq!(store.entries_len(), 1, "{label}");
            let (alias, chain) = store.private_key_chain().expect("a key entry");
            assert_eq!(alias, ALIAS, "{label}");
            assert_eq!(
                chain.key().as_der(),
                written.identity.key().expose_pkcs8_der(),
                "{label}"
            );
            assert_eq!(
                chain.local_key_id().as_ref(),
                written.identity.leaf().sha1(),
                "{label}"
            );
            let certs: Vec<&[u8]> = chain.certs().iter().map(|c| c.as_der()).collect();
            let ours: Vec<&[u8]> = written.identity.chain().iter().map(|c| c.der()).collect();
            assert_eq!(certs, ours, "{label}: chain differs");
        }
    }
}

#[test]
fn p12_keystore_0_4_cannot_encode_non_bmp_passwords_even_for_its_own_archives() {
    // p12-keystore turns the password into a `der` BMPString for the PKCS#12 KDF, which has no
    // surrogate pairs, so a character outside the BMP fails before any MAC is compared. Its own
    // writer fails the same way, so this is its limit, not our archive's (cryptography and
    // OpenSSL read ours with this password, above).
    let dir = tempfile::tempdir().unwrap();
    let written = write(dir.path(), Profile::Modern, "rsa", 2);
    let non_bmp = |e: &p12_keystore::error::Error| matches!(e, p12_keystore::error::Error::DerError(d) if format!("{d:?}").contains("BMPString"));
    match read_with_p12_keystore(&written) {
        Ok(store) => assert_eq!(store.private_key_chain().unwrap().0, ALIAS),
        Err(e) => {
            assert!(non_bmp(&e), "{e:?}");
            let own = p12_keystore::KeyStore::new()
                .writer(written.password)
                .write();
            assert!(own.as_ref().is_err_and(non_bmp), "{own:?}");
        }
    }
}

#[test]
fn p12_keystore_0_4_rejects_modern_pbmac1_for_want_of_pbmac1() {
    let dir = tempfile::tempdir().unwrap();
    let written = write(dir.path(), Profile::ModernPbmac1, "rsa", 0);
    match read_with_p12_keystore(&written) {
        // A later release that learned PBMAC1 must then agree with us.
        Ok(store) => assert_eq!(store.private_key_chain().unwrap().0, ALIAS),
        Err(e) => assert!(
            matches!(e, p12_keystore::error::Error::UnsupportedEncryptionScheme),
            "{e:?}"
        ),
    }
}

// ---------------------------------------------------------------------------------------------
// The absent (NULL) password
// ---------------------------------------------------------------------------------------------

#[test]
fn absent_password_archive_is_opened_by_our_reader_given_none_and_by_openssl_given_empty() {
    let dir = tempfile::tempdir().unwrap();
    let identity = identity("rsa");
    let der = pkcs12::Builder::new(Profile::Legacy3Des)
        .identity(identity.clone(), Some(ALIAS))
        .random(DeterministicRandom::new(3))
        .build(&Password::absent(), &Limits::default())
        .unwrap();

    let archive = pkcs12::read(&der, None, &Limits::default()).unwrap();
    let read = archive.identities();
    assert_eq!(read.len(), 1);
    assert_eq!(read[0].key(), identity.key());
    assert_eq!(read[0].chain(), identity.chain());
    assert_eq!(read[0].alias(), Some(ALIAS));
    assert!(pkcs12::read(&der, Some(&Password::absent()), &Limits::default()).is_ok());
    // NULL is not "": the MAC key derives from zero bytes, not from BMPString 00 00.
    assert!(matches!(
        pkcs12::read(&der, Some(&Password::new("")), &Limits::default()),
        Err(pfxkit::Error::WrongPassword { .. })
    ));

    let path = dir.path().join("absent.p12");
    std::fs::write(&path, &der).unwrap();
    let written = Written {
        path,
        profile: Profile::Legacy3Des,
        key: "rsa",
        password_kind: "absent",
        password: "",
        identity,
    };
    let output = openssl_pkcs12_info(&written, false);
    let all = text(&output);
    // Given an empty password, OpenSSL tries the NULL password first, for the MAC and then for
    // decryption.
    assert!(output.status.success(), "{all}");
    assert!(all.contains("MAC: sha1, Iteration 2048"), "{all}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(stdout.matches("-----BEGIN CERTIFICATE-----").count(), 3);
    assert_eq!(stdout.matches("-----BEGIN PRIVATE KEY-----").count(), 1);
}
