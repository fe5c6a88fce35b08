//! The deployment contract: the events under `events/` (API Gateway, DynamoDB
//! Streams, EventBridge) run through the real handlers, and `template.yaml` and
//! `openapi.yaml` describe exactly the code (routes, the `$default` route,
//! functions, table, IAM, operations), with the operational parts around it:
//! alarms on what they claim to watch, tracing and log levels, and the locked
//! ingress of the platform's events (`user.deleted`, `customer.created`,
//! `customer.updated`).

mod alarms;
mod docs;
mod events;
mod expand;
mod iam;
mod ingress;
mod openapi;
mod partitions;
mod template;
mod template_functions;

use std::collections::BTreeMap;

use billing_tests::servers::repo_root;
use serde_json::{Value, json};
use serde_norway::Value as Yaml;

use crate::TestFn;
use alarms::{template_alarms_select_their_own_stack, template_alarms_watch_what_they_claim};
use docs::{
    docs_alarm_table_is_the_template_alarms, docs_checks_catch_what_they_claim,
    docs_configuration_names_every_variable_and_parameter,
    docs_metrics_table_is_the_code_catalogue, docs_name_only_paths_that_exist,
};
use events::{
    events_run_through_the_real_handlers, events_without_a_fresh_token_or_signature_are_refused,
};
use expand::{template, template_loops_generate_each_function_log_group_and_alarms};
use iam::template_grants_each_function_exactly_its_calls;
use ingress::template_locks_the_platform_ingress;
use openapi::{
    openapi_operations_are_the_endpoints, openapi_parameters_and_statuses_match_the_code,
};
use partitions::{
    each_function_touches_only_its_granted_partitions,
    template_confines_each_function_to_its_partitions,
};
use template::{
    template_functions_hold_no_plaintext_secret, template_logs_tracing_and_settings,
    template_parameters_choose_exactly_one_token_key_source, template_routes_are_the_endpoints,
    template_table_is_the_table_definition,
};
use template_functions::template_functions_are_the_workspace_packages;

pub fn trials() -> Vec<(&'static str, TestFn)> {
    crate::trials![
        events_run_through_the_real_handlers,
        events_without_a_fresh_token_or_signature_are_refused,
        template_routes_are_the_endpoints,
        template_functions_are_the_workspace_packages,
        template_functions_hold_no_plaintext_secret,
        template_table_is_the_table_definition,
        template_grants_each_function_exactly_its_calls,
        template_parameters_choose_exactly_one_token_key_source,
        template_logs_tracing_and_settings,
        template_alarms_watch_what_they_claim,
        template_alarms_select_their_own_stack,
        template_loops_generate_each_function_log_group_and_alarms,
        template_locks_the_platform_ingress,
        template_confines_each_function_to_its_partitions,
        each_function_touches_only_its_granted_partitions,
        openapi_operations_are_the_endpoints,
        openapi_parameters_and_statuses_match_the_code,
        docs_metrics_table_is_the_code_catalogue,
        docs_alarm_table_is_the_template_alarms,
        docs_configuration_names_every_variable_and_parameter,
        docs_name_only_paths_that_exist,
        docs_checks_catch_what_they_claim,
    ]
}

// ---- YAML helpers ------------------------------------------------------------------

fn yaml(file: &str) -> Yaml {
    let path = repo_root().join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{file}: {e}"));
    serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{file}: {e}"))
}

/// A scalar, or a short-form intrinsic as `Tag:value` (`!Ref X` is `Ref:X`).
fn render(v: &Yaml) -> String {
    match v {
        Yaml::Tagged(t) => format!(
            "{}:{}",
            t.tag.to_string().trim_start_matches('!'),
            render(&t.value)
        ),
        Yaml::String(s) => s.clone(),
        Yaml::Number(n) => n.to_string(),
        Yaml::Bool(b) => b.to_string(),
        other => panic!("expected a scalar, found {other:?}"),
    }
}

/// One value or a list of them.
fn one_or_many(v: &Yaml) -> Vec<String> {
    match v {
        Yaml::Sequence(items) => items.iter().map(render).collect(),
        other => vec![render(other)],
    }
}

/// An intrinsic function, short (`!If [..]`, `!Ref X`) or long (`Fn::If: [..]`,
/// `Ref: X`) form: its name without `Fn::`, and its argument.
fn intrinsic(v: &Yaml) -> Option<(String, &Yaml)> {
    match v {
        Yaml::Tagged(t) => Some((
            t.tag.to_string().trim_start_matches('!').to_owned(),
            &t.value,
        )),
        Yaml::Mapping(m) if m.len() == 1 => {
            let (key, arg) = m.iter().next()?;
            let key = key.as_str()?;
            let name = key
                .strip_prefix("Fn::")
                .or_else(|| matches!(key, "Ref" | "Condition").then_some(key))?;
            Some((name.to_owned(), arg))
        }
        _ => None,
    }
}

/// `Fn::If [condition, then, else]`: the condition's name and both values.
fn conditional(v: &Yaml) -> Option<(String, &Yaml, &Yaml)> {
    let (name, arg) = intrinsic(v)?;
    if name != "If" {
        return None;
    }
    match arg.as_sequence().map(Vec::as_slice) {
        Some([condition, then, otherwise]) => Some((render(condition), then, otherwise)),
        _ => panic!("Fn::If takes [condition, then, else], found {arg:?}"),
    }
}

/// `!Ref AWS::NoValue`: the property or list item is left out.
fn is_no_value(v: &Yaml) -> bool {
    matches!(intrinsic(v), Some((name, arg)) if name == "Ref" && arg.as_str() == Some("AWS::NoValue"))
}

fn entries(v: &Yaml) -> Vec<(String, &Yaml)> {
    v.as_mapping()
        .map(|m| m.iter().map(|(k, v)| (render(k), v)).collect())
        .unwrap_or_default()
}

fn str_of<'a>(v: &'a Yaml, what: &str) -> &'a str {
    match v {
        Yaml::String(s) => s,
        other => panic!("{what}: expected a plain string, found {other:?}"),
    }
}

// ---- template.yaml: its functions, and a deployment of it --------------------------

/// A function in the template, its Globals merged in.
struct Function {
    logical_id: String,
    binary: String,
    properties: BTreeMap<String, Yaml>,
    /// `(METHOD, path)` of its HttpApi events.
    routes: Vec<(String, String)>,
    /// The `Type` of every event.
    event_types: Vec<String>,
}

/// The event-driven functions (no route): they run the deletion cascade too.
const STREAM_CONSUMER: &str = "cleanup-stream";
const USER_DELETED_HOOK: &str = "user-deleted";
/// The scheduled function that reports the customers in the deleting state as
/// metrics (`BillingAdmin` `DeletingCustomers`, `OldestDeletionAgeSeconds`). It
/// runs no cascade and reads only the index of deleting customers.
const DELETION_MONITOR: &str = "deletion-monitor";

/// Stripe's webhook: a route of its own outside the admin prefix, signed by
/// Stripe (no token, no API key).
const STRIPE_WEBHOOK: &str = billing::sync::webhook::FUNCTION;
/// `(METHOD, path)` of the webhook's route as the template declares it: every
/// method of its path, so that the function answers 405 (with `Allow: POST`) to
/// the others, as the local server does, rather than the `$default` route's 404.
const WEBHOOK_ROUTE: (&str, &str) = ("ANY", billing::sync::webhook::PATH);
/// The platform's `customer.created` / `customer.updated` hook.
const PLATFORM_CUSTOMER_HOOK: &str = billing::sync::platform::FUNCTION;
/// The daily reconciliation with Stripe (scheduled).
const RECONCILE: &str = billing::sync::reconcile::FUNCTION;

/// The function behind the `$default` route: 404/405 for requests no route
/// matches. It serves no endpoint and reads no token, table or secret.
const ROUTE_NOT_FOUND: &str = "route-not-found";
/// `(METHOD, path)` of API Gateway's catch-all route, as the template declares it.
const DEFAULT_ROUTE: (&str, &str) = ("ANY", "$default");

/// The template condition of PEM mode (JwtPublicKeySecretArn given).
const PEM_MODE: &str = "HasJwtPublicKey";

/// How a deployment verifies Bearer tokens: exactly one of the two.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TokenMode {
    /// `JwtPublicKeySecretArn`: an Ed25519 public key (PEM) in Secrets Manager.
    Pem,
    /// `JwtJwksUrl`: the identity provider's JWKS.
    Jwks,
}

const SAMPLE_ISSUER: &str = "https://idp.example.com/";
const SAMPLE_AUDIENCE: &str = "billing-admin-api";
const SAMPLE_PEM_SECRET: &str =
    "arn:aws:secretsmanager:us-east-1:123456789012:secret:billing-jwt-public-key-AbCdEf";
const SAMPLE_JWKS_URL: &str = "https://idp.example.com/.well-known/jwks.json";
/// The platform that puts `user.deleted` (the account of `events/user-deleted.json`).
const SAMPLE_PLATFORM_ACCOUNT: &str = "123456789012";
const SAMPLE_PLATFORM_ROLE: &str = "arn:aws:iam::123456789012:role/platform-user-events";
const SAMPLE_PLATFORM_ROOT: &str = "arn:aws:iam::123456789012:root";
const SAMPLE_WEBHOOK_SECRET: &str =
    "arn:aws:secretsmanager:us-east-1:123456789012:secret:billing-stripe-webhook-AbCdEf";

/// The template's parameters with values, as `sam deploy --parameter-overrides`
/// gives them (the rest keep their defaults), and so the value of every condition.
struct Deployment {
    params: BTreeMap<String, String>,
    conditions: BTreeMap<String, bool>,
}

impl Deployment {
    /// Defaults, sample values for the required parameters, then `overrides`.
    fn new(template: &Yaml, overrides: &[(&str, &str)]) -> Self {
        let samples = [
            ("JwtIssuer", SAMPLE_ISSUER),
            ("JwtAudience", SAMPLE_AUDIENCE),
            (
                "StripeSecretKeySecretArn",
                "arn:aws:secretsmanager:us-east-1:123456789012:secret:billing-stripe-AbCdEf",
            ),
            ("StripeWebhookSecretArn", SAMPLE_WEBHOOK_SECRET),
            ("PlatformUserEventSource", "platform.users"),
            ("PlatformCustomerEventSource", "platform.customers"),
            ("PlatformPrincipalArn", SAMPLE_PLATFORM_ROLE),
            ("PlatformAccountId", SAMPLE_PLATFORM_ACCOUNT),
        ];
        let declared = entries(&template["Parameters"]);
        for (name, _) in samples.iter().chain(overrides) {
            assert!(
                declared.iter().any(|(p, _)| p == name),
                "template.yaml: no parameter {name}"
            );
        }
        let params = declared
            .iter()
            .map(|(name, p)| {
                let given = overrides
                    .iter()
                    .chain(&samples)
                    .find(|(n, _)| n == name)
                    .map(|(_, v)| (*v).to_owned());
                let value = given
                    .or_else(|| p.get("Default").map(render))
                    .unwrap_or_else(|| panic!("{name} has no default: give it a sample value"));
                (name.clone(), value)
            })
            .collect();
        let mut deployment = Self {
            params,
            conditions: BTreeMap::new(),
        };
        let defined = &template["Conditions"];
        deployment.conditions = entries(defined)
            .into_iter()
            .map(|(name, c)| (name, deployment.holds(c, defined)))
            .collect();
        deployment
    }

    /// A deployment in `mode`: only that mode's parameter is set.
    fn of(template: &Yaml, mode: TokenMode) -> Self {
        match mode {
            TokenMode::Pem => Self::new(template, &[("JwtPublicKeySecretArn", SAMPLE_PEM_SECRET)]),
            TokenMode::Jwks => Self::new(template, &[("JwtJwksUrl", SAMPLE_JWKS_URL)]),
        }
    }

    /// Whether a condition (`Conditions`, or a rule's `Assert`) holds;
    /// `conditions` are the ones `Condition: X` may name.
    fn holds(&self, v: &Yaml, conditions: &Yaml) -> bool {
        let (name, arg) = intrinsic(v).unwrap_or_else(|| panic!("not a condition function: {v:?}"));
        let args = || {
            arg.as_sequence()
                .unwrap_or_else(|| panic!("Fn::{name} takes a list: {arg:?}"))
        };
        match name.as_str() {
            "Not" => {
                assert_eq!(args().len(), 1, "Fn::Not takes one condition");
                !self.holds(&args()[0], conditions)
            }
            "And" => args().iter().all(|c| self.holds(c, conditions)),
            "Or" => args().iter().any(|c| self.holds(c, conditions)),
            "Equals" => {
                assert_eq!(args().len(), 2, "Fn::Equals takes two values");
                self.value(&render(&args()[0])) == self.value(&render(&args()[1]))
            }
            "Condition" => {
                let named = str_of(arg, "Condition");
                self.holds(&conditions[named], conditions)
            }
            other => panic!("unsupported condition function Fn::{other}"),
        }
    }

    /// A rendered value (`Ref:Param` for `!Ref Param`) with its parameter's value;
    /// in `Sub:...`, every `${Param}` (and `${AWS::Partition}`, `aws`) replaced.
    fn value(&self, rendered: &str) -> String {
        if let Some(text) = rendered.strip_prefix("Sub:") {
            return self
                .params
                .iter()
                .fold(text.replace("${AWS::Partition}", "aws"), |t, (name, v)| {
                    t.replace(&format!("${{{name}}}"), v)
                });
        }
        rendered
            .strip_prefix("Ref:")
            .and_then(|name| self.params.get(name))
            .cloned()
            .unwrap_or_else(|| rendered.to_owned())
    }

    /// An EventBridge pattern of the template as deployed: JSON, every value
    /// with its parameter's.
    fn pattern(&self, v: &Yaml) -> Value {
        match v {
            Yaml::Mapping(_) => entries(v)
                .into_iter()
                .map(|(k, p)| (k, self.pattern(p)))
                .collect::<serde_json::Map<_, _>>()
                .into(),
            other => one_or_many(other)
                .iter()
                .map(|s| json!(self.value(s)))
                .collect(),
        }
    }

    /// What CloudFormation keeps of `v`: `Fn::If` decided, None for `AWS::NoValue`.
    fn resolve<'a>(&self, v: &'a Yaml) -> Option<&'a Yaml> {
        match conditional(v) {
            Some((condition, then, otherwise)) => {
                let holds = *self
                    .conditions
                    .get(&condition)
                    .unwrap_or_else(|| panic!("Fn::If names no condition: {condition}"));
                self.resolve(if holds { then } else { otherwise })
            }
            None if is_no_value(v) => None,
            None => Some(v),
        }
    }

    /// A function's environment as deployed, rendered (`Ref:X`).
    fn env(&self, raw: &BTreeMap<String, &Yaml>) -> BTreeMap<String, String> {
        raw.iter()
            .filter_map(|(k, v)| Some((k.clone(), render(self.resolve(v)?))))
            .collect()
    }
}

/// The template's EventBridge rules (`AWS::Events::Rule`) that invoke the
/// function `function_id`, each as the event SAM would declare for it (by the
/// rule's id): `Type: EventBridgeRule` with the rule's bus and pattern and the
/// target's retry policy and dead letters.
fn rules_invoking(template: &Yaml, function_id: &str) -> Vec<(String, Yaml)> {
    let target = format!("GetAtt:{function_id}.Arn");
    let mut found = Vec::new();
    for (id, rule) in resources_of(template, "AWS::Events::Rule") {
        let p = &rule["Properties"];
        for t in p["Targets"].as_sequence().into_iter().flatten() {
            if render(&t["Arn"]) != target {
                continue;
            }
            let mut properties = serde_norway::Mapping::new();
            for (key, value) in [
                ("EventBusName", &p["EventBusName"]),
                ("Pattern", &p["EventPattern"]),
                ("RetryPolicy", &t["RetryPolicy"]),
                ("DeadLetterConfig", &t["DeadLetterConfig"]),
            ] {
                properties.insert(Yaml::from(key), value.clone());
            }
            let mut event = serde_norway::Mapping::new();
            event.insert(Yaml::from("Type"), Yaml::from("EventBridgeRule"));
            event.insert(Yaml::from("Properties"), Yaml::Mapping(properties));
            found.push((id.clone(), Yaml::Mapping(event)));
        }
    }
    found
}

fn functions(template: &Yaml) -> Vec<Function> {
    let globals: BTreeMap<String, Yaml> = entries(&template["Globals"]["Function"])
        .into_iter()
        .map(|(k, v)| (k, v.clone()))
        .collect();
    entries(&template["Resources"])
        .into_iter()
        .filter(|(_, r)| r["Type"].as_str() == Some("AWS::Serverless::Function"))
        .map(|(id, r)| {
            let mut properties = globals.clone();
            for (k, v) in entries(&r["Properties"]) {
                let merged = match properties.remove(&k) {
                    Some(global) => merge(global, v.clone()),
                    None => v.clone(),
                };
                properties.insert(k, merged);
            }
            assert_eq!(
                r["Metadata"]["BuildMethod"].as_str(),
                Some("rust-cargolambda"),
                "{id}"
            );
            let binary = str_of(&r["Metadata"]["BuildProperties"]["Binary"], &id).to_owned();
            // The rules that invoke it are its events too (SAM's shape).
            let rules = rules_invoking(template, &id);
            if !rules.is_empty() {
                let events = properties
                    .entry("Events".to_owned())
                    .or_insert_with(|| Yaml::Mapping(serde_norway::Mapping::new()));
                let events = events.as_mapping_mut().expect("Events is a mapping");
                for (rule_id, event) in rules {
                    events.insert(Yaml::from(rule_id), event);
                }
            }
            let event_types = properties
                .get("Events")
                .map(entries)
                .unwrap_or_default()
                .into_iter()
                .map(|(_, e)| render(&e["Type"]))
                .collect();
            let routes = entries(&r["Properties"]["Events"])
                .into_iter()
                .filter(|(_, e)| e["Type"].as_str() == Some("HttpApi"))
                .map(|(name, e)| {
                    let p = &e["Properties"];
                    assert_eq!(render(&p["ApiId"]), "Ref:HttpApi", "{id}.{name}");
                    assert_eq!(render(&p["PayloadFormatVersion"]), "2.0", "{id}.{name}");
                    (
                        str_of(&p["Method"], &id).to_uppercase(),
                        str_of(&p["Path"], &id).to_owned(),
                    )
                })
                .collect();
            Function {
                logical_id: id,
                binary,
                properties,
                routes,
                event_types,
            }
        })
        .collect()
}

/// SAM's Globals merge: maps merge key by key, anything else the function's value wins.
fn merge(global: Yaml, local: Yaml) -> Yaml {
    match (global, local) {
        (Yaml::Mapping(mut g), Yaml::Mapping(l)) => {
            for (k, v) in l {
                let merged = match g.remove(&k) {
                    Some(gv) => merge(gv, v),
                    None => v,
                };
                g.insert(k, merged);
            }
            Yaml::Mapping(g)
        }
        (_, local) => local,
    }
}

/// The `Events` of the template function built from `binary`.
fn template_events(binary: &str) -> Yaml {
    let template = template();
    functions(&template)
        .into_iter()
        .find(|f| f.binary == binary)
        .and_then(|f| f.properties.get("Events").cloned())
        .unwrap_or_else(|| panic!("template.yaml: no {binary} function with Events"))
}

/// The template's resources of one type: (logical id, resource).
fn resources_of<'a>(template: &'a Yaml, kind: &str) -> Vec<(String, &'a Yaml)> {
    entries(&template["Resources"])
        .into_iter()
        .filter(|(_, r)| r["Type"].as_str() == Some(kind))
        .collect()
}

/// The queue that takes the `user.deleted` events not handled (the rule's and the
/// function's dead letters).
const USER_DELETED_QUEUE: &str = "UserDeletedDeadLetterQueue";
/// The queue that takes the customer events not applied.
const PLATFORM_CUSTOMER_QUEUE: &str = "PlatformCustomerDeadLetterQueue";

/// A function the platform's events invoke through a rule on the platform bus.
struct PlatformHook {
    binary: &'static str,
    /// The parameter holding the events' `source`.
    source: &'static str,
    /// The `detail-type`s its rule takes.
    detail_types: &'static [&'static str],
    /// Where the events it does not handle go (the rule's and the function's
    /// dead letters).
    queue: &'static str,
}

/// Every function on the platform bus, and so every rule on it.
const PLATFORM_HOOKS: [PlatformHook; 2] = [
    PlatformHook {
        binary: USER_DELETED_HOOK,
        source: "PlatformUserEventSource",
        detail_types: &["user.deleted"],
        queue: USER_DELETED_QUEUE,
    },
    PlatformHook {
        binary: PLATFORM_CUSTOMER_HOOK,
        source: "PlatformCustomerEventSource",
        detail_types: &[
            billing::sync::platform::CUSTOMER_CREATED,
            billing::sync::platform::CUSTOMER_UPDATED,
        ],
        queue: PLATFORM_CUSTOMER_QUEUE,
    },
];

/// The platform hook built from `binary`, if it is one.
fn platform_hook(binary: &str) -> Option<&'static PlatformHook> {
    PLATFORM_HOOKS.iter().find(|h| h.binary == binary)
}
