//! Hash functions by OID, HMAC, PBKDF2 (RFC 8018 §5.2) and the PKCS#12 KDF (RFC 7292 app. B).

use der::asn1::ObjectIdentifier as Oid;
use zeroize::Zeroizing;

use super::{fastkdf, oids};
use crate::limits::work;

/// The hash functions PKCS#12 files use for MACs, PRFs and KDFs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HashAlg {
    /// SHA-1.
    Sha1,
    /// SHA-224.
    Sha224,
    /// SHA-256.
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
    /// SHA-512/224.
    Sha512_224,
    /// SHA-512/256.
    Sha512_256,
}

/// Runs `$body` with `$M` bound to the compression-level type of `$alg`.
macro_rules! with_md {
    ($alg:expr, $M:ident => $body:expr) => {
        match $alg {
            HashAlg::Sha1 => {
                type $M = fastkdf::Sha1;
                $body
            }
            HashAlg::Sha224 => {
                type $M = fastkdf::Sha224;
                $body
            }
            HashAlg::Sha256 => {
                type $M = fastkdf::Sha256;
                $body
            }
            HashAlg::Sha384 => {
                type $M = fastkdf::Sha384;
                $body
            }
            HashAlg::Sha512 => {
                type $M = fastkdf::Sha512;
                $body
            }
            HashAlg::Sha512_224 => {
                type $M = fastkdf::Sha512_224;
                $body
            }
            HashAlg::Sha512_256 => {
                type $M = fastkdf::Sha512_256;
                $body
            }
        }
    };
}

const ALL: [HashAlg; 7] = [
    HashAlg::Sha1,
    HashAlg::Sha224,
    HashAlg::Sha256,
    HashAlg::Sha384,
    HashAlg::Sha512,
    HashAlg::Sha512_224,
    HashAlg::Sha512_256,
];

impl HashAlg {
    /// Output length in bytes.
    pub fn output_len(self) -> usize {
        match self {
            HashAlg::Sha1 => 20,
            HashAlg::Sha224 | HashAlg::Sha512_224 => 28,
            HashAlg::Sha256 | HashAlg::Sha512_256 => 32,
            HashAlg::Sha384 => 48,
            HashAlg::Sha512 => 64,
        }
    }

    /// The lowercase name used in reports (`sha256`, `sha512-224`).
    pub fn name(self) -> &'static str {
        match self {
            HashAlg::Sha1 => "sha1",
            HashAlg::Sha224 => "sha224",
            HashAlg::Sha256 => "sha256",
            HashAlg::Sha384 => "sha384",
            HashAlg::Sha512 => "sha512",
            HashAlg::Sha512_224 => "sha512-224",
            HashAlg::Sha512_256 => "sha512-256",
        }
    }

    /// The digest algorithm OID (as in a classic MAC's DigestInfo).
    pub fn digest_oid(self) -> Oid {
        match self {
            HashAlg::Sha1 => oids::SHA1,
            HashAlg::Sha224 => oids::SHA224,
            HashAlg::Sha256 => oids::SHA256,
            HashAlg::Sha384 => oids::SHA384,
            HashAlg::Sha512 => oids::SHA512,
            HashAlg::Sha512_224 => oids::SHA512_224,
            HashAlg::Sha512_256 => oids::SHA512_256,
        }
    }

    /// The HMAC OID (as in a PBKDF2 PRF or a PBMAC1 messageAuthScheme).
    pub fn hmac_oid(self) -> Oid {
        match self {
            HashAlg::Sha1 => oids::HMAC_SHA1,
            HashAlg::Sha224 => oids::HMAC_SHA224,
            HashAlg::Sha256 => oids::HMAC_SHA256,
            HashAlg::Sha384 => oids::HMAC_SHA384,
            HashAlg::Sha512 => oids::HMAC_SHA512,
            HashAlg::Sha512_224 => oids::HMAC_SHA512_224,
            HashAlg::Sha512_256 => oids::HMAC_SHA512_256,
        }
    }

    pub(crate) fn from_digest_oid(oid: &Oid) -> Option<Self> {
        ALL.into_iter().find(|h| h.digest_oid() == *oid)
    }

    pub(crate) fn from_hmac_oid(oid: &Oid) -> Option<Self> {
        ALL.into_iter().find(|h| h.hmac_oid() == *oid)
    }

    /// Input block length in bytes (64, or 128 for the SHA-512 family).
    fn block_len(self) -> usize {
        match self {
            HashAlg::Sha1 | HashAlg::Sha224 | HashAlg::Sha256 => 64,
            _ => 128,
        }
    }

    /// [Work units](crate::limits::work) of `blocks` compressions.
    fn blocks_work(self, blocks: u64) -> u64 {
        let per_block = match self.block_len() {
            64 => work::SHA256_BLOCK,
            _ => work::SHA512_BLOCK,
        };
        blocks.saturating_mul(per_block)
    }

    /// Compressions to hash `len` bytes (length padding included).
    fn hash_blocks(self, len: usize) -> u64 {
        // Padding adds a 1 bit and the 8- or 16-byte length.
        (len as u64 + 17).div_ceil(self.block_len() as u64)
    }

    /// Work units of an HMAC over `len` bytes (key pads and the outer hash included).
    pub(crate) fn hmac_work(self, len: usize) -> u64 {
        self.blocks_work(self.hash_blocks(len) + 3)
    }

    /// Work units of PBKDF2-HMAC with this hash deriving `out_len` bytes: two compressions per
    /// iteration per output block, plus the salt's first round.
    pub(crate) fn pbkdf2_work(self, iterations: u32, salt_len: usize, out_len: usize) -> u64 {
        let blocks = (out_len.max(1) as u64).div_ceil(self.output_len() as u64);
        let per_block = 2 * u64::from(iterations) + self.hash_blocks(salt_len + 4) + 3;
        self.blocks_work(blocks.saturating_mul(per_block))
    }

    /// Work units of the PKCS#12 KDF deriving `out_len` bytes: one compression per iteration per
    /// output block (each round hashes one digest), plus the first round over D ‖ S ‖ P.
    pub(crate) fn pkcs12_kdf_work(self, iterations: u32, salt_len: usize, out_len: usize) -> u64 {
        let v = self.block_len() as u64;
        let blocks = (out_len.max(1) as u64).div_ceil(self.output_len() as u64);
        // D, then S and P each padded to whole blocks (the password is the caller's, not the
        // file's: two blocks cover any realistic one).
        let first = 1 + (salt_len as u64).div_ceil(v) + 2;
        let per_block = u64::from(iterations) + first;
        self.blocks_work(blocks.saturating_mul(per_block))
    }

    /// HMAC of `data` under `key`.
    pub(crate) fn hmac(self, key: &[u8], data: &[u8]) -> Zeroizing<Vec<u8>> {
        with_md!(self, M => fastkdf::hmac::<M>(key, data))
    }

    /// PBKDF2 with HMAC over this hash as PRF, filling `out`.
    pub(crate) fn pbkdf2(self, password: &[u8], salt: &[u8], iterations: u32, out: &mut [u8]) {
        with_md!(self, M => fastkdf::pbkdf2::<M>(password, salt, iterations, out))
    }

    /// The PKCS#12 KDF (RFC 7292 appendix B.2) over a BMPString password.
    pub(crate) fn pkcs12_kdf(
        self,
        password_bmp: &[u8],
        salt: &[u8],
        id: KdfPurpose,
        iterations: u32,
        len: usize,
    ) -> Zeroizing<Vec<u8>> {
        let id = match id {
            KdfPurpose::Key => 1,
            KdfPurpose::Iv => 2,
            KdfPurpose::Mac => 3,
        };
        with_md!(self, M => fastkdf::pkcs12_kdf::<M>(password_bmp, salt, id, iterations, len))
    }
}

/// What a PKCS#12 KDF output is for (the "ID" diversifier of RFC 7292 B.3).
#[derive(Clone, Copy, Debug)]
pub(crate) enum KdfPurpose {
    Key,
    Iv,
    Mac,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pbkdf2_work_is_two_compressions_per_iteration_per_output_block() {
        let one_block = HashAlg::Sha256.pbkdf2_work(1000, 8, 32);
        assert!((2000..2010).contains(&one_block), "{one_block}");
        assert_eq!(HashAlg::Sha256.pbkdf2_work(1000, 8, 64), 2 * one_block);
        // SHA-1 needs two 20-byte blocks for an AES-256 key.
        assert_eq!(
            HashAlg::Sha1.pbkdf2_work(1000, 8, 32),
            2 * HashAlg::Sha1.pbkdf2_work(1000, 8, 20)
        );
        // A SHA-512 compression costs six units.
        let sha512 = HashAlg::Sha512.pbkdf2_work(1000, 8, 64);
        assert!((12_000..12_060).contains(&sha512), "{sha512}");
    }

    #[test]
    fn pkcs12_kdf_work_is_one_compression_per_iteration_per_output_block() {
        let mac_key = HashAlg::Sha256.pkcs12_kdf_work(2048, 8, 32);
        assert!((2048..2055).contains(&mac_key), "{mac_key}");
        // A triple-DES key is two SHA-1 blocks.
        let des_key = HashAlg::Sha1.pkcs12_kdf_work(2048, 8, 24);
        assert_eq!(des_key, 2 * HashAlg::Sha1.pkcs12_kdf_work(2048, 8, 20));
        // A long salt costs its blocks once per output block, not per iteration.
        let long_salt = HashAlg::Sha1.pkcs12_kdf_work(2048, 1024, 20);
        assert_eq!(long_salt - HashAlg::Sha1.pkcs12_kdf_work(2048, 64, 20), 15);
    }

    #[test]
    fn hmac_work_grows_with_the_message() {
        let empty = HashAlg::Sha256.hmac_work(0);
        assert_eq!(HashAlg::Sha256.hmac_work(64 * 100) - empty, 100);
        assert_eq!(
            HashAlg::Sha512.hmac_work(128 * 100) - HashAlg::Sha512.hmac_work(0),
            600
        );
    }

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn pbkdf2_matches_rfc6070_vector() {
        let mut out = [0u8; 20];
        HashAlg::Sha1.pbkdf2(b"password", b"salt", 4096, &mut out);
        assert_eq!(
            out.to_vec(),
            hex("4b007901b765489abead49d926f721d065a429c1")
        );
    }

    #[test]
    fn pbkdf2_sha256_matches_known_answer() {
        let mut out = [0u8; 32];
        HashAlg::Sha256.pbkdf2(b"password", b"salt", 2, &mut out);
        assert_eq!(
            out.to_vec(),
            hex("ae4d0c95af6b46d32d0adff928f06dd02a303f8ef3c251dfd6e2d85a95474c43")
        );
    }
}
