//! Stores written by pfxkit, checked step by step by independent tools (issue #5).
//!
//! For each store type the life cycle add → inventory → second alias → overwrite → remove is
//! driven through `StoreAdapter`, and after every step openssl 3, keytool/Java 17 or Python
//! `cryptography` reads the files pfxkit wrote. Identities are the openssl fixtures in
//! `tests/data/p12/` (see `tests/data/gen.sh`); stores live in fresh temp dirs. Tests print a note
//! and return when a tool is missing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

#[path = "store_common/mod.rs"]
mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use common::{
    ENTRY_PASSWORD, Kind, STORE_PASSWORD, create, ec, ed25519, have, java_get_key, keytool_list,
    openssl_cert_sha256, openssl_key_matches_cert, openssl_pkcs12, overwrite, plain, python_pkcs12,
    rsa, snapshot, try_run,
};
use pfxkit::store::pem::PemStore;
use pfxkit::store::{EntryPasswordPolicy, PrivateKeyPolicy, StoreAdapter};
use pfxkit::{Error, Identity, Password};

fn sha256s(identity: &Identity) -> Vec<String> {
    identity.chain().iter().map(|c| c.sha256_hex()).collect()
}

/// The inventory as (alias, chain SHA-256s, has key), sorted by alias.
fn inventory(store: &dyn StoreAdapter) -> Vec<(String, Vec<String>, bool)> {
    let mut entries: Vec<_> = store
        .inventory()
        .unwrap()
        .into_iter()
        .map(|e| {
            (
                e.alias,
                e.chain.iter().map(|c| c.sha256_hex()).collect(),
                e.has_private_key,
            )
        })
        .collect();
    entries.sort();
    entries
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

// ---------------------------------------------------------------------------------------------
// PEM

/// openssl reads the certificate file, decrypts the key with the entry password (and not
/// without it), the key is written encrypted, and it belongs to the certificate.
fn openssl_sees_pem_entry(kind: Kind, dir: &Path, identity: &Identity) {
    let cert_file = kind.path(dir);
    let key_file = kind.key_path(dir).unwrap_or_else(|| cert_file.clone());
    assert_eq!(
        openssl_cert_sha256(&cert_file),
        identity.leaf().sha256_hex()
    );
    let key_text = std::fs::read_to_string(&key_file).unwrap();
    assert!(key_text.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----"));
    assert!(!key_text.contains("-----BEGIN PRIVATE KEY-----"));
    openssl_key_matches_cert(&key_file, ENTRY_PASSWORD, &cert_file);
    let (ok, _) = try_run(
        Command::new("openssl")
            .args([
                "pkey",
                "-noout",
                "-passin",
                "pass:not-the-entry-password",
                "-in",
            ])
            .arg(&key_file),
    );
    assert!(!ok, "openssl decrypted the key with a wrong password");
    // The whole chain is in the certificate file, leaf first.
    let cert_text = std::fs::read_to_string(&cert_file).unwrap();
    assert_eq!(
        cert_text.matches("-----BEGIN CERTIFICATE-----").count(),
        identity.chain().len()
    );
}

fn pem_life_cycle(kind: Kind) {
    if !have("openssl") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let store = kind.open(dir);
    let ep = Password::new(ENTRY_PASSWORD);
    let (rsa, ec) = (rsa(), ec());

    // add
    let alias = store.add(Some("web"), &rsa, Some(&ep), create()).unwrap();
    assert_eq!(alias, "web");
    assert_eq!(
        inventory(store.as_ref()),
        vec![("web".to_string(), sha256s(&rsa), true)]
    );
    openssl_sees_pem_entry(kind, dir, &rsa);
    for file in kind.files(dir) {
        assert_eq!(mode(&file), 0o600, "{} is created private", file.display());
    }

    // a second alias: a PEM store holds one entry, even with overwrite
    let before = snapshot(dir);
    for options in [plain(), overwrite()] {
        let err = store.add(Some("api"), &ec, Some(&ep), options).unwrap_err();
        assert!(
            matches!(&err, Error::AliasExists { alias } if alias == "web"),
            "{err:?}"
        );
    }
    assert_eq!(snapshot(dir), before);

    // overwrite
    store.add(Some("web"), &ec, Some(&ep), overwrite()).unwrap();
    assert_eq!(
        inventory(store.as_ref()),
        vec![("web".to_string(), sha256s(&ec), true)]
    );
    openssl_sees_pem_entry(kind, dir, &ec);

    // remove: the store's one entry goes, and its files with it (issue #13, item 18: empty
    // files were left for other tools to misread)
    store.remove("web").unwrap();
    assert!(matches!(
        store.inventory(),
        Err(Error::StoreNotFound { .. })
    ));
    for file in kind.files(dir) {
        assert!(!file.exists(), "{} is removed", file.display());
    }
    let (ok, _) = try_run(
        Command::new("openssl")
            .args(["x509", "-noout", "-in"])
            .arg(kind.path(dir)),
    );
    assert!(!ok, "openssl still finds a certificate after remove");

    // a removed store is created again like any missing one
    assert!(matches!(
        store.add(Some("web"), &rsa, Some(&ep), plain()),
        Err(Error::StoreNotFound { .. })
    ));
    store.add(Some("web"), &rsa, Some(&ep), create()).unwrap();
    openssl_sees_pem_entry(kind, dir, &rsa);
}

#[test]
fn pem_store_with_key_in_same_file_is_read_by_openssl_at_every_step() {
    pem_life_cycle(Kind::PemSameFile);
}

#[test]
fn pem_store_with_separate_key_file_is_read_by_openssl_at_every_step() {
    pem_life_cycle(Kind::PemSeparateKey);
}

#[test]
fn pem_store_names_an_unaliased_entry_by_the_leaf_sha1_thumbprint() {
    let dir = tempfile::tempdir().unwrap();
    let store = Kind::PemSeparateKey.open(dir.path());
    let rsa = rsa();
    let alias = store
        .add(None, &rsa, Some(&Password::new(ENTRY_PASSWORD)), create())
        .unwrap();
    assert_eq!(alias, rsa.leaf().sha1_hex());
    assert_eq!(store.inventory().unwrap()[0].alias, alias);
}

#[test]
fn pem_store_with_plain_key_allowed_writes_an_unencrypted_key_openssl_reads() {
    if !have("openssl") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    let store = PemStore::new(&cert).key_path(&key).allow_plain_key();
    store.add(Some("web"), &ec(), None, create()).unwrap();
    let text = std::fs::read_to_string(&key).unwrap();
    assert!(text.contains("-----BEGIN PRIVATE KEY-----"));
    openssl_key_matches_cert(&key, "", &cert);
}

#[test]
fn trust_only_pem_store_adds_and_removes_certificates_by_alias() {
    if !have("openssl") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("trust.pem");
    let store = PemStore::trust_only(&file);
    let (rsa, ec, ed) = (rsa(), ec(), ed25519());

    store.add(Some("rsa"), &rsa, None, create()).unwrap();
    store.add(Some("ec"), &ec, None, plain()).unwrap();
    store.add(Some("ed"), &ed, None, plain()).unwrap();
    let entries = inventory(&store);
    assert_eq!(
        entries,
        vec![
            ("ec".to_string(), vec![ec.leaf().sha256_hex()], false),
            ("ed".to_string(), vec![ed.leaf().sha256_hex()], false),
            ("rsa".to_string(), vec![rsa.leaf().sha256_hex()], false),
        ]
    );
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(!text.contains("PRIVATE KEY"), "a trust store holds no key");
    assert_eq!(text.matches("-----BEGIN CERTIFICATE-----").count(), 3);
    let out = common::run(
        Command::new("openssl")
            .args(["storeutl", "-noout", "-certs"])
            .arg(&file),
    );
    assert!(out.contains("Total found: 3"), "{out}");

    let err = store.add(Some("ec"), &rsa, None, plain()).unwrap_err();
    assert!(matches!(err, Error::AliasExists { .. }), "{err:?}");

    store.remove("rsa").unwrap();
    let out = common::run(
        Command::new("openssl")
            .args(["storeutl", "-noout", "-certs"])
            .arg(&file),
    );
    assert!(out.contains("Total found: 2"), "{out}");
    let aliases: Vec<String> = inventory(&store).into_iter().map(|e| e.0).collect();
    assert_eq!(aliases, ["ec", "ed"]);
    // Each remaining certificate is still exactly the one added under its alias.
    let first = common::openssl_cert_sha256(&file);
    assert_eq!(first, ec.leaf().sha256_hex());

    let err = store.remove("rsa").unwrap_err();
    assert!(matches!(err, Error::AliasNotFound { .. }), "{err:?}");
}

// ---------------------------------------------------------------------------------------------
// PKCS#12

/// openssl (MAC, decryption, bag attributes) and Python `cryptography` both list exactly
/// `expected` (alias → identity) and one key per entry.
fn tools_see_pkcs12(file: &Path, expected: &[(&str, &Identity)]) {
    let (openssl, keys) = openssl_pkcs12(file, STORE_PASSWORD);
    assert_eq!(keys, expected.len(), "openssl: one key per entry");
    let (python, key_matches) = python_pkcs12(file, STORE_PASSWORD);
    assert!(key_matches, "cryptography: key and certificate differ");
    for (tool, certs) in [("openssl", &openssl), ("cryptography", &python)] {
        for (alias, identity) in expected {
            let leaf = identity.leaf().sha256_hex();
            assert!(
                certs
                    .iter()
                    .any(|(a, sha)| a.as_deref() == Some(*alias) && *sha == leaf),
                "{tool}: no certificate {leaf} named {alias} in {certs:?}"
            );
            for ca in &identity.chain()[1..] {
                assert!(
                    certs.iter().any(|(_, sha)| *sha == ca.sha256_hex()),
                    "{tool}: chain certificate of {alias} missing"
                );
            }
        }
        let leaves_named: Vec<_> = certs
            .iter()
            .filter(|(a, _)| a.is_some())
            .filter(|(_, sha)| expected.iter().any(|(_, i)| i.leaf().sha256_hex() == *sha))
            .collect();
        assert_eq!(leaves_named.len(), expected.len(), "{tool}: {certs:?}");
    }
}

#[test]
fn pkcs12_store_is_read_by_openssl_and_cryptography_at_every_step() {
    if !have("openssl") || !have("python3") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let kind = Kind::Pkcs12;
    let file = kind.path(dir);
    let store = kind.open(dir);
    let (rsa, ec, ed) = (rsa(), ec(), ed25519());

    store.add(Some("web"), &rsa, None, create()).unwrap();
    assert_eq!(
        inventory(store.as_ref()),
        vec![("web".to_string(), sha256s(&rsa), true)]
    );
    tools_see_pkcs12(&file, &[("web", &rsa)]);
    assert_eq!(mode(&file), 0o600);

    // second alias
    store.add(Some("api"), &ec, None, plain()).unwrap();
    assert_eq!(
        inventory(store.as_ref()),
        vec![
            ("api".to_string(), sha256s(&ec), true),
            ("web".to_string(), sha256s(&rsa), true)
        ]
    );
    tools_see_pkcs12(&file, &[("web", &rsa), ("api", &ec)]);

    // existing alias without overwrite
    let before = snapshot(dir);
    let err = store.add(Some("web"), &ed, None, plain()).unwrap_err();
    assert!(matches!(err, Error::AliasExists { .. }), "{err:?}");
    assert_eq!(snapshot(dir), before);

    // overwrite
    store.add(Some("web"), &ed, None, overwrite()).unwrap();
    assert_eq!(
        inventory(store.as_ref()),
        vec![
            ("api".to_string(), sha256s(&ec), true),
            ("web".to_string(), sha256s(&ed), true)
        ]
    );
    tools_see_pkcs12(&file, &[("web", &ed), ("api", &ec)]);
    assert!(
        !openssl_pkcs12(&file, STORE_PASSWORD)
            .0
            .iter()
            .any(|(_, sha)| *sha == rsa.leaf().sha256_hex()),
        "the overwritten leaf is gone"
    );

    // remove
    store.remove("api").unwrap();
    assert_eq!(
        inventory(store.as_ref()),
        vec![("web".to_string(), sha256s(&ed), true)]
    );
    tools_see_pkcs12(&file, &[("web", &ed)]);
    store.remove("web").unwrap();
    assert!(store.inventory().unwrap().is_empty());
    let (certs, keys) = openssl_pkcs12(&file, STORE_PASSWORD);
    assert_eq!(
        (certs.len(), keys),
        (0, 0),
        "an emptied store is a valid empty PKCS#12"
    );
}

// ---------------------------------------------------------------------------------------------
// JKS

#[test]
fn jks_store_is_read_by_keytool_and_java_at_every_step() {
    if !have("keytool") || !have("javac") || !have("java") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let kind = Kind::Jks;
    let file = kind.path(dir);
    let store = kind.open(dir);
    let (rsa, ec, ed) = (rsa(), ec(), ed25519());
    let key_pass = Password::new("key-pass-2");
    let entry = |alias: &str| (alias.to_string(), "PrivateKeyEntry".to_string());

    // add without an entry password: the key is under the store password
    store.add(Some("web"), &rsa, None, create()).unwrap();
    assert_eq!(
        inventory(store.as_ref()),
        vec![("web".to_string(), sha256s(&rsa), true)]
    );
    assert_eq!(keytool_list(&file, STORE_PASSWORD), [entry("web")].into());
    assert_eq!(
        java_get_key(&file, STORE_PASSWORD, "web", STORE_PASSWORD).unwrap(),
        rsa.leaf().sha256_hex()
    );
    assert_eq!(mode(&file), 0o600);

    // second alias, with its own key password: only that password recovers the key
    store
        .add(Some("api"), &ec, Some(&key_pass), plain())
        .unwrap();
    assert_eq!(
        keytool_list(&file, STORE_PASSWORD),
        [entry("api"), entry("web")].into()
    );
    assert_eq!(
        java_get_key(&file, STORE_PASSWORD, "api", "key-pass-2").unwrap(),
        ec.leaf().sha256_hex()
    );
    let refused = java_get_key(&file, STORE_PASSWORD, "api", STORE_PASSWORD).unwrap_err();
    assert!(refused.contains("UNRECOVERABLE"), "{refused}");
    // The key entry untouched by the second add still opens with the store password.
    assert_eq!(
        java_get_key(&file, STORE_PASSWORD, "web", STORE_PASSWORD).unwrap(),
        rsa.leaf().sha256_hex()
    );

    // aliases are lower-cased, as keytool does
    let alias = store.add(Some("Mixed-Case"), &ed, None, plain()).unwrap();
    assert_eq!(alias, "mixed-case");
    assert!(keytool_list(&file, STORE_PASSWORD).contains_key("mixed-case"));
    let err = store
        .add(Some("MIXED-case"), &rsa, None, plain())
        .unwrap_err();
    assert!(matches!(err, Error::AliasExists { .. }), "{err:?}");
    store.remove("MIXED-CASE").unwrap();

    // overwrite with a new identity
    let before = snapshot(dir);
    let err = store.add(Some("web"), &ed, None, plain()).unwrap_err();
    assert!(matches!(err, Error::AliasExists { .. }), "{err:?}");
    assert_eq!(snapshot(dir), before);
    store.add(Some("web"), &ed, None, overwrite()).unwrap();
    assert_eq!(
        inventory(store.as_ref()),
        vec![
            ("api".to_string(), sha256s(&ec), true),
            ("web".to_string(), sha256s(&ed), true)
        ]
    );
    assert_eq!(
        java_get_key(&file, STORE_PASSWORD, "web", STORE_PASSWORD).unwrap(),
        ed.leaf().sha256_hex()
    );
    // keytool agrees with the distinct key password too (it must ask for it to copy the key)
    let copy = dir.join("copy.p12");
    common::run(
        Command::new("keytool")
            .args([
                "-importkeystore",
                "-noprompt",
                "-srcstoretype",
                "JKS",
                "-srckeystore",
            ])
            .arg(&file)
            .args(["-srcstorepass", STORE_PASSWORD, "-srcalias", "api"])
            .args(["-srckeypass", "key-pass-2", "-deststoretype", "PKCS12"])
            .arg("-destkeystore")
            .arg(&copy)
            .args(["-deststorepass", "copy-pass"]),
    );
    let (ok, out) = try_run(
        Command::new("keytool")
            .args([
                "-importkeystore",
                "-noprompt",
                "-srcstoretype",
                "JKS",
                "-srckeystore",
            ])
            .arg(&file)
            .args(["-srcstorepass", STORE_PASSWORD, "-srcalias", "api"])
            .args(["-srckeypass", "wrong-key-pass", "-deststoretype", "PKCS12"])
            .arg("-destkeystore")
            .arg(dir.join("refused.p12"))
            .args(["-deststorepass", "copy-pass"]),
    );
    assert!(
        !ok,
        "keytool copied the key with a wrong key password:\n{out}"
    );
    std::fs::remove_file(&copy).unwrap();

    // remove
    store.remove("api").unwrap();
    assert_eq!(keytool_list(&file, STORE_PASSWORD), [entry("web")].into());
    assert_eq!(
        inventory(store.as_ref()),
        vec![("web".to_string(), sha256s(&ed), true)]
    );
    store.remove("web").unwrap();
    assert!(keytool_list(&file, STORE_PASSWORD).is_empty());
    assert!(store.inventory().unwrap().is_empty());
}

// ---------------------------------------------------------------------------------------------
// Capabilities

#[test]
fn capabilities_match_the_spec_table() {
    let dir = tempfile::tempdir().unwrap();
    for kind in Kind::ALL {
        let caps = kind.open(dir.path()).capabilities();
        let (keys, entry_password, store_password, multiple) = match kind {
            Kind::PemSameFile | Kind::PemSeparateKey => (
                PrivateKeyPolicy::Required,
                EntryPasswordPolicy::Required,
                false,
                false,
            ),
            Kind::Pkcs12 => (
                PrivateKeyPolicy::Optional,
                EntryPasswordPolicy::Unsupported,
                true,
                true,
            ),
            Kind::Jks => (
                PrivateKeyPolicy::Optional,
                EntryPasswordPolicy::Optional,
                true,
                true,
            ),
        };
        assert_eq!(caps.private_keys, keys, "{kind:?}");
        assert_eq!(caps.entry_password, entry_password, "{kind:?}");
        assert_eq!(caps.store_password_required, store_password, "{kind:?}");
        assert_eq!(caps.multiple_entries, multiple, "{kind:?}");
        assert!(caps.custom_alias, "{kind:?}");
        assert_eq!(kind.open(dir.path()).store_type(), kind.store_type().name());
    }
    let trust = PemStore::trust_only(dir.path().join("t.pem")).capabilities();
    assert_eq!(trust.private_keys, PrivateKeyPolicy::Forbidden);
    assert_eq!(trust.entry_password, EntryPasswordPolicy::Unsupported);
    assert!(trust.multiple_entries && trust.custom_alias && !trust.store_password_required);
    let plain_key = PemStore::new(dir.path().join("p.pem"))
        .allow_plain_key()
        .capabilities();
    assert_eq!(plain_key.entry_password, EntryPasswordPolicy::Optional);
}

#[test]
fn stores_needing_a_store_password_refuse_to_open_without_one() {
    let dir = tempfile::tempdir().unwrap();
    for kind in [Kind::Pkcs12, Kind::Jks] {
        let spec = pfxkit::store::StoreSpec::new(kind.store_type(), kind.path(dir.path()));
        let err = pfxkit::store::open(&spec).unwrap_err();
        assert!(matches!(err, Error::Invalid(_)), "{kind:?}: {err:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Regression: pfxkit reads back the PEM files its own store writes

/// The `pem` store writes OpenSSL-style `Bag Attributes` text before each block. `pem::is_pem`
/// used to require `-----BEGIN` at the very start, so `read_bundle` took such a file for DER and
/// failed (`Malformed: PKCS#8 private key`), and `pfxkit inspect` exited 4 on a store pfxkit
/// had just written (and on `openssl pkcs12 -nodes` output).
#[test]
fn pem_store_files_with_bag_attributes_are_read_by_read_bundle_and_inspect() {
    for kind in [Kind::PemSameFile, Kind::PemSeparateKey] {
        let dir = tempfile::tempdir().unwrap();
        let dir = dir.path();
        let rsa = rsa();
        kind.open(dir)
            .add(
                Some("web"),
                &rsa,
                Some(&Password::new(ENTRY_PASSWORD)),
                create(),
            )
            .unwrap();
        assert!(
            std::fs::read_to_string(kind.path(dir))
                .unwrap()
                .starts_with("Bag Attributes")
        );
        let found = common::read_identity(kind, dir, "web", None).unwrap();
        assert_eq!(found.chain(), rsa.chain());
        let cert_file = kind.path(dir);
        let out = Command::new(env!("CARGO_BIN_EXE_pfxkit"))
            .arg("inspect")
            .arg(&cert_file)
            .args(["--password", &format!("pass:{ENTRY_PASSWORD}"), "--json"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{kind:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains(&rsa.leaf().sha256_hex()));
    }
    // DER input is still DER, even when it happens to contain the PEM marker.
    let mut der = rsa().leaf().der().to_vec();
    assert!(!pfxkit::pem::is_pem(&der));
    der.extend_from_slice(b"-----BEGIN CERTIFICATE-----");
    assert!(!pfxkit::pem::is_pem(&der));
}
