"""`sam local` on the functions' x86_64 artifacts (infra/build.sh --arch x86_64),
against the local stack, as `make dev` starts it (docs/local-lambda.md).

    invoke FN [EVENT]   sam local invoke FN's function with EVENT (default
                        events/FN.json); prints its answer
    invoke-all          every file of events/ through sam local invoke, in an
                        order where each finds the data it needs; checks each answer
    start-api [PORT]    sam local start-api on 127.0.0.1:PORT (default $PORT or
                        3000) until Ctrl-C
    smoke               sam local start-api and `billing-dev serve` side by side on
                        the same data: the same requests must get the same answers
    figures             per function: a cold and a warm invocation of its event under
                        `sam local start-lambda` (warm containers), with the emulator's
                        REPORT figures (Init Duration, Duration) and the wall time
    watch               the Docker-free path: `cargo lambda watch` runs get-customer
                        on the host and `cargo lambda invoke --data-file` sends it
                        events/get-customer.json; the answer must be a 200 with the
                        sample customer

The local stack (each server on 127.0.0.1 only, stopped by its PID at the end):
DynamoDB Local, localstripe and moto (Secrets Manager holding the dev JWT public
key, the Stripe key and the webhook secret; EventBridge's bus), the table created
and seeded with the demo data plus the customer the events/ samples name
(infra/sam-local-fixtures.json). Ports: DYNAMODB_PORT, STRIPE_PORT, MOTO_PORT, else
free ones. The functions' environment is a generated env-vars file
(.aws-sam/local/env-vars.json); a `Bearer REPLACED_BY_TEST` placeholder gets a fresh
dev token, the webhook's placeholder a Stripe-Signature made now.

Run by infra/with-docker.sh (a Docker daemon and LAMBDA_BASE_IMAGE) with
.local/sam-venv's Python; billing-dev from target/debug (cargo build).
"""

import hashlib
import hmac
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import urllib.parse
import urllib.request
import time

import boto3
import botocore.config
from samcli.yamlhelper import yaml_dump, yaml_parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sam_local_net import Bridge  # noqa: E402 (next to this file)
from template_expand import expand  # noqa: E402 (next to this file)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(ROOT, ".aws-sam", "build-x86_64")
LOCAL = os.path.join(ROOT, ".aws-sam", "local")
SAM = os.path.join(ROOT, ".local", "sam-venv", "bin", "sam")
CLI = os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "debug", "billing-dev")
REGION = "us-east-1"
ADMIN = "5f35d2c4-5633-4b16-bbf0-5ca22ef8ea2e"
ISSUER = "https://auth.billing.local"
AUDIENCE = "billing-admin-api"
WEBHOOK_SECRET = "whsec_billing_dev"
STRIPE_KEY = "sk_test_local"
BUS = "billing-local-events"
PLACEHOLDER = "REPLACED_BY_TEST"
# localstripe's base URL, once bring_up has started it.
STRIPE_BASE = None
# Variables the local template adds to every function (never in template.yaml):
# where the AWS SDK clients find DynamoDB Local and moto.
LOCAL_ONLY = ("AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL_SECRETS_MANAGER", "AWS_ENDPOINT_URL_EVENTBRIDGE")

# Variables whose local value differs per function (sam local's env-vars file
# takes them by logical id): the source of each platform hook's events/ sample.
FUNCTION_SETTINGS = {
    "UserDeletedFunction": {"PLATFORM_EVENT_SOURCE": "platform.users"},
    "PlatformCustomerFunction": {"PLATFORM_EVENT_SOURCE": "platform.customers"},
}

# Marks the point of EXPECTED where the table is created and seeded afresh.
RESEED = ("", "reseed")

# invoke-all: each events/ file in an order where each finds what it needs (the
# reads before the writes, the customer's deletion last), with the answer it
# must give: (status, error code) for API events, None for the others (success:
# no function error, and no failed batch item). An API read's event (a GET
# route's) that is not named here runs with the reads and must answer 200.
EXPECTED = [
    ("list-customers", (200, None)),
    ("get-customer", (200, None)),
    ("list-members", (200, None)),
    ("get-user-customer", (200, None)),
    ("list-audit", (200, None)),
    ("add-member", (201, None)),
    ("change-member-role", (200, None)),
    ("remove-member", (204, None)),
    ("route-not-found", (405, "method_not_allowed")),
    ("console", (200, None)),
    ("stripe-webhook", (200, None)),
    ("user-deleted", None),
    ("cleanup-stream", None),
    ("deletion-monitor", None),
    ("reconcile", None),
    ("delete-customer", (204, None)),
    # On freshly seeded data: the platform's new customer is owned by the user
    # events/add-member.json adds (a user belongs to one customer).
    RESEED,
    ("platform-customer-created", None),
    ("platform-customer-updated", None),
]


def log(msg):
    print(f"sam_local: {msg}", file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port, name, proc, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise SystemExit(f"sam_local: {name} exited ({proc.returncode})")
        with socket.socket() as s:
            s.settimeout(1)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise SystemExit(f"sam_local: {name} did not listen on 127.0.0.1:{port} within {timeout} s")


def logical_id(function):
    return "".join(part.capitalize() for part in function.split("-")) + "Function"


class Stack:
    """The local servers, started in order and stopped by PID in reverse."""

    def __init__(self):
        self.procs = []
        self.bridge = None
        os.makedirs(os.path.join(ROOT, "target"), exist_ok=True)

    def start(self, name, argv, port, env=None):
        out = open(os.path.join(ROOT, "target", f"sam-local-{name}.log"), "wb")
        proc = subprocess.Popen(argv, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)
        self.procs.append((name, proc))
        if port is not None:
            wait_for_port(port, name, proc)
        return proc

    def stop(self):
        if self.bridge is not None:
            self.bridge.close()
            self.bridge = None
        for name, proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=5)
        self.procs.clear()


def port_from_env(name):
    value = os.environ.get(name)
    return int(value) if value else free_port()


def bring_up(stack, docker=True):
    """Starts the servers, creates and seeds the table, writes the env-vars file
    and the local template; returns (settings, parameter overrides)."""
    ddb, stripe, moto = (port_from_env(n) for n in ("DYNAMODB_PORT", "STRIPE_PORT", "MOTO_PORT"))
    stack.start("dynamodb-local", ["infra/run-dynamodb-local.sh", str(ddb)], ddb)
    stack.start("localstripe", ["infra/run-localstripe.sh", str(stripe)], stripe)
    stack.start("moto", ["infra/run-moto.sh", str(moto)], moto)
    table = "billing-local"
    env = dict(os.environ, TABLE_NAME=table, AWS_REGION=REGION,
               AWS_ENDPOINT_URL_DYNAMODB=f"http://127.0.0.1:{ddb}",
               STRIPE_API_BASE=f"http://127.0.0.1:{stripe}", STRIPE_SECRET_KEY=STRIPE_KEY,
               STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET)
    for var in ("JWT_JWKS_URL", "JWT_PUBLIC_KEY_SECRET_ID", "STRIPE_SECRET_KEY_SECRET_ID"):
        env.pop(var, None)
    seed(env)

    # The functions' containers reach the three on their own 127.0.0.1 (sam_local_net).
    if docker:
        stack.bridge = Bridge([ddb, stripe, moto])
    global STRIPE_BASE
    STRIPE_BASE = f"http://127.0.0.1:{stripe}"
    moto_url = f"http://127.0.0.1:{moto}"
    aws = dict(region_name=REGION, endpoint_url=moto_url, aws_access_key_id="local",
               aws_secret_access_key="local")
    sm = boto3.client("secretsmanager", **aws)
    with open(os.path.join(ROOT, "infra", "dev-keys", "jwt-ed25519.pub.pem"), encoding="utf-8") as f:
        public_key = f.read()
    arns = {name: sm.create_secret(Name=f"billing-local/{name}", SecretString=value)["ARN"]
            for name, value in (("jwt-public-key", public_key), ("stripe-secret-key", STRIPE_KEY),
                                ("stripe-webhook-secret", WEBHOOK_SECRET),
                                ("cursor-key", secrets.token_urlsafe(36)))}
    boto3.client("events", **aws).create_event_bus(Name=BUS)

    settings = {
        "TABLE_NAME": table,
        "JWT_ISSUER": ISSUER,
        "JWT_AUDIENCE": AUDIENCE,
        "JWT_PUBLIC_KEY_SECRET_ID": arns["jwt-public-key"],
        "JWT_JWKS_URL": "",
        "JWT_ALGORITHMS": "",
        "JWT_ROLES_CLAIM": "roles",
        "JWT_MAX_AGE_SECONDS": "",
        "JWT_ACCEPT_ID_TOKENS": "",
        "API_KEY_MAX_DAYS": "90",
        "CURSOR_KEY_SECRET_ID": arns["cursor-key"],
        "STACK_NAME": "billing-local",
        # The events/ samples' account (the source differs per hook: FUNCTION_SETTINGS).
        "PLATFORM_ACCOUNT_ID": "123456789012",
        "STRIPE_SECRET_KEY_SECRET_ID": arns["stripe-secret-key"],
        "STRIPE_WEBHOOK_SECRET_SECRET_ID": arns["stripe-webhook-secret"],
        "STRIPE_API_BASE": f"http://127.0.0.1:{stripe}",
        "EVENT_BUS_NAME": BUS,
        "CASCADE_GRACE_SECONDS": "30",
        "RECONCILE_REPAIR": "false",
        "CONSOLE_OIDC_ISSUER": ISSUER,
        "CONSOLE_OIDC_CLIENT_ID": "",
        "CONSOLE_TIERS": "free,pro,enterprise",
        "AWS_ENDPOINT_URL_DYNAMODB": f"http://127.0.0.1:{ddb}",
        "AWS_ENDPOINT_URL_SECRETS_MANAGER": f"http://127.0.0.1:{moto}",
        "AWS_ENDPOINT_URL_EVENTBRIDGE": f"http://127.0.0.1:{moto}",
    }
    overrides = {
        "JwtIssuer": ISSUER,
        "JwtAudience": AUDIENCE,
        "JwtPublicKeySecretArn": arns["jwt-public-key"],
        "StripeSecretKeySecretArn": arns["stripe-secret-key"],
        "StripeWebhookSecretArn": arns["stripe-webhook-secret"],
        "StripeApiBase": settings["STRIPE_API_BASE"],
        "EventBusName": BUS,
        "PlatformAccountId": settings["PLATFORM_ACCOUNT_ID"],
        "PlatformUserEventSource": FUNCTION_SETTINGS["UserDeletedFunction"]["PLATFORM_EVENT_SOURCE"],
        "PlatformCustomerEventSource": FUNCTION_SETTINGS["PlatformCustomerFunction"]["PLATFORM_EVENT_SOURCE"],
    }
    if docker:
        write_local_files(settings)
    else:
        os.makedirs(LOCAL, exist_ok=True)
    return settings, overrides, env


def seed(env, fresh=False):
    """Creates the table (dropping it first when `fresh`) and seeds the demo data
    and the customer of the events/ samples."""
    if fresh:
        boto3.client("dynamodb", region_name=REGION, endpoint_url=env["AWS_ENDPOINT_URL_DYNAMODB"],
                     aws_access_key_id="local", aws_secret_access_key="local") \
            .delete_table(TableName=env["TABLE_NAME"])
    for argv in (["create-table"], ["seed", "--demo"],
                 ["seed", "--file", "infra/sam-local-fixtures.json"]):
        subprocess.run([CLI, *argv], cwd=ROOT, env=env, check=True, timeout=300,
                       stdout=subprocess.DEVNULL)


def write_local_files(settings):
    """The env-vars file, and the built template with the LOCAL_ONLY variables
    added to its Globals (sam local passes a function only the variables its
    template declares)."""
    os.makedirs(LOCAL, exist_ok=True)
    template_path = os.path.join(BUILD, "template.yaml")
    if not os.path.exists(template_path):
        raise SystemExit("sam_local: no .aws-sam/build-x86_64: run infra/build.sh --arch x86_64 first")
    # Its Fn::ForEach loops (the log groups and alarms) expanded, so that every
    # resource is read here and sam local needs no language extensions.
    with open(template_path, encoding="utf-8") as f:
        template = expand(yaml_parse(f.read()))
    variables = template.setdefault("Globals", {}).setdefault("Function", {}) \
        .setdefault("Environment", {}).setdefault("Variables", {})
    for name in LOCAL_ONLY:
        variables[name] = ""
    declared = set(LOCAL_ONLY)
    for resource in template["Resources"].values():
        if resource.get("Type") == "AWS::Serverless::Function":
            declared |= set(resource["Properties"].get("Environment", {}).get("Variables", {}))
    declared |= set(variables)
    per_function = {name for values in FUNCTION_SETTINGS.values() for name in values}
    missing = sorted(declared - set(settings) - per_function)
    if missing:
        raise SystemExit(f"sam_local: no local value for {missing}: add them to infra/sam_local.py")
    # CodeUri stays relative to the build directory: the file goes next to it.
    with open(os.path.join(BUILD, "template.local.yaml"), "w", encoding="utf-8") as f:
        f.write(yaml_dump(template))
    with open(os.path.join(LOCAL, "env-vars.json"), "w", encoding="utf-8") as f:
        json.dump({"Parameters": settings, **FUNCTION_SETTINGS}, f, indent=2)
    os.chmod(os.path.join(LOCAL, "env-vars.json"), 0o600)


def token(roles=("billing_admin",), sub=ADMIN):
    argv = [CLI, "token", "--sub", sub]
    for role in roles:
        argv += ["--role", role]
    return subprocess.run(argv, cwd=ROOT, check=True, capture_output=True, text=True,
                          timeout=30).stdout.strip()


def stripe_signature(body):
    """Stripe's header for `body`, signed now with the dev webhook secret."""
    now = int(time.time())
    mac = hmac.new(WEBHOOK_SECRET.encode(), f"{now}.{body}".encode(), hashlib.sha256).hexdigest()
    return f"t={now},v1={mac}"


def stripe_customer(name):
    """The id of a new customer in localstripe."""
    request = urllib.request.Request(
        f"{STRIPE_BASE}/v1/customers", data=urllib.parse.urlencode({"name": name}).encode(),
        headers={"Authorization": f"Bearer {STRIPE_KEY}"}, method="POST")
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.load(answer)["id"]


def prepared_event(path):
    """The event with its placeholders filled in, as a file under .aws-sam/local.
    A platform event naming a Stripe customer names one that exists in localstripe
    (Stripe chooses customer ids: the sample's cannot be created as is)."""
    with open(path, encoding="utf-8") as f:
        event = json.load(f)
    detail = event.get("detail") if isinstance(event.get("detail"), dict) else {}
    if detail.get("stripeCustomerID") and STRIPE_BASE:
        detail["stripeCustomerID"] = stripe_customer(detail.get("name") or "platform customer")
    headers = event.get("headers") or {}
    if headers.get("stripe-signature") == PLACEHOLDER:
        headers["stripe-signature"] = stripe_signature(event.get("body") or "")
    if headers.get("authorization") == f"Bearer {PLACEHOLDER}":
        headers["authorization"] = f"Bearer {token()}"
    out = os.path.join(LOCAL, "event-" + os.path.basename(path))
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(event, f)
    return out


def sam_common(overrides):
    return ["--template", os.path.join(BUILD, "template.local.yaml"),
            "--env-vars", os.path.join(LOCAL, "env-vars.json"),
            "--parameter-overrides", " ".join(f"{k}={v}" for k, v in overrides.items()),
            "--invoke-image", os.environ["LAMBDA_BASE_IMAGE"], "--skip-pull-image",
            "--region", REGION]


def sam_env():
    return dict(os.environ, SAM_CLI_TELEMETRY="0", SAM_CLI_ENABLE_LANGUAGE_EXTENSIONS="1", AWS_REGION=REGION, AWS_DEFAULT_REGION=REGION,
                AWS_ACCESS_KEY_ID="local", AWS_SECRET_ACCESS_KEY="local")


REPORT = re.compile(r"REPORT RequestId: \S+\s+(?:Init Duration: ([\d.]+) ms\s+)?Duration: ([\d.]+) ms")


def invoke(function, event_path, overrides):
    """sam local invoke: (answer JSON or None, stdout, stderr, init ms, duration ms)."""
    event = prepared_event(event_path)
    proc = subprocess.run([SAM, "local", "invoke", logical_id(function), "--event", event,
                           *sam_common(overrides)],
                          cwd=ROOT, env=sam_env(), capture_output=True, text=True, timeout=300)
    os.unlink(event)
    try:
        answer = json.loads(proc.stdout.strip().splitlines()[-1]) if proc.stdout.strip() else None
    except json.JSONDecodeError:
        answer = None
    init = duration = None
    m = REPORT.search(proc.stderr)
    if m:
        init = float(m.group(1)) if m.group(1) else None
        duration = float(m.group(2))
    return proc, answer, init, duration


def check(function, expected, proc, answer, duration):
    """None when the answer is the expected one, else what is wrong."""
    if proc.returncode != 0:
        return f"sam local invoke exited {proc.returncode}"
    # The emulator reports a failed start or invocation only in its log.
    failed = re.search(r"\(rapid\) (Init|Invoke) failed.*", proc.stderr)
    if failed:
        return f"the emulator reports: {failed.group(0)[:300]}"
    # The emulator can stop before it writes REPORT for an invocation whose
    # answer it already returned (seen under load): an answer is the proof then.
    if duration is None and answer is None:
        return "no REPORT line and no answer: the function did not finish its invocation"
    if not isinstance(answer, dict) and answer is not None:
        return f"answer is not a JSON object: {answer!r}"
    if answer and "errorType" in answer:
        return f"function error {answer.get('errorType')}: {answer.get('errorMessage')}"
    if expected is None:
        if answer and answer.get("batchItemFailures"):
            return f"failed batch items: {answer['batchItemFailures']}"
        return None
    status, code = expected
    if not answer or answer.get("statusCode") != status:
        return f"status {answer and answer.get('statusCode')}, expected {status}"
    if code is not None:
        body = json.loads(answer.get("body") or "{}")
        got = body.get("error", {}).get("code") if isinstance(body.get("error"), dict) else body.get("code")
        if got != code:
            return f"error code {got!r}, expected {code!r} (body {answer.get('body')})"
    return None


def cmd_invoke(args, overrides):
    function = args[0]
    event = args[1] if len(args) > 1 and args[1] else os.path.join("events", f"{function}.json")
    if not os.path.exists(os.path.join(ROOT, event)):
        choices = sorted(f for f in os.listdir(os.path.join(ROOT, "events")) if f.startswith(function))
        log(f"no {event}: give EVENT=events/<file>.json ({', '.join(choices) or 'see events/'})")
        return 2
    proc, answer, init, duration = invoke(function, os.path.join(ROOT, event), overrides)
    sys.stderr.write(proc.stderr)
    print(json.dumps(answer, indent=2) if answer is not None else proc.stdout)
    if init is not None:
        log(f"{function}: Init Duration {init:.1f} ms, Duration {duration:.1f} ms")
    return proc.returncode


def plan():
    """EXPECTED, with every events/ file it does not name that is an API read
    (a `GET` route's event: answered 200) run with the reads, before the first
    write; any other unnamed file is an error (None: it needs its place)."""
    files = sorted(f[:-5] for f in os.listdir(os.path.join(ROOT, "events")) if f.endswith(".json"))
    named = {name for name, _ in EXPECTED if (name, _) != RESEED}
    reads = []
    for name in files:
        if name in named:
            continue
        with open(os.path.join(ROOT, "events", f"{name}.json")) as f:
            route = json.load(f).get("routeKey", "")
        if not route.startswith("GET "):
            log(f"events/{name}.json is neither a GET route's event nor in EXPECTED: give it its place")
            return None
        reads.append((name, (200, None)))
    first_write = next(i for i, (name, _) in enumerate(EXPECTED) if name == "add-member")
    return EXPECTED[:first_write] + reads + EXPECTED[first_write:]


def cmd_invoke_all(_args, overrides, env):
    steps = plan()
    if steps is None:
        return 1
    planned = [name for name, _ in steps if (name, _) != RESEED]
    failures = 0
    print(f"{'event':28} {'answer':>8} {'init ms':>9} {'ms':>8}  result")
    for name, expected in steps:
        if (name, expected) == RESEED:
            seed(env, fresh=True)
            continue
        function = "platform-customer" if name.startswith("platform-customer") else name
        started = time.monotonic()
        proc, answer, init, duration = invoke(function, os.path.join(ROOT, "events", f"{name}.json"),
                                              overrides)
        problem = check(function, expected, proc, answer, duration)
        shown = str(answer.get("statusCode", "ok")) if isinstance(answer, dict) else "ok"
        print(f"{name:28} {shown:>8} {init or 0:9.1f} {duration or 0:8.1f}  "
              f"{problem or 'as expected'} ({time.monotonic() - started:.1f} s)", flush=True)
        if problem:
            failures += 1
            sys.stderr.write(proc.stderr[-4000:] + "\n")
            sys.stderr.write(proc.stdout[-2000:] + "\n")
    if failures:
        log(f"{failures} event(s) did not get the expected answer")
        return 1
    log(f"all {len(planned)} events/ files answered as expected")
    return 0


def start_api(port, overrides):
    return subprocess.Popen([SAM, "local", "start-api", "--host", "127.0.0.1", "--port", str(port),
                             *sam_common(overrides), "--warm-containers", "LAZY"],
                            cwd=ROOT, env=sam_env(), start_new_session=True)


def cmd_start_api(args, overrides):
    port = int(args[0]) if args else int(os.environ.get("PORT", "3000"))
    proc = start_api(port, overrides)
    print(f"\nsam local start-api: http://127.0.0.1:{port}/api/billing/v1/admin  (Ctrl-C stops everything)\n"
          f"Demo admin token (1 h):\n  export TOKEN={token()}\n", flush=True)
    try:
        return proc.wait()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)


def cmd_figures(overrides):
    """Cold and warm invocations of every function under sam local start-lambda."""
    port = free_port()
    log_path = os.path.join(ROOT, "target", "sam-local-start-lambda.log")
    with open(log_path, "wb") as out:
        proc = subprocess.Popen([SAM, "local", "start-lambda", "--host", "127.0.0.1", "--port", str(port),
                                 *sam_common(overrides), "--warm-containers", "LAZY"],
                                cwd=ROOT, env=sam_env(), stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        wait_for_port(port, "sam local start-lambda", proc, timeout=120)
        lam = boto3.client("lambda", region_name=REGION, endpoint_url=f"http://127.0.0.1:{port}",
                           aws_access_key_id="local", aws_secret_access_key="local",
                           config=botocore.config.Config(read_timeout=300, retries={"max_attempts": 0}))
        rows = []
        for name, expected in plan() or EXPECTED:
            if (name, expected) == RESEED:
                continue
            function = "platform-customer" if name.startswith("platform-customer") else name
            walls = []
            for _ in range(2):
                with open(prepared_event(os.path.join(ROOT, "events", f"{name}.json")), "rb") as f:
                    payload = f.read()
                started = time.monotonic()
                answer = json.loads(lam.invoke(FunctionName=logical_id(function), Payload=payload)["Payload"].read() or b"null")
                walls.append((time.monotonic() - started) * 1000)
            with open(log_path, encoding="utf-8", errors="replace") as f:
                reports = REPORT.findall(f.read())[-2:]
            status = answer.get("statusCode", "ok") if isinstance(answer, dict) else "ok"
            rows.append((name, reports, walls, status))
            print(f"{name:28} cold: init {reports[0][0] or '-':>6} ms, duration {float(reports[0][1]):8.1f} ms, "
                  f"wall {walls[0]:7.0f} ms | warm: duration {float(reports[1][1]):7.1f} ms, wall {walls[1]:6.0f} ms "
                  f"| last answer {status}", flush=True)
        return 0
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)


CARGO_LAMBDA = os.path.join(
    os.environ.get("BILLING_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "billing-admin"),
    "cargo-lambda-1.9.2-pypi", "bin", "cargo-lambda")


def cmd_watch(settings, stack):
    """cargo lambda watch + cargo lambda invoke --data-file of events/get-customer.json."""
    function = "get-customer"
    port = free_port()
    # The variables the template gives this function (as sam local would), and the
    # local endpoints; none of the others (e.g. Stripe's, which a function built
    # without the `stripe` feature refuses).
    with open(os.path.join(ROOT, "template.yaml"), encoding="utf-8") as f:
        template = expand(yaml_parse(f.read()))
    declared = set(LOCAL_ONLY)
    declared |= set(template.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {}))
    declared |= set(template["Resources"][logical_id(function)]["Properties"]
                    .get("Environment", {}).get("Variables", {}))
    env = {k: v for k, v in os.environ.items() if k not in settings}
    env.update({k: v for k, v in settings.items() if k in declared},
               AWS_REGION=REGION, AWS_ACCESS_KEY_ID="local", AWS_SECRET_ACCESS_KEY="local")
    stack.start("cargo-lambda-watch", [
        CARGO_LAMBDA, "lambda", "watch", "--invoke-address", "127.0.0.1", "--invoke-port", str(port),
        "--ignore-changes", "--package", function], port, env=env)
    event = prepared_event(os.path.join(ROOT, "events", f"{function}.json"))
    started = time.monotonic()
    # The first invocation compiles the function (cargo build -p get-customer).
    proc = subprocess.run([CARGO_LAMBDA, "lambda", "invoke", function, "--invoke-address", "127.0.0.1",
                           "--invoke-port", str(port), "--data-file", event, "--output-format", "json"],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    os.unlink(event)
    try:
        answer = json.loads(proc.stdout)
    except json.JSONDecodeError:
        answer = None
    body = json.loads(answer.get("body") or "{}") if isinstance(answer, dict) else {}
    ok = proc.returncode == 0 and answer.get("statusCode") == 200 and \
        body.get("id") == "a1b2c3d4-5633-4b16-bbf0-5ca22ef8ea2e"
    print(f"cargo lambda invoke {function}: {answer and answer.get('statusCode')} "
          f"{body.get('name')!r} ({time.monotonic() - started:.1f} s)")
    if not ok:
        sys.stderr.write(proc.stderr[-3000:] + "\n" + proc.stdout[-2000:] + "\n")
        log("cargo lambda watch + invoke did not answer 200 with the sample customer")
        return 1
    return 0


def main():
    if len(sys.argv) < 2 or sys.argv[1] not in ("invoke", "invoke-all", "start-api", "smoke", "watch", "figures"):
        sys.exit(__doc__)
    command, args = sys.argv[1], sys.argv[2:]
    stack = Stack()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        settings, overrides, env = bring_up(stack, docker=command != "watch")
        if command == "watch":
            return cmd_watch(settings, stack)
        if command == "invoke":
            return cmd_invoke(args, overrides)
        if command == "invoke-all":
            return cmd_invoke_all(args, overrides, env)
        if command == "figures":
            return cmd_figures(overrides)
        if command == "start-api":
            return cmd_start_api(args, overrides)
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import sam_local_smoke  # only this command needs it
        return sam_local_smoke.run(stack, env, lambda port: start_api(port, overrides), token, free_port,
                                   wait_for_port)
    except KeyboardInterrupt:
        return 130
    finally:
        stack.stop()


if __name__ == "__main__":
    sys.exit(main())
