//! `openapi.yaml`: its operations, parameters and statuses are the code's.

use std::collections::BTreeSet;

use billing::api::{Endpoint, PREFIX};
use billing::domain::audit::{Action, Actor};
use billing::domain::{PageRequest, Role, SubscriptionStatus};
use billing::store::Applied;
use billing::sync::signature::SignatureError;
use billing_tests::Env;
use serde_norway::Value as Yaml;

use super::{entries, one_or_many, render, str_of, yaml};

/// The webhook's operation: its method, its path as served (outside the admin
/// prefix), and its operation id.
const WEBHOOK_METHOD: &str = "POST";
const WEBHOOK_OPERATION: &str = "stripeWebhook";

const HTTP_METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "patch", "head", "options", "trace",
];

/// `(METHOD, path)` and the operation, for every operation in the document.
fn operations(doc: &Yaml) -> Vec<((String, String), &Yaml, &Yaml)> {
    let mut ops = Vec::new();
    for (path, item) in entries(&doc["paths"]) {
        for (key, op) in entries(item) {
            if HTTP_METHODS.contains(&key.as_str()) {
                ops.push(((key.to_uppercase(), path.clone()), item, op));
            }
        }
    }
    ops
}

/// Follows a local `$ref`.
fn resolve<'a>(doc: &'a Yaml, v: &'a Yaml) -> &'a Yaml {
    match v.get("$ref").map(|r| str_of(r, "$ref")) {
        Some(r) => {
            let target = r
                .strip_prefix("#/")
                .unwrap_or_else(|| panic!("only local refs: {r}"))
                .split('/')
                .fold(doc, |node, part| &node[part]);
            assert!(!target.is_null(), "dangling $ref {r}");
            resolve(doc, target)
        }
        None => v,
    }
}

/// The path an operation is served at: its path item's `servers` (the webhook's,
/// outside the prefix) or the document's (the admin prefix), then its path.
fn served_at(doc: &Yaml, item: &Yaml, path: &str) -> String {
    let servers = item
        .get("servers")
        .unwrap_or(&doc["servers"])
        .as_sequence()
        .expect("servers");
    assert_eq!(servers.len(), 1, "{path}: one server");
    format!("{}{path}", str_of(&servers[0]["url"], "servers[0].url"))
}

fn is_webhook(doc: &Yaml, item: &Yaml, path: &str) -> bool {
    served_at(doc, item, path) == billing::sync::webhook::PATH
}

fn endpoint_of(method: &str, path: &str) -> Endpoint {
    Endpoint::ALL
        .into_iter()
        .find(|e| e.method().as_str() == method && e.path() == path)
        .unwrap_or_else(|| panic!("{method} {path} is no endpoint"))
}

pub(super) async fn openapi_operations_are_the_endpoints(_env: &'static Env) {
    let doc = yaml("openapi.yaml");
    assert!(render(&doc["openapi"]).starts_with("3.1"));
    let servers = doc["servers"].as_sequence().expect("servers");
    assert_eq!(servers.len(), 1);
    assert_eq!(servers[0]["url"].as_str(), Some(PREFIX));
    // Every operation as served (server URL and path): the endpoints under the
    // admin prefix, and Stripe's webhook outside it.
    let documented: BTreeSet<(String, String)> = operations(&doc)
        .into_iter()
        .map(|((method, path), item, _)| (method, served_at(&doc, item, &path)))
        .collect();
    let mut code: BTreeSet<(String, String)> = Endpoint::ALL
        .iter()
        .map(|e| (e.method().to_string(), format!("{PREFIX}{}", e.path())))
        .collect();
    code.insert((
        WEBHOOK_METHOD.to_owned(),
        billing::sync::webhook::PATH.to_owned(),
    ));
    assert_eq!(
        documented, code,
        "openapi.yaml operations == Endpoint::ALL + the webhook"
    );
    // The admin credentials everywhere but on the webhook, whose credential is
    // Stripe's signature.
    for ((method, path), item, op) in operations(&doc) {
        if is_webhook(&doc, item, &path) {
            assert_eq!(render(&op["operationId"]), WEBHOOK_OPERATION);
            assert_eq!(
                op["security"].as_sequence().map(Vec::len),
                Some(0),
                "{method} {path}: security: [] (no admin credentials)"
            );
        } else {
            assert!(
                op.get("security").is_none(),
                "{method} {path}: the document's security"
            );
        }
    }
    // Either credential form, the api-key pair as one requirement.
    let security: Vec<BTreeSet<String>> = doc["security"]
        .as_sequence()
        .expect("security")
        .iter()
        .map(|req| entries(req).into_iter().map(|(k, _)| k).collect())
        .collect();
    assert_eq!(
        security,
        vec![
            BTreeSet::from(["bearerAuth".to_owned()]),
            BTreeSet::from(["apiKey".to_owned(), "apiSecret".to_owned()]),
        ]
    );
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["bearerAuth"]["scheme"].as_str(), Some("bearer"));
    let bearer = str_of(&schemes["bearerAuth"]["description"], "bearerAuth");
    for word in ["JWKS", "RS256", "PS256", "ES256", "EdDSA"] {
        assert!(bearer.contains(word), "bearerAuth: mentions {word}");
    }
    assert_eq!(schemes["apiKey"]["name"].as_str(), Some("api-key"));
    assert_eq!(schemes["apiSecret"]["name"].as_str(), Some("api-secret"));
}

/// The codes a 503 of this operation can carry: `auth_unavailable` everywhere
/// (in JWKS mode the identity provider's keys cannot be fetched and none are
/// cached), `contention` where a transaction runs (bounded retries on
/// conflicts), and `deletion_in_progress` where the cascade's budget can run
/// out (DELETE customer).
fn expected_503_codes(endpoint: Endpoint) -> Vec<&'static str> {
    let mut codes = vec!["auth_unavailable"];
    if !endpoint.transaction_writes().is_empty() {
        codes.push("contention");
    }
    if endpoint == Endpoint::DeleteCustomer {
        codes.push("deletion_in_progress");
    }
    codes
}

/// The query parameters a handler reads: a listing's page, limit and cursor,
/// and the customers' filters.
fn expected_query(endpoint: Endpoint) -> BTreeSet<String> {
    let mut query = BTreeSet::new();
    if endpoint.pages_with_cursors() {
        query.extend(["page", "limit", "cursor"].map(String::from));
    }
    if endpoint == Endpoint::ListCustomers {
        query.extend(["tierName", "status"].map(String::from));
    }
    query
}

/// The `Idempotency-Key` request header and `Idempotent-Replayed` response
/// header (billing::api's idempotency module).
const IDEMPOTENCY_KEY: &str = "Idempotency-Key";
const IDEMPOTENT_REPLAYED: &str = "Idempotent-Replayed";

/// Every audit action, as entries and events name it.
fn audit_actions() -> BTreeSet<String> {
    let all = [
        Action::CustomerCreated,
        Action::CustomerUpdated,
        Action::CustomerDeleted,
        Action::MemberAdded,
        Action::MemberRemoved,
        Action::MemberRoleChanged,
    ];
    // A new action fails to compile here until it is listed above.
    for action in all {
        match action {
            Action::CustomerCreated
            | Action::CustomerUpdated
            | Action::CustomerDeleted
            | Action::MemberAdded
            | Action::MemberRemoved
            | Action::MemberRoleChanged => {}
        }
    }
    all.iter().map(|a| a.as_str().to_owned()).collect()
}

/// Every kind of actor, as the code serializes it: its `type` and its fields.
fn audit_actors() -> BTreeSet<(String, BTreeSet<String>)> {
    let text = String::new;
    let all = [
        Actor::User { subject: text() },
        Actor::ApiKey {
            key_id: text(),
            user_id: text(),
        },
        Actor::Platform { event_id: text() },
        Actor::Stripe { event_id: text() },
        Actor::System { name: text() },
    ];
    all.iter()
        .map(|actor| {
            // A new kind fails to compile here until it is listed above.
            match actor {
                Actor::User { .. }
                | Actor::ApiKey { .. }
                | Actor::Platform { .. }
                | Actor::Stripe { .. }
                | Actor::System { .. } => {}
            }
            let value = serde_json::to_value(actor).expect("actor JSON");
            let fields = value.as_object().expect("an object");
            (
                fields["type"].as_str().expect("type").to_owned(),
                fields.keys().cloned().collect(),
            )
        })
        .collect()
}

pub(super) async fn openapi_parameters_and_statuses_match_the_code(_env: &'static Env) {
    let doc = yaml("openapi.yaml");
    for ((method, path), item, op) in operations(&doc) {
        if is_webhook(&doc, item, &path) {
            check_webhook_operation(&doc, &format!("{method} {path}"), item, op);
            continue;
        }
        let endpoint = endpoint_of(&method, &path);
        let what = format!("{method} {path}");
        // Parameters: path ones are the template's, query ones what the handler reads.
        let params: Vec<&Yaml> = [&item["parameters"], &op["parameters"]]
            .into_iter()
            .filter_map(Yaml::as_sequence)
            .flatten()
            .map(|p| resolve(&doc, p))
            .collect();
        let named = |place: &str| -> BTreeSet<String> {
            params
                .iter()
                .filter(|p| p["in"].as_str() == Some(place))
                .map(|p| render(&p["name"]))
                .collect()
        };
        let in_path: BTreeSet<String> = endpoint
            .path()
            .split('/')
            .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
            .map(str::to_owned)
            .collect();
        assert_eq!(named("path"), in_path, "{what}: path parameters");
        assert_eq!(
            named("query"),
            expected_query(endpoint),
            "{what}: query parameters"
        );
        // Idempotency-Key exactly where the code honours it, optional.
        let headers = named("header");
        let idempotent = endpoint.idempotent();
        assert_eq!(
            headers,
            idempotent
                .then(|| IDEMPOTENCY_KEY.to_owned())
                .into_iter()
                .collect(),
            "{what}: header parameters"
        );
        for p in params
            .iter()
            .filter(|p| render(&p["name"]) == IDEMPOTENCY_KEY)
        {
            assert_ne!(p["required"].as_bool(), Some(true), "{what}: optional");
            let schema = resolve(&doc, &p["schema"]);
            assert_eq!(schema["minLength"].as_u64(), Some(1), "{what}");
            assert_eq!(schema["maxLength"].as_u64(), Some(255), "{what}");
        }
        for p in &params {
            let schema = resolve(&doc, &p["schema"]);
            match p["name"].as_str() {
                Some("page") => {
                    assert_eq!(schema["minimum"].as_u64(), Some(1));
                    assert_eq!(schema["maximum"].as_u64(), Some(u64::from(u32::MAX)));
                    assert_eq!(schema["default"].as_u64(), Some(1));
                }
                Some("limit") => {
                    assert_eq!(schema["minimum"].as_u64(), Some(1));
                    assert_eq!(
                        schema["maximum"].as_u64(),
                        Some(u64::from(PageRequest::MAX_LIMIT))
                    );
                    assert_eq!(
                        schema["default"].as_u64(),
                        Some(u64::from(PageRequest::DEFAULT_LIMIT))
                    );
                }
                Some("status") => {
                    let documented = one_or_many(&schema["enum"]);
                    let code: Vec<String> = SubscriptionStatus::ALL
                        .iter()
                        .map(|s| s.as_str().to_owned())
                        .collect();
                    assert_eq!(documented, code);
                }
                _ => {}
            }
        }
        // Statuses: exactly what the code can answer; every error in the convention.
        let responses = entries(&op["responses"]);
        let statuses: BTreeSet<u16> = responses
            .iter()
            .map(|(code, _)| {
                code.parse()
                    .unwrap_or_else(|_| panic!("{what}: status {code}"))
            })
            .collect();
        assert_eq!(
            statuses,
            endpoint.statuses().iter().copied().collect(),
            "{what}: statuses"
        );
        for (code, response) in &responses {
            let response = resolve(&doc, response);
            let description = || str_of(&response["description"], "description");
            if code.starts_with('2') {
                // A replayed answer says so.
                assert_eq!(
                    response["headers"].get(IDEMPOTENT_REPLAYED).is_some(),
                    idempotent,
                    "{what} {code}: {IDEMPOTENT_REPLAYED}"
                );
                continue;
            }
            let names = |c: &str| description().contains(&format!("`{c}`"));
            if idempotent {
                let answer = match code.as_str() {
                    "400" => Some("invalid_idempotency_key"),
                    "409" => Some("idempotency_key_in_use"),
                    "422" => Some("idempotency_key_reused"),
                    _ => None,
                };
                if let Some(c) = answer {
                    assert!(names(c), "{what} {code}: the description names `{c}`");
                }
            }
            for header in ["x-error", "x-error-id"] {
                assert!(
                    response["headers"].get(header).is_some(),
                    "{what} {code}: {header}"
                );
            }
            if code == "503" {
                assert!(
                    response["headers"].get("Retry-After").is_some(),
                    "{what} 503: Retry-After"
                );
                let expected = expected_503_codes(endpoint);
                for code in &expected {
                    assert!(names(code), "{what} 503: the description names `{code}`");
                }
                for code in ["contention", "deletion_in_progress"] {
                    if !expected.contains(&code) {
                        assert!(!names(code), "{what} 503: cannot answer `{code}`");
                    }
                }
            }
            let schema = &response["content"]["application/json"]["schema"];
            assert_eq!(
                render(&schema["$ref"]),
                "#/components/schemas/Error",
                "{what} {code}"
            );
        }
    }
    let error = &doc["components"]["schemas"]["Error"]["properties"]["error"];
    let required: BTreeSet<String> = one_or_many(&error["required"]).into_iter().collect();
    assert_eq!(
        required,
        ["message", "type", "code", "error_id"]
            .map(String::from)
            .into()
    );
    assert!(error["properties"].get("param").is_some());
    let roles = one_or_many(&doc["components"]["schemas"]["Role"]["enum"]);
    let code_roles: Vec<String> = [Role::Owner, Role::Admin, Role::User]
        .iter()
        .map(|r| r.as_str().to_owned())
        .collect();
    assert_eq!(roles, code_roles);
    // The audit trail: every action and every kind of actor the code writes.
    let schemas = &doc["components"]["schemas"];
    let actions: BTreeSet<String> =
        one_or_many(&schemas["AuditEvent"]["properties"]["action"]["enum"])
            .into_iter()
            .collect();
    assert_eq!(actions, audit_actions(), "AuditEvent.action");
    let actors: BTreeSet<(String, BTreeSet<String>)> = schemas["AuditActor"]["oneOf"]
        .as_sequence()
        .expect("AuditActor.oneOf")
        .iter()
        .map(|kind| {
            let fields: BTreeSet<String> = entries(&kind["properties"])
                .into_iter()
                .map(|(k, _)| k)
                .collect();
            let required: BTreeSet<String> = one_or_many(&kind["required"]).into_iter().collect();
            assert_eq!(required, fields, "AuditActor: every field required");
            (render(&kind["properties"]["type"]["const"]), fields)
        })
        .collect();
    assert_eq!(actors, audit_actors(), "AuditActor");
}

/// The webhook: Stripe's signature header and any JSON body in; the statuses
/// and codes `billing::sync::webhook` answers out.
fn check_webhook_operation(doc: &Yaml, what: &str, item: &Yaml, op: &Yaml) {
    let params: Vec<&Yaml> = [&item["parameters"], &op["parameters"]]
        .into_iter()
        .filter_map(Yaml::as_sequence)
        .flatten()
        .map(|p| resolve(doc, p))
        .collect();
    let named: Vec<(String, String, bool)> = params
        .iter()
        .map(|p| {
            (
                render(&p["in"]),
                render(&p["name"]),
                p["required"].as_bool() == Some(true),
            )
        })
        .collect();
    assert_eq!(
        named,
        [("header".to_owned(), "Stripe-Signature".to_owned(), true)],
        "{what}: parameters"
    );
    let body = resolve(doc, &op["requestBody"]);
    assert_eq!(
        body["required"].as_bool(),
        Some(true),
        "{what}: requestBody"
    );
    assert!(
        body["content"].get("application/json").is_some(),
        "{what}: a JSON body"
    );
    let responses = entries(&op["responses"]);
    let statuses: BTreeSet<u16> = responses
        .iter()
        .map(|(code, _)| code.parse().expect("status"))
        .collect();
    assert_eq!(
        statuses,
        BTreeSet::from([200, 400, 405, 500, 503]),
        "{what}: statuses"
    );
    for (code, response) in &responses {
        let response = resolve(doc, response);
        let description = str_of(&response["description"], "description");
        let schema = &response["content"]["application/json"]["schema"];
        if code == "200" {
            // Every outcome the code answers, and nothing else.
            let schema = resolve(doc, schema);
            let documented: BTreeSet<String> =
                one_or_many(&schema["properties"]["outcome"]["enum"])
                    .into_iter()
                    .collect();
            let code_outcomes: BTreeSet<String> = [
                Applied::Changed,
                Applied::Unchanged,
                Applied::Duplicate,
                Applied::Stale,
                Applied::NotFound,
            ]
            .iter()
            .map(|a| a.as_str())
            .chain(["ignored", "rejected"])
            .map(str::to_owned)
            .collect();
            assert_eq!(documented, code_outcomes, "{what} 200: outcomes");
            continue;
        }
        for header in ["x-error", "x-error-id"] {
            assert!(
                response["headers"].get(header).is_some(),
                "{what} {code}: {header}"
            );
        }
        assert_eq!(
            render(&schema["$ref"]),
            "#/components/schemas/Error",
            "{what} {code}"
        );
        let codes: Vec<&str> = match code.as_str() {
            "400" => [
                SignatureError::Missing,
                SignatureError::Malformed,
                SignatureError::Expired,
            ]
            .iter()
            .map(|e| e.code())
            .chain(["invalid_event", "body_too_large"])
            .collect(),
            "405" => {
                assert!(
                    response["headers"].get("Allow").is_some(),
                    "{what} 405: Allow"
                );
                vec!["method_not_allowed"]
            }
            "500" => vec!["database_error"],
            "503" => {
                assert!(
                    response["headers"].get("Retry-After").is_some(),
                    "{what} 503: Retry-After"
                );
                vec!["contention"]
            }
            other => panic!("{what}: status {other}"),
        };
        for c in codes {
            assert!(
                description.contains(&format!("`{c}`")),
                "{what} {code}: the description names `{c}`"
            );
        }
        // No admin answers: the webhook authenticates no operator.
        for c in ["unauthorized", "forbidden", "auth_unavailable"] {
            assert!(
                !description.contains(&format!("`{c}`")),
                "{what} {code}: cannot answer `{c}`"
            );
        }
    }
}
