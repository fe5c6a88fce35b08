//! `template.yaml`'s functions: the workspace's packages, each configured and
//! given the environment its code reads.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use billing::config::{KeySource, SecretSource};
use billing::http::{CONSOLE_FUNCTION, Endpoint};
use billing_tests::Env;
use billing_tests::servers::repo_root;
use serde_norway::Value as Yaml;

use super::template::JWT_PUBLIC_KEY_SECRET_ID;
use super::{
    DELETION_MONITOR, Deployment, PEM_MODE, PLATFORM_CUSTOMER_HOOK, RECONCILE, ROUTE_NOT_FOUND,
    SAMPLE_AUDIENCE, SAMPLE_ISSUER, SAMPLE_JWKS_URL, SAMPLE_PEM_SECRET, SAMPLE_WEBHOOK_SECRET,
    STREAM_CONSUMER, STRIPE_WEBHOOK, TokenMode, USER_DELETED_HOOK, conditional, entries, functions,
    is_no_value, one_or_many, render, template,
};

/// Functions that run the deletion cascade, and so need Stripe.
pub(super) fn runs_cascade(binary: &str) -> bool {
    binary == Endpoint::DeleteCustomer.function()
        || binary == STREAM_CONSUMER
        || binary == USER_DELETED_HOOK
}

/// Functions that call Stripe: the cascade's, the reconciliation, the webhook,
/// the platform's customer events.
pub(super) fn calls_stripe(binary: &str) -> bool {
    runs_cascade(binary)
        || binary == RECONCILE
        || binary == STRIPE_WEBHOOK
        || binary == PLATFORM_CUSTOMER_HOOK
}

/// The token settings of the HTTP functions, each from its parameter.
pub(super) const JWT_SETTINGS: [(&str, &str); 7] = [
    ("JWT_ISSUER", "JwtIssuer"),
    ("JWT_AUDIENCE", "JwtAudience"),
    ("JWT_JWKS_URL", "JwtJwksUrl"),
    ("JWT_ALGORITHMS", "JwtAlgorithms"),
    ("JWT_ROLES_CLAIM", "JwtRolesClaim"),
    ("JWT_MAX_AGE_SECONDS", "JwtMaxAgeSeconds"),
    ("JWT_ACCEPT_ID_TOKENS", "JwtAcceptIdTokens"),
];
/// `MyThing` from `my-thing`.
pub(super) fn pascal(kebab: &str) -> String {
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

/// Package names of `functions/*/Cargo.toml`.
pub(super) fn function_packages() -> BTreeSet<String> {
    let dir = repo_root().join("functions");
    std::fs::read_dir(&dir)
        .expect("read functions/")
        .map(|entry| entry.expect("functions/ entry").path())
        .filter(|p| p.join("Cargo.toml").is_file())
        .map(|p| package_name(&p.join("Cargo.toml")))
        .collect()
}

/// `name` in the `[package]` table of a manifest.
pub(super) fn package_name(manifest: &Path) -> String {
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
