//! Certificate stores: files that hold keys and chains under aliases, changed only through
//! crash-safe transactions.
//!
//! [`StoreAdapter`] is the interface the catalog (and third-party tools) use; [`pem::PemStore`],
//! [`pkcs12::Pkcs12Store`] and [`jks::JksStore`] implement it. Every change takes the
//! store's lock, reads the current file, changes it in memory and commits it through
//! [`fs::StoreLock::commit`]; any failure leaves the files byte-for-byte as they were.

pub mod fs;
pub mod jks;
pub mod pem;
pub mod pkcs12;

use std::fmt;

use crate::cert::Certificate;
use crate::error::Result;
use crate::identity::Identity;
use crate::secret::Password;

/// Whether a store type holds private keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PrivateKeyPolicy {
    /// Certificates only (trust stores).
    Forbidden,
    /// Entries may have a key.
    Optional,
    /// Every entry has a key.
    Required,
}

/// Whether a store type protects each key with its own password.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EntryPasswordPolicy {
    /// Keys are protected by the store password (PKCS#12) or not at all.
    Unsupported,
    /// A per-entry password may be given (JKS: defaults to the store password).
    Optional,
    /// A per-entry password must be given (PEM: the key is written encrypted).
    Required,
}

/// What a store type supports, as Keyfactor store types declare it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Capabilities {
    /// Private keys forbidden, optional or required.
    pub private_keys: PrivateKeyPolicy,
    /// Entry passwords unsupported, optional or required.
    pub entry_password: EntryPasswordPolicy,
    /// The store needs a store password.
    pub store_password_required: bool,
    /// The store holds more than one entry.
    pub multiple_entries: bool,
    /// Callers choose aliases (otherwise the alias is derived, e.g. a thumbprint).
    pub custom_alias: bool,
}

/// One entry found by [`StoreAdapter::inventory`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct InventoryEntry {
    /// The alias, as stored.
    pub alias: String,
    /// Leaf first, then its chain as stored.
    pub chain: Vec<Certificate>,
    /// Whether the entry has a private key.
    pub has_private_key: bool,
}

impl InventoryEntry {
    /// The entry's leaf certificate.
    pub fn leaf(&self) -> Option<&Certificate> {
        self.chain.first()
    }
}

/// How [`StoreAdapter::add`] treats existing state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct AddOptions {
    /// Replace an existing entry under the same alias (otherwise that is an error).
    pub overwrite: bool,
    /// Create the store when it does not exist (otherwise that is an error).
    pub create: bool,
}

impl AddOptions {
    /// Options with `overwrite` and `create` as given.
    pub fn new(overwrite: bool, create: bool) -> Self {
        AddOptions { overwrite, create }
    }
}

/// A certificate store. Implementations serialise changes with a lock and make each change
/// all-or-nothing; third-party store types implement this to be driven by the catalog.
pub trait StoreAdapter: Send + Sync + fmt::Debug {
    /// The store type's name (`pem`, `pkcs12`, `jks`).
    fn store_type(&self) -> &'static str;

    /// What this store supports.
    fn capabilities(&self) -> Capabilities;

    /// Whether the store's file exists.
    fn exists(&self) -> bool;

    /// Every entry in the store.
    ///
    /// # Errors
    /// [`crate::Error::StoreNotFound`] when the store does not exist; the format's read errors
    /// (e.g. a wrong store password).
    fn inventory(&self) -> Result<Vec<InventoryEntry>>;

    /// Puts `identity` (key and chain) under `alias` and returns the alias used (stores without
    /// custom aliases derive one; `None` asks for the derived alias). `entry_password` protects
    /// the key where the store type supports it.
    ///
    /// # Errors
    /// [`crate::Error::AliasExists`] without `overwrite`, [`crate::Error::StoreNotFound`]
    /// without `create`, [`crate::Error::Invalid`] for a missing required entry password, and
    /// the format's read/write errors. On error the store is unchanged.
    fn add(
        &self,
        alias: Option<&str>,
        identity: &Identity,
        entry_password: Option<&Password>,
        options: AddOptions,
    ) -> Result<String>;

    /// Removes the entry under `alias`.
    ///
    /// # Errors
    /// [`crate::Error::AliasNotFound`] when it is not there; the format's errors. On error the
    /// store is unchanged.
    fn remove(&self, alias: &str) -> Result<()>;

    /// Puts a trusted certificate, without a key, under `alias` (keytool's `-importcert`) and
    /// returns the alias used.
    ///
    /// # Errors
    /// [`crate::Error::Unsupported`] for store types that hold no trusted certificates (the
    /// default); otherwise as [`StoreAdapter::add`].
    fn add_trusted(
        &self,
        alias: &str,
        certificate: &Certificate,
        options: AddOptions,
    ) -> Result<String> {
        let _ = (alias, certificate, options);
        Err(crate::Error::Unsupported {
            what: format!("trusted certificates in a {} store", self.store_type()),
            oid: None,
        })
    }

    /// Moves the entry under `from` to `to` (keytool's `-changealias`).
    ///
    /// # Errors
    /// [`crate::Error::AliasNotFound`] when `from` is not there, [`crate::Error::AliasExists`]
    /// when `to` is; [`crate::Error::Unsupported`] for store types whose aliases are derived (the
    /// default). On error the store is unchanged.
    fn rename(&self, from: &str, to: &str) -> Result<()> {
        let _ = (from, to);
        Err(crate::Error::Unsupported {
            what: format!("renaming entries of a {} store", self.store_type()),
            oid: None,
        })
    }

    /// Rewrites the store under a new store password (keytool's `-storepasswd`); JKS key
    /// entries keep their own key passwords.
    ///
    /// # Errors
    /// [`crate::Error::Unsupported`] for store types without a store password (the default);
    /// the format's read and write errors. On error the store is unchanged.
    fn change_store_password(&self, new_password: &Password) -> Result<()> {
        let _ = new_password;
        Err(crate::Error::Unsupported {
            what: format!("a store password for a {} store", self.store_type()),
            oid: None,
        })
    }

    /// Re-protects the key of the entry under `alias` with `new_key_password` (keytool's
    /// `-keypasswd`), for store types whose entries have their own key passwords. Every other
    /// entry is kept as it was.
    ///
    /// # Errors
    /// [`crate::Error::AliasNotFound`] when `alias` is not there, [`crate::Error::Invalid`]
    /// when it is not a key entry, [`crate::Error::WrongPassword`] when its key does not decrypt
    /// under `key_password`; [`crate::Error::Unsupported`] for store types without per-entry key
    /// passwords (the default); the format's read and write errors. On error the store is
    /// unchanged.
    fn change_key_password(
        &self,
        alias: &str,
        key_password: &Password,
        new_key_password: &Password,
    ) -> Result<()> {
        let _ = (alias, key_password, new_key_password);
        Err(crate::Error::Unsupported {
            what: format!("per-entry key passwords in a {} store", self.store_type()),
            oid: None,
        })
    }
}

/// The store types pfxkit implements.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StoreType {
    /// PEM files: one key entry or trust-only.
    Pem,
    /// One PKCS#12 file.
    Pkcs12,
    /// One Java keystore (JKS).
    Jks,
}

impl StoreType {
    /// The type's name: `pem`, `pkcs12`, `jks`.
    pub fn name(self) -> &'static str {
        match self {
            StoreType::Pem => "pem",
            StoreType::Pkcs12 => "pkcs12",
            StoreType::Jks => "jks",
        }
    }
}

impl fmt::Display for StoreType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for StoreType {
    type Err = crate::Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "pem" => Ok(StoreType::Pem),
            "pkcs12" => Ok(StoreType::Pkcs12),
            "jks" => Ok(StoreType::Jks),
            other => Err(crate::Error::Invalid(format!(
                "unknown store type '{other}' (expected pem, pkcs12 or jks)"
            ))),
        }
    }
}

/// Where a store is and how it is opened.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct StoreSpec {
    /// The type.
    pub store_type: StoreType,
    /// The store's (certificate) file.
    pub path: std::path::PathBuf,
    /// A PEM store's separate key file.
    pub key_path: Option<std::path::PathBuf>,
    /// The store password (PKCS#12, JKS).
    pub store_password: Option<Password>,
    /// How files are written.
    pub write: fs::WriteOptions,
    /// A PEM store that writes its key unencrypted when no entry password is given (see
    /// [`pem::PemStore::allow_plain_key`]); ignored by other types.
    pub plain_key: bool,
}

impl StoreSpec {
    /// A spec for a store of `store_type` at `path`.
    pub fn new(store_type: StoreType, path: impl Into<std::path::PathBuf>) -> Self {
        StoreSpec {
            store_type,
            path: path.into(),
            key_path: None,
            store_password: None,
            write: fs::WriteOptions::default(),
            plain_key: false,
        }
    }

    /// Allowing a PEM store's key to be written unencrypted (nginx, HAProxy): only when the
    /// store was registered so, never by omission.
    #[must_use]
    pub fn plain_key(mut self, plain_key: bool) -> Self {
        self.plain_key = plain_key;
        self
    }

    /// With a separate key file (PEM).
    #[must_use]
    pub fn key_path(mut self, key_path: Option<std::path::PathBuf>) -> Self {
        self.key_path = key_path;
        self
    }

    /// With a store password.
    #[must_use]
    pub fn store_password(mut self, password: Option<Password>) -> Self {
        self.store_password = password;
        self
    }

    /// With write options (backups, fault injection).
    #[must_use]
    pub fn write_options(mut self, write: fs::WriteOptions) -> Self {
        self.write = write;
        self
    }
}

/// Opens the adapter for a store.
///
/// # Errors
/// [`crate::Error::Invalid`] when a store password is required but missing, or a key path is
/// given for a type that has none or names the certificate file itself.
pub fn open(spec: &StoreSpec) -> Result<Box<dyn StoreAdapter>> {
    let need_password = || {
        spec.store_password.clone().ok_or_else(|| {
            crate::Error::Invalid(format!(
                "a {} store needs a store password",
                spec.store_type
            ))
        })
    };
    if spec.key_path.is_some() && spec.store_type != StoreType::Pem {
        return Err(crate::Error::Invalid(format!(
            "a {} store has no separate key file",
            spec.store_type
        )));
    }
    Ok(match spec.store_type {
        StoreType::Pem => {
            let mut store = pem::PemStore::new(&spec.path).write_options(spec.write.clone());
            if let Some(k) = &spec.key_path {
                store = store.key_path(k);
            }
            if spec.plain_key {
                store = store.allow_plain_key();
            }
            store.check_paths()?;
            Box::new(store)
        }
        StoreType::Pkcs12 => Box::new(
            pkcs12::Pkcs12Store::new(&spec.path, need_password()?)
                .write_options(spec.write.clone()),
        ),
        StoreType::Jks => Box::new(
            jks::JksStore::new(&spec.path, need_password()?).write_options(spec.write.clone()),
        ),
    })
}

/// The refusal to overwrite a trusted-certificate entry with a key entry: that turns a trust
/// anchor into a key entry, a change the caller has to ask for by removing the alias first.
fn trusted_not_key(alias: &str) -> crate::Error {
    crate::Error::Invalid(format!(
        "alias '{alias}' is a trusted-certificate entry: overwriting it with a key entry would \
         turn a trust anchor into a key entry; remove the alias first if that is what you want"
    ))
}
