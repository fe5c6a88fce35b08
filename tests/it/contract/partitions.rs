//! `template.yaml`'s `dynamodb:LeadingKeys`: each function may touch only the
//! partitions it needs. Statically (every item grant on the table is confined
//! to partitions; only the HTTP functions, which verify API keys, may read the
//! `APIKEY` partition, with GetItem only; none may write it), and as the code
//! behaves: every DynamoDB request each function's code makes, recorded by an
//! SDK interceptor while it serves its requests and events against DynamoDB
//! Local, is allowed by that function's statements (action, resource,
//! transaction and partition).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::BoxError;
use billing::api::{Endpoint, PREFIX};
use billing::cleanup::Cleanup;
use billing::events::Publisher;
use billing::store::table::API_KEY_PK;
use billing::telemetry::metrics;
use billing_tests::Env;
use billing_tests::app::{Spec, TestApp};
use http::{Method, StatusCode};
use serde_json::{Value, json};

use super::iam::{Permission, permissions, string_like};
use super::{
    DELETION_MONITOR, PLATFORM_CUSTOMER_HOOK, RECONCILE, STREAM_CONSUMER, STRIPE_WEBHOOK,
    USER_DELETED_HOOK, functions, template,
};

/// The table as a policy's resource.
const TABLE: &str = "GetAtt:Table.Arn";

/// One item action a request made: what IAM authorizes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Access {
    /// The function it was made for (the metrics' function of its task).
    function: String,
    /// `dynamodb:GetItem`, ...
    action: String,
    /// The table, or `<table>/index/<name>`.
    resource: String,
    /// The partition key value (the index's, for an index query).
    pk: String,
    in_transaction: bool,
}

/// Records every item action of the requests sent through its client.
#[derive(Debug, Clone, Default)]
struct Recorder(Arc<Mutex<Vec<Access>>>);

impl Recorder {
    fn take(&self) -> Vec<Access> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

impl Intercept for Recorder {
    fn name(&self) -> &'static str {
        "PartitionRecorder"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let request = context.request();
        let target = request
            .headers()
            .get("x-amz-target")
            .unwrap_or_default()
            .trim_start_matches("DynamoDB_20120810.")
            .to_owned();
        let body: Value = request
            .body()
            .bytes()
            .and_then(|b| serde_json::from_slice(b).ok())
            .unwrap_or(Value::Null);
        let function = metrics::function().to_owned();
        let mut out = self.0.lock().unwrap();
        for (action, index, pk, in_transaction) in accesses(&target, &body) {
            out.push(Access {
                function: function.clone(),
                action: format!("dynamodb:{action}"),
                resource: match index {
                    None => TABLE.to_owned(),
                    Some(i) => format!("Sub:${{Table.Arn}}/index/{i}"),
                },
                pk,
                in_transaction,
            });
        }
        Ok(())
    }
}

/// `PK` of an item or key.
fn pk_of(item: &Value) -> String {
    item["PK"]["S"].as_str().unwrap_or("?").to_owned()
}

/// The item actions of one request: (action, index, partition, in a transaction).
fn accesses(target: &str, body: &Value) -> Vec<(String, Option<String>, String, bool)> {
    let one = |action: &str, pk: String| vec![(action.to_owned(), None, pk, false)];
    match target {
        "GetItem" | "DeleteItem" | "UpdateItem" => one(target, pk_of(&body["Key"])),
        "PutItem" => one(target, pk_of(&body["Item"])),
        "Query" => {
            let index = body["IndexName"].as_str().map(str::to_owned);
            vec![("Query".to_owned(), index, query_partition(body), false)]
        }
        "Scan" => one("Scan", "(every partition)".to_owned()),
        "BatchGetItem" => requests(body)
            .flat_map(|r| r["Keys"].as_array().cloned().unwrap_or_default())
            .map(|k| ("BatchGetItem".to_owned(), None, pk_of(&k), false))
            .collect(),
        "BatchWriteItem" => requests(body)
            .flat_map(|r| r.as_array().cloned().unwrap_or_default())
            .map(|w| match w.get("PutRequest") {
                Some(p) => ("BatchWriteItem".to_owned(), None, pk_of(&p["Item"]), false),
                None => (
                    "BatchWriteItem".to_owned(),
                    None,
                    pk_of(&w["DeleteRequest"]["Key"]),
                    false,
                ),
            })
            .collect(),
        "TransactWriteItems" => body["TransactItems"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|t| {
                let (kind, op) = t
                    .as_object()
                    .and_then(|o| o.iter().next())
                    .expect("an action");
                let (action, pk) = match kind.as_str() {
                    "Put" => ("PutItem", pk_of(&op["Item"])),
                    "Update" => ("UpdateItem", pk_of(&op["Key"])),
                    "Delete" => ("DeleteItem", pk_of(&op["Key"])),
                    "ConditionCheck" => ("ConditionCheckItem", pk_of(&op["Key"])),
                    other => panic!("transaction action {other}"),
                };
                (action.to_owned(), None, pk, true)
            })
            .collect(),
        "TransactGetItems" => body["TransactItems"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|t| ("GetItem".to_owned(), None, pk_of(&t["Get"]["Key"]), false))
            .collect(),
        // Table management (the tests' own) and the like: no item.
        _ => Vec::new(),
    }
}

fn requests(body: &Value) -> impl Iterator<Item = Value> {
    body["RequestItems"]
        .as_object()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|(_, v)| v)
}

/// The partition a Query reads: the value compared with the (index's)
/// partition key in its key condition.
fn query_partition(body: &Value) -> String {
    let names = &body["ExpressionAttributeNames"];
    let values = &body["ExpressionAttributeValues"];
    let condition = body["KeyConditionExpression"].as_str().unwrap_or_default();
    for clause in condition.split(" AND ") {
        let Some((left, right)) = clause.split_once('=') else {
            continue;
        };
        let (left, right) = (left.trim(), right.trim());
        let name = names[left].as_str().unwrap_or(left);
        if name == "PK" || name.ends_with("PK") {
            return values[right]["S"].as_str().unwrap_or("?").to_owned();
        }
    }
    panic!("no partition in {condition:?}")
}

/// A table stream record (new image only) as Lambda delivers it.
fn stream_record(event_name: &str, keys: Value, new_image: Value) -> Value {
    json!({
        "eventID": uuid::Uuid::new_v4().to_string(), "eventName": event_name,
        "eventVersion": "1.1", "eventSource": "aws:dynamodb", "awsRegion": "us-east-1",
        "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/t/stream/2026-01-01T00:00:00.000",
        "dynamodb": {
            "ApproximateCreationDateTime": 1_767_225_600, "Keys": keys, "NewImage": new_image,
            "SequenceNumber": "1", "SizeBytes": 100, "StreamViewType": "NEW_AND_OLD_IMAGES",
        },
    })
}

/// `future` run as `function` (its DynamoDB requests are recorded for it).
async fn as_function<F: std::future::Future>(function: &'static str, future: F) -> F::Output {
    metrics::in_function(function, future).await
}

/// Every item grant on the table is confined to partitions; only the HTTP
/// functions (which verify API keys) may touch the `APIKEY` partition, by
/// GetItem; no function may write it.
pub(super) async fn template_confines_each_function_to_its_partitions(_env: &'static Env) {
    let template = template();
    for f in functions(&template) {
        let id = &f.logical_id;
        let verifies_api_keys = Endpoint::ALL.iter().any(|e| e.function() == f.binary);
        for p in permissions(&f) {
            if !p.action.starts_with("dynamodb:") {
                continue;
            }
            let on_index = p.resource.contains("/index/GSI");
            let partitions = match (&p.partitions, on_index) {
                (Some(ps), _) => ps.clone(),
                // A global index's partitions are its own keys' (GSI1's
                // `DELETING`): the grant names the index alone.
                (None, true) => continue,
                (None, false) => panic!(
                    "{id}: {} on {} without dynamodb:LeadingKeys",
                    p.action, p.resource
                ),
            };
            for pattern in &partitions {
                assert!(
                    !pattern.starts_with('*') && !pattern.starts_with('?'),
                    "{id}: {pattern} names a partition prefix"
                );
            }
            let api_keys = partitions.iter().any(|pt| string_like(pt, API_KEY_PK));
            if api_keys {
                assert!(
                    verifies_api_keys && p.action == "dynamodb:GetItem" && !p.in_transaction,
                    "{id}: {} on the APIKEY partition (only API-key verification reads it, by GetItem)",
                    p.action
                );
            }
        }
        // HTTP functions can read API keys, and nobody else can.
        let reads_keys = permissions(&f).iter().any(|p| {
            p.action == "dynamodb:GetItem"
                && p.resource == TABLE
                && p.partitions
                    .as_ref()
                    .is_some_and(|ps| ps.iter().any(|pt| pt == API_KEY_PK))
        });
        assert_eq!(reads_keys, verifies_api_keys, "{id}: reads APIKEY");
    }
}

/// Every request each function's code makes is allowed by its statements.
pub(super) async fn each_function_touches_only_its_granted_partitions(env: &'static Env) {
    let recorder = Recorder::default();
    let base = TestApp::new(env).await;
    let config = env
        .dynamodb_client()
        .config()
        .to_builder()
        .interceptor(recorder.clone())
        .build();
    let mut app = base.through(aws_sdk_dynamodb::Client::from_conf(config));
    let store = app.state.store.clone();
    // API keys are looked up through it too.
    app.state.auth =
        billing::auth::Authenticator::new(billing_tests::app::dev_verifier(), store.clone());

    // The HTTP functions, each through its endpoint (an API key for one request).
    let c = base.customer_with_stripe(Spec::with_members(3)).await;
    // Enough customers in one day that a deep page reads the day's directory.
    for _ in 0..11 {
        base.customer(Spec::default()).await;
    }
    let key = billing::auth::issue_api_key("partitions", vec!["billing_admin".into()], None)
        .expect("key");
    base.store
        .put_api_key(&key.key_id, &key.record)
        .await
        .expect("put key");
    let api_key = [
        ("api-key", key.key_id.as_str()),
        ("api-secret", key.secret.as_str()),
    ];
    let reply = app
        .call(Method::GET, "/customers?limit=1", &api_key, None)
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.json);
    let next = reply.json["next"].as_str().unwrap_or_default().to_owned();
    let newcomer = uuid::Uuid::new_v4().to_string();
    let id = &c.id;
    let steps: Vec<(Method, String, Option<Value>)> = vec![
        (
            Method::GET,
            "/customers?status=active&tierName=pro&page=2&limit=1".into(),
            None,
        ),
        (Method::GET, "/customers?page=11&limit=1".into(), None),
        (
            Method::GET,
            format!("/customers?limit=1&cursor={next}"),
            None,
        ),
        (Method::GET, format!("/customer/{id}"), None),
        (Method::GET, format!("/customer/{id}/members?limit=1"), None),
        (
            Method::GET,
            format!("/customer/{id}/members?page=2&limit=1"),
            None,
        ),
        (
            Method::POST,
            format!("/customer/{id}/member"),
            Some(json!({"userID": newcomer, "role": "user"})),
        ),
        (
            Method::PATCH,
            format!("/customer/{id}/member/{newcomer}"),
            Some(json!({"role": "admin"})),
        ),
        (
            Method::DELETE,
            format!("/customer/{id}/member/{}", c.members[2]),
            None,
        ),
        (
            Method::GET,
            format!("/user/{}/customer", c.members[0]),
            None,
        ),
        (Method::GET, format!("/customer/{id}/audit?limit=1"), None),
        (
            Method::GET,
            format!("/customer/{id}/audit?page=2&limit=1"),
            None,
        ),
    ];
    // Every other read of the route table, on this customer and its first member.
    let covered: Vec<Endpoint> = steps
        .iter()
        .filter_map(|(method, path, _)| {
            let path = path.split('?').next().unwrap_or_default();
            billing::api::route(method, &format!("{PREFIX}{path}")).ok()
        })
        .map(|(endpoint, _)| endpoint)
        .collect();
    let mut steps = steps;
    for e in Endpoint::ALL {
        if e.method() == Method::GET && !covered.contains(&e) {
            let path = e
                .path()
                .replace("{customerID}", id)
                .replace("{userID}", &c.members[0].to_string());
            steps.push((Method::GET, path, None));
        }
    }
    // The customer's deletion last.
    steps.push((Method::DELETE, format!("/customer/{id}"), None));
    for (i, (method, path, body)) in steps.into_iter().enumerate() {
        let auth =
            billing_tests::app::bearer(&uuid::Uuid::new_v4().to_string(), &["billing_admin"]);
        let key = format!("partitions-{i}");
        let headers = [
            ("authorization", auth.as_str()),
            ("idempotency-key", key.as_str()),
        ];
        let reply = app.call(method.clone(), &path, &headers, body).await;
        assert!(
            reply.status.is_success(),
            "{method} {path}: {:?}",
            reply.json
        );
    }

    // The Stripe webhook: a subscription change of a customer with Stripe.
    let hooked = base.customer_with_stripe(Spec::default()).await;
    let sub = base
        .payments()
        .subscriptions_of(&hooked.stripe_id)
        .await
        .expect("subscriptions")
        .expect("a Stripe customer");
    let sub_id = sub
        .first()
        .and_then(|s| s["id"].as_str())
        .expect("its subscription")
        .to_owned();
    let hooks = billing::sync::webhook::Webhooks::new(
        store.clone(),
        billing::sync::signature::WebhookSecrets::Fixed(
            billing::sync::signature::Secrets::parse(&secrecy::SecretString::from(
                crate::sync::SECRET,
            ))
            .expect("secret"),
        ),
        base.payments().clone(),
    );
    let (status, body) = env.stripe_call("DELETE", &format!("/v1/subscriptions/{sub_id}"));
    assert_eq!(status, 200, "{body}");
    let event = crate::sync::sub_event(
        "customer.subscription.deleted",
        crate::sync::now(),
        &hooked.stripe_id,
        &sub_id,
        "canceled",
        Some("pro"),
    );
    let reply = crate::sync::send(&hooks, &event).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.json);

    // The platform's customer events: created (with its Stripe customer), updated.
    let platform =
        billing::sync::platform::Platform::with_stripe(store.clone(), base.payments().clone());
    let created_id = uuid::Uuid::new_v4().to_string();
    let owner = uuid::Uuid::new_v4().to_string();
    // A Stripe customer no customer of ours has.
    let (status, stripe_customer) = env.stripe_call("POST", "/v1/customers");
    assert_eq!(status, 200, "{stripe_customer}");
    let stripe_customer = stripe_customer["id"].as_str().expect("cus_").to_owned();
    let envelope = |kind: &str, detail: Value| {
        json!({
            "version": "0", "id": uuid::Uuid::new_v4().to_string(), "detail-type": kind,
            "source": "platform.customers", "account": "123456789012",
            "time": "2026-03-02T10:21:40Z", "region": "eu-west-1", "resources": [],
            "detail": detail,
        })
    };
    as_function(PLATFORM_CUSTOMER_HOOK, async {
        platform
            .on_event(&envelope(
                "customer.created",
                json!({"customerID": created_id, "name": "Partitions", "tierName": "pro",
                    "tierID": "e1f2a3b4-5633-4b16-bbf0-5ca22ef8ea2e", "ownerUserID": owner,
                    "stripeCustomerID": stripe_customer}),
            ))
            .await
            .expect("created");
        platform
            .on_event(&envelope(
                "customer.updated",
                json!({"customerID": created_id, "name": "Renamed", "tierName": "enterprise",
                    "tierID": "e1f2a3b4-5633-4b16-bbf0-5ca22ef8ea2e"}),
            ))
            .await
            .expect("updated");
    })
    .await;

    // user.deleted: a member, then an owner (the cascade).
    let cleanup = Cleanup::new(store.clone(), Some(base.payments().clone()), Publisher::Log);
    let gone = base.customer_with_stripe(Spec::with_members(1)).await;
    let user_deleted = |user: &str| {
        json!({
            "version": "0", "id": uuid::Uuid::new_v4().to_string(), "detail-type": "user.deleted",
            "source": "platform.users", "account": "123456789012",
            "time": "2026-03-02T10:20:05Z", "region": "eu-west-1", "resources": [],
            "detail": {"userID": user},
        })
    };
    as_function(USER_DELETED_HOOK, async {
        for user in [&gone.members[0], &gone.owner] {
            cleanup
                .on_user_deleted_event(&user_deleted(user))
                .await
                .expect("user.deleted");
        }
    })
    .await;

    // The stream consumer: a stopped cascade finished, the listings' deltas folded.
    let stopped = base.customer_with_stripe(Spec::with_members(1)).await;
    base.begin_deletion(&stopped.id).await;
    let mut records = vec![stream_record(
        "MODIFY",
        json!({"PK": {"S": format!("CUSTOMER#{}", stopped.id)}, "SK": {"S": "CUSTOMER"}}),
        json!({"type": {"S": "customer"}, "id": {"S": stopped.id}, "state": {"S": "deleting"}}),
    )];
    for index in base.store.pending_indexes().await.expect("pending") {
        records.push(stream_record(
            "INSERT",
            json!({"PK": {"S": index}, "SK": {"S": "DELTA"}}),
            json!({"type": {"S": "delta"}}),
        ));
    }
    let stream: aws_lambda_events::dynamodb::Event =
        serde_json::from_value(json!({"Records": records})).expect("stream event");
    as_function(STREAM_CONSUMER, async {
        cleanup
            .clone()
            .with_grace(std::time::Duration::ZERO)
            .on_stream(&stream)
            .await
            .expect("stream batch");
    })
    .await;

    // The reconciliation, repairing a subscription cancelled without a webhook.
    let drifted = base.customer_with_stripe(Spec::default()).await;
    let subs = base
        .payments()
        .subscriptions_of(&drifted.stripe_id)
        .await
        .expect("subscriptions")
        .expect("a Stripe customer");
    let sub_id = subs[0]["id"].as_str().expect("its subscription");
    let (status, body) = env.stripe_call("DELETE", &format!("/v1/subscriptions/{sub_id}"));
    assert_eq!(status, 200, "{body}");
    as_function(RECONCILE, async {
        let report =
            billing::sync::reconcile::Reconciler::new(store.clone(), base.payments().clone())
                .run(true)
                .await
                .expect("reconcile");
        assert!(report.repaired >= 1, "{report:?}");
    })
    .await;

    // The deletion monitor.
    as_function(DELETION_MONITOR, async {
        billing::monitor::report(&store).await.expect("monitor");
    })
    .await;

    // Every recorded access is allowed to the function that made it.
    let template = template();
    let granted: BTreeMap<String, Vec<Permission>> = functions(&template)
        .iter()
        .map(|f| (f.binary.clone(), permissions(f)))
        .collect();
    let accesses = recorder.take();
    let mut seen = BTreeSet::new();
    let mut refused = BTreeSet::new();
    for a in &accesses {
        let allowed = granted
            .get(&a.function)
            .unwrap_or_else(|| panic!("{a:?}: no such function"))
            .iter()
            .any(|p| p.allows(&a.action, &a.resource, &a.pk, a.in_transaction));
        let prefix =
            a.pk.split_inclusive('#')
                .next()
                .unwrap_or_default()
                .to_owned();
        if !allowed {
            refused.insert((
                a.function.clone(),
                a.action.clone(),
                prefix.clone(),
                a.in_transaction,
            ));
        }
        seen.insert(a.function.clone());
    }
    if std::env::var_os("DUMP_PARTITIONS").is_some() {
        let all: BTreeSet<_> = accesses
            .iter()
            .map(|a| {
                (
                    a.function.clone(),
                    a.action.clone(),
                    a.resource.clone(),
                    a.pk.split_inclusive('#')
                        .next()
                        .unwrap_or_default()
                        .to_owned(),
                    a.in_transaction,
                )
            })
            .collect();
        for a in all {
            eprintln!("{a:?}");
        }
    }
    assert!(refused.is_empty(), "denied by template.yaml: {refused:#?}");
    let expected: BTreeSet<String> = Endpoint::ALL
        .iter()
        .map(|e| e.function().to_owned())
        .chain(
            [
                STRIPE_WEBHOOK,
                PLATFORM_CUSTOMER_HOOK,
                USER_DELETED_HOOK,
                STREAM_CONSUMER,
                RECONCILE,
                DELETION_MONITOR,
            ]
            .map(str::to_owned),
        )
        .collect();
    assert_eq!(
        seen, expected,
        "every function that reads the table was exercised"
    );
}
