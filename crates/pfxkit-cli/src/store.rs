//! `pfxkit store inventory|add|remove`.

use std::path::PathBuf;

use pfxkit::store::fs::WriteOptions;
use pfxkit::store::{self, AddOptions, StoreSpec, StoreType};
use pfxkit::{Limits, PasswordSource};
use pfxkit_catalog::Error;
use serde_json::json;

use crate::{password_source, print_json, read_file, resolve};

#[derive(Debug, clap::Subcommand)]
pub enum StoreCommand {
    /// List a store's entries.
    Inventory {
        #[command(flatten)]
        store: StoreArgs,
        /// Entry password (accepted for symmetry; inventory does not decrypt keys).
        #[arg(long, value_parser = password_source)]
        entry_password: Option<PasswordSource>,
        /// Print one JSON document.
        #[arg(long)]
        json: bool,
    },
    /// Put the key and chain of a PKCS#12 file under an alias.
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
        pfx: PathBuf,
        /// Its (transport) password.
        #[arg(long, value_parser = password_source)]
        pfx_password: Option<PasswordSource>,
        /// Replace an existing entry under the alias.
        #[arg(long)]
        overwrite: bool,
        /// Create the store when it does not exist.
        #[arg(long)]
        create: bool,
    },
    /// Remove the entry under an alias.
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
    /// Store type: pem, pkcs12 or jks.
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
    /// Accept a store in a directory other users can write that has no sticky bit (refused by
    /// default: any of them could replace the store's files).
    #[arg(long)]
    allow_shared_dir: bool,
}

fn store_type(s: &str) -> Result<StoreType, String> {
    s.parse().map_err(|e: pfxkit::Error| e.to_string())
}

impl StoreArgs {
    fn spec(&self) -> Result<StoreSpec, Error> {
        Ok(StoreSpec::new(self.store_type, &self.path)
            .key_path(self.key_path.clone())
            .store_password(resolve(self.store_password.as_ref())?)
            .write_options(WriteOptions::default().allow_shared_dir(self.allow_shared_dir)))
    }
}

pub fn run(command: StoreCommand) -> Result<(), Error> {
    match command {
        StoreCommand::Inventory {
            store: args, json, ..
        } => {
            let entries = store::open(&args.spec()?)?.inventory()?;
            let report: Vec<_> = entries
                .iter()
                .map(|e| {
                    json!({
                        "alias": e.alias,
                        "sha256": e.leaf().map(|c| c.sha256_hex()),
                        "has_private_key": e.has_private_key,
                        "chain": e.chain.iter().map(|c| c.sha256_hex()).collect::<Vec<_>>(),
                    })
                })
                .collect();
            if json {
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
        } => {
            let pfx_password = resolve(pfx_password.as_ref())?;
            let archive =
                pfxkit::pkcs12::read(&read_file(&pfx)?, pfx_password.as_ref(), &Limits::default())?;
            let identity = match archive.identities().as_slice() {
                [one] => one.clone(),
                [] => {
                    return Err(Error::Invalid(format!(
                        "{}: no private key with its certificate",
                        pfx.display()
                    )));
                }
                _ => {
                    return Err(Error::Invalid(format!(
                        "{}: more than one key entry",
                        pfx.display()
                    )));
                }
            };
            let entry_password = resolve(entry_password.as_ref())?;
            let used = store::open(&args.spec()?)?.add(
                Some(&alias),
                &identity,
                entry_password.as_ref(),
                AddOptions::new(overwrite, create),
            )?;
            eprintln!("added {}", crate::escape_text(&used));
            Ok(())
        }
        StoreCommand::Remove { store: args, alias } => {
            store::open(&args.spec()?)?.remove(&alias)?;
            Ok(())
        }
    }
}
