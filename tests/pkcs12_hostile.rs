//! Hostile input: every malformed, tampered or oversized archive is refused with the error a
//! caller can act on (Malformed, WrongPassword, LimitExceeded, Unsupported), quickly and without
//! a panic. Hostile files are built here from the committed fixtures with a small DER tree
//! (`tests/common`), so each one differs from a real file in exactly the field under test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use pfxkit::error::LimitKind;
use pfxkit::pkcs12::{self, Archive};
use pfxkit::{Error, Limits, Password};

use common::{Der, PfxTree, fixture, header_positions, integer, oid, seq, tag, tlv};

const DEFAULT_P12: &str = "p12/openssl-default.p12";

fn password() -> Password {
    Password::new("pfxkit-pass")
}

fn read(bytes: &[u8]) -> pfxkit::Result<Archive> {
    pkcs12::read(bytes, Some(&password()), &Limits::default())
}

fn expect_malformed(result: pfxkit::Result<Archive>, what: &str) {
    match result {
        Err(Error::Malformed { .. }) => {}
        other => panic!("{what}: expected Malformed, got {other:?}"),
    }
}

fn expect_wrong_password(result: pfxkit::Result<Archive>, what: &str) {
    match result {
        Err(Error::WrongPassword { .. }) => {}
        other => panic!("{what}: expected WrongPassword, got {other:?}"),
    }
}

fn expect_limit(result: pfxkit::Result<Archive>, kind: LimitKind, what: &str) -> u64 {
    match result {
        Err(Error::LimitExceeded { limit, value, .. }) if limit == kind => value,
        other => panic!("{what}: expected LimitExceeded {{ {kind:?} }}, got {other:?}"),
    }
}

/// openssl-default.p12 with its MacData iterations INTEGER replaced by `value`.
fn with_mac_iterations(value: i64) -> Vec<u8> {
    let mut tree = PfxTree::parse(&fixture(DEFAULT_P12));
    *tree.mac_data().at_mut(&[2]) = Der::parse(&integer(value));
    tree.encode()
}

/// openssl-default.p12 with the EncryptedPrivateKeyInfo of its key bag (in the plain `data`
/// ContentInfo, so visible without decryption) changed by `edit`.
fn with_key_bag_epki(edit: impl FnOnce(&mut Der)) -> Vec<u8> {
    let mut tree = PfxTree::parse(&fixture(DEFAULT_P12));
    let mut auth_safe = tree.auth_safe();
    // AuthenticatedSafe[1] = ContentInfo { data, [0] { OCTET STRING SafeContents } }.
    let octets = auth_safe.at_mut(&[1, 1, 0]);
    let mut safe_contents = Der::parse(octets.value());
    // SafeContents[0] = SafeBag { pkcs8ShroudedKeyBag, [0] { EncryptedPrivateKeyInfo }, attrs }.
    edit(safe_contents.at_mut(&[0, 1, 0]));
    *octets.value_mut() = safe_contents.encode();
    tree.set_auth_safe(&auth_safe);
    tree.encode()
}

/// PBKDF2-params of a PBES2 EncryptedPrivateKeyInfo: `[AlgId, PBES2-params, [kdf, [1] params]]`.
const PBKDF2_ITERATIONS: &[usize] = &[0, 1, 0, 1, 1];

#[test]
fn test_helper_reencodes_fixtures_unchanged() {
    for name in [
        DEFAULT_P12,
        "p12/openssl-nomac.p12",
        "p12/keytool-two-keys.p12",
    ] {
        let bytes = fixture(name);
        assert_eq!(PfxTree::parse(&bytes).encode(), bytes, "{name}");
    }
}

// ----- truncation, trailing data, huge lengths ------------------------------------------------

#[test]
fn rejects_truncation_at_every_offset_as_malformed() {
    for name in [
        DEFAULT_P12,
        "p12/openssl-nomac.p12",
        "p12/ber-indefinite.p12",
        "p12/keytool-two-keys.p12",
    ] {
        let bytes = fixture(name);
        for cut in 0..bytes.len() {
            expect_malformed(read(&bytes[..cut]), &format!("{name} cut at {cut}"));
        }
    }
}

#[test]
fn rejects_trailing_bytes_after_the_pfx_as_malformed() {
    // Zero bytes are Windows' padding and are accepted (tests/corpus.rs); anything else not.
    let mut bytes = fixture(DEFAULT_P12);
    bytes.push(1);
    expect_malformed(read(&bytes), "one trailing byte");
}

#[test]
fn rejects_truncated_mac() {
    // A 31-byte HMAC-SHA256 value cannot be right whatever the password.
    let mut tree = PfxTree::parse(&fixture(DEFAULT_P12));
    tree.mac_data().at_mut(&[0, 1]).value_mut().pop();
    expect_malformed(read(&tree.encode()), "31-byte HMAC-SHA256");
}

#[test]
fn rejects_huge_declared_lengths_as_malformed() {
    // Lengths beyond anything the input holds, in the outermost header.
    for bytes in [
        vec![0x30, 0x84, 0xff, 0xff, 0xff, 0xff, 0x02, 0x01, 0x03],
        vec![0x30, 0x84, 0x7f, 0xff, 0xff, 0xff, 0x02, 0x01, 0x03],
        vec![
            0x30, 0x88, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02,
        ],
        vec![0x30, 0x89, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0x02],
        vec![0x30, 0xff],
    ] {
        expect_malformed(read(&bytes), &format!("{bytes:02x?}"));
    }
    // And in every visible header of real files without a MAC, or whose MAC-protected
    // content is all parsed before the MAC is checked.
    for name in [
        DEFAULT_P12,
        "p12/openssl-nomac.p12",
        "p12/openssl-noenc-nomac.p12",
    ] {
        for (pos, hostile) in with_each_long_length_maxed(name) {
            match read(&hostile) {
                // A length inside a certificate: that certificate is listed as undecodable
                // and the rest of the archive read, as OpenSSL and cryptography do.
                Ok(archive) if !archive.unparsed_certificates().is_empty() => {}
                other => expect_malformed(other, &format!("{name}: length at byte {pos}")),
            }
        }
    }
}

#[test]
fn rejects_huge_length_inside_mac_protected_certificates_as_malformed_or_tampered() {
    // openssl-noenc keeps its certificates in plain `data` under a MAC. A certificate is decoded
    // only after the MAC verified, so a changed length inside one is reported as what it is
    // first seen to be: a MAC mismatch ("wrong password or tampered file"). Both answers are
    // refusals; neither may be Ok, another error kind, or a panic.
    let name = "p12/openssl-noenc.p12";
    for (pos, hostile) in with_each_long_length_maxed(name) {
        match read(&hostile) {
            Err(Error::Malformed { .. } | Error::WrongPassword { .. }) => {}
            other => panic!("{name}: length at byte {pos}: got {other:?}"),
        }
    }
}

/// Copies of a fixture, one per header with a two- or more-byte long-form length (inside the
/// authSafe's OCTET STRING too), with that length set to the largest value of its width: more
/// than any fixture holds.
fn with_each_long_length_maxed(name: &str) -> Vec<(usize, Vec<u8>)> {
    let bytes = fixture(name);
    let out: Vec<(usize, Vec<u8>)> = header_positions(&bytes)
        .into_iter()
        .filter(|pos| bytes[pos + 1] >= 0x82)
        .map(|pos| {
            let n = usize::from(bytes[pos + 1] & 0x7f);
            let mut hostile = bytes.clone();
            hostile[pos + 2..pos + 2 + n].fill(0xff);
            (pos, hostile)
        })
        .collect();
    assert!(
        out.len() >= 8,
        "{name}: only {} long-form headers",
        out.len()
    );
    out
}

// ----- integrity ------------------------------------------------------------------------------

#[test]
fn rejects_bit_flip_in_mac_value_as_wrong_password() {
    for (byte, bit) in [(0, 0), (15, 3), (31, 7)] {
        let mut tree = PfxTree::parse(&fixture(DEFAULT_P12));
        tree.mac_data().at_mut(&[0, 1]).value_mut()[byte] ^= 1 << bit;
        expect_wrong_password(read(&tree.encode()), &format!("MAC byte {byte} bit {bit}"));
    }
}

#[test]
fn rejects_tampered_auth_safe_as_wrong_password() {
    // Flip one bit in the last byte of the authSafe (inside the key bag's attributes): the
    // structure still parses, only the MAC can tell.
    let mut tree = PfxTree::parse(&fixture(DEFAULT_P12));
    let octets = tree.root.at_mut(&[1, 1, 0]).value_mut();
    let last = octets.len() - 1;
    octets[last] ^= 0x01;
    expect_wrong_password(read(&tree.encode()), "authSafe with one bit flipped");
}

#[test]
fn rejects_bit_flip_in_mac_salt_as_wrong_password() {
    let mut tree = PfxTree::parse(&fixture(DEFAULT_P12));
    tree.mac_data().at_mut(&[1]).value_mut()[0] ^= 0x80;
    expect_wrong_password(read(&tree.encode()), "MAC salt with one bit flipped");
}

// ----- iteration counts -----------------------------------------------------------------------

#[test]
fn rejects_mac_iteration_count_of_2_pow_31_minus_1_before_running_the_kdf() {
    let hostile = with_mac_iterations(i64::from(i32::MAX));
    let value = expect_limit(
        read(&hostile),
        LimitKind::Iterations,
        "MAC iterations 2^31-1",
    );
    assert_eq!(value, 2_147_483_647);
    // With a wrong password the answer is the same: the count is refused before the MAC (and
    // its 2^31-1 KDF rounds) is computed, not after it fails to verify.
    let wrong = pkcs12::read(&hostile, Some(&Password::new("x")), &Limits::default());
    expect_limit(wrong, LimitKind::Iterations, "2^31-1 with a wrong password");
    expect_limit(
        pkcs12::read(&hostile, None, &Limits::default()),
        LimitKind::Iterations,
        "2^31-1 with no password",
    );
}

#[test]
fn rejects_mac_iteration_counts_beyond_32_bits() {
    for value in [1 << 32, i64::MAX] {
        let hostile = with_mac_iterations(value);
        expect_limit(read(&hostile), LimitKind::Iterations, &format!("{value}"));
    }
}

#[test]
fn rejects_zero_and_negative_mac_iteration_counts_as_malformed() {
    for value in [0, -1, -2048, i64::from(i32::MIN)] {
        expect_malformed(
            read(&with_mac_iterations(value)),
            &format!("MAC iterations {value}"),
        );
    }
}

#[test]
fn rejects_pbkdf2_iteration_count_of_2_pow_31_minus_1_in_a_key_bag() {
    let hostile = with_key_bag_epki(|epki| {
        *epki.at_mut(PBKDF2_ITERATIONS) = Der::parse(&integer(i64::from(i32::MAX)));
    });
    let wrong = pkcs12::read(&hostile, Some(&Password::new("x")), &Limits::default());
    expect_limit(wrong, LimitKind::Iterations, "PBKDF2 iterations 2^31-1");
}

#[test]
fn rejects_zero_and_negative_pbkdf2_iteration_counts_as_malformed() {
    for value in [0, -1, i64::from(i32::MIN)] {
        let hostile = with_key_bag_epki(|epki| {
            *epki.at_mut(PBKDF2_ITERATIONS) = Der::parse(&integer(value));
        });
        expect_malformed(read(&hostile), &format!("PBKDF2 iterations {value}"));
    }
}

#[test]
fn test_helper_finds_the_pbkdf2_iteration_count() {
    // Guards the path above: in the fixture it is the INTEGER 2048.
    let mut seen = None;
    with_key_bag_epki(|epki| seen = Some(epki.at(PBKDF2_ITERATIONS).clone()));
    assert_eq!(seen, Some(Der::parse(&integer(2048))));
}

#[test]
fn rejects_archive_whose_total_iterations_exceed_the_budget_before_any_kdf() {
    // MAC 2048 + encrypted certificates 2048 + key 2048 = 6144 > 5000.
    let mut limits = Limits::default();
    limits.max_total_iterations = 5000;
    let bytes = fixture(DEFAULT_P12);
    expect_limit(
        pkcs12::read(&bytes, Some(&password()), &limits),
        LimitKind::TotalIterations,
        "budget 5000",
    );
    // A wrong password gives the same answer: the budget is checked before the MAC is.
    expect_limit(
        pkcs12::read(&bytes, Some(&Password::new("wrong")), &limits),
        LimitKind::TotalIterations,
        "budget 5000, wrong password",
    );
    // Exactly enough is enough.
    limits.max_total_iterations = 6144;
    pkcs12::read(&bytes, Some(&password()), &limits).unwrap();
}

#[test]
fn rejects_iteration_count_above_a_lowered_per_kdf_limit() {
    let mut limits = Limits::default();
    limits.max_iterations = 2047;
    let value = expect_limit(
        pkcs12::read(&fixture(DEFAULT_P12), Some(&password()), &limits),
        LimitKind::Iterations,
        "max_iterations 2047",
    );
    assert_eq!(value, 2048);
}

// ----- nesting --------------------------------------------------------------------------------

/// A MAC-less PFX whose single SafeContents nests `depth` safeContentsBags.
fn nested_safe_contents_bags(depth: usize) -> Vec<u8> {
    let mut safe_contents = seq(&[]);
    for _ in 0..depth {
        let bag = seq(&[oid::SAFE_CONTENTS_BAG, &tlv(tag::CONTEXT_0, &safe_contents)]);
        safe_contents = seq(&[&bag]);
    }
    common::pfx(&[common::data_content_info(&safe_contents)], None)
}

#[test]
fn reads_safe_contents_bags_nested_up_to_the_depth_limit() {
    let archive = read(&nested_safe_contents_bags(16)).unwrap();
    assert!(archive.mac().is_none());
    assert!(archive.keys().is_empty() && archive.certificates().is_empty());
}

#[test]
fn rejects_safe_contents_bags_nested_deeper_than_the_limit() {
    for depth in [17, 100, 10_000] {
        expect_limit(
            read(&nested_safe_contents_bags(depth)),
            LimitKind::NestingDepth,
            &format!("{depth} nested safeContentsBags"),
        );
    }
    let mut limits = Limits::default();
    limits.max_depth = 2;
    expect_limit(
        pkcs12::read(&nested_safe_contents_bags(3), None, &limits),
        LimitKind::NestingDepth,
        "3 nested safeContentsBags with max_depth 2",
    );
}

#[test]
fn rejects_ber_indefinite_nesting_deeper_than_the_limit() {
    for depth in [100, 100_000] {
        let mut sequences = [0x30u8, 0x80].repeat(depth);
        sequences.extend([0u8, 0].repeat(depth));
        expect_limit(
            read(&sequences),
            LimitKind::NestingDepth,
            &format!("{depth} indefinite SEQUENCEs"),
        );
        // Constructed OCTET STRING chunks nest through another path of the normaliser.
        let mut chunks = vec![0x30, 0x80];
        chunks.extend([0x24u8, 0x80].repeat(depth));
        chunks.extend([0u8, 0].repeat(depth + 1));
        expect_limit(
            read(&chunks),
            LimitKind::NestingDepth,
            &format!("{depth} nested constructed OCTET STRINGs"),
        );
    }
}

#[test]
fn rejects_unterminated_ber_indefinite_length_as_malformed() {
    let bytes = fixture("p12/ber-indefinite.p12");
    // Drop the final end-of-contents marker.
    expect_malformed(read(&bytes[..bytes.len() - 2]), "missing final EOC");
}

// ----- other limits ---------------------------------------------------------------------------

#[test]
fn rejects_input_larger_than_the_size_limit() {
    let mut limits = Limits::default();
    limits.max_input_size = 1000;
    let value = expect_limit(
        pkcs12::read(&fixture(DEFAULT_P12), Some(&password()), &limits),
        LimitKind::InputSize,
        "1000-byte input limit",
    );
    assert_eq!(value, 4316);
}

#[test]
fn rejects_more_bags_than_the_entry_limit() {
    // Eleven CRL bags (listed, not interpreted) in one plain SafeContents.
    const CRL_BAG: &[u8] = &[
        0x06, 0x0b, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x0c, 0x0a, 0x01, 0x04,
    ];
    let bag = seq(&[CRL_BAG, &tlv(tag::CONTEXT_0, &[tag::NULL, 0])]);
    let bags: Vec<&[u8]> = std::iter::repeat_n(bag.as_slice(), 11).collect();
    let bytes = common::pfx(&[common::data_content_info(&seq(&bags))], None);
    let mut limits = Limits::default();
    assert_eq!(read(&bytes).unwrap().other_bags().len(), 11);
    limits.max_entries = 10;
    expect_limit(
        pkcs12::read(&bytes, None, &limits),
        LimitKind::EntryCount,
        "11 bags with max_entries 10",
    );
}

#[test]
fn rejects_mac_salt_longer_than_the_limit() {
    let mut tree = PfxTree::parse(&fixture(DEFAULT_P12));
    *tree.mac_data().at_mut(&[1]).value_mut() = vec![0x5a; 1025];
    expect_limit(
        read(&tree.encode()),
        LimitKind::SaltLength,
        "1025-byte salt",
    );
}

// ----- unsupported ----------------------------------------------------------------------------

fn expect_unsupported(result: pfxkit::Result<Archive>, oid: &str, what: &str) {
    match result {
        Err(Error::Unsupported { oid: Some(o), .. }) if o == oid => {}
        other => panic!("{what}: expected Unsupported (OID {oid}), got {other:?}"),
    }
}

#[test]
fn reports_unknown_pbes2_cipher_as_unsupported_with_its_oid() {
    // aes256-CBC (…1.42) becomes …1.127 everywhere; the lengths do not change.
    let bytes = fixture(DEFAULT_P12);
    let mut unknown = oid::AES_256_CBC.to_vec();
    *unknown.last_mut().unwrap() = 0x7f;
    let hostile = replace_all(&bytes, oid::AES_256_CBC, &unknown);
    assert_ne!(hostile, bytes);
    expect_unsupported(
        read(&hostile),
        "2.16.840.1.101.3.4.1.127",
        "unknown PBES2 cipher",
    );
}

#[test]
fn reports_enveloped_data_as_unsupported() {
    let mut tree = PfxTree::parse(&fixture(DEFAULT_P12));
    let mut auth_safe = tree.auth_safe();
    // Replace the encryptedData ContentInfo by an (empty-bodied) envelopedData one.
    auth_safe.children_mut()[0] = Der::parse(&seq(&[
        oid::ENVELOPED_DATA,
        &tlv(tag::CONTEXT_0, &seq(&[&integer(0)])),
    ]));
    tree.set_auth_safe(&auth_safe);
    expect_unsupported(
        read(&tree.encode()),
        "1.2.840.113549.1.7.3",
        "envelopedData",
    );
}

fn replace_all(haystack: &[u8], needle: &[u8], with: &[u8]) -> Vec<u8> {
    assert_eq!(needle.len(), with.len());
    let mut out = haystack.to_vec();
    let mut i = 0;
    while i + needle.len() <= out.len() {
        if &out[i..i + needle.len()] == needle {
            out[i..i + needle.len()].copy_from_slice(with);
            i += needle.len();
        } else {
            i += 1;
        }
    }
    out
}

// ----- private keys whose inner structure is broken -------------------------------------------

/// A MAC-less PFX with one plain keyBag holding `pkcs8`.
fn plain_key_bag(pkcs8: &[u8]) -> Vec<u8> {
    common::plain_pfx(&[common::key_bag(pkcs8)])
}

/// The PKCS#8 DER of a key under `tests/data/pki/keys`, with its inner `privateKey` OCTET STRING
/// content replaced by `edit(old)`.
fn pkcs8_with_inner(key: &str, edit: impl FnOnce(&[u8]) -> Vec<u8>) -> Vec<u8> {
    let pem = pem::parse(fixture(&format!("pki/keys/{key}.pem"))).unwrap();
    let mut info = Der::parse(pem.contents());
    let inner = info.at_mut(&[2]);
    let new = edit(inner.value());
    *inner.value_mut() = new;
    info.encode()
}

#[test]
fn reads_plain_key_bags_of_every_algorithm_built_by_the_test_helper() {
    // Guards the helpers below: unmodified keys read fine.
    for key in [
        "leaf-rsa",
        "leaf-ec256",
        "leaf-ed25519",
        "leaf-ed448",
        "leaf-dsa",
    ] {
        let pkcs8 = pkcs8_with_inner(key, <[u8]>::to_vec);
        let archive = read(&plain_key_bag(&pkcs8)).unwrap_or_else(|e| panic!("{key}: {e}"));
        assert_eq!(archive.keys().len(), 1, "{key}");
    }
}

#[test]
fn rejects_rsa_private_key_without_its_private_fields_as_malformed() {
    // RSAPrivateKey cut down to { version, n, e }: a public key dressed as a private one.
    let pkcs8 = pkcs8_with_inner("leaf-rsa", |inner| {
        let mut key = Der::parse(inner);
        key.children_mut().truncate(3);
        key.encode()
    });
    expect_malformed(read(&plain_key_bag(&pkcs8)), "RSA key without d, p, q…");
}

#[test]
fn rejects_rsa_private_key_with_a_broken_private_exponent_length_as_malformed() {
    let pkcs8 = pkcs8_with_inner("leaf-rsa", |inner| {
        let mut key = inner.to_vec();
        // The fourth INTEGER (privateExponent) starts right after version, n and e.
        let (_, start, _) = common::header(&key, 0);
        let mut pos = start;
        for _ in 0..3 {
            let (_, s, l) = common::header(&key, pos);
            pos = s + l;
        }
        assert_eq!(&key[pos..pos + 2], &[0x02, 0x82]);
        key[pos + 2..pos + 4].fill(0xff);
        key
    });
    expect_malformed(read(&plain_key_bag(&pkcs8)), "RSA d with length 65535");
}

#[test]
fn rejects_rsa_private_key_with_trailing_bytes_as_malformed() {
    let pkcs8 = pkcs8_with_inner("leaf-rsa", |inner| [inner, &[0x05, 0x00]].concat());
    expect_malformed(read(&plain_key_bag(&pkcs8)), "RSA key with trailing NULL");
}

#[test]
fn rejects_ec_private_key_that_does_not_decode_as_malformed() {
    let pkcs8 = pkcs8_with_inner("leaf-ec256", |_| vec![0x04, 0x00]);
    expect_malformed(
        read(&plain_key_bag(&pkcs8)),
        "EC key that is not ECPrivateKey",
    );
}

#[test]
fn rejects_eddsa_private_keys_of_the_wrong_length_as_malformed() {
    for key in ["leaf-ed25519", "leaf-ed448"] {
        let pkcs8 = pkcs8_with_inner(key, |inner| {
            let mut seed = Der::parse(inner);
            seed.value_mut().pop();
            seed.encode()
        });
        expect_malformed(
            read(&plain_key_bag(&pkcs8)),
            &format!("{key} one byte short"),
        );
    }
}

// ----- found by fuzzing (fuzz/fuzz_targets/ber_normalize.rs) ----------------------------------

#[test]
fn rejects_primitive_element_whose_short_length_overruns_the_input_without_panicking() {
    // A short-form length was not checked against the input: a top-level primitive element that
    // overran it made `normalize` subtract past zero (a panic in debug builds).
    for bytes in [
        &[0x04, 0x05][..],
        &[0x03, 0x40, 0x30, 0x00],
        // The fuzzer's input, as found.
        &[
            0x03, 0x40, 0x30, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
            0x07, 0xa0, 0x80, 0x25, 0x80, 0x5e, 0x0d, 0x02, 0x59, 0x09,
        ],
    ] {
        expect_malformed(read(bytes), &format!("{bytes:02x?}"));
        assert!(
            matches!(
                pfxkit::asn1::ber::normalize(bytes, 64),
                Err(Error::Malformed { .. })
            ),
            "{bytes:02x?}"
        );
    }
}

// ----- CPU work ---------------------------------------------------------------------------------

/// DER OIDs of the hashes the SHA-512 variant swaps in (same lengths as the SHA-256 ones).
const HMAC_WITH_SHA256: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x02, 0x09];
const HMAC_WITH_SHA512: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x02, 0x0b];
const SHA256: &[u8] = &[
    0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01,
];
const SHA512: &[u8] = &[
    0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03,
];

/// PBKDF2 iterations of the certificates' PBES2 container, from the AuthenticatedSafe:
/// ContentInfo[0] { encryptedData, [0] EncryptedData { version, EncryptedContentInfo { type,
/// AlgId { PBES2, { kdf { PBKDF2, { salt, iterations, prf } }, cipher } }, [0] … } } }.
const CONTAINER_PBKDF2_ITERATIONS: &[usize] = &[0, 1, 0, 1, 1, 1, 0, 1, 1];

/// openssl-default.p12 with every KDF at `iterations`: the MAC, the certificates' container
/// and the key bag. With `sha512`, the MAC's PKCS#12 KDF and both PBKDF2 PRFs use SHA-512.
fn every_kdf_at(iterations: i64, sha512: bool) -> Vec<u8> {
    let mut tree = PfxTree::parse(&with_key_bag_epki(|epki| {
        *epki.at_mut(PBKDF2_ITERATIONS) = Der::parse(&integer(iterations));
    }));
    *tree.mac_data().at_mut(&[2]) = Der::parse(&integer(iterations));
    let mut auth_safe = tree.auth_safe();
    assert_eq!(
        auth_safe.at(CONTAINER_PBKDF2_ITERATIONS),
        &Der::parse(&integer(2048)),
        "path to the container's iteration count"
    );
    *auth_safe.at_mut(CONTAINER_PBKDF2_ITERATIONS) = Der::parse(&integer(iterations));
    tree.set_auth_safe(&auth_safe);
    if sha512 {
        // MacData { DigestInfo { AlgId, digest }, … }: a SHA-512 MAC is 64 bytes.
        *tree.mac_data().at_mut(&[0, 1]).value_mut() = vec![0; 64];
    }
    let bytes = tree.encode();
    if sha512 {
        replace_all(
            &replace_all(&bytes, HMAC_WITH_SHA256, HMAC_WITH_SHA512),
            SHA256,
            SHA512,
        )
    } else {
        bytes
    }
}

#[test]
fn test_helper_switches_every_kdf_to_sha512() {
    let original = fixture(DEFAULT_P12);
    assert_eq!(every_kdf_at(2048, false), original);
    let sha512 = every_kdf_at(2048, true);
    let count =
        |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).filter(|w| *w == needle).count();
    assert_eq!(count(&sha512, HMAC_WITH_SHA512), 2, "both PBKDF2 PRFs");
    assert_eq!(count(&sha512, SHA512), 1, "the MAC digest");
    assert_eq!(count(&sha512, HMAC_WITH_SHA256) + count(&sha512, SHA256), 0);
}

#[test]
fn rejects_sha512_archive_within_the_iteration_budget_but_over_the_work_budget() {
    // 3 × 1,000,000 iterations fit max_total_iterations (4,000,000), but at SHA-512's cost
    // (no SHA extensions: six SHA-256 compressions each, two per PBKDF2 iteration) they would
    // take about 1.5 s of CPU, twice that without a password. Refused before any KDF runs.
    let hostile = every_kdf_at(1_000_000, true);
    let limits = Limits::default();
    for password in [Some(password()), Some(Password::new("wrong")), None] {
        let value = expect_limit(
            pkcs12::read(&hostile, password.as_ref(), &limits),
            LimitKind::Work,
            "SHA-512 KDFs at 1,000,000 iterations",
        );
        assert!(value > limits.max_work, "{value}");
    }
    // The same counts with SHA-256 are within budget: they reach the MAC check.
    expect_wrong_password(
        read(&every_kdf_at(1_000_000, false)),
        "SHA-256 KDFs at 1,000,000 iterations (MAC no longer matches)",
    );
}

/// Default limits but for `max_work`.
fn work_limit(max_work: u64) -> Limits {
    let mut limits = Limits::default();
    limits.max_work = max_work;
    limits
}

/// The work charged for the first KDF of `bytes` (the MAC's): what a budget of one unit
/// reports when it refuses it.
fn first_charge(bytes: &[u8]) -> u64 {
    let limits = work_limit(1);
    expect_limit(
        pkcs12::read(bytes, Some(&password()), &limits),
        LimitKind::Work,
        "one-unit budget",
    )
}

#[test]
fn charges_a_sha512_kdf_iteration_six_times_a_sha256_one() {
    let sha256 = first_charge(&every_kdf_at(100_000, false));
    let sha512 = first_charge(&every_kdf_at(100_000, true));
    // The MAC's PKCS#12 KDF: one compression per iteration, plus a few for setup and the HMAC.
    assert!((100_000..100_100).contains(&sha256), "{sha256}");
    assert!((600_000..600_600).contains(&sha512), "{sha512}");
}

/// The smallest `max_work` with which `bytes` reads under `password`, found by raising the
/// budget to each refused total in turn (each refusal reports the running total it hit).
fn work_needed(bytes: &[u8], password: Option<&Password>) -> u64 {
    let mut limits = work_limit(0);
    for _ in 0..100 {
        match pkcs12::read(bytes, password, &limits) {
            Ok(_) => return limits.max_work,
            Err(Error::LimitExceeded {
                limit: LimitKind::Work,
                value,
                ..
            }) => limits.max_work = value,
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    panic!("budget never settled");
}

#[test]
fn charges_every_password_candidate_it_tries() {
    let bytes = fixture(DEFAULT_P12);
    let needed = work_needed(&bytes, Some(&password()));
    let mac = first_charge(&bytes);
    let exactly = work_limit(needed);
    pkcs12::read(&bytes, Some(&password()), &exactly).unwrap();
    // Without a password both the empty and the absent one are tried against the MAC: the
    // second try costs a second MAC derivation, which the exact budget does not cover.
    expect_limit(
        pkcs12::read(&bytes, None, &exactly),
        LimitKind::Work,
        "second MAC candidate",
    );
    let with_second_mac = work_limit(needed + mac);
    expect_wrong_password(
        pkcs12::read(&bytes, None, &with_second_mac),
        "both candidates tried",
    );
}
