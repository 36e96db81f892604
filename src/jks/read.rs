//! Reading JKS and JCEKS files.
//!
//! Two passes. The first walks the structure, checking every count and length against the
//! limits and the bytes that remain, and finds where the store digest sits; nothing is parsed
//! or trusted yet. Then the digest is checked (by [`read`]), and only then are certificates and
//! key structures decoded.

use std::collections::HashMap;

use subtle::ConstantTimeEq;

use super::{
    DIGEST_LEN, Entry, KeyEntry, Keystore, KeystoreKind, TrustedEntry, detect, lower_alias, mutf8,
    protect, store_digest,
};
use crate::cert::Certificate;
use crate::error::{Error, LimitKind, Result};
use crate::limits::Limits;
use crate::secret::Password;

/// Reads a JKS or JCEKS keystore, checking the store digest against `store_password` before
/// anything else in the file is trusted. Keys stay encrypted; see
/// [`KeyEntry::decrypt`](super::KeyEntry::decrypt).
///
/// # Errors
/// - [`Error::WrongPassword`] (context "keystore digest") when the digest does not match: the
///   password is wrong or the file was altered, which cannot be told apart;
/// - [`Error::Malformed`] with the byte offset for a file that is not JKS/JCEKS, is truncated,
///   or has a negative or oversized count or length, bad modified UTF-8, or a bad certificate;
/// - [`Error::LimitExceeded`] when the file exceeds [`Limits::max_input_size`], the entry count
///   [`Limits::max_entries`] or a chain [`Limits::max_chain_len`];
/// - [`Error::Unsupported`] for JCEKS secret-key entries (whose Java-serialized body cannot be
///   skipped without a Java-serialization parser, so the digest cannot even be located: this
///   error comes before any password check) and certificate types other than X.509.
pub fn read(bytes: &[u8], store_password: &Password, limits: &Limits) -> Result<Keystore> {
    read_inner(bytes, Some(store_password), limits)
}

/// Reads a JKS or JCEKS keystore **without checking its digest**, as Java does when it is given
/// no store password: for listing an untrusted file whose password is unknown. Nothing read this
/// way is authenticated. [`Keystore::digest_verified`](super::Keystore::digest_verified) is
/// `false`.
///
/// # Errors
/// As [`read`], except that there is no [`Error::WrongPassword`].
pub fn read_unverified(bytes: &[u8], limits: &Limits) -> Result<Keystore> {
    read_inner(bytes, None, limits)
}

fn read_inner(bytes: &[u8], password: Option<&Password>, limits: &Limits) -> Result<Keystore> {
    limits.check_input_size(bytes.len())?;
    let raw = parse_structure(bytes, limits)?;
    let context = raw.kind.name();
    let mut warnings = Vec::new();
    let after_body = bytes.len().saturating_sub(raw.end);
    if let Some(password) = password {
        let stored = bytes
            .get(raw.end..)
            .and_then(|rest| rest.get(..DIGEST_LEN))
            .ok_or_else(|| {
                Error::malformed_at(
                    format!("{context} keystore"),
                    raw.end as u64,
                    format!(
                        "truncated: the {DIGEST_LEN}-byte store digest is missing ({after_body} bytes remain)"
                    ),
                )
            })?;
        let body = bytes.get(..raw.end).unwrap_or_default();
        let computed = store_digest(password, body);
        if !bool::from(computed.as_slice().ct_eq(stored)) {
            return Err(Error::wrong_password("keystore digest"));
        }
    } else if after_body < DIGEST_LEN {
        warnings.push(format!(
            "the store digest is missing ({after_body} of {DIGEST_LEN} bytes)"
        ));
    }
    if after_body > DIGEST_LEN {
        // Java stops reading at the digest; so does pfxkit, but says so.
        warnings.push(format!(
            "{} bytes after the store digest are ignored",
            after_body - DIGEST_LEN
        ));
    }

    let mut entries: Vec<Option<Entry>> = Vec::new();
    let mut by_alias: HashMap<String, usize> = HashMap::new();
    let mut by_lower: HashMap<String, String> = HashMap::new();
    for raw_entry in raw.entries {
        let entry = decode_entry(raw_entry, &mut warnings)?;
        let alias = entry.alias().to_owned();
        let lower = lower_alias(&alias);
        if lower != alias {
            warnings.push(format!(
                "alias '{alias}' is not lower-case: Java cannot look it up by name"
            ));
        }
        match by_lower.get(&lower) {
            Some(first) if *first != alias => warnings.push(format!(
                "aliases '{first}' and '{alias}' differ only in case"
            )),
            Some(_) => {}
            None => {
                by_lower.insert(lower, alias.clone());
            }
        }
        if let Some(previous) = by_alias.insert(alias.clone(), entries.len()) {
            warnings.push(format!(
                "alias '{alias}' occurs more than once; the last entry is kept, as Java does"
            ));
            if let Some(slot) = entries.get_mut(previous) {
                *slot = None;
            }
        }
        entries.push(Some(entry));
    }
    Ok(Keystore {
        kind: raw.kind,
        version: raw.version,
        entries: entries.into_iter().flatten().collect(),
        digest_verified: password.is_some(),
        warnings,
    })
}

/// The structure of a file, with every field a slice of the input.
struct RawStore<'a> {
    kind: KeystoreKind,
    version: u32,
    entries: Vec<RawEntry<'a>>,
    /// Offset of the store digest (the end of the last entry).
    end: usize,
}

struct RawEntry<'a> {
    /// Describes the entry in errors, e.g. `JKS entry 2 ('web')`.
    label: String,
    alias: String,
    alias_lossy: bool,
    created_millis: i64,
    body: RawBody<'a>,
}

enum RawBody<'a> {
    Key {
        encrypted: Slice<'a>,
        chain: Vec<Slice<'a>>,
    },
    Trusted(Slice<'a>),
}

/// A field of the input and its offset.
#[derive(Clone, Copy)]
struct Slice<'a> {
    bytes: &'a [u8],
    at: usize,
}

fn parse_structure<'a>(bytes: &'a [u8], limits: &Limits) -> Result<RawStore<'a>> {
    let mut cur = Cursor {
        bytes,
        pos: 0,
        context: "JKS/JCEKS keystore".into(),
    };
    let magic_at = cur.pos;
    cur.take(4, "magic number")?;
    let kind = detect(bytes).ok_or_else(|| {
        Error::malformed_at(
            "JKS/JCEKS keystore",
            magic_at as u64,
            "not a JKS or JCEKS keystore (magic is neither FEEDFEED nor CECECECE)",
        )
    })?;
    let name = kind.name();
    cur.context = format!("{name} keystore");
    let version_at = cur.pos;
    let version = cur.u32("version")?;
    if version != 1 && version != 2 {
        return Err(cur.error_at(version_at, format!("unknown version {version}")));
    }
    let count = cur.count("entry count")?;
    Limits::check(
        LimitKind::EntryCount,
        count as u64,
        limits.max_entries as u64,
    )?;
    // Entries are pushed one by one as they are read, never preallocated from the count.
    let mut entries = Vec::new();
    for index in 1..=count {
        cur.context = format!("{name} entry {index}");
        let tag_at = cur.pos;
        let tag = cur.i32("entry tag")?;
        let alias_at = cur.pos;
        let alias_len = usize::from(cur.u16("alias length")?);
        let alias_bytes = cur.take(alias_len, "alias")?;
        let decoded = mutf8::decode(alias_bytes)
            .map_err(|off| cur.error_at(alias_at + 2 + off, "alias is not valid modified UTF-8"))?;
        let label = format!("{name} entry {index} ('{}')", decoded.text);
        cur.context = label.clone();
        let created_millis = cur.i64("creation date")?;
        let body = match tag {
            1 => {
                let len = cur.length("encrypted key length")?;
                let at = cur.pos;
                let encrypted = Slice {
                    bytes: cur.take(len, "encrypted key")?,
                    at,
                };
                let chain_len = cur.count("certificate chain length")?;
                Limits::check(
                    LimitKind::ChainLength,
                    chain_len as u64,
                    limits.max_chain_len as u64,
                )?;
                let mut chain = Vec::new();
                for _ in 0..chain_len {
                    chain.push(cur.certificate(version)?);
                }
                RawBody::Key { encrypted, chain }
            }
            2 => RawBody::Trusted(cur.certificate(version)?),
            3 if kind == KeystoreKind::Jceks => {
                // The body is a Java serialization stream with no length prefix: without a
                // parser for that format the next entry cannot be found, so stop here rather
                // than guess.
                return Err(Error::Unsupported {
                    what: format!("JCEKS secret-key entries ({label})"),
                    oid: None,
                });
            }
            other => return Err(cur.error_at(tag_at, format!("unknown entry tag {other}"))),
        };
        entries.push(RawEntry {
            label,
            alias: decoded.text,
            alias_lossy: decoded.lossy,
            created_millis,
            body,
        });
    }
    Ok(RawStore {
        kind,
        version,
        entries,
        end: cur.pos,
    })
}

fn decode_entry(raw: RawEntry<'_>, warnings: &mut Vec<String>) -> Result<Entry> {
    if raw.alias_lossy {
        warnings.push(format!(
            "{} has an unpaired surrogate in its alias, shown as U+FFFD",
            raw.label
        ));
    }
    Ok(match raw.body {
        RawBody::Key { encrypted, chain } => {
            let protection = protect::parse(encrypted.bytes, "encrypted private key")
                .map_err(|e| relocate(e, encrypted.at, &raw.label))?
                .protection;
            let chain = chain
                .into_iter()
                .enumerate()
                .map(|(i, c)| {
                    decode_certificate(c, &format!("{} certificate {}", raw.label, i + 1))
                })
                .collect::<Result<Vec<_>>>()?;
            Entry::PrivateKey(KeyEntry {
                alias: raw.alias,
                created_millis: raw.created_millis,
                encrypted_key: encrypted.bytes.to_vec(),
                protection,
                chain,
            })
        }
        RawBody::Trusted(cert) => Entry::Trusted(TrustedEntry {
            certificate: Box::new(decode_certificate(cert, &raw.label)?),
            alias: raw.alias,
            created_millis: raw.created_millis,
        }),
    })
}

fn decode_certificate(slice: Slice<'_>, label: &str) -> Result<Certificate> {
    Certificate::from_der(slice.bytes).map_err(|e| relocate(e, slice.at, label))
}

/// Moves a `Malformed` error from a field's own offsets to the file's, naming the entry.
fn relocate(err: Error, base: usize, label: &str) -> Error {
    match err {
        Error::Malformed {
            context,
            offset,
            reason,
        } => Error::Malformed {
            context: format!("{context} in {label}"),
            offset: Some((base as u64).saturating_add(offset.unwrap_or(0))),
            reason,
        },
        other => other,
    }
}

/// A bounds-checked big-endian reader over the input. Every read checks the bytes that remain
/// first, so a hostile length never causes an allocation or a panic.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
    context: String,
}

impl<'a> Cursor<'a> {
    fn remaining(&self) -> usize {
        self.bytes.len().saturating_sub(self.pos)
    }

    fn error_at(&self, at: usize, reason: impl Into<String>) -> Error {
        Error::malformed_at(self.context.clone(), at as u64, reason)
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        let slice = self
            .pos
            .checked_add(n)
            .and_then(|end| self.bytes.get(self.pos..end));
        match slice {
            Some(s) => {
                self.pos += n;
                Ok(s)
            }
            None => Err(self.error_at(
                self.pos,
                format!(
                    "truncated: {what} needs {n} bytes, {} remain",
                    self.remaining()
                ),
            )),
        }
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N]> {
        let at = self.pos;
        self.take(N, what)?
            .try_into()
            .map_err(|_| self.error_at(at, format!("truncated: {what}")))
    }

    fn u16(&mut self, what: &str) -> Result<u16> {
        self.array(what).map(u16::from_be_bytes)
    }

    fn u32(&mut self, what: &str) -> Result<u32> {
        self.array(what).map(u32::from_be_bytes)
    }

    fn i32(&mut self, what: &str) -> Result<i32> {
        self.array(what).map(i32::from_be_bytes)
    }

    fn i64(&mut self, what: &str) -> Result<i64> {
        self.array(what).map(i64::from_be_bytes)
    }

    /// A Java `int` count: negative is malformed.
    fn count(&mut self, what: &str) -> Result<usize> {
        let at = self.pos;
        let value = self.i32(what)?;
        usize::try_from(value)
            .map_err(|_| self.error_at(at, format!("{what} is negative ({value})")))
    }

    /// A Java `int` length: negative, or longer than what remains, is malformed — checked before
    /// anything is allocated for it.
    fn length(&mut self, what: &str) -> Result<usize> {
        let at = self.pos;
        let len = self.count(what)?;
        if len > self.remaining() {
            return Err(self.error_at(
                at,
                format!(
                    "{what} {len} exceeds the {} bytes that remain",
                    self.remaining()
                ),
            ));
        }
        Ok(len)
    }

    /// `[utf type (version 2)] ‖ i32 length ‖ DER`. keytool writes the type `X.509`; Go's
    /// keystore-go writes `X509`, which Java also loads.
    fn certificate(&mut self, version: u32) -> Result<Slice<'a>> {
        if version == 2 {
            let len = usize::from(self.u16("certificate type length")?);
            let raw = self.take(len, "certificate type")?;
            if raw != b"X.509" && raw != b"X509" {
                let shown = mutf8::decode(raw)
                    .map(|d| d.text)
                    .unwrap_or_else(|_| format!("{} undecodable bytes", raw.len()));
                return Err(Error::Unsupported {
                    what: format!("certificate type '{shown}' in {}", self.context),
                    oid: None,
                });
            }
        }
        let len = self.length("certificate length")?;
        let at = self.pos;
        Ok(Slice {
            bytes: self.take(len, "certificate")?,
            at,
        })
    }
}
