//! JKS and JCEKS: reading keytool's files, Java reading ours, and hostile input.
//!
//! Fixtures in `tests/data/jks/` were made by keytool (JDK 17); the exact commands are in
//! `tests/data/gen.sh`. Stores written by these tests use keys and certificates made by
//! `openssl req` at test time. Interop tests need `keytool`/`javac`/`java`/`openssl` on PATH and
//! print a note and return when one is missing.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use pfxkit::error::LimitKind;
use pfxkit::jks::{self, Entry, KeyProtection, KeystoreKind, WriteEntry};
use pfxkit::secret::KeyAlgorithm;
use pfxkit::{Certificate, Error, Identity, Limits, Password, PrivateKey};
use sha1::{Digest, Sha1};

// ---------------------------------------------------------------------------------------------
// Helpers

fn data(name: &str) -> Option<Vec<u8>> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/jks")
        .join(name);
    match std::fs::read(&path) {
        Ok(bytes) => Some(bytes),
        Err(_) => {
            eprintln!("note: fixture {} is absent; skipping", path.display());
            None
        }
    }
}

fn have(tool: &str) -> bool {
    // keytool has no -version; -help exits 0 everywhere.
    let probe = match tool {
        "openssl" => "version",
        "keytool" => "-help",
        _ => "-version",
    };
    let ok = Command::new(tool)
        .arg(probe)
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("note: {tool} is not available; skipping");
    }
    ok
}

fn pw(s: &str) -> Password {
    Password::new(s)
}

fn limits() -> Limits {
    Limits::default()
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.env("LC_ALL", "C.UTF-8").output().expect("spawn");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{cmd:?} failed:\n{text}");
    text
}

fn pem_der(path: &Path) -> Vec<u8> {
    pem::parse(std::fs::read(path).unwrap())
        .unwrap()
        .contents()
        .to_vec()
}

/// A self-signed identity made by openssl: `ec` for P-256, otherwise RSA-2048.
fn openssl_identity(dir: &Path, name: &str, ec: bool) -> Identity {
    let key = dir.join(format!("{name}.key"));
    let cert = dir.join(format!("{name}.crt"));
    let mut cmd = Command::new("openssl");
    cmd.args(["req", "-x509", "-nodes", "-days", "30", "-newkey"]);
    if ec {
        cmd.args(["ec", "-pkeyopt", "ec_paramgen_curve:P-256"]);
    } else {
        cmd.arg("rsa:2048");
    }
    cmd.args(["-subj", &format!("/CN={name}"), "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert);
    run(&mut cmd);
    let key = PrivateKey::from_pkcs8_der(&pem_der(&key)).unwrap();
    let cert = Certificate::from_der(&pem_der(&cert)).unwrap();
    Identity::new(key, cert, vec![]).unwrap()
}

/// An EC leaf signed by an EC CA: (identity with chain [leaf, ca], ca certificate).
fn openssl_chain(dir: &Path) -> (Identity, Certificate) {
    let p = |n: &str| dir.join(n);
    run(Command::new("openssl")
        .args(["req", "-x509", "-nodes", "-days", "30", "-newkey", "ec"])
        .args([
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-subj",
            "/CN=pfxkit test CA",
        ])
        .args(["-addext", "basicConstraints=critical,CA:TRUE", "-keyout"])
        .arg(p("ca.key"))
        .arg("-out")
        .arg(p("ca.crt")));
    run(Command::new("openssl")
        .args(["req", "-new", "-nodes", "-newkey", "ec"])
        .args([
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-subj",
            "/CN=leaf.example",
        ])
        .arg("-keyout")
        .arg(p("leaf.key"))
        .arg("-out")
        .arg(p("leaf.csr")));
    run(Command::new("openssl")
        .args(["x509", "-req", "-days", "30", "-in"])
        .arg(p("leaf.csr"))
        .arg("-CA")
        .arg(p("ca.crt"))
        .arg("-CAkey")
        .arg(p("ca.key"))
        .args(["-set_serial", "7", "-out"])
        .arg(p("leaf.crt")));
    let ca = Certificate::from_der(&pem_der(&p("ca.crt"))).unwrap();
    let leaf = Certificate::from_der(&pem_der(&p("leaf.crt"))).unwrap();
    let key = PrivateKey::from_pkcs8_der(&pem_der(&p("leaf.key"))).unwrap();
    (Identity::new(key, leaf, vec![ca.clone()]).unwrap(), ca)
}

/// One EC identity shared by the property tests (openssl runs once).
fn shared_identity() -> Option<&'static Identity> {
    static ID: OnceLock<Option<(tempfile::TempDir, Identity)>> = OnceLock::new();
    ID.get_or_init(|| {
        if !have("openssl") {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let id = openssl_identity(dir.path(), "shared", true);
        Some((dir, id))
    })
    .as_ref()
    .map(|(_, id)| id)
}

/// Deterministic "random" bytes for reproducible stores.
fn counter_rng() -> impl FnMut(&mut [u8]) -> pfxkit::Result<()> {
    let mut n = 0u8;
    move |buf: &mut [u8]| {
        for b in buf {
            n = n.wrapping_add(37);
            *b = n;
        }
        Ok(())
    }
}

fn key_entry(entry: &Entry) -> &jks::KeyEntry {
    match entry {
        Entry::PrivateKey(k) => k,
        other => panic!("expected a key entry, got {other:?}"),
    }
}

fn assert_wrong_password<T: std::fmt::Debug>(result: pfxkit::Result<T>) {
    match result {
        Err(e @ Error::WrongPassword { .. }) => {
            assert!(e.to_string().contains("wrong password or tampered"), "{e}");
        }
        other => panic!("expected WrongPassword, got {other:?}"),
    }
}

fn assert_malformed<T: std::fmt::Debug>(result: pfxkit::Result<T>) -> Option<u64> {
    match result {
        Err(Error::Malformed { offset, .. }) => offset,
        other => panic!("expected Malformed, got {other:?}"),
    }
}

/// Builds raw keystore bytes field by field, for crafted and hostile files.
struct RawStore {
    out: Vec<u8>,
    version: u32,
}

impl RawStore {
    fn new(magic: u32, version: u32, count: i32) -> Self {
        let mut out = Vec::new();
        out.extend(magic.to_be_bytes());
        out.extend(version.to_be_bytes());
        out.extend(count.to_be_bytes());
        RawStore { out, version }
    }

    fn utf(&mut self, s: &[u8]) -> &mut Self {
        self.out.extend((s.len() as u16).to_be_bytes());
        self.out.extend(s);
        self
    }

    fn i32(&mut self, v: i32) -> &mut Self {
        self.out.extend(v.to_be_bytes());
        self
    }

    fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.out.extend(b);
        self
    }

    fn header(&mut self, tag: i32, alias: &str) -> &mut Self {
        self.i32(tag)
            .utf(alias.as_bytes())
            .bytes(&0i64.to_be_bytes())
    }

    fn cert(&mut self, cert_type: &str, der: &[u8]) -> &mut Self {
        if self.version == 2 {
            self.utf(cert_type.as_bytes());
        }
        self.i32(der.len() as i32).bytes(der)
    }

    fn key(&mut self, alias: &str, epki: &[u8], chain: &[&Certificate]) -> &mut Self {
        self.header(1, alias).i32(epki.len() as i32).bytes(epki);
        self.i32(chain.len() as i32);
        for c in chain {
            self.cert("X.509", c.der());
        }
        self
    }

    fn trusted(&mut self, alias: &str, cert_type: &str, cert: &Certificate) -> &mut Self {
        self.header(2, alias).cert(cert_type, cert.der())
    }

    /// Appends the store digest under `password`.
    fn finish(&self, password: &str) -> Vec<u8> {
        let mut h = Sha1::new();
        let pw16: Vec<u8> = password.encode_utf16().flat_map(u16::to_be_bytes).collect();
        h.update(&pw16);
        h.update(b"Mighty Aphrodite");
        h.update(&self.out);
        let mut out = self.out.clone();
        out.extend(h.finalize());
        out
    }
}

const JKS: u32 = 0xFEED_FEED;
const JCEKS: u32 = 0xCECE_CECE;

// ---------------------------------------------------------------------------------------------
// Reading keytool's files

#[test]
fn detects_jks_and_jceks_by_magic() {
    assert_eq!(
        jks::detect(&[0xFE, 0xED, 0xFE, 0xED, 0]),
        Some(KeystoreKind::Jks)
    );
    assert_eq!(jks::detect(&[0xCE; 4]), Some(KeystoreKind::Jceks));
    assert_eq!(jks::detect(&[0x30, 0x82, 0, 0]), None);
    assert_eq!(jks::detect(&[0xFE, 0xED]), None);
}

#[test]
fn reads_keytool_jks_with_distinct_key_password() {
    let Some(bytes) = data("rsa-keypass.jks") else {
        return;
    };
    let store = jks::read(&bytes, &pw("store-pass"), &limits()).unwrap();
    assert_eq!(store.kind(), KeystoreKind::Jks);
    assert_eq!(store.version(), 2);
    assert!(store.digest_verified());
    assert!(store.warnings().is_empty(), "{:?}", store.warnings());
    assert_eq!(store.entries().len(), 1);
    let key = key_entry(&store.entries()[0]);
    assert_eq!(key.alias(), "server");
    assert_eq!(key.protection(), &KeyProtection::Jks);
    assert_eq!(key.chain().len(), 1);
    assert!(key.created_millis() > 1_600_000_000_000);
    let identity = key.identity(&pw("key-pass-2"), &limits()).unwrap();
    assert_eq!(identity.alias(), Some("server"));
    assert_eq!(
        identity.key().algorithm(),
        &KeyAlgorithm::Rsa { bits: 2048 }
    );
    assert!(identity.leaf().subject().contains("CN=server.example.com"));
    // The store password is not the key password here.
    assert_wrong_password(key.decrypt(&pw("store-pass"), &limits()));
}

#[test]
fn reads_keytool_ec_jks() {
    let Some(bytes) = data("ec.jks") else { return };
    let store = jks::read(&bytes, &pw("store-pass"), &limits()).unwrap();
    let entry = store.get("EC-KEY").expect("case-insensitive lookup");
    let identity = key_entry(entry)
        .identity(&pw("store-pass"), &limits())
        .unwrap();
    assert_eq!(identity.key().algorithm().name(), "ec");
    assert_eq!(identity.key().algorithm().bits(), Some(256));
}

#[test]
fn reads_keytool_chain_leaf_first() {
    let Some(bytes) = data("chain.jks") else {
        return;
    };
    let store = jks::read(&bytes, &pw("store-pass"), &limits()).unwrap();
    let key = key_entry(store.get("leaf").unwrap());
    assert_eq!(key.chain().len(), 3);
    for pair in key.chain().windows(2) {
        assert_eq!(pair[0].issuer(), pair[1].subject());
    }
    assert!(key.chain()[2].is_self_issued());
    let identity = key.identity(&pw("store-pass"), &limits()).unwrap();
    assert_eq!(identity.chain().len(), 3);
}

#[test]
fn reads_keytool_trust_only_jks() {
    let Some(bytes) = data("trust-only.jks") else {
        return;
    };
    let store = jks::read(&bytes, &pw("store-pass"), &limits()).unwrap();
    let mut aliases: Vec<&str> = store.entries().iter().map(Entry::alias).collect();
    aliases.sort_unstable();
    assert_eq!(aliases, ["intermediate", "root"]);
    for entry in store.entries() {
        let Entry::Trusted(t) = entry else {
            panic!("expected trusted entries only")
        };
        assert_eq!(Some(t.certificate()), entry.certificate());
    }
    let root = store.get("root").unwrap().certificate().unwrap();
    assert_eq!(root.subject(), "CN=pfxkit Test Root");
}

#[test]
fn reads_non_bmp_alias_and_non_ascii_passwords() {
    let Some(bytes) = data("unicode.jks") else {
        return;
    };
    let store = jks::read(&bytes, &pw("störe-pässwörd"), &limits()).unwrap();
    let key = key_entry(&store.entries()[0]);
    // keytool lower-cased "Ünïcode-Alias-😀" and wrote the emoji as a surrogate pair.
    assert_eq!(key.alias(), "ünïcode-alias-😀");
    assert!(store.get("Ünïcode-Alias-😀").is_some());
    key.identity(&pw("kéy-pässwörd"), &limits()).unwrap();
    assert_wrong_password(jks::read(&bytes, &pw("store-passwort"), &limits()));
}

#[test]
fn reads_keytool_jceks_key_and_trusted_entry() {
    let Some(bytes) = data("key.jceks") else {
        return;
    };
    let store = jks::read(&bytes, &pw("store-pass"), &limits()).unwrap();
    assert_eq!(store.kind(), KeystoreKind::Jceks);
    let key = key_entry(store.get("jceks-key").unwrap());
    assert!(matches!(
        key.protection(),
        KeyProtection::PbeWithMd5AndTripleDes { iterations } if *iterations <= 5_000_000
    ));
    let identity = key.identity(&pw("key-pass-2"), &limits()).unwrap();
    assert_eq!(
        identity.key().algorithm(),
        &KeyAlgorithm::Rsa { bits: 2048 }
    );
    assert!(matches!(store.get("root"), Some(Entry::Trusted(_))));
    // JCEKS has no integrity check on keys: a wrong password is noticed by bad padding or a
    // plaintext that is not PKCS#8, and reported the same way.
    assert_wrong_password(key.decrypt(&pw("store-pass"), &limits()));
}

#[test]
fn reads_debian_cacerts() {
    let path = Path::new("/etc/ssl/certs/java/cacerts");
    let Ok(bytes) = std::fs::read(path) else {
        eprintln!("note: {} is absent; skipping", path.display());
        return;
    };
    let store = jks::read(&bytes, &pw("changeit"), &limits()).unwrap();
    assert!(store.entries().len() > 50);
    assert!(
        store
            .entries()
            .iter()
            .all(|e| matches!(e, Entry::Trusted(_)))
    );
    if have("keytool") {
        let listing = run(Command::new("keytool")
            .args([
                "-J-Duser.language=en",
                "-list",
                "-storetype",
                "JKS",
                "-keystore",
            ])
            .arg(path)
            .args(["-storepass", "changeit"]));
        let expected = format!("contains {} entries", store.entries().len());
        assert!(listing.contains(&expected), "{expected} not in {listing}");
    }
}

#[test]
fn reads_keytool_jceks_secret_key_entry() {
    if !have("keytool") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("secret.jceks");
    run(Command::new("keytool")
        .args([
            "-genseckey",
            "-alias",
            "aes",
            "-keyalg",
            "AES",
            "-keysize",
            "128",
        ])
        .args([
            "-storetype",
            "JCEKS",
            "-storepass",
            "store-pass",
            "-keystore",
        ])
        .arg(&file));
    let bytes = std::fs::read(&file).unwrap();
    // Once refused as unsupported; now read (issue 14, see tests/corpus.rs).
    let store = jks::read(&bytes, &pw("store-pass"), &limits()).unwrap();
    match store.entries() {
        [jks::Entry::SecretKey(s)] => {
            let key = s.decrypt(&pw("store-pass"), &limits()).unwrap();
            assert_eq!((key.algorithm(), key.bits()), ("AES", 128));
        }
        other => panic!("expected one secret key, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Integrity

#[test]
fn rejects_wrong_store_password_as_wrong_password() {
    let Some(bytes) = data("ec.jks") else { return };
    assert_wrong_password(jks::read(&bytes, &pw("store-pas"), &limits()));
    assert_wrong_password(jks::read(&bytes, &Password::absent(), &limits()));
}

#[test]
fn rejects_tampered_store_as_wrong_password() {
    let Some(bytes) = data("trust-only.jks") else {
        return;
    };
    // Flip one bit inside the first certificate's signature, and one in the digest itself.
    for at in [bytes.len() - 100, bytes.len() - 1] {
        let mut tampered = bytes.clone();
        tampered[at] ^= 0x01;
        assert_wrong_password(jks::read(&tampered, &pw("store-pass"), &limits()));
        // Listing without a password still works: that call says it does not verify.
        let unverified = jks::read_unverified(&tampered, &limits());
        if at == bytes.len() - 1 {
            assert!(!unverified.unwrap().digest_verified());
        }
    }
}

#[test]
fn lists_without_password_only_through_read_unverified() {
    let Some(bytes) = data("rsa-keypass.jks") else {
        return;
    };
    let store = jks::read_unverified(&bytes, &limits()).unwrap();
    assert!(!store.digest_verified());
    assert_eq!(store.entries()[0].alias(), "server");
}

#[test]
fn rejects_truncated_store_as_malformed_at_every_length() {
    let Some(bytes) = data("ec.jks") else { return };
    for len in 0..bytes.len() {
        let offset = assert_malformed(jks::read(&bytes[..len], &pw("store-pass"), &limits()));
        assert!(
            offset.is_some_and(|o| o <= len as u64),
            "len {len}: {offset:?}"
        );
    }
}

#[test]
fn tolerates_bytes_after_the_digest_with_a_warning() {
    let Some(mut bytes) = data("ec.jks") else {
        return;
    };
    bytes.extend_from_slice(b"trailing");
    let store = jks::read(&bytes, &pw("store-pass"), &limits()).unwrap();
    assert_eq!(store.entries().len(), 1);
    assert!(store.warnings().iter().any(|w| w.contains("8 bytes after")));
}

// ---------------------------------------------------------------------------------------------
// Hostile input

#[test]
fn rejects_huge_entry_count_without_allocating() {
    let started = Instant::now();
    let bytes = RawStore::new(JKS, 2, i32::MAX).finish("p");
    match jks::read(&bytes, &pw("p"), &limits()) {
        Err(Error::LimitExceeded {
            limit: LimitKind::EntryCount,
            ..
        }) => {}
        other => panic!("expected the entry-count limit, got {other:?}"),
    }
    // Even with the limit lifted, the count allocates nothing: the file simply ends.
    let mut unlimited = limits();
    unlimited.max_entries = usize::MAX;
    assert_malformed(jks::read(&bytes, &pw("p"), &unlimited));
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[test]
fn rejects_negative_counts_and_lengths() {
    let bytes = RawStore::new(JKS, 2, -1).finish("p");
    assert_eq!(
        assert_malformed(jks::read(&bytes, &pw("p"), &limits())),
        Some(8)
    );

    let mut raw = RawStore::new(JKS, 2, 1);
    raw.header(1, "k").i32(-5);
    let bytes = raw.finish("p");
    assert_eq!(
        assert_malformed(jks::read(&bytes, &pw("p"), &limits())),
        Some(12 + 4 + 3 + 8)
    );

    let mut raw = RawStore::new(JKS, 2, 1);
    raw.header(2, "t").utf(b"X.509").i32(i32::MIN);
    assert_malformed(jks::read(&raw.finish("p"), &pw("p"), &limits()));
}

#[test]
fn rejects_huge_length_fields_before_allocating() {
    let started = Instant::now();
    let mut raw = RawStore::new(JKS, 2, 1);
    raw.header(1, "k").i32(i32::MAX).bytes(&[0; 64]);
    let err = jks::read(&raw.finish("p"), &pw("p"), &limits()).unwrap_err();
    assert!(err.to_string().contains("exceeds"), "{err}");

    let mut raw = RawStore::new(JCEKS, 2, 1);
    raw.header(2, "t")
        .utf(b"X.509")
        .i32(0x7FFF_FFF0)
        .bytes(&[0x30; 16]);
    assert_malformed(jks::read(&raw.finish("p"), &pw("p"), &limits()));
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[test]
fn rejects_long_chains_by_limit() {
    let mut raw = RawStore::new(JKS, 2, 1);
    raw.header(1, "k").i32(40).bytes(&[0; 40]).i32(1000);
    match jks::read(&raw.finish("p"), &pw("p"), &limits()) {
        Err(Error::LimitExceeded {
            limit: LimitKind::ChainLength,
            value: 1000,
            ..
        }) => {}
        other => panic!("expected the chain-length limit, got {other:?}"),
    }
}

#[test]
fn rejects_input_over_the_size_limit() {
    let mut small = limits();
    small.max_input_size = 16;
    let bytes = RawStore::new(JKS, 2, 0).finish("p");
    assert!(matches!(
        jks::read(&bytes, &pw("p"), &small),
        Err(Error::LimitExceeded {
            limit: LimitKind::InputSize,
            ..
        })
    ));
}

#[test]
fn rejects_unknown_magic_version_and_tag() {
    assert_malformed(jks::read(
        b"\x30\x82\x01\x00 not a keystore",
        &pw(""),
        &limits(),
    ));
    let bytes = RawStore::new(JKS, 3, 0).finish("p");
    assert_eq!(
        assert_malformed(jks::read(&bytes, &pw("p"), &limits())),
        Some(4)
    );
    let mut raw = RawStore::new(JKS, 2, 1);
    raw.header(7, "x");
    assert_eq!(
        assert_malformed(jks::read(&raw.finish("p"), &pw("p"), &limits())),
        Some(12)
    );
    // Tag 3 is a JCEKS secret key; in a JKS file it is simply unknown.
    let mut raw = RawStore::new(JKS, 2, 1);
    raw.header(3, "x").bytes(&[0xAC, 0xED, 0, 5]);
    assert_malformed(jks::read(&raw.finish("p"), &pw("p"), &limits()));
}

#[test]
fn reports_crafted_jceks_secret_key_entry_as_malformed_not_misparsed() {
    // A serialization stream cut short: the next entry's bytes are not taken for its class.
    let mut raw = RawStore::new(JCEKS, 2, 2);
    raw.header(3, "secret")
        .bytes(&[0xAC, 0xED, 0x00, 0x05, 0x73, 0x72]);
    raw.header(2, "never-reached");
    let err = jks::read(&raw.finish("p"), &pw("p"), &limits()).unwrap_err();
    assert!(matches!(err, Error::Malformed { .. }), "{err:?}");
    assert!(
        err.to_string().contains("Java serialization stream"),
        "{err}"
    );
}

#[test]
fn rejects_bad_modified_utf8_alias_with_offset() {
    let mut raw = RawStore::new(JKS, 2, 1);
    // A 4-byte UTF-8 sequence: valid UTF-8, but not modified UTF-8.
    raw.i32(2).utf("😀".as_bytes());
    assert_eq!(
        assert_malformed(jks::read(&raw.finish("p"), &pw("p"), &limits())),
        Some(18)
    );
}

#[test]
fn rejects_jceks_iterations_beyond_javas_cap_and_the_limit() {
    let Some(id) = shared_identity() else { return };
    // A JCEKS key at keytool's 200,000 iterations, re-encoded with other counts.
    let store = jks::write_with(
        KeystoreKind::Jceks,
        &[WriteEntry::PrivateKey {
            alias: "k",
            identity: id,
            key_password: &pw("kp"),
        }],
        &pw("p"),
        0,
        &mut counter_rng(),
    )
    .unwrap();
    let epki = key_entry(&jks::read(&store, &pw("p"), &limits()).unwrap().entries()[0])
        .encrypted_key_der()
        .to_vec();
    // INTEGER 200000 = 02 03 03 0D 40.
    let at = epki
        .windows(5)
        .position(|w| w == [0x02, 0x03, 0x03, 0x0D, 0x40])
        .unwrap();
    for (count, expected) in [
        ([0x4C, 0x4B, 0x41], LimitKind::Iterations), // 5,000,001 > Java's cap
        ([0x1E, 0x84, 0x80], LimitKind::Iterations), // 2,000,000 > default limit
    ] {
        let mut patched = epki.clone();
        patched[at + 2..at + 5].copy_from_slice(&count);
        let mut raw = RawStore::new(JCEKS, 2, 1);
        raw.key("k", &patched, &[id.leaf()]);
        let store = jks::read(&raw.finish("p"), &pw("p"), &limits()).unwrap();
        let started = Instant::now();
        match key_entry(&store.entries()[0]).decrypt(&pw("kp"), &limits()) {
            Err(Error::LimitExceeded { limit, .. }) => assert_eq!(limit, expected),
            other => panic!("expected an iteration limit, got {other:?}"),
        }
        assert!(started.elapsed() < Duration::from_millis(100));
    }
}

// ---------------------------------------------------------------------------------------------
// Crafted but legal variants

#[test]
fn reads_version_1_without_certificate_types_and_go_style_x509() {
    let Some(id) = shared_identity() else { return };
    let mut raw = RawStore::new(JKS, 1, 1);
    raw.trusted("v1", "", id.leaf());
    let store = jks::read(&raw.finish("p"), &pw("p"), &limits()).unwrap();
    assert_eq!(store.version(), 1);
    assert_eq!(store.entries()[0].certificate(), Some(id.leaf()));

    let mut raw = RawStore::new(JKS, 2, 2);
    raw.trusted("go", "X509", id.leaf())
        .trusted("other", "PGP", id.leaf());
    let err = jks::read(&raw.finish("p"), &pw("p"), &limits()).unwrap_err();
    assert!(matches!(err, Error::Unsupported { .. }), "{err:?}");
}

/// `SEQ { SEQ { OID jks-protector [NULL] } OCTET STRING data }` by hand.
fn jks_epki(data: &[u8], with_null: bool) -> Vec<u8> {
    fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        match content.len() {
            n if n < 0x80 => out.push(n as u8),
            n if n < 0x100 => out.extend([0x81, n as u8]),
            n => out.extend([0x82, (n >> 8) as u8, n as u8]),
        }
        out.extend(content);
        out
    }
    let mut alg = tlv(
        0x06,
        &[0x2B, 0x06, 0x01, 0x04, 0x01, 0x2A, 0x02, 0x11, 0x01, 0x01],
    );
    if with_null {
        alg.extend([0x05, 0x00]);
    }
    let mut body = tlv(0x30, &alg);
    body.extend(tlv(0x04, data));
    tlv(0x30, &body)
}

/// Splits one DER TLV: (tag, content, rest). Test-only: lengths up to two bytes.
fn split_tlv(b: &[u8]) -> (u8, &[u8], &[u8]) {
    let (len, hdr) = match b[1] {
        n if n < 0x80 => (usize::from(n), 2),
        0x81 => (usize::from(b[2]), 3),
        0x82 => ((usize::from(b[2]) << 8) | usize::from(b[3]), 4),
        other => panic!("length form {other:#x}"),
    };
    (b[0], &b[hdr..hdr + len], &b[hdr + len..])
}

/// The JKS-protected data (salt ‖ ciphertext ‖ check) of the first key entry of `store`.
fn jks_protected_data(store: &[u8]) -> Vec<u8> {
    let s = jks::read_unverified(store, &limits()).unwrap();
    let der = key_entry(&s.entries()[0]).encrypted_key_der();
    let (_, epki, _) = split_tlv(der);
    let (_, _algorithm, rest) = split_tlv(epki);
    let (tag, data, _) = split_tlv(rest);
    assert_eq!(tag, 0x04);
    data.to_vec()
}

#[test]
fn reads_jks_protector_without_null_parameter_and_inside_jceks() {
    let Some(id) = shared_identity() else { return };
    let jks_store = jks::write_with(
        KeystoreKind::Jks,
        &[WriteEntry::PrivateKey {
            alias: "k",
            identity: id,
            key_password: &pw("kp"),
        }],
        &pw("p"),
        0,
        &mut counter_rng(),
    )
    .unwrap();
    let data = jks_protected_data(&jks_store);
    for (magic, with_null) in [(JKS, false), (JCEKS, true), (JCEKS, false)] {
        let mut raw = RawStore::new(magic, 2, 1);
        raw.key("k", &jks_epki(&data, with_null), &[id.leaf()]);
        let store = jks::read(&raw.finish("p"), &pw("p"), &limits()).unwrap();
        let key = key_entry(&store.entries()[0]);
        assert_eq!(key.protection(), &KeyProtection::Jks);
        assert_eq!(key.identity(&pw("kp"), &limits()).unwrap().key(), id.key());
    }
}

#[test]
fn rejects_jks_key_data_shorter_than_40_bytes() {
    let Some(id) = shared_identity() else { return };
    let mut raw = RawStore::new(JKS, 2, 1);
    raw.key("k", &jks_epki(&[0u8; 39], true), &[id.leaf()]);
    let store = jks::read(&raw.finish("p"), &pw("p"), &limits()).unwrap();
    assert_malformed(key_entry(&store.entries()[0]).decrypt(&pw("kp"), &limits()));
}

#[test]
fn keeps_the_last_of_duplicate_aliases_and_warns() {
    let Some(id) = shared_identity() else { return };
    let (_dir, other) = {
        let dir = tempfile::tempdir().unwrap();
        let other = openssl_identity(dir.path(), "other", true);
        (dir, other)
    };
    let mut raw = RawStore::new(JKS, 2, 3);
    raw.trusted("dup", "X.509", id.leaf())
        .trusted("Mixed", "X.509", id.leaf())
        .trusted("dup", "X.509", other.leaf());
    let store = jks::read(&raw.finish("p"), &pw("p"), &limits()).unwrap();
    assert_eq!(store.entries().len(), 2);
    assert_eq!(store.get("dup").unwrap().certificate(), Some(other.leaf()));
    assert!(
        store
            .warnings()
            .iter()
            .any(|w| w.contains("more than once"))
    );
    assert!(
        store
            .warnings()
            .iter()
            .any(|w| w.contains("not lower-case"))
    );
    assert_eq!(store.get("mixed").unwrap().alias(), "Mixed");
}

// ---------------------------------------------------------------------------------------------
// Writing

#[test]
fn round_trips_keys_and_trusted_certificates_in_both_formats() {
    if !have("openssl") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (chained, ca) = openssl_chain(dir.path());
    let rsa = openssl_identity(dir.path(), "rsa", false);
    for kind in [KeystoreKind::Jks, KeystoreKind::Jceks] {
        let entries = [
            WriteEntry::PrivateKey {
                alias: "Web",
                identity: &chained,
                key_password: &pw("key-pass"),
            },
            WriteEntry::Trusted {
                alias: "ca",
                certificate: &ca,
            },
            WriteEntry::PrivateKey {
                alias: "rsa",
                identity: &rsa,
                key_password: &pw("other-key-pass"),
            },
        ];
        let bytes = jks::write(kind, &entries, &pw("store-pass")).unwrap();
        assert_eq!(jks::detect(&bytes), Some(kind));
        let store = jks::read(&bytes, &pw("store-pass"), &limits()).unwrap();
        assert_eq!(store.kind(), kind);
        assert!(store.warnings().is_empty(), "{:?}", store.warnings());
        let aliases: Vec<&str> = store.entries().iter().map(Entry::alias).collect();
        assert_eq!(
            aliases,
            ["web", "ca", "rsa"],
            "lower-cased, in the order given"
        );
        let web = key_entry(&store.entries()[0]);
        let expected = match kind {
            KeystoreKind::Jks => KeyProtection::Jks,
            _ => KeyProtection::PbeWithMd5AndTripleDes {
                iterations: jks::JCEKS_WRITE_ITERATIONS,
            },
        };
        assert_eq!(web.protection(), &expected);
        let back = web.identity(&pw("key-pass"), &limits()).unwrap();
        assert_eq!(back.key(), chained.key());
        assert_eq!(back.chain(), chained.chain());
        let back = key_entry(&store.entries()[2])
            .identity(&pw("other-key-pass"), &limits())
            .unwrap();
        assert_eq!(back.key(), rsa.key());
        assert_eq!(store.entries()[1].certificate(), Some(&ca));
    }
}

#[test]
fn rejects_duplicate_aliases_on_write() {
    let Some(id) = shared_identity() else { return };
    let entries = [
        WriteEntry::Trusted {
            alias: "Same",
            certificate: id.leaf(),
        },
        WriteEntry::Trusted {
            alias: "sAME",
            certificate: id.leaf(),
        },
    ];
    let err = jks::write(KeystoreKind::Jks, &entries, &pw("p")).unwrap_err();
    assert!(matches!(err, Error::Invalid(_)), "{err:?}");
}

#[test]
fn refuses_non_ascii_jceks_key_password_on_write() {
    let Some(id) = shared_identity() else { return };
    let entries = [WriteEntry::PrivateKey {
        alias: "k",
        identity: id,
        key_password: &pw("kéy"),
    }];
    let err = jks::write(KeystoreKind::Jceks, &entries, &pw("p")).unwrap_err();
    assert!(matches!(err, Error::Invalid(_)), "{err:?}");
    // JKS protects with UTF-16, so the same password is fine there.
    jks::write(KeystoreKind::Jks, &entries, &pw("p")).unwrap();
}

#[test]
fn writes_reproducibly_with_injected_salts_and_time() {
    let Some(id) = shared_identity() else { return };
    let entries = [WriteEntry::PrivateKey {
        alias: "k",
        identity: id,
        key_password: &pw("kp"),
    }];
    let a = jks::write_with(
        KeystoreKind::Jks,
        &entries,
        &pw("p"),
        42,
        &mut counter_rng(),
    );
    let b = jks::write_with(
        KeystoreKind::Jks,
        &entries,
        &pw("p"),
        42,
        &mut counter_rng(),
    );
    assert_eq!(a.unwrap(), b.unwrap());
    let c = jks::write(KeystoreKind::Jks, &entries, &pw("p")).unwrap();
    let d = jks::write(KeystoreKind::Jks, &entries, &pw("p")).unwrap();
    assert_ne!(c, d, "salts come from the OS generator");
}

#[test]
fn propagates_salt_source_failure() {
    let Some(id) = shared_identity() else { return };
    let entries = [WriteEntry::PrivateKey {
        alias: "k",
        identity: id,
        key_password: &pw("kp"),
    }];
    let err = jks::write_with(KeystoreKind::Jks, &entries, &pw("p"), 0, &mut |_| {
        Err(Error::Invalid("no randomness".into()))
    })
    .unwrap_err();
    assert_eq!(err.to_string(), "no randomness");
}

// ---------------------------------------------------------------------------------------------
// Java reads what we write

const JAVA_CHECK: &str = r#"
import java.io.FileInputStream;
import java.security.*;
import java.util.Collections;

/** Loads a keystore, then for each (alias, key password) signs with the key and verifies with
 *  the certificate's public key; lists every alias with its kind. */
public class PfxkitCheck {
    public static void main(String[] a) throws Exception {
        KeyStore ks = KeyStore.getInstance(a[1]);
        try (FileInputStream in = new FileInputStream(a[0])) { ks.load(in, a[2].toCharArray()); }
        for (int i = 3; i + 1 < a.length; i += 2) {
            Key k = ks.getKey(a[i], a[i + 1].toCharArray());
            if (!(k instanceof PrivateKey)) throw new Exception("no private key under " + a[i]);
            String alg = k.getAlgorithm().equals("EC") ? "SHA256withECDSA" : "SHA256withRSA";
            Signature s = Signature.getInstance(alg);
            s.initSign((PrivateKey) k);
            s.update("pfxkit".getBytes());
            byte[] sig = s.sign();
            Signature v = Signature.getInstance(alg);
            v.initVerify(ks.getCertificate(a[i]).getPublicKey());
            v.update("pfxkit".getBytes());
            if (!v.verify(sig)) throw new Exception("key and certificate differ under " + a[i]);
            System.out.println("SIGNED " + a[i] + " " + k.getAlgorithm()
                + " chain=" + ks.getCertificateChain(a[i]).length);
        }
        for (String alias : Collections.list(ks.aliases())) {
            System.out.println((ks.isKeyEntry(alias) ? "KEY " : "TRUSTED ") + alias);
        }
    }
}
"#;

/// Compiles the checker once per test into `dir`.
fn compile_java_check(dir: &Path) -> PathBuf {
    let src = dir.join("PfxkitCheck.java");
    std::fs::write(&src, JAVA_CHECK).unwrap();
    run(Command::new("javac").arg("-d").arg(dir).arg(&src));
    dir.to_path_buf()
}

#[test]
fn java_loads_our_jks_and_jceks_and_uses_the_keys() {
    if !(have("openssl") && have("keytool") && have("javac") && have("java")) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let classes = compile_java_check(dir.path());
    let (chained, ca) = openssl_chain(dir.path());
    let rsa = openssl_identity(dir.path(), "rsa", false);
    let cases = [
        (
            KeystoreKind::Jks,
            "störe-pässwörd",
            "kéy-pässwörd",
            "Ünïcode-😀",
        ),
        (KeystoreKind::Jceks, "store-pass", "key-pass-2", "jceks-Key"),
    ];
    for (kind, store_pw, key_pw, alias) in cases {
        let bytes = jks::write(
            kind,
            &[
                WriteEntry::PrivateKey {
                    alias,
                    identity: &chained,
                    key_password: &pw(key_pw),
                },
                WriteEntry::PrivateKey {
                    alias: "rsa",
                    identity: &rsa,
                    key_password: &pw(second_key_password(key_pw)),
                },
                WriteEntry::Trusted {
                    alias: "ca",
                    certificate: &ca,
                },
            ],
            &pw(store_pw),
        )
        .unwrap();
        let file = dir
            .path()
            .join(format!("ours.{}", kind.name().to_lowercase()));
        std::fs::write(&file, &bytes).unwrap();
        let lower = alias.to_lowercase();

        let listing = run(Command::new("keytool")
            .args(["-J-Duser.language=en", "-list", "-storetype", kind.name()])
            .arg("-keystore")
            .arg(&file)
            .args(["-storepass", store_pw]));
        assert!(listing.contains("contains 3 entries"), "{listing}");

        let out = run(Command::new("java")
            .arg("-cp")
            .arg(&classes)
            .arg("PfxkitCheck")
            .arg(&file)
            .args([
                kind.name(),
                store_pw,
                &lower,
                key_pw,
                "rsa",
                second_key_password(key_pw),
            ]));
        assert!(out.contains(&format!("SIGNED {lower} EC chain=2")), "{out}");
        assert!(out.contains("SIGNED rsa RSA chain=1"), "{out}");
        assert!(out.contains("TRUSTED ca"), "{out}");

        let p12 = dir.path().join(format!("{}.p12", kind.name()));
        run(Command::new("keytool")
            .args(["-J-Duser.language=en", "-importkeystore", "-noprompt"])
            .args(["-srcstoretype", kind.name(), "-srckeystore"])
            .arg(&file)
            .args([
                "-srcstorepass",
                store_pw,
                "-srcalias",
                &lower,
                "-srckeypass",
                key_pw,
            ])
            .args([
                "-deststoretype",
                "PKCS12",
                "-deststorepass",
                "dest-pass",
                "-destkeystore",
            ])
            .arg(&p12));
        let listing = run(Command::new("keytool")
            .args([
                "-J-Duser.language=en",
                "-list",
                "-storetype",
                "PKCS12",
                "-keystore",
            ])
            .arg(&p12)
            .args(["-storepass", "dest-pass"]));
        assert!(listing.contains("PrivateKeyEntry"), "{listing}");
    }
}

#[test]
fn java_reads_jks_protected_key_inside_jceks() {
    if !(have("openssl") && have("javac") && have("java")) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let classes = compile_java_check(dir.path());
    let id = openssl_identity(dir.path(), "mixed", true);
    let entries = [WriteEntry::PrivateKey {
        alias: "k",
        identity: &id,
        key_password: &pw("kp"),
    }];
    let jks_bytes =
        jks::write_with(KeystoreKind::Jks, &entries, &pw("p"), 0, &mut counter_rng()).unwrap();
    let mut raw = RawStore::new(JCEKS, 2, 1);
    raw.key(
        "mixed",
        &jks_epki(&jks_protected_data(&jks_bytes), true),
        &[id.leaf()],
    );
    let bytes = raw.finish("store-pass");
    let store = jks::read(&bytes, &pw("store-pass"), &limits()).unwrap();
    key_entry(&store.entries()[0])
        .identity(&pw("kp"), &limits())
        .unwrap();
    let file = dir.path().join("mixed.jceks");
    std::fs::write(&file, &bytes).unwrap();
    let out = run(Command::new("java")
        .arg("-cp")
        .arg(&classes)
        .arg("PfxkitCheck")
        .arg(&file)
        .args(["JCEKS", "store-pass", "mixed", "kp"]));
    assert!(out.contains("SIGNED mixed EC chain=1"), "{out}");
}

/// The second key's password: ASCII when the first is (JCEKS needs ASCII), else not.
fn second_key_password(key_pw: &str) -> &'static str {
    if key_pw.is_ascii() {
        "second-key-pass"
    } else {
        "second-kéy-pass"
    }
}

// ---------------------------------------------------------------------------------------------
// Properties

mod properties {
    use super::*;
    use proptest::prelude::*;

    fn alias_strategy() -> impl Strategy<Value = String> {
        prop_oneof![
            "[A-Za-z0-9._-]{1,16}",
            "\\PC{1,12}",
            proptest::collection::vec(any::<char>(), 1..8).prop_map(|c| c.into_iter().collect()),
            Just("ÜNÏCODE-😀-𝔘".to_string()),
        ]
    }

    fn distinct_lower(aliases: &[String]) -> bool {
        let mut lower: Vec<String> = aliases.iter().map(|a| a.to_lowercase()).collect();
        lower.sort();
        lower.dedup();
        lower.len() == aliases.len()
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 64,
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        #[test]
        fn write_then_read_round_trips_any_aliases(
            aliases in proptest::collection::vec(alias_strategy(), 1..4)
                .prop_filter("aliases distinct once lower-cased", |a| distinct_lower(a)),
            store_pw in "\\PC{0,10}",
        ) {
            let Some(id) = shared_identity() else { return Ok(()) };
            let key_pw = pw("kp");
            let entries: Vec<WriteEntry<'_>> = aliases
                .iter()
                .enumerate()
                .map(|(i, alias)| {
                    if i == 0 {
                        WriteEntry::PrivateKey { alias, identity: id, key_password: &key_pw }
                    } else {
                        WriteEntry::Trusted { alias, certificate: id.leaf() }
                    }
                })
                .collect();
            let bytes = jks::write_with(
                KeystoreKind::Jks, &entries, &pw(&store_pw), 1, &mut counter_rng(),
            ).unwrap();
            let store = jks::read(&bytes, &pw(&store_pw), &limits()).unwrap();
            let read: Vec<String> = store.entries().iter().map(|e| e.alias().to_owned()).collect();
            let expected: Vec<String> = aliases.iter().map(|a| a.to_lowercase()).collect();
            prop_assert_eq!(read, expected);
            for alias in &aliases {
                prop_assert!(store.get(alias).is_some());
            }
            let identity = key_entry(&store.entries()[0]).identity(&key_pw, &limits()).unwrap();
            prop_assert_eq!(identity.key(), id.key());
        }

        #[test]
        fn single_byte_mutations_never_panic(at in any::<prop::sample::Index>(), byte in any::<u8>(),
                                             cut in any::<prop::sample::Index>(), truncate in any::<bool>()) {
            let Some(valid) = mutation_base() else { return Ok(()) };
            for base in valid {
                let mut bytes = base.clone();
                let i = at.index(bytes.len());
                bytes[i] = byte;
                if truncate {
                    bytes.truncate(cut.index(bytes.len()));
                }
                let _ = jks::read(&bytes, &pw("p"), &limits());
                if let Ok(store) = jks::read_unverified(&bytes, &limits()) {
                    for entry in store.entries() {
                        if let Entry::PrivateKey(k) = entry {
                            let _ = k.identity(&pw("kp"), &limits());
                        }
                    }
                }
            }
        }
    }

    /// A JKS and a JCEKS store holding a key entry and a trusted entry. The JCEKS key is JKS-
    /// protected (valid, and cheap to try on every mutation).
    fn mutation_base() -> Option<&'static [Vec<u8>]> {
        static BASE: OnceLock<Option<Vec<Vec<u8>>>> = OnceLock::new();
        BASE.get_or_init(|| {
            let id = shared_identity()?;
            let entries = [
                WriteEntry::PrivateKey {
                    alias: "k",
                    identity: id,
                    key_password: &pw("kp"),
                },
                WriteEntry::Trusted {
                    alias: "t",
                    certificate: id.leaf(),
                },
            ];
            let jks_bytes =
                jks::write_with(KeystoreKind::Jks, &entries, &pw("p"), 0, &mut counter_rng())
                    .ok()?;
            let mut raw = RawStore::new(JCEKS, 2, 2);
            raw.key(
                "k",
                &jks_epki(&jks_protected_data(&jks_bytes), false),
                &[id.leaf()],
            )
            .trusted("t", "X.509", id.leaf());
            Some(vec![jks_bytes, raw.finish("p")])
        })
        .as_deref()
    }
}

#[test]
fn refuses_to_decrypt_a_store_of_keys_whose_total_work_exceeds_the_limits() {
    // Each JCEKS key costs two MD5 chains of its iteration count (keytool: hundreds of
    // thousands); one key is bounded by max_iterations, a store of them only by the total.
    let many = jks::read(&common::jceks_key_copies(40), &pw("store-pass"), &limits()).unwrap();
    for result in [
        many.decrypt_keys(&pw("key-pass-2"), &limits()).map(|_| ()),
        many.identities(&pw("key-pass-2"), &limits()).map(|_| ()),
    ] {
        assert!(
            matches!(result, Err(Error::LimitExceeded { .. })),
            "{result:?}"
        );
    }
    let few = jks::read(&common::jceks_key_copies(3), &pw("store-pass"), &limits()).unwrap();
    let keys = few.decrypt_keys(&pw("key-pass-2"), &limits()).unwrap();
    assert_eq!(keys.len(), 3);
    assert!(keys.iter().all(Result::is_ok));
    assert_eq!(
        few.identities(&pw("key-pass-2"), &limits()).unwrap().len(),
        3
    );
    // A wrong key password fails each entry, not the call.
    let wrong = few.decrypt_keys(&pw("nope"), &limits()).unwrap();
    assert!(wrong.iter().all(Result::is_err));
}
