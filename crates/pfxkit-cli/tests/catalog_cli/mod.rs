//! Helpers shared by the catalog CLI tests: running `pfxkit` against one catalog directory,
//! reading its JSON, and asking the independent tools (`openssl` 3.0, `keytool` of JDK 17,
//! Python `cryptography`) what they see in the files pfxkit wrote.
// Each test crate uses a different subset of these helpers.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// Store password of the PKCS#12 and JKS stores of [`Cli::with_fleet`].
pub const STORE_PASSWORD: &str = "store-pass";

/// The stores of [`Cli::with_fleet`], by id.
pub struct Fleet {
    /// PEM, certificate `a/web.crt` and key `a/web.key`, in container A.
    pub pem_a: String,
    /// PKCS#12 `a/web.p12` in container A.
    pub p12_a: String,
    /// JKS `b/app.jks` in container B.
    pub jks_b: String,
}

/// A catalog in a temporary directory, driven through the `pfxkit` binary.
pub struct Cli {
    /// Holds the catalog and every file a test makes; removed on drop.
    pub temp: tempfile::TempDir,
}

impl Cli {
    /// A new catalog (`catalog init`) with no CA yet.
    pub fn new() -> Cli {
        let cli = Cli {
            temp: tempfile::tempdir().unwrap(),
        };
        cli.ok(&["catalog", "init"]);
        cli
    }

    /// A new catalog with a root CA.
    pub fn with_ca() -> Cli {
        let cli = Cli::new();
        cli.ok(&["ca", "init", "--subject", "CN=pfxkit Test Root,O=pfxkit"]);
        cli
    }

    /// A catalog with root `CN={name} Test Root` and issuing CA `CN={name} Test Issuing CA`,
    /// containers `A` and `B`, and the three stores the replace and renewal tests deploy to
    /// (directories `a/` and `b/`; PKCS#12 and JKS under [`STORE_PASSWORD`]).
    pub fn with_fleet(name: &str) -> (Cli, Fleet) {
        let cli = Cli::new();
        cli.ok(&[
            "ca",
            "init",
            "--subject",
            &format!("CN={name} Test Root"),
            "--intermediate",
            &format!("CN={name} Test Issuing CA"),
        ]);
        cli.ok(&["containers", "add", "A"]);
        cli.ok(&["containers", "add", "B"]);
        for sub in ["a", "b"] {
            std::fs::create_dir(cli.dir().join(sub)).unwrap();
        }
        let store_pw = format!("pass:{STORE_PASSWORD}");
        let fleet = Fleet {
            pem_a: cli.add_store(&[
                "--type",
                "pem",
                "--path",
                &cli.path_text("a/web.crt"),
                "--key-path",
                &cli.path_text("a/web.key"),
                "--container",
                "A",
            ]),
            p12_a: cli.add_store(&[
                "--type",
                "pkcs12",
                "--path",
                &cli.path_text("a/web.p12"),
                "--container",
                "A",
                "--store-password",
                &store_pw,
            ]),
            jks_b: cli.add_store(&[
                "--type",
                "jks",
                "--path",
                &cli.path_text("b/app.jks"),
                "--container",
                "B",
                "--store-password",
                &store_pw,
            ]),
        };
        (cli, fleet)
    }

    /// `stores add ARGS`; returns the new store's id.
    pub fn add_store(&self, args: &[&str]) -> String {
        let mut all = vec!["stores", "add"];
        all.extend_from_slice(args);
        self.ok(&all)["Id"].as_str().unwrap().to_string()
    }

    /// `relative` inside the temporary directory, as text for an argument.
    pub fn path_text(&self, relative: &str) -> String {
        self.dir().join(relative).to_str().unwrap().to_string()
    }

    /// The temporary directory.
    pub fn dir(&self) -> &Path {
        self.temp.path()
    }

    /// The catalog directory.
    pub fn catalog(&self) -> PathBuf {
        self.dir().join("catalog")
    }

    /// The catalog's SQLite file.
    pub fn database(&self) -> PathBuf {
        self.catalog().join("catalog.sqlite")
    }

    /// A command for `pfxkit --catalog DIR --json ARGS`, not yet run.
    pub fn command<S: AsRef<OsStr>>(&self, args: &[S]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_pfxkit"));
        command
            .arg("--catalog")
            .arg(self.catalog())
            .arg("--json")
            .args(args)
            .env_remove("PFXKIT_CATALOG")
            .env_remove("PFXKIT_PRINCIPAL");
        command
    }

    /// Runs `pfxkit` and returns its output whatever the exit code.
    pub fn run<S: AsRef<OsStr>>(&self, args: &[S]) -> Output {
        self.command(args).output().unwrap()
    }

    /// Runs `pfxkit`, asserts exit 0, and parses its JSON.
    pub fn ok<S: AsRef<OsStr>>(&self, args: &[S]) -> Value {
        let output = self.run(args);
        assert_exit(&output, 0);
        let parsed = serde_json::from_slice(&output.stdout);
        assert!(parsed.is_ok(), "stdout is not JSON: {}", text(&output));
        parsed.unwrap()
    }

    /// Runs `pfxkit` as `principal` (`--principal`), asserts exit 0, and parses its JSON.
    pub fn ok_as<S: AsRef<OsStr>>(&self, principal: &str, args: &[S]) -> Value {
        let mut all: Vec<&OsStr> = vec![OsStr::new("--principal"), OsStr::new(principal)];
        all.extend(args.iter().map(AsRef::as_ref));
        self.ok(&all)
    }

    /// Runs `pfxkit` and asserts its exit code.
    pub fn exits<S: AsRef<OsStr>>(&self, code: i32, args: &[S]) -> Output {
        let output = self.run(args);
        assert_exit(&output, code);
        output
    }

    /// `enroll` with these extra arguments; returns `CertificateInformation`.
    pub fn enroll(&self, subject: &str, extra: &[&str]) -> Value {
        let mut args = vec!["enroll", "--subject", subject];
        args.extend_from_slice(extra);
        self.ok(&args)["CertificateInformation"].clone()
    }

    /// The jobs of `jobs list` whose `Status` is `status`.
    pub fn jobs_in(&self, status: &str) -> Vec<Value> {
        self.ok(&["jobs", "list"])
            .as_array()
            .unwrap()
            .iter()
            .filter(|j| j["Status"] == status)
            .cloned()
            .collect()
    }

    /// The id of the catalog certificate with this SHA-1 thumbprint, looked up with
    /// `certificates show` (the CLI has no search by thumbprint).
    pub fn id_of_thumbprint(&self, sha1: &str) -> i64 {
        (1..1000)
            .map_while(|id| {
                let output = self.run(&["certificates", "show", &id.to_string()]);
                output.status.success().then(|| {
                    let shown: Value = serde_json::from_slice(&output.stdout).unwrap();
                    (id, shown["Thumbprint"] == sha1)
                })
            })
            .find_map(|(id, found)| found.then_some(id))
            .expect("no certificate with that thumbprint")
    }
}

/// Stdout and stderr, for assertion messages.
pub fn text(output: &Output) -> String {
    format!(
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Asserts an exit code, showing the output when it differs.
pub fn assert_exit(output: &Output, code: i32) {
    assert_eq!(output.status.code(), Some(code), "{}", text(output));
}

/// `pfxkit ARGS` outside any catalog (`PFXKIT_CATALOG` and `PFXKIT_PRINCIPAL` removed), whatever
/// the exit code.
pub fn pfxkit<S: AsRef<OsStr>>(args: &[S]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pfxkit"))
        .args(args)
        .env_remove("PFXKIT_CATALOG")
        .env_remove("PFXKIT_PRINCIPAL")
        .output()
        .unwrap()
}

/// A file under the repository's `tests/data`.
pub fn data(relative: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/data")).join(relative)
}

/// A path as an argument (the test paths are UTF-8).
pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Standard output as text.
pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Standard error as text.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Standard output parsed as one JSON document.
pub fn json_out(output: &Output) -> Value {
    let parsed = serde_json::from_slice(&output.stdout);
    assert!(
        parsed.is_ok(),
        "stdout is not one JSON document: {}",
        text(output)
    );
    parsed.unwrap()
}

/// Standard error parsed as one JSON object (an error under `--json`).
pub fn json_err(output: &Output) -> Value {
    let parsed = serde_json::from_slice(&output.stderr);
    assert!(
        parsed.is_ok(),
        "stderr is not one JSON object: {}",
        text(output)
    );
    parsed.unwrap()
}

/// Password source of the PKCS#12 files [`build_p12`] writes.
pub const P12_PASSWORD: &str = "pass:pfxkit-pass";

/// `build` of the RSA leaf of `tests/data/pki` with its chain into `out`, alias `web`, under
/// [`P12_PASSWORD`].
pub fn build_p12(out: &Path) {
    let output = pfxkit(&[
        "build",
        "--key",
        s(&data("pki/keys/leaf-rsa.pem")),
        "--cert",
        s(&data("pki/certs/leaf-rsa.pem")),
        "--chain",
        s(&data("pki/certs/chain.pem")),
        "--out",
        s(out),
        "--password",
        P12_PASSWORD,
        "--name",
        "web",
    ]);
    assert_exit(&output, 0);
}

/// Milliseconds in a day.
pub const DAY_MS: i64 = 86_400_000;

/// ISO 8601 UTC of now + `days`.
pub fn in_days(days: i64) -> String {
    pfxkit_catalog::jobs::format_time(pfxkit_catalog::jobs::now_ms() + days * DAY_MS)
}

/// The catalog id (`KeyfactorId`) of an enrollment's `CertificateInformation`, as an argument.
pub fn certificate_id(info: &Value) -> String {
    info["KeyfactorId"].to_string()
}

/// The SHA-1 thumbprint of an enrollment's `CertificateInformation`.
pub fn thumbprint(info: &Value) -> String {
    info["Thumbprint"].as_str().unwrap().to_string()
}

/// Asserts a failure: exit `code` and `says` in the message on stderr.
pub fn assert_fails_saying(output: &Output, code: i32, says: &str) {
    assert_exit(output, code);
    assert!(
        String::from_utf8_lossy(&output.stderr).contains(says),
        "expected {says:?} on stderr: {}",
        text(output)
    );
}

/// Runs a tool, asserts it succeeded, returns its stdout as text.
pub fn tool<S: AsRef<OsStr>>(program: &str, args: &[S]) -> String {
    let output = Command::new(program)
        .args(args)
        .output()
        .expect("openssl, keytool and python3 are needed for these tests");
    assert!(
        output.status.success(),
        "{program} {:?} failed: {}",
        args.iter().map(AsRef::as_ref).collect::<Vec<_>>(),
        text(&output)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// `openssl ARGS`, asserted to succeed.
pub fn openssl<S: AsRef<OsStr>>(args: &[S]) -> String {
    tool("openssl", args)
}

/// A `XX:YY:…` fingerprint (openssl, keytool) as lowercase hex without separators.
pub fn plain_hex(fingerprint: &str) -> String {
    fingerprint.trim().replace(':', "").to_ascii_lowercase()
}

/// The SHA-1 fingerprint of the first certificate in a PEM file, as openssl computes it.
pub fn openssl_sha1(pem_file: &Path) -> String {
    let out = openssl(&[
        OsStr::new("x509"),
        OsStr::new("-in"),
        pem_file.as_os_str(),
        OsStr::new("-noout"),
        OsStr::new("-fingerprint"),
        OsStr::new("-sha1"),
    ]);
    plain_hex(out.split_once('=').unwrap().1)
}

/// Writes the leaf (`-clcerts`) or the CA certificates (`-cacerts`) of a PKCS#12 file to a PEM
/// file, extracted by openssl, and returns that file.
pub fn openssl_pkcs12_certs(p12: &Path, password: &str, which: &str, out: &Path) -> PathBuf {
    openssl(&[
        OsStr::new("pkcs12"),
        OsStr::new("-in"),
        p12.as_os_str(),
        OsStr::new("-passin"),
        OsStr::new(&format!("pass:{password}")),
        OsStr::new("-nokeys"),
        OsStr::new(which),
        OsStr::new("-out"),
        out.as_os_str(),
    ]);
    out.to_path_buf()
}

/// The SHA-1 fingerprint of the certificate under `alias` in a keystore, as keytool exports it
/// (`-exportcert -rfc`) and openssl fingerprints it.
pub fn keytool_sha1(keystore: &Path, store_type: &str, password: &str, alias: &str) -> String {
    let pem = tool(
        "keytool",
        &[
            OsStr::new("-exportcert"),
            OsStr::new("-rfc"),
            OsStr::new("-alias"),
            OsStr::new(alias),
            OsStr::new("-keystore"),
            keystore.as_os_str(),
            OsStr::new("-storetype"),
            OsStr::new(store_type),
            OsStr::new("-storepass"),
            OsStr::new(password),
        ],
    );
    let file = keystore.with_extension(format!("{alias}.exported.pem"));
    std::fs::write(&file, pem).unwrap();
    openssl_sha1(&file)
}

/// `keytool -list -v` of a keystore: every SHA1 fingerprint it prints, in order.
pub fn keytool_list_sha1s(keystore: &Path, store_type: &str, password: &str) -> Vec<String> {
    let out = tool(
        "keytool",
        &[
            OsStr::new("-list"),
            OsStr::new("-v"),
            OsStr::new("-keystore"),
            keystore.as_os_str(),
            OsStr::new("-storetype"),
            OsStr::new(store_type),
            OsStr::new("-storepass"),
            OsStr::new(password),
        ],
    );
    out.lines()
        .filter_map(|l| l.trim().strip_prefix("SHA1:"))
        .map(plain_hex)
        .collect()
}

/// A JSON array of strings as a sorted list.
pub fn sorted_strings(value: &Value) -> Vec<String> {
    let mut all: Vec<String> = value
        .as_array()
        .expect("a JSON array")
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    all.sort();
    all
}

/// Sorted list of owned strings.
pub fn sorted(items: &[&str]) -> Vec<String> {
    let mut all: Vec<String> = items.iter().map(|s| (*s).to_string()).collect();
    all.sort();
    all
}
