//! Helpers shared by the integration tests: fixtures, the manifest written by
//! `tests/data/gen.sh` (facts computed by openssl/python/JDK, never by pfxkit), and a tiny DER
//! tree used to build hostile variants of real files.
//!
//! Every test binary compiles this module on its own and uses a different part of it.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::path::PathBuf;

use pfxkit::Password;
use serde_json::Value;

/// The workspace's `tests/data` (this module is shared by the root crate's tests and the CLI
/// crate's, whose manifest sits two levels below the workspace root).
pub fn data_dir() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let here = manifest.join("tests/data");
    if here.is_dir() {
        here
    } else {
        manifest.join("../../tests/data")
    }
}

/// The bytes of a file under `tests/data` (e.g. `p12/openssl-default.p12`).
pub fn fixture(relative: &str) -> Vec<u8> {
    let path = data_dir().join(relative);
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// `tests/data/manifest.json`.
pub fn manifest() -> Value {
    serde_json::from_slice(&fixture("manifest.json")).expect("manifest.json is JSON")
}

/// The `pkcs12[]` entries of the manifest.
pub fn p12_entries() -> Vec<Value> {
    manifest()["pkcs12"]
        .as_array()
        .expect("manifest has a pkcs12 array")
        .clone()
}

/// The manifest entry of one p12 file (`p12/NAME.p12`).
pub fn p12_entry(file: &str) -> Value {
    p12_entries()
        .into_iter()
        .find(|e| e["file"] == file)
        .unwrap_or_else(|| panic!("{file} is not in manifest.json"))
}

/// The password the manifest records for an entry: `null` means none was given.
pub fn password_of(entry: &Value) -> Option<Password> {
    entry["password"].as_str().map(Password::new)
}

/// The RFC 9579 appendix A vectors (`tests/data/rfc9579`, base64 DER).
pub fn rfc9579_vector(name: &str) -> Vec<u8> {
    let text = String::from_utf8(fixture(&format!("rfc9579/{name}.b64"))).unwrap();
    base64_decode(&text)
}

/// A standard-alphabet base64 decoder that skips whitespace (avoids a dependency).
pub fn base64_decode(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let mut acc = 0u32;
    let mut bits = 0;
    for c in text
        .bytes()
        .filter(|c| !c.is_ascii_whitespace() && *c != b'=')
    {
        let v = ALPHABET
            .iter()
            .position(|a| *a == c)
            .expect("base64 character") as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

// ---------------------------------------------------------------------------------------------
// A tiny DER tree: enough to take a real archive apart, change one field, and put it back
// together with every enclosing length recomputed.
// ---------------------------------------------------------------------------------------------

/// Universal and context tags used by the tests.
pub mod tag {
    pub const INTEGER: u8 = 0x02;
    pub const OCTET_STRING: u8 = 0x04;
    pub const NULL: u8 = 0x05;
    pub const OID: u8 = 0x06;
    pub const SEQUENCE: u8 = 0x30;
    pub const SET: u8 = 0x31;
    pub const CONTEXT_0: u8 = 0xa0;
}

/// OIDs, DER-encoded with their tag and length.
pub mod oid {
    /// 1.2.840.113549.1.7.1 data
    pub const DATA: &[u8] = &[
        0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01,
    ];
    /// 1.2.840.113549.1.7.3 envelopedData
    pub const ENVELOPED_DATA: &[u8] = &[
        0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x03,
    ];
    /// 1.2.840.113549.1.12.10.1.6 safeContentsBag
    pub const SAFE_CONTENTS_BAG: &[u8] = &[
        0x06, 0x0b, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x0c, 0x0a, 0x01, 0x06,
    ];
    /// 2.16.840.1.101.3.4.1.42 aes256-CBC
    pub const AES_256_CBC: &[u8] = &[
        0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x2a,
    ];
}

/// One DER element: primitive with its content octets, or constructed with its children.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Der {
    Prim(u8, Vec<u8>),
    Cons(u8, Vec<Der>),
}

impl Der {
    /// Parses exactly one DER element (definite lengths only); panics on anything else, since
    /// it only ever reads the committed fixtures.
    pub fn parse(bytes: &[u8]) -> Der {
        let (der, used) = Self::parse_one(bytes);
        assert_eq!(used, bytes.len(), "trailing bytes after a DER element");
        der
    }

    fn parse_one(bytes: &[u8]) -> (Der, usize) {
        let (tag, start, len) = header(bytes, 0);
        let content = &bytes[start..start + len];
        if tag & 0x20 == 0 {
            return (Der::Prim(tag, content.to_vec()), start + len);
        }
        let mut children = Vec::new();
        let mut pos = 0;
        while pos < content.len() {
            let (child, used) = Self::parse_one(&content[pos..]);
            children.push(child);
            pos += used;
        }
        (Der::Cons(tag, children), start + len)
    }

    pub fn encode(&self) -> Vec<u8> {
        match self {
            Der::Prim(tag, value) => tlv(*tag, value),
            Der::Cons(tag, children) => {
                let content: Vec<u8> = children.iter().flat_map(Der::encode).collect();
                tlv(*tag, &content)
            }
        }
    }

    pub fn tag(&self) -> u8 {
        match self {
            Der::Prim(t, _) | Der::Cons(t, _) => *t,
        }
    }

    /// The element reached by following child indexes.
    pub fn at(&self, path: &[usize]) -> &Der {
        path.iter().fold(self, |d, i| match d {
            Der::Cons(_, children) => &children[*i],
            Der::Prim(..) => panic!("path goes through a primitive element"),
        })
    }

    pub fn at_mut(&mut self, path: &[usize]) -> &mut Der {
        path.iter().fold(self, |d, i| match d {
            Der::Cons(_, children) => &mut children[*i],
            Der::Prim(..) => panic!("path goes through a primitive element"),
        })
    }

    /// Content octets of a primitive element.
    pub fn value(&self) -> &[u8] {
        match self {
            Der::Prim(_, v) => v,
            Der::Cons(..) => panic!("constructed element has no primitive value"),
        }
    }

    pub fn value_mut(&mut self) -> &mut Vec<u8> {
        match self {
            Der::Prim(_, v) => v,
            Der::Cons(..) => panic!("constructed element has no primitive value"),
        }
    }

    pub fn children_mut(&mut self) -> &mut Vec<Der> {
        match self {
            Der::Cons(_, c) => c,
            Der::Prim(..) => panic!("primitive element has no children"),
        }
    }
}

/// Reads the header at `pos`: (tag, content start, content length).
pub fn header(bytes: &[u8], pos: usize) -> (u8, usize, usize) {
    let tag = bytes[pos];
    let first = bytes[pos + 1];
    if first < 0x80 {
        return (tag, pos + 2, usize::from(first));
    }
    let n = usize::from(first & 0x7f);
    assert!((1..=4).contains(&n), "unexpected length form in a fixture");
    let len = bytes[pos + 2..pos + 2 + n]
        .iter()
        .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
    (tag, pos + 2 + n, len)
}

/// Minimal DER length octets.
pub fn len_octets(len: usize) -> Vec<u8> {
    if len < 0x80 {
        return vec![len as u8];
    }
    let bytes: Vec<u8> = len
        .to_be_bytes()
        .into_iter()
        .skip_while(|b| *b == 0)
        .collect();
    let mut out = vec![0x80 | bytes.len() as u8];
    out.extend(bytes);
    out
}

/// tag ‖ length ‖ content.
pub fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    out.extend(len_octets(content.len()));
    out.extend_from_slice(content);
    out
}

/// SEQUENCE of already-encoded elements.
pub fn seq(parts: &[&[u8]]) -> Vec<u8> {
    tlv(tag::SEQUENCE, &parts.concat())
}

/// A two's-complement DER INTEGER.
pub fn integer(value: i64) -> Vec<u8> {
    let bytes = value.to_be_bytes();
    let mut start = 0;
    while start < 7 {
        let (b, next) = (bytes[start], bytes[start + 1]);
        if (b == 0x00 && next & 0x80 == 0) || (b == 0xff && next & 0x80 != 0) {
            start += 1;
        } else {
            break;
        }
    }
    tlv(tag::INTEGER, &bytes[start..])
}

/// `ContentInfo { data, [0] OCTET STRING content }`.
pub fn data_content_info(content: &[u8]) -> Vec<u8> {
    seq(&[
        oid::DATA,
        &tlv(tag::CONTEXT_0, &tlv(tag::OCTET_STRING, content)),
    ])
}

/// `PFX { 3, authSafe data(AuthenticatedSafe(content_infos)), macData? }`.
pub fn pfx(content_infos: &[Vec<u8>], mac_data: Option<&[u8]>) -> Vec<u8> {
    let refs: Vec<&[u8]> = content_infos.iter().map(Vec::as_slice).collect();
    let auth_safe = seq(&refs);
    seq(&[
        &integer(3),
        &data_content_info(&auth_safe),
        mac_data.unwrap_or_default(),
    ])
}

/// A PFX parsed into its tree, with paths to the parts the tests change.
pub struct PfxTree {
    pub root: Der,
}

impl PfxTree {
    pub fn parse(bytes: &[u8]) -> Self {
        PfxTree {
            root: Der::parse(bytes),
        }
    }

    /// `MacData`: the third element of the PFX.
    pub fn mac_data(&mut self) -> &mut Der {
        self.root.at_mut(&[2])
    }

    /// The AuthenticatedSafe, decoded from the authSafe's OCTET STRING.
    pub fn auth_safe(&self) -> Der {
        Der::parse(self.root.at(&[1, 1, 0]).value())
    }

    /// Replaces the AuthenticatedSafe (the MAC no longer matches unless recomputed).
    pub fn set_auth_safe(&mut self, auth_safe: &Der) {
        *self.root.at_mut(&[1, 1, 0]).value_mut() = auth_safe.encode();
    }

    pub fn encode(&self) -> Vec<u8> {
        self.root.encode()
    }
}

/// Positions of every DER header in `bytes` that the tests can see without decrypting:
/// walks constructed elements and the content of OCTET STRINGs that themselves hold DER.
pub fn header_positions(bytes: &[u8]) -> Vec<usize> {
    fn walk(bytes: &[u8], base: usize, out: &mut Vec<usize>) {
        let mut pos = 0;
        while pos < bytes.len() {
            out.push(base + pos);
            let (tag, start, len) = header(bytes, pos);
            let content = &bytes[start..start + len];
            let constructed = tag & 0x20 != 0;
            if constructed || (tag == tag::OCTET_STRING && looks_like_der(content)) {
                walk(content, base + start, out);
            }
            pos = start + len;
        }
    }
    let mut out = Vec::new();
    walk(bytes, 0, &mut out);
    out
}

/// Whether `bytes` parses as exactly one constructed DER element (used to look inside
/// OCTET STRINGs that wrap structures, like the authSafe).
fn looks_like_der(bytes: &[u8]) -> bool {
    fn element_len(bytes: &[u8]) -> Option<usize> {
        let tag = *bytes.first()?;
        let first = *bytes.get(1)?;
        let (start, len) = if first < 0x80 {
            (2, usize::from(first))
        } else {
            let n = usize::from(first & 0x7f);
            if !(1..=4).contains(&n) {
                return None;
            }
            let len = bytes
                .get(2..2 + n)?
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
            (2 + n, len)
        };
        let content = bytes.get(start..start.checked_add(len)?)?;
        if tag & 0x20 != 0 {
            let mut pos = 0;
            while pos < content.len() {
                pos += element_len(&content[pos..])?;
            }
        }
        Some(start + len)
    }
    bytes.first() == Some(&tag::SEQUENCE) && element_len(bytes) == Some(bytes.len())
}

/// The DER inside a PEM fixture (`pki/certs/…`, `pki/keys/…`).
pub fn pem_der(relative: &str) -> Vec<u8> {
    pem::parse(fixture(relative)).unwrap().into_contents()
}

/// `SafeBag { keyBag, [0] PrivateKeyInfo }`.
pub fn key_bag(pkcs8: &[u8]) -> Vec<u8> {
    const KEY_BAG: &[u8] = &[
        0x06, 0x0b, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x0c, 0x0a, 0x01, 0x01,
    ];
    seq(&[KEY_BAG, &tlv(tag::CONTEXT_0, pkcs8)])
}

/// `SafeBag { certBag, [0] CertBag { x509Certificate, [0] OCTET STRING der } }`.
pub fn cert_bag(der: &[u8]) -> Vec<u8> {
    const CERT_BAG: &[u8] = &[
        0x06, 0x0b, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x0c, 0x0a, 0x01, 0x03,
    ];
    const X509_CERTIFICATE: &[u8] = &[
        0x06, 0x0a, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x16, 0x01,
    ];
    let value = seq(&[
        X509_CERTIFICATE,
        &tlv(tag::CONTEXT_0, &tlv(tag::OCTET_STRING, der)),
    ]);
    seq(&[CERT_BAG, &tlv(tag::CONTEXT_0, &value)])
}

/// A MAC-less, unencrypted PFX holding `bags` in one SafeContents.
pub fn plain_pfx(bags: &[Vec<u8>]) -> Vec<u8> {
    let refs: Vec<&[u8]> = bags.iter().map(Vec::as_slice).collect();
    pfx(&[data_content_info(&seq(&refs))], None)
}

/// `jks/key.jceks` (store password `store-pass`) with its key entry, still protected under
/// `key-pass-2`, copied `n` times.
pub fn jceks_key_copies(n: usize) -> Vec<u8> {
    use pfxkit::jks::{self, Entry, KeystoreKind, WriteEntry};
    let store_password = Password::new("store-pass");
    let bytes = fixture("jks/key.jceks");
    let store = jks::read(&bytes, &store_password, &pfxkit::Limits::default()).unwrap();
    let Some(Entry::PrivateKey(key)) = store.get("jceks-key") else {
        panic!("key.jceks has its key entry");
    };
    let aliases: Vec<String> = (0..n).map(|i| format!("copy-{i}")).collect();
    let entries: Vec<WriteEntry<'_>> = aliases
        .iter()
        .map(|alias| WriteEntry::ProtectedKey {
            alias,
            encrypted_key: key.encrypted_key_der(),
            chain: key.chain(),
            created_millis: key.created_millis(),
        })
        .collect();
    jks::write(KeystoreKind::Jceks, &entries, &store_password).unwrap()
}
