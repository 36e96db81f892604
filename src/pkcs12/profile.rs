//! Writing profiles: which algorithms an archive uses, chosen by what its consumer accepts.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};
use crate::pbe::kdf::HashAlg;
use crate::pbe::mac::MacAlgorithm;
use crate::pbe::scheme::{CipherTable, EncryptionScheme, Pbes1Cipher, Pbes2Cipher};
use crate::random::{RandomSource, bytes};

/// A set of algorithms for writing PKCS#12, named by who reads it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Profile {
    /// PBES2 (PBKDF2-HMAC-SHA256, AES-256-CBC) for keys and certificates, HMAC-SHA256 MAC,
    /// 10,000 iterations. OpenSSL ≥ 1.1.1, Java ≥ 12, Windows 10 1709+/Server 2019+,
    /// `cryptography`.
    #[default]
    Modern,
    /// As `Modern` with an RFC 9579 PBMAC1 MAC (PBKDF2-HMAC-SHA256, HMAC-SHA256, 32-byte key).
    /// OpenSSL ≥ 3.4, Java ≥ 26.
    ModernPbmac1,
    /// PBE-SHA1-3DES for keys and certificates, HMAC-SHA1 MAC, 2048 iterations: what Windows
    /// Server 2016 and older, and macOS before 26, import.
    Legacy3Des,
    /// PBE-SHA1-3DES keys, PBE-SHA1-RC2-40 certificates, HMAC-SHA1, 2048 iterations: what
    /// `openssl pkcs12 -legacy` writes.
    LegacyRc2,
    /// What keytool (JDK 17+) writes: as `Modern` with 20-byte salts.
    Java,
    /// **Insecure**: no encryption and no MAC. Only for test fixtures; must be asked for by name.
    None,
}

const ALL: [Profile; 6] = [
    Profile::Modern,
    Profile::ModernPbmac1,
    Profile::Legacy3Des,
    Profile::LegacyRc2,
    Profile::Java,
    Profile::None,
];

impl Profile {
    /// Every profile.
    pub fn all() -> &'static [Profile] {
        &ALL
    }

    /// The profile's name as the CLI spells it.
    pub fn name(self) -> &'static str {
        match self {
            Profile::Modern => "modern",
            Profile::ModernPbmac1 => "modern-pbmac1",
            Profile::Legacy3Des => "legacy-3des",
            Profile::LegacyRc2 => "legacy-rc2",
            Profile::Java => "java",
            Profile::None => "none",
        }
    }

    /// The default iteration count.
    pub fn default_iterations(self) -> u32 {
        match self {
            Profile::Modern | Profile::ModernPbmac1 | Profile::Java => 10_000,
            Profile::Legacy3Des | Profile::LegacyRc2 => 2048,
            Profile::None => 0,
        }
    }

    fn salt_len(self) -> usize {
        match self {
            Profile::Java => 20,
            _ => 16,
        }
    }

    fn mac_salt_len(self) -> usize {
        match self {
            Profile::Java => 20,
            Profile::ModernPbmac1 => 16,
            // 8 bytes, as OpenSSL, Windows and `cryptography` write for the classic MAC.
            _ => 8,
        }
    }

    /// The scheme for shrouded key bags (`None`: plain keyBags).
    pub(crate) fn key_scheme(
        self,
        iterations: u32,
        rng: &mut dyn RandomSource,
    ) -> Result<Option<EncryptionScheme>> {
        self.scheme(iterations, rng, Pbes1Cipher::TripleDes)
    }

    /// The scheme for the encrypted SafeContents holding certificates (`None`: plain data).
    pub(crate) fn cert_scheme(
        self,
        iterations: u32,
        rng: &mut dyn RandomSource,
    ) -> Result<Option<EncryptionScheme>> {
        let pbes1 = if self == Profile::LegacyRc2 {
            Pbes1Cipher::Rc2_40
        } else {
            Pbes1Cipher::TripleDes
        };
        self.scheme(iterations, rng, pbes1)
    }

    fn scheme(
        self,
        iterations: u32,
        rng: &mut dyn RandomSource,
        pbes1: Pbes1Cipher,
    ) -> Result<Option<EncryptionScheme>> {
        Ok(match self {
            Profile::Modern | Profile::ModernPbmac1 | Profile::Java => {
                Some(EncryptionScheme::Pbes2 {
                    prf: HashAlg::Sha256,
                    salt: bytes(rng, self.salt_len())?,
                    iterations,
                    cipher: Pbes2Cipher::Aes256Cbc,
                    iv: bytes(rng, Pbes2Cipher::Aes256Cbc.sizes().1)?,
                })
            }
            Profile::Legacy3Des | Profile::LegacyRc2 => Some(EncryptionScheme::Pbes1 {
                cipher: pbes1,
                salt: bytes(rng, self.salt_len())?,
                iterations,
            }),
            Profile::None => None,
        })
    }

    /// The MAC (`None`: no integrity protection).
    pub(crate) fn mac(
        self,
        iterations: u32,
        rng: &mut dyn RandomSource,
    ) -> Result<Option<MacAlgorithm>> {
        let salt = bytes(rng, self.mac_salt_len())?;
        Ok(match self {
            Profile::Modern | Profile::Java => Some(MacAlgorithm::Classic {
                hash: HashAlg::Sha256,
                salt,
                iterations,
            }),
            Profile::ModernPbmac1 => Some(MacAlgorithm::Pbmac1 {
                prf: HashAlg::Sha256,
                salt,
                iterations,
                key_len: 32,
                hmac: HashAlg::Sha256,
            }),
            Profile::Legacy3Des | Profile::LegacyRc2 => Some(MacAlgorithm::Classic {
                hash: HashAlg::Sha1,
                salt,
                iterations,
            }),
            Profile::None => None,
        })
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Profile {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        ALL.into_iter().find(|p| p.name() == s).ok_or_else(|| {
            Error::Invalid(format!(
                "unknown profile '{s}' (expected one of: {})",
                ALL.map(Profile::name).join(", ")
            ))
        })
    }
}

/// The profile closest to the algorithms an existing archive uses, and its iteration count, so
/// that rewriting a store keeps what its consumers already accept.
pub fn detect(archive: &super::Archive) -> (Profile, u32) {
    use crate::pbe::scheme::EncryptionScheme as S;
    let mac = archive.mac().map(|m| &m.algorithm);
    let key_scheme = archive.keys().iter().find_map(|k| k.encryption.as_ref());
    let cert_scheme = archive
        .certificates()
        .iter()
        .find_map(|c| c.encryption.as_ref());
    let iterations = mac
        .map(MacAlgorithm::iterations)
        .or(key_scheme.map(S::iterations))
        .or(cert_scheme.map(S::iterations));
    let profile = match (mac, key_scheme.or(cert_scheme)) {
        (None, None) => Profile::None,
        (Some(MacAlgorithm::Pbmac1 { .. }), _) => Profile::ModernPbmac1,
        (_, Some(S::Pbes1 { .. })) => {
            if matches!(
                cert_scheme,
                Some(S::Pbes1 {
                    cipher: Pbes1Cipher::Rc2_40 | Pbes1Cipher::Rc2_128,
                    ..
                })
            ) {
                Profile::LegacyRc2
            } else {
                Profile::Legacy3Des
            }
        }
        (Some(MacAlgorithm::Classic { salt, .. }), _) if salt.len() >= 20 => Profile::Java,
        (
            Some(MacAlgorithm::Classic {
                hash: HashAlg::Sha1,
                ..
            }),
            None,
        ) => Profile::Legacy3Des,
        _ => Profile::Modern,
    };
    let iterations = iterations.unwrap_or(profile.default_iterations());
    (profile, iterations)
}
