//! `PATCH /customer/{customerID}/member/{userID}` (role changes), `GET
//! /user/{userID}/customer`, and role changes racing removals and each other.

use billing::domain::UserId;
use billing_tests::Env;
use billing_tests::app::{Spec, TestApp, bearer};
use futures_util::future::join_all;
use http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::TestFn;
use crate::audit::{audit_entries, keys_of};
use crate::members::{member_pages, records_of};

pub fn trials() -> Vec<(&'static str, TestFn)> {
    crate::trials![
        a_role_change_answers_the_member_and_moves_it_in_the_listing,
        a_role_change_refuses_the_owner_strangers_and_gone_customers,
        setting_the_role_a_member_has_writes_nothing,
        a_users_customer_is_found_by_its_membership,
        a_member_of_a_customer_being_deleted_has_no_customer,
        a_membership_without_a_join_time_reads_it_from_the_member,
        race_role_changes_against_removals_keep_everything_exact,
        race_role_changes_of_one_member_serialize,
    ]
}

/// The path of a member.
pub fn member_path(customer: &str, user: &str) -> String {
    format!("/customer/{customer}/member/{user}")
}

/// `PATCH` of a member's role as an admin.
pub async fn patch_role(
    app: &TestApp,
    customer: &str,
    user: &str,
    role: Value,
) -> billing_tests::Reply {
    app.admin(
        Method::PATCH,
        &member_path(customer, user),
        Some(json!({ "role": role })),
    )
    .await
}

/// The members listing (one page of 100): `(userID, role, joinedAt)` in order.
pub async fn listing(app: &TestApp, customer: &str) -> Vec<(String, String, String)> {
    let reply = app
        .get(&format!("/customer/{customer}/members?limit=100"))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.json);
    reply.json["members"]
        .as_array()
        .expect("members")
        .iter()
        .map(|m| {
            (
                m["userID"].as_str().unwrap().to_owned(),
                m["role"].as_str().unwrap().to_owned(),
                m["joinedAt"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// `(userID, role)` of the members listing, in order.
async fn roles(app: &TestApp, customer: &str) -> Vec<(String, String)> {
    listing(app, customer)
        .await
        .into_iter()
        .map(|(u, r, _)| (u, r))
        .collect()
}

/// `items` and `pages` of the members listing with `query`.
async fn counts(app: &TestApp, customer: &str, query: &str) -> (Value, Value) {
    let reply = app
        .get(&format!("/customer/{customer}/members?{query}"))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.json);
    (reply.json["items"].clone(), reply.json["pages"].clone())
}

/// `memberCount` of an active customer.
pub async fn member_count(app: &TestApp, customer: &str) -> u64 {
    let reply = app.get(&format!("/customer/{customer}")).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.json);
    reply.json["memberCount"].as_u64().expect("memberCount")
}

/// A role change: (customer, user, role).
type Patch<'a> = (&'a str, &'a str, Value);

/// Each member's join time, by user id.
async fn join_times(app: &TestApp, customer: &str) -> std::collections::HashMap<String, String> {
    listing(app, customer)
        .await
        .into_iter()
        .map(|(u, _, j)| (u, j))
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(u, r)| ((*u).to_owned(), (*r).to_owned()))
        .collect()
}

async fn a_role_change_answers_the_member_and_moves_it_in_the_listing(env: &'static Env) {
    // GIVEN a customer: owner, m0 admin, m1..m3 users, joined one second apart
    let app = TestApp::new(env).await;
    let c = app.customer(Spec::with_members(4)).await;
    let m = &c.members;
    let joined = join_times(&app, &c.id).await;

    // WHEN m2 becomes an admin
    let reply = patch_role(&app, &c.id, &m[2], json!("admin")).await;
    // THEN 200 with exactly the member's id, new role and unchanged join time
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.json);
    assert_eq!(
        reply.json,
        json!({"userID": m[2], "role": "admin", "joinedAt": joined[&m[2]]})
    );
    assert_eq!(keys_of(&reply.json), ["joinedAt", "role", "userID"]);
    assert_eq!(reply.headers["cache-control"], "no-store");
    // and the listing puts it among the admins, by join time
    assert_eq!(
        roles(&app, &c.id).await,
        pairs(&[
            (&c.owner, "owner"),
            (&m[0], "admin"),
            (&m[2], "admin"),
            (&m[1], "user"),
            (&m[3], "user"),
        ])
    );

    // WHEN m0 becomes a user (legacy 2) and m3 an admin (legacy 1)
    let reply = patch_role(&app, &c.id, &m[0], json!(2)).await;
    assert_eq!(
        (reply.status, reply.json["role"].clone()),
        (StatusCode::OK, json!("user"))
    );
    let reply = patch_role(&app, &c.id, &m[3], json!(1)).await;
    assert_eq!(
        (reply.status, reply.json["role"].clone()),
        (StatusCode::OK, json!("admin"))
    );
    // THEN admins m2, m3 come first, then the users m0, m1, each group by join time
    let expected = pairs(&[
        (&c.owner, "owner"),
        (&m[2], "admin"),
        (&m[3], "admin"),
        (&m[0], "user"),
        (&m[1], "user"),
    ]);
    assert_eq!(roles(&app, &c.id).await, expected);
    // and join times stayed, the count too, and the members directory agrees:
    // numbered pages of 2 walk the same order
    for (user, _, at) in listing(&app, &c.id).await {
        assert_eq!(at, joined[&user], "{user} kept its join time");
    }
    assert_eq!(member_count(&app, &c.id).await, 5);
    assert_eq!(
        counts(&app, &c.id, "page=2&limit=2").await,
        (json!(5), json!(3))
    );
    let paged = member_pages(&app, &c.id, 2).await;
    assert_eq!(
        paged,
        expected.iter().map(|(u, _)| u.clone()).collect::<Vec<_>>()
    );
    // and the user's membership says the same
    let reply = app.get(&format!("/user/{}/customer", m[0])).await;
    assert_eq!(
        reply.json,
        json!({"customerID": c.id, "role": "user", "joinedAt": joined[&m[0]]})
    );
}

async fn a_role_change_refuses_the_owner_strangers_and_gone_customers(env: &'static Env) {
    let app = TestApp::new(env).await;
    let c = app.customer(Spec::with_members(2)).await;
    let other = app.customer(Spec::with_members(1)).await;
    let deleting = app.customer(Spec::with_members(1)).await;
    app.begin_deletion(&deleting.id).await;
    let before = roles(&app, &c.id).await;
    let audited = audit_entries(&app, &c.id).await.len();
    let stranger = uuid::Uuid::new_v4().to_string();
    let (id, owner, m1) = (c.id.as_str(), c.owner.as_str(), c.members[1].as_str());
    let nowhere = uuid::Uuid::new_v4().to_string();
    // (customer, user, role) refused with each status and code
    let cases: Vec<(StatusCode, &str, Vec<Patch>)> = vec![
        // the owner's role changes only by a transfer of ownership
        (
            StatusCode::CONFLICT,
            "owner_role_change",
            vec![(id, owner, json!("admin")), (id, owner, json!("user"))],
        ),
        // nobody is made an owner here
        (
            StatusCode::BAD_REQUEST,
            "owner_role_reserved",
            vec![
                (id, m1, json!("owner")),
                (id, m1, json!(0)),
                (id, owner, json!("owner")),
            ],
        ),
        (
            StatusCode::BAD_REQUEST,
            "invalid_role",
            vec![(id, m1, json!("root")), (id, m1, json!(3))],
        ),
        (
            StatusCode::BAD_REQUEST,
            "missing_field",
            vec![(id, m1, Value::Null)],
        ),
        // not a member of this customer
        (
            StatusCode::NOT_FOUND,
            "member_not_found",
            vec![
                (id, &stranger, json!("admin")),
                (id, &other.members[0], json!("admin")),
                (id, &other.owner, json!("admin")),
            ],
        ),
        // no such customer, or one being deleted
        (
            StatusCode::NOT_FOUND,
            "customer_not_found",
            vec![
                (&nowhere, m1, json!("admin")),
                (&deleting.id, &deleting.members[0], json!("admin")),
                (&deleting.id, &deleting.owner, json!("admin")),
            ],
        ),
        (
            StatusCode::BAD_REQUEST,
            "invalid_customer_id",
            vec![("bad", m1, json!("admin"))],
        ),
        (
            StatusCode::BAD_REQUEST,
            "invalid_user_id",
            vec![(id, "bad", json!("admin"))],
        ),
    ];
    for (status, code, requests) in cases {
        for (customer, user, role) in requests {
            let reply = patch_role(&app, customer, user, role.clone()).await;
            assert_eq!(
                reply.status, status,
                "{customer} {user} {role}: {:?}",
                reply.json
            );
            assert_eq!(reply.error_code(), code, "{customer} {user} {role}");
        }
    }
    // A body that is not an object, or not JSON.
    let reply = app
        .admin(
            Method::PATCH,
            &member_path(&c.id, &c.members[1]),
            Some(json!(["admin"])),
        )
        .await;
    assert_eq!(reply.error_code(), "malformed_body");
    let reply = app
        .call(
            Method::PATCH,
            &member_path(&c.id, &c.members[1]),
            &[("authorization", &bearer("u", &["billing_admin"]))],
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    // Without billing_admin: 403 before anything.
    let reply = app
        .call(
            Method::PATCH,
            &member_path(&c.id, &c.members[1]),
            &[("authorization", &bearer("u", &["support"]))],
            Some(json!({"role": "admin"})),
        )
        .await;
    assert_eq!(
        (reply.status, reply.error_code()),
        (StatusCode::FORBIDDEN, "forbidden")
    );
    // THEN nothing changed anywhere
    assert_eq!(roles(&app, &c.id).await, before);
    assert_eq!(audit_entries(&app, &c.id).await.len(), audited);
    assert_eq!(member_count(&app, &c.id).await, 3);
    let deleting_members = app
        .store
        .membership_of(&UserId::parse(&deleting.members[0]).unwrap())
        .await
        .unwrap();
    assert_eq!(
        deleting_members.map(|(_, role)| role.as_str()),
        Some("admin"),
        "the deleting customer's member kept its role"
    );
}

async fn setting_the_role_a_member_has_writes_nothing(env: &'static Env) {
    let app = TestApp::new(env).await;
    let c = app.customer(Spec::with_members(2)).await;
    let before = listing(&app, &c.id).await;
    let audited = audit_entries(&app, &c.id).await;
    // m0 is an admin, m1 a user: asking for what they have is 200, as they are
    for (user, role) in [(&c.members[0], json!("admin")), (&c.members[1], json!(2))] {
        let reply = patch_role(&app, &c.id, user, role).await;
        assert_eq!(reply.status, StatusCode::OK);
        let (_, have, joined) = before.iter().find(|(u, _, _)| u == user).unwrap();
        assert_eq!(
            reply.json,
            json!({"userID": user, "role": have, "joinedAt": joined})
        );
    }
    assert_eq!(listing(&app, &c.id).await, before);
    assert_eq!(
        audit_entries(&app, &c.id).await,
        audited,
        "no audit entry for a change that changed nothing"
    );
}

async fn a_users_customer_is_found_by_its_membership(env: &'static Env) {
    let app = TestApp::new(env).await;
    let c = app.customer(Spec::with_members(2)).await;
    let joined = join_times(&app, &c.id).await;
    for (user, role) in [
        (&c.owner, "owner"),
        (&c.members[0], "admin"),
        (&c.members[1], "user"),
    ] {
        let reply = app.get(&format!("/user/{user}/customer")).await;
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.json);
        assert_eq!(
            reply.json,
            json!({"customerID": c.id, "role": role, "joinedAt": joined[user]})
        );
        assert_eq!(keys_of(&reply.json), ["customerID", "joinedAt", "role"]);
    }
    // A user added through the API, answered in lower case whatever the case asked.
    let user = uuid::Uuid::new_v4().to_string();
    let reply = app
        .admin(
            Method::POST,
            &format!("/customer/{}/member", c.id),
            Some(json!({"userID": user, "role": "user"})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED);
    let reply = app
        .get(&format!("/user/{}/customer", user.to_uppercase()))
        .await;
    assert_eq!(
        (
            reply.status,
            reply.json["customerID"].clone(),
            reply.json["role"].clone()
        ),
        (StatusCode::OK, json!(c.id), json!("user"))
    );
    let at = reply.json["joinedAt"].as_str().unwrap();
    let listed = listing(&app, &c.id).await;
    assert_eq!(
        listed
            .iter()
            .find(|(u, _, _)| *u == user)
            .map(|(_, _, j)| j.as_str()),
        Some(at),
        "the same join time as the members listing"
    );
    // Removed: in no customer.
    let reply = app
        .admin(Method::DELETE, &member_path(&c.id, &user), None)
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    for nobody in [user, uuid::Uuid::new_v4().to_string()] {
        let reply = app.get(&format!("/user/{nobody}/customer")).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND);
        assert_eq!(reply.error_code(), "membership_not_found");
    }
    let reply = app.get("/user/not-a-uuid/customer").await;
    assert_eq!(
        (reply.status, reply.error_code()),
        (StatusCode::BAD_REQUEST, "invalid_user_id")
    );
}

async fn a_member_of_a_customer_being_deleted_has_no_customer(env: &'static Env) {
    // GIVEN a customer whose deletion began (and stopped before its members went)
    let app = TestApp::new(env).await;
    let c = app.customer(Spec::with_members(1)).await;
    app.begin_deletion(&c.id).await;
    assert_eq!(
        app.get(&format!("/customer/{}", c.id)).await.status,
        StatusCode::NOT_FOUND
    );
    // THEN its owner and members are in no customer: a customer being deleted is
    // gone for every endpoint but DELETE (and its audit trail)
    for user in [&c.owner, &c.members[0]] {
        let reply = app.get(&format!("/user/{user}/customer")).await;
        assert_eq!(
            reply.status,
            StatusCode::NOT_FOUND,
            "{user} answered as a member of the customer being deleted: {}",
            reply.json
        );
        assert_eq!(reply.error_code(), "membership_not_found");
    }
}

async fn a_membership_without_a_join_time_reads_it_from_the_member(env: &'static Env) {
    // GIVEN a membership item written before it kept the join time
    let app = TestApp::new(env).await;
    let c = app.customer(Spec::with_members(1)).await;
    let user = UserId::parse(&c.members[0]).unwrap();
    app.store
        .client()
        .update_item()
        .table_name(app.store.table_name())
        .set_key(Some(billing::store::table::membership_key(&user)))
        .update_expression("REMOVE joinedAt")
        .condition_expression("attribute_exists(joinedAt)")
        .send()
        .await
        .expect("a membership item holds joinedAt");
    // THEN the user's customer still answers the member's join time
    let joined = listing(&app, &c.id).await[1].2.clone();
    let reply = app.get(&format!("/user/{user}/customer")).await;
    assert_eq!(
        reply.json,
        json!({"customerID": c.id, "role": "admin", "joinedAt": joined})
    );
    // and a role change writes the join time back into the membership
    let reply = patch_role(&app, &c.id, &c.members[0], json!("user")).await;
    assert_eq!(reply.status, StatusCode::OK);
    let item = app
        .store
        .client()
        .get_item()
        .table_name(app.store.table_name())
        .set_key(Some(billing::store::table::membership_key(&user)))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .expect("membership");
    assert!(item.contains_key("joinedAt"));
    assert_eq!(item["role"].as_s().unwrap(), "user");
    let reply = app.get(&format!("/user/{user}/customer")).await;
    assert_eq!(
        reply.json,
        json!({"customerID": c.id, "role": "user", "joinedAt": joined})
    );
}

async fn race_role_changes_against_removals_keep_everything_exact(env: &'static Env) {
    // GIVEN a customer with 12 members besides its owner
    let app = TestApp::new(env).await;
    let c = app.customer(Spec::with_members(12)).await;
    let audited = audit_entries(&app, &c.id).await.len();
    // WHEN each of m1..m8 is made an admin and removed at once, and m9..m11 are
    // made admins and users at once (m0 is left alone)
    let raced = &c.members[1..9];
    let patches = join_all(
        raced
            .iter()
            .map(|u| patch_role(&app, &c.id, u, json!("admin"))),
    );
    let removal_paths: Vec<String> = raced.iter().map(|u| member_path(&c.id, u)).collect();
    let removals = join_all(
        removal_paths
            .iter()
            .map(|p| app.admin(Method::DELETE, p, None)),
    );
    let flips = join_all(c.members[9..].iter().flat_map(|u| {
        [
            patch_role(&app, &c.id, u, json!("admin")),
            patch_role(&app, &c.id, u, json!("user")),
        ]
    }));
    let (patched, removed, flipped) = futures_util::join!(patches, removals, flips);
    // THEN every removal won (a role change never stops one), and each role change
    // either came first (200) or found no member (404)
    for (r, u) in removed.iter().zip(raced) {
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{u}: {:?}", r.json);
    }
    for (r, u) in patched.iter().zip(raced) {
        match r.status {
            StatusCode::OK => assert_eq!(r.json["role"], "admin"),
            StatusCode::NOT_FOUND => assert_eq!(r.error_code(), "member_not_found", "{u}"),
            other => panic!("{u}: {other} {:?}", r.json),
        }
    }
    for r in &flipped {
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.json);
    }
    // and the count, the member items, the listing, its directory and the
    // memberships agree
    assert_eq!(member_count(&app, &c.id).await, 1 + 4);
    assert_eq!(records_of(&app, &c.id).await, 1 + 1 + 4);
    let listed = listing(&app, &c.id).await;
    let listed_ids: Vec<String> = listed.iter().map(|(u, _, _)| u.clone()).collect();
    assert_eq!(listed.len(), 5);
    assert_eq!(member_pages(&app, &c.id, 2).await, listed_ids);
    assert_eq!(counts(&app, &c.id, "limit=2").await, (json!(5), json!(3)));
    for u in raced {
        let reply = app.get(&format!("/user/{u}/customer")).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{u} left");
    }
    for (u, role, _) in &listed {
        let reply = app.get(&format!("/user/{u}/customer")).await;
        assert_eq!(
            reply.json["role"],
            json!(role),
            "{u}: membership agrees with the listing"
        );
    }
    // and the audit trail tells the same story: per raced member one removal,
    // recording the role it had when removed (admin when its change came first)
    let entries = audit_entries(&app, &c.id).await;
    let flips_ok = flipped.len();
    let patches_ok = patched
        .iter()
        .filter(|r| r.status == StatusCode::OK)
        .count();
    // A flip to the role a member already has writes nothing.
    let flip_entries = entries
        .iter()
        .filter(|e| {
            e["action"] == "member.role_changed"
                && c.members[9..].iter().any(|u| e["userID"] == json!(u))
        })
        .count();
    assert!(flip_entries <= flips_ok, "{flip_entries} > {flips_ok}");
    assert_eq!(
        entries.len(),
        audited + raced.len() + patches_ok + flip_entries,
        "one entry per removal and per role change that changed a role"
    );
    for (r, u) in patched.iter().zip(raced) {
        let mine: Vec<&Value> = entries.iter().filter(|e| e["userID"] == json!(u)).collect();
        let removal: Vec<&&Value> = mine
            .iter()
            .filter(|e| e["action"] == "member.removed")
            .collect();
        assert_eq!(removal.len(), 1, "{u}");
        let changed = mine
            .iter()
            .filter(|e| e["action"] == "member.role_changed")
            .count();
        let expected_role = if r.status == StatusCode::OK {
            assert_eq!(changed, 1, "{u}");
            "admin"
        } else {
            assert_eq!(changed, 0, "{u}");
            "user"
        };
        assert_eq!(removal[0]["role"], expected_role, "{u}: {removal:?}");
        assert_eq!(
            removal[0]["changes"],
            json!({"role": {"from": expected_role, "to": null}}),
            "{u}"
        );
    }
}

async fn race_role_changes_of_one_member_serialize(env: &'static Env) {
    // GIVEN one user member
    let app = TestApp::new(env).await;
    let c = app.customer(Spec::with_members(2)).await;
    let user = &c.members[1];
    // WHEN 8 changes to admin and 8 to user race
    let replies = join_all((0..16).map(|i| {
        let role = if i % 2 == 0 { "admin" } else { "user" };
        patch_role(&app, &c.id, user, json!(role))
    }))
    .await;
    for r in &replies {
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.json);
    }
    // THEN the entries written chain: each starts from the role the previous
    // one left, and the last leaves the role the member has
    let mut chain: Vec<Value> = audit_entries(&app, &c.id)
        .await
        .into_iter()
        .filter(|e| e["action"] == "member.role_changed")
        .collect();
    chain.reverse();
    assert!(
        !chain.is_empty(),
        "at least the first change to admin wrote"
    );
    let mut role = "user".to_owned();
    for e in &chain {
        let change = &e["changes"]["role"];
        assert_eq!(change["from"], json!(role), "{chain:?}");
        assert_ne!(change["to"], change["from"]);
        assert_eq!(e["role"], change["to"]);
        role = change["to"].as_str().unwrap().to_owned();
    }
    let listed = listing(&app, &c.id).await;
    assert_eq!(
        listed[1..].iter().find(|(u, _, _)| u == user).unwrap().1,
        role
    );
    let reply = app.get(&format!("/user/{user}/customer")).await;
    assert_eq!(reply.json["role"], json!(role));
    assert_eq!(member_count(&app, &c.id).await, 3);
    let ids: Vec<String> = listed.iter().map(|(u, _, _)| u.clone()).collect();
    assert_eq!(member_pages(&app, &c.id, 1).await, ids);
    assert_eq!(counts(&app, &c.id, "limit=1").await.0, 3);
}
