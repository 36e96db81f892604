//! Randomness for salts and IVs: the OS generator by default, a deterministic one for tests.

use std::fmt;

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// A source of random bytes for salts and IVs. Writers take one so that tests can make
/// byte-for-byte reproducible output.
pub trait RandomSource: Send + fmt::Debug {
    /// Fills `buf` with random bytes.
    ///
    /// # Errors
    /// [`Error::Io`] when the source fails (the OS generator is unavailable).
    fn fill(&mut self, buf: &mut [u8]) -> Result<()>;
}

/// The operating system's generator (`getrandom`). The default everywhere.
#[derive(Clone, Copy, Debug, Default)]
pub struct OsRandom;

impl RandomSource for OsRandom {
    fn fill(&mut self, buf: &mut [u8]) -> Result<()> {
        getrandom::fill(buf).map_err(|e| Error::Io {
            path: None,
            source: std::io::Error::other(format!("OS random generator failed: {e}")),
        })
    }
}

/// A deterministic stream (SHA-256 of seed and counter) for reproducible test output.
/// **Not** for production: anyone who knows the seed knows every salt and IV.
#[derive(Clone, Debug)]
pub struct DeterministicRandom {
    seed: u64,
    counter: u64,
}

impl DeterministicRandom {
    /// A stream determined entirely by `seed`.
    pub fn new(seed: u64) -> Self {
        DeterministicRandom { seed, counter: 0 }
    }
}

impl RandomSource for DeterministicRandom {
    fn fill(&mut self, buf: &mut [u8]) -> Result<()> {
        for chunk in buf.chunks_mut(32) {
            let block = Sha256::new()
                .chain_update(self.seed.to_be_bytes())
                .chain_update(self.counter.to_be_bytes())
                .finalize();
            self.counter += 1;
            chunk
                .iter_mut()
                .zip(block.iter())
                .for_each(|(o, b)| *o = *b);
        }
        Ok(())
    }
}

/// `n` random bytes.
pub(crate) fn bytes(rng: &mut dyn RandomSource, n: usize) -> Result<Vec<u8>> {
    let mut out = vec![0u8; n];
    rng.fill(&mut out)?;
    Ok(out)
}
