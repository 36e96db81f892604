#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
//! `pfxkit demo` (`docs/cli.md`): the whole flow end to end in a temporary directory,
//! exiting 0 only when every check held; `--json` reports `Passed` and each check.

use std::process::Command;

use serde_json::Value;

#[test]
fn demo_exits_0_and_reports_every_check_passed() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_pfxkit"))
        .args(["demo", "--json", "--dir"])
        .arg(dir.path())
        .env_remove("PFXKIT_CATALOG")
        .env_remove("PFXKIT_PRINCIPAL")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["Passed"], true, "{report:#}");
    let checks = report["Checks"].as_array().unwrap();
    assert!(checks.len() >= 5, "{report:#}");
    for check in checks {
        assert_eq!(check["Held"], true, "{check}");
    }
    assert_eq!(
        report["Replace"]["SuccessfulStores"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    assert_eq!(report["Replace"]["FailedStores"], Value::Array(vec![]));
    // --dir keeps the demo's catalog and stores.
    assert!(dir.path().join("catalog/catalog.sqlite").exists());
}

#[test]
fn demo_in_a_temporary_directory_cleans_up_after_itself() {
    let tmp = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_pfxkit"))
        .arg("demo")
        .env("TMPDIR", tmp.path())
        .env_remove("PFXKIT_CATALOG")
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("demo passed"));
    let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}
