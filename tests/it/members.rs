//! List, add and remove members, and the invariants under concurrency.

use billing_tests::Env;
use billing_tests::app::{Spec, TestApp};
use futures_util::future::join_all;
use http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::TestFn;

pub fn trials() -> Vec<(&'static str, TestFn)> {
    crate::trials![
        list_members_orders_owner_admins_users_and_pages,
        list_members_rejects_bad_input_and_unknown_customers,
        add_member_adds_and_counts,
        add_member_rejects_bad_bodies,
        add_member_conflicts_and_not_found,
        remove_member_statuses,
        race_one_user_added_to_twenty_customers,
        race_many_users_added_to_one_customer,
        race_adds_and_removes_keep_member_count_exact,
        race_delete_against_adds_leaves_no_orphans,
        race_two_deletes_of_one_customer,
    ]
}

/// Every item left in a customer's partition.
pub async fn items_of(app: &TestApp, customer: &str) -> usize {
    partition_items(app, customer, None).await
}

/// How many of a customer's items are its record or a member item.
pub async fn records_of(app: &TestApp, customer: &str) -> usize {
    partition_items(app, customer, Some(["customer", "member"])).await
}

/// How many items a customer's partition holds, only of `types` when given.
async fn partition_items(app: &TestApp, customer: &str, types: Option<[&str; 2]>) -> usize {
    use aws_sdk_dynamodb::types::AttributeValue::S;
    let id = billing::domain::CustomerId::parse(customer).unwrap();
    let mut query = app
        .store
        .client()
        .query()
        .table_name(app.store.table_name())
        .key_condition_expression("PK = :pk")
        .expression_attribute_values(":pk", S(billing::store::table::customer_pk(&id)))
        .consistent_read(true);
    if let Some([a, b]) = types {
        query = query
            .filter_expression("#type IN (:a, :b)")
            .expression_attribute_names("#type", "type")
            .expression_attribute_values(":a", S(a.into()))
            .expression_attribute_values(":b", S(b.into()));
    }
    let out = query.send().await.unwrap();
    out.items.unwrap_or_default().len()
}

/// Every member, through numbered pages of `limit`: user ids in listing order.
pub async fn member_pages(app: &TestApp, customer: &str, limit: u32) -> Vec<String> {
    let first = app
        .get(&format!("/customer/{customer}/members?limit={limit}"))
        .await;
    let pages = first.json["pages"].as_u64().unwrap();
    let mut ids = Vec::new();
    for page in 1..=pages {
        let reply = app
            .get(&format!(
                "/customer/{customer}/members?page={page}&limit={limit}"
            ))
            .await;
        assert_eq!(reply.status, StatusCode::OK);
        for m in reply.json["members"].as_array().unwrap() {
            ids.push(m["userID"].as_str().unwrap().to_owned());
        }
    }
    ids
}

/// Two concurrent DELETEs of one customer: 204 and 204, or 204 and 404.
pub fn assert_deleted_by_one_or_both(a: &billing_tests::Reply, b: &billing_tests::Reply) {
    let mut statuses = [a.status, b.status];
    statuses.sort();
    assert!(
        statuses == [StatusCode::NO_CONTENT, StatusCode::NO_CONTENT]
            || statuses == [StatusCode::NO_CONTENT, StatusCode::NOT_FOUND],
        "{statuses:?}"
    );
}

fn member_path(customer: &str) -> String {
    format!("/customer/{customer}/member")
}

async fn add(app: &TestApp, customer: &str, user: &str, role: Value) -> StatusCode {
    app.admin(
        Method::POST,
        &member_path(customer),
        Some(json!({"userID": user, "role": role})),
    )
    .await
    .status
}

async fn member_count(app: &TestApp, customer: &str) -> u64 {
    app.get(&format!("/customer/{customer}")).await.json["memberCount"]
        .as_u64()
        .unwrap()
}

async fn list_members_orders_owner_admins_users_and_pages(env: &'static Env) {
    let app = TestApp::new(env).await;
    let c = app.customer(Spec::with_members(4)).await;
    // Join later through the API: a user, then an admin (legacy integer role).
    let late_user = uuid::Uuid::new_v4().to_string();
    let late_admin = uuid::Uuid::new_v4().to_string();
    assert_eq!(
        add(&app, &c.id, &late_user, json!("user")).await,
        StatusCode::CREATED
    );
    assert_eq!(
        add(&app, &c.id, &late_admin, json!(1)).await,
        StatusCode::CREATED
    );

    let reply = app
        .get(&format!("/customer/{}/members?limit=100", c.id))
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let members = reply.json["members"].as_array().unwrap();
    let order: Vec<(&str, &str)> = members
        .iter()
        .map(|m| (m["userID"].as_str().unwrap(), m["role"].as_str().unwrap()))
        .collect();
    let expected = vec![
        (c.owner.as_str(), "owner"),
        (c.members[0].as_str(), "admin"),
        (late_admin.as_str(), "admin"),
        (c.members[1].as_str(), "user"),
        (c.members[2].as_str(), "user"),
        (c.members[3].as_str(), "user"),
        (late_user.as_str(), "user"),
    ];
    assert_eq!(order, expected);
    assert_eq!(
        (reply.json["items"].as_u64(), reply.json["pages"].as_u64()),
        (Some(7), Some(1))
    );
    for m in members {
        uuid::Uuid::parse_str(m["roleID"].as_str().unwrap()).unwrap();
        assert!(m["joinedAt"].as_str().unwrap().ends_with('Z'));
    }

    let mut walked = Vec::new();
    for page in 1..=3 {
        let reply = app
            .get(&format!("/customer/{}/members?page={page}&limit=3", c.id))
            .await;
        assert_eq!(
            (reply.json["items"].as_u64(), reply.json["pages"].as_u64()),
            (Some(7), Some(3))
        );
        walked.extend(
            reply.json["members"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["userID"].as_str().unwrap().to_owned()),
        );
    }
    assert_eq!(
        walked,
        expected
            .iter()
            .map(|(u, _)| (*u).to_owned())
            .collect::<Vec<_>>()
    );
    let past = app
        .get(&format!("/customer/{}/members?page=4&limit=3", c.id))
        .await;
    assert_eq!(past.json, json!({"members": [], "items": 7, "pages": 3}));
    let default = app.get(&format!("/customer/{}/members", c.id)).await;
    assert_eq!(default.json["members"].as_array().unwrap().len(), 7);
}

async fn list_members_rejects_bad_input_and_unknown_customers(env: &'static Env) {
    let app = TestApp::new(env).await;
    let c = app.customer(Spec::default()).await;
    for (path, code) in [
        ("/customer/bad/members".to_owned(), "invalid_customer_id"),
        (format!("/customer/{}/members?page=0", c.id), "invalid_page"),
        (
            format!("/customer/{}/members?limit=101", c.id),
            "invalid_limit",
        ),
    ] {
        let reply = app.get(&path).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{path}");
        assert_eq!(reply.error_code(), code);
    }
    let reply = app
        .get(&format!("/customer/{}/members", uuid::Uuid::new_v4()))
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.error_code(), "customer_not_found");
}

async fn add_member_adds_and_counts(env: &'static Env) {
    let app = TestApp::new(env).await;
    let c = app.customer(Spec::default()).await;
    let user = uuid::Uuid::new_v4().to_string();
    let reply = app
        .admin(
            Method::POST,
            &member_path(&c.id),
            Some(json!({"userID": user, "role": "admin"})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED);
    assert_eq!(reply.json, json!({"message": "acknowledged"}));
    assert_eq!(member_count(&app, &c.id).await, 2);
    let list = app.get("/customers").await;
    assert_eq!(list.json["customers"][0]["memberCount"], 2);
    // Orphaned customers accept members too.
    app.seed(json!({"customers": [{"id": "0e0e0e0e-5633-4b16-bbf0-5ca22ef8ea2e", "name": "Orphan", "tierName": "free",
        "tierID": "e1f2a3b4-5633-4b16-bbf0-5ca22ef8ea2e", "subscriptionStatus": "canceled",
        "createdAt": "2026-03-01T00:00:00Z", "ownerUserID": "00000000-0000-0000-0000-000000000000", "members": []}]}))
        .await;
    assert_eq!(
        add(
            &app,
            "0e0e0e0e-5633-4b16-bbf0-5ca22ef8ea2e",
            &uuid::Uuid::new_v4().to_string(),
            json!(2)
        )
        .await,
        StatusCode::CREATED
    );
    assert_eq!(
        member_count(&app, "0e0e0e0e-5633-4b16-bbf0-5ca22ef8ea2e").await,
        1
    );
}

async fn add_member_rejects_bad_bodies(env: &'static Env) {
    let app = TestApp::new(env).await;
    let c = app.customer(Spec::default()).await;
    let user = uuid::Uuid::new_v4().to_string();
    for (body, code) in [
        (
            json!({"userID": user, "role": "owner"}),
            "owner_role_reserved",
        ),
        (json!({"userID": user, "role": 0}), "owner_role_reserved"),
        (json!({"userID": user, "role": "root"}), "invalid_role"),
        (json!({"userID": user}), "missing_field"),
        (json!({"userID": "x", "role": "user"}), "invalid_user_id"),
        (json!([1, 2]), "malformed_body"),
        (json!("text"), "malformed_body"),
    ] {
        let reply = app
            .admin(Method::POST, &member_path(&c.id), Some(body.clone()))
            .await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(reply.error_code(), code, "{body}");
    }
    let auth = format!(
        "Bearer {}",
        billing_tests::app::token("u", &["billing_admin"], 60)
    );
    let raw = |content_type: Option<&str>, body: &str| {
        let mut b =
            http::Request::post(format!("{}{}", billing_tests::app::API, member_path(&c.id)))
                .header("authorization", &auth);
        if let Some(ct) = content_type {
            b = b.header("content-type", ct);
        }
        (b, body.as_bytes().to_vec())
    };
    for (ct, body, code) in [
        (Some("application/json"), "{not json", "malformed_body"),
        (Some("application/json"), "", "malformed_body"),
        (
            Some("text/plain"),
            r#"{"userID":"9de7068a-2422-46c1-b718-4a95a91cd559","role":"user"}"#,
            "unsupported_content_type",
        ),
        (
            None,
            r#"{"userID":"9de7068a-2422-46c1-b718-4a95a91cd559","role":"user"}"#,
            "unsupported_content_type",
        ),
    ] {
        let (builder, bytes) = raw(ct, body);
        let reply = app.raw(builder, bytes).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{ct:?} {body}");
        assert_eq!(reply.error_code(), code);
    }
    let (builder, bytes) = raw(
        Some("application/json; charset=utf-8"),
        &format!(r#"{{"userID":"{user}","role":"user"}}"#),
    );
    assert_eq!(app.raw(builder, bytes).await.status, StatusCode::CREATED);
    assert_eq!(
        member_count(&app, &c.id).await,
        2,
        "rejected requests added nobody"
    );
}

async fn add_member_conflicts_and_not_found(env: &'static Env) {
    let app = TestApp::new(env).await;
    let a = app.customer(Spec::with_members(1)).await;
    let b = app.customer(Spec::default()).await;
    for (customer, user) in [
        (&a.id, &a.members[0]),
        (&a.id, &a.owner),
        (&b.id, &a.members[0]),
        (&b.id, &a.owner),
    ] {
        let reply = app
            .admin(
                Method::POST,
                &member_path(customer),
                Some(json!({"userID": user, "role": "user"})),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CONFLICT);
        assert_eq!(reply.error_code(), "already_member");
    }
    let reply = app
        .admin(
            Method::POST,
            &member_path(&uuid::Uuid::new_v4().to_string()),
            Some(json!({"userID": uuid::Uuid::new_v4(), "role": "user"})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.error_code(), "customer_not_found");
    let reply = app
        .admin(
            Method::POST,
            "/customer/bad/member",
            Some(json!({"userID": uuid::Uuid::new_v4(), "role": "user"})),
        )
        .await;
    assert_eq!(reply.error_code(), "invalid_customer_id");
    assert_eq!(
        (
            member_count(&app, &a.id).await,
            member_count(&app, &b.id).await
        ),
        (2, 1)
    );
}

async fn remove_member_statuses(env: &'static Env) {
    let app = TestApp::new(env).await;
    let a = app.customer(Spec::with_members(2)).await;
    let b = app.customer(Spec::with_members(1)).await;
    let remove = |customer: String, user: String| {
        let app = &app;
        async move {
            app.admin(
                Method::DELETE,
                &format!("/customer/{customer}/member/{user}"),
                None,
            )
            .await
        }
    };
    let reply = remove(a.id.clone(), a.members[1].clone()).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    assert_eq!(reply.json, Value::Null);
    assert_eq!(member_count(&app, &a.id).await, 2);
    // The removed user may join elsewhere now.
    assert_eq!(
        add(&app, &b.id, &a.members[1], json!("user")).await,
        StatusCode::CREATED
    );

    for (customer, user, status, code) in [
        (
            a.id.clone(),
            a.owner.clone(),
            StatusCode::CONFLICT,
            "owner_not_removable",
        ),
        (
            a.id.clone(),
            a.members[1].clone(),
            StatusCode::NOT_FOUND,
            "member_not_found",
        ),
        (
            a.id.clone(),
            b.members[0].clone(),
            StatusCode::NOT_FOUND,
            "member_not_found",
        ),
        (
            a.id.clone(),
            uuid::Uuid::new_v4().to_string(),
            StatusCode::NOT_FOUND,
            "member_not_found",
        ),
        (
            uuid::Uuid::new_v4().to_string(),
            a.members[0].clone(),
            StatusCode::NOT_FOUND,
            "customer_not_found",
        ),
        (
            "bad".into(),
            a.members[0].clone(),
            StatusCode::BAD_REQUEST,
            "invalid_customer_id",
        ),
        (
            a.id.clone(),
            "bad".into(),
            StatusCode::BAD_REQUEST,
            "invalid_user_id",
        ),
    ] {
        let reply = remove(customer.clone(), user.clone()).await;
        assert_eq!(reply.status, status, "{customer} {user}");
        assert_eq!(reply.error_code(), code);
    }
    assert_eq!(
        (
            member_count(&app, &a.id).await,
            member_count(&app, &b.id).await
        ),
        (2, 3)
    );
}

async fn race_one_user_added_to_twenty_customers(env: &'static Env) {
    let app = TestApp::new(env).await;
    let customers = join_all((0..20).map(|_| app.customer(Spec::default()))).await;
    let user = uuid::Uuid::new_v4().to_string();
    let statuses = join_all(
        customers
            .iter()
            .map(|c| add(&app, &c.id, &user, json!("user"))),
    )
    .await;
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::CREATED)
            .count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::CONFLICT)
            .count(),
        19,
        "{statuses:?}"
    );
    let counts = join_all(customers.iter().map(|c| member_count(&app, &c.id))).await;
    assert_eq!(counts.iter().sum::<u64>(), 21, "{counts:?}");
    let winner = &customers[statuses
        .iter()
        .position(|s| *s == StatusCode::CREATED)
        .unwrap()];
    let user_id = billing::domain::UserId::parse(&user).unwrap();
    let (belongs_to, _) = app.store.membership_of(&user_id).await.unwrap().unwrap();
    assert_eq!(belongs_to.to_string(), winner.id);
}

async fn race_many_users_added_to_one_customer(env: &'static Env) {
    let app = TestApp::new(env).await;
    let c = app.customer(Spec::default()).await;
    let users: Vec<String> = (0..30).map(|_| uuid::Uuid::new_v4().to_string()).collect();
    let statuses = join_all(users.iter().map(|u| add(&app, &c.id, u, json!("user")))).await;
    assert!(
        statuses.iter().all(|s| *s == StatusCode::CREATED),
        "{statuses:?}"
    );
    assert_eq!(member_count(&app, &c.id).await, 31);
    let listed = app
        .get(&format!("/customer/{}/members?limit=100", c.id))
        .await;
    assert_eq!(listed.json["members"].as_array().unwrap().len(), 31);
    assert_eq!(listed.json["items"], 31);
}

async fn race_adds_and_removes_keep_member_count_exact(env: &'static Env) {
    let app = TestApp::new(env).await;
    let c = app.customer(Spec::with_members(20)).await;
    let newcomers: Vec<String> = (0..20).map(|_| uuid::Uuid::new_v4().to_string()).collect();
    let adds = newcomers
        .iter()
        .map(|u| async { add(&app, &c.id, u, json!("user")).await == StatusCode::CREATED });
    let remove = |u: &String| {
        let path = format!("/customer/{}/member/{u}", c.id);
        let app = &app;
        async move { app.admin(Method::DELETE, &path, None).await.status == StatusCode::NO_CONTENT }
    };
    let removes = c.members.iter().map(remove);
    // Each removal is sent twice at once: exactly one of the pair succeeds.
    let removes_again = c.members.iter().map(remove);
    let (added, removed, removed_again) =
        futures_util::join!(join_all(adds), join_all(removes), join_all(removes_again));
    let added = added.iter().filter(|ok| **ok).count() as u64;
    let removed = (removed.iter().filter(|ok| **ok).count()
        + removed_again.iter().filter(|ok| **ok).count()) as u64;
    assert_eq!((added, removed), (20, 20));
    assert_eq!(member_count(&app, &c.id).await, 21);
    assert_eq!(
        records_of(&app, &c.id).await,
        1 + 21,
        "record + one member item per counted member"
    );
    // The members' directory agrees: numbered pages of 4 hold each member once.
    let paged = member_pages(&app, &c.id, 4).await;
    let all = app
        .get(&format!("/customer/{}/members?limit=100", c.id))
        .await;
    let listed: Vec<String> = all.json["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["userID"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(paged, listed);
    assert_eq!(paged.len(), 21);
}

async fn race_delete_against_adds_leaves_no_orphans(env: &'static Env) {
    let app = TestApp::new(env).await;
    let c = app.customer(Spec::with_members(30)).await;
    let users: Vec<String> = (0..20).map(|_| uuid::Uuid::new_v4().to_string()).collect();
    let adds = join_all(users.iter().map(|u| add(&app, &c.id, u, json!("user"))));
    let path = format!("/customer/{}", c.id);
    let delete = app.admin(Method::DELETE, &path, None);
    let (statuses, deleted) = futures_util::join!(adds, delete);
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert!(
        statuses
            .iter()
            .all(|s| *s == StatusCode::CREATED || *s == StatusCode::NOT_FOUND),
        "{statuses:?}"
    );
    assert_eq!(items_of(&app, &c.id).await, 0);
    for user in users.iter().chain(&c.members) {
        let user = billing::domain::UserId::parse(user).unwrap();
        assert_eq!(
            app.store.membership_of(&user).await.unwrap(),
            None,
            "no membership outlives its customer"
        );
    }
}

async fn race_two_deletes_of_one_customer(env: &'static Env) {
    let app = TestApp::new(env).await;
    let c = app.customer(Spec::with_members(120)).await;
    let path = format!("/customer/{}", c.id);
    let (a, b) = futures_util::join!(
        app.admin(Method::DELETE, &path, None),
        app.admin(Method::DELETE, &path, None)
    );
    crate::members::assert_deleted_by_one_or_both(&a, &b);
    assert_eq!(items_of(&app, &c.id).await, 0);
    let list = app.get("/customers").await;
    assert_eq!(
        list.json["items"], 0,
        "the counter was decremented exactly once"
    );
}
