//! A bounded reader for the Java serialization streams in JCEKS secret-key entries.
//!
//! A JCEKS secret-key entry (tag 3) is a `java.io.ObjectOutputStream` stream holding a
//! `SealedObjectForKeyProtector` (a `javax.crypto.SealedObject`) with no length prefix, and the
//! sealed content is itself a stream holding the key (`javax.crypto.spec.SecretKeySpec`, or a
//! `java.security.KeyRep` for keys that replace themselves when serialized). The entry's end, and
//! so the next entry and the store digest, can only be found by reading the stream, so this
//! module reads the grammar of the *Java Object Serialization Specification* §6.4 — class
//! descriptions, objects, strings, arrays, enums, references, block data — into a small tree of
//! values. Nothing is ever instantiated; classes are only names.
//!
//! Hostile input is bounded: every length is checked against the bytes that remain before
//! anything is allocated, nesting is capped, each handle costs at least one input byte, and a
//! back-reference shares the value it names instead of copying it.

use std::rc::Rc;

use zeroize::Zeroizing;

use super::mutf8;
use crate::error::{Error, LimitKind, Result};

const STREAM_MAGIC: [u8; 4] = [0xAC, 0xED, 0x00, 0x05];
const BASE_HANDLE: u32 = 0x007E_0000;

const TC_NULL: u8 = 0x70;
const TC_REFERENCE: u8 = 0x71;
const TC_CLASSDESC: u8 = 0x72;
const TC_OBJECT: u8 = 0x73;
const TC_STRING: u8 = 0x74;
const TC_ARRAY: u8 = 0x75;
const TC_CLASS: u8 = 0x76;
const TC_BLOCKDATA: u8 = 0x77;
const TC_ENDBLOCKDATA: u8 = 0x78;
const TC_BLOCKDATALONG: u8 = 0x7A;
const TC_LONGSTRING: u8 = 0x7C;
const TC_PROXYCLASSDESC: u8 = 0x7D;
const TC_ENUM: u8 = 0x7E;

/// Object fields kept per stream: a secret-key entry needs a handful (a `SealedObject` has four,
/// the key inside two to four). Beyond this, values are still read, but not kept, so a stream
/// of many small objects cannot make memory grow faster than its bytes.
const MAX_RETAINED_FIELDS: usize = 256;

const SC_WRITE_METHOD: u8 = 0x01;
const SC_SERIALIZABLE: u8 = 0x02;
const SC_EXTERNALIZABLE: u8 = 0x04;
const SC_BLOCK_DATA: u8 = 0x08;

/// A value read from a stream. Byte arrays are zeroized on drop: they may be key material.
#[derive(Debug)]
pub(crate) enum Value {
    Null,
    Str(String),
    Bytes(Zeroizing<Vec<u8>>),
    Object {
        class: String,
        /// Object-typed field values of every class from the top superclass down, by field name
        /// (primitive fields and nulls are read, not kept).
        fields: Vec<(Rc<str>, Rc<Value>)>,
    },
    Enum {
        constant: String,
    },
    /// Anything else (other arrays, classes, class descriptions): read, not kept.
    Other,
}

impl Value {
    /// The class name of an object.
    pub(crate) fn class(&self) -> Option<&str> {
        match self {
            Value::Object { class, .. } => Some(class),
            _ => None,
        }
    }

    /// An object's field by name.
    pub(crate) fn field(&self, name: &str) -> Option<&Value> {
        match self {
            Value::Object { fields, .. } => fields
                .iter()
                .find(|(n, _)| n.as_ref() == name)
                .map(|(_, v)| v.as_ref()),
            _ => None,
        }
    }

    pub(crate) fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    pub(crate) fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }

    pub(crate) fn enum_constant(&self) -> Option<&str> {
        match self {
            Value::Enum { constant } => Some(constant),
            _ => None,
        }
    }
}

struct Field {
    code: u8,
    /// Shared with every object of the class: never copied per object.
    name: Rc<str>,
}

struct ClassDesc {
    name: String,
    flags: u8,
    fields: Vec<Field>,
    superclass: Option<Rc<ClassDesc>>,
}

enum Handle {
    /// A handle whose value is still being read (a reference to it reads as [`Value::Other`]).
    Pending,
    Class(Rc<ClassDesc>),
    Value(Rc<Value>),
}

/// Reads one serialization stream (magic, version, one object) starting at `start` of `buf`;
/// returns the object and the position just after it. Offsets in errors are positions in
/// `buf`.
///
/// # Errors
/// [`Error::Malformed`] for a truncated or invalid stream, [`Error::LimitExceeded`]
/// ([`LimitKind::NestingDepth`]) when objects nest deeper than `max_depth`,
/// [`Error::Unsupported`] for externalizable objects written without block data (whose length
/// cannot be known without their class).
pub(crate) fn read_stream(
    buf: &[u8],
    start: usize,
    max_depth: usize,
    context: &str,
) -> Result<(Rc<Value>, usize)> {
    let mut r = Reader {
        buf,
        pos: start,
        handles: Vec::new(),
        depth: 0,
        max_depth,
        context,
        retained: 0,
    };
    let magic = r.take(4, "stream header")?;
    if magic != STREAM_MAGIC {
        return Err(r.error(start, "not a Java serialization stream (AC ED 00 05)"));
    }
    let value = r.content()?;
    Ok((value, r.pos))
}

struct Reader<'a, 'c> {
    buf: &'a [u8],
    pos: usize,
    handles: Vec<Handle>,
    depth: usize,
    max_depth: usize,
    context: &'c str,
    /// Object fields kept so far ([`MAX_RETAINED_FIELDS`]).
    retained: usize,
}

impl<'a> Reader<'a, '_> {
    fn error(&self, at: usize, reason: impl Into<String>) -> Error {
        Error::malformed_at(
            format!("Java serialization stream in {}", self.context),
            at as u64,
            reason,
        )
    }

    fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        let slice = self
            .pos
            .checked_add(n)
            .and_then(|end| self.buf.get(self.pos..end));
        match slice {
            Some(s) => {
                self.pos += n;
                Ok(s)
            }
            None => Err(self.error(
                self.pos,
                format!(
                    "truncated: {what} needs {n} bytes, {} remain",
                    self.remaining()
                ),
            )),
        }
    }

    fn u8(&mut self, what: &str) -> Result<u8> {
        Ok(self.take(1, what)?.first().copied().unwrap_or_default())
    }

    fn peek(&self) -> Option<u8> {
        self.buf.get(self.pos).copied()
    }

    fn u16(&mut self, what: &str) -> Result<u16> {
        let b = self.take(2, what)?;
        Ok(u16::from_be_bytes([
            b.first().copied().unwrap_or_default(),
            b.get(1).copied().unwrap_or_default(),
        ]))
    }

    fn i32(&mut self, what: &str) -> Result<i32> {
        let b: [u8; 4] = self
            .take(4, what)?
            .try_into()
            .map_err(|_| self.error(self.pos, format!("truncated: {what}")))?;
        Ok(i32::from_be_bytes(b))
    }

    fn i64(&mut self, what: &str) -> Result<i64> {
        let b: [u8; 8] = self
            .take(8, what)?
            .try_into()
            .map_err(|_| self.error(self.pos, format!("truncated: {what}")))?;
        Ok(i64::from_be_bytes(b))
    }

    /// A non-negative length that fits in what remains, checked before anything is allocated.
    fn length(&mut self, value: i64, at: usize, what: &str) -> Result<usize> {
        usize::try_from(value)
            .ok()
            .filter(|n| *n <= self.remaining())
            .ok_or_else(|| {
                self.error(
                    at,
                    format!(
                        "{what} {value} is negative or exceeds the {} bytes that remain",
                        self.remaining()
                    ),
                )
            })
    }

    fn utf(&mut self, len: usize, what: &str) -> Result<String> {
        let at = self.pos;
        let bytes = self.take(len, what)?;
        mutf8::decode(bytes)
            .map(|d| d.text)
            .map_err(|off| self.error(at + off, format!("{what} is not modified UTF-8")))
    }

    fn short_utf(&mut self, what: &str) -> Result<String> {
        let len = usize::from(self.u16(what)?);
        self.utf(len, what)
    }

    fn new_handle(&mut self) -> usize {
        self.handles.push(Handle::Pending);
        self.handles.len() - 1
    }

    fn set_handle(&mut self, index: usize, handle: Handle) {
        if let Some(slot) = self.handles.get_mut(index) {
            *slot = handle;
        }
    }

    fn handle(&mut self) -> Result<&Handle> {
        let at = self.pos;
        let raw = self.i32("handle")? as u32;
        let index = raw.checked_sub(BASE_HANDLE).map(|i| i as usize);
        index
            .and_then(|i| self.handles.get(i))
            .ok_or_else(|| self.error(at, format!("reference to unknown handle 0x{raw:08x}")))
    }

    fn enter(&mut self) -> Result<()> {
        self.depth += 1;
        if self.depth > self.max_depth {
            return Err(Error::LimitExceeded {
                limit: LimitKind::NestingDepth,
                value: self.depth as u64,
                bound: self.max_depth as u64,
            });
        }
        Ok(())
    }

    /// `content`: one object, string, array, enum, class, class description or null.
    fn content(&mut self) -> Result<Rc<Value>> {
        self.enter()?;
        let value = self.content_inner();
        self.depth -= 1;
        value
    }

    fn content_inner(&mut self) -> Result<Rc<Value>> {
        let at = self.pos;
        let tc = self.u8("type code")?;
        match tc {
            TC_NULL => Ok(Rc::new(Value::Null)),
            TC_REFERENCE => Ok(match self.handle()? {
                Handle::Value(v) => v.clone(),
                Handle::Class(_) | Handle::Pending => Rc::new(Value::Other),
            }),
            TC_STRING | TC_LONGSTRING => {
                let len = if tc == TC_STRING {
                    usize::from(self.u16("string length")?)
                } else {
                    let len_at = self.pos;
                    let n = self.i64("long string length")?;
                    self.length(n, len_at, "long string length")?
                };
                let handle = self.new_handle();
                let value = Rc::new(Value::Str(self.utf(len, "string")?));
                self.set_handle(handle, Handle::Value(value.clone()));
                Ok(value)
            }
            TC_CLASSDESC | TC_PROXYCLASSDESC => {
                self.pos = at;
                self.class_desc()?;
                Ok(Rc::new(Value::Other))
            }
            TC_CLASS => {
                self.class_desc()?;
                let handle = self.new_handle();
                let value = Rc::new(Value::Other);
                self.set_handle(handle, Handle::Value(value.clone()));
                Ok(value)
            }
            TC_OBJECT => self.object(),
            TC_ARRAY => self.array(),
            TC_ENUM => {
                self.class_desc()?;
                let handle = self.new_handle();
                let constant = match self.content()?.as_ref() {
                    Value::Str(s) => s.clone(),
                    _ => return Err(self.error(at, "enum constant name is not a string")),
                };
                let value = Rc::new(Value::Enum { constant });
                self.set_handle(handle, Handle::Value(value.clone()));
                Ok(value)
            }
            other => Err(self.error(at, format!("unexpected type code 0x{other:02x}"))),
        }
    }

    /// `classDesc`: a new class description, a proxy, null, or a reference to one.
    fn class_desc(&mut self) -> Result<Option<Rc<ClassDesc>>> {
        let at = self.pos;
        match self.u8("class description")? {
            TC_NULL => Ok(None),
            TC_REFERENCE => match self.handle()? {
                Handle::Class(c) => Ok(Some(c.clone())),
                _ => Err(self.error(at, "reference to something that is not a class")),
            },
            TC_CLASSDESC => {
                self.enter()?;
                let name = self.short_utf("class name")?;
                self.take(8, "serialVersionUID")?;
                let handle = self.new_handle();
                let flags = self.u8("class flags")?;
                let count = self.u16("field count")?;
                let mut fields = Vec::new();
                for _ in 0..count {
                    let code_at = self.pos;
                    let code = self.u8("field type code")?;
                    let name = self.short_utf("field name")?;
                    match code {
                        b'B' | b'C' | b'D' | b'F' | b'I' | b'J' | b'S' | b'Z' => {}
                        b'[' | b'L' => {
                            // The field's type name, as a string object (or a reference).
                            self.content()?;
                        }
                        other => {
                            return Err(self
                                .error(code_at, format!("unknown field type code 0x{other:02x}")));
                        }
                    }
                    fields.push(Field {
                        code,
                        name: Rc::from(name),
                    });
                }
                self.annotation()?;
                let superclass = self.class_desc()?;
                self.depth -= 1;
                let desc = Rc::new(ClassDesc {
                    name,
                    flags,
                    fields,
                    superclass,
                });
                self.set_handle(handle, Handle::Class(desc.clone()));
                Ok(Some(desc))
            }
            TC_PROXYCLASSDESC => {
                self.enter()?;
                let handle = self.new_handle();
                let count_at = self.pos;
                let count = self.i32("proxy interface count")?;
                let count = self.length(i64::from(count), count_at, "proxy interface count")?;
                for _ in 0..count {
                    self.short_utf("proxy interface name")?;
                }
                self.annotation()?;
                let superclass = self.class_desc()?;
                self.depth -= 1;
                let desc = Rc::new(ClassDesc {
                    name: "(proxy)".into(),
                    flags: SC_SERIALIZABLE,
                    fields: Vec::new(),
                    superclass,
                });
                self.set_handle(handle, Handle::Class(desc.clone()));
                Ok(Some(desc))
            }
            other => Err(self.error(
                at,
                format!("expected a class description, found type code 0x{other:02x}"),
            )),
        }
    }

    /// `classAnnotation` / `objectAnnotation`: contents and block data up to `TC_ENDBLOCKDATA`.
    fn annotation(&mut self) -> Result<()> {
        loop {
            match self.peek() {
                Some(TC_ENDBLOCKDATA) => {
                    self.pos += 1;
                    return Ok(());
                }
                Some(TC_BLOCKDATA) => {
                    self.pos += 1;
                    let len = usize::from(self.u8("block data length")?);
                    self.take(len, "block data")?;
                }
                Some(TC_BLOCKDATALONG) => {
                    self.pos += 1;
                    let at = self.pos;
                    let len = self.i32("block data length")?;
                    let len = self.length(i64::from(len), at, "block data length")?;
                    self.take(len, "block data")?;
                }
                Some(_) => {
                    self.content()?;
                }
                None => return Err(self.error(self.pos, "truncated: annotation not ended")),
            }
        }
    }

    fn object(&mut self) -> Result<Rc<Value>> {
        let at = self.pos;
        let desc = self
            .class_desc()?
            .ok_or_else(|| self.error(at, "object without a class"))?;
        let handle = self.new_handle();
        // Class data is written for each class from the top superclass down.
        let mut chain = Vec::new();
        let mut next = Some(desc.clone());
        while let Some(c) = next {
            if chain.len() > self.max_depth {
                return Err(Error::LimitExceeded {
                    limit: LimitKind::NestingDepth,
                    value: chain.len() as u64,
                    bound: self.max_depth as u64,
                });
            }
            next = c.superclass.clone();
            chain.push(c);
        }
        let mut fields = Vec::new();
        for class in chain.iter().rev() {
            if class.flags & SC_EXTERNALIZABLE != 0 {
                if class.flags & SC_BLOCK_DATA == 0 {
                    return Err(Error::Unsupported {
                        what: format!(
                            "externalizable class {} without block data in {}",
                            class.name, self.context
                        ),
                        oid: None,
                    });
                }
                self.annotation()?;
                continue;
            }
            if class.flags & SC_SERIALIZABLE == 0 {
                continue;
            }
            for field in &class.fields {
                let width = match field.code {
                    b'B' | b'Z' => 1,
                    b'C' | b'S' => 2,
                    b'F' | b'I' => 4,
                    b'D' | b'J' => 8,
                    _ => 0,
                };
                if width > 0 {
                    self.take(width, "field")?;
                    continue;
                }
                let value = self.content()?;
                if !matches!(value.as_ref(), Value::Null) && self.retained < MAX_RETAINED_FIELDS {
                    self.retained += 1;
                    fields.push((field.name.clone(), value));
                }
            }
            if class.flags & SC_WRITE_METHOD != 0 {
                self.annotation()?;
            }
        }
        let value = Rc::new(Value::Object {
            class: desc.name.clone(),
            fields,
        });
        self.set_handle(handle, Handle::Value(value.clone()));
        Ok(value)
    }

    fn array(&mut self) -> Result<Rc<Value>> {
        let at = self.pos;
        let desc = self
            .class_desc()?
            .ok_or_else(|| self.error(at, "array without a class"))?;
        let handle = self.new_handle();
        let size_at = self.pos;
        let size = self.i32("array size")?;
        let size = self.length(i64::from(size), size_at, "array size")?;
        let element = desc.name.as_bytes().get(1).copied().unwrap_or_default();
        let width = match element {
            b'B' | b'Z' => 1,
            b'C' | b'S' => 2,
            b'F' | b'I' => 4,
            b'D' | b'J' => 8,
            _ => 0,
        };
        let value = if element == b'B' {
            Value::Bytes(Zeroizing::new(self.take(size, "byte array")?.to_vec()))
        } else if width > 0 {
            let bytes = size
                .checked_mul(width)
                .ok_or_else(|| self.error(size_at, "array too large"))?;
            self.take(bytes, "array")?;
            Value::Other
        } else {
            // Each element is at least one byte, which `length` checked against what remains.
            for _ in 0..size {
                self.content()?;
            }
            Value::Other
        };
        let value = Rc::new(value);
        self.set_handle(handle, Handle::Value(value.clone()));
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `new SecretKeySpec(new byte[] {1, 2}, "AES")` as written by `ObjectOutputStream`.
    fn secret_key_spec() -> Vec<u8> {
        let mut s = STREAM_MAGIC.to_vec();
        s.push(TC_OBJECT);
        s.push(TC_CLASSDESC);
        let name = b"javax.crypto.spec.SecretKeySpec";
        s.extend((name.len() as u16).to_be_bytes());
        s.extend(name);
        s.extend([0x5b, 0x47, 0x0b, 0x66, 0xe2, 0x30, 0x61, 0x4d]);
        s.push(SC_SERIALIZABLE);
        s.extend(2u16.to_be_bytes());
        s.push(b'L');
        s.extend(9u16.to_be_bytes());
        s.extend(b"algorithm");
        s.push(TC_STRING);
        s.extend(18u16.to_be_bytes());
        s.extend(b"Ljava/lang/String;");
        s.push(b'[');
        s.extend(3u16.to_be_bytes());
        s.extend(b"key");
        s.push(TC_STRING);
        s.extend(2u16.to_be_bytes());
        s.extend(b"[B");
        s.push(TC_ENDBLOCKDATA);
        s.push(TC_NULL);
        // Values: algorithm, key.
        s.push(TC_STRING);
        s.extend(3u16.to_be_bytes());
        s.extend(b"AES");
        s.push(TC_ARRAY);
        s.push(TC_CLASSDESC);
        s.extend(2u16.to_be_bytes());
        s.extend(b"[B");
        s.extend([0xac, 0xf3, 0x17, 0xf8, 0x06, 0x08, 0x54, 0xe0]);
        s.push(SC_SERIALIZABLE);
        s.extend(0u16.to_be_bytes());
        s.push(TC_ENDBLOCKDATA);
        s.push(TC_NULL);
        s.extend(2i32.to_be_bytes());
        s.extend([1, 2]);
        s
    }

    #[test]
    fn reads_secret_key_spec() {
        let stream = secret_key_spec();
        let (value, end) = read_stream(&stream, 0, 16, "test").unwrap();
        assert_eq!(end, stream.len());
        assert_eq!(value.class(), Some("javax.crypto.spec.SecretKeySpec"));
        assert_eq!(
            value.field("algorithm").and_then(Value::as_str),
            Some("AES")
        );
        assert_eq!(
            value.field("key").and_then(Value::as_bytes),
            Some(&[1u8, 2][..])
        );
    }

    #[test]
    fn rejects_every_truncation_without_panicking() {
        let stream = secret_key_spec();
        for len in 0..stream.len() {
            assert!(read_stream(stream.get(..len).unwrap(), 0, 16, "test").is_err());
        }
    }

    #[test]
    fn refuses_deep_nesting() {
        // An array of Object arrays, each holding the next: depth grows by one per level.
        let mut s = STREAM_MAGIC.to_vec();
        for _ in 0..100 {
            s.push(TC_ARRAY);
            s.push(TC_CLASSDESC);
            s.extend(3u16.to_be_bytes());
            s.extend(b"[[L");
            s.extend([0; 8]);
            s.push(SC_SERIALIZABLE);
            s.extend(0u16.to_be_bytes());
            s.push(TC_ENDBLOCKDATA);
            s.push(TC_NULL);
            s.extend(1i32.to_be_bytes());
        }
        s.push(TC_NULL);
        assert!(matches!(
            read_stream(&s, 0, 16, "test"),
            Err(Error::LimitExceeded {
                limit: LimitKind::NestingDepth,
                ..
            })
        ));
    }

    #[test]
    fn keeps_a_bounded_number_of_fields() {
        // One class of 300 String fields: every value is read, the first 256 kept.
        let mut s = STREAM_MAGIC.to_vec();
        s.push(TC_OBJECT);
        s.push(TC_CLASSDESC);
        s.extend(1u16.to_be_bytes());
        s.extend(b"C");
        s.extend([0; 8]);
        s.push(SC_SERIALIZABLE);
        s.extend(300u16.to_be_bytes());
        for i in 0..300u16 {
            let name = format!("f{i}");
            s.push(b'L');
            s.extend((name.len() as u16).to_be_bytes());
            s.extend(name.as_bytes());
            if i == 0 {
                s.push(TC_STRING);
                s.extend(18u16.to_be_bytes());
                s.extend(b"Ljava/lang/String;");
            } else {
                s.push(TC_REFERENCE);
                s.extend((BASE_HANDLE + 1).to_be_bytes()); // the type name above
            }
        }
        s.push(TC_ENDBLOCKDATA);
        s.push(TC_NULL);
        for _ in 0..300 {
            s.push(TC_STRING);
            s.extend(1u16.to_be_bytes());
            s.push(b'v');
        }
        let (value, end) = read_stream(&s, 0, 16, "test").unwrap();
        assert_eq!(end, s.len());
        assert_eq!(value.field("f0").and_then(Value::as_str), Some("v"));
        assert_eq!(value.field("f255").and_then(Value::as_str), Some("v"));
        assert!(value.field("f256").is_none());
    }

    #[test]
    fn refuses_huge_array_sizes_before_allocating() {
        let mut s = STREAM_MAGIC.to_vec();
        s.push(TC_ARRAY);
        s.push(TC_CLASSDESC);
        s.extend(2u16.to_be_bytes());
        s.extend(b"[B");
        s.extend([0; 8]);
        s.push(SC_SERIALIZABLE);
        s.extend(0u16.to_be_bytes());
        s.push(TC_ENDBLOCKDATA);
        s.push(TC_NULL);
        s.extend(i32::MAX.to_be_bytes());
        assert!(matches!(
            read_stream(&s, 0, 16, "test"),
            Err(Error::Malformed { .. })
        ));
    }
}
