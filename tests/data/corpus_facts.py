#!/usr/bin/env python3
"""Facts about the corpus/ fixtures, from python `cryptography` and the JDK (never pfxkit).

    python3 corpus_facts.py SECRETS.tsv > corpus/facts.json

SECRETS.tsv is JceksSecrets.java's output for corpus/secret-keys.jceks.  For each PKCS#12
fixture: its password, the SHA-256 of every certificate (cryptography's load_pkcs12: the
leaf first, then the others), and the key's algorithm and size with the SHA-256 of the
certificate whose public key equals the key's.
"""
import hashlib
import json
import sys

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, pkcs12

DER = Encoding.DER


def p12_facts(path, password):
    p = pkcs12.load_pkcs12(open(path, "rb").read(), password.encode())
    certs = [c.certificate for c in ([p.cert] if p.cert else []) + list(p.additional_certs)]
    spki = p.key.public_key().public_bytes(DER, PublicFormat.SubjectPublicKeyInfo)
    leaf = next(c for c in certs if c.public_key().public_bytes(DER, PublicFormat.SubjectPublicKeyInfo) == spki)
    alg = "rsa" if isinstance(p.key, rsa.RSAPrivateKey) else "ec" if isinstance(p.key, ec.EllipticCurvePrivateKey) else None
    return {
        "file": path,
        "password": password,
        "keys": [{"algorithm": alg, "bits": p.key.key_size,
                  "certificate_sha256": hashlib.sha256(leaf.public_bytes(DER)).hexdigest()}],
        "certificates_sha256": sorted(hashlib.sha256(c.public_bytes(DER)).hexdigest() for c in certs),
    }


def main():
    secrets = []
    for line in open(sys.argv[1]):
        alias, alg, bits, sha = line.rstrip("\n").split("\t")
        secrets.append({"alias": alias, "algorithm": alg, "bits": int(bits), "sha256": sha})
    pre1970 = p12_facts("corpus/pre1970-utctime.p12", "pfxkit-pass")
    cert = pkcs12.load_pkcs12(open("corpus/pre1970-utctime.p12", "rb").read(), b"pfxkit-pass").cert.certificate
    pre1970["not_before"] = cert.not_valid_before_utc.strftime("%Y-%m-%dT%H:%M:%SZ")
    pre1970["not_after"] = cert.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ")
    leaf = x509.load_pem_x509_certificate(open("pki/certs/leaf-rsa.pem", "rb").read())
    facts = {
        "pkcs12": [
            p12_facts("corpus/ber-inside.p12", "pfxkit-pass"),
            p12_facts("corpus/windows-zero-padding.p12", "pfxkit-pass"),
            pre1970,
        ],
        # corpus_p12.py: the pre1970 key and certificate, plus a certBag holding 30 03 02 01 01.
        "unparsable_cert": {
            "file": "corpus/unparsable-cert.p12",
            "password": "pfxkit-pass",
            "certificate_sha256": pre1970["certificates_sha256"][0],
            "unparsable_sha256": hashlib.sha256(bytes.fromhex("3003020101")).hexdigest(),
        },
        # corpus_p12.py: the RSA leaf, its key shrouded under key-pass, the MAC under store-pass.
        "two_passwords": {
            "file": "corpus/two-passwords.p12",
            "password": "store-pass",
            "key_password": "key-pass",
            "certificate_sha256": hashlib.sha256(leaf.public_bytes(DER)).hexdigest(),
        },
        "jceks_secret_keys": {
            "file": "corpus/secret-keys.jceks",
            "store_password": "store-pass",
            "key_passwords": {"hmac": "key-pass-2"},
            "secret_keys": secrets,
        },
    }
    json.dump(facts, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
