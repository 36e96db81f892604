//! Archive integrity: the classic PKCS#12 MAC (RFC 7292 §4, app. B) and PBMAC1 (RFC 9579).

use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::kdf::{HashAlg, KdfPurpose};
use super::oids;
use super::scheme::{parse_iterations, parse_pbkdf2_params, parse_salt};
use crate::asn1::{Tlv, enc, tag};
use crate::error::{Error, LimitKind, Result};
use crate::limits::Limits;
use crate::secret::Password;

/// How an archive's MAC is computed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MacAlgorithm {
    /// HMAC keyed by the PKCS#12 KDF (ID 3) over a BMPString password.
    Classic {
        /// The HMAC and KDF hash.
        hash: HashAlg,
        /// KDF salt.
        salt: Vec<u8>,
        /// KDF iterations.
        iterations: u32,
    },
    /// PBMAC1: HMAC keyed by PBKDF2 over the UTF-8 password.
    Pbmac1 {
        /// PBKDF2's PRF hash.
        prf: HashAlg,
        /// PBKDF2 salt.
        salt: Vec<u8>,
        /// PBKDF2 iterations.
        iterations: u32,
        /// Derived key length in bytes.
        key_len: usize,
        /// The message authentication HMAC's hash.
        hmac: HashAlg,
    },
}

impl MacAlgorithm {
    /// The name used in reports: `hmac-sha256`, `pbmac1-hmac-sha512`.
    pub fn name(&self) -> String {
        match self {
            MacAlgorithm::Classic { hash, .. } => format!("hmac-{}", hash.name()),
            MacAlgorithm::Pbmac1 { hmac, .. } => format!("pbmac1-hmac-{}", hmac.name()),
        }
    }

    /// The KDF iteration count.
    pub fn iterations(&self) -> u32 {
        match self {
            MacAlgorithm::Classic { iterations, .. } | MacAlgorithm::Pbmac1 { iterations, .. } => {
                *iterations
            }
        }
    }

    /// [Work units](crate::limits::work) of verifying the MAC over `data_len` bytes once: the
    /// key derivation and the HMAC.
    pub(crate) fn work(&self, data_len: usize) -> u64 {
        match self {
            MacAlgorithm::Classic {
                hash,
                salt,
                iterations,
            } => hash
                .pkcs12_kdf_work(*iterations, salt.len(), hash.output_len())
                .saturating_add(hash.hmac_work(data_len)),
            MacAlgorithm::Pbmac1 {
                prf,
                salt,
                iterations,
                key_len,
                hmac,
            } => prf
                .pbkdf2_work(*iterations, salt.len(), *key_len)
                .saturating_add(hmac.hmac_work(data_len)),
        }
    }

    /// The MAC key (the expensive part, independent of the data).
    pub(crate) fn derive_key(&self, password: &Password) -> Zeroizing<Vec<u8>> {
        match self {
            MacAlgorithm::Classic {
                hash,
                salt,
                iterations,
            } => hash.pkcs12_kdf(
                &password.bmp_bytes(),
                salt,
                KdfPurpose::Mac,
                *iterations,
                hash.output_len(),
            ),
            MacAlgorithm::Pbmac1 {
                prf,
                salt,
                iterations,
                key_len,
                ..
            } => {
                let mut key = Zeroizing::new(vec![0u8; *key_len]);
                prf.pbkdf2(password.utf8_bytes(), salt, *iterations, &mut key);
                key
            }
        }
    }

    /// The MAC of `data` under a key from [`MacAlgorithm::derive_key`].
    pub(crate) fn mac_with_key(&self, key: &[u8], data: &[u8]) -> Zeroizing<Vec<u8>> {
        match self {
            MacAlgorithm::Classic { hash, .. } => hash.hmac(key, data),
            MacAlgorithm::Pbmac1 { hmac, .. } => hmac.hmac(key, data),
        }
    }

    /// Whether `expected` is the MAC of `data` under `password`, compared in constant time.
    pub(crate) fn verify(&self, password: &Password, data: &[u8], expected: &[u8]) -> bool {
        self.verify_with_key(&self.derive_key(password), data, expected)
    }

    /// [`MacAlgorithm::verify`] with a key from [`MacAlgorithm::derive_key`].
    pub(crate) fn verify_with_key(&self, key: &[u8], data: &[u8], expected: &[u8]) -> bool {
        let actual = self.mac_with_key(key, data);
        bool::from(actual.as_slice().ct_eq(expected))
    }

    /// Encodes `MacData` for a computed `mac` value.
    pub(crate) fn mac_data_der(&self, mac: &[u8]) -> Vec<u8> {
        match self {
            MacAlgorithm::Classic {
                hash,
                salt,
                iterations,
            } => {
                let digest_info = enc::seq(&[
                    &enc::algorithm(&hash.digest_oid(), Some(&enc::null())),
                    &enc::octets(mac),
                ]);
                enc::seq(&[
                    &digest_info,
                    &enc::octets(salt),
                    &enc::uint(u64::from(*iterations)),
                ])
            }
            MacAlgorithm::Pbmac1 {
                prf,
                salt,
                iterations,
                key_len,
                hmac,
            } => {
                let kdf_params = enc::seq(&[
                    &enc::octets(salt),
                    &enc::uint(u64::from(*iterations)),
                    &enc::uint(*key_len as u64),
                    &enc::algorithm(&prf.hmac_oid(), Some(&enc::null())),
                ]);
                let params = enc::seq(&[
                    &enc::algorithm(&oids::PBKDF2, Some(&kdf_params)),
                    &enc::algorithm(&hmac.hmac_oid(), Some(&enc::null())),
                ]);
                let digest_info = enc::seq(&[
                    &enc::algorithm(&oids::PBMAC1, Some(&params)),
                    &enc::octets(mac),
                ]);
                // RFC 9579 §4: macSalt and iterations are ignored by readers but must be
                // present; writers repeat the PBKDF2 values, as OpenSSL does.
                enc::seq(&[
                    &digest_info,
                    &enc::octets(salt),
                    &enc::uint(u64::from(*iterations)),
                ])
            }
        }
    }
}

/// `MacData ::= SEQUENCE { mac DigestInfo, macSalt OCTET STRING, iterations INTEGER DEFAULT 1 }`
/// with `DigestInfo ::= SEQUENCE { digestAlgorithm AlgorithmIdentifier, digest OCTET STRING }`.
/// Returns the algorithm and the expected MAC value.
pub(crate) fn parse_mac_data<'a>(
    mac_data: &Tlv<'a>,
    limits: &Limits,
) -> Result<(MacAlgorithm, &'a [u8])> {
    const CTX: &str = "PKCS#12 MacData";
    let mut r = mac_data.reader(CTX);
    let digest_info = r.read(tag::SEQUENCE, "DigestInfo")?;
    let salt_tlv = r.read(tag::OCTET_STRING, "macSalt")?;
    // An explicitly encoded DEFAULT (iterations = 1) is not strict DER but is common, RFC 9579's
    // own vectors among them: accept it.
    let iterations_tlv = r.read_optional(tag::INTEGER)?;
    r.finish()?;

    let mut d = digest_info.reader(CTX);
    let alg = d.read(tag::SEQUENCE, "digestAlgorithm")?;
    let digest = d.read(tag::OCTET_STRING, "digest")?;
    d.finish()?;
    let mut a = alg.reader(CTX);
    let oid = a.read(tag::OID, "digest OID")?.oid(CTX)?;

    if oid == oids::PBMAC1 {
        let params = a.read(tag::SEQUENCE, "PBMAC1-params")?;
        a.finish()?;
        let mut p = params.reader(CTX);
        let kdf = p.read(tag::SEQUENCE, "keyDerivationFunc")?;
        let scheme = p.read(tag::SEQUENCE, "messageAuthScheme")?;
        p.finish()?;
        let (salt, iterations, key_len, prf) = parse_pbkdf2_params(&kdf, limits)?;
        // RFC 9579 §3: keyLength is mandatory for PBMAC1.
        let key_len = key_len.ok_or_else(|| {
            Error::malformed_at(
                CTX,
                kdf.start,
                "PBMAC1 PBKDF2 parameters lack the mandatory keyLength",
            )
        })?;
        if key_len < limits.min_pbmac1_key_len as u64 {
            return Err(Error::LimitExceeded {
                limit: LimitKind::MacKeyLength,
                value: key_len,
                bound: limits.min_pbmac1_key_len as u64,
            });
        }
        Limits::check(
            LimitKind::MacKeyLength,
            key_len,
            limits.max_pbmac1_key_len as u64,
        )?;
        let mut s = scheme.reader(CTX);
        let hmac_oid = s.read(tag::OID, "messageAuthScheme OID")?.oid(CTX)?;
        let _ = s.read_optional(tag::NULL)?;
        s.finish()?;
        let hmac = HashAlg::from_hmac_oid(&hmac_oid).ok_or_else(|| {
            Error::unsupported_oid("PBMAC1 message authentication scheme", hmac_oid)
        })?;
        // The outer macSalt and iterations are ignored (RFC 9579 §4), but still bounded.
        parse_salt(&salt_tlv, CTX, limits)?;
        return Ok((
            MacAlgorithm::Pbmac1 {
                prf,
                salt: salt.to_vec(),
                iterations,
                key_len: key_len as usize,
                hmac,
            },
            digest.value,
        ));
    }

    if let Some(t) = a.read_optional(tag::NULL)?
        && !t.value.is_empty()
    {
        return Err(Error::malformed_at(CTX, t.start, "non-empty NULL"));
    }
    a.finish()?;
    let hash = HashAlg::from_digest_oid(&oid)
        .ok_or_else(|| Error::unsupported_oid("MAC digest algorithm", oid))?;
    if digest.value.len() != hash.output_len() {
        return Err(Error::malformed_at(
            CTX,
            digest.start,
            format!("{}-byte MAC for {}", digest.value.len(), hash.name()),
        ));
    }
    let salt = parse_salt(&salt_tlv, CTX, limits)?;
    let iterations = match iterations_tlv {
        Some(t) => parse_iterations(&t, CTX, limits)?,
        None => 1,
    };
    Ok((
        MacAlgorithm::Classic {
            hash,
            salt: salt.to_vec(),
            iterations,
        },
        digest.value,
    ))
}
