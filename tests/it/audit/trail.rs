//! What the trail records: every change, by whom and for which request; nothing
//! for a failed change; the actor of API key and platform changes; a bulk add.

use super::*;

/// Parses an entry's `at`: RFC 3339 with milliseconds, in UTC.
pub(super) fn at_of(entry: &Value) -> chrono::DateTime<chrono::Utc> {
    let at = entry["at"].as_str().expect("at");
    assert_eq!(at.len(), "2026-01-01T00:00:00.000Z".len(), "{at}");
    assert!(at.ends_with('Z'), "{at}");
    chrono::DateTime::parse_from_rfc3339(at)
        .expect("RFC 3339")
        .with_timezone(&chrono::Utc)
}

pub(super) async fn every_change_is_audited_newest_first_by_whom_and_for_which_request(
    env: &'static Env,
) {
    // GIVEN a customer and an admin whose requests have known ids
    let app = TestApp::new(env).await;
    let c = app.customer(Spec::default()).await;
    let seeded = audit_entries(&app, &c.id).await.len();
    let admin = Who::user(&format!("admin-{}", uuid::Uuid::new_v4()));
    let (u, v) = (
        uuid::Uuid::new_v4().to_string(),
        uuid::Uuid::new_v4().to_string(),
    );
    let ids: Vec<String> = (0..5)
        .map(|i| format!("req-{i}-{}", uuid::Uuid::new_v4()))
        .collect();
    let started = billing::domain::now();
    // WHEN it adds u as an admin, makes it a user, removes it, adds v (legacy 2),
    // and deletes the customer
    let steps = [
        (add_request(&c.id, &u, json!("admin")), StatusCode::CREATED),
        (role_request(&c.id, &u, json!("user")), StatusCode::OK),
        (remove_request(&c.id, &u), StatusCode::NO_CONTENT),
        (add_request(&c.id, &v, json!(2)), StatusCode::CREATED),
        (delete_request(&c.id), StatusCode::NO_CONTENT),
    ];
    for (((method, path, body), status), id) in steps.into_iter().zip(&ids) {
        let reply = admin
            .send_as(&app, id, method.clone(), &path, body, &[])
            .await;
        assert_eq!(reply.status, status, "{method} {path}: {:?}", reply.json);
    }
    let ended = billing::domain::now();
    // THEN the customer is gone but its trail is readable: one entry per change,
    // newest first, after what seeding recorded
    assert_eq!(
        app.get(&format!("/customer/{}", c.id)).await.status,
        StatusCode::NOT_FOUND
    );
    let reply = app.get(&format!("/customer/{}/audit?limit=5", c.id)).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.json);
    assert_eq!(reply.headers["cache-control"], "no-store");
    assert_eq!(reply.json["items"], json!(seeded + 5));
    let all = audit_entries(&app, &c.id).await;
    assert_eq!(all.len(), seeded + 5);
    let newest = &all[..5];
    assert_eq!(reply.json["events"].as_array().unwrap(), newest);
    let expected = [
        (
            "customer.deleted",
            None,
            None,
            json!({"state": {"from": "active", "to": "deleting"}}),
        ),
        (
            "member.added",
            Some(&v),
            Some("user"),
            json!({"role": {"from": null, "to": "user"}}),
        ),
        (
            "member.removed",
            Some(&u),
            Some("user"),
            json!({"role": {"from": "user", "to": null}}),
        ),
        (
            "member.role_changed",
            Some(&u),
            Some("user"),
            json!({"role": {"from": "admin", "to": "user"}}),
        ),
        (
            "member.added",
            Some(&u),
            Some("admin"),
            json!({"role": {"from": null, "to": "admin"}}),
        ),
    ];
    for (i, (entry, (action, user, role, changes))) in newest.iter().zip(expected).enumerate() {
        assert_eq!(entry["action"], action, "{i}: {entry}");
        assert_eq!(entry["actor"], admin.actor(), "{i}");
        assert_eq!(
            entry["requestID"],
            json!(ids[4 - i]),
            "{i}: the request that made it"
        );
        assert_eq!(entry["customerID"], json!(c.id), "{i}");
        assert_eq!(entry["changes"], changes, "{i}");
        uuid::Uuid::parse_str(entry["id"].as_str().unwrap()).expect("id is a UUID");
        let at = at_of(entry);
        assert!(
            at >= started - chrono::Duration::milliseconds(1) && at <= ended,
            "{i}: {at} within the test"
        );
        let mut keys = vec![
            "action",
            "actor",
            "at",
            "changes",
            "customerID",
            "id",
            "requestID",
        ];
        if let (Some(user), Some(role)) = (user, role) {
            assert_eq!(entry["userID"], json!(user), "{i}");
            assert_eq!(entry["role"], role, "{i}");
            keys.extend(["role", "userID"]);
        }
        keys.sort_unstable();
        assert_eq!(keys_of(entry), keys, "{i}: exactly these fields");
    }
    // newest first all the way down, every id distinct
    for pair in all.windows(2) {
        assert!(at_of(&pair[0]) >= at_of(&pair[1]), "{pair:?}");
    }
    let distinct: BTreeSet<&str> = all.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(distinct.len(), all.len());
    // and a DELETE of the gone customer (404) records nothing more
    let reply = admin.call(&app, delete_request(&c.id)).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(audit_entries(&app, &c.id).await.len(), seeded + 5);
}

pub(super) async fn a_failed_change_leaves_no_audit_entry(env: &'static Env) {
    let app = TestApp::new(env).await;
    let a = app.customer(Spec::with_members(2)).await;
    let b = app.customer(Spec::with_members(1)).await;
    let deleting = app.customer(Spec::with_members(1)).await;
    let gone = uuid::Uuid::new_v4().to_string();
    app.begin_deletion(&deleting.id).await;
    let ids = [
        a.id.clone(),
        b.id.clone(),
        deleting.id.clone(),
        gone.clone(),
    ];
    let trails = || async {
        let mut all = Vec::new();
        for id in &ids {
            all.push(audit_entries(&app, id).await);
        }
        all
    };
    let before = trails().await;
    assert!(
        before[3].is_empty(),
        "an unknown customer has an empty trail"
    );
    let fresh = uuid::Uuid::new_v4().to_string();
    let add = |customer: &str, user: &str| add_request(customer, user, json!("user"));
    let patch = |customer: &str, user: &str| role_request(customer, user, json!("admin"));
    let cases = [
        (
            add(&a.id, &a.members[0]),
            StatusCode::CONFLICT,
            "already_member",
        ),
        (add(&a.id, &b.owner), StatusCode::CONFLICT, "already_member"),
        (
            add(&gone, &fresh),
            StatusCode::NOT_FOUND,
            "customer_not_found",
        ),
        (
            add(&deleting.id, &fresh),
            StatusCode::NOT_FOUND,
            "customer_not_found",
        ),
        (
            add(&a.id, "bad"),
            StatusCode::BAD_REQUEST,
            "invalid_user_id",
        ),
        (
            remove_request(&a.id, &a.owner),
            StatusCode::CONFLICT,
            "owner_not_removable",
        ),
        (
            remove_request(&a.id, &b.members[0]),
            StatusCode::NOT_FOUND,
            "member_not_found",
        ),
        (
            remove_request(&deleting.id, &deleting.members[0]),
            StatusCode::NOT_FOUND,
            "customer_not_found",
        ),
        (
            patch(&a.id, &a.owner),
            StatusCode::CONFLICT,
            "owner_role_change",
        ),
        (
            patch(&a.id, &fresh),
            StatusCode::NOT_FOUND,
            "member_not_found",
        ),
        (
            patch(&deleting.id, &deleting.members[0]),
            StatusCode::NOT_FOUND,
            "customer_not_found",
        ),
        (
            delete_request(&gone),
            StatusCode::NOT_FOUND,
            "customer_not_found",
        ),
    ];
    for ((method, path, body), status, code) in cases {
        let reply = app.admin(method.clone(), &path, body).await;
        assert_eq!(reply.status, status, "{method} {path}: {:?}", reply.json);
        assert_eq!(reply.error_code(), code, "{method} {path}");
    }
    assert_eq!(trails().await, before, "no entry for any refused change");
    assert_eq!(
        app.store
            .membership_of(&billing::domain::UserId::parse(&fresh).unwrap())
            .await
            .unwrap(),
        None
    );
}

pub(super) async fn api_key_and_platform_changes_name_their_actor(env: &'static Env) {
    let app = TestApp::new(env).await;
    let c = app.customer(Spec::with_members(2)).await;
    let owned = app.customer(Spec::with_members(1)).await;
    // An API key's change names the key and the user it acts as, never the secret.
    let key = Who::api_key(&app, &format!("ops-{}", uuid::Uuid::new_v4())).await;
    let user = uuid::Uuid::new_v4().to_string();
    let reply = key
        .send_as(
            &app,
            "req-by-key",
            Method::POST,
            &format!("/customer/{}/member", c.id),
            Some(json!({"userID": user, "role": "admin"})),
            &[],
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED);
    let newest = &audit_entries(&app, &c.id).await[0];
    assert_eq!(newest["action"], "member.added");
    assert_eq!(newest["userID"], json!(user));
    assert_eq!(newest["requestID"], "req-by-key");
    let key_id = key.key_id.clone().unwrap();
    assert!(key_id.starts_with("ak_"));
    assert_eq!(
        newest["actor"],
        json!({"type": "api_key", "keyID": key_id, "userID": key.subject})
    );
    // The platform's user.deleted: a member's removal, then an owner's customer,
    // each by the event's id.
    let cleanup = Cleanup::new(app.store.clone(), Some(env.payments()), Publisher::Log);
    let event = |id: &str, user: &str| {
        json!({
            "version": "0", "id": id, "detail-type": "user.deleted", "source": "platform.users",
            "account": "123456789012", "time": "2026-03-02T10:20:05Z", "region": "eu-west-1",
            "resources": [], "detail": {"userID": user}
        })
    };
    let member_event = format!("evt-{}", uuid::Uuid::new_v4());
    assert_eq!(
        cleanup
            .on_user_deleted_event(&event(&member_event, &c.members[1]))
            .await
            .unwrap(),
        UserCleanup::MembershipRemoved(CustomerId::parse(&c.id).unwrap())
    );
    let newest = &audit_entries(&app, &c.id).await[0];
    assert_eq!(
        (
            newest["action"].clone(),
            newest["userID"].clone(),
            newest["role"].clone()
        ),
        (json!("member.removed"), json!(c.members[1]), json!("user"))
    );
    assert_eq!(
        newest["actor"],
        json!({"type": "platform", "eventID": member_event})
    );
    // No request: the event's id, or null (never another request's id).
    assert!(
        newest
            .get("requestID")
            .is_none_or(|r| r.is_null() || *r == json!(member_event)),
        "{newest}"
    );
    let owner_event = format!("evt-{}", uuid::Uuid::new_v4());
    let before = audit_entries(&app, &owned.id).await.len();
    assert_eq!(
        cleanup
            .on_user_deleted_event(&event(&owner_event, &owned.owner))
            .await
            .unwrap(),
        UserCleanup::CustomerDeleted(CustomerId::parse(&owned.id).unwrap())
    );
    let trail = audit_entries(&app, &owned.id).await;
    assert_eq!(
        trail.len(),
        before + 1,
        "the deletion is one entry, its cascade none"
    );
    assert_eq!(trail[0]["action"], "customer.deleted");
    assert_eq!(
        trail[0]["actor"],
        json!({"type": "platform", "eventID": owner_event})
    );
    // A replay does nothing and records nothing.
    cleanup
        .on_user_deleted_event(&event(&owner_event, &owned.owner))
        .await
        .unwrap();
    cleanup
        .on_user_deleted_event(&event(&member_event, &c.members[1]))
        .await
        .unwrap();
    assert_eq!(audit_entries(&app, &owned.id).await.len(), before + 1);
    assert_eq!(
        audit_entries(&app, &c.id).await[0]["actor"]["eventID"],
        json!(member_event)
    );
}

pub(super) async fn a_bulk_add_audits_each_member_once(env: &'static Env) {
    // GIVEN a customer seeded with 120 members besides its owner (added in
    // several transactions, each member with its entry)
    let app = TestApp::new(env).await;
    let c = app.customer(Spec::with_members(120)).await;
    let entries = audit_entries(&app, &c.id).await;
    // THEN each member, the owner included, has exactly one member.added entry
    let mut added: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    for e in entries.iter().filter(|e| e["action"] == "member.added") {
        added
            .entry(e["userID"].as_str().unwrap().to_owned())
            .or_default()
            .push(e);
    }
    let expected: BTreeSet<String> = c.members.iter().chain([&c.owner]).cloned().collect();
    assert_eq!(added.keys().cloned().collect::<BTreeSet<_>>(), expected);
    for (user, mine) in &added {
        assert_eq!(mine.len(), 1, "{user}");
        let role = if *user == c.owner {
            "owner"
        } else if *user == c.members[0] {
            "admin"
        } else {
            "user"
        };
        assert_eq!(mine[0]["role"], role, "{user}");
    }
    assert_eq!(
        app.get(&format!("/customer/{}", c.id)).await.json["memberCount"],
        121
    );
}
