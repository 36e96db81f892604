//! Security issue #13 through the command line: output files written like store files, inputs
//! read no further than the size limit, stores in shared directories refused unless allowed by
//! name. Each test names the threat it guards against; each failed on the code before its fix.
//!
//! Inputs are the PEM fixtures under the repository's `tests/data/pki` (made by
//! `tests/data/gen.sh`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

fn pki(relative: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .join("tests/data/pki")
        .join(relative)
}

fn pfxkit(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pfxkit"))
        .args(args.iter().map(|a| a.as_ref()))
        .output()
        .unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `pfxkit build` of the RSA leaf (a private key) into `out`.
fn build_into(out: &Path) -> Output {
    pfxkit(&[
        &"build",
        &"--key",
        &pki("keys/leaf-rsa.pem"),
        &"--cert",
        &pki("certs/leaf-rsa.pem"),
        &"--out",
        &out,
        &"--password",
        &"pass:out-pass",
    ])
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().mode() & 0o7777
}

/// Threat: `--out` opened its path with O_CREAT|O_TRUNC, following a symbolic link planted in
/// its place (root writes a key wherever the link points) and writing in place (a crash leaves
/// half a file). Output is written beside the path and renamed over it, a new file is 0600, and
/// a link at the path is refused: its target is never written.
#[test]
fn out_file_is_0600_and_not_through_symlink() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let out = dir.join("new.p12");
    let done = build_into(&out);
    assert!(done.status.success(), "{}", stderr(&done));
    assert_eq!(mode(&out), 0o600);
    assert!(
        fs::read_dir(dir).unwrap().count() == 1,
        "nothing left beside"
    );

    let victim = dir.join("victim");
    fs::write(&victim, b"keep").unwrap();
    fs::set_permissions(&victim, fs::Permissions::from_mode(0o600)).unwrap();
    let link = dir.join("link.p12");
    symlink(&victim, &link).unwrap();
    let refused = build_into(&link);
    assert_eq!(refused.status.code(), Some(1), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("symbolic link"),
        "{}",
        stderr(&refused)
    );
    assert_eq!(fs::read(&victim).unwrap(), b"keep");
    assert!(fs::symlink_metadata(&link).unwrap().is_symlink());

    // A dangling link is not followed to create its target either.
    let missing = dir.join("missing");
    let dangling = dir.join("dangling.p12");
    symlink(&missing, &dangling).unwrap();
    assert!(!build_into(&dangling).status.success());
    assert!(!missing.exists());
}

/// Threat: writing a private key into an existing `--out` file kept that file's mode, so a file
/// others can read (0644, or one a stranger prepared) published the key. Such a file is refused
/// and left as it was; an existing private file keeps its mode.
#[test]
fn refuses_key_into_world_readable_existing_out() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.p12");
    fs::write(&out, b"old").unwrap();
    fs::set_permissions(&out, fs::Permissions::from_mode(0o644)).unwrap();
    let refused = build_into(&out);
    assert_eq!(refused.status.code(), Some(1), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("readable by other users"),
        "{}",
        stderr(&refused)
    );
    assert_eq!(fs::read(&out).unwrap(), b"old");
    assert_eq!(mode(&out), 0o644);

    fs::set_permissions(&out, fs::Permissions::from_mode(0o640)).unwrap();
    let done = build_into(&out);
    assert!(done.status.success(), "{}", stderr(&done));
    assert_eq!(mode(&out), 0o640);
    assert_ne!(fs::read(&out).unwrap(), b"old");
}

/// Threat: the size limit was checked after reading, so a 700 MB file was read whole before the
/// 16 MiB limit answered, and `/dev/zero` (or a pipe) was read until memory ran out. Input is
/// read to at most limit + 1 bytes: a writer feeding a FIFO sees the reader stop there.
#[test]
fn reads_at_most_limit_plus_one_bytes() {
    const LIMIT: usize = 16 * 1024 * 1024;
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("input");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    let child = Command::new(env!("CARGO_BIN_EXE_pfxkit"))
        .arg("inspect")
        .arg(&fifo)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut writer = fs::OpenOptions::new().write(true).open(&fifo).unwrap();
    let chunk = vec![0x30u8; 64 * 1024];
    let mut written = 0usize;
    // Four times the limit: a reader that stops at the limit makes the writes fail (EPIPE).
    while written < 4 * LIMIT {
        match writer.write(&chunk) {
            Ok(n) => written += n,
            Err(_) => break,
        }
    }
    drop(writer);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    // The pipe buffers up to 1 MiB beyond what the reader took.
    assert!(
        written <= LIMIT + 1 + 2 * 1024 * 1024,
        "the reader took {written} bytes"
    );

    // /dev/zero: answered at once, without reading it to the end of memory.
    let started = std::time::Instant::now();
    let out = pfxkit(&[&"inspect", &"/dev/zero"]);
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(started.elapsed() < Duration::from_secs(20));
}

/// Threat: a store in a directory every user can write (no sticky bit) can have its files
/// replaced or its journal planted by anyone. The CLI refuses it unless `--allow-shared-dir`.
#[test]
fn cli_refuses_store_in_world_writable_dir_unless_allowed() {
    let root = tempfile::tempdir().unwrap();
    let shared = root.path().join("shared");
    fs::create_dir(&shared).unwrap();
    fs::set_permissions(&shared, fs::Permissions::from_mode(0o777)).unwrap();
    let in_private = root.path().join("in.p12");
    assert!(build_into(&in_private).status.success());
    let store = shared.join("store.p12");
    let add = |extra: &[&str]| {
        let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![
            &"store",
            &"add",
            &"--type",
            &"pkcs12",
            &"--path",
            &store,
            &"--store-password",
            &"pass:s",
            &"--alias",
            &"web",
            &"--pfx",
            &in_private,
            &"--pfx-password",
            &"pass:out-pass",
            &"--create",
        ];
        for e in extra {
            args.push(e);
        }
        pfxkit(&args)
    };
    let refused = add(&[]);
    assert_eq!(refused.status.code(), Some(1), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("--allow-shared-dir"),
        "{}",
        stderr(&refused)
    );
    assert!(!store.exists());
    let allowed = add(&["--allow-shared-dir"]);
    assert!(allowed.status.success(), "{}", stderr(&allowed));
    assert!(store.exists());
}

/// Threat: a password source `file:/dev/zero` (or a huge file, or endless standard input) was
/// read whole to take its first line. Only the first line is read, to at most 64 KiB.
#[test]
fn password_file_is_read_to_one_bounded_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.p12");
    assert!(build_into(&out).status.success());
    let started = std::time::Instant::now();
    let refused = pfxkit(&[&"inspect", &out, &"--password", &"file:/dev/zero"]);
    assert_eq!(refused.status.code(), Some(1), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("longer than"),
        "{}",
        stderr(&refused)
    );
    assert!(started.elapsed() < Duration::from_secs(20));
    // A password file with more lines than the first still works.
    let file = dir.path().join("password");
    fs::write(&file, format!("out-pass\n{}", "x".repeat(200_000))).unwrap();
    let read = pfxkit(&[
        &"inspect",
        &out,
        &"--password",
        &format!("file:{}", file.display()),
    ]);
    assert!(read.status.success(), "{}", stderr(&read));
}

/// Threat: a PEM store registered with its key path equal to its certificate path wrote one
/// file over the other on every job. The catalog refuses to register it.
#[test]
fn catalog_refuses_registering_pem_store_with_key_path_equal_to_cert_path() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = dir.path().join("catalog");
    let init = pfxkit(&[&"--catalog", &catalog, &"catalog", &"init"]);
    assert!(init.status.success(), "{}", stderr(&init));
    let cert = dir.path().join("store.pem");
    let same = dir.path().join(".").join("store.pem");
    let refused = pfxkit(&[
        &"--catalog",
        &catalog,
        &"stores",
        &"add",
        &"--type",
        &"pem",
        &"--path",
        &cert,
        &"--key-path",
        &same,
    ]);
    assert_eq!(refused.status.code(), Some(1), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("key path must differ"),
        "{}",
        stderr(&refused)
    );
    let listed = pfxkit(&[&"--catalog", &catalog, &"stores", &"list", &"--json"]);
    assert!(listed.status.success(), "{}", stderr(&listed));
    assert!(!String::from_utf8_lossy(&listed.stdout).contains("store.pem"));
}
