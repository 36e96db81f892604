//! The `jks` store: many key and trusted entries in one Java keystore (JKS, or JCEKS when the
//! existing file is one) under a store password, each key under its own key password (by
//! default the store password, as keytool does).
//!
//! A rewrite keeps every entry it does not change byte-for-byte protected as it was, so keys
//! whose passwords pfxkit was never given survive.

use std::path::PathBuf;

use super::fs::{StoreLock, WriteOptions};
use super::{
    AddOptions, Capabilities, EntryPasswordPolicy, InventoryEntry, PrivateKeyPolicy, StoreAdapter,
};
use crate::cert::Certificate;
use crate::error::{Error, Result};
use crate::identity::Identity;
use crate::jks::{self, Entry, Keystore, KeystoreKind, WriteEntry};
use crate::limits::Limits;
use crate::random::{OsRandom, RandomSource};
use crate::secret::Password;

/// A Java keystore certificate store.
#[derive(Clone, Debug)]
pub struct JksStore {
    path: PathBuf,
    store_password: Password,
    write: WriteOptions,
    limits: Limits,
}

impl JksStore {
    /// A store at `path` protected by `store_password`. A new store is written as JKS; an
    /// existing JCEKS file stays JCEKS.
    pub fn new(path: impl Into<PathBuf>, store_password: Password) -> Self {
        JksStore {
            path: path.into(),
            store_password,
            write: WriteOptions::default(),
            limits: Limits::default(),
        }
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

    fn read(&self, lock: &StoreLock) -> Result<Keystore> {
        let path = lock.file(&self.path);
        if !path.exists() {
            return Err(Error::StoreNotFound {
                path: self.path.clone(),
            });
        }
        let bytes = self.limits.read_file(path)?;
        jks::read(&bytes, &self.store_password, &self.limits)
    }

    /// Writes `kept` (entries as read) plus an optional new key entry.
    fn write(
        &self,
        lock: &StoreLock,
        kind: KeystoreKind,
        kept: &[Entry],
        new: Option<(&str, &Identity, &Password)>,
    ) -> Result<()> {
        let mut entries = Self::kept(kept, None);
        if let Some((alias, identity, key_password)) = new {
            entries.push(WriteEntry::PrivateKey {
                alias,
                identity,
                key_password,
            });
        }
        self.commit(lock, kind, &entries, &self.store_password)
    }

    /// The entries as read, to be written back as they are (`renamed`: one alias changed).
    fn kept<'a>(kept: &'a [Entry], renamed: Option<(&str, &'a str)>) -> Vec<WriteEntry<'a>> {
        let alias_of = |alias: &'a str| match renamed {
            Some((from, to)) if alias.to_lowercase() == from => to,
            _ => alias,
        };
        kept.iter()
            .map(|e| match e {
                Entry::PrivateKey(k) => WriteEntry::ProtectedKey {
                    alias: alias_of(k.alias()),
                    encrypted_key: k.encrypted_key_der(),
                    chain: k.chain(),
                    created_millis: k.created_millis(),
                },
                Entry::Trusted(t) => WriteEntry::Trusted {
                    alias: alias_of(t.alias()),
                    certificate: t.certificate(),
                },
                // Kept sealed, byte for byte: pfxkit never needs their password.
                Entry::SecretKey(s) => WriteEntry::SecretKey {
                    alias: alias_of(s.alias()),
                    sealed: s.sealed_object(),
                    created_millis: s.created_millis(),
                },
            })
            .collect()
    }

    fn commit(
        &self,
        lock: &StoreLock,
        kind: KeystoreKind,
        entries: &[WriteEntry<'_>],
        store_password: &Password,
    ) -> Result<()> {
        let now = crate::cert::now_millis();
        let mut rng = OsRandom;
        let bytes = jks::write_with(kind, entries, store_password, now, &mut |b| rng.fill(b))?;
        lock.commit(&[(self.path.as_path(), &bytes)], &self.write)
    }
}

impl StoreAdapter for JksStore {
    fn store_type(&self) -> &'static str {
        "jks"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            private_keys: PrivateKeyPolicy::Optional,
            entry_password: EntryPasswordPolicy::Optional,
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
        Ok(self
            .read(&lock)?
            .entries()
            .iter()
            .filter_map(|e| match e {
                Entry::PrivateKey(k) => Some(InventoryEntry {
                    alias: k.alias().to_string(),
                    chain: k.chain().to_vec(),
                    has_private_key: true,
                }),
                Entry::Trusted(t) => Some(InventoryEntry {
                    alias: t.alias().to_string(),
                    chain: vec![t.certificate().clone()],
                    has_private_key: false,
                }),
                // An inventory lists certificates; a secret key has none.
                Entry::SecretKey(_) => None,
            })
            .collect())
    }

    fn add(
        &self,
        alias: Option<&str>,
        identity: &Identity,
        entry_password: Option<&Password>,
        options: AddOptions,
    ) -> Result<String> {
        let alias = alias
            .or(identity.alias())
            .ok_or_else(|| Error::Invalid("a jks store entry needs an alias".into()))?
            .to_lowercase();
        let key_password = entry_password.unwrap_or(&self.store_password);
        let lock = self.lock()?;
        let (kind, mut entries) = match self.read(&lock) {
            Ok(store) => (store.kind(), store.into_entries()),
            Err(Error::StoreNotFound { .. }) if options.create => (KeystoreKind::Jks, Vec::new()),
            Err(e) => return Err(e),
        };
        let existing = entries.iter().find(|e| e.alias().to_lowercase() == alias);
        match existing {
            Some(_) if !options.overwrite => return Err(Error::AliasExists { alias }),
            // An overwrite replaces a key entry with a key entry; turning a trust anchor into
            // a key entry is a different change, which the caller has to ask for by removing
            // it first.
            Some(Entry::Trusted(_)) => return Err(super::trusted_not_key(&alias)),
            _ => {}
        }
        entries.retain(|e| e.alias().to_lowercase() != alias);
        self.write(
            &lock,
            kind,
            &entries,
            Some((&alias, identity, key_password)),
        )?;
        Ok(alias)
    }

    fn remove(&self, alias: &str) -> Result<()> {
        let lock = self.lock()?;
        let store = self.read(&lock)?;
        let kind = store.kind();
        let mut entries = store.into_entries();
        let before = entries.len();
        let wanted = alias.to_lowercase();
        entries.retain(|e| e.alias().to_lowercase() != wanted);
        if entries.len() == before {
            return Err(Error::AliasNotFound {
                alias: alias.to_string(),
            });
        }
        self.write(&lock, kind, &entries, None)
    }

    fn add_trusted(
        &self,
        alias: &str,
        certificate: &Certificate,
        options: AddOptions,
    ) -> Result<String> {
        let alias = alias.to_lowercase();
        let lock = self.lock()?;
        let (kind, mut entries) = match self.read(&lock) {
            Ok(store) => (store.kind(), store.into_entries()),
            Err(Error::StoreNotFound { .. }) if options.create => (KeystoreKind::Jks, Vec::new()),
            Err(e) => return Err(e),
        };
        let before = entries.len();
        entries.retain(|e| e.alias().to_lowercase() != alias);
        if entries.len() != before && !options.overwrite {
            return Err(Error::AliasExists { alias });
        }
        let mut writes = Self::kept(&entries, None);
        writes.push(WriteEntry::Trusted {
            alias: &alias,
            certificate,
        });
        self.commit(&lock, kind, &writes, &self.store_password)?;
        Ok(alias)
    }

    fn rename(&self, from: &str, to: &str) -> Result<()> {
        let (from, to) = (from.to_lowercase(), to.to_lowercase());
        let lock = self.lock()?;
        let store = self.read(&lock)?;
        let kind = store.kind();
        let entries = store.into_entries();
        if !entries.iter().any(|e| e.alias().to_lowercase() == from) {
            return Err(Error::AliasNotFound { alias: from });
        }
        if from != to && entries.iter().any(|e| e.alias().to_lowercase() == to) {
            return Err(Error::AliasExists { alias: to });
        }
        let writes = Self::kept(&entries, Some((&from, &to)));
        self.commit(&lock, kind, &writes, &self.store_password)
    }

    fn change_key_password(
        &self,
        alias: &str,
        key_password: &Password,
        new_key_password: &Password,
    ) -> Result<()> {
        let wanted = alias.to_lowercase();
        let lock = self.lock()?;
        let store = self.read(&lock)?;
        let kind = store.kind();
        let entries = store.into_entries();
        let index = entries
            .iter()
            .position(|e| e.alias().to_lowercase() == wanted)
            .ok_or_else(|| Error::AliasNotFound {
                alias: alias.to_string(),
            })?;
        let Some(Entry::PrivateKey(key)) = entries.get(index) else {
            return Err(Error::Invalid(format!(
                "entry '{wanted}' holds no private key, so it has no key password"
            )));
        };
        // Decrypting under the old password is the proof the caller may re-protect the key;
        // the identity check also refuses to rewrite an entry whose key is not its leaf's.
        let identity = key.identity(key_password, &self.limits)?;
        let mut writes = Self::kept(&entries, None);
        // In place, so the entry keeps its position in the file (keytool's order).
        if let Some(slot) = writes.get_mut(index) {
            *slot = WriteEntry::PrivateKey {
                alias: key.alias(),
                identity: &identity,
                key_password: new_key_password,
            };
        }
        self.commit(&lock, kind, &writes, &self.store_password)
    }

    fn change_store_password(&self, new_password: &Password) -> Result<()> {
        let lock = self.lock()?;
        let store = self.read(&lock)?;
        let kind = store.kind();
        let entries = store.into_entries();
        let writes = Self::kept(&entries, None);
        self.commit(&lock, kind, &writes, new_password)
    }
}
