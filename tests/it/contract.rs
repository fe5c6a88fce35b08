//! The deployment contract: the events under `events/` (API Gateway, DynamoDB
//! Streams, EventBridge) run through the real handlers, and `template.yaml` and
//! `openapi.yaml` describe exactly the code (routes, the `$default` route,
//! functions, table, IAM, operations), with the operational parts around it:
//! alarms on what they claim to watch, tracing and log levels, and the locked
//! ingress of the platform's `user.deleted`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use aws_lambda_events::eventbridge::EventBridgeEvent;
use aws_sdk_dynamodb::types::AttributeValue;
use billing::cleanup::{Cleanup, UserCleanup};
use billing::config::{KeySource, SecretSource};
use billing::domain::{CustomerId, PageRequest, Role, SubscriptionStatus, Timestamp, UserId, time};
use billing::events::{CustomerDeleted, Publisher, UserDeleted};
use billing::http::{Endpoint, PREFIX};
use billing::store::table::{
    LISTING_INDEXES, MEMBERS_INDEX, StreamCustomer, TableDefinition, customer_key, stream_customer,
};
use billing_tests::Env;
use billing_tests::app::{Reply, TestApp, token};
use billing_tests::servers::repo_root;
use billing_tests::sinks::{EventSink, settle};
use http::{Method, StatusCode};
use serde_json::{Value, json};
use serde_norway::Value as Yaml;

use crate::TestFn;

pub fn trials() -> Vec<(&'static str, TestFn)> {
    crate::trials![
        events_run_through_the_real_handlers,
        events_without_a_fresh_token_are_unauthorized,
        template_routes_are_the_endpoints,
        template_functions_are_the_workspace_packages,
        template_table_is_the_table_definition,
        template_grants_each_function_exactly_its_calls,
        template_parameters_choose_exactly_one_token_key_source,
        template_logs_tracing_and_settings,
        template_alarms_watch_what_they_claim,
        template_locks_the_user_deleted_ingress,
        openapi_operations_are_the_endpoints,
        openapi_parameters_and_statuses_match_the_code,
    ]
}

// ---- events/ ------------------------------------------------------------------

/// What the events name; seeded before each event runs.
const CUSTOMER: &str = "a1b2c3d4-5633-4b16-bbf0-5ca22ef8ea2e";
const OWNER: &str = "5f35d2c4-5633-4b16-bbf0-5ca22ef8ea2e";
const ADMIN: &str = "706a116f-0236-460e-8f08-9a65a2da89c2";
/// The member `remove-member.json` removes.
const MEMBER: &str = "9de7068a-2422-46c1-b718-4a95a91cd559";
/// The user `add-member.json` adds.
const NEWCOMER: &str = "ea04845b-d127-4bd6-ae1b-b5ef40a3a7a7";
/// Another customer, filtered out by `list-customers.json` (`status=active`).
const PAST_DUE: &str = "c0ffee00-5633-4b16-bbf0-5ca22ef8ea2e";
const TIER_ID: &str = "e1f2a3b4-5633-4b16-bbf0-5ca22ef8ea2e";
const CREATED_AT: &str = "2026-02-03T09:14:22Z";
/// The token placeholder in every event; a test substitutes a fresh token.
const PLACEHOLDER: &str = "REPLACED_BY_TEST";

fn fixtures() -> Value {
    json!({"customers": [
        {
            "id": CUSTOMER, "name": "Acme Corp", "tierName": "pro", "tierID": TIER_ID,
            "subscriptionStatus": "active", "createdAt": CREATED_AT, "ownerUserID": OWNER,
            "members": [
                {"userID": OWNER, "role": "owner"},
                {"userID": ADMIN, "role": "admin"},
                {"userID": MEMBER, "role": "user"},
            ],
        },
        {
            "id": PAST_DUE, "name": "Globex", "tierName": "pro", "tierID": TIER_ID,
            "subscriptionStatus": "past_due", "createdAt": "2026-01-05T00:00:00Z",
            "ownerUserID": "00000000-0000-0000-0000-000000000000", "members": [],
        },
    ]})
}

/// The function an `events/` file invokes, by the file's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Invokes {
    /// An endpoint's function: an API Gateway payload 2.0 event.
    Endpoint(Endpoint),
    /// `route-not-found`: the payload 2.0 event of the `$default` route.
    RouteNotFound,
    /// `cleanup-stream`: a batch of the table's DynamoDB Streams records.
    StreamConsumer,
    /// `user-deleted`: the platform's `user.deleted` EventBridge event.
    UserDeletedHook,
    /// `deletion-monitor`: the scheduled event of its `rate(5 minutes)` rule.
    DeletionMonitor,
}

impl Invokes {
    fn all() -> impl Iterator<Item = Self> {
        Endpoint::ALL.into_iter().map(Self::Endpoint).chain([
            Self::RouteNotFound,
            Self::StreamConsumer,
            Self::UserDeletedHook,
            Self::DeletionMonitor,
        ])
    }

    fn function(self) -> &'static str {
        match self {
            Self::Endpoint(e) => e.function(),
            Self::RouteNotFound => ROUTE_NOT_FOUND,
            Self::StreamConsumer => STREAM_CONSUMER,
            Self::UserDeletedHook => USER_DELETED_HOOK,
            Self::DeletionMonitor => DELETION_MONITOR,
        }
    }
}

/// Every file in `events/`, with the function its name names; every function of
/// the template has exactly one (`sam local invoke` runs template functions; that
/// they are the packages under functions/ is
/// `template_functions_are_the_workspace_packages`).
fn event_files() -> Vec<(Invokes, PathBuf)> {
    let dir = repo_root().join("events");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("read events/")
        .map(|entry| entry.expect("events/ entry").path())
        .collect();
    files.sort();
    let found: Vec<(Invokes, PathBuf)> = files
        .into_iter()
        .map(|path| {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("?");
            let stem = name.strip_suffix(".json").unwrap_or_else(|| {
                panic!("events/{name}: every file in events/ is a Lambda event (*.json)")
            });
            let invokes = Invokes::all()
                .find(|i| i.function() == stem)
                .unwrap_or_else(|| panic!("events/{name} names no function"));
            (invokes, path)
        })
        .collect();
    let named: BTreeSet<String> = found.iter().map(|(i, _)| i.function().to_owned()).collect();
    let template: BTreeSet<String> = functions(&yaml("template.yaml"))
        .into_iter()
        .map(|f| f.binary)
        .collect();
    assert_eq!(named, template, "one event per template function");
    found
}

/// The API Gateway events of `events/`, one per endpoint.
fn http_event_files() -> Vec<(Endpoint, PathBuf)> {
    event_files()
        .into_iter()
        .filter_map(|(invokes, path)| match invokes {
            Invokes::Endpoint(endpoint) => Some((endpoint, path)),
            _ => None,
        })
        .collect()
}

/// The event is the payload 2.0 API Gateway sends for this endpoint's route.
fn check_event(endpoint: Endpoint, name: &str, event: &Value) {
    let route_key = format!("{} {PREFIX}{}", endpoint.method(), endpoint.path());
    let ctx = &event["requestContext"];
    assert_eq!(event["version"], "2.0", "{name}");
    assert_eq!(event["routeKey"], route_key.as_str(), "{name}");
    assert_eq!(ctx["routeKey"], route_key.as_str(), "{name}");
    assert_eq!(ctx["stage"], "$default", "{name}");
    assert_eq!(ctx["http"]["method"], endpoint.method().as_str(), "{name}");
    let raw_path = event["rawPath"].as_str().expect("rawPath");
    assert_eq!(ctx["http"]["path"], raw_path, "{name}");
    assert_eq!(
        event["headers"]["authorization"],
        format!("Bearer {PLACEHOLDER}").as_str(),
        "{name}: the token is a placeholder the test replaces"
    );
    // The path parameters are what the router extracts from rawPath.
    let (routed, params) = billing::http::route(&endpoint.method(), raw_path)
        .unwrap_or_else(|e| panic!("{name}: rawPath does not route: {e}"));
    assert_eq!(routed, endpoint, "{name}");
    let params: BTreeMap<String, Value> = params.into_iter().map(|(k, v)| (k, json!(v))).collect();
    let given: BTreeMap<String, Value> = event["pathParameters"]
        .as_object()
        .map(|m| m.clone().into_iter().collect())
        .unwrap_or_default();
    assert_eq!(given, params, "{name}: pathParameters");
    // queryStringParameters is what rawQueryString holds.
    let raw_query = event["rawQueryString"].as_str().expect("rawQueryString");
    let query: BTreeMap<String, Value> = raw_query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (k.to_owned(), json!(v))
        })
        .collect();
    let given: BTreeMap<String, Value> = event["queryStringParameters"]
        .as_object()
        .map(|m| m.clone().into_iter().collect())
        .unwrap_or_default();
    assert_eq!(given, query, "{name}: queryStringParameters");
}

fn customer_id() -> CustomerId {
    CustomerId::parse(CUSTOMER).expect("test UUID")
}

fn user(id: &str) -> UserId {
    UserId::parse(id).expect("test UUID")
}

/// The response the handler gave the event, and the table after it.
async fn check_outcome(endpoint: Endpoint, app: &TestApp, reply: &Reply) {
    let json_type = || {
        assert_eq!(reply.headers["content-type"], "application/json");
    };
    match endpoint {
        Endpoint::ListCustomers => {
            assert_eq!(reply.status, StatusCode::OK);
            json_type();
            assert_eq!(
                reply.json,
                json!({
                    "customers": [{
                        "id": CUSTOMER, "name": "Acme Corp", "tierName": "pro",
                        "subscriptionStatus": "active", "memberCount": 3,
                        "createdAt": CREATED_AT, "ownerUserID": OWNER,
                    }],
                    "items": 1,
                    "pages": 1,
                })
            );
        }
        Endpoint::GetCustomer => {
            assert_eq!(reply.status, StatusCode::OK);
            json_type();
            assert_eq!(
                reply.json,
                json!({
                    "id": CUSTOMER, "name": "Acme Corp", "createdAt": CREATED_AT,
                    "tierName": "pro", "tierID": TIER_ID, "subscriptionStatus": "active",
                    "memberCount": 3, "ownerUserID": OWNER,
                })
            );
        }
        Endpoint::DeleteCustomer => {
            assert_eq!(reply.status, StatusCode::NO_CONTENT);
            assert_eq!(reply.json, Value::Null);
            assert_eq!(
                app.store.find_customer(&customer_id()).await.ok(),
                Some(None)
            );
            for u in [OWNER, ADMIN, MEMBER] {
                assert_eq!(app.store.membership_of(&user(u)).await.ok(), Some(None));
            }
        }
        Endpoint::ListMembers => {
            assert_eq!(reply.status, StatusCode::OK);
            json_type();
            assert_eq!(
                (&reply.json["items"], &reply.json["pages"]),
                (&json!(3), &json!(1))
            );
            let members = reply.json["members"].as_array().expect("members");
            let got: Vec<Value> = members
                .iter()
                .map(|m| json!([m["userID"], m["role"], m["joinedAt"]]))
                .collect();
            // Owner, admins, users; seeding joins them one second apart, in fixture order.
            let want = vec![
                json!([OWNER, "owner", "2026-02-03T09:14:22Z"]),
                json!([ADMIN, "admin", "2026-02-03T09:14:23Z"]),
                json!([MEMBER, "user", "2026-02-03T09:14:24Z"]),
            ];
            assert_eq!(got, want);
            for m in members {
                let keys: BTreeSet<&str> = m
                    .as_object()
                    .expect("member")
                    .keys()
                    .map(String::as_str)
                    .collect();
                assert_eq!(
                    keys,
                    BTreeSet::from(["roleID", "userID", "role", "joinedAt"])
                );
                assert!(uuid::Uuid::parse_str(m["roleID"].as_str().expect("roleID")).is_ok());
            }
        }
        Endpoint::AddMember => {
            assert_eq!(reply.status, StatusCode::CREATED);
            json_type();
            assert_eq!(reply.json, json!({"message": "acknowledged"}));
            assert_eq!(
                app.store.membership_of(&user(NEWCOMER)).await.ok(),
                Some(Some((customer_id(), Role::User)))
            );
            let customer = app
                .store
                .get_customer(&customer_id())
                .await
                .expect("customer");
            assert_eq!(customer.member_count, 4);
        }
        Endpoint::RemoveMember => {
            assert_eq!(reply.status, StatusCode::NO_CONTENT);
            assert_eq!(reply.json, Value::Null);
            assert_eq!(
                app.store.membership_of(&user(MEMBER)).await.ok(),
                Some(None)
            );
            let customer = app
                .store
                .get_customer(&customer_id())
                .await
                .expect("customer");
            assert_eq!(customer.member_count, 2);
        }
    }
}

async fn events_run_through_the_real_handlers(env: &'static Env) {
    for (invokes, path) in event_files() {
        let name = path.display().to_string();
        let raw = std::fs::read_to_string(&path).expect("read event");
        let event: Value = serde_json::from_str(&raw).unwrap_or_else(|e| panic!("{name}: {e}"));
        match invokes {
            Invokes::Endpoint(endpoint) => run_http_event(env, endpoint, &name, &raw, &event).await,
            Invokes::RouteNotFound => run_route_not_found_event(&name, &raw, &event),
            Invokes::StreamConsumer => run_stream_event(env, &name, &raw, &event).await,
            Invokes::UserDeletedHook => run_user_deleted_event(env, &name, &raw, &event).await,
            Invokes::DeletionMonitor => check_deletion_monitor_event(&name, &raw, &event),
        }
    }
}

async fn run_http_event(env: &Env, endpoint: Endpoint, name: &str, raw: &str, event: &Value) {
    check_event(endpoint, name, event);
    // GIVEN a fresh table holding what the event names, and a fresh token
    let app = TestApp::new(env).await;
    app.seed(fixtures()).await;
    let fresh = token(&uuid::Uuid::new_v4().to_string(), &["billing_admin"], 300);
    // WHEN the event, parsed as the Lambda runtime does, reaches the function's handler
    let req = lambda_http::request::from_str(&raw.replace(PLACEHOLDER, &fresh))
        .unwrap_or_else(|e| panic!("{name}: not an API Gateway payload 2.0 event: {e}"));
    assert_eq!(req.method(), endpoint.method(), "{name}");
    let reply = Reply::from(billing::api::handle(&app.state, endpoint, req).await);
    // THEN the function answers with its success status and shape
    check_outcome(endpoint, &app, &reply).await;
}

/// The event is the payload 2.0 API Gateway sends to the `$default` route: a
/// request no route matches, without credentials (the function reads none).
fn check_route_not_found_event(name: &str, event: &Value) {
    let ctx = &event["requestContext"];
    assert_eq!(event["version"], "2.0", "{name}");
    assert_eq!(event["routeKey"], DEFAULT_ROUTE.1, "{name}");
    assert_eq!(ctx["routeKey"], DEFAULT_ROUTE.1, "{name}");
    assert_eq!(ctx["stage"], "$default", "{name}");
    let raw_path = event["rawPath"].as_str().expect("rawPath");
    assert_eq!(ctx["http"]["path"], raw_path, "{name}");
    let method: Method = ctx["http"]["method"]
        .as_str()
        .and_then(|m| m.parse().ok())
        .unwrap_or_else(|| panic!("{name}: requestContext.http.method"));
    assert!(
        billing::http::route(&method, raw_path).is_err(),
        "{name}: {method} {raw_path} matches a route, so API Gateway would not send it to $default"
    );
    assert!(
        event.get("pathParameters").is_none(),
        "{name}: the $default route has no path parameters"
    );
    assert!(
        event["headers"].get("authorization").is_none(),
        "{name}: the $default route needs no credentials"
    );
}

/// The `$default` route's answer to `event` with another method and path.
fn route_not_found_with(event: &Value, method: &str, path: &str) -> Reply {
    let mut event = event.clone();
    event["rawPath"] = json!(path);
    event["requestContext"]["http"]["path"] = json!(path);
    event["requestContext"]["http"]["method"] = json!(method);
    let raw = serde_json::to_string(&event).expect("event JSON");
    let req = lambda_http::request::from_str(&raw).expect("event parses");
    assert_eq!(req.method().as_str(), method);
    assert_eq!(req.uri().path(), path);
    Reply::from(billing::api::route_not_found(&req))
}

fn run_route_not_found_event(name: &str, raw: &str, event: &Value) {
    check_route_not_found_event(name, event);
    // GIVEN the event, parsed as the Lambda runtime does: PUT on the customers list
    let req = lambda_http::request::from_str(raw)
        .unwrap_or_else(|e| panic!("{name}: not an API Gateway payload 2.0 event: {e}"));
    assert_eq!(req.method(), Method::PUT, "{name}");
    assert_eq!(req.uri().path(), format!("{PREFIX}/customers"), "{name}");
    // WHEN it reaches the function's handler
    let reply = Reply::from(billing::api::route_not_found(&req));
    // THEN it is 405 with the path's methods in `Allow`, in the error convention
    assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED, "{name}");
    assert_eq!(reply.headers["allow"], "GET", "{name}");
    assert_eq!(reply.error_code(), "method_not_allowed", "{name}");
    // and a path no endpoint has is 404, with no `Allow`, whatever the method
    for (method, path) in [
        ("GET", format!("{PREFIX}/invoices")),
        (
            "GET",
            format!("{PREFIX}/customer/{CUSTOMER}/members/{MEMBER}"),
        ),
        ("POST", "/".to_owned()),
    ] {
        let reply = route_not_found_with(event, method, &path);
        assert_eq!(
            reply.status,
            StatusCode::NOT_FOUND,
            "{name}: {method} {path}"
        );
        assert!(
            reply.headers.get("allow").is_none(),
            "{name}: {method} {path}"
        );
        assert_eq!(
            reply.error_code(),
            "route_not_found",
            "{name}: {method} {path}"
        );
    }
    // and a known path with several routes allows each of their methods
    let reply = route_not_found_with(event, "PATCH", &format!("{PREFIX}/customer/{CUSTOMER}"));
    assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED, "{name}");
    let allowed: BTreeSet<&str> = reply.headers["allow"]
        .to_str()
        .expect("Allow")
        .split(", ")
        .collect();
    assert_eq!(allowed, BTreeSet::from(["GET", "DELETE"]), "{name}");
    assert_eq!(reply.error_code(), "method_not_allowed", "{name}");
}

/// Whether `event` matches an EventBridge-style pattern, in the subset the template
/// uses: nested objects, and lists of exact values.
fn matches_pattern(pattern: &Value, event: &Value) -> bool {
    match pattern {
        Value::Object(fields) => fields.iter().all(|(k, p)| matches_pattern(p, &event[k])),
        Value::Array(values) => values.iter().any(|v| {
            assert!(
                !v.is_object() && !v.is_array(),
                "unsupported pattern value {v}"
            );
            v == event
        }),
        other => panic!("unsupported pattern {other}"),
    }
}

/// The `Events` of the template function built from `binary`.
fn template_events(binary: &str) -> Yaml {
    let template = yaml("template.yaml");
    functions(&template)
        .into_iter()
        .find(|f| f.binary == binary)
        .and_then(|f| f.properties.get("Events").cloned())
        .unwrap_or_else(|| panic!("template.yaml: no {binary} function with Events"))
}

/// A stream image (`{"S": ..}`, `{"N": ..}`) of an item as the SDK returns it.
fn image(item: &HashMap<String, AttributeValue>) -> Value {
    item.iter()
        .map(|(k, v)| {
            let v = match v {
                AttributeValue::S(s) => json!({"S": s}),
                AttributeValue::N(n) => json!({"N": n}),
                other => panic!("{k}: customer records hold strings and numbers, not {other:?}"),
            };
            (k.clone(), v)
        })
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// The customer record as the table holds it, as a stream image.
async fn stored_image(app: &TestApp, id: &CustomerId) -> Value {
    let out = app
        .store
        .client()
        .get_item()
        .table_name(app.store.table_name())
        .set_key(Some(customer_key(id)))
        .consistent_read(true)
        .send()
        .await
        .expect("get the customer record");
    image(&out.item.expect("customer record"))
}

fn without(v: &Value, key: &str) -> Value {
    let mut v = v.clone();
    if let Some(fields) = v.as_object_mut() {
        fields.remove(key);
    }
    v
}

/// A customer record's image but for when its deletion began: without
/// `deletingSince`, and with that time as `<deletingSince>` where a key holds it
/// (the `GSI1SK` of a deleting customer starts with it).
fn timeless(image: &Value) -> Value {
    let mut v = without(image, "deletingSince");
    if let Some(since) = image["deletingSince"]["S"].as_str()
        && let Some(fields) = v.as_object_mut()
    {
        for value in fields.values_mut() {
            if let Some(s) = value["S"].as_str()
                && s.contains(since)
            {
                *value = json!({"S": s.replace(since, "<deletingSince>")});
            }
        }
    }
    v
}

/// The batch is what Lambda delivers from the table's stream, through the template's
/// filters.
fn check_stream_event(name: &str, event: &Value) {
    let events = template_events(STREAM_CONSUMER);
    let filters: Vec<Value> = entries(&events)
        .into_iter()
        .flat_map(|(_, e)| {
            e["Properties"]["FilterCriteria"]["Filters"]
                .as_sequence()
                .cloned()
                .unwrap_or_default()
        })
        .map(|f| {
            serde_json::from_str(str_of(&f["Pattern"], "Pattern")).expect("filter pattern JSON")
        })
        .collect();
    assert!(!filters.is_empty(), "template.yaml: the stream has filters");
    let view_type = TableDefinition::stream()
        .stream_view_type()
        .map(|t| t.as_str().to_owned())
        .unwrap_or_default();
    let keys = image(&customer_key(&customer_id()));
    let records = event["Records"].as_array().expect("Records");
    assert_eq!(records.len(), 2, "{name}: a MODIFY and a REMOVE");
    for (i, record) in records.iter().enumerate() {
        let what = format!("{name}: Records[{i}]");
        assert_eq!(record["eventSource"], "aws:dynamodb", "{what}");
        assert!(record["awsRegion"].is_string(), "{what}");
        assert!(
            record["eventSourceARN"]
                .as_str()
                .is_some_and(|arn| arn.starts_with("arn:aws:dynamodb:") && arn.contains("/stream/")),
            "{what}: eventSourceARN is a table stream"
        );
        let change = &record["dynamodb"];
        assert_eq!(change["StreamViewType"], view_type.as_str(), "{what}");
        assert_eq!(change["Keys"], keys, "{what}: the customer record's key");
        assert!(change["ApproximateCreationDateTime"].is_number(), "{what}");
        assert!(
            change["SizeBytes"].as_u64().is_some_and(|n| n > 0),
            "{what}"
        );
        assert!(
            change["SequenceNumber"]
                .as_str()
                .is_some_and(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())),
            "{what}: SequenceNumber"
        );
        assert!(
            filters.iter().any(|f| matches_pattern(f, record)),
            "{what}: passes one of the template's FilterCriteria"
        );
    }
}

async fn run_stream_event(env: &Env, name: &str, raw: &str, json: &Value) {
    check_stream_event(name, json);
    // The batch, parsed as the Lambda runtime does: the customer's record entering
    // the deleting state, then removed.
    let event: aws_lambda_events::dynamodb::Event = serde_json::from_str(raw)
        .unwrap_or_else(|e| panic!("{name}: not a DynamoDB Streams event: {e}"));
    let id = customer_id();
    let seen: Vec<Option<StreamCustomer>> = event.records.iter().map(stream_customer).collect();
    assert_eq!(
        seen,
        [
            Some(StreamCustomer::Deleting(id)),
            Some(StreamCustomer::Removed(id))
        ],
        "{name}"
    );

    // GIVEN the customer with its members, put into the deleting state as a DELETE
    // request does before it dies
    let app = TestApp::new(env).await;
    app.seed(fixtures()).await;
    let active = stored_image(&app, &id).await;
    app.store.begin_deletion(&id).await.expect("begin deletion");
    let deleting = stored_image(&app, &id).await;
    // and the records' images are that record as the table holds it (but for when
    // the deletion began), the last one after the members are gone
    let (modify, remove) = (
        &json["Records"][0]["dynamodb"],
        &json["Records"][1]["dynamodb"],
    );
    assert_eq!(modify["OldImage"], active, "{name}: MODIFY OldImage");
    assert_eq!(
        timeless(&modify["NewImage"]),
        timeless(&deleting),
        "{name}: MODIFY NewImage"
    );
    let mut last = timeless(&deleting);
    last["memberCount"] = json!({"N": "0"});
    assert_eq!(
        timeless(&remove["OldImage"]),
        last,
        "{name}: REMOVE OldImage"
    );
    assert!(
        remove.get("NewImage").is_none(),
        "{name}: REMOVE has no NewImage"
    );
    let since = &modify["NewImage"]["deletingSince"]["S"];
    let parsed: Option<Timestamp> = serde_json::from_value(since.clone()).ok();
    assert_eq!(
        parsed.map(|t| time::to_millis(&t)).as_ref(),
        since.as_str().map(str::to_owned).as_ref(),
        "{name}: deletingSince as the table writes it"
    );
    assert!(
        deleting["deletingSince"]["S"].is_string(),
        "the table writes deletingSince"
    );
    assert_eq!(remove["OldImage"]["deletingSince"]["S"], *since, "{name}");

    // WHEN the batch reaches the stream consumer, the request's grace over
    let sink = EventSink::new(env).await;
    let cleanup = Cleanup::new(app.store.clone(), Some(env.payments()), sink.publisher())
        .with_grace(Duration::ZERO);
    cleanup
        .on_stream(&event)
        .await
        .unwrap_or_else(|e| panic!("{name}: {e}"));

    // THEN the MODIFY finished the cascade: nothing of the customer is left
    assert_eq!(
        app.store.find_customer(&id).await.ok(),
        Some(None),
        "{name}"
    );
    for u in [OWNER, ADMIN, MEMBER] {
        assert_eq!(
            app.store.membership_of(&user(u)).await.ok(),
            Some(None),
            "{name}"
        );
    }
    assert_eq!(crate::members::items_of(&app, CUSTOMER).await, 0, "{name}");
    // and the REMOVE published customer.deleted once, keyed by the record
    settle().await;
    let removed = &event.records[1];
    assert_eq!(
        sink.drain().await,
        [CustomerDeleted {
            event_id: removed.event_id.clone(),
            customer_id: id,
            deleted_at: time::to_seconds(&removed.change.approximate_creation_date_time),
        }],
        "{name}"
    );
}

/// The event is what the platform's bus delivers to the template's rule.
fn check_user_deleted_event(name: &str, event: &Value) {
    let events = template_events(USER_DELETED_HOOK);
    let rules = entries(&events);
    assert_eq!(
        rules.len(),
        1,
        "template.yaml: one rule invokes {USER_DELETED_HOOK}"
    );
    let pattern = &rules[0].1["Properties"]["Pattern"];
    assert_eq!(
        one_or_many(&pattern["detail-type"]),
        [event["detail-type"].as_str().expect("detail-type")],
        "{name}: the rule's detail-type"
    );
    assert_eq!(
        one_or_many(&pattern["source"]),
        ["Ref:PlatformUserEventSource"],
        "template.yaml: the rule's source"
    );
    assert_eq!(
        one_or_many(&pattern["account"]),
        ["Ref:PlatformAccountId"],
        "template.yaml: the rule's account"
    );
    assert!(
        event["source"].as_str().is_some_and(|s| !s.is_empty()),
        "{name}: source"
    );
    // As deployed (the sample parameters: the event's source and account), the
    // rule matches the event, and an event from another account it does not.
    let deployment = Deployment::new(&yaml("template.yaml"), &[]);
    let deployed = deployment.pattern(pattern);
    assert!(
        matches_pattern(&deployed, event),
        "{name}: matches the deployed rule {deployed}"
    );
    let mut elsewhere = event.clone();
    elsewhere["account"] = json!("210987654321");
    assert!(
        !matches_pattern(&deployed, &elsewhere),
        "{name}: from another account, the rule does not match"
    );
    for field in ["version", "id", "account", "time", "region"] {
        assert!(event[field].is_string(), "{name}: {field}");
    }
    assert!(event["resources"].is_array(), "{name}: resources");
    let detail: BTreeSet<&str> = event["detail"]
        .as_object()
        .expect("detail")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(detail, BTreeSet::from(["userID"]), "{name}: detail");
}

async fn run_user_deleted_event(env: &Env, name: &str, raw: &str, json: &Value) {
    check_user_deleted_event(name, json);
    // The event, parsed as the Lambda runtime does: a plain member was deleted.
    let event: EventBridgeEvent<UserDeleted> = serde_json::from_str(raw)
        .unwrap_or_else(|e| panic!("{name}: not a user.deleted EventBridge event: {e}"));
    assert_eq!(event.detail_type, "user.deleted", "{name}");
    assert_eq!(event.detail.user_id, user(MEMBER), "{name}");

    // GIVEN the customer the user is a member of
    let app = TestApp::new(env).await;
    app.seed(fixtures()).await;
    let cleanup = Cleanup::new(app.store.clone(), Some(env.payments()), Publisher::Log);
    // WHEN the event reaches the hook's handler as the runtime delivers it
    let outcome = cleanup
        .on_user_deleted_event(json)
        .await
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    // THEN the membership is removed and counted, the others untouched
    assert_eq!(
        outcome,
        UserCleanup::MembershipRemoved(customer_id()),
        "{name}"
    );
    assert_eq!(
        app.store.membership_of(&user(MEMBER)).await.ok(),
        Some(None),
        "{name}"
    );
    for (u, role) in [(OWNER, Role::Owner), (ADMIN, Role::Admin)] {
        assert_eq!(
            app.store.membership_of(&user(u)).await.ok(),
            Some(Some((customer_id(), role))),
            "{name}"
        );
    }
    let count = || async {
        app.store
            .get_customer(&customer_id())
            .await
            .expect("customer")
            .member_count
    };
    assert_eq!(count().await, 2, "{name}: memberCount");
    // and a redelivery changes nothing
    assert_eq!(
        cleanup.on_user_deleted_event(json).await.ok(),
        Some(UserCleanup::Nothing),
        "{name}: redelivered"
    );
    assert_eq!(count().await, 2, "{name}: memberCount after redelivery");
    // and the owner in a malformed event (no detail, a bad id, another
    // detail-type) is never acted on: the handler refuses it, for the DLQ
    let mut malformed = Vec::new();
    for (field, value) in [
        ("detail", serde_json::json!(null)),
        ("detail", serde_json::json!({"userID": "not-a-uuid"})),
        ("detail", serde_json::json!({"user": OWNER})),
        ("detail-type", serde_json::json!("user.created")),
    ] {
        let mut event = json.clone();
        event["detail"] = serde_json::json!({"userID": OWNER});
        event[field] = value;
        malformed.push(event);
    }
    for event in &malformed {
        let refused = cleanup.on_user_deleted_event(event).await;
        assert!(
            matches!(refused, Err(billing::cleanup::CleanupError::Malformed(_))),
            "{name}: {event} refused, got {refused:?}"
        );
    }
    assert_eq!(
        app.store.membership_of(&user(OWNER)).await.ok(),
        Some(Some((customer_id(), Role::Owner))),
        "{name}: the owner's customer is untouched"
    );
}

/// The event is what the deletion monitor's schedule delivers: EventBridge's
/// `Scheduled Event` of the template's `rate(5 minutes)` rule. (The monitor's
/// handler is its own crate's; this checks the sample, not the handler.)
fn check_deletion_monitor_event(name: &str, raw: &str, event: &Value) {
    let events = template_events(DELETION_MONITOR);
    let schedules = entries(&events);
    assert_eq!(
        schedules.len(),
        1,
        "template.yaml: one schedule invokes {DELETION_MONITOR}"
    );
    let (_, schedule) = &schedules[0];
    assert_eq!(render(&schedule["Type"]), "Schedule", "{DELETION_MONITOR}");
    assert_eq!(
        render(&schedule["Properties"]["Schedule"]),
        DELETION_MONITOR_SCHEDULE,
        "{DELETION_MONITOR}"
    );
    // Parsed as the Lambda runtime does.
    let parsed: EventBridgeEvent<Value> = serde_json::from_str(raw)
        .unwrap_or_else(|e| panic!("{name}: not an EventBridge event: {e}"));
    assert_eq!(parsed.detail_type, "Scheduled Event", "{name}");
    assert_eq!(parsed.source, "aws.events", "{name}");
    assert_eq!(parsed.detail, json!({}), "{name}: detail");
    assert!(parsed.time.is_some(), "{name}: time");
    for field in ["version", "id", "account", "region"] {
        assert!(
            event[field].as_str().is_some_and(|s| !s.is_empty()),
            "{name}: {field}"
        );
    }
    let resources = parsed.resources.unwrap_or_default();
    assert_eq!(resources.len(), 1, "{name}: the rule that fired");
    assert!(
        resources[0].starts_with("arn:aws:events:") && resources[0].contains(":rule/"),
        "{name}: resources[0] is a rule ARN"
    );
}

async fn events_without_a_fresh_token_are_unauthorized(env: &'static Env) {
    let app = TestApp::new(env).await;
    app.seed(fixtures()).await;
    for (endpoint, path) in http_event_files() {
        let raw = std::fs::read_to_string(&path).expect("read event");
        let req = lambda_http::request::from_str(&raw).expect("event parses");
        let reply = Reply::from(billing::api::handle(&app.state, endpoint, req).await);
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", path.display());
        assert_eq!(reply.error_code(), "unauthorized");
    }
    // and nothing changed
    let customer = app
        .store
        .get_customer(&customer_id())
        .await
        .expect("customer");
    assert_eq!(customer.member_count, 3);
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

// ---- template.yaml -----------------------------------------------------------------

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
const DELETION_MONITOR_SCHEDULE: &str = "rate(5 minutes)";
/// The index the deletion monitor queries (partition `DELETING`).
const DELETIONS_INDEX: &str = "GSI1";

/// The function behind the `$default` route: 404/405 for requests no route
/// matches. It serves no endpoint and reads no token, table or secret.
const ROUTE_NOT_FOUND: &str = "route-not-found";
/// `(METHOD, path)` of API Gateway's catch-all route, as the template declares it.
const DEFAULT_ROUTE: (&str, &str) = ("ANY", "$default");

/// Functions that run the deletion cascade, and so need Stripe.
fn runs_cascade(binary: &str) -> bool {
    binary == Endpoint::DeleteCustomer.function()
        || binary == STREAM_CONSUMER
        || binary == USER_DELETED_HOOK
}

/// The token settings of the HTTP functions, each from its parameter.
const JWT_SETTINGS: [(&str, &str); 6] = [
    ("JWT_ISSUER", "JwtIssuer"),
    ("JWT_AUDIENCE", "JwtAudience"),
    ("JWT_JWKS_URL", "JwtJwksUrl"),
    ("JWT_ALGORITHMS", "JwtAlgorithms"),
    ("JWT_ROLES_CLAIM", "JwtRolesClaim"),
    ("JWT_MAX_AGE_SECONDS", "JwtMaxAgeSeconds"),
];
/// The other token setting: set, and its secret readable, in PEM mode only.
const JWT_PUBLIC_KEY_SECRET_ID: &str = "JWT_PUBLIC_KEY_SECRET_ID";
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
const SAMPLE_ALARM_TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:billing-alarms";

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
            ("PlatformUserEventSource", "platform.users"),
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
            let event_types = entries(&r["Properties"]["Events"])
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

fn endpoint_routes() -> BTreeSet<(String, String)> {
    Endpoint::ALL
        .iter()
        .map(|e| (e.method().to_string(), format!("{PREFIX}{}", e.path())))
        .collect()
}

async fn template_routes_are_the_endpoints(_env: &'static Env) {
    let template = yaml("template.yaml");
    assert_eq!(
        template["Transform"].as_str(),
        Some("AWS::Serverless-2016-10-31")
    );
    let functions = functions(&template);
    let default_route = (DEFAULT_ROUTE.0.to_owned(), DEFAULT_ROUTE.1.to_owned());
    let mut routes = BTreeSet::new();
    for f in &functions {
        let is_endpoint = Endpoint::ALL.iter().any(|e| e.function() == f.binary);
        let serves_http = is_endpoint || f.binary == ROUTE_NOT_FOUND;
        assert!(
            !f.event_types.is_empty(),
            "{}: no event invokes it",
            f.logical_id
        );
        assert_eq!(
            f.event_types.iter().all(|t| t == "HttpApi"),
            serves_http,
            "{}: the endpoint and $default functions have HttpApi events only",
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
            if *route == default_route {
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
    assert_eq!(
        routes, expected,
        "template routes == Endpoint::ALL + the $default route"
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

async fn template_functions_are_the_workspace_packages(_env: &'static Env) {
    let template = yaml("template.yaml");
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
        // cargo-lambda builds `--bin <Binary>` in CodeUri and SAM copies
        // CodeUri/target/lambda/<Binary>/bootstrap: CodeUri is the workspace root.
        assert_eq!(render(prop("CodeUri")), ".", "{id}");
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
        // Only the stream consumer waits for a cascade in progress.
        assert_eq!(
            vars.contains_key("CASCADE_GRACE_SECONDS"),
            f.binary == STREAM_CONSUMER,
            "{id}: CASCADE_GRACE_SECONDS"
        );
        // Stripe only where the cascade runs, its key from Secrets Manager.
        match &config.stripe {
            Some(stripe) => {
                assert!(runs_cascade(&f.binary), "{id}: needs no Stripe key");
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
                !runs_cascade(&f.binary),
                "{id}: runs the cascade without Stripe"
            ),
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
            ROUTE_NOT_FOUND | DELETION_MONITOR => {
                let invoked_by = if f.binary == ROUTE_NOT_FOUND {
                    "HttpApi"
                } else {
                    "Schedule"
                };
                assert_eq!(f.event_types, [invoked_by], "{id}");
                // Nothing of its own: TABLE_NAME (which route-not-found never
                // reads) comes from Globals; no token, Stripe or event bus settings.
                assert!(
                    template["Resources"][id.as_str()]["Properties"]
                        .get("Environment")
                        .is_none(),
                    "{id}: needs no environment of its own"
                );
                assert_eq!(
                    vars.keys().map(String::as_str).collect::<BTreeSet<_>>(),
                    BTreeSet::from(["TABLE_NAME"]),
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

/// The token parameters: exactly one key source (PEM secret or JWKS URL), the
/// optional settings empty by default (the code's defaults), and a Rules section
/// refusing any other choice before a stack changes.
async fn template_parameters_choose_exactly_one_token_key_source(_env: &'static Env) {
    let template = yaml("template.yaml");
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

/// The template's resources of one type: (logical id, resource).
fn resources_of<'a>(template: &'a Yaml, kind: &str) -> Vec<(String, &'a Yaml)> {
    entries(&template["Resources"])
        .into_iter()
        .filter(|(_, r)| r["Type"].as_str() == Some(kind))
        .collect()
}

/// A map of scalars (`Dimensions` as `{Name: Value}`, a condition block's keys)
/// rendered.
fn dimensions(v: &Yaml) -> BTreeMap<String, String> {
    v.as_sequence()
        .map(|dims| {
            dims.iter()
                .map(|d| (render(&d["Name"]), render(&d["Value"])))
                .collect()
        })
        .unwrap_or_default()
}

/// The template condition that alarms notify under (AlarmTopicArn given).
const ALARM_TOPIC: &str = "HasAlarmTopic";
/// The queue that takes the `user.deleted` events not handled (the rule's and the
/// function's dead letters).
const USER_DELETED_QUEUE: &str = "UserDeletedDeadLetterQueue";
/// The stack's bus for the platform's `user.deleted`.
const PLATFORM_BUS_ARN: &str = "Sub:arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:event-bus/${AWS::StackName}-platform";

/// Log level, tracing and the https-only Stripe URL, on every function.
async fn template_logs_tracing_and_settings(_env: &'static Env) {
    let template = yaml("template.yaml");
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

/// Every alarm, by what it claims to watch: its namespace, metric, dimensions
/// (the template's own resources), statistic and threshold; each notifies
/// AlarmTopicArn when one is given.
async fn template_alarms_watch_what_they_claim(_env: &'static Env) {
    let template = yaml("template.yaml");
    let params = &template["Parameters"];
    let alarms = resources_of(&template, "AWS::CloudWatch::Alarm");
    let functions = functions(&template);
    let function_id = |binary: &str| {
        functions
            .iter()
            .find(|f| f.binary == binary)
            .map(|f| f.logical_id.clone())
            .unwrap_or_else(|| panic!("template.yaml: no {binary} function"))
    };

    // Notifications: to AlarmTopicArn (ALARM and OK), only when one is given.
    let topic = &params["AlarmTopicArn"];
    assert_eq!(
        topic["Default"].as_str(),
        Some(""),
        "AlarmTopicArn: optional"
    );
    let pattern = str_of(&topic["AllowedPattern"], "AlarmTopicArn");
    assert!(
        pattern.starts_with("^$|") && pattern.contains(":sns:"),
        "AlarmTopicArn: empty or an SNS topic ARN"
    );
    for (given, notifies) in [("", false), (SAMPLE_ALARM_TOPIC, true)] {
        let deployment = Deployment::new(&template, &[("AlarmTopicArn", given)]);
        assert_eq!(
            deployment.conditions.get(ALARM_TOPIC),
            Some(&notifies),
            "{ALARM_TOPIC} with AlarmTopicArn={given:?}"
        );
        for (id, alarm) in &alarms {
            for key in ["AlarmActions", "OKActions"] {
                let v = &alarm["Properties"][key];
                let (condition, _, _) =
                    conditional(v).unwrap_or_else(|| panic!("{id}.{key}: !If [{ALARM_TOPIC}, ..]"));
                assert_eq!(condition, ALARM_TOPIC, "{id}.{key}");
                assert_eq!(
                    deployment.resolve(v).map(one_or_many),
                    notifies.then(|| vec!["Ref:AlarmTopicArn".to_owned()]),
                    "{id}.{key} with AlarmTopicArn={given:?}"
                );
            }
        }
    }

    // Every alarm is claimed below, exactly once.
    let mut claimed: Vec<String> = Vec::new();
    let single = |namespace: &str, metric: &str| -> Vec<(String, &Yaml)> {
        alarms
            .iter()
            .filter(|(_, a)| {
                let p = &a["Properties"];
                p["Namespace"].as_str() == Some(namespace)
                    && p["MetricName"].as_str() == Some(metric)
            })
            .map(|(id, a)| (id.clone(), &a["Properties"]))
            .collect()
    };
    let threshold = |p: &Yaml, id: &str, op: &str, value: &str| {
        assert_eq!(render(&p["ComparisonOperator"]), op, "{id}");
        assert_eq!(render(&p["Threshold"]), value, "{id}: Threshold");
        assert!(
            p["EvaluationPeriods"].as_u64().is_some_and(|n| n >= 1),
            "{id}: EvaluationPeriods"
        );
    };
    let quiet_is_fine = |p: &Yaml, id: &str| {
        assert_eq!(
            p["TreatMissingData"].as_str(),
            Some("notBreaching"),
            "{id}: no data is nothing happening"
        );
    };
    let default_of = |name: &str| render(&params[name]["Default"]);

    // Dead letters: the stream's batches given up on (its on-failure destination)
    // and the unhandled user.deleted events (the rule's and the function's dead
    // letters), each queue watched for any visible message.
    let queue = |arn: &Yaml, what: &str| -> String {
        let arn = render(arn);
        let id = arn
            .strip_prefix("GetAtt:")
            .and_then(|a| a.strip_suffix(".Arn"))
            .unwrap_or_else(|| panic!("{what}: !GetAtt <queue>.Arn, found {arn}"))
            .to_owned();
        assert_eq!(
            template["Resources"][id.as_str()]["Type"].as_str(),
            Some("AWS::SQS::Queue"),
            "{what}: {id}"
        );
        id
    };
    let stream_events = template_events(STREAM_CONSUMER);
    let hook_events = template_events(USER_DELETED_HOOK);
    let hook = &template["Resources"][function_id(USER_DELETED_HOOK).as_str()]["Properties"];
    let mut dead_letters = BTreeSet::new();
    for (name, e) in entries(&stream_events) {
        let on_failure = &e["Properties"]["DestinationConfig"]["OnFailure"]["Destination"];
        dead_letters.insert(queue(on_failure, &format!("{STREAM_CONSUMER}.{name}")));
    }
    for (name, e) in entries(&hook_events) {
        let dlq = &e["Properties"]["DeadLetterConfig"]["Arn"];
        dead_letters.insert(queue(dlq, &format!("{USER_DELETED_HOOK}.{name}")));
    }
    dead_letters.insert(queue(
        &hook["DeadLetterQueue"]["TargetArn"],
        USER_DELETED_HOOK,
    ));
    assert_eq!(
        dead_letters,
        BTreeSet::from([
            "CleanupStreamFailureQueue".to_owned(),
            USER_DELETED_QUEUE.to_owned()
        ]),
        "the dead-letter queues"
    );
    let mut watched = BTreeSet::new();
    for (id, p) in single("AWS/SQS", "ApproximateNumberOfMessagesVisible") {
        let dims = dimensions(&p["Dimensions"]);
        assert_eq!(dims.len(), 1, "{id}: Dimensions");
        let queue_name = &dims["QueueName"];
        let q = queue_name
            .strip_prefix("GetAtt:")
            .and_then(|q| q.strip_suffix(".QueueName"))
            .unwrap_or_else(|| panic!("{id}: QueueName !GetAtt <queue>.QueueName"));
        assert!(watched.insert(q.to_owned()), "{id}: {q} watched twice");
        assert_eq!(render(&p["Statistic"]), "Maximum", "{id}");
        threshold(p, &id, "GreaterThanThreshold", "0");
        quiet_is_fine(p, &id);
        claimed.push(id);
    }
    assert_eq!(
        watched, dead_letters,
        "a non-empty alarm per dead-letter queue"
    );

    // The table stream's consumer falls behind.
    let age = single("AWS/Lambda", "IteratorAge");
    assert_eq!(age.len(), 1, "one iterator age alarm");
    for (id, p) in age {
        assert_eq!(
            dimensions(&p["Dimensions"]),
            BTreeMap::from([(
                "FunctionName".to_owned(),
                format!("Ref:{}", function_id(STREAM_CONSUMER))
            )]),
            "{id}: the stream consumer"
        );
        assert_eq!(render(&p["Statistic"]), "Maximum", "{id}");
        threshold(
            p,
            &id,
            "GreaterThanThreshold",
            "Ref:StreamIteratorAgeAlarmMs",
        );
        quiet_is_fine(p, &id);
        claimed.push(id);
    }
    assert_eq!(default_of("StreamIteratorAgeAlarmMs"), "300000");

    // Errors and throttles of every function, one alarm each.
    let every_function: BTreeSet<String> = functions
        .iter()
        .map(|f| format!("Ref:{}", f.logical_id))
        .collect();
    for metric in ["Errors", "Throttles"] {
        let mut covered = BTreeSet::new();
        for (id, p) in single("AWS/Lambda", metric) {
            let dims = dimensions(&p["Dimensions"]);
            assert_eq!(dims.len(), 1, "{id}: Dimensions");
            assert!(
                covered.insert(dims["FunctionName"].clone()),
                "{id}: a second {metric} alarm of {}",
                dims["FunctionName"]
            );
            assert_eq!(render(&p["Statistic"]), "Sum", "{id}");
            assert!(
                p["Period"].as_u64().is_some_and(|s| s <= 300),
                "{id}: Period"
            );
            threshold(p, &id, "GreaterThanThreshold", "0");
            quiet_is_fine(p, &id);
            claimed.push(id);
        }
        assert_eq!(covered, every_function, "a {metric} alarm per function");
    }

    // The API's 5xx rate: 5xx / Count * 100 of the HTTP API's $default stage.
    let math: Vec<&(String, &Yaml)> = alarms
        .iter()
        .filter(|(_, a)| a["Properties"].get("Metrics").is_some())
        .collect();
    assert_eq!(math.len(), 1, "one metric math alarm (the 5xx rate)");
    for (id, alarm) in math {
        let p = &alarm["Properties"];
        let metrics = p["Metrics"].as_sequence().expect("Metrics");
        let stat_id = |name: &str| -> String {
            let found: Vec<&Yaml> = metrics
                .iter()
                .filter(|m| m["MetricStat"]["Metric"]["MetricName"].as_str() == Some(name))
                .collect();
            assert_eq!(found.len(), 1, "{id}: one {name}");
            let m = found[0];
            let metric = &m["MetricStat"]["Metric"];
            assert_eq!(
                render(&metric["Namespace"]),
                "AWS/ApiGateway",
                "{id}: {name}"
            );
            assert_eq!(
                dimensions(&metric["Dimensions"]),
                BTreeMap::from([
                    ("ApiId".to_owned(), "Ref:HttpApi".to_owned()),
                    ("Stage".to_owned(), "$default".to_owned()),
                ]),
                "{id}: {name} of the HTTP API's $default stage"
            );
            assert_eq!(render(&m["MetricStat"]["Stat"]), "Sum", "{id}: {name}");
            assert_eq!(m["ReturnData"].as_bool(), Some(false), "{id}: {name}");
            render(&m["Id"])
        };
        let (errors, requests) = (stat_id("5xx"), stat_id("Count"));
        let returned: Vec<&Yaml> = metrics
            .iter()
            .filter(|m| m["ReturnData"].as_bool() != Some(false))
            .collect();
        assert_eq!(returned.len(), 1, "{id}: one expression returns data");
        let expression: String = str_of(&returned[0]["Expression"], "Expression")
            .split_whitespace()
            .collect();
        assert!(
            [
                format!("{errors}/{requests}*100"),
                format!("100*{errors}/{requests}"),
                format!("({errors}/{requests})*100"),
            ]
            .contains(&expression),
            "{id}: the percentage of 5xx, found {expression}"
        );
        assert_eq!(
            template["Resources"]["HttpApi"]["Type"].as_str(),
            Some("AWS::Serverless::HttpApi")
        );
        threshold(p, id, "GreaterThanThreshold", "Ref:Api5xxRateAlarmPercent");
        quiet_is_fine(p, id);
        claimed.push(id.clone());
    }
    assert_eq!(default_of("Api5xxRateAlarmPercent"), "5");

    // A deletion stuck in the deleting state, from the deletion monitor's metric.
    let stuck = single("BillingAdmin", "OldestDeletionAgeSeconds");
    assert_eq!(stuck.len(), 1, "one stuck deletion alarm");
    for (id, p) in stuck {
        assert!(p.get("Dimensions").is_none(), "{id}: no dimensions");
        assert_eq!(render(&p["Unit"]), "Seconds", "{id}");
        assert_eq!(render(&p["Statistic"]), "Maximum", "{id}");
        threshold(
            p,
            &id,
            "GreaterThanThreshold",
            "Ref:StuckDeletionThresholdSeconds",
        );
        quiet_is_fine(p, &id);
        claimed.push(id);
    }
    assert_eq!(default_of("StuckDeletionThresholdSeconds"), "900");

    // And the monitor itself: no DeletingCustomers sample (it emits one every
    // run) is an alarm, so a silent monitor cannot hide a stuck deletion.
    let silent = single("BillingAdmin", "DeletingCustomers");
    assert_eq!(silent.len(), 1, "one deletion monitor heartbeat alarm");
    for (id, p) in silent {
        assert!(p.get("Dimensions").is_none(), "{id}: no dimensions");
        assert_eq!(render(&p["Statistic"]), "SampleCount", "{id}");
        threshold(p, &id, "LessThanThreshold", "1");
        assert_eq!(
            p["TreatMissingData"].as_str(),
            Some("breaching"),
            "{id}: no data is the alarm"
        );
        // At least two runs of the monitor's schedule fit in what it looks at.
        let looked_at = p["Period"].as_u64().unwrap_or_default()
            * p["EvaluationPeriods"].as_u64().unwrap_or_default();
        assert!(looked_at >= 600, "{id}: covers more than one run");
        claimed.push(id);
    }

    let all: BTreeSet<String> = alarms.iter().map(|(id, _)| id.clone()).collect();
    let distinct: BTreeSet<String> = claimed.iter().cloned().collect();
    assert_eq!(distinct.len(), claimed.len(), "each alarm claimed once");
    assert_eq!(distinct, all, "every alarm watches one of the above");
}

/// Who may put an event on the platform bus: `arn` of `account`.
struct Caller {
    arn: &'static str,
    account: &'static str,
}

/// Whether a policy statement's `Condition` holds for `caller` (the operators
/// the template uses, single values).
fn condition_holds(condition: &Yaml, deployment: &Deployment, caller: &Caller) -> bool {
    entries(condition).into_iter().all(|(op, block)| {
        entries(block).into_iter().all(|(key, v)| {
            let expected: Vec<String> =
                one_or_many(v).iter().map(|v| deployment.value(v)).collect();
            let actual = match key.as_str() {
                "aws:PrincipalAccount" => caller.account,
                "aws:PrincipalArn" => caller.arn,
                other => panic!("unexpected condition key {other}"),
            };
            let equal = expected.iter().any(|e| e == actual);
            match op.as_str() {
                "StringEquals" | "ArnEquals" => equal,
                "StringNotEquals" | "ArnNotEquals" => !equal,
                other => panic!("unexpected condition operator {other}"),
            }
        })
    })
}

/// The platform's `user.deleted` comes only from the platform: a bus of the
/// stack's own, on which only PlatformPrincipalArn may put events, and a rule
/// matching its source, detail-type and account; what fails ends in a dead-letter
/// queue.
async fn template_locks_the_user_deleted_ingress(_env: &'static Env) {
    let template = yaml("template.yaml");
    let params = &template["Parameters"];
    assert!(
        params.get("PlatformEventBusName").is_none(),
        "no bus by name: the stack's own"
    );
    for name in [
        "PlatformPrincipalArn",
        "PlatformAccountId",
        "PlatformUserEventSource",
    ] {
        assert!(params[name].get("Default").is_none(), "{name}: required");
    }
    assert_eq!(
        params["PlatformAccountId"]["AllowedPattern"].as_str(),
        Some("^[0-9]{12}$")
    );
    let principal = str_of(
        &params["PlatformPrincipalArn"]["AllowedPattern"],
        "PlatformPrincipalArn",
    );
    assert!(
        principal.starts_with("^arn:aws")
            && principal.ends_with('$')
            && principal.contains(":iam::[0-9]{12}:")
            && principal.contains("root")
            && principal.contains("role/"),
        "PlatformPrincipalArn: an IAM role or account root ARN"
    );

    // The rule: on the stack's bus, source, detail-type and account.
    let hook = functions(&template)
        .into_iter()
        .find(|f| f.binary == USER_DELETED_HOOK)
        .expect("the user.deleted hook");
    let rules = entries(&hook.properties["Events"]);
    assert_eq!(rules.len(), 1, "{}: one rule", hook.logical_id);
    let (event_name, rule) = &rules[0];
    assert_eq!(render(&rule["Type"]), "EventBridgeRule");
    let rule = &rule["Properties"];
    let bus_ref = render(&rule["EventBusName"]);
    let bus_id = bus_ref
        .strip_prefix("GetAtt:")
        .and_then(|b| b.strip_suffix(".Name"))
        .or_else(|| bus_ref.strip_prefix("Ref:"))
        .unwrap_or_else(|| panic!("the rule's bus is the stack's, found {bus_ref}"));
    let bus = &template["Resources"][bus_id];
    assert_eq!(
        bus["Type"].as_str(),
        Some("AWS::Events::EventBus"),
        "{bus_id}"
    );
    assert_eq!(
        render(&bus["Properties"]["Name"]),
        "Sub:${AWS::StackName}-platform",
        "{bus_id}: Name"
    );
    let pattern = &rule["Pattern"];
    assert_eq!(
        entries(pattern)
            .into_iter()
            .map(|(k, v)| (k, one_or_many(v)))
            .collect::<BTreeMap<_, _>>(),
        BTreeMap::from([
            (
                "source".to_owned(),
                vec!["Ref:PlatformUserEventSource".to_owned()]
            ),
            ("detail-type".to_owned(), vec!["user.deleted".to_owned()]),
            (
                "account".to_owned(),
                vec!["Ref:PlatformAccountId".to_owned()]
            ),
        ]),
        "the rule's pattern"
    );

    // The bus's policy, whole: PutEvents on this bus, Allow for the platform's
    // principal (from its account), Deny for everyone else.
    assert!(
        resources_of(&template, "AWS::Events::EventBusPolicy").is_empty(),
        "no policy statements beyond the bus's own Policy"
    );
    let statements = bus["Properties"]["Policy"]["Statement"]
        .as_sequence()
        .unwrap_or_else(|| panic!("{bus_id}: Policy.Statement"));
    for s in statements {
        assert_eq!(one_or_many(&s["Action"]), ["events:PutEvents"], "{bus_id}");
        assert_eq!(one_or_many(&s["Resource"]), [PLATFORM_BUS_ARN], "{bus_id}");
    }
    let effect = |e: &str| -> Vec<&Yaml> {
        statements
            .iter()
            .filter(|s| render(&s["Effect"]) == e)
            .collect()
    };
    let (allows, denies) = (effect("Allow"), effect("Deny"));
    assert_eq!(
        (allows.len(), denies.len()),
        (1, 1),
        "{bus_id}: one Allow, one Deny"
    );
    assert_eq!(
        render(&allows[0]["Principal"]["AWS"]),
        "Ref:PlatformPrincipalArn"
    );
    assert_eq!(render(&denies[0]["Principal"]), "*");
    const OTHER_ACCOUNT: &str = "210987654321";
    let callers = [
        Caller {
            arn: SAMPLE_PLATFORM_ROLE,
            account: SAMPLE_PLATFORM_ACCOUNT,
        },
        Caller {
            arn: "arn:aws:iam::123456789012:role/someone-else",
            account: SAMPLE_PLATFORM_ACCOUNT,
        },
        Caller {
            arn: "arn:aws:iam::210987654321:role/platform-user-events",
            account: OTHER_ACCOUNT,
        },
        Caller {
            arn: "arn:aws:iam::210987654321:user/admin",
            account: OTHER_ACCOUNT,
        },
    ];
    for (principal_arn, whole_account) in
        [(SAMPLE_PLATFORM_ROLE, false), (SAMPLE_PLATFORM_ROOT, true)]
    {
        let deployment = Deployment::new(&template, &[("PlatformPrincipalArn", principal_arn)]);
        let principal = deployment.value("Ref:PlatformPrincipalArn");
        for caller in &callers {
            let named = principal == caller.arn
                || principal == format!("arn:aws:iam::{}:root", caller.account);
            let allowed = named
                && allows[0]
                    .get("Condition")
                    .and_then(|c| deployment.resolve(c))
                    .is_none_or(|c| condition_holds(c, &deployment, caller));
            let denied = denies[0]
                .get("Condition")
                .and_then(|c| deployment.resolve(c))
                .is_none_or(|c| condition_holds(c, &deployment, caller));
            // Principals of the bus's own account may hold an IAM Allow: only
            // the Deny stops them, so the Deny alone must exclude them.
            let expected = if whole_account {
                caller.account == SAMPLE_PLATFORM_ACCOUNT
            } else {
                caller.arn == SAMPLE_PLATFORM_ROLE
            };
            assert_eq!(
                !denied, expected,
                "{bus_id} with PlatformPrincipalArn={principal_arn}: Deny of {}",
                caller.arn
            );
            assert_eq!(
                allowed && !denied,
                expected,
                "{bus_id} with PlatformPrincipalArn={principal_arn}: {} may put events",
                caller.arn
            );
        }
    }
    assert_eq!(
        render(&template["Outputs"]["PlatformEventBusName"]["Value"]),
        format!("GetAtt:{bus_id}.Name")
    );
    assert_eq!(
        render(&template["Outputs"]["PlatformEventBusArn"]["Value"]),
        format!("GetAtt:{bus_id}.Arn")
    );

    // What fails ends in one queue: the events the rule cannot deliver, and
    // (after a bounded number of retries) those the function fails on, an
    // event it cannot parse included.
    let dlq = format!("GetAtt:{USER_DELETED_QUEUE}.Arn");
    assert_eq!(
        render(&rule["DeadLetterConfig"]["Arn"]),
        dlq,
        "the rule's dead letters"
    );
    assert!(
        rule["RetryPolicy"]["MaximumRetryAttempts"]
            .as_u64()
            .is_some(),
        "the rule's RetryPolicy"
    );
    let hook_props = &hook.properties;
    assert_eq!(render(&hook_props["DeadLetterQueue"]["Type"]), "SQS");
    assert_eq!(
        render(&hook_props["DeadLetterQueue"]["TargetArn"]),
        dlq,
        "{}: the function's dead letters",
        hook.logical_id
    );
    assert!(
        hook_props["EventInvokeConfig"]["MaximumRetryAttempts"]
            .as_u64()
            .is_some_and(|n| n <= 2),
        "{}: EventInvokeConfig.MaximumRetryAttempts",
        hook.logical_id
    );
    let queue = &template["Resources"][USER_DELETED_QUEUE];
    assert_eq!(queue["Type"].as_str(), Some("AWS::SQS::Queue"));
    assert_eq!(
        queue["Properties"]["SqsManagedSseEnabled"].as_bool(),
        Some(true)
    );
    assert_eq!(
        queue["Properties"]["MessageRetentionPeriod"].as_u64(),
        Some(1_209_600),
        "{USER_DELETED_QUEUE}: 14 days to look"
    );
    // Only the rule (as SAM names it: function id + event name) may send to it as
    // EventBridge; the function sends with its role (SAM's grant).
    let policies: Vec<(String, &Yaml)> = resources_of(&template, "AWS::SQS::QueuePolicy")
        .into_iter()
        .filter(|(_, p)| {
            one_or_many(&p["Properties"]["Queues"]).contains(&format!("Ref:{USER_DELETED_QUEUE}"))
        })
        .collect();
    assert_eq!(policies.len(), 1, "{USER_DELETED_QUEUE}: one queue policy");
    let statements = policies[0].1["Properties"]["PolicyDocument"]["Statement"]
        .as_sequence()
        .expect("Statement");
    assert_eq!(statements.len(), 1, "{USER_DELETED_QUEUE}: one statement");
    let s = &statements[0];
    assert_eq!(render(&s["Effect"]), "Allow");
    assert_eq!(render(&s["Principal"]["Service"]), "events.amazonaws.com");
    assert_eq!(one_or_many(&s["Action"]), ["sqs:SendMessage"]);
    assert_eq!(one_or_many(&s["Resource"]), std::slice::from_ref(&dlq));
    assert_eq!(
        one_or_many(&s["Condition"]["ArnEquals"]["aws:SourceArn"]),
        [format!("GetAtt:{}{event_name}.Arn", hook.logical_id)],
        "{USER_DELETED_QUEUE}: only the user.deleted rule"
    );
}

async fn template_table_is_the_table_definition(_env: &'static Env) {
    let template = yaml("template.yaml");
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
    assert_eq!(code_gsis.len(), 4);
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
    // The README's first-API-key commands read the table's name from this output.
    assert_eq!(
        render(&template["Outputs"]["TableName"]["Value"]),
        "Ref:Table",
        "Outputs.TableName"
    );
}

/// One permission: action, resource, whether it holds only inside
/// TransactWriteItems, and the template condition it is granted under (none:
/// always).
type Grant = (String, String, bool, Option<String>);

/// What each function's code path calls (shared/src/store, cascade, startup, events),
/// and nothing more. TransactWriteItems is no IAM action: its Put/Update/Delete are
/// authorized as PutItem/UpdateItem/DeleteItem within it.
fn expected_grants(binary: &str) -> BTreeSet<Grant> {
    if binary == ROUTE_NOT_FOUND {
        // It answers from the route table alone: no table, no secret, nothing but
        // the logging SAM's basic execution role gives every function.
        return BTreeSet::new();
    }
    let table = "GetAtt:Table.Arn".to_owned();
    let index = |name: &str| format!("Sub:${{Table.Arn}}/index/{name}");
    if binary == DELETION_MONITOR {
        // One query of the deleting customers' index: no item, no table query,
        // no write, no secret.
        return BTreeSet::from([(
            "dynamodb:Query".to_owned(),
            index(DELETIONS_INDEX),
            false,
            None,
        )]);
    }
    let plain = |action: &str, resource: &str| {
        (
            format!("dynamodb:{action}"),
            resource.to_owned(),
            false,
            None,
        )
    };
    let in_tx = |action: &str| (format!("dynamodb:{action}"), table.clone(), true, None);
    let secret = |param: &str, only_if: Option<&str>| {
        (
            "secretsmanager:GetSecretValue".to_owned(),
            format!("Ref:{param}"),
            false,
            only_if.map(str::to_owned),
        )
    };
    // API key lookups, customer records, memberships.
    let mut grants = BTreeSet::from([plain("GetItem", &table)]);
    let endpoint = Endpoint::ALL.into_iter().find(|e| e.function() == binary);
    if endpoint.is_some() {
        // In PEM mode every HTTP function fetches the JWT public key at cold start
        // (billing::startup); in JWKS mode it reads no secret for tokens. The
        // event-driven ones verify no tokens.
        grants.insert(secret("JwtPublicKeySecretArn", Some(PEM_MODE)));
    }
    // The deletion cascade: member items by query, transactional updates and deletes,
    // and Stripe.
    let cascade = [
        plain("Query", &table),
        in_tx("UpdateItem"),
        in_tx("DeleteItem"),
        secret("StripeSecretKeySecretArn", None),
    ];
    match endpoint {
        Some(Endpoint::ListCustomers) => {
            grants.extend(
                LISTING_INDEXES
                    .iter()
                    .map(|(name, _)| plain("Query", &index(name))),
            );
        }
        Some(Endpoint::GetCustomer) => {}
        Some(Endpoint::ListMembers) => {
            grants.insert(plain("Query", &index(MEMBERS_INDEX)));
        }
        Some(Endpoint::AddMember) => grants.extend([in_tx("PutItem"), in_tx("UpdateItem")]),
        Some(Endpoint::RemoveMember) => grants.extend([in_tx("UpdateItem"), in_tx("DeleteItem")]),
        Some(Endpoint::DeleteCustomer) => grants.extend(cascade),
        None if binary == USER_DELETED_HOOK => grants.extend(cascade),
        None if binary == STREAM_CONSUMER => {
            grants.extend(cascade);
            grants.insert((
                "events:PutEvents".to_owned(),
                "Sub:arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:event-bus/${EventBusName}"
                    .to_owned(),
                false,
                None,
            ));
        }
        None => panic!("{binary}: no expected grants; add them here"),
    }
    grants
}

/// The grants of a function's `Policies`: inline statements only (none without
/// `Policies`), each either always or, as `!If [Condition, statement,
/// !Ref AWS::NoValue]`, only under that condition.
fn granted(f: &Function) -> BTreeSet<Grant> {
    let Some(policies) = f.properties.get("Policies") else {
        return BTreeSet::new();
    };
    let policies = policies
        .as_sequence()
        .unwrap_or_else(|| panic!("{}: Policies is a list of policy documents", f.logical_id));
    let mut grants = BTreeSet::new();
    for policy in policies {
        let statements = policy["Statement"].as_sequence().unwrap_or_else(|| {
            panic!(
                "{}: only inline IAM statements, found {policy:?}",
                f.logical_id
            )
        });
        for s in statements {
            let (s, only_if) = match conditional(s) {
                None => (s, None),
                Some((condition, then, otherwise)) => {
                    assert!(
                        is_no_value(otherwise),
                        "{}: a conditional statement is left out otherwise (AWS::NoValue)",
                        f.logical_id
                    );
                    assert!(
                        conditional(then).is_none(),
                        "{}: one condition per statement",
                        f.logical_id
                    );
                    (then, Some(condition))
                }
            };
            assert_eq!(render(&s["Effect"]), "Allow", "{}", f.logical_id);
            let in_tx = match s.get("Condition") {
                None => false,
                Some(c) => {
                    let values =
                        one_or_many(&c["ForAnyValue:StringEquals"]["dynamodb:EnclosingOperation"]);
                    assert_eq!(
                        entries(c).len(),
                        1,
                        "{}: unexpected Condition {c:?}",
                        f.logical_id
                    );
                    assert_eq!(
                        values,
                        ["TransactWriteItems"],
                        "{}: unexpected Condition",
                        f.logical_id
                    );
                    true
                }
            };
            for action in one_or_many(&s["Action"]) {
                for resource in one_or_many(&s["Resource"]) {
                    assert!(
                        !action.contains('*') && resource != "*",
                        "{}: no wildcards ({action} on {resource})",
                        f.logical_id
                    );
                    grants.insert((action.clone(), resource, in_tx, only_if.clone()));
                }
            }
        }
    }
    grants
}

async fn template_grants_each_function_exactly_its_calls(_env: &'static Env) {
    let template = yaml("template.yaml");
    for f in functions(&template) {
        // SAM's generated role: basic execution (logging) plus the Policies.
        assert!(
            !f.properties.contains_key("Role"),
            "{}: no role of its own",
            f.logical_id
        );
        if f.binary == ROUTE_NOT_FOUND {
            assert!(
                !f.properties.contains_key("Policies"),
                "{}: no Policies at all",
                f.logical_id
            );
        }
        assert_eq!(granted(&f), expected_grants(&f.binary), "{}", f.logical_id);
        // SAM grants sqs:SendMessage on a DeadLetterQueue's target (and nothing
        // else for it): only the user.deleted hook has one, its dead-letter queue.
        let dlq = f.properties.get("DeadLetterQueue");
        assert_eq!(
            dlq.is_some(),
            f.binary == USER_DELETED_HOOK,
            "{}: DeadLetterQueue",
            f.logical_id
        );
        if let Some(dlq) = dlq {
            assert_eq!(render(&dlq["Type"]), "SQS", "{}", f.logical_id);
            assert_eq!(
                render(&dlq["TargetArn"]),
                format!("GetAtt:{USER_DELETED_QUEUE}.Arn"),
                "{}",
                f.logical_id
            );
        }
    }
    // The JWT secret condition is PEM mode: as deployed, the HTTP functions (and
    // only they) may read the JWT secret in PEM mode, and no function may read
    // any JWT secret in JWKS mode.
    for mode in [TokenMode::Pem, TokenMode::Jwks] {
        let deployment = Deployment::of(&template, mode);
        assert_eq!(
            deployment.conditions.get(PEM_MODE),
            Some(&(mode == TokenMode::Pem)),
            "template.yaml: {PEM_MODE} holds exactly in PEM mode ({mode:?})"
        );
        for f in functions(&template) {
            let reads_jwt_secret = granted(&f)
                .into_iter()
                .any(|(action, resource, _, only_if)| {
                    let applies = only_if.is_none_or(|c| deployment.conditions[&c]);
                    applies
                        && action == "secretsmanager:GetSecretValue"
                        && resource == "Ref:JwtPublicKeySecretArn"
                });
            let serves_http = Endpoint::ALL.iter().any(|e| e.function() == f.binary);
            assert_eq!(
                reads_jwt_secret,
                serves_http && mode == TokenMode::Pem,
                "{} in {mode:?} mode: reads the JWT secret",
                f.logical_id
            );
        }
    }
}

// ---- openapi.yaml ------------------------------------------------------------------

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

fn endpoint_of(method: &str, path: &str) -> Endpoint {
    Endpoint::ALL
        .into_iter()
        .find(|e| e.method().as_str() == method && e.path() == path)
        .unwrap_or_else(|| panic!("{method} {path} is no endpoint"))
}

async fn openapi_operations_are_the_endpoints(_env: &'static Env) {
    let doc = yaml("openapi.yaml");
    assert!(render(&doc["openapi"]).starts_with("3.1"));
    let servers = doc["servers"].as_sequence().expect("servers");
    assert_eq!(servers.len(), 1);
    assert_eq!(servers[0]["url"].as_str(), Some(PREFIX));
    let documented: BTreeSet<(String, String)> =
        operations(&doc).into_iter().map(|(k, _, _)| k).collect();
    let code: BTreeSet<(String, String)> = Endpoint::ALL
        .iter()
        .map(|e| (e.method().to_string(), e.path().to_owned()))
        .collect();
    assert_eq!(documented, code, "openapi.yaml operations == Endpoint::ALL");
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

async fn openapi_parameters_and_statuses_match_the_code(_env: &'static Env) {
    let doc = yaml("openapi.yaml");
    for ((method, path), item, op) in operations(&doc) {
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
            Endpoint::ListCustomers => ["page", "limit", "tierName", "status"]
                .map(String::from)
                .into(),
            Endpoint::ListMembers => ["page", "limit"].map(String::from).into(),
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
