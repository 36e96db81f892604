//! Security issue #13, hostile keys that still cost too much or prove nothing: a DSA private
//! exponent of any length, an RSA private half that does not belong to its modulus. Each test
//! names the threat it guards against; each failed on the code before its fix.
//!
//! Hostile keys are the PEM fixtures under `tests/data/pki` (see `tests/data/gen.sh`) with one
//! field changed through the small DER tree of `tests/common`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use std::time::{Duration, Instant};

use common::{Der, cert_bag, integer, key_bag, pem_der, plain_pfx, tag, tlv};
use pfxkit::cert::Certificate;
use pfxkit::pkcs12;
use pfxkit::{Error, Identity, Limits, PrivateKey};

/// The PKCS#8 DER of a key under `tests/data/pki/keys`, its inner `privateKey` replaced.
fn pkcs8_with_inner(key: &str, edit: impl FnOnce(&[u8]) -> Vec<u8>) -> Vec<u8> {
    let mut info = Der::parse(&pem_der(&format!("pki/keys/{key}.pem")));
    let inner = info.at_mut(&[2]);
    let new = edit(inner.value());
    *inner.value_mut() = new;
    info.encode()
}

/// A MAC-less PFX with the key in a plain keyBag and its certificate.
fn key_and_cert_pfx(pkcs8: &[u8], cert: &str) -> Vec<u8> {
    plain_pfx(&[
        key_bag(pkcs8),
        cert_bag(&pem_der(&format!("pki/certs/{cert}.pem"))),
    ])
}

/// Threat: the DSA private exponent x was never bounded, and the key proof (g^x mod p) costs
/// time in proportion to its length: a 66 KB PKCS#12 cost 15 s of CPU, a 1 MB one over a minute.
/// x must be below q (and q of a real DSA size); the file is refused as malformed at once.
#[test]
fn refuses_dsa_key_with_huge_exponent() {
    // 16 KiB of exponent: about 4 s of modular exponentiation before the fix.
    let huge = tlv(
        tag::INTEGER,
        &[[0x01].as_slice(), &[0x5a; 16 * 1024]].concat(),
    );
    let pkcs8 = pkcs8_with_inner("leaf-dsa", |_| huge);
    let started = Instant::now();
    let result = pkcs12::read(
        &key_and_cert_pfx(&pkcs8, "leaf-dsa"),
        None,
        &Limits::default(),
    );
    assert!(
        matches!(result, Err(Error::Malformed { .. })),
        "{:?}",
        result.map(|a| a.keys().len())
    );
    assert!(started.elapsed() < Duration::from_secs(1));
    // x ≥ q is no DSA key either, however short.
    let pkcs8 = pkcs8_with_inner("leaf-dsa", |_| {
        let params = Der::parse(&pem_der("pki/keys/leaf-dsa.pem"));
        params.at(&[1, 1, 1]).encode()
    });
    assert!(matches!(
        PrivateKey::from_pkcs8_der(&pkcs8),
        Err(Error::Malformed { .. })
    ));
    // The genuine key still reads and pairs.
    let genuine = pkcs12::read(
        &key_and_cert_pfx(&pem_der("pki/keys/leaf-dsa.pem"), "leaf-dsa"),
        None,
        &Limits::default(),
    )
    .unwrap();
    assert_eq!(genuine.identities().len(), 1);
}

/// RSAPrivateKey's fields in order: version, n, e, d, p, q, dP, dQ, qInv.
fn rsa_fields(inner: &[u8]) -> Der {
    Der::parse(inner)
}

/// Threat: the RSA key proof compared n and e only, so a "key" with the certificate's n and e
/// and d = p = q = 1 (or any other wrong private half) was paired, staged by `import` and
/// deployed: it can sign nothing. The key's own consistency (p·q = n, d·e ≡ 1 mod p−1 and q−1,
/// the CRT values) is checked, and such a key is refused as malformed.
#[test]
fn refuses_inconsistent_rsa_key() {
    let one = integer(1);
    type Edit<'a> = (&'a str, &'a dyn Fn(&mut Der));
    let edits: [Edit<'_>; 4] = [
        ("d = p = q = 1", &|k: &mut Der| {
            for i in [3, 4, 5, 6, 7, 8] {
                *k.at_mut(&[i]) = Der::parse(&one);
            }
        }),
        ("d + 2", &|k: &mut Der| {
            let d = k.at_mut(&[3]).value_mut();
            let last = d.len() - 1;
            d[last] = d[last].wrapping_add(2);
        }),
        ("dQ = dP", &|k: &mut Der| {
            let dp = k.at(&[6]).clone();
            *k.at_mut(&[7]) = dp;
        }),
        ("qInv wrong", &|k: &mut Der| {
            *k.at_mut(&[8]) = Der::parse(&integer(3));
        }),
    ];
    for (what, edit) in edits {
        let pkcs8 = pkcs8_with_inner("leaf-rsa", |inner| {
            let mut key = rsa_fields(inner);
            edit(&mut key);
            key.encode()
        });
        let key = PrivateKey::from_pkcs8_der(&pkcs8);
        let leaf = Certificate::from_der(&pem_der("pki/certs/leaf-rsa.pem")).unwrap();
        let identity = key.and_then(|k| Identity::new(k, leaf, Vec::new()));
        assert!(
            matches!(identity, Err(Error::Malformed { .. })),
            "{what}: {identity:?}"
        );
        let read = pkcs12::read(
            &key_and_cert_pfx(&pkcs8, "leaf-rsa"),
            None,
            &Limits::default(),
        );
        assert!(
            matches!(read, Err(Error::Malformed { .. })),
            "{what}: {:?}",
            read.map(|a| a.identities().len())
        );
    }
}

/// The consistency check asks of a CRT exponent what signing needs (it inverts e modulo p−1),
/// so a producer that leaves dP unreduced (dP + (p−1)) is still read; only wrong ones are not.
#[test]
fn accepts_rsa_key_with_unreduced_crt_exponent() {
    use num_bigint::BigUint;
    let pkcs8 = pkcs8_with_inner("leaf-rsa", |inner| {
        let mut key = rsa_fields(inner);
        let p = BigUint::from_bytes_be(key.at(&[4]).value());
        let dp = BigUint::from_bytes_be(key.at(&[6]).value());
        let unreduced = dp + p - 1u8;
        let mut bytes = unreduced.to_bytes_be();
        if bytes[0] & 0x80 != 0 {
            bytes.insert(0, 0);
        }
        *key.at_mut(&[6]) = Der::parse(&tlv(tag::INTEGER, &bytes));
        key.encode()
    });
    let key = PrivateKey::from_pkcs8_der(&pkcs8).unwrap();
    let leaf = Certificate::from_der(&pem_der("pki/certs/leaf-rsa.pem")).unwrap();
    Identity::new(key, leaf, Vec::new()).unwrap();
}
