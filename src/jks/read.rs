//! Reading JKS and JCEKS files.
//!
//! Two passes. The first walks the structure, checking every count and length against the
//! limits and the bytes that remain, and finds where the store digest sits; nothing is parsed
//! or trusted yet. Then the digest is checked (by [`read`]), and only then are certificates and
//! key structures decoded.

use std::collections::HashMap;

use subtle::ConstantTimeEq;

use super::serial::{self, Value};
use super::{
    DIGEST_LEN, Entry, KeyEntry, Keystore, KeystoreKind, Seal, SecretKey, SecretKeyEntry,
    TrustedEntry, detect, lower_alias, mutf8, protect, store_digest,
};
use crate::cert::Certificate;
use crate::error::{Error, LimitKind, Result};
use crate::limits::{Limits, WorkBudget, work};
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
/// - [`Error::Unsupported`] for certificate types other than X.509. JCEKS secret-key entries are
///   read (their Java-serialized body by a bounded reader); when one cannot be read, the digest
///   is still checked where Java puts it last, so a wrong password is reported as such.
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
    let mut in_secret_entry = false;
    let raw = match parse_structure(bytes, limits, &mut in_secret_entry) {
        Ok(raw) => raw,
        Err(e) => {
            // A secret-key body that cannot be read hides where the digest is. Java writes it
            // last, so check it there: a wrong password must say so rather than "malformed".
            if let (true, Some(password)) = (in_secret_entry, password) {
                let split = bytes.len().saturating_sub(DIGEST_LEN);
                let (body, stored) = bytes.split_at_checked(split).unwrap_or_default();
                if !bool::from(store_digest(password, body).as_slice().ct_eq(stored)) {
                    return Err(Error::wrong_password("keystore digest"));
                }
            }
            return Err(e);
        }
    };
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

    // Decoding certificates is work too: charge all of it before decoding any.
    let mut budget = WorkBudget::new(limits);
    for raw_entry in &raw.entries {
        let certs: &[Slice<'_>] = match &raw_entry.body {
            RawBody::Key { chain, .. } => chain,
            RawBody::Trusted(cert) => std::slice::from_ref(cert),
            RawBody::Secret(_) => &[],
        };
        for cert in certs {
            budget.charge_work(work::certificate(cert.bytes.len()))?;
        }
    }
    let depth = limits.max_depth.saturating_mul(4);
    let mut entries: Vec<Option<Entry>> = Vec::new();
    let mut by_alias: HashMap<String, usize> = HashMap::new();
    let mut by_lower: HashMap<String, String> = HashMap::new();
    for raw_entry in raw.entries {
        let entry = decode_entry(raw_entry, depth, limits, &mut warnings)?;
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
    /// A JCEKS secret key: the serialization stream of its sealed object.
    Secret(Slice<'a>),
}

/// A field of the input and its offset.
#[derive(Clone, Copy)]
struct Slice<'a> {
    bytes: &'a [u8],
    at: usize,
}

fn parse_structure<'a>(
    bytes: &'a [u8],
    limits: &Limits,
    in_secret_entry: &mut bool,
) -> Result<RawStore<'a>> {
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
                // The body is a Java serialization stream with no length prefix: only reading
                // it finds the next entry.
                *in_secret_entry = true;
                let at = cur.pos;
                let (_, end) =
                    serial::read_stream(bytes, at, limits.max_depth.saturating_mul(4), &label)?;
                *in_secret_entry = false;
                let stream = cur.take(end.saturating_sub(at), "secret key")?;
                RawBody::Secret(Slice { bytes: stream, at })
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

fn decode_entry(
    raw: RawEntry<'_>,
    depth: usize,
    limits: &Limits,
    warnings: &mut Vec<String>,
) -> Result<Entry> {
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
                    decode_certificate(c, &format!("{} certificate {}", raw.label, i + 1), limits)
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
        RawBody::Secret(stream) => {
            let seal = read_seal(stream.bytes, depth, &raw.label)?;
            if let Err(reason) = &seal {
                warnings.push(format!("{}: {reason}", raw.label));
            }
            Entry::SecretKey(SecretKeyEntry {
                alias: raw.alias,
                created_millis: raw.created_millis,
                sealed: stream.bytes.to_vec(),
                seal,
            })
        }
        RawBody::Trusted(cert) => Entry::Trusted(TrustedEntry {
            certificate: Box::new(decode_certificate(cert, &raw.label, limits)?),
            alias: raw.alias,
            created_millis: raw.created_millis,
        }),
    })
}

/// The sealing algorithm Java's JCEKS `KeyProtector.seal` uses, and the only one it unseals.
const SEAL_ALGORITHM: &str = "PBEWithMD5AndTripleDES";

/// Reads a secret-key entry's `SealedObject` (fields `encodedParams`, `encryptedContent`,
/// `sealAlg`, `paramsAlg`). An object of another shape or algorithm is kept, with the reason it
/// cannot be unsealed; only a stream that cannot be read at all is an error.
fn read_seal(
    stream: &[u8],
    depth: usize,
    label: &str,
) -> Result<std::result::Result<Seal, String>> {
    let (value, _) = serial::read_stream(stream, 0, depth, label)?;
    let class = value.class().unwrap_or("(not an object)");
    let (Some(params), Some(ciphertext), Some(seal_alg)) = (
        value.field("encodedParams").and_then(Value::as_bytes),
        value.field("encryptedContent").and_then(Value::as_bytes),
        value.field("sealAlg").and_then(Value::as_str),
    ) else {
        return Ok(Err(format!(
            "the secret key is a {class}, not a sealed object pfxkit can open"
        )));
    };
    if seal_alg != SEAL_ALGORITHM {
        return Ok(Err(format!(
            "the secret key is sealed with {seal_alg}, not {SEAL_ALGORITHM}"
        )));
    }
    let iterations = match protect::parse_pbe_parameter(params, label) {
        Ok((_, iterations)) => iterations,
        Err(e) => return Ok(Err(e.to_string())),
    };
    Ok(Ok(Seal {
        params: params.to_vec(),
        ciphertext: ciphertext.to_vec(),
        iterations,
    }))
}

/// The key in an unsealed secret-key entry: a `javax.crypto.spec.SecretKeySpec` (fields `key`,
/// `algorithm`), or the `java.security.KeyRep` that keys such as PBKDF2's replace themselves
/// with when serialized (fields `algorithm`, `encoded`, `format` "RAW", `type` SECRET).
pub(super) fn secret_key_from(value: &Value, context: &str) -> Result<SecretKey> {
    let class = value.class().unwrap_or("(not an object)");
    let (algorithm, key) = match class {
        "javax.crypto.spec.SecretKeySpec" => (
            value.field("algorithm").and_then(Value::as_str),
            value.field("key").and_then(Value::as_bytes),
        ),
        "java.security.KeyRep"
            if value.field("type").and_then(Value::enum_constant) == Some("SECRET")
                && value.field("format").and_then(Value::as_str) == Some("RAW") =>
        {
            (
                value.field("algorithm").and_then(Value::as_str),
                value.field("encoded").and_then(Value::as_bytes),
            )
        }
        _ => (None, None),
    };
    match (algorithm, key) {
        (Some(algorithm), Some(key)) => Ok(SecretKey {
            algorithm: algorithm.to_string(),
            key: zeroize::Zeroizing::new(key.to_vec()),
        }),
        _ => Err(Error::Unsupported {
            what: format!("{context}: a secret key of class {class}"),
            oid: None,
        }),
    }
}

fn decode_certificate(slice: Slice<'_>, label: &str, limits: &Limits) -> Result<Certificate> {
    Certificate::from_der_with(slice.bytes, limits).map_err(|e| relocate(e, slice.at, label))
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
