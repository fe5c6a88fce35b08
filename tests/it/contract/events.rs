//! The samples under `events/`: as the template delivers them, through the real handlers.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::time::Duration;

use aws_lambda_events::eventbridge::EventBridgeEvent;
use aws_sdk_dynamodb::types::AttributeValue;
use billing::cleanup::{Cleanup, UserCleanup};
use billing::domain::{CustomerId, Role, Timestamp, UserId, time};
use billing::events::{CustomerDeleted, Publisher, UserDeleted};
use billing::http::{Endpoint, PREFIX};
use billing::store::table::{StreamCustomer, TableDefinition, customer_key, stream_customer};
use billing::sync::platform::{
    CUSTOMER_CREATED, CUSTOMER_UPDATED, Platform, PlatformError, PlatformOutcome,
};
use billing::sync::reconcile::Reconciler;
use billing::sync::signature::header;
use billing::sync::stripe_events::{About, StripeEvent};
use billing::sync::webhook::Webhooks;
use billing_tests::app::{Reply, TestApp, token};
use billing_tests::servers::repo_root;
use billing_tests::sinks::{EventSink, settle};
use billing_tests::{Env, by_test};
use http::{Method, StatusCode};
use secrecy::SecretString;
use serde_json::{Value, json};

use super::{
    DEFAULT_ROUTE, DELETION_MONITOR, Deployment, PLATFORM_CUSTOMER_HOOK, RECONCILE,
    ROUTE_NOT_FOUND, STREAM_CONSUMER, STRIPE_WEBHOOK, USER_DELETED_HOOK, WEBHOOK_ROUTE, entries,
    functions, one_or_many, platform_hook, render, str_of, template, template_events,
};

/// What the events name; seeded before each event runs.
const CUSTOMER: &str = "a1b2c3d4-5633-4b16-bbf0-5ca22ef8ea2e";
const OWNER: &str = "5f35d2c4-5633-4b16-bbf0-5ca22ef8ea2e";
const ADMIN: &str = "706a116f-0236-460e-8f08-9a65a2da89c2";
/// The member `remove-member.json` removes and `change-member-role.json`
/// makes an admin; `get-user-customer.json` looks up `ADMIN`'s customer.
const MEMBER: &str = "9de7068a-2422-46c1-b718-4a95a91cd559";
/// The user `add-member.json` adds.
const NEWCOMER: &str = "ea04845b-d127-4bd6-ae1b-b5ef40a3a7a7";
/// Another customer, filtered out by `list-customers.json` (`status=active`).
const PAST_DUE: &str = "c0ffee00-5633-4b16-bbf0-5ca22ef8ea2e";
const TIER_ID: &str = "e1f2a3b4-5633-4b16-bbf0-5ca22ef8ea2e";
const CREATED_AT: &str = "2026-02-03T09:14:22Z";
/// The token placeholder in every event; a test substitutes a fresh token.
/// In the webhook's event it is the `Stripe-Signature`, which a test makes
/// fresh too (Stripe's signatures are good for 5 minutes).
const PLACEHOLDER: &str = "REPLACED_BY_TEST";
/// The request id of the changes made before `list-audit.json` runs.
const AUDITED_REQUEST: &str = "contract-audit-1";
/// The webhook endpoint's signing secret in these tests.
const WEBHOOK_SECRET: &str = "whsec_contract_test";
/// The Stripe customer and subscription `stripe-webhook.json` is about.
const STRIPE_CUSTOMER: &str = "cus_RqZ3pT8vN2mK4x";
const STRIPE_SUBSCRIPTION: &str = "sub_1QxB2aLkdIwHu7ixR8mYtC4d";

/// The deletion monitor's schedule, as the template declares it.
const DELETION_MONITOR_SCHEDULE: &str = "rate(5 minutes)";
/// The reconciliation's schedule, as deployed by default (ReconcileSchedule).
const RECONCILE_SCHEDULE: &str = "rate(1 day)";

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
    /// `console`: the payload 2.0 event of a page below `/console/`.
    Console,
    /// `cleanup-stream`: a batch of the table's DynamoDB Streams records.
    StreamConsumer,
    /// `user-deleted`: the platform's `user.deleted` EventBridge event.
    UserDeletedHook,
    /// `deletion-monitor`: the scheduled event of its `rate(5 minutes)` rule.
    DeletionMonitor,
    /// `stripe-webhook`: the payload 2.0 event of Stripe's signed delivery.
    StripeWebhook,
    /// `platform-customer`: the platform's event of this `detail-type`, one
    /// file each (`platform-customer-created.json`, `-updated.json`).
    PlatformCustomer(&'static str),
    /// `reconcile`: the scheduled event of its daily rule.
    Reconcile,
}

impl Invokes {
    fn all() -> impl Iterator<Item = Self> {
        Endpoint::ALL.into_iter().map(Self::Endpoint).chain([
            Self::RouteNotFound,
            Self::Console,
            Self::StreamConsumer,
            Self::UserDeletedHook,
            Self::DeletionMonitor,
            Self::StripeWebhook,
            Self::PlatformCustomer(CUSTOMER_CREATED),
            Self::PlatformCustomer(CUSTOMER_UPDATED),
            Self::Reconcile,
        ])
    }

    fn function(self) -> &'static str {
        match self {
            Self::Endpoint(e) => e.function(),
            Self::RouteNotFound => ROUTE_NOT_FOUND,
            Self::Console => billing::http::CONSOLE_FUNCTION,
            Self::StreamConsumer => STREAM_CONSUMER,
            Self::UserDeletedHook => USER_DELETED_HOOK,
            Self::DeletionMonitor => DELETION_MONITOR,
            Self::StripeWebhook => STRIPE_WEBHOOK,
            Self::PlatformCustomer(_) => PLATFORM_CUSTOMER_HOOK,
            Self::Reconcile => RECONCILE,
        }
    }

    /// The name of its file in `events/`, without `.json`: the function's name,
    /// and for a function of several events the event's (`customer.created`:
    /// `platform-customer-created`).
    fn file_stem(self) -> String {
        match self {
            Self::PlatformCustomer(detail_type) => {
                let what = detail_type.rsplit('.').next().unwrap_or(detail_type);
                format!("{}-{what}", self.function())
            }
            other => other.function().to_owned(),
        }
    }
}

/// Every file in `events/`, with the function its name names; every function of
/// the template has one, and one per event it takes (`sam local invoke` runs
/// template functions; that they are the packages under functions/ is
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
                .find(|i| i.file_stem() == stem)
                .unwrap_or_else(|| panic!("events/{name} names no function (or event of one)"));
            (invokes, path)
        })
        .collect();
    let stems: BTreeSet<String> = found.iter().map(|(i, _)| i.file_stem()).collect();
    let expected: BTreeSet<String> = Invokes::all().map(Invokes::file_stem).collect();
    assert_eq!(stems, expected, "one file per function and event");
    let named: BTreeSet<String> = found.iter().map(|(i, _)| i.function().to_owned()).collect();
    let template: BTreeSet<String> = functions(&template())
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

/// The seeded customer as stored (an active one).
async fn stored_customer(app: &TestApp) -> billing::domain::Customer {
    app.store
        .get_customer(&customer_id())
        .await
        .expect("customer")
}

fn user(id: &str) -> UserId {
    UserId::parse(id).expect("test UUID")
}

/// What an endpoint's event needs besides the seeded customers: for
/// `list-audit.json`, two changes with known audit entries (ADMIN made a
/// user, then MEMBER removed), made directly for request `AUDITED_REQUEST`.
async fn prepare(endpoint: Endpoint, app: &TestApp) {
    if endpoint != Endpoint::ListAudit {
        return;
    }
    let origin = by_test().for_request(AUDITED_REQUEST);
    app.store
        .change_member_role(&customer_id(), &user(ADMIN), Role::User, &origin)
        .await
        .expect("change a role");
    // Entries sort by their time (milliseconds), then by id.
    tokio::time::sleep(Duration::from_millis(5)).await;
    app.store
        .remove_member(&customer_id(), &user(MEMBER), &origin)
        .await
        .expect("remove a member");
}

/// The customer's whole audit trail as listed, newest first.
async fn audit_trail(app: &TestApp) -> Vec<Value> {
    let reply = app
        .get(&format!("/customer/{CUSTOMER}/audit?limit=100"))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.json);
    let events = reply.json["events"].as_array().expect("events").clone();
    assert_eq!(
        reply.json["items"],
        json!(events.len()),
        "under 100 entries"
    );
    events
}

/// An audit event as listed: its fields, a UUID id, its time RFC 3339 with
/// milliseconds as the table writes it; returns it without `id` and `at`.
fn audit_event(e: &Value) -> Value {
    let fields: BTreeSet<&str> = e
        .as_object()
        .expect("event")
        .keys()
        .map(String::as_str)
        .collect();
    let always = BTreeSet::from([
        "id",
        "action",
        "at",
        "actor",
        "requestID",
        "customerID",
        "changes",
    ]);
    assert!(always.is_subset(&fields), "{e}: every event has {always:?}");
    assert!(
        fields
            .difference(&always)
            .all(|f| ["userID", "role"].contains(f)),
        "{e}: no other fields"
    );
    assert!(
        uuid::Uuid::parse_str(e["id"].as_str().expect("id")).is_ok(),
        "{e}"
    );
    let at: Timestamp = serde_json::from_value(e["at"].clone()).expect("at: RFC 3339");
    assert_eq!(
        json!(time::to_millis(&at)),
        e["at"],
        "at: with milliseconds"
    );
    let mut rest = e.clone();
    if let Some(fields) = rest.as_object_mut() {
        fields.remove("id");
        fields.remove("at");
    }
    rest
}

/// The response the handler gave the event, and the table after it; `caller`
/// is the subject of the event's token.
async fn check_outcome(endpoint: Endpoint, app: &TestApp, reply: &Reply, caller: &str) {
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
            let customer = stored_customer(app).await;
            assert_eq!(customer.member_count, 4);
        }
        Endpoint::RemoveMember => {
            assert_eq!(reply.status, StatusCode::NO_CONTENT);
            assert_eq!(reply.json, Value::Null);
            assert_eq!(
                app.store.membership_of(&user(MEMBER)).await.ok(),
                Some(None)
            );
            let customer = stored_customer(app).await;
            assert_eq!(customer.member_count, 2);
        }
        Endpoint::ChangeMemberRole => {
            assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.json);
            json_type();
            assert_eq!(
                reply.json,
                json!({"userID": MEMBER, "role": "admin", "joinedAt": "2026-02-03T09:14:24Z"})
            );
            assert_eq!(
                app.store.membership_of(&user(MEMBER)).await.ok(),
                Some(Some((customer_id(), Role::Admin)))
            );
            let customer = stored_customer(app).await;
            assert_eq!(customer.member_count, 3, "memberCount unchanged");
            // The member moved among the admins (after ADMIN, who joined first).
            let members = app.get(&format!("/customer/{CUSTOMER}/members")).await;
            let order: Vec<Value> = members.json["members"]
                .as_array()
                .expect("members")
                .iter()
                .map(|m| json!([m["userID"], m["role"]]))
                .collect();
            assert_eq!(
                order,
                [
                    json!([OWNER, "owner"]),
                    json!([ADMIN, "admin"]),
                    json!([MEMBER, "admin"])
                ]
            );
            // and the change is the newest audit entry, by the caller, for
            // this request
            let trail = audit_trail(app).await;
            let newest = audit_event(&trail[0]);
            let request = newest["requestID"].as_str().expect("requestID");
            assert!(uuid::Uuid::parse_str(request).is_ok(), "the request's id");
            assert_eq!(
                newest,
                json!({
                    "action": "member.role_changed",
                    "actor": {"type": "user", "subject": caller},
                    "requestID": request,
                    "customerID": CUSTOMER, "userID": MEMBER, "role": "admin",
                    "changes": {"role": {"from": "user", "to": "admin"}},
                })
            );
        }
        Endpoint::GetUserCustomer => {
            assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.json);
            json_type();
            assert_eq!(
                reply.json,
                json!({"customerID": CUSTOMER, "role": "admin", "joinedAt": "2026-02-03T09:14:23Z"})
            );
            // and a user of no customer is 404
            let none = app.get(&format!("/user/{NEWCOMER}/customer")).await;
            assert_eq!(none.status, StatusCode::NOT_FOUND);
            assert_eq!(none.error_code(), "membership_not_found");
        }
        Endpoint::ListAudit => {
            assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.json);
            json_type();
            // The first page (limit=2) of the whole trail: seeding's entries
            // and the two changes `prepare` made.
            let trail = audit_trail(app).await;
            let total = trail.len();
            assert!(total > 2, "seeding and the two changes are audited");
            assert_eq!(
                (&reply.json["items"], &reply.json["pages"]),
                (&json!(total), &json!(total.div_ceil(2)))
            );
            let events = reply.json["events"].as_array().expect("events");
            assert_eq!(events.as_slice(), &trail[..2]);
            // newest first, each by the test for its request: the removal,
            // then the role change
            let by_test = json!({"type": "system", "name": "test"});
            assert_eq!(
                [audit_event(&events[0]), audit_event(&events[1])],
                [
                    json!({
                        "action": "member.removed", "actor": by_test,
                        "requestID": AUDITED_REQUEST, "customerID": CUSTOMER,
                        "userID": MEMBER, "role": "user",
                        "changes": {"role": {"from": "user", "to": null}},
                    }),
                    json!({
                        "action": "member.role_changed", "actor": by_test,
                        "requestID": AUDITED_REQUEST, "customerID": CUSTOMER,
                        "userID": ADMIN, "role": "user",
                        "changes": {"role": {"from": "admin", "to": "user"}},
                    }),
                ]
            );
            let times: Vec<&str> = trail
                .iter()
                .map(|e| e["at"].as_str().expect("at"))
                .collect();
            assert!(times.is_sorted_by(|a, b| a >= b), "newest first: {times:?}");
            for e in &trail {
                audit_event(e);
            }
            // and `next` leads to the entries after them
            let next = reply.json["next"]
                .as_str()
                .expect("next: more entries follow");
            let after = app
                .get(&format!("/customer/{CUSTOMER}/audit?limit=2&cursor={next}"))
                .await;
            assert_eq!(after.status, StatusCode::OK, "{:?}", after.json);
            assert_eq!(after.json["events"], json!(trail[2..total.min(4)]));
        }
    }
}

/// For an event carrying an `Idempotency-Key`: the same request again is the
/// same answer, marked replayed, with nothing done twice (no new audit
/// entry); the key with another body is 422 `idempotency_key_reused`.
async fn check_idempotent_retry(
    endpoint: Endpoint,
    app: &TestApp,
    name: &str,
    signed: &str,
    first: &Reply,
) {
    let event: Value = serde_json::from_str(signed).expect("event JSON");
    if !endpoint.idempotent() || event["headers"].get("idempotency-key").is_none() {
        return;
    }
    let send = |raw: String| async move {
        let req = lambda_http::request::from_str(&raw).expect("event parses");
        Reply::from(billing::api::handle(&app.state, endpoint, req).await)
    };
    assert!(
        first.headers.get("idempotent-replayed").is_none(),
        "{name}: the first answer is no replay"
    );
    let trail = audit_trail(app).await;
    let again = send(signed.to_owned()).await;
    assert_eq!(
        (again.status, &again.json),
        (first.status, &first.json),
        "{name}: retried"
    );
    assert_eq!(again.headers["idempotent-replayed"], "true", "{name}");
    assert_eq!(audit_trail(app).await, trail, "{name}: nothing done twice");
    let mut other = event.clone();
    let mut body: Value =
        serde_json::from_str(event["body"].as_str().expect("a body")).expect("a JSON body");
    body["note"] = json!("another request");
    let body = body.to_string();
    other["headers"]["content-length"] = json!(body.len().to_string());
    other["body"] = json!(body);
    let reused = send(other.to_string()).await;
    assert_eq!(
        reused.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{name}: {:?}",
        reused.json
    );
    assert_eq!(reused.error_code(), "idempotency_key_reused", "{name}");
    assert_eq!(audit_trail(app).await, trail, "{name}: nothing done");
}

pub(super) async fn events_run_through_the_real_handlers(env: &'static Env) {
    for (invokes, path) in event_files() {
        let name = path.display().to_string();
        let raw = std::fs::read_to_string(&path).expect("read event");
        let event: Value = serde_json::from_str(&raw).unwrap_or_else(|e| panic!("{name}: {e}"));
        match invokes {
            Invokes::Endpoint(endpoint) => run_http_event(env, endpoint, &name, &raw, &event).await,
            Invokes::RouteNotFound => run_route_not_found_event(&name, &raw, &event),
            Invokes::Console => run_console_event(&name, &raw, &event),
            Invokes::StreamConsumer => run_stream_event(env, &name, &raw, &event).await,
            Invokes::UserDeletedHook => run_user_deleted_event(env, &name, &raw, &event).await,
            Invokes::DeletionMonitor => check_schedule_event(
                DELETION_MONITOR,
                DELETION_MONITOR_SCHEDULE,
                &name,
                &raw,
                &event,
            ),
            Invokes::StripeWebhook => run_webhook_event(env, &name, &raw, &event).await,
            Invokes::PlatformCustomer(detail_type) => {
                run_platform_customer_event(env, detail_type, &name, &event).await;
            }
            Invokes::Reconcile => run_reconcile_event(env, &name, &raw, &event).await,
        }
    }
}

async fn run_http_event(env: &Env, endpoint: Endpoint, name: &str, raw: &str, event: &Value) {
    check_event(endpoint, name, event);
    // GIVEN a fresh table holding what the event names, and a fresh token
    let app = TestApp::new(env).await;
    app.seed(fixtures()).await;
    prepare(endpoint, &app).await;
    let caller = uuid::Uuid::new_v4().to_string();
    let fresh = token(&caller, &["billing_admin"], 300);
    // WHEN the event, parsed as the Lambda runtime does, reaches the function's handler
    let signed = raw.replace(PLACEHOLDER, &fresh);
    let req = lambda_http::request::from_str(&signed)
        .unwrap_or_else(|e| panic!("{name}: not an API Gateway payload 2.0 event: {e}"));
    assert_eq!(req.method(), endpoint.method(), "{name}");
    let reply = Reply::from(billing::api::handle(&app.state, endpoint, req).await);
    // THEN the function answers with its success status and shape
    check_outcome(endpoint, &app, &reply, &caller).await;
    // and a retry with its Idempotency-Key is answered, not acted on, again
    check_idempotent_retry(endpoint, &app, name, &signed, &reply).await;
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

/// The console's event: API Gateway's payload 2.0 for one of its routes; the
/// function answers with the page and its security headers.
fn run_console_event(name: &str, raw: &str, event: &Value) {
    let route_key = event["routeKey"].as_str().expect("routeKey");
    assert!(
        billing::http::CONSOLE_ROUTES
            .iter()
            .any(|(method, path)| format!("{method} {path}") == route_key),
        "{name}: {route_key} is a console route"
    );
    assert_eq!(event["requestContext"]["routeKey"], route_key, "{name}");
    // GIVEN the event, parsed as the Lambda runtime does
    let req = lambda_http::request::from_str(raw)
        .unwrap_or_else(|e| panic!("{name}: not an API Gateway payload 2.0 event: {e}"));
    assert_eq!(req.method(), Method::GET, "{name}");
    assert!(console::serves(req.method(), req.uri().path()), "{name}");
    // WHEN it reaches the function's handler, configured as the template does by default
    let settings = console::Settings::from_lookup(|_| None).expect("default settings");
    let response = console::respond(&settings, req.uri().path());
    // THEN it is the page, revalidated on every load, under the console's CSP
    assert_eq!(response.status(), StatusCode::OK, "{name}");
    let header = |h: &str| {
        response.headers()[h]
            .to_str()
            .unwrap_or_else(|_| panic!("{name}: {h}"))
            .to_owned()
    };
    assert_eq!(header("content-type"), "text/html; charset=utf-8", "{name}");
    assert_eq!(header("cache-control"), "no-cache", "{name}");
    assert_eq!(
        header("content-security-policy"),
        settings.content_security_policy(),
        "{name}"
    );
    assert_eq!(header("x-content-type-options"), "nosniff", "{name}");
    assert_eq!(header("referrer-policy"), "no-referrer", "{name}");
    let lambda_http::Body::Binary(page) = response.body() else {
        panic!("{name}: the page is a binary body");
    };
    assert!(page.starts_with(b"<!doctype html>"), "{name}");
}

/// Whether `event` matches an EventBridge-style pattern, in the subset the template
/// uses: nested objects, and lists of exact values.
/// As deployed (the sample parameters: the event's source and account), the
/// rule `pattern` matches `event`, and the same event from another account it
/// does not; returns the deployed pattern.
fn deployed_rule_takes_only_the_platform(
    name: &str,
    pattern: &serde_norway::Value,
    event: &Value,
) -> Value {
    let deployment = Deployment::new(&template(), &[]);
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
    deployed
}

fn matches_pattern(pattern: &Value, event: &Value) -> bool {
    match pattern {
        Value::Object(fields) => fields.iter().all(|(k, p)| matches_pattern(p, &event[k])),
        Value::Array(values) => values.iter().any(|v| match v {
            // Content filtering: `{"prefix": "..."}` matches a string starting so.
            Value::Object(filter) => match filter.get("prefix") {
                Some(Value::String(prefix)) if filter.len() == 1 => event
                    .as_str()
                    .is_some_and(|s| s.starts_with(prefix.as_str())),
                _ => panic!("unsupported pattern value {v}"),
            },
            Value::Array(_) => panic!("unsupported pattern value {v}"),
            exact => exact == event,
        }),
        other => panic!("unsupported pattern {other}"),
    }
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

/// The template's FilterCriteria of the stream consumer's event source.
fn stream_filters() -> Vec<Value> {
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
    filters
}

/// An attribute value as a stream image holds it (`{"S": ..}`, `{"M": ..}`, ...).
fn stream_value(v: &AttributeValue) -> Value {
    match v {
        AttributeValue::S(s) => json!({"S": s}),
        AttributeValue::N(n) => json!({"N": n}),
        AttributeValue::Bool(b) => json!({"BOOL": b}),
        AttributeValue::Null(_) => json!({"NULL": true}),
        AttributeValue::Ss(ss) => json!({"SS": ss}),
        AttributeValue::Ns(ns) => json!({"NS": ns}),
        AttributeValue::L(l) => json!({"L": l.iter().map(stream_value).collect::<Vec<_>>()}),
        AttributeValue::M(m) => json!({"M": m
            .iter()
            .map(|(k, v)| (k.clone(), stream_value(v)))
            .collect::<serde_json::Map<_, _>>()}),
        other => panic!("unexpected attribute {other:?}"),
    }
}

/// The template's filters pass exactly the INSERTs the stream consumer acts on
/// (billing::store::table::stream_customer, then the consumer: a customer
/// record in the deleting state, a shard of listing day counts, a membership audit
/// entry), for every item of the table: `record` (a stream record of the
/// sample) as the INSERT of each item.
async fn check_stream_filters(app: &TestApp, name: &str, record: &Value) {
    let filters = stream_filters();
    let items = app
        .store
        .client()
        .scan()
        .table_name(app.store.table_name())
        .send()
        .await
        .expect("scan the table")
        .items
        .unwrap_or_default();
    let mut acted_on = BTreeSet::new();
    for item in &items {
        let image: serde_json::Map<String, Value> = item
            .iter()
            .map(|(k, v)| (k.clone(), stream_value(v)))
            .collect();
        let mut insert = record.clone();
        insert["eventName"] = json!("INSERT");
        let change = &mut insert["dynamodb"];
        change["Keys"] = json!({"PK": image["PK"], "SK": image["SK"]});
        change["NewImage"] = Value::Object(image.clone());
        if let Some(change) = change.as_object_mut() {
            change.remove("OldImage");
        }
        let parsed: aws_lambda_events::dynamodb::EventRecord =
            serde_json::from_value(insert.clone()).expect("a stream record");
        let (kind, acts) = match stream_customer(&parsed) {
            Some(StreamCustomer::Audited(entry)) => (
                format!("audit {}", entry.action.as_str()),
                entry.action.is_membership(),
            ),
            Some(StreamCustomer::Deleting(_)) => ("deleting customer".to_owned(), true),
            Some(StreamCustomer::Counted(_)) => ("listing count".to_owned(), true),
            Some(StreamCustomer::Removed(_)) => panic!("{name}: an INSERT removes nothing"),
            None => (format!("{:?}", image.get("type")), false),
        };
        let passes = filters.iter().any(|f| matches_pattern(f, &insert));
        assert_eq!(
            passes, acts,
            "{name}: the template's filters pass an INSERT of {kind} exactly when the consumer acts on it"
        );
        if acts {
            acted_on.insert(kind);
        }
    }
    for kind in ["deleting customer", "listing count", "audit member.added"] {
        assert!(acted_on.contains(kind), "{name}: the table held a {kind}");
    }
}

/// The batch is what Lambda delivers from the table's stream, through the template's
/// filters.
fn check_stream_event(name: &str, event: &Value) {
    let filters = stream_filters();
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
    app.store
        .begin_deletion(&id, &billing_tests::by_test())
        .await
        .expect("begin deletion");
    let deleting = stored_image(&app, &id).await;
    // (and the template's filters let through exactly the INSERTs the
    // consumer acts on, of the items the table now holds)
    check_stream_filters(&app, name, &json["Records"][0]).await;
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
    deployed_rule_takes_only_the_platform(name, pattern, event);
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
    // (as deployed: it processes only the platform's source and account)
    let cleanup = Cleanup::new(app.store.clone(), Some(env.payments()), Publisher::Log)
        .with_sender(billing::sender::ExpectedSender {
            source: "platform.users".into(),
            account: super::SAMPLE_PLATFORM_ACCOUNT.into(),
        });
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
    let count = || async { stored_customer(&app).await.member_count };
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

/// The event is what a scheduled function's rule delivers: EventBridge's
/// `Scheduled Event` of the template's schedule (`expected` as deployed with
/// the defaults). (The deletion monitor's handler is its own crate's; for it
/// this checks the sample, not the handler.)
fn check_schedule_event(binary: &str, expected: &str, name: &str, raw: &str, event: &Value) {
    let events = template_events(binary);
    let schedules = entries(&events);
    assert_eq!(
        schedules.len(),
        1,
        "template.yaml: one schedule invokes {binary}"
    );
    let (_, schedule) = &schedules[0];
    assert_eq!(render(&schedule["Type"]), "Schedule", "{binary}");
    let deployment = Deployment::new(&template(), &[]);
    assert_eq!(
        deployment.value(&render(&schedule["Properties"]["Schedule"])),
        expected,
        "{binary}"
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

pub(super) async fn events_without_a_fresh_token_or_signature_are_refused(env: &'static Env) {
    let app = TestApp::new(env).await;
    app.seed(fixtures()).await;
    for (endpoint, path) in http_event_files() {
        let raw = std::fs::read_to_string(&path).expect("read event");
        let req = lambda_http::request::from_str(&raw).expect("event parses");
        let reply = Reply::from(billing::api::handle(&app.state, endpoint, req).await);
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", path.display());
        assert_eq!(reply.error_code(), "unauthorized");
    }
    // and the webhook's event is refused (400) unless signed now under the
    // endpoint's secret: as it is (the placeholder), signed too long ago, under
    // another secret, or with no signature at all
    let (path, raw, event) = webhook_event_file();
    let name = path.display();
    let body = event["body"].as_str().expect("body").as_bytes();
    let hooks = webhook_hooks(&app);
    let now = billing::domain::now().timestamp();
    let secret = SecretString::from(WEBHOOK_SECRET);
    let other = SecretString::from("whsec_another_endpoint");
    let mut unsigned = event.clone();
    unsigned["headers"]
        .as_object_mut()
        .expect("headers")
        .remove("stripe-signature");
    let unsigned = serde_json::to_string(&unsigned).expect("event JSON");
    for (raw, code) in [
        (raw.clone(), "invalid_signature"),
        (
            raw.replace(PLACEHOLDER, &header(&secret, now - 600, body)),
            "signature_expired",
        ),
        (
            raw.replace(PLACEHOLDER, &header(&other, now, body)),
            "invalid_signature",
        ),
        (unsigned, "missing_signature"),
    ] {
        let req = lambda_http::request::from_str(&raw).expect("event parses");
        let reply = Reply::from(hooks.handle(&req).await);
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{name}: {code}");
        assert_eq!(reply.error_code(), code, "{name}");
    }
    // and nothing changed
    let customer = stored_customer(&app).await;
    assert_eq!(customer.member_count, 3);
    assert_eq!(customer.subscription_status.as_str(), "active");
    assert_eq!(customer.stripe_customer_id, None);
    assert_eq!(
        app.store.customer_of_stripe(STRIPE_CUSTOMER).await.ok(),
        Some(None)
    );
}

// ---- Stripe's webhook --------------------------------------------------------------

/// The webhook endpoint over the app's table, with the tests' signing secret.
fn webhook_hooks(app: &TestApp) -> Webhooks {
    app.webhooks(WEBHOOK_SECRET)
}

/// `events/stripe-webhook.json`: its path, text and JSON.
fn webhook_event_file() -> (PathBuf, String, Value) {
    let (_, path) = event_files()
        .into_iter()
        .find(|(i, _)| *i == Invokes::StripeWebhook)
        .expect("the webhook's event");
    let raw = std::fs::read_to_string(&path).expect("read event");
    let event = serde_json::from_str(&raw).expect("event JSON");
    (path, raw, event)
}

/// The event is the payload 2.0 API Gateway sends to the webhook's route:
/// Stripe's delivery, without admin credentials, its signature a placeholder,
/// its body a subscription event about the seeded customer (named by its
/// metadata: it has no Stripe customer yet).
fn check_webhook_event(name: &str, event: &Value) {
    let events = template_events(STRIPE_WEBHOOK);
    let routes = entries(&events);
    assert_eq!(
        routes.len(),
        1,
        "template.yaml: one route invokes {STRIPE_WEBHOOK}"
    );
    let route = &routes[0].1["Properties"];
    assert_eq!(
        (render(&route["Method"]), render(&route["Path"])),
        (WEBHOOK_ROUTE.0.to_owned(), WEBHOOK_ROUTE.1.to_owned()),
        "template.yaml: the webhook's route"
    );
    let route_key = format!("{} {}", WEBHOOK_ROUTE.0, WEBHOOK_ROUTE.1);
    let ctx = &event["requestContext"];
    assert_eq!(event["version"], "2.0", "{name}");
    assert_eq!(event["routeKey"], route_key.as_str(), "{name}");
    assert_eq!(ctx["routeKey"], route_key.as_str(), "{name}");
    assert_eq!(ctx["stage"], "$default", "{name}");
    assert_eq!(ctx["http"]["method"], "POST", "{name}");
    assert_eq!(event["rawPath"], WEBHOOK_ROUTE.1, "{name}");
    assert_eq!(ctx["http"]["path"], WEBHOOK_ROUTE.1, "{name}");
    let headers = event["headers"].as_object().expect("headers");
    assert_eq!(
        headers.get("stripe-signature"),
        Some(&json!(PLACEHOLDER)),
        "{name}: the signature is a placeholder the test replaces"
    );
    for credential in ["authorization", "api-key", "api-secret"] {
        assert!(
            !headers.contains_key(credential),
            "{name}: Stripe sends no {credential}"
        );
    }
    assert_eq!(event["isBase64Encoded"], false, "{name}");
    let body = event["body"].as_str().expect("body");
    let parsed = StripeEvent::parse(body.as_bytes())
        .unwrap_or_else(|e| panic!("{name}: the body is no Stripe event: {e}"));
    assert_eq!(parsed.kind, "customer.subscription.updated", "{name}");
    let About::Subscription(sub) = &parsed.about else {
        panic!("{name}: a subscription event")
    };
    assert_eq!(sub.id, STRIPE_SUBSCRIPTION, "{name}");
    assert_eq!(sub.stripe_customer, STRIPE_CUSTOMER, "{name}");
    assert_eq!(
        sub.customer,
        Some(customer_id()),
        "{name}: metadata.customerID"
    );
    assert_eq!(sub.status.as_str(), "past_due", "{name}");
}

async fn run_webhook_event(env: &Env, name: &str, raw: &str, event: &Value) {
    check_webhook_event(name, event);
    // GIVEN the active customer the event names, and Stripe (localstripe)
    // holding its Stripe customer with a past-due pro subscription: the
    // sample's ids stand for the ones localstripe makes
    let app = TestApp::new(env).await;
    app.seed(fixtures()).await;
    let hooks = webhook_hooks(&app);
    let created = app
        .payments()
        .create_customer(
            &customer_id(),
            "Acme Corp",
            &billing::domain::TierName::parse("pro").expect("tier"),
            uuid::Uuid::parse_str(TIER_ID).expect("tier id"),
            true,
        )
        .await
        .expect("stripe customer");
    let (stripe_customer, stripe_subscription) = (
        created.customer,
        created.subscription.expect("subscription"),
    );
    let (status, body) = billing_tests::net::request(
        &env.stripe_url,
        "POST",
        &format!("/_config/subscriptions/{stripe_subscription}/status"),
        &[("Content-Type", "application/x-www-form-urlencoded")],
        Some("status=past_due"),
    );
    assert_eq!(status, 200, "{name}: put past due: {body}");
    let raw = raw
        .replace(STRIPE_CUSTOMER, &stripe_customer)
        .replace(STRIPE_SUBSCRIPTION, &stripe_subscription);
    let event: Value = serde_json::from_str(&raw).expect("event JSON");
    // WHEN the event, signed now as Stripe signs it, reaches the function's
    // handler as the runtime parses it
    let body = event["body"].as_str().expect("body");
    let now = billing::domain::now().timestamp();
    let signature = header(&SecretString::from(WEBHOOK_SECRET), now, body.as_bytes());
    let signed = raw.replace(PLACEHOLDER, &signature);
    let deliver = || async {
        let req = lambda_http::request::from_str(&signed)
            .unwrap_or_else(|e| panic!("{name}: not an API Gateway payload 2.0 event: {e}"));
        assert_eq!(req.method(), Method::POST, "{name}");
        Reply::from(hooks.handle(&req).await)
    };
    let reply = deliver().await;
    // THEN it is applied: the customer is past due, with the Stripe customer and
    // subscription, found by its Stripe customer from now on
    assert_eq!(reply.status, StatusCode::OK, "{name}: {:?}", reply.json);
    assert_eq!(reply.headers["content-type"], "application/json", "{name}");
    assert_eq!(
        reply.json,
        json!({"received": true, "outcome": "applied"}),
        "{name}"
    );
    let customer = stored_customer(&app).await;
    assert_eq!(customer.subscription_status.as_str(), "past_due", "{name}");
    assert_eq!(customer.tier_name.as_str(), "pro", "{name}");
    assert_eq!(
        customer.stripe_customer_id.as_deref(),
        Some(stripe_customer.as_str()),
        "{name}"
    );
    assert_eq!(
        customer.stripe_subscription_id.as_deref(),
        Some(stripe_subscription.as_str()),
        "{name}"
    );
    assert_eq!(
        app.store.customer_of_stripe(&stripe_customer).await.ok(),
        Some(Some(customer_id())),
        "{name}"
    );
    // and it moved from the active listing to the past-due one
    assert_eq!(
        listed(&app, "status=active").await,
        BTreeSet::new(),
        "{name}"
    );
    assert_eq!(
        listed(&app, "status=past_due").await,
        BTreeSet::from([CUSTOMER.to_owned(), PAST_DUE.to_owned()]),
        "{name}"
    );
    // and Stripe's redelivery of it changes nothing
    let again = deliver().await;
    assert_eq!(again.status, StatusCode::OK, "{name}: redelivered");
    assert_eq!(again.json["outcome"], "duplicate", "{name}: redelivered");
    // and any other method of the path is 405 with `Allow: POST` (the route is
    // the path's every method)
    for method in ["GET", "PUT", "DELETE"] {
        let mut other: Value = serde_json::from_str(&signed).expect("event JSON");
        other["requestContext"]["http"]["method"] = json!(method);
        let req = lambda_http::request::from_str(&other.to_string()).expect("event parses");
        let reply = Reply::from(hooks.handle(&req).await);
        assert_eq!(
            reply.status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{name}: {method}"
        );
        assert_eq!(reply.headers["allow"], "POST", "{name}: {method}");
        assert_eq!(reply.error_code(), "method_not_allowed", "{name}");
    }
}

// ---- The platform's customer events --------------------------------------------------

/// The event is what the platform's bus delivers to the hook's rule: as deployed
/// (the sample parameters), the rule matches it, and neither the same event
/// from another account nor another detail-type.
fn check_platform_rule_event(binary: &str, name: &str, event: &Value) {
    let hook = platform_hook(binary).unwrap_or_else(|| panic!("{binary} is no platform hook"));
    let events = template_events(binary);
    let rules = entries(&events);
    assert_eq!(rules.len(), 1, "template.yaml: one rule invokes {binary}");
    let detail_type = event["detail-type"].as_str().expect("detail-type");
    assert!(
        hook.detail_types.contains(&detail_type),
        "{name}: {detail_type} is one of {binary}'s"
    );
    let deployed =
        deployed_rule_takes_only_the_platform(name, &rules[0].1["Properties"]["Pattern"], event);
    let mut other = event.clone();
    other["detail-type"] = json!("customer.deleted");
    assert!(
        !matches_pattern(&deployed, &other),
        "{name}: another detail-type does not match"
    );
    for field in ["version", "id", "account", "time", "region", "source"] {
        assert!(
            event[field].as_str().is_some_and(|s| !s.is_empty()),
            "{name}: {field}"
        );
    }
    assert!(event["resources"].is_array(), "{name}: resources");
    assert!(event["detail"].is_object(), "{name}: detail");
    // Parsed as the Lambda runtime does.
    let parsed: EventBridgeEvent<Value> = serde_json::from_value(event.clone())
        .unwrap_or_else(|e| panic!("{name}: not an EventBridge event: {e}"));
    assert_eq!(parsed.detail_type, detail_type, "{name}");
}

/// Lists `query` of the customers: the ids on its first page.
async fn listed(app: &TestApp, query: &str) -> BTreeSet<String> {
    let reply = app.get(&format!("/customers?{query}")).await;
    assert_eq!(reply.status, StatusCode::OK, "{query}");
    reply.json["customers"]
        .as_array()
        .expect("customers")
        .iter()
        .map(|c| c["id"].as_str().expect("id").to_owned())
        .collect()
}

/// The same event with a new id (so not a replay), its detail changed by `edit`.
fn another(event: &Value, edit: impl FnOnce(&mut Value)) -> Value {
    let mut other = event.clone();
    other["id"] = json!(uuid::Uuid::new_v4().to_string());
    edit(&mut other["detail"]);
    other
}

async fn run_platform_customer_event(env: &Env, detail_type: &str, name: &str, event: &Value) {
    check_platform_rule_event(PLATFORM_CUSTOMER_HOOK, name, event);
    assert_eq!(event["detail-type"], detail_type, "{name}");
    let detail = &event["detail"];
    let text = |field: &str| {
        detail[field]
            .as_str()
            .unwrap_or_else(|| panic!("{name}: detail.{field}"))
    };
    // GIVEN the seeded customers
    let app = TestApp::new(env).await;
    app.seed(fixtures()).await;
    // (as deployed: it processes only the platform's source and account)
    let platform = Platform::new(app.store.clone()).with_sender(billing::sender::ExpectedSender {
        source: "platform.customers".into(),
        account: super::SAMPLE_PLATFORM_ACCOUNT.into(),
    });
    let rejected = |result: Result<PlatformOutcome, PlatformError>| {
        matches!(result, Err(PlatformError::Rejected(_)))
    };
    if detail_type == CUSTOMER_CREATED {
        let id = CustomerId::parse(text("customerID")).expect("customerID");
        let owner = user(text("ownerUserID"));
        assert_eq!(
            app.store.membership_of(&owner).await.ok(),
            Some(None),
            "{name}: the owner belongs to no customer yet"
        );
        // WHEN the event reaches the hook's handler as the runtime delivers it
        let outcome = platform
            .on_event(event)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        // THEN the customer exists with its owner, its Stripe customer, and
        // in its listings
        assert_eq!(outcome, PlatformOutcome::Created, "{name}");
        let customer = app.store.get_customer(&id).await.expect("customer");
        assert_eq!(customer.name, text("name"), "{name}");
        assert_eq!(customer.tier_name.as_str(), text("tierName"), "{name}");
        assert_eq!(customer.tier_id.to_string(), text("tierID"), "{name}");
        assert_eq!(
            customer.subscription_status.as_str(),
            text("subscriptionStatus"),
            "{name}"
        );
        assert_eq!(customer.owner_user_id, owner, "{name}");
        assert_eq!(customer.member_count, 1, "{name}: memberCount");
        assert_eq!(
            customer.stripe_customer_id.as_deref(),
            Some(text("stripeCustomerID")),
            "{name}"
        );
        assert_eq!(
            app.store.membership_of(&owner).await.ok(),
            Some(Some((id, Role::Owner))),
            "{name}: the owner's membership"
        );
        assert_eq!(
            app.store
                .customer_of_stripe(text("stripeCustomerID"))
                .await
                .ok(),
            Some(Some(id)),
            "{name}: found by its Stripe customer"
        );
        let status = format!("status={}", text("subscriptionStatus"));
        assert_eq!(
            listed(&app, &status).await,
            BTreeSet::from([id.to_string()]),
            "{name}: {status}"
        );
        // and a replay changes nothing
        assert_eq!(
            platform.on_event(event).await.ok(),
            Some(PlatformOutcome::Unchanged),
            "{name}: replayed"
        );
        let customer = app.store.get_customer(&id).await.expect("customer");
        assert_eq!(customer.member_count, 1, "{name}: memberCount after replay");
        // and a customer whose owner belongs to another is refused, for the
        // dead-letter queue, and writes nothing
        let taken_id = CustomerId::random();
        let taken = another(event, |d| {
            d["customerID"] = json!(taken_id.to_string());
            d["ownerUserID"] = json!(OWNER);
            if let Some(d) = d.as_object_mut() {
                d.remove("stripeCustomerID");
                d.remove("stripeSubscriptionID");
            }
        });
        assert!(
            rejected(platform.on_event(&taken).await),
            "{name}: an owner of another customer"
        );
        assert_eq!(
            app.store.find_customer(&taken_id).await.ok(),
            Some(None),
            "{name}: nothing written"
        );
    } else {
        assert_eq!(text("customerID"), CUSTOMER, "{name}: the seeded customer");
        // WHEN the event reaches the hook's handler as the runtime delivers it
        let outcome = platform
            .on_event(event)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        // THEN the customer has its new name and tier, and moved listings
        assert_eq!(outcome, PlatformOutcome::Updated, "{name}");
        let customer = stored_customer(&app).await;
        assert_eq!(customer.name, text("name"), "{name}");
        assert_eq!(customer.tier_name.as_str(), text("tierName"), "{name}");
        assert_eq!(customer.tier_id.to_string(), text("tierID"), "{name}");
        assert_eq!(customer.member_count, 3, "{name}: members untouched");
        let tier = format!("tierName={}", text("tierName"));
        assert_eq!(
            listed(&app, &tier).await,
            BTreeSet::from([CUSTOMER.to_owned()]),
            "{name}: {tier}"
        );
        assert_eq!(
            listed(&app, "tierName=pro").await,
            BTreeSet::from([PAST_DUE.to_owned()]),
            "{name}: left tierName=pro"
        );
        // and a replay changes nothing
        assert_eq!(
            platform.on_event(event).await.ok(),
            Some(PlatformOutcome::Unchanged),
            "{name}: replayed"
        );
        // and half a tier is refused, for the dead-letter queue, and writes
        // nothing
        let half = another(event, |d| {
            *d = json!({"customerID": CUSTOMER, "tierName": "basic"})
        });
        assert!(
            rejected(platform.on_event(&half).await),
            "{name}: tierName without tierID"
        );
        let customer = stored_customer(&app).await;
        assert_eq!(customer.tier_name.as_str(), text("tierName"), "{name}");
    }
}

// ---- The reconciliation --------------------------------------------------------------

async fn run_reconcile_event(env: &Env, name: &str, raw: &str, event: &Value) {
    // The scheduled function ignores the event's content: the sample is checked
    // against the schedule, and the reconciliation runs as the function runs it
    // with the template's default (ReconcileRepair "false": report only).
    check_schedule_event(RECONCILE, RECONCILE_SCHEDULE, name, raw, event);
    // GIVEN the seeded customers, without billing in Stripe
    let app = TestApp::new(env).await;
    app.seed(fixtures()).await;
    // WHEN the reconciliation runs
    let repair = billing::sync::reconcile::repair_setting(Some("false")).expect("false");
    let report = Reconciler::new(app.store.clone(), env.payments())
        .run(repair)
        .await
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    // THEN it compared both active customers and repaired nothing
    assert_eq!(report.checked, 2, "{name}: checked");
    assert_eq!(report.repaired, 0, "{name}: report only");
    let customer = stored_customer(&app).await;
    assert_eq!(customer.subscription_status.as_str(), "active", "{name}");
    assert_eq!(customer.member_count, 3, "{name}");
}
