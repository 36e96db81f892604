//! Parsing one archive (openssl-default.p12: PBES2/PBKDF2-SHA256/AES-256-CBC, 2048 iterations,
//! HMAC-SHA256 MAC, RSA-2048 key and 3 certificates) with pfxkit and its peers, in the same run
//! on the same bytes: p12-keystore (pure Rust) and the `openssl` crate (OpenSSL's C code).
//! Each parse verifies the MAC and decrypts everything, so the three KDF runs dominate.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use pfxkit::{Limits, Password, pkcs12};

const PASSWORD: &str = "pfxkit-pass";

fn fixture() -> Vec<u8> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/p12/openssl-default.p12"
    );
    std::fs::read(path).expect("fixture")
}

fn parse(c: &mut Criterion) {
    let bytes = fixture();
    let password = Password::new(PASSWORD);
    let limits = Limits::default();

    // Each reader must really read the file before it is timed.
    assert_eq!(
        pkcs12::read(&bytes, Some(&password), &limits)
            .unwrap()
            .keys()
            .len(),
        1
    );
    assert_eq!(
        p12_keystore::Pkcs12Archive::from_pkcs12(&bytes, PASSWORD)
            .unwrap()
            .keys
            .len(),
        1
    );
    assert!(
        openssl::pkcs12::Pkcs12::from_der(&bytes)
            .unwrap()
            .parse2(PASSWORD)
            .unwrap()
            .pkey
            .is_some()
    );

    let mut group = c.benchmark_group("pkcs12_parse/openssl-default");
    group.bench_function("pfxkit", |b| {
        b.iter(|| pkcs12::read(black_box(&bytes), Some(&password), &limits).unwrap())
    });
    group.bench_function("p12-keystore", |b| {
        b.iter(|| p12_keystore::Pkcs12Archive::from_pkcs12(black_box(&bytes), PASSWORD).unwrap())
    });
    group.bench_function("openssl", |b| {
        b.iter(|| {
            openssl::pkcs12::Pkcs12::from_der(black_box(&bytes))
                .unwrap()
                .parse2(PASSWORD)
                .unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, parse);
criterion_main!(benches);
