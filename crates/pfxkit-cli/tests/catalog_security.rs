#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
//! Issue 13, items 9 and 19–23 through the `pfxkit` binary: exit codes of Deploy and Replace
//! where every store failed, interrupting `jobs run`, `jobs cancel|retry`, half-present or
//! exposed catalogs, passwords read from stdin, impossible times and hostile aliases in text
//! output. (Items 6–8 and the permission model: `pfxkit-catalog/tests/permissions.rs`.)

mod catalog_cli;

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use catalog_cli::{Cli, text};
use serde_json::Value;

const STORE_PASSWORD: &str = "pass:store-pass";

/// A catalog with a CA, one JKS store and an enrolled certificate; returns (cli, store, cert).
fn scenario() -> (Cli, String, String) {
    let cli = Cli::with_ca();
    let store = cli.ok(&[
        "stores",
        "add",
        "--type",
        "jks",
        "--path",
        cli.dir().join("app.jks").to_str().unwrap(),
        "--store-password",
        STORE_PASSWORD,
    ])["Id"]
        .as_str()
        .unwrap()
        .to_string();
    let cert = cli.enroll("CN=app.example.com", &[])["KeyfactorId"].to_string();
    (cli, store, cert)
}

#[test]
fn all_failed_deploy_exits_1_with_json() {
    let (cli, store, cert) = scenario();
    cli.ok(&[
        "grant",
        "--principal",
        "reader",
        "--global",
        "--permission",
        "read",
    ]);
    cli.ok(&[
        "grant",
        "--principal",
        "reader",
        "--global",
        "--permission",
        "recover",
    ]);
    let output = cli.exits(
        1,
        &[
            "--principal",
            "reader",
            "deploy",
            "--certificate-id",
            &cert,
            "--store",
            &store,
        ],
    );
    let answer: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(answer["SuccessfulStores"], Value::Array(vec![]));
    assert_eq!(answer["FailedStores"][0], store.as_str());
    assert!(cli.ok(&["jobs", "list"]).as_array().unwrap().is_empty());
    // One store that works is success (exit 0).
    cli.ok(&["deploy", "--certificate-id", &cert, "--store", &store]);
}

#[test]
fn refuses_catalog_key_without_database() {
    let (cli, _, _) = scenario();
    std::fs::remove_file(cli.database()).unwrap();
    let output = cli.exits(1, &["stores", "list"]);
    assert!(text(&output).contains("no database"), "{}", text(&output));
    assert!(!cli.database().exists(), "the database was recreated");
    // An emptied database is not a catalog either.
    std::fs::write(cli.database(), b"").unwrap();
    let output = cli.exits(1, &["stores", "list"]);
    assert!(text(&output).contains("empty"), "{}", text(&output));
    assert_eq!(std::fs::metadata(cli.database()).unwrap().len(), 0);
    // And the reverse: a database without its key.
    let other = Cli::new();
    std::fs::remove_file(other.catalog().join("catalog.key")).unwrap();
    let output = other.exits(1, &["stores", "list"]);
    assert!(text(&output).contains("no key"), "{}", text(&output));
}

#[test]
fn refuses_world_readable_catalog_key() {
    let cli = Cli::new();
    let key = cli.catalog().join("catalog.key");
    assert_eq!(
        std::fs::metadata(cli.catalog())
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o700
    );
    for mode in [0o644, 0o640, 0o604] {
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(mode)).unwrap();
        let output = cli.exits(1, &["stores", "list"]);
        assert!(text(&output).contains("chmod 600"), "{}", text(&output));
    }
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    cli.ok(&["stores", "list"]);
}

#[test]
fn catalog_init_makes_an_existing_directory_0700() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("shared");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let status = Command::new(env!("CARGO_BIN_EXE_pfxkit"))
        .arg("--catalog")
        .arg(&dir)
        .args(["catalog", "init"])
        .env_remove("PFXKIT_PRINCIPAL")
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(
        std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
        0o700
    );
}

#[test]
fn refuses_stdin_for_two_options() {
    let (cli, _, _) = scenario();
    let pfx = cli.dir().join("x.p12");
    cli.ok(&[
        "enroll",
        "--subject",
        "CN=x",
        "--out",
        pfx.to_str().unwrap(),
        "--password",
        "pass:t",
    ]);
    let mut child = cli
        .command(&[
            "store",
            "add",
            "--type",
            "jks",
            "--path",
            cli.dir().join("new.jks").to_str().unwrap(),
            "--create",
            "--store-password",
            "stdin",
            "--pfx",
            pfx.to_str().unwrap(),
            "--pfx-password",
            "stdin",
            "--alias",
            "x",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    let _ = child.stdin.take().unwrap().write_all(b"t\n");
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    assert!(text(&output).contains("stdin"), "{}", text(&output));
    assert!(!cli.dir().join("new.jks").exists());
}

#[test]
fn file_password_reference_is_made_absolute_when_registered() {
    let cli = Cli::with_ca();
    let stored = cli
        .command(&[
            "stores",
            "add",
            "--type",
            "jks",
            "--path",
            "rel.jks",
            "--store-password",
            "file:pw.txt",
        ])
        .current_dir(cli.dir())
        .output()
        .unwrap();
    assert!(stored.status.success(), "{}", text(&stored));
    let answer: Value = serde_json::from_slice(&stored.stdout).unwrap();
    assert_eq!(
        answer["StorePassword"],
        format!("file:{}", cli.dir().join("pw.txt").display()).as_str()
    );
}

#[test]
fn refuses_empty_pem_entry_password() {
    let cli = Cli::with_ca();
    let store = cli.ok(&[
        "stores",
        "add",
        "--type",
        "pem",
        "--path",
        cli.dir().join("web.crt").to_str().unwrap(),
        "--key-path",
        cli.dir().join("web.key").to_str().unwrap(),
    ])["Id"]
        .as_str()
        .unwrap()
        .to_string();
    let cert = cli.enroll("CN=web.example.com", &[])["KeyfactorId"].to_string();
    let output = cli.exits(
        1,
        &[
            "deploy",
            "--certificate-id",
            &cert,
            "--store",
            &store,
            "--password",
            "pass:",
        ],
    );
    let answer: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert!(
        answer["Failures"][&store]
            .as_str()
            .unwrap()
            .contains("non-empty entry password"),
        "{answer:#}"
    );
}

#[test]
fn refuses_impossible_time() {
    let (cli, store, cert) = scenario();
    for t in ["2027-02-31T00:00:00Z", "2026-11-19T24:00:00Z"] {
        let output = cli.exits(
            1,
            &[
                "deploy",
                "--certificate-id",
                &cert,
                "--store",
                &store,
                "--job-time",
                t,
            ],
        );
        assert!(text(&output).contains(t), "{}", text(&output));
        cli.exits(1, &["jobs", "run", "--now", t]);
    }
    assert!(cli.ok(&["jobs", "list"]).as_array().unwrap().is_empty());
}

#[test]
fn escapes_control_characters_in_aliases() {
    let cli = Cli::with_ca();
    let pfx = cli.dir().join("x.p12");
    cli.ok(&[
        "enroll",
        "--subject",
        "CN=x",
        "--out",
        pfx.to_str().unwrap(),
        "--password",
        "pass:t",
    ]);
    let store = cli.dir().join("s.jks");
    let hostile = "evil\u{1b}[2J\nforged: line";
    let add = Command::new(env!("CARGO_BIN_EXE_pfxkit"))
        .args(["store", "add", "--type", "jks", "--create", "--path"])
        .arg(&store)
        .args(["--store-password", STORE_PASSWORD, "--pfx"])
        .arg(&pfx)
        .args(["--pfx-password", "pass:t", "--alias", hostile])
        .output()
        .unwrap();
    assert!(add.status.success(), "{}", text(&add));
    assert!(!String::from_utf8_lossy(&add.stderr).contains('\u{1b}'));
    let listed = Command::new(env!("CARGO_BIN_EXE_pfxkit"))
        .args(["store", "inventory", "--type", "jks", "--path"])
        .arg(&store)
        .args(["--store-password", STORE_PASSWORD])
        .output()
        .unwrap();
    assert!(listed.status.success(), "{}", text(&listed));
    let out = String::from_utf8(listed.stdout).unwrap();
    assert!(!out.contains('\u{1b}'), "{out:?}");
    assert_eq!(out.lines().count(), 1, "{out:?}");
    // (JKS keeps aliases in lower case.)
    assert!(
        out.to_lowercase().contains("evil\\u{1b}[2j\\nforged: line"),
        "{out:?}"
    );
}

/// `jobs list` as JSON, by id.
fn jobs(cli: &Cli) -> Vec<Value> {
    cli.ok(&["jobs", "list"]).as_array().unwrap().clone()
}

#[test]
fn jobs_cancel_and_retry() {
    let (cli, store, cert) = scenario();
    let later = pfxkit_catalog::jobs::format_time(pfxkit_catalog::jobs::now_ms() + 86_400_000);
    cli.ok(&[
        "deploy",
        "--certificate-id",
        &cert,
        "--store",
        &store,
        "--alias",
        "a",
        "--job-time",
        &later,
    ]);
    let id = jobs(&cli)[0]["Id"].to_string();
    // Only someone with Schedule on the job's store may cancel it.
    cli.exits(1, &["--principal", "nobody", "jobs", "cancel", &id]);
    let cancelled = cli.ok(&["jobs", "cancel", &id]);
    assert_eq!(cancelled[0]["Status"], "Completed");
    assert_eq!(cancelled[0]["Result"], "Failure");
    assert!(
        cancelled[0]["Message"]
            .as_str()
            .unwrap()
            .contains("cancelled")
    );
    cli.exits(1, &["jobs", "cancel", &id]);
    // Retry queues it again, due now: the next run does it.
    let retried = cli.ok(&["jobs", "retry", &id]);
    assert_eq!(retried[0]["Status"], "Waiting");
    assert_eq!(retried[0]["Result"], Value::Null);
    let ran = cli.ok(&["jobs", "run"]);
    assert_eq!(ran[0]["Result"], "Success", "{ran:#}");
    cli.exits(1, &["jobs", "retry", &id]);
    cli.exits(1, &["jobs", "cancel", "999"]);

    // A leased job shows who holds it until when, and cannot be cancelled.
    cli.ok(&[
        "deploy",
        "--certificate-id",
        &cert,
        "--store",
        &store,
        "--alias",
        "b",
    ]);
    let db = rusqlite::Connection::open(cli.database()).unwrap();
    let claimed = pfxkit_catalog::jobs::now_ms();
    db.execute(
        "UPDATE jobs SET status = 'InProcess', claimed_ms = ?1, claimed_by = 'runner-x' WHERE alias = 'b'",
        [claimed],
    )
    .unwrap();
    let leased = jobs(&cli).into_iter().find(|j| j["Alias"] == "b").unwrap();
    assert_eq!(leased["LeasedBy"], "runner-x");
    assert_eq!(
        leased["LeasedUntil"],
        pfxkit_catalog::jobs::format_time(claimed + pfxkit_catalog::jobs::JOB_LEASE_MS).as_str()
    );
    cli.exits(1, &["jobs", "cancel", &leased["Id"].to_string()]);
}

#[test]
fn sigint_releases_claimed_jobs_and_exits_130() {
    const JOBS: usize = 300;
    let (cli, store, cert) = scenario();
    cli.ok(&[
        "deploy",
        "--certificate-id",
        &cert,
        "--store",
        &store,
        "--alias",
        "a0",
    ]);
    // Many more jobs on the same store (run one after another), copied from the first.
    let db = rusqlite::Connection::open(cli.database()).unwrap();
    for i in 1..JOBS {
        db.execute(
            "INSERT INTO jobs (store_id, operation, certificate_id, alias, overwrite, sealed_entry_password,
                               scheduled_ms, principal, status)
             SELECT store_id, operation, certificate_id, ?1, overwrite, sealed_entry_password,
                    scheduled_ms, principal, status FROM jobs WHERE id = 1",
            [format!("a{i}")],
        )
        .unwrap();
    }
    let completed = |db: &rusqlite::Connection| -> i64 {
        db.query_row(
            "SELECT count(*) FROM jobs WHERE status = 'Completed'",
            [],
            |r| r.get(0),
        )
        .unwrap()
    };
    let child = cli
        .command(&["jobs", "run"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Once a job has completed the runner is past its set-up (the handler is installed).
    let started = Instant::now();
    while completed(&db) == 0 {
        assert!(started.elapsed() < Duration::from_secs(60), "no job ran");
        std::thread::sleep(Duration::from_millis(5));
    }
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(130), "{}", text(&output));
    let ran: Value = serde_json::from_slice(&output.stdout).unwrap();
    let ran = ran.as_array().unwrap().len();
    assert!((1..JOBS).contains(&ran), "ran {ran}");
    let listed = jobs(&cli);
    let count = |status: &str| listed.iter().filter(|j| j["Status"] == status).count();
    assert_eq!(count("InProcess"), 0, "claimed jobs left leased");
    assert_eq!(count("Completed"), ran);
    assert_eq!(count("Waiting"), JOBS - ran);
    // The next run picks the released jobs up at once.
    let rest = cli.ok(&["jobs", "run"]);
    assert_eq!(rest.as_array().unwrap().len(), JOBS - ran);
}

#[test]
fn stores_list_shows_a_principal_only_the_stores_it_may_read() {
    let (cli, store, _) = scenario();
    assert!(
        cli.ok_as("nobody", &["stores", "list"])
            .as_array()
            .unwrap()
            .is_empty()
    );
    cli.ok(&[
        "grant",
        "--principal",
        "reader",
        "--global",
        "--permission",
        "read",
    ]);
    let listed = cli.ok_as("reader", &["stores", "list"]);
    assert_eq!(listed[0]["Id"], store.as_str());
}
