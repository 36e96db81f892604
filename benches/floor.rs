#![allow(clippy::expect_used, clippy::unwrap_used, clippy::indexing_slicing)]
//! The floor: opening or writing an archive costs at least its KDFs' compression-function calls.
//! This bench measures one SHA-256 and one SHA-1 compression on this CPU, counts the calls an
//! operation needs from the archive's own parameters, and reports pfxkit, p12-keystore and the
//! `openssl` crate as multiples of that floor, in the same run on the same bytes.
//!
//! Counts (v = block size, c = iterations; a SHA-256 block is 64 bytes):
//! - PBKDF2-HMAC: 2 (keyed HMAC states) + 2 (first U) + 2·(c − 1) per derived block.
//! - PKCS#12 KDF: 1 (diversifier D) + |I|/v (salt and password, each padded to v) + 1 (padding)
//!   + (c − 1) per output block; a 3DES key (24 bytes) from SHA-1 needs two output blocks.
//! - The MAC's HMAC over the AuthenticatedSafe: 2 + ⌈(len + 9)/v⌉ + 1; cipher work (AES, 3DES)
//!   is not counted, so the floor is a little below what any implementation can reach.
//!
//! `cargo bench --bench floor`

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use pfxkit::pkcs12::{self, Builder, EncryptionScheme, MacAlgorithm, Profile};
use pfxkit::{Limits, Password};

const PASSWORD: &str = "pfxkit-pass";

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"))).expect("fixture")
}

fn pbkdf2_calls(c: u64) -> u64 {
    2 + 2 + 2 * (c - 1)
}

fn pkcs12_kdf_calls(salt: usize, password_bmp: usize, c: u64, blocks: u64) -> u64 {
    let pad = |n: usize| n.div_ceil(64) as u64;
    blocks * (1 + pad(salt) + pad(password_bmp) + 1 + (c - 1))
}

/// Compression calls to verify the MAC and decrypt every item of `archive`.
fn calls(archive: &pkcs12::Archive, der_len: usize) -> u64 {
    let pw_bmp = (PASSWORD.len() + 1) * 2;
    let mut n = 0;
    if let Some(mac) = archive.mac() {
        n += match &mac.algorithm {
            MacAlgorithm::Classic {
                salt, iterations, ..
            } => pkcs12_kdf_calls(salt.len(), pw_bmp, u64::from(*iterations), 1),
            MacAlgorithm::Pbmac1 { iterations, .. } => pbkdf2_calls(u64::from(*iterations)),
            _ => 0,
        };
        n += 3 + (der_len as u64 + 9).div_ceil(64);
    }
    let mut schemes: Vec<&EncryptionScheme> = archive
        .keys()
        .iter()
        .filter_map(|k| k.encryption.as_ref())
        .collect();
    // Certificates share one encrypted container: count its scheme once.
    if let Some(s) = archive
        .certificates()
        .iter()
        .find_map(|c| c.encryption.as_ref())
    {
        schemes.push(s);
    }
    for s in schemes {
        n += match s {
            EncryptionScheme::Pbes2 { iterations, .. } => pbkdf2_calls(u64::from(*iterations)),
            EncryptionScheme::Pbes1 {
                salt, iterations, ..
            } => {
                // Key (two SHA-1 blocks for 3DES's 24 bytes) and IV.
                pkcs12_kdf_calls(salt.len(), pw_bmp, u64::from(*iterations), 3)
            }
            _ => 0,
        };
    }
    n
}

/// Median wall time of `f` over `runs` runs.
fn median(runs: usize, mut f: impl FnMut()) -> Duration {
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    times.sort();
    times[runs / 2]
}

fn compress_cost() -> Duration {
    let mut state = [0u32; 8];
    let block = [[7u8; 64]];
    let n = 2_000_000u32;
    let t = Instant::now();
    for _ in 0..n {
        sha2::block_api::compress256(black_box(&mut state), black_box(&block));
    }
    t.elapsed() / n
}

fn floor(c: &mut Criterion) {
    let mut group = c.benchmark_group("compression");
    let block = [[7u8; 64]];
    group.bench_function("sha256", |b| {
        let mut state = [0u32; 8];
        b.iter(|| sha2::block_api::compress256(black_box(&mut state), black_box(&block)))
    });
    group.bench_function("sha1", |b| {
        let mut state = [0u32; 5];
        b.iter(|| sha1::block_api::compress(black_box(&mut state), black_box(&block)))
    });
    group.finish();

    let per_call = compress_cost();
    let limits = Limits::default();
    let pw = Password::new(PASSWORD);

    // Parse an OpenSSL-default archive.
    let bytes = fixture("p12/openssl-default.p12");
    let archive = pkcs12::read(&bytes, Some(&pw), &limits).expect("read");
    let parse_floor = per_call * calls(&archive, bytes.len()) as u32;
    let ours = median(201, || {
        drop(pkcs12::read(black_box(&bytes), Some(&pw), &limits).expect("read"))
    });
    let peer = median(201, || {
        drop(p12_keystore::Pkcs12Archive::from_pkcs12(black_box(&bytes), PASSWORD).expect("p12"))
    });
    let ossl = median(101, || {
        drop(
            openssl::pkcs12::Pkcs12::from_der(black_box(&bytes))
                .expect("der")
                .parse2(PASSWORD)
                .expect("parse"),
        )
    });

    // Build with the modern profile: the same identity.
    let identity = archive.identities().remove(0);
    let build = || {
        Builder::new(Profile::Modern)
            .identity(identity.clone(), Some("leaf"))
            .build(&pw, &limits)
            .expect("build")
    };
    let built = build();
    let built_archive = pkcs12::read(&built, Some(&pw), &limits).expect("read back");
    let build_floor = per_call * calls(&built_archive, built.len()) as u32;
    let ours_build = median(51, || drop(build()));

    println!("\nfloor: one SHA-256 compression = {per_call:?} on this CPU");
    println!("| operation | floor | pfxkit | ratio | p12-keystore | ratio | openssl | ratio |");
    println!("|---|---|---|---|---|---|---|---|");
    let r = |d: Duration, f: Duration| d.as_secs_f64() / f.as_secs_f64();
    println!(
        "| parse openssl-default.p12 | {parse_floor:?} | {ours:?} | {:.2} | {peer:?} | {:.2} | {ossl:?} | {:.2} |",
        r(ours, parse_floor),
        r(peer, parse_floor),
        r(ossl, parse_floor)
    );
    println!(
        "| build modern (10,000 iterations) | {build_floor:?} | {ours_build:?} | {:.2} | see `pkcs12_build` | | see `pkcs12_build` | |",
        r(ours_build, build_floor)
    );
}

criterion_group!(benches, floor);
criterion_main!(benches);
