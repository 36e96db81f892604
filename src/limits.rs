//! Safety limits on everything an attacker controls in an input file.
//!
//! Every number in a PKCS#12 or Java keystore that costs CPU or memory is checked against a
//! [`Limits`] field while parsing, before the work it commands is done. Peers show why: OpenSSL
//! and Python `cryptography` spin for minutes on a MAC iteration count of 2³¹−1.

use crate::error::{Error, LimitKind, Result};

/// Bounds applied while reading untrusted input. [`Limits::default`] suits every file seen in the
/// wild; raise a field on purpose when a trusted source needs more.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Largest accepted input in bytes. Default 16 MiB.
    pub max_input_size: usize,
    /// Largest iteration count of one KDF run (PBKDF2, PKCS#12 KDF, JCEKS). Default 1,000,000
    /// (Firefox uses 600,000). The smallest accepted count is always 1.
    pub max_iterations: u64,
    /// Largest sum of iteration counts over a whole archive (MAC and every encrypted item).
    /// Default 4,000,000.
    pub max_total_iterations: u64,
    /// Most bags (PKCS#12) or entries (JKS) in one file. Default 10,000.
    pub max_entries: usize,
    /// Deepest ASN.1 / safeContentsBag nesting. Default 16.
    pub max_depth: usize,
    /// Longest salt in bytes. Default 1024.
    pub max_salt_len: usize,
    /// Shortest PBMAC1 derived key in bytes. Default 20: shorter keys let a forger guess the MAC
    /// (RFC 9579 §7).
    pub min_pbmac1_key_len: usize,
    /// Longest PBMAC1 derived key in bytes. Default 64.
    pub max_pbmac1_key_len: usize,
    /// Longest certificate chain of one key entry. Default 16.
    pub max_chain_len: usize,
    /// Most CPU work one read may command, in [work units](work) (one unit ≈ 40 ns of one core
    /// on the reference machine, about one SHA-256 compression with SHA extensions): every KDF,
    /// bulk decryption, MAC over the data and key-to-certificate proof, summed over the whole
    /// file and over every password candidate tried. Default 25,000,000 (≈ 1 s).
    pub max_work: u64,
    /// Most attributes (RDN components) in one certificate name, subject or issuer. Default 64;
    /// real names have a handful. A name of 390,000 RDNs cost `x509-cert` 3 s and 666 MB: names
    /// are counted before a certificate is decoded.
    pub max_name_attributes: usize,
    /// Deepest ASN.1 nesting inside one certificate name, counting the Name SEQUENCE as 1 (an
    /// ordinary name is 4 deep: Name, RDN SET, attribute SEQUENCE, string). Default 8.
    pub max_name_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_input_size: 16 * 1024 * 1024,
            max_iterations: 1_000_000,
            max_total_iterations: 4_000_000,
            max_entries: 10_000,
            max_depth: 16,
            max_salt_len: 1024,
            min_pbmac1_key_len: 20,
            max_pbmac1_key_len: 64,
            max_chain_len: 16,
            max_work: 25_000_000,
            max_name_attributes: 64,
            max_name_depth: 8,
        }
    }
}

impl Limits {
    /// Fails when `value` exceeds `bound` for the given limit.
    pub(crate) fn check(kind: LimitKind, value: u64, bound: u64) -> Result<()> {
        if value > bound {
            Err(Error::LimitExceeded {
                limit: kind,
                value,
                bound,
            })
        } else {
            Ok(())
        }
    }

    /// Checks the size of a whole input.
    ///
    /// # Errors
    /// [`Error::LimitExceeded`] when `len` exceeds [`Limits::max_input_size`].
    pub fn check_input_size(&self, len: usize) -> Result<()> {
        Self::check(LimitKind::InputSize, len as u64, self.max_input_size as u64)
    }

    /// Reads a whole input file, but never more than [`Limits::max_input_size`] + 1 bytes: one
    /// byte past the limit proves it exceeded, so a 700 MB file, a pipe or `/dev/zero` is
    /// refused after reading no more than the limit allows.
    ///
    /// # Errors
    /// [`Error::LimitExceeded`] (input size) for a longer input, [`Error::Io`] when it cannot
    /// be read.
    pub fn read_file(&self, path: &std::path::Path) -> Result<Vec<u8>> {
        use std::io::Read;
        let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let bound = self.max_input_size as u64;
        // Sized from the file when it says (a regular file), so no reallocation on the way;
        // never more than the bound allows.
        let hint = file
            .metadata()
            .map(|m| m.len().min(bound.saturating_add(1)))
            .unwrap_or(0);
        let mut bytes = Vec::with_capacity(usize::try_from(hint).unwrap_or(0));
        file.take(bound.saturating_add(1))
            .read_to_end(&mut bytes)
            .map_err(|e| Error::io(path, e))?;
        if bytes.len() as u64 > bound {
            return Err(Error::LimitExceeded {
                limit: LimitKind::InputSize,
                value: bytes.len() as u64,
                bound,
            });
        }
        Ok(bytes)
    }
}

/// The cost model behind [`Limits::max_work`]: how many work units each expensive operation
/// costs. Iteration counts alone are a poor bound on time: one PBKDF2-HMAC-SHA512 iteration costs
/// about eleven times what a PKCS#12-KDF SHA-1 iteration costs, a triple-DES byte a hundred times
/// an AES one, and a DSA key proof grows with the cube of its size.
///
/// The weights were measured on the reference machine (AMD EPYC with SHA extensions, no SHA-512
/// extensions; `cargo bench --bench floor` prints the compression costs) and rounded up, so a
/// file at the default budget costs at most about one second of one core there. On a CPU without
/// SHA extensions SHA-1 and SHA-256 run about four times slower than modelled.
pub mod work {
    /// One SHA-1 or SHA-224/256 compression (≈ 36–40 ns with SHA extensions).
    pub const SHA256_BLOCK: u64 = 1;
    /// One SHA-384/512 compression of a 128-byte block (≈ 220 ns: no hardware support).
    pub const SHA512_BLOCK: u64 = 6;
    /// One round of the JCEKS key KDF: an MD5 compression and its finalisation (≈ 130 ns).
    pub const MD5_BLOCK: u64 = 4;
    /// Decrypting one KiB with triple DES (≈ 100 ns per byte).
    pub const TRIPLE_DES_KIB: u64 = 2_600;
    /// Decrypting one KiB with RC2 (≈ 9 ns per byte).
    pub const RC2_KIB: u64 = 240;
    /// Decrypting one KiB with RC4 (≈ 3 ns per byte).
    pub const RC4_KIB: u64 = 80;
    /// Decrypting one KiB with AES-CBC (≈ 0.2 ns per byte with AES-NI, ≈ 1 ns without).
    pub const AES_KIB: u64 = 25;
    /// Proving that an EC P-256 private key is a certificate's (one scalar multiplication).
    pub const P256_PROOF: u64 = 2_500;
    /// Proving an EC P-384 key.
    pub const P384_PROOF: u64 = 6_000;
    /// Proving an EC P-521 key.
    pub const P521_PROOF: u64 = 6_000;
    /// Proving an Ed25519 key.
    pub const ED25519_PROOF: u64 = 600;
    /// Proving an Ed448 key.
    pub const ED448_PROOF: u64 = 16_000;

    /// Decoding one KiB of certificate with `x509-cert` (≈ 10 µs per KiB; names bounded by
    /// [`Limits::max_name_attributes`](super::Limits::max_name_attributes)).
    pub const CERTIFICATE_KIB: u64 = 250;

    /// Units to decode a certificate of `len` bytes (at least one KiB's worth).
    pub fn certificate(len: usize) -> u64 {
        per_kib(len.max(1), CERTIFICATE_KIB)
    }

    /// Units to decrypt `len` bytes at `per_kib` units per KiB (rounded up).
    pub fn per_kib(len: usize, per_kib: u64) -> u64 {
        (len as u64).div_ceil(1024).saturating_mul(per_kib)
    }

    /// Units to prove a DSA key with a `p_bits`-bit modulus and an `exponent_bits`-bit private
    /// exponent: one modular exponentiation (num-bigint: ≈ 3 ns per limb² per exponent bit).
    /// The exponent is charged by its own length: a key's x is checked to be below q (at most
    /// 512 bits) when it is parsed, but the charge does not rely on that.
    pub fn dsa_proof(p_bits: u32, exponent_bits: u32) -> u64 {
        let limbs = u64::from(p_bits).div_ceil(64);
        (limbs * limbs * u64::from(exponent_bits))
            .div_ceil(12)
            .max(1)
    }
}

/// Counts the KDF iterations and the work a file asks for, so that the sums can be refused
/// before they are spent.
#[derive(Debug)]
pub(crate) struct WorkBudget<'l> {
    limits: &'l Limits,
    iterations: u64,
    work: u64,
}

impl<'l> WorkBudget<'l> {
    pub(crate) fn new(limits: &'l Limits) -> Self {
        WorkBudget {
            limits,
            iterations: 0,
            work: 0,
        }
    }

    /// The limits this budget enforces.
    pub(crate) fn limits(&self) -> &'l Limits {
        self.limits
    }

    /// Checks one KDF's count (1 ≤ n ≤ max) without charging it.
    pub(crate) fn check_one(&self, iterations: u64) -> Result<()> {
        if iterations == 0 {
            return Err(Error::malformed("iteration count", "must be at least 1"));
        }
        Limits::check(
            LimitKind::Iterations,
            iterations,
            self.limits.max_iterations,
        )
    }

    /// Checks and charges one KDF run of `iterations` whose whole operation (KDF and the
    /// decryption or MAC it keys) costs `work` units.
    pub(crate) fn charge_kdf(&mut self, iterations: u64, work: u64) -> Result<()> {
        self.check_one(iterations)?;
        let total = self.iterations.saturating_add(iterations);
        Limits::check(
            LimitKind::TotalIterations,
            total,
            self.limits.max_total_iterations,
        )?;
        self.charge_work(work)?;
        self.iterations = total;
        Ok(())
    }

    /// Checks and charges `work` units of work that is not a KDF (a key proof, say).
    pub(crate) fn charge_work(&mut self, work: u64) -> Result<()> {
        let total = self.work.saturating_add(work);
        Limits::check(LimitKind::Work, total, self.limits.max_work)?;
        self.work = total;
        Ok(())
    }
}
