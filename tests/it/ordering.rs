//! Billing that stays true in whatever order Stripe speaks: events delivered
//! reversed, in one second, twice, before the customer exists, with ids that
//! are not Stripe's, from a connected account or the other mode. Against
//! localstripe: after every delivery the record is what Stripe holds now.

use billing::domain::{CustomerId, NewCustomer, SubscriptionStatus, TierName, UserId};
use billing::sync::platform::{Platform, PlatformError};
use billing::sync::stripe_events::{self, Subscription};
use billing::sync::webhook::Webhooks;
use billing_tests::Env;
use billing_tests::app::{TestApp, committed_transactions};
use futures_util::future::join_all;
use http::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::TestFn;
use crate::sync::{hooks, listing, now, platform_event, send, sub_event};

pub fn trials() -> Vec<(&'static str, TestFn)> {
    crate::trials![
        same_second_events_delivered_reversed_end_as_stripe_says,
        a_plan_change_in_one_second_keeps_the_customer_paying_in_both_orders,
        stripe_speaking_before_the_platform_is_delivered_again,
        events_naming_ids_outside_stripes_alphabet_write_nothing,
        connect_and_other_mode_events_are_refused,
        random_delivery_orders_end_equal_to_stripe,
        each_webhook_is_one_transaction_of_known_size,
    ]
}

/// One request to localstripe with the test key and a form body.
fn stripe_form(env: &Env, method: &str, path: &str, form: &str) -> (u16, Value) {
    billing_tests::net::request(
        &env.stripe_url,
        method,
        path,
        &[
            ("Authorization", "Bearer sk_test_local"),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        Some(form),
    )
}

/// A tier's name and id, its Stripe plan created (through a throwaway Stripe
/// customer): `(tier, tier id, plan id)`.
async fn plan(app: &TestApp, tier: &str) -> (TierName, Uuid, String) {
    let name = TierName::parse(tier).expect("tier");
    let tier_id = Uuid::new_v4();
    app.payments()
        .create_customer(&CustomerId::random(), "plan maker", &name, tier_id, true)
        .await
        .expect("plan");
    let plan = format!("tier-{tier}-{}", tier_id.simple());
    (name, tier_id, plan)
}

/// A customer of ours billed in localstripe on `tier`: its Stripe customer
/// (tagged with its id) with an active subscription; our record says
/// `recorded`, with the Stripe ids unless `linked` is false.
async fn billed(
    app: &TestApp,
    tier: &str,
    recorded: &str,
    linked: bool,
) -> (CustomerId, String, String) {
    let id = CustomerId::random();
    let name = TierName::parse(tier).expect("tier");
    let tier_id = Uuid::new_v4();
    let created = app
        .payments()
        .create_customer(&id, &format!("Customer {id}"), &name, tier_id, true)
        .await
        .expect("stripe customer");
    let sub = created.subscription.expect("subscription");
    let customer = NewCustomer {
        id,
        name: format!("Customer {id}"),
        tier_name: name,
        tier_id,
        subscription_status: SubscriptionStatus::parse(recorded).expect("status"),
        created_at: billing::domain::now(),
        owner_user_id: UserId::random(),
        stripe_customer_id: linked.then(|| created.customer.clone()),
        stripe_subscription_id: linked.then(|| sub.clone()),
    };
    app.store
        .create_customer(&customer, &billing_tests::by_test())
        .await
        .expect("create");
    (id, created.customer, sub)
}

/// A new subscription of `cus` on `plan`, in localstripe.
fn subscribe(env: &Env, cus: &str, plan: &str) -> String {
    let (status, body) = stripe_form(
        env,
        "POST",
        "/v1/subscriptions",
        &format!("customer={cus}&items[0][plan]={plan}"),
    );
    assert_eq!(status, 200, "{body}");
    body["id"].as_str().expect("id").to_owned()
}

/// Cancels a subscription in localstripe.
fn cancel(env: &Env, sub: &str) {
    let (status, body) = env.stripe_call("DELETE", &format!("/v1/subscriptions/{sub}"));
    assert_eq!(status, 200, "{body}");
}

/// Stripe's current subscription of `cus`, read now from localstripe.
fn stripe_now(env: &Env, cus: &str) -> Option<Subscription> {
    let (status, body) = env.stripe_call(
        "GET",
        &format!("/v1/subscriptions?customer={cus}&status=all&limit=100"),
    );
    assert_eq!(status, 200, "{body}");
    stripe_events::current(body["data"].as_array().cloned().unwrap_or_default())
}

/// Asserts that our record of `id` is what Stripe holds now for `cus`.
async fn assert_as_stripe_says(app: &TestApp, env: &Env, id: &CustomerId, cus: &str) {
    let truth = stripe_now(env, cus).expect("a subscription");
    let record = app
        .store
        .find_customer(id)
        .await
        .expect("read")
        .expect("customer");
    let (tier, tier_id) = truth.tier.clone().expect("the plan names a tier");
    assert_eq!(
        (
            record.subscription_status,
            record.tier_name.as_str(),
            record.tier_id,
            record.stripe_customer_id.as_deref(),
            record.stripe_subscription_id.as_deref(),
        ),
        (
            truth.status,
            tier.as_str(),
            tier_id,
            Some(cus),
            Some(truth.id.as_str())
        ),
        "customer {id}"
    );
}

async fn same_second_events_delivered_reversed_end_as_stripe_says(env: &'static Env) {
    // GIVEN a billed customer whose subscription Stripe canceled, and the two
    // events of that one second: `active` then `canceled`
    let app = TestApp::new(env).await;
    let hooks = hooks(&app);
    let (id, cus, sub) = billed(&app, "pro", "active", true).await;
    cancel(env, &sub);
    let t = now();
    let active = sub_event(
        "customer.subscription.updated",
        t,
        &cus,
        &sub,
        "active",
        None,
    );
    let canceled = sub_event(
        "customer.subscription.updated",
        t,
        &cus,
        &sub,
        "canceled",
        None,
    );
    // WHEN they arrive reversed
    assert_eq!(send(&hooks, &canceled).await.json["outcome"], "applied");
    assert_eq!(send(&hooks, &active).await.json["outcome"], "unchanged");
    // AND one is delivered again
    assert_eq!(send(&hooks, &canceled).await.json["outcome"], "duplicate");
    // THEN the customer is canceled, as Stripe says now, and listed so
    assert_as_stripe_says(&app, env, &id, &cus).await;
    assert_eq!(listing(&app, "status=canceled").await.0, 1);
    assert_eq!(listing(&app, "status=active").await.0, 0);
}

async fn a_plan_change_in_one_second_keeps_the_customer_paying_in_both_orders(env: &'static Env) {
    let app = TestApp::new(env).await;
    let hooks = hooks(&app);
    let (_, _, enterprise) = plan(&app, "enterprise").await;
    for reversed in [false, true] {
        // GIVEN a pro customer moved to enterprise by cancel + create in one second
        let (id, cus, old) = billed(&app, "pro", "active", true).await;
        let new = subscribe(env, &cus, &enterprise);
        cancel(env, &old);
        let t = now();
        let mut events = vec![
            sub_event(
                "customer.subscription.deleted",
                t,
                &cus,
                &old,
                "canceled",
                None,
            ),
            sub_event(
                "customer.subscription.created",
                t,
                &cus,
                &new,
                "active",
                Some("enterprise"),
            ),
        ];
        if reversed {
            events.reverse();
        }
        // WHEN both are delivered, in this order
        for event in &events {
            assert_eq!(send(&hooks, event).await.status, StatusCode::OK);
        }
        // THEN it pays on the new subscription, enterprise, as Stripe says
        assert_as_stripe_says(&app, env, &id, &cus).await;
        let record = app.store.find_customer(&id).await.unwrap().unwrap();
        assert_eq!(
            (
                record.subscription_status.as_str(),
                record.stripe_subscription_id
            ),
            ("active", Some(new)),
            "reversed: {reversed}"
        );
    }
    // AND both moved between the tier listings, counted exactly
    assert_eq!(listing(&app, "tierName=pro").await.0, 0);
    assert_eq!(
        listing(&app, "tierName=enterprise&status=active").await.0,
        2
    );
}

async fn stripe_speaking_before_the_platform_is_delivered_again(env: &'static Env) {
    // GIVEN a Stripe customer tagged with a customer of ours not created yet
    let app = TestApp::new(env).await;
    let hooks = hooks(&app);
    let id = CustomerId::random();
    let tier = TierName::parse("pro").unwrap();
    let created = app
        .payments()
        .create_customer(&id, "Late Corp", &tier, Uuid::new_v4(), true)
        .await
        .expect("stripe customer");
    let (cus, sub) = (
        created.customer,
        created.subscription.expect("subscription"),
    );
    let mut event = sub_event(
        "customer.subscription.created",
        now(),
        &cus,
        &sub,
        "active",
        None,
    );
    event["data"]["object"]["metadata"] = json!({"customerID": id.to_string()});
    // WHEN its event arrives: 409, so that Stripe delivers it again; nothing kept
    let reply = send(&hooks, &event).await;
    assert_eq!(reply.status, StatusCode::CONFLICT, "{:?}", reply.json);
    assert_eq!(reply.json["error"]["code"], "customer_not_yet_created");
    assert_eq!(app.store.customer_of_stripe(&cus).await.unwrap(), None);
    assert_eq!(app.store.find_customer(&id).await.unwrap(), None);
    // AND WHEN the platform creates the customer with its Stripe customer
    // (naming a status Stripe does not hold)
    let platform = Platform::with_stripe(app.store.clone(), app.payments().clone());
    let detail = |id: &CustomerId, cus: &str| {
        json!({"customerID": id.to_string(), "name": "Late Corp", "tierName": "basic",
            "tierID": Uuid::new_v4().to_string(), "ownerUserID": UserId::random().to_string(),
            "subscriptionStatus": "incomplete", "stripeCustomerID": cus})
    };
    let created = platform_event(
        "customer.created",
        &Uuid::new_v4().to_string(),
        detail(&id, &cus),
    );
    platform.on_event(&created).await.expect("created");
    // THEN it starts with Stripe's billing, and Stripe's redelivery changes nothing
    assert_as_stripe_says(&app, env, &id, &cus).await;
    assert_eq!(send(&hooks, &event).await.json["outcome"], "unchanged");
    // AND a customer created naming a Stripe customer Stripe does not know is
    // refused, nothing written
    let other = CustomerId::random();
    let unknown = platform_event(
        "customer.created",
        &Uuid::new_v4().to_string(),
        detail(&other, "cus_NoSuchCustomer1"),
    );
    assert!(matches!(
        platform.on_event(&unknown).await,
        Err(PlatformError::Rejected(_))
    ));
    assert_eq!(app.store.find_customer(&other).await.unwrap(), None);
    // THEN the customer is linked and billed as Stripe says
    assert_as_stripe_says(&app, env, &id, &cus).await;
}

async fn events_naming_ids_outside_stripes_alphabet_write_nothing(env: &'static Env) {
    let app = TestApp::new(env).await;
    let hooks = hooks(&app);
    let (id, cus, sub) = billed(&app, "pro", "incomplete", false).await;
    let before = app.store.find_customer(&id).await.unwrap();
    for (customer, subscription, code) in [
        (
            "cus_abc/../../v1/customers",
            sub.as_str(),
            "invalid_stripe_customer_id",
        ),
        (
            cus.as_str(),
            "sub_1?expand=x",
            "invalid_stripe_subscription_id",
        ),
        ("cus_a b", sub.as_str(), "invalid_stripe_customer_id"),
    ] {
        let mut event = sub_event(
            "customer.subscription.updated",
            now(),
            customer,
            subscription,
            "active",
            None,
        );
        event["data"]["object"]["metadata"] = json!({"customerID": id.to_string()});
        let reply = send(&hooks, &event).await;
        assert_eq!(
            (reply.status, reply.json["error"]["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some(code)),
            "{customer} {subscription}"
        );
    }
    assert_eq!(app.store.find_customer(&id).await.unwrap(), before);
    assert_eq!(app.store.customer_of_stripe(&cus).await.unwrap(), None);
}

async fn connect_and_other_mode_events_are_refused(env: &'static Env) {
    let app = TestApp::new(env).await;
    let hooks = hooks(&app);
    let (id, cus, sub) = billed(&app, "pro", "incomplete", true).await;
    let before = app.store.find_customer(&id).await.unwrap();
    // GIVEN events about a billed customer: one for a connected account, one
    // in live mode (the configured key is a test key)
    let activated = || {
        sub_event(
            "customer.subscription.updated",
            now(),
            &cus,
            &sub,
            "active",
            None,
        )
    };
    let mut connect = activated();
    connect["account"] = json!("acct_1Connected");
    let mut live = activated();
    live["livemode"] = json!(true);
    // THEN each is acknowledged, counted by its outcome, and changes nothing
    let capture = billing::telemetry::metrics::Capture::new();
    for (event, outcome) in [(&connect, "connect_account"), (&live, "livemode_mismatch")] {
        let reply = capture.scope(send(&hooks, event)).await;
        assert_eq!(
            (reply.status, reply.json["outcome"].as_str()),
            (StatusCode::OK, Some(outcome))
        );
    }
    let counted: Vec<Value> = capture
        .documents()
        .into_iter()
        .filter(|d| d.get("SyncEvents").is_some())
        .map(|d| d["Outcome"].clone())
        .collect();
    assert_eq!(
        counted,
        [json!("connect_account"), json!("livemode_mismatch")]
    );
    assert_eq!(app.store.find_customer(&id).await.unwrap(), before);
    // AND the same event in test mode from the platform's own account applies
    let mut ours = live.clone();
    ours["livemode"] = json!(false);
    ours["id"] = json!(format!("evt_{}", Uuid::new_v4().simple()));
    assert_eq!(send(&hooks, &ours).await.json["outcome"], "applied");
    assert_as_stripe_says(&app, env, &id, &cus).await;
}

/// A small deterministic generator (xorshift), so that a failure replays.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

const STATUSES: [&str; 4] = ["active", "past_due", "canceled", "trialing"];

async fn random_delivery_orders_end_equal_to_stripe(env: &'static Env) {
    let app = TestApp::new(env).await;
    let hooks: Webhooks = hooks(&app);
    let (_, _, enterprise) = plan(&app, "enterprise").await;
    let (_, _, basic) = plan(&app, "basic").await;
    let plans = [enterprise, basic];
    let seed = std::env::var("ORDERING_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_2026u64);
    let mut rng = Rng(seed);
    for round in 0..6 {
        // GIVEN a random subscription history in Stripe: plan changes (cancel +
        // create), new subscriptions beside the old, cancellations; each step's
        // event with a snapshot of random status, all in one or two seconds
        let (id, cus, first) = billed(&app, "pro", "incomplete", rng.below(2) == 0).await;
        let mut subs = vec![first.clone()];
        let t = now();
        let mut events = vec![sub_event(
            "customer.subscription.created",
            t,
            &cus,
            &first,
            "active",
            None,
        )];
        for _ in 0..1 + rng.below(4) {
            let created = t + rng.below(2) as i64;
            match rng.below(3) {
                0 => {
                    let sub = subs[rng.below(subs.len())].clone();
                    cancel(env, &sub);
                    events.push(sub_event(
                        "customer.subscription.deleted",
                        created,
                        &cus,
                        &sub,
                        "canceled",
                        None,
                    ));
                }
                _ => {
                    let sub = subscribe(env, &cus, &plans[rng.below(plans.len())]);
                    events.push(sub_event(
                        "customer.subscription.created",
                        created,
                        &cus,
                        &sub,
                        STATUSES[rng.below(4)],
                        None,
                    ));
                    subs.push(sub);
                }
            }
            let sub = subs[rng.below(subs.len())].clone();
            events.push(sub_event(
                "customer.subscription.updated",
                created,
                &cus,
                &sub,
                STATUSES[rng.below(4)],
                Some("pro"),
            ));
        }
        for event in &mut events {
            event["data"]["object"]["metadata"] = json!({"customerID": id.to_string()});
        }
        // WHEN they are delivered shuffled, some twice, some at once
        let mut order: Vec<usize> = (0..events.len())
            .chain(0..rng.below(events.len()))
            .collect();
        for i in (1..order.len()).rev() {
            order.swap(i, rng.below(i + 1));
        }
        let (together, apart) = order.split_at(order.len() / 2);
        join_all(together.iter().map(|&i| send(&hooks, &events[i]))).await;
        for &i in apart {
            let reply = send(&hooks, &events[i]).await;
            assert_eq!(
                reply.status,
                StatusCode::OK,
                "round {round} (seed {seed}): {:?}",
                reply.json
            );
        }
        // THEN the record is what Stripe holds now
        assert_as_stripe_says(&app, env, &id, &cus).await;
    }
}

async fn each_webhook_is_one_transaction_of_known_size(env: &'static Env) {
    let app = TestApp::new(env).await;
    let hooks = hooks(&app);
    let (_, _, enterprise) = plan(&app, "enterprise").await;
    let (_, cus, sub) = billed(&app, "pro", "active", true).await;
    let t = now();
    // A status change (Stripe canceled it): the record, the 2 entries it keeps
    // (rewritten), the 2 it leaves (deleted, counted out), the 2 it joins (put,
    // counted in), the audit entry and the customer's audit sequence, the
    // event's id: 14 writes in one transaction.
    cancel(env, &sub);
    let event = sub_event(
        "customer.subscription.deleted",
        t,
        &cus,
        &sub,
        "canceled",
        None,
    );
    let (reply, sizes) = committed_transactions(send(&hooks, &event)).await;
    assert_eq!(reply.json["outcome"], "applied");
    assert_eq!(sizes, vec![14]);
    // Status and tier (a new enterprise subscription): 1 entry kept, 3 left,
    // 3 joined, the audit entry and sequence: 17.
    let new = subscribe(env, &cus, &enterprise);
    let event = sub_event(
        "customer.subscription.created",
        t + 1,
        &cus,
        &new,
        "active",
        None,
    );
    let (_, sizes) = committed_transactions(send(&hooks, &event)).await;
    assert_eq!(sizes, vec![17]);
    // An event that finds Stripe as the record shows it writes nothing.
    let event = sub_event(
        "customer.subscription.updated",
        t + 2,
        &cus,
        &new,
        "active",
        None,
    );
    let (reply, sizes) = committed_transactions(send(&hooks, &event)).await;
    assert_eq!(
        (reply.json["outcome"].clone(), sizes),
        (json!("unchanged"), vec![])
    );
}
