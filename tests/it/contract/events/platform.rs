//! The platform's EventBridge events: `user.deleted` (`events/user-deleted.json`)
//! and `customer.created` / `customer.updated` (`events/platform-customer-*.json`),
//! through their locked rules and hooks.

use super::*;

/// Whether `event` matches an EventBridge-style pattern, in the subset the template
/// uses: nested objects, and lists of exact values.
/// As deployed (the sample parameters: the event's source and account), the
/// rule `pattern` matches `event`, and the same event from another account it
/// does not; returns the deployed pattern.
pub(super) fn deployed_rule_takes_only_the_platform(
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

/// The event is what the platform's bus delivers to the template's rule.
pub(super) fn check_user_deleted_event(name: &str, event: &Value) {
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

pub(super) async fn run_user_deleted_event(env: &Env, name: &str, raw: &str, json: &Value) {
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

/// The event is what the platform's bus delivers to the hook's rule: as deployed
/// (the sample parameters), the rule matches it, and neither the same event
/// from another account nor another detail-type.
pub(super) fn check_platform_rule_event(binary: &str, name: &str, event: &Value) {
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

/// The same event with a new id (so not a replay), its detail changed by `edit`.
pub(super) fn another(event: &Value, edit: impl FnOnce(&mut Value)) -> Value {
    let mut other = event.clone();
    other["id"] = json!(uuid::Uuid::new_v4().to_string());
    edit(&mut other["detail"]);
    other
}

pub(super) async fn run_platform_customer_event(
    env: &Env,
    detail_type: &str,
    name: &str,
    event: &Value,
) {
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
