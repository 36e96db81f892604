//! Helpers shared by the `store_*` integration tests: the four store layouts, fixture
//! identities, independent tools (openssl, keytool/java, Python `cryptography`) and file
//! snapshots.
//!
//! Identities come from `tests/data/p12/openssl-*.p12` (made by openssl, see
//! `tests/data/gen.sh`; password `pfxkit-pass`). Stores are written into fresh temp dirs.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use pfxkit::store::{self, AddOptions, StoreAdapter, StoreSpec, StoreType, fs::WriteOptions};
use pfxkit::{Identity, Limits, Password};
use sha2::{Digest, Sha256};

/// Password of the openssl fixtures in `tests/data/p12/`.
pub const FIXTURE_PASSWORD: &str = "pfxkit-pass";
/// Store password used by every PKCS#12 and JKS store in these tests.
pub const STORE_PASSWORD: &str = "store-pass";
/// Entry password for PEM keys (and JKS keys where a distinct one is tested).
pub const ENTRY_PASSWORD: &str = "entry-pass";

/// A store layout under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// PEM: certificates and the encrypted key in one file.
    PemSameFile,
    /// PEM: certificates in one file, the encrypted key in another.
    PemSeparateKey,
    /// One PKCS#12 file.
    Pkcs12,
    /// One JKS file.
    Jks,
}

impl Kind {
    pub const ALL: [Kind; 4] = [
        Kind::PemSameFile,
        Kind::PemSeparateKey,
        Kind::Pkcs12,
        Kind::Jks,
    ];

    pub fn store_type(self) -> StoreType {
        match self {
            Kind::PemSameFile | Kind::PemSeparateKey => StoreType::Pem,
            Kind::Pkcs12 => StoreType::Pkcs12,
            Kind::Jks => StoreType::Jks,
        }
    }

    pub fn is_pem(self) -> bool {
        self.store_type() == StoreType::Pem
    }

    /// The store's main file in `dir`.
    pub fn path(self, dir: &Path) -> PathBuf {
        dir.join(match self {
            Kind::PemSameFile => "store.pem",
            Kind::PemSeparateKey => "cert.pem",
            Kind::Pkcs12 => "store.p12",
            Kind::Jks => "store.jks",
        })
    }

    /// A PEM store's separate key file in `dir`.
    pub fn key_path(self, dir: &Path) -> Option<PathBuf> {
        (self == Kind::PemSeparateKey).then(|| dir.join("key.pem"))
    }

    /// Every file the store consists of.
    pub fn files(self, dir: &Path) -> Vec<PathBuf> {
        let mut files = vec![self.path(dir)];
        files.extend(self.key_path(dir));
        files
    }

    /// The store's spec with the test store password (PKCS#12, JKS).
    pub fn spec(self, dir: &Path) -> StoreSpec {
        self.spec_with(dir, STORE_PASSWORD, WriteOptions::default())
    }

    pub fn spec_with(self, dir: &Path, store_password: &str, write: WriteOptions) -> StoreSpec {
        let password = (!self.is_pem()).then(|| Password::new(store_password));
        StoreSpec::new(self.store_type(), self.path(dir))
            .key_path(self.key_path(dir))
            .store_password(password)
            .write_options(write)
    }

    pub fn open(self, dir: &Path) -> Box<dyn StoreAdapter> {
        store::open(&self.spec(dir)).unwrap()
    }

    pub fn open_with(self, dir: &Path, write: WriteOptions) -> Box<dyn StoreAdapter> {
        store::open(&self.spec_with(dir, STORE_PASSWORD, write)).unwrap()
    }

    /// The entry password these tests give when adding: required for PEM, left out (so the
    /// store password) for JKS, unused by PKCS#12.
    pub fn entry_password(self) -> Option<Password> {
        self.is_pem().then(|| Password::new(ENTRY_PASSWORD))
    }

    /// `pfxkit store` options naming this store.
    pub fn cli_args(self, dir: &Path) -> Vec<String> {
        let mut args = vec![
            "--type".to_string(),
            self.store_type().name().to_string(),
            "--path".to_string(),
            self.path(dir).display().to_string(),
        ];
        if let Some(k) = self.key_path(dir) {
            args.extend(["--key-path".to_string(), k.display().to_string()]);
        }
        if !self.is_pem() {
            args.extend([
                "--store-password".to_string(),
                format!("pass:{STORE_PASSWORD}"),
            ]);
        }
        if self.is_pem() {
            args.extend([
                "--entry-password".to_string(),
                format!("pass:{ENTRY_PASSWORD}"),
            ]);
        }
        args
    }
}

/// Add options: create the store if missing, never overwrite an alias.
pub fn create() -> AddOptions {
    AddOptions::new(false, true)
}

/// Add options: overwrite the alias in an existing store.
pub fn overwrite() -> AddOptions {
    AddOptions::new(true, false)
}

/// Add options: neither create nor overwrite.
pub fn plain() -> AddOptions {
    AddOptions::new(false, false)
}

pub fn fixture(name: &str) -> PathBuf {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .join("tests/data/p12")
        .join(name)
}

/// The one identity of a fixture PKCS#12 file.
pub fn identity(name: &str) -> Identity {
    let bytes = std::fs::read(fixture(name)).unwrap();
    let archive = pfxkit::pkcs12::read(
        &bytes,
        Some(&Password::new(FIXTURE_PASSWORD)),
        &Limits::default(),
    )
    .unwrap();
    let mut identities = archive.identities();
    assert_eq!(identities.len(), 1, "{name}");
    identities.remove(0)
}

/// RSA-2048 leaf with its two-certificate chain.
pub fn rsa() -> Identity {
    identity("openssl-default.p12")
}

/// P-256 leaf with its chain.
pub fn ec() -> Identity {
    identity("openssl-ec256.p12")
}

/// Ed25519 leaf with its chain.
pub fn ed25519() -> Identity {
    identity("openssl-ed25519.p12")
}

/// Reads the key entry under `alias` straight from the store's files through the codecs (not
/// the adapter): PEM keys are decrypted with the entry password, PKCS#12 with the store
/// password, JKS keys with `jks_key_password` (default: the store password). An `Identity`
/// exists only when the key matches its certificate, so getting one proves the pairing.
pub fn read_identity(
    kind: Kind,
    dir: &Path,
    alias: &str,
    jks_key_password: Option<&str>,
) -> pfxkit::Result<Identity> {
    let limits = Limits::default();
    let store_password = Password::new(STORE_PASSWORD);
    match kind {
        Kind::PemSameFile | Kind::PemSeparateKey => {
            let mut bytes = std::fs::read(kind.path(dir))?;
            if let Some(k) = kind.key_path(dir) {
                bytes.extend(std::fs::read(k)?);
            }
            let bundle =
                pfxkit::pem::read_bundle(&bytes, Some(&Password::new(ENTRY_PASSWORD)), &limits)?;
            let mut identities = bundle.identities(&limits)?;
            assert_eq!(identities.len(), 1, "a pem store holds one key entry");
            Ok(identities.remove(0))
        }
        Kind::Pkcs12 => {
            let bytes = std::fs::read(kind.path(dir))?;
            let archive = pfxkit::pkcs12::read(&bytes, Some(&store_password), &limits)?;
            archive
                .identities()
                .into_iter()
                .find(|i| i.alias() == Some(alias))
                .ok_or_else(|| pfxkit::Error::AliasNotFound {
                    alias: alias.to_string(),
                })
        }
        Kind::Jks => {
            let bytes = std::fs::read(kind.path(dir))?;
            let keystore = pfxkit::jks::read(&bytes, &store_password, &limits)?;
            match keystore.get(alias) {
                Some(pfxkit::jks::Entry::PrivateKey(k)) => k.identity(
                    &Password::new(jks_key_password.unwrap_or(STORE_PASSWORD)),
                    &limits,
                ),
                _ => Err(pfxkit::Error::AliasNotFound {
                    alias: alias.to_string(),
                }),
            }
        }
    }
}

/// File name → SHA-256 of every file in `dir` except lock files (which exist by design and are
/// never removed). Comparing two snapshots proves "byte-for-byte unchanged, nothing left over".
pub fn snapshot(dir: &Path) -> BTreeMap<String, String> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_type().unwrap().is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| !name.ends_with(".lock"))
        .map(|name| {
            let digest = Sha256::digest(std::fs::read(dir.join(&name)).unwrap());
            (name, pfxkit::cert::hex_lower(&digest))
        })
        .collect()
}

/// Names of files in `dir` left by an unfinished write (temporaries, journals).
pub fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".pfxkit-tmp") || n.ends_with(".journal"))
        .collect()
}

pub fn have(tool: &str) -> bool {
    // keytool has no -version; -help exits 0 everywhere.
    let probe = match tool {
        "openssl" => "version",
        "keytool" => "-help",
        "python3" => "--version",
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

/// Runs `cmd`; returns whether it succeeded and its stdout + stderr.
pub fn try_run(cmd: &mut Command) -> (bool, String) {
    let out = cmd.env("LC_ALL", "C.UTF-8").output().expect("spawn");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Runs `cmd` and returns its stdout + stderr; panics with both when it fails.
pub fn run(cmd: &mut Command) -> String {
    let (ok, text) = try_run(cmd);
    assert!(ok, "{cmd:?} failed:\n{text}");
    text
}

/// `AA:BB:…` or `aabb…` as lower-case hex without separators.
pub fn normalise_hex(s: &str) -> String {
    s.chars()
        .filter(char::is_ascii_hexdigit)
        .collect::<String>()
        .to_lowercase()
}

/// SHA-256 of the first certificate openssl finds in `file`.
pub fn openssl_cert_sha256(file: &Path) -> String {
    let out = run(Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(file));
    let line = out.lines().find(|l| l.contains("Fingerprint=")).unwrap();
    normalise_hex(line.split('=').nth(1).unwrap())
}

/// openssl decrypts the key in `key_file` with `password` and checks it against the
/// certificate in `cert_file` (SubjectPublicKeyInfo of both must be identical).
pub fn openssl_key_matches_cert(key_file: &Path, password: &str, cert_file: &Path) {
    let cert_pub = run(Command::new("openssl")
        .args(["x509", "-pubkey", "-noout", "-in"])
        .arg(cert_file));
    let key_pub = run(Command::new("openssl")
        .args(["pkey", "-pubout", "-passin"])
        .arg(format!("pass:{password}"))
        .arg("-in")
        .arg(key_file));
    assert_eq!(
        key_pub.trim(),
        cert_pub.trim(),
        "openssl: the key in {} does not match the certificate in {}",
        key_file.display(),
        cert_file.display()
    );
}

/// A tiny Java program, compiled once, that loads a JKS, recovers the key under an alias with
/// a key password through `KeyStore.getKey`, proves it matches the entry's certificate by a
/// signature, and prints `MATCH <sha256 of the certificate>`. Exit 3 when the key password is
/// wrong (`UnrecoverableKeyException`), 4 when there is no key entry.
const GET_KEY_JAVA: &str = r#"
import java.io.FileInputStream;
import java.security.*;
import java.util.HexFormat;

public class GetKey {
    public static void main(String[] a) throws Exception {
        KeyStore ks = KeyStore.getInstance("JKS");
        try (FileInputStream in = new FileInputStream(a[0])) {
            ks.load(in, a[1].toCharArray());
        }
        Key key;
        try {
            key = ks.getKey(a[2], a[3].toCharArray());
        } catch (UnrecoverableKeyException e) {
            System.out.println("UNRECOVERABLE " + e.getMessage());
            System.exit(3);
            return;
        }
        if (!(key instanceof PrivateKey)) {
            System.out.println("NO KEY ENTRY");
            System.exit(4);
        }
        java.security.cert.Certificate cert = ks.getCertificate(a[2]);
        String alg = switch (key.getAlgorithm()) {
            case "RSA" -> "SHA256withRSA";
            case "EC" -> "SHA256withECDSA";
            default -> key.getAlgorithm();
        };
        byte[] msg = {1, 2, 3};
        Signature s = Signature.getInstance(alg);
        s.initSign((PrivateKey) key);
        s.update(msg);
        byte[] sig = s.sign();
        Signature v = Signature.getInstance(alg);
        v.initVerify(cert.getPublicKey());
        v.update(msg);
        System.out.println((v.verify(sig) ? "MATCH " : "MISMATCH ")
            + HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(cert.getEncoded())));
    }
}
"#;

fn get_key_classes() -> &'static Path {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap().keep();
        let src = dir.join("GetKey.java");
        std::fs::write(&src, GET_KEY_JAVA).unwrap();
        run(Command::new("javac").arg("-d").arg(&dir).arg(&src));
        dir
    })
}

/// Java's `KeyStore.getKey(alias, key_password)` on a JKS: `Ok(sha256 of the certificate)` when
/// the key is recovered and matches it, `Err(output)` when Java cannot recover the key.
pub fn java_get_key(
    store: &Path,
    store_password: &str,
    alias: &str,
    key_password: &str,
) -> Result<String, String> {
    let (ok, text) = try_run(
        Command::new("java")
            .arg("-cp")
            .arg(get_key_classes())
            .arg("GetKey")
            .arg(store)
            .arg(store_password)
            .arg(alias)
            .arg(key_password),
    );
    if !ok {
        return Err(text);
    }
    let line = text.lines().find(|l| l.starts_with("MATCH"));
    assert!(
        line.is_some(),
        "java: key under {alias} does not match its certificate:\n{text}"
    );
    Ok(line
        .unwrap()
        .trim_start_matches("MATCH ")
        .trim()
        .to_string())
}

/// `keytool -list`: alias → entry type (`PrivateKeyEntry`, `trustedCertEntry`).
pub fn keytool_list(store: &Path, store_password: &str) -> BTreeMap<String, String> {
    let out = run(Command::new("keytool")
        .args(["-list", "-storetype", "JKS", "-keystore"])
        .arg(store)
        .args(["-storepass", store_password]));
    // Entries are "alias, Mon D, YYYY, EntryType, " followed by a fingerprint line.
    out.lines()
        .filter_map(|l| {
            let parts: Vec<&str> = l.trim_end().trim_end_matches(',').split(", ").collect();
            match parts.as_slice() {
                [alias, .., kind] if kind.ends_with("Entry") => {
                    Some((alias.to_string(), kind.to_string()))
                }
                _ => None,
            }
        })
        .collect()
}

/// Python `cryptography` reads a PKCS#12 file: every certificate as (friendlyName, SHA-256),
/// and whether the key it returns matches the certificate it returns.
pub fn python_pkcs12(store: &Path, password: &str) -> (Vec<(Option<String>, String)>, bool) {
    const SCRIPT: &str = r#"
import hashlib, json, sys
from cryptography.hazmat.primitives.serialization import pkcs12, Encoding, PublicFormat
p = pkcs12.load_pkcs12(open(sys.argv[1], "rb").read(), sys.argv[2].encode())
certs = ([p.cert] if p.cert else []) + list(p.additional_certs)
spki = lambda k: k.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
print(json.dumps({
    "certs": [[c.friendly_name.decode() if c.friendly_name else None,
               hashlib.sha256(c.certificate.public_bytes(Encoding.DER)).hexdigest()] for c in certs],
    "key_matches": p.key is None or spki(p.key.public_key()) == spki(p.cert.certificate.public_key()),
}))
"#;
    let out = run(Command::new("python3")
        .arg("-c")
        .arg(SCRIPT)
        .arg(store)
        .arg(password));
    let json: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let certs = json["certs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c[0].as_str().map(str::to_string),
                c[1].as_str().unwrap().to_string(),
            )
        })
        .collect();
    (certs, json["key_matches"].as_bool().unwrap())
}

/// `openssl pkcs12` decrypts the whole file (MAC, every bag) and prints it; returns each
/// certificate as (friendlyName, SHA-256) and the number of private keys.
pub fn openssl_pkcs12(store: &Path, password: &str) -> (Vec<(Option<String>, String)>, usize) {
    run(Command::new("openssl")
        .args(["pkcs12", "-info", "-noout", "-passin"])
        .arg(format!("pass:{password}"))
        .arg("-in")
        .arg(store));
    let out = run(Command::new("openssl")
        .args(["pkcs12", "-nodes", "-passin"])
        .arg(format!("pass:{password}"))
        .arg("-in")
        .arg(store));
    let keys = out.matches("-----BEGIN PRIVATE KEY-----").count();
    let scan = pfxkit::pem::scan(out.as_bytes(), &Limits::default()).unwrap();
    let certs = scan
        .certificates
        .into_iter()
        .map(|(c, alias)| (alias, c.sha256_hex()))
        .collect();
    (certs, keys)
}

/// A small deterministic generator (xorshift64*) for delays; no extra dependency.
pub struct XorShift(u64);

impl XorShift {
    pub fn from_time() -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        eprintln!("xorshift seed {seed}");
        XorShift(seed | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform-enough in `0..=bound`.
    pub fn below(&mut self, bound: u64) -> u64 {
        self.next() % (bound + 1)
    }
}
