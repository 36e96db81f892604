//! The most CPU a hostile file can command under the default `Limits`: one file per kind of
//! expensive work, each built to stay just inside `Limits::max_work` (so that all of its work
//! is done, none refused), read by pfxkit. Issue #8: "under default Limits, no input may take
//! more than ~1 s of CPU".
//!
//! The measurement is process CPU time (user + system, every thread; `/proc/self/stat`, 10 ms
//! ticks) per read, returned to criterion through `iter_custom`, so criterion's "time" column
//! here is CPU time, not wall time: parallel key derivation cannot hide work.
//!
//! - `pkcs12-sha512-kdfs`: MAC (PKCS#12 KDF), certificate container and key bag all SHA-512 at
//!   800,000 iterations (24 M work units; 2.4 M iterations, inside the 4 M total), read with a
//!   wrong password: every KDF runs, then the MAC fails.
//! - `pkcs12-3des-bulk`: legacy-3des archive of 9,000 certificates, 9.0 MiB of triple-DES
//!   ciphertext (about 23.6 M units), read with its password.
//! - `pkcs12-ed448-proofs`: 1,500 plain Ed448 keys and their certificate: one scalar
//!   multiplication per key (24 M units).
//! - `pkcs12-dsa8192-proofs`: two DSA keys with an 8192-bit p and private exponent, and a DSA
//!   certificate: one 8192-bit modular exponentiation each (22.4 M units).
//! - `jceks-keys`: a JCEKS store with 15 copies of keytool's key (200,000 MD5 rounds per half
//!   each; 3 M iterations, 24 M units), every key decrypted.
//!
//! Run: `cargo bench --bench worst_case`. Results are in README.md ("Safety limits").
// A bench whose set-up failed would time nothing meaningful: failing loudly is the point.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "common/cpu.rs"]
mod cpu;

use std::time::Duration;

use cpu::{cpu_ticks, ticks_per_second};
use criterion::{Criterion, criterion_group, criterion_main};
use pfxkit::jks;
use pfxkit::pkcs12::{self, Builder, Profile};
use pfxkit::random::DeterministicRandom;
use pfxkit::{Certificate, Error, Identity, Limits, Password, PrivateKey};

use common::{Der, PfxTree, cert_bag, fixture, integer, key_bag, pem_der, plain_pfx, seq, tlv};

/// openssl-default.p12 with MAC, certificate container and key bag switched to SHA-512 at
/// `iterations` (the paths are those of tests/pkcs12_hostile.rs, which checks them).
fn sha512_kdfs(iterations: i64) -> Vec<u8> {
    let mut tree = PfxTree::parse(&fixture("p12/openssl-default.p12"));
    *tree.mac_data().at_mut(&[2]) = Der::parse(&integer(iterations));
    *tree.mac_data().at_mut(&[0, 1]).value_mut() = vec![0; 64];
    let mut auth_safe = tree.auth_safe();
    *auth_safe.at_mut(&[0, 1, 0, 1, 1, 1, 0, 1, 1]) = Der::parse(&integer(iterations));
    let octets = auth_safe.at_mut(&[1, 1, 0]);
    let mut safe_contents = Der::parse(octets.value());
    *safe_contents.at_mut(&[0, 1, 0, 0, 1, 0, 1, 1]) = Der::parse(&integer(iterations));
    *octets.value_mut() = safe_contents.encode();
    tree.set_auth_safe(&auth_safe);
    let swap = |bytes: Vec<u8>, from: &[u8], to: &[u8]| {
        let mut out = bytes;
        let mut i = 0;
        while i + from.len() <= out.len() {
            if &out[i..i + from.len()] == from {
                out[i..i + from.len()].copy_from_slice(to);
            }
            i += 1;
        }
        out
    };
    let hmac = |last: u8| [0x06, 0x08, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x02, last];
    let sha = |last: u8| {
        [
            0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, last,
        ]
    };
    swap(
        swap(tree.encode(), &hmac(0x09), &hmac(0x0b)),
        &sha(0x01),
        &sha(0x03),
    )
}

/// A legacy-3des archive of one identity and `extra` copies of the root certificate, renamed
/// apart so each is its own bag.
fn triple_des_bulk(extra: usize) -> Vec<u8> {
    let key = PrivateKey::from_pkcs8_der(&pem_der("pki/keys/leaf-rsa.pem")).unwrap();
    let leaf = Certificate::from_der(&pem_der("pki/certs/leaf-rsa.pem")).unwrap();
    let identity = Identity::new(key, leaf, Vec::new()).unwrap();
    let root = Certificate::from_der(&pem_der("pki/certs/root.pem")).unwrap();
    let mut builder = Builder::new(Profile::Legacy3Des)
        .identity(identity, Some("leaf"))
        .random(DeterministicRandom::new(1));
    for _ in 0..extra {
        builder = builder.extra_certificate(root.clone(), None);
    }
    builder.build(&password(), &Limits::default()).unwrap()
}

/// A DSA PKCS#8 key with an 8192-bit p and private exponent (not a real group: the proof's
/// modular exponentiation costs the same).
fn dsa8192_key(seed: u8) -> Vec<u8> {
    let big = |lead: u8| {
        let mut v = vec![lead; 1024];
        v[0] = 0x80 | seed;
        v[1023] |= 1;
        let mut int = vec![0];
        int.extend(v);
        tlv(0x02, &int)
    };
    let q = tlv(0x02, &[0x7f; 32]);
    let params = seq(&[&big(0x5a), &q, &big(0x33)]);
    let dsa_oid = [0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x38, 0x04, 0x01];
    seq(&[
        &integer(0),
        &seq(&[&dsa_oid, &params]),
        &tlv(0x04, &big(0x6c)),
    ])
}

fn password() -> Password {
    Password::new("pfxkit-pass")
}

/// Benchmarks `read` by CPU time per call, after checking that it does its work within the
/// default limits (`expect_ok` false: the read ends in a wrong-password error after its KDFs).
fn cpu_bench(c: &mut Criterion, id: &str, expect_ok: bool, read: impl Fn() -> pfxkit::Result<()>) {
    match read() {
        Ok(()) => assert!(expect_ok, "{id}: expected the read to fail after its work"),
        Err(Error::WrongPassword { .. }) if !expect_ok => {}
        Err(e) => panic!("{id}: {e}"),
    }
    let tps = ticks_per_second();
    c.bench_function(id, |b| {
        b.iter_custom(|iterations| {
            let start = cpu_ticks();
            for _ in 0..iterations {
                let _ = std::hint::black_box(read());
            }
            Duration::from_secs_f64((cpu_ticks() - start) as f64 / tps)
        })
    });
}

fn worst_cases(c: &mut Criterion) {
    let limits = Limits::default();

    let sha512 = sha512_kdfs(800_000);
    cpu_bench(c, "worst/pkcs12-sha512-kdfs", false, || {
        pkcs12::read(&sha512, Some(&password()), &limits).map(|_| ())
    });

    // 8,000 since certificate decoding is charged too (work::certificate).
    let bulk = triple_des_bulk(8_000);
    cpu_bench(c, "worst/pkcs12-3des-bulk", true, || {
        pkcs12::read(&bulk, Some(&password()), &limits).map(|_| ())
    });

    let mut ed448 = vec![key_bag(&pem_der("pki/keys/leaf-ed448.pem")); 1500];
    ed448.push(cert_bag(&pem_der("pki/certs/leaf-ed448.pem")));
    let ed448 = plain_pfx(&ed448);
    cpu_bench(c, "worst/pkcs12-ed448-proofs", true, || {
        pkcs12::read(&ed448, None, &limits).map(|_| ())
    });

    let dsa = plain_pfx(&[
        key_bag(&dsa8192_key(1)),
        key_bag(&dsa8192_key(2)),
        cert_bag(&pem_der("pki/certs/leaf-dsa.pem")),
    ]);
    cpu_bench(c, "worst/pkcs12-dsa8192-proofs", true, || {
        pkcs12::read(&dsa, None, &limits).map(|_| ())
    });

    let jceks = common::jceks_key_copies(15);
    let store = jks::read(&jceks, &Password::new("store-pass"), &limits).unwrap();
    cpu_bench(c, "worst/jceks-keys", true, || {
        let keys = store.decrypt_keys(&Password::new("key-pass-2"), &limits)?;
        assert!(keys.iter().all(Result::is_ok));
        Ok(())
    });
}

criterion_group! {
    name = benches;
    // Each read is up to a second of CPU: few samples, no long warm-up.
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(10));
    targets = worst_cases
}
criterion_main!(benches);
