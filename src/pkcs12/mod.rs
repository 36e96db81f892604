//! The PKCS#12 (RFC 7292) codec.
