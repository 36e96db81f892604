#!/usr/bin/env python3
"""Write manifest.json: facts about every fixture, computed WITHOUT pfxkit.

    python3 manifest.py P12_REGISTRY JKS_REGISTRY OUT.json      (run by gen.sh in tests/data/)

Sources of truth (all independent of pfxkit):
  * `openssl pkcs12` (OpenSSL 3.0 CLI): which bags exist and their FILE ORDER (-info prints
    bags in the order they occur), friendlyName / localKeyID / Java trust attribute, PEM of
    every cert and key, MAC algorithm/iterations, PBE algorithms; -legacy retried if needed.
  * a hand-written BER/DER walker (below) reading MacData directly, cross-checked against
    openssl; a hand-written RFC 7292 appendix B KDF + hmac re-verifying the MAC with the
    password as BMPString (with 00 00 terminator) and with the NULL (empty) password.
  * python `cryptography`: cert hashes/subjects/serials, key types/sizes, public-key pairing,
    chain building (verify_directly_issued_by), and an independent load_pkcs12 check.
  * JDK 17 KeyStore API (JksInspect.java, same code path as `keytool -list`) for JKS/JCEKS,
    cross-checked by a hand-written JKS/JCEKS parser (file order, aliases, integrity hash).
Any disagreement between sources aborts (non-zero exit) so gen.sh fails loudly.
"""
import base64
import hashlib
import hmac
import json
import os
import re
import subprocess
import sys
import warnings

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_pem_private_key,
    pkcs12,
)

TRUST_OID = "2.16.840.1.113894.746875.1.1"
WRONG_PASSWORD = "definitely-not-the-password"
CACERTS = "/etc/ssl/certs/java/cacerts"

# Fixtures python cryptography is allowed to fail on (recorded as cryptography_loads=false).
# Empty: cryptography 48 loads every fixture, so any python load failure aborts generation.
CRYPTOGRAPHY_KNOWN_FAILURES = set()


def die(msg):
    sys.exit(f"manifest.py: {msg}")


def run(cmd, check=True):
    p = subprocess.run(cmd, capture_output=True)
    if check and p.returncode != 0:
        die(f"command failed ({p.returncode}): {' '.join(cmd)}\n{p.stderr.decode(errors='replace')}")
    return p


# ---------------------------------------------------------------- BER/DER walker
class Node:
    def __init__(self, buf, tag, hdr, cs, ce, end, kids):
        self.buf, self.tag, self.hdr, self.cs, self.ce, self.end, self._kids = buf, tag, hdr, cs, ce, end, kids

    @property
    def content(self):
        return self.buf[self.cs:self.ce]

    def kids(self):
        if self._kids is None:
            self._kids, off = [], self.cs
            while off < self.ce:
                k = tlv(self.buf, off)
                self._kids.append(k)
                off = k.end
        return self._kids

    def octets(self):
        """OCTET STRING value, primitive or BER-constructed (concatenated chunks)."""
        if self.tag == 0x04:
            return self.content
        if self.tag == 0x24:
            return b"".join(k.octets() for k in self.kids())
        die(f"not an OCTET STRING: tag {self.tag:#x}")


def tlv(buf, off):
    tag = buf[off]
    if tag & 0x1F == 0x1F:
        die("high tag numbers unsupported")
    first, pos = buf[off + 1], off + 2
    if first == 0x80:  # BER indefinite length: children until end-of-contents 00 00
        if not tag & 0x20:
            die("indefinite length on primitive")
        kids, p = [], pos
        while buf[p:p + 2] != b"\x00\x00":
            k = tlv(buf, p)
            kids.append(k)
            p = k.end
        return Node(buf, tag, pos - off, pos, p, p + 2, kids)
    if first > 0x80:
        n = first & 0x7F
        length, pos = int.from_bytes(buf[pos:pos + n], "big"), pos + n
    else:
        length = first
    if pos + length > len(buf):
        die("truncated TLV")
    return Node(buf, tag, pos - off, pos, pos + length, pos + length, None)


def oid_str(b):
    arcs, v = [], 0
    for byte in b:
        v = (v << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(v)
            v = 0
    first = min(arcs[0] // 40, 2)
    return ".".join(map(str, [first, arcs[0] - 40 * first] + arcs[1:]))


DIGESTS = {
    "1.3.14.3.2.26": "sha1",
    "2.16.840.1.101.3.4.2.4": "sha224",
    "2.16.840.1.101.3.4.2.1": "sha256",
    "2.16.840.1.101.3.4.2.2": "sha384",
    "2.16.840.1.101.3.4.2.3": "sha512",
}
PBMAC1 = "1.2.840.113549.1.5.14"


def der_facts(data):
    """MacData + authSafe content straight from the (BER or DER) encoding."""
    pfx = tlv(data, 0)
    if pfx.tag != 0x30 or pfx.end != len(data):
        die("PFX is not a single SEQUENCE")
    kids = pfx.kids()
    authsafe = kids[1].kids()  # ContentInfo: contentType, [0] content
    if oid_str(authsafe[0].content) != "1.2.840.113549.1.7.1":
        die("authSafe is not id-data (public-key integrity mode?)")
    auth_octets = authsafe[1].kids()[0].octets()
    out = {"ber": data[1] == 0x80, "auth_octets": auth_octets}
    if len(kids) < 3:
        out["mac"] = None
        return out
    md = kids[2].kids()  # MacData: DigestInfo, macSalt, iterations DEFAULT 1
    dinfo = md[0].kids()
    alg_oid = oid_str(dinfo[0].kids()[0].content)
    if alg_oid == PBMAC1:
        die("PBMAC1 decoding not implemented here")  # no fixture uses it (see README)
    out["mac"] = DIGESTS[alg_oid]
    out["mac_digest"] = dinfo[1].content
    out["mac_salt"] = md[1].content
    out["mac_iter_present"] = len(md) > 2
    out["mac_iter"] = int.from_bytes(md[2].content, "big") if len(md) > 2 else 1
    return out


def p12_kdf(hname, password_bmp, salt, purpose, iterations, n):
    """RFC 7292 appendix B.2 key derivation."""
    u, v = hashlib.new(hname).digest_size, hashlib.new(hname).block_size

    def stretch(x):
        if not x:
            return b""
        ln = v * ((len(x) + v - 1) // v)
        return (x * (ln // len(x) + 1))[:ln]

    D, I, out = bytes([purpose]) * v, stretch(salt) + stretch(password_bmp), b""
    while len(out) < n:
        A = hashlib.new(hname, D + I).digest()
        for _ in range(iterations - 1):
            A = hashlib.new(hname, A).digest()
        out += A
        B = int.from_bytes((A * (v // u + 1))[:v], "big")
        I = b"".join(((int.from_bytes(I[j:j + v], "big") + B + 1) % (1 << (8 * v))).to_bytes(v, "big")
                     for j in range(0, len(I), v))
    return out[:n]


def mac_ok(f, password_bmp):
    key = p12_kdf(f["mac"], password_bmp, f["mac_salt"], 3, f["mac_iter"], hashlib.new(f["mac"]).digest_size)
    return hmac.compare_digest(hmac.new(key, f["auth_octets"], f["mac"]).digest(), f["mac_digest"])


# ---------------------------------------------------------------- openssl output parsing
def parse_bags(text):
    """Parse `openssl pkcs12` stdout into [{attrs: [(name, value)], pem}] in file order."""
    items, cur, section, lines, i = [], None, None, text.splitlines(), 0
    while i < len(lines):
        ln = lines[i]
        if ln.startswith("Bag Attributes"):
            cur, section = {"attrs": []}, "bag"
        elif ln.startswith("Key Attributes"):
            section = "key"
        elif ln.startswith("    ") and cur is not None and section == "bag":
            name, _, val = ln[4:].partition(": ")
            cur["attrs"].append((name, val))
        elif ln.startswith("-----BEGIN "):
            j = i
            while not lines[j].startswith("-----END "):
                j += 1
            if cur is None:
                die("PEM block without preceding Bag Attributes")
            cur["pem"] = "\n".join(lines[i:j + 1]) + "\n"
            items.append(cur)
            cur, i = None, j
        i += 1
    return items


def attr(item, name):
    vals = [v for (n, v) in item["attrs"] if n == name]
    if len(vals) > 1:
        die(f"repeated attribute {name}")
    return vals[0] if vals else None


def local_key_id(item):
    v = attr(item, "localKeyID")
    return None if v is None else v.replace(" ", "").lower()


def is_trusted(item):
    return any(n == TRUST_OID or "trusted key usage" in n.lower() for (n, _) in item["attrs"])


def spki(pub):
    return pub.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


def key_facts(k):
    if isinstance(k, rsa.RSAPrivateKey):
        return "rsa", k.key_size
    if isinstance(k, ec.EllipticCurvePrivateKey):
        return "ec", k.curve.key_size
    if isinstance(k, ed25519.Ed25519PrivateKey):
        return "ed25519", 256
    if isinstance(k, ed448.Ed448PrivateKey):
        return "ed448", 456
    if isinstance(k, dsa.DSAPrivateKey):
        return "dsa", k.key_size
    die(f"unexpected key type {type(k)}")


def cert_facts(c):
    der = c.public_bytes(Encoding.DER)
    return {
        "sha256": hashlib.sha256(der).hexdigest(),
        "sha1": hashlib.sha1(der).hexdigest(),
        "subject": c.subject.rfc4514_string(),
        "issuer": c.issuer.rfc4514_string(),
        "serial": format(c.serial_number, "x"),
    }


def build_chain(leaf, certs):
    chain = [leaf]
    while chain[-1].issuer != chain[-1].subject:
        cur, nxt = chain[-1], None
        for c in certs:
            if c.subject == cur.issuer and c not in chain:
                try:
                    cur.verify_directly_issued_by(c)
                except Exception:
                    continue
                nxt = c
                break
        if nxt is None:
            break
        chain.append(nxt)
    return chain


def openssl_pkcs12(path, password, extra):
    return run(["openssl", "pkcs12", "-in", path, "-passin", "pass:" + password] + extra, check=False)


def p12_entry(path, password):
    data = open(path, "rb").read()
    ossl_pw = "" if password is None else password
    # Does OpenSSL 3.0 read it with the default provider alone, or only with -legacy?
    legacy = []
    if openssl_pkcs12(path, ossl_pw, ["-info", "-noout"]).returncode != 0:
        legacy = ["-legacy"]
        if openssl_pkcs12(path, ossl_pw, ["-info", "-noout"] + legacy).returncode != 0:
            die(f"{path}: openssl cannot read it even with -legacy")
    info = openssl_pkcs12(path, ossl_pw, ["-info", "-noout"] + legacy).stderr.decode()
    cert_out = openssl_pkcs12(path, ossl_pw, ["-nokeys"] + legacy)
    key_out = openssl_pkcs12(path, ossl_pw, ["-nocerts", "-noenc"] + legacy)
    for p in (cert_out, key_out):
        if p.returncode != 0:
            die(f"{path}: openssl failed: {p.stderr.decode()}")
    cert_bags = parse_bags(cert_out.stdout.decode("utf-8"))
    key_bags = parse_bags(key_out.stdout.decode("utf-8"))
    password_required = openssl_pkcs12(path, WRONG_PASSWORD, ["-info", "-noout"] + legacy).returncode != 0

    # MAC: DER walk, cross-checked with `openssl pkcs12 -info`
    d = der_facts(data)
    m = re.search(r"^MAC: (\S+), Iteration (\d+)$", info, re.M)
    if d["mac"] is None:
        if m or "MAC is absent" not in info:
            die(f"{path}: MAC presence disagrees with openssl")
    elif not m or m.group(1).lower() != d["mac"] or int(m.group(2)) != d["mac_iter"]:
        die(f"{path}: MAC facts disagree: DER {d['mac']}/{d['mac_iter']} vs openssl {m and m.groups()}")

    certs = [x509.load_pem_x509_certificate(b["pem"].encode()) for b in cert_bags]
    keys = [load_pem_private_key(b["pem"].encode(), None) for b in key_bags]
    key_spkis = [spki(k.public_key()) for k in keys]

    cert_list = []
    for b, c in zip(cert_bags, certs):
        f = cert_facts(c)
        f["alias"] = attr(b, "friendlyName")
        f["has_key"] = spki(c.public_key()) in key_spkis
        f["trusted"] = is_trusted(b)
        f["local_key_id"] = local_key_id(b)
        cert_list.append(f)

    key_list, first_leaf = [], None
    for b, k, ks in zip(key_bags, keys, key_spkis):
        alg, bits = key_facts(k)
        paired = [c for c in certs if spki(c.public_key()) == ks]
        if len({c.public_bytes(Encoding.DER) for c in paired}) != 1:
            die(f"{path}: key does not pair with exactly one certificate")
        first_leaf = first_leaf or paired[0]
        key_list.append({
            "algorithm": alg,
            "bits": bits,
            "certificate_sha256": hashlib.sha256(paired[0].public_bytes(Encoding.DER)).hexdigest(),
            "alias": attr(b, "friendlyName"),
            "local_key_id": local_key_id(b),
        })

    entry = {
        "file": path,
        "password": password,
        "password_required": password_required,
        "mac": None if d["mac"] is None else "hmac-" + d["mac"],
        "mac_iterations": None if d["mac"] is None else d["mac_iter"],
    }
    if d["mac"] is not None:
        entry["mac_iterations_field_present"] = d["mac_iter_present"]
        entry["mac_salt_length"] = len(d["mac_salt"])
        # MAC key = PKCS#12 KDF over the password as BMPString: UTF-16BE + 00 00 terminator
        # ("" -> 00 00); the NULL password is zero bytes.  Which forms verify?
        if password is not None:
            entry["mac_verifies_with_password"] = mac_ok(d, password.encode("utf-16-be") + b"\x00\x00")
            if not entry["mac_verifies_with_password"]:
                die(f"{path}: independent MAC check failed")
        entry["mac_verifies_with_empty_password"] = mac_ok(d, b"\x00\x00")
        entry["mac_verifies_with_null_password"] = mac_ok(d, b"")
        if password is None and not (entry["mac_verifies_with_empty_password"] or entry["mac_verifies_with_null_password"]):
            die(f"{path}: MAC verifies with neither the empty nor the NULL password")
    entry["ber_outer_encoding"] = d["ber"]
    entry["openssl_needs_legacy"] = bool(legacy)
    entry["openssl_info"] = [ln for ln in info.splitlines() if ln and not ln.startswith("MAC")]
    entry["keys"] = key_list
    entry["certificates"] = cert_list
    entry["chain_for_first_key"] = (
        None if first_leaf is None
        else [hashlib.sha256(c.public_bytes(Encoding.DER)).hexdigest() for c in build_chain(first_leaf, certs)])

    # Independent load with python cryptography
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            p = pkcs12.load_pkcs12(data, None if password is None else password.encode())
    except Exception as e:  # noqa: BLE001 - record, then decide
        if path not in CRYPTOGRAPHY_KNOWN_FAILURES:
            die(f"{path}: python cryptography failed to load it: {e!r}")
        entry["cryptography_loads"] = False
        return entry
    py_certs = ([p.cert] if p.cert else []) + list(p.additional_certs)
    py_sha = {hashlib.sha256(c.certificate.public_bytes(Encoding.DER)).hexdigest() for c in py_certs}
    if py_sha != {c["sha256"] for c in cert_list}:
        die(f"{path}: python cryptography sees different certificates than openssl")
    if (p.key is None) != (not keys) or (p.key is not None and spki(p.key.public_key()) != key_spkis[0]):
        die(f"{path}: python cryptography sees a different key than openssl")
    entry["cryptography_loads"] = True
    if caught:  # e.g. BER input: "could not be parsed as DER, falling back to parsing as BER"
        entry["cryptography_warnings"] = [str(w.message).split(". ")[0] for w in caught]
    return entry


# ---------------------------------------------------------------- JKS / JCEKS
def read_mutf8(buf, off):
    n = int.from_bytes(buf[off:off + 2], "big")
    raw = buf[off + 2:off + 2 + n].replace(b"\xc0\x80", b"\x00")
    s = raw.decode("utf-8", "surrogatepass").encode("utf-16-be", "surrogatepass").decode("utf-16-be")
    return s, off + 2 + n


def parse_jks(path, store_password):
    """Own parser: (store type, [(alias, kind, [cert DER...])]) in FILE order + integrity check."""
    b = open(path, "rb").read()
    magic = b[:4]
    kinds = {b"\xfe\xed\xfe\xed": "JKS", b"\xce\xce\xce\xce": "JCEKS"}
    if magic not in kinds or int.from_bytes(b[4:8], "big") != 2:
        die(f"{path}: not a version-2 JKS/JCEKS file")
    count, off, entries = int.from_bytes(b[8:12], "big"), 12, []

    def read_cert(off):
        _, off = read_mutf8(b, off)  # cert type, "X.509"
        n = int.from_bytes(b[off:off + 4], "big")
        return b[off + 4:off + 4 + n], off + 4 + n

    for _ in range(count):
        tag = int.from_bytes(b[off:off + 4], "big")
        alias, off = read_mutf8(b, off + 4)
        off += 8  # creation date
        if tag == 1:
            n = int.from_bytes(b[off:off + 4], "big")
            off += 4 + n
            nc, off, chain = int.from_bytes(b[off:off + 4], "big"), off + 4, []
            for _ in range(nc):
                c, off = read_cert(off)
                chain.append(c)
            entries.append((alias, "key", chain))
        elif tag == 2:
            c, off = read_cert(off)
            entries.append((alias, "trusted", [c]))
        else:
            die(f"{path}: unsupported entry tag {tag}")
    digest = hashlib.sha1(store_password.encode("utf-16-be") + b"Mighty Aphrodite" + b[:off]).digest()
    if b[off:] != digest:
        die(f"{path}: integrity hash does not verify with the store password")
    return kinds[magic], entries


def jks_entries(jks_reg, tmpdir):
    spec = os.path.join(tmpdir, "jks-spec.tsv")
    rows = [ln.rstrip("\n").split("\t") for ln in open(jks_reg, encoding="utf-8") if ln.strip()]
    with open(spec, "w", encoding="utf-8") as f:
        f.write("".join("\t".join(r) + "\n" for r in rows))
    here = os.path.dirname(os.path.abspath(__file__))
    out = run(["java", os.path.join(here, "JksInspect.java"), spec]).stdout.decode("utf-8")
    java = {}
    for ln in out.splitlines():
        fpath, alias, kind, pw_idx, alg, bits, certs = ln.split("\t")
        java[(fpath, alias)] = (kind, int(pw_idx), alg, bits, [base64.b64decode(c) for c in certs.split(",")])

    result = []
    for r in rows:
        fpath, stype, storepass, cands = r[0], r[1], r[2], r[3:]
        ftype, file_entries = parse_jks(fpath, storepass)
        if ftype != stype:
            die(f"{fpath}: file magic says {ftype}, expected {stype}")
        if {a for (a, _, _) in file_entries} != {a for (p, a) in java if p == fpath}:
            die(f"{fpath}: aliases differ between own parser and the JDK")
        ents = []
        for alias, kind, chain in file_entries:  # file order
            jkind, pw_idx, alg, bits, jchain = java[(fpath, alias)]
            if jkind != kind or jchain != chain:
                die(f"{fpath}/{alias}: JDK and own parser disagree")
            e = {
                "alias": alias,
                "kind": kind,
                "key_password": cands[pw_idx] if kind == "key" else None,
                "sha256": hashlib.sha256(chain[0]).hexdigest(),
                "chain_length": len(chain),
                "chain_sha256": [hashlib.sha256(c).hexdigest() for c in chain],
            }
            if kind == "key":
                e["key_algorithm"], e["bits"] = alg.lower(), int(bits)
            leaf = x509.load_der_x509_certificate(chain[0])
            e["subject"] = leaf.subject.rfc4514_string()
            ents.append(e)
        result.append({"file": fpath, "store_type": stype, "store_password": storepass, "entries": ents})
    return result


def system_keystores():
    if not os.path.exists(CACERTS):
        return []
    out = run(["keytool", "-list", "-storetype", "JKS", "-keystore", CACERTS, "-storepass", "changeit"])
    m = re.search(r"Your keystore contains (\d+) entr", out.stdout.decode())
    if not m:
        die("cannot parse keytool -list output for cacerts")
    n = int(m.group(1))
    _, entries = parse_jks(CACERTS, "changeit")
    if len(entries) != n:
        die("cacerts: own parser and keytool disagree on entry count")
    return [{"path": CACERTS, "store_type": "JKS", "store_password": "changeit", "entry_count": n,
             "note": "Debian ca-certificates-java system store; not copied into the repo, may be absent"}]


def pki_facts():
    out = {}
    for name in sorted(os.listdir("pki/certs")):
        if name == "chain.pem":
            continue
        c = x509.load_pem_x509_certificate(open(f"pki/certs/{name}", "rb").read())
        f = cert_facts(c)
        k = load_pem_private_key(open(f"pki/keys/{name}", "rb").read(), None)
        f["key_algorithm"], f["key_bits"] = key_facts(k)
        if spki(k.public_key()) != spki(c.public_key()):
            die(f"pki/{name}: key/cert mismatch")
        out[name[:-4]] = f
    return out


def main():
    p12_reg, jks_reg, out_path = sys.argv[1:4]
    p12 = []
    for ln in open(p12_reg, encoding="utf-8"):
        if not ln.strip():
            continue
        path, kind, pw = ln.rstrip("\n").split("\t", 2)
        p12.append(p12_entry(path, None if kind == "null" else pw))
    manifest = {
        "comment": "Generated by gen.sh (manifest.py); facts from openssl 3.0 / python cryptography / JDK 17, not pfxkit.",
        "tool_versions": {
            "openssl": run(["openssl", "version"]).stdout.decode().strip(),
            "python_cryptography": __import__("cryptography").__version__,
            "java": run(["java", "-version"]).stderr.decode().splitlines()[0],
        },
        "pki": pki_facts(),
        "pkcs12": p12,
        "jks": jks_entries(jks_reg, os.path.dirname(p12_reg)),
        "system_keystores": system_keystores(),
    }
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=2, ensure_ascii=False)
        f.write("\n")


if __name__ == "__main__":
    main()
