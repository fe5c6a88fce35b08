//! The deletion cascade through Stripe, faults after each step, recovery by a
//! retried DELETE or by the stream consumer, events, and the user.deleted hook.

use std::collections::{BTreeMap, BTreeSet};

use billing::cascade::{Cascade, Step};
use billing::cleanup::{Cleanup, UserCleanup};
use billing::domain::{CustomerId, UserId};
use billing::store::Store;
use billing_tests::Env;
use billing_tests::app::{Seeded, Spec, TestApp};
use billing_tests::sinks::{
    EventSink, FailingStripe, HangingStripe, SlowStripe, StreamConsumer, closed_url, settle,
};
use std::time::{Duration, Instant};

use aws_lambda_events::dynamodb::{Event as StreamEvent, EventRecord};
use http::{Method, StatusCode};
use serde_json::json;

use crate::TestFn;
use crate::members::{items_of, records_of};

pub fn trials() -> Vec<(&'static str, TestFn)> {
    crate::trials![
        delete_closes_stripe_and_removes_everything,
        stripe_retries_only_where_stripe_says_it_is_safe,
        faults_are_recovered_by_a_retried_delete,
        faults_are_recovered_by_the_stream_consumer,
        concurrent_deletes_of_a_stripe_customer,
        a_delete_overtaken_by_another_cascade_still_succeeds,
        the_stream_consumer_leaves_a_live_delete_alone,
        user_deleted_hook,
        a_delete_out_of_time_answers_503_and_a_retry_finishes_it,
        a_delete_out_of_time_is_finished_by_the_stream_consumer,
        a_stream_batch_reports_its_failed_record,
        stripe_calls_per_delete,
    ]
}

/// A fault injected into one step of the cascade.
#[derive(Debug, Clone, Copy)]
enum Fault {
    /// Stripe answers 500 (after its retries).
    Stripe5xx,
    /// Nothing listens at Stripe's URL.
    StripeDown,
    /// DynamoDB cannot be reached during the step.
    DynamoDown(Step),
    /// The process stops right after the step.
    StopAfter(Step),
}

const FAULTS: [Fault; 8] = [
    Fault::DynamoDown(Step::MarkDeleting),
    Fault::StopAfter(Step::MarkDeleting),
    Fault::Stripe5xx,
    Fault::StripeDown,
    Fault::StopAfter(Step::CloseBilling),
    Fault::DynamoDown(Step::DeleteMembers),
    Fault::StopAfter(Step::DeleteMembers),
    Fault::DynamoDown(Step::DeleteRecord),
];

/// Asserts that nothing of the customer is left: items, memberships, Stripe objects.
async fn assert_gone(env: &Env, app: &TestApp, c: &Seeded) {
    assert_eq!(items_of(app, &c.id).await, 0, "{}: items left", c.id);
    for user in c.members.iter().chain([&c.owner]) {
        let user = UserId::parse(user).unwrap();
        assert_eq!(
            app.store.membership_of(&user).await.unwrap(),
            None,
            "membership left"
        );
    }
    assert!(
        env.stripe_customer(&c.stripe_id).await.is_none(),
        "Stripe customer left"
    );
    assert!(
        env.live_subscriptions(&c.stripe_id).await.is_empty(),
        "live subscription left"
    );
}

/// Asserts the customer is invisible and closed, with its members untouched or not.
async fn assert_hidden(app: &TestApp, c: &Seeded) {
    app.assert_customer_not_found(&c.id).await;
    let listed = app.get("/customers?limit=100").await;
    let ids: Vec<&str> = listed.json["customers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["id"].as_str().unwrap())
        .collect();
    assert!(
        !ids.contains(&c.id.as_str()),
        "a deleting customer is never listed"
    );
    let body = json!({"userID": uuid::Uuid::new_v4(), "role": "user"});
    let add = app
        .admin(
            Method::POST,
            &format!("/customer/{}/member", c.id),
            Some(body),
        )
        .await;
    assert_eq!(
        add.status,
        StatusCode::NOT_FOUND,
        "a deleting customer gains no member"
    );
}

async fn delete_closes_stripe_and_removes_everything(env: &'static Env) {
    let app = TestApp::new(env).await;
    for members in [0, 10] {
        let c = app
            .customer_with_stripe(Spec {
                members,
                ..Spec::default()
            })
            .await;
        assert!(env.stripe_customer(&c.stripe_id).await.is_some());
        assert_eq!(
            env.live_subscriptions(&c.stripe_id).await.len(),
            1,
            "seeding subscribed the active customer"
        );
        let metadata = &env.stripe_customer(&c.stripe_id).await.unwrap()["metadata"];
        assert_eq!(metadata["customerID"], c.id.as_str());
        let reply = app
            .admin(Method::DELETE, &format!("/customer/{}", c.id), None)
            .await;
        assert_eq!(reply.status, StatusCode::NO_CONTENT);
        assert_gone(env, &app, &c).await;
        assert_eq!(
            app.admin(Method::DELETE, &format!("/customer/{}", c.id), None)
                .await
                .status,
            StatusCode::NOT_FOUND
        );
    }
    // A canceled customer has no subscription, only a Stripe customer.
    let canceled = app
        .customer_with_stripe(Spec {
            status: "canceled",
            ..Spec::default()
        })
        .await;
    assert!(env.live_subscriptions(&canceled.stripe_id).await.is_empty());
    assert_eq!(
        app.admin(Method::DELETE, &format!("/customer/{}", canceled.id), None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_gone(env, &app, &canceled).await;
}

async fn stripe_retries_only_where_stripe_says_it_is_safe(env: &'static Env) {
    let app = TestApp::new(env).await;
    for (should_retry, attempts) in [(Some(false), 1), (Some(true), 3), (None, 3)] {
        let c = app.customer_with_stripe(Spec::with_members(2)).await;
        let stripe = FailingStripe::start(should_retry).await;
        let cascade = Cascade::new(app.store.clone(), Some(env.payments_at(&stripe.url)));
        let err = cascade
            .run(
                &CustomerId::parse(&c.id).unwrap(),
                &billing_tests::by_test(),
            )
            .await
            .unwrap_err();
        assert_eq!(err.step, Step::CloseBilling);
        assert_eq!(
            stripe.count(),
            attempts,
            "Stripe-Should-Retry: {should_retry:?}"
        );
        assert_eq!(
            records_of(&app, &c.id).await,
            1 + 3,
            "a Stripe failure changes nothing else"
        );
        assert_hidden(&app, &c).await;
        // The API answers 500 in the error convention while Stripe keeps failing.
        let failing = billing::api::State::new(
            app.store.clone(),
            billing::auth::JwtVerifier::new(
                billing_tests::app::PUBLIC_KEY.as_bytes(),
                &billing_tests::app::jwt_settings(),
            )
            .unwrap(),
            Some(env.payments_at(&stripe.url)),
        )
        .expect("randomness");
        let auth = format!(
            "Bearer {}",
            billing_tests::app::token("u", &["billing_admin"], 60)
        );
        let (parts, ()) =
            http::Request::delete(format!("{}/customer/{}", billing_tests::app::API, c.id))
                .header("authorization", auth)
                .body(())
                .unwrap()
                .into_parts();
        let reply = billing_tests::Reply::from(
            billing::api::dispatch(&failing, billing::http::lambda_request(parts, Vec::new()))
                .await,
        );
        assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(reply.error_code(), "billing_error");
        assert!(
            !reply.json.to_string().contains("injected"),
            "no Stripe internals in the body"
        );
        drop(stripe);
        assert_eq!(
            app.admin(Method::DELETE, &format!("/customer/{}", c.id), None)
                .await
                .status,
            StatusCode::NO_CONTENT
        );
        assert_gone(env, &app, &c).await;
    }
}

/// Runs the cascade with `fault` injected; returns whether it changed anything.
async fn inject(env: &Env, app: &TestApp, c: &Seeded, fault: Fault) -> bool {
    let id = CustomerId::parse(&c.id).unwrap();
    let good = Cascade::new(app.store.clone(), Some(env.payments()));
    let dead_db = Cascade::new(
        Store::new(
            billing::aws::dynamodb(&env.sdk, Some(&closed_url())),
            app.store.table_name(),
        ),
        Some(env.payments()),
    );
    let failing_stripe = FailingStripe::start(Some(false)).await;
    let stripe_5xx = Cascade::new(
        app.store.clone(),
        Some(env.payments_at(&failing_stripe.url)),
    );
    let stripe_down = Cascade::new(app.store.clone(), Some(env.payments_at(&closed_url())));

    if let Fault::DynamoDown(Step::MarkDeleting) = fault {
        assert_eq!(
            dead_db
                .mark_deleting(&id, &billing_tests::by_test())
                .await
                .unwrap_err()
                .step,
            Step::MarkDeleting
        );
        return false;
    }
    let customer = good
        .mark_deleting(&id, &billing_tests::by_test())
        .await
        .unwrap();
    match fault {
        Fault::StopAfter(Step::MarkDeleting) => return true,
        Fault::Stripe5xx => {
            assert_eq!(
                stripe_5xx.close_billing(&customer).await.unwrap_err().step,
                Step::CloseBilling
            );
            return true;
        }
        Fault::StripeDown => {
            assert_eq!(
                stripe_down.close_billing(&customer).await.unwrap_err().step,
                Step::CloseBilling
            );
            return true;
        }
        _ => {}
    }
    good.close_billing(&customer).await.unwrap();
    match fault {
        Fault::StopAfter(Step::CloseBilling) => return true,
        Fault::DynamoDown(Step::DeleteMembers) => {
            assert_eq!(
                dead_db.delete_members(&id).await.unwrap_err().step,
                Step::DeleteMembers
            );
            return true;
        }
        _ => {}
    }
    good.delete_members(&id).await.unwrap();
    match fault {
        Fault::StopAfter(Step::DeleteMembers) => true,
        Fault::DynamoDown(Step::DeleteRecord) => {
            assert_eq!(
                dead_db.delete_record(&id).await.unwrap_err().step,
                Step::DeleteRecord
            );
            true
        }
        other => panic!("unexpected fault {other:?}"),
    }
}

/// Checks what a stopped cascade left: hidden and closed, memberCount = member items.
async fn assert_consistent_while_stopped(app: &TestApp, c: &Seeded) {
    assert_hidden(app, c).await;
    let id = CustomerId::parse(&c.id).unwrap();
    let stored = app
        .store
        .find_customer(&id)
        .await
        .unwrap()
        .expect("record kept until last");
    assert_eq!(
        records_of(app, &c.id).await as u64,
        1 + stored.member_count,
        "memberCount matches member items"
    );
}

/// Exactly one distinct `customer.deleted` per deleted customer, none for others.
fn assert_one_event_each(events: &[billing::events::CustomerDeleted], deleted: &[&Seeded]) {
    let mut by_customer: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for e in events {
        by_customer
            .entry(e.customer_id.to_string())
            .or_default()
            .insert(e.event_id.clone());
    }
    let expected: BTreeSet<String> = deleted.iter().map(|c| c.id.clone()).collect();
    assert_eq!(
        by_customer.keys().cloned().collect::<BTreeSet<_>>(),
        expected,
        "events for exactly the deleted customers"
    );
    for (customer, ids) in by_customer {
        assert_eq!(ids.len(), 1, "{customer}: one event after deduplication");
    }
}

async fn faults_are_recovered_by_a_retried_delete(env: &'static Env) {
    let app = TestApp::with_stream(env).await;
    let mut customers = Vec::new();
    for fault in FAULTS {
        let c = app.customer_with_stripe(Spec::with_members(10)).await;
        if inject(env, &app, &c, fault).await {
            assert_consistent_while_stopped(&app, &c).await;
        } else {
            assert_eq!(
                app.get(&format!("/customer/{}", c.id)).await.json["memberCount"],
                11,
                "{fault:?} changed nothing"
            );
        }
        let retry = app
            .admin(Method::DELETE, &format!("/customer/{}", c.id), None)
            .await;
        assert_eq!(retry.status, StatusCode::NO_CONTENT, "{fault:?}");
        assert_gone(env, &app, &c).await;
        customers.push(c);
    }
    // The stream consumer publishes one customer.deleted per customer, even when the
    // stream delivers every batch twice.
    let sink = EventSink::new(env).await;
    let mut consumer = StreamConsumer::new(env, &app, sink.publisher()).await;
    consumer.catch_up(true).await;
    settle().await;
    let events = sink.drain().await;
    assert_eq!(
        events.len(),
        2 * customers.len(),
        "at-least-once: each redelivered batch published again"
    );
    assert_one_event_each(&events, &customers.iter().collect::<Vec<_>>());
    let listed = app.get("/customers").await;
    assert_eq!(listed.json["items"], 0);
}

async fn faults_are_recovered_by_the_stream_consumer(env: &'static Env) {
    let app = TestApp::with_stream(env).await;
    let sink = EventSink::new(env).await;
    let mut consumer = StreamConsumer::new(env, &app, sink.publisher()).await;
    let mut deleted = Vec::new();
    let mut untouched = Vec::new();
    for fault in FAULTS {
        let c = app.customer_with_stripe(Spec::with_members(10)).await;
        if inject(env, &app, &c, fault).await {
            assert_consistent_while_stopped(&app, &c).await;
            deleted.push(c);
        } else {
            untouched.push(c);
        }
    }
    consumer.catch_up(false).await;
    settle().await;
    for c in &deleted {
        assert_gone(env, &app, c).await;
    }
    // A cascade that never started stays undone: the customer is whole.
    for c in &untouched {
        let reply = app.get(&format!("/customer/{}", c.id)).await;
        assert_eq!(
            (reply.status, reply.json["memberCount"].as_u64()),
            (StatusCode::OK, Some(11))
        );
        assert!(env.stripe_customer(&c.stripe_id).await.is_some());
    }
    let events = sink.drain().await;
    assert_one_event_each(&events, &deleted.iter().collect::<Vec<_>>());
    assert_eq!(app.get("/customers").await.json["items"], untouched.len());
}

async fn concurrent_deletes_of_a_stripe_customer(env: &'static Env) {
    let app = TestApp::new(env).await;
    let c = app.customer_with_stripe(Spec::with_members(60)).await;
    let path = format!("/customer/{}", c.id);
    let users: Vec<String> = (0..10).map(|_| uuid::Uuid::new_v4().to_string()).collect();
    let member_path = format!("/customer/{}/member", c.id);
    let adds = futures_util::future::join_all(users.iter().map(|u| {
        app.admin(
            Method::POST,
            &member_path,
            Some(json!({"userID": u, "role": "user"})),
        )
    }));
    let (a, b, added) = futures_util::join!(
        app.admin(Method::DELETE, &path, None),
        app.admin(Method::DELETE, &path, None),
        adds
    );
    crate::members::assert_deleted_by_one_or_both(&a, &b);
    assert!(
        added
            .iter()
            .all(|r| r.status == StatusCode::CREATED || r.status == StatusCode::NOT_FOUND)
    );
    assert_gone(env, &app, &c).await;
    for u in &users {
        assert_eq!(
            app.store
                .membership_of(&UserId::parse(u).unwrap())
                .await
                .unwrap(),
            None
        );
    }
}

async fn user_deleted_hook(env: &'static Env) {
    let app = TestApp::new(env).await;
    let cleanup = Cleanup::new(
        app.store.clone(),
        Some(env.payments()),
        billing::events::Publisher::Log,
    );
    let owned = app.customer_with_stripe(Spec::with_members(3)).await;
    let other = app.customer_with_stripe(Spec::with_members(2)).await;
    let user = |s: &str| UserId::parse(s).unwrap();

    // A member: only the membership goes, memberCount stays exact; a replay is harmless.
    let member = user(&other.members[1]);
    assert_eq!(
        cleanup
            .on_user_deleted(&member, &billing_tests::by_test())
            .await
            .unwrap(),
        UserCleanup::MembershipRemoved(CustomerId::parse(&other.id).unwrap())
    );
    assert_eq!(
        cleanup
            .on_user_deleted(&member, &billing_tests::by_test())
            .await
            .unwrap(),
        UserCleanup::Nothing
    );
    let reply = app.get(&format!("/customer/{}", other.id)).await;
    assert_eq!(reply.json["memberCount"], 2);

    // The owner: the whole customer goes through the cascade; a replay is harmless.
    let owner = user(&owned.owner);
    assert_eq!(
        cleanup
            .on_user_deleted(&owner, &billing_tests::by_test())
            .await
            .unwrap(),
        UserCleanup::CustomerDeleted(CustomerId::parse(&owned.id).unwrap())
    );
    assert_gone(env, &app, &owned).await;
    assert_eq!(
        cleanup
            .on_user_deleted(&owner, &billing_tests::by_test())
            .await
            .unwrap(),
        UserCleanup::Nothing
    );

    // An unknown user is a no-op.
    assert_eq!(
        cleanup
            .on_user_deleted(&UserId::random(), &billing_tests::by_test())
            .await
            .unwrap(),
        UserCleanup::Nothing
    );
    assert_eq!(
        app.get(&format!("/customer/{}", other.id)).await.status,
        StatusCode::OK
    );
}

async fn a_delete_overtaken_by_another_cascade_still_succeeds(env: &'static Env) {
    // GIVEN a DELETE whose Stripe step is slow, and a second cascade (the stream
    // consumer, another DELETE) that finishes the whole job meanwhile
    let app = TestApp::new(env).await;
    let c = app.customer_with_stripe(Spec::with_members(5)).await;
    let id = CustomerId::parse(&c.id).unwrap();
    let slow = SlowStripe::start(
        env.stripe_url.clone(),
        std::time::Duration::from_millis(1500),
    )
    .await;
    let slow_cascade = Cascade::new(app.store.clone(), Some(env.payments_at(&slow.url)));
    let fast_cascade = Cascade::new(app.store.clone(), Some(env.payments()));
    let by = billing_tests::by_test();
    let (slow_run, fast_run) = futures_util::join!(slow_cascade.run(&id, &by), async {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        fast_cascade.run(&id, &by).await
    });
    // THEN both succeed (the slow one must not report "not found" for a deletion it
    // started), and nothing is left
    let fast_run = fast_run.expect("the fast cascade finishes");
    assert!(fast_run.record_removed);
    let slow_run = slow_run.expect("the overtaken cascade still succeeds");
    assert!(!slow_run.record_removed);
    assert_gone(env, &app, &c).await;
}

async fn the_stream_consumer_leaves_a_live_delete_alone(env: &'static Env) {
    // GIVEN a consumer with a grace period, fed the record of a deletion in progress
    let app = TestApp::new(env).await;
    let c = app.customer_with_stripe(Spec::with_members(5)).await;
    let id = CustomerId::parse(&c.id).unwrap();
    let stripe = FailingStripe::start(Some(false)).await;
    let consumer = Cleanup::new(
        app.store.clone(),
        Some(env.payments_at(&stripe.url)),
        billing::events::Publisher::Log,
    )
    .with_grace(std::time::Duration::from_secs(2));
    let mut record = aws_lambda_events::dynamodb::EventRecord::default();
    record.event_name = "MODIFY".to_owned();
    record.event_id = "1".to_owned();
    let image = json!({"type": {"S": "customer"}, "id": {"S": c.id}, "state": {"S": "deleting"}});
    record.change.new_image = serde_json::from_value(image).unwrap();
    let mut event = aws_lambda_events::dynamodb::Event::default();
    event.records = vec![record];
    // WHEN the request, which marked the customer deleting (the write the stream
    // reports), finishes its own cascade within the grace period
    let customer = app
        .store
        .begin_deletion(&id, &billing_tests::by_test())
        .await
        .unwrap();
    let request = async {
        let cascade = Cascade::new(app.store.clone(), Some(env.payments()));
        cascade.close_billing(&customer).await.unwrap();
        cascade.delete_members(&id).await.unwrap();
        cascade.delete_record(&id).await.unwrap();
    };
    let (handled, ()) = futures_util::join!(consumer.on_stream(&event), request);
    // THEN the consumer did nothing: it never called Stripe (this one would fail)
    handled.expect("nothing left to do");
    assert_eq!(
        stripe.count(),
        0,
        "the consumer waited instead of racing the request"
    );
    assert_gone(env, &app, &c).await;
}

/// The short budget the out-of-time tests give a cascade.
const SHORT_BUDGET: Duration = Duration::from_secs(2);

/// DELETE through handlers whose cascade calls a Stripe that never answers, with
/// [`SHORT_BUDGET`]: asserts the 503 in the convention, on time, and what it left.
async fn delete_out_of_time(env: &Env, app: &TestApp, c: &Seeded) {
    let hanging = HangingStripe::start().await;
    let slow = app.with_cascade(
        Cascade::new(app.store.clone(), Some(env.payments_at(&hanging.url)))
            .with_budget(SHORT_BUDGET),
    );
    let started = Instant::now();
    let reply = slow
        .admin(Method::DELETE, &format!("/customer/{}", c.id), None)
        .await;
    let elapsed = started.elapsed();
    eprintln!("DELETE with Stripe hanging, budget {SHORT_BUDGET:?}: {elapsed:?}");
    // THEN 503 deletion_in_progress in the error convention, with Retry-After
    assert_eq!(
        reply.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{:?}",
        reply.json
    );
    assert_eq!(reply.error_code(), "deletion_in_progress");
    assert_eq!(reply.headers["retry-after"], "5");
    assert_eq!(reply.headers["cache-control"], "no-store");
    // within the budget plus a small margin (a functional bound), having waited
    // for Stripe rather than failing fast
    assert!(
        elapsed < SHORT_BUDGET + Duration::from_secs(2),
        "answered after {elapsed:?}"
    );
    assert!(
        elapsed >= SHORT_BUDGET - Duration::from_millis(500),
        "gave up early: {elapsed:?}"
    );
    assert!(hanging.connections() >= 1, "Stripe was called");
    // and the customer stays deleting: hidden, closed, nothing else changed
    assert_consistent_while_stopped(app, c).await;
    assert_eq!(
        records_of(app, &c.id).await,
        1 + 1 + c.members.len(),
        "no member removed"
    );
    assert!(env.stripe_customer(&c.stripe_id).await.is_some());
    assert_eq!(env.live_subscriptions(&c.stripe_id).await.len(), 1);
}

async fn a_delete_out_of_time_answers_503_and_a_retry_finishes_it(env: &'static Env) {
    // GIVEN a customer with Stripe objects and members, and a Stripe that hangs
    let app = TestApp::new(env).await;
    let c = app.customer_with_stripe(Spec::with_members(3)).await;
    // WHEN it is deleted with a 2 s budget: 503, still deleting (asserted inside)
    delete_out_of_time(env, &app, &c).await;
    // THEN a later DELETE, Stripe answering again, finishes the cascade
    let retry = app
        .admin(Method::DELETE, &format!("/customer/{}", c.id), None)
        .await;
    assert_eq!(retry.status, StatusCode::NO_CONTENT);
    assert_eq!(retry.headers["cache-control"], "no-store");
    assert_gone(env, &app, &c).await;
}

async fn a_delete_out_of_time_is_finished_by_the_stream_consumer(env: &'static Env) {
    let app = TestApp::with_stream(env).await;
    let c = app.customer_with_stripe(Spec::with_members(3)).await;
    delete_out_of_time(env, &app, &c).await;
    // The stream consumer (its grace over, Stripe answering) finishes it.
    let mut consumer = StreamConsumer::new(env, &app, billing::events::Publisher::Log).await;
    consumer.catch_up(false).await;
    assert_gone(env, &app, &c).await;
}

/// A stream record of `id` written in the deleting state, as Lambda delivers it.
fn deleting_record(id: &str, sequence_number: Option<&str>) -> EventRecord {
    let mut record = EventRecord::default();
    record.event_name = "MODIFY".to_owned();
    record.event_id = format!("event-{id}");
    record.change.sequence_number = sequence_number.map(str::to_owned);
    let image = json!({"type": {"S": "customer"}, "id": {"S": id}, "state": {"S": "deleting"}});
    record.change.new_image = serde_json::from_value(image).unwrap();
    record
}

fn batch(records: Vec<EventRecord>) -> StreamEvent {
    let mut event = StreamEvent::default();
    event.records = records;
    event
}

/// The item identifiers a batch response reports.
fn reported(response: &aws_lambda_events::streams::DynamoDbEventResponse) -> Vec<Option<&str>> {
    response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_deref())
        .collect()
}

async fn a_stream_batch_reports_its_failed_record(env: &'static Env) {
    // GIVEN four customers whose DELETE requests died after marking them deleting;
    // only `b` has Stripe objects, and the consumer's Stripe hangs
    let app = TestApp::new(env).await;
    let a = app.customer(Spec::with_members(2)).await;
    let b = app.customer_with_stripe(Spec::with_members(2)).await;
    let c = app.customer(Spec::with_members(2)).await;
    let d = app.customer(Spec::with_members(2)).await;
    for x in [&a, &b, &c, &d] {
        app.store
            .begin_deletion(
                &CustomerId::parse(&x.id).unwrap(),
                &billing_tests::by_test(),
            )
            .await
            .unwrap();
    }
    let hanging = HangingStripe::start().await;
    let consumer = Cleanup::new(
        app.store.clone(),
        Some(env.payments_at(&hanging.url)),
        billing::events::Publisher::Log,
    )
    .with_grace(Duration::ZERO)
    .with_budget(SHORT_BUDGET);
    let records = [(&a, "100"), (&b, "200"), (&c, "300"), (&d, "400")]
        .map(|(x, seq)| deleting_record(&x.id, Some(seq)));

    // WHEN the batch a, b, c, d is handled, b's cascade running out of time
    let response = consumer.on_stream_batch(&batch(records.to_vec())).await;

    // THEN exactly b is reported: Lambda redelivers from it; a is done; b, c and d
    // (after the failure, not handled yet) are still deleting
    assert_eq!(reported(&response), [Some("200")]);
    assert_eq!(
        serde_json::to_value(&response).unwrap(),
        json!({"batchItemFailures": [{"itemIdentifier": "200"}]}),
        "the ReportBatchItemFailures wire format"
    );
    assert_eq!(items_of(&app, &a.id).await, 0, "a finished");
    for x in [&b, &c, &d] {
        assert_consistent_while_stopped(&app, x).await;
        assert_eq!(records_of(&app, &x.id).await, 4, "{} untouched", x.id);
    }
    // A batch whose records all succeed reports nothing.
    let e = app.customer(Spec::default()).await;
    app.store
        .begin_deletion(
            &CustomerId::parse(&e.id).unwrap(),
            &billing_tests::by_test(),
        )
        .await
        .unwrap();
    let ok = consumer
        .on_stream_batch(&batch(vec![deleting_record(&e.id, Some("500"))]))
        .await;
    assert_eq!(reported(&ok), Vec::<Option<&str>>::new());
    assert_eq!(items_of(&app, &e.id).await, 0);
    // A failed record without a sequence number is reported with a null identifier
    // (Lambda then retries the whole batch).
    let nameless = consumer
        .on_stream_batch(&batch(vec![deleting_record(&b.id, None)]))
        .await;
    assert_eq!(reported(&nameless), [None]);

    // WHEN Lambda redelivers from the reported record, Stripe answering again
    let good = Cleanup::new(
        app.store.clone(),
        Some(env.payments()),
        billing::events::Publisher::Log,
    )
    .with_grace(Duration::ZERO);
    let redelivered = good.on_stream_batch(&batch(records[1..].to_vec())).await;
    // THEN the rest is done
    assert_eq!(reported(&redelivered), Vec::<Option<&str>>::new());
    for x in [&c, &d] {
        assert_eq!(items_of(&app, &x.id).await, 0, "{} finished", x.id);
    }
    assert_gone(env, &app, &b).await;
}

async fn stripe_calls_per_delete(env: &'static Env) {
    // Stripe requests one cascade makes: deleting the customer, which cancels its
    // subscriptions (localstripe is made to do so as Stripe does).
    let app = TestApp::new(env).await;
    let cascade = Cascade::new(app.store.clone(), Some(env.payments()));
    let run = |c: &Seeded| {
        let id = CustomerId::parse(&c.id).unwrap();
        let cascade = cascade.clone();
        async move {
            cascade
                .run(&id, &billing_tests::by_test())
                .await
                .unwrap()
                .billing
                .expect("Stripe closed")
        }
    };
    let subscribed = app.customer_with_stripe(Spec::default()).await;
    assert_eq!(env.live_subscriptions(&subscribed.stripe_id).await.len(), 1);
    let closed = run(&subscribed).await;
    assert_eq!(
        (closed.calls, closed.customer_deleted),
        (1, true),
        "with a subscription: one delete"
    );
    assert_gone(env, &app, &subscribed).await;
    let canceled = app
        .customer_with_stripe(Spec {
            status: "canceled",
            ..Spec::default()
        })
        .await;
    let closed = run(&canceled).await;
    assert_eq!((closed.calls, closed.customer_deleted), (1, true));
    // A cascade resumed after its Stripe step: the one call finds the customer gone.
    let resumed = app.customer_with_stripe(Spec::default()).await;
    let id = CustomerId::parse(&resumed.id).unwrap();
    let customer = cascade
        .mark_deleting(&id, &billing_tests::by_test())
        .await
        .unwrap();
    cascade.close_billing(&customer).await.unwrap();
    let closed = run(&resumed).await;
    assert_eq!(
        (closed.calls, closed.customer_deleted),
        (1, false),
        "resumed: the delete finds the customer gone"
    );
    assert_gone(env, &app, &resumed).await;
}
