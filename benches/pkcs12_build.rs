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
use std::path::PathBuf;

use criterion::{Criterion, criterion_group, criterion_main};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::PKey;
use openssl::stack::Stack;
use openssl::x509::X509;
use p12_keystore::{EncryptionAlgorithm, KeyStore, KeyStoreEntry, PrivateKeyChain};

use pfxkit::pkcs12::{
    self, EncryptionScheme, HashAlg, MacAlgorithm, Pbes1Cipher, Pbes2Cipher, Profile,
};
use pfxkit::{Identity, Limits, Password};

const PASSWORD: &str = "pfxkit-pass";

fn pki(relative: &str) -> Vec<u8> {
    std::fs::read(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/pki")
            .join(relative),
    )
    .unwrap()
}

fn identity() -> Identity {
    let limits = Limits::default();
    let key = pfxkit::pem::read_bundle(&pki("keys/leaf-rsa.pem"), None, &limits)
        .unwrap()
        .keys
        .remove(0);
    let leaf = pfxkit::pem::read_bundle(&pki("certs/leaf-rsa.pem"), None, &limits)
        .unwrap()
        .certificates
        .remove(0);
    let chain = pfxkit::pem::read_bundle(&pki("certs/chain.pem"), None, &limits)
        .unwrap()
        .certificates;
    Identity::new(key, leaf, chain).unwrap()
}

/// One work factor set, spelled for each producer.
struct Setting {
    name: &'static str,
    profile: Profile,
    iterations: u32,
    mac_name: &'static str,
    p12_keystore: (EncryptionAlgorithm, p12_keystore::MacAlgorithm),
    openssl: (Nid, fn() -> MessageDigest),
}

const SETTINGS: [Setting; 2] = [
    Setting {
        name: "modern",
        profile: Profile::Modern,
        iterations: 10_000,
        mac_name: "hmac-sha256",
        p12_keystore: (
            EncryptionAlgorithm::PbeWithHmacSha256AndAes256,
            p12_keystore::MacAlgorithm::HmacSha256,
        ),
        openssl: (Nid::AES_256_CBC, MessageDigest::sha256),
    },
    Setting {
        name: "legacy-3des",
        profile: Profile::Legacy3Des,
        iterations: 2048,
        mac_name: "hmac-sha1",
        p12_keystore: (
            EncryptionAlgorithm::PbeWithShaAnd3KeyTripleDesCbc,
            p12_keystore::MacAlgorithm::HmacSha1,
        ),
        openssl: (Nid::PBE_WITHSHA1AND3_KEY_TRIPLEDES_CBC, MessageDigest::sha1),
    },
];

fn pfxkit_build(setting: &Setting, identity: &Identity) -> Vec<u8> {
    pkcs12::Builder::new(setting.profile)
        .identity(identity.clone(), Some("web"))
        .iterations(setting.iterations)
        .build(&Password::new(PASSWORD), &Limits::default())
        .unwrap()
}

fn p12_keystore_build(setting: &Setting, store: &KeyStore) -> Vec<u8> {
    store
        .writer(PASSWORD)
        .encryption_algorithm(setting.p12_keystore.0)
        .encryption_iterations(setting.iterations)
        .mac_algorithm(setting.p12_keystore.1)
        .mac_iterations(setting.iterations)
        .write()
        .unwrap()
}

fn p12_keystore_input(identity: &Identity) -> KeyStore {
    let certs = identity
        .chain()
        .iter()
        .map(|c| p12_keystore::Certificate::from_der(c.der()).unwrap());
    let key = p12_keystore::PrivateKey::from_der(identity.key().expose_pkcs8_der()).unwrap();
    let chain = PrivateKeyChain::new(identity.leaf().sha1().to_vec(), key, certs);
    let mut store = KeyStore::new();
    store.add_entry("web", KeyStoreEntry::PrivateKeyChain(chain));
    store
}

struct OpensslInput {
    key: PKey<openssl::pkey::Private>,
    leaf: X509,
    cas: Vec<X509>,
}

fn openssl_input(identity: &Identity) -> OpensslInput {
    OpensslInput {
        key: PKey::private_key_from_pkcs8(identity.key().expose_pkcs8_der()).unwrap(),
        leaf: X509::from_der(identity.leaf().der()).unwrap(),
        cas: identity.chain()[1..]
            .iter()
            .map(|c| X509::from_der(c.der()).unwrap())
            .collect(),
    }
}

fn openssl_build(setting: &Setting, input: &OpensslInput) -> Vec<u8> {
    let mut cas = Stack::new().unwrap();
    for ca in &input.cas {
        cas.push(ca.clone()).unwrap();
    }
    openssl::pkcs12::Pkcs12::builder()
        .name("web")
        .pkey(&input.key)
        .cert(&input.leaf)
        .ca(cas)
        .key_algorithm(setting.openssl.0)
        .cert_algorithm(setting.openssl.0)
        .key_iter(setting.iterations)
        .mac_iter(setting.iterations)
        .mac_md((setting.openssl.1)())
        .build2(PASSWORD)
        .unwrap()
        .to_der()
        .unwrap()
}

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
    for setting in &SETTINGS {
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
