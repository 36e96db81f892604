//! PBKDF2 and the PKCS#12 KDF driven directly by the compression functions.
//!
//! The KDFs are the whole cost of opening or writing an archive, so their inner loops do the
//! minimum: HMAC's keyed inner and outer states are computed once per derivation, and every
//! iteration then costs exactly two compression-function calls (PBKDF2) or one (PKCS#12 KDF) on
//! pre-padded single blocks, with no buffering, no length bookkeeping and no re-keying. The
//! `sha1`/`sha2` compression functions pick the SHA-NI instructions at run time when the CPU
//! has them.

use zeroize::{Zeroize, Zeroizing};

/// A Merkle–Damgård hash exposed at the level of its compression function.
pub(crate) trait Md: Copy + Zeroize {
    /// A message block.
    type Block: AsRef<[u8]> + AsMut<[u8]> + Copy + Zeroize;
    /// Block length in bytes.
    const BLOCK: usize;
    /// Output length in bytes (after truncation for SHA-224/384/512-t).
    const OUT: usize;
    /// Length of the big-endian bit-length field at the end of the padding.
    const LEN_FIELD: usize;
    /// The state holding the initial value.
    fn initial() -> Self;
    /// An all-zero block.
    fn zero_block() -> Self::Block;
    /// Absorbs one block.
    fn compress(&mut self, block: &Self::Block);
    /// Writes the (truncated) big-endian output.
    fn output(&self, out: &mut [u8]);
    /// Writes the (truncated) big-endian output to the start of `block`, leaving the rest (the
    /// padding of a one-block message) untouched. The hot loop of PBKDF2: fixed-size, no
    /// bounds checks.
    fn output_to_block(&self, block: &mut Self::Block);
    /// XORs another state's words into this one's: the XOR of two outputs is the output of
    /// the XORed words, so PBKDF2 accumulates in words and serialises once.
    fn xor_words(&mut self, other: &Self);
}

/// One Merkle–Damgård hash at compression level: state of `$words` big-endian `$word`s, blocks
/// of `$block` bytes ending in a `$len_field`-byte length, `$out` output bytes.
macro_rules! md {
    (
        $name:ident, $word:ty, $words:literal, $block:literal, $len_field:literal, $out:literal,
        $iv:expr, $compress:path
    ) => {
        #[derive(Clone, Copy, Zeroize)]
        pub(crate) struct $name([$word; $words]);
        impl Md for $name {
            type Block = [u8; $block];
            const BLOCK: usize = $block;
            const OUT: usize = $out;
            const LEN_FIELD: usize = $len_field;
            fn initial() -> Self {
                $name($iv)
            }
            fn zero_block() -> [u8; $block] {
                [0; $block]
            }
            fn compress(&mut self, block: &[u8; $block]) {
                $compress(&mut self.0, std::slice::from_ref(block));
            }
            fn output(&self, out: &mut [u8]) {
                const WORD: usize = std::mem::size_of::<$word>();
                for (chunk, word) in out.chunks_mut(WORD).zip(self.0.iter()) {
                    let bytes = word.to_be_bytes();
                    chunk.copy_from_slice(bytes.get(..chunk.len()).unwrap_or_default());
                }
            }
            fn output_to_block(&self, block: &mut [u8; $block]) {
                const WORD: usize = std::mem::size_of::<$word>();
                for (chunk, word) in block
                    .chunks_exact_mut(WORD)
                    .zip(self.0.iter())
                    .take($out / WORD)
                {
                    chunk.copy_from_slice(&word.to_be_bytes());
                }
                // Only SHA-512/224 ends mid-word: its last half word goes through `output`.
                if $out % WORD != 0 {
                    self.output(block.get_mut(..$out).unwrap_or_default());
                }
            }
            fn xor_words(&mut self, other: &Self) {
                for (a, b) in self.0.iter_mut().zip(other.0.iter()) {
                    *a ^= b;
                }
            }
        }
    };
}

md!(
    Sha1,
    u32,
    5,
    64,
    8,
    20,
    [0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0],
    sha1::block_api::compress
);
md!(
    Sha256,
    u32,
    8,
    64,
    8,
    32,
    [
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
        0x5be0cd19
    ],
    sha2::block_api::compress256
);
md!(
    Sha224,
    u32,
    8,
    64,
    8,
    28,
    [
        0xc1059ed8, 0x367cd507, 0x3070dd17, 0xf70e5939, 0xffc00b31, 0x68581511, 0x64f98fa7,
        0xbefa4fa4
    ],
    sha2::block_api::compress256
);
md!(
    Sha512,
    u64,
    8,
    128,
    16,
    64,
    [
        0x6a09e667f3bcc908,
        0xbb67ae8584caa73b,
        0x3c6ef372fe94f82b,
        0xa54ff53a5f1d36f1,
        0x510e527fade682d1,
        0x9b05688c2b3e6c1f,
        0x1f83d9abfb41bd6b,
        0x5be0cd19137e2179
    ],
    sha2::block_api::compress512
);
md!(
    Sha384,
    u64,
    8,
    128,
    16,
    48,
    [
        0xcbbb9d5dc1059ed8,
        0x629a292a367cd507,
        0x9159015a3070dd17,
        0x152fecd8f70e5939,
        0x67332667ffc00b31,
        0x8eb44a8768581511,
        0xdb0c2e0d64f98fa7,
        0x47b5481dbefa4fa4
    ],
    sha2::block_api::compress512
);
md!(
    Sha512_224,
    u64,
    8,
    128,
    16,
    28,
    [
        0x8c3d37c819544da2,
        0x73e1996689dcd4d6,
        0x1dfab7ae32ff9c82,
        0x679dd514582f9fcf,
        0x0f6d2b697bd44da8,
        0x77e36f7304c48942,
        0x3f9d85a86a1d36c8,
        0x1112e6ad91d692a1
    ],
    sha2::block_api::compress512
);
md!(
    Sha512_256,
    u64,
    8,
    128,
    16,
    32,
    [
        0x22312194fc2bf72c,
        0x9f555fa3c84c64c2,
        0x2393b86b6f53b151,
        0x963877195940eabd,
        0x96283ee2a88effe3,
        0xbe5e1e2553863992,
        0x2b0199fc2c85b8aa,
        0x0eb72ddc81c52ca2
    ],
    sha2::block_api::compress512
);

/// Continues `state` (which has absorbed `prefix_len` bytes in whole blocks) over `data`, pads,
/// and writes the output.
fn finish<M: Md>(mut state: M, prefix_len: usize, data: &[u8], out: &mut [u8]) {
    let mut block = M::zero_block();
    let mut chunks = data.chunks_exact(M::BLOCK);
    for chunk in &mut chunks {
        block.as_mut().copy_from_slice(chunk);
        state.compress(&block);
    }
    let rest = chunks.remainder();
    block = M::zero_block();
    block
        .as_mut()
        .get_mut(..rest.len())
        .unwrap_or_default()
        .copy_from_slice(rest);
    if let Some(b) = block.as_mut().get_mut(rest.len()) {
        *b = 0x80;
    }
    if rest.len() + 1 + M::LEN_FIELD > M::BLOCK {
        state.compress(&block);
        block = M::zero_block();
    }
    let bits = ((prefix_len + data.len()) as u128) * 8;
    let len_bytes = bits.to_be_bytes();
    let field = len_bytes.get(16 - M::LEN_FIELD..).unwrap_or_default();
    block
        .as_mut()
        .get_mut(M::BLOCK - M::LEN_FIELD..)
        .unwrap_or_default()
        .copy_from_slice(field);
    state.compress(&block);
    state.output(out);
    block.zeroize();
    state.zeroize();
}

/// A single padded block holding a message of `M::OUT` bytes that follows `prefix` whole
/// blocks; the message goes in `[..M::OUT]`.
fn one_block_template<M: Md>(prefix_blocks: usize) -> M::Block {
    let mut block = M::zero_block();
    if let Some(b) = block.as_mut().get_mut(M::OUT) {
        *b = 0x80;
    }
    let bits = ((prefix_blocks * M::BLOCK + M::OUT) as u128) * 8;
    let len_bytes = bits.to_be_bytes();
    let field = len_bytes.get(16 - M::LEN_FIELD..).unwrap_or_default();
    block
        .as_mut()
        .get_mut(M::BLOCK - M::LEN_FIELD..)
        .unwrap_or_default()
        .copy_from_slice(field);
    block
}

/// HMAC with its keyed inner and outer states precomputed.
#[derive(Clone)]
struct HmacKey<M: Md> {
    inner: M,
    outer: M,
}

impl<M: Md> HmacKey<M> {
    fn new(key: &[u8]) -> Self {
        let mut k = M::zero_block();
        if key.len() > M::BLOCK {
            finish(
                M::initial(),
                0,
                key,
                k.as_mut().get_mut(..M::OUT).unwrap_or_default(),
            );
        } else {
            k.as_mut()
                .get_mut(..key.len())
                .unwrap_or_default()
                .copy_from_slice(key);
        }
        let mut ipad = k;
        let mut opad = k;
        ipad.as_mut().iter_mut().for_each(|b| *b ^= 0x36);
        opad.as_mut().iter_mut().for_each(|b| *b ^= 0x5c);
        let mut inner = M::initial();
        inner.compress(&ipad);
        let mut outer = M::initial();
        outer.compress(&opad);
        k.zeroize();
        ipad.zeroize();
        opad.zeroize();
        HmacKey { inner, outer }
    }

    /// HMAC of an arbitrary message.
    fn mac(&self, message: &[u8], out: &mut [u8]) {
        let mut inner_out = Zeroizing::new(vec![0u8; M::OUT]);
        finish(self.inner, M::BLOCK, message, &mut inner_out);
        finish(self.outer, M::BLOCK, &inner_out, out);
    }
}

impl<M: Md> Drop for HmacKey<M> {
    fn drop(&mut self) {
        self.inner.zeroize();
        self.outer.zeroize();
    }
}

/// HMAC of `message` under `key`.
pub(crate) fn hmac<M: Md>(key: &[u8], message: &[u8]) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(vec![0u8; M::OUT]);
    HmacKey::<M>::new(key).mac(message, &mut out);
    out
}

/// PBKDF2 (RFC 8018 §5.2) with HMAC over `M`: two compressions per iteration.
pub(crate) fn pbkdf2<M: Md>(password: &[u8], salt: &[u8], iterations: u32, out: &mut [u8]) {
    let key = HmacKey::<M>::new(password);
    let mut inner_block = one_block_template::<M>(1);
    let mut outer_block = one_block_template::<M>(1);
    let mut message = Zeroizing::new(Vec::with_capacity(salt.len() + 4));
    let mut t = Zeroizing::new(vec![0u8; M::OUT]);
    let mut u1 = Zeroizing::new(vec![0u8; M::OUT]);
    for (index, chunk) in out.chunks_mut(M::OUT).enumerate() {
        message.clear();
        message.extend_from_slice(salt);
        message.extend_from_slice(&(index as u32 + 1).to_be_bytes());
        // U1 = HMAC(P, S || INT(i)), written straight into the inner block's message slot.
        key.mac(
            &message,
            inner_block.as_mut().get_mut(..M::OUT).unwrap_or_default(),
        );
        u1.copy_from_slice(inner_block.as_ref().get(..M::OUT).unwrap_or_default());
        // T accumulates in state words: the words beyond a truncated output are XORed too,
        // but only the output's bytes are ever written out.
        let mut acc: Option<M> = None;
        let mut s = key.inner;
        for _ in 1..iterations {
            s = key.inner;
            s.compress(&inner_block);
            s.output_to_block(&mut outer_block);
            s = key.outer;
            s.compress(&outer_block);
            s.output_to_block(&mut inner_block);
            match &mut acc {
                Some(a) => a.xor_words(&s),
                None => acc = Some(s),
            }
        }
        s.zeroize();
        // T = U1 ⊕ (U2 ⊕ … ⊕ Uc).
        t.copy_from_slice(&u1);
        if let Some(mut a) = acc {
            let mut rest = Zeroizing::new(vec![0u8; M::OUT]);
            a.output(&mut rest);
            a.zeroize();
            t.iter_mut().zip(rest.iter()).for_each(|(x, y)| *x ^= y);
        }
        chunk.copy_from_slice(t.get(..chunk.len()).unwrap_or_default());
    }
    inner_block.zeroize();
    outer_block.zeroize();
}

/// The PKCS#12 KDF (RFC 7292 appendix B.2) over `M`: one compression per iteration.
pub(crate) fn pkcs12_kdf<M: Md>(
    password_bmp: &[u8],
    salt: &[u8],
    id: u8,
    iterations: u32,
    len: usize,
) -> Zeroizing<Vec<u8>> {
    let v = M::BLOCK;
    let u = M::OUT;
    let repeat = |src: &[u8]| -> Vec<u8> {
        if src.is_empty() {
            return Vec::new();
        }
        let n = v * src.len().div_ceil(v);
        src.iter().copied().cycle().take(n).collect()
    };
    let mut i_buf = Zeroizing::new(repeat(salt));
    i_buf.extend_from_slice(&Zeroizing::new(repeat(password_bmp)));
    let mut d = M::zero_block();
    d.as_mut().iter_mut().for_each(|b| *b = id);
    let mut a_block = one_block_template::<M>(0);
    let mut out = Zeroizing::new(Vec::with_capacity(len));
    loop {
        // A = H^c(D || I).
        let mut state = M::initial();
        state.compress(&d);
        finish(
            state,
            v,
            &i_buf,
            a_block.as_mut().get_mut(..u).unwrap_or_default(),
        );
        let mut s = M::initial();
        for _ in 1..iterations {
            s = M::initial();
            s.compress(&a_block);
            s.output_to_block(&mut a_block);
        }
        s.zeroize();
        let a = a_block.as_ref().get(..u).unwrap_or_default();
        let take = (len - out.len()).min(u);
        out.extend_from_slice(a.get(..take).unwrap_or_default());
        if out.len() >= len {
            break;
        }
        // I_j = (I_j + B + 1) mod 2^v for B = A repeated to v bytes.
        let b: Zeroizing<Vec<u8>> = Zeroizing::new(a.iter().copied().cycle().take(v).collect());
        for block in i_buf.chunks_mut(v) {
            let mut carry = 1u16;
            for (x, y) in block.iter_mut().rev().zip(b.iter().rev()) {
                let sum = u16::from(*x) + u16::from(*y) + carry;
                *x = sum as u8;
                carry = sum >> 8;
            }
        }
    }
    a_block.zeroize();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pbe::kdf::HashAlg;

    /// The straightforward implementations these replace, as oracles.
    fn oracle_pbkdf2<Mac: hmac::Mac + hmac::KeyInit + Clone>(
        pw: &[u8],
        salt: &[u8],
        iters: u32,
        out: &mut [u8],
        hlen: usize,
    ) {
        let prf = <Mac as hmac::KeyInit>::new_from_slice(pw).unwrap();
        for (index, block) in out.chunks_mut(hlen).enumerate() {
            let mut m = prf.clone();
            m.update(salt);
            m.update(&(index as u32 + 1).to_be_bytes());
            let mut u = m.finalize().into_bytes();
            let mut t = u.clone();
            for _ in 1..iters {
                let mut m = prf.clone();
                m.update(&u);
                u = m.finalize().into_bytes();
                t.iter_mut().zip(u.iter()).for_each(|(a, b)| *a ^= b);
            }
            block.copy_from_slice(&t[..block.len()]);
        }
    }

    macro_rules! agree {
        ($fast:ty, $digest:ty) => {{
            for (pw, salt, iters, len) in [
                (&b""[..], &b""[..], 1u32, 7usize),
                (b"password", b"salt", 1, 20),
                (b"password", b"salt", 3, 64),
                (&[0x41u8; 200][..], &[7u8; 130][..], 5, 100),
                (b"k", &[1u8; 64][..], 2, 33),
            ] {
                let mut fast = vec![0u8; len];
                pbkdf2::<$fast>(pw, salt, iters, &mut fast);
                let mut slow = vec![0u8; len];
                oracle_pbkdf2::<hmac::Hmac<$digest>>(
                    pw,
                    salt,
                    iters,
                    &mut slow,
                    <$fast as Md>::OUT,
                );
                assert_eq!(fast, slow, "pbkdf2 {} {len}", stringify!($digest));
                for id in [1u8, 2, 3] {
                    let fast = pkcs12_kdf::<$fast>(pw, salt, id, iters, len);
                    let slow = pkcs12::kdf::derive_key::<$digest>(
                        pw,
                        salt,
                        match id {
                            1 => pkcs12::kdf::Pkcs12KeyType::EncryptionKey,
                            2 => pkcs12::kdf::Pkcs12KeyType::Iv,
                            _ => pkcs12::kdf::Pkcs12KeyType::Mac,
                        },
                        iters as i32,
                        len,
                    );
                    assert_eq!(
                        fast.as_slice(),
                        slow.as_slice(),
                        "pkcs12 kdf {} {len}",
                        stringify!($digest)
                    );
                }
                let fast = hmac::<$fast>(pw, salt);
                let mut m = <hmac::Hmac<$digest> as hmac::KeyInit>::new_from_slice(pw).unwrap();
                hmac::Mac::update(&mut m, salt);
                assert_eq!(
                    fast.as_slice(),
                    hmac::Mac::finalize(m).into_bytes().as_slice()
                );
            }
        }};
    }

    #[test]
    fn fast_kdfs_agree_with_the_textbook_implementations_for_every_hash() {
        agree!(Sha1, sha1::Sha1);
        agree!(Sha224, sha2::Sha224);
        agree!(Sha256, sha2::Sha256);
        agree!(Sha384, sha2::Sha384);
        agree!(Sha512, sha2::Sha512);
        agree!(Sha512_224, sha2::Sha512_224);
        agree!(Sha512_256, sha2::Sha512_256);
        let _ = HashAlg::Sha1;
    }
}
