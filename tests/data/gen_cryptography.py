#!/usr/bin/env python3
"""PKCS#12 fixtures written by python `cryptography` (run from tests/data/ by gen.sh).

Prints one registry line per fixture on stdout for manifest.py:
    file <TAB> str|null <TAB> password
Everything uses the RSA leaf (pki/keys/leaf-rsa.pem, pki/certs/leaf-rsa.pem) and the
chain pki/certs/intermediate.pem, pki/certs/root.pem.

Not produced: a PBMAC1 (RFC 9579) fixture - cryptography's PKCS12 encryption builder
only offers kdf_rounds / key_cert_algorithm / hmac_hash (classic PKCS#12 MAC), and
OpenSSL 3.0's `pkcs12 -pbmac1_pbkdf2` option only exists from OpenSSL 3.4 on.
"""
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import (
    BestAvailableEncryption,
    NoEncryption,
    PrivateFormat,
    load_pem_private_key,
    pkcs12,
)

PASS = "pfxkit-pass"


def cert(name):
    with open(f"pki/certs/{name}.pem", "rb") as f:
        return x509.load_pem_x509_certificate(f.read())


with open("pki/keys/leaf-rsa.pem", "rb") as f:
    key = load_pem_private_key(f.read(), None)
leaf, inter, root = cert("leaf-rsa"), cert("intermediate"), cert("root")


def write(name, data, password):
    path = f"p12/{name}"
    with open(path, "wb") as f:
        f.write(data)
    if password is None:
        print(f"{path}\tnull\t")
    else:
        print(f"{path}\tstr\t{password}")


# cryptography-best.p12: BestAvailableEncryption (cryptography 48: PBES2/PBKDF2-SHA256/
# AES-256-CBC, HMAC-SHA256 MAC), friendlyName "leaf", chain passed as cas (intermediate, root)
write("cryptography-best.p12",
      pkcs12.serialize_key_and_certificates(b"leaf", key, leaf, [inter, root],
                                            BestAvailableEncryption(PASS.encode())),
      PASS)

# cryptography-3des.p12: PBESv1 SHA1 + 3-key 3DES for key and certs, HMAC-SHA1 MAC, 50000 rounds
enc = (PrivateFormat.PKCS12.encryption_builder()
       .kdf_rounds(50000)
       .key_cert_algorithm(pkcs12.PBES.PBESv1SHA1And3KeyTripleDESCBC)
       .hmac_hash(hashes.SHA1())
       .build(PASS.encode()))
write("cryptography-3des.p12",
      pkcs12.serialize_key_and_certificates(b"leaf", key, leaf, [inter, root], enc), PASS)

# cryptography-aes-sha1mac.p12: PBES2 (PBKDF2-HMAC-SHA256, AES-256-CBC) with an HMAC-SHA1 MAC
# (the builder cannot choose the PBKDF2 PRF, so "AES with SHA1 PRF" is not possible).
enc = (PrivateFormat.PKCS12.encryption_builder()
       .kdf_rounds(10000)
       .key_cert_algorithm(pkcs12.PBES.PBESv2SHA256AndAES256CBC)
       .hmac_hash(hashes.SHA1())
       .build(PASS.encode()))
write("cryptography-aes-sha1mac.p12",
      pkcs12.serialize_key_and_certificates(b"leaf", key, leaf, [inter, root], enc), PASS)

# cryptography-emoji.p12: BestAvailableEncryption with password "🔑pässword" (UTF-8 bytes)
EMOJI = "🔑pässword"
write("cryptography-emoji.p12",
      pkcs12.serialize_key_and_certificates(b"leaf", key, leaf, [inter, root],
                                            BestAvailableEncryption(EMOJI.encode())),
      EMOJI)

# cryptography-noenc.p12: NoEncryption() - plain keyBag and cert bags, no password given
# (registry: null).  cryptography 48 still writes a MacData (HMAC-SHA256, 2048 iterations)
# keyed with the EMPTY password "" (BMPString 00 00) - the NULL password does not verify it.
write("cryptography-noenc.p12",
      pkcs12.serialize_key_and_certificates(b"leaf", key, leaf, [inter, root], NoEncryption()),
      None)

# cryptography-chain-first.p12: the chain really comes BEFORE the leaf in file order:
# cert=None, cas=[root, intermediate, leaf] (each with its friendlyName).  The key bag has
# friendlyName "leaf" but NO localKeyID, so key<->cert pairing is by public key only.
write("cryptography-chain-first.p12",
      pkcs12.serialize_key_and_certificates(
          b"leaf", key, None,
          [pkcs12.PKCS12Certificate(root, b"root"),
           pkcs12.PKCS12Certificate(inter, b"intermediate"),
           pkcs12.PKCS12Certificate(leaf, b"leaf")],
          BestAvailableEncryption(PASS.encode())),
      PASS)

# cryptography-truststore.p12: serialize_java_truststore - certs only (root, intermediate),
# each cert bag carries friendlyName + the Oracle trust attribute 2.16.840.1.113894.746875.1.1
write("cryptography-truststore.p12",
      pkcs12.serialize_java_truststore(
          [pkcs12.PKCS12Certificate(root, b"root"),
           pkcs12.PKCS12Certificate(inter, b"intermediate")],
          BestAvailableEncryption(PASS.encode())),
      PASS)
