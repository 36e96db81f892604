//! The JKS and JCEKS codec: Java's proprietary keystores.
//!
//! Reads JKS (versions 1 and 2) and JCEKS: private-key entries protected with Sun's JKS key
//! protector or `PBEWithMD5AndTripleDES`, trusted-certificate entries, and JCEKS secret-key
//! entries (a sealed Java object, read by a bounded Java-serialization reader). Writes both formats
//! with the protection Java itself uses. The byte layout is in `specs/jks.md`; the authority is
//! OpenJDK's `JavaKeyStore.java` and `JceKeyStore.java`.
//!
//! ```text
//! magic    u32  FEEDFEED (JKS) | CECECECE (JCEKS)
//! version  u32  1 | 2
//! count    i32
//! entries  tag i32 ‖ alias (modified UTF-8) ‖ created i64 ‖ tag-specific body
//! digest   SHA-1(UTF-16BE(store password) ‖ "Mighty Aphrodite" ‖ every byte before it)
//! ```
//!
//! [`read`] checks the store digest before it trusts anything else; [`read_unverified`] is the
//! separately named call that lists a store without its password, as Java does when it is given
//! none. Private keys stay encrypted in a [`KeyEntry`] until [`KeyEntry::decrypt`] is called
//! with the key password.
//!
//! ```no_run
//! use pfxkit::{Limits, Password, jks};
//!
//! let bytes = std::fs::read("server.jks")?;
//! let store = jks::read(&bytes, &Password::new("changeit"), &Limits::default())?;
//! for entry in store.entries() {
//!     if let jks::Entry::PrivateKey(key) = entry {
//!         let identity = key.identity(&Password::new("changeit"), &Limits::default())?;
//!         println!("{}: {}", key.alias(), identity.leaf().subject());
//!     }
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod mutf8;
mod protect;
mod read;
mod serial;
mod write;

pub use protect::{JCEKS_MAX_ITERATIONS, KeyProtection};
pub use read::{read, read_unverified};
pub use write::{JCEKS_WRITE_ITERATIONS, WriteEntry, write, write_with};

use crate::cert::Certificate;
use crate::error::{Error, Result};
use crate::identity::Identity;
use crate::limits::{Limits, WorkBudget};
use crate::secret::{Password, PrivateKey};

/// Magic number of a JKS file.
const JKS_MAGIC: u32 = 0xFEED_FEED;
/// Magic number of a JCEKS file.
const JCEKS_MAGIC: u32 = 0xCECE_CECE;
/// The salt Sun mixes into the store digest, after the password.
const DIGEST_WHITENER: &[u8] = b"Mighty Aphrodite";
/// Length of the store digest (SHA-1).
const DIGEST_LEN: usize = 20;

/// Which of Java's two proprietary keystore formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeystoreKind {
    /// `JKS` (magic `FEEDFEED`): Sun's original keystore.
    Jks,
    /// `JCEKS` (magic `CECECECE`): the JCE keystore, with stronger (3DES) key protection.
    Jceks,
}

impl KeystoreKind {
    /// Java's name for the store type, as `keytool -storetype` takes it.
    pub fn name(self) -> &'static str {
        match self {
            KeystoreKind::Jks => "JKS",
            KeystoreKind::Jceks => "JCEKS",
        }
    }

    fn magic(self) -> u32 {
        match self {
            KeystoreKind::Jks => JKS_MAGIC,
            KeystoreKind::Jceks => JCEKS_MAGIC,
        }
    }
}

/// Recognises a JKS or JCEKS file by its magic number (nothing else is checked).
pub fn detect(bytes: &[u8]) -> Option<KeystoreKind> {
    let magic = u32::from_be_bytes(bytes.get(..4)?.try_into().ok()?);
    match magic {
        JKS_MAGIC => Some(KeystoreKind::Jks),
        JCEKS_MAGIC => Some(KeystoreKind::Jceks),
        _ => None,
    }
}

/// A keystore as read from a file: its entries in file order, each alias as stored.
#[derive(Clone, Debug)]
pub struct Keystore {
    kind: KeystoreKind,
    version: u32,
    entries: Vec<Entry>,
    digest_verified: bool,
    warnings: Vec<String>,
}

impl Keystore {
    /// JKS or JCEKS.
    pub fn kind(&self) -> KeystoreKind {
        self.kind
    }

    /// The format version in the header (1 or 2).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// The entries in file order. When an alias occurs more than once, only the last entry is
    /// kept (as Java does), at the position of that last occurrence; see [`Keystore::warnings`].
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The entries, by value.
    pub fn into_entries(self) -> Vec<Entry> {
        self.entries
    }

    /// Whether the store digest was checked against a store password ([`read`]), as opposed to
    /// not checked at all ([`read_unverified`]).
    pub fn digest_verified(&self) -> bool {
        self.digest_verified
    }

    /// Things about the file worth telling a person that did not stop it from loading:
    /// duplicate aliases, aliases that differ only in case, unpaired surrogates in aliases,
    /// bytes after the digest.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Decrypts every key entry's key with `key_password`, in entry order: one result per key
    /// entry (a wrong password or an undecryptable algorithm fails that entry only).
    ///
    /// The work of all of them — JCEKS iterations, triple DES — is summed and checked against
    /// [`Limits::max_total_iterations`] and [`Limits::max_work`] before any key is decrypted:
    /// one entry's bound alone would let a file of thousands of entries spin for hours.
    ///
    /// # Errors
    /// [`Error::LimitExceeded`] when the total exceeds a limit (nothing is decrypted then).
    pub fn decrypt_keys(
        &self,
        key_password: &Password,
        limits: &Limits,
    ) -> Result<Vec<Result<PrivateKey>>> {
        self.decrypt_keys_within(key_password, &mut WorkBudget::new(limits))
    }

    fn decrypt_keys_within(
        &self,
        key_password: &Password,
        budget: &mut WorkBudget<'_>,
    ) -> Result<Vec<Result<PrivateKey>>> {
        let keys: Vec<&KeyEntry> = self
            .entries
            .iter()
            .filter_map(|e| match e {
                Entry::PrivateKey(k) => Some(k),
                _ => None,
            })
            .collect();
        for k in &keys {
            let iterations = match k.protection {
                KeyProtection::PbeWithMd5AndTripleDes { iterations } => u64::from(iterations),
                KeyProtection::Jks | KeyProtection::Other { .. } => 0,
            };
            let work = k.decryption_work();
            if iterations > 0 {
                budget.charge_kdf(iterations, work)?;
            } else {
                budget.charge_work(work)?;
            }
        }
        Ok(keys
            .iter()
            .map(|k| k.decrypt(key_password, budget.limits()))
            .collect())
    }

    /// Every key entry as an identity (key proven to belong to its leaf), in entry order. The
    /// decryptions and proofs together are held to [`Limits::max_work`], checked before each
    /// runs.
    ///
    /// # Errors
    /// The first entry's error from [`KeyEntry::identity`], or [`Error::LimitExceeded`].
    pub fn identities(&self, key_password: &Password, limits: &Limits) -> Result<Vec<Identity>> {
        let mut budget = WorkBudget::new(limits);
        let keys = self.decrypt_keys_within(key_password, &mut budget)?;
        let entries = self.entries.iter().filter_map(|e| match e {
            Entry::PrivateKey(k) => Some(k),
            _ => None,
        });
        entries
            .zip(keys)
            .map(|(entry, key)| {
                let key = key?;
                budget.charge_work(key.proof_work())?;
                entry.identity_from(key)
            })
            .collect()
    }

    /// Decrypts every JCEKS secret-key entry with `key_password`, in entry order: one result per
    /// secret-key entry. Their work is charged to one budget before any is decrypted, as for
    /// [`Keystore::decrypt_keys`].
    ///
    /// # Errors
    /// [`Error::LimitExceeded`] when the total exceeds a limit (nothing is decrypted then).
    pub fn decrypt_secret_keys(
        &self,
        key_password: &Password,
        limits: &Limits,
    ) -> Result<Vec<Result<SecretKey>>> {
        self.decrypt_secret_keys_within(key_password, &mut WorkBudget::new(limits))
    }

    /// [`Keystore::decrypt_keys`] and [`Keystore::decrypt_secret_keys`] under one budget: the
    /// work of every private and secret key of the store is charged before any is decrypted.
    ///
    /// # Errors
    /// [`Error::LimitExceeded`] when the total exceeds a limit (nothing is decrypted then).
    #[allow(clippy::type_complexity)]
    pub fn decrypt_all_keys(
        &self,
        key_password: &Password,
        limits: &Limits,
    ) -> Result<(Vec<Result<PrivateKey>>, Vec<Result<SecretKey>>)> {
        let mut budget = WorkBudget::new(limits);
        self.charge_secret_keys(&mut budget)?;
        let private = self.decrypt_keys_within(key_password, &mut budget)?;
        let secret = self.unseal_all(key_password, limits);
        Ok((private, secret))
    }

    fn decrypt_secret_keys_within(
        &self,
        key_password: &Password,
        budget: &mut WorkBudget<'_>,
    ) -> Result<Vec<Result<SecretKey>>> {
        self.charge_secret_keys(budget)?;
        Ok(self.unseal_all(key_password, budget.limits()))
    }

    fn charge_secret_keys(&self, budget: &mut WorkBudget<'_>) -> Result<()> {
        for entry in &self.entries {
            if let Entry::SecretKey(SecretKeyEntry { seal: Ok(seal), .. }) = entry {
                budget.charge_kdf(u64::from(seal.iterations), seal.work())?;
            }
        }
        Ok(())
    }

    fn unseal_all(&self, key_password: &Password, limits: &Limits) -> Vec<Result<SecretKey>> {
        let secrets: Vec<&SecretKeyEntry> = self
            .entries
            .iter()
            .filter_map(|e| match e {
                Entry::SecretKey(s) => Some(s),
                _ => None,
            })
            .collect();
        secrets
            .iter()
            .map(|s| s.decrypt(key_password, limits))
            .collect()
    }

    /// The entry with this alias, compared case-insensitively (Java lower-cases aliases when it
    /// looks them up). When several match, an entry stored in lower case wins (that is the one
    /// Java finds), otherwise the last.
    pub fn get(&self, alias: &str) -> Option<&Entry> {
        let wanted = lower_alias(alias);
        self.entries
            .iter()
            .rev()
            .find(|e| e.alias() == wanted)
            .or_else(|| {
                self.entries
                    .iter()
                    .rev()
                    .find(|e| lower_alias(e.alias()) == wanted)
            })
    }
}

/// One keystore entry.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Entry {
    /// A private key (still encrypted) with its certificate chain (tag 1).
    PrivateKey(KeyEntry),
    /// A trusted certificate (tag 2).
    Trusted(TrustedEntry),
    /// A JCEKS secret key (tag 3), still sealed.
    SecretKey(SecretKeyEntry),
}

impl Entry {
    /// The alias as stored in the file (Java writes it lower-cased, other tools may not).
    pub fn alias(&self) -> &str {
        match self {
            Entry::PrivateKey(k) => &k.alias,
            Entry::Trusted(t) => &t.alias,
            Entry::SecretKey(s) => &s.alias,
        }
    }

    /// The creation time in milliseconds since the Unix epoch, as stored.
    pub fn created_millis(&self) -> i64 {
        match self {
            Entry::PrivateKey(k) => k.created_millis,
            Entry::Trusted(t) => t.created_millis,
            Entry::SecretKey(s) => s.created_millis,
        }
    }

    /// The key entry's leaf certificate (`None` for an empty chain or a secret key), or the
    /// trusted certificate.
    pub fn certificate(&self) -> Option<&Certificate> {
        match self {
            Entry::PrivateKey(k) => k.chain.first(),
            Entry::Trusted(t) => Some(&t.certificate),
            Entry::SecretKey(_) => None,
        }
    }
}

/// A private-key entry: the encrypted key and its certificate chain, leaf first.
#[derive(Clone, Debug)]
pub struct KeyEntry {
    alias: String,
    created_millis: i64,
    encrypted_key: Vec<u8>,
    protection: KeyProtection,
    chain: Vec<Certificate>,
}

impl KeyEntry {
    /// The alias as stored.
    pub fn alias(&self) -> &str {
        &self.alias
    }

    /// The creation time in milliseconds since the Unix epoch.
    pub fn created_millis(&self) -> i64 {
        self.created_millis
    }

    /// The certificate chain, leaf first (may be empty: Java allows it, though keytool then
    /// calls the entry a secret key).
    pub fn chain(&self) -> &[Certificate] {
        &self.chain
    }

    /// How the key is protected.
    pub fn protection(&self) -> &KeyProtection {
        &self.protection
    }

    /// The key as stored: a PKCS#8 `EncryptedPrivateKeyInfo` in DER.
    pub fn encrypted_key_der(&self) -> &[u8] {
        &self.encrypted_key
    }

    /// Decrypts the private key with the key password (which Java lets differ from the store
    /// password). JKS protection uses the password's UTF-16BE code units; JCEKS
    /// `PBEWithMD5AndTripleDES` its UTF-8 bytes.
    ///
    /// # Errors
    /// [`Error::WrongPassword`] when the key does not decrypt under `key_password`;
    /// [`Error::LimitExceeded`] when the JCEKS iteration count exceeds
    /// [`Limits::max_iterations`] or Java's own cap [`JCEKS_MAX_ITERATIONS`];
    /// [`Error::Unsupported`] for a protection algorithm other than the two Java uses;
    /// [`Error::Malformed`] when the decrypted key is not PKCS#8.
    pub fn decrypt(&self, key_password: &Password, limits: &Limits) -> Result<PrivateKey> {
        protect::decrypt(
            &self.encrypted_key,
            key_password,
            limits,
            &format!("key entry '{}'", self.alias),
        )
    }

    /// Decrypts the key and pairs it with the chain, proving that the key belongs to the leaf.
    /// The identity carries the alias as stored.
    ///
    /// # Errors
    /// Those of [`KeyEntry::decrypt`]; [`Error::Invalid`] when the chain is empty;
    /// [`Error::KeyMismatch`] when the key is not the leaf's; [`Error::Unsupported`] when pfxkit
    /// cannot compute the public half of the key's algorithm.
    pub fn identity(&self, key_password: &Password, limits: &Limits) -> Result<Identity> {
        self.identity_from(self.decrypt(key_password, limits)?)
    }

    /// [Work units](crate::limits::work) of decrypting this entry's key once.
    fn decryption_work(&self) -> u64 {
        use crate::limits::work;
        let len = self.encrypted_key.len();
        match self.protection {
            // A SHA-1 keystream (one hash per 20 bytes) and a SHA-1 check over the key.
            KeyProtection::Jks => (len as u64 / 20 + len as u64 / 64 + 4) * work::SHA256_BLOCK,
            // Two MD5 chains of `iterations` each, then triple DES over the key.
            KeyProtection::PbeWithMd5AndTripleDes { iterations } => (2 * u64::from(iterations) + 2)
                .saturating_mul(work::MD5_BLOCK)
                .saturating_add(work::per_kib(len, work::TRIPLE_DES_KIB)),
            KeyProtection::Other { .. } => 0,
        }
    }

    fn identity_from(&self, key: PrivateKey) -> Result<Identity> {
        let (leaf, rest) = self.chain.split_first().ok_or_else(|| {
            Error::Invalid(format!(
                "key entry '{}' has no certificate chain",
                self.alias
            ))
        })?;
        Ok(Identity::new(key, leaf.clone(), rest.to_vec())?.with_alias(self.alias.clone()))
    }
}

/// A trusted-certificate entry.
#[derive(Clone, Debug)]
pub struct TrustedEntry {
    alias: String,
    created_millis: i64,
    // Boxed: a parsed certificate is large, and `Entry` should not be.
    certificate: Box<Certificate>,
}

impl TrustedEntry {
    /// The alias as stored.
    pub fn alias(&self) -> &str {
        &self.alias
    }

    /// The creation time in milliseconds since the Unix epoch.
    pub fn created_millis(&self) -> i64 {
        self.created_millis
    }

    /// The trusted certificate.
    pub fn certificate(&self) -> &Certificate {
        &self.certificate
    }
}

/// A JCEKS secret-key entry: a `SealedObjectForKeyProtector` (Java serialization) whose
/// content, sealed with `PBEWithMD5AndTripleDES` under the key password, is the serialized key.
/// Kept byte for byte, so a rewritten store keeps it without knowing its password.
#[derive(Clone, Debug)]
pub struct SecretKeyEntry {
    alias: String,
    created_millis: i64,
    sealed: Vec<u8>,
    /// The sealing parameters, or why they cannot be used (an unknown sealing algorithm or
    /// object type: the entry is still listed and kept).
    seal: std::result::Result<Seal, String>,
}

/// What [`SecretKeyEntry::decrypt`] needs from the sealed object.
#[derive(Clone, Debug)]
struct Seal {
    params: Vec<u8>,
    ciphertext: Vec<u8>,
    iterations: u32,
}

impl Seal {
    /// [Work units](crate::limits::work) of unsealing once: two MD5 chains and triple DES.
    fn work(&self) -> u64 {
        use crate::limits::work;
        (2 * u64::from(self.iterations) + 2)
            .saturating_mul(work::MD5_BLOCK)
            .saturating_add(work::per_kib(self.ciphertext.len(), work::TRIPLE_DES_KIB))
    }
}

impl SecretKeyEntry {
    /// The alias as stored.
    pub fn alias(&self) -> &str {
        &self.alias
    }

    /// The creation time in milliseconds since the Unix epoch.
    pub fn created_millis(&self) -> i64 {
        self.created_millis
    }

    /// The entry body as stored: the Java serialization stream of the sealed key.
    pub fn sealed_object(&self) -> &[u8] {
        &self.sealed
    }

    /// Why the key cannot be unsealed whatever the password (an unknown sealing algorithm or
    /// object type), or `None` when it can be tried.
    pub fn unsupported_reason(&self) -> Option<&str> {
        self.seal.as_ref().err().map(String::as_str)
    }

    /// Unseals the key with the key password (its bytes, as for JCEKS private keys).
    ///
    /// # Errors
    /// [`Error::WrongPassword`] when the content does not decrypt to a serialized key;
    /// [`Error::Unsupported`] for a sealing algorithm or key class pfxkit does not read;
    /// [`Error::LimitExceeded`] for the iteration count ([`Limits::max_iterations`], Java's
    /// [`JCEKS_MAX_ITERATIONS`]) or nesting in the serialized key.
    pub fn decrypt(&self, key_password: &Password, limits: &Limits) -> Result<SecretKey> {
        let context = format!("secret key entry '{}'", self.alias);
        let seal = self.seal.as_ref().map_err(|reason| Error::Unsupported {
            what: format!("{context}: {reason}"),
            oid: None,
        })?;
        let plain = protect::unseal(
            &seal.params,
            &seal.ciphertext,
            key_password,
            limits,
            &context,
        )?;
        let depth = limits.max_depth.saturating_mul(4);
        let (value, end) = serial::read_stream(&plain, 0, depth, &context)
            .map_err(|_| Error::wrong_password(context.clone()))?;
        if end != plain.len() {
            return Err(Error::wrong_password(context));
        }
        read::secret_key_from(&value, &context)
    }
}

/// A secret (symmetric) key from a JCEKS store: its Java algorithm name and raw bytes,
/// zeroized on drop and redacted in `Debug`.
#[derive(Clone)]
pub struct SecretKey {
    algorithm: String,
    key: zeroize::Zeroizing<Vec<u8>>,
}

impl SecretKey {
    /// Java's algorithm name (`AES`, `DESede`, `HmacSHA256`, `PBEWithMD5AndDES`, …).
    pub fn algorithm(&self) -> &str {
        &self.algorithm
    }

    /// The key size in bits (its length in bytes times eight).
    pub fn bits(&self) -> usize {
        self.key.len() * 8
    }

    /// The raw key bytes. Named so that every use of secret material can be found.
    pub fn expose_secret_bytes(&self) -> &[u8] {
        &self.key
    }
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretKey")
            .field("algorithm", &self.algorithm)
            .field("key", &"[redacted]")
            .finish()
    }
}

/// Lower-cases an alias as Java does (`toLowerCase(Locale.ENGLISH)`: Unicode's default case
/// mapping, no Turkish dotless i).
fn lower_alias(alias: &str) -> String {
    alias.to_lowercase()
}

/// The store digest: `SHA-1(UTF-16BE(password) ‖ "Mighty Aphrodite" ‖ body)`.
fn store_digest(password: &Password, body: &[u8]) -> [u8; DIGEST_LEN] {
    use sha1::{Digest, Sha1};
    let mut h = Sha1::new();
    h.update(password.utf16be_bytes().as_slice());
    h.update(DIGEST_WHITENER);
    h.update(body);
    h.finalize().into()
}
