#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
//! Properties of the PKCS#12 writer: whatever [`pkcs12::Builder`] writes, [`pkcs12::read`] gives
//! back unchanged (key bytes, certificates, chain order, aliases), for every profile, random
//! Unicode aliases and passwords (non-BMP characters included), and chains of 0 to 2 CA
//! certificates; output is a function of the seed; iteration counts are bounded by [`Limits`].
//!
//! Inputs are the PEM fixtures under `tests/data/pki` (made by `tests/data/gen.sh`). Archives are
//! built with `.iterations(1)` and a [`DeterministicRandom`] so that hundreds of cases run in
//! seconds and any failure reproduces from proptest's printed inputs.

use std::sync::LazyLock;

use pfxkit::error::LimitKind;
use pfxkit::pkcs12::{self, Profile};
use pfxkit::random::DeterministicRandom;
use pfxkit::{Certificate, Error, Identity, Limits, Password, PrivateKey};
use proptest::prelude::*;
use sha1::{Digest, Sha1};

/// Every leaf key type pfxkit pairs with its certificate.
const KEYS: [&str; 6] = ["rsa", "ec256", "ec384", "ec521", "ed25519", "ed448"];

struct Pki {
    /// (key, leaf) per entry of `KEYS`.
    leaves: Vec<(PrivateKey, Certificate)>,
    intermediate: Certificate,
    root: Certificate,
}

static PKI: LazyLock<Pki> = LazyLock::new(|| {
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/pki");
    let bundle = |relative: String| {
        let bytes = std::fs::read(dir.join(relative)).unwrap();
        pfxkit::pem::read_bundle(&bytes, None, &Limits::default()).unwrap()
    };
    let leaves = KEYS
        .iter()
        .map(|k| {
            (
                bundle(format!("keys/leaf-{k}.pem")).keys.remove(0),
                bundle(format!("certs/leaf-{k}.pem")).certificates.remove(0),
            )
        })
        .collect();
    let mut chain = bundle("certs/chain.pem".into()).certificates;
    let root = chain.pop().unwrap();
    let intermediate = chain.pop().unwrap();
    Pki {
        leaves,
        intermediate,
        root,
    }
});

/// The fixture identity of `KEYS[key]` with `chain_len` CA certificates: none, the
/// intermediate, or the intermediate and the root.
fn identity(key: usize, chain_len: usize) -> Identity {
    let (private, leaf) = PKI.leaves[key].clone();
    let chain = [PKI.intermediate.clone(), PKI.root.clone()][..chain_len].to_vec();
    Identity::new(private, leaf, chain).unwrap()
}

fn profile() -> impl Strategy<Value = Profile> {
    proptest::sample::select(Profile::all())
}

/// Any Unicode scalar values, so supplementary-plane characters (UTF-16 surrogate pairs in a
/// BMPString) turn up often.
fn unicode(len: std::ops::Range<usize>) -> impl Strategy<Value = String> {
    proptest::collection::vec(any::<char>(), len).prop_map(String::from_iter)
}

fn build(
    profile: Profile,
    identity: Identity,
    alias: &str,
    seed: u64,
    password: &Password,
) -> Vec<u8> {
    pkcs12::Builder::new(profile)
        .identity(identity, Some(alias))
        .iterations(1)
        .random(DeterministicRandom::new(seed))
        .build(password, &Limits::default())
        .unwrap()
}

proptest! {
    #[test]
    fn build_then_read_gives_back_the_key_certificates_chain_order_and_alias(
        profile in profile(),
        key in 0..KEYS.len(),
        chain_len in 0..=2usize,
        alias in unicode(1..40),
        password in unicode(0..12),
        seed in any::<u64>(),
    ) {
        let identity = identity(key, chain_len);
        let password = Password::new(password);
        let der = build(profile, identity.clone(), &alias, seed, &password);

        let archive = pkcs12::read(&der, Some(&password), &Limits::default()).unwrap();
        prop_assert_eq!(archive.mac().is_some(), profile != Profile::None);

        // The key bag: the same PKCS#8 bytes, the alias, localKeyId = SHA-1 of the leaf DER.
        let local_key_id = Sha1::digest(identity.leaf().der()).to_vec();
        prop_assert_eq!(archive.keys().len(), 1);
        let key_bag = &archive.keys()[0];
        prop_assert_eq!(key_bag.key.expose_pkcs8_der(), identity.key().expose_pkcs8_der());
        prop_assert_eq!(key_bag.attributes.friendly_name.as_deref(), Some(alias.as_str()));
        prop_assert_eq!(key_bag.attributes.local_key_id.as_ref(), Some(&local_key_id));
        prop_assert_eq!(key_bag.encryption.is_some(), profile != Profile::None);

        // Certificate bags in file order: leaf (with alias and localKeyId), then the chain.
        let written: Vec<&[u8]> = identity.chain().iter().map(Certificate::der).collect();
        let read: Vec<&[u8]> = archive.certificates().iter().map(|c| c.certificate.der()).collect();
        prop_assert_eq!(read, written);
        let leaf_bag = &archive.certificates()[0];
        prop_assert_eq!(leaf_bag.attributes.friendly_name.as_deref(), Some(alias.as_str()));
        prop_assert_eq!(leaf_bag.attributes.local_key_id.as_ref(), Some(&local_key_id));
        for ca in &archive.certificates()[1..] {
            prop_assert_eq!(&ca.attributes.friendly_name, &None);
            prop_assert_eq!(&ca.attributes.local_key_id, &None);
            prop_assert!(!ca.attributes.java_trusted);
        }

        // Paired by proof into the same identity, chain leaf-first.
        let identities = archive.identities();
        prop_assert_eq!(identities.len(), 1);
        prop_assert_eq!(identities[0].chain(), identity.chain());
        prop_assert_eq!(identities[0].key(), identity.key());
        prop_assert_eq!(identities[0].alias(), Some(alias.as_str()));
    }

    #[test]
    fn same_seed_gives_identical_bytes_and_another_seed_other_salts(
        profile in profile(),
        key in 0..KEYS.len(),
        seed in any::<u64>(),
    ) {
        let password = Password::new("pfxkit-pass");
        let first = build(profile, identity(key, 2), "web", seed, &password);
        let again = build(profile, identity(key, 2), "web", seed, &password);
        prop_assert_eq!(&first, &again);
        let other = build(profile, identity(key, 2), "web", seed.wrapping_add(1), &password);
        // The `none` profile draws no salt or IV, so only it is seed-independent.
        prop_assert_eq!(first == other, profile == Profile::None);
    }

    #[test]
    fn iteration_override_beyond_max_iterations_is_limit_exceeded(
        profile in profile().prop_filter("has a KDF", |p| *p != Profile::None),
        excess in 1..=u64::from(u32::MAX) - Limits::default().max_iterations,
    ) {
        let limits = Limits::default();
        let iterations = u32::try_from(limits.max_iterations + excess).unwrap();
        let result = pkcs12::Builder::new(profile)
            .identity(identity(0, 0), Some("web"))
            .iterations(iterations)
            .build(&Password::new("pfxkit-pass"), &limits);
        match result {
            Err(Error::LimitExceeded { limit: LimitKind::Iterations, value, bound }) => {
                prop_assert_eq!(value, u64::from(iterations));
                prop_assert_eq!(bound, limits.max_iterations);
            }
            other => prop_assert!(false, "expected LimitExceeded, got {:?}", other),
        }
    }
}

#[test]
fn iteration_count_at_max_iterations_is_accepted() {
    let mut limits = Limits::default();
    limits.max_iterations = 3;
    let der = pkcs12::Builder::new(Profile::Modern)
        .identity(identity(1, 0), Some("web"))
        .iterations(3)
        .build(&Password::new("p"), &limits)
        .unwrap();
    assert!(pkcs12::read(&der, Some(&Password::new("p")), &limits).is_ok());
}

#[test]
fn profile_default_iterations_are_checked_against_a_lowered_max_iterations() {
    let mut limits = Limits::default();
    limits.max_iterations = 1000;
    for profile in Profile::all().iter().filter(|p| **p != Profile::None) {
        let result = pkcs12::Builder::new(*profile)
            .identity(identity(1, 0), Some("web"))
            .build(&Password::new("p"), &limits);
        assert!(
            matches!(
                result,
                Err(Error::LimitExceeded { limit: LimitKind::Iterations, value, bound: 1000 })
                    if value == u64::from(profile.default_iterations())
            ),
            "{profile}: {result:?}"
        );
    }
}

#[test]
fn zero_iterations_is_invalid_for_every_profile_with_a_kdf() {
    for profile in Profile::all().iter().filter(|p| **p != Profile::None) {
        let result = pkcs12::Builder::new(*profile)
            .identity(identity(1, 0), Some("web"))
            .iterations(0)
            .build(&Password::new("p"), &Limits::default());
        assert!(
            matches!(result, Err(Error::Invalid(_))),
            "{profile}: {result:?}"
        );
    }
}

#[test]
fn none_profile_ignores_the_iteration_count_it_has_no_use_for() {
    for iterations in [0, u32::MAX] {
        let der = pkcs12::Builder::new(Profile::None)
            .identity(identity(1, 0), Some("web"))
            .iterations(iterations)
            .build(&Password::new("p"), &Limits::default())
            .unwrap();
        let archive = pkcs12::read(&der, None, &Limits::default()).unwrap();
        assert!(archive.mac().is_none());
        assert_eq!(archive.identities().len(), 1);
    }
}

#[test]
fn empty_builder_is_invalid() {
    let result =
        pkcs12::Builder::new(Profile::Modern).build(&Password::new("p"), &Limits::default());
    assert!(matches!(result, Err(Error::Invalid(_))), "{result:?}");
}

/// Salt lengths from the spec's "Profiles to write": at least 16 bytes for PBE, 8 for the
/// classic MAC (as OpenSSL, Windows and `cryptography` write), 20 everywhere for `java` (as
/// keytool writes).
#[test]
fn salts_have_the_lengths_each_profile_promises() {
    use pfxkit::pkcs12::{EncryptionScheme, MacAlgorithm};
    for profile in Profile::all() {
        let password = Password::new("p");
        let der = build(*profile, identity(0, 2), "web", 9, &password);
        let archive = pkcs12::read(&der, Some(&password), &Limits::default()).unwrap();
        let (pbe, mac) = match profile {
            Profile::Java => (Some(20), Some(20)),
            Profile::ModernPbmac1 => (Some(16), Some(16)),
            Profile::None => (None, None),
            _ => (Some(16), Some(8)),
        };
        let schemes = archive
            .keys()
            .iter()
            .map(|k| &k.encryption)
            .chain(archive.certificates().iter().map(|c| &c.encryption));
        for scheme in schemes {
            let salt = scheme.as_ref().map(|s| match s {
                EncryptionScheme::Pbes1 { salt, .. } | EncryptionScheme::Pbes2 { salt, .. } => {
                    salt.len()
                }
                other => unreachable!("{other:?}"),
            });
            assert_eq!(salt, pbe, "{profile}");
        }
        let mac_salt = archive.mac().map(|m| match &m.algorithm {
            MacAlgorithm::Classic { salt, .. } | MacAlgorithm::Pbmac1 { salt, .. } => salt.len(),
            other => unreachable!("{other:?}"),
        });
        assert_eq!(mac_salt, mac, "{profile}");
    }
}
