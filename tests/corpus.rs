//! Issue 14, "Open every real-world keystore": one test per cause found in the real-world corpus
//! (kept outside the repository, never copied here), each against a fixture of our own with the same property
//! (`tests/data/gen_corpus.sh`; facts in `tests/data/corpus/facts.json`, computed by openssl,
//! python `cryptography` and the JDK, never by pfxkit).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use std::process::Command;

use pfxkit::jks::{self, Entry};
use pfxkit::store::StoreAdapter;
use pfxkit::store::jks::JksStore;
use pfxkit::{Error, Limits, Password, pkcs12};
use serde_json::Value;
use sha2::{Digest, Sha256};

use common::{fixture, hex};

fn facts() -> Value {
    serde_json::from_slice(&fixture("corpus/facts.json")).unwrap()
}

fn p12_facts(file: &str) -> Value {
    facts()["pkcs12"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["file"] == file)
        .unwrap_or_else(|| panic!("{file} is not in corpus/facts.json"))
        .clone()
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Reads a corpus PKCS#12 fixture and checks it against its facts: the key, its certificate
/// (proven by public key) and every certificate.
fn assert_reads_as_the_facts_say(file: &str) -> pkcs12::Archive {
    let f = p12_facts(file);
    let password = Password::new(f["password"].as_str().unwrap());
    let archive = pkcs12::read(&fixture(file), Some(&password), &Limits::default()).unwrap();
    let certs: Vec<String> = archive
        .certificates()
        .iter()
        .map(|c| c.certificate.sha256_hex())
        .collect();
    let mut sorted = certs.clone();
    sorted.sort();
    assert_eq!(
        serde_json::to_value(&sorted).unwrap(),
        f["certificates_sha256"]
    );
    let key = &f["keys"][0];
    assert_eq!(archive.keys().len(), 1);
    assert_eq!(
        Some(archive.keys()[0].key.algorithm().name().as_str()),
        key["algorithm"].as_str()
    );
    let paired = archive.pairings()[0].map(|i| certs[i].clone());
    assert_eq!(paired.as_deref(), key["certificate_sha256"].as_str());
    archive
}

#[test]
fn reads_ber_inside_authenticated_safe() {
    assert_reads_as_the_facts_say("corpus/ber-inside.p12");
}

#[test]
fn reads_ber_inside_authenticated_safe_with_a_wrong_password_as_wrong_password() {
    // The MAC is checked on the BER octets as written; a wrong password must not turn into
    // "malformed" because of the BER inside.
    let err = pkcs12::read(
        &fixture("corpus/ber-inside.p12"),
        Some(&Password::new("not-the-password")),
        &Limits::default(),
    )
    .unwrap_err();
    assert!(matches!(err, Error::WrongPassword { .. }), "{err}");
}

#[test]
fn accepts_windows_zero_padding() {
    let archive = assert_reads_as_the_facts_say("corpus/windows-zero-padding.p12");
    assert_eq!(archive.trailing_zero_bytes(), 8);
}

#[test]
fn rejects_non_zero_bytes_after_the_pfx() {
    let mut bytes = fixture("corpus/windows-zero-padding.p12");
    *bytes.last_mut().unwrap() = 1;
    let err = pkcs12::read(
        &bytes,
        Some(&Password::new("pfxkit-pass")),
        &Limits::default(),
    )
    .unwrap_err();
    assert!(matches!(err, Error::Malformed { .. }), "{err}");
}

fn secret_facts() -> Value {
    facts()["jceks_secret_keys"].clone()
}

fn secret_store() -> (Vec<u8>, Password) {
    let f = secret_facts();
    (
        fixture(f["file"].as_str().unwrap()),
        Password::new(f["store_password"].as_str().unwrap()),
    )
}

/// Unseals every secret key with its password (the store password unless the facts name
/// another) and returns (alias, algorithm, bits, SHA-256 of the key bytes), sorted by alias.
fn unsealed(store: &jks::Keystore) -> Vec<(String, String, usize, String)> {
    let f = secret_facts();
    let (_, store_password) = secret_store();
    let mut out: Vec<_> = store
        .entries()
        .iter()
        .filter_map(|e| match e {
            Entry::SecretKey(s) => Some(s),
            _ => None,
        })
        .map(|s| {
            let password = f["key_passwords"][s.alias()]
                .as_str()
                .map(Password::new)
                .unwrap_or_else(|| store_password.clone());
            let key = s.decrypt(&password, &Limits::default()).unwrap();
            (
                s.alias().to_string(),
                key.algorithm().to_string(),
                key.bits(),
                sha256_hex(key.expose_secret_bytes()),
            )
        })
        .collect();
    out.sort();
    out
}

fn expected_secrets() -> Vec<(String, String, usize, String)> {
    secret_facts()["secret_keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["alias"].as_str().unwrap().to_string(),
                s["algorithm"].as_str().unwrap().to_string(),
                s["bits"].as_u64().unwrap() as usize,
                s["sha256"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn lists_jceks_secret_keys() {
    let (bytes, password) = secret_store();
    let store = jks::read(&bytes, &password, &Limits::default()).unwrap();
    // The JDK's view: algorithm, size and the key bytes themselves (as SHA-256).
    assert_eq!(unsealed(&store), expected_secrets());
    // The other entries are still there.
    assert!(
        store
            .entries()
            .iter()
            .any(|e| matches!(e, Entry::PrivateKey(k) if k.alias() == "server"))
    );
    assert!(
        store
            .entries()
            .iter()
            .any(|e| matches!(e, Entry::Trusted(t) if t.alias() == "root"))
    );
    let identities = store.identities(&password, &Limits::default()).unwrap();
    assert_eq!(identities.len(), 1);
}

#[test]
fn checks_the_jceks_digest_before_the_secret_keys() {
    let (bytes, _) = secret_store();
    let err = jks::read(&bytes, &Password::new("wrong"), &Limits::default()).unwrap_err();
    assert!(matches!(err, Error::WrongPassword { .. }), "{err}");
}

#[test]
fn reports_a_wrong_password_for_an_unreadable_secret_key_stream() {
    // A secret-key body that cannot be read hides where the digest is; it is then checked
    // where Java writes it, last, so a wrong password still says so.
    let (mut bytes, password) = secret_store();
    let magic = [0xAC, 0xED, 0x00, 0x05];
    let at = bytes.windows(4).position(|w| w == magic).unwrap();
    bytes[at + 4] = 0x01; // not a type code
    let wrong = jks::read(&bytes, &Password::new("wrong"), &Limits::default()).unwrap_err();
    assert!(matches!(wrong, Error::WrongPassword { .. }), "{wrong}");
    // With the right password the digest no longer matches either (the byte was changed).
    let tampered = jks::read(&bytes, &password, &Limits::default()).unwrap_err();
    assert!(
        matches!(tampered, Error::WrongPassword { .. }),
        "{tampered}"
    );
}

#[test]
fn keeps_jceks_secret_keys_on_store_add() {
    let (bytes, password) = secret_store();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.jceks");
    std::fs::write(&path, &bytes).unwrap();
    let before = jks::read(&bytes, &password, &Limits::default()).unwrap();
    let sealed_before: Vec<Vec<u8>> = before
        .entries()
        .iter()
        .filter_map(|e| match e {
            Entry::SecretKey(s) => Some(s.sealed_object().to_vec()),
            _ => None,
        })
        .collect();

    let identity = pkcs12::read(
        &fixture("p12/openssl-default.p12"),
        Some(&Password::new("pfxkit-pass")),
        &Limits::default(),
    )
    .unwrap()
    .identities()
    .remove(0);
    let store = JksStore::new(&path, password.clone());
    store
        .add(
            Some("added"),
            &identity,
            None,
            pfxkit::store::AddOptions::new(false, false),
        )
        .unwrap();

    let after_bytes = std::fs::read(&path).unwrap();
    let after = jks::read(&after_bytes, &password, &Limits::default()).unwrap();
    assert_eq!(after.kind(), jks::KeystoreKind::Jceks);
    let sealed_after: Vec<Vec<u8>> = after
        .entries()
        .iter()
        .filter_map(|e| match e {
            Entry::SecretKey(s) => Some(s.sealed_object().to_vec()),
            _ => None,
        })
        .collect();
    assert_eq!(
        sealed_after, sealed_before,
        "secret keys kept byte for byte"
    );
    assert_eq!(unsealed(&after), expected_secrets());
    assert!(after.get("added").is_some());

    // The JDK agrees: it still unseals every secret key, with the same bytes.
    if Command::new("java").arg("-version").output().is_ok() {
        let out = Command::new("java")
            .arg(common::data_dir().join("JceksSecrets.java"))
            .arg(&path)
            .arg("store-pass")
            .arg("hmac=key-pass-2")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let listed: Vec<(String, String, usize, String)> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| {
                let f: Vec<&str> = l.split('\t').collect();
                (
                    f[0].to_string(),
                    f[1].to_string(),
                    f[2].parse().unwrap(),
                    f[3].to_string(),
                )
            })
            .collect();
        assert_eq!(listed, expected_secrets());
    } else {
        eprintln!("note: java is not available; the JDK check is skipped");
    }
}

#[test]
fn reads_pre2000_utctime_certificate() {
    // notBefore is UTCTime 500101120000Z: 1950, before x509-cert's calendar starts.
    let f = p12_facts("corpus/pre1970-utctime.p12");
    let archive = assert_reads_as_the_facts_say("corpus/pre1970-utctime.p12");
    let cert = &archive.certificates()[0].certificate;
    assert_eq!(
        Some(cert.not_before_rfc3339().as_str()),
        f["not_before"].as_str()
    );
    assert_eq!(
        Some(cert.not_after_rfc3339().as_str()),
        f["not_after"].as_str()
    );
    assert_eq!(cert.not_before_unix(), 0, "clamped at the Unix epoch");
}

#[test]
fn lists_an_unparsable_certificate_by_thumbprint() {
    let f = facts()["unparsable_cert"].clone();
    let archive = pkcs12::read(
        &fixture(f["file"].as_str().unwrap()),
        Some(&Password::new(f["password"].as_str().unwrap())),
        &Limits::default(),
    )
    .unwrap();
    assert_eq!(archive.certificates().len(), 1);
    assert_eq!(
        Some(archive.certificates()[0].certificate.sha256_hex().as_str()),
        f["certificate_sha256"].as_str()
    );
    assert_eq!(archive.pairings(), vec![Some(0)]);
    let unparsed = archive.unparsed_certificates();
    assert_eq!(unparsed.len(), 1);
    assert_eq!(
        Some(unparsed[0].sha256_hex().as_str()),
        f["unparsable_sha256"].as_str()
    );
    assert!(!unparsed[0].reason.is_empty());
    assert_eq!(
        unparsed[0].attributes.friendly_name.as_deref(),
        Some("broken")
    );
}

/// The RSA leaf with its subject replaced by `name` (the signature no longer verifies, which
/// no reader here checks).
fn leaf_with_subject(name: common::Der) -> Vec<u8> {
    let mut cert = common::Der::parse(&common::pem_der("pki/certs/leaf-rsa.pem"));
    // tbsCertificate: [0] version, serial, signature, issuer, validity, subject, …
    *cert.at_mut(&[0, 5]) = name;
    cert.encode()
}

fn rdn(value: common::Der) -> common::Der {
    use common::Der::{Cons, Prim};
    // SET { SEQUENCE { commonName, value } }
    Cons(
        0x31,
        vec![Cons(0x30, vec![Prim(0x06, vec![0x55, 0x04, 0x03]), value])],
    )
}

#[test]
fn refuses_name_bomb_certificate() {
    use common::Der::{Cons, Prim};
    // 20,000 RDNs (the report's bomb had 390,000: 3 s and 666 MB in x509-cert).
    let bomb = Cons(0x30, vec![rdn(Prim(0x0c, b"x".to_vec())); 20_000]);
    let pfx = common::plain_pfx(&[common::cert_bag(&leaf_with_subject(bomb))]);
    let started = std::time::Instant::now();
    let err = pkcs12::read(&pfx, None, &Limits::default()).unwrap_err();
    assert!(
        matches!(
            err,
            Error::LimitExceeded {
                limit: pfxkit::error::LimitKind::NameAttributes,
                ..
            }
        ),
        "{err}"
    );
    assert!(started.elapsed() < std::time::Duration::from_millis(500));

    // Nesting inside an attribute value is bounded too.
    let mut value = Prim(0x0c, b"x".to_vec());
    for _ in 0..200 {
        value = Cons(0x30, vec![value]);
    }
    let deep = Cons(0x30, vec![rdn(value)]);
    let pfx = common::plain_pfx(&[common::cert_bag(&leaf_with_subject(deep))]);
    let err = pkcs12::read(&pfx, None, &Limits::default()).unwrap_err();
    assert!(
        matches!(
            err,
            Error::LimitExceeded {
                limit: pfxkit::error::LimitKind::NestingDepth,
                ..
            }
        ),
        "{err}"
    );

    // An ordinary name under the same limits still reads.
    let fine = Cons(0x30, vec![rdn(Prim(0x0c, b"ok".to_vec())); 8]);
    let pfx = common::plain_pfx(&[common::cert_bag(&leaf_with_subject(fine))]);
    assert_eq!(
        pkcs12::read(&pfx, None, &Limits::default())
            .unwrap()
            .certificates()
            .len(),
        1
    );
}

#[test]
fn charges_certificate_decoding_to_the_work_budget() {
    // 1,000 certificates under a budget too small for them: refused before decoding.
    let cert = common::pem_der("pki/certs/leaf-rsa.pem");
    let bags: Vec<Vec<u8>> = (0..1_000).map(|_| common::cert_bag(&cert)).collect();
    let pfx = common::plain_pfx(&bags);
    let mut limits = Limits::default();
    limits.max_work = 10_000;
    let err = pkcs12::read(&pfx, None, &limits).unwrap_err();
    assert!(
        matches!(
            err,
            Error::LimitExceeded {
                limit: pfxkit::error::LimitKind::Work,
                ..
            }
        ),
        "{err}"
    );
    assert!(pkcs12::read(&pfx, None, &Limits::default()).is_ok());
}

/// Every key encoding `build --help` promises, PEM and DER (made by openssl in
/// gen_corpus.sh): (file, certificate, key password).
const KEY_ENCODINGS: &[(&str, &str, Option<&str>)] = &[
    ("rsa-pkcs8", "leaf-rsa", None),
    ("rsa-pkcs8-encrypted", "leaf-rsa", Some("key-pass")),
    ("rsa-pkcs1", "leaf-rsa", None),
    ("ec-sec1", "leaf-ec256", None),
];

#[test]
fn builds_from_der_pkcs8_key() {
    let key = pfxkit::pem::read_bundle(
        &fixture("corpus/keys/rsa-pkcs8.der"),
        None,
        &Limits::default(),
    )
    .unwrap();
    assert_eq!(key.keys.len(), 1);
}

#[test]
fn reads_every_key_encoding_in_pem_and_der() {
    for (name, cert, password) in KEY_ENCODINGS {
        for ext in ["pem", "der"] {
            let file = format!("corpus/keys/{name}.{ext}");
            let bundle = pfxkit::pem::read_bundle(
                &fixture(&file),
                password.map(Password::new).as_ref(),
                &Limits::default(),
            )
            .unwrap_or_else(|e| panic!("{file}: {e}"));
            let [key] = bundle.keys.as_slice() else {
                panic!("{file}: expected one key");
            };
            let leaf =
                pfxkit::Certificate::from_der(&common::pem_der(&format!("pki/certs/{cert}.pem")))
                    .unwrap();
            pfxkit::Identity::new(key.clone(), leaf, Vec::new())
                .unwrap_or_else(|e| panic!("{file}: the key is not the certificate's: {e}"));
        }
    }
}

#[test]
fn reads_pkcs12_with_a_separate_key_password() {
    // Java writes a key entry's own password into the shrouded key bag and the store password
    // into the MAC (OpenJDK's convertP12 files).
    let f = facts()["two_passwords"].clone();
    let bytes = fixture(f["file"].as_str().unwrap());
    let password = Password::new(f["password"].as_str().unwrap());
    let key_password = Password::new(f["key_password"].as_str().unwrap());
    let archive = pkcs12::read_with_key_password(
        &bytes,
        Some(&password),
        Some(&key_password),
        &Limits::default(),
    )
    .unwrap();
    let paired = archive.pairings()[0].map(|i| archive.certificates()[i].certificate.sha256_hex());
    assert_eq!(paired.as_deref(), f["certificate_sha256"].as_str());
    // With the MAC password alone the key does not decrypt: said so, naming the key.
    let err = pkcs12::read(&bytes, Some(&password), &Limits::default()).unwrap_err();
    assert!(matches!(err, Error::WrongPassword { .. }), "{err}");
    assert!(err.to_string().contains("private key 'two'"), "{err}");
    // The key password does not open the MAC.
    let err = pkcs12::read_with_key_password(
        &bytes,
        Some(&key_password),
        Some(&key_password),
        &Limits::default(),
    )
    .unwrap_err();
    assert!(matches!(err, Error::WrongPassword { .. }), "{err}");
}

#[test]
fn names_key_algorithms_without_arithmetic() {
    // An X25519 key made by openssl.
    let bundle =
        pfxkit::pem::read_bundle(&fixture("corpus/keys/x25519.pem"), None, &Limits::default())
            .unwrap();
    assert_eq!(bundle.keys[0].algorithm().name(), "x25519");
    // ML-KEM-768 (2.16.840.1.101.3.4.4.2), which no tool here writes: a PKCS#8 with that
    // algorithm and an opaque private key, as OpenSSL 3.5 exports its seed form.
    let ml_kem_oid = [
        0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x04, 0x02,
    ];
    let pkcs8 = common::seq(&[
        &common::integer(0),
        &common::seq(&[&ml_kem_oid]),
        &common::tlv(0x04, &common::tlv(0x80, &[7u8; 64])),
    ]);
    let key = pfxkit::PrivateKey::from_pkcs8_der(&pkcs8).unwrap();
    assert_eq!(key.algorithm().name(), "ml-kem-768");
    assert_eq!(key.algorithm().bits(), None);
}

#[test]
fn claims_but_does_not_prove_the_certificate_of_a_binary_curve_key() {
    // sect193r1 (openssl): pfxkit has no arithmetic for binary curves. The key's SEC1
    // publicKey names its certificate; that is reported as a claim, never as an identity.
    let expected = String::from_utf8(fixture("corpus/sect193r1.sha256")).unwrap();
    let archive = pkcs12::read(
        &fixture("corpus/sect193r1.p12"),
        Some(&Password::new("pfxkit-pass")),
        &Limits::default(),
    )
    .unwrap();
    assert_eq!(archive.keys()[0].key.algorithm().name(), "ec");
    assert_eq!(archive.keys()[0].key.algorithm().bits(), None);
    assert_eq!(archive.pairings(), vec![None]);
    assert!(archive.identities().is_empty());
    let keys: Vec<_> = archive.keys().iter().map(|k| &k.key).collect();
    let certs: Vec<_> = archive
        .certificates()
        .iter()
        .map(|c| &c.certificate)
        .collect();
    let claimed = pfxkit::identity::claimed_pairings(&keys, &certs);
    assert_eq!(claimed, vec![Some(0)]);
    assert_eq!(certs[0].sha256_hex(), expected.trim());
    // A key pfxkit can prove claims nothing: its pairing is a proof.
    let rsa = pkcs12::read(
        &fixture("p12/openssl-default.p12"),
        Some(&Password::new("pfxkit-pass")),
        &Limits::default(),
    )
    .unwrap();
    let keys: Vec<_> = rsa.keys().iter().map(|k| &k.key).collect();
    let certs: Vec<_> = rsa.certificates().iter().map(|c| &c.certificate).collect();
    assert_eq!(
        pfxkit::identity::claimed_pairings(&keys, &certs),
        vec![None]
    );
}

#[test]
fn charges_private_and_secret_keys_to_one_budget() {
    // One private key and three secret keys at keytool's 200,000 rounds: 1.6 M work units
    // each. Under a 5 M budget either kind alone fits, both together do not.
    let (bytes, password) = secret_store();
    let store = jks::read(&bytes, &password, &Limits::default()).unwrap();
    let mut limits = Limits::default();
    limits.max_work = 5_000_000;
    assert!(store.decrypt_keys(&password, &limits).is_ok());
    assert!(store.decrypt_secret_keys(&password, &limits).is_ok());
    let err = store.decrypt_all_keys(&password, &limits).unwrap_err();
    assert!(
        matches!(
            err,
            Error::LimitExceeded {
                limit: pfxkit::error::LimitKind::Work,
                ..
            }
        ),
        "{err}"
    );
}
