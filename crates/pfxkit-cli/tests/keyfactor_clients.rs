#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Keyfactor's two PyPI clients (`keyfactor-v-1-client`, `keyfactor-command-sdk`), used
//! unchanged, against this build's `pfxkit serve`: `tests/keyfactor_clients/test_clients.py`
//! drives enroll → deploy → inventory → renew → replace (now and at a future JobTime) →
//! locations through each, then reads the store files with openssl and keytool.
//!
//! The clients live in the venv `tests/keyfactor_clients/setup-venv` makes (`target/pyenv`;
//! `.ci/run` makes it). Without it the test says so and passes, except under CI (`CI` set),
//! where a missing venv is a failure rather than a silent skip.

use std::path::PathBuf;
use std::process::Command;

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

#[test]
fn keyfactor_pypi_clients_drive_the_whole_flow_unchanged() {
    let root = repo_root();
    // The venv sits in the workspace's target directory (CARGO_TARGET_DIR when set).
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let python = [
        target.join("pyenv/bin/python"),
        root.join("target/pyenv/bin/python"),
    ]
    .into_iter()
    .find(|p| p.exists());
    let Some(python) = python else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI: the client venv is missing; run tests/keyfactor_clients/setup-venv first"
        );
        eprintln!(
            "skipped: no target/pyenv (run tests/keyfactor_clients/setup-venv to test the \
             Keyfactor clients)"
        );
        return;
    };
    let out = Command::new(python)
        .arg(root.join("tests/keyfactor_clients/test_clients.py"))
        .arg(env!("CARGO_BIN_EXE_pfxkit"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the client flows failed:\n{stdout}\n{stderr}"
    );
    // The script's closing line; at least one check per step of each client ran.
    let summary = stdout
        .lines()
        .rev()
        .find(|l| l.ends_with(" failed"))
        .unwrap_or_default();
    let passed: usize = summary
        .split(" passed")
        .next()
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    assert!(passed >= 60, "too few checks ran: {summary}\n{stdout}");
    assert!(summary.ends_with(", 0 failed"), "{summary}");
}
