//! Reading PKCS#12 archives: structure, integrity, decryption, bags, pairing.

use std::fmt;

use der::asn1::ObjectIdentifier as Oid;
use zeroize::Zeroizing;

use super::oids;
use crate::asn1::ber;
use crate::asn1::{DerReader, Tlv, tag};
use crate::cert::Certificate;
use crate::error::{Error, LimitKind, Result};
use crate::identity::{Identity, assemble_all, pair_keys_within};
use crate::limits::{Limits, WorkBudget, work};
use crate::parallel::{Job, run_all};
use crate::pbe::mac::{MacAlgorithm, parse_mac_data};
use crate::pbe::scheme::{EncryptionScheme, parse_encrypted_private_key_info};
use crate::secret::{Password, PrivateKey};

/// The MAC of an archive, as reported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MacInfo {
    /// The algorithm and its parameters.
    pub algorithm: MacAlgorithm,
}

/// Attributes of a bag that pfxkit interprets.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BagAttributes {
    /// `friendlyName`: the alias.
    pub friendly_name: Option<String>,
    /// `localKeyId`: pairs a key with its certificate.
    pub local_key_id: Option<Vec<u8>>,
    /// Java's trusted-certificate attribute is present.
    pub java_trusted: bool,
    /// OIDs of the other attributes, kept so nothing is silently lost.
    pub other: Vec<Oid>,
}

/// A private key found in the archive.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct KeyBag {
    /// The decrypted key.
    pub key: PrivateKey,
    /// Its bag attributes.
    pub attributes: BagAttributes,
    /// How it was encrypted; `None` for a plain keyBag.
    pub encryption: Option<EncryptionScheme>,
}

/// A certificate found in the archive.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct CertBag {
    /// The certificate.
    pub certificate: Certificate,
    /// Its bag attributes.
    pub attributes: BagAttributes,
    /// How the SafeContents holding it was encrypted; `None` when in plain data.
    pub encryption: Option<EncryptionScheme>,
}

/// A certificate bag whose X.509 certificate cannot be decoded at all: listed with its
/// thumbprints and the reason, so one bad certificate does not make the whole archive unreadable
/// (OpenSSL and `cryptography` also read the rest of such a file's bags).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct UnparsedCertificate {
    /// The bytes of the bag's certificate value, as stored.
    pub der: Vec<u8>,
    /// Why it could not be decoded.
    pub reason: String,
    /// Its bag attributes.
    pub attributes: BagAttributes,
}

impl UnparsedCertificate {
    /// SHA-1 of the stored bytes, as lowercase hex.
    pub fn sha1_hex(&self) -> String {
        use sha1::Digest;
        crate::cert::hex_lower(&sha1::Sha1::digest(&self.der))
    }

    /// SHA-256 of the stored bytes, as lowercase hex.
    pub fn sha256_hex(&self) -> String {
        use sha2::Digest;
        crate::cert::hex_lower(&sha2::Sha256::digest(&self.der))
    }
}

/// The kinds of bag pfxkit lists but does not interpret.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum OtherBagKind {
    /// A CRL bag.
    Crl,
    /// A secret bag.
    Secret,
    /// A certificate bag of a type other than X.509 (e.g. SDSI).
    Certificate(Oid),
    /// A bag type pfxkit does not know.
    Unknown(Oid),
}

/// A bag that is listed, never lost, but not interpreted.
#[derive(Clone)]
#[non_exhaustive]
pub struct OtherBag {
    /// What kind of bag.
    pub kind: OtherBagKind,
    /// Its attributes.
    pub attributes: BagAttributes,
    /// The DER of the bag value (may be secret: zeroized on drop, redacted in `Debug`).
    pub value: Zeroizing<Vec<u8>>,
}

impl fmt::Debug for OtherBag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OtherBag")
            .field("kind", &self.kind)
            .field("attributes", &self.attributes)
            .field("value", &"[redacted]")
            .finish()
    }
}

/// Everything read from a PKCS#12 archive, in file order.
#[derive(Clone, Debug)]
pub struct Archive {
    mac: Option<MacInfo>,
    keys: Vec<KeyBag>,
    certificates: Vec<CertBag>,
    unparsed_certificates: Vec<UnparsedCertificate>,
    other_bags: Vec<OtherBag>,
    /// For each key, its certificate's index, proven while reading (and charged to its work).
    pairings: Vec<Option<usize>>,
    /// [`Limits::max_chain_len`] of the read, for the chains [`Archive::identities`] builds.
    max_chain_len: usize,
    /// Zero bytes after the PFX (Windows pads its exports).
    trailing_zero_bytes: usize,
}

impl Archive {
    /// The MAC, or `None` when the archive has no integrity protection.
    pub fn mac(&self) -> Option<&MacInfo> {
        self.mac.as_ref()
    }

    /// Private keys, in file order.
    pub fn keys(&self) -> &[KeyBag] {
        &self.keys
    }

    /// Certificates, once per occurrence, in file order.
    pub fn certificates(&self) -> &[CertBag] {
        &self.certificates
    }

    /// X.509 certificate bags whose certificate cannot be decoded, in file order.
    pub fn unparsed_certificates(&self) -> &[UnparsedCertificate] {
        &self.unparsed_certificates
    }

    /// CRL, secret and unknown bags.
    pub fn other_bags(&self) -> &[OtherBag] {
        &self.other_bags
    }

    /// How many zero bytes followed the PFX: Windows (CryptoAPI, .NET) pads the files it
    /// exports, and OpenSSL, keytool and `cryptography` ignore the padding. Zero for a file that
    /// ends with its PFX. Any other trailing byte makes [`read`] fail.
    pub fn trailing_zero_bytes(&self) -> usize {
        self.trailing_zero_bytes
    }

    /// For each key (same order as [`Archive::keys`]), the index in [`Archive::certificates`]
    /// of the certificate proven to hold its public key: first among those with an equal
    /// `localKeyId`, then among all. File order is never trusted.
    pub fn pairings(&self) -> Vec<Option<usize>> {
        self.pairings.clone()
    }

    /// One identity per key whose certificate was found, with its chain built leaf-first from
    /// every certificate in the archive. The alias is the key's friendlyName, else the
    /// certificate's.
    pub fn identities(&self) -> Vec<Identity> {
        let pool: Vec<Certificate> = self
            .certificates
            .iter()
            .map(|c| c.certificate.clone())
            .collect();
        let keys: Vec<&PrivateKey> = self.keys.iter().map(|k| &k.key).collect();
        assemble_all(&keys, &self.pairings, &pool, self.max_chain_len)
            .into_iter()
            .zip(&self.keys)
            .zip(&self.pairings)
            .filter_map(|((identity, k), leaf)| {
                let identity = identity?;
                let alias = k.attributes.friendly_name.clone().or_else(|| {
                    self.certificates
                        .get((*leaf)?)?
                        .attributes
                        .friendly_name
                        .clone()
                });
                Some(match alias {
                    Some(a) => identity.with_alias(a),
                    None => identity,
                })
            })
            .collect()
    }
}

/// A container of the AuthenticatedSafe, before decryption.
enum Container<'a> {
    Plain(Tlv<'a>),
    Encrypted {
        scheme: EncryptionScheme,
        ciphertext: Vec<u8>,
    },
}

/// Reads a PKCS#12 archive (DER, BER, or PEM-armoured).
///
/// `password`: `Some` uses exactly that password (which may be [`Password::absent`]); `None`
/// means the caller has none, and both the empty and the absent password are tried, as OpenSSL
/// does. When the archive has a MAC, the password that verifies it is used first for decryption.
///
/// # Errors
/// - [`Error::WrongPassword`]: the MAC does not verify, or an item does not decrypt.
/// - [`Error::Malformed`]: not a PKCS#12 archive, truncated, or badly encoded.
/// - [`Error::LimitExceeded`]: a [`Limits`] bound was exceeded (checked before any KDF runs).
/// - [`Error::Unsupported`]: an algorithm or mode pfxkit does not implement (with its OID).
pub fn read(input: &[u8], password: Option<&Password>, limits: &Limits) -> Result<Archive> {
    read_with_key_password(input, password, None, limits)
}

/// [`read`] for an archive whose private keys are encrypted under a password other than its
/// MAC password, as Java writes when a key entry's password differs from the store's
/// (`KeyStore.setKeyEntry` with two passwords; OpenJDK's convertP12 test files). Each shrouded
/// key is tried with `key_password` first, then with the archive password; certificates and the
/// MAC use the archive password. With `key_password` `None` this is [`read`].
///
/// # Errors
/// As [`read`]; each further password tried is charged to [`Limits::max_work`] like the first.
pub fn read_with_key_password(
    input: &[u8],
    password: Option<&Password>,
    key_password: Option<&Password>,
    limits: &Limits,
) -> Result<Archive> {
    limits.check_input_size(input.len())?;
    let armoured = strip_pem(input)?;
    let bytes = armoured.as_deref().unwrap_or(input);
    let (der, trailing_zero_bytes) = ber::normalize_zero_padded(bytes, asn1_depth(limits))?;
    let pfx = parse_pfx(&der, limits)?;

    let mut budget = WorkBudget::new(limits);
    if let Some((mac, _)) = &pfx.mac {
        budget.charge_kdf(u64::from(mac.iterations()), mac.work(pfx.auth_safe.len()))?;
    }
    // The octets of the authSafe are themselves BER in NSS, Netscape and BouncyCastle files
    // (indefinite lengths inside). The MAC covers them as they are (`pfx.auth_safe`); what is
    // parsed is a normalised copy, and so is every plain SafeContents inside it.
    let auth_safe = ber::normalize(pfx.auth_safe, asn1_depth(limits))?;
    let containers = parse_authenticated_safe(&auth_safe, limits)?;
    let plain_contents = containers
        .iter()
        .filter_map(|c| match c {
            Container::Plain(t) => Some(ber::normalize(t.value, asn1_depth(limits))),
            Container::Encrypted { .. } => None,
        })
        .collect::<Result<Vec<_>>>()?;
    // Charge every KDF visible without decryption before running any of them.
    let mut plain_bags = Vec::new();
    for contents in &plain_contents {
        let bags = parse_safe_contents_shallow(contents, limits)?;
        charge_bags(&mut budget, &bags)?;
        plain_bags.push(bags);
    }
    for c in &containers {
        if let Container::Encrypted { scheme, ciphertext } = c {
            charge(&mut budget, scheme, ciphertext)?;
        }
    }

    let candidates: Vec<Password> = match password {
        Some(p) => vec![p.clone()],
        None => vec![Password::new(""), Password::absent()],
    };
    let mut order: Vec<&Password> = candidates.iter().collect();
    // With one password every visible KDF is independent of the others: run them side by side
    // (the MAC key, each encrypted container's key, each shrouded key's), then assemble.
    let (mac_ok, predecrypted) = match (candidates.as_slice(), &pfx.mac) {
        ([only], mac) => {
            let mut tasks: Vec<(&EncryptionScheme, &[u8])> = Vec::new();
            for c in &containers {
                if let Container::Encrypted { scheme, ciphertext } = c {
                    tasks.push((scheme, ciphertext));
                }
            }
            for bag in plain_bags.iter().flatten() {
                if let Some(scheme) = &bag.scheme {
                    tasks.push((scheme, bag.ciphertext));
                }
            }
            // Only the MAC key is derived alongside the decryptions; the HMAC over the data runs
            // here, so the job needs no copy of it.
            let (mac_key, plain) =
                derive_in_parallel(mac.as_ref().map(|(alg, _)| alg), only, &tasks);
            let ok = match (mac, mac_key) {
                (Some((alg, expected)), Some(key)) => {
                    alg.verify_with_key(&key, pfx.auth_safe, expected)
                }
                (Some(_), None) => false,
                (None, _) => true,
            };
            (Some(ok), plain)
        }
        _ => (None, Predecrypted::new()),
    };
    let mac = match &pfx.mac {
        Some((alg, expected)) => {
            let pos = match mac_ok {
                Some(true) => Some(0),
                Some(false) => None,
                None => {
                    let mut found = None;
                    for (i, p) in candidates.iter().enumerate() {
                        // The first try was charged above; each further one costs as much.
                        if i > 0 {
                            budget.charge_kdf(
                                u64::from(alg.iterations()),
                                alg.work(pfx.auth_safe.len()),
                            )?;
                        }
                        if alg.verify(p, pfx.auth_safe, expected) {
                            found = Some(i);
                            break;
                        }
                    }
                    found
                }
            }
            .ok_or_else(|| Error::wrong_password("PKCS#12 MAC"))?;
            order.rotate_left(pos);
            Some(MacInfo {
                algorithm: alg.clone(),
            })
        }
        None => None,
    };

    let mut ctx = Collector {
        predecrypted,
        limits,
        budget,
        passwords: order,
        key_password,
        archive: Archive {
            mac,
            keys: Vec::new(),
            certificates: Vec::new(),
            unparsed_certificates: Vec::new(),
            other_bags: Vec::new(),
            pairings: Vec::new(),
            max_chain_len: limits.max_chain_len,
            trailing_zero_bytes,
        },
        bag_count: 0,
    };
    let mut plain_iter = plain_bags.into_iter();
    for (i, c) in containers.into_iter().enumerate() {
        match c {
            Container::Plain(_) => {
                let bags = plain_iter.next().unwrap_or_default();
                ctx.collect(bags, None, 0)?;
            }
            Container::Encrypted { scheme, ciphertext } => {
                let plaintext = ctx.decrypt(
                    &scheme,
                    &ciphertext,
                    &format!("encrypted SafeContents #{i}"),
                    |pt, limits| {
                        let der = ber::normalize(pt, asn1_depth(limits))?;
                        // Check that it parses before accepting the password.
                        parse_safe_contents_shallow(&der, limits)?;
                        Ok(der)
                    },
                )?;
                let bags = parse_safe_contents_shallow(&plaintext, limits)?;
                charge_bags(&mut ctx.budget, &bags)?;
                ctx.collect(bags, Some(&scheme), 0)?;
            }
        }
    }
    let mut archive = ctx.archive;
    let keys: Vec<_> = archive
        .keys
        .iter()
        .map(|k| (&k.key, k.attributes.local_key_id.as_deref()))
        .collect();
    let certs: Vec<_> = archive
        .certificates
        .iter()
        .map(|c| (&c.certificate, c.attributes.local_key_id.as_deref()))
        .collect();
    let pairings = pair_keys_within(&keys, &certs, &mut ctx.budget)?;
    archive.pairings = pairings;
    Ok(archive)
}

/// Charges one decryption under `scheme` (its KDF and the bulk cipher) to the budget.
fn charge(budget: &mut WorkBudget<'_>, scheme: &EncryptionScheme, ciphertext: &[u8]) -> Result<()> {
    budget.charge_kdf(
        u64::from(scheme.iterations()),
        scheme.work(ciphertext.len()),
    )
}

/// Charges every shrouded key among `bags`.
fn charge_bags(budget: &mut WorkBudget<'_>, bags: &[RawBag<'_>]) -> Result<()> {
    for bag in bags {
        if let Some(scheme) = &bag.scheme {
            charge(budget, scheme, bag.ciphertext)?;
        }
    }
    Ok(())
}

/// ASN.1 nesting allowed to the BER normaliser: each safeContentsBag level costs about four
/// ASN.1 levels, and a certificate's own structure about eight.
fn asn1_depth(limits: &Limits) -> usize {
    limits.max_depth.saturating_mul(4).saturating_add(8)
}

fn strip_pem(input: &[u8]) -> Result<Option<Vec<u8>>> {
    let trimmed = input.trim_ascii_start();
    if !trimmed.starts_with(b"-----BEGIN") {
        return Ok(None);
    }
    let block = pem::parse(trimmed).map_err(|e| Error::malformed("PEM armour", e.to_string()))?;
    if block.tag() != "PKCS12" {
        return Err(Error::malformed(
            "PEM armour",
            format!("expected a PKCS12 block, found {}", block.tag()),
        ));
    }
    Ok(Some(block.into_contents()))
}

struct Pfx<'a> {
    auth_safe: &'a [u8],
    mac: Option<(MacAlgorithm, &'a [u8])>,
}

/// `PFX ::= SEQUENCE { version INTEGER {v3(3)}, authSafe ContentInfo, macData MacData OPTIONAL }`
/// (RFC 7292 §4).
fn parse_pfx<'a>(der: &'a [u8], limits: &Limits) -> Result<Pfx<'a>> {
    const CTX: &str = "PKCS#12 PFX";
    let mut top = DerReader::new(der, CTX);
    let pfx = top.read(tag::SEQUENCE, "PFX SEQUENCE")?;
    top.finish()?;
    let mut r = pfx.reader(CTX);
    let version = r.read(tag::INTEGER, "version")?;
    if version.uint(CTX)? != 3 {
        return Err(Error::Unsupported {
            what: format!("PKCS#12 version {}", version.uint(CTX)?),
            oid: None,
        });
    }
    let content_info = r.read(tag::SEQUENCE, "authSafe ContentInfo")?;
    let mac = match r.read_optional(tag::SEQUENCE)? {
        Some(m) => Some(parse_mac_data(&m, limits)?),
        None => None,
    };
    r.finish()?;
    let (content_type, content) = parse_content_info(&content_info)?;
    if content_type == oids::SIGNED_DATA {
        return Err(Error::unsupported_oid(
            "PKCS#12 public-key integrity mode (signedData)",
            content_type,
        ));
    }
    if content_type != oids::DATA {
        return Err(Error::unsupported_oid(
            "PKCS#12 authSafe content type",
            content_type,
        ));
    }
    let content = content
        .ok_or_else(|| Error::malformed_at(CTX, content_info.start, "authSafe has no content"))?;
    let mut c = content.reader(CTX);
    let octets = c.read(tag::OCTET_STRING, "authSafe data")?;
    c.finish()?;
    Ok(Pfx {
        auth_safe: octets.value,
        mac,
    })
}

/// `ContentInfo ::= SEQUENCE { contentType OID, content [0] EXPLICIT ANY OPTIONAL }`.
fn parse_content_info<'a>(ci: &Tlv<'a>) -> Result<(Oid, Option<Tlv<'a>>)> {
    const CTX: &str = "ContentInfo";
    let mut r = ci.reader(CTX);
    let oid = r.read(tag::OID, "contentType")?.oid(CTX)?;
    let content = r.read_optional(tag::CONTEXT_0)?;
    r.finish()?;
    Ok((oid, content))
}

/// `AuthenticatedSafe ::= SEQUENCE OF ContentInfo`.
fn parse_authenticated_safe<'a>(octets: &'a [u8], limits: &Limits) -> Result<Vec<Container<'a>>> {
    const CTX: &str = "AuthenticatedSafe";
    let mut top = DerReader::new(octets, CTX);
    let seq = top.read(tag::SEQUENCE, "AuthenticatedSafe SEQUENCE")?;
    top.finish()?;
    let mut r = seq.reader(CTX);
    let mut out = Vec::new();
    while !r.is_empty() {
        if out.len() >= limits.max_entries {
            return Err(Error::LimitExceeded {
                limit: LimitKind::EntryCount,
                value: out.len() as u64 + 1,
                bound: limits.max_entries as u64,
            });
        }
        let ci = r.read(tag::SEQUENCE, "ContentInfo")?;
        let (content_type, content) = parse_content_info(&ci)?;
        let content = content
            .ok_or_else(|| Error::malformed_at(CTX, ci.start, "ContentInfo without content"))?;
        let mut c = content.reader(CTX);
        if content_type == oids::DATA {
            let octets = c.read(tag::OCTET_STRING, "data")?;
            c.finish()?;
            out.push(Container::Plain(octets));
        } else if content_type == oids::ENCRYPTED_DATA {
            let ed = c.read(tag::SEQUENCE, "EncryptedData")?;
            c.finish()?;
            out.push(parse_encrypted_data(&ed, limits)?);
        } else if content_type == oids::ENVELOPED_DATA {
            return Err(Error::unsupported_oid(
                "PKCS#12 public-key privacy mode (envelopedData)",
                content_type,
            ));
        } else {
            return Err(Error::unsupported_oid(
                "AuthenticatedSafe content type",
                content_type,
            ));
        }
    }
    Ok(out)
}

/// `EncryptedData ::= SEQUENCE { version INTEGER, encryptedContentInfo EncryptedContentInfo,
/// unprotectedAttrs [1] IMPLICIT … OPTIONAL }` and `EncryptedContentInfo ::= SEQUENCE {
/// contentType OID, contentEncryptionAlgorithm AlgorithmIdentifier, encryptedContent [0]
/// IMPLICIT OCTET STRING OPTIONAL }` (RFC 5652 §8, §6.1).
fn parse_encrypted_data<'a>(ed: &Tlv<'a>, limits: &Limits) -> Result<Container<'a>> {
    const CTX: &str = "EncryptedData";
    let mut r = ed.reader(CTX);
    let _version = r.read(tag::INTEGER, "version")?;
    let eci = r.read(tag::SEQUENCE, "EncryptedContentInfo")?;
    let _unprotected = r.read_optional(tag::CONTEXT_1)?;
    r.finish()?;
    let mut e = eci.reader(CTX);
    let content_type = e.read(tag::OID, "contentType")?.oid(CTX)?;
    if content_type != oids::DATA {
        return Err(Error::unsupported_oid(
            "encrypted content type",
            content_type,
        ));
    }
    let alg = e.read(tag::SEQUENCE, "contentEncryptionAlgorithm")?;
    let scheme = EncryptionScheme::parse(&alg, limits)?;
    // [0] IMPLICIT OCTET STRING: primitive in DER; BER writers (NSS) send it constructed, as
    // OCTET STRING chunks, which the normaliser leaves in place because an implicit tag hides
    // the type.
    let ciphertext = match e.peek_tag() {
        Some(tag::CONTEXT_0_PRIMITIVE) => e.read_any()?.value.to_vec(),
        Some(tag::CONTEXT_0) => {
            let t = e.read_any()?;
            let mut chunks = t.reader(CTX);
            let mut out = Vec::with_capacity(t.value.len());
            while !chunks.is_empty() {
                out.extend_from_slice(
                    chunks
                        .read(tag::OCTET_STRING, "encryptedContent chunk")?
                        .value,
                );
            }
            out
        }
        _ => {
            return Err(Error::malformed_at(
                CTX,
                eci.start,
                "EncryptedContentInfo has no encryptedContent",
            ));
        }
    };
    e.finish()?;
    Ok(Container::Encrypted { scheme, ciphertext })
}

/// A SafeBag decoded without decrypting anything.
struct RawBag<'a> {
    bag_id: Oid,
    value: Tlv<'a>,
    attributes: BagAttributes,
    /// For shrouded key bags: the scheme and ciphertext.
    scheme: Option<EncryptionScheme>,
    ciphertext: &'a [u8],
}

/// `SafeContents ::= SEQUENCE OF SafeBag`, `SafeBag ::= SEQUENCE { bagId OID, bagValue [0]
/// EXPLICIT ANY, bagAttributes SET OF PKCS12Attribute OPTIONAL }`.
fn parse_safe_contents_shallow<'a>(der: &'a [u8], limits: &Limits) -> Result<Vec<RawBag<'a>>> {
    const CTX: &str = "SafeContents";
    let mut top = DerReader::new(der, CTX);
    let seq = top.read(tag::SEQUENCE, "SafeContents SEQUENCE")?;
    top.finish()?;
    let mut r = seq.reader(CTX);
    let mut bags = Vec::new();
    while !r.is_empty() {
        if bags.len() >= limits.max_entries {
            return Err(Error::LimitExceeded {
                limit: LimitKind::EntryCount,
                value: bags.len() as u64 + 1,
                bound: limits.max_entries as u64,
            });
        }
        let bag = r.read(tag::SEQUENCE, "SafeBag")?;
        let mut b = bag.reader("SafeBag");
        let bag_id = b.read(tag::OID, "bagId")?.oid("SafeBag")?;
        let wrapper = b.read(tag::CONTEXT_0, "bagValue")?;
        let attributes = match b.read_optional(tag::SET)? {
            Some(set) => parse_attributes(&set)?,
            None => BagAttributes::default(),
        };
        b.finish()?;
        let mut w = wrapper.reader("SafeBag");
        let value = w.read_any()?;
        w.finish()?;
        let (scheme, ciphertext) = if bag_id == oids::SHROUDED_KEY_BAG {
            if value.tag != tag::SEQUENCE {
                return Err(Error::malformed_at(
                    "pkcs8ShroudedKeyBag",
                    value.start,
                    "expected EncryptedPrivateKeyInfo",
                ));
            }
            let (s, ct) = parse_encrypted_private_key_info(&value, limits)?;
            (Some(s), ct)
        } else {
            (None, &[][..])
        };
        bags.push(RawBag {
            bag_id,
            value,
            attributes,
            scheme,
            ciphertext,
        });
    }
    Ok(bags)
}

/// `PKCS12Attribute ::= SEQUENCE { attrId OID, attrValues SET OF ANY }`.
fn parse_attributes(set: &Tlv<'_>) -> Result<BagAttributes> {
    const CTX: &str = "bag attributes";
    let mut out = BagAttributes::default();
    let mut r = set.reader(CTX);
    while !r.is_empty() {
        let attr = r.read(tag::SEQUENCE, "attribute")?;
        let mut a = attr.reader(CTX);
        let oid = a.read(tag::OID, "attrId")?.oid(CTX)?;
        let values = a.read(tag::SET, "attrValues")?;
        a.finish()?;
        let mut v = values.reader(CTX);
        if oid == oids::FRIENDLY_NAME {
            let t = v.read_any()?;
            // BMPString per RFC 7292; some writers use UTF8String.
            out.friendly_name = Some(match t.tag {
                tag::UTF8_STRING => String::from_utf8(t.value.to_vec())
                    .map_err(|_| Error::malformed_at(CTX, t.start, "friendlyName is not UTF-8"))?,
                _ => t.bmp_string(CTX)?,
            });
        } else if oid == oids::LOCAL_KEY_ID {
            out.local_key_id = Some(v.read(tag::OCTET_STRING, "localKeyId")?.value.to_vec());
        } else if oid == oids::JAVA_TRUSTED {
            out.java_trusted = true;
        } else {
            out.other.push(oid);
        }
    }
    Ok(out)
}

/// Plaintexts decrypted ahead of time, by the address and length of their ciphertext (which
/// lives, unmoved, in the normalised input or a container for the whole read). `None`: the
/// decryption failed.
type Predecrypted = std::collections::HashMap<(usize, usize), Result<Zeroizing<Vec<u8>>>>;

fn ciphertext_key(ciphertext: &[u8]) -> (usize, usize) {
    (ciphertext.as_ptr() as usize, ciphertext.len())
}

/// Derives the MAC key (when there is a MAC) and runs every decryption side by side
/// ([`crate::parallel`]); each job owns copies of its inputs. The key is `None` when there is no
/// MAC or its job failed.
fn derive_in_parallel(
    mac: Option<&MacAlgorithm>,
    password: &Password,
    tasks: &[(&EncryptionScheme, &[u8])],
) -> (Option<Zeroizing<Vec<u8>>>, Predecrypted) {
    enum Outcome {
        MacKey(Zeroizing<Vec<u8>>),
        Plain(Result<Zeroizing<Vec<u8>>>),
    }
    let mut jobs: Vec<Job<Outcome>> = Vec::with_capacity(tasks.len() + 1);
    if let Some(alg) = mac {
        let (alg, password) = (alg.clone(), password.clone());
        jobs.push(Box::new(move || Outcome::MacKey(alg.derive_key(&password))));
    }
    let mac_jobs = jobs.len();
    for (scheme, ciphertext) in tasks {
        let (scheme, ciphertext, password) =
            ((*scheme).clone(), ciphertext.to_vec(), password.clone());
        jobs.push(Box::new(move || {
            Outcome::Plain(scheme.decrypt(&password, &ciphertext))
        }));
    }
    let mut outcomes = run_all(jobs).into_iter();
    let mac_key = match mac_jobs {
        0 => None,
        _ => match outcomes.next() {
            Some(Some(Outcome::MacKey(key))) => Some(key),
            _ => None,
        },
    };
    let mut predecrypted = Predecrypted::new();
    for ((_, ciphertext), outcome) in tasks.iter().zip(outcomes) {
        let plain = match outcome {
            Some(Outcome::Plain(plain)) => plain,
            _ => Err(Error::Invalid("a key derivation job failed".into())),
        };
        predecrypted.insert(ciphertext_key(ciphertext), plain);
    }
    (mac_key, predecrypted)
}

/// What a failed decryption of `what` reports: a limit or an unsupported algorithm as such;
/// garbage (bad padding, unparsable plaintext) as a wrong password, since CBC cannot tell them
/// apart.
fn decryption_error(e: Error, what: &str) -> Error {
    match e {
        Error::Malformed { .. } | Error::WrongPassword { .. } => {
            Error::wrong_password(what.to_string())
        }
        other => other,
    }
}

/// State while turning bags into the archive's lists.
struct Collector<'l, 'p> {
    /// Plaintexts derived ahead of time under the only candidate password.
    predecrypted: Predecrypted,
    limits: &'l Limits,
    budget: WorkBudget<'l>,
    /// Passwords to try, the one that verified the MAC (or last decrypted) first.
    passwords: Vec<&'p Password>,
    /// A separate password for shrouded keys, tried before the others.
    key_password: Option<&'p Password>,
    archive: Archive,
    bag_count: usize,
}

impl Collector<'_, '_> {
    /// Decrypts with each candidate password in turn; `accept` checks that the plaintext makes
    /// sense (a correct CBC padding happens by chance once in 256 tries).
    fn decrypt<T>(
        &mut self,
        scheme: &EncryptionScheme,
        ciphertext: &[u8],
        what: &str,
        accept: impl Fn(&[u8], &Limits) -> Result<T>,
    ) -> Result<T> {
        if let Some(outcome) = self.predecrypted.remove(&ciphertext_key(ciphertext)) {
            // Derived under the only candidate password: another try would repeat the same KDF
            // for the same answer.
            return outcome
                .and_then(|plain| accept(&plain, self.limits))
                .map_err(|e| decryption_error(e, what));
        }
        let mut last = None;
        for i in 0..self.passwords.len() {
            let Some(pw) = self.passwords.get(i).copied() else {
                break;
            };
            // The first try was charged when the item was found; each further one costs as much.
            if i > 0 {
                charge(&mut self.budget, scheme, ciphertext)?;
            }
            match scheme
                .decrypt(pw, ciphertext)
                .and_then(|pt| accept(&pt, self.limits))
            {
                Ok(v) => {
                    self.passwords.rotate_left(i);
                    return Ok(v);
                }
                Err(e @ (Error::LimitExceeded { .. } | Error::Unsupported { .. })) => {
                    return Err(e);
                }
                Err(e) => last = Some(e),
            }
        }
        Err(decryption_error(
            last.unwrap_or_else(|| Error::wrong_password(what)),
            what,
        ))
    }

    fn collect(
        &mut self,
        bags: Vec<RawBag<'_>>,
        container: Option<&EncryptionScheme>,
        depth: usize,
    ) -> Result<()> {
        if depth > self.limits.max_depth {
            return Err(Error::LimitExceeded {
                limit: LimitKind::NestingDepth,
                value: depth as u64,
                bound: self.limits.max_depth as u64,
            });
        }
        for bag in bags {
            self.bag_count += 1;
            if self.bag_count > self.limits.max_entries {
                return Err(Error::LimitExceeded {
                    limit: LimitKind::EntryCount,
                    value: self.bag_count as u64,
                    bound: self.limits.max_entries as u64,
                });
            }
            self.bag(bag, container, depth)?;
        }
        Ok(())
    }

    fn bag(
        &mut self,
        bag: RawBag<'_>,
        container: Option<&EncryptionScheme>,
        depth: usize,
    ) -> Result<()> {
        let id = bag.bag_id;
        if id == oids::KEY_BAG {
            let key = parse_private_key(bag.value.raw, self.limits)?;
            self.archive.keys.push(KeyBag {
                key,
                attributes: bag.attributes,
                encryption: None,
            });
        } else if id == oids::SHROUDED_KEY_BAG {
            let scheme = bag.scheme.ok_or_else(|| {
                Error::malformed("pkcs8ShroudedKeyBag", "no encryption algorithm")
            })?;
            let what = match &bag.attributes.friendly_name {
                Some(n) => format!("private key '{n}'"),
                None => format!("private key #{}", self.archive.keys.len()),
            };
            let key = match self.key_password {
                Some(kp) => {
                    // A further derivation: charged like the first.
                    charge(&mut self.budget, &scheme, bag.ciphertext)?;
                    match scheme
                        .decrypt(kp, bag.ciphertext)
                        .and_then(|pt| parse_private_key(&pt, self.limits))
                    {
                        Ok(key) => {
                            // The plaintext derived ahead under the archive password is unused.
                            self.predecrypted.remove(&ciphertext_key(bag.ciphertext));
                            key
                        }
                        Err(e @ (Error::LimitExceeded { .. } | Error::Unsupported { .. })) => {
                            return Err(e);
                        }
                        Err(_) => {
                            self.decrypt(&scheme, bag.ciphertext, &what, parse_private_key)?
                        }
                    }
                }
                None => self.decrypt(&scheme, bag.ciphertext, &what, parse_private_key)?,
            };
            self.archive.keys.push(KeyBag {
                key,
                attributes: bag.attributes,
                encryption: Some(scheme),
            });
        } else if id == oids::CERT_BAG {
            match parse_cert_bag(&bag.value)? {
                Ok(octets) => {
                    // Decoding is charged before it runs; names are bounded inside.
                    self.budget
                        .charge_work(work::certificate(octets.value.len()))?;
                    match Certificate::from_der_with(octets.value, self.limits) {
                        Ok(certificate) => self.archive.certificates.push(CertBag {
                            certificate,
                            attributes: bag.attributes,
                            encryption: container.cloned(),
                        }),
                        Err(Error::Malformed { reason, .. }) => self
                            .archive
                            .unparsed_certificates
                            .push(UnparsedCertificate {
                                der: octets.value.to_vec(),
                                reason,
                                attributes: bag.attributes,
                            }),
                        Err(other) => return Err(other),
                    }
                }
                Err(cert_type) => self.archive.other_bags.push(OtherBag {
                    kind: OtherBagKind::Certificate(cert_type),
                    attributes: bag.attributes,
                    value: Zeroizing::new(bag.value.raw.to_vec()),
                }),
            }
        } else if id == oids::SAFE_CONTENTS_BAG {
            let nested = parse_safe_contents_shallow(bag.value.raw, self.limits)?;
            charge_bags(&mut self.budget, &nested)?;
            self.collect(nested, container, depth + 1)?;
        } else {
            let kind = match id {
                o if o == oids::CRL_BAG => OtherBagKind::Crl,
                o if o == oids::SECRET_BAG => OtherBagKind::Secret,
                o => OtherBagKind::Unknown(o),
            };
            self.archive.other_bags.push(OtherBag {
                kind,
                attributes: bag.attributes,
                value: Zeroizing::new(bag.value.raw.to_vec()),
            });
        }
        Ok(())
    }
}

fn parse_private_key(der: &[u8], limits: &Limits) -> Result<PrivateKey> {
    let der = Zeroizing::new(ber::normalize(der, asn1_depth(limits))?);
    PrivateKey::from_pkcs8_der(&der)
}

/// `CertBag ::= SEQUENCE { certId OID, certValue [0] EXPLICIT ANY }`; x509Certificate values are
/// an OCTET STRING holding the DER certificate. Returns that OCTET STRING, or the type OID of a
/// certificate kind pfxkit does not interpret.
fn parse_cert_bag<'a>(value: &Tlv<'a>) -> Result<std::result::Result<Tlv<'a>, Oid>> {
    const CTX: &str = "CertBag";
    let mut r = value.reader(CTX);
    let cert_type = r.read(tag::OID, "certId")?.oid(CTX)?;
    let wrapper = r.read(tag::CONTEXT_0, "certValue")?;
    r.finish()?;
    if cert_type != oids::X509_CERTIFICATE {
        return Ok(Err(cert_type));
    }
    let mut w = wrapper.reader(CTX);
    let octets = w.read(tag::OCTET_STRING, "x509Certificate")?;
    w.finish()?;
    Ok(Ok(octets))
}
