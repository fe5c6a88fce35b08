//! Reconciliation with Stripe (drift found, reported, repaired) and the
//! resumable, idempotent import of `billing-dev import`.
//!
//! localstripe is shared by every test running at once: Stripe holds other
//! tests' customers, which a reconciliation of this test's table must ignore,
//! so assertions are about this test's customers only.

use std::collections::BTreeMap;
use std::path::PathBuf;

use billing::domain::{
    CustomerId, Member, NewCustomer, Role, SubscriptionStatus, TierName, UserId,
};
use billing::store::CustomerChange;
use billing::sync::reconcile::{DriftKind, Reconciler, Report};
use billing_dev::import::{self, ImportReport, Options, ProgressBar, Source};
use billing_tests::Env;
use billing_tests::app::{Spec, TestApp};
use serde_json::json;

use crate::TestFn;

pub fn trials() -> Vec<(&'static str, TestFn)> {
    crate::trials![
        reconcile_reports_exactly_the_drift_and_repairs_it,
        reconcile_finds_a_customer_by_its_stripe_metadata,
        import_ndjson_counts_invalid_lines_and_is_idempotent,
        import_resumes_from_its_checkpoint_and_completes_members,
    ]
}

const TIER_ID: &str = "e1f2a3b4-5633-4b16-bbf0-5ca22ef8ea2e";

fn id(raw: &str) -> CustomerId {
    CustomerId::parse(raw).unwrap()
}

/// The drift kinds per customer of a report.
fn kinds(report: &Report) -> BTreeMap<String, Vec<DriftKind>> {
    report
        .drifts
        .iter()
        .map(|d| (d.customer.to_string(), d.kinds.clone()))
        .collect()
}

/// The listing's total for a query.
async fn total(app: &TestApp, query: &str) -> u64 {
    let reply = app.get(&format!("/customers?limit=100{query}")).await;
    reply.json["items"].as_u64().unwrap()
}

async fn reconcile_reports_exactly_the_drift_and_repairs_it(env: &'static Env) {
    // GIVEN six customers in step with their Stripe customer and subscription
    let app = TestApp::new(env).await;
    let mut seeded = Vec::new();
    for _ in 0..6 {
        seeded.push(app.customer_with_stripe(Spec::with_members(1)).await);
    }
    let reconciler = Reconciler::new(app.store.clone(), env.payments());
    let before = reconciler.run(false).await.unwrap();
    assert_eq!(
        (before.checked, before.drifted),
        (6, 0),
        "{:?}",
        before.drifts
    );
    assert!(before.stripe_customers >= 6);

    // WHEN three drift: a subscription cancelled in Stripe, our tier changed
    // without Stripe, a Stripe customer deleted
    let (cancelled, retiered, gone) = (&seeded[0], &seeded[1], &seeded[2]);
    let record = app
        .store
        .find_customer(&id(&cancelled.id))
        .await
        .unwrap()
        .unwrap();
    let sub = record.stripe_subscription_id.unwrap();
    let (status, body) = env.stripe_call("DELETE", &format!("/v1/subscriptions/{sub}"));
    assert_eq!(status, 200, "{body}");
    let enterprise = (TierName::parse("enterprise").unwrap(), uuid::Uuid::new_v4());
    let changed = app
        .store
        .change_customer(&id(&retiered.id), None, &billing_tests::by_test(), |_| {
            Some(CustomerChange {
                tier: Some(enterprise.clone()),
                ..CustomerChange::default()
            })
        })
        .await
        .unwrap();
    assert_eq!(changed, billing::store::Applied::Changed);
    let (status, body) = env.stripe_call("DELETE", &format!("/v1/customers/{}", gone.stripe_id));
    assert_eq!(status, 200, "{body}");

    // THEN the report names exactly those three, with the right kinds
    let report = reconciler.run(false).await.unwrap();
    assert_eq!((report.checked, report.drifted, report.repaired), (6, 3, 0));
    assert_eq!(
        kinds(&report),
        BTreeMap::from([
            (cancelled.id.clone(), vec![DriftKind::Status]),
            (retiered.id.clone(), vec![DriftKind::Tier]),
            (gone.id.clone(), vec![DriftKind::BillingGone]),
        ])
    );
    let tiered = report
        .drifts
        .iter()
        .find(|d| d.customer.to_string() == retiered.id)
        .unwrap();
    assert_eq!(
        tiered.ours.tier_name.as_ref().unwrap().as_str(),
        "enterprise"
    );
    assert_eq!(tiered.stripe.tier_name.as_ref().unwrap().as_str(), "pro");
    assert_eq!(tiered.stripe.tier_id.unwrap().to_string(), TIER_ID);
    // a report changes nothing
    assert_eq!(total(&app, "&tierName=enterprise").await, 1);

    // WHEN repaired
    let repaired = reconciler.run(true).await.unwrap();
    assert_eq!(
        (repaired.drifted, repaired.repaired, repaired.repair_failed),
        (3, 3, 0)
    );

    // THEN the records are Stripe's, the listings' totals exact, and nothing drifts
    let reply = app.get(&format!("/customer/{}", &cancelled.id)).await;
    assert_eq!(
        reply.json["subscriptionStatus"], "canceled",
        "{}",
        reply.json
    );
    let reply = app.get(&format!("/customer/{}", &retiered.id)).await;
    assert_eq!(reply.json["tierName"], "pro", "{}", reply.json);
    let record = app
        .store
        .find_customer(&id(&retiered.id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.tier_id.to_string(), TIER_ID);
    let record = app
        .store
        .find_customer(&id(&gone.id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.subscription_status, SubscriptionStatus::Canceled);
    assert_eq!(
        (record.stripe_customer_id, record.stripe_subscription_id),
        (None, None)
    );
    assert!(record.billing_gone_at.is_some());
    assert_eq!(total(&app, "").await, 6);
    assert_eq!(total(&app, "&status=canceled").await, 2);
    assert_eq!(total(&app, "&status=active").await, 4);
    assert_eq!(total(&app, "&tierName=pro").await, 6);
    assert_eq!(total(&app, "&tierName=enterprise").await, 0);
    let untouched = &seeded[3];
    let reply = app.get(&format!("/customer/{}", &untouched.id)).await;
    assert_eq!(
        (&reply.json["subscriptionStatus"], &reply.json["tierName"]),
        (&json!("active"), &json!("pro"))
    );
    let after = reconciler.run(false).await.unwrap();
    assert_eq!((after.checked, after.drifted), (6, 0), "{:?}", after.drifts);
}

async fn reconcile_finds_a_customer_by_its_stripe_metadata(env: &'static Env) {
    // GIVEN a customer whose record lost its Stripe ids, while its Stripe
    // customer names it in metadata.customerID
    let app = TestApp::new(env).await;
    let seeded = app.customer_with_stripe(Spec::default()).await;
    let before = app
        .store
        .find_customer(&id(&seeded.id))
        .await
        .unwrap()
        .unwrap();
    app.store
        .change_customer(&id(&seeded.id), None, &billing_tests::by_test(), |_| {
            Some(CustomerChange {
                stripe_customer_id: Some(None),
                stripe_subscription_id: Some(None),
                ..CustomerChange::default()
            })
        })
        .await
        .unwrap();
    // WHEN reconciled with repair THEN the ids are found and restored
    let reconciler = Reconciler::new(app.store.clone(), env.payments());
    let report = reconciler.run(true).await.unwrap();
    assert_eq!(
        kinds(&report),
        BTreeMap::from([(seeded.id.clone(), vec![DriftKind::StripeIds])])
    );
    assert_eq!(report.repaired, 1);
    let after = app
        .store
        .find_customer(&id(&seeded.id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after.stripe_customer_id, before.stripe_customer_id);
    assert_eq!(after.stripe_subscription_id, before.stripe_subscription_id);
    assert_eq!(
        app.store
            .customer_of_stripe(&seeded.stripe_id)
            .await
            .unwrap(),
        Some(id(&seeded.id)),
        "the Stripe lookup follows"
    );
    assert_eq!(reconciler.run(false).await.unwrap().drifted, 0);
}

/// One customer of the import file: an owner and two members.
fn line(customer: &str, users: &[String; 3], seconds: u32) -> String {
    json!({
        "id": customer, "name": format!("Imported {customer}"), "tierName": "pro",
        "tierID": TIER_ID, "subscriptionStatus": "active",
        "createdAt": format!("2026-03-01T10:{:02}:{:02}Z", seconds / 60, seconds % 60),
        "ownerUserID": users[0],
        "members": [
            {"userID": users[0], "role": "owner"},
            {"userID": users[1], "role": "admin"},
            {"userID": users[2], "role": "user"},
        ],
    })
    .to_string()
}

/// An NDJSON file of `n` customers (three members each) with an invalid line
/// at `invalid_at` and a blank line at the end; the customers and their users.
fn ndjson(n: u32, invalid_at: usize) -> (PathBuf, Vec<(String, [String; 3])>) {
    let customers: Vec<(String, [String; 3])> = (0..n)
        .map(|_| {
            let user = || uuid::Uuid::new_v4().to_string();
            (uuid::Uuid::new_v4().to_string(), [user(), user(), user()])
        })
        .collect();
    let mut lines: Vec<String> = customers
        .iter()
        .zip(0..)
        .map(|((c, users), i)| line(c, users, i))
        .collect();
    lines.insert(
        invalid_at,
        json!({"id": uuid::Uuid::new_v4(), "name": "", "tierName": "pro"}).to_string(),
    );
    lines.push(String::new());
    let path = std::env::temp_dir().join(format!("import-{}.ndjson", uuid::Uuid::new_v4()));
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    (path, customers)
}

async fn run_import(
    app: &TestApp,
    path: &std::path::Path,
    checkpoint: &std::path::Path,
) -> ImportReport {
    let options = Options {
        checkpoint: Some(checkpoint.to_path_buf()),
        concurrency: 4,
    };
    import::import(
        &app.store,
        None,
        &Source::Ndjson(path.to_path_buf()),
        &options,
        &ProgressBar::hidden(),
    )
    .await
    .unwrap()
}

async fn import_ndjson_counts_invalid_lines_and_is_idempotent(env: &'static Env) {
    // GIVEN 30 customers with three members each, and one invalid line
    let app = TestApp::new(env).await;
    let (path, customers) = ndjson(30, 10);
    let checkpoint = path.with_extension("checkpoint");

    // WHEN imported
    let report = run_import(&app, &path, &checkpoint).await;

    // THEN every valid customer is there with its members, the invalid line counted
    assert_eq!(
        (
            report.created,
            report.existing,
            report.invalid,
            report.members
        ),
        (30, 0, 1, 90),
        "{:?}",
        report.problems
    );
    assert_eq!(
        report.records, 32,
        "30 customers, the invalid line and the blank one"
    );
    assert_eq!(report.problems.len(), 1);
    assert_eq!(report.problems[0].record, "line 11");
    assert!(!checkpoint.exists(), "the checkpoint is deleted when done");
    assert_eq!(total(&app, "").await, 30);
    let (customer, users) = &customers[17];
    let reply = app
        .get(&format!("/customer/{customer}/members?limit=10"))
        .await;
    let members: Vec<(&str, &str)> = reply.json["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["userID"].as_str().unwrap(), m["role"].as_str().unwrap()))
        .collect();
    assert_eq!(
        members,
        vec![
            (users[0].as_str(), "owner"),
            (users[1].as_str(), "admin"),
            (users[2].as_str(), "user")
        ]
    );

    // WHEN imported again THEN nothing changes
    let again = run_import(&app, &path, &checkpoint).await;
    assert_eq!(
        (again.created, again.existing, again.invalid, again.members),
        (0, 30, 1, 0)
    );
    assert_eq!(total(&app, "").await, 30);
    let reply = app.get(&format!("/customer/{customer}")).await;
    assert_eq!(reply.json["memberCount"], 3);
    std::fs::remove_file(path).unwrap();
}

async fn import_resumes_from_its_checkpoint_and_completes_members(env: &'static Env) {
    // GIVEN an import stopped after 15 lines, the 16th customer created with
    // its owner but not yet its other members
    let app = TestApp::new(env).await;
    let (path, customers) = ndjson(30, 10);
    let checkpoint = path.with_extension("checkpoint");
    let source = format!("ndjson:{}", std::fs::canonicalize(&path).unwrap().display());
    std::fs::write(
        &checkpoint,
        json!({"source": source, "done": 15}).to_string(),
    )
    .unwrap();
    // line 16 (index 15) is customers[14]: the invalid line sits at index 10
    let (half, users) = &customers[14];
    let owner = UserId::parse(&users[0]).unwrap();
    let created_at = billing::domain::now();
    let customer = NewCustomer {
        id: id(half),
        name: "Half imported".into(),
        tier_name: TierName::parse("pro").unwrap(),
        tier_id: uuid::Uuid::parse_str(TIER_ID).unwrap(),
        subscription_status: SubscriptionStatus::Active,
        created_at,
        owner_user_id: owner,
        stripe_customer_id: None,
        stripe_subscription_id: None,
    };
    let member = Member {
        role_id: uuid::Uuid::new_v4(),
        user_id: owner,
        role: Role::Owner,
        joined_at: created_at,
    };
    app.store
        .create_customer_with_owner(&customer, Some(&member), None, &billing_tests::by_test())
        .await
        .unwrap();

    // WHEN resumed
    let report = run_import(&app, &path, &checkpoint).await;

    // THEN it starts after line 15, creates the rest and completes the 16th's members
    assert_eq!(report.resumed_at, 15);
    assert_eq!(
        (
            report.created,
            report.existing,
            report.invalid,
            report.members
        ),
        (15, 1, 0, 47),
        "{:?}",
        report.problems
    );
    assert!(!checkpoint.exists());
    assert_eq!(total(&app, "").await, 16);
    let reply = app.get(&format!("/customer/{half}")).await;
    assert_eq!(reply.json["memberCount"], 3);
    assert!(
        app.store
            .find_customer(&id(&customers[0].0))
            .await
            .unwrap()
            .is_none(),
        "lines before the checkpoint are not read again"
    );
    std::fs::remove_file(path).unwrap();
}
