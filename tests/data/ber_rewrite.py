#!/usr/bin/env python3
"""Re-encode the outer layers of a DER PKCS#12 file in BER, NSS/Firefox style.

    python3 ber_rewrite.py IN.p12 OUT.p12 CHUNK

Rewritten (everything else is copied byte for byte):
  PFX ::= SEQUENCE                      -> 30 80 ... 00 00
    authSafe ContentInfo ::= SEQUENCE    -> 30 80 ... 00 00
      content [0] EXPLICIT               -> A0 80 ... 00 00
        data OCTET STRING                -> 24 80 (04 len <CHUNK bytes>)... 00 00
The MAC (computed over the OCTET STRING contents) stays valid.
Standard library only: minimal hand-written DER TLV walker.
"""
import sys


def read_tlv(buf, off):
    """Parse one DER TLV at off -> (tag, content_start, content_end). Definite lengths only."""
    tag = buf[off]
    if tag & 0x1F == 0x1F:
        raise ValueError("high tag numbers not supported")
    first = buf[off + 1]
    pos = off + 2
    if first < 0x80:
        length = first
    elif first == 0x80:
        raise ValueError("input must be DER (definite lengths)")
    else:
        n = first & 0x7F
        length = int.from_bytes(buf[pos:pos + n], "big")
        pos += n
    end = pos + length
    if end > len(buf):
        raise ValueError("truncated TLV")
    return tag, pos, end


def der_len(n):
    if n < 0x80:
        return bytes([n])
    b = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(b)]) + b


def children(buf, start, end):
    out, off = [], start
    while off < end:
        tag, cs, ce = read_tlv(buf, off)
        out.append((tag, off, cs, ce))
        off = ce
    if off != end:
        raise ValueError("children overrun")
    return out


EOC = b"\x00\x00"


def main():
    src, dst, chunk = sys.argv[1], sys.argv[2], int(sys.argv[3])
    der = open(src, "rb").read()
    tag, cs, ce = read_tlv(der, 0)
    assert tag == 0x30 and ce == len(der), "PFX must be one SEQUENCE"
    pfx = children(der, cs, ce)
    assert len(pfx) in (2, 3), "PFX: version, authSafe[, macData]"
    (vt, vo, _, ve), (at, _, acs, ace) = pfx[0], pfx[1]
    assert vt == 0x02 and at == 0x30
    ci = children(der, acs, ace)
    (ot, oo, _, oe), (xt, _, xcs, xce) = ci
    assert ot == 0x06 and der[oo:oe] == bytes.fromhex("06092a864886f70d010701"), "authSafe must be id-data"
    assert xt == 0xA0
    (dt, _, dcs, dce), = children(der, xcs, xce)
    assert dt == 0x04
    data = der[dcs:dce]

    octets = b"".join(b"\x04" + der_len(len(data[i:i + chunk])) + data[i:i + chunk]
                      for i in range(0, len(data), chunk))
    out = (b"\x30\x80" + der[vo:ve]
           + b"\x30\x80" + der[oo:oe]
           + b"\xa0\x80" + b"\x24\x80" + octets + EOC + EOC
           + EOC
           + b"".join(der[o:e] for (_, o, _, e) in pfx[2:])
           + EOC)
    open(dst, "wb").write(out)


if __name__ == "__main__":
    main()
