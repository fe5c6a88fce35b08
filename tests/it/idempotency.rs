//! `Idempotency-Key` on `POST .../member`, `PATCH .../member/{userID}` and
//! `DELETE /customer/{customerID}`: replays, reuse, concurrency, scope,
//! validation, expiry, release on 5xx, and answers committed with the change
//! (a request that dies right after its commit is replayed, not run again).

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use billing::cascade::Cascade;
use billing_tests::app::{Seeded, Spec, TestApp, bearer, request};
use billing_tests::proxy::LostCommit;
use billing_tests::sinks::{FailingStripe, SlowStripe};
use billing_tests::{Env, Reply};
use futures_util::future::join_all;
use http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::TestFn;
use crate::audit::{Who, add_request, audit_entries, delete_request, remove_request, role_request};
use crate::roles::member_count;

pub fn trials() -> Vec<(&'static str, TestFn)> {
    crate::trials![
        a_retried_add_is_answered_again_without_acting_twice,
        retried_role_changes_and_deletes_are_answered_again,
        a_key_used_for_another_request_is_refused,
        keys_belong_to_their_caller,
        invalid_keys_are_refused_before_anything_is_done,
        concurrent_deletes_with_one_key_act_once,
        concurrent_adds_with_one_key_act_once,
        a_key_expires_after_a_day,
        a_server_error_releases_the_key,
        a_request_that_failed_validation_keeps_no_answer,
        a_claim_whose_holder_died_is_taken_over_by_the_same_request,
        an_add_that_died_after_its_commit_is_replayed,
        a_role_change_that_died_after_its_commit_is_replayed,
        a_deletion_that_died_after_its_commit_is_replayed,
        a_request_whose_claim_was_taken_over_commits_nothing,
        an_add_whose_commit_reply_was_lost_is_replayed,
    ]
}

const KEY: &str = "idempotency-key";
const REPLAYED: &str = "idempotent-replayed";

/// Whether a reply is a replay (`Idempotent-Replayed: true`).
fn replayed(reply: &Reply) -> bool {
    match reply.headers.get(REPLAYED) {
        None => false,
        Some(v) => {
            assert_eq!(v, "true");
            true
        }
    }
}

/// Every idempotency record of the test's table, by key attribute.
async fn records(app: &TestApp) -> Vec<HashMap<String, AttributeValue>> {
    let out = app
        .store
        .client()
        .scan()
        .table_name(app.store.table_name())
        .filter_expression("#type = :type")
        .expression_attribute_names("#type", "type")
        .expression_attribute_values(":type", AttributeValue::S("idempotency".into()))
        .consistent_read(true)
        .send()
        .await
        .expect("scan");
    out.items.unwrap_or_default()
}

/// Sets attributes of an idempotency record (`SET` expression and values).
async fn rewrite(
    app: &TestApp,
    record: &HashMap<String, AttributeValue>,
    update: &str,
    values: &[(&str, AttributeValue)],
) {
    let mut req = app
        .store
        .client()
        .update_item()
        .table_name(app.store.table_name())
        .key("PK", record["PK"].clone())
        .key("SK", record["SK"].clone())
        .update_expression(update)
        .condition_expression("attribute_exists(PK)");
    if update.contains("#state") {
        req = req.expression_attribute_names("#state", "state");
    }
    for (name, value) in values {
        req = req.expression_attribute_values(*name, value.clone());
    }
    req.send().await.expect("rewrite the record");
}

fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn now() -> i64 {
    billing::domain::now().timestamp()
}

fn add_path(customer: &str) -> String {
    format!("/customer/{customer}/member")
}

/// A fresh table with a customer seeded by `spec`, and `idem-admin`.
async fn given(env: &Env, spec: Spec) -> (TestApp, Seeded, Who) {
    let app = TestApp::new(env).await;
    let c = app.customer(spec).await;
    (app, c, Who::user("idem-admin"))
}

/// An add's body: `user` as a `user`.
fn as_user(user: &str) -> Value {
    json!({"userID": user, "role": "user"})
}

/// A request by `who` with `Idempotency-Key: key`.
async fn keyed(
    who: &Who,
    app: &TestApp,
    method: Method,
    path: &str,
    body: Option<Value>,
    key: &str,
) -> Reply {
    who.send(app, method, path, body, &[(KEY, key)]).await
}

/// A keyed `POST .../member` of `body` by `who`.
async fn add(who: &Who, app: &TestApp, customer: &str, body: Value, key: &str) -> Reply {
    keyed(who, app, Method::POST, &add_path(customer), Some(body), key).await
}

/// A request by `idem-admin` (a bearer token, as `Who::user` has) built by
/// [`request`], for headers `Who::send` cannot set.
fn admin_request(
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (http::request::Builder, Vec<u8>) {
    let auth = bearer("idem-admin", &["billing_admin"]);
    request(method, path, &[("authorization", &auth)], body)
}

/// Asserts a reply's status, and whether it is a replay.
#[track_caller]
fn assert_answer(reply: &Reply, status: StatusCode, replay: bool) {
    assert_eq!(
        (reply.status, replayed(reply)),
        (status, replay),
        "{:?}",
        reply.json
    );
}

/// Asserts `again` is a replay of `first`: the same status and body.
#[track_caller]
fn assert_replays(again: &Reply, first: &Reply) {
    assert_answer(again, first.status, true);
    assert_eq!(again.json, first.json, "the same answer, error_id included");
}

/// Asserts an error with `status` and `code` that is no replay.
#[track_caller]
fn assert_refused(reply: &Reply, status: StatusCode, code: &str) {
    assert_answer(reply, status, false);
    assert_eq!(reply.error_code(), code);
}

/// How many of `entries` have `action`.
fn count_of(entries: &[Value], action: &str) -> usize {
    entries.iter().filter(|e| e["action"] == action).count()
}

/// A record's `expiresAt`.
fn expires_at(record: &HashMap<String, AttributeValue>) -> i64 {
    record["expiresAt"].as_n().unwrap().parse().unwrap()
}

/// Makes a record expired (as the TTL has not removed it yet).
async fn expire(app: &TestApp, record: &HashMap<String, AttributeValue>) {
    rewrite(app, record, "SET expiresAt = :t", &[(":t", n(now() - 1))]).await;
}

async fn a_retried_add_is_answered_again_without_acting_twice(env: &'static Env) {
    let (app, c, admin) = given(env, Spec::default()).await;
    let user = uuid::Uuid::new_v4().to_string();
    let body = as_user(&user);
    let audited = audit_entries(&app, &c.id).await.len();
    // WHEN the same add is sent three times with one key
    let first = add(&admin, &app, &c.id, body.clone(), "add-1").await;
    // (the first answer is not a replay)
    assert_answer(&first, StatusCode::CREATED, false);
    assert_eq!(
        records(&app).await.len(),
        1,
        "one record per caller and key"
    );
    for _ in 0..2 {
        let again = add(&admin, &app, &c.id, body.clone(), "add-1").await;
        // THEN each retry gets the first answer, marked replayed
        assert_replays(&again, &first);
        assert_eq!(again.headers["content-type"], "application/json");
        assert_eq!(again.headers["cache-control"], "no-store");
    }
    // also when its JSON is laid out differently
    let raw = format!(r#"{{ "role" : "user",  "userID" : "{user}" }}"#);
    let (builder, _) = admin_request(Method::POST, &add_path(&c.id), None);
    let builder = builder
        .header("content-type", "application/json")
        .header(KEY, "add-1");
    let again = app.raw(builder, raw.into_bytes()).await;
    assert_answer(&again, StatusCode::CREATED, true);
    // and the member was added once: counted once, audited once
    assert_eq!(member_count(&app, &c.id).await, 2);
    let entries = audit_entries(&app, &c.id).await;
    assert_eq!(entries.len(), audited + 1);
    // A refusal is kept too: the same refused add gets the same error again.
    let refused = add(&admin, &app, &c.id, as_user(&c.owner), "add-2").await;
    assert_refused(&refused, StatusCode::CONFLICT, "already_member");
    let again = add(&admin, &app, &c.id, as_user(&c.owner), "add-2").await;
    assert_replays(&again, &refused);
    assert_eq!(again.error_code(), "already_member");
    // Without a key every request acts: a second add of the user is a conflict.
    let unkeyed = admin
        .send(&app, Method::POST, &add_path(&c.id), Some(body), &[])
        .await;
    assert_answer(&unkeyed, StatusCode::CONFLICT, false);
}

async fn retried_role_changes_and_deletes_are_answered_again(env: &'static Env) {
    let (app, c, admin) = given(env, Spec::with_members(2)).await;
    let path = format!("/customer/{}/member/{}", c.id, c.members[1]);
    let audited = audit_entries(&app, &c.id).await.len();
    // A role change, then (without a key) back again, then the keyed one retried:
    let admin_role = || Some(json!({"role": "admin"}));
    let first = keyed(&admin, &app, Method::PATCH, &path, admin_role(), "patch-1").await;
    assert_eq!(
        (first.status, first.json["role"].clone()),
        (StatusCode::OK, json!("admin"))
    );
    let back = admin
        .send(
            &app,
            Method::PATCH,
            &path,
            Some(json!({"role": "user"})),
            &[],
        )
        .await;
    assert_eq!(back.status, StatusCode::OK);
    let again = keyed(&admin, &app, Method::PATCH, &path, admin_role(), "patch-1").await;
    // the retry gets the first answer and changes nothing: the member stays a user
    assert_replays(&again, &first);
    let reply = app.get(&format!("/user/{}/customer", c.members[1])).await;
    assert_eq!(reply.json["role"], "user");
    assert_eq!(audit_entries(&app, &c.id).await.len(), audited + 2);

    // A deletion retried: 204 again, not 404, and one customer.deleted entry.
    let customer = format!("/customer/{}", c.id);
    let deleted = keyed(&admin, &app, Method::DELETE, &customer, None, "delete-1").await;
    assert_answer(&deleted, StatusCode::NO_CONTENT, false);
    let again = keyed(&admin, &app, Method::DELETE, &customer, None, "delete-1").await;
    assert_answer(&again, StatusCode::NO_CONTENT, true);
    assert_eq!(again.json, Value::Null);
    assert!(again.headers.get("content-type").is_none());
    let unkeyed = admin.send(&app, Method::DELETE, &customer, None, &[]).await;
    assert_eq!(unkeyed.status, StatusCode::NOT_FOUND);
    let entries = audit_entries(&app, &c.id).await;
    assert_eq!(entries.len(), audited + 3);
    assert_eq!(count_of(&entries, "customer.deleted"), 1);
}

async fn a_key_used_for_another_request_is_refused(env: &'static Env) {
    let (app, c, admin) = given(env, Spec::with_members(1)).await;
    let d = app.customer(Spec::default()).await;
    let (u, v) = (
        uuid::Uuid::new_v4().to_string(),
        uuid::Uuid::new_v4().to_string(),
    );
    let first = add(&admin, &app, &c.id, as_user(&u), "k").await;
    assert_eq!(first.status, StatusCode::CREATED);
    // Another body, another role, another path, another method: all 422.
    let others = [
        add_request(&c.id, &v, json!("user")),
        add_request(&c.id, &u, json!("admin")),
        add_request(&c.id, &u, json!(2)),
        add_request(&d.id, &u, json!("user")),
        role_request(&c.id, &c.members[0], json!("user")),
        delete_request(&d.id),
    ];
    for (method, path, body) in others {
        let reply = keyed(&admin, &app, method.clone(), &path, body.clone(), "k").await;
        assert_eq!(
            reply.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{method} {path} {body:?}: {:?}",
            reply.json
        );
        assert_eq!(reply.error_code(), "idempotency_key_reused");
        assert!(!replayed(&reply));
    }
    // and none of them acted
    assert_eq!(member_count(&app, &c.id).await, 3);
    assert_eq!(member_count(&app, &d.id).await, 1);
    let reply = app.get(&format!("/user/{}/customer", c.members[0])).await;
    assert_eq!(reply.json["role"], "admin");
    let reply = app.get(&format!("/user/{v}/customer")).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    // The first request still replays.
    let again = add(&admin, &app, &c.id, as_user(&u), "k").await;
    assert_replays(&again, &first);
}

async fn keys_belong_to_their_caller(env: &'static Env) {
    let app = TestApp::new(env).await;
    let c = app.customer(Spec::default()).await;
    let alice = Who::user("alice");
    let bob = Who::user("bob");
    // An API key of alice's is another caller than alice's token.
    let alices_key = Who::api_key(&app, "alice").await;
    let users: Vec<String> = (0..3).map(|_| uuid::Uuid::new_v4().to_string()).collect();
    for (who, user) in [&alice, &bob, &alices_key].into_iter().zip(&users) {
        let reply = add(who, &app, &c.id, as_user(user), "shared").await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", who.subject);
        assert!(!replayed(&reply), "{} acted", who.subject);
    }
    assert_eq!(member_count(&app, &c.id).await, 4);
    assert_eq!(records(&app).await.len(), 3);
    // The same request by bob with alice's key and body acts on its own: a
    // conflict now, not alice's replayed 201.
    let reply = add(&bob, &app, &c.id, as_user(&users[0]), "alice-only").await;
    assert_eq!(reply.status, StatusCode::CONFLICT);
    let reply = add(&alice, &app, &c.id, as_user(&users[0]), "shared").await;
    assert_answer(&reply, StatusCode::CREATED, true);
}

async fn invalid_keys_are_refused_before_anything_is_done(env: &'static Env) {
    let (app, c, admin) = given(env, Spec::with_members(1)).await;
    let user = uuid::Uuid::new_v4().to_string();
    let audited = audit_entries(&app, &c.id).await.len();
    let long = "k".repeat(256);
    let mutations = [
        add_request(&c.id, &user, json!("user")),
        role_request(&c.id, &c.members[0], json!("user")),
        delete_request(&c.id),
    ];
    for (method, path, body) in &mutations {
        for key in [long.as_str(), "has space", "", "tab\there"] {
            let reply = keyed(&admin, &app, method.clone(), path, body.clone(), key).await;
            assert_eq!(
                reply.status,
                StatusCode::BAD_REQUEST,
                "{method} {key:?}: {:?}",
                reply.json
            );
            assert_eq!(
                reply.error_code(),
                "invalid_idempotency_key",
                "{method} {key:?}"
            );
        }
        // Two keys, and a key that is not ASCII.
        let reply = admin
            .send(
                &app,
                method.clone(),
                path,
                body.clone(),
                &[(KEY, "a"), (KEY, "b")],
            )
            .await;
        assert_eq!(
            reply.error_code(),
            "invalid_idempotency_key",
            "{method} two keys"
        );
        let (builder, bytes) = admin_request(method.clone(), path, body.clone());
        let builder = builder.header(
            KEY,
            http::HeaderValue::from_bytes("clé".as_bytes()).unwrap(),
        );
        let reply = app.raw(builder, bytes).await;
        assert_eq!(
            (reply.status, reply.error_code()),
            (StatusCode::BAD_REQUEST, "invalid_idempotency_key"),
            "{method} non-ASCII key"
        );
        assert_eq!(reply.json["error"]["param"], "Idempotency-Key");
    }
    // THEN nothing was done or kept
    assert_eq!(member_count(&app, &c.id).await, 2);
    assert_eq!(audit_entries(&app, &c.id).await.len(), audited);
    assert!(records(&app).await.is_empty());
    // A key of 255 visible characters is fine; reads ignore the header.
    let longest = "~".repeat(255);
    let reply = add(&admin, &app, &c.id, as_user(&user), &longest).await;
    assert_eq!(reply.status, StatusCode::CREATED);
    let customer = format!("/customer/{}", c.id);
    let reply = keyed(&admin, &app, Method::GET, &customer, None, "has space").await;
    assert_eq!(reply.status, StatusCode::OK);
}

async fn concurrent_deletes_with_one_key_act_once(env: &'static Env) {
    // GIVEN a customer whose deletion waits 1.5 s on Stripe
    let app = TestApp::new(env).await;
    let c = app.customer_with_stripe(Spec::with_members(3)).await;
    let slow_stripe = SlowStripe::start(env.stripe_url.clone(), Duration::from_millis(1500)).await;
    let slow = app.with_cascade(Cascade::new(
        app.store.clone(),
        Some(env.payments_at(&slow_stripe.url)),
    ));
    let admin = Who::user("idem-admin");
    let path = format!("/customer/{}", c.id);
    let audited = audit_entries(&app, &c.id).await.len();
    // WHEN the DELETE is sent, and while it waits, sent again with its key, and
    // another request with the same key
    let first = keyed(&admin, &slow, Method::DELETE, &path, None, "del");
    let during = async {
        tokio::time::sleep(Duration::from_millis(400)).await;
        let same = keyed(&admin, &slow, Method::DELETE, &path, None, "del").await;
        let stranger = uuid::Uuid::new_v4().to_string();
        let other = add(&admin, &slow, &c.id, as_user(&stranger), "del").await;
        (same, other)
    };
    let started = std::time::Instant::now();
    let (first, (same, other)) = futures_util::join!(first, during);
    // THEN the first deletes; the retry, still concurrent, is 409 in use; the
    // other request 422
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "Stripe was slow"
    );
    assert_answer(&first, StatusCode::NO_CONTENT, false);
    assert_refused(&same, StatusCode::CONFLICT, "idempotency_key_in_use");
    assert_refused(
        &other,
        StatusCode::UNPROCESSABLE_ENTITY,
        "idempotency_key_reused",
    );
    // and once the first answered, a retry gets its answer
    let after = keyed(&admin, &app, Method::DELETE, &path, None, "del").await;
    assert_answer(&after, StatusCode::NO_CONTENT, true);
    let entries = audit_entries(&app, &c.id).await;
    assert_eq!(entries.len(), audited + 1, "one deletion");
    assert!(env.stripe_customer(&c.stripe_id).await.is_none());
}

async fn concurrent_adds_with_one_key_act_once(env: &'static Env) {
    let (app, c, admin) = given(env, Spec::default()).await;
    let user = uuid::Uuid::new_v4().to_string();
    let body = as_user(&user);
    let audited = audit_entries(&app, &c.id).await.len();
    // WHEN 12 identical keyed adds are sent at once
    let replies = join_all((0..12).map(|_| add(&admin, &app, &c.id, body.clone(), "burst"))).await;
    // THEN exactly one acted; every other one is in use (409) or a replay of it
    let acted: Vec<&Reply> = replies
        .iter()
        .filter(|r| !replayed(r) && r.status == StatusCode::CREATED)
        .collect();
    assert_eq!(acted.len(), 1, "{replies:?}");
    for r in &replies {
        match (r.status, replayed(r)) {
            (StatusCode::CREATED, _) => assert_eq!(r.json, acted[0].json),
            (StatusCode::CONFLICT, false) => assert_eq!(r.error_code(), "idempotency_key_in_use"),
            other => panic!("unexpected {other:?}: {:?}", r.json),
        }
    }
    assert_eq!(member_count(&app, &c.id).await, 2);
    assert_eq!(audit_entries(&app, &c.id).await.len(), audited + 1);
    // and afterwards every retry is a replay
    let again = add(&admin, &app, &c.id, body, "burst").await;
    assert_replays(&again, acted[0]);
}

async fn a_key_expires_after_a_day(env: &'static Env) {
    let (app, c, admin) = given(env, Spec::default()).await;
    let user = uuid::Uuid::new_v4().to_string();
    let body = as_user(&user);
    let before = now();
    let first = add(&admin, &app, &c.id, body.clone(), "day").await;
    assert_eq!(first.status, StatusCode::CREATED);
    // The record keeps the answer for 24 h (the table's TTL attribute).
    let kept = records(&app).await;
    assert_eq!(kept.len(), 1);
    let record = &kept[0];
    assert!(record["PK"].as_s().unwrap().starts_with("IDEMPOTENCY#"));
    assert_eq!(record["SK"].as_s().unwrap(), "IDEMPOTENCY");
    assert_eq!(record["state"].as_s().unwrap(), "done");
    assert_eq!(record["answerStatus"].as_n().unwrap(), "201");
    let expires = expires_at(record);
    assert!(
        (before + 86_400..=now() + 86_400).contains(&expires),
        "expiresAt {expires} is a day after the request"
    );
    // Within the day: the member removed meanwhile, a retry is still a replay
    // and adds nobody.
    let removed = admin.call(&app, remove_request(&c.id, &user)).await;
    assert_eq!(removed.status, StatusCode::NO_CONTENT);
    let again = add(&admin, &app, &c.id, body.clone(), "day").await;
    assert_replays(&again, &first);
    assert_eq!(member_count(&app, &c.id).await, 1);
    // WHEN the record is older than a day (the TTL has not removed it yet)
    expire(&app, record).await;
    // THEN the same request acts again
    let later = add(&admin, &app, &c.id, body, "day").await;
    assert_answer(&later, StatusCode::CREATED, false);
    assert_eq!(member_count(&app, &c.id).await, 2);
    let added = audit_entries(&app, &c.id)
        .await
        .into_iter()
        .filter(|e| e["action"] == "member.added" && e["userID"] == json!(user))
        .count();
    assert_eq!(added, 2);
    // and so does another request with the key, once that record expired too
    let kept = records(&app).await;
    assert_eq!(kept.len(), 1);
    let expires = expires_at(&kept[0]);
    assert!(
        expires >= now() + 86_000,
        "the new answer is kept a day again"
    );
    expire(&app, &kept[0]).await;
    let customer = format!("/customer/{}", c.id);
    let other = keyed(&admin, &app, Method::DELETE, &customer, None, "day").await;
    assert_answer(&other, StatusCode::NO_CONTENT, false);
}

async fn a_server_error_releases_the_key(env: &'static Env) {
    // GIVEN a customer whose Stripe fails (500, not to be retried)
    let app = TestApp::new(env).await;
    let c = app.customer_with_stripe(Spec::with_members(2)).await;
    let failing = FailingStripe::start(Some(false)).await;
    let broken = app.with_cascade(Cascade::new(
        app.store.clone(),
        Some(env.payments_at(&failing.url)),
    ));
    let admin = Who::user("idem-admin");
    let path = format!("/customer/{}", c.id);
    // WHEN a keyed DELETE fails with a 5xx
    let failed = keyed(&admin, &broken, Method::DELETE, &path, None, "retry-me").await;
    assert!(failed.status.is_server_error(), "{:?}", failed.json);
    assert_eq!(failed.error_code(), "billing_error");
    // THEN the key is released: no record is kept, and a retry with it acts
    assert!(records(&app).await.is_empty(), "the 5xx answer is not kept");
    let retry = keyed(&admin, &app, Method::DELETE, &path, None, "retry-me").await;
    assert_answer(&retry, StatusCode::NO_CONTENT, false);
    assert!(env.stripe_customer(&c.stripe_id).await.is_none());
    let again = keyed(&admin, &app, Method::DELETE, &path, None, "retry-me").await;
    assert_answer(&again, StatusCode::NO_CONTENT, true);
    assert_eq!(
        count_of(&audit_entries(&app, &c.id).await, "customer.deleted"),
        1,
        "the failed attempt began the deletion, the retry resumed it"
    );
}

async fn a_request_that_failed_validation_keeps_no_answer(env: &'static Env) {
    let (app, c, admin) = given(env, Spec::default()).await;
    let user = uuid::Uuid::new_v4().to_string();
    // WHEN a keyed add fails validation, twice
    for _ in 0..2 {
        let reply = add(&admin, &app, &c.id, json!({"userID": user}), "fix-me").await;
        assert_refused(&reply, StatusCode::BAD_REQUEST, "missing_field");
    }
    // THEN nothing is kept, and the corrected request acts with the same key
    assert!(records(&app).await.is_empty());
    let reply = add(&admin, &app, &c.id, as_user(&user), "fix-me").await;
    assert_answer(&reply, StatusCode::CREATED, false);
    assert_eq!(member_count(&app, &c.id).await, 2);
    // Credentials come first: no key is looked at (or kept) for a 401 or 403.
    let reply = app
        .call(
            Method::POST,
            &add_path(&c.id),
            &[(KEY, "has space")],
            Some(as_user(&user)),
        )
        .await;
    assert_eq!(
        (reply.status, reply.error_code()),
        (StatusCode::UNAUTHORIZED, "unauthorized")
    );
    let support = bearer("support", &["support"]);
    let reply = app
        .call(
            Method::POST,
            &add_path(&c.id),
            &[("authorization", &support), (KEY, "support-key")],
            Some(as_user(&uuid::Uuid::new_v4().to_string())),
        )
        .await;
    assert_eq!(
        (reply.status, reply.error_code()),
        (StatusCode::FORBIDDEN, "forbidden")
    );
    assert_eq!(
        records(&app).await.len(),
        1,
        "only the add that acted keeps a record"
    );
}

async fn a_claim_whose_holder_died_is_taken_over_by_the_same_request(env: &'static Env) {
    let (app, c, admin) = given(env, Spec::with_members(1)).await;
    let path = format!("/customer/{}/member/{}", c.id, c.members[0]);
    // A keyed change of the member's role to `role`.
    let patch = |role: &str| {
        keyed(
            &admin,
            &app,
            Method::PATCH,
            &path,
            Some(json!({"role": role})),
            "held",
        )
    };
    let first = patch("user").await;
    assert_eq!(first.status, StatusCode::OK);
    // GIVEN the record as a request left it that died while running: in
    // progress, no answer, its lock still held
    let record = records(&app).await.remove(0);
    rewrite(
        &app,
        &record,
        "SET #state = :running, lockedUntil = :until REMOVE answerStatus, answerBody",
        &[
            (":running", AttributeValue::S("in_progress".into())),
            (":until", n(now() + 60)),
        ],
    )
    .await;
    let reply = patch("user").await;
    assert_refused(&reply, StatusCode::CONFLICT, "idempotency_key_in_use");
    // WHEN its lock has run out
    rewrite(
        &app,
        &record,
        "SET lockedUntil = :until",
        &[(":until", n(now() - 1))],
    )
    .await;
    // THEN another request with the key is still refused, and the same request
    // takes the key over and acts (the role is already user: 200, unchanged)
    let reply = patch("admin").await;
    assert_refused(
        &reply,
        StatusCode::UNPROCESSABLE_ENTITY,
        "idempotency_key_reused",
    );
    let reply = patch("user").await;
    assert_answer(&reply, StatusCode::OK, false);
    assert_eq!(reply.json, first.json);
    let record = records(&app).await.remove(0);
    assert_eq!(record["state"].as_s().unwrap(), "done");
    let reply = patch("user").await;
    assert_replays(&reply, &first);
}

/// The lock of the requests that die in these tests: a retry may take their
/// key over a second or two later instead of a minute.
const SHORT_LOCK: Duration = Duration::from_secs(1);

/// `app`'s handlers reaching the table through a proxy that withholds the
/// answer to their first transaction, holding keys for [`SHORT_LOCK`].
async fn dying(env: &Env, app: &TestApp) -> (TestApp, LostCommit) {
    let proxy = LostCommit::start(&env.dynamodb_url).await;
    let mut dying = app.through(env.dynamodb_client_at(&proxy.url));
    dying.state.idempotency_lock = SHORT_LOCK;
    (dying, proxy)
}

/// Runs `request` until its transaction committed, then drops it (the
/// function died before answering); returns when its claim's lock ran out.
async fn die_after_commit(proxy: &LostCommit, request: impl Future<Output = Reply>) {
    tokio::select! {
        () = proxy.committed() => {}
        reply = request => panic!("answered despite the fault: {reply:?}"),
    }
    // A retry now would find the claim held: wait until its lock ran out
    // (the claim was taken before the commit, so no later than now).
    let claimed_by = now();
    for _ in 0..50 {
        if now() > claimed_by + SHORT_LOCK.as_secs() as i64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(now() > claimed_by + SHORT_LOCK.as_secs() as i64);
}

/// Asserts the test's one idempotency record holds `status` as its answer,
/// committed with the change before the request died, in `state`: `done`, or
/// `in_progress` for a deletion (whose cascade went on after it).
async fn assert_answer_committed(app: &TestApp, status: u16, state: &str) {
    let kept = records(app).await;
    assert_eq!(kept.len(), 1);
    assert_eq!(
        (
            kept[0]["state"].as_s().unwrap().as_str(),
            kept[0]["answerStatus"].as_n().unwrap().as_str()
        ),
        (state, status.to_string().as_str()),
        "the answer was committed with the change"
    );
}

async fn an_add_that_died_after_its_commit_is_replayed(env: &'static Env) {
    let (app, c, admin) = given(env, Spec::default()).await;
    let (dying, proxy) = dying(env, &app).await;
    let user = uuid::Uuid::new_v4().to_string();
    let before = audit_entries(&app, &c.id).await;
    // GIVEN a keyed add whose function died right after its transaction committed
    die_after_commit(&proxy, add(&admin, &dying, &c.id, as_user(&user), "lost")).await;
    assert_answer_committed(&app, 201, "done").await;
    // WHEN it is retried after its lock ran out
    let retry = add(&admin, &app, &c.id, as_user(&user), "lost").await;
    // THEN the retry gets the answer of the add that happened (not 409
    // already_member), and the member was added once
    assert_answer(&retry, StatusCode::CREATED, true);
    assert_eq!(retry.json, json!({"message": "acknowledged"}));
    assert_eq!(member_count(&app, &c.id).await, 2);
    let entries = audit_entries(&app, &c.id).await;
    assert_eq!(entries.len(), before.len() + 1);
    assert_eq!(
        count_of(&entries, "member.added"),
        count_of(&before, "member.added") + 1
    );
    let reply = app.get(&format!("/user/{user}/customer")).await;
    assert_eq!(
        (reply.status, reply.json["role"].clone()),
        (StatusCode::OK, json!("user"))
    );
}

async fn a_role_change_that_died_after_its_commit_is_replayed(env: &'static Env) {
    let (app, c, admin) = given(env, Spec::with_members(1)).await;
    let (dying, proxy) = dying(env, &app).await;
    let member = &c.members[0];
    let path = format!("/customer/{}/member/{member}", c.id);
    let audited = audit_entries(&app, &c.id).await.len();
    let to_user = || Some(json!({"role": "user"}));
    // GIVEN a keyed change of an admin to user whose function died right after
    // its commit
    let request = keyed(&admin, &dying, Method::PATCH, &path, to_user(), "lost");
    die_after_commit(&proxy, request).await;
    assert_answer_committed(&app, 200, "done").await;
    // and another admin making the member an admin again meanwhile
    let other = Who::user("other-admin");
    let back = other
        .send(
            &app,
            Method::PATCH,
            &path,
            Some(json!({"role": "admin"})),
            &[],
        )
        .await;
    assert_eq!(back.status, StatusCode::OK);
    // WHEN the first change is retried after its lock ran out
    let retry = keyed(&admin, &app, Method::PATCH, &path, to_user(), "lost").await;
    // THEN it gets the first change's answer and does not undo the other
    // admin's change
    assert_answer(&retry, StatusCode::OK, true);
    assert_eq!(
        (retry.json["userID"].clone(), retry.json["role"].clone()),
        (json!(member), json!("user"))
    );
    let reply = app.get(&format!("/user/{member}/customer")).await;
    assert_eq!(reply.json["role"], "admin");
    let entries = audit_entries(&app, &c.id).await;
    assert_eq!(entries.len(), audited + 2, "two changes, each once");
    assert_eq!(count_of(&entries, "member.role_changed"), 2);
    assert_eq!(member_count(&app, &c.id).await, 2);
}

async fn a_deletion_that_died_after_its_commit_is_replayed(env: &'static Env) {
    let (app, c, admin) = given(env, Spec::with_members(2)).await;
    let (dying, proxy) = dying(env, &app).await;
    let path = format!("/customer/{}", c.id);
    let audited = audit_entries(&app, &c.id).await.len();
    // GIVEN a keyed DELETE whose function died right after its first
    // transaction (the customer marked deleting) committed
    let request = keyed(&admin, &dying, Method::DELETE, &path, None, "lost");
    die_after_commit(&proxy, request).await;
    assert_answer_committed(&app, 204, "in_progress").await;
    assert_eq!(app.get(&path).await.status, StatusCode::NOT_FOUND);
    // and the stream consumer finishing the cascade it began
    let id = billing::domain::CustomerId::parse(&c.id).unwrap();
    let deleted = app
        .state
        .cascade
        .run(&id, &billing_tests::by_test())
        .await
        .expect("finish the cascade");
    assert!(deleted.record_removed);
    // WHEN the DELETE is retried after its lock ran out
    let retry = keyed(&admin, &app, Method::DELETE, &path, None, "lost").await;
    // THEN it gets the deletion's answer (not 404 for its own success), and
    // the customer was deleted once
    assert_answer(&retry, StatusCode::NO_CONTENT, true);
    let entries = audit_entries(&app, &c.id).await;
    assert_eq!(entries.len(), audited + 1);
    assert_eq!(count_of(&entries, "customer.deleted"), 1);
    let unkeyed = admin.send(&app, Method::DELETE, &path, None, &[]).await;
    assert_refused(&unkeyed, StatusCode::NOT_FOUND, "customer_not_found");
}

async fn a_request_whose_claim_was_taken_over_commits_nothing(env: &'static Env) {
    use billing::store::{Answer, Answering, Claim, ClaimRequest, Claimed};
    let (app, c, _) = given(env, Spec::default()).await;
    let id = billing::domain::CustomerId::parse(&c.id).unwrap();
    // GIVEN a key claimed by a retry (claim B) while the first request
    // (claim A) still ran past its lock
    let (late, retry) = (
        Claimed::new("scope".into(), "claim-a".into()),
        ClaimRequest {
            scope: "scope",
            fingerprint: "f",
            claim_id: "claim-b",
            now: now(),
            lock_seconds: 60,
            keep_seconds: 3600,
        },
    );
    assert_eq!(
        app.store.claim_idempotency(&retry).await.unwrap(),
        Claim::Acquired
    );
    // WHEN the first request commits its change with its answer
    let answer = |_: &()| Answer {
        status: 201,
        body: "{}".into(),
    };
    let member = billing::domain::Member {
        role_id: uuid::Uuid::new_v4(),
        user_id: billing::domain::UserId::parse(&uuid::Uuid::new_v4().to_string()).unwrap(),
        role: billing::domain::Role::User,
        joined_at: billing::domain::now(),
    };
    let answering = Answering::new(&late, &answer);
    let err = app
        .store
        .add_members_answered(&id, &[member], &billing_tests::by_test(), Some(&answering))
        .await
        .unwrap_err();
    // THEN nothing commits: the retry that holds the key acts
    assert!(
        matches!(err, billing::store::StoreError::IdempotencyClaimLost),
        "{err:?}"
    );
    assert!(!late.answered());
    assert_eq!(member_count(&app, &c.id).await, 1);
    let kept = records(&app).await;
    assert_eq!(
        (
            kept[0]["claimID"].as_s().unwrap().as_str(),
            kept[0]["state"].as_s().unwrap().as_str()
        ),
        ("claim-b", "in_progress")
    );
    // and the first request's release leaves the retry's claim alone
    assert!(!app.store.release_idempotency(&late).await.unwrap());
    assert_eq!(records(&app).await.len(), 1);
}

async fn an_add_whose_commit_reply_was_lost_is_replayed(env: &'static Env) {
    let (app, c, admin) = given(env, Spec::default()).await;
    // GIVEN handlers whose DynamoDB calls time out after a second, without
    // retries, behind a proxy that withholds the reply to their transaction
    let proxy = LostCommit::start(&env.dynamodb_url).await;
    let timeouts = billing::aws::TimeoutConfig::builder()
        .operation_attempt_timeout(Duration::from_secs(1))
        .build();
    let config = aws_sdk_dynamodb::config::Builder::from(&env.sdk)
        .endpoint_url(&proxy.url)
        .timeout_config(timeouts)
        .retry_config(aws_sdk_dynamodb::config::retry::RetryConfig::disabled())
        .build();
    let impatient = app.through(aws_sdk_dynamodb::Client::from_conf(config));
    let user = uuid::Uuid::new_v4().to_string();
    // WHEN a keyed add commits and its reply is lost: the request fails (5xx)
    let failed = add(&admin, &impatient, &c.id, as_user(&user), "timeout").await;
    assert_refused(&failed, StatusCode::INTERNAL_SERVER_ERROR, "database_error");
    // THEN the answer committed with the add is not released with the 5xx
    assert_answer_committed(&app, 201, "done").await;
    // and a retry, at once, gets it: the member was added once
    let retry = add(&admin, &app, &c.id, as_user(&user), "timeout").await;
    assert_answer(&retry, StatusCode::CREATED, true);
    assert_eq!(member_count(&app, &c.id).await, 2);
}
