//! Concurrent writers lose nothing: 8 threads and 4 `pfxkit` processes add distinct aliases to
//! one PKCS#12 store and one JKS store at the same time; afterwards every alias is there with
//! the identity added under it (issue #5). The store lock (`<store>.lock`, `flock`) serialises
//! each read-change-write, across threads of one process and across processes.
//!
//! Identities are the openssl fixtures in `tests/data/p12/` (see `tests/data/gen.sh`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

#[path = "store_common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::sync::{Arc, Barrier};

use common::{Kind, ec, read_identity, rsa};
use pfxkit::pkcs12::{Builder, Profile};
use pfxkit::store::AddOptions;
use pfxkit::{Limits, Password};

const THREADS: usize = 8;
const PROCESSES: usize = 4;
const ADDS_PER_WRITER: usize = 2;

fn concurrent_adds_lose_nothing(kind: Kind) {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path().to_path_buf();
    let (rsa, ec) = (rsa(), ec());
    if kind == Kind::Pkcs12 {
        // Every add re-encrypts every key of a PKCS#12 store and the store keeps the file's
        // iteration count; starting from an empty store with few iterations keeps this test
        // about locking, not PBKDF2. (The JKS store is created by whichever writer comes first.)
        let empty = Builder::new(Profile::Modern)
            .iterations(100)
            .allow_empty()
            .build(&Password::new(common::STORE_PASSWORD), &Limits::default())
            .unwrap();
        std::fs::write(kind.path(&dir), empty).unwrap();
    }

    // Processes: each adds its aliases one after another with the CLI (the first may create).
    let processes: Vec<_> = (0..PROCESSES)
        .map(|p| {
            let dir = dir.clone();
            std::thread::spawn(move || {
                for n in 0..ADDS_PER_WRITER {
                    let status = Command::new(env!("CARGO_BIN_EXE_pfxkit"))
                        .args(["store", "add"])
                        .args(kind.cli_args(&dir))
                        .args(["--alias", &format!("process-{p}-{n}"), "--pfx"])
                        .arg(common::fixture("openssl-ec256.p12"))
                        .args(["--pfx-password", "pass:pfxkit-pass", "--create"])
                        .stdout(Stdio::null())
                        .status()
                        .unwrap();
                    assert!(status.success(), "{kind:?}: process {p} add {n}");
                }
            })
        })
        .collect();

    // Threads: each opens its own adapter on the same store and adds its aliases.
    let barrier = Arc::new(Barrier::new(THREADS));
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let (dir, barrier, rsa) = (dir.clone(), barrier.clone(), rsa.clone());
            std::thread::spawn(move || {
                let store = kind.open(&dir);
                barrier.wait();
                for n in 0..ADDS_PER_WRITER {
                    store
                        .add(
                            Some(&format!("thread-{t}-{n}")),
                            &rsa,
                            None,
                            AddOptions::new(false, true),
                        )
                        .unwrap();
                }
            })
        })
        .collect();
    for handle in processes.into_iter().chain(threads) {
        handle.join().unwrap();
    }

    let mut expected: BTreeMap<String, &pfxkit::Identity> = BTreeMap::new();
    for t in 0..THREADS {
        for n in 0..ADDS_PER_WRITER {
            expected.insert(format!("thread-{t}-{n}"), &rsa);
        }
    }
    for p in 0..PROCESSES {
        for n in 0..ADDS_PER_WRITER {
            expected.insert(format!("process-{p}-{n}"), &ec);
        }
    }
    let mut aliases: Vec<String> = kind
        .open(&dir)
        .inventory()
        .unwrap()
        .into_iter()
        .map(|e| e.alias)
        .collect();
    aliases.sort();
    assert_eq!(
        aliases,
        expected.keys().cloned().collect::<Vec<_>>(),
        "{kind:?}: lost or extra entries"
    );
    for (alias, identity) in &expected {
        let found = read_identity(kind, &dir, alias, None).unwrap();
        assert_eq!(found.chain(), identity.chain(), "{kind:?}: {alias}");
    }
    assert!(common::leftovers(&dir).is_empty());
}

#[test]
fn concurrent_threads_and_processes_adding_to_one_pkcs12_store_lose_nothing() {
    concurrent_adds_lose_nothing(Kind::Pkcs12);
}

#[test]
fn concurrent_threads_and_processes_adding_to_one_jks_store_lose_nothing() {
    concurrent_adds_lose_nothing(Kind::Jks);
}
