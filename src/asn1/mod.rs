//! Minimal DER reading and writing shared by every format (PKCS#12, PKCS#8/PEM, JKS key
//! protection, the catalog's certificate authority), with byte offsets in errors.
//!
//! Input reaches this reader only after [`ber::normalize`], so it handles definite
//! lengths only. Every nested read is bounded by its declared length; every top-level decode
//! checks for trailing data.

use der::asn1::ObjectIdentifier;

use crate::error::{Error, Result};

pub mod ber;

/// Universal and context tags used by the formats and the certificate encoder.
pub mod tag {
    /// `INTEGER`.
    pub const INTEGER: u8 = 0x02;
    /// `BIT STRING`.
    pub const BIT_STRING_TAG: u8 = 0x03;
    /// `OCTET STRING`.
    pub const OCTET_STRING: u8 = 0x04;
    /// `NULL`.
    pub const NULL: u8 = 0x05;
    /// `OBJECT IDENTIFIER`.
    pub const OID: u8 = 0x06;
    /// `UTF8String`.
    pub const UTF8_STRING: u8 = 0x0c;
    /// `BMPString` (UTF-16BE).
    pub const BMP_STRING: u8 = 0x1e;
    /// `SEQUENCE` (constructed).
    pub const SEQUENCE: u8 = 0x30;
    /// `SET` (constructed).
    pub const SET: u8 = 0x31;
    /// `[0]` constructed (EXPLICIT, or IMPLICIT of a constructed type).
    pub const CONTEXT_0: u8 = 0xa0;
    /// `[0]` primitive (IMPLICIT OCTET STRING).
    pub const CONTEXT_0_PRIMITIVE: u8 = 0x80;
    /// `[1]` constructed.
    pub const CONTEXT_1: u8 = 0xa1;
}

/// One decoded tag-length-value, borrowing its content.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Tlv<'a> {
    pub tag: u8,
    pub value: &'a [u8],
    /// Offset of the first content byte, relative to the outermost buffer of this context.
    pub offset: u64,
    /// Offset of the tag byte.
    pub start: u64,
    /// The whole encoding, tag and length included.
    pub raw: &'a [u8],
}

/// A cursor over a sequence of DER elements.
#[derive(Clone, Debug)]
pub(crate) struct DerReader<'a> {
    buf: &'a [u8],
    pos: usize,
    base: u64,
    ctx: &'static str,
}

impl<'a> DerReader<'a> {
    pub fn new(buf: &'a [u8], ctx: &'static str) -> Self {
        DerReader {
            buf,
            pos: 0,
            base: 0,
            ctx,
        }
    }

    fn err(&self, at: usize, reason: impl Into<String>) -> Error {
        Error::malformed_at(self.ctx, self.base + at as u64, reason)
    }

    pub fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    pub fn peek_tag(&self) -> Option<u8> {
        self.buf.get(self.pos).copied()
    }

    /// Reads the next element whatever its tag.
    pub fn read_any(&mut self) -> Result<Tlv<'a>> {
        let start = self.pos;
        let (tag, header_len, len) =
            parse_header(self.buf, start).map_err(|r| self.err(start, r))?;
        let content_start = start + header_len;
        let end = content_start
            .checked_add(len)
            .filter(|end| *end <= self.buf.len())
            .ok_or_else(|| {
                self.err(
                    start,
                    format!(
                        "declared length {len} exceeds the {} bytes that remain",
                        self.buf.len().saturating_sub(content_start)
                    ),
                )
            })?;
        self.pos = end;
        Ok(Tlv {
            tag,
            value: self.buf.get(content_start..end).unwrap_or_default(),
            offset: self.base + content_start as u64,
            start: self.base + start as u64,
            raw: self.buf.get(start..end).unwrap_or_default(),
        })
    }

    /// Reads the next element, which must carry `expected`.
    pub fn read(&mut self, expected: u8, what: &str) -> Result<Tlv<'a>> {
        match self.peek_tag() {
            Some(t) if t == expected => self.read_any(),
            Some(t) => Err(self.err(
                self.pos,
                format!("expected {what} (tag 0x{expected:02x}), found tag 0x{t:02x}"),
            )),
            None => Err(self.err(self.pos, format!("expected {what}, found end of data"))),
        }
    }

    /// Reads the next element if it carries `expected`.
    pub fn read_optional(&mut self, expected: u8) -> Result<Option<Tlv<'a>>> {
        if self.peek_tag() == Some(expected) {
            self.read_any().map(Some)
        } else {
            Ok(None)
        }
    }

    /// Fails unless every byte was consumed.
    pub fn finish(&self) -> Result<()> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(self.err(
                self.pos,
                format!("{} unexpected trailing bytes", self.buf.len() - self.pos),
            ))
        }
    }
}

impl<'a> Tlv<'a> {
    /// A reader over this element's content, keeping absolute offsets.
    pub fn reader(&self, ctx: &'static str) -> DerReader<'a> {
        DerReader {
            buf: self.value,
            pos: 0,
            base: self.offset,
            ctx,
        }
    }

    fn err(&self, ctx: &'static str, reason: impl Into<String>) -> Error {
        Error::malformed_at(ctx, self.start, reason)
    }

    /// The value as an `OBJECT IDENTIFIER`.
    pub fn oid(&self, ctx: &'static str) -> Result<ObjectIdentifier> {
        if self.tag != tag::OID {
            return Err(self.err(ctx, "expected an OBJECT IDENTIFIER"));
        }
        ObjectIdentifier::from_bytes(self.value)
            .map_err(|e| self.err(ctx, format!("bad OBJECT IDENTIFIER: {e}")))
    }

    /// A non-negative INTEGER; values beyond u64 saturate to `u64::MAX` so that limit checks,
    /// not arithmetic, reject them.
    pub fn uint(&self, ctx: &'static str) -> Result<u64> {
        if self.tag != tag::INTEGER {
            return Err(self.err(ctx, "expected an INTEGER"));
        }
        let (first, _) = self
            .value
            .split_first()
            .ok_or_else(|| self.err(ctx, "empty INTEGER"))?;
        if first & 0x80 != 0 {
            return Err(self.err(ctx, "negative INTEGER where a count is expected"));
        }
        let digits: &[u8] = match self.value.iter().position(|b| *b != 0) {
            Some(i) => self.value.get(i..).unwrap_or_default(),
            None => &[],
        };
        if digits.len() > 8 {
            return Ok(u64::MAX);
        }
        Ok(digits
            .iter()
            .fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
    }

    /// The value of an `OCTET STRING`.
    pub fn octets(&self, ctx: &'static str) -> Result<&'a [u8]> {
        if self.tag != tag::OCTET_STRING {
            return Err(self.err(ctx, "expected an OCTET STRING"));
        }
        Ok(self.value)
    }

    /// A BMPString as text; an odd length or a lone surrogate is malformed.
    pub fn bmp_string(&self, ctx: &'static str) -> Result<String> {
        if self.tag != tag::BMP_STRING {
            return Err(self.err(ctx, "expected a BMPString"));
        }
        if !self.value.len().is_multiple_of(2) {
            return Err(self.err(ctx, "BMPString of odd length"));
        }
        let units = self.value.chunks_exact(2).map(|c| {
            u16::from_be_bytes([
                c.first().copied().unwrap_or(0),
                c.get(1).copied().unwrap_or(0),
            ])
        });
        char::decode_utf16(units)
            .collect::<std::result::Result<String, _>>()
            .map_err(|_| self.err(ctx, "BMPString with an unpaired surrogate"))
    }
}

/// Parses a tag and a definite length at `pos`: (tag, header length, content length).
pub(crate) fn parse_header(
    buf: &[u8],
    pos: usize,
) -> std::result::Result<(u8, usize, usize), String> {
    let tag = *buf.get(pos).ok_or("truncated: missing tag")?;
    if tag & 0x1f == 0x1f {
        return Err(format!(
            "high tag numbers are not used by PKCS#12 (tag byte 0x{tag:02x})"
        ));
    }
    let first = *buf.get(pos + 1).ok_or("truncated: missing length")?;
    if first < 0x80 {
        return Ok((tag, 2, usize::from(first)));
    }
    if first == 0x80 {
        return Err("indefinite length where DER is required".into());
    }
    let n = usize::from(first & 0x7f);
    if n > 4 {
        return Err(format!("length of {n} bytes is too large"));
    }
    let bytes = buf
        .get(pos + 2..pos + 2 + n)
        .ok_or("truncated: length bytes missing")?;
    let len = bytes
        .iter()
        .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
    Ok((tag, 2 + n, len))
}

/// DER encoding helpers for the writer.
pub mod enc {
    use der::asn1::ObjectIdentifier;

    use super::tag;

    /// One TLV: `tag`, the DER length of `content`, `content`.
    pub fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(content.len() + 6);
        out.push(tag);
        push_len(&mut out, content.len());
        out.extend_from_slice(content);
        out
    }

    /// Appends a DER length (short form below 128, else the minimal long form).
    pub fn push_len(out: &mut Vec<u8>, len: usize) {
        if len < 0x80 {
            out.push(len as u8);
        } else {
            let bytes = len.to_be_bytes();
            let skip = bytes.iter().take_while(|b| **b == 0).count();
            let significant = bytes.get(skip..).unwrap_or_default();
            out.push(0x80 | significant.len() as u8);
            out.extend_from_slice(significant);
        }
    }

    /// A `SEQUENCE` of already-encoded parts.
    pub fn seq(parts: &[&[u8]]) -> Vec<u8> {
        tlv(tag::SEQUENCE, &parts.concat())
    }

    /// A `SET` of already-encoded parts, in the order given (callers sort for DER `SET OF`).
    pub fn set(parts: &[&[u8]]) -> Vec<u8> {
        tlv(tag::SET, &parts.concat())
    }

    /// An `OBJECT IDENTIFIER`.
    pub fn oid(oid: &ObjectIdentifier) -> Vec<u8> {
        tlv(tag::OID, oid.as_bytes())
    }

    /// An `OCTET STRING`.
    pub fn octets(bytes: &[u8]) -> Vec<u8> {
        tlv(tag::OCTET_STRING, bytes)
    }

    /// `NULL`.
    pub fn null() -> Vec<u8> {
        vec![tag::NULL, 0]
    }

    /// A non-negative `INTEGER`, minimally encoded.
    pub fn uint(value: u64) -> Vec<u8> {
        let bytes = value.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count().min(7);
        let mut content = Vec::with_capacity(9);
        if bytes.get(skip).is_some_and(|b| b & 0x80 != 0) {
            content.push(0);
        }
        content.extend_from_slice(bytes.get(skip..).unwrap_or_default());
        tlv(tag::INTEGER, &content)
    }

    /// A `BMPString` (UTF-16BE, no terminator).
    pub fn bmp_string(text: &str) -> Vec<u8> {
        let units: Vec<u8> = text.encode_utf16().flat_map(u16::to_be_bytes).collect();
        tlv(tag::BMP_STRING, &units)
    }

    /// `[0]` EXPLICIT (or IMPLICIT constructed) around `content`.
    pub fn explicit0(content: &[u8]) -> Vec<u8> {
        tlv(tag::CONTEXT_0, content)
    }

    /// `AlgorithmIdentifier ::= SEQUENCE { algorithm OID, parameters ANY OPTIONAL }`.
    pub fn algorithm(oid_value: &ObjectIdentifier, params: Option<&[u8]>) -> Vec<u8> {
        seq(&[&oid(oid_value), params.unwrap_or_default()])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_length_beyond_buffer() {
        let mut r = DerReader::new(&[0x30, 0x05, 0x01], "test");
        let err = r.read_any().unwrap_err().to_string();
        assert!(err.contains("exceeds"), "{err}");
    }

    #[test]
    fn reads_integer_with_explicit_leading_zero() {
        let mut r = DerReader::new(&[0x02, 0x02, 0x00, 0x80], "test");
        assert_eq!(r.read_any().unwrap().uint("t").unwrap(), 128);
    }

    #[test]
    fn rejects_negative_count() {
        let mut r = DerReader::new(&[0x02, 0x01, 0xff], "test");
        assert!(r.read_any().unwrap().uint("t").is_err());
    }

    #[test]
    fn saturates_huge_integer() {
        let mut bytes = vec![0x02, 0x09, 0x01];
        bytes.extend([0; 8]);
        let mut r = DerReader::new(&bytes, "test");
        assert_eq!(r.read_any().unwrap().uint("t").unwrap(), u64::MAX);
    }

    #[test]
    fn encodes_integers_minimally() {
        assert_eq!(enc::uint(0), vec![2, 1, 0]);
        assert_eq!(enc::uint(128), vec![2, 2, 0, 128]);
        assert_eq!(enc::uint(2048), vec![2, 2, 8, 0]);
    }
}
