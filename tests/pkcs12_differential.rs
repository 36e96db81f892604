//! Differential test against `p12-keystore` 0.4.1, a second pure-Rust reader: for every fixture
//! both accept, both must find the same private keys (PKCS#8 DER) and the same certificates
//! (DER, counted with duplicates). Fixtures p12-keystore refuses are listed, not skipped
//! silently, and the list is pinned so a change in either reader shows up here.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use std::panic::{AssertUnwindSafe, catch_unwind};

use p12_keystore::Pkcs12Archive;
use pfxkit::Limits;
use pfxkit::pkcs12;

use common::{fixture, p12_entries, password_of};

/// What p12-keystore 0.4.1 refuses, observed (its errors are printed by the test):
/// - the two files whose password has a character outside the BMP (`😀`, `🔑`): its `der`
///   BMPString cannot hold the surrogate pair the classic MAC's password encoding needs;
/// - the BER file: it decodes strict DER only (`IndefiniteLength`).
const P12_KEYSTORE_REJECTS: &[&str] = &[
    "p12/openssl-unicode-pass.p12",
    "p12/ber-indefinite.p12",
    "p12/cryptography-emoji.p12",
];

fn sorted(mut v: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    v.sort();
    v
}

#[test]
fn agrees_with_p12_keystore_on_keys_and_certificates_of_every_fixture_it_accepts() {
    let mut rejected = Vec::new();
    let mut compared = Vec::new();
    for entry in p12_entries() {
        let file = entry["file"].as_str().unwrap().to_string();
        let bytes = fixture(&file);
        let password = password_of(&entry);
        let ours = pkcs12::read(&bytes, password.as_ref(), &Limits::default())
            .unwrap_or_else(|e| panic!("{file}: pfxkit refuses it: {e}"));
        // p12-keystore takes a &str; "no password" is "" there (what these files use).
        let text = password
            .as_ref()
            .and_then(|p| p.expose_secret())
            .unwrap_or("")
            .to_string();
        let theirs = match catch_unwind(AssertUnwindSafe(|| {
            Pkcs12Archive::from_pkcs12(&bytes, &text)
        })) {
            Ok(Ok(archive)) => archive,
            Ok(Err(e)) => {
                println!("p12-keystore rejects {file}: {e:?}");
                rejected.push(file);
                continue;
            }
            Err(_) => {
                println!("p12-keystore panics on {file}");
                rejected.push(file);
                continue;
            }
        };
        let our_certs = sorted(
            ours.certificates()
                .iter()
                .map(|c| c.certificate.der().to_vec())
                .collect(),
        );
        let their_certs = sorted(
            theirs
                .certs
                .iter()
                .map(|c| c.cert.as_der().to_vec())
                .collect(),
        );
        assert_eq!(our_certs, their_certs, "{file}: certificates differ");
        let our_keys = sorted(
            ours.keys()
                .iter()
                .map(|k| k.key.expose_pkcs8_der().to_vec())
                .collect(),
        );
        let their_keys = sorted(
            theirs
                .keys
                .iter()
                .map(|k| k.key.as_der().to_vec())
                .collect(),
        );
        assert_eq!(our_keys, their_keys, "{file}: private keys differ");
        compared.push(file);
    }
    println!("compared with p12-keystore: {compared:?}");
    println!("rejected by p12-keystore: {rejected:?}");
    assert!(
        compared.iter().any(|f| f == "p12/openssl-default.p12"),
        "both readers must accept openssl-default.p12"
    );
    assert_eq!(
        rejected, P12_KEYSTORE_REJECTS,
        "the set of fixtures p12-keystore refuses changed"
    );
}
