#!/usr/bin/env python3
"""Re-encode the INSIDE of a DER PKCS#12 file as BER, the way NSS, Netscape and BouncyCastle do.

    python3 corpus_ber.py IN.p12 PASSWORD OUT.p12

IN must be an OpenSSL 3 default archive: a plain `data` ContentInfo holding the shrouded key
bag and an `encryptedData` ContentInfo (PBES2, PBKDF2-HMAC-SHA256, AES-256-CBC) holding the
certificate bags, MAC HMAC-SHA256 (what `openssl pkcs12 -export` writes by default).

Rewritten as BER, with every constructed element given an indefinite length and every long
OCTET STRING split into constructed 64-byte chunks:
  - the AuthenticatedSafe (the octets of the outer `data` ContentInfo);
  - the SafeContents inside the plain `data` ContentInfo;
  - the decrypted SafeContents of the `encryptedData` ContentInfo, re-encrypted with the same
    key and IV (its encryptedContent [0] is written constructed, in chunks, as NSS does).
The MAC is then recomputed over the new AuthenticatedSafe octets (RFC 7292 appendix B KDF,
implemented below), because a MAC covers the octets exactly as they are written. The outer PFX
stays DER. Certificates and keys themselves stay DER (they sit inside OCTET STRINGs).

Needs python `cryptography` (AES) and the standard library.
"""
import hashlib
import hmac
import sys

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

CHUNK = 64
EOC = b"\x00\x00"


def tlv(buf, off):
    """One DER TLV at off -> (tag, header_end, content_end)."""
    tag, first, pos = buf[off], buf[off + 1], off + 2
    if first == 0x80:
        raise ValueError("input must be DER")
    if first < 0x80:
        length = first
    else:
        n = first & 0x7F
        length = int.from_bytes(buf[pos:pos + n], "big")
        pos += n
    return tag, pos, pos + length


def kids(buf, start, end):
    out, off = [], start
    while off < end:
        t, cs, ce = tlv(buf, off)
        out.append((t, off, cs, ce))
        off = ce
    return out


def der_len(n):
    if n < 0x80:
        return bytes([n])
    b = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(b)]) + b


def der(tag, content):
    return bytes([tag]) + der_len(len(content)) + content


def chunked(tag_constructed, content):
    """A constructed string of 64-byte primitive OCTET STRING chunks, indefinite length."""
    parts = b"".join(der(0x04, content[i:i + CHUNK]) for i in range(0, len(content), CHUNK))
    return bytes([tag_constructed, 0x80]) + parts + EOC


def to_ber(buf, start=0, end=None):
    """Every constructed element indefinite; OCTET STRINGs over CHUNK bytes chunked."""
    end = len(buf) if end is None else end
    out = b""
    for t, _, cs, ce in kids(buf, start, end):
        if t & 0x20:
            out += bytes([t, 0x80]) + to_ber(buf, cs, ce) + EOC
        elif t == 0x04 and ce - cs > CHUNK:
            out += chunked(0x24, buf[cs:ce])
        else:
            out += der(t, buf[cs:ce])
    return out


def p12_kdf(hname, password_bmp, salt, purpose, iterations, n):
    """RFC 7292 appendix B.2 key derivation."""
    u, v = hashlib.new(hname).digest_size, hashlib.new(hname).block_size

    def stretch(x):
        if not x:
            return b""
        ln = v * ((len(x) + v - 1) // v)
        return (x * (ln // len(x) + 1))[:ln]

    d, i, out = bytes([purpose]) * v, stretch(salt) + stretch(password_bmp), b""
    while len(out) < n:
        a = hashlib.new(hname, d + i).digest()
        for _ in range(iterations - 1):
            a = hashlib.new(hname, a).digest()
        out += a
        b = int.from_bytes((a * (v // u + 1))[:v], "big")
        i = b"".join(((int.from_bytes(i[j:j + v], "big") + b + 1) % (1 << (8 * v))).to_bytes(v, "big")
                     for j in range(0, len(i), v))
    return out[:n]


ID_DATA = bytes.fromhex("2a864886f70d010701")
ID_ENCRYPTED_DATA = bytes.fromhex("2a864886f70d010706")
HMAC_SHA256 = bytes.fromhex("2a864886f70d0209")


def pbes2_key_iv(buf, alg_start, alg_end, password):
    """PBES2 { PBKDF2 { salt, iterations, [keyLength], prf }, aes256-CBC iv } -> (key, iv)."""
    (_, _, _, _), (_, _, pcs, pce) = kids(buf, alg_start, alg_end)
    (_, _, kdfs, kdfe), (_, _, encs, ence) = kids(buf, pcs, pce)
    (_, _, _, _), (_, _, kps, kpe) = kids(buf, kdfs, kdfe)
    fields = kids(buf, kps, kpe)
    salt = buf[fields[0][2]:fields[0][3]]
    iterations = int.from_bytes(buf[fields[1][2]:fields[1][3]], "big")
    prf = "sha1"
    for t, _, cs, ce in fields[2:]:
        if t == 0x30:
            (_, _, ocs, oce), *_ = kids(buf, cs, ce)
            assert buf[ocs:oce] == HMAC_SHA256, "only the OpenSSL 3 default PRF is handled"
            prf = "sha256"
    (_, _, _, _), (_, _, ivs, ive) = kids(buf, encs, ence)
    key = hashlib.pbkdf2_hmac(prf, password.encode(), salt, iterations, 32)
    return key, buf[ivs:ive]


def main():
    src, password, dst = sys.argv[1], sys.argv[2], sys.argv[3]
    p = open(src, "rb").read()
    _, pcs, pce = tlv(p, 0)
    version, auth_ci, mac_data = kids(p, pcs, pce)
    (_, _, ocs, oce), (_, _, xcs, xce) = kids(p, auth_ci[2], auth_ci[3])
    assert p[ocs:oce] == ID_DATA
    (_, _, acs, ace), = kids(p, xcs, xce)  # the data OCTET STRING
    _, scs, sce = tlv(p, acs)  # AuthenticatedSafe SEQUENCE

    infos = []
    for _, ci_off, cics, cice in kids(p, scs, sce):
        (_, oo, ctcs, ctce), (_, _, c0s, c0e) = kids(p, cics, cice)
        ctype = p[ctcs:ctce]
        if ctype == ID_DATA:
            (_, _, ds, de), = kids(p, c0s, c0e)
            inner = to_ber(p, ds, de)  # the SafeContents, now BER
            infos.append(b"\x30\x80" + p[oo:ctce] + b"\xa0\x80" + chunked(0x24, inner) + EOC + EOC)
        elif ctype == ID_ENCRYPTED_DATA:
            (_, eds, edcs, edce), = kids(p, c0s, c0e)
            ver, eci = kids(p, edcs, edce)
            (_, eto, _, etce), (_, algo, algs, alge), (_, _, ecs, ece) = kids(p, eci[2], eci[3])
            key, iv = pbes2_key_iv(p, algs, alge, password)
            dec = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
            padded = dec.update(p[ecs:ece]) + dec.finalize()
            unpadder = padding.PKCS7(128).unpadder()
            plain = unpadder.update(padded) + unpadder.finalize()
            ber_plain = to_ber(plain)
            padder = padding.PKCS7(128).padder()
            enc = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
            ct = enc.update(padder.update(ber_plain) + padder.finalize()) + enc.finalize()
            eci_ber = b"\x30\x80" + p[eto:etce] + p[algo:alge] + chunked(0xA0, ct) + EOC
            ed_ber = b"\x30\x80" + p[ver[1]:ver[3]] + eci_ber + EOC
            infos.append(b"\x30\x80" + p[oo:ctce] + b"\xa0\x80" + ed_ber + EOC + EOC)
        else:
            raise ValueError("unexpected ContentInfo type")
    auth_safe = b"\x30\x80" + b"".join(infos) + EOC

    # MacData { DigestInfo { alg, digest }, salt, iterations } — recomputed over the new octets.
    (_, _, dis, die_), (_, _, ss, se), (_, _, its, ite) = kids(p, mac_data[2], mac_data[3])
    (_, _, ais, aie), (_, _, dgs, dge) = kids(p, dis, die_)
    (_, _, aos, aoe), *_ = kids(p, ais, aie)
    assert p[aos:aoe] == bytes.fromhex("608648016503040201"), "HMAC-SHA256 MAC expected"
    salt, iterations = p[ss:se], int.from_bytes(p[its:ite], "big")
    bmp = password.encode("utf-16-be") + b"\x00\x00"
    mac_key = p12_kdf("sha256", bmp, salt, 3, iterations, 32)
    digest = hmac.new(mac_key, auth_safe, "sha256").digest()
    digest_info = der(0x30, der(0x30, p[ais:aie]) + der(0x04, digest))
    new_mac = der(0x30, digest_info + der(0x04, salt) + der(0x02, p[its:ite]))
    body = p[version[1]:version[3]] + der(0x30, der(0x06, ID_DATA) + der(0xA0, der(0x04, auth_safe))) + new_mac
    open(dst, "wb").write(der(0x30, body))


if __name__ == "__main__":
    main()
