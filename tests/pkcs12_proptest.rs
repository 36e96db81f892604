//! Property: no mutation of a real archive (bit flips, inserted and deleted bytes, truncation)
//! makes `pkcs12::read` panic; and a mutated archive under a MAC is either refused or reads
//! exactly as the original. Fixtures with 1 iteration or none are preferred so that each case
//! costs microseconds; the 2048-iteration default fixture gets fewer cases.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use pfxkit::pkcs12::{self, Archive};
use pfxkit::{Limits, Password};
use proptest::prelude::*;

use common::fixture;

#[derive(Clone, Debug)]
enum Mutation {
    FlipBit { at: usize, bit: u8 },
    Insert { at: usize, byte: u8 },
    Delete { at: usize },
    Truncate { at: usize },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<usize>(), 0u8..8).prop_map(|(at, bit)| Mutation::FlipBit { at, bit }),
        2 => (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Mutation::Insert { at, byte }),
        2 => any::<usize>().prop_map(|at| Mutation::Delete { at }),
        1 => any::<usize>().prop_map(|at| Mutation::Truncate { at }),
    ]
}

/// Applies mutations; positions are taken modulo the current length.
fn mutate(mut bytes: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for m in mutations {
        if bytes.is_empty() {
            break;
        }
        let len = bytes.len();
        match *m {
            Mutation::FlipBit { at, bit } => bytes[at % len] ^= 1 << bit,
            Mutation::Insert { at, byte } => bytes.insert(at % (len + 1), byte),
            Mutation::Delete { at } => {
                bytes.remove(at % len);
            }
            Mutation::Truncate { at } => bytes.truncate(at % len),
        }
    }
    bytes
}

/// What an archive holds, for comparison: certificate and key DERs in file order.
fn contents(archive: &Archive) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    (
        archive
            .certificates()
            .iter()
            .map(|c| c.certificate.der().to_vec())
            .collect(),
        archive
            .keys()
            .iter()
            .map(|k| k.key.expose_pkcs8_der().to_vec())
            .collect(),
    )
}

fn read_both_ways(bytes: &[u8]) -> pfxkit::Result<Archive> {
    let limits = Limits::default();
    // With no password both the empty and the absent password are tried: another code path.
    let _ = pkcs12::read(bytes, None, &limits);
    pkcs12::read(bytes, Some(&Password::new("pfxkit-pass")), &limits)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn mutated_one_iteration_archive_is_refused_or_reads_as_the_original(
        mutations in prop::collection::vec(mutation(), 1..6)
    ) {
        let original = fixture("p12/openssl-iter1.p12");
        let expected = contents(&read_both_ways(&original).unwrap());
        let mutated = mutate(original, &mutations);
        if let Ok(archive) = read_both_ways(&mutated) {
            // The MAC covers every bag, so whatever still verifies is the original content.
            prop_assert_eq!(contents(&archive), expected);
        }
    }

    #[test]
    fn mutated_unprotected_archive_never_panics(
        mutations in prop::collection::vec(mutation(), 1..6)
    ) {
        let mutated = mutate(fixture("p12/openssl-noenc-nomac.p12"), &mutations);
        let _ = read_both_ways(&mutated);
    }

    #[test]
    fn mutated_ber_archive_never_panics(
        mutations in prop::collection::vec(mutation(), 1..6)
    ) {
        // The BER fixture has a MAC with 2048 iterations, but most mutations of its
        // indefinite-length framing are refused before any KDF runs.
        let mutated = mutate(fixture("p12/ber-indefinite.p12"), &mutations);
        let _ = read_both_ways(&mutated);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn mutated_default_archive_never_panics(
        mutations in prop::collection::vec(mutation(), 1..4)
    ) {
        let mutated = mutate(fixture("p12/openssl-default.p12"), &mutations);
        let _ = read_both_ways(&mutated);
    }

    #[test]
    fn mutated_keytool_archive_with_two_keys_never_panics(
        mutations in prop::collection::vec(mutation(), 1..4)
    ) {
        let mutated = mutate(fixture("p12/keytool-two-keys.p12"), &mutations);
        let _ = read_both_ways(&mutated);
    }
}
