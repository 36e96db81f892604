//! Writing JKS and JCEKS files as keytool does: version 2, aliases lower-cased, certificates
//! typed `X.509`, keys under the format's own protection.

use std::collections::HashSet;

use super::{KeystoreKind, lower_alias, mutf8, protect, store_digest};
use crate::cert::Certificate;
use crate::error::{Error, Result};
use crate::identity::Identity;
use crate::secret::Password;

/// The `PBEWithMD5AndTripleDES` iteration count pfxkit writes into JCEKS key entries: keytool's
/// own default (`jdk.jceks.iterationCount`), well under Java's cap of
/// [`JCEKS_MAX_ITERATIONS`](super::JCEKS_MAX_ITERATIONS) and under
/// [`Limits::max_iterations`](crate::Limits::max_iterations)' default, so every reader accepts it.
pub const JCEKS_WRITE_ITERATIONS: u32 = 200_000;

/// Format version written: 2, the one with certificate-type strings (Java reads 1 and 2).
const VERSION: u32 = 2;
/// Certificate type string keytool writes.
const X509: &str = "X.509";

/// One entry to write.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub enum WriteEntry<'a> {
    /// A private key with its chain (tag 1), protected under its own key password.
    PrivateKey {
        /// The alias; written lower-cased.
        alias: &'a str,
        /// The key and its chain, leaf first.
        identity: &'a Identity,
        /// The key password (Java lets it differ from the store password). For JCEKS it must be
        /// printable ASCII, the only key passwords Java 17 accepts there.
        key_password: &'a Password,
    },
    /// A private key entry kept exactly as read (still protected), so a store can be rewritten
    /// without knowing the key passwords of the entries it does not change.
    ProtectedKey {
        /// The alias; written lower-cased.
        alias: &'a str,
        /// The protected key (`EncryptedPrivateKeyInfo` DER) as stored.
        encrypted_key: &'a [u8],
        /// The chain, leaf first.
        chain: &'a [Certificate],
        /// The original creation time, milliseconds since the Unix epoch.
        created_millis: i64,
    },
    /// A JCEKS secret-key entry (tag 3) kept exactly as read: its Java serialization stream
    /// (the sealed key), so rewriting a JCEKS store never loses its secret keys. Refused for JKS,
    /// which has no such entries.
    SecretKey {
        /// The alias; written lower-cased.
        alias: &'a str,
        /// The entry body as stored (a serialized `SealedObjectForKeyProtector`).
        sealed: &'a [u8],
        /// The original creation time, milliseconds since the Unix epoch.
        created_millis: i64,
    },
    /// A trusted certificate (tag 2).
    Trusted {
        /// The alias; written lower-cased.
        alias: &'a str,
        /// The certificate.
        certificate: &'a Certificate,
    },
}

impl WriteEntry<'_> {
    fn alias(&self) -> &str {
        match self {
            WriteEntry::PrivateKey { alias, .. }
            | WriteEntry::ProtectedKey { alias, .. }
            | WriteEntry::SecretKey { alias, .. }
            | WriteEntry::Trusted { alias, .. } => alias,
        }
    }
}

/// Writes a keystore, in the order given, stamped with the current time and salted from the
/// operating system's random generator. JKS keys get the JKS key protector (with the NULL
/// parameter, which every Java version reads); JCEKS keys get `PBEWithMD5AndTripleDES` with
/// [`JCEKS_WRITE_ITERATIONS`]. The store digest uses `store_password`.
///
/// # Errors
/// As [`write_with`], and [`Error::Io`] when the OS random generator fails.
pub fn write(
    kind: KeystoreKind,
    entries: &[WriteEntry<'_>],
    store_password: &Password,
) -> Result<Vec<u8>> {
    let now = crate::cert::now_millis();
    let mut os = crate::random::OsRandom;
    write_with(kind, entries, store_password, now, &mut |buf| {
        crate::random::RandomSource::fill(&mut os, buf)
    })
}

/// [`write()`] with the creation time (milliseconds since the Unix epoch) of every entry and the
/// source of salt bytes given: for reproducible output in tests. `random` must fill its buffer
/// with unpredictable bytes in real use.
///
/// # Errors
/// [`Error::Invalid`] when two aliases are equal once lower-cased, an alias is longer than
/// 65,535 bytes of modified UTF-8, a field does not fit Java's `int` lengths, or a JCEKS key
/// password is not printable ASCII; whatever `random` returns.
pub fn write_with(
    kind: KeystoreKind,
    entries: &[WriteEntry<'_>],
    store_password: &Password,
    created_millis: i64,
    random: &mut dyn FnMut(&mut [u8]) -> Result<()>,
) -> Result<Vec<u8>> {
    let mut seen = HashSet::new();
    let aliases = entries
        .iter()
        .map(|e| {
            let alias = lower_alias(e.alias());
            if !seen.insert(alias.clone()) {
                return Err(Error::Invalid(format!(
                    "duplicate alias '{alias}' (aliases are compared lower-cased)"
                )));
            }
            Ok(alias)
        })
        .collect::<Result<Vec<_>>>()?;

    let mut out = Vec::new();
    out.extend_from_slice(&kind.magic().to_be_bytes());
    out.extend_from_slice(&VERSION.to_be_bytes());
    put_len(&mut out, entries.len(), "entry count")?;
    for (entry, alias) in entries.iter().zip(&aliases) {
        match entry {
            WriteEntry::PrivateKey {
                identity,
                key_password,
                ..
            } => {
                out.extend_from_slice(&1i32.to_be_bytes());
                put_utf(&mut out, alias)?;
                out.extend_from_slice(&created_millis.to_be_bytes());
                let pkcs8 = identity.key().expose_pkcs8_der();
                let encrypted = match kind {
                    KeystoreKind::Jks => {
                        let mut salt = [0u8; 20];
                        random(&mut salt)?;
                        protect::jks_protect(pkcs8, key_password, &salt)?
                    }
                    KeystoreKind::Jceks => {
                        let mut salt = [0u8; protect::JCEKS_SALT_LEN];
                        random(&mut salt)?;
                        protect::jceks_protect(pkcs8, key_password, &salt, JCEKS_WRITE_ITERATIONS)?
                    }
                };
                put_len(&mut out, encrypted.len(), "encrypted key")?;
                out.extend_from_slice(&encrypted);
                put_len(&mut out, identity.chain().len(), "certificate chain")?;
                for cert in identity.chain() {
                    put_certificate(&mut out, cert)?;
                }
            }
            WriteEntry::ProtectedKey {
                encrypted_key,
                chain,
                created_millis: created,
                ..
            } => {
                out.extend_from_slice(&1i32.to_be_bytes());
                put_utf(&mut out, alias)?;
                out.extend_from_slice(&created.to_be_bytes());
                put_len(&mut out, encrypted_key.len(), "encrypted key")?;
                out.extend_from_slice(encrypted_key);
                put_len(&mut out, chain.len(), "certificate chain")?;
                for cert in *chain {
                    put_certificate(&mut out, cert)?;
                }
            }
            WriteEntry::SecretKey {
                sealed,
                created_millis: created,
                ..
            } => {
                if kind != KeystoreKind::Jceks {
                    return Err(Error::Invalid(format!(
                        "secret key '{alias}': only JCEKS stores hold secret keys"
                    )));
                }
                out.extend_from_slice(&3i32.to_be_bytes());
                put_utf(&mut out, alias)?;
                out.extend_from_slice(&created.to_be_bytes());
                out.extend_from_slice(sealed);
            }
            WriteEntry::Trusted { certificate, .. } => {
                out.extend_from_slice(&2i32.to_be_bytes());
                put_utf(&mut out, alias)?;
                out.extend_from_slice(&created_millis.to_be_bytes());
                put_certificate(&mut out, certificate)?;
            }
        }
    }
    let digest = store_digest(store_password, &out);
    out.extend_from_slice(&digest);
    Ok(out)
}

/// A Java `int` length or count.
fn put_len(out: &mut Vec<u8>, len: usize, what: &str) -> Result<()> {
    let len = i32::try_from(len)
        .map_err(|_| Error::Invalid(format!("{what} does not fit a Java int ({len})")))?;
    out.extend_from_slice(&len.to_be_bytes());
    Ok(())
}

/// `writeUTF`: u16 length ‖ modified UTF-8.
fn put_utf(out: &mut Vec<u8>, text: &str) -> Result<()> {
    let bytes = mutf8::encode(text);
    let len = u16::try_from(bytes.len()).map_err(|_| {
        Error::Invalid(format!(
            "alias is {} bytes of modified UTF-8, more than the 65,535 Java can store",
            bytes.len()
        ))
    })?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&bytes);
    Ok(())
}

fn put_certificate(out: &mut Vec<u8>, cert: &Certificate) -> Result<()> {
    put_utf(out, X509)?;
    put_len(out, cert.der().len(), "certificate")?;
    out.extend_from_slice(cert.der());
    Ok(())
}
