#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
//! Issue 6: enrollment, renewal and import through the CLI, as `docs/replace.md`
//! ("Enrollment and renewal", "Catalog") and `docs/cli.md` describe them.
//!
//! Every catalog lives in a temporary directory made by `pfxkit catalog init` + `ca init`.
//! Certificates pfxkit issues are checked by independent tools: `openssl verify` against the CA
//! chain from the PKCS#12 blob, `openssl x509 -text` for the extensions, Python `cryptography`
//! and `keytool` (JDK 17) for the blob. The database file is read raw (secrets at rest) and
//! through `rusqlite`, read-only (no half records after SIGKILL).

mod catalog_cli;

use std::ffi::OsStr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64ct::{Base64, Encoding};
use catalog_cli::{Cli, openssl, openssl_pkcs12_certs, openssl_sha1, text, tool};
use pfxkit::{Limits, Password};
use serde_json::Value;

const TRANSPORT: &str = "transport-Secret-5d1e";
const DNS: &str = "app.example.com";
const IP: &str = "192.0.2.7";
const EMAIL: &str = "ops@example.com";

/// `enroll` of `CN=app.example.com` with a DNS, an IP and an email SAN, writing the blob to
/// `out` as well.
fn enroll_with_sans(cli: &Cli, key_type: &str, out: &Path) -> Value {
    cli.enroll(
        "CN=app.example.com,O=pfxkit",
        &[
            "--san",
            &format!("dns:{DNS}"),
            "--san",
            &format!("ip:{IP}"),
            "--san",
            &format!("email:{EMAIL}"),
            "--key-type",
            key_type,
            "--days",
            "30",
            "--password",
            &format!("pass:{TRANSPORT}"),
            "--out",
            out.to_str().unwrap(),
        ],
    )
}

/// The Pkcs12Blob field, decoded.
fn blob(info: &Value) -> Vec<u8> {
    Base64::decode_vec(info["Pkcs12Blob"].as_str().unwrap()).unwrap()
}

fn x509_text(pem: &Path) -> String {
    openssl(&[
        OsStr::new("x509"),
        OsStr::new("-in"),
        pem.as_os_str(),
        OsStr::new("-noout"),
        OsStr::new("-text"),
    ])
}

fn openssl_serial(pem: &Path) -> String {
    let out = openssl(&[
        OsStr::new("x509"),
        OsStr::new("-in"),
        pem.as_os_str(),
        OsStr::new("-noout"),
        OsStr::new("-serial"),
    ]);
    out.trim()
        .strip_prefix("serial=")
        .unwrap()
        .to_ascii_lowercase()
}

/// The blob opened with the transport password by Python `cryptography`: the key must match the
/// certificate's public key. Prints the subject so the caller can compare.
fn python_loads(p12: &Path, password: &str) {
    let script = r#"
import sys
from cryptography.hazmat.primitives.serialization import pkcs12, Encoding, PublicFormat
data = open(sys.argv[1], "rb").read()
key, cert, extra = pkcs12.load_key_and_certificates(data, sys.argv[2].encode())
spki = lambda k: k.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
assert key is not None and cert is not None, "no key or no certificate"
assert spki(key.public_key()) == spki(cert.public_key()), "key does not match certificate"
print(len(extra))
"#;
    let out = tool(
        "python3",
        &[
            OsStr::new("-c"),
            OsStr::new(script),
            p12.as_os_str(),
            OsStr::new(password),
        ],
    );
    assert!(
        out.trim().parse::<usize>().unwrap() >= 1,
        "no chain in the blob"
    );
}

fn keytool_lists_a_private_key_entry(p12: &Path, password: &str) {
    let out = tool(
        "keytool",
        &[
            OsStr::new("-list"),
            OsStr::new("-storetype"),
            OsStr::new("PKCS12"),
            OsStr::new("-keystore"),
            p12.as_os_str(),
            OsStr::new("-storepass"),
            OsStr::new(password),
        ],
    );
    assert!(out.contains("PrivateKeyEntry"), "keytool: {out}");
}

/// The whole issue-6 check of one key type.
fn enrolls_and_independent_tools_accept(key_type: &str) {
    let cli = Cli::with_ca();
    let out = cli.dir().join("enrolled.p12");
    let info = enroll_with_sans(&cli, key_type, &out);

    for field in ["KeyfactorId", "KeyfactorRequestId"] {
        assert!(info[field].as_i64().unwrap() > 0, "{field}: {info}");
    }
    assert_eq!(
        blob(&info),
        std::fs::read(&out).unwrap(),
        "--out is the blob"
    );
    assert_eq!(info["IssuerDN"], "CN=pfxkit Test Root,O=pfxkit");

    let leaf = openssl_pkcs12_certs(&out, TRANSPORT, "-clcerts", &cli.dir().join("leaf.pem"));
    let chain = openssl_pkcs12_certs(&out, TRANSPORT, "-cacerts", &cli.dir().join("chain.pem"));
    let verified = openssl(&[
        OsStr::new("verify"),
        OsStr::new("-CAfile"),
        chain.as_os_str(),
        leaf.as_os_str(),
    ]);
    assert!(verified.contains(": OK"), "{verified}");

    // Thumbprint: lowercase hex SHA-1 of the DER; SerialNumber: lowercase hex.
    assert_eq!(info["Thumbprint"], openssl_sha1(&leaf));
    let serial = info["SerialNumber"].as_str().unwrap();
    assert_eq!(serial, serial.to_ascii_lowercase());
    assert_eq!(
        serial.trim_start_matches('0'),
        openssl_serial(&leaf).trim_start_matches('0')
    );

    let x509 = x509_text(&leaf);
    for expected in [
        format!("DNS:{DNS}"),
        format!("IP Address:{IP}"),
        format!("email:{EMAIL}"),
        "CA:FALSE".to_string(),
        "X509v3 Key Usage: critical".to_string(),
        "Digital Signature".to_string(),
        "TLS Web Server Authentication, TLS Web Client Authentication".to_string(),
    ] {
        assert!(
            x509.contains(&expected),
            "{key_type}: no {expected} in\n{x509}"
        );
    }
    let algorithm = match key_type {
        k if k.starts_with("rsa-") => format!(
            "Public-Key: ({} bit)",
            k.trim_start_matches("rsa-").parse::<u32>().unwrap()
        ),
        "ec-p256" => "NIST CURVE: P-256".to_string(),
        "ec-p384" => "NIST CURVE: P-384".to_string(),
        _ => "ED25519".to_string(),
    };
    assert!(x509.contains(&algorithm), "{key_type}: no {algorithm}");
    // RFC 4514 order (most specific first), as given to --subject.
    let subject = openssl(&[
        OsStr::new("x509"),
        OsStr::new("-in"),
        leaf.as_os_str(),
        OsStr::new("-noout"),
        OsStr::new("-subject"),
        OsStr::new("-nameopt"),
        OsStr::new("RFC2253"),
    ]);
    assert_eq!(subject.trim(), "subject=CN=app.example.com,O=pfxkit");

    python_loads(&out, TRANSPORT);
    keytool_lists_a_private_key_entry(&out, TRANSPORT);
}

#[test]
fn enrolls_rsa_2048_with_sans_that_openssl_python_and_keytool_accept() {
    enrolls_and_independent_tools_accept("rsa-2048");
}

#[test]
fn enrolls_rsa_3072_with_sans_that_openssl_python_and_keytool_accept() {
    enrolls_and_independent_tools_accept("rsa-3072");
}

#[test]
fn enrolls_rsa_4096_with_sans_that_openssl_python_and_keytool_accept() {
    enrolls_and_independent_tools_accept("rsa-4096");
}

#[test]
fn enrolls_ec_p256_with_sans_that_openssl_python_and_keytool_accept() {
    enrolls_and_independent_tools_accept("ec-p256");
}

#[test]
fn enrolls_ec_p384_with_sans_that_openssl_python_and_keytool_accept() {
    enrolls_and_independent_tools_accept("ec-p384");
}

#[test]
fn enrolls_ed25519_with_sans_that_openssl_python_and_keytool_accept() {
    enrolls_and_independent_tools_accept("ed25519");
}

#[test]
fn an_intermediate_ca_issues_the_end_entity_certificates() {
    let cli = Cli::new();
    let ca = cli.ok(&[
        "ca",
        "init",
        "--subject",
        "CN=pfxkit Test Root",
        "--intermediate",
        "CN=pfxkit Test Issuing CA",
    ]);
    assert_eq!(ca["SubjectDN"], "CN=pfxkit Test Issuing CA");
    let out = cli.dir().join("leaf.p12");
    let info = enroll_with_sans(&cli, "ec-p256", &out);
    assert_eq!(info["IssuerDN"], "CN=pfxkit Test Issuing CA");

    let leaf = openssl_pkcs12_certs(&out, TRANSPORT, "-clcerts", &cli.dir().join("leaf.pem"));
    let cas = openssl_pkcs12_certs(&out, TRANSPORT, "-cacerts", &cli.dir().join("cas.pem"));
    let cas_text = std::fs::read_to_string(&cas).unwrap();
    let blocks: Vec<&str> = cas_text
        .split_inclusive("-----END CERTIFICATE-----\n")
        .filter(|b| b.contains("BEGIN CERTIFICATE"))
        .collect();
    assert_eq!(blocks.len(), 2, "intermediate and root in the blob");
    let (root, intermediate) = (cli.dir().join("root.pem"), cli.dir().join("int.pem"));
    for block in blocks {
        let file = cli.dir().join("one.pem");
        std::fs::write(&file, block).unwrap();
        let subject = openssl(&[
            OsStr::new("x509"),
            OsStr::new("-in"),
            file.as_os_str(),
            OsStr::new("-noout"),
            OsStr::new("-subject"),
        ]);
        let target = if subject.contains("Issuing") {
            &intermediate
        } else {
            &root
        };
        std::fs::rename(&file, target).unwrap();
    }
    assert!(x509_text(&intermediate).contains("CA:TRUE"));
    assert_eq!(ca["Thumbprint"], openssl_sha1(&intermediate));

    // Anchored at the root only, through the intermediate: OK.
    let verified = openssl(&[
        OsStr::new("verify"),
        OsStr::new("-CAfile"),
        root.as_os_str(),
        OsStr::new("-untrusted"),
        intermediate.as_os_str(),
        leaf.as_os_str(),
    ]);
    assert!(verified.contains(": OK"), "{verified}");
    // Without the intermediate the root alone does not vouch for it: the root did not sign it.
    let direct = Command::new("openssl")
        .args([OsStr::new("verify"), OsStr::new("-CAfile")])
        .arg(&root)
        .arg(&leaf)
        .output()
        .unwrap();
    assert!(!direct.status.success(), "{}", text(&direct));
}

/// The SAN line of `openssl x509 -text`.
fn san_line(pem: &Path) -> String {
    let x509 = x509_text(pem);
    let mut lines = x509.lines();
    lines
        .find(|l| l.contains("Subject Alternative Name"))
        .and_then(|_| lines.next())
        .unwrap()
        .trim()
        .to_string()
}

/// `pfxkit renew` of the certificate `selector` names, into `out`: its CertificateInformation.
fn renew(cli: &Cli, selector: &[&str], out: &std::path::Path) -> serde_json::Value {
    let password = format!("pass:{TRANSPORT}");
    let mut args = vec!["renew"];
    args.extend_from_slice(selector);
    args.extend(["--password", &password, "--out", out.to_str().unwrap()]);
    cli.ok(&args)["CertificateInformation"].clone()
}

#[test]
fn renewal_keeps_subject_sans_and_key_type_and_changes_serial_thumbprint_and_ids() {
    let cli = Cli::with_ca();
    let first_out = cli.dir().join("first.p12");
    let first = enroll_with_sans(&cli, "ec-p384", &first_out);
    let first_pem =
        openssl_pkcs12_certs(&first_out, TRANSPORT, "-clcerts", &cli.dir().join("1.pem"));

    let by_id = cli.dir().join("by-id.p12");
    let renewed = renew(
        &cli,
        &["--certificate-id", &first["KeyfactorId"].to_string()],
        &by_id,
    );
    let by_thumbprint = cli.dir().join("by-thumbprint.p12");
    let renewed_again = renew(
        &cli,
        // Thumbprints are accepted in any case.
        &[
            "--thumbprint",
            &first["Thumbprint"].as_str().unwrap().to_ascii_uppercase(),
        ],
        &by_thumbprint,
    );

    let first_text = x509_text(&first_pem);
    let subject_and_key = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|l| l.contains("Subject:") || l.contains("NIST CURVE") || l.contains("bit)"))
            .map(|l| l.trim().to_string())
            .collect()
    };
    for (info, p12) in [(&renewed, &by_id), (&renewed_again, &by_thumbprint)] {
        for field in [
            "KeyfactorId",
            "KeyfactorRequestId",
            "Thumbprint",
            "SerialNumber",
        ] {
            assert_ne!(info[field], first[field], "{field} must change");
        }
        assert_eq!(info["IssuerDN"], first["IssuerDN"]);
        let pem = openssl_pkcs12_certs(p12, TRANSPORT, "-clcerts", &p12.with_extension("pem"));
        assert_eq!(san_line(&pem), san_line(&first_pem));
        assert_eq!(
            subject_and_key(&x509_text(&pem)),
            subject_and_key(&first_text)
        );
        assert!(x509_text(&pem).contains("NIST CURVE: P-384"));
        python_loads(p12, TRANSPORT);
    }
    assert_ne!(renewed["KeyfactorId"], renewed_again["KeyfactorId"]);
}

#[test]
fn renewal_keeps_the_rsa_key_size_read_from_the_certificate_modulus() {
    let cli = Cli::with_ca();
    let first_out = cli.dir().join("rsa.p12");
    let first = enroll_with_sans(&cli, "rsa-3072", &first_out);
    let renewed_out = cli.dir().join("rsa-renewed.p12");
    renew(
        &cli,
        &["--certificate-id", &first["KeyfactorId"].to_string()],
        &renewed_out,
    );
    let pem = openssl_pkcs12_certs(
        &renewed_out,
        TRANSPORT,
        "-clcerts",
        &cli.dir().join("rsa-renewed.pem"),
    );
    assert!(
        x509_text(&pem).contains("Public-Key: (3072 bit)"),
        "{}",
        x509_text(&pem)
    );
}

#[test]
fn renewal_of_an_unknown_id_or_thumbprint_exits_1() {
    let cli = Cli::with_ca();
    cli.exits(1, &["renew", "--certificate-id", "999"]);
    cli.exits(1, &["renew", "--thumbprint", &"ab".repeat(20)]);
}

#[test]
fn renewal_needs_exactly_one_of_certificate_id_and_thumbprint() {
    let cli = Cli::with_ca();
    let info = cli.enroll("CN=one.example.com", &[]);
    let id = info["KeyfactorId"].to_string();
    let thumbprint = info["Thumbprint"].as_str().unwrap();
    cli.exits(2, &["renew"]);
    cli.exits(
        2,
        &["renew", "--certificate-id", &id, "--thumbprint", thumbprint],
    );
}

#[test]
fn import_of_an_openssl_pfx_answers_like_an_enrollment() {
    let cli = Cli::with_ca();
    let fixture = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .join("tests/data/p12/openssl-default.p12");
    let info = cli.ok(&[
        OsStr::new("import"),
        OsStr::new("--pfx"),
        fixture.as_os_str(),
        OsStr::new("--password"),
        OsStr::new("pass:pfxkit-pass"),
    ])["CertificateInformation"]
        .clone();
    for field in ["KeyfactorId", "KeyfactorRequestId"] {
        assert!(info[field].as_i64().unwrap() > 0, "{field}: {info}");
    }
    let leaf = openssl_pkcs12_certs(
        &fixture,
        "pfxkit-pass",
        "-clcerts",
        &cli.dir().join("leaf.pem"),
    );
    assert_eq!(info["Thumbprint"], openssl_sha1(&leaf));
    assert_eq!(
        info["SerialNumber"]
            .as_str()
            .unwrap()
            .trim_start_matches('0'),
        openssl_serial(&leaf).trim_start_matches('0')
    );
    let issuer = openssl(&[
        OsStr::new("x509"),
        OsStr::new("-in"),
        leaf.as_os_str(),
        OsStr::new("-noout"),
        OsStr::new("-issuer"),
    ]);
    let issuer_cn = info["IssuerDN"]
        .as_str()
        .unwrap()
        .split(',')
        .find_map(|rdn| rdn.strip_prefix("CN="))
        .unwrap()
        .to_string();
    assert!(issuer.contains(&issuer_cn), "{issuer} vs {info}");
    // The blob comes back under the PFX's own password.
    let p12 = cli.dir().join("imported.p12");
    std::fs::write(&p12, blob(&info)).unwrap();
    python_loads(&p12, "pfxkit-pass");
    keytool_lists_a_private_key_entry(&p12, "pfxkit-pass");
    // An imported certificate has a staged key: it can be renewed (the embedded CA issues).
    cli.ok(&[
        "renew",
        "--certificate-id",
        &info["KeyfactorId"].to_string(),
    ]);
}

/// The 32-byte private scalar inside an EC P-256 PKCS#8 (`ECPrivateKey.privateKey`).
fn p256_scalar(pkcs8: &[u8]) -> Vec<u8> {
    // ECPrivateKey ::= SEQUENCE { version INTEGER 1, privateKey OCTET STRING (32), … }
    let marker = [0x02, 0x01, 0x01, 0x04, 0x20];
    let at = pkcs8
        .windows(marker.len())
        .position(|w| w == marker)
        .unwrap();
    pkcs8[at + marker.len()..at + marker.len() + 32].to_vec()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn secrets_are_never_stored_in_plain_text_and_the_key_file_is_0600() {
    use std::os::unix::fs::PermissionsExt;

    let cli = Cli::with_ca();
    let key_mode = std::fs::metadata(cli.catalog().join("catalog.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(key_mode & 0o777, 0o600);

    // A connection held open from before the writes keeps the last CLI process from
    // checkpointing the WAL away on exit: the WAL's own bytes are scanned too.
    let holder = rusqlite::Connection::open_with_flags(
        cli.database(),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let _: i64 = holder
        .query_row("SELECT COUNT(*) FROM certificates", [], |r| r.get(0))
        .unwrap();

    let store_password = "store-Secret-91b2";
    let entry_password = "entry-Secret-3c44";
    let info = cli.enroll(
        "CN=secret.example.com",
        &[
            "--key-type",
            "ec-p256",
            "--password",
            &format!("pass:{TRANSPORT}"),
        ],
    );
    let store = cli.ok(&[
        "stores",
        "add",
        "--type",
        "pkcs12",
        "--path",
        cli.dir().join("s.p12").to_str().unwrap(),
        "--store-password",
        &format!("pass:{store_password}"),
    ]);
    assert_eq!(store["StorePassword"], "sealed");
    // A job keeps its entry password until it runs: sealed too.
    cli.ok(&[
        "deploy",
        "--certificate-id",
        &info["KeyfactorId"].to_string(),
        "--store",
        store["Id"].as_str().unwrap(),
        "--alias",
        "web",
        "--password",
        &format!("pass:{entry_password}"),
        "--job-time",
        "2099-01-01T00:00:00Z",
    ]);

    let archive = pfxkit::pkcs12::read(
        &blob(&info),
        Some(&Password::new(TRANSPORT)),
        &Limits::default(),
    )
    .unwrap();
    let identities = archive.identities();
    let pkcs8 = identities[0].key().expose_pkcs8_der().to_vec();
    let scalar = p256_scalar(&pkcs8);

    let wal = cli.dir().join("catalog/catalog.sqlite-wal");
    assert!(
        std::fs::metadata(&wal).is_ok_and(|m| m.len() > 0),
        "the WAL should still hold the writes"
    );
    let mut scanned = 0;
    for entry in std::fs::read_dir(cli.catalog()).unwrap() {
        let path = entry.unwrap().path();
        if path.file_name() == Some(OsStr::new("catalog.key")) {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        scanned += 1;
        let name = path.display();
        assert!(!contains(&bytes, &pkcs8), "PKCS#8 key in {name}");
        assert!(!contains(&bytes, &scalar), "private scalar in {name}");
        for secret in [TRANSPORT, store_password, entry_password] {
            assert!(!contains(&bytes, secret.as_bytes()), "{secret} in {name}");
        }
    }
    assert!(scanned >= 2, "database and WAL");
    drop(holder);
}

#[test]
fn four_processes_enrolling_at_once_all_succeed_with_distinct_ids() {
    let cli = Cli::with_ca();
    let children: Vec<_> = (0..4)
        .map(|i| {
            cli.command(&[
                "enroll",
                "--subject",
                &format!("CN=c{i}.example.com"),
                "--key-type",
                "ec-p256",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
        })
        .collect();
    let mut ids = Vec::new();
    let mut requests = Vec::new();
    for child in children {
        let output = child.wait_with_output().unwrap();
        catalog_cli::assert_exit(&output, 0);
        let info: Value = serde_json::from_slice(&output.stdout).unwrap();
        ids.push(
            info["CertificateInformation"]["KeyfactorId"]
                .as_i64()
                .unwrap(),
        );
        requests.push(
            info["CertificateInformation"]["KeyfactorRequestId"]
                .as_i64()
                .unwrap(),
        );
    }
    for list in [&mut ids, &mut requests] {
        list.sort_unstable();
        list.dedup();
        assert_eq!(list.len(), 4, "{list:?}");
    }
}

/// Counts of half records: a request whose certificate has no staged key, a request whose
/// certificate does not exist, and a staged key no request accounts for.
fn half_records(database: &Path) -> (i64, i64, i64) {
    let db =
        rusqlite::Connection::open_with_flags(database, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let count = |sql: &str| -> i64 { db.query_row(sql, [], |r| r.get(0)).unwrap() };
    (
        count(
            "SELECT COUNT(*) FROM requests r JOIN certificates c ON c.id = r.certificate_id
             LEFT JOIN staged_keys k ON k.certificate_id = c.id WHERE k.certificate_id IS NULL",
        ),
        count(
            "SELECT COUNT(*) FROM requests r LEFT JOIN certificates c ON c.id = r.certificate_id
             WHERE c.id IS NULL",
        ),
        count(
            "SELECT COUNT(*) FROM staged_keys k LEFT JOIN requests r
             ON r.certificate_id = k.certificate_id WHERE r.id IS NULL",
        ),
    )
}

#[test]
fn an_enrollment_killed_at_any_instant_leaves_no_half_records() {
    let cli = Cli::with_ca();
    let enroll = |i: usize| {
        cli.command(&[
            "enroll",
            "--subject",
            &format!("CN=k{i}.example.com"),
            "--key-type",
            "rsa-2048",
        ])
    };
    // How long one enrollment takes, so the kills spread over its whole life.
    let started = Instant::now();
    catalog_cli::assert_exit(&enroll(0).output().unwrap(), 0);
    let span = started.elapsed().max(Duration::from_millis(20));

    const KILLS: u32 = 30;
    let mut killed = 0;
    for i in 1..=KILLS {
        let mut child = enroll(i as usize)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(span * i / KILLS);
        if child.try_wait().unwrap().is_none() {
            killed += 1;
        }
        child.kill().unwrap_or(()); // SIGKILL; it may have finished already.
        child.wait().unwrap();
        assert_eq!(half_records(&cli.database()), (0, 0, 0), "after kill {i}");
    }
    assert!(killed > 0, "no enrollment was interrupted");

    // The catalog is intact and still works.
    let db = rusqlite::Connection::open_with_flags(
        cli.database(),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let check: String = db
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    cli.enroll("CN=after.example.com", &[]);
    assert_eq!(half_records(&cli.database()), (0, 0, 0));
}
