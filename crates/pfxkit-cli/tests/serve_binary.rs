#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
//! The real `pfxkit serve` binary: it prints `listening on URL` once it accepts, answers over
//! plain HTTP on loopback with `--insecure-http`, refuses plain HTTP elsewhere, and stops
//! within 10 s with exit 0 on SIGTERM.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn pfxkit(catalog: &std::path::Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_pfxkit"));
    c.env("PFXKIT_CATALOG", catalog);
    c
}

#[test]
fn serve_prints_its_url_answers_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let cat = dir.path().join("catalog");
    assert!(
        pfxkit(&cat)
            .args(["catalog", "init"])
            .status()
            .unwrap()
            .success()
    );
    assert!(
        pfxkit(&cat)
            .args(["users", "add", "ops", "--password", "pass:ops-secret"])
            .status()
            .unwrap()
            .success()
    );
    let mut child = pfxkit(&cat)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--insecure-http",
            "--log-format",
            "json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap()
        .to_string();
    assert!(
        url.starts_with("http://127.0.0.1:") && url.ends_with("/KeyfactorAPI"),
        "{url}"
    );
    let addr = url
        .trim_start_matches("http://")
        .trim_end_matches("/KeyfactorAPI")
        .to_string();
    let mut s = TcpStream::connect(&addr).unwrap();
    // ops:ops-secret
    write!(
        s,
        "GET /KeyfactorAPI/CertificateStoreTypes HTTP/1.1\r\nHost: x\r\nAuthorization: Basic b3BzOm9wcy1zZWNyZXQ=\r\nX-Keyfactor-Requested-With: APIClient\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("RFPkcs12"));

    let t = Instant::now();
    assert!(
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    assert!(t.elapsed() < Duration::from_secs(10));
    let mut log = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    let request_line = log
        .lines()
        .find(|l| l.contains("\"request\""))
        .expect("one JSON line per request");
    let v: serde_json::Value = serde_json::from_str(request_line).unwrap();
    assert_eq!(v["status"], 200);
    assert_eq!(v["principal"], "ops");
    assert!(!log.contains("ops-secret"), "no secret in the log");
}

#[test]
fn serve_refuses_plain_http_off_loopback_and_requires_tls_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    let cat = dir.path().join("catalog");
    assert!(
        pfxkit(&cat)
            .args(["catalog", "init"])
            .status()
            .unwrap()
            .success()
    );
    let out = pfxkit(&cat)
        .args(["serve", "--listen", "0.0.0.0:0", "--insecure-http"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("loopback"));
    let out = pfxkit(&cat)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("TLS is required"));
}
