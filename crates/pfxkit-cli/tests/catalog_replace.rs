#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
//! Issue 7: Replace, as `docs/replace.md` ("Replace", "Jobs", "Locations") describes it,
//! driven through the CLI of `docs/cli.md`.
//!
//! Every test starts from the same scenario (see [`Scenario::new`]): a catalog with a root and an
//! issuing CA, containers A and B, five stores —
//!
//! | store | type | container |
//! |---|---|---|
//! | `pem_a` | pem, key in a separate file | A |
//! | `p12_a` | pkcs12 | A |
//! | `jks_b` | jks | B |
//! | `p12_none` | pkcs12 | none |
//! | `broken_a` | pem whose parent "directory" is a regular file (ENOTDIR) | A |
//!
//! — a principal `operator` with Schedule on container A only, and a certificate enrolled,
//! deployed by the owner to all five under the alias `app` with an entry password, run, and
//! inventoried. What the stores hold afterwards is read with `openssl` and `keytool`, not only
//! with pfxkit; job state is read with `jobs list --json` and, for the killed-runner cases,
//! changed directly in the SQLite file with `rusqlite`.

mod catalog_cli;

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use catalog_cli::{
    Cli, Fleet, STORE_PASSWORD, certificate_id as id, keytool_list_sha1s, keytool_sha1, openssl,
    openssl_pkcs12_certs, openssl_sha1, sorted, sorted_strings, thumbprint,
};
use pfxkit_catalog::jobs::{JOB_LEASE_MS, format_time, now_ms, parse_time};
use serde_json::Value;

const ENTRY_PASSWORD: &str = "entry-pass";
const TRANSPORT: &str = "transport-pass";
const ALIAS: &str = "app";
const OPERATOR: &str = "operator";

struct Scenario {
    cli: Cli,
    pem_a: String,
    p12_a: String,
    jks_b: String,
    p12_none: String,
    broken_a: String,
    /// `CertificateInformation` of the deployed certificate.
    first: Value,
}

/// `jobs list --json`, by job id.
fn jobs_by_id(cli: &Cli) -> BTreeMap<i64, Value> {
    cli.ok(&["jobs", "list"])
        .as_array()
        .unwrap()
        .iter()
        .map(|j| (j["Id"].as_i64().unwrap(), j.clone()))
        .collect()
}

/// Store id → (Status, Result) of a `jobs run`/`jobs list` answer.
fn outcomes(jobs: &Value) -> BTreeMap<String, (String, String)> {
    jobs.as_array()
        .unwrap()
        .iter()
        .map(|j| {
            (
                j["StoreId"].as_str().unwrap().to_string(),
                (
                    j["Status"].as_str().unwrap().to_string(),
                    j["Result"].as_str().unwrap_or("null").to_string(),
                ),
            )
        })
        .collect()
}

fn completed(result: &str) -> (String, String) {
    ("Completed".to_string(), result.to_string())
}

impl Scenario {
    fn new() -> Scenario {
        let (cli, stores) = Cli::with_fleet("Replace");
        let Fleet {
            pem_a,
            p12_a,
            jks_b,
        } = stores;
        std::fs::create_dir(cli.dir().join("none")).unwrap();
        std::fs::write(cli.dir().join("not-a-dir"), b"a regular file").unwrap();
        let path = |p: &str| cli.path_text(p);
        let store_pw = format!("pass:{STORE_PASSWORD}");
        let add = |extra: &[&str]| cli.add_store(extra);
        let p12_none = add(&[
            "--type",
            "pkcs12",
            "--path",
            &path("none/other.p12"),
            "--store-password",
            &store_pw,
        ]);
        let broken_a = add(&[
            "--type",
            "pem",
            "--path",
            &path("not-a-dir/store.pem"),
            "--container",
            "A",
        ]);
        cli.ok(&[
            "grant",
            "--principal",
            OPERATOR,
            "--container",
            "A",
            "--permission",
            "schedule",
        ]);
        // The operator replaces certificates the owner enrolled: it needs `recover`.
        cli.ok(&[
            "grant",
            "--principal",
            OPERATOR,
            "--global",
            "--permission",
            "recover",
        ]);
        let first = cli.enroll(
            "CN=app.example.com,O=pfxkit",
            &[
                "--san",
                "dns:app.example.com",
                "--key-type",
                "ec-p256",
                "--password",
                &format!("pass:{TRANSPORT}"),
            ],
        );
        let scenario = Scenario {
            cli,
            pem_a,
            p12_a,
            jks_b,
            p12_none,
            broken_a,
            first,
        };
        scenario.deploy_first_everywhere();
        scenario
    }

    fn all_stores(&self) -> Vec<String> {
        vec![
            self.pem_a.clone(),
            self.p12_a.clone(),
            self.jks_b.clone(),
            self.p12_none.clone(),
            self.broken_a.clone(),
        ]
    }

    /// The four stores the first certificate lands in.
    fn writable_stores(&self) -> Vec<String> {
        let mut all = self.all_stores();
        all.retain(|s| s != &self.broken_a);
        all.sort();
        all
    }

    /// Deploy (as the owner) to all five, run, inventory: the broken store's job fails and its
    /// inventory fails, the other four hold the first certificate.
    fn deploy_first_everywhere(&self) {
        let cli = &self.cli;
        let mut args = vec![
            "deploy".to_string(),
            "--certificate-id".to_string(),
            id(&self.first),
            "--alias".to_string(),
            ALIAS.to_string(),
            "--password".to_string(),
            format!("pass:{ENTRY_PASSWORD}"),
            "--store".to_string(),
        ];
        args.extend(self.all_stores());
        let deployed = cli.ok(&args);
        assert_eq!(
            sorted_strings(&deployed["SuccessfulStores"]),
            sorted_strings(&Value::from(self.all_stores()))
        );
        assert_eq!(
            sorted_strings(&deployed["FailedStores"]),
            Vec::<String>::new()
        );

        // A failed job makes `jobs run` exit 1 (cli.md), with the JSON of every job it ran.
        let output = cli.exits(1, &["jobs", "run"]);
        let ran: Value = serde_json::from_slice(&output.stdout).unwrap();
        assert!(String::from_utf8_lossy(&output.stderr).contains("1 of 5 jobs failed"));
        let mut expected: BTreeMap<String, (String, String)> = self
            .writable_stores()
            .into_iter()
            .map(|s| (s, completed("Success")))
            .collect();
        expected.insert(self.broken_a.clone(), completed("Failure"));
        assert_eq!(outcomes(&ran), expected, "{ran:#}");
        let broken_job = ran
            .as_array()
            .unwrap()
            .iter()
            .find(|j| j["StoreId"] == self.broken_a.as_str())
            .unwrap();
        let message = broken_job["Message"].as_str().unwrap();
        assert!(message.contains("not-a-dir"), "names the path: {message}");

        let inventory = cli.ok(&["inventory"]);
        for report in inventory.as_array().unwrap() {
            let store = report["StoreId"].as_str().unwrap();
            if store == self.broken_a {
                assert_eq!(report["Result"], "Failure", "{report}");
            } else {
                assert_eq!(report["Result"], "Success", "{report}");
                assert_eq!(report["Entries"], 1, "{report}");
            }
        }
        assert_eq!(self.location_stores(&self.first), self.writable_stores());
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.cli.dir().join(relative)
    }

    /// `certificates show N --include-locations --json`.
    fn locations(&self, info: &Value) -> Vec<Value> {
        self.cli
            .ok(&["certificates", "show", &id(info), "--include-locations"])["Locations"]
            .as_array()
            .unwrap()
            .clone()
    }

    /// The stores where `certificates show --include-locations` says `info` is.
    fn location_stores(&self, info: &Value) -> Vec<String> {
        let mut stores: Vec<String> = self
            .locations(info)
            .iter()
            .map(|l| l["CertStoreId"].as_str().unwrap().to_string())
            .collect();
        stores.sort();
        stores
    }

    /// Renews the first certificate (the successor has a staged key and a request id).
    fn successor(&self) -> Value {
        self.cli.ok(&[
            "renew",
            "--certificate-id",
            &id(&self.first),
            "--password",
            &format!("pass:{TRANSPORT}"),
        ])["CertificateInformation"]
            .clone()
    }

    fn replace_args(&self, new: &Value, extra: &[&str]) -> Vec<String> {
        let mut args: Vec<String> = vec![
            "replace".into(),
            "--existing-certificate-id".into(),
            id(&self.first),
            "--certificate-id".into(),
            id(new),
        ];
        args.extend(extra.iter().map(|s| (*s).to_string()));
        args
    }

    /// SHA-1 of the certificate in each store's file, read by openssl and keytool.
    fn sha1_in(&self, store: &str) -> String {
        let tmp = self.path("extracted.pem");
        if store == self.pem_a {
            self.assert_pem_key_matches();
            openssl_sha1(&self.path("a/web.crt"))
        } else if store == self.p12_a {
            openssl_sha1(&openssl_pkcs12_certs(
                &self.path("a/web.p12"),
                STORE_PASSWORD,
                "-clcerts",
                &tmp,
            ))
        } else if store == self.p12_none {
            openssl_sha1(&openssl_pkcs12_certs(
                &self.path("none/other.p12"),
                STORE_PASSWORD,
                "-clcerts",
                &tmp,
            ))
        } else if store == self.jks_b {
            let jks = self.path("b/app.jks");
            let by_alias = keytool_sha1(&jks, "JKS", STORE_PASSWORD, ALIAS);
            let listed = keytool_list_sha1s(&jks, "JKS", STORE_PASSWORD);
            assert_eq!(listed.first(), Some(&by_alias), "one entry, leaf first");
            by_alias
        } else {
            unreachable!("no file to read for {store}")
        }
    }

    /// The PEM store's separate key file decrypts with the entry password (openssl) and holds
    /// the key of the certificate file's leaf.
    fn assert_pem_key_matches(&self) {
        let key = self.path("a/web.key");
        let from_key = openssl(&[
            OsStr::new("pkey"),
            OsStr::new("-in"),
            key.as_os_str(),
            OsStr::new("-passin"),
            OsStr::new(&format!("pass:{ENTRY_PASSWORD}")),
            OsStr::new("-pubout"),
        ]);
        let from_cert = openssl(&[
            OsStr::new("x509"),
            OsStr::new("-in"),
            self.path("a/web.crt").as_os_str(),
            OsStr::new("-noout"),
            OsStr::new("-pubkey"),
        ]);
        assert_eq!(from_key, from_cert, "PEM key and certificate do not match");
        let key_text = std::fs::read_to_string(&key).unwrap();
        assert!(key_text.contains("ENCRYPTED PRIVATE KEY"), "{key_text}");
    }
}

#[test]
fn replace_as_a_principal_schedules_only_where_it_may_and_the_stores_end_with_the_successor() {
    let s = Scenario::new();
    let cli = &s.cli;
    let first = thumbprint(&s.first);
    for store in s.writable_stores() {
        assert_eq!(s.sha1_in(&store), first, "deployed to {store}");
    }
    // Locations carry store id, alias, type and path.
    let mut locations: Vec<(String, String, String, String)> = s
        .locations(&s.first)
        .iter()
        .map(|l| {
            (
                l["CertStoreId"].as_str().unwrap().to_string(),
                l["Alias"].as_str().unwrap().to_string(),
                l["StoreType"].as_str().unwrap().to_string(),
                l["StorePath"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    locations.sort();
    let mut expected: Vec<(String, String, String, String)> = [
        (&s.pem_a, "pem", "a/web.crt"),
        (&s.p12_a, "pkcs12", "a/web.p12"),
        (&s.jks_b, "jks", "b/app.jks"),
        (&s.p12_none, "pkcs12", "none/other.p12"),
    ]
    .iter()
    .map(|(store, kind, path)| {
        (
            (*store).clone(),
            ALIAS.to_string(),
            (*kind).to_string(),
            s.path(path).display().to_string(),
        )
    })
    .collect();
    expected.sort();
    assert_eq!(locations, expected);

    let successor = s.successor();
    let replaced = cli.ok_as(
        OPERATOR,
        &s.replace_args(
            &successor,
            &["--password", &format!("pass:{ENTRY_PASSWORD}")],
        ),
    );
    // The operator's own grants on container A decide there: A's stores. B has none of its
    // grants, so its global grants apply, and it holds no store permission globally; the store
    // in no container uses the global grants too.
    // The broken store was never inventoried successfully: not a target at all.
    assert_eq!(
        sorted_strings(&replaced["SuccessfulStores"]),
        sorted(&[&s.pem_a, &s.p12_a])
    );
    assert_eq!(
        sorted_strings(&replaced["FailedStores"]),
        sorted(&[&s.jks_b, &s.p12_none])
    );
    let failures = replaced["Failures"].as_object().unwrap();
    assert_eq!(failures.len(), 2, "{replaced:#}");
    for store in [&s.jks_b, &s.p12_none] {
        let reason = failures[store.as_str()].as_str().unwrap();
        assert!(
            reason.contains("Schedule") && reason.contains(OPERATOR),
            "{reason}"
        );
    }

    let ran = cli.ok(&["jobs", "run"]);
    assert_eq!(
        outcomes(&ran),
        [s.pem_a.clone(), s.p12_a.clone()]
            .into_iter()
            .map(|st| (st, completed("Success")))
            .collect()
    );
    let new = thumbprint(&successor);
    assert_eq!(s.sha1_in(&s.pem_a), new);
    assert_eq!(s.sha1_in(&s.p12_a), new);
    assert_eq!(s.sha1_in(&s.jks_b), first, "no permission: untouched");
    assert_eq!(s.sha1_in(&s.p12_none), first, "no permission: untouched");

    // The runner inventoried the changed stores: the locations moved.
    assert_eq!(s.location_stores(&successor), sorted(&[&s.pem_a, &s.p12_a]));
    assert_eq!(
        s.location_stores(&s.first),
        sorted(&[&s.jks_b, &s.p12_none])
    );
    for location in s.locations(&successor) {
        assert_eq!(location["Alias"], ALIAS, "the found alias is overwritten");
    }
}

#[test]
fn replace_without_a_password_fails_the_pem_stores_for_the_missing_entry_password() {
    let s = Scenario::new();
    let successor = s.successor();
    let replaced = s.cli.ok(&s.replace_args(&successor, &[]));
    assert_eq!(
        sorted_strings(&replaced["SuccessfulStores"]),
        sorted(&[&s.p12_a, &s.jks_b, &s.p12_none])
    );
    assert_eq!(
        sorted_strings(&replaced["FailedStores"]),
        sorted(&[&s.pem_a])
    );
    let reason = replaced["Failures"][s.pem_a.as_str()].as_str().unwrap();
    assert!(reason.contains("entry password"), "{reason}");

    s.cli.ok(&["jobs", "run"]);
    let new = thumbprint(&successor);
    for store in [&s.p12_a, &s.jks_b, &s.p12_none] {
        assert_eq!(&s.sha1_in(store), &new, "{store}");
    }
    assert_eq!(s.sha1_in(&s.pem_a), thumbprint(&s.first));
}

#[test]
fn a_future_job_time_waits_until_the_runner_passes_it() {
    let s = Scenario::new();
    let successor = s.successor();
    let before = jobs_by_id(&s.cli).len();
    // Thirty days ahead, in whole seconds: within the successor's validity (a Replace whose
    // new certificate has expired when its jobs run is refused).
    let at_s = now_ms() / 1000 + 30 * 86_400;
    let at = format_time(at_s * 1000);
    let at_z = format!("{}Z", at.trim_end_matches(".000Z"));
    let early = format!(
        "{}Z",
        format_time((at_s - 1) * 1000).trim_end_matches(".000Z")
    );
    let later = format_time((at_s + 12 * 3600) * 1000);
    let replaced = s.cli.ok(&s.replace_args(
        &successor,
        &[
            "--password",
            &format!("pass:{ENTRY_PASSWORD}"),
            "--job-time",
            &at_z,
        ],
    ));
    assert_eq!(
        sorted_strings(&replaced["SuccessfulStores"]),
        s.writable_stores()
    );

    let waiting = |cli: &Cli| -> Vec<Value> {
        jobs_by_id(cli)
            .into_values()
            .skip(before)
            .filter(|j| j["Status"] == "Waiting")
            .collect()
    };
    assert_eq!(s.cli.ok(&["jobs", "run"]), Value::Array(vec![]));
    let scheduled = waiting(&s.cli);
    assert_eq!(scheduled.len(), 4);
    for job in &scheduled {
        assert_eq!(job["Result"], Value::Null);
        assert_eq!(job["Scheduled"], at.as_str());
        assert_eq!(job["Type"], "Management");
    }
    // One second early: still waiting.
    let early = s.cli.ok(&["jobs", "run", "--now", &early]);
    assert_eq!(early, Value::Array(vec![]));
    assert_eq!(waiting(&s.cli).len(), 4);
    assert_eq!(s.sha1_in(&s.p12_a), thumbprint(&s.first));

    // At the time (with milliseconds, as Keyfactor writes it): every job runs, once.
    let ran = s.cli.ok(&["jobs", "run", "--now", &at]);
    assert_eq!(
        outcomes(&ran),
        s.writable_stores()
            .into_iter()
            .map(|st| (st, completed("Success")))
            .collect()
    );
    let listed = jobs_by_id(&s.cli);
    assert_eq!(listed.len(), before + 4);
    for job in listed.values().skip(before) {
        assert_eq!(
            (&job["Status"], &job["Result"]),
            (&"Completed".into(), &"Success".into())
        );
    }
    let new = thumbprint(&successor);
    for store in s.writable_stores() {
        assert_eq!(s.sha1_in(&store), new, "{store}");
    }
    assert_eq!(
        s.cli.ok(&["jobs", "run", "--now", &later]),
        Value::Array(vec![])
    );
}

#[test]
fn a_past_job_time_with_milliseconds_runs_now() {
    let s = Scenario::new();
    let successor = s.successor();
    let replaced = s.cli.ok(&s.replace_args(
        &successor,
        &[
            "--password",
            &format!("pass:{ENTRY_PASSWORD}"),
            "--job-time",
            "2020-01-01T00:00:00.000Z",
        ],
    ));
    assert_eq!(
        sorted_strings(&replaced["SuccessfulStores"]),
        s.writable_stores()
    );
    assert_eq!(s.cli.ok(&["jobs", "run"]).as_array().unwrap().len(), 4);
    assert_eq!(s.sha1_in(&s.jks_b), thumbprint(&successor));
}

#[test]
fn parse_time_accepts_utc_with_and_without_milliseconds() {
    assert_eq!(
        parse_time("2023-11-19T16:23:01Z").unwrap(),
        parse_time("2023-11-19T16:23:01.000Z").unwrap()
    );
    assert_eq!(
        parse_time("2023-11-19T16:23:01Z").unwrap(),
        1_700_410_981_000
    );
    assert_eq!(
        parse_time("2023-11-19T16:23:01.250Z").unwrap(),
        1_700_410_981_250
    );
    assert_eq!(format_time(1_700_410_981_250), "2023-11-19T16:23:01.250Z");
    for bad in [
        "2023-11-19T16:23:01",
        "2023-11-19T16:23:01+00:00",
        "19/11/2023",
    ] {
        assert!(parse_time(bad).is_err(), "{bad}");
    }
    let cli = Cli::with_ca();
    cli.exits(1, &["jobs", "run", "--now", "tomorrow"]);
}

#[test]
fn replace_rejects_bad_requests_before_creating_any_job() {
    let s = Scenario::new();
    let cli = &s.cli;
    let successor = s.successor();
    let jobs_before = jobs_by_id(cli).len();
    let existing = id(&s.first);

    // Exactly one of --certificate-id and --request-id.
    cli.exits(2, &["replace", "--existing-certificate-id", &existing]);
    cli.exits(
        2,
        &[
            "replace",
            "--existing-certificate-id",
            &existing,
            "--certificate-id",
            &id(&successor),
            "--request-id",
            &successor["KeyfactorRequestId"].to_string(),
        ],
    );
    // Unknown ids.
    cli.exits(
        1,
        &[
            "replace",
            "--existing-certificate-id",
            "9999",
            "--certificate-id",
            &id(&successor),
        ],
    );
    cli.exits(
        1,
        &[
            "replace",
            "--existing-certificate-id",
            &existing,
            "--certificate-id",
            "9999",
        ],
    );
    cli.exits(
        1,
        &[
            "replace",
            "--existing-certificate-id",
            &existing,
            "--request-id",
            "9999",
        ],
    );
    // A CA certificate has no staged key (its key is the CA's, never handed out).
    let ca_thumbprint = cli.ok(&["certificates", "show", "1"])["Thumbprint"]
        .as_str()
        .unwrap()
        .to_string();
    let ca_id = cli.id_of_thumbprint(&ca_thumbprint);
    let out = cli.exits(
        1,
        &[
            "replace",
            "--existing-certificate-id",
            &existing,
            "--certificate-id",
            &ca_id.to_string(),
        ],
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("staged"));
    // A certificate known only from an inventory has no staged key either.
    let fixture = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .join("tests/data/p12/openssl-default.p12");
    let foreign_store = s.path("none/other.p12");
    let added = std::process::Command::new(env!("CARGO_BIN_EXE_pfxkit"))
        .args(["store", "add", "--type", "pkcs12", "--path"])
        .arg(&foreign_store)
        .args(["--store-password", &format!("pass:{STORE_PASSWORD}")])
        .args(["--alias", "foreign", "--pfx"])
        .arg(&fixture)
        .args(["--pfx-password", "pass:pfxkit-pass"])
        .output()
        .unwrap();
    catalog_cli::assert_exit(&added, 0);
    cli.ok(&["inventory", "--store", &s.p12_none]);
    let foreign_sha1 = openssl_sha1(&openssl_pkcs12_certs(
        &fixture,
        "pfxkit-pass",
        "-clcerts",
        &s.path("foreign.pem"),
    ));
    let foreign_id = cli.id_of_thumbprint(&foreign_sha1);
    assert_eq!(
        cli.ok(&["certificates", "show", &foreign_id.to_string()])["HasPrivateKey"],
        false
    );
    cli.exits(
        1,
        &[
            "replace",
            "--existing-certificate-id",
            &existing,
            "--certificate-id",
            &foreign_id.to_string(),
        ],
    );
    assert_eq!(
        jobs_by_id(cli).len(),
        jobs_before,
        "no job for a bad request"
    );

    // By request id, the same replacement is accepted.
    let by_request = cli.ok(&[
        "replace",
        "--existing-certificate-id",
        &existing,
        "--request-id",
        &successor["KeyfactorRequestId"].to_string(),
        "--password",
        &format!("pass:{ENTRY_PASSWORD}"),
    ]);
    assert_eq!(
        sorted_strings(&by_request["SuccessfulStores"]),
        s.writable_stores()
    );
}

#[test]
fn a_principal_without_grants_on_a_container_falls_back_to_its_own_global_grants() {
    let s = Scenario::new();
    let cli = &s.cli;
    let successor = s.successor();
    let entry = format!("pass:{ENTRY_PASSWORD}");
    let grant = |principal: &str, scope: &[&str], permission: &str| {
        let mut args = vec!["grant", "--principal", principal];
        args.extend_from_slice(scope);
        args.extend_from_slice(&["--permission", permission]);
        cli.ok(&args);
    };
    for principal in ["reader", "global", "admin"] {
        grant(principal, &["--global"], "recover");
    }

    // Read is not Schedule: every store fails, and so does the command (exit 1, JSON printed).
    grant("reader", &["--global"], "read");
    let output = cli.exits(
        1,
        &[
            &["--principal", "reader"][..],
            &s.replace_args(&successor, &["--password", &entry])
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
        ]
        .concat(),
    );
    let read_only: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(read_only["SuccessfulStores"], Value::Array(vec![]));
    assert_eq!(
        sorted_strings(&read_only["FailedStores"]),
        s.writable_stores()
    );

    // A global Schedule grant reaches every store, container A's included: the operator's
    // grants on A are the operator's, and `global` holds none there.
    grant("global", &["--global"], "schedule");
    let global = cli.ok_as(
        "global",
        &s.replace_args(&successor, &["--password", &entry]),
    );
    assert_eq!(
        sorted_strings(&global["SuccessfulStores"]),
        s.writable_stores()
    );
    // Its own grant on A decides for it there: Read only.
    grant("global", &["--container", "A"], "read");
    let narrowed = cli.ok_as(
        "global",
        &s.replace_args(&successor, &["--password", &entry]),
    );
    assert_eq!(
        sorted_strings(&narrowed["SuccessfulStores"]),
        sorted(&[&s.jks_b, &s.p12_none])
    );
    assert_eq!(
        sorted_strings(&narrowed["FailedStores"]),
        sorted(&[&s.pem_a, &s.p12_a])
    );

    // Modify includes Schedule.
    grant("admin", &["--global"], "modify");
    grant("admin", &["--container", "A"], "modify");
    let admin = cli.ok_as(
        "admin",
        &s.replace_args(&successor, &["--password", &entry]),
    );
    assert_eq!(
        sorted_strings(&admin["SuccessfulStores"]),
        s.writable_stores()
    );
}

/// Asserts there are `expected_jobs` jobs and each is Completed/Success, except on the broken
/// store (whose deploy job failed by design).
fn all_completed_successfully(s: &Scenario, expected_jobs: usize) {
    let listed = jobs_by_id(&s.cli);
    assert_eq!(listed.len(), expected_jobs, "no job duplicated or lost");
    for job in listed.values() {
        if job["StoreId"] == s.broken_a.as_str() {
            continue;
        }
        assert_eq!(
            (&job["Status"], &job["Result"]),
            (&"Completed".into(), &"Success".into()),
            "{job:#}"
        );
    }
}

/// Moves every live lease's start back past [`JOB_LEASE_MS`], as if its runner had died that
/// long ago (leases are judged on the real clock, so a test cannot skip ahead with `--now`).
fn expire_leases(cli: &Cli) {
    let db = rusqlite::Connection::open(cli.database()).unwrap();
    db.execute(
        "UPDATE jobs SET claimed_ms = claimed_ms - ?1 WHERE status = 'InProcess'",
        [JOB_LEASE_MS + 60_000],
    )
    .unwrap();
}

#[test]
fn a_runner_that_died_holding_jobs_is_taken_over_after_the_lease_exactly_once() {
    let s = Scenario::new();
    let cli = &s.cli;
    let successor = s.successor();
    cli.ok(&s.replace_args(
        &successor,
        &["--password", &format!("pass:{ENTRY_PASSWORD}")],
    ));
    let jobs_total = jobs_by_id(cli).len();

    // A runner claimed the four jobs and died before finishing any.
    let claimed_at = now_ms();
    {
        let db = rusqlite::Connection::open(cli.database()).unwrap();
        let claimed = db
            .execute(
                "UPDATE jobs SET status = 'InProcess', claimed_ms = ?1 WHERE status = 'Waiting'",
                [claimed_at],
            )
            .unwrap();
        assert_eq!(claimed, 4);
    }
    // Within the lease nobody takes them over.
    assert_eq!(cli.ok(&["jobs", "run"]), Value::Array(vec![]));
    let in_process = jobs_by_id(cli)
        .values()
        .filter(|j| j["Status"] == "InProcess")
        .count();
    assert_eq!(in_process, 4);

    // Nor does a runner whose `--now` is past the lease: leases run on the real clock.
    let later = format_time(claimed_at + JOB_LEASE_MS + 60_000);
    assert_eq!(
        cli.ok(&["jobs", "run", "--now", &later]),
        Value::Array(vec![])
    );
    // Past the lease (the claim made that long ago) they are taken over and each completes
    // once.
    expire_leases(cli);
    let ran = cli.ok(&["jobs", "run"]);
    assert_eq!(
        outcomes(&ran),
        s.writable_stores()
            .into_iter()
            .map(|st| (st, completed("Success")))
            .collect()
    );
    let much_later = format_time(claimed_at + 3 * JOB_LEASE_MS);
    assert_eq!(
        cli.ok(&["jobs", "run", "--now", &much_later]),
        Value::Array(vec![])
    );
    all_completed_successfully(&s, jobs_total);
    let new = thumbprint(&successor);
    for store in s.writable_stores() {
        assert_eq!(s.sha1_in(&store), new, "{store}");
    }
    for report in cli.ok(&["inventory"]).as_array().unwrap() {
        if report["StoreId"] != s.broken_a.as_str() {
            assert_eq!(report["Entries"], 1, "one entry, not two: {report}");
        }
    }
}

#[test]
fn a_runner_killed_mid_run_is_resumed_without_duplicating_or_losing_work() {
    let s = Scenario::new();
    let cli = &s.cli;
    let entry = format!("pass:{ENTRY_PASSWORD}");
    // Alternate the stores between two certificates, killing the runner at a different
    // instant each round, then resuming it past the lease.
    let successor = s.successor();
    let pair = [s.first.clone(), successor];

    // How long one run over the four stores takes.
    let args = |from: &Value, to: &Value| -> Vec<String> {
        vec![
            "replace".into(),
            "--existing-certificate-id".into(),
            id(from),
            "--certificate-id".into(),
            id(to),
            "--password".into(),
            entry.clone(),
        ]
    };
    cli.ok(&args(&pair[0], &pair[1]));
    let started = Instant::now();
    cli.ok(&["jobs", "run"]);
    let span = started.elapsed().max(Duration::from_millis(20));

    const ROUNDS: u32 = 8;
    let mut interrupted = 0;
    for round in 0..ROUNDS {
        let (from, to) = if round % 2 == 0 {
            (&pair[1], &pair[0])
        } else {
            (&pair[0], &pair[1])
        };
        let replaced = cli.ok(&args(from, to));
        assert_eq!(
            sorted_strings(&replaced["SuccessfulStores"]),
            s.writable_stores(),
            "round {round}"
        );
        let mut runner = cli
            .command(&["jobs", "run"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(span * (round + 1) / (ROUNDS + 1));
        if runner.try_wait().unwrap().is_none() {
            interrupted += 1;
        }
        runner.kill().unwrap_or(()); // SIGKILL; it may have finished already.
        runner.wait().unwrap();

        expire_leases(cli);
        cli.ok(&["jobs", "run"]);
        let listed = jobs_by_id(cli);
        for job in listed.values() {
            assert_eq!(job["Status"], "Completed", "round {round}: {job:#}");
        }
        let expected = thumbprint(to);
        for store in s.writable_stores() {
            assert_eq!(s.sha1_in(&store), expected, "round {round}: {store}");
        }
        assert_eq!(s.location_stores(to), s.writable_stores(), "round {round}");
        for report in cli.ok(&["inventory"]).as_array().unwrap() {
            if report["StoreId"] != s.broken_a.as_str() {
                assert_eq!(report["Entries"], 1, "round {round}: {report}");
            }
        }
    }
    assert!(interrupted > 0, "no run was interrupted");
    let total = jobs_by_id(cli).len();
    all_completed_successfully(&s, total);
}

#[test]
fn a_store_holding_the_certificate_under_two_aliases_is_listed_once() {
    // Regression: FailedStores listed such a store once per alias.
    let s = Scenario::new();
    let cli = &s.cli;
    cli.ok(&[
        "deploy",
        "--certificate-id",
        &id(&s.first),
        "--store",
        &s.p12_none,
        &s.jks_b,
        "--alias",
        "second",
    ]);
    cli.ok(&["jobs", "run"]);
    cli.ok(&["inventory"]);
    let successor = s.successor();

    let refused = cli.ok_as(
        OPERATOR,
        &s.replace_args(
            &successor,
            &["--password", &format!("pass:{ENTRY_PASSWORD}")],
        ),
    );
    let failed: Vec<String> = refused["FailedStores"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(failed.len(), 2, "{refused:#}");
    assert_eq!(
        sorted_strings(&refused["FailedStores"]),
        sorted(&[&s.jks_b, &s.p12_none])
    );

    // The owner replaces both aliases: one store each in SuccessfulStores, two jobs each.
    let replaced = cli.ok(&s.replace_args(
        &successor,
        &["--password", &format!("pass:{ENTRY_PASSWORD}")],
    ));
    let successful = replaced["SuccessfulStores"].as_array().unwrap();
    assert_eq!(successful.len(), 4, "{replaced:#}");
    let ran = cli.ok(&["jobs", "run"]);
    // Six targets in all: the owner's replace queues four, and finds the operator's two
    // (container A) already waiting, which it does not queue again (issue 15 item 14).
    assert_eq!(ran.as_array().unwrap().len(), 6, "{ran:#}");
    let actions = replaced["Actions"].as_object().unwrap();
    assert_eq!(
        actions
            .values()
            .filter(|a| a.as_str().unwrap().contains("already waiting"))
            .count(),
        2,
        "{replaced:#}"
    );
    let new = thumbprint(&successor);
    let jks = s.path("b/app.jks");
    for alias in [ALIAS, "second"] {
        assert_eq!(
            keytool_sha1(&jks, "JKS", STORE_PASSWORD, alias),
            new,
            "{alias}"
        );
    }
    // keytool -list -v prints each entry's chain (leaf, issuing CA, root): two entries.
    assert_eq!(keytool_list_sha1s(&jks, "JKS", STORE_PASSWORD).len(), 6);
    let aliases: Vec<String> = s
        .locations(&successor)
        .iter()
        .filter(|l| l["CertStoreId"] == s.p12_none.as_str())
        .map(|l| l["Alias"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(aliases, sorted(&[ALIAS, "second"]));
}
