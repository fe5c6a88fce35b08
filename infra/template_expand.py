"""template.yaml as CloudFormation sees it after AWS::LanguageExtensions.

template.yaml generates its per-function log groups and alarms with
`Fn::ForEach` (Transform AWS::LanguageExtensions, applied before
AWS::Serverless). The scripts that read the template's resources
(deploy_local.py, sam_local.py, check_features.py) read it through `expand`:

- `Fn::ForEach::<Name>: [Identifier, [values...], {OutputKey: body}]` in
  Resources, Conditions and Outputs (nested too): one copy of the body per
  value, `${Identifier}` and `&{Identifier}` (alphanumerics only) replaced in
  every key and string, `Ref: Identifier` replaced by the value (as the SAM CLI's
  own expansion, samcli.lib.cfn_language_extensions, does);
- AWS::LanguageExtensions taken out of Transform (AWS::Serverless is left);
- then what the loops leave for CloudFormation to resolve from the template
  alone: `Fn::FindInMap` whose keys are all literal (the Mappings section),
  `Ref: {Fn::Sub: literal}` (a Ref to a generated name), and `Fn::Sub` variables
  that are literal strings (written into the string; a Sub left without any
  `${...}` is its plain string).

The other language extensions (Fn::Length, Fn::ToJsonString, Fn::FindInMap's
DefaultValue) are refused rather than silently kept: the template does not use
them, and a reader here would not understand them.

Input and output are the parsed form of samtranslator's `yaml_parse` (long-form
intrinsics: {"Ref": ...}, {"Fn::Sub": ...}).

Run as a script, it compares two templates after expansion (every section but
Mappings must be equal), e.g. before and after a change that moves
resources into loops:
  python infra/template_expand.py --compare <(git show REV:template.yaml) template.yaml
"""

import copy
import re
import sys

FOREACH = "Fn::ForEach::"
LANGUAGE_EXTENSIONS = "AWS::LanguageExtensions"
UNSUPPORTED = ("Fn::Length", "Fn::ToJsonString")
SECTIONS = ("Conditions", "Resources", "Outputs")


def expand(template):
    """A copy of `template` with its loops expanded and the literal lookups resolved."""
    out = copy.deepcopy(template)
    # The transform is done: what is left of Transform is SAM's.
    transforms = out.get("Transform")
    if isinstance(transforms, list):
        rest = [t for t in transforms if t != LANGUAGE_EXTENSIONS]
        out["Transform"] = rest[0] if len(rest) == 1 else rest
    for section in SECTIONS:
        if section in out:
            out[section] = _expand_loops(out[section])
    mappings = out.get("Mappings", {})
    for section in SECTIONS:
        if section in out:
            out[section] = _resolve(out[section], mappings)
    return out


def _expand_loops(section):
    if isinstance(section, list):
        return [_expand_loops(v) for v in section]
    if not isinstance(section, dict):
        return section
    result = {}
    for key, value in section.items():
        if isinstance(key, str) and key.startswith(FOREACH):
            if not (isinstance(value, list) and len(value) == 3 and isinstance(value[0], str)
                    and isinstance(value[1], list) and isinstance(value[2], dict)):
                raise ValueError(f"{key}: expected [Identifier, [values...], {{OutputKey: body}}]")
            identifier, values, body = value
            for item in values:
                if not isinstance(item, str):
                    raise ValueError(f"{key}: collection values must be literal strings, found {item!r}")
                for out_key, out_value in _expand_loops(_substitute(body, identifier, item)).items():
                    if out_key in result:
                        raise ValueError(f"{key}: {out_key} generated twice")
                    result[out_key] = out_value
        else:
            if key in result:
                raise ValueError(f"{key} generated twice")
            result[key] = _expand_loops(value)
    return result


def _substitute(node, identifier, value):
    if isinstance(node, str):
        return (node.replace("${%s}" % identifier, value)
                .replace("&{%s}" % identifier, re.sub(r"[^A-Za-z0-9]", "", value)))
    if isinstance(node, list):
        return [_substitute(v, identifier, value) for v in node]
    if isinstance(node, dict):
        if len(node) == 1 and node.get("Ref") == identifier:
            return value
        return {_substitute(k, identifier, value): _substitute(v, identifier, value)
                for k, v in node.items()}
    return node


def _resolve(node, mappings):
    if isinstance(node, list):
        return [_resolve(v, mappings) for v in node]
    if not isinstance(node, dict):
        return node
    node = {k: _resolve(v, mappings) for k, v in node.items()}
    if len(node) != 1:
        return node
    (name, arg), = node.items()
    if name in UNSUPPORTED:
        raise ValueError(f"{name} is not supported by infra/template_expand.py")
    if name == "Fn::FindInMap":
        if len(arg) != 3:
            raise ValueError(f"Fn::FindInMap {arg!r}: DefaultValue is not supported")
        if all(isinstance(a, str) for a in arg):
            top, second, third = arg
            try:
                return copy.deepcopy(mappings[top][second][third])
            except KeyError:
                raise ValueError(f"Fn::FindInMap {arg!r}: no such entry in Mappings") from None
        return node
    if name == "Ref" and isinstance(arg, dict) and list(arg) == ["Fn::Sub"] and isinstance(arg["Fn::Sub"], str):
        if "${" in arg["Fn::Sub"]:
            raise ValueError(f"Ref {arg!r}: the name must be literal after the loops")
        return {"Ref": arg["Fn::Sub"]}
    if name == "Fn::Sub" and isinstance(arg, list) and len(arg) == 2 and isinstance(arg[1], dict) \
            and all(isinstance(v, str) for v in arg[1].values()):
        text = arg[0]
        for var, value in arg[1].items():
            text = text.replace("${%s}" % var, value)
        return {"Fn::Sub": text} if "${" in text else text
    return node


def _compare(old_path, new_path):
    from samtranslator.yaml_helper import yaml_parse

    def load(path):
        with open(path, encoding="utf-8") as f:
            return expand(yaml_parse(f.read()))

    old, new = load(old_path), load(new_path)
    differences = 0
    for section in sorted((set(old) | set(new)) - {"Mappings"}):
        a, b = old.get(section), new.get(section)
        if isinstance(a, dict) and isinstance(b, dict):
            for key in sorted(set(a) | set(b)):
                if a.get(key) != b.get(key):
                    differences += 1
                    print(f"{section}.{key}: {'only in new' if key not in a else 'only in old' if key not in b else 'differs'}")
            print(f"{section}: {len(a)} old, {len(b)} new")
        elif a != b:
            differences += 1
            print(f"{section}: differs")
    return differences


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] != "--compare":
        sys.exit(__doc__)
    count = _compare(sys.argv[2], sys.argv[3])
    if count:
        sys.exit(f"template_expand: {count} difference(s) after expansion")
    print("template_expand: the same after expansion (Mappings aside)")
