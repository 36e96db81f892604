//! The floor: every PKCS#12 parse or build is dominated by its KDFs, and a KDF cannot cost less
//! than the hash compression-function calls its definition requires. This bench measures one
//! SHA-256 and one SHA-1 compression on this CPU, counts the compressions each operation needs
//! (from the archive's own parameters, not hard-coded), and reports pfxkit and its peers
//! (`p12-keystore`, the `openssl` crate) as ratios to that floor, all in the same run on the
//! same bytes.
//!
//! Operations:
//! - `parse/openssl-default`: `tests/data/p12/openssl-default.p12` (MAC: PKCS#12 KDF SHA-256;
//!   key bag and certificate safe: PBES2 PBKDF2-HMAC-SHA256 / AES-256-CBC; 2048 iterations).
//! - `build/modern`: one RSA-2048 identity with leaf + intermediate + root, `Profile::Modern`
//!   (10,000 iterations: MAC PKCS#12 KDF SHA-256 + two PBKDF2-HMAC-SHA256 derivations).
//! - `build/legacy-3des` and `parse/legacy-3des`: the same identity, `Profile::Legacy3Des`
//!   (2048 iterations: PKCS#12 KDF SHA-1 for the MAC key and, per encrypted item, a 24-byte
//!   3DES key — two SHA-1 output blocks — and an 8-byte IV).
//!
//! Compression counts (hash with block size `v` = 64 and output size `u`; `blocks(n)` =
//! ⌈(n + 9) / 64⌉ compressions to hash `n` bytes from the initial value):
//! - HMAC set-up: 2 (the ipad and opad blocks; keys longer than 64 bytes are hashed first);
//!   HMAC of an `m`-byte message under a set-up key: `blocks(64 + m) − 1` inner + 1 outer.
//! - PBKDF2 with `c` iterations and a `dkLen`-byte key: set-up + ⌈dkLen / u⌉ ×
//!   (HMAC(salt ‖ INT(i)) + 2 (c − 1)).
//! - PKCS#12 KDF (RFC 7292 B.2) with `c` iterations for `n` bytes: `I` = salt and BMPString
//!   password each padded to a multiple of `v`; per `u`-byte output block
//!   `blocks(v + |I|) + (c − 1)`.
//! - Classic MAC: PKCS#12 KDF (ID 3, `u` bytes) + HMAC set-up + HMAC over the authSafe content.
//!
//! AES/3DES, RSA and DER work are not in the floor: they are what the 1.15× allowance is for.
//! Wall time (criterion) and process CPU time (all threads, from `/proc/self/stat`) are both
//! reported: pfxkit's parse derives its keys on parallel threads, so its wall ratio can go below
//! 1.0 while its CPU ratio cannot.
//!
//! Run: `cargo bench --bench floor`. The ratio table is printed at the end.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

use std::collections::BTreeMap;
use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use cpu::{cpu_ticks, ticks_per_second};
use criterion::{Bencher, Criterion};

use pfxkit::pkcs12::{self, Archive};
use pfxkit::pkcs12::{EncryptionScheme, HashAlg, MacAlgorithm, Pbes1Cipher, Pbes2Cipher};
use pfxkit::{Limits, Password};

#[path = "common/mod.rs"]
mod common;
#[path = "common/cpu.rs"]
mod cpu;
use common::{
    LEGACY_3DES, MODERN, PASSWORD, identity, openssl_build, openssl_input, p12_keystore_build,
    p12_keystore_input, pfxkit_build,
};
/// Compressions per timed batch when measuring the compression function alone.
const CHAIN: u64 = 1000;

// ---------------------------------------------------------------------------------------------
// Compression counts

#[derive(Clone, Copy, Debug, Default)]
struct Count {
    sha1: u64,
    sha256: u64,
}

impl Count {
    fn add(&mut self, hash: HashAlg, n: u64) {
        match hash {
            HashAlg::Sha1 => self.sha1 += n,
            HashAlg::Sha256 => self.sha256 += n,
            other => panic!(
                "the floor covers SHA-1 and SHA-256 only, not {}",
                other.name()
            ),
        }
    }
}

/// Compressions to hash `len` bytes from the initial value (64-byte blocks, 8-byte length).
fn blocks(len: usize) -> u64 {
    (len + 9).div_ceil(64) as u64
}

fn hmac_setup(key_len: usize) -> u64 {
    2 + if key_len > 64 { blocks(key_len) } else { 0 }
}

fn hmac_message(len: usize) -> u64 {
    blocks(64 + len) - 1 + 1
}

fn pbkdf2(password_len: usize, salt_len: usize, iterations: u32, dk_len: usize, u: usize) -> u64 {
    hmac_setup(password_len)
        + dk_len.div_ceil(u) as u64 * (hmac_message(salt_len + 4) + 2 * (u64::from(iterations) - 1))
}

fn pkcs12_kdf(bmp_len: usize, salt_len: usize, iterations: u32, n: usize, u: usize) -> u64 {
    let i_len = 64 * salt_len.div_ceil(64) + 64 * bmp_len.div_ceil(64);
    n.div_ceil(u) as u64 * (blocks(64 + i_len) + u64::from(iterations) - 1)
}

/// The BMPString password with its two-byte terminator, as the PKCS#12 KDF hashes it.
fn bmp_len(password: &str) -> usize {
    2 * password.encode_utf16().count() + 2
}

fn pbes2_key_len(cipher: Pbes2Cipher) -> usize {
    match cipher {
        Pbes2Cipher::Aes128Cbc => 16,
        Pbes2Cipher::Aes192Cbc | Pbes2Cipher::DesEde3Cbc => 24,
        Pbes2Cipher::Aes256Cbc => 32,
        other => panic!("unexpected cipher {other:?}"),
    }
}

fn pbes1_sizes(cipher: Pbes1Cipher) -> (usize, usize) {
    match cipher {
        Pbes1Cipher::TripleDes => (24, 8),
        Pbes1Cipher::TwoKeyTripleDes | Pbes1Cipher::Rc2_128 => (16, 8),
        Pbes1Cipher::Rc2_40 => (5, 8),
        other => panic!("unexpected cipher {other:?}"),
    }
}

/// The compressions one decryption (or encryption) under `scheme` needs.
fn scheme_count(scheme: &EncryptionScheme, count: &mut Count) {
    match scheme {
        EncryptionScheme::Pbes2 {
            prf,
            salt,
            iterations,
            cipher,
            ..
        } => count.add(
            *prf,
            pbkdf2(
                PASSWORD.len(),
                salt.len(),
                *iterations,
                pbes2_key_len(*cipher),
                prf.output_len(),
            ),
        ),
        EncryptionScheme::Pbes1 {
            cipher,
            salt,
            iterations,
        } => {
            let (key_len, iv_len) = pbes1_sizes(*cipher);
            let kdf = |n| pkcs12_kdf(bmp_len(PASSWORD), salt.len(), *iterations, n, 20);
            count.add(HashAlg::Sha1, kdf(key_len) + kdf(iv_len));
        }
        other => panic!("unexpected scheme {other:?}"),
    }
}

/// The length of the authSafe content the MAC covers:
/// `PFX ::= SEQUENCE { version, authSafe ContentInfo { contentType, [0] OCTET STRING }, … }`.
fn auth_safe_len(der: &[u8]) -> usize {
    // (tag, header length, content length) of the TLV at `at`.
    let tlv = |at: usize| -> (u8, usize, usize) {
        let first = der[at + 1];
        if first < 0x80 {
            (der[at], 2, usize::from(first))
        } else {
            let n = usize::from(first & 0x7f);
            let len = der[at + 2..at + 2 + n]
                .iter()
                .fold(0, |acc, b| (acc << 8) | usize::from(*b));
            (der[at], 2 + n, len)
        }
    };
    let (_, pfx_header, _) = tlv(0);
    let version = pfx_header;
    let (_, vh, vl) = tlv(version);
    let content_info = version + vh + vl;
    let (_, cih, _) = tlv(content_info);
    let oid = content_info + cih;
    let (_, oh, ol) = tlv(oid);
    let explicit = oid + oh + ol;
    let (_, eh, _) = tlv(explicit);
    let (tag, _, len) = tlv(explicit + eh);
    assert_eq!(tag, 0x04, "authSafe content is an OCTET STRING in DER");
    len
}

/// The compressions a full read of `der` (MAC verified, every item decrypted) needs; building
/// the same archive needs the same derivations.
fn archive_count(der: &[u8], archive: &Archive) -> Count {
    let mut count = Count::default();
    match &archive.mac().expect("a MAC").algorithm {
        MacAlgorithm::Classic {
            hash,
            salt,
            iterations,
        } => {
            let u = hash.output_len();
            count.add(
                *hash,
                pkcs12_kdf(bmp_len(PASSWORD), salt.len(), *iterations, u, u)
                    + hmac_setup(u)
                    + hmac_message(auth_safe_len(der)),
            );
        }
        other => panic!("unexpected MAC {other:?}"),
    }
    // One derivation per key bag and one per encrypted certificate container (its bags share
    // one scheme, salt included).
    let mut schemes: Vec<&EncryptionScheme> = Vec::new();
    for scheme in archive
        .keys()
        .iter()
        .filter_map(|k| k.encryption.as_ref())
        .chain(
            archive
                .certificates()
                .iter()
                .filter_map(|c| c.encryption.as_ref()),
        )
    {
        if !schemes.contains(&scheme) {
            schemes.push(scheme);
        }
    }
    for scheme in schemes {
        scheme_count(scheme, &mut count);
    }
    count
}

// ---------------------------------------------------------------------------------------------
// Timing: criterion's wall-clock samples, tallied with process CPU time

#[derive(Default)]
struct Tally {
    iterations: u64,
    wall: Duration,
    cpu_ticks: u64,
}

static TALLIES: Mutex<BTreeMap<String, Tally>> = Mutex::new(BTreeMap::new());

/// Times `op` under criterion and adds every sample (warm-up included) to the tally of `id`.
fn timed<R>(b: &mut Bencher<'_>, id: &str, mut op: impl FnMut() -> R) {
    b.iter_custom(|iterations| {
        let cpu = cpu_ticks();
        let start = Instant::now();
        for _ in 0..iterations {
            black_box(op());
        }
        let wall = start.elapsed();
        let cpu = cpu_ticks() - cpu;
        let mut tallies = TALLIES.lock().unwrap();
        let tally = tallies.entry(id.to_string()).or_default();
        tally.iterations += iterations;
        tally.wall += wall;
        tally.cpu_ticks += cpu;
        wall
    });
}

/// Mean (wall, CPU) seconds per run of `id`; `None` when a filter skipped it.
fn mean(id: &str, ticks_per_second: f64) -> Option<(f64, f64)> {
    let tallies = TALLIES.lock().unwrap();
    let t = tallies.get(id)?;
    let n = t.iterations as f64;
    Some((
        t.wall.as_secs_f64() / n,
        t.cpu_ticks as f64 / ticks_per_second / n,
    ))
}

// ---------------------------------------------------------------------------------------------
// The three readers (the inputs and producers are in `common`)

fn pfxkit_parse(der: &[u8]) -> Archive {
    pkcs12::read(der, Some(&Password::new(PASSWORD)), &Limits::default()).unwrap()
}

fn p12_keystore_parse(der: &[u8]) -> p12_keystore::Pkcs12Archive {
    p12_keystore::Pkcs12Archive::from_pkcs12(der, PASSWORD).unwrap()
}

fn openssl_parse(der: &[u8]) -> openssl::pkcs12::ParsedPkcs12_2 {
    openssl::pkcs12::Pkcs12::from_der(der)
        .unwrap()
        .parse2(PASSWORD)
        .unwrap()
}

// ---------------------------------------------------------------------------------------------
// The run

const PEERS: [&str; 3] = ["pfxkit", "p12-keystore", "openssl"];

/// One operation of the table: its id prefix and its floor in compressions.
struct Operation {
    id: String,
    count: Count,
}

fn compress_sha256_chain() -> [u32; 8] {
    let mut state = [0x6a09e667u32; 8];
    let block = black_box([0x5au8; 64]);
    for _ in 0..CHAIN {
        sha2::block_api::compress256(&mut state, std::slice::from_ref(&block));
    }
    state
}

fn compress_sha1_chain() -> [u32; 5] {
    let mut state = [0x67452301u32; 5];
    let block = black_box([0x5au8; 64]);
    for _ in 0..CHAIN {
        sha1::block_api::compress(&mut state, std::slice::from_ref(&block));
    }
    state
}

fn run(c: &mut Criterion) -> Vec<Operation> {
    let mut operations = Vec::new();

    // One compression, each chained on the previous state as in a KDF's inner loop.
    let mut group = c.benchmark_group("floor/compress-x1000");
    group.bench_function("sha256", |b| {
        timed(b, "compress/sha256", compress_sha256_chain)
    });
    group.bench_function("sha1", |b| timed(b, "compress/sha1", compress_sha1_chain));
    group.finish();

    // Parse: the OpenSSL-default fixture, and pfxkit's legacy-3des output.
    let identity = identity();
    let fixture = std::fs::read(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/p12/openssl-default.p12"),
    )
    .unwrap();
    let legacy = pfxkit_build(&LEGACY_3DES, &identity);
    for (name, der) in [("openssl-default", &fixture), ("legacy-3des", &legacy)] {
        let archive = pfxkit_parse(der);
        assert_eq!(archive.keys().len(), 1);
        assert_eq!(p12_keystore_parse(der).keys.len(), 1);
        assert!(openssl_parse(der).pkey.is_some());
        let id = format!("parse/{name}");
        operations.push(Operation {
            count: archive_count(der, &archive),
            id: id.clone(),
        });
        let mut group = c.benchmark_group(&id);
        group.sample_size(30);
        group.bench_function("pfxkit", |b| {
            timed(b, &format!("{id}/pfxkit"), || pfxkit_parse(der))
        });
        group.bench_function("p12-keystore", |b| {
            timed(b, &format!("{id}/p12-keystore"), || p12_keystore_parse(der))
        });
        group.bench_function("openssl", |b| {
            timed(b, &format!("{id}/openssl"), || openssl_parse(der))
        });
        group.finish();
    }

    // Build: the floor is that of reading the result back (same derivations, same lengths),
    // taken from pfxkit's output; each producer's output is checked to match it.
    let store = p12_keystore_input(&identity);
    let ossl = openssl_input(&identity);
    for setting in [&MODERN, &LEGACY_3DES] {
        let der = pfxkit_build(setting, &identity);
        let count = archive_count(&der, &pfxkit_parse(&der));
        for other in [
            p12_keystore_build(setting, &store),
            openssl_build(setting, &ossl),
        ] {
            let theirs = archive_count(&other, &pfxkit_parse(&other));
            // Salt lengths and content lengths differ slightly between producers; the
            // derivations and iteration counts must not.
            let close = |a: u64, b: u64| a.abs_diff(b) * 100 <= a.max(1);
            assert!(
                close(count.sha1, theirs.sha1) && close(count.sha256, theirs.sha256),
                "{}: {count:?} vs {theirs:?}",
                setting.name
            );
        }
        let id = format!("build/{}", setting.name);
        operations.push(Operation {
            count,
            id: id.clone(),
        });
        let mut group = c.benchmark_group(&id);
        group.sample_size(20);
        group.bench_function("pfxkit", |b| {
            timed(b, &format!("{id}/pfxkit"), || {
                pfxkit_build(setting, &identity)
            })
        });
        group.bench_function("p12-keystore", |b| {
            timed(b, &format!("{id}/p12-keystore"), || {
                p12_keystore_build(setting, &store)
            })
        });
        group.bench_function("openssl", |b| {
            timed(b, &format!("{id}/openssl"), || {
                openssl_build(setting, &ossl)
            })
        });
        group.finish();
    }
    operations
}

fn report(operations: &[Operation]) {
    let tps = ticks_per_second();
    let (Some((sha256_wall, sha256_cpu)), Some((sha1_wall, sha1_cpu))) =
        (mean("compress/sha256", tps), mean("compress/sha1", tps))
    else {
        println!("no ratio table: the compression benches were filtered out");
        return;
    };
    let per = |x: f64| x / CHAIN as f64;
    println!();
    println!(
        "floor: one compression = {:.1} ns SHA-256, {:.1} ns SHA-1 (wall; CPU {:.1} / {:.1} ns)",
        per(sha256_wall) * 1e9,
        per(sha1_wall) * 1e9,
        per(sha256_cpu) * 1e9,
        per(sha1_cpu) * 1e9,
    );
    println!();
    println!(
        "| operation | compressions (SHA-256 + SHA-1) | floor | pfxkit wall | pfxkit CPU | \
         p12-keystore wall | openssl wall |"
    );
    println!("|---|---|---|---|---|---|---|");
    for op in operations {
        let floor_wall =
            op.count.sha256 as f64 * per(sha256_wall) + op.count.sha1 as f64 * per(sha1_wall);
        let floor_cpu =
            op.count.sha256 as f64 * per(sha256_cpu) + op.count.sha1 as f64 * per(sha1_cpu);
        let cells: Vec<String> = PEERS
            .iter()
            .map(|peer| {
                let Some((wall, cpu)) = mean(&format!("{}/{peer}", op.id), tps) else {
                    return if *peer == "pfxkit" { "- | -" } else { "-" }.to_string();
                };
                let ratio = format!("{:.2}× ({:.2} ms)", wall / floor_wall, wall * 1e3);
                if *peer == "pfxkit" {
                    format!("{ratio} | {:.2}×", cpu / floor_cpu)
                } else {
                    ratio
                }
            })
            .collect();
        println!(
            "| {} | {} + {} | {:.2} ms | {} |",
            op.id,
            op.count.sha256,
            op.count.sha1,
            floor_wall * 1e3,
            cells.join(" | ")
        );
    }
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    let operations = run(&mut criterion);
    criterion.final_summary();
    report(&operations);
}
