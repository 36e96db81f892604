//! A failed store change returns the documented error and leaves the store as it was (issue #5).
//!
//! Every failure is checked against SHA-256 snapshots of the store's files taken before it:
//! wrong store password, corrupt files, alias conflicts, missing stores, a PEM key without an
//! entry password, and an I/O failure injected at every step of the write path
//! (`WriteOptions::fault`), after which the re-opened store must hold exactly the old or exactly
//! the new entry with a key that matches its certificate. Identities are the openssl fixtures in
//! `tests/data/p12/` (see `tests/data/gen.sh`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

#[path = "store_common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use common::{
    Kind, create, ec, ed25519, leftovers, overwrite, plain, read_identity, rsa, snapshot,
};
use pfxkit::store::fs::{FaultPoint, WriteOptions};
use pfxkit::store::pem::PemStore;
use pfxkit::store::{self, StoreAdapter};
use pfxkit::{Error, Identity, Password};

fn faulty(fault: FaultPoint) -> WriteOptions {
    let mut write = WriteOptions::default();
    write.fault = Some(fault);
    write
}

/// SHA-256 of each of the store's own files (`None` when absent), taken from a snapshot.
fn store_files(
    kind: Kind,
    dir: &Path,
    all: &BTreeMap<String, String>,
) -> BTreeMap<String, Option<String>> {
    kind.files(dir)
        .iter()
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            let hash = all.get(&name).cloned();
            (name, hash)
        })
        .collect()
}

/// A store of `kind` in `dir` holding `web` → RSA, and for multi-entry stores `other` →
/// Ed25519 as a bystander that every change must keep.
fn populated(kind: Kind, dir: &Path) -> Box<dyn StoreAdapter> {
    let store = kind.open(dir);
    let ep = kind.entry_password();
    store
        .add(Some("web"), &rsa(), ep.as_ref(), create())
        .unwrap();
    if !kind.is_pem() {
        store.add(Some("other"), &ed25519(), None, plain()).unwrap();
    }
    store
}

fn leaf_of(kind: Kind, dir: &Path, alias: &str) -> String {
    read_identity(kind, dir, alias, None)
        .unwrap()
        .leaf()
        .sha256_hex()
}

// ---------------------------------------------------------------------------------------------
// Documented errors, store untouched

#[test]
fn wrong_store_password_is_wrong_password_and_changes_nothing() {
    for kind in [Kind::Pkcs12, Kind::Jks] {
        let dir = tempfile::tempdir().unwrap();
        let dir = dir.path();
        populated(kind, dir);
        let before = snapshot(dir);
        let store =
            store::open(&kind.spec_with(dir, "not-the-store-password", WriteOptions::default()))
                .unwrap();
        let results = [
            store.inventory().map(|_| ()),
            store.add(Some("new"), &ec(), None, plain()).map(|_| ()),
            store.add(Some("web"), &ec(), None, overwrite()).map(|_| ()),
            store.remove("web"),
        ];
        for result in results {
            let err = result.unwrap_err();
            assert!(
                matches!(err, Error::WrongPassword { .. }),
                "{kind:?}: {err:?}"
            );
        }
        assert_eq!(snapshot(dir), before, "{kind:?}");
    }
}

type Corruption = dyn Fn(&[u8]) -> Vec<u8>;
type Op<'a> = dyn Fn() -> pfxkit::Result<()> + 'a;

#[test]
fn corrupt_store_file_is_malformed_and_changes_nothing() {
    for kind in Kind::ALL {
        let truncated = |bytes: &[u8]| bytes[..bytes.len() / 2].to_vec();
        let garbage = |_: &[u8]| b"this is not a certificate store\n".to_vec();
        let corruptions: [(&str, &Corruption); 2] =
            [("truncated", &truncated), ("garbage", &garbage)];
        for (how, corrupt) in corruptions {
            let dir = tempfile::tempdir().unwrap();
            let dir = dir.path();
            let store = populated(kind, dir);
            let path = kind.path(dir);
            std::fs::write(&path, corrupt(&std::fs::read(&path).unwrap())).unwrap();
            let before = snapshot(dir);
            let ep = kind.entry_password();
            let ops: [(&str, &Op); 3] = [
                ("inventory", &|| store.inventory().map(|_| ())),
                ("overwrite", &|| {
                    store
                        .add(Some("web"), &ec(), ep.as_ref(), overwrite())
                        .map(|_| ())
                }),
                ("remove", &|| store.remove("web")),
            ];
            for (op, run) in ops {
                match run() {
                    Err(Error::Malformed { .. }) => {}
                    other => unreachable!("{kind:?} {how} {op}: expected Malformed, got {other:?}"),
                }
            }
            assert_eq!(snapshot(dir), before, "{kind:?} {how}");
        }
    }
}

#[test]
fn existing_alias_without_overwrite_is_alias_exists_and_changes_nothing() {
    for kind in Kind::ALL {
        let dir = tempfile::tempdir().unwrap();
        let dir = dir.path();
        let store = populated(kind, dir);
        let before = snapshot(dir);
        let ep = kind.entry_password();
        for options in [plain(), create()] {
            let err = store
                .add(Some("web"), &ec(), ep.as_ref(), options)
                .unwrap_err();
            assert!(
                matches!(&err, Error::AliasExists { alias } if alias == "web"),
                "{kind:?}: {err:?}"
            );
        }
        assert_eq!(snapshot(dir), before, "{kind:?}");
        assert_eq!(leaf_of(kind, dir, "web"), rsa().leaf().sha256_hex());
    }
}

#[test]
fn removing_a_missing_alias_is_alias_not_found_and_changes_nothing() {
    for kind in Kind::ALL {
        let dir = tempfile::tempdir().unwrap();
        let dir = dir.path();
        let store = populated(kind, dir);
        let before = snapshot(dir);
        let err = store.remove("absent").unwrap_err();
        assert!(
            matches!(&err, Error::AliasNotFound { alias } if alias == "absent"),
            "{kind:?}: {err:?}"
        );
        assert_eq!(snapshot(dir), before, "{kind:?}");
    }
}

#[test]
fn missing_store_without_create_is_store_not_found_and_creates_nothing() {
    for kind in Kind::ALL {
        let dir = tempfile::tempdir().unwrap();
        let dir = dir.path();
        let store = kind.open(dir);
        let ep = kind.entry_password();
        let results = [
            store.inventory().map(|_| ()),
            store
                .add(Some("web"), &rsa(), ep.as_ref(), plain())
                .map(|_| ()),
            store
                .add(Some("web"), &rsa(), ep.as_ref(), overwrite())
                .map(|_| ()),
            store.remove("web"),
        ];
        for result in results {
            let err = result.unwrap_err();
            assert!(
                matches!(&err, Error::StoreNotFound { path } if *path == kind.path(dir)),
                "{kind:?}: {err:?}"
            );
        }
        assert!(!store.exists());
        assert_eq!(
            snapshot(dir),
            BTreeMap::new(),
            "{kind:?}: files were created"
        );
    }
}

#[test]
fn pem_add_without_entry_password_is_invalid_and_changes_nothing() {
    for kind in [Kind::PemSameFile, Kind::PemSeparateKey] {
        // on a missing store, even with `create`
        let dir = tempfile::tempdir().unwrap();
        let dir = dir.path();
        let store = kind.open(dir);
        for password in [None, Some(Password::absent())] {
            let err = store
                .add(Some("web"), &rsa(), password.as_ref(), create())
                .unwrap_err();
            assert!(matches!(err, Error::Invalid(_)), "{kind:?}: {err:?}");
        }
        assert_eq!(snapshot(dir), BTreeMap::new(), "{kind:?}");

        // on an existing store, even with `overwrite`
        let store = populated(kind, dir);
        let before = snapshot(dir);
        for password in [None, Some(Password::absent())] {
            let err = store
                .add(Some("web"), &ec(), password.as_ref(), overwrite())
                .unwrap_err();
            assert!(matches!(err, Error::Invalid(_)), "{kind:?}: {err:?}");
        }
        assert_eq!(snapshot(dir), before, "{kind:?}");
    }
}

#[test]
fn trust_only_pem_store_reports_missing_and_duplicate_aliases() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("trust.pem");
    let store = PemStore::trust_only(&file);
    let err = store.add(Some("ca"), &rsa(), None, plain()).unwrap_err();
    assert!(matches!(err, Error::StoreNotFound { .. }), "{err:?}");
    store.add(Some("ca"), &rsa(), None, create()).unwrap();
    let before = snapshot(dir.path());
    let err = store.add(Some("ca"), &ec(), None, plain()).unwrap_err();
    assert!(matches!(err, Error::AliasExists { .. }), "{err:?}");
    let err = store.remove("absent").unwrap_err();
    assert!(matches!(err, Error::AliasNotFound { .. }), "{err:?}");
    assert_eq!(snapshot(dir.path()), before);
}

// ---------------------------------------------------------------------------------------------
// Injected I/O failures

/// Whether a commit with `fault` has passed its commit point, so that recovery completes it.
/// Single-file commits never reach the journal steps; their one rename is the commit point.
fn committed(kind: Kind, fault: FaultPoint) -> bool {
    match fault {
        FaultPoint::AfterWriteTemp | FaultPoint::AfterSyncTemp => false,
        FaultPoint::AfterJournal | FaultPoint::AfterFirstRename => true,
        FaultPoint::AfterRenames => true,
        other => panic_unknown(kind, other),
    }
}

/// Whether an add with `fault` reports an error: single-file commits never reach the
/// journal-only fault points and succeed.
fn fails(kind: Kind, fault: FaultPoint) -> bool {
    kind == Kind::PemSeparateKey
        || !matches!(
            fault,
            FaultPoint::AfterJournal | FaultPoint::AfterFirstRename
        )
}

fn panic_unknown(kind: Kind, fault: FaultPoint) -> bool {
    unreachable!("{kind:?}: a new fault point {fault:?} needs an expectation here")
}

/// After `result` of a change with `fault`, re-opens the store (which recovers) and checks it
/// holds `old` or `new` as the fault dictates, with matching keys, nothing left over, and the
/// bystander entry intact.
fn check_after_fault(
    kind: Kind,
    dir: &Path,
    fault: FaultPoint,
    result: pfxkit::Result<()>,
    before: &BTreeMap<String, String>,
    expect_new: &dyn Fn(&Path),
    expect_old: &dyn Fn(&Path),
) {
    let what = format!("{kind:?} {fault:?}");
    match result {
        Err(Error::Io { source, .. }) => {
            assert!(fails(kind, fault), "{what}: unexpected error");
            assert!(source.to_string().contains("injected fault"), "{what}");
        }
        Err(other) => panic_on(&what, &other),
        Ok(()) => assert!(!fails(kind, fault), "{what}: the fault did not fire"),
    }
    if !committed(kind, fault) {
        // Before the commit point the store's own files were never touched.
        assert_eq!(
            store_files(kind, dir, &snapshot(dir)),
            store_files(kind, dir, before),
            "{what}"
        );
    }
    // Re-opening takes the lock, which recovers (rolls forward or back). Removing a PEM
    // store's one entry removes its files, so the store is then gone.
    match kind.open(dir).inventory() {
        Err(Error::StoreNotFound { .. }) if kind.is_pem() && committed(kind, fault) => {}
        other => {
            other.unwrap();
        }
    }
    assert!(leftovers(dir).is_empty(), "{what}: {:?}", leftovers(dir));
    if committed(kind, fault) {
        expect_new(dir);
    } else {
        assert_eq!(
            &snapshot(dir),
            before,
            "{what}: not byte-for-byte the old store"
        );
        expect_old(dir);
    }
    if !kind.is_pem() {
        assert_eq!(
            leaf_of(kind, dir, "other"),
            ed25519().leaf().sha256_hex(),
            "{what}: bystander entry"
        );
    }
}

fn panic_on(what: &str, err: &Error) {
    unreachable!("{what}: expected an injected I/O error, got {err:?}")
}

fn holds(kind: Kind, dir: &Path, identity: &Identity) {
    let found = read_identity(kind, dir, "web", None).unwrap();
    assert_eq!(
        found.chain(),
        identity.chain(),
        "{kind:?}: wrong entry under web"
    );
}

#[test]
fn fault_at_every_write_step_of_an_overwrite_leaves_the_old_or_the_new_entry() {
    let (old, new) = (rsa(), ec());
    for kind in Kind::ALL {
        for fault in FaultPoint::ALL {
            let dir = tempfile::tempdir().unwrap();
            let dir = dir.path();
            populated(kind, dir);
            let before = snapshot(dir);
            let result = kind
                .open_with(dir, faulty(fault))
                .add(
                    Some("web"),
                    &new,
                    kind.entry_password().as_ref(),
                    overwrite(),
                )
                .map(|_| ());
            let expect_new = |dir: &Path| holds(kind, dir, &new);
            let expect_old = |dir: &Path| holds(kind, dir, &old);
            check_after_fault(kind, dir, fault, result, &before, &expect_new, &expect_old);
        }
    }
}

#[test]
fn fault_at_every_write_step_of_a_remove_leaves_the_entry_or_removes_it() {
    for kind in Kind::ALL {
        for fault in FaultPoint::ALL {
            let dir = tempfile::tempdir().unwrap();
            let dir = dir.path();
            populated(kind, dir);
            let before = snapshot(dir);
            let result = kind.open_with(dir, faulty(fault)).remove("web");
            let gone = |dir: &Path| {
                if kind.is_pem() {
                    // The store's one entry went, and its files with it.
                    assert!(
                        kind.files(dir).iter().all(|f| !f.exists()),
                        "{kind:?} {fault:?}"
                    );
                    return;
                }
                let aliases: Vec<String> = kind
                    .open(dir)
                    .inventory()
                    .unwrap()
                    .into_iter()
                    .map(|e| e.alias)
                    .collect();
                assert!(!aliases.contains(&"web".to_string()), "{kind:?} {fault:?}");
            };
            let kept = |dir: &Path| {
                assert_eq!(leaf_of(kind, dir, "web"), rsa().leaf().sha256_hex());
            };
            check_after_fault(kind, dir, fault, result, &before, &gone, &kept);
        }
    }
}

#[test]
fn fault_while_creating_a_store_leaves_no_store_or_the_whole_store() {
    for kind in Kind::ALL {
        for fault in FaultPoint::ALL {
            let dir = tempfile::tempdir().unwrap();
            let dir = dir.path();
            let result = kind
                .open_with(dir, faulty(fault))
                .add(
                    Some("web"),
                    &rsa(),
                    kind.entry_password().as_ref(),
                    create(),
                )
                .map(|_| ());
            assert_eq!(result.is_err(), fails(kind, fault), "{kind:?} {fault:?}");
            let store = kind.open(dir);
            match store.inventory() {
                Err(Error::StoreNotFound { .. }) => {
                    assert!(!committed(kind, fault), "{kind:?} {fault:?}");
                    assert_eq!(snapshot(dir), BTreeMap::new(), "{kind:?} {fault:?}");
                }
                Ok(_) => {
                    assert!(committed(kind, fault), "{kind:?} {fault:?}");
                    assert_eq!(leaf_of(kind, dir, "web"), rsa().leaf().sha256_hex());
                }
                Err(e) => panic_on(&format!("{kind:?} {fault:?}"), &e),
            }
            assert!(leftovers(dir).is_empty(), "{kind:?} {fault:?}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Backups

#[test]
fn backup_option_keeps_the_previous_version_of_every_file() {
    for kind in Kind::ALL {
        let dir = tempfile::tempdir().unwrap();
        let dir = dir.path();
        let mut write = WriteOptions::default();
        write.backup = true;
        let store = kind.open_with(dir, write);
        let ep = kind.entry_password();
        store
            .add(Some("web"), &rsa(), ep.as_ref(), create())
            .unwrap();
        let bak = |p: &Path| {
            let mut name = p.file_name().unwrap().to_os_string();
            name.push(".bak");
            p.with_file_name(name)
        };
        for file in kind.files(dir) {
            assert!(
                !bak(&file).exists(),
                "{kind:?}: nothing to back up on create"
            );
        }
        let first: Vec<Vec<u8>> = kind
            .files(dir)
            .iter()
            .map(|f| std::fs::read(f).unwrap())
            .collect();
        store
            .add(Some("web"), &ec(), ep.as_ref(), overwrite())
            .unwrap();
        for (file, previous) in kind.files(dir).iter().zip(&first) {
            assert_eq!(&std::fs::read(bak(file)).unwrap(), previous, "{kind:?}");
        }
        assert_eq!(leaf_of(kind, dir, "web"), ec().leaf().sha256_hex());
        // The backups are a complete store: restored, they hold the previous entry.
        for file in kind.files(dir) {
            std::fs::copy(bak(&file), &file).unwrap();
        }
        assert_eq!(leaf_of(kind, dir, "web"), rsa().leaf().sha256_hex());
    }
}

// ---------------------------------------------------------------------------------------------
// The CLI's exit codes for the same failures

fn pfxkit(args: &[String]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_pfxkit"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn cli_store_failures_exit_with_the_documented_codes() {
    for kind in Kind::ALL {
        let dir = tempfile::tempdir().unwrap();
        let dir = dir.path();
        let base = kind.cli_args(dir);
        let add = |extra: &[&str]| {
            let mut args = vec!["store".to_string(), "add".to_string()];
            args.extend(base.iter().cloned());
            args.extend(
                [
                    "--alias",
                    "web",
                    "--pfx",
                    common::fixture("openssl-default.p12").to_str().unwrap(),
                    "--pfx-password",
                    "pass:pfxkit-pass",
                ]
                .map(String::from),
            );
            args.extend(extra.iter().map(|s| s.to_string()));
            pfxkit(&args)
        };
        let remove = |alias: &str| {
            let mut args = vec!["store".to_string(), "remove".to_string()];
            args.extend(
                base.iter()
                    .filter(|a| !a.starts_with("pass:entry") && *a != "--entry-password")
                    .cloned(),
            );
            args.extend(["--alias".to_string(), alias.to_string()]);
            pfxkit(&args)
        };

        let (code, err) = add(&[]);
        assert_eq!(code, 1, "{kind:?}: missing store without --create: {err}");
        let (code, err) = add(&["--create"]);
        assert_eq!(code, 0, "{kind:?}: {err}");
        let before = snapshot(dir);
        let (code, err) = add(&[]);
        assert_eq!(code, 1, "{kind:?}: alias exists: {err}");
        let (code, err) = remove("absent");
        assert_eq!(code, 1, "{kind:?}: alias not found: {err}");
        assert_eq!(snapshot(dir), before, "{kind:?}");

        if !kind.is_pem() {
            let mut wrong = vec!["store".to_string(), "inventory".to_string()];
            wrong.extend(base.iter().map(|a| {
                if a.starts_with("pass:store") {
                    "pass:wrong".to_string()
                } else {
                    a.clone()
                }
            }));
            let (code, err) = pfxkit(&wrong);
            assert_eq!(code, 3, "{kind:?}: wrong store password: {err}");
        }
        std::fs::write(kind.path(dir), b"garbage\n").unwrap();
        let (code, err) = add(&["--overwrite"]);
        assert_eq!(code, 4, "{kind:?}: malformed store: {err}");
    }
}

// ---------------------------------------------------------------------------------------------
// Regression: a truncated PEM file is malformed, not a shorter store

/// The `pem` crate skips a block that has no `-----END` line. A trust store cut inside its last
/// certificate used to read as a valid store of the others, and the next add rewrote it without
/// the cut certificate; a key-entry store cut inside its key read as "no key".
#[test]
fn truncated_pem_block_is_malformed_and_not_read_as_a_shorter_store() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("trust.pem");
    let store = PemStore::trust_only(&file);
    store.add(Some("rsa"), &rsa(), None, create()).unwrap();
    store.add(Some("ec"), &ec(), None, plain()).unwrap();
    let text = std::fs::read_to_string(&file).unwrap();
    let last_begin = text.rfind("-----BEGIN CERTIFICATE-----").unwrap();
    std::fs::write(&file, &text[..last_begin + 100]).unwrap();
    let before = snapshot(dir.path());
    let err = store.inventory().unwrap_err();
    assert!(matches!(err, Error::Malformed { .. }), "{err:?}");
    let err = store
        .add(Some("ed"), &ed25519(), None, plain())
        .unwrap_err();
    assert!(matches!(err, Error::Malformed { .. }), "{err:?}");
    assert_eq!(snapshot(dir.path()), before);
    let err = pfxkit::pem::read_bundle(
        &std::fs::read(&file).unwrap(),
        None,
        &pfxkit::Limits::default(),
    )
    .unwrap_err();
    assert!(matches!(err, Error::Malformed { .. }), "{err:?}");
}

// ---------------------------------------------------------------------------------------------
// Regression: recovery removes every kind of temporary a crash can leave

/// A SIGKILL between writing the journal's temporary and renaming it (found by
/// `tests/store_crash.rs`) left `<store>.journal.pfxkit-tmp…` behind for good: recovery only
/// removed temporaries named after the store's own files. The same held for the temporary of a
/// `.bak` backup. Each crash leaked one file.
#[test]
fn recovery_removes_leftover_journal_and_backup_temporaries() {
    for kind in Kind::ALL {
        let dir = tempfile::tempdir().unwrap();
        let dir = dir.path();
        populated(kind, dir);
        let before = snapshot(dir);
        let name = kind
            .path(dir)
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        for stray in [
            format!("{name}.journal.pfxkit-tmp"),
            format!("{name}.bak.pfxkit-tmp"),
            format!("{name}.pfxkit-tmp"),
        ] {
            std::fs::write(dir.join(stray), b"half-written").unwrap();
        }
        assert_eq!(leftovers(dir).len(), 3);
        kind.open(dir).inventory().unwrap();
        assert!(leftovers(dir).is_empty(), "{kind:?}: {:?}", leftovers(dir));
        assert_eq!(snapshot(dir), before, "{kind:?}");
    }
}
