#!/usr/bin/env python3
"""PKCS#12 corpus fixtures that no tool writes directly, assembled bag by bag.

    python3 corpus_p12.py          (run from tests/data/ by gen_corpus.sh)

Standard library + python `cryptography` (keys, certificates, AES) + the openssl CLI (the
two-password file's shrouded key).  Every archive here has plain (unencrypted) SafeContents
and an HMAC-SHA256 MAC with 2048 iterations (RFC 7292 appendix B KDF, as in corpus_ber.py).

  corpus/pre1970-utctime.p12      password pfxkit-pass.  A self-signed EC P-256 certificate
                                  whose notBefore is UTCTime 500101120000Z (1950-01-01), as in
                                  PKITS "pre2000 UTC notBefore"; written by cryptography's own
                                  PKCS#12 builder.
  corpus/unparsable-cert.p12      password pfxkit-pass.  The key and certificate of
                                  pre1970-utctime.p12 plus a certBag whose "certificate" is
                                  not X.509 at all (a SEQUENCE holding one INTEGER).
  corpus/two-passwords.p12        MAC password store-pass, key shrouded (PBES2 AES-256,
                                  `openssl pkcs8 -topk8 -v2 aes-256-cbc`) under key-pass, as
                                  Java's convertP12 test files are.
"""
import datetime
import hashlib
import hmac
import os
import subprocess

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import (
    BestAvailableEncryption,
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_pem_private_key,
    pkcs12,
)
from cryptography.x509.oid import NameOID

from corpus_ber import der, p12_kdf

OID = {
    "data": "2a864886f70d010701",
    "keyBag": "2a864886f70d010c0a0101",
    "shroudedKeyBag": "2a864886f70d010c0a0102",
    "certBag": "2a864886f70d010c0a0103",
    "x509Certificate": "2a864886f70d01091601",
    "friendlyName": "2a864886f70d010914",
    "localKeyId": "2a864886f70d010915",
    "sha256": "608648016503040201",
}


def oid(name):
    return der(0x06, bytes.fromhex(OID[name]))


def attrs(alias, key_id):
    out = b""
    if alias is not None:
        out += der(0x30, oid("friendlyName") + der(0x31, der(0x1E, alias.encode("utf-16-be"))))
    if key_id is not None:
        out += der(0x30, oid("localKeyId") + der(0x31, der(0x04, key_id)))
    return der(0x31, out) if out else b""


def bag(kind, value, alias=None, key_id=None):
    return der(0x30, oid(kind) + der(0xA0, value) + attrs(alias, key_id))


def cert_bag(cert_der, alias=None, key_id=None):
    return bag("certBag", der(0x30, oid("x509Certificate") + der(0xA0, der(0x04, cert_der))), alias, key_id)


def pfx(bags, password):
    safe_contents = der(0x30, b"".join(bags))
    auth_safe = der(0x30, der(0x30, oid("data") + der(0xA0, der(0x04, safe_contents))))
    salt, iterations = os.urandom(16), 2048
    key = p12_kdf("sha256", password.encode("utf-16-be") + b"\x00\x00", salt, 3, iterations, 32)
    digest = hmac.new(key, auth_safe, "sha256").digest()
    mac = der(0x30, der(0x30, der(0x30, oid("sha256") + b"\x05\x00") + der(0x04, digest))
              + der(0x04, salt) + der(0x02, iterations.to_bytes(2, "big")))
    return der(0x30, der(0x02, b"\x03") + der(0x30, oid("data") + der(0xA0, der(0x04, auth_safe))) + mac)


def self_signed(key, cn, not_before, not_after):
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(0x1950)
            .not_valid_before(not_before).not_valid_after(not_after)
            .sign(key, hashes.SHA256()))


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)


def main():
    key = ec.generate_private_key(ec.SECP256R1())
    cert = self_signed(key, "pre2000 UTC notBefore", datetime.datetime(1950, 1, 1, 12, 0, 0),
                       datetime.datetime(2049, 12, 31, 23, 59, 59))
    write("corpus/pre1970-utctime.p12", pkcs12.serialize_key_and_certificates(
        b"pre1970", key, cert, None, BestAvailableEncryption(b"pfxkit-pass")))

    cert_der = cert.public_bytes(Encoding.DER)
    key_id = hashlib.sha1(cert_der).digest()
    pkcs8 = key.private_bytes(Encoding.DER, PrivateFormat.PKCS8, NoEncryption())
    not_a_cert = der(0x30, der(0x02, b"\x01"))
    write("corpus/unparsable-cert.p12", pfx([
        bag("keyBag", pkcs8, "pre1970", key_id),
        cert_bag(cert_der, "pre1970", key_id),
        cert_bag(not_a_cert, "broken"),
    ], "pfxkit-pass"))

    # Two passwords: the RSA leaf's key shrouded under key-pass, the MAC under store-pass.
    shrouded = subprocess.run(
        ["openssl", "pkcs8", "-topk8", "-v2", "aes-256-cbc", "-v2prf", "hmacWithSHA256",
         "-in", "pki/keys/leaf-rsa.pem", "-outform", "DER", "-passout", "pass:key-pass"],
        check=True, capture_output=True).stdout
    leaf = x509.load_pem_x509_certificate(open("pki/certs/leaf-rsa.pem", "rb").read())
    leaf_der = leaf.public_bytes(Encoding.DER)
    leaf_id = hashlib.sha1(leaf_der).digest()
    write("corpus/two-passwords.p12", pfx([
        bag("shroudedKeyBag", shrouded, "two", leaf_id),
        cert_bag(leaf_der, "two", leaf_id),
    ], "store-pass"))


if __name__ == "__main__":
    main()
