//! Files with thousands of keys and certificates: pairing, chain building and ordering must cost
//! in proportion to the number of keys plus certificates, never their product, and whatever
//! arithmetic remains (one public-key computation per key) is held to `Limits::max_work`.
//!
//! Before pfxkit indexed keys and certificates, each of these files took from minutes to hours
//! (every key × certificate pair proven by a scalar multiplication; every chain step a scan of
//! the pool re-parsing extensions). The tests assert the results; a regression shows as a test
//! that does not finish.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use pfxkit::cert::order_leaf_first;
use pfxkit::error::LimitKind;
use pfxkit::{Certificate, Error, Limits, pkcs12};

use common::{Der, cert_bag, key_bag, pem_der as pem_fixture, plain_pfx, seq, tlv};

const COMMON_NAME: &[u8] = &[0x06, 0x03, 0x55, 0x04, 0x03];

/// `Name ::= SEQUENCE { SET { SEQUENCE { commonName, UTF8String cn } } }`.
fn name(cn: &str) -> Der {
    Der::parse(&seq(&[&tlv(
        0x31,
        &seq(&[COMMON_NAME, &tlv(0x0c, cn.as_bytes())]),
    )]))
}

/// The certificate `template` renamed (issuer, subject) and without extensions. The signature
/// no longer verifies; pfxkit orders chains by names and key identifiers, not signatures.
fn renamed(template: &[u8], subject: &str, issuer: &str) -> Vec<u8> {
    let mut cert = Der::parse(template);
    let tbs = cert.at_mut(&[0]).children_mut();
    // TBSCertificate { [0] version, serial, signature, issuer, validity, subject, spki, [3] ext }
    if tbs.last().map(Der::tag) == Some(0xa3) {
        tbs.pop();
    }
    tbs[3] = name(issuer);
    tbs[5] = name(subject);
    cert.encode()
}

fn subject_cn(cert: &Certificate) -> String {
    cert.subject().trim_start_matches("CN=").to_string()
}

// ----- pairing ------------------------------------------------------------------------------------

/// The Ed25519 leaf certificate with the last byte of its public key changed: a certificate of
/// the key's algorithm that no key in the fixtures matches.
fn unmatched_ed25519_certificate() -> Vec<u8> {
    let mut cert = Der::parse(&pem_fixture("pki/certs/leaf-ed25519.pem"));
    // SubjectPublicKeyInfo { algorithm, BIT STRING key } at TBSCertificate[6].
    let key = cert.at_mut(&[0, 6, 1]).value_mut();
    *key.last_mut().unwrap() ^= 1;
    cert.encode()
}

#[test]
fn pairs_thousands_of_keys_with_thousands_of_certificates_by_lookup() {
    // 3000 Ed25519 keys and 3000 Ed25519 certificates none of them matches, then the one that
    // does: 9 million proofs pairwise, 3001 lookups here.
    let key = pem_fixture("pki/keys/leaf-ed25519.pem");
    let stranger = unmatched_ed25519_certificate();
    let mut bags: Vec<Vec<u8>> = (0..3000).map(|_| key_bag(&key)).collect();
    bags.extend((0..3000).map(|_| cert_bag(&stranger)));
    let archive = pkcs12::read(&plain_pfx(&bags), None, &Limits::default()).unwrap();
    assert_eq!(archive.keys().len(), 3000);
    assert!(archive.pairings().iter().all(Option::is_none));
    assert!(archive.identities().is_empty());

    bags.push(cert_bag(&pem_fixture("pki/certs/leaf-ed25519.pem")));
    let archive = pkcs12::read(&plain_pfx(&bags), None, &Limits::default()).unwrap();
    assert!(archive.pairings().iter().all(|p| *p == Some(3000)));
    assert_eq!(archive.identities().len(), 3000);
}

/// The RSA leaf certificate with its public exponent changed to 3: the key's modulus, but not
/// its public key.
fn rsa_certificate_with_exponent_3() -> Vec<u8> {
    let mut cert = Der::parse(&pem_fixture("pki/certs/leaf-rsa.pem"));
    // SubjectPublicKeyInfo { algorithm, BIT STRING (0 unused bits ‖ RSAPublicKey { n, e }) }.
    let bits = cert.at_mut(&[0, 6, 1]).value_mut();
    let mut rsa = Der::parse(&bits[1..]);
    *rsa.at_mut(&[1]) = Der::parse(&common::integer(3));
    *bits = [vec![0], rsa.encode()].concat();
    cert.encode()
}

#[test]
fn pairs_keys_by_exact_public_key_so_near_misses_cost_nothing() {
    // 3000 RSA keys and 3000 certificates with the same modulus and another exponent: none
    // pairs, and none is even a candidate (each would otherwise be re-checked per key).
    let key = pem_fixture("pki/keys/leaf-rsa.pem");
    let near_miss = rsa_certificate_with_exponent_3();
    let mut bags: Vec<Vec<u8>> = (0..3000).map(|_| key_bag(&key)).collect();
    bags.extend((0..3000).map(|_| cert_bag(&near_miss)));
    let archive = pkcs12::read(&plain_pfx(&bags), None, &Limits::default()).unwrap();
    assert!(archive.pairings().iter().all(Option::is_none));
    bags.push(cert_bag(&pem_fixture("pki/certs/leaf-rsa.pem")));
    let archive = pkcs12::read(&plain_pfx(&bags), None, &Limits::default()).unwrap();
    assert!(archive.pairings().iter().all(|p| *p == Some(3000)));
}

#[test]
fn refuses_key_proofs_beyond_the_work_budget_before_computing_them() {
    // Each Ed448 proof is a scalar multiplication of about 0.6 ms: 2000 of them are over a
    // second, and over the default budget.
    let key = pem_fixture("pki/keys/leaf-ed448.pem");
    let cert = pem_fixture("pki/certs/leaf-ed448.pem");
    let mut bags: Vec<Vec<u8>> = (0..2000).map(|_| key_bag(&key)).collect();
    bags.push(cert_bag(&cert));
    let limits = Limits::default();
    match pkcs12::read(&plain_pfx(&bags), None, &limits) {
        Err(Error::LimitExceeded {
            limit: LimitKind::Work,
            value,
            bound,
        }) => {
            assert!(value > bound && bound == limits.max_work, "{value} {bound}");
        }
        other => panic!("expected LimitExceeded {{ Work }}, got {other:?}"),
    }
    // A hundred are well within it.
    let mut few: Vec<Vec<u8>> = (0..100).map(|_| key_bag(&key)).collect();
    few.push(cert_bag(&cert));
    let archive = pkcs12::read(&plain_pfx(&few), None, &limits).unwrap();
    assert_eq!(archive.identities().len(), 100);
}

// ----- chains -------------------------------------------------------------------------------------

/// `n` certificates `c0 … c(n-1)`, `ci` named `ni` and issued by `n(i+1)`, in reverse order.
fn long_chain(n: usize) -> Vec<Vec<u8>> {
    let template = pem_fixture("pki/certs/intermediate.pem");
    (0..n)
        .rev()
        .map(|i| renamed(&template, &format!("n{i}"), &format!("n{}", i + 1)))
        .collect()
}

#[test]
fn builds_a_key_chain_through_thousands_of_certificates_up_to_max_chain_len() {
    let key = pem_fixture("pki/keys/leaf-ec256.pem");
    let leaf = renamed(&pem_fixture("pki/certs/leaf-ec256.pem"), "leaf", "n0");
    let mut bags = vec![key_bag(&key), cert_bag(&leaf)];
    bags.extend(long_chain(3000).iter().map(|c| cert_bag(c)));
    let bytes = plain_pfx(&bags);

    let mut limits = Limits::default();
    let identities = pkcs12::read(&bytes, None, &limits).unwrap().identities();
    let names: Vec<String> = identities[0].chain().iter().map(subject_cn).collect();
    let expected: Vec<String> = std::iter::once("leaf".to_string())
        .chain((0..limits.max_chain_len).map(|i| format!("n{i}")))
        .collect();
    assert_eq!(names, expected, "leaf, then max_chain_len issuers in order");

    // Raised on purpose, the whole chain is built, one lookup per step.
    limits.max_chain_len = 5000;
    let identities = pkcs12::read(&bytes, None, &limits).unwrap().identities();
    let chain = identities[0].chain();
    assert_eq!(chain.len(), 3001);
    assert_eq!(subject_cn(&chain[3000]), "n2999");
}

#[test]
fn orders_thousands_of_certificates_leaf_first_without_pairwise_comparison() {
    let certs: Vec<Certificate> = long_chain(3000)
        .iter()
        .map(|der| Certificate::from_der(der).unwrap())
        .collect();
    let ordered = order_leaf_first(certs, 16);
    assert_eq!(ordered.len(), 3000, "nothing lost");
    // n0 issued nothing in the set: it is the leaf; its chain follows, then the rest in their
    // original (reverse) order.
    let names: Vec<String> = ordered.iter().map(subject_cn).collect();
    let expected_head: Vec<String> = (0..=16).map(|i| format!("n{i}")).collect();
    assert_eq!(names[..17], expected_head[..]);
    assert_eq!(names[17], "n2999");
    assert_eq!(names[2999], "n17");
}

#[test]
fn chain_prefers_the_issuer_whose_key_identifier_matches() {
    // The real chain (leaf → intermediate → root, with key identifiers) among decoys that
    // share the intermediate's name but have no key identifier: the identified one wins, as
    // before the index.
    let leaf = Certificate::from_der(&pem_fixture("pki/certs/leaf-rsa.pem")).unwrap();
    let intermediate_der = pem_fixture("pki/certs/intermediate.pem");
    let intermediate = Certificate::from_der(&intermediate_der).unwrap();
    let issuer_cn = subject_cn(&intermediate);
    let decoy =
        Certificate::from_der(&renamed(&intermediate_der, &issuer_cn, "Decoy Root")).unwrap();
    let root = Certificate::from_der(&pem_fixture("pki/certs/root.pem")).unwrap();
    // Without the real one, a decoy is taken: it is a candidate by name.
    let decoys = vec![decoy.clone(), root.clone()];
    assert_eq!(pfxkit::cert::chain_from(&leaf, &decoys), vec![0]);
    let pool = vec![decoy.clone(), intermediate, decoy, root];
    assert_eq!(pfxkit::cert::chain_from(&leaf, &pool), vec![1, 3]);
}

// ----- PEM bundles ----------------------------------------------------------------------------------

#[test]
fn refuses_pem_bundle_whose_encrypted_keys_exceed_the_limits_before_decrypting_any() {
    let key = pfxkit::PrivateKey::from_pkcs8_der(&pem_fixture("pki/keys/leaf-ec256.pem")).unwrap();
    let password = pfxkit::Password::new("bundle");
    let block =
        pfxkit::pem::encode_private_key(&key, Some(&password), &mut pfxkit::random::OsRandom)
            .unwrap();
    // 10,000 PBKDF2 iterations each (pfxkit's PEM default): 401 of them exceed the 4,000,000
    // total. A wrong password shows nothing was decrypted: the limit is reported first.
    let many = block.repeat(401);
    let result = pfxkit::pem::read_bundle(
        many.as_bytes(),
        Some(&pfxkit::Password::new("wrong")),
        &Limits::default(),
    );
    assert!(
        matches!(
            result,
            Err(Error::LimitExceeded {
                limit: LimitKind::TotalIterations,
                ..
            })
        ),
        "{result:?}"
    );
    let few = block.repeat(3);
    let bundle =
        pfxkit::pem::read_bundle(few.as_bytes(), Some(&password), &Limits::default()).unwrap();
    assert_eq!(bundle.keys.len(), 3);
}
