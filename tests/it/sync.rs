//! Records kept true by events: Stripe's webhooks (signed deliveries, once, in
//! order, between listings with exact counts) and the platform's customer events.

use std::sync::Arc;
use std::time::Duration;

use billing::domain::{CustomerId, NewCustomer, SubscriptionStatus, TierName, UserId};
use billing::sync::platform::{Platform, PlatformError, PlatformOutcome};
use billing::sync::signature::header;
use billing::sync::webhook::{PATH, Webhooks};
use billing_tests::Env;
use billing_tests::app::{Reply, Spec, TestApp};
use futures_util::future::join_all;
use http::{Method, StatusCode};
use secrecy::SecretString;
use serde_json::{Value, json};

use crate::TestFn;
use crate::customers::ids;

pub fn trials() -> Vec<(&'static str, TestFn)> {
    crate::trials![
        a_subscription_cancelled_in_localstripe_reaches_the_listings,
        bad_signatures_are_400_and_change_nothing,
        a_customer_deleted_in_stripe_stays_without_billing,
        concurrent_webhooks_and_deletes_never_drift,
        platform_customer_created_creates_the_customer_with_its_owner,
        platform_events_that_break_a_rule_write_nothing,
        the_event_schema_file_matches_what_the_handler_accepts,
    ]
}

pub(crate) const SECRET: &str = "whsec_sync_test";
pub(crate) const TIER_ID: &str = "7d1c3a52-0e4b-4b8e-9a51-3f1a0c2e4d6b";

pub(crate) fn hooks(app: &TestApp) -> Webhooks {
    app.webhooks(SECRET)
}

pub(crate) fn now() -> i64 {
    billing::domain::now().timestamp()
}

/// Delivers `body` with `signature` (no header when `None`).
pub(crate) async fn deliver(hooks: &Webhooks, body: &[u8], signature: Option<String>) -> Reply {
    let mut builder = http::Request::builder()
        .method(Method::POST)
        .uri(PATH)
        .header("content-type", "application/json");
    if let Some(signature) = signature {
        builder = builder.header("stripe-signature", signature);
    }
    let (parts, ()) = builder.body(()).expect("request").into_parts();
    let req = billing::http::lambda_request(parts, body.to_vec());
    Reply::from(hooks.handle(&req).await)
}

/// Delivers `event` signed as Stripe would, now.
pub(crate) async fn send(hooks: &Webhooks, event: &Value) -> Reply {
    let body = event.to_string();
    let signature = header(&SecretString::from(SECRET), now(), body.as_bytes());
    deliver(hooks, body.as_bytes(), Some(signature)).await
}

/// A subscription event as Stripe sends it.
pub(crate) fn sub_event(
    kind: &str,
    created: i64,
    customer: &str,
    sub: &str,
    status: &str,
    tier: Option<&str>,
) -> Value {
    let metadata = match tier {
        Some(t) => json!({"tierName": t, "tierID": TIER_ID}),
        None => json!({}),
    };
    json!({
        "id": format!("evt_{}", uuid::Uuid::new_v4().simple()),
        "object": "event", "type": kind, "created": created,
        "data": {"object": {
            "id": sub, "object": "subscription", "customer": customer, "status": status,
            "items": {"object": "list", "data": [{"id": "si_1", "price": {"id": "price_1", "metadata": metadata}}]}
        }}
    })
}

/// A customer stored directly with Stripe ids `cus_<n>`/`sub_<n>` (unique per call).
async fn stored(app: &TestApp, tier: &str, status: &str) -> (CustomerId, String, String) {
    let id = CustomerId::random();
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let (cus, sub) = (format!("cus_{tag}"), format!("sub_{tag}"));
    let customer = NewCustomer {
        id,
        name: format!("Customer {id}"),
        tier_name: TierName::parse(tier).expect("tier"),
        tier_id: uuid::Uuid::new_v4(),
        subscription_status: SubscriptionStatus::parse(status).expect("status"),
        created_at: billing::domain::now(),
        owner_user_id: UserId::random(),
        stripe_customer_id: Some(cus.clone()),
        stripe_subscription_id: Some(sub.clone()),
    };
    app.store
        .create_customer(&customer, &billing_tests::by_test())
        .await
        .expect("create");
    (id, cus, sub)
}

/// A listing's `items` and every id on its pages (page size 100).
pub(crate) async fn listing(app: &TestApp, query: &str) -> (u64, Vec<String>) {
    let mut all = Vec::new();
    let mut page = 1;
    loop {
        let reply = app
            .get(&format!("/customers?{query}&page={page}&limit=100"))
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{query}: {:?}", reply.json);
        let got = ids(&reply.json);
        let items = reply.json["items"].as_u64().expect("items");
        all.extend(got.iter().cloned());
        if got.len() < 100 {
            return (items, all);
        }
        page += 1;
    }
}

pub(crate) async fn status_of(app: &TestApp, id: &CustomerId) -> Value {
    app.get(&format!("/customer/{id}")).await.json["subscriptionStatus"].clone()
}

async fn a_subscription_cancelled_in_localstripe_reaches_the_listings(env: &'static Env) {
    // GIVEN a customer with a live subscription in localstripe, and localstripe
    // posting its events to a webhook endpoint on loopback
    let app = TestApp::new(env).await;
    let seeded = app.customer_with_stripe(Spec::default()).await;
    let id = CustomerId::parse(&seeded.id).unwrap();
    let sub = app
        .store
        .find_customer(&id)
        .await
        .unwrap()
        .unwrap()
        .stripe_subscription_id
        .unwrap();
    let receiver = Receiver::start(hooks(&app)).await;
    let hook_id = format!("sync-{}", uuid::Uuid::new_v4().simple());
    register_webhook(
        env,
        &hook_id,
        &receiver.url,
        &["customer.subscription.deleted"],
    );
    let (active_before, _) = listing(&app, "status=active").await;
    let (canceled_before, _) = listing(&app, "status=canceled").await;
    assert_eq!((active_before, canceled_before), (1, 0));

    // WHEN the subscription is cancelled in localstripe
    let (status, body) = env.stripe_call("DELETE", &format!("/v1/subscriptions/{sub}"));
    assert_eq!(status, 200, "{body}");

    // THEN the signed event arrives and the customer moves listings, by exactly one
    let mut waited = 0;
    while status_of(&app, &id).await != "canceled" && waited < 150 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        waited += 1;
    }
    register_webhook(env, &hook_id, &receiver.url, &[]);
    assert_eq!(status_of(&app, &id).await, "canceled");
    let (active, active_ids) = listing(&app, "status=active").await;
    let (canceled, canceled_ids) = listing(&app, "status=canceled").await;
    assert_eq!((active, canceled), (0, 1));
    assert!(active_ids.is_empty());
    assert_eq!(canceled_ids, vec![seeded.id.clone()]);
    assert!(receiver.outcomes().contains(&"applied".to_owned()));
    receiver.stop();
}

async fn bad_signatures_are_400_and_change_nothing(env: &'static Env) {
    // GIVEN an active customer and an event cancelling it
    let app = TestApp::new(env).await;
    let hooks = hooks(&app);
    let (id, cus, sub) = stored(&app, "pro", "active").await;
    let event = sub_event(
        "customer.subscription.updated",
        now(),
        &cus,
        &sub,
        "canceled",
        None,
    );
    let body = event.to_string();
    let good = header(&SecretString::from(SECRET), now(), body.as_bytes());
    let tampered = body.replace("canceled", "past_due");
    let cases = [
        (tampered.clone(), Some(good.clone()), "invalid_signature"),
        (
            body.clone(),
            Some(header(
                &SecretString::from("whsec_other"),
                now(),
                body.as_bytes(),
            )),
            "invalid_signature",
        ),
        (
            body.clone(),
            Some(header(
                &SecretString::from(SECRET),
                now() - 3600,
                body.as_bytes(),
            )),
            "signature_expired",
        ),
        (body.clone(), None, "missing_signature"),
        (body.clone(), Some("t=abc".to_owned()), "invalid_signature"),
    ];
    for (body, signature, code) in cases {
        // WHEN it is delivered with a bad signature
        let reply = deliver(&hooks, body.as_bytes(), signature).await;
        // THEN 400 in the error convention, nothing changed
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{code}");
        assert_eq!(reply.error_code(), code);
        assert_eq!(status_of(&app, &id).await, "active");
    }
    // A signed body that is not an event is 400 too.
    let junk = b"{\"hello\":1}";
    let signature = header(&SecretString::from(SECRET), now(), junk);
    let reply = deliver(&hooks, junk, Some(signature)).await;
    assert_eq!(reply.error_code(), "invalid_event");
    assert_eq!(listing(&app, "status=active").await.0, 1);
    // AND the genuine delivery applies
    let reply = deliver(&hooks, body.as_bytes(), Some(good)).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json["outcome"], "applied");
    assert_eq!(status_of(&app, &id).await, "canceled");
}

async fn a_customer_deleted_in_stripe_stays_without_billing(env: &'static Env) {
    let app = TestApp::new(env).await;
    let hooks = hooks(&app);
    let (id, cus, _) = stored(&app, "pro", "active").await;
    // WHEN someone deletes the Stripe customer in the dashboard
    let event = json!({"id": "evt_del", "type": "customer.deleted", "created": now(),
        "data": {"object": {"id": cus, "object": "customer", "deleted": true}}});
    assert_eq!(send(&hooks, &event).await.json["outcome"], "applied");
    // THEN our customer stays, canceled, without Stripe ids, its billing marked gone
    let record = app
        .store
        .find_customer(&id)
        .await
        .unwrap()
        .expect("still there");
    assert_eq!(record.subscription_status, SubscriptionStatus::Canceled);
    assert_eq!(
        (record.stripe_customer_id, record.stripe_subscription_id),
        (None, None)
    );
    assert!(record.billing_gone_at.is_some());
    assert_eq!(
        app.get(&format!("/customer/{id}")).await.status,
        StatusCode::OK
    );
    assert_eq!(listing(&app, "status=canceled").await.0, 1);
    // AND later events about that Stripe customer find nobody
    let late = sub_event(
        "customer.subscription.updated",
        now() + 5,
        &cus,
        "sub_y",
        "active",
        None,
    );
    assert_eq!(
        send(&hooks, &late).await.json["outcome"],
        "unknown_customer"
    );
}

async fn concurrent_webhooks_and_deletes_never_drift(env: &'static Env) {
    // GIVEN 20 active customers
    let app = Arc::new(TestApp::new(env).await);
    let hooks = Arc::new(hooks(&app));
    let mut made = Vec::new();
    for i in 0..20 {
        made.push(stored(&app, if i % 2 == 0 { "pro" } else { "basic" }, "active").await);
    }
    // WHEN each gets a webhook (status and tier change) while 7 are deleted
    let statuses = ["past_due", "canceled", "unpaid", "trialing"];
    let t = now();
    let deliveries = made.iter().enumerate().map(|(i, (_, cus, sub))| {
        let (hooks, cus, sub) = (hooks.clone(), cus.clone(), sub.clone());
        let tier = (i % 3 == 0).then_some("enterprise");
        let event = sub_event(
            "customer.subscription.updated",
            t,
            &cus,
            &sub,
            statuses[i % 4],
            tier,
        );
        tokio::spawn(async move { send(&hooks, &event).await })
    });
    let deletes = made.iter().take(7).map(|(id, _, _)| {
        let (app, id) = (app.clone(), *id);
        // A client retries a 503 (the cascade out of its budget under the race's
        // contention), as `Retry-After` says.
        tokio::spawn(async move {
            let path = format!("/customer/{id}");
            let mut reply = app.admin(Method::DELETE, &path, None).await;
            let mut retried = false;
            for _ in 0..5 {
                if reply.status != StatusCode::SERVICE_UNAVAILABLE {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
                reply = app.admin(Method::DELETE, &path, None).await;
                retried = true;
            }
            (reply, retried)
        })
    });
    let (delivered, deleted) = tokio::join!(join_all(deliveries), join_all(deletes));
    for reply in delivered {
        let reply = reply.expect("delivery");
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.json);
    }
    for reply in deleted {
        let (reply, retried) = reply.expect("delete");
        // A 503 can come after the deletion committed (its answer outran the
        // deadline): the retry then finds nothing, a 404. Gone either way (below).
        let done = reply.status == StatusCode::NO_CONTENT
            || (retried && reply.status == StatusCode::NOT_FOUND);
        assert!(done, "{} {:?}", reply.status, reply.json);
    }
    // THEN no deleted customer came back, and every listing's items is its count
    for (id, _, _) in made.iter().take(7) {
        assert!(
            app.store.find_customer(id).await.unwrap().is_none(),
            "{id} resurrected"
        );
    }
    let mut survivors = Vec::new();
    for (id, _, _) in made.iter().skip(7) {
        survivors.push(app.store.get_customer(id).await.expect("survivor"));
    }
    let (all, on_pages) = listing(&app, "").await;
    assert_eq!((all, on_pages.len()), (13, 13));
    for status in SubscriptionStatus::ALL {
        for tier in ["pro", "basic", "enterprise"] {
            let want = survivors
                .iter()
                .filter(|c| c.subscription_status == status && c.tier_name.as_str() == tier)
                .count() as u64;
            let query = format!("tierName={tier}&status={}", status.as_str());
            let (items, on_pages) = listing(&app, &query).await;
            assert_eq!((items, on_pages.len() as u64), (want, want), "{query}");
        }
        let want = survivors
            .iter()
            .filter(|c| c.subscription_status == status)
            .count() as u64;
        assert_eq!(
            listing(&app, &format!("status={}", status.as_str()))
                .await
                .0,
            want
        );
    }
}

pub(crate) fn platform_event(kind: &str, id: &str, detail: Value) -> Value {
    json!({"version": "0", "id": id, "detail-type": kind, "source": "platform",
        "account": "123456789012", "time": "2026-11-30T10:00:00Z", "region": "us-east-1",
        "resources": [], "detail": detail})
}

async fn platform_customer_created_creates_the_customer_with_its_owner(env: &'static Env) {
    let app = TestApp::new(env).await;
    let platform = Platform::new(app.store.clone());
    let (id, owner) = (CustomerId::random(), UserId::random());
    let event = platform_event(
        "customer.created",
        "e-1",
        json!({
            "customerID": id, "name": "Initech", "tierName": "pro", "tierID": TIER_ID,
            "ownerUserID": owner, "subscriptionStatus": "trialing"
        }),
    );
    // WHEN the platform announces a new customer
    assert_eq!(
        platform.on_event(&event).await.unwrap(),
        PlatformOutcome::Created
    );
    // THEN it exists with its owner as its one member
    let customer = app.get(&format!("/customer/{id}")).await.json;
    assert_eq!(
        (customer["name"].clone(), customer["memberCount"].clone()),
        (json!("Initech"), json!(1))
    );
    let members = app.get(&format!("/customer/{id}/members")).await.json;
    assert_eq!(members["members"][0]["userID"], owner.to_string());
    assert_eq!(members["members"][0]["role"], "owner");
    assert_eq!(
        app.store.membership_of(&owner).await.unwrap().unwrap().0,
        id
    );
    // AND a replay (same event, or the same customer again) changes nothing
    assert_eq!(
        platform.on_event(&event).await.unwrap(),
        PlatformOutcome::Unchanged
    );
    let again = platform_event("customer.created", "e-2", event["detail"].clone());
    assert_eq!(
        platform.on_event(&again).await.unwrap(),
        PlatformOutcome::Unchanged
    );
    assert_eq!(listing(&app, "").await.0, 1);
    // AND customer.updated renames it and moves its tier
    let update = platform_event(
        "customer.updated",
        "e-3",
        json!({
            "customerID": id, "name": "Initech Global", "tierName": "enterprise", "tierID": TIER_ID
        }),
    );
    assert_eq!(
        platform.on_event(&update).await.unwrap(),
        PlatformOutcome::Updated
    );
    assert_eq!(listing(&app, "tierName=pro").await.0, 0);
    let (items, on_page) = listing(&app, "tierName=enterprise").await;
    assert_eq!((items, on_page), (1, vec![id.to_string()]));
    assert_eq!(
        app.get(&format!("/customer/{id}")).await.json["name"],
        "Initech Global"
    );
}

async fn platform_events_that_break_a_rule_write_nothing(env: &'static Env) {
    // GIVEN a user who owns a customer already
    let app = TestApp::new(env).await;
    let platform = Platform::new(app.store.clone());
    let seeded = app.customer(Spec::default()).await;
    let before = item_count(&app).await;
    let detail = |owner: &str| {
        json!({
            "customerID": CustomerId::random(), "name": "Hooli", "tierName": "pro",
            "tierID": TIER_ID, "ownerUserID": owner
        })
    };
    let cases = [
        platform_event("customer.created", "r-1", detail(&seeded.owner)),
        platform_event("customer.created", "r-2", json!({"customerID": "nope"})),
        platform_event("customer.created", "r-3", json!({"name": "x"})),
        platform_event(
            "customer.updated",
            "r-4",
            json!({"customerID": CustomerId::random(), "name": "Ghost"}),
        ),
        platform_event(
            "customer.updated",
            "r-5",
            json!({"customerID": seeded.id, "tierName": "pro"}),
        ),
        platform_event("customer.renamed", "r-6", json!({})),
        json!({"not": "an event"}),
    ];
    for event in cases {
        // WHEN an event breaks a rule
        let outcome = platform.on_event(&event).await;
        // THEN it is rejected with a reason, and nothing is written
        match outcome {
            Err(PlatformError::Rejected(reason)) => assert!(!reason.is_empty()),
            other => panic!("{event}: {other:?}"),
        }
    }
    assert_eq!(item_count(&app).await, before);
    assert_eq!(
        app.store
            .membership_of(&UserId::parse(&seeded.owner).unwrap())
            .await
            .unwrap()
            .unwrap()
            .0
            .to_string(),
        seeded.id
    );
}

/// Every item in the test's table.
pub(crate) async fn item_count(app: &TestApp) -> i32 {
    let out = app
        .store
        .client()
        .scan()
        .table_name(app.store.table_name())
        .select(aws_sdk_dynamodb::types::Select::Count)
        .send()
        .await
        .expect("scan");
    out.count
}

/// Points localstripe's webhook `id` at `url` for `events` (none: off).
fn register_webhook(env: &Env, id: &str, url: &str, events: &[&str]) {
    env.register_stripe_webhook(id, url, SECRET, events);
}

/// An HTTP server on loopback that hands every request to the webhook handler
/// and keeps the outcomes; stopped by the test that started it.
struct Receiver {
    url: String,
    outcomes: Arc<std::sync::Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    async fn start(hooks: Webhooks) -> Self {
        let outcomes = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (hooks, seen) = (Arc::new(hooks), outcomes.clone());
        let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
            let (hooks, seen) = (hooks.clone(), seen.clone());
            async move {
                let (parts, body) = req.into_parts();
                let bytes = axum::body::to_bytes(body, 1 << 20)
                    .await
                    .unwrap_or_default();
                let reply = Reply::from(
                    hooks
                        .handle(&billing::http::lambda_request(parts, bytes.to_vec()))
                        .await,
                );
                if let Some(o) = reply.json["outcome"].as_str() {
                    seen.lock().unwrap().push(o.to_owned());
                }
                axum::http::StatusCode::from_u16(reply.status.as_u16()).unwrap_or_default()
            }
        });
        let (base, task) = billing_tests::net::serve(app).await;
        Self {
            url: format!("{base}{PATH}"),
            outcomes,
            task,
        }
    }

    fn outcomes(&self) -> Vec<String> {
        self.outcomes.lock().unwrap().clone()
    }

    fn stop(self) {
        self.task.abort();
    }
}

async fn the_event_schema_file_matches_what_the_handler_accepts(env: &'static Env) {
    // GIVEN the JSON Schema of the platform's customer events
    let path = billing_tests::servers::repo_root().join("schemas/platform-customer-events.json");
    let schema: Value =
        serde_json::from_slice(&std::fs::read(&path).expect("schema file")).expect("JSON");
    let app = TestApp::new(env).await;
    let platform = Platform::new(app.store.clone());
    let owner = UserId::random();
    let full = |kind: &str, id: CustomerId| match kind {
        "customer.created" => json!({
            "customerID": id, "name": "Umbrella", "tierName": "pro", "tierID": TIER_ID,
            "ownerUserID": UserId::random(), "subscriptionStatus": "active",
            "createdAt": "2026-11-30T10:00:00Z",
            "stripeCustomerID": format!("cus_{}", uuid::Uuid::new_v4().simple()),
            "stripeSubscriptionID": "sub_1", "version": 1
        }),
        _ => {
            json!({"customerID": id, "name": "Umbrella 2", "tierName": "basic", "tierID": TIER_ID, "version": 2})
        }
    };
    let base = CustomerId::random();
    let created = json!({"customerID": base, "name": "Base", "tierName": "pro", "tierID": TIER_ID, "ownerUserID": owner});
    platform
        .on_event(&platform_event("customer.created", "s-0", created))
        .await
        .expect("base");
    for kind in ["customer.created", "customer.updated"] {
        let def = &schema["$defs"][kind];
        let props: Vec<&String> = def["properties"]
            .as_object()
            .expect("properties")
            .keys()
            .collect();
        let required: Vec<&str> = def["required"]
            .as_array()
            .expect("required")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        let id = |n: usize| {
            if kind == "customer.created" {
                CustomerId::random()
            } else {
                let _ = n;
                base
            }
        };
        // THEN a detail with every property is accepted, and the properties are the struct's
        let detail = full(kind, id(0));
        let mut keys: Vec<&String> = detail.as_object().unwrap().keys().collect();
        keys.sort();
        let mut want = props.clone();
        want.sort();
        assert_eq!(keys, want, "{kind}: schema properties");
        let ev = platform_event(kind, &format!("s-{kind}-all"), detail.clone());
        assert!(
            platform.on_event(&ev).await.is_ok(),
            "{kind}: every property"
        );
        // AND without an optional property it is accepted, without a required one refused
        for (n, prop) in props.iter().enumerate() {
            let mut detail = full(kind, id(n + 1));
            detail.as_object_mut().unwrap().remove(prop.as_str());
            let ev = platform_event(kind, &format!("s-{kind}-{prop}"), detail);
            let outcome = platform.on_event(&ev).await;
            let needed_by_another = def["dependentRequired"].as_object().is_some_and(|deps| {
                deps.values()
                    .any(|d| d.as_array().is_some_and(|d| d.contains(&json!(prop))))
            });
            let is_required = required.contains(&prop.as_str()) || needed_by_another;
            assert_eq!(
                outcome.is_err(),
                is_required,
                "{kind} without {prop}: {outcome:?}"
            );
        }
        // AND an unknown property is refused (additionalProperties: false)
        assert_eq!(def["additionalProperties"], false);
        let mut detail = full(kind, id(99));
        detail["extra"] = json!(1);
        let ev = platform_event(kind, &format!("s-{kind}-extra"), detail);
        assert!(
            platform.on_event(&ev).await.is_err(),
            "{kind}: extra property"
        );
    }
}
