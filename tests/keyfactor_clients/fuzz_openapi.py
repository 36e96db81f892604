#!/usr/bin/env python3
"""schemathesis against a real `pfxkit serve`, driven by the server's own `openapi.json`.

Checks: no 5xx for any generated request (`not_a_server_error`) and no response that
contradicts the document (`response_schema_conformance`, `status_code_conformance`,
`content_type_conformance`). Authenticated (Basic, a user with every permission, so requests
reach the handlers rather than stopping at 403), over TLS trusting only the catalog's CA.
Bounded: a few examples per operation and a time budget, so it fits in CI. The agents'
endpoints (`/Agent/...`, mutual TLS with an agent's certificate) are documented but not fuzzed
here.

Usage: fuzz_openapi.py PFXKIT_BINARY [MAX_EXAMPLES]
"""

import os
import signal
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_clients import USER, USER_PASSWORD, run, setup_catalog, start_serve  # noqa: E402

CHECKS = ",".join(
    [
        "not_a_server_error",
        "response_schema_conformance",
        "status_code_conformance",
        "content_type_conformance",
    ]
)


def main():
    if len(sys.argv) not in (2, 3):
        print(__doc__)
        return 2
    pfxkit = os.path.abspath(sys.argv[1])
    examples = sys.argv[2] if len(sys.argv) == 3 else "20"
    schemathesis = os.path.join(os.path.dirname(sys.executable), "schemathesis")
    with tempfile.TemporaryDirectory(prefix="pfxkit-fuzz-") as work:
        catalog, ca_file = setup_catalog(pfxkit, work)
        for perm in ["recover"]:
            run(pfxkit, catalog, "grant", "--principal", USER, "--global", "--permission", perm)
        # Something for the generated requests to find: a store and a certificate.
        run(
            pfxkit, catalog, "stores", "add", "--type", "pkcs12",
            "--path", os.path.join(work, "fuzz.p12"), "--store-password", "pass:fuzz-store",
        )
        # No runner: generated requests may register stores at any path and schedule jobs on
        # them; none may run and write a file outside this temporary directory.
        server, base = start_serve(pfxkit, catalog, work, "--no-runner")
        try:
            cmd = [
                schemathesis, "run", f"{base}/openapi.json",
                "--url", base,
                "--auth", f"{USER}:{USER_PASSWORD}",
                "-H", "X-Keyfactor-Requested-With: APIClient",
                "--tls-verify", ca_file,
                "--checks", CHECKS,
                # The agents' endpoints authenticate by the client certificate an agent gets
                # at registration (mutual TLS), which this run has none of: every request would
                # stop at the 401. They are covered by crates/pfxkit-cli/tests/agents.rs.
                "--exclude-path-regex", "/Agent/",
                "--max-examples", examples,
                "--max-time", "150",
                "--phases", "examples,coverage,fuzzing",
                "--seed", "16",
                "--workers", "2",
                "--request-timeout", "60",
                "--suppress-health-check", "all",
                "--report", "junit",
                "--report-dir", os.path.join(work, "report"),
            ]
            print(" ".join(c if " " not in c else repr(c) for c in cmd), flush=True)
            code = subprocess.run(cmd, timeout=240).returncode
        finally:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.kill()
        if code != 0:
            with open(os.path.join(work, "serve.log")) as f:
                errors = [l for l in f if "internal error" in l or "ERROR" in l]
            print("--- server errors ---")
            print("".join(errors[-40:]))
    return code


if __name__ == "__main__":
    sys.exit(main())
