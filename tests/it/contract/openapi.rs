//! `openapi.yaml`: its operations, parameters and statuses are the code's.

use std::collections::BTreeSet;

use billing::domain::{PageRequest, Role, SubscriptionStatus};
use billing::http::{Endpoint, PREFIX};
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

/// Statuses each operation can answer, from the handlers and `ApiError::status`:
/// 503 everywhere (`auth_unavailable`: in JWKS mode the identity provider's keys
/// cannot be fetched and none are cached), 404 where a customer is looked up, 409
/// where a membership condition can fail.
fn expected_statuses(endpoint: Endpoint) -> BTreeSet<u16> {
    let common = [400, 401, 403, 500, 503];
    let specific: &[u16] = match endpoint {
        Endpoint::ListCustomers => &[200],
        Endpoint::GetCustomer => &[200, 404],
        Endpoint::DeleteCustomer => &[204, 404],
        Endpoint::ListMembers => &[200, 404],
        Endpoint::AddMember => &[201, 404, 409],
        Endpoint::RemoveMember => &[204, 404, 409],
    };
    common.iter().chain(specific).copied().collect()
}

/// The codes a 503 of this operation can carry: `auth_unavailable` everywhere,
/// `contention` where a transaction runs (bounded retries on conflicts), and
/// `deletion_in_progress` where the cascade's budget can run out.
fn expected_503_codes(endpoint: Endpoint) -> &'static [&'static str] {
    match endpoint {
        Endpoint::ListCustomers | Endpoint::GetCustomer | Endpoint::ListMembers => {
            &["auth_unavailable"]
        }
        Endpoint::DeleteCustomer => &["auth_unavailable", "contention", "deletion_in_progress"],
        Endpoint::AddMember | Endpoint::RemoveMember => &["auth_unavailable", "contention"],
    }
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
        let query: BTreeSet<String> = match endpoint {
            Endpoint::ListCustomers => ["page", "limit", "tierName", "status", "cursor"]
                .map(String::from)
                .into(),
            Endpoint::ListMembers => ["page", "limit", "cursor"].map(String::from).into(),
            _ => BTreeSet::new(),
        };
        assert_eq!(named("query"), query, "{what}: query parameters");
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
        assert_eq!(statuses, expected_statuses(endpoint), "{what}: statuses");
        for (code, response) in &responses {
            let response = resolve(&doc, response);
            if code.starts_with('2') {
                continue;
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
                let description = str_of(&response["description"], "description");
                for code in expected_503_codes(endpoint) {
                    assert!(
                        description.contains(&format!("`{code}`")),
                        "{what} 503: the description names `{code}`"
                    );
                }
                for code in ["contention", "deletion_in_progress"] {
                    if !expected_503_codes(endpoint).contains(&code) {
                        assert!(
                            !description.contains(&format!("`{code}`")),
                            "{what} 503: cannot answer `{code}`"
                        );
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
