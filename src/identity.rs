//! An identity: a private key, its leaf certificate and the chain above it, proven to belong
//! together.

use crate::cert::Certificate;
use crate::error::{Error, Result};
use crate::secret::PrivateKey;

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
pub fn pair_keys(
    keys: &[(&PrivateKey, Option<&[u8]>)],
    certs: &[(&Certificate, Option<&[u8]>)],
) -> Vec<Option<usize>> {
    keys.iter()
        .map(|(key, key_hint)| {
            let proven = |cert: &Certificate| {
                cert.with_public_key(|spki| key.matches_public_key(spki))
                    .unwrap_or(false)
            };
            let by_hint = key_hint.and_then(|hint| {
                certs
                    .iter()
                    .position(|(c, h)| *h == Some(hint) && proven(c))
            });
            by_hint.or_else(|| certs.iter().position(|(c, _)| proven(c)))
        })
        .collect()
}

/// An identity for `key` and `pool[leaf]`, its chain ordered from the rest of `pool`. `leaf`
/// must come from [`pair_keys`] for this key, which has already proven the pairing.
///
/// # Errors
/// [`Error::Invalid`] when `leaf` is out of range.
pub(crate) fn assemble(key: &PrivateKey, leaf: usize, pool: &[Certificate]) -> Result<Identity> {
    let leaf_cert = pool
        .get(leaf)
        .ok_or_else(|| Error::Invalid("leaf certificate index out of range".into()))?;
    let chain = crate::cert::chain_from(leaf_cert, pool)
        .into_iter()
        .filter_map(|i| pool.get(i).cloned())
        .collect();
    Ok(Identity::already_proven(
        key.clone(),
        leaf_cert.clone(),
        chain,
    ))
}
