"""The black-box smoke test of `sam local start-api` (infra/sam_local.py smoke):
the same requests to `sam local start-api` (the template's routes, payload 2.0,
the x86_64 artifacts under the Runtime Interface Emulator) and to `billing-dev
serve` (what `make dev` runs), each on its own table seeded with the same data,
must get the same answers: status, error code and body, once the values that
differ by nature (error ids, times, cursors) are masked.
"""

import json
import os
import re
import subprocess
import time
import urllib.error
import urllib.request

PREFIX = "/api/billing/v1/admin"
ACME = "c0000000-0000-4000-8000-000000000000"
GLOBEX = "c0000000-0000-4000-8000-000000000001"
NEW_USER = "0b5e7f3a-1c2d-4e5f-8a9b-0c1d2e3f4a5b"
NO_CUSTOMER = "0d0d0d0d-0d0d-4d0d-8d0d-0d0d0d0d0d0d"
# Values that differ between two runs by nature.
VOLATILE_KEYS = {"errorId", "error_id", "requestId", "next", "cursor", "nextCursor"}
TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d")


def requests_to_send(admin, user):
    """(name, method, path, headers, body, expected status)."""
    auth = {"authorization": f"Bearer {admin}"}
    json_auth = dict(auth, **{"content-type": "application/json"})
    return [
        ("list", "GET", f"{PREFIX}/customers?page=1&limit=5&status=active", auth, None, 200),
        ("get", "GET", f"{PREFIX}/customer/{ACME}", auth, None, 200),
        ("add member", "POST", f"{PREFIX}/customer/{ACME}/member", json_auth,
         json.dumps({"userID": NEW_USER, "role": "user"}), 201),
        ("change role", "PATCH", f"{PREFIX}/customer/{ACME}/member/{NEW_USER}", json_auth,
         json.dumps({"role": "admin"}), 200),
        ("remove member", "DELETE", f"{PREFIX}/customer/{ACME}/member/{NEW_USER}", auth, None, 204),
        ("delete", "DELETE", f"{PREFIX}/customer/{GLOBEX}", auth, None, 204),
        ("401 no credentials", "GET", f"{PREFIX}/customers?page=1&limit=5", {}, None, 401),
        ("403 not billing_admin", "GET", f"{PREFIX}/customers?page=1&limit=5",
         {"authorization": f"Bearer {user}"}, None, 403),
        ("404 no such customer", "GET", f"{PREFIX}/customer/{NO_CUSTOMER}", auth, None, 404),
        ("$default: unknown path", "GET", f"{PREFIX}/nothing-here", auth, None, 404),
        ("$default: wrong method", "PUT", f"{PREFIX}/customers", auth, None, 405),
    ]


def send(base, method, path, headers, body):
    request = urllib.request.Request(base + path, method=method, headers=headers,
                                     data=body.encode() if body is not None else None)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def masked(value, key=None):
    if key in VOLATILE_KEYS:
        return "<volatile>"
    if isinstance(value, dict):
        return {k: masked(v, k) for k, v in sorted(value.items())}
    if isinstance(value, list):
        return [masked(v) for v in value]
    if isinstance(value, str) and TIME.match(value):
        return "<time>"
    return value


def parsed(body):
    try:
        return masked(json.loads(body)) if body else None
    except json.JSONDecodeError:
        return body


def run(stack, env, start_api, token, free_port, wait_for_port):
    """Returns 0 when every request got its expected status through both and the
    same answer from both."""
    cli = os.path.join(os.environ.get("CARGO_TARGET_DIR", "target"), "debug", "billing-dev")
    # A second table with the same data for billing-dev serve.
    dev_env = dict(env, TABLE_NAME="billing-local-serve")
    for argv in (["create-table"], ["seed", "--demo"], ["seed", "--file", "infra/sam-local-fixtures.json"]):
        subprocess.run([cli, *argv], env=dev_env, check=True, timeout=300, stdout=subprocess.DEVNULL)
    serve_port, api_port = free_port(), free_port()
    stack.start("billing-dev-serve", [cli, "serve", "--port", str(serve_port)], serve_port,
                        env=dev_env)
    api = start_api(api_port)
    stack.procs.append(("sam-local-start-api", api))
    wait_for_port(api_port, "sam local start-api", api, timeout=120)
    admin, user = token(), token(roles=("user",))
    failures = 0
    print(f"{'request':26} {'start-api':>9} {'serve':>6}  result")
    for name, method, path, headers, body, status in requests_to_send(admin, user):
        started = time.monotonic()
        got_api = send(f"http://127.0.0.1:{api_port}", method, path, headers, body)
        got_serve = send(f"http://127.0.0.1:{serve_port}", method, path, headers, body)
        problems = []
        if got_api[0] != status:
            problems.append(f"start-api answered {got_api[0]}, expected {status}: {got_api[1][:300]}")
        if (got_api[0], parsed(got_api[1])) != (got_serve[0], parsed(got_serve[1])):
            problems.append(f"answers differ:\n  start-api {got_api[0]} {got_api[1][:600]}\n"
                            f"  serve     {got_serve[0]} {got_serve[1][:600]}")
        print(f"{name:26} {got_api[0]:>9} {got_serve[0]:>6}  "
              f"{'; '.join(problems) or 'same'} ({time.monotonic() - started:.1f} s)", flush=True)
        failures += bool(problems)
    if failures:
        print(f"sam_local smoke: {failures} request(s) failed")
        return 1
    print("sam_local smoke: sam local start-api and billing-dev serve gave the same answers")
    return 0
