//! The `pem` store: one key entry (certificate file with the leaf, then its chain; the key in the
//! same file or a separate key file) or, in trust-only mode, many certificates and no key.
//!
//! An alias is kept as OpenSSL keeps it in PEM output, a `Bag Attributes` / `friendlyName:` text
//! before the block (PEM parsers ignore such text); without one, an entry's alias is its leaf's
//! SHA-1 thumbprint. The key is
//! written as encrypted PKCS#8 (PBES2, PBKDF2-HMAC-SHA256, AES-256-CBC) under the entry password,
//! which is therefore required, unless the store is explicitly configured for a plain key.
//!
//! Removing a key-entry store's one entry removes its files (an empty file would read as a
//! broken store to other tools); a trust-only store keeps its certificate file, empty or not.
//! A key path that names the certificate file is refused, as is an alias that would not read
//! back as itself.

use std::path::{Path, PathBuf};

use super::fs::{StoreLock, WriteOptions};
use super::{
    AddOptions, Capabilities, EntryPasswordPolicy, InventoryEntry, PrivateKeyPolicy, StoreAdapter,
};
use crate::cert::{Certificate, order_leaf_first};
use crate::error::{Error, Result};
use crate::identity::Identity;
use crate::limits::Limits;
use crate::random::OsRandom;
use crate::secret::Password;

/// What a PEM store holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PemMode {
    /// One key entry; `plain_key` allows writing the key unencrypted when no entry password is
    /// given (insecure: only by explicit configuration).
    KeyEntry {
        /// Allow an unencrypted key.
        plain_key: bool,
    },
    /// Many certificates, no key.
    TrustOnly,
}

/// A PEM certificate store.
#[derive(Clone, Debug)]
pub struct PemStore {
    cert_path: PathBuf,
    key_path: Option<PathBuf>,
    include_chain: bool,
    mode: PemMode,
    write: WriteOptions,
    limits: Limits,
}

impl PemStore {
    /// A key-entry store in one file (certificates, then the encrypted key), chain included.
    pub fn new(cert_path: impl Into<PathBuf>) -> Self {
        PemStore {
            cert_path: cert_path.into(),
            key_path: None,
            include_chain: true,
            mode: PemMode::KeyEntry { plain_key: false },
            write: WriteOptions::default(),
            limits: Limits::default(),
        }
    }

    /// A trust-only store: many certificates, no key.
    pub fn trust_only(cert_path: impl Into<PathBuf>) -> Self {
        PemStore {
            mode: PemMode::TrustOnly,
            ..PemStore::new(cert_path)
        }
    }

    /// Keeps the key in a separate file.
    #[must_use]
    pub fn key_path(mut self, key_path: impl Into<PathBuf>) -> Self {
        self.key_path = Some(key_path.into());
        self
    }

    /// Whether the chain follows the leaf in the certificate file (default: yes).
    #[must_use]
    pub fn include_chain(mut self, include: bool) -> Self {
        self.include_chain = include;
        self
    }

    /// Allows an unencrypted key when no entry password is given. Insecure: the key is then
    /// protected by file permissions alone.
    #[must_use]
    pub fn allow_plain_key(mut self) -> Self {
        self.mode = PemMode::KeyEntry { plain_key: true };
        self
    }

    /// How files are written (backups, fault injection).
    #[must_use]
    pub fn write_options(mut self, write: WriteOptions) -> Self {
        self.write = write;
        self
    }

    fn files(&self) -> Vec<&Path> {
        let mut files = vec![self.cert_path.as_path()];
        files.extend(self.key_path.as_deref());
        files
    }

    /// Refuses a key file that is the certificate file: every write would put one over the
    /// other, and a failed add would destroy the entry.
    ///
    /// # Errors
    /// [`Error::Invalid`] when the key path names the certificate file.
    pub fn check_paths(&self) -> Result<()> {
        match &self.key_path {
            Some(key) if super::fs::same_file(&self.cert_path, key) => {
                Err(Error::Invalid(format!(
                    "a pem store's key path must differ from its certificate path ({} and {} \
                     are one file): leave the key path out to keep the key in the certificate file",
                    self.cert_path.display(),
                    key.display()
                )))
            }
            _ => Ok(()),
        }
    }

    fn lock(&self) -> Result<StoreLock> {
        self.check_paths()?;
        StoreLock::acquire(&self.files(), &self.write)
    }

    /// Refuses an alias that would not read back as itself: besides what any PEM text refuses
    /// (control characters, surrounding spaces), `-----` would start or end a block of its
    /// own. Checked by writing the alias before `leaf` and reading it back.
    fn check_alias(&self, alias: &str, leaf: &Certificate) -> Result<()> {
        let refuse = || {
            Error::Invalid(format!(
                "alias {alias:?} cannot be kept in a PEM file: it would not read back as itself \
                 (PEM armour such as \"-----BEGIN \" in an alias starts a block of its own)"
            ))
        };
        if alias.contains("-----") {
            return Err(refuse());
        }
        let text = crate::pem::encode_certificate_with_alias(leaf, Some(alias))?;
        let scan = crate::pem::scan(text.as_bytes(), &self.limits).map_err(|_| refuse())?;
        match scan.certificates.as_slice() {
            [(cert, Some(read))] if read == alias && cert == leaf => Ok(()),
            _ => Err(refuse()),
        }
    }

    /// Reads the store: its entries as found.
    fn read(&self, lock: &StoreLock) -> Result<Vec<InventoryEntry>> {
        let cert_path = lock.file(&self.cert_path);
        if !cert_path.exists() {
            return Err(Error::StoreNotFound {
                path: self.cert_path.clone(),
            });
        }
        let mut scan = crate::pem::scan(&self.limits.read_file(cert_path)?, &self.limits)?;
        let key_path = self.key_path.as_deref().map(|k| lock.file(k));
        if let Some(k) = key_path.filter(|k| k.exists()) {
            let key_scan = crate::pem::scan(&self.limits.read_file(k)?, &self.limits)?;
            scan.has_key = key_scan.has_key;
            scan.key_alias = key_scan.key_alias;
        }
        Ok(match self.mode {
            PemMode::TrustOnly => scan
                .certificates
                .into_iter()
                .map(|(c, alias)| InventoryEntry {
                    alias: alias.unwrap_or_else(|| c.sha1_hex()),
                    chain: vec![c],
                    has_private_key: false,
                })
                .collect(),
            PemMode::KeyEntry { .. } => {
                let aliases: Vec<_> = scan
                    .certificates
                    .iter()
                    .map(|(c, a)| (c.clone(), a.clone()))
                    .collect();
                let chain = order_leaf_first(
                    scan.certificates.into_iter().map(|(c, _)| c).collect(),
                    self.limits.max_chain_len,
                );
                match chain.first() {
                    Some(leaf) => {
                        let alias = aliases
                            .iter()
                            .find(|(c, _)| c == leaf)
                            .and_then(|(_, a)| a.clone())
                            .or(scan.key_alias)
                            .unwrap_or_else(|| leaf.sha1_hex());
                        vec![InventoryEntry {
                            alias,
                            chain,
                            has_private_key: scan.has_key,
                        }]
                    }
                    None => Vec::new(),
                }
            }
        })
    }

    fn current(&self, lock: &StoreLock, create: bool) -> Result<Vec<InventoryEntry>> {
        match self.read(lock) {
            Err(Error::StoreNotFound { .. }) if create => Ok(Vec::new()),
            other => other,
        }
    }

    /// Writes a key entry's files.
    fn commit_entry(
        &self,
        lock: &StoreLock,
        (alias, identity, password): (&str, &Identity, Option<&Password>),
    ) -> Result<()> {
        let chain = if self.include_chain {
            identity.chain()
        } else {
            identity.chain().get(..1).unwrap_or_default()
        };
        let mut certs = crate::pem::alias_header(Some(alias))?;
        certs.extend(chain.iter().map(crate::pem::encode_certificate));
        let mut key = zeroize::Zeroizing::new(crate::pem::alias_header(Some(alias))?);
        key.push_str(&crate::pem::encode_private_key(
            identity.key(),
            password,
            &mut OsRandom,
        )?);
        match &self.key_path {
            Some(key_path) => lock.commit(
                &[
                    (self.cert_path.as_path(), certs.as_bytes()),
                    (key_path.as_path(), key.as_bytes()),
                ],
                &self.write,
            ),
            None => {
                let combined = zeroize::Zeroizing::new(format!("{certs}{}", key.as_str()));
                lock.commit(
                    &[(self.cert_path.as_path(), combined.as_bytes())],
                    &self.write,
                )
            }
        }
    }

    fn commit_trusted(&self, lock: &StoreLock, entries: &[(&str, &Certificate)]) -> Result<()> {
        let mut text = String::new();
        for (alias, cert) in entries {
            text.push_str(&crate::pem::encode_certificate_with_alias(
                cert,
                Some(alias),
            )?);
        }
        lock.commit(&[(self.cert_path.as_path(), text.as_bytes())], &self.write)
    }
}

impl StoreAdapter for PemStore {
    fn store_type(&self) -> &'static str {
        "pem"
    }

    fn capabilities(&self) -> Capabilities {
        match self.mode {
            PemMode::TrustOnly => Capabilities {
                private_keys: PrivateKeyPolicy::Forbidden,
                entry_password: EntryPasswordPolicy::Unsupported,
                store_password_required: false,
                multiple_entries: true,
                custom_alias: true,
            },
            PemMode::KeyEntry { plain_key } => Capabilities {
                private_keys: PrivateKeyPolicy::Required,
                entry_password: if plain_key {
                    EntryPasswordPolicy::Optional
                } else {
                    EntryPasswordPolicy::Required
                },
                store_password_required: false,
                multiple_entries: false,
                custom_alias: true,
            },
        }
    }

    fn exists(&self) -> bool {
        self.cert_path.exists()
    }

    fn inventory(&self) -> Result<Vec<InventoryEntry>> {
        let lock = self.lock()?;
        self.read(&lock)
    }

    fn add(
        &self,
        alias: Option<&str>,
        identity: &Identity,
        entry_password: Option<&Password>,
        options: AddOptions,
    ) -> Result<String> {
        let new_alias = alias
            .map(str::to_string)
            .unwrap_or_else(|| identity.leaf().sha1_hex());
        self.check_alias(&new_alias, identity.leaf())?;
        if let PemMode::KeyEntry { plain_key } = self.mode
            && entry_password.is_none_or(|p| p.is_absent() || p.is_empty())
            && !plain_key
        {
            return Err(Error::Invalid(
                "a pem store writes the key encrypted: a non-empty entry password is required"
                    .into(),
            ));
        }
        let lock = self.lock()?;
        let existing = self.current(&lock, options.create)?;
        match self.mode {
            PemMode::KeyEntry { .. } => {
                // One entry per store: adding to a store that holds one is an overwrite of it,
                // and only allowed under its own alias.
                if let Some(current) = existing.first()
                    && (current.alias != new_alias || !options.overwrite)
                {
                    return Err(Error::AliasExists {
                        alias: current.alias.clone(),
                    });
                }
                self.commit_entry(&lock, (&new_alias, identity, entry_password))?;
            }
            PemMode::TrustOnly => {
                if existing.iter().any(|e| e.alias == new_alias) && !options.overwrite {
                    return Err(Error::AliasExists { alias: new_alias });
                }
                let mut kept: Vec<(&str, &Certificate)> = existing
                    .iter()
                    .filter(|e| e.alias != new_alias)
                    .filter_map(|e| Some((e.alias.as_str(), e.leaf()?)))
                    .collect();
                kept.push((&new_alias, identity.leaf()));
                self.commit_trusted(&lock, &kept)?;
            }
        }
        Ok(new_alias)
    }

    fn remove(&self, alias: &str) -> Result<()> {
        let lock = self.lock()?;
        let existing = self.read(&lock)?;
        if !existing.iter().any(|e| e.alias == alias) {
            return Err(Error::AliasNotFound {
                alias: alias.to_string(),
            });
        }
        match self.mode {
            // The one entry goes, and with it the store's files: empty files would read as a
            // broken store to every other tool (the lock file stays, as always).
            PemMode::KeyEntry { .. } => lock.remove(&self.files(), &self.write),
            PemMode::TrustOnly => {
                let kept: Vec<(&str, &Certificate)> = existing
                    .iter()
                    .filter(|e| e.alias != alias)
                    .filter_map(|e| Some((e.alias.as_str(), e.leaf()?)))
                    .collect();
                self.commit_trusted(&lock, &kept)
            }
        }
    }

    /// A trust-only PEM store takes trusted certificates; a key-entry store does not.
    fn add_trusted(
        &self,
        alias: &str,
        certificate: &Certificate,
        options: AddOptions,
    ) -> Result<String> {
        if !matches!(self.mode, PemMode::TrustOnly) {
            return Err(Error::Invalid(
                "this pem store holds a key entry; trusted certificates go into a trust-only pem store"
                    .into(),
            ));
        }
        crate::pem::alias_header(Some(alias))?;
        let lock = self.lock()?;
        let existing = self.current(&lock, options.create)?;
        if existing.iter().any(|e| e.alias == alias) && !options.overwrite {
            return Err(Error::AliasExists {
                alias: alias.to_string(),
            });
        }
        let mut kept: Vec<(&str, &Certificate)> = existing
            .iter()
            .filter(|e| e.alias != alias)
            .filter_map(|e| Some((e.alias.as_str(), e.leaf()?)))
            .collect();
        kept.push((alias, certificate));
        self.commit_trusted(&lock, &kept)?;
        Ok(alias.to_string())
    }

    /// Trust-only stores rename a certificate's alias; a key-entry store's alias is its one
    /// entry's, renamed by adding it again under the new alias.
    fn rename(&self, from: &str, to: &str) -> Result<()> {
        if !matches!(self.mode, PemMode::TrustOnly) {
            return Err(Error::Unsupported {
                what:
                    "renaming the entry of a pem key-entry store (add it again under the new alias)"
                        .into(),
                oid: None,
            });
        }
        crate::pem::alias_header(Some(to))?;
        let lock = self.lock()?;
        let existing = self.read(&lock)?;
        if !existing.iter().any(|e| e.alias == from) {
            return Err(Error::AliasNotFound {
                alias: from.to_string(),
            });
        }
        if from != to && existing.iter().any(|e| e.alias == to) {
            return Err(Error::AliasExists {
                alias: to.to_string(),
            });
        }
        let kept: Vec<(&str, &Certificate)> = existing
            .iter()
            .filter_map(|e| {
                let alias = if e.alias == from {
                    to
                } else {
                    e.alias.as_str()
                };
                Some((alias, e.leaf()?))
            })
            .collect();
        self.commit_trusted(&lock, &kept)
    }
}
