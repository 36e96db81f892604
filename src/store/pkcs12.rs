//! The `pkcs12` store: many aliased entries in one PKCS#12 file under a store password, which
//! also protects the keys (as Java and OpenSSL do).
//!
//! A rewrite keeps the algorithms and iteration count the file already uses (so its consumers
//! still accept it) unless a profile is configured. A file pfxkit cannot rewrite without loss —
//! a key without its certificate, secret or CRL bags — is refused rather than damaged.

use std::path::PathBuf;

use super::fs::{StoreLock, WriteOptions};
use super::{
    AddOptions, Capabilities, EntryPasswordPolicy, InventoryEntry, PrivateKeyPolicy, StoreAdapter,
};
use crate::cert::Certificate;
use crate::error::{Error, Result};
use crate::identity::Identity;
use crate::limits::Limits;
use crate::pkcs12::{self, Builder, Profile};
use crate::secret::Password;

/// A PKCS#12 certificate store.
#[derive(Clone, Debug)]
pub struct Pkcs12Store {
    path: PathBuf,
    store_password: Password,
    profile: Option<Profile>,
    write: WriteOptions,
    limits: Limits,
}

/// An entry as held in memory between read and rewrite.
enum Entry {
    Key(Identity, String),
    Cert {
        certificate: Certificate,
        alias: String,
        trusted: bool,
    },
}

impl Entry {
    fn alias(&self) -> &str {
        match self {
            Entry::Key(_, a) | Entry::Cert { alias: a, .. } => a,
        }
    }
}

impl Pkcs12Store {
    /// A store at `path` protected by `store_password`.
    pub fn new(path: impl Into<PathBuf>, store_password: Password) -> Self {
        Pkcs12Store {
            path: path.into(),
            store_password,
            profile: None,
            write: WriteOptions::default(),
            limits: Limits::default(),
        }
    }

    /// Writes with this profile instead of the file's current algorithms.
    #[must_use]
    pub fn profile(mut self, profile: Profile) -> Self {
        self.profile = Some(profile);
        self
    }

    /// How files are written (backups, fault injection).
    #[must_use]
    pub fn write_options(mut self, write: WriteOptions) -> Self {
        self.write = write;
        self
    }

    fn lock(&self) -> Result<StoreLock> {
        StoreLock::acquire(&[self.path.as_path()], &self.write)
    }

    /// Reads the entries and the (profile, iterations) the file uses.
    fn read(&self, lock: &StoreLock) -> Result<(Vec<Entry>, (Profile, u32))> {
        let path = lock.file(&self.path);
        if !path.exists() {
            return Err(Error::StoreNotFound {
                path: self.path.clone(),
            });
        }
        let bytes = self.limits.read_file(path)?;
        let archive = pkcs12::read(&bytes, Some(&self.store_password), &self.limits)?;
        let identities = archive.identities();
        if identities.len() != archive.keys().len() {
            return Err(Error::Unsupported {
                what: format!(
                    "rewriting {}: it holds a private key without its certificate, which a rewrite would lose",
                    self.path.display()
                ),
                oid: None,
            });
        }
        if !archive.other_bags().is_empty() {
            return Err(Error::Unsupported {
                what: format!(
                    "rewriting {}: it holds secret, CRL or unknown bags, which a rewrite would lose",
                    self.path.display()
                ),
                oid: None,
            });
        }
        let mut entries: Vec<Entry> = identities
            .into_iter()
            .map(|i| {
                let alias = i
                    .alias()
                    .map(str::to_string)
                    .unwrap_or_else(|| i.leaf().sha1_hex());
                Entry::Key(i, alias)
            })
            .collect();
        for bag in archive.certificates() {
            // A chain certificate belongs to its key entry and is written again with it; a
            // trusted certificate is an entry of its own even when a chain holds the same
            // certificate (keytool writes both), and must survive every rewrite.
            let in_chain = entries
                .iter()
                .any(|e| matches!(e, Entry::Key(i, _) if i.chain().contains(&bag.certificate)));
            if !in_chain || bag.attributes.java_trusted {
                entries.push(Entry::Cert {
                    certificate: bag.certificate.clone(),
                    alias: bag
                        .attributes
                        .friendly_name
                        .clone()
                        .unwrap_or_else(|| bag.certificate.sha1_hex()),
                    trusted: bag.attributes.java_trusted,
                });
            }
        }
        Ok((entries, pkcs12::detect_profile(&archive)))
    }

    fn write(&self, lock: &StoreLock, entries: Vec<Entry>, detected: (Profile, u32)) -> Result<()> {
        self.write_under(lock, entries, detected, &self.store_password)
    }

    fn write_under(
        &self,
        lock: &StoreLock,
        entries: Vec<Entry>,
        detected: (Profile, u32),
        store_password: &Password,
    ) -> Result<()> {
        let (profile, iterations) = match self.profile {
            Some(p) => (p, p.default_iterations()),
            // A file found unprotected (no MAC, plain keys) is not rewritten that way under a
            // store password: "none" is a profile asked for by name, never inherited.
            None if detected.0 == Profile::None => {
                let p = Profile::default();
                (p, p.default_iterations())
            }
            None => detected,
        };
        let mut builder = Builder::new(profile).allow_empty();
        if profile != Profile::None {
            builder = builder.iterations(iterations);
        }
        for entry in entries {
            builder = match entry {
                Entry::Key(identity, alias) => builder.identity(identity, Some(&alias)),
                Entry::Cert {
                    certificate,
                    alias,
                    trusted: true,
                } => builder.trusted_certificate(certificate, &alias),
                Entry::Cert {
                    certificate,
                    alias,
                    trusted: false,
                } => builder.extra_certificate(certificate, Some(&alias)),
            };
        }
        let bytes = builder.build(store_password, &self.limits)?;
        lock.commit(&[(self.path.as_path(), &bytes)], &self.write)
    }
}

impl StoreAdapter for Pkcs12Store {
    fn store_type(&self) -> &'static str {
        "pkcs12"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            private_keys: PrivateKeyPolicy::Optional,
            entry_password: EntryPasswordPolicy::Unsupported,
            store_password_required: true,
            multiple_entries: true,
            custom_alias: true,
        }
    }

    fn exists(&self) -> bool {
        self.path.exists()
    }

    fn inventory(&self) -> Result<Vec<InventoryEntry>> {
        let lock = self.lock()?;
        let (entries, _) = self.read(&lock)?;
        Ok(entries
            .into_iter()
            .map(|e| match e {
                Entry::Key(identity, alias) => InventoryEntry {
                    alias,
                    chain: identity.chain().to_vec(),
                    has_private_key: true,
                },
                Entry::Cert {
                    certificate, alias, ..
                } => InventoryEntry {
                    alias,
                    chain: vec![certificate],
                    has_private_key: false,
                },
            })
            .collect())
    }

    /// `entry_password` is not used: PKCS#12 keys are protected by the store password.
    fn add(
        &self,
        alias: Option<&str>,
        identity: &Identity,
        _entry_password: Option<&Password>,
        options: AddOptions,
    ) -> Result<String> {
        let alias = alias
            .or(identity.alias())
            .ok_or_else(|| Error::Invalid("a pkcs12 store entry needs an alias".into()))?
            .to_string();
        let lock = self.lock()?;
        let (mut entries, detected) = match self.read(&lock) {
            Ok(read) => read,
            Err(Error::StoreNotFound { .. }) if options.create => (
                Vec::new(),
                (
                    self.profile.unwrap_or_default(),
                    self.profile.unwrap_or_default().default_iterations(),
                ),
            ),
            Err(e) => return Err(e),
        };
        let position = entries.iter().position(|e| e.alias() == alias);
        let new = Entry::Key(identity.clone(), alias.clone());
        match position {
            Some(_) if !options.overwrite => return Err(Error::AliasExists { alias }),
            Some(i) if matches!(entries.get(i), Some(Entry::Cert { trusted: true, .. })) => {
                return Err(super::trusted_not_key(&alias));
            }
            Some(i) => {
                if let Some(slot) = entries.get_mut(i) {
                    *slot = new;
                }
            }
            None => entries.push(new),
        }
        self.write(&lock, entries, detected)?;
        Ok(alias)
    }

    fn remove(&self, alias: &str) -> Result<()> {
        let lock = self.lock()?;
        let (mut entries, detected) = self.read(&lock)?;
        let before = entries.len();
        entries.retain(|e| e.alias() != alias);
        if entries.len() == before {
            return Err(Error::AliasNotFound {
                alias: alias.to_string(),
            });
        }
        self.write(&lock, entries, detected)
    }

    fn add_trusted(
        &self,
        alias: &str,
        certificate: &Certificate,
        options: AddOptions,
    ) -> Result<String> {
        let lock = self.lock()?;
        let (mut entries, detected) = match self.read(&lock) {
            Ok(read) => read,
            Err(Error::StoreNotFound { .. }) if options.create => (
                Vec::new(),
                (
                    self.profile.unwrap_or_default(),
                    self.profile.unwrap_or_default().default_iterations(),
                ),
            ),
            Err(e) => return Err(e),
        };
        let before = entries.len();
        entries.retain(|e| e.alias() != alias);
        if entries.len() != before && !options.overwrite {
            return Err(Error::AliasExists {
                alias: alias.to_string(),
            });
        }
        entries.push(Entry::Cert {
            certificate: certificate.clone(),
            alias: alias.to_string(),
            trusted: true,
        });
        self.write(&lock, entries, detected)?;
        Ok(alias.to_string())
    }

    fn rename(&self, from: &str, to: &str) -> Result<()> {
        let lock = self.lock()?;
        let (mut entries, detected) = self.read(&lock)?;
        if !entries.iter().any(|e| e.alias() == from) {
            return Err(Error::AliasNotFound {
                alias: from.to_string(),
            });
        }
        if from != to && entries.iter().any(|e| e.alias() == to) {
            return Err(Error::AliasExists {
                alias: to.to_string(),
            });
        }
        for entry in &mut entries {
            match entry {
                Entry::Key(_, alias) | Entry::Cert { alias, .. } if alias == from => {
                    *alias = to.to_string();
                }
                _ => {}
            }
        }
        self.write(&lock, entries, detected)
    }

    fn change_store_password(&self, new_password: &Password) -> Result<()> {
        let lock = self.lock()?;
        let (entries, detected) = self.read(&lock)?;
        self.write_under(&lock, entries, detected, new_password)
    }
}
