//! Java's *modified* UTF-8, as `DataOutputStream.writeUTF` writes and `DataInputStream.readUTF`
//! reads it (`java.io.DataInput` documentation, "Modified UTF-8").
//!
//! It encodes UTF-16 code units, not code points: U+0000 is `C0 80`, and a character outside the
//! BMP is its two surrogates, each as a 3-byte sequence (never a 4-byte sequence).

/// A decoded string, and whether it had to be repaired: Java strings may hold unpaired
/// surrogates, which a Rust `String` cannot, so each becomes U+FFFD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Decoded {
    pub(crate) text: String,
    pub(crate) lossy: bool,
}

/// Encodes `text` as modified UTF-8 (without the two-byte length prefix).
pub(crate) fn encode(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    for unit in text.encode_utf16() {
        match unit {
            0x0001..=0x007F => out.push(unit as u8),
            // U+0000 takes the two-byte form so that the encoding never holds a NUL byte.
            0x0000..=0x07FF => {
                out.push(0xC0 | (unit >> 6) as u8);
                out.push(0x80 | (unit & 0x3F) as u8);
            }
            _ => {
                out.push(0xE0 | (unit >> 12) as u8);
                out.push(0x80 | ((unit >> 6) & 0x3F) as u8);
                out.push(0x80 | (unit & 0x3F) as u8);
            }
        }
    }
    out
}

/// Decodes modified UTF-8 exactly as `DataInputStream.readUTF` accepts it: one-, two- and
/// three-byte forms (overlong forms included, as Java does not check them); a lead byte of the
/// form `10xxxxxx` or `1111xxxx` or a continuation byte that is not `10xxxxxx` is an error.
///
/// # Errors
/// The offset (within `bytes`) of the first byte that cannot be decoded.
pub(crate) fn decode(bytes: &[u8]) -> Result<Decoded, usize> {
    let mut units: Vec<u16> = Vec::with_capacity(bytes.len());
    let mut i = 0usize;
    let cont = |at: usize| -> Result<u16, usize> {
        match bytes.get(at) {
            Some(b) if b & 0xC0 == 0x80 => Ok(u16::from(b & 0x3F)),
            _ => Err(at),
        }
    };
    while let Some(&lead) = bytes.get(i) {
        match lead >> 4 {
            0..=7 => {
                units.push(u16::from(lead));
                i += 1;
            }
            12 | 13 => {
                let b1 = cont(i + 1)?;
                units.push((u16::from(lead & 0x1F) << 6) | b1);
                i += 2;
            }
            14 => {
                let b1 = cont(i + 1)?;
                let b2 = cont(i + 2)?;
                units.push((u16::from(lead & 0x0F) << 12) | (b1 << 6) | b2);
                i += 3;
            }
            _ => return Err(i),
        }
    }
    Ok(match String::from_utf16(&units) {
        Ok(text) => Decoded { text, lossy: false },
        Err(_) => Decoded {
            text: String::from_utf16_lossy(&units),
            lossy: true,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(s: &str) -> Vec<u8> {
        let bytes = encode(s);
        assert_eq!(
            decode(&bytes),
            Ok(Decoded {
                text: s.into(),
                lossy: false
            })
        );
        bytes
    }

    #[test]
    fn encodes_ascii_as_itself() {
        assert_eq!(round_trip("server-1"), b"server-1");
    }

    #[test]
    fn encodes_nul_as_two_bytes() {
        assert_eq!(round_trip("a\0b"), [0x61, 0xC0, 0x80, 0x62]);
    }

    #[test]
    fn encodes_latin1_and_bmp() {
        assert_eq!(round_trip("ü"), [0xC3, 0xBC]);
        assert_eq!(round_trip("€"), [0xE2, 0x82, 0xAC]);
    }

    #[test]
    fn encodes_non_bmp_as_surrogate_pair_of_three_byte_forms() {
        // U+1F600 = D83D DE00.
        assert_eq!(round_trip("😀"), [0xED, 0xA0, 0xBD, 0xED, 0xB8, 0x80]);
    }

    #[test]
    fn rejects_four_byte_utf8_like_java() {
        assert_eq!(decode(&[0x61, 0xF0, 0x9F, 0x98, 0x80]), Err(1));
    }

    #[test]
    fn rejects_stray_continuation_and_truncated_sequences() {
        assert_eq!(decode(&[0x80]), Err(0));
        assert_eq!(decode(&[0x61, 0xC3]), Err(2));
        assert_eq!(decode(&[0xE2, 0x82]), Err(2));
        assert_eq!(decode(&[0xE2, 0x41, 0xAC]), Err(1));
    }

    #[test]
    fn accepts_overlong_forms_like_java() {
        assert_eq!(decode(&[0xC1, 0x81]).map(|d| d.text), Ok("A".into()));
    }

    #[test]
    fn replaces_unpaired_surrogate_and_says_so() {
        let d = decode(&[0xED, 0xA0, 0xBD, 0x61]).unwrap_or_else(|_| unreachable!());
        assert_eq!(d.text, "\u{FFFD}a");
        assert!(d.lossy);
    }
}
