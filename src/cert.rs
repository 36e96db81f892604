//! X.509 certificates: parsed once, with the facts pfxkit reports and the chain ordering it needs.

use std::collections::{HashMap, HashSet};
use std::fmt;

use der::{Decode, Encode};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use spki::SubjectPublicKeyInfoRef;
use x509_cert::ext::pkix::{AuthorityKeyIdentifier, SubjectKeyIdentifier};

use crate::error::{Error, LimitKind, Result};
use crate::limits::Limits;

/// An X.509 certificate with its DER bytes and thumbprints.
#[derive(Clone)]
pub struct Certificate {
    der: Vec<u8>,
    // Boxed: the parsed form is large and certificates move around in vectors and enums.
    parsed: Box<x509_cert::Certificate>,
    /// SubjectPublicKeyInfo DER, kept so key matching need not re-encode it per check.
    spki_der: Vec<u8>,
    /// Subject and issuer names as DER, and the key identifiers: chain building compares them
    /// across whole pools, so they are extracted once.
    subject_der: Vec<u8>,
    issuer_der: Vec<u8>,
    subject_key_id: Option<Vec<u8>>,
    authority_key_id: Option<Vec<u8>>,
    sha1: [u8; 20],
    sha256: [u8; 32],
    /// The validity times as written, when `x509-cert` could not represent them (a UTCTime
    /// before 1970): RFC 3339 text for notBefore and notAfter.
    times_as_written: Option<[Option<String>; 2]>,
}

impl fmt::Debug for Certificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Certificate")
            .field("subject", &self.subject())
            .field("sha256", &self.sha256_hex())
            .finish()
    }
}

impl PartialEq for Certificate {
    fn eq(&self, other: &Self) -> bool {
        self.der == other.der
    }
}
impl Eq for Certificate {}

impl Certificate {
    /// Parses one DER certificate under the default [`Limits`]; trailing bytes are an error.
    ///
    /// # Errors
    /// As [`Certificate::from_der_with`].
    pub fn from_der(der: &[u8]) -> Result<Self> {
        Self::from_der_with(der, &Limits::default())
    }

    /// Parses one DER certificate; trailing bytes are an error. Its subject and issuer names
    /// are counted first, against [`Limits::max_name_attributes`] and [`Limits::max_name_depth`],
    /// before anything is decoded.
    ///
    /// As tolerant as OpenSSL and `cryptography` about validity times: a UTCTime from 1950 to
    /// 1969 (valid X.509, as in PKITS' "pre2000 UTC notBefore") is read, although `x509-cert`
    /// starts its calendar at 1970; [`Certificate::not_before_unix`] then says 0 and
    /// [`Certificate::not_before_rfc3339`] the time as written.
    ///
    /// # Errors
    /// [`Error::Malformed`] when the bytes are not one X.509 certificate;
    /// [`Error::LimitExceeded`] for a name with too many attributes or too deep.
    pub fn from_der_with(der: &[u8], limits: &Limits) -> Result<Self> {
        check_names(der, limits)?;
        match x509_cert::Certificate::from_der(der) {
            Ok(parsed) => Self::from_parsed(der, parsed, None),
            Err(e) => {
                let Some((patched, written)) = clamp_pre1970_times(der) else {
                    return Err(Error::from_der("X.509 certificate", e));
                };
                let parsed = x509_cert::Certificate::from_der(&patched)
                    .map_err(|_| Error::from_der("X.509 certificate", e))?;
                Self::from_parsed(der, parsed, Some(written))
            }
        }
    }

    fn from_parsed(
        der: &[u8],
        parsed: x509_cert::Certificate,
        times_as_written: Option<[Option<String>; 2]>,
    ) -> Result<Self> {
        let tbs = parsed.tbs_certificate();
        let spki_der = tbs
            .subject_public_key_info()
            .to_der()
            .map_err(|e| Error::from_der("certificate public key", e))?;
        let subject_der = tbs
            .subject()
            .to_der()
            .map_err(|e| Error::from_der("certificate subject", e))?;
        let issuer_der = tbs
            .issuer()
            .to_der()
            .map_err(|e| Error::from_der("certificate issuer", e))?;
        let subject_key_id = tbs
            .get_extension::<SubjectKeyIdentifier>()
            .ok()
            .flatten()
            .map(|(_, ski)| ski.0.as_bytes().to_vec());
        let authority_key_id = tbs
            .get_extension::<AuthorityKeyIdentifier>()
            .ok()
            .flatten()
            .and_then(|(_, aki)| aki.key_identifier.map(|k| k.as_bytes().to_vec()));
        Ok(Certificate {
            der: der.to_vec(),
            spki_der,
            subject_der,
            issuer_der,
            subject_key_id,
            authority_key_id,
            parsed: Box::new(parsed),
            sha1: Sha1::digest(der).into(),
            sha256: Sha256::digest(der).into(),
            times_as_written,
        })
    }

    /// The DER encoding.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// The parsed structure, for callers that need more than pfxkit reports.
    pub fn x509(&self) -> &x509_cert::Certificate {
        &self.parsed
    }

    /// The subject as an RFC 4514 string (most specific RDN first).
    pub fn subject(&self) -> String {
        self.parsed.tbs_certificate().subject().to_string()
    }

    /// The issuer as an RFC 4514 string.
    pub fn issuer(&self) -> String {
        self.parsed.tbs_certificate().issuer().to_string()
    }

    /// The serial number as lowercase hex without leading zeros (`0` for zero).
    pub fn serial_hex(&self) -> String {
        let bytes = self.parsed.tbs_certificate().serial_number().as_bytes();
        let hex = hex_lower(bytes);
        let trimmed = hex.trim_start_matches('0');
        if trimmed.is_empty() {
            "0".into()
        } else {
            trimmed.into()
        }
    }

    /// Start of validity, seconds since the Unix epoch (0 for a time before 1970).
    pub fn not_before_unix(&self) -> u64 {
        self.parsed
            .tbs_certificate()
            .validity()
            .not_before
            .to_unix_duration()
            .as_secs()
    }

    /// End of validity, seconds since the Unix epoch (0 for a time before 1970).
    pub fn not_after_unix(&self) -> u64 {
        self.parsed
            .tbs_certificate()
            .validity()
            .not_after
            .to_unix_duration()
            .as_secs()
    }

    /// Start of validity as RFC 3339 UTC (`2026-01-01T00:00:00Z`).
    pub fn not_before_rfc3339(&self) -> String {
        self.time_as_written(0)
            .unwrap_or_else(|| rfc3339(self.not_before_unix()))
    }

    /// End of validity as RFC 3339 UTC.
    pub fn not_after_rfc3339(&self) -> String {
        self.time_as_written(1)
            .unwrap_or_else(|| rfc3339(self.not_after_unix()))
    }

    fn time_as_written(&self, which: usize) -> Option<String> {
        self.times_as_written.as_ref()?.get(which)?.clone()
    }

    /// SHA-1 of the DER (the Windows "thumbprint" and the PKCS#12 localKeyId convention).
    pub fn sha1(&self) -> &[u8; 20] {
        &self.sha1
    }

    /// SHA-256 of the DER.
    pub fn sha256(&self) -> &[u8; 32] {
        &self.sha256
    }

    /// SHA-1 thumbprint as lowercase hex.
    pub fn sha1_hex(&self) -> String {
        hex_lower(&self.sha1)
    }

    /// SHA-256 thumbprint as lowercase hex.
    pub fn sha256_hex(&self) -> String {
        hex_lower(&self.sha256)
    }

    /// The subject public key.
    ///
    /// # Errors
    /// [`Error::Malformed`] if the key info cannot be re-read (it parsed once already, so this
    /// does not happen for certificates made by [`Certificate::from_der`]).
    pub fn with_public_key<T>(
        &self,
        f: impl FnOnce(&SubjectPublicKeyInfoRef<'_>) -> Result<T>,
    ) -> Result<T> {
        let spki = SubjectPublicKeyInfoRef::from_der(&self.spki_der)
            .map_err(|e| Error::from_der("certificate public key", e))?;
        f(&spki)
    }

    /// Whether subject and issuer are the same name (a root or a self-signed leaf).
    pub fn is_self_issued(&self) -> bool {
        self.subject_der == self.issuer_der
    }

    /// The subject alternative names as `dns:NAME`, `ip:ADDR`, `email:ADDR` or `uri:URI`
    /// (other name forms are left out); empty without the extension or when it does not parse.
    pub fn subject_alt_names(&self) -> Vec<String> {
        use x509_cert::ext::pkix::SubjectAltName;
        use x509_cert::ext::pkix::name::GeneralName;
        let Ok(Some((_, sans))) = self
            .parsed
            .tbs_certificate()
            .get_extension::<SubjectAltName>()
        else {
            return Vec::new();
        };
        sans.0
            .iter()
            .filter_map(|n| match n {
                GeneralName::DnsName(d) => Some(format!("dns:{d}")),
                GeneralName::Rfc822Name(e) => Some(format!("email:{e}")),
                GeneralName::UniformResourceIdentifier(u) => Some(format!("uri:{u}")),
                GeneralName::IpAddress(ip) => {
                    let bytes = ip.as_bytes();
                    let addr = match bytes.len() {
                        4 => <[u8; 4]>::try_from(bytes).ok().map(std::net::IpAddr::from),
                        16 => <[u8; 16]>::try_from(bytes).ok().map(std::net::IpAddr::from),
                        _ => None,
                    };
                    addr.map(|a| format!("ip:{a}"))
                }
                _ => None,
            })
            .collect()
    }

    /// The key usages (RFC 5280 §4.2.1.3) by their RFC names (`digitalSignature`,
    /// `keyCertSign`, …); empty without the extension.
    pub fn key_usage(&self) -> Vec<&'static str> {
        use x509_cert::ext::pkix::{KeyUsage, KeyUsages};
        let Ok(Some((_, usage))) = self.parsed.tbs_certificate().get_extension::<KeyUsage>() else {
            return Vec::new();
        };
        [
            (KeyUsages::DigitalSignature, "digitalSignature"),
            (KeyUsages::NonRepudiation, "nonRepudiation"),
            (KeyUsages::KeyEncipherment, "keyEncipherment"),
            (KeyUsages::DataEncipherment, "dataEncipherment"),
            (KeyUsages::KeyAgreement, "keyAgreement"),
            (KeyUsages::KeyCertSign, "keyCertSign"),
            (KeyUsages::CRLSign, "cRLSign"),
            (KeyUsages::EncipherOnly, "encipherOnly"),
            (KeyUsages::DecipherOnly, "decipherOnly"),
        ]
        .into_iter()
        .filter(|(flag, _)| usage.0.contains(*flag))
        .map(|(_, name)| name)
        .collect()
    }

    /// The extended key usages: `serverAuth`, `clientAuth`, `codeSigning`, `emailProtection`,
    /// `timeStamping`, `OCSPSigning`, or the dotted OID of any other; empty without the
    /// extension.
    pub fn extended_key_usage(&self) -> Vec<String> {
        use der::asn1::ObjectIdentifier as Oid;
        use x509_cert::ext::pkix::ExtendedKeyUsage;
        // RFC 5280 §4.2.1.12, id-kp.
        const KNOWN: [(Oid, &str); 6] = [
            (Oid::new_unwrap("1.3.6.1.5.5.7.3.1"), "serverAuth"),
            (Oid::new_unwrap("1.3.6.1.5.5.7.3.2"), "clientAuth"),
            (Oid::new_unwrap("1.3.6.1.5.5.7.3.3"), "codeSigning"),
            (Oid::new_unwrap("1.3.6.1.5.5.7.3.4"), "emailProtection"),
            (Oid::new_unwrap("1.3.6.1.5.5.7.3.8"), "timeStamping"),
            (Oid::new_unwrap("1.3.6.1.5.5.7.3.9"), "OCSPSigning"),
        ];
        let Ok(Some((_, eku))) = self
            .parsed
            .tbs_certificate()
            .get_extension::<ExtendedKeyUsage>()
        else {
            return Vec::new();
        };
        eku.0
            .iter()
            .map(|oid| {
                KNOWN
                    .iter()
                    .find(|(known, _)| known == oid)
                    .map_or_else(|| oid.to_string(), |(_, name)| (*name).to_string())
            })
            .collect()
    }
}

/// Orders a chain from `leaf` through `pool`: repeatedly the certificate whose subject is the
/// current issuer (a matching key identifier preferred), stopping at a self-issued certificate
/// or when nothing matches. Never loops: each certificate is used once. Returns indexes into
/// `pool`, leaf excluded. To build chains for many leaves over one pool, index it once with
/// [`ChainPool`].
pub fn chain_from(leaf: &Certificate, pool: &[Certificate]) -> Vec<usize> {
    ChainPool::new(pool).chain_from(leaf, pool.len())
}

/// A pool of certificates indexed by subject name and key identifier, so that each step of a
/// chain is a lookup rather than a scan of the pool: a file with thousands of certificates and
/// keys must not cost thousands squared comparisons.
pub struct ChainPool<'a> {
    pool: &'a [Certificate],
    /// Pool indexes by subject name, in pool order.
    by_subject: HashMap<&'a [u8], Vec<usize>>,
    /// Pool indexes by (subject name, subject key identifier), in pool order.
    by_subject_and_key_id: HashMap<(&'a [u8], &'a [u8]), Vec<usize>>,
    /// Pool indexes of certificates without a subject key identifier, by subject name.
    without_key_id: HashMap<&'a [u8], Vec<usize>>,
}

impl<'a> ChainPool<'a> {
    /// Indexes `pool`.
    pub fn new(pool: &'a [Certificate]) -> Self {
        let mut indexed = ChainPool {
            pool,
            by_subject: HashMap::new(),
            by_subject_and_key_id: HashMap::new(),
            without_key_id: HashMap::new(),
        };
        for (i, c) in pool.iter().enumerate() {
            let subject = c.subject_der.as_slice();
            indexed.by_subject.entry(subject).or_default().push(i);
            match &c.subject_key_id {
                Some(ski) => indexed
                    .by_subject_and_key_id
                    .entry((subject, ski.as_slice()))
                    .or_default()
                    .push(i),
                None => indexed.without_key_id.entry(subject).or_default().push(i),
            }
        }
        indexed
    }

    /// The chain of `leaf` through the pool, at most `max_len` certificates long, as
    /// [`chain_from`] orders it: at each step the first unused certificate whose subject is the
    /// current issuer and whose key identifier equals the current authority key identifier;
    /// failing that, the first whose identifiers do not contradict it.
    pub fn chain_from(&self, leaf: &Certificate, max_len: usize) -> Vec<usize> {
        let mut used: HashSet<&[u8; 32]> = HashSet::from([leaf.sha256()]);
        let mut chain = Vec::new();
        let mut current = leaf;
        while chain.len() < max_len && !current.is_self_issued() {
            let issuer = current.issuer_der.as_slice();
            let first_unused = |list: Option<&Vec<usize>>| {
                list.into_iter()
                    .flatten()
                    .copied()
                    .find(|&i| self.pool.get(i).is_some_and(|c| !used.contains(c.sha256())))
            };
            let next = match &current.authority_key_id {
                Some(aki) => {
                    first_unused(self.by_subject_and_key_id.get(&(issuer, aki.as_slice())))
                        .or_else(|| first_unused(self.without_key_id.get(issuer)))
                }
                None => first_unused(self.by_subject.get(issuer)),
            };
            let Some((i, next)) = next.and_then(|i| Some((i, self.pool.get(i)?))) else {
                break;
            };
            used.insert(next.sha256());
            chain.push(i);
            current = next;
        }
        chain
    }
}

/// Orders a set of certificates leaf-first: the first certificate that issued none of the
/// others, then its chain from the set (at most `max_chain_len` long); certificates outside that
/// chain follow in their order.
pub fn order_leaf_first(certs: Vec<Certificate>, max_chain_len: usize) -> Vec<Certificate> {
    // For each issuer name of a certificate that is not self-issued: whether one of them has no
    // authority key identifier, and the identifiers the others name.
    let mut issued: HashMap<&[u8], (bool, HashSet<&[u8]>)> = HashMap::new();
    for o in certs.iter().filter(|o| !o.is_self_issued()) {
        let entry = issued.entry(o.issuer_der.as_slice()).or_default();
        match &o.authority_key_id {
            Some(aki) => {
                entry.1.insert(aki.as_slice());
            }
            None => entry.0 = true,
        }
    }
    // `c` issued another when that one names c's subject and its identifiers do not contradict
    // c's. (`c` itself never counts: it would have to be self-issued.)
    let issues_another = |c: &Certificate| {
        issued
            .get(c.subject_der.as_slice())
            .is_some_and(|(any_without, akis)| match &c.subject_key_id {
                None => true,
                Some(ski) => *any_without || akis.contains(ski.as_slice()),
            })
    };
    let Some(leaf_idx) = certs.iter().position(|c| !issues_another(c)) else {
        return certs;
    };
    let Some(leaf) = certs.get(leaf_idx) else {
        return certs;
    };
    let chain = ChainPool::new(&certs).chain_from(leaf, max_chain_len);
    let in_chain: HashSet<usize> = chain.iter().copied().collect();
    let mut ordered = vec![leaf.clone()];
    ordered.extend(chain.iter().filter_map(|i| certs.get(*i).cloned()));
    for (i, c) in certs.iter().enumerate() {
        if i != leaf_idx && !in_chain.contains(&i) {
            ordered.push(c.clone());
        }
    }
    ordered
}

/// One DER header at `pos`: (tag, content start, content end). Definite lengths only.
fn der_header(der: &[u8], pos: usize) -> Option<(u8, usize, usize)> {
    let tag = *der.get(pos)?;
    let first = *der.get(pos + 1)?;
    let (len, start) = match first {
        n if n < 0x80 => (usize::from(n), pos + 2),
        0x81..=0x84 => {
            let n = usize::from(first & 0x7f);
            let bytes = der.get(pos + 2..pos + 2 + n)?;
            let len = bytes
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
            (len, pos + 2 + n)
        }
        _ => return None,
    };
    let end = start.checked_add(len)?;
    (end <= der.len()).then_some((tag, start, end))
}

/// The children of the constructed element whose content is `start..end`.
fn der_children(der: &[u8], start: usize, end: usize) -> impl Iterator<Item = (u8, usize, usize)> {
    let mut pos = start;
    std::iter::from_fn(move || {
        if pos >= end {
            return None;
        }
        let (tag, s, e) = der_header(der, pos)?;
        if e > end {
            return None;
        }
        pos = e;
        Some((tag, s, e))
    })
}

/// The positions of the issuer, validity and subject of a DER certificate (tag, start, end of
/// content each), or `None` when its outline is not that of a certificate (then `x509-cert`
/// reports what is wrong).
fn tbs_fields(der: &[u8]) -> Option<[(u8, usize, usize); 3]> {
    let (_, cs, ce) = der_header(der, 0)?;
    let (_, ts, te) = der_children(der, cs, ce).next()?;
    let mut fields = der_children(der, ts, te).peekable();
    if fields.peek().is_some_and(|(tag, _, _)| *tag == 0xa0) {
        fields.next(); // version
    }
    fields.next(); // serialNumber
    fields.next(); // signature
    let issuer = fields.next()?;
    let validity = fields.next()?;
    let subject = fields.next()?;
    Some([issuer, validity, subject])
}

/// Counts the attributes and measures the nesting of the subject and issuer names before
/// `x509-cert` decodes them (its cost grows much faster than the bytes of a huge name).
fn check_names(der: &[u8], limits: &Limits) -> Result<()> {
    let Some([issuer, _, subject]) = tbs_fields(der) else {
        return Ok(());
    };
    for (_, start, end) in [issuer, subject] {
        let mut attributes = 0usize;
        for (_, rs, re) in der_children(der, start, end) {
            for (_, as_, ae) in der_children(der, rs, re) {
                attributes += 1;
                Limits::check(
                    LimitKind::NameAttributes,
                    attributes as u64,
                    limits.max_name_attributes as u64,
                )?;
                // Name (1) > RDN SET (2) > attribute SEQUENCE (3) > its fields (4 …).
                name_depth(der, as_, ae, 4, limits.max_name_depth)?;
            }
        }
    }
    Ok(())
}

/// Checks that the elements in `start..end`, at `depth`, nest no deeper than `max`.
fn name_depth(der: &[u8], start: usize, end: usize, depth: usize, max: usize) -> Result<()> {
    for (tag, s, e) in der_children(der, start, end) {
        Limits::check(LimitKind::NestingDepth, depth as u64, max as u64)?;
        if tag & 0x20 != 0 {
            name_depth(der, s, e, depth + 1, max)?;
        }
    }
    Ok(())
}

/// A copy of `der` with every validity time before 1970 replaced by 1970-01-01T00:00:00Z in the
/// same encoding and length, and the times as written (RFC 3339); `None` when no time needed
/// it. `x509-cert`'s calendar starts at the Unix epoch, while UTCTime reaches back to 1950.
fn clamp_pre1970_times(der: &[u8]) -> Option<(Vec<u8>, [Option<String>; 2])> {
    let [_, (_, vs, ve), _] = tbs_fields(der)?;
    let mut patched = der.to_vec();
    let mut written = [None, None];
    let mut changed = false;
    for ((tag, s, e), slot) in der_children(der, vs, ve).zip(written.iter_mut()) {
        let text = std::str::from_utf8(der.get(s..e)?).ok()?;
        let (year, rest, epoch): (u32, &str, &[u8]) = match (tag, text.len()) {
            // UTCTime YYMMDDHHMMSSZ: 50–99 are 1950–1999.
            (0x17, 13) => {
                let yy: u32 = text.get(..2)?.parse().ok()?;
                let year = if yy >= 50 { 1900 + yy } else { 2000 + yy };
                (year, text.get(2..)?, b"700101000000Z")
            }
            // GeneralizedTime YYYYMMDDHHMMSSZ.
            (0x18, 15) => (
                text.get(..4)?.parse().ok()?,
                text.get(4..)?,
                b"19700101000000Z",
            ),
            _ => continue,
        };
        if year >= 1970 {
            continue;
        }
        let field = |r: std::ops::Range<usize>| rest.get(r);
        *slot = Some(format!(
            "{year:04}-{}-{}T{}:{}:{}Z",
            field(0..2)?,
            field(2..4)?,
            field(4..6)?,
            field(6..8)?,
            field(8..10)?
        ));
        patched.get_mut(s..e)?.copy_from_slice(epoch);
        changed = true;
    }
    changed.then_some((patched, written))
}

/// Lowercase hex without separators.
pub fn hex_lower(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// Milliseconds since the Unix epoch, now (0 if the clock is before 1970).
pub fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Formats seconds since the Unix epoch as RFC 3339 UTC.
pub fn rfc3339(unix: u64) -> String {
    let days = (unix / 86_400) as i64;
    let secs = unix % 86_400;
    // Civil-from-days (H. Hinnant's algorithm), valid for the whole X.509 time range.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        (secs / 60) % 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_rfc3339_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_767_225_600), "2026-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400 + 3661), "2000-02-29T01:01:01Z");
        assert_eq!(rfc3339(253_402_300_799), "9999-12-31T23:59:59Z");
    }
}
