//! JKS/JCEKS write → read round trip from structured input: any aliases, store and key
//! passwords, key and trusted-certificate entries. What `write_with` accepts, `read` must return
//! unchanged (aliases lower-cased as Java does, the same certificates, keys that decrypt to the
//! same bytes); a mismatch or a panic is a bug.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use pfxkit::jks::{self, Entry, KeystoreKind, WriteEntry};
use pfxkit::{Certificate, Identity, Limits, Password};

const KEY: &[u8] = include_bytes!("../../tests/data/pki/keys/leaf-ec256.pem");
const LEAF: &[u8] = include_bytes!("../../tests/data/pki/certs/leaf-ec256.pem");
const CHAIN: &[u8] = include_bytes!("../../tests/data/pki/certs/chain.pem");
const ROOT: &[u8] = include_bytes!("../../tests/data/pki/certs/root.pem");

#[derive(Debug, Arbitrary)]
enum Item {
    Key { alias: String, password: String },
    Trusted { alias: String, root: bool },
}

#[derive(Debug, Arbitrary)]
struct Input {
    jceks: bool,
    store_password: String,
    created_millis: i64,
    items: Vec<Item>,
}

struct Fixtures {
    identity: Identity,
    root: Certificate,
    intermediate: Certificate,
}

fn fixtures() -> &'static Fixtures {
    static FIXTURES: OnceLock<Fixtures> = OnceLock::new();
    FIXTURES.get_or_init(|| {
        let limits = Limits::default();
        let read = |pem| pfxkit::pem::read_bundle(pem, None, &limits).expect("fixture");
        let mut key = read(KEY);
        let mut leaf = read(LEAF);
        let chain = read(CHAIN).certificates;
        let root = read(ROOT).certificates.remove(0);
        let intermediate = chain.first().expect("intermediate").clone();
        let identity =
            Identity::new(key.keys.remove(0), leaf.certificates.remove(0), chain).expect("pair");
        Fixtures {
            identity,
            root,
            intermediate,
        }
    })
}

fuzz_target!(|input: Input| {
    // A JCEKS key costs 2 × 200,000 MD5 runs (keytool's fixed iteration count, not an input) to
    // write and again to decrypt: ~0.25 s in a release build, ~2.4 s under ASan, past the
    // 2-second timeout. JCEKS is round-tripped with trusted entries only; JKS with keys too.
    let has_key = input.items.iter().any(|i| matches!(i, Item::Key { .. }));
    if input.items.len() > 4 || (input.jceks && has_key) {
        return;
    }
    let kind = if input.jceks {
        KeystoreKind::Jceks
    } else {
        KeystoreKind::Jks
    };
    let f = fixtures();
    let key_passwords: Vec<Password> = input
        .items
        .iter()
        .map(|item| match item {
            Item::Key { password, .. } => Password::new(password.clone()),
            Item::Trusted { .. } => Password::absent(),
        })
        .collect();
    let entries: Vec<WriteEntry<'_>> = input
        .items
        .iter()
        .zip(&key_passwords)
        .map(|(item, key_password)| match item {
            Item::Key { alias, .. } => WriteEntry::PrivateKey {
                alias,
                identity: &f.identity,
                key_password,
            },
            Item::Trusted { alias, root } => WriteEntry::Trusted {
                alias,
                certificate: if *root { &f.root } else { &f.intermediate },
            },
        })
        .collect();
    let store_password = Password::new(input.store_password.clone());
    let mut counter = 0u8;
    let written = jks::write_with(
        kind,
        &entries,
        &store_password,
        input.created_millis,
        &mut |buf| {
            buf.iter_mut().for_each(|b| {
                counter = counter.wrapping_add(1);
                *b = counter;
            });
            Ok(())
        },
    );
    // Refusals (duplicate aliases, non-ASCII JCEKS key passwords, …) are the writer's to make.
    let Ok(bytes) = written else { return };

    let limits = Limits::default();
    let store = jks::read(&bytes, &store_password, &limits)
        .unwrap_or_else(|e| panic!("{kind:?}: cannot read what was written: {e}"));
    assert_eq!(store.kind(), kind);
    assert!(store.digest_verified());
    assert_eq!(store.entries().len(), entries.len(), "entry count");
    for ((item, key_password), entry) in input.items.iter().zip(&key_passwords).zip(store.entries())
    {
        assert_eq!(entry.created_millis(), input.created_millis, "timestamp");
        match (item, entry) {
            (Item::Key { alias, .. }, Entry::PrivateKey(key)) => {
                assert_eq!(key.alias(), alias.to_lowercase(), "key alias");
                assert_eq!(key.chain(), f.identity.chain(), "chain");
                let back = key
                    .identity(key_password, &limits)
                    .unwrap_or_else(|e| panic!("{kind:?}: key does not decrypt: {e}"));
                assert_eq!(
                    back.key().expose_pkcs8_der(),
                    f.identity.key().expose_pkcs8_der(),
                    "key bytes"
                );
            }
            (Item::Trusted { alias, root }, Entry::Trusted(trusted)) => {
                assert_eq!(trusted.alias(), alias.to_lowercase(), "trusted alias");
                let expected = if *root { &f.root } else { &f.intermediate };
                assert_eq!(trusted.certificate(), expected, "trusted certificate");
            }
            (item, entry) => panic!("entry kind changed: wrote {item:?}, read {entry:?}"),
        }
    }
});
