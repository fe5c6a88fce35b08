//! The audit trail (`GET /customer/{customerID}/audit`), the membership events
//! the stream consumer publishes from it, and the writes of each audited change.

use std::collections::{BTreeMap, BTreeSet};

use billing::auth::issue_api_key;
use billing::cleanup::{Cleanup, UserCleanup};
use billing::domain::CustomerId;
use billing::events::Publisher;
use billing_tests::app::{Spec, TestApp, bearer, committed_transactions, request, token};
use billing_tests::sinks::{EventSink, StreamConsumer, settle};
use billing_tests::{Env, Reply};
use http::{Method, StatusCode};
use lambda_http::RequestExt;
use serde_json::{Value, json};

use crate::TestFn;

pub fn trials() -> Vec<(&'static str, TestFn)> {
    crate::trials![
        every_change_is_audited_newest_first_by_whom_and_for_which_request,
        a_failed_change_leaves_no_audit_entry,
        api_key_and_platform_changes_name_their_actor,
        the_audit_trail_pages_like_other_listings,
        a_bulk_add_audits_each_member_once,
        membership_events_are_published_once_per_change,
        each_audited_change_is_one_transaction_of_known_size,
    ]
}

/// The sorted keys of a JSON object.
pub fn keys_of(v: &Value) -> Vec<String> {
    let mut keys: Vec<String> = v
        .as_object()
        .expect("a JSON object")
        .keys()
        .cloned()
        .collect();
    keys.sort();
    keys
}

/// Every audit entry of a customer, newest first, through cursor pages of 100.
pub async fn audit_entries(app: &TestApp, customer: &str) -> Vec<Value> {
    let mut entries = Vec::new();
    let mut path = format!("/customer/{customer}/audit?limit=100");
    for _ in 0..100 {
        let reply = Box::pin(app.get(&path)).await;
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.json);
        entries.extend(reply.json["events"].as_array().expect("events").clone());
        match reply.json["next"].as_str() {
            Some(next) => path = format!("/customer/{customer}/audit?limit=100&cursor={next}"),
            None => {
                assert_eq!(
                    reply.json["items"],
                    json!(entries.len()),
                    "items counts them all"
                );
                return entries;
            }
        }
    }
    panic!("more than 100 pages of audit entries");
}

/// A caller with credentials of its own: a token's subject, or an API key.
pub struct Who {
    /// The token's subject, or the user the API key acts as.
    pub subject: String,
    /// The API key id (`ak_...`), for an API-key caller.
    pub key_id: Option<String>,
    headers: Vec<(&'static str, String)>,
}

impl Who {
    /// A `billing_admin` with a bearer token for `subject`.
    pub fn user(subject: &str) -> Self {
        Self {
            subject: subject.to_owned(),
            key_id: None,
            headers: vec![(
                "authorization",
                format!("Bearer {}", token(subject, &["billing_admin"], 600)),
            )],
        }
    }

    /// A `billing_admin` API key issued to `user`, stored in `app`'s table.
    pub async fn api_key(app: &TestApp, user: &str) -> Self {
        let key = issue_api_key(user, vec!["billing_admin".into()], None).expect("issue key");
        app.store
            .put_api_key(&key.key_id, &key.record)
            .await
            .expect("store key");
        Self {
            subject: user.to_owned(),
            key_id: Some(key.key_id.clone()),
            headers: vec![("api-key", key.key_id), ("api-secret", key.secret)],
        }
    }

    /// A request with a fresh Lambda request id.
    pub async fn send(
        &self,
        app: &TestApp,
        method: Method,
        path: &str,
        body: Option<Value>,
        extra: &[(&str, &str)],
    ) -> Reply {
        let id = uuid::Uuid::new_v4().to_string();
        self.send_as(app, &id, method, path, body, extra).await
    }

    /// `request` with a fresh Lambda request id and no other headers.
    pub async fn call(&self, app: &TestApp, (method, path, body): Request) -> Reply {
        self.send(app, method, &path, body, &[]).await
    }

    /// A request as Lambda delivers it with request id `request_id`; a JSON body
    /// gets `Content-Type: application/json`.
    pub async fn send_as(
        &self,
        app: &TestApp,
        request_id: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
        extra: &[(&str, &str)],
    ) -> Reply {
        let headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(name, value)| (*name, value.as_str()))
            .chain(extra.iter().copied())
            .collect();
        let (builder, bytes) = request(method, path, &headers, body);
        let (parts, ()) = builder.body(()).expect("request").into_parts();
        let mut context = lambda_http::Context::default();
        context.request_id = request_id.to_owned();
        let req = billing::http::lambda_request(parts, bytes).with_lambda_context(context);
        // Boxed: the handlers' future is deep enough that a few more async
        // layers overflow the compiler's layout query depth (under clippy).
        Reply::from(Box::pin(billing::api::dispatch(&app.state, req)).await)
    }

    /// This caller as an audit entry's (or event's) `actor`.
    pub fn actor(&self) -> Value {
        match &self.key_id {
            Some(key) => json!({"type": "api_key", "keyID": key, "userID": self.subject}),
            None => json!({"type": "user", "subject": self.subject}),
        }
    }
}

/// A request: its method, path and JSON body.
pub type Request = (Method, String, Option<Value>);

/// Adds `user` to `customer` with `role`.
pub fn add_request(customer: &str, user: &str, role: Value) -> Request {
    (
        Method::POST,
        format!("/customer/{customer}/member"),
        Some(json!({"userID": user, "role": role})),
    )
}

/// Changes the role of `user` in `customer` to `role`.
pub fn role_request(customer: &str, user: &str, role: Value) -> Request {
    (
        Method::PATCH,
        format!("/customer/{customer}/member/{user}"),
        Some(json!({"role": role})),
    )
}

/// Removes `user` from `customer`.
pub fn remove_request(customer: &str, user: &str) -> Request {
    (
        Method::DELETE,
        format!("/customer/{customer}/member/{user}"),
        None,
    )
}

/// Deletes `customer`.
pub fn delete_request(customer: &str) -> Request {
    (Method::DELETE, format!("/customer/{customer}"), None)
}

/// Parses an entry's `at`: RFC 3339 with milliseconds, in UTC.
fn at_of(entry: &Value) -> chrono::DateTime<chrono::Utc> {
    let at = entry["at"].as_str().expect("at");
    assert_eq!(at.len(), "2026-01-01T00:00:00.000Z".len(), "{at}");
    assert!(at.ends_with('Z'), "{at}");
    chrono::DateTime::parse_from_rfc3339(at)
        .expect("RFC 3339")
        .with_timezone(&chrono::Utc)
}

async fn every_change_is_audited_newest_first_by_whom_and_for_which_request(env: &'static Env) {
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

async fn a_failed_change_leaves_no_audit_entry(env: &'static Env) {
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

async fn api_key_and_platform_changes_name_their_actor(env: &'static Env) {
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

/// Adds `n` new members with `role` to `customer`, each answered 201.
async fn add_members(app: &TestApp, customer: &str, n: usize, role: &str) {
    for _ in 0..n {
        let reply = app
            .admin(
                Method::POST,
                &format!("/customer/{customer}/member"),
                Some(json!({"userID": uuid::Uuid::new_v4(), "role": role})),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.json);
    }
}

/// The `next` cursor of the page at `path`.
async fn next_cursor(app: &TestApp, path: &str) -> String {
    let reply = app.get(path).await;
    let next = reply.json["next"].as_str();
    next.unwrap_or_else(|| panic!("no next cursor: {:?}", reply.json))
        .to_owned()
}

async fn the_audit_trail_pages_like_other_listings(env: &'static Env) {
    // GIVEN a customer with a trail of at least 13 entries
    let app = TestApp::new(env).await;
    let c = app.customer(Spec::default()).await;
    let other = app.customer(Spec::default()).await;
    add_members(&app, &c.id, 12, "user").await;
    let all = audit_entries(&app, &c.id).await;
    let total = all.len();
    assert!(total >= 13, "{total}");
    let path = format!("/customer/{}/audit", c.id);
    // Numbered pages of 5 are the trail's slices.
    let pages = total.div_ceil(5);
    let mut walked = Vec::new();
    for page in 1..=pages {
        let reply = app.get(&format!("{path}?page={page}&limit=5")).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(
            (reply.json["items"].clone(), reply.json["pages"].clone()),
            (json!(total), json!(pages))
        );
        assert_eq!(reply.json["next"].is_string(), page < pages, "page {page}");
        walked.extend(reply.json["events"].as_array().unwrap().clone());
    }
    assert_eq!(walked, all);
    let past = app.get(&format!("{path}?page={}&limit=5", pages + 1)).await;
    assert_eq!(
        past.json,
        json!({"events": [], "items": total, "pages": pages})
    );
    // The default page is the newest 10.
    let default = app.get(&path).await;
    assert_eq!(default.json["events"].as_array().unwrap()[..], all[..10]);
    // Cursors walk the same entries; a cursor keeps its place while newer
    // entries arrive.
    let next = next_cursor(&app, &format!("{path}?limit=5")).await;
    add_members(&app, &c.id, 2, "admin").await;
    let mut cursor = Some(next.clone());
    let mut rest = Vec::new();
    while let Some(next) = cursor {
        let reply = app.get(&format!("{path}?limit=5&cursor={next}")).await;
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.json);
        assert_eq!(reply.json["items"], json!(total + 2));
        rest.extend(reply.json["events"].as_array().unwrap().clone());
        cursor = reply.json["next"].as_str().map(str::to_owned);
    }
    assert_eq!(rest, all[5..], "the cursor continued where it was");
    // Bad input, as for the other listings.
    let members_cursor = next_cursor(&app, &format!("/customer/{}/members?limit=1", c.id)).await;
    add_members(&app, &other.id, 6, "user").await;
    let foreign = next_cursor(&app, &format!("/customer/{}/audit?limit=1", other.id)).await;
    let mut altered = next.clone();
    let last = altered.pop().unwrap();
    altered.push(if last == 'A' { 'B' } else { 'A' });
    for (query, code) in [
        (format!("?cursor={altered}"), "invalid_cursor"),
        (format!("?cursor={members_cursor}"), "invalid_cursor"),
        (format!("?cursor={foreign}"), "invalid_cursor"),
        (format!("?page=2&cursor={next}"), "invalid_cursor"),
        ("?page=0".to_owned(), "invalid_page"),
        ("?limit=101".to_owned(), "invalid_limit"),
        ("?limit=0".to_owned(), "invalid_limit"),
        ("?limit=5&limit=6".to_owned(), "repeated_parameter"),
    ] {
        let reply = app.get(&format!("{path}{query}")).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(reply.error_code(), code, "{query}");
    }
    let reply = app.get("/customer/not-a-uuid/audit").await;
    assert_eq!(
        (reply.status, reply.error_code()),
        (StatusCode::BAD_REQUEST, "invalid_customer_id")
    );
    let reply = app
        .get(&format!("/customer/{}/audit", uuid::Uuid::new_v4()))
        .await;
    assert_eq!(reply.json, json!({"events": [], "items": 0, "pages": 0}));
    // Without billing_admin: 403.
    let reply = app
        .call(
            Method::GET,
            &path,
            &[("authorization", &bearer("u", &["support"]))],
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
}

async fn a_bulk_add_audits_each_member_once(env: &'static Env) {
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

async fn membership_events_are_published_once_per_change(env: &'static Env) {
    // GIVEN a table with its stream, its consumer publishing to a bus whose
    // events land in a queue, and what seeding published already drained
    let app = TestApp::with_stream(env).await;
    let c = app.customer(Spec::with_members(2)).await;
    let sink = EventSink::with_pattern(env, json!({"source": [billing::events::SOURCE]})).await;
    let mut consumer = StreamConsumer::new(env, &app, sink.publisher()).await;
    consumer.catch_up(false).await;
    settle().await;
    // (seeding published its members' member.added, and nothing for the
    // customer's own creation)
    let seeded = sink.drain_envelopes().await;
    let mut seeded_users: Vec<(&str, &str)> = seeded
        .iter()
        .map(|e| {
            assert_eq!(e["detail-type"], "member.added", "{e}");
            (
                e["detail"]["userID"].as_str().unwrap(),
                e["detail"]["role"].as_str().unwrap(),
            )
        })
        .collect();
    seeded_users.sort_unstable();
    let mut expected = vec![
        (c.owner.as_str(), "owner"),
        (c.members[0].as_str(), "admin"),
        (c.members[1].as_str(), "user"),
    ];
    expected.sort_unstable();
    assert_eq!(seeded_users, expected);
    // WHEN an admin adds u, makes it an admin, removes m1, and an API key makes
    // m0 a user; then the customer is deleted
    let admin = Who::user(&format!("admin-{}", uuid::Uuid::new_v4()));
    let key = Who::api_key(&app, "ops-user").await;
    let u = uuid::Uuid::new_v4().to_string();
    let steps = [
        (&admin, add_request(&c.id, &u, json!("user"))),
        (&admin, role_request(&c.id, &u, json!("admin"))),
        (&admin, remove_request(&c.id, &c.members[1])),
        (&key, role_request(&c.id, &c.members[0], json!(2))),
        // the same role again: no change, no event
        (&key, role_request(&c.id, &c.members[0], json!("user"))),
    ];
    for (who, (method, path, body)) in steps {
        let reply = who.send(&app, method.clone(), &path, body, &[]).await;
        assert!(
            reply.status.is_success(),
            "{method} {path}: {:?}",
            reply.json
        );
    }
    let changes: Vec<Value> = audit_entries(&app, &c.id).await[..4].to_vec();
    let reply = admin.call(&app, delete_request(&c.id)).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    // and the stream delivers every batch twice
    consumer.catch_up(true).await;
    settle().await;
    let events = sink.drain_envelopes().await;
    // THEN each change's event came twice with one eventId: one after deduplication
    let mut by_id: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    for e in &events {
        assert_eq!(e["source"], billing::events::SOURCE);
        let id = e["detail"]["eventId"].as_str().expect("eventId").to_owned();
        by_id.entry(id).or_default().push(e);
    }
    let members: Vec<&Value> = events
        .iter()
        .filter(|e| {
            e["detail-type"]
                .as_str()
                .unwrap_or_default()
                .starts_with("member.")
        })
        .collect();
    assert_eq!(members.len(), 2 * 4, "at-least-once: {events:#?}");
    let deleted: Vec<&Value> = events
        .iter()
        .filter(|e| e["detail-type"] == billing::events::CUSTOMER_DELETED)
        .collect();
    assert_eq!(
        deleted
            .iter()
            .map(|e| e["detail"]["customerID"].as_str().unwrap_or_default())
            .collect::<BTreeSet<_>>(),
        BTreeSet::from([c.id.as_str()])
    );
    assert_eq!(
        by_id.len(),
        4 + 1,
        "one per change and one customer.deleted, the cascade's removals none"
    );
    for dupes in by_id.values() {
        assert_eq!(dupes.len(), 2);
        assert_eq!(
            dupes[0]["detail"], dupes[1]["detail"],
            "a redelivery is the same event"
        );
    }
    // and each event is its audit entry
    let actors = [key.actor(), admin.actor(), admin.actor(), admin.actor()];
    for (entry, actor) in changes.iter().zip(actors) {
        let id = entry["id"].as_str().unwrap();
        let event = by_id
            .get(id)
            .unwrap_or_else(|| panic!("no event for {entry}"))[0];
        assert_eq!(event["detail-type"], entry["action"]);
        let mut detail = json!({
            "eventId": id,
            "customerID": c.id,
            "userID": entry["userID"],
            "role": entry["role"],
            "actor": actor,
            "requestID": entry["requestID"],
            "at": entry["at"],
        });
        if entry["action"] == "member.role_changed" {
            detail["previousRole"] = entry["changes"]["role"]["from"].clone();
        }
        assert_eq!(event["detail"], detail, "{entry}");
    }
    let kinds: Vec<(&str, &str)> = changes
        .iter()
        .map(|e| (e["action"].as_str().unwrap(), e["role"].as_str().unwrap()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("member.role_changed", "user"),
            ("member.removed", "user"),
            ("member.role_changed", "admin"),
            ("member.added", "user"),
        ]
    );
    let previous: Vec<Value> = changes
        .iter()
        .filter(|e| e["action"] == "member.role_changed")
        .map(|e| by_id[e["id"].as_str().unwrap()][0]["detail"]["previousRole"].clone())
        .collect();
    assert_eq!(previous, [json!("admin"), json!("user")]);
}

/// The sizes of the transactions a request commits, asserting its status and
/// that it wrote exactly one audit entry of `customer`.
async fn measure(
    app: &TestApp,
    customer: &str,
    (method, path, body): Request,
    status: StatusCode,
) -> Vec<u64> {
    let audited = audit_entries(app, customer).await.len();
    let (reply, sizes) = committed_transactions(app.admin(method.clone(), &path, body)).await;
    assert_eq!(reply.status, status, "{method} {path}: {:?}", reply.json);
    assert_eq!(
        audit_entries(app, customer).await.len(),
        audited + 1,
        "{method} {path}: exactly one audit entry"
    );
    sizes
}

async fn each_audited_change_is_one_transaction_of_known_size(env: &'static Env) {
    // GIVEN a pro/active customer (4 listings) with an owner and two members
    let app = TestApp::new(env).await;
    let c = app.customer(Spec::with_members(2)).await;
    let user = uuid::Uuid::new_v4().to_string();
    let changes = [
        // An add: the record's count, its 4 listing entries' counts, the member, the
        // membership, the members directory's month and day, the audit entry.
        (
            add_request(&c.id, &user, json!("user")),
            StatusCode::CREATED,
        ),
        // A role change: the record's condition, the member, the membership, the
        // directory (out of one group, into the other: month and day of each), the entry.
        (role_request(&c.id, &user, json!("admin")), StatusCode::OK),
        // A removal: as an add.
        (remove_request(&c.id, &user), StatusCode::NO_CONTENT),
        // A deletion's first transaction: the record, its 4 entries deleted and 4
        // deltas put, the entry; then the members (3 with the members directory),
        // then the record.
        (delete_request(&c.id), StatusCode::NO_CONTENT),
    ];
    let mut measured = Vec::new();
    for (request, status) in changes {
        measured.push(measure(&app, &c.id, request, status).await);
    }
    let [add, change, remove, delete] = <[Vec<u64>; 4]>::try_from(measured).expect("4 changes");
    eprintln!(
        "writes per transaction: add {add:?}, role change {change:?}, remove {remove:?}, delete {delete:?}"
    );
    assert_eq!(add, vec![ADD_MEMBER], "add member");
    assert_eq!(change, vec![CHANGE_ROLE], "change role");
    assert_eq!(remove, vec![REMOVE_MEMBER], "remove member");
    assert_eq!(
        delete.first(),
        Some(&DELETE_FIRST),
        "delete customer: {delete:?}"
    );
    // With an Idempotency-Key the transaction also writes the answer into
    // the key's record: one more write, none after it.
    let c = app.customer(Spec::default()).await;
    let body_user = uuid::Uuid::new_v4().to_string();
    let body = json!({"userID": body_user, "role": "user"});
    let (keyed, members) = (Who::user("keyed"), format!("/customer/{}/member", c.id));
    let keyed_add = || {
        committed_transactions(keyed.send(
            &app,
            Method::POST,
            &members,
            Some(body.clone()),
            &[("idempotency-key", "writes-1")],
        ))
    };
    let (reply, sizes) = keyed_add().await;
    assert_eq!(reply.status, StatusCode::CREATED);
    assert_eq!(sizes, vec![ADD_MEMBER + ANSWER]);
    // Its replay, and a role change to the role a member has, commit nothing.
    let (reply, sizes) = keyed_add().await;
    assert_eq!(
        (
            reply.status,
            reply.headers.get("idempotent-replayed").is_some()
        ),
        (StatusCode::CREATED, true)
    );
    assert_eq!(sizes, Vec::<u64>::new(), "a replay writes nothing");
    let (reply, sizes) = committed_transactions(app.admin(
        Method::PATCH,
        &format!("/customer/{}/member/{}", c.id, c.owner),
        Some(json!({"role": "admin"})),
    ))
    .await;
    assert_eq!(reply.status, StatusCode::CONFLICT);
    assert_eq!(sizes, Vec::<u64>::new(), "a refused change writes nothing");
    let user = body_user;
    let (reply, sizes) = committed_transactions(app.admin(
        Method::PATCH,
        &format!("/customer/{}/member/{user}", c.id),
        Some(json!({"role": "user"})),
    ))
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(sizes, Vec::<u64>::new(), "the same role writes nothing");
    // A keyed role change, and a keyed deletion's first transaction.
    let (method, path, body) = role_request(&c.id, &user, json!("admin"));
    let (reply, sizes) = committed_transactions(keyed.send(
        &app,
        method,
        &path,
        body,
        &[("idempotency-key", "writes-2")],
    ))
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(sizes, vec![CHANGE_ROLE + ANSWER]);
    let (method, path, _) = delete_request(&c.id);
    let (reply, sizes) = committed_transactions(keyed.send(
        &app,
        method,
        &path,
        None,
        &[("idempotency-key", "writes-3")],
    ))
    .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    assert_eq!(sizes.first(), Some(&(DELETE_FIRST + ANSWER)), "{sizes:?}");
}

/// The write of an `Idempotency-Key`'s answer in the transaction of its change.
const ANSWER: u64 = 1;

/// Write actions of adding a member (1 of them the audit entry).
const ADD_MEMBER: u64 = 10;
/// Of changing a member's role (1 of them the audit entry, 1 a condition check).
const CHANGE_ROLE: u64 = 8;
/// Of removing a member (1 of them the audit entry).
const REMOVE_MEMBER: u64 = 10;
/// Of a deletion's first transaction (1 of them the audit entry).
const DELETE_FIRST: u64 = 10;
