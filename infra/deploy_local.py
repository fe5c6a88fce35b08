"""`make deploy-local`: a deploy rehearsal of template.yaml in moto.

1. template.yaml's Fn::ForEach loops expanded (infra/template_expand.py: what
   CloudFormation's AWS::LanguageExtensions transform does), then transformed by
   aws-sam-translator (what its AWS::Serverless transform does), with each function's CodeUri pointing at a zip
   of its built bootstrap uploaded to moto's S3;
2. created as a stack in moto's CloudFormation, which must reach CREATE_COMPLETE;
3. what the stack made checked against the template: the table (keys, indexes,
   stream, TTL), every function (runtime, handler, architecture, memory, timeout,
   environment), the HTTP API's routes (each method and path to its function) and
   the event rules (pattern or schedule, bus, target function).

moto's CloudFormation creates the types it models (DynamoDB, Lambda, IAM, SQS,
SNS, EventBridge rules and buses, Logs); those it does not (the HTTP API, alarms,
Secrets Manager, bus and queue policies) are listed, and the routes are checked
in the transformed API definition.

Usage: python deploy_local.py MOTO_URL   (.local/sam-venv's Python)
"""

import copy
import io
import json
import os
import sys
import time
import zipfile

import boto3

os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
from samtranslator.translator.managed_policy_translator import ManagedPolicyLoader
from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from template_expand import expand  # noqa: E402 (next to this file)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REGION = "us-east-1"
# Short enough that the names moto generates from it fit their limits (an
# archive name is at most 48 characters: stack, logical id and a suffix).
STACK = "billing-local"
BUCKET = "billing-admin-artifacts"
ACCOUNT = "123456789012"
PARAMETERS = {
    "Stage": "dev",
    "JwtIssuer": "https://auth.billing.local",
    "JwtAudience": "billing-admin-api",
    "JwtPublicKeySecretArn": f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:billing/jwt-public-key-AbCdEf",
    "StripeSecretKeySecretArn": f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:billing/stripe-key-AbCdEf",
    "StripeWebhookSecretArn": f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:billing/stripe-webhook-AbCdEf",
    "PlatformPrincipalArn": "arn:aws:iam::210987654321:root",
    "PlatformAccountId": "210987654321",
    "PlatformUserEventSource": "platform.users",
    "PlatformCustomerEventSource": "platform.customers",
}

failures = []


def expect(what, got, want):
    if got != want:
        failures.append(f"{what}: got {got!r}, template says {want!r}")


def client(service, url):
    return boto3.client(service, region_name=REGION, endpoint_url=url,
                        aws_access_key_id="local", aws_secret_access_key="local")


def artifacts_dir():
    """The newer of the arm64 (`make build`) and x86_64 (`make invoke-all`) builds."""
    built = [os.path.join(ROOT, ".aws-sam", name) for name in ("build", "build-x86_64")]
    built = [path for path in built if os.path.exists(os.path.join(path, "template.yaml"))]
    if not built:
        sys.exit("deploy_local: no built functions: run make build or make invoke-all first")
    return max(built, key=lambda path: os.path.getmtime(os.path.join(path, "template.yaml")))


def functions_of(template):
    return {name: r for name, r in template["Resources"].items()
            if r["Type"] == "AWS::Serverless::Function"}


def upload_code(template, s3):
    """Each function's bootstrap, zipped into moto's S3; CodeUri points there."""
    build = artifacts_dir()
    s3.create_bucket(Bucket=BUCKET)
    for name, resource in functions_of(template).items():
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as z:
            z.write(os.path.join(build, name, "bootstrap"), "bootstrap")
        s3.put_object(Bucket=BUCKET, Key=f"{name}.zip", Body=buffer.getvalue())
        resource["Properties"]["CodeUri"] = f"s3://{BUCKET}/{name}.zip"
    return build


def resolve(value, template):
    """The value of a parameter reference, for comparing the template with the stack."""
    if isinstance(value, dict) and set(value) == {"Ref"}:
        name = value["Ref"]
        if name in PARAMETERS:
            return PARAMETERS[name]
        default = template.get("Parameters", {}).get(name, {}).get("Default")
        return str(default) if default is not None else value
    return value


def check_table(template, transformed, stack_resources, ddb):
    table_def = template["Resources"]["Table"]["Properties"]
    table = ddb.describe_table(TableName=stack_resources["Table"])["Table"]
    expect("table keys", table["KeySchema"], table_def["KeySchema"])
    want_indexes = {i["IndexName"]: (i["KeySchema"], i["Projection"]) for i in table_def.get("GlobalSecondaryIndexes", [])}
    got_indexes = {i["IndexName"]: (i["KeySchema"], i["Projection"]) for i in table.get("GlobalSecondaryIndexes", [])}
    expect("table global indexes", got_indexes, want_indexes)
    expect("table stream", table.get("StreamSpecification", {}).get("StreamViewType"),
           table_def.get("StreamSpecification", {}).get("StreamViewType"))
    want_ttl = table_def.get("TimeToLiveSpecification", {})
    # moto's CloudFormation does not apply TimeToLiveSpecification: checked in what
    # CloudFormation gets.
    ttl = transformed["Resources"]["Table"]["Properties"].get("TimeToLiveSpecification", {})
    expect("table TTL attribute", ttl.get("AttributeName"), want_ttl.get("AttributeName"))
    expect("table TTL", ttl.get("Enabled"), want_ttl.get("Enabled"))
    expect("table TTL attribute set", bool(want_ttl.get("AttributeName")) and want_ttl.get("Enabled"), True)
    print(f"table {table['TableName']}: keys, {len(got_indexes)} global indexes, stream checked in moto; "
          f"TTL on {ttl.get('AttributeName')} in the transformed template")


def check_functions(template, transformed, stack_resources, lam):
    globals_ = template.get("Globals", {}).get("Function", {})
    for name, resource in functions_of(template).items():
        props = resource["Properties"]
        config = lam.get_function_configuration(FunctionName=stack_resources[name])
        expect(f"{name} runtime", config["Runtime"], props.get("Runtime", globals_.get("Runtime")))
        expect(f"{name} handler", config["Handler"], props.get("Handler", globals_.get("Handler")))
        # moto's CloudFormation does not pass Architectures on to Lambda: checked in
        # what CloudFormation gets.
        expect(f"{name} architectures",
               transformed["Resources"][name]["Properties"].get("Architectures"),
               props.get("Architectures", globals_.get("Architectures")))
        expect(f"{name} memory", config["MemorySize"], props.get("MemorySize", globals_.get("MemorySize")))
        expect(f"{name} timeout", config["Timeout"], props.get("Timeout", globals_.get("Timeout")))
        # The environment CloudFormation got from the transform, variable by variable.
        want = transformed["Resources"][name]["Properties"].get("Environment", {}).get("Variables", {})
        got = config.get("Environment", {}).get("Variables", {})
        want_names = {k for k, v in want.items()
                      if not (isinstance(v, dict) and "Fn::If" in v and _if_is_novalue(v, transformed))}
        # A reference to a resource moto does not create (e.g. a generated secret)
        # leaves the variable out of moto's function: checked in the transform only.
        unmodeled = {k for k, v in want.items()
                     if isinstance(v, dict) and set(v) == {"Ref"} and v["Ref"] in transformed["Resources"]
                     and v["Ref"] not in stack_resources}
        expect(f"{name} environment variables", sorted(set(got) - unmodeled), sorted(want_names - unmodeled))
        for key, value in want.items():
            value = resolve(value, template)
            if isinstance(value, str) and key in got:
                expect(f"{name} {key}", got[key], value)
    print(f"{len(functions_of(template))} functions: runtime, handler, architecture, memory, timeout, environment checked")


def _if_is_novalue(value, transformed):
    """An `Fn::If` whose chosen branch is AWS::NoValue under PARAMETERS."""
    condition, when_true, when_false = value["Fn::If"]
    chosen = when_true if _condition(condition, transformed) else when_false
    return chosen == {"Ref": "AWS::NoValue"}


def _condition(name, transformed):
    def evaluate(expr):
        if isinstance(expr, dict) and "Condition" in expr:
            return evaluate(transformed["Conditions"][expr["Condition"]])
        (fn, args), = expr.items()
        if fn == "Fn::Not":
            return not evaluate(args[0])
        if fn == "Fn::And":
            return all(evaluate(a) for a in args)
        if fn == "Fn::Or":
            return any(evaluate(a) for a in args)
        if fn == "Fn::Equals":
            a, b = (resolve(x, transformed) for x in args)
            return a == b
        raise ValueError(f"condition function {fn}")
    return evaluate(transformed["Conditions"][name])


def check_routes(template, transformed):
    """Every HttpApi event of the template is a route of the transformed API
    definition, integrated with its function, and nothing else is."""
    want = {}
    for name, resource in functions_of(template).items():
        for event in resource["Properties"].get("Events", {}).values():
            if event["Type"] == "HttpApi":
                p = event["Properties"]
                want[(p.get("Method", "any").lower(), p.get("Path", "$default"))] = name
    apis = [r for r in transformed["Resources"].values() if r["Type"] == "AWS::ApiGatewayV2::Api"]
    if len(apis) != 1:
        failures.append(f"{len(apis)} AWS::ApiGatewayV2::Api in the transformed template, expected 1")
        return
    got = {}
    for path, methods in apis[0]["Properties"]["Body"]["paths"].items():
        for method, op in methods.items():
            uri = json.dumps(op.get("x-amazon-apigateway-integration", {}).get("uri"))
            targets = [n for n in functions_of(template) if f'"{n}.Arn"' in uri or f"${{{n}.Arn}}" in uri]
            method = "any" if method == "x-amazon-apigateway-any-method" else method.lower()
            path = "$default" if path == "/$default" else path
            got[(method, path)] = targets[0] if len(targets) == 1 else uri
    expect("API routes", dict(sorted(got.items())), dict(sorted(want.items())))
    print(f"{len(got)} routes checked against the functions' HttpApi events")


def check_rules(template, stack_resources, transformed, events_client):
    """Every EventBridgeRule and Schedule event: a rule with the template's pattern
    or schedule, on the template's bus, targeting its function."""
    count = 0
    for name, resource in functions_of(template).items():
        for event_name, event in resource["Properties"].get("Events", {}).items():
            if event["Type"] not in ("EventBridgeRule", "Schedule"):
                continue
            count += 1
            logical = f"{name}{event_name}"
            rule_name = stack_resources.get(logical)
            if rule_name is None:
                failures.append(f"{logical}: no rule in the stack")
                continue
            bus = transformed["Resources"][logical]["Properties"].get("EventBusName")
            if isinstance(bus, dict):
                target = bus["Ref"] if "Ref" in bus else bus["Fn::GetAtt"][0]
                # moto leaves an event bus's physical id empty: its name, from the template.
                bus_name = stack_resources[target].split("/")[-1] or \
                    _sub(transformed["Resources"][target]["Properties"]["Name"])
                expect(f"bus {target}", bus_name in [b["Name"] for b in events_client.list_event_buses()["EventBuses"]], True)
            else:
                bus_name = bus or "default"
            rule = events_client.describe_rule(Name=rule_name.split("|")[-1].split("/")[-1], EventBusName=bus_name)
            props = event["Properties"]
            if event["Type"] == "Schedule":
                expect(f"{logical} schedule", rule.get("ScheduleExpression"), resolve(props["Schedule"], template))
            else:
                want_pattern = transformed["Resources"][logical]["Properties"]["EventPattern"]
                expect(f"{logical} pattern", json.loads(rule["EventPattern"]), _resolved_pattern(want_pattern, template))
            targets = events_client.list_targets_by_rule(Rule=rule["Name"], EventBusName=bus_name)["Targets"]
            arns = [t["Arn"] for t in targets]
            expect(f"{logical} targets", [a.split(":")[-1] for a in arns], [stack_resources[name]])
    for logical, resource in template["Resources"].items():
        if resource["Type"] != "AWS::Events::Rule":
            continue
        count += 1
        rule_name = stack_resources.get(logical)
        if rule_name is None:
            failures.append(f"{logical}: no rule in the stack")
            continue
        props = resource["Properties"]
        bus = props.get("EventBusName", "default")
        if isinstance(bus, dict):
            target = bus["Fn::GetAtt"][0] if "Fn::GetAtt" in bus else bus["Ref"]
            bus_name = stack_resources[target].split("/")[-1] or \
                _sub(transformed["Resources"][target]["Properties"]["Name"])
        else:
            bus_name = bus
        rule = events_client.describe_rule(Name=rule_name.split("|")[-1].split("/")[-1], EventBusName=bus_name)
        expect(f"{logical} pattern", json.loads(rule["EventPattern"]), _resolved_pattern(props["EventPattern"], template))
        targets = events_client.list_targets_by_rule(Rule=rule["Name"], EventBusName=bus_name)["Targets"]
        want = [stack_resources[t["Arn"]["Fn::GetAtt"][0]] for t in props["Targets"]]
        expect(f"{logical} targets", [t["Arn"].split(":")[-1] for t in targets], want)
    print(f"{count} event rules checked (pattern or schedule, bus, target)")


def _sub(value):
    """A name given as a string or as `Fn::Sub` of the stack's name."""
    if isinstance(value, dict):
        return value["Fn::Sub"].replace("${AWS::StackName}", STACK)
    return value


def _resolved_pattern(pattern, template):
    if isinstance(pattern, dict):
        if set(pattern) == {"Ref"}:
            return resolve(pattern, template)
        return {k: _resolved_pattern(v, template) for k, v in pattern.items()}
    if isinstance(pattern, list):
        return [_resolved_pattern(v, template) for v in pattern]
    return pattern


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    url = sys.argv[1]
    # AWS::LanguageExtensions first (its Fn::ForEach loops: the log groups and
    # alarms), as CloudFormation applies it before AWS::Serverless; moto knows
    # neither transform.
    with open(os.path.join(ROOT, "template.yaml"), encoding="utf-8") as f:
        template = expand(yaml_parse(f.read()))
    to_transform = copy.deepcopy(template)
    build = upload_code(to_transform, client("s3", url))
    print(f"code: each function's bootstrap from {os.path.relpath(build, ROOT)}")
    transformed = transform(to_transform, PARAMETERS, ManagedPolicyLoader(client("iam", url)))
    types = sorted({r["Type"] for r in transformed["Resources"].values()})
    print(f"transformed: {len(transformed['Resources'])} resources of {len(types)} types")

    cfn = client("cloudformation", url)
    cfn.create_stack(StackName=STACK, TemplateBody=json.dumps(transformed),
                     Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in PARAMETERS.items()],
                     Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"])
    deadline = time.monotonic() + 300
    while True:
        status = cfn.describe_stacks(StackName=STACK)["Stacks"][0]["StackStatus"]
        if not status.endswith("IN_PROGRESS") or time.monotonic() > deadline:
            break
        time.sleep(1)
    if status != "CREATE_COMPLETE":
        for e in cfn.describe_stack_events(StackName=STACK)["StackEvents"][:20]:
            print(f"  {e['LogicalResourceId']} {e['ResourceStatus']} {e.get('ResourceStatusReason', '')}")
        sys.exit(f"deploy_local: stack {STACK} is {status}, expected CREATE_COMPLETE")
    stack_resources = {r["LogicalResourceId"]: r["PhysicalResourceId"]
                       for r in cfn.list_stack_resources(StackName=STACK)["StackResourceSummaries"]}
    created_types = sorted({transformed["Resources"][n]["Type"] for n in stack_resources if n in transformed["Resources"]})
    skipped = sorted(set(types) - set(created_types))
    print(f"stack {STACK}: CREATE_COMPLETE, {len(stack_resources)} resources; "
          f"types moto does not model (not created): {', '.join(skipped) or 'none'}")

    check_table(template, transformed, stack_resources, client("dynamodb", url))
    check_functions(template, transformed, stack_resources, client("lambda", url))
    check_routes(template, transformed)
    check_rules(template, stack_resources, transformed, client("events", url))
    if failures:
        for failure in failures:
            print(f"MISMATCH {failure}")
        sys.exit(f"deploy_local: {len(failures)} difference(s) between the stack and template.yaml")
    print("deploy_local: the stack matches template.yaml")


if __name__ == "__main__":
    main()
