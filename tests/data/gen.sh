#!/usr/bin/env bash
# gen.sh - regenerate every pfxkit test fixture under tests/data/.
#
#   Usage: tests/data/gen.sh          (works from any cwd)
#
# Tools used (versions this was last run with):
#   OpenSSL 3.0.19, OpenJDK 17.0.15 (keytool, java), Python 3.11 + cryptography 48.0.0
#   (cryptography's wheel bundles its own OpenSSL 4.0.0).  No pip packages are installed
#   by this script; the Python helpers use only the standard library + cryptography.
#
# This script IS the record: every fixture file is written by exactly one of the
# commands below, and the comment above each command says what it is.  Keys are
# regenerated on every run (thumbprints change between runs); manifest.json is
# regenerated at the end by manifest.py from facts computed by openssl / python
# cryptography / the JDK - never by pfxkit.  The script is idempotent: pki/, p12/
# and jks/ are wiped and rebuilt on every run.
#
# Passwords (fixed):
#   openssl / cryptography PKCS#12 ....... "pfxkit-pass"   (exceptions noted per file)
#   keytool PKCS#12 ...................... "changeit-pass"
#   JKS / JCEKS store .................... "store-pass"    (unicode.jks: "störe-pässwörd")
#   JKS / JCEKS key (when different) ..... "key-pass-2"    (unicode.jks: "kéy-pässwörd")
set -euo pipefail
cd "$(dirname "$0")"

# keytool and java decode non-ASCII command-line arguments (unicode.jks passwords and
# alias) with the locale charset; force UTF-8 so they are not turned into '?'.
export LC_ALL=C.UTF-8
umask 022
t0=$(date +%s%N)

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

rm -rf pki p12 jks
mkdir -p pki/keys pki/certs p12 jks

# Registries read by manifest.py (not fixtures themselves):
#   p12.tsv : file <TAB> str|null <TAB> password     (null = "no password given")
#   jks.tsv : file <TAB> JKS|JCEKS <TAB> storepass [<TAB> candidate key password]...
P12REG="$TMP/p12.tsv"
JKSREG="$TMP/jks.tsv"
: >"$P12REG"
: >"$JKSREG"
reg_p12() { printf '%s\tstr\t%s\n' "$1" "$2" >>"$P12REG"; }
reg_p12_nopass() { printf '%s\tnull\t\n' "$1" >>"$P12REG"; }
reg_jks() { local IFS=$'\t'; printf '%s\n' "$*" >>"$JKSREG"; }

P=pfxkit-pass
CNF=pki/x509v3.cnf
# v3_leaf takes its SAN from $LEAF_DNS; openssl expands ${ENV::LEAF_DNS} whenever it
# loads the config, so it must always be set (overridden per leaf below).
export LEAF_DNS=unused.example.com

echo "== PKI (pki/)"
# ---------------------------------------------------------------------------------------
# Extension profiles used for every certificate we sign with openssl.
cat >"$CNF" <<'EOF'
# x509v3 extension profiles for the pfxkit test PKI (written by gen.sh)
[ req ]
distinguished_name = req_dn
prompt             = no
[ req_dn ]
CN = unused

[ v3_root ]
basicConstraints       = critical, CA:TRUE
keyUsage               = critical, keyCertSign, cRLSign
subjectKeyIdentifier   = hash

[ v3_intermediate ]
basicConstraints       = critical, CA:TRUE, pathlen:0
keyUsage               = critical, keyCertSign, cRLSign
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid:always

[ v3_leaf_rsa ]
basicConstraints       = critical, CA:FALSE
keyUsage               = critical, digitalSignature, keyEncipherment
extendedKeyUsage       = serverAuth, clientAuth
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid:always
subjectAltName         = DNS:www.example.com, DNS:example.com

[ v3_leaf ]
basicConstraints       = critical, CA:FALSE
keyUsage               = critical, digitalSignature
extendedKeyUsage       = serverAuth, clientAuth
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid:always
subjectAltName         = DNS:${ENV::LEAF_DNS}
EOF

# Root CA: RSA-2048, self-signed, serial 0x01, CN=pfxkit Test Root
openssl genpkey -quiet -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out pki/keys/root.pem
openssl req -new -x509 -config "$CNF" -key pki/keys/root.pem -subj "/CN=pfxkit Test Root" \
    -sha256 -days 7300 -set_serial 0x01 -extensions v3_root -out pki/certs/root.pem

# Intermediate CA: RSA-2048, serial 0x02, signed by the root
openssl genpkey -quiet -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out pki/keys/intermediate.pem
openssl req -new -config "$CNF" -key pki/keys/intermediate.pem -subj "/CN=pfxkit Test Intermediate" \
    -out "$TMP/intermediate.csr"
openssl x509 -req -in "$TMP/intermediate.csr" -CA pki/certs/root.pem -CAkey pki/keys/root.pem \
    -sha256 -days 3650 -set_serial 0x02 -extfile "$CNF" -extensions v3_intermediate \
    -out pki/certs/intermediate.pem

# chain.pem = intermediate then root (what -certfile gets for most fixtures)
cat pki/certs/intermediate.pem pki/certs/root.pem >pki/certs/chain.pem

# sign_leaf NAME CN SERIAL PROFILE : CSR from pki/keys/NAME.pem, signed by the intermediate
sign_leaf() {
    openssl req -new -config "$CNF" -key "pki/keys/$1.pem" -subj "/CN=$2" -out "$TMP/$1.csr"
    LEAF_DNS="$2" openssl x509 -req -in "$TMP/$1.csr" -CA pki/certs/intermediate.pem \
        -CAkey pki/keys/intermediate.pem -sha256 -days 825 -set_serial "$3" \
        -extfile "$CNF" -extensions "$4" -out "pki/certs/$1.pem"
}

# Leaf RSA-2048, CN=www.example.com, SAN DNS:www.example.com,DNS:example.com.
# Serial 0x8badf00d has the high bit set, so its DER INTEGER needs a leading 0x00 byte.
openssl genpkey -quiet -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out pki/keys/leaf-rsa.pem
sign_leaf leaf-rsa www.example.com 0x8badf00d v3_leaf_rsa

# Leaf EC P-256 / P-384 / P-521 (named curves)
openssl genpkey -quiet -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -pkeyopt ec_param_enc:named_curve -out pki/keys/leaf-ec256.pem
sign_leaf leaf-ec256 ec256.example.com 0x1256 v3_leaf
openssl genpkey -quiet -algorithm EC -pkeyopt ec_paramgen_curve:P-384 -pkeyopt ec_param_enc:named_curve -out pki/keys/leaf-ec384.pem
sign_leaf leaf-ec384 ec384.example.com 0x1384 v3_leaf
openssl genpkey -quiet -algorithm EC -pkeyopt ec_paramgen_curve:P-521 -pkeyopt ec_param_enc:named_curve -out pki/keys/leaf-ec521.pem
sign_leaf leaf-ec521 ec521.example.com 0x1521 v3_leaf

# Leaf Ed25519 / Ed448
openssl genpkey -quiet -algorithm ED25519 -out pki/keys/leaf-ed25519.pem
sign_leaf leaf-ed25519 ed25519.example.com 0x25519 v3_leaf
openssl genpkey -quiet -algorithm ED448 -out pki/keys/leaf-ed448.pem
sign_leaf leaf-ed448 ed448.example.com 0x448 v3_leaf

# Leaf DSA-2048 (fresh 2048-bit domain parameters each run)
openssl genpkey -quiet -genparam -algorithm DSA -pkeyopt dsa_paramgen_bits:2048 -out "$TMP/dsa-params.pem"
openssl genpkey -quiet -paramfile "$TMP/dsa-params.pem" -out pki/keys/leaf-dsa.pem
sign_leaf leaf-dsa dsa.example.com 0x0d5a v3_leaf

echo "== openssl pkcs12 -export fixtures (p12/openssl-*.p12)"
# ---------------------------------------------------------------------------------------
# NOTE on cert order: `openssl pkcs12 -export` always writes the cert matching -inkey
# FIRST, then the remaining -in certs in input order, then the -certfile certs.  So the
# leaf can never be preceded by its chain in an openssl-made file; what we CAN do is
# make file order != chain order: openssl-default.p12 gets -in root+leaf and
# -certfile intermediate, giving file order leaf, root, intermediate.  The file where
# the chain really comes BEFORE the leaf is cryptography-chain-first.p12 (root,
# intermediate, leaf).  The keytool files interleave: first, intermediate, root,
# trusted root, second (see the keytool section).
RSA_IN=(-inkey pki/keys/leaf-rsa.pem -in pki/certs/leaf-rsa.pem -certfile pki/certs/chain.pem)

# openssl-default.p12: OpenSSL 3.0 defaults = PBES2/PBKDF2-HMAC-SHA256/AES-256-CBC for
# keys and certs, 2048 iterations, HMAC-SHA256 MAC; RSA leaf + chain, friendlyName "leaf".
# -in bundle is root-first, so file order is leaf, root, intermediate.
cat pki/certs/root.pem pki/certs/leaf-rsa.pem >"$TMP/root-then-leaf.pem"
openssl pkcs12 -export -inkey pki/keys/leaf-rsa.pem -in "$TMP/root-then-leaf.pem" \
    -certfile pki/certs/intermediate.pem -name leaf -passout "pass:$P" -out p12/openssl-default.p12
reg_p12 p12/openssl-default.p12 "$P"

# openssl-canames.p12: like default but CA certs also get friendlyNames via -caname
# (applied in CA order: intermediate, root).
openssl pkcs12 -export "${RSA_IN[@]}" -name leaf -caname intermediate -caname root \
    -passout "pass:$P" -out p12/openssl-canames.p12
reg_p12 p12/openssl-canames.p12 "$P"

# openssl-legacy.p12: -legacy = pbeWithSHA1And40BitRC2-CBC certs, pbeWithSHA1And3-KeyTripleDES-CBC
# key, HMAC-SHA1 MAC (reading it with OpenSSL 3 needs the legacy provider for RC2).
openssl pkcs12 -export -legacy "${RSA_IN[@]}" -name leaf -passout "pass:$P" -out p12/openssl-legacy.p12
reg_p12 p12/openssl-legacy.p12 "$P"

# openssl-descert.p12: -descert = certs with pbeWithSHA1And3-KeyTripleDES-CBC, key default (PBES2 AES)
openssl pkcs12 -export -descert "${RSA_IN[@]}" -name leaf -passout "pass:$P" -out p12/openssl-descert.p12
reg_p12 p12/openssl-descert.p12 "$P"

# openssl-nomac.p12: no MacData (OpenSSL 3.0 then also leaves the cert SafeContents unencrypted)
openssl pkcs12 -export -nomac "${RSA_IN[@]}" -name leaf -passout "pass:$P" -out p12/openssl-nomac.p12
reg_p12 p12/openssl-nomac.p12 "$P"

# openssl-noenc.p12: key as a plain keyBag, certs in plain Data, MAC HMAC-SHA256 present
openssl pkcs12 -export -keypbe NONE -certpbe NONE "${RSA_IN[@]}" -name leaf -passout "pass:$P" \
    -out p12/openssl-noenc.p12
reg_p12 p12/openssl-noenc.p12 "$P"

# openssl-noenc-nomac.p12: nothing encrypted, no MAC (the password given is never used)
openssl pkcs12 -export -keypbe NONE -certpbe NONE -nomac "${RSA_IN[@]}" -name leaf -passout "pass:$P" \
    -out p12/openssl-noenc-nomac.p12
reg_p12 p12/openssl-noenc-nomac.p12 "$P"

# openssl-macsha1.p12 / openssl-macsha512.p12: MAC digest HMAC-SHA1 / HMAC-SHA512
openssl pkcs12 -export -macalg sha1 "${RSA_IN[@]}" -name leaf -passout "pass:$P" -out p12/openssl-macsha1.p12
reg_p12 p12/openssl-macsha1.p12 "$P"
openssl pkcs12 -export -macalg sha512 "${RSA_IN[@]}" -name leaf -passout "pass:$P" -out p12/openssl-macsha512.p12
reg_p12 p12/openssl-macsha512.p12 "$P"

# openssl-iter1.p12: -iter 1.  In 3.0 -iter sets BOTH the PBE and the MAC iteration count
# (-maciter is a no-op kept for compatibility), and with a MAC count of 1 OpenSSL omits
# the MacData.iterations field entirely (DEFAULT 1) - a useful decoder edge case.
openssl pkcs12 -export -iter 1 "${RSA_IN[@]}" -name leaf -passout "pass:$P" -out p12/openssl-iter1.p12
reg_p12 p12/openssl-iter1.p12 "$P"

# openssl-iter600k.p12: 600000 iterations for PBKDF2 (key + certs) and the MAC KDF
openssl pkcs12 -export -iter 600000 "${RSA_IN[@]}" -name leaf -passout "pass:$P" -out p12/openssl-iter600k.p12
reg_p12 p12/openssl-iter600k.p12 "$P"

# openssl-empty-pass.p12: password is the EMPTY STRING ("pass:" with nothing after it).
# OpenSSL feeds "" to PBKDF2 as zero bytes and to the PKCS#12 MAC KDF as the BMPString
# terminator 00 00; when reading, OpenSSL also tries the NULL password for the MAC.
openssl pkcs12 -export "${RSA_IN[@]}" -name leaf -passout pass: -out p12/openssl-empty-pass.p12
reg_p12 p12/openssl-empty-pass.p12 ""

# openssl-unicode-pass.p12: password "pässwörd-😀" (UTF-8 on the command line).  OpenSSL
# 3.0 uses the raw UTF-8 bytes for PBKDF2 (PBES2) and converts UTF-8 -> BMPString (UTF-16BE,
# the emoji as a surrogate pair, plus 00 00 terminator) for the PKCS#12 MAC KDF.
UNI_P="pässwörd-😀"
openssl pkcs12 -export "${RSA_IN[@]}" -name leaf -passout "pass:$UNI_P" -out p12/openssl-unicode-pass.p12
reg_p12 p12/openssl-unicode-pass.p12 "$UNI_P"

# One file per key algorithm, OpenSSL defaults, leaf + intermediate + root, friendlyName = name
for alg in ec256 ec384 ec521 ed25519 ed448 dsa; do
    openssl pkcs12 -export -inkey "pki/keys/leaf-$alg.pem" -in "pki/certs/leaf-$alg.pem" \
        -certfile pki/certs/chain.pem -name "$alg" -passout "pass:$P" -out "p12/openssl-$alg.p12"
    reg_p12 "p12/openssl-$alg.p12" "$P"
done

echo "== BER re-encoding (p12/ber-indefinite.p12)"
# ---------------------------------------------------------------------------------------
# ber-indefinite.p12: openssl-default.p12 with the outer PFX SEQUENCE, the authSafe
# ContentInfo SEQUENCE, its [0] EXPLICIT wrapper and the data OCTET STRING re-encoded in
# BER: indefinite lengths, and the OCTET STRING made constructed (24 80 ...) out of
# 1000-byte primitive chunks, as NSS/Firefox exports do.  The MAC still verifies because
# it covers the OCTET STRING *contents*, which are unchanged.
python3 ber_rewrite.py p12/openssl-default.p12 p12/ber-indefinite.p12 1000
openssl pkcs12 -info -in p12/ber-indefinite.p12 -passin "pass:$P" -noout 2>/dev/null
reg_p12 p12/ber-indefinite.p12 "$P"

echo "== python cryptography fixtures (p12/cryptography-*.p12)"
# ---------------------------------------------------------------------------------------
# See gen_cryptography.py for the exact API calls; it prints registry lines for manifest.py.
python3 gen_cryptography.py >>"$P12REG"

echo "== keytool PKCS#12 fixtures (p12/keytool-*.p12)"
# ---------------------------------------------------------------------------------------
# keytool_two_keys FILE SERIAL [extra keytool options]:
#   1. trusted cert entry "root" (our root CA).  The JDK marks it with the Oracle trust
#      attribute 2.16.840.1.113894.746875.1.1 (trusted key usage = anyExtendedKeyUsage).
#   2. key entry "first": RSA-2048 generated by keytool, CSR signed by our intermediate
#      (SERIAL), CA reply (leaf, intermediate, root) imported -> 3-cert chain.
#   3. key entry "second": EC P-256 generated by keytool, self-signed.
# Every keytool run reloads and rewrites the store, and (observed with JDK 17.0.15) the
# rewritten file lists key entries before trusted-cert entries, so although "root" is
# imported first the final cert-bag order is:
#   first, intermediate, root   (first's chain; JDK sets friendlyName = subject DN on the
#                                 two CA certs, no localKeyID, no trust attribute)
#   root                        (the trusted entry: friendlyName "root" + trust attribute)
#   second
# i.e. the root certificate appears TWICE, and "second"'s cert follows unrelated certs.
keytool_two_keys() {
    local f=$1 serial=$2; shift 2
    keytool "$@" -importcert -noprompt -trustcacerts -alias root -file pki/certs/root.pem \
        -storetype PKCS12 -keystore "$f" -storepass changeit-pass
    keytool "$@" -genkeypair -alias first -keyalg RSA -keysize 2048 -sigalg SHA256withRSA \
        -dname "CN=keytool first, O=pfxkit" -validity 825 -storetype PKCS12 -keystore "$f" -storepass changeit-pass
    keytool "$@" -certreq -alias first -storetype PKCS12 -keystore "$f" -storepass changeit-pass -file "$TMP/first.csr"
    LEAF_DNS=first.example.com openssl x509 -req -in "$TMP/first.csr" -CA pki/certs/intermediate.pem \
        -CAkey pki/keys/intermediate.pem -sha256 -days 825 -set_serial "$serial" \
        -extfile "$CNF" -extensions v3_leaf -out "$TMP/first.pem"
    cat "$TMP/first.pem" pki/certs/intermediate.pem pki/certs/root.pem >"$TMP/first-reply.pem"
    keytool "$@" -importcert -noprompt -trustcacerts -alias first -file "$TMP/first-reply.pem" \
        -storetype PKCS12 -keystore "$f" -storepass changeit-pass
    keytool "$@" -genkeypair -alias second -keyalg EC -groupname secp256r1 -sigalg SHA256withECDSA \
        -dname "CN=keytool second, O=pfxkit" -validity 825 -storetype PKCS12 -keystore "$f" -storepass changeit-pass
}
# keytool-two-keys.p12: JDK 17 default PKCS12 (PBES2 AES-256 / HMAC-SHA256 MAC, 10000 iter)
keytool_two_keys p12/keytool-two-keys.p12 0x7001
reg_p12 p12/keytool-two-keys.p12 changeit-pass
# keytool-legacy.p12: same, every keytool call run with -J-Dkeystore.pkcs12.legacy
# (JDK legacy PKCS12: RC2-40 certs, 3DES keys, HMAC-SHA1 MAC)
keytool_two_keys p12/keytool-legacy.p12 0x7002 -J-Dkeystore.pkcs12.legacy
reg_p12 p12/keytool-legacy.p12 changeit-pass

echo "== JKS / JCEKS fixtures (jks/)"
# ---------------------------------------------------------------------------------------
# rsa-keypass.jks: JKS, RSA-2048 key entry "server", storepass "store-pass",
# keypass "key-pass-2" (different from the store password), self-signed
keytool -genkeypair -alias server -keyalg RSA -keysize 2048 -sigalg SHA256withRSA \
    -dname "CN=server.example.com, O=pfxkit" -validity 825 \
    -storetype JKS -keystore jks/rsa-keypass.jks -storepass store-pass -keypass key-pass-2
reg_jks jks/rsa-keypass.jks JKS store-pass key-pass-2

# ec.jks: JKS, EC P-256 key entry "ec-key", storepass = keypass = "store-pass"
keytool -genkeypair -alias ec-key -keyalg EC -groupname secp256r1 -sigalg SHA256withECDSA \
    -dname "CN=ec.example.com, O=pfxkit" -validity 825 \
    -storetype JKS -keystore jks/ec.jks -storepass store-pass -keypass store-pass
reg_jks jks/ec.jks JKS store-pass store-pass

# chain.jks: JKS, key entry "leaf" = our RSA leaf key with its 3-cert chain (leaf,
# intermediate, root), converted by keytool from p12/openssl-default.p12 (the JDK builds
# the chain from the cert bags); storepass = keypass = "store-pass"
keytool -importkeystore -noprompt -srcstoretype PKCS12 -srckeystore p12/openssl-default.p12 \
    -srcstorepass "$P" -srcalias leaf -deststoretype JKS -destkeystore jks/chain.jks \
    -deststorepass store-pass -destkeypass store-pass -destalias leaf
reg_jks jks/chain.jks JKS store-pass store-pass

# trust-only.jks: JKS with two trusted cert entries "root" and "intermediate", no keys
keytool -importcert -noprompt -trustcacerts -alias root -file pki/certs/root.pem \
    -storetype JKS -keystore jks/trust-only.jks -storepass store-pass
keytool -importcert -noprompt -trustcacerts -alias intermediate -file pki/certs/intermediate.pem \
    -storetype JKS -keystore jks/trust-only.jks -storepass store-pass
reg_jks jks/trust-only.jks JKS store-pass

# unicode.jks: JKS, storepass "störe-pässwörd", keypass "kéy-pässwörd", RSA-2048 key entry
# requested with alias "Ünïcode-Alias-😀" (non-BMP emoji).  The JKS provider lower-cases
# aliases (Locale.ENGLISH), so it is stored as "ünïcode-alias-😀"; writeUTF encodes the
# emoji as a CESU-8 surrogate pair (6 bytes).  Both passwords are hashed as UTF-16BE.
# keytool accepted all of this; see manifest.json for the alias as actually stored.
keytool -genkeypair -alias "Ünïcode-Alias-😀" -keyalg RSA -keysize 2048 -sigalg SHA256withRSA \
    -dname "CN=unicode.example.com, O=pfxkit" -validity 825 \
    -storetype JKS -keystore jks/unicode.jks -storepass "störe-pässwörd" -keypass "kéy-pässwörd"
reg_jks jks/unicode.jks JKS "störe-pässwörd" "kéy-pässwörd"

# key.jceks: JCEKS, RSA-2048 key entry "jceks-key" (storepass "store-pass", keypass
# "key-pass-2"; JCEKS protects keys with PBEWithMD5AndTripleDES) + trusted cert "root"
keytool -genkeypair -alias jceks-key -keyalg RSA -keysize 2048 -sigalg SHA256withRSA \
    -dname "CN=jceks.example.com, O=pfxkit" -validity 825 \
    -storetype JCEKS -keystore jks/key.jceks -storepass store-pass -keypass key-pass-2
keytool -importcert -noprompt -trustcacerts -alias root -file pki/certs/root.pem \
    -storetype JCEKS -keystore jks/key.jceks -storepass store-pass
reg_jks jks/key.jceks JCEKS store-pass key-pass-2

# System keystore (NOT copied into the repo): Debian's ca-certificates-java JKS at
# /etc/ssl/certs/java/cacerts, password "changeit"; manifest.py records its path and the
# entry count reported by `keytool -list -storetype JKS`.

echo "== manifest.json (manifest.py: facts from openssl, python cryptography, JDK)"
# ---------------------------------------------------------------------------------------
# manifest.py is also the verification step: it aborts (and so does this script) unless
# every p12 reads with `openssl pkcs12 -info -noout` (retrying with -legacy, recorded as
# openssl_needs_legacy), loads with python cryptography's load_pkcs12 and shows the same
# certs/key there, its MAC re-verifies with an independent KDF, and every JKS/JCEKS loads
# via the JDK and via manifest.py's own parser (incl. the store integrity hash).
python3 manifest.py "$P12REG" "$JKSREG" manifest.json

echo "== issue 14 corpus fixtures (gen_corpus.sh: corpus/)"
# ---------------------------------------------------------------------------------------
./gen_corpus.sh

t1=$(date +%s%N)
echo "gen.sh: done in $(((t1 - t0) / 1000000)) ms; total size: $(du -sh --apparent-size . | cut -f1)"
