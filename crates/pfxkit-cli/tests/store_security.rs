//! Security issue #13, files written beside a store by someone else: journals, lock files and
//! temporaries planted or tampered with, symbolic links, directories others can write, and PEM
//! store layouts that destroy entries. Each test names the threat it guards against; each
//! failed on the code before its fix.
//!
//! Tests that need a second user create files owned by uid 65534 (`nobody`) with `chown`, which
//! only root can do: run as anyone else they print why and pass without checking. Stores are
//! written into fresh temp directories; identities are the openssl fixtures of `tests/data/p12`
//! (see `tests/data/gen.sh`).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

#[path = "store_common/mod.rs"]
mod common;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::Path;
use std::time::{Duration, Instant};

use common::{ENTRY_PASSWORD, Kind, create, ec, leftovers, rsa, snapshot};
use pfxkit::store::fs::{StoreLock, WriteOptions};
use pfxkit::store::pem::PemStore;
use pfxkit::store::{self, AddOptions, StoreAdapter, StoreSpec, StoreType};
use pfxkit::{Error, Password};

/// The uid of `nobody`, the stranger of these tests.
const STRANGER: u32 = 65534;

/// Whether this process can give files away (root); says why a test is skipped otherwise.
fn can_chown(test: &str) -> bool {
    let probe = tempfile::NamedTempFile::new().unwrap();
    let root = fs::metadata(probe.path()).unwrap().uid() == 0;
    if !root {
        eprintln!("{test}: skipped: needs root to create files owned by another user");
    }
    root
}

fn give_to_stranger(path: &Path) {
    std::os::unix::fs::lchown(path, Some(STRANGER), Some(STRANGER)).unwrap();
}

/// A PKCS#12 store in `dir` holding `web` → RSA.
fn pkcs12_store(dir: &Path) -> Box<dyn StoreAdapter> {
    let store = Kind::Pkcs12.open(dir);
    store.add(Some("web"), &rsa(), None, create()).unwrap();
    store
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
// 1. Journal injection

/// Threat: a user who can write in the store's directory (a shared 1777 directory) plants
/// `<store>.journal`; recovery, run by root's read-only `store inventory`, renamed whatever pairs
/// it listed: any file over any other. A journal owned by someone else, or writable by others,
/// must be refused before anything is renamed.
#[test]
fn refuses_foreign_journal() {
    if !can_chown("refuses_foreign_journal") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let store = pkcs12_store(dir);
    let path = Kind::Pkcs12.path(dir);
    let victim = dir.join("victim");
    let elsewhere = dir.join("elsewhere");
    // Even a journal naming only the store's own fixed temporary is refused when a stranger
    // wrote it: its temporary may be the stranger's too.
    let own_tmp = dir.join("store.p12.pfxkit-tmp");
    for (owner_is_stranger, mode) in [(true, 0o600), (false, 0o666)] {
        fs::write(&victim, b"victim").unwrap();
        let journal = dir.join("store.p12.journal");
        let mut text = Vec::new();
        for part in [&victim, &elsewhere, &own_tmp, &path] {
            text.extend_from_slice(part.as_os_str().as_encoded_bytes());
            text.push(0);
        }
        fs::write(&journal, &text).unwrap();
        fs::set_permissions(&journal, fs::Permissions::from_mode(mode)).unwrap();
        if owner_is_stranger {
            give_to_stranger(&journal);
        }
        let before = snapshot(dir);
        let err = store.inventory().unwrap_err();
        assert!(
            err.to_string().contains("journal"),
            "the error names the journal: {err}"
        );
        assert!(victim.exists() && !elsewhere.exists(), "nothing renamed");
        assert_eq!(snapshot(dir), before, "nothing changed");
        fs::remove_file(&journal).unwrap();
    }
    // With the journal gone the store works again.
    assert_eq!(aliases(&*store), ["web"]);
}

/// Threat: even a journal written by the store's owner (or a tampered one that passes the
/// ownership check) may only make recovery install the store's own fixed temporaries
/// (`<file>.pfxkit-tmp` → `<file>`); any other pair is refused and nothing is renamed.
#[test]
fn recovery_never_renames_outside_fixed_temporaries() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let store = pkcs12_store(dir);
    let victim = dir.join("victim");
    let target = dir.join("elsewhere");
    let other_dir = tempfile::tempdir().unwrap();
    let far = other_dir.path().join("far");
    fs::write(&victim, b"victim").unwrap();
    fs::write(&far, b"far").unwrap();
    let journal = dir.join("store.p12.journal");
    for (from, to) in [
        (&victim, &target),
        (&far, &Kind::Pkcs12.path(dir)),
        (&dir.join("store.p12.pfxkit-tmp"), &target),
    ] {
        let mut text = Vec::new();
        for part in [from, to] {
            text.extend_from_slice(part.as_os_str().as_encoded_bytes());
            text.push(0);
        }
        fs::write(&journal, &text).unwrap();
        fs::set_permissions(&journal, fs::Permissions::from_mode(0o600)).unwrap();
        let before = snapshot(dir);
        assert!(store.inventory().is_err(), "{from:?} → {to:?} refused");
        assert!(victim.exists() && far.exists() && !target.exists());
        assert_eq!(snapshot(dir), before, "nothing renamed");
    }
    fs::remove_file(&journal).unwrap();
    assert_eq!(aliases(&*store), ["web"]);
}

/// Threat: a stranger who creates the store's temporary (a fixed name) beside it in a shared
/// directory gets it installed as the store, or removed on their behalf. A temporary that is
/// not the store owner's is refused, not renamed and not removed.
#[test]
fn refuses_foreign_temporary() {
    if !can_chown("refuses_foreign_temporary") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let store = pkcs12_store(dir);
    let tmp = dir.join("store.p12.pfxkit-tmp");
    fs::write(&tmp, b"the stranger's store").unwrap();
    give_to_stranger(&tmp);
    let before = snapshot(dir);
    let err = store.inventory().unwrap_err();
    assert!(err.to_string().contains("pfxkit-tmp"), "{err}");
    assert_eq!(snapshot(dir), before);
    fs::remove_file(&tmp).unwrap();
    assert_eq!(aliases(&*store), ["web"]);
}

// =============================================================================================
// 2. Lock file

/// Threat: `<store>.lock` planted as a symbolic link makes the lock open (and create) any file
/// the link points to, as root. Lock files are opened with `O_NOFOLLOW` and never created
/// through a link.
#[test]
fn lock_file_symlink_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let store = pkcs12_store(dir);
    let lock = dir.join("store.p12.lock");
    fs::remove_file(&lock).unwrap();
    let created = dir.join("created-through-the-link");
    let existing = dir.join("existing");
    fs::write(&existing, b"keep").unwrap();
    fs::set_permissions(&existing, fs::Permissions::from_mode(0o644)).unwrap();
    for target in [&created, &existing] {
        symlink(target, &lock).unwrap();
        let err = store.inventory().unwrap_err();
        assert!(err.to_string().contains("lock"), "{err}");
        assert!(!created.exists(), "no file created through the link");
        assert_eq!(fs::read(&existing).unwrap(), b"keep");
        assert_eq!(
            fs::metadata(&existing).unwrap().mode() & 0o7777,
            0o644,
            "mode untouched"
        );
        assert!(fs::symlink_metadata(&lock).unwrap().is_symlink());
        fs::remove_file(&lock).unwrap();
    }
    assert_eq!(aliases(&*store), ["web"]);
}

/// Threat: a stranger creates `<store>.lock` first (in a shared directory), opens it and holds
/// the lock forever. A lock file owned by someone else is refused.
#[test]
fn refuses_foreign_lock_file() {
    if !can_chown("refuses_foreign_lock_file") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let store = pkcs12_store(dir);
    let lock = dir.join("store.p12.lock");
    give_to_stranger(&lock);
    let err = store.inventory().unwrap_err();
    assert!(err.to_string().contains("lock"), "{err}");
    std::os::unix::fs::chown(&lock, Some(0), Some(0)).unwrap();
    fs::set_permissions(&lock, fs::Permissions::from_mode(0o666)).unwrap();
    assert!(store.inventory().is_err(), "a lock others can open");
    fs::set_permissions(&lock, fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(aliases(&*store), ["web"]);
}

/// Threat: whoever holds the lock (or can open the lock file) stalls every writer forever.
/// Waiting is bounded: after the configured time the store reports "locked by another process".
#[test]
fn lock_wait_is_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path().to_path_buf();
    pkcs12_store(&dir);
    let holder = fs::File::open(dir.join("store.p12.lock")).unwrap();
    holder.lock().unwrap();
    let spec = Kind::Pkcs12
        .spec(&dir)
        .write_options(WriteOptions::default().lock_timeout(Duration::from_millis(300)));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let started = Instant::now();
        let result = store::open(&spec).unwrap().inventory().map(|_| ());
        let _ = tx.send((result, started.elapsed()));
    });
    let (result, waited) = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("the lock wait ends");
    let err = result.unwrap_err();
    assert!(matches!(err, Error::StoreLocked { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("store is locked by another process"),
        "{err}"
    );
    assert!(waited >= Duration::from_millis(300), "{waited:?}");
    drop(holder);
}

// =============================================================================================
// 3. Symlinked store path

/// Threat: a store path that is a symbolic link (`/etc/ssl/app.p12` → the real file) was
/// replaced by a regular file, so the real store never changed and the two forked silently.
/// The link is resolved once and the target is written atomically in its own directory.
#[test]
fn writes_through_symlinked_store_to_target() {
    for kind in Kind::ALL {
        let root = tempfile::tempdir().unwrap();
        let real_dir = root.path().join("real");
        let link_dir = root.path().join("links");
        fs::create_dir(&real_dir).unwrap();
        fs::create_dir(&link_dir).unwrap();
        let store = kind.open(&real_dir);
        store
            .add(
                Some("web"),
                &rsa(),
                kind.entry_password().as_ref(),
                create(),
            )
            .unwrap();
        for file in kind.files(&real_dir) {
            symlink(&file, link_dir.join(file.file_name().unwrap())).unwrap();
        }
        let via_link = kind.open(&link_dir);
        let options = AddOptions::new(true, false);
        via_link
            .add(Some("web"), &ec(), kind.entry_password().as_ref(), options)
            .unwrap();
        for file in kind.files(&link_dir) {
            assert!(
                fs::symlink_metadata(&file).unwrap().is_symlink(),
                "{kind:?}: {} is still a link",
                file.display()
            );
        }
        let leaf = store.inventory().unwrap()[0].chain[0].clone();
        assert_eq!(
            leaf,
            *ec().leaf(),
            "{kind:?}: the target holds the new entry"
        );
        let beside_links: Vec<_> = fs::read_dir(&link_dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !kind.files(&link_dir).iter().any(|f| f.ends_with(n)))
            .collect();
        assert!(beside_links.is_empty(), "{kind:?}: {beside_links:?}");
        assert!(leftovers(&real_dir).is_empty());
    }
}

// =============================================================================================
// 5. Directories others can write

/// Threat: in a directory every user can write without the sticky bit, anyone can rename,
/// replace or delete the store's files and plant its journal, lock and temporaries. Such a
/// store is refused unless the caller allows shared directories by name; a sticky directory
/// (like /tmp) is fine, since others cannot touch files they do not own there.
#[test]
fn refuses_store_in_world_writable_dir() {
    let root = tempfile::tempdir().unwrap();
    let shared = root.path().join("shared");
    fs::create_dir(&shared).unwrap();
    fs::set_permissions(&shared, fs::Permissions::from_mode(0o777)).unwrap();
    for kind in Kind::ALL {
        let store = kind.open(&shared);
        let err = store
            .add(
                Some("web"),
                &rsa(),
                kind.entry_password().as_ref(),
                create(),
            )
            .unwrap_err();
        assert!(
            err.to_string().contains("writable by other users"),
            "{kind:?}: {err}"
        );
        assert!(snapshot(&shared).is_empty(), "{kind:?}: nothing written");
    }
    fs::set_permissions(&shared, fs::Permissions::from_mode(0o1777)).unwrap();
    let store = Kind::Jks.open(&shared);
    store.add(Some("web"), &rsa(), None, create()).unwrap();
    fs::set_permissions(&shared, fs::Permissions::from_mode(0o777)).unwrap();
    assert!(store.inventory().is_err());
    let allowed = store::open(
        &Kind::Jks
            .spec(&shared)
            .write_options(WriteOptions::default().allow_shared_dir(true)),
    )
    .unwrap();
    assert_eq!(aliases(&*allowed), ["web"]);
}

// =============================================================================================
// 17, 18. PEM store files

/// Threat: a PEM store whose key path is its certificate path wrote the key file over the
/// certificate file (or the other way round), and a failed add destroyed the entry. The
/// configuration is refused when the store is opened (so also when the catalog registers it).
#[test]
fn refuses_pem_store_with_key_path_equal_to_cert_path() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let cert = dir.join("store.pem");
    let same = PemStore::new(&cert);
    same.add(
        Some("web"),
        &rsa(),
        Some(&Password::new(ENTRY_PASSWORD)),
        create(),
    )
    .unwrap();
    let before = snapshot(dir);
    for key_path in [cert.clone(), dir.join(".").join("store.pem")] {
        let spec = StoreSpec::new(StoreType::Pem, &cert).key_path(Some(key_path.clone()));
        assert!(store::open(&spec).is_err(), "{}", key_path.display());
        let store = PemStore::new(&cert).key_path(&key_path);
        assert!(store.inventory().is_err());
        assert!(
            store
                .add(
                    Some("web"),
                    &ec(),
                    Some(&Password::new(ENTRY_PASSWORD)),
                    AddOptions::new(true, false),
                )
                .is_err()
        );
        assert_eq!(snapshot(dir), before);
    }
    assert_eq!(same.inventory().unwrap()[0].chain[0], *rsa().leaf());
}

/// Threat (hygiene): `store remove` on a PEM key-entry store left 0-byte certificate and key
/// files behind, which other tools read as a broken store. Removing the one entry removes the
/// store's files (the lock file stays, by design).
#[test]
fn pem_store_remove_deletes_files() {
    for kind in [Kind::PemSameFile, Kind::PemSeparateKey] {
        let dir = tempfile::tempdir().unwrap();
        let dir = dir.path();
        let store = kind.open(dir);
        store
            .add(
                Some("web"),
                &rsa(),
                kind.entry_password().as_ref(),
                create(),
            )
            .unwrap();
        store.remove("web").unwrap();
        for file in kind.files(dir) {
            assert!(!file.exists(), "{kind:?}: {} removed", file.display());
        }
        assert!(snapshot(dir).is_empty(), "{kind:?}: {:?}", snapshot(dir));
        assert!(matches!(
            store.inventory(),
            Err(Error::StoreNotFound { .. })
        ));
        // And a new entry can be added again.
        store
            .add(Some("web"), &ec(), kind.entry_password().as_ref(), create())
            .unwrap();
    }
}

/// The lock protects its own files only: `StoreLock` cannot be talked into writing elsewhere.
#[test]
fn commit_writes_only_the_locked_files() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a");
    let b = dir.path().join("b");
    let lock = StoreLock::acquire(&[&a], &WriteOptions::default()).unwrap();
    assert!(
        lock.commit(&[(&b, b"x")], &WriteOptions::default())
            .is_err()
    );
    assert!(!b.exists());
}
