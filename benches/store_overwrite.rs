//! One `add --overwrite` per store type, and where its time goes.
//!
//! For each store (PEM with the key in the same file, PEM with a separate key file, PKCS#12,
//! JKS; one RSA-2048 entry with a two-certificate chain, from `tests/data/p12/`) three numbers:
//!
//! - `full`: `StoreAdapter::add` with overwrite, alternating two identities: lock, recovery
//!   check, read, change, encode, commit;
//! - `encode`: the same read + build in memory, no file written: the KDF / cipher / MAC cost
//!   (PEM: PBKDF2 10,000 + AES for the key; PKCS#12: the file's PBKDF2 and MAC KDF, read and
//!   write; JKS: SHA-1 key protector and store digest);
//! - `commit`: `StoreLock::commit` of precomputed bytes: temp file(s), fsync, (journal,) rename,
//!   directory fsync: the durability cost.
//!
//! Run: `cargo bench --bench store_overwrite`. The store lives in a temp dir (often tmpfs, where
//! fsync is nearly free: put `TMPDIR` on the disk that will hold real stores).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    missing_docs
)]

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use pfxkit::jks::{self, KeystoreKind, WriteEntry};
use pfxkit::pkcs12::{self, Builder};
use pfxkit::random::OsRandom;
use pfxkit::store::fs::{StoreLock, WriteOptions};
use pfxkit::store::{self, AddOptions, StoreSpec, StoreType};
use pfxkit::{Identity, Limits, Password};

const STORE_PASSWORD: &str = "store-pass";
const ENTRY_PASSWORD: &str = "entry-pass";

fn identity(name: &str) -> Identity {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/p12")
        .join(name);
    let archive = pkcs12::read(
        &std::fs::read(path).unwrap(),
        Some(&Password::new("pfxkit-pass")),
        &Limits::default(),
    )
    .unwrap();
    archive.identities().remove(0)
}

#[derive(Clone, Copy)]
enum Kind {
    PemSameFile,
    PemSeparateKey,
    Pkcs12,
    Jks,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::PemSameFile => "pem",
            Kind::PemSeparateKey => "pem-separate-key",
            Kind::Pkcs12 => "pkcs12",
            Kind::Jks => "jks",
        }
    }

    fn files(self, dir: &Path) -> Vec<PathBuf> {
        match self {
            Kind::PemSameFile => vec![dir.join("store.pem")],
            Kind::PemSeparateKey => vec![dir.join("cert.pem"), dir.join("key.pem")],
            Kind::Pkcs12 => vec![dir.join("store.p12")],
            Kind::Jks => vec![dir.join("store.jks")],
        }
    }

    fn spec(self, dir: &Path) -> StoreSpec {
        let files = self.files(dir);
        let (store_type, password) = match self {
            Kind::PemSameFile | Kind::PemSeparateKey => (StoreType::Pem, None),
            Kind::Pkcs12 => (StoreType::Pkcs12, Some(Password::new(STORE_PASSWORD))),
            Kind::Jks => (StoreType::Jks, Some(Password::new(STORE_PASSWORD))),
        };
        StoreSpec::new(store_type, &files[0])
            .key_path(files.get(1).cloned())
            .store_password(password)
    }
}

/// The in-memory part of an overwrite, as the store does it, without the commit.
fn encode(kind: Kind, dir: &Path, new: &Identity) -> usize {
    let limits = Limits::default();
    let store_password = Password::new(STORE_PASSWORD);
    let path = &kind.files(dir)[0];
    match kind {
        Kind::PemSameFile | Kind::PemSeparateKey => {
            let scan = pfxkit::pem::scan(&std::fs::read(path).unwrap(), &limits).unwrap();
            let mut text = String::new();
            for cert in new.chain() {
                text.push_str(&pfxkit::pem::encode_certificate(cert));
            }
            let key = pfxkit::pem::encode_private_key(
                new.key(),
                Some(&Password::new(ENTRY_PASSWORD)),
                &mut OsRandom,
            )
            .unwrap();
            scan.certificates.len() + text.len() + key.len()
        }
        Kind::Pkcs12 => {
            let archive = pkcs12::read(
                &std::fs::read(path).unwrap(),
                Some(&store_password),
                &limits,
            )
            .unwrap();
            let (profile, iterations) = pkcs12::detect_profile(&archive);
            let kept = archive.identities().len();
            let bytes = Builder::new(profile)
                .iterations(iterations)
                .allow_empty()
                .identity(new.clone(), Some("web"))
                .build(&store_password, &limits)
                .unwrap();
            kept + bytes.len()
        }
        Kind::Jks => {
            let keystore =
                jks::read(&std::fs::read(path).unwrap(), &store_password, &limits).unwrap();
            let entries = [WriteEntry::PrivateKey {
                alias: "web",
                identity: new,
                key_password: &store_password,
            }];
            keystore.entries().len()
                + jks::write(KeystoreKind::Jks, &entries, &store_password)
                    .unwrap()
                    .len()
        }
    }
}

fn store_overwrite(c: &mut Criterion) {
    let identities = [
        identity("openssl-default.p12"),
        identity("openssl-ec256.p12"),
    ];
    let rsa_only = [identity("openssl-default.p12")];
    let mut group = c.benchmark_group("store_overwrite");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    for kind in [
        Kind::PemSameFile,
        Kind::PemSeparateKey,
        Kind::Pkcs12,
        Kind::Jks,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let dir = dir.path();
        let store = store::open(&kind.spec(dir)).unwrap();
        let entry_password = Password::new(ENTRY_PASSWORD);
        store
            .add(
                Some("web"),
                &identities[0],
                Some(&entry_password),
                AddOptions::new(true, true),
            )
            .unwrap();

        let mut turn = 0;
        group.bench_function(format!("{}/full", kind.name()), |b| {
            b.iter(|| {
                turn ^= 1;
                store
                    .add(
                        Some("web"),
                        &identities[turn],
                        Some(&entry_password),
                        AddOptions::new(true, false),
                    )
                    .unwrap()
            })
        });

        group.bench_function(format!("{}/encode", kind.name()), |b| {
            b.iter(|| black_box(encode(kind, dir, &rsa_only[0])))
        });

        let files = kind.files(dir);
        let contents: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).unwrap()).collect();
        let targets: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
        let commit: Vec<(&Path, &[u8])> = targets
            .iter()
            .zip(&contents)
            .map(|(p, c)| (*p, c.as_slice()))
            .collect();
        let write = WriteOptions::default();
        let lock = StoreLock::acquire(&targets, &write).unwrap();
        group.bench_function(format!("{}/commit", kind.name()), |b| {
            b.iter(|| lock.commit(black_box(&commit), &write).unwrap())
        });
        drop(lock);
    }
    group.finish();
}

criterion_group!(benches, store_overwrite);
criterion_main!(benches);
