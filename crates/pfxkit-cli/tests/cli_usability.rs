#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
//! Issue 15: a command line that `openssl pkcs12`, `keytool` and Keyfactor Command users can
//! live in, item by item (`docs/cli.md` is the contract these tests hold it to). Each test runs
//! the `pfxkit` binary and asserts on its exit code and output, with JSON parsed by serde_json.
//!
//! Inputs: the PEM fixtures under `tests/data/pki` and `tests/data/jks` (made by
//! `tests/data/gen.sh`); an expired certificate made here with Python `cryptography`; catalogs
//! made in temporary directories through the CLI itself.

mod catalog_cli;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use catalog_cli::{
    Cli, P12_PASSWORD, assert_exit, assert_fails_saying, build_p12, data, json_err, json_out,
    pfxkit, s, stderr, stdout, text,
};
use serde_json::Value;

// Item 1: every command says in one line what it changed, and gives JSON with --json.

#[test]
fn build_convert_and_store_commands_say_what_they_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let p12 = dir.path().join("out.p12");
    let output = pfxkit(&[
        "build",
        "--key",
        s(&data("pki/keys/leaf-rsa.pem")),
        "--cert",
        s(&data("pki/certs/leaf-rsa.pem")),
        "--chain",
        s(&data("pki/certs/chain.pem")),
        "--out",
        s(&p12),
        "--password",
        P12_PASSWORD,
    ]);
    assert_exit(&output, 0);
    assert_eq!(
        stdout(&output).trim(),
        format!(
            "wrote {}: 1 key, 3 certificates, profile modern",
            p12.display()
        )
    );

    let jks = dir.path().join("out.jks");
    let output = pfxkit(&[
        "--json",
        "convert",
        s(&p12),
        "--password",
        P12_PASSWORD,
        "--to",
        "jks",
        "--out",
        s(&jks),
        "--out-password",
        "pass:storepass",
    ]);
    assert_exit(&output, 0);
    let written = &json_out(&output)["written"][0];
    assert_eq!(written["path"], s(&jks));
    assert_eq!(written["format"], "jks");
    assert_eq!(written["keys"], 1);
    assert_eq!(written["certificates"], 3);

    let store = dir.path().join("store.p12");
    let add = |extra: &[&str]| {
        let mut args = vec![
            "store",
            "add",
            "--type",
            "pkcs12",
            "--path",
            s(&store),
            "--store-password",
            "pass:sp",
            "--alias",
            "web",
            "--pfx",
            s(&p12),
            "--pfx-password",
            P12_PASSWORD,
            "--create",
        ];
        args.extend_from_slice(extra);
        pfxkit(&args)
    };
    let first = add(&[]);
    assert_exit(&first, 0);
    assert!(
        stdout(&first).starts_with(&format!("added 'web' in {}", store.display())),
        "{}",
        text(&first)
    );
    let again = add(&["--overwrite", "--json"]);
    assert_exit(&again, 0);
    assert_eq!(json_out(&again)["action"], "replaced");

    let removed = pfxkit(&[
        "store",
        "remove",
        "--type",
        "pkcs12",
        "--path",
        s(&store),
        "--store-password",
        "pass:sp",
        "--alias",
        "web",
    ]);
    assert_exit(&removed, 0);
    assert_eq!(
        stdout(&removed).trim(),
        format!("removed 'web' in {}", store.display())
    );
}

#[test]
fn enroll_with_out_says_which_file_it_wrote() {
    let cli = Cli::with_ca();
    let out = cli.dir().join("enrolled.p12");
    let output = cli.command(&[
        "enroll",
        "--subject",
        "CN=a.example.com",
        "--password",
        "pass:t",
        "--out",
        s(&out),
    ]);
    let output = { output }.output().unwrap();
    assert_exit(&output, 0);
    assert_eq!(json_out(&output)["Written"], s(&out));
    assert!(out.exists());
}

#[test]
fn catalog_commands_that_change_something_say_what_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = dir.path().join("catalog");
    let store = dir.path().join("web.p12");
    let run = |args: &[&str]| {
        let mut all = vec!["--catalog", s(&catalog)];
        all.extend_from_slice(args);
        let output = pfxkit(&all);
        assert_exit(&output, 0);
        stdout(&output)
    };
    assert_eq!(
        run(&["catalog", "init"]).trim(),
        format!("catalog created in {}", catalog.display())
    );
    assert!(run(&["ca", "init", "--subject", "CN=Root"]).starts_with("CA CN=Root (thumbprint "));
    assert_eq!(
        run(&["containers", "add", "web"]).trim(),
        "container 1 (web)"
    );
    let added = run(&[
        "stores",
        "add",
        "--type",
        "pkcs12",
        "--path",
        s(&store),
        "--container",
        "web",
        "--store-password",
        "pass:sp",
    ]);
    // Before: the bare GUID, which said neither that a store was added nor which.
    let id = added
        .trim()
        .strip_prefix("added store ")
        .and_then(|rest| {
            rest.strip_suffix(&format!(": pkcs12 {} in container web", store.display()))
        })
        .unwrap_or_else(|| panic!("{added}"));
    assert_eq!(id.len(), 36, "{added}");
    assert_eq!(
        run(&[
            "grant",
            "--principal",
            "ops",
            "--global",
            "--permission",
            "read"
        ])
        .trim(),
        "granted read to ops"
    );
    assert_eq!(
        run(&["users", "add", "ops", "--password", "pass:pw"]).trim(),
        "user ops added"
    );
    assert!(run(&["tokens", "add", "ops"]).starts_with("token 1 for ops (shown once):"));
    assert_eq!(run(&["tokens", "revoke", "1"]).trim(), "token 1 revoked");
    assert_eq!(
        run(&[
            "policy",
            "set",
            "--global",
            "--renew-before",
            "30d",
            "--principal",
            "ops"
        ])
        .trim(),
        "policy 1 set: renew 30d before expiry as ops"
    );
    assert_eq!(
        run(&["policy", "remove", "--global"]).trim(),
        "policy removed"
    );
    assert_eq!(run(&["users", "remove", "ops"]).trim(), "user ops removed");
    let export = dir.path().join("ca.pem");
    assert_eq!(
        run(&["ca", "export", "--out", s(&export)]).trim(),
        format!(
            "wrote {}: 1 certificate of the CA chain (PEM)",
            export.display()
        )
    );
    assert_eq!(
        run(&["stores", "remove", id]).trim(),
        format!(
            "removed store {id} (pkcs12 {}) from the catalog; its files are untouched",
            store.display()
        )
    );
}

// Item 2: with --json, an error is one JSON object on stderr.

#[test]
fn errors_under_json_are_one_object_with_code_kind_and_message() {
    let dir = tempfile::tempdir().unwrap();
    let p12 = dir.path().join("web.p12");
    build_p12(&p12);
    let wrong = pfxkit(&["--json", "inspect", s(&p12), "--password", "pass:nope"]);
    assert_exit(&wrong, 3);
    let error = &json_err(&wrong)["Error"];
    assert_eq!(error["Code"], 3);
    assert_eq!(error["Kind"], "WrongPassword");
    assert!(error["Message"].as_str().unwrap().contains("web.p12"));

    let usage = pfxkit(&["inspect", s(&p12), "--json", "--no-such-option"]);
    assert_exit(&usage, 2);
    let error = &json_err(&usage)["Error"];
    assert_eq!(error["Code"], 2);
    assert_eq!(error["Kind"], "Usage");
}

// Item 3: which password was wrong.

#[test]
fn store_add_names_the_password_that_failed() {
    let dir = tempfile::tempdir().unwrap();
    let p12 = dir.path().join("new.p12");
    build_p12(&p12);
    let store = dir.path().join("web.p12");
    let add = |store_pw: &str, pfx_pw: &str| {
        pfxkit(&[
            "store",
            "add",
            "--type",
            "pkcs12",
            "--path",
            s(&store),
            "--store-password",
            store_pw,
            "--alias",
            "web",
            "--pfx",
            s(&p12),
            "--pfx-password",
            pfx_pw,
            "--create",
        ])
    };
    assert_exit(&add("pass:sp", P12_PASSWORD), 0);
    let wrong_pfx = add("pass:sp", "pass:nope");
    assert_fails_saying(&wrong_pfx, 3, &format!("the password of {}", p12.display()));
    let wrong_store = add("pass:nope", P12_PASSWORD);
    assert_fails_saying(
        &wrong_store,
        3,
        &format!("the store password of {}", store.display()),
    );
}

// Item 4: a file of another format is named, with the option that reads it.

#[test]
fn a_jks_read_as_pkcs12_is_named_with_the_type_to_use() {
    let jks = data("jks/chain.jks");
    let inspect = pfxkit(&[
        "inspect",
        s(&jks),
        "--type",
        "pkcs12",
        "--password",
        "pass:x",
    ]);
    assert_fails_saying(
        &inspect,
        4,
        "a JKS keystore, not a PKCS#12 file; use --type jks",
    );
    let inventory = pfxkit(&[
        "store",
        "inventory",
        "--type",
        "pkcs12",
        "--path",
        s(&jks),
        "--store-password",
        "pass:x",
    ]);
    assert_fails_saying(&inventory, 4, "use --type jks");

    let cli = Cli::with_ca();
    let import = cli.run(&["import", "--pfx", s(&jks), "--password", "pass:x"]);
    assert_exit(&import, 4);
    assert!(
        json_err(&import)["Error"]["Message"]
            .as_str()
            .unwrap()
            .contains("a JKS keystore, not a PKCS#12 file"),
        "{}",
        text(&import)
    );
}

#[test]
fn build_given_a_pfx_or_keystore_names_its_format_and_points_to_convert() {
    let dir = tempfile::tempdir().unwrap();
    let p12 = dir.path().join("web.p12");
    build_p12(&p12);
    let out = dir.path().join("out.p12");
    let key = data("pki/keys/leaf-rsa.pem");
    let cert = data("pki/certs/leaf-rsa.pem");
    let jks = data("jks/chain.jks");
    for (key, cert, wrong) in [(&key, &p12, &p12), (&jks, &cert, &jks)] {
        let output = pfxkit(&[
            "build",
            "--key",
            s(key),
            "--cert",
            s(cert),
            "--out",
            s(&out),
            "--password",
            "pass:x",
        ]);
        // Before: "malformed PKCS#8 private key at byte 7: …", naming neither file nor format.
        assert_exit(&output, 4);
        let message = stderr(&output);
        assert!(
            message.contains(&format!("{}: a ", wrong.display()))
                && message.contains("use pfxkit convert"),
            "{message}"
        );
    }
    assert!(!out.exists(), "nothing written");
}

#[test]
fn convert_names_the_key_password_when_a_keystore_key_does_not_decrypt() {
    let dir = tempfile::tempdir().unwrap();
    // keytool's rsa-keypass.jks: store password "store-pass", key password "key-pass-2".
    let jks = data("jks/rsa-keypass.jks");
    let convert = |extra: &[&str]| {
        let out = dir.path().join("out.p12");
        let mut args = vec![
            "convert",
            s(&jks),
            "--password",
            "pass:store-pass",
            "--to",
            "pkcs12",
            "--out",
            s(&out),
            "--out-password",
            "pass:x",
        ];
        args.extend_from_slice(extra);
        let output = pfxkit(&args);
        assert_exit(&output, 3);
        assert!(!out.exists());
        stderr(&output)
    };
    // Before: "the password of rsa-keypass.jks (key entry 'server')", though --password was right.
    let wrong = convert(&["--key-password", "pass:guess"]);
    assert!(
        wrong.contains(&format!("the key password of {} (key entry", jks.display())),
        "{wrong}"
    );
    let omitted = convert(&[]);
    assert!(
        omitted.contains("none given, so the store password was tried: give --key-password"),
        "{omitted}"
    );
}

// Item 5: a refusal names the option that gets past it.

#[test]
fn refusals_name_the_option_that_gets_past_them() {
    let dir = tempfile::tempdir().unwrap();
    let p12 = dir.path().join("new.p12");
    build_p12(&p12);
    let add = |store_type: &str, path: &Path, extra: &[&str]| {
        let mut args = vec![
            "store",
            "add",
            "--type",
            store_type,
            "--path",
            s(path),
            "--alias",
            "web",
            "--pfx",
            s(&p12),
            "--pfx-password",
            P12_PASSWORD,
        ];
        args.extend_from_slice(extra);
        pfxkit(&args)
    };
    let store = dir.path().join("web.p12");
    let missing = add("pkcs12", &store, &["--store-password", "pass:sp"]);
    assert_fails_saying(&missing, 1, "does not exist (use --create to create it)");
    assert_exit(
        &add(
            "pkcs12",
            &store,
            &["--store-password", "pass:sp", "--create"],
        ),
        0,
    );
    let exists = add("pkcs12", &store, &["--store-password", "pass:sp"]);
    assert_exit(&exists, 1);
    assert!(
        stderr(&exists).contains("alias 'web' already exists")
            && stderr(&exists).contains("(use --overwrite to replace it)"),
        "{}",
        text(&exists)
    );

    // A PEM store holds one entry: adding another alias names both.
    let pem = dir.path().join("web.pem");
    assert_exit(
        &add("pem", &pem, &["--entry-password", "pass:kp", "--create"]),
        0,
    );
    let mut args = vec![
        "store",
        "add",
        "--type",
        "pem",
        "--path",
        s(&pem),
        "--alias",
        "other",
        "--pfx",
        s(&p12),
        "--pfx-password",
        P12_PASSWORD,
        "--entry-password",
        "pass:kp",
    ];
    let other = pfxkit(&args);
    assert_exit(&other, 1);
    assert!(
        stderr(&other).contains("'other' cannot be added") && stderr(&other).contains("'web'"),
        "{}",
        text(&other)
    );
    args.push("--overwrite");
    assert_exit(&pfxkit(&args), 1);
}

#[test]
fn a_store_command_missing_or_misplacing_an_option_names_it_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let jks = dir.path().join("web.jks");
    let pem = dir.path().join("web.pem");
    let run = |args: &[&str]| {
        let output = pfxkit(args);
        assert_exit(&output, 2);
        stderr(&output)
    };
    // Before: "a jks store needs a store password", exit 1, naming no option.
    let no_password = run(&["store", "inventory", "--type", "jks", "--path", s(&jks)]);
    assert!(
        no_password.contains("--store-password is required for a jks store"),
        "{no_password}"
    );
    let key_path = run(&[
        "store",
        "inventory",
        "--type",
        "pkcs12",
        "--path",
        s(&jks),
        "--store-password",
        "pass:x",
        "--key-path",
        s(&pem),
    ]);
    assert!(
        key_path.contains("--key-path applies to pem stores only"),
        "{key_path}"
    );
    // Before: "unsupported a store password for a pem store", exit 6.
    let pem_passwd = run(&[
        "store",
        "passwd",
        "--type",
        "pem",
        "--path",
        s(&pem),
        "--new-password",
        "pass:x",
    ]);
    assert!(
        pem_passwd.contains("a pem store has no store password"),
        "{pem_passwd}"
    );
    assert!(!jks.exists() && !pem.exists(), "nothing written");
}

// Item 6: jobs run says when nothing is due, who holds leased jobs, and reports progress
// without a terminal.

#[test]
fn jobs_run_says_why_nothing_ran_and_reports_progress_without_a_terminal() {
    let cli = Cli::with_ca();
    let nothing = cli
        .command(&["jobs", "run"])
        .env_remove("X")
        .output()
        .unwrap();
    assert_exit(&nothing, 0);
    assert_eq!(json_out(&nothing), serde_json::json!([]));
    assert!(
        stderr(&nothing).contains("no jobs due"),
        "{}",
        text(&nothing)
    );

    let info = cli.enroll("CN=jobs.example.com", &["--password", "pass:t"]);
    let id = info["KeyfactorId"].as_i64().unwrap().to_string();
    let mut stores = Vec::new();
    for i in 0..10 {
        let path = cli.dir().join(format!("s{i}.p12"));
        let added = cli.ok(&[
            "stores",
            "add",
            "--type",
            "pkcs12",
            "--path",
            s(&path),
            "--store-password",
            "pass:sp",
        ]);
        stores.push(added["Id"].as_str().unwrap().to_string());
    }
    let mut deploy = vec![
        "deploy",
        "--certificate-id",
        &id,
        "--alias",
        "web",
        "--store",
    ];
    deploy.extend(stores.iter().map(String::as_str));
    cli.ok(&deploy);
    let ran = cli.run(&["jobs", "run"]);
    assert_exit(&ran, 0);
    assert_eq!(json_out(&ran).as_array().unwrap().len(), 10);
    assert!(
        stderr(&ran).contains("ran 10 of 10 jobs"),
        "a progress line on stderr: {}",
        text(&ran)
    );

    // A job another runner holds a live lease on is counted, with the lease's end.
    cli.ok(&[
        "deploy",
        "--certificate-id",
        &id,
        "--alias",
        "again",
        "--store",
        &stores[0],
    ]);
    let db = rusqlite::Connection::open(cli.database()).unwrap();
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    db.execute(
        "UPDATE jobs SET status = 'InProcess', claimed_ms = ?1 WHERE status = 'Waiting'",
        [now_ms],
    )
    .unwrap();
    let text_run = Command::new(env!("CARGO_BIN_EXE_pfxkit"))
        .args(["jobs", "run", "--catalog", s(&cli.catalog())])
        .output()
        .unwrap();
    assert_exit(&text_run, 0);
    let said = stdout(&text_run);
    assert!(
        said.contains("no jobs due; 1 job is leased by another runner until 20"),
        "{}",
        text(&text_run)
    );
}

// Item 7: options only where they are used; values listed; keytool/OpenSSL spellings.

#[test]
fn help_shows_catalog_options_only_where_used_and_lists_key_types() {
    let inspect = stdout(&pfxkit(&["inspect", "--help"]));
    assert!(
        !inspect.contains("--catalog") && !inspect.contains("--principal"),
        "{inspect}"
    );
    let build = stdout(&pfxkit(&["build", "--help"]));
    assert!(!build.contains("--catalog"), "{build}");
    let enroll = stdout(&pfxkit(&["enroll", "--help"]));
    assert!(enroll.contains("--catalog"), "{enroll}");
    assert!(
        enroll.contains("rsa-2048, rsa-3072, rsa-4096, ec-p256, ec-p384 or ed25519"),
        "{enroll}"
    );
    let deploy = stdout(&pfxkit(&["deploy", "--help"]));
    assert!(deploy.contains("--principal"), "{deploy}");
}

#[test]
fn keytool_and_openssl_spellings_are_accepted_and_a_bad_to_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let p12 = dir.path().join("web.p12");
    build_p12(&p12);
    let inventory = pfxkit(&[
        "store",
        "inventory",
        "--type",
        "PKCS12",
        "--path",
        s(&p12),
        "--store-password",
        P12_PASSWORD,
    ]);
    assert_exit(&inventory, 0);
    let out = dir.path().join("copy.p12");
    let converted = pfxkit(&[
        "convert",
        s(&p12),
        "--password",
        P12_PASSWORD,
        "--to",
        "p12",
        "--out",
        s(&out),
        "--out-password",
        P12_PASSWORD,
    ]);
    assert_exit(&converted, 0);
    let bad = pfxkit(&[
        "convert",
        s(&p12),
        "--password",
        P12_PASSWORD,
        "--to",
        "der",
        "--out",
        s(&dir.path().join("x")),
    ]);
    assert_fails_saying(&bad, 2, "expected pkcs12, jks, jceks or pem");
}

#[test]
fn stores_add_takes_the_same_type_spellings_as_store_commands() {
    let cli = Cli::new();
    // Before: `stores add --type PKCS12` was a usage error while `store add --type PKCS12` worked.
    for (spelling, name) in [
        ("PKCS12", "pkcs12"),
        ("p12", "pkcs12"),
        ("JKS", "jks"),
        ("PEM", "pem"),
    ] {
        let path = cli.path_text(&format!("{spelling}.store"));
        let mut args = vec!["stores", "add", "--type", spelling, "--path", &path];
        if name != "pem" {
            args.extend(["--store-password", "pass:sp"]);
        }
        assert_eq!(cli.ok(&args)["StoreType"], name, "{spelling}");
    }
    let bad = cli.run(&["stores", "add", "--type", "pfx12", "--path", "x"]);
    assert_exit(&bad, 2);
    assert!(
        json_err(&bad)["Error"]["Message"]
            .as_str()
            .unwrap()
            .contains("expected pem, pkcs12 or jks"),
        "{}",
        text(&bad)
    );
}

// Item 8: inspect shows protection, thumbprints, SANs, validity markers and key usage.

#[test]
fn inspect_shows_protection_thumbprints_sans_validity_and_key_usage() {
    let dir = tempfile::tempdir().unwrap();
    let p12 = dir.path().join("web.p12");
    build_p12(&p12);
    let shown = pfxkit(&["inspect", s(&p12), "--password", P12_PASSWORD]);
    assert_exit(&shown, 0);
    let said = stdout(&shown);
    for expected in [
        "protection pbes2 aes-256-cbc pbkdf2-sha256",
        "sha1 ",
        "sha256 ",
        "sans dns:www.example.com, dns:example.com",
        "key usage digitalSignature, keyEncipherment",
        "expires in ",
    ] {
        assert!(said.contains(expected), "missing {expected:?} in {said}");
    }
    let json = json_out(&pfxkit(&[
        "inspect",
        s(&p12),
        "--password",
        P12_PASSWORD,
        "--json",
    ]));
    let leaf = &json["certificates"][0];
    assert_eq!(
        leaf["sans"],
        serde_json::json!(["dns:www.example.com", "dns:example.com"])
    );
    assert_eq!(leaf["expired"], false);
    assert!(leaf["encryption"].as_str().unwrap().starts_with("pbes2-"));
    assert!(
        json["keys"][0]["encryption"]
            .as_str()
            .unwrap()
            .contains("aes-256-cbc")
    );

    // An expired certificate is marked EXPIRED.
    let expired = dir.path().join("expired.pem");
    let made = Command::new("python3")
        .arg("-c")
        .arg(format!(
            "import datetime\n\
             from cryptography import x509\n\
             from cryptography.x509.oid import NameOID\n\
             from cryptography.hazmat.primitives import hashes, serialization\n\
             from cryptography.hazmat.primitives.asymmetric import ec\n\
             k = ec.generate_private_key(ec.SECP256R1())\n\
             n = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, 'expired.example.com')])\n\
             t = datetime.datetime(2020, 1, 1)\n\
             c = (x509.CertificateBuilder().subject_name(n).issuer_name(n)\n\
                  .public_key(k.public_key()).serial_number(7).not_valid_before(t)\n\
                  .not_valid_after(t + datetime.timedelta(days=30)).sign(k, hashes.SHA256()))\n\
             open({:?}, 'wb').write(c.public_bytes(serialization.Encoding.PEM))\n",
            s(&expired)
        ))
        .output()
        .expect("python3 with cryptography is needed");
    assert!(made.status.success(), "{}", text(&made));
    let shown = pfxkit(&["inspect", s(&expired)]);
    assert_exit(&shown, 0);
    assert!(stdout(&shown).contains("[EXPIRED "), "{}", text(&shown));
    let json = json_out(&pfxkit(&["inspect", s(&expired), "--json"]));
    assert_eq!(json["certificates"][0]["expired"], true);
}

// Item 9: OpenSSL's selection options, --split, aliases kept and --name.

#[test]
fn selection_options_pick_keys_and_certificates_as_openssl_does() {
    let dir = tempfile::tempdir().unwrap();
    let p12 = dir.path().join("web.p12");
    build_p12(&p12);
    let count = |extra: &[&str]| {
        let mut args = vec!["inspect", s(&p12), "--password", P12_PASSWORD, "--json"];
        args.extend_from_slice(extra);
        let json = json_out(&pfxkit(&args));
        (
            json["keys"].as_array().unwrap().len(),
            json["certificates"].as_array().unwrap().len(),
        )
    };
    assert_eq!(count(&[]), (1, 3));
    assert_eq!(count(&["--no-keys"]), (0, 3));
    assert_eq!(count(&["--no-certs"]), (1, 0));
    assert_eq!(count(&["--leaf-only"]), (1, 1));
    assert_eq!(count(&["--ca-only", "--no-keys"]), (0, 2));

    let pem = dir.path().join("ca.pem");
    let converted = pfxkit(&[
        "convert",
        s(&p12),
        "--password",
        P12_PASSWORD,
        "--to",
        "pem",
        "--out",
        s(&pem),
        "--ca-only",
        "--no-keys",
    ]);
    assert_exit(&converted, 0);
    let written = std::fs::read_to_string(&pem).unwrap();
    assert_eq!(written.matches("BEGIN CERTIFICATE").count(), 2);
    assert!(!written.contains("PRIVATE KEY"));
}

#[test]
fn split_writes_cert_chain_and_key_files_and_convert_keeps_or_renames_aliases() {
    let dir = tempfile::tempdir().unwrap();
    let p12 = dir.path().join("web.p12");
    build_p12(&p12);
    let split = dir.path().join("tls");
    std::fs::create_dir(&split).unwrap();
    let output = pfxkit(&[
        "convert",
        s(&p12),
        "--password",
        P12_PASSWORD,
        "--to",
        "pem",
        "--split",
        s(&split),
        "--out-key-password",
        "pass:kp",
    ]);
    assert_exit(&output, 0);
    let read = |name: &str| std::fs::read_to_string(split.join(name)).unwrap();
    assert_eq!(read("cert.pem").matches("BEGIN CERTIFICATE").count(), 1);
    assert_eq!(read("chain.pem").matches("BEGIN CERTIFICATE").count(), 2);
    assert!(read("key.pem").contains("BEGIN ENCRYPTED PRIVATE KEY"));
    assert_eq!(stdout(&output).lines().count(), 3, "{}", text(&output));

    let alias_of = |file: &Path| {
        let json = json_out(&pfxkit(&[
            "inspect",
            s(file),
            "--password",
            "pass:sp",
            "--json",
        ]));
        json["keys"][0]["alias"].as_str().unwrap().to_string()
    };
    let kept = dir.path().join("kept.jks");
    let renamed = dir.path().join("renamed.jks");
    for (out, extra) in [(&kept, None), (&renamed, Some("tomcat"))] {
        let mut args = vec![
            "convert",
            s(&p12),
            "--password",
            P12_PASSWORD,
            "--to",
            "JKS",
            "--out",
            s(out),
            "--out-password",
            "pass:sp",
        ];
        if let Some(name) = extra {
            args.extend(["--name", name]);
        }
        assert_exit(&pfxkit(&args), 0);
    }
    assert_eq!(alias_of(&kept), "web");
    assert_eq!(alias_of(&renamed), "tomcat");
}

// Item 10 (in part): inventory of one alias.

#[test]
fn store_inventory_of_one_alias_lists_only_it_and_fails_when_absent() {
    let dir = tempfile::tempdir().unwrap();
    let p12 = dir.path().join("web.p12");
    build_p12(&p12);
    let inventory = |alias: &str| {
        pfxkit(&[
            "store",
            "inventory",
            "--type",
            "pkcs12",
            "--path",
            s(&p12),
            "--store-password",
            P12_PASSWORD,
            "--alias",
            alias,
            "--json",
        ])
    };
    let found = inventory("web");
    assert_exit(&found, 0);
    assert_eq!(json_out(&found)["entries"].as_array().unwrap().len(), 1);
    let absent = inventory("nope");
    assert_exit(&absent, 1);
    assert_eq!(json_err(&absent)["Error"]["Kind"], "Invalid");
}

// Item 11: a plain PEM key only when asked for by name.

#[test]
fn a_pem_store_writes_a_plain_key_only_with_plain_key() {
    let dir = tempfile::tempdir().unwrap();
    let p12 = dir.path().join("web.p12");
    build_p12(&p12);
    let pem = dir.path().join("web.pem");
    let add = |extra: &[&str]| {
        let mut args = vec![
            "store",
            "add",
            "--type",
            "pem",
            "--path",
            s(&pem),
            "--alias",
            "web",
            "--pfx",
            s(&p12),
            "--pfx-password",
            P12_PASSWORD,
            "--create",
        ];
        args.extend_from_slice(extra);
        pfxkit(&args)
    };
    // Neither option: a usage error that names both, and nothing written.
    let omitted = add(&[]);
    assert_exit(&omitted, 2);
    let said = stderr(&omitted);
    assert!(
        said.contains("--entry-password") && said.contains("--plain-key"),
        "{said}"
    );
    assert!(!pem.exists(), "nothing written by omission");
    let asked = add(&["--plain-key"]);
    assert_exit(&asked, 0);
    assert!(
        stdout(&asked).contains("key unencrypted"),
        "{}",
        text(&asked)
    );
    let written = std::fs::read_to_string(&pem).unwrap();
    assert!(written.contains("-----BEGIN PRIVATE KEY-----"), "{written}");
}

// Item 12: an encrypting profile needs an output password; `pass:` is the explicit empty one.

#[test]
fn build_and_convert_require_an_output_password_unless_profile_none() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.p12");
    let (key, cert) = (
        data("pki/keys/leaf-rsa.pem"),
        data("pki/certs/leaf-rsa.pem"),
    );
    let build = |extra: &[&str]| {
        let mut args = vec![
            "build",
            "--key",
            s(&key),
            "--cert",
            s(&cert),
            "--out",
            s(&out),
        ];
        args.extend_from_slice(extra);
        pfxkit(&args)
    };
    let refused = build(&[]);
    assert_fails_saying(&refused, 2, "--password is required");
    assert!(!out.exists());
    assert_exit(&build(&["--password", "pass:"]), 0);
    let empty = pfxkit(&["inspect", s(&out), "--password", "pass:", "--json"]);
    assert_exit(&empty, 0);
    std::fs::remove_file(&out).unwrap();
    assert_exit(&build(&["--profile", "none"]), 0);

    let converted = pfxkit(&[
        "convert",
        s(&out),
        "--to",
        "pkcs12",
        "--out",
        s(&dir.path().join("c.p12")),
    ]);
    assert_exit(&converted, 2);
    assert!(stderr(&converted).contains("--out-password is required"));
}

// Item 13: Keyfactor's listings and look-ups, and a CA that is not replaced by accident.

#[test]
fn certificates_containers_stores_and_ca_can_be_listed_shown_and_removed() {
    let cli = Cli::with_ca();
    cli.enroll(
        "CN=www.example.com",
        &["--password", "pass:t", "--days", "10"],
    );
    cli.enroll(
        "CN=api.example.com",
        &["--password", "pass:t", "--days", "90"],
    );
    let all = cli.ok(&["certificates", "list"]);
    assert_eq!(
        all.as_array().unwrap().len(),
        3,
        "the CA and two leaves: {all}"
    );
    let www = cli.ok(&["certificates", "list", "--subject", "WWW.example"]);
    assert_eq!(www.as_array().unwrap().len(), 1);
    assert_eq!(www[0]["IssuedDN"], "CN=www.example.com");
    let soon = cli.ok(&["certificates", "list", "--expiring-within", "30d"]);
    assert_eq!(soon.as_array().unwrap().len(), 1);
    assert_eq!(soon[0]["IssuedDN"], "CN=www.example.com");
    assert_exit(
        &cli.run(&["certificates", "list", "--expiring-within", "30x"]),
        2,
    );

    cli.ok(&["containers", "add", "web"]);
    let containers = cli.ok(&["containers", "list"]);
    assert_eq!(containers[0]["Name"], "web");

    let path = cli.dir().join("s.p12");
    let added = cli.ok(&[
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
    ]);
    let id = added["Id"].as_str().unwrap();
    let shown = cli.ok(&["stores", "show", id]);
    assert_eq!(shown["StorePath"], s(&path));
    let removed = cli.ok(&["stores", "remove", id]);
    assert_eq!(removed["Id"], id);
    assert_eq!(cli.ok(&["stores", "list"]), serde_json::json!([]));
    let gone = cli.run(&["stores", "show", id]);
    assert_exit(&gone, 1);
    assert_eq!(json_err(&gone)["Error"]["Kind"], "NotFound");

    let ca = cli.ok(&["ca", "show"]);
    assert_eq!(ca["SubjectDN"], "CN=pfxkit Test Root,O=pfxkit");
    let again = cli.run(&["ca", "init", "--subject", "CN=Second Root"]);
    assert_exit(&again, 1);
    assert!(
        json_err(&again)["Error"]["Message"]
            .as_str()
            .unwrap()
            .contains("--replace-ca"),
        "{}",
        text(&again)
    );
    assert_eq!(cli.ok(&["ca", "show"])["Thumbprint"], ca["Thumbprint"]);
    let replaced = cli.ok(&["ca", "init", "--subject", "CN=Second Root", "--replace-ca"]);
    assert_eq!(replaced["Replaced"][0]["Thumbprint"], ca["Thumbprint"]);
    assert_eq!(cli.ok(&["ca", "show"])["SubjectDN"], "CN=Second Root");
    let issued = cli.enroll("CN=after.example.com", &["--password", "pass:t"]);
    assert_eq!(issued["IssuerDN"], "CN=Second Root");
}

/// A catalog where certificate `old` was deployed to a PKCS#12 store and located there by
/// inventory, and `new` is enrolled to replace it. Returns (cli, old id, new id, store id).
fn replace_scenario() -> (Cli, String, String, String) {
    let cli = Cli::with_ca();
    let old = cli.enroll("CN=svc.example.com", &["--password", "pass:t"]);
    let old = old["KeyfactorId"].as_i64().unwrap().to_string();
    let path = cli.dir().join("svc.p12");
    let store = cli.ok(&[
        "stores",
        "add",
        "--type",
        "pkcs12",
        "--path",
        s(&path),
        "--store-password",
        "pass:sp",
    ])["Id"]
        .as_str()
        .unwrap()
        .to_string();
    cli.ok(&[
        "deploy",
        "--certificate-id",
        &old,
        "--alias",
        "svc",
        "--store",
        &store,
    ]);
    cli.ok(&["jobs", "run"]);
    let new = cli.enroll("CN=svc.example.com", &["--password", "pass:t"]);
    let new = new["KeyfactorId"].as_i64().unwrap().to_string();
    (cli, old, new, store)
}

// Item 14: Replace sent twice queues one job per store.

#[test]
fn replace_sent_twice_does_not_queue_a_second_job_for_a_store() {
    let (cli, old, new, store) = replace_scenario();
    let replace = [
        "replace",
        "--existing-certificate-id",
        &old,
        "--certificate-id",
        &new,
    ];
    let first = cli.ok(&replace);
    assert_eq!(first["SuccessfulStores"], serde_json::json!([store]));
    let second = cli.ok(&replace);
    assert_eq!(second["SuccessfulStores"], serde_json::json!([store]));
    assert!(
        second["Actions"][&store]
            .as_str()
            .unwrap()
            .contains("already waiting"),
        "{second}"
    );
    assert_eq!(cli.jobs_in("Waiting").len(), 1);
}

// Item 15: a dry run lists what would happen per store and creates nothing.

#[test]
fn replace_dry_run_lists_each_target_and_creates_nothing() {
    let (cli, old, new, store) = replace_scenario();
    let jobs_before = cli.ok(&["jobs", "list"]);
    let planned = cli.ok(&[
        "replace",
        "--existing-certificate-id",
        &old,
        "--certificate-id",
        &new,
        "--dry-run",
    ]);
    assert_eq!(planned["DryRun"], true);
    assert_eq!(planned["SuccessfulStores"], serde_json::json!([store]));
    assert!(
        planned["Actions"][&store]
            .as_str()
            .unwrap()
            .starts_with(&format!(
                "would queue a job to put certificate {new} under alias 'svc'"
            )),
        "{planned}"
    );
    assert_eq!(cli.ok(&["jobs", "list"]), jobs_before);

    // A principal that may not use the new certificate's key is refused outright, dry run or
    // not (the permission rule: Replace hands the new key out, so it needs ownership or the
    // global recover permission) — nothing is listed, nothing is created.
    let refused = cli.exits(
        1,
        &[
            "replace",
            "--existing-certificate-id",
            &old,
            "--certificate-id",
            &new,
            "--dry-run",
            "--principal",
            "nobody",
        ],
    );
    assert!(text(&refused).contains("Forbidden"), "{}", text(&refused));
    assert_eq!(cli.ok(&["jobs", "list"]), jobs_before);

    // A store that would fail is listed with its reason: a principal that may use the key but
    // may not schedule jobs on the store.
    cli.ok(&[
        "grant",
        "--principal",
        "nobody",
        "--global",
        "--permission",
        "recover",
    ]);
    // Every target failing is a failure (exit 1), the answer still printed in full.
    let denied = cli.exits(
        1,
        &[
            "replace",
            "--existing-certificate-id",
            &old,
            "--certificate-id",
            &new,
            "--dry-run",
            "--principal",
            "nobody",
        ],
    );
    let denied: Value = serde_json::from_slice(&denied.stdout).unwrap();
    assert_eq!(denied["DryRun"], true);
    assert_eq!(denied["FailedStores"], serde_json::json!([store]));
    assert!(
        denied["Failures"][&store].as_str().unwrap().len() > 3,
        "{denied}"
    );
    let text_run = cli
        .command(&[
            "replace",
            "--existing-certificate-id",
            &old,
            "--certificate-id",
            &new,
            "--dry-run",
        ])
        .output()
        .unwrap();
    assert_exit(&text_run, 0);
    assert_eq!(cli.ok(&["jobs", "list"]), jobs_before);
}

// The contract lives in the repository: nothing tracked points outside it.

#[test]
fn the_repository_points_nowhere_outside_itself() {
    let root = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));
    let contract = std::fs::read_to_string(root.join("docs/cli.md")).unwrap();
    for command in [
        "certificates list",
        "containers list",
        "stores show",
        "stores remove",
        "ca show",
        "--replace-ca",
        "--dry-run",
        "\"Error\"",
        "--split",
        "--plain-key",
    ] {
        assert!(contract.contains(command), "docs/cli.md lacks {command}");
    }
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    assert!(readme.contains("](docs/cli.md)"));
    let check = Command::new(root.join(".ci/check-self-contained"))
        .current_dir(&root)
        .output()
        .unwrap();
    assert!(check.status.success(), "{}", text(&check));
}

// Item 10: keytool's everyday store tasks.

#[test]
fn store_add_cert_imports_a_trusted_certificate_into_jks_pkcs12_and_pem_trust_stores() {
    let dir = tempfile::tempdir().unwrap();
    let root = data("pki/certs/root.pem");
    let intermediate = data("pki/certs/intermediate.pem");
    for (store_type, file, password) in [
        ("jks", "trust.jks", Some("pass:sp")),
        ("pkcs12", "trust.p12", Some("pass:sp")),
        ("pem", "trust.pem", None),
    ] {
        let path = dir.path().join(file);
        let mut args = vec!["store", "add", "--type", store_type, "--path", s(&path)];
        if let Some(p) = password {
            args.extend(["--store-password", p]);
        }
        let inventory = {
            let mut inv = vec![
                "store",
                "inventory",
                "--type",
                store_type,
                "--path",
                s(&path),
            ];
            if let Some(p) = password {
                inv.extend(["--store-password", p]);
            }
            if store_type == "pem" {
                inv.push("--trust-only");
            }
            inv.push("--json");
            inv
        };
        args.extend(["--alias", "root", "--cert", s(&root), "--create"]);
        let added = pfxkit(&args);
        assert_exit(&added, 0);
        assert!(
            stdout(&added).starts_with("added 'root'"),
            "{}",
            text(&added)
        );
        let mut second = args.clone();
        let n = second.len();
        second[n - 2] = s(&intermediate);
        second[n - 4] = "int";
        assert_exit(&pfxkit(&second), 0);
        let listed = json_out(&pfxkit(&inventory));
        let entries = listed["entries"].as_array().unwrap();
        assert_eq!(entries.len(), 2, "{store_type}: {listed}");
        assert!(
            entries
                .iter()
                .all(|e| e["has_private_key"] == false && e["chain"].as_array().unwrap().len() == 1),
            "{store_type}: {listed}"
        );
    }
    // A PEM trust store renames an entry in place.
    let pem = dir.path().join("trust.pem");
    let renamed = pfxkit(&[
        "store",
        "rename",
        "--type",
        "pem",
        "--trust-only",
        "--path",
        s(&pem),
        "--alias",
        "int",
        "--to",
        "issuing",
    ]);
    assert_exit(&renamed, 0);
    let text_pem = std::fs::read_to_string(&pem).unwrap();
    assert!(
        text_pem.contains("issuing") && !text_pem.contains(": int"),
        "{text_pem}"
    );
    // keytool sees a trustedCertEntry.
    let listed = catalog_cli::tool(
        "keytool",
        &[
            "-list",
            "-keystore",
            s(&dir.path().join("trust.jks")),
            "-storepass",
            "sp",
        ],
    );
    assert!(
        listed.contains("root, ") && listed.contains("trustedCertEntry"),
        "{listed}"
    );
}

#[test]
fn store_add_cert_given_a_keystore_names_its_format_and_the_option_for_key_entries() {
    let dir = tempfile::tempdir().unwrap();
    let p12 = dir.path().join("web.p12");
    build_p12(&p12);
    let store = dir.path().join("trust.jks");
    let add = |cert: &Path| {
        pfxkit(&[
            "store",
            "add",
            "--type",
            "jks",
            "--path",
            s(&store),
            "--store-password",
            "pass:sp",
            "--alias",
            "root",
            "--cert",
            s(cert),
            "--create",
        ])
    };
    // Before: "malformed PKCS#8 private key at byte 7: …", naming neither file nor option.
    let pfx = add(&p12);
    assert_exit(&pfx, 4);
    assert!(
        stderr(&pfx).contains(&format!("{}: a PKCS#12 file", p12.display()))
            && stderr(&pfx).contains("a key entry goes in with --pfx FILE --pfx-password SRC"),
        "{}",
        text(&pfx)
    );
    let keystore = add(&data("jks/chain.jks"));
    assert_exit(&keystore, 4);
    assert!(
        stderr(&keystore).contains("a JKS keystore")
            && stderr(&keystore).contains("--cert takes one certificate (PEM or DER)"),
        "{}",
        text(&keystore)
    );
    assert!(!store.exists(), "nothing written");
    // A DER certificate is a certificate, not a PKCS#12 file.
    let der = dir.path().join("root.der");
    catalog_cli::openssl(&[
        "x509",
        "-in",
        s(&data("pki/certs/root.pem")),
        "-outform",
        "DER",
        "-out",
        s(&der),
    ]);
    assert_exit(&add(&der), 0);
}

#[test]
fn store_rename_and_passwd_change_alias_and_store_password_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let p12 = dir.path().join("web.p12");
    build_p12(&p12);
    let jks = dir.path().join("web.jks");
    assert_exit(
        &pfxkit(&[
            "convert",
            s(&p12),
            "--password",
            P12_PASSWORD,
            "--to",
            "jks",
            "--out",
            s(&jks),
            "--out-password",
            "pass:old",
            "--out-key-password",
            "pass:keypw",
        ]),
        0,
    );
    let renamed = pfxkit(&[
        "store",
        "rename",
        "--type",
        "jks",
        "--path",
        s(&jks),
        "--store-password",
        "pass:old",
        "--alias",
        "web",
        "--to",
        "tomcat",
    ]);
    assert_exit(&renamed, 0);
    assert_eq!(
        stdout(&renamed).trim(),
        format!("renamed 'web' to 'tomcat' in {}", jks.display())
    );
    let missing = pfxkit(&[
        "store",
        "rename",
        "--type",
        "jks",
        "--path",
        s(&jks),
        "--store-password",
        "pass:old",
        "--alias",
        "web",
        "--to",
        "x",
    ]);
    assert_exit(&missing, 1);

    let changed = pfxkit(&[
        "store",
        "passwd",
        "--type",
        "jks",
        "--path",
        s(&jks),
        "--store-password",
        "pass:old",
        "--new-password",
        "pass:new",
    ]);
    assert_exit(&changed, 0);
    let old = pfxkit(&["inspect", s(&jks), "--password", "pass:old"]);
    assert_exit(&old, 3);
    let new = json_out(&pfxkit(&[
        "inspect",
        s(&jks),
        "--password",
        "pass:new",
        "--key-password",
        "pass:keypw",
        "--json",
    ]));
    assert_eq!(new["keys"][0]["alias"], "tomcat");
    assert_eq!(
        new["keys"][0]["algorithm"], "rsa",
        "the key keeps its key password"
    );

    // PKCS#12 stores too, keytool reading the result.
    let changed = pfxkit(&[
        "store",
        "passwd",
        "--type",
        "pkcs12",
        "--path",
        s(&p12),
        "--store-password",
        P12_PASSWORD,
        "--new-password",
        "pass:fresh",
    ]);
    assert_exit(&changed, 0);
    let listed = catalog_cli::tool(
        "keytool",
        &[
            "-list",
            "-keystore",
            s(&p12),
            "-storetype",
            "PKCS12",
            "-storepass",
            "fresh",
        ],
    );
    assert!(
        listed.contains("web, ") && listed.contains("PrivateKeyEntry"),
        "{listed}"
    );
}

/// `keytool -importkeystore` of one key entry of `jks` with `key_password`: whether keytool
/// could recover the key (it must decrypt it to copy it into a PKCS#12 file).
fn keytool_recovers_key(jks: &Path, alias: &str, key_password: &str) -> bool {
    let dest = jks.with_extension(format!("{alias}-{key_password}.p12"));
    let output = Command::new("keytool")
        .args(["-importkeystore", "-noprompt", "-srckeystore"])
        .arg(jks)
        .args(["-srcstorepass", "store-pass", "-srcalias", alias])
        .args(["-srckeypass", key_password, "-destkeystore"])
        .arg(&dest)
        .args(["-deststoretype", "PKCS12", "-deststorepass", "dest-pass"])
        .output()
        .expect("keytool is needed for these tests");
    let _ = std::fs::remove_file(&dest);
    output.status.success()
}

/// `store passwd` of a key password, as keytool's `-keypasswd` takes it.
fn key_passwd(jks: &Path, alias: &str, old: &str, new: &str, json: bool) -> Output {
    let mut args = vec![
        "store",
        "passwd",
        "--type",
        "jks",
        "--path",
        s(jks),
        "--store-password",
        "pass:store-pass",
        "--alias",
        alias,
        "--key-password",
        old,
        "--new-key-password",
        new,
    ];
    if json {
        args.push("--json");
    }
    pfxkit(&args)
}

/// The algorithm `inspect` reports for each key entry of `jks` opened with `key_password`
/// (`null` for a key that password does not open).
fn key_algorithms(jks: &Path, key_password: &str) -> Value {
    let output = pfxkit(&[
        "inspect",
        s(jks),
        "--password",
        "pass:store-pass",
        "--key-password",
        key_password,
        "--json",
    ]);
    assert_exit(&output, 0);
    let keys = json_out(&output)["keys"].as_array().unwrap().clone();
    keys.iter()
        .map(|k| {
            (
                k["alias"].as_str().unwrap().to_string(),
                k["algorithm"].clone(),
            )
        })
        .collect::<serde_json::Map<_, _>>()
        .into()
}

#[test]
fn store_passwd_changes_the_key_password_of_one_jks_entry_as_keytool_keypasswd() {
    let dir = tempfile::tempdir().unwrap();
    // A keystore keytool made: entry "server" under key password "key-pass-2".
    let jks = dir.path().join("server.jks");
    std::fs::copy(data("jks/rsa-keypass.jks"), &jks).unwrap();
    let p12 = dir.path().join("web.p12");
    build_p12(&p12);
    // Beside it, a second key entry under its own key password and a trusted certificate.
    let base = [
        "store",
        "add",
        "--type",
        "jks",
        "--path",
        s(&jks),
        "--store-password",
        "pass:store-pass",
    ];
    let other = [
        "--alias",
        "other",
        "--pfx",
        s(&p12),
        "--pfx-password",
        P12_PASSWORD,
        "--entry-password",
        "pass:other-key",
    ];
    assert_exit(&pfxkit(&[&base[..], &other[..]].concat()), 0);
    let root = data("pki/certs/root.pem");
    assert_exit(
        &pfxkit(&[&base[..], &["--alias", "root", "--cert", s(&root)][..]].concat()),
        0,
    );
    assert!(keytool_recovers_key(&jks, "server", "key-pass-2"));

    let changed = key_passwd(
        &jks,
        "server",
        "pass:key-pass-2",
        "pass:new-key-pass",
        false,
    );
    assert_exit(&changed, 0);
    assert_eq!(
        stdout(&changed).trim(),
        format!("changed the key password of 'server' in {}", jks.display())
    );
    // keytool recovers the key under the new password only.
    assert!(keytool_recovers_key(&jks, "server", "new-key-pass"));
    assert!(!keytool_recovers_key(&jks, "server", "key-pass-2"));
    // The other entries are as they were: keytool lists all three, and the other key still
    // opens under its own password (and not under the changed one).
    let listed = catalog_cli::tool(
        "keytool",
        &["-list", "-keystore", s(&jks), "-storepass", "store-pass"],
    );
    assert!(listed.contains("3 entries"), "{listed}");
    assert!(
        listed.contains("root, ") && listed.contains("trustedCertEntry"),
        "{listed}"
    );
    assert!(keytool_recovers_key(&jks, "other", "other-key"));
    // pfxkit reads it the same way.
    assert_eq!(
        key_algorithms(&jks, "pass:new-key-pass"),
        serde_json::json!({"server": "rsa", "other": null})
    );
    assert_eq!(
        key_algorithms(&jks, "pass:key-pass-2"),
        serde_json::json!({"server": null, "other": null})
    );
    assert_eq!(
        key_algorithms(&jks, "pass:other-key"),
        serde_json::json!({"server": null, "other": "rsa"})
    );

    // JSON; the alias in any case, as keytool takes it.
    let changed = key_passwd(&jks, "SERVER", "pass:new-key-pass", "pass:third-pass", true);
    assert_exit(&changed, 0);
    assert_eq!(
        json_out(&changed),
        serde_json::json!({
            "action": "key password changed",
            "alias": "server",
            "store": s(&jks),
        })
    );
    assert!(keytool_recovers_key(&jks, "server", "third-pass"));
}

#[test]
fn a_refused_key_password_change_names_what_is_wrong_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let jks = dir.path().join("server.jks");
    std::fs::copy(data("jks/rsa-keypass.jks"), &jks).unwrap();
    let root = data("pki/certs/root.pem");
    assert_exit(
        &pfxkit(&[
            "store",
            "add",
            "--type",
            "jks",
            "--path",
            s(&jks),
            "--store-password",
            "pass:store-pass",
            "--alias",
            "root",
            "--cert",
            s(&root),
        ]),
        0,
    );
    let before = std::fs::read(&jks).unwrap();

    // Threat: someone who has the store password but not the key's re-protects the key
    // under a password of their choosing. The old key password is checked, and named.
    let wrong = key_passwd(&jks, "server", "pass:guess", "pass:mine", true);
    assert_exit(&wrong, 3);
    let error = json_err(&wrong);
    assert_eq!(error["Error"]["Kind"], "WrongPassword");
    let message = error["Error"]["Message"].as_str().unwrap();
    assert!(
        message.contains(&format!(
            "the key password of 'server' in {}",
            jks.display()
        )),
        "{message}"
    );

    // A wrong store password is named as the store's, not the key's.
    let mut args: Vec<String> = [
        "store",
        "passwd",
        "--type",
        "jks",
        "--path",
        s(&jks),
        "--store-password",
        "pass:nope",
        "--alias",
        "server",
        "--key-password",
        "pass:key-pass-2",
        "--new-key-password",
        "pass:mine",
    ]
    .map(String::from)
    .to_vec();
    let store = pfxkit(&args);
    assert_fails_saying(
        &store,
        3,
        &format!("the store password of {}", jks.display()),
    );

    let missing = key_passwd(&jks, "nobody", "pass:key-pass-2", "pass:mine", false);
    assert_fails_saying(&missing, 1, "alias 'nobody' is not in");
    let trusted = key_passwd(&jks, "root", "pass:key-pass-2", "pass:mine", false);
    assert_fails_saying(&trusted, 1, "entry 'root' holds no private key");

    // Usage: a PKCS#12 store has no per-entry key password; --new-key-password needs --alias;
    // store and key password are not changed in one go.
    args[3] = "pkcs12".into();
    args[7] = "pass:store-pass".into();
    let pkcs12 = pfxkit(&args);
    assert_fails_saying(&pkcs12, 2, "jks stores only");
    let no_alias = pfxkit(&[
        "store",
        "passwd",
        "--type",
        "jks",
        "--path",
        s(&jks),
        "--store-password",
        "pass:store-pass",
        "--new-key-password",
        "pass:mine",
    ]);
    assert_exit(&no_alias, 2);
    let both = pfxkit(&[
        "store",
        "passwd",
        "--type",
        "jks",
        "--path",
        s(&jks),
        "--store-password",
        "pass:store-pass",
        "--new-password",
        "pass:a",
        "--alias",
        "server",
        "--new-key-password",
        "pass:mine",
    ]);
    assert_exit(&both, 2);

    assert_eq!(
        std::fs::read(&jks).unwrap(),
        before,
        "a refusal changes nothing"
    );
    assert!(keytool_recovers_key(&jks, "server", "key-pass-2"));
}
