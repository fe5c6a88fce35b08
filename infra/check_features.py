"""Checks that every function of a `sam build` links exactly the `billing-shared`
features its package declares, and that several builds (e.g. the arm64 one of
`make build` and the x86_64 one of `make invoke-all`) link the same.

Each `bootstrap` carries the marker `billing-features[...]` (billing::LINKED_FEATURES,
logged at start, so present in a stripped release binary); the declared features
are those of the `billing-shared` dependency in `cargo metadata`.

Usage: python check_features.py TEMPLATE BUILD_DIR [BUILD_DIR...]
(run with .local/sam-venv's Python, which has the SAM translator's YAML parser).
Exits 1 on any difference, printing one line per function.
"""

import json
import os
import re
import subprocess
import sys

from samtranslator.yaml_helper import yaml_parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from template_expand import expand  # noqa: E402 (next to this file)

MARKER = re.compile(rb"billing-features\[([a-z,]*)\]")
KNOWN = ("stripe", "events")


def functions(template_path):
    """(logical id, package directory) of each rust-cargolambda function."""
    with open(template_path, encoding="utf-8") as f:
        template = expand(yaml_parse(f.read()))
    for name, resource in template.get("Resources", {}).items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        if resource.get("Metadata", {}).get("BuildMethod") != "rust-cargolambda":
            continue
        yield name, resource["Properties"]["CodeUri"]


def declared_features(root):
    """package manifest path -> sorted features it enables on billing-shared."""
    out = subprocess.run(
        ["cargo", "metadata", "--no-deps", "--format-version", "1", "--offline"],
        cwd=root, check=True, capture_output=True, timeout=120,
    ).stdout
    result = {}
    for package in json.loads(out)["packages"]:
        for dep in package["dependencies"]:
            if dep["name"] == "billing-shared":
                result[os.path.dirname(package["manifest_path"])] = sorted(dep["features"])
    return result


def linked_features(bootstrap):
    """Sorted features named by the binary's marker, or an error string."""
    with open(bootstrap, "rb") as f:
        found = set(MARKER.findall(f.read()))
    if len(found) != 1:
        return f"{len(found)} feature markers in {bootstrap} (expected 1)"
    features = [x for x in found.pop().decode().split(",") if x]
    unknown = [x for x in features if x not in KNOWN]
    if unknown:
        return f"unknown features {unknown} in {bootstrap}"
    return sorted(features)


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    template_path = os.path.abspath(sys.argv[1])
    root = os.path.dirname(template_path)
    build_dirs = sys.argv[2:]
    declared = declared_features(root)
    failures = 0
    for logical_id, code_uri in sorted(functions(template_path)):
        package = os.path.realpath(os.path.join(root, code_uri))
        want = declared.get(package)
        if want is None:
            print(f"{logical_id}: CodeUri {code_uri} is not a package depending on billing-shared")
            failures += 1
            continue
        seen = []
        for build_dir in build_dirs:
            got = linked_features(os.path.join(build_dir, logical_id, "bootstrap"))
            if got != want:
                print(f"{logical_id}: {build_dir} links {got}, {code_uri}/Cargo.toml declares {want}")
                failures += 1
            seen.append(",".join(got) if isinstance(got, list) else "?")
        print(f"{logical_id:32} declares [{','.join(want)}]  links " + "  ".join(f"[{s}]" for s in seen))
    if failures:
        print(f"check_features: {failures} difference(s)")
        sys.exit(1)
    print(f"check_features: every function links exactly its declared features in {' and '.join(build_dirs)}")


if __name__ == "__main__":
    main()
