//! `Builder::from_archive`: re-encoding an archive carries every entry across — keys with their
//! chains and aliases, certificates of no key, Java trusted entries (even when the same
//! certificate also sits in a key's chain), and CRL/secret/unknown bags.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use common::{fixture, seq, tlv};
use pfxkit::pkcs12::{self, Builder, OtherBagKind, Profile};
use pfxkit::{Limits, Password};

const TWO_KEYS: &str = "p12/keytool-two-keys.p12";

fn two_keys() -> pkcs12::Archive {
    pkcs12::read(
        &fixture(TWO_KEYS),
        Some(&Password::new("changeit-pass")),
        &Limits::default(),
    )
    .unwrap()
}

/// (sha256, alias, trusted, has key) per certificate occurrence, sorted.
fn certificate_entries(archive: &pkcs12::Archive) -> Vec<(String, Option<String>, bool)> {
    let mut out: Vec<_> = archive
        .certificates()
        .iter()
        .map(|c| {
            (
                common::hex(c.certificate.sha256()),
                c.attributes.friendly_name.clone(),
                c.attributes.java_trusted,
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn from_archive_keeps_trusted_entry_that_is_also_in_a_chain() {
    let original = two_keys();
    let trusted_before = original
        .certificates()
        .iter()
        .filter(|c| c.attributes.java_trusted)
        .count();
    assert_eq!(trusted_before, 1, "the fixture has one trusted root");

    let password = Password::new("new-pass");
    let bytes = Builder::from_archive(Profile::Modern, &original)
        .build(&password, &Limits::default())
        .unwrap();
    let copy = pkcs12::read(&bytes, Some(&password), &Limits::default()).unwrap();

    // Same identities (alias, leaf, chain) …
    let ids = |a: &pkcs12::Archive| {
        let mut v: Vec<_> = a
            .identities()
            .iter()
            .map(|i| {
                (
                    i.alias().map(str::to_string),
                    i.chain()
                        .iter()
                        .map(|c| common::hex(c.sha256()))
                        .collect::<Vec<_>>(),
                )
            })
            .collect();
        v.sort();
        v
    };
    assert_eq!(ids(&original), ids(&copy));
    assert_eq!(copy.keys().len(), 2);
    // … and the same certificate entries, the trusted root among them.
    assert_eq!(certificate_entries(&original), certificate_entries(&copy));
}

#[test]
fn from_archive_carries_crl_and_unknown_bags() {
    // One CRL bag and one bag of an unknown type beside the key and certificates of a real file.
    const CRL_BAG: &[u8] = &[
        0x06, 0x0b, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x0c, 0x0a, 0x01, 0x04,
    ];
    const UNKNOWN_BAG: &[u8] = &[0x06, 0x03, 0x2a, 0x03, 0x04]; // 1.2.3.4
    let crl = seq(&[CRL_BAG, &tlv(0xa0, &[0x04, 0x03, 1, 2, 3])]);
    let unknown = seq(&[UNKNOWN_BAG, &tlv(0xa0, &[0x05, 0x00])]);
    let bytes = common::pfx(&[common::data_content_info(&seq(&[&crl, &unknown]))], None);
    let original = pkcs12::read(&bytes, None, &Limits::default()).unwrap();
    assert_eq!(original.other_bags().len(), 2);

    let password = Password::new("p");
    let rebuilt = Builder::from_archive(Profile::Modern, &original)
        .build(&password, &Limits::default())
        .unwrap();
    let copy = pkcs12::read(&rebuilt, Some(&password), &Limits::default()).unwrap();
    let kinds: Vec<_> = copy.other_bags().iter().map(|b| b.kind.clone()).collect();
    assert_eq!(kinds.len(), 2);
    assert!(kinds.contains(&OtherBagKind::Crl));
    assert!(
        kinds
            .iter()
            .any(|k| matches!(k, OtherBagKind::Unknown(oid) if oid.to_string() == "1.2.3.4"))
    );
    let values: Vec<Vec<u8>> = copy.other_bags().iter().map(|b| b.value.to_vec()).collect();
    assert!(values.contains(&vec![0x04, 0x03, 1, 2, 3]));
}

#[test]
fn identities_alone_lose_the_trusted_entry() {
    // Why from_archive exists: the identity-only re-encoding of the README's old tour dropped
    // the trusted entry.
    let original = two_keys();
    let mut builder = Builder::new(Profile::Modern);
    for identity in original.identities() {
        builder = builder.identity(identity, None);
    }
    let password = Password::new("p");
    let copy = pkcs12::read(
        &builder.build(&password, &Limits::default()).unwrap(),
        Some(&password),
        &Limits::default(),
    )
    .unwrap();
    assert!(
        copy.certificates()
            .iter()
            .all(|c| !c.attributes.java_trusted)
    );
}
