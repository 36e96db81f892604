//! Crash safety: a `pfxkit store add --overwrite` killed with SIGKILL at a random instant
//! leaves a store that opens with exactly one of the two identities under the alias, its key
//! matching its certificate (issue #5).
//!
//! For every store type (PEM with the key in the same file, PEM with a separate key file,
//! PKCS#12, JKS) the loop spawns the `pfxkit` binary alternating between the RSA and the P-256
//! fixture (`tests/data/p12/openssl-default.p12`, `openssl-ec256.p12`), kills it with
//! `Child::kill` (SIGKILL on Unix) after a random delay, then opens the store through the
//! library, which recovers under the lock, and reads the entry back through the codecs.
//!
//! The delay is drawn from 0 ms to a little more than one uninterrupted run of the binary,
//! measured first, so kills land across the whole run (parsing, KDF, writing, renaming) and not
//! only before the write starts. `PFXKIT_CRASH_ITERATIONS` sets the total number of kills across
//! the four store types (default 200).
//!
//! The same holds for `pfxkit store passwd --alias --new-key-password` (keytool's
//! `-keypasswd`) on a JKS store: killed at any instant, the key opens under exactly one of the
//! two key passwords and the store's other entries are untouched.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

#[path = "store_common/mod.rs"]
mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Kind, STORE_PASSWORD, XorShift, ec, leftovers, read_identity, rsa};
use pfxkit::store::AddOptions;

const FIXTURES: [&str; 2] = ["openssl-default.p12", "openssl-ec256.p12"];

fn iterations_per_store() -> usize {
    let total: usize = std::env::var("PFXKIT_CRASH_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    total.div_ceil(Kind::ALL.len()).max(1)
}

fn add_command(kind: Kind, dir: &Path, fixture: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pfxkit"));
    cmd.args(["store", "add"])
        .args(kind.cli_args(dir))
        .args(["--alias", "web", "--pfx"])
        .arg(common::fixture(fixture))
        .args(["--pfx-password", "pass:pfxkit-pass", "--overwrite"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd
}

#[derive(Debug, Default)]
struct Tally {
    kills: usize,
    finished_before_kill: usize,
    mid_write: usize,
    journal_seen: usize,
    holds_rsa: usize,
    holds_ec: usize,
}

fn crash_loop(kind: Kind) {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let (rsa, ec) = (rsa(), ec());
    kind.open(dir)
        .add(
            Some("web"),
            &rsa,
            kind.entry_password().as_ref(),
            AddOptions::new(false, true),
        )
        .unwrap();

    // One uninterrupted run sets the window the kills are spread over.
    let started = Instant::now();
    assert!(
        add_command(kind, dir, FIXTURES[1])
            .status()
            .unwrap()
            .success()
    );
    let run_ms = started.elapsed().as_millis() as u64;
    let window_ms = (run_ms + run_ms / 5).clamp(5, 1000);

    let mut rng = XorShift::from_time();
    let mut tally = Tally::default();
    let started = Instant::now();
    for i in 0..iterations_per_store() {
        let mut child = add_command(kind, dir, FIXTURES[i % 2]).spawn().unwrap();
        std::thread::sleep(Duration::from_micros(rng.below(window_ms * 1000)));
        // SIGKILL: no destructor, no unwinding, the lock released by the kernel.
        let _ = child.kill();
        let status = child.wait().unwrap();
        tally.kills += 1;
        if status.success() {
            tally.finished_before_kill += 1;
        }
        let left = leftovers(dir);
        if !left.is_empty() {
            tally.mid_write += 1;
        }
        if left.iter().any(|n| n.ends_with(".journal")) {
            tally.journal_seen += 1;
        }

        // Re-opening recovers; then exactly one entry, one of the two identities, key matching.
        let entries = kind.open(dir).inventory().unwrap();
        let what = format!("{kind:?} kill {i} (leftovers before recovery: {left:?})");
        assert_eq!(entries.len(), 1, "{what}");
        assert_eq!(entries[0].alias, "web", "{what}");
        assert!(entries[0].has_private_key, "{what}");
        assert!(leftovers(dir).is_empty(), "{what}: {:?}", leftovers(dir));
        let found = read_identity(kind, dir, "web", None)
            .unwrap_or_else(|e| unreachable!("{what}: the store does not open: {e:?}"));
        if found.chain() == rsa.chain() {
            tally.holds_rsa += 1;
        } else if found.chain() == ec.chain() {
            tally.holds_ec += 1;
        } else {
            unreachable!("{what}: neither identity: {}", found.leaf().subject());
        }
        if status.success() {
            let written = if i % 2 == 0 { &rsa } else { &ec };
            assert_eq!(
                found.chain(),
                written.chain(),
                "{what}: a finished add was lost"
            );
        }
        let listed: Vec<String> = entries[0].chain.iter().map(|c| c.sha256_hex()).collect();
        let read: Vec<String> = found.chain().iter().map(|c| c.sha256_hex()).collect();
        assert_eq!(listed, read, "{what}: inventory and contents disagree");
    }
    eprintln!(
        "{kind:?}: one run {run_ms} ms, kill window 0..{window_ms} ms, {:.1} s: {tally:?}",
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn pem_store_with_key_in_same_file_survives_sigkill_at_any_instant() {
    crash_loop(Kind::PemSameFile);
}

#[test]
fn pem_store_with_separate_key_file_survives_sigkill_at_any_instant() {
    crash_loop(Kind::PemSeparateKey);
}

#[test]
fn pkcs12_store_survives_sigkill_at_any_instant() {
    crash_loop(Kind::Pkcs12);
}

#[test]
fn jks_store_survives_sigkill_at_any_instant() {
    crash_loop(Kind::Jks);
}

/// `pfxkit store passwd` moving the key of `web` in the JKS store of `dir` from `old` to `new`.
fn key_passwd_command(dir: &Path, old: &str, new: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pfxkit"));
    cmd.args(["store", "passwd"])
        .args(Kind::Jks.cli_args(dir))
        .args(["--alias", "web"])
        .arg("--key-password")
        .arg(format!("pass:{old}"))
        .arg("--new-key-password")
        .arg(format!("pass:{new}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd
}

#[test]
fn jks_key_password_change_survives_sigkill_at_any_instant() {
    let passwords = ["key-pass-one", "key-pass-two"];
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let (rsa, ec) = (rsa(), ec());
    let store = Kind::Jks.open(dir);
    let create = AddOptions::new(false, true);
    store
        .add(
            Some("web"),
            &rsa,
            Some(&pfxkit::Password::new(passwords[0])),
            create,
        )
        .unwrap();
    // Another key entry under the store password, and a trusted certificate.
    store.add(Some("other"), &ec, None, create).unwrap();
    store
        .add_trusted("root", rsa.chain().last().unwrap(), create)
        .unwrap();

    let started = Instant::now();
    assert!(
        key_passwd_command(dir, passwords[0], passwords[1])
            .status()
            .unwrap()
            .success()
    );
    let run_ms = started.elapsed().as_millis() as u64;
    let window_ms = (run_ms + run_ms / 5).clamp(5, 1000);
    let mut current = 1;

    let mut rng = XorShift::from_time();
    let (mut kills, mut changed) = (0, 0);
    for i in 0..iterations_per_store() {
        let next = 1 - current;
        let mut child = key_passwd_command(dir, passwords[current], passwords[next])
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_micros(rng.below(window_ms * 1000)));
        let _ = child.kill();
        let status = child.wait().unwrap();
        kills += 1;

        let left = leftovers(dir);
        let what = format!("kill {i} (leftovers before recovery: {left:?})");
        let entries = Kind::Jks.open(dir).inventory().unwrap();
        let mut aliases: Vec<&str> = entries.iter().map(|e| e.alias.as_str()).collect();
        aliases.sort_unstable();
        assert_eq!(aliases, ["other", "root", "web"], "{what}");
        assert!(leftovers(dir).is_empty(), "{what}: {:?}", leftovers(dir));
        let opens: Vec<bool> = passwords
            .iter()
            .map(|p| read_identity(Kind::Jks, dir, "web", Some(p)).is_ok())
            .collect();
        assert!(
            opens[0] != opens[1],
            "{what}: the key opens under {opens:?}"
        );
        let now = usize::from(opens[1]);
        if status.success() {
            assert_eq!(now, next, "{what}: a finished change was lost");
        }
        if now != current {
            changed += 1;
        }
        current = now;
        let web = read_identity(Kind::Jks, dir, "web", Some(passwords[current])).unwrap();
        assert_eq!(web.chain(), rsa.chain(), "{what}");
        let other = read_identity(Kind::Jks, dir, "other", Some(STORE_PASSWORD)).unwrap();
        assert_eq!(
            other.chain(),
            ec.chain(),
            "{what}: the other key entry changed"
        );
    }
    eprintln!("jks key password: one run {run_ms} ms, {kills} kills, {changed} changes landed");
}
