#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
//! Issue 19: renewal that nobody has to remember (the fleet specification): `expiring`,
//! `renew --replace`, renewal policies checked by `renew-due`, and `policy history`, driven
//! through the `pfxkit` binary.
//!
//! Every test starts from the same scenario ([`Fleet::new`]): a catalog with a root and an
//! issuing CA, containers A and B, three stores —
//!
//! | store | type | container |
//! |---|---|---|
//! | `pem_a` | pem, key in a separate file | A |
//! | `p12_a` | pkcs12 | A |
//! | `jks_b` | jks | B |
//!
//! — and a certificate `short` enrolled with `--days 20` (RSA 2048, two SANs), deployed by the
//! owner to all three under the alias `app` with an entry password, run, and inventoried. What
//! the stores hold afterwards is read with `openssl` and `keytool`, not only with pfxkit.

mod catalog_cli;

use std::ffi::OsStr;
use std::path::PathBuf;
use std::process::Stdio;

use catalog_cli::{
    Cli, DAY_MS, Fleet as Stores, STORE_PASSWORD, assert_exit, certificate_id as id, in_days,
    keytool_list_sha1s, keytool_sha1, openssl, openssl_pkcs12_certs, openssl_sha1, sorted_strings,
    text, thumbprint as sha1,
};
use pfxkit_catalog::jobs::{format_time, parse_time};
use serde_json::Value;

const ENTRY_PASSWORD: &str = "entry-pass";
const ALIAS: &str = "app";
const RENEWER: &str = "renewer";

struct Fleet {
    cli: Cli,
    pem_a: String,
    p12_a: String,
    jks_b: String,
    /// `CertificateInformation` of the deployed 20-day certificate.
    short: Value,
}

impl Fleet {
    fn new() -> Fleet {
        let (cli, stores) = Cli::with_fleet("Renewal");
        let Stores {
            pem_a,
            p12_a,
            jks_b,
        } = stores;
        let short = cli.enroll(
            "CN=short.example.com,O=pfxkit",
            &[
                "--san",
                "dns:short.example.com",
                "--san",
                "dns:www.short.example.com",
                "--key-type",
                "rsa-2048",
                "--days",
                "20",
            ],
        );
        let fleet = Fleet {
            cli,
            pem_a,
            p12_a,
            jks_b,
            short,
        };
        fleet.deploy(&fleet.short);
        fleet
    }

    fn stores(&self) -> Vec<String> {
        let mut all = vec![self.pem_a.clone(), self.p12_a.clone(), self.jks_b.clone()];
        all.sort();
        all
    }

    /// Deploys `info` to every store under the alias, runs the jobs and inventories.
    fn deploy(&self, info: &Value) {
        let password = format!("pass:{ENTRY_PASSWORD}");
        let mut args = vec![
            "deploy",
            "--certificate-id",
            &id(info),
            "--alias",
            ALIAS,
            "--overwrite",
            "--password",
            &password,
            "--store",
        ]
        .into_iter()
        .map(str::to_string)
        .collect::<Vec<_>>();
        args.extend(self.stores());
        let deployed = self.cli.ok(&args);
        assert_eq!(sorted_strings(&deployed["SuccessfulStores"]), self.stores());
        self.run_jobs();
        self.cli.ok(&["inventory"]);
    }

    fn run_jobs(&self) -> Value {
        self.run_jobs_at(None)
    }

    /// `jobs run [--now T]`, every job asserted to succeed.
    fn run_jobs_at(&self, now: Option<&str>) -> Value {
        let mut args = vec!["jobs", "run"];
        if let Some(now) = now {
            args.extend(["--now", now]);
        }
        let ran = self.cli.ok(&args);
        for job in ran.as_array().unwrap() {
            assert_eq!(job["Result"], "Success", "{job}");
        }
        ran
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.cli.dir().join(relative)
    }

    /// SHA-1 of the leaf in a store's file, read by openssl (PEM, PKCS#12) or keytool (JKS).
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
        } else {
            let jks = self.path("b/app.jks");
            let by_alias = keytool_sha1(&jks, "JKS", STORE_PASSWORD, ALIAS);
            let listed = keytool_list_sha1s(&jks, "JKS", STORE_PASSWORD);
            assert_eq!(listed.first(), Some(&by_alias), "one entry, leaf first");
            by_alias
        }
    }

    /// The PEM store's key decrypts with the entry password (openssl) and matches its leaf.
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
        assert_eq!(
            from_key,
            self.pem_public_key(),
            "PEM key and certificate do not match"
        );
    }

    /// The public key of the PEM store's certificate, as openssl prints it.
    fn pem_public_key(&self) -> String {
        openssl(&[
            OsStr::new("x509"),
            OsStr::new("-in"),
            self.path("a/web.crt").as_os_str(),
            OsStr::new("-noout"),
            OsStr::new("-pubkey"),
        ])
    }

    /// `openssl x509 -text` of the PEM store's certificate: subject, SAN and key lines.
    fn pem_identity_lines(&self) -> Vec<String> {
        let x509 = openssl(&[
            OsStr::new("x509"),
            OsStr::new("-in"),
            self.path("a/web.crt").as_os_str(),
            OsStr::new("-noout"),
            OsStr::new("-text"),
        ]);
        let lines: Vec<&str> = x509.lines().map(str::trim).collect();
        let mut wanted: Vec<String> = lines
            .iter()
            .filter(|l| l.starts_with("Subject:") || l.contains("Public-Key:"))
            .map(|l| (*l).to_string())
            .collect();
        let san = lines
            .iter()
            .position(|l| l.contains("Subject Alternative Name"))
            .unwrap();
        wanted.push(lines[san + 1].to_string());
        wanted
    }

    /// Every store holds `info`, per openssl and keytool.
    fn assert_stores_hold(&self, info: &Value) {
        for store in self.stores() {
            assert_eq!(self.sha1_in(&store), sha1(info), "store {store}");
        }
    }

    /// `certificates show N`.
    fn show(&self, certificate: &str) -> Value {
        self.cli.ok(&["certificates", "show", certificate])
    }

    /// `expiring --within W` (JSON).
    fn expiring(&self, extra: &[&str]) -> Vec<Value> {
        let mut args = vec!["expiring"];
        args.extend_from_slice(extra);
        self.cli.ok(&args).as_array().unwrap().clone()
    }

    fn renew_due(&self, now: &str) -> Vec<Value> {
        self.cli
            .ok(&["renew-due", "--now", now])
            .as_array()
            .unwrap()
            .clone()
    }

    fn history(&self) -> Vec<Value> {
        self.cli
            .ok(&["policy", "history"])
            .as_array()
            .unwrap()
            .clone()
    }

    fn set_global_policy(&self, renew_before: &str) -> Value {
        self.cli.ok(&[
            "policy",
            "set",
            "--global",
            "--renew-before",
            renew_before,
            "--principal",
            RENEWER,
            "--entry-password",
            &format!("pass:{ENTRY_PASSWORD}"),
        ])
    }

    /// Grants the renewer `schedule` on `scope`, and the global `enroll` a renewal needs.
    fn grant(&self, scope: &[&str]) {
        self.grant_to(RENEWER, "enroll", &["--global"]);
        self.grant_to(RENEWER, "schedule", scope);
    }

    fn grant_to(&self, principal: &str, permission: &str, scope: &[&str]) {
        let mut args = vec![
            "grant",
            "--principal",
            principal,
            "--permission",
            permission,
        ];
        args.extend_from_slice(scope);
        self.cli.ok(&args);
    }
}

/// Seconds from NotBefore to NotAfter of a `certificates show` answer.
fn lifetime(shown: &Value) -> i64 {
    let secs = |field: &str| parse_time(shown[field].as_str().unwrap()).unwrap() / 1000;
    secs("NotAfter") - secs("NotBefore")
}

#[test]
fn expiring_lists_located_certificates_within_the_window_with_days_left_and_successor() {
    let f = Fleet::new();
    // Located elsewhere but far from expiry, and close to expiry but located nowhere: neither
    // is listed.
    let long = f.cli.enroll("CN=long.example.com", &["--days", "200"]);
    let password = format!("pass:{ENTRY_PASSWORD}");
    f.cli.ok(&[
        "deploy",
        "--certificate-id",
        &id(&long),
        "--alias",
        "long",
        "--password",
        &password,
        "--store",
        &f.jks_b,
    ]);
    f.run_jobs();
    f.cli.enroll("CN=unplaced.example.com", &["--days", "3"]);

    let listed = f.expiring(&["--within", "30d"]);
    assert_eq!(listed.len(), 1, "{listed:#?}");
    let entry = listed[0].as_object().unwrap();
    let mut fields: Vec<&str> = entry.keys().map(String::as_str).collect();
    fields.sort_unstable();
    assert_eq!(
        fields,
        [
            "DaysLeft",
            "Id",
            "IssuedDN",
            "Locations",
            "NotAfter",
            "RenewedBy",
            "Thumbprint"
        ]
    );
    assert_eq!(entry["Id"], f.short["KeyfactorId"]);
    assert_eq!(entry["Thumbprint"], f.short["Thumbprint"]);
    assert_eq!(entry["IssuedDN"], "CN=short.example.com,O=pfxkit");
    assert_eq!(entry["NotAfter"], f.show(&id(&f.short))["NotAfter"]);
    // Whole days left, rounded down: issued for 20 days a moment ago, at most 20 remain.
    let left = entry["DaysLeft"].as_i64().unwrap();
    assert!((19..=20).contains(&left), "{entry:?}");
    let not_after = parse_time(entry["NotAfter"].as_str().unwrap()).unwrap();
    let half_day_before = format_time(not_after - 19 * DAY_MS - DAY_MS / 2);
    assert_eq!(
        f.expiring(&["--within", "30d", "--now", &half_day_before])[0]["DaysLeft"],
        19
    );
    assert_eq!(entry["Locations"], 3);
    assert_eq!(entry["RenewedBy"], Value::Null);

    // Counted from another time: expired certificates stay listed, with negative days.
    let later = format_time(not_after + 5 * DAY_MS + DAY_MS / 2);
    let later = f.expiring(&["--within", "1d", "--now", &later]);
    assert_eq!(later.len(), 1);
    assert_eq!(later[0]["DaysLeft"], -6);
    // Hours work too; 200 days takes in `long`.
    assert_eq!(f.expiring(&["--within", "480h"]).len(), 1);
    assert_eq!(f.expiring(&["--within", "201d"]).len(), 2);

    // A renewal by hand is named as the successor.
    let renewed =
        f.cli.ok(&["renew", "--certificate-id", &id(&f.short)])["CertificateInformation"].clone();
    let listed = f.expiring(&["--within", "30d"]);
    assert_eq!(listed[0]["RenewedBy"], renewed["KeyfactorId"]);
}

#[test]
fn expiring_with_nothing_in_the_window_exits_0_with_an_empty_list() {
    let f = Fleet::new();
    assert!(f.expiring(&["--within", "5d"]).is_empty());
    // The text form too.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_pfxkit"))
        .arg("--catalog")
        .arg(f.cli.catalog())
        .args(["expiring", "--within", "5d"])
        .env_remove("PFXKIT_PRINCIPAL")
        .output()
        .unwrap();
    assert_exit(&output, 0);
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("no located certificate"),
        "{}",
        text(&output)
    );
}

#[test]
fn expiring_rejects_a_window_it_cannot_read() {
    let f = Fleet::new();
    for bad in ["2w", "-3d", "1.5d", "", "99999999999d"] {
        let output = f.cli.exits(1, &["expiring", &format!("--within={bad}")]);
        assert!(
            String::from_utf8_lossy(&output.stderr).contains("window"),
            "{}",
            text(&output)
        );
    }
}

#[test]
fn renew_with_replace_renews_and_replaces_in_every_store_in_one_command() {
    let f = Fleet::new();
    let old_identity = f.pem_identity_lines();
    let old_public_key = f.pem_public_key();
    let answer = f.cli.ok(&[
        "renew",
        "--certificate-id",
        &id(&f.short),
        "--replace",
        "--password",
        &format!("pass:{ENTRY_PASSWORD}"),
    ]);
    let new = answer["CertificateInformation"].clone();
    assert_ne!(new["KeyfactorId"], f.short["KeyfactorId"]);
    assert_ne!(new["Thumbprint"], f.short["Thumbprint"]);
    assert_eq!(sorted_strings(&answer["SuccessfulStores"]), f.stores());
    assert_eq!(answer["FailedStores"], Value::Array(vec![]));
    assert_eq!(answer["Failures"], serde_json::json!({}));

    let ran = f.run_jobs();
    assert_eq!(ran.as_array().unwrap().len(), 3);
    f.assert_stores_hold(&new);
    // Same subject, SANs and key type; a new key; as long a validity.
    assert_eq!(f.pem_identity_lines(), old_identity);
    assert_ne!(f.pem_public_key(), old_public_key);
    assert_eq!(
        lifetime(&f.show(&id(&new))),
        lifetime(&f.show(&id(&f.short)))
    );
    // The successor is recorded: the old certificate, still known, names it.
    let listed = f.expiring(&["--within", "30d"]);
    assert_eq!(listed.len(), 1, "only the successor is located now");
    assert_eq!(listed[0]["Id"], new["KeyfactorId"]);
}

#[test]
fn renew_with_replace_as_a_principal_fails_the_stores_it_may_not_schedule() {
    let f = Fleet::new();
    f.grant(&["--container", "A"]);
    let answer = f.cli.ok_as(
        RENEWER,
        &[
            "renew",
            "--certificate-id",
            &id(&f.short),
            "--replace",
            "--password",
            &format!("pass:{ENTRY_PASSWORD}"),
        ],
    );
    let new = answer["CertificateInformation"].clone();
    let mut in_a = vec![f.pem_a.clone(), f.p12_a.clone()];
    in_a.sort();
    assert_eq!(sorted_strings(&answer["SuccessfulStores"]), in_a);
    assert_eq!(
        sorted_strings(&answer["FailedStores"]),
        vec![f.jks_b.clone()]
    );
    let reason = answer["Failures"][&f.jks_b].as_str().unwrap();
    assert!(reason.contains("Schedule"), "{reason}");
    f.run_jobs();
    assert_eq!(f.sha1_in(&f.pem_a), sha1(&new));
    assert_eq!(f.sha1_in(&f.p12_a), sha1(&new));
    assert_eq!(f.sha1_in(&f.jks_b), sha1(&f.short));
}

#[test]
fn renew_with_replace_refuses_a_bad_job_time_before_issuing_anything() {
    let f = Fleet::new();
    let output = f.cli.exits(
        1,
        &[
            "renew",
            "--certificate-id",
            &id(&f.short),
            "--replace",
            "--job-time",
            "tomorrow",
        ],
    );
    assert!(String::from_utf8_lossy(&output.stderr).contains("tomorrow"));
    // Nothing issued: the next id is free, and the certificate has no successor.
    f.cli.exits(1, &["certificates", "show", "4"]);
    assert_eq!(
        f.expiring(&["--within", "30d"])[0]["RenewedBy"],
        Value::Null
    );
    // --job-time means nothing without --replace.
    f.cli.exits(
        2,
        &[
            "renew",
            "--certificate-id",
            &id(&f.short),
            "--job-time",
            &in_days(1),
        ],
    );
}

#[test]
fn a_policy_renews_a_certificate_once_inside_its_window_and_never_before() {
    let f = Fleet::new();
    f.grant(&["--global"]);
    let policy = f.set_global_policy("10d");
    assert_eq!(policy["RenewBeforeSeconds"], 10 * 86_400);
    assert_eq!(policy["EntryPassword"], "sealed");
    assert_eq!(f.cli.ok(&["policy", "list"]).as_array().unwrap().len(), 1);

    // 20-day certificate, 10-day window: at day 5 nothing is due.
    assert!(f.renew_due(&in_days(5)).is_empty());
    assert!(f.history().is_empty());

    // At day 12 it is renewed, once, and replaced everywhere as the renewer.
    let at = in_days(12);
    let decisions = f.renew_due(&at);
    assert_eq!(decisions.len(), 1, "{decisions:#?}");
    let d = &decisions[0];
    assert_eq!(d["CertificateId"], f.short["KeyfactorId"]);
    assert_eq!(d["Outcome"], "Renewed");
    assert_eq!(d["Principal"], RENEWER);
    assert_eq!(d["Decided"], at.as_str());
    assert_eq!(sorted_strings(&d["SuccessfulStores"]), f.stores());
    assert_eq!(d["FailedStores"], Value::Array(vec![]));
    let shown_old = f.show(&id(&f.short));
    assert_eq!(d["NotAfter"], shown_old["NotAfter"]);
    let window = parse_time(shown_old["NotAfter"].as_str().unwrap()).unwrap() - 10 * DAY_MS;
    assert_eq!(
        parse_time(d["WindowStart"].as_str().unwrap()).unwrap(),
        window
    );
    let successor = d["SuccessorId"].to_string();
    let shown_new = f.show(&successor);
    // Valid from the check's "now" (less the minute kept for clock skew), as long as before.
    assert_eq!(
        parse_time(shown_new["NotBefore"].as_str().unwrap()).unwrap(),
        parse_time(&at).unwrap() / 1000 * 1000 - 60_000
    );
    assert_eq!(lifetime(&shown_new), lifetime(&shown_old));
    assert_eq!(f.history().len(), 1);

    // Again, at the same time and later: nothing new.
    assert!(f.renew_due(&at).is_empty());
    assert!(f.renew_due(&in_days(15)).is_empty());
    assert_eq!(f.history().len(), 1);

    // The jobs, due at the check's time (the successor is valid from then), put the
    // successor into every store; openssl and keytool agree.
    assert!(
        f.cli.ok(&["jobs", "run"]).as_array().unwrap().is_empty(),
        "no job runs before the successor is valid"
    );
    let ran = f.run_jobs_at(Some(&at));
    assert_eq!(ran.as_array().unwrap().len(), 3);
    let new = serde_json::json!({ "Thumbprint": shown_new["Thumbprint"] });
    f.assert_stores_hold(&new);
    // Nothing is left in the window: the old certificate is located nowhere.
    assert!(f.renew_due(&at).is_empty());
    assert!(f.expiring(&["--within", "20d"]).is_empty());

    let history = f.history();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0]["SuccessorId"], d["SuccessorId"]);
    assert_eq!(history[0]["Outcome"], "Renewed");
}

#[test]
fn a_policy_principal_without_schedule_on_a_container_gets_that_store_failed_and_recorded() {
    let f = Fleet::new();
    // Schedule on A only; B has no grants of its own and the renewer none globally.
    f.grant(&["--container", "A"]);
    f.set_global_policy("30d");
    // A 30-day window on a 20-day certificate is shortened to half its lifetime: nothing is
    // due on day 9, or every fresh successor would be due again at once.
    assert!(f.renew_due(&in_days(9)).is_empty());
    let decisions = f.renew_due(&in_days(12));
    assert_eq!(decisions.len(), 1);
    let d = &decisions[0];
    assert_eq!(d["Outcome"], "PartiallyReplaced");
    let mut in_a = vec![f.pem_a.clone(), f.p12_a.clone()];
    in_a.sort();
    assert_eq!(sorted_strings(&d["SuccessfulStores"]), in_a);
    assert_eq!(sorted_strings(&d["FailedStores"]), vec![f.jks_b.clone()]);
    let reason = d["Failures"][&f.jks_b].as_str().unwrap();
    assert!(
        reason.contains("'renewer' lacks the Schedule permission"),
        "{reason}"
    );
    // The history keeps the reason.
    let history = f.history();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0]["Failures"][&f.jks_b], reason);

    f.run_jobs_at(Some(&in_days(12)));
    let new = f.show(&d["SuccessorId"].to_string());
    assert_eq!(f.sha1_in(&f.pem_a), sha1(&new));
    assert_eq!(f.sha1_in(&f.p12_a), sha1(&new));
    // The JKS store in B still holds the old certificate (keytool).
    assert_eq!(f.sha1_in(&f.jks_b), sha1(&f.short));
    // ...and it is not renewed a second time (it has a successor), nor is the successor,
    // whose window opens on day 22.
    assert!(f.renew_due(&in_days(13)).is_empty());
}

#[test]
fn a_container_policy_governs_its_stores_before_the_global_policy() {
    let f = Fleet::new();
    f.grant(&["--global"]);
    // Global: 2 days before expiry. Container A: 8 days. `short` is located in A (and B), so
    // A's policy governs it: due from day 12 on, not day 18.
    f.set_global_policy("2d");
    f.cli.ok(&[
        "policy",
        "set",
        "--container",
        "A",
        "--renew-before",
        "8d",
        "--principal",
        "a-renewer",
        "--entry-password",
        &format!("pass:{ENTRY_PASSWORD}"),
    ]);
    f.grant_to("a-renewer", "enroll", &["--global"]);
    let policies = f.cli.ok(&["policy", "list"]);
    assert_eq!(policies.as_array().unwrap().len(), 2);
    assert_eq!(policies[0]["Global"], true);
    assert!(f.renew_due(&in_days(11)).is_empty());
    let decisions = f.renew_due(&in_days(13));
    assert_eq!(decisions.len(), 1);
    assert_eq!(decisions[0]["Principal"], "a-renewer");
    assert_eq!(decisions[0]["PolicyId"], policies[1]["Id"]);
    // a-renewer may enroll but schedule nowhere: every store fails, each with its reason.
    assert_eq!(decisions[0]["Outcome"], "PartiallyReplaced");
    assert_eq!(sorted_strings(&decisions[0]["FailedStores"]), f.stores());

    // Removing a policy keeps its history.
    f.cli.ok(&["policy", "remove", "--container", "A"]);
    assert_eq!(f.cli.ok(&["policy", "list"]).as_array().unwrap().len(), 1);
    assert_eq!(f.history().len(), 1);
    let output = f.cli.exits(1, &["policy", "remove", "--container", "A"]);
    assert!(String::from_utf8_lossy(&output.stderr).contains("no renewal policy"));
}

#[test]
fn a_policy_whose_entry_password_cannot_be_read_renews_nothing_and_retries_at_the_next_check() {
    let f = Fleet::new();
    f.grant(&["--global"]);
    let var = "PFXKIT_RENEWAL_TEST_ENTRY_PASSWORD";
    f.cli.ok(&[
        "policy",
        "set",
        "--global",
        "--renew-before",
        "30d",
        "--principal",
        RENEWER,
        "--entry-password",
        &format!("env:{var}"),
    ]);
    let at = in_days(12);
    // Unset: the check exits 1, records a Failed decision, and issues nothing.
    let output = f
        .cli
        .command(&["renew-due", "--now", &at])
        .env_remove(var)
        .output()
        .unwrap();
    assert_exit(&output, 1);
    let decisions: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(decisions[0]["Outcome"], "Failed", "{decisions:#}");
    assert_eq!(decisions[0]["SuccessorId"], Value::Null);
    assert!(decisions[0]["Message"].as_str().unwrap().contains(var));
    assert_eq!(
        f.expiring(&["--within", "30d"])[0]["RenewedBy"],
        Value::Null
    );

    // Set: the next check renews it.
    let output = f
        .cli
        .command(&["renew-due", "--now", &at])
        .env(var, ENTRY_PASSWORD)
        .output()
        .unwrap();
    assert_exit(&output, 0);
    let decisions: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(decisions[0]["Outcome"], "Renewed", "{decisions:#}");
    f.run_jobs_at(Some(&at));
    // The PEM key is encrypted under the password the variable held.
    f.assert_pem_key_matches();
    let history = f.history();
    assert_eq!(
        history
            .iter()
            .map(|h| h["Outcome"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["Failed", "Renewed"]
    );
}

#[test]
fn concurrent_checks_renew_each_certificate_once() {
    let f = Fleet::new();
    f.grant(&["--global"]);
    // Three more certificates in the window, so that the checks overlap on several.
    let mut expiring = vec![f.short.clone()];
    for n in 0..3 {
        let info = f
            .cli
            .enroll(&format!("CN=race{n}.example.com"), &["--days", "20"]);
        let password = format!("pass:{ENTRY_PASSWORD}");
        let alias = format!("race{n}");
        let mut args = vec![
            "deploy",
            "--certificate-id",
            &id(&info),
            "--alias",
            &alias,
            "--password",
            &password,
            "--store",
        ]
        .into_iter()
        .map(str::to_string)
        .collect::<Vec<_>>();
        args.push(f.p12_a.clone());
        args.push(f.jks_b.clone());
        f.cli.ok(&args);
        expiring.push(info);
    }
    f.run_jobs();
    f.cli.ok(&["inventory"]);
    f.set_global_policy("30d");

    let at = in_days(12);
    let checks: Vec<_> = (0..4)
        .map(|_| {
            f.cli
                .command(&["renew-due", "--now", &at])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut renewed = Vec::new();
    for check in checks {
        let output = check.wait_with_output().unwrap();
        assert_exit(&output, 0);
        let decisions: Value = serde_json::from_slice(&output.stdout).unwrap();
        for d in decisions.as_array().unwrap() {
            assert_eq!(d["Outcome"], "Renewed", "{d}");
            renewed.push(d["CertificateId"].as_i64().unwrap());
        }
    }
    renewed.sort_unstable();
    let mut want: Vec<i64> = expiring
        .iter()
        .map(|i| i["KeyfactorId"].as_i64().unwrap())
        .collect();
    want.sort_unstable();
    assert_eq!(
        renewed, want,
        "each certificate renewed by exactly one check"
    );
    assert_eq!(f.history().len(), 4);
    // One job per (store, alias) of each renewed certificate: 3 + 3 × 2.
    assert_eq!(f.cli.jobs_in("Waiting").len(), 9);
    f.run_jobs_at(Some(&at));
    assert!(f.renew_due(&at).is_empty());
}

/// Threat: a principal sets a policy that acts as a more privileged principal, and so makes
/// the check schedule jobs in stores it may not touch itself.
#[test]
fn only_an_admin_sets_or_removes_policies() {
    let f = Fleet::new();
    let output = f
        .cli
        .command(&[
            "policy",
            "set",
            "--global",
            "--renew-before",
            "30d",
            "--principal",
            "admin",
        ])
        .env("PFXKIT_PRINCIPAL", "operator")
        .output()
        .unwrap();
    assert_exit(&output, 1);
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("permission denied"),
        "{}",
        text(&output)
    );
    assert!(f.cli.ok(&["policy", "list"]).as_array().unwrap().is_empty());

    f.set_global_policy("30d");
    let output = f.cli.exits(
        1,
        &["--principal", "operator", "policy", "remove", "--global"],
    );
    assert!(String::from_utf8_lossy(&output.stderr).contains("lacks the global admin"));
    assert_eq!(f.cli.ok(&["policy", "list"]).as_array().unwrap().len(), 1);

    // With admin it may.
    f.grant_to("operator", "admin", &["--global"]);
    f.cli.ok(&[
        "policy",
        "set",
        "--as",
        "operator",
        "--container",
        "A",
        "--renew-before",
        "7d",
        "--principal",
        RENEWER,
    ]);
    f.cli
        .ok(&["--principal", "operator", "policy", "remove", "--global"]);
    let left = f.cli.ok(&["policy", "list"]);
    assert_eq!(left.as_array().unwrap().len(), 1);
    assert_eq!(left[0]["Global"], false);
}

#[test]
fn a_policy_principal_without_enroll_renews_nothing_and_the_decision_says_why() {
    let f = Fleet::new();
    f.grant_to(RENEWER, "schedule", &["--global"]);
    f.set_global_policy("10d");
    let output = f.cli.exits(1, &["renew-due", "--now", &in_days(12)]);
    let decisions: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(decisions[0]["Outcome"], "Failed");
    assert_eq!(decisions[0]["SuccessorId"], Value::Null);
    let message = decisions[0]["Message"].as_str().unwrap();
    assert!(
        message.contains("lacks the global enroll permission"),
        "{message}"
    );
    assert_eq!(
        f.expiring(&["--within", "30d"])[0]["RenewedBy"],
        Value::Null
    );
    assert_eq!(f.history().len(), 1);
    assert!(
        f.cli
            .ok(&["jobs", "list"])
            .as_array()
            .unwrap()
            .iter()
            .all(|j| j["Status"] == "Completed")
    );
}

#[test]
fn policy_set_rejects_bad_input_and_changes_nothing() {
    let f = Fleet::new();
    let set = |extra: &[&str]| {
        let mut args = vec!["policy", "set"];
        args.extend_from_slice(extra);
        args.iter().map(|s| (*s).to_string()).collect::<Vec<_>>()
    };
    let cases: [(i32, Vec<String>, &str); 5] = [
        (
            1,
            set(&[
                "--container",
                "Z",
                "--renew-before",
                "30d",
                "--principal",
                "p",
            ]),
            "unknown container 'Z'",
        ),
        (
            1,
            set(&["--global", "--renew-before", "0d", "--principal", "p"]),
            "--renew-before",
        ),
        (
            1,
            set(&["--global", "--renew-before", "soon", "--principal", "p"]),
            "window 'soon'",
        ),
        (
            2,
            set(&["--global", "--renew-before", "30d"]),
            "--principal <PRINCIPAL>",
        ),
        (
            2,
            set(&[
                "--global",
                "--container",
                "A",
                "--renew-before",
                "30d",
                "--principal",
                "p",
            ]),
            "cannot be used with",
        ),
    ];
    for (code, args, message) in cases {
        let output = f.cli.exits(code, &args);
        assert!(
            String::from_utf8_lossy(&output.stderr).contains(message),
            "{args:?}: {}",
            text(&output)
        );
    }
    assert!(f.cli.ok(&["policy", "list"]).as_array().unwrap().is_empty());
}
