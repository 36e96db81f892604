//! Password-based encryption schemes: PKCS#12 PBES1 (RFC 7292 app. C) and PBES2 (RFC 8018 §6.2).

use aes::cipher::block_padding::Pkcs7;
use aes::cipher::{
    BlockModeDecrypt, BlockModeEncrypt, InnerIvInit, KeyInit, KeyIvInit, StreamCipher,
};
use der::asn1::ObjectIdentifier as Oid;
use zeroize::Zeroizing;

use super::kdf::{HashAlg, KdfPurpose};
use super::oids;
use crate::asn1::{DerReader, Tlv, enc, tag};
use crate::error::{Error, LimitKind, Result};
use crate::limits::{Limits, work};
use crate::secret::Password;

/// A PKCS#12 PBES1 cipher (the `pbeWithSHAAnd…` family).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Pbes1Cipher {
    /// Three-key triple DES in CBC mode.
    TripleDes,
    /// Two-key triple DES in CBC mode.
    TwoKeyTripleDes,
    /// RC2-CBC with a 128-bit key.
    Rc2_128,
    /// RC2-CBC with a 40-bit key.
    Rc2_40,
    /// RC4 with a 128-bit key.
    Rc4_128,
    /// RC4 with a 40-bit key.
    Rc4_40,
}

/// What pfxkit knows of a cipher: its OID, report name, and (key, IV) lengths in bytes. One
/// table per family, so adding a cipher is one row.
pub(crate) struct CipherFacts<C> {
    cipher: C,
    oid: Oid,
    name: &'static str,
    sizes: (usize, usize),
}

/// One table row: cipher, OID, name, key and IV lengths.
const fn row<C>(cipher: C, oid: Oid, name: &'static str, key: usize, iv: usize) -> CipherFacts<C> {
    CipherFacts {
        cipher,
        oid,
        name,
        sizes: (key, iv),
    }
}

#[rustfmt::skip] // A table: one row per cipher.
const PBES1_CIPHERS: [CipherFacts<Pbes1Cipher>; 6] = [
    row(Pbes1Cipher::TripleDes, oids::PBE_SHA1_3DES, "pbe-sha1-3des", 24, 8),
    row(Pbes1Cipher::TwoKeyTripleDes, oids::PBE_SHA1_2DES, "pbe-sha1-2des", 16, 8),
    row(Pbes1Cipher::Rc2_128, oids::PBE_SHA1_RC2_128, "pbe-sha1-rc2-128", 16, 8),
    row(Pbes1Cipher::Rc2_40, oids::PBE_SHA1_RC2_40, "pbe-sha1-rc2-40", 5, 8),
    row(Pbes1Cipher::Rc4_128, oids::PBE_SHA1_RC4_128, "pbe-sha1-rc4-128", 16, 0),
    row(Pbes1Cipher::Rc4_40, oids::PBE_SHA1_RC4_40, "pbe-sha1-rc4-40", 5, 0),
];

#[rustfmt::skip] // A table: one row per cipher.
const PBES2_CIPHERS: [CipherFacts<Pbes2Cipher>; 4] = [
    row(Pbes2Cipher::Aes128Cbc, oids::AES_128_CBC, "aes-128-cbc", 16, 16),
    row(Pbes2Cipher::Aes192Cbc, oids::AES_192_CBC, "aes-192-cbc", 24, 16),
    row(Pbes2Cipher::Aes256Cbc, oids::AES_256_CBC, "aes-256-cbc", 32, 16),
    row(Pbes2Cipher::DesEde3Cbc, oids::DES_EDE3_CBC, "des-ede3-cbc", 24, 8),
];

/// A cipher family with its table. The lookups are the trait's; every variant has a row (the
/// tests check), so their fallbacks are never used.
pub(crate) trait CipherTable: Copy + PartialEq + 'static {
    /// The family's table.
    const TABLE: &'static [CipherFacts<Self>];

    /// The cipher an OID names, if it is one of this family.
    fn from_oid(oid: &Oid) -> Option<Self> {
        Self::TABLE.iter().find(|f| f.oid == *oid).map(|f| f.cipher)
    }

    /// This cipher's row.
    fn facts(self) -> Option<&'static CipherFacts<Self>> {
        Self::TABLE.iter().find(|f| f.cipher == self)
    }

    /// The OID.
    fn oid(self) -> Oid {
        self.facts().map_or(oids::DATA, |f| f.oid)
    }

    /// (key length, IV length) in bytes.
    fn sizes(self) -> (usize, usize) {
        self.facts().map_or((0, 0), |f| f.sizes)
    }

    /// The report name.
    fn name(self) -> &'static str {
        self.facts().map_or("unknown", |f| f.name)
    }
}

impl CipherTable for Pbes1Cipher {
    const TABLE: &'static [CipherFacts<Self>] = &PBES1_CIPHERS;
}

/// A PBES2 block cipher.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Pbes2Cipher {
    /// AES-128-CBC.
    Aes128Cbc,
    /// AES-192-CBC.
    Aes192Cbc,
    /// AES-256-CBC.
    Aes256Cbc,
    /// DES-EDE3-CBC.
    DesEde3Cbc,
}

impl CipherTable for Pbes2Cipher {
    const TABLE: &'static [CipherFacts<Self>] = &PBES2_CIPHERS;
}

/// A password-based encryption scheme with its parameters, as found in an
/// AlgorithmIdentifier of an EncryptedPrivateKeyInfo or EncryptedContentInfo.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EncryptionScheme {
    /// PKCS#12 PBES1: `pkcs-12PbeParams ::= SEQUENCE { salt OCTET STRING, iterations INTEGER }`
    /// with the RFC 7292 appendix B KDF over SHA-1 and a BMPString password.
    Pbes1 {
        /// The cipher.
        cipher: Pbes1Cipher,
        /// KDF salt.
        salt: Vec<u8>,
        /// KDF iterations.
        iterations: u32,
    },
    /// PBES2 with PBKDF2 (UTF-8 password).
    Pbes2 {
        /// The PBKDF2 PRF's hash.
        prf: HashAlg,
        /// PBKDF2 salt.
        salt: Vec<u8>,
        /// PBKDF2 iterations.
        iterations: u32,
        /// The block cipher.
        cipher: Pbes2Cipher,
        /// The CBC initialisation vector.
        iv: Vec<u8>,
    },
}

/// Parses an iteration count and checks it against the per-KDF bound.
pub(crate) fn parse_iterations(t: &Tlv<'_>, ctx: &'static str, limits: &Limits) -> Result<u32> {
    let n = t.uint(ctx)?;
    if n == 0 {
        return Err(Error::malformed_at(ctx, t.start, "iteration count of 0"));
    }
    Limits::check(LimitKind::Iterations, n, limits.max_iterations)?;
    u32::try_from(n).map_err(|_| Error::LimitExceeded {
        limit: LimitKind::Iterations,
        value: n,
        bound: u64::from(u32::MAX),
    })
}

pub(crate) fn parse_salt<'a>(t: &Tlv<'a>, ctx: &'static str, limits: &Limits) -> Result<&'a [u8]> {
    let salt = t.octets(ctx)?;
    Limits::check(
        LimitKind::SaltLength,
        salt.len() as u64,
        limits.max_salt_len as u64,
    )?;
    Ok(salt)
}

/// `PBKDF2-params ::= SEQUENCE { salt CHOICE { specified OCTET STRING, otherSource … },
/// iterationCount INTEGER, keyLength INTEGER OPTIONAL, prf AlgorithmIdentifier DEFAULT
/// hmacWithSHA1 }` (RFC 8018 appendix A.2). Returns (salt, iterations, keyLength, prf).
pub(crate) fn parse_pbkdf2_params<'a>(
    kdf: &Tlv<'a>,
    limits: &Limits,
) -> Result<(&'a [u8], u32, Option<u64>, HashAlg)> {
    const CTX: &str = "PBKDF2 parameters";
    let mut alg = kdf.reader(CTX);
    let oid = alg.read(tag::OID, "KDF OID")?.oid(CTX)?;
    if oid == oids::SCRYPT {
        return Err(Error::unsupported_oid(
            "key derivation function scrypt",
            oid,
        ));
    }
    if oid != oids::PBKDF2 {
        return Err(Error::unsupported_oid("key derivation function", oid));
    }
    let params = alg.read(tag::SEQUENCE, "PBKDF2-params")?;
    alg.finish()?;
    let mut p = params.reader(CTX);
    let salt_tlv = p.read_any()?;
    if salt_tlv.tag != tag::OCTET_STRING {
        return Err(Error::Unsupported {
            what: "PBKDF2 salt from another source (only a specified salt is used)".into(),
            oid: None,
        });
    }
    let salt = parse_salt(&salt_tlv, CTX, limits)?;
    let iterations = parse_iterations(&p.read(tag::INTEGER, "iterationCount")?, CTX, limits)?;
    let key_length = p
        .read_optional(tag::INTEGER)?
        .map(|t| t.uint(CTX))
        .transpose()?;
    let prf = match p.read_optional(tag::SEQUENCE)? {
        None => HashAlg::Sha1,
        Some(prf) => {
            let mut r = prf.reader(CTX);
            let oid = r.read(tag::OID, "PRF OID")?.oid(CTX)?;
            // Parameters are NULL or absent for every HMAC PRF.
            if let Some(t) = r.read_optional(tag::NULL)?
                && !t.value.is_empty()
            {
                return Err(Error::malformed_at(CTX, t.start, "non-empty NULL"));
            }
            r.finish()?;
            HashAlg::from_hmac_oid(&oid)
                .ok_or_else(|| Error::unsupported_oid("PBKDF2 pseudo-random function", oid))?
        }
    };
    p.finish()?;
    Ok((salt, iterations, key_length, prf))
}

impl EncryptionScheme {
    /// Parses an AlgorithmIdentifier (the whole SEQUENCE element).
    pub(crate) fn parse(alg: &Tlv<'_>, limits: &Limits) -> Result<Self> {
        const CTX: &str = "encryption algorithm";
        let mut r = alg.reader(CTX);
        let oid = r.read(tag::OID, "algorithm OID")?.oid(CTX)?;
        if let Some(cipher) = Pbes1Cipher::from_oid(&oid) {
            let params = r.read(tag::SEQUENCE, "pkcs-12PbeParams")?;
            r.finish()?;
            let mut p = params.reader(CTX);
            let salt = parse_salt(&p.read(tag::OCTET_STRING, "salt")?, CTX, limits)?.to_vec();
            let iterations = parse_iterations(&p.read(tag::INTEGER, "iterations")?, CTX, limits)?;
            p.finish()?;
            return Ok(EncryptionScheme::Pbes1 {
                cipher,
                salt,
                iterations,
            });
        }
        if oid != oids::PBES2 {
            return Err(Error::unsupported_oid(
                "password-based encryption scheme",
                oid,
            ));
        }
        let params = r.read(tag::SEQUENCE, "PBES2-params")?;
        r.finish()?;
        let mut p = params.reader(CTX);
        let kdf = p.read(tag::SEQUENCE, "keyDerivationFunc")?;
        let enc_alg = p.read(tag::SEQUENCE, "encryptionScheme")?;
        p.finish()?;
        let (salt, iterations, key_length, prf) = parse_pbkdf2_params(&kdf, limits)?;
        let mut e = enc_alg.reader(CTX);
        let cipher_oid = e.read(tag::OID, "cipher OID")?.oid(CTX)?;
        let cipher = Pbes2Cipher::from_oid(&cipher_oid)
            .ok_or_else(|| Error::unsupported_oid("PBES2 cipher", cipher_oid))?;
        let iv_tlv = e.read(tag::OCTET_STRING, "IV")?;
        e.finish()?;
        let (key_len, iv_len) = cipher.sizes();
        if iv_tlv.value.len() != iv_len {
            return Err(Error::malformed_at(
                CTX,
                iv_tlv.start,
                format!("IV of {} bytes for {}", iv_tlv.value.len(), cipher.name()),
            ));
        }
        if let Some(k) = key_length
            && k != key_len as u64
        {
            return Err(Error::malformed(
                CTX,
                format!("PBKDF2 keyLength {k} does not fit {}", cipher.name()),
            ));
        }
        Ok(EncryptionScheme::Pbes2 {
            prf,
            salt: salt.to_vec(),
            iterations,
            cipher,
            iv: iv_tlv.value.to_vec(),
        })
    }

    /// The KDF iteration count.
    pub fn iterations(&self) -> u32 {
        match self {
            EncryptionScheme::Pbes1 { iterations, .. }
            | EncryptionScheme::Pbes2 { iterations, .. } => *iterations,
        }
    }

    /// [Work units](crate::limits::work) of deriving this scheme's key (and IV) and decrypting
    /// `len` bytes with it.
    pub(crate) fn work(&self, len: usize) -> u64 {
        let (kdf, cipher_per_kib) = match self {
            EncryptionScheme::Pbes1 {
                cipher,
                salt,
                iterations,
            } => {
                let (key_len, iv_len) = cipher.sizes();
                let sha1 = HashAlg::Sha1;
                let mut kdf = sha1.pkcs12_kdf_work(*iterations, salt.len(), key_len);
                if iv_len > 0 {
                    kdf = kdf.saturating_add(sha1.pkcs12_kdf_work(*iterations, salt.len(), iv_len));
                }
                let per_kib = match cipher {
                    Pbes1Cipher::TripleDes | Pbes1Cipher::TwoKeyTripleDes => work::TRIPLE_DES_KIB,
                    Pbes1Cipher::Rc2_128 | Pbes1Cipher::Rc2_40 => work::RC2_KIB,
                    Pbes1Cipher::Rc4_128 | Pbes1Cipher::Rc4_40 => work::RC4_KIB,
                };
                (kdf, per_kib)
            }
            EncryptionScheme::Pbes2 {
                prf,
                salt,
                iterations,
                cipher,
                ..
            } => {
                let kdf = prf.pbkdf2_work(*iterations, salt.len(), cipher.sizes().0);
                let per_kib = match cipher {
                    Pbes2Cipher::DesEde3Cbc => work::TRIPLE_DES_KIB,
                    _ => work::AES_KIB,
                };
                (kdf, per_kib)
            }
        };
        kdf.saturating_add(work::per_kib(len, cipher_per_kib))
    }

    /// A short name: `pbe-sha1-3des`, `pbes2-pbkdf2-hmac-sha256-aes-256-cbc`.
    pub fn name(&self) -> String {
        match self {
            EncryptionScheme::Pbes1 { cipher, .. } => cipher.name().into(),
            EncryptionScheme::Pbes2 { prf, cipher, .. } => {
                format!("pbes2-pbkdf2-hmac-{}-{}", prf.name(), cipher.name())
            }
        }
    }

    /// How `openssl pkcs12 -info` users read it: `pbes2 aes-256-cbc pbkdf2-sha256 2048`,
    /// `pbe-sha1-rc2-40 2048` (scheme, cipher, KDF, iterations).
    pub fn description(&self) -> String {
        match self {
            EncryptionScheme::Pbes1 {
                cipher, iterations, ..
            } => format!("{} {iterations}", cipher.name()),
            EncryptionScheme::Pbes2 {
                prf,
                cipher,
                iterations,
                ..
            } => format!("pbes2 {} pbkdf2-{} {iterations}", cipher.name(), prf.name()),
        }
    }

    /// The DER AlgorithmIdentifier.
    pub(crate) fn to_der(&self) -> Vec<u8> {
        match self {
            EncryptionScheme::Pbes1 {
                cipher,
                salt,
                iterations,
            } => {
                let params = enc::seq(&[&enc::octets(salt), &enc::uint(u64::from(*iterations))]);
                enc::algorithm(&cipher.oid(), Some(&params))
            }
            EncryptionScheme::Pbes2 {
                prf,
                salt,
                iterations,
                cipher,
                iv,
            } => {
                // keyLength is omitted: it is implied by the cipher, and OpenSSL omits it too.
                // The PRF is written even when it is the SHA-1 default, as OpenSSL does.
                let prf_alg = enc::algorithm(&prf.hmac_oid(), Some(&enc::null()));
                let kdf_params = enc::seq(&[
                    &enc::octets(salt),
                    &enc::uint(u64::from(*iterations)),
                    &prf_alg,
                ]);
                let kdf = enc::algorithm(&oids::PBKDF2, Some(&kdf_params));
                let cipher_alg = enc::algorithm(&cipher.oid(), Some(&enc::octets(iv)));
                enc::algorithm(&oids::PBES2, Some(&enc::seq(&[&kdf, &cipher_alg])))
            }
        }
    }

    fn derive(&self, password: &Password) -> (Zeroizing<Vec<u8>>, Zeroizing<Vec<u8>>) {
        match self {
            EncryptionScheme::Pbes1 {
                cipher,
                salt,
                iterations,
            } => {
                let pw = password.bmp_bytes();
                let (key_len, iv_len) = cipher.sizes();
                let key =
                    HashAlg::Sha1.pkcs12_kdf(&pw, salt, KdfPurpose::Key, *iterations, key_len);
                let iv = if iv_len == 0 {
                    Zeroizing::new(Vec::new())
                } else {
                    HashAlg::Sha1.pkcs12_kdf(&pw, salt, KdfPurpose::Iv, *iterations, iv_len)
                };
                (key, iv)
            }
            EncryptionScheme::Pbes2 {
                prf,
                salt,
                iterations,
                cipher,
                iv,
            } => {
                let mut key = Zeroizing::new(vec![0u8; cipher.sizes().0]);
                prf.pbkdf2(password.utf8_bytes(), salt, *iterations, &mut key);
                (key, Zeroizing::new(iv.clone()))
            }
        }
    }

    /// Decrypts `ciphertext`. A padding failure is reported as a wrong password: with CBC the
    /// two cannot be told apart.
    pub(crate) fn decrypt(
        &self,
        password: &Password,
        ciphertext: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>> {
        let (key, iv) = self.derive(password);
        let out = match self {
            EncryptionScheme::Pbes1 { cipher, .. } => match cipher {
                Pbes1Cipher::TripleDes => cbc_decrypt::<des::TdesEde3>(&key, &iv, ciphertext),
                Pbes1Cipher::TwoKeyTripleDes => cbc_decrypt::<des::TdesEde2>(&key, &iv, ciphertext),
                Pbes1Cipher::Rc2_128 => rc2_decrypt(&key, 128, &iv, ciphertext),
                Pbes1Cipher::Rc2_40 => rc2_decrypt(&key, 40, &iv, ciphertext),
                Pbes1Cipher::Rc4_128 | Pbes1Cipher::Rc4_40 => rc4_apply(&key, ciphertext),
            },
            EncryptionScheme::Pbes2 { cipher, .. } => match cipher {
                Pbes2Cipher::Aes128Cbc => cbc_decrypt::<aes::Aes128>(&key, &iv, ciphertext),
                Pbes2Cipher::Aes192Cbc => cbc_decrypt::<aes::Aes192>(&key, &iv, ciphertext),
                Pbes2Cipher::Aes256Cbc => cbc_decrypt::<aes::Aes256>(&key, &iv, ciphertext),
                Pbes2Cipher::DesEde3Cbc => cbc_decrypt::<des::TdesEde3>(&key, &iv, ciphertext),
            },
        };
        out.ok_or_else(|| Error::wrong_password(format!("{} decryption", self.name())))
    }

    /// Encrypts `plaintext` with PKCS#7 padding (stream ciphers: none).
    pub(crate) fn encrypt(&self, password: &Password, plaintext: &[u8]) -> Result<Vec<u8>> {
        let (key, iv) = self.derive(password);
        let out = match self {
            EncryptionScheme::Pbes1 { cipher, .. } => match cipher {
                Pbes1Cipher::TripleDes => cbc_encrypt::<des::TdesEde3>(&key, &iv, plaintext),
                Pbes1Cipher::TwoKeyTripleDes => cbc_encrypt::<des::TdesEde2>(&key, &iv, plaintext),
                Pbes1Cipher::Rc2_128 | Pbes1Cipher::Rc2_40 => {
                    let bits = if *cipher == Pbes1Cipher::Rc2_40 {
                        40
                    } else {
                        128
                    };
                    let rc2 = rc2::Rc2::new_with_eff_key_len(&key, bits);
                    cbc::Encryptor::<rc2::Rc2>::inner_iv_slice_init(rc2, &iv)
                        .ok()
                        .map(|c| c.encrypt_padded_vec::<Pkcs7>(plaintext))
                }
                Pbes1Cipher::Rc4_128 | Pbes1Cipher::Rc4_40 => {
                    rc4_apply(&key, plaintext).map(|v| v.to_vec())
                }
            },
            EncryptionScheme::Pbes2 { cipher, .. } => match cipher {
                Pbes2Cipher::Aes128Cbc => cbc_encrypt::<aes::Aes128>(&key, &iv, plaintext),
                Pbes2Cipher::Aes192Cbc => cbc_encrypt::<aes::Aes192>(&key, &iv, plaintext),
                Pbes2Cipher::Aes256Cbc => cbc_encrypt::<aes::Aes256>(&key, &iv, plaintext),
                Pbes2Cipher::DesEde3Cbc => cbc_encrypt::<des::TdesEde3>(&key, &iv, plaintext),
            },
        };
        out.ok_or_else(|| Error::Invalid(format!("{}: bad key or IV length", self.name())))
    }
}

fn cbc_decrypt<C>(key: &[u8], iv: &[u8], ct: &[u8]) -> Option<Zeroizing<Vec<u8>>>
where
    C: aes::cipher::BlockCipherDecrypt + KeyInit,
{
    let dec = cbc::Decryptor::<C>::new_from_slices(key, iv).ok()?;
    dec.decrypt_padded_vec::<Pkcs7>(ct).ok().map(Zeroizing::new)
}

fn cbc_encrypt<C>(key: &[u8], iv: &[u8], pt: &[u8]) -> Option<Vec<u8>>
where
    C: aes::cipher::BlockCipherEncrypt + KeyInit,
{
    let enc = cbc::Encryptor::<C>::new_from_slices(key, iv).ok()?;
    Some(enc.encrypt_padded_vec::<Pkcs7>(pt))
}

fn rc2_decrypt(key: &[u8], bits: usize, iv: &[u8], ct: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    let rc2 = rc2::Rc2::new_with_eff_key_len(key, bits);
    let dec = cbc::Decryptor::<rc2::Rc2>::inner_iv_slice_init(rc2, iv).ok()?;
    dec.decrypt_padded_vec::<Pkcs7>(ct).ok().map(Zeroizing::new)
}

fn rc4_apply(key: &[u8], data: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    let mut rc4 = rc4::Rc4::new_from_slice(key).ok()?;
    let mut out = Zeroizing::new(data.to_vec());
    rc4.apply_keystream(&mut out);
    Some(out)
}

/// Parses `EncryptedPrivateKeyInfo` / the algorithm + ciphertext pair into a scheme and the
/// encrypted bytes.
pub(crate) fn parse_encrypted_private_key_info<'a>(
    epki: &Tlv<'a>,
    limits: &Limits,
) -> Result<(EncryptionScheme, &'a [u8])> {
    const CTX: &str = "EncryptedPrivateKeyInfo";
    let mut r: DerReader<'a> = epki.reader(CTX);
    let alg = r.read(tag::SEQUENCE, "encryptionAlgorithm")?;
    let data = r.read(tag::OCTET_STRING, "encryptedData")?;
    r.finish()?;
    Ok((EncryptionScheme::parse(&alg, limits)?, data.value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_cipher_has_its_own_table_row() {
        let pbes1 = [
            Pbes1Cipher::TripleDes,
            Pbes1Cipher::TwoKeyTripleDes,
            Pbes1Cipher::Rc2_128,
            Pbes1Cipher::Rc2_40,
            Pbes1Cipher::Rc4_128,
            Pbes1Cipher::Rc4_40,
        ];
        for c in pbes1 {
            assert_eq!(c.facts().map(|f| f.cipher), Some(c));
            assert_eq!(Pbes1Cipher::from_oid(&c.oid()), Some(c));
        }
        let pbes2 = [
            Pbes2Cipher::Aes128Cbc,
            Pbes2Cipher::Aes192Cbc,
            Pbes2Cipher::Aes256Cbc,
            Pbes2Cipher::DesEde3Cbc,
        ];
        for c in pbes2 {
            assert_eq!(c.facts().map(|f| f.cipher), Some(c));
            assert_eq!(Pbes2Cipher::from_oid(&c.oid()), Some(c));
        }
    }

    fn pbes1(cipher: Pbes1Cipher) -> EncryptionScheme {
        EncryptionScheme::Pbes1 {
            cipher,
            salt: vec![0; 8],
            iterations: 2048,
        }
    }

    #[test]
    fn work_charges_the_bulk_cipher_by_the_kibibyte() {
        let des = pbes1(Pbes1Cipher::TripleDes);
        assert_eq!(des.work(10 * 1024) - des.work(0), 10 * work::TRIPLE_DES_KIB);
        let rc2 = pbes1(Pbes1Cipher::Rc2_40);
        assert_eq!(rc2.work(10 * 1024) - rc2.work(0), 10 * work::RC2_KIB);
        // Part of a KiB is charged as a whole one.
        assert_eq!(des.work(1) - des.work(0), work::TRIPLE_DES_KIB);
    }

    #[test]
    fn pbes1_work_derives_key_and_iv_blocks() {
        // 3DES: a 24-byte key (two SHA-1 blocks) and an 8-byte IV (one); RC4 has no IV.
        let des = pbes1(Pbes1Cipher::TripleDes).work(0);
        assert!((3 * 2048..3 * 2048 + 20).contains(&des), "{des}");
        let rc4 = pbes1(Pbes1Cipher::Rc4_40).work(0);
        assert!((2048..2048 + 10).contains(&rc4), "{rc4}");
    }

    #[test]
    fn pbes2_work_follows_the_prf() {
        let scheme = |prf| EncryptionScheme::Pbes2 {
            prf,
            salt: vec![0; 16],
            iterations: 10_000,
            cipher: Pbes2Cipher::Aes256Cbc,
            iv: vec![0; 16],
        };
        let sha256 = scheme(HashAlg::Sha256).work(0);
        let sha512 = scheme(HashAlg::Sha512).work(0);
        assert!((20_000..20_020).contains(&sha256), "{sha256}");
        assert!((120_000..120_100).contains(&sha512), "{sha512}");
    }
}
