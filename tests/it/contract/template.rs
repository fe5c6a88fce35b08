//! `template.yaml`'s routes, table, token parameters and rules, logging and tracing,
//! and that its functions hold no plaintext secret (the functions themselves:
//! `template_functions.rs`).

use std::collections::{BTreeMap, BTreeSet};

use billing::config::{KeySource, SecretSource};
use billing::http::{CONSOLE_FUNCTION, CONSOLE_ROUTES, Endpoint, PREFIX};
use billing::store::table::TableDefinition;
use billing_tests::Env;
use serde_norway::Value as Yaml;

use super::{
    DEFAULT_ROUTE, Deployment, PEM_MODE, ROUTE_NOT_FOUND, SAMPLE_JWKS_URL, SAMPLE_PEM_SECRET,
    STRIPE_WEBHOOK, TokenMode, WEBHOOK_ROUTE, entries, functions, intrinsic, one_or_many, render,
    str_of, template,
};

/// The other token setting: set, and its secret readable, in PEM mode only.
pub(super) const JWT_PUBLIC_KEY_SECRET_ID: &str = "JWT_PUBLIC_KEY_SECRET_ID";

fn endpoint_routes() -> BTreeSet<(String, String)> {
    Endpoint::ALL
        .iter()
        .map(|e| (e.method().to_string(), format!("{PREFIX}{}", e.path())))
        .collect()
}

pub(super) async fn template_routes_are_the_endpoints(_env: &'static Env) {
    let template = template();
    assert_eq!(
        template["Transform"].as_str(),
        Some("AWS::Serverless-2016-10-31")
    );
    let functions = functions(&template);
    let default_route = (DEFAULT_ROUTE.0.to_owned(), DEFAULT_ROUTE.1.to_owned());
    let webhook_route = (WEBHOOK_ROUTE.0.to_owned(), WEBHOOK_ROUTE.1.to_owned());
    // The webhook is outside the admin prefix (and so outside its auth).
    assert!(
        !WEBHOOK_ROUTE.1.starts_with(PREFIX),
        "the webhook is not under {PREFIX}"
    );
    let console_routes: BTreeSet<(String, String)> = CONSOLE_ROUTES
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    let mut routes = BTreeSet::new();
    for f in &functions {
        let is_endpoint = Endpoint::ALL.iter().any(|e| e.function() == f.binary);
        let serves_http = is_endpoint
            || f.binary == ROUTE_NOT_FOUND
            || f.binary == STRIPE_WEBHOOK
            || f.binary == CONSOLE_FUNCTION;
        assert!(
            !f.event_types.is_empty(),
            "{}: no event invokes it",
            f.logical_id
        );
        assert_eq!(
            f.event_types.iter().all(|t| t == "HttpApi"),
            serves_http,
            "{}: the endpoint, webhook and $default functions have HttpApi events only",
            f.logical_id
        );
        assert_eq!(
            f.event_types.iter().any(|t| t == "HttpApi"),
            serves_http,
            "{}: the other functions have no HttpApi event",
            f.logical_id
        );
        for route in &f.routes {
            assert!(
                routes.insert(route.clone()),
                "route {route:?} is declared twice"
            );
            // The console's routes are the console function's, and its only ones.
            assert_eq!(
                console_routes.contains(route),
                f.binary == CONSOLE_FUNCTION,
                "{}: {CONSOLE_FUNCTION} serves exactly {CONSOLE_ROUTES:?} ({route:?})",
                f.logical_id
            );
            if f.binary == CONSOLE_FUNCTION {
                continue;
            }
            // The $default route is route-not-found's, and its only one.
            assert_eq!(
                *route == default_route,
                f.binary == ROUTE_NOT_FOUND,
                "{}: {ROUTE_NOT_FOUND} serves exactly the $default route ({route:?})",
                f.logical_id
            );
            assert_eq!(
                f.routes.len(),
                1,
                "{}: one route per function",
                f.logical_id
            );
            // The webhook's route is the webhook function's, and its only one.
            assert_eq!(
                *route == webhook_route,
                f.binary == STRIPE_WEBHOOK,
                "{}: {STRIPE_WEBHOOK} serves exactly {WEBHOOK_ROUTE:?} ({route:?})",
                f.logical_id
            );
            if *route == default_route || *route == webhook_route {
                continue;
            }
            // The function serving a route is the endpoint's own binary.
            let endpoint = Endpoint::ALL
                .into_iter()
                .find(|e| (e.method().to_string(), format!("{PREFIX}{}", e.path())) == *route)
                .unwrap_or_else(|| panic!("{}: route {route:?} is no endpoint", f.logical_id));
            assert_eq!(
                f.binary,
                endpoint.function(),
                "{} serves {route:?}",
                f.logical_id
            );
        }
    }
    let mut expected = endpoint_routes();
    expected.insert(default_route);
    expected.insert(webhook_route);
    expected.extend(console_routes);
    assert_eq!(
        routes, expected,
        "template routes == Endpoint::ALL + the $default route + the webhook + the console"
    );
    // The $default stage: paths are served as the spec writes them, no stage prefix.
    let api = &template["Resources"]["HttpApi"];
    assert_eq!(api["Type"].as_str(), Some("AWS::Serverless::HttpApi"));
    assert!(api["Properties"].get("StageName").is_none());
    let throttling = &api["Properties"]["DefaultRouteSettings"];
    assert!(
        throttling["ThrottlingRateLimit"]
            .as_u64()
            .is_some_and(|n| n > 0)
    );
    assert!(
        throttling["ThrottlingBurstLimit"]
            .as_u64()
            .is_some_and(|n| n > 0)
    );
}

pub(super) async fn template_table_is_the_table_definition(_env: &'static Env) {
    let template = template();
    let table = &template["Resources"]["Table"];
    assert_eq!(table["Type"].as_str(), Some("AWS::DynamoDB::Table"));
    assert_eq!(table["DeletionPolicy"].as_str(), Some("Retain"));
    assert_eq!(table["UpdateReplacePolicy"].as_str(), Some("Retain"));
    let p = &table["Properties"];

    type Keys = Vec<(String, String)>;
    let keys_of = |v: &Yaml| -> Keys {
        v.as_sequence()
            .expect("KeySchema")
            .iter()
            .map(|k| (render(&k["AttributeName"]), render(&k["KeyType"])))
            .collect()
    };
    let keys_in_code = |k: &[aws_sdk_dynamodb::types::KeySchemaElement]| -> Keys {
        k.iter()
            .map(|e| {
                (
                    e.attribute_name().to_owned(),
                    e.key_type().as_str().to_owned(),
                )
            })
            .collect()
    };
    let indexes_of = |v: &Yaml| -> BTreeMap<String, (Keys, String)> {
        v.as_sequence()
            .expect("indexes")
            .iter()
            .map(|i| {
                (
                    render(&i["IndexName"]),
                    (
                        keys_of(&i["KeySchema"]),
                        render(&i["Projection"]["ProjectionType"]),
                    ),
                )
            })
            .collect()
    };
    let projection = |p: Option<&aws_sdk_dynamodb::types::Projection>| {
        p.and_then(|p| p.projection_type())
            .map(|t| t.as_str().to_owned())
            .unwrap_or_default()
    };

    let attributes: BTreeSet<(String, String)> = p["AttributeDefinitions"]
        .as_sequence()
        .expect("AttributeDefinitions")
        .iter()
        .map(|a| (render(&a["AttributeName"]), render(&a["AttributeType"])))
        .collect();
    let code_attributes: BTreeSet<(String, String)> = TableDefinition::attributes()
        .iter()
        .map(|a| {
            (
                a.attribute_name().to_owned(),
                a.attribute_type().as_str().to_owned(),
            )
        })
        .collect();
    assert_eq!(attributes, code_attributes, "AttributeDefinitions");

    assert_eq!(
        keys_of(&p["KeySchema"]),
        keys_in_code(&TableDefinition::key_schema())
    );

    let code_lsis: BTreeMap<String, (Keys, String)> = TableDefinition::local_indexes()
        .iter()
        .map(|i| {
            (
                i.index_name().to_owned(),
                (keys_in_code(i.key_schema()), projection(i.projection())),
            )
        })
        .collect();
    assert_eq!(
        indexes_of(&p["LocalSecondaryIndexes"]),
        code_lsis,
        "LocalSecondaryIndexes"
    );

    let code_gsis: BTreeMap<String, (Keys, String)> = TableDefinition::global_indexes()
        .iter()
        .map(|i| {
            (
                i.index_name().to_owned(),
                (keys_in_code(i.key_schema()), projection(i.projection())),
            )
        })
        .collect();
    assert_eq!(code_gsis.len(), 1);
    assert_eq!(
        indexes_of(&p["GlobalSecondaryIndexes"]),
        code_gsis,
        "GlobalSecondaryIndexes"
    );

    assert_eq!(
        render(&p["BillingMode"]),
        TableDefinition::billing_mode().as_str()
    );
    let stream = TableDefinition::stream();
    assert_eq!(
        render(&p["StreamSpecification"]["StreamViewType"]),
        stream
            .stream_view_type()
            .map(|t| t.as_str())
            .unwrap_or_default()
    );
    assert_eq!(
        p["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"].as_bool(),
        Some(true)
    );
    assert_eq!(p["SSESpecification"]["SSEEnabled"].as_bool(), Some(true));
    assert_eq!(p["DeletionProtectionEnabled"].as_bool(), Some(true));
    // The applied-event ids expire (TableDefinition::time_to_live).
    let ttl = TableDefinition::time_to_live();
    assert_eq!(
        render(&p["TimeToLiveSpecification"]["AttributeName"]),
        ttl.attribute_name(),
        "TimeToLiveSpecification.AttributeName"
    );
    assert_eq!(
        p["TimeToLiveSpecification"]["Enabled"].as_bool(),
        Some(ttl.enabled()),
        "TimeToLiveSpecification.Enabled"
    );
    assert!(ttl.enabled(), "the code expires items");
    // The README's first-API-key commands read the table's name from this output.
    assert_eq!(
        render(&template["Outputs"]["TableName"]["Value"]),
        "Ref:Table",
        "Outputs.TableName"
    );
}

/// The token parameters: exactly one key source (PEM secret or JWKS URL), the
/// optional settings empty by default (the code's defaults), and a Rules section
/// refusing any other choice before a stack changes.
pub(super) async fn template_parameters_choose_exactly_one_token_key_source(_env: &'static Env) {
    let template = template();
    let params = &template["Parameters"];
    // Required as before: no default.
    for name in ["JwtIssuer", "JwtAudience"] {
        assert!(params[name].get("Default").is_none(), "{name}: required");
    }
    // Optional, each with its default, a pattern and the variable it sets.
    for (name, default, variable) in [
        ("JwtPublicKeySecretArn", "", JWT_PUBLIC_KEY_SECRET_ID),
        ("JwtJwksUrl", "", "JWT_JWKS_URL"),
        ("JwtAlgorithms", "", "JWT_ALGORITHMS"),
        ("JwtRolesClaim", "roles", "JWT_ROLES_CLAIM"),
        ("JwtMaxAgeSeconds", "", "JWT_MAX_AGE_SECONDS"),
        ("JwtAcceptIdTokens", "", "JWT_ACCEPT_ID_TOKENS"),
        ("ApiKeyMaxDays", "90", "API_KEY_MAX_DAYS"),
    ] {
        let p = &params[name];
        assert_eq!(p["Type"].as_str(), Some("String"), "{name}: Type");
        assert_eq!(p["Default"].as_str(), Some(default), "{name}: Default");
        let pattern = str_of(&p["AllowedPattern"], name);
        assert!(
            pattern.starts_with('^') && pattern.ends_with('$'),
            "{name}: AllowedPattern anchored"
        );
        let description = str_of(&p["Description"], name);
        assert!(
            description.contains(variable),
            "{name}: Description names {variable}"
        );
    }
    // The empty string is "unset" for the code, so each optional pattern allows it;
    // the algorithms are the asymmetric ones the code knows, never HS* or none.
    for name in [
        "JwtPublicKeySecretArn",
        "JwtJwksUrl",
        "JwtAlgorithms",
        "JwtMaxAgeSeconds",
        "JwtAcceptIdTokens",
        "ApiKeyMaxDays",
    ] {
        let pattern = str_of(&params[name]["AllowedPattern"], name);
        assert!(pattern.starts_with("^$|"), "{name}: allows \"\"");
    }
    assert!(
        str_of(&params["JwtJwksUrl"]["AllowedPattern"], "JwtJwksUrl").contains("^https://"),
        "JwtJwksUrl: https only"
    );
    let algorithms = str_of(&params["JwtAlgorithms"]["AllowedPattern"], "JwtAlgorithms");
    for alg in [
        "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
    ] {
        assert!(algorithms.contains(alg), "JwtAlgorithms: allows {alg}");
    }
    for alg in ["HS", "none"] {
        assert!(!algorithms.contains(alg), "JwtAlgorithms: never {alg}");
    }
    // The PEM condition holds exactly when the secret is given.
    for (pem_secret, jwks_url, pem_mode) in [
        (SAMPLE_PEM_SECRET, "", true),
        ("", SAMPLE_JWKS_URL, false),
        ("", "", false),
    ] {
        let deployment = Deployment::new(
            &template,
            &[
                ("JwtPublicKeySecretArn", pem_secret),
                ("JwtJwksUrl", jwks_url),
            ],
        );
        assert_eq!(
            deployment.conditions.get(PEM_MODE),
            Some(&pem_mode),
            "{PEM_MODE} with JwtPublicKeySecretArn={pem_secret:?}"
        );
    }
    // Rules: every assertion holds exactly when one key source is given.
    let assertions: Vec<&Yaml> = entries(&template["Rules"])
        .into_iter()
        .flat_map(|(name, rule)| {
            assert!(
                rule.get("RuleCondition").is_none(),
                "Rules.{name}: applies to every deployment"
            );
            rule["Assertions"]
                .as_sequence()
                .unwrap_or_else(|| panic!("Rules.{name}: Assertions"))
        })
        .collect();
    assert!(
        !assertions.is_empty(),
        "template.yaml: Rules assert the key source"
    );
    for a in &assertions {
        let description = str_of(&a["AssertDescription"], "AssertDescription");
        for name in ["JwtPublicKeySecretArn", "JwtJwksUrl"] {
            assert!(
                description.contains(name),
                "AssertDescription names {name}: {description}"
            );
        }
    }
    for (pem_secret, jwks_url) in [
        ("", ""),
        (SAMPLE_PEM_SECRET, ""),
        ("", SAMPLE_JWKS_URL),
        (SAMPLE_PEM_SECRET, SAMPLE_JWKS_URL),
    ] {
        let deployment = Deployment::new(
            &template,
            &[
                ("JwtPublicKeySecretArn", pem_secret),
                ("JwtJwksUrl", jwks_url),
            ],
        );
        let accepted = assertions
            .iter()
            .all(|a| deployment.holds(&a["Assert"], &Yaml::Null));
        assert_eq!(
            accepted,
            pem_secret.is_empty() != jwks_url.is_empty(),
            "Rules with JwtPublicKeySecretArn={pem_secret:?}, JwtJwksUrl={jwks_url:?}"
        );
    }
}

/// Log level, tracing and the https-only Stripe URL, on every function.
pub(super) async fn template_logs_tracing_and_settings(_env: &'static Env) {
    let template = template();
    let params = &template["Parameters"];
    // Four levels, never trace (at trace the runtime logs raw events, credentials
    // included), each Lambda's uppercase level.
    let levels = one_or_many(&params["LogLevel"]["AllowedValues"]);
    assert_eq!(levels, ["error", "warn", "info", "debug"], "LogLevel");
    assert_eq!(params["LogLevel"]["Default"].as_str(), Some("info"));
    let mapped: BTreeMap<String, String> = entries(&template["Mappings"]["LogLevels"])
        .into_iter()
        .map(|(level, m)| (level, render(&m["ApplicationLogLevel"])))
        .collect();
    let uppercase: BTreeMap<String, String> = levels
        .iter()
        .map(|l| (l.clone(), l.to_uppercase()))
        .collect();
    assert_eq!(mapped, uppercase, "Mappings.LogLevels");
    for f in functions(&template) {
        let id = &f.logical_id;
        // X-Ray on every function (the HTTP API cannot trace: HttpApi has no
        // Tracing).
        assert_eq!(render(&f.properties["Tracing"]), "Active", "{id}: Tracing");
        // Lambda filters at LogLevel and hands it to the code
        // (AWS_LAMBDA_LOG_LEVEL); its own lines from WARN.
        let logging = &f.properties["LoggingConfig"];
        assert_eq!(render(&logging["LogFormat"]), "JSON", "{id}");
        let (function, arg) = intrinsic(&logging["ApplicationLogLevel"])
            .unwrap_or_else(|| panic!("{id}: ApplicationLogLevel from the LogLevels mapping"));
        assert_eq!(function, "FindInMap", "{id}: ApplicationLogLevel");
        assert_eq!(
            one_or_many(arg),
            ["LogLevels", "Ref:LogLevel", "ApplicationLogLevel"],
            "{id}: ApplicationLogLevel"
        );
        assert_eq!(render(&logging["SystemLogLevel"]), "WARN", "{id}");
    }
    assert!(
        template["Resources"]["HttpApi"]["Properties"]
            .get("Tracing")
            .is_none(),
        "HttpApi: SAM's HttpApi has no Tracing"
    );
    // The Stripe key travels with every request: https only.
    let stripe = &params["StripeApiBase"];
    assert_eq!(
        stripe["AllowedPattern"].as_str(),
        Some("^https://.+$"),
        "StripeApiBase: https only"
    );
    assert!(
        str_of(&stripe["Default"], "StripeApiBase").starts_with("https://"),
        "StripeApiBase: Default"
    );
}

/// No function's configuration holds a secret in plain text (readable with
/// `lambda:GetFunctionConfiguration`): no dynamic reference (`{{resolve:...}}`,
/// which CloudFormation resolves into the plain value), every variable that
/// names a key, secret, token or password is a `..._SECRET_ID` naming a
/// Secrets Manager secret (a parameter that must be a secret's ARN, or a
/// secret of the template), and every secret the code reads from it comes
/// from Secrets Manager, in either token key mode.
pub(super) async fn template_functions_hold_no_plaintext_secret(_env: &'static Env) {
    let template = template();
    let params = &template["Parameters"];
    let names_a_secret = |value: &str| -> bool {
        let Some(name) = value.strip_prefix("Ref:") else {
            return false;
        };
        let is_secret_param = params.get(name).is_some_and(|p| {
            p["AllowedPattern"]
                .as_str()
                .is_some_and(|a| a.contains(":secretsmanager:"))
        });
        let is_secret_resource =
            template["Resources"][name]["Type"].as_str() == Some("AWS::SecretsManager::Secret");
        is_secret_param || is_secret_resource
    };
    let secretish = [
        "KEY",
        "SECRET",
        "TOKEN",
        "PASSWORD",
        "PRIVATE",
        "CREDENTIAL",
    ];
    for mode in [TokenMode::Pem, TokenMode::Jwks] {
        let deployment = Deployment::of(&template, mode);
        for f in functions(&template) {
            let id = &f.logical_id;
            let raw: BTreeMap<String, &Yaml> = f
                .properties
                .get("Environment")
                .map(|e| entries(&e["Variables"]).into_iter().collect())
                .unwrap_or_default();
            let vars = deployment.env(&raw);
            for (name, value) in &vars {
                assert!(
                    !value.contains("{{resolve:"),
                    "{id}: {name} is resolved into the configuration"
                );
                // Settings whose names only sound secret: a lifetime and a switch.
                let setting = ["API_KEY_MAX_DAYS", "JWT_ACCEPT_ID_TOKENS"].contains(&name.as_str());
                if secretish.iter().any(|s| name.contains(s)) && !setting {
                    assert!(
                        name.ends_with("_SECRET_ID") && names_a_secret(value),
                        "{id} ({mode:?}): {name} = {value} is not a Secrets Manager secret's id"
                    );
                }
            }
            let config =
                billing::config::Config::from_lookup(|k| vars.get(k).map(|v| deployment.value(v)))
                    .unwrap_or_else(|e| panic!("{id}: {e}"));
            let mut sources: Vec<(&str, &SecretSource)> = Vec::new();
            if let Some(KeySource::Pem(s)) = config.auth.as_ref().map(|a| &a.keys) {
                sources.push(("JWT public key", s));
            }
            if let Some(stripe) = &config.stripe {
                sources.push(("Stripe key", &stripe.secret_key));
            }
            if let Some(s) = &config.stripe_webhook_secret {
                sources.push(("webhook secret", s));
            }
            if let Some(s) = &config.cursor_key {
                sources.push(("cursor key", s));
            }
            for (what, source) in sources {
                assert!(
                    matches!(source, SecretSource::SecretsManager(_)),
                    "{id} ({mode:?}): the {what} is in its configuration"
                );
            }
        }
    }
}
