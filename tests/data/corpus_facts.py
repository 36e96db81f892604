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
    facts = {
        "pkcs12": [
            p12_facts("corpus/ber-inside.p12", "pfxkit-pass"),
            p12_facts("corpus/windows-zero-padding.p12", "pfxkit-pass"),
        ],
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
