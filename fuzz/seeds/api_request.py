#!/usr/bin/env python3
"""Writes the seeds of the fuzz target api_request (fuzz/seeds/api_request/): one request per
endpoint of the router table in crates/pfxkit-server/src/api.rs, with a plausible query and body.
Layout (see fuzz_targets/api_request.rs): method byte (0: the endpoint's own), endpoint index,
id byte (0: id 1; 1: the harness's store), query, newline, body.
Run from the repository root: python3 fuzz/seeds/api_request.py"""
import json
import os
import re

SRC = "crates/pfxkit-server/src/api.rs"
OUT = "fuzz/seeds/api_request"
BODIES = {
    "/Enrollment/PFX": {"Subject": "CN=seed.example", "Password": "p",
                        "SANs": {"dns": ["seed.example"]}, "KeyType": "EC", "KeyLength": 256},
    "/Enrollment/PFX/Deploy": {"CertificateId": 1, "StoreIds": ["STORE"], "Password": "p", "Alias": "a"},
    "/Enrollment/PFX/Replace": {"ExistingCertificateId": 1, "CertificateId": 2, "Password": "p",
                                "JobTime": "2030-01-01T00:00:00Z"},
    "/Enrollment/Renew": {"CertificateId": 1},
    "/Certificates/Download": {"CertID": 1, "IncludeChain": True},
    "/CertificateStores": {"ClientMachine": "here", "StorePath": "/tmp/x.p12", "CertStoreType": 102,
                           "Properties": "{}", "Password": {"SecretValue": "s"}},
    "/CertificateStores/Certificates/Add": {"CertificateId": 1, "CertificateStores": [
        {"CertificateStoreId": "STORE", "Alias": "a", "Overwrite": True}]},
    "/CertificateStores/Certificates/Remove": {"CertificateStores": [
        {"CertificateStoreId": "STORE", "Alias": "a"}]},
}
QUERIES = {
    "/Certificates": "pq.queryString=NotAfter%20-le%20%222030-01-01%22&pq.pageReturned=1"
                     "&pq.returnLimit=5&includeLocations=true",
    "/Certificates/{id}": "includeLocations=true",
    "/OrchestratorJobs/JobHistory": "pq.queryString=Result%20-eq%20%22Failure%22",
}

src = open(SRC).read()
start = src.index("endpoints! {")
table = src[start:src.index("\n}\n", start)]
endpoints = re.findall(r'"(GET|POST|PUT|DELETE|PATCH)" "([^"]+)" (true|false)', table)
os.makedirs(OUT, exist_ok=True)
for i, (method, path, has_body) in enumerate(endpoints):
    body = json.dumps(BODIES.get(path, {"Name": "seed"})).encode() if has_body == "true" else b""
    id_byte = 1 if "CertificateStores/{id}" in path else 0
    data = bytes([0, i, id_byte]) + QUERIES.get(path, "").encode() + b"\n" + body
    name = re.sub(r"[^A-Za-z0-9]+", "_", method + path).strip("_")
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)
print(f"{len(endpoints)} seeds in {OUT}")
