//! An identity: a private key, its leaf certificate and the chain above it, proven to belong
//! together.

use std::collections::HashMap;

use crate::cert::{Certificate, ChainPool};
use crate::error::{Error, Result};
use crate::limits::{Limits, WorkBudget};
use crate::secret::{PrivateKey, certificate_key_digest};

/// A private key with its leaf certificate (first) and chain (leaf-first order).
///
/// It can only be built by [`Identity::new`], which proves that the key's public half is the
/// leaf's public key, so holding an `Identity` means the pair is consistent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    key: PrivateKey,
    chain: Vec<Certificate>,
    alias: Option<String>,
}

impl Identity {
    /// Pairs `key` with `leaf` and the certificates above it (`chain`, issuer of the leaf
    /// first).
    ///
    /// # Errors
    /// [`Error::KeyMismatch`] when the key does not belong to the leaf; [`Error::Unsupported`]
    /// when pfxkit cannot compute the public half of the key's algorithm.
    pub fn new(key: PrivateKey, leaf: Certificate, chain: Vec<Certificate>) -> Result<Self> {
        if !leaf.with_public_key(|spki| key.matches_public_key(spki))? {
            return Err(Error::KeyMismatch {
                certificate_sha256: leaf.sha256_hex(),
            });
        }
        Ok(Self::already_proven(key, leaf, chain))
    }

    /// An identity whose pairing the caller has just proven ([`pair_keys`] did the same check
    /// [`Identity::new`] would repeat).
    fn already_proven(key: PrivateKey, leaf: Certificate, chain: Vec<Certificate>) -> Self {
        let mut all = Vec::with_capacity(chain.len() + 1);
        all.push(leaf);
        all.extend(chain);
        Identity {
            key,
            chain: all,
            alias: None,
        }
    }

    /// The same identity under an alias (friendlyName).
    #[must_use]
    pub fn with_alias(mut self, alias: impl Into<String>) -> Self {
        self.alias = Some(alias.into());
        self
    }

    /// The alias, when one was given or read.
    pub fn alias(&self) -> Option<&str> {
        self.alias.as_deref()
    }

    /// The private key.
    pub fn key(&self) -> &PrivateKey {
        &self.key
    }

    /// The leaf certificate.
    #[allow(clippy::indexing_slicing)] // `new` puts the leaf first: the chain is never empty.
    pub fn leaf(&self) -> &Certificate {
        &self.chain[0]
    }

    /// Leaf first, then each issuer in turn.
    pub fn chain(&self) -> &[Certificate] {
        &self.chain
    }
}

/// For each key, the index of the certificate proven to hold its public key: first among the
/// certificates whose hint (PKCS#12 `localKeyId`) equals the key's, then among all. File order is
/// never trusted (OpenSSL's manual: the first certificate need not be the key's).
///
/// Each key's public half is computed once and looked up among the certificates by its modulus,
/// point or public value, so the cost grows with the number of keys plus certificates, not their
/// product; the computations are charged to [`Limits::max_work`] before they run.
///
/// # Errors
/// [`Error::LimitExceeded`] when the keys' proofs would exceed [`Limits::max_work`].
pub fn pair_keys(
    keys: &[(&PrivateKey, Option<&[u8]>)],
    certs: &[(&Certificate, Option<&[u8]>)],
    limits: &Limits,
) -> Result<Vec<Option<usize>>> {
    pair_keys_within(keys, certs, &mut WorkBudget::new(limits))
}

/// [`pair_keys`], charging the proofs to a budget the caller is already spending.
pub(crate) fn pair_keys_within(
    keys: &[(&PrivateKey, Option<&[u8]>)],
    certs: &[(&Certificate, Option<&[u8]>)],
    budget: &mut WorkBudget<'_>,
) -> Result<Vec<Option<usize>>> {
    // Certificates by the exact encoding of their public key, in file order; and the first one
    // of each encoding per localKeyId.
    let mut by_key: HashMap<Vec<u8>, Vec<usize>> = HashMap::new();
    let mut by_key_and_hint: HashMap<(Vec<u8>, &[u8]), usize> = HashMap::new();
    for (i, (cert, hint)) in certs.iter().enumerate() {
        let digest = cert.with_public_key(|spki| Ok(certificate_key_digest(spki)));
        if let Ok(Some(digest)) = digest {
            if let Some(hint) = hint {
                by_key_and_hint.entry((digest.clone(), hint)).or_insert(i);
            }
            by_key.entry(digest).or_default().push(i);
        }
    }
    if by_key.is_empty() {
        return Ok(vec![None; keys.len()]);
    }
    keys.iter()
        .map(|(key, key_hint)| {
            budget.charge_work(key.proof_work())?;
            // A key pfxkit cannot check (or a broken one) pairs with nothing.
            let Ok(half) = key.public_half() else {
                return Ok(None);
            };
            let proven = |i: &usize| {
                certs.get(*i).is_some_and(|(c, _)| {
                    c.with_public_key(|spki| Ok(half.matches(spki)))
                        .unwrap_or(false)
                })
            };
            let digests = half.digests();
            // The digests are exact, so the first candidate is proven; checking it anyway keeps
            // the answer right should an encoding ever collide.
            let by_hint = key_hint.and_then(|hint| {
                digests
                    .iter()
                    .filter_map(|d| by_key_and_hint.get(&(d.clone(), hint)))
                    .copied()
                    .filter(proven)
                    .min()
            });
            let any = || {
                digests
                    .iter()
                    .filter_map(|d| by_key.get(d)?.iter().copied().find(proven))
                    .min()
            };
            Ok(by_hint.or_else(any))
        })
        .collect()
}

/// Identities for keys paired by [`pair_keys`], each with its chain (at most `max_chain_len`
/// certificates above the leaf, [`Limits::max_chain_len`] of the read) built from the rest of
/// `pool`, which is indexed once for all of them. Unpaired keys yield `None`.
pub(crate) fn assemble_all(
    keys: &[&PrivateKey],
    pairings: &[Option<usize>],
    pool: &[Certificate],
    max_chain_len: usize,
) -> Vec<Option<Identity>> {
    let index = ChainPool::new(pool);
    // Keys that share a leaf share its chain: build each once.
    let mut chains: HashMap<usize, Vec<Certificate>> = HashMap::new();
    keys.iter()
        .zip(pairings)
        .map(|(key, leaf)| {
            let leaf = (*leaf)?;
            let leaf_cert = pool.get(leaf)?;
            let chain = chains
                .entry(leaf)
                .or_insert_with(|| {
                    index
                        .chain_from(leaf_cert, max_chain_len)
                        .into_iter()
                        .filter_map(|i| pool.get(i).cloned())
                        .collect()
                })
                .clone();
            Some(Identity::already_proven(
                (*key).clone(),
                leaf_cert.clone(),
                chain,
            ))
        })
        .collect()
}

/// For each key that pfxkit cannot prove (no arithmetic for its algorithm, or an elliptic
/// curve it does not know, such as the binary sect193r1), the index in `certs` of the first
/// certificate whose public key equals the public key the private key *carries* — PKCS#8 v2
/// `publicKey`, or the SEC1 `publicKey` inside an EC key — with the same algorithm and
/// parameters. `None` for keys pfxkit can prove (use [`pair_keys`]) and keys that carry no
/// public key.
///
/// This is a claim, not a proof: whoever wrote the key chose that field. It is reported as
/// such and never builds an [`Identity`]. Certificates are indexed once, so the cost is linear
/// in keys plus certificates.
pub fn claimed_pairings(keys: &[&PrivateKey], certs: &[&Certificate]) -> Vec<Option<usize>> {
    use der::{Decode, Encode};
    let claims: Vec<Option<(Vec<u8>, Vec<u8>)>> = keys
        .iter()
        .map(|key| {
            if !matches!(
                key.algorithm(),
                crate::secret::KeyAlgorithm::Other(_) | crate::secret::KeyAlgorithm::Ec(None)
            ) {
                return None;
            }
            let info = pkcs8::PrivateKeyInfoRef::from_der(key.expose_pkcs8_der()).ok()?;
            let algorithm = info.algorithm.to_der().ok()?;
            let public = match &info.public_key {
                Some(bits) => bits.raw_bytes().to_vec(),
                None => sec1::EcPrivateKey::from_der(info.private_key.as_bytes())
                    .ok()?
                    .public_key?
                    .to_vec(),
            };
            Some((algorithm, public))
        })
        .collect();
    if claims.iter().all(Option::is_none) {
        return vec![None; keys.len()];
    }
    let mut by_key: HashMap<(Vec<u8>, Vec<u8>), usize> = HashMap::new();
    for (i, cert) in certs.iter().enumerate() {
        let entry = cert.with_public_key(|spki| {
            Ok(spki
                .algorithm
                .to_der()
                .ok()
                .map(|alg| (alg, spki.subject_public_key.raw_bytes().to_vec())))
        });
        if let Ok(Some(entry)) = entry {
            by_key.entry(entry).or_insert(i);
        }
    }
    claims
        .into_iter()
        .map(|claim| by_key.get(&claim?).copied())
        .collect()
}
