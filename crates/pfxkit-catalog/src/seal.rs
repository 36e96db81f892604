//! Secrets at rest: AES-256-GCM under the catalog key, a 32-byte file created 0600 by
//! `catalog init`. Each sealed value is bound to what it is (its label is the AEAD's associated
//! data), so a sealed key cannot be swapped for another row's.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use zeroize::Zeroizing;

use crate::error::{Error, Result};

const NONCE_LEN: usize = 12;
const VERSION: u8 = 1;

/// The catalog key. Zeroized on drop, redacted in `Debug`.
pub struct CatalogKey(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for CatalogKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CatalogKey([redacted])")
    }
}

impl CatalogKey {
    /// Creates a new random key file (0600); fails if it exists.
    ///
    /// # Errors
    /// [`Error::Codec`] (I/O) when the file exists or cannot be written.
    pub fn create(path: &Path) -> Result<Self> {
        let mut key = Zeroizing::new([0u8; 32]);
        getrandom::fill(key.as_mut_slice())
            .map_err(|e| Error::io(path, std::io::Error::other(e.to_string())))?;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| Error::io(path, e))?;
        file.write_all(key.as_slice())
            .map_err(|e| Error::io(path, e))?;
        file.sync_all().map_err(|e| Error::io(path, e))?;
        Ok(CatalogKey(key))
    }

    /// Loads the key file.
    ///
    /// # Errors
    /// [`Error::Codec`] (I/O) when it cannot be read; [`Error::Codec`] (malformed) when it is not 32 bytes.
    pub fn load(path: &Path) -> Result<Self> {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)
            .map_err(|e| Error::io(path, e))?
            .permissions()
            .mode();
        // Whoever reads the key reads every sealed secret: a key others may read (or write) is
        // refused, not used.
        if mode & 0o077 != 0 {
            return Err(Error::Invalid(format!(
                "catalog key {} is accessible to others (mode {:03o}); it must be 0600 (chmod 600)",
                path.display(),
                mode & 0o777
            )));
        }
        let bytes = Zeroizing::new(std::fs::read(path).map_err(|e| Error::io(path, e))?);
        let key: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
            Error::malformed(
                "catalog key file",
                format!("{} bytes, expected 32", bytes.len()),
            )
        })?;
        Ok(CatalogKey(Zeroizing::new(key)))
    }

    /// Seals `plaintext` under `label`: version ‖ nonce ‖ ciphertext+tag.
    ///
    /// # Errors
    /// [`Error::Codec`] (I/O) when the OS generator fails.
    pub fn seal(&self, label: &str, plaintext: &[u8]) -> Result<Vec<u8>> {
        let cipher = Aes256Gcm::new_from_slice(self.0.as_slice())
            .map_err(|_| Error::Invalid("catalog key length".into()))?;
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|e| Error::io_other(e.to_string()))?;
        let ct = cipher
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: plaintext,
                    aad: label.as_bytes(),
                },
            )
            .map_err(|_| Error::Invalid("sealing failed".into()))?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + ct.len());
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        Ok(out)
    }

    /// Opens a value sealed under `label`.
    ///
    /// # Errors
    /// [`Error::Codec`] (wrong password) when the value was altered, sealed under another label, or the
    /// key is not the catalog's; [`Error::Codec`] (malformed) for a truncated value.
    pub fn open(&self, label: &str, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        let (version, rest) = sealed
            .split_first()
            .ok_or_else(|| Error::malformed("sealed value", "empty"))?;
        if *version != VERSION || rest.len() < NONCE_LEN + 16 {
            return Err(Error::malformed(
                "sealed value",
                "unknown version or truncated",
            ));
        }
        let (nonce, ct) = rest.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce
            .try_into()
            .map_err(|_| Error::malformed("sealed value", "nonce"))?;
        let cipher = Aes256Gcm::new_from_slice(self.0.as_slice())
            .map_err(|_| Error::Invalid("catalog key length".into()))?;
        cipher
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: ct,
                    aad: label.as_bytes(),
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| {
                Error::wrong_password(format!(
                    "sealed {label} (altered, or another catalog's key)"
                ))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_under_their_label_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let key = CatalogKey::create(&dir.path().join("k")).unwrap();
        let sealed = key.seal("staged-key:1", b"secret").unwrap();
        assert_eq!(
            key.open("staged-key:1", &sealed).unwrap().as_slice(),
            b"secret"
        );
        assert!(key.open("staged-key:2", &sealed).is_err());
        let other = CatalogKey::create(&dir.path().join("k2")).unwrap();
        assert!(other.open("staged-key:1", &sealed).is_err());
        let mut tampered = sealed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert!(key.open("staged-key:1", &tampered).is_err());
        assert!(!sealed.windows(6).any(|w| w == b"secret"));
    }
}
