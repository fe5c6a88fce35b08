//! The scheduled events: the deletion monitor's and the reconciliation's.

use super::*;

/// The event is what a scheduled function's rule delivers: EventBridge's
/// `Scheduled Event` of the template's schedule (`expected` as deployed with
/// the defaults). (The deletion monitor's handler is its own crate's; for it
/// this checks the sample, not the handler.)
pub(super) fn check_schedule_event(
    binary: &str,
    expected: &str,
    name: &str,
    raw: &str,
    event: &Value,
) {
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

pub(super) async fn run_reconcile_event(env: &Env, name: &str, raw: &str, event: &Value) {
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
