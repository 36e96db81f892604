#!/usr/bin/env python3
"""Keyfactor's two PyPI clients, used unchanged, against a real `pfxkit serve`.

`keyfactor-v-1-client` (PascalCase requests, parses responses with exact-case keys) and
`keyfactor-command-sdk` (camelCase requests) each drive enroll -> deploy -> inventory -> renew ->
replace (now, then with a future JobTime, waited for) -> locations, over TLS (the server's
certificate issued by the catalog's CA with --tls-from-ca, trusted through `pfxkit ca export`
only) with Basic authentication as a user holding exactly the permissions it needs. The store
files are then checked with `openssl pkcs12` and `keytool -list`.

Usage: test_clients.py PFXKIT_BINARY

Prints one line per check and closes with `N passed, N failed`; exits non-zero on any failure.
Run it in the venv that `tests/keyfactor_clients/setup-venv` makes (`target/pyenv`).
"""

import base64
import datetime
import hashlib
import json
import os
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import traceback

STORE_PASSWORD = "store-pw-4711"
USER = "kfclient"
USER_PASSWORD = "kf-client-password"
# Generous: the machine running CI is a loaded 2-core box.
WAIT_SECONDS = 60


class Checks:
    """Counts checks; a failed one is reported and the run goes on to the next client."""

    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, what, ok, detail=""):
        if ok:
            self.passed += 1
            print(f"ok   {what}")
        else:
            self.failed += 1
            print(f"FAIL {what} {detail}")
        return ok

    def require(self, what, ok, detail=""):
        if not self.check(what, ok, detail):
            raise AssertionError(f"{what}: {detail}")


def run(pfxkit, catalog, *args, stdin=None):
    env = dict(os.environ, PFXKIT_CATALOG=catalog)
    env.pop("PFXKIT_PRINCIPAL", None)
    out = subprocess.run(
        [pfxkit, *args], env=env, input=stdin, capture_output=True, text=True, timeout=120
    )
    if out.returncode != 0:
        raise RuntimeError(f"pfxkit {' '.join(args)} failed: {out.stderr}")
    return out.stdout


def wait_until(what, probe):
    """Polls `probe` (returning a truthy value when done) for at most WAIT_SECONDS."""
    deadline = time.time() + WAIT_SECONDS
    last = None
    while time.time() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


def job_time_in(seconds):
    t = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=seconds)
    return t.replace(microsecond=0)


# ---------------------------------------------------------------------------------------------
# keyfactor-v-1-client (PascalCase)


def deploy_is_recorded(c, name, stores, jobs_done, inventory, thumbprint):
    """After a Deploy to `stores`, through a client's own calls: its jobs end with their start
    and end times in the job history, and each store's inventory lists `thumbprint`."""
    done = wait_until("the deploy jobs", lambda: jobs_done(len(stores)))
    c.check(
        f"{name}: job history has OperationStart and OperationEnd",
        all(j.operation_start and j.operation_end >= j.operation_start for j in done),
    )
    for store in stores:
        r = inventory(store)
        if r.status_code != 200:
            raise AssertionError(f"inventory {store}: {r.status_code} {r.content[:300]}")
        found = {cert.thumbprint for entry in r.parsed for cert in entry.certificates}
        c.check(f"{name}: inventory of {store} lists the deployed certificate", thumbprint in found)


def replace_now_then_at_a_job_time(c, name, stores, jobs_done, first, second, renew, replace, scheduled):
    """The Replace part of both flows, through a client's own calls: replace `first` by `second`
    now, renew `second`, replace it at a JobTime four seconds ahead (listed as scheduled, run
    only then). Returns the third certificate's id and thumbprint."""
    r = replace(first, second, None)
    c.require(f"{name}: replace answers 200", r.status_code == 200, r.content[:300])
    c.check(
        f"{name}: replace schedules every store",
        sorted(r.parsed.successful_stores) == sorted(stores),
        r.content[:300],
    )
    wait_until("the replace jobs", lambda: jobs_done(2 * len(stores)))

    r = renew(second)
    c.require(f"{name}: second renew answers 200", r.status_code == 200, r.content[:300])
    third = r.parsed.keyfactor_id
    third_thumb = r.parsed.thumbprint
    when = job_time_in(4)
    r = replace(second, third, when)
    c.require(f"{name}: replace with a JobTime answers 200", r.status_code == 200, r.content[:300])
    s = scheduled()
    c.check(
        f"{name}: the future jobs are listed as scheduled",
        s.status_code == 200 and len(s.parsed or []) >= len(stores),
        s.content[:300],
    )
    wait_until("the scheduled replace jobs", lambda: jobs_done(3 * len(stores)))
    c.check(
        f"{name}: the scheduled jobs did not run before their JobTime",
        datetime.datetime.now(datetime.timezone.utc) >= when,
    )
    return third, third_thumb


def drive_v1(c, base, ctx, auth, stores, paths, subject):
    from keyfactor_v_1_client.client import AuthenticatedClient
    from keyfactor_v_1_client import models as m
    from keyfactor_v_1_client.api.enrollment import (
        enrollment_post_pfx_enroll,
        enrollment_install_pfx_to_cert_store,
        enrollment_renew,
        enrollment_add_to_existing_cert_stores,
    )
    from keyfactor_v_1_client.api.certificate import (
        certificate_get_certificate,
        certificate_get_certificate_locations,
        certificate_query_certificates,
        certificate_download_certificate_async,
    )
    from keyfactor_v_1_client.api.certificate_store import (
        certificate_store_get_certificate_store_inventory,
    )
    from keyfactor_v_1_client.api.orchestrator_job import (
        orchestrator_job_get_job_history,
        orchestrator_job_get_scheduled_jobs,
    )

    client = AuthenticatedClient(
        base_url=base, token=auth, prefix="Basic", verify_ssl=ctx, timeout=60.0
    )
    name = "v1"

    # Enroll, the caller choosing the PFX password.
    sans = m.ModelsEnrollmentPFXEnrollmentRequestSANs.from_dict({"dns": ["v1.example.test"]})
    r = enrollment_post_pfx_enroll.sync_detailed(
        client=client,
        json_body=m.ModelsEnrollmentPFXEnrollmentRequest(
            subject=subject,
            password="pfx-pw-v1",
            include_chain=True,
            certificate_authority="pfxkit\\CA",
            template="WebServer",
            timestamp=datetime.datetime.now(datetime.timezone.utc),
            sa_ns=sans,
        ),
    )
    c.require(f"{name}: enroll answers 200", r.status_code == 200, r.content[:300])
    info = r.parsed.certificate_information
    first = info.keyfactor_id
    c.require(f"{name}: enroll parses a KeyfactorId", isinstance(first, int), info)
    c.check(f"{name}: enroll Password is null when the caller chose it", info.password is None)
    c.check(
        f"{name}: enroll Thumbprint is upper-case hex",
        info.thumbprint == info.thumbprint.upper() and len(info.thumbprint) == 40,
        info.thumbprint,
    )
    pfx = base64.b64decode(info.pkcs_12_blob)
    c.check(
        f"{name}: the Pkcs12Blob opens with openssl and the chosen password",
        openssl_pkcs12_subjects(pfx, "pfx-pw-v1", keys=True) is not None,
    )

    # Deploy to every store (Stores with an alias each).
    store_reqs = [
        m.KeyfactorApiModelsEnrollmentManagementStoreRequest(
            store_id=s, alias="v1-web", overwrite=True
        )
        for s in stores
    ]
    r = enrollment_install_pfx_to_cert_store.sync_detailed(
        client=client,
        json_body=m.KeyfactorApiModelsEnrollmentEnrollmentManagementRequest(
            certificate_id=first, stores=store_reqs, password=STORE_PASSWORD
        ),
    )
    c.require(f"{name}: deploy answers 200", r.status_code == 200, r.content[:300])
    c.check(
        f"{name}: deploy succeeds for every store",
        sorted(r.parsed.successful_stores) == sorted(stores),
        r.content[:300],
    )

    def jobs_done(expect):
        h = orchestrator_job_get_job_history.sync_detailed(
            client=client, pq_return_limit=1000
        )
        if h.status_code != 200 or h.parsed is None:
            raise AssertionError(f"job history: {h.status_code} {h.content[:300]}")
        done = [
            j for j in h.parsed if j.status == 3 and j.result == 2 and j.store_path in paths
        ]
        return len(done) >= expect and done

    deploy_is_recorded(
        c,
        name,
        stores,
        jobs_done,
        lambda store: certificate_store_get_certificate_store_inventory.sync_detailed(store, client=client),
        info.thumbprint,
    )

    # Renew: a new certificate, not deployed.
    r = enrollment_renew.sync_detailed(
        client=client, json_body=m.ModelsEnrollmentRenewalRequest(certificate_id=first)
    )
    c.require(f"{name}: renew answers 200", r.status_code == 200, r.content[:300])
    second = r.parsed.keyfactor_id
    c.check(f"{name}: renew gives a new id", second != first, second)

    third, third_thumb = replace_now_then_at_a_job_time(
        c,
        name,
        stores,
        jobs_done,
        first,
        second,
        renew=lambda cid: enrollment_renew.sync_detailed(
            client=client, json_body=m.ModelsEnrollmentRenewalRequest(certificate_id=cid)
        ),
        replace=lambda old, new, when: enrollment_add_to_existing_cert_stores.sync_detailed(
            client=client,
            json_body=m.ModelsEnrollmentExistingEnrollmentManagementRequest(
                existing_certificate_id=old,
                certificate_id=new,
                password=STORE_PASSWORD,
                **({"job_time": when} if when else {}),
            ),
        ),
        scheduled=lambda: orchestrator_job_get_scheduled_jobs.sync_detailed(client=client),
    )

    # Locations: the newest certificate is in every store, the first in none.
    r = certificate_get_certificate_locations.sync_detailed(third, client=client)
    c.require(f"{name}: locations answer 200", r.status_code == 200, r.content[:300])
    located = [loc.store_id for group in r.parsed.details for loc in group.locations]
    c.check(
        f"{name}: locations list every store",
        sorted(located) == sorted(stores),
        r.content[:400],
    )
    r = certificate_get_certificate.sync_detailed(third, client=client, include_locations=True)
    c.require(f"{name}: certificate answers 200", r.status_code == 200, r.content[:300])
    c.check(
        f"{name}: includeLocations lists every store",
        sorted(loc.cert_store_id for loc in r.parsed.locations) == sorted(stores),
        r.content[:400],
    )
    c.check(f"{name}: the certificate's KeyType is ECC", r.parsed.key_type == 3, r.content[:400])
    r = certificate_get_certificate.sync_detailed(first, client=client, include_locations=True)
    c.check(
        f"{name}: the replaced certificate has no location left",
        r.status_code == 200 and not r.parsed.locations,
        r.content[:400],
    )
    r = certificate_query_certificates.sync_detailed(
        client=client, pq_query_string=f'Thumbprint -eq "{third_thumb}"'
    )
    c.check(
        f"{name}: a Thumbprint query finds the newest certificate",
        r.status_code == 200 and [x.id for x in r.parsed] == [third],
        r.content[:300],
    )
    r = certificate_download_certificate_async.sync_detailed(
        client=client,
        json_body=m.ModelsCertificateDownloadRequest(cert_id=third, include_chain=True),
    )
    c.require(f"{name}: download answers 200", r.status_code == 200, r.content[:300])
    pem = base64.b64decode(r.parsed.content).decode()
    c.check(f"{name}: download is PEM with the chain", pem.count("BEGIN CERTIFICATE") >= 2)
    return third_thumb, pem


# ---------------------------------------------------------------------------------------------
# keyfactor-command-sdk (camelCase)


def drive_v11(c, base, ctx, auth, store_files, subject):
    from command_v11_client.client import AuthenticatedClient
    from command_v11_client import models as m
    from command_v11_client.api.enrollment import (
        post_enrollment_pfx,
        post_enrollment_pfx_deploy,
        post_enrollment_renew,
        post_enrollment_pfx_replace,
    )
    from command_v11_client.api.certificate import (
        get_certificates_id,
        get_certificates_locations_id,
        get_certificates,
        post_certificates_download,
    )
    from command_v11_client.api.certificate_store import (
        post_certificate_stores,
        get_certificate_stores_id_inventory,
        get_certificate_stores,
    )
    from command_v11_client.api.certificate_store_type import get_certificate_store_types
    from command_v11_client.api.orchestrator_job import (
        get_orchestrator_jobs_job_history,
        get_orchestrator_jobs_scheduled_jobs,
    )

    client = AuthenticatedClient(
        base_url=base, token=auth, prefix="Basic", verify_ssl=ctx, timeout=60.0
    )
    name = "v11"

    # Find the store types by their Keyfactor short names, then register the stores.
    r = get_certificate_store_types.sync_detailed(client=client)
    c.require(f"{name}: store types answer 200", r.status_code == 200, r.content[:300])
    types = {t.short_name: t.store_type for t in r.parsed}
    c.check(
        f"{name}: store types include RFPkcs12 and RFJKS",
        "RFPkcs12" in types and "RFJKS" in types,
        types,
    )
    stores = []
    for path, short in store_files:
        body = m.CSSCMSDataModelModelsCertificateStoresCertificateStoreCreateRequest(
            client_machine="localhost",
            storepath=path,
            cert_store_type=types[short],
            properties={},
            password=m.CSSCMSDataModelModelsKeyfactorAPISecret(secret_value=STORE_PASSWORD),
        )
        r = post_certificate_stores.sync_detailed(client=client, json_body=body)
        c.require(f"{name}: registering {short} answers 200", r.status_code == 200, r.content[:300])
        stores.append(r.parsed.id)
    r = get_certificate_stores.sync_detailed(client=client)
    c.check(
        f"{name}: the store list has the new stores",
        r.status_code == 200 and set(stores) <= {s.id for s in r.parsed},
        r.content[:300],
    )

    r = post_enrollment_pfx.sync_detailed(
        client=client,
        json_body=m.CSSCMSDataModelModelsEnrollmentPFXEnrollmentRequest(
            subject=subject,
            password="pfx-pw-v11",
            include_chain=True,
            certificate_authority="pfxkit\\CA",
            template="WebServer",
            timestamp=datetime.datetime.now(datetime.timezone.utc),
            key_type="ECC",
            curve="P-256",
        ),
    )
    c.require(f"{name}: enroll answers 200", r.status_code == 200, r.content[:300])
    info = r.parsed.certificate_information
    first = info.keyfactor_id
    c.check(f"{name}: enroll Password is null when the caller chose it", info.password is None)
    pfx = base64.b64decode(info.pkcs_12_blob)
    c.check(
        f"{name}: the Pkcs12Blob opens with openssl and the chosen password",
        openssl_pkcs12_subjects(pfx, "pfx-pw-v11", keys=True) is not None,
    )
    # v11's enrollment answer has no thumbprint: the certificate has it.
    r = get_certificates_id.sync_detailed(first, client=client)
    c.require(f"{name}: certificate answers 200", r.status_code == 200, r.content[:300])
    c.check(
        f"{name}: the certificate parses with its key type (ECC)",
        r.parsed.key_type == 3 and r.parsed.issued_cn == "v11.example.test",
        r.content[:400],
    )
    first_thumb = r.parsed.thumbprint

    r = post_enrollment_pfx_deploy.sync_detailed(
        client=client,
        json_body=m.KeyfactorWebKeyfactorApiModelsEnrollmentEnrollmentManagementRequest(
            certificate_id=first, store_ids=stores, password=STORE_PASSWORD
        ),
    )
    c.require(f"{name}: deploy answers 200", r.status_code == 200, r.content[:300])
    c.check(
        f"{name}: deploy succeeds for every store",
        sorted(r.parsed.successful_stores) == sorted(stores),
        r.content[:300],
    )

    def jobs_done(expect):
        h = get_orchestrator_jobs_job_history.sync_detailed(client=client, return_limit=1000)
        if h.status_code != 200 or h.parsed is None:
            raise AssertionError(f"job history: {h.status_code} {h.content[:300]}")
        paths = {p for p, _ in store_files}
        done = [j for j in h.parsed if j.status == 3 and j.result == 2 and j.store_path in paths]
        if os.environ.get("KF_DEBUG"):
            print([(j.status, j.result, j.store_path, j.message) for j in h.parsed], paths)
        return len(done) >= expect and done

    deploy_is_recorded(
        c,
        name,
        stores,
        jobs_done,
        lambda store: get_certificate_stores_id_inventory.sync_detailed(store, client=client),
        first_thumb,
    )

    r = post_enrollment_renew.sync_detailed(
        client=client, json_body=m.CSSCMSDataModelModelsEnrollmentRenewalRequest(thumbprint=first_thumb)
    )
    c.require(f"{name}: renew by thumbprint answers 200", r.status_code == 200, r.content[:300])
    second = r.parsed.keyfactor_id

    third, third_thumb = replace_now_then_at_a_job_time(
        c,
        name,
        stores,
        jobs_done,
        first,
        second,
        renew=lambda cid: post_enrollment_renew.sync_detailed(
            client=client,
            json_body=m.CSSCMSDataModelModelsEnrollmentRenewalRequest(certificate_id=cid),
        ),
        replace=lambda old, new, when: post_enrollment_pfx_replace.sync_detailed(
            client=client,
            json_body=m.CSSCMSDataModelModelsEnrollmentExistingEnrollmentManagementRequest(
                existing_certificate_id=old,
                certificate_id=new,
                password=STORE_PASSWORD,
                **({"job_time": when} if when else {}),
            ),
        ),
        scheduled=lambda: get_orchestrator_jobs_scheduled_jobs.sync_detailed(client=client),
    )

    r = get_certificates_locations_id.sync_detailed(third, client=client)
    c.require(f"{name}: locations answer 200", r.status_code == 200, r.content[:300])
    counted = sum(group.store_count for group in r.parsed.details)
    c.check(f"{name}: locations count every store", counted == len(stores), r.content[:400])
    r = get_certificates_id.sync_detailed(third, client=client, include_locations=True)
    c.require(f"{name}: certificate answers 200", r.status_code == 200, r.content[:300])
    c.check(
        f"{name}: includeLocations lists every store",
        sorted(loc.store_path for loc in r.parsed.locations) == sorted(p for p, _ in store_files),
        r.content[:400],
    )
    r = get_certificates.sync_detailed(
        client=client, query_string=f'Thumbprint -eq "{third_thumb}"'
    )
    c.check(
        f"{name}: a Thumbprint query finds the newest certificate",
        r.status_code == 200 and [x.id for x in r.parsed] == [third],
        r.content[:300],
    )
    r = post_certificates_download.sync_detailed(
        client=client,
        json_body=m.KeyfactorWebKeyfactorApiModelsCertificatesCertificateDownloadRequest(
            cert_id=third, include_chain=False
        ),
    )
    c.require(f"{name}: download answers 200", r.status_code == 200, r.content[:300])
    pem = base64.b64decode(r.parsed.content).decode()
    c.check(f"{name}: download is one PEM certificate", pem.count("BEGIN CERTIFICATE") == 1)
    return stores, third_thumb, pem


# ---------------------------------------------------------------------------------------------
# The store files, read by the reference tools.


def openssl_pkcs12_subjects(data, password, keys=False):
    """The PEM text `openssl pkcs12` prints for a PKCS#12 (or None when it cannot read it)."""
    with tempfile.NamedTemporaryFile(suffix=".p12") as f:
        f.write(data)
        f.flush()
        args = ["openssl", "pkcs12", "-in", f.name, "-passin", f"pass:{password}"]
        args += ["-nodes"] if keys else ["-nokeys"]
        out = subprocess.run(args, capture_output=True, text=True)
        return out.stdout if out.returncode == 0 else None


def first_der(pem):
    """The DER of the first certificate of a PEM text (the leaf of a chain)."""
    end = "-----END CERTIFICATE-----"
    start = pem.index("-----BEGIN CERTIFICATE-----")
    return ssl.PEM_cert_to_DER_cert(pem[start : pem.index(end, start) + len(end)] + "\n")


def sha256_fingerprint(pem):
    return hashlib.sha256(first_der(pem)).hexdigest().upper()


def sha1_of(pem):
    return hashlib.sha1(first_der(pem)).hexdigest().upper()


def check_files(c, name, p12, jks, pem):
    with open(p12, "rb") as f:
        text = openssl_pkcs12_subjects(f.read(), STORE_PASSWORD, keys=True)
    c.check(f"{name}: openssl pkcs12 reads {os.path.basename(p12)}", text is not None)
    if text is not None:
        c.check(f"{name}: the PKCS#12 store holds a private key", "PRIVATE KEY" in text)
        certs = [
            "-----BEGIN CERTIFICATE-----" + part.split("-----END CERTIFICATE-----")[0]
            + "-----END CERTIFICATE-----\n"
            for part in text.split("-----BEGIN CERTIFICATE-----")[1:]
        ]
        c.check(
            f"{name}: the PKCS#12 store holds the newest certificate",
            sha1_of(pem) in {sha1_of(x) for x in certs},
        )
    out = subprocess.run(
        ["keytool", "-list", "-keystore", jks, "-storepass", STORE_PASSWORD, "-storetype", "JKS"],
        capture_output=True,
        text=True,
    )
    c.check(f"{name}: keytool -list reads {os.path.basename(jks)}", out.returncode == 0, out.stderr)
    fp = sha256_fingerprint(pem)
    pretty = ":".join(fp[i : i + 2] for i in range(0, len(fp), 2))
    c.check(
        f"{name}: the JKS store holds the newest certificate as a PrivateKeyEntry",
        pretty in out.stdout and "PrivateKeyEntry" in out.stdout,
        out.stdout,
    )


# ---------------------------------------------------------------------------------------------


def setup_catalog(pfxkit, work):
    """A catalog in `work` with a CA and the user; returns (catalog, CA chain PEM file)."""
    catalog = os.path.join(work, "catalog")
    run(pfxkit, catalog, "catalog", "init")
    run(pfxkit, catalog, "ca", "init", "--subject", "CN=Client Test CA")
    run(pfxkit, catalog, "users", "add", USER, "--password", f"pass:{USER_PASSWORD}")
    # Exactly what the flows need: enroll/renew, schedule jobs and read, register stores.
    for perm in ["enroll", "modify", "admin"]:
        run(pfxkit, catalog, "grant", "--principal", USER, "--global", "--permission", perm)
    ca_file = os.path.join(work, "ca.pem")
    run(pfxkit, catalog, "ca", "export", "--out", ca_file)
    return catalog, ca_file


def start_serve(pfxkit, catalog, work, *extra):
    """`pfxkit serve --tls-from-ca` on a free port; returns (process, API base URL)."""
    env = dict(os.environ, PFXKIT_CATALOG=catalog)
    env.pop("PFXKIT_PRINCIPAL", None)
    server = subprocess.Popen(
        [pfxkit, "serve", "--listen", "127.0.0.1:0", "--tls-from-ca", *extra],
        env=env,
        stdout=subprocess.PIPE,
        stderr=open(os.path.join(work, "serve.log"), "w"),
        text=True,
    )
    line = server.stdout.readline().strip()
    if not line.startswith("listening on "):
        server.kill()
        raise RuntimeError(f"pfxkit serve said {line!r}")
    base = line[len("listening on ") :]
    print(f"serving at {base}")
    return server, base


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    pfxkit = os.path.abspath(sys.argv[1])
    c = Checks()
    with tempfile.TemporaryDirectory(prefix="pfxkit-kfclients-") as work:
        catalog, ca_file = setup_catalog(pfxkit, work)
        server, base = start_serve(pfxkit, catalog, work)
        try:
            ctx = ssl.create_default_context(cafile=ca_file)
            auth = base64.b64encode(f"{USER}:{USER_PASSWORD}".encode()).decode()

            # v1 has no call registering a store: the CLI registers them.
            v1_files = (os.path.join(work, "v1.p12"), os.path.join(work, "v1.jks"))
            v1_stores = []
            for path, kind in zip(v1_files, ["pkcs12", "jks"]):
                out = run(
                    pfxkit, catalog, "stores", "add", "--type", kind, "--path", path,
                    "--store-password", f"pass:{STORE_PASSWORD}", "--json",
                )
                v1_stores.append(json.loads(out)["Id"])
            v11_files = (os.path.join(work, "v11.p12"), os.path.join(work, "v11.jks"))

            results = {}
            try:
                results["v1"] = drive_v1(
                    c, base, ctx, auth, v1_stores, v1_files, "CN=v1.example.test,O=pfxkit"
                )
            except Exception:  # noqa: BLE001 - reported, then the other client runs
                c.check("v1: the flow ran to its end", False, traceback.format_exc())
            try:
                _, _, pem = drive_v11(
                    c,
                    base,
                    ctx,
                    auth,
                    [(v11_files[0], "RFPkcs12"), (v11_files[1], "RFJKS")],
                    "CN=v11.example.test,O=pfxkit",
                )
                results["v11"] = (None, pem)
            except Exception:  # noqa: BLE001
                c.check("v11: the flow ran to its end", False, traceback.format_exc())
        finally:
            server.send_signal(signal.SIGTERM)
            try:
                code = server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.kill()
                code = None
            c.check("pfxkit serve stops with exit 0 on SIGTERM", code == 0, code)
        for name, files in [("v1", v1_files), ("v11", v11_files)]:
            if name in results:
                check_files(c, name, files[0], files[1], results[name][1])
        if c.failed:
            with open(os.path.join(work, "serve.log")) as f:
                print("--- server log (tail) ---")
                print("".join(f.readlines()[-40:]))
    print(f"{c.passed} passed, {c.failed} failed")
    return 1 if c.failed else 0


if __name__ == "__main__":
    sys.exit(main())
