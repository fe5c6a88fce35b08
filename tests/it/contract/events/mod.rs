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

// The platform's sample account, which `platform.rs` names as
// `super::SAMPLE_PLATFORM_ACCOUNT`.
use super::SAMPLE_PLATFORM_ACCOUNT;

mod api;
mod platform;
mod schedule;
mod stream;
mod webhook;

use api::*;
use platform::*;
use schedule::*;
use stream::*;
use webhook::*;

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
