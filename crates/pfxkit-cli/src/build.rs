//! `pfxkit build` and `pfxkit convert`.

use std::path::{Path, PathBuf};

use pfxkit::cert::chain_from;
use pfxkit::contents::{self, Contents};
use pfxkit::jks::{KeystoreKind, WriteEntry};
use pfxkit::pkcs12::{Builder, Profile};
use pfxkit::random::OsRandom;
use pfxkit::{Identity, Limits, Password, PasswordSource};
use pfxkit_catalog::Error;

use crate::{password_source, read_file, resolve};

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
    /// Archive password. Left out: the empty password, which OpenSSL, Java and Windows all accept.
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
    /// Output format: pkcs12, jks, jceks or pem.
    #[arg(long)]
    to: String,
    /// Output file.
    #[arg(long)]
    out: PathBuf,
    /// Output password (PKCS#12/store password; for pem the key password unless
    /// --out-key-password is given).
    #[arg(long, value_parser = password_source)]
    out_password: Option<PasswordSource>,
    /// Output key password (JKS/JCEKS key entries, PEM keys).
    #[arg(long, value_parser = password_source)]
    out_key_password: Option<PasswordSource>,
    /// PKCS#12 profile of the output.
    #[arg(long, default_value = "modern", value_parser = profile)]
    profile: Profile,
}

fn profile(s: &str) -> Result<Profile, String> {
    s.parse().map_err(|e: pfxkit::Error| e.to_string())
}

pub fn build(args: BuildArgs) -> Result<(), Error> {
    let limits = Limits::default();
    let key_password = resolve(args.key_password.as_ref())?;
    let key_bundle =
        pfxkit::pem::read_bundle(&read_file(&args.key)?, key_password.as_ref(), &limits)?;
    let key = match key_bundle.keys.as_slice() {
        [key] => key.clone(),
        [] => {
            return Err(Error::Invalid(format!(
                "{}: no private key found",
                args.key.display()
            )));
        }
        _ => {
            return Err(Error::Invalid(format!(
                "{}: more than one private key",
                args.key.display()
            )));
        }
    };
    let leaf_bundle = pfxkit::pem::read_bundle(&read_file(&args.cert)?, None, &limits)?;
    let mut certs = leaf_bundle.certificates.into_iter();
    let leaf = certs
        .next()
        .ok_or_else(|| Error::Invalid(format!("{}: no certificate found", args.cert.display())))?;
    let mut pool: Vec<_> = certs.collect();
    if let Some(chain) = &args.chain {
        pool.extend(pfxkit::pem::read_bundle(&read_file(chain)?, None, &limits)?.certificates);
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
    let password = resolve(args.password.as_ref())?.unwrap_or_else(|| Password::new(""));
    let mut builder = Builder::new(args.profile).identity(identity, args.name.as_deref());
    for cert in extras {
        builder = builder.extra_certificate(cert, None);
    }
    if let Some(n) = args.iterations {
        builder = builder.iterations(n);
    }
    write_output(&args.out, &builder.build(&password, &limits)?, true)
}

pub fn convert(args: ConvertArgs) -> Result<(), Error> {
    let limits = Limits::default();
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
        use clap::CommandFactory;
        crate::Cli::command()
            .error(
                clap::error::ErrorKind::MissingRequiredArgument,
                "a Java keystore needs --password (its digest is checked before anything is trusted)",
            )
            .exit()
    }
    let (_, contents) = contents::load(&input, password.as_ref(), key_password.as_ref(), &limits)?;
    for what in &contents.not_converted {
        eprintln!("pfxkit: warning: not converted: {what}");
    }
    let out_password = resolve(args.out_password.as_ref())?;
    let out_key_password = resolve(args.out_key_password.as_ref())?;
    let bytes = match args.to.as_str() {
        "pkcs12" => to_pkcs12(
            &contents,
            args.profile,
            &out_password.unwrap_or_else(|| Password::new("")),
            &limits,
        )?,
        "pem" => to_pem(
            &contents,
            out_key_password.as_ref().or(out_password.as_ref()),
        )?,
        "jks" | "jceks" => {
            let kind = if args.to == "jks" {
                KeystoreKind::Jks
            } else {
                KeystoreKind::Jceks
            };
            let store_password = out_password.ok_or_else(|| {
                Error::Invalid(format!(
                    "--to {}: a Java keystore needs --out-password",
                    args.to
                ))
            })?;
            to_java(
                &contents,
                kind,
                &store_password,
                out_key_password.as_ref().unwrap_or(&store_password),
            )?
        }
        other => {
            return Err(Error::Invalid(format!(
                "--to {other}: expected pkcs12, jks, jceks or pem"
            )));
        }
    };
    write_output(&args.out, &bytes, !contents.identities.is_empty())
}

fn to_pkcs12(
    contents: &Contents,
    profile: Profile,
    password: &Password,
    limits: &Limits,
) -> Result<Vec<u8>, Error> {
    let mut builder = Builder::new(profile);
    for identity in &contents.identities {
        builder = builder.identity(identity.clone(), None);
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

fn to_pem(contents: &Contents, key_password: Option<&Password>) -> Result<Vec<u8>, Error> {
    let mut out = String::new();
    let mut rng = OsRandom;
    for identity in &contents.identities {
        out.push_str(&pfxkit::pem::encode_private_key(
            identity.key(),
            key_password,
            &mut rng,
        )?);
        for cert in identity.chain() {
            out.push_str(&pfxkit::pem::encode_certificate(cert));
        }
    }
    for loose in &contents.certificates {
        out.push_str(&pfxkit::pem::encode_certificate(&loose.certificate));
    }
    Ok(out.into_bytes())
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
