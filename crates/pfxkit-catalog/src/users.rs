//! Users and API tokens of the HTTP API (`pfxkit users`, `pfxkit tokens`).
//!
//! Passwords are stored as Argon2id hashes (PHC strings, a random 16-byte salt each), never in
//! plain text. Tokens are 32 random bytes shown once; only their SHA-256 is stored — a token has
//! 256 bits of entropy, so a fast hash is enough (no dictionary to slow down), and looking a
//! token up by its hash costs one index probe.

use argon2::password_hash::{Output, PasswordHash, PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::service::Service;
use crate::error::{Error, Result};
use pfxkit::secret::Password;

/// The prefix of every API token, so a leaked one is recognisable (secret scanners, logs).
pub const TOKEN_PREFIX: &str = "pfxkit_";

/// Longest user name accepted.
pub const MAX_USER_NAME: usize = 256;

/// Longest password accepted for hashing or verification: Argon2's cost does not grow with
/// the length, but hashing megabytes first would.
pub const MAX_PASSWORD: usize = 1024;

/// The Argon2id parameters: OWASP's first recommendation (19 MiB, 2 passes, 1 lane).
fn argon2() -> Result<Argon2<'static>> {
    let params = Params::new(19 * 1024, 2, 1, None)
        .map_err(|e| Error::Invalid(format!("argon2 parameters: {e}")))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// Hashes a password with Argon2id and a fresh random salt; the PHC string.
fn hash_password(password: &str) -> Result<String> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| Error::io_other(e.to_string()))?;
    let salt =
        SaltString::encode_b64(&salt).map_err(|e| Error::Invalid(format!("password salt: {e}")))?;
    Ok(argon2()?
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| Error::Invalid(format!("password hash: {e}")))?
        .to_string())
}

/// A hash of a password nobody has, verified when the user does not exist so that a missing
/// user costs the same time as a wrong password (no user enumeration by timing).
fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| hash_password("pfxkit: no such user").unwrap_or_default())
}

/// Memory for password verifications, kept by a thread that makes many (the server's verifier
/// threads). Argon2id fills 19 MiB per verification: allocated per call, the allocator kept
/// another copy resident per thread and burst of logins; one buffer per verifying thread is
/// allocated once. Wiped after every use: its first block alone is a cheap test of a password
/// guess, skipping the memory-hard work.
#[derive(Default)]
pub struct VerifierMemory {
    blocks: Vec<Block>,
}

impl std::fmt::Debug for VerifierMemory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifierMemory")
            .field("blocks", &self.blocks.len())
            .finish()
    }
}

impl VerifierMemory {
    /// Empty; it grows to what the first verification needs.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether `password` matches `hash` (the hash's own algorithm, version and parameters),
    /// compared in constant time.
    fn verify(
        &mut self,
        password: &[u8],
        hash: &PasswordHash<'_>,
    ) -> std::result::Result<bool, argon2::password_hash::Error> {
        use argon2::password_hash::Error as HashError;
        let algorithm = Algorithm::try_from(hash.algorithm)?;
        let version = match hash.version {
            Some(v) => Version::try_from(v).map_err(|_| HashError::Version)?,
            None => Version::default(),
        };
        let params = Params::try_from(hash)?;
        let (Some(salt), Some(expected)) = (hash.salt, hash.hash) else {
            return Err(HashError::PhcStringField);
        };
        let mut salt_bytes = [0u8; 64];
        let salt = salt.decode_b64(&mut salt_bytes)?;
        let needed = params.block_count();
        if self.blocks.len() < needed {
            self.blocks.resize(needed, Block::default());
        }
        let mut out = Zeroizing::new(vec![0u8; expected.len()]);
        let blocks = self.blocks.get_mut(..needed).unwrap_or_default();
        let hashed = Argon2::new(algorithm, version, params).hash_password_into_with_memory(
            password,
            salt,
            &mut out,
            &mut *blocks,
        );
        blocks.fill(Block::default());
        hashed?;
        Ok(Output::new(&out)? == expected)
    }
}

fn check_user_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > MAX_USER_NAME {
        return Err(Error::Invalid(format!(
            "a user name has 1 to {MAX_USER_NAME} bytes"
        )));
    }
    // Basic authentication separates the name from the password with the first ':'.
    if name.contains(':') || name.chars().any(char::is_control) {
        return Err(Error::Invalid(
            "a user name cannot contain ':' or control characters".into(),
        ));
    }
    Ok(())
}

/// The SHA-256 of a token, lower-case hex (what the catalog stores).
fn token_hash(token: &str) -> String {
    pfxkit::cert::hex_lower(&Sha256::digest(token.as_bytes()))
}

impl Service {
    /// Adds a user of the HTTP API with this password (stored as an Argon2id hash).
    ///
    /// # Errors
    /// [`Error::Invalid`] for a bad or taken name, an empty or over-long password; database
    /// errors.
    pub fn add_user(&self, name: &str, password: &Password) -> Result<()> {
        check_user_name(name)?;
        let text = password.expose_secret().unwrap_or_default();
        if text.is_empty() || text.len() > MAX_PASSWORD {
            return Err(Error::Invalid(format!(
                "a password has 1 to {MAX_PASSWORD} bytes"
            )));
        }
        self.catalog().add_user(name, &hash_password(text)?)
    }

    /// Removes a user and its tokens.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown user; database errors.
    pub fn remove_user(&self, name: &str) -> Result<()> {
        if self.catalog().remove_user(name)? {
            Ok(())
        } else {
            Err(Error::NotFound(format!("unknown user '{name}'")))
        }
    }

    /// Whether `password` is `name`'s. An unknown user costs a verification too, and answers
    /// `false`. This is the expensive call (Argon2id): callers bound how many run at once.
    ///
    /// # Errors
    /// Database errors, or a stored hash that does not parse.
    pub fn verify_password(&self, name: &str, password: &Password) -> Result<bool> {
        self.verify_password_with(name, password, &mut VerifierMemory::new())
    }

    /// [`Service::verify_password`] in `memory`, for a thread that verifies many passwords.
    ///
    /// # Errors
    /// As [`Service::verify_password`].
    pub fn verify_password_with(
        &self,
        name: &str,
        password: &Password,
        memory: &mut VerifierMemory,
    ) -> Result<bool> {
        let text = password.expose_secret().unwrap_or_default();
        if text.len() > MAX_PASSWORD || name.len() > MAX_USER_NAME {
            return Ok(false);
        }
        let stored = self.catalog().password_hash(name)?;
        let phc = stored.as_deref().unwrap_or_else(|| dummy_hash());
        let bad_hash = |e: &dyn std::fmt::Display| {
            Error::Database(format!("stored password hash of '{name}': {e}"))
        };
        let parsed = PasswordHash::new(phc).map_err(|e| bad_hash(&e))?;
        let ok = memory
            .verify(text.as_bytes(), &parsed)
            .map_err(|e| bad_hash(&e))?;
        Ok(ok && stored.is_some())
    }

    /// Issues an API token for `principal`, valid until `expires_ms` (or forever); returns its
    /// id and the token, which is shown once and never stored.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown user; database errors.
    pub fn add_token(
        &self,
        principal: &str,
        expires_ms: Option<i64>,
    ) -> Result<(i64, Zeroizing<String>)> {
        let mut bytes = Zeroizing::new([0u8; 32]);
        getrandom::fill(bytes.as_mut()).map_err(|e| Error::io_other(e.to_string()))?;
        let token = Zeroizing::new(format!(
            "{TOKEN_PREFIX}{}",
            pfxkit::cert::hex_lower(bytes.as_ref())
        ));
        let id = self
            .catalog()
            .add_token(principal, &token_hash(&token), expires_ms)?;
        Ok((id, token))
    }

    /// Revokes a token by id.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown token; database errors.
    pub fn revoke_token(&self, id: i64) -> Result<()> {
        if self.catalog().revoke_token(id)? {
            Ok(())
        } else {
            Err(Error::NotFound(format!("unknown token {id}")))
        }
    }

    /// The principal a token stands for, if it is known and not expired at `now_ms`.
    ///
    /// # Errors
    /// Database errors.
    pub fn token_principal(&self, token: &str, now_ms: i64) -> Result<Option<String>> {
        if !token.starts_with(TOKEN_PREFIX) || token.len() > 128 {
            return Ok(None);
        }
        Ok(self
            .catalog()
            .token(&token_hash(token))?
            .filter(|t| t.expires_ms.is_none_or(|e| e > now_ms))
            .map(|t| t.principal))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use argon2::password_hash::PasswordVerifier;

    fn service() -> (tempfile::TempDir, Service) {
        let dir = tempfile::tempdir().unwrap();
        let svc = Service::init(&dir.path().join("cat")).unwrap();
        (dir, svc)
    }

    #[test]
    fn stores_passwords_as_argon2id_hashes_only() {
        let (_d, svc) = service();
        svc.add_user("alice", &Password::new("correct horse"))
            .unwrap();
        let stored = svc.catalog().password_hash("alice").unwrap().unwrap();
        assert!(stored.starts_with("$argon2id$"), "{stored}");
        assert!(!stored.contains("correct horse"));
        assert!(
            svc.verify_password("alice", &Password::new("correct horse"))
                .unwrap()
        );
        assert!(
            !svc.verify_password("alice", &Password::new("wrong"))
                .unwrap()
        );
        assert!(
            !svc.verify_password("mallory", &Password::new("correct horse"))
                .unwrap()
        );
    }

    #[test]
    fn rejects_user_names_basic_auth_cannot_carry() {
        let (_d, svc) = service();
        assert!(svc.add_user("a:b", &Password::new("x")).is_err());
        assert!(svc.add_user("", &Password::new("x")).is_err());
        assert!(svc.add_user("bob", &Password::new("")).is_err());
        svc.add_user("bob", &Password::new("x")).unwrap();
        assert!(svc.add_user("bob", &Password::new("y")).is_err());
    }

    #[test]
    fn tokens_are_stored_hashed_expire_and_die_with_their_user() {
        let (_d, svc) = service();
        svc.add_user("carol", &Password::new("pw")).unwrap();
        let (id, token) = svc.add_token("carol", None).unwrap();
        assert!(svc.catalog().token(&token).unwrap().is_none());
        assert_eq!(
            svc.token_principal(&token, 0).unwrap().as_deref(),
            Some("carol")
        );
        let (_, short) = svc.add_token("carol", Some(1_000)).unwrap();
        assert_eq!(
            svc.token_principal(&short, 999).unwrap().as_deref(),
            Some("carol")
        );
        assert_eq!(svc.token_principal(&short, 1_000).unwrap(), None);
        svc.revoke_token(id).unwrap();
        assert_eq!(svc.token_principal(&token, 0).unwrap(), None);
        assert!(svc.revoke_token(id).is_err());
        svc.remove_user("carol").unwrap();
        assert_eq!(svc.token_principal(&short, 0).unwrap(), None);
        assert!(svc.add_token("carol", None).is_err());
    }

    #[test]
    fn verifier_memory_agrees_with_argon2_and_is_wiped_and_reused() {
        let phc = hash_password("right horse").unwrap();
        let hash = PasswordHash::new(&phc).unwrap();
        let mut memory = VerifierMemory::new();
        for (guess, expected) in [("right horse", true), ("wrong horse", false), ("", false)] {
            assert_eq!(memory.verify(guess.as_bytes(), &hash).unwrap(), expected);
            let upstream = Argon2::default()
                .verify_password(guess.as_bytes(), &hash)
                .is_ok();
            assert_eq!(upstream, expected, "{guess}");
            // 19 MiB, allocated once, and nothing of the run left in it.
            assert_eq!(memory.blocks.len(), 19 * 1024);
            assert!(
                memory
                    .blocks
                    .iter()
                    .all(|b| b.as_ref().iter().all(|w| *w == 0))
            );
        }
        // A hash under other parameters is verified under its own.
        let other = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(8 * 1024, 1, 1, None).unwrap(),
        )
        .hash_password(b"pw", &SaltString::from_b64("c2FsdHNhbHRzYWx0").unwrap())
        .unwrap()
        .to_string();
        assert!(
            memory
                .verify(b"pw", &PasswordHash::new(&other).unwrap())
                .unwrap()
        );
    }
}
