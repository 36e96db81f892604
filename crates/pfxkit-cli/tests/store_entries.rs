//! Security issue #13, stores that lose or weaken entries: a trusted certificate that is also
//! in a chain, a trusted entry overwritten by a key, an unprotected PKCS#12 store written under a
//! password, a PEM alias that does not read back. Each test names the threat it guards against;
//! each failed on the code before its fix.
//!
//! Identities are the openssl fixtures of `tests/data/p12`, certificates the PEM fixtures of
//! `tests/data/pki` (see `tests/data/gen.sh`).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

#[path = "store_common/mod.rs"]
mod store_common;

use std::fs;

use pfxkit::cert::Certificate;
use pfxkit::jks::{self, KeystoreKind, WriteEntry};
use pfxkit::pkcs12::{self, Builder, Profile};
use pfxkit::store::jks::JksStore;
use pfxkit::store::pem::PemStore;
use pfxkit::store::pkcs12::Pkcs12Store;
use pfxkit::store::{AddOptions, StoreAdapter};
use pfxkit::{Error, Limits, Password};
use store_common::{ENTRY_PASSWORD, STORE_PASSWORD, create, ec, rsa, snapshot};

/// The DER of a PEM fixture under the repository's `tests/data` (`pki/certs/…`).
fn pem_der(relative: &str) -> Vec<u8> {
    let path = format!("{}/../../tests/data/{relative}", env!("CARGO_MANIFEST_DIR"));
    pem::parse(fs::read(path).unwrap()).unwrap().into_contents()
}

fn store_password() -> Password {
    Password::new(STORE_PASSWORD)
}

fn aliases(store: &dyn StoreAdapter) -> Vec<String> {
    store
        .inventory()
        .unwrap()
        .into_iter()
        .map(|e| e.alias)
        .collect()
}

// =============================================================================================
// 14, 15. Stores that lose or weaken entries

fn intermediate() -> Certificate {
    Certificate::from_der(&pem_der("pki/certs/intermediate.pem")).unwrap()
}

/// Threat: a PKCS#12 store dropped a Java trusted-certificate entry whose certificate also sits
/// in a key entry's chain (keytool writes both), so any write silently removed a trust anchor
/// the caller never named.
#[test]
fn keeps_trusted_entry_that_is_also_in_a_chain() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.p12");
    let web = rsa();
    assert!(
        web.chain().contains(&intermediate()),
        "fixture: in the chain"
    );
    let bytes = Builder::new(Profile::default())
        .identity(web, Some("web"))
        .trusted_certificate(intermediate(), "ca")
        .build(&store_password(), &Limits::default())
        .unwrap();
    fs::write(&path, bytes).unwrap();
    let store = Pkcs12Store::new(&path, store_password());
    assert_eq!(aliases(&store), ["web", "ca"]);
    store
        .add(Some("other"), &ec(), None, AddOptions::default())
        .unwrap();
    let mut after = aliases(&store);
    after.sort();
    assert_eq!(after, ["ca", "other", "web"]);
    let archive = pkcs12::read(
        &fs::read(&path).unwrap(),
        Some(&store_password()),
        &Limits::default(),
    )
    .unwrap();
    let trusted: Vec<_> = archive
        .certificates()
        .iter()
        .filter(|b| b.attributes.java_trusted)
        .map(|b| (b.attributes.friendly_name.clone(), b.certificate.clone()))
        .collect();
    assert_eq!(trusted, [(Some("ca".to_string()), intermediate())]);
}

/// Threat: `--overwrite` of a JKS trusted-certificate entry with a key entry silently turned a
/// trust anchor into a key entry. Changing an entry's kind is refused; the store is unchanged.
#[test]
fn jks_overwrite_refuses_to_turn_trusted_into_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.jks");
    let ca = intermediate();
    let bytes = jks::write(
        KeystoreKind::Jks,
        &[WriteEntry::Trusted {
            alias: "ca",
            certificate: &ca,
        }],
        &store_password(),
    )
    .unwrap();
    fs::write(&path, &bytes).unwrap();
    let store = JksStore::new(&path, store_password());
    let err = store
        .add(Some("ca"), &rsa(), None, AddOptions::new(true, false))
        .unwrap_err();
    assert!(err.to_string().contains("trusted"), "{err}");
    assert_eq!(fs::read(&path).unwrap(), bytes);
    // The same for a PKCS#12 store.
    let p12 = dir.path().join("store.p12");
    let bytes = Builder::new(Profile::default())
        .trusted_certificate(ca, "ca")
        .build(&store_password(), &Limits::default())
        .unwrap();
    fs::write(&p12, &bytes).unwrap();
    let store = Pkcs12Store::new(&p12, store_password());
    assert!(
        store
            .add(Some("ca"), &rsa(), None, AddOptions::new(true, false))
            .is_err()
    );
    assert_eq!(fs::read(&p12).unwrap(), bytes);
}

/// Threat: a PKCS#12 store found without a MAC and with plain key bags was rewritten the same
/// way ("profile none" by inheritance) although the caller gave a store password, leaving the
/// new key readable by anyone who can read the file and the file open to undetected tampering.
#[test]
fn unprotected_store_gets_protected_on_write() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.p12");
    let bytes = Builder::new(Profile::None)
        .identity(rsa(), Some("web"))
        .build(&Password::absent(), &Limits::default())
        .unwrap();
    fs::write(&path, bytes).unwrap();
    let store = Pkcs12Store::new(&path, store_password());
    store
        .add(Some("other"), &ec(), None, AddOptions::default())
        .unwrap();
    let written = fs::read(&path).unwrap();
    let wrong = pkcs12::read(&written, Some(&Password::new("wrong")), &Limits::default());
    assert!(
        matches!(wrong, Err(Error::WrongPassword { .. })),
        "a MAC under the store password: {:?}",
        wrong.map(|a| a.keys().len())
    );
    let archive = pkcs12::read(&written, Some(&store_password()), &Limits::default()).unwrap();
    assert_ne!(pkcs12::detect_profile(&archive).0, Profile::None);
    assert_eq!(archive.identities().len(), 2);
}

// =============================================================================================
// 16. PEM aliases

/// Threat: a PEM alias is written as text before the block; an alias holding `-----BEGIN `
/// starts a block of its own, so the store no longer reads back (or reads back as something
/// else). Aliases that cannot round-trip are refused before anything is written.
#[test]
fn refuses_pem_alias_with_armor() {
    let dir = tempfile::tempdir().unwrap();
    for store in [
        PemStore::new(dir.path().join("key.pem")),
        PemStore::trust_only(dir.path().join("trust.pem")),
    ] {
        for alias in [
            "x-----BEGIN CERTIFICATE-----",
            "-----BEGIN PRIVATE KEY-----",
            "a-----END CERTIFICATE-----",
        ] {
            let err = store
                .add(
                    Some(alias),
                    &rsa(),
                    Some(&Password::new(ENTRY_PASSWORD)),
                    create(),
                )
                .unwrap_err();
            assert!(matches!(err, Error::Invalid(_)), "{alias}: {err:?}");
        }
        assert!(snapshot(dir.path()).is_empty());
    }
}

// =============================================================================================
// Issue 15, item 10: keytool's -keypasswd through the store

/// Threat: re-protecting one key rewrites the others under a password their owners never
/// chose (or loses them). Only the named entry changes; every other entry keeps its protected
/// bytes, its place and its creation time, and a JCEKS file stays JCEKS.
#[test]
fn jks_key_password_change_rewrites_only_the_named_entry() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.jks");
    let store = JksStore::new(&path, store_password());
    let (web_pw, other_pw) = (Password::new("web-key"), Password::new(ENTRY_PASSWORD));
    store
        .add(Some("web"), &rsa(), Some(&web_pw), create())
        .unwrap();
    store
        .add(Some("other"), &ec(), Some(&other_pw), create())
        .unwrap();
    store
        .add_trusted("root", &intermediate(), create())
        .unwrap();
    let read = || {
        jks::read(
            &fs::read(&path).unwrap(),
            &store_password(),
            &Limits::default(),
        )
        .unwrap()
    };
    let before = read();

    let wrong = store.change_key_password("web", &Password::new("guess"), &Password::new("x"));
    assert!(
        matches!(wrong, Err(Error::WrongPassword { .. })),
        "{wrong:?}"
    );
    let trusted = store.change_key_password("root", &web_pw, &Password::new("x"));
    assert!(matches!(trusted, Err(Error::Invalid(_))), "{trusted:?}");
    let missing = store.change_key_password("nobody", &web_pw, &Password::new("x"));
    assert!(
        matches!(missing, Err(Error::AliasNotFound { .. })),
        "{missing:?}"
    );
    assert_eq!(read().entries().len(), 3);

    let new_pw = Password::new("new-web-key");
    store.change_key_password("WEB", &web_pw, &new_pw).unwrap();
    let after = read();
    let names = |k: &jks::Keystore| -> Vec<String> {
        k.entries().iter().map(|e| e.alias().to_string()).collect()
    };
    assert_eq!(
        names(&after),
        names(&before),
        "same entries in the same order"
    );
    let key = |k: &jks::Keystore, alias: &str| match k.get(alias) {
        Some(jks::Entry::PrivateKey(key)) => key.clone(),
        other => panic!("{alias}: {other:?}"),
    };
    assert_eq!(
        key(&after, "other").encrypted_key_der(),
        key(&before, "other").encrypted_key_der()
    );
    assert_eq!(
        key(&after, "other").created_millis(),
        key(&before, "other").created_millis()
    );
    let limits = Limits::default();
    assert!(key(&after, "web").identity(&web_pw, &limits).is_err());
    assert_eq!(
        key(&after, "web")
            .identity(&new_pw, &limits)
            .unwrap()
            .chain(),
        rsa().chain()
    );
    assert_eq!(
        key(&after, "other")
            .identity(&other_pw, &limits)
            .unwrap()
            .chain(),
        ec().chain()
    );

    // A keytool-made JCEKS store stays JCEKS.
    let jceks = dir.path().join("key.jceks");
    fs::copy(
        format!(
            "{}/../../tests/data/jks/key.jceks",
            env!("CARGO_MANIFEST_DIR")
        ),
        &jceks,
    )
    .unwrap();
    let mut perms = fs::metadata(&jceks).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perms.set_readonly(false);
    fs::set_permissions(&jceks, perms).unwrap();
    JksStore::new(&jceks, store_password())
        .change_key_password("jceks-key", &Password::new("key-pass-2"), &new_pw)
        .unwrap();
    let reread = jks::read(&fs::read(&jceks).unwrap(), &store_password(), &limits).unwrap();
    assert_eq!(reread.kind(), KeystoreKind::Jceks);
    assert!(key(&reread, "jceks-key").decrypt(&new_pw, &limits).is_ok());
}
