//! Reading and writing a Java truststore of ~150 trusted-certificate entries with pfxkit (no
//! Rust peer reads JKS well enough to compare against).
//!
//! The store is the system's own when there is one (`/etc/ssl/certs/java/cacerts`, password
//! `changeit`: Debian's has ~140 real CA certificates of mixed RSA/EC sizes); otherwise 150
//! distinct self-signed P-256 certificates are made with the `openssl` crate at set-up.
//!
//! - `jks/read`: `jks::read` with the store password (digest checked, every certificate parsed).
//! - `jks/read_unverified`: the same without the digest.
//! - `jks/write`: `jks::write_with` of every entry (trusted certificates: no KDF, only the SHA-1
//!   store digest over the body).
//!
//! Run: `cargo bench --bench jks`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use openssl::asn1::Asn1Time;
use openssl::bn::BigNum;
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::PKey;
use openssl::x509::{X509, X509NameBuilder};

use pfxkit::jks::{self, Entry, KeystoreKind, WriteEntry};
use pfxkit::{Certificate, Limits, Password};

const SYSTEM_CACERTS: &str = "/etc/ssl/certs/java/cacerts";
const SYSTEM_PASSWORD: &str = "changeit";
const GENERATED: usize = 150;

/// 150 distinct self-signed certificates, for systems without a Java truststore.
fn generated_certificates() -> Vec<Certificate> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
    (0..GENERATED)
        .map(|i| {
            let key = PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap();
            let mut name = X509NameBuilder::new().unwrap();
            name.append_entry_by_text("CN", &format!("pfxkit bench CA {i}"))
                .unwrap();
            let name = name.build();
            let mut cert = X509::builder().unwrap();
            cert.set_version(2).unwrap();
            let serial = BigNum::from_u32(u32::try_from(i).unwrap() + 1).unwrap();
            cert.set_serial_number(&serial.to_asn1_integer().unwrap())
                .unwrap();
            cert.set_subject_name(&name).unwrap();
            cert.set_issuer_name(&name).unwrap();
            cert.set_pubkey(&key).unwrap();
            cert.set_not_before(&Asn1Time::days_from_now(0).unwrap())
                .unwrap();
            cert.set_not_after(&Asn1Time::days_from_now(3650).unwrap())
                .unwrap();
            cert.sign(&key, MessageDigest::sha256()).unwrap();
            Certificate::from_der(&cert.build().to_der().unwrap()).unwrap()
        })
        .collect()
}

/// (source, aliases and certificates) of the truststore to measure.
fn truststore() -> (String, Vec<(String, Certificate)>) {
    if let Ok(bytes) = std::fs::read(SYSTEM_CACERTS) {
        let store = jks::read(&bytes, &Password::new(SYSTEM_PASSWORD), &Limits::default()).unwrap();
        let entries: Vec<_> = store
            .entries()
            .iter()
            .filter_map(|e| match e {
                Entry::Trusted(t) => Some((t.alias().to_string(), t.certificate().clone())),
                _ => None,
            })
            .collect();
        return (SYSTEM_CACERTS.to_string(), entries);
    }
    let entries = generated_certificates()
        .into_iter()
        .enumerate()
        .map(|(i, c)| (format!("ca-{i}"), c))
        .collect();
    ("generated".to_string(), entries)
}

fn write(entries: &[(String, Certificate)], password: &Password) -> Vec<u8> {
    let items: Vec<WriteEntry<'_>> = entries
        .iter()
        .map(|(alias, certificate)| WriteEntry::Trusted { alias, certificate })
        .collect();
    jks::write_with(
        KeystoreKind::Jks,
        &items,
        password,
        1_700_000_000_000,
        &mut |buf| {
            buf.fill(0x5a);
            Ok(())
        },
    )
    .unwrap()
}

fn bench(c: &mut Criterion) {
    let (source, entries) = truststore();
    let password = Password::new(SYSTEM_PASSWORD);
    let limits = Limits::default();
    let bytes = write(&entries, &password);
    let store = jks::read(&bytes, &password, &limits).unwrap();
    assert_eq!(store.entries().len(), entries.len());
    println!(
        "truststore: {} trusted certificates from {source}, {} bytes",
        entries.len(),
        bytes.len()
    );

    let mut group = c.benchmark_group(format!("jks/{}-trusted", entries.len()));
    group.bench_function("read", |b| {
        b.iter(|| jks::read(black_box(&bytes), &password, &limits).unwrap())
    });
    group.bench_function("read_unverified", |b| {
        b.iter(|| jks::read_unverified(black_box(&bytes), &limits).unwrap())
    });
    group.bench_function("write", |b| {
        b.iter(|| write(black_box(&entries), &password))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
