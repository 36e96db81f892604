//! What the PKCS#12 build benches share (`floor`, `pkcs12_build`): the RSA-2048 identity from
//! `tests/data/pki`, the two work-factor settings spelled for each producer, and the three
//! producers — pfxkit, `p12-keystore` and the `openssl` crate — each building the same archive.
//!
//! Each bench is its own crate and includes this file with
//! `#[path = "common/mod.rs"] mod common;`, so one change to a peer's builder reaches every bench
//! that compares against it.

use std::path::PathBuf;

use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::PKey;
use openssl::stack::Stack;
use openssl::x509::X509;
use p12_keystore::{EncryptionAlgorithm, KeyStore, KeyStoreEntry, PrivateKeyChain};

use pfxkit::pkcs12::{self, Profile};
use pfxkit::{Identity, Limits, Password};

/// The store password of every archive built or parsed.
pub const PASSWORD: &str = "pfxkit-pass";

/// A file of `tests/data/pki`.
fn pki(relative: &str) -> Vec<u8> {
    std::fs::read(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/pki")
            .join(relative),
    )
    .unwrap()
}

/// The RSA-2048 leaf key with leaf, intermediate and root certificates.
pub fn identity() -> Identity {
    let limits = Limits::default();
    let read = |p| pfxkit::pem::read_bundle(&pki(p), None, &limits).unwrap();
    let key = read("keys/leaf-rsa.pem").keys.remove(0);
    let leaf = read("certs/leaf-rsa.pem").certificates.remove(0);
    Identity::new(key, leaf, read("certs/chain.pem").certificates).unwrap()
}

/// One work-factor set, spelled for each producer.
pub struct Setting {
    /// The profile's name, as benches label it.
    pub name: &'static str,
    /// pfxkit's profile.
    pub profile: Profile,
    /// Iterations of every KDF (MAC and encryption).
    pub iterations: u32,
    /// The MAC algorithm's name as pfxkit reports it, for checking what a peer wrote.
    #[allow(
        dead_code,
        reason = "`pkcs12_build` checks each producer's MAC; `floor` counts compressions instead"
    )]
    pub mac_name: &'static str,
    /// `p12-keystore`'s encryption and MAC algorithms.
    pub p12_keystore: (EncryptionAlgorithm, p12_keystore::MacAlgorithm),
    /// The `openssl` crate's key/certificate algorithm and MAC digest.
    pub openssl: (Nid, fn() -> MessageDigest),
}

/// PBES2 (PBKDF2-HMAC-SHA256, AES-256-CBC) for key and certificates, HMAC-SHA256 MAC, 10,000
/// iterations everywhere.
pub const MODERN: Setting = Setting {
    name: "modern",
    profile: Profile::Modern,
    iterations: 10_000,
    mac_name: "hmac-sha256",
    p12_keystore: (
        EncryptionAlgorithm::PbeWithHmacSha256AndAes256,
        p12_keystore::MacAlgorithm::HmacSha256,
    ),
    openssl: (Nid::AES_256_CBC, MessageDigest::sha256),
};

/// PBE-SHA1-3DES for key and certificates, HMAC-SHA1 MAC, 2048 iterations.
pub const LEGACY_3DES: Setting = Setting {
    name: "legacy-3des",
    profile: Profile::Legacy3Des,
    iterations: 2048,
    mac_name: "hmac-sha1",
    p12_keystore: (
        EncryptionAlgorithm::PbeWithShaAnd3KeyTripleDesCbc,
        p12_keystore::MacAlgorithm::HmacSha1,
    ),
    openssl: (Nid::PBE_WITHSHA1AND3_KEY_TRIPLEDES_CBC, MessageDigest::sha1),
};

/// pfxkit's archive of `identity` under the alias `web`.
pub fn pfxkit_build(setting: &Setting, identity: &Identity) -> Vec<u8> {
    pkcs12::Builder::new(setting.profile)
        .identity(identity.clone(), Some("web"))
        .iterations(setting.iterations)
        .build(&Password::new(PASSWORD), &Limits::default())
        .unwrap()
}

/// `identity` as a `p12-keystore` key store with one entry, `web`.
pub fn p12_keystore_input(identity: &Identity) -> KeyStore {
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

/// `p12-keystore`'s archive of `store`.
pub fn p12_keystore_build(setting: &Setting, store: &KeyStore) -> Vec<u8> {
    store
        .writer(PASSWORD)
        .encryption_algorithm(setting.p12_keystore.0)
        .encryption_iterations(setting.iterations)
        .mac_algorithm(setting.p12_keystore.1)
        .mac_iterations(setting.iterations)
        .write()
        .unwrap()
}

/// `identity` as the `openssl` crate's types, decoded once outside the timing.
pub struct OpensslInput {
    key: PKey<openssl::pkey::Private>,
    leaf: X509,
    cas: Vec<X509>,
}

/// Converts `identity` for the `openssl` crate.
pub fn openssl_input(identity: &Identity) -> OpensslInput {
    OpensslInput {
        key: PKey::private_key_from_pkcs8(identity.key().expose_pkcs8_der()).unwrap(),
        leaf: X509::from_der(identity.leaf().der()).unwrap(),
        cas: identity.chain()[1..]
            .iter()
            .map(|c| X509::from_der(c.der()).unwrap())
            .collect(),
    }
}

/// The `openssl` crate's archive (`PKCS12_create`) of `input` under the alias `web`.
pub fn openssl_build(setting: &Setting, input: &OpensslInput) -> Vec<u8> {
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
