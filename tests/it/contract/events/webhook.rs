//! Stripe's signed webhook delivery (`events/stripe-webhook.json`).

use super::*;

/// The webhook endpoint over the app's table, with the tests' signing secret.
pub(super) fn webhook_hooks(app: &TestApp) -> Webhooks {
    app.webhooks(WEBHOOK_SECRET)
}

/// `events/stripe-webhook.json`: its path, text and JSON.
pub(super) fn webhook_event_file() -> (PathBuf, String, Value) {
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
pub(super) fn check_webhook_event(name: &str, event: &Value) {
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

pub(super) async fn run_webhook_event(env: &Env, name: &str, raw: &str, event: &Value) {
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
