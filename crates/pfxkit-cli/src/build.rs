//! `pfxkit build` and `pfxkit convert`.

use std::path::{Path, PathBuf};

use pfxkit::cert::chain_from;
use pfxkit::contents::{self, Contents};
use pfxkit::jks::{KeystoreKind, WriteEntry};
use pfxkit::pkcs12::{Builder, Profile};
use pfxkit::random::OsRandom;
use pfxkit::{Certificate, Identity, Limits, Password, PasswordSource};
use pfxkit_catalog::Error;

use serde_json::json;

use crate::{CliError, CliResult, password_source, print_json, read_file, resolve};

#[derive(Debug, clap::Args)]
pub struct BuildArgs {
    /// Private key (PEM or DER; PKCS#8, encrypted PKCS#8, PKCS#1 or SEC1).
    #[arg(long)]
    key: PathBuf,
    /// Password of an encrypted key.
    #[arg(long, value_parser = password_source)]
    key_password: Option<PasswordSource>,
    /// The leaf certificate (PEM or DER).
    #[arg(long)]
    cert: PathBuf,
    /// Chain certificates, in any order (stored leaf-first).
    #[arg(long)]
    chain: Option<PathBuf>,
    /// Output file.
    #[arg(long)]
    out: PathBuf,
    /// Archive password (pass:TEXT, env:VAR, file:PATH, stdin). Required unless --profile none;
    /// `pass:` (nothing after the colon) asks for the empty password.
    #[arg(long, value_parser = password_source)]
    password: Option<PasswordSource>,
    /// modern (default), modern-pbmac1, legacy-3des, legacy-rc2, java, or none (insecure: no
    /// encryption and no MAC).
    #[arg(long, default_value = "modern", value_parser = profile)]
    profile: Profile,
    /// KDF iteration count (default: the profile's).
    #[arg(long)]
    iterations: Option<u32>,
    /// Alias (friendlyName) of the key entry.
    #[arg(long)]
    name: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct ConvertArgs {
    /// Input file (PKCS#12, JKS, JCEKS or PEM; detected by content).
    input: PathBuf,
    /// Input password (PKCS#12 or store password).
    #[arg(long, value_parser = password_source)]
    password: Option<PasswordSource>,
    /// Input key password (JKS/JCEKS key entries, encrypted PEM keys, PKCS#12 keys encrypted
    /// under a password other than the MAC's).
    #[arg(long, value_parser = password_source)]
    key_password: Option<PasswordSource>,
    /// Output format: pkcs12 (also p12, pfx, PKCS12), jks, jceks or pem (any case).
    #[arg(long, value_parser = output_format)]
    to: OutputFormat,
    /// Output file (not with --split).
    #[arg(long, required_unless_present = "split", conflicts_with = "split")]
    out: Option<PathBuf>,
    /// With --to pem: write cert.pem (the leaf), chain.pem (the rest) and key.pem into DIR
    /// instead of one file.
    #[arg(long, value_name = "DIR")]
    split: Option<PathBuf>,
    /// Output password (PKCS#12/store password; for pem the key password unless
    /// --out-key-password is given). Required for pkcs12 unless --profile none, and for jks and
    /// jceks; `pass:` asks for the empty password.
    #[arg(long, value_parser = password_source)]
    out_password: Option<PasswordSource>,
    /// Output key password (JKS/JCEKS key entries, PEM keys).
    #[arg(long, value_parser = password_source)]
    out_key_password: Option<PasswordSource>,
    /// PKCS#12 profile of the output.
    #[arg(long, default_value = "modern", value_parser = profile)]
    profile: Profile,
    /// With --to pem: write the key unencrypted (openssl -noenc). Without it a pem key needs
    /// --out-key-password or --out-password.
    #[arg(long)]
    plain_key: bool,
    /// Alias of the key entry in the output (the input must hold one key entry). Other entries
    /// keep their aliases.
    #[arg(long)]
    name: Option<String>,
    #[command(flatten)]
    select: Selection,
}

/// OpenSSL's selection options (`-nokeys`, `-nocerts`, `-clcerts`, `-cacerts`).
#[derive(Debug, Clone, Copy, Default, clap::Args)]
pub struct Selection {
    /// Leave out private keys (openssl -nokeys).
    #[arg(long, conflicts_with = "no_certs")]
    pub no_keys: bool,
    /// Leave out certificates (openssl -nocerts).
    #[arg(long)]
    pub no_certs: bool,
    /// Only certificates that have a key in the file (openssl -clcerts).
    #[arg(long, conflicts_with_all = ["ca_only", "no_certs"])]
    pub leaf_only: bool,
    /// Only certificates without a key in the file: chains and CAs (openssl -cacerts).
    #[arg(long, conflicts_with = "no_certs")]
    pub ca_only: bool,
}

impl Selection {
    /// Whether keys are shown (`--leaf-only` and `--ca-only` select certificates only, as
    /// OpenSSL's `-clcerts` and `-cacerts` do).
    pub fn keys(self) -> bool {
        !self.no_keys
    }

    /// Whether a certificate that has (`has_key`) or lacks a key in the file is shown.
    pub fn certificate(self, has_key: bool) -> bool {
        !self.no_certs && (!self.leaf_only || has_key) && (!self.ca_only || !has_key)
    }
}

/// The output formats of `convert --to`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputFormat {
    /// PKCS#12.
    Pkcs12,
    /// Java KeyStore.
    Jks,
    /// JCEKS.
    Jceks,
    /// PEM text.
    Pem,
}

impl OutputFormat {
    fn name(self) -> &'static str {
        match self {
            OutputFormat::Pkcs12 => "pkcs12",
            OutputFormat::Jks => "jks",
            OutputFormat::Jceks => "jceks",
            OutputFormat::Pem => "pem",
        }
    }
}

/// Accepts pfxkit's names and keytool's/OpenSSL's spellings, in any case.
fn output_format(s: &str) -> Result<OutputFormat, String> {
    match s.to_ascii_lowercase().as_str() {
        "pkcs12" | "p12" | "pfx" => Ok(OutputFormat::Pkcs12),
        "jks" => Ok(OutputFormat::Jks),
        "jceks" => Ok(OutputFormat::Jceks),
        "pem" => Ok(OutputFormat::Pem),
        _ => Err(format!(
            "'{s}' is not an output format (expected pkcs12, jks, jceks or pem)"
        )),
    }
}

fn profile(s: &str) -> Result<Profile, String> {
    s.parse().map_err(|e: pfxkit::Error| e.to_string())
}

/// An input of `build` (PEM or DER), refused by name when it is a PKCS#12 file or a keystore:
/// its bytes would otherwise fail deep in a key or certificate parser.
fn pem_input(path: &std::path::Path) -> Result<Vec<u8>, CliError> {
    let bytes = read_file(path)?;
    crate::inspect::expect_format(path, &bytes, contents::Format::Pem, "build")?;
    Ok(bytes)
}

pub fn build(args: BuildArgs, json: bool) -> CliResult {
    let limits = Limits::default();
    let password = required_output_password(args.password.as_ref(), args.profile, "--password")?;
    let key_password = resolve(args.key_password.as_ref())?;
    let key_bundle =
        pfxkit::pem::read_bundle(&pem_input(&args.key)?, key_password.as_ref(), &limits)?;
    let key = match key_bundle.keys.as_slice() {
        [key] => key.clone(),
        [] => {
            return Err(
                Error::Invalid(format!("{}: no private key found", args.key.display())).into(),
            );
        }
        _ => {
            return Err(Error::Invalid(format!(
                "{}: more than one private key",
                args.key.display()
            ))
            .into());
        }
    };
    let leaf_bundle = pfxkit::pem::read_bundle(&pem_input(&args.cert)?, None, &limits)?;
    let mut certs = leaf_bundle.certificates.into_iter();
    let leaf = certs
        .next()
        .ok_or_else(|| Error::Invalid(format!("{}: no certificate found", args.cert.display())))?;
    let mut pool: Vec<_> = certs.collect();
    if let Some(chain) = &args.chain {
        pool.extend(pfxkit::pem::read_bundle(&pem_input(chain)?, None, &limits)?.certificates);
    }
    let order = chain_from(&leaf, &pool);
    let chain = order.iter().filter_map(|i| pool.get(*i).cloned()).collect();
    let extras: Vec<_> = pool
        .iter()
        .enumerate()
        .filter(|(i, _)| !order.contains(i))
        .map(|(_, c)| c.clone())
        .collect();
    let identity = Identity::new(key, leaf, chain)?;
    let certificates = identity.chain().len() + extras.len();
    let mut builder = Builder::new(args.profile).identity(identity, args.name.as_deref());
    for cert in extras {
        builder = builder.extra_certificate(cert, None);
    }
    if let Some(n) = args.iterations {
        builder = builder.iterations(n);
    }
    write_output(&args.out, &builder.build(&password, &limits)?, true)?;
    report_written(
        json,
        &[Written {
            path: &args.out,
            format: OutputFormat::Pkcs12,
            keys: 1,
            certificates,
            profile: Some(args.profile),
        }],
    );
    Ok(())
}

/// The output password of a format that encrypts: required, as `openssl pkcs12 -export` asks
/// for one; only `--profile none` writes without (and the empty password must be asked for as
/// `pass:`).
fn required_output_password(
    src: Option<&PasswordSource>,
    profile: Profile,
    option: &str,
) -> Result<Password, CliError> {
    match resolve(src)? {
        Some(p) => Ok(p),
        None if profile == Profile::None => Ok(Password::new("")),
        None => Err(CliError::Usage(format!(
            "{option} is required: profile {} encrypts the output (give pass: for an empty \
             password, or --profile none for no encryption at all)",
            profile.name()
        ))),
    }
}

/// What a command wrote, for its one-line summary and its JSON document.
struct Written<'a> {
    path: &'a Path,
    format: OutputFormat,
    keys: usize,
    certificates: usize,
    profile: Option<Profile>,
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn report_written(json: bool, files: &[Written<'_>]) {
    if json {
        let written: Vec<_> = files
            .iter()
            .map(|w| {
                json!({
                    "path": w.path.display().to_string(),
                    "format": w.format.name(),
                    "keys": w.keys,
                    "certificates": w.certificates,
                    "profile": w.profile.map(Profile::name),
                })
            })
            .collect();
        print_json(&json!({ "written": written }));
        return;
    }
    for w in files {
        outln!(
            "wrote {}: {}, {}{}",
            w.path.display(),
            plural(w.keys, "key", "keys"),
            plural(w.certificates, "certificate", "certificates"),
            w.profile
                .map(|p| format!(", profile {}", p.name()))
                .unwrap_or_default()
        );
    }
}

pub fn convert(args: ConvertArgs, json: bool) -> CliResult {
    let limits = Limits::default();
    let select = args.select;
    if args.to != OutputFormat::Pem
        && (select.no_keys || select.no_certs || select.leaf_only || select.ca_only)
    {
        return Err(CliError::Usage(
            "--no-keys, --no-certs, --leaf-only and --ca-only apply to --to pem only".into(),
        ));
    }
    if args.split.is_some() && args.to != OutputFormat::Pem {
        return Err(CliError::Usage("--split applies to --to pem only".into()));
    }
    if args.plain_key && args.to != OutputFormat::Pem {
        return Err(CliError::Usage(
            "--plain-key applies to --to pem only".into(),
        ));
    }
    // Every check of the options comes before the input is read and decrypted.
    let out_password = match args.to {
        OutputFormat::Pkcs12 => Some(required_output_password(
            args.out_password.as_ref(),
            args.profile,
            "--out-password",
        )?),
        OutputFormat::Jks | OutputFormat::Jceks => {
            Some(resolve(args.out_password.as_ref())?.ok_or_else(|| {
                CliError::Usage(format!(
                    "--to {}: a Java keystore needs --out-password",
                    args.to.name()
                ))
            })?)
        }
        OutputFormat::Pem => resolve(args.out_password.as_ref())?,
    };
    let out_key_password = resolve(args.out_key_password.as_ref())?;
    let pem_key_password = out_key_password.as_ref().or(out_password.as_ref());
    if args.to == OutputFormat::Pem
        && select.keys()
        && !args.plain_key
        && pem_key_password.is_none()
    {
        return Err(CliError::Usage(
            "--to pem writes the key encrypted: give --out-key-password (or --out-password), \
             --plain-key for an unencrypted key, or --no-keys"
                .into(),
        ));
    }
    let password = resolve(args.password.as_ref())?;
    let key_password = resolve(args.key_password.as_ref())?;
    let input = read_file(&args.input)?;
    if password.is_none()
        && matches!(
            contents::Format::detect(&input),
            contents::Format::Jks | contents::Format::Jceks
        )
    {
        // A usage error (exit 2): the store digest is checked before anything is trusted.
        return Err(CliError::Usage(
            "a Java keystore needs --password (its digest is checked before anything is trusted)"
                .into(),
        ));
    }
    let (_, mut contents) =
        contents::load(&input, password.as_ref(), key_password.as_ref(), &limits).map_err(|e| {
            crate::naming_file_password(&args.input, key_password.is_some())(e.into())
        })?;
    for what in &contents.not_converted {
        eprintln!("pfxkit: warning: not converted: {what}");
    }
    if let Some(name) = &args.name {
        match contents.identities.as_mut_slice() {
            [one] => *one = one.clone().with_alias(name.clone()),
            _ => {
                return Err(CliError::Usage(format!(
                    "--name: {} holds {} key entries; --name renames exactly one",
                    args.input.display(),
                    contents.identities.len()
                )));
            }
        }
    }
    let pem_key_password = if args.plain_key {
        None
    } else {
        pem_key_password
    };
    let keys = contents.identities.len();
    let certificates = contents
        .identities
        .iter()
        .map(|i| i.chain().len())
        .sum::<usize>()
        + contents.certificates.len();
    match (args.to, &args.split, &args.out) {
        (OutputFormat::Pem, Some(dir), _) => {
            let written = split_pem(&contents, select, pem_key_password, dir)?;
            report_written(
                json,
                &written
                    .iter()
                    .map(SplitFile::as_written)
                    .collect::<Vec<_>>(),
            );
            return Ok(());
        }
        (_, _, Some(out)) => {
            let (bytes, keys, certificates, profile) = match args.to {
                OutputFormat::Pkcs12 => (
                    to_pkcs12(
                        &contents,
                        args.profile,
                        out_password.as_ref().unwrap_or(&Password::new("")),
                        &limits,
                    )?,
                    keys,
                    certificates,
                    Some(args.profile),
                ),
                OutputFormat::Pem => {
                    let (text, k, c) = to_pem(&contents, select, pem_key_password)?;
                    (text, k, c, None)
                }
                OutputFormat::Jks | OutputFormat::Jceks => {
                    let kind = if args.to == OutputFormat::Jks {
                        KeystoreKind::Jks
                    } else {
                        KeystoreKind::Jceks
                    };
                    let store_password = out_password.unwrap_or_else(|| Password::new(""));
                    (
                        to_java(
                            &contents,
                            kind,
                            &store_password,
                            out_key_password.as_ref().unwrap_or(&store_password),
                        )?,
                        keys,
                        certificates,
                        None,
                    )
                }
            };
            write_output(out, &bytes, keys > 0)?;
            report_written(
                json,
                &[Written {
                    path: out,
                    format: args.to,
                    keys,
                    certificates,
                    profile,
                }],
            );
        }
        // clap requires exactly one of --out and --split.
        _ => return Err(CliError::Usage("give --out FILE or --split DIR".into())),
    }
    Ok(())
}

fn to_pkcs12(
    contents: &Contents,
    profile: Profile,
    password: &Password,
    limits: &Limits,
) -> Result<Vec<u8>, Error> {
    let mut builder = Builder::new(profile);
    for identity in &contents.identities {
        builder = builder.identity(identity.clone(), identity.alias());
    }
    for (i, loose) in contents.certificates.iter().enumerate() {
        builder = if loose.trusted {
            let alias = loose
                .alias
                .clone()
                .unwrap_or_else(|| format!("trusted-{i}"));
            builder.trusted_certificate(loose.certificate.clone(), &alias)
        } else {
            builder.extra_certificate(loose.certificate.clone(), loose.alias.as_deref())
        };
    }
    Ok(builder.build(password, limits)?)
}

fn to_java(
    contents: &Contents,
    kind: KeystoreKind,
    store_password: &Password,
    key_password: &Password,
) -> Result<Vec<u8>, Error> {
    let aliases: Vec<String> = contents
        .identities
        .iter()
        .map(|i| {
            i.alias()
                .map(str::to_string)
                .unwrap_or_else(|| i.leaf().sha1_hex())
        })
        .collect();
    let cert_aliases: Vec<String> = contents
        .certificates
        .iter()
        .map(|c| c.alias.clone().unwrap_or_else(|| c.certificate.sha1_hex()))
        .collect();
    let mut entries: Vec<WriteEntry<'_>> = contents
        .identities
        .iter()
        .zip(&aliases)
        .map(|(identity, alias)| WriteEntry::PrivateKey {
            alias,
            identity,
            key_password,
        })
        .collect();
    entries.extend(
        contents
            .certificates
            .iter()
            .zip(&cert_aliases)
            .map(|(c, alias)| WriteEntry::Trusted {
                alias,
                certificate: &c.certificate,
            }),
    );
    Ok(pfxkit::jks::write(kind, &entries, store_password)?)
}

/// PEM text of the selected keys and certificates, and how many of each it holds.
fn to_pem(
    contents: &Contents,
    select: Selection,
    key_password: Option<&Password>,
) -> Result<(Vec<u8>, usize, usize), Error> {
    let mut out = String::new();
    let mut rng = OsRandom;
    let (mut keys, mut certs) = (0, 0);
    for identity in &contents.identities {
        if select.keys() {
            out.push_str(&pfxkit::pem::encode_private_key(
                identity.key(),
                key_password,
                &mut rng,
            )?);
            keys += 1;
        }
        for (i, cert) in identity.chain().iter().enumerate() {
            if select.certificate(i == 0) {
                out.push_str(&pfxkit::pem::encode_certificate_with_alias(
                    cert,
                    identity.alias().filter(|_| i == 0),
                )?);
                certs += 1;
            }
        }
    }
    for loose in &contents.certificates {
        if select.certificate(false) {
            out.push_str(&pfxkit::pem::encode_certificate_with_alias(
                &loose.certificate,
                loose.alias.as_deref(),
            )?);
            certs += 1;
        }
    }
    Ok((out.into_bytes(), keys, certs))
}

/// One file written by `--split`.
struct SplitFile {
    path: PathBuf,
    keys: usize,
    certificates: usize,
}

impl SplitFile {
    fn as_written(&self) -> Written<'_> {
        Written {
            path: &self.path,
            format: OutputFormat::Pem,
            keys: self.keys,
            certificates: self.certificates,
            profile: None,
        }
    }
}

/// `--split DIR`: `cert.pem` (the leaf), `chain.pem` (the rest of its chain and any other
/// certificates), `key.pem` (its key) — the files nginx, HAProxy and Apache are configured with.
fn split_pem(
    contents: &Contents,
    select: Selection,
    key_password: Option<&Password>,
    dir: &Path,
) -> Result<Vec<SplitFile>, CliError> {
    let identity = match contents.identities.as_slice() {
        [one] => one,
        other => {
            return Err(CliError::Usage(format!(
                "--split needs exactly one key entry, the input holds {}",
                other.len()
            )));
        }
    };
    let mut files = Vec::new();
    let mut write = |name: &str, text: &str, keys: usize, certificates| -> Result<(), Error> {
        if text.is_empty() {
            return Ok(());
        }
        let path = dir.join(name);
        write_output(&path, text.as_bytes(), keys > 0)?;
        files.push(SplitFile {
            path,
            keys,
            certificates,
        });
        Ok(())
    };
    if select.certificate(true) {
        write(
            "cert.pem",
            &pfxkit::pem::encode_certificate_with_alias(identity.leaf(), identity.alias())?,
            0,
            1,
        )?;
    }
    if select.certificate(false) {
        let rest: Vec<&Certificate> = identity
            .chain()
            .iter()
            .skip(1)
            .chain(contents.certificates.iter().map(|c| &c.certificate))
            .collect();
        let text: String = rest
            .iter()
            .map(|c| pfxkit::pem::encode_certificate(c))
            .collect();
        write("chain.pem", &text, 0, rest.len())?;
    }
    if select.keys() {
        let text = pfxkit::pem::encode_private_key(identity.key(), key_password, &mut OsRandom)?;
        write("key.pem", &text, 1, 0)?;
    }
    Ok(files)
}

/// Writes an output file as store files are written (beside, flushed, renamed; never through
/// a link; 0600 when new; no key into a file others can read).
pub fn write_output(path: &Path, bytes: &[u8], holds_private_key: bool) -> Result<(), Error> {
    Ok(pfxkit::store::fs::write_output(
        path,
        bytes,
        holds_private_key,
    )?)
}
