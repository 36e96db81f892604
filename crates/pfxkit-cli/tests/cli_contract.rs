#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
//! `docs/cli.md` is the contract of the command line (issue 15): every command, option, JSON
//! field and exit code. These tests hold the binary and the document to each other, so that a
//! command or option added without its documentation fails here:
//!
//! - every subcommand `pfxkit --help` lists (recursively) has a synopsis in `docs/cli.md` that
//!   names each of its options;
//! - every command answers `--json` with one JSON document whose field names are all in the
//!   document, and a listing with nothing in it says so in its text.

mod catalog_cli;

use std::collections::BTreeSet;
use std::process::Command;

use catalog_cli::{Cli, P12_PASSWORD, assert_exit, build_p12, data, in_days, s, text};
use serde_json::Value;

/// Options every command documents once, in the contract's sections on output and catalogs,
/// rather than in each synopsis.
const COMMON_OPTIONS: [&str; 6] = [
    "help",
    "version",
    "json",
    "catalog",
    "catalog-key",
    "principal",
];

/// Options every `store` command takes, documented once in the section on store commands.
const STORE_OPTIONS: [&str; 3] = ["allow-shared-dir", "key-path", "trust-only"];

fn contract() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/cli.md")).unwrap()
}

/// `pfxkit PATH… --help`.
fn help(path: &[String]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_pfxkit"))
        .args(path)
        .arg("--help")
        .env_remove("PFXKIT_CATALOG")
        .env_remove("PFXKIT_PRINCIPAL")
        .env_remove("PFXKIT_CATALOG_KEY")
        .output()
        .unwrap();
    assert_exit(&output, 0);
    String::from_utf8(output.stdout).unwrap()
}

/// The lines of one section (`Commands:`, `Options:`) of a help text.
fn section<'a>(help: &'a str, title: &str) -> Vec<&'a str> {
    help.lines()
        .skip_while(|line| *line != title)
        .skip(1)
        .take_while(|line| !line.trim().is_empty())
        .collect()
}

/// Every command path below `path` that has no subcommands of its own, with its long options.
fn leaf_commands(path: &[String], into: &mut Vec<(String, Vec<String>)>) {
    let text = help(path);
    let subcommands: Vec<String> = section(&text, "Commands:")
        .iter()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(String::from)
        .collect();
    if subcommands.is_empty() {
        let options = section(&text, "Options:")
            .iter()
            .filter_map(|line| {
                let line = line.trim_start();
                let line = line
                    .get(4..)
                    .filter(|_| line.starts_with('-') && line.get(2..4) == Some(", "))
                    .unwrap_or(line);
                line.strip_prefix("--").map(|rest| {
                    rest.split([' ', '='])
                        .next()
                        .unwrap_or_default()
                        .to_string()
                })
            })
            .collect();
        into.push((path.join(" "), options));
    }
    for name in subcommands {
        let mut below = path.to_vec();
        below.push(name);
        leaf_commands(&below, into);
    }
}

/// The code spans of a Markdown text (between single backticks; table cells escape `|` as
/// `\|`).
fn code_spans(markdown: &str) -> Vec<String> {
    markdown
        .split('`')
        .skip(1)
        .step_by(2)
        .map(|span| span.replace("\\|", "|"))
        .collect()
}

/// Whether `text` names the option `--name` (not merely a longer one starting the same).
fn names_option(text: &str, name: &str) -> bool {
    let flag = format!("--{name}");
    text.match_indices(&flag).any(|(at, _)| {
        !text[at + flag.len()..]
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '-')
    })
}

#[test]
fn every_command_and_option_in_help_is_in_the_contract() {
    let contract = contract();
    let spans = code_spans(&contract);
    let mut leaves = Vec::new();
    leaf_commands(&[], &mut leaves);
    assert!(
        leaves.len() > 40,
        "the help walk found too few commands: {leaves:?}"
    );
    for option in COMMON_OPTIONS.iter().skip(2) {
        assert!(
            names_option(&contract, option),
            "docs/cli.md never explains --{option}"
        );
    }
    let store_section = contract
        .split("## Store commands")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("docs/cli.md has a section on store commands");
    let store_intro = store_section
        .split("`pfxkit store")
        .next()
        .unwrap_or_default();
    for option in STORE_OPTIONS {
        assert!(
            names_option(store_intro, option),
            "the store section's introduction does not explain --{option}"
        );
    }
    let mut missing = Vec::new();
    for (command, options) in &leaves {
        // The synopses: code spans that start with `pfxkit COMMAND` and go on with an option,
        // an argument or nothing.
        let prefix = format!("pfxkit {command}");
        let synopses: Vec<&String> = spans
            .iter()
            .filter(|span| {
                span.strip_prefix(&prefix)
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with(' '))
            })
            .collect();
        if synopses.is_empty() {
            missing.push(format!("`{prefix}`: no synopsis"));
            continue;
        }
        for option in options {
            let common = COMMON_OPTIONS.contains(&option.as_str())
                || (command.starts_with("store ") && STORE_OPTIONS.contains(&option.as_str()));
            if !common && !synopses.iter().any(|span| names_option(span, option)) {
                missing.push(format!("`{prefix}`: --{option} is not in its synopsis"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "docs/cli.md lacks:\n{}",
        missing.join("\n")
    );
}

#[test]
fn every_exit_code_of_the_help_is_in_the_contract() {
    let contract = contract();
    let top = help(&[]);
    let codes = top
        .split("Exit codes:")
        .nth(1)
        .expect("the help lists the exit codes");
    for code in 0..=6 {
        assert!(codes.contains(&format!("{code} ")), "help: {codes}");
        assert!(
            contract.contains(&format!("| {code} |")),
            "docs/cli.md lacks exit code {code}"
        );
    }
}

/// Every object key anywhere in `value`.
fn field_names(value: &Value, into: &mut BTreeSet<String>) {
    match value {
        Value::Object(fields) => {
            for (name, inner) in fields {
                // Maps keyed by a store's GUID (Failures, Actions) are data, not field names.
                if !looks_like_guid(name) {
                    into.insert(name.clone());
                }
                field_names(inner, into);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| field_names(v, into)),
        _ => {}
    }
}

fn looks_like_guid(name: &str) -> bool {
    name.len() == 36 && name.chars().filter(|c| *c == '-').count() == 4
}

#[test]
fn every_command_answers_json_whose_fields_are_all_in_the_contract() {
    let cli = Cli::with_ca();
    let dir = cli.dir().to_path_buf();
    let mut answers: Vec<(String, Value)> = Vec::new();
    let mut ok = |args: &[&str]| {
        let value = cli.ok(args);
        answers.push((args.join(" "), value.clone()));
        value
    };

    // Format and store commands.
    let p12 = dir.join("web.p12");
    build_p12(&p12);
    ok(&["inspect", s(&p12), "--password", P12_PASSWORD]);
    let jks = dir.join("web.jks");
    ok(&[
        "convert",
        s(&p12),
        "--password",
        P12_PASSWORD,
        "--to",
        "jks",
        "--out",
        s(&jks),
        "--out-password",
        "pass:sp",
    ]);
    ok(&["inspect", s(&jks), "--password", "pass:sp"]);
    let root = data("pki/certs/root.pem");
    let store_command = |head: &[&str], password: &str, extra: &[&str]| -> Vec<String> {
        let store = [
            "--type",
            "jks",
            "--path",
            s(&jks),
            "--store-password",
            password,
        ];
        head.iter()
            .chain(store.iter())
            .chain(extra)
            .map(|a| (*a).to_string())
            .collect()
    };
    for args in [
        store_command(
            &["store", "add"],
            "pass:sp",
            &["--alias", "root", "--cert", s(&root)],
        ),
        store_command(&["store", "inventory"], "pass:sp", &["--alias", "root"]),
        store_command(
            &["store", "rename"],
            "pass:sp",
            &["--alias", "root", "--to", "anchor"],
        ),
        store_command(
            &["store", "passwd"],
            "pass:sp",
            &["--alias", "web", "--new-key-password", "pass:kp"],
        ),
        store_command(
            &["store", "passwd"],
            "pass:sp",
            &["--new-password", "pass:sp2"],
        ),
        store_command(&["store", "remove"], "pass:sp2", &["--alias", "anchor"]),
    ] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        ok(&args);
    }

    // The catalog: a certificate expiring in 10 days, deployed, located, renewed by a policy.
    ok(&["ca", "show"]);
    let ca_pem = dir.join("ca.pem");
    ok(&["ca", "export", "--out", s(&ca_pem)]);
    ok(&["ca", "export"]);
    let out = dir.join("svc.p12");
    let old = ok(&[
        "enroll",
        "--subject",
        "CN=svc.example.com",
        "--san",
        "dns:svc.example.com",
        "--days",
        "10",
        "--password",
        "pass:t",
        "--out",
        s(&out),
    ])["CertificateInformation"]["KeyfactorId"]
        .as_i64()
        .unwrap()
        .to_string();
    ok(&["import", "--pfx", s(&p12), "--password", P12_PASSWORD]);
    ok(&["containers", "add", "web"]);
    ok(&["containers", "list"]);
    let path = dir.join("svc-store.p12");
    let store_id = ok(&[
        "stores",
        "add",
        "--type",
        "pkcs12",
        "--path",
        s(&path),
        "--container",
        "web",
        "--store-password",
        "pass:sp",
    ])["Id"]
        .as_str()
        .unwrap()
        .to_string();
    ok(&["stores", "list"]);
    ok(&["stores", "show", &store_id]);
    ok(&[
        "deploy",
        "--certificate-id",
        &old,
        "--alias",
        "svc",
        "--store",
        &store_id,
    ]);
    ok(&["jobs", "list"]);
    ok(&["jobs", "run"]);
    ok(&["inventory"]);
    ok(&["certificates", "list", "--expiring-within", "30d"]);
    ok(&["certificates", "show", &old, "--include-locations"]);
    ok(&["expiring", "--within", "30d"]);
    for permission in ["enroll", "schedule"] {
        ok(&[
            "grant",
            "--principal",
            "renewer",
            "--global",
            "--permission",
            permission,
        ]);
    }
    ok(&[
        "policy",
        "set",
        "--global",
        "--renew-before",
        "30d",
        "--principal",
        "renewer",
    ]);
    ok(&["policy", "list"]);
    // A 10-day certificate's 30-day window opens half-way through its life: check 8 days on.
    ok(&["renew-due", "--now", &in_days(8)]);
    ok(&["policy", "history"]);
    ok(&["policy", "remove", "--global"]);
    let waiting = ok(&["jobs", "list"])
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["Status"] == "Waiting")
        .map(|j| j["Id"].as_i64().unwrap().to_string())
        .expect("renew-due queued a Replace job");
    ok(&["jobs", "cancel", &waiting]);
    let renewed = ok(&["renew", "--certificate-id", &old, "--password", "pass:t"]);
    let new = renewed["CertificateInformation"]["KeyfactorId"]
        .as_i64()
        .unwrap()
        .to_string();
    ok(&[
        "replace",
        "--existing-certificate-id",
        &old,
        "--certificate-id",
        &new,
        "--dry-run",
    ]);
    ok(&["users", "add", "ops", "--password", "pass:op"]);
    ok(&["users", "list"]);
    let token = ok(&["tokens", "add", "ops"])["Id"]
        .as_i64()
        .unwrap()
        .to_string();
    ok(&["tokens", "revoke", &token]);
    ok(&["users", "remove", "ops"]);

    let contract = contract();
    let mut missing = Vec::new();
    for (command, answer) in &answers {
        let mut names = BTreeSet::new();
        field_names(answer, &mut names);
        for name in names {
            if !contract.contains(&format!("\"{name}\""))
                && !contract.contains(&format!("`{name}`"))
            {
                missing.push(format!("{command}: field {name}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "JSON fields not in docs/cli.md:\n{}",
        missing.join("\n")
    );
    // The flow above really ran a renewal, so the history had fields to check.
    let history = &answers
        .iter()
        .find(|(c, _)| c == "policy history")
        .unwrap()
        .1;
    assert_eq!(history[0]["Outcome"], "Renewed", "{history}");
}

#[test]
fn empty_listings_say_so_in_text_and_are_empty_arrays_in_json() {
    let cli = Cli::with_ca();
    for (args, says) in [
        (&["jobs", "list"][..], "no jobs"),
        (&["stores", "list"][..], "no stores"),
        (&["inventory"][..], "no stores to inventory"),
        (&["policy", "list"][..], "no policies"),
        (&["policy", "history"][..], "no renewal decisions yet"),
        (&["renew-due"][..], "no certificate is due for renewal"),
        (&["users", "list"][..], "no users"),
        (&["containers", "list"][..], "no containers"),
        (
            &["expiring"][..],
            "no located certificate expires within 30d",
        ),
    ] {
        assert_eq!(cli.ok(args), serde_json::json!([]), "{args:?}");
        let output = Command::new(env!("CARGO_BIN_EXE_pfxkit"))
            .arg("--catalog")
            .arg(cli.catalog())
            .args(args)
            .env_remove("PFXKIT_PRINCIPAL")
            .output()
            .unwrap();
        assert_exit(&output, 0);
        assert_eq!(
            String::from_utf8_lossy(&output.stdout).trim(),
            says,
            "{args:?}: {}",
            text(&output)
        );
    }
}

#[test]
fn ca_export_says_what_it_wrote_and_answers_json() {
    let cli = Cli::with_ca();
    let path = cli.dir().join("ca.pem");
    let output = Command::new(env!("CARGO_BIN_EXE_pfxkit"))
        .arg("--catalog")
        .arg(cli.catalog())
        .args(["ca", "export", "--out", s(&path)])
        .output()
        .unwrap();
    assert_exit(&output, 0);
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        format!(
            "wrote {}: 1 certificate of the CA chain (PEM)",
            path.display()
        )
    );
    let written = std::fs::read_to_string(&path).unwrap();
    let shown = cli.ok(&["ca", "show"]);
    let exported = cli.ok(&["ca", "export"]);
    assert_eq!(exported["Pem"], written.as_str());
    assert_eq!(
        exported["Certificates"][0]["Thumbprint"],
        shown["Thumbprint"]
    );
    let again = cli.dir().join("again.pem");
    let answer = cli.ok(&["ca", "export", "--out", s(&again)]);
    assert_eq!(answer["Written"], s(&again));
    assert_eq!(std::fs::read_to_string(&again).unwrap(), written);
    // Without --json the PEM itself is the output, as `ca export > ca.pem` needs.
    let plain = Command::new(env!("CARGO_BIN_EXE_pfxkit"))
        .arg("--catalog")
        .arg(cli.catalog())
        .args(["ca", "export"])
        .output()
        .unwrap();
    assert_exit(&plain, 0);
    assert_eq!(String::from_utf8_lossy(&plain.stdout), written);
}
