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
}

/// Counts the KDF iterations an archive asks for, so the sum can be refused before it is spent.
#[derive(Debug)]
pub(crate) struct IterationBudget<'l> {
    limits: &'l Limits,
    spent: u64,
}

impl<'l> IterationBudget<'l> {
    pub(crate) fn new(limits: &'l Limits) -> Self {
        IterationBudget { limits, spent: 0 }
    }

    /// Checks one KDF's count (1 ≤ n ≤ max) without charging it.
    pub(crate) fn check_one(&self, iterations: u64) -> Result<()> {
        if iterations == 0 {
            return Err(Error::malformed(
                "iteration count",
                "must be at least 1",
            ));
        }
        Limits::check(LimitKind::Iterations, iterations, self.limits.max_iterations)
    }

    /// Checks and charges one KDF run of `iterations`.
    pub(crate) fn charge(&mut self, iterations: u64) -> Result<()> {
        self.check_one(iterations)?;
        let total = self.spent.saturating_add(iterations);
        Limits::check(
            LimitKind::TotalIterations,
            total,
            self.limits.max_total_iterations,
        )?;
        self.spent = total;
        Ok(())
    }
}
