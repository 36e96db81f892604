#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! Renewal inside `pfxkit serve`: the runner checks the renewal policies on its own (at start
//! and every `renewal_interval`), renews a certificate inside its window and replaces it in its
//! stores without anyone running `renew-due`; and `GET /Certificates?pq.queryString=NotAfter -le
//! "T"` answers what `pfxkit expiring` answers.
//!
//! The certificate about to expire is one placed by other means: a PFX made with Python
//! `cryptography`, valid from ten days ago until tomorrow (our CA only issues from now on).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use reqwest::{Client, StatusCode};
use serde_json::Value;

use pfxkit::secret::{Password, PasswordSource};
use pfxkit::store::StoreType;
use pfxkit_catalog::Permission;
use pfxkit_catalog::RenewalOutcome;
use pfxkit_catalog::ca::KeyType;
use pfxkit_catalog::jobs::{JobOptions, format_time, now_ms};
use pfxkit_catalog::service::{EnrollRequest, Service};
use pfxkit_server::{Server, ServerConfig, ServerLimits, tls};

const DAY_MS: i64 = 86_400_000;
const STORE_PASSWORD: &str = "store-password";

/// A PKCS#12 file (password `legacy`) with an EC key and a self-signed certificate valid from
/// 10 days ago to 1 day from now; `None` (and why) when Python `cryptography` is missing.
fn legacy_pfx(dir: &Path) -> Option<Vec<u8>> {
    let out = dir.join("legacy.p12");
    let script = r#"
import datetime, sys
from cryptography import x509
from cryptography.x509.oid import NameOID
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
key = ec.generate_private_key(ec.SECP256R1())
name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "legacy.example")])
now = datetime.datetime.now(datetime.timezone.utc)
cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=10))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("legacy.example")]), False)
        .sign(key, hashes.SHA256()))
blob = pkcs12.serialize_key_and_certificates(b"legacy", key, cert, None,
        serialization.BestAvailableEncryption(b"legacy"))
open(sys.argv[1], "wb").write(blob)
"#;
    let ran = Command::new("python3")
        .args(["-c", script])
        .arg(&out)
        .output();
    match ran {
        Ok(o) if o.status.success() => Some(std::fs::read(&out).unwrap()),
        other => {
            let why = format!("python3 with cryptography is needed: {other:?}");
            assert!(std::env::var_os("CI").is_none(), "{why}");
            eprintln!("skipped: {why}");
            None
        }
    }
}

async fn get(client: &Client, url: &str) -> (StatusCode, Value) {
    let r = client
        .get(url)
        .basic_auth("admin", Some("admin-password"))
        .header("X-Keyfactor-Requested-With", "APIClient")
        .send()
        .await
        .unwrap();
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn ids(v: &Value) -> Vec<i64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|c| c["Id"].as_i64().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_renews_and_replaces_a_certificate_inside_its_policy_window_by_itself() {
    let dir = tempfile::tempdir().unwrap();
    let Some(pfx) = legacy_pfx(dir.path()) else {
        return;
    };
    let svc = Service::init(&dir.path().join("catalog")).unwrap();
    svc.ca_init("CN=Renewal CA", KeyType::EcP256, None).unwrap();
    svc.add_user("admin", &Password::new("admin-password"))
        .unwrap();
    for p in [Permission::Modify, Permission::Enroll, Permission::Admin] {
        svc.grant(None, "admin", None, p).unwrap();
    }
    let legacy = svc
        .import(
            Some("admin"),
            &pfx,
            Some(&Password::new("legacy")),
            &Password::new(""),
        )
        .unwrap()
        .certificate_id;
    // Enrolled for three days but never placed: not a Replace candidate, so not "expiring".
    let unplaced = svc
        .enroll(
            Some("admin"),
            &EnrollRequest::new("CN=unplaced.example").days(3),
            &Password::new(""),
        )
        .unwrap()
        .certificate_id;
    let store_path = dir.path().join("web.p12");
    let store = svc
        .add_store(
            Some("admin"),
            StoreType::Pkcs12,
            &store_path,
            None,
            None,
            Some(&PasswordSource::Literal(Password::new(STORE_PASSWORD))),
        )
        .unwrap()
        .id;
    let deployed = svc
        .deploy(
            legacy,
            std::slice::from_ref(&store),
            Some("web"),
            true,
            &JobOptions::default(),
        )
        .unwrap();
    assert_eq!(deployed.successful.len(), 1);
    assert_eq!(svc.run_jobs(now_ms(), &|_| {}).unwrap().len(), 1);

    let ca_pem: String = svc
        .ca_chain()
        .unwrap()
        .iter()
        .map(pfxkit::pem::encode_certificate)
        .collect();
    let tls = tls::from_catalog_ca(&svc, "localhost", "127.0.0.1".parse().unwrap()).unwrap();
    let mut limits = ServerLimits::default();
    limits.runner_interval = Duration::from_millis(100);
    limits.renewal_interval = Duration::from_millis(300);
    let config = ServerConfig::new("127.0.0.1:0".parse().unwrap(), Some(tls)).limits(limits);
    let server = Server::bind(config, svc).await.unwrap();
    let base = server.base_url().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        server
            .run(async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
    });
    let client = Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap())
        .build()
        .unwrap();
    let svc = Service::open(&dir.path().join("catalog")).unwrap();

    // The API's expiring question and `expiring`'s answer: the located legacy certificate only.
    let by = format_time(now_ms() + 30 * DAY_MS);
    let query = format!("{base}/Certificates?pq.queryString=NotAfter%20-le%20%22{by}%22");
    let (status, listed) = get(&client, &query).await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    assert_eq!(ids(&listed), vec![legacy]);
    assert!(!ids(&listed).contains(&unplaced));
    let expiring: Vec<i64> = svc
        .expiring(now_ms(), 30 * 86_400)
        .unwrap()
        .iter()
        .map(|e| e.expiring.record.id)
        .collect();
    assert_eq!(expiring, vec![legacy]);
    // Other queries still see every certificate.
    let (_, all) = get(
        &client,
        &format!("{base}/Certificates?pq.queryString=IssuedCN%20-eq%20%22unplaced.example%22"),
    )
    .await;
    assert_eq!(ids(&all), vec![unplaced]);

    // Nothing renewed without a policy, even though the server has checked at start.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(svc.policy_history().unwrap().is_empty());

    // A global policy: the server's own check renews and replaces, nobody runs renew-due.
    svc.set_policy(Some("admin"), None, 30 * 86_400, "admin", None)
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let successor = loop {
        let history = svc.policy_history().unwrap();
        if let Some(d) = history.first() {
            assert_eq!(history.len(), 1, "renewed once: {history:?}");
            assert_eq!(d.certificate_id, legacy);
            assert_eq!(d.outcome, RenewalOutcome::Renewed, "{d:?}");
            let successor = d.successor_id.unwrap();
            let located = svc.catalog().locations(successor).unwrap();
            if located.len() == 1 && svc.catalog().locations(legacy).unwrap().is_empty() {
                break successor;
            }
        }
        assert!(Instant::now() < deadline, "no renewal by the server");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // Several more checks pass: still exactly one decision (the successor's window is later).
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(svc.policy_history().unwrap().len(), 1);
    let (_, listed) = get(&client, &query).await;
    assert_eq!(
        ids(&listed),
        vec![successor],
        "the successor is what is placed now"
    );

    // The store file, read by OpenSSL: the successor under the alias, with its key.
    let renewed = svc
        .certificate(&pfxkit_catalog::service::CertificateRef::Id(successor))
        .unwrap();
    let out = Command::new("openssl")
        .args(["pkcs12", "-in"])
        .arg(&store_path)
        .args(["-passin", &format!("pass:{STORE_PASSWORD}"), "-nodes"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("PRIVATE KEY"), "{text}");
    assert!(text.contains("friendlyName: web"), "{text}");
    let scanned = pfxkit::pem::scan(&out.stdout, &pfxkit::Limits::default()).unwrap();
    assert!(
        scanned
            .certificates
            .iter()
            .any(|(c, alias)| c.sha1_hex() == renewed.certificate.sha1_hex()
                && alias.as_deref() == Some("web")),
        "the successor is in the store under its alias"
    );
    assert!(text.contains("legacy.example"));

    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .unwrap()
        .unwrap();
}
