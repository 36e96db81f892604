//! Writing one PKCS#12 archive (RSA-2048 leaf key, leaf + intermediate + root certificates) with
//! pfxkit and its peers in the same run, at equal work factors:
//!
//! - `modern`: PBES2 (PBKDF2-HMAC-SHA256, AES-256-CBC) for key and certificates, HMAC-SHA256
//!   MAC, 10,000 iterations everywhere.
//! - `legacy-3des`: PBE-SHA1-3DES for key and certificates, HMAC-SHA1 MAC, 2048 iterations.
//!
//! Peers: the `p12-keystore` crate (pure Rust) and the `openssl` crate (`PKCS12_create` of the
//! system OpenSSL). Each producer's output is read back once by pfxkit before timing, so every
//! bench does the same, valid work. Inputs are the PEM fixtures of `tests/data/pki`.
//!
//! Run: `cargo bench --bench pkcs12_build`.
// A bench that measured an archive it could not read back would report a meaningless number:
// failing loudly is the point.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};

use pfxkit::pkcs12::{
    self, EncryptionScheme, HashAlg, MacAlgorithm, Pbes1Cipher, Pbes2Cipher, Profile,
};
use pfxkit::{Limits, Password};

#[path = "common/mod.rs"]
mod common;
use common::{
    LEGACY_3DES, MODERN, PASSWORD, Setting, identity, openssl_build, openssl_input,
    p12_keystore_build, p12_keystore_input, pfxkit_build,
};

/// Every producer must have written a complete archive with the intended algorithms and work
/// factor, so that the timings compare equal work.
fn check(producer: &str, setting: &Setting, der: &[u8]) {
    let what = format!("{producer} {}", setting.name);
    let archive = pkcs12::read(der, Some(&Password::new(PASSWORD)), &Limits::default())
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    let mac = &archive.mac().expect("a MAC").algorithm;
    assert_eq!(mac.name(), setting.mac_name, "{what}");
    assert!(
        matches!(mac, MacAlgorithm::Classic { iterations, .. } if *iterations == setting.iterations),
        "{what}: {mac:?}"
    );
    for scheme in archive
        .keys()
        .iter()
        .map(|k| &k.encryption)
        .chain(archive.certificates().iter().map(|c| &c.encryption))
    {
        let iterations = match scheme {
            Some(EncryptionScheme::Pbes2 {
                prf: HashAlg::Sha256,
                cipher: Pbes2Cipher::Aes256Cbc,
                iterations,
                ..
            }) if setting.profile == Profile::Modern => *iterations,
            Some(EncryptionScheme::Pbes1 {
                cipher: Pbes1Cipher::TripleDes,
                iterations,
                ..
            }) if setting.profile == Profile::Legacy3Des => *iterations,
            other => panic!("{what}: unexpected scheme {other:?}"),
        };
        assert_eq!(iterations, setting.iterations, "{what}");
    }
    let identities = archive.identities();
    assert_eq!(identities.len(), 1, "{what}");
    assert_eq!(identities[0].chain().len(), 3, "{what}");
}

fn bench(c: &mut Criterion) {
    let identity = identity();
    let store = p12_keystore_input(&identity);
    let ossl = openssl_input(&identity);
    for setting in [&MODERN, &LEGACY_3DES] {
        check("pfxkit", setting, &pfxkit_build(setting, &identity));
        check(
            "p12-keystore",
            setting,
            &p12_keystore_build(setting, &store),
        );
        check("openssl", setting, &openssl_build(setting, &ossl));

        let mut group = c.benchmark_group(format!("pkcs12_build/{}", setting.name));
        group.sample_size(30);
        group.bench_function("pfxkit", |b| {
            b.iter(|| pfxkit_build(setting, black_box(&identity)));
        });
        group.bench_function("p12-keystore", |b| {
            b.iter(|| p12_keystore_build(setting, black_box(&store)));
        });
        group.bench_function("openssl", |b| {
            b.iter(|| openssl_build(setting, black_box(&ossl)));
        });
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
