#!/usr/bin/env bash
# gen_corpus.sh - fixtures for issue 14 ("Open every real-world keystore"): one file of our
# own per cause found in the real-world corpus, each with the same property as the files
# that failed.  Run by gen.sh after the PKI and p12/ are made; can also be run alone
# (it reads pki/ and p12/openssl-default.p12, and rewrites only corpus/).
#
#   Usage: tests/data/gen_corpus.sh          (works from any cwd)
#
# Facts about these files come from openssl, python `cryptography` and the JDK (never from
# pfxkit) and are written to corpus/facts.json by corpus_facts.py.
set -euo pipefail
cd "$(dirname "$0")"
export LC_ALL=C.UTF-8
umask 022

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
rm -rf corpus
mkdir -p corpus
P=pfxkit-pass

echo "== corpus/ber-inside.p12 (BER inside the AuthenticatedSafe and SafeContents)"
# NSS, Netscape, Mozilla and BouncyCastle write the octets of the authSafe `data` ContentInfo
# in BER too (indefinite lengths, chunked OCTET STRINGs), and so the SafeContents inside plain
# and encrypted containers.  corpus_ber.py rewrites openssl-default.p12 that way and
# recomputes the MAC over the new octets (a MAC covers the octets as written).
python3 corpus_ber.py p12/openssl-default.p12 "$P" corpus/ber-inside.p12
openssl pkcs12 -info -in corpus/ber-inside.p12 -passin "pass:$P" -noout 2>/dev/null

echo "== corpus/windows-zero-padding.p12 (zero bytes after the PFX)"
# Windows' PFXExportCertStoreEx and .NET pad the PFX with zero bytes (8 in the .NET test
# assets); openssl, keytool and cryptography ignore them.
{ cat p12/openssl-default.p12; head -c 8 /dev/zero; } >corpus/windows-zero-padding.p12
openssl pkcs12 -info -in corpus/windows-zero-padding.p12 -passin "pass:$P" -noout 2>/dev/null

echo "== corpus/secret-keys.jceks (JCEKS secret-key entries)"
# keytool, store password store-pass:
#   "aes"    AES-128 secret key (SecretKeySpec), key password store-pass
#   "hmac"   HmacSHA256 secret key, key password key-pass-2 (differs from the store's)
#   "pass"   a password stored with -importpass (PBEWithMD5AndDES; serialized as a KeyRep)
#   "server" RSA-2048 private key entry, self-signed
#   "root"   trusted certificate (our root CA)
J=(-storetype JCEKS -keystore corpus/secret-keys.jceks -storepass store-pass)
keytool -genseckey -alias aes -keyalg AES -keysize 128 "${J[@]}" -keypass store-pass 2>/dev/null
keytool -genseckey -alias hmac -keyalg HmacSHA256 -keysize 256 "${J[@]}" -keypass key-pass-2 2>/dev/null
printf 'secret-text\nsecret-text\n' | keytool -importpass -alias pass "${J[@]}" -keypass store-pass 2>/dev/null
keytool -genkeypair -alias server -keyalg RSA -keysize 2048 -sigalg SHA256withRSA \
    -dname "CN=server.example.com, O=pfxkit" -validity 825 "${J[@]}" -keypass store-pass 2>/dev/null
keytool -importcert -noprompt -alias root -file pki/certs/root.pem "${J[@]}" 2>/dev/null
java JceksSecrets.java corpus/secret-keys.jceks store-pass hmac=key-pass-2 >"$TMP/secrets.tsv"

echo "== corpus/pre1970-utctime.p12, unparsable-cert.p12, two-passwords.p12 (corpus_p12.py)"
# See corpus_p12.py: a 1950 UTCTime notBefore (PKITS "pre2000 UTC notBefore"), a certBag that
# is not X.509 at all, and a key password that differs from the MAC password (Java convertP12).
python3 corpus_p12.py
openssl pkcs12 -info -in corpus/pre1970-utctime.p12 -passin "pass:$P" -noout 2>/dev/null
openssl pkcs12 -info -in corpus/two-passwords.p12 -passin pass:store-pass -noout 2>/dev/null

echo "== corpus/keys/ (every key encoding build --help promises, PEM and DER)"
# leaf-rsa as PKCS#8, encrypted PKCS#8 (PBES2 AES-256, password key-pass) and PKCS#1;
# leaf-ec256 as SEC1.  Each PEM and DER.
mkdir -p corpus/keys
K=pki/keys
for form in PEM DER; do
    ext=$(echo "$form" | tr A-Z a-z)
    openssl pkcs8 -topk8 -nocrypt -in $K/leaf-rsa.pem -outform $form -out corpus/keys/rsa-pkcs8.$ext
    openssl pkcs8 -topk8 -v2 aes-256-cbc -in $K/leaf-rsa.pem -outform $form -passout pass:key-pass \
        -out corpus/keys/rsa-pkcs8-encrypted.$ext
    openssl rsa -in $K/leaf-rsa.pem -traditional -outform $form -out corpus/keys/rsa-pkcs1.$ext 2>/dev/null
    openssl ec -in $K/leaf-ec256.pem -outform $form -out corpus/keys/ec-sec1.$ext 2>/dev/null
done

# An X25519 key: an algorithm pfxkit names but has no arithmetic for (issue 14 item 7).
openssl genpkey -algorithm X25519 -out corpus/keys/x25519.pem

echo "== corpus/sect193r1.p12 (an EC key on a binary curve: named, claimed, not proven)"
# openssl: a sect193r1 key (its PKCS#8 carries the SEC1 publicKey) and a self-signed
# certificate, exported with the defaults; password pfxkit-pass.  pfxkit has no arithmetic
# for binary curves: it lists the key as ec, bits null, unpaired, with the certificate its
# embedded public key claims.
openssl ecparam -name sect193r1 -genkey -noout -out "$TMP/sect193r1.pem"
openssl req -new -x509 -key "$TMP/sect193r1.pem" -subj "/CN=sect193r1" -days 825 -sha256 \
    -out "$TMP/sect193r1.crt" 2>/dev/null
openssl pkcs12 -export -inkey "$TMP/sect193r1.pem" -in "$TMP/sect193r1.crt" -name sect193r1 \
    -passout "pass:$P" -out corpus/sect193r1.p12
openssl x509 -in "$TMP/sect193r1.crt" -outform DER | sha256sum | cut -d' ' -f1 >corpus/sect193r1.sha256

echo "== corpus/facts.json"
python3 corpus_facts.py "$TMP/secrets.tsv" >corpus/facts.json
