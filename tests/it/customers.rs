//! List, get and delete customers against DynamoDB Local.

use std::collections::HashSet;

use billing_tests::Env;
use billing_tests::app::{Spec, TestApp};
use http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::TestFn;

pub fn trials() -> Vec<(&'static str, TestFn)> {
    crate::trials![
        get_customer_returns_the_full_record,
        get_customer_rejects_bad_ids_and_unknown_customers,
        list_customers_pages_in_stable_order_with_totals,
        list_customers_filters_by_tier_and_status,
        list_customers_rejects_bad_query_parameters,
        delete_customer_removes_it_and_every_membership,
        delete_customer_with_250_members,
        delete_customer_resumes_a_stopped_cascade,
        unknown_routes_and_methods_follow_the_error_convention,
        database_failures_are_500_without_internals,
    ]
}

async fn get_customer_returns_the_full_record(env: &'static Env) {
    let app = TestApp::new(env).await;
    let c = app.customer(Spec::with_members(2)).await;
    let reply = app.get(&format!("/customer/{}", c.id.to_uppercase())).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.headers["content-type"], "application/json");
    assert_eq!(
        reply.json,
        json!({
            "id": c.id, "name": format!("Customer {}", c.id), "createdAt": "2026-02-03T09:14:22Z",
            "tierName": "pro", "tierID": "e1f2a3b4-5633-4b16-bbf0-5ca22ef8ea2e",
            "subscriptionStatus": "active", "memberCount": 3, "ownerUserID": c.owner,
        })
    );
}

async fn get_customer_rejects_bad_ids_and_unknown_customers(env: &'static Env) {
    let app = TestApp::new(env).await;
    for bad in [
        "nope",
        "a1b2c3d45633",
        "a1b2c3d4-5633-4b16-bbf0-5ca22ef8ea2",
        "a1b2c3d4-5633-4b16-bbf0-5ca22ef8ea2eff",
    ] {
        let reply = app.get(&format!("/customer/{bad}")).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(reply.error_code(), "invalid_customer_id");
        assert_eq!(reply.json["error"]["param"], "customerID");
    }
    let reply = app
        .get(&format!("/customer/{}", uuid::Uuid::new_v4()))
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.error_code(), "customer_not_found");
}

/// The customer ids of a listing page, in order.
pub fn ids(reply: &Value) -> Vec<String> {
    reply["customers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .collect()
}

async fn list_customers_pages_in_stable_order_with_totals(env: &'static Env) {
    let app = TestApp::new(env).await;
    // 23 customers, several created in the same second: order is createdAt, then id.
    let mut expected = Vec::new();
    for i in 0..23 {
        let created_at = format!("2026-01-{:02}T00:00:00Z", 1 + (22 - i) / 3);
        let c = app
            .customer(Spec {
                created_at: created_at.clone(),
                members: i % 3,
                ..Spec::default()
            })
            .await;
        expected.push((created_at, c.id));
    }
    expected.sort();
    let expected: Vec<String> = expected.into_iter().map(|(_, id)| id).collect();

    let first = app.get("/customers").await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(
        (first.json["items"].as_u64(), first.json["pages"].as_u64()),
        (Some(23), Some(3))
    );
    assert_eq!(ids(&first.json), expected[..10]);
    let summary = &first.json["customers"][0];
    let keys: HashSet<&str> = summary
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        HashSet::from([
            "id",
            "name",
            "tierName",
            "subscriptionStatus",
            "memberCount",
            "createdAt",
            "ownerUserID"
        ])
    );

    let mut walked = Vec::new();
    for page in 1..=5 {
        let reply = app.get(&format!("/customers?page={page}&limit=5")).await;
        assert_eq!(
            (reply.json["items"].as_u64(), reply.json["pages"].as_u64()),
            (Some(23), Some(5))
        );
        walked.extend(ids(&reply.json));
    }
    assert_eq!(walked, expected, "pages neither overlap nor skip");

    let past = app.get("/customers?page=9&limit=5").await;
    assert_eq!(past.status, StatusCode::OK);
    assert_eq!(past.json, json!({"customers": [], "items": 23, "pages": 5}));
    let huge = app.get("/customers?page=4294967295&limit=100").await;
    assert_eq!(huge.json, json!({"customers": [], "items": 23, "pages": 1}));
    let all = app.get("/customers?limit=100").await;
    assert_eq!(ids(&all.json), expected);
}

async fn list_customers_filters_by_tier_and_status(env: &'static Env) {
    let app = TestApp::new(env).await;
    let mut made = Vec::new();
    for (tier, status) in [
        ("pro", "active"),
        ("pro", "past_due"),
        ("free", "active"),
        ("enterprise", "canceled"),
        ("pro", "active"),
        ("free", "trialing"),
    ] {
        made.push((
            tier,
            status,
            app.customer(Spec {
                tier,
                status,
                ..Spec::default()
            })
            .await
            .id,
        ));
    }
    let expect = |tier: Option<&str>, status: Option<&str>| -> HashSet<String> {
        made.iter()
            .filter(|(t, s, _)| tier.is_none_or(|x| x == *t) && status.is_none_or(|x| x == *s))
            .map(|(_, _, id)| id.clone())
            .collect()
    };
    for (query, tier, status) in [
        ("tierName=pro", Some("pro"), None),
        ("status=active", None, Some("active")),
        ("tierName=pro&status=active", Some("pro"), Some("active")),
        (
            "tierName=free&status=canceled",
            Some("free"),
            Some("canceled"),
        ),
        ("tierName=unknown", Some("unknown"), None),
        ("status=paused", None, Some("paused")),
    ] {
        let reply = app.get(&format!("/customers?{query}")).await;
        assert_eq!(reply.status, StatusCode::OK, "{query}");
        let want = expect(tier, status);
        assert_eq!(
            ids(&reply.json).into_iter().collect::<HashSet<_>>(),
            want,
            "{query}"
        );
        assert_eq!(
            reply.json["items"].as_u64(),
            Some(want.len() as u64),
            "{query}"
        );
        for c in reply.json["customers"].as_array().unwrap() {
            if let Some(t) = tier {
                assert_eq!(c["tierName"], t);
            }
            if let Some(s) = status {
                assert_eq!(c["subscriptionStatus"], s);
            }
        }
    }
}

async fn list_customers_rejects_bad_query_parameters(env: &'static Env) {
    let app = TestApp::new(env).await;
    for (query, param) in [
        ("page=0", "page"),
        ("page=-1", "page"),
        ("page=abc", "page"),
        ("page=", "page"),
        ("page=1.5", "page"),
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=x", "limit"),
        ("status=deleted", "status"),
        ("status=", "status"),
        ("status=ACTIVE", "status"),
        ("tierName=", "tierName"),
        ("tierName=a%23b", "tierName"),
        ("page=1&page=2", "page"),
    ] {
        let reply = app.get(&format!("/customers?{query}")).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{query}");
        reply.error_code();
        assert_eq!(reply.json["error"]["param"], param, "{query}");
    }
}

async fn delete_customer_removes_it_and_every_membership(env: &'static Env) {
    let app = TestApp::new(env).await;
    let c = app.customer(Spec::with_members(3)).await;
    let other = app.customer(Spec::default()).await;
    let reply = app
        .admin(Method::DELETE, &format!("/customer/{}", c.id), None)
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    assert_eq!(reply.json, Value::Null);

    app.assert_customer_not_found(&c.id).await;
    let second = app
        .admin(Method::DELETE, &format!("/customer/{}", c.id), None)
        .await;
    assert_eq!(second.status, StatusCode::NOT_FOUND);
    assert_eq!(second.error_code(), "customer_not_found");
    let list = app.get("/customers").await;
    assert_eq!(ids(&list.json), vec![other.id.clone()]);
    assert_eq!(list.json["items"], 1);
    // Former members (the owner too) can join another customer.
    for user in c.members.iter().chain([&c.owner]) {
        let reply = app
            .admin(
                Method::POST,
                &format!("/customer/{}/member", other.id),
                Some(json!({"userID": user, "role": "user"})),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED);
    }
    assert_eq!(
        crate::members::items_of(&app, &c.id).await,
        0,
        "no item of the customer is left"
    );

    let bad = app.admin(Method::DELETE, "/customer/xyz", None).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad.error_code(), "invalid_customer_id");
}

async fn delete_customer_with_250_members(env: &'static Env) {
    let app = TestApp::new(env).await;
    let c = app.customer(Spec::with_members(249)).await;
    assert_eq!(
        app.get(&format!("/customer/{}", c.id)).await.json["memberCount"],
        250
    );
    let reply = app
        .admin(Method::DELETE, &format!("/customer/{}", c.id), None)
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    assert_eq!(crate::members::items_of(&app, &c.id).await, 0);
    for user in c.members.iter().chain([&c.owner]) {
        let user = billing::domain::UserId::parse(user).unwrap();
        assert_eq!(app.store.membership_of(&user).await.unwrap(), None);
    }
}

async fn delete_customer_resumes_a_stopped_cascade(env: &'static Env) {
    let app = TestApp::new(env).await;
    let c = app.customer(Spec::with_members(60)).await;
    let id = billing::domain::CustomerId::parse(&c.id).unwrap();
    // GIVEN a cascade that stopped right after persisting the deleting state
    app.store
        .begin_deletion(&id, &billing_tests::by_test())
        .await
        .unwrap();
    // THEN the customer is already invisible and closed to new members
    assert_eq!(
        app.get(&format!("/customer/{}", c.id)).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.get("/customers").await.json,
        json!({"customers": [], "items": 0, "pages": 0})
    );
    let add = app
        .admin(
            Method::POST,
            &format!("/customer/{}/member", c.id),
            Some(json!({"userID": uuid::Uuid::new_v4(), "role": "user"})),
        )
        .await;
    assert_eq!(add.status, StatusCode::NOT_FOUND);
    // AND a retried DELETE finishes the job
    assert_eq!(
        app.admin(Method::DELETE, &format!("/customer/{}", c.id), None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(crate::members::items_of(&app, &c.id).await, 0);
    assert_eq!(app.store.find_customer(&id).await.unwrap(), None);
}

async fn unknown_routes_and_methods_follow_the_error_convention(env: &'static Env) {
    let app = TestApp::new(env).await;
    let id = uuid::Uuid::new_v4();
    for path in [
        "/nothing",
        "/customers/",
        "/customer",
        &format!("/customer/{id}/members/extra"),
    ] {
        let reply = app.get(path).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(reply.error_code(), "route_not_found");
    }
    for (method, path, allow) in [
        (Method::POST, "/customers".to_owned(), "GET"),
        (Method::PUT, format!("/customer/{id}"), "GET, DELETE"),
        (Method::PATCH, format!("/customer/{id}/member"), "POST"),
        (
            Method::GET,
            format!("/customer/{id}/member/{id}"),
            "DELETE, PATCH",
        ),
        (Method::PUT, format!("/user/{id}/customer"), "GET"),
        (Method::POST, format!("/customer/{id}/audit"), "GET"),
    ] {
        let reply = app.admin(method.clone(), &path, None).await;
        assert_eq!(
            reply.status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}"
        );
        assert_eq!(reply.error_code(), "method_not_allowed");
        assert_eq!(reply.headers["allow"], allow);
    }
}

async fn database_failures_are_500_without_internals(env: &'static Env) {
    // GIVEN handlers whose table cannot be reached (JWT auth needs no table)
    let dead = billing::aws::dynamodb(&env.sdk, Some(&billing_tests::sinks::closed_url()));
    let store = billing::store::Store::new(dead, "unreachable");
    let verifier = billing::auth::JwtVerifier::new(
        billing_tests::app::PUBLIC_KEY.as_bytes(),
        &billing_tests::app::jwt_settings(),
    )
    .unwrap();
    let state = billing::api::State::new(store, verifier, None).expect("randomness");
    let auth = format!(
        "Bearer {}",
        billing_tests::app::token("u", &["billing_admin"], 60)
    );
    let id = uuid::Uuid::new_v4();
    let body = json!({"userID": uuid::Uuid::new_v4(), "role": "user"}).to_string();
    for endpoint in billing::api::Endpoint::ALL {
        let method = endpoint.method();
        let path = endpoint
            .path()
            .replace("{customerID}", &id.to_string())
            .replace("{userID}", &id.to_string());
        let (parts, ()) = http::Request::builder()
            .method(method.clone())
            .uri(format!("{}{path}", billing_tests::app::API))
            .header("authorization", &auth)
            .header("content-type", "application/json")
            .body(())
            .unwrap()
            .into_parts();
        let request = billing::http::lambda_request(parts, body.clone().into_bytes());
        let reply = billing_tests::Reply::from(billing::api::dispatch(&state, request).await);
        // THEN a 500 in the convention, severity ERROR, nothing of DynamoDB in it
        assert_eq!(
            reply.status,
            StatusCode::INTERNAL_SERVER_ERROR,
            "{method} {path}"
        );
        assert_eq!(reply.error_code(), "database_error");
        let text = reply.json.to_string();
        assert!(
            !text.contains("127.0.0.1") && !text.to_lowercase().contains("dispatch"),
            "{text}"
        );
    }
}
