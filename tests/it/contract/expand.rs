//! `template.yaml` as CloudFormation sees it after `AWS::LanguageExtensions`,
//! the one form every contract test reads (`template()`), and a check that the
//! loops generate exactly one log group and one errors and throttles alarm pair
//! per function.
//!
//! The expansion is the SAM CLI's (`samcli.lib.cfn_language_extensions`), and
//! infra/template_expand.py's for the scripts:
//! - `Fn::ForEach::<Name>: [Identifier, [values..], {OutputKey: body}]` in
//!   Resources, Conditions and Outputs (nested too): one copy of the body per
//!   value, `${Identifier}` and `&{Identifier}` replaced in every key and string,
//!   `Ref: Identifier` replaced by the value;
//! - `AWS::LanguageExtensions` leaves `Transform` (SAM's is left);
//! - then what CloudFormation resolves from the template alone: `Fn::FindInMap`
//!   with literal keys (the Mappings), `Ref: !Sub literal`, and `Fn::Sub`
//!   variables that are literal strings (a Sub left with no `${..}` is its
//!   string), written in the short form (`!Ref X`, `!Sub ..`) the rest of the
//!   template uses.
//!
//! The other language extensions (`Fn::Length`, `Fn::ToJsonString`,
//! `Fn::FindInMap`'s `DefaultValue`) are refused: the template does not use them.

use std::collections::BTreeSet;

use billing_tests::Env;
use serde_norway::Mapping;
use serde_norway::Value as Yaml;
use serde_norway::value::{Tag, TaggedValue};

use super::{functions, intrinsic, render, resources_of, yaml};

const FOREACH: &str = "Fn::ForEach::";
const LANGUAGE_EXTENSIONS: &str = "AWS::LanguageExtensions";
const SECTIONS: [&str; 3] = ["Conditions", "Resources", "Outputs"];

/// `template.yaml` with its loops expanded and their lookups resolved.
pub(super) fn template() -> Yaml {
    expand(yaml("template.yaml"))
}

fn expand(mut template: Yaml) -> Yaml {
    // The transform is done: what is left of `Transform` is SAM's.
    if let Some(transforms) = template.get_mut("Transform")
        && let Some(list) = transforms.as_sequence()
    {
        let rest: Vec<Yaml> = list
            .iter()
            .filter(|t| t.as_str() != Some(LANGUAGE_EXTENSIONS))
            .cloned()
            .collect();
        *transforms = match rest.as_slice() {
            [one] => one.clone(),
            _ => Yaml::Sequence(rest),
        };
    }
    let mappings = template.get("Mappings").cloned().unwrap_or_default();
    for section in SECTIONS {
        if let Some(v) = template.get_mut(section) {
            *v = resolve(&expand_loops(v), &mappings);
        }
    }
    template
}

fn expand_loops(node: &Yaml) -> Yaml {
    match node {
        Yaml::Mapping(m) => {
            let mut out = Mapping::new();
            for (key, value) in m {
                let generated = match key.as_str() {
                    Some(k) if k.starts_with(FOREACH) => expand_loop(k, value),
                    _ => vec![(key.clone(), expand_loops(value))],
                };
                for (k, v) in generated {
                    assert!(!out.contains_key(&k), "{k:?} generated twice");
                    out.insert(k, v);
                }
            }
            Yaml::Mapping(out)
        }
        Yaml::Sequence(items) => Yaml::Sequence(items.iter().map(expand_loops).collect()),
        Yaml::Tagged(t) => Yaml::Tagged(Box::new(TaggedValue {
            tag: t.tag.clone(),
            value: expand_loops(&t.value),
        })),
        other => other.clone(),
    }
}

/// One loop: its body once per value, itself expanded (nested loops).
fn expand_loop(key: &str, value: &Yaml) -> Vec<(Yaml, Yaml)> {
    let Some(
        [
            Yaml::String(identifier),
            Yaml::Sequence(values),
            body @ Yaml::Mapping(_),
        ],
    ) = value.as_sequence().map(Vec::as_slice)
    else {
        panic!("{key}: expected [Identifier, [values..], {{OutputKey: body}}], found {value:?}")
    };
    values
        .iter()
        .flat_map(|item| {
            let item = item
                .as_str()
                .unwrap_or_else(|| panic!("{key}: values are literal strings, found {item:?}"));
            match expand_loops(&substitute(body, identifier, item)) {
                Yaml::Mapping(m) => m.into_iter().collect::<Vec<_>>(),
                _ => unreachable!("a mapping expands to a mapping"),
            }
        })
        .collect()
}

fn substitute(node: &Yaml, identifier: &str, value: &str) -> Yaml {
    let is_identifier = |v: &Yaml| v.as_str() == Some(identifier);
    match node {
        Yaml::String(s) => {
            let alphanumeric: String = value.chars().filter(char::is_ascii_alphanumeric).collect();
            Yaml::String(
                s.replace(&format!("${{{identifier}}}"), value)
                    .replace(&format!("&{{{identifier}}}"), &alphanumeric),
            )
        }
        Yaml::Sequence(items) => Yaml::Sequence(
            items
                .iter()
                .map(|v| substitute(v, identifier, value))
                .collect(),
        ),
        Yaml::Mapping(m) if m.len() == 1 && m.get("Ref").is_some_and(is_identifier) => {
            Yaml::String(value.to_owned())
        }
        Yaml::Mapping(m) => Yaml::Mapping(
            m.iter()
                .map(|(k, v)| {
                    (
                        substitute(k, identifier, value),
                        substitute(v, identifier, value),
                    )
                })
                .collect(),
        ),
        Yaml::Tagged(t) if t.tag == "Ref" && is_identifier(&t.value) => {
            Yaml::String(value.to_owned())
        }
        Yaml::Tagged(t) => Yaml::Tagged(Box::new(TaggedValue {
            tag: t.tag.clone(),
            value: substitute(&t.value, identifier, value),
        })),
        other => other.clone(),
    }
}

fn short(tag: &str, value: &str) -> Yaml {
    Yaml::Tagged(Box::new(TaggedValue {
        tag: Tag::new(tag),
        value: Yaml::String(value.to_owned()),
    }))
}

/// `node` with its literal lookups resolved, innermost first.
fn resolve(node: &Yaml, mappings: &Yaml) -> Yaml {
    let node = match node {
        Yaml::Mapping(m) => Yaml::Mapping(
            m.iter()
                .map(|(k, v)| (k.clone(), resolve(v, mappings)))
                .collect(),
        ),
        Yaml::Sequence(items) => {
            Yaml::Sequence(items.iter().map(|v| resolve(v, mappings)).collect())
        }
        Yaml::Tagged(t) => Yaml::Tagged(Box::new(TaggedValue {
            tag: t.tag.clone(),
            value: resolve(&t.value, mappings),
        })),
        other => return other.clone(),
    };
    let Some((name, arg)) = intrinsic(&node) else {
        return node;
    };
    match name.as_str() {
        "Length" | "ToJsonString" => panic!("template.yaml: Fn::{name} is not expanded here"),
        "FindInMap" => {
            let keys = arg.as_sequence().expect("Fn::FindInMap takes a list");
            assert_eq!(
                keys.len(),
                3,
                "Fn::FindInMap {keys:?}: no DefaultValue here"
            );
            match (keys[0].as_str(), keys[1].as_str(), keys[2].as_str()) {
                (Some(map), Some(key), Some(attribute)) => mappings[map][key]
                    .get(attribute)
                    .unwrap_or_else(|| panic!("Mappings: no {map}.{key}.{attribute}"))
                    .clone(),
                _ => node,
            }
        }
        "Ref" => match intrinsic(arg) {
            Some((sub, Yaml::String(name))) if sub == "Sub" => {
                assert!(!name.contains("${"), "Ref !Sub {name}: not literal");
                short("Ref", name)
            }
            _ => node,
        },
        "Sub" => match arg.as_sequence().map(Vec::as_slice) {
            Some([Yaml::String(text), Yaml::Mapping(vars)])
                if vars.values().all(|v| v.as_str().is_some()) =>
            {
                let text = vars.iter().fold(text.clone(), |text, (k, v)| {
                    text.replace(&format!("${{{}}}", render(k)), &render(v))
                });
                if text.contains("${") {
                    short("Sub", &text)
                } else {
                    Yaml::String(text)
                }
            }
            _ => node,
        },
        _ => node,
    }
}

/// Every key anywhere in `node` that starts with `Fn::ForEach::`.
fn loops_in(node: &Yaml, out: &mut Vec<String>) {
    match node {
        Yaml::Mapping(m) => {
            for (k, v) in m {
                if let Some(k) = k.as_str().filter(|k| k.starts_with(FOREACH)) {
                    out.push(k.to_owned());
                }
                loops_in(v, out);
            }
        }
        Yaml::Sequence(items) => items.iter().for_each(|v| loops_in(v, out)),
        Yaml::Tagged(t) => loops_in(&t.value, out),
        _ => {}
    }
}

/// The template's loops generate, for every function and only for functions,
/// its log group `/aws/lambda/<stack>-<binary>` and its errors and throttles
/// alarms `<stack>-<binary>-errors` / `-throttles` on its own `FunctionName`;
/// nothing is left unexpanded.
pub(super) async fn template_loops_generate_each_function_log_group_and_alarms(_env: &'static Env) {
    let raw = yaml("template.yaml");
    let mut loops = Vec::new();
    loops_in(&raw, &mut loops);
    assert!(
        !loops.is_empty(),
        "template.yaml generates its per-function resources with Fn::ForEach"
    );
    let transforms: Vec<String> = raw["Transform"]
        .as_sequence()
        .map(|ts| ts.iter().map(render).collect())
        .unwrap_or_default();
    assert_eq!(
        transforms,
        [LANGUAGE_EXTENSIONS, "AWS::Serverless-2016-10-31"],
        "the loops are expanded before the SAM transform"
    );

    let template = template();
    let mut left = Vec::new();
    loops_in(&template, &mut left);
    assert!(left.is_empty(), "unexpanded: {left:?}");

    let functions = functions(&template);
    let groups = resources_of(&template, "AWS::Logs::LogGroup");
    let alarms = resources_of(&template, "AWS::CloudWatch::Alarm");
    let mut expected_groups = BTreeSet::from(["ApiAccessLogGroup".to_owned()]);
    for f in &functions {
        let prefix = f
            .logical_id
            .strip_suffix("Function")
            .expect("<Name>Function");
        let group_id = format!("{prefix}LogGroup");
        let group = &groups
            .iter()
            .find(|(id, _)| *id == group_id)
            .unwrap_or_else(|| panic!("no {group_id}"))
            .1["Properties"];
        assert_eq!(
            render(&group["LogGroupName"]),
            format!("Sub:/aws/lambda/${{AWS::StackName}}-{}", f.binary),
            "{group_id}"
        );
        assert_eq!(
            render(&group["RetentionInDays"]),
            "Ref:LogRetentionInDays",
            "{group_id}"
        );
        expected_groups.insert(group_id);
        for (metric, suffix) in [("Errors", "errors"), ("Throttles", "throttles")] {
            let alarm_id = format!("{prefix}{metric}Alarm");
            let alarm = &alarms
                .iter()
                .find(|(id, _)| *id == alarm_id)
                .unwrap_or_else(|| panic!("no {alarm_id}"))
                .1["Properties"];
            assert_eq!(
                render(&alarm["AlarmName"]),
                format!("Sub:${{AWS::StackName}}-{}-{suffix}", f.binary),
                "{alarm_id}"
            );
            assert_eq!(render(&alarm["MetricName"]), metric, "{alarm_id}");
            assert_eq!(
                render(&alarm["Dimensions"][0]["Value"]),
                format!("Ref:{}", f.logical_id),
                "{alarm_id}"
            );
        }
    }
    let groups: BTreeSet<String> = groups.into_iter().map(|(id, _)| id).collect();
    assert_eq!(
        groups, expected_groups,
        "one log group per function, and the API's"
    );
}
