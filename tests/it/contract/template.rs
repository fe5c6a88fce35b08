//! `template.yaml`'s functions, routes, table, token parameters and rules, logging and tracing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use billing::config::{KeySource, SecretSource};
use billing::http::{CONSOLE_FUNCTION, CONSOLE_ROUTES, Endpoint, PREFIX};
use billing::store::table::TableDefinition;
use billing_tests::Env;
use billing_tests::servers::repo_root;
use serde_norway::Value as Yaml;

use super::{
    DEFAULT_ROUTE, DELETION_MONITOR, Deployment, PEM_MODE, PLATFORM_CUSTOMER_HOOK, RECONCILE,
    ROUTE_NOT_FOUND, SAMPLE_AUDIENCE, SAMPLE_ISSUER, SAMPLE_JWKS_URL, SAMPLE_PEM_SECRET,
    SAMPLE_WEBHOOK_SECRET, STREAM_CONSUMER, STRIPE_WEBHOOK, TokenMode, USER_DELETED_HOOK,
    WEBHOOK_ROUTE, conditional, entries, functions, intrinsic, is_no_value, one_or_many, render,
    str_of, template,
};

/// Functions that run the deletion cascade, and so need Stripe.
fn runs_cascade(binary: &str) -> bool {
    binary == Endpoint::DeleteCustomer.function()
        || binary == STREAM_CONSUMER
        || binary == USER_DELETED_HOOK
}

/// Functions that call Stripe: the cascade's, the reconciliation, the webhook,
/// the platform's customer events.
fn calls_stripe(binary: &str) -> bool {
    runs_cascade(binary)
        || binary == RECONCILE
        || binary == STRIPE_WEBHOOK
        || binary == PLATFORM_CUSTOMER_HOOK
}

/// The token settings of the HTTP functions, each from its parameter.
const JWT_SETTINGS: [(&str, &str); 7] = [
    ("JWT_ISSUER", "JwtIssuer"),
    ("JWT_AUDIENCE", "JwtAudience"),
    ("JWT_JWKS_URL", "JwtJwksUrl"),
    ("JWT_ALGORITHMS", "JwtAlgorithms"),
    ("JWT_ROLES_CLAIM", "JwtRolesClaim"),
    ("JWT_MAX_AGE_SECONDS", "JwtMaxAgeSeconds"),
    ("JWT_ACCEPT_ID_TOKENS", "JwtAcceptIdTokens"),
];
/// The other token setting: set, and its secret readable, in PEM mode only.
const JWT_PUBLIC_KEY_SECRET_ID: &str = "JWT_PUBLIC_KEY_SECRET_ID";

/// `MyThing` from `my-thing`.
fn pascal(kebab: &str) -> String {
    kebab
        .split('-')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_uppercase().chain(c).collect::<String>())
                .unwrap_or_default()
        })
        .collect()
}

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

/// Package names of `functions/*/Cargo.toml`.
fn function_packages() -> BTreeSet<String> {
    let dir = repo_root().join("functions");
    std::fs::read_dir(&dir)
        .expect("read functions/")
        .map(|entry| entry.expect("functions/ entry").path())
        .filter(|p| p.join("Cargo.toml").is_file())
        .map(|p| package_name(&p.join("Cargo.toml")))
        .collect()
}

/// `name` in the `[package]` table of a manifest.
fn package_name(manifest: &Path) -> String {
    let text = std::fs::read_to_string(manifest).expect("read Cargo.toml");
    let mut in_package = false;
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            in_package = line == "[package]";
        } else if let Some(value) = line.strip_prefix("name").map(str::trim_start)
            && in_package
            && let Some(value) = value.strip_prefix('=')
        {
            return value.trim().trim_matches('"').to_owned();
        }
    }
    panic!("{}: no [package] name", manifest.display())
}

pub(super) async fn template_functions_are_the_workspace_packages(_env: &'static Env) {
    let template = template();
    let functions = functions(&template);
    let (pem, jwks) = (
        Deployment::of(&template, TokenMode::Pem),
        Deployment::of(&template, TokenMode::Jwks),
    );
    let binaries: BTreeSet<String> = functions.iter().map(|f| f.binary.clone()).collect();
    assert_eq!(binaries.len(), functions.len(), "one function per binary");
    assert_eq!(
        binaries,
        function_packages(),
        "template functions == packages under functions/"
    );
    for f in &functions {
        let id = &f.logical_id;
        assert_eq!(*id, format!("{}Function", pascal(&f.binary)));
        let prop = |name: &str| {
            f.properties
                .get(name)
                .unwrap_or_else(|| panic!("{id}: no {name}"))
        };
        // cargo-lambda builds `--bin <Binary>` in CodeUri and SAM copies the
        // workspace's target/lambda/<Binary>/bootstrap: CodeUri is the function's
        // package, so that cargo resolves that package's features alone.
        assert_eq!(
            render(prop("CodeUri")),
            format!("functions/{}", f.binary),
            "{id}"
        );
        assert_eq!(render(prop("Runtime")), "provided.al2023", "{id}");
        assert_eq!(render(prop("Handler")), "bootstrap", "{id}");
        assert_eq!(one_or_many(prop("Architectures")), ["arm64"], "{id}");
        assert_eq!(render(&prop("LoggingConfig")["LogFormat"]), "JSON", "{id}");
        // Its own log group, with a retention.
        let group = render(&prop("LoggingConfig")["LogGroup"]);
        let group = group.strip_prefix("Ref:").expect("LogGroup: !Ref");
        let resource = &template["Resources"][group];
        assert_eq!(
            resource["Type"].as_str(),
            Some("AWS::Logs::LogGroup"),
            "{id}"
        );
        assert!(
            resource["Properties"].get("RetentionInDays").is_some(),
            "{id}"
        );
        // The environment the code reads is complete and consistent, in either
        // token key mode: `raw` as written, `vars` as deployed (here in PEM mode).
        let raw: BTreeMap<String, &Yaml> = entries(&prop("Environment")["Variables"])
            .into_iter()
            .collect();
        let vars = pem.env(&raw);
        assert_eq!(
            vars.get("TABLE_NAME").map(String::as_str),
            Some("Ref:Table"),
            "{id}: TABLE_NAME"
        );
        // The log level is LoggingConfig's (AWS_LAMBDA_LOG_LEVEL, the same level
        // Lambda filters at): a RUST_LOG would override it in the code only.
        assert!(!vars.contains_key("RUST_LOG"), "{id}: no RUST_LOG");
        // Token settings exactly where HTTP is served (so not in Globals: SAM cannot
        // take a global variable away from a function), the key never inline.
        let serves_http = Endpoint::ALL.iter().any(|e| e.function() == f.binary);
        let jwt_vars: BTreeSet<&str> = raw
            .keys()
            .map(String::as_str)
            .filter(|k| k.starts_with("JWT_"))
            .collect();
        let expected: BTreeSet<&str> = if serves_http {
            JWT_SETTINGS
                .iter()
                .map(|(name, _)| *name)
                .chain([JWT_PUBLIC_KEY_SECRET_ID])
                .collect()
        } else {
            BTreeSet::new()
        };
        assert_eq!(
            jwt_vars, expected,
            "{id}: the JWT settings are set on exactly the HTTP functions"
        );
        if serves_http {
            for (name, param) in JWT_SETTINGS {
                assert_eq!(render(raw[name]), format!("Ref:{param}"), "{id}: {name}");
            }
            // The PEM secret's id only in PEM mode, left out otherwise.
            let (condition, then, otherwise) = conditional(raw[JWT_PUBLIC_KEY_SECRET_ID])
                .unwrap_or_else(|| panic!("{id}: {JWT_PUBLIC_KEY_SECRET_ID} is conditional"));
            assert_eq!(condition, PEM_MODE, "{id}: {JWT_PUBLIC_KEY_SECRET_ID}");
            assert_eq!(render(then), "Ref:JwtPublicKeySecretArn", "{id}");
            assert!(is_no_value(otherwise), "{id}: else AWS::NoValue");
        }
        assert!(!raw.contains_key("JWT_PUBLIC_KEY"), "{id}: no inline key");
        let config_in = |deployment: &Deployment, mode: TokenMode| {
            let vars = deployment.env(&raw);
            let config =
                billing::config::Config::from_lookup(|k| vars.get(k).map(|v| deployment.value(v)))
                    .unwrap_or_else(|e| panic!("{id} in {mode:?} mode: {e}"));
            (vars, config)
        };
        for (deployment, mode) in [(&pem, TokenMode::Pem), (&jwks, TokenMode::Jwks)] {
            let (vars, config) = config_in(deployment, mode);
            let Some(auth) = &config.auth else {
                assert!(!serves_http, "{id}: serves HTTP without token settings");
                continue;
            };
            assert!(
                serves_http,
                "{id}: verifies no tokens, needs no JWT settings"
            );
            assert_eq!(auth.jwt.issuer, SAMPLE_ISSUER, "{id}");
            assert_eq!(auth.jwt.audience, SAMPLE_AUDIENCE, "{id}");
            // The optional settings' defaults are the code's.
            assert_eq!(auth.jwt.roles_claim, "roles", "{id}: JWT_ROLES_CLAIM");
            assert_eq!(auth.jwt.max_age, None, "{id}: JWT_MAX_AGE_SECONDS");
            assert!(!auth.jwt.accept_id_tokens, "{id}: JWT_ACCEPT_ID_TOKENS");
            match mode {
                TokenMode::Pem => {
                    assert!(
                        matches!(&auth.keys, KeySource::Pem(SecretSource::SecretsManager(arn)) if arn == SAMPLE_PEM_SECRET),
                        "{id}: the JWT key comes from Secrets Manager"
                    );
                    assert_eq!(vars[JWT_PUBLIC_KEY_SECRET_ID], "Ref:JwtPublicKeySecretArn");
                    assert_eq!(deployment.value(&vars["JWT_JWKS_URL"]), "", "{id}");
                }
                TokenMode::Jwks => {
                    assert!(
                        matches!(&auth.keys, KeySource::Jwks(url) if url == SAMPLE_JWKS_URL),
                        "{id}: the JWT keys come from the JWKS URL"
                    );
                    assert!(
                        !vars.contains_key(JWT_PUBLIC_KEY_SECRET_ID),
                        "{id}: no JWT secret in JWKS mode"
                    );
                    assert_eq!(
                        deployment.value(&vars["JWT_JWKS_URL"]),
                        SAMPLE_JWKS_URL,
                        "{id}"
                    );
                }
            }
        }
        let (_, config) = config_in(&pem, TokenMode::Pem);
        // The API keys' longest lifetime where keys are verified: the HTTP
        // functions, from its parameter (90 days by default).
        assert_eq!(
            vars.get("API_KEY_MAX_DAYS").map(String::as_str),
            serves_http.then_some("Ref:ApiKeyMaxDays"),
            "{id}: API_KEY_MAX_DAYS"
        );
        assert_eq!(config.api_key_max_days, 90, "{id}: API_KEY_MAX_DAYS");
        // The cursor key exactly where listings are served (the route table's
        // endpoints that page with cursors): the generated secret, by ARN,
        // read by the code (never resolved into the configuration).
        let lists = Endpoint::ALL
            .iter()
            .any(|e| e.pages_with_cursors() && e.function() == f.binary);
        assert_eq!(
            config.cursor_key.is_some(),
            lists,
            "{id}: CURSOR_KEY_SECRET_ID"
        );
        assert!(
            !raw.contains_key("CURSOR_KEY"),
            "{id}: no cursor key in the configuration"
        );
        if lists {
            assert_eq!(
                render(raw["CURSOR_KEY_SECRET_ID"]),
                "Ref:CursorKeySecret",
                "{id}: CURSOR_KEY_SECRET_ID"
            );
            assert!(
                matches!(&config.cursor_key, Some(SecretSource::SecretsManager(_))),
                "{id}: the cursor key comes from Secrets Manager"
            );
            assert_eq!(
                template["Resources"]["CursorKeySecret"]["Type"].as_str(),
                Some("AWS::SecretsManager::Secret")
            );
        }
        // Only the stream consumer waits for a cascade in progress.
        assert_eq!(
            vars.contains_key("CASCADE_GRACE_SECONDS"),
            f.binary == STREAM_CONSUMER,
            "{id}: CASCADE_GRACE_SECONDS"
        );
        // Stripe only where the cascade, the reconciliation or the webhook (which
        // reads Stripe's state) runs, its key from Secrets Manager.
        match &config.stripe {
            Some(stripe) => {
                assert!(calls_stripe(&f.binary), "{id}: needs no Stripe key");
                assert!(
                    matches!(stripe.secret_key, SecretSource::SecretsManager(_)),
                    "{id}"
                );
                assert_eq!(
                    vars["STRIPE_SECRET_KEY_SECRET_ID"],
                    "Ref:StripeSecretKeySecretArn"
                );
            }
            None => assert!(
                !calls_stripe(&f.binary),
                "{id}: calls Stripe without its key"
            ),
        }
        // The webhook's signing secret only where webhooks are served, from
        // Secrets Manager (the code reads it again as it is rolled).
        match &config.stripe_webhook_secret {
            Some(secret) => {
                assert_eq!(f.binary, STRIPE_WEBHOOK, "{id}: needs no webhook secret");
                assert!(
                    matches!(secret, SecretSource::SecretsManager(arn) if arn == SAMPLE_WEBHOOK_SECRET),
                    "{id}: the webhook secret comes from Secrets Manager"
                );
                assert_eq!(
                    vars["STRIPE_WEBHOOK_SECRET_SECRET_ID"], "Ref:StripeWebhookSecretArn",
                    "{id}"
                );
            }
            None => assert_ne!(f.binary, STRIPE_WEBHOOK, "{id}: no webhook secret"),
        }
        // Only the stream consumer publishes customer.deleted.
        assert_eq!(
            config.event_bus.is_some(),
            f.binary == STREAM_CONSUMER,
            "{id}: EVENT_BUS_NAME"
        );
        match f.binary.as_str() {
            STREAM_CONSUMER => {
                assert_eq!(f.event_types, ["DynamoDB"], "{id}");
                let events = prop("Events");
                let stream = entries(events)
                    .into_iter()
                    .map(|(_, e)| render(&e["Properties"]["Stream"]))
                    .collect::<Vec<_>>();
                assert_eq!(stream, ["GetAtt:Table.StreamArn"], "{id}");
                // It leaves a live DELETE request its cascade: the grace outlasts the
                // request, the consumer's Timeout comfortably outlasts the grace, and
                // batches gather as long as the grace so records rarely wait for it.
                assert_eq!(config.cascade_grace, Duration::from_secs(30), "{id}");
                let seconds = |v: &Yaml| Duration::from_secs(v.as_u64().expect("seconds"));
                let delete = functions
                    .iter()
                    .find(|g| g.binary == Endpoint::DeleteCustomer.function())
                    .expect("the DELETE function");
                assert!(
                    config.cascade_grace > seconds(&delete.properties["Timeout"]),
                    "{id}: the grace outlasts a DELETE request"
                );
                assert!(
                    seconds(prop("Timeout")) >= 2 * config.cascade_grace,
                    "{id}: Timeout comfortably exceeds the grace"
                );
                let windows: Vec<Option<u64>> = entries(events)
                    .into_iter()
                    .map(|(_, e)| e["Properties"]["MaximumBatchingWindowInSeconds"].as_u64())
                    .collect();
                assert_eq!(windows, [Some(30)], "{id}: MaximumBatchingWindowInSeconds");
                // The handler answers with the records it failed on
                // (batchItemFailures): Lambda honours that only when asked to.
                for (name, e) in entries(events) {
                    assert_eq!(
                        one_or_many(&e["Properties"]["FunctionResponseTypes"]),
                        ["ReportBatchItemFailures"],
                        "{id}.{name}: reports batch item failures"
                    );
                    let on_failure = &e["Properties"]["DestinationConfig"]["OnFailure"];
                    assert_eq!(render(&on_failure["Type"]), "SQS", "{id}.{name}");
                    assert_eq!(
                        render(&on_failure["Destination"]),
                        "GetAtt:CleanupStreamFailureQueue.Arn",
                        "{id}.{name}: batches given up on"
                    );
                }
            }
            USER_DELETED_HOOK => assert_eq!(f.event_types, ["EventBridgeRule"], "{id}"),
            // The table, the webhook's secret and Stripe (each event reads
            // Stripe's state); no token, no bus.
            STRIPE_WEBHOOK | PLATFORM_CUSTOMER_HOOK => {
                let stripe = ["STRIPE_SECRET_KEY_SECRET_ID", "STRIPE_API_BASE"];
                let (invoked_by, own): (&str, &[&str]) = if f.binary == STRIPE_WEBHOOK {
                    (
                        "HttpApi",
                        &["STRIPE_WEBHOOK_SECRET_SECRET_ID", stripe[0], stripe[1]],
                    )
                } else {
                    (
                        "EventBridgeRule",
                        &[
                            stripe[0],
                            stripe[1],
                            "PLATFORM_EVENT_SOURCE",
                            "PLATFORM_ACCOUNT_ID",
                        ],
                    )
                };
                assert_eq!(f.event_types, [invoked_by], "{id}");
                assert_eq!(
                    vars.keys().map(String::as_str).collect::<BTreeSet<_>>(),
                    own.iter()
                        .copied()
                        .chain(["TABLE_NAME", "STACK_NAME"])
                        .collect(),
                    "{id}: its environment"
                );
                assert!(config.auth.is_none(), "{id}: verifies no tokens");
                assert_eq!(
                    config.stripe.is_some(),
                    own.contains(&stripe[0]),
                    "{id}: a Stripe key where it reads Stripe"
                );
                assert!(config.event_bus.is_none(), "{id}: publishes nothing");
            }
            RECONCILE => {
                assert_eq!(f.event_types, ["Schedule"], "{id}");
                assert_eq!(
                    vars.keys().map(String::as_str).collect::<BTreeSet<_>>(),
                    BTreeSet::from([
                        "TABLE_NAME",
                        "STACK_NAME",
                        "STRIPE_SECRET_KEY_SECRET_ID",
                        "STRIPE_API_BASE",
                        billing::sync::reconcile::REPAIR_SETTING,
                    ]),
                    "{id}: its environment"
                );
                assert_eq!(
                    vars[billing::sync::reconcile::REPAIR_SETTING],
                    "Ref:ReconcileRepair",
                    "{id}"
                );
                // Every value the parameter allows means what it says to the
                // code, and by default it only reports.
                let repair = &template["Parameters"]["ReconcileRepair"];
                for value in one_or_many(&repair["AllowedValues"]) {
                    assert_eq!(
                        billing::sync::reconcile::repair_setting(Some(&value)).ok(),
                        Some(value == "true"),
                        "ReconcileRepair={value}"
                    );
                }
                assert_eq!(render(&repair["Default"]), "false", "ReconcileRepair");
                // Its schedule is a parameter, daily by default.
                let schedules: Vec<String> = entries(prop("Events"))
                    .into_iter()
                    .map(|(_, e)| pem.value(&render(&e["Properties"]["Schedule"])))
                    .collect();
                assert_eq!(schedules, ["rate(1 day)"], "{id}: schedule");
                // A walk of every customer and of Stripe's lists: Lambda's longest.
                assert_eq!(prop("Timeout").as_u64(), Some(900), "{id}: Timeout");
                assert!(config.auth.is_none(), "{id}: verifies no tokens");
                assert!(config.event_bus.is_none(), "{id}: publishes nothing");
            }
            // The page and its settings: no table, token, Stripe or bus; the
            // issuer and client of its sign-in, and the tiers it offers.
            CONSOLE_FUNCTION => {
                assert_eq!(f.event_types, ["HttpApi", "HttpApi"], "{id}");
                assert_eq!(
                    vars.keys().map(String::as_str).collect::<BTreeSet<_>>(),
                    BTreeSet::from([
                        "TABLE_NAME",
                        "STACK_NAME",
                        "CONSOLE_OIDC_ISSUER",
                        "CONSOLE_OIDC_CLIENT_ID",
                        "CONSOLE_TIERS",
                    ]),
                    "{id}: its environment"
                );
                assert_eq!(vars["CONSOLE_OIDC_ISSUER"], "Ref:JwtIssuer", "{id}");
                assert_eq!(
                    vars["CONSOLE_OIDC_CLIENT_ID"], "Ref:ConsoleOidcClientId",
                    "{id}"
                );
                assert_eq!(vars["CONSOLE_TIERS"], "Ref:ConsoleTiers", "{id}");
                // As deployed by default: no OpenID Connect client, the demo's tiers;
                // with a client, the issuer's sign-in.
                let settings = |client: &str| {
                    console::Settings::from_lookup(|k| match k {
                        "CONSOLE_OIDC_CLIENT_ID" => Some(client.to_owned()),
                        _ => vars.get(k).map(|v| pem.value(v)),
                    })
                };
                let default = settings("").expect("default console settings");
                assert_eq!(default.oidc, None, "{id}");
                assert_eq!(default.tiers, ["free", "pro", "enterprise"], "{id}");
                let oidc = settings("console-client").expect("console settings with a client");
                assert_eq!(
                    oidc.oidc.map(|o| o.issuer).as_deref(),
                    Some(SAMPLE_ISSUER),
                    "{id}"
                );
                assert!(config.auth.is_none(), "{id}: verifies no tokens");
                assert!(config.stripe.is_none(), "{id}: no Stripe");
                assert!(config.event_bus.is_none(), "{id}: publishes nothing");
            }
            ROUTE_NOT_FOUND | DELETION_MONITOR => {
                let invoked_by = if f.binary == ROUTE_NOT_FOUND {
                    "HttpApi"
                } else {
                    "Schedule"
                };
                assert_eq!(f.event_types, [invoked_by], "{id}");
                // Nothing of its own: TABLE_NAME (which route-not-found never
                // reads) and STACK_NAME (its metrics' stack) come from Globals;
                // no token, Stripe or event bus settings.
                assert!(
                    template["Resources"][id.as_str()]["Properties"]
                        .get("Environment")
                        .is_none(),
                    "{id}: needs no environment of its own"
                );
                assert_eq!(
                    vars.keys().map(String::as_str).collect::<BTreeSet<_>>(),
                    BTreeSet::from(["STACK_NAME", "TABLE_NAME"]),
                    "{id}"
                );
                assert!(config.auth.is_none(), "{id}: verifies no tokens");
                assert!(config.stripe.is_none(), "{id}: no Stripe");
                assert!(config.event_bus.is_none(), "{id}: publishes nothing");
            }
            _ => {}
        }
    }
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
