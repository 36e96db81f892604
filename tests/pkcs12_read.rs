//! Reading every committed PKCS#12 fixture and checking it against `tests/data/manifest.json`,
//! whose facts were computed by openssl, python `cryptography` and the JDK (see
//! `tests/data/gen.sh`), never by pfxkit. Also: passwords, RFC 9579 vectors, PEM armour.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use pfxkit::error::LimitKind;
use pfxkit::pkcs12::{self, Archive};
use pfxkit::{Error, Limits, Password};
use serde_json::Value;

use common::{fixture, p12_entries, p12_entry, password_of, rfc9579_vector};

/// The fixture families, each a test below. Every manifest entry must be in exactly one.
const OPENSSL_OPTIONS: &[&str] = &[
    "openssl-default",
    "openssl-canames",
    "openssl-legacy",
    "openssl-descert",
    "openssl-nomac",
    "openssl-noenc",
    "openssl-noenc-nomac",
    "openssl-macsha1",
    "openssl-macsha512",
    "openssl-iter1",
    "openssl-iter600k",
];
const OPENSSL_PASSWORDS: &[&str] = &["openssl-empty-pass", "openssl-unicode-pass"];
const OPENSSL_KEY_ALGORITHMS: &[&str] = &[
    "openssl-ec256",
    "openssl-ec384",
    "openssl-ec521",
    "openssl-ed25519",
    "openssl-ed448",
    "openssl-dsa",
];
const BER: &[&str] = &["ber-indefinite"];
const CRYPTOGRAPHY: &[&str] = &[
    "cryptography-best",
    "cryptography-3des",
    "cryptography-aes-sha1mac",
    "cryptography-emoji",
    "cryptography-noenc",
    "cryptography-chain-first",
    "cryptography-truststore",
];
const KEYTOOL: &[&str] = &["keytool-two-keys", "keytool-legacy"];

fn p12_path(name: &str) -> String {
    format!("p12/{name}.p12")
}

fn read_fixture(name: &str) -> pfxkit::Result<Archive> {
    let entry = p12_entry(&p12_path(name));
    pkcs12::read(
        &fixture(&p12_path(name)),
        password_of(&entry).as_ref(),
        &Limits::default(),
    )
}

/// Everything the manifest says about one file, asserted exactly.
fn assert_matches_manifest(name: &str) {
    let file = p12_path(name);
    let entry = p12_entry(&file);
    let archive = read_fixture(name).unwrap_or_else(|e| panic!("{file}: {e}"));

    // MAC.
    let mac = archive
        .mac()
        .map(|m| (m.algorithm.name(), u64::from(m.algorithm.iterations())));
    let expected_mac = entry["mac"]
        .as_str()
        .map(|alg| (alg.to_string(), entry["mac_iterations"].as_u64().unwrap()));
    assert_eq!(mac, expected_mac, "{file}: MAC algorithm and iterations");

    // Certificates, in file order.
    let certs = archive.certificates();
    let expected_certs = entry["certificates"].as_array().unwrap();
    assert_eq!(
        certs.len(),
        expected_certs.len(),
        "{file}: number of certificates"
    );
    let pairings = archive.pairings();
    for (i, (bag, want)) in certs.iter().zip(expected_certs).enumerate() {
        let c = &bag.certificate;
        let at = format!("{file}: certificate #{i}");
        assert_eq!(c.sha256_hex(), want["sha256"], "{at}: sha256");
        assert_eq!(c.sha1_hex(), want["sha1"], "{at}: sha1");
        // RFC 4514 strings: compared exactly; python's `rfc4514_string()` is the reference.
        assert_eq!(c.subject(), want["subject"], "{at}: subject");
        assert_eq!(c.issuer(), want["issuer"], "{at}: issuer");
        assert_eq!(c.serial_hex(), want["serial"], "{at}: serial");
        assert_eq!(
            bag.attributes.friendly_name.as_deref(),
            want["alias"].as_str(),
            "{at}: alias"
        );
        assert_eq!(
            bag.attributes.java_trusted,
            want["trusted"].as_bool().unwrap(),
            "{at}: trusted"
        );
        assert_eq!(
            pairings.contains(&Some(i)),
            want["has_key"].as_bool().unwrap(),
            "{at}: has_key"
        );
    }

    // Keys, each with the certificate it was proven to pair with.
    let keys = archive.keys();
    let expected_keys = entry["keys"].as_array().unwrap();
    assert_eq!(keys.len(), expected_keys.len(), "{file}: number of keys");
    for (i, ((key, pair), want)) in keys.iter().zip(&pairings).zip(expected_keys).enumerate() {
        let at = format!("{file}: key #{i}");
        let alg = key.key.algorithm();
        assert_eq!(alg.name(), want["algorithm"], "{at}: algorithm");
        assert_eq!(
            alg.bits().map(u64::from),
            want["bits"].as_u64(),
            "{at}: bits"
        );
        let paired = pair.map(|p| certs[p].certificate.sha256_hex());
        assert_eq!(
            paired.as_deref(),
            want["certificate_sha256"].as_str(),
            "{at}: paired certificate"
        );
        assert_eq!(
            key.attributes.friendly_name.as_deref(),
            want["alias"].as_str(),
            "{at}: alias"
        );
    }

    // The chain of the first key, leaf first.
    let identities = archive.identities();
    match &entry["chain_for_first_key"] {
        Value::Null => assert!(identities.is_empty(), "{file}: no key, so no identity"),
        Value::Array(want) => {
            let chain: Vec<String> = identities
                .first()
                .unwrap_or_else(|| panic!("{file}: the first key has no identity"))
                .chain()
                .iter()
                .map(|c| c.sha256_hex())
                .collect();
            let want: Vec<&str> = want.iter().map(|v| v.as_str().unwrap()).collect();
            assert_eq!(chain, want, "{file}: chain of the first key");
        }
        other => panic!("{file}: chain_for_first_key is {other}"),
    }
}

fn assert_family(names: &[&str]) {
    for name in names {
        assert_matches_manifest(name);
    }
}

#[test]
fn every_manifest_fixture_belongs_to_a_tested_family() {
    let families: Vec<&str> = [
        OPENSSL_OPTIONS,
        OPENSSL_PASSWORDS,
        OPENSSL_KEY_ALGORITHMS,
        BER,
        CRYPTOGRAPHY,
        KEYTOOL,
    ]
    .concat();
    let in_manifest: Vec<String> = p12_entries()
        .iter()
        .map(|e| e["file"].as_str().unwrap().to_string())
        .collect();
    for file in &in_manifest {
        assert_eq!(
            families.iter().filter(|n| p12_path(n) == *file).count(),
            1,
            "{file} must be in exactly one family"
        );
    }
    for name in &families {
        assert!(
            in_manifest.contains(&p12_path(name)),
            "{name} is not in manifest.json"
        );
    }
}

#[test]
fn reads_openssl_exports_with_every_option_as_the_manifest_says() {
    assert_family(OPENSSL_OPTIONS);
}

#[test]
fn reads_openssl_exports_with_empty_and_unicode_passwords() {
    assert_family(OPENSSL_PASSWORDS);
}

#[test]
fn reads_openssl_exports_of_every_key_algorithm() {
    assert_family(OPENSSL_KEY_ALGORITHMS);
}

#[test]
fn reads_firefox_style_ber_export() {
    assert_family(BER);
}

#[test]
fn reads_python_cryptography_exports() {
    assert_family(CRYPTOGRAPHY);
}

#[test]
fn reads_keytool_exports_with_two_keys_and_a_trusted_root() {
    assert_family(KEYTOOL);
}

// ----- passwords ------------------------------------------------------------------------------

fn assert_wrong_password(result: pfxkit::Result<Archive>, what: &str) {
    match result {
        Err(Error::WrongPassword { .. }) => {}
        other => panic!("{what}: expected WrongPassword, got {other:?}"),
    }
}

#[test]
fn rejects_wrong_password() {
    let bytes = fixture("p12/openssl-default.p12");
    let result = pkcs12::read(
        &bytes,
        Some(&Password::new("not-the-password")),
        &Limits::default(),
    );
    assert_wrong_password(result, "openssl-default with a wrong password");
}

#[test]
fn rejects_missing_password_when_the_file_has_one() {
    for name in ["openssl-default", "openssl-legacy", "keytool-two-keys"] {
        let bytes = fixture(&p12_path(name));
        assert_wrong_password(pkcs12::read(&bytes, None, &Limits::default()), name);
    }
}

#[test]
fn rejects_wrong_password_on_an_archive_without_mac_when_the_key_does_not_decrypt() {
    // No MAC to check, so the encrypted key is what proves the password wrong.
    let bytes = fixture("p12/openssl-nomac.p12");
    let result = pkcs12::read(&bytes, Some(&Password::new("wrong")), &Limits::default());
    assert_wrong_password(result, "openssl-nomac with a wrong password");
}

#[test]
fn reads_archive_without_mac_or_encryption_with_any_password() {
    let bytes = fixture("p12/openssl-noenc-nomac.p12");
    for password in [
        None,
        Some(Password::new("anything")),
        Some(Password::absent()),
    ] {
        let archive = pkcs12::read(&bytes, password.as_ref(), &Limits::default()).unwrap();
        assert!(archive.mac().is_none());
        assert_eq!(archive.keys().len(), 1);
        assert_eq!(archive.certificates().len(), 3);
    }
}

#[test]
fn opens_empty_password_file_with_no_password_and_with_empty_password() {
    let bytes = fixture("p12/openssl-empty-pass.p12");
    for password in [None, Some(Password::new(""))] {
        let archive = pkcs12::read(&bytes, password.as_ref(), &Limits::default())
            .unwrap_or_else(|e| panic!("password {password:?}: {e}"));
        assert_eq!(archive.keys().len(), 1);
        assert_eq!(archive.identities().len(), 1);
    }
}

#[test]
fn distinguishes_the_absent_password_from_the_empty_one() {
    // The manifest records that the MAC verifies with BMP `00 00` but not with zero bytes.
    let entry = p12_entry("p12/openssl-empty-pass.p12");
    assert_eq!(entry["mac_verifies_with_null_password"], false);
    let bytes = fixture("p12/openssl-empty-pass.p12");
    let result = pkcs12::read(&bytes, Some(&Password::absent()), &Limits::default());
    assert_wrong_password(result, "empty-password file with the absent password");
}

#[test]
fn opens_cryptography_noenc_file_given_no_password() {
    let entry = p12_entry("p12/cryptography-noenc.p12");
    assert!(entry["password"].is_null());
    let bytes = fixture("p12/cryptography-noenc.p12");
    let archive = pkcs12::read(&bytes, None, &Limits::default()).unwrap();
    assert_eq!(
        archive.mac().map(|m| m.algorithm.name()).as_deref(),
        Some("hmac-sha256")
    );
}

// ----- RFC 9579 PBMAC1 ------------------------------------------------------------------------

fn read_vector(name: &str) -> pfxkit::Result<Archive> {
    pkcs12::read(
        &rfc9579_vector(name),
        Some(&Password::new("1234")),
        &Limits::default(),
    )
}

#[test]
fn verifies_rfc9579_pbmac1_vectors_a1_to_a3() {
    // The report names the messageAuthScheme, not the PBKDF2 PRF: A.2 is PBKDF2-HMAC-SHA512
    // with HMAC-SHA256 (checked with `openssl asn1parse`). The iterations reported are
    // PBKDF2's, not the ignored outer MacData field (which is 1 in these vectors).
    for (name, mac) in [
        ("rfc9579-a1", "pbmac1-hmac-sha256"),
        ("rfc9579-a2", "pbmac1-hmac-sha256"),
        ("rfc9579-a3", "pbmac1-hmac-sha512"),
    ] {
        let archive = read_vector(name).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            archive
                .mac()
                .map(|m| (m.algorithm.name(), m.algorithm.iterations())),
            Some((mac.to_string(), 2048)),
            "{name}"
        );
        assert_eq!(archive.keys().len(), 1, "{name}: one key");
        assert_eq!(archive.certificates().len(), 1, "{name}: one certificate");
        assert_eq!(archive.pairings(), vec![Some(0)], "{name}: key pairs");
        assert_eq!(archive.keys()[0].key.algorithm().name(), "rsa", "{name}");
    }
}

#[test]
fn rejects_rfc9579_vectors_with_altered_iterations_or_salt_as_integrity_failures() {
    for name in ["rfc9579-a4", "rfc9579-a5"] {
        assert_wrong_password(read_vector(name), name);
    }
}

#[test]
fn rejects_rfc9579_vector_without_pbmac1_key_length_as_malformed() {
    match read_vector("rfc9579-a6") {
        Err(Error::Malformed { .. }) => {}
        other => panic!("rfc9579-a6: expected Malformed, got {other:?}"),
    }
}

#[test]
fn rejects_pbmac1_key_shorter_than_20_bytes() {
    match read_vector("pbmac1-short-key-bypass") {
        Err(Error::LimitExceeded {
            limit: LimitKind::MacKeyLength,
            value: 1,
            ..
        }) => {}
        other => panic!("pbmac1-short-key-bypass: expected MacKeyLength, got {other:?}"),
    }
}

#[test]
fn rejects_rfc9579_vector_with_a_wrong_password() {
    let result = pkcs12::read(
        &rfc9579_vector("rfc9579-a1"),
        Some(&Password::new("12345")),
        &Limits::default(),
    );
    assert_wrong_password(result, "rfc9579-a1 with a wrong password");
}

// ----- PEM armour -----------------------------------------------------------------------------

#[test]
fn reads_pem_armoured_pkcs12() {
    let der = fixture("p12/openssl-default.p12");
    let armoured = pem::encode(&pem::Pem::new("PKCS12", der.clone()));
    assert!(armoured.starts_with("-----BEGIN PKCS12-----"));
    let password = Password::new("pfxkit-pass");
    let from_pem = pkcs12::read(armoured.as_bytes(), Some(&password), &Limits::default()).unwrap();
    let from_der = pkcs12::read(&der, Some(&password), &Limits::default()).unwrap();
    let shas = |a: &Archive| -> Vec<String> {
        a.certificates()
            .iter()
            .map(|c| c.certificate.sha256_hex())
            .collect()
    };
    assert_eq!(shas(&from_pem), shas(&from_der));
    assert_eq!(from_pem.keys().len(), 1);
    assert_eq!(
        from_pem.keys()[0].key.expose_pkcs8_der(),
        from_der.keys()[0].key.expose_pkcs8_der()
    );
}

#[test]
fn rejects_pem_armour_of_another_type_as_malformed() {
    let der = fixture("p12/openssl-default.p12");
    let armoured = pem::encode(&pem::Pem::new("CERTIFICATE", der));
    match pkcs12::read(armoured.as_bytes(), None, &Limits::default()) {
        Err(Error::Malformed { .. }) => {}
        other => panic!("expected Malformed, got {other:?}"),
    }
}
