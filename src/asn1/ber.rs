//! BER → DER normalisation, run once on untrusted input before any structure is decoded.
//!
//! Firefox/NSS and some Java versions write PKCS#12 in BER: indefinite lengths and OCTET STRINGs
//! split into constructed chunks. Rather than teach every decoder BER, the input is rewritten to
//! definite, minimal lengths with constructed universal strings joined into primitive ones.
//! Nothing else changes, so MACs over content octets still verify. Work and output are bounded
//! by the input size; nesting is bounded by a depth limit.

use crate::error::{Error, LimitKind, Result};

const EOC: [u8; 2] = [0, 0];

/// Rewrites one BER element (the whole of `input`) as DER. Trailing bytes are an error.
///
/// # Errors
/// [`Error::Malformed`] with the byte offset of the offending header, or
/// [`Error::LimitExceeded`] when nesting is deeper than `max_depth`.
pub fn normalize(input: &[u8], max_depth: usize) -> Result<Vec<u8>> {
    let (out, end) = normalize_first(input, max_depth)?;
    if end != input.len() {
        return Err(trailing_error(input, end));
    }
    Ok(out)
}

/// Rewrites one BER element followed only by zero bytes, as Windows (CryptoAPI's
/// `PFXExportCertStoreEx`, .NET) pads the PFX files it writes; returns the DER and the number of
/// padding bytes. OpenSSL, keytool and `cryptography` read such files. Any other trailing byte
/// is an error: nothing but padding may hide behind the element.
///
/// # Errors
/// As [`normalize`]; a non-zero byte after the element is [`Error::Malformed`].
pub fn normalize_zero_padded(input: &[u8], max_depth: usize) -> Result<(Vec<u8>, usize)> {
    let (out, end) = normalize_first(input, max_depth)?;
    let rest = input.get(end..).unwrap_or_default();
    if rest.iter().any(|b| *b != 0) {
        return Err(trailing_error(input, end));
    }
    Ok((out, rest.len()))
}

fn normalize_first(input: &[u8], max_depth: usize) -> Result<(Vec<u8>, usize)> {
    let mut out = Vec::with_capacity(input.len());
    let mut n = Normalizer {
        buf: input,
        max_depth,
        ctx: "BER/DER encoding",
    };
    let end = n.element(0, 0, &mut out)?;
    Ok((out, end))
}

fn trailing_error(input: &[u8], end: usize) -> Error {
    Error::malformed_at(
        "BER/DER encoding",
        end as u64,
        format!(
            "{} trailing bytes after the top-level element",
            input.len().saturating_sub(end)
        ),
    )
}

struct Normalizer<'a> {
    buf: &'a [u8],
    max_depth: usize,
    ctx: &'static str,
}

/// A parsed header: tag, where the content starts, and its length (`None` = indefinite).
struct Header {
    tag: u8,
    content: usize,
    len: Option<usize>,
}

impl Normalizer<'_> {
    fn err(&self, at: usize, reason: impl Into<String>) -> Error {
        Error::malformed_at(self.ctx, at as u64, reason)
    }

    fn header(&self, pos: usize) -> Result<Header> {
        let tag = *self
            .buf
            .get(pos)
            .ok_or_else(|| self.err(pos, "truncated: missing tag"))?;
        if tag & 0x1f == 0x1f {
            return Err(self.err(
                pos,
                format!("high tag number form (0x{tag:02x}) is not used here"),
            ));
        }
        let first = *self
            .buf
            .get(pos + 1)
            .ok_or_else(|| self.err(pos, "truncated: missing length"))?;
        if first < 0x80 {
            let (content, len) = (pos + 2, usize::from(first));
            // Short-form lengths are bounded like long-form ones: a primitive element that
            // overran the input used to be copied short and end past it.
            if content + len > self.buf.len() {
                return Err(self.err(
                    pos,
                    format!(
                        "declared length {len} exceeds the {} bytes that remain",
                        self.buf.len().saturating_sub(content)
                    ),
                ));
            }
            return Ok(Header {
                tag,
                content,
                len: Some(len),
            });
        }
        if first == 0x80 {
            if tag & 0x20 == 0 {
                return Err(self.err(pos, "indefinite length on a primitive element"));
            }
            return Ok(Header {
                tag,
                content: pos + 2,
                len: None,
            });
        }
        let n = usize::from(first & 0x7f);
        if n > 4 {
            return Err(self.err(pos, format!("length of {n} bytes is too large")));
        }
        let bytes = self
            .buf
            .get(pos + 2..pos + 2 + n)
            .ok_or_else(|| self.err(pos, "truncated: length bytes missing"))?;
        let len = bytes
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        let content = pos + 2 + n;
        if content
            .checked_add(len)
            .is_none_or(|end| end > self.buf.len())
        {
            return Err(self.err(
                pos,
                format!(
                    "declared length {len} exceeds the {} bytes that remain",
                    self.buf.len().saturating_sub(content)
                ),
            ));
        }
        Ok(Header {
            tag,
            content,
            len: Some(len),
        })
    }

    fn check_depth(&self, depth: usize, pos: usize) -> Result<()> {
        if depth > self.max_depth {
            let _ = pos;
            return Err(Error::LimitExceeded {
                limit: LimitKind::NestingDepth,
                value: depth as u64,
                bound: self.max_depth as u64,
            });
        }
        Ok(())
    }

    /// Converts the element at `pos`, appending DER to `out`; returns the position after it.
    fn element(&mut self, pos: usize, depth: usize, out: &mut Vec<u8>) -> Result<usize> {
        let h = self.header(pos)?;
        let constructed = h.tag & 0x20 != 0;
        if !constructed {
            let len = h.len.unwrap_or(0);
            let end = h.content + len;
            out.push(h.tag);
            super::enc::push_len(out, len);
            out.extend_from_slice(self.buf.get(h.content..end).unwrap_or_default());
            return Ok(end);
        }
        self.check_depth(depth + 1, pos)?;
        // Constructed universal string types (OCTET STRING, UTF8String, BMPString, …) are joined
        // into one primitive string, as DER requires. BIT STRING chunks carry an unused-bits
        // octet each and are not produced by any PKCS#12 writer, so they are refused.
        let universal = h.tag & 0xc0 == 0;
        let number = h.tag & 0x1f;
        if universal && number == 0x03 {
            return Err(self.err(pos, "constructed BIT STRING is not supported"));
        }
        let is_string =
            universal && matches!(number, 0x04 | 0x0c | 0x13 | 0x14 | 0x16 | 0x1a | 0x1e);
        let mut content = Vec::new();
        let end = if is_string {
            self.string_chunks(&h, number, depth + 1, &mut content)?
        } else {
            self.children(&h, depth + 1, &mut content)?
        };
        out.push(if is_string { h.tag & !0x20 } else { h.tag });
        super::enc::push_len(out, content.len());
        out.extend_from_slice(&content);
        Ok(end)
    }

    /// Walks the children of a constructed element; returns the position after its end.
    fn for_each_child(
        &mut self,
        h: &Header,
        mut visit: impl FnMut(&mut Self, usize) -> Result<usize>,
    ) -> Result<usize> {
        let mut pos = h.content;
        match h.len {
            Some(len) => {
                let end = h.content + len;
                while pos < end {
                    pos = visit(self, pos)?;
                    if pos > end {
                        return Err(self.err(pos, "element overruns its enclosing length"));
                    }
                }
                Ok(end)
            }
            None => loop {
                if self.buf.get(pos..pos + 2) == Some(&EOC[..]) {
                    return Ok(pos + 2);
                }
                if pos >= self.buf.len() {
                    return Err(self.err(pos, "truncated: end-of-contents marker missing"));
                }
                pos = visit(self, pos)?;
            },
        }
    }

    fn children(&mut self, h: &Header, depth: usize, out: &mut Vec<u8>) -> Result<usize> {
        self.for_each_child(h, |n, pos| n.element(pos, depth, out))
    }

    fn string_chunks(
        &mut self,
        h: &Header,
        number: u8,
        depth: usize,
        out: &mut Vec<u8>,
    ) -> Result<usize> {
        self.for_each_child(h, |n, pos| {
            let child = n.header(pos)?;
            if child.tag & 0x1f != number || child.tag & 0xc0 != 0 {
                return Err(n.err(pos, "a constructed string chunk has another type"));
            }
            if child.tag & 0x20 != 0 {
                n.check_depth(depth + 1, pos)?;
                n.string_chunks(&child, number, depth + 1, out)
            } else {
                let end = child.content + child.len.unwrap_or(0);
                out.extend_from_slice(n.buf.get(child.content..end).unwrap_or_default());
                Ok(end)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_der_unchanged() {
        let der = [0x30, 0x06, 0x02, 0x01, 0x03, 0x04, 0x01, 0xaa];
        assert_eq!(normalize(&der, 8).unwrap(), der);
    }

    #[test]
    fn joins_indefinite_constructed_octet_string() {
        let ber = [
            0x30, 0x80, 0x24, 0x80, 0x04, 0x02, 0x01, 0x02, 0x04, 0x01, 0x03, 0x00, 0x00, 0x00,
            0x00,
        ];
        assert_eq!(
            normalize(&ber, 8).unwrap(),
            [0x30, 0x05, 0x04, 0x03, 0x01, 0x02, 0x03]
        );
    }

    #[test]
    fn minimises_long_form_lengths() {
        let ber = [0x04, 0x82, 0x00, 0x01, 0xaa];
        assert_eq!(normalize(&ber, 8).unwrap(), [0x04, 0x01, 0xaa]);
    }

    #[test]
    fn rejects_missing_end_of_contents() {
        let ber = [0x30, 0x80, 0x02, 0x01, 0x01];
        assert!(matches!(normalize(&ber, 8), Err(Error::Malformed { .. })));
    }

    #[test]
    fn rejects_nesting_deeper_than_the_limit() {
        let mut ber = Vec::new();
        for _ in 0..20 {
            ber.extend([0x30, 0x80]);
        }
        for _ in 0..20 {
            ber.extend([0, 0]);
        }
        assert!(matches!(
            normalize(&ber, 8),
            Err(Error::LimitExceeded {
                limit: LimitKind::NestingDepth,
                ..
            })
        ));
    }

    #[test]
    fn rejects_trailing_bytes() {
        assert!(normalize(&[0x05, 0x00, 0x00], 8).is_err());
    }

    #[test]
    fn accepts_zero_padding_only() {
        let (der, padding) = normalize_zero_padded(&[0x05, 0x00, 0x00, 0x00], 8).unwrap();
        assert_eq!((der.as_slice(), padding), (&[0x05, 0x00][..], 2));
        assert!(normalize_zero_padded(&[0x05, 0x00, 0x00, 0x01], 8).is_err());
    }
}
