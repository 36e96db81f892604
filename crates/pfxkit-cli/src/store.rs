//! `pfxkit store inventory|add|rename|passwd|remove`.

use std::path::{Path, PathBuf};

use pfxkit::contents::Format;
use pfxkit::store::fs::WriteOptions;
use pfxkit::store::{self, AddOptions, InventoryEntry, StoreAdapter, StoreSpec, StoreType};
use pfxkit::{Limits, PasswordSource};
use pfxkit_catalog::Error;
use serde_json::{Value, json};

use crate::inspect::expect_format;
use crate::{
    CliError, CliResult, naming_password, password_source, print_json, read_file, resolve,
};

#[derive(Debug, clap::Subcommand)]
pub enum StoreCommand {
    /// List a store's entries (keytool -list).
    Inventory {
        #[command(flatten)]
        store: StoreArgs,
        /// Entry password (accepted for symmetry; inventory does not decrypt keys).
        #[arg(long, value_parser = password_source)]
        entry_password: Option<PasswordSource>,
        /// Only the entry under this alias (keytool -list -alias); exit 1 when it is not there.
        #[arg(long)]
        alias: Option<String>,
    },
    /// Put the key and chain of a PKCS#12 file (--pfx), or a trusted certificate without a key
    /// (--cert, keytool -importcert), under an alias.
    #[command(group(clap::ArgGroup::new("what").required(true).args(["pfx", "cert"])))]
    Add {
        #[command(flatten)]
        store: StoreArgs,
        /// Entry password: encrypts a PEM store's key; a JKS key password (default: the store
        /// password).
        #[arg(long, value_parser = password_source)]
        entry_password: Option<PasswordSource>,
        /// Alias of the entry (PEM stores use the leaf's SHA-1 thumbprint).
        #[arg(long)]
        alias: String,
        /// The PKCS#12 file holding the key and chain.
        #[arg(long)]
        pfx: Option<PathBuf>,
        /// A trusted certificate (PEM or DER) to add on its own, without a key: jks, pkcs12, or
        /// a trust-only pem store (a pem file of certificates).
        #[arg(long, conflicts_with_all = ["pfx_password", "entry_password", "plain_key"])]
        cert: Option<PathBuf>,
        /// Its (transport) password.
        #[arg(long, value_parser = password_source)]
        pfx_password: Option<PasswordSource>,
        /// Replace an existing entry under the alias.
        #[arg(long)]
        overwrite: bool,
        /// Create the store when it does not exist.
        #[arg(long)]
        create: bool,
        /// PEM stores for nginx/HAProxy: write the key unencrypted (readable by the owner
        /// only). Never the default: without it a PEM store needs --entry-password.
        #[arg(long, conflicts_with = "entry_password")]
        plain_key: bool,
    },
    /// Give an entry another alias (keytool -changealias).
    Rename {
        #[command(flatten)]
        store: StoreArgs,
        /// The entry's alias.
        #[arg(long)]
        alias: String,
        /// Its new alias.
        #[arg(long)]
        to: String,
    },
    /// Rewrite the store under a new store password (keytool -storepasswd; JKS key entries
    /// keep their own key passwords), or, for JKS, re-protect the key of one entry under a new
    /// key password (keytool -keypasswd: --alias, --key-password, --new-key-password).
    #[command(group(clap::ArgGroup::new("change").required(true).args(["new_password", "new_key_password"])))]
    Passwd {
        #[command(flatten)]
        store: StoreArgs,
        /// The new store password.
        #[arg(long, value_parser = password_source, conflicts_with = "new_key_password")]
        new_password: Option<PasswordSource>,
        /// JKS: the key entry whose key password changes (keytool -keypasswd -alias).
        #[arg(long, requires = "new_key_password")]
        alias: Option<String>,
        /// JKS: the entry's current key password (default: the store password, as keytool
        /// assumes).
        #[arg(long, value_parser = password_source, requires = "new_key_password")]
        key_password: Option<PasswordSource>,
        /// JKS: the entry's new key password (keytool -keypasswd -new); needs --alias.
        #[arg(long, value_parser = password_source, requires = "alias")]
        new_key_password: Option<PasswordSource>,
    },
    /// Remove the entry under an alias (keytool -delete).
    Remove {
        #[command(flatten)]
        store: StoreArgs,
        /// Alias of the entry.
        #[arg(long)]
        alias: String,
    },
}

#[derive(Debug, clap::Args)]
pub struct StoreArgs {
    /// Store type: pem, pkcs12 or jks (also PKCS12, p12, pfx, JKS: keytool's spellings).
    #[arg(long = "type", value_parser = store_type)]
    store_type: StoreType,
    /// The store's file (a PEM store's certificate file).
    #[arg(long)]
    path: PathBuf,
    /// A PEM store's separate key file.
    #[arg(long)]
    key_path: Option<PathBuf>,
    /// Store password (pkcs12, jks).
    #[arg(long, value_parser = password_source)]
    store_password: Option<PasswordSource>,
    /// A pem trust store: a file of trusted certificates, each its own entry (what
    /// `store add --cert` writes), rather than one key entry and its chain.
    #[arg(long)]
    trust_only: bool,
    /// Accept a store in a directory other users can write that has no sticky bit (refused by
    /// default: any of them could replace the store's files).
    #[arg(long)]
    allow_shared_dir: bool,
}

/// Accepts pfxkit's names and keytool's/OpenSSL's spellings, in any case.
pub fn store_type(s: &str) -> Result<StoreType, String> {
    match s.to_ascii_lowercase().as_str() {
        "pem" => Ok(StoreType::Pem),
        "pkcs12" | "p12" | "pfx" => Ok(StoreType::Pkcs12),
        "jks" => Ok(StoreType::Jks),
        _ => Err(format!(
            "unknown store type '{s}' (expected pem, pkcs12 or jks)"
        )),
    }
}

impl StoreArgs {
    fn spec(&self) -> Result<StoreSpec, Error> {
        Ok(StoreSpec::new(self.store_type, &self.path)
            .key_path(self.key_path.clone())
            .store_password(resolve(self.store_password.as_ref())?)
            .write_options(self.write_options()))
    }

    /// Opens the store after checking that an existing file is of the declared type.
    ///
    /// # Errors
    /// A usage error naming the option for a missing store password or a key path on a store
    /// type without one; exit 4 for a file of another type; the store's own refusals.
    fn open(&self) -> Result<Box<dyn StoreAdapter>, CliError> {
        let name = self.store_type.name();
        if self.store_type != StoreType::Pem {
            if self.store_password.is_none() {
                return Err(CliError::Usage(format!(
                    "--store-password is required for a {name} store (pass: for an empty one)"
                )));
            }
            if self.key_path.is_some() {
                return Err(CliError::Usage(format!(
                    "--key-path applies to pem stores only (a {name} store is one file)"
                )));
            }
        }
        if self.path.exists() {
            let bytes = read_file(&self.path)?;
            if !bytes.is_empty() {
                let expected = match self.store_type {
                    StoreType::Jks => Format::Jks,
                    StoreType::Pkcs12 => Format::Pkcs12,
                    _ => Format::Pem,
                };
                // A JCEKS file is accepted by the jks store's reader.
                if !(expected == Format::Jks && Format::detect(&bytes) == Format::Jceks) {
                    expect_format(&self.path, &bytes, expected, "--type")?;
                }
            }
        }
        if self.trust_only {
            if self.store_type != StoreType::Pem || self.key_path.is_some() {
                return Err(CliError::Usage(
                    "--trust-only applies to pem stores without --key-path".into(),
                ));
            }
            return Ok(Box::new(
                store::pem::PemStore::trust_only(&self.path).write_options(self.write_options()),
            ));
        }
        Ok(store::open(&self.spec()?)?)
    }

    fn write_options(&self) -> WriteOptions {
        WriteOptions::default().allow_shared_dir(self.allow_shared_dir)
    }

    /// Names the store password in a wrong-password error.
    fn name_password(&self) -> impl FnOnce(Error) -> Error {
        naming_password(format!("the store password of {}", self.path.display()))
    }

    /// Adds what the layer below cannot know to its store errors: which store, and the option
    /// that gets past a refusal.
    fn explain(&self, alias: &str) -> impl FnOnce(Error) -> CliError {
        let path = self.path.display().to_string();
        let store_type = self.store_type;
        let alias = alias.to_string();
        move |e| match e {
            Error::Codec(pfxkit::Error::AliasExists { alias: found }) => {
                let message = if store_type == StoreType::Pem && found != alias {
                    format!(
                        "{path} already holds entry '{found}' and a pem store holds one entry, \
                         so '{alias}' cannot be added (remove '{found}' first, or add it under \
                         '{found}' with --overwrite to replace it)"
                    )
                } else {
                    format!(
                        "alias '{found}' already exists in {path} (use --overwrite to replace it)"
                    )
                };
                Error::Invalid(message).into()
            }
            Error::Codec(pfxkit::Error::StoreNotFound { path }) => Error::Invalid(format!(
                "store {} does not exist (use --create to create it)",
                path.display()
            ))
            .into(),
            Error::Codec(pfxkit::Error::AliasNotFound { alias: missing }) => {
                Error::Invalid(format!("alias '{missing}' is not in {path}")).into()
            }
            other => other.into(),
        }
    }
}

fn entry_json(e: &InventoryEntry) -> Value {
    json!({
        "alias": e.alias,
        "sha256": e.leaf().map(|c| c.sha256_hex()),
        "has_private_key": e.has_private_key,
        "chain": e.chain.iter().map(|c| c.sha256_hex()).collect::<Vec<_>>(),
    })
}

/// The JSON document and the line that say what a change did.
fn report_change(json: bool, action: &str, alias: &str, path: &Path, detail: &str) {
    if json {
        print_json(&json!({
            "action": action,
            "alias": alias,
            "store": path.display().to_string(),
        }));
    } else {
        outln!(
            "{action} '{}' in {}{detail}",
            crate::escape_text(alias),
            path.display()
        );
    }
}

pub fn run(command: StoreCommand, json: bool) -> CliResult {
    match command {
        StoreCommand::Inventory {
            store: args, alias, ..
        } => {
            let mut entries = args
                .open()?
                .inventory()
                .map_err(|e| args.explain("")((args.name_password())(Error::Codec(e))))?;
            if let Some(alias) = &alias {
                entries.retain(|e| &e.alias == alias);
                if entries.is_empty() {
                    return Err(Error::Codec(pfxkit::Error::AliasNotFound {
                        alias: alias.clone(),
                    }))
                    .map_err(args.explain(alias));
                }
            }
            if json {
                let report: Vec<_> = entries.iter().map(entry_json).collect();
                print_json(&json!({ "entries": report }));
            } else {
                for e in &entries {
                    outln!(
                        "{}: {}{} (chain of {})",
                        crate::escape_text(&e.alias),
                        crate::escape_text(&e.leaf().map(|c| c.subject()).unwrap_or_default()),
                        if e.has_private_key { " [has key]" } else { "" },
                        e.chain.len()
                    );
                    if alias.is_some() {
                        for c in &e.chain {
                            outln!(
                                "  {}  sha1 {}  sha256 {}  not after {}",
                                c.subject(),
                                c.sha1_hex(),
                                c.sha256_hex(),
                                c.not_after_rfc3339()
                            );
                        }
                    }
                }
                if entries.is_empty() {
                    outln!("{} is empty", args.path.display());
                }
            }
            Ok(())
        }
        StoreCommand::Add {
            store: args,
            entry_password,
            alias,
            pfx,
            pfx_password,
            overwrite,
            create,
            plain_key,
            cert,
        } => {
            if let Some(cert) = cert {
                return add_trusted(
                    &args,
                    &alias,
                    &cert,
                    AddOptions::new(overwrite, create),
                    json,
                );
            }
            let Some(pfx) = pfx else {
                return Err(CliError::Usage("give --pfx FILE or --cert FILE".into()));
            };
            if plain_key && args.store_type != StoreType::Pem {
                return Err(CliError::Usage(
                    "--plain-key applies to pem stores only".into(),
                ));
            }
            // A PEM store never gets a plain key by omission: say which option is missing
            // before anything is read.
            if args.store_type == StoreType::Pem && !plain_key && entry_password.is_none() {
                return Err(CliError::Usage(
                    "a pem store writes the key encrypted: give --entry-password SRC (or \
                     --plain-key for an unencrypted key, e.g. for nginx/HAProxy)"
                        .into(),
                ));
            }
            let pfx_bytes = read_file(&pfx)?;
            expect_format(&pfx, &pfx_bytes, Format::Pkcs12, "--pfx")?;
            let pfx_password = resolve(pfx_password.as_ref())?;
            let archive =
                pfxkit::pkcs12::read(&pfx_bytes, pfx_password.as_ref(), &Limits::default())
                    .map_err(|e| {
                        naming_password(format!("the password of {}", pfx.display()))(e.into())
                    })?;
            let identity = match archive.identities().as_slice() {
                [one] => one.clone(),
                [] => {
                    return Err(Error::Invalid(format!(
                        "{}: no private key with its certificate",
                        pfx.display()
                    ))
                    .into());
                }
                _ => {
                    return Err(Error::Invalid(format!(
                        "{}: more than one key entry",
                        pfx.display()
                    ))
                    .into());
                }
            };
            let entry_password = resolve(entry_password.as_ref())?;
            let adapter: Box<dyn StoreAdapter> = if plain_key {
                args.open()?;
                let mut pem = store::pem::PemStore::new(&args.path)
                    .allow_plain_key()
                    .write_options(args.write_options());
                if let Some(k) = &args.key_path {
                    pem = pem.key_path(k);
                }
                Box::new(pem)
            } else {
                args.open()?
            };
            // Whether the alias was there decides the message: an overwrite must say so.
            let existed = adapter.exists()
                && adapter
                    .inventory()
                    .map_err(|e| args.explain(&alias)((args.name_password())(Error::Codec(e))))?
                    .iter()
                    .any(|e| e.alias == alias);
            let used = adapter
                .add(
                    Some(&alias),
                    &identity,
                    entry_password.as_ref(),
                    AddOptions::new(overwrite, create),
                )
                .map_err(|e| args.explain(&alias)((args.name_password())(Error::Codec(e))))?;
            let chain = identity.chain().len();
            let detail = format!(
                ": 1 key, {chain} certificate{}{}",
                if chain == 1 { "" } else { "s" },
                if plain_key { ", key unencrypted" } else { "" }
            );
            report_change(
                json,
                if existed { "replaced" } else { "added" },
                &used,
                &args.path,
                &detail,
            );
            Ok(())
        }
        StoreCommand::Rename {
            store: args,
            alias,
            to,
        } => {
            args.open()?.rename(&alias, &to).map_err(|e| match e {
                pfxkit::Error::AliasExists { alias } => CliError::Failed(Error::Invalid(format!(
                    "alias '{alias}' already exists in {}",
                    args.path.display()
                ))),
                other => args.explain(&alias)((args.name_password())(Error::Codec(other))),
            })?;
            if json {
                print_json(&json!({
                    "action": "renamed",
                    "alias": to,
                    "from": alias,
                    "store": args.path.display().to_string(),
                }));
            } else {
                outln!(
                    "renamed '{}' to '{}' in {}",
                    crate::escape_text(&alias),
                    crate::escape_text(&to),
                    args.path.display()
                );
            }
            Ok(())
        }
        StoreCommand::Passwd {
            store: args,
            new_password,
            alias,
            key_password,
            new_key_password,
        } => {
            let (Some(alias), Some(new_key_password)) = (alias, new_key_password) else {
                let Some(new_password) = new_password else {
                    return Err(CliError::Usage(
                        "give --new-password, or --alias with --new-key-password".into(),
                    ));
                };
                return change_store_password(&args, &new_password, json);
            };
            change_key_password(
                &args,
                &alias,
                key_password.as_ref(),
                &new_key_password,
                json,
            )
        }
        StoreCommand::Remove { store: args, alias } => {
            args.open()?
                .remove(&alias)
                .map_err(|e| args.explain(&alias)((args.name_password())(Error::Codec(e))))?;
            report_change(json, "removed", &alias, &args.path, "");
            Ok(())
        }
    }
}

/// `store passwd --new-password`: the store password (keytool -storepasswd).
fn change_store_password(args: &StoreArgs, new_password: &PasswordSource, json: bool) -> CliResult {
    if args.store_type == StoreType::Pem {
        return Err(CliError::Usage(
            "--new-password applies to jks and pkcs12 stores: a pem store has no store \
             password (its key is encrypted under the entry password; write it again with \
             store add --overwrite --entry-password)"
                .into(),
        ));
    }
    let new_password = new_password.resolve()?;
    args.open()?
        .change_store_password(&new_password)
        .map_err(|e| args.explain("")((args.name_password())(Error::Codec(e))))?;
    if json {
        print_json(&json!({
            "action": "password changed",
            "store": args.path.display().to_string(),
        }));
    } else {
        outln!("changed the store password of {}", args.path.display());
    }
    Ok(())
}

/// `store passwd --alias A --new-key-password`: the key password of one JKS entry (keytool
/// -keypasswd). The store password is checked first, so a wrong-password error names the
/// password that really failed.
fn change_key_password(
    args: &StoreArgs,
    alias: &str,
    key_password: Option<&PasswordSource>,
    new_key_password: &PasswordSource,
    json: bool,
) -> CliResult {
    if args.store_type != StoreType::Jks {
        return Err(CliError::Usage(format!(
            "--new-key-password applies to jks stores only (a {} store has no per-entry key \
             password; use --new-password)",
            args.store_type
        )));
    }
    let adapter = args.open()?;
    let entries = adapter
        .inventory()
        .map_err(|e| args.explain(alias)((args.name_password())(Error::Codec(e))))?;
    if !entries.iter().any(|e| e.alias.eq_ignore_ascii_case(alias)) {
        return Err(args.explain(alias)(Error::Codec(
            pfxkit::Error::AliasNotFound {
                alias: alias.to_string(),
            },
        )));
    }
    // keytool's default for -keypass: the store password.
    let key_password = match key_password {
        Some(source) => source.resolve()?,
        None => resolve(args.store_password.as_ref())?.ok_or_else(|| {
            CliError::Usage("give --key-password (or --store-password, its default)".into())
        })?,
    };
    let new_key_password = new_key_password.resolve()?;
    let key_password_of = format!(
        "the key password of '{}' in {}",
        crate::escape_text(alias),
        args.path.display()
    );
    adapter
        .change_key_password(alias, &key_password, &new_key_password)
        .map_err(|e| args.explain(alias)(naming_password(key_password_of)(Error::Codec(e))))?;
    if json {
        print_json(&json!({
            "action": "key password changed",
            "alias": alias.to_lowercase(),
            "store": args.path.display().to_string(),
        }));
    } else {
        outln!(
            "changed the key password of '{}' in {}",
            crate::escape_text(&alias.to_lowercase()),
            args.path.display()
        );
    }
    Ok(())
}

/// `store add --cert`: a trusted certificate without a key.
fn add_trusted(
    args: &StoreArgs,
    alias: &str,
    cert: &Path,
    options: AddOptions,
    json: bool,
) -> CliResult {
    let bytes = read_file(cert)?;
    expect_format(cert, &bytes, Format::Pem, "--cert")?;
    let bundle = pfxkit::pem::read_bundle(&bytes, None, &Limits::default())?;
    let certificate = match bundle.certificates.as_slice() {
        [one] if bundle.keys.is_empty() => one.clone(),
        _ => {
            return Err(Error::Invalid(format!(
                "{}: --cert takes a file with exactly one certificate and no key",
                cert.display()
            ))
            .into());
        }
    };
    let adapter: Box<dyn StoreAdapter> = if args.store_type == StoreType::Pem && !args.trust_only {
        args.open()?;
        Box::new(store::pem::PemStore::trust_only(&args.path).write_options(args.write_options()))
    } else {
        args.open()?
    };
    let existed = adapter.exists()
        && adapter
            .inventory()
            .map_err(|e| args.explain(alias)((args.name_password())(Error::Codec(e))))?
            .iter()
            .any(|e| e.alias.eq_ignore_ascii_case(alias));
    let used = adapter
        .add_trusted(alias, &certificate, options)
        .map_err(|e| args.explain(alias)((args.name_password())(Error::Codec(e))))?;
    report_change(
        json,
        if existed { "replaced" } else { "added" },
        &used,
        &args.path,
        &format!(
            ": trusted certificate {} (sha1 {})",
            certificate.subject(),
            certificate.sha1_hex()
        ),
    );
    Ok(())
}
