//! Build → parse round trip of PKCS#12 archives from structured input: every profile, any alias
//! and password string, a chain of 0–2 CA certificates above the leaf and 1–3 iterations. What
//! pfxkit writes it must read back unchanged (key bytes, every certificate, the alias); a
//! mismatch or a panic is a bug. The identities are the fixtures of `tests/data/pki`, embedded so
//! that the target does not depend on the working directory.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use pfxkit::pkcs12::{self, Profile};
use pfxkit::random::DeterministicRandom;
use pfxkit::{Certificate, Identity, Limits, Password, PrivateKey};

const KEYS: [&[u8]; 3] = [
    include_bytes!("../../tests/data/pki/keys/leaf-ec256.pem"),
    include_bytes!("../../tests/data/pki/keys/leaf-ed25519.pem"),
    include_bytes!("../../tests/data/pki/keys/leaf-rsa.pem"),
];
const LEAVES: [&[u8]; 3] = [
    include_bytes!("../../tests/data/pki/certs/leaf-ec256.pem"),
    include_bytes!("../../tests/data/pki/certs/leaf-ed25519.pem"),
    include_bytes!("../../tests/data/pki/certs/leaf-rsa.pem"),
];
const INTERMEDIATE: &[u8] = include_bytes!("../../tests/data/pki/certs/intermediate.pem");
const ROOT: &[u8] = include_bytes!("../../tests/data/pki/certs/root.pem");

#[derive(Debug, Arbitrary)]
struct Input {
    profile: u8,
    identity: u8,
    alias: Option<String>,
    password: String,
    chain_len: u8,
    iterations: u8,
    seed: u64,
}

fn one_cert(pem: &[u8]) -> Certificate {
    let mut bundle = pfxkit::pem::read_bundle(pem, None, &Limits::default()).expect("fixture");
    bundle.certificates.remove(0)
}

fn one_key(pem: &[u8]) -> PrivateKey {
    let mut bundle = pfxkit::pem::read_bundle(pem, None, &Limits::default()).expect("fixture");
    bundle.keys.remove(0)
}

/// Every fixture identity with 0, 1 and 2 CA certificates above the leaf.
fn identities() -> &'static Vec<[Identity; 3]> {
    static IDENTITIES: OnceLock<Vec<[Identity; 3]>> = OnceLock::new();
    IDENTITIES.get_or_init(|| {
        let cas = [one_cert(INTERMEDIATE), one_cert(ROOT)];
        KEYS.iter()
            .zip(LEAVES)
            .map(|(key, leaf)| {
                let (key, leaf) = (one_key(key), one_cert(leaf));
                [0, 1, 2].map(|n| {
                    Identity::new(key.clone(), leaf.clone(), cas[..n].to_vec()).expect("pair")
                })
            })
            .collect()
    })
}

fuzz_target!(|input: Input| {
    let profiles = Profile::all();
    let profile = profiles[usize::from(input.profile) % profiles.len()];
    let all = identities();
    let identity = &all[usize::from(input.identity) % all.len()][usize::from(input.chain_len % 3)];
    let iterations = u32::from(input.iterations % 3) + 1;
    let password = Password::new(input.password.clone());
    let limits = Limits::default();

    let der = pkcs12::Builder::new(profile)
        .identity(identity.clone(), input.alias.as_deref())
        .iterations(iterations)
        .random(DeterministicRandom::new(input.seed))
        .build(&password, &limits)
        .unwrap_or_else(|e| panic!("{profile} build failed: {e}"));
    let archive = pkcs12::read(&der, Some(&password), &limits)
        .unwrap_or_else(|e| panic!("{profile}: cannot read what was written: {e}"));

    let keys = archive.keys();
    assert_eq!(keys.len(), 1, "{profile}: key count");
    assert_eq!(
        keys[0].key.expose_pkcs8_der(),
        identity.key().expose_pkcs8_der(),
        "{profile}: key bytes"
    );
    assert_eq!(
        keys[0].attributes.friendly_name.as_deref(),
        input.alias.as_deref(),
        "{profile}: alias"
    );
    let written: Vec<&[u8]> = identity.chain().iter().map(Certificate::der).collect();
    let read: Vec<&[u8]> = archive
        .certificates()
        .iter()
        .map(|c| c.certificate.der())
        .collect();
    assert_eq!(read, written, "{profile}: certificates");

    let back = archive.identities();
    assert_eq!(back.len(), 1, "{profile}: identity count");
    assert_eq!(back[0].chain(), identity.chain(), "{profile}: chain");
    assert_eq!(
        back[0].alias(),
        input.alias.as_deref(),
        "{profile}: identity alias"
    );
});
